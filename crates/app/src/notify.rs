//! Notification over HTTP (X.1642 8.6.1, 7.2.2.6(2)): a tenant's channels, its outbox and its
//! dead letters, under `/api/v1/tenants/{tenant}/notify/…`, and the console page
//! `/console/tenants/{tenant}/notify`. Everything is decided by
//! [`parapet_notify::NotifyService`] after `authz` (`NotifyRead`, `NotifyManage`).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use parapet_iam::authz::{Action, authorize};
use parapet_iam::{Principal, RequestMeta};
use parapet_notify::{Caller, Channel, ChannelSpec};
use parapet_store::{OutboxItem, OutboxStatus, Page};
use parapet_types::{TenantKind, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::AppState;
use crate::api::page_of;
use crate::console::{
    Chrome, ConsoleUser, CsrfOnly, csrf_ok, failure, forbidden_form, form_error, render, see_other,
};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth, Meta};

/// The API routes (nested under `/api/v1`).
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/tenants/{tenant}/notify/channels",
            get(list_channels).post(add_channel),
        )
        .route(
            "/tenants/{tenant}/notify/channels/{channel}",
            get(get_channel).delete(remove_channel),
        )
        .route(
            "/tenants/{tenant}/notify/channels/{channel}/test",
            post(test_channel),
        )
        .route("/tenants/{tenant}/notify/outbox", get(outbox))
        .route("/tenants/{tenant}/notify/stats", get(stats))
        .route("/tenants/{tenant}/notify/dead-letters", get(dead_letters))
        .route("/tenants/{tenant}/notify/outbox/{id}", get(message))
        .route("/tenants/{tenant}/notify/outbox/{id}/retry", post(retry))
        .route(
            "/tenants/{tenant}/notify/outbox/{id}/discard",
            post(discard),
        )
        .route("/incidents/{id}/affected-tenants", post(affected_tenants))
}

/// The console routes.
pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/notify", get(own_page))
        .route(
            "/console/tenants/{tenant}/notify",
            get(page).post(console_add),
        )
        .route(
            "/console/tenants/{tenant}/notify/channels/{channel}/{verb}",
            post(console_channel),
        )
        .route(
            "/console/tenants/{tenant}/notify/outbox/{id}/{verb}",
            post(console_message),
        )
        .route(
            "/console/incidents/{id}/affected-tenants",
            post(console_affected),
        )
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_channels,
        add_channel,
        get_channel,
        remove_channel,
        test_channel,
        outbox,
        dead_letters,
        message,
        retry,
        discard,
        affected_tenants,
        stats
    ),
    components(schemas(
        ChannelView,
        ChannelInput,
        CreatedChannelView,
        MessageView,
        AffectedInput,
        WeaknessInput,
        AffectedView,
        StatsView
    ))
)]
pub struct NotifyApi;

fn caller(p: &Principal, meta: &RequestMeta) -> Caller {
    Caller {
        actor: p.actor(),
        source_ip: meta.source_ip.clone(),
        user_agent: meta.user_agent.clone(),
    }
}

/// A notification channel. Webhook URLs are shown as scheme and host only.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChannelView {
    pub id: String,
    pub tenant: String,
    pub name: String,
    /// `email`, `webhook` or `sms`.
    pub kind: String,
    /// Recipients, or the webhook's scheme and host.
    pub destination: String,
    /// `generic` or `slack` (webhooks).
    pub format: Option<String>,
    /// The person the channel pages in escalations.
    pub person: Option<String>,
    pub security_contact: bool,
    /// `7x24` or `5x8`.
    pub hours: String,
    /// The route: least severity and sources taken (none: all).
    pub min_severity: Option<String>,
    pub sources: Vec<String>,
    pub created_at: String,
}

fn channel_view(tenant: &str, c: &Channel) -> ChannelView {
    ChannelView {
        id: c.id.to_string(),
        tenant: tenant.to_string(),
        name: c.name.clone(),
        kind: c.kind.as_str().into(),
        destination: c.destination(),
        format: (c.kind == parapet_notify::ChannelKind::Webhook).then(|| match c.config.format {
            parapet_notify::WebhookFormat::Generic => "generic".into(),
            parapet_notify::WebhookFormat::Slack => "slack".into(),
        }),
        person: c.config.person.clone(),
        security_contact: c.config.security_contact,
        hours: c.config.hours.as_str().into(),
        min_severity: c.config.min_severity.clone(),
        sources: c.config.sources.clone(),
        created_at: c.created_at.rfc3339(),
    }
}

