//! `parapet ldap set|show|test|rm`: a tenant's LDAP v3 directory (X.1642 8.1.2(1)).

use parapet_client::{LdapDirectory, LdapMapping, LdapSettings};

use super::CommonArgs;
use super::output::{clean, json, note, out};

#[derive(Debug, clap::Subcommand)]
pub enum LdapCommand {
    /// Configure (or replace) the tenant's directory. The bind password comes from
    /// PARAPET_LDAP_BIND_PASSWORD or --bind-password-file (never the command line); without
    /// either, the stored one is kept.
    Set(Box<SetArgs>),
    /// Show the tenant's directory (never the bind password).
    Show(TenantArgs),
    /// Test the directory: the service account's bind and search, and with --user that user's
    /// bind (password from PARAPET_LDAP_TEST_PASSWORD), groups and mapped role.
    Test(TestArgs),
    /// Remove the tenant's directory: its directory accounts can no longer log in.
    Rm(TenantArgs),
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
pub struct SetArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// ldap://host:port or ldaps://host:port.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Upgrade ldap:// with StartTLS before binding.
    #[arg(long)]
    pub starttls: bool,
    /// The service account's DN.
    #[arg(long, value_name = "DN")]
    pub bind_dn: String,
    /// The service account's password.
    #[arg(
        long,
        env = "PARAPET_LDAP_BIND_PASSWORD",
        hide_env_values = true,
        hide = true
    )]
    pub bind_password: Option<String>,
    /// A file holding the service account's password (first line).
    #[arg(long, value_name = "FILE")]
    pub bind_password_file: Option<std::path::PathBuf>,
    /// Where users are searched (subtree).
    #[arg(long, value_name = "DN")]
    pub user_base: String,
    /// User filter with {username} (escaped per RFC 4515).
    #[arg(
        long,
        value_name = "FILTER",
        default_value = "(&(objectClass=inetOrgPerson)(uid={username}))"
    )]
    pub user_filter: String,
    /// Where groups are searched (subtree).
    #[arg(long, value_name = "DN")]
    pub group_base: Option<String>,
    /// Group filter with {dn} (the user's DN) or {username}.
    #[arg(long, value_name = "FILTER")]
    pub group_filter: Option<String>,
    /// An attribute of the user's entry listing its groups (memberOf).
    #[arg(long, value_name = "ATTR")]
    pub member_of: Option<String>,
    /// A group-to-role rule `GROUP-DN=ROLE` (repeatable; first match wins).
    #[arg(long = "map", value_name = "GROUP-DN=ROLE")]
    pub map: Vec<String>,
    /// The role of directory users in no mapped group (none: they may not log in).
    #[arg(long, value_name = "ROLE")]
    pub default_role: Option<String>,
    /// Create accounts at the first successful bind.
    #[arg(long)]
    pub provision: bool,
    /// Connection and operation timeout, seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u32>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TestArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// A directory user to try (password from PARAPET_LDAP_TEST_PASSWORD).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    #[arg(
        long,
        env = "PARAPET_LDAP_TEST_PASSWORD",
        hide_env_values = true,
        hide = true
    )]
    pub password: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn show(d: &LdapDirectory) -> String {
    let mut s = format!(
        "Directory of {}\n  url          {}{}\n  bind dn      {} (password sealed by {})\n  \
         users        {} {}\n",
        clean(&d.tenant),
        clean(&d.url),
        if d.starttls { " (StartTLS)" } else { "" },
        clean(&d.bind_dn),
        clean(&d.bind_password_sealed_by),
        clean(&d.user_base),
        clean(&d.user_filter),
    );
    if let (Some(b), Some(f)) = (&d.group_base, &d.group_filter) {
        s.push_str(&format!("  groups       {} {}\n", clean(b), clean(f)));
    }
    if let Some(a) = &d.member_of_attribute {
        s.push_str(&format!("  memberOf     {}\n", clean(a)));
    }
    for m in &d.role_mappings {
        s.push_str(&format!(
            "  map          {} -> {}\n",
            clean(&m.group),
            clean(&m.role)
        ));
    }
    s.push_str(&format!(
        "  default role {}\n  provision    {}\n  updated      {}\n",
        d.default_role
            .as_deref()
            .map(clean)
            .unwrap_or("(none: no log-in)".into()),
        if d.provision { "yes" } else { "no" },
        clean(&d.updated_at)
    ));
    s
}

fn settings(a: &SetArgs) -> anyhow::Result<LdapSettings> {
    let bind_password = match (&a.bind_password_file, &a.bind_password) {
        (Some(f), _) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
            Some(text.lines().next().unwrap_or("").to_string())
        }
        (None, p) => p.clone(),
    };
    let mut role_mappings = vec![];
    for m in &a.map {
        let Some((group, role)) = m.rsplit_once('=') else {
            anyhow::bail!("--map {m:?}: write GROUP-DN=ROLE");
        };
        role_mappings.push(LdapMapping {
            group: group.trim().to_string(),
            role: role.trim().to_string(),
        });
    }
    Ok(LdapSettings {
        url: a.url.clone(),
        starttls: a.starttls,
        bind_dn: a.bind_dn.clone(),
        bind_password,
        user_base: a.user_base.clone(),
        user_filter: a.user_filter.clone(),
        group_base: a.group_base.clone(),
        group_filter: a.group_filter.clone(),
        member_of_attribute: a.member_of.clone(),
        role_mappings,
        default_role: a.default_role.clone(),
        provision: a.provision,
        timeout_secs: a.timeout,
    })
}

pub async fn run(cmd: LdapCommand) -> anyhow::Result<()> {
    match cmd {
        LdapCommand::Set(a) => {
            let body = settings(&a)?;
            let s = super::Session::open(&a.common)?;
            let d = s
                .client
                .ldap_set(&a.tenant, &body)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&d);
            }
            note("Check it with `parapet ldap test`.");
            out(&show(&d))
        }
        LdapCommand::Show(a) => {
            let s = super::Session::open(&a.common)?;
            let d = s.client.ldap_get(&a.tenant).await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&d);
            }
            out(&show(&d))
        }
        LdapCommand::Test(a) => {
            let user = match (&a.user, &a.password) {
                (Some(u), Some(p)) => Some((u.as_str(), p.as_str())),
                (Some(_), None) => {
                    anyhow::bail!("--user needs the password in PARAPET_LDAP_TEST_PASSWORD")
                }
                (None, _) => None,
            };
            let s = super::Session::open(&a.common)?;
            let t = s
                .client
                .ldap_test(&a.tenant, user)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&t);
            }
            let mut text = "Connected: the service account bound and searched.\n".to_string();
            if let Some(ans) = &t.answer {
                text.push_str(&format!("User: {}\n", clean(ans)));
            }
            if let Some(dn) = &t.dn {
                text.push_str(&format!("DN: {}\n", clean(dn)));
            }
            for g in &t.groups {
                text.push_str(&format!("Group: {}\n", clean(g)));
            }
            if t.answer.as_deref() == Some("authenticated") {
                text.push_str(&format!(
                    "Role: {}\n",
                    t.role
                        .as_deref()
                        .map(clean)
                        .unwrap_or("(none: no log-in)".into())
                ));
            }
            out(&text)
        }
        LdapCommand::Rm(a) => {
            let s = super::Session::open(&a.common)?;
            s.client
                .ldap_delete(&a.tenant)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({"tenant": a.tenant, "removed": true}));
            }
            out(&format!("Removed the directory of {}\n", clean(&a.tenant)))
        }
    }
}
