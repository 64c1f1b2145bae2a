//! The live ledger: one writer owns the log and the state.
//!
//! Owns: the order of records, group commit, stamping `at` from a [`Clock`],
//! the shared in-memory state that reads use, and the publication of notices
//! to watchers. Must not: validate input (that is `Ledger::decide`) or know
//! about gRPC (that is `api`).
//!
//! How a write flows: a handler sends a [`Request`] on a bounded channel and
//! awaits a oneshot reply. The writer thread drains up to
//! [`EngineConfig::group_max`] queued requests, runs `decide` + `apply` for
//! each against its private working copy of the ledger (so later commands of
//! a group see earlier ones), makes ONE durable append for the whole group,
//! then applies the same events to the shared state under its write lock,
//! broadcasts the notices and answers everyone. Rejections and idempotent
//! retries are answered after the append too, since they may depend on a
//! command earlier in the same group.
//!
//! Invariants:
//! - the shared state only ever holds durable records (applied after the
//!   append returned);
//! - `at` is `max(clock, last_at)`: never below the log's last `at`;
//! - notices due at `t` are published before the events at `t`, and a
//!   notice is broadcast under the same write lock that makes it visible, so
//!   a watcher that subscribes under the read lock replays exactly what was
//!   broadcast before it and receives the rest live;
//! - after a storage failure the writer refuses every write (UNAVAILABLE):
//!   it no longer knows what is on disk, a restart replays the log.

pub mod accounts;
pub mod clock;
mod cluster;
pub mod metrics;
pub mod proofs;
mod writer;

pub use cluster::ClusterOptions;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::domain::account::ApplyError;
use crate::domain::devices::DeviceView;
use crate::domain::ids::check_id;
use crate::domain::maintenance::MaintenanceView;
use crate::domain::sla::{SlaReport, SupportCalendar};
use crate::domain::{
    account_view_at, notices_history, statement, AccountView, Command, ComplianceReport, Decision,
    Event, Ledger, Notice, Policy, Receipt, Rejection, Statement,
};
use crate::store::ledger::{load_ledger, EventLog};
use crate::store::{LogStore, SignedTreeHead, StoreError, StoreLocation, StoreOptions};
pub use accounts::{AccountIndex, IndexCounts, ListOrder, ListPage, ListQuery};
pub use clock::{Clock, ManualClock, SystemClock};
pub use proofs::{ConsistencyProof, InclusionProof, ProofQueryError};

/// Most commands committed by one durable append. Bounds the latency of
/// the last command of a group and the memory of one batch.
pub const DEFAULT_GROUP_MAX: usize = 1024;
/// Default longest linger before an append: a fraction of one flush here
/// (~2 ms); 0, 300, 1000 and 2000 µs were measured, 300 was best.
pub const DEFAULT_GROUP_LINGER: std::time::Duration = std::time::Duration::from_micros(300);
/// Commands waiting for the writer; past this, handlers wait (backpressure).
pub const QUEUE_CAPACITY: usize = 16_384;
/// Notices buffered per watcher before it is declared lagging.
pub const DEFAULT_WATCH_BUFFER: usize = 4_096;
/// Longest wait of a read for a `min_seq` this node has not applied yet
/// (`serve --min-seq-wait`).
pub const DEFAULT_MIN_SEQ_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The log the engine writes.
pub type Log = EventLog;

/// Why the engine could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The ledger refused the command (a domain rule).
    #[error("{0}")]
    Rejected(Rejection),
    /// Storage failed or the engine is stopping; nothing was recorded.
    #[error("{0}")]
    Unavailable(String),
}

impl From<Rejection> for EngineError {
    fn from(r: Rejection) -> Self {
        EngineError::Rejected(r)
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The writer thread could not be spawned.
    #[error("cannot start the writer thread: {0}")]
    Thread(std::io::Error),
    /// The support calendar cannot be recorded.
    #[error("support calendar refused: {0}")]
    Calendar(String),
    /// The Merkle tree, the signing key or the stored signed head.
    #[error(transparent)]
    Proofs(#[from] proofs::ProofsStartError),
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Billing policy (min activation runtime, reminders, compliance).
    pub policy: Policy,
    /// Most commands per durable append (1 = no group commit).
    pub group_max: usize,
    /// Snapshot every N records.
    pub snapshot_every: u64,
    /// Notices buffered per watcher before it is declared lagging.
    pub watch_buffer: usize,
    /// Longest wait for the clients just answered before the next durable
    /// append (see the writer's `linger`); zero disables it. Bounds the
    /// latency group commit may add.
    pub group_linger: std::time::Duration,
    /// Longest wait of a read for a `min_seq` not applied yet.
    pub min_seq_wait: std::time::Duration,
    /// Several nodes share the (PostgreSQL) log: take part in the writer
    /// lease. `None`: this node is the only writer.
    pub cluster: Option<ClusterOptions>,
    /// The support calendar to run on (spec §16): recorded in the log at
    /// start-up when it differs from the one in force.
    pub support_calendar: SupportCalendar,
    /// The ledger's signing key file; `None`: `<data>/ledger-key` (or
    /// `<key_dir>/ledger-key` for a database store), created on first start.
    pub signing_key: Option<PathBuf>,
    /// For a database store: the node's own directory, where its default
    /// signing key lives (`serve --data`). `None` with a database store and
    /// no `signing_key`: a key of this run only.
    pub key_dir: Option<PathBuf>,
    /// Keep the Merkle tree and sign heads (only benchmarks turn it off).
    pub proofs: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            group_max: DEFAULT_GROUP_MAX,
            snapshot_every: crate::store::sled_log::DEFAULT_SNAPSHOT_EVERY_RECORDS,
            watch_buffer: DEFAULT_WATCH_BUFFER,
            group_linger: DEFAULT_GROUP_LINGER,
            min_seq_wait: DEFAULT_MIN_SEQ_WAIT,
            cluster: None,
            support_calendar: SupportCalendar::default(),
            signing_key: None,
            key_dir: None,
            proofs: true,
        }
    }
}

