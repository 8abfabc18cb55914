//! `parapet audit public-key | checkpoint | export | prove | verify`: the tamper-evident log
//! from the command line. `verify` needs no server: a checkpoint, the entries and the public key
//! are enough.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parapet_audit::{
    Checkpoint, ExportError, ExportVerifier, Hash, NoteVerifier, RootBuilder, leaf_hash,
    root_from_inclusion_proof, verify_inclusion,
};
use parapet_client::EntriesQuery;
use serde::Serialize;

use super::output::{json, note, out};
use super::{CommonArgs, Session, config};

/// Export pages requested from the server.
const PAGE: u32 = 5_000;

#[derive(Debug, Clone, clap::Args)]
pub struct PublicKeyArgs {
    /// Pin the key: remember it as the log's key for `verify` and `prove` (trust on first use).
    #[arg(long)]
    pub pin: bool,
    /// With --pin: replace a different key pinned earlier (only after checking the new key out
    /// of band: a changed key is what an attacker rewriting the log would need).
    #[arg(long, requires = "pin")]
    pub replace: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckpointArgs {
    /// A past tree size instead of the latest.
    #[arg(long, value_name = "N")]
    pub size: Option<u64>,
    /// Check the signature with this key (a key or a file holding it) instead of the pinned one.
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// First log index (inclusive).
    #[arg(long, value_name = "N")]
    pub from: Option<u64>,
    /// Last log index (exclusive).
    #[arg(long, value_name = "M")]
    pub to: Option<u64>,
    /// A tenant within your audit scope (your own by default; provider staff see every record
    /// under the provider tenant).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Write the entries here instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also save the signed checkpoint the export is cut at.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Also save each record's inclusion proof (one JSON line per entry), for `verify --proofs`:
    /// what a tenant's export needs, since it holds only some of the log's records.
    #[arg(long, value_name = "FILE")]
    pub proofs: Option<PathBuf>,
    /// Also save the log's leaf hashes up to the checkpoint (32 bytes each), for
    /// `verify --leaf-hashes`: names the exact record that differs in a whole-log export.
    #[arg(long, value_name = "FILE", conflicts_with = "proofs")]
    pub leaf_hashes: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ProveArgs {
    /// Log index of the record.
    #[arg(long, value_name = "N")]
    pub index: u64,
    /// Prove against this tree size instead of the latest checkpoint.
    #[arg(long, value_name = "S")]
    pub size: Option<u64>,
    /// Check with this key (a key or a file holding it) instead of the pinned one.
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The signed checkpoint the entries must reproduce.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// The export: JSON lines in index order (`parapet audit export`).
    #[arg(long, value_name = "FILE")]
    pub entries: PathBuf,
    /// The log's public key, or a file holding it [default: the key pinned with
    /// `parapet audit public-key --pin`].
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
    /// An earlier checkpoint whose tree the entries must extend (repeatable): proves the log
    /// only grew since it was saved.
    #[arg(long, value_name = "FILE")]
    pub previous_checkpoint: Vec<PathBuf>,
    /// Inclusion proofs of the entries (`export --proofs`): verifies a partial export, such as
    /// a tenant's, entry by entry.
    #[arg(long, value_name = "FILE")]
    pub proofs: Option<PathBuf>,
    /// The log's leaf hashes (`export --leaf-hashes`): names the first entry that differs.
    #[arg(long, value_name = "FILE", conflicts_with = "proofs")]
    pub leaf_hashes: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The pinned key's file: next to the stored login.
fn pinned_key_path() -> anyhow::Result<PathBuf> {
    let creds = config::credentials_path()?;
    Ok(creds
        .parent()
        .map(|d| d.join("audit-public-key"))
        .unwrap_or_else(|| PathBuf::from("audit-public-key")))
}

/// The verifier for `--public-key` (a key, or a file holding one), else the pinned key.
fn verifier(given: Option<&str>) -> anyhow::Result<NoteVerifier> {
    let text = match given {
        Some(k) if k.contains('+') && !Path::new(k).exists() => k.to_string(),
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the public key file {path}"))?,
        None => {
            let path = pinned_key_path()?;
            match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                    "no public key: give --public-key, or pin the log's key with 'parapet audit \
                     public-key --pin'"
                ),
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot read {}", path.display()));
                }
            }
        }
    };
    NoteVerifier::from_vkey(text.trim())
        .map_err(|e| anyhow!("invalid public key {:?}: {e}", text.trim()))
}

fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let style = if len.is_some() {
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})")
    } else {
        ProgressStyle::with_template("{msg} {pos} ({per_sec})")
    };
    if let Ok(style) = style {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .with_context(|| format!("cannot create {}", path.display()))
}

pub async fn public_key(a: PublicKeyArgs) -> anyhow::Result<()> {
    let s = Session::open_anonymous(&a.common)?;
    let key = s.client.audit_public_key().await.map_err(|e| s.fail(e))?;
    let verifier = NoteVerifier::from_vkey(&key)
        .map_err(|e| anyhow!("the server's public key {key:?} is invalid: {e}"))?;
    if a.pin {
        let path = pinned_key_path()?;
        match std::fs::read_to_string(&path) {
            Ok(old) if old.trim() == key => {}
            Ok(old) if !a.replace => bail!(
                "the server's audit key {key} differs from the key pinned in {} ({}); check it \
                 out of band, then pin it with --pin --replace",
                path.display(),
                old.trim()
            ),
            _ => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                std::fs::write(&path, format!("{key}\n"))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                note(&format!("Pinned the audit log key in {}", path.display()));
            }
        }
    }
    if s.json {
        return json(&serde_json::json!({
            "key": key,
            "origin": verifier.name(),
            "key_id": format!("{:08x}", verifier.key_id()),
        }));
    }
    out(&format!("{key}\n"))
}

pub async fn checkpoint(a: CheckpointArgs) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let signed = s
        .client
        .audit_checkpoint(a.size)
        .await
        .map_err(|e| s.fail(e))?;
    // Check it when a key is known; an unpinned key is a note, not an error (the checkpoint is
    // what one saves to verify later).
    let key = match (&a.public_key, pinned_key_path()?.exists()) {
        (Some(k), _) => Some(verifier(Some(k))?),
        (None, true) => Some(verifier(None)?),
        (None, false) => None,
    };
    let cp = match &key {
        Some(v) => Checkpoint::open(&signed, v)
            .map_err(|e| anyhow!("the server's checkpoint does not verify: {e}"))?,
        None => {
            note("note: no pinned key, signature not checked (parapet audit public-key --pin)");
            Checkpoint::parse_unverified(&signed)
                .map_err(|e| anyhow!("the server's checkpoint is malformed: {e}"))?
                .0
        }
    };
    if s.json {
        return json(&serde_json::json!({
            "origin": cp.origin,
            "size": cp.size,
            "root": cp.root.to_base64(),
            "verified": key.is_some(),
            "checkpoint": signed,
        }));
    }
    out(&signed)
}

pub async fn export(a: ExportArgs) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let mut sink: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(create(p)?),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let mut proofs = a.proofs.as_deref().map(create).transpose()?;
    let mut query = EntriesQuery {
        from: a.from,
        to: a.to,
        limit: Some(PAGE),
        tenant: a.tenant.clone(),
        proofs: proofs.is_some(),
        size: None,
    };
    let mut bar: Option<ProgressBar> = None;
    let mut count = 0u64;
    let size = loop {
        let page = s
            .client
            .audit_entries(&query)
            .await
            .map_err(|e| s.fail(e))?;
        query.size = Some(page.size);
        let bar = bar.get_or_insert_with(|| {
            let end = a.to.map_or(page.size, |t| t.min(page.size));
            progress(Some(end.saturating_sub(a.from.unwrap_or(0))), "exporting")
        });
        for line in page.body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match proofs.as_mut() {
                Some(p) => {
                    let proven: ProvenLine = serde_json::from_slice(line)
                        .context("the server sent a malformed proof line")?;
                    sink.write_all(proven.entry.as_bytes())?;
                    sink.write_all(b"\n")?;
                    serde_json::to_writer(
                        &mut *p,
                        &ProofLine {
                            index: proven.index,
                            size: page.size,
                            proof: proven.proof,
                        },
                    )?;
                    p.write_all(b"\n")?;
                }
                None => {
                    sink.write_all(line)?;
                    sink.write_all(b"\n")?;
                }
            }
            count += 1;
        }
        if let Some(next) = page.next_from {
            bar.set_position(next.saturating_sub(a.from.unwrap_or(0)));
            query.from = Some(next);
        } else {
            bar.finish_and_clear();
            break page.size;
        }
    };
    sink.flush().context("cannot write the export")?;
    if let Some(p) = proofs.as_mut() {
        p.flush().context("cannot write the proofs")?;
    }
    if let Some(path) = &a.checkpoint {
        let signed = s
            .client
            .audit_checkpoint(Some(size))
            .await
            .map_err(|e| s.fail(e))?;
        std::fs::write(path, signed).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &a.leaf_hashes {
        save_leaf_hashes(&s, size, path).await?;
    }
    note(&format!(
        "Exported {count} records of the log of size {size}."
    ));
    Ok(())
}

