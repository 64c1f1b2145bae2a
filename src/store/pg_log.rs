//! The PostgreSQL backend of [`LogStore`]: the same records, payload bytes
//! and chain hashes as the sled backend (computed by the shared
//! [`codec`](super::codec)), one row per record (schema in
//! [`pg_schema`](super::pg_schema)).
//!
//! Durability: one transaction per append (a group commit of the engine):
//! `BEGIN; INSERT` of every record of the batch in one statement (arrays
//! unnested server-side; behind the writer lease, joined with the lease's
//! fence)`; UPDATE isc_head` by compare-and-set on the old head`; COMMIT`,
//! pipelined in one round trip. `append` returns `Ok` only
//! after `COMMIT` returned; what that guarantees depends on the server's
//! `synchronous_commit` (ARCHITECTURE.md). A second writer is refused twice:
//! by the head's compare-and-set and by the dense `seq` primary key.
//!
//! Driving an async client from a synchronous trait: the engine's writer
//! calls `append` on its own thread, inside a current-thread runtime, so
//! `PgLog` cannot `block_on` there. It owns a small thread running its own
//! current-thread tokio runtime, which drives its connections; each call
//! spawns its future there and waits on a plain (std) channel, which is
//! safe from any thread, async or not. Streams (`read_range`, `read_raw`)
//! are fetched by a task on that runtime in chunks of rows a few chunks
//! ahead of the consumer (a semaphore bounds the read-ahead); the replay
//! of a restart ([`PgLog::scan_batches`]) reads one binary COPY the same
//! way, as bytes parsed and checked on the consumer's thread.
//!
//! Only bound parameters reach PostgreSQL: every value is a parameter of
//! a statement prepared once per connection; no SQL text is ever built
//! from data.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::Semaphore;
use tokio_postgres::{Client, Statement};

use super::pg_conn::PgConfig;

use super::codec::{self, record_hash, Hash, RawRecord as CodecRecord, SnapshotHeader};
use super::sled_log::{decode_event, DEFAULT_SNAPSHOT_EVERY_RECORDS};
use super::{
    pg_conn, pg_schema, Head, Indexed, LogStore, RawRecord, SignedTreeHead, Snapshot,
    SnapshotState, StoreError, StoreOptions, StoredRecord,
};

/// Rows fetched per query of a stream.
const CHUNK_ROWS: i64 = 8192;
/// Chunks a stream may fetch ahead of its consumer.
const CHUNKS_AHEAD: usize = 4;
/// Snapshots kept; older ones are deleted when a new one is saved.
const SNAPSHOTS_KEPT: i64 = 2;

/// A PostgreSQL error with what we were doing, never the connection string.
pub(crate) fn pg_error(what: &str, e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Postgres(format!("{what}: {db}")),
        None => {
            use std::error::Error;
            match e.source() {
                Some(src) => StoreError::Postgres(format!("{what}: {e}: {src}")),
                None => StoreError::Postgres(format!("{what}: {e}")),
            }
        }
    }
}

fn corrupt(seq: u64, what: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        seq,
        what: what.into(),
    }
}

fn seq_param(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| corrupt(seq, "seq beyond the range of a PostgreSQL bigint"))
}

