//! The golden log (issue 4): a small store written with frame and record
//! version 1, committed under `tests/data/golden-v1/`, must stay readable
//! forever with the same chain. A change of layout adds a version and an
//! upcaster; it never makes this test fail.
//!
//! Regenerate only on purpose (never for a format change):
//! `cargo test --test store_golden -- --ignored generate_golden_log`

mod common;

use std::path::{Path, PathBuf};

use common::offline::copy_dir;
use isc_ledger::cli::audit::{self, DataArg, ExportArgs, VerifyArgs};
use isc_ledger::domain::{Ledger, Policy};
use isc_ledger::store::ledger::{commit, open_ledger_with};
use isc_ledger::store::workload::Workload;
use isc_ledger::store::StoreOptions;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn export(dir: &Path) -> String {
    let mut out = Vec::new();
    audit::export(
        &ExportArgs {
            data: DataArg {
                data: dir.to_path_buf(),
            },
        },
        &mut out,
    )
    .expect("export");
    String::from_utf8(out).expect("utf8")
}

#[test]
#[ignore = "writes tests/data/golden-v1; run on purpose only"]
fn generate_golden_log() {
    let dir = data().join("golden-v1");
    let _ = std::fs::remove_dir_all(&dir);
    let mut reference = Ledger::new(Policy::default());
    let events = Workload::history(2024, 120, &mut reference);
    let opts = StoreOptions {
        snapshot_every_records: 50,
        fdatasync: true,
    };
    {
        let (mut log, mut ledger) = open_ledger_with(&dir, Policy::default(), opts).expect("open");
        for chunk in events.chunks(7) {
            commit(&mut log, &mut ledger, chunk.to_vec()).expect("commit");
        }
    }
    std::fs::write(data().join("golden-v1.jsonl"), export(&dir)).expect("write export");
}

#[test]
fn golden_log_v1_stays_readable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("golden");
    copy_dir(&data().join("golden-v1"), &dir);
    let mut out = Vec::new();
    let args = VerifyArgs::new(&dir);
    let ok = audit::verify(&args, &mut out).expect("verify runs");
    let out = String::from_utf8(out).expect("utf8");
    assert!(ok, "{out}");
    assert!(out.contains("ok: 120 records"), "{out}");
    let want = std::fs::read_to_string(data().join("golden-v1.jsonl")).expect("golden export");
    assert_eq!(export(&dir), want);
    // And the service path opens it too (snapshot + tail).
    let (_, ledger) =
        open_ledger_with(&dir, Policy::default(), StoreOptions::default()).expect("open_ledger");
    assert_eq!(ledger.last_seq(), 120);
}

/// The golden log's Merkle tree head (spec §13): its 120 records' chain
/// hashes as leaves. Pinned (and cross-checked with an independent
/// recursive MTH over the chain hashes of `golden-v1.jsonl`).
#[test]
fn golden_log_v1_tree_head() {
    use isc_ledger::store::merkle::{leaf_hash, verify_inclusion, MerkleTree};
    use isc_ledger::store::{LogStore, SledLog};
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("golden");
    copy_dir(&data().join("golden-v1"), &dir);
    let log: SledLog<isc_ledger::domain::Event> =
        SledLog::open(&dir, StoreOptions::default()).expect("open");
    let mut tree = MerkleTree::new();
    for r in log.read_raw(1, u64::MAX) {
        tree.push(r.expect("intact").hash);
    }
    assert_eq!(tree.size(), 120);
    let root = tree.root();
    assert_eq!(
        hex::encode(root),
        "1d9d849879283233fb5eea404d871e04993c6a766aee61ef4aea7cb35c78ceda"
    );
    let chain = log
        .read_raw(77, 77)
        .next()
        .expect("one")
        .expect("intact")
        .hash;
    let path = tree.inclusion_proof(76, 120).expect("in range");
    verify_inclusion(76, 120, &leaf_hash(&chain), &path, &root).expect("verifies");
}
