//! The syslog listener with a real sender, `logger` from util-linux, over UDP and TCP, on both
//! backends (issue 6, X.1642 8.3): RFC 5424 and RFC 3164 messages parsed, auditd records turned
//! into fields, messages attributed to the tenant whose inventory holds the sender, malformed
//! lines counted and kept, the listener never stopping on bad input.
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

use common::{ADMIN_PASSWORD, Backend, start_with};
use serde_json::{Value, json};

on_both!(syslog_from_logger_over_udp_and_tcp);

const PW: &str = "syslog-test-password-1";

fn free_port() -> u16 {
    // A port free for both UDP and TCP.
    loop {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn logger(port: u16, args: &[&str]) {
    let out = Command::new("logger")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("the test needs `logger` from util-linux (apt-get install bsdutils): {e}")
        });
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn syslog_from_logger_over_udp_and_tcp(backend: Backend) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let srv = start_with(backend, &["--syslog-listen", &listen], &[]);
    assert!(
        srv.stdout
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("Syslog receiver on")),
        "{:?}",
        srv.stdout.lock().unwrap()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let base = srv.url.clone();
    // (method, path, token, body) -> (status, text)
    let call =
        |m: reqwest::Method, path: &str, tok: Option<&str>, body: Option<Value>| -> (u16, String) {
            rt.block_on(async {
                let mut rb = http.request(m, format!("{base}{path}"));
                if let Some(t) = tok {
                    rb = rb.bearer_auth(t);
                }
                if let Some(b) = body {
                    rb = rb.json(&b);
                }
                let r = rb.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            })
        };
    let login = |u: &str, pw: &str| -> String {
        let (_, t) = call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": u, "password": pw})),
        );
        let b: Value = serde_json::from_str(&t).unwrap();
        b["token"].as_str().unwrap().to_string()
    };
    let admin = login("admin", ADMIN_PASSWORD);
    let post = |tok: &str, path: &str, v: Value| {
        let (s, t) = call(reqwest::Method::POST, path, Some(tok), Some(v));
        assert!((200..300).contains(&s), "{path}: {t}");
    };
    post(&admin, "/api/v1/tenants", json!({"name": "acme"}));
    post(&admin, "/api/v1/tenants", json!({"name": "globex"}));
    post(
        &admin,
        "/api/v1/tenants/acme/users",
        json!({"username": "alice", "password": PW, "role": "tenant-admin"}),
    );
    post(
        &admin,
        "/api/v1/tenants/globex/users",
        json!({"username": "gina", "password": PW, "role": "tenant-admin"}),
    );
    // The sender (127.0.0.1) is an asset of acme: its messages are acme's.
    post(
        &admin,
        "/api/v1/tenants/acme/assets",
        json!({"name": "web-1", "kind": "vm", "addresses": ["127.0.0.1"]}),
    );
    let alice = login("alice@acme", PW);
    let gina = login("gina@globex", PW);

    logger(
        port,
        &[
            "--udp",
            "--rfc5424",
            "-t",
            "sshd",
            "-p",
            "auth.err",
            "Failed password for root from 198.51.100.7",
        ],
    );
    logger(
        port,
        &[
            "--tcp",
            "--rfc3164",
            "-t",
            "cron",
            "-p",
            "cron.info",
            "job done",
        ],
    );
    logger(
        port,
        &[
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-t",
            "auditd",
            "type=USER_LOGIN msg=audit(1700000000.123:456): pid=99 uid=0 exe=\"/usr/sbin/sshd\" addr=198.51.100.7 res=failed",
        ],
    );
    // Malformed input over UDP and TCP: counted, kept, and the listener goes on.
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(b"\x01\x02 not syslog at all", ("127.0.0.1", port))
        .unwrap();
    u.send_to(&[0xff, 0xfe, 0xfd], ("127.0.0.1", port)).unwrap();
    {
        use std::io::Write;
        let mut t = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        t.write_all(b"<999>broken header\n\n").unwrap();
    }
    logger(
        port,
        &["--udp", "--rfc5424", "-t", "after", "still listening"],
    );

    let search = |tok: &str, tenant: &str| -> Vec<Value> {
        let (_, t) = call(
            reqwest::Method::GET,
            &format!("/api/v1/tenants/{tenant}/events?limit=100"),
            Some(tok),
            None,
        );
        let b: Value = serde_json::from_str(&t).unwrap();
        b["items"].as_array().unwrap().clone()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let events = loop {
        let e = search(&alice, "acme");
        if e.len() >= 7 || Instant::now() > deadline {
            break e;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(events.len(), 7, "{events:#?}");
    let find = |app: &str| {
        events
            .iter()
            .find(|e| e["event"]["app_name"] == app)
            .unwrap_or_else(|| panic!("{app}: {events:#?}"))
    };
    let ssh = find("sshd");
    assert_eq!(ssh["severity"], "high", "auth.err");
    assert_eq!(ssh["event"]["peer"], "127.0.0.1");
    assert!(
        ssh["message"]
            .as_str()
            .unwrap()
            .contains("Failed password for root")
    );
    assert!(ssh["asset"].is_string(), "attributed to web-1");
    let cron = find("cron");
    assert_eq!(cron["severity"], "informational");
    assert_eq!(cron["message"], "job done");
    let audit = find("auditd");
    assert_eq!(audit["event"]["audit"]["type"], "USER_LOGIN");
    assert_eq!(audit["event"]["audit"]["res"], "failed");
    assert_eq!(audit["event"]["audit"]["exe"], "/usr/sbin/sshd");
    find("after");
    assert!(events.iter().any(|e| {
        e["message"]
            .as_str()
            .unwrap_or("")
            .contains("not syslog at all")
    }));
    // Nothing reached globex.
    assert!(search(&gina, "globex").is_empty());
    let (_, m) = call(reqwest::Method::GET, "/metrics", None, None);
    let value = |name: &str| -> f64 {
        m.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(value("parapet_syslog_malformed_total") >= 2.0, "{m}");
    assert_eq!(value("parapet_syslog_messages_total"), 7.0, "{m}");
}
