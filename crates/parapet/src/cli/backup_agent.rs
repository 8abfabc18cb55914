//! `parapet backup job add|list|show|rm` (provider staff assign a policy's sources and
//! repositories to an agent) and `parapet backup agent` (the agent: it polls the server for its
//! due jobs, claims each with a lease, runs backup, copy off-site, prune by the policy's retention
//! and restore tests, reports every step as evidence and ends the run). Repository passwords and
//! the operator key come from the agent's own configuration file and never go to the server.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use parapet_backup::{BackupOptions, KeepPolicy, PruneOptions};
use parapet_client::{BackupJobInput, BackupReportInput, BackupStepOutcome, Client};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::backup::{
    Bar, Limits, RepoOpts, backend, elapsed_ms, open, read_operator_key, restore_test_core,
};
use super::output::{fields, json, note, out, table};
use super::{CommonArgs, Session};

#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// Assign a policy's sources and repositories to an agent (provider staff): creates the job
    /// or changes it. The server then decides when it is due (the policy's schedule, window and
    /// restore-test interval) and the agent carries it out.
    Add(JobAddArgs),
    /// List a tenant's jobs with their state, last run and next due time (provider staff:
    /// without --tenant, every tenant's).
    List(JobListArgs),
    /// Show one job.
    Show(JobArgs),
    /// Remove a job (its reports stay as evidence).
    Rm(JobArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct JobAddArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The job's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The agent (host name) that runs it.
    #[arg(long, value_name = "HOST")]
    pub agent: String,
    /// The policy it carries out.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub policy: String,
    /// A file tree to back up (file level), an absolute path on the agent; repeatable.
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// A virtual machine's disk image (raw or qcow2; VM level); repeatable.
    #[arg(long = "vm-image", value_name = "FILE")]
    pub vm_images: Vec<String>,
    /// The on-site repository: a directory on the agent.
    #[arg(long, value_name = "DIR")]
    pub onsite: Option<String>,
    /// The off-site repository: `s3://bucket/prefix` (credentials stay with the agent).
    #[arg(long, value_name = "URL")]
    pub offsite: Option<String>,
    /// The version you read (refused if someone changed it meanwhile; 0: must be new).
    #[arg(long, value_name = "N")]
    pub version: Option<i64>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct JobListArgs {
    /// The tenant (provider staff: without it, every tenant).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct JobArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// The tenant whose jobs this agent runs.
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The agent's configuration (TOML): its name, operator key, scratch directory and the
    /// password file of each repository. Example:
    ///
    ///   name = "db1"
    ///   operator_key = "/etc/parapet/operator.key"
    ///   scratch = "/var/tmp"
    ///   [repositories."/srv/backup"]
    ///   password_file = "/etc/parapet/repo.pass"
    ///   [repositories."s3://bucket/db1"]
    ///   password_file = "/etc/parapet/repo.pass"
    ///   limit_upload_kib = 10240
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    pub config: PathBuf,
    /// Poll once, run what is due, and exit (for cron, and for tests).
    #[arg(long)]
    pub once: bool,
    /// How often to ask the server for due jobs.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub poll_every: String,
    /// How long a claimed job is reserved for this agent.
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    pub lease: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// One repository's secrets and limits in the agent's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoConfig {
    /// A file whose first line is the password (else PARAPET_BACKUP_PASSWORD, else the key
    /// service record of the repository).
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    limit_upload_kib: Option<u64>,
    #[serde(default)]
    limit_download_kib: Option<u64>,
}

/// The agent's configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentConfig {
    /// The agent's name as jobs name it (default: the host name).
    #[serde(default)]
    name: Option<String>,
    /// The operator key that signs snapshots.
    operator_key: PathBuf,
    /// Where restore tests restore to (default: the system's temporary directory).
    #[serde(default)]
    scratch: Option<PathBuf>,
    #[serde(default)]
    repositories: BTreeMap<String, RepoConfig>,
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(","),
        Some(x) => x.to_string(),
    }
}

