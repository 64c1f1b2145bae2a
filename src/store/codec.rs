//! The byte layout of the log: frames, records, the hash chain and
//! snapshots. Pure functions only (no sled, no I/O) so the format can be
//! unit-tested and documented in one place; `ARCHITECTURE.md` describes the
//! same bytes for auditors.
//!
//! Frame (one sled value in tree `log`, key = first seq as u64 big-endian):
//!
//! ```text
//! frame_version u8 (= 1)
//! codec         u8                0 = body stored as is, 1 = LZ4 block (lz4_flex) of the body
//! count         u16 BE            1..=MAX_RECORDS_PER_FRAME
//! prev_hash     [u8; 32]          chain hash of the record before the first one
//! body_len      u32 BE            length of the body before compression
//! stored body                     count × record, compressed when codec = 1
//! frame_crc     u32 BE            CRC-32 (IEEE) of every stored byte above
//! ```
//!
//! Record (inside a frame):
//!
//! ```text
//! record_version u8 (= 1)
//! at_delta       zigzag LEB128    at - at of the previous record in the frame (0 before the first)
//! len            LEB128           length of the event bytes
//! event          len bytes        bincode 2, `config::standard()`, serde
//! record_crc     u32 BE           CRC-32 of seq u64 BE || the record bytes above
//! ```
//!
//! Record hash: `SHA-256(record_version || prev_hash || seq u64 BE || at i64 BE || event)`,
//! `prev_hash` of seq 1 is 32 zero bytes.

use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 chain hash.
pub type Hash = [u8; 32];

/// The chain hash "before seq 1".
pub const GENESIS_HASH: Hash = [0u8; 32];

/// The only frame layout so far. A new layout adds a version and a decoder,
/// never rewrites old frames (style: the storage format is a contract).
pub const FRAME_VERSION_1: u8 = 1;

/// The only record layout so far (see [`record_hash`]).
pub const RECORD_VERSION_1: u8 = 1;

/// At most this many records per frame: bounds the work to re-hash a frame
/// when one record of it is read, and the size of a sled value.
pub const MAX_RECORDS_PER_FRAME: usize = 1024;

/// A frame is closed once its encoded records pass this size, so that one
/// append's sled write stays below sled's blob threshold (a quarter of
/// `sled_log::SEGMENT_SIZE_BYTES`).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// One event may not encode to more than this; bigger is a caller bug.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Bytes of the frame header: version, codec, count, prev_hash, body_len.
pub const FRAME_HEADER_BYTES: usize = 1 + 1 + 2 + 32 + 4;

/// Body stored as is.
pub const CODEC_RAW: u8 = 0;
/// Body stored as one LZ4 block (measured: 1.8× smaller on typical events,
/// decompression > 1 GB/s).
pub const CODEC_LZ4: u8 = 1;

/// Largest body a frame header may claim (bounds allocation on damaged input).
pub const MAX_FRAME_BODY_BYTES: usize = MAX_FRAME_BYTES + MAX_EVENT_BYTES + 64;

/// Computes a record's chain hash from its parts (the documented layout).
pub fn record_hash(prev_hash: &Hash, seq: u64, at: i64, event: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([RECORD_VERSION_1]);
    h.update(prev_hash);
    h.update(seq.to_be_bytes());
    h.update(at.to_be_bytes());
    h.update(event);
    h.finalize().into()
}

/// Appends `v` as unsigned LEB128.
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an unsigned LEB128 at `*pos`, advancing it. `None` when truncated
/// or longer than 10 bytes.
pub fn get_uvarint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn record_crc(seq: u64, bytes: &[u8]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&seq.to_be_bytes());
    c.update(bytes);
    c.finalize()
}

/// Builds one frame from already-encoded events. The caller decides where
/// frames split; this only lays bytes out.
pub struct FrameBuilder {
    /// The body: records, uncompressed.
    buf: Vec<u8>,
    prev_hash: Hash,
    first_seq: u64,
    count: u16,
    last_at: i64,
}

impl FrameBuilder {
    /// Starts a frame whose first record will have `first_seq`.
    pub fn new(first_seq: u64, prev_hash: &Hash) -> FrameBuilder {
        FrameBuilder::with_capacity(first_seq, prev_hash, 4096)
    }

