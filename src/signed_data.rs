//! CMS SignedData (RFC 5652 §5) assembly shared by the time-stamping authority and the signing
//! service: the certificates a signer always sends are encoded once, and spliced into each
//! signature's DER.

use cms::cert::CertificateChoices;
use cms::signed_data::{CertificateSet, SignedData};
use const_oid::db::rfc5911::ID_SIGNED_DATA;
use der::asn1::ContextSpecificRef;
use der::{Encode, Header, Length, Tag, TagMode, TagNumber};
use x509_cert::Certificate;

/// `[0] IMPLICIT CertificateSet` (RFC 5652 §5.1) of `certs`, DER, for [`content_info_der`].
pub fn certificates_der(certs: Vec<Certificate>) -> der::Result<Vec<u8>> {
    let set = CertificateSet::try_from(certs.into_iter().map(CertificateChoices::Certificate).collect::<Vec<_>>())?;
    ContextSpecificRef { tag_number: TagNumber::N0, tag_mode: TagMode::Implicit, value: &set }.to_der()
}

/// The DER ContentInfo (RFC 5652 §3) of `sd`, whose `certificates` is `None`, with the
/// pre-encoded `[0] IMPLICIT CertificateSet` put in that field's place (§5.1 field order).
/// Written by hand because the set is the same for every signature made with one key, and
/// cloning and re-encoding it per request was a measurable share of the signing cost (perf).
pub fn content_info_der(sd: &SignedData, certificates_der: &[u8]) -> der::Result<Vec<u8>> {
    let mut body = Vec::new();
    sd.version.encode_to_vec(&mut body)?;
    sd.digest_algorithms.encode_to_vec(&mut body)?;
    sd.encap_content_info.encode_to_vec(&mut body)?;
    body.extend_from_slice(certificates_der);
    if let Some(crls) = &sd.crls {
        ContextSpecificRef { tag_number: TagNumber::N1, tag_mode: TagMode::Implicit, value: crls }
            .encode_to_vec(&mut body)?;
    }
    sd.signer_infos.encode_to_vec(&mut body)?;
    let sd_header = Header::new(Tag::Sequence, body.len())?;
    let explicit_len = (sd_header.encoded_len()? + Length::try_from(body.len())?)?;
    let explicit = Header::new(Tag::ContextSpecific { constructed: true, number: TagNumber::N0 }, explicit_len)?;
    let oid = ID_SIGNED_DATA.to_der()?;
    let inner_len = ((Length::try_from(oid.len())? + explicit.encoded_len()?)? + explicit_len)?;
    let mut out = Vec::with_capacity(usize::try_from(inner_len)? + 8);
    Header::new(Tag::Sequence, inner_len)?.encode_to_vec(&mut out)?;
    out.extend_from_slice(&oid);
    explicit.encode_to_vec(&mut out)?;
    sd_header.encode_to_vec(&mut out)?;
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::HashAlg;
    use cms::cert::IssuerAndSerialNumber;
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier, SignerInfos};
    use const_oid::db::rfc5911::ID_DATA;
    use der::asn1::{OctetString, SetOfVec};
    use der::{Any, Decode};

    #[test]
    fn spliced_certificates_encode_as_the_whole_structure_does() {
        let cert = rcgen::generate_simple_self_signed(vec!["signer.example".into()]).unwrap();
        let cert = Certificate::from_der(cert.cert.der()).unwrap();
        let set = CertificateSet::try_from(vec![CertificateChoices::Certificate(cert.clone())]).unwrap();
        let signer_info = cms::signed_data::SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: cert.tbs_certificate.issuer.clone(),
                serial_number: cert.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: HashAlg::Sha256.algorithm_identifier(),
            signed_attrs: None,
            signature_algorithm: crate::hsm::SignatureScheme::EcdsaSha256.algorithm_identifier().unwrap(),
            signature: OctetString::new(vec![0x30; 70]).unwrap(),
            unsigned_attrs: None,
        };
        for econtent in [None, Some(Any::encode_from(&OctetString::new(vec![7; 300]).unwrap()).unwrap())] {
            let mut sd = SignedData {
                version: CmsVersion::V1,
                digest_algorithms: SetOfVec::try_from(vec![HashAlg::Sha256.algorithm_identifier()]).unwrap(),
                encap_content_info: EncapsulatedContentInfo { econtent_type: ID_DATA, econtent },
                certificates: Some(set.clone()),
                crls: None,
                signer_infos: SignerInfos::try_from(vec![signer_info.clone()]).unwrap(),
            };
            let whole =
                ContentInfo { content_type: ID_SIGNED_DATA, content: Any::encode_from(&sd).unwrap() }.to_der().unwrap();
            let certs_der = certificates_der(vec![cert.clone()]).unwrap();
            sd.certificates = None;
            assert_eq!(content_info_der(&sd, &certs_der).unwrap(), whole);
        }
    }
}
