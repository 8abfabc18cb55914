//! `parapet access request|list|revoke`: just-in-time privileged access (X.1642 7.2.2.4(3)).
//! Requests are decided with `parapet approval approve|reject` by another administrator.

use parapet_client::AccessGrant;

use super::CommonArgs;
use super::output::{clean, json, note, out, table};

#[derive(Debug, clap::Subcommand)]
pub enum AccessCommand {
    /// Ask for a role for a limited time, with a reason; another administrator approves it
    /// (`parapet approval approve`). The role ends by itself when the time is up.
    Request(RequestArgs),
    /// List a tenant's grants (active, expired, revoked).
    List(TenantArgs),
    /// End a grant early (its holder, or an administrator who may grant the role).
    Revoke(RevokeArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RequestArgs {
    /// The role, e.g. security-admin.
    #[arg(value_name = "ROLE")]
    pub role: String,
    /// Why (kept with the request and the grant).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// How long: seconds, or with a unit (`15m`, `2h`); 1 minute to 8 hours.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub duration: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TenantArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RevokeArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The grant id, from `parapet access list`.
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn rows(list: &[AccessGrant]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|g| {
            vec![
                clean(&g.id),
                clean(&g.username),
                clean(&g.role),
                clean(&g.state),
                clean(&g.expires_at),
                clean(&g.granted_by),
                clean(&g.reason),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "USER",
            "ROLE",
            "STATE",
            "UNTIL",
            "GRANTED BY",
            "REASON",
        ],
        &rows,
    )
}

pub async fn run(cmd: AccessCommand) -> anyhow::Result<()> {
    match cmd {
        AccessCommand::Request(a) => {
            let Some(secs) = parapet_iam::access::parse_duration(&a.duration) else {
                anyhow::bail!(
                    "--duration {:?} is not a duration (e.g. 900, 15m, 2h)",
                    a.duration
                );
            };
            let s = super::Session::open(&a.common)?;
            let r = s
                .client
                .request_access(&a.role, &a.reason, secs)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&r);
            }
            note("Another administrator approves it with `parapet approval approve`.");
            out(&format!(
                "Request {} for role {} ({} s) is {}\n",
                clean(&r.id),
                clean(&r.role),
                secs,
                clean(&r.status)
            ))
        }
        AccessCommand::List(a) => {
            let s = super::Session::open(&a.common)?;
            let list = s
                .client
                .access_grants(&a.tenant)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&list);
            }
            out(&rows(&list))
        }
        AccessCommand::Revoke(a) => {
            let s = super::Session::open(&a.common)?;
            let g = s
                .client
                .revoke_access(&a.tenant, &a.id)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&g);
            }
            out(&format!(
                "Grant {} of {} to {} revoked\n",
                clean(&g.id),
                clean(&g.role),
                clean(&g.username)
            ))
        }
    }
}
