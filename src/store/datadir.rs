//! The sled data directory as files: sled's lock (is a service running?),
//! the private copy the offline tools read, the store's settings file and
//! sled's own `conf`.
//!
//! Owns: [`probe_lock`] (sled's `flock` on `db`, taken shared and never
//! written), [`PrivateCopy`] (a copy of sled's files in a temporary
//! directory, because sled writes on every open and has no working
//! read-only mode), [`StoreSettings`] (the sled settings a store was
//! created with, kept durably in [`SETTINGS_FILE`] beside sled's files),
//! and the check that sled's `conf` still says the same before sled may
//! open (and silently rewrite) it.
//!
//! Must not: open sled, or write anything into a directory it was only
//! asked to read (the private copy is the one place an audit writes).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::sth::HEAD_FILE;
use super::StoreError;

/// The store's own record of the settings it was created with (JSON),
/// written and fsynced once when the store is created.
pub const SETTINGS_FILE: &str = "isc-ledger-store.json";

/// sled's own settings file.
pub const SLED_CONF: &str = "conf";

/// The sled version whose on-disk format this build writes (sled's `conf`
/// spells it `major.minor`).
pub const SLED_FORMAT_VERSION: &str = "0.34";

/// Version of [`SETTINGS_FILE`]'s layout.
pub const SETTINGS_FORMAT: u32 = 1;

/// How long [`probe_lock`] waits for a lock that a store closed a moment ago
/// in this very process may still hold (sled's flusher thread ends late).
const LOCK_WAIT_MS: u64 = 2_000;

/// The sled settings that decide how its files are laid out. sled keeps
/// them in `conf`, never fsyncs it and rewrites it with whatever it is
/// opened with when it finds it empty; a store therefore records them
/// itself, durably, and refuses to open when they disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSettings {
    /// Layout of this file ([`SETTINGS_FORMAT`]).
    pub format: u32,
    /// sled's segment size (bytes).
    pub segment_size: usize,
    /// sled's own zstd compression (we compress frames ourselves; off).
    pub use_compression: bool,
    /// sled's on-disk version, `major.minor`.
    pub sled_version: String,
    /// Set when the service first wrote the signed head file
    /// ([`HEAD_FILE`]): from then on a store without one is damaged. The
    /// tree size of that first head (a lower bound of the log's length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_heads_since: Option<u64>,
}

impl StoreSettings {
    /// The settings this build opens every store with.
    pub fn current() -> StoreSettings {
        StoreSettings {
            format: SETTINGS_FORMAT,
            segment_size: super::sled_log::SEGMENT_SIZE_BYTES,
            use_compression: false,
            sled_version: SLED_FORMAT_VERSION.to_owned(),
            signed_heads_since: None,
        }
    }

    /// Whether the layout settings (not the head marker) agree.
    fn same_layout(&self, other: &StoreSettings) -> bool {
        self.segment_size == other.segment_size
            && self.use_compression == other.use_compression
            && self.sled_version == other.sled_version
    }

    fn describe(&self) -> String {
        format!(
            "segment_size {}, use_compression {}, sled format {}",
            self.segment_size, self.use_compression, self.sled_version
        )
    }
}

fn settings_error(dir: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::Settings(format!("{}: {what}", dir.display()))
}

/// Reads [`SETTINGS_FILE`]; `None` when absent (a store created before the
/// file existed, such as the committed golden log).
pub fn read_settings(dir: &Path) -> Result<Option<StoreSettings>, StoreError> {
    let path = dir.join(SETTINGS_FILE);
    let bytes = match read_bounded(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let s: StoreSettings = serde_json::from_slice(&bytes).map_err(|e| {
        settings_error(
            dir,
            format!("{SETTINGS_FILE} is damaged ({e}); refusing to open a store whose settings are unknown"),
        )
    })?;
    if s.format != SETTINGS_FORMAT {
        return Err(settings_error(
            dir,
            format!(
                "{SETTINGS_FILE} has format {} which this build does not know",
                s.format
            ),
        ));
    }
    Ok(Some(s))
}

/// Reads at most 64 KiB of a small file (a hostile store's "settings" may
/// be any size; ours are a few hundred bytes).
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    File::open(path)?.take(64 * 1024).read_to_end(&mut out)?;
    Ok(out)
}

