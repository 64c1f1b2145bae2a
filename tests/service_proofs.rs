//! Proofs through the real server (spec §13): signed heads on receipts,
//! inclusion and consistency proofs, ReadLog, roles, the auditor's
//! `audit` (incremental, and failing on a tampered ledger), `check-receipt`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use isc_ledger::api::pb;
use isc_ledger::cli::client::ClientOpts;
use isc_ledger::cli::proofs::{
    add_inclusion, check_receipt_json, receipt_head, run_audit, tree_head_from_pb, AuditArgs,
    AuditOutcome,
};
use isc_ledger::domain::{Ledger, Policy};
use isc_ledger::store::ledger::{commit, open_ledger_with};
use isc_ledger::store::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use isc_ledger::store::sth::{LedgerKey, SignedTreeHead, DEFAULT_KEY_FILE, HEAD_FILE};
use isc_ledger::store::workload::Workload;
use isc_ledger::store::{Hash, LogStore, StoreOptions};
use tonic::Code;

const T0: i64 = 1_000_000;

fn h32(b: &[u8]) -> Hash {
    Hash::try_from(b).expect("32 bytes")
}

fn path_of(p: &[Vec<u8>]) -> Vec<Hash> {
    p.iter().map(|h| h32(h)).collect()
}

fn opts(url: &str) -> ClientOpts {
    ClientOpts {
        server: url.to_string(),
        token: None,
        json: true,
    }
}

