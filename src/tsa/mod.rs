//! RFC 3161 time-stamping authority (with RFC 5816's ESSCertIDv2): request checks, TSTInfo, and
//! the token as CMS SignedData signed through the key seam (the HSM in the daemon), at the
//! injected clock's time. Knows neither HTTP nor gRPC: both call
//! [`TimeStampAuthority::timestamp`] with the DER request (or
//! [`TimeStampAuthority::timestamp_request`] with one already decoded) and get a DER
//! TimeStampResp back.

pub mod tst;

use crate::ca_certificates::CaCertificates;
use crate::clock::Clock;
use crate::digest::HashAlg;
use crate::incident::Incident;
use crate::keys::{CertifiedKey, SigningKey};
use crate::log::Sha256;
use crate::policy::TsaPolicy;
use crate::records::RecordWriter;
use crate::serial::Serial;
use crate::signed_data::SignerDer;
use crate::store::TimestampRecord;
use cms::content_info::ContentInfo;
use const_oid::ObjectIdentifier;
use der::asn1::{BitString, Int, Utf8StringRef};
use der::Sequence;
use der::{Decode, Encode, Tag, Tagged};
use sha2::Digest;
use std::sync::Arc;
use x509_cert::ext::pkix::name::GeneralName;
use x509_tsp::{Accuracy, MessageImprint, TimeStampReq, TspVersion};

/// id-ct-TSTInfo (RFC 3161 §2.4.2).
pub const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// RFC 3161 §2.4.2 PKIFailureInfo values a TSA answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Unrecognised or unsupported algorithm (SHA-1, MD5, …).
    BadAlg,
    /// Transaction not permitted or supported (unparseable request).
    BadRequest,
    /// The data submitted has the wrong format (imprint length).
    BadDataFormat,
    /// The TSA's time source is not available.
    TimeNotAvailable,
    /// The requested TSA policy is not supported.
    UnacceptedPolicy,
    /// The requested extension is not supported.
    UnacceptedExtension,
    /// The request cannot be handled due to system failure.
    SystemFailure,
}

impl Failure {
    /// The name RFC 3161 gives the bit.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadAlg => "badAlg",
            Self::BadRequest => "badRequest",
            Self::BadDataFormat => "badDataFormat",
            Self::TimeNotAvailable => "timeNotAvailable",
            Self::UnacceptedPolicy => "unacceptedPolicy",
            Self::UnacceptedExtension => "unacceptedExtension",
            Self::SystemFailure => "systemFailure",
        }
    }

    /// The bit's position in PKIFailureInfo (RFC 3161 §2.4.2).
    fn bit(self) -> usize {
        match self {
            Self::BadAlg => 0,
            Self::BadRequest => 2,
            Self::BadDataFormat => 5,
            Self::TimeNotAvailable => 14,
            Self::UnacceptedPolicy => 15,
            Self::UnacceptedExtension => 16,
            Self::SystemFailure => 25,
        }
    }

    /// DER of a named BIT STRING with only this bit set: trailing zero bits removed (X.690
    /// §11.2.2), so the last octet holds the bit and the unused-bits count says where.
    fn bit_string(self) -> der::Result<BitString> {
        let n = self.bit();
        let mut bytes = vec![0u8; n / 8 + 1];
        bytes[n / 8] = 0x80 >> (n % 8);
        BitString::new((7 - n % 8) as u8, bytes)
    }
}

/// `PKIStatusInfo` (RFC 3161 §2.4.2, from RFC 4210). Encoded here rather than with `cmpv2` 0.2,
/// whose PKIFailureInfo flags use bit positions as masks (badAlg = 0 encodes no bit at all), so
/// a client could not tell why it was refused.
#[derive(Clone, Debug, Sequence)]
struct PkiStatusInfo<'a> {
    /// granted (0) or rejection (2).
    status: u8,
    #[asn1(optional = "true")]
    status_string: Option<Vec<Utf8StringRef<'a>>>,
    #[asn1(optional = "true")]
    fail_info: Option<BitString>,
}

/// `TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL }`
#[derive(Clone, Debug, Sequence)]
struct TimeStampResp<'a> {
    status: PkiStatusInfo<'a>,
    #[asn1(optional = "true")]
    time_stamp_token: Option<ContentInfo>,
}

/// Why a request was refused: the RFC 3161 status and a reason for the client. A system
/// failure's reason is an [`Incident`] reference; the cause is in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub failure: Failure,
    pub reason: String,
}