/// The thread and runtime that drive the connections (see the module).
struct PgRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PgRuntime {
    fn start() -> Result<PgRuntime, StoreError> {
        let (htx, hrx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("isc-pg".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = htx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = htx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| StoreError::Postgres(format!("cannot start the client thread: {e}")))?;
        let handle = hrx
            .recv()
            .map_err(|_| StoreError::Postgres("the client thread died".into()))?
            .map_err(|e| StoreError::Postgres(format!("cannot build the client runtime: {e}")))?;
        Ok(PgRuntime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Runs `fut` on the client thread and waits for its output.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| StoreError::Postgres("the PostgreSQL client thread stopped".into()))?
    }
}

impl Drop for PgRuntime {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Statements of the writer's connection.
struct WriteStatements {
    insert: Statement,
    set_head: Statement,
}

/// Statements of the readers' connection.
struct ReadStatements {
    range: Statement,
    account: Statement,
    scan_bounds: Statement,
    scan_copy: Statement,
}

impl WriteStatements {
    async fn prepare(writer: &Client) -> Result<WriteStatements, StoreError> {
        let prep = |e| pg_error("cannot prepare statements", e);
        Ok(WriteStatements {
            insert: writer.prepare(SQL_INSERT).await.map_err(prep)?,
            set_head: writer.prepare(SQL_SET_HEAD).await.map_err(prep)?,
        })
    }
}

impl ReadStatements {
    async fn prepare(reader: &Client) -> Result<ReadStatements, StoreError> {
        let prep = |e| pg_error("cannot prepare statements", e);
        Ok(ReadStatements {
            range: reader.prepare(SQL_RANGE).await.map_err(prep)?,
            account: reader.prepare(SQL_ACCOUNT).await.map_err(prep)?,
            scan_bounds: reader.prepare(SQL_SCAN_BOUNDS).await.map_err(prep)?,
            scan_copy: reader.prepare(SQL_SCAN_COPY).await.map_err(prep)?,
        })
    }
}

const SQL_INSERT: &str = "INSERT INTO isc_records (seq, at, version, prev_hash, hash, account_id, payload) \
     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::smallint[], $4::bytea[], $5::bytea[], $6::bytea[], $7::bytea[])";
/// Moves the head by compare-and-set, and only when the new head's record
/// is there (a fenced insert that inserted nothing leaves it alone).
const SQL_SET_HEAD: &str = "UPDATE isc_head SET seq = $1, at = $2, hash = $3 \
     WHERE seq = $4 AND hash = $5 AND EXISTS (SELECT 1 FROM isc_records WHERE seq = $1)";

/// Several nodes: the channel a fenced append notifies in its transaction
/// (delivered at COMMIT) and standbys listen on, so they tail at once
/// instead of at their next poll.
const SQL_NOTIFY_APPENDED: &str = "NOTIFY isc_appended";
const SQL_LISTEN_APPENDED: &str = "LISTEN isc_appended";

/// The append's INSERT behind the writer lease's fence: `fence_sql` (one
/// parameter, the epoch; a row when the lease is held, locked `FOR SHARE`)
/// becomes a CTE the rows are joined with, so the fence costs no round
/// trip of its own and a lost lease inserts nothing. Built from constant
/// SQL only (`pg_lease::FENCE_SQL`), never from data.
fn fenced_insert_sql(fence_sql: &str) -> String {
    format!(
        "WITH fence AS ({fence_sql}) \
         INSERT INTO isc_records (seq, at, version, prev_hash, hash, account_id, payload) \
         SELECT u.seq, u.at, u.version, u.prev_hash, u.hash, u.account_id, u.payload \
         FROM fence CROSS JOIN UNNEST($2::bigint[], $3::bigint[], $4::smallint[], $5::bytea[], \
              $6::bytea[], $7::bytea[], $8::bytea[]) \
           AS u (seq, at, version, prev_hash, hash, account_id, payload)"
    )
}
/// Prepares [`fenced_insert_sql`] on the writer's connection (when the
/// fence is set, and again after a reconnect).
async fn prepare_fenced_insert(writer: &Client, fence_sql: &str) -> Result<Statement, StoreError> {
    writer
        .prepare(&fenced_insert_sql(fence_sql))
        .await
        .map_err(|e| pg_error("cannot prepare the writer-lease fence", e))
}
const SQL_RANGE: &str = "SELECT seq, at, version, prev_hash, hash, payload FROM isc_records \
     WHERE seq >= $1 AND seq <= $2 ORDER BY seq";
/// The replay's bounds: session settings read by [`SQL_SCAN_COPY`] (a COPY
/// takes no parameters; its bounds still arrive as bound parameters).
const SQL_SCAN_BOUNDS: &str =
    "SELECT set_config('isc.scan_from', $1, false), set_config('isc.scan_to', $2, false)";
/// The replay's rows, as one binary COPY: no `prev_hash` (each record's
/// hash is recomputed from the hash of the record before, which checks the
/// link and the contents at once).
const SQL_SCAN_COPY: &str = "COPY (SELECT seq, at, version, hash, payload FROM isc_records \
     WHERE seq >= current_setting('isc.scan_from')::bigint \
       AND seq <= current_setting('isc.scan_to')::bigint ORDER BY seq) \
     TO STDOUT (FORMAT binary)";
const SQL_ACCOUNT: &str = "SELECT seq, at, version, prev_hash, hash, payload FROM isc_records \
     WHERE account_id = $1 AND seq <= $2 ORDER BY seq";

async fn connect(cfg: &PgConfig, what: &str) -> Result<Client, StoreError> {
    let (client, conn) = cfg
        .connect()
        .await
        .map_err(|e| cfg.connect_error(what, e))?;
    let what = what.to_owned();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(connection = %what, "PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// The event log on PostgreSQL. Single writer (`&mut self` to append);
/// readers share `&self`.
pub struct PgLog<E> {
    rt: PgRuntime,
    described: String,
    writer: Arc<Client>,
    write_stmts: Arc<WriteStatements>,
    reader: Arc<Client>,
    read_stmts: Arc<ReadStatements>,
    head: Head,
    opts: StoreOptions,
    last_snapshot_seq: u64,
    /// The writer lease's fence: the prepared fenced INSERT and the epoch held.
    fence: Option<(Statement, i64)>,
    /// Several nodes: the fence's SQL (prepared again after a reconnect),
    /// how to connect again after a lost connection, and the session bound
    /// of a transaction left idle (a frozen writer must not hold the fence).
    fence_sql: Option<String>,
    cfg: PgConfig,
    idle_tx_timeout_ms: Option<i64>,
    /// The first seq and the chain hashes of the last committed append:
    /// the engine asks for them right after `append` returned, and that
    /// must not depend on another round trip (a connection lost just after
    /// the COMMIT would report a committed append as failed).
    last_batch: (u64, Vec<Hash>),
    _event: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for PgLog<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLog")
            .field("db", &self.described)
            .field("head", &self.head.seq)
            .finish_non_exhaustive()
    }
}

/// How [`PgLog::open_with`] treats the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaMode {
    /// Create it on an empty database (`serve`, `copy --to`).
    Create,
    /// Require it (offline tools: an empty database is an error).
    Require,
}

/// Connects with `cfg` and runs `f` on the client thread (`db init|migrate`).
pub fn with_client<T: Send + 'static, F, Fut>(url: &str, f: F) -> Result<T, StoreError>
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, StoreError>> + Send,
{
    let cfg = pg_conn::parse(url)?;
    let rt = PgRuntime::start()?;
    rt.run(async move {
        let client = connect(&cfg, "admin").await?;
        f(client).await
    })
}

/// `isc-ledger db init|migrate`: creates or migrates the schema.
pub fn migrate(url: &str) -> Result<pg_schema::Migrated, StoreError> {
    with_client(url, |c| async move { pg_schema::migrate(&c).await })
}

/// A row as read: the record and its account column.
fn row_record(row: &tokio_postgres::Row) -> Result<RawRecord, StoreError> {
    let get = |e: tokio_postgres::Error| pg_error("unexpected row in isc_records", e);
    let seq: i64 = row.try_get(0).map_err(get)?;
    let seq_u = u64::try_from(seq).map_err(|_| corrupt(0, format!("negative seq {seq}")))?;
    let at: i64 = row.try_get(1).map_err(get)?;
    let version: i16 = row.try_get(2).map_err(get)?;
    let prev: &[u8] = row.try_get(3).map_err(get)?;
    let hash: &[u8] = row.try_get(4).map_err(get)?;
    let payload: &[u8] = row.try_get(5).map_err(get)?;
    let version = u8::try_from(version)
        .map_err(|_| corrupt(seq_u, format!("unknown record version {version}")))?;
    let prev_hash: Hash = prev
        .try_into()
        .map_err(|_| corrupt(seq_u, "prev_hash is not 32 bytes"))?;
    let hash: Hash = hash
        .try_into()
        .map_err(|_| corrupt(seq_u, "hash is not 32 bytes"))?;
    if payload.len() > codec::MAX_EVENT_BYTES {
        return Err(corrupt(seq_u, "event bytes longer than the limit"));
    }
    Ok(RawRecord {
        seq: seq_u,
        at,
        version,
        prev_hash,
        hash,
        payload: payload.to_vec(),
    })
}

/// Checks one record's own hash (its chain link is the caller's).
fn check_hash(r: &RawRecord) -> Result<(), StoreError> {
    if r.version != codec::RECORD_VERSION_1 {
        return Err(corrupt(
            r.seq,
            format!("unknown record version {}", r.version),
        ));
    }
    if record_hash(&r.prev_hash, r.seq, r.at, &r.payload) != r.hash {
        return Err(corrupt(
            r.seq,
            "record hash does not match its contents (altered)",
        ));
    }
    Ok(())
}

fn decode<E: DeserializeOwned + Indexed>(r: &RawRecord) -> Result<E, StoreError> {
    decode_event(&CodecRecord {
        seq: r.seq,
        at: r.at,
        version: r.version,
        event: &r.payload,
    })
}

/// Chunks (of records, or of COPY bytes) fetched ahead by a task on the
/// client thread.
struct Chunks<T = Vec<RawRecord>> {
    rx: std::sync::mpsc::Receiver<Result<T, StoreError>>,
    permits: Arc<Semaphore>,
}

impl<T> Chunks<T> {
    fn next_chunk(&mut self) -> Option<Result<T, StoreError>> {
        let got = self.rx.recv().ok()?;
        self.permits.add_permits(1);
        Some(got)
    }
}

impl<T> Drop for Chunks<T> {
    fn drop(&mut self) {
        // Stops the fetching task at its next chunk.
        self.permits.close();
    }
}

/// Checks density, the chain link and (when `hashes`) each record's hash
/// along a stream; then hands the records on.
struct ChainCheck {
    next: u64,
    prev: Option<Hash>,
    hashes: bool,
}

impl ChainCheck {
    fn check(&mut self, r: &RawRecord) -> Result<(), StoreError> {
        if r.seq != self.next {
            return Err(corrupt(
                self.next,
                format!("record missing (the next row has seq {})", r.seq),
            ));
        }
        let expected = match self.prev {
            Some(h) => Some(h),
            None if r.seq == 1 => Some(codec::GENESIS_HASH),
            None => None,
        };
        if let Some(h) = expected {
            if r.prev_hash != h {
                return Err(corrupt(
                    r.seq,
                    "prev_hash does not match the hash of the record before (chain broken)",
                ));
            }
        }
        if self.hashes {
            check_hash(r)?;
        } else if r.version != codec::RECORD_VERSION_1 {
            return Err(corrupt(
                r.seq,
                format!("unknown record version {}", r.version),
            ));
        }
        self.prev = Some(r.hash);
        self.next = r.seq + 1;
        Ok(())
    }
}

/// The rows stop at `next` although the head row says the log reaches `to`.
fn ends_early(next: u64, to: u64) -> StoreError {
    corrupt(
        next,
        format!(
            "record missing: the log ends at seq {} but reaches {to} by its head row (truncated)",
            next - 1
        ),
    )
}

/// Bytes of COPY data handed over at a time.
const COPY_CHUNK_BYTES: usize = 256 * 1024;

/// One tuple of the replay's binary COPY: the fixed columns, and where the
/// hash and the payload lie in the parser's buffer.
struct CopyTuple {
    seq: u64,
    at: i64,
    version: i16,
    hash: std::ops::Range<usize>,
    payload: std::ops::Range<usize>,
}

/// The checks of one replayed record: density, version, sizes, and its
/// hash recomputed from `prev` (the hash of the record before). Returns
/// its hash.
fn scan_check(
    next: u64,
    prev: Hash,
    t: &CopyTuple,
    hash: &[u8],
    payload: &[u8],
) -> Result<Hash, StoreError> {
    if t.seq != next {
        return Err(corrupt(
            next,
            format!("record missing (the next row has seq {})", t.seq),
        ));
    }
    if t.version != i16::from(codec::RECORD_VERSION_1) {
        return Err(corrupt(
            t.seq,
            format!("unknown record version {}", t.version),
        ));
    }
    let hash: Hash = hash
        .try_into()
        .map_err(|_| corrupt(t.seq, "hash is not 32 bytes"))?;
    if payload.len() > codec::MAX_EVENT_BYTES {
        return Err(corrupt(t.seq, "event bytes longer than the limit"));
    }
    if record_hash(&prev, t.seq, t.at, payload) != hash {
        return Err(corrupt(
            t.seq,
            "record hash does not match its contents and the hash of the record before \
             (altered, or the chain is broken)",
        ));
    }
    Ok(hash)
}

/// Parses PostgreSQL's binary COPY format (header, then per tuple a field
/// count and length-prefixed fields, then a trailer) across chunk
/// boundaries. Only the replay's five columns are accepted.
#[derive(Default)]
struct CopyParser {
    buf: Vec<u8>,
    pos: usize,
    header_done: bool,
}

/// The binary COPY signature.
const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl CopyParser {
    fn buf(&self) -> &[u8] {
        &self.buf
    }

    /// Adds bytes (the unparsed rest is kept in front of them).
    fn feed(&mut self, chunk: Vec<u8>) {
        if self.pos >= self.buf.len() {
            self.buf = chunk;
        } else {
            self.buf.drain(..self.pos);
            self.buf.extend_from_slice(&chunk);
        }
        self.pos = 0;
    }

    /// The next whole tuple, `None` when more bytes are needed or at the
    /// trailer; `next` names the record in errors.
    fn next_tuple(&mut self, next: u64) -> Result<Option<CopyTuple>, StoreError> {
        let bad = |what: &str| {
            corrupt(
                next,
                format!("unexpected COPY data from PostgreSQL: {what}"),
            )
        };
        let b = &self.buf[self.pos..];
        let mut at = 0usize;
        if !self.header_done {
            // Signature, flags, extension length, extension.
            if b.len() < COPY_SIGNATURE.len() + 8 {
                return Ok(None);
            }
            if &b[..COPY_SIGNATURE.len()] != COPY_SIGNATURE {
                return Err(bad("no binary COPY signature"));
            }
            at = COPY_SIGNATURE.len() + 4;
            let ext = u32::from_be_bytes(b[at..at + 4].try_into().unwrap_or_default()) as usize;
            at += 4;
            if b.len() < at + ext {
                return Ok(None);
            }
            at += ext;
            self.pos += at;
            self.header_done = true;
            return self.next_tuple(next);
        }
        let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
            let s = b.get(*at..*at + n)?;
            *at += n;
            Some(s)
        };
        let Some(count) = take(&mut at, 2) else {
            return Ok(None);
        };
        let count = i16::from_be_bytes([count[0], count[1]]);
        if count == -1 {
            return Ok(None); // trailer
        }
        if count != 5 {
            return Err(bad(&format!("{count} columns")));
        }
        let mut fields: [std::ops::Range<usize>; 5] = Default::default();
        for f in fields.iter_mut() {
            let Some(len) = take(&mut at, 4) else {
                return Ok(None);
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            let len = usize::try_from(len).map_err(|_| bad("a NULL column"))?;
            let start = at;
            if take(&mut at, len).is_none() {
                return Ok(None);
            }
            *f = self.pos + start..self.pos + start + len;
        }
        let int = |r: &std::ops::Range<usize>, n: usize| -> Result<i64, StoreError> {
            let v = &self.buf[r.clone()];
            match (n, v.len()) {
                (8, 8) => Ok(i64::from_be_bytes(v.try_into().unwrap_or_default())),
                (2, 2) => Ok(i64::from(i16::from_be_bytes([v[0], v[1]]))),
                _ => Err(bad("a column of the wrong width")),
            }
        };
        let seq = int(&fields[0], 8)?;
        let seq = u64::try_from(seq).map_err(|_| corrupt(next, format!("negative seq {seq}")))?;
        let tuple = CopyTuple {
            seq,
            at: int(&fields[1], 8)?,
            version: int(&fields[2], 2)? as i16,
            hash: fields[3].clone(),
            payload: fields[4].clone(),
        };
        self.pos += at;
        Ok(Some(tuple))
    }
}

/// Iterator of checked raw records over a range.
pub struct RawIter {
    chunks: Option<Chunks>,
    buf: std::vec::IntoIter<RawRecord>,
    check: ChainCheck,
    to: u64,
    failed: bool,
}

impl Iterator for RawIter {
    type Item = Result<RawRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed || self.check.next > self.to {
                return None;
            }
            if let Some(r) = self.buf.next() {
                let res = self.check.check(&r).map(|()| r);
                self.failed = res.is_err();
                return Some(res);
            }
            match self.chunks.as_mut()?.next_chunk() {
                Some(Ok(v)) if v.is_empty() => {
                    self.failed = true;
                    return Some(Err(ends_early(self.check.next, self.to)));
                }
                Some(Ok(v)) => self.buf = v.into_iter(),
                Some(Err(e)) => {
                    self.failed = true;
                    return Some(Err(e));
                }
                // The fetching task ended early: rows are missing.
                None => {
                    self.failed = true;
                    return Some(Err(ends_early(self.check.next, self.to)));
                }
            }
        }
    }
}