/// Saves the leaf hashes of the tree of `size` records: the level-0 tiles, in order.
async fn save_leaf_hashes(s: &Session, size: u64, path: &Path) -> anyhow::Result<()> {
    let mut f = create(path)?;
    let tiles = size.div_ceil(256);
    let bar = progress(Some(tiles), "leaf hashes");
    for index in 0..tiles {
        let width = (size - index * 256).min(256);
        let Some(tile) = u16::try_from(width)
            .ok()
            .and_then(|w| parapet_audit::Tile::new(0, index, w))
        else {
            bail!("cannot name tile {index} of width {width}");
        };
        let p = tile.path();
        let body = s
            .client
            .audit_tile(p.trim_start_matches("tile/"))
            .await
            .map_err(|e| s.fail(e))?;
        if body.len() != 32 * usize::from(tile.width()) {
            bail!("the server sent {} bytes for {p}", body.len());
        }
        f.write_all(&body)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    f.flush().context("cannot write the leaf hashes")
}

#[derive(serde::Deserialize)]
struct ProvenLine {
    index: u64,
    entry: String,
    proof: Vec<String>,
}

#[derive(Serialize, serde::Deserialize)]
struct ProofLine {
    index: u64,
    size: u64,
    proof: Vec<String>,
}

fn decode_hashes(list: &[String]) -> anyhow::Result<Vec<Hash>> {
    list.iter()
        .map(|h| Hash::from_base64(h).map_err(|e| anyhow!("bad hash {h:?}: {e}")))
        .collect()
}

pub async fn prove(a: ProveArgs) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let key = verifier(a.public_key.as_deref())?;
    let p = s
        .client
        .audit_inclusion(a.index, a.size)
        .await
        .map_err(|e| s.fail(e))?;
    let signed = s
        .client
        .audit_checkpoint(Some(p.size))
        .await
        .map_err(|e| s.fail(e))?;
    let cp = Checkpoint::open(&signed, &key)
        .map_err(|e| anyhow!("the checkpoint of size {} does not verify: {e}", p.size))?;
    let leaf = leaf_hash(p.entry.as_bytes());
    let proof = decode_hashes(&p.proof)?;
    verify_inclusion(&leaf, a.index, cp.size, &proof, &cp.root)
        .map_err(|e| anyhow!("record {} is NOT proven in the log: {e}", a.index))?;
    if s.json {
        return json(&serde_json::json!({
            "index": a.index,
            "size": cp.size,
            "root": cp.root.to_base64(),
            "leaf_hash": leaf.to_base64(),
            "proof": p.proof,
            "entry": p.entry,
            "checkpoint": signed,
            "verified": true,
        }));
    }
    out(&format!(
        "Record {} is in the log {} of size {} (root {}):\n  leaf hash {}\n  proof: {} hashes, \
         checked against the checkpoint signed by {:08x}\n",
        a.index,
        cp.origin,
        cp.size,
        cp.root.to_base64(),
        leaf.to_base64(),
        proof.len(),
        key.key_id()
    ))
}

/// The result of `verify`.
#[derive(Debug, Serialize)]
struct VerifyReport {
    ok: bool,
    origin: String,
    size: u64,
    root: String,
    entries: u64,
    /// Earlier checkpoints the entries extend.
    previous_sizes: Vec<u64>,
    /// The first log index that does not match, on failure (when it can be named).
    failed_index: Option<u64>,
    error: Option<String>,
}

