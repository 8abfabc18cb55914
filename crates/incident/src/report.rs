//! The incident report (X.1642 8.6.5): behaviour, causes, handling measures, timeline and impact,
//! for the incident's tenant and third-party auditors. It is built from the tenant's view of the
//! incident only (internal notes left out), so it never carries another tenant's data or the
//! provider's internal remarks. Rendered to HTML and to PDF ([`crate::pdf`]).

use crate::model::{Incident, Step, TaskStatus};
use crate::sla::SlaTimer;

/// A block of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Heading(String),
    Para(String),
    /// `label: value` lines.
    Fields(Vec<(String, String)>),
    Table {
        headers: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

/// The report's title and blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub title: String,
    pub blocks: Vec<Block>,
}

fn or_dash(s: &str) -> String {
    if s.trim().is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

fn time(t: Option<parapet_types::Timestamp>) -> String {
    t.map(|t| t.rfc3339()).unwrap_or_else(|| "-".into())
}

fn duration(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{s} s")
    }
}

/// Builds the report of `incident` (of tenant `tenant_name`) as of `now`.
pub fn build(incident: &Incident, tenant_name: &str, now: parapet_types::Timestamp) -> Report {
    let i = incident.for_tenant();
    let mut b = Vec::new();
    b.push(Block::Fields(vec![
        ("Incident".into(), i.id.to_string()),
        ("Tenant".into(), tenant_name.to_string()),
        ("Title".into(), i.title.clone()),
        ("Severity".into(), i.severity.to_string()),
        ("Category".into(), or_dash(&i.category)),
        ("Current step".into(), i.step.to_string()),
        ("Opened".into(), i.opened_at.rfc3339()),
        ("Acknowledged".into(), time(i.acknowledged_at)),
        ("Tenant notified".into(), time(i.notified_at)),
        ("Resolved".into(), time(i.resolved_at)),
        ("Recorded".into(), time(i.closed_at)),
        ("Report generated".into(), now.rfc3339()),
    ]));
    b.push(Block::Heading("Responsible persons".into()));
    b.push(Block::Table {
        headers: vec!["Step".into(), "Responsible".into()],
        rows: Step::ALL
            .into_iter()
            .filter_map(|s| {
                i.responsible
                    .get(&s)
                    .map(|r| vec![s.to_string(), r.clone()])
            })
            .collect(),
    });
    b.push(Block::Heading("Behaviour".into()));
    b.push(Block::Para(or_dash(&i.description)));
    b.push(Block::Heading("Type and causes".into()));
    b.push(Block::Fields(vec![
        ("Type".into(), or_dash(&i.incident_type)),
        ("Cause".into(), or_dash(&i.cause)),
    ]));
    if !i.observables.is_empty() {
        b.push(Block::Heading("Observables".into()));
        b.push(Block::Table {
            headers: vec!["Kind".into(), "Value".into()],
            rows: i
                .observables
                .iter()
                .map(|o| vec![o.kind.clone(), o.value.clone()])
                .collect(),
        });
    }
    b.push(Block::Heading("Handling measures".into()));
    if i.tasks.is_empty() {
        b.push(Block::Para("No tasks were recorded.".into()));
    } else {
        b.push(Block::Table {
            headers: vec![
                "#".into(),
                "Task".into(),
                "Owner".into(),
                "Step".into(),
                "Status".into(),
            ],
            rows: i
                .tasks
                .iter()
                .map(|t| {
                    vec![
                        t.number.to_string(),
                        t.title.clone(),
                        t.owner.clone(),
                        t.step.to_string(),
                        match t.status {
                            TaskStatus::Open => "open".into(),
                            TaskStatus::Done => format!("done {}", time(t.done_at)),
                        },
                    ]
                })
                .collect(),
        });
    }
    b.push(Block::Heading("Impact and service levels".into()));
    let mut sla = Vec::new();
    for t in SlaTimer::ALL {
        let target = i.sla.targets.secs(t);
        let met = i.timer_met(t);
        let breached = i.sla.breaches.iter().any(|x| x.timer == t);
        let status = match (met, breached) {
            (Some(at), false) => format!("met after {}", duration((at.0 - i.opened_at.0) / 1000)),
            (Some(at), true) => format!(
                "BREACHED, met after {}",
                duration((at.0 - i.opened_at.0) / 1000)
            ),
            (None, true) => "BREACHED, not yet met".into(),
            (None, false) => "running".into(),
        };
        sla.push((
            format!("Time to {} (target {})", t.as_str(), duration(target)),
            status,
        ));
    }
    sla.push((
        "SLA clock paused (waiting for the tenant)".into(),
        duration(i.sla.paused_ms / 1000),
    ));
    b.push(Block::Fields(sla));
    b.push(Block::Heading("Timeline".into()));
    b.push(Block::Table {
        headers: vec!["Time".into(), "Who".into(), "What".into(), "Reason".into()],
        rows: i
            .history
            .iter()
            .map(|h| {
                vec![
                    h.at.rfc3339(),
                    h.actor.clone(),
                    h.change.describe(),
                    h.reason.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    });
    if !i.notes.is_empty() {
        b.push(Block::Heading("Notes".into()));
        for n in &i.notes {
            b.push(Block::Para(format!(
                "{} {}: {}",
                n.at.rfc3339(),
                n.author,
                n.text
            )));
        }
    }
    Report {
        title: format!("Incident report: {}", i.title),
        blocks: b,
    }
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The report as a self-contained HTML document (no scripts, inline style only in a `<style>`
/// element).
pub fn to_html(r: &Report) -> String {
    let mut h = String::new();
    h.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    h.push_str(&escape(&r.title));
    h.push_str(
        "</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto}\
         table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2em .5em;\
         text-align:left;vertical-align:top}dt{font-weight:bold}</style></head><body>\n<h1>",
    );
    h.push_str(&escape(&r.title));
    h.push_str("</h1>\n");
    for b in &r.blocks {
        match b {
            Block::Heading(t) => h.push_str(&format!("<h2>{}</h2>\n", escape(t))),
            Block::Para(t) => h.push_str(&format!("<p>{}</p>\n", escape(t))),
            Block::Fields(f) => {
                h.push_str("<dl>");
                for (k, v) in f {
                    h.push_str(&format!("<dt>{}</dt><dd>{}</dd>", escape(k), escape(v)));
                }
                h.push_str("</dl>\n");
            }
            Block::Table { headers, rows } => {
                h.push_str("<table><thead><tr>");
                for x in headers {
                    h.push_str(&format!("<th>{}</th>", escape(x)));
                }
                h.push_str("</tr></thead><tbody>");
                for row in rows {
                    h.push_str("<tr>");
                    for c in row {
                        h.push_str(&format!("<td>{}</td>", escape(c)));
                    }
                    h.push_str("</tr>");
                }
                h.push_str("</tbody></table>\n");
            }
        }
    }
    h.push_str("</body></html>\n");
    h
}

/// The report as PDF.
pub fn to_pdf(r: &Report) -> Vec<u8> {
    let mut doc = crate::pdf::Document::new(&r.title);
    doc.heading(&r.title);
    for b in &r.blocks {
        match b {
            Block::Heading(t) => doc.subheading(t),
            Block::Para(t) => doc.text(t),
            Block::Fields(f) => {
                for (k, v) in f {
                    doc.text(&format!("{k}: {v}"));
                }
            }
            Block::Table { headers, rows } if headers.len() <= 2 => {
                for row in rows {
                    doc.text(&row.join(": "));
                }
            }
            Block::Table { headers, rows } => {
                // Wide rows: the first two cells on a line, each further cell on its own.
                for row in rows {
                    let head: Vec<&str> = row.iter().take(2).map(String::as_str).collect();
                    doc.bold(&head.join("  "));
                    for (h, c) in headers.iter().zip(row).skip(2) {
                        if !c.is_empty() {
                            doc.text(&format!("{h}: {c}"));
                        }
                    }
                }
            }
        }
        doc.gap();
    }
    doc.finish()
}

/// The report as plain text (for e-mail and webhook bodies).
pub fn to_text(r: &Report) -> String {
    let mut t = format!("{}\n\n", r.title);
    for b in &r.blocks {
        match b {
            Block::Heading(s) => t.push_str(&format!("{s}\n")),
            Block::Para(s) => t.push_str(&format!("{s}\n")),
            Block::Fields(f) => {
                for (k, v) in f {
                    t.push_str(&format!("{k}: {v}\n"));
                }
            }
            Block::Table { headers, rows } => {
                t.push_str(&format!("{}\n", headers.join(" | ")));
                for row in rows {
                    t.push_str(&format!("{}\n", row.join(" | ")));
                }
            }
        }
        t.push('\n');
    }
    t
}
