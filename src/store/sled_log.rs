//! The sled backend of [`LogStore`].
//!
//! Trees: `log` (frames keyed by their first seq, u64 BE, plus the head
//! marker under [`HEAD_KEY`], written in the same atomic batch), `snap`
//! (state snapshots keyed by the seq they cover) and `acct` (the saved
//! per-account index next to each snapshot, same keys; see [`super::index`]).
//!
//! Durability: sled 0.34's `flush` ends with `sync_file_range`, which does
//! not flush the drive's cache nor survive a power loss. After `flush` we
//! therefore `fdatasync` sled's data file (`<dir>/db`) ourselves, plus any
//! blob file sled created (it never syncs those), and the directories once.

use std::collections::HashSet;
use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::{de::DeserializeOwned, Serialize};

use super::codec::{
    self, decode_frame, decode_head, encode_head, record_hash, FrameBuilder, FrameDefect, Hash,
    RawFrame, RawRecord, SnapshotHeader, MAX_EVENT_BYTES, MAX_RECORDS_PER_FRAME,
};
use super::datadir::{self, sync_dir, PrivateCopy, StoreSettings};
use super::index::AccountIndex;
use super::sth::{SignedTreeHead, HEAD_FILE};
use super::{
    Head, Indexed, LogStore, RawRecord as StoredRaw, Snapshot, SnapshotState, StoreError,
    StoredRecord,
};

/// Told the duration of every fdatasync of sled's data file (the service's
/// metrics install it once per process; the store knows nothing of them).
static FDATASYNC_OBSERVER: std::sync::OnceLock<fn(std::time::Duration)> =
    std::sync::OnceLock::new();

/// Installs the fdatasync observer (the first call wins).
pub fn set_fdatasync_observer(observe: fn(std::time::Duration)) {
    let _ = FDATASYNC_OBSERVER.set(observe);
}

/// Key of the store's settings (JSON of [`StoreSettings`]) in tree `meta`.
pub const META_SETTINGS: &[u8] = b"settings";

/// Key of the head marker in tree `log`: sorts after every 8-byte seq key.
pub const HEAD_KEY: &[u8] = &[0xff; 9];

/// sled segment size (sled's default). Fixed at creation (sled keeps it in
/// `conf`). Measured: 512 KiB segments use about half the disk of 8 MiB ones
/// for our frames (sled reclaims small segments sooner); the price is that
/// consolidated leaves (> 128 KiB) become "blob" files, which `sync` fsyncs.
pub const SEGMENT_SIZE_BYTES: usize = 512 * 1024;

/// Default snapshot period in records: restart replays at most this tail.
pub const DEFAULT_SNAPSHOT_EVERY_RECORDS: u64 = 100_000;

/// Snapshots kept; older ones are deleted when a new one is saved.
const SNAPSHOTS_KEPT: usize = 2;

/// A stored snapshot as `(head, state bytes)`, or the key of a damaged one.
pub type RawSnapshot = Result<(SnapshotHeader, Vec<u8>), u64>;

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Take a snapshot when this many records were appended since the last.
    pub snapshot_every_records: u64,
    /// `fdatasync` after each append (only benchmarks of sled alone turn it off).
    pub fdatasync: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            snapshot_every_records: DEFAULT_SNAPSHOT_EVERY_RECORDS,
            fdatasync: true,
        }
    }
}

impl StoreOptions {
    /// Never snapshot (tests and benchmarks of the log alone), with or
    /// without `fdatasync`.
    pub fn without_snapshots(fdatasync: bool) -> StoreOptions {
        StoreOptions {
            snapshot_every_records: u64::MAX,
            fdatasync,
        }
    }
}

/// The event log on sled. Single writer (`&mut self` to append); readers
/// share `&self`.
pub struct SledLog<E> {
    db: sled::Db,
    log: sled::Tree,
    /// Saved indexes (tree `acct`).
    index_tree: sled::Tree,
    /// The in-memory index; behind a lock because readers catch it up.
    index: Mutex<AccountIndex>,
    snaps: sled::Tree,
    dir: PathBuf,
    data_file: File,
    synced_blobs: HashSet<std::ffi::OsString>,
    head: Head,
    opts: StoreOptions,
    last_snapshot_seq: u64,
    /// Set while an append is in flight; stays set if it failed.
    poisoned: bool,
    /// The store's record of itself (boxed: rarely touched).
    files: Box<StoreFiles>,
    /// Chain hashes of the last append's records (the Merkle tree's new
    /// leaves), first seq and hashes.
    last_append: (u64, Vec<Hash>),
    _event: PhantomData<fn() -> E>,
    /// The private copy an audit reads (removed when the log is dropped;
    /// declared last so sled is closed first).
    _copy: Option<Box<PrivateCopy>>,
}

/// What a [`SledLog`] knows of its settings and head file.
struct StoreFiles {
    /// Tree `meta`: the store's settings as recorded inside sled.
    meta: sled::Tree,
    /// The settings file as read at open (`None`: none, an audit of a
    /// store from before it).
    settings: Option<StoreSettings>,
    /// The store is known to keep a signed head file (see
    /// [`StoreSettings::signed_heads_since`]).
    heads_marked: AtomicBool,
}

pub(crate) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn key_seq(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

fn corrupt(seq: u64, what: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        seq,
        what: what.into(),
    }
}

pub(crate) fn defect_error(first_seq: u64, d: FrameDefect) -> StoreError {
    match d {
        FrameDefect::Record { seq, what } => corrupt(seq, what),
        FrameDefect::TooShort => corrupt(first_seq, "frame truncated"),
        FrameDefect::FrameVersion(v) => corrupt(first_seq, format!("unknown frame version {v}")),
        FrameDefect::FrameCrc => corrupt(first_seq, "frame checksum mismatch (header altered)"),
        FrameDefect::TrailingBytes => corrupt(first_seq, "frame has bytes after its records"),
        FrameDefect::Codec(c) => corrupt(first_seq, format!("unknown frame codec {c}")),
        FrameDefect::Body => corrupt(first_seq, "frame body does not decompress (damaged)"),
    }
}

/// Decodes a record's event: the event type's own fast path when it has
/// one ([`Indexed::decode_v1`]), serde otherwise (replay and reads).
pub fn decode_event<E: DeserializeOwned + Indexed>(rec: &RawRecord<'_>) -> Result<E, StoreError> {
    if rec.version == codec::RECORD_VERSION_1 {
        if let Some(ev) = E::decode_v1(rec.event) {
            return Ok(ev);
        }
    }
    decode_event_serde(rec)
}

/// Serde's decoding of a record's event, upcasting older record versions
/// (only v1 so far). What `verify` uses: an auditor's replay does not share
/// the fast path with the service's.
pub fn decode_event_serde<E: DeserializeOwned>(rec: &RawRecord<'_>) -> Result<E, StoreError> {
    match rec.version {
        codec::RECORD_VERSION_1 => {
            let (ev, used) =
                bincode::serde::decode_from_slice::<E, _>(rec.event, bincode::config::standard())
                    .map_err(|e| corrupt(rec.seq, format!("event does not decode: {e}")))?;
            if used != rec.event.len() {
                return Err(corrupt(rec.seq, "event has trailing bytes"));
            }
            Ok(ev)
        }
        v => Err(corrupt(rec.seq, format!("unknown record version {v}"))),
    }
}

