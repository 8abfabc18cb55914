//! The command-line client: `parapet login`, `logout`, `whoami`, `tenant`, `user`, `token`,
//! `audit`. Every command talks to a server through [`parapet_client`], prints a compact table or
//! sentence (or JSON with `--json`), and fails with one line on standard error.

mod access;
mod account;
mod alerts;
mod approval;
mod asset;
mod audit;
mod backup;
mod backup_agent;
mod backup_server;
pub(crate) use backup_server::duration_secs;
mod config;
mod demo;
mod detect;
mod events;
mod group;
mod incident;
mod kms;
mod ldap;
mod metrics;
mod mfa;
mod notify;
mod oidc;
mod output;
mod plan;
mod session;
mod sla;
mod subaccount;

use std::io::BufRead;
use std::str::FromStr;

use anyhow::{Context, anyhow, bail};
use parapet_client::{AuditQuery, Client, ClientError, NewToken, NewUser, Tenant, UserView};
use serde::Serialize;

use self::config::Credentials;
use self::output::{fields, json, note, out, rfc3339_millis, table};

const NOT_LOGGED_IN: &str =
    "not logged in: run 'parapet login --server URL --username NAME' or set PARAPET_TOKEN";

/// A secret given on the command line or in the environment; `Debug` hides it.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// Options every client command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// The server's base URL, e.g. https://parapet.example:8443 (overrides the one stored by
    /// `parapet login`).
    #[arg(long, env = "PARAPET_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// A session or API token to use instead of the stored one (prefer the environment variable:
    /// command lines are visible to other local users).
    #[arg(
        long,
        env = "PARAPET_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<Secret>,
    /// Print machine-readable JSON instead of a table or sentence.
    #[arg(long)]
    pub json: bool,
}

/// A command that takes only the common options.
#[derive(Debug, Clone, clap::Args)]
pub struct Plain {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The client commands (flattened into `parapet` beside `serve`).
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Log in to a server and store the session token for the other commands.
    ///
    /// The password is read from standard input with --password-stdin (its first line), else
    /// prompted for without echo. The session is stored in
    /// $PARAPET_CONFIG_DIR/credentials.json (else $XDG_CONFIG_HOME/parapet/, else
    /// ~/.config/parapet/), readable by you only.
    Login(LoginArgs),
    /// End the stored session on the server and forget it.
    Logout(Plain),
    /// Show the user the current credentials belong to.
    Whoami(Plain),
    /// Manage tenants: create, list, show, suspend, activate.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage a tenant's users: create, list, disable, enable.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens for scripts and integrations.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Work with the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Log-in sessions: list and end them; your account history.
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// The asset inventory: hosts, VMs, devices, databases, with their software and health.
    #[command(subcommand)]
    Asset(asset::AssetCommand),
    /// Notification: channels (e-mail, signed webhooks, SMS), the outbox and dead letters.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// Account policies: lockout, throttling, password rules, dormancy (per tenant).
    #[command(subcommand)]
    Policy(account::PolicyCommand),
    /// Second factors: enrol an authenticator app (TOTP), confirm, remove; reset a user's.
    #[command(subcommand)]
    Mfa(mfa::MfaCommand),
    /// Detection rules (Sigma): evaluate them offline against a file of events.
    #[command(subcommand)]
    Detect(detect::DetectCommand),
    /// Security events: search them, show one, set the tenant's retention.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Send JSON-lines files of events to a tenant (in batches, each with an idempotency key,
    /// so running it again after a failure stores nothing twice).
    Ingest(events::IngestArgs),
    /// Detection rules stored on the server (Sigma): import, add, list, enable, disable, test.
    #[command(subcommand)]
    Rules(alerts::RulesCommand),
    /// Alerts raised by the detection rules: list, show, ack, close, suppress.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Metrics scraped from Prometheus exposition endpoints: targets, queries, threshold and
    /// baseline rules.
    #[command(subcommand)]
    Metrics(metrics::MetricsCommand),
    /// Key management: seal and unseal, keys, encrypt/decrypt, data keys, signatures, MACs.
    #[command(subcommand)]
    Kms(kms::KmsCommand),
    /// Approval requests: new users and role changes decided by another administrator.
    #[command(subcommand)]
    Approval(approval::ApprovalCommand),
    /// OpenID Connect: applications that log users in with Parapet, and the issuer's keys.
    #[command(subcommand)]
    Oidc(oidc::OidcCommand),
    /// Just-in-time privileged access: ask for a role for a time, list and revoke grants.
    #[command(subcommand)]
    Access(access::AccessCommand),
    /// Groups of a tenant: members hold the group's roles besides their own.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// LDAP v3 directory of a tenant: set, show, test, rm.
    #[command(subcommand)]
    Ldap(ldap::LdapCommand),
    /// Backups: offline on a repository (init, run, snapshots, restore, verify, prune, copy,
    /// restore-test) and the server's policies, reports and compliance (policy, compliance,
    /// reports, findings).
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Security incidents (X.1642 8.6): open, move through the steps with a responsible person
    /// each, notes, tasks, SLA clock, reports.
    #[command(subcommand)]
    Incident(incident::IncidentCommand),
    /// Emergency response plans (X.1642 8.9): versions, drills, reviews.
    #[command(subcommand)]
    Plan(plan::PlanCommand),
    /// Demonstrations against a demo server (`serve --demo`): `demo attack` sends a scripted
    /// attack so that live alerts show in the console.
    #[command(subcommand)]
    Demo(demo::DemoCommand),
    /// SLA policies (X.1642 7.2.2.3): incident timer targets, service hours, auto-open.
    #[command(subcommand)]
    Sla(sla::SlaCommand),
    /// Playbooks (X.1642 8.6.3): disposal procedures chosen by incident category/type.
    #[command(subcommand)]
    Playbook(sla::PlaybookCommand),
    /// Drills and tests of the emergency response plans (X.1642 8.9.2): record, list.
    #[command(subcommand)]
    Drill(plan::DrillCommand),
}

