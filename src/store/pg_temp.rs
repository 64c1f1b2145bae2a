//! Throwaway PostgreSQL clusters for tests and benchmarks: `initdb` in a
//! temp dir, a free port on 127.0.0.1, run as an unprivileged user (the
//! postgres server refuses to run as root, and the tests run as root in CI),
//! removed when dropped (also while a panic unwinds). A cluster may get a
//! streaming standby of its own ([`TempCluster::add_standby`], by
//! `pg_basebackup`), be killed like a machine dying (the server's whole
//! process group) and have its standby promoted: the one harness of every
//! PostgreSQL test, single-node or failover.
//!
//! [`TempCluster::start_tls`] starts one with TLS on: a CA and a server
//! certificate (for `localhost` and `127.0.0.1`) made at start-up with
//! rcgen (no `openssl` binary needed), TCP connections refused unless
//! encrypted (`hostssl` only), the CA file at [`TempCluster::ca_file`].
//!
//! Binaries come from `$ISC_PG_BINDIR` (set by `scripts/test`), else the
//! Debian location of PostgreSQL 15. Not used by the service itself.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the PostgreSQL binaries are looked for when `$ISC_PG_BINDIR` is unset.
pub const DEFAULT_PG_BINDIR: &str = "/usr/lib/postgresql/15/bin";

/// The PostgreSQL binaries directory in use.
pub fn pg_bindir() -> PathBuf {
    match std::env::var_os("ISC_PG_BINDIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(DEFAULT_PG_BINDIR),
    }
}

/// The user a cluster runs as: ourselves, or (as root) the `postgres`
/// system user when it exists, else `nobody`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id (`None`: ourselves).
    pub uid: Option<u32>,
    /// Group id.
    pub gid: Option<u32>,
}

