//! Certificate profiles (RFC 5280 §4.2 extensions, CA/Browser Forum Baseline Requirements
//! §7.1 for the TLS ones): what a CSR may ask for, and what the certificate will contain.

use crate::qc::{Pds, QcType, Semantics, Statement};
use const_oid::ObjectIdentifier;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use x509_cert::ext::pkix::KeyUsages;

/// A subject attribute a profile can allow (RFC 5280 §4.1.2.4, X.520).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttrKind {
    Country,
    State,
    Locality,
    Organization,
    OrganizationalUnit,
    OrganizationIdentifier,
    Surname,
    GivenName,
    SerialNumber,
    CommonName,
}

impl AttrKind {
    /// All kinds, in the order they are written into an issued subject (most significant first).
    pub const ALL: [AttrKind; 10] = [
        Self::Country,
        Self::State,
        Self::Locality,
        Self::Organization,
        Self::OrganizationalUnit,
        Self::OrganizationIdentifier,
        Self::Surname,
        Self::GivenName,
        Self::SerialNumber,
        Self::CommonName,
    ];

    /// The short name used in profiles and RFC 4514 strings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Country => "C",
            Self::State => "ST",
            Self::Locality => "L",
            Self::Organization => "O",
            Self::OrganizationalUnit => "OU",
            Self::OrganizationIdentifier => "organizationIdentifier",
            Self::Surname => "SN",
            Self::GivenName => "GN",
            Self::SerialNumber => "serialNumber",
            Self::CommonName => "CN",
        }
    }

    /// The attribute type OID.
    pub fn oid(self) -> ObjectIdentifier {
        use const_oid::db::rfc4519;
        match self {
            Self::Country => rfc4519::C,
            Self::State => rfc4519::ST,
            Self::Locality => rfc4519::L,
            Self::Organization => rfc4519::O,
            Self::OrganizationalUnit => rfc4519::OU,
            Self::OrganizationIdentifier => ObjectIdentifier::new_unwrap("2.5.4.97"),
            Self::Surname => rfc4519::SN,
            Self::GivenName => rfc4519::GIVEN_NAME,
            Self::SerialNumber => rfc4519::SERIAL_NUMBER,
            Self::CommonName => rfc4519::CN,
        }
    }

    /// The kind with this OID, if trustd knows it.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.oid() == *oid)
    }

    /// The kind with this short name (`CN`, `organizationIdentifier`).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// RFC 5280 upper bounds (Appendix A.1, ub-*), in characters.
    pub fn max_len(self) -> usize {
        match self {
            Self::Country => 2,
            Self::CommonName | Self::Locality | Self::State | Self::Organization | Self::OrganizationalUnit => 64,
            Self::SerialNumber => 64,
            _ => 128,
        }
    }
}

impl fmt::Display for AttrKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Subject alternative name types a profile can allow (RFC 5280 §4.2.1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SanKind {
    Dns,
    Ip,
    Email,
    Uri,
}

impl SanKind {
    /// The prefix used in profiles and in the API ("dns:example.org").
    pub fn name(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Ip => "ip",
            Self::Email => "email",
            Self::Uri => "uri",
        }
    }
}

/// A rule for a value: required or not, and a pattern the whole value must match.
#[derive(Clone, Debug)]
pub struct ValueRule {
    pub required: bool,
    pub pattern: Option<Regex>,
    /// For subject attributes: the value must also appear among the SANs (CA/B BR §7.1.4.3
    /// for commonName).
    pub must_be_san: bool,
}

impl ValueRule {
    /// True if the value is allowed by the pattern (or there is none).
    pub fn matches(&self, value: &str) -> bool {
        self.pattern.as_ref().is_none_or(|p| p.is_match(value))
    }
}

/// Key types a profile accepts in a CSR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRules {
    pub ecdsa_p256: bool,
    pub ecdsa_p384: bool,
    /// Smallest RSA modulus accepted, or `None` if RSA is not allowed.
    pub rsa_min_bits: Option<u32>,
}

