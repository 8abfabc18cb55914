//! The key service's in-memory caches: key metadata, the unwrapped material of key versions, and
//! the names of keys.
//!
//! Every replica may change a key, so a cached copy must not outlive a change made elsewhere by
//! more than the configured bound (`cache_ms`). Two ways keep that promise:
//! - **the change feed**: a background job polls the keys changed since its last look (by their
//!   `updated_at`, with a margin for commits in flight and clock skew) and drops them. While the
//!   feed is healthy (its last successful poll is younger than the bound), entries stay valid
//!   until they change, so the cache holds a large working set — a million keys — and latency
//!   does not depend on the number of keys;
//! - **the time bound** alone when the feed is not running or failing: an entry is then served
//!   for at most `cache_ms` after it was read.
//!
//! Names never move to another key (they are unique per tenant and never reused, even after
//! destruction), so the name → id map needs no invalidation. Material of a version never changes
//! but disappears when its key is destroyed: dropping a key drops its material too.
//!
//! Each map holds at most `capacity` entries; when full, about an eighth of it is dropped (an
//! arbitrary eighth, which under random access is as good as least-recently-used and costs no
//! bookkeeping on hits).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use parapet_store::KmsKey;
use parapet_types::{TenantId, Timestamp};
use uuid::Uuid;

use crate::Material;

/// How far back each poll of the change feed looks beyond the previous poll (commits in flight
/// and clock skew between replicas must stay under it).
pub(crate) const FEED_MARGIN_MS: i64 = 5_000;
/// No entry is served longer than this, even with a healthy feed.
const MAX_AGE_MS: i64 = 10 * 60_000;

struct Entry {
    key: Arc<KmsKey>,
    at: Timestamp,
}

#[derive(Default)]
struct Inner {
    meta: HashMap<Uuid, Entry>,
    names: HashMap<(TenantId, String), Uuid>,
    material: HashMap<Uuid, Vec<(i64, Material)>>,
    /// Start of the last successful poll of the change feed.
    feed_ok_at: Option<Timestamp>,
    /// Where the next poll starts.
    next_since: Option<Timestamp>,
}

pub(crate) struct KeyCache {
    capacity: usize,
    bound_ms: i64,
    inner: RwLock<Inner>,
}

/// Drops about an eighth of `map` when it holds `capacity` entries or more.
fn make_room<K, V>(map: &mut HashMap<K, V>, capacity: usize) {
    if map.len() < capacity.max(1) {
        return;
    }
    let mut n = 0usize;
    map.retain(|_, _| {
        n += 1;
        !n.is_multiple_of(8)
    });
}

impl KeyCache {
    pub(crate) fn new(capacity: usize, bound_ms: i64) -> Self {
        KeyCache {
            capacity,
            bound_ms,
            inner: RwLock::default(),
        }
    }

    fn fresh(&self, inner: &Inner, at: Timestamp, now: Timestamp) -> bool {
        let age = now.0 - at.0;
        if (0..self.bound_ms).contains(&age) {
            return true;
        }
        (0..MAX_AGE_MS).contains(&age)
            && inner
                .feed_ok_at
                .is_some_and(|f| (0..self.bound_ms).contains(&(now.0 - f.0)) && f.0 >= at.0)
    }

    /// The cached key `id_or_name` of `tenant`, if still valid at `now`.
    pub(crate) fn key(
        &self,
        tenant: TenantId,
        id_or_name: &str,
        now: Timestamp,
    ) -> Option<Arc<KmsKey>> {
        let inner = self.inner.read().ok()?;
        let id = match inner.names.get(&(tenant, id_or_name.to_string())) {
            Some(id) => *id,
            None => Uuid::parse_str(id_or_name).ok()?,
        };
        let e = inner.meta.get(&id)?;
        (e.key.tenant == tenant && self.fresh(&inner, e.at, now)).then(|| e.key.clone())
    }

    pub(crate) fn put_key(&self, key: Arc<KmsKey>, now: Timestamp) {
        if let Ok(mut inner) = self.inner.write() {
            make_room(&mut inner.meta, self.capacity);
            make_room(&mut inner.names, self.capacity);
            inner.names.insert((key.tenant, key.name.clone()), key.id);
            inner.meta.insert(key.id, Entry { key, at: now });
        }
    }

    /// Drops a key's metadata and material (it changed).
    pub(crate) fn forget(&self, id: Uuid) {
        if let Ok(mut inner) = self.inner.write() {
            inner.meta.remove(&id);
            inner.material.remove(&id);
        }
    }

