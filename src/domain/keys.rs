//! Redeemed activation keys (spec §7): key → the first top-up's receipt.
//!
//! The fold inserts one key per top-up, so this table is the largest part
//! of the state (a million top-ups, a million keys). It is laid out for
//! that: the redemptions are appended in order to one vector (key inline),
//! and the hash table only holds `(index, 32-bit hash)` pairs — 8 bytes a
//! slot instead of a key and a receipt — so a lookup touches a small table
//! and growing it never rehashes a key.

use super::ledger::KeyUse;
use compact_str::CompactString;
use hashbrown::HashTable;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::hash::BuildHasher;

/// Activation key → its redemption, in redemption order.
#[derive(Clone, Default)]
pub struct KeyBook {
    uses: Vec<(CompactString, KeyUse)>,
    table: HashTable<(u32, u32)>,
    hasher: foldhash::fast::RandomState,
}

/// The table's 64-bit hash from the 32 bits kept in a slot: hashbrown takes
/// its tag from the top bits and the bucket from the low bits.
fn wide(h: u32) -> u64 {
    (u64::from(h) << 32) | u64::from(h)
}

impl KeyBook {
    fn hash(&self, key: &str) -> u32 {
        let h = self.hasher.hash_one(key);
        (h ^ (h >> 32)) as u32
    }

    /// The redemption of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&KeyUse> {
        let h = self.hash(key);
        self.table
            .find(wide(h), |&(i, hh)| {
                hh == h && self.uses[i as usize].0 == key
            })
            .map(|&(i, _)| &self.uses[i as usize].1)
    }

    /// Records a redemption; `false` (and nothing changes) when the key was
    /// already redeemed, or the table is full (2^32 keys).
    pub fn insert(&mut self, key: &str, used: KeyUse) -> bool {
        let Ok(index) = u32::try_from(self.uses.len()) else {
            return false;
        };
        let h = self.hash(key);
        let uses = &self.uses;
        match self.table.entry(
            wide(h),
            |&(i, hh)| hh == h && uses[i as usize].0 == key,
            |&(_, hh)| wide(hh),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert((index, h));
                self.uses.push((CompactString::from(key), used));
                true
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
            .entries(self.uses.iter().map(|(k, u)| (k, u)))
            .finish()
    }
}

/// Stored (in snapshots) as the redemptions in order; the table is rebuilt.
impl Serialize for KeyBook {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.uses.serialize(s)
    }
}

impl<'de> Deserialize<'de> for KeyBook {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyBook, D::Error> {
        let uses = Vec::<(CompactString, KeyUse)>::deserialize(d)?;
        let mut book = KeyBook {
            table: HashTable::with_capacity(uses.len()),
            uses: Vec::with_capacity(uses.len()),
            hasher: Default::default(),
        };
        for (key, used) in uses {
            if !book.insert(&key, used) {
                return Err(serde::de::Error::custom(format!(
                    "activation key {key} appears twice in the snapshot"
                )));
            }
        }
        Ok(book)
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
