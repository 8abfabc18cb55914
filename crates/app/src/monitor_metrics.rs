//! Metrics over HTTP (X.1642 7.2.2.6(1), 8.3): an asset's scrape target, its metric names and
//! series over time, threshold/baseline rules; the console page of an asset's metrics with an
//! SVG chart and its alerts marked. Decided by [`parapet_monitor::Monitor`]; this module only
//! translates.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parapet_monitor::metric::{MetricQuery, RuleInput, RuleView, ScrapeReport, TargetView};
use parapet_types::Timestamp;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::console::{Chrome, ConsoleUser, failure, render};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth, Meta};
use crate::monitor::monitor_error;

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/tenants/{tenant}/assets/{asset}/metrics-target",
            get(get_target).put(set_target).delete(delete_target),
        )
        .route(
            "/tenants/{tenant}/assets/{asset}/metrics-target/scrape",
            post(scrape),
        )
        .route("/tenants/{tenant}/assets/{asset}/metrics", get(names))
        .route(
            "/tenants/{tenant}/assets/{asset}/metrics/{metric}",
            get(query),
        )
        .route(
            "/tenants/{tenant}/metric-rules",
            get(list_rules).post(create_rule),
        )
        .route(
            "/tenants/{tenant}/metric-rules/{rule}",
            axum::routing::put(update_rule).delete(delete_rule),
        )
}

pub fn console_routes() -> Router<AppState> {
    Router::new().route(
        "/console/tenants/{tenant}/assets/{asset}/metrics",
        get(console_metrics),
    )
}

#[derive(OpenApi)]
#[openapi(
    paths(
        get_target,
        set_target,
        delete_target,
        scrape,
        names,
        query,
        list_rules,
        create_rule,
        update_rule,
        delete_rule
    ),
    components(schemas(
        TargetBody,
        TargetInput,
        ScrapeBody,
        MetricNameBody,
        QueryBody,
        SeriesBody,
        AlertMarkBody,
        RuleBody,
        RuleInputBody
    ))
)]
pub struct MetricsApi;

/// An asset's scrape target.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TargetBody {
    pub asset: String,
    pub url: String,
    pub interval_secs: u32,
    pub next_due_at: String,
    pub last_scrape_at: Option<String>,
    /// Why the last scrape failed (none when it worked).
    pub last_error: Option<String>,
    pub last_samples: u64,
}

impl From<TargetView> for TargetBody {
    fn from(t: TargetView) -> Self {
        TargetBody {
            asset: t.asset,
            url: t.url,
            interval_secs: t.interval_secs,
            next_due_at: t.next_due_at,
            last_scrape_at: t.last_scrape_at,
            last_error: t.last_error,
            last_samples: t.last_samples,
        }
    }
}

/// Where to scrape an asset's Prometheus exposition endpoint. The URL's host must be the
/// asset's name or one of its addresses.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetInput {
    pub url: String,
    /// Seconds between scrapes (5 to 86400; default 60).
    #[serde(default)]
    pub interval_secs: Option<u32>,
}

/// What one scrape did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScrapeBody {
    pub samples: u64,
    pub bad_lines: u64,
    pub dropped: u64,
    pub error: Option<String>,
    pub alerts_raised: u64,
}

