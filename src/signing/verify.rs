//! Validation of CMS/CAdES signatures (RFC 5652, RFC 5035, ETSI EN 319 122-1 B-B and B-T)
//! following the basic signature validation of ETSI EN 319 102-1 §5.3, with the signature
//! time-stamp used as proof of existence (§5.5). A pure function of its inputs: the caller
//! supplies trust anchors, a revocation source and the current time.
//!
//! Every input byte is hostile: nothing here indexes, unwraps or panics on what it parses;
//! every failure becomes an indication in the report.

use super::report::{SubIndication, ValidationReport};
use crate::digest::HashAlg;
use crate::keys::verify::{self, SigError};
use crate::policy::Level;
use crate::signed_data::ess::{IssuerSerial, SigningCertificate, SigningCertificateV2};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use const_oid::db::{rfc5280, rfc5911, rfc5912};
use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Any, Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::sync::Arc;
use x509_cert::attr::Attributes;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
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
    /// date), for `reason` (RFC 5280 CRLReason name).
    Revoked {
        at: u64,
        reason: String,
    },
    /// No authoritative answer (no CRL/OCSP for this issuer, responder unreachable, …).
    Unknown,
}

/// Where revocation status comes from (trustd's own CA database, CRLs, OCSP responders).
/// Called for every certificate of a chain but the trust anchor.
pub trait RevocationSource: Send + Sync {
    fn status(&self, cert: &Certificate, issuer: &Certificate) -> RevocationStatus;
}

/// Validates CMS/CAdES signatures against a fixed set of trust anchors.
pub struct Validator {
    anchors: Vec<Cert>,
    /// Untrusted certificates that may complete a chain the signature does not carry.
    intermediates: Vec<Cert>,
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

fn oid_name(oid: &ObjectIdentifier) -> String {
    const_oid::db::DB.by_oid(oid).map(str::to_owned).unwrap_or_else(|| oid.to_string())
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
        Ok(Validator { anchors, intermediates: Vec::new(), revocation })
    }

    /// Adds CA certificates that may complete chains (e.g. trustd's own issuing CA, for
    /// signatures that carry only the signer's certificate). They are not trusted: a chain
    /// through them must still end at an anchor, and they are checked like any other.
    pub fn with_intermediates(mut self, certs: Vec<Certificate>) -> der::Result<Self> {
        self.intermediates = certs.into_iter().map(Cert::new).collect::<der::Result<Vec<_>>>()?;
        Ok(self)
    }

