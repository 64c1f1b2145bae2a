//! isc-ledger: the billing ledger behind rented PBX software.
//!
//! A tour of the layers (dependencies point one way, top to bottom):
//!
//! - [`domain`]: the pure, synchronous core — exact money, price lists,
//!   per-second accrual, depletion, `decide`/`apply`, views, statements,
//!   notices and the compliance report. No I/O, no clock, no async.
//! - [`store`]: the durable, hash-chained event log on sled and snapshots.
//! - [`engine`]: the single writer that owns the log and the state,
//!   commits commands in groups, stamps `at` from a clock and publishes
//!   time-driven notices; reads are served from a shared in-memory state.
//! - [`api`]: the gRPC edge (proto types, conversion, status mapping, auth).
//! - [`http`]: the HTTP edge beside it: Prometheus `/metrics` and the
//!   read-only web console, over the same engine reads.
//! - [`cli`]: the `isc-ledger` subcommands (auditor tools, server, clients,
//!   the offline price-list check, load generator).
pub mod cli;
pub mod domain;
pub mod store;

pub mod api;
pub mod engine;
pub mod http;
