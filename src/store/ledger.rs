//! Binds the generic store to the domain: `domain::Event` is the stored
//! payload, `domain::Ledger` the snapshot state and `Ledger::apply` the fold.
//! This is the only place where the store knows the domain.

use super::{
    Head, Indexed, LogStore, PgLog, RawRecord, SignedTreeHead, SledLog, Snapshot, SnapshotState,
    StoreError, StoreLocation, StoreOptions, StoredRecord,
};
use crate::domain::{Applied, Event, Ledger, Policy};
use std::sync::Arc;

impl Indexed for Event {
    fn account_id(&self) -> Option<&str> {
        Event::account_id(self)
    }

    #[inline]
    fn decode_v1(bytes: &[u8]) -> Option<Event> {
        super::event_v1::decode(bytes)
    }
}

/// Snapshots of the ledger are tied to the source of the state types: any
/// edit of these files (even a comment) makes older snapshots be ignored
/// and the log replayed once, never decoded into a changed layout.
impl SnapshotState for Ledger {
    fn schema() -> u64 {
        static SCHEMA: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        *SCHEMA.get_or_init(|| {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            for src in [
                env!("CARGO_PKG_VERSION"),
                include_str!("../domain/mod.rs"),
                include_str!("../domain/account.rs"),
                include_str!("../domain/event.rs"),
                include_str!("../domain/ledger.rs"),
                include_str!("../domain/keys.rs"),
                include_str!("../domain/idmap.rs"),
                include_str!("../domain/money.rs"),
                include_str!("../domain/prices.rs"),
                include_str!("../domain/typenames.rs"),
                include_str!("../domain/chunked.rs"),
                include_str!("../domain/license_model.rs"),
                include_str!("../domain/devices.rs"),
                include_str!("../domain/maintenance.rs"),
                include_str!("../domain/sla/mod.rs"),
                include_str!("../domain/sla/book.rs"),
                include_str!("../domain/sla/clock.rs"),
                include_str!("../domain/sla/incident.rs"),
            ] {
                h.update((src.len() as u64).to_be_bytes());
                h.update(src.as_bytes());
            }
            let d = h.finalize();
            u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
        })
    }
}

/// The ledger's event log on either backend: the engine and the offline
/// tools use this, and it dispatches to sled or PostgreSQL.
#[derive(Debug)]
// One value per open store: its size does not matter (boxing would add a
// pointer chase to every append and read).
#[allow(clippy::large_enum_variant)]
pub enum EventLog {
    /// The embedded default.
    Sled(SledLog<Event>),
    /// PostgreSQL.
    Postgres(PgLog<Event>),
}

impl std::fmt::Debug for SledLog<Event> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledLog")
            .field("dir", &self.dir())
            .finish_non_exhaustive()
    }
}

/// One of two iterators (the backends' own).
enum Either<A, B> {
    A(A),
    B(B),
}

impl<T, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for Either<A, B> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match self {
            Either::A(a) => a.next(),
            Either::B(b) => b.next(),
        }
    }
}

impl EventLog {
    /// Opens (or creates) the log at `location` (see [`SledLog::open`] and
    /// [`PgLog::open`]: an empty database gets the schema).
    pub fn open(
        location: impl Into<StoreLocation>,
        opts: StoreOptions,
    ) -> Result<EventLog, StoreError> {
        Ok(match location.into() {
            StoreLocation::Dir(d) => EventLog::Sled(SledLog::open(&d, opts)?),
            StoreLocation::Postgres(url) => EventLog::Postgres(PgLog::open(&url, opts)?),
        })
    }

    /// Opens the log for an audit: nothing repaired or checked, nothing
    /// created (a database without the schema is an error).
    pub fn open_for_audit(location: impl Into<StoreLocation>) -> Result<EventLog, StoreError> {
        Ok(match location.into() {
            StoreLocation::Dir(d) => EventLog::Sled(SledLog::open_for_audit(&d)?),
            StoreLocation::Postgres(url) => EventLog::Postgres(PgLog::open_for_audit(&url)?),
        })
    }

