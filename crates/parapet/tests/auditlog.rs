//! Black-box tests of the tamper-evident audit log (issue 3): the real `parapet serve` on SQLite
//! and PostgreSQL, its audit-log API checked here with `parapet_audit`'s own verifiers, the
//! `parapet audit` commands as a subprocess, and a database administrator who rewrites the stored
//! records behind the server's back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, Backend, Server, as_dba};
use parapet_audit::tile::{decode_tile, tiles_for_size};
use parapet_audit::{
    Checkpoint, Hash, NodeId, NoteSigner, NoteVerifier, ReadError, RootBuilder, Tile,
    TileHashReader, TileReader, consistency_proof, inclusion_proof, leaf_hash, tree_root,
    verify_checkpoint_consistency, verify_consistency, verify_inclusion,
};
use serde_json::{Value, json};

macro_rules! backend {
    (sqlite) => {
        super::Backend::Sqlite
    };
    (postgres) => {
        super::Backend::Postgres
    };
}

/// One module per test and in it one `#[test]` per listed backend: `name::sqlite`,
/// `name::postgres`.
macro_rules! tests {
    ($($name:ident: $($b:ident)+;)*) => {
        $(mod $name { $(#[test] fn $b() { super::$name(backend!($b)) })+ })*
    };
}

tests! {
    checkpoint_proofs_and_tiles_verify_independently: sqlite postgres;
    tenant_sees_only_its_records_and_proofs: sqlite postgres;
    cli_export_verify_round_trip: sqlite postgres;
    tampering_is_detected_and_named: sqlite postgres;
    sigkill_under_load_loses_nothing_acknowledged: sqlite postgres;
    two_replicas_one_sequencer: postgres;
    bad_input_on_audit_endpoints: sqlite postgres;
}

const PW: &str = "a-long-enough-password-42";

/// How long the sequencer may take to sign a checkpoint covering what was written.
const CHECKPOINT_DEADLINE: Duration = Duration::from_secs(20);

// -- HTTP ---------------------------------------------------------------------------------------

/// A blocking client of one server's API, on a runtime of its own.
struct Http {
    base: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// One HTTP answer, read to the end.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    /// Asserts a 200 and returns the body as text.
    fn ok_text(&self) -> String {
        assert_eq!(self.status, 200, "{}", self.text());
        self.text()
    }

    /// Asserts a 200 and returns the body as JSON.
    fn ok_json(&self) -> Value {
        serde_json::from_str(&self.ok_text())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts an RFC 9457 problem of `status` and returns it.
    fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{}",
            self.text()
        );
        let p: Value = serde_json::from_slice(&self.body).unwrap();
        assert_eq!(p["status"], status, "{p}");
        assert!(
            p["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:parapet:problem:")),
            "{p}"
        );
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
        p
    }
}

impl Http {
    fn new(srv: &Server) -> Http {
        Http {
            base: srv.url.clone(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn send(&self, rb: reqwest::RequestBuilder) -> Answer {
        self.rt.block_on(async {
            let res = rb.send().await.unwrap();
            Answer {
                status: res.status().as_u16(),
                headers: res.headers().clone(),
                body: res.bytes().await.unwrap().to_vec(),
            }
        })
    }

    /// `GET path`, with a bearer token unless `token` is `None`.
    fn get(&self, token: Option<&str>, path: &str) -> Answer {
        let rb = self.client.get(format!("{}{path}", self.base));
        self.send(match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        })
    }

    /// A POST that sets something up; it must succeed.
    fn setup(&self, token: &str, path: &str, body: Value) {
        let a = self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(token)
                .json(&body),
        );
        assert!(
            matches!(a.status, 200 | 201),
            "POST {path} {body}: {} {}",
            a.status,
            a.text()
        );
    }

    fn login(&self, username: &str, password: &str) -> String {
        let a = self.send(
            self.client
                .post(format!("{}/api/v1/auth/login", self.base))
                .json(&json!({"username": username, "password": password})),
        );
        let v = a.ok_json();
        v["token"].as_str().unwrap().to_string()
    }

    fn admin(&self) -> String {
        self.login("admin", ADMIN_PASSWORD)
    }

    /// The log's public key, as served and as a verifier.
    fn public_key(&self) -> (String, NoteVerifier) {
        let a = self.get(None, "/api/v1/audit/public-key");
        assert_eq!(
            a.header("content-type").as_deref(),
            Some("text/plain; charset=utf-8")
        );
        let key = a.ok_text().trim().to_string();
        let v = NoteVerifier::from_vkey(&key).unwrap_or_else(|e| panic!("{key:?}: {e}"));
        (key, v)
    }

    fn latest_checkpoint(&self, token: &str) -> String {
        self.get(Some(token), "/api/v1/audit/checkpoint").ok_text()
    }

    /// How many records were written so far: one past the newest record's log index (read
    /// from the audit trail, which does not wait for the sequencer).
    fn records_written(&self, admin: &str) -> u64 {
        let v = self
            .get(Some(admin), "/api/v1/tenants/provider/audit?limit=1")
            .ok_json();
        v["items"][0]["id"].as_u64().unwrap() + 1
    }

    /// Polls the latest checkpoint until it covers `n` records.
    fn checkpoint_covering(&self, token: &str, n: u64) -> String {
        let deadline = Instant::now() + CHECKPOINT_DEADLINE;
        loop {
            let signed = self.latest_checkpoint(token);
            let size = size_of(&signed);
            if size >= n {
                return signed;
            }
            assert!(
                Instant::now() < deadline,
                "no checkpoint covering {n} records within {CHECKPOINT_DEADLINE:?} (the latest \
                 has size {size})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The signed checkpoint covering every record written so far.
    fn settle(&self, admin: &str) -> String {
        let n = self.records_written(admin);
        self.checkpoint_covering(admin, n)
    }

    /// Every record of the caller's scope (with `query`, e.g. `&tenant=acme`) in the tree of
    /// `size`, page by page: the lines exactly as served.
    fn export(&self, token: &str, query: &str, size: u64) -> Vec<String> {
        let mut lines = Vec::new();
        let mut from = 0u64;
        loop {
            let a = self.get(
                Some(token),
                &format!("/api/v1/audit/entries?from={from}&limit=100&size={size}{query}"),
            );
            let body = a.ok_text();
            assert_eq!(
                a.header("content-type").as_deref(),
                Some("application/x-ndjson")
            );
            assert_eq!(a.header("parapet-tree-size"), Some(size.to_string()));
            assert!(body.is_empty() || body.ends_with('\n'), "{body:?}");
            lines.extend(body.lines().map(str::to_string));
            match a.header("parapet-next-from") {
                Some(next) => from = next.parse().unwrap(),
                None => return lines,
            }
        }
    }
}

fn size_of(signed: &str) -> u64 {
    Checkpoint::parse_unverified(signed)
        .unwrap_or_else(|e| panic!("malformed checkpoint ({e}): {signed:?}"))
        .0
        .size
}

fn open(signed: &str, v: &NoteVerifier) -> Checkpoint {
    Checkpoint::open(signed, v).unwrap_or_else(|e| panic!("{e}: {signed:?}"))
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list of hashes: {v}"))
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect()
}

fn record(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a record ({e}): {line}"))
}

/// The log index of the only record with `action` on `target`.
fn index_of(lines: &[String], action: &str, target: &str) -> u64 {
    let found: Vec<u64> = lines
        .iter()
        .map(|l| record(l))
        .filter(|r| r["action"] == action && r["target"] == target)
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(found.len(), 1, "records {action} {target}: {found:?}");
    found[0]
}

/// Hash tiles fetched from the server, by (level, index).
struct Fetched(HashMap<(u8, u64), Vec<Hash>>);

impl TileReader for Fetched {
    fn read_tile(&self, tile: Tile) -> Result<Vec<Hash>, ReadError> {
        self.0
            .get(&(tile.level(), tile.index()))
            .cloned()
            .ok_or(ReadError::Missing(NodeId::new(
                tile.level() * 8,
                tile.index(),
            )))
    }
}

fn root_of(leaves: &[Hash]) -> Hash {
    let mut b = RootBuilder::new();
    for h in leaves {
        b.push_leaf_hash(*h);
    }
    b.root()
}

// -- the command-line client --------------------------------------------------------------------

/// A temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        Scratch(parapet_store_sql::testkit::temp_dir(tag))
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `parapet` client with a configuration directory of its own and optional server and token.
struct Parapet {
    config: PathBuf,
    server: Option<(String, String)>,
}

/// What one run of the client did.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn succeeded(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:#?}");
        &self.stdout
    }

    /// Asserts a clean failure (exit 1, no panic, one line on standard error starting with
    /// `error: `) and returns that line.
    fn failed(&self) -> String {
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
        assert_eq!(self.code, Some(1), "{self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("error: "),
            "one error line expected: {self:#?}"
        );
        lines[0].to_string()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}

impl Parapet {
    fn new(scratch: &Scratch, tag: &str) -> Parapet {
        Parapet {
            config: scratch.0.join(tag),
            server: None,
        }
    }

    /// A client acting with `token` on the server at `url` (PARAPET_SERVER, PARAPET_TOKEN).
    fn with_token(scratch: &Scratch, tag: &str, url: &str, token: &str) -> Parapet {
        Parapet {
            server: Some((url.to_string(), token.to_string())),
            ..Parapet::new(scratch, tag)
        }
    }

    fn run(&self, args: &[&str]) -> Ran {
        self.run_with_stdin(args, None)
    }

    fn run_with_stdin(&self, args: &[&str], input: Option<&str>) -> Ran {
        let mut cmd = Command::new(common::bin());
        cmd.args(args)
            .env("PARAPET_CONFIG_DIR", &self.config)
            .env_remove("XDG_CONFIG_HOME")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(match input {
                Some(_) => Stdio::piped(),
                None => Stdio::null(),
            });
        match &self.server {
            Some((url, token)) => cmd.env("PARAPET_SERVER", url).env("PARAPET_TOKEN", token),
            None => cmd.env_remove("PARAPET_SERVER").env_remove("PARAPET_TOKEN"),
        };
        let mut child = cmd.spawn().expect("spawn parapet");
        if let Some(text) = input {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `audit export` of the whole log to `<name>.ndjson`, with `<name>.cp` (its checkpoint) and
    /// `<name>.leaves` (the leaf hashes); returns the lines.
    fn export_whole(&self, scratch: &Scratch, name: &str) -> Vec<String> {
        let (entries, cp, leaves) = files(scratch, name);
        let r = self.run(&[
            "audit",
            "export",
            "-o",
            &entries,
            "--checkpoint",
            &cp,
            "--leaf-hashes",
            &leaves,
        ]);
        r.succeeded();
        let text = std::fs::read_to_string(&entries).unwrap();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let size = size_of(&std::fs::read_to_string(&cp).unwrap());
        assert_eq!(
            r.stderr.trim(),
            format!(
                "Exported {} records of the log of size {size}.",
                lines.len()
            )
        );
        assert_eq!(
            lines.len() as u64,
            size,
            "a whole export holds every record"
        );
        assert_eq!(std::fs::metadata(&leaves).unwrap().len(), 32 * size);
        lines
    }

    /// `audit verify --json` with `args` that must fail: returns the report's `failed_index` and
    /// the error line.
    fn verify_fails(&self, args: &[&str]) -> (Option<u64>, String) {
        let mut all = vec!["audit", "verify", "--json"];
        all.extend_from_slice(args);
        let r = self.run(&all);
        let line = r.failed();
        let report = r.json();
        assert_eq!(report["ok"], false, "{report}");
        assert!(report["error"].as_str().is_some_and(|e| !e.is_empty()));
        (report["failed_index"].as_u64(), line)
    }

    /// `audit verify --json` with `args` that must succeed: returns the report.
    fn verify_ok(&self, args: &[&str]) -> Value {
        let mut all = vec!["audit", "verify", "--json"];
        all.extend_from_slice(args);
        let report = self.run(&all);
        report.succeeded();
        let v = report.json();
        assert_eq!(v["ok"], true, "{v}");
        assert!(v["failed_index"].is_null(), "{v}");
        v
    }
}

/// The entries, checkpoint and leaf-hash files of the export `name`.
fn files(scratch: &Scratch, name: &str) -> (String, String, String) {
    (
        scratch.file(&format!("{name}.ndjson")),
        scratch.file(&format!("{name}.cp")),
        scratch.file(&format!("{name}.leaves")),
    )
}

fn write_lines(path: &str, lines: &[String]) {
    let mut text = lines.join("\n");
    if !lines.is_empty() {
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

// -- the database administrator -----------------------------------------------------------------

/// What the administrator does to the stored records.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// Changes a field of record `i`.
    Change,
    /// Deletes record `i`.
    Delete,
    /// Inserts a forged record at index `i`, renumbering the records after it.
    Insert,
    /// Swaps the log indexes of records `i` and `j`.
    Swap,
}

impl Tamper {
    fn sql(self, i: u64, j: u64) -> String {
        match self {
            Tamper::Change => {
                format!("UPDATE audit_events SET target = 'tenant:forged' WHERE seq = {i};")
            }
            Tamper::Delete => format!("DELETE FROM audit_events WHERE seq = {i};"),
            Tamper::Insert => format!(
                "UPDATE audit_events SET seq = seq + 1000000 WHERE seq >= {i};
                 UPDATE audit_events SET seq = seq - 999999 WHERE seq >= 1000000;
                 INSERT INTO audit_events (seq, time, tenant_id, actor, actor_label, action, \
                 target, source_ip, user_agent, outcome, details) SELECT {i}, time, tenant_id, \
                 actor, actor_label, action, 'tenant:forged', source_ip, user_agent, outcome, \
                 details FROM audit_events WHERE seq = {i} + 1;
                 UPDATE audit_head SET next_seq = next_seq + 1;"
            ),
            Tamper::Swap => format!(
                "UPDATE audit_events SET seq = -1 WHERE seq = {i};
                 UPDATE audit_events SET seq = {i} WHERE seq = {j};
                 UPDATE audit_events SET seq = {j} WHERE seq = -1;"
            ),
        }
    }
}

/// The statements that lift the append-only triggers.
fn lift_triggers(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;"
        }
        Backend::Postgres => "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change;",
    }
}

// -- 1 ------------------------------------------------------------------------------------------

/// Everything the API serves about the log (checkpoints, every inclusion proof, a consistency
/// proof, the hash tiles) checks out with the verifiers of `parapet_audit`, against the served
/// public key, and agrees with the records the export gives.
fn checkpoint_proofs_and_tiles_verify_independently(backend: Backend) {
    let srv = common::start(backend);
    let http = Http::new(&srv);
    let admin = http.admin();
    http.setup(&admin, "/api/v1/tenants", json!({"name": "acme"}));
    http.setup(
        &admin,
        "/api/v1/tenants/acme/users",
        json!({"username": "member", "password": PW, "role": "tenant-member"}),
    );
    let member = http.login("member@acme", PW);
    let (vkey, verifier) = http.public_key();
    let first_signed = http.settle(&admin);
    let first = open(&first_signed, &verifier);
    assert_eq!(first.origin, verifier.name());
    assert!(first.origin.starts_with("parapet."), "{vkey}");
    assert!(first.size >= 4 && first.size < 256, "{first}");

    // Refused requests are recorded too: 300 of them fill a whole tile and start level 1.
    for _ in 0..300 {
        let a = http.get(Some(&member), "/api/v1/tenants/acme/audit");
        a.problem(403);
    }
    let signed = http.settle(&admin);
    let cp = open(&signed, &verifier);
    assert!(cp.size >= first.size + 300, "{cp}");
    let n = usize::try_from(cp.size).unwrap();
    // A past checkpoint stays available by its size, byte for byte.
    assert_eq!(
        http.get(
            Some(&admin),
            &format!("/api/v1/audit/checkpoint?size={}", first.size)
        )
        .ok_text(),
        first_signed
    );

    // The records: one per index, and their Merkle tree is the checkpoint's.
    let lines = http.export(&admin, "", cp.size);
    assert_eq!(lines.len(), n);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(record(l)["id"], i as u64, "{l}");
    }
    let denied = lines
        .iter()
        .filter(|l| record(l)["outcome"] == "denied")
        .count();
    assert_eq!(denied, 300);
    let leaves: Vec<Hash> = lines.iter().map(|l| leaf_hash(l.as_bytes())).collect();
    assert_eq!(root_of(&leaves), cp.root);
    assert_eq!(
        root_of(&leaves[..usize::try_from(first.size).unwrap()]),
        first.root
    );

    // Every inclusion proof.
    let mut proofs = Vec::new();
    for i in 0..cp.size {
        let k = usize::try_from(i).unwrap();
        let p = http
            .get(
                Some(&admin),
                &format!("/api/v1/audit/proofs/inclusion?index={i}&size={}", cp.size),
            )
            .ok_json();
        assert_eq!(p["index"], i);
        assert_eq!(p["size"], cp.size);
        assert_eq!(p["entry"], lines[k].as_str());
        assert_eq!(p["leaf_hash"], leaves[k].to_base64());
        let proof = hashes(&p["proof"]);
        verify_inclusion(&leaves[k], i, cp.size, &proof, &cp.root)
            .unwrap_or_else(|e| panic!("inclusion of {i}: {e}"));
        // The proof is bound to its leaf and position.
        let other = leaves[(k + 1) % n];
        assert!(verify_inclusion(&other, i, cp.size, &proof, &cp.root).is_err());
        proofs.push(proof);
    }
    // Without `size`, against the latest checkpoint.
    let latest = http
        .get(Some(&admin), "/api/v1/audit/proofs/inclusion?index=0")
        .ok_json();
    assert_eq!(latest["size"], cp.size);

    // The consistency proof between the two checkpoints.
    let c = http
        .get(
            Some(&admin),
            &format!(
                "/api/v1/audit/proofs/consistency?from={}&to={}",
                first.size, cp.size
            ),
        )
        .ok_json();
    assert_eq!(
        (c["from"].as_u64(), c["to"].as_u64()),
        (Some(first.size), Some(cp.size))
    );
    let cproof = hashes(&c["proof"]);
    verify_consistency(first.size, cp.size, &first.root, &cp.root, &cproof).unwrap();
    verify_checkpoint_consistency(&first_signed, &signed, &verifier, &cproof).unwrap();
    assert!(verify_consistency(first.size, cp.size, &leaves[0], &cp.root, &cproof).is_err());

    // The hash tiles: the level-0 tiles are the leaf hashes, and together they give the root
    // and the very proofs the server sent.
    let mut fetched = HashMap::new();
    for tile in tiles_for_size(cp.size) {
        let a = http.get(Some(&admin), &format!("/api/v1/audit/{}", tile.path()));
        assert_eq!(a.status, 200, "{}: {}", tile.path(), a.text());
        assert_eq!(
            a.header("content-type").as_deref(),
            Some("application/octet-stream")
        );
        let hs = decode_tile(tile, &a.body).unwrap_or_else(|e| panic!("{}: {e}", tile.path()));
        assert_eq!(hs.len(), usize::from(tile.width()));
        if tile.level() == 0 {
            let start = usize::try_from(tile.index()).unwrap() * 256;
            assert_eq!(hs[..], leaves[start..start + hs.len()], "{}", tile.path());
        }
        fetched.insert((tile.level(), tile.index()), hs);
    }
    assert!(fetched.contains_key(&(1, 0)), "{:?}", fetched.keys());
    let reader = TileHashReader::new(Fetched(fetched), cp.size);
    assert_eq!(tree_root(&reader, cp.size).unwrap(), cp.root);
    for (i, p) in proofs.iter().enumerate() {
        assert_eq!(&inclusion_proof(&reader, i as u64, cp.size).unwrap(), p);
    }
    assert_eq!(
        consistency_proof(&reader, first.size, cp.size).unwrap(),
        cproof
    );
    // The first tree's tile, at its old width, is still served and gives the old root.
    let old = Tile::in_tree(0, 0, first.size).unwrap();
    let body = http
        .get(Some(&admin), &format!("/api/v1/audit/{}", old.path()))
        .body;
    assert_eq!(root_of(&decode_tile(old, &body).unwrap()), first.root);
    // Entry bundles would show every tenant's records: not served.
    http.get(Some(&admin), "/api/v1/audit/tile/entries/000")
        .problem(404);

    // The list of checkpoints: both, each signed by the key.
    let list = http
        .get(Some(&admin), "/api/v1/audit/checkpoints?limit=1000")
        .ok_json();
    let by_size: BTreeMap<u64, String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let signed = c["checkpoint"].as_str().unwrap().to_string();
            assert_eq!(open(&signed, &verifier).size, c["size"].as_u64().unwrap());
            (c["size"].as_u64().unwrap(), signed)
        })
        .collect();
    assert_eq!(by_size.get(&first.size), Some(&first_signed));
    assert_eq!(by_size.get(&cp.size), Some(&signed));
}

// -- 2 ------------------------------------------------------------------------------------------

/// A tenant's users see, export and prove only the tenant's records; other tenants' records do
/// not exist for them; members without audit rights, and anonymous callers, get nothing but the
/// public key; and a tenant's export verifies offline with its proofs.
fn tenant_sees_only_its_records_and_proofs(backend: Backend) {
    let srv = common::start(backend);
    let http = Http::new(&srv);
    let admin = http.admin();
    for t in ["acme", "globex"] {
        http.setup(&admin, "/api/v1/tenants", json!({"name": t}));
        for (user, role) in [
            ("boss", "tenant-admin"),
            ("watcher", "tenant-auditor"),
            ("member", "tenant-member"),
        ] {
            http.setup(
                &admin,
                &format!("/api/v1/tenants/{t}/users"),
                json!({"username": user, "password": PW, "role": role}),
            );
        }
    }
    let boss = http.login("boss@acme", PW);
    let watcher = http.login("watcher@acme", PW);
    let member = http.login("member@acme", PW);
    let globex = http.login("boss@globex", PW);
    // A few more records on each side.
    http.setup(
        &boss,
        "/api/v1/tenants/acme/users",
        json!({"username": "extra", "password": PW, "role": "tenant-member"}),
    );
    http.setup(
        &globex,
        "/api/v1/tenants/globex/users",
        json!({"username": "extra", "password": PW, "role": "tenant-member"}),
    );
    http.get(Some(&member), "/api/v1/tenants/acme/audit")
        .problem(403);
    let signed = http.settle(&admin);
    let (vkey, verifier) = http.public_key();
    let cp = open(&signed, &verifier);

    let id_of = |name: &str| -> String {
        let v = http
            .get(Some(&admin), &format!("/api/v1/tenants/{name}"))
            .ok_json();
        v["id"].as_str().unwrap().to_string()
    };
    let (acme_id, globex_id) = (id_of("acme"), id_of("globex"));
    let all = http.export(&admin, "", cp.size);
    assert_eq!(all.len() as u64, cp.size);
    let tenant_of: Vec<Value> = all.iter().map(|l| record(l)["tenant"].clone()).collect();
    let only = |id: &str| -> Vec<String> {
        all.iter()
            .zip(&tenant_of)
            .filter(|(_, t)| *t == id)
            .map(|(l, _)| l.clone())
            .collect()
    };
    let (acme, globex_lines) = (only(&acme_id), only(&globex_id));
    assert!(acme.len() >= 6 && globex_lines.len() >= 5, "{all:#?}");
    assert!(
        acme.len() + globex_lines.len() < all.len(),
        "provider records exist"
    );

    for tok in [&boss, &watcher] {
        // Their own records, exactly, whichever way the tenant is named.
        assert_eq!(http.export(tok, "", cp.size), acme);
        assert_eq!(http.export(tok, "&tenant=acme", cp.size), acme);
        assert_eq!(
            http.export(tok, &format!("&tenant={acme_id}"), cp.size),
            acme
        );
        // Another tenant, or the provider, does not exist for them.
        for other in ["globex", globex_id.as_str(), "provider"] {
            http.get(Some(tok), &format!("/api/v1/audit/entries?tenant={other}"))
                .problem(404);
        }
        // Inclusion proofs: of their own records only.
        for (i, line) in all.iter().enumerate() {
            let a = http.get(
                Some(tok),
                &format!("/api/v1/audit/proofs/inclusion?index={i}&size={}", cp.size),
            );
            if tenant_of[i] == acme_id.as_str() {
                let p = a.ok_json();
                assert_eq!(p["entry"], line.as_str());
                verify_inclusion(
                    &leaf_hash(line.as_bytes()),
                    i as u64,
                    cp.size,
                    &hashes(&p["proof"]),
                    &cp.root,
                )
                .unwrap();
            } else {
                let p = a.problem(404);
                assert!(!p.to_string().contains(&globex_id), "{p}");
            }
        }
        // Proven entries: their own, each proof good.
        let a = http.get(
            Some(tok),
            &format!(
                "/api/v1/audit/entries?proofs=true&limit=10000&size={}",
                cp.size
            ),
        );
        let proven: Vec<Value> = a.ok_text().lines().map(record).collect();
        assert_eq!(proven.len(), acme.len());
        for (p, line) in proven.iter().zip(&acme) {
            assert_eq!(p["entry"], line.as_str());
            verify_inclusion(
                &leaf_hash(line.as_bytes()),
                p["index"].as_u64().unwrap(),
                cp.size,
                &hashes(&p["proof"]),
                &cp.root,
            )
            .unwrap();
        }
        // Hashes only: the checkpoint, the list, tiles and consistency proofs are for anyone
        // signed in.
        assert_eq!(http.latest_checkpoint(tok), signed);
        http.get(Some(tok), "/api/v1/audit/checkpoints").ok_json();
        http.get(Some(tok), "/api/v1/audit/proofs/consistency?from=1")
            .ok_json();
        let t0 = Tile::in_tree(0, 0, cp.size).unwrap();
        http.get(Some(tok), &format!("/api/v1/audit/{}", t0.path()))
            .ok_text();
    }
    // The other tenant's administrator sees only its own.
    assert_eq!(http.export(&globex, "", cp.size), globex_lines);
    http.get(Some(&globex), "/api/v1/audit/entries?tenant=acme")
        .problem(404);
    // Provider staff may pick one tenant.
    assert_eq!(http.export(&admin, "&tenant=acme", cp.size), acme);
    // A member may not read the audit trail at all.
    http.get(Some(&member), "/api/v1/audit/entries")
        .problem(403);
    let own = all
        .iter()
        .position(|l| record(l)["tenant"] == acme_id.as_str())
        .unwrap();
    http.get(
        Some(&member),
        &format!("/api/v1/audit/proofs/inclusion?index={own}"),
    )
    .problem(403);
    // Nobody: only the public key.
    for path in [
        "/api/v1/audit/checkpoint",
        "/api/v1/audit/checkpoints",
        "/api/v1/audit/tile/0/000.p/1",
        "/api/v1/audit/proofs/inclusion?index=0",
        "/api/v1/audit/proofs/consistency?from=1",
        "/api/v1/audit/entries",
    ] {
        http.get(None, path).problem(401);
        http.get(Some("pps_not-a-real-token"), path).problem(401);
    }
    assert_eq!(http.public_key().0, vkey);

    // The tenant's export with proofs verifies offline, and a changed record is named.
    let scratch = Scratch::new("audit-tenant");
    let cli = Parapet::with_token(&scratch, "cfg", &srv.url, &watcher);
    let (entries, cpf, _) = files(&scratch, "acme");
    let proofs = scratch.file("acme.proofs");
    cli.run(&[
        "audit",
        "export",
        "-o",
        &entries,
        "--proofs",
        &proofs,
        "--checkpoint",
        &cpf,
    ])
    .succeeded();
    let exported: Vec<String> = std::fs::read_to_string(&entries)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let exported_size = size_of(&std::fs::read_to_string(&cpf).unwrap());
    assert_eq!(
        exported[..acme.len()],
        acme[..],
        "the tenant's records first"
    );
    assert!(
        exported
            .iter()
            .all(|l| record(l)["tenant"] == acme_id.as_str()),
        "{exported:#?}"
    );
    let args = [
        "--checkpoint",
        &cpf,
        "--entries",
        &entries,
        "--proofs",
        &proofs,
        "--public-key",
        &vkey,
    ];
    let report = cli.verify_ok(&args);
    assert_eq!(report["entries"], exported.len());
    assert_eq!(report["size"], exported_size);
    let human = cli.run(&[&["audit", "verify"][..], &args[..]].concat());
    assert!(
        human.succeeded().starts_with(&format!(
            "OK: {} entries reproduce the checkpoint of {}",
            exported.len(),
            verifier.name()
        )),
        "{human:?}"
    );
    let mut changed = exported.clone();
    changed[1] = changed[1].replacen("\"outcome\":\"", "\"outcome\":\"x", 1);
    assert_ne!(changed[1], exported[1]);
    write_lines(&entries, &changed);
    let victim = record(&exported[1])["id"].as_u64().unwrap();
    let (failed, line) = cli.verify_fails(&args);
    assert_eq!(failed, Some(victim), "{line}");
    assert!(
        line.starts_with(&format!("error: verification FAILED at index {victim}: ")),
        "{line}"
    );
}

// -- 3 ------------------------------------------------------------------------------------------

/// The command line end to end: log in, pin the key, export with a checkpoint and the leaf
/// hashes, verify offline (also as an extension of an earlier checkpoint), prove one record;
/// a checkpoint of another log is refused.
fn cli_export_verify_round_trip(backend: Backend) {
    let srv = common::start(backend);
    let http = Http::new(&srv);
    let admin = http.admin();
    let scratch = Scratch::new("audit-cli");
    let cli = Parapet::new(&scratch, "cfg");
    let out = cli.run_with_stdin(
        &[
            "login",
            "--server",
            &srv.url,
            "--username",
            "admin",
            "--password-stdin",
        ],
        Some(&format!("{ADMIN_PASSWORD}\n")),
    );
    out.succeeded();

    // Pin the key: trust on first use, idempotent.
    let (vkey, verifier) = http.public_key();
    let pin = cli.run(&["audit", "public-key", "--pin"]);
    assert_eq!(pin.succeeded(), format!("{vkey}\n"));
    assert!(
        pin.stderr.starts_with("Pinned the audit log key in "),
        "{pin:?}"
    );
    let pinned = cli.config.join("audit-public-key");
    assert_eq!(std::fs::read_to_string(&pinned).unwrap().trim(), vkey);
    assert_eq!(
        cli.run(&["audit", "public-key", "--pin"]).succeeded(),
        format!("{vkey}\n")
    );

    cli.run(&["tenant", "create", "acme"]).succeeded();
    let n = http.records_written(&admin);
    http.checkpoint_covering(&admin, n);
    let earlier = cli.run(&["audit", "checkpoint"]);
    let earlier_signed = earlier.succeeded().to_string();
    let early = open(&earlier_signed, &verifier);
    assert!(early.size >= n, "{early}");
    let earlier_file = scratch.file("earlier.cp");
    std::fs::write(&earlier_file, &earlier_signed).unwrap();
    let j = cli.run(&["audit", "checkpoint", "--json"]).json();
    assert_eq!(j["verified"], true);
    assert_eq!(j["origin"], verifier.name());

    // More records, then the whole export.
    cli.run(&["tenant", "create", "globex"]).succeeded();
    cli.run_with_stdin(
        &[
            "user",
            "create",
            "--tenant",
            "globex",
            "gina",
            "--role",
            "tenant-admin",
            "--password-stdin",
        ],
        Some(PW),
    )
    .succeeded();
    http.settle(&admin);
    let lines = cli.export_whole(&scratch, "all");
    let (entries, cpf, leaves) = files(&scratch, "all");
    let cp = open(&std::fs::read_to_string(&cpf).unwrap(), &verifier);
    assert!(cp.size > early.size);
    let gina = index_of(&lines, "user.create", "user:globex/gina");

    // Offline verification with the pinned key.
    let ok = cli.run(&[
        "audit",
        "verify",
        "--checkpoint",
        &cpf,
        "--entries",
        &entries,
        "--leaf-hashes",
        &leaves,
    ]);
    assert_eq!(
        ok.succeeded(),
        format!(
            "OK: {} entries reproduce the checkpoint of {} (size {}, root {})\n",
            cp.size,
            cp.origin,
            cp.size,
            cp.root.to_base64()
        )
    );
    let report = cli.verify_ok(&["--checkpoint", &cpf, "--entries", &entries]);
    assert_eq!(report["entries"], cp.size);
    assert_eq!(report["root"], cp.root.to_base64());
    // ... extending the earlier checkpoint.
    let ext = cli.run(&[
        "audit",
        "verify",
        "--checkpoint",
        &cpf,
        "--entries",
        &entries,
        "--previous-checkpoint",
        &earlier_file,
    ]);
    assert!(
        ext.succeeded().trim_end().ends_with(&format!(
            "; the log extends the earlier checkpoints of size {}",
            early.size
        )),
        "{ext:?}"
    );
    let report = cli.verify_ok(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &entries,
        "--leaf-hashes",
        &leaves,
        "--previous-checkpoint",
        &earlier_file,
    ]);
    assert_eq!(report["previous_sizes"], json!([early.size]));

    // Proving one record online.
    let proved = cli.run(&["audit", "prove", "--index", &gina.to_string()]);
    assert!(
        proved.succeeded().starts_with(&format!(
            "Record {gina} is in the log {} of size ",
            cp.origin
        )),
        "{proved:?}"
    );
    let p = cli
        .run(&["audit", "prove", "--index", &gina.to_string(), "--json"])
        .json();
    assert_eq!(p["verified"], true);
    assert_eq!(p["entry"], lines[usize::try_from(gina).unwrap()].as_str());
    assert_eq!(
        p["leaf_hash"],
        leaf_hash(lines[usize::try_from(gina).unwrap()].as_bytes()).to_base64()
    );
    let p0 = cli
        .run(&[
            "audit",
            "prove",
            "--index",
            "0",
            "--size",
            &early.size.to_string(),
            "--json",
        ])
        .json();
    assert_eq!(
        (p0["size"].as_u64(), p0["verified"].as_bool()),
        (Some(early.size), Some(true))
    );
    assert_eq!(p0["root"], early.root.to_base64());

    // A record changed in the file is named by its index.
    let mut changed = lines.clone();
    let g = usize::try_from(gina).unwrap();
    changed[g] = changed[g].replace("user:globex/gina", "user:globex/gino");
    let tampered = scratch.file("changed.ndjson");
    write_lines(&tampered, &changed);
    let (failed, line) = cli.verify_fails(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &tampered,
        "--leaf-hashes",
        &leaves,
    ]);
    assert_eq!(failed, Some(gina), "{line}");
    assert!(
        line.starts_with(&format!(
            "error: verification FAILED at index {gina}: record {gina} was changed since it was \
             logged"
        )),
        "{line}"
    );

    // Another log: its checkpoint is not an earlier state of this one, and its key is not the
    // pinned one.
    let other = common::start(backend);
    let other_http = Http::new(&other);
    let other_admin = other_http.admin();
    let other_signed = other_http.settle(&other_admin);
    let (other_key, _) = other_http.public_key();
    assert_ne!(other_key, vkey);
    let other_file = scratch.file("other.cp");
    std::fs::write(&other_file, &other_signed).unwrap();
    let (failed, line) = cli.verify_fails(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &entries,
        "--previous-checkpoint",
        &other_file,
    ]);
    assert_eq!(failed, None, "{line}");
    assert_eq!(
        line,
        format!(
            "error: verification FAILED: earlier checkpoint: the note has no signature by the \
             key {}+{:08x}",
            verifier.name(),
            verifier.key_id()
        )
    );
    // Even with the other log's key, its checkpoint is of another origin.
    let line = cli
        .run(&[
            "audit",
            "verify",
            "--checkpoint",
            &other_file,
            "--entries",
            &entries,
            "--public-key",
            &vkey,
        ])
        .failed();
    assert!(
        line.contains("the checkpoint does not verify with key") && line.contains(&vkey),
        "{line}"
    );
    let line = cli
        .run(&["audit", "public-key", "--pin", "--server", &other.url])
        .failed();
    assert!(line.contains("differs from the key pinned"), "{line}");
    assert_eq!(std::fs::read_to_string(&pinned).unwrap().trim(), vkey);
}

