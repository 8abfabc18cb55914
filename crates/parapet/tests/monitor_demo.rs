//! `parapet demo attack` against a `serve --demo` server, on both backends (issue 6): the
//! scripted attack goes through the real API and the built-in rules over the audit log raise
//! live alerts for the provider (guessing and spraying followed by a success, a privilege grant
//! outside an approval, a mass deletion).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::api::Api;
use common::{ADMIN_PASSWORD, Backend, bin, start_with};
use serde_json::Value;

on_both!(demo_attack_raises_live_alerts);

fn demo_attack_raises_live_alerts(backend: Backend) {
    let srv = start_with(backend, &["--demo", "--monitor-audit-log"], &[]);
    let out = Command::new(bin())
        .args(["demo", "attack", "--server", &srv.url, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["wrong_passwords"], 5, "{summary}");
    assert_eq!(summary["role_granted"], true, "{summary}");
    assert_eq!(summary["assets_deleted"], 20, "{summary}");
    // A bad argument is a one-line error and a non-zero exit.
    let bad = Command::new(bin())
        .args(["demo", "attack", "--server", &srv.url, "--deletions", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--deletions"));

    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let wanted = [
        "Password guessing followed by a successful log-in",
        "Password spraying followed by a successful log-in",
        "Privilege granted outside an approval",
        "Mass deletion",
    ];
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let admin = api.login("admin", ADMIN_PASSWORD).await;
            let deadline = Instant::now() + Duration::from_secs(40);
            let titles: Vec<String> = loop {
                let (s, b) = api
                    .get("/api/v1/tenants/provider/alerts?limit=1000", &admin)
                    .await;
                assert_eq!(s, 200, "{b}");
                let titles: Vec<String> = b["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["title"].as_str().unwrap().to_string())
                    .collect();
                if wanted.iter().all(|w| titles.iter().any(|t| t.contains(w)))
                    || Instant::now() > deadline
                {
                    break titles;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            };
            for w in wanted {
                assert!(titles.iter().any(|t| t.contains(w)), "no {w}: {titles:?}");
            }
        });
}
