//! `isc-ledger serve`: the gRPC server on the embedded sled store.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Data directory of the embedded store.
    #[arg(long, default_value = "isc-ledger-data")]
    pub data: PathBuf,
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
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// One durable flush per command (for comparison benchmarks).
    #[arg(long)]
    pub no_group_commit: bool,
}

/// Runs the server until SIGTERM / Ctrl-C.
pub async fn run(_a: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("serve: not wired yet")
}
