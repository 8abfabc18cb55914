//! OpenID Connect clients of a tenant's issuer (registration, secrets, signing keys).

use serde::{Deserialize, Serialize};

use crate::{Client, ClientError};

/// A registered relying party. `client_secret` is present only right after registration or a
/// secret rotation (shown once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcClient {
    pub client_id: String,
    pub tenant: String,
    pub name: String,
    pub client_type: String,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub created_at: String,
    #[serde(default)]
    pub secret_rotated_at: Option<String>,
    /// `ES256` or `RS256`.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
    pub issuer_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// A signing key of a tenant's issuer (public metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcKeyInfo {
    pub kid: String,
    pub alg: String,
    pub created_at: String,
    #[serde(default)]
    pub retired_at: Option<String>,
}

impl Client {
    /// `GET /api/v1/tenants/{tenant}/oidc/clients`.
    pub async fn oidc_clients(&self, tenant: &str) -> Result<Vec<OidcClient>, ClientError> {
        self.get(self.url(&["tenants", tenant, "oidc", "clients"], &[]))
            .await
    }

    /// `POST /api/v1/tenants/{tenant}/oidc/clients`.
    pub async fn oidc_client_add(
        &self,
        tenant: &str,
        name: &str,
        public: bool,
        redirect_uris: &[String],
        grant_types: &[String],
        id_token_alg: Option<&str>,
    ) -> Result<OidcClient, ClientError> {
        self.post(
            self.url(&["tenants", tenant, "oidc", "clients"], &[]),
            &serde_json::json!({"name": name, "public": public,
                                "redirect_uris": redirect_uris, "grant_types": grant_types,
                                "id_token_signed_response_alg": id_token_alg}),
        )
        .await
    }

    /// `POST /api/v1/tenants/{tenant}/oidc/clients/{id}/rotate-secret`.
    pub async fn oidc_client_rotate_secret(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<OidcClient, ClientError> {
        self.post_empty(self.url(
            &["tenants", tenant, "oidc", "clients", id, "rotate-secret"],
            &[],
        ))
        .await
    }

    /// `DELETE /api/v1/tenants/{tenant}/oidc/clients/{id}`.
    pub async fn oidc_client_remove(&self, tenant: &str, id: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .delete(self.url(&["tenants", tenant, "oidc", "clients", id], &[])),
        )
        .await
        .map(|_| ())
    }

    /// `GET /api/v1/tenants/{tenant}/oidc/keys`.
    pub async fn oidc_keys(&self, tenant: &str) -> Result<Vec<OidcKeyInfo>, ClientError> {
        self.get(self.url(&["tenants", tenant, "oidc", "keys"], &[]))
            .await
    }

    /// `POST /api/v1/tenants/{tenant}/oidc/keys/rotate`.
    pub async fn oidc_rotate_key(&self, tenant: &str) -> Result<OidcKeyInfo, ClientError> {
        self.post_empty(self.url(&["tenants", tenant, "oidc", "keys", "rotate"], &[]))
            .await
    }
}
