//! Building and signing X.509 certificates (RFC 5280 §4.1) with the issuer's key in the HSM.
//!
//! The TBSCertificate is assembled here from x509-cert's types rather than through
//! `CertificateBuilder`, because the store must record the exact to-be-signed bytes before the
//! HSM signs them, and because every extension comes from a profile, not from builder defaults.

use super::csr::San;
use super::CaError;
use crate::keys::{Signature, SignatureScheme};
use crate::policy::{AttrKind, Profile};
use crate::serial::Serial;
use const_oid::db::rfc5280;
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{Ia5String, OctetString, PrintableStringRef, SetOfVec, Utf8StringRef};
use der::{Any, Encode};
use sha1::Digest;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::time::{Time, Validity};

pub(super) fn enc(e: impl std::fmt::Display) -> CaError {
    CaError::Internal(format!("encoding: {e}"))
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds.
pub fn x509_time(unix_secs: u64) -> Result<Time, CaError> {
    crate::unix_time::x509_time(unix_secs).map_err(enc)
}

/// A distinguished name from attributes in the given order: PrintableString for countryName and
/// serialNumber (X.520), UTF8String otherwise (RFC 5280 §4.1.2.4).
pub fn build_name(attrs: &[(AttrKind, String)]) -> Result<Name, CaError> {
    let mut rdns = Vec::with_capacity(attrs.len());
    for (kind, value) in attrs {
        let any = match kind {
            AttrKind::Country | AttrKind::SerialNumber => Any::encode_from(
                &PrintableStringRef::new(value)
                    .map_err(|_| CaError::SubjectNotAllowed(format!("{kind}='{value}' is not a PrintableString")))?,
            ),
            _ => Any::encode_from(&Utf8StringRef::new(value).map_err(enc)?),
        }
        .map_err(enc)?;
        let atv = AttributeTypeAndValue { oid: kind.oid(), value: any };
        rdns.push(RelativeDistinguishedName(SetOfVec::try_from(vec![atv]).map_err(enc)?));
    }
    Ok(RdnSequence(rdns))
}

/// RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING value.
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    sha1::Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec()
}

/// An extension (RFC 5280 §4.1 Extension, §5.1 for CRLs) with `value` DER-encoded in extnValue.
pub(super) fn extension(oid: ObjectIdentifier, critical: bool, value: &impl Encode) -> Result<Extension, CaError> {
    Ok(Extension { extn_id: oid, critical, extn_value: OctetString::new(value.to_der().map_err(enc)?).map_err(enc)? })
}

fn ext<T: Encode + AssociatedOid>(critical: bool, value: &T) -> Result<Extension, CaError> {
    extension(T::OID, critical, value)
}

fn uri(s: &str) -> Result<GeneralName, CaError> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(s).map_err(enc)?))
}

/// The issuer side of a certificate or CRL: its name, key identifier and the scheme its key
/// signs with (what goes into the `signature` field; the key signs afterwards).
pub struct Issuer<'a> {
    pub name: &'a Name,
    pub key_id: &'a [u8],
    pub scheme: SignatureScheme,
}

/// What goes into one certificate apart from the issuer.
pub struct CertSpec {
    pub serial: Serial,
    pub subject: Name,
    pub public_key: SubjectPublicKeyInfoOwned,
    pub not_before: u64,
    pub not_after: u64,
    pub extensions: Vec<Extension>,
}

/// The TBSCertificate, v3, signed by `issuer` (RFC 5280 §4.1.2).
pub fn tbs(spec: CertSpec, issuer: &Issuer<'_>) -> Result<TbsCertificate, CaError> {
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: spec.serial.to_x509().map_err(enc)?,
        signature: issuer.scheme.algorithm_identifier().map_err(enc)?,
        issuer: issuer.name.clone(),
        validity: Validity { not_before: x509_time(spec.not_before)?, not_after: x509_time(spec.not_after)? },
        subject: spec.subject,
        subject_public_key_info: spec.public_key,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(spec.extensions),
    })
}

