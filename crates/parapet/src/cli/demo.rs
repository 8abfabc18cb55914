//! `parapet demo attack`: a scripted attack on a demo server (`serve --demo`), so that the
//! built-in detections fire and live alerts show in the console: password guessing and spraying
//! from this machine's address followed by a successful log-in, a role granted directly
//! (outside an approval) and a mass deletion of assets.

use parapet_client::{AssetInput, Client};

use super::output;

#[derive(Debug, clap::Subcommand)]
pub enum DemoCommand {
    /// Run a scripted attack against a demo server: wrong passwords for five account names,
    /// a successful log-in as the tenant administrator, a role granted directly and twenty
    /// assets created and deleted. Every step is a real API call; the alerts come from the
    /// server's built-in rules over its audit log (a few seconds later).
    Attack(AttackArgs),
}

#[derive(Debug, clap::Args)]
pub struct AttackArgs {
    /// The server's base URL.
    #[arg(long, env = "PARAPET_SERVER", value_name = "URL")]
    pub server: String,
    /// The demo tenant attacked.
    #[arg(long, default_value = "acme", value_name = "TENANT")]
    pub tenant: String,
    /// Its administrator (the "compromised" account), and the member whose role is raised.
    #[arg(long, default_value = "alice", value_name = "NAME")]
    pub admin: String,
    #[arg(long, default_value = "bob", value_name = "NAME")]
    pub member: String,
    /// Read the administrator's password from the first line of standard input (default: the
    /// demo password `serve --demo` prints).
    #[arg(long)]
    pub password_stdin: bool,
    /// Assets created and then deleted.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub deletions: u32,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: DemoCommand) -> anyhow::Result<()> {
    match cmd {
        DemoCommand::Attack(a) => attack(a).await,
    }
}

async fn attack(a: AttackArgs) -> anyhow::Result<()> {
    if !(1..=1000).contains(&a.deletions) {
        anyhow::bail!("--deletions must be between 1 and 1000");
    }
    let password = if a.password_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        parapet_iam::DEMO_PASSWORD.to_string()
    };
    let anon = Client::new(&a.server)?;
    let t = &a.tenant;
    // 1. Guessing and spraying: one wrong password for each of five account names.
    let names = ["root", "administrator", "backup", "test", "guest"];
    let mut refused = 0;
    for n in names {
        if anon
            .login(&format!("{n}@{t}"), "Winter2026!")
            .await
            .is_err()
        {
            refused += 1;
        }
    }
    if !a.json {
        output::note(&format!(
            "1. {refused} wrong passwords for {} account names of {t}",
            names.len()
        ));
    }
    // 2. The "guessed" password works for the tenant administrator.
    let login = anon
        .login(&format!("{}@{t}", a.admin), &password)
        .await
        .map_err(|e| anyhow::anyhow!("log-in as {}@{t} failed: {e}", a.admin))?;
    let admin = Client::new(&a.server)?.with_token(login.token);
    if !a.json {
        output::note(&format!("2. logged in as {}@{t}", a.admin));
    }
    // 3. A role granted directly (an approval policy turns it into a pending request).
    let granted = admin.change_role(t, &a.member, "tenant-admin").await;
    let grant = match &granted {
        Ok(_) => format!("granted tenant-admin to {}@{t}", a.member),
        Err(e) => format!("role change for {}@{t} refused: {e}", a.member),
    };
    if !a.json {
        output::note(&format!("3. {grant}"));
    }
    // 4. Mass deletion.
    let mut deleted = 0u32;
    for i in 0..a.deletions {
        let name = format!("attack-demo-{i}");
        let input = AssetInput {
            name: name.clone(),
            kind: "vm".into(),
            ..AssetInput::default()
        };
        admin.create_asset(t, &input).await?;
        admin.delete_asset(t, &name).await?;
        deleted += 1;
    }
    if a.json {
        output::json(&serde_json::json!({
            "tenant": t,
            "wrong_passwords": refused,
            "logged_in_as": format!("{}@{t}", a.admin),
            "role_granted": granted.is_ok(),
            "assets_deleted": deleted,
        }))
    } else {
        output::note(&format!("4. {deleted} assets created and deleted"));
        output::out(&format!(
            "Attack sent; the alerts appear within seconds at {}/console/alerts (provider tenant)",
            a.server.trim_end_matches('/')
        ))
    }
}
