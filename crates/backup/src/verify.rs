//! `backup verify` and `backup check`: signatures, structure, and with `read_data` every byte.
//!
//! Problems are collected, not stopped at: the report names every damaged file (pack, index or
//! snapshot) and every backed-up file whose data is affected, per snapshot.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::crypto::BlobId;
use crate::repo::{LockKind, Repository, short};
use crate::save::load_tree;
use crate::tree::{NodeKind, Piece};
use crate::{Progress, Result};

#[derive(Debug, Default)]
pub struct VerifyOptions {
    /// Re-read and re-hash every blob of every pack.
    pub read_data: bool,
    /// Check operator signatures (`verify`; `check` looks at structure only).
    pub signatures: bool,
    /// Operator keys trusted in addition to the repository's list.
    pub extra_trusted: Vec<String>,
}

/// One thing found wrong.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    /// What is damaged: `pack ID`, `index file ID`, `snapshot ID`, `file SNAPSHOT:PATH`, …
    pub what: String,
    pub detail: String,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub snapshots: usize,
    pub packs: usize,
    pub blobs: usize,
    pub bytes_read: u64,
    pub problems: Vec<Problem>,
    /// Files of snapshots whose data is damaged or missing: `SNAPSHOT:PATH`.
    pub affected_files: Vec<String>,
    /// Things that are not errors, e.g. packs left by an interrupted run.
    pub notes: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub fn verify(
    repo: &Repository,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let _lock = repo.lock(LockKind::Shared)?;
    let mut report = VerifyReport::default();
    for (name, why) in &repo.index_problems {
        report.problems.push(Problem {
            what: format!("index file {name}"),
            detail: why.clone(),
        });
    }
    let (snaps, bad_snaps) = repo.snapshots()?;
    for (name, why) in bad_snaps {
        report.problems.push(Problem {
            what: format!("snapshot {}", short(&name)),
            detail: why,
        });
    }
    report.snapshots = snaps.len();
    if opts.signatures {
        let mut trusted = repo.trusted_operators()?;
        trusted.extend(opts.extra_trusted.iter().cloned());
        for s in &snaps {
            if let Err(e) = s.check_signature(&trusted) {
                report.problems.push(Problem {
                    what: format!("snapshot {}", short(&s.id)),
                    detail: e.to_string(),
                });
            }
        }
    }

    // Packs: indexed ones must exist; unindexed ones are leftovers of interrupted runs.
    let on_disk: HashSet<String> = repo.list_packs()?.into_iter().collect();
    let indexed: HashSet<&str> = repo.index.packs.iter().map(String::as_str).collect();
    report.packs = indexed.len();
    report.blobs = repo.index.blobs.len();
    let mut bad_blobs: HashMap<BlobId, String> = HashMap::new();
    let mut missing_packs = HashSet::new();
    for (n, id) in repo.index.packs.iter().enumerate() {
        if !on_disk.contains(id) {
            report.problems.push(Problem {
                what: format!("pack {id}"),
                detail: "listed in the index but missing".into(),
            });
            missing_packs.insert(n as u32);
        }
    }
    let unindexed: Vec<&String> = on_disk
        .iter()
        .filter(|p| !indexed.contains(p.as_str()))
        .collect();
    if !unindexed.is_empty() {
        report.notes.push(format!(
            "{} pack(s) not in any index (left by an interrupted run; `prune` removes them)",
            unindexed.len()
        ));
    }
    for (id, loc) in &repo.index.blobs {
        if missing_packs.contains(&loc.pack) {
            bad_blobs.insert(*id, "its pack is missing".into());
        }
    }

    if opts.read_data {
        // Blobs of each pack, from the index.
        let mut by_pack: HashMap<u32, Vec<(BlobId, crate::repo::Loc)>> = HashMap::new();
        for (id, loc) in &repo.index.blobs {
            by_pack.entry(loc.pack).or_default().push((*id, *loc));
        }
        let total: u64 = repo
            .index
            .packs
            .iter()
            .filter(|p| on_disk.contains(*p))
            .filter_map(|p| repo.pack_size(p).ok().flatten())
            .sum();
        progress.total(total);
        let problems = Mutex::new(Vec::new());
        let bad = Mutex::new(Vec::new());
        let bytes_read: u64 = by_pack
            .par_iter()
            .filter(|(n, _)| !missing_packs.contains(n))
            .map(|(n, blobs)| {
                let id = repo.index.pack_id(*n).unwrap_or_default();
                let mut local_bad = Vec::new();
                let mut local_problems = Vec::new();
                let bytes = match repo.read_pack(id) {
                    Ok(b) => b,
                    Err(e) => {
                        local_problems.push(Problem {
                            what: format!("pack {id}"),
                            detail: format!("cannot read: {e}"),
                        });
                        for (b, _) in blobs {
                            local_bad.push((*b, format!("pack {} unreadable", short(id))));
                        }
                        push(&problems, local_problems);
                        push(&bad, local_bad);
                        return 0;
                    }
                };
                let n_read = bytes.len() as u64;
                let hash_ok = crate::repo::hash_name(&bytes) == id;
                if !hash_ok {
                    local_problems.push(Problem {
                        what: format!("pack {id}"),
                        detail: "its contents do not match its name (the file was altered)".into(),
                    });
                }
                match repo.read_pack_header(id, &bytes) {
                    Ok(header) => {
                        let listed: HashSet<String> = header.iter().map(|e| e.id.clone()).collect();
                        for (b, _) in blobs {
                            if !listed.contains(&b.to_hex()) {
                                local_bad.push((*b, format!("not listed in pack {}", short(id))));
                            }
                        }
                    }
                    Err(e) => local_problems.push(Problem {
                        what: format!("pack {id}"),
                        detail: e.to_string(),
                    }),
                }
                for (b, loc) in blobs {
                    let start = loc.offset as usize;
                    let end = start + loc.length as usize;
                    let r = match bytes.get(start..end) {
                        Some(sealed) => repo.decode_blob(b, sealed, loc.raw_len).map(|_| ()),
                        None => Err(crate::Error::corrupt("blob", "beyond the end of its pack")),
                    };
                    match r {
                        Ok(()) if hash_ok => {}
                        Ok(()) => local_bad.push((*b, format!("in altered pack {}", short(id)))),
                        Err(e) => {
                            local_problems.push(Problem {
                                what: format!("blob {} in pack {}", short(&b.to_hex()), short(id)),
                                detail: e.to_string(),
                            });
                            local_bad.push((*b, format!("damaged in pack {}", short(id))));
                        }
                    }
                }
                progress.advance(n_read);
                push(&problems, local_problems);
                push(&bad, local_bad);
                n_read
            })
            .sum();
        report.bytes_read = bytes_read;
        report
            .problems
            .extend(problems.into_inner().unwrap_or_default());
        for (b, why) in bad.into_inner().unwrap_or_default() {
            bad_blobs.entry(b).or_insert(why);
        }
    }

    // With a damaged index file, find the blobs it listed in the packs no index lists, so the
    // files they belong to can still be named.
    let mut recovered: HashMap<BlobId, (String, crate::repo::PackEntry)> = HashMap::new();
    if !repo.index_problems.is_empty() {
        for p in &unindexed {
            let Ok(bytes) = repo.read_pack(p) else {
                continue;
            };
            if let Ok(header) = repo.read_pack_header(p, &bytes) {
                for e in header {
                    if let Ok(b) = BlobId::parse(&e.id) {
                        recovered.insert(b, ((*p).clone(), e));
                    }
                }
            }
        }
    }
    // Walk every snapshot: every referenced blob must be indexed and sound.
    let mut walker = Walker {
        repo,
        bad: &bad_blobs,
        recovered: &recovered,
        memo: HashMap::new(),
    };
    let mut affected = BTreeSet::new();
    let missing_index = !repo.index_problems.is_empty();
    for s in &snaps {
        let found = walker.tree_problems(&s.manifest.root);
        for (path, why) in found.iter() {
            let path = if path.is_empty() { "/" } else { path.as_str() };
            affected.insert(format!("{}:{path}", short(&s.id)));
            report.problems.push(Problem {
                what: format!("file {}:{path}", short(&s.id)),
                detail: if missing_index && why.contains("not in any index") {
                    format!("{why} (an index file is damaged)")
                } else {
                    why.clone()
                },
            });
        }
    }
    report.affected_files = affected.into_iter().collect();
    Ok(report)
}