    /// Validates the DER CMS `signature_der` over `content` at `now` (Unix seconds): ETSI EN
    /// 319 102-1 basic signature validation (§5.3), with a valid signature time-stamp as proof
    /// of existence (§5.5), so that certificates are checked at its genTime.
    pub fn validate(&self, signature_der: &[u8], content: Content<'_>, now: u64) -> ValidationReport {
        let mut report = ValidationReport::new(now);
        match self.run(signature_der, content, now, &mut report) {
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
        signer_key_usage(&signer.cert)?;
        report.reasons.extend(self.check_revocation(&chain, poe, found.signing_time, false)?);
        Ok(())
    }

    /// A signature time-stamp (RFC 3161 §2.4.2, EN 319 102-1 §5.4): the token is a CMS
    /// signature verified like the signature itself, by a TSA whose certificate carries the
    /// critical id-kp-timeStamping EKU, chained to an anchor and valid now (EN 319 102-1 §5.4:
    /// a token is proof of existence only while its TSA certificate is; otherwise an expired
    /// TSA key could back-date anything), over the signature value. Returns genTime and notes
    /// for the report.
    fn validate_timestamp(
        &self,
        token: &Any,
        signature_value: &[u8],
        outer: &[Cert],
        now: u64,
    ) -> Result<(u64, Vec<String>), Fail> {
        let der = token.to_der().or_else(|e| format_failure(format!("unreadable token: {e}")))?;
        let sd = parse_signed_data(&der)?;
        if sd.encap_content_info.econtent_type != crate::tsa::ID_CT_TST_INFO {
            return format_failure(format!(
                "the token's content is {}, not id-ct-TSTInfo",
                oid_name(&sd.encap_content_info.econtent_type)
            ));
        }
        let certs = certificates(&sd)?;
        // The TSA certificate is in the token only if the requester set certReq: look among the
        // signature's own certificates, the configured intermediates and the anchors as well.
        let pool: Vec<&Cert> = certs.iter().chain(outer).chain(&self.intermediates).chain(&self.anchors).collect();
        let mut found = Found::default();
        let (tsa, _) = verify_signer(&sd, Content::Enveloped, &pool, &mut found)?;

        let tst_der = econtent(&sd)?
            .ok_or_else(|| Fail { sub: SubIndication::FormatFailure, reason: "the token has no TSTInfo".into() })?;
        let tst = crate::tsa::tst::TstInfo::from_der(&tst_der)
            .or_else(|e| format_failure(format!("invalid TSTInfo: {e}")))?;
        let imprint = &tst.message_imprint;
        let Some(alg) = HashAlg::from_oid(&imprint.hash_algorithm.oid) else {
            return fail(
                SubIndication::CryptoConstraintsFailure,
                format!("message imprint hash {} is not supported", oid_name(&imprint.hash_algorithm.oid)),
            );
        };
        if imprint.hashed_message.as_bytes() != alg.digest(signature_value).as_slice() {
            return fail(
                SubIndication::HashFailure,
                "the message imprint does not match the hash of the signature value",
            );
        }
        let gen_time = tst.gen_time.unix_secs();

        // RFC 3161 §2.3: exactly one EKU, id-kp-timeStamping, in a critical extension.
        match tsa.cert.tbs_certificate.get::<ExtendedKeyUsage>() {
            Ok(Some((true, eku))) if eku.0 == [rfc5280::ID_KP_TIME_STAMPING] => {}
            _ => {
                return fail(
                    SubIndication::SigConstraintsFailure,
                    format!(
                        "TSA certificate '{}' lacks the critical extendedKeyUsage id-kp-timeStamping (RFC 3161 §2.3)",
                        tsa.subject()
                    ),
                )
            }
        }
        let chain = self.build_chain(&tsa, &pool, now)?;
        let notes = self.check_revocation(&chain, None, Some(gen_time), true)?;
        Ok((gen_time, notes))
    }

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
    fn build_chain<'a>(&'a self, leaf: &'a Cert, pool: &[&'a Cert], at: u64) -> Result<Vec<&'a Cert>, Fail> {
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

    fn is_anchor(&self, c: &Cert) -> bool {
        self.anchors.iter().any(|a| a.der == c.der)
    }

    /// Depth-first search: true once `search.found` holds a chain that passes every check.
    fn extend<'a>(&'a self, path: &mut Vec<&'a Cert>, search: &mut Search<'_, 'a>) -> bool {
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
            match verify_certificate_signature(current, issuer) {
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

    /// Revocation of every certificate of `chain` but the anchor (EN 319 102-1 §5.2.6): a
    /// revocation after the proof of existence `poe` does not matter; before it, or, without
    /// POE, before the signer's own claimed signing time, the signature is TOTAL_FAILED
    /// REVOKED; otherwise nothing tells whether it was made before: REVOKED_NO_POE. Returns
    /// notes for a passed report.
    ///
    /// `time_stamp`: the chain is a TSA's and `claimed` its genTime, which the TSA vouches for;
    /// RFC 3161 §4 keeps tokens made before a revocation for a reason other than a key
    /// compromise valid.
    fn check_revocation(
        &self,
        chain: &[&Cert],
        poe: Option<u64>,
        claimed: Option<u64>,
        time_stamp: bool,
    ) -> Result<Vec<String>, Fail> {
        let mut notes = Vec::new();
        for (i, pair) in chain.windows(2).enumerate() {
            let [cert, issuer] = pair else { continue };
            let who = if i == 0 { "signing certificate" } else { "CA certificate" };
            match self.revocation.status(&cert.cert, &issuer.cert) {
                RevocationStatus::Good => {}
                RevocationStatus::Unknown => {
                    return fail(
                        SubIndication::TryLater,
                        format!("revocation status of {who} '{}' is unknown", cert.subject()),
                    )
                }
                RevocationStatus::Revoked { at, reason } => {
                    let what = format!("{who} '{}' was revoked at {} ({reason})", cert.subject(), rfc3339(at));
                    match (poe, claimed) {
                        (Some(p), _) if p < at => {
                            notes.push(format!("{what}, after the signature time-stamp at {}", rfc3339(p)))
                        }
                        (None, Some(t)) if time_stamp && t < at && !is_compromise(&reason) => {
                            notes.push(format!("{what}, after the time-stamp at {}", rfc3339(t)))
                        }
                        (Some(p), _) if i == 0 => {
                            return fail(
                                SubIndication::Revoked,
                                format!("{what}, before the signature time-stamp at {}", rfc3339(p)),
                            )
                        }
                        (None, Some(t)) if i == 0 && t >= at => {
                            return fail(
                                SubIndication::Revoked,
                                format!("{what}, before the signing time {} the signature claims", rfc3339(t)),
                            )
                        }
                        _ if i == 0 => {
                            return fail(
                                SubIndication::RevokedNoPoe,
                                format!("{what} and nothing proves the signature existed before"),
                            )
                        }
                        _ => {
                            return fail(
                                SubIndication::RevokedCaNoPoe,
                                format!("{what} and nothing proves the signature existed before"),
                            )
                        }
                    }
                }
            }
        }
        Ok(notes)
    }
}

/// RFC 5280 §5.3.1 reasons that put what the key signed before the revocation in doubt (an
/// unspecified reason or a hold may hide one).
fn is_compromise(reason: &str) -> bool {
    !matches!(reason, "affiliationChanged" | "superseded" | "cessationOfOperation" | "privilegeWithdrawn")
}

struct Search<'p, 'a> {
    pool: &'p [&'a Cert],
    at: u64,
    tries: usize,
    first_error: Option<Fail>,
    signature_error: Option<String>,
    found: Option<Vec<&'a Cert>>,
}

fn rfc3339(t: u64) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{t} (Unix time)"))
}

/// RFC 5652 §3: a ContentInfo holding SignedData.
fn parse_signed_data(der: &[u8]) -> Result<SignedData, Fail> {
    let ci = ContentInfo::from_der(der).or_else(|e| format_failure(format!("not a DER CMS ContentInfo: {e}")))?;
    if ci.content_type != rfc5911::ID_SIGNED_DATA {
        return format_failure(format!("ContentInfo holds {}, not id-signedData", oid_name(&ci.content_type)));
    }
    ci.content.decode_as::<SignedData>().or_else(|e| format_failure(format!("invalid SignedData: {e}")))
}

/// The X.509 certificates of a SignedData (RFC 5652 §5.1; other certificate formats are not
/// usable here and are skipped).
fn certificates(sd: &SignedData) -> Result<Vec<Cert>, Fail> {
    let mut out = Vec::new();
    for choice in sd.certificates.iter().flat_map(|s| s.0.iter()) {
        if let CertificateChoices::Certificate(c) = choice {
            out.push(Cert::new(c.clone()).or_else(|e| format_failure(format!("unencodable certificate: {e}")))?);
        }
    }
    Ok(out)
}