impl Refusal {
    fn new(failure: Failure, reason: impl Into<String>) -> Self {
        Refusal { failure, reason: reason.into() }
    }

    /// systemFailure, with the cause logged and only its reference told.
    fn system(cause: &dyn std::fmt::Display) -> Self {
        let incident = Incident::record("time-stamp failed", cause);
        Refusal::new(Failure::SystemFailure, format!("the TSA could not answer ({incident})"))
    }
}

/// A granted token's serial and genTime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    pub serial: Serial,
    pub gen_time: tst::GenTime,
}

/// What happened to one request. `response_der` is always a complete TimeStampResp.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub response_der: Vec<u8>,
    pub result: Result<Granted, Refusal>,
}

/// A granted time-stamp token (RFC 3161 §2.4.2 TimeStampToken), recorded.
pub struct Token {
    /// The token, DER: ContentInfo with SignedData over the TSTInfo.
    pub der: Vec<u8>,
    pub serial: Serial,
    pub gen_time: tst::GenTime,
}

/// Why the TSA could not be set up from its key and certificate.
#[derive(Debug, thiserror::Error)]
#[error("TSA certificate: {0}")]
pub struct TsaError(String);

/// A request that passed every check.
struct Checked {
    req: TimeStampReq,
    hash: HashAlg,
    policy: ObjectIdentifier,
}

/// The longest nonce a request may carry, in octets of its magnitude.
pub const MAX_NONCE: usize = 32;

/// The TSA: its signer, its policy, its clock, and the token log.
pub struct TimeStampAuthority {
    /// Replaced whole when the TSA key rolls over: a token is made with one signer throughout.
    signer: arc_swap::ArcSwap<TsaSigner>,
    /// Where the chain of each TSA certificate comes from.
    cas: CaCertificates,
    policy: TsaPolicy,
    clock: Arc<dyn Clock>,
    writer: RecordWriter<TimestampRecord>,
}

/// The TSA's key and what follows from its certificate.
struct TsaSigner {
    key: Arc<dyn SigningKey>,
    /// The TSA's name (its certificate's subject), for TSTInfo's tsa field.
    name: GeneralName,
    /// `[0] IMPLICIT CertificateSet` with the TSA certificate and the CA that issued it, for
    /// requests with certReq.
    certificate_der: Vec<u8>,
    /// The TSA certificate followed by the CA chain.
    chain: Vec<Vec<u8>>,
    /// The SignerInfo's constant parts, with the signing-certificate-v2 attribute (RFC 5816).
    signer_der: SignerDer,
    /// SHA-256 of the TSA certificate, DER: the key, as the log names it.
    certificate_hash: Sha256,
}

impl TsaSigner {
    fn new(key: CertifiedKey, cas: &CaCertificates) -> Result<Self, TsaError> {
        let signer_der = SignerDer::for_key(&key).map_err(TsaError)?;
        let CertifiedKey { key, cert, der } = key;
        let issuer = cas
            .issuer_of(&cert)
            .filter(|ca| ca.ca != crate::ca_id::CaId::Root)
            .ok_or_else(|| TsaError("the TSA certificate was not issued by trustd's issuing CA".into()))?;
        let ca_chain = cas.chain(issuer.ca).unwrap_or_default();
        let name = GeneralName::DirectoryName(cert.tbs_certificate.subject.clone());
        // RFC 3161 §2.4.1: with certReq the TSA's certificate must be there, and others may be;
        // its issuing CA is, so that a validator holding only the root completes the path (an
        // issuing CA that rolled over is one it has not seen). The root is the relying party's.
        let certificate_der = crate::signed_data::certificates_der(vec![cert, issuer.cert.clone()])
            .map_err(|e| TsaError(format!("encoding: {e}")))?;
        let certificate_hash = sha2::Sha256::digest(&der).into();
        let mut chain = vec![der];
        chain.extend(ca_chain);
        Ok(TsaSigner { key, name, certificate_der, chain, signer_der, certificate_hash })
    }

    /// Signs the TSTInfo: the token, a ContentInfo with SignedData (RFC 3161 §2.4.2, RFC 5652
    /// §5) whose signed attributes carry content-type, message-digest and
    /// signing-certificate-v2, with the TSA certificate when the request asked for it.
    async fn sign_token(&self, tst_der: &[u8], cert_req: bool) -> Result<Vec<u8>, String> {
        let digest = self.signer_der.hash().digest(tst_der);
        let signed_attrs =
            self.signer_der.signed_attributes(ID_CT_TST_INFO, &digest, &[]).map_err(|e| e.to_string())?;
        let signature = self.key.sign(&signed_attrs).await.map_err(|e| e.to_string())?;
        let certificates = if cert_req { &self.certificate_der[..] } else { &[] };
        self.signer_der
            .content_info(ID_CT_TST_INFO, Some(tst_der), certificates, &signed_attrs, signature.as_bytes(), &[])
            .map_err(|e| e.to_string())
    }
}

