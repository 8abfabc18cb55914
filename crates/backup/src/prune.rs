//! `backup prune`: forgets snapshots a retention policy does not keep, then frees the space of
//! data no remaining snapshot uses (whole packs deleted, partly used packs rewritten). Takes the
//! exclusive lock; the new index is written before anything is deleted, so an interruption
//! never loses data a snapshot needs.

use std::collections::HashSet;

use crate::crypto::BlobId;
use crate::policy::{KeepPolicy, select_keep};
use crate::repo::{IndexFile, IndexPack, LockKind, PackEntry, Repository};
use crate::save::load_tree;
use crate::tree::{NodeKind, Piece};
use crate::{Error, Result};

pub struct PruneOptions {
    pub policy: KeepPolicy,
    pub dry_run: bool,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct PruneReport {
    pub kept: Vec<String>,
    pub removed: Vec<String>,
    pub packs_deleted: usize,
    pub packs_rewritten: usize,
    pub bytes_freed: u64,
}

pub fn prune(repo: &mut Repository, opts: &PruneOptions) -> Result<PruneReport> {
    if opts.policy.is_empty() {
        return Err(Error::Invalid(
            "give a retention policy (--keep-last, --keep-daily, …): prune never removes every snapshot"
                .into(),
        ));
    }
    let lock = repo.lock(LockKind::Exclusive)?;
    repo.load_index()?;
    if let Some((name, why)) = repo.index_problems.first() {
        return Err(Error::Invalid(format!(
            "index file {name} is damaged ({why}); refusing to prune"
        )));
    }
    let (snaps, _) = repo.snapshots()?;
    let times: Vec<(String, i64)> = snaps
        .iter()
        .map(|s| (s.id.clone(), s.manifest.time_ms))
        .collect();
    let keep = select_keep(&times, &opts.policy, repo.env.now().0);
    let mut report = PruneReport::default();
    for s in &snaps {
        if keep.contains_key(&s.id) {
            report.kept.push(s.id.clone());
        } else {
            report.removed.push(s.id.clone());
        }
    }
    if opts.dry_run {
        return Ok(report);
    }
    for id in &report.removed {
        repo.remove_snapshot(id)?;
    }

    // Everything the remaining snapshots use.
    let mut used: HashSet<BlobId> = HashSet::new();
    let mut stack: Vec<BlobId> = Vec::new();
    for s in snaps.iter().filter(|s| keep.contains_key(&s.id)) {
        stack.push(BlobId::parse(&s.manifest.root)?);
    }
    while let Some(t) = stack.pop() {
        if !used.insert(t) {
            continue;
        }
        let tree = load_tree(repo, &t)?;
        for n in &tree.nodes {
            match n.kind {
                NodeKind::Dir => {
                    if let Some(s) = &n.subtree {
                        stack.push(BlobId::parse(s)?);
                    }
                }
                NodeKind::File => {
                    for p in n.content.as_deref().unwrap_or(&[]) {
                        if let Piece::Chunk(c) = p {
                            used.insert(BlobId::parse(c)?);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    // Sort packs into kept, deleted and rewritten.
    let mut per_pack: Vec<(Vec<(BlobId, crate::repo::Loc)>, usize)> =
        vec![(Vec::new(), 0); repo.index.packs.len()];
    for (id, loc) in &repo.index.blobs {
        if let Some(slot) = per_pack.get_mut(loc.pack as usize) {
            slot.1 += 1;
            if used.contains(id) {
                slot.0.push((*id, *loc));
            }
        }
    }
    let mut new_index = IndexFile::default();
    let mut delete: Vec<String> = Vec::new();
    let mut rewrite_buf: Vec<u8> = Vec::new();
    let mut rewrite_entries: Vec<PackEntry> = Vec::new();
    for (n, (live, total)) in per_pack.into_iter().enumerate() {
        let Some(pack_id) = repo.index.pack_id(n as u32).map(str::to_string) else {
            continue;
        };
        let entry = |(b, l): &(BlobId, crate::repo::Loc)| PackEntry {
            id: b.to_hex(),
            t: l.kind,
            o: l.offset,
            l: l.length,
            r: l.raw_len,
        };
        if live.len() == total {
            new_index.packs.push(IndexPack {
                id: pack_id,
                blobs: live.iter().map(entry).collect(),
            });
            continue;
        }
        if !live.is_empty() {
            let bytes = repo.read_pack(&pack_id)?;
            for (b, l) in &live {
                let sealed = bytes
                    .get(l.offset as usize..(l.offset + l.length) as usize)
                    .ok_or_else(|| {
                        Error::corrupt(format!("pack {pack_id}"), "blob beyond its end")
                    })?;
                // Check before copying: prune never propagates damage.
                repo.decode_blob(b, sealed, l.raw_len)?;
                let o = u32::try_from(rewrite_buf.len())
                    .map_err(|_| Error::Invalid("pack too large".into()))?;
                rewrite_buf.extend_from_slice(sealed);
                rewrite_entries.push(PackEntry {
                    o,
                    ..entry(&(*b, *l))
                });
                if rewrite_buf.len() >= 16 * 1024 * 1024 {
                    new_index
                        .packs
                        .push(flush(repo, &mut rewrite_buf, &mut rewrite_entries)?);
                }
            }
            report.packs_rewritten += 1;
        }
        report.bytes_freed += repo.pack_size(&pack_id)?.unwrap_or(0);
        delete.push(pack_id);
    }
    if !rewrite_entries.is_empty() {
        new_index
            .packs
            .push(flush(repo, &mut rewrite_buf, &mut rewrite_entries)?);
    }
    let indexed: HashSet<String> = new_index.packs.iter().map(|p| p.id.clone()).collect();
    let new_name = repo.write_index(&new_index)?;
    for (name, _) in std::mem::take(&mut repo.index.files) {
        if name != new_name {
            repo.remove_index(&name)?;
        }
    }
    report.packs_deleted = delete.len();
    // Packs no index lists (left by interrupted runs) go too.
    for p in repo.list_packs()? {
        if !indexed.contains(&p) && !delete.contains(&p) {
            report.bytes_freed += repo.pack_size(&p)?.unwrap_or(0);
            delete.push(p);
            report.packs_deleted += 1;
        }
    }
    for p in &delete {
        repo.remove_pack(p)?;
    }
    for t in repo.list_temporary()? {
        let _ = repo.backend.remove(&t);
    }
    repo.load_index()?;
    drop(lock);
    Ok(report)
}

fn flush(repo: &Repository, buf: &mut Vec<u8>, entries: &mut Vec<PackEntry>) -> Result<IndexPack> {
    let header = repo.seal_pack_header(entries)?;
    let mut bytes = std::mem::take(buf);
    bytes.extend_from_slice(&header);
    let id = repo.write_pack(&bytes)?;
    Ok(IndexPack {
        id,
        blobs: std::mem::take(entries),
    })
}
