//! A typed asynchronous client for the Parapet HTTP API (`/api/v1`).
//!
//! One method per endpoint, returning the server's JSON as typed structures. Errors are
//! [`ClientError`]s whose `Display` is one line, e.g.
//! `403 Forbidden: role tenant-member may not list users in tenant acme`.
//!
//! Secrets (passwords, tokens) never appear in `Debug` output of the types here.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod assets;
pub use assets::{
    Asset, AssetInput, AssetQuery, HealthSummary, ImportCounts, Related, Software, SoftwareMatch,
    TenantCount,
};

mod account;
mod approval;
mod mfa;
mod subaccount;
mod webauthn;
pub use account::{AccountInfo, AccountPolicyView, AccountReport, FlaggedAccount, SweepResult};
pub use approval::Approval;
pub use mfa::{MfaStatus, TotpEnrolment};
pub use webauthn::SecurityKey;

mod kms;
pub use kms::{DataKey, KmsInit, KmsKey, KmsKeyVersion, KmsStatus, NewKmsKey};

mod incident;
pub use incident::{IncidentQuery, IncidentSummary, OpenIncident};
mod alerts;
pub use alerts::{AlertInfo, AlertPage, RuleInfo, SampleMatch, SuppressionInfo};
mod events;
pub use events::{
    EventPage, EventQuery, EventRecord, IngestError, IngestReceipt, MonitoringHealth, Retention,
};

mod oidc;
pub use oidc::{OidcClient, OidcKeyInfo};

mod access;
mod backup;
pub use access::AccessGrant;
pub use backup::{
    BackupJobInput, BackupPolicyInput, BackupReportInput, BackupRetention, BackupStepOutcome,
};
mod group;
pub use group::{GroupInfo, MemberAdded};
mod ldap;
mod metrics;
pub use ldap::{LdapDirectory, LdapMapping, LdapSettings, LdapTest};

mod notify;
pub use notify::{
    AffectedCheck, Channel, CreatedChannel, NewChannel, NotifyMessage, NotifyStats, Weakness,
};

/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How many pages [`collect_pages`] follows at most before giving up (a guard against a server
/// that never stops handing out cursors).
pub const MAX_PAGES: usize = 10_000;

/// Everything that can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status (an RFC 9457 problem, or plain text).
    #[error("{}", api_line(*.status, .title, .detail))]
    Api {
        status: u16,
        title: String,
        detail: String,
    },
    /// The request did not get an answer: bad URL, connection refused, TLS, time-out.
    #[error("{0}")]
    Transport(String),
    /// The server answered, but not with what the API promises.
    #[error("{0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn api_line(status: u16, title: &str, detail: &str) -> String {
    match (title.is_empty(), detail.is_empty()) {
        (true, true) => format!("{status}"),
        (false, true) => format!("{status} {title}"),
        (true, false) => format!("{status}: {detail}"),
        (false, false) => format!("{status} {title}: {detail}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Wire types.

/// One page of a listing, and the cursor of the next page (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl fmt::Display for TenantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub kind: TenantKind,
    pub status: TenantStatus,
    pub created_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user as the API shows it (never with credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The tenant's name.
    pub tenant: String,
    pub username: String,
    /// What the user logs in as: `admin` for provider staff, `alice@acme` for tenant users.
    pub login: String,
    pub role: String,
    pub status: UserStatus,
    pub created_at: String,
    #[serde(default)]
    pub last_login_at: Option<String>,
}

/// The answer to a successful log-in. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
    pub expires_at: String,
    pub user: UserView,
    /// The account must enrol a second factor (`parapet mfa enrol`) and log in again.
    #[serde(default)]
    pub mfa_enrolment_required: bool,
}

impl fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginResponse")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish()
    }
}

/// A user to create. `Debug` hides the password.
#[derive(Clone, Serialize)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub role: String,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// An API token to create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NewToken {
    pub name: String,
    /// `read`, `write`; `None` lets the server choose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

/// A live session or API token of the caller, as `GET /api/v1/tokens` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    /// `session` or `api-token`.
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: String,
    /// Whether this is the credential the request was made with.
    #[serde(default)]
    pub current: bool,
}

/// A freshly created API token: the only time its secret is shown. `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub id: String,
    pub token: String,
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

