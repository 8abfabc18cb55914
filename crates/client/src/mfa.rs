//! Second factors: status, TOTP enrolment, removal, reset, and log-in with a code.

use serde::{Deserialize, Serialize};

use crate::{Client, ClientError, LoginResponse};

/// One's second factors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaStatus {
    pub totp: String,
    pub recovery_codes_left: u32,
    pub required: bool,
}

/// A started TOTP enrolment (the secret is shown once).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnrolment {
    pub secret: String,
    pub uri: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolment").finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Codes {
    recovery_codes: Vec<String>,
}

impl Client {
    /// `POST /api/v1/auth/login` with a second factor (a TOTP code or a recovery code).
    pub async fn login_with_otp(
        &self,
        username: &str,
        password: &str,
        otp: &str,
    ) -> Result<LoginResponse, ClientError> {
        self.post(
            self.url(&["auth", "login"], &[]),
            &serde_json::json!({"username": username, "password": password, "otp": otp}),
        )
        .await
    }

    /// `GET /api/v1/me/mfa`.
    pub async fn mfa_status(&self) -> Result<MfaStatus, ClientError> {
        self.get(self.url(&["me", "mfa"], &[])).await
    }

    /// `POST /api/v1/me/mfa/totp`.
    pub async fn totp_begin(&self) -> Result<TotpEnrolment, ClientError> {
        self.post_empty(self.url(&["me", "mfa", "totp"], &[])).await
    }

    /// `POST /api/v1/me/mfa/totp/confirm`: the recovery codes.
    pub async fn totp_confirm(&self, code: &str) -> Result<Vec<String>, ClientError> {
        let c: Codes = self
            .post(
                self.url(&["me", "mfa", "totp", "confirm"], &[]),
                &serde_json::json!({ "code": code }),
            )
            .await?;
        Ok(c.recovery_codes)
    }

    /// `POST /api/v1/me/mfa/totp/remove`.
    pub async fn totp_remove(&self, password: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .post(self.url(&["me", "mfa", "totp", "remove"], &[]))
                .json(&serde_json::json!({ "password": password })),
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/v1/tenants/{tenant}/users/{username}/mfa/reset`.
    pub async fn reset_mfa(&self, tenant: &str, username: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .post(self.url(&["tenants", tenant, "users", username, "mfa", "reset"], &[])),
        )
        .await
        .map(|_| ())
    }
}