impl<E> PgLog<E> {
    /// The database, for people (no password).
    pub fn describe(&self) -> &str {
        &self.described
    }

    /// Snapshot period reached since the last snapshot.
    pub fn snapshot_due(&self) -> bool {
        self.head.seq
            >= self
                .last_snapshot_seq
                .saturating_add(self.opts.snapshot_every_records.max(1))
    }

    fn stream(&self, from: u64, to: u64) -> Chunks {
        let (tx, rx) = std::sync::mpsc::channel();
        let permits = Arc::new(Semaphore::new(CHUNKS_AHEAD));
        let task_permits = permits.clone();
        let client = self.reader.clone();
        let stmts = self.read_stmts.clone();
        self.rt.handle.spawn(async move {
            let mut lo = from;
            while lo <= to {
                match task_permits.acquire().await {
                    Ok(p) => p.forget(),
                    Err(_) => return, // the consumer is gone
                }
                let hi = to.min(lo.saturating_add(CHUNK_ROWS as u64 - 1));
                let res = async {
                    let (l, h) = (seq_param(lo)?, seq_param(hi)?);
                    let rows = client
                        .query(&stmts.range, &[&l, &h])
                        .await
                        .map_err(|e| pg_error("cannot read records", e))?;
                    rows.iter().map(row_record).collect::<Result<Vec<_>, _>>()
                }
                .await;
                let stop = match &res {
                    Ok(v) => v.is_empty(),
                    Err(_) => true,
                };
                if tx.send(res).is_err() || stop {
                    return;
                }
                lo = hi + 1;
            }
        });
        Chunks { rx, permits }
    }

