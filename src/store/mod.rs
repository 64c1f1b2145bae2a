//! The durable, tamper-evident event log.
//!
//! Owns: how accepted events become bytes on disk (frames, records, the
//! SHA-256 hash chain — see [`codec`]), durability (an append returns only
//! once its bytes are `fdatasync`ed), the per-account index, snapshots of
//! the folded state, and the checks an auditor runs ([`verify`]).
//!
//! Must not: decide anything about billing. The store is generic over the
//! event type `E` (anything serde can encode) and the snapshot state `S`;
//! the domain is bound in [`ledger`] only.
//!
//! Invariants (asserted in code, tested in `tests/store_*.rs`):
//! - seqs are dense from 1; `at` never decreases along the log;
//! - every record commits to its predecessor's hash;
//! - an acknowledged append survives a crash or power loss; a frame that
//!   was never acknowledged is discarded on open, anything else damaged is
//!   reported with the first bad seq.

pub mod codec;
pub mod datadir;
pub mod event_v1;
pub mod index;
pub mod ledger;
pub mod merkle;
pub mod pg_conn;
pub mod pg_lease;
pub mod pg_log;
pub mod pg_schema;
pub mod pg_temp;
pub mod pg_tls;
pub mod pg_verify;
pub mod sled_log;
pub mod sth;
pub mod verify;
pub mod workload;

use serde::{de::DeserializeOwned, Serialize};

pub use codec::{Hash, GENESIS_HASH};
pub use pg_log::PgLog;
pub use sled_log::{SledLog, StoreOptions};
pub use sth::SignedTreeHead;

/// Default data directory of every subcommand (spec §10).
pub const DEFAULT_DATA_DIR: &str = "./isc-ledger-data";

/// What the store needs of an event beyond serde: which account it belongs
/// to (for the per-account index), and optionally a faster decoder.
pub trait Indexed {
    /// The account this event touches, if any (`None` for ledger-wide
    /// events such as price lists).
    fn account_id(&self) -> Option<&str>;

    /// Decodes the event bytes of a version-1 record without serde, or
    /// `None` to let serde decode them. Must agree with serde whenever it
    /// answers (an optimisation of replay, never a second format).
    fn decode_v1(_bytes: &[u8]) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// A state that can be snapshotted. `schema` fingerprints its serialized
/// layout: a snapshot written by a build whose state layout differs is
/// ignored (replayed over) instead of being decoded into the wrong shape.
pub trait SnapshotState: Serialize + DeserializeOwned {
    /// Changes whenever the serialized layout of `Self` may have changed.
    fn schema() -> u64;
}

/// The end of the log: the last record's seq, chain hash and instant
/// (seq 0, genesis hash and at 0 for an empty log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Seq of the last record; 0 when empty.
    pub seq: u64,
    /// Chain hash of the last record.
    pub hash: Hash,
    /// Instant of the last record.
    pub at: i64,
}

impl Head {
    /// The head of an empty log.
    pub const EMPTY: Head = Head {
        seq: 0,
        hash: GENESIS_HASH,
        at: 0,
    };
}

/// One record as read back, with its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord<E> {
    /// Dense sequence number from 1.
    pub seq: u64,
    /// Instant the event takes effect (Unix seconds).
    pub at: i64,
    /// Hash of the record before (zeros for seq 1).
    pub prev_hash: Hash,
    /// This record's chain hash.
    pub hash: Hash,
    /// The decoded event.
    pub event: E,
}

/// One record exactly as stored and hashed (ReadLog, copies between
/// backends, standby tailing): `hash` is
/// `codec::record_hash(prev_hash, seq, at, payload)` for `version` 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Dense sequence number from 1.
    pub seq: u64,
    /// Instant the event takes effect (Unix seconds).
    pub at: i64,
    /// Record layout version (1: see `codec`).
    pub version: u8,
    /// Hash of the record before (zeros for seq 1).
    pub prev_hash: Hash,
    /// This record's chain hash.
    pub hash: Hash,
    /// The event bytes (bincode 2 standard of the event), as hashed.
    pub payload: Vec<u8>,
}

impl RawRecord {
    /// The record, borrowed.
    pub fn as_ref(&self) -> RawRecordRef<'_> {
        RawRecordRef {
            seq: self.seq,
            at: self.at,
            version: self.version,
            prev_hash: &self.prev_hash,
            hash: &self.hash,
            payload: &self.payload,
        }
    }
}

impl From<RawRecordRef<'_>> for RawRecord {
    fn from(r: RawRecordRef<'_>) -> RawRecord {
        RawRecord {
            seq: r.seq,
            at: r.at,
            version: r.version,
            prev_hash: *r.prev_hash,
            hash: *r.hash,
            payload: r.payload.to_vec(),
        }
    }
}