impl TimeStampAuthority {
    /// The TSA signing with `key` under `policy`; `cas` holds the CA that issued its
    /// certificate (a generation of the issuing CA). Per-request failures are RFC 3161 statuses, not errors; only this can
    /// fail.
    pub fn new(
        key: CertifiedKey,
        cas: CaCertificates,
        policy: TsaPolicy,
        clock: Arc<dyn Clock>,
        writer: RecordWriter<TimestampRecord>,
    ) -> Result<Self, TsaError> {
        let signer = arc_swap::ArcSwap::from_pointee(TsaSigner::new(key, &cas)?);
        Ok(TimeStampAuthority { signer, cas, policy, clock, writer })
    }

    /// Signs every token from now on with `key` (a rolled-over TSA key and its certificate);
    /// tokens being made finish with the key they started with.
    pub fn rotate(&self, key: CertifiedKey) -> Result<(), TsaError> {
        self.signer.store(Arc::new(TsaSigner::new(key, &self.cas)?));
        Ok(())
    }

    /// Whether the TSA policy accepts imprints made with `hash`.
    pub fn accepts(&self, hash: HashAlg) -> bool {
        self.policy.hash_algorithms.contains(&hash)
    }

    /// The TSA certificate followed by its CA chain (DER), for relying parties.
    pub fn chain(&self) -> Vec<Vec<u8>> {
        self.signer.load().chain.clone()
    }

    /// Answers one DER TimeStampReq (RFC 3161 §2.4.1) with a DER TimeStampResp (§2.4.2) for
    /// `requester` (the client's configured name, empty for an anonymous request). A granted
    /// token is recorded durably, and with the log on sequenced, before this returns.
    pub async fn timestamp(&self, request_der: &[u8], requester: &str) -> Outcome {
        match parse(request_der) {
            Ok(req) => self.timestamp_request(req, requester).await,
            Err(refusal) => outcome(Err(refusal)),
        }
    }

    /// Answers a request already decoded (the gRPC digest form builds one with
    /// [`request_from_digest`]), with the same checks as a DER one.
    pub async fn timestamp_request(&self, req: TimeStampReq, requester: &str) -> Outcome {
        let granted = match self.check(req) {
            Ok(checked) => self.issue(checked, requester).await,
            Err(refusal) => Err(refusal),
        };
        outcome(granted.and_then(|token| {
            let der = granted_response(&token.der).map_err(|e| Refusal::system(&e))?;
            Ok((der, Granted { serial: token.serial, gen_time: token.gen_time }))
        }))
    }

    fn check(&self, req: TimeStampReq) -> Result<Checked, Refusal> {
        let alg = &req.message_imprint.hash_algorithm;
        let hash =
            HashAlg::from_oid(&alg.oid).filter(|h| self.policy.hash_algorithms.contains(h)).ok_or_else(|| {
                let name = const_oid::db::DB.by_oid(&alg.oid).map_or_else(|| alg.oid.to_string(), str::to_owned);
                Refusal::new(Failure::BadAlg, format!("hash algorithm {name} is not accepted"))
            })?;
        if alg.parameters.as_ref().is_some_and(|p| p.tag() != Tag::Null) {
            return Err(Refusal::new(Failure::BadAlg, "hash algorithm parameters must be absent or NULL"));
        }
        let len = req.message_imprint.hashed_message.as_bytes().len();
        if len != hash.output_len() {
            return Err(Refusal::new(
                Failure::BadDataFormat,
                format!("{hash} imprint must be {} bytes, got {len}", hash.output_len()),
            ));
        }
        // RFC 3161 §2.4.1 leaves the nonce's size open; clients send 64 bits (OpenSSL) to 256.
        // A bound keeps what is signed, recorded and echoed small.
        if let Some(n) = &req.nonce {
            let magnitude = n.as_bytes().strip_prefix(&[0]).unwrap_or(n.as_bytes());
            if magnitude.len() > MAX_NONCE {
                return Err(Refusal::new(
                    Failure::BadRequest,
                    format!("nonce of {} octets; at most {MAX_NONCE} (256 bits)", magnitude.len()),
                ));
            }
        }
        let policy = match req.req_policy {
            Some(p) if !self.policy.accepted_policies.contains(&p) => {
                return Err(Refusal::new(Failure::UnacceptedPolicy, format!("policy {p} is not accepted")))
            }
            Some(p) => p,
            None => self.policy.default_policy,
        };
        if let Some(ext) = req.extensions.iter().flatten().find(|e| e.critical) {
            return Err(Refusal::new(
                Failure::UnacceptedExtension,
                format!("critical extension {} is not supported", ext.extn_id),
            ));
        }
        Ok(Checked { req, hash, policy })
    }

