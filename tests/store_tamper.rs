//! Tamper tests (issue 4): damage a closed store through the sled API the
//! way an intruder or a bad disk would, and check that `verify` fails and
//! names the first bad seq.

mod common;

use std::path::Path;

use common::offline::with_log_tree;
use isc_ledger::cli::audit::{self, VerifyArgs};
use isc_ledger::domain::{Ledger, Policy};
use isc_ledger::store::codec::{decode_frame, frame_parts, get_uvarint, seal_frame, FrameBuilder};
use isc_ledger::store::ledger::{commit, open_ledger_with};
use isc_ledger::store::sled_log::HEAD_KEY;
use isc_ledger::store::workload::Workload;
use isc_ledger::store::StoreOptions;

/// 300 records in frames of 50: keys 1, 51, …, 251.
const RECORDS: usize = 300;
const BATCH: usize = 50;

fn build(dir: &Path) {
    let mut reference = Ledger::new(Policy::default());
    let events = Workload::history(11, RECORDS, &mut reference);
    let opts = StoreOptions {
        snapshot_every_records: 120,
        fdatasync: false,
    };
    let (mut log, mut ledger) = open_ledger_with(dir, Policy::default(), opts).expect("open");
    for chunk in events.chunks(BATCH) {
        commit(&mut log, &mut ledger, chunk.to_vec()).expect("commit");
    }
}

/// Runs `verify` and returns (ok, output).
fn verify(dir: &Path) -> (bool, String) {
    let mut out = Vec::new();
    let args = VerifyArgs::new(dir);
    let ok = audit::verify(&args, &mut out).expect("verify runs");
    (ok, String::from_utf8(out).expect("utf8"))
}

fn check(tamper: impl FnOnce(&sled::Tree), want_seq: u64) {
    check_within(tamper, want_seq..=want_seq);
}

/// For tampering that recomputes every checksum the altered record cannot
/// always be pinpointed: the first seq named lies in `range`.
fn check_within(tamper: impl FnOnce(&sled::Tree), range: std::ops::RangeInclusive<u64>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    build(tmp.path());
    assert!(verify(tmp.path()).0, "fresh store verifies");
    with_log_tree(tmp.path(), tamper);
    let (ok, out) = verify(tmp.path());
    assert!(!ok, "tampering not detected: {out}");
    let seq: u64 = out
        .strip_prefix("DEFECT at seq ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no seq named: {out}"));
    assert!(range.contains(&seq), "want a seq in {range:?}, got: {out}");
}

fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn frame_bytes(t: &sled::Tree, first: u64) -> Vec<u8> {
    t.get(key(first)).expect("get").expect("frame").to_vec()
}

/// The decompressed body of frame `first`: `(count, prev_hash, body)`.
fn parts(t: &sled::Tree, first: u64) -> (u16, [u8; 32], Vec<u8>) {
    frame_parts(&frame_bytes(t, first)).expect("frame parts")
}

/// Byte range of record `seq`'s event inside the (decompressed) body of
/// the frame `first`, by walking the documented record layout.
fn event_range(t: &sled::Tree, first: u64, seq: u64) -> std::ops::Range<usize> {
    let (_, _, body) = parts(t, first);
    let mut pos = 0;
    for s in first.. {
        pos += 1; // record_version
        get_uvarint(&body, &mut pos).expect("at delta");
        let len = get_uvarint(&body, &mut pos).expect("length") as usize;
        if s == seq {
            return pos..pos + len;
        }
        pos += len + 4;
    }
    unreachable!()
}

/// Re-encodes a frame from `(at, event bytes)` with valid checksums, as a
/// careful intruder would.
fn reencode(first: u64, prev_hash: &[u8; 32], records: &[(i64, Vec<u8>)]) -> Vec<u8> {
    let mut b = FrameBuilder::new(first, prev_hash);
    for (at, ev) in records {
        b.push(*at, ev);
    }
    b.finish()
}

