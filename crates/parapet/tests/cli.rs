//! Black-box tests of the command-line client: a real `parapet serve` (SQLite and PostgreSQL),
//! and the `parapet` binary run as a subprocess with its own configuration directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Backend;
use serde_json::Value;

const NOT_LOGGED_IN: &str = "error: not logged in: run 'parapet login --server URL --username \
                             NAME' or set PARAPET_TOKEN";
const USER_PASSWORD: &str = "Correct-Horse-42-battery";

/// What one run of the binary did.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Asserts success and returns standard output.
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "command failed: {self:?}");
        &self.stdout
    }

    /// Asserts failure with exactly one line on standard error, starting with `error:`, and
    /// returns that line.
    fn err(&self) -> &str {
        assert_eq!(self.code, Some(1), "expected exit 1: {self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line on stderr: {self:?}");
        assert!(lines[0].starts_with("error: "), "{self:?}");
        lines[0]
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// A configuration directory for the client (not created: the client must create it).
fn config_dir(tag: &str) -> PathBuf {
    parapet_store_sql::testkit::temp_dir("cli").join(tag)
}

/// Runs `parapet args...` with `PARAPET_CONFIG_DIR=dir`, a clean environment for the client's
/// variables, optional standard input, and extra variables.
fn run_env(dir: &Path, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(common::bin());
    cmd.args(args)
        .env("PARAPET_CONFIG_DIR", dir)
        .env_remove("PARAPET_SERVER")
        .env_remove("PARAPET_TOKEN")
        .env_remove("XDG_CONFIG_HOME")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn parapet");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn run(dir: &Path, args: &[&str]) -> Out {
    run_env(dir, args, None, &[])
}

fn run_in(dir: &Path, args: &[&str], stdin: &str) -> Out {
    run_env(dir, args, Some(stdin), &[])
}

/// Logs `username` in with `password` on standard input, asserting success.
fn login(dir: &Path, url: &str, username: &str, password: &str) {
    let out = run_in(
        dir,
        &[
            "login",
            "--server",
            url,
            "--username",
            username,
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    assert_eq!(out.ok(), format!("Logged in to {url} as {username}\n"));
}

fn login_admin(srv: &common::Server, tag: &str) -> PathBuf {
    let dir = config_dir(tag);
    login(&dir, &srv.url, "admin", common::ADMIN_PASSWORD);
    dir
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The table row (split on white space) whose first column is `first`.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{table}"))
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|i| i[key].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------

fn login_whoami_logout(b: Backend) {
    let srv = common::start(b);
    let url = srv.url.as_str();
    let dir = config_dir("cfg");
    assert!(!dir.exists());

    // A trailing CR LF is stripped like a LF.
    let out = run_in(
        &dir,
        &[
            "login",
            "--server",
            &format!("{url}/"),
            "--username",
            "admin",
            "--password-stdin",
        ],
        &format!("{}\r\n", common::ADMIN_PASSWORD),
    );
    assert_eq!(out.ok(), format!("Logged in to {url} as admin\n"));
    assert!(out.stderr.is_empty(), "{out:?}");

    // The credentials: a private file in a private directory, with the session token.
    let file = dir.join("credentials.json");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&dir), 0o700);
    let creds: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(creds["server"], url);
    assert_eq!(creds["username"], "admin");
    let token = creds["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("pps_"), "{creds}");
    assert!(!creds["expires_at"].as_str().unwrap().is_empty());
    assert!(!out.stdout.contains(&token));

    // whoami, human and JSON.
    let human = run(&dir, &["whoami"]);
    let human = human.ok();
    assert_eq!(row(human, "login:"), ["login:", "admin"]);
    assert_eq!(row(human, "role:"), ["role:", "security-admin"]);
    assert_eq!(row(human, "server:"), ["server:", url]);
    assert!(!human.contains(&token));
    let me = run(&dir, &["whoami", "--json"]).json();
    assert_eq!(me["login"], "admin");
    assert_eq!(me["username"], "admin");
    assert_eq!(me["role"], "security-admin");
    assert_eq!(me["status"], "active");
    assert_eq!(row(human, "tenant:")[1], me["tenant"].as_str().unwrap());
    assert!(me["last_login_at"].is_string(), "{me}");

    // Logging in again replaces the stored session.
    login(&dir, url, "admin", common::ADMIN_PASSWORD);
    let creds2: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_ne!(creds2["token"], creds["token"]);
    assert_eq!(mode(&file), 0o600);
    let token2 = creds2["token"].as_str().unwrap().to_string();

    // --json login output carries the user, never the token.
    let other = config_dir("json");
    let out = run_in(
        &other,
        &[
            "login",
            "--server",
            url,
            "--username",
            "admin",
            "--password-stdin",
            "--json",
        ],
        common::ADMIN_PASSWORD,
    );
    let v = out.json();
    assert_eq!(v["server"], url);
    assert_eq!(v["user"]["login"], "admin");
    assert!(v["expires_at"].is_string());
    assert!(!out.stdout.contains("pps_"), "{out:?}");

    // Without PARAPET_CONFIG_DIR the file goes to $XDG_CONFIG_HOME/parapet/.
    let xdg = config_dir("xdg");
    let out = run_env(
        Path::new(""),
        &[
            "login",
            "--server",
            url,
            "--username",
            "admin",
            "--password-stdin",
        ],
        Some(common::ADMIN_PASSWORD),
        &[("XDG_CONFIG_HOME", xdg.to_str().unwrap())],
    );
    out.ok();
    assert_eq!(mode(&xdg.join("parapet").join("credentials.json")), 0o600);

    // A session ended elsewhere: commands say to log in again, and logout still forgets it.
    let gone = config_dir("gone");
    login(&gone, url, "admin", common::ADMIN_PASSWORD);
    let gone_file = gone.join("credentials.json");
    let creds3: Value =
        serde_json::from_str(&std::fs::read_to_string(&gone_file).unwrap()).unwrap();
    let t3 = creds3["token"].as_str().unwrap();
    let out = run_env(
        &config_dir("none"),
        &["logout"],
        None,
        &[("PARAPET_SERVER", url), ("PARAPET_TOKEN", t3)],
    );
    assert_eq!(out.ok(), format!("Logged out of {url}\n"));
    assert!(
        gone_file.exists(),
        "a given token's logout leaves the stored file"
    );
    let out = run(&gone, &["whoami"]);
    let line = out.err();
    assert!(line.starts_with("error: 401 "), "{line}");
    assert!(
        line.ends_with(&format!(
            "(the stored session has ended: run 'parapet login --server {url} --username NAME' again)"
        )),
        "{line}"
    );
    assert!(!line.contains(t3));
    assert_eq!(
        run(&gone, &["logout"]).ok(),
        format!("Logged out of {url} (the session had already ended)\n")
    );
    assert!(!gone_file.exists());

    // logout ends the session on the server and forgets it here.
    assert_eq!(
        run(&dir, &["logout"]).ok(),
        format!("Logged out of {url}\n")
    );
    assert!(!file.exists());
    assert_eq!(run(&dir, &["whoami"]).err(), NOT_LOGGED_IN);
    assert_eq!(run(&dir, &["logout"]).err(), NOT_LOGGED_IN);
    let empty = config_dir("empty");
    let out = run_env(
        &empty,
        &["whoami"],
        None,
        &[("PARAPET_SERVER", url), ("PARAPET_TOKEN", &token2)],
    );
    assert!(out.err().contains("401"), "{out:?}");
}

fn tenants_and_users(b: Backend) {
    let srv = common::start(b);
    let url = srv.url.as_str();
    let dir = login_admin(&srv, "admin");

    // Tenants.
    let out = run(&dir, &["tenant", "create", "acme"]);
    assert!(out.ok().starts_with("Created tenant acme (id "), "{out:?}");
    let err = run(&dir, &["tenant", "create", "acme"]);
    assert!(err.err().contains("409"), "{err:?}");
    assert!(err.stdout.is_empty());

    let list = run(&dir, &["tenant", "list"]);
    let list = list.ok();
    let header = list.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "KIND", "STATUS", "CREATED", "ID"]
    );
    assert_eq!(row(list, "acme")[1..3], ["customer", "active"]);
    let tenants = run(&dir, &["tenant", "list", "--json"]).json();
    let all = tenants.as_array().unwrap();
    assert_eq!(all.len(), 2, "{tenants}");
    let provider = all.iter().find(|t| t["kind"] == "provider").unwrap();
    let provider = provider["name"].as_str().unwrap().to_string();
    assert_eq!(row(list, &provider)[1..3], ["provider", "active"]);
    assert!(names(&tenants, "name").contains(&"acme".to_string()));

    let show = run(&dir, &["tenant", "show", "acme", "--json"]).json();
    assert_eq!(show["name"], "acme");
    assert_eq!(show["kind"], "customer");
    let id = show["id"].as_str().unwrap().to_string();
    // By id too.
    assert_eq!(
        run(&dir, &["tenant", "show", &id, "--json"]).json()["name"],
        "acme"
    );
    let human = run(&dir, &["tenant", "show", "acme"]);
    assert_eq!(row(human.ok(), "status:"), ["status:", "active"]);

    assert_eq!(
        run(&dir, &["tenant", "suspend", "acme"]).ok(),
        "Tenant acme is suspended\n"
    );
    assert_eq!(
        run(&dir, &["tenant", "show", "acme", "--json"]).json()["status"],
        "suspended"
    );
    let act = run(&dir, &["tenant", "activate", "acme", "--json"]).json();
    assert_eq!(act["status"], "active");
    assert_eq!(act["id"].as_str(), Some(id.as_str()));

    // Users.
    let out = run_in(
        &dir,
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "alice",
            "--role",
            "tenant-admin",
            "--password-stdin",
        ],
        &format!("{USER_PASSWORD}\n"),
    );
    assert_eq!(out.ok(), "Created user alice@acme with role tenant-admin\n");
    let bob = run_in(
        &dir,
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "bob",
            "--role",
            "tenant-member",
            "--password-stdin",
            "--json",
        ],
        USER_PASSWORD,
    )
    .json();
    assert_eq!(bob["login"], "bob@acme");
    assert_eq!(bob["tenant"], "acme");
    assert_eq!(bob["status"], "active");
    assert!(bob["last_login_at"].is_null());
    assert!(!bob.to_string().contains(USER_PASSWORD));

    let users = run(&dir, &["user", "list", "--tenant", "acme"]);
    let users = users.ok();
    assert_eq!(
        users.lines().next().unwrap(),
        "USERNAME  LOGIN       ROLE           STATUS  LAST LOGIN  CREATED"
    );
    assert_eq!(
        row(users, "alice")[..5],
        ["alice", "alice@acme", "tenant-admin", "active", "-"]
    );
    assert_eq!(
        row(users, "bob")[..4],
        ["bob", "bob@acme", "tenant-member", "active"]
    );

    // A disabled user cannot log in; enabled again, they can.
    assert_eq!(
        run(&dir, &["user", "disable", "--tenant", "acme", "bob"]).ok(),
        "User bob@acme is disabled\n"
    );
    let listed = run(&dir, &["user", "list", "--tenant", "acme", "--json"]).json();
    let bob_now = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "bob")
        .unwrap();
    assert_eq!(bob_now["status"], "disabled");
    let bob_dir = config_dir("bob");
    let out = run_in(
        &bob_dir,
        &[
            "login",
            "--server",
            url,
            "--username",
            "bob@acme",
            "--password-stdin",
        ],
        USER_PASSWORD,
    );
    assert!(out.err().contains("401"), "{out:?}");
    assert!(!bob_dir.join("credentials.json").exists());
    let en = run(
        &dir,
        &["user", "enable", "--tenant", "acme", "bob", "--json"],
    )
    .json();
    assert_eq!(en["status"], "active");
    login(&bob_dir, url, "bob@acme", USER_PASSWORD);

    // A tenant user sees their own tenant, and is refused provider operations.
    let alice = config_dir("alice");
    login(&alice, url, "alice@acme", USER_PASSWORD);
    let me = run(&alice, &["whoami", "--json"]).json();
    assert_eq!(
        (me["tenant"].as_str(), me["role"].as_str()),
        (Some("acme"), Some("tenant-admin"))
    );
    let out = run(&alice, &["tenant", "create", "evil"]);
    assert!(out.err().starts_with("error: 403 Forbidden: "), "{out:?}");
    let seen = run(&alice, &["user", "list", "--tenant", "acme", "--json"]).json();
    let mut seen = names(&seen, "username");
    seen.sort();
    assert_eq!(seen, ["alice", "bob"]);

    // The audit trail shows what was done.
    let trail = run(&dir, &["audit", "search", "--tenant", "acme"]);
    let trail = trail.ok();
    assert_eq!(
        trail
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        [
            "ID", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "SOURCE"
        ]
    );
    assert!(
        trail
            .lines()
            .any(|l| l.contains("tenant.suspend") && l.contains("tenant:acme")),
        "{trail}"
    );
    let suspends = run(
        &dir,
        &[
            "audit",
            "search",
            "--tenant",
            "acme",
            "--action",
            "tenant.suspend",
            "--json",
        ],
    )
    .json();
    let suspends = suspends.as_array().unwrap();
    assert_eq!(suspends.len(), 1, "{suspends:?}");
    assert_eq!(suspends[0]["actor"]["username"], "admin");
    assert_eq!(suspends[0]["outcome"], "success");
    let two = run(
        &dir,
        &[
            "audit", "search", "--tenant", "acme", "--limit", "2", "--json",
        ],
    )
    .json();
    assert_eq!(two.as_array().unwrap().len(), 2);
    let by_admin = run(
        &dir,
        &[
            "audit",
            "search",
            "--tenant",
            &provider,
            "--actor",
            "admin",
            "--action",
            "auth.login",
            "--json",
        ],
    )
    .json();
    assert!(
        by_admin
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] == "auth.login" && r["actor"]["username"] == "admin"),
        "{by_admin}"
    );
    assert!(!by_admin.as_array().unwrap().is_empty());
}

