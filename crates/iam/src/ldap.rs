//! LDAP v3 authentication against a tenant's own directory (X.1642 8.1.2(1)).
//!
//! A tenant administrator configures one directory: its URL (`ldap://`, `ldaps://`, optionally
//! StartTLS), a service account (bind DN + password, the password sealed through
//! [`IamService::seal_secret`] and never returned), where and how users and groups are searched,
//! and which directory groups give which role (first match wins). Accounts marked as directory
//! accounts (their password hash is [`DIRECTORY_ACCOUNT`]) are authenticated by a bind as the
//! user's DN; with `provision` on, a name unknown locally that binds successfully gets an account
//! at once (just-in-time), its role from the mapping, audited. The role follows the groups at
//! every log-in. Lockout and throttling apply exactly as for local passwords (the directory check
//! replaces only the password comparison). A directory that cannot be reached refuses the log-in
//! with a clear reason: it never lets anyone in.

use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use parapet_store::{
    AuditOutcome, LdapDirectory, LdapSettings, StoreError, Tenant, User, UserStatus,
};
use parapet_types::{Actor, Role, TenantCtx, TenantKind, Username};
use serde_json::json;

use crate::authz::Action;
use crate::{IamError, IamResult, IamService, Principal, RequestMeta, event};

/// The password hash of an account authenticated by its tenant's directory: not a PHC string,
/// so no password ever verifies against it locally.
pub const DIRECTORY_ACCOUNT: &str = "!ldap";

/// Whether `u` is authenticated by its tenant's directory.
pub fn is_directory_account(u: &User) -> bool {
    u.password_hash == DIRECTORY_ACCOUNT
}

/// What the directory said about a user name and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryAnswer {
    /// The bind as the user succeeded.
    Authenticated { dn: String, groups: Vec<String> },
    /// No entry matches the name.
    UnknownUser,
    /// More than one entry matches the name: refused, the filter is too wide.
    Ambiguous,
    /// The entry exists and the password is wrong (or empty: no unauthenticated binds).
    WrongPassword,
}

/// Why the directory could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DirectoryDown(pub String);

/// Checks settings before they are stored.
pub fn validate(s: &LdapSettings, kind: TenantKind) -> IamResult<()> {
    let bad = |m: &str| Err(IamError::Invalid(m.to_string()));
    let url = s.url.trim();
    let plain = url.starts_with("ldap://");
    if !(plain || url.starts_with("ldaps://")) {
        return bad("the directory URL must start with ldap:// or ldaps://");
    }
    if url.len() > 512 || url.contains(char::is_whitespace) {
        return bad("the directory URL is not valid");
    }
    if s.starttls && !plain {
        return bad("StartTLS applies to ldap:// URLs only (ldaps:// is TLS already)");
    }
    if s.bind_dn.trim().is_empty() || s.user_base.trim().is_empty() {
        return bad("bind_dn and user_base are required");
    }
    if !s.user_filter.contains("{username}") {
        return bad(
            "user_filter must contain {username}, e.g. (&(objectClass=person)(uid={username}))",
        );
    }
    for f in std::iter::once(&s.user_filter).chain(s.group_filter.as_ref()) {
        if !(f.starts_with('(') && f.ends_with(')')) || f.len() > 1024 {
            return bad("a search filter must be enclosed in parentheses (RFC 4515)");
        }
    }
    match (&s.group_base, &s.group_filter) {
        (Some(_), Some(f)) if !(f.contains("{dn}") || f.contains("{username}")) => {
            return bad("group_filter must contain {dn} or {username}");
        }
        (Some(_), None) | (None, Some(_)) => {
            return bad("group_base and group_filter go together");
        }
        _ => {}
    }
    for r in s.role_mappings.iter().map(|m| m.role).chain(s.default_role) {
        if !r.fits(kind) {
            return Err(IamError::Invalid(format!(
                "role {r} cannot be held in a {} tenant",
                kind.as_str()
            )));
        }
    }
    if s.role_mappings.iter().any(|m| m.group.trim().is_empty()) {
        return bad("a role mapping needs a group DN");
    }
    if !(1..=60).contains(&s.timeout_secs) {
        return bad("timeout_secs must be between 1 and 60");
    }
    Ok(())
}

