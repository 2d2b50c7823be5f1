//! CMS SignedData (RFC 5652 §5) assembly shared by the time-stamping authority and the signing
//! service: the certificates a signer always sends, and (for the TSA) the signer's own constant
//! parts, are encoded once and spliced into each signature's DER.

use crate::digest::HashAlg;
use cms::cert::CertificateChoices;
use cms::signed_data::{CertificateSet, SignedData, SignerIdentifier};
use const_oid::db::rfc5911::{ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA};
use const_oid::ObjectIdentifier;
use der::asn1::{ContextSpecificRef, SetOfVec};
use der::{Any, Decode, Encode, Header, Length, Tag, TagMode, TagNumber};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

/// A signer's constant parts (RFC 5652 §5.3), DER-encoded once, from which
/// [`SignerDer::signed_attributes`] and [`SignerDer::content_info`] splice each signature's
/// SignedData together.
///
/// Written by hand rather than with `cms`'s `SignerInfoBuilder`: the builder clones and
/// re-encodes the signer's issuer name in the signer identifier and in the
/// signing-certificate-v2 attribute for every signature, twice each (to sign, then to send), and
/// looks the digest algorithm up by name in a table; perf put that at 6–7 % of the TSA's CPU
/// at concurrency 64. The test below checks the output byte for byte against the builder's.
pub struct SignerDer {
    version: u8,
    sid: Vec<u8>,
    hash: HashAlg,
    digest_alg: Vec<u8>,
    signature_alg: Vec<u8>,
    fixed_attrs: Vec<Vec<u8>>,
}

impl SignerDer {
    /// `fixed_attrs` are the signed attributes every signature carries besides content-type and
    /// message-digest (e.g. signing-certificate-v2).
    pub fn new(
        sid: &SignerIdentifier,
        hash: HashAlg,
        signature_alg: &AlgorithmIdentifierOwned,
        fixed_attrs: &[Attribute],
    ) -> der::Result<Self> {
        Ok(SignerDer {
            // §5.3: version 1 with issuerAndSerialNumber, 3 with subjectKeyIdentifier.
            version: if matches!(sid, SignerIdentifier::IssuerAndSerialNumber(_)) { 1 } else { 3 },
            sid: sid.to_der()?,
            hash,
            digest_alg: hash.algorithm_identifier().to_der()?,
            signature_alg: signature_alg.to_der()?,
            fixed_attrs: fixed_attrs.iter().map(Encode::to_der).collect::<der::Result<_>>()?,
        })
    }

    /// The DER `SignedAttributes` (a SET OF, §5.4: what is signed) for `content` of
    /// `content_type`: content-type, message-digest of `content`, and the fixed attributes, in
    /// DER order (X.690 §11.6).
    pub fn signed_attributes(&self, content_type: ObjectIdentifier, content: &[u8]) -> der::Result<Vec<u8>> {
        let attr = |oid, value: Any| Attribute { oid, values: SetOfVec::try_from(vec![value])? }.to_der();
        let content_type = attr(ID_CONTENT_TYPE, Any::encode_from(&content_type)?)?;
        let digest = attr(ID_MESSAGE_DIGEST, Any::new(Tag::OctetString, self.hash.digest(content))?)?;
        let mut attrs: Vec<&[u8]> = vec![&content_type, &digest];
        attrs.extend(self.fixed_attrs.iter().map(Vec::as_slice));
        attrs.sort_unstable();
        tlv(Tag::Set, &attrs)
    }

