//! A small client of the HTTP API for black-box tests: JSON or raw bodies, status and headers
//! back, and log-in.
use serde_json::{Value, json};

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub async fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let res = rb.send().await.unwrap();
        let status = res.status().as_u16();
        let h = res.headers().clone();
        let text = res.text().await.unwrap();
        (
            status,
            h,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let (s, _, b) = self.req(reqwest::Method::GET, path, token, &[], None).await;
        (s, b)
    }
    pub async fn post(&self, path: &str, token: &str, v: Value) -> (u16, Value) {
        let (s, _, b) = self
            .req(
                reqwest::Method::POST,
                path,
                token,
                &[("content-type", "application/json")],
                Some(serde_json::to_vec(&v).unwrap()),
            )
            .await;
        (s, b)
    }
    pub async fn ingest(
        &self,
        tenant: &str,
        token: &str,
        key: Option<&str>,
        body: &str,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut h = vec![("content-type", "application/x-ndjson")];
        if let Some(k) = key {
            h.push(("idempotency-key", k));
        }
        self.req(
            reqwest::Method::POST,
            &format!("/api/v1/tenants/{tenant}/events"),
            token,
            &h,
            Some(body.as_bytes().to_vec()),
        )
        .await
    }
    /// Creates tenant `tenant` and its administrator `user` (as `admin`, the provider's).
    pub async fn create_tenant_admin(&self, admin: &str, tenant: &str, user: &str, pw: &str) {
        let (s, b) = self
            .post("/api/v1/tenants", admin, json!({"name": tenant}))
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = self
            .post(
                &format!("/api/v1/tenants/{tenant}/users"),
                admin,
                json!({"username": user, "password": pw, "role": "tenant-admin"}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    pub async fn login(&self, user: &str, pw: &str) -> String {
        let res = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"username": user, "password": pw}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "login {user}");
        let b: Value = res.json().await.unwrap();
        b["token"].as_str().unwrap().to_string()
    }
}
