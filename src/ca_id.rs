//! Which of trustd's CAs a record, URL or request means: a shared value type, so that the store,
//! the log, OCSP and the API name a CA the same way and no core compares names as strings.

use std::fmt;

/// The CAs trustd runs: the issuing CA, which issues and revokes, and the root above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaId {
    Issuing,
    Root,
}

impl CaId {
    /// Every CA, the issuing CA first.
    pub const ALL: [CaId; 2] = [CaId::Issuing, CaId::Root];

    /// The name in URLs (`/crl/issuing.crl`, `/ca/root.crt`), in the API, in log entries and in
    /// the store.
    pub fn name(self) -> &'static str {
        match self {
            CaId::Issuing => "issuing",
            CaId::Root => "root",
        }
    }

    /// The CA called `name`, if trustd runs one of that name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for CaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::CaId;

    #[test]
    fn names_round_trip_and_nothing_else_is_a_ca() {
        for ca in CaId::ALL {
            assert_eq!(CaId::from_name(ca.name()), Some(ca));
        }
        for other in ["", "Issuing", "issuing ", "root\0", "ceremony:tsa"] {
            assert_eq!(CaId::from_name(other), None, "{other:?}");
        }
    }
}
