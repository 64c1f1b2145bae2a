//! `verify` of a log on PostgreSQL: the checks of [`super::verify`] over
//! rows instead of frames — density, every record's hash and chain link,
//! `at` order, the head row (truncation, rows never acknowledged), a full
//! replay with serde, and every stored snapshot against the replay.

use serde::de::DeserializeOwned;

use super::codec::{Hash, GENESIS_HASH};
use super::merkle::{Frontier, EMPTY_ROOT};
use super::pg_log::PgLog;
use super::sled_log::decode_event_serde;
use super::verify::{Defect, Fold, TreeRoot, VerifyReport};
use super::{Head, Indexed, SnapshotState, StoreError};

/// Checks the whole log on PostgreSQL (see the module). `Err` only when the
/// database cannot be read at all.
pub fn verify_pg_log<E, S>(
    log: &PgLog<E>,
    state: S,
    apply: &mut Fold<'_, E, S>,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, StoreError>
where
    E: DeserializeOwned + Indexed + serde::Serialize,
    S: SnapshotState + PartialEq,
{
    verify_pg_log_with(log, state, apply, progress, &[])
}

/// [`verify_pg_log`], also noting the Merkle root at each of `roots_at`
/// (as [`super::verify::verify_log_with`] does).
pub fn verify_pg_log_with<E, S>(
    log: &PgLog<E>,
    mut state: S,
    apply: &mut Fold<'_, E, S>,
    progress: &mut dyn FnMut(u64),
    roots_at: &[u64],
) -> Result<VerifyReport, StoreError>
where
    E: DeserializeOwned + Indexed + serde::Serialize,
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
    let stored = log.stored_head()?;
    let mut end = 0u64;
    let mut hash: Hash = GENESIS_HASH;
    let mut last_at = i64::MIN;
    let mut checked = 0usize;
    let mut defect: Option<Defect> = None;
    for item in log.read_raw_records(1, stored.seq) {
        let r = match item {
            Ok(r) => r,
            Err(StoreError::Corrupt { seq, what }) => {
                defect = Some(Defect { seq, what });
                break;
            }
            Err(e) => return Err(e),
        };
        let fail = |what: String| Some(Defect { seq: r.seq, what });
        if r.at < last_at {
            defect = fail(format!(
                "at {} is earlier than the previous record's {last_at}",
                r.at
            ));
            break;
        }
        let ev: E = match decode_event_serde(&super::codec::RawRecord {
            seq: r.seq,
            at: r.at,
            version: r.version,
            event: &r.payload,
        }) {
            Ok(ev) => ev,
            Err(StoreError::Corrupt { what, .. }) => {
                defect = fail(what);
                break;
            }
            Err(e) => {
                defect = fail(e.to_string());
                break;
            }
        };
        if let Err(e) = apply(&mut state, r.seq, r.at, &ev) {
            defect = fail(format!("replay: {e}"));
            break;
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
            if !same && defect.is_none() {
                defect = fail("the snapshot at this seq differs from the full replay".into());
            }
        }
        if defect.is_some() {
            break;
        }
        last_at = r.at;
        end = r.seq;
        if (end + 1).is_multiple_of(65_536) {
            progress(end + 1);
        }
    }
    if defect.is_none() {
        let last_row = log.last_record_seq()?;
        defect = if last_row > stored.seq {
            Some(Defect {
                seq: stored.seq + 1,
                what: format!(
                    "records after the acknowledged head {} (never acknowledged)",
                    stored.seq
                ),
            })
        } else if end < stored.seq {
            Some(Defect {
                seq: end + 1,
                what: format!(
                    "record missing: the log ends at seq {end} but {} records were acknowledged (truncated)",
                    stored.seq
                ),
            })
        } else if stored.hash != hash {
            Some(Defect {
                seq: end,
                what: "chain hash differs from the head row".into(),
            })
        } else {
            None
        };
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
        defect: defect.or(snap_defect),
        merkle_root: frontier.root(),
        roots,
    })
}
