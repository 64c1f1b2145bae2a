//! `isc-ledger bench-load`: N concurrent gRPC clients issuing a realistic mix
//! of config changes, top-ups and reads against a running server for a
//! bounded time; prints durable acknowledged commands/s and latency
//! percentiles. Each client has its own HTTP/2 connection.
//!
//! With `--store` (repeatable) it starts the server itself, one store after
//! the other — a directory, a PostgreSQL URL, or `sled-temp` / `pg-temp`
//! for a fresh temp dir / a throwaway PostgreSQL cluster of its own — and
//! prints the figures side by side: the same load on each backend.
//!
//! With `--console` the console and `/metrics` are loaded alongside the
//! gRPC clients: the page is reloaded every `--console-every` by each of
//! `--console-pages` loops (an operator's open browser tabs; `0s`: back to
//! back, a stress figure) and `/metrics` is scraped every second (a
//! Prometheus scraper), their latencies reported too. With `--store` the
//! bench then starts each server twice per round, once without HTTP
//! listeners (plain) and once with the console and `/metrics` loaded
//! (busy), `--rounds` times in alternation, and prints the difference of
//! the means: the writer's cost of the console.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tonic::transport::Channel;

use super::client::{Bearer, ClientOpts};
use super::parse_duration_s;
use crate::api::pb;
use crate::api::pb::ledger_client::LedgerClient;

/// Options of the load generator.
#[derive(Debug, Clone, Args)]
pub struct BenchLoadArgs {
    /// Concurrent clients (one connection and one account each).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// How long to run, e.g. 10s.
    #[arg(long, default_value = "10s")]
    pub duration: String,
    /// Percentage of operations that are reads (GetAccount); the rest are
    /// split evenly between config changes and top-ups.
    #[arg(long, default_value_t = 20)]
    pub read_percent: u32,
    /// License type rented by the bench PBXs (published at version
    /// `--price-version` if no list is in effect yet).
    #[arg(long, default_value = "PBX-Port13")]
    pub license_type: String,
    /// Version of the price list the bench publishes if none exists.
    #[arg(long, default_value_t = 1)]
    pub price_version: u32,
    /// Meanwhile reload this console page (with the client's --token as
    /// bearer): a URL against --server, e.g. http://127.0.0.1:8080/accounts;
    /// with --store a path, e.g. /accounts, on the console the bench starts
    /// beside each server (plain/busy pairs, see --rounds; /metrics is then
    /// scraped every second too). `{account}` stands for an account the
    /// load writes to, e.g. /accounts/{account} (its page and chart).
    #[arg(long, value_name = "URL|PATH")]
    pub console: Option<String>,
    /// Pace of each reload loop: one reload every DURATION (1s: an open
    /// browser page an operator keeps reloading); 0s reloads back to back,
    /// one request at a time (a stress figure, not an operator's load).
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub console_every: String,
    /// Reload loops at once (open pages), each at --console-every.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub console_pages: usize,
    /// Meanwhile scrape this metrics URL every second (a Prometheus
    /// scraper), e.g. http://127.0.0.1:9464/metrics.
    #[arg(long, value_name = "URL")]
    pub metrics: Option<String>,
    /// With --store and --console: how many plain/busy pairs to run per
    /// store, alternated (plain, busy, plain, busy, ...), each on a fresh
    /// server (and a fresh store for sled-temp/pg-temp).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub rounds: usize,
    /// Start a server on this store and load it (instead of `--server`):
    /// DIR, a postgres:// URL, `sled-temp` or `pg-temp`. Repeat to compare
    /// stores under the same load. `ISC_BENCH_QUICK=1` shortens each run to 2 s.
    #[arg(long, value_name = "DIR|URL|sled-temp|pg-temp")]
    pub store: Vec<String>,
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url:?}: only http:// URLs"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Ok((host.to_owned(), path.to_owned()))
}

/// One HTTP/1.1 GET (a new connection each time, as a reload may be);
/// returns the status code.
async fn http_get(host: &str, path: &str, bearer: Option<&str>) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(host).await?;
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).to_string();
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("GET {path}: not an HTTP answer"))
}

/// What a side load (console reloads, scrapes) did.
#[derive(Debug, Default)]
struct SideTally {
    ok: u64,
    failed: u64,
    us: Vec<u32>,
}

