//! `parapet group list|create|rm|add|remove`: groups of a tenant whose members hold the group's
//! roles besides their own (X.1642 8.1.2(2)).

use parapet_client::GroupInfo;

use super::CommonArgs;
use super::output::{clean, json, out, table};

#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    /// List a tenant's groups with their roles and members.
    List(TenantArgs),
    /// Create a group holding roles (you must be allowed to grant each).
    Create(CreateArgs),
    /// Remove a group: its members lose its roles.
    Rm(NameArgs),
    /// Add a member (grants the group's roles, audited).
    Add(MemberArgs),
    /// Remove a member (revokes the group's roles, audited).
    Remove(MemberArgs),
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
pub struct CreateArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The group's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A role the group holds (repeatable), e.g. tenant-auditor.
    #[arg(long = "role", value_name = "ROLE", required = true)]
    pub roles: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NameArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The group's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct MemberArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The group's name.
    #[arg(value_name = "GROUP")]
    pub name: String,
    /// The user's name.
    #[arg(value_name = "USER")]
    pub user: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn show(g: &GroupInfo) -> String {
    format!(
        "Group {}: roles {}; members {}\n",
        clean(&g.name),
        clean(&g.roles.join(", ")),
        if g.members.is_empty() {
            "(none)".to_string()
        } else {
            clean(&g.members.join(", "))
        }
    )
}

pub async fn run(cmd: GroupCommand) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::List(a) => {
            let s = super::Session::open(&a.common)?;
            let list = s.client.groups(&a.tenant).await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|g| {
                    vec![
                        clean(&g.name),
                        clean(&g.roles.join(",")),
                        clean(&g.members.join(",")),
                    ]
                })
                .collect();
            out(&table(&["GROUP", "ROLES", "MEMBERS"], &rows))
        }
        GroupCommand::Create(a) => {
            let s = super::Session::open(&a.common)?;
            let g = s
                .client
                .create_group(&a.tenant, &a.name, &a.roles)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&g);
            }
            out(&show(&g))
        }
        GroupCommand::Rm(a) => {
            let s = super::Session::open(&a.common)?;
            s.client
                .delete_group(&a.tenant, &a.name)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({"group": a.name, "removed": true}));
            }
            out(&format!("Removed group {}\n", clean(&a.name)))
        }
        GroupCommand::Add(a) => member(a, true).await,
        GroupCommand::Remove(a) => member(a, false).await,
    }
}

async fn member(a: MemberArgs, add: bool) -> anyhow::Result<()> {
    let s = super::Session::open(&a.common)?;
    let g = if add {
        match s
            .client
            .add_group_member(&a.tenant, &a.name, &a.user, None)
            .await
            .map_err(|e| s.fail(e))?
        {
            parapet_client::MemberAdded::Applied(g) => g,
            parapet_client::MemberAdded::Requested(req) => {
                if s.json {
                    return json(&req);
                }
                return out(&format!(
                    "This tenant requires approval: request {} filed; another administrator \
                     decides it with 'parapet approval approve --tenant {} {}'\n",
                    clean(&req.id),
                    clean(&a.tenant),
                    clean(&req.id)
                ));
            }
        }
    } else {
        s.client
            .remove_group_member(&a.tenant, &a.name, &a.user)
            .await
            .map_err(|e| s.fail(e))?
    };
    if s.json {
        return json(&g);
    }
    out(&show(&g))
}
