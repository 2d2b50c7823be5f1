//! Validation of CMS/CAdES signatures (RFC 5652, RFC 5035, ETSI EN 319 122-1 B-B and B-T)
//! following the basic signature validation of ETSI EN 319 102-1 §5.3, with the signature
//! time-stamp used as proof of existence (§5.5). A pure function of its inputs: the caller
//! supplies trust anchors, a revocation source and the current time.
//!
//! Every input byte is hostile: nothing here indexes, unwraps or panics on what it parses;
//! every failure becomes an indication in the report.

mod path;
mod revocation;
mod signer;
mod structure;
mod timestamp;

use super::report::{SubIndication, ValidationReport};
use crate::digest::HashAlg;
use crate::policy::Level;
use crate::revocation::Reason;
use const_oid::ObjectIdentifier;
use der::{Any, Encode};
use path::*;
use signer::*;
use std::sync::Arc;
use structure::*;
use x509_cert::Certificate;

/// id-aa-signatureTimeStampToken (RFC 3161 Appendix A; ETSI EN 319 122-1 §5.3): the unsigned
/// attribute holding a time-stamp token over the SignerInfo's signature value.
pub const ID_AA_SIGNATURE_TIME_STAMP_TOKEN: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");

/// Deepest chain built (signer, intermediates, anchor); real document-signing chains have 3–4.
const MAX_CHAIN_LEN: usize = 8;
/// Certificate signatures tried while building chains: bounds the work a hostile certificate
/// set with many same-named issuers can cause.
const MAX_SIGNATURE_TRIES: usize = 64;
/// Signature time-stamps read: each costs a chain validation; real signatures have one or two.
const MAX_TIMESTAMPS: usize = 8;
/// RSA moduli below this are refused (ETSI TS 119 312 no longer accepts 1024-bit RSA).
const MIN_RSA_BITS: usize = 2048;

/// What was signed, as the caller has it (RFC 5652 §5.2: eContent present or detached).
#[derive(Clone, Copy, Debug)]
pub enum Content<'a> {
    /// The content is inside the SignedData (an enveloping signature).
    Enveloped,
    /// The detached document.
    Document(&'a [u8]),
    /// Only the hash of the detached document; `alg` must be the SignerInfo's digestAlgorithm.
    Digest { alg: HashAlg, value: &'a [u8] },
}

/// Revocation status of a certificate, as a CRL or OCSP response tells it (RFC 5280 §5,
/// RFC 6960).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevocationStatus {
    Good,
    /// Revoked at `at` (Unix seconds; the invalidity date when known, else the revocation
    /// date), for `reason`.
    Revoked {
        at: u64,
        reason: Reason,
    },
    /// No authoritative answer (no CRL/OCSP for this issuer, responder unreachable, …).
    Unknown,
}

/// Where revocation status comes from (trustd's own CA database, CRLs, OCSP responders).
/// Called for every certificate of a chain but the trust anchor.
pub trait RevocationSource: Send + Sync {
    fn status(&self, cert: &Certificate, issuer: &Certificate) -> RevocationStatus;
}

/// What the caller's validation policy asks beyond the checks every validation makes (ETSI EN
/// 319 102-1 §5.1.4: the signature validation constraints).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Constraints {
    /// The signature must be one with commitment: the signer's certificate has the
    /// nonRepudiation (contentCommitment) key usage (EN 319 412-2 §4.3.2), as for a signature
    /// that binds its signer to the content rather than only authenticates them.
    pub commitment: bool,
}

/// Validates CMS/CAdES signatures against a fixed set of trust anchors.
pub struct Validator {
    anchors: Vec<Cert>,
    /// Untrusted certificates that may complete a chain the signature does not carry.
    intermediates: Vec<Cert>,
    /// (certificate, issuer) DER pairs among the intermediates and anchors whose signature
    /// verified when they were configured: fixed, so a chain through them need not verify it
    /// again (an ECDSA P-384 root's was most of a validation's CPU). Their validity, constraints
    /// and revocation are still checked in every chain.
    verified_links: Vec<(Vec<u8>, Vec<u8>)>,
    revocation: Arc<dyn RevocationSource>,
}

/// A decoded certificate and its DER, which ESS hashes and anchor matching need.
#[derive(Clone, Debug)]
struct Cert {
    cert: Certificate,
    der: Vec<u8>,
}

impl Cert {
    fn new(cert: Certificate) -> der::Result<Self> {
        let der = cert.to_der()?;
        Ok(Cert { cert, der })
    }

    fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }
}

/// A failed check: its sub-indication (which fixes the main indication) and why.
#[derive(Debug)]
struct Fail {
    sub: SubIndication,
    reason: String,
}

fn fail<T>(sub: SubIndication, reason: impl Into<String>) -> Result<T, Fail> {
    Err(Fail { sub, reason: reason.into() })
}

fn format_failure<T>(reason: impl Into<String>) -> Result<T, Fail> {
    fail(SubIndication::FormatFailure, reason)
}

/// What verifying a SignerInfo found, kept even when a later check fails so that the report
/// can say it.
#[derive(Default)]
struct Found {
    hash: Option<HashAlg>,
    signing_time: Option<u64>,
    signer: Option<Cert>,
    has_signing_certificate: bool,
}