fn job_fields(j: &Value) -> String {
    fields(&[
        ("tenant", s(j, "tenant")),
        ("job", s(j, "name")),
        ("version", s(j, "version")),
        ("agent", s(j, "agent")),
        ("policy", s(j, "policy")),
        ("paths", s(j, "paths")),
        ("VM images", s(j, "vm_images")),
        ("on-site", s(j, "onsite")),
        ("off-site", s(j, "offsite")),
        ("status", s(j, "status")),
        ("last run", s(j, "last_run_at")),
        ("last backup", s(j, "last_backup_at")),
        ("last snapshot", s(j, "last_snapshot")),
        ("last restore test", s(j, "last_restore_test_at")),
        ("due now", s(j, "due_steps")),
        ("next due", s(j, "next_due_at")),
    ])
}

pub async fn job(cmd: JobCommand) -> anyhow::Result<()> {
    match cmd {
        JobCommand::Add(a) => {
            let sess = Session::open(&a.common)?;
            let input = BackupJobInput {
                agent: a.agent.clone(),
                policy: a.policy.clone(),
                paths: a.paths.clone(),
                vm_images: a.vm_images.clone(),
                onsite: a.onsite.clone(),
                offsite: a.offsite.clone(),
                version: a.version,
            };
            let j = sess
                .client
                .set_backup_job(&a.tenant, &a.name, &input)
                .await?;
            if a.common.json {
                return json(&j);
            }
            out(&job_fields(&j))
        }
        JobCommand::Show(a) => {
            let sess = Session::open(&a.common)?;
            let j = sess.client.backup_job(&a.tenant, &a.name).await?;
            if a.common.json {
                return json(&j);
            }
            out(&job_fields(&j))
        }
        JobCommand::List(a) => {
            let sess = Session::open(&a.common)?;
            let list = match &a.tenant {
                Some(t) => sess.client.backup_jobs(t).await?,
                None => sess.client.backup_jobs_overview().await?,
            };
            if a.common.json {
                return json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|j| {
                    vec![
                        s(j, "tenant"),
                        s(j, "name"),
                        s(j, "agent"),
                        s(j, "policy"),
                        s(j, "status"),
                        s(j, "last_run_at"),
                        s(j, "last_backup_at"),
                        s(j, "next_due_at"),
                    ]
                })
                .collect();
            out(&table(
                &[
                    "TENANT",
                    "JOB",
                    "AGENT",
                    "POLICY",
                    "STATUS",
                    "LAST_RUN",
                    "LAST_BACKUP",
                    "NEXT_DUE",
                ],
                &rows,
            ))
        }
        JobCommand::Rm(a) => {
            let sess = Session::open(&a.common)?;
            sess.client.delete_backup_job(&a.tenant, &a.name).await?;
            if a.common.json {
                return json(&serde_json::json!({"removed": a.name}));
            }
            out(&format!("removed backup job {} of {}\n", a.name, a.tenant))
        }
    }
}

/// What the agent did with one job.
#[derive(Debug, Serialize)]
struct RunOut {
    job: String,
    ok: bool,
    steps: Vec<BackupStepOutcome>,
}

