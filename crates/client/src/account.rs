//! Account policies, log-in state, unlocking, password change and the dormancy sweep.

use serde::{Deserialize, Serialize};

use crate::{Client, ClientError};

/// A tenant's effective account policy; `policy` holds the rules by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountPolicyView {
    pub tenant: String,
    /// `tenant` or `provider-default`.
    pub source: String,
    pub policy: serde_json::Map<String, serde_json::Value>,
}

/// An account with its log-in state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    pub username: String,
    pub login: String,
    pub role: String,
    pub status: String,
    #[serde(default)]
    pub last_login_at: Option<String>,
    pub failures: u32,
    pub mfa_failures: u32,
    pub lockouts: u32,
    pub locked: bool,
    #[serde(default)]
    pub locked_until: Option<String>,
    pub locked_permanently: bool,
    pub password_changed_at: String,
    #[serde(default)]
    pub dormant_disabled_at: Option<String>,
}

/// What a dormancy sweep did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepResult {
    pub disabled: Vec<String>,
    pub deleted: Vec<String>,
}

impl Client {
    /// `GET /api/v1/tenants/{tenant}/account-policy`.
    pub async fn account_policy(&self, tenant: &str) -> Result<AccountPolicyView, ClientError> {
        self.get(self.url(&["tenants", tenant, "account-policy"], &[]))
            .await
    }

    /// `PUT /api/v1/tenants/{tenant}/account-policy` with the fields to change.
    pub async fn set_account_policy(
        &self,
        tenant: &str,
        changes: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<AccountPolicyView, ClientError> {
        self.json(
            self.http
                .put(self.url(&["tenants", tenant, "account-policy"], &[]))
                .json(changes),
        )
        .await
    }

    /// `GET /api/v1/tenants/{tenant}/accounts`.
    pub async fn accounts(&self, tenant: &str) -> Result<Vec<AccountInfo>, ClientError> {
        self.get(self.url(&["tenants", tenant, "accounts"], &[]))
            .await
    }

    /// `POST /api/v1/tenants/{tenant}/users/{username}/unlock`.
    pub async fn unlock_user(
        &self,
        tenant: &str,
        username: &str,
    ) -> Result<AccountInfo, ClientError> {
        self.post_empty(self.url(&["tenants", tenant, "users", username, "unlock"], &[]))
            .await
    }

    /// `POST /api/v1/auth/password`: changes a password with the current one (no session
    /// needed, so it also works for an expired password).
    pub async fn change_password(
        &self,
        username: &str,
        current_password: &str,
        new_password: &str,
    ) -> Result<(), ClientError> {
        self.send(
            self.http
                .post(self.url(&["auth", "password"], &[]))
                .json(&serde_json::json!({
                    "username": username,
                    "current_password": current_password,
                    "new_password": new_password,
                })),
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/v1/accounts/dormancy-sweep`.
    pub async fn dormancy_sweep(&self) -> Result<SweepResult, ClientError> {
        self.post_empty(self.url(&["accounts", "dormancy-sweep"], &[]))
            .await
    }
}

/// An account flagged by the account audit report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlaggedAccount {
    pub login: String,
    pub role: String,
    pub status: String,
    #[serde(default)]
    pub last_login_at: Option<String>,
    pub detail: String,
}

/// The account audit report of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountReport {
    pub tenant: String,
    pub days: u32,
    pub dormant: Vec<FlaggedAccount>,
    pub over_privileged: Vec<FlaggedAccount>,
    pub orphaned: Vec<FlaggedAccount>,
    pub locked: Vec<FlaggedAccount>,
}

impl Client {
    /// `GET /api/v1/tenants/{tenant}/reports/accounts`.
    pub async fn account_report(
        &self,
        tenant: &str,
        days: u32,
    ) -> Result<AccountReport, ClientError> {
        self.get(self.url(
            &["tenants", tenant, "reports", "accounts"],
            &[("days", Some(days.to_string()))],
        ))
        .await
    }
}
