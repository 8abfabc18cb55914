//! Batch encryption and decryption: one authorization and one key lookup per key, and **one
//! audit record per batch** (not per item). The record names the caller, every key id and
//! version used with its number of items, the failures, and the distinct SHA-256 hashes of the
//! encryption contexts with their counts: exactly what per-item records held (a batch is one
//! request of one caller at one time), without one audit row per operation, which bounded the
//! batch endpoint by the audit log's write rate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parapet_iam::{Principal, RequestMeta};
use parapet_store::AuditOutcome;
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::{self, Context, KeyType, Token};
use crate::{KmsError, KmsResult, KmsService, Material, target};

/// Whether an error fails the whole batch (the service or the caller) rather than one item.
fn whole(e: &KmsError) -> bool {
    matches!(
        e,
        KmsError::Sealed
            | KmsError::Uninitialized
            | KmsError::Forbidden(_)
            | KmsError::Unavailable(_)
            | KmsError::Internal(_)
    )
}

impl KmsService {
    /// Encrypts every plaintext with the newest version of key `name`, each with its context.
    pub async fn encrypt_batch(
        &self,
        p: &Principal,
        name: &str,
        items: &[(&[u8], &Context)],
        meta: &RequestMeta,
    ) -> KmsResult<Vec<String>> {
        let (key, kt) = self
            .usable(p, name, "encrypt", KeyType::encrypts, meta)
            .await?;
        let version = key.latest_version;
        let m = self.material(&key, version).await?;
        // Set up once per batch: the key schedule, the ciphertext header, and the associated
        // data and context hash of runs of items with the same context.
        let aead = crypto::Aead::new(kt, &m)?;
        let header = crypto::header(key.id, version);
        let mut out = Vec::with_capacity(items.len());
        let mut contexts: BTreeMap<String, u64> = BTreeMap::new();
        let mut last: Option<(&Context, Vec<u8>, String)> = None;
        // Nonces drawn 64 at a time (one call to the entropy source per 64 items).
        let mut pool: Vec<[u8; crypto::NONCE_LEN]> = Vec::new();
        for (plain, ctx) in items {
            if pool.is_empty() {
                let bytes = self.random::<{ 64 * crypto::NONCE_LEN }>()?;
                pool = bytes
                    .chunks_exact(crypto::NONCE_LEN)
                    .filter_map(|c| <[u8; crypto::NONCE_LEN]>::try_from(c).ok())
                    .collect();
            }
            let nonce = pool
                .pop()
                .ok_or_else(|| KmsError::Internal("no nonce".into()))?;
            if last.as_ref().is_none_or(|(c, _, _)| *c != *ctx) {
                last = Some((
                    ctx,
                    crypto::aad(key.id, version, ctx),
                    crypto::context_hash(ctx),
                ));
            }
            let Some((_, aad, hash)) = &last else {
                return Err(KmsError::Internal("no associated data".into()));
            };
            let payload = aead.seal(nonce, aad, plain)?;
            out.push(crypto::encode_with_header(&header, &payload));
            match contexts.get_mut(hash.as_str()) {
                Some(n) => *n += 1,
                None => {
                    contexts.insert(hash.clone(), 1);
                }
            }
        }
        let e = self.event(
            Some(&p.tenant),
            p.actor(),
            "kms.encrypt-batch",
            target(&p.tenant, &key.name),
            meta,
            AuditOutcome::Success,
            json!({"items": items.len(), "keys": [{"key_id": key.id, "versions": {version.to_string(): items.len()}}],
                   "failed": 0, "context_sha256": contexts}),
        );
        self.audit_grouped(e).await?;
        Ok(out)
    }

