//! Internal failures as a client hears of them: a reference, never the cause. The cause (an HSM
//! return code, a database message, a file path) is logged under the same reference, so the
//! operator finds it from what the client reports. As Boulder strips internal detail from the
//! problems it sends to ACME clients.

use std::fmt;

/// The reference of one logged internal failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident(String);

impl Incident {
    /// Logs `cause` at error level as `what` under a new reference, and returns the reference.
    pub fn record(what: &str, cause: &dyn fmt::Display) -> Incident {
        let id = hex::encode(rand::random::<[u8; 8]>());
        tracing::error!(incident = %id, error = %cause, "{what}");
        Incident(id)
    }

    /// The reference, as logged.
    pub fn id(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Incident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reference {}", self.0)
    }
}