/// A validated certificate profile.
#[derive(Clone, Debug)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub keys: KeyRules,
    pub default_validity: Duration,
    pub max_validity: Duration,
    /// How far notBefore is set before the issuance time, to absorb relying parties' clock skew.
    pub backdate: Duration,
    pub key_usage: KeyUsages_,
    pub extended_key_usage: Vec<ObjectIdentifier>,
    pub certificate_policies: Vec<ObjectIdentifier>,
    /// URL templates; `{base}` is the configured public base URL, `{ca}` the issuing CA's name.
    pub crl_url: Option<String>,
    pub ocsp_url: Option<String>,
    pub ca_issuers_url: Option<String>,
    /// Allowed subject attributes; anything else in a CSR's subject is refused.
    pub subject: BTreeMap<AttrKind, ValueRule>,
    /// Allowed SAN types; anything else in a CSR is refused.
    pub san: BTreeMap<SanKind, ValueRule>,
    pub san_min: usize,
    pub san_max: usize,
    /// Whether dNSName SANs may be wildcards (`*.example.org`).
    pub allow_wildcard: bool,
    /// Names for publicly-trusted certificates only (CA/B Forum BR): DNS names under a public
    /// suffix, no wildcard over one, no reserved IP addresses (`ca::names`).
    pub public_names: bool,
    /// The qualified-certificate statements of every certificate (`[qc_statements]`).
    pub qc: Option<QcProfile>,
}

/// What a profile states in qcStatements (ETSI EN 319 412-5), and the identifier its semantics
/// identifier commits the subject to (EN 319 412-1 §5.1): the subject's serialNumber for a
/// natural person, its organizationIdentifier for a legal person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QcProfile {
    /// QcCompliance: an EU qualified certificate.
    pub compliance: bool,
    /// QcSSCD: the private key is in a qualified signature or seal creation device.
    pub qscd: bool,
    pub qc_type: Option<QcType>,
    pub pds: Vec<Pds>,
    pub semantics: Option<Semantics>,
}

impl QcProfile {
    /// The statements, in the order the certificate carries them.
    pub fn statements(&self) -> Vec<Statement> {
        let mut out = Vec::new();
        if self.compliance {
            out.push(Statement::Compliance);
        }
        if self.qscd {
            out.push(Statement::Sscd);
        }
        out.extend(self.qc_type.map(Statement::Type));
        if !self.pds.is_empty() {
            out.push(Statement::Pds(self.pds.clone()));
        }
        out.extend(self.semantics.map(Statement::Semantics));
        out
    }
}

