//! `parapet session list | revoke | history`: log-in sessions (X.1642 8.1.2(1)).

use anyhow::bail;
use parapet_client::SessionInfo;

use super::output::{clean, json, out, rfc3339_millis, table};
use super::{CommonArgs, Session};

#[derive(Debug, clap::Subcommand)]
pub enum SessionCommand {
    /// List live sessions: yours, or with --tenant those of a tenant's users (administrators).
    List(ListArgs),
    /// End a session by id, or with --user every session of a user (administrators).
    Revoke(RevokeArgs),
    /// Your account history: log-ins (also failed ones), log-outs, changes to your account.
    History(HistoryArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// A tenant whose users' sessions to list (needs a role that may list its users).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// With --tenant: only this user's.
    #[arg(long, value_name = "NAME", requires = "tenant")]
    pub user: Option<String>,
    /// With --tenant: API tokens too.
    #[arg(long, requires = "tenant")]
    pub all_kinds: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RevokeArgs {
    /// The tenant of the session or user.
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// End every session of this user instead of one.
    #[arg(long, value_name = "NAME", conflicts_with = "id")]
    pub user: Option<String>,
    /// With --user: revoke the user's API tokens too.
    #[arg(long, requires = "user")]
    pub include_tokens: bool,
    /// The session (or token) id, from `parapet session list`.
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// At most this many records.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn rows(list: &[SessionInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                clean(&s.id),
                clean(&s.username),
                clean(&s.kind),
                clean(&s.name),
                clean(&s.last_used_at),
                clean(s.source_ip.as_deref().unwrap_or("-")),
                clean(&s.expires_at),
                if s.current { "*".into() } else { String::new() },
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "USER",
            "KIND",
            "NAME",
            "LAST USED",
            "FROM",
            "EXPIRES",
            "CURRENT",
        ],
        &rows,
    )
}

pub async fn run(cmd: SessionCommand) -> anyhow::Result<()> {
    match cmd {
        SessionCommand::List(a) => {
            let s = Session::open(&a.common)?;
            let list = match &a.tenant {
                Some(t) => s
                    .client
                    .tenant_sessions(t, a.user.as_deref(), a.all_kinds)
                    .await
                    .map_err(|e| s.fail(e))?,
                None => s.client.own_sessions().await.map_err(|e| s.fail(e))?,
            };
            if s.json {
                return json(&list);
            }
            out(&rows(&list))
        }
        SessionCommand::Revoke(a) => {
            let s = Session::open(&a.common)?;
            let revoked = match (&a.user, &a.id) {
                (Some(u), None) => s
                    .client
                    .revoke_user_sessions(&a.tenant, u, a.include_tokens)
                    .await
                    .map_err(|e| s.fail(e))?,
                (None, Some(id)) => {
                    s.client
                        .revoke_session(&a.tenant, id)
                        .await
                        .map_err(|e| s.fail(e))?;
                    1
                }
                _ => bail!("give a session ID, or --user NAME to end all of a user's sessions"),
            };
            if s.json {
                return json(&serde_json::json!({ "revoked": revoked }));
            }
            out(&format!("Revoked {revoked}\n"))
        }
        SessionCommand::History(a) => {
            let s = Session::open(&a.common)?;
            let records = s.client.own_history(a.limit).await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&records);
            }
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    vec![
                        rfc3339_millis(r.time),
                        clean(&r.action),
                        r.outcome.to_string(),
                        clean(r.source_ip.as_deref().unwrap_or("-")),
                        clean(r.user_agent.as_deref().unwrap_or("-")),
                    ]
                })
                .collect();
            out(&table(
                &["TIME", "ACTION", "OUTCOME", "SOURCE", "USER AGENT"],
                &rows,
            ))
        }
    }
}