/// What a side load measured, for the summary.
#[derive(Debug, Clone, Default)]
pub struct SideFigures {
    /// Answers with 200.
    pub ok: u64,
    /// Other answers and failed connections.
    pub failed: u64,
    /// Latency percentiles (ms): p50, p99.
    pub ms: [f64; 2],
}

impl SideTally {
    fn merge(mut self, o: SideTally) -> SideTally {
        self.ok += o.ok;
        self.failed += o.failed;
        self.us.extend(o.us);
        self.us.sort_unstable();
        self
    }

    fn figures(&self) -> SideFigures {
        SideFigures {
            ok: self.ok,
            failed: self.failed,
            ms: [pct(&self.us, 0.50), pct(&self.us, 0.99)],
        }
    }
}

/// Repeats GETs of `url` until `deadline`, every `period` (or back to back).
async fn side_load(
    url: String,
    bearer: Option<String>,
    period: Option<Duration>,
    deadline: Instant,
) -> anyhow::Result<SideTally> {
    let (host, path) = split_url(&url)?;
    let mut t = SideTally::default();
    while Instant::now() < deadline {
        let start = Instant::now();
        match http_get(&host, &path, bearer.as_deref()).await {
            Ok(200) => t.ok += 1,
            _ => t.failed += 1,
        }
        t.us.push(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX));
        if let Some(p) = period {
            tokio::time::sleep(p.saturating_sub(start.elapsed())).await;
        }
    }
    t.us.sort_unstable();
    Ok(t)
}

/// What one client measured.
#[derive(Debug, Default)]
struct Tally {
    write_us: Vec<u32>,
    read_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

type Client = LedgerClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

async fn connect(opts: &ClientOpts) -> anyhow::Result<Client> {
    opts.ledger().await
}

/// A tiny deterministic PRNG (xorshift) so runs are reproducible per client.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn setup(opts: &ClientOpts, a: &BenchLoadArgs) -> anyhow::Result<()> {
    let mut c = connect(opts).await?;
    let req = pb::PublishPriceListRequest {
        version: a.price_version,
        effective_at: 0,
        entries: vec![pb::PriceEntry {
            license_type: a.license_type.clone(),
            tiers: vec![pb::Tier {
                from_qty: 1,
                monthly_price: "1.5".into(),
            }],
        }],
        catalogue_toml: String::new(),
        ..Default::default()
    };
    // A node that just started on PostgreSQL answers UNAVAILABLE until it
    // holds the writer lease: wait for it (bounded).
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        match c.publish_price_list(req.clone()).await {
            Ok(_) => return Ok(()),
            // A list already exists (a previous run): use it.
            Err(s) if s.code() == tonic::Code::FailedPrecondition => return Ok(()),
            Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => return Err(anyhow::anyhow!("cannot publish the bench price list: {s}")),
        }
    }
}

async fn run_client(
    mut c: Client,
    a: BenchLoadArgs,
    run: String,
    i: usize,
    deadline: Instant,
) -> anyhow::Result<Tally> {
    let account_id = format!("bench-{run}-{i}");
    let pbx_id = format!("pbx-{run}-{i}");
    c.open_account(pb::OpenAccountRequest {
        account_id: account_id.clone(),
    })
    .await
    .with_context(|| format!("open {account_id}"))?;
    c.top_up(pb::TopUpRequest {
        account_id: account_id.clone(),
        activation_key: format!("seed-{run}-{i}"),
        amount: "1000000".into(),
    })
    .await
    .with_context(|| format!("seed top-up of {account_id}"))?;
    let mut t = Tally::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        n += 1;
        let roll = (rng.next() % 100) as u32;
        let start = Instant::now();
        let (res, is_read) = if roll < a.read_percent {
            let r = c
                .get_account(pb::GetAccountRequest {
                    account_id: account_id.clone(),
                    at: 0,
                    min_seq: 0,
                })
                .await
                .map(|_| ());
            (r, true)
        } else if roll.is_multiple_of(2) {
            let quantity = 10 + (rng.next() % 50) as u32;
            let r = c
                .change_config(pb::ChangeConfigRequest {
                    account_id: account_id.clone(),
                    pbx_id: pbx_id.clone(),
                    licenses: vec![pb::LicenseLine {
                        license_type: a.license_type.clone(),
                        quantity,
                    }],
                    firmware_major: 13,
                    hosting: pb::Hosting::Gateway as i32,
                })
                .await
                .map(|_| ());
            (r, false)
        } else {
            let r = c
                .top_up(pb::TopUpRequest {
                    account_id: account_id.clone(),
                    activation_key: format!("k-{run}-{i}-{n}"),
                    amount: "0.5".into(),
                })
                .await
                .map(|_| ());
            (r, false)
        };
        let us = u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX);
        match res {
            Ok(()) if is_read => t.read_us.push(us),
            Ok(()) => t.write_us.push(us),
            Err(s) => {
                t.errors += 1;
                if t.first_error.is_none() {
                    t.first_error = Some(format!("{:?}: {}", s.code(), s.message()));
                }
            }
        }
    }
    Ok(t)
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct LoadFigures {
    /// Durable acknowledged commands per second.
    pub writes_per_s: f64,
    /// Write latency percentiles (ms): p50, p99, p999.
    pub write_ms: [f64; 3],
    /// Reads per second.
    pub reads_per_s: f64,
    /// Read latency p99 (ms).
    pub read_p99_ms: f64,
    /// Failed calls.
    pub errors: u64,
    /// Console reloads, when loaded.
    pub console: Option<SideFigures>,
    /// Metrics scrapes, when loaded.
    pub scrapes: Option<SideFigures>,
}