    /// Decrypts every ciphertext (of any keys of the caller's tenant) with its context. An item
    /// that does not decrypt gets its error; errors of the service or the caller fail the whole.
    pub async fn decrypt_batch(
        &self,
        p: &Principal,
        items: &[(&str, &Context)],
        meta: &RequestMeta,
    ) -> KmsResult<Vec<KmsResult<Zeroizing<Vec<u8>>>>> {
        self.root_key()?;
        let mut keys: HashMap<Uuid, KmsResult<(Arc<crate::KmsKey>, KeyType)>> = HashMap::new();
        let mut materials: HashMap<(Uuid, i64), Arc<crypto::Aead>> = HashMap::new();
        let mut used: BTreeMap<(Uuid, i64), (u64, u64)> = BTreeMap::new();
        let mut contexts: BTreeMap<String, u64> = BTreeMap::new();
        let mut out = Vec::with_capacity(items.len());
        let mut failed = 0u64;
        for (ciphertext, ctx) in items {
            *contexts.entry(crypto::context_hash(ctx)).or_default() += 1;
            let r = self
                .decrypt_item(
                    p,
                    ciphertext,
                    ctx,
                    meta,
                    &mut keys,
                    &mut materials,
                    &mut used,
                )
                .await;
            match r {
                Err(e) if whole(&e) => return Err(e),
                Err(e) => {
                    failed += 1;
                    out.push(Err(e));
                }
                Ok(plain) => out.push(Ok(plain)),
            }
        }
        let mut per_key: BTreeMap<Uuid, serde_json::Map<String, serde_json::Value>> =
            BTreeMap::new();
        for ((id, v), (ok, bad)) in &used {
            per_key
                .entry(*id)
                .or_default()
                .insert(v.to_string(), json!({"ok": ok, "failed": bad}));
        }
        let e = self.event(
            Some(&p.tenant),
            p.actor(),
            "kms.decrypt-batch",
            format!("kms-batch:{}", p.tenant.name),
            meta,
            if failed == 0 {
                AuditOutcome::Success
            } else {
                AuditOutcome::Failure
            },
            json!({"items": items.len(), "failed": failed,
                   "keys": per_key.into_iter().map(|(id, v)| json!({"key_id": id, "versions": v})).collect::<Vec<_>>(),
                   "context_sha256": contexts}),
        );
        self.audit_grouped(e).await?;
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    async fn decrypt_item(
        &self,
        p: &Principal,
        ciphertext: &str,
        ctx: &Context,
        meta: &RequestMeta,
        keys: &mut HashMap<Uuid, KmsResult<(Arc<crate::KmsKey>, KeyType)>>,
        materials: &mut HashMap<(Uuid, i64), Arc<crypto::Aead>>,
        used: &mut BTreeMap<(Uuid, i64), (u64, u64)>,
    ) -> KmsResult<Zeroizing<Vec<u8>>> {
        let t = Token::parse(ciphertext)?;
        if let std::collections::hash_map::Entry::Vacant(slot) = keys.entry(t.key) {
            let r = self
                .usable(p, &t.key.to_string(), "decrypt", KeyType::encrypts, meta)
                .await;
            slot.insert(r);
        }
        let (key, kt) = match keys.get(&t.key) {
            Some(Ok(k)) => k.clone(),
            Some(Err(e)) => return Err(clone_error(e)),
            None => return Err(KmsError::Internal("batch key lookup".into())),
        };
        let tally = used.entry((key.id, t.version)).or_default();
        if t.version < key.min_decryption_version || t.version > key.latest_version {
            tally.1 += 1;
            return Err(KmsError::Conflict(format!(
                "version {} of key {} no longer decrypts (the minimum decryption version is {})",
                t.version, key.name, key.min_decryption_version
            )));
        }
        let aead = match materials.get(&(key.id, t.version)) {
            Some(a) => a.clone(),
            None => {
                let m: Material = self.material(&key, t.version).await?;
                let a = Arc::new(crypto::Aead::new(kt, &m)?);
                materials.insert((key.id, t.version), a.clone());
                a
            }
        };
        let tally = used.entry((key.id, t.version)).or_default();
        match aead.open(&crypto::aad(key.id, t.version, ctx), &t.payload) {
            Ok(plain) => {
                tally.0 += 1;
                Ok(Zeroizing::new(plain))
            }
            Err(e) => {
                tally.1 += 1;
                Err(e.into())
            }
        }
    }
}

fn clone_error(e: &KmsError) -> KmsError {
    match e {
        KmsError::Sealed => KmsError::Sealed,
        KmsError::Uninitialized => KmsError::Uninitialized,
        KmsError::Forbidden(m) => KmsError::Forbidden(m.clone()),
        KmsError::NotFound(m) => KmsError::NotFound(m.clone()),
        KmsError::Conflict(m) => KmsError::Conflict(m.clone()),
        KmsError::Invalid(m) => KmsError::Invalid(m.clone()),
        KmsError::Crypto(c) => KmsError::Crypto(c.clone()),
        KmsError::Unavailable(m) => KmsError::Unavailable(m.clone()),
        KmsError::Internal(m) => KmsError::Internal(m.clone()),
    }
}