// -- 4 ------------------------------------------------------------------------------------------

/// A database administrator changes, deletes, inserts or reorders stored records after a
/// checkpoint was saved: `audit verify` fails and names the first index that differs, with the
/// leaf hashes saved with the original export and with those of a new export.
fn tampering_is_detected_and_named(backend: Backend) {
    for case in [Tamper::Change, Tamper::Delete, Tamper::Insert, Tamper::Swap] {
        tamper_case(backend, case);
    }
}

fn tamper_case(backend: Backend, case: Tamper) {
    let mut first = common::start(backend);
    let http = Http::new(&first);
    let admin = http.admin();
    for t in ["t-one", "t-two", "t-three", "t-four"] {
        http.setup(&admin, "/api/v1/tenants", json!({"name": t}));
    }
    http.settle(&admin);
    let (vkey, _) = http.public_key();
    let scratch = Scratch::new("audit-tamper");
    let cli = Parapet::with_token(&scratch, "cfg", &first.url, &admin);
    let original = cli.export_whole(&scratch, "orig");
    let (orig_entries, orig_cp, orig_leaves) = files(&scratch, "orig");
    cli.verify_ok(&[
        "--checkpoint",
        &orig_cp,
        "--entries",
        &orig_entries,
        "--leaf-hashes",
        &orig_leaves,
        "--public-key",
        &vkey,
    ]);
    let i = index_of(&original, "tenant.create", "tenant:t-two");
    let j = index_of(&original, "tenant.create", "tenant:t-three");
    assert!(j > i);

    // The administrator stops the server, meets the triggers, lifts them and rewrites.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let refused = as_dba(backend, &first.database, &case.sql(i, j)).unwrap_err();
    assert!(refused.contains("append-only"), "{case:?}: {refused}");
    as_dba(
        backend,
        &first.database,
        &format!("{} {}", lift_triggers(backend), case.sql(i, j)),
    )
    .unwrap_or_else(|e| panic!("{case:?}: {e}"));

    let second = common::start_on(backend, &first.database, &[], &[]);
    let http2 = Http::new(&second);
    let admin2 = http2.admin();
    http2.settle(&admin2);
    assert_eq!(http2.public_key().0, vkey);
    let cli2 = Parapet::with_token(&scratch, "cfg2", &second.url, &admin2);
    let (new_entries, new_cp, new_leaves) = files(&scratch, "new");
    let r = cli2.run(&[
        "audit",
        "export",
        "-o",
        &new_entries,
        "--checkpoint",
        &new_cp,
        "--leaf-hashes",
        &new_leaves,
    ]);
    r.succeeded();
    let now: Vec<String> = std::fs::read_to_string(&new_entries)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let (iu, ju) = (usize::try_from(i).unwrap(), usize::try_from(j).unwrap());
    // What the export shows now.
    match case {
        Tamper::Change => {
            assert_eq!(record(&now[iu])["target"], "tenant:forged");
            assert_eq!(now[..iu], original[..iu]);
        }
        Tamper::Delete => {
            assert_eq!(record(&now[iu])["id"], i + 1);
        }
        Tamper::Insert => {
            assert_eq!(record(&now[iu])["target"], "tenant:forged");
            assert_eq!(record(&now[iu + 1])["target"], "tenant:t-two");
            assert_eq!(record(&now[iu + 1])["id"], i + 1);
        }
        Tamper::Swap => {
            assert_eq!(record(&now[iu])["target"], "tenant:t-three");
            assert_eq!(record(&now[ju])["target"], "tenant:t-two");
            assert_eq!(record(&now[iu])["id"], i);
        }
    }

    let expect_named = |(failed, line): (Option<u64>, String), what: &str| {
        assert_eq!(failed, Some(i), "{case:?} {what}: {line}");
        assert!(
            line.starts_with(&format!("error: verification FAILED at index {i}: ")),
            "{case:?} {what}: {line}"
        );
        match case {
            Tamper::Delete => assert!(
                line.contains("records were removed, inserted or reordered"),
                "{line}"
            ),
            _ => assert!(
                line.contains(&format!("record {i} was changed since it was logged")),
                "{line}"
            ),
        }
    };
    // Against the checkpoint and leaf hashes saved before the tampering.
    expect_named(
        cli2.verify_fails(&[
            "--checkpoint",
            &orig_cp,
            "--entries",
            &new_entries,
            "--leaf-hashes",
            &orig_leaves,
            "--public-key",
            &vkey,
        ]),
        "original leaf hashes",
    );
    // Against the new checkpoint and the leaf hashes of the new export: the log's hash tiles
    // still hold the records as they were logged.
    expect_named(
        cli2.verify_fails(&[
            "--checkpoint",
            &new_cp,
            "--entries",
            &new_entries,
            "--leaf-hashes",
            &new_leaves,
            "--previous-checkpoint",
            &orig_cp,
            "--public-key",
            &vkey,
        ]),
        "new leaf hashes",
    );
    // Without leaf hashes the change is still caught, bounded by the earlier checkpoint.
    let (_, line) = cli2.verify_fails(&[
        "--checkpoint",
        &new_cp,
        "--entries",
        &new_entries,
        "--previous-checkpoint",
        &orig_cp,
        "--public-key",
        &vkey,
    ]);
    assert!(line.starts_with("error: verification FAILED"), "{line}");
    // The server's own proof of a changed record does not verify either.
    if let Tamper::Change = case {
        let line = cli2
            .run(&[
                "audit",
                "prove",
                "--index",
                &i.to_string(),
                "--public-key",
                &vkey,
            ])
            .failed();
        assert!(
            line.starts_with(&format!("error: record {i} is NOT proven in the log")),
            "{line}"
        );
    }
}

