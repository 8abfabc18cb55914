//! Notification of incidents through `parapet-notify` (X.1642 8.6.1, 8.6.4, 7.2.2.3): SLA
//! escalations page the persons of the escalation level, the incident's tenant is told (by hand,
//! or automatically when the notification-time SLA falls due), and the affected-tenant check
//! warns every other tenant running the same weakness without telling it anything about the
//! others. Every message is queued in the transaction that records its cause.

use std::collections::BTreeMap;

use parapet_iam::{Action, IamError, IamResult, Principal, RequestMeta};
use parapet_notify::{Message, NotifyService};
use parapet_store::{
    AuditEvent, AuditOutcome, OutboxItem, Page, Software, StoreError, Tenant, TenantMatch,
};
use parapet_types::{TenantCtx, TenantId, TenantKind, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::sla::{Fired, SlaTimer};
use crate::{Incident, IncidentService, from_row, parse_id, store_err, to_row};

/// A weakness to look for in the other tenants' inventories: an OS or application version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weakness {
    pub name: String,
    pub version: String,
    /// The operating system (else an application or package).
    #[serde(default)]
    pub os: bool,
}

/// What the affected-tenant check did (for the provider's staff only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedCheck {
    /// The reference the warned tenants see.
    pub reference: Uuid,
    pub weaknesses: Vec<Weakness>,
    /// Names of the tenants warned.
    pub tenants: Vec<String>,
    /// Messages queued (one per channel of each tenant's security contact).
    pub messages: usize,
    /// Tenants found without any channel (recorded, but nobody could be told).
    pub unreachable: Vec<String>,
}

fn label(w: &Weakness) -> String {
    let kind = if w.os {
        "operating system"
    } else {
        "application"
    };
    if w.version.is_empty() {
        format!("{} ({kind})", w.name)
    } else {
        format!("{} {} ({kind})", w.name, w.version)
    }
}

/// The incident's message to its own tenant.
pub(crate) fn tenant_notice(i: &Incident, text: &str) -> Message {
    Message {
        source: format!("incident:{}", i.id),
        severity: Some(i.severity.as_str().into()),
        subject: format!(
            "[{}] Security incident on your service: {}",
            i.severity.as_str(),
            i.title
        ),
        body: format!(
            "{text}\n\nIncident {} (severity {}), opened {}, now in step {}.",
            i.id,
            i.severity.as_str(),
            i.opened_at.rfc3339(),
            i.step.as_str()
        ),
        event_at: i.opened_at,
    }
}

/// The page of a response team member (or, escalated, of their deputy).
pub(crate) fn page_message(
    i: &Incident,
    tenant_name: &str,
    pg: &crate::activation::TeamPage,
    to: &str,
    escalated: bool,
) -> Message {
    let why = if escalated {
        format!(
            "{} did not acknowledge their page as {} in time: you are their deputy. ",
            pg.member, pg.role
        )
    } else {
        String::new()
    };
    Message {
        source: format!("incident:{}", i.id),
        severity: Some(i.severity.as_str().into()),
        subject: format!(
            "[plan {}] {to}: you are paged as {} for incident {} ({tenant_name})",
            pg.plan, pg.role, i.title
        ),
        body: format!(
            "{why}The emergency response plan {} was activated for incident {} of tenant \
             {tenant_name} (severity {}, step {}). Acknowledge with: parapet incident ack-page \
             {} --plan {}",
            pg.plan,
            i.id,
            i.severity.as_str(),
            i.step.as_str(),
            i.id,
            pg.plan
        ),
        event_at: pg.paged_at,
    }
}

impl IncidentService {
    /// Pages the deputies of the pages that escalated.
    pub(crate) async fn messages_for_escalated_pages(
        &self,
        provider: &Tenant,
        tenant: &Tenant,
        i: &Incident,
        escalated: &[crate::activation::PageEscalation],
    ) -> IamResult<Vec<OutboxItem>> {
        let Some(n) = self.notifier() else {
            return Ok(Vec::new());
        };
        let mut items = Vec::new();
        for e in escalated {
            let Some(pg) = i
                .pages
                .iter()
                .find(|p| p.plan == e.plan && p.member == e.member)
            else {
                continue;
            };
            let msg = page_message(i, &tenant.name, pg, &e.deputy, true);
            items.extend(
                n.page_persons(provider, std::slice::from_ref(&e.deputy), &msg)
                    .await?,
            );
        }
        Ok(items)
    }

    pub(crate) fn notifier(&self) -> Option<&std::sync::Arc<NotifyService>> {
        self.notify.as_ref()
    }

