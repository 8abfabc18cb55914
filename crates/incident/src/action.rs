//! Remediation actions of an incident (X.1642 8.6.3(2), 8.6.3(3)): a *patch action* lists the
//! tenant's assets (from its inventory) that run the vulnerable package or OS version named in
//! the incident, a *configuration fix* lists the affected assets; each asset is marked done or
//! not done, by the provider's staff or the tenant, who follows them in its portal. Closing the
//! incident while an action has assets left is allowed but recorded as a warning.

use parapet_iam::{IamError, IamResult};
use parapet_store::{Asset, Page, StoreError, Tenant};
use parapet_types::{TenantCtx, Timestamp};
use serde::{Deserialize, Serialize};

use crate::IncidentService;
use crate::model::{Change, Incident, MAX_TITLE, Refused, text};

/// At most this many assets in one action.
pub const MAX_ASSETS: usize = 10_000;

/// An asset of an action and whether it is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionAsset {
    pub asset: String,
    pub done_at: Option<Timestamp>,
    pub done_by: Option<String>,
}

/// A patch action or configuration fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemediationAction {
    pub number: u32,
    /// `patch` or `config-fix`.
    pub kind: String,
    /// What is patched (`openssl 3.0.13`) or fixed.
    pub subject: String,
    pub assets: Vec<ActionAsset>,
    pub opened_at: Timestamp,
    pub opened_by: String,
}

impl RemediationAction {
    /// How many assets are not done yet.
    pub fn open_assets(&self) -> usize {
        self.assets.iter().filter(|a| a.done_at.is_none()).count()
    }
}

/// Reads `name version` or `name@version` (a package observable).
pub fn package_of(s: &str) -> Option<(String, String)> {
    let s = s.trim();
    let (n, v) = s.split_once('@').or_else(|| s.rsplit_once(' '))?;
    let (n, v) = (n.trim(), v.trim());
    (!n.is_empty() && !v.is_empty()).then(|| (n.to_string(), v.to_string()))
}

impl Incident {
    /// Opens an action over `assets`; returns its number.
    pub fn open_action(
        &mut self,
        kind: &str,
        subject: &str,
        assets: Vec<String>,
        actor: &str,
        at: Timestamp,
    ) -> Result<u32, Refused> {
        if !self.is_open() {
            return Err(Refused::Closed);
        }
        let subject = text("the subject", subject, MAX_TITLE)?;
        if subject.is_empty() {
            return Err(Refused::Invalid("say what is patched or fixed".into()));
        }
        if assets.is_empty() {
            return Err(Refused::Invalid(format!(
                "no asset of the tenant's inventory is affected by {subject}"
            )));
        }
        if assets.len() > MAX_ASSETS {
            return Err(Refused::Invalid(format!(
                "at most {MAX_ASSETS} assets in one action"
            )));
        }
        if self
            .actions
            .iter()
            .any(|a| a.kind == kind && a.subject.eq_ignore_ascii_case(&subject))
        {
            return Err(Refused::Invalid(format!(
                "a {kind} action for {subject} is already open on this incident"
            )));
        }
        let number = u32::try_from(self.actions.len()).unwrap_or(u32::MAX - 1) + 1;
        let n = assets.len();
        self.actions.push(RemediationAction {
            number,
            kind: kind.into(),
            subject: subject.clone(),
            assets: assets
                .into_iter()
                .map(|asset| ActionAsset {
                    asset,
                    done_at: None,
                    done_by: None,
                })
                .collect(),
            opened_at: at,
            opened_by: actor.into(),
        });
        self.push(
            at,
            actor,
            None,
            Change::ActionOpened {
                action: number,
                action_kind: kind.into(),
                subject,
                assets: n,
            },
        );
        Ok(number)
    }

    /// Marks `asset` of action `number` done (or not done again).
    pub fn set_action_asset(
        &mut self,
        number: u32,
        asset: &str,
        done: bool,
        actor: &str,
        at: Timestamp,
    ) -> Result<(), Refused> {
        let a = self
            .actions
            .iter_mut()
            .find(|a| a.number == number)
            .ok_or_else(|| Refused::Invalid(format!("no action {number}")))?;
        let x = a
            .assets
            .iter_mut()
            .find(|x| x.asset.eq_ignore_ascii_case(asset.trim()))
            .ok_or_else(|| {
                Refused::Invalid(format!("asset {asset:?} is not in action {number}"))
            })?;
        if x.done_at.is_some() == done {
            return Err(Refused::Invalid(format!(
                "asset {} is already {} in action {number}",
                x.asset,
                if done { "done" } else { "not done" }
            )));
        }
        x.done_at = done.then_some(at);
        x.done_by = done.then(|| actor.to_string());
        let asset = x.asset.clone();
        self.push(
            at,
            actor,
            None,
            Change::ActionAssetDone {
                action: number,
                asset,
                done,
            },
        );
        Ok(())
    }

    /// Actions with assets left, and how many assets are left in all.
    pub fn open_actions(&self) -> (usize, usize) {
        let open: Vec<&RemediationAction> = self
            .actions
            .iter()
            .filter(|a| a.open_assets() > 0)
            .collect();
        (open.len(), open.iter().map(|a| a.open_assets()).sum())
    }

    /// A warning for people while actions are open (none when all are done).
    pub fn action_warning(&self) -> Option<String> {
        match self.open_actions() {
            (0, _) => None,
            (a, n) => Some(format!(
                "{a} remediation action(s) still have {n} asset(s) not done"
            )),
        }
    }
}

impl IncidentService {
    /// The assets of tenant `t` whose OS (`os`) or applications run `name` at `version`.
    pub(crate) async fn assets_running(
        &self,
        t: &Tenant,
        name: &str,
        version: &str,
        os: bool,
    ) -> IamResult<Vec<String>> {
        let ctx = TenantCtx::new(t.id);
        let mut found = Vec::new();
        let mut after: Option<String> = None;
        let matches = |a: &Asset| {
            if os {
                a.os.as_ref()
                    .is_some_and(|o| o.name.eq_ignore_ascii_case(name) && o.version == version)
            } else {
                a.applications
                    .iter()
                    .any(|s| s.name.eq_ignore_ascii_case(name) && s.version == version)
            }
        };
        loop {
            let page = self
                .store
                .list_assets(
                    ctx,
                    &Default::default(),
                    &Page {
                        after: after.clone(),
                        limit: 1000,
                    },
                )
                .await?;
            found.extend(page.iter().filter(|a| matches(a)).map(|a| a.name.clone()));
            if page.len() < 1000 || found.len() > MAX_ASSETS {
                break;
            }
            after = page.last().map(|a| a.name.clone());
        }
        Ok(found)
    }

    /// The assets named (checked to be in tenant `t`'s inventory), else the incident's `asset`
    /// observables.
    pub(crate) async fn assets_named(
        &self,
        t: &Tenant,
        i: &Incident,
        names: &[String],
    ) -> IamResult<Vec<String>> {
        let wanted: Vec<String> = if names.iter().any(|n| !n.trim().is_empty()) {
            names
                .iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect()
        } else {
            i.observables
                .iter()
                .filter(|o| o.kind == "asset")
                .map(|o| o.value.clone())
                .collect()
        };
        let mut out = Vec::new();
        for n in wanted {
            match self.store.get_asset(TenantCtx::new(t.id), &n).await {
                Ok(a) => {
                    if !out.contains(&a.name) {
                        out.push(a.name);
                    }
                }
                Err(StoreError::NotFound) => {
                    return Err(IamError::Invalid(format!(
                        "{n:?} is not in tenant {}'s inventory",
                        t.name
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }
}