// -- 5 ------------------------------------------------------------------------------------------

/// What the load clients were told had succeeded: the user agent of the request and the action
/// it performed.
type Acked = Arc<Mutex<Vec<(String, &'static str)>>>;

/// One load client: creates tenants and users and logs in until told to stop or the server is
/// gone, recording every 2xx; returns whether it saw the server go.
async fn load_client(
    client: reqwest::Client,
    base: String,
    admin: String,
    w: usize,
    acked: Acked,
    refused: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) -> bool {
    let mut k = 0usize;
    while !stop.load(Ordering::SeqCst) {
        k += 1;
        let ua = format!("load/{w}/{k}");
        let (action, rb) = match k % 4 {
            0 => (
                "user.create",
                client
                    .post(format!("{base}/api/v1/tenants/load/users"))
                    .bearer_auth(&admin)
                    .json(&json!({"username": format!("u-{w}-{k}"), "password": PW,
                        "role": "tenant-member"})),
            ),
            1 => (
                "auth.login",
                client
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&json!({"username": "runner@load", "password": PW})),
            ),
            _ => (
                "tenant.create",
                client
                    .post(format!("{base}/api/v1/tenants"))
                    .bearer_auth(&admin)
                    .json(&json!({"name": format!("l-{w}-{k}")})),
            ),
        };
        match rb.header("user-agent", &ua).send().await {
            Ok(res) if res.status().is_success() => acked.lock().unwrap().push((ua, action)),
            Ok(res) => refused
                .lock()
                .unwrap()
                .push(format!("{ua} {action}: {}", res.status())),
            // The server is gone.
            Err(_) => return true,
        }
    }
    false
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Concurrent clients write; the server is killed with SIGKILL in the middle; restarted on the
/// same database, its log holds every acknowledged action, verifies offline, and extends a
/// checkpoint saved before the kill.
fn sigkill_under_load_loses_nothing_acknowledged(backend: Backend) {
    let mut first = common::start(backend);
    let http = Http::new(&first);
    let admin = http.admin();
    let (vkey, verifier) = http.public_key();
    http.setup(&admin, "/api/v1/tenants", json!({"name": "load"}));
    http.setup(
        &admin,
        "/api/v1/tenants/load/users",
        json!({"username": "runner", "password": PW, "role": "tenant-admin"}),
    );
    let acked: Acked = Arc::default();
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|w| {
            http.rt.spawn(load_client(
                http.client.clone(),
                http.base.clone(),
                admin.clone(),
                w,
                acked.clone(),
                refused.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let count = || acked.lock().unwrap().len();
    wait_for("20 acknowledged requests", || count() >= 20);
    // A checkpoint an auditor saved during the load.
    let before_signed = http.latest_checkpoint(&admin);
    let before = open(&before_signed, &verifier);
    wait_for("the load to go on after the saved checkpoint", || {
        count() >= 200 && size_of(&http.latest_checkpoint(&admin)) > before.size
    });
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    let cut_off = clients
        .into_iter()
        .map(|c| http.rt.block_on(c).unwrap())
        .filter(|gone| *gone)
        .count();
    let acked = acked.lock().unwrap().clone();
    assert!(refused.lock().unwrap().is_empty(), "{:?}", refused.lock());
    assert!(acked.len() >= 200);
    assert!(cut_off > 0, "the server must die under load");

    let second = common::start_on(backend, &first.database, &[], &[]);
    let http2 = Http::new(&second);
    let admin2 = http2.admin();
    assert_eq!(http2.public_key().0, vkey);
    http2.settle(&admin2);
    let scratch = Scratch::new("audit-kill");
    let before_file = scratch.file("before.cp");
    std::fs::write(&before_file, &before_signed).unwrap();
    let cli = Parapet::with_token(&scratch, "cfg", &second.url, &admin2);
    let lines = cli.export_whole(&scratch, "after");
    let (entries, cpf, leaves) = files(&scratch, "after");
    let after_signed = std::fs::read_to_string(&cpf).unwrap();
    let after = open(&after_signed, &verifier);
    let report = cli.verify_ok(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &entries,
        "--leaf-hashes",
        &leaves,
        "--previous-checkpoint",
        &before_file,
        "--public-key",
        &vkey,
    ]);
    assert_eq!(report["previous_sizes"], json!([before.size]));
    let c = http2
        .get(
            Some(&admin2),
            &format!(
                "/api/v1/audit/proofs/consistency?from={}&to={}",
                before.size, after.size
            ),
        )
        .ok_json();
    verify_checkpoint_consistency(
        &before_signed,
        &after_signed,
        &verifier,
        &hashes(&c["proof"]),
    )
    .unwrap();

    // Every acknowledged action has its record.
    let by_agent: HashMap<String, Value> = lines
        .iter()
        .map(|l| record(l))
        .filter_map(|r| {
            let ua = r["user_agent"].as_str()?.to_string();
            ua.starts_with("load/").then_some((ua, r))
        })
        .collect();
    for (ua, action) in &acked {
        let r = by_agent
            .get(ua)
            .unwrap_or_else(|| panic!("the acknowledged {action} {ua} has no audit record"));
        assert_eq!(
            (r["action"].as_str(), r["outcome"].as_str()),
            (Some(*action), Some("success")),
            "{r}"
        );
    }
}

// -- 6 ------------------------------------------------------------------------------------------

/// Two servers on one PostgreSQL database, writes through both: one log, the same latest
/// checkpoint from both, and every checkpoint ever signed consistent with the next.
fn two_replicas_one_sequencer(backend: Backend) {
    let mut a = common::start(backend);
    let mut b = common::start_on(backend, &a.database, &[], &[]);
    let (ha, hb) = (Http::new(&a), Http::new(&b));
    let (vkey, verifier) = ha.public_key();
    assert_eq!(hb.public_key().0, vkey);
    let (ta, tb) = (ha.admin(), hb.admin());
    for k in 0..12 {
        let (h, t) = if k % 2 == 0 { (&ha, &ta) } else { (&hb, &tb) };
        h.setup(t, "/api/v1/tenants", json!({"name": format!("r{k}")}));
        h.setup(
            t,
            &format!("/api/v1/tenants/r{k}/users"),
            json!({"username": "reader", "password": PW, "role": "tenant-auditor"}),
        );
        if k % 3 == 2 {
            // Let checkpoints accumulate, read through the other replica.
            let (o, ot) = if k % 2 == 0 { (&hb, &tb) } else { (&ha, &ta) };
            o.settle(ot);
        }
    }
    let n = ha.records_written(&ta);
    let deadline = Instant::now() + CHECKPOINT_DEADLINE;
    let latest = loop {
        let (x, y) = (ha.latest_checkpoint(&ta), hb.latest_checkpoint(&tb));
        if x == y && size_of(&x) >= n {
            break x;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas do not agree on a checkpoint covering {n} records: {x:?} / {y:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let head = open(&latest, &verifier);

    // Every checkpoint, oldest first, page by page.
    let mut list: Vec<(u64, String)> = Vec::new();
    loop {
        let after = list.last().map_or(0, |(s, _)| *s);
        let page = hb
            .get(
                Some(&tb),
                &format!("/api/v1/audit/checkpoints?after={after}&limit=3"),
            )
            .ok_json();
        let page = page.as_array().unwrap();
        if page.is_empty() {
            break;
        }
        for c in page {
            list.push((
                c["size"].as_u64().unwrap(),
                c["checkpoint"].as_str().unwrap().to_string(),
            ));
        }
    }
    assert!(list.len() >= 5, "{list:?}");
    assert_eq!(list.last().unwrap().1, latest);
    for w in list.windows(2) {
        let ((s1, c1), (s2, c2)) = (&w[0], &w[1]);
        assert!(s1 < s2, "sizes must increase: {s1} then {s2}");
        let (old, new) = (open(c1, &verifier), open(c2, &verifier));
        assert_eq!((old.size, new.size), (*s1, *s2));
        // From either replica: the same proof, and it verifies.
        let path = format!("/api/v1/audit/proofs/consistency?from={s1}&to={s2}");
        let pa = ha.get(Some(&ta), &path).ok_json();
        let pb = hb.get(Some(&tb), &path).ok_json();
        assert_eq!(pa, pb);
        verify_checkpoint_consistency(c1, c2, &verifier, &hashes(&pa["proof"]))
            .unwrap_or_else(|e| panic!("{s1} -> {s2}: {e}"));
        assert_eq!(
            &ha.get(Some(&ta), &format!("/api/v1/audit/checkpoint?size={s2}"))
                .ok_text(),
            c2
        );
    }
    // Both replicas' writes are in the one log, in a tree with the head's root.
    let lines = hb.export(&tb, "", head.size);
    let leaves: Vec<Hash> = lines.iter().map(|l| leaf_hash(l.as_bytes())).collect();
    assert_eq!(root_of(&leaves), head.root);
    for k in 0..12 {
        index_of(&lines, "tenant.create", &format!("tenant:r{k}"));
        index_of(&lines, "user.create", &format!("user:r{k}/reader"));
    }

    // Only one replica ever integrated (the sequencer sets the log-size gauge). When it dies,
    // the other takes over and extends the same tree.
    let sequenced = |h: &Http| {
        let a = h.get(None, "/metrics");
        a.ok_text()
            .lines()
            .any(|l| l.starts_with("parapet_audit_log_size "))
    };
    let (sa, sb) = (sequenced(&ha), sequenced(&hb));
    assert!(sa != sb, "exactly one sequencer expected: {sa} {sb}");
    let (dead, survivor, token) = if sa {
        (&mut a, &hb, &tb)
    } else {
        (&mut b, &ha, &ta)
    };
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    survivor.setup(token, "/api/v1/tenants", json!({"name": "after-failover"}));
    let next_signed = survivor.settle(token);
    let next = open(&next_signed, &verifier);
    assert!(next.size > head.size, "{next}");
    assert!(sequenced(survivor));
    let c = survivor
        .get(
            Some(token),
            &format!(
                "/api/v1/audit/proofs/consistency?from={}&to={}",
                head.size, next.size
            ),
        )
        .ok_json();
    verify_checkpoint_consistency(&latest, &next_signed, &verifier, &hashes(&c["proof"])).unwrap();
}

// -- 7 ------------------------------------------------------------------------------------------

/// Malformed or impossible requests get RFC 9457 problems, and `audit verify` refuses bad files
/// with one line and a non-zero exit, never a panic.
fn bad_input_on_audit_endpoints(backend: Backend) {
    let srv = common::start(backend);
    let http = Http::new(&srv);
    let admin = http.admin();
    http.setup(&admin, "/api/v1/tenants", json!({"name": "acme"}));
    let signed = http.settle(&admin);
    let (vkey, verifier) = http.public_key();
    let s = open(&signed, &verifier).size;
    assert!(s > 2 && s < 256, "{s}");
    let beyond = s + 1000;
    let cases: [(String, u16); 41] = [
        // Inclusion proofs.
        (format!("proofs/inclusion?index=0&size={beyond}"), 400),
        (format!("proofs/inclusion?index={s}&size={s}"), 400),
        (format!("proofs/inclusion?index={beyond}"), 400),
        ("proofs/inclusion?index=0&size=0".into(), 400),
        ("proofs/inclusion?index=abc".into(), 400),
        ("proofs/inclusion?index=-1".into(), 400),
        ("proofs/inclusion?index=18446744073709551616".into(), 400),
        ("proofs/inclusion?index=0&size=x".into(), 400),
        ("proofs/inclusion".into(), 400),
        ("proofs/inclusion?index=0&bogus=1".into(), 400),
        // Consistency proofs.
        (format!("proofs/consistency?from={s}&to=1"), 400),
        (format!("proofs/consistency?from=1&to={beyond}"), 400),
        (format!("proofs/consistency?from={beyond}"), 400),
        ("proofs/consistency?from=abc".into(), 400),
        ("proofs/consistency?from=1&to=".into(), 400),
        ("proofs/consistency".into(), 400),
        // Checkpoints.
        ("checkpoint?size=abc".into(), 400),
        ("checkpoint?size=1.5".into(), 400),
        (format!("checkpoint?size={beyond}"), 404),
        ("checkpoints?after=abc".into(), 400),
        ("checkpoints?limit=-1".into(), 400),
        // Exports.
        (format!("entries?size={beyond}"), 400),
        ("entries?from=abc".into(), 400),
        ("entries?limit=lots".into(), 400),
        ("entries?proofs=maybe".into(), 400),
        ("entries?tenant=nosuch".into(), 404),
        // Tiles.
        ("tile/0/abc".into(), 400),
        ("tile/0/1".into(), 400),
        ("tile/0/000.p/0".into(), 400),
        ("tile/0/000.p/256".into(), 400),
        ("tile/0/000.p/abc".into(), 400),
        ("tile/99/000".into(), 400),
        ("tile/x/000".into(), 400),
        ("tile/0/x000/001".into(), 400),
        ("tile/0".into(), 400),
        ("tile/0/999".into(), 404),
        ("tile/0/x001/000".into(), 404),
        // A full first tile does not exist yet, nor one wider than the tree.
        ("tile/0/000".into(), 404),
        (format!("tile/0/000.p/{}", s + 1), 404),
        ("tile/entries/000".into(), 404),
        ("tile/entries/000.p/1".into(), 404),
    ];
    for (path, status) in &cases {
        let a = http.get(Some(&admin), &format!("/api/v1/audit/{path}"));
        assert_eq!(a.status, *status, "{path}: {}", a.text());
        a.problem(*status);
    }
    // The edges that are fine.
    assert_eq!(
        http.get(
            Some(&admin),
            &format!("/api/v1/audit/proofs/consistency?from={s}&to={s}")
        )
        .ok_json()["proof"],
        json!([])
    );
    http.get(
        Some(&admin),
        &format!("/api/v1/audit/proofs/inclusion?index={}&size={s}", s - 1),
    )
    .ok_json();
    assert_eq!(
        http.get(Some(&admin), "/api/v1/audit/entries?from=5&to=2")
            .ok_text(),
        ""
    );

    // `audit verify` with bad files: the good files first.
    let scratch = Scratch::new("audit-bad");
    let (entries, cpf, leaves) = files(&scratch, "good");
    let lines = http.export(&admin, "", s);
    write_lines(&entries, &lines);
    std::fs::write(&cpf, &signed).unwrap();
    let cli = Parapet::new(&scratch, "cfg");
    cli.verify_ok(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &entries,
        "--public-key",
        &vkey,
    ]);
    let fails =
        |args: &[&str]| -> String { cli.run(&[&["audit", "verify"][..], args].concat()).failed() };

    let missing = scratch.file("missing");
    let line = fails(&[
        "--checkpoint",
        &missing,
        "--entries",
        &entries,
        "--public-key",
        &vkey,
    ]);
    assert!(
        line.contains("cannot read") && line.contains(&missing),
        "{line}"
    );
    let line = fails(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &missing,
        "--public-key",
        &vkey,
    ]);
    assert!(
        line.contains("cannot open") && line.contains(&missing),
        "{line}"
    );
    // No key at all (nothing pinned), a malformed key, a key file that does not exist.
    let line = fails(&["--checkpoint", &cpf, "--entries", &entries]);
    assert!(line.contains("no public key"), "{line}");
    let line = fails(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &entries,
        "--public-key",
        "a+b+c",
    ]);
    assert!(line.contains("invalid public key"), "{line}");
    let line = fails(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &entries,
        "--public-key",
        &missing,
    ]);
    assert!(line.contains("cannot read the public key file"), "{line}");

    // A malformed checkpoint.
    let garbage = scratch.file("garbage.cp");
    std::fs::write(&garbage, "not a checkpoint\n").unwrap();
    let line = fails(&[
        "--checkpoint",
        &garbage,
        "--entries",
        &entries,
        "--public-key",
        &vkey,
    ]);
    assert!(line.contains("the checkpoint does not verify"), "{line}");
    let line = fails(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &entries,
        "--public-key",
        &vkey,
        "--previous-checkpoint",
        &garbage,
    ]);
    assert!(line.contains("earlier checkpoint"), "{line}");

    // A wrong key, and a forged checkpoint of the same origin signed by another key.
    let impostor = NoteSigner::from_seed(verifier.name(), &[7; 32]).unwrap();
    let line = fails(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &entries,
        "--public-key",
        &impostor.verifier().to_vkey(),
    ]);
    assert!(line.contains("no signature by the key"), "{line}");
    let cp = open(&signed, &verifier);
    let forged = scratch.file("forged.cp");
    std::fs::write(&forged, cp.sign(&impostor).unwrap()).unwrap();
    let line = fails(&[
        "--checkpoint",
        &forged,
        "--entries",
        &entries,
        "--public-key",
        &vkey,
    ]);
    assert!(line.contains("no signature by the key"), "{line}");

    // Entries: the last line cut short, none at all, one too many, one that is not a record.
    let cut = scratch.file("cut.ndjson");
    std::fs::write(&cut, lines.join("\n")).unwrap();
    let (failed, line) = cli.verify_fails(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &cut,
        "--public-key",
        &vkey,
    ]);
    assert_eq!(failed, Some(s - 1), "{line}");
    assert!(line.contains("the last line has no newline"), "{line}");
    let empty = scratch.file("empty.ndjson");
    std::fs::write(&empty, "").unwrap();
    let (failed, line) = cli.verify_fails(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &empty,
        "--public-key",
        &vkey,
    ]);
    assert_eq!(failed, Some(0), "{line}");
    assert!(
        line.contains(&format!("the export has 0 entries, the checkpoint {s}")),
        "{line}"
    );
    let more = scratch.file("more.ndjson");
    let mut longer = lines.clone();
    longer.push(lines[0].replace("\"id\":0,", &format!("\"id\":{s},")));
    write_lines(&more, &longer);
    let (failed, line) = cli.verify_fails(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &more,
        "--public-key",
        &vkey,
    ]);
    assert_eq!(failed, Some(s), "{line}");
    let junk = scratch.file("junk.ndjson");
    let mut junked = lines.clone();
    junked[1] = "this is not JSON".into();
    write_lines(&junk, &junked);
    let (failed, line) = cli.verify_fails(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &junk,
        "--public-key",
        &vkey,
    ]);
    assert_eq!(failed, Some(1), "{line}");
    assert!(line.contains("line 2 is not an audit record"), "{line}");

    // Leaf hashes of the wrong length, and a proofs file that is not one.
    std::fs::write(&leaves, [0u8; 33]).unwrap();
    let line = fails(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &entries,
        "--public-key",
        &vkey,
        "--leaf-hashes",
        &leaves,
    ]);
    assert!(
        line.contains(&format!("not {s} hashes of 32 bytes")),
        "{line}"
    );
    let proofs = scratch.file("proofs.jsonl");
    write_lines(&proofs, &vec!["{}".to_string(); lines.len()]);
    let line = fails(&[
        "--checkpoint",
        &cpf,
        "--entries",
        &entries,
        "--public-key",
        &vkey,
        "--proofs",
        &proofs,
    ]);
    assert!(line.contains("malformed proof line"), "{line}");
}