    /// [`FrameBuilder::new`] with room for `bytes` of records (no regrowth
    /// when the caller knows the batch).
    pub fn with_capacity(first_seq: u64, prev_hash: &Hash, bytes: usize) -> FrameBuilder {
        FrameBuilder {
            buf: Vec::with_capacity(bytes.min(MAX_FRAME_BYTES + MAX_EVENT_BYTES + 16)),
            prev_hash: *prev_hash,
            first_seq,
            count: 0,
            last_at: 0,
        }
    }

    /// Records in the frame so far.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Encoded size so far.
    pub fn len_bytes(&self) -> usize {
        self.buf.len()
    }

    /// True when no further record may be added.
    pub fn is_full(&self) -> bool {
        self.count() >= MAX_RECORDS_PER_FRAME || self.buf.len() >= MAX_FRAME_BYTES
    }

    /// Appends a record with the next seq.
    pub fn push(&mut self, at: i64, event: &[u8]) {
        debug_assert!(!self.is_full());
        debug_assert!(event.len() <= MAX_EVENT_BYTES);
        let seq = self.first_seq + u64::from(self.count);
        let start = self.buf.len();
        self.buf.push(RECORD_VERSION_1);
        put_uvarint(&mut self.buf, zigzag(at.wrapping_sub(self.last_at)));
        put_uvarint(&mut self.buf, event.len() as u64);
        self.buf.extend_from_slice(event);
        let crc = record_crc(seq, &self.buf[start..]);
        self.buf.extend_from_slice(&crc.to_be_bytes());
        self.last_at = at;
        self.count += 1;
    }

    /// Seals the frame (compressing the body when that saves space).
    pub fn finish(self) -> Vec<u8> {
        seal_frame(self.count, &self.prev_hash, &self.buf)
    }
}

/// What is wrong with a frame, as precisely as the bytes allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameDefect {
    /// The frame does not even hold a header and a CRC.
    TooShort,
    /// Unknown frame layout version.
    FrameVersion(u8),
    /// A record could not be parsed, or its own CRC fails: this seq is the
    /// first bad one.
    Record { seq: u64, what: &'static str },
    /// Records parse but the frame CRC fails (header or trailer altered).
    FrameCrc,
    /// Bytes left over after `count` records.
    TrailingBytes,
    /// Unknown body codec.
    Codec(u8),
    /// The stored body does not decompress to the claimed length.
    Body,
}

/// Lays out a frame around an uncompressed body of `count` records:
/// compresses it with LZ4 when that is smaller, and appends the frame CRC.
/// (Public so tests can play a careless intruder who fixes this CRC only.)
pub fn seal_frame(count: u16, prev_hash: &Hash, body: &[u8]) -> Vec<u8> {
    // Compress straight into the frame (no intermediate buffer); fall back
    // to the raw body when LZ4 does not make it smaller.
    let bound = lz4_flex::block::get_maximum_output_size(body.len());
    let mut out = vec![0u8; FRAME_HEADER_BYTES + bound.max(body.len()) + 4];
    out[0] = FRAME_VERSION_1;
    out[2..4].copy_from_slice(&count.to_be_bytes());
    out[4..36].copy_from_slice(prev_hash);
    out[36..FRAME_HEADER_BYTES].copy_from_slice(&(body.len() as u32).to_be_bytes());
    let stored_len = match lz4_flex::block::compress_into(body, &mut out[FRAME_HEADER_BYTES..]) {
        Ok(n) if n < body.len() => {
            out[1] = CODEC_LZ4;
            n
        }
        _ => {
            out[1] = CODEC_RAW;
            out[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + body.len()].copy_from_slice(body);
            body.len()
        }
    };
    out.truncate(FRAME_HEADER_BYTES + stored_len);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The parts of a frame without any check: `(count, prev_hash, body)`,
/// the body decompressed. For tests and forensic tools.
pub fn frame_parts(buf: &[u8]) -> Option<(u16, Hash, Vec<u8>)> {
    let mut scratch = Vec::new();
    let (count, prev_hash, body, _) = open_frame(buf, &mut scratch).ok()?;
    Some((count, prev_hash, body.to_vec()))
}

type Opened<'a> = (u16, Hash, &'a [u8], bool);