/// Listings follow cursors past the server's page size (100).
fn listings_follow_cursors(b: Backend) {
    let srv = common::start(b);
    let dir = login_admin(&srv, "admin");
    let creds: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("credentials.json")).unwrap())
            .unwrap();
    let client = parapet_client::Client::new(&srv.url)
        .unwrap()
        .with_token(creds["token"].as_str().unwrap().to_string());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let provider = run(&dir, &["whoami", "--json"]).json()["tenant"]
        .as_str()
        .unwrap()
        .to_string();
    rt.block_on(async {
        for i in 0..104 {
            client.create_tenant(&format!("t{i:03}")).await.unwrap();
        }
    });
    let tenants = run(&dir, &["tenant", "list", "--json"]).json();
    let mut got = names(&tenants, "name");
    assert_eq!(got.len(), 105);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 105, "duplicates across pages");
    let human = run(&dir, &["tenant", "list"]);
    assert_eq!(human.ok().lines().count(), 106);
    row(human.ok(), "t103");

    let recs = run(
        &dir,
        &[
            "audit",
            "search",
            "--tenant",
            &provider,
            "--action",
            "tenant.create",
            "--limit",
            "103",
            "--json",
        ],
    )
    .json();
    let recs = recs.as_array().unwrap();
    assert_eq!(recs.len(), 103);
    let mut ids: Vec<i64> = recs.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 103);
    assert!(recs.iter().all(|r| r["action"] == "tenant.create"));
}

