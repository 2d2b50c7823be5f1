//! Certification paths (RFC 5280 §6): building a chain to an anchor within bounds, and the
//! checks of each certificate on it (validity, critical extensions, CA constraints, key usage,
//! signatures).

use super::{fail, format_failure, rfc3339, Cert, Fail, Validator, MAX_CHAIN_LEN, MAX_SIGNATURE_TRIES, MIN_RSA_BITS};
use crate::digest::HashAlg;
use crate::keys::verify::{self, oid_name, SigError};
use crate::signing::report::SubIndication;
use const_oid::db::rfc5280;
use const_oid::ObjectIdentifier;
use der::Encode;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::Certificate;

impl Validator {
    /// Builds a chain from `leaf` to a trust anchor with certificates of `pool`, which holds the
    /// anchors too (issuer name equal to subject name, AKI equal to SKI when both are present,
    /// the certificate's signature verified with the issuer's key), and checks it at time `at`.
    ///
    /// Written here rather than taken from a crate: `certval` (RFC 5280 path validation on
    /// RustCrypto types) is only published on der 0.8 / x509-cert 0.3, which cannot share types
    /// with x509-tsp and x509-ocsp (see STACK.md); `rustls-webpki` would add ring to the daemon
    /// and reports one error per chain, while ETSI EN 319 102-1 needs to know which certificate
    /// is out of validity (signer: NOT_YET_VALID / OUT_OF_BOUNDS_NO_POE) or revoked. The
    /// subset needed for document signatures without policy or name constraints is small.
    pub(super) fn build_chain<'a>(&'a self, leaf: &'a Cert, pool: &[&'a Cert], at: u64) -> Result<Vec<&'a Cert>, Fail> {
        let mut search = Search { pool, at, tries: 0, first_error: None, signature_error: None, found: None };
        let mut path = vec![leaf];
        self.extend(&mut path, &mut search);
        if let Some(chain) = search.found {
            return Ok(chain);
        }
        if let Some(f) = search.first_error {
            return Err(f);
        }
        if let Some(reason) = search.signature_error {
            return fail(SubIndication::CertificateChainGeneralFailure, reason);
        }
        fail(SubIndication::NoCertificateChainFound, format!("no chain from '{}' to a trust anchor", leaf.subject()))
    }

    pub(super) fn is_anchor(&self, c: &Cert) -> bool {
        self.anchors.iter().any(|a| a.der == c.der)
    }

    /// Depth-first search: true once `search.found` holds a chain that passes every check.
    pub(super) fn extend<'a>(&'a self, path: &mut Vec<&'a Cert>, search: &mut Search<'_, 'a>) -> bool {
        let Some(&current) = path.last() else { return false };
        if self.is_anchor(current) {
            match check_chain(path, search.at) {
                Ok(()) => {
                    search.found = Some(path.clone());
                    return true;
                }
                Err(f) => {
                    search.first_error.get_or_insert(f);
                    return false;
                }
            }
        }
        if path.len() >= MAX_CHAIN_LEN {
            return false;
        }
        let tbs = &current.cert.tbs_certificate;
        let aki = tbs.get::<AuthorityKeyIdentifier>().ok().flatten().and_then(|(_, a)| a.key_identifier);
        let mut candidates: Vec<(bool, &'a Cert)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for &c in search.pool {
            if c.cert.tbs_certificate.subject != tbs.issuer || path.iter().any(|p| p.der == c.der) {
                continue;
            }
            if !seen.insert(c.der.as_slice()) {
                continue;
            }
            let ski = c.cert.tbs_certificate.get::<SubjectKeyIdentifier>().ok().flatten().map(|(_, s)| s.0);
            match (&aki, &ski) {
                (Some(a), Some(s)) if a != s => continue,
                (Some(_), Some(_)) => candidates.push((true, c)),
                _ => candidates.push((false, c)),
            }
        }
        // Key identifier matches first: they are almost certainly the issuer.
        candidates.sort_by_key(|(key_match, _)| !key_match);
        for (_, issuer) in candidates {
            if search.tries >= MAX_SIGNATURE_TRIES {
                return false;
            }
            search.tries += 1;
            let verified = match self.is_verified_link(current, issuer) {
                true => Ok(()),
                false => verify_certificate_signature(current, issuer),
            };
            match verified {
                Ok(()) => {
                    path.push(issuer);
                    if self.extend(path, search) {
                        return true;
                    }
                    path.pop();
                }
                Err(reason) => {
                    search.signature_error.get_or_insert(reason);
                }
            }
        }
        false
    }
}

