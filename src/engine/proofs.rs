//! The engine's Merkle tree and signed heads (spec §13).
//!
//! The writer owns the ledger key and, after each group commit, pushes the
//! new records' chain hashes into the tree (derived from the log, never a
//! second truth: a restart rebuilds it from the records), signs the head
//! and publishes it. Readers (tree heads, proofs) share the tree under a
//! read lock held only while a proof is computed (microseconds); the writer
//! takes the write lock only to push a batch's leaves.
//!
//! The head file (`LogStore::save_signed_head`) is written lagging: without
//! fsync at most every [`HEAD_FILE_EVERY`] after a commit, with fsync at
//! most every [`HEAD_FILE_DURABLE_EVERY`] and at a clean stop (exact). No
//! extra fdatasync per batch.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::store::merkle::MerkleTree;
use crate::store::sth::{LedgerKey, SignedTreeHead};
use crate::store::{Hash, LogStore, StoreError};

/// Un-synced head-file writes are at least this far apart.
pub const HEAD_FILE_EVERY: Duration = Duration::from_millis(10);
/// Durable (fsynced) head-file writes are at least this far apart; also
/// the period at which a lagging head file is caught up when idle.
pub const HEAD_FILE_DURABLE_EVERY: Duration = Duration::from_secs(1);

/// Leaves read per store call when the tree is rebuilt at start-up.
const REBUILD_CHUNK: u64 = 1 << 16;

/// An inclusion proof (spec §13 `InclusionProof`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The record's seq (leaf index + 1).
    pub seq: u64,
    /// The tree size the path is for.
    pub tree_size: u64,
    /// `SHA-256(0x00 ‖ chain_hash)` of the record.
    pub leaf_hash: Hash,
    /// Audit path, leaf to root.
    pub path: Vec<Hash>,
}

/// A consistency proof (spec §13 `ConsistencyProof`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// Older size.
    pub first_size: u64,
    /// Newer size.
    pub second_size: u64,
    /// RFC 9162 §2.1.4 path (empty when the sizes are equal).
    pub path: Vec<Hash>,
}

/// Why a proof query is refused (mapped to gRPC codes by `api`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofQueryError {
    /// Malformed query (`INVALID_ARGUMENT`).
    #[error("{0}")]
    Invalid(String),
    /// A size beyond the log (`OUT_OF_RANGE`).
    #[error("{0}")]
    OutOfRange(String),
    /// The engine cannot answer (`UNAVAILABLE`).
    #[error("{0}")]
    Unavailable(String),
}

/// The tree and the newest signed head, shared with readers.
#[derive(Debug)]
pub(crate) struct TreeState {
    pub(crate) tree: MerkleTree,
    /// The newest signed head (size ≤ tree size).
    pub(crate) head: SignedTreeHead,
}

