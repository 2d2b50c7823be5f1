//! The SignerInfo (RFC 5652 §5.3–§5.6): message-digest and content-type attributes, the signer
//! certificate bound by signing-certificate(-v2) (RFC 5035, ETSI EN 319 102-1 §5.2.3), and the
//! signature value.

use super::{
    fail, format_failure, path::verify_signature, structure::econtent, structure::single_attr, Cert, Content, Fail,
    Found,
};
use crate::digest::HashAlg;
use crate::keys::verify::{oid_name, SigError};
use crate::signed_data::ess::{IssuerSerial, SigningCertificate, SigningCertificateV2};
use crate::signing::report::SubIndication;
use cms::signed_data::{SignedData, SignerIdentifier};
use const_oid::db::{rfc5911, rfc5912};
use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Decode, Encode};
use x509_cert::attr::Attributes;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

/// RFC 5652 §5.4–§5.6 for the one SignerInfo of `sd`: the content's digest against the
/// message-digest attribute, the content-type attribute, the signer certificate (by
/// SignerIdentifier among `pool`, bound by signing-certificate(-v2), RFC 5035 §5.4), and the
/// signature value over the DER of the signed attributes. Returns the signer certificate and
/// the signature value.
pub(super) fn verify_signer(
    sd: &SignedData,
    content: Content<'_>,
    pool: &[&Cert],
    found: &mut Found,
) -> Result<(Cert, Vec<u8>), Fail> {
    let mut infos = sd.signer_infos.0.iter();
    let si = match (infos.next(), infos.next()) {
        (Some(si), None) => si,
        (None, _) => return format_failure("SignedData has no SignerInfo"),
        (Some(_), Some(_)) => return format_failure("SignedData has more than one SignerInfo; one is supported"),
    };
    let Some(hash) = HashAlg::from_oid(&si.digest_alg.oid) else {
        return fail(
            SubIndication::CryptoConstraintsFailure,
            format!("digest algorithm {} is not supported (SHA-256/384/512 are)", oid_name(&si.digest_alg.oid)),
        );
    };
    found.hash = Some(hash);

    let econtent = econtent(sd)?;
    let digest = match (content, &econtent) {
        (Content::Enveloped, Some(c)) => hash.digest(c),
        (Content::Enveloped, None) => {
            return fail(
                SubIndication::SignedDataNotFound,
                "the signature is detached and neither the document nor its digest was given",
            )
        }
        (Content::Document(d), None) => hash.digest(d),
        (Content::Document(d), Some(c)) => {
            if d != c.as_slice() {
                return fail(
                    SubIndication::HashFailure,
                    "the given document differs from the content inside the signature",
                );
            }
            hash.digest(c)
        }
        (Content::Digest { alg, value }, embedded) => {
            if alg != hash {
                return fail(
                    SubIndication::SignedDataNotFound,
                    format!("a {alg} digest was given but the signature's digest algorithm is {hash}: give the document or its {hash} digest"),
                );
            }
            if value.len() != alg.output_len() {
                return fail(
                    SubIndication::SignedDataNotFound,
                    format!("a {alg} digest is {} bytes, {} were given", alg.output_len(), value.len()),
                );
            }
            if let Some(c) = embedded {
                if hash.digest(c) != value {
                    return fail(
                        SubIndication::HashFailure,
                        "the given digest is not that of the content inside the signature",
                    );
                }
            }
            value.to_vec()
        }
    };

    // EN 319 122-1 §5.1 (and RFC 5652 §5.3 for any content other than id-data): signed
    // attributes are mandatory.
    let Some(attrs) = &si.signed_attrs else {
        return format_failure(
            "no signed attributes: CAdES requires content-type, message-digest and signing-certificate-v2",
        );
    };
    match single_attr(attrs, rfc5911::ID_CONTENT_TYPE)? {
        None => return format_failure("no content-type signed attribute (RFC 5652 §11.1)"),
        Some(v) => match v.decode_as::<ObjectIdentifier>() {
            Ok(ct) if ct == sd.encap_content_info.econtent_type => {}
            Ok(ct) => {
                return format_failure(format!(
                    "content-type attribute {} differs from eContentType {}",
                    oid_name(&ct),
                    oid_name(&sd.encap_content_info.econtent_type)
                ))
            }
            Err(e) => return format_failure(format!("invalid content-type attribute: {e}")),
        },
    }
    if let Some(v) = single_attr(attrs, rfc5911::ID_SIGNING_TIME)? {
        // Time is a CHOICE, which `Any::decode_as` cannot target: decode it from the TLV.
        match v.to_der().and_then(|tlv| x509_cert::time::Time::from_der(&tlv)) {
            Ok(t) => found.signing_time = Some(t.to_unix_duration().as_secs()),
            Err(e) => return format_failure(format!("invalid signing-time attribute: {e}")),
        }
    }
    match single_attr(attrs, rfc5911::ID_MESSAGE_DIGEST)? {
        None => return format_failure("no message-digest signed attribute (RFC 5652 §11.2)"),
        Some(v) => match v.decode_as::<OctetString>() {
            Ok(md) if md.as_bytes() == digest.as_slice() => {}
            Ok(_) => {
                return fail(SubIndication::HashFailure, "the message-digest attribute does not match the content")
            }
            Err(e) => return format_failure(format!("invalid message-digest attribute: {e}")),
        },
    }

    let signer = identify_signer(&si.sid, attrs, pool, found)?;
    found.signer = Some(signer.clone());

    // RFC 5652 §5.4: the signature covers the DER of the signed attributes with the SET OF tag.
    let signed = attrs.to_der().or_else(|e| format_failure(format!("unencodable signed attributes: {e}")))?;
    let signature_value = si.signature.as_bytes();
    match verify_signature(
        &signer.cert.tbs_certificate.subject_public_key_info,
        &si.signature_algorithm,
        Some(hash),
        signature_value,
        &signed,
    ) {
        Ok(()) => Ok((signer, signature_value.to_vec())),
        Err(SigError::Unsupported(r)) => fail(SubIndication::CryptoConstraintsFailure, r),
        Err(SigError::Invalid(r)) => {
            fail(SubIndication::SigCryptoFailure, format!("the signature value does not verify: {r}"))
        }
    }
}

