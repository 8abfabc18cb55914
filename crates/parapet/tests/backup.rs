//! Black-box tests of `parapet backup` (X.1642 8.10): the real binary on real directory trees,
//! compared byte for byte and attribute for attribute after restore; damage, interruption,
//! concurrency, wrong keys and unknown operators.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use serde_json::Value;
use sha2::{Digest, Sha256};

const PASSWORD: &str = "correct horse battery staple";

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_parapet"))
}

/// A scratch directory removed at the end.
struct Scratch(PathBuf);
impl Scratch {
    fn new(name: &str) -> Scratch {
        let rnd: u64 = rand_u64();
        let p = std::env::temp_dir().join(format!(
            "parapet-backup-{name}-{}-{rnd:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("chmod")
            .args(["-R", "u+rwx"])
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    u64::from_le_bytes(b)
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

struct Repo {
    dir: PathBuf,
    pwfile: PathBuf,
    key: PathBuf,
}

fn backup_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("backup").args(args);
    c.env_remove("PARAPET_BACKUP_PASSWORD")
        .env_remove("PARAPET_BACKUP_OPERATOR_KEY")
        .env_remove("PARAPET_BACKUP_REPOSITORY");
    c
}

fn run(args: &[&str]) -> Output {
    backup_cmd(args).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "command failed: {}\nstdout: {}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "command succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

impl Repo {
    fn init(s: &Scratch) -> Repo {
        let dir = s.path("repo");
        let pwfile = s.path("password");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
        let key = s.path("operator.key");
        let o = run(&[
            "init",
            "--repo",
            p(&dir),
            "--password-file",
            p(&pwfile),
            "--operator-key",
            p(&key),
            "--json",
        ]);
        let v: Value = serde_json::from_str(&ok(&o)).unwrap();
        assert_eq!(v["trusted_operators"].as_array().unwrap().len(), 1);
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        Repo { dir, pwfile, key }
    }
    fn args<'a>(&'a self, cmd: &'a str) -> Vec<&'a str> {
        vec![
            cmd,
            "--repo",
            p(&self.dir),
            "--password-file",
            p(&self.pwfile),
        ]
    }
    fn backup(&self, paths: &[&Path]) -> Value {
        let mut a = self.args("run");
        a.extend(["--operator-key", p(&self.key), "--json"]);
        a.extend(paths.iter().map(|x| p(x)));
        serde_json::from_str(&ok(&run(&a))).unwrap()
    }
    fn restore(&self, snapshot: &str, target: &Path) -> Value {
        let mut a = self.args("restore");
        a.extend([snapshot, "--target", p(target), "--json"]);
        serde_json::from_str(&ok(&run(&a))).unwrap()
    }
    fn verify(&self, read_data: bool) -> (bool, Value) {
        let mut a = self.args("verify");
        a.push("--json");
        if read_data {
            a.push("--read-data");
        }
        let o = run(&a);
        (
            o.status.success(),
            serde_json::from_slice(&o.stdout).unwrap(),
        )
    }
    fn snapshots(&self) -> Vec<Value> {
        let mut a = self.args("snapshots");
        a.push("--json");
        serde_json::from_str::<Value>(&ok(&run(&a)))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// Everything restore must reproduce, per relative path.
#[derive(Debug, PartialEq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    size: u64,
    sha256: String,
    target: Option<PathBuf>,
    xattrs: BTreeMap<String, Vec<u8>>,
    /// Paths of the other names of this file (hard links), relative.
    link_group: Vec<String>,
}

/// Extended attributes of every entry under `root` (one python3 run per tree), by relative path.
fn xattrs_of_tree(root: &Path) -> HashMap<String, BTreeMap<String, Vec<u8>>> {
    let script = "import os,sys,json\nr=sys.argv[1]\nout={}\nfor d,ds,fs in os.walk(r):\n  for n in ds+fs:\n    p=os.path.join(d,n)\n    if os.path.islink(p): continue\n    out[os.path.relpath(p,r)]={a: os.getxattr(p,a,follow_symlinks=False).hex() for a in os.listxattr(p,follow_symlinks=False)}\nprint(json.dumps(out))";
    let o = Command::new("python3")
        .args(["-c", script, p(root)])
        .output()
        .expect("python3 is needed to read extended attributes");
    assert!(
        o.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: HashMap<String, BTreeMap<String, String>> = serde_json::from_slice(&o.stdout).unwrap();
    v.into_iter()
        .map(|(k, m)| (k, m.into_iter().map(|(a, h)| (a, hex_decode(&h))).collect()))
        .collect()
}

fn hex_decode(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

fn describe(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let xattrs = xattrs_of_tree(root);
    let mut inodes: HashMap<u64, Vec<String>> = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let ft = md.file_type();
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_dir() {
                stack.push(path.clone());
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_file() {
                "file"
            } else if ft.is_fifo() {
                "fifo"
            } else {
                "other"
            };
            let sha256 = if kind == "file" {
                let mut h = Sha256::new();
                let mut f = std::fs::File::open(&path).unwrap();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = std::io::Read::read(&mut f, &mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                hex_lower(&h.finalize())
            } else {
                String::new()
            };
            if kind == "file" && md.nlink() > 1 {
                inodes.entry(md.ino()).or_default().push(rel.clone());
            }
            out.insert(
                rel.clone(),
                Entry {
                    kind,
                    mode: md.mode() & 0o7777,
                    uid: md.uid(),
                    gid: md.gid(),
                    mtime: (md.mtime(), md.mtime_nsec()),
                    size: if kind == "dir" { 0 } else { md.size() },
                    sha256,
                    target: (kind == "symlink").then(|| std::fs::read_link(&path).unwrap()),
                    xattrs: xattrs.get(&rel).cloned().unwrap_or_default(),
                    link_group: Vec::new(),
                },
            );
        }
    }
    for group in inodes.values() {
        for name in group {
            let mut others: Vec<String> = group.iter().filter(|n| *n != name).cloned().collect();
            others.sort();
            out.get_mut(name).unwrap().link_group = others;
        }
    }
    out
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn assert_same_tree(a: &Path, b: &Path) {
    let da = describe(a);
    let db = describe(b);
    assert_eq!(
        da.len(),
        db.len(),
        "different entries: {:?} vs {:?}",
        da.keys().collect::<Vec<_>>(),
        db.keys().collect::<Vec<_>>()
    );
    for (k, va) in &da {
        let vb = db
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing after restore"));
        assert_eq!(va, vb, "{k} differs after restore");
    }
}

fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    let t = std::time::UNIX_EPOCH + Duration::new(secs as u64, nanos);
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .or_else(|_| std::fs::File::open(path))
        .unwrap();
    f.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

fn sh(cmd: &mut Command) {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed?)"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A tree with many small files, a large file, a sparse file, a qcow2 image, symlinks, hard
/// links, a FIFO, extended attributes, odd modes and set times.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    for d in 0..20 {
        let dir = root.join(format!("dir{d:02}")).join("nested");
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..50 {
            let path = dir.join(format!("file{f:03}.txt"));
            let n = (d * 50 + f) * 37 % 5000;
            std::fs::write(&path, noise((d * 1000 + f) as u64, n)).unwrap();
            set_mtime(&path, 1_600_000_000 + (d * 50 + f) as i64, 123_456_789);
        }
    }
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("large.bin"), noise(42, 24 * 1024 * 1024 + 12345)).unwrap();
    // Compressible data too.
    std::fs::write(
        root.join("log.txt"),
        "the same line again and again\n".repeat(200_000),
    )
    .unwrap();
    // A 600 MiB sparse file with three data regions.
    let sparse = root.join("disk.raw");
    let f = std::fs::File::create(&sparse).unwrap();
    f.set_len(600 * 1024 * 1024).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&noise(7, 1024 * 1024), 0).unwrap();
    f.write_all_at(&noise(8, 300_000), 300 * 1024 * 1024)
        .unwrap();
    f.write_all_at(b"tail", 600 * 1024 * 1024 - 4).unwrap();
    drop(f);
    // A qcow2 image with data written by qemu-io.
    let q = root.join("vm.qcow2");
    sh(Command::new("qemu-img").args(["create", "-q", "-f", "qcow2", p(&q), "256M"]));
    sh(Command::new("qemu-io").args([
        "-f",
        "qcow2",
        "-c",
        "write -P 0xab 1M 3M",
        "-c",
        "write -P 0x5c 100M 64k",
        p(&q),
    ]));
    std::os::unix::fs::symlink("large.bin", root.join("link-to-large")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    std::fs::hard_link(root.join("large.bin"), root.join("dir00/hardlink.bin")).unwrap();
    std::fs::hard_link(root.join("empty"), root.join("dir01/empty-link")).unwrap();
    sh(Command::new("mkfifo").arg(root.join("pipe")));
    sh(Command::new("python3").args([
        "-c",
        "import os,sys; os.setxattr(sys.argv[1], 'user.parapet', b'\\x00binary\\xff'); os.setxattr(sys.argv[2], 'user.comment', b'hello')",
        p(&root.join("log.txt")),
        p(&root.join("dir03")),
    ]));
    std::fs::set_permissions(root.join("log.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(root.join("dir02"), std::fs::Permissions::from_mode(0o2750)).unwrap();
    std::fs::set_permissions(
        root.join("large.bin"),
        std::fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    sh(Command::new("touch")
        .args(["-h", "-d", "2001-02-03 04:05:06.789"])
        .arg(root.join("link-to-large")));
    for d in ["dir00", "dir05/nested", "dir19"] {
        set_mtime(&root.join(d), 1_500_000_000, 5);
    }
}

#[test]
fn restore_is_bit_identical() {
    let s = Scratch::new("identical");
    let src = s.path("src");
    make_tree(&src);
    let repo = Repo::init(&s);
    let snap = repo.backup(&[&src]);
    let id = snap["snapshot"]["id"].as_str().unwrap().to_string();
    assert_eq!(snap["snapshot"]["files"].as_u64().unwrap(), 1000 + 7);
    // The sparse file's holes were not stored.
    let stored = snap["snapshot"]["stored_bytes"].as_u64().unwrap();
    assert!(stored < 80 * 1024 * 1024, "stored {stored} bytes");

    let out = s.path("out");
    repo.restore(&id[..8], &out);
    assert_same_tree(&src, &out.join("src"));
    // The restored sparse file is still sparse.
    let md = std::fs::metadata(out.join("src/disk.raw")).unwrap();
    assert!(
        md.blocks() * 512 < 16 * 1024 * 1024,
        "sparse file restored with {} blocks",
        md.blocks()
    );
    sh(Command::new("qemu-img").args(["check", "-q", p(&out.join("src/vm.qcow2"))]));

    // An unchanged second run stores nothing new and refers to the first.
    let again = repo.backup(&[&src]);
    assert_eq!(again["snapshot"]["new_bytes"].as_u64(), Some(0));
    assert_eq!(again["snapshot"]["parent"].as_str(), Some(id.as_str()));
    assert_eq!(
        again["snapshot"]["root_hash"],
        snap["snapshot"]["root_hash"]
    );
    let (good, report) = repo.verify(true);
    assert!(good, "{report}");
    assert_eq!(repo.snapshots().len(), 2);

    // A changed file is picked up, and `latest` restores it.
    std::fs::write(src.join("dir04/nested/file010.txt"), b"changed").unwrap();
    let third = repo.backup(&[&src]);
    assert_ne!(
        third["snapshot"]["root_hash"],
        snap["snapshot"]["root_hash"]
    );
    let out2 = s.path("out2");
    repo.restore("latest", &out2);
    assert_eq!(
        std::fs::read(out2.join("src/dir04/nested/file010.txt")).unwrap(),
        b"changed"
    );
}

/// Flips one byte of `file` at `at` (from the end when negative).
fn flip(file: &Path, at: i64) {
    let mut b = std::fs::read(file).unwrap();
    let i = if at < 0 {
        (b.len() as i64 + at) as usize
    } else {
        at as usize
    };
    b[i] ^= 0x40;
    let mut perms = std::fs::metadata(file).unwrap().permissions();
    perms.set_mode(0o600);
    std::fs::set_permissions(file, perms).unwrap();
    std::fs::write(file, b).unwrap();
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(files_under(&e));
        } else {
            out.push(e);
        }
    }
    out.sort();
    out
}

#[test]
fn one_flipped_byte_in_any_pack_or_index_fails_read_data_and_names_the_files() {
    let s = Scratch::new("flip");
    let src = s.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..6 {
        std::fs::write(
            src.join(format!("sub/data{i}.bin")),
            noise(100 + i, 3 * 1024 * 1024 + i as usize),
        )
        .unwrap();
    }
    std::fs::write(src.join("small.txt"), b"small file").unwrap();
    let repo = Repo::init(&s);
    let snap = repo.backup(&[&src]);
    let short = &snap["snapshot"]["short_id"].as_str().unwrap().to_string();
    let (good, _) = repo.verify(true);
    assert!(good);
    let pristine = s.path("pristine");
    sh(Command::new("cp").args(["-a", p(&repo.dir), p(&pristine)]));
    let mut targets: Vec<(PathBuf, i64)> = Vec::new();
    for pack in files_under(&repo.dir.join("data")) {
        let len = std::fs::metadata(&pack).unwrap().len() as i64;
        for at in [20, len / 3, len / 2, (2 * len) / 3, -30, -2] {
            targets.push((pack.strip_prefix(&repo.dir).unwrap().to_path_buf(), at));
        }
    }
    for index in files_under(&repo.dir.join("index")) {
        for at in [0, 40, -1] {
            targets.push((index.strip_prefix(&repo.dir).unwrap().to_path_buf(), at));
        }
    }
    assert!(targets.len() >= 9);
    for (rel, at) in targets {
        sh(Command::new("rm").args(["-rf", p(&repo.dir)]));
        sh(Command::new("cp").args(["-a", p(&pristine), p(&repo.dir)]));
        flip(&repo.dir.join(&rel), at);
        let (good, report) = repo.verify(true);
        assert!(
            !good,
            "flipping {} at {at} went unnoticed: {report}",
            rel.display()
        );
        let affected: Vec<&str> = report["affected_files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            !affected.is_empty(),
            "flipping {} at {at}: no file named: {report}",
            rel.display()
        );
        for a in &affected {
            let path = a
                .strip_prefix(&format!("{short}:"))
                .unwrap_or_else(|| panic!("{a} is not of snapshot {short}"));
            assert!(
                path == "/"
                    || src
                        .parent()
                        .unwrap()
                        .join(path.trim_end_matches('/'))
                        .exists(),
                "{a} names no backed-up path"
            );
        }
        // The human output names them too, and the exit status says it failed.
        let mut a = repo.args("verify");
        a.push("--read-data");
        let o = run(&a);
        let err = fails(&o);
        assert!(
            err.lines()
                .last()
                .unwrap()
                .starts_with("error: verification failed"),
            "{err}"
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(affected[0].split_once(':').unwrap().1)
        );
    }
}

#[test]
fn a_killed_backup_leaves_a_consistent_repository_and_the_next_run_completes() {
    let s = Scratch::new("kill");
    let src = s.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..8u64 {
        std::fs::write(
            src.join(format!("big{i}.bin")),
            noise(1000 + i, 40 * 1024 * 1024),
        )
        .unwrap();
    }
    let repo = Repo::init(&s);
    let mut a = repo.args("run");
    a.extend(["--operator-key", p(&repo.key), p(&src)]);
    let mut child = backup_cmd(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some data is indexed, then kill it mid-run.
    let start = Instant::now();
    loop {
        let indexed = std::fs::read_dir(repo.dir.join("index"))
            .unwrap()
            .filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            })
            .count();
        if indexed > 0 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no index file after 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(repo.snapshots().is_empty());
    // The stale lock of the dead process does not block, and the repository checks out.
    let mut c = repo.args("check");
    c.push("--read-data");
    ok(&run(&c));
    let done = repo.backup(&[&src]);
    let new = done["snapshot"]["new_bytes"].as_u64().unwrap();
    assert!(
        new < 320 * 1024 * 1024,
        "the second run stored everything again ({new} bytes)"
    );
    let (good, report) = repo.verify(true);
    assert!(good, "{report}");
    let out = s.path("out");
    repo.restore("latest", &out);
    assert_same_tree(&src, &out.join("src"));
    // prune removes what the killed run left unreferenced.
    let mut pr = repo.args("prune");
    pr.extend(["--keep-last", "1", "--json"]);
    ok(&run(&pr));
    let (good, report) = repo.verify(true);
    assert!(good, "{report}");
    assert!(report["notes"].as_array().unwrap().is_empty(), "{report}");
}

#[test]
fn two_concurrent_backups_into_one_repository() {
    let s = Scratch::new("concurrent");
    let a_dir = s.path("a");
    let b_dir = s.path("b");
    for (d, seed) in [(&a_dir, 1u64), (&b_dir, 2)] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("own.bin"), noise(seed, 20 * 1024 * 1024)).unwrap();
        std::fs::write(d.join("shared.bin"), noise(99, 10 * 1024 * 1024)).unwrap();
    }
    let repo = Repo::init(&s);
    let children: Vec<_> = [&a_dir, &b_dir]
        .iter()
        .map(|d| {
            let mut a = repo.args("run");
            a.extend(["--operator-key", p(&repo.key), "--json", p(d)]);
            backup_cmd(&a)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        ok(&c.wait_with_output().unwrap());
    }
    assert_eq!(repo.snapshots().len(), 2);
    let (good, report) = repo.verify(true);
    assert!(good, "{report}");
    for (snap, dir) in repo.snapshots().iter().zip([0, 1]) {
        let out = s.path(&format!("out{dir}"));
        let id = snap["id"].as_str().unwrap();
        repo.restore(id, &out);
        let name = Path::new(snap["paths"][0].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_owned();
        assert_same_tree(&s.0.join(&name), &out.join(&name));
    }
}

#[test]
fn wrong_password_and_missing_password_are_clear_errors() {
    let s = Scratch::new("password");
    let repo = Repo::init(&s);
    let bad = s.path("bad");
    std::fs::write(&bad, "not the password\n").unwrap();
    let err = fails(&run(&[
        "snapshots",
        "--repo",
        p(&repo.dir),
        "--password-file",
        p(&bad),
    ]));
    assert_eq!(
        err.trim(),
        "error: wrong password: no key of the repository opens with it"
    );
    let err = fails(&run(&["snapshots", "--repo", p(&repo.dir)]));
    assert!(err.contains("no repository password"), "{err}");
    let o = backup_cmd(&["snapshots", "--repo", p(&repo.dir)])
        .env("PARAPET_BACKUP_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    ok(&o);
    let err = fails(&run(&[
        "snapshots",
        "--repo",
        p(&s.path("nowhere")),
        "--password-file",
        p(&bad),
    ]));
    assert!(err.contains("not a Parapet backup repository"), "{err}");
    let err = fails(&run(&[
        "init",
        "--repo",
        p(&repo.dir),
        "--password-file",
        p(&bad),
        "--operator-key",
        p(&repo.key),
    ]));
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn a_snapshot_signed_by_an_unknown_operator_key_is_refused() {
    let s = Scratch::new("operator");
    let src = s.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"data").unwrap();
    let repo = Repo::init(&s);
    repo.backup(&[&src]);
    let rogue = s.path("rogue.key");
    let rogue_pub = ok(&run(&["keygen", "--out", p(&rogue)])).trim().to_string();
    assert!(rogue_pub.starts_with("ed25519:"));
    let mut a = repo.args("run");
    a.extend(["--operator-key", p(&rogue), "--json", p(&src)]);
    let v: Value = serde_json::from_str(&ok(&run(&a))).unwrap();
    let rogue_snap = v["snapshot"]["id"].as_str().unwrap().to_string();
    let (good, report) = repo.verify(false);
    assert!(!good);
    let text = report.to_string();
    assert!(
        text.contains("not a trusted operator key") && text.contains(&rogue_pub),
        "{report}"
    );
    let mut r = repo.args("restore");
    let out = s.path("out");
    r.extend([&rogue_snap[..12], "--target", p(&out)]);
    let err = fails(&run(&r));
    assert!(err.contains("not a trusted operator key"), "{err}");
    assert!(!s.path("out").join("src").exists());
    // Trusting the key (by the repository's owner) makes it acceptable.
    let mut t = repo.args("trust");
    t.push(&rogue_pub);
    ok(&run(&t));
    assert!(repo.verify(true).0);
    // A forged signature (manifest changed after signing) is refused even from a trusted key:
    // covered by the engine's unit tests; here a garbage key is refused outright.
    let mut t = repo.args("trust");
    t.push("ed25519:AAAA");
    assert!(fails(&run(&t)).contains("not an operator public key"));
}

#[test]
fn prune_keeps_what_the_policy_says_and_frees_space() {
    let s = Scratch::new("prune");
    let src = s.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let repo = Repo::init(&s);
    for i in 0..4u64 {
        std::fs::write(
            src.join(format!("gen{i}.bin")),
            noise(500 + i, 4 * 1024 * 1024),
        )
        .unwrap();
        if i > 0 {
            std::fs::remove_file(src.join(format!("gen{}.bin", i - 1))).unwrap();
        }
        repo.backup(&[&src]);
    }
    let size_before: u64 = files_under(&repo.dir.join("data"))
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    let err = fails(&run(&repo.args("prune")));
    assert!(err.contains("give a retention policy"), "{err}");
    let mut a = repo.args("prune");
    a.extend(["--keep-last", "2", "--dry-run", "--json"]);
    let dry: Value = serde_json::from_str(&ok(&run(&a))).unwrap();
    assert_eq!(dry["removed"].as_array().unwrap().len(), 2);
    assert_eq!(repo.snapshots().len(), 4);
    let mut a = repo.args("prune");
    a.extend(["--keep-last", "2", "--json"]);
    let done: Value = serde_json::from_str(&ok(&run(&a))).unwrap();
    assert_eq!(done["kept"].as_array().unwrap().len(), 2);
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 2);
    let size_after: u64 = files_under(&repo.dir.join("data"))
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(
        size_after < size_before - 6 * 1024 * 1024,
        "{size_before} -> {size_after}"
    );
    let (good, report) = repo.verify(true);
    assert!(good, "{report}");
    let out = s.path("out");
    repo.restore("latest", &out);
    assert_same_tree(&src, &out.join("src"));
    let out = s.path("older");
    repo.restore(snaps[0]["id"].as_str().unwrap(), &out);
    assert!(out.join("src/gen2.bin").exists());
}

#[test]
fn backup_help_and_bad_input() {
    let o = Command::new(bin())
        .args(["backup", "--help"])
        .output()
        .unwrap();
    let help = ok(&o);
    for c in [
        "init",
        "run",
        "snapshots",
        "restore",
        "verify",
        "prune",
        "check",
        "copy",
    ] {
        assert!(help.contains(c), "{help}");
    }
    let s = Scratch::new("bad");
    let repo = Repo::init(&s);
    let mut a = repo.args("run");
    let missing = s.path("missing");
    a.extend(["--operator-key", p(&repo.key), p(&missing)]);
    let err = fails(&run(&a));
    assert!(
        err.starts_with("error: ") && err.contains("missing"),
        "{err}"
    );
    let mut r = repo.args("restore");
    let out = s.path("out");
    r.extend(["ffffffff", "--target", p(&out)]);
    assert!(fails(&run(&r)).contains("no snapshot matches"));
    let err = fails(&run(&[
        "snapshots",
        "--repo",
        "ftp://host/x",
        "--password-file",
        p(&repo.pwfile),
    ]));
    assert!(err.contains("s3://bucket/prefix"), "{err}");
    let mut a = repo.args("snapshots");
    a.extend(["--limit-upload", "0"]);
    let err = fails(&run(&a));
    assert!(err.contains("at least 1 KiB/s"), "{err}");
    // A limited repository works the same (the pacing itself is unit-tested with a test clock).
    let mut a = repo.args("snapshots");
    a.extend(["--limit-download", "100000", "--json"]);
    ok(&run(&a));
    let mut f = std::fs::File::create(s.path("notakey")).unwrap();
    f.write_all(b"garbage").unwrap();
    let mut a = repo.args("run");
    let notakey = s.path("notakey");
    a.extend(["--operator-key", p(&notakey), p(&s.0)]);
    assert!(fails(&run(&a)).contains("not a Parapet backup operator key"));
}

/// `verify --against PATH` compares a snapshot with the live source by hash: identical right
/// after the backup (sparse holes, hard links and all), and every kind of later change named.
#[test]
fn verify_against_the_live_source_names_every_difference() {
    let s = Scratch::new("against");
    let src = s.path("src");
    std::fs::create_dir_all(src.join("etc/conf.d")).unwrap();
    std::fs::write(src.join("etc/app.conf"), noise(1, 50_000)).unwrap();
    std::fs::write(src.join("etc/conf.d/same-size"), noise(2, 9_000)).unwrap();
    std::fs::write(src.join("etc/mode"), b"mode").unwrap();
    std::fs::write(src.join("gone"), b"bye").unwrap();
    std::fs::write(src.join("big.bin"), noise(3, 20 * 1024 * 1024)).unwrap();
    std::os::unix::fs::symlink("etc/app.conf", src.join("link")).unwrap();
    // A sparse disk image: holes in the snapshot, later written out as real zeros.
    let disk = src.join("disk.raw");
    let f = std::fs::File::create(&disk).unwrap();
    f.set_len(64 * 1024 * 1024).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&noise(4, 100_000), 10 * 1024 * 1024)
        .unwrap();
    drop(f);
    let repo = Repo::init(&s);
    repo.backup(&[&src]);

    let against = |extra: &[&str]| {
        let mut a = repo.args("verify");
        a.extend(["--json", "--against", p(&src)]);
        a.extend(extra);
        run(&a)
    };
    let o = against(&[]);
    let v: Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(v["differences"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["files"].as_u64(), Some(6));
    assert!(v["bytes_hashed"].as_u64().unwrap() >= 20 * 1024 * 1024);

    // Same bytes, no longer sparse: still identical (decided by reading the snapshot's chunks).
    let bytes = std::fs::read(&disk).unwrap();
    let mtime = std::fs::metadata(&disk).unwrap().modified().unwrap();
    std::fs::remove_file(&disk).unwrap();
    std::fs::write(&disk, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&disk)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert!(std::fs::metadata(&disk).unwrap().blocks() * 512 >= 60 * 1024 * 1024);
    let v: Value = serde_json::from_str(&ok(&against(&[]))).unwrap();
    assert_eq!(v["differences"].as_array().unwrap().len(), 0, "{v}");
    assert!(v["bytes_read"].as_u64().unwrap() > 0, "{v}");

    // Now change things in every way.
    let mut same_size = std::fs::read(src.join("etc/conf.d/same-size")).unwrap();
    same_size[4321] ^= 1;
    let keep = std::fs::metadata(src.join("etc/conf.d/same-size"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::write(src.join("etc/conf.d/same-size"), &same_size).unwrap();
    std::fs::File::options()
        .write(true)
        .open(src.join("etc/conf.d/same-size"))
        .unwrap()
        .set_modified(keep)
        .unwrap();
    std::fs::set_permissions(src.join("etc/mode"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(src.join("gone")).unwrap();
    std::fs::write(src.join("etc/new"), b"new").unwrap();
    std::fs::remove_file(src.join("link")).unwrap();
    std::os::unix::fs::symlink("elsewhere", src.join("link")).unwrap();
    let o = against(&[]);
    let err = fails(&o);
    assert!(err.contains("differs from snapshot"), "{err}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut found: Vec<(String, String)> = v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let path = d["path"].as_str().unwrap();
            let rel = path.strip_prefix(p(&src)).unwrap().to_string();
            (rel, d["kind"].as_str().unwrap().to_string())
        })
        .collect();
    found.sort();
    let expected: Vec<(String, String)> = [
        ("/etc/conf.d/same-size", "content"),
        ("/etc/mode", "metadata"),
        ("/etc/new", "added"),
        ("/gone", "missing"),
        ("/link", "target"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(found, expected, "{v}");

    // The text form names each too; a path the snapshot was not taken of is a clear error.
    let mut a = repo.args("verify");
    a.extend(["--against", p(&src)]);
    let o = run(&a);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!o.status.success());
    assert!(
        text.contains("content: ") && text.contains("same-size"),
        "{text}"
    );
    let mut a = repo.args("verify");
    let other = s.path("other");
    std::fs::create_dir_all(&other).unwrap();
    a.extend(["--against", p(&other)]);
    let err = fails(&run(&a));
    assert!(err.contains("was not taken of"), "{err}");
}

/// The off-site side (X.1642 8.10 "on-site and off-site"): a repository on an S3 server (moto)
/// backs up, verifies and restores like a local one; `copy` keeps an off-site copy of an
/// on-site repository without the password, incrementally; damage in the bucket is found.
#[test]
fn s3_repositories_and_copies_between_sites() {
    let s3 = common::moto();
    let python = common::test_python();
    let boto = |code: &str, args: &[&str]| -> String {
        let script = format!(
            "import boto3, sys\ns3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='AKIDEXAMPLE', aws_secret_access_key='moto-secret')\n{code}"
        );
        let o = Command::new(&python)
            .arg("-c")
            .arg(script)
            .arg(&s3.url)
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    boto("s3.create_bucket(Bucket='offsite')", &[]);
    let with_s3 = |c: &mut Command| {
        c.env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "moto-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &s3.url);
    };
    let run_s3 = |args: &[&str]| {
        let mut c = backup_cmd(args);
        with_s3(&mut c);
        c.output().unwrap()
    };

    let s = Scratch::new("s3");
    let src = s.path("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/a.conf"), noise(11, 70_000)).unwrap();
    std::fs::write(src.join("image.raw"), noise(12, 40 * 1024 * 1024)).unwrap();
    std::os::unix::fs::symlink("etc/a.conf", src.join("link")).unwrap();
    let pwfile = s.path("password");
    std::fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
    let key = s.path("operator.key");

    // A repository directly on S3.
    let url = "s3://offsite/direct";
    let common_args = |cmd: &'static str| -> Vec<String> {
        vec![
            cmd.into(),
            "--repo".into(),
            url.into(),
            "--password-file".into(),
            p(&pwfile).into(),
        ]
    };
    let call = |mut a: Vec<String>, extra: &[&str]| {
        a.extend(extra.iter().map(|x| x.to_string()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        run_s3(&refs)
    };
    ok(&call(common_args("init"), &["--operator-key", p(&key)]));
    let snap: Value = serde_json::from_str(&ok(&call(
        common_args("run"),
        &["--operator-key", p(&key), "--json", p(&src)],
    )))
    .unwrap();
    assert_eq!(snap["snapshot"]["files"].as_u64(), Some(2), "{snap}");
    ok(&call(common_args("verify"), &["--read-data"]));
    let out = s.path("restored");
    ok(&call(
        common_args("restore"),
        &["latest", "--target", p(&out)],
    ));
    assert_same_tree(&src, &out.join("src"));
    let keys = boto(
        "print('\\n'.join(o['Key'] for o in s3.list_objects_v2(Bucket='offsite', Prefix='direct/')['Contents']))",
        &[],
    );
    assert!(
        keys.lines().any(|k| k.starts_with("direct/data/")),
        "{keys}"
    );
    assert!(keys.lines().any(|k| k == "direct/config"), "{keys}");
    // The bucket never sees a plaintext name or content.
    assert!(
        !keys.contains("a.conf") && !keys.contains("image"),
        "{keys}"
    );

    // An on-site repository copied off-site, without its password; then incrementally.
    let repo = Repo::init(&s);
    repo.backup(&[&src]);
    let copy = |to: &str| {
        let mut c = backup_cmd(&["copy", "--repo", p(&repo.dir), "--to", to, "--json"]);
        with_s3(&mut c);
        let o = c.output().unwrap();
        serde_json::from_str::<Value>(&ok(&o)).unwrap()
    };
    let first = copy("s3://offsite/copy");
    assert!(first["files_copied"].as_u64().unwrap() >= 5, "{first}");
    std::fs::write(src.join("etc/new.conf"), b"added later").unwrap();
    repo.backup(&[&src]);
    let second = copy("s3://offsite/copy");
    assert!(
        second["files_present"].as_u64().unwrap() >= first["files_copied"].as_u64().unwrap() - 2,
        "{second}"
    );
    assert!(
        second["bytes_copied"].as_u64().unwrap() < 1024 * 1024,
        "{second}"
    );
    let copied = "s3://offsite/copy";
    let o = run_s3(&[
        "snapshots",
        "--repo",
        copied,
        "--password-file",
        p(&pwfile),
        "--json",
    ]);
    let snaps: Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    let back = s.path("from-offsite");
    ok(&run_s3(&[
        "restore",
        "--repo",
        copied,
        "--password-file",
        p(&pwfile),
        "latest",
        "--target",
        p(&back),
    ]));
    assert_same_tree(&src, &back.join("src"));
    // Copying into a different repository is refused.
    let mut c = backup_cmd(&["copy", "--repo", p(&repo.dir), "--to", url]);
    with_s3(&mut c);
    let err = fails(&c.output().unwrap());
    assert!(err.contains("another repository"), "{err}");

    // One flipped byte in a pack in the bucket: verify --read-data names it.
    let pack = keys
        .lines()
        .find(|k| k.starts_with("direct/data/"))
        .unwrap()
        .to_string();
    boto(
        "b = bytearray(s3.get_object(Bucket='offsite', Key=sys.argv[2])['Body'].read()); b[100] ^= 1; s3.put_object(Bucket='offsite', Key=sys.argv[2], Body=bytes(b))",
        &[&pack],
    );
    let o = call(common_args("verify"), &["--read-data", "--json"]);
    assert!(!o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let pack_id = pack.rsplit('/').next().unwrap();
    assert!(v.to_string().contains(&pack_id[..12]), "{v}");
    // A bucket that does not exist is a clear one-line error.
    let err = fails(&run_s3(&[
        "snapshots",
        "--repo",
        "s3://no-such-bucket/x",
        "--password-file",
        p(&pwfile),
    ]));
    assert!(
        err.contains("remote storage") || err.contains("no config"),
        "{err}"
    );
}
