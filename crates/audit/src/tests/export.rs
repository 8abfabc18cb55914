//! Offline verification of exports.

use super::entry;
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::export::{
    ExportError, ExportVerifier, export_lines, verify_checkpoint_consistency, verify_export,
};
use crate::hash::{Hash, leaf_hash};
use crate::note::{NoteError, NoteSigner};
use crate::tree::MemoryTree;

const ORIGIN: &str = "parapet.example/audit";
const SIZE: u64 = 1000;

struct Log {
    key: NoteSigner,
    tree: MemoryTree,
    lines: Vec<Vec<u8>>,
}

impl Log {
    fn new() -> Self {
        let lines: Vec<Vec<u8>> = (0..SIZE).map(entry).collect();
        Log {
            key: NoteSigner::from_seed(ORIGIN, &[42; 32]).unwrap(),
            tree: MemoryTree::from_entries(&lines),
            lines,
        }
    }

    fn checkpoint(&self, size: u64) -> String {
        Checkpoint::new(ORIGIN, size, self.tree.root_at(size).unwrap())
            .sign(&self.key)
            .unwrap()
    }

    fn export(lines: &[Vec<u8>]) -> Vec<u8> {
        lines
            .iter()
            .flat_map(|l| l.iter().copied().chain([b'\n']))
            .collect()
    }

    fn receipts(&self) -> Vec<(u64, Hash)> {
        (0..SIZE)
            .map(|i| (i, self.tree.leaf_hash(i).unwrap()))
            .collect()
    }
}

fn run(
    log: &Log,
    lines: &[Vec<u8>],
    earlier: &[u64],
    receipts: bool,
) -> Result<crate::ExportReport, ExportError> {
    let mut v = ExportVerifier::new(&log.checkpoint(SIZE), &log.key.verifier())?;
    for size in earlier {
        v = v.earlier_checkpoint(&log.checkpoint(*size))?;
    }
    if receipts {
        v = v.known_leaf_hashes(log.receipts());
    }
    let export = Log::export(lines);
    for line in export_lines(&export)? {
        v.push_entry(line)?;
    }
    v.finish()
}

#[test]
fn an_intact_export_verifies() {
    let log = Log::new();
    let export = Log::export(&log.lines);
    let report = verify_export(
        export_lines(&export).unwrap(),
        &log.checkpoint(SIZE),
        &log.key.verifier(),
    )
    .unwrap();
    assert_eq!(report.checkpoint.size, SIZE);
    assert_eq!(report.checkpoint.root, log.tree.root());
    assert_eq!(report.checkpoint.origin, ORIGIN);

    let report = run(&log, &log.lines, &[0, 1, 400, 999, SIZE, 400], true).unwrap();
    assert_eq!(report.earlier_sizes, [0, 1, 400, 999, SIZE]);
    assert_eq!(report.known_leaves_checked, SIZE);
}

#[test]
fn a_changed_entry_is_caught() {
    let log = Log::new();
    let mut lines = log.lines.clone();
    lines[500][3] ^= 1;
    let changed = leaf_hash(&lines[500]);

    // The root alone: the export differs, somewhere.
    assert!(matches!(
        run(&log, &lines, &[], false),
        Err(ExportError::RootMismatch { intact: 0, .. })
    ));
    // An earlier checkpoint before the change bounds it.
    assert!(matches!(
        run(&log, &lines, &[100, 400], false),
        Err(ExportError::RootMismatch { intact: 400, .. })
    ));
    // An earlier checkpoint after it: that signed prefix was rewritten.
    assert!(matches!(
        run(&log, &lines, &[400, 600], false),
        Err(ExportError::EarlierRootMismatch { size: 600, .. })
    ));
    // Receipts name the entry.
    assert_eq!(
        run(&log, &lines, &[], true),
        Err(ExportError::LeafMismatch {
            index: 500,
            expected: log.tree.leaf_hash(500).unwrap(),
            found: changed,
        })
    );
}

#[test]
fn removed_added_and_reordered_entries_are_caught() {
    let log = Log::new();
    let mut fewer = log.lines.clone();
    fewer.remove(10);
    assert_eq!(
        run(&log, &fewer, &[], false),
        Err(ExportError::TooFewEntries {
            entries: SIZE - 1,
            size: SIZE
        })
    );
    let mut more = log.lines.clone();
    more.push(entry(SIZE));
    assert_eq!(
        run(&log, &more, &[], false),
        Err(ExportError::TooManyEntries { size: SIZE })
    );
    let mut inserted = log.lines.clone();
    inserted.insert(10, b"{}".to_vec());
    inserted.pop();
    assert!(matches!(
        run(&log, &inserted, &[], false),
        Err(ExportError::RootMismatch { .. })
    ));
    let mut swapped = log.lines.clone();
    swapped.swap(3, 4);
    assert!(matches!(
        run(&log, &swapped, &[], false),
        Err(ExportError::RootMismatch { .. })
    ));
    assert!(matches!(
        run(&log, &swapped, &[], true),
        Err(ExportError::LeafMismatch { index: 3, .. })
    ));
}