    /// Where the log is, for people (no password).
    pub fn describe(&self) -> String {
        match self {
            EventLog::Sled(s) => s.dir().display().to_string(),
            EventLog::Postgres(p) => p.describe().to_owned(),
        }
    }

    /// The sled store, when that is the backend.
    pub fn as_sled(&self) -> Option<&SledLog<Event>> {
        match self {
            EventLog::Sled(s) => Some(s),
            EventLog::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store, when that is the backend.
    pub fn as_postgres(&self) -> Option<&PgLog<Event>> {
        match self {
            EventLog::Sled(_) => None,
            EventLog::Postgres(p) => Some(p),
        }
    }

    /// Several nodes (PostgreSQL only): the records after the head that
    /// another node committed, up to `max` (see [`PgLog::catch_up`]).
    pub fn catch_up(&mut self, max: usize) -> Result<Vec<StoredRecord<Event>>, StoreError> {
        match self {
            EventLog::Postgres(p) => p.catch_up(max),
            EventLog::Sled(_) => Err(StoreError::Postgres(
                "only a PostgreSQL log is shared by several nodes".into(),
            )),
        }
    }

    /// Several nodes (PostgreSQL only): tail again from record `seq` (see
    /// [`PgLog::rewind_to`]); a no-op on sled, whose one writer's ledger
    /// never falls behind its own log.
    pub fn rewind_to(&mut self, seq: u64) -> Result<(), StoreError> {
        match self {
            EventLog::Postgres(p) => p.rewind_to(seq),
            EventLog::Sled(_) => Ok(()),
        }
    }

    /// Several nodes: the writer lease epoch every later append checks
    /// (`pg_lease::FENCE_SQL`; no effect on sled, which one process owns).
    pub fn set_fence(&mut self, epoch: Option<u64>) -> Result<(), StoreError> {
        match self {
            EventLog::Postgres(p) => p.set_fence(epoch.map(|e| (super::pg_lease::FENCE_SQL, e))),
            EventLog::Sled(_) => Ok(()),
        }
    }

    /// Several nodes: see [`PgLog::set_idle_transaction_timeout`].
    pub fn set_idle_transaction_timeout(
        &mut self,
        d: std::time::Duration,
    ) -> Result<(), StoreError> {
        match self {
            EventLog::Postgres(p) => p.set_idle_transaction_timeout(d),
            EventLog::Sled(_) => Ok(()),
        }
    }

    /// Several nodes: see [`PgLog::appended_signal`] (`None` on sled).
    pub fn appended_signal(&self) -> Result<Option<Arc<tokio::sync::Notify>>, StoreError> {
        match self {
            EventLog::Postgres(p) => p.appended_signal().map(Some),
            EventLog::Sled(_) => Ok(None),
        }
    }

    /// The PostgreSQL store, mutably.
    pub fn as_postgres_mut(&mut self) -> Option<&mut PgLog<Event>> {
        match self {
            EventLog::Sled(_) => None,
            EventLog::Postgres(p) => Some(p),
        }
    }

    /// Bytes the log takes on disk (sled's files; PostgreSQL's tables and
    /// indexes as the server counts them).
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        match self {
            EventLog::Sled(s) => s.disk_bytes(),
            EventLog::Postgres(p) => p.disk_bytes(),
        }
    }

    /// A snapshot is due (the configured period passed since the last).
    pub fn snapshot_due(&self) -> bool {
        match self {
            EventLog::Sled(s) => s.snapshot_due(),
            EventLog::Postgres(p) => p.snapshot_due(),
        }
    }

    /// Decodes every event from `from_seq` on, a batch at a time; `f`
    /// returns whether to go on. The replay of a restart.
    pub fn scan_frames(
        &self,
        from_seq: u64,
        f: impl FnMut(&mut Vec<(u64, i64, Event)>) -> bool,
    ) -> Result<(), StoreError> {
        match self {
            EventLog::Sled(s) => s.scan_frames(from_seq, f),
            EventLog::Postgres(p) => p.scan_batches(from_seq, f),
        }
    }

    /// Records `from..=to` exactly as stored, the chain checked as read.
    pub fn raw_records(
        &self,
        from_seq: u64,
        to_seq: u64,
    ) -> Box<dyn Iterator<Item = Result<RawRecord, StoreError>> + '_> {
        match self {
            EventLog::Sled(s) => Box::new(s.read_raw(from_seq, to_seq)),
            EventLog::Postgres(p) => Box::new(p.read_raw_records(from_seq, to_seq)),
        }
    }

