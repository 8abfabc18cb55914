//! `parapet approval list|request-user|request-role|approve|reject` (X.1642 8.1.1(2)).

use parapet_client::Approval;

use super::output::{clean, json, out, table};
use super::{CommonArgs, Session, read_password};

#[derive(Debug, clap::Subcommand)]
pub enum ApprovalCommand {
    /// List a tenant's approval requests, pending and decided (the history).
    List(ListArgs),
    /// Request a new user; another administrator approves it.
    RequestUser(RequestArgs),
    /// Request another role for a user; another administrator approves it.
    RequestRole(RequestArgs),
    /// Approve a pending request (not your own); the change is applied at once.
    Approve(DecideArgs),
    /// Reject a pending request (not your own).
    Reject(DecideArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RequestArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The user (without `@tenant`).
    #[arg(value_name = "NAME")]
    pub name: String,
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// Why (kept with the request).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// request-user: read the new user's password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DecideArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The request id, from `parapet approval list`.
    #[arg(value_name = "ID")]
    pub id: String,
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn rows(list: &[Approval]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            vec![
                clean(&a.id),
                clean(&a.kind),
                clean(&a.username),
                clean(&a.role),
                clean(&a.requested_by),
                clean(&a.status),
                clean(a.decided_by.as_deref().unwrap_or("-")),
                clean(&a.reason),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "KIND",
            "USER",
            "ROLE",
            "REQUESTED BY",
            "STATUS",
            "DECIDED BY",
            "REASON",
        ],
        &rows,
    )
}

pub async fn run(cmd: ApprovalCommand) -> anyhow::Result<()> {
    match cmd {
        ApprovalCommand::List(a) => {
            let s = Session::open(&a.common)?;
            let list = s.client.approvals(&a.tenant).await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&list);
            }
            out(&rows(&list))
        }
        ApprovalCommand::RequestUser(a) => request(a, "user-create").await,
        ApprovalCommand::RequestRole(a) => request(a, "role-change").await,
        ApprovalCommand::Approve(a) => decide(a, true).await,
        ApprovalCommand::Reject(a) => decide(a, false).await,
    }
}

async fn decide(a: DecideArgs, approve: bool) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let r = s
        .client
        .decide_approval(&a.tenant, &a.id, approve, a.comment.as_deref())
        .await
        .map_err(|e| s.fail(e))?;
    if s.json {
        return json(&r);
    }
    out(&format!("Request {} {}\n", clean(&r.id), clean(&r.status)))
}

/// Files a request.
pub async fn request(a: RequestArgs, kind: &str) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let password = if kind == "user-create" {
        Some(read_password(
            a.password_stdin,
            "Password of the new user: ",
            true,
        )?)
    } else {
        None
    };
    let r = s
        .client
        .request_approval(
            &a.tenant,
            kind,
            &a.name,
            &a.role,
            password.as_deref(),
            &a.reason,
        )
        .await
        .map_err(|e| s.fail(e))?;
    if s.json {
        return json(&r);
    }
    out(&format!(
        "Request {} filed: {} {} as {}; another administrator must approve it\n",
        clean(&r.id),
        clean(&r.kind),
        clean(&r.username),
        clean(&r.role)
    ))
}
