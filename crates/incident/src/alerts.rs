//! Incidents from monitoring alerts (X.1642 8.6.1): one or many alerts of a tenant open an
//! incident (merged: each alert links to it, a later alert can be attached), the alerts' ids,
//! rules, hosts and first event times kept as observables and timeline; the detection time is
//! the first event's, so the SLA timers run from there. The tenant's SLA policy may let alerts
//! of a severity open incidents by themselves.

use parapet_iam::{Action, IamError, IamResult, Principal, RequestMeta};
use parapet_store::{Alert, AlertLink, StoreError, Tenant};
use parapet_types::{Actor, TenantCtx, TenantId, TenantKind, Timestamp};
use serde_json::json;
use uuid::Uuid;

use crate::model::{Incident, LinkedAlert, Opening, Severity};
use crate::{IncidentService, parse_id, refused, store_err, to_row, view_for};

/// At most this many alerts at once.
pub const MAX_ALERTS: usize = 100;

/// What opening an incident from alerts takes (everything but the alerts is optional).
#[derive(Debug, Clone, Default)]
pub struct FromAlerts {
    pub alerts: Vec<String>,
    /// Default: the first alert's title (and how many more).
    pub title: Option<String>,
    pub description: String,
    /// Default: the highest of the alerts' severities.
    pub severity: Option<Severity>,
    pub category: String,
    /// Responsible person of the detecting step (default: the caller when provider staff).
    pub responsible: Option<String>,
}

/// The incident severity of a Sigma level / alert severity.
pub fn severity_of_alert(s: &str) -> Severity {
    match s.trim().to_ascii_lowercase().as_str() {
        "critical" => Severity::Critical,
        "high" => Severity::High,
        "medium" => Severity::Medium,
        _ => Severity::Low,
    }
}

fn linked(a: &Alert) -> LinkedAlert {
    LinkedAlert {
        id: a.id.to_string(),
        rule: a.rule_id.clone(),
        title: a.title.clone(),
        severity: a.severity.clone(),
        host: a.group_key.clone(),
        first_event_at: a.first_event_at,
        last_event_at: a.last_event_at,
        events: a.count,
    }
}

