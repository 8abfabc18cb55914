//! C2SP signed notes with Ed25519 signatures, and the text forms of their keys.
//!
//! A signed note is a text ending in a newline, an empty line, then one signature line per
//! signer: `— <key name> <base64(4-byte key id ‖ signature)>`. The key id of an Ed25519 key is
//! the first 4 bytes of `SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key)`. Keys are
//! written as the Go `golang.org/x/mod/sumdb/note` package writes them: the verifier key
//! `<name>+<hex key id>+<base64(0x01 ‖ public key)>` and the signer key
//! `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ 32-byte seed)>`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use parapet_types::Entropy;
use sha2::{Digest, Sha256};

/// Signature type byte of Ed25519 note signatures.
pub const ALG_ED25519: u8 = 0x01;
/// Most signature lines accepted in a note (the spec requires at least 16).
pub const MAX_SIGNATURES: usize = 100;

const SIG_PREFIX: &str = "\u{2014} ";
const SKEY_PREFIX: &str = "PRIVATE+KEY+";

/// A note, a key or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error(
        "invalid key name {0:?}: it must be non-empty, without spaces, '+' or control characters"
    )]
    KeyName(String),
    #[error("malformed verifier key")]
    VerifierKey,
    #[error("malformed signer key")]
    SignerKey,
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("the note has no signature by the key {name}+{key_id:08x}")]
    NotSigned { name: String, key_id: u32 },
    #[error("the signature by the key {name}+{key_id:08x} does not verify")]
    BadSignature { name: String, key_id: u32 },
    #[error("no randomness for the key: {0}")]
    Entropy(String),
}

/// Key names are non-empty and hold no Unicode space, `+` or control character.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

fn check_key_name(name: &str) -> Result<(), NoteError> {
    if is_valid_key_name(name) {
        Ok(())
    } else {
        Err(NoteError::KeyName(name.to_owned()))
    }
}

/// `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]`, big-endian.
pub fn ed25519_key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public_key);
    let digest: [u8; 32] = h.finalize().into();
    let [a, b, c, d, ..] = digest;
    u32::from_be_bytes([a, b, c, d])
}

/// Note text: non-empty, ends in a newline, and holds no control character but newlines.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text must end with a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("control character"));
    }
    Ok(())
}

/// Splits `<name>+<hex id>+<base64 key>`, checks the name and the key id, and returns the name,
/// id and the 32 bytes after the algorithm byte.
fn parse_key(text: &str) -> Option<(String, u32, [u8; 32])> {
    // The name holds no '+', the key id neither; the base64 key may.
    let mut parts = text.splitn(3, '+');
    let (name, id, key) = (parts.next()?, parts.next()?, parts.next()?);
    if !is_valid_key_name(name) || id.len() != 8 {
        return None;
    }
    let mut id_bytes = [0u8; 4];
    hex::decode_to_slice(id, &mut id_bytes).ok()?;
    let key = STANDARD.decode(key).ok()?;
    let (&alg, key) = key.split_first()?;
    let key: [u8; 32] = key.try_into().ok()?;
    if alg != ALG_ED25519 {
        return None;
    }
    Some((name.to_owned(), u32::from_be_bytes(id_bytes), key))
}

fn encode_key(name: &str, key_id: u32, key: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(ALG_ED25519);
    bytes.extend_from_slice(key);
    format!("{name}+{key_id:08x}+{}", STANDARD.encode(bytes))
}