/// Writes [`SETTINGS_FILE`] atomically and durably: a temporary file,
/// fsynced, renamed over the old one, then the directory fsynced.
pub fn write_settings(dir: &Path, s: &StoreSettings) -> Result<(), StoreError> {
    write_settings_with(dir, s, true)
}

pub(crate) fn write_settings_with(
    dir: &Path,
    s: &StoreSettings,
    durable: bool,
) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{SETTINGS_FILE}.tmp"));
    let mut bytes =
        serde_json::to_vec_pretty(s).map_err(|e| StoreError::Settings(e.to_string()))?;
    bytes.push(b'\n');
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        if durable {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, dir.join(SETTINGS_FILE))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a directory (its entries: files created or renamed in it).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// sled's `conf` as parsed here: `None` when absent or too short for sled
/// to read (sled then rewrites it with whatever it is opened with).
fn read_sled_conf(dir: &Path) -> Result<Option<StoreSettings>, StoreError> {
    let bytes = match read_bounded(&dir.join(SLED_CONF)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // sled: a file of 8 bytes or fewer is "empty/corrupt" and rewritten.
    if bytes.len() <= 8 {
        return Ok(None);
    }
    // Text lines `key: value`, then sled's 4-byte CRC.
    let text = &bytes[..bytes.len() - 4];
    let bad = || {
        settings_error(
            dir,
            "sled's conf file is damaged; refusing to open (sled would misread the store or refuse it)",
        )
    };
    let text = std::str::from_utf8(text).map_err(|_| bad())?;
    let mut s = StoreSettings {
        format: SETTINGS_FORMAT,
        segment_size: 0,
        use_compression: false,
        sled_version: String::new(),
        signed_heads_since: None,
    };
    let mut seen = 0;
    for line in text.lines() {
        let (k, v) = line.split_once(": ").ok_or_else(bad)?;
        match k {
            "segment_size" => s.segment_size = v.parse().map_err(|_| bad())?,
            "use_compression" => s.use_compression = v.parse().map_err(|_| bad())?,
            "version" => s.sled_version = v.to_owned(),
            _ => return Err(bad()),
        }
        seen += 1;
    }
    if seen != 3 {
        return Err(bad());
    }
    Ok(Some(s))
}

/// What [`check_settings`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsCheck {
    /// The recorded settings ([`SETTINGS_FILE`]); `None` for a store from
    /// before the file existed.
    pub recorded: Option<StoreSettings>,
    /// There is no sled data file yet: opening creates the store.
    pub new_store: bool,
    /// sled's `conf` is missing or empty (sled will rewrite it).
    pub conf_missing: bool,
}

/// Run before sled opens `dir`: sled's `conf` (when sled can read it) and
/// the recorded settings must agree with each other and with this build's
/// [`StoreSettings::current`]. A `conf` that sled would silently rewrite is
/// accepted only when the recorded settings equal this build's (or the
/// store predates the settings file; a warning then).
pub fn check_settings(dir: &Path) -> Result<SettingsCheck, StoreError> {
    let new_store = !dir.join("db").exists();
    let recorded = read_settings(dir)?;
    let conf = read_sled_conf(dir)?;
    let current = StoreSettings::current();
    if let Some(r) = &recorded {
        if !r.same_layout(&current) {
            return Err(settings_error(
                dir,
                format!(
                    "the store was created with {}, but this build opens stores with {}; refusing to open it",
                    r.describe(),
                    current.describe()
                ),
            ));
        }
    }
    if let Some(c) = &conf {
        let want = recorded.as_ref().unwrap_or(&current);
        if !c.same_layout(want) {
            let origin = if recorded.is_some() {
                "the store was created with"
            } else {
                "this build opens stores with"
            };
            return Err(settings_error(
                dir,
                format!(
                    "sled's conf says {}, but {origin} {}; refusing to open (sled would misread the store)",
                    c.describe(),
                    want.describe()
                ),
            ));
        }
    } else if !new_store && recorded.is_none() {
        tracing::warn!(
            dir = %dir.display(),
            "sled's conf is missing or empty and the store has no settings file: assuming this build's settings"
        );
    }
    Ok(SettingsCheck {
        recorded,
        new_store,
        conf_missing: conf.is_none(),
    })
}

