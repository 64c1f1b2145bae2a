//! Rejections: why a command was refused, with the gRPC-style code the spec
//! (§11 "Status codes") assigns and a message a person understands.

use std::fmt;

/// The class of a rejection. Mapped one-to-one onto gRPC status codes at the
/// API edge; the domain never depends on tonic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// Malformed or out-of-bound input (syntax and bounds come first).
    InvalidArgument,
    /// The account does not exist (at that instant).
    NotFound,
    /// An id or activation key is already taken.
    AlreadyExists,
    /// The input is well formed but the ledger's state forbids it.
    FailedPrecondition,
    /// No or unknown bearer token.
    Unauthenticated,
    /// The token's role may not run this command.
    PermissionDenied,
}

/// A refused command. A rejection never changes the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: Code,
    pub message: String,
}

impl Rejection {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }
    pub fn exists(message: impl Into<String>) -> Self {
        Self::new(Code::AlreadyExists, message)
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, message)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rejection {}