/// `filter` with `{username}` and `{dn}` replaced by their values escaped per RFC 4515, so that
/// a typed name can never change the filter's structure.
pub fn fill_filter(filter: &str, username: &str, dn: &str) -> String {
    filter
        .replace("{username}", &ldap_escape(username))
        .replace("{dn}", &ldap_escape(dn))
}

/// A DN in a form that compares as directories do for the usual attributes: case-insensitive,
/// without spaces around the separators.
fn norm_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// The role the groups give (first matching rule), else the default role.
pub fn map_role(s: &LdapSettings, groups: &[String]) -> Option<Role> {
    let groups: Vec<String> = groups.iter().map(|g| norm_dn(g)).collect();
    s.role_mappings
        .iter()
        .find(|m| groups.contains(&norm_dn(&m.group)))
        .map(|m| m.role)
        .or(s.default_role)
}

fn down(what: &str, e: impl std::fmt::Display) -> DirectoryDown {
    DirectoryDown(format!("{what}: {e}"))
}

/// Asks the directory whether `password` is the password of `username` and, if so, for its
/// groups. The service account binds first, searches the user (filter escaped), then the user's
/// DN binds with the password; groups are read with the service account again.
pub async fn ask_directory(
    s: &LdapSettings,
    bind_password: &str,
    username: &str,
    password: &str,
) -> Result<DirectoryAnswer, DirectoryDown> {
    let limit = Duration::from_secs(u64::from(s.timeout_secs));
    // Twice the per-operation limit bounds the whole exchange (connect, binds, searches).
    match tokio::time::timeout(limit * 4, exchange(s, bind_password, username, password)).await {
        Ok(r) => r,
        Err(_) => Err(DirectoryDown(format!(
            "the directory did not answer within {} s",
            s.timeout_secs * 4
        ))),
    }
}

async fn exchange(
    s: &LdapSettings,
    bind_password: &str,
    username: &str,
    password: &str,
) -> Result<DirectoryAnswer, DirectoryDown> {
    let limit = Duration::from_secs(u64::from(s.timeout_secs));
    let settings = LdapConnSettings::new()
        .set_conn_timeout(limit)
        .set_starttls(s.starttls);
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, s.url.trim())
        .await
        .map_err(|e| down("cannot reach the directory", e))?;
    ldap3::drive!(conn);
    ldap.with_timeout(limit);
    ldap.simple_bind(&s.bind_dn, bind_password)
        .await
        .map_err(|e| down("the directory's service bind failed", e))?
        .success()
        .map_err(|e| down("the directory refused the service account", e))?;
    let filter = fill_filter(&s.user_filter, username, "");
    let mut attrs = vec!["1.1".to_string()];
    if let Some(a) = &s.member_of_attribute {
        attrs = vec![a.clone()];
    }
    ldap.with_timeout(limit);
    let (entries, _) = ldap
        .search(&s.user_base, Scope::Subtree, &filter, attrs)
        .await
        .map_err(|e| down("the user search failed", e))?
        .success()
        .map_err(|e| down("the user search failed", e))?;
    let mut users: Vec<SearchEntry> = entries
        .into_iter()
        .filter(|e| !e.is_ref() && !e.is_intermediate())
        .map(SearchEntry::construct)
        .collect();
    if users.len() > 1 {
        let _ = ldap.unbind().await;
        return Ok(DirectoryAnswer::Ambiguous);
    }
    let Some(user) = users.pop() else {
        let _ = ldap.unbind().await;
        return Ok(DirectoryAnswer::UnknownUser);
    };
    if password.is_empty() {
        // An empty password would be an unauthenticated bind, which "succeeds" (RFC 4513 5.1.2).
        let _ = ldap.unbind().await;
        return Ok(DirectoryAnswer::WrongPassword);
    }
    ldap.with_timeout(limit);
    let r = ldap
        .simple_bind(&user.dn, password)
        .await
        .map_err(|e| down("the user bind failed", e))?;
    match r.rc {
        0 => {}
        // invalidCredentials; inappropriateAuthentication
        49 | 48 => {
            let _ = ldap.unbind().await;
            return Ok(DirectoryAnswer::WrongPassword);
        }
        _ => {
            let _ = ldap.unbind().await;
            return Err(down("the user bind failed", r.text));
        }
    }
    let mut groups: Vec<String> = s
        .member_of_attribute
        .as_ref()
        .and_then(|a| {
            user.attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(a))
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_default();
    if let (Some(base), Some(f)) = (&s.group_base, &s.group_filter) {
        ldap.with_timeout(limit);
        ldap.simple_bind(&s.bind_dn, bind_password)
            .await
            .map_err(|e| down("the directory's service bind failed", e))?
            .success()
            .map_err(|e| down("the directory refused the service account", e))?;
        ldap.with_timeout(limit);
        let (entries, _) = ldap
            .search(
                base,
                Scope::Subtree,
                &fill_filter(f, username, &user.dn),
                vec!["1.1"],
            )
            .await
            .map_err(|e| down("the group search failed", e))?
            .success()
            .map_err(|e| down("the group search failed", e))?;
        groups.extend(
            entries
                .into_iter()
                .filter(|e| !e.is_ref() && !e.is_intermediate())
                .map(|e| SearchEntry::construct(e).dn),
        );
    }
    let _ = ldap.unbind().await;
    groups.sort();
    groups.dedup();
    Ok(DirectoryAnswer::Authenticated {
        dn: user.dn,
        groups,
    })
}