    /// Raw records `from..=to` (clamped to the head), checked as read:
    /// density, chain links and every record's hash.
    pub fn read_raw_records(&self, from_seq: u64, to_seq: u64) -> RawIter {
        let from = from_seq.max(1);
        let to = to_seq.min(self.head.seq);
        RawIter {
            chunks: (from <= to).then(|| self.stream(from, to)),
            buf: Vec::new().into_iter(),
            check: ChainCheck {
                next: from,
                prev: None,
                hashes: true,
            },
            to,
            failed: false,
        }
    }

    /// Stores the signed tree head JSON (one row).
    pub fn save_signed_head_json(&self, json: &str) -> Result<(), StoreError> {
        let client = self.writer.clone();
        let json = json.to_owned();
        self.rt.run(async move {
            client
                .execute(
                    "INSERT INTO isc_signed_head (singleton, body) VALUES (true, $1) \
                     ON CONFLICT (singleton) DO UPDATE SET body = EXCLUDED.body",
                    &[&json],
                )
                .await
                .map_err(|e| pg_error("cannot store the signed tree head", e))?;
            Ok(())
        })
    }

    /// The stored signed tree head JSON.
    pub fn load_signed_head_json(&self) -> Result<Option<String>, StoreError> {
        let client = self.reader.clone();
        self.rt.run(async move {
            let row = client
                .query_opt("SELECT body FROM isc_signed_head", &[])
                .await
                .map_err(|e| pg_error("cannot read the signed tree head", e))?;
            row.map(|r| r.try_get::<_, String>(0))
                .transpose()
                .map_err(|e| pg_error("cannot read the signed tree head", e))
        })
    }