    /// Appends records exactly as read from another store (`copy`): each
    /// must extend the chain at the head, its hash is checked, its bytes
    /// are stored as they are.
    pub fn append_raw(&mut self, records: &[RawRecord]) -> Result<(), StoreError> {
        match self {
            EventLog::Sled(s) => s.append_raw(records),
            EventLog::Postgres(p) => p.append_raw(records),
        }
    }
}

impl LogStore<Event> for EventLog {
    fn append(&mut self, batch: &[(i64, Event)]) -> Result<Vec<u64>, StoreError> {
        match self {
            EventLog::Sled(s) => s.append(batch),
            EventLog::Postgres(p) => p.append(batch),
        }
    }

    fn head(&self) -> Head {
        match self {
            EventLog::Sled(s) => s.head(),
            EventLog::Postgres(p) => p.head(),
        }
    }

    fn read_range(
        &self,
        from_seq: u64,
        to_seq: u64,
    ) -> impl Iterator<Item = Result<StoredRecord<Event>, StoreError>> + '_ {
        match self {
            EventLog::Sled(s) => Either::A(s.read_range(from_seq, to_seq)),
            EventLog::Postgres(p) => Either::B(p.read_range(from_seq, to_seq)),
        }
    }

    fn read_raw(
        &self,
        from_seq: u64,
        to_seq: u64,
    ) -> impl Iterator<Item = Result<RawRecord, StoreError>> + '_ {
        match self {
            EventLog::Sled(s) => Either::A(s.read_raw(from_seq, to_seq)),
            EventLog::Postgres(p) => Either::B(p.read_raw(from_seq, to_seq)),
        }
    }

    fn visit_raw(
        &self,
        from_seq: u64,
        to_seq: u64,
        known: Option<&[super::Hash]>,
        f: &mut dyn FnMut(super::RawRecordRef<'_>),
    ) -> Result<(), StoreError> {
        match self {
            EventLog::Sled(s) => s.visit_raw(from_seq, to_seq, known, f),
            EventLog::Postgres(p) => p.visit_raw(from_seq, to_seq, known, f),
        }
    }

    fn chain_hashes(&self, from_seq: u64, to_seq: u64) -> Result<Vec<super::Hash>, StoreError> {
        match self {
            EventLog::Sled(s) => s.chain_hashes(from_seq, to_seq),
            EventLog::Postgres(p) => p.chain_hashes(from_seq, to_seq),
        }
    }

    fn save_signed_head(&self, head: &SignedTreeHead, durable: bool) -> Result<(), StoreError> {
        match self {
            EventLog::Sled(s) => s.save_signed_head(head, durable),
            EventLog::Postgres(p) => p.save_signed_head(head, durable),
        }
    }

    fn load_signed_head(&self) -> Result<Option<SignedTreeHead>, StoreError> {
        match self {
            EventLog::Sled(s) => s.load_signed_head(),
            EventLog::Postgres(p) => p.load_signed_head(),
        }
    }

    fn read_account(&self, account_id: &str) -> Result<Vec<StoredRecord<Event>>, StoreError> {
        match self {
            EventLog::Sled(s) => s.read_account(account_id),
            EventLog::Postgres(p) => p.read_account(account_id),
        }
    }

    fn read_account_events(&self, account_id: &str) -> Result<Vec<(u64, Event)>, StoreError> {
        match self {
            EventLog::Sled(s) => s.read_account_events(account_id),
            EventLog::Postgres(p) => p.read_account_events(account_id),
        }
    }

    fn save_snapshot<S: SnapshotState>(&mut self, state: &S) -> Result<(), StoreError> {
        match self {
            EventLog::Sled(s) => s.save_snapshot(state),
            EventLog::Postgres(p) => p.save_snapshot(state),
        }
    }

    fn load_snapshot<S: SnapshotState>(&self) -> Result<Option<Snapshot<S>>, StoreError> {
        match self {
            EventLog::Sled(s) => s.load_snapshot(),
            EventLog::Postgres(p) => p.load_snapshot(),
        }
    }
}

