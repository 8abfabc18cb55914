//! Server-side backup management through the real binary on both backends (X.1642 8.10,
//! 7.2.2.2(7)): the provider sets a tenant's policy (CLI and API, problem+json for terms that
//! cannot be met), `parapet backup run|copy|restore-test --report-to` report real runs on a real
//! repository with a token of scope `backup`, a damaged repository makes the restore test fail
//! and the compliance say so, time windows are kept, every endpoint is isolated between tenants,
//! the console shows the policy, the evidence and the chart, and the provider sees every tenant.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::api::Api;
use common::{ADMIN_PASSWORD, Backend, Server, start_on, start_with};
use serde_json::{Value, json};

on_both!(
    backup_policies_reports_and_compliance_end_to_end,
    the_server_backs_itself_up_and_restore_server_brings_it_back,
    a_repository_under_a_kms_key_opens_only_through_the_key_service,
    restore_server_checks_an_audit_key_sealed_by_the_key_service
);

const PW: &str = "backup-server-test-password-1";
const REPO_PW: &str = "correct horse battery staple";

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// Runs `parapet ARGS` against the server with `token` (and a repository password).
fn cli(srv: &Server, token: &str, args: &[&str]) -> Output {
    let dir = parapet_store_sql::testkit::temp_dir("bk-cli");
    Command::new(common::bin())
        .args(args)
        .env("PARAPET_CONFIG_DIR", &dir)
        .env("PARAPET_SERVER", &srv.url)
        .env("PARAPET_TOKEN", token)
        .env("PARAPET_BACKUP_PASSWORD", REPO_PW)
        .env_remove("PARAPET_BACKUP_OPERATOR_KEY")
        .env_remove("PARAPET_BACKUP_REPOSITORY")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "command failed: {}\nstdout: {}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn ok_json(o: &Output) -> Value {
    let out = ok(o);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "command succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "one line on stderr: {err}");
    err
}

fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    for i in 0..20u32 {
        std::fs::write(
            root.join(format!("file-{i}.txt")),
            format!("backup evidence file {i}\n").repeat(100 + i as usize),
        )
        .unwrap();
    }
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("sub/big.bin"), big).unwrap();
}

