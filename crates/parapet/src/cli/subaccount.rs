//! `parapet user sub-account list|role|disable`: the logged-in account's sub-accounts (X.1642
//! 8.1.1(4)); create them with `parapet user create --parent`.

use super::output::{clean, json, out, table};
use super::{CommonArgs, Plain, Session};

#[derive(Debug, clap::Subcommand)]
pub enum SubAccountCommand {
    /// List your sub-accounts.
    List(Plain),
    /// Change the role of one of your sub-accounts (never beyond your own privileges).
    Role(RoleArgs),
    /// Disable one of your sub-accounts (its sessions and tokens stop working).
    Disable(NameArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RoleArgs {
    /// The sub-account's name (without `@tenant`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Its new role.
    #[arg(value_name = "ROLE")]
    pub role: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NameArgs {
    /// The sub-account's name (without `@tenant`).
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(cmd: SubAccountCommand) -> anyhow::Result<()> {
    match cmd {
        SubAccountCommand::List(a) => {
            let s = Session::open(&a.common)?;
            let list = s.client.sub_accounts().await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|u| {
                    vec![
                        clean(&u.username),
                        clean(&u.role),
                        u.status.to_string(),
                        clean(&u.created_at),
                    ]
                })
                .collect();
            out(&table(&["NAME", "ROLE", "STATUS", "CREATED"], &rows))
        }
        SubAccountCommand::Role(a) => {
            let s = Session::open(&a.common)?;
            let u = s
                .client
                .set_sub_account_role(&a.name, &a.role)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&u);
            }
            out(&format!(
                "{} now has role {}\n",
                clean(&u.username),
                clean(&u.role)
            ))
        }
        SubAccountCommand::Disable(a) => {
            let s = Session::open(&a.common)?;
            s.client
                .disable_sub_account(&a.name)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({ "disabled": true }));
            }
            out(&format!("{} disabled\n", clean(&a.name)))
        }
    }
}