/// Opens the log at `location` and rebuilds the ledger: the newest snapshot
/// that matches the chain (and was taken under the same `policy`), then the
/// tail of the log after it. What the engine calls at start-up.
pub fn open_ledger(
    location: impl Into<StoreLocation>,
    policy: Policy,
) -> Result<(EventLog, Ledger), StoreError> {
    open_ledger_with(location, policy, StoreOptions::default())
}

/// [`open_ledger`] with explicit store options (snapshot period).
pub fn open_ledger_with(
    location: impl Into<StoreLocation>,
    policy: Policy,
    opts: StoreOptions,
) -> Result<(EventLog, Ledger), StoreError> {
    let log = EventLog::open(location, opts)?;
    let ledger = load_ledger(&log, policy)?;
    Ok((log, ledger))
}

/// The state of an opened log: its newest snapshot taken under `policy`
/// (else none) and a replay of the records after it.
pub fn load_ledger(log: &EventLog, policy: Policy) -> Result<Ledger, StoreError> {
    let ledger = match log.load_snapshot::<Ledger>()? {
        Some(snap) if snap.state.policy() == &policy && snap.state.last_seq() == snap.head.seq => {
            snap.state
        }
        Some(snap) => {
            tracing::info!(
                seq = snap.head.seq,
                "snapshot taken under another policy: replaying the whole log"
            );
            Ledger::new(policy)
        }
        None => Ledger::new(policy),
    };
    replay_onto(log, ledger, &mut |_| {})
}

/// Folds the records after `ledger.last_seq()` into `ledger`; `progress`
/// is called with the last applied seq each time it crosses a multiple of
/// 64 Ki records.
pub fn replay_onto(
    log: &EventLog,
    ledger: Ledger,
    progress: &mut dyn FnMut(u64),
) -> Result<Ledger, StoreError> {
    replay_onto_until(log, ledger, None, progress)
}

