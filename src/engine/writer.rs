//! The writer thread: group commit, `at` stamping and notice publication.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::cluster::{self, Cluster, InDoubt, Verdict};
use super::proofs::{Signer, HEAD_FILE_DURABLE_EVERY};
use super::{EngineError, Request, Shared};
use crate::domain::{Decision, Event, EventBody, Ledger, Notice, Receipt, Rejection};
use crate::store::{LogStore, SignedTreeHead};

/// How often the writer looks at a system clock for notices that fell due.
/// Instants are whole seconds, so one second is the natural period.
const SYSTEM_TICK: Duration = Duration::from_secs(1);

/// Arrivals pausing this long means the answered clients are back.
const LINGER_QUIET: Duration = Duration::from_micros(150);
/// Polling period while lingering (the writer thread is ours to block).
const LINGER_POLL: Duration = Duration::from_micros(30);

/// A writer's append committed (never, without a signal).
async fn wait_appended(signal: Option<&tokio::sync::Notify>) {
    match signal {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

type Reply = oneshot::Sender<Result<(Receipt, Option<SignedTreeHead>), EngineError>>;

pub(crate) struct Writer {
    /// Private working copy: decide + apply run here before the append.
    working: Ledger,
    /// Time-driven notices up to here are published (or queued in `notices`).
    published_until: i64,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Request>,
    group_max: usize,
    /// Longest wait for stragglers before the next append.
    linger_max: Duration,
    /// Set after a storage failure: every later write is refused.
    failed: Option<String>,
    /// Several nodes share the log: this node's role (None: the only node).
    cluster: Option<Cluster>,
    /// The ledger key and the head file's lag (`None`: proofs disabled).
    signer: Option<Signer>,
    // The group being built.
    events: Vec<(i64, Event)>,
    replies: Vec<(Reply, Result<Receipt, EngineError>)>,
    notices: Vec<Notice>,
}

impl Writer {
    pub(crate) fn new(
        working: Ledger,
        published_until: i64,
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Request>,
        group_max: usize,
        linger_max: Duration,
        cluster: Option<Cluster>,
    ) -> Self {
        Self {
            signer: None,
            working,
            published_until,
            shared,
            rx,
            group_max: group_max.max(1),
            linger_max,
            failed: None,
            cluster,
            events: Vec::new(),
            replies: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// Keep the Merkle tree and sign heads with this key (`None`: no proofs).
    pub(crate) fn with_signer(mut self, signer: Option<Signer>) -> Self {
        self.signer = signer;
        self
    }

    /// Runs on its own thread with a small current-thread runtime, so the
    /// blocking `fdatasync` never stalls the gRPC runtime.
    pub(crate) fn run(mut self) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("cannot build the writer runtime: {e}");
                return;
            }
        };
        rt.block_on(async move {
            let manual = self.shared.clock.as_manual().is_some();
            let mut tick = tokio::time::interval(SYSTEM_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let clustered = self.cluster.is_some();
            let appended = self.cluster.as_ref().and_then(|c| c.appended.clone());
            let mut cluster_tick = tokio::time::interval(cluster::TAIL_PERIOD);
            cluster_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut head_tick = tokio::time::interval(HEAD_FILE_DURABLE_EVERY);
            head_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut batch = Vec::with_capacity(self.group_max);
            // The notice schedule is built here, not on the first tick.
            self.working.prepare_notices();
            // Breaches that fell due while the server was down.
            let now = self.published_until;
            self.credit_breaches(now);
            self.commit();
            loop {
                tokio::select! {
                    n = self.rx.recv_many(&mut batch, self.group_max) => {
                        if n == 0 {
                            self.commit();
                            self.save_head(true);
                            break;
                        }
                        let t0 = std::time::Instant::now();
                        if self.process(&mut batch) {
                            break;
                        }
                        let t1 = std::time::Instant::now();
                        self.linger(n);
                        let stats = &self.shared.stats;
                        stats.busy_us.fetch_add(micros(t1 - t0), Ordering::Relaxed);
                        stats.linger_us.fetch_add(micros(t1.elapsed()), Ordering::Relaxed);
                    }
                    _ = tick.tick(), if !manual => {
                        let now = self.shared.clock.now();
                        self.publish_until(now);
                        self.commit();
                    }
                    _ = cluster_tick.tick(), if clustered => {
                        self.cluster_step();
                    }
                    _ = wait_appended(appended.as_deref()), if self.is_standby() => {
                        self.cluster_step();
                    }
                    _ = head_tick.tick(), if self.signer.is_some() => {
                        self.save_head(false);
                    }
                }
            }
            let stats = &self.shared.stats;
            tracing::info!(
                last_seq = self.working.last_seq(),
                records = stats.records.load(Ordering::Relaxed),
                durable_appends = stats.groups.load(Ordering::Relaxed),
                append_ms_total = stats.append_us.load(Ordering::Relaxed) / 1000,
                busy_ms_total = stats.busy_us.load(Ordering::Relaxed) / 1000,
                linger_ms_total = stats.linger_us.load(Ordering::Relaxed) / 1000,
                "writer stopped"
            );
        });
    }

    /// A node sharing the log that does not hold the lease.
    fn is_standby(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.writing.is_none())
    }

    /// Waits briefly for the clients just answered to send their next
    /// command, so that it joins the next durable append.
    ///
    /// Without this, closed-loop clients split into two cohorts that take
    /// turns: those answered by append N come back while append N+1 (made of
    /// the others) is already running, so each append carries about half the
    /// clients and every client waits two appends. Lingering until arrivals
    /// stop (or `linger_max`) lets one append carry nearly everyone. Only
    /// after a group of several commands: a lone client never waits.
    fn linger(&self, answered: usize) {
        if answered < 2 || self.group_max == 1 || self.linger_max.is_zero() {
            return;
        }
        let start = std::time::Instant::now();
        let mut seen = self.rx.len();
        let mut quiet = std::time::Instant::now();
        loop {
            std::thread::sleep(LINGER_POLL);
            let now = std::time::Instant::now();
            let len = self.rx.len();
            if len > seen {
                seen = len;
                quiet = now;
            }
            if len >= self.group_max
                || now.duration_since(start) >= self.linger_max
                || now.duration_since(quiet) >= LINGER_QUIET
            {
                return;
            }
        }
    }

    /// Handles one drained batch; returns true on shutdown.
    fn process(&mut self, batch: &mut Vec<Request>) -> bool {
        let mut now = self.shared.clock.now();
        let mut stop = false;
        for req in batch.drain(..) {
            match req {
                Request::Command { cmd, reply } => {
                    if let Some(why) = self.refusal() {
                        let _ = reply.send(Err(EngineError::Unavailable(why)));
                        continue;
                    }
                    let at = now.max(self.working.last_at());
                    self.publish_until(at);
                    let outcome = match self.working.decide(&cmd, now) {
                        Err(rej) => Err(EngineError::Rejected(rej)),
                        Ok(Decision::Retry(r)) => Ok(r),
                        Ok(Decision::Append(ev)) => {
                            let sla = matches!(ev.body, EventBody::IncidentPriorityChanged { .. });
                            let r = self.apply_working(ev);
                            if sla && r.is_ok() {
                                // A deadline the change put behind: its credit now.
                                self.credit_breaches(at);
                            }
                            r
                        }
                    };
                    self.replies.push((reply, outcome));
                }
                Request::SetTime { t, reply } => {
                    self.commit();
                    let res = self.set_time(t);
                    self.commit();
                    // Commands queued behind the SetTime are stamped after it.
                    now = self.shared.clock.now();
                    let _ = reply.send(res);
                }
                Request::Shutdown { reply } => {
                    self.commit();
                    self.save_head(true);
                    let _ = reply.send(());
                    stop = true;
                }
            }
        }
        self.commit();
        stop
    }

    fn apply_working(&mut self, ev: Event) -> Result<Receipt, EngineError> {
        let seq = self.working.last_seq() + 1;
        match self.working.apply(seq, &ev) {
            Ok(applied) => {
                self.notices.extend(applied.notices);
                self.events.push((ev.at, ev));
                Ok(applied.receipt)
            }
            Err(e) => {
                // decide() accepted what apply() refuses: a domain bug. The
                // working copy may be half-updated, so rebuild it.
                tracing::error!(seq, "apply refused a decided event: {}", e.0);
                self.fail(format!("internal error: {}", e.0));
                Err(EngineError::Unavailable(format!(
                    "internal error, nothing recorded: {}",
                    e.0
                )))
            }
        }
    }

    fn set_time(&mut self, t: i64) -> Result<i64, EngineError> {
        let Some(manual) = self.shared.clock.as_manual() else {
            return Err(Rejection::precondition("the server runs on the system clock").into());
        };
        manual
            .set(t)
            .map_err(|e| EngineError::Rejected(Rejection::precondition(e.to_string())))?;
        self.publish_until(t);
        Ok(t)
    }

    /// Queues the time-driven notices due in `(published_until, t]`, and
    /// records on the way the service credits of the breaches due by `t`.
    fn publish_until(&mut self, t: i64) {
        if t <= self.published_until {
            return;
        }
        self.credit_breaches(t);
        if t <= self.published_until {
            return;
        }
        let due = self.working.notices_between(None, self.published_until, t);
        self.notices.extend(due);
        self.published_until = t;
    }

    /// Records, in time order, the service credit of every breach due by
    /// `t` that earns one and has none yet: a system command through
    /// `decide`/`apply`, stamped at the breach (after the notices due up to
    /// it, which it may change: a grant reactivates), or at the instant
    /// published already if that is later (a change of priority, a restart).
    fn credit_breaches(&mut self, t: i64) {
        // A standby never writes: the writer holding the lease records them.
        if self.cluster.as_ref().is_some_and(|c| c.writing.is_none()) {
            return;
        }
        while self.failed.is_none() {
            let Some((due, cmd)) = self.working.next_service_credit(t) else {
                return;
            };
            let at = due.max(self.published_until).max(self.working.last_at());
            if at > self.published_until {
                let notices = self.working.notices_between(None, self.published_until, at);
                self.notices.extend(notices);
                self.published_until = at;
            }
            match self.working.decide(&cmd, at) {
                Ok(Decision::Append(ev)) => {
                    if self.apply_working(ev).is_err() {
                        return;
                    }
                }
                Ok(Decision::Retry(_)) => return,
                Err(rej) => {
                    tracing::warn!("service credit not recorded: {rej}");
                    return;
                }
            }
        }
    }

    /// Stops accepting writes after a storage failure and resets the working
    /// copy to the last durable state.
    fn fail(&mut self, why: String) {
        self.reset_to_durable(&why);
        self.failed = Some(why);
    }

    /// Why a command is refused before it is decided: a storage failure,
    /// or this node is not the writer.
    fn refusal(&self) -> Option<String> {
        if let Some(why) = &self.failed {
            return Some(why.clone());
        }
        match &self.cluster {
            Some(c) if c.writing.is_none() => Some(c.refusal()),
            _ => None,
        }
    }

    /// Forgets everything decided since the last durable append: the
    /// working copy becomes the shared (durable) state again and the
    /// pending answers become UNAVAILABLE with `why`.
    fn reset_to_durable(&mut self, why: &str) {
        if let Ok(live) = self.shared.live.read() {
            self.working = live.ledger.clone();
            self.published_until = live.published_until;
        }
        self.working.prepare_notices();
        // Nothing decided since the last append may be acknowledged.
        for (_, r) in self.replies.iter_mut() {
            *r = Err(EngineError::Unavailable(why.to_string()));
        }
        self.events.clear();
        self.notices.clear();
    }

    /// Stops writing: pending commands are refused (none acknowledged)
    /// and the node tails the log as a standby from its durable state.
    fn step_down(&mut self, why: &str) {
        let Some(c) = &mut self.cluster else {
            return;
        };
        let Some(epoch) = c.writing.take() else {
            return;
        };
        tracing::warn!(epoch, "stepping down to standby: {why}");
        self.reset_to_durable(why);
        if let Ok(mut log) = self.shared.log.write() {
            let _ = log.set_fence(None); // removing a fence cannot fail
        }
        let replies = std::mem::take(&mut self.replies);
        for (reply, r) in replies {
            let _ = reply.send(r.map(|r| (r, None)));
        }
    }

    /// The role's periodic step: a writer checks its lease; a standby
    /// tails the log, settles an append in doubt, and takes over once the
    /// lease is its own and it has read the log to its end.
    fn cluster_step(&mut self) {
        let Some(c) = &self.cluster else {
            return;
        };
        let now = std::time::Instant::now();
        if c.writing.is_some() {
            if let Err(why) = c.may_append() {
                self.step_down(&why);
            }
            return;
        }
        if now < c.retry_at {
            return;
        }
        let caught_up = loop {
            match self.tail() {
                Ok(true) => break true,
                Ok(false) if now.elapsed() < cluster::TAIL_BUDGET => continue,
                Ok(false) => break false,
                Err(why) => {
                    tracing::warn!("standby: cannot read the log (retrying): {why}");
                    if let Some(c) = &mut self.cluster {
                        c.retry_at = std::time::Instant::now() + c.backoff;
                        c.backoff = (c.backoff * 2).min(cluster::RETRY_MAX);
                    }
                    return;
                }
            }
        };
        let Some(c) = &mut self.cluster else {
            return;
        };
        c.backoff = cluster::RETRY_MIN;
        if !caught_up {
            return;
        }
        // Caught up: the records of a group in doubt are not in the log
        // (yet). Past its bound, tell its clients the outcome is unknown.
        if c.in_doubt.as_ref().is_some_and(|d| now >= d.until) {
            if let Some(d) = c.in_doubt.take() {
                d.answer(
                    false,
                    "the database connection failed during the append and its records are \
                     not in the log so far: outcome unknown, retry (top-ups are idempotent)",
                    None,
                );
            }
        }
        if c.in_doubt.is_some() {
            return;
        }
        let role = c.role.borrow().clone();
        if let Some(epoch) = role.writable(now) {
            if epoch > c.fenced {
                let fenced = match self.shared.log.write() {
                    Ok(mut log) => log.set_fence(Some(epoch)).map_err(|e| e.to_string()),
                    Err(_) => Err("log lock poisoned".to_string()),
                };
                if let Err(why) = fenced {
                    tracing::warn!("cannot take over yet (retrying): {why}");
                    c.retry_at = now + c.backoff;
                    c.backoff = (c.backoff * 2).min(cluster::RETRY_MAX);
                    return;
                }
                c.writing = Some(epoch);
                tracing::info!(
                    epoch,
                    last_seq = self.working.last_seq(),
                    "caught up with the log: writing as the lease holder"
                );
            }
        }
    }

    /// Reads the records after this node's head and applies them (working
    /// copy and shared state, notices published); true once at the end.
    fn tail(&mut self) -> Result<bool, String> {
        let ours = self.working.last_seq();
        let records = match self.shared.log.write() {
            Ok(mut log) => {
                // From this node's ledger, wherever a failed append left
                // the log's cursor (tried again at every step until it works).
                if log.head().seq > ours {
                    log.rewind_to(ours).map_err(|e| e.to_string())?;
                }
                log.catch_up(cluster::TAIL_MAX).map_err(|e| e.to_string())?
            }
            Err(_) => return Err("log lock poisoned".into()),
        };
        let n = records.len();
        let mut events = Vec::with_capacity(n);
        let mut leaves = Vec::with_capacity(if self.signer.is_some() { n } else { 0 });
        for r in records {
            let expected = self.working.last_seq() + 1;
            if r.seq != expected {
                return Err(format!("tail: got seq {} where {expected} was due", r.seq));
            }
            self.publish_until(r.at);
            let applied = self.working.apply(r.seq, &r.event).map_err(|e| {
                let why = format!("record {} does not apply: {}", r.seq, e.0);
                self.fail(why.clone());
                why
            })?;
            self.notices.extend(applied.notices);
            if let Some(d) = self.cluster.as_mut().and_then(|c| c.in_doubt.as_mut()) {
                d.check(r.seq, &r.event);
            }
            if self.signer.is_some() {
                leaves.push(r.hash);
            }
            events.push((r.at, r.event));
        }
        // The tree follows the log on a standby too (its proofs and heads
        // cover what it has read; the writer's key signs the same bytes).
        if !leaves.is_empty() {
            self.extend_tree(&leaves, events.last().map_or(0, |(at, _)| *at));
        }
        let notices = std::mem::take(&mut self.notices);
        self.publish_durable(&events, notices, false);
        let last = self.working.last_seq();
        if let Some(c) = &mut self.cluster {
            if c.in_doubt.as_ref().is_some_and(|d| last >= d.last_seq()) {
                if let Some(d) = c.in_doubt.take() {
                    let found = !d.mismatch;
                    let head = self
                        .shared
                        .tree
                        .as_ref()
                        .and_then(|t| t.read().ok().map(|t| t.head));
                    d.answer(
                        found,
                        "not recorded: the append failed and another writer's records took its seqs",
                        head,
                    );
                }
            }
        }
        Ok(n < cluster::TAIL_MAX)
    }

    /// One durable append for the group, then publish and answer.
    fn commit(&mut self) {
        if self.events.is_empty() && self.replies.is_empty() && self.notices.is_empty() {
            return;
        }
        if !self.events.is_empty() {
            if let Some(Err(why)) = self.cluster.as_ref().map(|c| c.may_append()) {
                self.step_down(&why);
                return;
            }
        }
        let events = std::mem::take(&mut self.events);
        let mut replies = std::mem::take(&mut self.replies);
        let notices = std::mem::take(&mut self.notices);
        let mut durable = true;
        let proofs = self.signer.is_some();
        let mut leaves = Vec::new();
        if !events.is_empty() {
            let first_seq = self.working.last_seq() + 1 - events.len() as u64;
            let last_seq = first_seq + events.len() as u64 - 1;
            let started = std::time::Instant::now();
            let mut verdict = Verdict::Unknown;
            let appended = match self.shared.log.write() {
                // Decided on this node's ledger, so only appended right
                // after its last record: a log whose head moved on (another
                // writer, an append that failed after its COMMIT) gets
                // nothing, and the node tails from its ledger first.
                Ok(log) if log.head().seq + 1 != first_seq => {
                    verdict = Verdict::NotRecorded { epoch_moved: false };
                    Err(format!(
                        "the log's head is record {} but this node's ledger ends at {}: nothing sent",
                        log.head().seq,
                        first_seq - 1
                    ))
                }
                Ok(mut log) => log
                    .append(&events)
                    .map_err(|e| {
                        verdict = Verdict::of(&e);
                        e.to_string()
                    })
                    .and_then(|seqs| {
                        let expected = (first_seq..=last_seq).collect::<Vec<_>>();
                        if seqs == expected {
                            Ok(())
                        } else {
                            Err(format!(
                                "the log assigned seqs {seqs:?}, the ledger expected {expected:?}"
                            ))
                        }
                    })
                    .and_then(|()| {
                        if proofs {
                            leaves = log
                                .chain_hashes(first_seq, last_seq)
                                .map_err(|e| format!("cannot read the new chain hashes: {e}"))?;
                        }
                        Ok(())
                    }),
                Err(_) => Err("log lock poisoned".to_string()),
            };
            if appended.is_ok() {
                let stats = &self.shared.stats;
                stats.groups.fetch_add(1, Ordering::Relaxed);
                stats
                    .records
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                let took = started.elapsed();
                stats.append_us.fetch_add(micros(took), Ordering::Relaxed);
                let m = &self.shared.metrics;
                m.batch_records.observe(events.len() as f64);
                m.append_seconds.observe(took.as_secs_f64());
            }
            if let Err(why) = appended {
                if self.cluster.is_some() {
                    self.append_failed_in_cluster(first_seq, events, replies, verdict, &why);
                    return;
                }
                tracing::error!("durable append failed, refusing writes from now on: {why}");
                self.fail(format!("storage failure, nothing recorded: {why}"));
                durable = false;
            }
        }
        if durable && !leaves.is_empty() {
            self.extend_tree(&leaves, events.last().map_or(0, |(at, _)| *at));
        }
        let head = self
            .shared
            .tree
            .as_ref()
            .and_then(|t| t.read().ok().map(|t| t.head));
        if durable {
            // Only the writer snapshots (a standby's tick publishes notices).
            let writer = self.cluster.as_ref().is_none_or(|c| c.writing.is_some());
            self.publish_durable(&events, notices, writer);
        } else {
            let why = self.failed.clone().unwrap_or_default();
            for (_, r) in replies.iter_mut() {
                *r = Err(EngineError::Unavailable(why.clone()));
            }
        }
        for (reply, r) in replies {
            let _ = reply.send(r.map(|r| (r, head)));
        }
        if durable && !events.is_empty() {
            self.save_head(false);
        }
    }

    /// Pushes a durable batch's leaves, signs the new head and publishes it
    /// (before anyone is answered, so every receipt's head contains it).
    fn extend_tree(&mut self, leaves: &[crate::store::Hash], at: i64) {
        let (Some(signer), Some(shared_tree)) = (&self.signer, &self.shared.tree) else {
            return;
        };
        let (size, root) = match shared_tree.write() {
            Ok(mut t) => {
                for h in leaves {
                    t.tree.push(*h);
                }
                (t.tree.size(), t.tree.root())
            }
            Err(_) => {
                tracing::error!("tree lock poisoned");
                return;
            }
        };
        // Signing (~20 µs) outside the lock: readers keep the previous head.
        let head = signer.key.sign(size, root, at);
        if let Ok(mut t) = shared_tree.write() {
            t.head = head;
        }
    }

    /// Writes the head file per the lag policy (`force`: now, durably).
    /// Only the writer stores it (a standby must not write the shared log).
    fn save_head(&mut self, force: bool) {
        if self.cluster.as_ref().is_some_and(|c| c.writing.is_none()) {
            return;
        }
        let (Some(signer), Some(shared_tree)) = (&mut self.signer, &self.shared.tree) else {
            return;
        };
        let Some(head) = shared_tree.read().ok().map(|t| t.head) else {
            return;
        };
        if let Ok(log) = self.shared.log.read() {
            signer.save(&*log, &head, force);
        }
    }

    /// A failed append of a node sharing the log: fenced (another writer
    /// holds the lease or the seqs) means nothing was recorded; anything
    /// else (a lost connection, a failover) leaves the outcome unknown, so
    /// the answers wait until the tail shows whether the records are there.
    /// Either way the node steps down and tails.
    fn append_failed_in_cluster(
        &mut self,
        first_seq: u64,
        events: Vec<(i64, Event)>,
        replies: Vec<(Reply, Result<Receipt, EngineError>)>,
        verdict: Verdict,
        why: &str,
    ) {
        let Some(c) = &mut self.cluster else {
            return;
        };
        if let Verdict::NotRecorded { epoch_moved } = verdict {
            if let (true, Some(e)) = (epoch_moved, c.writing) {
                c.fenced = c.fenced.max(e);
            }
            let msg = format!("this node is not the writer any more; nothing was recorded ({why})");
            self.replies = replies;
            self.step_down(&msg);
            return;
        }
        tracing::warn!(
            first_seq,
            "append outcome unknown, reading the log back: {why}"
        );
        c.in_doubt = Some(InDoubt {
            first_seq,
            events,
            replies,
            until: std::time::Instant::now() + c.lease,
            mismatch: false,
        });
        self.step_down(&format!("the append failed: {why}"));
    }

    /// Applies durable records to the shared state under its write lock,
    /// broadcasts `notices` there and publishes the applied seq; the writer
    /// then snapshots when due.
    fn publish_durable(&mut self, events: &[(i64, Event)], notices: Vec<Notice>, writer: bool) {
        match self.shared.live.write() {
            Ok(mut live) => {
                let first_seq = live.ledger.last_seq() + 1;
                for (i, (_, ev)) in events.iter().enumerate() {
                    if let Err(e) = live.apply_durable(first_seq + i as u64, ev) {
                        tracing::error!("shared state refused a durable event: {}", e.0);
                    }
                }
                live.published(self.published_until);
                for n in notices {
                    self.shared.metrics.notice(n.kind);
                    // No receiver is fine; a slow one lags, never blocks us.
                    let _ = self.shared.notices.send(n);
                }
                self.shared.applied.send_replace(live.ledger.last_seq());
            }
            Err(_) => tracing::error!("shared state lock poisoned"),
        }
        if writer {
            self.maybe_snapshot();
        }
    }

    fn maybe_snapshot(&mut self) {
        let due = self
            .shared
            .log
            .read()
            .is_ok_and(|log| log.snapshot_due() && log.head().seq == self.working.last_seq());
        if !due {
            return;
        }
        let Ok(mut log) = self.shared.log.write() else {
            return;
        };
        {
            if let Err(e) = log.save_snapshot(&self.working) {
                tracing::warn!("snapshot failed (the log is intact, replay will be longer): {e}");
            } else {
                let ms =
                    u64::try_from(self.shared.started.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.shared.snapshot_ms.store(ms.max(1), Ordering::Relaxed);
                tracing::debug!(seq = self.working.last_seq(), "snapshot saved");
            }
        }
    }
}
