//! Two replicas of the key service on one database (issue 5, X.1642 8.2), on both backends:
//! each keeps used keys in memory (until they change, while its change feed runs), and a change
//! made on one — disabling a key, enabling it, rotating it — reaches the other within a second,
//! while the other keeps serving requests. The wait is a bounded poll for propagation, not a
//! sleep for an expiry.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::api::Api;
use common::{ADMIN_PASSWORD, Backend, start_on, start_with};
use serde_json::{Value, json};

on_both!(a_key_changed_on_one_replica_changes_on_the_other_within_a_second);

const PLAIN: &str = "aGVsbG8gcmVwbGljYQ=="; // "hello replica"

/// The version named in a ciphertext (`parapet:v1:KEY:VERSION:PAYLOAD`).
fn version_of(ct: &str) -> i64 {
    let parts: Vec<&str> = ct.split(':').collect();
    parts[parts.len() - 2].parse().unwrap()
}

/// Encrypts with `key` on `api` until `done` accepts the answer, for at most `limit`; returns
/// how long it took and the last answer.
async fn until(
    api: &Api,
    token: &str,
    key: &str,
    limit: Duration,
    done: impl Fn(u16, &Value) -> bool,
) -> (Duration, u16, Value) {
    let start = Instant::now();
    loop {
        let (s, b) = api
            .post(
                &format!("/api/v1/kms/keys/{key}/encrypt"),
                token,
                json!({"plaintext": PLAIN}),
            )
            .await;
        if done(s, &b) || start.elapsed() > limit {
            return (start.elapsed(), s, b);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn a_key_changed_on_one_replica_changes_on_the_other_within_a_second(backend: Backend) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let root = std::env::temp_dir().join(format!(
        "parapet-kms-replicas-{}-{nanos}.key",
        std::process::id()
    ));
    let root_arg = root.to_str().unwrap().to_string();
    let a = start_with(backend, &["--kms-key-file", &root_arg], &[]);
    let b = start_on(backend, &a.database, &["--kms-key-file", &root_arg], &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let api_a = Api {
            base: a.url.clone(),
            http: reqwest::Client::new(),
        };
        let api_b = Api {
            base: b.url.clone(),
            http: reqwest::Client::new(),
        };
        let ta = api_a.login("admin", ADMIN_PASSWORD).await;
        let tb = api_b.login("admin", ADMIN_PASSWORD).await;
        let (s, body) = api_a
            .post("/api/v1/kms/keys", &ta, json!({"name": "shared"}))
            .await;
        assert_eq!(s, 201, "{body}");

        // B uses the key (and keeps it in memory); a ciphertext of version 1.
        let (s, body) = api_b
            .post(
                "/api/v1/kms/keys/shared/encrypt",
                &tb,
                json!({"plaintext": PLAIN}),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(version_of(body["ciphertext"].as_str().unwrap()), 1);

        // Disabled on A: B refuses soon after, without having been asked in between.
        let (s, body) = api_a
            .post("/api/v1/kms/keys/shared/disable", &ta, json!({}))
            .await;
        assert_eq!(s, 200, "{body}");
        let (took, s, body) = until(&api_b, &tb, "shared", Duration::from_secs(5), |s, _| {
            s != 200
        })
        .await;
        assert_eq!(s, 409, "a key disabled on A still encrypts on B: {body}");
        assert!(body.to_string().contains("disabled"), "{body}");
        assert!(
            took < Duration::from_secs(2),
            "disabling took {took:?} to reach B"
        );

        // Enabled and rotated on A: B encrypts with version 2 within a second of the rotation.
        let (s, body) = api_a
            .post("/api/v1/kms/keys/shared/enable", &ta, json!({}))
            .await;
        assert_eq!(s, 200, "{body}");
        let (took, s, body) = until(&api_b, &tb, "shared", Duration::from_secs(5), |s, _| {
            s == 200
        })
        .await;
        assert_eq!(s, 200, "B never saw the key enabled again: {body}");
        assert!(
            took < Duration::from_secs(2),
            "enable took {took:?} to reach B"
        );
        let (s, body) = api_a
            .post("/api/v1/kms/keys/shared/rotate", &ta, json!({}))
            .await;
        assert_eq!(s, 200, "{body}");
        let (took, s, body) = until(&api_b, &tb, "shared", Duration::from_secs(5), |s, b| {
            s == 200 && b["ciphertext"].as_str().is_some_and(|c| version_of(c) == 2)
        })
        .await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(
            version_of(body["ciphertext"].as_str().unwrap()),
            2,
            "B still encrypts with version 1 after {took:?}"
        );
        assert!(
            took < Duration::from_secs(2),
            "the rotation took {took:?} to reach B"
        );

        // And what B encrypted, A decrypts.
        let (s, plain) = api_a
            .post(
                "/api/v1/kms/decrypt",
                &ta,
                json!({"ciphertext": body["ciphertext"]}),
            )
            .await;
        assert_eq!(s, 200, "{plain}");
        assert_eq!(plain["plaintext"], PLAIN);

        // B's metrics show the cache and the feed at work.
        let metrics = api_b
            .http
            .get(format!("{}/metrics", b.url))
            .bearer_auth(&tb)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("parapet_kms_cached_keys"),
            "no key-cache gauge in /metrics"
        );
    });
    drop(b);
    drop(a);
    let _ = std::fs::remove_file(&root);
}
