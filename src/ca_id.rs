//! Which of trustd's CAs a record, URL or request means: a shared value type, so that the store,
//! the log, OCSP and the API name a CA the same way and no core compares names as strings.

use std::fmt;

/// The CAs trustd runs: the issuing CA, which issues and revokes, and the root above it. The
/// issuing CA's key rolls over (`trustd rollover --key issuing`): each generation is a CA of its
/// own, with its own certificate from the root, CRL and OCSP answers, so that what an older
/// generation issued stays verifiable and revocable until it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CaId {
    /// The issuing CA's generation `n`: 1 is the key ceremony's.
    Issuing(u32),
    Root,
}

impl CaId {
    /// The key ceremony's issuing CA (generation 1).
    pub const ISSUING: CaId = CaId::Issuing(1);

    /// The name in URLs (`/crl/issuing.crl`, `/ca/issuing-2.crt`, `/ca/root.crt`), in the API,
    /// in log entries and in the store: the first generation keeps the name it always had.
    pub fn name(self) -> String {
        match self {
            CaId::Issuing(1) => "issuing".into(),
            CaId::Issuing(n) => format!("issuing-{n}"),
            CaId::Root => "root".into(),
        }
    }

    /// The CA called `name`, if it is a name trustd gives a CA (in its one spelling: no
    /// `issuing-1`, no leading zeros).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "issuing" => Some(CaId::ISSUING),
            "root" => Some(CaId::Root),
            _ => {
                let n: u32 = name.strip_prefix("issuing-")?.parse().ok()?;
                let ca = CaId::Issuing(n);
                (n >= 2 && ca.name() == name).then_some(ca)
            }
        }
    }
}

impl fmt::Display for CaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::CaId;

    #[test]
    fn names_round_trip_and_nothing_else_is_a_ca() {
        for ca in [CaId::ISSUING, CaId::Issuing(2), CaId::Issuing(u32::MAX), CaId::Root] {
            assert_eq!(CaId::from_name(&ca.name()), Some(ca));
        }
        assert_eq!(CaId::Issuing(2).name(), "issuing-2");
        for other in [
            "",
            "Issuing",
            "issuing ",
            "root\0",
            "ceremony:tsa",
            "issuing-1",
            "issuing-0",
            "issuing-02",
            "issuing-+2",
            "issuing-",
            "issuing-4294967296",
        ] {
            assert_eq!(CaId::from_name(other), None, "{other:?}");
        }
    }
}