/// How long `open` waits for sled's directory lock. A store dropped a moment
/// ago in this process keeps it until sled's background flusher exits; a
/// lock still held after this is another process, reported as the error.
const LOCK_WAIT_MS: u64 = 2_000;

fn open_db_waiting_for_lock(dir: &Path) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(dir)
        .segment_size(SEGMENT_SIZE_BYTES);
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(LOCK_WAIT_MS);
    loop {
        match config.open() {
            Err(e) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::InUse {
                        dir: dir.to_path_buf(),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

impl<E> SledLog<E> {
    /// Opens sled in `dir` without checking anything (for `verify`, which
    /// reports defects instead of refusing to open).
    fn open_sled(dir: &Path, opts: StoreOptions) -> Result<SledLog<E>, StoreError> {
        std::fs::create_dir_all(dir)?;
        // Before sled reads (and, when empty, silently rewrites) its conf.
        let check = datadir::check_settings(dir)?;
        let db = open_db_waiting_for_lock(dir)?;
        // Record the settings of a new store; make sled's conf (which sled
        // never fsyncs) and the creation of sled's files durable once.
        let settings = datadir::settle_settings(dir, &check, opts.fdatasync)?;
        if opts.fdatasync {
            sync_dir(dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let s = Self::from_db(db, dir, opts, Some(settings))?;
        // The same settings inside sled (durable with the next append): a
        // deleted settings file is then noticed by `verify`.
        if s.files.meta.get(META_SETTINGS)?.is_none() {
            s.files.meta.insert(META_SETTINGS, s.settings_json()?)?;
        }
        Ok(s)
    }

    fn settings_json(&self) -> Result<Vec<u8>, StoreError> {
        let mut st = self
            .files
            .settings
            .clone()
            .unwrap_or_else(StoreSettings::current);
        if self.files.heads_marked.load(Ordering::Relaxed) {
            st.signed_heads_since = st.signed_heads_since.or(Some(0));
        }
        serde_json::to_vec(&st).map_err(|e| StoreError::Settings(e.to_string()))
    }

    fn from_db(
        db: sled::Db,
        dir: &Path,
        opts: StoreOptions,
        settings: Option<StoreSettings>,
    ) -> Result<SledLog<E>, StoreError> {
        let meta = db.open_tree("meta")?;
        let marked_in_sled = match meta.get(META_SETTINGS)? {
            Some(v) => serde_json::from_slice::<StoreSettings>(&v)
                .map(|s| s.signed_heads_since.is_some())
                .unwrap_or(false),
            None => false,
        };
        let heads_marked = AtomicBool::new(
            marked_in_sled
                || settings
                    .as_ref()
                    .is_some_and(|s| s.signed_heads_since.is_some()),
        );
        let log = db.open_tree("log")?;
        let index_tree = db.open_tree("acct")?;
        let snaps = db.open_tree("snap")?;
        let data_file = File::open(dir.join("db"))?;
        let last_snapshot_seq = match snaps.last()? {
            Some((k, _)) => key_seq(&k).unwrap_or(0),
            None => 0,
        };
        Ok(SledLog {
            db,
            log,
            index_tree,
            index: Mutex::new(AccountIndex::default()),
            snaps,
            dir: dir.to_path_buf(),
            data_file,
            synced_blobs: HashSet::new(),
            head: Head::EMPTY,
            opts,
            last_snapshot_seq,
            poisoned: false,
            files: Box::new(StoreFiles {
                meta,
                settings,
                heads_marked,
            }),
            last_append: (0, Vec::new()),
            _event: PhantomData,
            _copy: None,
        })
    }

    /// The store's record of its settings: the settings file and the copy
    /// inside sled (tree `meta`), as found (`None` when absent; the sled
    /// copy also when unreadable). Both absent: a store from before them.
    pub fn recorded_settings(
        &self,
    ) -> Result<(Option<StoreSettings>, Option<StoreSettings>), StoreError> {
        let in_sled = self
            .files
            .meta
            .get(META_SETTINGS)?
            .and_then(|v| serde_json::from_slice::<StoreSettings>(&v).ok());
        Ok((self.files.settings.clone(), in_sled))
    }

    /// Records, once, that this store keeps a signed head file from now on
    /// (its first head had `tree_size`): in the settings file (durable now)
    /// and in sled's `meta` (durable with the next append).
    fn mark_signed_heads(&self, tree_size: u64) -> Result<(), StoreError> {
        let mut st = self
            .files
            .settings
            .clone()
            .unwrap_or_else(StoreSettings::current);
        st.signed_heads_since = Some(tree_size);
        datadir::write_settings_with(&self.dir, &st, self.opts.fdatasync)?;
        let json = serde_json::to_vec(&st).map_err(|e| StoreError::Settings(e.to_string()))?;
        self.files.meta.insert(META_SETTINGS, json)?;
        self.files.heads_marked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The head marker as stored (`None` when absent or unreadable).
    pub fn stored_head_marker(&self) -> Result<Option<Option<Head>>, StoreError> {
        Ok(self
            .log
            .get(HEAD_KEY)?
            .map(|v| decode_head(&v).map(|(seq, at, hash)| Head { seq, hash, at })))
    }

    /// Visits every frame in key order with its parse result, until `f`
    /// returns `false`. The building block of `verify` and `export`.
    pub fn walk_frames(
        &self,
        from_seq: u64,
        mut f: impl FnMut(u64, Result<RawFrame<'_>, FrameDefect>) -> bool,
    ) -> Result<(), StoreError> {
        let start = self.frame_key_containing(from_seq)?.unwrap_or(from_seq);
        let mut scratch = Vec::new();
        for item in self.log.range(seq_key(start)..) {
            let (k, v) = item?;
            let Some(first) = key_seq(&k) else { break }; // the head marker
            if !f(first, decode_frame(first, &v, &mut scratch)) {
                break;
            }
        }
        Ok(())
    }

    /// The key of the frame holding `seq` (the greatest key ≤ seq).
    fn frame_key_containing(&self, seq: u64) -> Result<Option<u64>, StoreError> {
        Ok(match self.log.range(..=seq_key(seq)).next_back() {
            Some(item) => key_seq(&item?.0),
            None => None,
        })
    }

    /// Number of records appended since the last snapshot reached the
    /// configured period.
    pub fn snapshot_due(&self) -> bool {
        self.head.seq
            >= self
                .last_snapshot_seq
                .saturating_add(self.opts.snapshot_every_records.max(1))
    }

    /// Every stored snapshot as `(head, state bytes)`, oldest first, skipping
    /// damaged ones (for `verify`).
    pub fn raw_snapshots(&self) -> Result<Vec<RawSnapshot>, StoreError> {
        let mut out = vec![];
        for item in self.snaps.iter() {
            let (k, v) = item?;
            let key = key_seq(&k).unwrap_or(0);
            out.push(match codec::decode_snapshot(&v) {
                Some((h, state)) if h.seq == key => Ok((h, state.to_vec())),
                _ => Err(key),
            });
        }
        Ok(out)
    }

    /// Chain hash of record `seq` computed from the log (checks the frame).
    pub fn hash_at(&self, seq: u64) -> Result<Hash, StoreError> {
        if seq == 0 {
            return Ok(codec::GENESIS_HASH);
        }
        let first = self
            .frame_key_containing(seq)?
            .ok_or_else(|| corrupt(seq, "record missing"))?;
        let v = self
            .log
            .get(seq_key(first))?
            .ok_or_else(|| corrupt(seq, "record missing"))?;
        let mut scratch = Vec::new();
        let frame = decode_frame(first, &v, &mut scratch).map_err(|d| defect_error(first, d))?;
        let idx = usize::try_from(seq - first).map_err(|_| corrupt(seq, "record missing"))?;
        frame
            .hashes()
            .get(idx)
            .copied()
            .ok_or_else(|| corrupt(seq, "record missing"))
    }

    /// Makes everything written so far durable: sled flush, then a real
    /// `fdatasync` of sled's data file and of any new blob file.
    fn sync(&mut self) -> Result<(), StoreError> {
        self.db.flush()?;
        if !self.opts.fdatasync {
            return Ok(());
        }
        // Blobs first: the data file may point to them.
        let blobs = self.dir.join("blobs");
        // (A directory listing per append, a few µs: the directory's mtime is
        // too coarse to tell whether a blob appeared since the last one.)
        let mut new_blob = false;
        let mut alive = HashSet::new();
        for e in std::fs::read_dir(&blobs)? {
            let e = e?;
            if !self.synced_blobs.contains(&e.file_name()) {
                match File::open(e.path()) {
                    Ok(f) => f.sync_data()?,
                    // sled removed it meanwhile (garbage collection).
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(err.into()),
                }
                new_blob = true;
            }
            alive.insert(e.file_name());
        }
        self.synced_blobs = alive;
        if new_blob {
            sync_dir(&blobs)?;
        }
        let started = std::time::Instant::now();
        self.data_file.sync_data()?;
        if let Some(observe) = FDATASYNC_OBSERVER.get() {
            observe(started.elapsed());
        }
        Ok(())
    }

    /// Approximate bytes on disk used by sled (its files, recursively).
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        fn walk(p: &Path) -> std::io::Result<u64> {
            let mut n = 0;
            for e in std::fs::read_dir(p)? {
                let e = e?;
                let m = e.metadata()?;
                n += if m.is_dir() {
                    walk(&e.path())?
                } else {
                    m.len()
                };
            }
            Ok(n)
        }
        Ok(walk(&self.dir)?)
    }
}

impl<E: Serialize + DeserializeOwned + Indexed> SledLog<E> {
    /// Calls `f(frame, index, event, hashes)` for each record of
    /// `account_id` (in seq order, up to the head), decoding each frame that
    /// holds one once (its checksum checked); `hashes`: the frame's chain
    /// hashes, computed only when `hash` is set (empty otherwise) (a frame of a group commit
    /// holds many accounts' records, hashing them all is most of the work).
    fn visit_account(
        &self,
        account_id: &str,
        mut f: impl FnMut(&codec::RawFrame<'_>, usize, E, &[Hash]),
        hash: bool,
    ) -> Result<(), StoreError> {
        self.catch_up_index()?;
        let mut seqs = self.index_mut().seqs(account_id);
        seqs.retain(|&s| s <= self.head.seq);
        let mut i = 0;
        while i < seqs.len() {
            let first = self
                .frame_key_containing(seqs[i])?
                .ok_or_else(|| corrupt(seqs[i], "record missing"))?;
            let v = self
                .log
                .get(seq_key(first))?
                .ok_or_else(|| corrupt(seqs[i], "record missing"))?;
            let mut scratch = Vec::new();
            let frame =
                decode_frame(first, &v, &mut scratch).map_err(|d| defect_error(first, d))?;
            let hashes = if hash { frame.hashes() } else { Vec::new() };
            let end = first + frame.records.len() as u64;
            while i < seqs.len() && seqs[i] < end {
                let idx = (seqs[i] - first) as usize;
                let r = &frame.records[idx];
                let event: E = decode_event(r)?;
                if event.account_id() != Some(account_id) {
                    return Err(corrupt(r.seq, "index points to another account's record"));
                }
                f(&frame, idx, event, &hashes);
                i += 1;
            }
        }
        Ok(())
    }

    /// Opens (or creates) the store in `dir`. Checks the tail: a last frame
    /// the head marker does not cover was never acknowledged and is dropped;
    /// any other inconsistency of the tail is an error (run `verify`).
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<SledLog<E>, StoreError> {
        let mut s = Self::open_sled(dir, opts)?;
        s.head = s.check_tail()?;
        s.load_index()?;
        Ok(s)
    }

    /// Opens the store for an audit: no tail repair, no checks; the head is
    /// whatever the head marker says (see [`super::verify`]). sled writes on
    /// open, so this opens a private copy of `dir`'s files
    /// ([`PrivateCopy`]): `dir` itself is only read. Fails with
    /// [`StoreError::InUse`] while a service runs on `dir`.
    pub fn open_for_audit(dir: &Path) -> Result<SledLog<E>, StoreError> {
        let copy = PrivateCopy::take(dir)?;
        let opts = StoreOptions {
            fdatasync: false,
            ..StoreOptions::default()
        };
        // Checked on the copy before sled opens it: the original's conf and
        // settings file, byte for byte.
        // (Messages name the audited directory, not the copy.)
        let check = datadir::check_settings(copy.path()).map_err(|e| match e {
            StoreError::Settings(m) => StoreError::Settings(m.replace(
                &copy.path().display().to_string(),
                &dir.display().to_string(),
            )),
            e => e,
        })?;
        let (db, copy) = match open_db_waiting_for_lock(copy.path()) {
            Ok(db) => (db, copy),
            // sled refuses a store whose page-table cache (`snap.*`) is
            // damaged although its log may be readable: once more without
            // the cache (sled then rebuilds it from `db`).
            Err(StoreError::Sled(e)) if copy.sled_snapshots > 0 => {
                tracing::warn!(error = %e, "sled refused the store; reading it again without sled's snap.* files");
                drop(copy);
                let copy = PrivateCopy::take_with(dir, false)?;
                (open_db_waiting_for_lock(copy.path())?, copy)
            }
            Err(e) => return Err(e),
        };
        let mut s = Self::from_db(db, copy.path(), opts, check.recorded)?;
        s._copy = Some(Box::new(copy));
        if let Some(v) = s.log.get(HEAD_KEY)? {
            if let Some((seq, at, hash)) = decode_head(&v) {
                s.head = Head { seq, hash, at };
            }
        }
        s.load_index()?;
        Ok(s)
    }

    fn check_tail(&mut self) -> Result<Head, StoreError> {
        let marker = match self.log.get(HEAD_KEY)? {
            None => None,
            Some(v) => Some(decode_head(&v).ok_or_else(|| corrupt(0, "head marker unreadable"))?),
        };
        let mut dropped = false;
        loop {
            let last = self.log.get_lt(HEAD_KEY)?;
            let (Some((k, v)), Some((mseq, mat, mhash))) = (&last, marker) else {
                return match (last, marker) {
                    (None, None) => Ok(Head::EMPTY),
                    (None, Some((mseq, ..))) => Err(corrupt(
                        1,
                        format!("log is empty but the head marker says it ends at seq {mseq} (truncated)"),
                    )),
                    _ => Err(corrupt(1, "head marker missing")),
                };
            };
            let first = key_seq(k).ok_or_else(|| corrupt(0, "malformed frame key"))?;
            if first > mseq {
                // Written but never acknowledged (the marker is updated in the
                // same atomic batch, so this needs a torn sled batch): drop it.
                tracing::warn!(first_seq = first, "dropping an unacknowledged tail frame");
                self.log.remove(k)?;
                dropped = true;
                continue;
            }
            let mut scratch = Vec::new();
            let frame = decode_frame(first, v, &mut scratch).map_err(|d| defect_error(first, d))?;
            let end = first + frame.records.len() as u64 - 1;
            let hash = frame.last_hash();
            if end < mseq {
                return Err(corrupt(
                    end + 1,
                    format!("record missing: the log ends at seq {end} but the head marker says {mseq} (truncated)"),
                ));
            }
            if end > mseq {
                return Err(corrupt(mseq + 1, "frame extends past the head marker"));
            }
            if hash != mhash {
                return Err(corrupt(end, "chain hash differs from the head marker"));
            }
            let last_at = frame.records.last().map_or(mat, |r| r.at);
            if dropped {
                self.sync()?;
            }
            return Ok(Head {
                seq: end,
                hash,
                at: last_at,
            });
        }
    }

    /// Loads the newest saved index that the log covers (the index is
    /// caught up lazily, or by the replay scan of `open_ledger`).
    fn load_index(&mut self) -> Result<(), StoreError> {
        for item in self.index_tree.iter().rev() {
            let (_, v) = item?;
            match AccountIndex::decode(&v, self.head.seq) {
                Some(ix) => {
                    *self.index_mut() = ix;
                    return Ok(());
                }
                _ => tracing::warn!("ignoring a damaged or too new saved index"),
            }
        }
        Ok(())
    }

    fn index_mut(&self) -> std::sync::MutexGuard<'_, AccountIndex> {
        // A panic while holding the lock leaves a consistent prefix index.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the in-memory index up to the head by decoding the records
    /// after `through`.
    fn catch_up_index(&self) -> Result<(), StoreError> {
        let from = self.index_mut().through + 1;
        if from > self.head.seq {
            return Ok(());
        }
        // scan_events feeds the index as it goes.
        self.scan_events(from, |_, _, _| {})
    }

    /// Decodes every event from `from_seq` on without hashing: the fast path
    /// of a restart (checksums and density are still checked; `verify`
    /// checks the chain).
    pub fn scan_events(
        &self,
        from_seq: u64,
        mut f: impl FnMut(u64, i64, E),
    ) -> Result<(), StoreError> {
        self.scan_frames(from_seq, |batch| {
            for (seq, at, ev) in batch.drain(..) {
                f(seq, at, ev);
            }
            true
        })
    }

    /// [`SledLog::scan_events`] a frame at a time: `f` gets the frame's
    /// decoded `(seq, at, event)`s (from `from_seq` on) and returns whether
    /// to go on. The account index is fed a frame at a time, prefetching.
    pub fn scan_frames(
        &self,
        from_seq: u64,
        mut f: impl FnMut(&mut Vec<(u64, i64, E)>) -> bool,
    ) -> Result<(), StoreError> {
        let mut expect = None::<u64>;
        let mut err = None;
        let mut decoded: Vec<(u64, i64, E)> = Vec::with_capacity(MAX_RECORDS_PER_FRAME);
        self.walk_frames(from_seq, |first, frame| {
            if let Some(e) = expect {
                if first != e {
                    err = Some(corrupt(e, "record missing (gap in seqs)"));
                    return false;
                }
            }
            match frame {
                Ok(fr) => {
                    expect = Some(first + fr.records.len() as u64);
                    decoded.clear();
                    for r in fr.records.iter().filter(|r| r.seq >= from_seq) {
                        match decode_event::<E>(r) {
                            Ok(ev) => decoded.push((r.seq, r.at, ev)),
                            Err(e) => {
                                err = Some(e);
                                break;
                            }
                        }
                    }
                    // One lock per frame, not per record.
                    let ids: Vec<(u64, Option<&str>)> = decoded
                        .iter()
                        .map(|(seq, _, ev)| (*seq, ev.account_id()))
                        .collect();
                    self.index_mut().add_all(&ids);
                    drop(ids);
                    // The records before one that does not decode are still
                    // handed over: an error among them comes first in the log.
                    f(&mut decoded) && err.is_none()
                }
                Err(d) => {
                    err = Some(defect_error(first, d));
                    false
                }
            }
        })?;
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<E: Serialize + DeserializeOwned + Indexed> LogStore<E> for SledLog<E> {
    fn append(&mut self, batch: &[(i64, E)]) -> Result<Vec<u64>, StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        if batch.is_empty() {
            return Ok(vec![]);
        }
        let mut seq = self.head.seq + 1;
        let mut prev = self.head.hash;
        let mut last_at = self.head.at;
        let mut log_batch = sled::Batch::default();
        // Room for the batch's records up front (typical record < 96 bytes).
        let room = |left: usize| left.min(MAX_RECORDS_PER_FRAME) * 96;
        let mut frame = FrameBuilder::with_capacity(seq, &prev, room(batch.len()));
        let mut frame_first = seq;
        let mut scratch = Vec::with_capacity(256);
        let mut seqs = Vec::with_capacity(batch.len());
        let mut hashes = std::mem::take(&mut self.last_append.1);
        hashes.clear();
        for (i, (at, ev)) in batch.iter().enumerate() {
            if *at < last_at && seq > 1 {
                return Err(StoreError::AtGoesBackwards { at: *at, last_at });
            }
            scratch.clear();
            bincode::serde::encode_into_std_write(ev, &mut scratch, bincode::config::standard())
                .map_err(|e| StoreError::Encode(e.to_string()))?;
            if scratch.len() > MAX_EVENT_BYTES {
                return Err(StoreError::EventTooLarge {
                    bytes: scratch.len(),
                    limit: MAX_EVENT_BYTES,
                });
            }
            if frame.is_full() {
                let next = FrameBuilder::with_capacity(seq, &prev, room(batch.len() - i));
                let done = std::mem::replace(&mut frame, next);
                log_batch.insert(&seq_key(frame_first), done.finish());
                frame_first = seq;
            }
            prev = record_hash(&prev, seq, *at, &scratch);
            hashes.push(prev);
            frame.push(*at, &scratch);
            seqs.push(seq);
            last_at = *at;
            seq += 1;
        }
        log_batch.insert(&seq_key(frame_first), frame.finish());
        let head = Head {
            seq: seq - 1,
            hash: prev,
            at: last_at,
        };
        log_batch.insert(HEAD_KEY, &encode_head(head.seq, head.at, &head.hash)[..]);
        // After a failed write or fdatasync the batch may or may not be on
        // disk (and Linux may have dropped dirty pages): no further append
        // until the store is reopened and its tail checked.
        self.poisoned = true;
        self.log.apply_batch(log_batch)?;
        self.sync()?;
        self.poisoned = false;
        let mut ix = self.index_mut();
        if ix.through == self.head.seq {
            for ((_, ev), &s) in batch.iter().zip(&seqs) {
                ix.add(s, ev.account_id());
            }
        }
        drop(ix);
        self.head = head;
        self.last_append = (seqs[0], hashes);
        Ok(seqs)
    }

    fn head(&self) -> Head {
        self.head
    }

    fn read_range(
        &self,
        from_seq: u64,
        to_seq: u64,
    ) -> impl Iterator<Item = Result<StoredRecord<E>, StoreError>> + '_ {
        let from = from_seq.max(1);
        let to = to_seq.min(self.head.seq);
        RangeIter {
            log: self,
            next: from,
            to,
            buf: Vec::new().into_iter(),
            prev_end_hash: None,
            failed: false,
        }
    }

    fn read_raw(
        &self,
        from_seq: u64,
        to_seq: u64,
    ) -> impl Iterator<Item = Result<StoredRaw, StoreError>> + '_ {
        self.raw_iter(from_seq, to_seq)
    }

    fn visit_raw(
        &self,
        from_seq: u64,
        to_seq: u64,
        known: Option<&[Hash]>,
        f: &mut dyn FnMut(super::RawRecordRef<'_>),
    ) -> Result<(), StoreError> {
        let it = self.raw_iter(from_seq, to_seq);
        let (from, to) = (it.next, it.to);
        // Hashes not covering exactly `from - 1 ..= to` are not used.
        let known = known.filter(|k| from > to || k.len() as u64 == to - from + 2);
        it.visit_all(known.map(|k| (from, k)), f)
    }

    fn chain_hashes(&self, from_seq: u64, to_seq: u64) -> Result<Vec<Hash>, StoreError> {
        let from = from_seq.max(1);
        let to = to_seq.min(self.head.seq);
        if from > to {
            return Ok(vec![]);
        }
        let (first, cached) = (self.last_append.0, &self.last_append.1);
        if first > 0 && from >= first && to < first + cached.len() as u64 {
            return Ok(cached[(from - first) as usize..=(to - first) as usize].to_vec());
        }
        // A scan that hashes without copying events out (restart rebuild).
        let mut out = Vec::with_capacity(usize::try_from(to - from + 1).unwrap_or(0).min(1 << 24));
        let mut err = None;
        let mut expect = None::<(u64, Hash)>;
        self.walk_frames(from, |key, frame| {
            let fr = match frame {
                Ok(fr) => fr,
                Err(d) => {
                    err = Some(defect_error(key, d));
                    return false;
                }
            };
            if let Some((seq, hash)) = expect {
                if key != seq {
                    err = Some(corrupt(seq, "record missing (gap in seqs)"));
                    return false;
                }
                if fr.prev_hash != hash {
                    err = Some(corrupt(
                        key,
                        "prev_hash does not match the hash of the record before (chain broken)",
                    ));
                    return false;
                }
            } else if key > from {
                err = Some(corrupt(from, "record missing"));
                return false;
            }
            let hs = fr.hashes();
            for (r, h) in fr.records.iter().zip(&hs) {
                if r.seq >= from && r.seq <= to {
                    out.push(*h);
                }
            }
            expect = Some((key + hs.len() as u64, fr.last_hash_of(&hs)));
            key + (hs.len() as u64) <= to
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        if out.len() as u64 != to - from + 1 {
            return Err(corrupt(from + out.len() as u64, "record missing"));
        }
        Ok(out)
    }

    fn read_account(&self, account_id: &str) -> Result<Vec<StoredRecord<E>>, StoreError> {
        let mut out = Vec::new();
        self.visit_account(
            account_id,
            |frame, idx, event, hashes| {
                let r = &frame.records[idx];
                out.push(StoredRecord {
                    seq: r.seq,
                    at: r.at,
                    prev_hash: if idx == 0 {
                        frame.prev_hash
                    } else {
                        hashes[idx - 1]
                    },
                    hash: hashes[idx],
                    event,
                });
            },
            true,
        )?;
        Ok(out)
    }

    fn read_account_events(&self, account_id: &str) -> Result<Vec<(u64, E)>, StoreError> {
        let mut out = Vec::new();
        self.visit_account(
            account_id,
            |frame, idx, event, _| {
                out.push((frame.records[idx].seq, event));
            },
            false,
        )?;
        Ok(out)
    }

    fn save_snapshot<S: SnapshotState>(&mut self, state: &S) -> Result<(), StoreError> {
        let bytes = bincode::serde::encode_to_vec(state, bincode::config::standard())
            .map_err(|e| StoreError::Snapshot(e.to_string()))?;
        let h = self.head;
        self.snaps.insert(
            seq_key(h.seq),
            codec::encode_snapshot(
                &SnapshotHeader {
                    seq: h.seq,
                    at: h.at,
                    hash: h.hash,
                    schema: S::schema(),
                },
                &bytes,
            ),
        )?;
        self.catch_up_index()?;
        let index_bytes = self.index_mut().encode();
        self.index_tree.insert(seq_key(h.seq), index_bytes)?;
        for tree in [&self.snaps, &self.index_tree] {
            let keys: Vec<_> = tree.iter().keys().collect::<Result<_, _>>()?;
            for k in keys.iter().take(keys.len().saturating_sub(SNAPSHOTS_KEPT)) {
                tree.remove(k)?;
            }
        }
        // A snapshot is an optimisation: a sled flush is enough (a lost or
        // torn snapshot only means a longer replay).
        self.db.flush()?;
        self.last_snapshot_seq = h.seq;
        Ok(())
    }

    fn load_snapshot<S: SnapshotState>(&self) -> Result<Option<Snapshot<S>>, StoreError> {
        for item in self.snaps.iter().rev() {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    // sled reports a damaged snapshot page this way: replay instead.
                    tracing::warn!(error = %e, "cannot read snapshots");
                    return Ok(None);
                }
            };
            let Some((
                SnapshotHeader {
                    seq,
                    at,
                    hash,
                    schema,
                },
                state,
            )) = codec::decode_snapshot(&v)
            else {
                tracing::warn!(key = ?key_seq(&k), "ignoring a damaged snapshot");
                continue;
            };
            if schema != S::schema() {
                tracing::info!(seq, "ignoring a snapshot written with another state layout");
                continue;
            }
            if seq > self.head.seq || self.hash_at(seq).ok() != Some(hash) {
                tracing::warn!(seq, "ignoring a snapshot that does not match the log");
                continue;
            }
            match bincode::serde::decode_from_slice::<S, _>(state, bincode::config::standard()) {
                Ok((state, _)) => {
                    return Ok(Some(Snapshot {
                        head: Head { seq, hash, at },
                        state,
                    }))
                }
                Err(e) => {
                    tracing::warn!(seq, error = %e, "ignoring a snapshot that does not decode")
                }
            }
        }
        Ok(None)
    }

    fn save_signed_head(&self, head: &SignedTreeHead, durable: bool) -> Result<(), StoreError> {
        // The first head file is made durable before the store records that
        // it keeps one: a marker without its file would be a false alarm.
        let first = !self.files.heads_marked.load(Ordering::Relaxed);
        head.write_file(
            &self.dir.join(HEAD_FILE),
            (durable || first) && self.opts.fdatasync,
        )?;
        if first {
            self.mark_signed_heads(head.tree_size)?;
        }
        Ok(())
    }

    fn load_signed_head(&self) -> Result<Option<SignedTreeHead>, StoreError> {
        let path = self.dir.join(HEAD_FILE);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(Some(SignedTreeHead::read_file(&path)?)),
        }
    }
}

/// Iterator behind [`LogStore::read_raw`]: one frame at a time (no lock
/// held between items), the chain checked inside frames by hashing and
/// between frames by their `prev_hash`.
struct RawIter<'a> {
    log: &'a sled::Tree,
    next: u64,
    to: u64,
    buf: std::vec::IntoIter<StoredRaw>,
    prev_end_hash: Option<Hash>,
    failed: bool,
}

impl<E> SledLog<E> {
    /// The raw records `from_seq..=to_seq` (clamped to the log), frame by frame.
    fn raw_iter(&self, from_seq: u64, to_seq: u64) -> RawIter<'_> {
        RawIter {
            log: &self.log,
            next: from_seq.max(1),
            to: to_seq.min(self.head.seq),
            buf: Vec::new().into_iter(),
            prev_end_hash: None,
            failed: false,
        }
    }
}

impl RawIter<'_> {
    /// Lends `f` every record left (see [`RawIter::visit_frame`]).
    fn visit_all(
        mut self,
        known: Option<(u64, &[Hash])>,
        f: &mut dyn FnMut(super::RawRecordRef<'_>),
    ) -> Result<(), StoreError> {
        while self.next <= self.to {
            self.visit_frame(known, f)?;
        }
        Ok(())
    }

    fn load_frame(&mut self) -> Result<(), StoreError> {
        let mut out = vec![];
        self.visit_frame(None, &mut |r| out.push(StoredRaw::from(r)))?;
        self.buf = out.into_iter();
        Ok(())
    }

    /// Reads the frame holding `next` and lends `f` its records
    /// `next..=to`, checking the link to the frame before. With `known`
    /// (`(from, hashes)`: the hash of record `from - 1 + i` at `i`) the
    /// records in range get those hashes instead of being re-hashed, and a
    /// frame starting in range must link to the known hash before it.
    fn visit_frame(
        &mut self,
        known: Option<(u64, &[Hash])>,
        f: &mut dyn FnMut(super::RawRecordRef<'_>),
    ) -> Result<(), StoreError> {
        let found = match self.log.range(..=seq_key(self.next)).next_back() {
            Some(item) => Some(item?),
            None => None,
        };
        let (k, v) = found.ok_or_else(|| corrupt(self.next, "record missing"))?;
        let first = key_seq(&k).ok_or_else(|| corrupt(self.next, "record missing"))?;
        let mut scratch = Vec::new();
        let frame = decode_frame(first, &v, &mut scratch).map_err(|d| defect_error(first, d))?;
        let end = first + frame.records.len() as u64;
        if end <= self.next {
            return Err(corrupt(self.next, "record missing (gap in seqs)"));
        }
        if let Some(h) = self.prev_end_hash {
            if first != self.next {
                return Err(corrupt(self.next, "record missing (frames overlap)"));
            }
            if frame.prev_hash != h {
                return Err(corrupt(
                    first,
                    "prev_hash does not match the hash of the record before (chain broken)",
                ));
            }
        }
        if let Some((from, hashes)) = known {
            if first >= from {
                let link = hashes.get((first - from) as usize);
                if link != Some(&frame.prev_hash) {
                    return Err(corrupt(
                        first,
                        "prev_hash does not match the hash of the record before (chain broken)",
                    ));
                }
            }
            for r in &frame.records {
                if r.seq >= self.next && r.seq <= self.to {
                    let i = (r.seq - from) as usize;
                    f(super::RawRecordRef {
                        seq: r.seq,
                        at: r.at,
                        version: r.version,
                        prev_hash: &hashes[i],
                        hash: &hashes[i + 1],
                        payload: r.event,
                    });
                }
            }
            self.prev_end_hash = frame.records.last().map(|r| {
                hashes
                    .get((r.seq - from + 1) as usize)
                    .copied()
                    .unwrap_or_default()
            });
            self.next = end;
            return Ok(());
        }
        let mut prev = frame.prev_hash;
        for r in &frame.records {
            let hash = record_hash(&prev, r.seq, r.at, r.event);
            if r.seq >= self.next && r.seq <= self.to {
                f(super::RawRecordRef {
                    seq: r.seq,
                    at: r.at,
                    version: r.version,
                    prev_hash: &prev,
                    hash: &hash,
                    payload: r.event,
                });
            }
            prev = hash;
        }
        self.prev_end_hash = Some(prev);
        self.next = end;
        Ok(())
    }
}

impl Iterator for RawIter<'_> {
    type Item = Result<StoredRaw, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if let Some(r) = self.buf.next() {
            return Some(Ok(r));
        }
        if self.next > self.to {
            return None;
        }
        if let Err(e) = self.load_frame() {
            self.failed = true;
            return Some(Err(e));
        }
        self.next()
    }
}

impl<E: Serialize + DeserializeOwned + Indexed> SledLog<E> {
    /// Appends records exactly as read from another store (`copy`): each
    /// must extend the chain at the head and its hash must hold; the event
    /// bytes are framed as they are, never re-encoded. Durable like
    /// [`LogStore::append`]; the account index catches up lazily.
    pub fn append_raw(&mut self, records: &[super::RawRecord]) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        let Some(last) = records.last() else {
            return Ok(());
        };
        let mut prev = self.head.hash;
        let mut last_at = self.head.at;
        let first = self.head.seq + 1;
        let mut log_batch = sled::Batch::default();
        let mut frame = FrameBuilder::new(first, &prev);
        let mut frame_first = first;
        for (seq, r) in (first..).zip(records) {
            if r.seq != seq {
                return Err(corrupt(
                    seq,
                    format!("copy: record {} where {seq} was expected", r.seq),
                ));
            }
            if r.version != codec::RECORD_VERSION_1 {
                return Err(corrupt(
                    seq,
                    format!("unknown record version {}", r.version),
                ));
            }
            if r.prev_hash != prev || record_hash(&prev, seq, r.at, &r.payload) != r.hash {
                return Err(corrupt(seq, "copy: the record does not extend the chain"));
            }
            if r.at < last_at && seq > 1 {
                return Err(StoreError::AtGoesBackwards { at: r.at, last_at });
            }
            if r.payload.len() > MAX_EVENT_BYTES {
                return Err(StoreError::EventTooLarge {
                    bytes: r.payload.len(),
                    limit: MAX_EVENT_BYTES,
                });
            }
            if frame.is_full() {
                let next = FrameBuilder::new(seq, &prev);
                let done = std::mem::replace(&mut frame, next);
                log_batch.insert(&seq_key(frame_first), done.finish());
                frame_first = seq;
            }
            frame.push(r.at, &r.payload);
            prev = r.hash;
            last_at = r.at;
        }
        log_batch.insert(&seq_key(frame_first), frame.finish());
        let head = Head {
            seq: last.seq,
            hash: last.hash,
            at: last.at,
        };
        log_batch.insert(HEAD_KEY, &encode_head(head.seq, head.at, &head.hash)[..]);
        self.poisoned = true;
        self.log.apply_batch(log_batch)?;
        self.sync()?;
        self.poisoned = false;
        self.head = head;
        Ok(())
    }
}

/// Iterator behind [`LogStore::read_range`]: decodes one frame at a time
/// and checks density and the chain link between frames.
struct RangeIter<'a, E> {
    log: &'a SledLog<E>,
    next: u64,
    to: u64,
    buf: std::vec::IntoIter<Result<StoredRecord<E>, StoreError>>,
    prev_end_hash: Option<Hash>,
    failed: bool,
}

impl<E: DeserializeOwned + Indexed> RangeIter<'_, E> {
    fn load_frame(&mut self) -> Result<(), StoreError> {
        let first = self
            .log
            .frame_key_containing(self.next)?
            .ok_or_else(|| corrupt(self.next, "record missing"))?;
        let v = self
            .log
            .log
            .get(seq_key(first))?
            .ok_or_else(|| corrupt(self.next, "record missing"))?;
        let mut scratch = Vec::new();
        let frame = decode_frame(first, &v, &mut scratch).map_err(|d| defect_error(first, d))?;
        let end = first + frame.records.len() as u64;
        if end <= self.next {
            return Err(corrupt(self.next, "record missing (gap in seqs)"));
        }
        if let Some(h) = self.prev_end_hash {
            if first == self.next && frame.prev_hash != h {
                return Err(corrupt(
                    first,
                    "prev_hash does not match the hash of the record before (chain broken)",
                ));
            }
        }
        let hashes = frame.hashes();
        let mut out = Vec::new();
        for (i, r) in frame.records.iter().enumerate() {
            if r.seq < self.next || r.seq > self.to {
                continue;
            }
            let prev_hash = if i == 0 {
                frame.prev_hash
            } else {
                hashes[i - 1]
            };
            out.push(decode_event::<E>(r).map(|event| StoredRecord {
                seq: r.seq,
                at: r.at,
                prev_hash,
                hash: hashes[i],
                event,
            }));
        }
        self.prev_end_hash = hashes.last().copied();
        self.next = end;
        self.buf = out.into_iter();
        Ok(())
    }
}

