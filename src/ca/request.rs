//! Checking a verified CSR against a certificate profile. Nothing the CSR says is copied
//! blindly: the subject and SANs are re-validated and re-encoded, every other extension comes
//! from the profile.

use super::csr::{San, SubjectKey, VerifiedCsr};
use super::issuance::KeyCustody;
use super::names;
use super::CaError;
use crate::policy::profile::QcProfile;
use crate::policy::{AttrKind, Profile, SanKind};
use crate::qc::Semantics;
use std::time::Duration;

/// A request that satisfies its profile: what the certificate will say.
#[derive(Clone, Debug)]
pub struct ValidatedRequest {
    pub subject: Vec<(AttrKind, String)>,
    pub sans: Vec<San>,
    pub validity: Duration,
}

fn san_kind(s: &San) -> SanKind {
    match s {
        San::Dns(_) => SanKind::Dns,
        San::Ip(_) => SanKind::Ip,
        San::Email(_) => SanKind::Email,
        San::Uri(_) => SanKind::Uri,
    }
}

fn san_value(s: &San) -> String {
    match s {
        San::Dns(v) | San::Email(v) | San::Uri(v) => v.clone(),
        San::Ip(ip) => ip.to_string(),
    }
}

/// RFC 1034 §3.5 preferred name syntax (LDH labels), RFC 5280 §4.2.1.6; a leftmost `*` label
/// only where the profile allows wildcards.
fn check_dns(name: &str, allow_wildcard: bool) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!("DNS name '{name}' has an invalid length"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(format!("DNS name '{name}' is not fully qualified"));
    }
    for (i, l) in labels.iter().enumerate() {
        if i == 0 && *l == "*" {
            if !allow_wildcard {
                return Err(format!("wildcard DNS name '{name}' is not allowed by the profile"));
            }
            continue;
        }
        let ok = !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-');
        if !ok {
            return Err(format!("DNS name '{name}' is not a valid lower-case host name"));
        }
    }
    Ok(())
}

fn check_san(s: &San, profile: &Profile) -> Result<(), CaError> {
    let kind = san_kind(s);
    let rule = profile.san.get(&kind).ok_or_else(|| {
        CaError::SanNotAllowed(format!("{s}: {} SANs are not allowed by profile '{}'", kind.name(), profile.name))
    })?;
    let value = san_value(s);
    let public = profile.public_names;
    match s {
        San::Dns(d) => {
            check_dns(d, profile.allow_wildcard).map_err(CaError::SanNotAllowed)?;
            names::check_dns(d, public).map_err(CaError::SanNotAllowed)?;
        }
        San::Ip(ip) => names::check_ip(ip, public).map_err(CaError::SanNotAllowed)?,
        San::Email(e) => {
            names::check_ia5("email address", e).map_err(CaError::SanNotAllowed)?;
            if !e.contains('@') {
                return Err(CaError::SanNotAllowed(format!("{s}: not an email address")));
            }
        }
        San::Uri(u) => {
            names::check_ia5("URI", u).map_err(CaError::SanNotAllowed)?;
            if !u.contains(':') {
                return Err(CaError::SanNotAllowed(format!("{s}: not a URI")));
            }
        }
    }
    if !rule.matches(&value) {
        return Err(CaError::SanNotAllowed(format!("{s}: does not match the pattern of profile '{}'", profile.name)));
    }
    Ok(())
}

/// The natural person's identifier in serialNumber (EN 319 412-1 §5.1.3): the identity type
/// (passport, national identity card, national personal number, tax), the ISO 3166 country, a
/// hyphen and the identifier; or a national scheme's two letters and a colon first.
static NATURAL_IDENTIFIER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new("^(?:(?:PAS|IDC|PNO|TAX|TIN)[A-Z]{2}-.+|[A-Z]{2}:[A-Z]{2}-.+)$").expect("a valid pattern")
});

/// The legal person's identifier in organizationIdentifier (EN 319 412-1 §5.1.4): VAT, national
/// trade register, PSD2 authorisation or LEI, the country (XG for an LEI), a hyphen and the
/// identifier; or a national scheme's two letters and a colon first.
static LEGAL_IDENTIFIER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new("^(?:(?:VAT|NTR|PSD|LEI)[A-Z]{2}-.+|[A-Z]{2}:[A-Z]{2}-.+)$").expect("a valid pattern")
});