/// Price list, `accounts` accounts, each topped up `per` times from
/// concurrent clients (group commits carry several records per head).
async fn write_some(url: &str, accounts: usize, per: usize, tag: &str) -> Vec<pb::Receipt> {
    let mut c = ledger(url).await;
    let mut out = vec![];
    if c.get_tree_head(pb::GetTreeHeadRequest {})
        .await
        .unwrap()
        .get_ref()
        .tree_size
        == 0
    {
        out.push(
            c.publish_price_list(price_list(1, 0, "2.628"))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let mut tasks = vec![];
    for a in 0..accounts {
        let url = url.to_string();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = ledger(&url).await;
            let id = format!("{tag}-{a}");
            let mut rs = vec![c.open_account(open(&id)).await.unwrap().into_inner()];
            for k in 0..per {
                let key = format!("KEY-{tag}-{a}-{k}-0000");
                rs.push(c.top_up(topup(&id, &key, "1")).await.unwrap().into_inner());
            }
            rs
        }));
    }
    for t in tasks {
        out.extend(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_carry_signed_heads_and_proofs_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start(tmp.path(), T0).await;
    let mut c = ledger(&srv.url).await;
    // An empty ledger has a signed head too.
    let empty = tree_head_from_pb(
        c.get_tree_head(pb::GetTreeHeadRequest {})
            .await
            .unwrap()
            .get_ref(),
    )
    .unwrap();
    assert_eq!(empty.tree_size, 0);
    assert_eq!(empty.root_hash, isc_ledger::store::merkle::EMPTY_ROOT);
    empty.verify().expect("empty head signed");
    // serve created the key in the data directory (0600), same public key.
    let key = LedgerKey::load(&tmp.path().join(DEFAULT_KEY_FILE)).expect("key created");
    assert_eq!(key.public_key(), empty.public_key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.path().join(DEFAULT_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pk = key.public_key();

    let receipts = write_some(&srv.url, 6, 5, "a").await;
    let mut sizes = std::collections::BTreeSet::new();
    for r in &receipts {
        let head = receipt_head(r).expect("receipt has a head");
        head.verify_with(&pk)
            .expect("receipt head signed by the ledger key");
        assert!(r.seq <= head.tree_size, "head contains the record");
        sizes.insert(head.tree_size);
        let p = c
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                seq: r.seq,
                tree_size: head.tree_size,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((p.seq, p.tree_size), (r.seq, head.tree_size));
        verify_inclusion(
            r.seq - 1,
            head.tree_size,
            &h32(&p.leaf_hash),
            &path_of(&p.path),
            &head.root_hash,
        )
        .expect("inclusion under the receipt's head");
        // The receipt JSON checks offline.
        let mut v = isc_ledger::cli::client::receipt_json(r);
        let mut cl = opts(&srv.url).ledger().await.unwrap();
        add_inclusion(&mut cl, r, &mut v).await;
        let ok = check_receipt_json(&v, &pk).expect("receipt checks");
        assert_eq!(ok.seq, r.seq);
        // A wrong key, a changed leaf or a changed seq do not.
        assert!(check_receipt_json(&v, &LedgerKey::from_seed(&[1; 32]).public_key()).is_err());
        let mut bad = v.clone();
        bad["inclusion"]["leaf_hash"] = serde_json::json!(hex::encode([7u8; 32]));
        assert!(check_receipt_json(&bad, &pk).is_err());
        let mut bad = v.clone();
        bad["tree_head"]["tree_size"] = serde_json::json!(head.tree_size + 1);
        assert!(check_receipt_json(&bad, &pk).is_err());
    }
    assert!(sizes.len() > 1, "several heads were signed");

    // Inclusion proofs for random seqs under the newest head; the records
    // come from ReadLog and their chain hashes are the leaves.
    let newest = tree_head_from_pb(
        c.get_tree_head(pb::GetTreeHeadRequest {})
            .await
            .unwrap()
            .get_ref(),
    )
    .unwrap();
    newest.verify_with(&pk).unwrap();
    let n = newest.tree_size;
    assert_eq!(n, receipts.len() as u64);
    let mut stream = c
        .read_log(pb::ReadLogRequest {
            from_seq: 0,
            to_seq: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut recs = vec![];
    while let Some(m) = stream.message().await.unwrap() {
        recs.extend(m.raw_records().unwrap());
    }
    assert_eq!(recs.len() as u64, n);
    let mut prev = [0u8; 32];
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.prev_hash, prev);
        let h = isc_ledger::store::codec::record_hash(&prev, r.seq, r.at, &r.payload);
        assert_eq!(r.hash, h);
        prev = h;
    }
    let mut s = 0x1234_5678u64;
    for _ in 0..20 {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let seq = 1 + (s >> 33) % n;
        let p = c
            .get_inclusion_proof(pb::GetInclusionProofRequest { seq, tree_size: 0 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(p.tree_size, n);
        let leaf = leaf_hash(&recs[(seq - 1) as usize].hash);
        assert_eq!(h32(&p.leaf_hash), leaf);
        verify_inclusion(seq - 1, n, &leaf, &path_of(&p.path), &newest.root_hash)
            .expect("verifies");
    }

    // A consistency proof between two receipts' heads.
    let first = receipt_head(&receipts[1]).unwrap();
    let p = c
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            first_size: first.tree_size,
            second_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.second_size, n);
    verify_consistency(
        first.tree_size,
        n,
        &first.root_hash,
        &newest.root_hash,
        &path_of(&p.path),
    )
    .expect("the log only grew");
    let same = c
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            first_size: n,
            second_size: n,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(same.path.is_empty());

    // An idempotent retry: the first receipt, with the newest head.
    let again = c
        .top_up(topup("a-0", "KEY-a-0-0-0000", "1"))
        .await
        .unwrap()
        .into_inner();
    let first_topup = receipts
        .iter()
        .find(|r| r.seq == again.seq)
        .expect("same seq as the first");
    assert_eq!(
        (again.at, &again.balance),
        (first_topup.at, &first_topup.balance)
    );
    assert_eq!(again.tree_size, n);
    receipt_head(&again).unwrap().verify_with(&pk).unwrap();

    // §13 check order and codes.
    let inc = |seq, tree_size| pb::GetInclusionProofRequest { seq, tree_size };
    code_of(
        c.get_inclusion_proof(inc(0, n + 5)).await,
        Code::InvalidArgument,
    );
    code_of(
        c.get_inclusion_proof(inc(n + 9, n + 5)).await,
        Code::OutOfRange,
    );
    code_of(
        c.get_inclusion_proof(inc(n, n - 1)).await,
        Code::InvalidArgument,
    );
    code_of(
        c.get_inclusion_proof(inc(n + 1, 0)).await,
        Code::InvalidArgument,
    );
    let con = |first_size, second_size| pb::GetConsistencyProofRequest {
        first_size,
        second_size,
    };
    code_of(
        c.get_consistency_proof(con(0, n + 5)).await,
        Code::InvalidArgument,
    );
    code_of(
        c.get_consistency_proof(con(n + 1, n + 5)).await,
        Code::OutOfRange,
    );
    code_of(
        c.get_consistency_proof(con(n + 1, 0)).await,
        Code::OutOfRange,
    );
    code_of(
        c.get_consistency_proof(con(3, 2)).await,
        Code::InvalidArgument,
    );
    code_of(
        c.read_log(pb::ReadLogRequest {
            from_seq: 1,
            to_seq: n + 1,
            ..Default::default()
        })
        .await,
        Code::OutOfRange,
    );
    srv.stop().await;

    // A clean stop leaves the exact head in the head file.
    let file = SignedTreeHead::read_file(&tmp.path().join(HEAD_FILE)).expect("head file");
    assert_eq!(file.tree_size, n);
    assert_eq!(file.root_hash, newest.root_hash);
    file.verify_with(&pk).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_of_the_proof_rpcs() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_with_roles(tmp.path(), T0).await;
    let callers = Callers::connect(&srv.url).await;
    for (tok, proofs, log) in [
        ("agent-tok", true, false),
        ("vendor-tok", false, false),
        ("audit-tok", true, true),
        ("admin-tok", true, true),
    ] {
        let mut c = callers.with(tok);
        let h = c.get_tree_head(pb::GetTreeHeadRequest {}).await;
        let i = c
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                seq: 1,
                tree_size: 0,
            })
            .await;
        let k = c
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                first_size: 1,
                second_size: 0,
            })
            .await;
        let r = c
            .read_log(pb::ReadLogRequest {
                from_seq: 1,
                to_seq: 0,
                ..Default::default()
            })
            .await;
        if proofs {
            assert!(h.is_ok(), "{tok}");
            // Authorised, then checked: the empty log has no seq 1.
            code_of(i, Code::InvalidArgument);
            code_of(k, Code::OutOfRange);
        } else {
            code_of(h, Code::PermissionDenied);
            code_of(i, Code::PermissionDenied);
            code_of(k, Code::PermissionDenied);
        }
        if log {
            assert!(r.is_ok(), "{tok}");
        } else {
            code_of(r, Code::PermissionDenied);
        }
    }
    srv.stop().await;
}