/// Minimal view of an entry: its claimed log index.
#[derive(serde::Deserialize)]
struct EntryId {
    id: u64,
}

struct Failure {
    index: Option<u64>,
    message: String,
}

impl Failure {
    fn at(index: u64, message: impl Into<String>) -> Self {
        Failure {
            index: Some(index),
            message: message.into(),
        }
    }
    fn whole(message: impl Into<String>) -> Self {
        Failure {
            index: None,
            message: message.into(),
        }
    }
}

fn lines(path: &Path) -> anyhow::Result<(BufReader<File>, u64)> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((BufReader::with_capacity(1 << 20, f), len))
}

/// Reads the next line without its newline; `None` at the end. A last line without a newline
/// is an error: exports end every line with one.
fn next_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> anyhow::Result<Option<()>> {
    buf.clear();
    let n = r.read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.pop() != Some(b'\n') {
        bail!("the last line has no newline: the file is truncated");
    }
    Ok(Some(()))
}

pub fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let key = verifier(a.public_key.as_deref())?;
    let signed = std::fs::read_to_string(&a.checkpoint)
        .with_context(|| format!("cannot read {}", a.checkpoint.display()))?;
    let mut previous = Vec::new();
    for p in &a.previous_checkpoint {
        previous.push(
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        );
    }
    let cp = Checkpoint::open(&signed, &key).map_err(|e| {
        anyhow!(
            "{}: the checkpoint does not verify with key {}: {e}",
            a.checkpoint.display(),
            key.to_vkey()
        )
    })?;
    let mut report = VerifyReport {
        ok: false,
        origin: cp.origin.clone(),
        size: cp.size,
        root: cp.root.to_base64(),
        entries: 0,
        previous_sizes: Vec::new(),
        failed_index: None,
        error: None,
    };
    let result = if let Some(proofs) = &a.proofs {
        verify_with_proofs(&a, &cp, &key, &previous, proofs, &mut report)
    } else {
        verify_whole(&a, &signed, &key, &previous, &mut report)
    };
    match result {
        Ok(()) => report.ok = true,
        Err(f) => {
            report.failed_index = f.index;
            report.error = Some(f.message);
        }
    }
    if a.json {
        json(&report)?;
    } else if report.ok {
        let mut text = format!(
            "OK: {} entries reproduce the checkpoint of {} (size {}, root {})",
            report.entries, report.origin, report.size, report.root
        );
        if !report.previous_sizes.is_empty() {
            text.push_str(&format!(
                "; the log extends the earlier checkpoints of size {}",
                report
                    .previous_sizes
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out(&format!("{text}\n"))?;
    }
    if report.ok {
        return Ok(());
    }
    let msg = report.error.unwrap_or_default();
    match report.failed_index {
        Some(i) => bail!("verification FAILED at index {i}: {msg}"),
        None => bail!("verification FAILED: {msg}"),
    }
}

/// A whole-log export: every entry from index 0 to the checkpoint's size.
fn verify_whole(
    a: &VerifyArgs,
    signed: &str,
    key: &NoteVerifier,
    previous: &[String],
    report: &mut VerifyReport,
) -> Result<(), Failure> {
    let mut v = ExportVerifier::new(signed, key).map_err(|e| Failure::whole(e.to_string()))?;
    for p in previous {
        v = v
            .earlier_checkpoint(p)
            .map_err(|e| export_failure(e, None))?;
    }
    if let Some(path) = &a.leaf_hashes {
        let known = read_leaf_hashes(path, report.size, v.checkpoint())?;
        v = v.known_leaf_hashes(known.into_iter().enumerate().map(|(i, h)| (i as u64, h)));
    }
    let (mut r, len) = lines(&a.entries).map_err(|e| Failure::whole(e.to_string()))?;
    let bar = progress(Some(len), "verifying");
    let mut buf = Vec::new();
    let mut index = 0u64;
    let mut read = 0u64;
    while next_line(&mut r, &mut buf)
        .map_err(|e| Failure::at(index, e.to_string()))?
        .is_some()
    {
        read += buf.len() as u64 + 1;
        if index.is_multiple_of(4096) {
            bar.set_position(read);
        }
        match serde_json::from_slice::<EntryId>(&buf) {
            Ok(e) if e.id == index => {}
            Ok(e) => {
                return Err(Failure::at(
                    index,
                    format!(
                        "line {} holds record {} where record {index} belongs: records were \
                         removed, inserted or reordered",
                        index + 1,
                        e.id
                    ),
                ));
            }
            Err(_) => {
                return Err(Failure::at(
                    index,
                    format!("line {} is not an audit record", index + 1),
                ));
            }
        }
        v.push_entry(&buf)
            .map_err(|e| export_failure(e, Some(index)))?;
        index += 1;
        report.entries = index;
    }
    bar.finish_and_clear();
    let done = v.finish().map_err(|e| export_failure(e, Some(index)))?;
    report.previous_sizes = done.earlier_sizes;
    Ok(())
}

/// Leaf hashes from `export --leaf-hashes`, trusted only once they reproduce the checkpoint.
fn read_leaf_hashes(path: &Path, size: u64, cp: &Checkpoint) -> Result<Vec<Hash>, Failure> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| Failure::whole(format!("cannot read {}: {e}", path.display())))?;
    let (chunks, rest) = data.as_chunks::<32>();
    if !rest.is_empty() || chunks.len() as u64 != size {
        return Err(Failure::whole(format!(
            "{} holds {} bytes, not {size} hashes of 32 bytes",
            path.display(),
            data.len()
        )));
    }
    let mut b = RootBuilder::new();
    let hashes: Vec<Hash> = chunks.iter().map(|c| Hash(*c)).collect();
    for h in &hashes {
        b.push_leaf_hash(*h);
    }
    if b.root() != cp.root {
        return Err(Failure::whole(format!(
            "the leaf hashes in {} do not reproduce the checkpoint's root either: the log's \
             stored hashes were rewritten too",
            path.display()
        )));
    }
    Ok(hashes)
}

