//! `isc-ledger serve`: the gRPC server on the embedded sled store.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use tokio::net::TcpListener;

use super::{parse_duration_s, parse_instant};
use crate::api::auth::Tokens;
use crate::api::server::{effective_listen_addr, serve, ServerOptions};
use crate::domain::sla::SupportCalendar;
use crate::domain::{ComplianceRule, Policy};
use crate::engine::{
    Clock, ClusterOptions, Engine, EngineConfig, ManualClock, SystemClock, DEFAULT_GROUP_MAX,
};
use crate::store::{pg_lease, StoreLocation};

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Data directory of the embedded store; with --store, the node's own
    /// directory (its signing key, when --signing-key is not given).
    #[arg(long, value_name = "DIR", default_value = crate::store::DEFAULT_DATA_DIR,
          env = "ISC_LEDGER_DATA", hide_env_values = true)]
    pub data: PathBuf,
    /// Store the ledger in PostgreSQL instead of --data: a postgres:// URL
    /// (several hosts and target_session_attrs=read-write allowed) or a
    /// libpq key=value string; the password from it, PGPASSWORD or a
    /// passfile (~/.pgpass, PGPASSFILE). An empty database gets the schema.
    #[arg(
        long,
        value_name = "URL",
        env = "ISC_LEDGER_STORE",
        hide_env_values = true
    )]
    pub store: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// `system` (default) or `manual` (adds the Clock service for tests).
    #[arg(long, default_value = "system")]
    pub clock: String,
    /// Start instant of the manual clock (Unix seconds or RFC 3339).
    #[arg(long, default_value = "0")]
    pub start_at: String,
    /// Reminder thresholds of projected runtime.
    #[arg(long, default_value = "30d,7d,1d")]
    pub reminders: String,
    /// Continuous-use rule: cycle window, cycles, period.
    #[arg(long, default_value = "72h,3,30d")]
    pub compliance: String,
    /// Runtime a rate rise must leave (0 = any positive balance).
    #[arg(long, default_value = "1d")]
    pub min_activation_runtime: String,
    /// TOML file of bearer tokens and roles (also ISC_LEDGER_TOKENS=tok=role,...).
    #[arg(long, env = "ISC_LEDGER_TOKENS_FILE")]
    pub tokens: Option<PathBuf>,
    /// TLS certificate (PEM); with --tls-key enables TLS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Write a snapshot every N records (0 = never).
    #[arg(long, default_value_t = crate::store::sled_log::DEFAULT_SNAPSHOT_EVERY_RECORDS)]
    pub snapshot_every: u64,
    /// One durable flush per command (for comparison benchmarks).
    #[arg(long)]
    pub no_group_commit: bool,
    /// Longest wait, in microseconds, for just-answered clients to join the
    /// next group commit (0 disables).
    #[arg(long, default_value_t = crate::engine::DEFAULT_GROUP_LINGER.as_micros() as u64)]
    pub group_linger_us: u64,
    /// Longest wait of GetAccount for a min_seq this node has not applied
    /// yet (then UNAVAILABLE with the seq it is at), e.g. 5s, 500ms.
    #[arg(long, default_value = "5s", value_parser = super::parse_wait)]
    pub min_seq_wait: std::time::Duration,
    /// The ledger's Ed25519 signing key file (`isc-ledger key new`);
    /// default: `<data>/ledger-key`, created on first start (with --store
    /// too: every node of one ledger needs the same key file).
    #[arg(long, value_name = "FILE", env = "ISC_LEDGER_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// No Merkle tree and no signed heads (benchmark comparisons only).
    #[arg(long, hide = true)]
    pub no_proofs: bool,
    /// Serve Prometheus metrics on http://ADDR/metrics (aggregates only, no token).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the read-only web console on http://ADDR/ (same tokens as gRPC;
    /// loopback only without a token configuration).
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// Log format on stderr: `text` (default, for people) or `json` (one
    /// object per line, for log shippers).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// With --store postgres://…: the writer lease (several nodes share the
    /// database; one holds the lease and writes, the others are standbys).
    /// A standby takes over this long after the writer stopped renewing.
    #[arg(long, default_value = "5s", value_parser = super::parse_wait)]
    pub lease: std::time::Duration,
    /// With --store postgres://…: where clients reach this node, named by
    /// standbys when they refuse a write (default: http(s):// and the
    /// address it listens on).
    #[arg(long, value_name = "URL")]
    pub advertise: Option<String>,
    /// Support calendar (TOML: `zone`, `holidays`; see
    /// docs/support-calendar-nl.toml). Without it: Europe/Amsterdam, no
    /// holidays. Recorded in the log when it changes.
    #[arg(long, value_name = "FILE")]
    pub support_calendar: Option<PathBuf>,
}