/// Runs the load (against `--server`, or a server of its own per `--store`)
/// and prints the figures.
pub async fn run(opts: &ClientOpts, a: BenchLoadArgs) -> anyhow::Result<()> {
    if a.store.is_empty() {
        return run_load(opts, &a, a.console.clone(), a.metrics.clone())
            .await
            .map(|_| ());
    }
    if a.console.is_some() {
        return run_console_pairs(opts, &a).await;
    }
    let mut rows = Vec::new();
    for store in &a.store {
        let (label, f) = run_on_store(opts, &a, store, false).await?;
        rows.push((label, f));
    }
    println!("\nsame load, {} clients:", a.clients);
    println!(
        "  {:<34} {:>12} {:>8} {:>8} {:>8} {:>10}",
        "store", "durable/s", "p50 ms", "p99 ms", "p999 ms", "reads/s"
    );
    for (label, f) in &rows {
        println!(
            "  {:<34} {:>12.0} {:>8.2} {:>8.2} {:>8.2} {:>10.0}",
            label, f.writes_per_s, f.write_ms[0], f.write_ms[1], f.write_ms[2], f.reads_per_s
        );
    }
    Ok(())
}

/// One run on a server of its own on `store`; `busy`: with the console and
/// `/metrics` listening and loaded (`--console` is then a path).
async fn run_on_store(
    opts: &ClientOpts,
    a: &BenchLoadArgs,
    store: &str,
    busy: bool,
) -> anyhow::Result<(String, LoadFigures)> {
    let server = BenchServer::start(store, busy).await?;
    let o = ClientOpts {
        server: server.url.clone(),
        ..opts.clone()
    };
    let (console, metrics) = match (&server.http, busy) {
        (Some((console, metrics)), true) => (
            a.console
                .as_deref()
                .map(|p| format!("{console}{}", p.strip_prefix('/').unwrap_or(p))),
            Some(metrics.clone()),
        ),
        _ => (None, None),
    };
    let res = run_load(&o, a, console, metrics).await;
    let label = server.label.clone();
    server.stop().await;
    Ok((label, res?))
}