fn records_of(buf: &[u8], first: u64) -> ([u8; 32], Vec<(i64, Vec<u8>)>) {
    let mut scratch = Vec::new();
    let f = decode_frame(first, buf, &mut scratch).expect("valid");
    (
        f.prev_hash,
        f.records.iter().map(|r| (r.at, r.event.to_vec())).collect(),
    )
}

#[test]
fn untouched_store_verifies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    build(tmp.path());
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
    assert!(out.contains(&format!("ok: {RECORDS} records")), "{out}");
    assert!(out.contains("2 snapshot(s) match"), "{out}");
}

#[test]
fn flipped_byte_in_a_record_is_named() {
    // A careless intruder (or a bad disk under a fixed-up frame CRC): the
    // record's own seq-bound checksum names it.
    check(
        |t| {
            let r = event_range(t, 101, 123);
            let (count, prev, mut body) = parts(t, 101);
            body[r.start + 2] ^= 0x01;
            t.insert(key(101), seal_frame(count, &prev, &body))
                .expect("insert");
        },
        123,
    );
}

#[test]
fn flipped_stored_byte_is_caught_in_its_frame() {
    // A raw flip inside the compressed frame: the first seq that can no
    // longer be trusted lies in that frame.
    check_within(
        |t| {
            let mut buf = frame_bytes(t, 101);
            let mid = buf.len() / 2;
            buf[mid] ^= 0x10;
            t.insert(key(101), buf).expect("insert");
        },
        101..=150,
    );
}

#[test]
fn altered_record_with_recomputed_checksums_breaks_the_chain() {
    // The intruder rewrites record 123 and fixes every checksum: the state
    // no longer matches the snapshot at 150, and the next frame's prev_hash
    // (seq 151) no longer matches the chain.
    check_within(
        |t| {
            let buf = frame_bytes(t, 101);
            let (prev, mut recs) = records_of(&buf, 101);
            let ev = &mut recs[22].1;
            let last = ev.len() - 1;
            ev[last] ^= 0x01;
            t.insert(key(101), reencode(101, &prev, &recs))
                .expect("insert");
        },
        123..=151,
    );
}

#[test]
fn altered_instant_with_recomputed_checksums_is_named() {
    check(
        |t| {
            let buf = frame_bytes(t, 251);
            let (prev, mut recs) = records_of(&buf, 251);
            recs[10].0 += 1;
            t.insert(key(251), reencode(251, &prev, &recs))
                .expect("insert");
        },
        261,
    );
}

#[test]
fn deleted_record_is_named() {
    // Record 160 cut out of its frame (count and frame CRC fixed): record
    // 161 now sits at seq 160 and fails its seq-bound checksum.
    check(
        |t| {
            let (r160, r161) = (event_range(t, 151, 160), event_range(t, 151, 161));
            let (count, prev, mut body) = parts(t, 151);
            // A record starts 3 bytes before its event here (version, 1-byte
            // at delta, 1-byte length) and ends with a 4-byte CRC.
            body.drain(r160.start - 3..r161.start - 3);
            t.insert(key(151), seal_frame(count - 1, &prev, &body))
                .expect("insert");
        },
        160,
    );
}

#[test]
fn deleted_frame_is_named() {
    check(
        |t| assert!(t.remove(key(101)).expect("remove").is_some()),
        101,
    );
}

#[test]
fn swapped_records_are_named() {
    check(
        |t| {
            let (a, b) = (event_range(t, 51, 70), event_range(t, 51, 71));
            let (a, b) = (a.start - 3..a.end + 4, b.start - 3..b.end + 4);
            assert_eq!(a.end, b.start);
            let (count, prev, mut body) = parts(t, 51);
            let (ra, rb) = (body[a.clone()].to_vec(), body[b.clone()].to_vec());
            let mut swapped = rb;
            swapped.extend_from_slice(&ra);
            body.splice(a.start..b.end, swapped);
            t.insert(key(51), seal_frame(count, &prev, &body))
                .expect("insert");
        },
        70,
    );
}

