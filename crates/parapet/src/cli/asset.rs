//! `parapet asset …`: the asset inventory (X.1642 8.3(1)).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parapet_client::{Asset, AssetInput, AssetQuery, Software};

use super::output::{clean, fields, json, out, table};
use super::{CommonArgs, Session};

#[derive(Debug, clap::Subcommand)]
pub enum AssetCommand {
    /// List a tenant's assets, by name.
    List(ListArgs),
    /// Show one asset.
    Show(NameArgs),
    /// Register an asset.
    Create(CreateArgs),
    /// Change an asset: only the attributes given change (lists given replace the old lists).
    Update(UpdateArgs),
    /// Remove an asset from the inventory.
    Delete(NameArgs),
    /// Set an asset's health (unknown, healthy, degraded, down, silent).
    Health(HealthArgs),
    /// Import assets from a CSV or JSON file: all rows or none; existing names are updated.
    ///
    /// CSV columns: name, kind (required), os_name, os_version, applications (name=version;…),
    /// addresses (a;b;…), location, owner, criticality, tags (key=value;…). JSON: an array of
    /// objects like those `parapet asset show --json` prints, or one object a line.
    Import(ImportArgs),
    /// A tenant's assets counted by health.
    Summary(TenantOnly),
    /// Which other tenants run the same OS or application versions as an asset (provider staff).
    Related(NameArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TenantOnly {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// Only assets of this kind (vm, database, network-device, …).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only assets in this health state.
    #[arg(long)]
    pub health: Option<String>,
    /// Only assets of this criticality.
    #[arg(long)]
    pub criticality: Option<String>,
    /// Only assets whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    pub name: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NameArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The asset's name (or id).
    #[arg(value_name = "ASSET")]
    pub asset: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Attributes {
    /// The operating system as NAME=VERSION, e.g. Ubuntu=22.04.
    #[arg(long, value_name = "NAME=VERSION")]
    pub os: Option<String>,
    /// An application as NAME=VERSION (repeat for several).
    #[arg(long = "app", value_name = "NAME=VERSION")]
    pub apps: Vec<String>,
    /// An IP address, CIDR block or DNS name (repeat for several).
    #[arg(long = "address", value_name = "ADDRESS")]
    pub addresses: Vec<String>,
    #[arg(long)]
    pub location: Option<String>,
    /// The person or team who answers for the asset.
    #[arg(long)]
    pub owner: Option<String>,
    /// low, medium, high or critical.
    #[arg(long)]
    pub criticality: Option<String>,
    /// A tag as KEY=VALUE (repeat for several).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The asset's name, unique within the tenant.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// physical-host, hypervisor, vm, container, image, network-device, security-device,
    /// database, application or platform.
    #[arg(long)]
    pub kind: String,
    #[command(flatten)]
    pub attributes: Attributes,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The asset's name (or id).
    #[arg(value_name = "ASSET")]
    pub asset: String,
    /// A new name.
    #[arg(long, value_name = "NAME")]
    pub rename: Option<String>,
    #[arg(long)]
    pub kind: Option<String>,
    #[command(flatten)]
    pub attributes: Attributes,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The asset's name (or id).
    #[arg(value_name = "ASSET")]
    pub asset: String,
    /// The new state: unknown, healthy, degraded, down or silent.
    #[arg(long, value_name = "STATE")]
    pub set: String,
    /// Why (kept in the audit trail).
    #[arg(long)]
    pub reason: Option<String>,
    /// Also record that data about the asset arrived now.
    #[arg(long)]
    pub seen: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// csv or json; by default from the file name (.csv, else JSON).
    #[arg(long, value_parser = ["csv", "json"])]
    pub format: Option<String>,
    /// The file to import (- for standard input).
    #[arg(value_name = "FILE")]
    pub file: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn split_pair(what: &str, s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => bail!("{what} {s:?} must be written NAME=VALUE"),
    }
}

fn software(what: &str, s: &str) -> anyhow::Result<Software> {
    let (name, version) = split_pair(what, s)?;
    Ok(Software { name, version })
}

/// Applies the attributes given on the command line to `input`.
fn apply(input: &mut AssetInput, a: &Attributes) -> anyhow::Result<()> {
    if let Some(os) = &a.os {
        input.os = Some(software("--os", os)?);
    }
    if !a.apps.is_empty() {
        input.applications = a
            .apps
            .iter()
            .map(|s| software("--app", s))
            .collect::<anyhow::Result<_>>()?;
    }
    if !a.addresses.is_empty() {
        input.addresses = a.addresses.clone();
    }
    if a.location.is_some() {
        input.location = a.location.clone();
    }
    if a.owner.is_some() {
        input.owner = a.owner.clone();
    }
    if a.criticality.is_some() {
        input.criticality = a.criticality.clone();
    }
    if !a.tags.is_empty() {
        input.tags = a
            .tags
            .iter()
            .map(|t| split_pair("--tag", t))
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    }
    Ok(())
}

fn input_of(a: &Asset) -> AssetInput {
    AssetInput {
        name: a.name.clone(),
        kind: a.kind.clone(),
        os: a.os.clone(),
        applications: a.applications.clone(),
        addresses: a.addresses.clone(),
        location: a.location.clone(),
        owner: a.owner.clone(),
        criticality: Some(a.criticality.clone()),
        tags: a.tags.clone(),
    }
}

fn sw(s: &Software) -> String {
    if s.version.is_empty() {
        s.name.clone()
    } else {
        format!("{} {}", s.name, s.version)
    }
}

fn show(a: &Asset) -> String {
    fields(&[
        ("name", a.name.clone()),
        ("id", a.id.clone()),
        ("tenant", a.tenant.clone()),
        ("kind", a.kind.clone()),
        ("os", a.os.as_ref().map_or("-".into(), sw)),
        (
            "applications",
            if a.applications.is_empty() {
                "-".into()
            } else {
                a.applications.iter().map(sw).collect::<Vec<_>>().join(", ")
            },
        ),
        (
            "addresses",
            if a.addresses.is_empty() {
                "-".into()
            } else {
                a.addresses.join(", ")
            },
        ),
        ("location", a.location.clone().unwrap_or_else(|| "-".into())),
        ("owner", a.owner.clone().unwrap_or_else(|| "-".into())),
        ("criticality", a.criticality.clone()),
        (
            "tags",
            if a.tags.is_empty() {
                "-".into()
            } else {
                a.tags
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        ("health", a.health.clone()),
        (
            "last seen",
            a.last_seen_at.clone().unwrap_or_else(|| "never".into()),
        ),
        ("created", a.created_at.clone()),
        ("updated", a.updated_at.clone()),
    ])
}

fn list_table(list: &[Asset]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.kind.clone(),
                a.os.as_ref().map_or("-".into(), sw),
                a.criticality.clone(),
                a.health.clone(),
                a.last_seen_at.clone().unwrap_or_else(|| "never".into()),
                a.addresses.first().cloned().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "KIND",
            "OS",
            "CRITICALITY",
            "HEALTH",
            "LAST SEEN",
            "ADDRESS",
        ],
        &rows,
    )
}

fn read_input(file: &str) -> anyhow::Result<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf)
            .context("cannot read standard input")?;
        Ok(buf)
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {file}"))
    }
}