    /// The DER ContentInfo (§3) of a SignedData (§5.1) that encapsulates `content` and carries
    /// this signer's one SignerInfo with `signed_attrs` (from [`Self::signed_attributes`]) and
    /// `signature`, and the pre-encoded `certificates_der` from [`certificates_der`] (or none).
    pub fn content_info(
        &self,
        content_type: ObjectIdentifier,
        content: &[u8],
        certificates_der: &[u8],
        signed_attrs: &[u8],
        signature: &[u8],
    ) -> der::Result<Vec<u8>> {
        // In a SignerInfo the SET OF is `[0] IMPLICIT`: the same content under another tag.
        let header = Header::decode(&mut der::SliceReader::new(signed_attrs)?)?;
        let attrs_value = signed_attrs.get(usize::try_from(header.encoded_len()?)?..);
        let attrs = tlv(CONTEXT_0, &[attrs_value.ok_or_else(|| der::Error::from(der::ErrorKind::Failed))?])?;
        let signer_info = tlv(
            Tag::Sequence,
            &[
                &self.version.to_der()?,
                &self.sid,
                &self.digest_alg,
                &attrs,
                &self.signature_alg,
                &tlv(Tag::OctetString, &[signature])?,
            ],
        )?;
        let encap =
            tlv(Tag::Sequence, &[&content_type.to_der()?, &tlv(CONTEXT_0, &[&tlv(Tag::OctetString, &[content])?])?])?;
        // §5.1: version 3 when the content is not id-data or a SignerInfo is version 3.
        let version: u8 = if content_type != ID_DATA || self.version == 3 { 3 } else { 1 };
        let signed_data = tlv(
            Tag::Sequence,
            &[
                &version.to_der()?,
                &tlv(Tag::Set, &[&self.digest_alg])?,
                &encap,
                certificates_der,
                &tlv(Tag::Set, &[&signer_info])?,
            ],
        )?;
        tlv(Tag::Sequence, &[&ID_SIGNED_DATA.to_der()?, &tlv(CONTEXT_0, &[&signed_data])?])
    }
}

/// `[0]`, constructed: EXPLICIT wrappers and IMPLICIT SETs alike.
const CONTEXT_0: Tag = Tag::ContextSpecific { constructed: true, number: TagNumber::N0 };

/// A TLV of `tag` around the concatenated DER `parts`.
fn tlv(tag: Tag, parts: &[&[u8]]) -> der::Result<Vec<u8>> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + 6);
    Header::new(tag, len)?.encode_to_vec(&mut out)?;
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

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
    use cms::builder::SignerInfoBuilder;
    use cms::cert::IssuerAndSerialNumber;
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::signed_data::{EncapsulatedContentInfo, SignerInfos};
    use der::asn1::{BitString, OctetString};
    use x509_cert::builder::Builder;
    use x509_cert::spki::DynSignatureAlgorithmIdentifier;

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

    /// The spliced SignedData is the one `cms`'s builder makes from the same parts, byte for
    /// byte, for the TSA's content type (versions 3 and 1) and for id-data (versions 1 and 1).
    #[test]
    fn spliced_signer_encodes_as_the_cms_builder_does() {
        // A throwaway software key: the builder needs a signer to name the signature algorithm.
        let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["signer.example".into()]).unwrap();
        let cert_der = cert.cert.der().to_vec();
        let cert = Certificate::from_der(&cert_der).unwrap();
        let certs_der = certificates_der(vec![cert.clone()]).unwrap();
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        });
        let fixed = crate::tsa::ess::signing_certificate_v2_attribute(&cert, &cert_der).unwrap();
        let signature_alg = key.signature_algorithm_identifier().unwrap();
        let signature = [0x30; 71];
        let content = b"the TSTInfo, or a document's octets";
        for (content_type, version) in [(crate::tsa::ID_CT_TST_INFO, CmsVersion::V3), (ID_DATA, CmsVersion::V1)] {
            for hash in [HashAlg::Sha256, HashAlg::Sha512] {
                let econtent = EncapsulatedContentInfo {
                    econtent_type: content_type,
                    econtent: Some(Any::new(Tag::OctetString, content.to_vec()).unwrap()),
                };
                let mut sib =
                    SignerInfoBuilder::new(&key, sid.clone(), hash.algorithm_identifier(), &econtent, None).unwrap();
                sib.add_signed_attribute(fixed.clone()).unwrap();
                let to_be_signed = sib.finalize().unwrap();
                let signer_info = sib.assemble(BitString::from_bytes(&signature).unwrap()).unwrap();
                let sd = SignedData {
                    version,
                    digest_algorithms: SetOfVec::try_from(vec![hash.algorithm_identifier()]).unwrap(),
                    encap_content_info: econtent.clone(),
                    certificates: None,
                    crls: None,
                    signer_infos: SignerInfos::try_from(vec![signer_info]).unwrap(),
                };
                let ours = SignerDer::new(&sid, hash, &signature_alg, std::slice::from_ref(&fixed)).unwrap();
                let attrs = ours.signed_attributes(content_type, content).unwrap();
                assert_eq!(attrs, to_be_signed);
                for certs in [&certs_der[..], &[]] {
                    assert_eq!(
                        ours.content_info(content_type, content, certs, &attrs, &signature).unwrap(),
                        content_info_der(&sd, certs).unwrap()
                    );
                }
            }
        }
    }
}