impl<E: DeserializeOwned + Indexed> Iterator for RangeIter<'_, E> {
    type Item = Result<StoredRecord<E>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(r) = self.buf.next() {
                self.failed = r.is_err();
                return Some(r);
            }
            if self.next > self.to {
                return None;
            }
            if let Err(e) = self.load_frame() {
                self.failed = true;
                return Some(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A stand-in event: the store must not depend on the domain.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Ev {
        account: Option<String>,
        amount: i128,
    }

    impl Indexed for Ev {
        fn account_id(&self) -> Option<&str> {
            self.account.as_deref()
        }
    }

    impl SnapshotState for u64 {
        fn schema() -> u64 {
            1
        }
    }

    fn ev(account: &str, amount: i128) -> Ev {
        Ev {
            account: (!account.is_empty()).then(|| account.to_string()),
            amount,
        }
    }

    fn open(dir: &Path) -> SledLog<Ev> {
        SledLog::open(
            dir,
            StoreOptions {
                snapshot_every_records: 10,
                fdatasync: false,
            },
        )
        .expect("open")
    }

    #[test]
    fn append_read_and_reopen() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = open(tmp.path());
        assert_eq!(s.head(), Head::EMPTY);
        assert_eq!(
            s.append(&[(5, ev("a", 1)), (5, ev("b", 2))])
                .expect("append"),
            vec![1, 2]
        );
        let big: Vec<_> = (0..3000)
            .map(|i| (10 + i / 7, ev(if i % 3 == 0 { "a" } else { "" }, i as i128)))
            .collect();
        let seqs = s.append(&big).expect("append");
        assert_eq!(seqs.first(), Some(&3));
        assert_eq!(seqs.last(), Some(&3002));
        assert!(matches!(
            s.append(&[(1, ev("a", 0))]),
            Err(StoreError::AtGoesBackwards { .. })
        ));
        let head = s.head();
        let all: Vec<_> = s
            .read_range(1, u64::MAX)
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(all.len(), 3002);
        for w in all.windows(2) {
            assert_eq!(w[1].prev_hash, w[0].hash);
            assert_eq!(w[1].seq, w[0].seq + 1);
        }
        assert_eq!(all[0].prev_hash, codec::GENESIS_HASH);
        assert_eq!(all.last().map(|r| r.hash), Some(head.hash));
        let mid: Vec<_> = s
            .read_range(1500, 1502)
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(
            mid.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![1500, 1501, 1502]
        );
        assert_eq!(mid[0], all[1499]);
        let a = s.read_account("a").expect("account");
        assert_eq!(a.len(), 1 + 1000);
        assert!(a.iter().all(|r| r.event.account.as_deref() == Some("a")));
        assert_eq!(a[1], all[2]);
        assert!(s.read_account("zz").expect("none").is_empty());
        // The same events without the hashes.
        let events = s.read_account_events("a").expect("events");
        assert_eq!(
            events,
            a.iter()
                .map(|r| (r.seq, r.event.clone()))
                .collect::<Vec<_>>()
        );
        assert!(s.read_account_events("zz").expect("none").is_empty());
        drop(s);
        let s = open(tmp.path());
        assert_eq!(s.head(), head);
        assert_eq!(s.read_account("a").expect("account").len(), 1001);
        let mut n = 0;
        s.scan_events(1, |seq, _, e| {
            assert_eq!(e, all[(seq - 1) as usize].event);
            n += 1;
        })
        .expect("scan");
        assert_eq!(n, 3002);
    }

    #[test]
    fn read_raw_gives_the_stored_bytes_and_chain() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = open(tmp.path());
        let big: Vec<_> = (0..2500i64).map(|i| (i / 3, ev("a", i as i128))).collect();
        s.append(&big[..700]).expect("append");
        s.append(&big[700..]).expect("append");
        let typed: Vec<_> = s
            .read_range(1, u64::MAX)
            .collect::<Result<_, _>>()
            .expect("read");
        let raw: Vec<_> = s
            .read_raw(0, u64::MAX)
            .collect::<Result<_, _>>()
            .expect("read raw");
        assert_eq!(raw.len(), 2500);
        for (r, t) in raw.iter().zip(&typed) {
            assert_eq!(
                (r.seq, r.at, r.prev_hash, r.hash),
                (t.seq, t.at, t.prev_hash, t.hash)
            );
            assert_eq!(r.hash, record_hash(&r.prev_hash, r.seq, r.at, &r.payload));
            let ev: Ev = bincode::serde::decode_from_slice(&r.payload, bincode::config::standard())
                .expect("decodes")
                .0;
            assert_eq!(ev, t.event);
        }
        let mid: Vec<_> = s
            .read_raw(1023, 1026)
            .collect::<Result<_, _>>()
            .expect("read raw");
        assert_eq!(mid, raw[1022..1026].to_vec());
        assert_eq!(s.read_raw(2501, 3000).count(), 0);
        // Lent from the frames: the same records, whatever the range.
        for (from, to) in [
            (0, u64::MAX),
            (1, 700),
            (700, 701),
            (1023, 1026),
            (2500, 2600),
        ] {
            let mut lent = vec![];
            s.visit_raw(from, to, None, &mut |r| lent.push(StoredRaw::from(r)))
                .expect("visit raw");
            let read: Vec<_> = s
                .read_raw(from, to)
                .collect::<Result<_, _>>()
                .expect("read");
            assert_eq!(lent, read, "{from}..={to}");
        }
        let mut none = 0;
        s.visit_raw(2501, 3000, None, &mut |_| none += 1)
            .expect("visit raw");
        assert_eq!(none, 0);
        // With the chain hashes known (the Merkle tree's): the same records,
        // not re-hashed; a frame whose stored link disagrees is refused.
        let hash_of = |seq: u64| {
            if seq == 0 {
                codec::GENESIS_HASH
            } else {
                raw[seq as usize - 1].hash
            }
        };
        for (from, to) in [(1, 2500), (1, 700), (700, 701), (701, 2500), (1023, 1026)] {
            let known: Vec<Hash> = (from - 1..=to).map(hash_of).collect();
            let mut lent = vec![];
            s.visit_raw(from, to, Some(&known), &mut |r| {
                lent.push(StoredRaw::from(r))
            })
            .expect("visit raw known");
            assert_eq!(
                lent,
                raw[from as usize - 1..to as usize].to_vec(),
                "{from}..={to}"
            );
        }
        let mut known: Vec<Hash> = (0..=2500).map(hash_of).collect();
        known[700] = [9; 32]; // record 700's hash, which the second frame links to
        let e = s
            .visit_raw(1, 2500, Some(&known), &mut |_| ())
            .expect_err("a wrong link");
        assert!(e.to_string().contains("chain broken"), "{e}");
        // Chain hashes: from the last append's cache and from a scan.
        let all: Vec<Hash> = raw.iter().map(|r| r.hash).collect();
        for (from, to) in [
            (1, 2500),
            (701, 2500),
            (1000, 1030),
            (2500, 2500),
            (5, 1024),
        ] {
            assert_eq!(
                s.chain_hashes(from, to).expect("hashes"),
                all[from as usize - 1..to as usize].to_vec(),
                "{from}..{to}"
            );
        }
        assert!(s.chain_hashes(2501, 2600).expect("none").is_empty());
        drop(s);
        let s = open(tmp.path());
        assert_eq!(s.chain_hashes(0, u64::MAX).expect("scan"), all);
        assert_eq!(s.read_raw(5, 4).count(), 0);
    }

    #[test]
    fn signed_head_file_round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let s = open(tmp.path());
        assert_eq!(s.load_signed_head().expect("none"), None);
        let key = crate::store::sth::LedgerKey::from_seed(&[3; 32]);
        let h = key.sign(0, crate::store::merkle::EMPTY_ROOT, 0);
        s.save_signed_head(&h, true).expect("save");
        assert_eq!(s.load_signed_head().expect("load"), Some(h));
        std::fs::write(tmp.path().join(HEAD_FILE), "{").expect("write");
        assert!(s.load_signed_head().is_err());
    }

    #[test]
    fn snapshots_are_checked_against_the_chain() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = open(tmp.path());
        assert_eq!(s.load_snapshot::<u64>().expect("load"), None);
        s.append(&[(1, ev("a", 1))]).expect("append");
        s.save_snapshot(&41u64).expect("save");
        s.append(&vec![(2, ev("a", 1)); 12]).expect("append");
        assert!(s.snapshot_due());
        s.save_snapshot(&42u64).expect("save");
        assert!(!s.snapshot_due());
        let snap = s.load_snapshot::<u64>().expect("load").expect("some");
        assert_eq!((snap.head, snap.state), (s.head(), 42));
        // A snapshot whose hash does not match the log is ignored.
        let hdr = SnapshotHeader {
            seq: 13,
            at: 2,
            hash: [9; 32],
            schema: u64::schema(),
        };
        let mut bad = codec::encode_snapshot(&hdr, b"\x07");
        s.snaps.insert(seq_key(13), &bad[..]).expect("insert");
        assert_eq!(
            s.load_snapshot::<u64>().expect("load").map(|s| s.head.seq),
            Some(1)
        );
        // So is one written by a build with another state layout.
        let other = SnapshotHeader {
            schema: 2,
            hash: s.hash_at(13).expect("hash"),
            ..hdr
        };
        s.snaps
            .insert(seq_key(13), codec::encode_snapshot(&other, b"\x07"))
            .expect("insert");
        assert_eq!(
            s.load_snapshot::<u64>().expect("load").map(|s| s.head.seq),
            Some(1)
        );
        bad.truncate(3);
        s.snaps.insert(seq_key(13), bad).expect("insert");
        assert_eq!(
            s.load_snapshot::<u64>().expect("load").map(|s| s.state),
            Some(41)
        );
    }

    #[test]
    fn an_unacknowledged_tail_frame_is_dropped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = open(tmp.path());
        s.append(&[(1, ev("a", 1)), (2, ev("b", 1))])
            .expect("append");
        let head = s.head();
        // A frame written past the head marker (as if the batch tore).
        s.log
            .insert(seq_key(3), &b"\x01\x00\x01garbage"[..])
            .expect("insert");
        drop(s);
        let mut s = open(tmp.path());
        assert_eq!(s.head(), head);
        assert_eq!(s.append(&[(3, ev("a", 2))]).expect("append"), vec![3]);
    }
}
