//! Notification through the real binary on both backends (issue 6 §6, X.1642 8.6.1, 7.2.2.6(2)):
//! e-mail delivered over STARTTLS to a real SMTP server (Python aiosmtpd), webhooks whose
//! HMAC-SHA-256 signature the receiving test verifies (generic and Slack bodies), SMS through an
//! HTTP gateway with its auth header, retries then a dead letter against a receiver answering 500,
//! retry and discard of dead letters, the notification time recorded, secrets shown once and never
//! again, tenant isolation of every endpoint, the CLI with --json, and the console page.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::webhook::{receiver, verify_signature};
use common::{ADMIN_PASSWORD, Backend, bin, start_with};
use serde_json::{Value, json};

on_both!(
    notification_channels_outbox_and_dead_letters,
    affected_tenants_are_warned_without_learning_of_each_other,
    a_new_alert_reaches_the_tenants_routed_webhook
);

const PW: &str = "notify-test-password-1";

fn python() -> String {
    common::test_python()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test CA and a server certificate for `localhost` it signed, made by Python's
/// `cryptography`: (CA certificate, server certificate, server key).
fn make_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let script = r#"
import datetime, sys
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
now = datetime.datetime.now(datetime.timezone.utc)
def builder(subject, issuer, public_key):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2)))
ca_key = ec.generate_private_key(ec.SECP256R1())
ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Parapet test CA")])
ca = (builder(ca_name, ca_name, ca_key.public_key())
      .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
          content_commitment=False, key_encipherment=False, data_encipherment=False,
          key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
cert = (builder(name, ca_name, key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
open(sys.argv[1], "wb").write(ca.public_bytes(serialization.Encoding.PEM))
open(sys.argv[2], "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(sys.argv[3], "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
"#;
    let ca = dir.join("test-ca.pem");
    let cert = dir.join("smtp-cert.pem");
    let key = dir.join("smtp-key.pem");
    let out = Command::new(python())
        .args(["-c", script])
        .arg(&ca)
        .arg(&cert)
        .arg(&key)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()));
    assert!(
        out.status.success(),
        "making the certificates failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (ca, cert, key)
}

/// aiosmtpd on a free port, requiring STARTTLS, storing messages in a maildir; killed on drop.
struct Smtp {
    child: std::process::Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp(dir: &Path, cert: &Path, key: &Path) -> Smtp {
    let port = free_port();
    let maildir = dir.join("maildir");
    let child = Command::new(python())
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .arg("--tlscert")
        .arg(cert)
        .arg("--tlskey")
        .arg(key)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start aiosmtpd ({}): {e}", python()));
    wait_for("aiosmtpd to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Smtp {
        child,
        port,
        maildir,
    }
}

/// The mails in a maildir, as text.
fn mails(maildir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(maildir.join(sub)) {
            for e in entries.flatten() {
                out.push(std::fs::read_to_string(e.path()).unwrap());
            }
        }
    }
    out
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        m: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }
    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }
    async fn login(&self, user: &str, pw: &str) -> String {
        let (s, b) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                "",
                Some(json!({"username": user, "password": pw})),
            )
            .await;
        assert_eq!(s, 200, "login {user}: {b}");
        b["token"].as_str().unwrap().to_string()
    }
    /// Waits until message `id` of `tenant` has `status`; returns it.
    async fn wait_status(&self, tenant: &str, id: &str, token: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, m) = self
                .get(
                    &format!("/api/v1/tenants/{tenant}/notify/outbox/{id}"),
                    token,
                )
                .await;
            assert_eq!(s, 200, "{m}");
            if m["status"] == status {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "message {id} never became {status}: {m}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn notification_channels_outbox_and_dead_letters(backend: Backend) {
    let dir = parapet_store_sql::testkit::temp_dir("notify");
    let (ca, cert, key) = make_cert(&dir);
    let mail = smtp(&dir, &cert, &key);
    let hooks = receiver();
    let gateway = receiver();
    let config = dir.join("parapet.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[notify]
allow_private_webhooks = true
max_attempts = 3
backoff_base_ms = 100
backoff_max_ms = 300
poll_ms = 50

[notify.smtp]
host = "localhost"
port = {}
starttls = "required"
from = "Parapet <parapet@provider.example>"
ca_file = "{}"

[notify.sms]
url = "http://127.0.0.1:{}/send?to={{to}}&text={{text}}"
method = "GET"
auth_header = "Authorization: Bearer gateway-token-1"
"#,
            mail.port,
            ca.display(),
            gateway.port
        ),
    )
    .unwrap();
    let srv = start_with(backend, &["--config", config.to_str().unwrap()], &[]);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (alice, acme_dead_id) = rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        for t in ["acme", "globex"] {
            let (s, b) = api
                .post("/api/v1/tenants", &admin, json!({"name": t}))
                .await;
            assert_eq!(s, 201, "{b}");
        }
        for (t, u, role) in [
            ("acme", "alice", "tenant-admin"),
            ("acme", "bob", "tenant-member"),
            ("globex", "gina", "tenant-admin"),
        ] {
            let (s, b) = api
                .post(
                    &format!("/api/v1/tenants/{t}/users"),
                    &admin,
                    json!({"username": u, "password": PW, "role": role}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        let alice = api.login("alice@acme", PW).await;
        let bob = api.login("bob@acme", PW).await;
        let gina = api.login("gina@globex", PW).await;
        let chans = "/api/v1/tenants/acme/notify/channels";

        // Channels of every kind; a webhook's secret is shown once, at creation.
        let (s, b) = api
            .post(
                chans,
                &alice,
                json!({"name": "soc-mail", "kind": "email", "to": ["soc@acme.example"]}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(b["secret"], Value::Null);
        let (s, b) = api
            .post(
                chans,
                &alice,
                json!({"name": "hook", "kind": "webhook",
                "url": format!("http://127.0.0.1:{}/hooks/acme-private-path", hooks.port)}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let secret = b["secret"].as_str().unwrap().to_string();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(
            b["channel"]["destination"],
            format!("http://127.0.0.1:{}/…", hooks.port)
        );
        let (s, b) = api
            .post(
                chans,
                &alice,
                json!({"name": "slack", "kind": "webhook", "format": "slack",
                "url": format!("http://127.0.0.1:{}/slack", hooks.port)}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let slack_secret = b["secret"].as_str().unwrap().to_string();
        let (s, b) = api
            .post(
                chans,
                &alice,
                json!({"name": "pager", "kind": "sms", "to": ["+4915112345678"]}),
            )
            .await;
        assert_eq!(s, 201, "{b}");

        // Bad input is a 4xx problem and writes nothing.
        for (body, status, needle) in [
            (
                json!({"name": "x", "kind": "email", "to": ["nobody"]}),
                422,
                "e-mail address",
            ),
            (
                json!({"name": "x", "kind": "pigeon"}),
                422,
                "unknown channel kind",
            ),
            (
                json!({"name": "x", "kind": "webhook", "url": "ftp://x"}),
                422,
                "URL",
            ),
            (
                json!({"name": "x", "kind": "sms", "to": ["12"]}),
                422,
                "phone number",
            ),
            (
                json!({"name": "x y", "kind": "sms", "to": ["+4915112345678"]}),
                422,
                "channel name",
            ),
            (
                json!({"name": "x", "kind": "email", "to": ["a@b.example"], "colour": 1}),
                422,
                "colour",
            ),
            (
                json!({"name": "SOC-MAIL", "kind": "email", "to": ["a@b.example"]}),
                409,
                "already",
            ),
        ] {
            let (s, b) = api.post(chans, &alice, body.clone()).await;
            assert_eq!(s, status, "{body}: {b}");
            assert!(
                b["detail"].as_str().unwrap().contains(needle),
                "{body}: {b}"
            );
            assert_eq!(b["status"], status);
        }
        let res = api
            .http
            .post(format!("{}{chans}", api.base))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 400);
        let (s, _) = api
            .get("/api/v1/tenants/acme/notify/outbox?status=lost", &alice)
            .await;
        assert_eq!(s, 400);

        // Listing never shows a secret or a webhook path.
        let (s, list) = api.get(chans, &alice).await;
        assert_eq!(s, 200);
        assert_eq!(list.as_array().unwrap().len(), 4);
        let text = list.to_string();
        assert!(
            !text.contains(&secret) && !text.contains("acme-private-path"),
            "{text}"
        );

        // A test message on every channel is delivered, and its notification time recorded.
        let mut ids = Vec::new();
        for ch in ["soc-mail", "hook", "slack", "pager"] {
            let (s, m) = api
                .post(&format!("{chans}/{ch}/test"), &alice, json!({}))
                .await;
            assert_eq!(s, 202, "{m}");
            assert_eq!(m["channel"], ch);
            ids.push(m["id"].as_str().unwrap().to_string());
        }
        for id in &ids {
            let m = api.wait_status("acme", id, &alice, "delivered").await;
            assert_eq!(m["attempts"], 1);
            let latency = m["latency_ms"].as_i64().unwrap();
            assert!((0..30_000).contains(&latency), "{m}");
            assert!(m["delivered_at"].is_string());
        }
        // The e-mail went over STARTTLS to the real SMTP server (it refuses mail without it).
        wait_for("the e-mail", || !mails(&mail.maildir).is_empty());
        let m = mails(&mail.maildir).pop().unwrap();
        assert!(
            m.contains("Subject: Parapet test notification for acme"),
            "{m}"
        );
        assert!(m.contains("To: soc@acme.example"), "{m}");
        assert!(
            m.contains("From: Parapet <parapet@provider.example>"),
            "{m}"
        );
        // The webhooks carry bodies whose signature the receiver verifies with the secret.
        let got = hooks.got.lock().unwrap().clone();
        let generic = got
            .iter()
            .find(|r| r.target == "/hooks/acme-private-path")
            .unwrap();
        assert_eq!(generic.method, "POST");
        verify_signature(generic, &secret);
        let body: Value = serde_json::from_str(&generic.body).unwrap();
        assert_eq!(body["tenant"], "acme");
        assert_eq!(body["source"], "test");
        assert_eq!(body["id"], ids[1].as_str());
        let slack = got.iter().find(|r| r.target == "/slack").unwrap();
        verify_signature(slack, &slack_secret);
        let body: Value = serde_json::from_str(&slack.body).unwrap();
        assert!(
            body["text"].as_str().unwrap().contains("test notification"),
            "{body}"
        );
        // The SMS gateway got the number and text percent-encoded, with its auth header.
        let sms = gateway.got.lock().unwrap().clone();
        assert_eq!(sms.len(), 1, "{sms:?}");
        assert_eq!(sms[0].method, "GET");
        assert!(
            sms[0]
                .target
                .starts_with("/send?to=%2B4915112345678&text=Parapet%20test"),
            "{:?}",
            sms[0]
        );
        assert_eq!(
            sms[0].header("authorization"),
            Some("Bearer gateway-token-1")
        );

        // The tenant's notification time (7.2.2.6(2)) over its delivered messages.
        let (s, st) = api.get("/api/v1/tenants/acme/notify/stats", &alice).await;
        assert_eq!(s, 200, "{st}");
        assert_eq!(st["delivered"], 4, "{st}");
        let mean = st["mean_ms"].as_f64().unwrap();
        assert!((0.0..30_000.0).contains(&mean), "{st}");
        assert!(st["p99_ms"].as_i64().unwrap() >= st["median_ms"].as_i64().unwrap());
        assert_eq!(
            api.get("/api/v1/tenants/acme/notify/stats", &gina).await.0,
            404
        );

        // A receiver answering 500: three attempts with backoff, then a dead letter.
        hooks.status.store(500, Ordering::SeqCst);
        let (_, m) = api
            .post(&format!("{chans}/hook/test"), &alice, json!({}))
            .await;
        let dead_id = m["id"].as_str().unwrap().to_string();
        let m = api.wait_status("acme", &dead_id, &alice, "dead").await;
        assert_eq!(m["attempts"], 3);
        assert!(m["last_error"].as_str().unwrap().contains("500"), "{m}");
        let attempts = hooks
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.body.contains(&dead_id))
            .count();
        assert_eq!(attempts, 3);
        let (s, dl) = api
            .get("/api/v1/tenants/acme/notify/dead-letters", &alice)
            .await;
        assert_eq!(s, 200);
        let dl_ids: Vec<&str> = dl["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(dl_ids, vec![dead_id.as_str()]);

        // Isolation: globex's admin sees none of acme's notification data, through any endpoint;
        // acme's member may not manage (or read) its channels.
        for path in [
            "/api/v1/tenants/acme/notify/channels".to_string(),
            "/api/v1/tenants/acme/notify/channels/hook".to_string(),
            "/api/v1/tenants/acme/notify/outbox".to_string(),
            "/api/v1/tenants/acme/notify/dead-letters".to_string(),
            format!("/api/v1/tenants/acme/notify/outbox/{dead_id}"),
        ] {
            let (s, b) = api.get(&path, &gina).await;
            assert_eq!(s, 404, "{path}: {b}");
            let (s, _) = api.get(&path, &bob).await;
            assert_eq!(s, 403, "{path}");
        }
        for path in [
            format!("/api/v1/tenants/acme/notify/outbox/{dead_id}/retry"),
            format!("/api/v1/tenants/acme/notify/outbox/{dead_id}/discard"),
            "/api/v1/tenants/acme/notify/channels/hook/test".to_string(),
            "/api/v1/tenants/acme/notify/channels".to_string(),
        ] {
            let body = json!({"name": "sneaky", "kind": "email", "to": ["g@globex.example"]});
            let (s, _) = api.post(&path, &gina, body).await;
            assert_eq!(s, 404, "{path}");
        }
        let (s, _) = api
            .call(
                reqwest::Method::DELETE,
                "/api/v1/tenants/acme/notify/channels/hook",
                &gina,
                None,
            )
            .await;
        assert_eq!(s, 404);
        // acme's message id does not exist in globex's own outbox either.
        let (s, _) = api
            .post(
                &format!("/api/v1/tenants/globex/notify/outbox/{dead_id}/retry"),
                &gina,
                json!({}),
            )
            .await;
        assert_eq!(s, 404);
        let (s, b) = api.get("/api/v1/tenants/globex/notify/outbox", &gina).await;
        assert_eq!(s, 200);
        assert!(b["items"].as_array().unwrap().is_empty());

        // Retried after the receiver recovers: delivered, signed again.
        hooks.status.store(200, Ordering::SeqCst);
        let (s, m) = api
            .post(
                &format!("/api/v1/tenants/acme/notify/outbox/{dead_id}/retry"),
                &alice,
                json!({}),
            )
            .await;
        assert_eq!(s, 200, "{m}");
        api.wait_status("acme", &dead_id, &alice, "delivered").await;
        let last = hooks.got.lock().unwrap().last().cloned().unwrap();
        verify_signature(&last, &secret);
        let (s, _) = api
            .post(
                &format!("/api/v1/tenants/acme/notify/outbox/{dead_id}/retry"),
                &alice,
                json!({}),
            )
            .await;
        assert_eq!(s, 409, "a delivered message is not retried");

        // The secret never reaches the audit trail.
        let (s, audit) = api
            .get("/api/v1/tenants/acme/audit?limit=1000", &alice)
            .await;
        assert_eq!(s, 200, "{audit}");
        let text = audit.to_string();
        assert!(text.contains("notify.channel.create") && text.contains("notify.delivered"));
        assert!(text.contains("notify.dead-lettered") && text.contains("notify.retry"));
        assert!(!text.contains(&secret) && !text.contains(&slack_secret));
        assert!(!text.contains("acme-private-path"));

        // A second dead letter, left for the CLI to discard.
        hooks.status.store(500, Ordering::SeqCst);
        let (_, m) = api
            .post(&format!("{chans}/hook/test"), &alice, json!({}))
            .await;
        let id2 = m["id"].as_str().unwrap().to_string();
        api.wait_status("acme", &id2, &alice, "dead").await;
        (alice, id2)
    });

    // The CLI, with --json and without.
    let cli = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .env("PARAPET_SERVER", &srv.url)
            .env("PARAPET_TOKEN", &alice)
            .env("PARAPET_CONFIG_DIR", &dir)
            .output()
            .unwrap()
    };
    let o = cli(&["notify", "channel", "list", "--tenant", "acme", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["hook", "pager", "slack", "soc-mail"]);
    let o = cli(&["notify", "dead-letters", "--tenant", "acme", "--json"]);
    assert!(o.status.success());
    let dl: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(dl.as_array().unwrap().len(), 1);
    assert_eq!(dl[0]["id"], acme_dead_id.as_str());
    let o = cli(&[
        "notify",
        "discard",
        "--tenant",
        "acme",
        &acme_dead_id,
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["status"], "discarded");
    let o = cli(&["notify", "stats", "--tenant", "acme", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(st["delivered"].as_u64().unwrap() >= 5, "{st}");
    let o = cli(&["notify", "outbox", "--tenant", "acme"]);
    assert!(o.status.success());
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(
        table.starts_with("ID") && table.contains("discarded") && table.contains("delivered"),
        "{table}"
    );
    let o = cli(&[
        "notify",
        "channel",
        "add",
        "--tenant",
        "acme",
        "ops",
        "--webhook",
        &format!("http://127.0.0.1:{}/ops", hooks.port),
        "--slack",
        "--min-severity",
        "high",
        "--source",
        "rule:brute-force",
        "--source",
        "incident",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(c["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(c["channel"]["format"], "slack");
    assert_eq!(c["channel"]["min_severity"], "high");
    assert_eq!(
        c["channel"]["sources"],
        json!(["rule:brute-force", "incident"])
    );
    let o = cli(&["notify", "channel", "rm", "--tenant", "acme", "ops"]);
    assert!(o.status.success());
    let o = cli(&[
        "notify",
        "channel",
        "add",
        "--tenant",
        "acme",
        "bad",
        "--email",
        "not-an-address",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("e-mail address"), "{err}");
    let o = cli(&["notify", "channel", "test", "--tenant", "globex", "hook"]);
    assert!(!o.status.success(), "acme's admin may not act on globex");

    // The console page shows the channels, the outbox and the dead letters.
    rt.block_on(async {
        let page = api
            .http
            .get(format!("{}/console/tenants/acme/notify", api.base))
            .header("cookie", format!("parapet_session={alice}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().await.unwrap();
        for needle in [
            "id=\"channels\"",
            "soc-mail",
            "id=\"outbox\"",
            "Notification time",
            "chart latency",
        ] {
            assert!(html.contains(needle), "{needle} missing");
        }
        assert!(!html.contains(&alice) && !html.contains("acme-private-path"));
    });
    drop(mail);
    let _ = std::fs::remove_dir_all(&dir);
}

/// X.1642 8.6.4 across four tenants: acme's incident (its asset web-1 runs Ubuntu 22.04 and
/// OpenSSL 3.0.13); globex runs that OpenSSL on two assets, initech that Ubuntu, umbrella another
/// OpenSSL version. globex and initech are warned once each through their security contacts,
/// about their own assets only; nobody learns of anybody else, acme included.
fn affected_tenants_are_warned_without_learning_of_each_other(backend: Backend) {
    let hooks = receiver();
    let dir = parapet_store_sql::testkit::temp_dir("notify-affected");
    let config = dir.join("parapet.toml");
    std::fs::write(
        &config,
        "[notify]\npoll_ms = 50\nallow_private_webhooks = true\n",
    )
    .unwrap();
    let srv = start_with(backend, &["--config", config.to_str().unwrap()], &[]);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (admin, incident) = rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let tenants = ["acme", "globex", "initech", "umbrella"];
        let mut tokens = std::collections::BTreeMap::new();
        for t in tenants {
            let (s, b) = api.post("/api/v1/tenants", &admin, json!({"name": t})).await;
            assert_eq!(s, 201, "{b}");
            let (s, b) = api
                .post(
                    &format!("/api/v1/tenants/{t}/users"),
                    &admin,
                    json!({"username": "sec", "password": PW, "role": "tenant-admin"}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
            let tok = api.login(&format!("sec@{t}"), PW).await;
            // Each tenant's security contact: a webhook to its own path.
            let (s, b) = api
                .post(
                    &format!("/api/v1/tenants/{t}/notify/channels"),
                    &tok,
                    json!({"name": "security", "kind": "webhook", "security_contact": true,
                           "url": format!("http://127.0.0.1:{}/t/{t}", hooks.port)}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
            assert_eq!(b["channel"]["security_contact"], true);
            tokens.insert(t, tok);
        }
        // globex has a second channel that is not its security contact: not told.
        let (s, b) = api
            .post(
                "/api/v1/tenants/globex/notify/channels",
                &tokens["globex"],
                json!({"name": "devops", "kind": "webhook",
                       "url": format!("http://127.0.0.1:{}/t/globex-devops", hooks.port)}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let asset = |name: &str, os: (&str, &str), apps: &[(&str, &str)]| {
            json!({"name": name, "kind": "vm", "os": {"name": os.0, "version": os.1},
                   "applications": apps.iter().map(|(n, v)| json!({"name": n, "version": v})).collect::<Vec<_>>()})
        };
        for (t, a) in [
            ("acme", asset("web-1", ("Ubuntu", "22.04"), &[("openssl", "3.0.13"), ("nginx", "1.24.0")])),
            ("globex", asset("gx-web", ("Debian", "12"), &[("OpenSSL", "3.0.13")])),
            ("globex", asset("gx-db", ("Debian", "12"), &[("openssl", "3.0.13")])),
            ("globex", asset("gx-mail", ("Debian", "12"), &[("postfix", "3.7")])),
            ("initech", asset("in-host", ("ubuntu", "22.04"), &[])),
            ("umbrella", asset("um-web", ("Rocky", "9"), &[("openssl", "3.0.14")])),
        ] {
            let (s, b) = api.post(&format!("/api/v1/tenants/{t}/assets"), &tokens[t], a).await;
            assert_eq!(s, 201, "{b}");
        }
        let (s, i) = api
            .post(
                "/api/v1/incidents",
                &admin,
                json!({"tenant": "acme", "title": "Web server compromised through OpenSSL",
                       "severity": "high"}),
            )
            .await;
        assert_eq!(s, 201, "{i}");
        let id = i["id"].as_str().unwrap().to_string();
        let check = format!("/api/v1/incidents/{id}/affected-tenants");

        // Without a weakness and without an affected asset there is nothing to look for.
        let (s, b) = api.post(&check, &admin, json!({})).await;
        assert_eq!(s, 422, "{b}");
        let (s, b) = api
            .post(&check, &admin, json!({"weaknesses": [{"name": "", "version": "1"}]}))
            .await;
        assert_eq!(s, 422, "{b}");
        // Tenants may not run the check, not even on their own incident.
        let (s, _) = api.post(&check, &tokens["acme"], json!({})).await;
        assert!(s == 403 || s == 404, "{s}");
        let (s, _) = api.post(&check, &tokens["globex"], json!({})).await;
        assert_eq!(s, 404);

        // The affected asset as an observable: its OS and applications are looked for.
        let (s, b) = api
            .post(&format!("/api/v1/incidents/{id}/observables"), &admin,
                  json!({"kind": "asset", "value": "web-1"}))
            .await;
        assert_eq!(s, 200, "{b}");
        let (s, r) = api.post(&check, &admin, json!({})).await;
        assert_eq!(s, 200, "{r}");
        let mut warned: Vec<&str> = r["tenants"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        warned.sort_unstable();
        assert_eq!(warned, vec!["globex", "initech"], "{r}");
        assert_eq!(r["messages"], 2, "{r}");
        let reference = r["reference"].as_str().unwrap().to_string();

        // Exactly one warning each, to the security contact only.
        wait_for("two warnings", || hooks.got.lock().unwrap().len() >= 2);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = hooks.got.lock().unwrap().clone();
        let targets: Vec<&str> = got.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(got.len(), 2, "{targets:?}");
        let body_of = |t: &str| -> String {
            let r = got.iter().find(|r| r.target == format!("/t/{t}")).unwrap_or_else(|| panic!("{t}: {targets:?}"));
            let v: Value = serde_json::from_str(&r.body).unwrap();
            format!("{} {}", v["subject"].as_str().unwrap(), v["body"].as_str().unwrap())
        };
        let globex = body_of("globex");
        assert!(globex.contains("gx-web") && globex.contains("gx-db"), "{globex}");
        assert!(globex.contains("openssl 3.0.13") && globex.contains(&reference), "{globex}");
        assert!(!globex.contains("gx-mail") && !globex.contains("Ubuntu"), "{globex}");
        let initech = body_of("initech");
        assert!(initech.contains("in-host") && initech.contains("Ubuntu 22.04"), "{initech}");
        assert!(!initech.to_lowercase().contains("openssl"), "{initech}");
        // Nothing about anyone else: names, assets, the incident, counts.
        for (text, own, others) in [
            (&globex, "globex", ["acme", "initech", "umbrella", "web-1", "in-host", "um-web"]),
            (&initech, "initech", ["acme", "globex", "umbrella", "web-1", "gx-web", "um-web"]),
        ] {
            for other in others {
                assert!(!text.contains(other), "{own} learns of {other}: {text}");
            }
            assert!(!text.contains(&id), "{own} learns the incident id: {text}");
            assert!(!text.contains("tenants") && !text.contains(" 2 "), "{own}: {text}");
        }

        // Each warned tenant sees the advisory in its own outbox and audit trail, about itself.
        for t in ["globex", "initech"] {
            let (s, b) = api.get(&format!("/api/v1/tenants/{t}/notify/outbox"), &tokens[t]).await;
            assert_eq!(s, 200);
            assert_eq!(b["items"].as_array().unwrap().len(), 1, "{b}");
            let (s, audit) = api.get(&format!("/api/v1/tenants/{t}/audit?limit=1000"), &tokens[t]).await;
            assert_eq!(s, 200, "{audit}");
            let text = audit.to_string();
            assert!(text.contains("notify.advisory"), "{t}");
            for other in ["acme", "globex", "initech", "umbrella", "web-1"] {
                if other != t {
                    assert!(!text.contains(other), "{t}'s audit trail names {other}");
                }
            }
        }
        for t in ["acme", "umbrella"] {
            let (_, b) = api.get(&format!("/api/v1/tenants/{t}/notify/outbox"), &tokens[t]).await;
            assert!(b["items"].as_array().unwrap().is_empty(), "{t}: {b}");
        }
        // acme's view of its incident, its report and its audit trail say nothing of the others.
        let (s, v) = api.get(&format!("/api/v1/incidents/{id}"), &tokens["acme"]).await;
        assert_eq!(s, 200, "{v}");
        let (s, report) = api.get(&format!("/api/v1/incidents/{id}/report"), &tokens["acme"]).await;
        assert_eq!(s, 200);
        let (s, audit) = api.get("/api/v1/tenants/acme/audit?limit=1000", &tokens["acme"]).await;
        assert_eq!(s, 200);
        for text in [v.to_string(), report.to_string(), audit.to_string()] {
            for other in ["globex", "initech", "umbrella", "gx-web", "in-host", "warned", &reference] {
                assert!(!text.contains(other), "acme learns {other}");
            }
        }
        // The provider's staff see the check recorded on the incident.
        let (_, v) = api.get(&format!("/api/v1/incidents/{id}"), &admin).await;
        let text = v.to_string();
        assert!(
            text.contains(&reference) && text.contains("globex") && text.contains("initech"),
            "{text}"
        );
        // The console button on the incident page runs the same check (form with CSRF token).
        let page = api
            .http
            .get(format!("{}/console/incidents/{id}", api.base))
            .header("cookie", format!("parapet_session={admin}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("incident-affected-form"), "the button is missing");
        let csrf = "c".repeat(43);
        let no_redirect = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let res = no_redirect
            .post(format!("{}/console/incidents/{id}/affected-tenants", api.base))
            .header("cookie", format!("parapet_session={admin}; parapet_csrf={csrf}"))
            .header("sec-fetch-site", "same-origin")
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        let (_, b) = api.get("/api/v1/tenants/globex/notify/outbox", &tokens["globex"]).await;
        assert_eq!(b["items"].as_array().unwrap().len(), 2, "{b}");
        // Without the CSRF token the form is refused and nothing is sent.
        let res = no_redirect
            .post(format!("{}/console/incidents/{id}/affected-tenants", api.base))
            .header("cookie", format!("parapet_session={admin}"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403);
        let (_, b) = api.get("/api/v1/tenants/globex/notify/outbox", &tokens["globex"]).await;
        assert_eq!(b["items"].as_array().unwrap().len(), 2, "{b}");
        (admin, id)
    });
    // The CLI: an explicit weakness, with --json.
    let o = Command::new(bin())
        .args([
            "notify",
            "affected-tenants",
            &incident,
            "--software",
            "OpenSSL",
            "--version",
            "3.0.13",
            "--json",
        ])
        .env("PARAPET_SERVER", &srv.url)
        .env("PARAPET_TOKEN", &admin)
        .env("PARAPET_CONFIG_DIR", &dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["tenants"], json!(["globex"]));
    assert_eq!(r["weaknesses"][0]["os"], false);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An event that matches a tenant's Sigma rule raises an alert, and the alert reaches the
/// tenant's webhook routed for alerts of that severity (signed), not the one routed elsewhere;
/// a second matching event grouped into the same alert notifies nothing more.
fn a_new_alert_reaches_the_tenants_routed_webhook(backend: Backend) {
    let dir = parapet_store_sql::testkit::temp_dir("notify-alert");
    let hooks = receiver();
    let config = dir.join("parapet.toml");
    std::fs::write(
        &config,
        "[notify]\nallow_private_webhooks = true\npoll_ms = 50\n",
    )
    .unwrap();
    let srv = start_with(backend, &["--config", config.to_str().unwrap()], &[]);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rule = "title: Acme payroll export\nid: 0b8e7e6c-2222-4000-8000-00000000aa02\nstatus: test\nlogsource:\n  product: acme\ndetection:\n  selection:\n    action: payroll-export\n  condition: selection\nlevel: high\n";
    let secret = rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let (s, b) = api
            .post("/api/v1/tenants", &admin, json!({"name": "acme"}))
            .await;
        assert_eq!(s, 201, "{b}");
        let chans = "/api/v1/tenants/acme/notify/channels";
        let (s, b) = api
            .post(
                chans,
                &admin,
                json!({"name": "alerts", "kind": "webhook", "sources": ["alert"], "min_severity": "high",
                "url": format!("http://127.0.0.1:{}/alerts", hooks.port)}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let secret = b["secret"].as_str().unwrap().to_string();
        let (s, b) = api
            .post(
                chans,
                &admin,
                json!({"name": "incidents-only", "kind": "webhook", "sources": ["incident"],
                "url": format!("http://127.0.0.1:{}/incidents", hooks.port)}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let res = api
            .http
            .post(format!("{}/api/v1/tenants/acme/rules?file=payroll.yml", api.base))
            .bearer_auth(&admin)
            .header("content-type", "application/yaml")
            .body(rule)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
        for n in 0..2 {
            let res = api
                .http
                .post(format!("{}/api/v1/tenants/acme/events", api.base))
                .bearer_auth(&admin)
                .header("content-type", "application/x-ndjson")
                .body(format!(
                    "{{\"action\":\"payroll-export\",\"host\":\"hr-1\",\"n\":{n}}}\n{{\"action\":\"other\"}}\n"
                ))
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success(), "{}", res.text().await.unwrap());
        }
        secret
    });
    wait_for("the alert's webhook", || {
        !hooks.got.lock().unwrap().is_empty()
    });
    // Give a wrongly routed or duplicated message the time to show up too.
    std::thread::sleep(Duration::from_millis(1500));
    let got = hooks.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].target, "/alerts");
    assert!(
        got[0].body.contains("Acme payroll export"),
        "{}",
        got[0].body
    );
    assert!(got[0].body.contains("high"), "{}", got[0].body);
    verify_signature(&got[0], &secret);
}