/// The signed structure that certificates (RFC 5280 §4.1) and CRLs (§5.1) share,
/// `SEQUENCE { tbs, signatureAlgorithm, signatureValue }`, spliced around the DER that was
/// signed rather than decoded and encoded again (a CRL's TBSCertList runs to megabytes).
pub fn signed_der(tbs_der: &[u8], scheme: SignatureScheme, signature: &Signature) -> Result<Vec<u8>, CaError> {
    let algorithm = scheme.algorithm_identifier().map_err(enc)?.to_der().map_err(enc)?;
    let value = signature.to_bit_string().map_err(enc)?.to_der().map_err(enc)?;
    let len = der::Length::try_from(tbs_der.len() + algorithm.len() + value.len()).map_err(enc)?;
    let mut out = der::Header::new(der::Tag::Sequence, len).map_err(enc)?.to_der().map_err(enc)?;
    out.reserve(usize::try_from(len).map_err(enc)?);
    out.extend_from_slice(tbs_der);
    out.extend_from_slice(&algorithm);
    out.extend_from_slice(&value);
    Ok(out)
}

/// Where relying parties find the CRL, OCSP and issuer certificate: `{base}` and `{ca}` in a
/// profile's URL templates are replaced by these.
#[derive(Clone, Debug)]
pub struct UrlContext {
    pub base: String,
    pub ca: crate::ca_id::CaId,
}

impl UrlContext {
    fn expand(&self, t: &str) -> String {
        t.replace("{base}", self.base.trim_end_matches('/')).replace("{ca}", &self.ca.name())
    }
}

pub(super) fn san_name(s: &San) -> Result<GeneralName, CaError> {
    Ok(match s {
        San::Dns(d) => GeneralName::DnsName(Ia5String::new(d).map_err(enc)?),
        San::Email(e) => GeneralName::Rfc822Name(Ia5String::new(e).map_err(enc)?),
        San::Uri(u) => GeneralName::UniformResourceIdentifier(Ia5String::new(u).map_err(enc)?),
        San::Ip(std::net::IpAddr::V4(ip)) => {
            GeneralName::IpAddress(OctetString::new(ip.octets().to_vec()).map_err(enc)?)
        }
        San::Ip(std::net::IpAddr::V6(ip)) => {
            GeneralName::IpAddress(OctetString::new(ip.octets().to_vec()).map_err(enc)?)
        }
    })
}

/// Distribution points and access descriptions, shared by end-entity and CA certificates.
fn location_extensions(
    crl: Option<&str>,
    ocsp: Option<&str>,
    ca_issuers: Option<&str>,
    urls: &UrlContext,
) -> Result<Vec<Extension>, CaError> {
    let mut out = Vec::new();
    if let Some(t) = crl {
        let dp = DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![uri(&urls.expand(t))?])),
            reasons: None,
            crl_issuer: None,
        };
        out.push(ext(false, &CrlDistributionPoints(vec![dp]))?);
    }
    let mut aia = Vec::new();
    if let Some(t) = ocsp {
        aia.push(AccessDescription { access_method: rfc5280::ID_AD_OCSP, access_location: uri(&urls.expand(t))? });
    }
    if let Some(t) = ca_issuers {
        aia.push(AccessDescription {
            access_method: rfc5280::ID_AD_CA_ISSUERS,
            access_location: uri(&urls.expand(t))?,
        });
    }
    if !aia.is_empty() {
        out.push(ext(false, &AuthorityInfoAccessSyntax(aia))?);
    }
    Ok(out)
}

/// Extensions of an end-entity certificate issued under `profile` (RFC 5280 §4.2).
pub fn end_entity_extensions(
    profile: &Profile,
    sans: &[San],
    subject_is_empty: bool,
    subject_key: &SubjectPublicKeyInfoOwned,
    issuer_key_id: &[u8],
    urls: &UrlContext,
) -> Result<Vec<Extension>, CaError> {
    let mut out = vec![
        ext(true, &BasicConstraints { ca: false, path_len_constraint: None })?,
        ext(true, &KeyUsage(profile.key_usage))?,
    ];
    if !profile.extended_key_usage.is_empty() {
        out.push(ext(false, &ExtendedKeyUsage(profile.extended_key_usage.clone()))?);
    }
    if !sans.is_empty() {
        let names = sans.iter().map(san_name).collect::<Result<Vec<_>, _>>()?;
        // §4.2.1.6: critical when the subject is empty.
        out.push(ext(subject_is_empty, &SubjectAltName(names))?);
    }
    if !profile.certificate_policies.is_empty() {
        let pols = profile
            .certificate_policies
            .iter()
            .map(|oid| PolicyInformation { policy_identifier: *oid, policy_qualifiers: None })
            .collect();
        out.push(ext(false, &CertificatePolicies(pols))?);
    }
    out.push(ext(false, &SubjectKeyIdentifier(OctetString::new(key_identifier(subject_key)).map_err(enc)?))?);
    out.push(authority_key_id(issuer_key_id)?);
    if let Some(qc) = &profile.qc {
        out.push(crate::qc::extension(&qc.statements()).map_err(enc)?);
    }
    out.extend(location_extensions(
        profile.crl_url.as_deref(),
        profile.ocsp_url.as_deref(),
        profile.ca_issuers_url.as_deref(),
        urls,
    )?);
    Ok(out)
}

