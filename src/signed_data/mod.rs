//! CMS SignedData (RFC 5652 §5) assembly shared by the time-stamping authority and the signing
//! service: the certificates a signer always sends, and the signer's own constant parts, are
//! encoded once and spliced into each signature's DER.

pub mod ess;

use crate::digest::HashAlg;
use crate::keys::CertifiedKey;
use cms::cert::CertificateChoices;
use cms::cert::IssuerAndSerialNumber;
use cms::signed_data::{CertificateSet, SignerIdentifier};
use const_oid::db::rfc5911::{ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA};
use const_oid::ObjectIdentifier;
use der::asn1::{ContextSpecificRef, SetOfVec};
use der::{Any, Decode, Encode, Header, Tag, TagMode, TagNumber};
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
/// at concurrency 64 (2 % now). The test below checks the output byte for byte against the
/// builder's.
pub struct SignerDer {
    version: u8,
    sid: Vec<u8>,
    hash: HashAlg,
    digest_alg: Vec<u8>,
    signature_alg: Vec<u8>,
    fixed_attrs: Vec<Vec<u8>>,
}

impl SignerDer {
    /// The signer of a trustd service key: its certificate's issuer and serial as the
    /// SignerIdentifier, its scheme's algorithms, and the signing-certificate-v2 attribute over
    /// its certificate (RFC 5035 §5.4, RFC 5816), which the TSA and the signing service both
    /// sign. The error names the part that could not be encoded.
    pub fn for_key(key: &CertifiedKey) -> Result<Self, String> {
        let (cert, scheme) = (&key.cert, key.key.scheme());
        let signing_certificate = ess::signing_certificate_v2_attribute(cert, &key.der)
            .map_err(|e| format!("signing-certificate-v2: {e}"))?;
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        });
        let algorithm = scheme.algorithm_identifier().map_err(|e| format!("signature algorithm: {e}"))?;
        Self::new(&sid, scheme.hash(), &algorithm, &[signing_certificate]).map_err(|e| format!("SignerInfo: {e}"))
    }

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

    /// The DER `SignedAttributes` (a SET OF, §5.4: what is signed) for content of
    /// `content_type` whose digest is `digest`: content-type, message-digest, the fixed
    /// attributes and this signature's `extra` ones (e.g. signing-time), in DER order
    /// (X.690 §11.6).
    pub fn signed_attributes(
        &self,
        content_type: ObjectIdentifier,
        digest: &[u8],
        extra: &[Attribute],
    ) -> der::Result<Vec<u8>> {
        let attr = |oid, value: Any| Attribute { oid, values: SetOfVec::try_from(vec![value])? }.to_der();
        let mut own = vec![
            attr(ID_CONTENT_TYPE, Any::encode_from(&content_type)?)?,
            attr(ID_MESSAGE_DIGEST, Any::new(Tag::OctetString, digest)?)?,
        ];
        for a in extra {
            own.push(a.to_der()?);
        }
        set_of(Tag::Set, own.iter().chain(&self.fixed_attrs).map(Vec::as_slice).collect())
    }

    /// This signer's digest algorithm, for the message-digest of [`Self::signed_attributes`].
    pub fn hash(&self) -> HashAlg {
        self.hash
    }

    /// The DER ContentInfo (§3) of a SignedData (§5.1) that encapsulates `content` (or, when
    /// detached, none) and carries this signer's one SignerInfo with `signed_attrs` (from
    /// [`Self::signed_attributes`]), `signature` and `unsigned_attrs`, and the pre-encoded
    /// `certificates_der` from [`certificates_der`] (or none).
    pub fn content_info(
        &self,
        content_type: ObjectIdentifier,
        content: Option<&[u8]>,
        certificates_der: &[u8],
        signed_attrs: &[u8],
        signature: &[u8],
        unsigned_attrs: &[Attribute],
    ) -> der::Result<Vec<u8>> {
        // In a SignerInfo the SET OF is `[0] IMPLICIT`: the same content under another tag.
        let header = Header::decode(&mut der::SliceReader::new(signed_attrs)?)?;
        let attrs_value = signed_attrs.get(usize::try_from(header.encoded_len()?)?..);
        let attrs = tlv(CONTEXT_0, &[attrs_value.ok_or_else(|| der::Error::from(der::ErrorKind::Failed))?])?;
        // `[1] IMPLICIT SET OF Attribute`, absent when empty (§5.3).
        let unsigned = match unsigned_attrs {
            [] => Vec::new(),
            attrs => {
                let der = attrs.iter().map(Encode::to_der).collect::<der::Result<Vec<_>>>()?;
                set_of(CONTEXT_1, der.iter().map(Vec::as_slice).collect())?
            }
        };
        let signer_info = tlv(
            Tag::Sequence,
            &[
                &self.version.to_der()?,
                &self.sid,
                &self.digest_alg,
                &attrs,
                &self.signature_alg,
                &tlv(Tag::OctetString, &[signature])?,
                &unsigned,
            ],
        )?;
        let econtent = match content {
            Some(c) => tlv(CONTEXT_0, &[&tlv(Tag::OctetString, &[c])?])?,
            None => Vec::new(),
        };
        let encap = tlv(Tag::Sequence, &[&content_type.to_der()?, &econtent])?;
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
/// `[1]`, constructed: the IMPLICIT SET of unsigned attributes.
const CONTEXT_1: Tag = Tag::ContextSpecific { constructed: true, number: TagNumber::N1 };

/// A DER SET OF (under `tag`) of the encodings `parts`, in ascending order (X.690 §11.6).
fn set_of(tag: Tag, mut parts: Vec<&[u8]>) -> der::Result<Vec<u8>> {
    parts.sort_unstable();
    tlv(tag, &parts)
}

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

/// `[0] IMPLICIT CertificateSet` (RFC 5652 §5.1) of `certs`, DER, for [`SignerDer::content_info`].
pub fn certificates_der(certs: Vec<Certificate>) -> der::Result<Vec<u8>> {
    let set = CertificateSet::try_from(certs.into_iter().map(CertificateChoices::Certificate).collect::<Vec<_>>())?;
    ContextSpecificRef { tag_number: TagNumber::N0, tag_mode: TagMode::Implicit, value: &set }.to_der()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cms::builder::SignerInfoBuilder;
    use cms::cert::IssuerAndSerialNumber;
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerInfos};
    use der::asn1::{BitString, OctetString};
    use x509_cert::builder::Builder;
    use x509_cert::spki::DynSignatureAlgorithmIdentifier;

    /// The spliced SignedData is the one `cms`'s builder makes from the same parts, byte for
    /// byte: the TSA's content type (versions 3 and 1) and id-data (1 and 1), encapsulated or
    /// detached, with and without certificates, signing-time and unsigned attributes.
    #[test]
    fn spliced_signer_encodes_as_the_cms_builder_does() {
        // A throwaway software key: the builder needs a signer to name the signature algorithm.
        let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["signer.example".into()]).unwrap();
        let cert_der = cert.cert.der().to_vec();
        let cert = Certificate::from_der(&cert_der).unwrap();
        let certs_der = certificates_der(vec![cert.clone()]).unwrap();
        let set = CertificateSet::try_from(vec![CertificateChoices::Certificate(cert.clone())]).unwrap();
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        });
        let fixed = crate::signed_data::ess::signing_certificate_v2_attribute(&cert, &cert_der).unwrap();
        let time = crate::ca::cert::x509_time(1_790_000_000).unwrap();
        let signing_time = Attribute {
            oid: const_oid::db::rfc5911::ID_SIGNING_TIME,
            values: SetOfVec::try_from(vec![Any::encode_from(&time).unwrap()]).unwrap(),
        };
        let unsigned = Attribute {
            oid: crate::signing::verify::ID_AA_SIGNATURE_TIME_STAMP_TOKEN,
            values: SetOfVec::try_from(vec![Any::encode_from(&OctetString::new(vec![9; 40]).unwrap()).unwrap()])
                .unwrap(),
        };
        let signature_alg = key.signature_algorithm_identifier().unwrap();
        let signature = [0x30; 71];
        let content = b"the TSTInfo, or a document's octets";
        let cases = [
            (crate::tsa::ID_CT_TST_INFO, CmsVersion::V3, true, false),
            (ID_DATA, CmsVersion::V1, true, false),
            (ID_DATA, CmsVersion::V1, false, true),
            (ID_DATA, CmsVersion::V1, true, true),
        ];
        for (content_type, version, encapsulated, cades) in cases {
            for hash in [HashAlg::Sha256, HashAlg::Sha512] {
                let digest = hash.digest(content);
                let econtent = EncapsulatedContentInfo {
                    econtent_type: content_type,
                    econtent: encapsulated.then(|| Any::new(Tag::OctetString, content.to_vec()).unwrap()),
                };
                let detached = EncapsulatedContentInfo { econtent_type: content_type, econtent: None };
                let (extra, unsigned_attrs) =
                    if cades { (vec![signing_time.clone()], vec![unsigned.clone()]) } else { (vec![], vec![]) };
                let mut sib =
                    SignerInfoBuilder::new(&key, sid.clone(), hash.algorithm_identifier(), &detached, Some(&digest))
                        .unwrap();
                for a in std::iter::once(&fixed).chain(&extra) {
                    sib.add_signed_attribute(a.clone()).unwrap();
                }
                for a in &unsigned_attrs {
                    sib.add_unsigned_attribute(a.clone()).unwrap();
                }
                let to_be_signed = sib.finalize().unwrap();
                let signer_info = sib.assemble(BitString::from_bytes(&signature).unwrap()).unwrap();

                let ours = SignerDer::new(&sid, hash, &signature_alg, std::slice::from_ref(&fixed)).unwrap();
                let attrs = ours.signed_attributes(content_type, &digest, &extra).unwrap();
                assert_eq!(attrs, to_be_signed);
                for with_certs in [true, false] {
                    let sd = SignedData {
                        version,
                        digest_algorithms: SetOfVec::try_from(vec![hash.algorithm_identifier()]).unwrap(),
                        encap_content_info: econtent.clone(),
                        certificates: with_certs.then(|| set.clone()),
                        crls: None,
                        signer_infos: SignerInfos::try_from(vec![signer_info.clone()]).unwrap(),
                    };
                    let whole = ContentInfo { content_type: ID_SIGNED_DATA, content: Any::encode_from(&sd).unwrap() }
                        .to_der()
                        .unwrap();
                    let certs = if with_certs { &certs_der[..] } else { &[] };
                    let document = encapsulated.then_some(&content[..]);
                    assert_eq!(
                        ours.content_info(content_type, document, certs, &attrs, &signature, &unsigned_attrs).unwrap(),
                        whole
                    );
                }
            }
        }
    }
}
