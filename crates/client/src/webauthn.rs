//! Security keys (WebAuthn): one's own and, for administrators, a user's. Registration and the
//! log-in with a key happen in a browser (the console); the CLI lists, renames and removes.

use serde::{Deserialize, Serialize};

use crate::{Client, ClientError};

/// A registered security key (never its public key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityKey {
    pub id: String,
    pub name: String,
    pub alg: i64,
    pub sign_count: i64,
    pub aaguid: String,
    pub attestation: String,
    pub created_at: String,
    #[serde(default)]
    pub last_used_at: Option<String>,
}

impl Client {
    /// `GET /api/v1/me/webauthn`.
    pub async fn security_keys(&self) -> Result<Vec<SecurityKey>, ClientError> {
        self.get(self.url(&["me", "webauthn"], &[])).await
    }

    /// `PATCH /api/v1/me/webauthn/{id}`.
    pub async fn rename_security_key(&self, id: &str, name: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .patch(self.url(&["me", "webauthn", id], &[]))
                .json(&serde_json::json!({ "name": name })),
        )
        .await
        .map(|_| ())
    }

    /// `DELETE /api/v1/me/webauthn/{id}`.
    pub async fn remove_security_key(&self, id: &str) -> Result<(), ClientError> {
        self.send(self.http.delete(self.url(&["me", "webauthn", id], &[])))
            .await
            .map(|_| ())
    }

    /// `GET /api/v1/tenants/{tenant}/users/{username}/webauthn`.
    pub async fn user_security_keys(
        &self,
        tenant: &str,
        username: &str,
    ) -> Result<Vec<SecurityKey>, ClientError> {
        self.get(self.url(&["tenants", tenant, "users", username, "webauthn"], &[]))
            .await
    }

    /// `DELETE /api/v1/tenants/{tenant}/users/{username}/webauthn/{id}`.
    pub async fn remove_user_security_key(
        &self,
        tenant: &str,
        username: &str,
        id: &str,
    ) -> Result<(), ClientError> {
        self.send(
            self.http
                .delete(self.url(&["tenants", tenant, "users", username, "webauthn", id], &[])),
        )
        .await
        .map(|_| ())
    }
}