impl Validator {
    /// A validator trusting `anchors` (RFC 5280 §6.1.1 (d): their names and keys; their own
    /// validity and extensions are not checked) and asking `revocation` about every other
    /// certificate of a chain.
    pub fn new(anchors: Vec<Certificate>, revocation: Arc<dyn RevocationSource>) -> der::Result<Self> {
        let anchors = anchors.into_iter().map(Cert::new).collect::<der::Result<Vec<_>>>()?;
        Ok(Validator { anchors, intermediates: Vec::new(), verified_links: Vec::new(), revocation })
    }

    /// Adds CA certificates that may complete chains (e.g. trustd's own issuing CA, for
    /// signatures that carry only the signer's certificate). They are not trusted: a chain
    /// through them must still end at an anchor, and they are checked like any other.
    pub fn with_intermediates(mut self, certs: Vec<Certificate>) -> der::Result<Self> {
        self.intermediates = certs.into_iter().map(Cert::new).collect::<der::Result<Vec<_>>>()?;
        self.verified_links = self
            .intermediates
            .iter()
            .flat_map(|c| self.anchors.iter().chain(&self.intermediates).map(move |issuer| (c, issuer)))
            .filter(|(c, issuer)| {
                c.cert.tbs_certificate.issuer == issuer.cert.tbs_certificate.subject
                    && path::verify_certificate_signature(c, issuer).is_ok()
            })
            .map(|(c, issuer)| (c.der.clone(), issuer.der.clone()))
            .collect();
        Ok(self)
    }

    /// Whether `issuer`'s signature on `cert` verified when they were configured.
    fn is_verified_link(&self, cert: &Cert, issuer: &Cert) -> bool {
        self.verified_links.iter().any(|(c, i)| *c == cert.der && *i == issuer.der)
    }

    /// Validates the DER CMS `signature_der` over `content` at `now` (Unix seconds): ETSI EN
    /// 319 102-1 basic signature validation (§5.3), with a valid signature time-stamp as proof
    /// of existence (§5.5), so that certificates are checked at its genTime.
    pub fn validate(&self, signature_der: &[u8], content: Content<'_>, now: u64) -> ValidationReport {
        self.validate_under(signature_der, content, Constraints::default(), now)
    }

    /// [`Validator::validate`] under the caller's `constraints`.
    pub fn validate_under(
        &self,
        signature_der: &[u8],
        content: Content<'_>,
        constraints: Constraints,
        now: u64,
    ) -> ValidationReport {
        let mut report = ValidationReport::new(now);
        match self.run(signature_der, content, constraints, now, &mut report) {
            Ok(()) => {
                report.indication = super::report::Indication::TotalPassed;
                report.sub_indication = None;
            }
            Err(f) => {
                report.indication = f.sub.indication();
                report.sub_indication = Some(f.sub);
                report.reasons.push(f.reason);
            }
        }
        report
    }

    fn run(
        &self,
        signature_der: &[u8],
        content: Content<'_>,
        constraints: Constraints,
        now: u64,
        report: &mut ValidationReport,
    ) -> Result<(), Fail> {
        let sd = parse_signed_data(signature_der)?;
        let certs = certificates(&sd)?;
        let pool: Vec<&Cert> = certs.iter().chain(&self.intermediates).chain(&self.anchors).collect();

        let mut found = Found::default();
        let verified = verify_signer(&sd, content, &pool, &mut found);
        report.digest_algorithm = found.hash;
        report.signing_time = found.signing_time;
        if let Some(c) = &found.signer {
            report.signer_subject = Some(c.subject());
            report.signer_certificate = Some(c.der.clone());
        }
        if found.has_signing_certificate {
            report.level = Some(Level::BB);
        }
        let (signer, signature_value) = verified?;

        // EN 319 122-1 §5.3: each id-aa-signatureTimeStampToken attribute holds one token over
        // the signature value. Every one present must be valid; the earliest is the POE.
        let mut poe: Option<u64> = None;
        let tokens: Vec<&Any> = sd
            .signer_infos
            .0
            .iter()
            .flat_map(|si| si.unsigned_attrs.iter().flat_map(|a| a.iter()))
            .filter(|a| a.oid == ID_AA_SIGNATURE_TIME_STAMP_TOKEN)
            .flat_map(|a| a.values.iter())
            .collect();
        if !tokens.is_empty() {
            report.level = Some(Level::BT);
        }
        if tokens.len() > MAX_TIMESTAMPS {
            return format_failure(format!(
                "{} signature time-stamps (at most {MAX_TIMESTAMPS} are read)",
                tokens.len()
            ));
        }
        for token in tokens {
            let (gen_time, notes) = self
                .validate_timestamp(token, &signature_value, &certs, now)
                .map_err(|f| Fail { sub: f.sub, reason: format!("signature time-stamp: {}", f.reason) })?;
            poe = Some(poe.map_or(gen_time, |p| p.min(gen_time)));
            report.reasons.extend(notes.into_iter().map(|n| format!("signature time-stamp: {n}")));
        }
        report.timestamp_time = poe;
        let at = poe.unwrap_or(now);
        report.validation_time = at;

        let chain = self.build_chain(&signer, &pool, at)?;
        report.certificate_chain = chain.iter().map(|c| c.der.clone()).collect();
        signer_key_usage(&signer.cert, constraints.commitment)?;
        report.reasons.extend(self.check_revocation(&chain, poe, found.signing_time, false)?);
        Ok(())
    }
}

fn rfc3339(t: u64) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{t} (Unix time)"))
}

#[cfg(test)]
mod tests;
