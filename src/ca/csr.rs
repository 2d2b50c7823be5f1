//! PKCS#10 certificate requests (RFC 2986): decoding, proof of possession, and what they ask for.

use super::CaError;
use crate::policy::AttrKind;
use const_oid::db::{rfc5280, rfc5912};
use der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
use der::{Decode, Encode, Tag, Tagged};
use spki::{DecodePublicKey, SubjectPublicKeyInfoOwned};
use std::net::IpAddr;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::request::{CertReq, ExtensionReq};

/// The subject public key types trustd certifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectKey {
    EcP256,
    EcP384,
    Rsa { bits: usize },
}

/// A subject alternative name (RFC 5280 §4.2.1.6) trustd can put into a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
    Email(String),
    Uri(String),
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(v) => write!(f, "dns:{v}"),
            San::Ip(v) => write!(f, "ip:{v}"),
            San::Email(v) => write!(f, "email:{v}"),
            San::Uri(v) => write!(f, "uri:{v}"),
        }
    }
}

/// A decoded CSR whose signature (proof of possession) has been verified.
#[derive(Clone, Debug)]
pub struct VerifiedCsr {
    pub public_key: SubjectPublicKeyInfoOwned,
    pub key: SubjectKey,
    /// Subject attributes in the order of the CSR.
    pub subject: Vec<(AttrKind, String)>,
    pub sans: Vec<San>,
}

fn bad(msg: impl Into<String>) -> CaError {
    CaError::BadCsr(msg.into())
}

/// Decodes a CSR given as PEM or DER and verifies its self-signature.
pub fn parse(input: &[u8]) -> Result<VerifiedCsr, CaError> {
    let der = if input.trim_ascii_start().starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(input).map_err(|_| bad("PEM input is not UTF-8"))?;
        let (label, der) =
            der::pem::decode_vec(text.trim().as_bytes()).map_err(|e| bad(format!("invalid PEM: {e}")))?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(bad(format!("PEM label is '{label}', expected 'CERTIFICATE REQUEST'")));
        }
        der
    } else {
        input.to_vec()
    };
    if der.is_empty() {
        return Err(bad("empty CSR"));
    }
    let req = CertReq::from_der(&der).map_err(|e| bad(format!("not a DER PKCS#10 request: {e}")))?;
    let info_der = req.info.to_der().map_err(|e| bad(e.to_string()))?;
    let key = subject_key(&req.info.public_key)?;
    verify_pop(&req.info.public_key, &req.algorithm, req.signature.raw_bytes(), &info_der)?;
    Ok(VerifiedCsr { public_key: req.info.public_key.clone(), key, subject: subject(&req)?, sans: sans(&req)? })
}

fn subject_key(spki: &SubjectPublicKeyInfoOwned) -> Result<SubjectKey, CaError> {
    match spki.algorithm.oid {
        rfc5912::ID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
                .ok_or_else(|| CaError::KeyNotAllowed("EC key without a named curve".into()))?;
            match curve {
                rfc5912::SECP_256_R_1 => Ok(SubjectKey::EcP256),
                rfc5912::SECP_384_R_1 => Ok(SubjectKey::EcP384),
                other => Err(CaError::KeyNotAllowed(format!(
                    "EC curve {} is not supported (P-256 and P-384 are)",
                    const_oid::db::DB.by_oid(&other).unwrap_or(&other.to_string())
                ))),
            }
        }
        rfc5912::RSA_ENCRYPTION => {
            let der = spki.to_der().map_err(|e| bad(e.to_string()))?;
            let k = rsa::RsaPublicKey::from_public_key_der(&der)
                .map_err(|e| CaError::KeyNotAllowed(format!("invalid RSA public key: {e}")))?;
            Ok(SubjectKey::Rsa { bits: rsa::traits::PublicKeyParts::n(&k).bits() })
        }
        other => Err(CaError::KeyNotAllowed(format!(
            "public key algorithm {} is not supported (ECDSA P-256/P-384 and RSA are)",
            const_oid::db::DB.by_oid(&other).unwrap_or(&other.to_string())
        ))),
    }
}

