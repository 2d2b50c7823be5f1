//! What names a certificate may carry beyond their syntax: for profiles with
//! `san.public_names` (publicly-trusted TLS, CA/Browser Forum Baseline Requirements) no internal
//! names, no reserved IP addresses and no wildcard over a public suffix (Public Suffix List,
//! through the `psl` crate, which tracks it daily); in every profile no name that is an IP
//! address in disguise, no control characters in IA5String names and no Unicode format
//! characters (bidi overrides, zero-width) in subject strings, which make a name display as
//! another.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// A dNSName (already checked as LDH labels, lower case, with at most a leftmost `*`): refused
/// when its last label is all digits (RFC 3696 §2: a top-level domain is never all-numeric, so
/// such a name is an IPv4 address written as a name); with `public`, when it is not under a
/// public suffix (BR §7.1.2.7.12: internal names) or is one, or is a wildcard over one (BR
/// §3.2.2.6).
pub fn check_dns(name: &str, public: bool) -> Result<(), String> {
    let last = name.rsplit('.').next().unwrap_or(name);
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("DNS name '{name}' ends in an all-numeric label: use an iPAddress SAN for an address"));
    }
    if !public {
        return Ok(());
    }
    let (wildcard, base) = match name.strip_prefix("*.") {
        Some(base) => (true, base),
        None => (false, name),
    };
    let known = psl::suffix(base.as_bytes()).is_some_and(|s| s.is_known());
    if !known {
        return Err(format!(
            "DNS name '{name}' is an internal name (not under a public suffix): publicly-trusted certificates \
             may not carry it (CA/B Forum BR §7.1.2.7.12); use the internal-tls-server profile"
        ));
    }
    if psl::domain(base.as_bytes()).is_none() {
        return Err(if wildcard {
            format!("wildcard DNS name '{name}' covers the public suffix '{base}' (CA/B Forum BR §3.2.2.6)")
        } else {
            format!("DNS name '{name}' is a public suffix, not a domain anyone registers")
        });
    }
    Ok(())
}

/// With `public`, refuses addresses no public certificate may name (BR §7.1.2.7.12, IANA
/// special-purpose registries): private, shared (CGNAT), loopback, link-local, unspecified,
/// multicast, broadcast, documentation, benchmarking and reserved ranges, IPv6 unique-local
/// addresses and IPv4 addresses mapped into IPv6.
pub fn check_ip(ip: &IpAddr, public: bool) -> Result<(), String> {
    if public && reserved(ip) {
        return Err(format!(
            "IP address {ip} is reserved (private, loopback, link-local, documentation or similar): publicly-trusted \
             certificates may not carry it (CA/B Forum BR §7.1.2.7.12); use the internal-tls-server profile"
        ));
    }
    Ok(())
}

fn reserved(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => reserved_v4(v4),
        IpAddr::V6(v6) => reserved_v6(v6),
    }
}

fn reserved_v4(ip: &Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space, RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, RFC 6890
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || a >= 240 // reserved, RFC 1112
}

fn reserved_v6(ip: &Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return reserved_v4(&v4);
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation, RFC 3849
        || (s[0] == 0x3fff && s[1] < 0x1000) // documentation, RFC 9637
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard, RFC 6666
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments, RFC 2928
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64, RFC 6052 / RFC 8215
        || s[0] & 0xe000 != 0x2000 // outside global unicast 2000::/3
}

/// An IA5String name (rfc822Name, URI): printable ASCII without spaces (RFC 5280 §4.2.1.6;
/// RFC 3986 has no space or control character in a URI).
pub fn check_ia5(what: &str, value: &str) -> Result<(), String> {
    if value.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    Err(format!("{what} '{}' has a space, a control character or a non-ASCII character", value.escape_debug()))
}

/// A subject attribute's value: no control characters and no Unicode format characters
/// (general category Cf: bidi overrides and isolates, zero-width joiners and spaces, the BOM),
/// which let a name display as another.
pub fn check_subject_text(attr: &str, value: &str) -> Result<(), String> {
    match value.chars().find(|c| c.is_control() || c.general_category() == GeneralCategory::Format) {
        None => Ok(()),
        Some(c) => Err(format!(
            "subject {attr} has the invisible or control character U+{:04X}, which may make it display as another name",
            c as u32
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_names_are_under_a_public_suffix_and_not_one() {
        for good in ["www.example.org", "example.co.uk", "*.example.co.uk", "a.b.example.dk", "*.example.com"] {
            check_dns(good, true).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for (bad, says) in [
            ("*.co.uk", "covers the public suffix 'co.uk'"),
            ("*.com", "covers the public suffix 'com'"),
            ("*.github.io", "covers the public suffix 'github.io'"),
            ("co.uk", "is a public suffix"),
            ("printer.local", "internal name"),
            ("db.corp", "internal name"),
            ("*.svc.cluster.internal", "internal name"),
            ("host.example.invalidtld", "internal name"),
        ] {
            let e = check_dns(bad, true).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
            if says == "internal name" {
                check_dns(bad, false).unwrap_or_else(|e| panic!("{bad} internal: {e}"));
            }
        }
        // An address in disguise, whatever the profile.
        for bad in ["10.0.0.1", "1.2.3.4", "host.123"] {
            assert!(check_dns(bad, false).unwrap_err().contains("all-numeric"), "{bad}");
        }
        check_dns("host.123abc", false).unwrap();
    }

    #[test]
    fn reserved_addresses_are_refused_for_public_certificates_only() {
        for bad in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "64:ff9b::1.2.3.4",
            "::ffff:10.0.0.1",
            "2001::1",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(check_ip(&ip, true).unwrap_err().contains("reserved"), "{bad}");
            check_ip(&ip, false).unwrap();
        }
        for good in
            ["1.1.1.1", "8.8.8.8", "100.63.255.255", "100.128.0.1", "172.32.0.1", "2a00:1450::1", "::ffff:8.8.8.8"]
        {
            check_ip(&good.parse().unwrap(), true).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn control_and_format_characters_are_refused() {
        for bad in ["a\u{0}b@example.org", "a b@example.org", "x\u{7f}", "https://example.org/\n", "é@example.org"] {
            assert!(check_ia5("email", bad).is_err(), "{bad:?}");
        }
        check_ia5("uri", "spiffe://trustd/portal").unwrap();
        for bad in ["Jens\u{202e}nesnaH", "ad\u{200b}min", "\u{feff}Bank", "a\u{2066}b", "x\u{0}", "tab\there"] {
            let e = check_subject_text("CN", bad).expect_err(bad);
            assert!(e.contains("U+"), "{e}");
        }
        for good in ["Jens Hansen", "Søren Ærø", "Zoë", "東京", "Ελληνικά", "O'Brien & Co."] {
            check_subject_text("CN", good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }
}
