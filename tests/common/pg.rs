//! PostgreSQL for the tests: throwaway clusters (`initdb` in a temp dir, a
//! free port, an unprivileged user; see `isc_ledger::store::pg_temp`).
//!
//! - [`TempCluster`]: a cluster of one's own (start, stop, kill, restart,
//!   port, URL), removed when dropped — for tests that crash or stop the
//!   server, or add a standby.
//! - [`PgCluster`]: a primary and, optionally, a streaming standby
//!   (`pg_basebackup`), for the multi-node and failover tests.
//! - [`shared_db`]: a fresh database on one cluster shared by the whole test
//!   binary (started on first use, removed when the binary exits, also
//!   after a failed test): the cheap way for tests that only need a store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

pub use isc_ledger::store::pg_temp::TempCluster;
use isc_ledger::store::StoreLocation;

/// A primary and, optionally, one streaming standby, each a real
/// `postgres` in a temp dir on a free loopback port as an unprivileged
/// user; killed and removed on drop.
pub struct PgCluster {
    pub primary: TempCluster,
    pub standby: Option<TempCluster>,
}

/// Small servers: several run at once in the failover tests.
const SMALL: &[(&str, &str)] = &[
    ("max_connections", "60"),
    ("shared_buffers", "32MB"),
    ("wal_keep_size", "64MB"),
];

impl PgCluster {
    /// One primary (no replication).
    pub fn start() -> PgCluster {
        PgCluster {
            primary: TempCluster::start_with(SMALL).unwrap_or_else(|e| panic!("{e}")),
            standby: None,
        }
    }

    /// A primary and a streaming standby; with `synchronous`, every COMMIT
    /// on the primary waits until the standby has flushed it.
    pub fn start_with_standby(synchronous: bool) -> PgCluster {
        let mut c = PgCluster::start();
        let s = c
            .primary
            .add_standby(synchronous)
            .unwrap_or_else(|e| panic!("{e}"));
        c.standby = Some(s);
        c
    }

    /// The multi-host connection string the service uses: primary first,
    /// standby second, only a read-write server will do.
    pub fn multi_host_url(&self) -> String {
        let s = self.standby.as_ref().expect("a standby");
        format!(
            "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2",
            self.primary.port(),
            s.port()
        )
    }
}

static SHARED: OnceLock<Mutex<Option<TempCluster>>> = OnceLock::new();
static NEXT_DB: AtomicU64 = AtomicU64::new(1);

extern "C" fn remove_shared_cluster() {
    if let Some(m) = SHARED.get() {
        let taken = match m.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        drop(taken);
    }
}

fn with_shared<T>(f: impl FnOnce(&TempCluster) -> T) -> T {
    let m = SHARED.get_or_init(|| {
        let c = TempCluster::start().unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: registers a plain extern "C" function without arguments.
        unsafe {
            libc::atexit(remove_shared_cluster);
        }
        Mutex::new(Some(c))
    });
    let g = m.lock().unwrap_or_else(|p| p.into_inner());
    f(g.as_ref().expect("the shared cluster is running"))
}

/// A fresh, empty database on the shared cluster; returns its URL.
pub fn shared_db() -> String {
    let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
    named_db(&format!("t{}_{n}", std::process::id()))
}

/// Database `name` on the shared cluster (created when missing): the same
/// name gives the same database, e.g. across a restart of the service.
pub fn named_db(name: &str) -> String {
    with_shared(|c| c.create_database(name).unwrap_or_else(|e| panic!("{e}")))
}

/// Runs SQL on a database of the shared cluster (test setup and tampering).
pub fn shared_psql(db_url: &str, sql: &str) -> String {
    let db = db_url
        .rsplit('/')
        .next()
        .and_then(|s| s.split('?').next())
        .unwrap_or("postgres")
        .to_owned();
    with_shared(|c| c.psql(&db, sql).unwrap_or_else(|e| panic!("{e}")))
}

/// The store of a test: `dir` itself, or (when this test binary runs its
/// suite on PostgreSQL, see [`on_postgres`]) a database of the shared
/// cluster named after `dir`, so that a restart on the same dir finds the
/// same ledger.
pub fn store_for(dir: &std::path::Path) -> StoreLocation {
    if !on_postgres() {
        return StoreLocation::Dir(dir.to_path_buf());
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    StoreLocation::Postgres(named_db(&format!("d{:016x}", h.finish())))
}

/// True when the suite of this test binary runs on PostgreSQL: test targets
/// whose name ends in `_pg` (they include a suite with `#[path]`), or any
/// suite with `ISC_TEST_STORE=postgres`.
pub fn on_postgres() -> bool {
    env!("CARGO_CRATE_NAME").ends_with("_pg")
        || std::env::var("ISC_TEST_STORE").is_ok_and(|v| v == "postgres")
}
