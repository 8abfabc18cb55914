//! Tests of the `parapet serve` process: TLS, the refusal of plain HTTP on public addresses,
//! configuration file and environment, graceful shutdown, and a database that goes away.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::match_like_matches_macro,
    clippy::type_complexity
)]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, Backend};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A throwaway CA and a server certificate for 127.0.0.1 signed by it: (cert, key, ca).
fn test_pki(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let p = |n: &str| dir.join(n);
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed for the TLS test (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-days",
            "1",
            "-subj",
            "/CN=parapet-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
        ],
    ]
    .concat());
    std::fs::write(
        p("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "cert.pem",
        "-extfile",
        "leaf.ext",
    ]);
    (p("cert.pem"), p("key.pem"), p("ca.pem"))
}

#[test]
fn tls_serves_https_with_hsts_and_secure_cookies() {
    let dir = parapet_store_sql::testkit::temp_dir("tls");
    let (cert, key, ca) = test_pki(&dir);
    let srv = common::start_with(
        Backend::Sqlite,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(srv.url.starts_with("https://127.0.0.1:"), "{}", srv.url);
    let pem = std::fs::read(&ca).unwrap();
    rt().block_on(async {
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap();
        let r = http
            .post(format!("{}/api/v1/auth/login", srv.url))
            .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["strict-transport-security"]
                .to_str()
                .unwrap()
                .contains("max-age=")
        );
        let cookie = r.headers()["set-cookie"].to_str().unwrap();
        assert!(cookie.contains("; Secure"), "{cookie}");
        // A client that does not trust the certificate is refused.
        let strict = reqwest::Client::new();
        assert!(
            strict
                .get(format!("{}/healthz", srv.url))
                .send()
                .await
                .is_err()
        );
    });
}

#[test]
fn refuses_plain_http_on_a_public_address() {
    let dir = parapet_store_sql::testkit::temp_dir("pub");
    let out = Command::new(common::bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&dir)
        .env("PARAPET_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("refusing to serve plain HTTP") && lines[0].contains("--insecure-http"),
        "{err}"
    );
    // With --insecure-http it starts.
    let srv = common::start_on(
        Backend::Sqlite,
        dir.to_str().unwrap(),
        &["--insecure-http"],
        &[],
    );
    drop(srv);
}

#[test]
fn bad_configuration_is_one_clear_line() {
    let dir = parapet_store_sql::testkit::temp_dir("cfg");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:0\"\nno_such_key = 1\n").unwrap();
    let cases: Vec<(Vec<String>, Vec<(&str, &str)>, &str)> = vec![
        (
            vec!["--config".into(), bad.display().to_string()],
            vec![],
            "unknown field `no_such_key`",
        ),
        (
            vec!["--config".into(), "/nonexistent/parapet.toml".into()],
            vec![],
            "cannot read the configuration file",
        ),
        (
            vec!["--tls-cert".into(), "/x.pem".into()],
            vec![],
            "TLS needs both",
        ),
        (
            vec!["--database-url".into(), "mysql://x".into()],
            vec![],
            "must start with postgres://",
        ),
        (
            vec![
                "--data-dir".into(),
                "/tmp/x".into(),
                "--database-url".into(),
                "postgres://x/y".into(),
            ],
            vec![],
            "not both",
        ),
        (
            vec![],
            vec![("PARAPET_BOOTSTRAP_PASSWORD", "short")],
            "PARAPET_BOOTSTRAP_PASSWORD is not acceptable",
        ),
    ];
    for (args, env, want) in cases {
        let mut cmd = Command::new(common::bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(&args);
        if !args
            .iter()
            .any(|a| a == "--data-dir" || a == "--database-url")
        {
            cmd.arg("--data-dir")
                .arg(parapet_store_sql::testkit::temp_dir("cfg"));
        }
        cmd.env("PARAPET_LOG", "off");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{args:?}: {err}"
        );
    }
}

/// Runs `cmd` (a `parapet serve` with piped output) until it reports its address, then stops it
/// with SIGTERM; returns what it printed on stdout up to then, all of stderr, and its exit status.
fn run_until_listening_then_term(mut cmd: Command) -> (String, String, std::process::ExitStatus) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = String::new();
    while !out.contains("listening on") && Instant::now() < deadline {
        let mut b = [0u8; 512];
        let n = stdout.read(&mut b).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&String::from_utf8_lossy(&b[..n]));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (out, err, status)
}

