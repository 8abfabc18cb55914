//! The console's key management page: the seal state, the tenant's keys with their life cycle
//! (create, rotate, disable, enable, schedule and cancel deletion), and receipts of destroyed
//! keys.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use parapet_kms::{KeyType, KmsError, NewKey};
use parapet_store::KeyPolicy;
use serde::Deserialize;

use crate::AppState;
use crate::console::{
    Chrome, ConsoleUser, csrf_ok, escape, forbidden_form, html_page, render, see_other,
};
use crate::error::ApiError;
use axum::Form;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/kms", get(page).post(create))
        .route("/console/kms/keys/{key}/{action}", post(key_action))
        .merge(custody_routes())
}

struct KeyRow {
    name: String,
    key_type: String,
    origin: String,
    state: String,
    version: i64,
    min_decrypt: i64,
    deletion_due: String,
    id: String,
    receipt: Option<String>,
}

#[derive(Template)]
#[template(path = "kms_keys.html")]
struct KmsPage {
    c: Chrome,
    seal: String,
    sealed: bool,
    keys: Vec<KeyRow>,
    types: Vec<&'static str>,
    receipt_key: Option<String>,
}

fn kms_failure(e: KmsError) -> Response {
    let a = ApiError::from(e);
    html_page(
        a.status,
        format!(
            "<!doctype html><title>Parapet</title><link rel=\"stylesheet\" \
             href=\"/console/static/parapet.css\"><main><p class=\"error\">{}</p>\
             <p><a href=\"/console/kms\">Back to the keys</a></p></main>",
            escape(&a.detail)
        ),
        None,
    )
}

async fn page(State(st): State<AppState>, u: ConsoleUser) -> Response {
    let status = st.kms.status();
    let seal = match (status.initialized, status.sealed) {
        (false, _) => "not initialized: a key custodian must run 'parapet kms init'".to_string(),
        (true, true) => format!(
            "sealed ({} of {} shares given): key custodians must run 'parapet kms unseal'",
            status.progress, status.threshold
        ),
        (true, false) => format!("unsealed ({})", status.mode.clone().unwrap_or_default()),
    };
    let keys = match st.kms.list_keys(&u.p, &u.meta).await {
        Ok(k) => k,
        Err(KmsError::Forbidden(_)) => Vec::new(),
        Err(e) => return kms_failure(e),
    };
    let page = KmsPage {
        c: u.chrome("Keys"),
        seal,
        sealed: status.sealed,
        keys: keys
            .iter()
            .map(|k| KeyRow {
                name: k.name.clone(),
                key_type: k.key_type.clone(),
                origin: k.origin.clone(),
                state: k.state.clone(),
                version: k.latest_version,
                min_decrypt: k.min_decryption_version,
                deletion_due: k.deletion_due_at.map(|t| t.rfc3339()).unwrap_or_default(),
                id: k.id.to_string(),
                receipt: k.receipt.clone(),
            })
            .collect(),
        types: KeyType::ALL.iter().map(|k| k.as_str()).collect(),
        receipt_key: st.kms.receipt_public_key().ok().map(|k| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(k)
        }),
    };
    render(StatusCode::OK, &page, u.set_csrf)
}

#[derive(Debug, Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    name: String,
    #[serde(default)]
    key_type: String,
}

async fn create(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<CreateForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let Some(kt) = KeyType::parse(&f.key_type) else {
        return kms_failure(KmsError::Invalid(format!(
            "unknown key type {:?}",
            f.key_type
        )));
    };
    let new = NewKey {
        name: f.name.trim().to_string(),
        key_type: kt,
        exportable: false,
        rotation_period_secs: None,
        policy: KeyPolicy::default(),
    };
    match st.kms.create_key(&u.p, &new, &u.meta).await {
        Ok(_) => see_other("/console/kms"),
        Err(e) => kms_failure(e),
    }
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    days: Option<String>,
}

