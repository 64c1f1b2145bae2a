//! TLS to PostgreSQL against throwaway clusters with `ssl = on` (a CA and
//! server certificate made at test time; plain TCP refused by `hostssl`):
//! the service appends, restarts and replays over `sslmode=verify-full`
//! with the CA in `sslrootcert` (writer, readers, lease and LISTEN
//! connections all encrypted), the offline tools run on the same URL,
//! `require` and `verify-ca` connect, SCRAM works with channel binding,
//! `require` / `prefer` check the chain against a default
//! `~/.postgresql/root.crt` (a home directory passed in), `hostaddr`
//! without `host` connects over TLS, and a wrong CA, a wrong host, or
//! `require` against a server without TLS are refused with words that
//! name the database, never the password.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::pg::{self, TempCluster};
use isc_ledger::store::ledger::EventLog;
use isc_ledger::store::{LogStore, StoreLocation, StoreOptions};

static TLS: OnceLock<Mutex<Option<TempCluster>>> = OnceLock::new();

extern "C" fn remove_tls_cluster() {
    if let Some(m) = TLS.get() {
        let taken = match m.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        drop(taken);
    }
}

/// Runs `f` on this binary's one TLS cluster (started on first use,
/// removed at exit).
fn with_tls<T>(f: impl FnOnce(&TempCluster) -> T) -> T {
    let m = TLS.get_or_init(|| {
        let c =
            TempCluster::start_tls(&[("max_connections", "60")]).unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: registers a plain extern "C" function without arguments.
        unsafe {
            libc::atexit(remove_tls_cluster);
        }
        Mutex::new(Some(c))
    });
    let g = m.lock().unwrap_or_else(|p| p.into_inner());
    f(g.as_ref().expect("the TLS cluster runs"))
}

/// A fresh database on the TLS cluster: (its name, the port).
fn tls_db(name: &str) -> (String, u16) {
    with_tls(|c| {
        c.create_database(name).unwrap_or_else(|e| panic!("{e}"));
        (name.to_owned(), c.port())
    })
}

fn ca_file() -> String {
    with_tls(|c| c.ca_file().expect("TLS on").display().to_string())
}

fn open(url: &str) -> Result<EventLog, String> {
    EventLog::open(
        StoreLocation::Postgres(url.to_owned()),
        StoreOptions::default(),
    )
    .map_err(|e| e.to_string())
}

#[test]
fn require_and_verify_ca_connect_and_the_connections_are_encrypted() {
    let (db, port) = tls_db("tls_require");
    let url = format!("postgres://postgres@127.0.0.1:{port}/{db}?sslmode=require");
    let log = open(&url).expect("sslmode=require opens");
    assert_eq!(log.head().seq, 0);
    // Every connection this process holds on the database is encrypted
    // (the cluster refuses plain TCP anyway: hostnossl … reject).
    let counts = with_tls(|c| {
        c.psql(
            &db,
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'isc-ledger' \
             AND a.datname = current_database()",
        )
        .unwrap()
    });
    let counts: Vec<&str> = counts.trim().split('|').collect();
    assert_eq!(counts[0], counts[1], "{counts:?}");
    assert!(counts[0].parse::<u32>().unwrap() >= 2, "{counts:?}");
    drop(log);
    // verify-ca checks the chain only: another host name still connects.
    let url = format!(
        "host=wrong.example hostaddr=127.0.0.1 port={port} user=postgres dbname={db} \
         sslmode=verify-ca sslrootcert={}",
        ca_file()
    );
    open(&url).expect("sslmode=verify-ca ignores the host name");
    // No sslmode is libpq's prefer: this server offers TLS (and takes
    // nothing else over TCP), so it is used.
    open(&format!("postgres://postgres@127.0.0.1:{port}/{db}")).expect("prefer");
}