impl TreeState {
    pub(crate) fn inclusion(
        &self,
        seq: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, ProofQueryError> {
        if seq == 0 {
            return Err(ProofQueryError::Invalid("seq must be at least 1".into()));
        }
        let newest = self.head.tree_size;
        if tree_size > newest {
            return Err(ProofQueryError::OutOfRange(format!(
                "tree_size {tree_size} is beyond the log (newest signed head has size {newest})"
            )));
        }
        let size = if tree_size == 0 { newest } else { tree_size };
        if seq > size {
            return Err(ProofQueryError::Invalid(format!(
                "seq {seq} is not in the tree of size {size}"
            )));
        }
        let leaf = self.tree.leaf(seq - 1);
        let path = self.tree.inclusion_proof(seq - 1, size);
        match (leaf, path) {
            (Some(leaf_hash), Some(path)) => Ok(InclusionProof {
                seq,
                tree_size: size,
                leaf_hash,
                path,
            }),
            _ => Err(ProofQueryError::Unavailable(
                "the tree is behind its head".into(),
            )),
        }
    }

    pub(crate) fn consistency(
        &self,
        first_size: u64,
        second_size: u64,
    ) -> Result<ConsistencyProof, ProofQueryError> {
        if first_size == 0 {
            return Err(ProofQueryError::Invalid(
                "first_size must be at least 1".into(),
            ));
        }
        let newest = self.head.tree_size;
        for s in [first_size, second_size] {
            if s > newest {
                return Err(ProofQueryError::OutOfRange(format!(
                    "size {s} is beyond the log (newest signed head has size {newest})"
                )));
            }
        }
        let second = if second_size == 0 {
            newest
        } else {
            second_size
        };
        if first_size > second {
            return Err(ProofQueryError::Invalid(format!(
                "first_size {first_size} is larger than second_size {second}"
            )));
        }
        self.tree
            .consistency_proof(first_size, second)
            .map(|path| ConsistencyProof {
                first_size,
                second_size: second,
                path,
            })
            .ok_or_else(|| ProofQueryError::Unavailable("the tree is behind its head".into()))
    }
}

/// The tree of the log's records `1..=size`, from their chain hashes read
/// in bulk (the start-up rebuild's part that does not need the state).
pub(crate) fn build_tree<L: LogStore<crate::domain::Event>>(
    log: &L,
    size: u64,
) -> Result<MerkleTree, StoreError> {
    let mut tree = MerkleTree::new();
    push_leaves(log, &mut tree, size)?;
    Ok(tree)
}

/// Pushes the leaves of records `tree.size() + 1 ..= size`.
fn push_leaves<L: LogStore<crate::domain::Event>>(
    log: &L,
    tree: &mut MerkleTree,
    size: u64,
) -> Result<(), StoreError> {
    let mut from = tree.size() + 1;
    while from <= size {
        let to = size.min(from + REBUILD_CHUNK - 1);
        let hashes = log.chain_hashes(from, to)?;
        if hashes.is_empty() {
            break;
        }
        for h in &hashes {
            tree.push(*h);
        }
        from = tree.size() + 1;
    }
    Ok(())
}

/// Why the proofs could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ProofsStartError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key could not be loaded or created.
    #[error("ledger key: {0}")]
    Key(crate::store::sth::SthError),
    /// The stored head says the log was longer, or different.
    #[error("{0}")]
    HeadMismatch(String),
    /// The node's key is not the one the ledger is signed with.
    #[error("{0}")]
    KeyMismatch(String),
}

/// Rebuilds the tree from the log's chain hashes and checks it against the
/// stored signed head: a log shorter than that head is missing acknowledged
/// records, one with another root at that size was rewritten. Either is
/// refused (the operator runs `verify`). With `shared_log` (several nodes
/// on one database) another writer may have appended since this node read
/// the log's head, so a larger stored head is not a loss.
///
/// `prefix` is the tree of the log's first records when it was built
/// already (by [`build_tree`], on another thread while the state loaded);
/// the records after it are pushed here. Returns the tree and the stored
/// head it was checked against (for [`check_key_pin`]).
pub(crate) fn rebuild<L: LogStore<crate::domain::Event>>(
    log: &L,
    prefix: Option<MerkleTree>,
    shared_log: bool,
) -> Result<(MerkleTree, Option<SignedTreeHead>), ProofsStartError> {
    let started = Instant::now();
    let size = log.head().seq;
    let mut tree = match prefix {
        Some(t) if t.size() <= size => t,
        _ => MerkleTree::new(),
    };
    push_leaves(log, &mut tree, size)?;
    if tree.size() != size {
        return Err(ProofsStartError::HeadMismatch(format!(
            "the log has {size} records but only {} chain hashes were read",
            tree.size()
        )));
    }
    tracing::info!(
        records = size,
        ms = started.elapsed().as_millis() as u64,
        "Merkle tree rebuilt from the log"
    );
    let stored = log.load_signed_head()?;
    if let Some(stored) = &stored {
        if stored.tree_size > size && shared_log {
            tracing::info!(
                stored = stored.tree_size,
                log = size,
                "the stored signed head is ahead: another node appended meanwhile"
            );
        } else if stored.tree_size > size {
            return Err(ProofsStartError::HeadMismatch(format!(
                "records {}..{} acknowledged under the signed head of size {} are missing from the log (run `isc-ledger verify`)",
                size + 1,
                stored.tree_size,
                stored.tree_size
            )));
        }
        if stored.tree_size <= size && tree.root_at(stored.tree_size) != Some(stored.root_hash) {
            return Err(ProofsStartError::HeadMismatch(format!(
                "the log's first {} records do not have the root of the stored signed head (the log was rewritten; run `isc-ledger verify`)",
                stored.tree_size
            )));
        }
    }
    Ok((tree, stored))
}

