//! Which of trustd's service keys a rollover, a record or a log entry means: a shared value type,
//! so that the ceremony, the store and the daemon name a role the same way.

use std::fmt;

/// The keys that roll over while the daemon serves (`trustd rollover --key`): the issuing CA's,
/// certified by the root; the services', each under a certificate of the issuing CA; and the
/// log's, whose checkpoints name it by its verifier key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceRole {
    /// The issuing CA's (RFC 5280): each generation is a CA of its own (`CaId::Issuing(n)`).
    Issuing,
    /// The time-stamping authority's (RFC 3161 §2.3).
    Tsa,
    /// The ceremony's document-signing key, which signing policies without a key of their own use.
    DocumentSigner,
    /// The OCSP responder's delegated key (RFC 6960 §4.2.2.2).
    Ocsp,
    /// The issued-certificate log's checkpoint key (C2SP signed-note, Ed25519).
    Log,
}

impl ServiceRole {
    /// Every role.
    pub const ALL: [ServiceRole; 5] =
        [ServiceRole::Issuing, ServiceRole::Tsa, ServiceRole::DocumentSigner, ServiceRole::Ocsp, ServiceRole::Log];

    /// The roles whose key the issuing CA certifies.
    pub const CERTIFIED: [ServiceRole; 3] = [ServiceRole::Tsa, ServiceRole::DocumentSigner, ServiceRole::Ocsp];

    /// The name on the command line, in the store and in log entries (a ceremony_event's role).
    pub fn name(self) -> &'static str {
        match self {
            ServiceRole::Issuing => "issuing",
            ServiceRole::Tsa => "tsa",
            ServiceRole::DocumentSigner => "document-signer",
            ServiceRole::Ocsp => "ocsp",
            ServiceRole::Log => "log",
        }
    }

    /// The role called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for ServiceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::ServiceRole;

    #[test]
    fn names_round_trip_and_nothing_else_is_a_role() {
        for role in ServiceRole::ALL {
            assert_eq!(ServiceRole::from_name(role.name()), Some(role));
        }
        for other in ["", "TSA", "root", "issuing-2", "tls", "signer", "tsa "] {
            assert_eq!(ServiceRole::from_name(other), None, "{other:?}");
        }
    }
}