async fn key_action(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path((key, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let r = match action.as_str() {
        "rotate" => st.kms.rotate(&u.p, &key, &u.meta).await,
        "disable" => st.kms.disable(&u.p, &key, &u.meta).await,
        "enable" => st.kms.enable(&u.p, &key, &u.meta).await,
        "cancel-deletion" => st.kms.cancel_deletion(&u.p, &key, &u.meta).await,
        "schedule-deletion" => {
            let days = match f.days.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
                None => None,
                Some(d) => match d.parse::<i64>() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        return kms_failure(KmsError::Invalid(
                            "the waiting period is a number of days".into(),
                        ));
                    }
                },
            };
            st.kms.schedule_deletion(&u.p, &key, days, &u.meta).await
        }
        _ => return kms_failure(KmsError::NotFound("no such key action".into())),
    };
    match r {
        Ok(_) => see_other("/console/kms"),
        Err(e) => kms_failure(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Key custody (X.1642 8.2(2), 8.2(3)) and the encryption disclosure (7.2.2.2(3)).

#[derive(Template)]
#[template(path = "kms_custody.html")]
struct CustodyPage {
    c: Chrome,
    /// A result to show once (shares, a backup, a wrapping key, a restore summary).
    result: Option<CustodyResult>,
}

struct CustodyResult {
    title: String,
    lines: Vec<String>,
    /// A document to copy (the backup JSON, a public key and its token).
    document: Option<String>,
}

fn custody(u: &ConsoleUser, result: Option<CustodyResult>) -> Response {
    render(
        StatusCode::OK,
        &CustodyPage {
            c: u.chrome("Keys"),
            result,
        },
        u.set_csrf.clone(),
    )
}

async fn custody_page(u: ConsoleUser) -> Response {
    custody(&u, None)
}

#[derive(Debug, Deserialize)]
struct BackupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    all: Option<String>,
    recipient: String,
    #[serde(default)]
    public_key: String,
    #[serde(default)]
    shares: Option<String>,
    #[serde(default)]
    threshold: Option<String>,
}

fn small_number(v: &Option<String>, what: &str) -> Result<u8, KmsError> {
    v.as_deref()
        .map(str::trim)
        .unwrap_or("")
        .parse::<u8>()
        .map_err(|_| KmsError::Invalid(format!("the number of {what} is 1 to 16")))
}

async fn backup_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<BackupForm>,
) -> Response {
    use parapet_kms::backup::{Recipient, Scope};
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let recipient = match f.recipient.as_str() {
        "x25519" => Recipient::X25519(f.public_key.into_bytes()),
        "rsa" => Recipient::Rsa(f.public_key.into_bytes()),
        "shamir" => match (
            small_number(&f.shares, "shares"),
            small_number(&f.threshold, "shares needed"),
        ) {
            (Ok(shares), Ok(threshold)) => Recipient::Shamir { shares, threshold },
            (Err(e), _) | (_, Err(e)) => return kms_failure(e),
        },
        other => {
            return kms_failure(KmsError::Invalid(format!("unknown recipient {other:?}")));
        }
    };
    let scope = if f.all.is_some() {
        Scope::All
    } else {
        Scope::Tenant
    };
    match st.kms.backup(&u.p, scope, &recipient, &u.meta).await {
        Ok(out) => {
            let mut lines = vec![format!(
                "{} key(s) of {} tenant(s), made {}. Keep the document below; it opens only \
                 with the recovery key.",
                out.bundle.keys, out.bundle.tenants, out.bundle.created_at
            )];
            if !out.shares.is_empty() {
                lines.push(
                    "Recovery shares, shown once: give each to a different custodian.".into(),
                );
                lines.extend(out.shares.iter().map(|s| s.to_string()));
            }
            custody(
                &u,
                Some(CustodyResult {
                    title: "Backup made".into(),
                    lines,
                    document: serde_json::to_string_pretty(&out.bundle).ok(),
                }),
            )
        }
        Err(e) => kms_failure(e),
    }
}

#[derive(Debug, Deserialize)]
struct RestoreForm {
    #[serde(default)]
    csrf: String,
    backup: String,
    recovery: String,
    secret: String,
}