/// What the writer is asked to do.
pub(crate) enum Request {
    Command {
        cmd: Command,
        reply: oneshot::Sender<Result<(Receipt, Option<SignedTreeHead>), EngineError>>,
    },
    SetTime {
        t: i64,
        reply: oneshot::Sender<Result<i64, EngineError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// The state reads see: only durable records.
pub(crate) struct Live {
    pub(crate) ledger: Ledger,
    /// Time-driven notices up to this instant have been published.
    pub(crate) published_until: i64,
    /// The listing index over `ledger`'s accounts.
    pub(crate) accounts: AccountIndex,
}

impl Live {
    /// Folds one durable record into the shared state and the listing
    /// index: the one way records reach what reads see.
    pub(crate) fn apply_durable(&mut self, seq: u64, ev: &Event) -> Result<(), ApplyError> {
        self.ledger.apply_quiet(seq, ev)?;
        if let Some(id) = ev.account_id() {
            self.accounts.update(&self.ledger, id);
        }
        Ok(())
    }

    /// Records that time-driven notices up to `t` are published.
    pub(crate) fn published(&mut self, t: i64) {
        self.published_until = t;
        self.accounts.expire(t);
    }
}

/// Counters of the writer's work, for logs and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records durably appended.
    pub records: AtomicU64,
    /// Durable appends (one per group).
    pub groups: AtomicU64,
    /// Time spent in durable appends, microseconds.
    pub append_us: AtomicU64,
    /// Time spent handling batches (decide, apply, append, publish, answer).
    pub busy_us: AtomicU64,
    /// Time spent lingering for the next group.
    pub linger_us: AtomicU64,
}

pub(crate) struct Shared {
    pub(crate) stats: Stats,
    pub(crate) metrics: Arc<metrics::Metrics>,
    /// When the engine started, and how long loading the ledger took.
    pub(crate) started: std::time::Instant,
    pub(crate) replay_seconds: f64,
    /// Milliseconds after `started` of the last snapshot this process wrote.
    pub(crate) snapshot_ms: AtomicU64,
    pub(crate) live: RwLock<Live>,
    /// The log; the writer holds the write lock only while appending.
    pub(crate) log: RwLock<Log>,
    pub(crate) notices: broadcast::Sender<Notice>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The last seq applied to `live`, sent under its write lock (a reader
    /// woken by it finds the state at least there).
    pub(crate) applied: watch::Sender<u64>,
    /// Bound of [`Engine::wait_applied`].
    pub(crate) min_seq_wait: std::time::Duration,
    /// The Merkle tree and newest signed head (`None`: proofs disabled).
    pub(crate) tree: Option<RwLock<proofs::TreeState>>,
}

/// What the console's ledger page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerInfo {
    pub head_seq: u64,
    pub last_at: i64,
    pub accounts: usize,
    /// Records and durable appends since this process started.
    pub records_appended: u64,
    pub durable_appends: u64,
    /// Whether this process wrote a snapshot (else the age counts from start).
    pub snapshot_written: bool,
    pub snapshot_age_seconds: f64,
    pub uptime_seconds: f64,
    pub replay_seconds: f64,
    /// The clock's reading.
    pub now: i64,
}

/// A cheap, cloneable handle on the running engine.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    writer: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
    /// The lease keeper of a node sharing the log (stopped after the writer).
    keeper: Arc<std::sync::Mutex<Option<cluster::KeeperThread>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

fn lock_poisoned() -> EngineError {
    EngineError::Unavailable("internal state lock poisoned; restart the server".into())
}

impl Engine {
    /// Opens the log at `store` (a sled directory or a PostgreSQL
    /// database), rebuilds the state (snapshot + tail) and starts the
    /// writer thread.
    pub fn start(
        store: impl Into<StoreLocation>,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, StartError> {
        let started = std::time::Instant::now();
        let store: StoreLocation = store.into();
        // Several nodes share a PostgreSQL log only.
        let db = match (&config.cluster, &store) {
            (None, _) => None,
            (Some(_), StoreLocation::Postgres(url)) => Some(crate::store::pg_conn::parse(url)?),
            (Some(_), StoreLocation::Dir(_)) => {
                return Err(StartError::Store(StoreError::Postgres(
                    "several nodes need a PostgreSQL store (--store postgres://…)".into(),
                )))
            }
        };
        let mut log = EventLog::open(
            store.clone(),
            StoreOptions {
                snapshot_every_records: config.snapshot_every.max(1),
                fdatasync: true,
            },
        )?;
        // The Merkle tree needs only the chain hashes: it is built on a
        // second thread while the state loads (snapshot + tail replay).
        let (ledger, prefix) = std::thread::scope(|scope| {
            let size = log.head().seq;
            let log = &log;
            let tree = if config.proofs {
                std::thread::Builder::new()
                    .name("merkle-rebuild".into())
                    .spawn_scoped(scope, move || proofs::build_tree(log, size))
                    .ok()
            } else {
                None
            };
            let ledger = load_ledger(log, config.policy.clone());
            // A failed or refused thread leaves the whole rebuild to below.
            let prefix = tree.and_then(|t| t.join().ok()).and_then(Result::ok);
            (ledger, prefix)
        });
        let mut ledger = ledger?;
        if config.cluster.is_some() && ledger.sla().calendar() != &config.support_calendar {
            // Only a sole writer records it at start-up; a cluster node may
            // be a standby (it must not write), so it keeps the recorded one.
            tracing::warn!("--support-calendar differs from the recorded calendar; not recorded by a cluster node");
        } else if ledger.sla().calendar() != &config.support_calendar {
            let cmd = Command::SetSupportCalendar {
                calendar: config.support_calendar.clone(),
            };
            match ledger.decide(&cmd, clock.now()) {
                Ok(Decision::Append(ev)) => {
                    crate::store::ledger::commit(&mut log, &mut ledger, vec![ev])?;
                    tracing::info!(
                        zone = %config.support_calendar.zone,
                        holidays = config.support_calendar.holidays.len(),
                        "support calendar recorded"
                    );
                }
                Ok(Decision::Retry(_)) => {}
                Err(rej) => return Err(StartError::Calendar(rej.message)),
            }
        }
        tracing::info!(
            records = ledger.last_seq(),
            accounts = ledger.account_count(),
            last_at = ledger.last_at(),
            "ledger loaded"
        );
        let appended = match &config.cluster {
            Some(opts) => {
                log.set_idle_transaction_timeout(opts.lease)?;
                log.appended_signal()?
            }
            None => None,
        };
        let (tree, signer) = if config.proofs {
            let (tree, stored) = proofs::rebuild(&log, prefix, config.cluster.is_some())?;
            let key = proofs::load_key(
                config.signing_key.as_deref(),
                &store,
                config.key_dir.as_deref(),
            )?;
            proofs::check_key_pin(stored.as_ref(), &key)?;
            let h = log.head();
            let head = key.sign(tree.size(), tree.root(), h.at);
            // A node sharing the log stores heads only while it writes.
            if config.cluster.is_none() {
                if let Err(e) = log.save_signed_head(&head, true) {
                    tracing::warn!("cannot write the signed tree head file: {e}");
                }
            }
            (
                Some(RwLock::new(proofs::TreeState { tree, head })),
                Some(proofs::Signer::new(key)),
            )
        } else {
            (None, None)
        };
        let published_until = ledger.last_at().max(clock.now());
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (notices, _) = broadcast::channel(config.watch_buffer.max(1));
        let replay_seconds = started.elapsed().as_secs_f64();
        let shared = Arc::new(Shared {
            stats: Stats::default(),
            metrics: Arc::new(metrics::Metrics::new()),
            started,
            replay_seconds,
            snapshot_ms: AtomicU64::new(0),
            live: RwLock::new(Live {
                accounts: AccountIndex::build(&ledger, published_until),
                ledger: ledger.clone(),
                published_until,
            }),
            log: RwLock::new(log),
            notices,
            clock,
            applied: watch::Sender::new(ledger.last_seq()),
            min_seq_wait: config.min_seq_wait,
            tree,
        });
        let (cluster, keeper) = match (&config.cluster, &db) {
            (Some(opts), Some(db)) => {
                let (mut c, k) = cluster::start(opts, db).map_err(StartError::Thread)?;
                c.appended = appended;
                (Some(c), Some(k))
            }
            _ => (None, None),
        };
        let w = writer::Writer::new(
            ledger,
            published_until,
            shared.clone(),
            rx,
            config.group_max,
            config.group_linger,
            cluster,
        )
        .with_signer(signer);
        let handle = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || w.run())
            .map_err(StartError::Thread)?;
        Ok(Engine {
            tx,
            shared,
            writer: Arc::new(std::sync::Mutex::new(Some(handle))),
            keeper: Arc::new(std::sync::Mutex::new(keeper)),
        })
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Request,
    ) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| EngineError::Unavailable("the ledger is shutting down".into()))?;
        rx.await
            .map_err(|_| EngineError::Unavailable("the ledger is shutting down".into()))?
    }

    /// Decides and durably records a command; answers once it is on disk.
    pub async fn execute(&self, cmd: Command) -> Result<Receipt, EngineError> {
        Ok(self.execute_with_head(cmd).await?.0)
    }

    /// [`Engine::execute`] with the signed tree head the answer was given
    /// under: it contains the receipt's record (for an idempotent retry:
    /// the newest head at the retry). `None` when proofs are disabled.
    pub async fn execute_with_head(
        &self,
        cmd: Command,
    ) -> Result<(Receipt, Option<SignedTreeHead>), EngineError> {
        self.ask(|reply| Request::Command { cmd, reply }).await
    }

    fn tree(&self) -> Result<std::sync::RwLockReadGuard<'_, proofs::TreeState>, ProofQueryError> {
        self.shared
            .tree
            .as_ref()
            .ok_or_else(|| {
                ProofQueryError::Unavailable("proofs are disabled on this server".into())
            })?
            .read()
            .map_err(|_| {
                ProofQueryError::Unavailable("tree lock poisoned; restart the server".into())
            })
    }

    /// The newest signed tree head (spec §13 `GetTreeHead`).
    pub fn tree_head(&self) -> Result<SignedTreeHead, ProofQueryError> {
        Ok(self.tree()?.head)
    }

    /// Inclusion proof of record `seq` in the tree of `tree_size` records
    /// (0 = the newest signed head), checked in the §13 order.
    pub fn inclusion_proof(
        &self,
        seq: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, ProofQueryError> {
        self.tree()?.inclusion(seq, tree_size)
    }

    /// Consistency proof between two tree sizes (`second_size` 0 = the
    /// newest signed head), checked in the §13 order.
    pub fn consistency_proof(
        &self,
        first_size: u64,
        second_size: u64,
    ) -> Result<ConsistencyProof, ProofQueryError> {
        self.tree()?.consistency(first_size, second_size)
    }

    /// The last record a log read may name: the newest signed head's size
    /// (the log's head when proofs are disabled).
    pub fn log_end(&self) -> Result<u64, EngineError> {
        match &self.shared.tree {
            Some(t) => Ok(t.read().map_err(|_| lock_poisoned())?.head.tree_size),
            None => Ok(self
                .shared
                .log
                .read()
                .map_err(|_| lock_poisoned())?
                .head()
                .seq),
        }
    }

    /// Lends `f` up to `max` records from `from_seq` on (at most to
    /// `to_seq`), exactly as stored. Holds the log's read lock only while
    /// reading this chunk (`f` only copies): a log reader (ReadLog) calls it
    /// repeatedly and sends between calls, so a slow reader never holds up
    /// the writer.
    pub fn visit_log_chunk(
        &self,
        from_seq: u64,
        to_seq: u64,
        max: u64,
        f: &mut dyn FnMut(crate::store::RawRecordRef<'_>),
    ) -> Result<(), EngineError> {
        let from = from_seq.max(1);
        let to = to_seq.min(from.saturating_add(max.max(1) - 1));
        // The chain hashes from the Merkle tree when it holds them all (the
        // records are then not re-hashed: an auditor re-hashes them).
        if from > to {
            return Ok(());
        }
        let known = self.shared.tree.as_ref().and_then(|t| {
            let t = t.read().ok()?;
            let mut known = Vec::with_capacity(usize::try_from(to - from + 2).ok()?);
            if from == 1 {
                known.push(crate::store::GENESIS_HASH);
                known.extend_from_slice(t.tree.chain_hashes(0, to)?);
            } else {
                known.extend_from_slice(t.tree.chain_hashes(from - 2, to)?);
            }
            Some(known)
        });
        let log = self.shared.log.read().map_err(|_| lock_poisoned())?;
        log.visit_raw(from, to, known.as_deref(), f)
            .map_err(|e| EngineError::Unavailable(format!("cannot read the log: {e}")))
    }

    /// Moves the manual clock (FAILED_PRECONDITION backwards or on a system
    /// clock) and publishes the notices that fell due.
    pub async fn set_time(&self, t: i64) -> Result<i64, EngineError> {
        if self.shared.clock.as_manual().is_none() {
            return Err(Rejection::precondition(
                "the server runs on the system clock; start it with --clock manual to set the time",
            )
            .into());
        }
        self.ask(|reply| Request::SetTime { t, reply }).await
    }

    /// How much the writer did (records, durable appends).
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The clock's reading.
    pub fn clock_now(&self) -> i64 {
        self.shared.clock.now()
    }

    /// Stops the writer after committing everything queued before this call.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request::Shutdown { reply }).await.is_ok() {
            let _ = rx.await;
        }
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        // Then release the lease: a standby takes over without waiting.
        let keeper = self.keeper.lock().ok().and_then(|mut k| k.take());
        if let Some(mut k) = keeper {
            let _ = tokio::task::spawn_blocking(move || k.stop()).await;
        }
    }

    /// The last seq this node has applied (what its reads show).
    pub fn applied_seq(&self) -> u64 {
        *self.shared.applied.borrow()
    }

    /// Waits until this node has applied `min_seq` (read-your-writes on
    /// any node), at most `min_seq_wait`; past it, UNAVAILABLE naming the
    /// seq the node is at. `min_seq == 0` never waits.
    pub async fn wait_applied(&self, min_seq: u64) -> Result<(), EngineError> {
        let mut rx = self.shared.applied.subscribe();
        let bound = self.shared.min_seq_wait;
        let reached = tokio::time::timeout(bound, rx.wait_for(|s| *s >= min_seq))
            .await
            .map(|r| r.is_ok());
        match reached {
            Ok(true) => Ok(()),
            Ok(false) => Err(EngineError::Unavailable(
                "the ledger is shutting down".into(),
            )),
            Err(_) => Err(EngineError::Unavailable(format!(
                "this node has applied up to seq {}, not yet seq {min_seq} (waited {} ms); \
                 retry, or ask the writer",
                *self.shared.applied.borrow(),
                bound.as_millis()
            ))),
        }
    }

    /// "Now" for reads: the clock, but never before the last record.
    fn read_now(&self, live: &Live) -> i64 {
        self.shared.clock.now().max(live.ledger.last_at())
    }

    /// One account's records (durable and already applied: `seq <= last_seq`).
    fn history(&self, account_id: &str, last_seq: u64) -> Result<Vec<Event>, EngineError> {
        let log = self.shared.log.read().map_err(|_| lock_poisoned())?;
        // Without chain hashes (nothing here needs them): hashing every
        // record of each frame read would hold the lock the writer's append
        // needs several times longer.
        let recs = log
            .read_account_events(account_id)
            .map_err(|e| EngineError::Unavailable(format!("cannot read the log: {e}")))?;
        Ok(recs
            .into_iter()
            .filter(|(seq, _)| *seq <= last_seq)
            .map(|(_, event)| event)
            .collect())
    }

    /// The §8 view at `at` (`None` = now). Served from memory for instants at
    /// or after the account's last event, from its history otherwise.
    pub fn account_view(
        &self,
        account_id: &str,
        at: Option<i64>,
    ) -> Result<AccountView, EngineError> {
        let (t, last_seq) = {
            let live = self.shared.live.read().map_err(|_| lock_poisoned())?;
            let t = at.unwrap_or_else(|| self.read_now(&live));
            if !live.ledger.needs_history(account_id, t) {
                return Ok(live.ledger.account_view(account_id, t)?);
            }
            (t, live.ledger.last_seq())
        };
        // A past instant: fold the account's own records (read without
        // holding the state lock; later records are filtered out).
        let events = self.history(account_id, last_seq)?;
        let live = self.shared.live.read().map_err(|_| lock_poisoned())?;
        Ok(account_view_at(&live.ledger, &events, account_id, t)?)
    }

    /// The statement of `(from, to]`.
    pub fn statement(
        &self,
        account_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Statement, EngineError> {
        check_id("account id", account_id)?;
        crate::domain::report::check_window("statement", from, to)?;
        let seq = self
            .shared
            .live
            .read()
            .map_err(|_| lock_poisoned())?
            .ledger
            .last_seq();
        let events = self.history(account_id, seq)?;
        let live = self.shared.live.read().map_err(|_| lock_poisoned())?;
        Ok(statement(&live.ledger, &events, account_id, from, to)?)
    }

    /// The service's metrics (the gRPC edge and the console record into it).
    pub fn metrics(&self) -> &Arc<metrics::Metrics> {
        &self.shared.metrics
    }

    /// The metrics as Prometheus text, gauges read from the shared state now.
    pub fn scrape(&self) -> Result<String, EngineError> {
        let info = self.info()?;
        let v = metrics::ScrapeValues {
            queue_depth: self.tx.max_capacity() - self.tx.capacity(),
            counts: self.account_counts()?,
            watchers: self.shared.notices.receiver_count(),
            head_seq: info.head_seq,
            snapshot_age_seconds: info.snapshot_age_seconds,
            replay_seconds: info.replay_seconds,
        };
        Ok(self.shared.metrics.encode(&v))
    }

    /// Facts about the ledger for the console's ledger page.
    pub fn info(&self) -> Result<LedgerInfo, EngineError> {
        let (head_seq, last_at, accounts) = {
            let live = self.shared.live.read().map_err(|_| lock_poisoned())?;
            (
                live.ledger.last_seq(),
                live.ledger.last_at(),
                live.ledger.account_count(),
            )
        };
        let since_start = self.shared.started.elapsed().as_secs_f64();
        let snap_ms = self.shared.snapshot_ms.load(Ordering::Relaxed);
        let stats = &self.shared.stats;
        Ok(LedgerInfo {
            head_seq,
            last_at,
            accounts,
            records_appended: stats.records.load(Ordering::Relaxed),
            durable_appends: stats.groups.load(Ordering::Relaxed),
            snapshot_written: snap_ms > 0,
            snapshot_age_seconds: since_start - snap_ms as f64 / 1000.0,
            uptime_seconds: since_start,
            replay_seconds: self.shared.replay_seconds,
            now: self.clock_now(),
        })
    }

    /// The newest signed tree head the store holds, if any.
    pub fn signed_head(&self) -> Result<Option<crate::store::sth::SignedTreeHead>, EngineError> {
        let log = self.shared.log.read().map_err(|_| lock_poisoned())?;
        log.load_signed_head()
            .map_err(|e| EngineError::Unavailable(format!("cannot read the signed tree head: {e}")))
    }

    /// One page of the account listing, from the shared state's index
    /// (never through the writer, never a scan of every account).
    pub fn list_accounts(&self, q: &ListQuery) -> Result<ListPage, EngineError> {
        let live = self.shared.live.read().map_err(|_| lock_poisoned())?;
        let now = self.read_now(&live).max(live.published_until);
        Ok(live.accounts.list(&live.ledger, q, now)?)
    }

    /// Accounts by state and runouts ahead, now.
    pub fn account_counts(&self) -> Result<IndexCounts, EngineError> {
        let live = self.shared.live.read().map_err(|_| lock_poisoned())?;
        let now = self.read_now(&live).max(live.published_until);
        Ok(live.accounts.counts(now))
    }

    /// The devices of an account (spec §14).
    pub fn list_devices(&self, account_id: &str) -> Result<Vec<DeviceView>, EngineError> {
        let live = self.shared.live.read().map_err(|_| lock_poisoned())?;
        Ok(live.ledger.list_devices(account_id)?)
    }

    /// A PBX's maintenance now (spec §15).
    pub fn maintenance(&self, pbx_id: &str) -> Result<MaintenanceView, EngineError> {
        let live = self.shared.live.read().map_err(|_| lock_poisoned())?;
        let t = self.read_now(&live);
        Ok(live.ledger.maintenance_view(pbx_id, t)?)
    }

    /// The continuous-use report over `(from, to]`.
    pub fn compliance(&self, from: i64, to: i64) -> Result<ComplianceReport, EngineError> {
        crate::domain::report::check_window("report", from, to)?;
        let live = self.shared.live.read().map_err(|_| lock_poisoned())?;
        Ok(live.ledger.compliance_report(from, to))
    }

    /// The SLA report over incidents reported in `(from, to]`, open
    /// deadlines judged now.
    pub fn sla_report(&self, from: i64, to: i64) -> Result<SlaReport, EngineError> {
        crate::domain::report::check_window("report", from, to)?;
        let live = self.shared.live.read().map_err(|_| lock_poisoned())?;
        let now = self.read_now(&live);
        Ok(live.ledger.sla_report(from, to, now))
    }

    /// Subscribes to notices: returns the replay of those due in
    /// `(since, published]` (empty for `since == 0`) and the live receiver.
    /// Both are taken under the read lock, so nothing is lost or doubled.
    /// A named account must be a well-formed id (`INVALID_ARGUMENT`) of an
    /// account already opened (`NOT_FOUND` at once: a stream that waited
    /// for a mistyped id would look like a quiet account forever).
    pub fn watch(
        &self,
        account_id: Option<&str>,
        since: i64,
    ) -> Result<(Vec<Notice>, broadcast::Receiver<Notice>), EngineError> {
        if let Some(id) = account_id {
            check_id("account id", id)?;
        }
        let live = self.shared.live.read().map_err(|_| lock_poisoned())?;
        if let Some(id) = account_id {
            if live.ledger.account(id).is_none() {
                return Err(Rejection::not_found(format!("account {id} does not exist")).into());
            }
        }
        let rx = self.shared.notices.subscribe();
        if since == 0 {
            return Ok((Vec::new(), rx));
        }
        let until = live.published_until;
        let ids: Vec<String> = match account_id {
            Some(id) => vec![id.to_string()],
            None => live
                .ledger
                .account_ids()
                .into_iter()
                .map(String::from)
                .collect(),
        };
        let mut replay = Vec::new();
        for id in &ids {
            let events = self.history(id, live.ledger.last_seq())?;
            if since < until {
                replay.extend(notices_history(&live.ledger, &events, id, since, until));
            }
        }
        replay.sort_by(|a, b| (a.at, &a.account_id).cmp(&(b.at, &b.account_id)));
        Ok((replay, rx))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::domain::{Hosting, LicenseLine, NoticeKind, PriceEntryInput, TierInput};

    fn engine(dir: &Path, start_s: i64, config: EngineConfig) -> Engine {
        Engine::start(dir, config, Arc::new(ManualClock::new(start_s))).unwrap()
    }

    fn open(id: &str) -> Command {
        Command::OpenAccount {
            account_id: id.into(),
        }
    }

    fn top_up(id: &str, key: &str, amount: &str) -> Command {
        Command::TopUp {
            account_id: id.into(),
            activation_key: key.into(),
            amount: amount.into(),
        }
    }

    fn prices() -> Command {
        Command::PublishPriceList {
            catalogue: None,
            ext: Default::default(),
            version: 1,
            effective_at: 0,
            entries: vec![PriceEntryInput {
                license_type: "PBX-Port13".into(),
                tiers: vec![TierInput {
                    from_qty: 1,
                    monthly_price: "2.628".into(),
                }],
            }],
        }
    }

    fn rent(id: &str, pbx: &str, qty: u32) -> Command {
        Command::ChangeConfig {
            account_id: id.into(),
            pbx_id: pbx.into(),
            licenses: vec![LicenseLine {
                license_type: "PBX-Port13".into(),
                quantity: qty,
            }],
            firmware_major: 13,
            hosting: Hosting::Gateway,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_waits_for_its_min_seq_within_the_bound() {
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig {
            min_seq_wait: Duration::from_millis(300),
            ..EngineConfig::default()
        };
        let e = engine(dir.path(), 100, config);
        let r = e.execute(open("a")).await.unwrap();
        // Applied already: no wait.
        e.wait_applied(r.seq).await.unwrap();
        assert_eq!(e.applied_seq(), r.seq);
        // A seq applied while the read waits wakes it.
        let waiter = {
            let e = e.clone();
            tokio::spawn(async move { e.wait_applied(r.seq + 1).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r2 = e.execute(open("b")).await.unwrap();
        assert_eq!(r2.seq, r.seq + 1);
        waiter.await.unwrap().unwrap();
        // Past the bound: UNAVAILABLE naming the seq the node is at.
        let t0 = std::time::Instant::now();
        match e.wait_applied(r2.seq + 5).await {
            Err(EngineError::Unavailable(m)) => {
                assert!(m.contains(&format!("up to seq {}", r2.seq)), "{m}");
                assert!(m.contains(&format!("seq {}", r2.seq + 5)), "{m}");
            }
            other => panic!("expected UNAVAILABLE, got {other:?}"),
        }
        assert!(t0.elapsed() >= Duration::from_millis(300));
        e.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commands_share_durable_appends() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), 100, EngineConfig::default());
        e.execute(open("a")).await.unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let e = e.clone();
                tokio::spawn(
                    async move { e.execute(top_up("a", &format!("KEY-group-{i}"), "1")).await },
                )
            })
            .collect();
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap().unwrap().seq);
        }
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (2..=201).collect::<Vec<_>>(),
            "dense, one record each"
        );
        let groups = e.stats().groups.load(Ordering::Relaxed);
        assert!(
            groups < 201,
            "group commit: {groups} appends for 201 records"
        );
        let v = e.account_view("a", None).unwrap();
        assert_eq!(v.balance.to_string(), "200");
        e.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_group_commit_every_record_has_its_own_append() {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig {
            group_max: 1,
            ..EngineConfig::default()
        };
        let e = engine(dir.path(), 100, config);
        e.execute(open("a")).await.unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let e = e.clone();
                tokio::spawn(
                    async move { e.execute(top_up("a", &format!("KEY-solo-{i}"), "1")).await },
                )
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(e.stats().groups.load(Ordering::Relaxed), 21);
        e.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_never_goes_below_the_log_and_the_clock_never_back() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), 1_000, EngineConfig::default());
        assert_eq!(e.execute(open("a")).await.unwrap().at, 1_000);
        let err = e.set_time(999).await.unwrap_err();
        assert!(
            matches!(err, EngineError::Rejected(ref r) if r.code == crate::domain::Code::FailedPrecondition)
        );
        e.shutdown().await;
        drop(e); // releases sled's directory lock
                 // A restart with a clock behind the log still stamps at >= last at.
        let e = engine(dir.path(), 10, EngineConfig::default());
        assert_eq!(e.execute(open("b")).await.unwrap().at, 1_000);
        e.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_watcher_lags_and_never_blocks_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig {
            watch_buffer: 2,
            ..EngineConfig::default()
        };
        let e = engine(dir.path(), 0, config);
        let (_, mut slow) = e.watch(None, 0).unwrap();
        e.execute(prices()).await.unwrap();
        // Ten accounts that each deplete at once (B = 0, r > 0 is refused, so
        // fund them just enough for one day and let the clock run out).
        for i in 0..10 {
            let id = format!("acct-{i}");
            e.execute(open(&id)).await.unwrap();
            e.execute(top_up(&id, &format!("KEY-slow-{i}"), "0.0864"))
                .await
                .unwrap();
            e.execute(rent(&id, &format!("pbx-{i}"), 1)).await.unwrap();
        }
        e.set_time(10 * 86_400).await.unwrap();
        // The writer went on: this command is answered although nobody read.
        e.execute(open("after")).await.unwrap();
        let mut lagged = false;
        loop {
            match slow.try_recv() {
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    lagged = true;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        assert!(lagged, "the slow watcher is told it lagged");
        // A late watcher replays every depletion from history instead.
        let (replay, _) = e.watch(None, 1).unwrap();
        let depletions = replay
            .iter()
            .filter(|n| n.kind == NoticeKind::Depletion)
            .count();
        assert_eq!(depletions, 10);
        e.shutdown().await;
    }
}

