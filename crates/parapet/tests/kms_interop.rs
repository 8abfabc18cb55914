//! Parapet's ciphertexts checked by an independent implementation: Python's `cryptography`
//! package (`tests/independent/kms_interop.py`, written from the format's description) decrypts
//! what the real server encrypted, given the key exported from an exportable key, and Parapet
//! decrypts what Python encrypted; contexts bind both ways; Ed25519 signatures verify in Python.
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

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{ADMIN_PASSWORD, Backend, start_with};
use serde_json::{Value, json};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/independent/kms_interop.py")
}

fn python() -> PathBuf {
    common::python_for(&script(), "the package cryptography")
}

fn py(python: &Path, args: &[&str]) -> Output {
    Command::new(python)
        .arg(script())
        .args(args)
        .output()
        .unwrap()
}

fn cli(url: &str, token: &str, args: &[&str], stdin: &[u8]) -> Output {
    common::run_cli(url, token, args, stdin)
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn python_cryptography_reads_and_writes_parapet_ciphertexts() {
    let python = python();
    let keyfile = parapet_store_sql::testkit::temp_dir("kmskey").join("root.key");
    let srv = start_with(
        Backend::Sqlite,
        &["--kms-key-file", &keyfile.display().to_string()],
        &[],
    );
    let url = srv.url.clone();
    let dir = parapet_store_sql::testkit::temp_dir("interop");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin = rt.block_on(async {
        let r: Value = reqwest::Client::new()
            .post(format!("{url}/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["token"].as_str().unwrap().to_string()
    });
    let ctx: Value = json!({"tenant": "provider", "zone": "é-ü", "b": ""});
    let ctx_file = dir.join("ctx.json");
    std::fs::write(&ctx_file, ctx.to_string()).unwrap();
    let wrong_file = dir.join("wrong.json");
    std::fs::write(&wrong_file, json!({"tenant": "provider"}).to_string()).unwrap();
    let ctx_args = [
        "--context",
        "tenant=provider",
        "--context",
        "zone=é-ü",
        "--context",
        "b=",
    ];
    let data: Vec<u8> = (0..2000u32).map(|i| (i * 7 % 251) as u8).collect();

    for kt in ["aes256-gcm", "chacha20-poly1305"] {
        let name = format!("x-{kt}");
        ok(&cli(
            &url,
            &admin,
            &["kms", "key", "create", &name, "--type", kt, "--exportable"],
            b"",
        ));
        let mut args = vec!["kms", "encrypt", "--key", &name];
        args.extend(ctx_args);
        let v1 = ok(&cli(&url, &admin, &args, &data));
        ok(&cli(&url, &admin, &["kms", "key", "rotate", &name], b""));
        let v2 = ok(&cli(&url, &admin, &args, &data));
        assert!(v2.contains(":2:"));
        let exported = ok(&cli(&url, &admin, &["kms", "key", "export", &name], b""));
        let key_file = dir.join(format!("{kt}.json"));
        std::fs::write(&key_file, &exported).unwrap();
        let kf = key_file.display().to_string();
        let cf = ctx_file.display().to_string();
        // Python decrypts both versions…
        for ct in [&v1, &v2] {
            let plain = ok(&py(&python, &["decrypt", &kf, ct.trim(), &cf]));
            assert_eq!(STANDARD.decode(plain.trim()).unwrap(), data, "{kt}");
        }
        // …and refuses the wrong context and an altered ciphertext.
        let o = py(
            &python,
            &["decrypt", &kf, v2.trim(), &wrong_file.display().to_string()],
        );
        assert!(!o.status.success());
        let mut altered = v2.trim().to_string();
        let last = altered.pop().unwrap();
        altered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(
            !py(&python, &["decrypt", &kf, &altered, &cf])
                .status
                .success()
        );
        // Parapet decrypts what Python encrypted, with the same context only.
        let py_ct = ok(&py(
            &python,
            &["encrypt", &kf, "2", &STANDARD.encode(&data), &cf],
        ));
        let mut dargs = vec!["kms", "decrypt"];
        dargs.extend(ctx_args);
        let o = cli(&url, &admin, &dargs, py_ct.as_bytes());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout, data);
        let o = cli(
            &url,
            &admin,
            &["kms", "decrypt", "--context", "tenant=provider"],
            py_ct.as_bytes(),
        );
        assert!(!o.status.success());
    }

    // Keys not created exportable are never exported.
    ok(&cli(
        &url,
        &admin,
        &["kms", "key", "create", "sealed-in"],
        b"",
    ));
    let o = cli(&url, &admin, &["kms", "key", "export", "sealed-in"], b"");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not created exportable"));

    // Ed25519 signatures verify with the published public key in Python.
    ok(&cli(
        &url,
        &admin,
        &["kms", "key", "create", "release", "--type", "ed25519"],
        b"",
    ));
    let sig = ok(&cli(
        &url,
        &admin,
        &["kms", "sign", "--key", "release"],
        b"v1.0 tarball",
    ));
    let shown: Value = serde_json::from_str(&ok(&cli(
        &url,
        &admin,
        &["kms", "key", "show", "release", "--json"],
        b"",
    )))
    .unwrap();
    let pk = shown["versions"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&py(
        &python,
        &["verify", &pk, &STANDARD.encode(b"v1.0 tarball"), sig.trim()],
    ));
    assert!(
        !py(
            &python,
            &["verify", &pk, &STANDARD.encode(b"v1.1 tarball"), sig.trim()]
        )
        .status
        .success()
    );
}