impl fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedToken")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Who performed an audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AuditActor {
    /// An authenticated user.
    User {
        #[serde(default)]
        tenant: Option<Uuid>,
        #[serde(default)]
        user: Option<Uuid>,
        username: String,
    },
    /// Someone not authenticated (e.g. a failed log-in); `claimed` is the name given.
    Anonymous {
        #[serde(default)]
        claimed: Option<String>,
    },
    /// Parapet itself.
    System,
    /// A registered client acting for itself (e.g. an OIDC client's own grants).
    Service { client: String },
    /// A kind this client does not know yet.
    #[serde(other)]
    Other,
}

impl AuditActor {
    /// A short label: the username, `anonymous(name)`, `system`.
    pub fn label(&self) -> String {
        match self {
            AuditActor::User { username, .. } => username.clone(),
            AuditActor::Anonymous { claimed: Some(c) } => format!("anonymous({c})"),
            AuditActor::Anonymous { claimed: None } => "anonymous".to_string(),
            AuditActor::System => "system".to_string(),
            AuditActor::Service { client } => format!("service({client})"),
            AuditActor::Other => "other".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditOutcome {
    Success,
    Failure,
    Denied,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
            AuditOutcome::Denied => "denied",
        }
    }
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub time: i64,
    #[serde(default)]
    pub tenant: Option<Uuid>,
    pub actor: AuditActor,
    pub action: String,
    pub target: String,
    #[serde(default)]
    pub source_ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    pub outcome: AuditOutcome,
    #[serde(default)]
    pub details: serde_json::Value,
}

/// Filters for [`Client::search_audit`]; `None` fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
}

/// A signed checkpoint of the audit log and when it was signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    pub size: u64,
    pub time: String,
    /// The signed note.
    pub checkpoint: String,
}

/// An inclusion proof of the audit log; hashes in base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub index: u64,
    pub size: u64,
    /// The record's entry: the exact bytes hashed into the log.
    pub entry: String,
    pub leaf_hash: String,
    pub proof: Vec<String>,
}

/// A consistency proof of the audit log; hashes in base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub proof: Vec<String>,
}

/// One account's activity in an access report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountActivity {
    pub account: String,
    pub role: String,
    pub disabled: bool,
    pub logins: u64,
    pub logouts: u64,
    pub failed_logins: u64,
    pub denied_requests: u64,
    pub last_login: Option<String>,
    pub last_failed_login: Option<String>,
}

/// An account without a log-in for the report's number of days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InactiveAccount {
    pub account: String,
    pub role: String,
    pub last_login: Option<String>,
    pub created_at: String,
}

/// A privilege grant or revocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivilegeChange {
    pub index: i64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub details: serde_json::Value,
}

/// The account and access report of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessReport {
    pub since: Option<String>,
    pub until: Option<String>,
    pub generated_at: String,
    pub inactive_days: u32,
    pub accounts: Vec<AccountActivity>,
    pub unknown_login_attempts: std::collections::BTreeMap<String, u64>,
    pub inactive: Vec<InactiveAccount>,
    pub privilege_changes: Vec<PrivilegeChange>,
}

/// A live session or API token with its activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    pub username: String,
    pub kind: String,
    pub name: String,
    pub created_at: String,
    pub expires_at: String,
    pub last_used_at: String,
    #[serde(default)]
    pub source_ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    pub current: bool,
}

/// What to export from the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntriesQuery {
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub limit: Option<u32>,
    /// A tenant within the caller's audit scope (the caller's own by default).
    pub tenant: Option<String>,
    /// Ask for each record's inclusion proof.
    pub proofs: bool,
    /// The tree size to cut at and prove against (the latest checkpoint's by default).
    pub size: Option<u64>,
}

/// One page of an export: JSON lines, the tree size it is cut at, and where the next page
/// starts (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntriesPage {
    pub body: Vec<u8>,
    pub size: u64,
    pub next_from: Option<u64>,
}

/// The answer of `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub status: u16,
    pub body: String,
}

// ---------------------------------------------------------------------------------------------
// URL building.

/// Percent-encodes `s` for use as one path segment or query value: everything but the RFC 3986
/// unreserved characters is encoded.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0x0f));
        }
    }
    out
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16)
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or('0')
}

