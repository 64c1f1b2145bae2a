//! The `isc-ledger` binary: parses arguments and dispatches into the library.
//! One enum variant per subcommand keeps this file a flat list.

use clap::{Parser, Subcommand};
use isc_ledger::cli;

#[derive(Debug, Parser)]
#[command(
    name = "isc-ledger",
    version,
    about = "Billing ledger for rented PBX software (iSC credits, per-second debit)."
)]
struct Cli {
    #[command(flatten)]
    client: cli::client::ClientOpts,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the gRPC ledger server.
    Serve(cli::serve::ServeArgs),
    /// Open, show or close an account (client).
    Account(cli::client::AccountArgs),
    /// Change a PBX's rented configuration (client).
    Config(cli::client::ConfigArgs),
    /// Load credit with an activation key (client).
    Topup(cli::client::TopupArgs),
    /// Publish a price list (client).
    Prices(cli::client::PricesArgs),
    /// An account statement for (from, to] (client).
    Statement(cli::client::StatementArgs),
    /// Stream reminders, depletions and reactivations (client).
    Watch(cli::client::WatchArgs),
    /// The continuous-use compliance report (client).
    Compliance(cli::client::ComplianceArgs),
    /// Read or move the manual clock of a `--clock manual` server (client).
    Clock(cli::client::ClockArgs),
    /// Load generator: N concurrent clients, prints commands/s and latency.
    BenchLoad(cli::bench::BenchLoadArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let o = &cli.client;
    match cli.cmd {
        Cmd::Serve(a) => cli::serve::run(a).await,
        Cmd::Account(a) => cli::client::account(o, a).await,
        Cmd::Config(a) => cli::client::config(o, a).await,
        Cmd::Topup(a) => cli::client::topup(o, a).await,
        Cmd::Prices(a) => cli::client::prices(o, a).await,
        Cmd::Statement(a) => cli::client::statement(o, a).await,
        Cmd::Watch(a) => cli::client::watch(o, a).await,
        Cmd::Compliance(a) => cli::client::compliance(o, a).await,
        Cmd::Clock(a) => cli::client::clock(o, a).await,
        Cmd::BenchLoad(a) => cli::bench::run(o, a).await,
    }
}
