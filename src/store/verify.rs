//! The auditor's full check of a log: density, checksums, the hash chain,
//! the head marker (truncation), a full replay from seq 1, and that every
//! stored snapshot equals the replayed state at its seq. Snapshots are
//! never trusted here; they are only compared.
//!
//! One walk ([`verify_log_with`]) over what a backend offers
//! ([`Verifiable`]): its snapshots, its records in seq order with the
//! checks its layout allows, and its own record of the acknowledged head.
//! sled's part (frames, the head marker) is here; PostgreSQL's (rows, the
//! head row) is in [`super::pg_verify`].

use serde::de::DeserializeOwned;

use super::SnapshotState;

use super::codec::{record_hash, Hash, RawRecord, GENESIS_HASH};
use super::merkle::{Frontier, EMPTY_ROOT};
use super::sled_log::{decode_event_serde, defect_error, RawSnapshot, SledLog};
use super::sth::SignedTreeHead;
use super::{Head, StoreError};

/// The fold `verify` replays with: `(state, seq, at, event)`; `Err` is a
/// defect at that seq.
pub type Fold<'a, E, S> = dyn FnMut(&mut S, u64, i64, &E) -> Result<(), String> + 'a;

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defect {
    /// The first seq that cannot be trusted.
    pub seq: u64,
    /// What is wrong, for a person.
    pub what: String,
}

/// What `verify` established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked (the good prefix when there is a defect).
    pub records: u64,
    /// Head recomputed from the records (the good prefix).
    pub head: Head,
    /// Snapshots compared with the replay.
    pub snapshots_checked: usize,
    /// Snapshots of another state layout (another build), not compared.
    pub snapshots_skipped: usize,
    /// The first defect, if any.
    pub defect: Option<Defect>,
    /// Merkle root (RFC 9162) of the good prefix.
    pub merkle_root: Hash,
    /// The Merkle roots at the tree sizes asked for that the good prefix
    /// reaches, with the instant of the record at that size.
    pub roots: Vec<TreeRoot>,
}

/// The Merkle root of the first `size` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeRoot {
    /// Number of records.
    pub size: u64,
    /// RFC 9162 root of records `1..=size`.
    pub root: Hash,
    /// Instant of record `size` (0 for the empty tree).
    pub at: i64,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.defect.is_none()
    }
}

/// One stored record as the walk sees it: its bytes and the chain hash
/// the backend established for it.
#[derive(Debug, Clone, Copy)]
pub struct WalkedRecord<'a> {
    /// Sequence number.
    pub seq: u64,
    /// Instant of the event.
    pub at: i64,
    /// Record layout version.
    pub version: u8,
    /// The event bytes, as hashed.
    pub payload: &'a [u8],
    /// This record's chain hash (checked against the one before).
    pub hash: Hash,
}

/// What a backend offers `verify`.
pub trait Verifiable {
    /// Every stored snapshot as `(head, state bytes)`, oldest first; a
    /// damaged one as `Err(key)`.
    fn raw_snapshots(&self) -> Result<Vec<RawSnapshot>, StoreError>;

