//! Groups of a tenant (X.1642 8.1.2(2)).

use serde::{Deserialize, Serialize};

use crate::{Client, ClientError};

/// A group with its roles and members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub roles: Vec<String>,
    pub members: Vec<String>,
    pub created_at: String,
}

/// What adding a member did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MemberAdded {
    Applied(GroupInfo),
    Requested(crate::Approval),
}

impl Client {
    /// `GET /api/v1/tenants/{tenant}/groups`.
    pub async fn groups(&self, tenant: &str) -> Result<Vec<GroupInfo>, ClientError> {
        self.get(self.url(&["tenants", tenant, "groups"], &[]))
            .await
    }

    /// `POST /api/v1/tenants/{tenant}/groups`.
    pub async fn create_group(
        &self,
        tenant: &str,
        name: &str,
        roles: &[String],
    ) -> Result<GroupInfo, ClientError> {
        self.post(
            self.url(&["tenants", tenant, "groups"], &[]),
            &serde_json::json!({"name": name, "roles": roles}),
        )
        .await
    }

    /// `DELETE /api/v1/tenants/{tenant}/groups/{name}`.
    pub async fn delete_group(&self, tenant: &str, name: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .delete(self.url(&["tenants", tenant, "groups", name], &[])),
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/v1/tenants/{tenant}/groups/{name}/members`: the group, or (in tenants that
    /// require approval) the approval request filed instead.
    pub async fn add_group_member(
        &self,
        tenant: &str,
        name: &str,
        username: &str,
        reason: Option<&str>,
    ) -> Result<MemberAdded, ClientError> {
        self.post(
            self.url(&["tenants", tenant, "groups", name, "members"], &[]),
            &serde_json::json!({"username": username, "reason": reason}),
        )
        .await
    }

    /// `DELETE /api/v1/tenants/{tenant}/groups/{name}/members/{username}`.
    pub async fn remove_group_member(
        &self,
        tenant: &str,
        name: &str,
        username: &str,
    ) -> Result<GroupInfo, ClientError> {
        self.json(self.http.delete(self.url(
            &["tenants", tenant, "groups", name, "members", username],
            &[],
        )))
        .await
    }

    /// `POST /api/v1/me/sub-accounts`: a sub-account of the caller.
    pub async fn create_sub_account(
        &self,
        user: &crate::NewUser,
    ) -> Result<crate::UserView, ClientError> {
        self.post(self.url(&["me", "sub-accounts"], &[]), user)
            .await
    }

    /// `GET /api/v1/me/sub-accounts`.
    pub async fn sub_accounts(&self) -> Result<Vec<crate::UserView>, ClientError> {
        self.get(self.url(&["me", "sub-accounts"], &[])).await
    }
}
