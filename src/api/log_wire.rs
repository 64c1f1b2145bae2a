//! The `ReadLog` message (`LogRecord`, spec §13) in its protobuf wire form.
//!
//! A `ReadLog` stream carries a whole log. Building a prost struct per record
//! (three reference-counted byte slices each) and encoding it again cost the
//! server more than reading the records from the store, and decoding one per
//! record cost the auditor about as much. This module owns the message's
//! encoding instead: the server writes a chunk of stored records straight into
//! one buffer, a message per batch ([`LogRecord::batches`]); a receiver keeps
//! each message's bytes as they arrived and reads its records in place
//! ([`LogRecord::records`]), checking the wire format as it goes.
//!
//! The bytes are prost's to the byte (fields in tag order, proto3 defaults
//! omitted), and any valid encoding of the message is read (fields in any
//! order, unknown fields skipped): the tests check both against a
//! prost-derived twin, so other gRPC clients see no difference. `build.rs`
//! maps the proto's `LogRecord` to this type (`extern_path`).

use std::fmt;

use prost::bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{encode_varint, encoded_len_varint, DecodeContext, WireType};
use prost::DecodeError;

/// Records per batched message at most (`ReadLogRequest.max_batch` is
/// capped to it).
pub const READ_LOG_MAX_BATCH: usize = 4096;
/// Payload bytes per batched message at most (a message stays far below the
/// 4 MiB a default gRPC client decodes).
pub const READ_LOG_MAX_BATCH_BYTES: usize = 1 << 20;

// Field tags of `LogRecord` (proto/isc_ledger.proto); each key is one byte.
const SEQ: u8 = 1;
const AT: u8 = 2;
const PREV_HASH: u8 = 3;
const HASH: u8 = 4;
const PAYLOAD: u8 = 5;
const VERSION: u8 = 6;
const FOLLOWING: u8 = 7;
const VARINT: u8 = 0;
const LEN: u8 = 2;

/// One `LogRecord` message: a record, then the records `following` it, as
/// protobuf bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LogRecord {
    wire: Bytes,
}

/// One record of a message, borrowed from the message's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogEntry<'a> {
    /// Sequence number.
    pub seq: u64,
    /// Instant of the event (Unix seconds).
    pub at: i64,
    /// Record layout version.
    pub version: u32,
    /// Chain hash of the record before (32 bytes when well formed).
    pub prev_hash: &'a [u8],
    /// This record's chain hash.
    pub hash: &'a [u8],
    /// The event bytes the hash covers.
    pub payload: &'a [u8],
}

/// What is wrong with a message's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed LogRecord message: {0}")]
pub struct WireError(&'static str);

impl LogEntry<'_> {
    /// The encoded length of its fields (a `following` entry's length).
    fn fields_len(&self) -> usize {
        let varint = |v: u64| if v == 0 { 0 } else { 1 + encoded_len_varint(v) };
        let bytes = |b: &[u8]| {
            if b.is_empty() {
                0
            } else {
                1 + encoded_len_varint(b.len() as u64) + b.len()
            }
        };
        varint(self.seq)
            + varint(self.at as u64)
            + bytes(self.prev_hash)
            + bytes(self.hash)
            + bytes(self.payload)
            + varint(u64::from(self.version))
    }

    /// Writes it as a message's own record (its fields), or as an entry of
    /// the message's `following`.
    fn put(&self, buf: &mut impl BufMut, following: bool) {
        if following {
            buf.put_u8(FOLLOWING << 3 | LEN);
            encode_varint(self.fields_len() as u64, buf);
        }
        self.put_fields(buf);
    }

    /// Writes its fields in tag order, defaults omitted (as prost does).
    fn put_fields(&self, buf: &mut impl BufMut) {
        put_varint_field(buf, SEQ, self.seq);
        put_varint_field(buf, AT, self.at as u64);
        for (tag, b) in [
            (PREV_HASH, self.prev_hash),
            (HASH, self.hash),
            (PAYLOAD, self.payload),
        ] {
            if !b.is_empty() {
                buf.put_u8(tag << 3 | LEN);
                encode_varint(b.len() as u64, buf);
                buf.put_slice(b);
            }
        }
        put_varint_field(buf, VERSION, u64::from(self.version));
    }

    /// The record as a store holds it (`Err` when a hash is not 32 bytes or
    /// the version is not a store's).
    pub fn to_raw(&self) -> Result<crate::store::RawRecord, WireError> {
        let hash = |b: &[u8]| {
            crate::store::Hash::try_from(b).map_err(|_| WireError("a hash is not 32 bytes"))
        };
        Ok(crate::store::RawRecord {
            seq: self.seq,
            at: self.at,
            version: u8::try_from(self.version)
                .map_err(|_| WireError("the record version is out of range"))?,
            prev_hash: hash(self.prev_hash)?,
            hash: hash(self.hash)?,
            payload: self.payload.to_vec(),
        })
    }
}

