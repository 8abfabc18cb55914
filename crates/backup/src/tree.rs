//! Trees: one sealed blob per directory, listing its entries with their metadata and, for
//! files, the ids of their chunks in order (holes of sparse files as lengths).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Chardev,
    Blockdev,
    Socket,
}

/// A piece of a file's content: a chunk, or a hole of a sparse file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum Piece {
    Chunk(String),
    Hole { hole: u64 },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Xattr {
    pub name: String,
    pub value: String,
}

/// One directory entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The name when it is UTF-8; else `name_b64` holds its bytes.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_b64: Option<String>,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_ns: i64,
    pub ctime: i64,
    pub ctime_ns: i64,
    pub size: u64,
    pub dev: u64,
    pub inode: u64,
    pub links: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<u64>,
    /// Symlink target (base64 of its bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<Piece>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<String>,
}

#[derive(Serialize, Deserialize, Default, Debug)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Node {
    /// The node for `path` from its `lstat` metadata (content and subtree left empty).
    pub fn from_path(path: &Path, name: &OsStr) -> Result<Node> {
        let md = std::fs::symlink_metadata(path).map_err(Error::io(path))?;
        let ft = md.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_symlink() {
            NodeKind::Symlink
        } else if ft.is_file() {
            NodeKind::File
        } else if ft.is_fifo() {
            NodeKind::Fifo
        } else if ft.is_char_device() {
            NodeKind::Chardev
        } else if ft.is_block_device() {
            NodeKind::Blockdev
        } else {
            NodeKind::Socket
        };
        let (name, name_b64) = match name.to_str() {
            Some(s) => (s.to_string(), None),
            None => (
                name.to_string_lossy().into_owned(),
                Some(B64.encode(name.as_bytes())),
            ),
        };
        let target = if kind == NodeKind::Symlink {
            let t = std::fs::read_link(path).map_err(Error::io(path))?;
            Some(B64.encode(t.as_os_str().as_bytes()))
        } else {
            None
        };
        Ok(Node {
            name,
            name_b64,
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            mtime_ns: md.mtime_nsec(),
            ctime: md.ctime(),
            ctime_ns: md.ctime_nsec(),
            size: if kind == NodeKind::File { md.size() } else { 0 },
            dev: md.dev(),
            inode: md.ino(),
            links: md.nlink(),
            rdev: matches!(kind, NodeKind::Chardev | NodeKind::Blockdev).then(|| md.rdev()),
            target,
            xattrs: read_xattrs(path)?,
            content: None,
            subtree: None,
        })
    }

    /// The entry's name as bytes.
    pub fn os_name(&self) -> OsString {
        match self.name_b64.as_deref().and_then(|b| B64.decode(b).ok()) {
            Some(bytes) => OsString::from_vec(bytes),
            None => OsString::from(&self.name),
        }
    }

    pub fn link_target(&self) -> Option<OsString> {
        let t = B64.decode(self.target.as_deref()?).ok()?;
        Some(OsString::from_vec(t))
    }

    /// Whether `other` (the same path in an earlier snapshot) has the same content for sure.
    pub fn unchanged(&self, other: &Node) -> bool {
        self.kind == NodeKind::File
            && other.kind == NodeKind::File
            && self.size == other.size
            && self.mtime == other.mtime
            && self.mtime_ns == other.mtime_ns
            && self.ctime == other.ctime
            && self.ctime_ns == other.ctime_ns
            && self.inode == other.inode
            && other.content.is_some()
    }
}

fn read_xattrs(path: &Path) -> Result<Vec<Xattr>> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut names[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(rustix::io::Errno::RANGE) => {
            let need = rustix::fs::llistxattr_query(path).map_err(|e| Error::io(path)(e.into()))?;
            names.resize(need, 0);
            rustix::fs::llistxattr(path, &mut names[..]).map_err(|e| Error::io(path)(e.into()))?
        }
        Err(e) => return Err(Error::io(path)(e.into())),
    };
    names.truncate(n);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let len = match rustix::fs::lgetxattr_query(path, name) {
            Ok(l) => l,
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(Error::io(path)(e.into())),
        };
        let mut value = vec![0u8; len];
        let got = rustix::fs::lgetxattr(path, name, &mut value[..])
            .map_err(|e| Error::io(path)(e.into()))?;
        value.truncate(got);
        out.push(Xattr {
            name: String::from_utf8_lossy(name).into_owned(),
            value: B64.encode(&value),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Applies ownership (when permitted), extended attributes, mode and times to a restored entry.
pub fn apply_metadata(path: &Path, node: &Node, warnings: &mut Vec<String>) {
    let is_link = node.kind == NodeKind::Symlink;
    if let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)) {
        // Only root may give files away; keep going as restic does, but say so.
        if rustix::process::geteuid().is_root() {
            warnings.push(format!("{}: chown: {e}", path.display()));
        }
    }
    for x in &node.xattrs {
        let value = B64.decode(&x.value).unwrap_or_default();
        if let Err(e) = rustix::fs::lsetxattr(
            path,
            x.name.as_str(),
            &value,
            rustix::fs::XattrFlags::empty(),
        ) {
            warnings.push(format!("{}: xattr {}: {e}", path.display(), x.name));
        }
    }
    if !is_link {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode)) {
            warnings.push(format!("{}: chmod: {e}", path.display()));
        }
    }
    let ts = rustix::fs::Timestamps {
        // Access times are not recorded (reading the source changes them, and a snapshot of
        // unchanged data must hash the same); the restored entry gets its modification time.
        last_access: rustix::fs::Timespec {
            tv_sec: node.mtime,
            tv_nsec: node.mtime_ns,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: node.mtime,
            tv_nsec: node.mtime_ns,
        },
    };
    if let Err(e) = rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &ts,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    ) {
        warnings.push(format!("{}: times: {e}", path.display()));
    }
}
