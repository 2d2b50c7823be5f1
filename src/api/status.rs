//! Every module error to a gRPC status (canonical codes, gRPC `statuscodes.md`), in one place.
//!
//! What a client is told never carries internal detail: for a failure of the service itself
//! (HSM, database, log, a bug) the cause is logged under an [`Incident`] reference and the
//! client gets the reference. Refusals of the request say why, so the client can mend it.

use crate::access::AccessError;
use crate::ca::CaError;
use crate::incident::Incident;
use crate::keys::KeyError;
use crate::log::LogError;
use crate::store::StoreError;
use tonic::{Code, Status};

/// What the client is told of a failure: the request's own fault, explained, or the service's,
/// behind a reference.
enum Told {
    Reason(Code),
    Hidden(Code),
}

fn key(e: &KeyError) -> Told {
    match e {
        KeyError::Unavailable(_) => Told::Hidden(Code::Unavailable),
        KeyError::Busy(_) => Told::Reason(Code::ResourceExhausted),
        KeyError::Failed(_) => Told::Hidden(Code::Internal),
    }
}

fn store(e: &StoreError) -> Told {
    match e {
        StoreError::NotFound(_) => Told::Reason(Code::NotFound),
        StoreError::BadPageToken => Told::Reason(Code::InvalidArgument),
        StoreError::WrongStatus { .. } => Told::Reason(Code::FailedPrecondition),
        StoreError::DuplicateSerial(_) | StoreError::Conflict(_) => Told::Reason(Code::Aborted),
        // Said as it is: the client may retry at another replica.
        StoreError::ReadOnly => Told::Reason(Code::Unavailable),
        StoreError::Database(_) => Told::Hidden(Code::Unavailable),
    }
}

/// The log's read path: malformed requests are INVALID_ARGUMENT; sizes the tree has not reached
/// yet are OUT_OF_RANGE (asking again later may work, gRPC `statuscodes.md`); a store that lost
/// what it committed is DATA_LOSS.
fn log(e: &LogError) -> Told {
    match e {
        LogError::BadRequest(_)
        | LogError::BadHash(_)
        | LogError::BadTilePath(_)
        | LogError::SizesOutOfOrder { .. }
        | LogError::LeafOutOfRange { .. } => Told::Reason(Code::InvalidArgument),
        LogError::BeyondTree { .. } | LogError::TileNotInTree(..) | LogError::TreeTooLarge => {
            Told::Reason(Code::OutOfRange)
        }
        LogError::MissingHash(_) | LogError::MissingEntry(_) => Told::Hidden(Code::DataLoss),
        LogError::Store(_) | LogError::Signer(_) => Told::Hidden(Code::Unavailable),
        _ => Told::Hidden(Code::Internal),
    }
}

fn status(told: Told, what: &str, e: &dyn std::fmt::Display) -> Status {
    match told {
        Told::Reason(code) => Status::new(code, e.to_string()),
        Told::Hidden(code) => {
            let incident = Incident::record(what, e);
            let text = match code {
                Code::Unavailable => "the service is unavailable; retry shortly",
                Code::DataLoss => "stored data is missing",
                _ => "internal error",
            };
            Status::new(code, format!("{text} ({incident})"))
        }
    }
}

impl From<AccessError> for Status {
    fn from(e: AccessError) -> Status {
        match e {
            AccessError::Unauthenticated(_) => Status::unauthenticated(e.to_string()),
            AccessError::Denied { .. } => Status::permission_denied(e.to_string()),
            AccessError::Unavailable(_) => Status::unavailable(e.to_string()),
        }
    }
}

impl From<crate::csc::CredentialError> for Status {
    fn from(e: crate::csc::CredentialError) -> Status {
        use crate::csc::CredentialError;
        let told = match &e {
            CredentialError::BadRequest(_) => Told::Reason(Code::InvalidArgument),
            CredentialError::NotFound(_) => Told::Reason(Code::NotFound),
            CredentialError::Internal(_) => Told::Hidden(Code::Internal),
        };
        status(told, "credential request failed", &e)
    }
}

impl From<LogError> for Status {
    fn from(e: LogError) -> Status {
        status(log(&e), "log request failed", &e)
    }
}