/// The identifier a profile's semantics identifier names, in the form EN 319 412-1 §5.1 gives
/// it: checked before the profile's own pattern, which may narrow it (to one country, say).
fn check_identifier(kind: AttrKind, value: &str, qc: &QcProfile) -> Result<(), CaError> {
    let (pattern, what) = match (qc.semantics, kind) {
        (Some(Semantics::Natural), AttrKind::SerialNumber) => (
            &NATURAL_IDENTIFIER,
            "a natural person's identifier (EN 319 412-1 §5.1.3: PAS, IDC, PNO, TAX or TIN, the country, '-', the \
             identifier, as PNODK-1234567890)",
        ),
        (Some(Semantics::Legal), AttrKind::OrganizationIdentifier) => (
            &LEGAL_IDENTIFIER,
            "a legal person's identifier (EN 319 412-1 §5.1.4: VAT, NTR, PSD or LEI, the country, '-', the \
             identifier, as NTRDK-12345678 or VATDK-12345678)",
        ),
        _ => return Ok(()),
    };
    match pattern.is_match(value) {
        true => Ok(()),
        false => Err(CaError::SubjectNotAllowed(format!("subject {kind}='{value}': not {what}"))),
    }
}

/// What a profile with qualified-certificate statements asks of the whole request beyond its
/// subject rules: an organisation named, not identified, by its name; and, for QcSSCD, a key
/// known to be in a QSCD: one the HSM holds, never a client's, which a CSR cannot show.
fn qualified(
    qc: &QcProfile,
    subject: &[(AttrKind, String)],
    profile: &Profile,
    custody: KeyCustody,
) -> Result<(), CaError> {
    let value = |kind| subject.iter().find(|(k, _)| *k == kind).map(|(_, v)| v.as_str());
    if let (Some(name), Some(id)) = (value(AttrKind::Organization), value(AttrKind::OrganizationIdentifier)) {
        if name.eq_ignore_ascii_case(id) {
            return Err(CaError::SubjectNotAllowed(format!(
                "subject O='{name}': the organization's name, not its identifier, which goes in \
                 organizationIdentifier (EN 319 412-3 §4.2.1)"
            )));
        }
    }
    if qc.qscd && custody != KeyCustody::Hsm {
        return Err(CaError::KeyNotAllowed(format!(
            "profile '{}' states QcSSCD (qc_statements.qscd): it certifies only keys known to be in a qualified \
             signature or seal creation device, and a CSR's key cannot be shown to be in one; such certificates \
             are made for the HSM's own keys (a signing policy's [certificate])",
            profile.name
        )));
    }
    Ok(())
}

