//! Throwaway PostgreSQL clusters for the multi-node tests: a primary, and
//! optionally a streaming standby made by `pg_basebackup`, each a real
//! `postgres` process in a temp dir on a free loopback port, run as an
//! unprivileged user (postgres refuses root; the tests run as root in CI).
//! Everything is killed and removed on drop.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the PostgreSQL binaries are: `ISC_PG_BINDIR` (set by
/// `scripts/test`), else the newest `/usr/lib/postgresql/*/bin`.
pub fn pg_bindir() -> PathBuf {
    if let Ok(d) = std::env::var("ISC_PG_BINDIR") {
        return PathBuf::from(d);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .expect("PostgreSQL not installed: run scripts/test (it installs postgresql-15)")
}

/// The unprivileged user to run postgres as when we are root: `postgres`
/// (created by the distribution's package), else `nobody`.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in ["postgres", "nobody"] {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: getpwnam gets a valid C string; the result is read at once
        // on this thread (the tests do not call getpwnam concurrently here).
        let pw = unsafe { libc::getpwnam(c.as_ptr()) };
        if !pw.is_null() {
            // SAFETY: non-null pointer returned by getpwnam.
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            return Some((uid, gid));
        }
    }
    panic!("running as root and neither user postgres nor nobody exists");
}

fn chown(path: &Path, ids: Option<(u32, u32)>) {
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pg_cmd(bin: &str, ids: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(pg_bindir().join(bin));
    if let Some((uid, gid)) = ids {
        c.uid(uid).gid(gid);
    }
    c.env_remove("PGDATA").env("LC_ALL", "C");
    c
}

fn run(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One running `postgres` server.
pub struct PgNode {
    pub port: u16,
    pub data: PathBuf,
    ids: Option<(u32, u32)>,
    child: Option<Child>,
}

impl PgNode {
    fn start(data: PathBuf, port: u16, ids: Option<(u32, u32)>) -> PgNode {
        let log = std::fs::File::create(data.with_extension("log")).expect("log file");
        let sock = data.parent().unwrap().to_path_buf();
        let mut c = pg_cmd("postgres", ids);
        c.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group: killing the group kills the backends
            // too, like a machine dying.
            .process_group(0);
        let child = c.spawn().expect("spawn postgres");
        let node = PgNode {
            port,
            data,
            ids,
            child: Some(child),
        };
        node.wait_ready(Duration::from_secs(30));
        node
    }

    /// Waits until the server accepts connections.
    pub fn wait_ready(&self, within: Duration) {
        let until = Instant::now() + within;
        loop {
            let ok = pg_cmd("pg_isready", None)
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < until,
                "postgres on port {} not ready; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
    }

    /// A key=value connection string for this one server.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// SIGKILL of the postmaster and all its backends (its process group).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) of a process group we created.
            unsafe {
                libc::kill(-(c.id() as i32), libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    /// Promotes a standby to primary and waits until it accepts writes.
    pub fn promote(&self) {
        let mut c = pg_cmd("pg_ctl", self.ids);
        c.args(["promote", "-w", "-t", "30", "-D"]).arg(&self.data);
        run(c, "pg_ctl promote");
    }

    /// Runs one SQL statement with psql and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = pg_cmd("psql", None)
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for PgNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A primary and, optionally, one synchronous streaming standby.
pub struct PgCluster {
    pub primary: PgNode,
    pub standby: Option<PgNode>,
    // Last: removed after the servers are dead.
    _dir: tempfile::TempDir,
}

const BASE_CONF: &str = "
listen_addresses = '127.0.0.1'
max_connections = 60
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 5
wal_keep_size = 64MB
hot_standby = on
log_min_messages = warning
log_line_prefix = '%m [%p] '
";

impl PgCluster {
    /// One primary (no replication).
    pub fn start() -> PgCluster {
        let ids = run_as();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        chown(dir.path(), ids);
        let data = dir.path().join("primary");
        let mut c = pg_cmd("initdb", ids);
        c.args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .stdout(Stdio::null());
        run(c, "initdb");
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut conf, BASE_CONF.as_bytes()).unwrap();
        let primary = PgNode::start(data, free_port(), ids);
        PgCluster {
            primary,
            standby: None,
            _dir: dir,
        }
    }

    /// A primary and a streaming standby taken with `pg_basebackup`; with
    /// `synchronous`, every COMMIT on the primary waits until the standby
    /// has flushed it (`synchronous_standby_names = '*'`), so an
    /// acknowledged commit is on both servers.
    pub fn start_with_standby(synchronous: bool) -> PgCluster {
        let mut cl = PgCluster::start();
        let ids = cl.primary.ids;
        let sdata = cl._dir.path().join("standby");
        let mut c = pg_cmd("pg_basebackup", ids);
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &cl.primary.port.to_string(),
            "-U",
            "postgres",
            "-X",
            "stream",
            "-R",
            "-c",
            "fast",
            "-D",
        ])
        .arg(&sdata);
        run(c, "pg_basebackup");
        let standby = PgNode::start(sdata, free_port(), ids);
        if synchronous {
            cl.primary
                .psql("ALTER SYSTEM SET synchronous_standby_names = '*'");
            cl.primary.psql("SELECT pg_reload_conf()");
        }
        // Wait until the standby streams (and, when asked, is synchronous).
        let until = Instant::now() + Duration::from_secs(30);
        let want = if synchronous { "sync" } else { "async" };
        loop {
            let state = cl
                .primary
                .psql("SELECT coalesce(string_agg(sync_state, ','), '') FROM pg_stat_replication WHERE state = 'streaming'");
            if state.split(',').any(|s| s == want) {
                break;
            }
            assert!(
                Instant::now() < until,
                "standby not streaming ({state:?}); log:\n{}",
                standby.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cl.standby = Some(standby);
        cl
    }

    /// The multi-host URL the service uses: primary first, standby second,
    /// only a read-write server will do (libpq-style key=value string).
    pub fn multi_host_url(&self) -> String {
        let s = self.standby.as_ref().expect("a standby");
        format!(
            "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2",
            self.primary.port, s.port
        )
    }
}
