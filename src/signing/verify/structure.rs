//! The CMS structure (RFC 5652 §3, §5): the ContentInfo, the certificates, the eContent, and
//! single-valued attributes.

use super::{format_failure, Cert, Fail};
use crate::keys::verify::oid_name;
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use const_oid::db::rfc5911;
use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::Any;
use der::Decode;
use x509_cert::attr::Attributes;

/// RFC 5652 §3: a ContentInfo holding SignedData.
pub(super) fn parse_signed_data(der: &[u8]) -> Result<SignedData, Fail> {
    let ci = ContentInfo::from_der(der).or_else(|e| format_failure(format!("not a DER CMS ContentInfo: {e}")))?;
    if ci.content_type != rfc5911::ID_SIGNED_DATA {
        return format_failure(format!("ContentInfo holds {}, not id-signedData", oid_name(&ci.content_type)));
    }
    ci.content.decode_as::<SignedData>().or_else(|e| format_failure(format!("invalid SignedData: {e}")))
}

/// The X.509 certificates of a SignedData (RFC 5652 §5.1; other certificate formats are not
/// usable here and are skipped).
pub(super) fn certificates(sd: &SignedData) -> Result<Vec<Cert>, Fail> {
    let mut out = Vec::new();
    for choice in sd.certificates.iter().flat_map(|s| s.0.iter()) {
        if let CertificateChoices::Certificate(c) = choice {
            out.push(Cert::new(c.clone()).or_else(|e| format_failure(format!("unencodable certificate: {e}")))?);
        }
    }
    Ok(out)
}

/// The eContent octets (RFC 5652 §5.2: always an OCTET STRING), if present.
pub(super) fn econtent(sd: &SignedData) -> Result<Option<Vec<u8>>, Fail> {
    match &sd.encap_content_info.econtent {
        None => Ok(None),
        Some(any) => match any.decode_as::<OctetString>() {
            Ok(o) => Ok(Some(o.into_bytes())),
            Err(e) => format_failure(format!("eContent is not an OCTET STRING: {e}")),
        },
    }
}

/// The single value of the attribute `oid`, if present. RFC 5652 §11 and RFC 5035 §5.4 allow
/// one instance with one value of each attribute used here.
pub(super) fn single_attr(attrs: &Attributes, oid: ObjectIdentifier) -> Result<Option<&Any>, Fail> {
    let mut matching = attrs.iter().filter(|a| a.oid == oid);
    let Some(attr) = matching.next() else { return Ok(None) };
    if matching.next().is_some() {
        return format_failure(format!("more than one {} attribute", oid_name(&oid)));
    }
    let mut values = attr.values.iter();
    match (values.next(), values.next()) {
        (Some(v), None) => Ok(Some(v)),
        _ => format_failure(format!("the {} attribute must have exactly one value", oid_name(&oid))),
    }
}
