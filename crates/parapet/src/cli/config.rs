//! The stored login: `credentials.json` in the user's configuration directory, mode 0600.

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};

/// What `parapet login` remembers. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub server: String,
    pub username: String,
    pub token: String,
    pub expires_at: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `$PARAPET_CONFIG_DIR/credentials.json`, else `$XDG_CONFIG_HOME/parapet/credentials.json`, else
/// `$HOME/.config/parapet/credentials.json`.
pub fn credentials_path() -> anyhow::Result<PathBuf> {
    if let Some(dir) = env_path("PARAPET_CONFIG_DIR") {
        return Ok(dir.join("credentials.json"));
    }
    if let Some(dir) = env_path("XDG_CONFIG_HOME") {
        return Ok(dir.join("parapet").join("credentials.json"));
    }
    if let Some(home) = env_path("HOME") {
        return Ok(home
            .join(".config")
            .join("parapet")
            .join("credentials.json"));
    }
    Err(anyhow!(
        "cannot find a configuration directory: set PARAPET_CONFIG_DIR, XDG_CONFIG_HOME or HOME"
    ))
}

/// The stored credentials, or `None` when there are none.
pub fn load(path: &Path) -> anyhow::Result<Option<Credentials>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let creds = serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "cannot read {}: {e}; run 'parapet login' again",
            path.display()
        )
    })?;
    Ok(Some(creds))
}

/// Writes `creds` to `path` atomically, the file with mode 0600 and a new directory with 0700.
pub fn save(path: &Path, creds: &Credentials) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{} has no directory", path.display()))?;
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::to_vec_pretty(creds).context("cannot encode the credentials")?;
    let tmp = dir.join(format!(".credentials.json.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let written = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // Whatever the umask, the file is readable by its owner only.
        f.set_permissions(Permissions::from_mode(0o600))?;
        f.write_all(&json)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Removes the stored credentials; `false` when there were none.
pub fn remove(path: &Path) -> anyhow::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn saves_private_files_and_loads_them_back() {
        let dir = std::env::temp_dir().join(format!(
            "parapet-cli-config-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("credentials.json");
        assert!(load(&path).unwrap().is_none());
        let creds = Credentials {
            server: "http://127.0.0.1:1".into(),
            username: "admin".into(),
            token: "pps_secret".into(),
            expires_at: "2030-01-01T00:00:00Z".into(),
        };
        save(&path, &creds).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(load(&path).unwrap(), Some(creds.clone()));
        assert!(!format!("{creds:?}").contains("pps_secret"));
        // Overwriting keeps the mode even over a file someone widened.
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        save(&path, &creds).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
        // A damaged file is a clear error.
        fs::write(&path, "{").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("parapet login"), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }
}
