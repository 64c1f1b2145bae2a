//! Several nodes on one shared log (PostgreSQL): the writer thread's role.
//!
//! Owns: the writer thread's view of the lease (standby or writer under an
//! epoch), the lease keeper's thread, what a standby tells a client it
//! refuses, and the appends whose outcome is unknown until read back.
//!
//! Must not: talk SQL (that is `store::pg_lease` and the log) or decide
//! anything (the same `decide`/`apply` run on every node).
//!
//! The role switch (ARCHITECTURE.md, "Several nodes"): the writer thread
//! always owns the working ledger. As a *standby* it refuses commands
//! (UNAVAILABLE with the writer's address) and tails the log by seq when
//! a writer's append commits (LISTEN/NOTIFY) and every [`TAIL_PERIOD`], applying each record to its working copy and to the
//! shared state with the same `apply` (notices included), exactly as the
//! writer's own commits are applied. When the keeper reports the lease
//! acquired, the thread first reads the log to its end (everything
//! committed under older epochs is visible once the lease is ours), then
//! sets the log's fence to the new epoch and decides commands from the
//! tailed state. It steps down when the keeper reports the lease lost or
//! expired, or an append is fenced: pending commands get UNAVAILABLE (none
//! is acknowledged), the working copy is reset to the shared (durable)
//! state, and it tails again.

use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::EngineError;
use crate::domain::{Event, Receipt};
use crate::store::pg_lease::{LeaseConfig, LeaseKeeper, Role};
use crate::store::StoreError;

/// How often a standby looks for new records (and the writer at its lease).
pub(crate) const TAIL_PERIOD: Duration = Duration::from_millis(10);
/// Most records read per tail query.
pub(crate) const TAIL_MAX: usize = 4096;
/// Longest a standby's catch-up runs before the thread serves its queue.
pub(crate) const TAIL_BUDGET: Duration = Duration::from_millis(50);
/// Retry of a failed tail (lost connection): first and longest wait.
pub(crate) const RETRY_MIN: Duration = Duration::from_millis(20);
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(2);

/// How a node takes part in a multi-node ledger.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Where this node serves (`serve --advertise`), shown by standbys.
    pub advertise: String,
    /// Writer lease (`serve --lease`).
    pub lease: Duration,
}

type Reply = oneshot::Sender<Result<(Receipt, Option<crate::store::SignedTreeHead>), EngineError>>;

/// A group whose append failed without saying whether it committed: its
/// answers wait until the tail shows its seqs (then they are sent as
/// decided, or UNAVAILABLE if other records hold those seqs) or `until`.
pub(crate) struct InDoubt {
    pub(crate) first_seq: u64,
    pub(crate) events: Vec<(i64, Event)>,
    pub(crate) replies: Vec<(Reply, Result<Receipt, EngineError>)>,
    pub(crate) until: Instant,
    /// A tailed record at one of our seqs differs from ours.
    pub(crate) mismatch: bool,
}

impl InDoubt {
    pub(crate) fn last_seq(&self) -> u64 {
        self.first_seq + self.events.len() as u64 - 1
    }

    /// Compares a tailed record with ours at the same seq.
    pub(crate) fn check(&mut self, seq: u64, ev: &Event) {
        if seq >= self.first_seq && seq <= self.last_seq() {
            let ours = &self.events[(seq - self.first_seq) as usize].1;
            self.mismatch |= ours != ev;
        }
    }

    /// Answers everyone: as decided when every record was found, else
    /// UNAVAILABLE with `why`.
    /// Answers the group: as decided when `found` (under `head`, the
    /// signed head that now contains its records), else UNAVAILABLE.
    pub(crate) fn answer(self, found: bool, why: &str, head: Option<crate::store::SignedTreeHead>) {
        for (reply, r) in self.replies {
            let r = if found {
                r
            } else {
                Err(EngineError::Unavailable(why.to_string()))
            };
            let _ = reply.send(r.map(|r| (r, head)));
        }
    }
}

