//! LDAP v3 authentication per tenant (X.1642 8.1.2(1)) against a real OpenLDAP `slapd` started
//! by the test (Debian `slapd` + `ldap-utils`), on both backends: a tenant administrator sets the
//! directory (bind password sealed, never returned), directory users are provisioned at their
//! first bind with the role their groups map to, wrong passwords / unknown users / a filter
//! injection / an empty password are refused, the role follows a group change, lockout applies,
//! a directory that is down refuses with a clear error, the CLI and the console work, and another
//! tenant sees and changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::api::Api;
use common::{ADMIN_PASSWORD, Backend, bin, start};
use reqwest::Method as M;
use serde_json::{Value, json};

on_both!(ldap_directory_end_to_end);

const PW: &str = "Tenant-admin-pass-0123";
const BIND_PW: &str = "svc-bind-secret-4242";
const SUFFIX: &str = "dc=example,dc=org";

/// A throwaway `slapd` on 127.0.0.1 with an MDB database loaded from an LDIF.
struct Slapd {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Slapd {
    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn start() -> Slapd {
        for tool in ["/usr/sbin/slapd", "/usr/sbin/slapadd"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: install the Debian packages slapd and ldap-utils \
                 (scripts/test installs them)"
            );
        }
        let dir = parapet_store_sql::testkit::temp_dir("slapd");
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             pidfile {d}/slapd.pid\n\
             database mdb\n\
             maxsize 16777216\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"cn=root,{SUFFIX}\"\n\
             rootpw root-secret\n\
             directory {d}/db\n\
             access to attrs=userPassword by self read by anonymous auth by * none\n\
             access to * by users read by * none\n",
            d = dir.display()
        );
        std::fs::write(dir.join("slapd.conf"), conf).unwrap();
        let person = |uid: &str, pw: &str| {
            format!(
                "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\n\
                 cn: {uid}\nsn: {uid}\nuserPassword: {pw}\n\n"
            )
        };
        let group = |cn: &str, members: &[&str]| {
            let mut g =
                format!("dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n");
            for m in members {
                g.push_str(&format!("member: uid={m},ou=people,{SUFFIX}\n"));
            }
            g + "\n"
        };
        let ldif = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
             dn: cn=svc,{SUFFIX}\nobjectClass: person\ncn: svc\nsn: svc\nuserPassword: {BIND_PW}\n\n\
             {}{}{}{}{}{}",
            person("alice", "alice-dir-pass-1"),
            person("bob", "bob-dir-pass-2"),
            person("carol", "carol-dir-pass-3"),
            person("dave", "dave-dir-pass-4"),
            group("admins", &["alice"]),
            group("staff", &["bob", "dave"]),
        );
        std::fs::write(dir.join("data.ldif"), ldif).unwrap();
        let out = Command::new("/usr/sbin/slapadd")
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-l")
            .arg(dir.join("data.ldif"))
            .output()
            .unwrap();
        assert!(out.status.success(), "slapadd: {out:?}");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = Slapd {
            child: None,
            dir,
            port,
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(self.dir.join("slapd.conf"))
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{}/", self.port))
            .arg("-d")
            .arg("0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "slapd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Applies an LDIF change as the directory's root (`ldapmodify`).
    fn modify(&self, ldif: &str) {
        use std::io::Write;
        let mut c = Command::new("ldapmodify")
            .args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                &format!("cn=root,{SUFFIX}"),
                "-w",
                "root-secret",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldapmodify is missing: install the Debian package ldap-utils");
        c.stdin.take().unwrap().write_all(ldif.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "ldapmodify: {out:?}");
    }
}

fn cli(url: &str, token: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("PARAPET_SERVER", url)
        .env("PARAPET_TOKEN", token)
        .env(
            "PARAPET_CONFIG_DIR",
            parapet_store_sql::testkit::temp_dir("cfg"),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn put(api: &Api, path: &str, token: &str, v: Value) -> (u16, Value) {
    let (s, _, b) = api
        .req(
            M::PUT,
            path,
            token,
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&v).unwrap()),
        )
        .await;
    (s, b)
}

/// `POST /api/v1/auth/login`: status and body.
async fn try_login(api: &Api, user: &str, pw: &str) -> (u16, Value) {
    let res = api
        .http
        .post(format!("{}/api/v1/auth/login", api.base))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap();
    let s = res.status().as_u16();
    (s, res.json().await.unwrap_or(Value::Null))
}

async fn role_of(api: &Api, token: &str) -> String {
    let (s, me) = api.get("/api/v1/auth/whoami", token).await;
    assert_eq!(s, 200, "{me}");
    me["role"].as_str().unwrap().to_string()
}

fn settings(url: &str) -> Value {
    json!({
        "url": url,
        "bind_dn": format!("cn=svc,{SUFFIX}"),
        "bind_password": BIND_PW,
        "user_base": format!("ou=people,{SUFFIX}"),
        "user_filter": "(&(objectClass=inetOrgPerson)(uid={username}))",
        "group_base": format!("ou=groups,{SUFFIX}"),
        "group_filter": "(&(objectClass=groupOfNames)(member={dn}))",
        "role_mappings": [
            {"group": format!("cn=admins,ou=groups,{SUFFIX}"), "role": "tenant-admin"},
            {"group": format!("CN=staff, OU=groups,{SUFFIX}"), "role": "tenant-member"}
        ],
        "provision": true,
        "timeout_secs": 3
    })
}

/// The audit records of `tenant` with `action`.
async fn audit(api: &Api, token: &str, tenant: &str, action: &str) -> Vec<Value> {
    let (s, v) = api
        .get(
            &format!("/api/v1/tenants/{tenant}/audit?action={action}&limit=1000"),
            token,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

fn ldap_directory_end_to_end(backend: Backend) {
    let mut dir = Slapd::start();
    let srv = start(backend);
    let url = srv.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = Api {
            base: url.clone(),
            http: reqwest::Client::new(),
        };
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        for t in ["acme", "globex"] {
            let (s, v) = api.post("/api/v1/tenants", &admin, json!({"name": t})).await;
            assert_eq!(s, 201, "{v}");
            let (s, v) = api
                .post(
                    &format!("/api/v1/tenants/{t}/users"),
                    &admin,
                    json!({"username": "boss", "password": PW, "role": "tenant-admin"}),
                )
                .await;
            assert_eq!(s, 201, "{v}");
        }
        let acme = api.login("boss@acme", PW).await;
        let globex = api.login("boss@globex", PW).await;

        // No directory yet: directory users do not exist.
        let (s, _) = api.get("/api/v1/tenants/acme/ldap", &acme).await;
        assert_eq!(s, 404);
        assert_eq!(try_login(&api, "alice@acme", "alice-dir-pass-1").await.0, 401);

        // Bad settings are refused with a problem; a new directory needs its bind password.
        let mut bad = settings(&dir.url());
        bad["user_filter"] = json!("(uid=alice)");
        let (s, v) = put(&api, "/api/v1/tenants/acme/ldap", &acme, bad).await;
        assert_eq!(s, 422, "{v}");
        assert!(v["detail"].as_str().unwrap().contains("{username}"), "{v}");
        let mut nopw = settings(&dir.url());
        nopw.as_object_mut().unwrap().remove("bind_password");
        let (s, _) = put(&api, "/api/v1/tenants/acme/ldap", &acme, nopw.clone()).await;
        assert_eq!(s, 422);
        let mut provider_role = settings(&dir.url());
        provider_role["default_role"] = json!("security-admin");
        let (s, _) = put(&api, "/api/v1/tenants/acme/ldap", &acme, provider_role).await;
        assert_eq!(s, 422, "a tenant directory cannot hand out provider roles");

        let (s, v) = put(&api, "/api/v1/tenants/acme/ldap", &acme, settings(&dir.url())).await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = api.get("/api/v1/tenants/acme/ldap", &acme).await;
        assert_eq!(s, 200);
        assert_eq!(v["bind_dn"], format!("cn=svc,{SUFFIX}"));
        assert_eq!(v["bind_password_sealed_by"], "local-key");
        assert!(v.get("bind_password").is_none());
        assert!(!v.to_string().contains(BIND_PW), "the bind password is never returned");

        // Tenant isolation: another tenant's administrator neither sees nor changes it.
        for (m, path, body) in [
            (M::GET, "/api/v1/tenants/acme/ldap", None),
            (M::PUT, "/api/v1/tenants/acme/ldap", Some(settings("ldap://127.0.0.1:1"))),
            (M::DELETE, "/api/v1/tenants/acme/ldap", None),
            (M::POST, "/api/v1/tenants/acme/ldap/test", Some(json!({}))),
        ] {
            let (s, _, v) = api
                .req(
                    m.clone(),
                    path,
                    &globex,
                    &[("content-type", "application/json")],
                    body.map(|b| serde_json::to_vec(&b).unwrap()),
                )
                .await;
            assert!(s == 403 || s == 404, "{m} {path}: {s} {v}");
        }
        let (s, _) = api.get("/api/v1/tenants/globex/ldap", &globex).await;
        assert_eq!(s, 404, "globex has no directory of its own");
        assert_eq!(
            try_login(&api, "alice@globex", "alice-dir-pass-1").await.0,
            401,
            "acme's directory does not authenticate globex users"
        );

        // Just-in-time provisioning with the mapped role (audited).
        let (s, v) = try_login(&api, "alice@acme", "alice-dir-pass-1").await;
        assert_eq!(s, 200, "{v}");
        let alice = v["token"].as_str().unwrap().to_string();
        assert_eq!(role_of(&api, &alice).await, "tenant-admin");
        let (s, v) = try_login(&api, "bob@acme", "bob-dir-pass-2").await;
        assert_eq!(s, 200, "{v}");
        let bob = v["token"].as_str().unwrap().to_string();
        assert_eq!(role_of(&api, &bob).await, "tenant-member", "DNs compare case-insensitively");
        let created = audit(&api, &acme, "acme", "user.create").await;
        let alice_created = created
            .iter()
            .find(|r| r["target"] == "user:acme/alice")
            .expect("alice's provisioning is audited");
        assert_eq!(alice_created["details"]["source"], "ldap");
        assert_eq!(alice_created["details"]["role"], "tenant-admin");
        // The second log-in uses the existing account.
        assert_eq!(try_login(&api, "alice@acme", "alice-dir-pass-1").await.0, 200);

        // Refusals: wrong password, unknown user, filter injection, empty password, no group.
        assert_eq!(try_login(&api, "alice@acme", "wrong-password-1").await.0, 401);
        assert_eq!(try_login(&api, "nobody@acme", "alice-dir-pass-1").await.0, 401);
        assert_eq!(try_login(&api, "*)(uid=*@acme", "alice-dir-pass-1").await.0, 401);
        assert_eq!(try_login(&api, "*@acme", "bob-dir-pass-2").await.0, 401);
        assert_eq!(try_login(&api, "alice@acme", "").await.0, 401);
        assert_eq!(try_login(&api, "carol@acme", "carol-dir-pass-3").await.0, 401);
        let (s, users) = api.get("/api/v1/tenants/acme/users", &acme).await;
        assert_eq!(s, 200);
        let names: Vec<&str> = users["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"alice") && names.contains(&"bob"), "{names:?}");
        assert!(!names.contains(&"carol") && !names.iter().any(|n| n.contains('*')), "{names:?}");
        let failures = audit(&api, &acme, "acme", "auth.login").await;
        assert!(
            failures
                .iter()
                .any(|r| r["details"]["reason"] == "no role mapped from the directory groups"),
            "carol's refusal says why"
        );

        // The role follows the groups at every log-in (audited).
        dir.modify(&format!(
            "dn: cn=admins,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\n\
             member: uid=alice,ou=people,{SUFFIX}\n-\nadd: member\nmember: uid=carol,ou=people,{SUFFIX}\n\n\
             dn: cn=staff,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\n\
             member: uid=alice,ou=people,{SUFFIX}\n"
        ));
        let (s, v) = try_login(&api, "alice@acme", "alice-dir-pass-1").await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(role_of(&api, v["token"].as_str().unwrap()).await, "tenant-member");
        let sync = audit(&api, &acme, "acme", "user.role.directory-sync").await;
        assert!(
            sync.iter().any(|r| r["target"] == "user:acme/alice"
                && r["details"]["from"] == "tenant-admin"
                && r["details"]["to"] == "tenant-member"),
            "{sync:?}"
        );

        // Lockout applies to directory accounts as to local ones (5 failures by default).
        assert_eq!(try_login(&api, "dave@acme", "dave-dir-pass-4").await.0, 200);
        for _ in 0..5 {
            assert_eq!(try_login(&api, "dave@acme", "not-daves-pass").await.0, 401);
        }
        assert_eq!(
            try_login(&api, "dave@acme", "dave-dir-pass-4").await.0,
            401,
            "locked: the right directory password no longer opens"
        );

        // The CLI: show, test (as JSON), set with the password from the environment.
        let (ok, out, err) = cli(&url, &acme, &["ldap", "show", "--tenant", "acme", "--json"], &[]);
        assert!(ok, "{err}");
        let shown: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(shown["url"], dir.url());
        let (ok, out, err) = cli(
            &url,
            &acme,
            &["ldap", "test", "--tenant", "acme", "--user", "bob", "--json"],
            &[("PARAPET_LDAP_TEST_PASSWORD", "bob-dir-pass-2")],
        );
        assert!(ok, "{err}");
        let t: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(t["answer"], "authenticated");
        assert_eq!(t["role"], "tenant-member");
        assert_eq!(t["groups"][0], format!("cn=staff,ou=groups,{SUFFIX}"));
        let (ok, out, _) = cli(
            &url,
            &acme,
            &["ldap", "test", "--tenant", "acme", "--user", "bob"],
            &[("PARAPET_LDAP_TEST_PASSWORD", "bad-password")],
        );
        assert!(ok);
        assert!(out.contains("wrong-password"), "{out}");
        let (ok, _, err) = cli(
            &url,
            &acme,
            &[
                "ldap", "set", "--tenant", "acme", "--url", &dir.url(),
                "--bind-dn", &format!("cn=svc,{SUFFIX}"),
                "--user-base", &format!("ou=people,{SUFFIX}"),
                "--group-base", &format!("ou=groups,{SUFFIX}"),
                "--group-filter", "(&(objectClass=groupOfNames)(member={dn}))",
                "--map", &format!("cn=admins,ou=groups,{SUFFIX}=tenant-admin"),
                "--default-role", "tenant-auditor", "--provision",
            ],
            &[("PARAPET_LDAP_BIND_PASSWORD", BIND_PW)],
        );
        assert!(ok, "{err}");
        // carol is in the admins group now.
        let (s, v) = try_login(&api, "carol@acme", "carol-dir-pass-3").await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(role_of(&api, v["token"].as_str().unwrap()).await, "tenant-admin");
        let (ok, _, err) = cli(&url, &globex, &["ldap", "show", "--tenant", "acme"], &[]);
        assert!(!ok && !err.is_empty() && err.lines().count() <= 2, "{err}");

        // The console page shows the directory and never the password.
        let page = api
            .http
            .get(format!("{url}/console/ldap"))
            .header("cookie", format!("parapet_session={acme}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains(&format!("cn=svc,{SUFFIX}")) && html.contains("ldap-set"), "{html}");
        assert!(!html.contains(BIND_PW));

        // A wrong service password or a directory that is down: a clear error, nobody let in.
        let mut wrong = settings(&dir.url());
        wrong["bind_password"] = json!("not-the-bind-password");
        let (s, _) = put(&api, "/api/v1/tenants/acme/ldap", &acme, wrong).await;
        assert_eq!(s, 200);
        let (s, v) = api.post("/api/v1/tenants/acme/ldap/test", &acme, json!({})).await;
        assert_eq!(s, 503, "{v}");
        assert!(v["detail"].as_str().unwrap().contains("service account"), "{v}");
        assert_eq!(try_login(&api, "bob@acme", "bob-dir-pass-2").await.0, 503);
        let (s, _) = put(&api, "/api/v1/tenants/acme/ldap", &acme, settings(&dir.url())).await;
        assert_eq!(s, 200);
        assert_eq!(try_login(&api, "bob@acme", "bob-dir-pass-2").await.0, 200);
        dir.stop();
        let (s, v) = try_login(&api, "bob@acme", "bob-dir-pass-2").await;
        assert_eq!(s, 503, "{v}");
        assert!(v["detail"].as_str().unwrap().contains("directory"), "{v}");
        assert_eq!(try_login(&api, "newbie@acme", "whatever-pass").await.0, 503);
        let (s, v) = api.post("/api/v1/tenants/acme/ldap/test", &acme, json!({})).await;
        assert_eq!(s, 503, "{v}");
        let down = audit(&api, &acme, "acme", "auth.login").await;
        assert!(down.iter().any(|r| r["details"]["reason"] == "directory unavailable"));
        // Local accounts are unaffected.
        assert_eq!(try_login(&api, "boss@acme", PW).await.0, 200);

        // Removal: directory accounts can no longer log in.
        dir.launch();
        let (ok, _, err) = cli(&url, &acme, &["ldap", "rm", "--tenant", "acme"], &[]);
        assert!(ok, "{err}");
        assert_eq!(try_login(&api, "bob@acme", "bob-dir-pass-2").await.0, 401);
        let set = audit(&api, &acme, "acme", "ldap.set").await;
        assert!(!set.is_empty() && !set.iter().any(|r| r.to_string().contains(BIND_PW)));
        assert_eq!(audit(&api, &acme, "acme", "ldap.delete").await.len(), 1);
    });
}
