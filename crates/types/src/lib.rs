//! Parapet's vocabulary: identifiers, the tenant context every storage call takes, the actor of an
//! action, roles, and the injected [`Clock`] and [`Entropy`]. This crate does no I/O.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

mod names;
pub use names::{NameError, TenantName, Username};

/// Milliseconds since the Unix epoch, UTC. Stored as a 64-bit integer by every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        Timestamp((dt.unix_timestamp_nanos() / 1_000_000) as i64)
    }
    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
    pub fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1000)))
    }
    /// RFC 3339, for people and JSON.
    pub fn rfc3339(self) -> String {
        self.to_datetime()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// The source of time. Production uses [`SystemClock`]; tests use [`ManualClock`] and move it,
/// so nothing waits for an expiry.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(OffsetDateTime::now_utc())
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(AtomicI64::new(start.0))
    }
    pub fn advance_secs(&self, secs: i64) {
        self.0
            .fetch_add(secs.saturating_mul(1000), Ordering::SeqCst);
    }
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// The source of randomness for secrets, tokens and identifiers.
pub trait Entropy: Send + Sync + 'static {
    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError>;
}

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct EntropyError(pub String);

/// The operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
        getrandom::fill(buf).map_err(|e| EntropyError(e.to_string()))
    }
}

/// Shared handles to the injected environment.
#[derive(Clone)]
pub struct Env {
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
}

impl Env {
    pub fn system() -> Self {
        Env {
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
        }
    }
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
    /// `N` random bytes.
    pub fn random<const N: usize>(&self) -> Result<[u8; N], EntropyError> {
        let mut b = [0u8; N];
        self.entropy.fill(&mut b)?;
        Ok(b)
    }
    /// A new time-ordered identifier (UUID v7) from this environment's clock and entropy.
    pub fn new_id(&self) -> Result<Uuid, EntropyError> {
        let rand: [u8; 10] = self.random()?;
        let ms = u64::try_from(self.now().0).unwrap_or(0);
        Ok(uuid::Builder::from_unix_timestamp_millis(ms, &rand).into_uuid())
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Env")
    }
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }
    };
}

id_type!(
    /// A tenant: the provider itself or a cloud service customer.
    TenantId
);
id_type!(
    /// A user (a human or service principal) of exactly one tenant.
    UserId
);
id_type!(
    /// A console session or API token.
    CredentialId
);
id_type!(
    /// A monitored resource of the asset inventory (a host, VM, device, database, ...).
    AssetId
);

/// Whether a tenant is the cloud service provider or one of its customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TenantKind {
    Provider,
    Customer,
}

impl TenantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantKind::Provider => "provider",
            TenantKind::Customer => "customer",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "provider" => Some(TenantKind::Provider),
            "customer" => Some(TenantKind::Customer),
            _ => None,
        }
    }
}

/// The tenant a storage call acts within. Every repository call takes one; a repository never
/// returns or changes a row of another tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantCtx {
    pub tenant: TenantId,
}

impl TenantCtx {
    pub fn new(tenant: TenantId) -> Self {
        TenantCtx { tenant }
    }
}

/// Roles. Provider roles are held by users of the provider tenant, tenant roles by users of a
/// customer tenant (X.1642 8.1.1(4), 8.2(1) separation of duties).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    SecurityAdmin,
    Operator,
    KeyCustodian,
    IncidentResponder,
    ChangeApprover,
    Auditor,
    TenantAdmin,
    TenantMember,
    TenantAuditor,
}

impl Role {
    pub const ALL: [Role; 9] = [
        Role::SecurityAdmin,
        Role::Operator,
        Role::KeyCustodian,
        Role::IncidentResponder,
        Role::ChangeApprover,
        Role::Auditor,
        Role::TenantAdmin,
        Role::TenantMember,
        Role::TenantAuditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::SecurityAdmin => "security-admin",
            Role::Operator => "operator",
            Role::KeyCustodian => "key-custodian",
            Role::IncidentResponder => "incident-responder",
            Role::ChangeApprover => "change-approver",
            Role::Auditor => "auditor",
            Role::TenantAdmin => "tenant-admin",
            Role::TenantMember => "tenant-member",
            Role::TenantAuditor => "tenant-auditor",
        }
    }

    /// Whether this role belongs to the provider's staff (as opposed to a customer tenant).
    pub fn is_provider_role(self) -> bool {
        !matches!(
            self,
            Role::TenantAdmin | Role::TenantMember | Role::TenantAuditor
        )
    }

    /// Whether a user of a tenant of `kind` may hold this role.
    pub fn fits(self, kind: TenantKind) -> bool {
        self.is_provider_role() == (kind == TenantKind::Provider)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown role {0:?}; expected one of: security-admin, operator, key-custodian, incident-responder, change-approver, auditor, tenant-admin, tenant-member, tenant-auditor"
)]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// Who performed an action, as recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Actor {
    /// An authenticated user.
    User {
        tenant: TenantId,
        user: UserId,
        username: String,
    },
    /// Someone not (yet) authenticated, e.g. a failed log-in; `claimed` is the name given.
    Anonymous { claimed: Option<String> },
    /// Parapet itself (bootstrap, background jobs).
    System,
    /// A registered client acting for itself, authenticated by its own credentials (an OAuth
    /// client using client credentials, introspection or revocation); `client` names it, e.g.
    /// `oidc-client:pco_…`.
    Service { client: String },
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::User { username, .. } => username.clone(),
            Actor::Anonymous { claimed: Some(c) } => format!("anonymous({c})"),
            Actor::Anonymous { claimed: None } => "anonymous".to_string(),
            Actor::System => "system".to_string(),
            Actor::Service { client } => format!("service({client})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_fit_tenant_kinds() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().ok(), Some(r));
            assert_ne!(r.fits(TenantKind::Provider), r.fits(TenantKind::Customer));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp(1_000));
        assert_eq!(c.now(), Timestamp(1_000));
        c.advance_secs(90);
        assert_eq!(c.now(), Timestamp(91_000));
    }

    #[test]
    fn ids_are_time_ordered() {
        let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000)));
        let env = Env {
            clock: clock.clone(),
            entropy: Arc::new(OsEntropy),
        };
        let a = env.new_id().ok();
        clock.advance_secs(1);
        let b = env.new_id().ok();
        assert!(a < b, "{a:?} < {b:?}");
    }

    #[test]
    fn timestamp_formats_as_rfc3339() {
        assert_eq!(Timestamp(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1500).plus_secs(2).0, 3500);
    }
}
