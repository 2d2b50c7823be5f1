//! Qualified certificate statements (RFC 3739 §3.2.6 qcStatements, with the ETSI EN 319 412-5
//! statements and EN 319 412-1 §5.1 semantics identifiers), as certificates and qualified
//! time-stamps carry them. Hand-written: no RustCrypto crate declares these ASN.1 types.

use const_oid::ObjectIdentifier;
use der::asn1::{Ia5String, PrintableString};
use der::{Any, Encode, Sequence};

/// id-pe-qcStatements (RFC 3739 §3.2.6).
pub const ID_PE_QC_STATEMENTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.3");
/// esi4-qcStatement-1, QcCompliance (EN 319 412-5 §4.2.1): an EU qualified certificate.
pub const QC_COMPLIANCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.1");
/// esi4-qcStatement-4, QcSSCD (§4.2.2): the private key is in a qualified signature or seal
/// creation device.
pub const QC_SSCD: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.4");
/// esi4-qcStatement-5, QcPDS (§4.3.4): where the PKI disclosure statements are.
pub const QC_PDS: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.5");
/// esi4-qcStatement-6, QcType (§4.2.3).
pub const QC_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.6");
/// id-qcs-pkixQCSyntax-v2 (RFC 3739 §3.2.6.1): SemanticsInformation.
pub const PKIX_QC_SYNTAX_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.11.2");
/// esi4-qtstStatement-1 (EN 319 422 §9.1, id-etsi-tsts-EuQCompliance): a qualified electronic
/// time-stamp under Regulation (EU) No 910/2014.
pub const QTST_STATEMENT_1: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.19422.1.1");

/// What a qualified certificate is for (QcType, EN 319 412-5 §4.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QcType {
    /// id-etsi-qct-esign: electronic signatures, of natural persons.
    Esign,
    /// id-etsi-qct-eseal: electronic seals, of legal persons.
    Eseal,
    /// id-etsi-qct-web: website authentication.
    Web,
}

impl QcType {
    pub fn oid(self) -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap(match self {
            QcType::Esign => "0.4.0.1862.1.6.1",
            QcType::Eseal => "0.4.0.1862.1.6.2",
            QcType::Web => "0.4.0.1862.1.6.3",
        })
    }

    /// How profiles name it.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "esign" => QcType::Esign,
            "eseal" => QcType::Eseal,
            "web" => QcType::Web,
            _ => return None,
        })
    }
}

/// Whose identifier the subject carries (EN 319 412-1 §5.1): the semantics identifier of
/// pkixQCSyntax-v2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Semantics {
    /// id-etsi-qcs-semanticsId-Natural: serialNumber is a natural person's identifier (§5.1.3).
    Natural,
    /// id-etsi-qcs-semanticsId-Legal: organizationIdentifier is a legal person's (§5.1.4).
    Legal,
}

impl Semantics {
    pub fn oid(self) -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap(match self {
            Semantics::Natural => "0.4.0.194121.1.1",
            Semantics::Legal => "0.4.0.194121.1.2",
        })
    }

    /// How profiles name it.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "natural" => Semantics::Natural,
            "legal" => Semantics::Legal,
            _ => return None,
        })
    }
}

/// A PKI disclosure statement: its https URL and its language (ISO 639-1, two letters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pds {
    pub url: String,
    pub language: String,
}

/// One statement of a qcStatements extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    Compliance,
    Sscd,
    Type(QcType),
    Pds(Vec<Pds>),
    Semantics(Semantics),
    QualifiedTimestamp,
}

/// `QCStatement` (RFC 3739 §3.2.6): a statement id and, for some, its information.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct QcStatement {
    statement_id: ObjectIdentifier,
    #[asn1(optional = "true")]
    statement_info: Option<Any>,
}

/// `PdsLocation` (EN 319 412-5 §4.3.4).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct PdsLocation {
    url: Ia5String,
    language: PrintableString,
}

/// `SemanticsInformation` (RFC 3739 §3.2.6.1) with its identifier only.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SemanticsInformation {
    #[asn1(optional = "true")]
    semantics_identifier: Option<ObjectIdentifier>,
}

impl Statement {
    fn encode(&self) -> der::Result<QcStatement> {
        let (id, info) = match self {
            Statement::Compliance => (QC_COMPLIANCE, None),
            Statement::Sscd => (QC_SSCD, None),
            Statement::QualifiedTimestamp => (QTST_STATEMENT_1, None),
            Statement::Type(t) => (QC_TYPE, Some(Any::encode_from(&vec![t.oid()])?)),
            Statement::Pds(locations) => {
                let locations = locations
                    .iter()
                    .map(|p| {
                        Ok(PdsLocation { url: Ia5String::new(&p.url)?, language: PrintableString::new(&p.language)? })
                    })
                    .collect::<der::Result<Vec<_>>>()?;
                (QC_PDS, Some(Any::encode_from(&locations)?))
            }
            Statement::Semantics(s) => {
                let info = SemanticsInformation { semantics_identifier: Some(s.oid()) };
                (PKIX_QC_SYNTAX_V2, Some(Any::encode_from(&info)?))
            }
        };
        Ok(QcStatement { statement_id: id, statement_info: info })
    }
}

/// The non-critical qcStatements extension holding `statements` in order (EN 319 412-5 §4.1:
/// not critical).
pub fn extension(statements: &[Statement]) -> der::Result<x509_cert::ext::Extension> {
    let encoded = statements.iter().map(Statement::encode).collect::<der::Result<Vec<_>>>()?;
    Ok(x509_cert::ext::Extension {
        extn_id: ID_PE_QC_STATEMENTS,
        critical: false,
        extn_value: der::asn1::OctetString::new(encoded.to_der()?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The qualified time-stamp statement as EN 319 422 §9.1 spells it: extnID qcStatements,
    /// not critical, extnValue SEQUENCE { SEQUENCE { esi4-qtstStatement-1 } }.
    #[test]
    fn the_qualified_timestamp_statement_encodes_as_the_standard_says() {
        let der = extension(&[Statement::QualifiedTimestamp]).unwrap().to_der().unwrap();
        assert_eq!(hex::encode(der), "301906082b06010505070103040d300b30090607040081975e0101");
    }

    /// Each statement's DER, byte for byte, from the ASN.1 of EN 319 412-5 Annex B and RFC 3739.
    #[test]
    fn certificate_statements_encode_as_the_standards_say() {
        let value = |s: Statement| hex::encode(extension(&[s]).unwrap().extn_value.as_bytes());
        // SEQUENCE { SEQUENCE { OID 0.4.0.1862.1.1 } }
        assert_eq!(value(Statement::Compliance), "300a3008060604008e460101");
        assert_eq!(value(Statement::Sscd), "300a3008060604008e460104");
        // ... { OID qcType, SEQUENCE { OID esign } }
        assert_eq!(value(Statement::Type(QcType::Esign)), "30153013060604008e4601063009060704008e46010601");
        // ... { OID pkixQCSyntax-v2, SEQUENCE { OID semanticsId-Natural } }
        assert_eq!(
            value(Statement::Semantics(Semantics::Natural)),
            "3017301506082b06010505070b023009060704008bec490101"
        );
        let pds = Statement::Pds(vec![Pds { url: "https://x.dk/p".into(), language: "en".into() }]);
        // ... { OID qcPDS, SEQUENCE { SEQUENCE { IA5String, PrintableString "en" } } }
        let expected = "30223020060604008e46010530163014160e68747470733a2f2f782e646b2f701302656e";
        assert_eq!(value(pds), expected);
    }
}