impl<'a> From<crate::store::RawRecordRef<'a>> for LogEntry<'a> {
    fn from(r: crate::store::RawRecordRef<'a>) -> LogEntry<'a> {
        LogEntry {
            seq: r.seq,
            at: r.at,
            version: u32::from(r.version),
            prev_hash: r.prev_hash,
            hash: r.hash,
            payload: r.payload,
        }
    }
}

fn put_varint_field(buf: &mut impl BufMut, tag: u8, v: u64) {
    if v != 0 {
        buf.put_u8(tag << 3 | VARINT);
        encode_varint(v, buf);
    }
}

impl LogRecord {
    /// One message of `entries`: the first, the others in its `following`
    /// (none: the empty message).
    pub fn from_entries(entries: &[LogEntry<'_>]) -> LogRecord {
        let mut buf = BytesMut::new();
        for (i, e) in entries.iter().enumerate() {
            e.put(&mut buf, i > 0);
        }
        LogRecord { wire: buf.freeze() }
    }

    /// The message's records in order: the record itself, then its
    /// `following`. A defect in the bytes ends it with an `Err`.
    pub fn records(&self) -> Records<'_> {
        Records {
            wire: &self.wire,
            pos: 0,
            first: Some(read_fields(&self.wire, true)),
        }
    }

    /// The message's records, owned (`Err` at the first defect).
    pub fn raw_records(&self) -> Result<Vec<crate::store::RawRecord>, WireError> {
        self.records().map(|r| r?.to_raw()).collect()
    }

    /// The message's protobuf bytes.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// A message from protobuf bytes (read lazily, by [`LogRecord::records`]).
    pub fn from_wire(wire: Bytes) -> LogRecord {
        LogRecord { wire }
    }
}

/// Writes records, as they come in seq order, into `ReadLog` messages: one
/// per record for `max_batch` ≤ 1, else each message a record with up to
/// `max_batch - 1` more in its `following` (capped by
/// [`READ_LOG_MAX_BATCH`] and [`READ_LOG_MAX_BATCH_BYTES`]; a record larger
/// than the byte cap goes alone). One buffer for all of them.
pub struct Batcher {
    buf: BytesMut,
    batch: usize,
    /// Records and payload bytes in the message being written.
    records: usize,
    bytes: usize,
    /// Where each finished message ends in `buf`.
    ends: Vec<usize>,
}

impl Batcher {
    /// A batcher for `ReadLogRequest.max_batch`.
    pub fn new(max_batch: u32) -> Batcher {
        Batcher {
            // A server chunk of 4096 typical records (grows past it).
            buf: BytesMut::with_capacity(1 << 20),
            batch: usize::try_from(max_batch)
                .unwrap_or(READ_LOG_MAX_BATCH)
                .clamp(1, READ_LOG_MAX_BATCH),
            records: 0,
            bytes: 0,
            ends: vec![],
        }
    }

    /// Appends the next record.
    pub fn push(&mut self, e: &LogEntry<'_>) {
        let len = e.payload.len();
        if self.records > 0
            && (self.records == self.batch || self.bytes + len > READ_LOG_MAX_BATCH_BYTES)
        {
            self.ends.push(self.buf.len());
            (self.records, self.bytes) = (0, 0);
        }
        e.put(&mut self.buf, self.records > 0);
        self.records += 1;
        self.bytes += len;
    }

    /// The messages written.
    pub fn finish(mut self) -> Vec<LogRecord> {
        if self.records > 0 {
            self.ends.push(self.buf.len());
        }
        let all = self.buf.freeze();
        let mut from = 0;
        self.ends
            .into_iter()
            .map(|end| {
                let wire = all.slice(from..end);
                from = end;
                LogRecord { wire }
            })
            .collect()
    }
}