#[cfg(test)]
mod scheduler_tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::domain::{Hosting, LicenseLine, NoticeKind, PriceEntryInput, TierInput};

    /// A clock that moves by itself (like the system clock: no `SetTime`),
    /// but whose reading the test controls.
    #[derive(Debug)]
    struct Drifting(AtomicI64);
    impl Clock for Drifting {
        fn now(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_tick_publishes_depletion_without_any_command() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(Drifting(AtomicI64::new(0)));
        let e = Engine::start(dir.path(), EngineConfig::default(), clock.clone()).unwrap();
        e.execute(Command::PublishPriceList {
            catalogue: None,
            ext: Default::default(),
            version: 1,
            effective_at: 0,
            entries: vec![PriceEntryInput {
                license_type: "PBX-Port13".into(),
                tiers: vec![TierInput {
                    from_qty: 1,
                    monthly_price: "2.628".into(),
                }],
            }],
        })
        .await
        .unwrap();
        e.execute(Command::OpenAccount {
            account_id: "a".into(),
        })
        .await
        .unwrap();
        e.execute(Command::TopUp {
            account_id: "a".into(),
            activation_key: "KEY-tick-1".into(),
            amount: "0.0864".into(),
        })
        .await
        .unwrap();
        e.execute(Command::ChangeConfig {
            account_id: "a".into(),
            pbx_id: "p".into(),
            licenses: vec![LicenseLine {
                license_type: "PBX-Port13".into(),
                quantity: 1,
            }],
            firmware_major: 13,
            hosting: Hosting::Gateway,
        })
        .await
        .unwrap();
        let (_, mut rx) = e.watch(Some("a"), 0).unwrap();
        // The clock passes the runout (one day later); no command follows.
        clock.0.store(86_400 + 10, Ordering::SeqCst);
        let n = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                let n = rx.recv().await.unwrap();
                if n.kind == NoticeKind::Depletion {
                    return n;
                }
            }
        })
        .await
        .expect("the writer's tick publishes the depletion");
        assert_eq!(n.at, 86_400);
        assert!(e.set_time(1).await.is_err(), "no SetTime on a system clock");
        e.shutdown().await;
    }

    /// Spec §16 with a clock that moves by itself: the writer's tick tells
    /// the SLA warning and breach on time and records the breach's credit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_tick_publishes_sla_notices_and_records_the_credit() {
        use crate::domain::prices::{PriceListExtInput, ServiceCreditInput, SlaKpi};
        // Tuesday 2026-12-01 09:00 in Amsterdam (UTC+1): P1 response due 13:00.
        let report_at = 1_796_083_200 + 8 * 3600;
        let due = report_at + 4 * 3600;
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(Drifting(AtomicI64::new(report_at)));
        let e = Engine::start(dir.path(), EngineConfig::default(), clock.clone()).unwrap();
        e.execute(Command::PublishPriceList {
            catalogue: None,
            version: 1,
            effective_at: 0,
            entries: vec![PriceEntryInput {
                license_type: "PBX-Port13".into(),
                tiers: vec![TierInput {
                    from_qty: 1,
                    monthly_price: "2.628".into(),
                }],
            }],
            ext: PriceListExtInput {
                service_credits: vec![ServiceCreditInput {
                    priority: 1,
                    kpi: SlaKpi::Response,
                    amount: "1.5".into(),
                }],
                ..Default::default()
            },
        })
        .await
        .unwrap();
        for cmd in [
            Command::OpenAccount {
                account_id: "a".into(),
            },
            Command::ReportIncident {
                incident_id: "i".into(),
                account_id: "a".into(),
                priority: 1,
            },
        ] {
            e.execute(cmd).await.unwrap();
        }
        let (_, mut rx) = e.watch(Some("a"), 0).unwrap();
        async fn next(rx: &mut broadcast::Receiver<Notice>, kind: NoticeKind) -> Notice {
            tokio::time::timeout(Duration::from_secs(3), async {
                loop {
                    let n = rx.recv().await.unwrap();
                    if n.kind == kind {
                        return n;
                    }
                }
            })
            .await
            .expect("the writer's tick publishes it")
        }
        clock.0.store(due - 3600 + 1, Ordering::SeqCst);
        assert_eq!(next(&mut rx, NoticeKind::SlaDeadline).await.at, due - 3600);
        clock.0.store(due + 2, Ordering::SeqCst);
        let n = next(&mut rx, NoticeKind::SlaBreach).await;
        assert_eq!(n.at, due + 1);
        assert_eq!(n.sla.unwrap().deadline, due);
        let v = e.account_view("a", Some(due + 2)).unwrap();
        assert_eq!(v.balance.to_string(), "1.5");
        e.shutdown().await;
    }
}
