//! The `isc-ledger` command line, as library code so `main.rs` stays a thin
//! clap dispatcher and the subcommands can be tested. This is the binary's
//! edge: errors are `anyhow` here, typed everywhere below.

pub mod audit;