/// A directory as an administrator sees it (never the password).
#[derive(Debug, Clone)]
pub struct DirectoryView {
    pub tenant: Tenant,
    pub settings: LdapSettings,
    pub updated_at: parapet_types::Timestamp,
    /// Whether the bind password is sealed by the key service (else the local key).
    pub sealed_by_kms: bool,
}

/// What `test` found.
#[derive(Debug, Clone)]
pub struct DirectoryTest {
    pub answer: Option<DirectoryAnswer>,
    /// The role the groups give, for an authenticated user.
    pub role: Option<Role>,
}

/// What a directory log-in gives: the account to log in (existing or just provisioned).
pub(crate) enum DirectoryLogin {
    Ok(User),
    /// A failure reason for the audit record (the caller sees only "authentication failed").
    Refused(&'static str, serde_json::Value),
}

pub(crate) fn bind_aad(t: &Tenant) -> String {
    format!("ldap-bind:{}", t.id)
}

impl IamService {
    /// The directory of `tenant`, if it has one.
    pub async fn get_directory(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, Option<DirectoryView>)> {
        let t = self.resolve(p, tenant, Action::DirectoryRead, meta).await?;
        let d = self.store.get_ldap(TenantCtx::new(t.id)).await?;
        let view = d.map(|d| DirectoryView {
            sealed_by_kms: d
                .sealed_bind_password
                .starts_with(crate::sealer::KMS_PREFIX),
            tenant: t.clone(),
            settings: d.settings,
            updated_at: d.updated_at,
        });
        Ok((t, view))
    }

