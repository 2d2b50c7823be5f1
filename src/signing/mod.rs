//! Document signing for the signing portal: CMS SignedData (RFC 5652 §5) in the CAdES baseline
//! form (ETSI EN 319 122-1 §6), signed in the HSM, at level B-B or B-T; and the validation of
//! such signatures ([`verify`]). Knows neither gRPC nor SQL.

mod admission;
pub mod report;
pub mod verify;

use crate::ca_certificates::CaCertificates;
use crate::ca_id::CaId;
use crate::clock::Clock;
use crate::digest::{HashAlg, Hasher};
use crate::keys::{CertifiedKey, KeyError, SigningKey};
use crate::log::Sha256;
use crate::policy::{Format, Level, SigningPolicy};
use crate::records::RecordWriter;
use crate::revocation;
use crate::serial::Serial;
use crate::signed_data::{self, SignerDer};
use crate::store::{SignatureRecord, Store, StoreError};
use crate::tsa::TimeStampAuthority;
use const_oid::db::rfc5911::{ID_DATA, ID_SIGNING_TIME};
use der::asn1::SetOfVec;
use der::{Any, Decode};
use report::ValidationReport;
use sha2::Digest;
use std::collections::BTreeMap;
use std::sync::Arc;
use verify::{RevocationSource, RevocationStatus, Validator, ID_AA_SIGNATURE_TIME_STAMP_TOKEN};
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

/// Errors of the signing service. `api` maps each to a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("unknown signing policy '{name}' (known: {known})")]
    UnknownPolicy { name: String, known: String },
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("document larger than the {limit} bytes policy '{policy}' allows")]
    TooLarge { limit: u64, policy: String },
    /// The policy's `clients` list does not name the requester.
    #[error("signing policy '{policy}' is not for client '{client}'")]
    ClientNotListed { policy: String, client: String },
    #[error("level {level} is not allowed by policy '{policy}' (allowed: {allowed})")]
    LevelNotAllowed { level: Level, policy: String, allowed: String },
    #[error("signature time-stamp refused by the TSA: {}: {}", .0.failure.name(), .0.reason)]
    Timestamp(crate::tsa::Refusal),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} signatures are being verified already; retry shortly")]
    Busy(usize),
    #[error("internal error: {0}")]
    Internal(String),
    /// Start-up only: a policy's key, certificate or CA chain does not fit.
    #[error("{0}")]
    Setup(String),
}

/// The name a request's policy field stands for: `default` when it is empty.
pub fn policy_name(name: &str) -> &str {
    if name.is_empty() {
        DEFAULT_POLICY
    } else {
        name
    }
}

fn internal(e: impl std::fmt::Display) -> SigningError {
    SigningError::Internal(e.to_string())
}

/// What is signed.
#[derive(Clone, Debug)]
pub enum Content {
    /// The document's hash, computed by the caller (or by a [`DocumentHasher`]); detached only.
    Digest { alg: HashAlg, value: Vec<u8> },
    /// The whole document.
    Document(Vec<u8>),
}

/// A request to sign.
#[derive(Clone, Debug)]
pub struct SignRequest {
    /// Signing policy name; empty means `default`.
    pub policy: String,
    /// `None` means the policy's default level.
    pub level: Option<Level>,
    /// Detached (RFC 5652 §5.2: eContent absent) or enveloping.
    pub detached: bool,
    pub content: Content,
}

/// A signature made and recorded.
#[derive(Clone, Debug)]
pub struct Signed {
    /// DER ContentInfo with the SignedData.
    pub signature_der: Vec<u8>,
    pub signature_id: Serial,
    pub level: Level,
    pub digest_alg: HashAlg,
    pub digest: Vec<u8>,
    /// When trustd signed (a CAdES signature's signing-time attribute), Unix seconds.
    pub signing_time: u64,
    pub signer_serial: Serial,
    /// For B-T: the signature time-stamp token's serial.
    pub timestamp_serial: Option<Serial>,
}