/// A [`RawRecord`] borrowed from where it is stored ([`LogStore::visit_raw`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecordRef<'a> {
    /// Dense sequence number from 1.
    pub seq: u64,
    /// Instant the event takes effect (Unix seconds).
    pub at: i64,
    /// Record layout version.
    pub version: u8,
    /// Hash of the record before.
    pub prev_hash: &'a Hash,
    /// This record's chain hash.
    pub hash: &'a Hash,
    /// The event bytes, as hashed.
    pub payload: &'a [u8],
}

/// Where a ledger is stored: a sled data directory (the default) or a
/// PostgreSQL database (a libpq-style URL or key=value string).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded sled store in this directory.
    Dir(std::path::PathBuf),
    /// A PostgreSQL connection string (may hold a password: never print it,
    /// print [`StoreLocation::describe`]).
    Postgres(String),
}

impl StoreLocation {
    /// A `postgres://` / `postgresql://` URL or a libpq key=value string is
    /// a database; anything else a directory.
    pub fn parse(s: &str) -> StoreLocation {
        if pg_conn::looks_like_postgres(s) {
            StoreLocation::Postgres(s.to_owned())
        } else {
            StoreLocation::Dir(s.into())
        }
    }

    /// A command-line path argument that may hold a database URL instead.
    pub fn from_arg(p: &std::path::Path) -> StoreLocation {
        match p.to_str() {
            Some(s) if pg_conn::looks_like_postgres(s) => StoreLocation::Postgres(s.to_owned()),
            _ => StoreLocation::Dir(p.to_path_buf()),
        }
    }

    /// For people and logs: the directory, or the database without its password.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Dir(d) => d.display().to_string(),
            StoreLocation::Postgres(url) => match pg_conn::parse_config(url) {
                Ok((cfg, _)) => pg_conn::describe(&cfg),
                Err(_) => "postgres (unparsable connection string)".into(),
            },
        }
    }
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::str::FromStr for StoreLocation {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(StoreLocation::parse(s))
    }
}

impl From<&std::path::Path> for StoreLocation {
    fn from(p: &std::path::Path) -> Self {
        StoreLocation::Dir(p.to_path_buf())
    }
}

impl From<&std::path::PathBuf> for StoreLocation {
    fn from(p: &std::path::PathBuf) -> Self {
        StoreLocation::Dir(p.clone())
    }
}

impl From<std::path::PathBuf> for StoreLocation {
    fn from(p: std::path::PathBuf) -> Self {
        StoreLocation::Dir(p)
    }
}

impl From<&StoreLocation> for StoreLocation {
    fn from(l: &StoreLocation) -> Self {
        l.clone()
    }
}

/// A snapshot of the folded state and the head it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot<S> {
    /// The last record folded into `state`.
    pub head: Head,
    /// The state after folding records `1..=head.seq`.
    pub state: S,
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system failed.
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    /// sled failed (it reports its own corruption this way too).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// The stored bytes are damaged or were tampered with; `seq` is the
    /// first record that cannot be trusted.
    #[error("seq {seq}: {what}")]
    Corrupt {
        /// First bad seq.
        seq: u64,
        /// What is wrong, for a person.
        what: String,
    },
    /// An event could not be encoded (a caller bug).
    #[error("cannot encode event: {0}")]
    Encode(String),
    /// An event encodes to more than [`codec::MAX_EVENT_BYTES`].
    #[error("event encodes to {bytes} bytes, more than the limit of {limit}")]
    EventTooLarge {
        /// Encoded size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// `at` would go backwards along the log (spec §3); a caller bug.
    #[error("event at {at} is earlier than the last record's at {last_at}")]
    AtGoesBackwards {
        /// Instant of the rejected event.
        at: i64,
        /// Instant of the log head.
        last_at: i64,
    },
    /// An earlier append failed while writing: reopen the store.
    #[error("an earlier append failed while writing; reopen the store")]
    Poisoned,
    /// A snapshot could not be encoded or decoded.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// The stored signed tree head could not be read or written.
    #[error("signed tree head: {0}")]
    SignedHead(#[from] sth::SthError),
    /// Another process holds the data directory's lock: a running service.
    #[error(
        "the ledger in {} is in use: a running isc-ledger service (or another process) holds its lock. \
         The offline tools read a stopped store only; audit a live ledger with \
         `isc-ledger audit --server URL`, or stop the service first",
        dir.display()
    )]
    InUse {
        /// The data directory.
        dir: std::path::PathBuf,
    },
    /// The store's recorded settings, sled's `conf` and this build disagree.
    #[error("store settings: {0}")]
    Settings(String),
    /// PostgreSQL failed or refused (connection, schema, a statement).
    #[error("{0}")]
    Postgres(String),
    /// The append was refused: this node no longer holds the writer lease
    /// (its fencing epoch is stale). Nothing of the batch is acknowledged.
    #[error("append refused: this node no longer holds the writer lease (epoch {epoch})")]
    Fenced {
        /// The epoch this node held.
        epoch: u64,
    },
    /// The append was refused because records already hold its seqs (a
    /// concurrent or late-committing append): nothing of it was recorded.
    #[error("append refused: the log already holds records after seq {after} (another writer)")]
    SeqTaken {
        /// The head the refused append extended.
        after: u64,
    },
}

