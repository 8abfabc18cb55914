//! Bring-your-own-key (issue 5, X.1642 8.2(3)) through the real server, API and CLI on both
//! backends: a tenant gets a short-lived RSA-OAEP-3072 or X25519 wrapping key, wraps material
//! made on its side with Python's `cryptography` (`tests/independent/kms_byok.py`, written from
//! the format's description), and imports it; the key is marked external, holds exactly that
//! material (exported back, Ed25519 public key), is never rotated by Parapet; another tenant's
//! token, altered wrapped data and members without the role are refused; imports are audited.
//!
//! The interpreter comes from `PARAPET_TEST_PYTHON` (see `kms_interop.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{ADMIN_PASSWORD, Backend, start_with};
use serde_json::{Value, json};

on_both!(tenants_import_material_wrapped_outside_parapet);

const PW: &str = "kms-byok-password-123";
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/independent/kms_byok.py")
}

fn python() -> PathBuf {
    common::python_for(&script(), "the package cryptography")
}

fn cli(url: &str, token: &str, args: &[&str], stdin: &[u8]) -> Output {
    common::run_cli(url, token, args, stdin)
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn err(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn login(http: &reqwest::Client, url: &str, user: &str, pw: &str) -> String {
    let r: Value = http
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["token"].as_str().unwrap().to_string()
}

fn tenants_import_material_wrapped_outside_parapet(backend: Backend) {
    let python = python();
    let dir = parapet_store_sql::testkit::temp_dir("byok");
    let keyfile = dir.join("root.key");
    let srv = start_with(
        backend,
        &["--kms-key-file", &keyfile.display().to_string()],
        &[],
    );
    let url = srv.url.clone();
    let http = reqwest::Client::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (admin, alice, bob, gina) = rt.block_on(async {
        let admin = login(&http, &url, "admin", ADMIN_PASSWORD).await;
        for t in ["acme", "globex"] {
            let s = http
                .post(format!("{url}/api/v1/tenants"))
                .bearer_auth(&admin)
                .json(&json!({"name": t}))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(s, 201);
        }
        for (t, u, role) in [
            ("acme", "alice", "tenant-admin"),
            ("acme", "bob", "tenant-member"),
            ("globex", "gina", "tenant-admin"),
        ] {
            let s = http
                .post(format!("{url}/api/v1/tenants/{t}/users"))
                .bearer_auth(&admin)
                .json(&json!({"username": u, "password": PW, "role": role}))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(s, 201);
        }
        (
            admin,
            login(&http, &url, "alice@acme", PW).await,
            login(&http, &url, "bob@acme", PW).await,
            login(&http, &url, "gina@globex", PW).await,
        )
    });

    // Members do not get wrapping keys.
    assert!(err(&cli(&url, &bob, &["kms", "wrapping-key"], b"")).contains("403"));

    for (alg, kt, name) in [
        ("rsa-oaep-sha256", "aes256-gcm", "byok-aes"),
        ("x25519", "ed25519", "byok-signer"),
    ] {
        let pem_file = dir.join(format!("{name}.pem"));
        let wk: Value = serde_json::from_str(&ok(&cli(
            &url,
            &alice,
            &[
                "kms",
                "wrapping-key",
                "--algorithm",
                alg,
                "--public-key-out",
                &pem_file.display().to_string(),
                "--json",
            ],
            b"",
        )))
        .unwrap();
        let token = wk["import_token"].as_str().unwrap().to_string();
        let full_alg = wk["algorithm"].as_str().unwrap().to_string();
        assert!(
            std::fs::read_to_string(&pem_file)
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        // The tenant's own material, wrapped on its side.
        let material: Vec<u8> = (0..32u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(name.len() as u8))
            .collect();
        let py_out = Command::new(&python)
            .arg(script())
            .args([
                "wrap",
                &pem_file.display().to_string(),
                &full_alg,
                &STANDARD.encode(&material),
            ])
            .output()
            .unwrap();
        let wrapped = ok(&py_out);

        // Another tenant cannot use this tenant's token; altered data does not unwrap.
        let e = err(&cli(
            &url,
            &gina,
            &[
                "kms",
                "key",
                "import",
                name,
                "--type",
                kt,
                "--import-token",
                &token,
            ],
            wrapped.as_bytes(),
        ));
        assert!(e.contains("import token is invalid"), "{e}");
        let mut raw = STANDARD.decode(wrapped.trim()).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let e = err(&cli(
            &url,
            &alice,
            &[
                "kms",
                "key",
                "import",
                name,
                "--type",
                kt,
                "--import-token",
                &token,
            ],
            &raw,
        ));
        assert!(e.contains("does not unwrap"), "{e}");
        let e = err(&cli(
            &url,
            &bob,
            &[
                "kms",
                "key",
                "import",
                name,
                "--type",
                kt,
                "--import-token",
                &token,
            ],
            wrapped.as_bytes(),
        ));
        assert!(e.contains("403"), "{e}");

        let out = ok(&cli(
            &url,
            &alice,
            &[
                "kms",
                "key",
                "import",
                name,
                "--type",
                kt,
                "--import-token",
                &token,
                "--exportable",
            ],
            wrapped.as_bytes(),
        ));
        assert!(out.contains("origin external"), "{out}");
        let shown: Value = serde_json::from_str(&ok(&cli(
            &url,
            &alice,
            &["kms", "key", "show", name, "--json"],
            b"",
        )))
        .unwrap();
        assert_eq!(
            (shown["origin"].as_str(), shown["type"].as_str()),
            (Some("external"), Some(kt)),
            "{shown}"
        );
        // The key holds exactly the tenant's material.
        let exported: Value = serde_json::from_str(&ok(&cli(
            &url,
            &alice,
            &["kms", "key", "export", name],
            b"",
        )))
        .unwrap();
        assert_eq!(
            exported["versions"][0]["material"].as_str(),
            Some(STANDARD.encode(&material).as_str())
        );
        if kt == "ed25519" {
            let pk = parapet_kms::crypto::ed25519_public(&material).unwrap();
            assert_eq!(
                shown["versions"][0]["public_key"].as_str(),
                Some(STANDARD.encode(pk).as_str())
            );
        } else {
            let ct = ok(&cli(
                &url,
                &alice,
                &["kms", "encrypt", "--key", name],
                b"tenant data",
            ));
            let o = cli(&url, &alice, &["kms", "decrypt"], ct.as_bytes());
            assert_eq!(ok(&o), "tenant data");
        }
        // Parapet does not rotate imported material.
        let e = err(&cli(&url, &alice, &["kms", "key", "rotate", name], b""));
        assert!(e.contains("imported"), "{e}");
        // The same name cannot be imported twice.
        let e = err(&cli(
            &url,
            &alice,
            &[
                "kms",
                "key",
                "import",
                name,
                "--type",
                kt,
                "--import-token",
                &token,
            ],
            wrapped.as_bytes(),
        ));
        assert!(e.contains("409"), "{e}");
    }
    // Generated keys say so.
    ok(&cli(
        &url,
        &alice,
        &["kms", "key", "create", "made-here"],
        b"",
    ));
    let shown: Value = serde_json::from_str(&ok(&cli(
        &url,
        &alice,
        &["kms", "key", "show", "made-here", "--json"],
        b"",
    )))
    .unwrap();
    assert_eq!(shown["origin"].as_str(), Some("parapet"));
    // Imports and wrapping keys are in the audit trail.
    let audit: Value = rt.block_on(async {
        http.get(format!(
            "{url}/api/v1/tenants/acme/audit?action=kms.key.import&limit=100"
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
    });
    let ok_imports: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "success")
        .collect();
    assert_eq!(ok_imports.len(), 2, "{audit}");
    assert!(
        ok_imports
            .iter()
            .all(|r| r["details"]["origin"] == "external")
    );
}