#[test]
fn config_file_and_environment_are_layered() {
    let dir = parapet_store_sql::testkit::temp_dir("layer");
    let data = dir.join("from-file");
    let cfg = dir.join("parapet.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\nlisten = \"127.0.0.1:1\"\nlog_format = \"json\"\n",
            data.display()
        ),
    )
    .unwrap();
    // The flag --listen (from the harness) wins over the file; the data directory comes from the
    // file; the log format from the file gives JSON lines on stderr.
    let mut cmd = Command::new(common::bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .env("PARAPET_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
        .env("PARAPET_LOG", "info");
    let (buf, err, status) = run_until_listening_then_term(cmd);
    assert!(buf.contains("listening on http://127.0.0.1:"), "{buf}");
    assert!(
        data.join("parapet.db").exists(),
        "data_dir from the file was not used"
    );
    assert!(
        status.success(),
        "SIGTERM must end the server cleanly: {status:?} {err}"
    );
    let first = err.lines().find(|l| !l.trim().is_empty()).unwrap();
    let v: serde_json::Value = serde_json::from_str(first).expect("JSON log line");
    assert!(
        v.get("level").is_some() && v.get("fields").is_some(),
        "{first}"
    );
    assert!(!err.contains(ADMIN_PASSWORD), "a secret reached the log");
}

#[test]
fn generated_admin_password_is_printed_once() {
    let dir = parapet_store_sql::testkit::temp_dir("gen");
    let run = || {
        let mut cmd = Command::new(common::bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .env_remove("PARAPET_BOOTSTRAP_PASSWORD")
            .env("PARAPET_LOG", "info");
        let (out, err, _) = run_until_listening_then_term(cmd);
        (out, err)
    };
    let (out, err) = run();
    let line = out
        .lines()
        .find(|l| l.contains("admin password"))
        .expect("password line");
    let pw = line.rsplit(' ').next().unwrap();
    assert_eq!(pw.len(), 24, "{line}");
    assert!(!err.contains(pw), "the generated password reached the log");
    let (out2, _) = run();
    assert!(!out2.contains("admin password"), "printed twice: {out2}");
    // And it works.
    let srv = common::start_on(Backend::Sqlite, dir.to_str().unwrap(), &[], &[]);
    rt().block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", srv.url))
            .json(&serde_json::json!({"username": "admin", "password": pw}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
}

#[test]
fn demo_seeds_three_tenants_with_users() {
    let srv = common::start_with(Backend::Sqlite, &["--demo"], &[]);
    let out = srv.stdout.lock().unwrap().join("\n");
    assert!(
        out.contains("alice@acme") && out.contains(parapet_iam_demo_password()),
        "{out}"
    );
    rt().block_on(async {
        let http = reqwest::Client::new();
        let tok = login_token(&http, &srv.url, "alice@globex", parapet_iam_demo_password()).await;
        let users = get_json(&http, &srv.url, &tok, "/api/v1/tenants/globex/users").await;
        assert_eq!(users["items"].as_array().unwrap().len(), 3);
        let admin = login_token(&http, &srv.url, "admin", ADMIN_PASSWORD).await;
        let tenants = get_json(&http, &srv.url, &admin, "/api/v1/tenants").await;
        assert_eq!(tenants["items"].as_array().unwrap().len(), 4);
    });
}

/// Logs in and returns the bearer token (the log-in must succeed).
async fn login_token(http: &reqwest::Client, url: &str, username: &str, password: &str) -> String {
    let r = http
        .post(format!("{url}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "log-in of {username}");
    token_of(r).await
}

async fn token_of(r: reqwest::Response) -> String {
    r.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// GET `path` with a bearer token, as JSON.
async fn get_json(http: &reqwest::Client, url: &str, token: &str, path: &str) -> serde_json::Value {
    http.get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn parapet_iam_demo_password() -> &'static str {
    "parapet-demo-password"
}

/// A TCP proxy to PostgreSQL that can be cut, to make the database unreachable for the server.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (u, c) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !u.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                c.lock().unwrap().push(client.try_clone().unwrap());
                c.lock().unwrap().push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[test]
fn database_outage_gives_503_and_readyz_false_then_recovers() {
    let url = common::fresh_database(Backend::Postgres);
    // postgres://user@127.0.0.1:PORT/db → route it through the proxy.
    let after_at = url.split('@').nth(1).unwrap();
    let hostport = after_at.split('/').next().unwrap().to_string();
    let proxy = Proxy::start(hostport.clone());
    let proxied = url.replace(&hostport, &format!("127.0.0.1:{}", proxy.port));
    let srv = common::start_on(Backend::Postgres, &proxied, &[], &[]);
    rt().block_on(async {
        let http = reqwest::Client::new();
        let login = || {
            http.post(format!("{}/api/v1/auth/login", srv.url))
                .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
                .send()
        };
        let r = login().await.unwrap();
        assert_eq!(r.status(), 200);
        let tok = token_of(r).await;
        assert_eq!(
            http.get(format!("{}/readyz", srv.url))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );

        proxy.cut();
        let r = http
            .get(format!("{}/readyz", srv.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let started = Instant::now();
        let r = http
            .post(format!("{}/api/v1/tenants", srv.url))
            .bearer_auth(&tok)
            .json(&serde_json::json!({"name": "during-outage"}))
            .send()
            .await
            .unwrap();
        // The cached credential lets the request reach the database, which is down.
        assert_eq!(r.status(), 503, "{:?}", r.text().await);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the request hung"
        );
        let r = login().await.unwrap();
        assert_eq!(r.status(), 503);
        // The liveness probe is not about the database.
        assert_eq!(
            http.get(format!("{}/healthz", srv.url))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );

        proxy.restore();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = http
                .get(format!("{}/readyz", srv.url))
                .send()
                .await
                .unwrap()
                .status();
            if s == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "did not recover");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let r = login().await.unwrap();
        assert_eq!(r.status(), 200);
        // Nothing was written during the outage.
        let tok = token_of(r).await;
        let t = get_json(&http, &srv.url, &tok, "/api/v1/tenants").await;
        assert!(!t.to_string().contains("during-outage"));
    });
}