fn export_failure(e: ExportError, at: Option<u64>) -> Failure {
    match &e {
        ExportError::LeafMismatch { index, .. } => Failure::at(
            *index,
            format!("record {index} was changed since it was logged ({e})"),
        ),
        ExportError::TooFewEntries { entries, .. } => Failure::at(*entries, e.to_string()),
        ExportError::TooManyEntries { size } => Failure::at(*size, e.to_string()),
        ExportError::EarlierRootMismatch { size, .. } => Failure::whole(format!(
            "{e}: an entry before index {size} was changed (give --leaf-hashes to name it)"
        )),
        ExportError::RootMismatch { intact, .. } => Failure::whole(format!(
            "{e}: an entry at or after index {intact} was changed (give --leaf-hashes to name it)"
        )),
        _ => match at {
            Some(i) => Failure::at(i, e.to_string()),
            None => Failure::whole(e.to_string()),
        },
    }
}

/// A partial export (a tenant's): each entry is checked with its own inclusion proof.
fn verify_with_proofs(
    a: &VerifyArgs,
    cp: &Checkpoint,
    key: &NoteVerifier,
    previous: &[String],
    proofs: &Path,
    report: &mut VerifyReport,
) -> Result<(), Failure> {
    for p in previous {
        // Without the whole log, an earlier checkpoint can only be checked for being a smaller
        // tree of the same log; `verify` with a consistency proof does the rest online.
        let old = Checkpoint::open(p, key).map_err(|e| Failure::whole(e.to_string()))?;
        if old.origin != cp.origin || old.size > cp.size {
            return Err(Failure::whole(format!(
                "the earlier checkpoint (size {}) is not an earlier tree of this log",
                old.size
            )));
        }
        report.previous_sizes.push(old.size);
    }
    let (mut entries, len) = lines(&a.entries).map_err(|e| Failure::whole(e.to_string()))?;
    let (mut proof_lines, _) = lines(proofs).map_err(|e| Failure::whole(e.to_string()))?;
    let bar = progress(Some(len), "verifying");
    let (mut eb, mut pb) = (Vec::new(), Vec::new());
    let mut last: Option<u64> = None;
    let mut read = 0u64;
    loop {
        let e = next_line(&mut entries, &mut eb).map_err(|e| Failure::whole(e.to_string()))?;
        let p = next_line(&mut proof_lines, &mut pb).map_err(|e| Failure::whole(e.to_string()))?;
        match (e, p) {
            (None, None) => break,
            (Some(()), Some(())) => {}
            _ => {
                return Err(Failure::whole(
                    "the entries and the proofs have different numbers of lines",
                ));
            }
        }
        read += eb.len() as u64 + 1;
        bar.set_position(read);
        let proof: ProofLine = serde_json::from_slice(&pb)
            .map_err(|e| Failure::whole(format!("malformed proof line: {e}")))?;
        let index = proof.index;
        let claimed = serde_json::from_slice::<EntryId>(&eb)
            .map_err(|_| Failure::at(index, "the entry is not an audit record"))?;
        if claimed.id != index {
            return Err(Failure::at(
                index,
                format!(
                    "the entry claims index {}, its proof is for {index}",
                    claimed.id
                ),
            ));
        }
        if last.is_some_and(|l| l >= index) {
            return Err(Failure::at(
                index,
                "entries are not in increasing index order",
            ));
        }
        last = Some(index);
        if proof.size != cp.size {
            return Err(Failure::at(
                index,
                format!(
                    "the proof is for a tree of size {}, the checkpoint's is {}",
                    proof.size, cp.size
                ),
            ));
        }
        let hashes = decode_hashes(&proof.proof).map_err(|e| Failure::at(index, e.to_string()))?;
        let leaf = leaf_hash(&eb);
        let root = root_from_inclusion_proof(&leaf, index, cp.size, &hashes)
            .map_err(|e| Failure::at(index, e.to_string()))?;
        if root != cp.root {
            return Err(Failure::at(
                index,
                format!(
                    "record {index} does not match the log: with its proof it gives root {}, \
                     the checkpoint signed {}",
                    root.to_base64(),
                    cp.root.to_base64()
                ),
            ));
        }
        report.entries += 1;
    }
    bar.finish_and_clear();
    Ok(())
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConsistencyArgs {
    /// Saved checkpoints: files, or directories of `*.checkpoint` files (a `dir:` witness).
    #[arg(required = true, value_name = "FILE|DIR")]
    pub checkpoints: Vec<PathBuf>,
    /// The log's public key, or a file holding it [default: the pinned key].
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The signed checkpoints in `paths` (files, or directories of `*.checkpoint` files).
fn saved_checkpoints(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read the directory {}", p.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "checkpoint"))
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{} holds no *.checkpoint files", p.display());
            }
            for f in files {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                out.push((f, text));
            }
        } else {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            out.push((p.clone(), text));
        }
    }
    Ok(out)
}