/// After sled opened `dir` for writing: make sled's `conf` durable (sled
/// never fsyncs it, and rewrites it when it was lost), record the settings
/// when the store has no settings file yet, and fsync the directory
/// (`durable` false: benchmarks and tests without fdatasync skip the syncs).
pub fn settle_settings(
    dir: &Path,
    check: &SettingsCheck,
    durable: bool,
) -> Result<StoreSettings, StoreError> {
    let settings = match &check.recorded {
        Some(s) => s.clone(),
        None => {
            let s = StoreSettings::current();
            write_settings_with(dir, &s, durable)?;
            s
        }
    };
    if !durable {
        return Ok(settings);
    }
    File::open(dir.join(SLED_CONF))?.sync_all()?;
    sync_dir(dir)?;
    let blobs = dir.join("blobs");
    if blobs.is_dir() {
        sync_dir(&blobs)?;
    }
    Ok(settings)
}

/// The data directory is in use: `flock` on sled's data file.
pub struct DirLock {
    _file: File,
}

/// Takes a shared lock on `<dir>/db` without writing anything (the file is
/// opened read-only). sled holds an exclusive lock on it for as long as a
/// store is open, so this fails exactly while a service (or any writer)
/// runs, and while held no writer can start. `Ok(None)`: no `db` file.
pub fn probe_lock(dir: &Path) -> Result<Option<DirLock>, StoreError> {
    let file = match File::open(dir.join("db")) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(LOCK_WAIT_MS);
    loop {
        if try_flock_shared(&file)? {
            return Ok(Some(DirLock { _file: file }));
        }
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::InUse {
                dir: dir.to_path_buf(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn try_flock_shared(file: &File) -> std::io::Result<bool> {
    // std's lock is flock(2) on Linux, as sled's (fs2) is.
    match file.try_lock_shared() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Whether a file of the data directory belongs in an audit's private
/// copy: sled's files, the settings file and the head file. Anything else
/// (a signing key above all) stays where it is.
fn copied(name: &str) -> bool {
    matches!(name, "db" | SLED_CONF | SETTINGS_FILE | HEAD_FILE) || name.starts_with("snap.")
}

/// A private copy of a store's files in a temporary directory (removed on
/// drop). The offline tools open sled there: sled writes on open (it
/// recovers, grows `db`, writes a `snap.*` file) and has no read-only mode
/// that works, so the audited directory itself is only ever read.
pub struct PrivateCopy {
    tmp: tempfile::TempDir,
    /// Bytes copied.
    pub bytes: u64,
    /// sled `snap.*` files found in the directory.
    pub sled_snapshots: usize,
}

impl PrivateCopy {
    /// Copies `dir`'s store files while holding its lock shared (so no
    /// writer can start or be running while the copy is taken). Fails with
    /// [`StoreError::InUse`] while a service runs on `dir`. The copy goes to
    /// the system's temporary directory (`TMPDIR`): it needs as much room as
    /// the store.
    pub fn take(dir: &Path) -> Result<PrivateCopy, StoreError> {
        Self::take_with(dir, true)
    }

    /// [`PrivateCopy::take`], leaving out sled's `snap.*` files when
    /// `sled_snapshots` is false: they are a cache of sled's page table
    /// (sled rebuilds it by scanning `db`), and a damaged one makes sled
    /// refuse a store whose log is still readable.
    pub fn take_with(dir: &Path, sled_snapshots: bool) -> Result<PrivateCopy, StoreError> {
        let db = dir.join("db");
        if std::fs::symlink_metadata(&db).is_ok_and(|m| !m.is_file()) {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is not a regular file; refusing to read the store",
                    db.display()
                ),
            )));
        }
        let lock = probe_lock(dir)?;
        let tmp = tempfile::Builder::new()
            .prefix("isc-ledger-audit-")
            .tempdir()?;
        let mut bytes = 0;
        let mut snapshots = 0;
        let copy_err = |e: std::io::Error, what: &Path| -> StoreError {
            StoreError::Io(std::io::Error::new(
                e.kind(),
                format!(
                    "copying {} to a private copy in {} (set TMPDIR to a directory with room for the store): {e}",
                    what.display(),
                    tmp.path().display()
                ),
            ))
        };
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name();
            let Some(name_s) = name.to_str() else {
                continue;
            };
            let ty = e.file_type()?;
            if ty.is_dir() && name_s == "blobs" {
                let to = tmp.path().join("blobs");
                std::fs::create_dir(&to)?;
                for b in std::fs::read_dir(e.path())? {
                    let b = b?;
                    if b.file_type()?.is_file() {
                        bytes += std::fs::copy(b.path(), to.join(b.file_name()))
                            .map_err(|err| copy_err(err, &b.path()))?;
                    }
                }
            } else if copied(name_s) && !ty.is_file() {
                // A symlink or a device where sled's file should be: never
                // followed (a FIFO would hang the copy, a link could point
                // anywhere) and never skipped (sled would start afresh).
                return Err(StoreError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} is not a regular file; refusing to read the store",
                        e.path().display()
                    ),
                )));
            } else if ty.is_file() && copied(name_s) {
                if name_s.starts_with("snap.") {
                    snapshots += 1;
                    if !sled_snapshots {
                        continue;
                    }
                }
                bytes += std::fs::copy(e.path(), tmp.path().join(&name))
                    .map_err(|err| copy_err(err, &e.path()))?;
            }
        }
        drop(lock);
        Ok(PrivateCopy {
            tmp,
            bytes,
            sled_snapshots: snapshots,
        })
    }

    /// Where the copy is.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }
}

