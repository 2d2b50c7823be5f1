//! Every module error to a gRPC status (canonical codes, gRPC `statuscodes.md`), in one place.

use crate::ca::CaError;
use crate::hsm::HsmError;
use crate::store::StoreError;
use tonic::{Code, Status};

fn hsm_code(e: &HsmError) -> Code {
    match e {
        HsmError::Unavailable(_) | HsmError::Busy => Code::Unavailable,
        _ => Code::Internal,
    }
}

fn store_code(e: &StoreError) -> Code {
    match e {
        StoreError::NotFound(_) => Code::NotFound,
        StoreError::BadPageToken => Code::InvalidArgument,
        StoreError::WrongStatus { .. } => Code::FailedPrecondition,
        StoreError::DuplicateSerial(_) | StoreError::Conflict(_) => Code::Aborted,
        StoreError::Database(_) => Code::Unavailable,
    }
}

impl From<CaError> for Status {
    fn from(e: CaError) -> Status {
        let code = match &e {
            CaError::BadCsr(_)
            | CaError::CsrSignature(_)
            | CaError::KeyNotAllowed(_)
            | CaError::SubjectNotAllowed(_)
            | CaError::SanNotAllowed(_)
            | CaError::ValidityTooLong { .. }
            | CaError::BadSerial(_)
            | CaError::UnknownProfile { .. }
            | CaError::BadReason(_) => Code::InvalidArgument,
            CaError::NotRevocable(_) => Code::FailedPrecondition,
            CaError::UnknownCa(_) => Code::NotFound,
            CaError::Ceremony(_) => Code::FailedPrecondition,
            CaError::Hsm(h) => hsm_code(h),
            CaError::Store(s) => store_code(s),
            CaError::Internal(_) => Code::Internal,
        };
        if matches!(code, Code::Internal | Code::Unavailable) {
            tracing::error!(error = %e, "request failed");
        }
        Status::new(code, e.to_string())
    }
}

impl From<crate::signing::SigningError> for Status {
    fn from(e: crate::signing::SigningError) -> Status {
        use crate::signing::SigningError as E;
        let code = match &e {
            E::UnknownPolicy { .. } | E::BadRequest(_) | E::LevelNotAllowed { .. } => Code::InvalidArgument,
            // As for a message over the transport's limit.
            E::TooLarge { .. } => Code::OutOfRange,
            E::Timestamp(_) => Code::Unavailable,
            E::Hsm(h) => hsm_code(h),
            E::Store(s) => store_code(s),
            E::Internal(_) => Code::Internal,
        };
        if matches!(code, Code::Internal | Code::Unavailable) {
            tracing::error!(error = %e, "request failed");
        }
        Status::new(code, e.to_string())
    }
}