fn tokens(b: Backend) {
    let srv = common::start(b);
    let url = srv.url.as_str();
    let dir = login_admin(&srv, "admin");

    // Human output: the token alone on stdout, what it is on stderr.
    let out = run(
        &dir,
        &["token", "create", "--name", "ci", "--scope", "read"],
    );
    let stdout = out.ok();
    assert_eq!(stdout.lines().count(), 1, "{out:?}");
    let ro = stdout.trim_end().to_string();
    assert!(ro.starts_with("ppt_"), "{out:?}");
    assert!(out.stderr.contains("Created token ci"), "{out:?}");
    assert!(!out.stderr.contains(&ro));

    // The token works from the environment, without any stored login.
    let empty = config_dir("empty");
    let env = [("PARAPET_SERVER", url), ("PARAPET_TOKEN", ro.as_str())];
    let me = run_env(&empty, &["whoami", "--json"], None, &env).json();
    assert_eq!(me["login"], "admin");
    let list = run_env(&empty, &["tenant", "list", "--json"], None, &env).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    // A read-only token cannot change anything.
    let out = run_env(&empty, &["tenant", "create", "nope"], None, &env);
    assert!(out.err().starts_with("error: 403 Forbidden: "), "{out:?}");
    assert!(!out.stderr.contains(&ro));
    // Without a server it says so.
    let out = run_env(&empty, &["whoami"], None, &[("PARAPET_TOKEN", ro.as_str())]);
    assert_eq!(
        out.err(),
        "error: no server given: pass --server URL or set PARAPET_SERVER"
    );

    // JSON output: the whole response.
    let rw = run(
        &dir,
        &[
            "token",
            "create",
            "--name",
            "deploy",
            "--scope",
            "read",
            "--scope",
            "write",
            "--expires-in",
            "3600",
            "--json",
        ],
    )
    .json();
    assert_eq!(rw["name"], "deploy");
    assert_eq!(rw["scopes"], serde_json::json!(["read", "write"]));
    assert!(rw["expires_at"].is_string());
    assert!(rw["id"].is_string());
    let rw_token = rw["token"].as_str().unwrap();
    assert!(rw_token.starts_with("ppt_"));
    // --token and --server on the command line override everything.
    let out = run(
        &empty,
        &[
            "tenant",
            "create",
            "made-by-token",
            "--server",
            url,
            "--token",
            rw_token,
        ],
    );
    assert!(
        out.ok().starts_with("Created tenant made-by-token"),
        "{out:?}"
    );
    // A bad token is refused.
    let out = run_env(
        &empty,
        &["whoami"],
        None,
        &[
            ("PARAPET_SERVER", url),
            ("PARAPET_TOKEN", "ppt_not-a-real-token"),
        ],
    );
    assert!(out.err().starts_with("error: 401 "), "{out:?}");
    assert!(!out.stderr.contains("ppt_not-a-real-token"));

    // The caller's sessions and tokens are listed without secrets, and one is revoked.
    let list = run(&dir, &["token", "list", "--json"]).json();
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 3, "{list}");
    assert!(!list.to_string().contains("ppt_") && !list.to_string().contains("pps_"));
    assert_eq!(items.iter().filter(|t| t["current"] == true).count(), 1);
    let human = run(&dir, &["token", "list"]).ok().to_string();
    assert!(
        human.starts_with("ID") && human.contains("deploy") && human.contains("session"),
        "{human}"
    );
    let deploy_id = items.iter().find(|t| t["name"] == "deploy").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = run(&dir, &["token", "revoke", &deploy_id]);
    assert_eq!(out.ok(), format!("Revoked {deploy_id}\n"));
    let out = run_env(
        &empty,
        &["whoami"],
        None,
        &[("PARAPET_SERVER", url), ("PARAPET_TOKEN", rw_token)],
    );
    assert!(out.err().starts_with("error: 401 "), "{out:?}");
    let out = run(&dir, &["token", "revoke", &deploy_id]);
    assert!(out.err().starts_with("error: 404 Not Found"), "{out:?}");
}