impl RunAs {
    /// Picks the unprivileged user (see the type).
    pub fn pick() -> RunAs {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return RunAs {
                uid: None,
                gid: None,
            };
        }
        for name in ["postgres", "nobody"] {
            if let Some((uid, gid)) = lookup_user(name) {
                return RunAs {
                    uid: Some(uid),
                    gid: Some(gid),
                };
            }
        }
        RunAs {
            uid: Some(65534),
            gid: Some(65534),
        }
    }

    /// Applies the user to a command (std drops supplementary groups too).
    pub fn apply(&self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        if let Some(g) = self.gid {
            cmd.gid(g);
        }
        if let Some(u) = self.uid {
            cmd.uid(u);
        }
    }

    fn chown(&self, path: &Path) -> std::io::Result<()> {
        match self.uid {
            Some(u) => std::os::unix::fs::chown(path, Some(u), self.gid),
            None => Ok(()),
        }
    }
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// A free TCP port on 127.0.0.1 (bound and released: another process may
/// take it meanwhile, so `start` retries on a new one).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A PostgreSQL cluster of its own: data dir, port, server process.
pub struct TempCluster {
    /// Holds the data dir, the socket dir and the server log.
    root: tempfile::TempDir,
    /// The data directory (`root/data`).
    data: PathBuf,
    port: u16,
    run_as: RunAs,
    bindir: PathBuf,
    child: Option<Child>,
    /// Extra `-c name=value` settings given at every start.
    settings: Vec<(String, String)>,
    /// With TLS on: the CA file that signed the server's certificate.
    ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for TempCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempCluster")
            .field("data", &self.data)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Why a throwaway cluster could not be made.
#[derive(Debug, thiserror::Error)]
#[error("throwaway PostgreSQL cluster: {0}")]
pub struct ClusterError(String);

/// Runs one of the cluster's tools as `run_as` in `dir`, without input,
/// output or an inherited `PGDATA`; its stderr is the error (`what` names
/// the tool).
fn run_tool(mut cmd: Command, run_as: RunAs, dir: &Path, what: &str) -> Result<(), ClusterError> {
    // HOME is the cluster's: libpq (pg_basebackup, a standby's WAL
    // receiver) looks for ~/.postgresql/ files, which the unprivileged
    // user must not find in ours.
    cmd.current_dir(dir)
        .env("HOME", dir)
        .env_remove("PGDATA")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    run_as.apply(&mut cmd);
    let out = cmd.output().map_err(|e| err(format!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn err(what: impl Into<String>) -> ClusterError {
    ClusterError(what.into())
}

/// A test CA of its own: the PEM of its certificate (another CA than a
/// cluster's, for tests of a certificate that must not verify).
pub fn new_test_ca() -> Result<String, ClusterError> {
    Ok(make_certificates()?.0)
}

/// A fresh CA and a server certificate it signed (for `localhost` and
/// `127.0.0.1`, ECDSA P-256): (CA PEM, server certificate PEM, server key PEM).
fn make_certificates() -> Result<(String, String, String), ClusterError> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let e = |x: rcgen::Error| err(format!("test certificate: {x}"));
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "isc-ledger throwaway test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(e)?).map_err(e)?;
    let key = KeyPair::generate().map_err(e)?;
    let mut server =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).map_err(e)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = server.signed_by(&key, &ca).map_err(e)?;
    Ok((ca.pem(), cert.pem(), key.serialize_pem()))
}

impl TempCluster {
    /// `initdb` + start, with the defaults of a durable cluster (fsync on).
    pub fn start() -> Result<TempCluster, ClusterError> {
        Self::start_with(&[])
    }

    /// [`TempCluster::start`] with extra server settings (`-c name=value`).
    pub fn start_with(settings: &[(&str, &str)]) -> Result<TempCluster, ClusterError> {
        let mut c = Self::init()?;
        c.settings = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        c.start_server()?;
        Ok(c)
    }

    /// `initdb` only (the server is not started): a standby is made by
    /// replacing the data dir, then [`TempCluster::start_server`].
    pub fn init() -> Result<TempCluster, ClusterError> {
        let bindir = pg_bindir();
        if !bindir.join("initdb").exists() {
            return Err(err(format!(
                "no initdb in {} (install postgresql-15, or set ISC_PG_BINDIR; scripts/test does both)",
                bindir.display()
            )));
        }
        let run_as = RunAs::pick();
        let root = tempfile::Builder::new()
            .prefix("isc-pg-")
            .tempdir()
            .map_err(|e| err(format!("temp dir: {e}")))?;
        run_as
            .chown(root.path())
            .map_err(|e| err(format!("chown {}: {e}", root.path().display())))?;
        let data = root.path().join("data");
        let mut cmd = Command::new(bindir.join("initdb"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .args(["--locale", "C"]);
        run_tool(cmd, run_as, root.path(), "initdb")?;
        Ok(TempCluster {
            root,
            data,
            port: 0,
            run_as,
            bindir,
            child: None,
            settings: vec![],
            ca_file: None,
        })
    }

    /// [`TempCluster::start_with`] with TLS on (see the module): the server
    /// certificate names `localhost` and `127.0.0.1`, a TCP connection must
    /// be encrypted (`hostssl`; the role `ledger` authenticates by SCRAM
    /// password, every other by trust), a local socket need not be.
    pub fn start_tls(settings: &[(&str, &str)]) -> Result<TempCluster, ClusterError> {
        let mut c = Self::init()?;
        let (ca, server_cert, server_key) = make_certificates()?;
        let ca_file = c.root.path().join("ca.crt");
        std::fs::write(&ca_file, ca).map_err(|e| err(format!("ca.crt: {e}")))?;
        let write_private = |name: &str, text: &str, mode: u32| -> Result<(), ClusterError> {
            use std::os::unix::fs::PermissionsExt;
            let path = c.data.join(name);
            std::fs::write(&path, text).map_err(|e| err(format!("{name}: {e}")))?;
            // PostgreSQL refuses a key file others may read.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| err(format!("chmod {name}: {e}")))?;
            c.run_as
                .chown(&path)
                .map_err(|e| err(format!("chown {name}: {e}")))
        };
        write_private("server.crt", &server_cert, 0o644)?;
        write_private("server.key", &server_key, 0o600)?;
        write_private(
            "pg_hba.conf",
            "local all all trust\n\
             local replication all trust\n\
             hostssl replication all 127.0.0.1/32 trust\n\
             hostssl all ledger 127.0.0.1/32 scram-sha-256\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
            0o600,
        )?;
        c.settings = [
            ("ssl", "on"),
            ("ssl_cert_file", "server.crt"),
            ("ssl_key_file", "server.key"),
        ]
        .iter()
        .chain(settings)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        c.ca_file = Some(ca_file);
        c.start_server()?;
        Ok(c)
    }

    /// With TLS on: the PEM file of the CA that signed the server's
    /// certificate (what `sslrootcert=` names).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// [`TempCluster::url`] with `sslmode=MODE` and, when TLS is on,
    /// `sslrootcert=` the CA file.
    pub fn tls_url(&self, dbname: &str, mode: &str) -> String {
        let mut url = format!("{}&sslmode={mode}", self.url(dbname));
        if let Some(ca) = &self.ca_file {
            url.push_str(&format!("&sslrootcert={}", ca.display()));
        }
        url
    }

    /// Starts the server (again) on a fresh free port unless one was used
    /// before (a restart keeps its port); waits until it accepts connections.
    pub fn start_server(&mut self) -> Result<(), ClusterError> {
        if self.child.is_some() {
            return Ok(());
        }
        let mut last = String::new();
        for _ in 0..5 {
            if self.port == 0 {
                self.port = free_port().map_err(|e| err(format!("free port: {e}")))?;
            }
            let log = std::fs::File::create(self.root.path().join("server.log"))
                .map_err(|e| err(format!("server log: {e}")))?;
            let _ = self.run_as.chown(&self.root.path().join("server.log"));
            let mut cmd = Command::new(self.bindir.join("postgres"));
            cmd.arg("-D")
                .arg(&self.data)
                .arg("-p")
                .arg(self.port.to_string())
                .arg("-k")
                .arg(self.root.path())
                .args(["-c", "listen_addresses=127.0.0.1"]);
            for (k, v) in &self.settings {
                cmd.arg("-c").arg(format!("{k}={v}"));
            }
            // Its own process group: `kill` takes the backends with the
            // postmaster, like a machine dying.
            use std::os::unix::process::CommandExt;
            cmd.current_dir(self.root.path())
                .env("HOME", self.root.path())
                .env_remove("PGDATA")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .process_group(0);
            self.run_as.apply(&mut cmd);
            let child = cmd.spawn().map_err(|e| err(format!("postgres: {e}")))?;
            self.child = Some(child);
            match self.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = e.0;
                    self.kill();
                    self.port = 0;
                }
            }
        }
        Err(err(format!("the server did not start: {last}")))
    }

    fn wait_ready(&mut self, within: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(err(format!(
                        "postgres exited ({status}): {}",
                        self.server_log_tail()
                    )));
                }
            }
            let ok = self
                .client_tool("pg_isready")
                .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(err(format!(
                    "not ready after {within:?}: {}",
                    self.server_log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A libpq client tool of the cluster's binaries, run as ourselves;
    /// with TLS on it trusts the cluster's CA (not a `~/.postgresql/`
    /// file of ours).
    fn client_tool(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(name));
        if let Some(ca) = &self.ca_file {
            cmd.env("PGSSLROOTCERT", ca);
        }
        cmd
    }

    /// The last lines of the server's log (for error messages).
    pub fn server_log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The directory holding the data dir, socket and server log.
    pub fn root_dir(&self) -> &Path {
        self.root.path()
    }

    /// The binaries in use.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The unprivileged user the server runs as.
    pub fn run_as(&self) -> RunAs {
        self.run_as
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A URL of database `dbname` as the superuser `postgres` (trust auth).
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{dbname}?connect_timeout=10",
            self.port
        )
    }

    /// The URL of the default database `postgres`.
    pub fn default_url(&self) -> String {
        self.url("postgres")
    }

    /// Runs SQL through `psql` on database `dbname` (setup statements of
    /// tests; the service never does this). Returns stdout.
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String, ClusterError> {
        let out = self
            .client_tool("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args(["-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-d", dbname, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| err(format!("psql: {e}")))?;
        if !out.status.success() {
            return Err(err(format!(
                "psql {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates database `name` (idempotent) and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, ClusterError> {
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(err(format!(
                "database name {name:?}: letters, digits and _ only"
            )));
        }
        let exists = self.psql(
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        )?;
        if exists.trim() != "1" {
            self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        }
        Ok(self.url(name))
    }

    /// Fast shutdown (SIGINT: active transactions are rolled back) and wait.
    pub fn stop(&mut self) {
        self.signal_and_wait(libc::SIGINT, Duration::from_secs(30));
    }

    /// SIGKILL of the server and all its backends (its process group: a
    /// machine dying), and wait.
    pub fn kill(&mut self) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) of the process group our child leads.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
        }
        self.signal_and_wait(libc::SIGKILL, Duration::from_secs(30));
        // Give the backends a moment to be reaped so that a restart does
        // not find the old shared memory in use.
        std::thread::sleep(Duration::from_millis(100));
    }

    /// A key=value connection string of database `postgres` (what the
    /// multi-node tests pass to `serve --store`).
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// A streaming standby of this cluster, taken with `pg_basebackup -R`
    /// and started on its own port; with `synchronous`, every COMMIT here
    /// then waits until the standby has flushed it
    /// (`synchronous_standby_names = '*'`), so an acknowledged commit is on
    /// both servers. Returns once the standby streams (as `sync` when asked).
    pub fn add_standby(&self, synchronous: bool) -> Result<TempCluster, ClusterError> {
        let root = tempfile::Builder::new()
            .prefix("isc-pg-standby-")
            .tempdir()
            .map_err(|e| err(format!("temp dir: {e}")))?;
        self.run_as
            .chown(root.path())
            .map_err(|e| err(format!("chown {}: {e}", root.path().display())))?;
        let data = root.path().join("data");
        let mut cmd = Command::new(self.bindir.join("pg_basebackup"));
        cmd.args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-X", "stream", "-R", "-c", "fast", "-D"])
            .arg(&data);
        run_tool(cmd, self.run_as, root.path(), "pg_basebackup")?;
        let mut standby = TempCluster {
            root,
            data,
            port: 0,
            run_as: self.run_as,
            bindir: self.bindir.clone(),
            child: None,
            settings: self.settings.clone(),
            ca_file: self.ca_file.clone(),
        };
        standby.start_server()?;
        if synchronous {
            self.psql(
                "postgres",
                "ALTER SYSTEM SET synchronous_standby_names = '*'",
            )?;
            self.psql("postgres", "SELECT pg_reload_conf()")?;
        }
        let want = if synchronous { "sync" } else { "async" };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.psql(
                "postgres",
                "SELECT coalesce(string_agg(sync_state, ','), '') FROM pg_stat_replication \
                 WHERE state = 'streaming'",
            )?;
            if state.trim().split(',').any(|s| s == want) {
                return Ok(standby);
            }
            if Instant::now() > deadline {
                return Err(err(format!(
                    "the standby does not stream as {want} ({:?}): {}",
                    state.trim(),
                    standby.server_log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Promotes a standby to primary and waits until it accepts writes.
    pub fn promote(&self) -> Result<(), ClusterError> {
        let mut cmd = Command::new(self.bindir.join("pg_ctl"));
        cmd.args(["promote", "-w", "-t", "30", "-D"])
            .arg(&self.data);
        run_tool(cmd, self.run_as, self.root.path(), "pg_ctl promote")
    }

    /// Sends `sig` to the postmaster without waiting (SIGSTOP, SIGCONT, …).
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as libc::pid_t, sig);
            }
        }
    }

    fn signal_and_wait(&mut self, sig: libc::c_int, within: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid; a stopped server must be
        // continued to act on the signal.
        unsafe {
            libc::kill(child.id() as libc::pid_t, sig);
            libc::kill(child.id() as libc::pid_t, libc::SIGCONT);
        }
        let deadline = Instant::now() + within;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        // Immediate shutdown (SIGQUIT): nothing here is worth a checkpoint.
        self.signal_and_wait(libc::SIGQUIT, Duration::from_secs(10));
        // `root` (a TempDir) removes the files.
    }
}
