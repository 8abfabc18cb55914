//! The server carries out the backup strategy (X.1642 8.10(1), 8.10(2)), through the real binary
//! on both backends: provider staff assign a policy's file trees and VM image to an agent with an
//! on-site repository and an off-site one on a real S3 server (moto); `parapet backup agent
//! --once` (a token of scope `backup`, passwords from its own configuration file) polls, claims
//! the due job with a lease, backs up, copies off-site, prunes by the policy's retention and runs
//! the restore test, reporting every step; the server then shows the job's last run and next due
//! time, the policy is met, and nothing is due on the next poll. A leased job cannot be claimed
//! twice, a stale lease cannot end a run, bad definitions are refused with problem+json and one
//! line in the CLI, and every endpoint is isolated between tenants.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::api::Api;
use common::{ADMIN_PASSWORD, Backend, Server, start_with};
use serde_json::{Value, json};

on_both!(
    an_agent_carries_out_the_servers_jobs,
    a_run_takes_its_window_and_retention_from_the_policy,
    policies_combine_file_and_vm_levels_and_warn_on_snapshots_only
);

const PW: &str = "backup-agent-test-password-1";
const REPO_PW: &str = "agent repository password 42";

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// Runs `parapet ARGS` with `token`, the S3 server's settings and no repository password in
/// the environment (the agent must take it from its configuration).
fn cli(srv: &Server, s3: &str, token: &str, args: &[&str]) -> Output {
    let dir = parapet_store_sql::testkit::temp_dir("bk-agent-cli");
    Command::new(common::bin())
        .args(args)
        .env("PARAPET_CONFIG_DIR", &dir)
        .env("PARAPET_SERVER", &srv.url)
        .env("PARAPET_TOKEN", token)
        .env_remove("PARAPET_BACKUP_PASSWORD")
        .env_remove("PARAPET_BACKUP_OPERATOR_KEY")
        .env_remove("PARAPET_BACKUP_REPOSITORY")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "moto-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", s3)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok_json(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "command failed: {}\nstdout: {}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    let out = String::from_utf8_lossy(&o.stdout);
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

fn noise(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn an_agent_carries_out_the_servers_jobs(backend: Backend) {
    let s3 = common::moto();
    let boto = Command::new(common::test_python())
        .arg("-c")
        .arg(
            "import boto3, sys\ns3 = boto3.client('s3', endpoint_url=sys.argv[1], \
             region_name='us-east-1', aws_access_key_id='AKIDEXAMPLE', \
             aws_secret_access_key='moto-secret')\ns3.create_bucket(Bucket='offsite')",
        )
        .arg(&s3.url)
        .output()
        .unwrap();
    assert!(
        boto.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&boto.stderr)
    );
    let srv = start_with(backend, &["--backup-compliance-interval", "1"], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let (admin, alice, acme_agent, globex_agent) = rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let mut tokens = Vec::new();
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
            let session = api.login(&format!("{u}@{t}"), PW).await;
            let (s, b) = api
                .post(
                    "/api/v1/tokens",
                    &session,
                    json!({"name": "backup-agent", "scopes": ["backup"]}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
            tokens.push((session, b["token"].as_str().unwrap().to_string()));
        }
        let (alice, acme_agent) = tokens.remove(0);
        let (_, globex_agent) = tokens.remove(0);
        (admin, alice, acme_agent, globex_agent)
    });

    // The provider's terms for acme: daily, off-site too, two snapshots kept, restore tests.
    let scratch = parapet_store_sql::testkit::temp_dir("bk-agent");
    let pol = ok_json(&cli(
        &srv,
        &s3.url,
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
            "--keep-last",
            "2",
            "--offsite",
            "--restore-test-every",
            "7d",
            "--level",
            "file",
            "--level",
            "vm-image",
            "--json",
        ],
    ));
    assert_eq!(pol["version"], 1);

    // What the agent host has: data, a VM disk image, an on-site repository, its secrets.
    let src = scratch.join("data");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/app.conf"), noise(1, 50_000)).unwrap();
    std::fs::write(src.join("big.bin"), noise(2, 3_000_000)).unwrap();
    let vm = scratch.join("vm.raw");
    std::fs::write(&vm, noise(3, 2_000_000)).unwrap();
    let onsite = scratch.join("onsite");
    let key = scratch.join("operator.key");
    let pwfile = scratch.join("repo.pass");
    std::fs::write(&pwfile, format!("{REPO_PW}\n")).unwrap();
    ok_json(&cli(
        &srv,
        &s3.url,
        "",
        &[
            "backup",
            "init",
            "--repo",
            p(&onsite),
            "--password-file",
            p(&pwfile),
            "--operator-key",
            p(&key),
            "--json",
        ],
    ));
    let offsite = "s3://offsite/acme-db1";
    let config = scratch.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"db1\"\noperator_key = \"{}\"\nscratch = \"{}\"\n\
             [repositories.\"{}\"]\npassword_file = \"{}\"\n\
             [repositories.\"{offsite}\"]\npassword_file = \"{}\"\n",
            p(&key),
            p(&scratch),
            p(&onsite),
            p(&pwfile),
            p(&pwfile)
        ),
    )
    .unwrap();

    // Bad definitions: one line in the CLI, problem+json over HTTP; tenants do not assign jobs.
    let err = fails(&cli(
        &srv,
        &s3.url,
        &admin,
        &[
            "backup",
            "job",
            "add",
            "--tenant",
            "acme",
            "db1",
            "--agent",
            "db1",
            "--path",
            p(&src),
            "--onsite",
            p(&onsite),
        ],
    ));
    assert!(err.contains("off-site"), "{err}");
    let err = fails(&cli(
        &srv,
        &s3.url,
        &admin,
        &[
            "backup",
            "job",
            "add",
            "--tenant",
            "acme",
            "db1",
            "--agent",
            "db1",
            "--path",
            p(&src),
            "--onsite",
            p(&onsite),
            "--offsite",
            "s3://KEY:SECRET@offsite/x",
        ],
    ));
    assert!(err.contains("credentials"), "{err}");
    rt.block_on(async {
        for body in [
            json!({"agent": "db1", "paths": ["relative/path"], "onsite": "/r", "offsite": offsite}),
            json!({"agent": "db 1", "paths": ["/x"], "onsite": "/r", "offsite": offsite}),
            json!({"agent": "db1", "paths": [], "onsite": "/r", "offsite": offsite}),
            json!({"agent": "db1", "policy": "nope", "paths": ["/x"], "onsite": "/r", "offsite": offsite}),
            json!({"agent": "db1", "paths": ["/x"], "bogus": 1}),
        ] {
            let r = api
                .http
                .put(format!("{}/api/v1/tenants/acme/backup/jobs/db1", api.base))
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            assert!(status == 422 || status == 400, "{body}: {status}");
            assert!(ct.starts_with("application/problem+json"), "{ct}");
        }
        let r = api
            .http
            .put(format!("{}/api/v1/tenants/acme/backup/jobs/db1", api.base))
            .bearer_auth(&alice)
            .json(&json!({"agent": "db1", "paths": ["/x"], "onsite": "/r", "offsite": offsite}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
    });

    // The job: file level and VM level, on-site and off-site; due at once.
    let job = ok_json(&cli(
        &srv,
        &s3.url,
        &admin,
        &[
            "backup",
            "job",
            "add",
            "--tenant",
            "acme",
            "db1",
            "--agent",
            "db1",
            "--path",
            p(&src),
            "--vm-image",
            p(&vm),
            "--onsite",
            p(&onsite),
            "--offsite",
            offsite,
            "--json",
        ],
    ));
    assert_eq!(job["status"], "due", "{job}");
    assert_eq!(
        job["due_steps"],
        json!(["backup", "copy", "prune", "restore-test"])
    );

    // The agent runs it: every step, reported.
    let run = ok_json(&cli(
        &srv,
        &s3.url,
        &acme_agent,
        &[
            "backup",
            "agent",
            "--tenant",
            "acme",
            "--config",
            p(&config),
            "--once",
            "--json",
        ],
    ));
    assert_eq!(run["agent"], "db1");
    let runs = run["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{run}");
    assert_eq!(runs[0]["job"], "db1");
    assert_eq!(runs[0]["ok"], true, "{run}");
    let steps: Vec<&str> = runs[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["backup", "copy", "prune", "restore-test"]);
    let snapshot = runs[0]["steps"][0]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();

    // The server shows the run and the next due time; nothing is due now.
    let list = ok_json(&cli(
        &srv,
        &s3.url,
        &admin,
        &["backup", "job", "list", "--tenant", "acme", "--json"],
    ));
    let j = &list[0];
    assert_eq!(j["status"], "ok", "{j}");
    assert_eq!(j["last_snapshot"], snapshot.as_str());
    assert_eq!(j["runs"], 1);
    assert_eq!(j["due_steps"], json!([]));
    assert!(j["next_due_at"].as_str().unwrap() > j["last_run_at"].as_str().unwrap());
    assert!(j["lease_agent"].is_null());
    let again = ok_json(&cli(
        &srv,
        &s3.url,
        &acme_agent,
        &[
            "backup",
            "agent",
            "--tenant",
            "acme",
            "--config",
            p(&config),
            "--once",
            "--json",
        ],
    ));
    assert_eq!(again["runs"], json!([]), "nothing is due on the next poll");

    // The evidence: a backup on-site, a copy off-site, a restore test; the policy is met.
    rt.block_on(async {
        let (s, reports) = api.get("/api/v1/tenants/acme/backup/reports", &alice).await;
        assert_eq!(s, 200);
        let kinds: Vec<(String, String, bool)> = reports
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["kind"].as_str().unwrap().to_string(),
                    r["site"].as_str().unwrap().to_string(),
                    r["ok"].as_bool().unwrap(),
                )
            })
            .collect();
        for want in [
            ("backup", "on-site"),
            ("copy", "off-site"),
            ("restore-test", "on-site"),
        ] {
            assert!(
                kinds
                    .iter()
                    .any(|(k, s, ok)| k == want.0 && s == want.1 && *ok),
                "{want:?} missing from {kinds:?}"
            );
        }
        let (s, c) = api
            .get("/api/v1/tenants/acme/backup/compliance", &alice)
            .await;
        assert_eq!(s, 200);
        assert_eq!(c[0]["compliant"], true, "{c}");
        // The claim and the end of the run are audited.
        let (s, audit) = api
            .get("/api/v1/tenants/acme/audit?limit=200", &alice)
            .await;
        assert_eq!(s, 200, "{audit}");
        let text = audit.to_string();
        for action in [
            "backup.job.set",
            "backup.job.claim",
            "backup.job.renew",
            "backup.job.finish",
        ] {
            assert!(text.contains(action), "{action} not audited");
        }
    });

    // The off-site copy restores the same data.
    let back = scratch.join("restored");
    let o = Command::new(common::bin())
        .args([
            "backup",
            "restore",
            "--repo",
            offsite,
            "latest",
            "--target",
            p(&back),
            "--password-file",
            p(&pwfile),
            "--json",
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "moto-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &s3.url)
        .env_remove("PARAPET_BACKUP_PASSWORD")
        .env_remove("PARAPET_BACKUP_REPOSITORY")
        .output()
        .unwrap();
    ok_json(&o);
    assert_eq!(
        std::fs::read(back.join("data/big.bin")).unwrap(),
        std::fs::read(src.join("big.bin")).unwrap()
    );
    assert_eq!(
        std::fs::read(back.join("vm.raw")).unwrap(),
        std::fs::read(&vm).unwrap()
    );

    // Leases: a due job is claimed once; a second claim, a wrong lease and a wrong agent fail.
    ok_json(&cli(
        &srv,
        &s3.url,
        &admin,
        &[
            "backup",
            "job",
            "add",
            "--tenant",
            "acme",
            "web",
            "--agent",
            "db1",
            "--path",
            p(&src),
            "--onsite",
            p(&onsite),
            "--offsite",
            offsite,
            "--json",
        ],
    ));
    rt.block_on(async {
        let claim = |agent: &'static str, token: String, job: &'static str| {
            let api = &api;
            async move {
                api.post(
                    &format!("/api/v1/tenants/acme/backup/jobs/{job}/claim"),
                    &token,
                    json!({"agent": agent, "lease_secs": 600}),
                )
                .await
            }
        };
        let (s, b) = claim("db1", acme_agent.clone(), "db1").await;
        assert_eq!(s, 409, "nothing of db1 is due: {b}");
        assert!(b["detail"].as_str().unwrap().contains("due"), "{b}");
        let (s, b) = claim("other-host", acme_agent.clone(), "web").await;
        assert_eq!(s, 409, "web is db1's: {b}");
        let (s, first) = claim("db1", acme_agent.clone(), "web").await;
        assert_eq!(s, 200, "{first}");
        assert_eq!(
            first["steps"],
            json!(["backup", "copy", "prune", "restore-test"])
        );
        assert_eq!(first["keep_last"], 2);
        let (s, b) = claim("db1", acme_agent.clone(), "web").await;
        assert_eq!(s, 409, "claimed twice: {b}");
        let (s, j) = api
            .get("/api/v1/tenants/acme/backup/jobs/web", &alice)
            .await;
        assert_eq!(s, 200);
        assert_eq!(j["status"], "running");
        assert_eq!(j["lease_agent"], "db1");
        let finish = |lease: String| {
            let api = &api;
            let token = acme_agent.clone();
            async move {
                api.post(
                    "/api/v1/tenants/acme/backup/jobs/web/finish",
                    &token,
                    json!({"lease": lease, "steps": [
                        {"step": "backup", "ok": false, "error": "disk full"},
                        {"step": "copy", "ok": false, "error": "not run"},
                        {"step": "prune", "ok": false, "error": "not run"},
                        {"step": "restore-test", "ok": true, "duration_ms": 10}
                    ]}),
                )
                .await
            }
        };
        let (s, b) = finish("0190c1de-0000-7000-8000-000000000000".into()).await;
        assert_eq!(s, 409, "a lease not held: {b}");
        let (s, b) = finish(first["lease"].as_str().unwrap().to_string()).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["status"], "failed");
        assert_eq!(b["last_steps"][0]["error"], "disk full");
        let (s, _) = finish(first["lease"].as_str().unwrap().to_string()).await;
        assert_eq!(s, 409, "a lease ends once");
        let (s, _) = claim("db1", acme_agent.clone(), "web").await;
        assert_eq!(s, 409, "a failed backup is retried later, not at once");
    });

    // Tenant isolation: globex's agent and users see and touch none of acme's jobs.
    rt.block_on(async {
        let (s, _) = api
            .get("/api/v1/tenants/acme/backup/agents/db1/jobs", &globex_agent)
            .await;
        assert_eq!(s, 404);
        let (s, _) = api
            .post(
                "/api/v1/tenants/acme/backup/jobs/web/claim",
                &globex_agent,
                json!({"agent": "db1"}),
            )
            .await;
        assert_eq!(s, 404);
        let (s, _) = api
            .post(
                "/api/v1/tenants/acme/backup/jobs/web/finish",
                &globex_agent,
                json!({"lease": "0190c1de-0000-7000-8000-000000000000", "steps": []}),
            )
            .await;
        assert_eq!(s, 404);
        let (s, _) = api
            .get("/api/v1/tenants/acme/backup/jobs", &globex_agent)
            .await;
        assert!(s == 403 || s == 404, "{s}");
        let (s, list) = api
            .get(
                "/api/v1/tenants/globex/backup/agents/db1/jobs",
                &globex_agent,
            )
            .await;
        assert_eq!(s, 200);
        assert_eq!(list, json!([]));
        // A backup token only runs jobs: it cannot assign them or read the overview.
        let (s, _) = api
            .get("/api/v1/tenants/acme/backup/jobs", &acme_agent)
            .await;
        assert_eq!(s, 403);
        let (s, _) = api.get("/api/v1/backup/jobs", &alice).await;
        assert_eq!(s, 403);
        let (s, all) = api.get("/api/v1/backup/jobs", &admin).await;
        assert_eq!(s, 200);
        assert_eq!(all.as_array().unwrap().len(), 2);
    });

    // The console: the tenant's backup page lists the jobs with their state.
    rt.block_on(async {
        let r = api
            .http
            .get(format!("{}/console/tenants/acme/backup", api.base))
            .header("cookie", format!("parapet_session={alice}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let html = r.text().await.unwrap();
        for needle in [
            "id=\"backup-jobs\"",
            "job-ok",
            "job-failed",
            &snapshot,
            "VM image",
        ] {
            assert!(html.contains(needle), "{needle} missing");
        }
        assert!(
            !html.contains("backup-job-form"),
            "tenants do not assign jobs"
        );
        // The provider assigns a job with the console's form (CSRF-protected; bad input is a
        // 422 page; a tenant is refused).
        let csrf = "c".repeat(43);
        let post = |who: String, fields: Vec<(&'static str, String)>, with_csrf: bool| {
            let http = api.http.clone();
            let url = format!("{}/console/tenants/acme/backup/jobs", api.base);
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
        let fields = |path: &str| {
            vec![
                ("name", "console-job".to_string()),
                ("agent", "db2".to_string()),
                ("policy", "default".to_string()),
                ("paths", format!("{path}\n")),
                ("vm_images", String::new()),
                ("onsite", "/srv/backup".to_string()),
                ("offsite", offsite.to_string()),
            ]
        };
        let (s, _) = post(admin.clone(), fields("/srv/data"), false).await;
        assert_eq!(s, 403, "no CSRF token");
        let (s, html) = post(admin.clone(), fields("relative"), true).await;
        assert_eq!(s, 422);
        assert!(html.contains("absolute path"), "{html}");
        let (s, _) = post(alice.clone(), fields("/srv/data"), true).await;
        assert_eq!(s, 403);
        let (s, html) = post(admin.clone(), fields("/srv/data"), true).await;
        assert_eq!(s, 200);
        assert!(html.contains("console-job") && html.contains("db2"));
        let (s, j) = api
            .get("/api/v1/tenants/acme/backup/jobs/console-job", &alice)
            .await;
        assert_eq!(s, 200, "{j}");
        assert_eq!(j["paths"], json!(["/srv/data"]));
        assert_eq!(j["status"], "due");
    });

    // Removing a job keeps its evidence.
    ok_json(&cli(
        &srv,
        &s3.url,
        &admin,
        &["backup", "job", "rm", "--tenant", "acme", "web", "--json"],
    ));
    let list = ok_json(&cli(
        &srv,
        &s3.url,
        &admin,
        &["backup", "job", "list", "--tenant", "acme", "--json"],
    ));
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(list.as_array().unwrap().iter().all(|j| j["name"] != "web"));
}

/// `backup run --server URL --tenant T --policy P` keeps the window of the server's policy
/// (refused outside it, run inside it) instead of `--window`, and `--prune` (or `backup prune
/// --server`) keeps what the policy's retention says; a token of scope `backup` reads the policy
/// it carries out but cannot list policies.
fn a_run_takes_its_window_and_retention_from_the_policy(backend: Backend) {
    let srv = start_with(backend, &[], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let (admin, token) = rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        api.create_tenant_admin(&admin, "acme", "alice", PW).await;
        let alice = api.login("alice@acme", PW).await;
        let (s, b) = api
            .post(
                "/api/v1/tokens",
                &alice,
                json!({"name": "cron", "scopes": ["backup"]}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        (admin, b["token"].as_str().unwrap().to_string())
    });
    let scratch = parapet_store_sql::testkit::temp_dir("bk-policy-run");
    let src = scratch.join("data");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.bin"), noise(7, 100_000)).unwrap();
    let repo = scratch.join("repo");
    let key = scratch.join("operator.key");
    let pwfile = scratch.join("repo.pass");
    std::fs::write(&pwfile, format!("{REPO_PW}\n")).unwrap();
    ok_json(&cli(
        &srv,
        "",
        "",
        &[
            "backup",
            "init",
            "--repo",
            p(&repo),
            "--password-file",
            p(&pwfile),
            "--operator-key",
            p(&key),
            "--json",
        ],
    ));
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600)
        % 24;
    let set = |window: String, version: &str| {
        ok_json(&cli(
            &srv,
            "",
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
                "--keep-last",
                "1",
                "--window",
                &window,
                "--version",
                version,
                "--json",
            ],
        ))
    };
    let run = |extra: &[&str]| {
        let mut args = vec![
            "backup",
            "run",
            "--repo",
            p(&repo),
            "--password-file",
            p(&pwfile),
            "--operator-key",
            p(&key),
            "--server",
            &srv.url,
            "--tenant",
            "acme",
            "--json",
        ];
        args.extend_from_slice(extra);
        args.push(p(&src));
        cli(&srv, "", &token, &args)
    };
    // The policy's window is closed now: refused before anything is written.
    set(
        format!("{:02}:00-{:02}:00", (hour + 2) % 24, (hour + 3) % 24),
        "0",
    );
    let err = fails(&run(&[]));
    assert!(err.contains("outside the backup window"), "{err}");
    // --window and --server are alternatives.
    let o = run(&["--window", "00:00-23:59"]);
    assert!(!o.status.success());
    let snaps = |who: &str| {
        let o = cli(
            &srv,
            "",
            who,
            &[
                "backup",
                "snapshots",
                "--repo",
                p(&repo),
                "--password-file",
                p(&pwfile),
                "--json",
            ],
        );
        ok_json(&o).as_array().unwrap().len()
    };
    assert_eq!(snaps(""), 0);
    // Open now (a new version of the policy): the runs go through; --prune keeps the policy's one.
    set(
        format!("{:02}:00-{:02}:00", (hour + 23) % 24, (hour + 1) % 24),
        "1",
    );
    ok_json(&run(&[]));
    std::fs::write(src.join("b.bin"), noise(8, 50_000)).unwrap();
    ok_json(&run(&[]));
    assert_eq!(snaps(""), 2);
    let out = ok_json(&run(&["--prune"]));
    assert_eq!(
        out["pruned"]["removed"].as_array().unwrap().len(),
        2,
        "{out}"
    );
    assert_eq!(snaps(""), 1);
    // `backup prune --server` takes the retention from the policy; not with --keep-… as well.
    std::fs::write(src.join("c.bin"), noise(9, 50_000)).unwrap();
    ok_json(&run(&[]));
    assert_eq!(snaps(""), 2);
    let prune = |extra: &[&str]| {
        let mut args = vec![
            "backup",
            "prune",
            "--repo",
            p(&repo),
            "--password-file",
            p(&pwfile),
            "--server",
            &srv.url,
            "--tenant",
            "acme",
            "--json",
        ];
        args.extend_from_slice(extra);
        cli(&srv, "", &token, &args)
    };
    let err = fails(&prune(&["--keep-last", "5"]));
    assert!(err.contains("not both"), "{err}");
    ok_json(&prune(&[]));
    assert_eq!(snaps(""), 1);
    // An unknown policy is a clear error; the backup token cannot list policies.
    let err = fails(&prune(&["--policy", "nope"]));
    assert!(err.contains("nope"), "{err}");
    rt.block_on(async {
        let (s, _) = api
            .get("/api/v1/tenants/acme/backup/policies", &token)
            .await;
        assert_eq!(s, 403);
        let (s, p) = api
            .get("/api/v1/tenants/acme/backup/policies/default", &token)
            .await;
        assert_eq!(s, 200, "{p}");
        assert_eq!(p["retention"]["last"], 1);
    });
}

/// A policy says what it backs up (X.1642 8.10-13): file level, VM images and/or hypervisor
/// snapshots; a policy of VM snapshots only is accepted with a warning (8.10-20: a snapshot is
/// not a backup) shown by the API, the CLI (stderr and JSON), the compliance table and the
/// console; unknown levels are refused; a job's sources must fit its policy's levels.
fn policies_combine_file_and_vm_levels_and_warn_on_snapshots_only(backend: Backend) {
    let srv = start_with(backend, &[], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let (admin, alice) = rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        api.create_tenant_admin(&admin, "acme", "alice", PW).await;
        (admin, api.login("alice@acme", PW).await)
    });
    let set = |name: &str, levels: &[&str]| {
        let mut args = vec![
            "backup",
            "policy",
            "set",
            "--tenant",
            "acme",
            name,
            "--rpo",
            "24h",
            "--rto",
            "1h",
            "--keep-daily",
            "7",
            "--json",
        ];
        for l in levels {
            args.extend(["--level", l]);
        }
        cli(&srv, "", &admin, &args)
    };
    // Files and VM images together: no warning.
    let o = set("default", &["file", "vm-image"]);
    let both = ok_json(&o);
    assert_eq!(both["levels"], json!(["file", "vm-image"]));
    assert_eq!(both["warnings"], json!([]));
    assert!(String::from_utf8_lossy(&o.stderr).trim().is_empty());
    // VM snapshots only: accepted, with the warning on stderr and in the JSON.
    let o = set("vm-farm", &["vm-snapshot"]);
    let snap = ok_json(&o);
    assert_eq!(snap["levels"], json!(["vm-snapshot"]));
    let w = snap["warnings"][0].as_str().unwrap();
    assert!(w.contains("not a backup") && w.contains("8.10-20"), "{w}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("warning: VM snapshots only"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Files by default.
    let plain = ok_json(&set("web", &[]));
    assert_eq!(plain["levels"], json!(["file"]));
    // The compliance table shows the warning (JSON and text).
    let c = ok_json(&cli(
        &srv,
        "",
        &alice,
        &["backup", "compliance", "--tenant", "acme", "--json"],
    ));
    let farm = c
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["policy"] == "vm-farm")
        .unwrap();
    assert!(
        farm["warnings"][0]
            .as_str()
            .unwrap()
            .contains("not a backup")
    );
    let o = cli(
        &srv,
        "",
        &alice,
        &["backup", "compliance", "--tenant", "acme"],
    );
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("warning (acme/vm-farm): VM snapshots only"),
        "{text}"
    );
    rt.block_on(async {
        let put = |path: String, body: Value| {
            let api = &api;
            let admin = admin.clone();
            async move {
                let r = api
                    .http
                    .put(format!("{}{path}", api.base))
                    .bearer_auth(&admin)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let ct = r.headers()["content-type"].to_str().unwrap().to_string();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                (status, ct, body)
            }
        };
        // Unknown or repeated levels: problem+json.
        for levels in [json!(["tape"]), json!([]), json!(["file", "file"])] {
            let (s, ct, _) = put(
                "/api/v1/tenants/acme/backup/policies/x".into(),
                json!({"rpo_secs": 86400, "rto_secs": 3600,
                    "retention": {"daily": 7}, "levels": levels}),
            )
            .await;
            assert_eq!(s, 422, "{levels}");
            assert!(ct.starts_with("application/problem+json"), "{ct}");
        }
        let (s, p) = api
            .get("/api/v1/tenants/acme/backup/policies/vm-farm", &alice)
            .await;
        assert_eq!(s, 200);
        assert_eq!(p["warnings"].as_array().unwrap().len(), 1);
        // A job's sources must fit its policy's levels.
        for (policy, body) in [
            ("web", json!({"vm_images": ["/var/lib/vm/a.qcow2"]})),
            ("vm-farm", json!({"paths": ["/srv"]})),
        ] {
            let mut b = body.clone();
            b["agent"] = json!("h1");
            b["policy"] = json!(policy);
            b["onsite"] = json!("/srv/backup");
            let (s, _, e) = put("/api/v1/tenants/acme/backup/jobs/j1".into(), b).await;
            assert_eq!(s, 422, "{policy}: {e}");
            assert!(e["detail"].as_str().unwrap().contains("level"), "{e}");
        }
        // The console: the tenant's page and the provider's table show the warning.
        for (who, path) in [
            (&alice, "/console/tenants/acme/backup"),
            (&admin, "/console/backup"),
        ] {
            let r = api
                .http
                .get(format!("{}{path}", api.base))
                .header("cookie", format!("parapet_session={who}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let html = r.text().await.unwrap();
            assert!(html.contains("policy-warning"), "{path}");
            assert!(html.contains("a snapshot is not a backup"), "{path}");
            assert!(html.contains("file, vm-image"), "{path}");
        }
    });
}
