//! Redeemed activation keys (spec §7): key → the first top-up's receipt.
//!
//! The fold inserts one key per top-up, so this table is the largest part
//! of the state (a million top-ups, a million keys). It is laid out for
//! that: the redemptions are appended in order to one vector (key inline),
//! and the hash table (open addressing, linear probing, at most half full)
//! only holds `(tag, index)` pairs — 8 bytes a slot instead of a key and a
//! receipt — so a lookup touches a small table, growing it never rehashes a
//! key, and the fold can prefetch the slot of a top-up events ahead
//! ([`KeyBook::prefetch`]).

use super::chunked::Chunked;
use super::idmap::{free_slot, probe, Slot};
use super::ledger::KeyUse;
use super::{Nano, Receipt};
use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::hash::BuildHasher;

/// A redemption as stored: 56 bytes, 8-aligned (a `KeyUse` takes 80 with
/// i128's 16-byte alignment). There is one per top-up, and each new page of
/// this vector is a page fault, so its size shows in a cold replay.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stored {
    account: u32,
    has_balance: u32,
    seq: u64,
    at: i64,
    amount: [u64; 2],
    balance: [u64; 2],
}

fn split(v: i128) -> [u64; 2] {
    let u = v as u128;
    [u as u64, (u >> 64) as u64]
}

fn join(p: [u64; 2]) -> i128 {
    ((u128::from(p[1]) << 64) | u128::from(p[0])) as i128
}

impl Stored {
    fn pack(u: &KeyUse) -> Stored {
        Stored {
            account: u.account,
            has_balance: u32::from(u.receipt.balance.is_some()),
            seq: u.receipt.seq,
            at: u.receipt.at,
            amount: split(u.amount.0),
            balance: split(u.receipt.balance.map_or(0, |b| b.0)),
        }
    }

    fn unpack(&self) -> KeyUse {
        KeyUse {
            account: self.account,
            amount: Nano(join(self.amount)),
            receipt: Receipt {
                seq: self.seq,
                at: self.at,
                balance: (self.has_balance != 0).then(|| Nano(join(self.balance))),
            },
        }
    }
}

/// Activation key → its redemption, in redemption order.
#[derive(Clone)]
pub struct KeyBook {
    uses: Chunked<(CompactString, Stored)>,
    /// `(tag, index in uses)`; tag 0 marks an empty slot. A key's first
    /// slot comes from its tag, so the table regrows without the keys.
    slots: Vec<(u32, u32)>,
    hasher: foldhash::fast::FixedState,
}

impl Default for KeyBook {
    fn default() -> Self {
        let seed = foldhash::fast::RandomState::default().hash_one(0x6b_u64);
        KeyBook {
            uses: Chunked::default(),
            slots: Vec::new(),
            hasher: foldhash::fast::FixedState::with_seed(seed),
        }
    }
}

impl KeyBook {
    /// A key's tag: 32 bits of its hash, never 0. The seed never changes,
    /// so the fold takes it once, events ahead, and reuses it.
    #[inline]
    pub fn tag(&self, key: &str) -> u32 {
        ((self.hasher.hash_one(key) >> 32) as u32) | 1
    }

    #[inline]
    fn first_slot(&self, tag: u32) -> usize {
        (tag >> 1) as usize & self.slots.len().wrapping_sub(1)
    }

    /// Starts loading the slot `key` probes first (a hint only).
    #[inline]
    pub fn prefetch(&self, key: &str) {
        self.prefetch_tagged(self.tag(key));
    }

    /// [`KeyBook::prefetch`] by the key's [`KeyBook::tag`].
    #[inline]
    pub fn prefetch_tagged(&self, tag: u32) {
        if !self.slots.is_empty() {
            super::prefetch::lines(&self.slots[self.first_slot(tag)], 1);
        }
    }

    /// Where `key` is (`Ok(index in uses)`) or the empty slot where it goes.
    fn probe(&self, tag: u32, key: &str) -> Result<u32, usize> {
        probe(&self.slots, self.first_slot(tag), |&(t, index)| {
            if t == 0 {
                Slot::Empty
            } else if t == tag && self.uses[index as usize].0 == key {
                Slot::Match
            } else {
                Slot::Taken
            }
        })
        .map(|i| self.slots[i].1)
    }

