//! ESS signing-certificate-v2 (RFC 5035 §3, used by RFC 5816 for time-stamp tokens and by
//! CAdES): binds a CMS signature to the certificate of its signer.
//!
//! Written here because the RustCrypto `cms` 0.2 crate has no ESS types; these are three small
//! SEQUENCEs encoded with `der`'s derive.

use crate::digest::HashAlg;
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Sequence};
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

/// `IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber CertificateSerialNumber }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct IssuerSerial {
    pub issuer: Vec<GeneralName>,
    pub serial_number: SerialNumber,
}

/// `ESSCertIDv2 ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier DEFAULT {algorithm id-sha256},
/// certHash Hash, issuerSerial IssuerSerial OPTIONAL }`. The default (SHA-256) is encoded by
/// leaving `hash_algorithm` out, as DER requires.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct EssCertIdV2 {
    #[asn1(optional = "true")]
    pub hash_algorithm: Option<spki::AlgorithmIdentifierOwned>,
    pub cert_hash: OctetString,
    #[asn1(optional = "true")]
    pub issuer_serial: Option<IssuerSerial>,
}

/// `SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies ... OPTIONAL }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SigningCertificateV2 {
    pub certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    pub policies: Option<Vec<Any>>,
}

/// `ESSCertID ::= SEQUENCE { certHash Hash, issuerSerial IssuerSerial OPTIONAL }` (RFC 2634
/// §5.4.1): the SHA-1 form that OpenSSL's TSA still writes by default, read when validating.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct EssCertId {
    pub cert_hash: OctetString,
    #[asn1(optional = "true")]
    pub issuer_serial: Option<IssuerSerial>,
}

/// `SigningCertificate ::= SEQUENCE { certs SEQUENCE OF ESSCertID, policies ... OPTIONAL }`
/// (RFC 2634 §5.4).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SigningCertificate {
    pub certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    pub policies: Option<Vec<Any>>,
}

impl EssCertIdV2 {
    /// The ESSCertIDv2 of `cert` (DER `cert_der`) with SHA-256 and the issuer and serial.
    pub fn new(cert: &Certificate, cert_der: &[u8]) -> der::Result<Self> {
        Ok(EssCertIdV2 {
            hash_algorithm: None,
            cert_hash: OctetString::new(HashAlg::Sha256.digest(cert_der))?,
            issuer_serial: Some(IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(cert.tbs_certificate.issuer.clone())],
                serial_number: cert.tbs_certificate.serial_number.clone(),
            }),
        })
    }
}

/// The signed attribute id-aa-signingCertificateV2 naming exactly one certificate: OpenSSL
/// rejects tokens that list more (openssl #14190).
pub fn signing_certificate_v2_attribute(cert: &Certificate, cert_der: &[u8]) -> der::Result<Attribute> {
    let value = SigningCertificateV2 { certs: vec![EssCertIdV2::new(cert, cert_der)?], policies: None };
    Ok(Attribute {
        oid: const_oid::db::rfc5911::ID_AA_SIGNING_CERTIFICATE_V_2,
        values: SetOfVec::try_from(vec![Any::encode_from(&value)?])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Decode, Encode};

    #[test]
    fn default_hash_is_omitted_and_roundtrips() {
        let id = EssCertIdV2 {
            hash_algorithm: None,
            cert_hash: OctetString::new(vec![7; 32]).unwrap(),
            issuer_serial: None,
        };
        let der = SigningCertificateV2 { certs: vec![id.clone()], policies: None }.to_der().unwrap();
        // SEQUENCE { SEQUENCE OF { SEQUENCE { OCTET STRING (32) } } }: no AlgorithmIdentifier
        // for SHA-256.
        assert_eq!(&der[..8], &[0x30, 0x26, 0x30, 0x24, 0x30, 0x22, 0x04, 0x20]);
        assert_eq!(SigningCertificateV2::from_der(&der).unwrap().certs, [id]);
    }
}