#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {
    /// The server's base URL, e.g. https://parapet.example:8443.
    #[arg(long, env = "PARAPET_SERVER", value_name = "URL")]
    pub server: String,
    /// Who to log in as: `admin` for provider staff, `alice@acme` for a tenant's user.
    #[arg(long, value_name = "NAME")]
    pub username: String,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
    /// The code of your authenticator app (or a recovery code), if your account has one.
    #[arg(long, value_name = "CODE")]
    pub otp: Option<String>,
    /// Print the result as JSON (without the token).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum TenantCommand {
    /// Create a customer tenant.
    Create(TenantArgs),
    /// List all tenants.
    List(Plain),
    /// Show one tenant.
    Show(TenantArgs),
    /// Suspend a tenant: its users can no longer log in or use their tokens.
    Suspend(TenantArgs),
    /// Activate a suspended tenant again.
    Activate(TenantArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TenantArgs {
    /// The tenant's name (or id).
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create a user in a tenant.
    ///
    /// Roles in the provider tenant: security-admin, operator, key-custodian,
    /// incident-responder, change-approver, auditor. Roles in customer tenants: tenant-admin,
    /// tenant-member, tenant-auditor.
    Create(UserCreateArgs),
    /// List a tenant's users.
    List(UserListArgs),
    /// Disable a user: they can no longer log in, and their sessions and tokens stop working.
    Disable(UserArgs),
    /// Enable a disabled user again.
    Enable(UserArgs),
    /// List a tenant's accounts with their log-in state: failures, lockouts, password age.
    Accounts(UserListArgs),
    /// Unlock an account locked by failed log-ins.
    Unlock(UserArgs),
    /// Change your own password (needs the current one; works also when it has expired).
    Password(account::PasswordArgs),
    /// Disable dormant accounts (and delete expired ones) in every tenant now (provider
    /// security administrators; the server also does it periodically).
    SweepDormant(Plain),
    /// Account audit report: dormant, over-privileged, orphaned and locked accounts.
    Report(account::ReportArgs),
    /// Your sub-accounts: list, change a role (within yours), disable.
    #[command(subcommand)]
    SubAccount(subaccount::SubAccountCommand),
}

#[derive(Debug, Clone, clap::Args)]
pub struct UserCreateArgs {
    /// The tenant to create the user in.
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The new user's name (without `@tenant`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The user's role (see above).
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// Read the new user's password from the first line of standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
    /// Create a sub-account of the logged-in account (its main account), in its own tenant:
    /// the role may give nothing the main account does not hold, and disabling the main
    /// account disables it.
    #[arg(long)]
    pub parent: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct UserListArgs {
    /// The tenant whose users to list.
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct UserArgs {
    /// The user's tenant.
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The user's name (without `@tenant`).
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token for yourself; it is printed once and cannot be shown again.
    Create(TokenCreateArgs),
    /// List your live sessions and API tokens (never their secrets).
    List(TokenListArgs),
    /// Revoke one of your sessions or API tokens by its id.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenListArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenRevokeArgs {
    /// The id shown by `parapet token list`.
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenCreateArgs {
    /// A name to recognize the token by.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// What the token may do (repeat for several; the server's default, read and write, when
    /// absent). `ingest` only sends events (for log shippers and `parapet ingest`); `backup`
    /// only reports backups (`parapet backup run --report-to`).
    #[arg(long = "scope", value_name = "SCOPE", value_parser = ["read", "write", "ingest", "backup"])]
    pub scopes: Vec<String>,
    /// Lifetime in seconds (the server's default when absent).
    #[arg(long, value_name = "SECS")]
    pub expires_in: Option<u64>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List a tenant's audit records, newest first, optionally filtered.
    Search(AuditSearchArgs),
    /// Print the log's public key (needs no log-in); --pin remembers it for verify and prove.
    PublicKey(audit::PublicKeyArgs),
    /// Print the latest signed checkpoint (save it to verify an export later).
    Checkpoint(audit::CheckpointArgs),
    /// Write records as JSON lines in index order, exactly as they are hashed into the log.
    Export(audit::ExportArgs),
    /// Fetch and check the inclusion proof of one record against a signed checkpoint.
    Prove(audit::ProveArgs),
    /// Verify an export offline: the checkpoint's signature, the entries against its root, and
    /// that the log only grew since earlier checkpoints. Exit status 0 only if all holds.
    Verify(audit::VerifyArgs),
    /// Check that the log still extends saved checkpoints (files or witness directories): proves
    /// with the server's consistency proofs that history was only appended to.
    Consistency(audit::ConsistencyArgs),
    /// Account and access report: log-ins, failed attempts, inactive accounts, privilege
    /// changes (X.1642 8.1.1(5)).
    Report(audit::ReportArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct AuditSearchArgs {
    /// The tenant whose trail to search.
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// Only records of this action, e.g. `auth.login` or `tenant.create`.
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
    /// Only records of this actor (a username).
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
    /// Only records about this target, e.g. `user:acme/alice`.
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// Only records at or after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only records before this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// At most this many records.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs one client command.
pub async fn run(cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Login(a) => login(a).await,
        ClientCommand::Logout(a) => logout(a.common).await,
        ClientCommand::Whoami(a) => whoami(a.common).await,
        ClientCommand::Tenant(c) => tenant(c).await,
        ClientCommand::User(c) => user(c).await,
        ClientCommand::Token(TokenCommand::Create(a)) => token_create(a).await,
        ClientCommand::Token(TokenCommand::List(a)) => token_list(a).await,
        ClientCommand::Token(TokenCommand::Revoke(a)) => token_revoke(a).await,
        ClientCommand::Session(c) => session::run(c).await,
        ClientCommand::Asset(c) => asset::run(c).await,
        ClientCommand::Notify(c) => notify::run(c).await,
        ClientCommand::Policy(c) => account::policy(c).await,
        ClientCommand::Mfa(c) => mfa::run(c).await,
        ClientCommand::Detect(c) => detect::run(c),
        ClientCommand::Events(c) => events::run(c).await,
        ClientCommand::Ingest(a) => events::ingest(a).await,
        ClientCommand::Rules(c) => alerts::rules(c).await,
        ClientCommand::Alerts(c) => alerts::alerts(c).await,
        ClientCommand::Metrics(c) => metrics::run(c).await,
        ClientCommand::Kms(c) => kms::run(c).await,
        ClientCommand::Approval(c) => approval::run(c).await,
        ClientCommand::Oidc(c) => oidc::run(c).await,
        ClientCommand::Access(c) => access::run(c).await,
        ClientCommand::Ldap(c) => ldap::run(c).await,
        ClientCommand::Group(c) => group::run(c).await,
        ClientCommand::Backup(c) => backup::run(c).await,
        ClientCommand::Incident(c) => incident::run(c).await,
        ClientCommand::Plan(c) => plan::run(c).await,
        ClientCommand::Demo(c) => demo::run(c).await,
        ClientCommand::Sla(c) => sla::run(c).await,
        ClientCommand::Playbook(c) => sla::run_playbook(c).await,
        ClientCommand::Drill(c) => plan::run_drill(c).await,
        ClientCommand::Audit(AuditCommand::Search(a)) => audit_search(a).await,
        ClientCommand::Audit(AuditCommand::PublicKey(a)) => audit::public_key(a).await,
        ClientCommand::Audit(AuditCommand::Checkpoint(a)) => audit::checkpoint(a).await,
        ClientCommand::Audit(AuditCommand::Export(a)) => audit::export(a).await,
        ClientCommand::Audit(AuditCommand::Prove(a)) => audit::prove(a).await,
        ClientCommand::Audit(AuditCommand::Verify(a)) => audit::verify(a),
        ClientCommand::Audit(AuditCommand::Consistency(a)) => audit::consistency(a).await,
        ClientCommand::Audit(AuditCommand::Report(a)) => audit::report(a).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenSource {
    /// `--token` or `PARAPET_TOKEN`.
    Given,
    /// The credentials file.
    Stored,
}

/// A client with a token, and where the token came from.
struct Session {
    client: Client,
    source: TokenSource,
    json: bool,
}

impl Session {
    /// Resolves the server and token from the options, the environment and the stored login.
    fn open(common: &CommonArgs) -> anyhow::Result<Session> {
        let server = common
            .server
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let token = common
            .token
            .as_ref()
            .map(|t| t.0.trim().to_string())
            .filter(|t| !t.is_empty());
        let stored = match (server, &token) {
            (Some(_), Some(_)) => None,
            _ => config::load(&config::credentials_path()?)?,
        };
        let server = match (server, &stored) {
            (Some(s), _) => s.to_string(),
            (None, Some(c)) => c.server.clone(),
            (None, None) if token.is_some() => {
                bail!("no server given: pass --server URL or set PARAPET_SERVER")
            }
            (None, None) => bail!(NOT_LOGGED_IN),
        };
        let client = Client::new(&server)?;
        let (token, source) = match (token, stored) {
            (Some(t), _) => (t, TokenSource::Given),
            (None, Some(c)) => {
                // Never send the stored token to another server than the one it came from.
                let stored_server = parapet_client::normalize_base_url(&c.server).ok();
                if stored_server.as_deref() != Some(client.base_url()) {
                    bail!(
                        "not logged in to {}: the stored login is for {}; run 'parapet login \
                         --server {} --username NAME' or set PARAPET_TOKEN",
                        client.base_url(),
                        c.server,
                        client.base_url()
                    );
                }
                (c.token, TokenSource::Stored)
            }
            (None, None) => bail!(NOT_LOGGED_IN),
        };
        Ok(Session {
            client: client.with_token(token),
            source,
            json: common.json,
        })
    }

    /// Like [`open`](Self::open), but works without any credential (for public endpoints).
    fn open_anonymous(common: &CommonArgs) -> anyhow::Result<Session> {
        match Session::open(common) {
            Ok(s) => Ok(s),
            Err(e) => {
                let server = common
                    .server
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty());
                match server {
                    Some(server) => Ok(Session {
                        client: Client::new(server)?,
                        source: TokenSource::Given,
                        json: common.json,
                    }),
                    None => Err(e),
                }
            }
        }
    }

    /// An API error, with a hint when the stored session is no longer accepted.
    fn fail(&self, e: ClientError) -> anyhow::Error {
        if e.status() == Some(401) && self.source == TokenSource::Stored {
            anyhow!(
                "{e} (the stored session has ended: run 'parapet login --server {} --username \
                 NAME' again)",
                self.client.base_url()
            )
        } else {
            e.into()
        }
    }
}

/// Reads a password: the first line of standard input, or a prompt without echo.
fn read_password(from_stdin: bool, prompt: &str, confirm: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        let n = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        if n == 0 {
            bail!("no password on standard input");
        }
        if line.ends_with('\n') {
            line.pop();
            if line.ends_with('\r') {
                line.pop();
            }
        }
        line
    } else {
        let p = rpassword::prompt_password(prompt)
            .context("cannot read the password (use --password-stdin without a terminal)")?;
        if confirm {
            let again = rpassword::prompt_password("Repeat the password: ")
                .context("cannot read the password")?;
            if again != p {
                bail!("the passwords do not match");
            }
        }
        p
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

// ---------------------------------------------------------------------------------------------
// Commands.

#[derive(Serialize)]
struct LoginOutput<'a> {
    server: &'a str,
    username: &'a str,
    expires_at: &'a str,
    user: &'a UserView,
}

async fn login(a: LoginArgs) -> anyhow::Result<()> {
    let path = config::credentials_path()?;
    let client = Client::new(&a.server)?;
    let password = read_password(a.password_stdin, "Password: ", false)?;
    let resp = match &a.otp {
        Some(otp) => client.login_with_otp(&a.username, &password, otp).await,
        None => client.login(&a.username, &password).await,
    }
    .with_context(|| {
        format!(
            "cannot log in to {} as {}",
            client.base_url(),
            output::clean(&a.username)
        )
    })?;
    drop(password);
    let creds = Credentials {
        server: client.base_url().to_string(),
        username: a.username.clone(),
        token: resp.token.clone(),
        expires_at: resp.expires_at.clone(),
    };
    config::save(&path, &creds)?;
    if resp.mfa_enrolment_required {
        output::note(
            "This account must log in with a second factor. Enrol one now: `parapet mfa enrol`, \
             then `parapet mfa confirm CODE`, then log in again with --otp. Until then this \
             session may do nothing else.",
        );
    }
    if a.json {
        json(&LoginOutput {
            server: client.base_url(),
            username: &a.username,
            expires_at: &resp.expires_at,
            user: &resp.user,
        })
    } else {
        out(&format!(
            "Logged in to {} as {}\n",
            client.base_url(),
            output::clean(&a.username)
        ))
    }
}

async fn logout(common: CommonArgs) -> anyhow::Result<()> {
    let s = Session::open(&common)?;
    let ended_before = match s.client.logout().await {
        Ok(()) => false,
        // The session had already ended (expired, revoked): forget it all the same.
        Err(e) if e.status() == Some(401) && s.source == TokenSource::Stored => true,
        Err(e) => return Err(s.fail(e)),
    };
    let removed = if s.source == TokenSource::Stored {
        config::remove(&config::credentials_path()?)?
    } else {
        false
    };
    if s.json {
        json(&serde_json::json!({
            "server": s.client.base_url(),
            "logged_out": true,
            "session_had_ended": ended_before,
            "credentials_removed": removed,
        }))
    } else if ended_before {
        out(&format!(
            "Logged out of {} (the session had already ended)\n",
            s.client.base_url()
        ))
    } else {
        out(&format!("Logged out of {}\n", s.client.base_url()))
    }
}

async fn whoami(common: CommonArgs) -> anyhow::Result<()> {
    let s = Session::open(&common)?;
    let me = s.client.whoami().await.map_err(|e| s.fail(e))?;
    if s.json {
        return json(&me);
    }
    out(&fields(&[
        ("login", me.login.clone()),
        ("tenant", me.tenant.clone()),
        ("role", me.role.clone()),
        ("status", me.status.to_string()),
        ("server", s.client.base_url().to_string()),
        (
            "last login",
            me.last_login_at.clone().unwrap_or_else(|| "-".into()),
        ),
        ("user id", me.id.to_string()),
    ]))
}

fn tenant_fields(t: &Tenant) -> String {
    fields(&[
        ("name", t.name.clone()),
        ("kind", t.kind.to_string()),
        ("status", t.status.to_string()),
        ("created", t.created_at.clone()),
        ("id", t.id.to_string()),
    ])
}

async fn tenant(cmd: TenantCommand) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::List(a) => {
            let s = Session::open(&a.common)?;
            let tenants = s.client.all_tenants().await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&tenants);
            }
            let rows: Vec<Vec<String>> = tenants
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.kind.to_string(),
                        t.status.to_string(),
                        t.created_at.clone(),
                        t.id.to_string(),
                    ]
                })
                .collect();
            out(&table(&["NAME", "KIND", "STATUS", "CREATED", "ID"], &rows))
        }
        TenantCommand::Create(a) => {
            let s = Session::open(&a.common)?;
            let t = s
                .client
                .create_tenant(&a.name)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&t);
            }
            out(&format!(
                "Created tenant {} (id {})\n",
                output::clean(&t.name),
                t.id
            ))
        }
        TenantCommand::Show(a) => {
            let s = Session::open(&a.common)?;
            let t = s.client.get_tenant(&a.name).await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&t);
            }
            out(&tenant_fields(&t))
        }
        TenantCommand::Suspend(a) => {
            let s = Session::open(&a.common)?;
            let t = s
                .client
                .suspend_tenant(&a.name)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&t);
            }
            out(&format!(
                "Tenant {} is {}\n",
                output::clean(&t.name),
                t.status
            ))
        }
        TenantCommand::Activate(a) => {
            let s = Session::open(&a.common)?;
            let t = s
                .client
                .activate_tenant(&a.name)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&t);
            }
            out(&format!(
                "Tenant {} is {}\n",
                output::clean(&t.name),
                t.status
            ))
        }
    }
}

