//! Console pages of the asset inventory (X.1642 8.3(1)): a tenant's assets with a health chart,
//! registration and CSV import forms, an asset's page with its health and, for provider staff,
//! the other tenants running the same software.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use parapet_iam::{Action, authorize};
use parapet_inventory::{AssetSpec, Caller, InventoryError};
use parapet_store::{AssetFilter, AssetHealth, AssetKind, Criticality, Page, Software, Tenant};
use serde::Deserialize;

use super::{
    Chrome, ConsoleUser, Done, csrf_ok, escape, failure, forbidden_form, notice, render, see_other,
};
use crate::AppState;
use crate::assets::{AssetView, asset_view};

#[derive(Template)]
#[template(path = "assets.html")]
struct AssetsPage {
    c: Chrome,
    tenant: String,
    tenants: Vec<String>,
    assets: Vec<AssetView>,
    health_svg: String,
    total: u64,
    kinds: Vec<&'static str>,
    healths: Vec<&'static str>,
    criticalities: Vec<&'static str>,
    kind: String,
    health: String,
    q: String,
    can_write: bool,
    truncated: bool,
}

#[derive(Template)]
#[template(path = "asset.html")]
struct AssetPage {
    c: Chrome,
    tenant: String,
    a: AssetView,
    healths: Vec<&'static str>,
    can_write: bool,
    related: Option<Vec<RelatedRow>>,
    tenants_affected: usize,
}

struct RelatedRow {
    what: &'static str,
    software: String,
    tenant: String,
    assets: u64,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    health: String,
    #[serde(default)]
    q: String,
    done: Option<String>,
}

fn caller(u: &ConsoleUser) -> Caller {
    crate::assets::caller(&u.p, &u.meta)
}