/// One signing policy with the key, certificate and attributes it signs with.
struct PolicySigner {
    policy: Arc<SigningPolicy>,
    key: Arc<dyn SigningKey>,
    /// The signer certificate's serial and issuer, for the records.
    serial: Serial,
    issuer: String,
    /// SHA-256 of the signer certificate, DER: the key, as the log names it.
    certificate_hash: Sha256,
    /// `[0] IMPLICIT CertificateSet` (RFC 5652 §5.1), DER: the signer certificate and the CA
    /// certificates below the root, put in every signature so that a verifier needs only the
    /// root.
    certificates_der: Vec<u8>,
    /// The signer certificate, its CA's and the root's, DER: what a remote-signing client is
    /// given (CSC credentials/info).
    chain: Vec<Vec<u8>>,
    /// The SignerInfo's constant parts, with the signing-certificate-v2 attribute.
    signer_der: SignerDer,
}

impl PolicySigner {
    fn new(
        policy: Arc<SigningPolicy>,
        certified: CertifiedKey,
        cas: &CaCertificates,
        tsa: &TimeStampAuthority,
    ) -> Result<Self, SigningError> {
        let ctx = |m: String| SigningError::Setup(format!("signing policy '{}': {m}", policy.name));
        let signer_der = SignerDer::for_key(&certified).map_err(ctx)?;
        let CertifiedKey { key, cert, der } = certified;
        let Some(issuing) = cas.issuer_of(&cert).filter(|ca| ca.ca != CaId::Root) else {
            return Err(ctx("the certificate of its key is not issued by trustd's issuing CA".into()));
        };
        // Everything but the root goes into each signature: relying parties bring their own
        // trust anchor.
        let certs = vec![cert.clone(), issuing.cert.clone()];
        let chain = vec![der.clone(), issuing.der.clone(), cas.root().der.clone()];
        let certificates_der = signed_data::certificates_der(certs).map_err(|e| SigningError::Setup(e.to_string()))?;
        let digest = key.scheme().hash();
        if policy.levels.contains(&Level::BT) && !tsa.accepts(digest) {
            // Otherwise every B-T request would be signed in the HSM and only then refused.
            return Err(ctx(format!("B-T needs the TSA policy to accept {digest} imprints")));
        }
        Ok(PolicySigner {
            serial: Serial::from_bytes(cert.tbs_certificate.serial_number.as_bytes())
                .ok_or_else(|| ctx("the signer certificate's serial is zero or longer than 20 octets".into()))?,
            issuer: cert.tbs_certificate.issuer.to_string(),
            certificate_hash: sha2::Sha256::digest(&der).into(),
            policy,
            key,
            certificates_der,
            chain,
            signer_der,
        })
    }

    /// The digest algorithm of the policy's signatures: its key's (the signature scheme's).
    fn digest(&self) -> HashAlg {
        self.signer_der.hash()
    }
}

/// The signing service: one [`PolicySigner`] per policy, the TSA for B-T, the record writer,
/// and the validator for `Verify`.
pub struct SigningService {
    /// Each replaced whole when its key rolls over: a signature is made with one throughout.
    policies: BTreeMap<String, arc_swap::ArcSwap<PolicySigner>>,
    /// The issuing CA's generations, which certify the policies' keys.
    cas: CaCertificates,
    tsa: Arc<TimeStampAuthority>,
    writer: RecordWriter<SignatureRecord>,
    /// Made again when the issuing CA rolls over: its generations complete chains.
    validator: arc_swap::ArcSwap<IssuingValidator>,
    anchors: Vec<Certificate>,
    revocation: Arc<StoreRevocation>,
    verifying: admission::Admission,
    clock: Arc<dyn Clock>,
}

/// What `Verify` checks a signature against.
pub struct Validation {
    /// Trust anchors besides trustd's own root.
    pub extra_anchors: Vec<Certificate>,
    /// Where the revocation status of trustd's certificates is.
    pub store: Arc<dyn Store>,
}

