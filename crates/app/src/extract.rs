//! Request extractors: JSON and query bodies whose rejections are problem+json, the request
//! metadata for audit records, and the authenticated principal.

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use parapet_iam::{Principal, RequestMeta};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// Name of the console session cookie.
pub const SESSION_COOKIE: &str = "parapet_session";

/// A JSON body; malformed JSON, unknown fields, a wrong content type or an oversized body become
/// 4xx problems.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    let status = rej.status();
    let slug = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid-body",
        _ => "malformed-body",
    };
    let detail = match &rej {
        JsonRejection::MissingJsonContentType(_) => {
            "expected a body with Content-Type: application/json".to_string()
        }
        JsonRejection::BytesRejection(_) if status == StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than the limit".to_string()
        }
        other => other.body_text(),
    };
    ApiError::new(status, slug, detail)
}

/// Query parameters; bad ones become a 400 problem.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rej) => Err(query_rejection(rej)),
        }
    }
}

fn query_rejection(rej: QueryRejection) -> ApiError {
    ApiError::bad_request(rej.body_text())
}

/// What the request tells about its origin, for audit records.
#[derive(Debug, Clone)]
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Meta(request_meta(parts)))
    }
}

pub fn request_meta(parts: &Parts) -> RequestMeta {
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect());
    RequestMeta {
        source_ip,
        user_agent,
    }
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The bearer secret of a request: the `Authorization: Bearer` header, else the session cookie.
/// The flag tells whether it came from the cookie.
pub fn bearer(headers: &HeaderMap) -> Option<(&str, bool)> {
    if let Some(h) = headers.get(header::AUTHORIZATION) {
        let v = h.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| (token.trim(), false));
    }
    cookie(headers, SESSION_COOKIE).map(|c| (c, true))
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (secret, from_cookie) = bearer(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        // A cookie-authenticated request that changes state must come from our own pages.
        if from_cookie && !parts.method.is_safe() && !same_origin(&parts.headers) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross-origin",
                "cross-origin request refused; use a bearer token",
            ));
        }
        let p = state.iam.authenticate(secret).await?;
        if p.elevation.is_some() {
            // Every use of a just-in-time role is recorded (X.1642 7.2.2.4(3)).
            let path = parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map_or_else(|| parts.uri.path().to_string(), |u| u.0.path().to_string());
            let what = format!("{} {path}", parts.method);
            state
                .iam
                .record_elevated_use(&p, &what, &request_meta(parts))
                .await?;
        }
        Ok(Auth(p))
    }
}

/// Whether a state-changing request comes from our own pages. A browser that sends
/// `Sec-Fetch-Site` is believed (only `same-origin` passes); otherwise the Origin (or Referer), if
/// present, must name this host. `Origin: null` never passes. Requests with none of these headers
/// (scripts, the CLI) pass: they carry no ambient browser credentials to abuse.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|h| h.to_str().ok()) {
        return site == "same-origin";
    }
    let host = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(h) => h,
        None => return false,
    };
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|h| h.to_str().ok());
    match origin {
        None => true,
        Some(o) => {
            let rest = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
                .unwrap_or("");
            rest.split('/').next() == Some(host)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn same_origin_rules() {
        let host = ("host", "127.0.0.1:8080");
        assert!(same_origin(&headers(&[host])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(same_origin(&headers(&[
            host,
            ("referer", "https://127.0.0.1:8080/console")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8080.evil.example")
        ])));
        // What Chromium sends for a form post from our own page, even under a strict referrer
        // policy, and for one from elsewhere.
        assert!(same_origin(&headers(&[
            host,
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-site")
        ])));
        assert!(!same_origin(&headers(&[("origin", "http://x")])));
    }
}