fn errors_are_one_line(b: Backend) {
    let srv = common::start(b);
    let url = srv.url.as_str();

    // Wrong password: nothing stored.
    let dir = config_dir("wrong");
    let out = run_in(
        &dir,
        &[
            "login",
            "--server",
            url,
            "--username",
            "admin",
            "--password-stdin",
        ],
        "not-the-password\n",
    );
    let line = out.err();
    assert!(
        line.starts_with(&format!("error: cannot log in to {url} as admin: 401 ")),
        "{line}"
    );
    assert!(!line.contains("not-the-password"));
    assert!(out.stdout.is_empty());
    assert!(!dir.join("credentials.json").exists());
    // No password at all.
    let out = run_in(
        &dir,
        &[
            "login",
            "--server",
            url,
            "--username",
            "admin",
            "--password-stdin",
        ],
        "",
    );
    assert_eq!(out.err(), "error: no password on standard input");

    // Not logged in.
    for args in [
        &["whoami"][..],
        &["tenant", "list"],
        &["user", "list", "--tenant", "acme"],
        &["token", "create", "--name", "x"],
        &["audit", "search", "--tenant", "acme"],
    ] {
        assert_eq!(run(&dir, args).err(), NOT_LOGGED_IN, "{args:?}");
    }
    // A stored login is not sent to another server.
    let dir = login_admin(&srv, "admin");
    let other = url.replace("127.0.0.1", "localhost");
    let out = run(&dir, &["whoami", "--server", &other]);
    assert!(
        out.err()
            .starts_with(&format!("error: not logged in to {other}: ")),
        "{out:?}"
    );

    // Unknown tenant.
    let out = run(&dir, &["tenant", "show", "nosuch"]);
    let line = out.err();
    assert!(line.starts_with("error: 404 Not Found: "), "{line}");
    assert!(line.contains("tenant"), "{line}");
    assert!(out.stdout.is_empty());
    assert!(
        run(&dir, &["user", "list", "--tenant", "nosuch"])
            .err()
            .starts_with("error: 404 ")
    );
    assert!(
        run(&dir, &["tenant", "suspend", "nosuch"])
            .err()
            .starts_with("error: 404 ")
    );

    // Invalid roles: unknown, and not fitting the tenant's kind.
    run(&dir, &["tenant", "create", "acme"]).ok();
    let out = run_in(
        &dir,
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "bob",
            "--role",
            "root",
            "--password-stdin",
        ],
        USER_PASSWORD,
    );
    let line = out.err();
    assert!(line.starts_with("error: 4"), "{line}");
    assert!(line.contains("root"), "{line}");
    assert!(!line.contains(USER_PASSWORD));
    let out = run_in(
        &dir,
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "bob",
            "--role",
            "security-admin",
            "--password-stdin",
        ],
        USER_PASSWORD,
    );
    assert!(out.err().contains("security-admin"), "{out:?}");
    let users = run(&dir, &["user", "list", "--tenant", "acme", "--json"]).json();
    assert_eq!(users, serde_json::json!([]));
    // Unknown user.
    let out = run(&dir, &["user", "disable", "--tenant", "acme", "nobody"]);
    assert!(out.err().starts_with("error: 404 "), "{out:?}");

    // No server listening; a malformed URL.
    let out = run_in(
        &dir,
        &[
            "login",
            "--server",
            "http://127.0.0.1:1",
            "--username",
            "admin",
            "--password-stdin",
        ],
        "x\n",
    );
    assert!(
        out.err()
            .starts_with("error: cannot log in to http://127.0.0.1:1 as admin: "),
        "{out:?}"
    );
    let out = run(&dir, &["whoami", "--server", "not a url"]);
    assert!(out.err().contains("invalid server URL"), "{out:?}");
    // The earlier login is untouched by the failures.
    assert_eq!(run(&dir, &["whoami", "--json"]).json()["login"], "admin");
}

