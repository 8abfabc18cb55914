//! `parapet oidc client add|list|rotate-secret|rm` and `parapet oidc key list|rotate`: relying
//! parties of a tenant's OpenID Connect issuer (X.1642 8.1.1(1)).

use parapet_client::OidcClient;

use super::CommonArgs;
use super::output::{clean, json, note, out, table};

#[derive(Debug, clap::Subcommand)]
pub enum OidcCommand {
    /// Applications that log users in with Parapet (relying parties).
    #[command(subcommand)]
    Client(ClientCommand),
    /// The issuer's token-signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Register a client; a confidential client's secret is printed once.
    Add(AddArgs),
    /// List a tenant's clients (never their secrets).
    List(TenantArgs),
    /// Give a confidential client a new secret (printed once); the old one stops working.
    RotateSecret(IdArgs),
    /// Remove a client; every token issued to it is revoked.
    Rm(IdArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// List the issuer's signing keys (retired ones stay published until their tokens expire).
    List(TenantArgs),
    /// Replace the signing key.
    Rotate(TenantArgs),
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
pub struct AddArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// A name for people (unique in the tenant).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A public client (single-page or native app): no secret, PKCE only.
    #[arg(long)]
    pub public: bool,
    /// Where the authorization code may be sent (repeat for several): https, or http on a
    /// loopback address.
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// Allowed grant (repeat): authorization_code, refresh_token, client_credentials. Default:
    /// the first two, plus client_credentials for a confidential client.
    #[arg(long = "grant", value_name = "GRANT")]
    pub grants: Vec<String>,
    /// The signature algorithm of its ID tokens: ES256 (default) or RS256.
    #[arg(long = "id-token-alg", value_name = "ALG")]
    pub id_token_alg: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct IdArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The client id (`pco_…`), from `parapet oidc client list`.
    #[arg(value_name = "CLIENT_ID")]
    pub id: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn rows(list: &[OidcClient]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                clean(&c.client_id),
                clean(&c.name),
                clean(&c.client_type),
                clean(&c.grant_types.join(",")),
                clean(c.id_token_signed_response_alg.as_deref().unwrap_or("ES256")),
                clean(&c.redirect_uris.join(" ")),
            ]
        })
        .collect();
    table(
        &[
            "CLIENT ID",
            "NAME",
            "TYPE",
            "GRANTS",
            "ID TOKEN",
            "REDIRECT URIS",
        ],
        &rows,
    )
}

fn shown_once(s: &super::Session, c: &OidcClient) -> anyhow::Result<()> {
    if s.json {
        return json(c);
    }
    let mut text = format!(
        "client_id: {}\nissuer:    {}{}\n",
        clean(&c.client_id),
        s.client.base_url().trim_end_matches('/'),
        clean(&c.issuer_path)
    );
    if let Some(secret) = &c.client_secret {
        text.push_str(&format!("client_secret: {}\n", clean(secret)));
        note("The client secret is shown only now: store it in the application's configuration.");
    }
    out(&text)
}

pub async fn run(cmd: OidcCommand) -> anyhow::Result<()> {
    match cmd {
        OidcCommand::Client(ClientCommand::Add(a)) => {
            let s = super::Session::open(&a.common)?;
            let c = s
                .client
                .oidc_client_add(
                    &a.tenant,
                    &a.name,
                    a.public,
                    &a.redirect_uris,
                    &a.grants,
                    a.id_token_alg.as_deref(),
                )
                .await
                .map_err(|e| s.fail(e))?;
            shown_once(&s, &c)
        }
        OidcCommand::Client(ClientCommand::List(a)) => {
            let s = super::Session::open(&a.common)?;
            let list = s
                .client
                .oidc_clients(&a.tenant)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&list);
            }
            out(&rows(&list))
        }
        OidcCommand::Client(ClientCommand::RotateSecret(a)) => {
            let s = super::Session::open(&a.common)?;
            let c = s
                .client
                .oidc_client_rotate_secret(&a.tenant, &a.id)
                .await
                .map_err(|e| s.fail(e))?;
            shown_once(&s, &c)
        }
        OidcCommand::Client(ClientCommand::Rm(a)) => {
            let s = super::Session::open(&a.common)?;
            s.client
                .oidc_client_remove(&a.tenant, &a.id)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({"removed": a.id}));
            }
            out(&format!(
                "Client {} removed; its tokens are revoked.\n",
                clean(&a.id)
            ))
        }
        OidcCommand::Key(KeyCommand::List(a)) => {
            let s = super::Session::open(&a.common)?;
            let keys = s.client.oidc_keys(&a.tenant).await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&keys);
            }
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    vec![
                        clean(&k.kid),
                        clean(&k.alg),
                        clean(&k.created_at),
                        clean(k.retired_at.as_deref().unwrap_or("in use")),
                    ]
                })
                .collect();
            out(&table(&["KID", "ALG", "CREATED", "RETIRED"], &rows))
        }
        OidcCommand::Key(KeyCommand::Rotate(a)) => {
            let s = super::Session::open(&a.common)?;
            let k = s
                .client
                .oidc_rotate_key(&a.tenant)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&k);
            }
            out(&format!(
                "New signing key {}; the previous one stays published until its tokens expire.\n",
                clean(&k.kid)
            ))
        }
    }
}