async fn user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Accounts(a) => account::accounts(a).await,
        UserCommand::Unlock(a) => account::unlock(a).await,
        UserCommand::Password(a) => account::password(a).await,
        UserCommand::SweepDormant(a) => account::sweep(a.common).await,
        UserCommand::Report(a) => account::report(a).await,
        UserCommand::SubAccount(c) => subaccount::run(c).await,
        UserCommand::List(a) => {
            let s = Session::open(&a.common)?;
            let users = s.client.all_users(&a.tenant).await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&users);
            }
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    vec![
                        u.username.clone(),
                        u.login.clone(),
                        u.role.clone(),
                        u.status.to_string(),
                        u.last_login_at.clone().unwrap_or_else(|| "-".into()),
                        u.created_at.clone(),
                    ]
                })
                .collect();
            out(&table(
                &[
                    "USERNAME",
                    "LOGIN",
                    "ROLE",
                    "STATUS",
                    "LAST LOGIN",
                    "CREATED",
                ],
                &rows,
            ))
        }
        UserCommand::Create(a) => {
            let s = Session::open(&a.common)?;
            let password = read_password(
                a.password_stdin,
                &format!("Password for {}: ", output::clean(&a.name)),
                true,
            )?;
            let new = NewUser {
                username: a.name.clone(),
                password,
                role: a.role.clone(),
            };
            let u = if a.parent {
                s.client.create_sub_account(&new).await
            } else {
                s.client.create_user(&a.tenant, &new).await
            }
            .map_err(|e| s.fail(e))?;
            drop(new);
            if s.json {
                return json(&u);
            }
            out(&format!(
                "Created user {} with role {}\n",
                output::clean(&u.login),
                output::clean(&u.role)
            ))
        }
        UserCommand::Disable(a) => {
            let s = Session::open(&a.common)?;
            let u = s
                .client
                .disable_user(&a.tenant, &a.name)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&u);
            }
            out(&format!(
                "User {} is {}\n",
                output::clean(&u.login),
                u.status
            ))
        }
        UserCommand::Enable(a) => {
            let s = Session::open(&a.common)?;
            let u = s
                .client
                .enable_user(&a.tenant, &a.name)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&u);
            }
            out(&format!(
                "User {} is {}\n",
                output::clean(&u.login),
                u.status
            ))
        }
    }
}