    /// Visits the stored records from seq 1 in order (past the acknowledged
    /// head too, where the layout can tell) until `visit` returns `false`.
    /// A defect the layout shows (a gap, a damaged frame or row, a broken
    /// link) ends the walk as `Ok(Some(defect))`; `Err` only when the store
    /// cannot be read at all.
    fn walk_records(
        &self,
        visit: &mut dyn FnMut(&WalkedRecord<'_>) -> bool,
    ) -> Result<Option<Defect>, StoreError>;

    /// The store's record of the acknowledged head against the walk's end:
    /// `end` records with chain hash `hash`, all of them intact.
    fn check_head(&self, end: u64, hash: &Hash) -> Result<Option<Defect>, StoreError>;
}

/// Checks the whole log. `apply(state, seq, at, event)` is the fold (an
/// `Err` is a defect at that seq); `progress(seq)` is called now and then.
/// Returns `Err` only when the storage itself cannot be read.
pub fn verify_log<L, E, S>(
    log: &L,
    state: S,
    apply: &mut Fold<'_, E, S>,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, StoreError>
where
    L: Verifiable + ?Sized,
    E: DeserializeOwned,
    S: SnapshotState + PartialEq,
{
    verify_log_with(log, state, apply, progress, &[])
}

/// [`verify_log`], also noting the Merkle root at each of `roots_at` (the
/// tree sizes of signed heads to check, see [`check_signed_head`]).
pub fn verify_log_with<L, E, S>(
    log: &L,
    mut state: S,
    apply: &mut Fold<'_, E, S>,
    progress: &mut dyn FnMut(u64),
    roots_at: &[u64],
) -> Result<VerifyReport, StoreError>
where
    L: Verifiable + ?Sized,
    E: DeserializeOwned,
    S: SnapshotState + PartialEq,
{
    let mut frontier = Frontier::new();
    let mut roots: Vec<TreeRoot> = vec![];
    if roots_at.contains(&0) {
        roots.push(TreeRoot {
            size: 0,
            root: EMPTY_ROOT,
            at: 0,
        });
    }
    let mut snapshots = vec![];
    let mut skipped = 0usize;
    let mut snap_defect = None;
    for s in log.raw_snapshots()? {
        match s {
            // Written by a build with another state layout: not comparable.
            Ok((h, _)) if h.schema != S::schema() => skipped += 1,
            Ok(s) => snapshots.push(s),
            Err(key) => {
                snap_defect.get_or_insert(Defect {
                    seq: key,
                    what: "snapshot damaged (checksum)".into(),
                });
            }
        }
    }
    // The good prefix: records 1..=end, chain hash `hash`.
    let mut end: u64 = 0;
    let mut hash: Hash = GENESIS_HASH;
    let mut last_at = i64::MIN;
    let mut checked = 0usize;
    let mut defect: Option<Defect> = None;
    let layout_defect = log.walk_records(&mut |r| {
        let mut fail = |what: String| {
            defect = Some(Defect { seq: r.seq, what });
            false
        };
        if r.at < last_at {
            return fail(format!(
                "at {} is earlier than the previous record's {last_at}",
                r.at
            ));
        }
        let raw = RawRecord {
            seq: r.seq,
            at: r.at,
            version: r.version,
            event: r.payload,
        };
        let ev: E = match decode_event_serde(&raw) {
            Ok(ev) => ev,
            Err(StoreError::Corrupt { what, .. }) => return fail(what),
            Err(e) => return fail(e.to_string()),
        };
        if let Err(e) = apply(&mut state, r.seq, r.at, &ev) {
            return fail(format!("replay: {e}"));
        }
        hash = r.hash;
        frontier.push(&hash);
        if roots_at.contains(&r.seq) {
            roots.push(TreeRoot {
                size: r.seq,
                root: frontier.root(),
                at: r.at,
            });
        }
        for (head, bytes) in snapshots.iter().filter(|(h, _)| h.seq == r.seq) {
            checked += 1;
            let same = head.hash == hash
                && bincode::serde::decode_from_slice::<S, _>(bytes, bincode::config::standard())
                    .is_ok_and(|(s, _)| s == state);
            if !same {
                return fail("the snapshot at this seq differs from the full replay".into());
            }
        }
        last_at = r.at;
        end = r.seq;
        if (end + 1).is_multiple_of(65_536) {
            progress(end + 1);
        }
        true
    })?;
    let mut defect = defect.or(layout_defect);
    if defect.is_none() {
        defect = log.check_head(end, &hash)?;
    }
    if defect.is_none() {
        if let Some((h, _)) = snapshots.iter().find(|(h, _)| h.seq > end || h.seq == 0) {
            defect = Some(Defect {
                seq: h.seq,
                what: "snapshot beyond the end of the log".into(),
            });
        }
    }
    Ok(VerifyReport {
        records: end,
        head: Head {
            seq: end,
            hash,
            at: if end == 0 { 0 } else { last_at },
        },
        snapshots_checked: checked,
        snapshots_skipped: skipped,
        // A damaged snapshot is reported only when the log itself is fine.
        defect: defect.or(snap_defect),
        merkle_root: frontier.root(),
        roots,
    })
}

/// sled: frames in key order (density, checksums, each frame's link to the
/// record before) and the head marker.
impl<E> Verifiable for SledLog<E> {
    fn raw_snapshots(&self) -> Result<Vec<RawSnapshot>, StoreError> {
        SledLog::raw_snapshots(self)
    }

    fn walk_records(
        &self,
        visit: &mut dyn FnMut(&WalkedRecord<'_>) -> bool,
    ) -> Result<Option<Defect>, StoreError> {
        let mut next: u64 = 1;
        let mut hash: Hash = GENESIS_HASH;
        let mut defect: Option<Defect> = None;
        let walked = self.walk_frames(1, |first, frame| {
            let mut fail = |seq: u64, what: String| {
                defect = Some(Defect { seq, what });
                false
            };
            if first != next {
                return if first > next {
                    fail(next, format!("record missing: seqs {next}..={} are absent", first - 1))
                } else {
                    fail(first, format!("frame at seq {first} overlaps records up to {}", next - 1))
                };
            }
            let frame = match frame {
                Ok(f) => f,
                Err(d) => {
                    let StoreError::Corrupt { seq, what } = defect_error(first, d) else {
                        return fail(first, "frame unreadable".into());
                    };
                    return fail(seq, what);
                }
            };
            if frame.prev_hash != hash {
                return fail(
                    first,
                    format!(
                        "chain broken: prev_hash does not match the hash of seq {} (it or an earlier record of its frame was altered)",
                        first - 1
                    ),
                );
            }
            for r in &frame.records {
                let h = record_hash(&hash, r.seq, r.at, r.event);
                let walked = WalkedRecord {
                    seq: r.seq,
                    at: r.at,
                    version: r.version,
                    payload: r.event,
                    hash: h,
                };
                if !visit(&walked) {
                    return false;
                }
                hash = h;
                next = r.seq + 1;
            }
            true
        });
        match walked {
            Ok(()) => Ok(defect),
            // sled itself could not read on (its files are damaged): the
            // records before are checked, the rest cannot be.
            Err(StoreError::Sled(e)) if defect.is_none() => Ok(Some(Defect {
                seq: next,
                what: format!("sled cannot read the log from here on (its files are damaged): {e}"),
            })),
            Err(StoreError::Sled(_)) => Ok(defect),
            Err(e) => Err(e),
        }
    }

    fn check_head(&self, end: u64, hash: &Hash) -> Result<Option<Defect>, StoreError> {
        let marker = match self.stored_head_marker() {
            Err(StoreError::Sled(e)) => Err(e),
            other => Ok(other?),
        };
        Ok(match marker {
            Err(e) => Some(Defect {
                seq: end + 1,
                what: format!("sled cannot read the head marker (its files are damaged): {e}"),
            }),
            Ok(None) if end > 0 => Some(Defect { seq: end, what: "head marker missing".into() }),
            Ok(None) => None,
            Ok(Some(None)) => Some(Defect { seq: end + 1, what: "head marker unreadable".into() }),
            Ok(Some(Some(m))) if m.seq > end => Some(Defect {
                seq: end + 1,
                what: format!(
                    "record missing: the log ends at seq {end} but {} records were acknowledged (truncated)",
                    m.seq
                ),
            }),
            Ok(Some(Some(m))) if m.seq < end => Some(Defect {
                seq: m.seq + 1,
                what: format!("records after the acknowledged head {} (never acknowledged)", m.seq),
            }),
            Ok(Some(Some(m))) if m.hash != *hash => {
                Some(Defect { seq: end, what: "chain hash differs from the head marker".into() })
            }
            Ok(Some(Some(_))) => None,
        })
    }
}

/// Checks a signed tree head against the records `verify` read (`report`
/// from [`verify_log_with`] with `head.tree_size` among its sizes): its
/// signature, that the store still holds all `tree_size` records, and that
/// their Merkle root and last instant are the signed ones. `origin` names
/// the head in the messages ("the store's head file", "FILE"). A defect of
/// the head itself (its signature) is placed after the records read, so the
/// records before it still count as intact; a root that differs names seq
/// 1 (the root cannot tell which record was rewritten).
pub fn check_signed_head(
    report: &VerifyReport,
    head: &SignedTreeHead,
    origin: &str,
) -> Vec<Defect> {
    let mut out = vec![];
    let n = head.tree_size;
    if head.verify().is_err() {
        out.push(Defect {
            seq: report.records + 1,
            what: format!(
                "the signature of the signed head of size {n} ({origin}) does not verify: the head was altered"
            ),
        });
    }
    if n > report.records {
        let from = report.records + 1;
        let what = if report.defect.is_some() {
            format!(
                "records {from}..{n} acknowledged under signed head of size {n} ({origin}) are missing or damaged"
            )
        } else {
            format!("records {from}..{n} acknowledged under signed head of size {n} ({origin}) are missing")
        };
        out.push(Defect { seq: from, what });
        return out;
    }
    match report.roots.iter().find(|r| r.size == n) {
        // Which record differs the root cannot tell: none is trusted.
        Some(r) if r.root != head.root_hash => out.push(Defect {
            seq: 1,
            what: format!(
                "the Merkle root of records 1..={n} is not the one signed in the head of size {n} ({origin}): records up to {n} were rewritten"
            ),
        }),
        Some(r) if r.at != head.at => out.push(Defect {
            seq: n,
            what: format!(
                "record {n} is at {} but the signed head of size {n} ({origin}) says {}",
                r.at, head.at
            ),
        }),
        Some(_) => {}
        None => out.push(Defect {
            seq: n,
            what: format!("the Merkle root at size {n} was not computed (a caller bug)"),
        }),
    }
    out
}