/// A store of `n` records written offline (fast), for the stream tests.
fn offline_store(dir: &Path, n: usize) {
    let mut reference = Ledger::new(Policy::default());
    let events = Workload::history(7, n, &mut reference);
    let (mut log, mut ledger) = open_ledger_with(
        dir,
        Policy::default(),
        StoreOptions::without_snapshots(false),
    )
    .expect("open");
    for chunk in events.chunks(4096) {
        commit(&mut log, &mut ledger, chunk.to_vec()).expect("commit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_log_reader_never_blocks_the_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 40_000;
    offline_store(tmp.path(), n);
    let srv = start(tmp.path(), T0).await;
    let mut c = ledger(&srv.url).await;
    let mut stream = c
        .read_log(pb::ReadLogRequest {
            from_seq: 1,
            to_seq: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().expect("a record");
    assert_eq!(first.raw_records().unwrap()[0].seq, 1);
    // The reader stops reading; the server's reader thread fills its buffer
    // and the connection's window, then waits, holding no lock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = tokio::time::timeout(Duration::from_secs(20), async {
        let mut w = ledger(&srv.url).await;
        for i in 0..20 {
            w.open_account(open(&format!("late-{i}"))).await.unwrap();
        }
    })
    .await;
    assert!(writes.is_ok(), "writes were blocked by a slow reader");
    // The reader gets everything up to the head at its start, in order.
    let mut next = 2;
    while let Some(m) = stream.message().await.unwrap() {
        assert_eq!(m.raw_records().unwrap()[0].seq, next);
        next += 1;
    }
    assert_eq!(next - 1, n as u64);
    srv.stop().await;
}

/// All of a `ReadLog` stream's records, a message's `following` after it.
async fn read_all(
    c: &mut pb::ledger_client::LedgerClient<tonic::transport::Channel>,
    from: u64,
    max_batch: u32,
) -> (usize, Vec<isc_ledger::store::RawRecord>) {
    let mut stream = c
        .read_log(pb::ReadLogRequest {
            from_seq: from,
            to_seq: 0,
            max_batch,
        })
        .await
        .unwrap()
        .into_inner();
    let (mut msgs, mut recs) = (0, vec![]);
    while let Some(m) = stream.message().await.unwrap() {
        msgs += 1;
        recs.extend(m.raw_records().unwrap());
    }
    (msgs, recs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_log_batches_carry_the_same_records_across_chunk_boundaries() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 10_000;
    offline_store(tmp.path(), n);
    let srv = start(tmp.path(), T0).await;
    let mut c = ledger(&srv.url).await;
    let (msgs, single) = read_all(&mut c, 1, 0).await;
    assert_eq!((msgs, single.len()), (n, n));
    for (i, r) in single.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
    }
    // Batches of 3 and 1000 (not dividing the server's 4096-record reads),
    // and the largest: the same records in the same order.
    for (batch, want_msgs) in [(3u32, None), (1000, None), (4096, Some(3))] {
        let (msgs, recs) = read_all(&mut c, 1, batch).await;
        assert_eq!(recs, single, "max_batch {batch}");
        assert!(
            msgs >= n.div_ceil(batch as usize),
            "max_batch {batch}: {msgs} messages"
        );
        if let Some(m) = want_msgs {
            assert_eq!(msgs, m, "max_batch {batch}");
        }
    }
    // From the middle of a stored frame.
    let (_, tail) = read_all(&mut c, 4001, 1000).await;
    assert_eq!(tail, single[4000..]);
    srv.stop().await;
}

async fn audit_once(url: &str, state: &Path) -> AuditOutcome {
    run_audit(
        &opts(url),
        &AuditArgs {
            state: state.to_path_buf(),
            public_key: None,
        },
    )
    .await
    .expect("audit runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_is_incremental_and_catches_a_rewritten_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let state = tmp.path().join("audit.json");
    let srv = start(&data, T0).await;
    write_some(&srv.url, 3, 3, "a").await;
    let AuditOutcome::Ok(r1) = audit_once(&srv.url, &state).await else {
        panic!("first audit fails")
    };
    assert_eq!((r1.from_size, r1.records_checked), (0, 13));
    assert!(!r1.incremental_fold);
    // The state file is a head file (verify --sth reads it).
    let saved = SignedTreeHead::read_file(&state).expect("state is a head");
    assert_eq!(saved.tree_size, 13);

    write_some(&srv.url, 2, 1, "b").await;
    let AuditOutcome::Ok(r2) = audit_once(&srv.url, &state).await else {
        panic!("second audit fails")
    };
    assert_eq!((r2.from_size, r2.records_checked), (13, 4));
    assert!(r2.incremental_fold, "the fold continued");
    let AuditOutcome::Ok(r3) = audit_once(&srv.url, &state).await else {
        panic!("third audit fails")
    };
    assert_eq!((r3.from_size, r3.records_checked), (17, 0));
    // Without the saved fold the records are replayed again, still checked.
    std::fs::remove_file(tmp.path().join("audit.json.fold")).unwrap();
    let AuditOutcome::Ok(r4) = audit_once(&srv.url, &state).await else {
        panic!("audit without fold fails")
    };
    assert_eq!((r4.from_size, r4.records_checked), (17, 17));
    srv.stop().await;

    // The operator rewrites history: a copy of the ledger whose first 10
    // records are the same, then different ones, with the same signing key
    // and no head file; the server restarts over it and signs new heads.
    let forged = tmp.path().join("forged");
    {
        let (orig, _) =
            open_ledger_with(&data, Policy::default(), StoreOptions::default()).expect("open");
        let events: Vec<_> = orig
            .read_range(1, 10)
            .map(|r| r.expect("intact").event)
            .collect();
        drop(orig);
        let (mut log, mut ledger) =
            open_ledger_with(&forged, Policy::default(), StoreOptions::default()).expect("open");
        commit(&mut log, &mut ledger, events).expect("commit");
    }
    std::fs::copy(data.join(DEFAULT_KEY_FILE), forged.join(DEFAULT_KEY_FILE)).unwrap();
    let srv = start(&forged, T0).await;
    write_some(&srv.url, 4, 2, "x").await;
    match audit_once(&srv.url, &state).await {
        AuditOutcome::Failed(why) => assert!(why.contains("rewritten"), "{why}"),
        AuditOutcome::Ok(r) => panic!("audit passed a rewritten ledger: {r:?}"),
    }
    srv.stop().await;

    // A store shorter than its head file does not start: acknowledged
    // records are missing.
    let dir = tmp.path().join("short");
    std::fs::create_dir_all(&dir).unwrap();
    {
        let (orig, _) =
            open_ledger_with(&data, Policy::default(), StoreOptions::default()).expect("open");
        let events: Vec<_> = orig
            .read_range(1, 12)
            .map(|r| r.expect("intact").event)
            .collect();
        drop(orig);
        let (mut log, mut ledger) =
            open_ledger_with(&dir, Policy::default(), StoreOptions::default()).expect("open");
        commit(&mut log, &mut ledger, events).expect("commit");
    }
    std::fs::copy(data.join(HEAD_FILE), dir.join(HEAD_FILE)).unwrap();
    let err = isc_ledger::engine::Engine::start(
        &dir,
        isc_ledger::engine::EngineConfig::default(),
        std::sync::Arc::new(isc_ledger::engine::ManualClock::new(T0)),
    )
    .map(|_| ())
    .expect_err("a truncated store must not start");
    let msg = err.to_string();
    assert!(msg.contains("records 13..17"), "{msg}");
}
