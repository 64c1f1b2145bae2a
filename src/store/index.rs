//! The per-account index: account id → its record seqs, in memory.
//!
//! Measured on sled 0.34, a persisted per-batch index (one key per account
//! per append) cost ~190 bytes of disk and ~29 µs of write per event:
//! random inserts rewrite whole sled leaves. So the index lives in memory,
//! is saved next to each state snapshot (one value, sequential), and is
//! caught up from the log after it (`through` is the last seq indexed).
//!
//! Layout for a fast replay: each record costs two 4-byte entries appended
//! in seq order — the account's number, and the distance back to the
//! account's previous record — plus one lookup of the account's number and
//! its last seq; no per-account list grows while the log is scanned. An
//! account's seqs are collected when asked for by walking its back-links
//! from its last record: the work is that account's records, not the log.

use std::collections::BTreeMap;

use super::codec::{get_uvarint, put_uvarint};
use crate::domain::idmap::IdMap;

/// Layout version of a saved index.
const INDEX_VERSION_1: u8 = 1;

/// The slot of a record that touches no account (a price list).
const NO_ACCOUNT: u32 = u32::MAX;

/// Account id → seqs (ascending), complete for seqs `1..=through`.
#[derive(Debug, Default, Clone)]
pub struct AccountIndex {
    /// Last seq folded into the index.
    pub through: u64,
    /// Account id → its number.
    numbers: IdMap<u32>,
    /// `slots[seq - 1]`: the number of the account record `seq` touches.
    slots: Vec<u32>,
    /// `back[seq - 1]`: `seq` minus the seq of the same account's previous
    /// record; 0 for its first, [`FAR`] when the distance does not fit.
    back: Vec<u32>,
    /// By account number: the seq of its last record.
    last: Vec<u64>,
}

/// A back-link too long for 32 bits: the walk finishes with a scan.
const FAR: u32 = u32::MAX;

impl AccountIndex {
    /// Records that `seq` (which must be `through + 1`) touches `account_id`.
    pub fn add(&mut self, seq: u64, account_id: Option<&str>) {
        debug_assert_eq!(seq, self.through + 1);
        let (slot, back) = match account_id {
            None => (NO_ACCOUNT, 0),
            Some(id) => match self.numbers.get(id) {
                Some(n) => {
                    let last = std::mem::replace(&mut self.last[n as usize], seq);
                    (n, u32::try_from(seq - last).unwrap_or(FAR))
                }
                None => {
                    let n = self.numbers.len() as u32;
                    self.numbers.insert(id, n);
                    self.last.push(seq);
                    (n, 0)
                }
            },
        };
        self.slots.push(slot);
        self.back.push(back);
        self.through = seq;
    }

    /// [`AccountIndex::add`] for a run of records (those already indexed
    /// are skipped), prefetching the map slots of the records ahead.
    pub fn add_all(&mut self, records: &[(u64, Option<&str>)]) {
        const AHEAD: usize = 8;
        for (i, (seq, id)) in records.iter().enumerate() {
            if let Some((_, Some(next))) = records.get(i + AHEAD) {
                self.numbers.prefetch(next);
            }
            if *seq == self.through + 1 {
                self.add(*seq, *id);
            }
        }
    }

    /// The seqs of one account, ascending (empty when unknown).
    pub fn seqs(&self, account_id: &str) -> Vec<u64> {
        let Some(n) = self.numbers.get(account_id) else {
            return Vec::new();
        };
        let mut seqs = Vec::new();
        let mut seq = self.last[n as usize];
        loop {
            seqs.push(seq);
            match self.back[(seq - 1) as usize] {
                0 => break,
                FAR => {
                    // Over 4 G records since the previous one: scan for the rest.
                    let below = (seq - 1) as usize;
                    seqs.extend(
                        self.slots[..below]
                            .iter()
                            .enumerate()
                            .rev()
                            .filter(|(_, s)| **s == n)
                            .map(|(i, _)| i as u64 + 1),
                    );
                    break;
                }
                d => seq -= u64::from(d),
            }
        }
        seqs.reverse();
        seqs
    }