/// The validator, with the issuing CA's generations it knows as intermediates.
struct IssuingValidator {
    generations: usize,
    validator: Arc<Validator>,
}

/// The policy a request names when it names none.
pub const DEFAULT_POLICY: &str = "default";

impl SigningService {
    /// The service signing under each policy with its key (`policies`: each policy with the
    /// key it names, or the ceremony's document-signing key), whose certificate a generation of
    /// the issuing CA in `cas` issued. Must run inside the tokio runtime (revocation lookups use
    /// its handle).
    pub fn new(
        policies: Vec<(Arc<SigningPolicy>, CertifiedKey)>,
        cas: CaCertificates,
        tsa: Arc<TimeStampAuthority>,
        writer: RecordWriter<SignatureRecord>,
        validation: Validation,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SigningError> {
        let setup = |e: &dyn std::fmt::Display| SigningError::Setup(e.to_string());
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| setup(&e))?;
        let revocation = Arc::new(StoreRevocation { store: validation.store, runtime, cas: cas.clone() });
        let mut anchors = vec![cas.root().cert.clone()];
        anchors.extend(validation.extra_anchors);
        let validator = validator(&anchors, &revocation, &cas).map_err(|e| setup(&e))?;
        let mut loaded = BTreeMap::new();
        for (policy, certified) in policies {
            let signer = PolicySigner::new(policy.clone(), certified, &cas, &tsa)?;
            tracing::info!(policy = %policy.name, scheme = %signer.key.scheme(), "signing policy loaded");
            loaded.insert(policy.name.clone(), arc_swap::ArcSwap::from_pointee(signer));
        }
        let verifying = admission::Admission::for_cores();
        Ok(SigningService {
            policies: loaded,
            cas,
            tsa,
            writer,
            validator: arc_swap::ArcSwap::from_pointee(validator),
            anchors,
            revocation,
            verifying,
            clock,
        })
    }

    /// The validator, made again first where the issuing CA rolled over since.
    fn validator(&self) -> Result<Arc<Validator>, SigningError> {
        let current = self.validator.load();
        if current.generations == self.cas.issuing().len() {
            return Ok(current.validator.clone());
        }
        let made = validator(&self.anchors, &self.revocation, &self.cas).map_err(internal)?;
        let validator = made.validator.clone();
        self.validator.store(Arc::new(made));
        Ok(validator)
    }

