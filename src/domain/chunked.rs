//! An append-only vector kept in fixed-size chunks of about 1 MiB: growing
//! never moves what is stored. A doubling `Vec` of tens of megabytes is
//! copied by `realloc` at each doubling, and a replay then faults its pages
//! twice; here each page is written, and faulted, once. Used for the
//! largest parts of the state: the accounts and the redeemed keys.
//!
//! Serialized as a plain sequence (the bytes of a `Vec<T>`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, PartialEq, Eq)]
pub struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    /// log2 of the entries per chunk: about 1 MiB of them, at least one.
    const BITS: u32 = (1usize << 20)
        .div_ceil(if std::mem::size_of::<T>() == 0 {
            1
        } else {
            std::mem::size_of::<T>()
        })
        .next_power_of_two()
        .trailing_zeros();
    const MASK: usize = (1 << Self::BITS) - 1;

    pub fn new() -> Chunked<T> {
        Chunked::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            // By length, not capacity: a clone's chunks are only as large
            // as their contents, and still hold `1 << BITS` entries each.
            Some(chunk) if chunk.len() < 1 << Self::BITS => chunk.push(value),
            _ => {
                let mut chunk = Vec::with_capacity(1 << Self::BITS);
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> Self::BITS)?.get(i & Self::MASK)
    }

    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.chunks
            .get_mut(i >> Self::BITS)?
            .get_mut(i & Self::MASK)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flatten()
    }
}

impl<T> std::ops::Index<usize> for Chunked<T> {
    type Output = T;
    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.chunks[i >> Self::BITS][i & Self::MASK]
    }
}

impl<T> std::ops::IndexMut<usize> for Chunked<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i >> Self::BITS][i & Self::MASK]
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Chunked<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Serialize> Serialize for Chunked<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        // With its length up front (bincode needs it; a flattened iterator
        // does not report it).
        let mut seq = s.serialize_seq(Some(self.len))?;
        for item in self.iter() {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

/// Read straight into chunks (no whole-length `Vec` on the way).
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Chunked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Items<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Items<T> {
            type Value = Chunked<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Chunked<T>, A::Error> {
                let mut out = Chunked::new();
                while let Some(item) = seq.next_element()? {
                    out.push(item);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Items(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_across_chunks_and_round_trips_as_a_vec() {
        let mut c: Chunked<u64> = Chunked::new();
        let n = 3 * (1usize << Chunked::<u64>::BITS) + 5;
        for i in 0..n as u64 {
            c.push(i * 3);
        }
        assert_eq!(c.len(), n);
        assert_eq!(c.chunks.len(), 4, "1 MiB chunks of 8-byte entries");
        assert_eq!(c[n - 1], (n as u64 - 1) * 3);
        assert_eq!(c.get(n), None);
        c[7] = 1;
        assert_eq!(c.get(7), Some(&1));
        assert_eq!(c.iter().count(), n);
        let cfg = bincode::config::standard();
        let as_vec: Vec<u64> = c.iter().copied().collect();
        let bytes = bincode::serde::encode_to_vec(&c, cfg).unwrap();
        assert_eq!(bytes, bincode::serde::encode_to_vec(&as_vec, cfg).unwrap());
        let (back, _): (Chunked<u64>, _) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
        assert_eq!(back, c);
        // A clone (its chunks sized to their contents) keeps indexing right
        // as it grows.
        let mut small: Chunked<u64> = Chunked::new();
        small.push(0);
        let mut copy = small.clone();
        for i in 1..n as u64 {
            copy.push(i * 3);
        }
        assert_eq!(copy.len(), n);
        assert!((1..n).all(|i| copy[i] == i as u64 * 3 && copy.get(i) == Some(&(i as u64 * 3))));
        let mut twice = c.clone();
        twice.push(42);
        assert_eq!(twice[n], 42);
        // Big entries: still about 1 MiB a chunk, at least one entry.
        assert_eq!(1usize << Chunked::<[u8; 752]>::BITS, 2048);
        assert_eq!(1usize << Chunked::<[u8; 4 << 20]>::BITS, 1);
    }
}
