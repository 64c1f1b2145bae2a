//! The gRPC edge: generated proto types, proto ↔ domain conversion (in one
//! place, [`convert`]), the single domain-rejection → `tonic::Status` mapping
//! ([`status`]), authentication ([`auth`]), `ReadLog`'s message in its wire
//! form ([`log_wire`]), the `Ledger`/`Clock` service
//! implementations ([`service`]) and server assembly ([`server`]).
//!
//! Proto types never leave this module towards the engine or the domain.

pub mod auth;

/// Code generated from `proto/isc_ledger.proto` (package `isc.ledger.v1`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("isc.ledger.v1");

    /// `ReadLog`'s message, in its wire form (not generated).
    pub use super::log_wire::LogRecord;

    /// Encoded file descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("isc_ledger_descriptor");
}

pub mod convert;
pub mod log_wire;
pub mod metrics;
pub mod server;
pub mod service;
pub mod status;