pub(super) struct Search<'p, 'a> {
    pool: &'p [&'a Cert],
    at: u64,
    tries: usize,
    first_error: Option<Fail>,
    signature_error: Option<String>,
    found: Option<Vec<&'a Cert>>,
}

/// Checks a chain (leaf first, anchor last) at time `at` (RFC 5280 §6.1.3–§6.1.4, for what
/// document signatures need): validity of every certificate but the anchor, unknown critical
/// extensions, and the CA constraints of every intermediate.
pub(super) fn check_chain(path: &[&Cert], at: u64) -> Result<(), Fail> {
    let Some((_anchor, below)) = path.split_last() else { return Ok(()) };
    for (i, c) in below.iter().enumerate() {
        let tbs = &c.cert.tbs_certificate;
        let not_before = tbs.validity.not_before.to_unix_duration().as_secs();
        let not_after = tbs.validity.not_after.to_unix_duration().as_secs();
        let role = if i == 0 { "signing certificate" } else { "CA certificate" };
        if at < not_before {
            // Holding the signature at `at` (now, or the time-stamp's genTime) proves it
            // existed before the signer's certificate: EN 319 102-1 Table 5 NOT_YET_VALID.
            let sub = if i == 0 { SubIndication::NotYetValid } else { SubIndication::OutOfBoundsNoPoe };
            return fail(
                sub,
                format!(
                    "{role} '{}' is not valid before {} (validation time {})",
                    c.subject(),
                    rfc3339(not_before),
                    rfc3339(at)
                ),
            );
        }
        if at > not_after {
            return fail(
                SubIndication::OutOfBoundsNoPoe,
                format!(
                    "{role} '{}' expired at {} and nothing proves the signature existed before (validation time {})",
                    c.subject(),
                    rfc3339(not_after),
                    rfc3339(at)
                ),
            );
        }
        for ext in tbs.extensions.iter().flat_map(|e| e.iter()).filter(|e| e.critical) {
            if !KNOWN_CRITICAL.contains(&ext.extn_id) {
                return fail(
                    SubIndication::ChainConstraintsFailure,
                    format!(
                        "{role} '{}' has the critical extension {} that is not processed",
                        c.subject(),
                        oid_name(&ext.extn_id)
                    ),
                );
            }
        }
        if i == 0 {
            continue;
        }
        let constraint = |r: String| Fail { sub: SubIndication::ChainConstraintsFailure, reason: r };
        let bc = tbs
            .get::<BasicConstraints>()
            .map_err(|e| constraint(format!("'{}': invalid basicConstraints: {e}", c.subject())))?;
        match bc {
            Some((_, bc)) if bc.ca => {
                // Intermediates below this one (RFC 5280 §6.1.4 (m); self-issued ones are rare
                // enough in signing chains to be counted too).
                let below_ca = i.saturating_sub(1);
                if let Some(max) = bc.path_len_constraint {
                    if below_ca > usize::from(max) {
                        return Err(constraint(format!(
                            "'{}' allows {max} CA certificates below it, the chain has {below_ca}",
                            c.subject()
                        )));
                    }
                }
            }
            _ => {
                return Err(constraint(format!(
                    "'{}' issues certificates but is not a CA (basicConstraints)",
                    c.subject()
                )))
            }
        }
        match tbs.get::<KeyUsage>() {
            Ok(None) => {}
            Ok(Some((_, ku))) if ku.0.contains(KeyUsages::KeyCertSign) => {}
            Ok(Some(_)) => return Err(constraint(format!("'{}' lacks the keyCertSign key usage", c.subject()))),
            Err(e) => return Err(constraint(format!("'{}': invalid keyUsage: {e}", c.subject()))),
        }
    }
    Ok(())
}

/// Critical extensions whose semantics the checks here honour or which do not restrict a
/// signature validation (policies are not processed: no initial policy set is required).
pub(super) const KNOWN_CRITICAL: &[ObjectIdentifier] = &[
    rfc5280::ID_CE_BASIC_CONSTRAINTS,
    rfc5280::ID_CE_KEY_USAGE,
    rfc5280::ID_CE_EXT_KEY_USAGE,
    rfc5280::ID_CE_SUBJECT_ALT_NAME,
    rfc5280::ID_CE_ISSUER_ALT_NAME,
    rfc5280::ID_CE_CERTIFICATE_POLICIES,
    rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
    rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
];