async fn restore_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<RestoreForm>,
) -> Response {
    use parapet_kms::backup::{Bundle, Recovery};
    use zeroize::Zeroizing;
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let bundle: Bundle = match serde_json::from_str(&f.backup) {
        Ok(b) => b,
        Err(e) => {
            return kms_failure(KmsError::Invalid(format!(
                "not a backup made by Parapet: {e}"
            )));
        }
    };
    let secret = Zeroizing::new(f.secret);
    let recovery = match f.recovery.as_str() {
        "x25519" => Recovery::X25519(Zeroizing::new(secret.as_bytes().to_vec())),
        "rsa" => Recovery::Rsa(Zeroizing::new(secret.as_bytes().to_vec())),
        "shamir" => Recovery::Shares(
            secret
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| Zeroizing::new(l.to_string()))
                .collect(),
        ),
        other => {
            return kms_failure(KmsError::Invalid(format!("unknown recovery key {other:?}")));
        }
    };
    match st.kms.restore(&u.p, &bundle, &recovery, &u.meta).await {
        Ok(r) => custody(
            &u,
            Some(CustodyResult {
                title: "Backup restored".into(),
                lines: r
                    .tenants
                    .iter()
                    .map(|(t, keys)| format!("Tenant {t}: {}", keys.join(", ")))
                    .collect(),
                document: None,
            }),
        ),
        Err(e) => kms_failure(e),
    }
}

#[derive(Debug, Deserialize)]
struct WrappingForm {
    #[serde(default)]
    csrf: String,
    algorithm: String,
}

async fn wrapping_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<WrappingForm>,
) -> Response {
    use parapet_kms::byok::WrapAlg;
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let Some(alg) = WrapAlg::parse(&f.algorithm) else {
        return kms_failure(KmsError::Invalid(format!(
            "unknown algorithm {:?}",
            f.algorithm
        )));
    };
    match st.kms.wrapping_key(&u.p, alg, &u.meta).await {
        Ok(k) => custody(
            &u,
            Some(CustodyResult {
                title: "Wrapping key".into(),
                lines: vec![
                    format!(
                        "Algorithm {}; usable until {}.",
                        k.algorithm.as_str(),
                        k.expires_at.rfc3339()
                    ),
                    format!("Import token: {}", k.import_token),
                ],
                document: Some(k.public_key_pem),
            }),
        ),
        Err(e) => kms_failure(e),
    }
}

#[derive(Debug, Deserialize)]
struct ImportForm {
    #[serde(default)]
    csrf: String,
    name: String,
    key_type: String,
    import_token: String,
    wrapped: String,
}

async fn import_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<ImportForm>,
) -> Response {
    use base64::Engine;
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let Some(kt) = KeyType::parse(&f.key_type) else {
        return kms_failure(KmsError::Invalid(format!(
            "unknown key type {:?}",
            f.key_type
        )));
    };
    let Ok(wrapped) = base64::engine::general_purpose::STANDARD.decode(f.wrapped.trim()) else {
        return kms_failure(KmsError::Invalid(
            "the wrapped material is standard base64".into(),
        ));
    };
    let new = NewKey {
        name: f.name.trim().to_string(),
        key_type: kt,
        exportable: false,
        rotation_period_secs: None,
        policy: KeyPolicy::default(),
    };
    match st
        .kms
        .import_key(&u.p, &new, &wrapped, &f.import_token, &u.meta)
        .await
    {
        Ok(_) => see_other("/console/kms"),
        Err(e) => kms_failure(e),
    }
}

#[derive(Template)]
#[template(path = "kms_encryption.html")]
struct EncryptionPage {
    c: Chrome,
    d: crate::kms::EncryptionStatement,
}

async fn encryption_page(State(st): State<AppState>, u: ConsoleUser) -> Response {
    match crate::kms::statement(&st, &u.p, &u.meta).await {
        Ok(d) => render(
            StatusCode::OK,
            &EncryptionPage {
                c: u.chrome("Keys"),
                d,
            },
            u.set_csrf.clone(),
        ),
        Err(e) => kms_failure(e),
    }
}

pub fn custody_routes() -> Router<AppState> {
    Router::new()
        .route("/console/kms/custody", get(custody_page))
        .route("/console/kms/backup", post(backup_form))
        .route(
            "/console/kms/restore",
            post(restore_form).layer(axum::extract::DefaultBodyLimit::max(
                crate::kms_backup::RESTORE_LIMIT,
            )),
        )
        .route("/console/kms/wrapping-key", post(wrapping_form))
        .route("/console/kms/import", post(import_form))
        .route("/console/kms/encryption", get(encryption_page))
}