/// A backend for the log. sled is the embedded default ([`SledLog`]); a
/// second backend implements this trait and nothing above the store changes.
pub trait LogStore<E: Serialize + DeserializeOwned + Indexed> {
    /// Appends `(at, event)` pairs as consecutive records. Returns their
    /// seqs; when it returns `Ok`, every one of them is durable
    /// (`fdatasync`ed). On error nothing of the batch is acknowledged.
    fn append(&mut self, batch: &[(i64, E)]) -> Result<Vec<u64>, StoreError>;

    /// The last durable record.
    fn head(&self) -> Head;

    /// Records `from_seq..=to_seq` (clamped to the log) in seq order, with
    /// their chain hashes; the chain is checked as it is read.
    fn read_range(
        &self,
        from_seq: u64,
        to_seq: u64,
    ) -> impl Iterator<Item = Result<StoredRecord<E>, StoreError>> + '_;

    /// Records `from_seq..=to_seq` (clamped to the log) exactly as stored,
    /// in seq order; the chain is checked as it is read (a break is an
    /// error at its seq, after which the iterator ends).
    fn read_raw(
        &self,
        from_seq: u64,
        to_seq: u64,
    ) -> impl Iterator<Item = Result<RawRecord, StoreError>> + '_;

    /// [`read_raw`](Self::read_raw) with each record lent to `f` instead
    /// of copied out (a backend may lend it from the stored frame). On a
    /// defect `f` has seen the records before it.
    ///
    /// `known`: the chain hashes when the caller has them already (the
    /// Merkle tree): `known[i]` is the hash of record `from_seq - 1 + i`
    /// (the genesis hash for seq 0), through `to_seq`. A backend may lend
    /// those instead of re-hashing the stored bytes (sled does, and still
    /// checks each frame's stored link against them); the bytes are then not
    /// checked against the hashes here: whoever reads them does (an
    /// auditor). This default ignores `known`.
    fn visit_raw(
        &self,
        from_seq: u64,
        to_seq: u64,
        known: Option<&[Hash]>,
        f: &mut dyn FnMut(RawRecordRef<'_>),
    ) -> Result<(), StoreError> {
        let _ = known;
        for r in self.read_raw(from_seq, to_seq) {
            f(r?.as_ref());
        }
        Ok(())
    }

    /// Chain hashes of records `from_seq..=to_seq` (clamped to the log), in
    /// seq order: the leaves of the Merkle tree. A backend may answer the
    /// records it just appended from memory.
    fn chain_hashes(&self, from_seq: u64, to_seq: u64) -> Result<Vec<Hash>, StoreError> {
        self.read_raw(from_seq, to_seq)
            .map(|r| r.map(|r| r.hash))
            .collect()
    }

    /// Every record of one account, in seq order, without scanning the log.
    fn read_account(&self, account_id: &str) -> Result<Vec<StoredRecord<E>>, StoreError>;

    /// The events of one account with their seqs, in seq order: what
    /// [`LogStore::read_account`] reads, without the chain hashes (a
    /// backend may skip hashing what it returns; frames are still checked).
    fn read_account_events(&self, account_id: &str) -> Result<Vec<(u64, E)>, StoreError> {
        Ok(self
            .read_account(account_id)?
            .into_iter()
            .map(|r| (r.seq, r.event))
            .collect())
    }

    /// Stores a snapshot of `state`, which must be the fold of the log up to
    /// the current head.
    fn save_snapshot<S: SnapshotState>(&mut self, state: &S) -> Result<(), StoreError>;

    /// The newest snapshot that is intact, of `S::schema()`, and whose chain
    /// hash matches the log; `None` when there is none (replay from seq 1).
    fn load_snapshot<S: SnapshotState>(&self) -> Result<Option<Snapshot<S>>, StoreError>;

    /// Stores the newest signed tree head (sled: the file
    /// `<data>/signed-tree-head.json`, replaced atomically). `durable`
    /// makes it survive a power loss (fsync of the file and directory);
    /// otherwise it may lag behind after a crash (ARCHITECTURE.md).
    fn save_signed_head(&self, head: &SignedTreeHead, durable: bool) -> Result<(), StoreError>;

    /// The stored signed tree head; `None` when none was ever stored, an
    /// error when it is there but unreadable. Not checked against the log.
    fn load_signed_head(&self) -> Result<Option<SignedTreeHead>, StoreError>;
}