/// A new channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    /// Letters, digits and `-_.`; unique within the tenant regardless of case.
    pub name: String,
    /// `email`, `webhook` or `sms`.
    pub kind: String,
    /// E-mail addresses or phone numbers (`+` and 7 to 15 digits).
    #[serde(default)]
    pub to: Vec<String>,
    /// The webhook receiver (http:// or https://).
    #[serde(default)]
    pub url: Option<String>,
    /// `generic` (default) or `slack`.
    #[serde(default)]
    pub format: Option<String>,
    /// The provider user this channel pages when an escalation level names them.
    #[serde(default)]
    pub person: Option<String>,
    /// The tenant's security contact (incident notices, affected-tenant warnings).
    #[serde(default)]
    pub security_contact: bool,
    /// `7x24` (default) or `5x8` (Monday to Friday, 09:00 to 17:00 UTC).
    #[serde(default)]
    pub hours: Option<String>,
    /// Route: only alerts and incidents of at least this severity.
    #[serde(default)]
    pub min_severity: Option<String>,
    /// Route: only these sources (`alert`, `rule:<rule id>`, `incident`); none: all.
    #[serde(default)]
    pub sources: Vec<String>,
}

/// A created channel; `secret` (webhooks) signs every request and is shown only here.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedChannelView {
    pub channel: ChannelView,
    pub secret: Option<String>,
}

/// A message of the outbox.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub tenant: String,
    pub channel_id: String,
    /// The channel's name (absent when it was removed).
    pub channel: Option<String>,
    pub source: String,
    pub severity: Option<String>,
    pub subject: String,
    /// `pending`, `delivered`, `dead` or `discarded`.
    pub status: String,
    pub attempts: u32,
    pub event_at: String,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    /// From the event to the delivery, in milliseconds (the notification time).
    pub latency_ms: Option<i64>,
    pub last_error: Option<String>,
}

fn message_view(tenant: &str, channels: &[Channel], m: &OutboxItem) -> MessageView {
    MessageView {
        id: m.id.to_string(),
        tenant: tenant.to_string(),
        channel_id: m.channel.to_string(),
        channel: channels
            .iter()
            .find(|c| c.id == m.channel)
            .map(|c| c.name.clone()),
        source: m.source.clone(),
        severity: m.severity.clone(),
        subject: m.subject.clone(),
        status: m.status.as_str().into(),
        attempts: m.attempts,
        event_at: m.event_at.rfc3339(),
        created_at: m.created_at.rfc3339(),
        next_attempt_at: (m.status == OutboxStatus::Pending).then(|| m.next_attempt_at.rfc3339()),
        delivered_at: m.delivered_at.map(Timestamp::rfc3339),
        latency_ms: m.delivered_at.map(|d| (d.0 - m.event_at.0).max(0)),
        last_error: m.last_error.clone(),
    }
}

/// A tenant's notification channels, by name.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/notify/channels", tag = "notify",
    params(("tenant" = String, Path)),
    responses((status = 200, body = [ChannelView]), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_channels(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<ChannelView>>> {
    let t = st
        .iam
        .resolve(&p, &tenant, Action::NotifyRead, &meta)
        .await?;
    let list = st.notify.list_channels(&t).await?;
    Ok(Json(
        list.iter().map(|c| channel_view(&t.name, c)).collect(),
    ))
}

/// Add a channel. A webhook's signing secret is in the answer, and nowhere else ever again.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/notify/channels", tag = "notify",
    params(("tenant" = String, Path)), request_body = ChannelInput,
    responses((status = 201, body = CreatedChannelView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_channel(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<ChannelInput>,
) -> ApiResult<(StatusCode, Json<CreatedChannelView>)> {
    let spec = ChannelSpec {
        name: body.name,
        kind: body.kind,
        to: body.to,
        url: body.url,
        format: body.format,
        person: body.person,
        security_contact: body.security_contact,
        hours: body.hours,
        min_severity: body.min_severity,
        sources: body.sources,
    };
    spec.validate()
        .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m))?;
    let t = st
        .iam
        .resolve(&p, &tenant, Action::NotifyManage, &meta)
        .await?;
    let c = st.notify.add_channel(&t, &caller(&p, &meta), &spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedChannelView {
            channel: channel_view(&t.name, &c.channel),
            secret: c.secret,
        }),
    ))
}

