//! Witnessing (issue 3, scope 7): checkpoints published outside the database, and a rewritten
//! history detected by `parapet audit consistency` even when the attacker controls the database
//! and the signing key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    ADMIN_PASSWORD, Backend, Server, as_dba, bin, moto, start_on, start_with, test_python as python,
};

on_both!(a_rewritten_history_is_detected_by_saved_checkpoints);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn temp(name: &str) -> PathBuf {
    parapet_store_sql::testkit::temp_dir(name)
}

/// Runs the CLI against `srv` with a fresh configuration directory; returns (status, stdout,
/// stderr).
fn cli(srv: &Server, config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env("PARAPET_CONFIG_DIR", config)
        .env("PARAPET_SERVER", &srv.url)
        .env_remove("PARAPET_TOKEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn login(srv: &Server, config: &Path) {
    let mut child = Command::new(bin())
        .args(["login", "--username", "admin", "--password-stdin"])
        .env("PARAPET_CONFIG_DIR", config)
        .env("PARAPET_SERVER", &srv.url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{ADMIN_PASSWORD}").unwrap();
    assert!(child.wait().unwrap().success(), "login failed");
    let (ok, _, err) = cli(srv, config, &["audit", "public-key", "--pin"]);
    assert!(ok, "{err}");
}

/// The sizes of the checkpoints a directory witness holds.
fn witnessed(dir: &Path) -> Vec<u64> {
    let mut sizes: Vec<u64> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".checkpoint")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort_unstable();
    sizes
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create_tenants(srv: &Server, config: &Path, names: &[&str]) {
    for n in names {
        let (ok, _, err) = cli(srv, config, &["tenant", "create", n]);
        assert!(ok, "tenant create {n}: {err}");
    }
}

/// An attacker with the database and the signing key rewrites a record and re-signs a whole new
/// history. The new log verifies on its own, but the checkpoints a witness saved before prove
/// the rewrite.
fn a_rewritten_history_is_detected_by_saved_checkpoints(backend: Backend) {
    let witness = temp("witness");
    let config = temp("cfg");
    let spec = format!("dir:{}", witness.display());
    let mut srv = start_with(backend, &["--audit-witness", &spec], &[]);
    login(&srv, &config);
    create_tenants(&srv, &config, &["alpha", "beta", "gamma"]);
    // Records so far: bootstrap, log-in, three tenants.
    wait_for("the witness to hold a checkpoint of 5 records", || {
        witnessed(&witness).last().is_some_and(|s| *s >= 5)
    });
    let (ok, out, err) = cli(
        &srv,
        &config,
        &["audit", "consistency", witness.to_str().unwrap()],
    );
    assert!(ok, "an untouched log must be consistent: {err}");
    assert!(out.starts_with("OK:"), "{out}");

    let before = witnessed(&witness);
    let saved: Vec<(PathBuf, String)> = before
        .iter()
        .map(|s| {
            let p = witness.join(format!("{s:020}.checkpoint"));
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    // The attack: stop the server, change record 2 (the first tenant's creation), and throw
    // away the log structure so that the server rebuilds and re-signs it from the records.
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
    let database = srv.database.clone();
    let lift = match backend {
        Backend::Sqlite => {
            "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_checkpoints_no_delete;"
        }
        Backend::Postgres => {
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change; \
             ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_no_change;"
        }
    };
    as_dba(
        backend,
        &database,
        &format!(
            "{lift} UPDATE audit_events SET target = 'tenant:innocent' WHERE seq = 2; \
             DELETE FROM audit_tiles; DELETE FROM audit_checkpoints; DELETE FROM audit_log;"
        ),
    )
    .unwrap();
    // Restarting with the same key (the attacker has it): a new, self-consistent history.
    let extra = ["--audit-witness", spec.as_str()];
    let srv2 = start_on(backend, &database, &extra, &[]);
    let config2 = temp("cfg2");
    login(&srv2, &config2);
    // The pinned key is the same key: the rewrite is signed "validly".
    assert_eq!(
        std::fs::read_to_string(config.join("audit-public-key")).unwrap(),
        std::fs::read_to_string(config2.join("audit-public-key")).unwrap()
    );
    wait_for("the rewritten log to be signed", || {
        let (ok, out, _) = cli(&srv2, &config2, &["audit", "checkpoint", "--json"]);
        ok && serde_json::from_str::<serde_json::Value>(&out).unwrap()["size"]
            .as_u64()
            .unwrap()
            > *before.last().unwrap()
    });
    // The witness kept what it saw: the rewritten checkpoints of sizes it holds were refused.
    for (path, text) in &saved {
        assert_eq!(
            &std::fs::read_to_string(path).unwrap(),
            text,
            "{}",
            path.display()
        );
    }
    let names: Vec<String> = saved.iter().map(|(p, _)| p.display().to_string()).collect();
    let mut args = vec!["audit", "consistency"];
    args.extend(names.iter().map(String::as_str));
    let (ok, _, err) = cli(&srv2, &config2, &args);
    assert!(!ok, "a rewritten history passed the consistency check");
    assert!(err.contains("REWRITTEN"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    if backend == Backend::Sqlite {
        let _ = std::fs::remove_dir_all(&database);
    }
}

/// A webhook witness receives every new checkpoint (POSTed as text), and a directory witness
/// writes them as files; a failing witness does not stop the others.
#[test]
fn webhook_and_directory_witnesses_receive_checkpoints() {
    let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let runtime = rt();
    let sink = received.clone();
    let addr = runtime.block_on(async move {
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: String| async move {
                    let size = headers
                        .get("parapet-tree-size")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    sink.lock().unwrap().push((size, body));
                    "ok"
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let dir = temp("witness-dir");
    let hook = format!("http://{addr}/hook");
    let dead = "http://127.0.0.1:9/unreachable".to_string();
    let spec = format!("dir:{}", dir.display());
    let srv = start_with(
        Backend::Sqlite,
        &[
            "--audit-witness",
            &dead,
            "--audit-witness",
            &hook,
            "--audit-witness",
            &spec,
        ],
        &[],
    );
    let config = temp("cfg-hook");
    login(&srv, &config);
    create_tenants(&srv, &config, &["delta"]);
    wait_for("the webhook to receive a checkpoint of 3 records", || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|(s, _)| s.parse::<u64>().unwrap_or(0) >= 3)
    });
    let (size, body) = received.lock().unwrap().last().cloned().unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[1], size, "the body is not the checkpoint of its size");
    assert!(lines[0].starts_with("parapet.provider/audit/"), "{body}");
    wait_for("the directory witness", || {
        witnessed(&dir).last().is_some_and(|s| *s >= 3)
    });
    let latest = std::fs::read_to_string(dir.join("latest")).unwrap();
    assert!(
        latest.contains("\n\n\u{2014} "),
        "latest is not a signed note: {latest}"
    );
    let (ok, out, err) = cli(
        &srv,
        &config,
        &["audit", "consistency", dir.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("OK:"), "{out}");
    drop(srv);
}

/// Our AWS Signature V4 is byte-for-byte botocore's (the reference implementation) for the same
/// request and time.
#[test]
fn s3_witness_signature_matches_botocore() {
    let script = r#"
import hashlib, json, sys
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
url, body = sys.argv[1], sys.argv[2].encode()
req = AWSRequest(method="PUT", url=url, data=body,
                 headers={"x-amz-content-sha256": hashlib.sha256(body).hexdigest()})
S3SigV4Auth(Credentials("AKIDEXAMPLE", "wJalr/K7MDENG+bPxRfiCY"), "s3", "eu-west-3").add_auth(req)
print(json.dumps({"date": req.headers["X-Amz-Date"], "authorization": req.headers["Authorization"]}))
"#;
    let target = parapet_app::witness::S3Target {
        endpoint: "http://127.0.0.1:9000".into(),
        bucket: "witness".into(),
        prefix: "parapet/log/".into(),
        region: "eu-west-3".into(),
        access_key: "AKIDEXAMPLE".into(),
        secret_key: "wJalr/K7MDENG+bPxRfiCY".into(),
    };
    let body = "parapet.example/audit\n42\nAAAA\n\n";
    let url =
        parapet_app::witness::s3_object_url(&target, "00000000000000000042.checkpoint").unwrap();
    let out = Command::new(python())
        .args(["-c", script, url.as_str(), body])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "botocore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = parapet_app::witness::sigv4_put_authorization(
        &target,
        &url,
        reference["date"].as_str().unwrap(),
        &hex_sha256(body.as_bytes()),
    )
    .unwrap();
    assert_eq!(ours, reference["authorization"].as_str().unwrap());
}

fn hex_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An S3 witness (moto's S3 server) receives the checkpoints as objects.
#[test]
fn s3_witness_stores_checkpoints_in_the_bucket() {
    let s3 = moto();
    let rt = rt();
    let http = reqwest::Client::new();
    let status = rt
        .block_on(http.put(format!("{}/witness", s3.url)).send())
        .unwrap()
        .status();
    assert!(status.is_success(), "cannot create the bucket: {status}");
    let srv = start_with(
        Backend::Sqlite,
        &["--audit-witness", "s3://witness/parapet"],
        &[
            ("PARAPET_S3_ENDPOINT", s3.url.as_str()),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "moto-secret"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    let config = temp("cfg-s3");
    login(&srv, &config);
    create_tenants(&srv, &config, &["epsilon"]);
    let (ok, cp, err) = cli(&srv, &config, &["audit", "checkpoint", "--json"]);
    assert!(ok, "{err}");
    let cp: serde_json::Value = serde_json::from_str(&cp).unwrap();
    let size = cp["size"].as_u64().unwrap();
    let listing = || {
        rt.block_on(async {
            http.get(format!("{}/witness?list-type=2", s3.url))
                .send()
                .await?
                .text()
                .await
        })
        .unwrap_or_default()
    };
    // The publisher sends the latest checkpoint: the one seen, or a later one signed meanwhile.
    let stored_sizes = || -> Vec<u64> {
        listing()
            .split("<Key>parapet/")
            .skip(1)
            .filter_map(|k| k.split(".checkpoint</Key>").next()?.parse().ok())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let size = loop {
        if let Some(s) = stored_sizes().into_iter().filter(|s| *s >= size).max() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size} or later in the bucket: {}",
            listing()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (ok, cp, err) = cli(
        &srv,
        &config,
        &["audit", "checkpoint", "--json", "--size", &size.to_string()],
    );
    assert!(ok, "{err}");
    let cp: serde_json::Value = serde_json::from_str(&cp).unwrap();
    // Read it back as an S3 client would (boto3, signed; the bucket is private).
    let get = r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="moto-secret")
sys.stdout.write(s3.get_object(Bucket="witness", Key=sys.argv[2])["Body"].read().decode())
"#;
    let out = Command::new(python())
        .args([
            "-c",
            get,
            &s3.url,
            &format!("parapet/{size:020}.checkpoint"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stored, cp["checkpoint"].as_str().unwrap());
    drop(srv);
}
