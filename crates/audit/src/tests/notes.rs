//! Checkpoints as signed notes: round trips and tampering.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use parapet_types::{Entropy, EntropyError};
use sha2::{Digest, Sha256};

use super::{entry, flip};
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::hash::leaf_hash;
use crate::note::{Note, NoteError, NoteSigner, NoteVerifier};
use crate::tree::MemoryTree;

const ORIGIN: &str = "parapet.example/audit";

fn signer(seed: u8) -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[seed; 32]).unwrap()
}

fn checkpoint() -> Checkpoint {
    let tree = MemoryTree::from_entries((0..12_345).map(entry));
    Checkpoint::new(ORIGIN, tree.size(), tree.root())
}

/// Replaces line `i` of a signed note.
fn replace_line(note: &str, i: usize, line: &str) -> String {
    let mut lines: Vec<&str> = note.split('\n').collect();
    lines[i] = line;
    lines.join("\n")
}

fn is_bad_signature(r: Result<Checkpoint, CheckpointError>) -> bool {
    matches!(
        r,
        Err(CheckpointError::Note(NoteError::BadSignature { .. }))
    )
}

#[test]
fn checkpoint_round_trip() {
    let key = signer(7);
    let c = checkpoint();
    let signed = c.sign(&key).unwrap();
    let root = c.root.to_base64();
    let prefix = format!("{ORIGIN}\n12345\n{root}\n\n— {ORIGIN} ");
    assert!(signed.starts_with(&prefix), "{signed}");
    assert!(signed.ends_with('\n'));
    assert_eq!(signed.matches('\n').count(), 5);
    assert_eq!(Checkpoint::open(&signed, &key.verifier()).unwrap(), c);
    // The verifier key travels as text.
    let vkey = key.verifier().to_vkey();
    assert!(vkey.starts_with(&format!("{ORIGIN}+{:08x}+", key.key_id())));
    let verifier = NoteVerifier::from_vkey(&vkey).unwrap();
    assert_eq!(Checkpoint::open(&signed, &verifier).unwrap(), c);
    // So does the signer key.
    let again = NoteSigner::from_skey(&key.to_skey()).unwrap();
    assert_eq!(again.verifier(), key.verifier());
    assert_eq!(c.sign(&again).unwrap(), signed);
    // The key id is SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4].
    let mut pre = ORIGIN.as_bytes().to_vec();
    pre.extend_from_slice(&[0x0a, 0x01]);
    pre.extend_from_slice(&key.verifier().public_key());
    let digest: [u8; 32] = Sha256::digest(&pre).into();
    assert_eq!(key.key_id().to_be_bytes(), digest[..4]);
}

#[test]
fn checkpoint_with_extensions_and_empty_tree() {
    let key = signer(1);
    let mut c = Checkpoint::new(ORIGIN, 0, crate::empty_root());
    c.extensions = vec!["ext one".into(), "— two".into()];
    let signed = c.sign(&key).unwrap();
    let empty = crate::empty_root().to_base64();
    assert!(signed.starts_with(&format!("{ORIGIN}\n0\n{empty}\next one\n— two\n\n")));
    assert_eq!(Checkpoint::open(&signed, &key.verifier()).unwrap(), c);
    c.extensions = vec![String::new()];
    assert!(c.body().is_err());
    c.extensions = vec!["a\nb".into()];
    assert!(c.body().is_err());
    assert!(Checkpoint::new("", 1, crate::empty_root()).body().is_err());
    assert!(
        Checkpoint::new("a\nb", 1, crate::empty_root())
            .body()
            .is_err()
    );
}