#[test]
fn checkpoints_that_do_not_verify() {
    let log = Log::new();
    let other = NoteSigner::from_seed(ORIGIN, &[43; 32]).unwrap();
    let export = Log::export(&log.lines);
    assert!(matches!(
        verify_export(
            export_lines(&export).unwrap(),
            &log.checkpoint(SIZE),
            &other.verifier()
        ),
        Err(ExportError::Checkpoint(CheckpointError::Note(
            NoteError::NotSigned { .. }
        )))
    ));
    let forged = log.checkpoint(SIZE).replacen("\n1000\n", "\n999\n", 1);
    assert!(matches!(
        verify_export(export_lines(&export).unwrap(), &forged, &log.key.verifier()),
        Err(ExportError::Checkpoint(CheckpointError::Note(
            NoteError::BadSignature { .. }
        )))
    ));
    let v = ExportVerifier::new(&log.checkpoint(SIZE), &log.key.verifier()).unwrap();
    assert!(matches!(
        v.expect_origin("parapet.example/other"),
        Err(ExportError::Origin { .. })
    ));
    let v = ExportVerifier::new(&log.checkpoint(SIZE), &log.key.verifier()).unwrap();
    assert_eq!(v.checkpoint().size, SIZE);
    let v = v.expect_origin(ORIGIN).unwrap();
    // An earlier checkpoint signed by another key, of another log, or larger.
    let by_other = Checkpoint::new(ORIGIN, 10, log.tree.root_at(10).unwrap())
        .sign(&other)
        .unwrap();
    let v = match v.earlier_checkpoint(&by_other) {
        Err(ExportError::EarlierCheckpoint(_)) => {
            ExportVerifier::new(&log.checkpoint(SIZE), &log.key.verifier()).unwrap()
        }
        other => panic!("{other:?}"),
    };
    let other_log = Checkpoint::new("parapet.example/other", 10, log.tree.root_at(10).unwrap())
        .sign(&log.key)
        .unwrap();
    let v = match v.earlier_checkpoint(&other_log) {
        Err(ExportError::Origin { .. }) => {
            ExportVerifier::new(&log.checkpoint(10), &log.key.verifier()).unwrap()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        v.earlier_checkpoint(&log.checkpoint(11)).err(),
        Some(ExportError::EarlierLarger {
            earlier: 11,
            size: 10
        })
    );
}

#[test]
fn empty_log() {
    let key = NoteSigner::from_seed(ORIGIN, &[1; 32]).unwrap();
    let signed = Checkpoint::new(ORIGIN, 0, crate::empty_root())
        .sign(&key)
        .unwrap();
    let report = verify_export(export_lines(b"").unwrap(), &signed, &key.verifier()).unwrap();
    assert_eq!(report.checkpoint.size, 0);
    assert!(matches!(
        verify_export(export_lines(b"\n").unwrap(), &signed, &key.verifier()),
        Err(ExportError::TooManyEntries { size: 0 })
    ));
}

#[test]
fn export_line_splitting() {
    let split =
        |b: &[u8]| -> Vec<Vec<u8>> { export_lines(b).unwrap().map(<[u8]>::to_vec).collect() };
    assert_eq!(split(b"a\nb\n"), [b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(split(b""), Vec::<Vec<u8>>::new());
    assert_eq!(split(b"\n"), [Vec::<u8>::new()]);
    assert_eq!(split(b"a\r\n\n"), [b"a\r".to_vec(), vec![]]);
    assert!(matches!(export_lines(b"a"), Err(ExportError::Lines)));
    assert!(matches!(export_lines(b"a\nb"), Err(ExportError::Lines)));
}

#[test]
fn consistency_between_signed_checkpoints() {
    let log = Log::new();
    let v = log.key.verifier();
    let proof = log.tree.consistency_proof(400, SIZE).unwrap();
    let (old, new) =
        verify_checkpoint_consistency(&log.checkpoint(400), &log.checkpoint(SIZE), &v, &proof)
            .unwrap();
    assert_eq!((old.size, new.size), (400, SIZE));
    // The wrong proof, swapped checkpoints, another log's checkpoint.
    let wrong = log.tree.consistency_proof(401, SIZE).unwrap();
    assert!(matches!(
        verify_checkpoint_consistency(&log.checkpoint(400), &log.checkpoint(SIZE), &v, &wrong),
        Err(ExportError::Consistency(_))
    ));
    assert!(matches!(
        verify_checkpoint_consistency(&log.checkpoint(SIZE), &log.checkpoint(400), &v, &proof),
        Err(ExportError::EarlierLarger { .. })
    ));
    let elsewhere = Checkpoint::new("x.example/log", 400, log.tree.root_at(400).unwrap())
        .sign(&log.key)
        .unwrap();
    assert!(matches!(
        verify_checkpoint_consistency(&elsewhere, &log.checkpoint(SIZE), &v, &proof),
        Err(ExportError::Origin { .. })
    ));
    // A forked log: same size, other entries, signed by the same key.
    let mut fork = MemoryTree::from_entries(&log.lines[..400]);
    fork.append(b"forked");
    for i in 401..SIZE {
        fork.append(&entry(i));
    }
    let forked = Checkpoint::new(ORIGIN, SIZE, fork.root())
        .sign(&log.key)
        .unwrap();
    assert!(verify_checkpoint_consistency(&log.checkpoint(400), &forked, &v, &proof).is_err());
    let fork_proof = fork.consistency_proof(400, SIZE).unwrap();
    verify_checkpoint_consistency(&log.checkpoint(400), &forked, &v, &fork_proof).unwrap();
    assert!(verify_checkpoint_consistency(&log.checkpoint(401), &forked, &v, &fork_proof).is_err());
}
