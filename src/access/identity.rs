//! The identities a client certificate carries: its SAN URIs (SPIFFE-style,
//! `spiffe://trust-domain/name`), its SAN DNS names, and its subject's commonName.

use der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

/// One identity, as the access policy writes it: a URI, `dns:NAME` or `cn:NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    Uri(String),
    /// Lower case (RFC 4343: DNS names compare without case).
    Dns(String),
    CommonName(String),
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Uri(u) => f.write_str(u),
            Identity::Dns(d) => write!(f, "dns:{d}"),
            Identity::CommonName(c) => write!(f, "cn:{c}"),
        }
    }
}

impl std::str::FromStr for Identity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let nonempty = |v: &str| (!v.is_empty()).then(|| v.to_owned()).ok_or(format!("'{s}': empty name"));
        if let Some(d) = s.strip_prefix("dns:") {
            Ok(Identity::Dns(nonempty(d)?.to_ascii_lowercase()))
        } else if let Some(c) = s.strip_prefix("cn:") {
            Ok(Identity::CommonName(nonempty(c)?))
        } else if s.split_once("://").is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty()) {
            Ok(Identity::Uri(s.to_owned()))
        } else {
            Err(format!("'{s}' is not an identity: write a URI (spiffe://…), dns:NAME or cn:NAME"))
        }
    }
}

/// A client certificate's identities, read once for its connection rather than for each of its
/// requests (a certificate's parse showed in profiles of every gRPC workload), or why it names
/// none. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CertificateIdentities(std::sync::Arc<Result<Vec<Identity>, String>>);

impl CertificateIdentities {
    /// The identities of the certificate `der` ([`of_certificate`]).
    pub fn of(der: &[u8]) -> Self {
        CertificateIdentities(std::sync::Arc::new(of_certificate(der)))
    }

    /// The identities, SAN URIs first, or why there are none.
    pub fn get(&self) -> Result<&[Identity], &str> {
        self.0.as_ref().as_ref().map(Vec::as_slice).map_err(String::as_str)
    }
}

/// Every identity of a certificate (DER), SAN URIs first. Refused: a certificate that carries
/// none.
pub fn of_certificate(der: &[u8]) -> Result<Vec<Identity>, String> {
    let cert = Certificate::from_der(der).map_err(|e| format!("client certificate: {e}"))?;
    let mut ids = Vec::new();
    let san =
        cert.tbs_certificate.get::<SubjectAltName>().map_err(|e| format!("client certificate: subjectAltName: {e}"))?;
    for name in san.map(|(_, s)| s.0).unwrap_or_default() {
        match name {
            GeneralName::UniformResourceIdentifier(u) => ids.push(Identity::Uri(u.to_string())),
            GeneralName::DnsName(d) => ids.push(Identity::Dns(d.to_string().to_ascii_lowercase())),
            _ => {}
        }
    }
    ids.sort_by_key(|i| !matches!(i, Identity::Uri(_)));
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == const_oid::db::rfc4519::CN {
                if let Ok(cn) = crate::ca::csr::directory_string(&atv.value) {
                    ids.push(Identity::CommonName(cn));
                }
            }
        }
    }
    if ids.is_empty() {
        return Err("the client certificate names no identity (no SAN URI or DNS name, no commonName)".into());
    }
    Ok(ids)
}