/// authorityKeyIdentifier with the issuer's key identifier only (RFC 5280 §4.2.1.1, §5.2.1).
pub(super) fn authority_key_id(key_id: &[u8]) -> Result<Extension, CaError> {
    ext(
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(key_id.to_vec()).map_err(enc)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )
}

/// What kind of certificate the key ceremony makes.
pub enum CeremonyCert<'a> {
    Root,
    /// A CA below the root that issues end-entity certificates only (pathLenConstraint 0).
    Issuing {
        urls: &'a UrlContext,
    },
    /// A service's own signing certificate (TSA, document signer, OCSP responder).
    Service {
        urls: &'a UrlContext,
        key_usage: flagset::FlagSet<KeyUsages>,
        eku: Option<ObjectIdentifier>,
        ocsp_no_check: bool,
    },
}

/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
const OCSP_NOCHECK: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");

/// Extensions of a certificate made by the key ceremony; `issuer_key_id` is the issuer's
/// subjectKeyIdentifier (ignored for the self-signed root).
pub fn ceremony_extensions(
    kind: &CeremonyCert<'_>,
    subject_key: &SubjectPublicKeyInfoOwned,
    issuer_key_id: &[u8],
) -> Result<Vec<Extension>, CaError> {
    let ski = ext(false, &SubjectKeyIdentifier(OctetString::new(key_identifier(subject_key)).map_err(enc)?))?;
    let ca_usage = KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign);
    Ok(match kind {
        CeremonyCert::Root => {
            vec![ext(true, &BasicConstraints { ca: true, path_len_constraint: None })?, ext(true, &ca_usage)?, ski]
        }
        CeremonyCert::Issuing { urls } => {
            let mut v = vec![
                ext(true, &BasicConstraints { ca: true, path_len_constraint: Some(0) })?,
                ext(true, &ca_usage)?,
                ski,
                authority_key_id(issuer_key_id)?,
            ];
            v.extend(location_extensions(Some("{base}/crl/root.crl"), None, Some("{base}/ca/root.crt"), urls)?);
            v
        }
        CeremonyCert::Service { urls, key_usage, eku, ocsp_no_check } => {
            let mut v = vec![
                ext(true, &BasicConstraints { ca: false, path_len_constraint: None })?,
                ext(true, &KeyUsage(*key_usage))?,
            ];
            if let Some(eku) = eku {
                // RFC 3161 §2.3: a TSA's EKU is critical and holds only id-kp-timeStamping.
                v.push(ext(*eku == rfc5280::ID_KP_TIME_STAMPING, &ExtendedKeyUsage(vec![*eku]))?);
            }
            if *ocsp_no_check {
                v.push(Extension {
                    extn_id: OCSP_NOCHECK,
                    critical: false,
                    extn_value: OctetString::new(vec![0x05, 0x00]).map_err(enc)?,
                });
            }
            v.push(ski);
            v.push(authority_key_id(issuer_key_id)?);
            v.extend(location_extensions(Some("{base}/crl/{ca}.crl"), None, Some("{base}/ca/{ca}.crt"), urls)?);
            v
        }
    })
}

/// When a certificate the daemon keeps for itself (its TLS server certificate, the bootstrap
/// operator credential) is due for renewal, Unix seconds: once two thirds of its validity have
/// passed, so that a failed renewal has a third of it to be retried in.
pub fn renewal_time(cert: &x509_cert::Certificate) -> u64 {
    let v = &cert.tbs_certificate.validity;
    let (from, until) = (v.not_before.to_unix_duration().as_secs(), v.not_after.to_unix_duration().as_secs());
    from + until.saturating_sub(from) * 2 / 3
}