/// EN 319 102-1 §5.2.3: the signing certificate is the one the SignerIdentifier names and the
/// signing-certificate-v2 (or v1) attribute's first ESSCertID binds (hash, and issuer and
/// serial when given).
pub(super) fn identify_signer(
    sid: &SignerIdentifier,
    attrs: &Attributes,
    pool: &[&Cert],
    found: &mut Found,
) -> Result<Cert, Fail> {
    let by_sid: Vec<&Cert> = pool
        .iter()
        .copied()
        .filter(|c| {
            let tbs = &c.cert.tbs_certificate;
            match sid {
                SignerIdentifier::IssuerAndSerialNumber(ias) => {
                    tbs.issuer == ias.issuer && tbs.serial_number == ias.serial_number
                }
                SignerIdentifier::SubjectKeyIdentifier(ski) => {
                    tbs.get::<SubjectKeyIdentifier>().ok().flatten().is_some_and(|(_, s)| s.0 == ski.0)
                }
            }
        })
        .collect();
    let Some(&first) = by_sid.first() else {
        return fail(
            SubIndication::NoSigningCertificateFound,
            "no certificate in the signature matches its SignerIdentifier",
        );
    };
    found.signer = Some(first.clone());

    // (hash algorithm, hash, issuer and serial) of the first ESSCertID: it names the signer
    // (RFC 5035 §5.4.1); further ones are for the chain and not checked.
    let v2 = single_attr(attrs, rfc5911::ID_AA_SIGNING_CERTIFICATE_V_2)?;
    let v1 = single_attr(attrs, rfc5911::ID_AA_SIGNING_CERTIFICATE)?;
    let (alg, cert_hash, issuer_serial): (Option<HashAlg>, Vec<u8>, Option<IssuerSerial>) = match (v2, v1) {
        (Some(v), _) => {
            let sc: SigningCertificateV2 =
                v.decode_as().or_else(|e| format_failure(format!("invalid signing-certificate-v2 attribute: {e}")))?;
            let Some(id) = sc.certs.into_iter().next() else {
                return format_failure("signing-certificate-v2 lists no certificate");
            };
            let oid = id.hash_algorithm.as_ref().map_or(rfc5912::ID_SHA_256, |a| a.oid);
            let alg = HashAlg::from_oid(&oid);
            if alg.is_none() {
                return fail(
                    SubIndication::NoSigningCertificateFound,
                    format!("signing-certificate-v2 uses the unsupported hash {}", oid_name(&oid)),
                );
            }
            (alg, id.cert_hash.into_bytes(), id.issuer_serial)
        }
        (None, Some(v)) => {
            let sc: SigningCertificate =
                v.decode_as().or_else(|e| format_failure(format!("invalid signing-certificate attribute: {e}")))?;
            let Some(id) = sc.certs.into_iter().next() else {
                return format_failure("signing-certificate lists no certificate");
            };
            (None, id.cert_hash.into_bytes(), id.issuer_serial)
        }
        (None, None) => {
            return format_failure(
                "no signing-certificate-v2 signed attribute (RFC 5035; required by EN 319 122-1 B-B)",
            )
        }
    };
    found.has_signing_certificate = true;

    let matches = |c: &Cert| {
        let hash_ok = match alg {
            Some(h) => h.digest(&c.der) == cert_hash,
            None => {
                use sha1::Digest;
                sha1::Sha1::digest(&c.der)[..] == cert_hash[..]
            }
        };
        let tbs = &c.cert.tbs_certificate;
        let serial_ok = issuer_serial.as_ref().is_none_or(|is| {
            is.serial_number == tbs.serial_number
                && is.issuer.iter().any(|g| matches!(g, GeneralName::DirectoryName(n) if *n == tbs.issuer))
        });
        hash_ok && serial_ok
    };
    match by_sid.into_iter().find(|c| matches(c)) {
        Some(c) => Ok(c.clone()),
        None => fail(
            SubIndication::NoSigningCertificateFound,
            format!(
                "the signing-certificate{} attribute does not match the certificate '{}' the SignerIdentifier names",
                if alg.is_some() { "-v2" } else { "" },
                first.subject()
            ),
        ),
    }
}