/// RFC 2986 §4.2: the CSR is signed with the private key of the public key it carries. The
/// same verification as every other signature trustd checks ([`crate::keys::verify`]).
fn verify_pop(
    spki: &SubjectPublicKeyInfoOwned,
    alg: &spki::AlgorithmIdentifierOwned,
    sig: &[u8],
    info: &[u8],
) -> Result<(), CaError> {
    use crate::keys::verify::{verify_signature, SigError};
    verify_signature(spki, alg, None, sig, info).map_err(|e| match e {
        SigError::Unsupported(r) => CaError::BadCsr(format!("CSR signature: {r}")),
        SigError::Invalid(r) => CaError::CsrSignature(r),
    })
}

/// The text of a DirectoryString attribute value (RFC 5280 §4.1.2.4).
pub fn directory_string(v: &der::Any) -> Result<String, CaError> {
    let s = match v.tag() {
        Tag::Utf8String => Utf8StringRef::try_from(v).map(|s| s.as_str().to_owned()),
        Tag::PrintableString => PrintableStringRef::try_from(v).map(|s| s.as_str().to_owned()),
        Tag::Ia5String => Ia5StringRef::try_from(v).map(|s| s.as_str().to_owned()),
        t => return Err(CaError::SubjectNotAllowed(format!("subject attribute value of type {t} is not supported"))),
    };
    s.map_err(|e| bad(format!("invalid subject attribute value: {e}")))
}

fn subject(req: &CertReq) -> Result<Vec<(AttrKind, String)>, CaError> {
    let mut out: Vec<(AttrKind, String)> = Vec::new();
    for rdn in req.info.subject.0.iter() {
        for atv in rdn.0.iter() {
            let kind = AttrKind::from_oid(&atv.oid).ok_or_else(|| {
                CaError::SubjectNotAllowed(format!(
                    "subject attribute {} is not supported",
                    const_oid::db::DB.by_oid(&atv.oid).unwrap_or(&atv.oid.to_string())
                ))
            })?;
            if out.iter().any(|(k, _)| *k == kind) {
                return Err(CaError::SubjectNotAllowed(format!("subject has more than one {kind}")));
            }
            out.push((kind, directory_string(&atv.value)?));
        }
    }
    Ok(out)
}

fn sans(req: &CertReq) -> Result<Vec<San>, CaError> {
    let mut out = Vec::new();
    for attr in req.info.attributes.iter().filter(|a| a.oid == const_oid::db::rfc5912::ID_EXTENSION_REQ) {
        for value in attr.values.iter() {
            let exts: ExtensionReq = value.decode_as().map_err(|e| bad(format!("invalid extensionRequest: {e}")))?;
            // Only the SAN is taken from a CSR; every other extension comes from the profile.
            for ext in exts.0.iter().filter(|e| e.extn_id == rfc5280::ID_CE_SUBJECT_ALT_NAME) {
                let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
                    .map_err(|e| bad(format!("invalid subjectAltName: {e}")))?;
                for name in san.0 {
                    out.push(match name {
                        GeneralName::DnsName(s) => San::Dns(s.to_string()),
                        GeneralName::Rfc822Name(s) => San::Email(s.to_string()),
                        GeneralName::UniformResourceIdentifier(s) => San::Uri(s.to_string()),
                        GeneralName::IpAddress(o) => San::Ip(match o.as_bytes().len() {
                            4 => IpAddr::from(<[u8; 4]>::try_from(o.as_bytes()).map_err(|_| bad("bad IPv4 SAN"))?),
                            16 => IpAddr::from(<[u8; 16]>::try_from(o.as_bytes()).map_err(|_| bad("bad IPv6 SAN"))?),
                            n => return Err(bad(format!("iPAddress SAN of {n} octets"))),
                        }),
                        other => {
                            return Err(CaError::SanNotAllowed(format!(
                                "SAN type {} is not supported (dns, ip, email, uri are)",
                                other.tag()
                            )))
                        }
                    });
                }
            }
        }
    }
    Ok(out)
}