impl fmt::Debug for LogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for r in self.records() {
            match r {
                Ok(e) => l.entry(&e),
                Err(e) => l.entry(&e),
            };
        }
        l.finish()
    }
}

/// The records of a message (see [`LogRecord::records`]).
pub struct Records<'a> {
    wire: &'a [u8],
    /// Where the scan for the next `following` entry resumes.
    pos: usize,
    /// The message's own record, until yielded.
    first: Option<Result<LogEntry<'a>, WireError>>,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<LogEntry<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(first) = self.first.take() {
            if first.is_err() {
                self.pos = self.wire.len();
            }
            return Some(first);
        }
        let mut c = Cursor(&self.wire[self.pos..]);
        let found = loop {
            if c.0.is_empty() {
                break None;
            }
            match c.key() {
                Ok((FOLLOWING_TAG, LEN)) => {
                    break Some(c.bytes().and_then(|b| read_fields(b, false)))
                }
                Ok((_, wt)) => {
                    if let Err(e) = c.skip(wt) {
                        break Some(Err(e));
                    }
                }
                Err(e) => break Some(Err(e)),
            }
        };
        self.pos = match found {
            Some(Ok(_)) => self.wire.len() - c.0.len(),
            _ => self.wire.len(),
        };
        found
    }
}

const FOLLOWING_TAG: u32 = FOLLOWING as u32;

/// A record's fields from `b`; `top`: the message itself, whose `following`
/// entries are skipped here (a `following` entry may have none).
fn read_fields(b: &[u8], top: bool) -> Result<LogEntry<'_>, WireError> {
    let mut e = LogEntry::default();
    let mut c = Cursor(b);
    while !c.0.is_empty() {
        let (tag, wt) = c.key()?;
        let known = matches!(tag, 1..=7);
        let want = match tag {
            3..=5 | 7 => LEN,
            _ => VARINT,
        };
        if known && wt != want {
            return Err(WireError("a field has the wrong wire type"));
        }
        match tag {
            1 => e.seq = c.varint()?,
            2 => e.at = c.varint()? as i64,
            3 => e.prev_hash = c.bytes()?,
            4 => e.hash = c.bytes()?,
            5 => e.payload = c.bytes()?,
            // uint32: the low 32 bits, as prost reads it.
            6 => e.version = c.varint()? as u32,
            7 if top => {
                c.bytes()?;
            }
            7 => return Err(WireError("a following record has a following of its own")),
            _ => c.skip(wt)?,
        }
    }
    Ok(e)
}

/// Reads protobuf wire format from a slice.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Most are one byte (keys, versions, short lengths).
        if let Some((&b, rest)) = self.0.split_first() {
            if b < 0x80 {
                self.0 = rest;
                return Ok(u64::from(b));
            }
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Result<u64, WireError> {
        let mut v = 0u64;
        for (i, &b) in self.0.iter().take(10).enumerate() {
            if i == 9 && b > 1 {
                break;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.0 = &self.0[i + 1..];
                return Ok(v);
            }
        }
        Err(WireError("a varint is cut short or longer than 64 bits"))
    }

    /// A field key: (tag, wire type).
    fn key(&mut self) -> Result<(u32, u8), WireError> {
        let k = self.varint()?;
        let tag = u32::try_from(k >> 3).map_err(|_| WireError("a field tag is out of range"))?;
        if tag == 0 {
            return Err(WireError("a field has tag 0"));
        }
        Ok((tag, (k & 7) as u8))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], WireError> {
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.0.len())
            .ok_or(WireError("a field runs past the end of the message"))?;
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(b)
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.varint()?;
        self.take(n)
    }

    /// Skips an unknown field's value.
    fn skip(&mut self, wire_type: u8) -> Result<(), WireError> {
        match wire_type {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.bytes().map(drop),
            5 => self.take(4).map(drop),
            _ => Err(WireError(
                "an unknown field is a group or of an unknown wire type",
            )),
        }
    }
}

