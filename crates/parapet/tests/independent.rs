//! The audit log checked by implementations outside the project: the real `parapet serve` on
//! SQLite gets a few hundred audited actions, then `tests/independent/verify_audit_log.py` checks
//! the signed checkpoint (Ed25519 by the `cryptography` package), every record's leaf hash and
//! inclusion proof (the `pymerkle` package), the roots of all signed checkpoints, RFC 9162
//! consistency proofs and the hash tiles, once over HTTP and once offline from the saved
//! responses; a tampered saved proof must then make it fail.
//!
//! The interpreter comes from `PARAPET_TEST_PYTHON` (the virtual environment `scripts/test`
//! makes in `target/pyenv`, with the pinned packages of `tests/independent/requirements.txt`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, Backend};
use serde_json::{Value, json};

/// Tenants created, each with one user: at least 2 records each, so more than one full tile.
const TENANTS: usize = 150;
/// Requests at once while creating them.
const WORKERS: usize = 4;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn script() -> PathBuf {
    root().join("tests/independent/verify_audit_log.py")
}

fn python() -> PathBuf {
    common::python_for(
        &script(),
        "pymerkle and cryptography (the independent audit-log verifier)",
    )
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> (u16, String) {
    let res = http.get(url).bearer_auth(token).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn post(http: &reqwest::Client, url: &str, token: &str, body: Value) {
    let res = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert_eq!(status, 201, "POST {url}: {}", res.text().await.unwrap());
}

/// The size of the latest signed checkpoint (0 before the first one).
async fn checkpoint_size(http: &reqwest::Client, base: &str, token: &str) -> u64 {
    let (status, note) = get(http, &format!("{base}/api/v1/audit/checkpoint"), token).await;
    if status == 404 {
        return 0;
    }
    assert_eq!(status, 200, "{note}");
    note.lines().nth(1).unwrap().parse().unwrap()
}

/// Creates the tenants and users; returns the admin token and the number of records the
/// checkpoint must then cover.
async fn populate(base: &str) -> (String, u64) {
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    let mut workers = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let (http, base, token) = (http.clone(), base.to_string(), token.clone());
        workers.spawn(async move {
            for t in (w..TENANTS).step_by(WORKERS) {
                let tenant = format!("t{t:03}");
                post(
                    &http,
                    &format!("{base}/api/v1/tenants"),
                    &token,
                    json!({"name": tenant}),
                )
                .await;
                post(
                    &http,
                    &format!("{base}/api/v1/tenants/{tenant}/users"),
                    &token,
                    json!({"username": format!("u{t:03}"), "password": "a-long-enough-password-42",
                           "role": "tenant-member"}),
                )
                .await;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }

    // The newest record's index; the log must cover it.
    let (status, body) = get(
        &http,
        &format!("{base}/api/v1/tenants/provider/audit?limit=1000"),
        &token,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let items: Value = serde_json::from_str(&body).unwrap();
    let newest = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .max()
        .unwrap();
    let want = newest + 1;
    assert!(
        want > 2 * TENANTS as u64,
        "only {want} records after {TENANTS} tenants and users"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let size = checkpoint_size(&http, base, &token).await;
        if size >= want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint covers the {want} records within 20 s (latest: {size})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (token, want)
}

fn run(python: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(python);
    cmd.arg(script()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The saved inclusion proof of record `index`.
fn saved_inclusion_proof(dir: &Path, index: u64) -> PathBuf {
    let prefix = format!("api_v1_audit_proofs_inclusion_index_{index}_size_");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .unwrap_or_else(|| panic!("no saved inclusion proof of record {index} in {dir:?}"))
}

#[test]
fn audit_log_verifies_with_independent_implementations() {
    let python = python();
    let srv = common::start(Backend::Sqlite);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t0 = Instant::now();
    let (token, want) = rt.block_on(populate(&srv.url));
    eprintln!("{want} records signed in {:?}", t0.elapsed());

    let saved = parapet_store_sql::testkit::temp_dir("independent");
    let saved_str = saved.display().to_string();
    let min_size = want.to_string();

    // Over HTTP, saving every response.
    let t1 = Instant::now();
    let out = run(
        &python,
        &["--min-size", &min_size, "--save", &saved_str],
        &[("PARAPET_SERVER", &srv.url), ("PARAPET_TOKEN", &token)],
    );
    assert!(out.status.success(), "{}", show(&out));
    let summary = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(summary.starts_with("OK: "), "{}", show(&out));
    eprintln!("over HTTP in {:?}: {summary}", t1.elapsed());

    // Offline, from the saved responses: the same verdict.
    let out = run(
        &python,
        &["--min-size", &min_size, "--from-dir", &saved_str],
        &[],
    );
    assert!(out.status.success(), "{}", show(&out));
    let offline = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        offline.split("; ").take(6).collect::<Vec<_>>(),
        summary.split("; ").take(6).collect::<Vec<_>>()
    );

    // One record changed in the saved responses, its leaf hash recomputed to match: the
    // verifier must name it and fail.
    let file = saved_inclusion_proof(&saved, 7);
    let mut proof: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let entry = proof["entry"]
        .as_str()
        .unwrap()
        .replacen("success", "failure", 1);
    assert_ne!(proof["entry"].as_str().unwrap(), entry, "{proof}");
    proof["leaf_hash"] = Value::String(parapet_audit::leaf_hash(entry.as_bytes()).to_base64());
    proof["entry"] = Value::String(entry);
    std::fs::write(&file, serde_json::to_vec(&proof).unwrap()).unwrap();
    let out = run(
        &python,
        &["--min-size", &min_size, "--from-dir", &saved_str],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("record 7"), "{}", show(&out));

    let _ = std::fs::remove_dir_all(&saved);
    drop(srv);
    eprintln!("total {:?}", t0.elapsed());
}