fn parse_alert_ids(ids: &[String]) -> IamResult<Vec<Uuid>> {
    let mut out: Vec<Uuid> = Vec::new();
    for s in ids {
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id = Uuid::parse_str(part)
                .map_err(|_| IamError::Invalid(format!("{part:?} is not an alert id")))?;
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    if out.is_empty() {
        return Err(IamError::Invalid("give at least one alert id".into()));
    }
    if out.len() > MAX_ALERTS {
        return Err(IamError::Invalid(format!(
            "at most {MAX_ALERTS} alerts at once"
        )));
    }
    Ok(out)
}

impl IncidentService {
    /// The alerts `ids` visible to `p`, all of one tenant and none linked to an incident yet,
    /// with that tenant (checked for `action` and alert reading).
    async fn free_alerts(
        &self,
        p: &Principal,
        ids: &[Uuid],
        action: Action,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, Vec<Alert>)> {
        let links: Vec<AlertLink> = self
            .store
            .alert_links(parapet_types::TenantCtx::new(p.tenant.id), ids)
            .await?;
        for id in ids {
            if !links.iter().any(|l| l.alert == *id) {
                return Err(IamError::NotFound(format!("no alert {id}")));
            }
        }
        let mut tenants: Vec<TenantId> = links.iter().map(|l| l.tenant).collect();
        tenants.dedup();
        let [tenant] = tenants.as_slice() else {
            return Err(IamError::Invalid(
                "the alerts belong to different tenants: an incident is of one tenant".into(),
            ));
        };
        let t = self
            .iam
            .resolve(p, &tenant.to_string(), action, meta)
            .await?;
        self.iam
            .resolve(p, &tenant.to_string(), Action::AlertRead, meta)
            .await?;
        if let Some(l) = links.iter().find(|l| l.incident.is_some()) {
            let inc = l.incident.map(|i| i.to_string()).unwrap_or_default();
            return Err(IamError::Conflict(format!(
                "alert {} is already part of incident {inc}",
                l.alert
            )));
        }
        let mut alerts = Vec::with_capacity(ids.len());
        for id in ids {
            let (a, _) = self
                .store
                .get_alert(TenantCtx::new(t.id), *id, 0)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => IamError::NotFound(format!("no alert {id}")),
                    e => e.into(),
                })?;
            alerts.push(a);
        }
        Ok((t, alerts))
    }

    /// Opens one incident from alerts of one tenant (8.6.1), linking them to it.
    pub async fn open_from_alerts(
        &self,
        p: &Principal,
        n: FromAlerts,
        meta: &RequestMeta,
    ) -> IamResult<Incident> {
        let ids = parse_alert_ids(&n.alerts)?;
        let (t, alerts) = self
            .free_alerts(p, &ids, Action::IncidentOpen, meta)
            .await?;
        let responsible = match n.responsible.as_deref().filter(|r| !r.trim().is_empty()) {
            Some(r) => self.staff(r).await?,
            None if p.tenant.kind == TenantKind::Provider => p.user.username.clone(),
            None => self.staff("admin").await?,
        };
        self.open_linked(&t, alerts, n, responsible, p.login_name(), p.actor(), meta)
            .await
    }

    /// `POST /incidents` with `source: "alerts"` (or alert ids): the alerts must exist, be of
    /// tenant `t` and be in no incident yet, as for [`Self::open_from_alerts`].
    pub(crate) async fn open_with_alerts(
        &self,
        p: &Principal,
        t: &Tenant,
        n: crate::NewIncident,
        responsible: String,
        meta: &RequestMeta,
    ) -> IamResult<Incident> {
        if n.alerts.iter().all(|a| a.trim().is_empty()) {
            return Err(IamError::Invalid(
                "an incident with source \"alerts\" needs the ids of its alerts (alerts)".into(),
            ));
        }
        let ids = parse_alert_ids(&n.alerts)?;
        let (at, alerts) = self
            .free_alerts(p, &ids, Action::IncidentOpen, meta)
            .await?;
        if at.id != t.id {
            return Err(IamError::Invalid(format!(
                "the alerts are not of tenant {}",
                t.name
            )));
        }
        let f = FromAlerts {
            alerts: n.alerts,
            title: Some(n.title),
            description: n.description,
            severity: n.severity,
            category: n.category,
            responsible: None,
        };
        self.open_linked(t, alerts, f, responsible, p.login_name(), p.actor(), meta)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn open_linked(
        &self,
        t: &Tenant,
        alerts: Vec<Alert>,
        n: FromAlerts,
        responsible: String,
        actor_name: String,
        actor: Actor,
        meta: &RequestMeta,
    ) -> IamResult<Incident> {
        let severity = n.severity.unwrap_or_else(|| {
            alerts
                .iter()
                .map(|a| severity_of_alert(&a.severity))
                .min()
                .unwrap_or(Severity::Medium)
        });
        let title = match n.title.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => s.to_string(),
            None => {
                let first = alerts.first().map(|a| a.title.as_str()).unwrap_or("alert");
                match alerts.len() {
                    0 | 1 => first.to_string(),
                    k => format!("{first} (+{} more alerts)", k - 1),
                }
            }
        };
        let policy = self.effective_policy(t.id).await?;
        let now = self.env.now();
        let id = self
            .env
            .new_id()
            .map_err(|e| IamError::Internal(e.to_string()))?;
        let mut i = Incident::open(Opening {
            id,
            tenant: t.id,
            title: title.chars().take(crate::model::MAX_TITLE).collect(),
            description: n.description,
            severity,
            category: if n.category.trim().is_empty() {
                "alert".into()
            } else {
                n.category
            },
            source: "alerts".into(),
            alerts: Vec::new(),
            responsible,
            actor: actor_name.clone(),
            at: now,
            sla: policy.start(severity),
        })
        .map_err(refused)?;
        for a in &alerts {
            i.link_alert(&linked(a), &actor_name, now)
                .map_err(refused)?;
        }
        let row = to_row(&i, 1, now)?;
        let e = self.event(
            t,
            actor,
            "incident.open",
            id,
            meta,
            json!({"title": i.title, "severity": i.severity, "source": "alerts",
                   "alerts": i.alerts, "detected_at": i.detected_at, "history": i.history}),
        );
        let ids: Vec<Uuid> = alerts.iter().map(|a| a.id).collect();
        self.store
            .create_incident_from_alerts(TenantCtx::new(t.id), &row, &ids, &[e])
            .await
            .map_err(|e| match e {
                StoreError::NotFound => IamError::NotFound("an alert disappeared meanwhile".into()),
                e => e.into(),
            })?;
        metrics::counter!("parapet_incidents_opened_total", "severity" => severity.as_str())
            .increment(1);
        Ok(i)
    }

    /// Attaches further alerts of the incident's tenant to incident `id`.
    pub async fn attach_alerts(
        &self,
        p: &Principal,
        id: &str,
        alerts: &[String],
        meta: &RequestMeta,
    ) -> IamResult<Incident> {
        let id = parse_id(id)?;
        let ids = parse_alert_ids(alerts)?;
        let (t, row, mut i) = self.load(p, id, Action::IncidentHandle, meta).await?;
        let (at, found) = self
            .free_alerts(p, &ids, Action::IncidentHandle, meta)
            .await?;
        if at.id != t.id {
            return Err(IamError::Invalid(format!(
                "the alerts are not of tenant {}",
                t.name
            )));
        }
        let actor = p.login_name();
        let now = self.env.now();
        let before = i.history.len();
        for a in &found {
            i.link_alert(&linked(a), &actor, now).map_err(refused)?;
        }
        let added: Vec<_> = i.history.iter().skip(before).collect();
        let e = self.event(
            &t,
            p.actor(),
            "incident.alert-linked",
            id,
            meta,
            json!({"history": added, "alerts": ids, "detected_at": i.detected_at}),
        );
        let new_row = to_row(&i, row.version + 1, now)?;
        self.store
            .update_incident_with_alerts(TenantCtx::new(t.id), &new_row, &ids, &[e])
            .await
            .map_err(|e| store_err(e, id))?;
        Ok(view_for(p, i))
    }

    /// The incident each of `alerts` is linked to, for alert pages (alerts `p` cannot see are
    /// left out).
    pub async fn incidents_of_alerts(
        &self,
        p: &Principal,
        alerts: &[Uuid],
    ) -> IamResult<Vec<(Uuid, Uuid)>> {
        let links = self
            .store
            .alert_links(TenantCtx::new(p.tenant.id), alerts)
            .await?;
        Ok(links
            .into_iter()
            .filter_map(|l| l.incident.map(|i| (l.alert, i)))
            .collect())
    }

    /// Opens an incident (as the system) for each new alert of `tenant` whose severity reaches
    /// the tenant's SLA policy's `auto_open` (none: nothing). Returns the incidents opened.
    pub async fn auto_open(&self, tenant: &Tenant, alerts: &[Uuid]) -> IamResult<Vec<Uuid>> {
        let policy = self.effective_policy(tenant.id).await?;
        let Some(least) = policy.auto_open else {
            return Ok(Vec::new());
        };
        let provider = self.provider().await?;
        let links = self
            .store
            .alert_links(TenantCtx::new(provider.id), alerts)
            .await?;
        let mut opened = Vec::new();
        for l in links
            .iter()
            .filter(|l| l.incident.is_none() && l.tenant == tenant.id)
        {
            let (a, _) = match self
                .store
                .get_alert(TenantCtx::new(tenant.id), l.alert, 0)
                .await
            {
                Ok(x) => x,
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            // Alerts about incidents themselves (SLA breaches) never open incidents.
            if severity_of_alert(&a.severity) > least || a.rule_id == crate::SLA_BREACH_RULE {
                continue;
            }
            let responsible = self.staff("admin").await?;
            let meta = RequestMeta::default();
            match self
                .open_linked(
                    tenant,
                    vec![a],
                    FromAlerts::default(),
                    responsible,
                    "system".into(),
                    Actor::System,
                    &meta,
                )
                .await
            {
                Ok(i) => opened.push(i.id),
                // Linked by someone else meanwhile.
                Err(IamError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(opened)
    }

    /// The history's first event time of an incident's alerts, if any (for tests and views).
    pub fn detection_of(i: &Incident) -> Timestamp {
        i.detected_at.unwrap_or(i.opened_at)
    }
}