/// A PKCS#10 request (RFC 2986 §4) for `key`, signed by it: how the daemon asks its own CA for
/// the certificate of a key it holds only in the HSM (its TLS server key), through the same
/// checks as any client's request.
pub async fn build(
    key: &dyn crate::keys::SigningKey,
    subject: &[(AttrKind, String)],
    sans: &[San],
) -> Result<Vec<u8>, CaError> {
    use super::cert::{enc, extension, san_name};
    let mut attributes = x509_cert::attr::Attributes::new();
    if !sans.is_empty() {
        let names = sans.iter().map(san_name).collect::<Result<Vec<_>, _>>()?;
        let ext = extension(rfc5280::ID_CE_SUBJECT_ALT_NAME, false, &SubjectAltName(names))?;
        attributes.insert(ExtensionReq(vec![ext]).try_into().map_err(enc)?).map_err(enc)?;
    }
    let info = x509_cert::request::CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: super::cert::build_name(subject)?,
        public_key: key.public_key().clone(),
        attributes,
    };
    let info_der = info.to_der().map_err(enc)?;
    let signature = key.sign(&info_der).await?;
    let req = CertReq {
        info,
        algorithm: key.scheme().algorithm_identifier().map_err(enc)?,
        signature: signature.to_bit_string().map_err(enc)?,
    };
    req.to_der().map_err(enc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/csr").join(name)).unwrap()
    }

    #[test]
    fn rsa_pss_csr_verifies() {
        let csr = parse(&testdata("rsa-pss-sha256.csr.pem")).unwrap();
        assert_eq!(csr.key, SubjectKey::Rsa { bits: 2048 });
        assert_eq!(csr.sans, [San::Dns("pss.example.com".into())]);
    }

    #[test]
    fn der_csr_with_every_san_type() {
        let csr = parse(&testdata("ec-p384-sha384.csr.der")).unwrap();
        assert_eq!(csr.key, SubjectKey::EcP384);
        let subject: Vec<_> = csr.subject.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(subject, ["C=DK", "O=Agency", "CN=p384.example.com"]);
        let sans: Vec<_> = csr.sans.iter().map(ToString::to_string).collect();
        assert_eq!(
            sans,
            [
                "dns:p384.example.com",
                "ip:192.0.2.7",
                "ip:2001:db8::1",
                "email:a@example.com",
                "uri:https://example.com/x"
            ]
        );
    }

    #[test]
    fn refusals() {
        let err = |name: &str| parse(&testdata(name)).unwrap_err().to_string();
        assert!(err("ed25519.csr.pem").contains("is not supported"), "{}", err("ed25519.csr.pem"));
        assert!(err("two-cn.csr.pem").contains("more than one CN"));
        assert!(err("unknown-attribute.csr.pem").contains("title"), "{}", err("unknown-attribute.csr.pem"));
        // One flipped bit in the signed part: proof of possession fails.
        let mut der = testdata("ec-p384-sha384.csr.der");
        der[40] ^= 1;
        assert!(matches!(parse(&der), Err(CaError::CsrSignature(_)) | Err(CaError::BadCsr(_))));
    }

    #[test]
    fn built_request_parses_with_proof_of_possession() {
        let key = crate::keys::software::SoftwareKey::p256(7);
        let sans = [San::Dns("localhost".into()), San::Ip("127.0.0.1".parse().unwrap())];
        let subject = [(AttrKind::CommonName, "localhost".to_owned())];
        let der = crate::testing::block_on(build(&key, &subject, &sans)).unwrap();
        let csr = parse(&der).unwrap();
        assert_eq!(csr.key, SubjectKey::EcP256);
        assert_eq!(csr.sans, sans);
        assert_eq!(csr.subject, subject);
        assert_eq!(&csr.public_key, crate::keys::SigningKey::public_key(&key));
    }
}