fn backup_policies_reports_and_compliance_end_to_end(backend: Backend) {
    let srv = start_with(backend, &["--backup-compliance-interval", "1"], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let scratch = parapet_store_sql::testkit::temp_dir("bk-srv");
    let (admin, alice, gina, backup_token) = rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        for t in ["acme", "globex"] {
            let (s, b) = api
                .post("/api/v1/tenants", &admin, json!({"name": t}))
                .await;
            assert_eq!(s, 201, "{b}");
        }
        for (t, u) in [("acme", "alice"), ("globex", "gina")] {
            let (s, b) = api
                .post(
                    &format!("/api/v1/tenants/{t}/users"),
                    &admin,
                    json!({"username": u, "password": PW, "role": "tenant-admin"}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        let alice = api.login("alice@acme", PW).await;
        let gina = api.login("gina@globex", PW).await;
        let (s, b) = api
            .post(
                "/api/v1/tokens",
                &alice,
                json!({"name": "backup-agent", "scopes": ["backup"]}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, ch) = api
            .post(
                "/api/v1/tenants/acme/notify/channels",
                &alice,
                json!({"name": "soc", "kind": "email", "to": ["soc@acme.example"]}),
            )
            .await;
        assert_eq!(s, 201, "{ch}");
        (admin, alice, gina, b["token"].as_str().unwrap().to_string())
    });

    // The provider sets acme's policy with the CLI.
    let pol = ok_json(&cli(
        &srv,
        &admin,
        &[
            "backup",
            "policy",
            "set",
            "--tenant",
            "acme",
            "--rpo",
            "24h",
            "--rto",
            "1h",
            "--keep-daily",
            "7",
            "--keep-monthly",
            "12",
            "--offsite",
            "--window",
            "01:00-05:00",
            "--restore-test-every",
            "7d",
            "--json",
        ],
    ));
    assert_eq!(pol["version"], 1);
    assert_eq!(pol["copies"], 2);
    assert_eq!(pol["rpo_secs"], 86_400);
    assert_eq!(pol["window"], "01:00-05:00");
    assert_eq!(pol["prune"], "--keep-daily 7 --keep-monthly 12");

    rt.block_on(async {
        // Terms that cannot be met: problem+json 422.
        let (s, h, b) = api
            .req(
                reqwest::Method::PUT,
                "/api/v1/tenants/acme/backup/policies/db",
                &admin,
                &[("content-type", "application/json")],
                Some(
                    serde_json::to_vec(&json!({"rpo_secs": 3600, "rto_secs": 600,
                        "schedule_secs": 7200, "retention": {"last": 3}}))
                    .unwrap(),
                ),
            )
            .await;
        assert_eq!(s, 422, "{b}");
        assert_eq!(h["content-type"], "application/problem+json");
        assert!(b["detail"].as_str().unwrap().contains("RPO"), "{b}");
        // The tenant reads its policy but cannot change it; another tenant sees nothing.
        let (s, b) = api
            .get("/api/v1/tenants/acme/backup/policies/default", &alice)
            .await;
        assert_eq!((s, b["version"].as_i64()), (200, Some(1)), "{b}");
        let (s, _, _) = api
            .req(
                reqwest::Method::PUT,
                "/api/v1/tenants/acme/backup/policies/default",
                &alice,
                &[("content-type", "application/json")],
                Some(
                    br#"{"rpo_secs": 600000, "rto_secs": 600, "retention": {"last": 1}}"#.to_vec(),
                ),
            )
            .await;
        assert_eq!(s, 403);
        for path in [
            "/api/v1/tenants/acme/backup/policies",
            "/api/v1/tenants/acme/backup/policies/default",
            "/api/v1/tenants/acme/backup/reports",
            "/api/v1/tenants/acme/backup/compliance",
            "/api/v1/tenants/acme/backup/findings",
            "/api/v1/backup/compliance",
        ] {
            let (s, b) = api.get(path, &gina).await;
            assert!(s == 403 || s == 404, "{path}: {s} {b}");
        }
        let (s, _) = api
            .post(
                "/api/v1/tenants/acme/backup/reports",
                &gina,
                json!({"kind": "backup", "ok": true, "repository": "/x"}),
            )
            .await;
        assert!(s == 403 || s == 404);
        for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
            let (s, _, _) = api
                .req(
                    method.clone(),
                    "/api/v1/tenants/acme/backup/policies/default",
                    &gina,
                    &[("content-type", "application/json")],
                    Some(
                        br#"{"rpo_secs": 3600, "rto_secs": 600, "retention": {"last": 1}}"#
                            .to_vec(),
                    ),
                )
                .await;
            assert!(s == 403 || s == 404, "{method} by another tenant: {s}");
        }
        // The backup token reports and does nothing else.
        let (s, _) = api
            .get("/api/v1/tenants/acme/backup/policies", &backup_token)
            .await;
        assert_eq!(s, 403);
    });

    // A real repository; the run reports itself with the backup token.
    let src = scratch.join("data");
    tree(&src);
    let repo = scratch.join("repo");
    let key = scratch.join("operator.key");
    ok(&cli(
        &srv,
        &backup_token,
        &[
            "backup",
            "init",
            "--repo",
            p(&repo),
            "--operator-key",
            p(&key),
            "--json",
        ],
    ));
    let run = ok_json(&cli(
        &srv,
        &backup_token,
        &[
            "backup",
            "run",
            "--repo",
            p(&repo),
            "--operator-key",
            p(&key),
            "--json",
            "--report-to",
            &srv.url,
            "--tenant",
            "acme",
            p(&src),
        ],
    ));
    let snapshot = run["snapshot"]["id"].as_str().unwrap().to_string();
    // Outside the time window the run is refused, before anything is written.
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600)
        % 24;
    let closed = format!("{:02}:00-{:02}:00", (hour + 2) % 24, (hour + 3) % 24);
    let err = fails(&cli(
        &srv,
        &backup_token,
        &[
            "backup",
            "run",
            "--repo",
            p(&repo),
            "--operator-key",
            p(&key),
            "--window",
            &closed,
            "--report-to",
            &srv.url,
            "--tenant",
            "acme",
            p(&src),
        ],
    ));
    assert!(err.contains("outside the backup window"), "{err}");
    let open = format!("{:02}:00-{:02}:00", hour, (hour + 1) % 24);
    ok(&cli(
        &srv,
        &backup_token,
        &[
            "backup",
            "run",
            "--repo",
            p(&repo),
            "--operator-key",
            p(&key),
            "--window",
            &open,
            p(&src),
        ],
    ));
    // The off-site copy (another directory declared off-site) and a restore test.
    let offsite = scratch.join("offsite");
    ok(&cli(
        &srv,
        &backup_token,
        &[
            "backup",
            "copy",
            "--repo",
            p(&repo),
            "--to",
            p(&offsite),
            "--report-to",
            &srv.url,
            "--tenant",
            "acme",
            "--site",
            "off-site",
        ],
    ));
    let work = scratch.join("restore-scratch");
    std::fs::create_dir_all(&work).unwrap();
    let t = ok_json(&cli(
        &srv,
        &backup_token,
        &[
            "backup",
            "restore-test",
            "--repo",
            p(&repo),
            "--scratch",
            p(&work),
            "--json",
            "--report-to",
            &srv.url,
            "--tenant",
            "acme",
        ],
    ));
    assert_eq!(t["ok"], true, "{t}");
    assert_eq!(t["files"], 21);
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        0,
        "scratch removed"
    );

    rt.block_on(async {
        let (s, reports) = api.get("/api/v1/tenants/acme/backup/reports", &alice).await;
        assert_eq!(s, 200);
        let reports = reports.as_array().unwrap().clone();
        let kinds: Vec<&str> = reports
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["restore-test", "copy", "backup"], "{reports:?}");
        let b = &reports[2];
        assert_eq!(b["ok"], true);
        assert_eq!(b["snapshot"], snapshot.as_str());
        assert_eq!(b["site"], "on-site");
        assert_eq!(b["repository"], p(&repo));
        assert_eq!(b["files"], 21);
        assert!(b["signer"].as_str().unwrap().starts_with("ed25519:"));
        assert_eq!(b["reporter"], "alice@acme");
        assert_eq!(reports[1]["site"], "off-site");
        let (s, c) = api
            .get("/api/v1/tenants/acme/backup/compliance", &alice)
            .await;
        assert_eq!(s, 200);
        assert_eq!(c[0]["compliant"], true, "{c}");
        assert!(c[0]["achieved_rto_ms"].as_u64().is_some());
        // Each report is in the audit trail.
        let (s, a) = api
            .get(
                "/api/v1/tenants/acme/audit?action=backup.report.backup",
                &admin,
            )
            .await;
        assert_eq!(s, 200, "{a}");
        let items = a.get("items").unwrap_or(&a).as_array().unwrap().len();
        assert_eq!(items, 1, "{a}");
    });

    // Damage every pack: the restore test fails, is reported failed, and compliance says so.
    for e in walk(&repo.join("data")) {
        let mut bytes = std::fs::read(&e).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&e, bytes).unwrap();
    }
    let o = cli(
        &srv,
        &backup_token,
        &[
            "backup",
            "restore-test",
            "--repo",
            p(&repo),
            "--scratch",
            p(&work),
            "--report-to",
            &srv.url,
            "--tenant",
            "acme",
        ],
    );
    let err = fails(&o);
    assert!(err.contains("restore test failed"), "{err}");
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        0,
        "scratch removed"
    );
    // The compliance job opens a finding and queues it to the tenant's channel.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let finding = loop {
        let f = ok_json(&cli(
            &srv,
            &alice,
            &["backup", "findings", "--tenant", "acme", "--json"],
        ));
        if let Some(x) = f
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["kind"] == "restore-test-failed")
        {
            break x.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no finding: {f}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(finding["resolved_at"].is_null());
    rt.block_on(async {
        let m = api
            .http
            .get(format!("{}/metrics", api.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(m.contains("parapet_backup_open_findings"), "{m}");
        assert!(
            m.lines()
                .any(|l| l.starts_with("parapet_backup_reports_total")
                    && l.contains("kind=\"restore-test\"")
                    && l.contains("result=\"failed\"")),
            "{m}"
        );
    });
    rt.block_on(async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (s, o) = api.get("/api/v1/tenants/acme/notify/outbox", &alice).await;
            assert_eq!(s, 200, "{o}");
            // The finding raised an alert (monitor's alert list, rule backup-<kind>), which the
            // alert routes notified.
            let (s, alerts) = api.get("/api/v1/tenants/acme/alerts", &alice).await;
            assert_eq!(s, 200, "{alerts}");
            let alert = alerts
                .as_array()
                .or_else(|| alerts["items"].as_array())
                .unwrap()
                .iter()
                .find(|a| a["rule_id"] == "backup-restore-test-failed")
                .cloned();
            let found = alert.as_ref().is_some_and(|a| {
                o["items"].as_array().unwrap().iter().any(|m| {
                    m["source"] == format!("alert:{}", a["id"].as_str().unwrap()).as_str()
                        && m["subject"]
                            .as_str()
                            .unwrap()
                            .contains("restore test failed")
                })
            });
            if found {
                let (s, other) = api.get("/api/v1/tenants/globex/alerts", &gina).await;
                assert_eq!(s, 200);
                assert!(!other.to_string().contains("backup-restore-test-failed"));
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not queued: {o}");
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    });
    let c = ok_json(&cli(
        &srv,
        &alice,
        &["backup", "compliance", "--tenant", "acme", "--json"],
    ));
    assert_eq!(c[0]["compliant"], false, "{c}");
    let kinds: Vec<&str> = c[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"restore-test-failed"), "{kinds:?}");
    let r = ok_json(&cli(
        &srv,
        &alice,
        &[
            "backup", "reports", "--tenant", "acme", "--limit", "1", "--json",
        ],
    ));
    assert_eq!(
        (r[0]["kind"].as_str(), r[0]["ok"].as_bool()),
        (Some("restore-test"), Some(false))
    );
    let list = ok_json(&cli(
        &srv,
        &alice,
        &["backup", "policy", "list", "--tenant", "acme", "--json"],
    ));
    assert_eq!(list.as_array().unwrap().len(), 1);
    // The provider's overview.
    let all = ok_json(&cli(&srv, &admin, &["backup", "compliance", "--json"]));
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|c| c["tenant"] == "acme")
    );
    let err = fails(&cli(
        &srv,
        &gina,
        &["backup", "policy", "show", "--tenant", "acme"],
    ));
    assert!(!err.is_empty());

    // The console: the tenant's page and the provider's overview.
    rt.block_on(async {
        let get = |path: String, token: String| {
            let http = api.http.clone();
            let url = format!("{}{path}", api.base);
            async move {
                let r = http
                    .get(url)
                    .header("cookie", format!("parapet_session={token}"))
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let (s, html) = get("/console/tenants/acme/backup".into(), alice.clone()).await;
        assert_eq!(s, 200);
        for needle in [
            "id=\"backup-policies\"",
            "id=\"backup-compliance\"",
            "id=\"backup-runs\"",
            "id=\"backup-restore-tests\"",
            "chart backup",
            "restore-test-failed",
            &snapshot,
        ] {
            assert!(html.contains(needle), "{needle} missing");
        }
        assert!(
            !html.contains("backup-policy-form"),
            "tenants do not edit policies"
        );
        let (s, _) = get("/console/tenants/acme/backup".into(), gina.clone()).await;
        assert!(s == 403 || s == 404);
        let (s, html) = get("/console/backup".into(), admin.clone()).await;
        assert_eq!(s, 200);
        assert!(html.contains("id=\"backup-compliance\"") && html.contains("acme"));
        let (s, html) = get("/console/tenants/acme/backup".into(), admin.clone()).await;
        assert_eq!(s, 200);
        assert!(html.contains("backup-policy-form"));
        // The policy editor: a form with the CSRF token sets a service's policy.
        let csrf = "c".repeat(43);
        let post = |who: String, fields: Vec<(&'static str, String)>, with_csrf: bool| {
            let http = api.http.clone();
            let url = format!("{}/console/tenants/acme/backup", api.base);
            let csrf = csrf.clone();
            async move {
                let mut form = fields;
                if with_csrf {
                    form.push(("csrf", csrf.clone()));
                }
                let r = http
                    .post(url)
                    .header(
                        "cookie",
                        format!("parapet_session={who}; parapet_csrf={csrf}"),
                    )
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let fields = |rpo: &str| {
            vec![
                ("name", "db".to_string()),
                ("rpo_hours", rpo.to_string()),
                ("rto_minutes", "30".to_string()),
                ("keep_daily", "7".to_string()),
                ("copies", "1".to_string()),
                ("onsite", "yes".to_string()),
                ("window", String::new()),
                ("restore_test_days", "7".to_string()),
            ]
        };
        let (s, _) = post(admin.clone(), fields("12"), false).await;
        assert_eq!(s, 403, "no CSRF token");
        let (s, html) = post(admin.clone(), fields("twelve"), true).await;
        assert_eq!(s, 422);
        assert!(html.contains("not a whole number"));
        let (s, _) = post(gina.clone(), fields("12"), true).await;
        assert!(s == 403 || s == 404);
        let (s, html) = post(admin.clone(), fields("12"), true).await;
        assert_eq!(s, 200, "{html}");
        let (s, b) = api
            .get("/api/v1/tenants/acme/backup/policies/db", &alice)
            .await;
        assert_eq!(s, 200);
        assert_eq!(
            (b["rpo_secs"].as_u64(), b["rto_secs"].as_u64()),
            (Some(43_200), Some(1_800))
        );
        assert_eq!(
            (b["offsite"].as_bool(), b["restore_test_secs"].as_u64()),
            (Some(false), Some(604_800))
        );
        // The API is documented.
        let (s, doc) = api.get("/api/v1/openapi.json", &alice).await;
        assert_eq!(s, 200);
        for path in [
            "/api/v1/tenants/{tenant}/backup/policies/{name}",
            "/api/v1/tenants/{tenant}/backup/reports",
            "/api/v1/tenants/{tenant}/backup/compliance",
            "/api/v1/backup/compliance",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
        }
    });
    let _ = std::fs::remove_dir_all(&scratch);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `serve --backup-repo` backs its own database and keys up on a schedule; `restore-server`
/// brings them into an empty database, where a new server finds the data and the audit log
/// still verifies against its signed checkpoint (X.1642 8.4).
fn the_server_backs_itself_up_and_restore_server_brings_it_back(backend: Backend) {
    let scratch = parapet_store_sql::testkit::temp_dir("bk-self");
    let repo = scratch.join("repo");
    let key = scratch.join("operator.key");
    let init = Command::new(common::bin())
        .args([
            "backup",
            "init",
            "--repo",
            p(&repo),
            "--operator-key",
            p(&key),
        ])
        .env("PARAPET_BACKUP_PASSWORD", REPO_PW)
        .output()
        .unwrap();
    ok(&init);
    let env = [("PARAPET_BACKUP_PASSWORD", REPO_PW)];
    let first_db = common::fresh_database(backend);
    // With PostgreSQL the key files live outside the database: keep them in this test's own
    // directories (the harness's default secrets key is shared by every PostgreSQL test).
    let (key1, key2) = (
        scratch.join("first/audit.key"),
        scratch.join("second/audit.key"),
    );
    let mut extra = vec![
        "--backup-repo",
        p(&repo),
        "--backup-every",
        "1s",
        "--backup-operator-key",
        p(&key),
    ];
    if backend == Backend::Postgres {
        std::fs::create_dir_all(key1.parent().unwrap()).unwrap();
        extra.extend(["--audit-key", p(&key1)]);
    }
    let srv = start_on(backend, &first_db, &extra, &env);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let admin = rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let (s, b) = api
            .post("/api/v1/tenants", &admin, json!({"name": "restored-co"}))
            .await;
        assert_eq!(s, 201, "{b}");
        admin
    });
    let written = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Wait for a state snapshot taken after the write.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let o = Command::new(common::bin())
            .args(["backup", "snapshots", "--repo", p(&repo), "--json"])
            .env("PARAPET_BACKUP_PASSWORD", REPO_PW)
            .output()
            .unwrap();
        let list: Value = serde_json::from_str(&ok(&o)).unwrap();
        let done = list.as_array().unwrap().iter().any(|s| {
            s["time_ms"].as_i64().unwrap() > written + 200
                && s["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t == "parapet-server")
        });
        if done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no state snapshot after 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    drop(srv);

    // A new, empty database; the keys go where the next server looks for them.
    let second_db = common::fresh_database(backend);
    let mut args = vec!["restore-server", "--repo", p(&repo)];
    match backend {
        Backend::Sqlite => args.extend(["--data-dir", second_db.as_str()]),
        Backend::Postgres => {
            args.extend([
                "--database-url",
                second_db.as_str(),
                "--audit-key",
                p(&key2),
            ]);
        }
    }
    let o = Command::new(common::bin())
        .args(&args)
        .env("PARAPET_BACKUP_PASSWORD", REPO_PW)
        .output()
        .unwrap();
    assert!(ok(&o).contains("restored the server's state"));
    let restored_key = match backend {
        Backend::Sqlite => Path::new(&second_db).join("audit-signing.key"),
        Backend::Postgres => key2.clone(),
    };
    let original_key = match backend {
        Backend::Sqlite => Path::new(&first_db).join("audit-signing.key"),
        Backend::Postgres => key1.clone(),
    };
    assert_eq!(
        std::fs::read(&restored_key).unwrap(),
        std::fs::read(&original_key).unwrap(),
        "the audit signing key comes back with the state"
    );
    // Restoring over an existing database is refused.
    if backend == Backend::Sqlite {
        let o = Command::new(common::bin())
            .args(&args)
            .env("PARAPET_BACKUP_PASSWORD", REPO_PW)
            .output()
            .unwrap();
        let err = fails(&o);
        assert!(err.contains("already holds a database"), "{err}");
    }
    let second_extra: Vec<&str> = match backend {
        Backend::Sqlite => vec![],
        Backend::Postgres => vec!["--audit-key", p(&key2)],
    };
    let srv = start_on(backend, &second_db, &second_extra, &[]);
    rt.block_on(async {
        let api = Api {
            base: srv.url.clone(),
            http: reqwest::Client::new(),
        };
        // The old session is in the restored database too, and the tenant is there.
        let (s, b) = api.get("/api/v1/tenants/restored-co", &admin).await;
        assert_eq!(s, 200, "{b}");
    });
    // The whole audit log verifies against the restored server's signed checkpoint.
    let entries = scratch.join("entries.jsonl");
    let cp = scratch.join("checkpoint");
    ok(&cli(
        &srv,
        &admin,
        &["audit", "export", "-o", p(&entries), "--checkpoint", p(&cp)],
    ));
    let pubkey = ok(&cli(&srv, &admin, &["audit", "public-key"]))
        .trim()
        .to_string();
    let v = ok_json(&cli(
        &srv,
        &admin,
        &[
            "audit",
            "verify",
            "--checkpoint",
            p(&cp),
            "--entries",
            p(&entries),
            "--public-key",
            &pubkey,
            "--json",
        ],
    ));
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["entries"].as_u64().unwrap() >= 3, "{v}");
    let text = std::fs::read_to_string(&entries).unwrap();
    assert!(text.contains("restored-co"));
    drop(srv);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// `backup init --kms-key` (X.1642 8.2): the repository's secret is a data key of the tenant's
/// key service; every later command gets it decrypted by the server, so no password exists; a
/// token of another tenant, or none, cannot open the repository.
fn a_repository_under_a_kms_key_opens_only_through_the_key_service(backend: Backend) {
    let scratch = parapet_store_sql::testkit::temp_dir("bk-kms");
    let root = scratch.join("root.key");
    let srv = start_with(backend, &["--kms-key-file", p(&root)], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let (alice, gina) = rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        for (t, u) in [("acme", "alice"), ("globex", "gina")] {
            let (s, b) = api
                .post("/api/v1/tenants", &admin, json!({"name": t}))
                .await;
            assert_eq!(s, 201, "{b}");
            let (s, b) = api
                .post(
                    &format!("/api/v1/tenants/{t}/users"),
                    &admin,
                    json!({"username": u, "password": PW, "role": "tenant-admin"}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        let alice = api.login("alice@acme", PW).await;
        let gina = api.login("gina@globex", PW).await;
        let (s, b) = api
            .post(
                "/api/v1/kms/keys",
                &alice,
                json!({"name": "backups", "type": "aes256-gcm"}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        (alice, gina)
    });
    let run = |token: Option<&str>, args: &[&str]| {
        let dir = parapet_store_sql::testkit::temp_dir("bk-kms-cli");
        let mut c = Command::new(common::bin());
        c.args(args)
            .env("PARAPET_CONFIG_DIR", &dir)
            .env("PARAPET_SERVER", &srv.url)
            .env_remove("PARAPET_BACKUP_PASSWORD")
            .env_remove("PARAPET_BACKUP_OPERATOR_KEY")
            .env_remove("PARAPET_BACKUP_REPOSITORY")
            .stdin(Stdio::null());
        match token {
            Some(t) => c.env("PARAPET_TOKEN", t),
            None => c.env_remove("PARAPET_TOKEN"),
        };
        c.output().unwrap()
    };
    let repo = scratch.join("repo");
    let key = scratch.join("operator.key");
    let src = scratch.join("data");
    tree(&src);
    ok(&run(
        Some(&alice),
        &[
            "backup",
            "init",
            "--repo",
            p(&repo),
            "--operator-key",
            p(&key),
            "--kms-key",
            "backups",
        ],
    ));
    let snap = ok_json(&run(
        Some(&alice),
        &[
            "backup",
            "run",
            "--repo",
            p(&repo),
            "--operator-key",
            p(&key),
            "--json",
            p(&src),
        ],
    ));
    let id = snap["snapshot"]["id"].as_str().unwrap().to_string();
    let restored = scratch.join("restored");
    ok(&run(
        Some(&alice),
        &[
            "backup",
            "restore",
            "--repo",
            p(&repo),
            "latest",
            "--target",
            p(&restored),
        ],
    ));
    assert_eq!(
        std::fs::read(restored.join("data/sub/big.bin")).unwrap(),
        std::fs::read(src.join("sub/big.bin")).unwrap()
    );
    // Another tenant's token cannot have the secret decrypted; no token at all is a clear error.
    let err = fails(&run(
        Some(&gina),
        &["backup", "snapshots", "--repo", p(&repo)],
    ));
    assert!(err.contains("key service"), "{err}");
    let err = fails(&run(None, &["backup", "snapshots", "--repo", p(&repo)]));
    assert!(err.contains("PARAPET_TOKEN"), "{err}");
    let list = ok_json(&run(
        Some(&alice),
        &["backup", "snapshots", "--repo", p(&repo), "--json"],
    ));
    assert_eq!(list[0]["id"], id.as_str());
    // The key files hold no password-derived key, only the key service's ciphertext.
    let mut kinds = Vec::new();
    for e in std::fs::read_dir(repo.join("keys")).unwrap() {
        let v: Value = serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
        kinds.push(v["kdf"].as_str().unwrap().to_string());
        if v["kdf"] == "kms" {
            assert!(
                v["data"].as_str().unwrap().starts_with("parapet:v1:"),
                "{v}"
            );
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["argon2id", "kms"]);
    // Every use of the key is audited in the tenant's trail.
    rt.block_on(async {
        let (s, a) = api
            .get("/api/v1/tenants/acme/audit?limit=200", &alice)
            .await;
        assert_eq!(s, 200, "{a}");
        let text = a.to_string();
        assert!(
            text.contains("kms.datakey") || text.contains("kms.data-key"),
            "{text}"
        );
        assert!(text.contains("kms.decrypt"), "{text}");
    });
    drop(srv);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// A server whose key service is unsealed by a root key file seals its audit signing key under
/// it; its self-backup therefore holds a sealed key. `restore-server` says what else is needed
/// (the root key file, not in the backup) and writes nothing without it, refuses a wrong root key
/// (removing the restored SQLite database), and restores with the right one.
fn restore_server_checks_an_audit_key_sealed_by_the_key_service(backend: Backend) {
    let scratch = parapet_store_sql::testkit::temp_dir("bk-self-kms");
    let repo = scratch.join("repo");
    let key = scratch.join("operator.key");
    let root = scratch.join("kms-root.key");
    ok(&Command::new(common::bin())
        .args([
            "backup",
            "init",
            "--repo",
            p(&repo),
            "--operator-key",
            p(&key),
        ])
        .env("PARAPET_BACKUP_PASSWORD", REPO_PW)
        .output()
        .unwrap());
    let env = [("PARAPET_BACKUP_PASSWORD", REPO_PW)];
    let first_db = common::fresh_database(backend);
    let key1 = scratch.join("first/audit.key");
    std::fs::create_dir_all(key1.parent().unwrap()).unwrap();
    let mut extra = vec![
        "--backup-repo",
        p(&repo),
        "--backup-every",
        "1s",
        "--backup-operator-key",
        p(&key),
        "--kms-key-file",
        p(&root),
    ];
    if backend == Backend::Postgres {
        extra.extend(["--audit-key", p(&key1)]);
    }
    let srv = start_on(backend, &first_db, &extra, &env);
    let original_key = match backend {
        Backend::Sqlite => Path::new(&first_db).join("audit-signing.key"),
        Backend::Postgres => key1.clone(),
    };
    // The key service seals the audit key at start; wait for a snapshot holding the sealed key.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let sealed = std::fs::read_to_string(&original_key)
            .unwrap_or_default()
            .starts_with("kms:");
        let o = Command::new(common::bin())
            .args(["backup", "snapshots", "--repo", p(&repo), "--json"])
            .env("PARAPET_BACKUP_PASSWORD", REPO_PW)
            .output()
            .unwrap();
        let n = serde_json::from_str::<Value>(&ok(&o))
            .unwrap()
            .as_array()
            .unwrap()
            .len();
        if sealed && n >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no sealed-key snapshot after 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    drop(srv);
    let restore = |db: &str, audit_key: &Path, extra: &[&str]| {
        let mut args = vec!["restore-server", "--repo", p(&repo)];
        match backend {
            Backend::Sqlite => args.extend(["--data-dir", db]),
            Backend::Postgres => args.extend(["--database-url", db, "--audit-key", p(audit_key)]),
        }
        args.extend_from_slice(extra);
        Command::new(common::bin())
            .args(&args)
            .env("PARAPET_BACKUP_PASSWORD", REPO_PW)
            .output()
            .unwrap()
    };
    let restored_key = |db: &str, k: &Path| match backend {
        Backend::Sqlite => Path::new(db).join("audit-signing.key"),
        Backend::Postgres => k.to_path_buf(),
    };
    // Without the root key file: what is needed, and nothing written.
    let db2 = common::fresh_database(backend);
    let key2 = scratch.join("second/audit.key");
    let err = fails(&restore(&db2, &key2, &[]));
    assert!(
        err.contains("sealed by the key service") && err.contains("--kms-key-file"),
        "{err}"
    );
    assert!(!restored_key(&db2, &key2).exists());
    if backend == Backend::Sqlite {
        assert!(!Path::new(&db2).join("parapet.db").exists());
    }
    // A wrong root key file is refused.
    let wrong = scratch.join("wrong-root.key");
    std::fs::write(&wrong, format!("{}\n", "ab".repeat(32))).unwrap();
    let err = fails(&restore(&db2, &key2, &["--kms-key-file", p(&wrong)]));
    assert!(err.contains("wrong-root.key"), "{err}");
    assert!(!restored_key(&db2, &key2).exists());
    if backend == Backend::Sqlite {
        assert!(!Path::new(&db2).join("parapet.db").exists(), "removed");
    }
    // The right one: the sealed key comes back and opens.
    let db3 = common::fresh_database(backend);
    let key3 = scratch.join("third/audit.key");
    let o = restore(&db3, &key3, &["--kms-key-file", p(&root)]);
    assert!(ok(&o).contains("restored the server's state"));
    assert_eq!(
        std::fs::read(restored_key(&db3, &key3)).unwrap(),
        std::fs::read(&original_key).unwrap()
    );
}