#[test]
fn tampered_checkpoints_fail() {
    let key = signer(7);
    let c = checkpoint();
    let signed = c.sign(&key).unwrap();
    let v = key.verifier();

    // Origin, size and root: the signature no longer matches the text.
    let r = Checkpoint::open(&replace_line(&signed, 0, "parapet.example/other"), &v);
    assert!(is_bad_signature(r));
    let r = Checkpoint::open(&replace_line(&signed, 1, "12346"), &v);
    assert!(is_bad_signature(r));
    let r = Checkpoint::open(&replace_line(&signed, 1, "12344"), &v);
    assert!(is_bad_signature(r));
    let other_root = flip(&c.root, 0).to_base64();
    let r = Checkpoint::open(&replace_line(&signed, 2, &other_root), &v);
    assert!(is_bad_signature(r));
    let with_extension = signed.replacen("\n\n", "\nextra\n\n", 1);
    assert!(is_bad_signature(Checkpoint::open(&with_extension, &v)));

    // The signature: every flipped bit of the 64 signature bytes.
    let sig_line = signed.lines().nth(4).unwrap();
    let (head, b64) = sig_line.rsplit_once(' ').unwrap();
    let bytes = STANDARD.decode(b64).unwrap();
    assert_eq!(bytes.len(), 4 + 64);
    for bit in 32..bytes.len() * 8 {
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let line = format!("{head} {}", STANDARD.encode(&bad));
        assert!(is_bad_signature(Checkpoint::open(
            &replace_line(&signed, 4, &line),
            &v
        )));
    }
    // A flipped key id makes the signature unknown: then no signature is by the key.
    let mut bad = bytes.clone();
    bad[0] ^= 1;
    let line = format!("{head} {}", STANDARD.encode(&bad));
    assert!(matches!(
        Checkpoint::open(&replace_line(&signed, 4, &line), &v),
        Err(CheckpointError::Note(NoteError::NotSigned { .. }))
    ));
    // Truncated signature.
    let line = format!("{head} {}", STANDARD.encode(&bytes[..67]));
    assert!(is_bad_signature(Checkpoint::open(
        &replace_line(&signed, 4, &line),
        &v
    )));
}

