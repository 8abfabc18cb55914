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
}

struct KeyRow {
    name: String,
    key_type: String,
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
