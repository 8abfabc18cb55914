//! The asset inventory (X.1642 8.3(1), 8.3 last paragraph, 8.6.4, 8.7(1)): the resources being
//! monitored — physical hosts, hypervisors, VMs, images, network and security devices, databases,
//! the platform itself — each owned by one tenant (or the provider), with their operating system,
//! applications, addresses, location, owner, criticality and health.
//!
//! The service validates what users give, imports in bulk (all or nothing), records every change in
//! the audit trail in the same transaction, and answers the correlation query of X.1642 8.3 ("which
//! other tenants run the same OS or application version as this failing asset") for provider staff
//! only: tenants never learn anything of each other. Authorization is decided by the caller
//! (`parapet_iam::authz`) before any call here; every call takes the tenant it acts within.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parapet_store::{
    Asset, AssetFilter, AssetHealth, AssetKind, AuditEvent, AuditOutcome, Criticality,
    ImportCounts, Page, Software, Store, StoreError, Tenant, TenantMatch,
};
use parapet_types::{Actor, AssetId, Env, TenantCtx, TenantKind};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub mod import;
pub use import::{MAX_ROWS, RowError, parse_csv, parse_json};

/// What an inventory call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{0}")]
    Invalid(String),
    /// An import with invalid rows: nothing was written.
    #[error("the import has {} invalid row(s); nothing was imported", .0.len())]
    Rows(Vec<RowError>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type InventoryResult<T> = Result<T, InventoryError>;

impl From<StoreError> for InventoryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => InventoryError::NotFound("no such asset".into()),
            StoreError::Conflict(m) => InventoryError::Conflict(m),
            StoreError::Unavailable(m) => InventoryError::Unavailable(m),
            StoreError::Other(m) => InventoryError::Internal(m),
        }
    }
}

/// Who acts, and from where (for the audit record).
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The attributes of an asset as a user gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetSpec {
    pub name: String,
    /// One of `physical-host`, `hypervisor`, `vm`, `container`, `image`, `network-device`,
    /// `security-device`, `database`, `application`, `platform`.
    pub kind: String,
    #[serde(default)]
    pub os: Option<Software>,
    #[serde(default)]
    pub applications: Vec<Software>,
    /// IP addresses or DNS names.
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    /// `low`, `medium` (the default), `high` or `critical`.
    #[serde(default)]
    pub criticality: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Validated attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSpec {
    pub name: String,
    pub kind: AssetKind,
    pub os: Option<Software>,
    pub applications: Vec<Software>,
    pub addresses: Vec<String>,
    pub location: Option<String>,
    pub owner: Option<String>,
    pub criticality: Criticality,
    pub tags: BTreeMap<String, String>,
}

const MAX_APPLICATIONS: usize = 1000;
const MAX_ADDRESSES: usize = 64;
const MAX_TAGS: usize = 64;

fn printable(what: &str, v: &str, max: usize) -> Result<(), String> {
    if v.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if v.chars().count() > max {
        return Err(format!("{what} is longer than {max} characters"));
    }
    if v.chars().any(char::is_control) {
        return Err(format!("{what} contains a control character"));
    }
    if v.trim() != v {
        return Err(format!("{what} {v:?} starts or ends with white space"));
    }
    Ok(())
}

fn valid_address(a: &str) -> bool {
    if a.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    if let Some((ip, bits)) = a.split_once('/') {
        return match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => bits.parse::<u8>().is_ok_and(|b| b <= 32),
            Ok(std::net::IpAddr::V6(_)) => bits.parse::<u8>().is_ok_and(|b| b <= 128),
            Err(_) => false,
        };
    }
    // A DNS name; its last label is never all digits (that is a malformed IPv4 address).
    let last_is_numeric = a
        .rsplit('.')
        .next()
        .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    !last_is_numeric
        && a.len() <= 253
        && a.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn valid_software(what: &str, s: &Software) -> Result<Software, String> {
    printable(&format!("{what} name"), &s.name, 200)?;
    if !s.version.is_empty() {
        printable(&format!("{what} {} version", s.name), &s.version, 100)?;
    }
    Ok(s.clone())
}

impl AssetSpec {
    /// Checks every attribute; the message names the first that is wrong.
    pub fn validate(&self) -> Result<ValidSpec, String> {
        printable("the asset name", &self.name, 200)?;
        if !self.name.is_ascii() {
            return Err(format!(
                "the asset name {:?} must be ASCII (letters, digits and punctuation)",
                self.name
            ));
        }
        let kind = AssetKind::parse(&self.kind).ok_or_else(|| {
            format!(
                "unknown asset kind {:?}; expected one of: {}",
                self.kind,
                AssetKind::ALL.map(AssetKind::as_str).join(", ")
            )
        })?;
        let criticality = match &self.criticality {
            None => Criticality::Medium,
            Some(c) => Criticality::parse(c).ok_or_else(|| {
                format!(
                    "unknown criticality {c:?}; expected one of: {}",
                    Criticality::ALL.map(Criticality::as_str).join(", ")
                )
            })?,
        };
        let os = match &self.os {
            Some(o) => Some(valid_software("the operating system", o)?),
            None => None,
        };
        if self.applications.len() > MAX_APPLICATIONS {
            return Err(format!("at most {MAX_APPLICATIONS} applications per asset"));
        }
        let applications = self
            .applications
            .iter()
            .map(|a| valid_software("the application", a))
            .collect::<Result<Vec<_>, _>>()?;
        if self.addresses.len() > MAX_ADDRESSES {
            return Err(format!("at most {MAX_ADDRESSES} addresses per asset"));
        }
        let mut addresses = Vec::with_capacity(self.addresses.len());
        for a in &self.addresses {
            if !valid_address(a) {
                return Err(format!(
                    "address {a:?} is neither an IP address, a CIDR block nor a DNS name"
                ));
            }
            if !addresses.contains(a) {
                addresses.push(a.clone());
            }
        }
        for (what, v) in [("location", &self.location), ("owner", &self.owner)] {
            if let Some(v) = v {
                printable(&format!("the {what}"), v, 200)?;
            }
        }
        if self.tags.len() > MAX_TAGS {
            return Err(format!("at most {MAX_TAGS} tags per asset"));
        }
        for (k, v) in &self.tags {
            if k.is_empty()
                || k.len() > 64
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:".contains(&b))
            {
                return Err(format!(
                    "tag key {k:?} must be 1 to 64 letters, digits or - _ . / :"
                ));
            }
            if v.chars().count() > 256 || v.chars().any(char::is_control) {
                return Err(format!(
                    "tag {k}: the value must be at most 256 characters with no control character"
                ));
            }
        }
        Ok(ValidSpec {
            name: self.name.clone(),
            kind,
            os,
            applications,
            addresses,
            location: self.location.clone(),
            owner: self.owner.clone(),
            criticality,
            tags: self.tags.clone(),
        })
    }
}

/// Other tenants running one piece of software.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SoftwareMatches {
    pub software: Software,
    /// Whether the software is the operating system (else an application).
    pub os: bool,
    /// Tenants other than the asset's own with at least one asset running it.
    pub other_tenants: Vec<TenantMatch>,
}

