//! Writer failover on real processes and a real throwaway PostgreSQL
//! cluster (system clock, short leases): every acknowledged top-up is
//! checked afterwards (its retry returns the very first receipt) and
//! `isc-ledger verify --store` passes at the end.
//!
//! 1. SIGKILL of the writer node under concurrent load: a standby takes
//!    over (time measured), nothing acknowledged is lost.
//! 2. SIGSTOP of the writer past its lease, a standby takes over and
//!    writes, SIGCONT: none of the old writer's pending commits lands, it
//!    steps down and serves reads as a standby, the log has no fork.
//! 3. PostgreSQL primary + synchronous streaming standby: SIGKILL of the
//!    primary, promotion of the standby; the service reconnects through
//!    its multi-host URL and nothing acknowledged is lost.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pg::PgCluster;
use common::*;
use isc_ledger::api::pb;
use isc_ledger::api::pb::ledger_client::LedgerClient;
use tonic::transport::Channel;

const LEASE: &str = "1s";

/// These tests run one at a time: each runs a cluster, two nodes and their
/// clients, and their leases assume the machine is not starved (2 cores).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The binary under test; `ISC_LEDGER_BIN` (e.g. a release build) for
/// the measurement below.
fn bin() -> String {
    std::env::var("ISC_LEDGER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_isc-ledger").into())
}