pub async fn run(cmd: AssetCommand) -> anyhow::Result<()> {
    match cmd {
        AssetCommand::List(a) => {
            let s = Session::open(&a.common)?;
            let query = AssetQuery {
                kind: a.kind.clone(),
                health: a.health.clone(),
                criticality: a.criticality.clone(),
                q: a.name.clone(),
            };
            let list = s
                .client
                .all_assets(&a.tenant, &query)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&list);
            }
            out(&list_table(&list))
        }
        AssetCommand::Show(a) => {
            let s = Session::open(&a.common)?;
            let asset = s
                .client
                .get_asset(&a.tenant, &a.asset)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&asset);
            }
            out(&show(&asset))
        }
        AssetCommand::Create(a) => {
            let s = Session::open(&a.common)?;
            let mut input = AssetInput {
                name: a.name.clone(),
                kind: a.kind.clone(),
                ..AssetInput::default()
            };
            apply(&mut input, &a.attributes)?;
            let asset = s
                .client
                .create_asset(&a.tenant, &input)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&asset);
            }
            out(&format!(
                "Registered asset {} ({}) in tenant {}\n",
                clean(&asset.name),
                asset.kind,
                clean(&asset.tenant)
            ))
        }
        AssetCommand::Update(a) => {
            let s = Session::open(&a.common)?;
            let old = s
                .client
                .get_asset(&a.tenant, &a.asset)
                .await
                .map_err(|e| s.fail(e))?;
            let mut input = input_of(&old);
            if let Some(n) = &a.rename {
                input.name = n.clone();
            }
            if let Some(k) = &a.kind {
                input.kind = k.clone();
            }
            apply(&mut input, &a.attributes)?;
            let asset = s
                .client
                .update_asset(&a.tenant, &old.id, &input)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&asset);
            }
            out(&format!("Updated asset {}\n", clean(&asset.name)))
        }
        AssetCommand::Delete(a) => {
            let s = Session::open(&a.common)?;
            s.client
                .delete_asset(&a.tenant, &a.asset)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({"deleted": a.asset}));
            }
            out(&format!("Deleted asset {}\n", clean(&a.asset)))
        }
        AssetCommand::Health(a) => {
            let s = Session::open(&a.common)?;
            let asset = s
                .client
                .set_asset_health(&a.tenant, &a.asset, &a.set, a.reason.as_deref(), a.seen)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&asset);
            }
            out(&format!(
                "Asset {} is now {}\n",
                clean(&asset.name),
                asset.health
            ))
        }
        AssetCommand::Import(a) => {
            let s = Session::open(&a.common)?;
            let format = match &a.format {
                Some(f) => f.clone(),
                None if a.file.to_ascii_lowercase().ends_with(".csv") => "csv".into(),
                None => "json".into(),
            };
            let body = read_input(&a.file)?;
            let size = body.len();
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(format!("importing {size} bytes of {format}"));
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            let result = s.client.import_assets(&a.tenant, &format, body).await;
            bar.finish_and_clear();
            let counts = result.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&counts);
            }
            out(&format!(
                "Imported into tenant {}: {} created, {} updated\n",
                clean(&a.tenant),
                counts.created,
                counts.updated
            ))
        }
        AssetCommand::Summary(a) => {
            let s = Session::open(&a.common)?;
            let sum = s
                .client
                .asset_summary(&a.tenant)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&sum);
            }
            let rows: Vec<Vec<String>> = sum
                .by_health
                .iter()
                .map(|(h, n)| vec![h.clone(), n.to_string()])
                .collect();
            out(&format!(
                "{} assets in tenant {}\n{}",
                sum.total,
                clean(&sum.tenant),
                table(&["HEALTH", "ASSETS"], &rows)
            ))
        }
        AssetCommand::Related(a) => {
            let s = Session::open(&a.common)?;
            let r = s
                .client
                .related_assets(&a.tenant, &a.asset)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&r);
            }
            let mut rows = Vec::new();
            for m in &r.matches {
                let what = if m.os { "os" } else { "application" };
                if m.other_tenants.is_empty() {
                    rows.push(vec![what.into(), sw(&m.software), "-".into(), "0".into()]);
                }
                for t in &m.other_tenants {
                    rows.push(vec![
                        what.into(),
                        sw(&m.software),
                        t.tenant.clone(),
                        t.assets.to_string(),
                    ]);
                }
            }
            out(&format!(
                "{} other tenant(s) run software of {} ({}):\n{}",
                r.tenants_affected,
                clean(&r.asset.name),
                clean(&r.asset.tenant),
                table(&["AS", "SOFTWARE", "TENANT", "ASSETS"], &rows)
            ))
        }
    }
}