fn push<T>(m: &Mutex<Vec<T>>, items: Vec<T>) {
    if let Ok(mut v) = m.lock() {
        v.extend(items);
    }
}

struct Walker<'a> {
    repo: &'a Repository,
    bad: &'a HashMap<BlobId, String>,
    recovered: &'a HashMap<BlobId, (String, crate::repo::PackEntry)>,
    /// Tree id → problems below it (relative paths), so shared subtrees are walked once.
    memo: HashMap<String, std::sync::Arc<Vec<(String, String)>>>,
}

impl Walker<'_> {
    fn tree_problems(&mut self, id: &str) -> std::sync::Arc<Vec<(String, String)>> {
        if let Some(r) = self.memo.get(id) {
            return r.clone();
        }
        let mut out = Vec::new();
        let mut indexless = false;
        let tree = BlobId::parse(id).and_then(|b| {
            if let Some(why) = self.bad.get(&b) {
                return Err(crate::Error::corrupt("tree", why.clone()));
            }
            if !self.repo.index.blobs.contains_key(&b)
                && let Some((pack, e)) = self.recovered.get(&b)
            {
                // Readable from its pack, but its index entry is lost.
                indexless = true;
                let bytes = self.repo.read_pack(pack)?;
                let sealed = bytes
                    .get(e.o as usize..(e.o + e.l) as usize)
                    .ok_or_else(|| crate::Error::corrupt("tree", "beyond its pack"))?;
                let plain = self.repo.decode_blob(&b, sealed, e.r)?;
                return serde_json::from_slice(&plain)
                    .map_err(|e| crate::Error::corrupt("tree", e.to_string()));
            }
            load_tree(self.repo, &b)
        });
        if indexless {
            out.push((
                String::new(),
                "directory listing not in any index (an index file is damaged)".into(),
            ));
        }
        match tree {
            Err(e) => out.push((String::new(), format!("directory listing unreadable: {e}"))),
            Ok(tree) => {
                for node in &tree.nodes {
                    let name = node.os_name().to_string_lossy().into_owned();
                    match node.kind {
                        NodeKind::Dir => {
                            let sub = match node.subtree.as_deref() {
                                Some(s) => self.tree_problems(s),
                                None => {
                                    std::sync::Arc::new(vec![(String::new(), "no subtree".into())])
                                }
                            };
                            for (p, why) in sub.iter() {
                                let path = if p.is_empty() {
                                    format!("{name}/")
                                } else {
                                    format!("{name}/{p}")
                                };
                                out.push((path, why.clone()));
                            }
                        }
                        NodeKind::File => {
                            let mut why = None;
                            for piece in node.content.as_deref().unwrap_or(&[]) {
                                if let Piece::Chunk(c) = piece {
                                    match BlobId::parse(c) {
                                        Ok(b) => {
                                            if let Some(w) = self.bad.get(&b) {
                                                why = Some(format!("chunk {}: {w}", short(c)));
                                                break;
                                            }
                                            if !self.repo.index.blobs.contains_key(&b) {
                                                why = Some(match self.recovered.get(&b) {
                                                    Some((p, _)) => format!(
                                                        "chunk {} is in pack {} but not in any index",
                                                        short(c),
                                                        short(p)
                                                    ),
                                                    None => format!(
                                                        "chunk {} is not in any index",
                                                        short(c)
                                                    ),
                                                });
                                                break;
                                            }
                                        }
                                        Err(e) => {
                                            why = Some(e.to_string());
                                            break;
                                        }
                                    }
                                }
                            }
                            if let Some(w) = why {
                                out.push((name, w));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        let r = std::sync::Arc::new(out);
        self.memo.insert(id.to_string(), r.clone());
        r
    }
}