    /// The pages and notices the timers that fired call for: each escalation level pages its
    /// persons' channels (provider); when the notification-time SLA falls due and the tenant was
    /// not told yet, its security contact is told now and the incident records it.
    pub(crate) async fn messages_for_fired(
        &self,
        provider: &Tenant,
        tenant: &Tenant,
        i: &mut Incident,
        fired: &[Fired],
        now: Timestamp,
    ) -> IamResult<Vec<OutboxItem>> {
        let Some(n) = self.notifier() else {
            return Ok(Vec::new());
        };
        let mut items = Vec::new();
        for f in fired {
            match f.escalation {
                Some((level, round)) if !f.notify.is_empty() => {
                    let msg = Message {
                        source: format!("incident:{}", i.id),
                        severity: Some(i.severity.as_str().into()),
                        subject: format!(
                            "[escalation level {} round {}] {} SLA breached: {} ({})",
                            level + 1,
                            round + 1,
                            f.timer.as_str(),
                            i.title,
                            tenant.name
                        ),
                        body: format!(
                            "Incident {} of tenant {} (severity {}, step {}, responsible {}) \
                             breached its {} target at {}. Acknowledge it to stop the escalation.",
                            i.id,
                            tenant.name,
                            i.severity.as_str(),
                            i.step.as_str(),
                            i.current_responsible(),
                            f.timer.as_str(),
                            f.due_at.rfc3339()
                        ),
                        event_at: f.due_at,
                    };
                    items.extend(n.page_persons(provider, &f.notify, &msg).await?);
                }
                None if f.timer == SlaTimer::Notify && i.notified_at.is_none() => {
                    let text = "Automatic notice at the notification deadline of the SLA: a \
                                security incident affects your service and is being handled.";
                    let msg = tenant_notice(i, text);
                    items.extend(n.tell_tenant_of_incident(tenant, &msg).await?);
                    i.notify_tenant(text, "system", now)
                        .map_err(|e| IamError::Internal(e.to_string()))?;
                }
                _ => {}
            }
        }
        Ok(items)
    }