/// A log's signing key: a key name and an Ed25519 private key.
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl NoteSigner {
    /// The signer of name `name` whose Ed25519 private key is the 32-byte `seed` (RFC 8032).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = ed25519_key_id(name, key.verifying_key().as_bytes());
        Ok(NoteSigner {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// A new key, its seed drawn from `entropy`.
    pub fn generate(name: &str, entropy: &dyn Entropy) -> Result<Self, NoteError> {
        let mut seed = [0u8; 32];
        entropy
            .fill(&mut seed)
            .map_err(|e| NoteError::Entropy(e.to_string()))?;
        let signer = Self::from_seed(name, &seed);
        seed.fill(0);
        signer
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ seed)>`.
    pub fn from_skey(skey: &str) -> Result<Self, NoteError> {
        let rest = skey.strip_prefix(SKEY_PREFIX).ok_or(NoteError::SignerKey)?;
        let (name, key_id, seed) = parse_key(rest).ok_or(NoteError::SignerKey)?;
        let signer = Self::from_seed(&name, &seed).map_err(|_| NoteError::SignerKey)?;
        if signer.key_id != key_id {
            return Err(NoteError::SignerKey);
        }
        Ok(signer)
    }

    /// The secret key as text (`PRIVATE+KEY+…`): keep it as a secret.
    pub fn to_skey(&self) -> String {
        format!(
            "{SKEY_PREFIX}{}",
            encode_key(&self.name, self.key_id, self.key.as_bytes())
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    fn sign(&self, text: &str) -> NoteSignature {
        NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: self.key.sign(text.as_bytes()).to_bytes().to_vec(),
        }
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// A trusted public key: a key name and an Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `<name>+<hex key id>+<base64(0x01 ‖ public key)>`; the key id must match.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let (name, key_id, key) = parse_key(vkey).ok_or(NoteError::VerifierKey)?;
        let verifier = Self::from_public_key(&name, &key).map_err(|_| NoteError::VerifierKey)?;
        if verifier.key_id != key_id {
            return Err(NoteError::VerifierKey);
        }
        Ok(verifier)
    }

    /// The verifier of name `name` for a 32-byte Ed25519 public key.
    pub fn from_public_key(name: &str, public_key: &[u8; 32]) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| NoteError::VerifierKey)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, public_key),
            key,
        })
    }

    /// The key as text: `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
    pub fn to_vkey(&self) -> String {
        encode_key(&self.name, self.key_id, self.key.as_bytes())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    fn matches(&self, sig: &NoteSignature) -> bool {
        sig.name == self.name && sig.key_id == self.key_id
    }

    /// Strict RFC 8032 verification (canonical encodings, no small-order keys).
    fn verify(&self, text: &str, signature: &[u8]) -> bool {
        Signature::from_slice(signature)
            .is_ok_and(|s| self.key.verify_strict(text.as_bytes(), &s).is_ok())
    }
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    /// The signature bytes after the key id (64 for Ed25519).
    pub signature: Vec<u8>,
}

impl fmt::Display for NoteSignature {
    /// The signature line, without its newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(&self.signature);
        write!(f, "{SIG_PREFIX}{} {}", self.name, STANDARD.encode(bytes))
    }
}

/// A note text and its signatures (verified or not: see [`Note::verify`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// An unsigned note; the text must end with a newline and hold no other control character.
    pub fn new(text: impl Into<String>) -> Result<Self, NoteError> {
        let text = text.into();
        check_text(&text)?;
        Ok(Note {
            text,
            signatures: Vec::new(),
        })
    }

    /// Parses a signed note. Nothing is verified: call [`Note::verify`] before trusting the text.
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::Malformed("control character"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no empty line before the signatures"))?;
        let text = note.get(..=split).ok_or(NoteError::Malformed("no text"))?;
        let sigs = note
            .get(split + 2..)
            .ok_or(NoteError::Malformed("no signatures"))?;
        check_text(text)?;
        let sigs = sigs.strip_suffix('\n').ok_or(NoteError::Malformed(
            "the last signature line must end with a newline",
        ))?;
        let mut signatures = Vec::new();
        for line in sigs.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::Malformed("too many signatures"));
            }
            signatures.push(parse_signature_line(line)?);
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The signed text, with its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds `signer`'s signature, replacing an earlier one by the same key.
    pub fn sign(&mut self, signer: &NoteSigner) {
        let sig = signer.sign(&self.text);
        self.signatures
            .retain(|s| !(s.name == sig.name && s.key_id == sig.key_id));
        self.signatures.push(sig);
    }

    /// Checks the note against a trusted key. Signatures by other keys are ignored (for key
    /// rotation and cosigning); every signature by this key must verify, and there must be at
    /// least one.
    pub fn verify(&self, verifier: &NoteVerifier) -> Result<(), NoteError> {
        let mut found = false;
        for sig in self.signatures.iter().filter(|s| verifier.matches(s)) {
            if !verifier.verify(&self.text, &sig.signature) {
                return Err(NoteError::BadSignature {
                    name: verifier.name.clone(),
                    key_id: verifier.key_id,
                });
            }
            found = true;
        }
        if found {
            Ok(())
        } else {
            Err(NoteError::NotSigned {
                name: verifier.name.clone(),
                key_id: verifier.key_id,
            })
        }
    }
}

impl fmt::Display for Note {
    /// The signed note: text, empty line, signature lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for s in &self.signatures {
            writeln!(f, "{s}")?;
        }
        Ok(())
    }
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, NoteError> {
    let bad = NoteError::Malformed("bad signature line");
    let rest = line.strip_prefix(SIG_PREFIX).ok_or(bad.clone())?;
    let (name, b64) = rest.split_once(' ').ok_or(bad.clone())?;
    if !is_valid_key_name(name) {
        return Err(bad);
    }
    let bytes = STANDARD.decode(b64).map_err(|_| bad.clone())?;
    let Some((id, signature)) = bytes.split_first_chunk::<4>() else {
        return Err(bad);
    };
    if signature.is_empty() {
        return Err(bad);
    }
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes(*id),
        signature: signature.to_vec(),
    })
}