/// A channel, by id or name.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/notify/channels/{channel}", tag = "notify",
    params(("tenant" = String, Path), ("channel" = String, Path)),
    responses((status = 200, body = ChannelView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_channel(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, channel)): Path<(String, String)>,
) -> ApiResult<Json<ChannelView>> {
    let t = st
        .iam
        .resolve(&p, &tenant, Action::NotifyRead, &meta)
        .await?;
    let c = st.notify.get_channel(&t, &channel).await?;
    Ok(Json(channel_view(&t.name, &c)))
}

/// Remove a channel (its undelivered messages go to the dead-letter list).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/notify/channels/{channel}", tag = "notify",
    params(("tenant" = String, Path), ("channel" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove_channel(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, channel)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let t = st
        .iam
        .resolve(&p, &tenant, Action::NotifyManage, &meta)
        .await?;
    st.notify
        .remove_channel(&t, &caller(&p, &meta), &channel)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queue a test message on a channel; follow it in the outbox.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/notify/channels/{channel}/test",
    tag = "notify", params(("tenant" = String, Path), ("channel" = String, Path)),
    responses((status = 202, body = MessageView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn test_channel(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, channel)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let t = st
        .iam
        .resolve(&p, &tenant, Action::NotifyManage, &meta)
        .await?;
    let m = st
        .notify
        .test_channel(&t, &caller(&p, &meta), &channel)
        .await?;
    let channels = st.notify.list_channels(&t).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(message_view(&t.name, &channels, &m)),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OutboxParams {
    /// `pending`, `delivered`, `dead` or `discarded`.
    pub status: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A page of messages, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    pub next_cursor: Option<String>,
}

async fn list_messages(
    st: &AppState,
    p: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    status: Option<OutboxStatus>,
    q: &OutboxParams,
) -> ApiResult<Json<MessagePage>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let t = st.iam.resolve(p, tenant, Action::NotifyRead, meta).await?;
    let items = st
        .notify
        .outbox(
            &t,
            status,
            &Page {
                after: q.cursor.clone(),
                limit: limit + 1,
            },
        )
        .await?;
    let channels = st.notify.list_channels(&t).await?;
    let page = page_of(
        items,
        limit,
        |m| m.id.to_string(),
        |m| message_view(&t.name, &channels, m),
    );
    Ok(Json(MessagePage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// A tenant's outbox: every message with its status, attempts and delivery time.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/notify/outbox", tag = "notify",
    params(("tenant" = String, Path), OutboxParams),
    responses((status = 200, body = MessagePage), (status = 400, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn outbox(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<OutboxParams>,
) -> ApiResult<Json<MessagePage>> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            OutboxStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request(format!("unknown status {s:?}")))?,
        ),
    };
    list_messages(&st, &p, &meta, &tenant, status, &q).await
}

/// The notification time of a tenant's delivered messages (X.1642 7.2.2.6(2)).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatsView {
    pub tenant: String,
    pub delivered: usize,
    /// The average time from the event to the notification.
    pub mean_ms: f64,
    pub median_ms: i64,
    pub p99_ms: i64,
    pub max_ms: i64,
}

/// The notification time of a tenant's last 10,000 delivered messages.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/notify/stats", tag = "notify",
    params(("tenant" = String, Path)),
    responses((status = 200, body = StatsView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn stats(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<StatsView>> {
    let t = st
        .iam
        .resolve(&p, &tenant, Action::NotifyRead, &meta)
        .await?;
    let s = st.notify.latency_stats(&t).await?;
    Ok(Json(StatsView {
        tenant: t.name,
        delivered: s.delivered,
        mean_ms: s.mean_ms,
        median_ms: s.median_ms,
        p99_ms: s.p99_ms,
        max_ms: s.max_ms,
    }))
}

/// A tenant's dead letters: messages whose every attempt failed.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/notify/dead-letters", tag = "notify",
    params(("tenant" = String, Path), OutboxParams),
    responses((status = 200, body = MessagePage), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn dead_letters(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<OutboxParams>,
) -> ApiResult<Json<MessagePage>> {
    if q.status.is_some() {
        return Err(ApiError::bad_request(
            "dead-letters takes no status; use /notify/outbox?status=…",
        ));
    }
    list_messages(&st, &p, &meta, &tenant, Some(OutboxStatus::Dead), &q).await
}

/// One message.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/notify/outbox/{id}", tag = "notify",
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = MessageView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn message(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<MessageView>> {
    let t = st
        .iam
        .resolve(&p, &tenant, Action::NotifyRead, &meta)
        .await?;
    let m = st.notify.message(&t, &id).await?;
    let channels = st.notify.list_channels(&t).await?;
    Ok(Json(message_view(&t.name, &channels, &m)))
}

/// Put a dead letter back in the outbox for a fresh round of attempts.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/notify/outbox/{id}/retry", tag = "notify",
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = MessageView), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn retry(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<MessageView>> {
    let t = st
        .iam
        .resolve(&p, &tenant, Action::NotifyManage, &meta)
        .await?;
    let m = st.notify.retry(&t, &caller(&p, &meta), &id).await?;
    let channels = st.notify.list_channels(&t).await?;
    Ok(Json(message_view(&t.name, &channels, &m)))
}

/// Discard a dead letter (or a pending message) for good.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/notify/outbox/{id}/discard",
    tag = "notify", params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = MessageView), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn discard(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<MessageView>> {
    let t = st
        .iam
        .resolve(&p, &tenant, Action::NotifyManage, &meta)
        .await?;
    let m = st.notify.discard(&t, &caller(&p, &meta), &id).await?;
    let channels = st.notify.list_channels(&t).await?;
    Ok(Json(message_view(&t.name, &channels, &m)))
}

/// A weakness: an OS or application (package) and its version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeaknessInput {
    pub name: String,
    #[serde(default)]
    pub version: String,
    /// The operating system (else an application or package).
    #[serde(default)]
    pub os: bool,
}

/// What to look for; with no weakness, the OS and applications of the incident's affected
/// assets (its observables of kind `asset`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AffectedInput {
    #[serde(default)]
    pub weaknesses: Vec<WeaknessInput>,
}

/// The result of the affected-tenant check (provider staff only).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AffectedView {
    /// The reference the warned tenants see.
    pub reference: String,
    pub weaknesses: Vec<WeaknessInput>,
    /// The tenants warned.
    pub tenants: Vec<String>,
    pub messages: usize,
    /// Tenants with no channel to tell them.
    pub unreachable: Vec<String>,
}

fn affected_view(c: parapet_incident::AffectedCheck) -> AffectedView {
    AffectedView {
        reference: c.reference.to_string(),
        weaknesses: c
            .weaknesses
            .into_iter()
            .map(|w| WeaknessInput {
                name: w.name,
                version: w.version,
                os: w.os,
            })
            .collect(),
        tenants: c.tenants,
        messages: c.messages,
        unreachable: c.unreachable,
    }
}

/// The affected-tenant check of an incident (X.1642 8.6.4): warn every other tenant running the
/// same weakness, telling none of them anything about the others. Provider staff only.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/affected-tenants", tag = "incidents",
    params(("id" = String, Path)), request_body = AffectedInput,
    responses((status = 200, body = AffectedView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn affected_tenants(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AffectedInput>,
) -> ApiResult<Json<AffectedView>> {
    let ws = body
        .weaknesses
        .into_iter()
        .map(|w| parapet_incident::Weakness {
            name: w.name,
            version: w.version,
            os: w.os,
        })
        .collect();
    let c = st
        .incident
        .check_affected_tenants(&p, &id, ws, &meta)
        .await?;
    Ok(Json(affected_view(c)))
}

// ---------------------------------------------------------------------------------------------
// Console

#[derive(Template)]
#[template(path = "notify_page.html")]
struct NotifyPage {
    c: Chrome,
    tenant: String,
    tenants: Vec<String>,
    channels: Vec<ChannelView>,
    messages: Vec<MessageView>,
    dead: Vec<MessageView>,
    can_manage: bool,
    /// The webhook secret of a channel just created (shown once).
    secret: Option<String>,
    latency_svg: String,
}

/// A bar per delivered message (newest right): its notification time in seconds.
fn latency_svg(messages: &[MessageView]) -> String {
    let points: Vec<(String, i64)> = messages
        .iter()
        .rev()
        .filter_map(|m| m.latency_ms.map(|l| (m.subject.clone(), l)))
        .collect();
    if points.is_empty() {
        return String::new();
    }
    let max = points.iter().map(|(_, l)| *l).max().unwrap_or(1).max(1);
    let w = 12usize;
    let width = points.len() * w + 60;
    let mut svg = format!(
        "<svg class=\"chart latency\" role=\"img\" aria-label=\"event to notification time per \
         message\" width=\"{width}\" height=\"120\" viewBox=\"0 0 {width} 120\" \
         xmlns=\"http://www.w3.org/2000/svg\"><text x=\"0\" y=\"10\" font-size=\"10\">{:.1} s</text>",
        max as f64 / 1000.0
    );
    for (i, (subject, l)) in points.iter().enumerate() {
        let h = ((*l as f64 / max as f64) * 100.0).round().max(1.0);
        let x = 50 + i * w;
        let y = 110.0 - h;
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{h}\"><title>{}: {:.3} s</title></rect>",
            w - 2,
            crate::console::escape(subject),
            *l as f64 / 1000.0
        ));
    }
    svg.push_str(
        "<line x1=\"48\" y1=\"110\" x2=\"100%\" y2=\"110\" stroke=\"currentColor\"/></svg>",
    );
    svg
}

async fn own_page(u: ConsoleUser) -> Response {
    Redirect::to(&format!("/console/tenants/{}/notify", u.p.tenant.name)).into_response()
}

async fn page_view(
    st: &AppState,
    u: &ConsoleUser,
    tenant: &str,
    error: Option<(StatusCode, String)>,
    secret: Option<String>,
) -> Response {
    let t = match st
        .iam
        .resolve(&u.p, tenant, Action::NotifyRead, &u.meta)
        .await
    {
        Ok(t) => t,
        Err(e) => return failure(e),
    };
    let page = Page {
        after: None,
        limit: 50,
    };
    let (channels, messages, dead) = match (
        st.notify.list_channels(&t).await,
        st.notify.outbox(&t, None, &page).await,
        st.notify.outbox(&t, Some(OutboxStatus::Dead), &page).await,
    ) {
        (Ok(c), Ok(m), Ok(d)) => (c, m, d),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return failure(e),
    };
    let tenants = if u.p.tenant.kind == TenantKind::Provider {
        match st.iam.list_tenants(&u.p, None, 1000).await {
            Ok(list) => list.into_iter().map(|t| t.name).collect(),
            Err(e) => return failure(e),
        }
    } else {
        Vec::new()
    };
    let mut c = u.chrome("Notifications");
    let status = match error {
        Some((s, m)) => {
            c.error = Some(m);
            s
        }
        None => StatusCode::OK,
    };
    let messages: Vec<MessageView> = messages
        .iter()
        .map(|m| message_view(&t.name, &channels, m))
        .collect();
    let p = NotifyPage {
        c,
        tenant: t.name.clone(),
        tenants,
        latency_svg: latency_svg(&messages),
        messages,
        dead: dead
            .iter()
            .map(|m| message_view(&t.name, &channels, m))
            .collect(),
        channels: channels
            .iter()
            .map(|ch| channel_view(&t.name, ch))
            .collect(),
        can_manage: authorize(&u.p, Action::NotifyManage, &t).is_ok(),
        secret,
    };
    render(status, &p, u.set_csrf.clone())
}

async fn page(State(st): State<AppState>, u: ConsoleUser, Path(tenant): Path<String>) -> Response {
    page_view(&st, &u, &tenant, None, None).await
}

#[derive(Debug, Deserialize)]
struct AddForm {
    #[serde(default)]
    csrf: String,
    name: String,
    kind: String,
    /// Recipients separated by commas (email, sms).
    #[serde(default)]
    to: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    person: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    security_contact: Option<String>,
    #[serde(default)]
    hours: String,
    #[serde(default)]
    min_severity: String,
    /// Comma-separated.
    #[serde(default)]
    sources: String,
}

async fn console_add(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(tenant): Path<String>,
    Form(f): Form<AddForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let spec = ChannelSpec {
        name: f.name.trim().to_string(),
        kind: f.kind.trim().to_string(),
        to: f
            .to
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        url: Some(f.url.trim().to_string()).filter(|s| !s.is_empty()),
        format: Some(f.format.trim().to_string()).filter(|s| !s.is_empty()),
        person: Some(f.person.trim().to_string()).filter(|s| !s.is_empty()),
        security_contact: f.security_contact.is_some(),
        hours: Some(f.hours.trim().to_string()).filter(|s| !s.is_empty()),
        min_severity: Some(f.min_severity.trim().to_string()).filter(|s| !s.is_empty()),
        sources: f
            .sources
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    };
    let t = match st
        .iam
        .resolve(&u.p, &tenant, Action::NotifyManage, &u.meta)
        .await
    {
        Ok(t) => t,
        Err(e) => return failure(e),
    };
    match st
        .notify
        .add_channel(&t, &caller(&u.p, &u.meta), &spec)
        .await
    {
        Ok(c) => page_view(&st, &u, &tenant, None, c.secret).await,
        Err(e) => match form_error(&e) {
            Some(err) => page_view(&st, &u, &tenant, Some(err), None).await,
            None => failure(e),
        },
    }
}

/// What the console's channel and message actions share first: a valid CSRF token and the
/// right to manage the tenant's notifications.
async fn console_manager(
    st: &AppState,
    headers: &HeaderMap,
    u: &ConsoleUser,
    tenant: &str,
    csrf: &str,
) -> Result<(parapet_store::Tenant, Caller), Response> {
    if !csrf_ok(headers, csrf) {
        return Err(forbidden_form());
    }
    let t = st
        .iam
        .resolve(&u.p, tenant, Action::NotifyManage, &u.meta)
        .await
        .map_err(failure)?;
    Ok((t, caller(&u.p, &u.meta)))
}

/// Back to the notification page after a console action, or the page with the error on it.
async fn after_console_action(
    st: &AppState,
    u: &ConsoleUser,
    tenant: &str,
    t: &parapet_store::Tenant,
    r: Result<(), parapet_iam::IamError>,
) -> Response {
    match r {
        Ok(()) => see_other(&format!("/console/tenants/{}/notify", t.name)),
        Err(e) => match form_error(&e) {
            Some(err) => page_view(st, u, tenant, Some(err), None).await,
            None => failure(e),
        },
    }
}

async fn console_channel(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path((tenant, channel, verb)): Path<(String, String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let (t, c) = match console_manager(&st, &headers, &u, &tenant, &f.csrf).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let r = match verb.as_str() {
        "test" => st.notify.test_channel(&t, &c, &channel).await.map(|_| ()),
        "delete" => st.notify.remove_channel(&t, &c, &channel).await,
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    after_console_action(&st, &u, &tenant, &t, r.map(drop)).await
}

async fn console_message(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path((tenant, id, verb)): Path<(String, String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let (t, c) = match console_manager(&st, &headers, &u, &tenant, &f.csrf).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let r = match verb.as_str() {
        "retry" => st.notify.retry(&t, &c, &id).await,
        "discard" => st.notify.discard(&t, &c, &id).await,
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    after_console_action(&st, &u, &tenant, &t, r.map(drop)).await
}

async fn console_affected(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    match st
        .incident
        .check_affected_tenants(&u.p, &id, Vec::new(), &u.meta)
        .await
    {
        Ok(_) => see_other(&format!("/console/incidents/{id}")),
        Err(e) => match form_error(&e) {
            Some((status, m)) => crate::console::html_page(
                status,
                format!(
                    "<!doctype html><title>Parapet</title><link rel=\"stylesheet\" \
                     href=\"/console/static/parapet.css\"><main><p class=\"error\">{}</p>\
                     <p><a href=\"/console/incidents/{}\">Back to the incident</a></p></main>",
                    crate::console::escape(&m),
                    crate::console::escape(&id)
                ),
                None,
            ),
            None => failure(e),
        },
    }
}