fn help_and_usage(b: Backend) {
    let srv = common::start(b);
    let dir = config_dir("help");
    let secret = [("PARAPET_TOKEN", "ppt_should-not-appear")];
    let groups: &[(&[&str], &[&str])] = &[
        (
            &[],
            &[
                "serve",
                "login",
                "logout",
                "whoami",
                "tenant",
                "user",
                "token",
                "audit",
                "ITU-T X.1642",
            ],
        ),
        (&["login"], &["--server", "--username", "--password-stdin"]),
        (&["logout"], &["--server", "--token", "--json"]),
        (&["whoami"], &["--server", "--token", "--json"]),
        (
            &["tenant"],
            &["create", "list", "show", "suspend", "activate"],
        ),
        (&["tenant", "list"], &["--server", "--token", "--json"]),
        (&["tenant", "create"], &["<NAME>", "--json"]),
        (&["user"], &["create", "list", "disable", "enable"]),
        (
            &["user", "create"],
            &["--tenant", "--role", "--password-stdin", "tenant-admin"],
        ),
        (&["user", "list"], &["--tenant", "--json"]),
        (&["token"], &["create", "list", "revoke"]),
        (&["token", "revoke"], &["<ID>", "--json"]),
        (
            &["token", "create"],
            &["--name", "--scope", "--expires-in", "read", "write"],
        ),
        (&["audit"], &["search"]),
        (
            &["audit", "search"],
            &["--tenant", "--action", "--actor", "--limit"],
        ),
    ];
    for (args, wanted) in groups {
        let mut argv = args.to_vec();
        argv.push("--help");
        let out = run_env(&dir, &argv, None, &secret);
        let text = out.ok();
        for w in *wanted {
            assert!(text.contains(w), "{argv:?} --help lacks {w:?}:\n{text}");
        }
        assert!(!text.contains("ppt_should-not-appear"), "{text}");
    }
    // A group without a subcommand is a usage error (exit 2), not a crash.
    let out = run(&dir, &["tenant"]);
    assert_eq!(out.code, Some(2), "{out:?}");

    // PARAPET_SERVER is used when --server is absent; a stored login for it is used.
    login(&dir, &srv.url, "admin", common::ADMIN_PASSWORD);
    let me = run_env(
        &dir,
        &["whoami", "--json"],
        None,
        &[("PARAPET_SERVER", &srv.url)],
    )
    .json();
    assert_eq!(me["login"], "admin");
}

