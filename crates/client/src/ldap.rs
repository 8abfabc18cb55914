//! A tenant's LDAP directory (X.1642 8.1.2(1)): settings, test, removal.

use serde::{Deserialize, Serialize};

use crate::{Client, ClientError};

/// A group-to-role rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdapMapping {
    pub group: String,
    pub role: String,
}

/// A directory as the server keeps it (never the bind password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdapDirectory {
    pub tenant: String,
    pub url: String,
    pub starttls: bool,
    pub bind_dn: String,
    pub user_base: String,
    pub user_filter: String,
    pub group_base: Option<String>,
    pub group_filter: Option<String>,
    pub member_of_attribute: Option<String>,
    pub role_mappings: Vec<LdapMapping>,
    pub default_role: Option<String>,
    pub provision: bool,
    pub timeout_secs: u32,
    pub updated_at: String,
    pub bind_password_sealed_by: String,
}

/// Settings to store; `bind_password` `None` keeps the stored one.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LdapSettings {
    pub url: String,
    pub starttls: bool,
    pub bind_dn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_password: Option<String>,
    pub user_base: String,
    pub user_filter: String,
    pub group_base: Option<String>,
    pub group_filter: Option<String>,
    pub member_of_attribute: Option<String>,
    pub role_mappings: Vec<LdapMapping>,
    pub default_role: Option<String>,
    pub provision: bool,
    pub timeout_secs: Option<u32>,
}

/// What a test found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdapTest {
    pub connected: bool,
    pub answer: Option<String>,
    pub dn: Option<String>,
    pub groups: Vec<String>,
    pub role: Option<String>,
}

impl Client {
    /// `GET /api/v1/tenants/{tenant}/ldap`.
    pub async fn ldap_get(&self, tenant: &str) -> Result<LdapDirectory, ClientError> {
        self.get(self.url(&["tenants", tenant, "ldap"], &[])).await
    }

    /// `PUT /api/v1/tenants/{tenant}/ldap`.
    pub async fn ldap_set(
        &self,
        tenant: &str,
        settings: &LdapSettings,
    ) -> Result<LdapDirectory, ClientError> {
        self.json(
            self.http
                .put(self.url(&["tenants", tenant, "ldap"], &[]))
                .json(settings),
        )
        .await
    }

    /// `DELETE /api/v1/tenants/{tenant}/ldap`.
    pub async fn ldap_delete(&self, tenant: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .delete(self.url(&["tenants", tenant, "ldap"], &[])),
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/v1/tenants/{tenant}/ldap/test`.
    pub async fn ldap_test(
        &self,
        tenant: &str,
        user: Option<(&str, &str)>,
    ) -> Result<LdapTest, ClientError> {
        let body = match user {
            Some((u, p)) => serde_json::json!({"username": u, "password": p}),
            None => serde_json::json!({}),
        };
        self.post(self.url(&["tenants", tenant, "ldap", "test"], &[]), &body)
            .await
    }
}