    pub(crate) fn material(&self, id: Uuid, version: i64) -> Option<Material> {
        let inner = self.inner.read().ok()?;
        inner
            .material
            .get(&id)?
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, m)| m.clone())
    }

    pub(crate) fn put_material(&self, id: Uuid, version: i64, m: Material) {
        if let Ok(mut inner) = self.inner.write() {
            make_room(&mut inner.material, self.capacity);
            let versions = inner.material.entry(id).or_default();
            versions.retain(|(v, _)| *v != version);
            versions.push((version, m));
        }
    }

    /// Drops all key material (sealing).
    pub(crate) fn clear_material(&self) {
        if let Ok(mut inner) = self.inner.write() {
            inner.material.clear();
        }
    }

    /// Drops every key's metadata and material (the feed lost track).
    pub(crate) fn clear(&self) {
        if let Ok(mut inner) = self.inner.write() {
            inner.meta.clear();
            inner.material.clear();
        }
    }

    /// Where the next poll of the change feed starts, given the service's start time.
    pub(crate) fn feed_since(&self, started: Timestamp) -> Timestamp {
        self.inner
            .read()
            .ok()
            .and_then(|i| i.next_since)
            .unwrap_or(Timestamp(started.0 - FEED_MARGIN_MS))
    }

    /// Records a successful poll that started at `polled_at`.
    pub(crate) fn feed_ok(&self, polled_at: Timestamp) {
        if let Ok(mut inner) = self.inner.write() {
            inner.feed_ok_at = Some(polled_at);
            inner.next_since = Some(Timestamp(polled_at.0 - FEED_MARGIN_MS));
        }
    }

    /// Counts of cached keys, names and keys with material (for metrics).
    pub(crate) fn sizes(&self) -> (usize, usize, usize) {
        self.inner
            .read()
            .map(|i| (i.meta.len(), i.names.len(), i.material.len()))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_store::KeyPolicy;

    fn id() -> Uuid {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Uuid::from_u128(u128::from(
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        ))
    }

    fn key(tenant: TenantId, name: &str) -> Arc<KmsKey> {
        Arc::new(KmsKey {
            id: id(),
            tenant,
            name: name.into(),
            key_type: "aes256-gcm".into(),
            state: "enabled".into(),
            latest_version: 1,
            min_decryption_version: 1,
            rotation_period_secs: None,
            next_rotation_at: None,
            exportable: false,
            policy: KeyPolicy::default(),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            deletion_due_at: None,
            deletion_requested_by: None,
            destroyed_at: None,
            receipt: None,
            origin: "parapet".into(),
        })
    }

    #[test]
    fn entries_expire_after_the_bound_unless_the_feed_is_healthy() {
        let c = KeyCache::new(100, 1000);
        let t = TenantId(id());
        let k = key(t, "a");
        c.put_key(k.clone(), Timestamp(10_000));
        assert!(c.key(t, "a", Timestamp(10_999)).is_some());
        assert!(c.key(t, &k.id.to_string(), Timestamp(10_500)).is_some());
        assert!(c.key(t, "a", Timestamp(11_000)).is_none(), "past the bound");
        // A poll after the entry was read keeps it valid while polls keep coming.
        c.feed_ok(Timestamp(10_500));
        assert!(c.key(t, "a", Timestamp(11_400)).is_some());
        assert!(
            c.key(t, "a", Timestamp(11_600)).is_none(),
            "the feed went quiet"
        );
        c.feed_ok(Timestamp(70_000));
        assert!(c.key(t, "a", Timestamp(70_100)).is_some());
        c.forget(k.id);
        assert!(c.key(t, "a", Timestamp(70_100)).is_none());
        // A poll older than the entry does not vouch for it.
        c.put_key(k.clone(), Timestamp(80_000));
        assert!(c.key(t, "a", Timestamp(81_500)).is_none());
    }

    #[test]
    fn another_tenant_never_sees_a_cached_key() {
        let c = KeyCache::new(100, 1000);
        let (t, u) = (TenantId(id()), TenantId(id()));
        let k = key(t, "a");
        c.put_key(k.clone(), Timestamp(0));
        assert!(c.key(u, "a", Timestamp(1)).is_none());
        assert!(c.key(u, &k.id.to_string(), Timestamp(1)).is_none());
    }

    #[test]
    fn a_full_cache_drops_an_eighth_and_forget_drops_material() {
        let c = KeyCache::new(64, 1000);
        let t = TenantId(id());
        let keys: Vec<_> = (0..200).map(|i| key(t, &format!("k{i}"))).collect();
        for k in &keys {
            c.put_key(k.clone(), Timestamp(0));
            c.put_material(k.id, 1, Arc::new(zeroize::Zeroizing::new(vec![1u8; 32])));
        }
        let (meta, names, material) = c.sizes();
        assert!(
            meta <= 64 && names <= 64 && material <= 64,
            "{meta} {names} {material}"
        );
        assert!(meta >= 56, "dropped more than an eighth: {meta}");
        let last = keys.last().map(|k| k.id).unwrap_or_default();
        assert!(c.material(last, 1).is_some());
        assert!(c.material(last, 2).is_none());
        c.forget(last);
        assert!(c.material(last, 1).is_none());
    }
}