/// One `isc-ledger serve` process.
struct Node {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Node {
    fn spawn(store: &str, logs: &std::path::Path, name: &str) -> Node {
        let log = logs.join(format!("{name}.log"));
        let mut child = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--lease", LEASE])
            .args(["--min-seq-wait", "3s", "--store", store])
            // Every node of one ledger signs with the same key file.
            .arg("--data")
            .arg(logs.join("node-dir"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn isc-ledger serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix("listening on ") {
                        break a.trim().to_string();
                    }
                }
                _ => panic!(
                    "{name} exited before listening:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Node {
            child,
            url: format!("http://{addr}"),
            log,
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) of our own child.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.kill();
    }
}

async fn client(url: &str) -> LedgerClient<Channel> {
    let ch = Channel::from_shared(url.to_string())
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    LedgerClient::new(ch)
}

/// Waits until `url` accepts a write (it is the writer); returns the time.
async fn wait_writer(url: &str, account: &str, within: Duration) -> Duration {
    let t0 = Instant::now();
    let mut c = client(url).await;
    loop {
        match c.open_account(open(account)).await {
            Ok(_) => return t0.elapsed(),
            Err(s) if s.code() == tonic::Code::AlreadyExists => return t0.elapsed(),
            Err(s) => {
                assert!(
                    t0.elapsed() < within,
                    "{url} did not become the writer: {s:?}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Acks = Arc<Mutex<BTreeMap<String, pb::Receipt>>>;

/// Clients topping up `account` with fresh keys, each sending to the
/// nodes in turn: a refused or failed call is retried with the same key on
/// the next node (safe: keys are idempotent) until acknowledged.
fn load(
    urls: Vec<String>,
    account: &str,
    clients: usize,
    acks: Acks,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|t| {
            let urls = urls.clone();
            let acks = acks.clone();
            let stop = stop.clone();
            let account = account.to_string();
            tokio::spawn(async move {
                let mut cs = Vec::new();
                for u in &urls {
                    cs.push(client(u).await);
                }
                let mut at = 0usize;
                for n in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let key = format!("KEY-{account}-{t}-{n}");
                    let until = Instant::now() + Duration::from_secs(30);
                    loop {
                        match cs[at].top_up(topup(&account, &key, "1")).await {
                            Ok(r) => {
                                acks.lock().unwrap().insert(key, r.into_inner());
                                break;
                            }
                            Err(s) => {
                                assert!(
                                    matches!(
                                        s.code(),
                                        tonic::Code::Unavailable
                                            | tonic::Code::Unknown
                                            | tonic::Code::Cancelled
                                            | tonic::Code::DeadlineExceeded
                                    ),
                                    "top-up {key}: {s:?}"
                                );
                                assert!(Instant::now() < until, "top-up {key} never acknowledged");
                                at = (at + 1) % cs.len();
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                }
            })
        })
        .collect()
}

async fn wait_acks(acks: &Acks, n: usize, within: Duration) {
    let t0 = Instant::now();
    while acks.lock().unwrap().len() < n {
        assert!(
            t0.elapsed() < within,
            "only {} acks",
            acks.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every acknowledged top-up, retried on `url`, returns its first receipt.
async fn check_acks(url: &str, account: &str, acks: &BTreeMap<String, pb::Receipt>) {
    let mut c = client(url).await;
    for (key, receipt) in acks {
        let again = c
            .top_up(topup(account, key, "1"))
            .await
            .unwrap_or_else(|s| panic!("retry of {key}: {s:?}"))
            .into_inner();
        // The first receipt's seq, at and balance; the tree head is the
        // newest at the retry (spec §13).
        assert_eq!(
            (again.seq, again.at, &again.balance),
            (receipt.seq, receipt.at, &receipt.balance),
            "acknowledged top-up {key} lost or changed"
        );
    }
}

/// The activation keys of `account`'s top-ups in the log.
async fn keys_in_log(url: &str, account: &str, min_seq: u64) -> BTreeSet<String> {
    let mut c = client(url).await;
    c.get_account(pb::GetAccountRequest {
        account_id: account.into(),
        at: 0,
        min_seq,
    })
    .await
    .unwrap();
    let st = c
        .get_statement(pb::GetStatementRequest {
            account_id: account.into(),
            from: 0,
            to: 4_000_000_000,
        })
        .await
        .unwrap()
        .into_inner();
    st.lines
        .into_iter()
        .filter(|l| !l.activation_key.is_empty())
        .map(|l| l.activation_key)
        .collect()
}

fn verify(store: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_isc-ledger"))
        .args(["verify", "--store", store])
        .output()
        .expect("run verify");
    assert!(
        out.status.success(),
        "verify failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stop_flag() -> Arc<std::sync::atomic::AtomicBool> {
    Arc::new(std::sync::atomic::AtomicBool::new(false))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_writer_under_load_a_standby_takes_over_nothing_lost() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let pg = PgCluster::start();
    let logs = tempfile::tempdir().unwrap();
    let store = pg.primary.conninfo();
    let mut a = Node::spawn(&store, logs.path(), "a");
    wait_writer(&a.url, "kill", Duration::from_secs(10)).await;
    let b = Node::spawn(&store, logs.path(), "b");
    let acks: Acks = Arc::default();
    let stop = stop_flag();
    let tasks = load(
        vec![a.url.clone(), b.url.clone()],
        "kill",
        8,
        acks.clone(),
        stop.clone(),
    );
    wait_acks(&acks, 300, Duration::from_secs(20)).await;
    let before = acks.lock().unwrap().len();
    a.kill();
    // The takeover: from the SIGKILL to b's first acknowledged write.
    let takeover = wait_writer(&b.url, "kill-b", Duration::from_secs(15)).await;
    eprintln!(
        "takeover after SIGKILL of the writer: {} ms (lease {LEASE})",
        takeover.as_millis()
    );
    wait_acks(&acks, before + 300, Duration::from_secs(20)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    check_acks(&b.url, "kill", &acks).await;
    let max_seq = acks.values().map(|r| r.seq).max().unwrap();
    let keys = keys_in_log(&b.url, "kill", max_seq).await;
    assert!(acks.keys().all(|k| keys.contains(k)));
    assert!(takeover < Duration::from_secs(10), "{}", b.log());
    drop(b);
    verify(&store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_stopped_past_its_lease_steps_down_and_none_of_its_pending_commits_lands() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let pg = PgCluster::start();
    let logs = tempfile::tempdir().unwrap();
    let store = pg.primary.conninfo();
    let a = Node::spawn(&store, logs.path(), "a");
    wait_writer(&a.url, "stop", Duration::from_secs(10)).await;
    let b = Node::spawn(&store, logs.path(), "b");
    // Load on the writer only: its clients wait on it while it is stopped.
    let acks: Acks = Arc::default();
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = stop_flag();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (url, acks, refused, stop) =
            (a.url.clone(), acks.clone(), refused.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = client(&url).await;
            for n in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let key = format!("KEY-stop-{t}-{n}");
                match c.top_up(topup("stop", &key, "1")).await {
                    Ok(r) => {
                        acks.lock().unwrap().insert(key, r.into_inner());
                    }
                    Err(s) => {
                        assert_eq!(s.code(), tonic::Code::Unavailable, "{key}: {s:?}");
                        refused.lock().unwrap().push(key);
                        // Only after SIGCONT: the old writer refuses now.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    wait_acks(&acks, 200, Duration::from_secs(20)).await;
    a.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    let acked_before_stop = acks.lock().unwrap().len();
    // b takes over once a's lease expired, and writes.
    let took = wait_writer(&b.url, "stop-b", Duration::from_secs(10)).await;
    eprintln!(
        "takeover after SIGSTOP of the writer: {} ms (lease {LEASE})",
        took.as_millis()
    );
    let mut cb = client(&b.url).await;
    let mut b_acks = BTreeMap::new();
    for n in 0..50 {
        let key = format!("KEY-stop-b-{n}");
        let r = cb
            .top_up(topup("stop", &key, "1"))
            .await
            .unwrap()
            .into_inner();
        b_acks.insert(key, r);
    }
    // a stays stopped past its whole lease (b may have taken over sooner:
    // a's lease was renewed some time before the stop).
    let past_lease = Duration::from_millis(1500);
    if let Some(left) = past_lease.checked_sub(stopped.elapsed()) {
        tokio::time::sleep(left).await;
    }
    a.signal(libc::SIGCONT);
    // The old writer answers what it had pending (UNAVAILABLE) and refuses
    // new writes, naming the writer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ca = client(&a.url).await;
    let msg = code_of(
        ca.top_up(topup("stop", "KEY-stop-late", "1")).await,
        tonic::Code::Unavailable,
    );
    assert!(msg.contains(&b.url), "{msg}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    let refused = std::mem::take(&mut *refused.lock().unwrap());
    // Nothing was acknowledged by a while it was stopped and deposed
    // except what committed before b's epoch (found by the checks below).
    assert!(acks.len() >= acked_before_stop);
    // a serves reads as a standby: it has b's records.
    let b_max = b_acks.values().map(|r| r.seq).max().unwrap();
    let keys_a = keys_in_log(&a.url, "stop", b_max).await;
    let keys = keys_in_log(&b.url, "stop", b_max).await;
    assert_eq!(keys_a, keys, "the standby's reads equal the writer's");
    for k in &refused {
        assert!(!keys.contains(k), "refused top-up {k} landed in the log");
    }
    for k in &keys {
        assert!(
            acks.contains_key(k) || b_acks.contains_key(k),
            "{k} landed unacknowledged"
        );
    }
    check_acks(&b.url, "stop", &acks).await;
    check_acks(&b.url, "stop", &b_acks).await;
    let log = a.log();
    assert!(log.contains("stepping down to standby"), "{log}");
    drop((a, b));
    verify(&store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_failover_to_a_synchronous_standby_loses_nothing_acknowledged() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut pg = PgCluster::start_with_standby(true);
    let logs = tempfile::tempdir().unwrap();
    let store = pg.multi_host_url();
    let a = Node::spawn(&store, logs.path(), "a");
    wait_writer(&a.url, "db", Duration::from_secs(10)).await;
    let acks: Acks = Arc::default();
    let stop = stop_flag();
    let tasks = load(vec![a.url.clone()], "db", 8, acks.clone(), stop.clone());
    wait_acks(&acks, 300, Duration::from_secs(20)).await;
    pg.primary.kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg.standby.as_ref().unwrap().promote().expect("promote");
    let before = acks.lock().unwrap().len();
    wait_acks(&acks, before + 300, Duration::from_secs(30)).await;
    eprintln!(
        "writes again {} ms after SIGKILL of the primary",
        killed.elapsed().as_millis()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    check_acks(&a.url, "db", &acks).await;
    let log = a.log();
    assert!(log.contains("reconnected to PostgreSQL"), "{log}");
    drop(a);
    verify(&store);
}

/// Standby lag under load (a measurement, not a check: `cargo test --test
/// pg_failover -- --ignored --nocapture`; `ISC_LEDGER_BIN` picks the
/// binary). 64 clients top up on the writer; every 10 ms a probe tops up
/// on the writer and reads it back on the standby with `min_seq`: the time
/// from the writer's receipt to the standby's answer is the lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn standby_lag_under_load() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let pg = PgCluster::start();
    let logs = tempfile::tempdir().unwrap();
    let store = pg.primary.conninfo();
    let a = Node::spawn(&store, logs.path(), "a");
    wait_writer(&a.url, "lag", Duration::from_secs(10)).await;
    let b = Node::spawn(&store, logs.path(), "b");
    let acks: Acks = Arc::default();
    let stop = stop_flag();
    let tasks = load(vec![a.url.clone()], "lag", 64, acks.clone(), stop.clone());
    wait_acks(&acks, 1000, Duration::from_secs(30)).await;
    let (mut ca, mut cb) = (client(&a.url).await, client(&b.url).await);
    let mut lags = Vec::new();
    let t0 = Instant::now();
    let n0 = acks.lock().unwrap().len();
    for n in 0.. {
        if t0.elapsed() > Duration::from_secs(10) {
            break;
        }
        let r = ca
            .top_up(topup("lag", &format!("KEY-probe-{n}"), "1"))
            .await
            .unwrap()
            .into_inner();
        let acked = Instant::now();
        cb.get_account(pb::GetAccountRequest {
            account_id: "lag".into(),
            at: 0,
            min_seq: r.seq,
        })
        .await
        .unwrap();
        lags.push(acked.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rate = (acks.lock().unwrap().len() - n0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    lags.sort();
    let pct = |p: f64| lags[((lags.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    eprintln!(
        "standby lag over {} probes at {rate:.0} top-ups/s (64 clients): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lags.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_serves_reads_and_watch_with_the_writers_notices() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let pg = PgCluster::start();
    let logs = tempfile::tempdir().unwrap();
    let store = pg.primary.conninfo();
    let a = Node::spawn(&store, logs.path(), "a");
    wait_writer(&a.url, "w", Duration::from_secs(10)).await;
    let b = Node::spawn(&store, logs.path(), "b");
    let (mut ca, mut cb) = (client(&a.url).await, client(&b.url).await);
    ca.publish_price_list(price_list(1, 0, "2.628"))
        .await
        .unwrap();
    let r = ca
        .top_up(topup("w", "KEY-watch-1", "0.2"))
        .await
        .unwrap()
        .into_inner();
    // The standby has the account once it applied the top-up's seq.
    let mut get = get("w", 0);
    get.min_seq = r.seq;
    let v = cb.get_account(get.clone()).await.unwrap().into_inner();
    assert_eq!(v.balance, "0.2");
    let mut stream = cb
        .watch(pb::WatchRequest {
            account_id: "w".into(),
            since: 0,
        })
        .await
        .unwrap()
        .into_inner();
    // A configuration on the writer leaves ~2.3 days of runtime: the 30 d
    // and 7 d reminders, delivered by the standby from its own apply.
    let t0 = Instant::now();
    let r = ca
        .change_config(config("w", "p", 1))
        .await
        .unwrap()
        .into_inner();
    let mut thresholds = Vec::new();
    while thresholds.len() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(3), stream.message())
            .await
            .expect("the standby streams the writer's notices")
            .unwrap()
            .unwrap();
        assert_eq!(n.kind, pb::notice::Kind::Reminder as i32);
        thresholds.push(n.threshold_seconds);
    }
    assert!(t0.elapsed() < Duration::from_secs(2));
    thresholds.sort();
    assert_eq!(thresholds, [604_800, 2_592_000]);
    // Reads on the standby equal the writer's at the same seq.
    get.min_seq = r.seq;
    let vb = cb.get_account(get.clone()).await.unwrap().into_inner();
    let va = ca.get_account(get.clone()).await.unwrap().into_inner();
    assert_eq!(
        (vb.balance.clone(), vb.monthly_rate.clone()),
        (va.balance, va.monthly_rate)
    );
    // Past the standby's bound: UNAVAILABLE naming the seq it is at.
    get.min_seq = r.seq + 1000;
    let msg = code_of(cb.get_account(get).await, tonic::Code::Unavailable);
    assert!(msg.contains(&format!("up to seq {}", r.seq)), "{msg}");
    // A write on the standby is refused, naming the writer.
    let msg = code_of(
        cb.top_up(topup("w", "KEY-watch-2", "1")).await,
        tonic::Code::Unavailable,
    );
    assert!(msg.contains(&a.url), "{msg}");
}