/// Key usage bits as a set (x509-cert's `KeyUsage` wraps a `FlagSet`).
pub type KeyUsages_ = flagset::FlagSet<KeyUsages>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    description: String,
    keys: KeysFile,
    validity: ValidityFile,
    extensions: ExtensionsFile,
    #[serde(default)]
    subject: BTreeMap<String, RuleFile>,
    #[serde(default)]
    san: SanFile,
    #[serde(default)]
    qc_statements: Option<QcFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QcFile {
    #[serde(default)]
    compliance: bool,
    #[serde(default)]
    qscd: bool,
    #[serde(default, rename = "type")]
    qc_type: Option<String>,
    #[serde(default)]
    pds: Vec<PdsFile>,
    #[serde(default)]
    semantics: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PdsFile {
    url: String,
    language: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    allowed: Vec<String>,
    #[serde(default)]
    rsa_min_bits: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidityFile {
    default: String,
    max: String,
    #[serde(default)]
    backdate: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtensionsFile {
    key_usage: Vec<String>,
    #[serde(default)]
    extended_key_usage: Vec<String>,
    #[serde(default)]
    certificate_policies: Vec<String>,
    #[serde(default)]
    crl_distribution_point: Option<String>,
    #[serde(default)]
    ocsp: Option<String>,
    #[serde(default)]
    ca_issuers: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    required: bool,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    must_be_san: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SanFile {
    #[serde(default)]
    min: usize,
    #[serde(default)]
    max: Option<usize>,
    #[serde(default)]
    allow_wildcard: bool,
    #[serde(default)]
    public_names: bool,
    #[serde(default)]
    dns: Option<RuleFile>,
    #[serde(default)]
    ip: Option<RuleFile>,
    #[serde(default)]
    email: Option<RuleFile>,
    #[serde(default)]
    uri: Option<RuleFile>,
}

fn duration(field: &str, s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{field}: invalid duration '{s}': {e}"))
}

fn rule(field: &str, r: RuleFile) -> Result<ValueRule, String> {
    let pattern = r
        .pattern
        .map(|p| {
            // Anchor: a pattern constrains the whole value, not a substring of it.
            Regex::new(&format!("^(?:{p})$")).map_err(|e| format!("{field}.pattern: invalid regular expression: {e}"))
        })
        .transpose()?;
    Ok(ValueRule { required: r.required, pattern, must_be_san: r.must_be_san })
}

fn key_usage(name: &str) -> Option<KeyUsages> {
    Some(match name {
        "digitalSignature" => KeyUsages::DigitalSignature,
        "nonRepudiation" | "contentCommitment" => KeyUsages::NonRepudiation,
        "keyEncipherment" => KeyUsages::KeyEncipherment,
        "dataEncipherment" => KeyUsages::DataEncipherment,
        "keyAgreement" => KeyUsages::KeyAgreement,
        "keyCertSign" => KeyUsages::KeyCertSign,
        "cRLSign" => KeyUsages::CRLSign,
        _ => return None,
    })
}

/// An extended key usage a profile may give. timeStamping and OCSPSigning are refused: a
/// certificate with them speaks for the TSA (RFC 3161 §2.3) or, issued by the CA, for its
/// revocation status (RFC 6960 §4.2.2.2); only the key ceremony makes those certificates.
fn eku(name: &str) -> Result<ObjectIdentifier, String> {
    use const_oid::db::rfc5280::*;
    let oid = match name {
        "serverAuth" => ID_KP_SERVER_AUTH,
        "clientAuth" => ID_KP_CLIENT_AUTH,
        "codeSigning" => ID_KP_CODE_SIGNING,
        "emailProtection" => ID_KP_EMAIL_PROTECTION,
        "timeStamping" => ID_KP_TIME_STAMPING,
        "OCSPSigning" => ID_KP_OCSP_SIGNING,
        other => ObjectIdentifier::new(other).map_err(|_| format!("unknown extended key usage '{other}'"))?,
    };
    if oid == ID_KP_TIME_STAMPING || oid == ID_KP_OCSP_SIGNING {
        return Err(format!("'{name}' is for the key ceremony's TSA and OCSP certificates only, never a profile's"));
    }
    Ok(oid)
}

fn oid(field: &str, s: &str) -> Result<ObjectIdentifier, String> {
    ObjectIdentifier::new(s).map_err(|e| format!("{field}: invalid OID '{s}': {e}"))
}

fn url_template(field: &str, t: Option<String>) -> Result<Option<String>, String> {
    match t {
        Some(t) if !(t.starts_with("http://") || t.starts_with("{base}")) => {
            // RFC 5280 §4.2.1.13 / §4.2.2.1: relying parties fetch these over plain HTTP.
            Err(format!("{field}: URL must start with http:// or {{base}}, got '{t}'"))
        }
        t => Ok(t),
    }
}

impl Profile {
    /// Parses and validates a profile; the error names the field.
    pub fn parse(name: &str, text: &str) -> Result<Profile, String> {
        // `ceremony:<role>` names the key ceremony's certificates in records (store::Origin).
        if name.is_empty() || name.contains(':') {
            return Err(format!("profile name '{name}': must be non-empty and contain no ':'"));
        }
        let f: ProfileFile = toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))?;

        let mut keys = KeyRules { ecdsa_p256: false, ecdsa_p384: false, rsa_min_bits: None };
        for k in &f.keys.allowed {
            match k.as_str() {
                "ecdsa-p256" => keys.ecdsa_p256 = true,
                "ecdsa-p384" => keys.ecdsa_p384 = true,
                "rsa" => keys.rsa_min_bits = Some(f.keys.rsa_min_bits.unwrap_or(2048)),
                other => return Err(format!("keys.allowed: unknown key type '{other}' (ecdsa-p256, ecdsa-p384, rsa)")),
            }
        }
        if keys.rsa_min_bits.is_some_and(|b| b < 2048) {
            return Err("keys.rsa_min_bits: below 2048 is not allowed".into());
        }
        if keys.rsa_min_bits.is_none() && f.keys.rsa_min_bits.is_some() {
            return Err("keys.rsa_min_bits: set, but \"rsa\" is not in keys.allowed".into());
        }
        if keys == (KeyRules { ecdsa_p256: false, ecdsa_p384: false, rsa_min_bits: None }) {
            return Err("keys.allowed: no key type allowed".into());
        }

        let default_validity = duration("validity.default", &f.validity.default)?;
        let max_validity = duration("validity.max", &f.validity.max)?;
        if default_validity > max_validity {
            return Err("validity.default: longer than validity.max".into());
        }
        if default_validity.is_zero() {
            return Err("validity.default: must be positive".into());
        }
        let backdate = f.validity.backdate.as_deref().map(|s| duration("validity.backdate", s)).transpose()?;

        let mut ku = KeyUsages_::default();
        for k in &f.extensions.key_usage {
            let bit = key_usage(k).ok_or_else(|| format!("extensions.key_usage: unknown key usage '{k}'"))?;
            if matches!(bit, KeyUsages::KeyCertSign | KeyUsages::CRLSign) {
                return Err(format!("extensions.key_usage: '{k}' is for CA certificates, not end entities"));
            }
            ku |= bit;
        }
        if ku.is_empty() {
            return Err("extensions.key_usage: at least one key usage is required".into());
        }
        let extended_key_usage = f
            .extensions
            .extended_key_usage
            .iter()
            .map(|e| eku(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("extensions.extended_key_usage: {e}"))?;
        let certificate_policies = f
            .extensions
            .certificate_policies
            .iter()
            .map(|p| oid("extensions.certificate_policies", p))
            .collect::<Result<Vec<_>, _>>()?;

        let mut subject = BTreeMap::new();
        for (attr, r) in f.subject {
            let kind = AttrKind::from_name(&attr).ok_or_else(|| {
                let known: Vec<_> = AttrKind::ALL.iter().map(|k| k.name()).collect();
                format!("subject.{attr}: unknown attribute (known: {})", known.join(", "))
            })?;
            subject.insert(kind, rule(&format!("subject.{attr}"), r)?);
        }

        let mut san = BTreeMap::new();
        for (kind, r) in [
            (SanKind::Dns, f.san.dns),
            (SanKind::Ip, f.san.ip),
            (SanKind::Email, f.san.email),
            (SanKind::Uri, f.san.uri),
        ] {
            if let Some(r) = r {
                san.insert(kind, rule(&format!("san.{}", kind.name()), r)?);
            }
        }
        let san_max = f.san.max.unwrap_or(100);
        if f.san.min > san_max {
            return Err("san.min: larger than san.max".into());
        }
        if f.san.min > 0 && san.is_empty() {
            return Err("san.min: SANs required but no SAN type is allowed".into());
        }
        if subject.values().any(|r| r.must_be_san) && san.is_empty() {
            return Err("subject: must_be_san set but no SAN type is allowed".into());
        }
        if f.san.allow_wildcard && !san.contains_key(&SanKind::Dns) {
            return Err("san.allow_wildcard: set but dns SANs are not allowed".into());
        }
        if f.san.public_names && !san.contains_key(&SanKind::Dns) && !san.contains_key(&SanKind::Ip) {
            return Err("san.public_names: set but neither dns nor ip SANs are allowed".into());
        }

        let qc = f.qc_statements.map(|q| qc_profile(q, &certificate_policies, &mut subject)).transpose()?;

        Ok(Profile {
            name: name.to_owned(),
            description: f.description,
            keys,
            default_validity,
            max_validity,
            backdate: backdate.unwrap_or(Duration::from_secs(60)),
            key_usage: ku,
            extended_key_usage,
            certificate_policies,
            crl_url: url_template("extensions.crl_distribution_point", f.extensions.crl_distribution_point)?,
            ocsp_url: url_template("extensions.ocsp", f.extensions.ocsp)?,
            ca_issuers_url: url_template("extensions.ca_issuers", f.extensions.ca_issuers)?,
            subject,
            san,
            san_min: f.san.min,
            san_max,
            allow_wildcard: f.san.allow_wildcard,
            public_names: f.san.public_names,
            qc,
        })
    }
}

/// `[qc_statements]` checked against EN 319 412-5 and the profile's subject rules; a semantics
/// identifier makes the identifier attributes it names required.
fn qc_profile(
    f: QcFile,
    certificate_policies: &[ObjectIdentifier],
    subject: &mut BTreeMap<AttrKind, ValueRule>,
) -> Result<QcProfile, String> {
    let qc_type = f
        .qc_type
        .map(|t| QcType::from_name(&t).ok_or(format!("qc_statements.type: unknown '{t}' (esign, eseal, web)")))
        .transpose()?;
    let semantics = f
        .semantics
        .map(|t| Semantics::from_name(&t).ok_or(format!("qc_statements.semantics: unknown '{t}' (natural, legal)")))
        .transpose()?;
    let mut pds = Vec::new();
    for p in f.pds {
        // EN 319 412-5 §4.3.4: an https URL, a two-letter ISO 639-1 language code.
        if !p.url.starts_with("https://") || !p.url.is_ascii() || p.url.len() <= "https://".len() {
            return Err(format!("qc_statements.pds: '{}' is not an https URL", p.url));
        }
        if !(p.language.len() == 2 && p.language.bytes().all(|b| b.is_ascii_lowercase())) {
            return Err(format!("qc_statements.pds: language '{}' is not an ISO 639-1 code ('en', 'da')", p.language));
        }
        pds.push(Pds { url: p.url, language: p.language });
    }
    if f.compliance {
        if qc_type.is_none() {
            return Err("qc_statements.type: an EU qualified certificate states its type (EN 319 412-5 §4.2.3)".into());
        }
        if pds.is_empty() {
            return Err("qc_statements.pds: an EU qualified certificate names its PKI disclosure statement (EN 319 \
                        412-5 §4.3.4)"
                .into());
        }
        if certificate_policies.is_empty() {
            return Err("extensions.certificate_policies: a qualified certificate names the policy it is issued \
                        under (EN 319 411-2: QCP-n 0.4.0.194112.1.0, QCP-l .1.1, QCP-n-qscd .1.2, QCP-l-qscd .1.3)"
                .into());
        }
    }
    if f.qscd && !f.compliance {
        return Err("qc_statements.qscd: QcSSCD is stated in EU qualified certificates only (set compliance)".into());
    }
    match (qc_type, semantics) {
        (Some(QcType::Esign), s) if s != Some(Semantics::Natural) => {
            return Err("qc_statements.semantics: an esign certificate is a natural person's (EN 319 412-2): \
                        semantics = \"natural\""
                .into())
        }
        (Some(QcType::Eseal), s) if s != Some(Semantics::Legal) => {
            return Err("qc_statements.semantics: an eseal certificate is a legal person's (EN 319 412-3): \
                        semantics = \"legal\""
                .into())
        }
        _ => {}
    }
    let identifiers: &[AttrKind] = match semantics {
        Some(Semantics::Natural) => &[AttrKind::Country, AttrKind::CommonName, AttrKind::SerialNumber],
        Some(Semantics::Legal) => {
            &[AttrKind::Country, AttrKind::CommonName, AttrKind::Organization, AttrKind::OrganizationIdentifier]
        }
        None => &[],
    };
    for kind in identifiers {
        let rule = subject.get_mut(kind).ok_or_else(|| {
            format!("subject.{kind}: required by qc_statements.semantics (EN 319 412-2 §4.2.4, 412-3 §4.2.1)")
        })?;
        rule.required = true;
    }
    Ok(QcProfile { compliance: f.compliance, qscd: f.qscd, qc_type, pds, semantics })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        description = "test"
        [keys]
        allowed = ["ecdsa-p256", "rsa"]
        rsa_min_bits = 3072
        [validity]
        default = "30d"
        max = "90d"
        [extensions]
        key_usage = ["digitalSignature"]
        extended_key_usage = ["serverAuth", "1.3.6.1.5.5.7.3.2"]
        certificate_policies = ["2.23.140.1.2.1"]
        crl_distribution_point = "{base}/crl/{ca}.crl"
        [subject]
        CN = { pattern = '[a-z.]+', must_be_san = true }
        O = { required = true }
        [san]
        min = 1
        dns = {}
    "#;

    const QUALIFIED: &str = r#"
        description = "q"
        [keys]
        allowed = ["ecdsa-p256"]
        [validity]
        default = "30d"
        max = "90d"
        [extensions]
        key_usage = ["nonRepudiation"]
        certificate_policies = ["0.4.0.194112.1.0"]
        [subject]
        C = {}
        CN = {}
        serialNumber = {}
        [qc_statements]
        compliance = true
        type = "esign"
        pds = [{ url = "https://x.example/pds", language = "en" }]
        semantics = "natural"
    "#;

    /// EN 319 412-5's statements from `[qc_statements]`; the identifiers the semantics names
    /// become required; what a qualified profile must state is refused by field when missing.
    #[test]
    fn qualified_statements_are_parsed_and_checked() {
        let p = Profile::parse("q", QUALIFIED).unwrap();
        let qc = p.qc.as_ref().unwrap();
        assert_eq!(
            qc.statements(),
            [
                Statement::Compliance,
                Statement::Type(QcType::Esign),
                Statement::Pds(vec![Pds { url: "https://x.example/pds".into(), language: "en".into() }]),
                Statement::Semantics(Semantics::Natural),
            ]
        );
        for kind in [AttrKind::Country, AttrKind::CommonName, AttrKind::SerialNumber] {
            assert!(p.subject[&kind].required, "{kind}");
        }
        for (from, to, says) in [
            ("type = \"esign\"\n", "", "qc_statements.type: an EU qualified certificate states its type"),
            ("type = \"esign\"", "type = \"sign\"", "qc_statements.type: unknown 'sign'"),
            ("type = \"esign\"", "type = \"eseal\"", "semantics = \"legal\""),
            ("semantics = \"natural\"", "semantics = \"legal\"", "semantics = \"natural\""),
            ("semantics = \"natural\"", "semantics = \"person\"", "qc_statements.semantics: unknown 'person'"),
            ("pds = [{ url = \"https://x.example/pds\", language = \"en\" }]", "", "qc_statements.pds: an EU"),
            ("https://x.example/pds", "http://x.example/pds", "is not an https URL"),
            ("language = \"en\"", "language = \"eng\"", "not an ISO 639-1 code"),
            ("certificate_policies = [\"0.4.0.194112.1.0\"]", "", "extensions.certificate_policies: a qualified"),
            ("compliance = true", "compliance = false\nqscd = true", "qc_statements.qscd: QcSSCD is stated in EU"),
            ("serialNumber = {}", "", "subject.serialNumber: required by qc_statements.semantics"),
            ("compliance = true", "compliance = true\nqcsd = true", "unknown field `qcsd`"),
        ] {
            assert!(QUALIFIED.contains(from), "{from}");
            let e = Profile::parse("q", &QUALIFIED.replace(from, to)).unwrap_err();
            assert!(e.contains(says), "{from} -> {to}: {e}");
        }
    }

    #[test]
    fn parses_a_full_profile() {
        let p = Profile::parse("t", GOOD).unwrap();
        assert_eq!(p.keys, KeyRules { ecdsa_p256: true, ecdsa_p384: false, rsa_min_bits: Some(3072) });
        assert_eq!(p.default_validity, Duration::from_secs(30 * 86400));
        assert_eq!(p.extended_key_usage.len(), 2);
        assert!(p.subject[&AttrKind::CommonName].matches("a.b"));
        assert!(!p.subject[&AttrKind::CommonName].matches("A.b"), "patterns are anchored");
        assert!(!p.subject[&AttrKind::CommonName].matches("a.b x"), "patterns are anchored");
        assert!(p.subject[&AttrKind::Organization].required);
        assert_eq!(p.san_min, 1);
    }

    fn broken(from: &str, to: &str) -> String {
        let text = GOOD.replacen(from, to, 1);
        assert_ne!(text, GOOD, "replacement {from:?} did not apply");
        Profile::parse("t", &text).unwrap_err()
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"max = "90d""#, r#"max = "ninety""#, "validity.max"),
            (r#"max = "90d""#, r#"max = "10d""#, "validity.default"),
            ("rsa_min_bits = 3072", "rsa_min_bits = 1024", "keys.rsa_min_bits"),
            (r#""ecdsa-p256", "rsa""#, r#""ecdsa-p192""#, "keys.allowed"),
            (r#"key_usage = ["digitalSignature"]"#, r#"key_usage = ["keyCertSign"]"#, "extensions.key_usage"),
            (r#"key_usage = ["digitalSignature"]"#, r#"key_usage = ["sign"]"#, "extensions.key_usage"),
            (r#""serverAuth","#, r#""serverauth","#, "extensions.extended_key_usage"),
            (r#""serverAuth","#, r#""timeStamping","#, "extensions.extended_key_usage"),
            (r#""serverAuth","#, r#""OCSPSigning","#, "extensions.extended_key_usage"),
            (r#""serverAuth","#, r#""1.3.6.1.5.5.7.3.9","#, "key ceremony"),
            (r#""serverAuth","#, r#""1.3.6.1.5.5.7.3.8","#, "key ceremony"),
            (r#"["2.23.140.1.2.1"]"#, r#"["policy"]"#, "extensions.certificate_policies"),
            ("{base}/crl", "ldap://x/crl", "extensions.crl_distribution_point"),
            ("pattern = '[a-z.]+'", "pattern = '[a-z'", "subject.CN.pattern"),
            ("O = {", "Organisation = {", "subject.Organisation"),
            ("min = 1", "min = 1\nmax = 0", "san.min"),
            ("dns = {}", "dns = {}\nfax = {}", "fax"),
            ("description", "descr", "description"),
        ];
        for (from, to, field) in cases {
            let e = broken(from, to);
            assert!(e.contains(field), "{to:?}: error {e:?} does not name {field}");
        }
        // A profile may not be named as the key ceremony's certificates are (`ceremony:tsa`).
        for name in ["", "ceremony:tsa", "a:b"] {
            assert!(Profile::parse(name, GOOD).unwrap_err().contains("profile name"), "{name:?}");
        }
    }
}