async fn token_create(a: TokenCreateArgs) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let req = NewToken {
        name: a.name.clone(),
        scopes: if a.scopes.is_empty() {
            None
        } else {
            let mut scopes = a.scopes.clone();
            scopes.dedup();
            Some(scopes)
        },
        expires_in_secs: a.expires_in,
    };
    let t = s.client.create_token(&req).await.map_err(|e| s.fail(e))?;
    if s.json {
        return json(&t);
    }
    // The token alone on standard output (so `$(parapet token create ...)` captures it); what it
    // is on standard error.
    out(&format!("{}\n", t.token))?;
    note(&format!(
        "Created token {} (id {}, scopes {}, expires {}). Store it now: it is not shown again.",
        output::clean(&t.name),
        output::clean(&t.id),
        if t.scopes.is_empty() {
            "-".to_string()
        } else {
            output::clean(&t.scopes.join(", "))
        },
        output::clean(t.expires_at.as_deref().unwrap_or("never")),
    ));
    Ok(())
}

async fn token_list(a: TokenListArgs) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let page = s.client.list_tokens().await.map_err(|e| s.fail(e))?;
    if s.json {
        return json(&page.items);
    }
    let rows: Vec<Vec<String>> = page
        .items
        .iter()
        .map(|t| {
            vec![
                output::clean(&t.id),
                output::clean(&t.kind),
                output::clean(&t.name),
                output::clean(&t.scopes.join(",")),
                output::clean(&t.expires_at),
                if t.current { "*".into() } else { String::new() },
            ]
        })
        .collect();
    out(&output::table(
        &["ID", "KIND", "NAME", "SCOPES", "EXPIRES", "CURRENT"],
        &rows,
    ))
}