    fn accuracy(&self) -> Accuracy {
        let a = self.policy.accuracy;
        let nz = |v: u32| (v != 0).then_some(v as i16);
        Accuracy {
            seconds: (a.as_secs() != 0).then_some(a.as_secs()),
            millis: nz(a.subsec_millis()),
            micros: nz(a.subsec_micros() % 1000),
        }
    }

    /// A token over `digest` with the TSA certificate in it, for a CAdES signature time-stamp
    /// (ETSI EN 319 122-1 §5.3): the same checks, policy and record as a request from outside.
    pub async fn token_for_digest(&self, hash: HashAlg, digest: &[u8], requester: &str) -> Result<Token, Refusal> {
        let nonce: [u8; 8] = rand::random();
        self.token_with_nonce(hash, digest, &nonce, requester).await
    }

    /// A token over `digest` carrying `nonce` (its magnitude, big-endian; at most [`MAX_NONCE`]
    /// octets), with the TSA certificate in it: a remote-signing client's (CSC
    /// signatures/timestamp). The same checks, policy and record as a request from outside.
    pub async fn token_with_nonce(
        &self,
        hash: HashAlg,
        digest: &[u8],
        nonce: &[u8],
        requester: &str,
    ) -> Result<Token, Refusal> {
        let req = request(hash.oid(), digest, nonce, true, None).map_err(|e| Refusal::new(Failure::BadRequest, e))?;
        self.issue(self.check(req)?, requester).await
    }

    /// Builds, signs and records the token for a checked request; the record is durable when
    /// this returns.
    async fn issue(&self, Checked { req, hash, policy }: Checked, requester: &str) -> Result<Token, Refusal> {
        self.clock.check().map_err(|e| Refusal::new(Failure::TimeNotAvailable, e))?;
        let signer = self.signer.load_full();
        let at = self.clock.now();
        let since_epoch = at.duration_since(std::time::UNIX_EPOCH).map_err(|e| Refusal::system(&e))?;
        let serial = Serial::time_ordered(at);
        let gen_time = tst::GenTime::new(since_epoch, self.policy.precision);
        let tst = tst::TstInfo {
            version: TspVersion::V1,
            policy,
            message_imprint: MessageImprint {
                hash_algorithm: req.message_imprint.hash_algorithm.clone(),
                hashed_message: req.message_imprint.hashed_message.clone(),
            },
            serial_number: Int::new(serial.as_bytes()).map_err(|e| Refusal::system(&e))?,
            gen_time,
            accuracy: Some(self.accuracy()),
            ordering: false,
            nonce: req.nonce.clone(),
            tsa: self.policy.include_tsa_name.then(|| signer.name.clone()),
            extensions: match self.policy.qualified {
                true => Some(vec![tst::qualified_statement().map_err(|e| Refusal::system(&e))?]),
                false => None,
            },
        };
        let tst_der = tst.to_der().map_err(|e| Refusal::system(&e))?;
        let token = signer.sign_token(&tst_der, req.cert_req).await.map_err(|e| Refusal::system(&e))?;
        let record = TimestampRecord {
            serial: serial.clone(),
            gen_time: gen_time.since_epoch(),
            policy,
            hash_alg: hash,
            imprint: req.message_imprint.hashed_message.as_bytes().to_vec(),
            nonce: req.nonce.as_ref().map(|n| n.as_bytes().to_vec()),
            requester: requester.to_owned(),
            token_der: token.clone(),
            signer: signer.certificate_hash,
        };
        // The reply leaves only once its record (and its log entry) is durable.
        self.writer.record(record).await.map_err(|e| Refusal::system(&e))?;
        Ok(Token { der: token, serial, gen_time })
    }
}

/// The TimeStampResp for a result: granted with its token, or a rejection.
fn outcome(result: Result<(Vec<u8>, Granted), Refusal>) -> Outcome {
    match result {
        Ok((response_der, granted)) => Outcome { response_der, result: Ok(granted) },
        Err(refusal) => Outcome { response_der: rejection(refusal.failure, &refusal.reason), result: Err(refusal) },
    }
}

