//! isc-ledger: the billing ledger behind rented PBX software.
//!
//! A tour of the layers (dependencies point one way, top to bottom):
//!
//! - [`domain`]: the pure, synchronous core — exact money, price lists,
//!   per-second accrual, depletion, `decide`/`apply`, views, statements,
//!   notices and the compliance report. No I/O, no clock, no async.
pub mod cli;
pub mod domain;
pub mod prices_check;
pub mod store;