    /// The redemption of `key`, if any.
    pub fn get(&self, key: &str) -> Option<KeyUse> {
        if self.slots.is_empty() {
            return None;
        }
        let index = self.probe(self.tag(key), key).ok()?;
        Some(self.uses[index as usize].1.unpack())
    }

    /// Records a redemption; `false` (and nothing changes) when the key was
    /// already redeemed, or the table is full (2^31 keys).
    pub fn insert(&mut self, key: &str, used: KeyUse) -> bool {
        self.insert_tagged(self.tag(key), key, used)
    }

    /// [`KeyBook::insert`] given `tag == self.tag(key)`.
    pub fn insert_tagged(&mut self, tag: u32, key: &str, used: KeyUse) -> bool {
        debug_assert_eq!(tag, self.tag(key), "stale tag");
        let Ok(index) = u32::try_from(self.uses.len()) else {
            return false;
        };
        if index >= 1 << 31 {
            return false;
        }
        if (self.uses.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        match self.probe(tag, key) {
            Ok(_) => false,
            Err(slot) => {
                self.slots[slot] = (tag, index);
                self.uses
                    .push((CompactString::from(key), Stored::pack(&used)));
                true
            }
        }
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(64);
        let old = std::mem::replace(&mut self.slots, vec![(0, 0); capacity]);
        for (tag, index) in old {
            if tag != 0 {
                let i = free_slot(&self.slots, self.first_slot(tag), |s| s.0 == 0);
                self.slots[i] = (tag, index);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.uses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.uses.is_empty()
    }
}

impl PartialEq for KeyBook {
    fn eq(&self, other: &Self) -> bool {
        self.uses == other.uses
    }
}
impl Eq for KeyBook {}

impl std::fmt::Debug for KeyBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.uses.iter().map(|(k, u)| (k, u.unpack())))
            .finish()
    }
}

/// Stored (in snapshots) as the redemptions in order; the table is rebuilt.
impl Serialize for KeyBook {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.uses.len()))?;
        for (key, used) in self.uses.iter() {
            seq.serialize_element(&(key, used.unpack()))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for KeyBook {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyBook, D::Error> {
        // Inserted as read (no whole-length `Vec` on the way).
        struct Uses;
        impl<'de> serde::de::Visitor<'de> for Uses {
            type Value = KeyBook;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence of redemptions")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<KeyBook, A::Error> {
                let mut book = KeyBook::default();
                while let Some((key, used)) = seq.next_element::<(CompactString, KeyUse)>()? {
                    if !book.insert(&key, used) {
                        return Err(serde::de::Error::custom(format!(
                            "activation key {key} appears twice in the snapshot"
                        )));
                    }
                }
                Ok(book)
            }
        }
        d.deserialize_seq(Uses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Nano, Receipt};

    fn used(seq: u64) -> KeyUse {
        KeyUse {
            account: 0,
            amount: Nano(1),
            receipt: Receipt {
                seq,
                at: 0,
                balance: Some(Nano(1)),
            },
        }
    }

    #[test]
    fn inserts_finds_refuses_twice_and_round_trips() {
        let mut book = KeyBook::default();
        for i in 0..10_000u64 {
            assert!(book.insert(&format!("KEY-{i:08}"), used(i)));
        }
        assert!(
            !book.insert("KEY-00000042", used(1)),
            "a key is redeemed once"
        );
        assert_eq!(book.len(), 10_000);
        assert_eq!(book.get("KEY-00000042").map(|u| u.receipt.seq), Some(42));
        assert!(book.get("KEY-99999999").is_none());
        let bytes = bincode::serde::encode_to_vec(&book, bincode::config::standard()).unwrap();
        let (back, _): (KeyBook, _) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, book);
        assert_eq!(back.get("KEY-00009999").map(|u| u.receipt.seq), Some(9999));
    }
}