/// `--store … --console PATH`: plain and busy runs in alternation, then the
/// difference of the means.
async fn run_console_pairs(opts: &ClientOpts, a: &BenchLoadArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for (i, store) in a.store.iter().enumerate() {
        for round in 1..=a.rounds.max(1) {
            for busy in [false, true] {
                let (label, f) = run_on_store(opts, a, store, busy).await?;
                rows.push((i, label, round, busy, f));
            }
        }
    }
    let pace = match super::parse_wait(&a.console_every)? {
        d if d.is_zero() => "back to back".to_owned(),
        d => format!("every {d:?}"),
    };
    println!(
        "\nsame load, {} clients; busy: {} page(s) {} reloaded {pace}, /metrics scraped every 1s:",
        a.clients,
        a.console_pages.max(1),
        a.console.as_deref().unwrap_or("")
    );
    println!(
        "  {:<30} {:>5} {:>5} {:>10} {:>7} {:>7} {:>8} {:>16} {:>16}",
        "store",
        "round",
        "run",
        "durable/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "console p50/p99",
        "scrape p50/p99"
    );
    let side = |s: &Option<SideFigures>| {
        s.as_ref().map_or("-".to_owned(), |s| {
            format!("{:.1}/{:.1} ms", s.ms[0], s.ms[1])
        })
    };
    for (_, label, round, busy, f) in &rows {
        println!(
            "  {:<30} {:>5} {:>5} {:>10.0} {:>7.2} {:>7.2} {:>8} {:>16} {:>16}",
            label,
            round,
            if *busy { "busy" } else { "plain" },
            f.writes_per_s,
            f.write_ms[0],
            f.write_ms[1],
            f.errors,
            side(&f.console),
            side(&f.scrapes)
        );
    }
    for i in 0..a.store.len() {
        let mean = |busy: bool| {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| r.0 == i && r.3 == busy)
                .map(|r| r.4.writes_per_s)
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let label = rows.iter().find(|r| r.0 == i).map_or("", |r| r.1.as_str());
        let (plain, busy) = (mean(false), mean(true));
        println!(
            "  {label}: plain mean {plain:.0}/s, busy mean {busy:.0}/s: {:+.1} %",
            if plain > 0.0 {
                (busy / plain - 1.0) * 100.0
            } else {
                0.0
            }
        );
    }
    Ok(())
}

/// A `serve` process on a store, for the duration of one run.
struct BenchServer {
    label: String,
    url: String,
    /// With HTTP listeners: the console's base URL (`http://ADDR/`) and the
    /// metrics URL.
    http: Option<(String, String)>,
    child: std::process::Child,
    _dir: Option<tempfile::TempDir>,
    _cluster: Option<crate::store::pg_temp::TempCluster>,
}

impl BenchServer {
    async fn start(store: &str, http: bool) -> anyhow::Result<BenchServer> {
        let mut dir = None;
        let mut cluster = None;
        let (label, args): (String, Vec<String>) = match store {
            "sled-temp" => {
                let d = tempfile::tempdir().context("temp dir")?;
                let path = d.path().display().to_string();
                dir = Some(d);
                ("sled (temp dir)".into(), vec!["--data".into(), path])
            }
            "pg-temp" => {
                let c = tokio::task::spawn_blocking(crate::store::pg_temp::TempCluster::start)
                    .await?
                    .context("throwaway PostgreSQL cluster")?;
                let url = c.url("postgres");
                // The node's own directory (its signing key).
                let d = tempfile::tempdir().context("temp dir")?;
                let node_dir = d.path().display().to_string();
                dir = Some(d);
                cluster = Some(c);
                (
                    "postgres (throwaway cluster)".into(),
                    vec!["--store".into(), url, "--data".into(), node_dir],
                )
            }
            other => match crate::store::StoreLocation::parse(other) {
                crate::store::StoreLocation::Dir(d) => (
                    format!("sled {}", d.display()),
                    vec!["--data".into(), d.display().to_string()],
                ),
                loc @ crate::store::StoreLocation::Postgres(_) => {
                    (loc.describe(), vec!["--store".into(), other.to_owned()])
                }
            },
        };
        let exe = std::env::current_exe().context("cannot find the isc-ledger binary")?;
        let mut child = std::process::Command::new(exe)
            .arg("serve")
            .args(&args)
            .args(["--listen", "127.0.0.1:0"])
            .args(if http {
                &[
                    "--http-listen",
                    "127.0.0.1:0",
                    "--metrics-listen",
                    "127.0.0.1:0",
                ][..]
            } else {
                &[][..]
            })
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .context("cannot start isc-ledger serve")?;
        let stdout = child.stdout.take().context("server stdout")?;
        // Read the address lines, then keep draining stdout so the server
        // never blocks on a full pipe (a thread: it ends with the server).
        // `serve` prints the gRPC line first, then those of the listeners.
        let (tx, rx) = tokio::sync::oneshot::channel::<Option<[String; 3]>>();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut tx = Some(tx);
            let mut addrs: [String; 3] = Default::default();
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                for (i, prefix) in ["listening on ", "console on ", "metrics on "]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(a) = line.strip_prefix(prefix) {
                        addrs[i] = a.trim().to_owned();
                    }
                }
                let ready = !addrs[0].is_empty()
                    && (!http || (!addrs[1].is_empty() && !addrs[2].is_empty()));
                if ready {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Some(addrs.clone()));
                    }
                }
            }
            if let Some(tx) = tx.take() {
                let _ = tx.send(None);
            }
        });
        let [addr, console, metrics] =
            match tokio::time::timeout(Duration::from_secs(120), rx).await {
                Ok(Ok(Some(a))) => a,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    anyhow::bail!("the server on {label} did not start (see its messages above)");
                }
            };
        Ok(BenchServer {
            label,
            url: format!("http://{addr}"),
            http: http.then_some((console, metrics)),
            child,
            _dir: dir,
            _cluster: cluster,
        })
    }

    /// SIGTERM (a clean stop), then wait.
    async fn stop(mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let mut child = self.child;
        let cluster = self._cluster.take();
        let _ = tokio::task::spawn_blocking(move || {
            let _ = child.wait();
            drop(cluster);
        })
        .await;
    }
}