#[test]
fn other_keys() {
    let ours = signer(7);
    let theirs = signer(8);
    let c = checkpoint();
    // Signed by another key of the same name: not ours.
    let signed = c.sign(&theirs).unwrap();
    assert_eq!(
        Checkpoint::open(&signed, &ours.verifier()),
        Err(CheckpointError::Note(NoteError::NotSigned {
            name: ORIGIN.into(),
            key_id: ours.key_id()
        }))
    );
    // Cosigned: each key finds its own signature, unknown ones are ignored.
    let witness = NoteSigner::from_seed("witness.example/w1", &[9; 32]).unwrap();
    let mut note = Note::new(c.body().unwrap()).unwrap();
    note.sign(&theirs);
    note.sign(&witness);
    note.sign(&ours);
    let text = note.to_string();
    assert_eq!(Checkpoint::open(&text, &ours.verifier()).unwrap(), c);
    assert_eq!(Checkpoint::open(&text, &witness.verifier()).unwrap(), c);
    // A bad signature by our key fails the note even beside a good one.
    let mut forged = Note::parse(&text).unwrap();
    let mut sigs = forged.signatures().to_vec();
    let mut bad = sigs[2].clone();
    bad.signature[0] ^= 1;
    sigs.insert(0, bad);
    let forged_text = format!(
        "{}\n{}\n",
        forged.text(),
        sigs.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    forged = Note::parse(&forged_text).unwrap();
    assert_eq!(forged.signatures().len(), 4);
    assert!(is_bad_signature(Checkpoint::open(
        &forged_text,
        &ours.verifier()
    )));
}

#[test]
fn c2sp_example_checkpoint_parses_and_its_signature_is_unknown() {
    // From c2sp.org/tlog-checkpoint.
    let example = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
    let (c, note) = Checkpoint::parse_unverified(example).unwrap();
    assert_eq!(c.origin, "example.com/behind-the-sofa");
    assert_eq!(c.size, 20_852_163);
    assert_eq!(
        c.root.to_base64(),
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    );
    assert_eq!(note.signatures().len(), 1);
    assert_eq!(note.signatures()[0].signature.len(), 64);
    assert_eq!(note.to_string(), example);
    let ours = NoteSigner::from_seed("example.com/behind-the-sofa", &[1; 32]).unwrap();
    assert!(matches!(
        Checkpoint::open(example, &ours.verifier()),
        Err(CheckpointError::Note(NoteError::NotSigned { .. }))
    ));
}

/// The same bytes in base64 with non-zero padding bits in the last character.
fn non_canonical(b64: &str) -> String {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (head, tail) = b64.split_at(42);
    assert_eq!(&tail[1..], "=");
    let v = ALPHABET.find(&tail[..1]).unwrap();
    assert_eq!(v % 4, 0);
    format!("{head}{}=", &ALPHABET[v + 1..v + 2])
}

#[test]
fn malformed_checkpoint_bodies() {
    let root = leaf_hash(b"x").to_base64();
    for bad in [
        String::new(),
        format!("o\n1\n{root}"),
        "o\n1\n".to_owned(),
        format!("\n1\n{root}\n"),
        format!("o\n01\n{root}\n"),
        format!("o\n+1\n{root}\n"),
        format!("o\n-1\n{root}\n"),
        format!("o\n 1\n{root}\n"),
        format!("o\n\n{root}\n"),
        format!("o\n18446744073709551616\n{root}\n"),
        format!("o\n1\n{}\n", &root[..40]),
        format!("o\n1\n{}\n", leaf_hash(b"x").to_hex()),
        format!("o\n1\n{root}\n\n"),
        format!("o\n1\n{root}\next\n\n"),
        format!("o\n1\n{}\n", non_canonical(&root)),
    ] {
        assert!(
            matches!(
                Checkpoint::parse_body(&bad),
                Err(CheckpointError::Malformed(_))
            ),
            "accepted {bad:?}"
        );
    }
    let max = Checkpoint::parse_body(&format!("o\n18446744073709551615\n{root}\n")).unwrap();
    assert_eq!(max.size, u64::MAX);
}

#[test]
fn key_names_and_key_material() {
    for bad in [
        "",
        "a b",
        "a+b",
        "a\tb",
        "a\u{00a0}b",
        "a\u{2003}b",
        "a\u{7f}",
    ] {
        assert!(
            matches!(
                NoteSigner::from_seed(bad, &[1; 32]),
                Err(NoteError::KeyName(_))
            ),
            "{bad:?}"
        );
    }
    NoteSigner::from_seed("parapet.example/audit/tenant-1", &[1; 32]).unwrap();

    struct Fixed(u8);
    impl Entropy for Fixed {
        fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
            buf.fill(self.0);
            Ok(())
        }
    }
    struct Broken;
    impl Entropy for Broken {
        fn fill(&self, _: &mut [u8]) -> Result<(), EntropyError> {
            Err(EntropyError("no entropy".into()))
        }
    }
    let generated = NoteSigner::generate(ORIGIN, &Fixed(7)).unwrap();
    assert_eq!(generated.verifier(), signer(7).verifier());
    assert!(matches!(
        NoteSigner::generate(ORIGIN, &Broken),
        Err(NoteError::Entropy(_))
    ));
    // The secret never shows in debug output.
    let debug = format!("{generated:?}");
    assert!(debug.contains(ORIGIN));
    let skey = generated.to_skey();
    let secret_part = skey.rsplit('+').next().unwrap();
    assert!(!debug.contains(secret_part));
}

#[test]
fn note_text_rules() {
    assert!(Note::new("no newline").is_err());
    assert!(Note::new("").is_err());
    assert!(Note::new("tab\there\n").is_err());
    let mut note = Note::new("a\n\nb\n").unwrap();
    let key = signer(3);
    note.sign(&key);
    // The text may hold empty lines: the last one separates the signatures.
    let parsed = Note::parse(&note.to_string()).unwrap();
    assert_eq!(parsed.text(), "a\n\nb\n");
    parsed.verify(&key.verifier()).unwrap();
}