/// The eContent octets (RFC 5652 §5.2: always an OCTET STRING), if present.
fn econtent(sd: &SignedData) -> Result<Option<Vec<u8>>, Fail> {
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
fn single_attr(attrs: &Attributes, oid: ObjectIdentifier) -> Result<Option<&Any>, Fail> {
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

/// RFC 5652 §5.4–§5.6 for the one SignerInfo of `sd`: the content's digest against the
/// message-digest attribute, the content-type attribute, the signer certificate (by
/// SignerIdentifier among `pool`, bound by signing-certificate(-v2), RFC 5035 §5.4), and the
/// signature value over the DER of the signed attributes. Returns the signer certificate and
/// the signature value.
fn verify_signer(
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
fn identify_signer(
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

/// Checks a chain (leaf first, anchor last) at time `at` (RFC 5280 §6.1.3–§6.1.4, for what
/// document signatures need): validity of every certificate but the anchor, unknown critical
/// extensions, and the CA constraints of every intermediate.
fn check_chain(path: &[&Cert], at: u64) -> Result<(), Fail> {
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
const KNOWN_CRITICAL: &[ObjectIdentifier] = &[
    rfc5280::ID_CE_BASIC_CONSTRAINTS,
    rfc5280::ID_CE_KEY_USAGE,
    rfc5280::ID_CE_EXT_KEY_USAGE,
    rfc5280::ID_CE_SUBJECT_ALT_NAME,
    rfc5280::ID_CE_ISSUER_ALT_NAME,
    rfc5280::ID_CE_CERTIFICATE_POLICIES,
    rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
    rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
];

/// The signer's key must be for signatures (RFC 5280 §4.2.1.3; EN 319 412-2 §4.3.2):
/// digitalSignature or nonRepudiation (contentCommitment). An absent extension restricts
/// nothing (RFC 5280). A key whose critical extendedKeyUsage dedicates it to a service
/// (time-stamping, RFC 3161 §2.3; OCSP signing) must not sign documents. ETSI has no
/// sub-indication for the signing certificate's key usage; like other validators, the failure
/// is reported as a signature constraint.
fn signer_key_usage(cert: &Certificate) -> Result<(), Fail> {
    if let Ok(Some((true, eku))) = cert.tbs_certificate.get::<ExtendedKeyUsage>() {
        let service = [rfc5280::ID_KP_TIME_STAMPING, rfc5280::ID_KP_OCSP_SIGNING];
        if eku.0.iter().all(|p| service.contains(p)) {
            return fail(
                SubIndication::SigConstraintsFailure,
                format!(
                    "signing certificate '{}' is restricted to time-stamping or OCSP signing by a critical extendedKeyUsage",
                    cert.tbs_certificate.subject
                ),
            );
        }
    }
    match cert.tbs_certificate.get::<KeyUsage>() {
        Ok(None) => Ok(()),
        Ok(Some((_, ku))) if ku.0.contains(KeyUsages::DigitalSignature) || ku.0.contains(KeyUsages::NonRepudiation) => {
            Ok(())
        }
        Ok(Some(_)) => fail(
            SubIndication::SigConstraintsFailure,
            format!(
                "signing certificate '{}' has neither digitalSignature nor nonRepudiation key usage",
                cert.tbs_certificate.subject
            ),
        ),
        Err(e) => format_failure(format!("signing certificate has an invalid keyUsage: {e}")),
    }
}

/// [`keys::verify::verify_signature`] under this validation's cryptographic constraints: RSA
/// moduli below [`MIN_RSA_BITS`] are not supported (ETSI TS 119 312).
fn verify_signature(
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
fn verify_certificate_signature(cert: &Cert, issuer: &Cert) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    //! Fixtures are made at test time with the `openssl` CLI: a throwaway CA (root, intermediate,
    //! signers, TSA) and signatures by a CMS implementation nobody here wrote.

    use super::*;
    use crate::signing::report::Indication;
    use der::asn1::SetOfVec;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, OnceLock};
    use x509_cert::attr::Attribute;

    const DOC: &[u8] = b"%PDF-1.7 a document to sign\n";
    const EXT: &str = "\
[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[inter]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[signer]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[noku]
keyUsage = critical,keyAgreement
subjectKeyIdentifier = hash
[tsa]
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[tsa_config]
serial = tsaserial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ess_cert_id_alg = sha256
[tsa_config_v1]
serial = tsaserial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
ess_cert_id_alg = sha1
";

    struct Fixture {
        dir: PathBuf,
        counter: AtomicUsize,
        // openssl ts -reply rewrites its serial file: one reply at a time.
        ts_lock: Mutex<()>,
    }

    fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    fn fixture() -> &'static Fixture {
        static F: OnceLock<Fixture> = OnceLock::new();
        F.get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir").keep();
            std::fs::write(dir.join("ext.cnf"), EXT).unwrap();
            std::fs::write(dir.join("tsaserial"), "01\n").unwrap();
            std::fs::write(dir.join("doc.bin"), DOC).unwrap();
            let d = dir.as_path();
            let key = |name: &str, alg: &[&str]| {
                let mut a = vec!["genpkey", "-out", name];
                a.extend_from_slice(alg);
                openssl(d, &a);
            };
            let p256 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
            let p384 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];
            let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
            for (root, cn) in [("root", "Verify Test Root"), ("other", "Unrelated Test Root")] {
                key(&format!("{root}.key"), &p256);
                openssl(
                    d,
                    &[
                        "req",
                        "-x509",
                        "-new",
                        "-key",
                        &format!("{root}.key"),
                        "-subj",
                        &format!("/CN={cn}"),
                        "-days",
                        "3650",
                        "-config",
                        "ext.cnf",
                        "-extensions",
                        "root",
                        "-out",
                        &format!("{root}.pem"),
                    ],
                );
            }
            let issue = |name: &str, alg: &[&str], cn: &str, ca: &str, ext: &str, days: &str, serial: &str| {
                key(&format!("{name}.key"), alg);
                openssl(
                    d,
                    &[
                        "req",
                        "-new",
                        "-key",
                        &format!("{name}.key"),
                        "-subj",
                        &format!("/CN={cn}"),
                        "-config",
                        "ext.cnf",
                        "-out",
                        &format!("{name}.csr"),
                    ],
                );
                openssl(
                    d,
                    &[
                        "x509",
                        "-req",
                        "-in",
                        &format!("{name}.csr"),
                        "-CA",
                        &format!("{ca}.pem"),
                        "-CAkey",
                        &format!("{ca}.key"),
                        "-set_serial",
                        serial,
                        "-days",
                        days,
                        "-extfile",
                        "ext.cnf",
                        "-extensions",
                        ext,
                        "-out",
                        &format!("{name}.pem"),
                    ],
                );
            };
            issue("inter", &p384, "Verify Test Intermediate", "root", "inter", "3650", "4097");
            issue("ec256", &p256, "Signer P-256", "inter", "signer", "30", "4098");
            issue("ec384", &p384, "Signer P-384", "inter", "signer", "30", "4099");
            issue("rsa", &rsa, "Signer RSA", "inter", "signer", "30", "4100");
            issue("noku", &p256, "Signer Key Agreement", "inter", "noku", "30", "4101");
            issue("stranger", &p256, "Stranger", "other", "signer", "30", "4102");
            issue("tsa", &p256, "Test TSA", "inter", "tsa", "365", "4103");
            let rsa1024 = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"];
            issue("rsa1024", &rsa1024, "Signer RSA-1024", "inter", "signer", "30", "4104");
            Fixture { dir, counter: AtomicUsize::new(0), ts_lock: Mutex::new(()) }
        })
    }

    impl Fixture {
        fn cert(&self, name: &str) -> Certificate {
            let pem = std::fs::read(self.dir.join(format!("{name}.pem"))).unwrap();
            let (_, der) = der::pem::decode_vec(&pem).unwrap();
            Certificate::from_der(&der).unwrap()
        }

        fn tmp(&self, ext: &str) -> String {
            format!("t{}.{ext}", self.counter.fetch_add(1, Ordering::Relaxed))
        }

        /// `openssl cms -sign -cades` by `signer` (chain: the intermediate) with `extra` options.
        fn sign(&self, signer: &str, extra: &[&str]) -> Vec<u8> {
            self.sign_with_chain(signer, if signer == "stranger" { "other.pem" } else { "inter.pem" }, extra)
        }

        /// As `sign`, with the certificates of `certfile` ("" for none) beside the signer's.
        fn sign_with_chain(&self, signer: &str, certfile: &str, extra: &[&str]) -> Vec<u8> {
            let out = self.tmp("p7s");
            let (cert, key) = (format!("{signer}.pem"), format!("{signer}.key"));
            let mut args = vec!["cms", "-sign", "-binary", "-in", "doc.bin", "-signer", &cert, "-inkey", &key];
            if !certfile.is_empty() {
                args.extend_from_slice(&["-certfile", certfile]);
            }
            args.extend_from_slice(&["-outform", "DER", "-out", &out]);
            args.extend_from_slice(extra);
            openssl(&self.dir, &args);
            std::fs::read(self.dir.join(&out)).unwrap()
        }

        /// An RFC 3161 token from `openssl ts -reply` over `imprint` (SHA-256).
        fn timestamp(&self, imprint: &[u8], section: &str) -> Vec<u8> {
            let _guard = self.ts_lock.lock().unwrap();
            let (q, t) = (self.tmp("tsq"), self.tmp("tst"));
            openssl(&self.dir, &["ts", "-query", "-digest", &hex::encode(imprint), "-sha256", "-cert", "-out", &q]);
            openssl(
                &self.dir,
                &[
                    "ts",
                    "-reply",
                    "-config",
                    "ext.cnf",
                    "-section",
                    section,
                    "-queryfile",
                    &q,
                    "-signer",
                    "tsa.pem",
                    "-inkey",
                    "tsa.key",
                    "-chain",
                    "inter.pem",
                    "-token_out",
                    "-out",
                    &t,
                ],
            );
            std::fs::read(self.dir.join(&t)).unwrap()
        }
    }

    struct Revocations(Mutex<HashMap<Vec<u8>, RevocationStatus>>);

    impl RevocationSource for Revocations {
        fn status(&self, cert: &Certificate, _issuer: &Certificate) -> RevocationStatus {
            let serial = cert.tbs_certificate.serial_number.as_bytes().to_vec();
            self.0.lock().unwrap().get(&serial).cloned().unwrap_or(RevocationStatus::Good)
        }
    }

    fn validator_with(anchors: &[&str], revoked: &[(&str, RevocationStatus)]) -> Validator {
        let f = fixture();
        let map = revoked
            .iter()
            .map(|(name, st)| (f.cert(name).tbs_certificate.serial_number.as_bytes().to_vec(), st.clone()))
            .collect();
        Validator::new(anchors.iter().map(|a| f.cert(a)).collect(), Arc::new(Revocations(Mutex::new(map)))).unwrap()
    }

    fn validator() -> Validator {
        validator_with(&["root"], &[])
    }

    fn now() -> u64 {
        crate::unix_time::now()
    }

    #[track_caller]
    fn assert_passed(r: &ValidationReport) {
        assert_eq!(r.indication, Indication::TotalPassed, "{:?}", r.reasons);
        assert_eq!(r.sub_indication, None);
    }

    #[track_caller]
    fn assert_sub(r: &ValidationReport, sub: SubIndication) {
        assert_eq!(r.sub_indication, Some(sub), "{:?}", r.reasons);
        assert_eq!(r.indication, sub.indication());
        assert!(!r.reasons.is_empty());
    }

    /// Rewrites the one SignerInfo of a CMS signature.
    fn edit_signer_info(sig: &[u8], edit: impl FnOnce(&mut cms::signed_data::SignerInfo)) -> Vec<u8> {
        let ci = ContentInfo::from_der(sig).unwrap();
        let mut sd: SignedData = ci.content.decode_as().unwrap();
        let mut infos = sd.signer_infos.0.into_vec();
        edit(&mut infos[0]);
        sd.signer_infos = cms::signed_data::SignerInfos(SetOfVec::try_from(infos).unwrap());
        ContentInfo { content_type: ci.content_type, content: Any::encode_from(&sd).unwrap() }.to_der().unwrap()
    }

    fn signature_value(sig: &[u8]) -> Vec<u8> {
        let sd = parse_signed_data(sig).unwrap();
        sd.signer_infos.0.iter().next().unwrap().signature.as_bytes().to_vec()
    }

    fn with_timestamp(sig: &[u8], token: &[u8]) -> Vec<u8> {
        edit_signer_info(sig, |si| {
            let attr = Attribute {
                oid: ID_AA_SIGNATURE_TIME_STAMP_TOKEN,
                values: SetOfVec::try_from(vec![Any::from_der(token).unwrap()]).unwrap(),
            };
            si.unsigned_attrs = Some(SetOfVec::try_from(vec![attr]).unwrap());
        })
    }

    fn b_t(signer: &str, section: &str) -> Vec<u8> {
        let f = fixture();
        let sig = f.sign(signer, &["-md", "sha256", "-cades"]);
        let token = f.timestamp(&HashAlg::Sha256.digest(&signature_value(&sig)), section);
        with_timestamp(&sig, &token)
    }

    #[test]
    fn detached_document_and_digest_pass_for_every_algorithm() {
        let f = fixture();
        let cases: [(&str, &[&str], HashAlg); 6] = [
            ("ec256", &["-md", "sha256"], HashAlg::Sha256),
            ("ec256", &["-md", "sha512"], HashAlg::Sha512),
            ("ec384", &["-md", "sha384"], HashAlg::Sha384),
            ("rsa", &["-md", "sha256"], HashAlg::Sha256),
            ("rsa", &["-md", "sha384", "-keyopt", "rsa_padding_mode:pss"], HashAlg::Sha384),
            (
                "rsa",
                &["-md", "sha256", "-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:20"],
                HashAlg::Sha256,
            ),
        ];
        let v = validator();
        for (signer, opts, hash) in cases {
            let mut args = opts.to_vec();
            args.push("-cades");
            let sig = f.sign(signer, &args);
            let r = v.validate(&sig, Content::Document(DOC), now());
            assert_passed(&r);
            assert_eq!(r.digest_algorithm, Some(hash));
            assert_eq!(r.level, Some(Level::BB));
            assert_eq!(r.signer_certificate.as_deref(), Some(f.cert(signer).to_der().unwrap().as_slice()));
            assert_eq!(r.certificate_chain.len(), 3);
            assert!(r.signer_subject.as_deref().is_some_and(|s| s.starts_with("CN=Signer")));
            assert!(r.signing_time.is_some_and(|t| t.abs_diff(now()) < 600));
            assert_eq!(r.timestamp_time, None);
            let r = v.validate(&sig, Content::Digest { alg: hash, value: &hash.digest(DOC) }, now());
            assert_passed(&r);
        }
    }

    #[test]
    fn enveloping_and_subject_key_identifier() {
        let f = fixture();
        let v = validator();
        let sig = f.sign("ec384", &["-md", "sha384", "-cades", "-nodetach", "-keyid"]);
        assert_passed(&v.validate(&sig, Content::Enveloped, now()));
        assert_passed(&v.validate(&sig, Content::Document(DOC), now()));
        assert_sub(&v.validate(&sig, Content::Document(b"other"), now()), SubIndication::HashFailure);
        let wrong = HashAlg::Sha384.digest(b"other");
        assert_sub(
            &v.validate(&sig, Content::Digest { alg: HashAlg::Sha384, value: &wrong }, now()),
            SubIndication::HashFailure,
        );
    }

    #[test]
    fn wrong_document_or_digest_is_hash_failure() {
        let f = fixture();
        let v = validator();
        let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
        let r = v.validate(&sig, Content::Document(b"%PDF-1.7 another document\n"), now());
        assert_sub(&r, SubIndication::HashFailure);
        assert_eq!(r.indication, Indication::TotalFailed);
        let other = HashAlg::Sha256.digest(b"x");
        assert_sub(
            &v.validate(&sig, Content::Digest { alg: HashAlg::Sha256, value: &other }, now()),
            SubIndication::HashFailure,
        );
    }

    #[test]
    fn detached_without_content_or_with_another_digest_algorithm_is_indeterminate() {
        let f = fixture();
        let v = validator();
        let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
        assert_sub(&v.validate(&sig, Content::Enveloped, now()), SubIndication::SignedDataNotFound);
        let d = HashAlg::Sha384.digest(DOC);
        let r = v.validate(&sig, Content::Digest { alg: HashAlg::Sha384, value: &d }, now());
        assert_sub(&r, SubIndication::SignedDataNotFound);
        assert!(r.reasons[0].contains("sha256"), "{:?}", r.reasons);
        let r = v.validate(&sig, Content::Digest { alg: HashAlg::Sha256, value: &d }, now());
        assert_sub(&r, SubIndication::SignedDataNotFound);
    }

    #[test]
    fn modified_signature_value_is_sig_crypto_failure() {
        let f = fixture();
        let v = validator();
        for (signer, opts) in [("ec256", &["-md", "sha256", "-cades"][..]), ("rsa", &["-md", "sha256", "-cades"][..])] {
            let sig = f.sign(signer, opts);
            let bad = edit_signer_info(&sig, |si| {
                let mut s = si.signature.as_bytes().to_vec();
                if let Some(b) = s.last_mut() {
                    *b ^= 1;
                }
                si.signature = OctetString::new(s).unwrap();
            });
            let r = v.validate(&bad, Content::Document(DOC), now());
            assert_sub(&r, SubIndication::SigCryptoFailure);
            assert_eq!(r.indication, Indication::TotalFailed);
        }
    }

    #[test]
    fn unknown_anchor_is_no_certificate_chain_found() {
        let f = fixture();
        let sig = f.sign("stranger", &["-md", "sha256", "-cades"]);
        assert_sub(&validator().validate(&sig, Content::Document(DOC), now()), SubIndication::NoCertificateChainFound);
        assert_passed(&validator_with(&["other"], &[]).validate(&sig, Content::Document(DOC), now()));
        // Trusting the intermediate alone is enough.
        let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
        let r = validator_with(&["inter"], &[]).validate(&sig, Content::Document(DOC), now());
        assert_passed(&r);
        assert_eq!(r.certificate_chain.len(), 2);
    }

    #[test]
    fn configured_intermediates_complete_a_chain_the_signature_lacks() {
        let f = fixture();
        let sig = f.sign_with_chain("ec256", "", &["-md", "sha256", "-cades"]);
        assert_sub(&validator().validate(&sig, Content::Document(DOC), now()), SubIndication::NoCertificateChainFound);
        let v = validator().with_intermediates(vec![f.cert("inter")]).unwrap();
        let r = v.validate(&sig, Content::Document(DOC), now());
        assert_passed(&r);
        assert_eq!(r.certificate_chain.len(), 3);
        // An intermediate does not make an anchor.
        let v = validator_with(&["other"], &[]).with_intermediates(vec![f.cert("inter")]).unwrap();
        assert_sub(&v.validate(&sig, Content::Document(DOC), now()), SubIndication::NoCertificateChainFound);
    }

    #[test]
    fn weak_rsa_key_is_crypto_constraints_failure() {
        let sig = fixture().sign("rsa1024", &["-md", "sha256", "-cades"]);
        let r = validator().validate(&sig, Content::Document(DOC), now());
        assert_sub(&r, SubIndication::CryptoConstraintsFailure);
        assert!(r.reasons[0].contains("1024"), "{:?}", r.reasons);
    }

    #[test]
    fn expired_and_not_yet_valid_signer() {
        let f = fixture();
        let v = validator();
        let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
        let r = v.validate(&sig, Content::Document(DOC), now() + 40 * 86400);
        assert_sub(&r, SubIndication::OutOfBoundsNoPoe);
        assert_eq!(r.indication, Indication::Indeterminate);
        let r = v.validate(&sig, Content::Document(DOC), now() - 2 * 86400);
        assert_sub(&r, SubIndication::NotYetValid);
        assert_eq!(r.indication, Indication::TotalFailed);
        // Past the intermediate's validity too: the signer is named first.
        let r = v.validate(&sig, Content::Document(DOC), now() + 4000 * 86400);
        assert_sub(&r, SubIndication::OutOfBoundsNoPoe);
        assert!(r.reasons[0].contains("signing certificate"), "{:?}", r.reasons);
    }

    #[test]
    fn signer_without_signature_key_usage_is_sig_constraints_failure() {
        let f = fixture();
        let sig = f.sign("noku", &["-md", "sha256", "-cades"]);
        let r = validator().validate(&sig, Content::Document(DOC), now());
        assert_sub(&r, SubIndication::SigConstraintsFailure);
        assert!(r.reasons[0].contains("key usage"), "{:?}", r.reasons);
    }

    #[test]
    fn signer_certificate_as_issuer_is_a_chain_constraints_failure() {
        // A chain through a leaf certificate (CA:FALSE): openssl refuses to issue from it, so
        // the check is exercised directly.
        let f = fixture();
        let leaf = Cert::new(f.cert("ec256")).unwrap();
        let inter = Cert::new(f.cert("inter")).unwrap();
        let root = Cert::new(f.cert("root")).unwrap();
        assert!(check_chain(&[&leaf, &inter, &root], now()).is_ok());
        let err = check_chain(&[&leaf, &leaf, &inter, &root], now()).unwrap_err();
        assert_eq!(err.sub, SubIndication::ChainConstraintsFailure);
        // pathlen:0 on the intermediate forbids a CA below it.
        let err = check_chain(&[&leaf, &inter, &inter, &root], now()).unwrap_err();
        assert_eq!(err.sub, SubIndication::ChainConstraintsFailure, "{err:?}");
    }

    #[test]
    fn revoked_signer() {
        let f = fixture();
        let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
        let t = now();
        // Revoked before the signing time the signer claims.
        let v = validator_with(
            &["root"],
            &[("ec256", RevocationStatus::Revoked { at: t - 3600, reason: "keyCompromise".into() })],
        );
        let r = v.validate(&sig, Content::Document(DOC), t);
        assert_sub(&r, SubIndication::Revoked);
        assert!(r.reasons[0].contains("keyCompromise"), "{:?}", r.reasons);
        // Revoked after it, and no time-stamp proves when the signature was made.
        let v = validator_with(
            &["root"],
            &[("ec256", RevocationStatus::Revoked { at: t + 60, reason: "superseded".into() })],
        );
        assert_sub(&v.validate(&sig, Content::Document(DOC), t + 3600), SubIndication::RevokedNoPoe);
        let v = validator_with(
            &["root"],
            &[("inter", RevocationStatus::Revoked { at: t + 60, reason: "cACompromise".into() })],
        );
        assert_sub(&v.validate(&sig, Content::Document(DOC), t + 3600), SubIndication::RevokedCaNoPoe);
        let v = validator_with(&["root"], &[("ec256", RevocationStatus::Unknown)]);
        assert_sub(&v.validate(&sig, Content::Document(DOC), t), SubIndication::TryLater);
        // The anchor is never asked.
        let v = validator_with(&["root"], &[("root", RevocationStatus::Unknown)]);
        assert_passed(&v.validate(&sig, Content::Document(DOC), t));
    }

    #[test]
    fn missing_signing_certificate_v2_is_format_failure() {
        let f = fixture();
        let sig = f.sign("ec256", &["-md", "sha256"]);
        let r = validator().validate(&sig, Content::Document(DOC), now());
        assert_sub(&r, SubIndication::FormatFailure);
        assert!(r.reasons[0].contains("signing-certificate-v2"), "{:?}", r.reasons);
    }

    #[test]
    fn signer_certificate_missing_or_not_matching_signing_certificate_v2() {
        let f = fixture();
        let v = validator();
        let sig = f.sign("ec256", &["-md", "sha256", "-cades", "-nocerts"]);
        assert_sub(&v.validate(&sig, Content::Document(DOC), now()), SubIndication::NoSigningCertificateFound);
        // The SignerIdentifier names another certificate than signing-certificate-v2 binds.
        let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
        let ec384 = f.cert("ec384");
        let sd = parse_signed_data(&sig).unwrap();
        let mut sd2 = sd.clone();
        let mut certs = sd.certificates.clone().unwrap().0.into_vec();
        certs.push(CertificateChoices::Certificate(ec384.clone()));
        sd2.certificates = Some(cms::signed_data::CertificateSet(SetOfVec::try_from(certs).unwrap()));
        let sig2 = ContentInfo { content_type: rfc5911::ID_SIGNED_DATA, content: Any::encode_from(&sd2).unwrap() }
            .to_der()
            .unwrap();
        let sig2 = edit_signer_info(&sig2, |si| {
            si.sid = SignerIdentifier::IssuerAndSerialNumber(cms::cert::IssuerAndSerialNumber {
                issuer: ec384.tbs_certificate.issuer.clone(),
                serial_number: ec384.tbs_certificate.serial_number.clone(),
            });
        });
        let r = v.validate(&sig2, Content::Document(DOC), now());
        assert_sub(&r, SubIndication::NoSigningCertificateFound);
        assert!(r.reasons[0].contains("signing-certificate-v2"), "{:?}", r.reasons);
    }

    #[test]
    fn two_signer_infos_are_a_format_failure() {
        let f = fixture();
        let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
        let other = parse_signed_data(&f.sign("ec384", &["-md", "sha384", "-cades"])).unwrap();
        let mut sd = parse_signed_data(&sig).unwrap();
        let mut infos = sd.signer_infos.0.into_vec();
        infos.extend(other.signer_infos.0.into_vec());
        sd.signer_infos = cms::signed_data::SignerInfos(SetOfVec::try_from(infos).unwrap());
        let der = ContentInfo { content_type: rfc5911::ID_SIGNED_DATA, content: Any::encode_from(&sd).unwrap() }
            .to_der()
            .unwrap();
        let r = validator().validate(&der, Content::Document(DOC), now());
        assert_sub(&r, SubIndication::FormatFailure);
        assert!(r.reasons[0].contains("more than one SignerInfo"), "{:?}", r.reasons);
    }

    #[test]
    fn b_t_passes_and_validates_at_gen_time() {
        let v = validator();
        for section in ["tsa_config", "tsa_config_v1"] {
            let sig = b_t("ec256", section);
            let r = v.validate(&sig, Content::Document(DOC), now());
            assert_passed(&r);
            assert_eq!(r.level, Some(Level::BT));
            let gen = r.timestamp_time.expect("genTime");
            assert!(gen.abs_diff(now()) < 600);
            assert_eq!(r.validation_time, gen);
            // Long after the signer expired, the time-stamp still proves the signature existed
            // while it was valid.
            assert_passed(&v.validate(&sig, Content::Document(DOC), now() + 200 * 86400));
        }
    }

    #[test]
    fn b_t_with_revocation_after_or_before_the_time_stamp() {
        let sig = b_t("ec256", "tsa_config");
        let t = now();
        let v = validator_with(
            &["root"],
            &[("ec256", RevocationStatus::Revoked { at: t + 3600, reason: "keyCompromise".into() })],
        );
        let r = v.validate(&sig, Content::Document(DOC), t + 7200);
        assert_passed(&r);
        assert!(r.reasons.iter().any(|n| n.contains("after the signature time-stamp")), "{:?}", r.reasons);
        let v = validator_with(
            &["root"],
            &[("ec256", RevocationStatus::Revoked { at: t - 3600, reason: "keyCompromise".into() })],
        );
        assert_sub(&v.validate(&sig, Content::Document(DOC), t), SubIndication::Revoked);
        // A TSA revoked before its own time-stamp.
        let v = validator_with(
            &["root"],
            &[("tsa", RevocationStatus::Revoked { at: t - 3600, reason: "keyCompromise".into() })],
        );
        let r = v.validate(&sig, Content::Document(DOC), t);
        assert_sub(&r, SubIndication::Revoked);
        assert!(r.reasons[0].starts_with("signature time-stamp:"), "{:?}", r.reasons);
        // RFC 3161 §4: a TSA retired after its time-stamp leaves the token valid; a compromised
        // one does not.
        let v = validator_with(
            &["root"],
            &[("tsa", RevocationStatus::Revoked { at: t + 60, reason: "cessationOfOperation".into() })],
        );
        let r = v.validate(&sig, Content::Document(DOC), t + 3600);
        assert_passed(&r);
        assert!(r.reasons.iter().any(|n| n.contains("cessationOfOperation")), "{:?}", r.reasons);
        let v = validator_with(
            &["root"],
            &[("tsa", RevocationStatus::Revoked { at: t + 60, reason: "keyCompromise".into() })],
        );
        let r = v.validate(&sig, Content::Document(DOC), t + 3600);
        assert_sub(&r, SubIndication::RevokedNoPoe);
        assert!(r.reasons[0].starts_with("signature time-stamp:"), "{:?}", r.reasons);
    }

    #[test]
    fn a_tsa_key_does_not_sign_documents() {
        let sig = fixture().sign("tsa", &["-md", "sha256", "-cades"]);
        let r = validator().validate(&sig, Content::Document(DOC), now());
        assert_sub(&r, SubIndication::SigConstraintsFailure);
        assert!(r.reasons[0].contains("time-stamping"), "{:?}", r.reasons);
    }

    #[test]
    fn validator_is_shareable_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Validator>();
    }

    #[test]
    fn b_t_time_stamp_over_something_else_is_hash_failure() {
        let f = fixture();
        let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
        let token = f.timestamp(&HashAlg::Sha256.digest(b"not the signature value"), "tsa_config");
        let r = validator().validate(&with_timestamp(&sig, &token), Content::Document(DOC), now());
        assert_sub(&r, SubIndication::HashFailure);
        assert!(r.reasons[0].contains("time-stamp") && r.reasons[0].contains("imprint"), "{:?}", r.reasons);
        assert_eq!(r.level, Some(Level::BT));
    }

    #[test]
    fn b_t_with_a_broken_token_signature_or_unknown_tsa() {
        let f = fixture();
        let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
        let token = f.timestamp(&HashAlg::Sha256.digest(&signature_value(&sig)), "tsa_config");
        let bad_token = edit_signer_info(&token, |si| {
            let mut s = si.signature.as_bytes().to_vec();
            if let Some(b) = s.last_mut() {
                *b ^= 0x40;
            }
            si.signature = OctetString::new(s).unwrap();
        });
        let r = validator().validate(&with_timestamp(&sig, &bad_token), Content::Document(DOC), now());
        assert_sub(&r, SubIndication::SigCryptoFailure);
        assert!(r.reasons[0].starts_with("signature time-stamp:"), "{:?}", r.reasons);
        // Not a time-stamp token at all: the signature itself in the attribute.
        let r = validator().validate(&with_timestamp(&sig, &sig), Content::Document(DOC), now());
        assert_sub(&r, SubIndication::FormatFailure);
        assert!(r.reasons[0].contains("id-ct-TSTInfo"), "{:?}", r.reasons);
    }

    #[test]
    fn tsa_certificate_needs_the_critical_time_stamping_eku() {
        // A signer certificate (no EKU) used as TSA: openssl ts refuses to sign with it, so
        // the token is built by signing a TSTInfo with `openssl cms`.
        let f = fixture();
        let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
        let token = f.timestamp(&HashAlg::Sha256.digest(&signature_value(&sig)), "tsa_config");
        let tst = econtent(&parse_signed_data(&token).unwrap()).unwrap().unwrap();
        let (tin, tout) = (f.tmp("tst"), f.tmp("p7s"));
        std::fs::write(f.dir.join(&tin), tst).unwrap();
        openssl(
            &f.dir,
            &[
                "cms",
                "-sign",
                "-binary",
                "-nodetach",
                "-in",
                &tin,
                "-econtent_type",
                "1.2.840.113549.1.9.16.1.4",
                "-signer",
                "ec384.pem",
                "-inkey",
                "ec384.key",
                "-md",
                "sha256",
                "-cades",
                "-outform",
                "DER",
                "-out",
                &tout,
            ],
        );
        let fake = std::fs::read(f.dir.join(&tout)).unwrap();
        let r = validator().validate(&with_timestamp(&sig, &fake), Content::Document(DOC), now());
        assert_sub(&r, SubIndication::SigConstraintsFailure);
        assert!(r.reasons[0].contains("id-kp-timeStamping"), "{:?}", r.reasons);
    }

    #[test]
    fn hostile_input_never_panics() {
        let f = fixture();
        let v = validator();
        let valid = b_t("ec256", "tsa_config");
        assert_passed(&v.validate(&valid, Content::Document(DOC), now()));
        let t = now();
        let check = |bytes: &[u8]| {
            let r = v.validate(bytes, Content::Document(DOC), t);
            assert_eq!(r.sub_indication.is_none(), r.indication == Indication::TotalPassed);
            r
        };
        for len in (0..valid.len()).step_by(7) {
            let r = check(valid.get(..len).unwrap_or_default());
            assert_sub(&r, SubIndication::FormatFailure);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(5652);
        let mut passed = 0;
        for _ in 0..400 {
            let mut bytes = valid.clone();
            let i = rng.gen_range(0..bytes.len());
            bytes[i] ^= 1 << rng.gen_range(0..8);
            if check(&bytes).passed() {
                passed += 1;
            }
        }
        // Flips in unsigned, unchecked places (e.g. an unused certificate field) can pass;
        // most must not.
        assert!(passed < 100, "{passed} bit-flipped signatures passed");
        for _ in 0..200 {
            let len = rng.gen_range(0..600);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if rng.gen_bool(0.5) && bytes.len() > 4 {
                // A plausible outer SEQUENCE header, to get past the first tag check.
                bytes[0] = 0x30;
                bytes[1] = 0x82;
            }
            assert_sub(&check(&bytes), SubIndication::FormatFailure);
        }
        let _ = f;
    }
}
