use std::path::{Path, PathBuf};

/// What can go wrong with a repository. Messages are one line and never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("wrong password: no key of the repository opens with it")]
    WrongPassword,
    #[error("not a Parapet backup repository: {0}")]
    NotARepository(String),
    #[error("a repository already exists at {0}")]
    AlreadyExists(String),
    #[error("repository is locked: {0}")]
    Locked(String),
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("no snapshot matches {0:?}")]
    NoSnapshot(String),
    #[error("{0}")]
    Invalid(String),
    #[error("operator signature: {0}")]
    Signature(String),
    #[error("remote storage: {0}")]
    Remote(String),
    #[error("no randomness available: {0}")]
    Entropy(String),
}

impl Error {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }
}
