//! Every module error to a gRPC status (canonical codes, gRPC `statuscodes.md`), in one place.

use crate::ca::CaError;
use crate::hsm::HsmError;
use crate::log::LogError;
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

/// The log's read path: malformed requests are INVALID_ARGUMENT; sizes the tree has not reached
/// yet are OUT_OF_RANGE (asking again later may work, gRPC `statuscodes.md`); a store that lost
/// what it committed is DATA_LOSS.
fn log_code(e: &LogError) -> Code {
    match e {
        LogError::BadRequest(_)
        | LogError::BadHash(_)
        | LogError::BadTilePath(_)
        | LogError::SizesOutOfOrder { .. }
        | LogError::LeafOutOfRange { .. } => Code::InvalidArgument,
        LogError::BeyondTree { .. } | LogError::TileNotInTree(..) | LogError::TreeTooLarge => Code::OutOfRange,
        LogError::MissingHash(_) | LogError::MissingEntry(_) => Code::DataLoss,
        LogError::Store(_) | LogError::Signer(_) => Code::Unavailable,
        _ => Code::Internal,
    }
}

impl From<LogError> for Status {
    fn from(e: LogError) -> Status {
        let code = log_code(&e);
        if matches!(code, Code::Internal | Code::Unavailable | Code::DataLoss) {
            tracing::error!(error = %e, "log request failed");
        }
        Status::new(code, e.to_string())
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
            // Issuance waits for the log; a log that cannot sequence is the service unavailable.
            CaError::Log(l) => match l {
                LogError::Store(_) | LogError::Signer(_) => Code::Unavailable,
                _ => Code::Internal,
            },
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
            E::Busy(_) => Code::ResourceExhausted,
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