/// Decodes a DER TimeStampReq (RFC 3161 §2.4.1); badRequest for anything else.
fn parse(request_der: &[u8]) -> Result<TimeStampReq, Refusal> {
    if request_der.is_empty() {
        return Err(Refusal::new(Failure::BadRequest, "empty request"));
    }
    // `from_der` refuses trailing bytes after the request as well as truncation.
    TimeStampReq::from_der(request_der)
        .map_err(|e| Refusal::new(Failure::BadRequest, format!("not a DER TimeStampReq: {e}")))
}

/// A TimeStampReq from its fields, for callers that have no ASN.1 encoder (the gRPC digest
/// form, `trustctl timestamp`). SHA-1 and MD5 are accepted here, so that the TSA's own checks
/// refuse them with badAlg like any other client's request.
pub fn request_from_digest(
    hash_name: &str,
    digest: &[u8],
    nonce: &[u8],
    cert_req: bool,
    policy: &str,
) -> Result<TimeStampReq, String> {
    let oid = match hash_name.to_ascii_lowercase().as_str() {
        "sha1" | "sha-1" => const_oid::db::rfc5912::ID_SHA_1,
        "md5" => const_oid::db::rfc5912::ID_MD_5,
        other => other.parse::<HashAlg>()?.oid(),
    };
    let policy = if policy.is_empty() {
        None
    } else {
        Some(ObjectIdentifier::new(policy).map_err(|e| format!("policy '{policy}': {e}"))?)
    };
    request(oid, digest, nonce, cert_req, policy)
}

fn request(
    oid: ObjectIdentifier,
    digest: &[u8],
    nonce: &[u8],
    cert_req: bool,
    req_policy: Option<ObjectIdentifier>,
) -> Result<TimeStampReq, String> {
    if nonce.len() > MAX_NONCE {
        return Err(format!("nonce of {} bytes; at most {MAX_NONCE}", nonce.len()));
    }
    Ok(TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: spki::AlgorithmIdentifier { oid, parameters: None },
            hashed_message: der::asn1::OctetString::new(digest).map_err(|e| e.to_string())?,
        },
        req_policy,
        nonce: if nonce.is_empty() {
            None
        } else {
            // DER INTEGERs are minimal and signed: drop leading zero bytes (keeping one for a
            // zero nonce), then add one back if the top bit is set so the value stays positive.
            let start = nonce.iter().position(|&b| b != 0).unwrap_or(nonce.len() - 1);
            let mut n = nonce[start..].to_vec();
            if n[0] & 0x80 != 0 {
                n.insert(0, 0);
            }
            Some(Int::new(&n).map_err(|e| e.to_string())?)
        },
        cert_req,
        extensions: None,
    })
}

/// A granted TimeStampResp (RFC 3161 §2.4.2) around the token's DER, which is spliced in rather
/// than decoded and encoded again.
/// Whether a DER TimeStampResp grants a token (status granted or grantedWithMods, RFC 3161
/// §2.4.2, with the token present): a client's first check of an answer.
pub fn is_granted(resp_der: &[u8]) -> bool {
    TimeStampResp::from_der(resp_der).is_ok_and(|r| r.status.status <= 1 && r.time_stamp_token.is_some())
}

fn granted_response(token_der: &[u8]) -> der::Result<Vec<u8>> {
    let status = PkiStatusInfo { status: 0, status_string: None, fail_info: None }.to_der()?;
    let len = der::Length::try_from(status.len() + token_der.len())?;
    let mut out = der::Header::new(Tag::Sequence, len)?.to_der()?;
    out.extend_from_slice(&status);
    out.extend_from_slice(token_der);
    Ok(out)
}

/// A TimeStampResp with status rejection, the failure bit and a human-readable reason.
pub fn rejection(failure: Failure, text: &str) -> Vec<u8> {
    let text = Utf8StringRef::new(text).ok();
    let resp = TimeStampResp {
        status: PkiStatusInfo { status: 2, status_string: text.map(|t| vec![t]), fail_info: failure.bit_string().ok() },
        time_stamp_token: None,
    };
    // A rejection holds only small, valid values; encoding cannot fail short of a bug, and even
    // then the client gets a well-formed (if reasonless) rejection rather than nothing.
    resp.to_der().unwrap_or_else(|_| vec![0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02])
}

#[cfg(test)]
mod tests;