impl From<CaError> for Status {
    fn from(e: CaError) -> Status {
        let told = match &e {
            CaError::BadCsr(_)
            | CaError::CsrSignature(_)
            | CaError::KeyNotAllowed(_)
            | CaError::SubjectNotAllowed(_)
            | CaError::SanNotAllowed(_)
            | CaError::ValidityTooLong { .. }
            | CaError::BadSerial(_)
            | CaError::UnknownProfile { .. }
            | CaError::BadReason(_)
            | CaError::BadInvalidityDate(_) => Told::Reason(Code::InvalidArgument),
            CaError::NotRevocable(_) | CaError::ProfileUnusable { .. } => Told::Reason(Code::FailedPrecondition),
            CaError::NotPermitted(_) => Told::Reason(Code::PermissionDenied),
            CaError::UnknownCa(_) => Told::Reason(Code::NotFound),
            CaError::Ceremony(_) => Told::Hidden(Code::FailedPrecondition),
            CaError::Key(k) => key(k),
            CaError::Store(s) => store(s),
            // Issuance waits for the log; a log that cannot sequence is the service unavailable.
            CaError::Log(l) => match l {
                LogError::Store(_) | LogError::Signer(_) => Told::Hidden(Code::Unavailable),
                _ => Told::Hidden(Code::Internal),
            },
            CaError::Internal(_) => Told::Hidden(Code::Internal),
        };
        status(told, "request failed", &e)
    }
}

impl From<crate::signing::SigningError> for Status {
    fn from(e: crate::signing::SigningError) -> Status {
        use crate::signing::SigningError as E;
        let told = match &e {
            E::UnknownPolicy { .. } | E::BadRequest(_) | E::LevelNotAllowed { .. } => {
                Told::Reason(Code::InvalidArgument)
            }
            // As for a message over the transport's limit.
            E::TooLarge { .. } => Told::Reason(Code::OutOfRange),
            E::ClientNotListed { .. } => Told::Reason(Code::PermissionDenied),
            // The TSA's refusal (its clock unsynchronised, say); a system failure in it is
            // already a reference.
            E::Timestamp(_) => Told::Reason(Code::Unavailable),
            E::Busy(_) => Told::Reason(Code::ResourceExhausted),
            E::Key(k) => key(k),
            E::Store(s) => store(s),
            E::Internal(_) | E::Setup(_) => Told::Hidden(Code::Internal),
        };
        status(told, "request failed", &e)
    }
}

impl From<crate::diagnostics::DiagnosticsError> for Status {
    fn from(e: crate::diagnostics::DiagnosticsError) -> Status {
        use crate::diagnostics::DiagnosticsError as E;
        let told = match &e {
            E::BadDuration(_) | E::BadConcurrency(_) | E::NoKey => Told::Reason(Code::InvalidArgument),
            E::NotInService(_) => Told::Reason(Code::NotFound),
            E::Busy => Told::Reason(Code::ResourceExhausted),
            E::NoStoreDisk => Told::Reason(Code::FailedPrecondition),
            E::Disk(_) => Told::Hidden(Code::Internal),
            E::Key(k) => key(k),
        };
        status(told, "measurement failed", &e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure of the service itself reaches the client as a reference only: no HSM return
    /// code, database message or path.
    #[test]
    fn internal_causes_stay_in_the_log() {
        let cause = "CKR_DEVICE_ERROR in C_Sign on slot 3 at /var/lib/softhsm/tokens/0d1f";
        let statuses = [
            Status::from(CaError::Key(KeyError::Unavailable(cause.into()))),
            Status::from(CaError::Key(KeyError::Failed(cause.into()))),
            Status::from(CaError::Store(StoreError::Database(cause.into()))),
            Status::from(CaError::Internal(cause.into())),
            Status::from(CaError::Log(LogError::Store(cause.into()))),
            Status::from(crate::signing::SigningError::Key(KeyError::Failed(cause.into()))),
            Status::from(crate::signing::SigningError::Store(StoreError::Database(cause.into()))),
            Status::from(LogError::Signer(cause.into())),
        ];
        for s in statuses {
            assert!(!s.message().contains("CKR_") && !s.message().contains("softhsm"), "{s:?}");
            assert!(s.message().contains("reference "), "{s:?}");
            assert!(matches!(s.code(), Code::Unavailable | Code::Internal), "{s:?}");
        }
        // A refusal of the request keeps its reason.
        let s = Status::from(CaError::BadSerial("'xyz' is not hexadecimal".into()));
        assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "invalid serial: 'xyz' is not hexadecimal"));
    }
}