#[test]
fn swapped_frames_are_named() {
    check(
        |t| {
            let (a, b) = (frame_bytes(t, 51), frame_bytes(t, 101));
            t.insert(key(51), b).expect("insert");
            t.insert(key(101), a).expect("insert");
        },
        51,
    );
}

#[test]
fn truncated_tail_is_named() {
    // The last frame removed: the head marker still says 300.
    check(
        |t| assert!(t.remove(key(251)).expect("remove").is_some()),
        251,
    );
}

#[test]
fn truncated_inside_the_last_frame_is_named() {
    check(
        |t| {
            let buf = frame_bytes(t, 251);
            let (prev, mut recs) = records_of(&buf, 251);
            recs.truncate(20);
            t.insert(key(251), reencode(251, &prev, &recs))
                .expect("insert");
        },
        271,
    );
}

#[test]
fn removed_head_marker_is_reported() {
    check(
        |t| assert!(t.remove(HEAD_KEY).expect("remove").is_some()),
        300,
    );
}

#[test]
fn the_binary_exits_1_and_names_the_seq() {
    let tmp = tempfile::tempdir().expect("tempdir");
    build(tmp.path());
    with_log_tree(tmp.path(), |t| {
        t.remove(key(201)).expect("remove");
    });
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isc-ledger"))
        .args(["verify", "--data"])
        .arg(tmp.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("DEFECT at seq 201: record missing"),
        "{stdout}"
    );
}

#[test]
fn replay_names_the_first_error_in_log_order() {
    // Cold replay reads and decodes frames on one thread, a few frames
    // ahead of the fold on another. Whichever finds its error first in
    // time, the error reported is the first in log order: a record the
    // fold refuses (the account does not exist) before a damaged frame,
    // or a damaged frame before such a record.
    use isc_ledger::domain::{Event, EventBody, Nano};
    use isc_ledger::store::ledger::{open_ledger, EventLog};
    use isc_ledger::store::{LogStore, StoreError};
    // `damaged`: a frame's first seq (a raw flip in it), or any other seq
    // (that record's event replaced by bytes that do not decode, every
    // checksum recomputed).
    for (refused, damaged, want) in [
        (150u64, 301u64, 150..=150),
        (450, 301, 301..=400),
        (150, 160, 150..=150),
        (170, 160, 160..=160),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        {
            let mut log =
                EventLog::open(tmp.path(), StoreOptions::without_snapshots(false)).expect("open");
            let at = 1_700_000_000;
            let event = |seq: u64| Event {
                at,
                body: if seq == 1 {
                    EventBody::AccountOpened {
                        account_id: "a".into(),
                    }
                } else {
                    EventBody::ToppedUp {
                        account_id: if seq == refused { "nobody" } else { "a" }.into(),
                        activation_key: format!("KEY-{seq:08}").into(),
                        amount: Nano(1),
                        price_version: None,
                    }
                },
            };
            for first in (1..=600u64).step_by(100) {
                let batch: Vec<(i64, Event)> =
                    (first..first + 100).map(|s| (at, event(s))).collect();
                log.append(&batch).expect("append");
            }
        }
        with_log_tree(tmp.path(), |t| {
            let first = damaged - (damaged - 1) % 100;
            let mut buf = frame_bytes(t, first);
            if first == damaged {
                let mid = buf.len() / 2;
                buf[mid] ^= 0x10;
            } else {
                let (prev, mut records) = records_of(&buf, first);
                records[(damaged - first) as usize].1 = vec![0xff, 0xff];
                buf = reencode(first, &prev, &records);
            }
            t.insert(key(first), buf).expect("insert");
        });
        match open_ledger(tmp.path(), Policy::default()) {
            Err(StoreError::Corrupt { seq, what }) => {
                assert!(
                    want.contains(&seq),
                    "want a seq in {want:?}, got {seq}: {what}"
                )
            }
            other => panic!("expected a corrupt log, got {:?}", other.map(|_| ())),
        }
    }
}