    /// The affected-tenant check (X.1642 8.6.4): finds every other tenant whose inventory runs
    /// one of `weaknesses` (or, when none is given, the OS and applications of the incident's
    /// affected assets, its `asset` observables), and queues one warning per tenant to its
    /// security contact, naming only that tenant's own assets. The incident records the check as
    /// an internal note; the tenant of the incident learns nothing of the others. Provider staff
    /// only.
    pub async fn check_affected_tenants(
        &self,
        p: &Principal,
        id: &str,
        weaknesses: Vec<Weakness>,
        meta: &RequestMeta,
    ) -> IamResult<AffectedCheck> {
        let Some(n) = self.notifier().cloned() else {
            return Err(IamError::Unavailable(
                "notification is not configured on this server".into(),
            ));
        };
        let id = parse_id(id)?;
        let (t, row, mut i) = self.load(p, id, Action::IncidentHandle, meta).await?;
        if p.tenant.kind != TenantKind::Provider {
            return Err(IamError::Forbidden(
                "only the provider's staff check other tenants".into(),
            ));
        }
        let provider = self
            .iam
            .resolve(p, &p.tenant.id.to_string(), Action::AssetCorrelate, meta)
            .await?;
        let pctx = TenantCtx::new(provider.id);
        let mut wanted: Vec<Weakness> = Vec::new();
        for w in weaknesses {
            let name = w.name.trim().to_string();
            if name.is_empty() || name.len() > 200 || w.version.len() > 100 {
                return Err(IamError::Invalid(
                    "a weakness needs a software name (at most 200 characters) and a version"
                        .into(),
                ));
            }
            wanted.push(Weakness {
                name,
                version: w.version.trim().to_string(),
                os: w.os,
            });
        }
        if wanted.is_empty() {
            for o in i.observables.iter().filter(|o| o.kind == "asset") {
                let a = match self.store.get_asset(TenantCtx::new(t.id), &o.value).await {
                    Ok(a) => a,
                    Err(StoreError::NotFound) => {
                        return Err(IamError::Invalid(format!(
                            "the affected asset {:?} is not in tenant {}'s inventory",
                            o.value, t.name
                        )));
                    }
                    Err(e) => return Err(e.into()),
                };
                if let Some(os) = &a.os {
                    wanted.push(Weakness {
                        name: os.name.clone(),
                        version: os.version.clone(),
                        os: true,
                    });
                }
                for s in &a.applications {
                    wanted.push(Weakness {
                        name: s.name.clone(),
                        version: s.version.clone(),
                        os: false,
                    });
                }
            }
        }
        wanted.dedup();
        if wanted.is_empty() {
            return Err(IamError::Invalid(
                "give the weakness (software and version) or add the affected asset to the \
                 incident as an observable of kind asset"
                    .into(),
            ));
        }
        // Which other tenants run what.
        let mut hits: BTreeMap<TenantId, Vec<Weakness>> = BTreeMap::new();
        for w in &wanted {
            let sw = Software {
                name: w.name.clone(),
                version: w.version.clone(),
            };
            let found: Vec<TenantMatch> = self.store.tenants_running(pctx, &sw, w.os).await?;
            for m in found {
                if m.tenant != t.id && m.tenant != provider.id {
                    hits.entry(m.tenant).or_default().push(w.clone());
                }
            }
        }
        let reference = self
            .env
            .new_id()
            .map_err(|e| IamError::Internal(e.to_string()))?;
        let now = self.env.now();
        let mut items = Vec::new();
        let mut events = Vec::new();
        let mut tenants = Vec::new();
        let mut unreachable = Vec::new();
        for (tid, ws) in &hits {
            let other = self.store.get_tenant(pctx, &tid.to_string()).await?;
            let assets = self
                .store
                .list_assets(
                    TenantCtx::new(other.id),
                    &Default::default(),
                    &Page {
                        after: None,
                        limit: 1000,
                    },
                )
                .await?;
            let matches = |a: &parapet_store::Asset| {
                ws.iter().any(|w| {
                    if w.os {
                        a.os.as_ref().is_some_and(|o| {
                            o.name.eq_ignore_ascii_case(&w.name) && o.version == w.version
                        })
                    } else {
                        a.applications
                            .iter()
                            .any(|s| s.name.eq_ignore_ascii_case(&w.name) && s.version == w.version)
                    }
                })
            };
            let names: Vec<String> = assets
                .iter()
                .filter(|a| matches(a))
                .map(|a| a.name.clone())
                .collect();
            let shown: Vec<&str> = names.iter().take(20).map(String::as_str).collect();
            let more = names.len().saturating_sub(shown.len());
            let list = ws.iter().map(label).collect::<Vec<_>>().join(", ");
            let msg = Message {
                source: format!("advisory:{reference}"),
                severity: Some(i.severity.as_str().into()),
                subject: format!("Security advisory: {list} on your assets"),
                body: format!(
                    "While handling a security event, the provider's security team found a \
                     weakness in {list}, which your inventory shows on: {}{}. Please apply the \
                     vendor's fix or mitigation, or contact the provider's security team. \
                     Reference: {reference}.",
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
                event_at: now,
            };
            let queued = n.tell_tenant(&other, &msg).await?;
            if queued.is_empty() {
                unreachable.push(other.name.clone());
            }
            events.push(AuditEvent {
                time: now,
                tenant: Some(other.id),
                actor: p.actor(),
                action: "notify.advisory".into(),
                target: format!("tenant:{}", other.name),
                source_ip: meta.source_ip.clone(),
                user_agent: meta.user_agent.clone(),
                outcome: AuditOutcome::Success,
                details: json!({"reference": reference, "weaknesses": ws, "assets": names.len(),
                                "messages": queued.len()}),
            });
            items.extend(queued);
            tenants.push(other.name.clone());
        }
        let list = wanted.iter().map(label).collect::<Vec<_>>().join(", ");
        let note = format!(
            "Affected-tenant check {reference} for {list}: {} other tenant(s) warned{}{}.",
            tenants.len(),
            if tenants.is_empty() {
                String::new()
            } else {
                format!(" ({})", tenants.join(", "))
            },
            if unreachable.is_empty() {
                String::new()
            } else {
                format!("; without any channel: {}", unreachable.join(", "))
            }
        );
        i.add_note(&note, true, &p.login_name(), now)
            .map_err(|e| IamError::Invalid(e.to_string()))?;
        // The check's own record belongs to the provider: the incident's tenant reads its audit
        // trail and must not learn of the others.
        events.push(AuditEvent {
            time: now,
            tenant: Some(provider.id),
            actor: p.actor(),
            action: "incident.affected-tenants-checked".into(),
            target: format!("incident:{}/{id}", t.name),
            source_ip: meta.source_ip.clone(),
            user_agent: meta.user_agent.clone(),
            outcome: AuditOutcome::Success,
            details: json!({"reference": reference, "weaknesses": wanted, "tenants": tenants,
                            "messages": items.len()}),
        });
        let new_row = to_row(&i, row.version + 1, now)?;
        self.store
            .update_incident_with_outbox(pctx, &new_row, &events, &items)
            .await
            .map_err(|e| store_err(e, id))?;
        let _ = from_row(&new_row)?;
        Ok(AffectedCheck {
            reference,
            weaknesses: wanted,
            tenants,
            messages: items.len(),
            unreachable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakness_labels_say_what_kind() {
        let w = Weakness {
            name: "OpenSSL".into(),
            version: "3.0.13".into(),
            os: false,
        };
        assert_eq!(label(&w), "OpenSSL 3.0.13 (application)");
        let w = Weakness {
            name: "Ubuntu".into(),
            version: String::new(),
            os: true,
        };
        assert_eq!(label(&w), "Ubuntu (operating system)");
    }
}
