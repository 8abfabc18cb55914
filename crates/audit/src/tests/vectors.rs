//! Published test vectors.
//!
//! - The 8-leaf tree of the certificate-transparency projects, as published in
//!   transparency-dev/merkle `proof/verify_test.go` (inputs, the roots of sizes 1 to 8, and
//!   inclusion and consistency proofs) and `rfc6962/rfc6962_test.go` (empty tree, leaf hashes).
//! - golang.org/x/mod `sumdb/tlog/note_test.go`: the tree-note text of a known hash.
//! - golang.org/x/mod `sumdb/note/note_test.go`: keys, a signed note and its signatures.

use super::h;
use crate::checkpoint::Checkpoint;
use crate::hash::{Hash, empty_root, leaf_hash};
use crate::note::{Note, NoteError, NoteSigner, NoteVerifier};
use crate::tree::MemoryTree;
use crate::verify::{verify_consistency, verify_inclusion};

fn ct_leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|x| hex::decode(x).unwrap())
    .collect()
}

/// Roots of the trees of sizes 1 to 8.
fn ct_roots() -> Vec<Hash> {
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    .iter()
    .map(|x| h(x))
    .collect()
}

#[test]
fn rfc6962_hasher_vectors() {
    assert_eq!(
        empty_root(),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(
        leaf_hash(b""),
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    );
    assert_eq!(
        leaf_hash(b"L123456"),
        h("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    );
    assert_eq!(MemoryTree::new().root(), empty_root());
}

#[test]
fn ct_eight_leaf_tree_roots() {
    let tree = MemoryTree::from_entries(ct_leaves());
    for (i, want) in ct_roots().iter().enumerate() {
        assert_eq!(tree.root_at(i as u64 + 1).unwrap(), *want, "size {}", i + 1);
    }
}

#[test]
fn ct_eight_leaf_tree_inclusion_proofs() {
    let tree = MemoryTree::from_entries(ct_leaves());
    let roots = ct_roots();
    // (leaf index, tree size, proof); the Go file numbers leaves from 1.
    let cases: [(u64, u64, &[&str]); 4] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (index, size, proof) in cases {
        let want: Vec<Hash> = proof.iter().map(|x| h(x)).collect();
        assert_eq!(tree.inclusion_proof(index, size).unwrap(), want);
        let leaf = tree.leaf_hash(index).unwrap();
        verify_inclusion(&leaf, index, size, &want, &roots[size as usize - 1]).unwrap();
    }
}

#[test]
fn ct_eight_leaf_tree_consistency_proofs() {
    let tree = MemoryTree::from_entries(ct_leaves());
    let roots = ct_roots();
    let cases: [(u64, u64, &[&str]); 4] = [
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    for (size1, size2, proof) in cases {
        let want: Vec<Hash> = proof.iter().map(|x| h(x)).collect();
        assert_eq!(tree.consistency_proof(size1, size2).unwrap(), want);
        verify_consistency(
            size1,
            size2,
            &roots[size1 as usize - 1],
            &roots[size2 as usize - 1],
            &want,
        )
        .unwrap();
    }
}

#[test]
fn go_tlog_tree_note_text() {
    let golden =
        "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n";
    let c = Checkpoint::new(
        "go.sum database tree",
        123_456_789_012,
        leaf_hash(b"hello world"),
    );
    assert_eq!(c.body().unwrap(), golden);
    assert_eq!(Checkpoint::parse_body(golden).unwrap(), c);
    for bad in [
        "go.sum database tree\n0xabcdef\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n",
    ] {
        assert!(Checkpoint::parse_body(bad).is_err(), "{bad:?}");
    }
}

const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

#[test]
fn go_note_keys() {
    let peter = NoteVerifier::from_vkey(PETER_VKEY).unwrap();
    assert_eq!(peter.name(), "PeterNeumann");
    assert_eq!(peter.key_id(), 0xc74f_20a3);
    assert_eq!(peter.to_vkey(), PETER_VKEY);
    let enoch = NoteVerifier::from_vkey(ENOCH_VKEY).unwrap();
    assert_eq!(enoch.key_id(), 0xaf0c_fe78);

    let signer = NoteSigner::from_skey(PETER_SKEY).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.key_id(), 0xc74f_20a3);
    assert_eq!(signer.verifier(), peter);
    assert_eq!(signer.to_skey(), PETER_SKEY);

    // Every substring and every single-byte change of a key is refused.
    for (text, parse) in [
        (
            PETER_VKEY,
            (|k: &str| NoteVerifier::from_vkey(k).is_ok()) as fn(&str) -> bool,
        ),
        (PETER_SKEY, |k: &str| NoteSigner::from_skey(k).is_ok()),
    ] {
        let b = text.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if (i, j) != (0, b.len()) {
                    let s = std::str::from_utf8(&b[i..j]).unwrap();
                    assert!(!parse(s), "accepted {s:?}");
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] += 1;
            let s = String::from_utf8(m).unwrap();
            assert!(!parse(&s), "accepted {s:?}");
        }
    }
    // Wrong key length and unknown algorithm, each with a matching key id.
    assert!(
        NoteVerifier::from_vkey(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        )
        .is_err()
    );
    assert!(
        NoteVerifier::from_vkey(
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        )
        .is_err()
    );
}

#[test]
fn go_note_sign_and_open() {
    let signer = NoteSigner::from_skey(PETER_SKEY).unwrap();
    let mut note = Note::new(TEXT).unwrap();
    note.sign(&signer);
    // Ed25519 is deterministic: the same bytes as the Go package.
    assert_eq!(note.to_string(), format!("{TEXT}\n{PETER_SIG}"));
    // Signing again replaces the signature by the same key.
    note.sign(&signer);
    assert_eq!(note.signatures().len(), 1);

    let peter = NoteVerifier::from_vkey(PETER_VKEY).unwrap();
    let enoch = NoteVerifier::from_vkey(ENOCH_VKEY).unwrap();
    let both = Note::parse(&format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}")).unwrap();
    assert_eq!(both.text(), TEXT);
    assert_eq!(both.signatures().len(), 2);
    both.verify(&peter).unwrap();
    both.verify(&enoch).unwrap();

    // Too many signatures.
    assert!(Note::parse(&format!("{TEXT}\n{}", PETER_SIG.repeat(101))).is_err());
    // A damaged signature by the trusted key.
    let damaged = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    assert_eq!(
        Note::parse(&damaged).unwrap().verify(&peter),
        Err(NoteError::BadSignature {
            name: "PeterNeumann".into(),
            key_id: 0xc74f_20a3
        })
    );
    // Unknown signatures, even damaged ones, are ignored.
    let mixed = format!(
        "{TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}{}ABCD{}",
        &ENOCH_SIG[..60],
        &ENOCH_SIG[60..]
    );
    Note::parse(&mixed).unwrap().verify(&peter).unwrap();
    // Malformed notes.
    for bad in [
        TEXT.to_owned(),
        format!("{TEXT}\n"),
        format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
        format!("\x01{TEXT}\n{PETER_SIG}"),
        format!(
            "{TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
        ),
        format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
    ] {
        assert!(Note::parse(&bad).is_err(), "accepted {bad:?}");
    }
}
