//! The auditor's full check of a log: density, checksums, the hash chain,
//! the head marker (truncation), a full replay from seq 1, and that every
//! stored snapshot equals the replayed state at its seq. Snapshots are
//! never trusted here; they are only compared.

use serde::de::DeserializeOwned;

use super::SnapshotState;

use super::codec::{record_hash, Hash, GENESIS_HASH};
use super::sled_log::{decode_event_serde, defect_error, SledLog};
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
    mut state: S,
    apply: &mut Fold<'_, E, S>,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, StoreError>
where
    E: DeserializeOwned,
    S: SnapshotState + PartialEq,
{
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
    log.walk_frames(1, |first, frame| {
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
    })?;
    let end = next - 1;
    if first_defect.is_none() {
        first_defect = match log.stored_head_marker()? {
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
    })
}
