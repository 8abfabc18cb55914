//! Just-in-time privileged access: requests (decided as approvals) and grants.

use serde::{Deserialize, Serialize};

use crate::{Approval, Client, ClientError};

/// A role lent for a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessGrant {
    pub id: String,
    pub username: String,
    pub role: String,
    pub reason: String,
    pub approval_id: String,
    pub granted_by: String,
    pub starts_at: String,
    pub expires_at: String,
    #[serde(default)]
    pub revoked_at: Option<String>,
    #[serde(default)]
    pub revoked_by: Option<String>,
    pub state: String,
}

impl Client {
    /// `POST /api/v1/access/requests`.
    pub async fn request_access(
        &self,
        role: &str,
        reason: &str,
        duration_secs: i64,
    ) -> Result<Approval, ClientError> {
        self.post(
            self.url(&["access", "requests"], &[]),
            &serde_json::json!({"role": role, "reason": reason, "duration_secs": duration_secs}),
        )
        .await
    }

    /// `GET /api/v1/tenants/{tenant}/access-grants`.
    pub async fn access_grants(&self, tenant: &str) -> Result<Vec<AccessGrant>, ClientError> {
        self.get(self.url(&["tenants", tenant, "access-grants"], &[]))
            .await
    }

    /// `POST /api/v1/tenants/{tenant}/access-grants/{id}/revoke`.
    pub async fn revoke_access(&self, tenant: &str, id: &str) -> Result<AccessGrant, ClientError> {
        self.post_empty(self.url(&["tenants", tenant, "access-grants", id, "revoke"], &[]))
            .await
    }
}
