//! `isc-ledger`: parse the command line, call the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use isc_ledger::cli::audit;

/// Billing ledger for rented PBX software (iSC credits debited per second).
#[derive(Debug, Parser)]
#[command(name = "isc-ledger", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Check the log: hash chain, dense seqs, checksums, truncation, a full
    /// replay and the snapshots. Exit 1 naming the first bad seq.
    Verify(audit::VerifyArgs),
    /// Every account's view computed offline from the log alone.
    Replay(audit::ReplayArgs),
    /// One account's statement over (from, to].
    Statement(audit::StatementArgs),
    /// Every record as JSON Lines (seq, at, prev_hash, hash, payload, event).
    Export(audit::ExportArgs),
    /// Test helper: append synthetic events forever, printing each ack.
    #[command(name = "__append-loop", hide = true)]
    AppendLoop(audit::AppendLoopArgs),
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.cmd {
        Cmd::Verify(a) => audit::verify(&a, &mut out),
        Cmd::Replay(a) => audit::replay(&a, &mut out).map(|()| true),
        Cmd::Statement(a) => audit::statement_cmd(&a, &mut out).map(|()| true),
        Cmd::Export(a) => audit::export(&a, &mut out).map(|()| true),
        Cmd::AppendLoop(a) => audit::append_loop(&a, &mut out).map(|()| true),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
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
