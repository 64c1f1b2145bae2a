//! The live ledger: one writer task owns the log and the state.

pub mod clock;
