//! The offline tools never write the directory they read: `verify`,
//! `replay`, `statement` and `export` leave every file byte for byte as it
//! was (they read a private copy: sled writes on open). While a service
//! holds the store, they say so in plain words and point at `audit`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::offline::{bin, run};
use isc_ledger::domain::{Ledger, Policy};
use isc_ledger::store::ledger::{commit, open_ledger_with};
use isc_ledger::store::workload::Workload;
use isc_ledger::store::StoreOptions;
use sha2::{Digest, Sha256};

/// Every file under `dir` (relative path → length and SHA-256), and every
/// directory (so a new file or directory shows).
fn fingerprint(dir: &Path) -> BTreeMap<String, (u64, String)> {
    fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, (u64, String)>) {
        for e in std::fs::read_dir(p).expect("read_dir") {
            let e = e.expect("entry");
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("prefix")
                .display()
                .to_string();
            if e.file_type().expect("type").is_dir() {
                out.insert(format!("{rel}/"), (0, String::new()));
                walk(root, &e.path(), out);
            } else {
                let bytes = std::fs::read(e.path()).expect("read");
                out.insert(
                    rel,
                    (bytes.len() as u64, hex::encode(Sha256::digest(&bytes))),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A store with snapshots and enough records for sled to write blob files.
fn build(dir: &Path, records: usize) -> Ledger {
    let mut reference = Ledger::new(Policy::default());
    let events = Workload::history(7, records, &mut reference);
    let opts = StoreOptions {
        snapshot_every_records: 700,
        fdatasync: true,
    };
    let (mut log, mut ledger) = open_ledger_with(dir, Policy::default(), opts).expect("open");
    for chunk in events.chunks(97) {
        commit(&mut log, &mut ledger, chunk.to_vec()).expect("commit");
    }
    reference
}

fn check_untouched(dir: &Path, account: &str, to: i64) {
    let d = dir.to_str().expect("utf-8 path");
    let before = fingerprint(dir);
    let (ok, out, err) = run(&["verify", "--data", d]);
    assert!(ok, "verify failed: {out}{err}");
    assert!(out.contains("head seq "), "{out}");
    assert_eq!(fingerprint(dir), before, "verify changed the directory");
    let (ok, _, err) = run(&["replay", "--data", d, "--at", &to.to_string()]);
    assert!(ok, "{err}");
    assert_eq!(fingerprint(dir), before, "replay changed the directory");
    let to_s = to.to_string();
    let (ok, _, err) = run(&[
        "statement",
        "--data",
        d,
        "--account",
        account,
        "--from",
        "0",
        "--to",
        &to_s,
    ]);
    assert!(ok, "{err}");
    assert_eq!(fingerprint(dir), before, "statement changed the directory");
    let (ok, out, err) = run(&["export", "--data", d]);
    assert!(ok, "{err}");
    assert!(out.lines().count() > 0);
    assert_eq!(fingerprint(dir), before, "export changed the directory");
}

#[test]
fn offline_tools_leave_a_store_byte_for_byte_as_they_found_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let ledger = build(&dir, 6_000);
    let files = fingerprint(&dir);
    assert!(
        files.keys().any(|k| k.starts_with("blobs/") && k.len() > 6) && files.contains_key("conf"),
        "{files:?}"
    );
    let account = ledger.account_ids()[0].to_owned();
    check_untouched(&dir, &account, ledger.last_at() + 1);
}

#[test]
fn offline_tools_leave_the_golden_log_as_they_found_it() {
    // A copy of the committed store, so a failure never dirties the repo.
    let tmp = tempfile::tempdir().expect("tempdir");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-v1");
    let dir = tmp.path().join("golden");
    std::fs::create_dir(&dir).expect("mkdir");
    for e in std::fs::read_dir(&golden).expect("golden") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), dir.join(e.file_name())).expect("copy");
    }
    let out = bin()
        .args(["export", "--data", dir.to_str().expect("utf-8")])
        .output()
        .expect("export");
    let first: serde_json::Value = serde_json::from_slice(
        out.stdout
            .split(|&b| b == b'\n')
            .find(|l| l.windows(12).any(|w| w == b"\"account_id\""))
            .expect("a record of an account"),
    )
    .expect("json");
    let account = first["event"]["body"]
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|v| v["account_id"].as_str())
        .expect("account id")
        .to_owned();
    check_untouched(&dir, &account, 2_000_000_000);
}

#[test]
fn with_the_service_running_the_tools_say_so_and_point_at_audit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    build(&dir, 300);
    // A writer holds the store, as a running service does.
    let log =
        isc_ledger::store::ledger::EventLog::open(&dir, StoreOptions::default()).expect("open");
    let before = fingerprint(&dir);
    let d = dir.to_str().expect("utf-8");
    for args in [
        vec!["verify", "--data", d],
        vec!["export", "--data", d],
        vec!["replay", "--data", d],
    ] {
        let (ok, out, err) = run(&args);
        assert!(!ok, "{args:?} passed while the store is held: {out}");
        assert!(
            err.contains("is in use") && err.contains("isc-ledger audit --server URL"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("could not acquire lock"), "{err}");
    }
    assert_eq!(fingerprint(&dir), before);
    drop(log);
    let (ok, out, err) = run(&["verify", "--data", d]);
    assert!(ok, "{out}{err}");
}
