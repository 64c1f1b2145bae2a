//! The auditor's full check of a log: density, checksums, the hash chain,
//! the head marker (truncation), a full replay from seq 1, and that every
//! stored snapshot equals the replayed state at its seq. Snapshots are
//! never trusted here; they are only compared.

use serde::de::DeserializeOwned;

use super::SnapshotState;

use super::codec::{record_hash, Hash, GENESIS_HASH};
use super::merkle::{Frontier, EMPTY_ROOT};
use super::sled_log::{decode_event_serde, defect_error, SledLog};
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

/// Checks the whole log. `apply(state, seq, at, event)` is the fold (an
/// `Err` is a defect at that seq); `progress(seq)` is called now and then.
/// Returns `Err` only when the storage itself cannot be read.
pub fn verify_log<E, S>(
    log: &SledLog<E>,
    state: S,
    apply: &mut Fold<'_, E, S>,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, StoreError>
where
    E: DeserializeOwned,
    S: SnapshotState + PartialEq,
{
    verify_log_with(log, state, apply, progress, &[])
}

/// [`verify_log`], also noting the Merkle root at each of `roots_at` (the
/// tree sizes of signed heads to check, see [`check_signed_head`]).
pub fn verify_log_with<E, S>(
    log: &SledLog<E>,
    mut state: S,
    apply: &mut Fold<'_, E, S>,
    progress: &mut dyn FnMut(u64),
    roots_at: &[u64],
) -> Result<VerifyReport, StoreError>
where
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
    let mut defect = None;
    for s in log.raw_snapshots()? {
        match s {
            // Written by a build with another state layout: not comparable.
            Ok((h, _)) if h.schema != S::schema() => skipped += 1,
            Ok(s) => snapshots.push(s),
            Err(key) => {
                defect.get_or_insert(Defect {
                    seq: key,
                    what: "snapshot damaged (checksum)".into(),
                });
            }
        }
    }
    let mut next: u64 = 1;
    let mut hash: Hash = GENESIS_HASH;
    let mut last_at = i64::MIN;
    let mut checked = 0usize;
    let mut first_defect: Option<Defect> = None;
    let walked = log.walk_frames(1, |first, frame| {
        let mut fail = |seq: u64, what: String| {
            first_defect = Some(Defect { seq, what });
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
            if r.at < last_at {
                return fail(r.seq, format!("at {} is earlier than the previous record's {last_at}", r.at));
            }
            let ev: E = match decode_event_serde(r) {
                Ok(ev) => ev,
                Err(StoreError::Corrupt { what, .. }) => return fail(r.seq, what),
                Err(e) => return fail(r.seq, e.to_string()),
            };
            hash = record_hash(&hash, r.seq, r.at, r.event);
            if let Err(e) = apply(&mut state, r.seq, r.at, &ev) {
                return fail(r.seq, format!("replay: {e}"));
            }
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
                    return fail(r.seq, "the snapshot at this seq differs from the full replay".into());
                }
            }
            last_at = r.at;
            next = r.seq + 1;
            if next.is_multiple_of(65_536) {
                progress(next);
            }
        }
        true
    });
    match walked {
        Ok(()) => {}
        // sled itself could not read on (its files are damaged): the
        // records before are checked, the rest cannot be.
        Err(StoreError::Sled(e)) if first_defect.is_none() => {
            first_defect = Some(Defect {
                seq: next,
                what: format!("sled cannot read the log from here on (its files are damaged): {e}"),
            });
        }
        Err(StoreError::Sled(_)) => {}
        Err(e) => return Err(e),
    }
    let end = next - 1;
    if first_defect.is_none() {
        let marker = match log.stored_head_marker() {
            Err(StoreError::Sled(e)) => Err(e),
            other => Ok(other?),
        };
        first_defect = match marker {
            Err(e) => Some(Defect {
                seq: end + 1,
                what: format!("sled cannot read the head marker (its files are damaged): {e}"),
            }),
            Ok(marker) => match marker {
            None if end > 0 => Some(Defect { seq: end, what: "head marker missing".into() }),
            None => None,
            Some(None) => Some(Defect { seq: end + 1, what: "head marker unreadable".into() }),
            Some(Some(m)) if m.seq > end => Some(Defect {
                seq: end + 1,
                what: format!(
                    "record missing: the log ends at seq {end} but {} records were acknowledged (truncated)",
                    m.seq
                ),
            }),
            Some(Some(m)) if m.seq < end => Some(Defect {
                seq: m.seq + 1,
                what: format!("records after the acknowledged head {} (never acknowledged)", m.seq),
            }),
            Some(Some(m)) if m.hash != hash => {
                Some(Defect { seq: end, what: "chain hash differs from the head marker".into() })
            }
            Some(Some(_)) => None,
            },
        };
    }
    if first_defect.is_none() {
        if let Some((h, _)) = snapshots.iter().find(|(h, _)| h.seq > end || h.seq == 0) {
            first_defect = Some(Defect {
                seq: h.seq,
                what: "snapshot beyond the end of the log".into(),
            });
        }
    }
    // A damaged snapshot is reported only when the log itself is fine.
    let defect = first_defect.or(defect);
    let head = Head {
        seq: end,
        hash,
        at: if end == 0 { 0 } else { last_at },
    };
    Ok(VerifyReport {
        records: end,
        head,
        snapshots_checked: checked,
        snapshots_skipped: skipped,
        defect,
        merkle_root: frontier.root(),
        roots,
    })
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
