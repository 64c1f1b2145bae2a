//! A hash map from an inline id (`CompactString`) to a small value, laid
//! out for the fold: open addressing with linear probing, the id stored in
//! the slot (no pointer to chase), at most half full. Unlike `std`'s map it
//! can prefetch the slot an id probes first ([`IdMap::prefetch`]), so the
//! fold starts loading the slots of the events ahead before it looks them
//! up (see `Ledger::apply_quiet_all`).
//!
//! The hash is foldhash, seeded per map when it is created, so ids cannot
//! be chosen to collide on every ledger. Serialized as its entries; a
//! deserialized map is rebuilt with a fresh seed.

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::hash::BuildHasher;

/// What a probe finds in a slot.
pub(crate) enum Slot {
    Empty,
    Match,
    Taken,
}

/// Linear probing over a power-of-two table that is never full, from
/// `start`: `Ok(i)` for the first slot `look` says matches, `Err(i)` for
/// the first empty one before it. Shared by `IdMap` and `KeyBook`.
#[inline]
pub(crate) fn probe<S>(
    slots: &[S],
    start: usize,
    mut look: impl FnMut(&S) -> Slot,
) -> Result<usize, usize> {
    let mask = slots.len() - 1;
    let mut i = start;
    loop {
        match look(&slots[i]) {
            Slot::Empty => return Err(i),
            Slot::Match => return Ok(i),
            Slot::Taken => i = (i + 1) & mask,
        }
    }
}

/// The first empty slot from `start` (refilling a table as it grows).
#[inline]
pub(crate) fn free_slot<S>(slots: &[S], start: usize, is_empty: impl Fn(&S) -> bool) -> usize {
    probe(slots, start, |s| {
        if is_empty(s) {
            Slot::Empty
        } else {
            Slot::Taken
        }
    })
    .unwrap_or_else(|i| i)
}

#[derive(Clone)]
pub struct IdMap<V> {
    hasher: foldhash::fast::FixedState,
    len: usize,
    slots: Vec<Option<(CompactString, V)>>,
}

impl<V: Copy> Default for IdMap<V> {
    fn default() -> Self {
        IdMap::new()
    }
}

impl<V: Copy> IdMap<V> {
    pub fn new() -> IdMap<V> {
        let seed = foldhash::fast::RandomState::default().hash_one(0x15c_u64);
        IdMap {
            hasher: foldhash::fast::FixedState::with_seed(seed),
            len: 0,
            slots: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The hash `id` probes from in this map. The seed never changes, so a
    /// hash taken once stays valid as the map grows (the fold hashes each id
    /// of an event once, events ahead, and reuses it).
    #[inline]
    pub fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    #[inline]
    fn first_slot(&self, hash: u64) -> usize {
        (hash as usize) & self.slots.len().wrapping_sub(1)
    }

    /// Starts loading the slot `id` probes first (a hint: no effect on
    /// what the map holds).
    #[inline]
    pub fn prefetch(&self, id: &str) {
        self.prefetch_hashed(self.hash(id));
    }

    /// [`IdMap::prefetch`] by the id's [`IdMap::hash`].
    #[inline]
    pub fn prefetch_hashed(&self, hash: u64) {
        if !self.slots.is_empty() {
            super::prefetch::lines(&self.slots[self.first_slot(hash)], 1);
        }
    }

    #[inline]
    pub fn get(&self, id: &str) -> Option<V> {
        self.get_hashed(self.hash(id), id)
    }

    /// [`IdMap::get`] given `hash == self.hash(id)`.
    #[inline]
    pub fn get_hashed(&self, hash: u64, id: &str) -> Option<V> {
        if self.slots.is_empty() {
            return None;
        }
        let i = self.find(hash, id).ok()?;
        self.slots[i].as_ref().map(|(_, value)| *value)
    }

    /// Where `id` is (`Ok`) or the empty slot where it goes (`Err`); the
    /// table is not empty.
    #[inline]
    fn find(&self, hash: u64, id: &str) -> Result<usize, usize> {
        debug_assert_eq!(hash, self.hash(id), "stale hash");
        probe(&self.slots, self.first_slot(hash), |slot| match slot {
            None => Slot::Empty,
            Some((key, _)) if key.as_str() == id => Slot::Match,
            Some(_) => Slot::Taken,
        })
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, id: &str, value: V) -> Option<V> {
        self.insert_hashed(self.hash(id), id, value)
    }

    /// [`IdMap::insert`] given `hash == self.hash(id)`.
    pub fn insert_hashed(&mut self, hash: u64, id: &str, value: V) -> Option<V> {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let found = self.find(hash, id);
        match (found, &mut self.slots[found.unwrap_or_else(|i| i)]) {
            (Ok(_), Some((_, old))) => Some(std::mem::replace(old, value)),
            (_, slot) => {
                *slot = Some((CompactString::from(id), value));
                self.len += 1;
                None
            }
        }
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![None; capacity]);
        for (key, value) in old.into_iter().flatten() {
            let i = free_slot(
                &self.slots,
                self.first_slot(self.hash(&key)),
                Option::is_none,
            );
            self.slots[i] = Some((key, value));
        }
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, V)> + '_ {
        self.slots
            .iter()
            .flatten()
            .map(|(key, value)| (key.as_str(), *value))
    }
}

impl<V: Copy + PartialEq> PartialEq for IdMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().all(|(id, v)| other.get(id) == Some(v))
    }
}
impl<V: Copy + Eq> Eq for IdMap<V> {}

impl<V: Copy + std::fmt::Debug> std::fmt::Debug for IdMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V: Copy + Serialize> Serialize for IdMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        // bincode needs the length up front.
        let mut seq = s.serialize_seq(Some(self.len))?;
        for entry in self.iter() {
            seq.serialize_element(&entry)?;
        }
        seq.end()
    }
}

impl<'de, V: Copy + Deserialize<'de>> Deserialize<'de> for IdMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IdMap<V>, D::Error> {
        let entries = Vec::<(CompactString, V)>::deserialize(d)?;
        let mut map = IdMap::new();
        for (id, value) in entries {
            if map.insert(&id, value).is_some() {
                return Err(serde::de::Error::custom(format!("id {id} appears twice")));
            }
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_it_was_given_and_round_trips() {
        let mut m = IdMap::<u32>::new();
        for i in 0..20_000u32 {
            assert_eq!(m.insert(&format!("acct-{i}"), i), None);
        }
        assert_eq!(m.insert("acct-7", 70), Some(7));
        assert_eq!(m.len(), 20_000);
        assert_eq!(m.get("acct-7"), Some(70));
        assert_eq!(m.get("acct-19999"), Some(19_999));
        assert_eq!(m.get("acct-20000"), None);
        assert!(!m.contains_key(""));
        m.prefetch("acct-1");
        let bytes = bincode::serde::encode_to_vec(&m, bincode::config::standard()).unwrap();
        let (back, _): (IdMap<u32>, _) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.get("acct-12345"), Some(12_345));
        assert!(IdMap::<u32>::new().get("x").is_none());
    }
}