    /// Every account's seqs, accounts sorted by id.
    fn grouped(&self) -> BTreeMap<&str, Vec<u64>> {
        let mut by_number: Vec<Vec<u64>> = vec![Vec::new(); self.numbers.len()];
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(seqs) = by_number.get_mut(*s as usize) {
                seqs.push(i as u64 + 1);
            }
        }
        self.numbers
            .iter()
            .map(|(id, n)| (id, std::mem::take(&mut by_number[n as usize])))
            .collect()
    }

    /// Layout: `version u8 (=1) || through u64 BE || crc32 u32 BE (of the
    /// rest) || count LEB128 || count × (id_len LEB128, id, n LEB128, n ×
    /// seq delta LEB128)`, accounts sorted by id (deterministic bytes).
    pub fn encode(&self) -> Vec<u8> {
        let grouped = self.grouped();
        let mut body = Vec::with_capacity(16 * grouped.len() + 2 * self.slots.len());
        put_uvarint(&mut body, grouped.len() as u64);
        for (id, seqs) in &grouped {
            put_uvarint(&mut body, id.len() as u64);
            body.extend_from_slice(id.as_bytes());
            put_uvarint(&mut body, seqs.len() as u64);
            let mut prev = 0;
            for &s in seqs {
                put_uvarint(&mut body, s - prev);
                prev = s;
            }
        }
        let mut out = Vec::with_capacity(13 + body.len());
        out.push(INDEX_VERSION_1);
        out.extend_from_slice(&self.through.to_be_bytes());
        out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Inverse of [`encode`](Self::encode); `None` when damaged, when a seq
    /// is claimed twice, or when it covers more than `max_through` records
    /// (the log's head: a saved index never runs ahead of the log).
    pub fn decode(buf: &[u8], max_through: u64) -> Option<AccountIndex> {
        if buf.len() < 13 || buf[0] != INDEX_VERSION_1 {
            return None;
        }
        let through = u64::from_be_bytes(buf[1..9].try_into().ok()?);
        let crc = u32::from_be_bytes(buf[9..13].try_into().ok()?);
        let body = &buf[13..];
        if through > max_through || crc32fast::hash(body) != crc {
            return None;
        }
        let mut slots = vec![NO_ACCOUNT; usize::try_from(through).ok()?];
        let mut pos = 0;
        let n = get_uvarint(body, &mut pos)?;
        let mut numbers = IdMap::new();
        let mut back = vec![0u32; slots.len()];
        let mut last = Vec::new();
        for number in 0..n {
            let number = u32::try_from(number).ok().filter(|n| *n != NO_ACCOUNT)?;
            let len = usize::try_from(get_uvarint(body, &mut pos)?).ok()?;
            let id = std::str::from_utf8(body.get(pos..pos.checked_add(len)?)?).ok()?;
            pos += len;
            let count = get_uvarint(body, &mut pos)?;
            if count == 0 {
                return None; // the encoder never writes an account without records
            }
            let mut s = 0u64;
            for _ in 0..count {
                let delta = get_uvarint(body, &mut pos)?;
                if delta == 0 {
                    return None; // a seq claimed twice
                }
                let prev = s;
                s = s.checked_add(delta)?;
                let i = usize::try_from(s - 1).ok()?;
                let slot = slots.get_mut(i)?;
                if *slot != NO_ACCOUNT {
                    return None;
                }
                *slot = number;
                back[i] = if prev == 0 {
                    0
                } else {
                    u32::try_from(delta).unwrap_or(FAR)
                };
            }
            last.push(s);
            if numbers.insert(id, number).is_some() {
                return None;
            }
        }
        (pos == body.len()).then_some(AccountIndex {
            through,
            numbers,
            slots,
            back,
            last,
        })
    }
}

/// Two indexes are equal when they give every account the same seqs
/// (account numbers are an internal detail).
impl PartialEq for AccountIndex {
    fn eq(&self, other: &Self) -> bool {
        self.through == other.through && self.grouped() == other.grouped()
    }
}
impl Eq for AccountIndex {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let mut ix = AccountIndex::default();
        for (seq, id) in [(1, Some("a")), (2, None), (3, Some("b")), (4, Some("a"))] {
            ix.add(seq, id);
        }
        assert_eq!(ix.seqs("a"), vec![1, 4]);
        assert_eq!(ix.seqs("b"), vec![3]);
        assert_eq!(ix.seqs("zz"), Vec::<u64>::new());
        // A long gap: back-links to the first record.
        for seq in 5..=1000 {
            ix.add(seq, Some(if seq % 250 == 0 { "b" } else { "c" }));
        }
        assert_eq!(ix.seqs("b"), vec![3, 250, 500, 750, 1000]);
        assert_eq!(ix.seqs("a"), vec![1, 4]);
        assert_eq!(ix.seqs("c").len(), 1000 - 4 - 4);
        // A back-link too long for 32 bits (over 4 G records) ends the walk
        // with a scan of what lies below it: the same seqs.
        let mut far = ix.clone();
        far.back[750 - 1] = FAR;
        assert_eq!(far.seqs("b"), vec![3, 250, 500, 750, 1000]);
        let bytes = ix.encode();
        let back = AccountIndex::decode(&bytes, 1000).expect("decodes");
        assert_eq!(back, ix);
        assert_eq!(back.seqs("a"), vec![1, 4]);
        assert_eq!(back.seqs("b"), vec![3, 250, 500, 750, 1000]);
        assert_eq!(
            (back.back.clone(), back.last.clone()),
            (ix.back.clone(), ix.last.clone())
        );
        assert_eq!(back.encode(), bytes, "deterministic bytes");
        assert_eq!(AccountIndex::decode(&bytes, 999), None, "ahead of the log");
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(AccountIndex::decode(&bad, 1000), None);
    }
}