/// Header checks and decompression; the bool says whether the frame CRC holds.
fn open_frame<'a>(buf: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<Opened<'a>, FrameDefect> {
    if buf.len() < FRAME_HEADER_BYTES + 4 {
        return Err(FrameDefect::TooShort);
    }
    if buf[0] != FRAME_VERSION_1 {
        return Err(FrameDefect::FrameVersion(buf[0]));
    }
    let codec = buf[1];
    let count = u16::from_be_bytes([buf[2], buf[3]]);
    let mut prev_hash = [0u8; 32];
    prev_hash.copy_from_slice(&buf[4..36]);
    let body_len = u32::from_be_bytes([buf[36], buf[37], buf[38], buf[39]]) as usize;
    let end = buf.len() - 4;
    let stored_crc = u32::from_be_bytes([buf[end], buf[end + 1], buf[end + 2], buf[end + 3]]);
    let crc_ok = crc32fast::hash(&buf[..end]) == stored_crc;
    let stored = &buf[FRAME_HEADER_BYTES..end];
    let body: &'a [u8] = match codec {
        CODEC_RAW => stored,
        CODEC_LZ4 => {
            if body_len > MAX_FRAME_BODY_BYTES {
                return Err(if crc_ok {
                    FrameDefect::Body
                } else {
                    FrameDefect::FrameCrc
                });
            }
            scratch.clear();
            scratch.resize(body_len, 0);
            match lz4_flex::block::decompress_into(stored, scratch) {
                Ok(n) if n == body_len => {}
                _ => return Err(FrameDefect::Body),
            }
            let scratch: &'a Vec<u8> = scratch;
            scratch
        }
        c => return Err(FrameDefect::Codec(c)),
    };
    Ok((count, prev_hash, body, crc_ok))
}

/// One record of a frame, borrowing the event bytes from the frame.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// Sequence number (frame key + index).
    pub seq: u64,
    /// Instant of the event.
    pub at: i64,
    /// Record layout version (selects the upcaster for `event`).
    pub version: u8,
    /// bincode-encoded event.
    pub event: &'a [u8],
}

/// A parsed frame.
#[derive(Debug, Clone)]
pub struct RawFrame<'a> {
    /// Chain hash of the record before the first.
    pub prev_hash: Hash,
    /// The records, in seq order.
    pub records: Vec<RawRecord<'a>>,
}

impl RawFrame<'_> {
    /// Hashes every record in order; returns the hashes (same order).
    pub fn hashes(&self) -> Vec<Hash> {
        let mut prev = self.prev_hash;
        self.records
            .iter()
            .map(|r| {
                prev = record_hash(&prev, r.seq, r.at, r.event);
                prev
            })
            .collect()
    }

    /// The last of `hashes` (this frame's [`RawFrame::hashes`]), or the
    /// frame's `prev_hash` when it has no records.
    pub fn last_hash_of(&self, hashes: &[Hash]) -> Hash {
        hashes.last().copied().unwrap_or(self.prev_hash)
    }

    /// Chain hash of the last record (the frame's contribution to the head).
    pub fn last_hash(&self) -> Hash {
        self.hashes().last().copied().unwrap_or(self.prev_hash)
    }
}

