//! License-type names interned to dense ids ([`TypeId`]), looked up once
//! per configuration line by the fold.
//!
//! A name of at most 16 bytes is told apart from every other by its length
//! and its first and last 8 bytes (two overlapping loads), so a lookup
//! hashes and compares three words and never calls `memcmp`; a longer name
//! (up to the 64 the ids allow) is also compared in full. Types are few (a
//! catalogue, not a customer base), so the table is tiny and stays cached.
//! Serialized as the names in id order; the table is rebuilt on load.

use super::account::TypeId;
use super::idmap::{free_slot, probe, Slot};
use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A name's length and its first and last 8 bytes (zero-padded below 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct NameKey {
    len: u64,
    head: u64,
    tail: u64,
}

impl NameKey {
    #[inline]
    fn of(name: &str) -> NameKey {
        let b = name.as_bytes();
        let n = b.len();
        let word = |s: &[u8]| {
            let mut w = [0u8; 8];
            w[..s.len()].copy_from_slice(s);
            u64::from_le_bytes(w)
        };
        let (head, tail) = if n >= 8 {
            (word(&b[..8]), word(&b[n - 8..]))
        } else {
            (word(b), 0)
        };
        NameKey {
            len: n as u64,
            head,
            tail,
        }
    }

    /// Whether the key alone decides equality (the name is ≤ 16 bytes).
    #[inline]
    fn is_whole(&self) -> bool {
        self.len <= 16
    }

    #[inline]
    fn hash(&self) -> u64 {
        (self.head ^ self.tail.rotate_left(29) ^ self.len).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// Names by id, and the table that finds an id by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeNames {
    names: Vec<CompactString>,
    /// Open addressing, linear probing, at most half full: `(key, id)`,
    /// `id == EMPTY` for a free slot.
    slots: Vec<(NameKey, TypeId)>,
}

const EMPTY: TypeId = TypeId::MAX;

impl TypeNames {
    /// The id of `name`, if interned.
    #[inline]
    pub fn get(&self, name: &str) -> Option<TypeId> {
        if self.slots.is_empty() {
            return None;
        }
        let key = NameKey::of(name);
        let i = probe(&self.slots, self.first_slot(&key), |&(k, ty)| {
            if ty == EMPTY {
                Slot::Empty
            } else if k == key && (key.is_whole() || self.names[ty as usize] == name) {
                Slot::Match
            } else {
                Slot::Taken
            }
        })
        .ok()?;
        Some(self.slots[i].1)
    }

    #[inline]
    fn first_slot(&self, key: &NameKey) -> usize {
        (key.hash() >> 32) as usize & (self.slots.len() - 1)
    }

    /// The id of `name`, interning it if new.
    pub fn intern(&mut self, name: &str) -> TypeId {
        if let Some(ty) = self.get(name) {
            return ty;
        }
        let ty = self.names.len() as TypeId;
        self.names.push(CompactString::from(name));
        if self.names.len() * 2 > self.slots.len() {
            self.rebuild();
        } else {
            self.place(NameKey::of(name), ty);
        }
        ty
    }

    /// The name of `ty`.
    pub fn name(&self, ty: TypeId) -> Option<&str> {
        self.names.get(ty as usize).map(|n| n.as_str())
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn place(&mut self, key: NameKey, ty: TypeId) {
        let i = free_slot(&self.slots, self.first_slot(&key), |s| s.1 == EMPTY);
        self.slots[i] = (key, ty);
    }

    /// Sizes the table for the names (at most half full) and refills it.
    fn rebuild(&mut self) {
        let capacity = (self.names.len() * 2).next_power_of_two().max(16);
        self.slots = vec![(NameKey::default(), EMPTY); capacity];
        for ty in 0..self.names.len() {
            let key = NameKey::of(&self.names[ty]);
            self.place(key, ty as TypeId);
        }
    }
}

impl Serialize for TypeNames {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names.serialize(s)
    }
}

impl<'de> Deserialize<'de> for TypeNames {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<CompactString>::deserialize(d)?;
        let mut table = TypeNames::default();
        for name in &names {
            if table.get(name).is_some() {
                return Err(serde::de::Error::custom(format!(
                    "license type {name} is interned twice"
                )));
            }
            table.intern(name);
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_name_and_only_those() {
        let mut t = TypeNames::default();
        // Short, exactly 8, exactly 16, long names sharing head and tail.
        let names = [
            "A",
            "PBX-UC13",
            "PBX-Port13",
            "App(phone)13-xyz",
            "App(phone)13-a-very-long-name-13",
            "App(phone)13-b-very-long-name-13",
        ];
        for (i, n) in names.iter().enumerate() {
            assert_eq!(t.intern(n), i as TypeId);
        }
        for (i, n) in names.iter().enumerate() {
            assert_eq!(t.get(n), Some(i as TypeId), "{n}");
            assert_eq!(t.name(i as TypeId), Some(*n));
            assert_eq!(t.intern(n), i as TypeId, "interning again is a lookup");
        }
        for absent in [
            "",
            "a",
            "PBX-UC1",
            "PBX-UC133",
            "App(phone)13-xy",
            "PBX-Port1\0",
        ] {
            assert_eq!(t.get(absent), None, "{absent:?}");
        }
        // Many names: the table grows and keeps every id.
        for i in 0..500 {
            let n = format!("T{i}-{}", "x".repeat(i % 40));
            let ty = t.intern(&n);
            assert_eq!(t.get(&n), Some(ty));
        }
        assert_eq!(t.get("PBX-Port13"), Some(2));
    }

    #[test]
    fn round_trips_through_bincode() {
        let mut t = TypeNames::default();
        for n in ["PBX-Port13", "PBX-UC13", "App(phone)13"] {
            t.intern(n);
        }
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&t, cfg).unwrap();
        let (back, _): (TypeNames, _) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.get("PBX-UC13"), Some(1));
    }
}