#[test]
fn login_whoami_logout_sqlite() {
    login_whoami_logout(Backend::Sqlite);
}
#[test]
fn login_whoami_logout_postgres() {
    login_whoami_logout(Backend::Postgres);
}
#[test]
fn tenants_and_users_sqlite() {
    tenants_and_users(Backend::Sqlite);
}
#[test]
fn tenants_and_users_postgres() {
    tenants_and_users(Backend::Postgres);
}
#[test]
fn listings_follow_cursors_sqlite() {
    listings_follow_cursors(Backend::Sqlite);
}
#[test]
fn listings_follow_cursors_postgres() {
    listings_follow_cursors(Backend::Postgres);
}
#[test]
fn tokens_sqlite() {
    tokens(Backend::Sqlite);
}
#[test]
fn tokens_postgres() {
    tokens(Backend::Postgres);
}
#[test]
fn errors_are_one_line_sqlite() {
    errors_are_one_line(Backend::Sqlite);
}
#[test]
fn errors_are_one_line_postgres() {
    errors_are_one_line(Backend::Postgres);
}
#[test]
fn help_and_usage_sqlite() {
    help_and_usage(Backend::Sqlite);
}
#[test]
fn help_and_usage_postgres() {
    help_and_usage(Backend::Postgres);
}
