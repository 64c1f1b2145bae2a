//! The one mapping from domain rejections and engine errors to gRPC status
//! codes (spec §11 "Status codes"). Messages are the domain's own sentences,
//! written for a person; nothing here rewrites them.

use tonic::Status;

use crate::domain::{Code, Rejection};
use crate::engine::EngineError;

/// A domain rejection as a gRPC status with the same code and message.
pub fn from_rejection(r: Rejection) -> Status {
    let Rejection { code, message } = r;
    match code {
        Code::InvalidArgument => Status::invalid_argument(message),
        Code::NotFound => Status::not_found(message),
        Code::AlreadyExists => Status::already_exists(message),
        Code::FailedPrecondition => Status::failed_precondition(message),
        Code::Unauthenticated => Status::unauthenticated(message),
        Code::PermissionDenied => Status::permission_denied(message),
    }
}

/// An engine error as a gRPC status: rejections keep their code, anything
/// else is `UNAVAILABLE` (nothing was recorded; the client may retry).
pub fn from_engine(e: EngineError) -> Status {
    match e {
        EngineError::Rejected(r) => from_rejection(r),
        EngineError::Unavailable(m) => Status::unavailable(m),
    }
}

/// A refused proof query: `INVALID_ARGUMENT`, `OUT_OF_RANGE` or `UNAVAILABLE`.
pub fn from_proof(e: crate::engine::ProofQueryError) -> Status {
    use crate::engine::ProofQueryError as P;
    match e {
        P::Invalid(m) => Status::invalid_argument(m),
        P::OutOfRange(m) => Status::out_of_range(m),
        P::Unavailable(m) => Status::unavailable(m),
    }
}

impl From<EngineError> for Status {
    fn from(e: EngineError) -> Self {
        from_engine(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_one_to_one() {
        let cases = [
            (Code::InvalidArgument, tonic::Code::InvalidArgument),
            (Code::NotFound, tonic::Code::NotFound),
            (Code::AlreadyExists, tonic::Code::AlreadyExists),
            (Code::FailedPrecondition, tonic::Code::FailedPrecondition),
            (Code::Unauthenticated, tonic::Code::Unauthenticated),
            (Code::PermissionDenied, tonic::Code::PermissionDenied),
        ];
        for (domain, grpc) in cases {
            let s = from_rejection(Rejection::new(domain, "why it failed"));
            assert_eq!(s.code(), grpc);
            assert_eq!(s.message(), "why it failed");
        }
        let s = from_engine(EngineError::Unavailable("disk".into()));
        assert_eq!(s.code(), tonic::Code::Unavailable);
    }
}