    /// Sets the directory of `tenant`. The bind password is required when there is no directory
    /// yet; `None` keeps the stored one.
    pub async fn set_directory(
        &self,
        p: &Principal,
        tenant: &str,
        settings: LdapSettings,
        bind_password: Option<&str>,
        meta: &RequestMeta,
    ) -> IamResult<DirectoryView> {
        let t = self
            .resolve(p, tenant, Action::DirectoryManage, meta)
            .await?;
        validate(&settings, t.kind)?;
        let ctx = TenantCtx::new(t.id);
        let before = self.store.get_ldap(ctx).await?;
        let sealed = match (bind_password, &before) {
            (Some(pw), _) if !pw.is_empty() && pw.len() <= 1024 => {
                self.seal_secret(&bind_aad(&t), pw.as_bytes())?
            }
            (Some(_), _) => {
                return Err(IamError::Invalid(
                    "the bind password must have 1 to 1024 characters".into(),
                ));
            }
            (None, Some(b)) => b.sealed_bind_password.clone(),
            (None, None) => {
                return Err(IamError::Invalid(
                    "a bind password is required for a new directory".into(),
                ));
            }
        };
        let dir = LdapDirectory {
            tenant: t.id,
            settings,
            sealed_bind_password: sealed,
            updated_at: self.env.now(),
        };
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "ldap.set",
            format!("tenant:{}", t.name),
            meta,
            AuditOutcome::Success,
            json!({
                "from": before.as_ref().map(|b| &b.settings),
                "to": dir.settings,
                "bind_password_changed": bind_password.is_some(),
            }),
        );
        self.store.put_ldap(ctx, &dir, &e).await?;
        Ok(DirectoryView {
            sealed_by_kms: dir
                .sealed_bind_password
                .starts_with(crate::sealer::KMS_PREFIX),
            tenant: t,
            settings: dir.settings,
            updated_at: dir.updated_at,
        })
    }