    /// Every stored snapshot as `(seq key, header and state bytes or None
    /// when damaged)`, oldest first (for `verify`).
    pub fn raw_snapshots(&self) -> Result<Vec<super::sled_log::RawSnapshot>, StoreError> {
        let client = self.reader.clone();
        let rows = self.rt.run(async move {
            let rows = client
                .query("SELECT seq, body FROM isc_snapshots ORDER BY seq", &[])
                .await
                .map_err(|e| pg_error("cannot read snapshots", e))?;
            rows.iter()
                .map(|r| {
                    let seq: i64 = r.try_get(0).map_err(|e| pg_error("snapshot row", e))?;
                    let body: Vec<u8> = r.try_get(1).map_err(|e| pg_error("snapshot row", e))?;
                    Ok((seq, body))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        Ok(rows
            .into_iter()
            .map(|(seq, body)| {
                let key = u64::try_from(seq).unwrap_or(0);
                match codec::decode_snapshot(&body) {
                    Some((h, state)) if h.seq == key => Ok((h, state.to_vec())),
                    _ => Err(key),
                }
            })
            .collect())
    }

    /// The head row as stored (for `verify`: truncation and extra rows).
    pub fn stored_head(&self) -> Result<Head, StoreError> {
        let client = self.reader.clone();
        self.rt.run(async move { read_head_row(&client).await })
    }

    /// The greatest seq of any row (0 when none), head row or not.
    pub fn last_record_seq(&self) -> Result<u64, StoreError> {
        let client = self.reader.clone();
        self.rt.run(async move {
            let last = read_last_row(&client).await?;
            Ok(last.map_or(0, |r| r.seq))
        })
    }

    /// Bytes of the ledger's tables and indexes (PostgreSQL's own count).
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        let client = self.reader.clone();
        self.rt.run(async move {
            let row = client
                .query_one(
                    "SELECT (pg_total_relation_size('isc_records') + pg_total_relation_size('isc_snapshots') \
                     + pg_total_relation_size('isc_head'))::bigint",
                    &[],
                )
                .await
                .map_err(|e| pg_error("cannot read table sizes", e))?;
            let n: i64 = row.try_get(0).map_err(|e| pg_error("table sizes", e))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    /// Chain hash of record `seq` (checked against its contents).
    pub fn hash_at(&self, seq: u64) -> Result<Hash, StoreError> {
        if seq == 0 {
            return Ok(codec::GENESIS_HASH);
        }
        match self.read_raw_records(seq, seq).next() {
            Some(Ok(r)) => Ok(r.hash),
            Some(Err(e)) => Err(e),
            None => Err(corrupt(seq, "record missing")),
        }
    }
}

async fn read_head_row(client: &Client) -> Result<Head, StoreError> {
    let row = client
        .query_opt("SELECT seq, at, hash FROM isc_head", &[])
        .await
        .map_err(|e| pg_error("cannot read the head", e))?
        .ok_or_else(|| corrupt(0, "the head row (isc_head) is missing"))?;
    let seq: i64 = row.try_get(0).map_err(|e| pg_error("head row", e))?;
    let at: i64 = row.try_get(1).map_err(|e| pg_error("head row", e))?;
    let hash: &[u8] = row.try_get(2).map_err(|e| pg_error("head row", e))?;
    Ok(Head {
        seq: u64::try_from(seq).map_err(|_| corrupt(0, "the head row has a negative seq"))?,
        at,
        hash: hash
            .try_into()
            .map_err(|_| corrupt(0, "the head row's hash is not 32 bytes"))?,
    })
}

/// The last record row (seq, at, hash), if any.
async fn read_last_row(client: &Client) -> Result<Option<RawRecord>, StoreError> {
    let row = client
        .query_opt(
            "SELECT seq, at, version, prev_hash, hash, payload FROM isc_records ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(|e| pg_error("cannot read the last record", e))?;
    row.as_ref().map(row_record).transpose()
}

impl<E: Serialize + DeserializeOwned + Indexed> PgLog<E> {
    /// Connects, creates the schema on an empty database, checks that the
    /// head row and the last record agree (truncation, rows past the head)
    /// and that the last record's hash holds.
    pub fn open(url: &str, opts: StoreOptions) -> Result<PgLog<E>, StoreError> {
        Self::open_with(url, opts, SchemaMode::Create, true)
    }

    /// Opens for an audit: the schema must exist, nothing is checked (the
    /// head is the head row; `verify` reports defects).
    pub fn open_for_audit(url: &str) -> Result<PgLog<E>, StoreError> {
        Self::open_with(url, StoreOptions::default(), SchemaMode::Require, false)
    }

    /// [`PgLog::open`] with the schema mode and whether to check the tail.
    pub fn open_with(
        url: &str,
        opts: StoreOptions,
        schema: SchemaMode,
        check_tail: bool,
    ) -> Result<PgLog<E>, StoreError> {
        let cfg = pg_conn::parse(url)?;
        let described = cfg.describe();
        let rt = PgRuntime::start()?;
        let keep_cfg = cfg.clone();
        let (writer, write_stmts, reader, read_stmts, head, last_snap) = rt.run(async move {
            let writer = connect(&cfg, "writer").await?;
            pg_schema::ensure(&writer, schema == SchemaMode::Create).await?;
            let reader = connect(&cfg, "reader").await?;
            let write_stmts = WriteStatements::prepare(&writer).await?;
            let read_stmts = ReadStatements::prepare(&reader).await?;
            let head = read_head_row(&writer).await?;
            if check_tail {
                let last = read_last_row(&writer).await?;
                check_tail_against_head(&head, last.as_ref())?;
            }
            let last_snap: Option<i64> = writer
                .query_one("SELECT max(seq) FROM isc_snapshots", &[])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| pg_error("cannot read snapshots", e))?;
            Ok((
                Arc::new(writer),
                Arc::new(write_stmts),
                Arc::new(reader),
                Arc::new(read_stmts),
                head,
                last_snap,
            ))
        })?;
        Ok(PgLog {
            rt,
            described,
            writer,
            write_stmts,
            reader,
            read_stmts,
            head,
            opts,
            last_snapshot_seq: last_snap.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            fence: None,
            fence_sql: None,
            cfg: keep_cfg,
            idle_tx_timeout_ms: None,
            last_batch: (0, Vec::new()),
            _event: PhantomData,
        })
    }

    /// Decodes every event from `from_seq` on, a batch at a time (the
    /// replay of a restart). One binary COPY streams the rows; the bytes
    /// are parsed, checked and decoded here (the caller's thread) while the
    /// client thread receives the next ones: density, each record's hash
    /// recomputed from the hash before it (link and contents) and the
    /// layout version. `f` returns whether to go on.
    pub fn scan_batches(
        &self,
        from_seq: u64,
        mut f: impl FnMut(&mut Vec<(u64, i64, E)>) -> bool,
    ) -> Result<(), StoreError> {
        let from = from_seq.max(1);
        let to = self.head.seq;
        if from > to {
            return Ok(());
        }
        // The hash the first record links to (its own hash checked).
        let mut prev = self.hash_at(from - 1)?;
        let mut next = from;
        let mut chunks = self.copy_stream(from, to);
        let mut parser = CopyParser::default();
        let mut batch: Vec<(u64, i64, E)> = Vec::with_capacity(CHUNK_ROWS as usize);
        while next <= to {
            let chunk = match chunks.next_chunk() {
                Some(c) => c?,
                None => return Err(ends_early(next, to)),
            };
            if chunk.is_empty() {
                return Err(ends_early(next, to));
            }
            parser.feed(chunk);
            batch.clear();
            let mut err = None;
            loop {
                let t = match parser.next_tuple(next) {
                    Ok(Some(t)) => t,
                    Ok(None) => break,
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                };
                let buf = parser.buf();
                let (hash, payload) = (&buf[t.hash.clone()], &buf[t.payload.clone()]);
                let checked = scan_check(next, prev, &t, hash, payload).and_then(|h| {
                    let ev = decode_event::<E>(&CodecRecord {
                        seq: t.seq,
                        at: t.at,
                        version: codec::RECORD_VERSION_1,
                        event: payload,
                    })?;
                    Ok((h, ev))
                });
                match checked {
                    Ok((h, ev)) => {
                        batch.push((t.seq, t.at, ev));
                        prev = h;
                        next += 1;
                    }
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
                if next > to {
                    break;
                }
            }
            // Records before a bad one are still handed over (an earlier
            // fold error comes first in log order).
            let go_on = batch.is_empty() || f(&mut batch);
            if let Some(e) = err {
                return Err(e);
            }
            if !go_on {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The bytes of one binary COPY of records `from..=to` in seq order,
    /// read ahead by a task on the client thread (an empty chunk: the COPY
    /// ended).
    fn copy_stream(&self, from: u64, to: u64) -> Chunks<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let permits = Arc::new(Semaphore::new(CHUNKS_AHEAD));
        let task_permits = permits.clone();
        let client = self.reader.clone();
        let stmts = self.read_stmts.clone();
        self.rt.handle.spawn(async move {
            use futures::StreamExt;
            let started = async {
                let (lo, hi) = (from.to_string(), to.to_string());
                // Both requests leave in this order before any other on
                // this connection (prepared: no round trip in between).
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&lo, &hi];
                let bounds = client.query(&stmts.scan_bounds, &params);
                let copy = client.copy_out(&stmts.scan_copy);
                let (b, c) = futures::join!(bounds, copy);
                b.map_err(|e| pg_error("cannot read records", e))?;
                c.map_err(|e| pg_error("cannot read records", e))
            };
            let stream = match started.await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let mut stream = Box::pin(stream);
            let mut buf: Vec<u8> = Vec::with_capacity(COPY_CHUNK_BYTES + 4096);
            loop {
                let item = stream.next().await;
                let done = match item {
                    Some(Ok(bytes)) => {
                        buf.extend_from_slice(&bytes);
                        false
                    }
                    Some(Err(e)) => {
                        let _ = tx.send(Err(pg_error("cannot read records", e)));
                        return;
                    }
                    None => true,
                };
                if buf.len() >= COPY_CHUNK_BYTES || (done && !buf.is_empty()) {
                    match task_permits.acquire().await {
                        Ok(p) => p.forget(),
                        Err(_) => return, // the consumer is gone
                    }
                    let full =
                        std::mem::replace(&mut buf, Vec::with_capacity(COPY_CHUNK_BYTES + 4096));
                    if tx.send(Ok(full)).is_err() {
                        return;
                    }
                }
                if done {
                    let _ = tx.send(Ok(Vec::new()));
                    return;
                }
            }
        });
        Chunks { rx, permits }
    }

    /// Appends records exactly as given (a copy from another store): each
    /// must extend the chain at the head; hashes are checked, never
    /// recomputed from a re-encoding.
    pub fn append_raw(&mut self, records: &[RawRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut accounts = Vec::with_capacity(records.len());
        let mut check = ChainCheck {
            next: self.head.seq + 1,
            prev: Some(self.head.hash),
            hashes: true,
        };
        let mut last_at = self.head.at;
        for r in records {
            check.check(r)?;
            if r.at < last_at && r.seq > 1 {
                return Err(StoreError::AtGoesBackwards { at: r.at, last_at });
            }
            last_at = r.at;
            let ev: E = decode(r)?;
            accounts.push(ev.account_id().map(|a| a.as_bytes().to_vec()));
        }
        self.insert_rows(records.to_vec(), accounts)
    }

    /// The append transaction (see the module).
    fn insert_rows(
        &mut self,
        records: Vec<RawRecord>,
        accounts: Vec<Option<Vec<u8>>>,
    ) -> Result<(), StoreError> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        let new_head = Head {
            seq: last.seq,
            hash: last.hash,
            at: last.at,
        };
        let old = self.head;
        let batch = (
            records.first().map_or(0, |r| r.seq),
            records.iter().map(|r| r.hash).collect::<Vec<Hash>>(),
        );
        self.reconnect_if_closed()?;
        let client = self.writer.clone();
        let stmts = self.write_stmts.clone();
        let (fence, fence_epoch) = match &self.fence {
            Some((stmt, epoch)) => (Some(stmt.clone()), Some(*epoch)),
            None => (None, None),
        };
        self.rt.run(async move {
            let n = records.len();
            let mut seqs = Vec::with_capacity(n);
            let mut ats = Vec::with_capacity(n);
            let mut versions = Vec::with_capacity(n);
            let mut prevs = Vec::with_capacity(n);
            let mut hashes = Vec::with_capacity(n);
            let mut payloads = Vec::with_capacity(n);
            for r in records {
                seqs.push(seq_param(r.seq)?);
                ats.push(r.at);
                versions.push(i16::from(r.version));
                prevs.push(r.prev_hash.to_vec());
                hashes.push(r.hash.to_vec());
                payloads.push(r.payload);
            }
            let (new_seq, old_seq) = (seq_param(new_head.seq)?, seq_param(old.seq)?);
            let new_hash = new_head.hash.to_vec();
            let old_hash = old.hash.to_vec();
            // Pipelined: the four messages leave together, one round trip.
            // A fenced writer (writer lease) inserts through the fence's CTE
            // (`fenced_insert_sql`): the lease row is locked FOR SHARE by
            // the INSERT itself, so a takeover waits for this transaction to
            // end, and a lost lease inserts nothing (the head stays too).
            let begin = client.batch_execute("BEGIN");
            let rows: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
                &seqs, &ats, &versions, &prevs, &hashes, &accounts, &payloads,
            ];
            let insert = async {
                match (&fence, &fence_epoch) {
                    (Some(stmt), Some(epoch)) => {
                        let mut fenced: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                            Vec::with_capacity(8);
                        fenced.push(epoch);
                        fenced.extend_from_slice(&rows);
                        client.execute(stmt, &fenced).await
                    }
                    _ => client.execute(&stmts.insert, &rows).await,
                }
            };
            let head_params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&new_seq, &new_head.at, &new_hash, &old_seq, &old_hash];
            let set_head = client.execute(&stmts.set_head, &head_params);
            // Several nodes: standbys listening are woken at the COMMIT
            // (a notification is sent only if the transaction commits).
            let notify = async {
                match fence {
                    Some(_) => client.batch_execute(SQL_NOTIFY_APPENDED).await,
                    None => Ok(()),
                }
            };
            let commit = client.batch_execute("COMMIT");
            let (b, i, h, nt, c) = futures::join!(begin, insert, set_head, notify, commit);
            b.map_err(|e| pg_error("append: BEGIN", e))?;
            nt.map_err(|e| pg_error("append: NOTIFY", e))?;
            let inserted = i.map_err(|e| {
                if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                    StoreError::SeqTaken { after: old.seq }
                } else {
                    pg_error("append: cannot insert the records", e)
                }
            })?;
            let moved = h.map_err(|e| pg_error("append: cannot move the head", e))?;
            // An error above aborted the transaction: its COMMIT rolled back.
            c.map_err(|e| pg_error("append: COMMIT (outcome unknown)", e))?;
            if let (Some(epoch), 0) = (fence_epoch, inserted) {
                // The lease moved on: the transaction committed nothing.
                return Err(StoreError::Fenced {
                    epoch: u64::try_from(epoch).unwrap_or(0),
                });
            }
            if inserted != n as u64 || moved != 1 {
                // Cannot happen inside one transaction unless the head moved
                // under us; then the COMMIT above committed nothing useful:
                // report it (the rows conflict on seq with the other writer's).
                return Err(StoreError::Postgres(format!(
                    "append refused: the log's head is no longer seq {} (another writer?)",
                    old.seq
                )));
            }
            Ok(())
        })?;
        self.head = new_head;
        self.last_batch = batch;
        Ok(())
    }

    /// Fences every later append with the writer lease: `sql` (one bound
    /// parameter, the epoch; see `pg_lease::FENCE_SQL`) is joined into each
    /// append's INSERT and must return exactly one row, else nothing of the
    /// batch is inserted and the append fails with [`StoreError::Fenced`].
    /// `None` removes the fence (a single node without a lease).
    pub fn set_fence(&mut self, fence: Option<(&str, u64)>) -> Result<(), StoreError> {
        self.fence_sql = fence.map(|(sql, _)| sql.to_owned());
        self.fence = match fence {
            None => None,
            Some((sql, epoch)) => {
                let epoch = i64::try_from(epoch).map_err(|_| {
                    StoreError::Postgres(format!("fencing epoch {epoch} too large"))
                })?;
                let client = self.writer.clone();
                let sql = sql.to_owned();
                let stmt = self
                    .rt
                    .run(async move { prepare_fenced_insert(&client, &sql).await })?;
                Some((stmt, epoch))
            }
        };
        Ok(())
    }

    /// Several nodes: a transaction left idle this long (its writer frozen
    /// between its fence and its COMMIT) is ended by the server, so it
    /// cannot hold the fence lock and block a takeover. Applied now and to
    /// every later connection.
    pub fn set_idle_transaction_timeout(
        &mut self,
        d: std::time::Duration,
    ) -> Result<(), StoreError> {
        self.idle_tx_timeout_ms = Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let client = self.writer.clone();
        let ms = self.idle_tx_timeout_ms;
        self.rt
            .run(async move { set_idle_timeout(&client, ms).await })
    }

    /// Connects again (writer and reader, statements and the fence
    /// prepared anew) when either connection was lost; a multi-host URL
    /// with `target_session_attrs=read-write` then finds the promoted
    /// server. The caller's retry loop is the backoff.
    fn reconnect_if_closed(&mut self) -> Result<(), StoreError> {
        if !self.writer.is_closed() && !self.reader.is_closed() {
            return Ok(());
        }
        let cfg = self.cfg.clone();
        let ms = self.idle_tx_timeout_ms;
        let fence_sql = self.fence_sql.clone();
        let (writer, write_stmts, reader, read_stmts, fence_stmt) = self.rt.run(async move {
            let writer = connect(&cfg, "writer").await?;
            set_idle_timeout(&writer, ms).await?;
            let reader = connect(&cfg, "reader").await?;
            let write_stmts = WriteStatements::prepare(&writer).await?;
            let read_stmts = ReadStatements::prepare(&reader).await?;
            let fence_stmt = match fence_sql {
                Some(sql) => Some(prepare_fenced_insert(&writer, &sql).await?),
                None => None,
            };
            Ok((
                Arc::new(writer),
                Arc::new(write_stmts),
                Arc::new(reader),
                Arc::new(read_stmts),
                fence_stmt,
            ))
        })?;
        tracing::info!(db = %self.described, "reconnected to PostgreSQL");
        self.writer = writer;
        self.write_stmts = write_stmts;
        self.reader = reader;
        self.read_stmts = read_stmts;
        if let (Some(stmt), Some((_, epoch))) = (fence_stmt, self.fence.take()) {
            self.fence = Some((stmt, epoch));
        }
        Ok(())
    }

    /// Several nodes: a signal raised whenever a writer's append commits
    /// (`LISTEN` on a connection of its own). Only a hint to tail now: a
    /// standby still polls, so a lost listener connection (logged) costs
    /// latency, never records.
    pub fn appended_signal(&self) -> Result<Arc<tokio::sync::Notify>, StoreError> {
        let cfg = self.cfg.clone();
        let signal = Arc::new(tokio::sync::Notify::new());
        let raised = signal.clone();
        self.rt.run(async move {
            let (client, mut conn) = cfg
                .connect()
                .await
                .map_err(|e| cfg.connect_error("listener", e))?;
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                use futures::StreamExt;
                let mut ready_tx = Some(ready_tx);
                let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                let listen = client.batch_execute(SQL_LISTEN_APPENDED);
                futures::pin_mut!(listen);
                loop {
                    tokio::select! {
                        done = &mut listen, if ready_tx.is_some() => {
                            if let Some(tx) = ready_tx.take() {
                                let _ = tx.send(done);
                            }
                        }
                        m = messages.next() => match m {
                            Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                                raised.notify_one();
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::warn!("PostgreSQL listener connection ended (standbys poll): {e}");
                                return;
                            }
                            None => return,
                        },
                    }
                }
            });
            match ready_rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(pg_error("cannot LISTEN for appends", e)),
                Err(_) => Err(StoreError::Postgres(
                    "the listener connection ended before LISTEN".into(),
                )),
            }
        })?;
        Ok(signal)
    }

    /// Several nodes: the records after this log's head, up to `max`, as
    /// committed by whichever node writes (a standby's tail). Read by seq,
    /// checked as read (density, chain from the head, every hash); the head
    /// moves past them.
    pub fn catch_up(&mut self, max: usize) -> Result<Vec<StoredRecord<E>>, StoreError>
    where
        E: DeserializeOwned + Indexed,
    {
        self.reconnect_if_closed()?;
        let from = self.head.seq + 1;
        let to = from.saturating_add(max.max(1) as u64 - 1);
        let client = self.reader.clone();
        let stmts = self.read_stmts.clone();
        let rows = self.rt.run(async move {
            let (l, h) = (seq_param(from)?, seq_param(to)?);
            let rows = client
                .query(&stmts.range, &[&l, &h])
                .await
                .map_err(|e| pg_error("cannot read records", e))?;
            rows.iter().map(row_record).collect::<Result<Vec<_>, _>>()
        })?;
        let mut check = ChainCheck {
            next: from,
            prev: Some(self.head.hash),
            hashes: true,
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            check.check(&r)?;
            let event = decode(&r)?;
            out.push(StoredRecord {
                seq: r.seq,
                at: r.at,
                prev_hash: r.prev_hash,
                hash: r.hash,
                event,
            });
        }
        if let Some(last) = out.last() {
            self.head = Head {
                seq: last.seq,
                hash: last.hash,
                at: last.at,
            };
        }
        Ok(out)
    }

    /// Moves this node's idea of the head back to record `seq` (re-read
    /// from the database), so [`catch_up`](Self::catch_up) returns the
    /// records after `seq` again: a node whose durable ledger is behind
    /// this cursor (an append that failed after its COMMIT) tails from its
    /// ledger, never from where the failed append left the cursor. Until
    /// it has caught up, an append from there is refused by the dense seq.
    pub fn rewind_to(&mut self, seq: u64) -> Result<(), StoreError> {
        if seq >= self.head.seq {
            return Ok(());
        }
        self.head = if seq == 0 {
            Head::EMPTY
        } else {
            match self.read_raw_records(seq, seq).next() {
                Some(Ok(r)) => Head {
                    seq,
                    hash: r.hash,
                    at: r.at,
                },
                Some(Err(e)) => return Err(e),
                None => return Err(corrupt(seq, "record missing")),
            }
        };
        Ok(())
    }

    /// Re-reads the head from the database (after a failed append whose
    /// outcome is unknown, or to follow another writer).
    pub fn refresh_head(&mut self) -> Result<Head, StoreError> {
        let client = self.writer.clone();
        let head = self.rt.run(async move { read_head_row(&client).await })?;
        self.head = head;
        Ok(head)
    }
}

/// Sets `idle_in_transaction_session_timeout` on a session (bound
/// parameter; `None`: the server's default).
async fn set_idle_timeout(client: &Client, ms: Option<i64>) -> Result<(), StoreError> {
    let Some(ms) = ms else {
        return Ok(());
    };
    client
        .execute(
            "SELECT set_config('idle_in_transaction_session_timeout', $1, false)",
            &[&ms.to_string()],
        )
        .await
        .map_err(|e| pg_error("cannot set the idle transaction timeout", e))?;
    Ok(())
}

fn check_tail_against_head(head: &Head, last: Option<&RawRecord>) -> Result<(), StoreError> {
    match last {
        None if head.seq == 0 => Ok(()),
        None => Err(corrupt(
            1,
            format!(
                "the log is empty but the head row says it ends at seq {} (truncated)",
                head.seq
            ),
        )),
        Some(r) if r.seq < head.seq => Err(corrupt(
            r.seq + 1,
            format!(
                "record missing: the log ends at seq {} but the head row says {} (truncated)",
                r.seq, head.seq
            ),
        )),
        Some(r) if r.seq > head.seq => Err(corrupt(
            head.seq + 1,
            format!(
                "records after the acknowledged head {} (never acknowledged)",
                head.seq
            ),
        )),
        Some(r) => {
            check_hash(r)?;
            if r.hash != head.hash {
                return Err(corrupt(r.seq, "chain hash differs from the head row"));
            }
            Ok(())
        }
    }
}

/// Iterator behind [`LogStore::read_range`] on PostgreSQL.
pub struct RangeIter<E> {
    raw: RawIter,
    _event: PhantomData<fn() -> E>,
}

impl<E: DeserializeOwned + Indexed> Iterator for RangeIter<E> {
    type Item = Result<StoredRecord<E>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = match self.raw.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let res = decode::<E>(&r).map(|event| StoredRecord {
            seq: r.seq,
            at: r.at,
            prev_hash: r.prev_hash,
            hash: r.hash,
            event,
        });
        if res.is_err() {
            self.raw.failed = true;
        }
        Some(res)
    }
}