/// One run of the load against `opts.server`.
async fn run_load(
    opts: &ClientOpts,
    a: &BenchLoadArgs,
    console: Option<String>,
    metrics: Option<String>,
) -> anyhow::Result<LoadFigures> {
    let quick = std::env::var_os("ISC_BENCH_QUICK").is_some();
    let secs = if quick {
        2
    } else {
        parse_duration_s(&a.duration)?.max(1)
    };
    let a = a.clone();
    let every = super::parse_wait(&a.console_every).context("--console-every")?;
    let every = (!every.is_zero()).then_some(every);
    setup(opts, &a).await?;
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 & 0xffff_ffff)
            .unwrap_or(0)
    );
    let mut clients = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        clients.push(connect(opts).await?);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs as u64);
    let bearer = opts.token.clone();
    // `{account}`: the first bench client's account (opened as the load
    // starts: its first reloads may find it missing).
    let console = console.map(|u| u.replace("{account}", &format!("bench-{run}-0")));
    let pages: Vec<_> = console
        .iter()
        .flat_map(|u| std::iter::repeat_n(u, a.console_pages.max(1)))
        .map(|u| tokio::spawn(side_load(u.clone(), bearer.clone(), every, deadline)))
        .collect();
    let scrapes =
        metrics.map(|u| tokio::spawn(side_load(u, None, Some(Duration::from_secs(1)), deadline)));
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(run_client(c, a.clone(), run.clone(), i, deadline)))
        .collect();
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await.context("bench client panicked")??;
        all.write_us.extend(t.write_us);
        all.read_us.extend(t.read_us);
        all.errors += t.errors;
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.write_us.sort_unstable();
    all.read_us.sort_unstable();
    println!(
        "bench-load: {} clients, {:.1} s against {}",
        a.clients, elapsed, opts.server
    );
    let line = |label: &str, us: &[u32]| {
        println!(
            "  {label}: {} ({:.0}/s)  p50 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms",
            us.len(),
            us.len() as f64 / elapsed,
            pct(us, 0.50),
            pct(us, 0.99),
            pct(us, 0.999)
        )
    };
    line("durable acked commands", &all.write_us);
    line("reads", &all.read_us);
    println!("  errors: {}", all.errors);
    let mut console = None;
    for page in pages {
        let t = page.await.context("side load panicked")??;
        console = Some(match console {
            None => t,
            Some(c) => t.merge(c),
        });
    }
    let scrapes = match scrapes {
        Some(task) => Some(task.await.context("side load panicked")??),
        None => None,
    };
    for (label, side) in [("console reloads", &console), ("metrics scrapes", &scrapes)] {
        if let Some(t) = side {
            println!(
                "  {label}: {} ok ({:.1}/s), {} failed, p50 {:.2} ms, p99 {:.2} ms",
                t.ok,
                t.ok as f64 / elapsed,
                t.failed,
                pct(&t.us, 0.50),
                pct(&t.us, 0.99)
            );
        }
    }
    if let Some(e) = &all.first_error {
        println!("  first error: {e}");
    }
    Ok(LoadFigures {
        writes_per_s: all.write_us.len() as f64 / elapsed,
        write_ms: [
            pct(&all.write_us, 0.50),
            pct(&all.write_us, 0.99),
            pct(&all.write_us, 0.999),
        ],
        reads_per_s: all.read_us.len() as f64 / elapsed,
        read_p99_ms: pct(&all.read_us, 0.99),
        errors: all.errors,
        console: console.as_ref().map(SideTally::figures),
        scrapes: scrapes.as_ref().map(SideTally::figures),
    })
}
