//! Second factors through the API, the CLI and the console on both backends (issue 4, X.1642
//! 8.1.2(1), 7.2.2.4(4)): enrolment confirmed with a code from `oathtool`, log-in with a TOTP
//! code and with recovery codes, replayed codes refused, administrators' reset, tenant isolation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::process::Command;

use common::{ADMIN_PASSWORD, Backend, bin, start};
use serde_json::{Value, json};

on_both!(second_factor_end_to_end);

const PW: &str = "Second-factor-password-1";

/// oathtool's TOTP code for `secret` at the system time plus `offset_secs`.
fn oathtool(secret: &str, offset_secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let out = Command::new("oathtool")
        .args([
            "--totp",
            "-b",
            secret,
            "--now",
            &format!("@{}", now + offset_secs),
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "oathtool is missing ({e}): install the Debian package oathtool (scripts/test does)"
            )
        });
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn login(&self, user: &str, otp: Option<&str>) -> (u16, Value) {
        let mut body = json!({"username": user, "password": PW});
        if let Some(o) = otp {
            body["otp"] = json!(o);
        }
        self.call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(body),
        )
        .await
    }
}

fn cli(url: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env("PARAPET_SERVER", url)
        .env("PARAPET_TOKEN", token)
        .env(
            "PARAPET_CONFIG_DIR",
            parapet_store_sql::testkit::temp_dir("cfg"),
        )
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn second_factor_end_to_end(backend: Backend) {
    let srv = start(backend);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use reqwest::Method;
        let (s, b) = api
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "admin", "password": ADMIN_PASSWORD})),
            )
            .await;
        assert_eq!(s, 200);
        let admin = b["token"].as_str().unwrap().to_string();
        for t in ["acme", "globex"] {
            let (s, _) = api
                .call(
                    Method::POST,
                    "/api/v1/tenants",
                    Some(&admin),
                    Some(json!({"name": t})),
                )
                .await;
            assert_eq!(s, 201);
        }
        for (t, u, role) in [
            ("acme", "alice", "tenant-admin"),
            ("acme", "bob", "tenant-member"),
            ("globex", "gina", "tenant-admin"),
        ] {
            let (s, b) = api
                .call(
                    Method::POST,
                    &format!("/api/v1/tenants/{t}/users"),
                    Some(&admin),
                    Some(json!({"username": u, "password": PW, "role": role})),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        let token = |v: &Value| v["token"].as_str().unwrap().to_string();
        let (_, b) = api.login("alice@acme", None).await;
        let alice = token(&b);
        let (_, b) = api.login("gina@globex", None).await;
        let gina = token(&b);
        let (_, b) = api.login("bob@acme", None).await;
        let bob = token(&b);

        // Enrol: the secret is shown once; a wrong first code is refused.
        let (s, e) = api
            .call(Method::POST, "/api/v1/me/mfa/totp", Some(&bob), None)
            .await;
        assert_eq!(s, 200, "{e}");
        let secret = e["secret"].as_str().unwrap().to_string();
        assert!(e["uri"].as_str().unwrap().starts_with("otpauth://totp/"));
        let (s, _) = api
            .call(
                Method::POST,
                "/api/v1/me/mfa/totp/confirm",
                Some(&bob),
                Some(json!({"code": "12345"})),
            )
            .await;
        assert_eq!(s, 422);
        let (s, r) = api
            .call(
                Method::POST,
                "/api/v1/me/mfa/totp/confirm",
                Some(&bob),
                Some(json!({"code": oathtool(&secret, 0)})),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        let recovery: Vec<String> = r["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(recovery.len(), 10);

        // Log-in now needs the second factor.
        let (s, b) = api.login("bob@acme", None).await;
        assert_eq!(s, 401);
        assert_eq!(b["type"], "urn:parapet:problem:mfa-required");
        // The next step's code (one step of drift is allowed), once only.
        let next = oathtool(&secret, 30);
        let (s, b) = api.login("bob@acme", Some(&next)).await;
        assert_eq!(s, 200, "{b}");
        let (s, b) = api.login("bob@acme", Some(&next)).await;
        assert_eq!(s, 401);
        assert_eq!(b["type"], "urn:parapet:problem:login-failed");
        // Recovery codes, once each, also through `parapet login --otp`.
        let (s, _) = api.login("bob@acme", Some(&recovery[0])).await;
        assert_eq!(s, 200);
        let (s, _) = api.login("bob@acme", Some(&recovery[0])).await;
        assert_eq!(s, 401);
        let cfg = parapet_store_sql::testkit::temp_dir("cfg");
        let url = srv.url.clone();
        let code = recovery[1].clone();
        let out = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = Command::new(bin())
                .args([
                    "login",
                    "--server",
                    &url,
                    "--username",
                    "bob@acme",
                    "--password-stdin",
                    "--otp",
                    &code,
                    "--json",
                ])
                .env("PARAPET_CONFIG_DIR", &cfg)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{PW}\n").as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let (url, b2) = (srv.url.clone(), bob.clone());
        let (ok, out, err) =
            tokio::task::spawn_blocking(move || cli(&url, &b2, &["mfa", "status", "--json"]))
                .await
                .unwrap();
        assert!(ok, "{err}");
        let st: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(st["totp"], "enabled");
        assert_eq!(st["recovery_codes_left"], 8);

        // The console page shows the state to its owner.
        let page = api
            .http
            .get(format!("{}/console/mfa", srv.url))
            .header("cookie", format!("parapet_session={bob}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("id=\"totp-state\">enabled"), "{html}");
        assert!(!html.contains(&secret));

        // Reset by administrators: not across tenants, not by members.
        for (token, path, status) in [
            (&gina, "/api/v1/tenants/acme/users/bob/mfa/reset", 404),
            (&bob, "/api/v1/tenants/acme/users/alice/mfa/reset", 403),
            (&alice, "/api/v1/tenants/acme/users/alice/mfa/reset", 404),
            (&alice, "/api/v1/tenants/acme/users/bob/mfa/reset", 204),
        ] {
            let (s, b) = api.call(Method::POST, path, Some(token), None).await;
            assert_eq!(s, status, "{path}: {b}");
        }
        let (s, _) = api.login("bob@acme", None).await;
        assert_eq!(s, 200);
        let (s, b) = api
            .call(Method::GET, "/api/v1/me/mfa", Some(&bob), None)
            .await;
        assert_eq!((s, b["totp"].as_str()), (200, Some("none")));

        // Bad input is a problem, not a crash.
        let (s, _) = api
            .call(
                Method::POST,
                "/api/v1/me/mfa/totp/confirm",
                Some(&bob),
                Some(json!({"code": 5, "extra": true})),
            )
            .await;
        assert_eq!(s, 422);
        let (s, _) = api
            .call(
                Method::POST,
                "/api/v1/me/mfa/totp/confirm",
                Some(&bob),
                Some(json!({"code": "123456"})),
            )
            .await;
        assert_eq!(s, 404, "no enrolment in progress");
    });
}