async fn token_revoke(a: TokenRevokeArgs) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    s.client.revoke_token(&a.id).await.map_err(|e| s.fail(e))?;
    if s.json {
        return json(&serde_json::json!({"revoked": a.id}));
    }
    out(&format!("Revoked {}\n", output::clean(&a.id)))
}

async fn audit_search(a: AuditSearchArgs) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let query = AuditQuery {
        action: a.action.clone(),
        actor: a.actor.clone(),
        target: a.target.clone(),
        since: a.since.clone(),
        until: a.until.clone(),
        limit: Some(a.limit.min(100)),
    };
    let max = usize::try_from(a.limit).unwrap_or(usize::MAX);
    let records = s
        .client
        .all_audit(&a.tenant, &query, Some(max))
        .await
        .map_err(|e| s.fail(e))?;
    if s.json {
        return json(&records);
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                rfc3339_millis(r.time),
                r.actor.label(),
                r.action.clone(),
                r.target.clone(),
                r.outcome.to_string(),
                r.source_ip.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    out(&table(
        &[
            "ID", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "SOURCE",
        ],
        &rows,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Top {
        #[command(subcommand)]
        cmd: ClientCommand,
    }

    #[test]
    fn parses_the_documented_command_lines() {
        let t = Top::try_parse_from([
            "parapet",
            "user",
            "create",
            "--tenant",
            "acme",
            "alice",
            "--role",
            "tenant-admin",
            "--password-stdin",
            "--json",
        ])
        .unwrap();
        match t.cmd {
            ClientCommand::User(UserCommand::Create(a)) => {
                assert_eq!(
                    (a.tenant.as_str(), a.name.as_str(), a.role.as_str()),
                    ("acme", "alice", "tenant-admin")
                );
                assert!(a.password_stdin && a.common.json);
            }
            other => panic!("{other:?}"),
        }
        let t = Top::try_parse_from([
            "parapet",
            "token",
            "create",
            "--name",
            "ci",
            "--scope",
            "read",
            "--scope",
            "write",
            "--expires-in",
            "3600",
            "--token",
            "ppt_x",
        ])
        .unwrap();
        match t.cmd {
            ClientCommand::Token(TokenCommand::Create(a)) => {
                assert_eq!(a.scopes, ["read", "write"]);
                assert_eq!(a.expires_in, Some(3600));
                // The token never shows in debug output.
                assert!(!format!("{a:?}").contains("ppt_x"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Top::try_parse_from([
                "parapet", "token", "create", "--name", "x", "--scope", "admin"
            ])
            .is_err()
        );
        assert!(
            Top::try_parse_from([
                "parapet", "audit", "search", "--tenant", "a", "--limit", "0"
            ])
            .is_err()
        );
        assert!(Top::try_parse_from(["parapet", "tenant", "show"]).is_err());
    }
}