struct Agent {
    client: Client,
    tenant: String,
    name: String,
    config: AgentConfig,
    lease_secs: u64,
    json: bool,
}

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn strings(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn num(v: &Value, k: &str) -> u32 {
    v.get(k)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

impl Agent {
    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Handle::current().block_on(f)
    }

    /// How the agent opens `repo`: the password file and limits of its configuration.
    fn repo_opts(&self, repo: &str) -> RepoOpts {
        let c = self
            .config
            .repositories
            .get(repo)
            .cloned()
            .unwrap_or_default();
        RepoOpts {
            repo: repo.to_string(),
            password_file: c.password_file,
            limits: Limits {
                limit_upload: c.limit_upload_kib,
                limit_download: c.limit_download_kib,
            },
            json: true,
        }
    }

    fn report(&self, policy: &str, site: &str, mut input: BackupReportInput) {
        input.policy = Some(policy.to_string());
        input.site = Some(site.to_string());
        if let Err(e) = self.block(self.client.report_backup(&self.tenant, &input)) {
            note(&format!("warning: cannot report the {}: {e}", input.kind));
        }
    }

    /// Claims and runs one job; `None` when another agent took it or it is no longer due.
    fn run_job(&self, name: &str) -> anyhow::Result<Option<RunOut>> {
        let claim = match self.block(self.client.claim_backup_job(
            &self.tenant,
            name,
            &self.name,
            self.lease_secs,
        )) {
            Ok(c) => c,
            Err(e) if e.status() == Some(409) => {
                note(&format!("job {name}: {e}"));
                return Ok(None);
            }
            Err(e) => return Err(anyhow!(e).context(format!("cannot claim the job {name}"))),
        };
        let lease = text(&claim, "lease").ok_or_else(|| anyhow!("the claim has no lease"))?;
        let job = claim.get("job").cloned().unwrap_or(Value::Null);
        let policy = text(&job, "policy").unwrap_or_else(|| "default".into());
        let onsite = text(&job, "onsite");
        let offsite = text(&job, "offsite");
        let (primary, site) = match (&onsite, &offsite) {
            (Some(r), _) => (r.clone(), "on-site"),
            (None, Some(r)) => (r.clone(), "off-site"),
            (None, None) => bail!("the job {name} has no repository"),
        };
        let mut paths: Vec<PathBuf> = strings(&job, "paths")
            .into_iter()
            .map(PathBuf::from)
            .collect();
        paths.extend(strings(&job, "vm_images").into_iter().map(PathBuf::from));
        let keep = KeepPolicy {
            last: num(&claim, "keep_last"),
            hourly: num(&claim, "keep_hourly"),
            daily: num(&claim, "keep_daily"),
            weekly: num(&claim, "keep_weekly"),
            monthly: num(&claim, "keep_monthly"),
            yearly: num(&claim, "keep_yearly"),
            within_secs: 0,
        };
        let mut steps: Vec<BackupStepOutcome> = Vec::new();
        let mut backup_ok = true;
        for (i, step) in strings(&claim, "steps").into_iter().enumerate() {
            // Between steps the lease is extended, so a long run keeps the job; a lease lost
            // (expired and claimed again) ends the run here.
            if i > 0
                && let Err(e) = self.block(self.client.renew_backup_job(
                    &self.tenant,
                    name,
                    &lease,
                    self.lease_secs,
                ))
            {
                bail!("job {name}: the lease was lost before the {step} step: {e}");
            }
            let started = std::time::Instant::now();
            let outcome = match step.as_str() {
                "backup" => {
                    let r = self.step_backup(name, &primary, &paths);
                    let (ok, snapshot, error, input) = match r {
                        Ok((id, input)) => (true, Some(id), None, input),
                        Err(e) => {
                            let msg = format!("{e:#}");
                            (
                                false,
                                None,
                                Some(msg.clone()),
                                BackupReportInput {
                                    kind: "backup".into(),
                                    ok: false,
                                    repository: primary.clone(),
                                    duration_ms: elapsed_ms(started),
                                    encrypted: true,
                                    error: Some(msg),
                                    ..BackupReportInput::default()
                                },
                            )
                        }
                    };
                    self.report(&policy, site, input);
                    backup_ok = ok;
                    BackupStepOutcome {
                        step,
                        ok,
                        snapshot,
                        duration_ms: elapsed_ms(started),
                        error,
                    }
                }
                "copy" | "prune" if !backup_ok => BackupStepOutcome {
                    step,
                    ok: false,
                    snapshot: None,
                    duration_ms: 0,
                    error: Some("not run: the backup failed".into()),
                },
                "copy" => {
                    let to = offsite.clone().unwrap_or_default();
                    let r = self.step_copy(&primary, &to);
                    self.report(
                        &policy,
                        "off-site",
                        BackupReportInput {
                            kind: "copy".into(),
                            ok: r.is_ok(),
                            repository: to,
                            bytes_added: r.as_ref().map_or(0, |c| c.bytes_copied),
                            files: r.as_ref().map_or(0, |c| c.files_copied),
                            duration_ms: elapsed_ms(started),
                            encrypted: true,
                            error: r.as_ref().err().map(|e| format!("{e:#}")),
                            ..BackupReportInput::default()
                        },
                    );
                    BackupStepOutcome {
                        step,
                        ok: r.is_ok(),
                        snapshot: None,
                        duration_ms: elapsed_ms(started),
                        error: r.err().map(|e| format!("{e:#}")),
                    }
                }
                "prune" => {
                    let mut errors = Vec::new();
                    for repo in onsite.iter().chain(offsite.iter()) {
                        if let Err(e) = self.step_prune(repo, &keep) {
                            errors.push(format!("{repo}: {e:#}"));
                        }
                    }
                    BackupStepOutcome {
                        step,
                        ok: errors.is_empty(),
                        snapshot: None,
                        duration_ms: elapsed_ms(started),
                        error: (!errors.is_empty()).then(|| errors.join("; ")),
                    }
                }
                "restore-test" => {
                    let o = restore_test_core(
                        &self.repo_opts(&primary),
                        "latest",
                        self.config.scratch.as_deref(),
                        &[],
                        true,
                    );
                    self.report(
                        &policy,
                        site,
                        BackupReportInput {
                            kind: "restore-test".into(),
                            ok: o.ok,
                            snapshot: o.snapshot.clone(),
                            repository: primary.clone(),
                            total_bytes: o.bytes,
                            files: o.files,
                            duration_ms: o.duration_ms,
                            encrypted: true,
                            error: o.error.clone(),
                            ..BackupReportInput::default()
                        },
                    );
                    BackupStepOutcome {
                        step,
                        ok: o.ok,
                        snapshot: o.snapshot,
                        duration_ms: o.duration_ms,
                        error: o.error,
                    }
                }
                other => BackupStepOutcome {
                    step: other.to_string(),
                    ok: false,
                    snapshot: None,
                    duration_ms: 0,
                    error: Some("this agent does not know the step".into()),
                },
            };
            steps.push(outcome);
        }
        self.block(
            self.client
                .finish_backup_job(&self.tenant, name, &lease, &steps),
        )
        .with_context(|| format!("cannot end the run of job {name}"))?;
        Ok(Some(RunOut {
            job: name.to_string(),
            ok: steps.iter().all(|s| s.ok),
            steps,
        }))
    }

    fn step_backup(
        &self,
        job: &str,
        repo: &str,
        paths: &[PathBuf],
    ) -> anyhow::Result<(String, BackupReportInput)> {
        let key = read_operator_key(&self.config.operator_key)?;
        let mut r = open(&self.repo_opts(repo))?;
        let report = parapet_backup::backup(
            &mut r,
            &BackupOptions {
                paths: paths.to_vec(),
                tags: vec![format!("job:{job}")],
                hostname: None,
                force: false,
            },
            &key,
            &Bar::new("backing up", true),
        )?;
        let m = &report.snapshot.manifest;
        let input = BackupReportInput {
            kind: "backup".into(),
            ok: report.warnings.is_empty(),
            snapshot: Some(report.snapshot.id.clone()),
            repository: repo.to_string(),
            bytes_added: m.stored_bytes,
            total_bytes: m.bytes,
            files: m.files,
            duration_ms: m.duration_ms,
            signer: Some(m.operator.clone()),
            encrypted: true,
            error: (!report.warnings.is_empty()).then(|| {
                format!(
                    "{} file(s) could not be backed up: {}",
                    report.warnings.len(),
                    report.warnings.join("; ")
                )
            }),
            ..BackupReportInput::default()
        };
        if let Some(e) = &input.error {
            bail!("{e}");
        }
        Ok((report.snapshot.id.clone(), input))
    }

    fn step_copy(&self, from: &str, to: &str) -> anyhow::Result<parapet_backup::CopyReport> {
        let f = self.repo_opts(from);
        let t = self.repo_opts(to);
        let src = backend(
            from,
            &Limits {
                limit_upload: None,
                limit_download: f.limits.limit_download,
            },
        )?;
        let dst = backend(
            to,
            &Limits {
                limit_upload: t.limits.limit_upload,
                limit_download: None,
            },
        )?;
        Ok(parapet_backup::copy(
            src.as_ref(),
            dst.as_ref(),
            &Bar::new("copying", true),
        )?)
    }

    fn step_prune(&self, repo: &str, keep: &KeepPolicy) -> anyhow::Result<()> {
        let mut r = open(&self.repo_opts(repo))?;
        parapet_backup::prune(
            &mut r,
            &PruneOptions {
                policy: keep.clone(),
                dry_run: false,
            },
        )?;
        Ok(())
    }

    /// Asks for the due jobs and runs each; returns what was run.
    fn poll(&self) -> anyhow::Result<Vec<RunOut>> {
        let jobs = self
            .block(self.client.backup_agent_jobs(&self.tenant, &self.name))
            .context("cannot ask the server for this agent's jobs")?;
        let mut done = Vec::new();
        for j in &jobs {
            let due = !strings(j, "due_steps").is_empty();
            let running = j.get("lease_until").is_some_and(|v| !v.is_null());
            let Some(name) = text(j, "name") else {
                continue;
            };
            if !due || running {
                continue;
            }
            if let Some(r) = self.run_job(&name)? {
                if !self.json {
                    let steps: Vec<String> = r
                        .steps
                        .iter()
                        .map(|s| {
                            if s.ok {
                                format!("{} ok", s.step)
                            } else {
                                format!(
                                    "{} FAILED ({})",
                                    s.step,
                                    s.error.as_deref().unwrap_or("no reason")
                                )
                            }
                        })
                        .collect();
                    out(&format!("job {}: {}\n", r.job, steps.join(", ")))?;
                }
                done.push(r);
            }
        }
        Ok(done)
    }
}

/// `parapet backup agent` (blocking: the engine runs on this thread).
pub fn agent(a: AgentArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("cannot read the agent configuration {}", a.config.display()))?;
    let config: AgentConfig =
        toml::from_str(&text).map_err(|e| anyhow!("{}: {}", a.config.display(), e.message()))?;
    let name = config
        .name
        .clone()
        .unwrap_or_else(parapet_backup::hostname)
        .trim()
        .to_ascii_lowercase();
    let poll = super::duration_secs(&a.poll_every)?.max(1);
    let lease_secs = super::duration_secs(&a.lease)?;
    let server = a
        .common
        .server
        .clone()
        .ok_or_else(|| anyhow!("give --server URL (or PARAPET_SERVER)"))?;
    let token = a
        .common
        .token
        .as_ref()
        .map(|t| t.0.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow!("the agent needs a token of scope 'backup' in PARAPET_TOKEN"))?;
    let agent = Agent {
        client: Client::new(&server)?.with_token(token),
        tenant: a.tenant.clone(),
        name,
        config,
        lease_secs,
        json: a.common.json,
    };
    loop {
        let done = match agent.poll() {
            Ok(d) => d,
            Err(e) if a.once => return Err(e),
            Err(e) => {
                note(&format!("warning: {e:#}"));
                Vec::new()
            }
        };
        if a.common.json {
            json(&serde_json::json!({"agent": agent.name, "runs": done}))?;
        } else if done.is_empty() && a.once {
            out(&format!("agent {}: nothing due\n", agent.name))?;
        }
        if a.once {
            if done.iter().any(|r| !r.ok) {
                bail!(
                    "{} job run(s) had a failed step (see above; the server has the details)",
                    done.iter().filter(|r| !r.ok).count()
                );
            }
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs(poll));
    }
}