/// The writer thread's part of the cluster.
pub(crate) struct Cluster {
    pub(crate) role: watch::Receiver<Role>,
    pub(crate) advertise: String,
    pub(crate) lease: Duration,
    /// The epoch appends carry while this node writes; `None`: standby.
    pub(crate) writing: Option<u64>,
    /// The highest epoch found fenced: never written under again.
    pub(crate) fenced: u64,
    pub(crate) in_doubt: Option<InDoubt>,
    pub(crate) retry_at: Instant,
    pub(crate) backoff: Duration,
    /// Raised when a writer's append commits (LISTEN): a standby tails at
    /// once rather than at its next [`TAIL_PERIOD`].
    pub(crate) appended: Option<std::sync::Arc<tokio::sync::Notify>>,
}

impl Cluster {
    pub(crate) fn new(role: watch::Receiver<Role>, opts: &ClusterOptions) -> Cluster {
        Cluster {
            role,
            advertise: opts.advertise.clone(),
            lease: opts.lease,
            writing: None,
            fenced: 0,
            in_doubt: None,
            retry_at: Instant::now(),
            backoff: RETRY_MIN,
            appended: None,
        }
    }

    /// Whether an append under the current epoch may go out now.
    pub(crate) fn may_append(&self) -> Result<u64, String> {
        let Some(epoch) = self.writing else {
            return Err(self.refusal());
        };
        match self.role.borrow().writable(Instant::now()) {
            Some(e) if e == epoch => Ok(epoch),
            _ => Err(format!(
                "this node lost the writer lease (epoch {epoch}); nothing was recorded: \
                 retry on the writer"
            )),
        }
    }

    /// The UNAVAILABLE message of a command this node does not take.
    pub(crate) fn refusal(&self) -> String {
        match &*self.role.borrow() {
            Role::Standby {
                writer: Some((epoch, addr)),
            } if *addr != self.advertise => format!(
                "this node is a standby: send writes to the writer at {addr} (lease epoch {epoch})"
            ),
            Role::Writer { epoch, .. } => format!(
                "this node is taking over as the writer (lease epoch {epoch}) and is \
                 catching up with the log: retry in a moment"
            ),
            Role::Standby { .. } => "no node holds the writer lease right now (a failover is \
                 in progress): retry in a moment"
                .to_string(),
        }
    }
}

/// What a failed append of a node sharing the log tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Refused before anything committed; `epoch_moved`: another node
    /// holds the lease now (never write under this epoch again).
    NotRecorded { epoch_moved: bool },
    /// The connection failed on the way: it may have committed.
    Unknown,
}

impl Verdict {
    pub(crate) fn of(e: &StoreError) -> Verdict {
        match e {
            StoreError::Fenced { .. } => Verdict::NotRecorded { epoch_moved: true },
            StoreError::SeqTaken { .. } => Verdict::NotRecorded { epoch_moved: false },
            _ => Verdict::Unknown,
        }
    }
}

/// The lease keeper on its own thread (its own small runtime, so neither
/// the gRPC load nor the writer's appends delay a renewal).
pub(crate) struct KeeperThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KeeperThread {
    pub(crate) fn start(keeper: LeaseKeeper) -> std::io::Result<KeeperThread> {
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ledger-lease".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("cannot build the lease runtime: {e}");
                        return;
                    }
                };
                rt.block_on(keeper.run(async {
                    let _ = stopped.await;
                }));
            })?;
        Ok(KeeperThread {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops renewing and releases the lease (clean shutdown).
    pub(crate) fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for KeeperThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts this node's lease keeper; the writer thread's [`Cluster`]
/// follows its role.
pub(crate) fn start(
    opts: &ClusterOptions,
    db: &crate::store::pg_conn::PgConfig,
) -> std::io::Result<(Cluster, KeeperThread)> {
    let config = LeaseConfig::new(opts.advertise.clone(), opts.lease);
    let lease = config.lease;
    let db = crate::store::pg_lease::keeper_config(db, lease);
    let (keeper, role) = LeaseKeeper::new(config, Box::new(db));
    let mut cluster = Cluster::new(role, opts);
    cluster.lease = lease;
    Ok((cluster, KeeperThread::start(keeper)?))
}