/// Extended key purposes that allow a key to sign documents. RFC 5280 §4.2.1.12: when the
/// extension is present, critical or not, the certificate is for those purposes only, so a
/// TLS-only certificate (serverAuth, clientAuth) must not pass as a document signer.
const DOCUMENT_SIGNING_PURPOSES: &[ObjectIdentifier] = &[
    rfc5280::ANY_EXTENDED_KEY_USAGE,
    rfc5280::ID_KP_EMAIL_PROTECTION,
    // id-kp-documentSigning (RFC 9336)
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.36"),
    // Adobe Authentic Documents Trust (AATL document signers)
    ObjectIdentifier::new_unwrap("1.2.840.113583.1.1.5"),
    // Microsoft document signing (szOID_KP_DOCUMENT_SIGNING)
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.3.12"),
];

/// The signer's key must be for signatures (RFC 5280 §4.2.1.3; EN 319 412-2 §4.3.2):
/// digitalSignature or nonRepudiation (contentCommitment), and nonRepudiation alone when
/// `commitment` is asked (the key usage of certificates for signatures with commitment, EN 319
/// 412-2 §4.3.2). An absent keyUsage or extendedKeyUsage restricts nothing (RFC 5280); a present
/// extendedKeyUsage must name a document-signing purpose ([`DOCUMENT_SIGNING_PURPOSES`]), so that
/// TLS, time-stamping and OCSP certificates do not sign documents. ETSI has no sub-indication
/// for the signing certificate's key purposes; like other validators, the failure is reported as
/// a signature constraint.
pub(super) fn signer_key_usage(cert: &Certificate, commitment: bool) -> Result<(), Fail> {
    let subject = &cert.tbs_certificate.subject;
    match cert.tbs_certificate.get::<ExtendedKeyUsage>() {
        Ok(None) => {}
        Ok(Some((_, eku))) if eku.0.iter().any(|p| DOCUMENT_SIGNING_PURPOSES.contains(p)) => {}
        Ok(Some((_, eku))) => {
            let purposes: Vec<String> = eku.0.iter().map(oid_name).collect();
            return fail(
                SubIndication::SigConstraintsFailure,
                format!(
                    "signing certificate '{subject}' is not for document signing: its extendedKeyUsage allows only {}",
                    purposes.join(", ")
                ),
            );
        }
        Err(e) => return format_failure(format!("signing certificate has an invalid extendedKeyUsage: {e}")),
    }
    match cert.tbs_certificate.get::<KeyUsage>() {
        Ok(None) => Ok(()),
        Ok(Some((_, ku))) if ku.0.contains(KeyUsages::NonRepudiation) => Ok(()),
        Ok(Some(_)) if commitment => fail(
            SubIndication::SigConstraintsFailure,
            format!("signing certificate '{subject}' lacks the nonRepudiation (contentCommitment) key usage that the validation asks"),
        ),
        Ok(Some((_, ku))) if ku.0.contains(KeyUsages::DigitalSignature) => Ok(()),
        Ok(Some(_)) => fail(
            SubIndication::SigConstraintsFailure,
            format!("signing certificate '{subject}' has neither digitalSignature nor nonRepudiation key usage"),
        ),
        Err(e) => format_failure(format!("signing certificate has an invalid keyUsage: {e}")),
    }
}

/// [`keys::verify::verify_signature`] under this validation's cryptographic constraints: RSA
/// moduli below [`MIN_RSA_BITS`] are not supported (ETSI TS 119 312).
pub(super) fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    alg: &AlgorithmIdentifierOwned,
    cms_digest: Option<HashAlg>,
    sig: &[u8],
    msg: &[u8],
) -> Result<(), SigError> {
    if let Some(bits) = verify::rsa_modulus_bits(spki).filter(|b| *b < MIN_RSA_BITS) {
        return Err(SigError::Unsupported(format!("RSA key of {bits} bits (at least {MIN_RSA_BITS} required)")));
    }
    verify::verify_signature(spki, alg, cms_digest, sig, msg)
}

/// Verifies the signature of `cert` with the key of `issuer`. The error is a reason.
pub(super) fn verify_certificate_signature(cert: &Cert, issuer: &Cert) -> Result<(), String> {
    let c = &cert.cert;
    if c.signature_algorithm != c.tbs_certificate.signature {
        return Err(format!("'{}': signatureAlgorithm differs from the TBS signature field", cert.subject()));
    }
    let tbs = c.tbs_certificate.to_der().map_err(|e| format!("'{}': unencodable: {e}", cert.subject()))?;
    let sig = c.signature.as_bytes().ok_or_else(|| format!("'{}': signature has unused bits", cert.subject()))?;
    verify_signature(&issuer.cert.tbs_certificate.subject_public_key_info, &c.signature_algorithm, None, sig, &tbs)
        .map_err(|e| {
            let (SigError::Unsupported(r) | SigError::Invalid(r)) = e;
            format!("signature of '{}' does not verify with the key of '{}': {r}", cert.subject(), issuer.subject())
        })
}