    /// Removes the directory of `tenant`: its directory accounts can no longer log in.
    pub async fn delete_directory(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        let t = self
            .resolve(p, tenant, Action::DirectoryManage, meta)
            .await?;
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "ldap.delete",
            format!("tenant:{}", t.name),
            meta,
            AuditOutcome::Success,
            json!({}),
        );
        match self.store.delete_ldap(TenantCtx::new(t.id), &e).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(IamError::NotFound(format!(
                "tenant {} has no directory",
                t.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Tries the directory of `tenant`: the service bind, and with `user` that user's bind and
    /// groups. Audited (never the password).
    pub async fn test_directory(
        &self,
        p: &Principal,
        tenant: &str,
        user: Option<(&str, &str)>,
        meta: &RequestMeta,
    ) -> IamResult<DirectoryTest> {
        let t = self
            .resolve(p, tenant, Action::DirectoryManage, meta)
            .await?;
        let d = self
            .store
            .get_ldap(TenantCtx::new(t.id))
            .await?
            .ok_or_else(|| IamError::NotFound(format!("tenant {} has no directory", t.name)))?;
        let pw = self.bind_password(&t, &d)?;
        let (name, password) = user.unwrap_or(("", ""));
        let result = ask_directory(&d.settings, &pw, name, password).await;
        let (outcome, details) = match &result {
            Ok(a) => (
                AuditOutcome::Success,
                json!({"user": user.map(|u| u.0), "answer": answer_name(a)}),
            ),
            Err(e) => (
                AuditOutcome::Failure,
                json!({"user": user.map(|u| u.0), "error": e.0}),
            ),
        };
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "ldap.test",
            format!("tenant:{}", t.name),
            meta,
            outcome,
            details,
        );
        self.store.append_audit(&e).await?;
        let answer = result.map_err(|e| IamError::DirectoryUnavailable(e.0))?;
        let role = match &answer {
            DirectoryAnswer::Authenticated { groups, .. } => map_role(&d.settings, groups),
            _ => None,
        };
        Ok(DirectoryTest {
            answer: user.map(|_| answer),
            role,
        })
    }

    fn bind_password(&self, t: &Tenant, d: &LdapDirectory) -> IamResult<String> {
        let pw = self.open_secret(&bind_aad(t), &d.sealed_bind_password)?;
        String::from_utf8(pw)
            .map_err(|_| IamError::Internal("the stored bind password is not text".into()))
    }

    /// Authenticates `username` of `t` against its directory: `existing` is the local directory
    /// account, or `None` for a name unknown locally (provisioned on success when the directory
    /// says so). Errors only when the directory cannot answer.
    pub(crate) async fn directory_login(
        &self,
        t: &Tenant,
        existing: Option<&User>,
        username: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> IamResult<DirectoryLogin> {
        let ctx = TenantCtx::new(t.id);
        let Some(d) = self.store.get_ldap(ctx).await? else {
            return Ok(DirectoryLogin::Refused(
                "the tenant has no directory",
                json!({}),
            ));
        };
        if existing.is_none() && !d.settings.provision {
            return Ok(DirectoryLogin::Refused("unknown user or tenant", json!({})));
        }
        let pw = self.bind_password(t, &d)?;
        let answer = ask_directory(&d.settings, &pw, username, password)
            .await
            .map_err(|e| {
                IamError::DirectoryUnavailable(format!(
                    "the directory of tenant {} cannot be used: {}",
                    t.name, e.0
                ))
            })?;
        let (dn, groups) = match answer {
            DirectoryAnswer::Authenticated { dn, groups } => (dn, groups),
            DirectoryAnswer::UnknownUser => {
                return Ok(DirectoryLogin::Refused(
                    "unknown user in the directory",
                    json!({}),
                ));
            }
            DirectoryAnswer::Ambiguous => {
                return Ok(DirectoryLogin::Refused(
                    "the directory's user filter matches several entries",
                    json!({}),
                ));
            }
            DirectoryAnswer::WrongPassword => {
                return Ok(DirectoryLogin::Refused(
                    "wrong password (directory)",
                    json!({}),
                ));
            }
        };
        let Some(role) = map_role(&d.settings, &groups) else {
            return Ok(DirectoryLogin::Refused(
                "no role mapped from the directory groups",
                json!({"dn": dn, "groups": groups}),
            ));
        };
        let system = Actor::System;
        match existing {
            Some(u) => {
                let mut u = u.clone();
                if u.role != role && u.status == UserStatus::Active {
                    let e = event(
                        &self.env,
                        Some(t),
                        system,
                        "user.role.directory-sync",
                        format!("user:{}/{}", t.name, u.username),
                        meta,
                        AuditOutcome::Success,
                        json!({"from": u.role, "to": role, "dn": dn, "groups": groups}),
                    );
                    let subs = self
                        .sub_account_cascade(t, &u, role, &Actor::System, meta)
                        .await?;
                    self.store.set_user_role(ctx, u.id, role, &e, &subs).await?;
                    self.forget_cached(None, Some(u.id));
                    self.forget_changed(&subs);
                    u.role = role;
                }
                Ok(DirectoryLogin::Ok(u))
            }
            None => {
                let Ok(name) = Username::parse(username) else {
                    return Ok(DirectoryLogin::Refused(
                        "the directory name is not a valid user name",
                        json!({"dn": dn}),
                    ));
                };
                let user = self.user_record(t, name.as_str(), role, DIRECTORY_ACCOUNT.into())?;
                let e = event(
                    &self.env,
                    Some(t),
                    system,
                    "user.create",
                    format!("user:{}/{}", t.name, user.username),
                    meta,
                    AuditOutcome::Success,
                    json!({"role": role, "id": user.id, "source": "ldap", "dn": dn,
                           "groups": groups}),
                );
                self.store.create_user(ctx, &user, &e).await?;
                Ok(DirectoryLogin::Ok(user))
            }
        }
    }

    /// Re-seals under the key service the bind passwords still sealed by the local key; returns
    /// how many (part of [`IamService::migrate_secrets`]).
    pub(crate) async fn migrate_directory_secrets(&self, provider: &Tenant) -> IamResult<u64> {
        let mut n = 0;
        for d in self
            .store
            .ldap_local_secrets(TenantCtx::new(provider.id))
            .await?
        {
            let aad = format!("ldap-bind:{}", d.tenant);
            let plain = self.open_secret(&aad, &d.sealed_bind_password)?;
            let new = self.seal_secret(&aad, &plain)?;
            if !new.starts_with(crate::sealer::KMS_PREFIX) {
                continue;
            }
            let e = parapet_store::AuditEvent {
                time: self.env.now(),
                tenant: Some(d.tenant),
                actor: Actor::System,
                action: "kms.platform-secret.reseal".into(),
                target: format!("tenant:{}", d.tenant),
                source_ip: None,
                user_agent: None,
                outcome: AuditOutcome::Success,
                details: json!({"secret": "ldap-bind-password", "from": "local-key", "to": "kms"}),
            };
            if self
                .store
                .ldap_reseal(TenantCtx::new(d.tenant), &d.sealed_bind_password, &new, &e)
                .await?
            {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A short name of an answer, for audit records and outputs.
pub fn answer_name(a: &DirectoryAnswer) -> &'static str {
    match a {
        DirectoryAnswer::Authenticated { .. } => "authenticated",
        DirectoryAnswer::UnknownUser => "unknown-user",
        DirectoryAnswer::Ambiguous => "ambiguous",
        DirectoryAnswer::WrongPassword => "wrong-password",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_store::LdapRoleMapping;

    fn settings() -> LdapSettings {
        LdapSettings {
            url: "ldap://127.0.0.1:389".into(),
            starttls: false,
            bind_dn: "cn=svc,dc=example,dc=org".into(),
            user_base: "ou=people,dc=example,dc=org".into(),
            user_filter: "(&(objectClass=inetOrgPerson)(uid={username}))".into(),
            group_base: Some("ou=groups,dc=example,dc=org".into()),
            group_filter: Some("(&(objectClass=groupOfNames)(member={dn}))".into()),
            member_of_attribute: None,
            role_mappings: vec![
                LdapRoleMapping {
                    group: "cn=admins,ou=groups,dc=example,dc=org".into(),
                    role: Role::TenantAdmin,
                },
                LdapRoleMapping {
                    group: "cn=staff,ou=groups,dc=example,dc=org".into(),
                    role: Role::TenantMember,
                },
            ],
            default_role: None,
            provision: true,
            timeout_secs: 5,
        }
    }

    #[test]
    fn typed_names_cannot_change_the_filter() {
        let f = fill_filter(
            "(&(objectClass=inetOrgPerson)(uid={username}))",
            "*)(uid=*",
            "",
        );
        assert_eq!(
            f,
            "(&(objectClass=inetOrgPerson)(uid=\\2a\\29\\28uid=\\2a))"
        );
        let g = fill_filter("(member={dn})", "x", "cn=a\\,b(c)*,dc=x");
        assert_eq!(g, "(member=cn=a\\5c,b\\28c\\29\\2a,dc=x)");
    }

    #[test]
    fn first_matching_group_gives_the_role() {
        let s = settings();
        let both = vec![
            "CN=staff, OU=groups,dc=example,dc=org".to_string(),
            "cn=admins,ou=groups,dc=example,dc=org".to_string(),
        ];
        assert_eq!(map_role(&s, &both), Some(Role::TenantAdmin));
        assert_eq!(
            map_role(&s, &both[..1]),
            Some(Role::TenantMember),
            "DNs compare case-insensitively, spaces ignored"
        );
        assert_eq!(map_role(&s, &[]), None);
        let mut d = s.clone();
        d.default_role = Some(Role::TenantAuditor);
        assert_eq!(map_role(&d, &[]), Some(Role::TenantAuditor));
    }

    #[test]
    fn validation_refuses_bad_settings() {
        let ok = settings();
        assert!(validate(&ok, TenantKind::Customer).is_ok());
        assert!(
            validate(&ok, TenantKind::Provider).is_err(),
            "tenant roles in the provider"
        );
        let mut s = ok.clone();
        s.url = "http://x".into();
        assert!(validate(&s, TenantKind::Customer).is_err());
        let mut s = ok.clone();
        s.user_filter = "(uid=alice)".into();
        assert!(validate(&s, TenantKind::Customer).is_err());
        let mut s = ok.clone();
        s.url = "ldaps://x".into();
        s.starttls = true;
        assert!(validate(&s, TenantKind::Customer).is_err());
        let mut s = ok.clone();
        s.group_filter = None;
        assert!(validate(&s, TenantKind::Customer).is_err());
        let mut s = ok;
        s.timeout_secs = 0;
        assert!(validate(&s, TenantKind::Customer).is_err());
    }
}
