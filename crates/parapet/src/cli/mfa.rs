//! `parapet mfa status|enrol|confirm|remove|reset`: second factors (X.1642 8.1.2(1)).

use super::output::{clean, fields, json, out};
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
    }
}