    /// Every signing policy.
    pub fn policies(&self) -> impl Iterator<Item = Arc<SigningPolicy>> + '_ {
        self.policies.values().map(|p| p.load().policy.clone())
    }

    /// Signs under policy `name` from now on with `key` (a rolled-over key and its
    /// certificate, in the policy's signature scheme); signatures being made finish with the
    /// key they started with.
    pub fn rotate(&self, name: &str, key: CertifiedKey) -> Result<(), SigningError> {
        let slot = self.slot(name)?;
        let policy = slot.load().policy.clone();
        slot.store(Arc::new(PolicySigner::new(policy, key, &self.cas, &self.tsa)?));
        Ok(())
    }

    fn slot(&self, name: &str) -> Result<&arc_swap::ArcSwap<PolicySigner>, SigningError> {
        let name = policy_name(name);
        self.policies.get(name).ok_or_else(|| SigningError::UnknownPolicy {
            name: name.to_owned(),
            known: self.policies.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    fn policy(&self, name: &str) -> Result<Arc<PolicySigner>, SigningError> {
        self.slot(name).map(|p| p.load_full())
    }

    /// Whether policy `name` (empty: `default`) is for `client`: its `clients` list names the
    /// client or is `*`.
    pub fn check_client(&self, name: &str, client: &str) -> Result<(), SigningError> {
        let policy = &self.policy(name)?.policy;
        if policy.clients.iter().any(|c| c == "*" || c == client) {
            Ok(())
        } else {
            Err(SigningError::ClientNotListed { policy: policy.name.clone(), client: client.to_owned() })
        }
    }

    /// The largest document any policy accepts in one request, for the transport's limit.
    pub fn max_document_bytes(&self) -> u64 {
        self.policies.values().map(|p| p.load().policy.max_document_bytes).max().unwrap_or(0)
    }

    /// A hasher for a document streamed under policy `name` (empty: `default`), with the
    /// policy's digest algorithm and size limit.
    pub fn hasher(&self, name: &str) -> Result<DocumentHasher, SigningError> {
        let ps = self.policy(name)?;
        Ok(DocumentHasher {
            alg: ps.digest(),
            hasher: ps.digest().hasher(),
            len: 0,
            limit: ps.policy.max_stream_bytes,
            policy: ps.policy.name.clone(),
        })
    }

    /// Signs under the request's policy, time-stamps the signature for B-T, and records it;
    /// the record is durable when this returns. Nothing is recorded for a refused request.
    pub async fn sign(&self, req: SignRequest, requester: &str) -> Result<Signed, SigningError> {
        self.check_client(&req.policy, requester)?;
        let ps = self.policy(&req.policy)?;
        let policy = &ps.policy;
        let level = req.level.unwrap_or(policy.level);
        if !policy.levels.contains(&level) {
            let allowed = policy.levels.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            return Err(SigningError::LevelNotAllowed { level, policy: policy.name.clone(), allowed });
        }
        if policy.format == Format::Pades && !req.detached {
            return Err(SigningError::BadRequest(format!(
                "policy '{}' makes PAdES signatures, which are detached: the PDF holds the signature",
                policy.name
            )));
        }
        let (digest, document) = match req.content {
            Content::Digest { alg, value } => {
                if !req.detached {
                    return Err(SigningError::BadRequest(
                        "a digest can only be signed detached; send the document for an enveloping signature".into(),
                    ));
                }
                if alg != ps.digest() {
                    return Err(SigningError::BadRequest(format!(
                        "policy '{}' signs {} digests, not {alg}",
                        policy.name,
                        ps.digest()
                    )));
                }
                if value.len() != alg.output_len() {
                    return Err(SigningError::BadRequest(format!(
                        "a {alg} digest is {} bytes, got {}",
                        alg.output_len(),
                        value.len()
                    )));
                }
                (value, None)
            }
            Content::Document(doc) => {
                if doc.is_empty() {
                    return Err(SigningError::BadRequest("the document is empty".into()));
                }
                if doc.len() as u64 > policy.max_document_bytes {
                    return Err(SigningError::TooLarge {
                        limit: policy.max_document_bytes,
                        policy: policy.name.clone(),
                    });
                }
                (ps.digest().digest(&doc), (!req.detached).then_some(doc))
            }
        };

        let signing_time = self.clock.unix_secs();
        // RFC 5652 §5.4: content-type, message-digest, signing-certificate-v2 and (CAdES only,
        // EN 319 142-1 §5.3 forbids it in PAdES) signing-time over a digest of id-data content.
        // An enveloping signature gets its eContent when the SignedData is assembled, which
        // changes nothing that is signed.
        let signing_time_attr = match policy.format {
            Format::Cades => Some(signing_time_attribute(signing_time)?),
            Format::Pades => None,
        };
        let signed_attrs =
            ps.signer_der.signed_attributes(ID_DATA, &digest, signing_time_attr.as_slice()).map_err(internal)?;
        let signature = ps.key.sign(&signed_attrs).await?;
        let signature_hash: Sha256 = sha2::Sha256::digest(signature.as_bytes()).into();

        let mut unsigned_attrs = Vec::new();
        let timestamp_serial = if level == Level::BT {
            // ETSI EN 319 122-1 §5.3: the time-stamp's imprint is the hash of the signature
            // value's octets.
            let imprint = ps.digest().digest(signature.as_bytes());
            let token =
                self.tsa.token_for_digest(ps.digest(), &imprint, requester).await.map_err(SigningError::Timestamp)?;
            let attr = Attribute {
                oid: ID_AA_SIGNATURE_TIME_STAMP_TOKEN,
                values: SetOfVec::try_from(vec![Any::from_der(&token.der).map_err(internal)?]).map_err(internal)?,
            };
            unsigned_attrs.push(attr);
            Some(token.serial)
        } else {
            None
        };

        let signature_der = ps
            .signer_der
            .content_info(
                ID_DATA,
                document.as_deref(),
                &ps.certificates_der,
                &signed_attrs,
                signature.as_bytes(),
                &unsigned_attrs,
            )
            .map_err(internal)?;

        // Time-ordered like time-stamp serials: the ID is a UNIQUE key written at a high rate.
        let signature_id = Serial::time_ordered(self.clock.now());
        let record = SignatureRecord {
            signature_id: signature_id.clone(),
            signed_at: signing_time as i64,
            policy: policy.name.clone(),
            level,
            detached: req.detached,
            digest_alg: ps.digest(),
            digest: digest.clone(),
            signer_serial: ps.serial.clone(),
            signer_issuer: ps.issuer.clone(),
            signature_hash,
            timestamp_serial: timestamp_serial.clone(),
            requester: requester.to_owned(),
            signer: ps.certificate_hash,
        };
        // The signature leaves only once its record (and its log entry) is durable.
        self.writer.record(record).await?;
        Ok(Signed {
            signature_der,
            signature_id,
            level,
            digest_alg: ps.digest(),
            digest,
            signing_time,
            signer_serial: ps.serial.clone(),
            timestamp_serial,
        })
    }
}

/// A signing policy's key as a remote-signing client sees it (CSC credentials/info).
pub struct KeyDescription {
    pub scheme: crate::keys::SignatureScheme,
    pub public_key: spki::SubjectPublicKeyInfoOwned,
    /// The signer certificate, its CA's and the root's, DER.
    pub chain: Vec<Vec<u8>>,
}

/// A remote-signing credential's signer (CSC API): a key of its own and its certificate, under
/// a signing policy, recorded like the policy's own signatures.
#[derive(Clone)]
pub struct CredentialSigner(Arc<PolicySigner>);

impl CredentialSigner {
    /// Its key, as a remote-signing client sees it.
    pub fn describe(&self) -> KeyDescription {
        describe(&self.0)
    }
}

fn describe(ps: &PolicySigner) -> KeyDescription {
    KeyDescription { scheme: ps.key.scheme(), public_key: ps.key.public_key().clone(), chain: ps.chain.clone() }
}

impl SigningService {
    /// The signature scheme of every policy's key, each once.
    pub fn schemes(&self) -> Vec<crate::keys::SignatureScheme> {
        let mut schemes: Vec<_> = self.policies.values().map(|p| p.load().key.scheme()).collect();
        schemes.sort_by_key(|s| format!("{s:?}"));
        schemes.dedup();
        schemes
    }

    /// The key policy `name` signs with, for `client` (whom the policy must list).
    pub fn key_of(&self, name: &str, client: &str) -> Result<KeyDescription, SigningError> {
        self.check_client(name, client)?;
        Ok(describe(&*self.policy(name)?))
    }

    /// A signer for `certified` (a credential's key and its certificate from trustd's CA) under
    /// policy `name`.
    pub fn credential_signer(&self, name: &str, certified: CertifiedKey) -> Result<CredentialSigner, SigningError> {
        let policy = self.policy(name)?.policy.clone();
        Ok(CredentialSigner(Arc::new(PolicySigner::new(policy, certified, &self.cas, &self.tsa)?)))
    }

    /// Signs each of `digests`, `alg` hashes that a remote-signing client computed (CSC
    /// signatures/signHash: the hash of the signed attributes of the CMS it builds), with policy
    /// `name`'s key for `requester`: the raw signature values, in order. Each is recorded (and
    /// logged) before any is returned, as a detached B-B signature over its digest; the client
    /// adds its own time-stamp.
    pub async fn sign_digests(
        &self,
        name: &str,
        requester: &str,
        alg: HashAlg,
        digests: &[Vec<u8>],
    ) -> Result<Vec<crate::keys::Signature>, SigningError> {
        self.check_client(name, requester)?;
        self.sign_digests_with(self.policy(name)?, requester, alg, digests).await
    }

    /// [`SigningService::sign_digests`] with a credential's key.
    pub async fn sign_digests_as(
        &self,
        signer: &CredentialSigner,
        requester: &str,
        alg: HashAlg,
        digests: &[Vec<u8>],
    ) -> Result<Vec<crate::keys::Signature>, SigningError> {
        self.sign_digests_with(signer.0.clone(), requester, alg, digests).await
    }

    async fn sign_digests_with(
        &self,
        ps: Arc<PolicySigner>,
        requester: &str,
        alg: HashAlg,
        digests: &[Vec<u8>],
    ) -> Result<Vec<crate::keys::Signature>, SigningError> {
        if alg != ps.digest() {
            return Err(SigningError::BadRequest(format!(
                "the key of policy '{}' signs {} hashes, not {alg}",
                ps.policy.name,
                ps.digest()
            )));
        }
        if let Some(d) = digests.iter().find(|d| d.len() != alg.output_len()) {
            return Err(SigningError::BadRequest(format!(
                "a {alg} hash is {} bytes, got {}",
                alg.output_len(),
                d.len()
            )));
        }
        let sign = |digest: &Vec<u8>| {
            let ps = ps.clone();
            let digest = digest.clone();
            async move {
                let signature = ps.key.sign_digest(&digest).await?;
                let record = SignatureRecord {
                    signature_id: Serial::time_ordered(self.clock.now()),
                    signed_at: self.clock.unix_secs() as i64,
                    policy: ps.policy.name.clone(),
                    level: Level::BB,
                    detached: true,
                    digest_alg: alg,
                    digest,
                    signer_serial: ps.serial.clone(),
                    signer_issuer: ps.issuer.clone(),
                    signature_hash: sha2::Sha256::digest(signature.as_bytes()).into(),
                    timestamp_serial: None,
                    requester: requester.to_owned(),
                    signer: ps.certificate_hash,
                };
                Ok::<_, SigningError>((signature, record))
            }
        };
        let signed = futures_util::future::try_join_all(digests.iter().map(sign)).await?;
        // Nothing leaves before every record (and log entry) is durable.
        futures_util::future::try_join_all(signed.iter().map(|(_, record)| self.writer.record(record.clone()))).await?;
        Ok(signed.into_iter().map(|(signature, _)| signature).collect())
    }

    /// Validates a signature (DER, or PEM labelled CMS or PKCS7) over `content` (`None` for an
    /// enveloping signature) and reports as ETSI EN 319 102-1 §5.3 does. Never fails for a bad
    /// signature: that is a TOTAL_FAILED or INDETERMINATE report. [`SigningError::Busy`] when
    /// too many validations are in the daemon already.
    pub async fn verify(
        &self,
        signature: Vec<u8>,
        content: Option<Content>,
        constraints: verify::Constraints,
    ) -> Result<ValidationReport, SigningError> {
        let ticket = self.verifying.enter().await.map_err(SigningError::Busy)?;
        let (validator, now) = (self.validator()?, self.clock.unix_secs());
        // Chain building and RSA verification are CPU work, and revocation lookups block.
        tokio::task::spawn_blocking(move || {
            let _ticket = ticket;
            let der = match der::pem::decode_vec(&signature) {
                Ok((label, der)) if label == "CMS" || label == "PKCS7" => der,
                _ => signature,
            };
            let content = match &content {
                None => verify::Content::Enveloped,
                Some(Content::Document(d)) => verify::Content::Document(d),
                Some(Content::Digest { alg, value }) => verify::Content::Digest { alg: *alg, value },
            };
            validator.validate_under(&der, content, constraints, now)
        })
        .await
        .map_err(internal)
    }
}

/// A validator trusting `anchors`, with every generation of the issuing CA in `cas` to complete
/// chains (signatures that carry only the signer's certificate).
fn validator(
    anchors: &[Certificate],
    revocation: &Arc<StoreRevocation>,
    cas: &CaCertificates,
) -> der::Result<IssuingValidator> {
    let issuing: Vec<Certificate> = cas.issuing().iter().map(|c| c.cert.clone()).collect();
    let generations = issuing.len();
    let validator = Validator::new(anchors.to_vec(), revocation.clone())?.with_intermediates(issuing)?;
    Ok(IssuingValidator { generations, validator: Arc::new(validator) })
}

/// Revocation status of trustd's own certificates, from the store that CRLs and OCSP answer
/// from, so that `Verify` agrees with them.
struct StoreRevocation {
    store: Arc<dyn Store>,
    runtime: tokio::runtime::Handle,
    /// Which of trustd's CAs (which generation of the issuing CA) issued a certificate.
    cas: CaCertificates,
}

impl RevocationSource for StoreRevocation {
    fn status(&self, cert: &Certificate, issuer: &Certificate) -> RevocationStatus {
        let Some(ca) = self.cas.issuer_of(cert).filter(|ca| ca.is(issuer)) else {
            return RevocationStatus::Unknown;
        };
        if ca.ca == CaId::Root {
            // The root CRL lists nothing: no API revokes an issuing CA.
            return RevocationStatus::Good;
        }
        let Some(serial) = Serial::from_bytes(cert.tbs_certificate.serial_number.as_bytes()) else {
            return RevocationStatus::Unknown;
        };
        // Called on the blocking pool (see `verify`), where waiting on the runtime is allowed.
        let status = revocation::status_of(self.store.as_ref(), ca.ca, &serial);
        match self.runtime.block_on(status) {
            Ok(revocation::Status::Good) => RevocationStatus::Good,
            Ok(revocation::Status::Revoked(r)) => RevocationStatus::Revoked {
                at: r.invalidity_date.unwrap_or(r.revoked_at).max(0) as u64,
                reason: r.reason,
            },
            Ok(revocation::Status::Unknown) => RevocationStatus::Unknown,
            Err(e) => {
                tracing::error!(error = %e, "revocation status lookup failed");
                RevocationStatus::Unknown
            }
        }
    }
}

/// RFC 5652 §11.3 signing-time: UTCTime through 2049, GeneralizedTime after.
fn signing_time_attribute(unix_secs: u64) -> Result<Attribute, SigningError> {
    let time = crate::unix_time::x509_time(unix_secs).map_err(internal)?;
    Ok(Attribute {
        oid: ID_SIGNING_TIME,
        values: SetOfVec::try_from(vec![Any::encode_from(&time).map_err(internal)?]).map_err(internal)?,
    })
}

/// Hashes a streamed document as it arrives, refusing it once it passes the policy's limit.
pub struct DocumentHasher {
    alg: HashAlg,
    hasher: Hasher,
    len: u64,
    limit: u64,
    policy: String,
}

impl DocumentHasher {
    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), SigningError> {
        self.len += chunk.len() as u64;
        if self.len > self.limit {
            return Err(SigningError::TooLarge { limit: self.limit, policy: self.policy.clone() });
        }
        self.hasher.update(chunk);
        Ok(())
    }

    /// The digest of the whole document, ready to sign detached.
    pub fn finish(self) -> Result<Content, SigningError> {
        if self.len == 0 {
            return Err(SigningError::BadRequest("the document stream is empty".into()));
        }
        Ok(Content::Digest { alg: self.alg, value: self.hasher.finalize() })
    }
}
