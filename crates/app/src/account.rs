//! Account policies over HTTP and in the console (X.1642 8.1.1(3)): a tenant's lockout,
//! throttling, password and dormancy rules, its accounts' log-in state, unlocking, self-service
//! password change and the dormant-account sweep.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use parapet_iam::policy::{DormancyReport, EffectivePolicy};
use parapet_iam::{IamError, display_login};
use parapet_store::{AccountPolicy, AccountRow, Tenant};
use parapet_types::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::console::{
    Chrome, ConsoleUser, CsrfOnly, csrf_ok, failure, forbidden_form, form_error, render, see_other,
};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Auth, Meta};

/// A tenant's effective account policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    pub tenant: String,
    /// `tenant` when the tenant set its own policy, `provider-default` otherwise.
    pub source: String,
    /// The rules (see `PUT` for their meaning).
    #[schema(value_type = Object)]
    pub policy: AccountPolicy,
}

fn policy_view(t: &Tenant, e: &EffectivePolicy) -> PolicyView {
    PolicyView {
        tenant: t.name.clone(),
        source: if e.own { "tenant" } else { "provider-default" }.into(),
        policy: e.policy.clone(),
    }
}

/// The account policy of a tenant (its own, or the provider's defaults).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/account-policy", tag = "accounts",
    params(("tenant" = String, Path)),
    responses((status = 200, body = PolicyView), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_policy(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<PolicyView>> {
    let (t, e) = st.iam.get_policy(&p, &tenant, &meta).await?;
    Ok(Json(policy_view(&t, &e)))
}

/// Changes a tenant's account policy. The body names the fields to change (the others keep
/// their current values): `lockout_threshold`, `lockout_base_secs`, `lockout_multiplier`,
/// `permanent_after`, `throttle_per_account`, `throttle_per_address`, `password_min_length`,
/// `password_min_classes`, `password_history`, `password_max_age_days`, `password_deny_common`,
/// `dormant_days`, `dormant_delete_days`, `mfa_lockout_threshold`, `mfa_required`,
/// `approval_required`.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/account-policy", tag = "accounts",
    params(("tenant" = String, Path)), request_body = Object,
    responses((status = 200, body = PolicyView), (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_policy(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(changes): ApiJson<serde_json::Value>,
) -> ApiResult<Json<PolicyView>> {
    let (_, current) = st.iam.get_policy(&p, &tenant, &meta).await?;
    let policy = merge(&current.policy, &changes).map_err(ApiError::bad_request)?;
    let t = st.iam.set_policy(&p, &tenant, &policy, &meta).await?;
    let (_, e) = st.iam.get_policy(&p, &t.name, &meta).await?;
    Ok(Json(policy_view(&t, &e)))
}

/// `changes` (an object of fields) applied over `current`.
fn merge(current: &AccountPolicy, changes: &serde_json::Value) -> Result<AccountPolicy, String> {
    let serde_json::Value::Object(changes) = changes else {
        return Err("the body must be a JSON object of policy fields".into());
    };
    let mut v = serde_json::to_value(current).map_err(|e| e.to_string())?;
    if let serde_json::Value::Object(m) = &mut v {
        for (k, val) in changes {
            m.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(v).map_err(|e| format!("invalid policy: {e}"))
}

/// An account with its log-in state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub username: String,
    pub login: String,
    pub role: String,
    pub status: String,
    pub last_login_at: Option<String>,
    /// Consecutive failed password attempts.
    pub failures: u32,
    /// Consecutive failed second-factor attempts.
    pub mfa_failures: u32,
    /// Temporary lockouts since the last successful log-in.
    pub lockouts: u32,
    /// Whether the account is locked now.
    pub locked: bool,
    pub locked_until: Option<String>,
    pub locked_permanently: bool,
    pub password_changed_at: String,
    pub dormant_disabled_at: Option<String>,
}

fn account_view(t: &Tenant, r: &AccountRow, now: Timestamp) -> AccountView {
    let s = &r.state;
    AccountView {
        username: r.user.username.clone(),
        login: display_login(t, &r.user),
        role: r.user.role.as_str().into(),
        status: r.user.status.as_str().into(),
        last_login_at: r.user.last_login_at.map(Timestamp::rfc3339),
        failures: s.failures,
        mfa_failures: s.mfa_failures,
        lockouts: s.lockouts,
        locked: s.is_locked(now),
        locked_until: s.locked_until.filter(|u| *u > now).map(Timestamp::rfc3339),
        locked_permanently: s.locked_permanently_at.is_some(),
        password_changed_at: s.password_changed_at.unwrap_or(r.user.created_at).rfc3339(),
        dormant_disabled_at: s.dormant_disabled_at.map(Timestamp::rfc3339),
    }
}

/// A tenant's accounts with their log-in state (failures, lockouts, password age, dormancy).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/accounts", tag = "accounts",
    params(("tenant" = String, Path)),
    responses((status = 200, body = [AccountView]), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_accounts(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<AccountView>>> {
    let (t, rows) = st.iam.list_accounts(&p, &tenant, &meta).await?;
    let now = st.iam.env().now();
    Ok(Json(
        rows.iter().map(|r| account_view(&t, r, now)).collect(),
    ))
}

/// Unlocks an account locked by failed log-ins.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users/{username}/unlock", tag = "accounts",
    params(("tenant" = String, Path), ("username" = String, Path)),
    responses((status = 200, body = AccountView), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn unlock(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, username)): Path<(String, String)>,
) -> ApiResult<Json<AccountView>> {
    st.iam.unlock_account(&p, &tenant, &username, &meta).await?;
    let (t, rows) = st.iam.list_accounts(&p, &tenant, &meta).await?;
    let now = st.iam.env().now();
    rows.iter()
        .find(|r| r.user.username == username.to_ascii_lowercase())
        .map(|r| Json(account_view(&t, r, now)))
        .ok_or_else(|| ApiError::not_found("no such user"))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The log-in name (`admin`, `alice@acme`).
    pub username: String,
    pub current_password: String,
    pub new_password: String,
}

/// Changes one's password with the current one (also when it has expired). Failures count
/// towards the lockout like failed log-ins and look the same.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = ChangePassword,
    responses((status = 204), (status = 401, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem)))]
pub async fn change_password(
    State(st): State<AppState>,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<ChangePassword>,
) -> ApiResult<StatusCode> {
    if req.username.len() > 200 || req.current_password.len() > 4096 {
        return Err(ApiError::unauthenticated());
    }
    st.iam
        .change_password(
            &req.username,
            &req.current_password,
            &req.new_password,
            &meta,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a dormancy sweep did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SweepView {
    /// Log-in names disabled for dormancy.
    pub disabled: Vec<String>,
    /// Log-in names deleted after their dormancy period.
    pub deleted: Vec<String>,
}

impl From<DormancyReport> for SweepView {
    fn from(r: DormancyReport) -> Self {
        SweepView {
            disabled: r.disabled,
            deleted: r.deleted,
        }
    }
}

/// Runs the dormant-account sweep now over every tenant (provider security administrators;
/// the server also runs it periodically).
#[utoipa::path(post, path = "/api/v1/accounts/dormancy-sweep", tag = "accounts",
    responses((status = 200, body = SweepView), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn dormancy_sweep(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
) -> ApiResult<Json<SweepView>> {
    Ok(Json(st.iam.sweep_dormant_as(&p, &meta).await?.into()))
}

// -- console ---------------------------------------------------------------------------------

pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/tenants/{tenant}/accounts", get(accounts_page))
        .route(
            "/console/tenants/{tenant}/account-policy",
            post(policy_submit),
        )
        .route(
            "/console/tenants/{tenant}/users/{user}/unlock",
            post(unlock_submit),
        )
}

/// A policy field on the form.
struct FieldRow {
    name: &'static str,
    label: &'static str,
    value: String,
}

fn fields(p: &AccountPolicy) -> Vec<FieldRow> {
    let f = |name, label, v: u32| FieldRow {
        name,
        label,
        value: v.to_string(),
    };
    vec![
        f(
            "lockout_threshold",
            "Failed log-ins before lockout",
            p.lockout_threshold,
        ),
        f(
            "lockout_base_secs",
            "First lockout (seconds)",
            p.lockout_base_secs,
        ),
        f(
            "lockout_multiplier",
            "Each further lockout multiplies the wait by",
            p.lockout_multiplier,
        ),
        f(
            "permanent_after",
            "Permanent after this many lockouts (0: never)",
            p.permanent_after,
        ),
        f(
            "throttle_per_account",
            "Log-in attempts per name per minute",
            p.throttle_per_account,
        ),
        f(
            "throttle_per_address",
            "Attempts per source address per minute (provider)",
            p.throttle_per_address,
        ),
        f(
            "password_min_length",
            "Minimum password length",
            p.password_min_length,
        ),
        f(
            "password_min_classes",
            "Character classes required (of 4)",
            p.password_min_classes,
        ),
        f(
            "password_history",
            "Previous passwords refused",
            p.password_history,
        ),
        f(
            "password_max_age_days",
            "Password maximum age, days (0: none)",
            p.password_max_age_days,
        ),
        f(
            "dormant_days",
            "Disable after days without log-in (0: never)",
            p.dormant_days,
        ),
        f(
            "dormant_delete_days",
            "Then delete after days (0: never)",
            p.dormant_delete_days,
        ),
        f(
            "mfa_lockout_threshold",
            "Wrong second-factor codes before lockout",
            p.mfa_lockout_threshold,
        ),
    ]
}

#[derive(Template)]
#[template(path = "account_policy.html")]
struct AccountsPage {
    c: Chrome,
    tenant: String,
    source: &'static str,
    fields: Vec<FieldRow>,
    deny_common: bool,
    mfa_required: bool,
    approval_required: bool,
    can_edit: bool,
    can_unlock: bool,
    accounts: Vec<AccountView>,
    report: Option<AccountReportView>,
}

async fn accounts_view(
    st: &AppState,
    u: &ConsoleUser,
    tenant: &str,
    error: Option<(StatusCode, String)>,
    notice: Option<String>,
) -> Response {
    let (t, eff) = match st.iam.get_policy(&u.p, tenant, &u.meta).await {
        Ok(x) => x,
        Err(e) => return failure(e),
    };
    let (t, rows) = match st.iam.list_accounts(&u.p, &t.name, &u.meta).await {
        Ok(x) => x,
        Err(e) => return failure(e),
    };
    let now = st.iam.env().now();
    let can = |a| parapet_iam::authorize(&u.p, a, &t).is_ok();
    let mut c = u.chrome("Users");
    let status = match error {
        Some((s, m)) => {
            c.error = Some(m);
            s
        }
        None => StatusCode::OK,
    };
    c.notice = notice;
    let page = AccountsPage {
        c,
        tenant: t.name.clone(),
        source: if eff.own {
            "this tenant's own policy"
        } else {
            "the provider's defaults"
        },
        fields: fields(&eff.policy),
        deny_common: eff.policy.password_deny_common,
        mfa_required: eff.policy.mfa_required,
        approval_required: eff.policy.approval_required,
        can_edit: can(parapet_iam::Action::PolicyWrite),
        can_unlock: can(parapet_iam::Action::AccountUnlock),
        accounts: rows.iter().map(|r| account_view(&t, r, now)).collect(),
        report: st
            .iam
            .account_report(&u.p, &t.name, 90, &u.meta)
            .await
            .ok()
            .map(|(t, r)| report_view(&t, &r)),
    };
    render(status, &page, u.set_csrf.clone())
}

/// A tenant's account policy and its accounts' log-in state.
async fn accounts_page(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path(tenant): Path<String>,
) -> Response {
    accounts_view(&st, &u, &tenant, None, None).await
}

async fn policy_submit(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(tenant): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&headers, f.get("csrf").map(String::as_str).unwrap_or("")) {
        return forbidden_form();
    }
    let (_, current) = match st.iam.get_policy(&u.p, &tenant, &u.meta).await {
        Ok(x) => x,
        Err(e) => return failure(e),
    };
    let mut changes = serde_json::Map::new();
    let mut bad = Vec::new();
    for field in fields(&current.policy) {
        if let Some(v) = f.get(field.name) {
            match v.trim().parse::<u32>() {
                Ok(n) => {
                    changes.insert(field.name.into(), n.into());
                }
                Err(_) => bad.push(format!("{}: not a whole number", field.label)),
            }
        }
    }
    for flag in ["password_deny_common", "mfa_required", "approval_required"] {
        changes.insert(flag.into(), f.contains_key(flag).into());
    }
    if !bad.is_empty() {
        return accounts_view(
            &st,
            &u,
            &tenant,
            Some((StatusCode::UNPROCESSABLE_ENTITY, bad.join("; "))),
            None,
        )
        .await;
    }
    let policy = match merge(&current.policy, &serde_json::Value::Object(changes)) {
        Ok(p) => p,
        Err(m) => {
            return accounts_view(
                &st,
                &u,
                &tenant,
                Some((StatusCode::UNPROCESSABLE_ENTITY, m)),
                None,
            )
            .await;
        }
    };
    match st.iam.set_policy(&u.p, &tenant, &policy, &u.meta).await {
        Ok(t) => see_other(&format!("/console/tenants/{}/accounts", t.name)),
        Err(e) => match form_error(&e) {
            Some(err) => accounts_view(&st, &u, &tenant, Some(err), None).await,
            None => failure(e),
        },
    }
}

async fn unlock_submit(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path((tenant, user)): Path<(String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    match st.iam.unlock_account(&u.p, &tenant, &user, &u.meta).await {
        Ok(_) => accounts_view(&st, &u, &tenant, None, Some(format!("Unlocked {user}."))).await,
        Err(e @ IamError::NotFound(_)) => failure(e),
        Err(e) => match form_error(&e) {
            Some(err) => accounts_view(&st, &u, &tenant, Some(err), None).await,
            None => failure(e),
        },
    }
}

// -- account audit report ------------------------------------------------------------------

/// An account the report flags.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FlaggedView {
    pub login: String,
    pub role: String,
    pub status: String,
    pub last_login_at: Option<String>,
    /// Why it is flagged.
    pub detail: String,
}

/// The account audit report of a tenant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountReportView {
    pub tenant: String,
    pub days: u32,
    pub dormant: Vec<FlaggedView>,
    pub over_privileged: Vec<FlaggedView>,
    pub orphaned: Vec<FlaggedView>,
    pub locked: Vec<FlaggedView>,
}

fn flagged(list: &[parapet_iam::report::FlaggedAccount]) -> Vec<FlaggedView> {
    list.iter()
        .map(|f| FlaggedView {
            login: f.login.clone(),
            role: f.role.as_str().into(),
            status: f.status.as_str().into(),
            last_login_at: f.last_login_at.map(Timestamp::rfc3339),
            detail: f.detail.clone(),
        })
        .collect()
}

pub(crate) fn report_view(t: &Tenant, r: &parapet_iam::report::AccountReport) -> AccountReportView {
    AccountReportView {
        tenant: t.name.clone(),
        days: r.days,
        dormant: flagged(&r.dormant),
        over_privileged: flagged(&r.over_privileged),
        orphaned: flagged(&r.orphaned),
        locked: flagged(&r.locked),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// The period in days (1–3650, default 90).
    pub days: Option<u32>,
}

/// The account audit report: dormant, over-privileged (a role that can change things, no
/// change made in the period), orphaned (kept disabled, or never logged in) and locked accounts.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/reports/accounts", tag = "accounts",
    params(("tenant" = String, Path), ReportParams),
    responses((status = 200, body = AccountReportView), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn account_report(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<ReportParams>,
) -> ApiResult<Json<AccountReportView>> {
    let (t, r) = st
        .iam
        .account_report(&p, &tenant, q.days.unwrap_or(90), &meta)
        .await?;
    Ok(Json(report_view(&t, &r)))
}