/// [`replay_onto`] of the log's prefix with `at <= until` (`None`: the whole
/// log): records are in non-decreasing `at`, so the fold stops at the first
/// record after `until`, and what follows it is not read (a defect there is
/// `verify`'s to find). The ledger is then the one the service held at
/// `until`: its views at `until` are that instant's.
pub fn replay_onto_until(
    log: &EventLog,
    mut ledger: Ledger,
    until: Option<i64>,
    progress: &mut dyn FnMut(u64),
) -> Result<Ledger, StoreError> {
    // Two threads: this one folds while a reader walks the log, checks and
    // decodes its frames (and feeds the account index) a few frames ahead.
    // A frame's events are folded together, so the fold can prefetch the
    // state of the events ahead (`Ledger::apply_quiet_all`). Batches go
    // back to the reader empty, to be refilled without allocating.
    let from = ledger.last_seq() + 1;
    let mut failure = None;
    // Whether the fold stopped at a record after `until`.
    let mut stopped = false;
    let scanned = std::thread::scope(|scope| {
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<DecodedFrame>(FRAMES_AHEAD);
        let (empty_tx, empty_rx) = std::sync::mpsc::channel::<DecodedFrame>();
        let reader = std::thread::Builder::new()
            .name("replay-reader".into())
            .spawn_scoped(scope, move || {
                log.scan_frames(from, |batch| {
                    let spare = empty_rx.try_recv().unwrap_or_default();
                    // A send fails once the fold stopped: stop reading.
                    full_tx.send(std::mem::replace(batch, spare)).is_ok()
                })
            });
        let reader = match reader {
            Ok(handle) => handle,
            // No thread to be had: read and fold on this one.
            Err(_) => {
                return log.scan_frames(from, |batch| {
                    let ends = cut_after(batch, until);
                    failure = fold_frame(&mut ledger, batch, progress);
                    stopped = ends;
                    failure.is_none() && !ends
                })
            }
        };
        for mut batch in full_rx {
            let ends = cut_after(&mut batch, until);
            failure = fold_frame(&mut ledger, &mut batch, progress);
            if failure.is_some() || ends {
                stopped = ends;
                break; // drops the receiver: the reader stops
            }
            batch.clear();
            let _ = empty_tx.send(batch);
        }
        reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    // The fold only sees records before any the reader found damaged, so a
    // fold failure is the first error in log order.
    if let Some(e) = failure {
        return Err(e);
    }
    if stopped {
        // The reader reads ahead: what it found wrong is after `until`.
        return Ok(ledger);
    }
    scanned?;
    let head = log.head();
    if ledger.last_seq() != head.seq {
        return Err(StoreError::Corrupt {
            seq: ledger.last_seq() + 1,
            what: format!(
                "replay stopped at seq {} before the head {}",
                ledger.last_seq(),
                head.seq
            ),
        });
    }
    Ok(ledger)
}

/// Drops the frame's records after `until` (from the first whose `at` is
/// later); true if there was one: the fold ends with this frame.
fn cut_after(batch: &mut DecodedFrame, until: Option<i64>) -> bool {
    let Some(until) = until else { return false };
    match batch.iter().position(|(_, at, _)| *at > until) {
        Some(i) => {
            batch.truncate(i);
            true
        }
        None => false,
    }
}

/// A frame's records, decoded: `(seq, at, event)`.
type DecodedFrame = Vec<(u64, i64, Event)>;

/// How many decoded frames the replay reader may run ahead of the fold.
const FRAMES_AHEAD: usize = 4;

/// Folds one decoded frame; the error names the first record that cannot
/// be folded (the records before it are folded, as a record-by-record
/// fold would leave them). Reports progress every 64 Ki records.
fn fold_frame(
    ledger: &mut Ledger,
    batch: &mut DecodedFrame,
    progress: &mut dyn FnMut(u64),
) -> Option<StoreError> {
    let mut failure = None;
    if let Some(i) = batch.iter().position(|(_, at, ev)| *at != ev.at) {
        let (seq, at, ev) = &batch[i];
        failure = Some(StoreError::Corrupt {
            seq: *seq,
            what: format!("record at {at} holds an event at {}", ev.at),
        });
        batch.truncate(i);
    }
    let before = ledger.last_seq();
    if let Err(e) = ledger.apply_quiet_all(batch.iter().map(|(seq, _, ev)| (*seq, ev))) {
        // The record that failed is the first one not folded.
        let failed = batch[(ledger.last_seq() - before) as usize].0;
        failure = Some(StoreError::Corrupt {
            seq: failed,
            what: format!("replay: {e}"),
        });
    }
    if ledger.last_seq() >> 16 != before >> 16 {
        progress(ledger.last_seq());
    }
    failure
}

/// Appends decided events as one durable batch, folds them into `ledger`
/// and takes a snapshot when one is due. Returns what `apply` reported, in
/// order. The single-writer path of the engine (and of the crash test).
pub fn commit(
    log: &mut EventLog,
    ledger: &mut Ledger,
    events: Vec<Event>,
) -> Result<Vec<Applied>, StoreError> {
    let batch: Vec<(i64, Event)> = events.into_iter().map(|e| (e.at, e)).collect();
    let seqs = log.append(&batch)?;
    let mut out = Vec::with_capacity(seqs.len());
    for (seq, (_, ev)) in seqs.iter().zip(&batch) {
        let applied = ledger.apply(*seq, ev).map_err(|e| StoreError::Corrupt {
            seq: *seq,
            what: format!("a decided event does not apply: {e}"),
        })?;
        out.push(applied);
    }
    if log.snapshot_due() {
        log.save_snapshot(ledger)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::workload::Workload;

    #[test]
    fn restart_rebuilds_the_same_ledger_with_and_without_snapshots() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut reference = Ledger::new(Policy::default());
        let events = Workload::history(7, 700, &mut reference);
        let opts = StoreOptions {
            snapshot_every_records: 150,
            fdatasync: false,
        };
        let (mut log, mut ledger) =
            open_ledger_with(tmp.path(), Policy::default(), opts.clone()).expect("open");
        for chunk in events.chunks(64) {
            commit(&mut log, &mut ledger, chunk.to_vec()).expect("commit");
        }
        assert_eq!(ledger, reference);
        drop(log);
        let (log, again) = open_ledger_with(tmp.path(), Policy::default(), opts).expect("reopen");
        assert_eq!(again, reference);
        assert!(log.load_snapshot::<Ledger>().expect("load").is_some());
        // Another policy ignores the snapshot and still gets a consistent fold.
        drop(log);
        let other = Policy {
            min_activation_runtime_s: 0,
            ..Policy::default()
        };
        let (_, fresh) = open_ledger(tmp.path(), other.clone()).expect("reopen");
        assert_eq!(fresh, Ledger::replay(other, &events).expect("replay"));
    }

    #[test]
    fn cold_replay_equals_the_fold_and_builds_the_index() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut reference = Ledger::new(Policy::default());
        let events = Workload::history(3, 20_000, &mut reference);
        let opts = StoreOptions::without_snapshots(false);
        {
            let (mut log, mut ledger) =
                open_ledger_with(tmp.path(), Policy::default(), opts.clone()).expect("open");
            for chunk in events.chunks(1000) {
                commit(&mut log, &mut ledger, chunk.to_vec()).expect("commit");
            }
        }
        let (log, ledger) = open_ledger_with(tmp.path(), Policy::default(), opts).expect("reopen");
        assert_eq!(ledger, reference);
        // The replay scan also built the account index.
        let id = ledger.account_ids()[0].to_owned();
        let mine = log.read_account(&id).expect("read");
        assert_eq!(
            mine.iter().map(|r| r.event.clone()).collect::<Vec<_>>(),
            events
                .iter()
                .filter(|e| e.account_id() == Some(id.as_str()))
                .cloned()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_record_the_fold_refuses_is_named_by_its_seq() {
        // Records the store accepts (checksums and chain are fine) but the
        // domain cannot fold: the error names the exact seq, wherever it
        // falls in the batches the replay folds at a time.
        use crate::domain::{EventBody, Nano};
        for bad_at in [2u64, 1500] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let mut log =
                EventLog::open(tmp.path(), StoreOptions::without_snapshots(false)).expect("open");
            let at = 1_700_000_000;
            let mut batch = vec![(
                at,
                Event {
                    at,
                    body: EventBody::AccountOpened {
                        account_id: "a".into(),
                    },
                },
            )];
            for seq in 2..=2000u64 {
                let account_id = if seq == bad_at { "nobody" } else { "a" };
                batch.push((
                    at,
                    Event {
                        at,
                        body: EventBody::ToppedUp {
                            account_id: account_id.into(),
                            activation_key: format!("KEY-{seq:08}").into(),
                            amount: Nano(1),
                            price_version: None,
                        },
                    },
                ));
            }
            log.append(&batch).expect("append");
            drop(log);
            match open_ledger(tmp.path(), Policy::default()) {
                Err(StoreError::Corrupt { seq, what }) => {
                    assert_eq!(seq, bad_at, "{what}");
                    assert!(what.contains("nobody"), "{what}");
                }
                other => panic!("expected a corrupt log, got {:?}", other.map(|_| ())),
            }
        }
    }
}
