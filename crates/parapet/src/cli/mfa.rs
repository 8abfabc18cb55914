//! `parapet mfa status|enrol|confirm|remove|reset|keys|key-rename|key-rm`: second factors
//! (X.1642 8.1.2(1)); security keys are registered in the console (they need a browser).

use super::output::{clean, fields, json, out, table};
use super::{CommonArgs, Session, UserArgs, read_password};

#[derive(Debug, clap::Subcommand)]
pub enum MfaCommand {
    /// Show your second factors.
    Status(Plain),
    /// Start enrolling an authenticator app (TOTP): prints the secret and an otpauth URI once.
    Enrol(Plain),
    /// Confirm the enrolment with a first code; prints the recovery codes once.
    Confirm(ConfirmArgs),
    /// Remove your authenticator (asks for your password).
    Remove(RemoveArgs),
    /// Remove a user's second factors, e.g. after a lost device (administrators).
    Reset(UserArgs),
    /// List your security keys (passkeys), or a user's with --tenant and --user
    /// (administrators). Keys are registered in the console.
    Keys(KeysArgs),
    /// Rename one of your security keys.
    KeyRename(KeyRenameArgs),
    /// Remove one of your security keys, or a user's with --tenant and --user (administrators,
    /// for a lost or stolen key).
    KeyRm(KeyRmArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct KeysArgs {
    /// The user's tenant (administrators).
    #[arg(long, value_name = "TENANT", requires = "user")]
    pub tenant: Option<String>,
    /// The user (administrators).
    #[arg(long, value_name = "NAME", requires = "tenant")]
    pub user: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct KeyRenameArgs {
    /// The key's id, from `parapet mfa keys`.
    #[arg(value_name = "ID")]
    pub id: String,
    #[arg(value_name = "NEW_NAME")]
    pub name: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct KeyRmArgs {
    /// The key's id, from `parapet mfa keys`.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The user's tenant (administrators).
    #[arg(long, value_name = "TENANT", requires = "user")]
    pub tenant: Option<String>,
    /// The user (administrators).
    #[arg(long, value_name = "NAME", requires = "tenant")]
    pub user: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn alg_name(alg: i64) -> &'static str {
    match alg {
        -7 => "ES256",
        -8 => "EdDSA",
        -257 => "RS256",
        _ => "?",
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Plain {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConfirmArgs {
    /// The 6-digit code the authenticator shows now.
    #[arg(value_name = "CODE")]
    pub code: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RemoveArgs {
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(cmd: MfaCommand) -> anyhow::Result<()> {
    match cmd {
        MfaCommand::Status(a) => {
            let s = Session::open(&a.common)?;
            let st = s.client.mfa_status().await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&st);
            }
            out(&fields(&[
                ("totp", st.totp.clone()),
                ("recovery codes left", st.recovery_codes_left.to_string()),
                ("required by policy", st.required.to_string()),
            ]))
        }
        MfaCommand::Enrol(a) => {
            let s = Session::open(&a.common)?;
            let e = s.client.totp_begin().await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&e);
            }
            out(&format!(
                "Add this secret to your authenticator app, then run 'parapet mfa confirm CODE':\n\
                 secret: {}\nuri:    {}\n",
                clean(&e.secret),
                clean(&e.uri)
            ))
        }
        MfaCommand::Confirm(a) => {
            let s = Session::open(&a.common)?;
            let codes = s
                .client
                .totp_confirm(&a.code)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({ "recovery_codes": codes }));
            }
            let mut text = String::from(
                "Authenticator enabled. Recovery codes (each works once; shown only now):\n",
            );
            for c in &codes {
                text.push_str(&format!("  {}\n", clean(c)));
            }
            out(&text)
        }
        MfaCommand::Remove(a) => {
            let s = Session::open(&a.common)?;
            let pw = read_password(a.password_stdin, "Password: ", false)?;
            s.client.totp_remove(&pw).await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({ "removed": true }));
            }
            out("Authenticator removed\n")
        }
        MfaCommand::Reset(a) => {
            let s = Session::open(&a.common)?;
            s.client
                .reset_mfa(&a.tenant, &a.name)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({ "reset": true }));
            }
            out(&format!("Second factors of {} removed\n", clean(&a.name)))
        }
        MfaCommand::Keys(a) => {
            let s = Session::open(&a.common)?;
            let keys = match (&a.tenant, &a.user) {
                (Some(t), Some(u)) => s.client.user_security_keys(t, u).await,
                _ => s.client.security_keys().await,
            }
            .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&keys);
            }
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    vec![
                        clean(&k.id),
                        clean(&k.name),
                        alg_name(k.alg).to_string(),
                        k.sign_count.to_string(),
                        clean(&k.created_at),
                        clean(k.last_used_at.as_deref().unwrap_or("never")),
                    ]
                })
                .collect();
            out(&table(
                &["ID", "NAME", "ALG", "USES", "REGISTERED", "LAST USED"],
                &rows,
            ))
        }
        MfaCommand::KeyRename(a) => {
            let s = Session::open(&a.common)?;
            s.client
                .rename_security_key(&a.id, &a.name)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({ "renamed": true }));
            }
            out("Security key renamed\n")
        }
        MfaCommand::KeyRm(a) => {
            let s = Session::open(&a.common)?;
            match (&a.tenant, &a.user) {
                (Some(t), Some(u)) => s.client.remove_user_security_key(t, u, &a.id).await,
                _ => s.client.remove_security_key(&a.id).await,
            }
            .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({ "removed": true }));
            }
            out("Security key removed\n")
        }
    }
}