/// Builds `base` + `/api/v1` + the encoded `segments` + the query of the `Some` parameters.
fn api_url(base: &str, segments: &[&str], query: &[(&str, Option<String>)]) -> String {
    let mut url = format!("{base}/api/v1");
    for s in segments {
        url.push('/');
        url.push_str(&encode_component(s));
    }
    let mut sep = '?';
    for (k, v) in query {
        if let Some(v) = v {
            url.push(sep);
            url.push_str(&encode_component(k));
            url.push('=');
            url.push_str(&encode_component(v));
            sep = '&';
        }
    }
    url
}

/// Checks and normalizes a server base URL: `http` or `https`, no query or fragment, no trailing
/// slash.
pub fn normalize_base_url(base: &str) -> Result<String, ClientError> {
    let trimmed = base.trim();
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|e| ClientError::Transport(format!("invalid server URL {trimmed:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ClientError::Transport(format!(
            "invalid server URL {trimmed:?}: the scheme must be http or https"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ClientError::Transport(format!(
            "invalid server URL {trimmed:?}: no host"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ClientError::Transport(format!(
            "invalid server URL {trimmed:?}: it must not have a query or fragment"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ClientError::Transport(format!(
            "invalid server URL {:?}: it must not contain credentials",
            format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or(""))
        )));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

// ---------------------------------------------------------------------------------------------
// Error parsing.

#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// Longest plain-text body quoted in an error.
const MAX_ERROR_BODY: usize = 300;

/// Turns an error answer into a [`ClientError::Api`]: the problem's `title` and `detail` when the
/// body is a problem document, else the status's reason and the body's text on one line.
pub fn parse_error(status: u16, body: &[u8]) -> ClientError {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
        .to_string();
    if let Ok(p) = serde_json::from_slice::<Problem>(body)
        && (p.title.is_some() || p.detail.is_some())
    {
        return ClientError::Api {
            status,
            title: one_line(&p.title.unwrap_or(reason), MAX_ERROR_BODY),
            detail: one_line(&p.detail.unwrap_or_default(), MAX_ERROR_BODY * 2),
        };
    }
    let text = String::from_utf8_lossy(body);
    ClientError::Api {
        status,
        title: reason,
        detail: one_line(&text, MAX_ERROR_BODY),
    }
}

/// Collapses white space (new lines included) and control characters, and cuts to `max` chars.
fn one_line(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0usize;
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
            count += 1;
        }
        for c in word.chars() {
            if count >= max {
                out.push('…');
                return out;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

/// The error and its causes on one line (reqwest hides the interesting part in the causes).
fn transport_error(e: &reqwest::Error) -> ClientError {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    let mut msg = parts.join(": ");
    if e.is_timeout() {
        msg = format!("{msg} (no answer within {} s)", REQUEST_TIMEOUT.as_secs());
    }
    ClientError::Transport(msg)
}

// ---------------------------------------------------------------------------------------------
// The client.

/// An API client for one server, optionally carrying a bearer token. `Debug` hides the token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Serialize)]
struct LoginBody<'a> {
    username: &'a str,
    password: &'a str,
}

#[derive(Serialize)]
struct NameBody<'a> {
    name: &'a str,
}

impl Client {
    /// A client for the server at `base_url` (e.g. `https://parapet.example:8443`).
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        let base = normalize_base_url(base_url)?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("parapet-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| transport_error(&e))?;
        Ok(Client {
            http,
            base,
            token: None,
        })
    }

    /// The same client, sending `token` as a bearer token.
    pub fn with_token(mut self, token: String) -> Client {
        self.token = Some(token);
        self
    }

    /// The normalized base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, segments: &[&str], query: &[(&str, Option<String>)]) -> String {
        api_url(&self.base, segments, query)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(|e| transport_error(&e))?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| transport_error(&e))?;
            Err(parse_error(status, &body))
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = self.send(req).await?;
        let url = resp.url().path().to_string();
        let body = resp.bytes().await.map_err(|e| transport_error(&e))?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Decode(format!("unexpected answer from {url}: {e}")))
    }

    async fn get<T: DeserializeOwned>(&self, url: String) -> Result<T, ClientError> {
        self.json(self.http.get(url)).await
    }

    async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        url: String,
        body: &B,
    ) -> Result<T, ClientError> {
        self.json(self.http.post(url).json(body)).await
    }

    async fn post_empty<T: DeserializeOwned>(&self, url: String) -> Result<T, ClientError> {
        self.json(self.http.post(url)).await
    }

    // -- auth --------------------------------------------------------------------------------

    /// `POST /api/v1/auth/login`. The returned token is not attached to this client.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<LoginResponse, ClientError> {
        self.post(
            self.url(&["auth", "login"], &[]),
            &LoginBody { username, password },
        )
        .await
    }

    /// `POST /api/v1/auth/logout`: ends the session of this client's token.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.send(self.http.post(self.url(&["auth", "logout"], &[])))
            .await
            .map(|_| ())
    }

    /// `GET /api/v1/auth/whoami`.
    pub async fn whoami(&self) -> Result<UserView, ClientError> {
        self.get(self.url(&["auth", "whoami"], &[])).await
    }

    // -- tenants -----------------------------------------------------------------------------

    /// `GET /api/v1/tenants`: one page.
    pub async fn list_tenants(
        &self,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<Tenant>, ClientError> {
        self.get(self.url(&["tenants"], &page_query(limit, cursor)))
            .await
    }

    /// All tenants, following cursors.
    pub async fn all_tenants(&self) -> Result<Vec<Tenant>, ClientError> {
        collect_pages(None, |c| async move {
            self.list_tenants(None, c.as_deref()).await
        })
        .await
    }

    /// `POST /api/v1/tenants`.
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant, ClientError> {
        self.post(self.url(&["tenants"], &[]), &NameBody { name })
            .await
    }

    /// `GET /api/v1/tenants/{tenant}` (a name or an id).
    pub async fn get_tenant(&self, tenant: &str) -> Result<Tenant, ClientError> {
        self.get(self.url(&["tenants", tenant], &[])).await
    }

    /// `POST /api/v1/tenants/{tenant}/suspend`.
    pub async fn suspend_tenant(&self, tenant: &str) -> Result<Tenant, ClientError> {
        self.post_empty(self.url(&["tenants", tenant, "suspend"], &[]))
            .await
    }

    /// `POST /api/v1/tenants/{tenant}/activate`.
    pub async fn activate_tenant(&self, tenant: &str) -> Result<Tenant, ClientError> {
        self.post_empty(self.url(&["tenants", tenant, "activate"], &[]))
            .await
    }

    // -- users -------------------------------------------------------------------------------

    /// `GET /api/v1/tenants/{tenant}/users`: one page.
    pub async fn list_users(
        &self,
        tenant: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<UserView>, ClientError> {
        self.get(self.url(&["tenants", tenant, "users"], &page_query(limit, cursor)))
            .await
    }

    /// All users of `tenant`, following cursors.
    pub async fn all_users(&self, tenant: &str) -> Result<Vec<UserView>, ClientError> {
        collect_pages(None, |c| async move {
            self.list_users(tenant, None, c.as_deref()).await
        })
        .await
    }

    /// `POST /api/v1/tenants/{tenant}/users`.
    pub async fn create_user(&self, tenant: &str, user: &NewUser) -> Result<UserView, ClientError> {
        self.post(self.url(&["tenants", tenant, "users"], &[]), user)
            .await
    }

    /// `POST /api/v1/tenants/{tenant}/users/{username}/disable`.
    pub async fn disable_user(
        &self,
        tenant: &str,
        username: &str,
    ) -> Result<UserView, ClientError> {
        self.post_empty(self.url(&["tenants", tenant, "users", username, "disable"], &[]))
            .await
    }

    /// `POST /api/v1/tenants/{tenant}/users/{username}/enable`.
    pub async fn enable_user(&self, tenant: &str, username: &str) -> Result<UserView, ClientError> {
        self.post_empty(self.url(&["tenants", tenant, "users", username, "enable"], &[]))
            .await
    }

    // -- tokens ------------------------------------------------------------------------------

    /// `POST /api/v1/tokens`: an API token for the calling user.
    pub async fn create_token(&self, token: &NewToken) -> Result<CreatedToken, ClientError> {
        self.post(self.url(&["tokens"], &[]), token).await
    }

    /// `GET /api/v1/tokens`: the caller's live sessions and API tokens (never their secrets).
    pub async fn list_tokens(&self) -> Result<Page<TokenInfo>, ClientError> {
        self.get(self.url(&["tokens"], &[])).await
    }

    /// `DELETE /api/v1/tokens/{id}`: revokes one of the caller's sessions or API tokens.
    pub async fn revoke_token(&self, id: &str) -> Result<(), ClientError> {
        self.send(self.http.delete(self.url(&["tokens", id], &[])))
            .await
            .map(|_| ())
    }

    // -- sessions ----------------------------------------------------------------------------

    /// `GET /api/v1/me/sessions`.
    pub async fn own_sessions(&self) -> Result<Vec<SessionInfo>, ClientError> {
        self.get(self.url(&["me", "sessions"], &[])).await
    }

    /// `GET /api/v1/me/history`.
    pub async fn own_history(&self, limit: u32) -> Result<Vec<AuditRecord>, ClientError> {
        self.get(self.url(&["me", "history"], &[("limit", Some(limit.to_string()))]))
            .await
    }

    /// `GET /api/v1/tenants/{tenant}/sessions`.
    pub async fn tenant_sessions(
        &self,
        tenant: &str,
        user: Option<&str>,
        all_kinds: bool,
    ) -> Result<Vec<SessionInfo>, ClientError> {
        self.get(self.url(
            &["tenants", tenant, "sessions"],
            &[
                ("user", user.map(str::to_string)),
                ("all_kinds", all_kinds.then(|| "true".to_string())),
            ],
        ))
        .await
    }

    /// `POST /api/v1/tenants/{tenant}/users/{username}/revoke-sessions`: how many were revoked.
    pub async fn revoke_user_sessions(
        &self,
        tenant: &str,
        username: &str,
        include_tokens: bool,
    ) -> Result<u64, ClientError> {
        #[derive(Deserialize)]
        struct Revoked {
            revoked: u64,
        }
        let r: Revoked = self
            .post(
                self.url(
                    &["tenants", tenant, "users", username, "revoke-sessions"],
                    &[],
                ),
                &serde_json::json!({ "include_tokens": include_tokens }),
            )
            .await?;
        Ok(r.revoked)
    }

    /// `DELETE /api/v1/tenants/{tenant}/sessions/{id}`.
    pub async fn revoke_session(&self, tenant: &str, id: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .delete(self.url(&["tenants", tenant, "sessions", id], &[])),
        )
        .await
        .map(|_| ())
    }

    // -- audit -------------------------------------------------------------------------------

    /// `GET /api/v1/tenants/{tenant}/audit`: one page.
    pub async fn search_audit(
        &self,
        tenant: &str,
        query: &AuditQuery,
        cursor: Option<&str>,
    ) -> Result<Page<AuditRecord>, ClientError> {
        self.get(self.url(&["tenants", tenant, "audit"], &audit_query(query, cursor)))
            .await
    }

    /// Audit records of `tenant` matching `query`, following cursors until `max` records (all
    /// when `None`).
    pub async fn all_audit(
        &self,
        tenant: &str,
        query: &AuditQuery,
        max: Option<usize>,
    ) -> Result<Vec<AuditRecord>, ClientError> {
        collect_pages(max, |c| async move {
            self.search_audit(tenant, query, c.as_deref()).await
        })
        .await
    }

    // -- audit log ---------------------------------------------------------------------------

    async fn text(&self, url: String) -> Result<String, ClientError> {
        let resp = self.send(self.http.get(url)).await?;
        resp.text().await.map_err(|e| transport_error(&e))
    }

    /// `GET /api/v1/tenants/{tenant}/reports/access`.
    pub async fn access_report(
        &self,
        tenant: &str,
        since: Option<&str>,
        until: Option<&str>,
        inactive_days: Option<u32>,
    ) -> Result<AccessReport, ClientError> {
        self.get(self.url(
            &["tenants", tenant, "reports", "access"],
            &[
                ("since", since.map(str::to_string)),
                ("until", until.map(str::to_string)),
                ("inactive_days", inactive_days.map(|d| d.to_string())),
            ],
        ))
        .await
    }

    /// `GET /api/v1/audit/public-key`: the log's verifier key (no credential needed).
    pub async fn audit_public_key(&self) -> Result<String, ClientError> {
        Ok(self
            .text(self.url(&["audit", "public-key"], &[]))
            .await?
            .trim()
            .to_string())
    }

    /// `GET /api/v1/audit/checkpoint`: the latest signed checkpoint, or that of `size`.
    pub async fn audit_checkpoint(&self, size: Option<u64>) -> Result<String, ClientError> {
        self.text(self.url(
            &["audit", "checkpoint"],
            &[("size", size.map(|s| s.to_string()))],
        ))
        .await
    }

    /// `GET /api/v1/audit/checkpoints`: signed checkpoints after a tree size, oldest first.
    pub async fn audit_checkpoints(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<CheckpointInfo>, ClientError> {
        self.get(self.url(
            &["audit", "checkpoints"],
            &[
                ("after", Some(after.to_string())),
                ("limit", Some(limit.to_string())),
            ],
        ))
        .await
    }

    /// `GET /api/v1/audit/proofs/inclusion`.
    pub async fn audit_inclusion(
        &self,
        index: u64,
        size: Option<u64>,
    ) -> Result<InclusionProof, ClientError> {
        self.get(self.url(
            &["audit", "proofs", "inclusion"],
            &[
                ("index", Some(index.to_string())),
                ("size", size.map(|s| s.to_string())),
            ],
        ))
        .await
    }

    /// `GET /api/v1/audit/proofs/consistency`.
    pub async fn audit_consistency(
        &self,
        from: u64,
        to: Option<u64>,
    ) -> Result<ConsistencyProof, ClientError> {
        self.get(self.url(
            &["audit", "proofs", "consistency"],
            &[
                ("from", Some(from.to_string())),
                ("to", to.map(|t| t.to_string())),
            ],
        ))
        .await
    }

    /// `GET /api/v1/audit/tile/<path>`: a hash tile (`path` like `0/x001/234.p/5`).
    pub async fn audit_tile(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let resp = self
            .send(
                self.http
                    .get(format!("{}/api/v1/audit/tile/{path}", self.base)),
            )
            .await?;
        Ok(resp
            .bytes()
            .await
            .map_err(|e| transport_error(&e))?
            .to_vec())
    }

    /// `GET /api/v1/audit/entries`: one page of an export.
    pub async fn audit_entries(&self, q: &EntriesQuery) -> Result<EntriesPage, ClientError> {
        let url = self.url(
            &["audit", "entries"],
            &[
                ("from", q.from.map(|v| v.to_string())),
                ("to", q.to.map(|v| v.to_string())),
                ("limit", q.limit.map(|v| v.to_string())),
                ("tenant", q.tenant.clone()),
                ("proofs", q.proofs.then(|| "true".to_string())),
                ("size", q.size.map(|v| v.to_string())),
            ],
        );
        let resp = self.send(self.http.get(url)).await?;
        let header = |name: &str| -> Option<u64> {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        };
        let size = header("parapet-tree-size").ok_or_else(|| {
            ClientError::Decode("the export answer has no Parapet-Tree-Size header".into())
        })?;
        let next_from = header("parapet-next-from");
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&e))?
            .to_vec();
        Ok(EntriesPage {
            body,
            size,
            next_from,
        })
    }

    // -- operations --------------------------------------------------------------------------

    /// `GET /healthz`: the body of a healthy answer.
    pub async fn healthz(&self) -> Result<String, ClientError> {
        let resp = self
            .send(self.http.get(format!("{}/healthz", self.base)))
            .await?;
        resp.text().await.map_err(|e| transport_error(&e))
    }

    /// `GET /readyz`: ready (200) or not (503); other statuses are errors.
    pub async fn readyz(&self) -> Result<Readiness, ClientError> {
        let resp = self
            .http
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| transport_error(&e))?;
        match status {
            200 | 503 => Ok(Readiness {
                ready: status == 200,
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
            _ => Err(parse_error(status, &body)),
        }
    }

    /// `GET /metrics`: the Prometheus text exposition.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let resp = self
            .send(self.http.get(format!("{}/metrics", self.base)))
            .await?;
        resp.text().await.map_err(|e| transport_error(&e))
    }
}