impl<E: Serialize + DeserializeOwned + Indexed> LogStore<E> for PgLog<E> {
    fn append(&mut self, batch: &[(i64, E)]) -> Result<Vec<u64>, StoreError> {
        if batch.is_empty() {
            return Ok(vec![]);
        }
        let mut seq = self.head.seq + 1;
        let mut prev = self.head.hash;
        let mut last_at = self.head.at;
        let mut records = Vec::with_capacity(batch.len());
        let mut accounts = Vec::with_capacity(batch.len());
        for (at, ev) in batch {
            if *at < last_at && seq > 1 {
                return Err(StoreError::AtGoesBackwards { at: *at, last_at });
            }
            let payload = bincode::serde::encode_to_vec(ev, bincode::config::standard())
                .map_err(|e| StoreError::Encode(e.to_string()))?;
            if payload.len() > codec::MAX_EVENT_BYTES {
                return Err(StoreError::EventTooLarge {
                    bytes: payload.len(),
                    limit: codec::MAX_EVENT_BYTES,
                });
            }
            let hash = record_hash(&prev, seq, *at, &payload);
            records.push(RawRecord {
                seq,
                at: *at,
                version: codec::RECORD_VERSION_1,
                prev_hash: prev,
                hash,
                payload,
            });
            accounts.push(ev.account_id().map(|a| a.as_bytes().to_vec()));
            prev = hash;
            last_at = *at;
            seq += 1;
        }
        let first = self.head.seq + 1;
        self.insert_rows(records, accounts)?;
        Ok((first..seq).collect())
    }