/// The log formats of `serve --log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    /// `--store` when given, else `--data`.
    pub fn location(&self) -> StoreLocation {
        match &self.store {
            Some(s) => StoreLocation::parse(s),
            None => StoreLocation::from_arg(&self.data),
        }
    }

    /// The billing policy from `--min-activation-runtime`, `--reminders`
    /// and `--compliance`.
    pub fn policy(&self) -> anyhow::Result<Policy> {
        let reminders = self
            .reminders
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(parse_duration_s)
            .collect::<anyhow::Result<Vec<_>>>()
            .context("--reminders")?;
        let parts: Vec<&str> = self.compliance.split(',').collect();
        let [gap, cycles, window] = parts[..] else {
            bail!(
                "--compliance {:?}: expected GAP,CYCLES,WINDOW like 72h,3,30d",
                self.compliance
            );
        };
        let policy = Policy {
            min_activation_runtime_s: parse_duration_s(&self.min_activation_runtime)
                .context("--min-activation-runtime")?,
            reminder_thresholds_s: reminders,
            compliance: ComplianceRule {
                max_gap_s: parse_duration_s(gap).context("--compliance gap")?,
                cycles: cycles
                    .trim()
                    .parse()
                    .with_context(|| format!("--compliance cycles {cycles:?}"))?,
                window_s: parse_duration_s(window).context("--compliance window")?,
            },
        };
        policy
            .normalized()
            .map_err(|e| anyhow::anyhow!("invalid policy: {e}"))
    }

    /// The support calendar from `--support-calendar` (default: none).
    pub fn support_calendar(&self) -> anyhow::Result<SupportCalendar> {
        let Some(path) = &self.support_calendar else {
            return Ok(SupportCalendar::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        SupportCalendar::parse_toml(&text)
            .map_err(|e| anyhow::anyhow!("--support-calendar {}: {e}", path.display()))
    }

    /// The clock from `--clock` and `--start-at`.
    pub fn make_clock(&self) -> anyhow::Result<Arc<dyn Clock>> {
        match self.clock.as_str() {
            "system" => Ok(Arc::new(SystemClock)),
            "manual" => Ok(Arc::new(ManualClock::new(
                parse_instant(&self.start_at).context("--start-at")?,
            ))),
            other => bail!("--clock {other:?}: expected system or manual"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

/// Runs the server until SIGTERM / Ctrl-C; returns after a clean stop.
pub async fn run(a: ServeArgs) -> anyhow::Result<()> {
    let policy = a.policy()?;
    let clock = a.make_clock()?;
    let tokens = Tokens::load(a.tokens.as_deref())?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some((
            std::fs::read(c).with_context(|| format!("cannot read {}", c.display()))?,
            std::fs::read(k).with_context(|| format!("cannot read {}", k.display()))?,
        )),
        _ => None,
    };
    let manual = clock.as_manual().is_some();
    let config = EngineConfig {
        policy,
        group_max: if a.no_group_commit {
            1
        } else {
            DEFAULT_GROUP_MAX
        },
        snapshot_every: a.snapshot_every.max(1),
        group_linger: std::time::Duration::from_micros(a.group_linger_us),
        min_seq_wait: a.min_seq_wait,
        support_calendar: a.support_calendar()?,
        signing_key: a.signing_key.clone(),
        key_dir: a.store.is_some().then(|| a.data.clone()),
        proofs: !a.no_proofs,
        ..EngineConfig::default()
    };
    let store = a.location();
    tracing::info!(
        store = %store.describe(), group_commit = !a.no_group_commit, clock = %a.clock,
        "starting isc-ledger"
    );
    let addr = effective_listen_addr(a.listen, &tokens);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let mut config = config;
    if matches!(store, StoreLocation::Postgres(_)) {
        if !(pg_lease::MIN_LEASE..=pg_lease::MAX_LEASE).contains(&a.lease) {
            bail!(
                "--lease {:?}: expected between {:?} and {:?}",
                a.lease,
                pg_lease::MIN_LEASE,
                pg_lease::MAX_LEASE
            );
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let advertise = a
            .advertise
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", listener.local_addr().unwrap_or(addr)));
        tracing::info!(%advertise, lease_ms = a.lease.as_millis() as u64, "joining the writer lease");
        config.cluster = Some(ClusterOptions {
            advertise,
            lease: a.lease,
        });
    }
    let engine = Engine::start(&store, config, clock)
        .with_context(|| format!("cannot open the ledger in {}", store.describe()))?;
    // Tests and scripts read this line to find an ephemeral port.
    println!("listening on {}", listener.local_addr()?);
    // One signal stops every listener: gRPC drains and stops the engine,
    // the HTTP listeners stop accepting.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut http_tasks = Vec::new();
    if let Some(addr) = a.metrics_listen {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
        println!("metrics on http://{}/metrics", l.local_addr()?);
        http_tasks.push(tokio::spawn(crate::http::serve_metrics(
            engine.clone(),
            l,
            stopped(),
        )));
    }
    if let Some(addr) = a.http_listen {
        let addr = effective_listen_addr(addr, &tokens);
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (--http-listen)"))?;
        println!("console on http://{}/", l.local_addr()?);
        http_tasks.push(tokio::spawn(crate::http::console::serve_console(
            engine.clone(),
            l,
            Arc::new(tokens.clone()),
            stopped(),
        )));
    }
    let signal = async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    serve(
        engine,
        listener,
        ServerOptions {
            tokens,
            tls,
            clock_service: manual,
        },
        signal,
    )
    .await?;
    for t in http_tasks {
        if let Ok(Err(e)) = t.await {
            tracing::warn!("an HTTP listener failed: {e}");
        }
    }
    Ok(())
}
