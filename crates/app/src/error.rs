//! Errors as RFC 9457 `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parapet_iam::IamError;
use serde::Serialize;

/// An RFC 9457 problem detail.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI identifying the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

/// An error response of the API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub slug: &'static str,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            slug,
            detail: detail.into(),
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "authentication failed or missing: send a valid bearer token or session cookie",
        )
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:parapet:problem:{}", self.slug),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
        }
    }
}

impl From<IamError> for ApiError {
    fn from(e: IamError) -> Self {
        match e {
            IamError::Unauthenticated => ApiError::unauthenticated(),
            IamError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            IamError::NotFound(m) => ApiError::not_found(m),
            IamError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            IamError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            IamError::Throttled(secs) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                format!("too many log-in attempts in a short time; retry in {secs} s"),
            ),
            IamError::MfaRequired => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "mfa-required",
                "a second factor is required: send `otp` with a code from the authenticator (or \
                 a recovery code)",
            ),
            IamError::PasswordExpired => ApiError::new(
                StatusCode::FORBIDDEN,
                "password-expired",
                "the password has expired: change it (POST /api/v1/auth/password or \
                 `parapet user password`) and log in again",
            ),
            IamError::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                ApiError::unavailable("the database is unavailable; try again later")
            }
            IamError::DirectoryUnavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "directory-unavailable", m)
            }
            IamError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut res = (self.status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::TOO_MANY_REQUESTS
            && let Some(secs) = self
                .detail
                .rsplit_once("retry in ")
                .and_then(|(_, r)| r.trim_end_matches(" s").parse::<u32>().ok())
        {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"parapet\""),
            );
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