impl From<ScrapeReport> for ScrapeBody {
    fn from(r: ScrapeReport) -> Self {
        ScrapeBody {
            samples: r.samples,
            bad_lines: r.bad_lines,
            dropped: r.dropped,
            error: r.error,
            alerts_raised: r.alerts_raised,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MetricNameBody {
    pub name: String,
    pub series: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeriesBody {
    /// Canonical label text `a="1",b="x"`.
    pub labels: String,
    /// `[time in ms, value]`, oldest first.
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertMarkBody {
    pub id: String,
    pub rule_id: String,
    pub title: String,
    pub severity: String,
    /// When its first event happened (ms).
    pub at: i64,
}

/// A metric of an asset over a time range, with the asset's alerts in it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueryBody {
    pub asset: String,
    pub metric: String,
    pub from: String,
    pub to: String,
    /// Points were averaged into buckets of this many ms (0: raw samples).
    pub step_ms: i64,
    pub series: Vec<SeriesBody>,
    pub alerts: Vec<AlertMarkBody>,
}

fn query_body(q: MetricQuery) -> QueryBody {
    QueryBody {
        asset: q.asset,
        metric: q.metric,
        from: Timestamp(q.from).rfc3339(),
        to: Timestamp(q.to).rfc3339(),
        step_ms: q.step_ms,
        series: q
            .series
            .into_iter()
            .map(|s| SeriesBody {
                labels: s.labels,
                points: s.points,
            })
            .collect(),
        alerts: q
            .alerts
            .into_iter()
            .map(|a| AlertMarkBody {
                id: a.id,
                rule_id: a.rule_id,
                title: a.title,
                severity: a.severity,
                at: a.at,
            })
            .collect(),
    }
}

/// A threshold or baseline rule.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleBody {
    pub id: String,
    pub name: String,
    /// The rule id its alerts carry (routes can name it).
    pub alert_rule_id: String,
    pub asset: Option<String>,
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    pub kind: String,
    pub rate: bool,
    pub op: String,
    pub value: f64,
    pub for_secs: u32,
    pub k: f64,
    pub warmup: u32,
    pub alpha: f64,
    pub severity: String,
    pub enabled: bool,
}

impl From<RuleView> for RuleBody {
    fn from(r: RuleView) -> Self {
        RuleBody {
            id: r.id,
            name: r.name,
            alert_rule_id: r.alert_rule_id,
            asset: r.asset,
            metric: r.metric,
            labels: r.labels,
            kind: r.kind,
            rate: r.rate,
            op: r.op,
            value: r.value,
            for_secs: r.for_secs,
            k: r.k,
            warmup: r.warmup,
            alpha: r.alpha,
            severity: r.severity,
            enabled: r.enabled,
        }
    }
}

/// A rule: `threshold` (`metric` `op` `value` for `for_secs`) or `baseline` (|z| > `k` against
/// the series' EWMA mean and variance with weight `alpha`, after `warmup` samples). With
/// `rate`, the per-second rate of a counter is compared instead of its value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInputBody {
    pub name: String,
    /// One asset (name or id); every asset of the tenant when absent.
    #[serde(default)]
    pub asset: Option<String>,
    pub metric: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub rate: bool,
    #[serde(default)]
    pub op: Option<String>,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub for_secs: Option<u32>,
    #[serde(default)]
    pub k: Option<f64>,
    #[serde(default)]
    pub warmup: Option<u32>,
    #[serde(default)]
    pub alpha: Option<f64>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

fn rule_input(b: RuleInputBody) -> RuleInput {
    RuleInput {
        name: b.name,
        asset: b.asset,
        metric: b.metric,
        labels: b.labels,
        kind: b.kind,
        rate: b.rate,
        op: b.op,
        value: b.value,
        for_secs: b.for_secs,
        k: b.k,
        warmup: b.warmup,
        alpha: b.alpha,
        severity: b.severity,
        enabled: b.enabled,
    }
}

/// An asset's scrape target.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/assets/{asset}/metrics-target",
    tag = "metrics", params(("tenant" = String, Path), ("asset" = String, Path)),
    responses((status = 200, body = TargetBody), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_target(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, asset)): Path<(String, String)>,
) -> Response {
    match st.monitor.metrics_target(&p, &tenant, &asset, &meta).await {
        Ok(Some(t)) => Json(TargetBody::from(t)).into_response(),
        Ok(None) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "the asset has no metrics target",
        )
        .into_response(),
        Err(e) => monitor_error(e),
    }
}

/// Sets where an asset's metrics are scraped from, and how often (due at once).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/assets/{asset}/metrics-target",
    tag = "metrics", params(("tenant" = String, Path), ("asset" = String, Path)),
    request_body = TargetInput,
    responses((status = 200, body = TargetBody), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_target(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, asset)): Path<(String, String)>,
    ApiJson(b): ApiJson<TargetInput>,
) -> Response {
    match st
        .monitor
        .set_metrics_target(
            &p,
            &tenant,
            &asset,
            &b.url,
            b.interval_secs.unwrap_or(60),
            &meta,
        )
        .await
    {
        Ok(t) => Json(TargetBody::from(t)).into_response(),
        Err(e) => monitor_error(e),
    }
}

