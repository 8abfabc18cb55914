//! Server-side backup management: `/api/v1/tenants/{tenant}/backup/…` (policies, reports,
//! compliance, findings) and `/api/v1/backup/compliance`. Answers are kept as JSON values (the
//! shapes are in the OpenAPI document: `PolicyView`, `ReportView`, `ComplianceView`,
//! `FindingView`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Client, ClientError};

/// How many snapshots prune keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupRetention {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

/// The terms of a backup policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupPolicyInput {
    pub rpo_secs: u64,
    pub rto_secs: u64,
    pub retention: BackupRetention,
    pub copies: u32,
    pub onsite: bool,
    pub offsite: bool,
    pub encryption: bool,
    pub schedule_secs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    pub restore_test_secs: u64,
    /// What is backed up: `file`, `vm-image`, `vm-snapshot`.
    pub levels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// A report of a backup run, copy, verification or restore test.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupReportInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub kind: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    pub repository: String,
    pub bytes_added: u64,
    pub total_bytes: u64,
    pub files: u64,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    pub encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A backup job's definition.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupJobInput {
    pub agent: String,
    pub policy: String,
    pub paths: Vec<String>,
    pub vm_images: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onsite: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsite: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// How a step of a job's run went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupStepOutcome {
    pub step: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Client {
    /// `GET /api/v1/tenants/{tenant}/backup/jobs`.
    pub async fn backup_jobs(&self, tenant: &str) -> Result<Vec<Value>, ClientError> {
        self.get(self.url(&["tenants", tenant, "backup", "jobs"], &[]))
            .await
    }

    /// `GET /api/v1/backup/jobs` (provider staff: every tenant).
    pub async fn backup_jobs_overview(&self) -> Result<Vec<Value>, ClientError> {
        self.get(self.url(&["backup", "jobs"], &[])).await
    }

    /// `GET /api/v1/tenants/{tenant}/backup/jobs/{name}`.
    pub async fn backup_job(&self, tenant: &str, name: &str) -> Result<Value, ClientError> {
        self.get(self.url(&["tenants", tenant, "backup", "jobs", name], &[]))
            .await
    }

    /// `PUT /api/v1/tenants/{tenant}/backup/jobs/{name}`.
    pub async fn set_backup_job(
        &self,
        tenant: &str,
        name: &str,
        input: &BackupJobInput,
    ) -> Result<Value, ClientError> {
        self.json(
            self.http
                .put(self.url(&["tenants", tenant, "backup", "jobs", name], &[]))
                .json(input),
        )
        .await
    }

    /// `DELETE /api/v1/tenants/{tenant}/backup/jobs/{name}`.
    pub async fn delete_backup_job(&self, tenant: &str, name: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .delete(self.url(&["tenants", tenant, "backup", "jobs", name], &[])),
        )
        .await
        .map(|_| ())
    }

    /// `GET /api/v1/tenants/{tenant}/backup/agents/{agent}/jobs` (the agent's poll).
    pub async fn backup_agent_jobs(
        &self,
        tenant: &str,
        agent: &str,
    ) -> Result<Vec<Value>, ClientError> {
        self.get(self.url(&["tenants", tenant, "backup", "agents", agent, "jobs"], &[]))
            .await
    }

    /// `POST /api/v1/tenants/{tenant}/backup/jobs/{name}/claim`.
    pub async fn claim_backup_job(
        &self,
        tenant: &str,
        name: &str,
        agent: &str,
        lease_secs: u64,
    ) -> Result<Value, ClientError> {
        self.post(
            self.url(&["tenants", tenant, "backup", "jobs", name, "claim"], &[]),
            &serde_json::json!({"agent": agent, "lease_secs": lease_secs}),
        )
        .await
    }

    /// `POST /api/v1/tenants/{tenant}/backup/jobs/{name}/renew`.
    pub async fn renew_backup_job(
        &self,
        tenant: &str,
        name: &str,
        lease: &str,
        lease_secs: u64,
    ) -> Result<Value, ClientError> {
        self.post(
            self.url(&["tenants", tenant, "backup", "jobs", name, "renew"], &[]),
            &serde_json::json!({"lease": lease, "lease_secs": lease_secs}),
        )
        .await
    }

    /// `POST /api/v1/tenants/{tenant}/backup/jobs/{name}/finish`.
    pub async fn finish_backup_job(
        &self,
        tenant: &str,
        name: &str,
        lease: &str,
        steps: &[BackupStepOutcome],
    ) -> Result<Value, ClientError> {
        self.post(
            self.url(&["tenants", tenant, "backup", "jobs", name, "finish"], &[]),
            &serde_json::json!({"lease": lease, "steps": steps}),
        )
        .await
    }

    /// `GET /api/v1/tenants/{tenant}/backup/policies`.
    pub async fn backup_policies(&self, tenant: &str) -> Result<Vec<Value>, ClientError> {
        self.get(self.url(&["tenants", tenant, "backup", "policies"], &[]))
            .await
    }

    /// `GET /api/v1/tenants/{tenant}/backup/policies/{name}`.
    pub async fn backup_policy(&self, tenant: &str, name: &str) -> Result<Value, ClientError> {
        self.get(self.url(&["tenants", tenant, "backup", "policies", name], &[]))
            .await
    }

    /// `PUT /api/v1/tenants/{tenant}/backup/policies/{name}`.
    pub async fn set_backup_policy(
        &self,
        tenant: &str,
        name: &str,
        input: &BackupPolicyInput,
    ) -> Result<Value, ClientError> {
        self.json(
            self.http
                .put(self.url(&["tenants", tenant, "backup", "policies", name], &[]))
                .json(input),
        )
        .await
    }

    /// `DELETE /api/v1/tenants/{tenant}/backup/policies/{name}`.
    pub async fn delete_backup_policy(&self, tenant: &str, name: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .delete(self.url(&["tenants", tenant, "backup", "policies", name], &[])),
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/v1/tenants/{tenant}/backup/reports`.
    pub async fn report_backup(
        &self,
        tenant: &str,
        input: &BackupReportInput,
    ) -> Result<Value, ClientError> {
        self.post(
            self.url(&["tenants", tenant, "backup", "reports"], &[]),
            input,
        )
        .await
    }

    /// `GET /api/v1/tenants/{tenant}/backup/reports`.
    pub async fn backup_reports(
        &self,
        tenant: &str,
        policy: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Value>, ClientError> {
        self.get(self.url(
            &["tenants", tenant, "backup", "reports"],
            &[
                ("policy", policy.map(str::to_string)),
                ("limit", Some(limit.to_string())),
            ],
        ))
        .await
    }

    /// `GET /api/v1/tenants/{tenant}/backup/compliance`.
    pub async fn backup_compliance(&self, tenant: &str) -> Result<Vec<Value>, ClientError> {
        self.get(self.url(&["tenants", tenant, "backup", "compliance"], &[]))
            .await
    }

    /// `GET /api/v1/backup/compliance` (provider staff: every tenant).
    pub async fn backup_compliance_overview(&self) -> Result<Vec<Value>, ClientError> {
        self.get(self.url(&["backup", "compliance"], &[])).await
    }

    /// `GET /api/v1/tenants/{tenant}/backup/findings`.
    pub async fn backup_findings(
        &self,
        tenant: &str,
        all: bool,
    ) -> Result<Vec<Value>, ClientError> {
        self.get(self.url(
            &["tenants", tenant, "backup", "findings"],
            &[("all", all.then(|| "true".to_string()))],
        ))
        .await
    }
}