/// Loads the signing key: the `--signing-key` file when given, else
/// `<dir>/ledger-key`, created on first start, where `dir` is the sled data
/// directory or, for a database store, the node's own directory
/// (`key_dir`: `serve --data`). A database store with neither (library use)
/// signs with a key of this run only (warned; `check_key_pin` refuses it on
/// a ledger that already has heads of another key).
pub(crate) fn load_key(
    explicit: Option<&Path>,
    store: &crate::store::StoreLocation,
    key_dir: Option<&Path>,
) -> Result<LedgerKey, ProofsStartError> {
    if let Some(p) = explicit {
        let key = LedgerKey::load(p).map_err(ProofsStartError::Key)?;
        tracing::info!(public_key = %key.public_key_hex(), file = %p.display(), "ledger signing key loaded");
        return Ok(key);
    }
    let dir = match (store, key_dir) {
        (crate::store::StoreLocation::Dir(d), _) => d.clone(),
        (_, Some(d)) => {
            std::fs::create_dir_all(d).map_err(|err| {
                ProofsStartError::Key(crate::store::sth::SthError::Io {
                    path: d.display().to_string(),
                    err,
                })
            })?;
            d.to_path_buf()
        }
        (_, None) => {
            let key = LedgerKey::generate().map_err(ProofsStartError::Key)?;
            tracing::warn!(
                public_key = %key.public_key_hex(),
                "no signing key with a database store: signing with a key of this run only; give every node the same `--signing-key FILE` (isc-ledger key new)"
            );
            return Ok(key);
        }
    };
    let path = dir.join(crate::store::sth::DEFAULT_KEY_FILE);
    let (key, created) = LedgerKey::load_or_create(&path).map_err(ProofsStartError::Key)?;
    if created {
        tracing::info!(
            public_key = %key.public_key_hex(), file = %path.display(),
            "created a new ledger signing key"
        );
    } else {
        tracing::info!(public_key = %key.public_key_hex(), file = %path.display(), "ledger signing key loaded");
    }
    Ok(key)
}

/// Refuses a signing key other than the one the ledger's stored head was
/// signed with: receipt holders and auditors pin the ledger's public key, so
/// a node (a restart, a second node on the same database) signing with
/// another key would make every check of its heads fail.
pub(crate) fn check_key_pin(
    stored: Option<&SignedTreeHead>,
    key: &LedgerKey,
) -> Result<(), ProofsStartError> {
    match stored {
        Some(stored) if stored.public_key != key.public_key() => {
            Err(ProofsStartError::KeyMismatch(format!(
                "this ledger's signed heads are made with the key {}, this node's signing key is {}: start every node with the ledger's key file (`--signing-key FILE`); a new key would make every receipt holder's and auditor's check fail",
                hex::encode(stored.public_key),
                key.public_key_hex()
            )))
        }
        _ => Ok(()),
    }
}

/// The writer's side: the key and the head file's lag.
pub(crate) struct Signer {
    pub(crate) key: LedgerKey,
    /// Size of the head last written to the head file, and whether durably.
    file_size: u64,
    file_durable: bool,
    last_write: Instant,
    last_durable: Instant,
}

impl Signer {
    pub(crate) fn new(key: LedgerKey) -> Signer {
        let now = Instant::now();
        Signer {
            key,
            file_size: u64::MAX,
            file_durable: false,
            last_write: now,
            last_durable: now,
        }
    }

    /// Writes `head` to the head file if the lag policy says so (`force`:
    /// now and durably, as at a clean stop). Failures are logged: the head
    /// file is derived and never blocks a commit.
    pub(crate) fn save<L: LogStore<crate::domain::Event>>(
        &mut self,
        log: &L,
        head: &SignedTreeHead,
        force: bool,
    ) {
        let now = Instant::now();
        let current = self.file_size == head.tree_size;
        if current
            && (self.file_durable || !force && now < self.last_durable + HEAD_FILE_DURABLE_EVERY)
        {
            return;
        }
        let durable = force || now >= self.last_durable + HEAD_FILE_DURABLE_EVERY;
        if !durable && now < self.last_write + HEAD_FILE_EVERY {
            return;
        }
        match log.save_signed_head(head, durable) {
            Ok(()) => {
                self.file_size = head.tree_size;
                self.file_durable = durable;
                self.last_write = now;
                if durable {
                    self.last_durable = now;
                }
            }
            Err(e) => tracing::warn!("cannot write the signed tree head file: {e}"),
        }
    }
}