impl prost::Message for LogRecord {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.wire);
    }

    /// Keeps the field as it came (key and value) for [`LogRecord::records`].
    /// Only reached when a `LogRecord` is decoded as part of another
    /// message, which the proto never does: `merge` takes the bytes whole.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let mut out = self.wire.to_vec();
        prost::encoding::encode_key(tag, wire_type, &mut out);
        match wire_type {
            WireType::Varint => encode_varint(prost::encoding::decode_varint(buf)?, &mut out),
            WireType::LengthDelimited => {
                let mut b = Bytes::new();
                prost::encoding::bytes::merge(wire_type, &mut b, buf, ctx)?;
                encode_varint(b.len() as u64, &mut out);
                out.extend_from_slice(&b);
            }
            WireType::ThirtyTwoBit => {
                let mut v = 0u32;
                prost::encoding::fixed32::merge(wire_type, &mut v, buf, ctx)?;
                out.put_u32_le(v);
            }
            WireType::SixtyFourBit => {
                let mut v = 0u64;
                prost::encoding::fixed64::merge(wire_type, &mut v, buf, ctx)?;
                out.put_u64_le(v);
            }
            // A group: skipped (prost's own error if it is malformed).
            WireType::StartGroup | WireType::EndGroup => {
                return prost::encoding::skip_field(wire_type, tag, buf, ctx);
            }
        }
        self.wire = out.into();
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.wire.len()
    }

    fn clear(&mut self) {
        self.wire.clear();
    }

    /// Takes the bytes whole (no copy when they are a `Bytes` already, as a
    /// gRPC message is); appends them when merging into a non-empty one
    /// (protobuf's merge of two messages is their concatenation).
    fn merge(&mut self, mut buf: impl Buf) -> Result<(), DecodeError> {
        let more = buf.copy_to_bytes(buf.remaining());
        self.wire = if self.wire.is_empty() {
            more
        } else {
            [&self.wire[..], &more[..]].concat().into()
        };
        Ok(())
    }

    fn merge_length_delimited(&mut self, mut buf: impl Buf) -> Result<(), DecodeError> {
        let mut b = Bytes::new();
        prost::encoding::bytes::merge(
            WireType::LengthDelimited,
            &mut b,
            &mut buf,
            DecodeContext::default(),
        )?;
        self.merge(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message;

    /// What prost itself derives for the proto's `LogRecord`.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Twin {
        #[prost(uint64, tag = "1")]
        seq: u64,
        #[prost(int64, tag = "2")]
        at: i64,
        #[prost(bytes = "vec", tag = "3")]
        prev_hash: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        hash: Vec<u8>,
        #[prost(bytes = "vec", tag = "5")]
        payload: Vec<u8>,
        #[prost(uint32, tag = "6")]
        version: u32,
        #[prost(message, repeated, tag = "7")]
        following: Vec<Twin>,
    }

    fn twin(e: &LogEntry<'_>) -> Twin {
        Twin {
            seq: e.seq,
            at: e.at,
            prev_hash: e.prev_hash.to_vec(),
            hash: e.hash.to_vec(),
            payload: e.payload.to_vec(),
            version: e.version,
            following: vec![],
        }
    }

    fn twin_of(entries: &[LogEntry<'_>]) -> Twin {
        let mut t = twin(&entries[0]);
        t.following = entries[1..].iter().map(twin).collect();
        t
    }

    fn entries(m: &LogRecord) -> Vec<LogEntry<'_>> {
        m.records().collect::<Result<_, _>>().unwrap()
    }

    fn raw(seq: u64, len: usize) -> crate::store::RawRecord {
        crate::store::RawRecord {
            seq,
            at: seq as i64 * 10,
            version: 1,
            prev_hash: [seq as u8; 32],
            hash: [seq as u8 + 1; 32],
            payload: vec![seq as u8; len],
        }
    }

    fn of(r: &crate::store::RawRecord) -> LogEntry<'_> {
        r.as_ref().into()
    }

    fn batches(records: &[crate::store::RawRecord], max_batch: u32) -> Vec<LogRecord> {
        let mut b = Batcher::new(max_batch);
        for r in records {
            b.push(&of(r));
        }
        b.finish()
    }

    fn flat(msgs: &[LogRecord]) -> Vec<LogEntry<'_>> {
        msgs.iter().flat_map(entries).collect()
    }

    fn arb_entry() -> impl Strategy<Value = (u64, i64, u32, Vec<u8>, Vec<u8>, Vec<u8>)> {
        (
            prop_oneof![Just(0u64), any::<u64>()],
            prop_oneof![Just(0i64), any::<i64>()],
            prop_oneof![Just(0u32), Just(1u32), any::<u32>()],
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(any::<u8>(), 0..300),
        )
    }

    type Fields = (u64, i64, u32, Vec<u8>, Vec<u8>, Vec<u8>);

    fn entry(f: &Fields) -> LogEntry<'_> {
        LogEntry {
            seq: f.0,
            at: f.1,
            version: f.2,
            prev_hash: &f.3,
            hash: &f.4,
            payload: &f.5,
        }
    }

    proptest! {
        #[test]
        fn the_bytes_are_prosts_and_read_back(fields in prop::collection::vec(arb_entry(), 1..20)) {
            let es: Vec<LogEntry<'_>> = fields.iter().map(entry).collect();
            let m = LogRecord::from_entries(&es);
            let t = twin_of(&es);
            prop_assert_eq!(m.wire(), &t.encode_to_vec()[..]);
            prop_assert_eq!(Twin::decode(m.wire()).unwrap(), t.clone());
            // prost's bytes, decoded as a gRPC message is: read back alike.
            let got = LogRecord::decode(Bytes::from(t.encode_to_vec())).unwrap();
            prop_assert_eq!(entries(&got), es);
        }

        #[test]
        fn fields_in_any_order_and_unknown_fields_read_as_prost_reads_them(
            fields in prop::collection::vec(arb_entry(), 1..6),
            order in any::<u64>(),
        ) {
            // The message's fields, each alone, shuffled, with an unknown
            // field of every wire type in between.
            let es: Vec<LogEntry<'_>> = fields.iter().map(entry).collect();
            let t = twin_of(&es);
            let mut parts: Vec<Vec<u8>> = vec![];
            let mut one = twin(&es[0]);
            let top = [
                Twin { seq: one.seq, ..Default::default() },
                Twin { at: one.at, ..Default::default() },
                Twin { prev_hash: std::mem::take(&mut one.prev_hash), ..Default::default() },
                Twin { hash: std::mem::take(&mut one.hash), ..Default::default() },
                Twin { payload: std::mem::take(&mut one.payload), ..Default::default() },
                Twin { version: one.version, ..Default::default() },
            ];
            parts.extend(top.iter().map(|p| p.encode_to_vec()));
            parts.extend(t.following.iter().map(|f| Twin { following: vec![f.clone()], ..Default::default() }.encode_to_vec()));
            parts.push(vec![8 << 3, 5]);
            parts.push(vec![9 << 3 | 1, 1, 2, 3, 4, 5, 6, 7, 8]);
            parts.push(vec![10 << 3 | 2, 2, 0xff, 0xff]);
            parts.push(vec![11 << 3 | 5, 1, 2, 3, 4]);
            // Shuffle all but the following entries' relative order.
            let mut s = order | 1;
            let n = parts.len();
            let mut idx: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                idx.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let following: Vec<usize> = (6..6 + t.following.len()).collect();
            let mut fpos = idx.iter().enumerate().filter(|(_, j)| following.contains(j)).map(|(p, _)| p).collect::<Vec<_>>();
            fpos.sort();
            for (p, j) in fpos.into_iter().zip(following) { idx[p] = j; }
            let bytes: Vec<u8> = idx.iter().flat_map(|&j| parts[j].clone()).collect();
            prop_assert_eq!(Twin::decode(&bytes[..]).unwrap(), t);
            let m = LogRecord::decode(&bytes[..]).unwrap();
            prop_assert_eq!(entries(&m), es);
        }

        #[test]
        fn any_bytes_read_without_panic_and_defects_end_the_records(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let m = LogRecord::from_wire(Bytes::from(bytes.clone()));
            let got: Vec<_> = m.records().collect();
            prop_assert!(!got.is_empty());
            // Nothing after a defect; a message prost accepts reads whole
            // unless a following entry has a following of its own.
            if let Some(p) = got.iter().position(|r| r.is_err()) {
                prop_assert_eq!(p + 1, got.len());
            }
            // (prost skips groups, which this reader refuses.)
            let group = got.iter().any(|r| matches!(r, Err(e) if e.0.contains("group")));
            if let (Ok(t), false) = (Twin::decode(&bytes[..]), group) {
                if t.following.iter().all(|f| f.following.is_empty()) {
                    let ok: Vec<_> = got.into_iter().collect::<Result<_, _>>().unwrap();
                    prop_assert_eq!(ok.len(), 1 + t.following.len());
                    prop_assert_eq!(ok[0].seq, t.seq);
                    prop_assert_eq!(ok[0].payload, &t.payload[..]);
                }
            }
        }
    }

    #[test]
    fn batches_come_at_the_asked_size_and_keep_every_byte() {
        let chunk: Vec<_> = (1..=10).map(|s| raw(s, s as usize)).collect();
        let single = batches(&chunk, 0);
        assert_eq!(single.len(), 10);
        assert!(single.iter().all(|m| m.records().count() == 1));
        assert_eq!(batches(&chunk, 1), single);
        for (m, r) in single.iter().zip(&chunk) {
            assert_eq!(entries(m), [of(r)]);
            assert_eq!(&m.raw_records().unwrap(), std::slice::from_ref(r));
            assert_eq!(m.wire(), twin_of(&[of(r)]).encode_to_vec());
        }
        let three = batches(&chunk, 3);
        let sizes: Vec<usize> = three.iter().map(|m| m.records().count()).collect();
        assert_eq!(sizes, [3, 3, 3, 1]);
        assert_eq!(flat(&three), flat(&single));
        let all = batches(&chunk, u32::MAX);
        assert_eq!(all.len(), 1);
        assert_eq!(flat(&all), flat(&single));
        assert!(batches(&[], 100).is_empty());
    }

    #[test]
    fn a_batched_message_stays_below_its_byte_cap() {
        let big = READ_LOG_MAX_BATCH_BYTES / 4 + 1;
        let chunk: Vec<_> = (1..=9).map(|s| raw(s, big)).collect();
        let msgs = batches(&chunk, 4096);
        let sizes: Vec<usize> = msgs.iter().map(|m| m.records().count()).collect();
        assert_eq!(sizes, [3, 3, 3]);
        for m in &msgs {
            let payload: usize = entries(m).iter().map(|e| e.payload.len()).sum();
            assert!(payload <= READ_LOG_MAX_BATCH_BYTES);
        }
        // A record larger than the cap still goes, alone.
        let msgs = batches(
            &[raw(1, 10), raw(2, READ_LOG_MAX_BATCH_BYTES + 1), raw(3, 10)],
            4096,
        );
        let sizes: Vec<usize> = msgs.iter().map(|m| m.records().count()).collect();
        assert_eq!(sizes, [1, 1, 1]);
    }

    #[test]
    fn a_following_record_with_a_following_is_refused_by_its_place() {
        let inner = Twin {
            seq: 2,
            following: vec![Twin {
                seq: 3,
                ..Default::default()
            }],
            ..Default::default()
        };
        let t = Twin {
            seq: 1,
            following: vec![inner],
            ..Default::default()
        };
        let m = LogRecord::decode(&t.encode_to_vec()[..]).unwrap();
        let got: Vec<_> = m.records().collect();
        assert_eq!(got[0].unwrap().seq, 1);
        assert!(got[1]
            .unwrap_err()
            .to_string()
            .contains("following of its own"));
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn merging_messages_appends_their_records_and_nesting_reads_alike() {
        let a = raw(1, 5);
        let b = raw(2, 7);
        let mut m = LogRecord::from_entries(&[of(&a)]);
        let second = LogRecord::from_entries(&[LogEntry::default(), of(&b)]);
        m.merge(second.wire()).unwrap();
        // Scalars: the last one wins (seq 0 is not written, so seq 1 stays).
        assert_eq!(entries(&m), [of(&a), of(&b)]);
        // Length-delimited, and field by field (as inside another message).
        let mut buf = vec![];
        second.encode_length_delimited(&mut buf).unwrap();
        assert_eq!(
            LogRecord::decode_length_delimited(&buf[..]).unwrap(),
            second
        );
        assert!(LogRecord::decode_length_delimited(&buf[..buf.len() - 1]).is_err());
        let mut by_field = LogRecord::default();
        let mut rest = second.wire();
        while !rest.is_empty() {
            let (tag, wt) = prost::encoding::decode_key(&mut rest).unwrap();
            by_field
                .merge_field(tag, wt, &mut rest, DecodeContext::default())
                .unwrap();
        }
        assert_eq!(by_field, second);
        assert_eq!(by_field.encoded_len(), second.wire().len());
        by_field.clear();
        assert_eq!(by_field, LogRecord::default());
    }
}