#[test]
fn a_wrong_ca_or_a_wrong_host_is_refused_in_plain_words() {
    let (db, port) = tls_db("tls_refused");
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.crt");
    std::fs::write(
        &other_ca,
        isc_ledger::store::pg_temp::new_test_ca().unwrap(),
    )
    .unwrap();
    let url = format!(
        "postgres://postgres:s3cret@127.0.0.1:{port}/{db}?sslmode=verify-full&sslrootcert={}",
        other_ca.display()
    );
    let e = open(&url).map(|_| ()).unwrap_err();
    assert!(
        e.contains(&format!("127.0.0.1:{port} database {db}")),
        "{e}"
    );
    assert!(
        e.contains("not signed by the CA in sslrootcert")
            && e.contains(&other_ca.display().to_string()),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");

    let url = format!(
        "host=wrong.example hostaddr=127.0.0.1 port={port} user=postgres password=s3cret \
         dbname={db} sslmode=verify-full sslrootcert={}",
        ca_file()
    );
    let e = open(&url).map(|_| ()).unwrap_err();
    assert!(
        e.contains("not valid for the host wrong.example")
            && e.contains("it names localhost, 127.0.0.1"),
        "{e}"
    );
    assert!(e.contains(&format!("database {db}")), "{e}");
    assert!(!e.contains("s3cret"), "{e}");

    // An unreadable CA file is named before any connection is tried.
    let url = format!(
        "postgres://postgres@127.0.0.1:{port}/{db}?sslmode=verify-full&sslrootcert={}",
        dir.path().join("missing.crt").display()
    );
    let e = open(&url).map(|_| ()).unwrap_err();
    assert!(e.contains("cannot use sslrootcert"), "{e}");
    assert!(e.contains("missing.crt"), "{e}");
    assert!(e.contains(&format!("database {db}")), "{e}");

    // Plain text is refused by this server.
    let url = format!("postgres://postgres@127.0.0.1:{port}/{db}?sslmode=disable");
    assert!(open(&url).is_err());
}

/// Connects with `url`, the default CA file being `home`'s
/// `.postgresql/root.crt` (never `$HOME`'s: tests run in parallel
/// threads); whether the session is encrypted, or the words of the error.
fn connect_in_home(url: &str, home: &std::path::Path) -> Result<bool, String> {
    use isc_ledger::store::pg_conn::{parse_config, PgConfig};
    use isc_ledger::store::pg_tls::MakeTls;
    let (cfg, req) = parse_config(url).map_err(|e| e.to_string())?;
    let tls = MakeTls::with_home(&req, Some(home))?;
    let pg = PgConfig { cfg, tls };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = pg
            .connect()
            .await
            .map_err(|e| pg.connect_error("test", e).to_string())?;
        let task = tokio::spawn(conn);
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        drop(client);
        let _ = task.await;
        Ok(row.get::<_, bool>(0))
    })
}

/// A home directory whose `.postgresql/root.crt` holds `ca_pem`.
fn home_with_root_crt(ca_pem: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let root = isc_ledger::store::pg_tls::default_root_cert_in(home.path());
    std::fs::create_dir_all(root.parent().unwrap()).unwrap();
    std::fs::write(&root, ca_pem).unwrap();
    home
}

#[test]
fn require_and_prefer_check_the_chain_against_the_default_ca_file() {
    let (db, port) = tls_db("tls_default_ca");
    let wrong = home_with_root_crt(&isc_ledger::store::pg_temp::new_test_ca().unwrap());
    let right = home_with_root_crt(&std::fs::read_to_string(ca_file()).unwrap());
    let url =
        |mode: &str| format!("postgres://postgres:s3cret@127.0.0.1:{port}/{db}?sslmode={mode}");
    for mode in ["require", "prefer"] {
        // Another CA in ~/.postgresql/root.crt: the server is refused.
        let e = connect_in_home(&url(mode), wrong.path()).unwrap_err();
        assert!(
            e.contains("not signed by the CA in sslrootcert")
                && e.contains(".postgresql/root.crt")
                && e.contains(&format!("sslmode={mode}")),
            "{mode}: {e}"
        );
        assert!(
            e.contains(&format!("database {db}")) && !e.contains("s3cret"),
            "{e}"
        );
        // The cluster's CA there: connected, encrypted.
        assert_eq!(
            connect_in_home(&url(mode), right.path()),
            Ok(true),
            "{mode}"
        );
    }
    // As verify-ca: the chain, not the host name.
    let url = format!(
        "host=wrong.example hostaddr=127.0.0.1 port={port} user=postgres dbname={db} sslmode=require"
    );
    assert_eq!(connect_in_home(&url, right.path()), Ok(true));
    assert!(connect_in_home(&url, wrong.path()).is_err());
    // No default file: require checks nothing (libpq's meaning).
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(connect_in_home(&url, empty.path()), Ok(true));
}

#[test]
fn hostaddr_without_host_connects_over_tls() {
    let (db, port) = tls_db("tls_hostaddr");
    let home = tempfile::tempdir().unwrap();
    let base = format!("hostaddr=127.0.0.1 port={port} user=postgres dbname={db}");
    // The default, prefer: this server takes TCP over TLS only.
    assert_eq!(
        connect_in_home(&format!("{base} sslmode=prefer"), home.path()),
        Ok(true)
    );
    assert_eq!(
        connect_in_home(&format!("{base} sslmode=require"), home.path()),
        Ok(true)
    );
    let ca = ca_file();
    assert_eq!(
        connect_in_home(
            &format!("{base} sslmode=verify-ca sslrootcert={ca}"),
            home.path()
        ),
        Ok(true)
    );
    // verify-full has no host name to check: refused before connecting.
    let e = connect_in_home(
        &format!("{base} sslmode=verify-full sslrootcert={ca}"),
        home.path(),
    )
    .unwrap_err();
    assert!(
        e.contains("sslmode=verify-full") && e.contains("only hostaddr"),
        "{e}"
    );
    // The service opens over it too.
    if std::env::var_os("PGSSLMODE").is_none() && std::env::var_os("HOME").is_some() {
        open(&base).expect("hostaddr only, prefer");
    }
}