/// Checks that the log still extends every saved checkpoint (witness copies): each is signed by
/// the log's key, no two disagree, and the server proves each grew into the next and into its
/// latest checkpoint. A rewritten history fails here even if the database was rewritten
/// consistently.
pub async fn consistency(a: ConsistencyArgs) -> anyhow::Result<()> {
    let key = verifier(a.public_key.as_deref())?;
    let mut cps = Vec::new();
    for (path, text) in saved_checkpoints(&a.checkpoints)? {
        let cp = Checkpoint::open(&text, &key).map_err(|e| {
            anyhow!(
                "{}: not a checkpoint signed by the log's key: {e}",
                path.display()
            )
        })?;
        cps.push((path, cp));
    }
    let s = Session::open(&a.common)?;
    let latest_text = s
        .client
        .audit_checkpoint(None)
        .await
        .map_err(|e| s.fail(e))?;
    let latest = Checkpoint::open(&latest_text, &key)
        .map_err(|e| anyhow!("the server's latest checkpoint does not verify: {e}"))?;
    cps.sort_by_key(|(_, cp)| cp.size);
    for (path, cp) in &cps {
        if cp.origin != latest.origin {
            bail!(
                "{} is a checkpoint of the log {:?}, not of {:?}",
                path.display(),
                cp.origin,
                latest.origin
            );
        }
    }
    let mut chain: Vec<(String, Checkpoint)> = cps
        .into_iter()
        .map(|(p, cp)| (p.display().to_string(), cp))
        .collect();
    chain.push(("the server's latest checkpoint".to_string(), latest.clone()));
    let mut checked = 0usize;
    for pair in chain.windows(2) {
        let [(old_name, old), (new_name, new)] = pair else {
            continue;
        };
        if old.size > new.size {
            bail!(
                "the log SHRANK: {old_name} has size {}, {new_name} only {}",
                old.size,
                new.size
            );
        }
        if old.size == new.size {
            if old.root != new.root {
                bail!(
                    "the log was REWRITTEN: {old_name} and {new_name} both have size {} but \
                     different roots",
                    old.size
                );
            }
            continue;
        }
        if old.size == 0 {
            continue;
        }
        let p = s
            .client
            .audit_consistency(old.size, Some(new.size))
            .await
            .map_err(|e| s.fail(e))?;
        let proof = decode_hashes(&p.proof)?;
        parapet_audit::verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
            .map_err(|e| {
                anyhow!(
                    "the log was REWRITTEN: {new_name} (size {}) does not extend {old_name} \
                     (size {}): {e}",
                    new.size,
                    old.size
                )
            })?;
        checked += 1;
    }
    let sizes: Vec<u64> = chain.iter().map(|(_, c)| c.size).collect();
    if s.json {
        return json(&serde_json::json!({
            "ok": true,
            "origin": latest.origin,
            "sizes": sizes,
            "proofs_checked": checked,
        }));
    }
    out(&format!(
        "OK: {} saved checkpoints are consistent with each other and the log's latest \
         checkpoint (size {}); {checked} consistency proofs checked.\n",
        chain.len() - 1,
        latest.size
    ))
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The tenant whose accounts to report on.
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// Start of the window (RFC 3339); the whole log when absent.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// End of the window (RFC 3339, exclusive).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// List accounts without a log-in for this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 90)]
    pub inactive_days: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Account and access report (X.1642 8.1.1(5)).
pub async fn report(a: ReportArgs) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let r = s
        .client
        .access_report(
            &a.tenant,
            a.since.as_deref(),
            a.until.as_deref(),
            Some(a.inactive_days),
        )
        .await
        .map_err(|e| s.fail(e))?;
    if s.json {
        return json(&r);
    }
    let dash = || "-".to_string();
    let mut text = format!(
        "Access report of {} ({} to {})\n\n",
        a.tenant,
        r.since.clone().unwrap_or_else(|| "the start".into()),
        r.until.clone().unwrap_or_else(|| r.generated_at.clone())
    );
    let rows: Vec<Vec<String>> = r
        .accounts
        .iter()
        .map(|x| {
            vec![
                super::output::clean(&x.account),
                x.role.clone(),
                x.logins.to_string(),
                x.logouts.to_string(),
                x.failed_logins.to_string(),
                x.denied_requests.to_string(),
                x.last_login.clone().unwrap_or_else(dash),
                if x.disabled { "disabled" } else { "active" }.to_string(),
            ]
        })
        .collect();
    text.push_str(&super::output::table(
        &[
            "ACCOUNT",
            "ROLE",
            "LOGINS",
            "LOGOUTS",
            "FAILED",
            "DENIED",
            "LAST LOGIN",
            "STATUS",
        ],
        &rows,
    ));
    text.push_str(&format!(
        "\nNo log-in for {} days: {}\n",
        r.inactive_days,
        if r.inactive.is_empty() {
            "none".to_string()
        } else {
            r.inactive
                .iter()
                .map(|i| super::output::clean(&i.account))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    if !r.unknown_login_attempts.is_empty() {
        text.push_str(&format!(
            "Failed log-ins with unknown names: {}\n",
            r.unknown_login_attempts
                .iter()
                .map(|(n, c)| format!("{} ({c})", super::output::clean(n)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    text.push_str(&format!(
        "\nPrivilege changes ({}):\n",
        r.privilege_changes.len()
    ));
    let rows: Vec<Vec<String>> = r
        .privilege_changes
        .iter()
        .map(|c| {
            vec![
                c.index.to_string(),
                c.time.clone(),
                super::output::clean(&c.actor),
                c.action.clone(),
                super::output::clean(&c.target),
                c.outcome.clone(),
            ]
        })
        .collect();
    text.push_str(&super::output::table(
        &["INDEX", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME"],
        &rows,
    ));
    out(&text)
}