fn inventory_message(e: &InventoryError) -> Option<(StatusCode, String)> {
    match e {
        InventoryError::Invalid(m) => Some((StatusCode::UNPROCESSABLE_ENTITY, m.clone())),
        InventoryError::Conflict(m) => Some((StatusCode::CONFLICT, m.clone())),
        InventoryError::Rows(rows) => Some((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "Nothing was imported; {} row(s) are invalid: {}",
                rows.len(),
                rows.iter()
                    .take(20)
                    .map(|r| format!("line {}: {}", r.line, r.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )),
        _ => None,
    }
}

fn inventory_failure(e: InventoryError) -> Response {
    let status = match &e {
        InventoryError::NotFound(_) => StatusCode::NOT_FOUND,
        InventoryError::Forbidden(_) => StatusCode::FORBIDDEN,
        InventoryError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let msg = match &e {
        InventoryError::Unavailable(_) => "The database is unavailable; try again later.".into(),
        InventoryError::Internal(m) => {
            tracing::error!(error = %m, "console inventory request failed");
            "Internal error; it has been logged.".into()
        }
        other => other.to_string(),
    };
    super::html_page(
        status,
        format!(
            "<!doctype html><title>Parapet</title><link rel=\"stylesheet\" \
             href=\"/console/static/parapet.css\"><main><p class=\"error\">{}</p>\
             <p><a href=\"/console/assets\">Back to the assets</a></p></main>",
            escape(&msg)
        ),
        None,
    )
}

/// A horizontal bar chart (SVG) of a tenant's assets per health state.
pub fn health_svg(counts: &[(AssetHealth, u64)]) -> String {
    let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let row = 22;
    let height = row * counts.len() + 8;
    let mut svg = format!(
        "<svg class=\"chart health\" role=\"img\" aria-label=\"assets per health state\" \
         width=\"420\" height=\"{height}\" viewBox=\"0 0 420 {height}\" \
         xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, (h, n)) in counts.iter().enumerate() {
        let y = 4 + i * row;
        let w = (*n as f64 / max as f64 * 280.0).round();
        svg.push_str(&format!(
            "<text x=\"4\" y=\"{}\">{}</text><rect class=\"{}\" x=\"80\" y=\"{y}\" width=\"{w}\" \
             height=\"16\"><title>{}: {n}</title></rect><text x=\"{}\" y=\"{}\">{n}</text>",
            y + 12,
            h.as_str(),
            h.as_str(),
            h.as_str(),
            84.0 + w,
            y + 12,
        ));
    }
    svg.push_str("</svg>");
    svg
}

pub(super) async fn own_assets(u: ConsoleUser) -> Response {
    Redirect::to(&format!("/console/tenants/{}/assets", u.p.tenant.name)).into_response()
}

async fn tenant_for(
    st: &AppState,
    u: &ConsoleUser,
    tenant: &str,
    action: Action,
) -> Result<Tenant, Response> {
    st.iam
        .resolve(&u.p, tenant, action, &u.meta)
        .await
        .map_err(failure)
}

async fn list_view(
    st: &AppState,
    u: &ConsoleUser,
    tenant: &str,
    q: &ListQuery,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let t = match tenant_for(st, u, tenant, Action::AssetRead).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let filter = AssetFilter {
        kind: AssetKind::parse(&q.kind),
        health: AssetHealth::parse(&q.health),
        criticality: None,
        name_contains: Some(q.q.trim().to_string()).filter(|s| !s.is_empty()),
    };
    const SHOWN: u32 = 500;
    let assets = match st
        .inventory
        .list(
            &t,
            &filter,
            &Page {
                after: None,
                limit: SHOWN + 1,
            },
        )
        .await
    {
        Ok(a) => a,
        Err(e) => return inventory_failure(e),
    };
    let counts = match st.inventory.health_summary(&t).await {
        Ok(c) => c,
        Err(e) => return inventory_failure(e),
    };
    let tenants = if u.p.tenant.kind == parapet_types::TenantKind::Provider {
        match st.iam.list_tenants(&u.p, None, 1000).await {
            Ok(list) => list.into_iter().map(|t| t.name).collect(),
            Err(e) => return failure(e),
        }
    } else {
        Vec::new()
    };
    let mut c = u.chrome("Assets");
    c.error = error;
    c.notice = notice(&q.done);
    let truncated = assets.len() > SHOWN as usize;
    let page = AssetsPage {
        c,
        tenant: t.name.clone(),
        tenants,
        assets: assets
            .iter()
            .take(SHOWN as usize)
            .map(|a| asset_view(&t, a))
            .collect(),
        health_svg: health_svg(&counts),
        total: counts.iter().map(|(_, n)| n).sum(),
        kinds: AssetKind::ALL.map(AssetKind::as_str).to_vec(),
        healths: AssetHealth::ALL.map(AssetHealth::as_str).to_vec(),
        criticalities: Criticality::ALL.map(Criticality::as_str).to_vec(),
        kind: q.kind.clone(),
        health: q.health.clone(),
        q: q.q.clone(),
        can_write: authorize(&u.p, Action::AssetWrite, &t).is_ok(),
        truncated,
    };
    render(status, &page, u.set_csrf.clone())
}

pub(super) async fn assets_page(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path(tenant): Path<String>,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Response {
    list_view(&st, &u, &tenant, &q, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateForm {
    name: String,
    kind: String,
    #[serde(default)]
    os_name: String,
    #[serde(default)]
    os_version: String,
    #[serde(default)]
    applications: String,
    #[serde(default)]
    addresses: String,
    #[serde(default)]
    criticality: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    csrf: String,
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn spec_of(f: &CreateForm) -> Result<AssetSpec, String> {
    let mut applications = Vec::new();
    for p in f.applications.split([';', ',', '\n']).map(str::trim) {
        if p.is_empty() {
            continue;
        }
        match p.rsplit_once('=') {
            Some((n, v)) if !n.trim().is_empty() => applications.push(Software {
                name: n.trim().to_string(),
                version: v.trim().to_string(),
            }),
            _ => return Err(format!("application {p:?} must be written name=version")),
        }
    }
    Ok(AssetSpec {
        name: f.name.trim().to_string(),
        kind: f.kind.clone(),
        os: opt(&f.os_name).map(|name| Software {
            name,
            version: f.os_version.trim().to_string(),
        }),
        applications,
        addresses: f
            .addresses
            .split([';', ',', ' ', '\n'])
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
        location: opt(&f.location),
        owner: opt(&f.owner),
        criticality: opt(&f.criticality),
        tags: Default::default(),
    })
}

pub(super) async fn asset_create(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(tenant): Path<String>,
    Form(f): Form<CreateForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let t = match tenant_for(&st, &u, &tenant, Action::AssetWrite).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let result = match spec_of(&f) {
        Ok(spec) => st.inventory.create(&t, &caller(&u), &spec).await,
        Err(m) => Err(InventoryError::Invalid(m)),
    };
    match result {
        Ok(a) => see_other(&format!(
            "/console/tenants/{}/assets/{}?done=created",
            t.name, a.id
        )),
        Err(e) => match inventory_message(&e) {
            Some((status, msg)) => {
                list_view(&st, &u, &tenant, &ListQuery::default(), Some(msg), status).await
            }
            None => inventory_failure(e),
        },
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ImportForm {
    csv: String,
    #[serde(default)]
    csrf: String,
}

pub(super) async fn asset_import(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(tenant): Path<String>,
    Form(f): Form<ImportForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let t = match tenant_for(&st, &u, &tenant, Action::AssetWrite).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let result = match parapet_inventory::parse_csv(f.csv.as_bytes()) {
        Ok(rows) => st.inventory.import(&t, &caller(&u), &rows, "csv").await,
        Err(rows) => Err(InventoryError::Rows(rows)),
    };
    match result {
        Ok(_) => see_other(&format!("/console/tenants/{}/assets?done=updated", t.name)),
        Err(e) => match inventory_message(&e) {
            Some((status, msg)) => {
                list_view(&st, &u, &tenant, &ListQuery::default(), Some(msg), status).await
            }
            None => inventory_failure(e),
        },
    }
}

async fn asset_view_page(
    st: &AppState,
    u: &ConsoleUser,
    tenant: &str,
    asset: &str,
    done: &Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let t = match tenant_for(st, u, tenant, Action::AssetRead).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let a = match st.inventory.get(&t, asset).await {
        Ok(a) => a,
        Err(e) => return inventory_failure(e),
    };
    // The correlation across tenants is shown only to those allowed to run it.
    let mut related = None;
    let mut tenants_affected = 0;
    if authorize(&u.p, Action::AssetCorrelate, &u.p.tenant).is_ok() {
        match st
            .inventory
            .related(&u.p.tenant, &t, &a.id.to_string())
            .await
        {
            Ok(r) => {
                tenants_affected = r.tenants_affected;
                let mut rows = Vec::new();
                for m in &r.matches {
                    for o in &m.other_tenants {
                        rows.push(RelatedRow {
                            what: if m.os { "OS" } else { "application" },
                            software: format!("{} {}", m.software.name, m.software.version),
                            tenant: o.tenant_name.clone(),
                            assets: o.assets,
                        });
                    }
                }
                related = Some(rows);
            }
            Err(e) => return inventory_failure(e),
        }
    }
    let mut c = u.chrome("Assets");
    c.error = error;
    c.notice = notice(done);
    let page = AssetPage {
        c,
        tenant: t.name.clone(),
        a: asset_view(&t, &a),
        healths: AssetHealth::ALL.map(AssetHealth::as_str).to_vec(),
        can_write: authorize(&u.p, Action::AssetWrite, &t).is_ok(),
        related,
        tenants_affected,
    };
    render(status, &page, u.set_csrf.clone())
}

pub(super) async fn asset_page(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path((tenant, asset)): Path<(String, String)>,
    axum::extract::Query(d): axum::extract::Query<Done>,
) -> Response {
    asset_view_page(&st, &u, &tenant, &asset, &d.done, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(super) struct HealthForm {
    health: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    csrf: String,
}

pub(super) async fn asset_health(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path((tenant, asset)): Path<(String, String)>,
    Form(f): Form<HealthForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let t = match tenant_for(&st, &u, &tenant, Action::AssetWrite).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let result = match AssetHealth::parse(&f.health) {
        Some(h) => {
            let reason = opt(&f.reason);
            st.inventory
                .set_health(&t, &caller(&u), &asset, h, reason.as_deref(), false)
                .await
        }
        None => Err(InventoryError::Invalid(format!(
            "unknown health {:?}",
            f.health
        ))),
    };
    match result {
        Ok(a) => see_other(&format!(
            "/console/tenants/{}/assets/{}?done=updated",
            t.name, a.id
        )),
        Err(e) => match inventory_message(&e) {
            Some((status, msg)) => {
                asset_view_page(&st, &u, &tenant, &asset, &None, Some(msg), status).await
            }
            None => inventory_failure(e),
        },
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn asset_delete(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path((tenant, asset)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let t = match tenant_for(&st, &u, &tenant, Action::AssetWrite).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match st.inventory.delete(&t, &caller(&u), &asset).await {
        Ok(()) => see_other(&format!("/console/tenants/{}/assets?done=updated", t.name)),
        Err(e) => inventory_failure(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_chart_scales_bars_to_the_largest_count() {
        let svg = health_svg(&[
            (AssetHealth::Unknown, 0),
            (AssetHealth::Healthy, 10),
            (AssetHealth::Down, 5),
        ]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(
            svg.contains("class=\"healthy\" x=\"80\" y=\"26\" width=\"280\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"down\" x=\"80\" y=\"48\" width=\"140\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"unknown\" x=\"80\" y=\"4\" width=\"0\""),
            "{svg}"
        );
        assert!(svg.contains("<title>down: 5</title>"));
    }
}