#[test]
fn require_against_a_server_without_tls_is_refused_clearly() {
    let url = format!("{}&sslmode=require", pg::shared_db());
    let e = open(&url).map(|_| ()).unwrap_err();
    assert!(e.contains("the server does not offer TLS"), "{e}");
    assert!(e.contains("sslmode=require"), "{e}");
    assert!(e.contains("cannot connect to postgres 127.0.0.1:"), "{e}");
    // The default (prefer) still connects to it, in plain text.
    open(&pg::shared_db()).expect("no sslmode: prefer");
}

#[test]
fn scram_password_over_verify_full_with_channel_binding() {
    let port = with_tls(|c| {
        c.psql(
            "postgres",
            "DO $$ BEGIN CREATE ROLE ledger LOGIN PASSWORD 'pw-ledger'; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        )
        .unwrap();
        c.psql("postgres", "CREATE DATABASE tls_scram OWNER ledger")
            .unwrap();
        c.port()
    });
    let url = format!(
        "postgres://ledger:pw-ledger@localhost:{port}/tls_scram?sslmode=verify-full&sslrootcert={}&channel_binding=require",
        ca_file()
    );
    let log = open(&url).expect("SCRAM-SHA-256-PLUS over verify-full");
    assert_eq!(log.head().seq, 0);
    let bad = url.replace("pw-ledger", "wrong");
    let e = open(&bad).map(|_| ()).unwrap_err();
    assert!(!e.contains("wrong"), "{e}");
}

/// One `isc-ledger serve` on `store` (lease mode: every PostgreSQL node).
struct Node {
    child: Child,
    url: String,
}

impl Node {
    fn spawn(store: &str, dir: &std::path::Path) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_isc-ledger"))
            .args(["serve", "--listen", "127.0.0.1:0", "--lease", "1s"])
            .args(["--store", store, "--data"])
            .arg(dir.join("node"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn isc-ledger serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix("listening on ") {
                        break a.trim().to_owned();
                    }
                }
                _ => panic!("serve exited before listening"),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Node {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// SIGTERM (a clean stop hands the lease over) and wait.
    fn stop(&mut self) {
        // SAFETY: kill(2) of our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens `account` on the node once it is the writer; the code answered.
async fn open_account(url: &str, account: &str) -> tonic::Code {
    let mut c = common::ledger(url).await;
    let t0 = Instant::now();
    loop {
        let code = match c.open_account(common::open(account)).await {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        if code != tonic::Code::Unavailable || t0.elapsed() > Duration::from_secs(30) {
            return code;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_appends_and_a_restart_replays_over_verify_full() {
    let (db, port) = tls_db("tls_service");
    let store = format!(
        "postgres://postgres@localhost:{port}/{db}?sslmode=verify-full&sslrootcert={}",
        ca_file()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::spawn(&store, dir.path());
    assert_eq!(open_account(&node.url, "acme").await, tonic::Code::Ok);
    // Writer, readers, the lease's and the listener's connections: all TLS.
    let counts = with_tls(|c| {
        c.psql(
            &db,
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE 'isc-ledger%' \
             AND a.datname = current_database()",
        )
        .unwrap()
    });
    let counts: Vec<&str> = counts.trim().split('|').collect();
    assert_eq!(counts[0], counts[1], "{counts:?}");
    assert!(counts[0].parse::<u32>().unwrap() >= 4, "{counts:?}");
    node.stop();

    // A restart replays the log over the same URL: the account is there.
    let mut node = Node::spawn(&store, dir.path());
    assert_eq!(
        open_account(&node.url, "acme").await,
        tonic::Code::AlreadyExists
    );
    assert_eq!(open_account(&node.url, "beta").await, tonic::Code::Ok);
    node.stop();

    // The offline tools on the same URL.
    let out = Command::new(env!("CARGO_BIN_EXE_isc-ledger"))
        .args(["verify", "--store", &store])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "verify over TLS:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = dir.path().join("copy");
    let out = Command::new(env!("CARGO_BIN_EXE_isc-ledger"))
        .args(["copy", "--from", &store, "--to"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "copy over TLS:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_streaming_standby_of_a_tls_cluster_replicates_over_tls() {
    let primary =
        TempCluster::start_tls(&[("max_connections", "20")]).unwrap_or_else(|e| panic!("{e}"));
    let standby = primary.add_standby(false).unwrap_or_else(|e| panic!("{e}"));
    let ssl = primary
        .psql(
            "postgres",
            "SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)",
        )
        .unwrap();
    assert_eq!(ssl.trim(), "t");
    // The standby serves TLS with the same certificate.
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        standby.port(),
        primary.ca_file().unwrap().display()
    );
    let e = open(&url).map(|_| ()).unwrap_err();
    // A standby is read-only: the schema cannot be created, but the
    // connection (verify-full) was made.
    assert!(e.contains("read-only"), "{e}");
}
