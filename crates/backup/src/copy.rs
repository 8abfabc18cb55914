//! `backup copy`: keeps an off-site copy of a repository (or an on-site copy of an off-site
//! one). The copy is the same repository — same keys, same ids — so it needs no password: only
//! ciphertext moves, and each content-addressed file is checked against its name before it is
//! written. Only files missing at the destination are copied, packs first, then indexes, then
//! snapshots, so a reader of the destination never sees a snapshot whose data is not there yet.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::Backend;
use crate::repo::{Config, hash_name};
use crate::{Error, Progress, Result};

#[derive(Debug, Default, Serialize)]
pub struct CopyReport {
    pub from: String,
    pub to: String,
    pub files_copied: u64,
    pub bytes_copied: u64,
    /// Files already at the destination.
    pub files_present: u64,
}

/// Copies what `to` lacks of the repository at `from`.
pub fn copy(from: &dyn Backend, to: &dyn Backend, progress: &dyn Progress) -> Result<CopyReport> {
    let src_cfg = read_config(from)?
        .ok_or_else(|| Error::NotARepository(format!("{} has no config file", from.location())))?;
    match read_config(to)? {
        Some(c) if c.id != src_cfg.id => {
            return Err(Error::Invalid(format!(
                "{} holds another repository ({}), not a copy of {} ({})",
                to.location(),
                c.id,
                from.location(),
                src_cfg.id
            )));
        }
        Some(_) => {}
        None if !to.is_empty()? => {
            return Err(Error::Invalid(format!(
                "{} exists, is not empty and is not a copy of this repository",
                to.location()
            )));
        }
        None => to.create()?,
    }
    let mut report = CopyReport {
        from: from.location(),
        to: to.location(),
        ..CopyReport::default()
    };
    // Everything to copy, in the order that keeps the destination consistent.
    let mut plan: Vec<Vec<String>> = Vec::new();
    for dir in ["keys", "data", "index", "snapshots"] {
        let have: std::collections::HashSet<String> = to.list(dir)?.into_iter().collect();
        let all = from.list(dir)?;
        let (present, missing): (Vec<String>, Vec<String>) =
            all.into_iter().partition(|n| have.contains(n));
        report.files_present += present.len() as u64;
        plan.push(missing);
    }
    let mut total = 0u64;
    for n in plan.iter().flatten() {
        total += from.size(n)?.unwrap_or(0);
    }
    progress.total(total);
    let copied = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    for stage in &plan {
        stage.par_iter().try_for_each(|name| -> Result<()> {
            let Some(data) = from.read(name)? else {
                return Ok(()); // removed meanwhile (a prune at the source)
            };
            let base = name.rsplit('/').next().unwrap_or(name);
            if hash_name(&data) != base {
                return Err(Error::corrupt(
                    format!("{name} at {}", from.location()),
                    "its contents do not match its name: not copied",
                ));
            }
            to.write(name, &data, true)?;
            copied.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            progress.advance(data.len() as u64);
            Ok(())
        })?;
    }
    // The mutable files last: the trusted operators, then the config.
    for name in ["operators", "config"] {
        let data = from
            .read(name)?
            .ok_or_else(|| Error::corrupt(format!("{name} at {}", from.location()), "missing"))?;
        if to.read(name)?.as_deref() != Some(data.as_slice()) {
            to.write(name, &data, true)?;
            copied.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }
    report.files_copied = copied.into_inner();
    report.bytes_copied = bytes.into_inner();
    Ok(report)
}

fn read_config(b: &dyn Backend) -> Result<Option<Config>> {
    match b.read("config")? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::corrupt(format!("config at {}", b.location()), e.to_string())),
        None => Ok(None),
    }
}