    fn head(&self) -> Head {
        self.head
    }

    fn read_range(
        &self,
        from_seq: u64,
        to_seq: u64,
    ) -> impl Iterator<Item = Result<StoredRecord<E>, StoreError>> + '_ {
        RangeIter {
            raw: self.read_raw_records(from_seq, to_seq),
            _event: PhantomData,
        }
    }

    fn read_raw(
        &self,
        from_seq: u64,
        to_seq: u64,
    ) -> impl Iterator<Item = Result<RawRecord, StoreError>> + '_ {
        self.read_raw_records(from_seq, to_seq)
    }

    fn chain_hashes(&self, from_seq: u64, to_seq: u64) -> Result<Vec<Hash>, StoreError> {
        let (first, hashes) = &self.last_batch;
        let last = first + hashes.len() as u64;
        if *first > 0 && from_seq >= *first && to_seq < last && from_seq <= to_seq {
            let (a, b) = ((from_seq - first) as usize, (to_seq - first) as usize);
            return Ok(hashes[a..=b].to_vec());
        }
        self.read_raw(from_seq, to_seq)
            .map(|r| r.map(|r| r.hash))
            .collect()
    }

    fn save_signed_head(&self, head: &SignedTreeHead, _durable: bool) -> Result<(), StoreError> {
        // Always durable: it is one committed row.
        self.save_signed_head_json(&head.to_json())
    }

    fn load_signed_head(&self) -> Result<Option<SignedTreeHead>, StoreError> {
        match self.load_signed_head_json()? {
            Some(json) => Ok(Some(SignedTreeHead::from_json(&json)?)),
            None => Ok(None),
        }
    }

    fn read_account(&self, account_id: &str) -> Result<Vec<StoredRecord<E>>, StoreError> {
        let client = self.reader.clone();
        let stmts = self.read_stmts.clone();
        let id = account_id.as_bytes().to_vec();
        let upto = seq_param(self.head.seq)?;
        let raws = self.rt.run(async move {
            let rows = client
                .query(&stmts.account, &[&id, &upto])
                .await
                .map_err(|e| pg_error("cannot read the account's records", e))?;
            rows.iter().map(row_record).collect::<Result<Vec<_>, _>>()
        })?;
        let mut out = Vec::with_capacity(raws.len());
        for r in raws {
            check_hash(&r)?;
            let event: E = decode(&r)?;
            if event.account_id() != Some(account_id) {
                return Err(corrupt(r.seq, "index points to another account's record"));
            }
            out.push(StoredRecord {
                seq: r.seq,
                at: r.at,
                prev_hash: r.prev_hash,
                hash: r.hash,
                event,
            });
        }
        Ok(out)
    }

    fn save_snapshot<S: SnapshotState>(&mut self, state: &S) -> Result<(), StoreError> {
        let bytes = bincode::serde::encode_to_vec(state, bincode::config::standard())
            .map_err(|e| StoreError::Snapshot(e.to_string()))?;
        let h = self.head;
        let body = codec::encode_snapshot(
            &SnapshotHeader {
                seq: h.seq,
                at: h.at,
                hash: h.hash,
                schema: S::schema(),
            },
            &bytes,
        );
        let seq = seq_param(h.seq)?;
        let client = self.writer.clone();
        self.rt.run(async move {
            client
                .execute(
                    "INSERT INTO isc_snapshots (seq, body) VALUES ($1, $2) \
                     ON CONFLICT (seq) DO UPDATE SET body = EXCLUDED.body",
                    &[&seq, &body],
                )
                .await
                .map_err(|e| pg_error("cannot store the snapshot", e))?;
            client
                .execute(
                    "DELETE FROM isc_snapshots WHERE seq < \
                     (SELECT min(seq) FROM (SELECT seq FROM isc_snapshots ORDER BY seq DESC LIMIT $1) AS kept)",
                    &[&SNAPSHOTS_KEPT],
                )
                .await
                .map_err(|e| pg_error("cannot delete old snapshots", e))?;
            Ok(())
        })?;
        self.last_snapshot_seq = h.seq;
        Ok(())
    }

    fn load_snapshot<S: SnapshotState>(&self) -> Result<Option<Snapshot<S>>, StoreError> {
        let snaps = match self.raw_snapshots() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read snapshots");
                return Ok(None);
            }
        };
        for s in snaps.into_iter().rev() {
            let (h, state) = match s {
                Ok(s) => s,
                Err(key) => {
                    tracing::warn!(key, "ignoring a damaged snapshot");
                    continue;
                }
            };
            if h.schema != S::schema() {
                tracing::info!(
                    seq = h.seq,
                    "ignoring a snapshot written with another state layout"
                );
                continue;
            }
            if h.seq > self.head.seq || self.hash_at(h.seq).ok() != Some(h.hash) {
                tracing::warn!(
                    seq = h.seq,
                    "ignoring a snapshot that does not match the log"
                );
                continue;
            }
            match bincode::serde::decode_from_slice::<S, _>(&state, bincode::config::standard()) {
                Ok((state, _)) => {
                    return Ok(Some(Snapshot {
                        head: Head {
                            seq: h.seq,
                            hash: h.hash,
                            at: h.at,
                        },
                        state,
                    }))
                }
                Err(e) => {
                    tracing::warn!(seq = h.seq, error = %e, "ignoring a snapshot that does not decode")
                }
            }
        }
        Ok(None)
    }
}

