//! `verify` of a log on PostgreSQL: its part of [`super::verify`]'s walk.
//! The rows are read through the chain-checking reader (density, every
//! record's hash and link); the head row, read once before the walk, is
//! the acknowledged head (truncation, rows never acknowledged).

use super::codec::Hash;
use super::pg_log::PgLog;
use super::sled_log::RawSnapshot;
use super::verify::{Defect, Verifiable, WalkedRecord};
use super::{Head, StoreError};

/// A PostgreSQL log with its head row as it was when the check began.
pub struct PgVerify<'a, E> {
    log: &'a PgLog<E>,
    stored: Head,
}

impl<'a, E> PgVerify<'a, E> {
    /// Reads the head row. `Err` when the database cannot be read.
    pub fn new(log: &'a PgLog<E>) -> Result<Self, StoreError> {
        Ok(PgVerify {
            stored: log.stored_head()?,
            log,
        })
    }
}

impl<E> Verifiable for PgVerify<'_, E> {
    fn raw_snapshots(&self) -> Result<Vec<RawSnapshot>, StoreError> {
        self.log.raw_snapshots()
    }

    fn walk_records(
        &self,
        visit: &mut dyn FnMut(&WalkedRecord<'_>) -> bool,
    ) -> Result<Option<Defect>, StoreError> {
        for item in self.log.read_raw_records(1, self.stored.seq) {
            let r = match item {
                Ok(r) => r,
                Err(StoreError::Corrupt { seq, what }) => return Ok(Some(Defect { seq, what })),
                Err(e) => return Err(e),
            };
            let walked = WalkedRecord {
                seq: r.seq,
                at: r.at,
                version: r.version,
                payload: &r.payload,
                hash: r.hash,
            };
            if !visit(&walked) {
                break;
            }
        }
        Ok(None)
    }

    fn check_head(&self, end: u64, hash: &Hash) -> Result<Option<Defect>, StoreError> {
        let stored = &self.stored;
        let last_row = self.log.last_record_seq()?;
        Ok(if last_row > stored.seq {
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
        } else if stored.hash != *hash {
            Some(Defect {
                seq: end,
                what: "chain hash differs from the head row".into(),
            })
        } else {
            None
        })
    }
}