/// Parses and checks one frame stored under `first_seq`; `scratch` holds
/// a decompressed body. Per-record CRCs are checked first so that a damaged
/// byte is blamed on its seq; the frame CRC then covers the header and
/// anything the records do not.
pub fn decode_frame<'a>(
    first_seq: u64,
    buf: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<RawFrame<'a>, FrameDefect> {
    let (count, prev_hash, body, crc_ok) = open_frame(buf, scratch)?;
    let mut pos = 0;
    let mut records = Vec::with_capacity(usize::from(count));
    let mut last_at: i64 = 0;
    for i in 0..u64::from(count) {
        let seq = first_seq + i;
        let bad = |what| FrameDefect::Record { seq, what };
        let start = pos;
        let version = *body.get(pos).ok_or(bad("record truncated"))?;
        pos += 1;
        let delta = get_uvarint(body, &mut pos).ok_or(bad("record truncated (at)"))?;
        let len = get_uvarint(body, &mut pos).ok_or(bad("record truncated (length)"))?;
        let len = usize::try_from(len).map_err(|_| bad("record length overflows"))?;
        if len > MAX_EVENT_BYTES || pos + len + 4 > body.len() {
            return Err(bad("record truncated (event bytes)"));
        }
        let event = &body[pos..pos + len];
        pos += len;
        let stored = u32::from_be_bytes([body[pos], body[pos + 1], body[pos + 2], body[pos + 3]]);
        if record_crc(seq, &body[start..pos]) != stored {
            return Err(bad("record checksum mismatch (altered, moved or torn)"));
        }
        pos += 4;
        if version != RECORD_VERSION_1 {
            return Err(bad("unknown record version"));
        }
        let at = last_at.wrapping_add(unzigzag(delta));
        last_at = at;
        records.push(RawRecord {
            seq,
            at,
            version,
            event,
        });
    }
    if pos != body.len() {
        return Err(FrameDefect::TrailingBytes);
    }
    if !crc_ok {
        return Err(FrameDefect::FrameCrc);
    }
    Ok(RawFrame { prev_hash, records })
}

/// The head marker, stored in the log tree next to the frames and updated
/// atomically with them: it is how truncation of acknowledged records is
/// detected. Layout: `version u8 (=1) || seq u64 BE || at i64 BE || hash [32]`.
pub fn encode_head(seq: u64, at: i64, hash: &Hash) -> [u8; 49] {
    let mut out = [0u8; 49];
    out[0] = 1;
    out[1..9].copy_from_slice(&seq.to_be_bytes());
    out[9..17].copy_from_slice(&at.to_be_bytes());
    out[17..49].copy_from_slice(hash);
    out
}

/// Inverse of [`encode_head`].
pub fn decode_head(buf: &[u8]) -> Option<(u64, i64, Hash)> {
    if buf.len() != 49 || buf[0] != 1 {
        return None;
    }
    let seq = u64::from_be_bytes(buf[1..9].try_into().ok()?);
    let at = i64::from_be_bytes(buf[9..17].try_into().ok()?);
    let hash: Hash = buf[17..49].try_into().ok()?;
    Some((seq, at, hash))
}

/// What a stored snapshot says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// Last record folded into the state.
    pub seq: u64,
    /// Its instant.
    pub at: i64,
    /// Its chain hash.
    pub hash: Hash,
    /// Fingerprint of the state's layout (see `store::SnapshotState`).
    pub schema: u64,
}

/// Snapshot value layout: `version u8 (=1) || seq u64 BE || at i64 BE ||
/// hash [32] || schema u64 BE || crc32 u32 BE (of the state bytes) ||
/// state bytes (bincode 2)`.
pub fn encode_snapshot(h: &SnapshotHeader, state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(61 + state.len());
    out.extend_from_slice(&encode_head(h.seq, h.at, &h.hash));
    out.extend_from_slice(&h.schema.to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(state).to_be_bytes());
    out.extend_from_slice(state);
    out
}