/// Default snapshot period (same as sled's).
pub const DEFAULT_SNAPSHOT_EVERY: u64 = DEFAULT_SNAPSHOT_EVERY_RECORDS;

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple_bytes(seq: i64, at: i64, version: i16, hash: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut b = 5i16.to_be_bytes().to_vec();
        for f in [
            &seq.to_be_bytes()[..],
            &at.to_be_bytes()[..],
            &version.to_be_bytes()[..],
            hash,
            payload,
        ] {
            b.extend_from_slice(&(f.len() as i32).to_be_bytes());
            b.extend_from_slice(f);
        }
        b
    }

    fn parse_all(bytes: &[u8], piece: usize) -> Result<Vec<(u64, i64, Vec<u8>)>, StoreError> {
        let mut p = CopyParser::default();
        let mut out = vec![];
        for chunk in bytes.chunks(piece) {
            p.feed(chunk.to_vec());
            while let Some(t) = p.next_tuple(out.len() as u64 + 1)? {
                out.push((t.seq, t.at, p.buf()[t.payload].to_vec()));
            }
        }
        Ok(out)
    }

    #[test]
    fn binary_copy_is_parsed_across_any_chunk_boundary() {
        let mut bytes = COPY_SIGNATURE.to_vec();
        bytes.extend_from_slice(&0u32.to_be_bytes()); // flags
        bytes.extend_from_slice(&3u32.to_be_bytes()); // header extension
        bytes.extend_from_slice(b"xyz");
        for seq in 1..=3i64 {
            bytes.extend(tuple_bytes(
                seq,
                100 + seq,
                1,
                &[7; 32],
                &vec![seq as u8; seq as usize * 5],
            ));
        }
        bytes.extend_from_slice(&(-1i16).to_be_bytes());
        for piece in [1, 2, 3, 7, 64, bytes.len()] {
            let got = parse_all(&bytes, piece).expect("parse");
            assert_eq!(got.len(), 3, "piece {piece}");
            for (i, (seq, at, payload)) in got.iter().enumerate() {
                let n = i as u64 + 1;
                assert_eq!((*seq, *at), (n, 100 + n as i64));
                assert_eq!(payload, &vec![n as u8; n as usize * 5]);
            }
        }
    }

    #[test]
    fn unexpected_copy_data_is_an_error_naming_the_record() {
        let mut bytes = COPY_SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0; 8]);
        let mut null = 5i16.to_be_bytes().to_vec();
        null.extend_from_slice(&(-1i32).to_be_bytes());
        bytes.extend(null);
        match parse_all(&bytes, 4) {
            Err(StoreError::Corrupt { seq: 1, what }) => assert!(what.contains("NULL"), "{what}"),
            other => panic!("{other:?}"),
        }
        match parse_all(b"NOTCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0", 64) {
            Err(StoreError::Corrupt { what, .. }) => assert!(what.contains("signature"), "{what}"),
            other => panic!("{other:?}"),
        }
    }
}
