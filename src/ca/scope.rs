//! What a requester may have certified and revoke: the access policy's name constraints, in the
//! shape of RFC 5280 §4.2.1.10 (DNS subtrees, IP ranges, email domains, plus URI prefixes for
//! SPIFFE-style identities), checked against the subject alternative names a certificate would
//! carry; and whose certificates a requester may revoke.

use super::csr::San;
use std::net::IpAddr;

/// The names a request may have certified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameScope {
    /// Whatever the profile allows.
    Any,
    /// Every SAN within one of these (one role's constraints each): a request is allowed when
    /// a single role allows all of its names.
    OneOf(Vec<NameConstraints>),
}

impl NameScope {
    /// Refuses the first name no alternative allows, naming it.
    pub fn check(&self, sans: &[San]) -> Result<(), String> {
        let NameScope::OneOf(alternatives) = self else { return Ok(()) };
        if alternatives.iter().any(|c| sans.iter().all(|s| c.permits(s))) {
            return Ok(());
        }
        // Name the first SAN that no single alternative allows alongside the others.
        let first = sans.iter().find(|s| !alternatives.iter().any(|c| c.permits(s)));
        Err(match first {
            Some(s) => format!("{s} is outside the names this client may have certified"),
            None => "these names together are outside what any one of this client's roles allows".into(),
        })
    }
}

/// One role's constraints; a SAN type with no entry is not allowed at all (deny by default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameConstraints {
    /// DNS subtrees: `example.com` allows it and every name under it; `.example.com` only
    /// names under it (RFC 5280 §4.2.1.10).
    pub dns: Vec<String>,
    pub ip: Vec<IpRange>,
    /// Email domains: `example.com` allows `anyone@example.com`.
    pub email: Vec<String>,
    /// URI prefixes, e.g. `spiffe://trustd/web-`.
    pub uri: Vec<String>,
}

impl NameConstraints {
    fn permits(&self, san: &San) -> bool {
        match san {
            San::Dns(name) => self.dns.iter().any(|t| dns_within(name, t)),
            San::Ip(addr) => self.ip.iter().any(|r| r.contains(*addr)),
            San::Email(addr) => addr
                .rsplit_once('@')
                .is_some_and(|(_, domain)| self.email.iter().any(|d| domain.eq_ignore_ascii_case(d))),
            San::Uri(uri) => self.uri.iter().any(|p| uri.starts_with(p.as_str())),
        }
    }
}

/// `name` (possibly a wildcard, `*.x`) lies in the subtree `tree`.
fn dns_within(name: &str, tree: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let name = name.trim_start_matches("*.");
    let tree = tree.to_ascii_lowercase();
    match tree.strip_prefix('.') {
        Some(base) => name.len() > base.len() + 1 && name.ends_with(&format!(".{base}")),
        None => name == tree || name.ends_with(&format!(".{tree}")),
    }
}

/// An IP network, `10.0.0.0/8` or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    fn contains(&self, addr: IpAddr) -> bool {
        // Bit arithmetic over the address as an integer: std has no CIDR type, and a crate for
        // these five lines is not worth its weight.
        let (net, addr, bits) = match (self.network, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => (u128::from(u32::from(n)), u128::from(u32::from(a)), 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= 128 || (net >> shift) == (addr >> shift)
    }
}

impl std::str::FromStr for IpRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let network: IpAddr = addr.parse().map_err(|_| format!("'{s}' is not an IP address or network"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}': prefix length above {max}"))?
        };
        Ok(IpRange { network, prefix })
    }
}

/// Whose certificates a requester may revoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeScope {
    /// Only certificates it requested itself (a service retiring its own key).
    Own,
    /// Any certificate (an operator).
    Any,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> NameConstraints {
        NameConstraints {
            dns: vec!["web.internal".into(), ".apps.internal".into()],
            ip: vec!["10.1.0.0/16".parse().unwrap()],
            ..Default::default()
        }
    }

    #[test]
    fn subtrees_ranges_and_missing_types() {
        let scope = NameScope::OneOf(vec![web()]);
        for ok in ["web.internal", "a.web.internal", "*.web.internal", "WWW.Web.Internal", "x.apps.internal"] {
            assert_eq!(scope.check(&[San::Dns(ok.into())]), Ok(()), "{ok}");
        }
        for bad in ["evilweb.internal", "internal", "apps.internal", "web.internal.evil.com"] {
            assert!(scope.check(&[San::Dns(bad.into())]).is_err(), "{bad}");
        }
        assert_eq!(scope.check(&[San::Ip("10.1.255.3".parse().unwrap())]), Ok(()));
        assert!(scope.check(&[San::Ip("10.2.0.1".parse().unwrap())]).is_err());
        assert!(scope.check(&[San::Ip("::1".parse().unwrap())]).is_err());
        // No URI or email entry: none allowed.
        let e = scope.check(&[San::Dns("web.internal".into()), San::Uri("spiffe://trustd/ops".into())]).unwrap_err();
        assert!(e.contains("uri:spiffe://trustd/ops"), "{e}");
        assert_eq!(NameScope::Any.check(&[San::Uri("spiffe://trustd/ops".into())]), Ok(()));
    }

    #[test]
    fn one_role_must_allow_every_name() {
        let a = NameConstraints { dns: vec!["a.internal".into()], ..Default::default() };
        let b = NameConstraints { dns: vec!["b.internal".into()], ..Default::default() };
        let scope = NameScope::OneOf(vec![a, b]);
        assert_eq!(scope.check(&[San::Dns("x.a.internal".into())]), Ok(()));
        assert_eq!(scope.check(&[San::Dns("x.b.internal".into())]), Ok(()));
        assert!(scope.check(&[San::Dns("x.a.internal".into()), San::Dns("x.b.internal".into())]).is_err());
    }

    #[test]
    fn ip_ranges_parse_at_their_extremes() {
        assert!("0.0.0.0/0".parse::<IpRange>().unwrap().contains("255.255.255.255".parse().unwrap()));
        assert!("::/0".parse::<IpRange>().unwrap().contains("::1".parse().unwrap()));
        assert!("10.0.0.1".parse::<IpRange>().unwrap().contains("10.0.0.1".parse().unwrap()));
        assert!(!"10.0.0.1".parse::<IpRange>().unwrap().contains("10.0.0.2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpRange>().is_err());
        assert!("::/129".parse::<IpRange>().is_err());
        assert!("10.0.0.0/x".parse::<IpRange>().is_err());
        assert!("web".parse::<IpRange>().is_err());
    }
}
