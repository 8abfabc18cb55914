//! Key management endpoints (`/api/v1/kms/...`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Client, ClientError};

/// The seal state of the key service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsStatus {
    pub initialized: bool,
    pub sealed: bool,
    #[serde(default)]
    pub mode: Option<String>,
    pub shares: u8,
    pub threshold: u8,
    pub progress: u8,
}

/// A key's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KmsKey {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: String,
    pub state: String,
    pub latest_version: i64,
    pub min_decryption_version: i64,
    #[serde(default)]
    pub rotation_period_secs: Option<i64>,
    #[serde(default)]
    pub next_rotation_at: Option<String>,
    pub exportable: bool,
    pub policy: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub deletion_due_at: Option<String>,
    #[serde(default)]
    pub deletion_requested_by: Option<String>,
    #[serde(default)]
    pub destroyed_at: Option<String>,
    /// `parapet` or `external` (imported).
    #[serde(default)]
    pub origin: Option<String>,
    /// With `key show`: the versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<KmsKeyVersion>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsKeyVersion {
    pub version: i64,
    pub created_at: String,
    pub destroyed: bool,
    #[serde(default)]
    pub public_key: Option<String>,
}

/// A key to create.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewKmsKey {
    pub name: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    pub exportable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_period_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<serde_json::Value>,
}

/// A generated data key. `Debug` hides the plaintext.
#[derive(Clone, Serialize, Deserialize)]
pub struct DataKey {
    pub ciphertext: String,
    #[serde(default)]
    pub plaintext: Option<String>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("ciphertext", &self.ciphertext)
            .field("plaintext", &self.plaintext.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The root key's shares, shown once. `Debug` hides them.
#[derive(Clone, Serialize, Deserialize)]
pub struct KmsInit {
    pub shares: Vec<String>,
    pub threshold: u8,
}

impl std::fmt::Debug for KmsInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsInit")
            .field("shares", &"<redacted>")
            .field("threshold", &self.threshold)
            .finish()
    }
}

#[derive(Deserialize)]
struct Ciphertext {
    ciphertext: String,
}

#[derive(Deserialize)]
struct Plaintext {
    plaintext: String,
}

#[derive(Deserialize)]
struct Valid {
    valid: bool,
}

impl Client {
    /// `GET /api/v1/kms/status` (no authentication needed).
    pub async fn kms_status(&self) -> Result<KmsStatus, ClientError> {
        self.get(self.url(&["kms", "status"], &[])).await
    }

    /// `POST /api/v1/kms/init`.
    pub async fn kms_init(&self, shares: u8, threshold: u8) -> Result<KmsInit, ClientError> {
        self.post(
            self.url(&["kms", "init"], &[]),
            &serde_json::json!({"shares": shares, "threshold": threshold}),
        )
        .await
    }

    /// `POST /api/v1/kms/unseal` with one share.
    pub async fn kms_unseal(&self, share: &str) -> Result<KmsStatus, ClientError> {
        self.post(
            self.url(&["kms", "unseal"], &[]),
            &serde_json::json!({ "share": share }),
        )
        .await
    }

    /// `POST /api/v1/kms/seal`.
    pub async fn kms_seal(&self) -> Result<KmsStatus, ClientError> {
        self.post_empty(self.url(&["kms", "seal"], &[])).await
    }

