//! The command line on PostgreSQL, through the real binary: `db init` /
//! `db migrate`, `copy` from a sled directory to PostgreSQL and back
//! (verified on both ends), and the offline tools with `--store URL`
//! giving the same answers as on the sled directory.

mod common;

use std::process::Command;

use common::pg;
use isc_ledger::domain::{Ledger, Policy};
use isc_ledger::store::ledger::{commit, open_ledger_with};
use isc_ledger::store::workload::Workload;
use isc_ledger::store::{LogStore, StoreOptions};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isc-ledger"))
}

/// Runs the binary; returns (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = bin().args(args).output().expect("run isc-ledger");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let (good, out, err) = run(args);
    assert!(good, "isc-ledger {args:?} failed:\n{out}\n{err}");
    out
}

#[test]
fn db_init_and_migrate() {
    let url = pg::shared_db();
    let out = ok(&["db", "init", "--store", &url]);
    assert!(
        out.contains("created the ledger schema (version 2)"),
        "{out}"
    );
    assert!(
        !out.contains("postgres://"),
        "no URL (password) printed: {out}"
    );
    let out = ok(&["db", "init", "--store", &url]);
    assert!(out.contains("already holds the ledger schema"), "{out}");
    let out = ok(&["db", "migrate", "--store", &url]);
    assert!(out.contains("nothing to do"), "{out}");
    let (good, _, err) = run(&["db", "init", "--store", "./some-dir"]);
    assert!(
        !good && err.contains("not a PostgreSQL connection string"),
        "{err}"
    );
    // Offline tools refuse a database without the schema instead of creating it.
    let empty = pg::shared_db();
    let (good, _, err) = run(&["verify", "--store", &empty]);
    assert!(!good && err.contains("db init"), "{err}");
}

#[test]
fn copy_to_postgres_and_back_then_the_tools_agree() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let mut reference = Ledger::new(Policy::default());
    let events = Workload::history(9, 3000, &mut reference);
    let opts = StoreOptions {
        snapshot_every_records: 1000,
        fdatasync: false,
    };
    let head = {
        let (mut log, mut ledger) = open_ledger_with(&src, Policy::default(), opts).expect("open");
        for chunk in events.chunks(250) {
            commit(&mut log, &mut ledger, chunk.to_vec()).expect("commit");
        }
        log.head()
    };
    let src_s = src.to_str().expect("utf-8 path");
    let url = pg::shared_db();
    let out = ok(&["copy", "--from", src_s, "--to", &url, "--batch", "700"]);
    let hash = hex::encode(head.hash);
    assert!(
        out.contains(&format!("both ends at head seq {} hash {hash}", head.seq)),
        "{out}"
    );
    // Copying again resumes (nothing left) and still verifies.
    let out = ok(&["copy", "--from", src_s, "--to", &url]);
    assert!(out.contains("copied 0 records"), "{out}");
    // verify on PostgreSQL.
    let out = ok(&["verify", "--store", &url]);
    assert!(out.contains(&format!("head seq {}", head.seq)), "{out}");
    assert!(out.contains(&hash), "{out}");
    // Back to a new sled directory.
    let back = tmp.path().join("back");
    let back_s = back.to_str().expect("utf-8 path");
    let out = ok(&["copy", "--from", &url, "--to", back_s]);
    assert!(out.contains(&hash), "{out}");
    ok(&["verify", "--data", back_s]);
    // The offline tools answer the same on both stores.
    let t = (reference.last_at() + 3600).to_string();
    // Instants before the last record: the prefix of the log up to them.
    let mid = events[events.len() / 2].at.to_string();
    let early = (events[events.len() / 5].at - 1).to_string();
    let account = reference.account_ids()[0].to_owned();
    for args in [
        vec!["replay", "--json", "--at", &t],
        vec!["replay", "--json", "--at", &mid],
        vec!["replay", "--at", &early],
        vec!["export"],
        vec![
            "statement",
            "--account",
            &account,
            "--from",
            "0",
            "--to",
            &t,
            "--format",
            "csv",
        ],
    ] {
        let mut on_sled = args.clone();
        on_sled.extend(["--data", src_s]);
        let mut on_pg = args.clone();
        on_pg.extend(["--store", &url]);
        assert_eq!(ok(&on_sled), ok(&on_pg), "{args:?}");
    }
    // A store holding another ledger is refused.
    let other = pg::shared_db();
    let other_dir = tmp.path().join("other");
    {
        let mut r = Ledger::new(Policy::default());
        let evs = Workload::history(77, 10, &mut r);
        let (mut log, mut ledger) = open_ledger_with(
            &other_dir,
            Policy::default(),
            StoreOptions::without_snapshots(false),
        )
        .expect("open");
        commit(&mut log, &mut ledger, evs).expect("commit");
    }
    ok(&[
        "copy",
        "--from",
        other_dir.to_str().expect("utf-8"),
        "--to",
        &other,
    ]);
    let (good, _, err) = run(&["copy", "--from", src_s, "--to", &other]);
    assert!(!good && err.contains("another ledger"), "{err}");
}

#[test]
fn verify_on_postgres_names_the_first_bad_seq() {
    let url = pg::shared_db();
    let mut r = Ledger::new(Policy::default());
    let evs = Workload::history(3, 500, &mut r);
    {
        let (mut log, mut ledger) = open_ledger_with(
            isc_ledger::store::StoreLocation::Postgres(url.clone()),
            Policy::default(),
            StoreOptions::without_snapshots(true),
        )
        .expect("open");
        for chunk in evs.chunks(100) {
            commit(&mut log, &mut ledger, chunk.to_vec()).expect("commit");
        }
    }
    ok(&["verify", "--store", &url]);
    pg::shared_psql(
        &url,
        "UPDATE isc_records SET payload = payload || '\\x00'::bytea WHERE seq = 321",
    );
    let (good, out, _) = run(&["verify", "--store", &url]);
    assert!(!good, "{out}");
    assert!(out.contains("DEFECT at seq 321"), "{out}");
    // `replay --at` reads the records up to its instant only: one before
    // the damage answers, the whole log does not.
    let before = evs[200].at;
    assert!(
        evs[319].at > before,
        "a record after the instant before 321"
    );
    let out = ok(&[
        "replay",
        "--store",
        &url,
        "--json",
        "--at",
        &before.to_string(),
    ]);
    assert!(out.starts_with('['), "{out}");
    let (good, _, err) = run(&["replay", "--store", &url, "--json"]);
    assert!(!good && err.contains("321"), "{err}");
    pg::shared_psql(&url, "DELETE FROM isc_records WHERE seq >= 321");
    let (good, out, _) = run(&["verify", "--store", &url]);
    assert!(
        !good && out.contains("DEFECT at seq 321") && out.contains("truncated"),
        "{out}"
    );
}
