//! C2SP tlog-checkpoint: the signed statement "the log `origin` has `size` entries and this
//! root", as the text of a signed note.
//!
//! ```text
//! <origin>
//! <tree size, decimal, no leading zeros>
//! <root hash, standard base64>
//! [extension lines]
//! ```

use std::fmt;

use crate::hash::Hash;
use crate::note::{Note, NoteError, NoteSigner, NoteVerifier};

/// A checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A tree head: the log's origin, the tree size and the root hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `parapet.example/audit/<tenant>`; non-empty, one line.
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Opaque extra lines (each non-empty); not recommended, as monitors cannot audit them.
    pub extensions: Vec<String>,
}

fn is_valid_line(line: &str) -> bool {
    !line.is_empty() && !line.chars().any(|c| c < ' ')
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> Self {
        Checkpoint {
            origin: origin.into(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// The note text: each line ends with a newline.
    pub fn body(&self) -> Result<String, CheckpointError> {
        if !is_valid_line(&self.origin) {
            return Err(CheckpointError::Malformed(
                "the origin must be one non-empty line",
            ));
        }
        if !self.extensions.iter().all(|l| is_valid_line(l)) {
            return Err(CheckpointError::Malformed(
                "extension lines must be non-empty single lines",
            ));
        }
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        Ok(text)
    }

    /// Parses a checkpoint body (the note text).
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let body = text.strip_suffix('\n').ok_or(CheckpointError::Malformed(
            "the text must end with a newline",
        ))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::Malformed("fewer than three lines"));
        };
        if !is_valid_line(origin) {
            return Err(CheckpointError::Malformed("empty origin"));
        }
        let canonical = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size = canonical
            .then(|| size.parse::<u64>().ok())
            .flatten()
            .ok_or(CheckpointError::Malformed(
                "the tree size must be decimal without leading zeros",
            ))?;
        let root = Hash::from_base64(root)
            .map_err(|_| CheckpointError::Malformed("the root hash must be base64 of 32 bytes"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if !extensions.iter().all(|l| is_valid_line(l)) {
            return Err(CheckpointError::Malformed("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// The checkpoint as a signed note, signed by `signer`.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        let mut note = Note::new(self.body()?)?;
        note.sign(signer);
        Ok(note.to_string())
    }

    /// Parses a signed checkpoint and verifies it with a trusted key (other signatures are
    /// ignored, see [`Note::verify`]).
    pub fn open(signed: &str, verifier: &NoteVerifier) -> Result<Self, CheckpointError> {
        let note = Note::parse(signed)?;
        note.verify(verifier)?;
        Self::parse_body(note.text())
    }

    /// Parses a signed checkpoint without verifying any signature: for display only.
    pub fn parse_unverified(signed: &str) -> Result<(Self, Note), CheckpointError> {
        let note = Note::parse(signed)?;
        let checkpoint = Self::parse_body(note.text())?;
        Ok((checkpoint, note))
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} size {} root {}", self.origin, self.size, self.root)
    }
}
