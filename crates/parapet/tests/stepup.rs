//! Step-up authentication for provider staff by default (X.1642 7.2.2.4(4), issue 4 §3), on both
//! backends: without configuration, a provider-role holder without a second factor gets a
//! session that may only enrol one (API answer says so, console sends them to the enrolment
//! page, CLI tells them how); after enrolling with a code from `oathtool` and logging in with a
//! code, everything works. Tenant users are not concerned; `--demo` and an explicit `false` turn
//! it off.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::process::Command;

use common::{ADMIN_PASSWORD, Backend, UNSET, bin, start_with};
use serde_json::{Value, json};

on_both!(provider_staff_must_enrol_a_second_factor_by_default);

fn oathtool(secret: &str) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "oathtool is missing ({e}): install the Debian package oathtool (scripts/test does)"
            )
        });
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = http.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let res = rb.send().await.unwrap();
    let s = res.status().as_u16();
    (s, res.json().await.unwrap_or(Value::Null))
}

fn provider_staff_must_enrol_a_second_factor_by_default(backend: Backend) {
    use reqwest::Method as M;
    let srv = start_with(backend, &[], &[("PARAPET_PROVIDER_MFA_REQUIRED", UNSET)]);
    let base = srv.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = |otp: Option<String>| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let mut b = json!({"username": "admin", "password": ADMIN_PASSWORD});
                if let Some(o) = otp {
                    b["otp"] = json!(o);
                }
                call(&http, &base, M::POST, "/api/v1/auth/login", None, Some(b)).await
            }
        };
        let (s, v) = login(None).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["mfa_enrolment_required"], true);
        let tok = v["token"].as_str().unwrap().to_string();
        let (s, v) = call(&http, &base, M::GET, "/api/v1/tenants", Some(&tok), None).await;
        assert_eq!(s, 403, "{v}");
        assert!(v["detail"].as_str().unwrap().contains("enrol"), "{v}");
        let (s, st) = call(&http, &base, M::GET, "/api/v1/me/mfa", Some(&tok), None).await;
        assert_eq!(s, 200);
        assert_eq!(st["required"], true);

        // The CLI says what to do.
        let cfg = parapet_store_sql::testkit::temp_dir("cfg");
        let mut child = Command::new(bin())
            .args(["login", "--server", &base, "--username", "admin", "--password-stdin"])
            .env("PARAPET_CONFIG_DIR", &cfg)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "{ADMIN_PASSWORD}").unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("parapet mfa enrol"));

        // The console sends the user straight to the enrolment page.
        let page = http.get(format!("{base}/console/login")).send().await.unwrap();
        let csrf_cookie = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .find_map(|h| {
                let s = h.to_str().ok()?;
                s.strip_prefix("parapet_csrf=").map(|r| r.split(';').next().unwrap().to_string())
            })
            .unwrap();
        let res = http
            .post(format!("{base}/console/login"))
            .header("cookie", format!("parapet_csrf={csrf_cookie}"))
            .header("origin", &base)
            .form(&[("username", "admin"), ("password", ADMIN_PASSWORD), ("csrf", &csrf_cookie)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        assert_eq!(res.headers()["location"], "/console/mfa");

        // Enrol, log in with a code: full access.
        let (s, e) = call(&http, &base, M::POST, "/api/v1/me/mfa/totp", Some(&tok), None).await;
        assert_eq!(s, 200, "{e}");
        let secret = e["secret"].as_str().unwrap().to_string();
        let (s, v) = call(&http, &base, M::POST, "/api/v1/me/mfa/totp/confirm", Some(&tok),
            Some(json!({"code": oathtool(&secret)}))).await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = login(None).await;
        assert_eq!((s, v["type"].as_str()), (401, Some("urn:parapet:problem:mfa-required")), "{v}");
        // The next 30-second step's code (the confirmation used this one).
        let next = {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let out = Command::new("oathtool")
                .args(["--totp", "-b", &secret, "--now", &format!("@{}", now + 30)])
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let (s, v) = login(Some(next)).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["mfa_enrolment_required"], false);
        let admin = v["token"].as_str().unwrap().to_string();
        let (s, _) = call(&http, &base, M::POST, "/api/v1/tenants", Some(&admin),
            Some(json!({"name": "acme"}))).await;
        assert_eq!(s, 201);

        // Tenant users are not concerned by the provider rule.
        let (s, _) = call(&http, &base, M::POST, "/api/v1/tenants/acme/users", Some(&admin),
            Some(json!({"username": "alice", "password": "Wonderland-pass-0123", "role": "tenant-admin"}))).await;
        assert_eq!(s, 201);
        let (s, v) = call(&http, &base, M::POST, "/api/v1/auth/login", None,
            Some(json!({"username": "alice@acme", "password": "Wonderland-pass-0123"}))).await;
        assert_eq!(s, 200);
        assert_eq!(v["mfa_enrolment_required"], false);
    });
    drop(srv);

    // The demo and an explicit `false` do without.
    for (extra, env) in [
        (
            &["--demo"][..],
            &[("PARAPET_PROVIDER_MFA_REQUIRED", UNSET)][..],
        ),
        (&[][..], &[("PARAPET_PROVIDER_MFA_REQUIRED", "false")][..]),
    ] {
        let srv = start_with(backend, extra, env);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let v: Value = rt.block_on(async {
            let http = reqwest::Client::new();
            call(
                &http,
                &srv.url,
                M::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "admin", "password": ADMIN_PASSWORD})),
            )
            .await
            .1
        });
        assert_eq!(v["mfa_enrolment_required"], false, "{extra:?} {v}");
    }
}
