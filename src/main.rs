//! `isc-ledger`: parse the command line, call the library. One enum variant
//! per subcommand keeps this file a flat list.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use isc_ledger::cli::{self, audit};

/// Billing ledger for rented PBX software (iSC credits debited per second).
#[derive(Debug, Parser)]
#[command(name = "isc-ledger", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    client: cli::client::ClientOpts,
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the gRPC ledger server.
    Serve(cli::serve::ServeArgs),
    /// Check the log: hash chain, dense seqs, checksums, truncation, a full
    /// replay and the snapshots. Exit 1 naming the first bad seq.
    Verify(audit::VerifyArgs),
    /// Every account's view computed offline from the log alone.
    Replay(audit::ReplayArgs),
    /// One account's statement over (from, to]: offline with --data, else
    /// from the server.
    Statement(cli::client::StatementArgs),
    /// Every record as JSON Lines (seq, at, prev_hash, hash, payload, event).
    Export(audit::ExportArgs),
    /// Open, show or close an account (client).
    Account(cli::client::AccountArgs),
    /// Change a PBX's rented configuration (client).
    Config(cli::client::ConfigArgs),
    /// Load credit with an activation key (client).
    Topup(cli::client::TopupArgs),
    /// Publish a price list (client).
    Prices(cli::client::PricesArgs),
    /// Stream reminders, depletions and reactivations (client).
    Watch(cli::client::WatchArgs),
    /// The continuous-use compliance report (client).
    Compliance(cli::client::ComplianceArgs),
    /// Register devices, set their status, list them (client, spec §14).
    Device(cli::devices::DeviceArgs),
    /// Register purchased PBXs, upgrade them, show their maintenance (client, spec §15).
    Pbx(cli::devices::PbxArgs),
    /// Buy a maintenance plan for a purchased PBX (client, spec §15).
    Plan(cli::devices::PlanArgs),
    /// Report, respond to, update, resolve or re-prioritise an incident (client).
    Incident(cli::sla::IncidentArgs),
    /// The SLA report: KPI figures per priority and every breach (client).
    Sla(cli::sla::SlaArgs),
    /// Read or move the manual clock of a `--clock manual` server (client).
    Clock(cli::client::ClockArgs),
    /// The PostgreSQL schema: `db init` (an empty database) or `db migrate`.
    Db(cli::db::DbArgs),
    /// Copy a ledger between stores (sled directory <-> PostgreSQL), record
    /// by record as stored, then verify both ends (same head seq and hash).
    Copy(cli::db::CopyArgs),
    /// The ledger's Ed25519 signing key: create one, print its public key.
    Key(cli::proofs::KeyArgs),
    /// Audit a live ledger over gRPC: chain, Merkle root, signature, replay;
    /// later runs check that the log only grew and read only new records.
    Audit(cli::proofs::AuditArgs),
    /// Print the inclusion proof of a record under the newest signed head (JSON).
    Prove(cli::proofs::ProveArgs),
    /// Check offline that a receipt (JSON) is included under a validly signed head.
    CheckReceipt(cli::proofs::CheckReceiptArgs),
    /// Load generator: N concurrent clients, prints commands/s and latency.
    BenchLoad(cli::bench::BenchLoadArgs),
    /// Test helper: append synthetic events forever, printing each ack.
    #[command(name = "__append-loop", hide = true)]
    AppendLoop(audit::AppendLoopArgs),
}

/// Runs one subcommand; `Ok(false)` means "ran, found defects" (exit 1).
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let o = &cli.client;
    let stdout = std::io::stdout();
    match cli.cmd {
        Cmd::Serve(a) => cli::serve::run(a).await.map(|()| true),
        Cmd::Verify(a) => audit::verify(&a, &mut stdout.lock()),
        Cmd::Replay(a) => audit::replay(&a, &mut stdout.lock()).map(|()| true),
        Cmd::Statement(a) => cli::client::statement(o, a).await.map(|()| true),
        Cmd::Export(a) => audit::export(&a, &mut stdout.lock()).map(|()| true),
        Cmd::AppendLoop(a) => audit::append_loop(&a, &mut stdout.lock()).map(|()| true),
        Cmd::Account(a) => cli::client::account(o, a).await.map(|()| true),
        Cmd::Config(a) => cli::client::config(o, a).await.map(|()| true),
        Cmd::Topup(a) => cli::client::topup(o, a).await.map(|()| true),
        Cmd::Prices(a) => cli::client::prices(o, a).await.map(|()| true),
        Cmd::Watch(a) => cli::client::watch(o, a).await.map(|()| true),
        Cmd::Compliance(a) => cli::client::compliance(o, a).await.map(|()| true),
        Cmd::Clock(a) => cli::client::clock(o, a).await.map(|()| true),
        Cmd::Db(a) => {
            tokio::task::spawn_blocking(move || {
                cli::db::run(&a, &mut std::io::stdout().lock()).map(|()| true)
            })
            .await?
        }
        Cmd::Copy(a) => {
            tokio::task::spawn_blocking(move || {
                cli::db::copy(&a, &mut std::io::stdout().lock()).map(|()| true)
            })
            .await?
        }
        Cmd::Device(a) => cli::devices::device(o, a).await.map(|()| true),
        Cmd::Pbx(a) => cli::devices::pbx(o, a).await.map(|()| true),
        Cmd::Plan(a) => cli::devices::plan(o, a).await.map(|()| true),
        Cmd::Incident(a) => cli::sla::incident(o, a).await.map(|()| true),
        Cmd::Sla(a) => cli::sla::sla(o, a).await.map(|()| true),
        Cmd::BenchLoad(a) => cli::bench::run(o, a).await.map(|()| true),
        Cmd::Key(a) => cli::proofs::key(o, a).map(|()| true),
        Cmd::Audit(a) => cli::proofs::audit(o, &a, &mut stdout.lock()).await,
        Cmd::Prove(a) => cli::proofs::prove(o, a).await.map(|()| true),
        Cmd::CheckReceipt(a) => cli::proofs::check_receipt(o, &a),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs at info by default; the other tools stay quiet.
    let default_filter = if matches!(cli.cmd, Cmd::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match &cli.cmd {
        Cmd::Serve(a) if a.log_format == cli::serve::LogFormat::Json => fmt.json().init(),
        _ => fmt.init(),
    }
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // `isc-ledger export | head` is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