/// Inverse of [`encode_snapshot`]; `None` when damaged.
pub fn decode_snapshot(buf: &[u8]) -> Option<(SnapshotHeader, &[u8])> {
    if buf.len() < 61 {
        return None;
    }
    let (seq, at, hash) = decode_head(&buf[..49])?;
    let schema = u64::from_be_bytes(buf[49..57].try_into().ok()?);
    let crc = u32::from_be_bytes(buf[57..61].try_into().ok()?);
    let state = &buf[61..];
    (crc32fast::hash(state) == crc).then_some((
        SnapshotHeader {
            seq,
            at,
            hash,
            schema,
        },
        state,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(first_seq: u64, events: &[(i64, &[u8])]) -> Vec<u8> {
        let mut b = FrameBuilder::new(first_seq, &GENESIS_HASH);
        for (at, ev) in events {
            b.push(*at, ev);
        }
        b.finish()
    }

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = vec![];
            put_uvarint(&mut buf, v);
            let mut pos = 0;
            assert_eq!(get_uvarint(&buf, &mut pos), Some(v));
            assert_eq!(pos, buf.len());
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, 1_700_000_000] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn frame_round_trips_and_hashes_chain() {
        let buf = frame(7, &[(100, b"abc"), (90, b""), (1_700_000_000, b"xyz")]);
        let mut scratch = vec![];
        let f = decode_frame(7, &buf, &mut scratch).expect("valid frame");
        let got: Vec<_> = f.records.iter().map(|r| (r.seq, r.at, r.event)).collect();
        assert_eq!(
            got,
            vec![
                (7, 100, &b"abc"[..]),
                (8, 90, &b""[..]),
                (9, 1_700_000_000, &b"xyz"[..])
            ]
        );
        let h7 = record_hash(&GENESIS_HASH, 7, 100, b"abc");
        let h8 = record_hash(&h7, 8, 90, b"");
        assert_eq!(f.hashes()[..2], [h7, h8]);
    }

    #[test]
    fn record_hash_is_the_documented_sha256() {
        // Recompute by hand from the documented byte layout.
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(&[0u8; 32]);
        bytes.extend_from_slice(&1u64.to_be_bytes());
        bytes.extend_from_slice(&5i64.to_be_bytes());
        bytes.extend_from_slice(b"ev");
        let want: Hash = Sha256::digest(&bytes).into();
        assert_eq!(record_hash(&GENESIS_HASH, 1, 5, b"ev"), want);
    }

    fn decode(first: u64, buf: &[u8]) -> Result<usize, FrameDefect> {
        let mut scratch = vec![];
        decode_frame(first, buf, &mut scratch).map(|f| f.records.len())
    }

    #[test]
    fn a_flipped_byte_is_blamed_on_its_record() {
        let buf = frame(10, &[(1, b"aaaa"), (2, b"bbbb"), (3, b"cccc")]);
        let (count, prev, body) = frame_parts(&buf).expect("parts");
        let pos = body.windows(4).position(|w| w == b"bbbb").expect("present");
        let mut bad = body.clone();
        bad[pos] ^= 1;
        // Even with the frame CRC recomputed, the record CRC names seq 11.
        assert_eq!(
            decode(10, &seal_frame(count, &prev, &bad)).unwrap_err(),
            FrameDefect::Record {
                seq: 11,
                what: "record checksum mismatch (altered, moved or torn)"
            }
        );
        // Header damage is caught by the frame CRC.
        let mut hdr = buf.clone();
        hdr[5] ^= 1;
        assert_eq!(decode(10, &hdr).unwrap_err(), FrameDefect::FrameCrc);
        // A frame read under the wrong key fails on its first record.
        assert!(matches!(
            decode(11, &buf),
            Err(FrameDefect::Record { seq: 11, .. })
        ));
        // Every truncation and every flipped stored byte is detected.
        for cut in 0..buf.len() {
            assert!(decode(10, &buf[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x40;
            assert!(decode(10, &b).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn repetitive_bodies_are_compressed() {
        let evs: Vec<(i64, &[u8])> = (0..200)
            .map(|i| (i, &b"account-000001 PBX-Port13 x 40"[..]))
            .collect();
        let buf = frame(1, &evs);
        assert_eq!(buf[1], CODEC_LZ4);
        assert!(buf.len() < 200 * 10, "{} bytes", buf.len());
        assert_eq!(decode(1, &buf), Ok(200));
        // A body that does not shrink is stored as is.
        assert_eq!(frame(1, &[(0, b"x")])[1], CODEC_RAW);
    }

    #[test]
    fn head_and_snapshot_round_trip() {
        let h = [7u8; 32];
        assert_eq!(decode_head(&encode_head(3, -4, &h)), Some((3, -4, h)));
        let hdr = SnapshotHeader {
            seq: 9,
            at: 10,
            hash: h,
            schema: 77,
        };
        let s = encode_snapshot(&hdr, b"state");
        assert_eq!(decode_snapshot(&s), Some((hdr, &b"state"[..])));
        let mut bad = s.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(decode_snapshot(&bad), None);
    }
}