/// The answer of the correlation query for one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Related {
    pub asset: Asset,
    pub matches: Vec<SoftwareMatches>,
    /// Distinct other tenants across all matches.
    pub tenants_affected: usize,
}

/// The asset inventory service.
#[derive(Clone)]
pub struct Inventory {
    store: Arc<dyn Store>,
    env: Env,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory").finish_non_exhaustive()
    }
}

fn target(t: &Tenant, name: &str) -> String {
    format!("asset:{}/{}", t.name, name)
}

impl Inventory {
    pub fn new(store: Arc<dyn Store>, env: Env) -> Self {
        Inventory { store, env }
    }

    fn event(
        &self,
        t: &Tenant,
        caller: &Caller,
        action: &str,
        target: String,
        details: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            time: self.env.now(),
            tenant: Some(t.id),
            actor: caller.actor.clone(),
            action: action.to_string(),
            target,
            source_ip: caller.source_ip.clone(),
            user_agent: caller.user_agent.clone(),
            outcome: AuditOutcome::Success,
            details,
        }
    }

    fn new_id(&self) -> InventoryResult<AssetId> {
        self.env
            .new_id()
            .map(AssetId)
            .map_err(|e| InventoryError::Internal(e.to_string()))
    }

    fn asset_of(&self, id: AssetId, t: &Tenant, v: ValidSpec) -> Asset {
        let now = self.env.now();
        Asset {
            id,
            tenant: t.id,
            name: v.name,
            kind: v.kind,
            os: v.os,
            applications: v.applications,
            addresses: v.addresses,
            location: v.location,
            owner: v.owner,
            criticality: v.criticality,
            tags: v.tags,
            health: AssetHealth::Unknown,
            last_seen_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Registers a new asset in tenant `t`.
    pub async fn create(
        &self,
        t: &Tenant,
        caller: &Caller,
        spec: &AssetSpec,
    ) -> InventoryResult<Asset> {
        let v = spec.validate().map_err(InventoryError::Invalid)?;
        let asset = self.asset_of(self.new_id()?, t, v);
        let e = self.event(
            t,
            caller,
            "asset.create",
            target(t, &asset.name),
            json!({"kind": asset.kind, "criticality": asset.criticality}),
        );
        match self
            .store
            .create_asset(TenantCtx::new(t.id), &asset, &e)
            .await
        {
            Ok(()) => Ok(asset),
            Err(StoreError::Conflict(_)) => Err(InventoryError::Conflict(format!(
                "tenant {} already has an asset named {:?}",
                t.name, asset.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the attributes of asset `id_or_name` of `t` (its health and history stay).
    pub async fn update(
        &self,
        t: &Tenant,
        caller: &Caller,
        id_or_name: &str,
        spec: &AssetSpec,
    ) -> InventoryResult<Asset> {
        let v = spec.validate().map_err(InventoryError::Invalid)?;
        let old = self.get(t, id_or_name).await?;
        let mut asset = self.asset_of(old.id, t, v);
        asset.created_at = old.created_at;
        asset.health = old.health;
        asset.last_seen_at = old.last_seen_at;
        let e = self.event(
            t,
            caller,
            "asset.update",
            target(t, &asset.name),
            json!({"previous_name": (old.name != asset.name).then_some(&old.name)}),
        );
        match self
            .store
            .update_asset(TenantCtx::new(t.id), &asset, &e)
            .await
        {
            Ok(()) => Ok(asset),
            Err(StoreError::Conflict(_)) => Err(InventoryError::Conflict(format!(
                "tenant {} already has an asset named {:?}",
                t.name, asset.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Imports `rows` (from [`parse_csv`] or [`parse_json`]) into `t`: every row is validated
    /// first and nothing is written unless all are valid; existing assets (same name) are updated.
    pub async fn import(
        &self,
        t: &Tenant,
        caller: &Caller,
        rows: &[(usize, AssetSpec)],
        source: &str,
    ) -> InventoryResult<ImportCounts> {
        if rows.is_empty() {
            return Err(InventoryError::Invalid("the import holds no asset".into()));
        }
        if rows.len() > MAX_ROWS {
            return Err(InventoryError::Invalid(format!(
                "an import holds at most {MAX_ROWS} rows"
            )));
        }
        let mut errors = Vec::new();
        let mut names = BTreeMap::new();
        let mut assets = Vec::with_capacity(rows.len());
        for (line, spec) in rows {
            match spec.validate() {
                Ok(v) => {
                    if let Some(first) = names.insert(v.name.to_ascii_lowercase(), *line) {
                        errors.push(RowError {
                            line: *line,
                            message: format!(
                                "asset {:?} appears again (first on line {first})",
                                v.name
                            ),
                        });
                        continue;
                    }
                    assets.push(self.asset_of(self.new_id()?, t, v));
                }
                Err(m) => errors.push(RowError {
                    line: *line,
                    message: m,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(InventoryError::Rows(errors));
        }
        let sample: Vec<&str> = assets.iter().take(20).map(|a| a.name.as_str()).collect();
        let e = self.event(
            t,
            caller,
            "asset.import",
            format!("tenant:{}", t.name),
            json!({"rows": assets.len(), "source": source, "first_names": sample}),
        );
        let counts = self
            .store
            .import_assets(TenantCtx::new(t.id), &assets, &e)
            .await?;
        Ok(counts)
    }

    /// An asset of `t` by id or name.
    pub async fn get(&self, t: &Tenant, id_or_name: &str) -> InventoryResult<Asset> {
        match self.store.get_asset(TenantCtx::new(t.id), id_or_name).await {
            Ok(a) => Ok(a),
            Err(StoreError::NotFound) => Err(InventoryError::NotFound(format!(
                "tenant {} has no asset {id_or_name:?}",
                t.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Assets of `t`, by name.
    pub async fn list(
        &self,
        t: &Tenant,
        filter: &AssetFilter,
        page: &Page,
    ) -> InventoryResult<Vec<Asset>> {
        Ok(self
            .store
            .list_assets(TenantCtx::new(t.id), filter, page)
            .await?)
    }

    /// How many assets of `t` are in each health state (every state, zeros included).
    pub async fn health_summary(&self, t: &Tenant) -> InventoryResult<Vec<(AssetHealth, u64)>> {
        let counts: BTreeMap<AssetHealth, u64> = self
            .store
            .count_assets_by_health(TenantCtx::new(t.id))
            .await?
            .into_iter()
            .collect();
        Ok(AssetHealth::ALL
            .into_iter()
            .map(|h| (h, counts.get(&h).copied().unwrap_or(0)))
            .collect())
    }

    /// Removes an asset from the inventory.
    pub async fn delete(
        &self,
        t: &Tenant,
        caller: &Caller,
        id_or_name: &str,
    ) -> InventoryResult<()> {
        let a = self.get(t, id_or_name).await?;
        let e = self.event(
            t,
            caller,
            "asset.delete",
            target(t, &a.name),
            json!({"id": a.id, "kind": a.kind}),
        );
        Ok(self
            .store
            .delete_asset(TenantCtx::new(t.id), a.id, &e)
            .await?)
    }

    /// Sets an asset's health; `seen` also records that data about it arrived now.
    pub async fn set_health(
        &self,
        t: &Tenant,
        caller: &Caller,
        id_or_name: &str,
        health: AssetHealth,
        reason: Option<&str>,
        seen: bool,
    ) -> InventoryResult<Asset> {
        if let Some(r) = reason {
            printable("the reason", r, 500).map_err(InventoryError::Invalid)?;
        }
        let mut a = self.get(t, id_or_name).await?;
        let e = self.event(
            t,
            caller,
            "asset.health",
            target(t, &a.name),
            json!({"from": a.health, "to": health, "reason": reason}),
        );
        let now = e.time;
        self.store
            .set_asset_health(TenantCtx::new(t.id), a.id, health, seen.then_some(now), &e)
            .await?;
        a.health = health;
        a.updated_at = now;
        if seen {
            a.last_seen_at = Some(now);
        }
        Ok(a)
    }

    /// The correlation query of X.1642 8.3: which *other* tenants run the same operating system
    /// version or application versions as asset `id_or_name` of `t`. Only for provider staff:
    /// `provider` must be the provider tenant (the caller has checked the permission).
    pub async fn related(
        &self,
        provider: &Tenant,
        t: &Tenant,
        id_or_name: &str,
    ) -> InventoryResult<Related> {
        if provider.kind != TenantKind::Provider {
            return Err(InventoryError::Forbidden(
                "only the provider's staff may correlate assets across tenants".into(),
            ));
        }
        let asset = self.get(t, id_or_name).await?;
        let ctx = TenantCtx::new(provider.id);
        let mut queries: Vec<(Software, bool)> = Vec::new();
        if let Some(os) = &asset.os {
            queries.push((os.clone(), true));
        }
        let mut seen = BTreeSet::new();
        for s in &asset.applications {
            if seen.insert((s.name.to_lowercase(), s.version.clone())) {
                queries.push((s.clone(), false));
            }
        }
        let mut matches = Vec::with_capacity(queries.len());
        let mut tenants = BTreeSet::new();
        for (software, os) in queries {
            let other_tenants: Vec<TenantMatch> = self
                .store
                .tenants_running(ctx, &software, os)
                .await?
                .into_iter()
                .filter(|m| m.tenant != t.id)
                .collect();
            tenants.extend(other_tenants.iter().map(|m| m.tenant));
            matches.push(SoftwareMatches {
                software,
                os,
                other_tenants,
            });
        }
        Ok(Related {
            asset,
            matches,
            tenants_affected: tenants.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_ips_cidr_blocks_or_dns_names() {
        for ok in [
            "10.0.0.5",
            "2001:db8::5",
            "10.0.0.0/8",
            "2001:db8::/32",
            "web-1.acme.example",
            "localhost",
            "_sip.example",
        ] {
            assert!(valid_address(ok), "{ok}");
        }
        for bad in [
            "999.1.1.1",
            "10.0.0.0/33",
            "2001:db8::/129",
            "not an ip!",
            "-bad.example",
            "a..b",
            "",
            "1.2.3",
        ] {
            assert!(!valid_address(bad), "{bad}");
        }
    }

    #[test]
    fn validation_names_the_wrong_attribute() {
        let base = AssetSpec {
            name: "web-1".into(),
            kind: "vm".into(),
            ..AssetSpec::default()
        };
        let v = base.validate().unwrap();
        assert_eq!(v.criticality, Criticality::Medium);
        assert_eq!(v.kind, AssetKind::Vm);
        let cases: Vec<(AssetSpec, &str)> = vec![
            (
                AssetSpec {
                    kind: "toaster".into(),
                    ..base.clone()
                },
                "unknown asset kind",
            ),
            (
                AssetSpec {
                    name: " padded".into(),
                    ..base.clone()
                },
                "white space",
            ),
            (
                AssetSpec {
                    name: "wéb".into(),
                    ..base.clone()
                },
                "ASCII",
            ),
            (
                AssetSpec {
                    os: Some(Software {
                        name: String::new(),
                        version: "1".into(),
                    }),
                    ..base.clone()
                },
                "operating system name",
            ),
            (
                AssetSpec {
                    applications: vec![
                        Software {
                            name: "x".into(),
                            version: "1".into(),
                        };
                        MAX_APPLICATIONS + 1
                    ],
                    ..base.clone()
                },
                "at most",
            ),
            (
                AssetSpec {
                    criticality: Some("extreme".into()),
                    ..base.clone()
                },
                "criticality",
            ),
        ];
        for (spec, needle) in cases {
            let e = spec.validate().unwrap_err();
            assert!(e.contains(needle), "{e} lacks {needle}");
        }
        let dup = AssetSpec {
            addresses: vec!["10.0.0.1".into(), "10.0.0.1".into()],
            ..base
        };
        assert_eq!(dup.validate().unwrap().addresses, vec!["10.0.0.1"]);
    }
}
