//! `verify` and signed tree heads: a store cut short of the head it signed
//! fails with the missing seqs, a deleted head file does not let it pass,
//! an altered head or a rewritten log is caught by the signature and the
//! Merkle root, `--sth FILE` checks an auditor's saved head, `--json`.

mod common;

use std::path::Path;

use common::offline::with_log_tree;
use isc_ledger::cli::audit::{self, VerifyArgs};
use isc_ledger::domain::{Ledger, Policy};
use isc_ledger::store::codec::encode_head;
use isc_ledger::store::datadir::SETTINGS_FILE;
use isc_ledger::store::ledger::{commit, open_ledger_with, EventLog};
use isc_ledger::store::merkle::MerkleTree;
use isc_ledger::store::sled_log::HEAD_KEY;
use isc_ledger::store::sth::{LedgerKey, SignedTreeHead, HEAD_FILE};
use isc_ledger::store::workload::Workload;
use isc_ledger::store::{LogStore, StoreOptions};

const RECORDS: usize = 150;
/// Frames of 23 records: the first three end at seq 69.
const BATCH: usize = 23;

fn key() -> LedgerKey {
    LedgerKey::from_seed(&[7; 32])
}

/// Writes 150 records in frames of 23, signing a head after each append
/// (as the service does); returns every record's (chain hash, at).
fn build(dir: &Path) -> Vec<([u8; 32], i64)> {
    let mut reference = Ledger::new(Policy::default());
    let events = Workload::history(3, RECORDS, &mut reference);
    let opts = StoreOptions {
        snapshot_every_records: 1_000,
        fdatasync: false,
    };
    let (mut log, mut ledger) = open_ledger_with(dir, Policy::default(), opts).expect("open");
    let mut tree = MerkleTree::new();
    let mut leaves = vec![];
    for chunk in events.chunks(BATCH) {
        commit(&mut log, &mut ledger, chunk.to_vec()).expect("commit");
        let head = log.head();
        for r in log.read_range(tree.size() + 1, head.seq) {
            let r = r.expect("record");
            tree.push(r.hash);
            leaves.push((r.hash, r.at));
        }
        log.save_signed_head(&key().sign(head.seq, tree.root(), head.at), false)
            .expect("head");
    }
    leaves
}

fn head_of(leaves: &[([u8; 32], i64)], size: usize, key: &LedgerKey) -> SignedTreeHead {
    let mut tree = MerkleTree::new();
    for (h, _) in &leaves[..size] {
        tree.push(*h);
    }
    key.sign(size as u64, tree.root(), leaves[size - 1].1)
}

/// Cuts the log to its first `keep` records (a frame boundary) the way a
/// rolled-back store looks: frames gone and the head marker consistent.
fn cut(dir: &Path, leaves: &[([u8; 32], i64)], keep: usize) {
    with_log_tree(dir, |t| {
        for item in t.iter() {
            let (k, _) = item.expect("item");
            if k.len() == 8 && u64::from_be_bytes(k[..].try_into().expect("8")) > keep as u64 {
                t.remove(k).expect("remove");
            }
        }
        match keep.checked_sub(1) {
            None => drop(t.remove(HEAD_KEY).expect("marker")),
            Some(last) => {
                let (hash, at) = leaves[last];
                t.insert(HEAD_KEY, &encode_head(keep as u64, at, &hash)[..])
                    .expect("marker");
            }
        }
    });
}

fn verify_with(args: &VerifyArgs) -> (bool, String) {
    let mut out = Vec::new();
    let ok = audit::verify(args, &mut out).expect("verify runs");
    (ok, String::from_utf8(out).expect("utf8"))
}

fn verify(dir: &Path) -> (bool, String) {
    verify_with(&VerifyArgs::new(dir))
}

#[test]
fn a_whole_store_verifies_with_its_head() {
    let tmp = tempfile::tempdir().expect("tempdir");
    build(tmp.path());
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
    assert!(out.contains("ok: 150 records"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("head seq 150 at ")),
        "{out}"
    );
    assert!(
        out.contains("signed head of size 150 (the store's head file) verified"),
        "{out}"
    );
}

#[test]
fn a_store_cut_short_of_its_signed_head_names_the_missing_seqs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let leaves = build(tmp.path());
    cut(tmp.path(), &leaves, 69);
    let (ok, out) = verify(tmp.path());
    assert!(!ok, "{out}");
    assert!(
        out.starts_with(
            "DEFECT at seq 70: records 70..150 acknowledged under signed head of size 150 (the store's head file) are missing"
        ),
        "{out}"
    );
    assert!(out.contains("records 1..=69 are intact"), "{out}");
}