/// Stops scraping an asset (its samples stay for the retention).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/assets/{asset}/metrics-target",
    tag = "metrics", params(("tenant" = String, Path), ("asset" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_target(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, asset)): Path<(String, String)>,
) -> Response {
    match st
        .monitor
        .remove_metrics_target(&p, &tenant, &asset, &meta)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => monitor_error(e),
    }
}

/// Scrapes an asset now (to check its target), whatever its schedule.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/assets/{asset}/metrics-target/scrape",
    tag = "metrics", params(("tenant" = String, Path), ("asset" = String, Path)),
    responses((status = 200, body = ScrapeBody), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn scrape(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, asset)): Path<(String, String)>,
) -> Response {
    match st.monitor.scrape_now(&p, &tenant, &asset, &meta).await {
        Ok(r) => Json(ScrapeBody::from(r)).into_response(),
        Err(e) => monitor_error(e),
    }
}

/// The metric names an asset has series of.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/assets/{asset}/metrics",
    tag = "metrics", params(("tenant" = String, Path), ("asset" = String, Path)),
    responses((status = 200, body = [MetricNameBody]), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn names(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, asset)): Path<(String, String)>,
) -> Response {
    match st.monitor.metric_names(&p, &tenant, &asset, &meta).await {
        Ok(v) => Json(
            v.into_iter()
                .map(|n| MetricNameBody {
                    name: n.name,
                    series: n.series,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => monitor_error(e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// RFC 3339 (default: an hour before `to`).
    #[serde(default)]
    pub from: Option<String>,
    /// RFC 3339 (default: now).
    #[serde(default)]
    pub to: Option<String>,
    /// At most this many points per series (10 to 5000; default 500).
    #[serde(default)]
    pub points: Option<u32>,
}

fn time_of(what: &str, s: &Option<String>) -> Result<Option<Timestamp>, ApiError> {
    match s {
        None => Ok(None),
        Some(s) => OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| Some(Timestamp::from_datetime(t)))
            .map_err(|_| ApiError::bad_request(format!("{what} {s:?} is not an RFC 3339 time"))),
    }
}

/// A metric's series on an asset over a time range (averaged into at most `points` buckets),
/// with the asset's alerts in the range.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/assets/{asset}/metrics/{metric}",
    tag = "metrics",
    params(("tenant" = String, Path), ("asset" = String, Path), ("metric" = String, Path),
        ("from" = Option<String>, Query), ("to" = Option<String>, Query),
        ("points" = Option<u32>, Query)),
    responses((status = 200, body = QueryBody), (status = 400, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn query(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, asset, metric)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Response {
    let (from, to) = match (time_of("from", &q.from), time_of("to", &q.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    match st
        .monitor
        .metric_query(
            &p,
            &tenant,
            &asset,
            &metric,
            from,
            to,
            q.points.unwrap_or(500),
            &meta,
        )
        .await
    {
        Ok(q) => Json(query_body(q)).into_response(),
        Err(e) => monitor_error(e),
    }
}

/// The metric rules of a tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/metric-rules", tag = "metrics",
    params(("tenant" = String, Path)),
    responses((status = 200, body = [RuleBody]), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_rules(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> Response {
    match st.monitor.metric_rules(&p, &tenant, &meta).await {
        Ok(v) => Json(v.into_iter().map(RuleBody::from).collect::<Vec<_>>()).into_response(),
        Err(e) => monitor_error(e),
    }
}

/// Creates a threshold or baseline rule; its alerts carry the rule id `parapet-metric-<name>`.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/metric-rules", tag = "metrics",
    params(("tenant" = String, Path)), request_body = RuleInputBody,
    responses((status = 201, body = RuleBody), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_rule(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(b): ApiJson<RuleInputBody>,
) -> Response {
    match st
        .monitor
        .create_metric_rule(&p, &tenant, &rule_input(b), &meta)
        .await
    {
        Ok(r) => (StatusCode::CREATED, Json(RuleBody::from(r))).into_response(),
        Err(e) => monitor_error(e),
    }
}

/// Replaces a rule (by name or id); what it learned starts again.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/metric-rules/{rule}", tag = "metrics",
    params(("tenant" = String, Path), ("rule" = String, Path)), request_body = RuleInputBody,
    responses((status = 200, body = RuleBody), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update_rule(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, rule)): Path<(String, String)>,
    ApiJson(b): ApiJson<RuleInputBody>,
) -> Response {
    match st
        .monitor
        .update_metric_rule(&p, &tenant, &rule, &rule_input(b), &meta)
        .await
    {
        Ok(r) => Json(RuleBody::from(r)).into_response(),
        Err(e) => monitor_error(e),
    }
}

/// Deletes a rule (by name or id).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/metric-rules/{rule}", tag = "metrics",
    params(("tenant" = String, Path), ("rule" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_rule(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, rule)): Path<(String, String)>,
) -> Response {
    match st
        .monitor
        .delete_metric_rule(&p, &tenant, &rule, &meta)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => monitor_error(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Console: an asset's metrics, one chart per page, alerts marked.

#[derive(Template)]
#[template(path = "monitor_metrics.html")]
struct MetricsPage {
    c: Chrome,
    tenant: String,
    asset: String,
    metric: String,
    names: Vec<(String, u64)>,
    target: Option<TargetBody>,
    hours: u32,
    chart_svg: String,
    series: usize,
    alerts: Vec<AlertMarkBody>,
    rules: Vec<RuleBody>,
}

#[derive(Debug, Default, Deserialize)]
struct ConsoleQuery {
    #[serde(default)]
    metric: String,
    #[serde(default)]
    hours: Option<u32>,
}

async fn console_metrics(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path((tenant, asset)): Path<(String, String)>,
    axum::extract::Query(cq): axum::extract::Query<ConsoleQuery>,
) -> Response {
    let m = &st.monitor;
    let names = match m.metric_names(&u.p, &tenant, &asset, &u.meta).await {
        Ok(n) => n,
        Err(parapet_monitor::MonitorError::Iam(e)) => return failure(e),
        Err(e) => return monitor_error(e),
    };
    let target = match m.metrics_target(&u.p, &tenant, &asset, &u.meta).await {
        Ok(t) => t.map(TargetBody::from),
        Err(e) => return monitor_error(e),
    };
    let rules = m
        .metric_rules(&u.p, &tenant, &u.meta)
        .await
        .map(|v| v.into_iter().map(RuleBody::from).collect())
        .unwrap_or_default();
    let metric = if cq.metric.is_empty() {
        names
            .iter()
            .find(|n| n.name == "node_load1")
            .or_else(|| names.first())
            .map(|n| n.name.clone())
            .unwrap_or_default()
    } else {
        cq.metric.clone()
    };
    let hours = cq.hours.unwrap_or(1).clamp(1, 24 * 366);
    let (chart_svg, series, alerts, asset_name) = if metric.is_empty() {
        (String::new(), 0, Vec::new(), asset.clone())
    } else {
        let to = m.now();
        match m
            .metric_query(
                &u.p,
                &tenant,
                &asset,
                &metric,
                Some(Timestamp(to.0 - i64::from(hours) * 3_600_000)),
                Some(to),
                400,
                &u.meta,
            )
            .await
        {
            Ok(q) => {
                let body = query_body(q);
                (chart_svg(&body), body.series.len(), body.alerts, body.asset)
            }
            Err(e) => return monitor_error(e),
        }
    };
    let page = MetricsPage {
        c: u.chrome("Metrics"),
        tenant,
        asset: asset_name,
        metric,
        names: names.into_iter().map(|n| (n.name, n.series)).collect(),
        target,
        hours,
        chart_svg,
        series,
        alerts,
        rules,
    };
    render(StatusCode::OK, &page, u.set_csrf.clone())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart of every series (at most 8 drawn), the time axis from `from` to `to`, each alert
/// a red vertical line with its title.
fn chart_svg(q: &QueryBody) -> String {
    const W: f64 = 720.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 70.0;
    const TOP: f64 = 10.0;
    let pw = W - LEFT - 10.0;
    let ph = H - TOP - 30.0;
    let (from, to) = (
        q.series
            .iter()
            .flat_map(|s| s.points.first().map(|p| p.0))
            .chain(q.alerts.iter().map(|a| a.at))
            .min(),
        q.series
            .iter()
            .flat_map(|s| s.points.last().map(|p| p.0))
            .chain(q.alerts.iter().map(|a| a.at))
            .max(),
    );
    let (Some(from), Some(to)) = (from, to) else {
        return String::new();
    };
    let span = ((to - from).max(1)) as f64;
    let values = q
        .series
        .iter()
        .take(8)
        .flat_map(|s| s.points.iter().map(|p| p.1));
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        hi = lo + 1.0;
    }
    let x = |t: i64| LEFT + (t - from) as f64 / span * pw;
    let y = |v: f64| TOP + ph - (v - lo) / (hi - lo) * ph;
    let mut svg = format!(
        "<svg class=\"chart metrics\" role=\"img\" aria-label=\"{} over time\" width=\"{W}\" \
         height=\"{H}\" viewBox=\"0 0 {W} {H}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <text x=\"0\" y=\"{}\" font-size=\"10\">{}</text>\
         <text x=\"0\" y=\"{}\" font-size=\"10\">{}</text>\
         <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"currentColor\"/>\
         <text x=\"{LEFT}\" y=\"{}\" font-size=\"10\">{}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
        esc(&q.metric),
        TOP + 8.0,
        fmt_value(hi),
        TOP + ph,
        fmt_value(lo),
        TOP + ph,
        W - 10.0,
        TOP + ph,
        H - 8.0,
        esc(&Timestamp(from).rfc3339()),
        W - 10.0,
        H - 8.0,
        esc(&Timestamp(to).rfc3339()),
    );
    const COLOURS: [&str; 8] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf",
    ];
    for (i, s) in q.series.iter().take(8).enumerate() {
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
            .collect();
        let colour = COLOURS.get(i).copied().unwrap_or("#000");
        svg.push_str(&format!(
            "<polyline class=\"series\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" \
             points=\"{}\"><title>{}{{{}}}</title></polyline>",
            pts.join(" "),
            esc(&q.metric),
            esc(&s.labels)
        ));
    }
    for a in &q.alerts {
        let ax = x(a.at);
        svg.push_str(&format!(
            "<line class=\"alert-mark\" x1=\"{ax:.1}\" y1=\"{TOP}\" x2=\"{ax:.1}\" y2=\"{}\" \
             stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"4 2\"><title>{} ({}) at {}\
             </title></line>",
            TOP + ph,
            esc(&a.title),
            esc(&a.severity),
            esc(&Timestamp(a.at).rfc3339())
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn fmt_value(v: f64) -> String {
    if v.abs() >= 1e6 || (v != 0.0 && v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        format!("{v:.3}")
    }
}