    /// `GET /api/v1/kms/receipt-key`: the receipt-signing public key (base64).
    pub async fn kms_receipt_key(&self) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct K {
            public_key: String,
        }
        let k: K = self.get(self.url(&["kms", "receipt-key"], &[])).await?;
        Ok(k.public_key)
    }

    pub async fn kms_create_key(&self, key: &NewKmsKey) -> Result<KmsKey, ClientError> {
        self.post(self.url(&["kms", "keys"], &[]), key).await
    }

    pub async fn kms_list_keys(&self) -> Result<Vec<KmsKey>, ClientError> {
        self.get(self.url(&["kms", "keys"], &[])).await
    }

    pub async fn kms_get_key(&self, key: &str) -> Result<KmsKey, ClientError> {
        self.get(self.url(&["kms", "keys", key], &[])).await
    }

    /// `PATCH /api/v1/kms/keys/{key}` with any of `min_decryption_version`,
    /// `rotation_period_secs`, `policy`.
    pub async fn kms_update_key(
        &self,
        key: &str,
        body: &serde_json::Value,
    ) -> Result<KmsKey, ClientError> {
        self.json(
            self.http
                .patch(self.url(&["kms", "keys", key], &[]))
                .json(body),
        )
        .await
    }

    /// `POST /api/v1/kms/keys/{key}/{action}` for `rotate`, `disable`, `enable`,
    /// `cancel-deletion`.
    pub async fn kms_key_action(&self, key: &str, action: &str) -> Result<KmsKey, ClientError> {
        self.post_empty(self.url(&["kms", "keys", key, action], &[]))
            .await
    }

    pub async fn kms_schedule_deletion(
        &self,
        key: &str,
        days: Option<i64>,
    ) -> Result<KmsKey, ClientError> {
        self.post(
            self.url(&["kms", "keys", key, "schedule-deletion"], &[]),
            &serde_json::json!({ "days": days }),
        )
        .await
    }

    /// `GET /api/v1/kms/keys/{key}/receipt`: the signed deletion receipt.
    pub async fn kms_receipt(&self, key: &str) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct R {
            receipt: String,
        }
        let r: R = self
            .get(self.url(&["kms", "keys", key, "receipt"], &[]))
            .await?;
        Ok(r.receipt)
    }

    /// `POST /api/v1/kms/keys/{key}/export`: the material of an exportable key, as JSON.
    pub async fn kms_export(&self, key: &str) -> Result<serde_json::Value, ClientError> {
        self.post_empty(self.url(&["kms", "keys", key, "export"], &[]))
            .await
    }

    /// `POST /api/v1/kms/backup`: a key-ring backup sealed for `recipient` (JSON as the API
    /// takes it); returns `{backup, shares?}`.
    pub async fn kms_backup(
        &self,
        scope: &str,
        recipient: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(
            self.url(&["kms", "backup"], &[]),
            &serde_json::json!({"scope": scope, "recipient": recipient}),
        )
        .await
    }

    /// `POST /api/v1/kms/restore`: restores `backup` opened by `recovery`.
    pub async fn kms_restore(
        &self,
        backup: &serde_json::Value,
        recovery: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(
            self.url(&["kms", "restore"], &[]),
            &serde_json::json!({"backup": backup, "recovery": recovery}),
        )
        .await
    }

    /// `GET /api/v1/kms/wrapping-key`: a short-lived wrapping key for importing material.
    pub async fn kms_wrapping_key(
        &self,
        algorithm: &str,
    ) -> Result<serde_json::Value, ClientError> {
        self.get(self.url(
            &["kms", "wrapping-key"],
            &[("algorithm", Some(algorithm.to_string()))],
        ))
        .await
    }

    /// `POST /api/v1/kms/keys/import`: a key from wrapped material (the body as the API takes it).
    pub async fn kms_import_key(&self, body: &serde_json::Value) -> Result<KmsKey, ClientError> {
        self.post(self.url(&["kms", "keys", "import"], &[]), body)
            .await
    }

    /// `GET /api/v1/kms/encryption`: the SLA's encryption statement, as JSON.
    pub async fn kms_encryption(&self) -> Result<serde_json::Value, ClientError> {
        self.get(self.url(&["kms", "encryption"], &[])).await
    }

    /// Encrypts base64 `plaintext`; returns the one-line ciphertext.
    pub async fn kms_encrypt(
        &self,
        key: &str,
        plaintext_b64: &str,
        context: &BTreeMap<String, String>,
    ) -> Result<String, ClientError> {
        let c: Ciphertext = self
            .post(
                self.url(&["kms", "keys", key, "encrypt"], &[]),
                &serde_json::json!({"plaintext": plaintext_b64, "context": context}),
            )
            .await?;
        Ok(c.ciphertext)
    }

    /// Decrypts; returns the plaintext as base64.
    pub async fn kms_decrypt(
        &self,
        ciphertext: &str,
        context: &BTreeMap<String, String>,
    ) -> Result<String, ClientError> {
        let p: Plaintext = self
            .post(
                self.url(&["kms", "decrypt"], &[]),
                &serde_json::json!({"ciphertext": ciphertext, "context": context}),
            )
            .await?;
        Ok(p.plaintext)
    }

    pub async fn kms_rewrap(
        &self,
        ciphertext: &str,
        context: &BTreeMap<String, String>,
    ) -> Result<String, ClientError> {
        let c: Ciphertext = self
            .post(
                self.url(&["kms", "rewrap"], &[]),
                &serde_json::json!({"ciphertext": ciphertext, "context": context}),
            )
            .await?;
        Ok(c.ciphertext)
    }

    pub async fn kms_datakey(
        &self,
        key: &str,
        context: &BTreeMap<String, String>,
        wrapped_only: bool,
    ) -> Result<DataKey, ClientError> {
        self.post(
            self.url(&["kms", "keys", key, "datakey"], &[]),
            &serde_json::json!({"context": context, "wrapped_only": wrapped_only}),
        )
        .await
    }

    pub async fn kms_sign(&self, key: &str, message_b64: &str) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct S {
            signature: String,
        }
        let s: S = self
            .post(
                self.url(&["kms", "keys", key, "sign"], &[]),
                &serde_json::json!({ "message": message_b64 }),
            )
            .await?;
        Ok(s.signature)
    }

    pub async fn kms_verify(
        &self,
        signature: &str,
        message_b64: &str,
    ) -> Result<bool, ClientError> {
        let v: Valid = self
            .post(
                self.url(&["kms", "verify"], &[]),
                &serde_json::json!({"message": message_b64, "signature": signature}),
            )
            .await?;
        Ok(v.valid)
    }

    pub async fn kms_hmac(&self, key: &str, message_b64: &str) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct M {
            mac: String,
        }
        let m: M = self
            .post(
                self.url(&["kms", "keys", key, "hmac"], &[]),
                &serde_json::json!({ "message": message_b64 }),
            )
            .await?;
        Ok(m.mac)
    }

    pub async fn kms_verify_hmac(&self, mac: &str, message_b64: &str) -> Result<bool, ClientError> {
        let v: Valid = self
            .post(
                self.url(&["kms", "verify-hmac"], &[]),
                &serde_json::json!({"message": message_b64, "mac": mac}),
            )
            .await?;
        Ok(v.valid)
    }
}