#[test]
fn a_store_cut_by_one_record_fails() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let leaves = build(tmp.path());
    // Cuts fall on frame boundaries (seq 138 ends one): a head of 139
    // records over a store of 138 shows the check is exact.
    cut(tmp.path(), &leaves, 138);
    head_of(&leaves, 139, &key())
        .write_file(&tmp.path().join(HEAD_FILE), false)
        .expect("head");
    let (ok, out) = verify(tmp.path());
    assert!(!ok, "{out}");
    assert!(
        out.starts_with("DEFECT at seq 139: records 139..139 acknowledged"),
        "{out}"
    );
}

#[test]
fn deleting_the_head_file_does_not_let_a_cut_store_pass() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let leaves = build(tmp.path());
    std::fs::remove_file(tmp.path().join(HEAD_FILE)).expect("rm");
    let (ok, out) = verify(tmp.path());
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("the signed head file {HEAD_FILE} is missing")),
        "{out}"
    );
    // The first head the store kept was of size 23: a cut below it is
    // named even without the file.
    cut(tmp.path(), &leaves, 0);
    let (ok, out) = verify(tmp.path());
    assert!(!ok, "{out}");
    assert!(
        out.contains("records 1..23 acknowledged under signed head of size 23"),
        "{out}"
    );
    // And the settings file deleted as well: sled's own record remains.
    std::fs::remove_file(tmp.path().join(SETTINGS_FILE)).expect("rm");
    let (ok, out) = verify(tmp.path());
    assert!(!ok, "{out}");
    assert!(out.contains("is missing"), "{out}");
}

#[test]
fn an_altered_head_or_a_rewritten_log_is_caught() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let leaves = build(tmp.path());
    let path = tmp.path().join(HEAD_FILE);
    let good = SignedTreeHead::read_file(&path).expect("head");
    // The root altered: the signature no longer holds.
    let mut bad = good;
    bad.root_hash[0] ^= 1;
    bad.write_file(&path, false).expect("write");
    let (ok, out) = verify(tmp.path());
    assert!(!ok, "{out}");
    assert!(out.contains("does not verify"), "{out}");
    // A head signed (by someone) over other records: the root differs.
    let mut other = leaves.clone();
    other[40].0[5] ^= 1;
    head_of(&other, 150, &key())
        .write_file(&path, false)
        .expect("write");
    let (ok, out) = verify(tmp.path());
    assert!(!ok, "{out}");
    assert!(
        out.starts_with("DEFECT at seq 1: the Merkle root of records 1..=150"),
        "{out}"
    );
    // A head file that is not JSON.
    std::fs::write(&path, b"{\"tree_size\": 1").expect("write");
    let (ok, out) = verify(tmp.path());
    assert!(!ok, "{out}");
    assert!(out.contains("damaged"), "{out}");
}

#[test]
fn an_auditors_saved_head_is_checked_and_json_reports_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let leaves = build(&dir);
    let saved = tmp.path().join("audit-state.json");
    head_of(&leaves, 100, &key())
        .write_file(&saved, false)
        .expect("write");
    let mut args = VerifyArgs::new(&dir);
    args.sth = Some(saved.clone());
    let (ok, out) = verify_with(&args);
    assert!(ok, "{out}");
    assert!(out.contains("signed head of size 100 ("), "{out}");
    args.json = true;
    let (ok, out) = verify_with(&args);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["ok"], true);
    assert_eq!(v["records"], 150);
    assert_eq!(v["signed_heads"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["signed_heads_since"], 23);
    // The store later cut below the auditor's head, its own head file
    // replaced by one that matches the cut (someone holding the key).
    cut(&dir, &leaves, 92);
    head_of(&leaves, 92, &key())
        .write_file(&dir.join(HEAD_FILE), false)
        .expect("head");
    let (ok, out) = verify(&dir);
    assert!(ok, "only the auditor's head can tell: {out}");
    let (ok, out) = verify_with(&args);
    assert!(!ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["ok"], false);
    assert_eq!(v["defects"][0]["seq"], 93);
    assert!(
        v["defects"][0]["what"].as_str().is_some_and(
            |w| w.starts_with("records 93..100 acknowledged under signed head of size 100")
        ),
        "{v}"
    );
}

#[test]
fn a_store_without_heads_still_verifies() {
    // What every store from before signed heads looks like (the golden log
    // is checked in tests/store_golden.rs).
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut reference = Ledger::new(Policy::default());
    let events = Workload::history(3, 40, &mut reference);
    let (mut log, mut ledger) = open_ledger_with(
        tmp.path(),
        Policy::default(),
        StoreOptions::without_snapshots(false),
    )
    .expect("open");
    commit(&mut log, &mut ledger, events).expect("commit");
    drop(log);
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
    let _ = EventLog::open_for_audit(tmp.path()).expect("audit open");
}