/// Checks the CSR's key, subject and SANs and the requested validity against `profile`.
/// `requested` of `None` means the profile's default validity.
pub fn validate(
    csr: &VerifiedCsr,
    profile: &Profile,
    requested: Option<Duration>,
    custody: KeyCustody,
) -> Result<ValidatedRequest, CaError> {
    let keys = &profile.keys;
    match csr.key {
        SubjectKey::EcP256 if keys.ecdsa_p256 => {}
        SubjectKey::EcP384 if keys.ecdsa_p384 => {}
        SubjectKey::Rsa { bits } => match keys.rsa_min_bits {
            Some(min) if bits >= min as usize && bits % 8 == 0 => {}
            Some(min) => {
                return Err(CaError::KeyNotAllowed(format!(
                    "RSA-{bits} key: profile '{}' needs at least {min} bits, a multiple of 8",
                    profile.name
                )))
            }
            None => {
                return Err(CaError::KeyNotAllowed(format!("RSA keys are not allowed by profile '{}'", profile.name)))
            }
        },
        k => return Err(CaError::KeyNotAllowed(format!("{k:?} keys are not allowed by profile '{}'", profile.name))),
    }

    // DNS names are case-insensitive (RFC 4343); certificates carry them in lower case.
    let sans: Vec<San> = csr
        .sans
        .iter()
        .map(|s| match s {
            San::Dns(d) => San::Dns(d.to_ascii_lowercase()),
            other => other.clone(),
        })
        .collect();
    if sans.len() < profile.san_min {
        return Err(CaError::SanNotAllowed(format!(
            "profile '{}' needs at least {} subject alternative name(s), the CSR has {}",
            profile.name,
            profile.san_min,
            sans.len()
        )));
    }
    if sans.len() > profile.san_max {
        return Err(CaError::SanNotAllowed(format!(
            "profile '{}' allows at most {} subject alternative names, the CSR has {}",
            profile.name,
            profile.san_max,
            sans.len()
        )));
    }
    for (i, s) in sans.iter().enumerate() {
        check_san(s, profile)?;
        if sans[..i].contains(s) {
            return Err(CaError::SanNotAllowed(format!("{s} appears twice")));
        }
    }

    let mut subject = Vec::new();
    for (kind, value) in &csr.subject {
        let rule = profile.subject.get(kind).ok_or_else(|| {
            CaError::SubjectNotAllowed(format!("subject attribute {kind} is not allowed by profile '{}'", profile.name))
        })?;
        let mut value = value.clone();
        names::check_subject_text(&kind.to_string(), &value).map_err(CaError::SubjectNotAllowed)?;
        if value.is_empty() || value.chars().count() > kind.max_len() {
            return Err(CaError::SubjectNotAllowed(format!(
                "subject {kind}='{value}' is empty or too long (max {})",
                kind.max_len()
            )));
        }
        if *kind == AttrKind::Country && !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(CaError::SubjectNotAllowed(format!("subject C='{value}' is not an ISO 3166 two-letter code")));
        }
        if rule.must_be_san {
            let found = sans.iter().find(|s| san_value(s).eq_ignore_ascii_case(&value)).ok_or_else(|| {
                CaError::SubjectNotAllowed(format!(
                    "subject {kind}='{value}' is not one of the subject alternative names"
                ))
            })?;
            value = san_value(found);
        }
        if let Some(qc) = &profile.qc {
            check_identifier(*kind, &value, qc)?;
        }
        if !rule.matches(&value) {
            return Err(CaError::SubjectNotAllowed(format!(
                "subject {kind}='{value}' does not match the pattern of profile '{}'",
                profile.name
            )));
        }
        subject.push((*kind, value));
    }
    for (kind, rule) in &profile.subject {
        if rule.required && !subject.iter().any(|(k, _)| k == kind) {
            return Err(CaError::SubjectNotAllowed(format!(
                "profile '{}' requires subject attribute {kind}",
                profile.name
            )));
        }
    }
    if let Some(qc) = &profile.qc {
        qualified(qc, &subject, profile, custody)?;
    }
    if subject.is_empty() && sans.is_empty() {
        return Err(CaError::SubjectNotAllowed("the CSR names no subject and no subject alternative name".into()));
    }
    // Canonical order, most significant first, whatever order the CSR used.
    subject.sort_by_key(|(k, _)| *k);

    let validity = requested.unwrap_or(profile.default_validity);
    if validity > profile.max_validity {
        return Err(CaError::ValidityTooLong {
            requested: validity,
            max: profile.max_validity,
            profile: profile.name.clone(),
        });
    }
    Ok(ValidatedRequest { subject, sans, validity })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DEFAULT_FILES;

    fn profile(name: &str) -> Profile {
        let text = DEFAULT_FILES.iter().find(|(f, _)| f.starts_with(&format!("profiles/{name}"))).unwrap().1;
        Profile::parse(name, text).unwrap()
    }

    /// A client's CSR, as every request is.
    fn validate(c: &VerifiedCsr, p: &Profile, v: Option<Duration>) -> Result<ValidatedRequest, CaError> {
        super::validate(c, p, v, KeyCustody::Client)
    }

    fn csr(key: SubjectKey, subject: &[(AttrKind, &str)], sans: Vec<San>) -> VerifiedCsr {
        VerifiedCsr {
            public_key: spki::SubjectPublicKeyInfoOwned {
                algorithm: spki::AlgorithmIdentifierOwned {
                    oid: const_oid::db::rfc5912::ID_EC_PUBLIC_KEY,
                    parameters: None,
                },
                subject_public_key: der::asn1::BitString::from_bytes(&[4]).unwrap(),
            },
            key,
            subject: subject.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            sans,
        }
    }

    #[test]
    fn tls_server_rules() {
        let p = profile("tls-server");
        let dns = |s: &str| San::Dns(s.into());
        let ok = validate(
            &csr(SubjectKey::EcP256, &[(AttrKind::CommonName, "WWW.Example.org")], vec![dns("www.example.ORG")]),
            &p,
            None,
        )
        .unwrap();
        assert_eq!(ok.subject, [(AttrKind::CommonName, "www.example.org".to_string())]);
        assert_eq!(ok.validity, p.default_validity);

        let err = |c: VerifiedCsr, v: Option<Duration>| validate(&c, &p, v).unwrap_err().to_string();
        assert!(err(csr(SubjectKey::EcP256, &[], vec![]), None).contains("at least 1"));
        assert!(err(csr(SubjectKey::EcP256, &[(AttrKind::CommonName, "other.org")], vec![dns("a.org")]), None)
            .contains("not one of the subject alternative names"));
        assert!(err(csr(SubjectKey::EcP256, &[(AttrKind::Organization, "X")], vec![dns("a.org")]), None)
            .contains("O is not allowed"));
        assert!(err(csr(SubjectKey::EcP256, &[], vec![San::Email("a@b.org".into())]), None)
            .contains("email SANs are not allowed"));
        assert!(err(csr(SubjectKey::EcP256, &[], vec![dns("a_b.org")]), None).contains("not a valid"));
        assert!(err(csr(SubjectKey::EcP256, &[], vec![dns("localhost")]), None).contains("not fully qualified"));
        assert!(err(csr(SubjectKey::EcP256, &[], vec![dns("a.org"), dns("A.org")]), None).contains("twice"));
        assert!(err(csr(SubjectKey::Rsa { bits: 1024 }, &[], vec![dns("a.org")]), None).contains("at least 2048"));
        assert!(err(csr(SubjectKey::EcP256, &[], vec![dns("a.org")]), Some(Duration::from_secs(400 * 86400)))
            .contains("maximum"));
        validate(&csr(SubjectKey::EcP384, &[], vec![dns("*.a.org"), San::Ip("1.1.1.1".parse().unwrap())]), &p, None)
            .unwrap();
        // Publicly-trusted names only (the checks themselves: `names`).
        assert!(err(csr(SubjectKey::EcP256, &[], vec![dns("*.co.uk")]), None).contains("public suffix"));
        assert!(err(csr(SubjectKey::EcP256, &[], vec![dns("db.corp")]), None).contains("internal name"));
        assert!(
            err(csr(SubjectKey::EcP256, &[], vec![San::Ip("10.0.0.1".parse().unwrap())]), None).contains("reserved")
        );
        assert!(err(csr(SubjectKey::EcP256, &[(AttrKind::CommonName, "a\u{202e}.org")], vec![dns("a.org")]), None)
            .contains("U+202E"));
    }

    #[test]
    fn internal_tls_server_takes_the_names_the_public_profile_refuses() {
        let p = profile("internal-tls-server");
        let dns = |s: &str| San::Dns(s.into());
        let internal = vec![dns("db.corp"), dns("*.svc.cluster.internal"), San::Ip("10.0.0.1".parse().unwrap())];
        validate(&csr(SubjectKey::EcP256, &[(AttrKind::CommonName, "db.corp")], internal), &p, None).unwrap();
        let e = validate(&csr(SubjectKey::EcP256, &[], vec![dns("10.0.0.1")]), &p, None).unwrap_err();
        assert!(e.to_string().contains("all-numeric"), "{e}");
    }

    #[test]
    fn document_signer_rules() {
        let p = profile("document-signer");
        let good = [(AttrKind::CommonName, "Jens Hansen"), (AttrKind::Country, "DK")];
        let v = validate(&csr(SubjectKey::EcP256, &good, vec![]), &p, None).unwrap();
        assert_eq!(v.subject[0].0, AttrKind::Country, "subject re-ordered most significant first");
        let e = validate(&csr(SubjectKey::EcP256, &[(AttrKind::CommonName, "Jens")], vec![]), &p, None).unwrap_err();
        assert!(e.to_string().contains("requires subject attribute C"), "{e}");
        let e = validate(
            &csr(SubjectKey::EcP256, &[(AttrKind::CommonName, "J"), (AttrKind::Country, "dk")], vec![]),
            &p,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("ISO 3166"), "{e}");
        let e = validate(&csr(SubjectKey::Rsa { bits: 2048 }, &good, vec![]), &p, None).unwrap_err();
        assert!(e.to_string().contains("3072"), "{e}");
    }

    /// A QcSSCD profile certifies the HSM's own keys only, never a client's CSR.
    #[test]
    fn a_qscd_profile_certifies_only_keys_the_hsm_holds() {
        let p = profile("qcp-n-qscd");
        let person = [
            (AttrKind::Country, "DK"),
            (AttrKind::GivenName, "Jens"),
            (AttrKind::Surname, "Hansen"),
            (AttrKind::CommonName, "Jens Hansen"),
            (AttrKind::SerialNumber, "PNODK-1234567890"),
        ];
        let c = csr(SubjectKey::EcP256, &person, vec![]);
        let e = validate(&c, &p, None).unwrap_err();
        assert!(matches!(e, CaError::KeyNotAllowed(_)) && e.to_string().contains("qc_statements.qscd"), "{e}");
        super::validate(&c, &p, None, KeyCustody::Hsm).unwrap();
    }
}