fn page_query(limit: Option<u32>, cursor: Option<&str>) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("limit", limit.map(|l| l.to_string())),
        ("cursor", cursor.map(str::to_string)),
    ]
}

fn audit_query(q: &AuditQuery, cursor: Option<&str>) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("action", q.action.clone()),
        ("actor", q.actor.clone()),
        ("target", q.target.clone()),
        ("since", q.since.clone()),
        ("until", q.until.clone()),
        ("limit", q.limit.map(|l| l.to_string())),
        ("cursor", cursor.map(str::to_string)),
    ]
}

/// Fetches pages with `fetch(cursor)` from the first (`None`) until the server gives no next
/// cursor or `max` items are collected (the result is cut to `max`).
pub async fn collect_pages<T, F, Fut>(
    max: Option<usize>,
    mut fetch: F,
) -> Result<Vec<T>, ClientError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, ClientError>>,
{
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = fetch(cursor.clone()).await?;
        out.extend(page.items);
        if let Some(m) = max
            && out.len() >= m
        {
            out.truncate(m);
            return Ok(out);
        }
        match page.next_cursor {
            None => return Ok(out),
            Some(next) if next.is_empty() => return Ok(out),
            Some(next) => {
                if cursor.as_deref() == Some(next.as_str()) {
                    return Err(ClientError::Decode(format!(
                        "the server returned the same cursor twice ({next:?})"
                    )));
                }
                cursor = Some(next);
            }
        }
    }
    Err(ClientError::Decode(format!(
        "the listing did not end within {MAX_PAGES} pages"
    )))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use super::*;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// Runs a future that never waits (the fetchers in these tests answer at once).
    fn ready<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("future not ready"),
        }
    }

    #[test]
    fn encodes_path_segments_and_queries() {
        assert_eq!(encode_component("acme"), "acme");
        assert_eq!(encode_component("alice@acme"), "alice%40acme");
        assert_eq!(encode_component("a/b?c#d e%"), "a%2Fb%3Fc%23d%20e%25");
        assert_eq!(encode_component("ü"), "%C3%BC");
        assert_eq!(encode_component("A-z_0.9~"), "A-z_0.9~");
        assert_eq!(
            api_url("http://h:1", &["tenants", "../x", "users"], &[]),
            "http://h:1/api/v1/tenants/..%2Fx/users"
        );
        assert_eq!(
            api_url(
                "https://h/p",
                &["tenants"],
                &[
                    ("limit", Some("5".into())),
                    ("cursor", None),
                    ("actor", Some("a&b=c".into()))
                ]
            ),
            "https://h/p/api/v1/tenants?limit=5&actor=a%26b%3Dc"
        );
        let q = AuditQuery {
            action: Some("auth.login".into()),
            limit: Some(10),
            ..AuditQuery::default()
        };
        assert_eq!(
            api_url(
                "http://h",
                &["tenants", "acme", "audit"],
                &audit_query(&q, Some("c1"))
            ),
            "http://h/api/v1/tenants/acme/audit?action=auth.login&limit=10&cursor=c1"
        );
    }

    #[test]
    fn normalizes_base_urls() {
        assert_eq!(
            normalize_base_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_base_url(" https://example.org/parapet/ ").unwrap(),
            "https://example.org/parapet"
        );
        assert!(normalize_base_url("ftp://example.org").is_err());
        assert!(normalize_base_url("example.org").is_err());
        assert!(normalize_base_url("http://h/?x=1").is_err());
        let e = normalize_base_url("http://u:secretpw@h/").unwrap_err();
        assert!(!e.to_string().contains("secretpw"), "{e}");
        assert!(Client::new("not a url").is_err());
    }

    #[test]
    fn parses_problem_documents() {
        let body = br#"{"type":"about:blank","title":"Forbidden","status":403,
            "detail":"role tenant-member may not list users in tenant acme"}"#;
        let e = parse_error(403, body);
        assert_eq!(
            e.to_string(),
            "403 Forbidden: role tenant-member may not list users in tenant acme"
        );
        assert_eq!(e.status(), Some(403));
        // No detail.
        assert_eq!(
            parse_error(404, br#"{"title":"Not Found","status":404}"#).to_string(),
            "404 Not Found"
        );
        // Only a detail: the title falls back to the reason phrase.
        assert_eq!(
            parse_error(409, br#"{"detail":"tenant acme exists"}"#).to_string(),
            "409 Conflict: tenant acme exists"
        );
    }

    #[test]
    fn falls_back_to_the_body_text() {
        let e = parse_error(502, b"upstream\n  went away\r\n");
        assert_eq!(e.to_string(), "502 Bad Gateway: upstream went away");
        let e = parse_error(500, b"");
        assert_eq!(e.to_string(), "500 Internal Server Error");
        // JSON that is not a problem document is quoted as text.
        let e = parse_error(400, br#"{"error":"x"}"#);
        assert_eq!(e.to_string(), r#"400 Bad Request: {"error":"x"}"#);
        // Long bodies are cut, and errors stay on one line.
        let long = "x".repeat(5000);
        let e = parse_error(500, long.as_bytes()).to_string();
        assert!(e.len() < 400 && e.ends_with('…'), "{e}");
        let e = parse_error(599, b"odd");
        assert_eq!(e.to_string(), "599: odd");
    }

    #[test]
    fn decodes_wire_types() {
        let t: Tenant = serde_json::from_str(
            r#"{"id":"0190a0e0-0000-7000-8000-000000000001","name":"acme","kind":"customer",
               "status":"suspended","created_at":"2025-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(t.kind, TenantKind::Customer);
        assert_eq!(t.status, TenantStatus::Suspended);
        let p: Page<Tenant> = serde_json::from_str(r#"{"items":[],"next_cursor":null}"#).unwrap();
        assert!(p.items.is_empty() && p.next_cursor.is_none());
        let r: AuditRecord = serde_json::from_str(
            r#"{"id":7,"time":1700000000000,"tenant":null,
                "actor":{"kind":"anonymous","claimed":"bob@acme"},"action":"auth.login",
                "target":"user:acme/bob","source_ip":"127.0.0.1","user_agent":null,
                "outcome":"failure","details":{"reason":"bad password"}}"#,
        )
        .unwrap();
        assert_eq!(r.actor.label(), "anonymous(bob@acme)");
        assert_eq!(r.outcome, AuditOutcome::Failure);
        let a: AuditActor = serde_json::from_str(r#"{"kind":"robot","x":1}"#).unwrap();
        assert_eq!(a, AuditActor::Other);
        let a: AuditActor = serde_json::from_str(
            r#"{"kind":"user","tenant":"0190a0e0-0000-7000-8000-000000000001",
                "user":"0190a0e0-0000-7000-8000-000000000002","username":"admin"}"#,
        )
        .unwrap();
        assert_eq!(a.label(), "admin");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = Client::new("http://127.0.0.1:1")
            .unwrap()
            .with_token("pps_supersecret".into());
        assert!(!format!("{c:?}").contains("supersecret"));
        let u = NewUser {
            username: "bob".into(),
            password: "hunter2hunter2".into(),
            role: "operator".into(),
        };
        assert!(!format!("{u:?}").contains("hunter2"));
        let t = CreatedToken {
            id: "1".into(),
            token: "ppt_supersecret".into(),
            name: "ci".into(),
            scopes: vec!["read".into()],
            expires_at: None,
        };
        assert!(!format!("{t:?}").contains("supersecret"));
    }

    #[test]
    fn follows_cursors() {
        let pages = [
            (None, vec![1, 2], Some("a")),
            (Some("a"), vec![3], Some("b")),
            (Some("b"), vec![4, 5], None),
        ];
        let fetch = |c: Option<String>| {
            let found = pages
                .iter()
                .find(|(want, _, _)| want.map(str::to_string) == c)
                .map(|(_, items, next)| Page {
                    items: items.clone(),
                    next_cursor: next.map(str::to_string),
                });
            async move { found.ok_or_else(|| ClientError::Decode("bad cursor".into())) }
        };
        assert_eq!(
            ready(collect_pages(None, fetch)).unwrap(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(ready(collect_pages(Some(3), fetch)).unwrap(), vec![1, 2, 3]);
        assert_eq!(ready(collect_pages(Some(1), fetch)).unwrap(), vec![1]);
        // A server that repeats its cursor does not loop forever.
        let stuck = |_c: Option<String>| async {
            Ok::<_, ClientError>(Page {
                items: vec![0],
                next_cursor: Some("same".to_string()),
            })
        };
        assert!(ready(collect_pages(None, stuck)).is_err());
        // Errors pass through.
        let failing = |_c: Option<String>| async {
            Err::<Page<u8>, _>(parse_error(401, br#"{"title":"Unauthorized"}"#))
        };
        assert_eq!(
            ready(collect_pages(None, failing)).unwrap_err().to_string(),
            "401 Unauthorized"
        );
    }
}
