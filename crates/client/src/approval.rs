//! Approval requests and role changes.

use serde::{Deserialize, Serialize};

use crate::{Client, ClientError, UserView};

/// An approval request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub kind: String,
    pub username: String,
    pub role: String,
    /// For `group-member` requests: the group.
    #[serde(default)]
    pub group: Option<String>,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: String,
    pub status: String,
    #[serde(default)]
    pub decided_by: Option<String>,
    #[serde(default)]
    pub decided_at: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

impl Client {
    /// `GET /api/v1/tenants/{tenant}/approvals`.
    pub async fn approvals(&self, tenant: &str) -> Result<Vec<Approval>, ClientError> {
        self.get(self.url(&["tenants", tenant, "approvals"], &[]))
            .await
    }

    /// `POST /api/v1/tenants/{tenant}/approvals`.
    pub async fn request_approval(
        &self,
        tenant: &str,
        kind: &str,
        username: &str,
        role: &str,
        password: Option<&str>,
        reason: &str,
    ) -> Result<Approval, ClientError> {
        self.post(
            self.url(&["tenants", tenant, "approvals"], &[]),
            &serde_json::json!({"kind": kind, "username": username, "role": role,
                                "password": password, "reason": reason}),
        )
        .await
    }

    /// `POST /api/v1/tenants/{tenant}/approvals/{id}/approve` or `…/reject`.
    pub async fn decide_approval(
        &self,
        tenant: &str,
        id: &str,
        approve: bool,
        comment: Option<&str>,
    ) -> Result<Approval, ClientError> {
        let verb = if approve { "approve" } else { "reject" };
        self.post(
            self.url(&["tenants", tenant, "approvals", id, verb], &[]),
            &serde_json::json!({ "comment": comment }),
        )
        .await
    }

    /// `POST /api/v1/tenants/{tenant}/users/{username}/role`.
    pub async fn change_role(
        &self,
        tenant: &str,
        username: &str,
        role: &str,
    ) -> Result<UserView, ClientError> {
        self.post(
            self.url(&["tenants", tenant, "users", username, "role"], &[]),
            &serde_json::json!({ "role": role }),
        )
        .await
    }
}