impl std::fmt::Debug for PrivateCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateCopy")
            .field("path", &self.tmp.path())
            .field("bytes", &self.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf_bytes(segment: usize, compression: bool, version: &str) -> Vec<u8> {
        let mut v = format!(
            "segment_size: {segment}\nuse_compression: {compression}\nversion: {version}\n"
        )
        .into_bytes();
        v.extend_from_slice(&[0, 0, 0, 0]);
        v
    }

    #[test]
    fn conf_parses_as_sled_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(SLED_CONF),
            conf_bytes(524_288, false, "0.34"),
        )
        .unwrap();
        let c = read_sled_conf(dir.path()).unwrap().unwrap();
        assert!(c.same_layout(&StoreSettings::current()));
        std::fs::write(dir.path().join(SLED_CONF), b"short").unwrap();
        assert_eq!(read_sled_conf(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(SLED_CONF), b"garbage that is long enough").unwrap();
        assert!(matches!(
            read_sled_conf(dir.path()),
            Err(StoreError::Settings(_))
        ));
    }

    #[test]
    fn golden_conf_is_the_current_layout() {
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-v1");
        let c = read_sled_conf(&golden).unwrap().unwrap();
        assert!(c.same_layout(&StoreSettings::current()), "{c:?}");
    }

    #[test]
    fn a_differing_conf_or_settings_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), b"").unwrap();
        std::fs::write(
            dir.path().join(SLED_CONF),
            conf_bytes(1 << 20, false, "0.34"),
        )
        .unwrap();
        let e = check_settings(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("segment_size 1048576") && e.contains("refusing"),
            "{e}"
        );
        // conf lost (sled would rewrite it) but the store was recorded with
        // other settings: refused as well.
        std::fs::write(dir.path().join(SLED_CONF), b"").unwrap();
        let mut other = StoreSettings::current();
        other.segment_size = 1 << 20;
        write_settings(dir.path(), &other).unwrap();
        let e = check_settings(dir.path()).unwrap_err().to_string();
        assert!(e.contains("created with segment_size 1048576"), "{e}");
        // Matching settings and a lost conf: accepted (sled rewrites it
        // with the same settings, and the writer fsyncs it).
        write_settings(dir.path(), &StoreSettings::current()).unwrap();
        let c = check_settings(dir.path()).unwrap();
        assert!(c.conf_missing && !c.new_store && c.recorded.is_some());
    }

    #[test]
    fn a_store_in_use_and_a_linked_db_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let _db = sled::Config::new().path(dir.path()).open().unwrap();
        // A second writer (`serve` on a directory in use) is told in words.
        let e = crate::store::ledger::EventLog::open(dir.path(), Default::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("is in use") && !e.contains("could not acquire lock"),
            "{e}"
        );
        let other = tempfile::tempdir().unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("db"), other.path().join("db")).unwrap();
        let e = PrivateCopy::take(other.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn the_lock_probe_sees_sled_and_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        assert!(probe_lock(dir.path()).unwrap().is_none());
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let e = match probe_lock(dir.path()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("the lock of an open store was taken"),
        };
        assert!(e.contains("in use") && e.contains("audit --server"), "{e}");
        drop(db);
        // sled's threads let go of the lock shortly after the drop.
        assert!(probe_lock(dir.path()).unwrap().is_some());
    }
}
