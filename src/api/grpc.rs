//! gRPC service implementations: decode, call the core, encode. Nothing else.

use super::access::{client, with_audit};
use super::limits::to_completion;
use super::pb;
use crate::ca::{CaError, CaId, CertificateAuthority, IssueRequest};
use crate::digest::HashAlg;
use crate::policy::Level;
use crate::revocation::Reason;
use crate::signing::report::Indication;
use crate::signing::verify::Constraints;
use crate::signing::{Content, DocumentHasher, SignRequest, Signed};
use crate::store::{CertStatus, CertificateRecord, ListQuery};
use crate::tsa::TimeStampAuthority;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// `trust.v1.CertificateAuthority`.
pub struct CaService {
    pub ca: Arc<CertificateAuthority>,
    /// Remote-signing credentials (CSC API), which the operator makes here.
    pub csc: Arc<crate::csc::Csc>,
    /// The access policy: a credential is made only for one of its clients.
    pub access: Arc<crate::access::PolicyInForce>,
}

fn credential_to_pb(c: crate::store::CscCredential) -> pb::Credential {
    pb::Credential {
        id: c.id,
        client: c.client,
        policy: c.policy,
        key: c.key.to_string(),
        certificate_der: c.certificate_der,
        enabled: c.disabled_at.is_none(),
        created: Some(ts(c.created_at)),
    }
}

/// The CA a request names (a generation of the issuing CA, or the root); the issuing CA's
/// newest generation when it names none.
fn ca_named(ca: &CertificateAuthority, name: &str) -> Result<CaId, CaError> {
    if name.is_empty() {
        return Ok(ca.issuing());
    }
    CaId::from_name(name).filter(|id| ca.chain(*id).is_some()).ok_or_else(|| CaError::UnknownCa(name.into()))
}

fn ts(unix: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: unix, nanos: 0 }
}

/// A time since the Unix epoch, with its fraction.
fn ts_since_epoch(t: std::time::Duration) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: i64::try_from(t.as_secs()).unwrap_or(i64::MAX), nanos: t.subsec_nanos() as i32 }
}

fn status_to_pb(s: CertStatus) -> pb::CertificateStatus {
    match s {
        CertStatus::Pending => pb::CertificateStatus::Pending,
        CertStatus::Issued => pb::CertificateStatus::Issued,
        CertStatus::Revoked => pb::CertificateStatus::Revoked,
        CertStatus::Abandoned => pb::CertificateStatus::Abandoned,
    }
}

fn record_to_pb(r: CertificateRecord) -> pb::CertificateRecord {
    pb::CertificateRecord {
        serial: r.serial.to_string(),
        ca: r.ca.name(),
        profile: r.origin.name().into_owned(),
        subject: r.subject,
        sans: r.sans,
        not_before: Some(ts(r.not_before)),
        not_after: Some(ts(r.not_after)),
        requester: r.requester,
        created_at: Some(ts(r.created_at)),
        status: status_to_pb(r.status).into(),
        certificate_der: r.cert_der.unwrap_or_default(),
        revocation_reason: r.revocation.map(|v| v.reason.name().to_owned()).unwrap_or_default(),
        revoked_at: r.revocation.map(|v| ts(v.revoked_at)),
    }
}

/// `work` in a task of its own ([`to_completion`]): what a state-changing RPC started finishes,
/// with its record and log entry, whatever its client or deadline does.
async fn completed<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, Status> {
    to_completion(work).await.ok_or_else(|| Status::internal("internal error"))
}

#[tonic::async_trait]
impl pb::certificate_authority_server::CertificateAuthority for CaService {
    async fn issue_certificate(
        &self,
        request: Request<pb::IssueCertificateRequest>,
    ) -> Result<Response<pb::IssueCertificateResponse>, Status> {
        let client = client(&request)?;
        let r = request.into_inner();
        if r.profile.is_empty() {
            return Err(Status::invalid_argument("profile is required"));
        }
        let scope = client.issue_scope(&r.profile)?;
        let request = IssueRequest {
            profile: r.profile,
            csr: r.csr,
            validity: (r.validity_seconds > 0).then(|| Duration::from_secs(r.validity_seconds)),
            requester: client.name().to_owned(),
            scope,
        };
        let ca = self.ca.clone();
        let issued = completed(async move { ca.issue(request).await }).await??;
        let target = format!("certificate {}", issued.serial);
        let reply = pb::IssueCertificateResponse {
            certificate_der: issued.cert_der,
            serial: issued.serial.to_string(),
            chain_der: self.ca.chain(issued.ca).unwrap_or_default(),
        };
        Ok(with_audit(reply, Some(issued.ca.name()), target))
    }

    async fn get_certificate(
        &self,
        request: Request<pb::GetCertificateRequest>,
    ) -> Result<Response<pb::CertificateRecord>, Status> {
        let rec = self.ca.certificate(&request.into_inner().serial).await?;
        Ok(Response::new(record_to_pb(rec)))
    }

    async fn list_certificates(
        &self,
        request: Request<pb::ListCertificatesRequest>,
    ) -> Result<Response<pb::ListCertificatesResponse>, Status> {
        let r = request.into_inner();
        let status = match pb::CertificateStatus::try_from(r.status) {
            Ok(pb::CertificateStatus::Unspecified) => None,
            Ok(pb::CertificateStatus::Pending) => Some(CertStatus::Pending),
            Ok(pb::CertificateStatus::Issued) => Some(CertStatus::Issued),
            Ok(pb::CertificateStatus::Revoked) => Some(CertStatus::Revoked),
            Ok(pb::CertificateStatus::Abandoned) => Some(CertStatus::Abandoned),
            Err(_) => return Err(Status::invalid_argument(format!("unknown status {}", r.status))),
        };
        let q = ListQuery {
            profile: Some(r.profile).filter(|s| !s.is_empty()),
            subject_contains: Some(r.subject_contains).filter(|s| !s.is_empty()),
            status,
            limit: if r.page_size == 0 { 100 } else { r.page_size.min(1000) },
            page_token: Some(r.page_token).filter(|s| !s.is_empty()),
        };
        let page = self.ca.list(&q).await?;
        Ok(Response::new(pb::ListCertificatesResponse {
            certificates: page.records.into_iter().map(record_to_pb).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn revoke_certificate(
        &self,
        request: Request<pb::RevokeCertificateRequest>,
    ) -> Result<Response<pb::RevokeCertificateResponse>, Status> {
        let client = client(&request)?;
        let r = request.into_inner();
        let reason: Reason =
            if r.reason.is_empty() { Reason::Unspecified } else { r.reason.parse().map_err(CaError::BadReason)? };
        let ca = self.ca.clone();
        let invalidity = r.invalidity_date.map(|t| t.seconds);
        let done =
            completed(
                async move { ca.revoke(&r.serial, reason, invalidity, client.name(), client.revoke_scope()).await },
            )
            .await??;
        let target = format!("certificate {}", done.serial);
        Ok(with_audit(
            pb::RevokeCertificateResponse {
                serial: done.serial.to_string(),
                revoked: done.revocation.is_some(),
                reason: done.revocation.map(|v| v.reason.name().to_owned()).unwrap_or_default(),
                revoked_at: done.revocation.map(|v| ts(v.revoked_at)),
                changed: done.changed,
            },
            None,
            target,
        ))
    }

    async fn get_crl(&self, request: Request<pb::GetCrlRequest>) -> Result<Response<pb::GetCrlResponse>, Status> {
        let crl = self
            .ca
            .crl(ca_named(&self.ca, &request.into_inner().ca)?)
            .ok_or_else(|| Status::unavailable("no CRL published yet"))?;
        Ok(Response::new(pb::GetCrlResponse { crl_der: crl.to_vec() }))
    }

    async fn create_credential(
        &self,
        request: Request<pb::CreateCredentialRequest>,
    ) -> Result<Response<pb::Credential>, Status> {
        let r = request.into_inner();
        if !self.access.current().has_client(&r.client) {
            return Err(Status::invalid_argument(format!("the access policy has no client '{}'", r.client)));
        }
        use crate::policy::AttrKind;
        let subject: Vec<(AttrKind, String)> = [
            (AttrKind::Country, r.country),
            (AttrKind::Organization, r.organization),
            (AttrKind::CommonName, r.common_name),
        ]
        .into_iter()
        .filter(|(kind, value)| *kind == AttrKind::CommonName || !value.is_empty())
        .collect();
        let (csc, client, policy) = (self.csc.clone(), r.client, r.policy);
        let made = completed(async move { csc.create_credential(&client, &policy, &subject).await }).await??;
        let target = format!("credential {}", made.id);
        Ok(with_audit(credential_to_pb(made), None, target))
    }

    async fn list_credentials(
        &self,
        request: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let client = request.into_inner().client;
        let found = self.csc.credentials((!client.is_empty()).then_some(client.as_str())).await?;
        Ok(Response::new(pb::ListCredentialsResponse {
            credentials: found.into_iter().map(credential_to_pb).collect(),
        }))
    }

    async fn disable_credential(
        &self,
        request: Request<pb::DisableCredentialRequest>,
    ) -> Result<Response<pb::Credential>, Status> {
        let id = request.into_inner().id;
        let csc = self.csc.clone();
        let disabled = completed(async move { csc.disable_credential(&id).await }).await??;
        let target = format!("credential {}", disabled.id);
        Ok(with_audit(credential_to_pb(disabled), None, target))
    }

    async fn get_ca_chain(
        &self,
        request: Request<pb::GetCaChainRequest>,
    ) -> Result<Response<pb::GetCaChainResponse>, Status> {
        let chain = self.ca.chain(ca_named(&self.ca, &request.into_inner().ca)?).unwrap_or_default();
        Ok(Response::new(pb::GetCaChainResponse { certificates_der: chain }))
    }
}

/// `trust.v1.TimeStamping`.
pub struct TsaService {
    pub tsa: Arc<TimeStampAuthority>,
}

#[tonic::async_trait]
impl pb::time_stamping_server::TimeStamping for TsaService {
    async fn timestamp(
        &self,
        request: Request<pb::TimestampRequest>,
    ) -> Result<Response<pb::TimestampResponse>, Status> {
        let client = client(&request)?;
        let tsa = self.tsa.clone();
        let outcome = match request.into_inner().request {
            Some(pb::timestamp_request::Request::Der(der)) => {
                completed(async move { tsa.timestamp(&der, client.name()).await }).await?
            }
            Some(pb::timestamp_request::Request::Digest(d)) => {
                let req =
                    crate::tsa::request_from_digest(&d.hash_algorithm, &d.digest, &d.nonce, d.cert_req, &d.policy)
                        .map_err(Status::invalid_argument)?;
                completed(async move { tsa.timestamp_request(req, client.name()).await }).await?
            }
            None => return Err(Status::invalid_argument("give a DER request or a digest")),
        };
        let mut resp = pb::TimestampResponse { response_der: outcome.response_der, ..Default::default() };
        let target = match &outcome.result {
            Ok(granted) => format!("time-stamp {}", granted.serial),
            Err(refusal) => format!("none: {}", refusal.failure.name()),
        };
        match outcome.result {
            Ok(granted) => {
                resp.status = pb::TimestampStatus::Granted.into();
                resp.serial = granted.serial.to_string();
                // genTime with its fraction, as the token states it.
                resp.gen_time = Some(ts_since_epoch(granted.gen_time.since_epoch()));
            }
            Err(refusal) => {
                resp.status = pb::TimestampStatus::Rejected.into();
                resp.failure = refusal.failure.name().into();
                resp.reason = refusal.reason;
            }
        }
        Ok(with_audit(resp, Some("tsa".into()), target))
    }

    async fn get_tsa_chain(
        &self,
        _request: Request<pb::GetTsaChainRequest>,
    ) -> Result<Response<pb::GetTsaChainResponse>, Status> {
        Ok(Response::new(pb::GetTsaChainResponse { certificates_der: self.tsa.chain() }))
    }
}

/// `trust.v1.Signing`.
pub struct SigningService {
    pub signing: Arc<crate::signing::SigningService>,
    /// How long `SignStream` waits for each chunk (`[limits] stream_idle_timeout`).
    pub stream_idle_timeout: Duration,
}

/// Chunks up to this size are hashed on the async worker; larger ones on the blocking pool, so
/// that megabytes of hashing do not stall the other requests of a worker thread.
const INLINE_HASH_BYTES: usize = 64 * 1024;

async fn hash_chunk(mut hasher: DocumentHasher, chunk: Vec<u8>) -> Result<DocumentHasher, Status> {
    if chunk.len() <= INLINE_HASH_BYTES {
        hasher.update(&chunk)?;
        return Ok(hasher);
    }
    let hashed = tokio::task::spawn_blocking(move || hasher.update(&chunk).map(|()| hasher));
    Ok(hashed.await.map_err(|_| Status::internal("internal error"))??)
}

impl SigningService {
    /// Signs in a task of its own ([`completed`]): a signature made is recorded and logged even
    /// when the client's deadline passes first.
    async fn sign_to_completion(
        &self,
        req: SignRequest,
        client: Arc<crate::access::Client>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let policy = req.policy.clone();
        let signing = self.signing.clone();
        let signed = completed(async move { signing.sign(req, client.name()).await }).await??;
        Ok(signed_reply(&policy, signed))
    }
}

fn level_from_pb(l: i32) -> Result<Option<Level>, Status> {
    match pb::SignatureLevel::try_from(l) {
        Ok(pb::SignatureLevel::Unspecified) => Ok(None),
        Ok(pb::SignatureLevel::BB) => Ok(Some(Level::BB)),
        Ok(pb::SignatureLevel::BT) => Ok(Some(Level::BT)),
        Err(_) => Err(Status::invalid_argument(format!("unknown signature level {l}"))),
    }
}

fn level_to_pb(l: Level) -> pb::SignatureLevel {
    match l {
        Level::BB => pb::SignatureLevel::BB,
        Level::BT => pb::SignatureLevel::BT,
    }
}

fn digest_from_pb(d: pb::Digest) -> Result<Content, Status> {
    let alg = d.hash_algorithm.parse::<HashAlg>().map_err(Status::invalid_argument)?;
    Ok(Content::Digest { alg, value: d.value })
}

fn signed_to_pb(s: Signed) -> pb::SignResponse {
    pb::SignResponse {
        signature_der: s.signature_der,
        signature_id: s.signature_id.to_string(),
        level: level_to_pb(s.level).into(),
        digest: Some(pb::Digest { hash_algorithm: s.digest_alg.to_string(), value: s.digest }),
        signing_time: Some(ts(s.signing_time as i64)),
        signer_serial: s.signer_serial.to_string(),
        timestamp_serial: s.timestamp_serial.map(|t| t.to_string()).unwrap_or_default(),
    }
}

/// The reply to a signature under `policy`, with its audit target.
fn signed_reply(policy: &str, signed: Signed) -> Response<pb::SignResponse> {
    let key = format!("signing:{}", crate::signing::policy_name(policy));
    let target = format!("signature {}", signed.signature_id);
    with_audit(signed_to_pb(signed), Some(key), target)
}

fn sign_request(options: Option<pb::SignOptions>, content: Content) -> Result<SignRequest, Status> {
    let o = options.unwrap_or_default();
    Ok(SignRequest { policy: o.policy, level: level_from_pb(o.level)?, detached: o.detached, content })
}

impl SigningService {
    /// Whether `client` may sign under `policy`: a role of the access policy allows it, and the
    /// signing policy's `clients` list names the client.
    fn may_sign(&self, client: &crate::access::Client, policy: &str) -> Result<(), Status> {
        client.may_sign(crate::signing::policy_name(policy))?;
        Ok(self.signing.check_client(policy, client.name())?)
    }
}

#[tonic::async_trait]
impl pb::signing_server::Signing for SigningService {
    async fn sign(&self, request: Request<pb::SignRequest>) -> Result<Response<pb::SignResponse>, Status> {
        let client = client(&request)?;
        let r = request.into_inner();
        let content = match r.content {
            Some(pb::sign_request::Content::Digest(d)) => digest_from_pb(d)?,
            Some(pb::sign_request::Content::Document(doc)) => Content::Document(doc),
            None => return Err(Status::invalid_argument("give a digest or a document")),
        };
        let req = sign_request(r.options, content)?;
        self.may_sign(&client, &req.policy)?;
        self.sign_to_completion(req, client).await
    }

    async fn verify(&self, request: Request<pb::VerifyRequest>) -> Result<Response<pb::VerifyResponse>, Status> {
        let r = request.into_inner();
        let content = match r.content {
            Some(pb::verify_request::Content::Digest(d)) => Some(digest_from_pb(d)?),
            Some(pb::verify_request::Content::Document(doc)) => Some(Content::Document(doc)),
            None => None,
        };
        let constraints = Constraints { commitment: r.require_commitment };
        let report = self.signing.verify(r.signature, content, constraints).await?;
        let indication = match report.indication {
            Indication::TotalPassed => pb::Indication::TotalPassed,
            Indication::TotalFailed => pb::Indication::TotalFailed,
            Indication::Indeterminate => pb::Indication::Indeterminate,
        };
        Ok(Response::new(pb::VerifyResponse {
            indication: indication.into(),
            sub_indication: report.sub_indication.map(|s| s.as_str().to_owned()).unwrap_or_default(),
            reasons: report.reasons,
            signer_subject: report.signer_subject.unwrap_or_default(),
            signer_certificate_der: report.signer_certificate.unwrap_or_default(),
            signing_time: report.signing_time.map(|t| ts(t as i64)),
            timestamp_time: report.timestamp_time.map(|t| ts(t as i64)),
            level: report.level.map_or(pb::SignatureLevel::Unspecified, level_to_pb).into(),
            digest_algorithm: report.digest_algorithm.map(|h| h.to_string()).unwrap_or_default(),
            certificate_chain_der: report.certificate_chain,
            validation_time: Some(ts(report.validation_time as i64)),
        }))
    }

    async fn sign_stream(
        &self,
        request: Request<tonic::Streaming<pb::SignStreamRequest>>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let client = client(&request)?;
        let mut stream = request.into_inner();
        let first = stream.message().await?.ok_or_else(|| Status::invalid_argument("the stream is empty"))?;
        let options = first.options.ok_or_else(|| Status::invalid_argument("the first message must carry options"))?;
        if !options.detached {
            return Err(Status::invalid_argument(
                "a streamed document is signed detached; send a small document in one Sign request for an \
                 enveloping signature",
            ));
        }
        // Refused before the document is read.
        self.may_sign(&client, &options.policy)?;
        let mut hasher = hash_chunk(self.signing.hasher(&options.policy)?, first.chunk).await?;
        loop {
            let next = tokio::time::timeout(self.stream_idle_timeout, stream.message()).await.map_err(|_| {
                Status::deadline_exceeded(format!(
                    "no chunk for {:?}: the stream is abandoned",
                    self.stream_idle_timeout
                ))
            })?;
            let Some(m) = next? else { break };
            if m.options.is_some() {
                return Err(Status::invalid_argument("options belong in the first message only"));
            }
            hasher = hash_chunk(hasher, m.chunk).await?;
        }
        let req = sign_request(Some(options), hasher.finish()?)?;
        self.sign_to_completion(req, client).await
    }
}

/// `trust.v1.TransparencyLog`: the log's read path.
pub struct LogService {
    pub log: Arc<crate::log::TransparencyLog>,
}

fn hashes_to_pb(hashes: Vec<crate::log::Hash>) -> Vec<Vec<u8>> {
    hashes.into_iter().map(|h| h.0.to_vec()).collect()
}

#[tonic::async_trait]
impl pb::transparency_log_server::TransparencyLog for LogService {
    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        if request.into_inner().fresh {
            self.log.publish().await?;
        }
        let c = self.log.current().await;
        Ok(Response::new(pb::GetCheckpointResponse {
            signed_note: c.note.clone(),
            origin: c.checkpoint.origin().to_owned(),
            tree_size: c.checkpoint.size().0,
            root_hash: c.checkpoint.root().0.to_vec(),
            verifier_key: self.log.public_key().vkey(),
        }))
    }

    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        let r = request.into_inner();
        let entries = self.log.entries(r.start, r.end).await?;
        let leaf_hashes = if r.include_leaf_hashes { self.log.leaf_hashes(r.start, r.end).await? } else { vec![] };
        // Read after the page was checked against the latest checkpoint: checkpoints only grow,
        // so the size reported always covers every entry returned.
        let tree_size = self.log.checkpoint().checkpoint.size().0;
        Ok(Response::new(pb::GetEntriesResponse {
            entries: entries.into_iter().map(|(i, entry)| pb::IndexedEntry { index: i.0, entry }).collect(),
            leaf_hashes: hashes_to_pb(leaf_hashes),
            tree_size,
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let r = request.into_inner();
        let proof = self.log.inclusion_proof(r.index, r.tree_size).await?;
        Ok(Response::new(pb::GetInclusionProofResponse { hashes: hashes_to_pb(proof.0) }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let r = request.into_inner();
        let proof = self.log.consistency_proof(r.first, r.second).await?;
        Ok(Response::new(pb::GetConsistencyProofResponse { hashes: hashes_to_pb(proof.0) }))
    }
}

/// `trust.v1.Diagnostics`.
pub struct DiagnosticsService {
    pub diagnostics: Arc<crate::diagnostics::Diagnostics>,
}

fn service_key_from_pb(k: i32) -> Result<crate::diagnostics::ServiceKey, crate::diagnostics::DiagnosticsError> {
    use crate::diagnostics::{DiagnosticsError, ServiceKey};
    Ok(match pb::ServiceKey::try_from(k) {
        Ok(pb::ServiceKey::IssuingCa) => ServiceKey::IssuingCa,
        Ok(pb::ServiceKey::Tsa) => ServiceKey::Tsa,
        Ok(pb::ServiceKey::Ocsp) => ServiceKey::Ocsp,
        Ok(pb::ServiceKey::DocumentSigner) => ServiceKey::DocumentSigner,
        Ok(pb::ServiceKey::Log) => ServiceKey::Log,
        Ok(pb::ServiceKey::Unspecified) | Err(_) => return Err(DiagnosticsError::NoKey),
    })
}

#[tonic::async_trait]
impl pb::diagnostics_server::Diagnostics for DiagnosticsService {
    async fn measure_signing_rate(
        &self,
        request: Request<pb::MeasureSigningRateRequest>,
    ) -> Result<Response<pb::MeasureSigningRateResponse>, Status> {
        let r = request.into_inner();
        let which = service_key_from_pb(r.key)?;
        let duration = Duration::from_millis(r.duration_ms.into());
        let concurrency = (r.concurrency != 0).then(|| usize::try_from(r.concurrency).unwrap_or(usize::MAX));
        let rate = self.diagnostics.measure(which, duration, concurrency).await?;
        let reply = pb::MeasureSigningRateResponse {
            signatures: rate.signatures,
            elapsed_us: u64::try_from(rate.elapsed.as_micros()).unwrap_or(u64::MAX),
            concurrency: u32::try_from(rate.concurrency).unwrap_or(u32::MAX),
            scheme: self.diagnostics.scheme(which).map(|s| s.to_string()).unwrap_or_default(),
        };
        let target = format!("{} signatures over the measurement message", rate.signatures);
        Ok(with_audit(reply, Some(which.role().into()), target))
    }

    async fn measure_store_sync(
        &self,
        _request: Request<pb::MeasureStoreSyncRequest>,
    ) -> Result<Response<pb::MeasureStoreSyncResponse>, Status> {
        let s = self.diagnostics.measure_store_sync().await?;
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Ok(Response::new(pb::MeasureStoreSyncResponse {
            back_to_back_us: us(s.back_to_back),
            after_idle_us: us(s.after_idle),
            write_bytes: crate::diagnostics::SYNC_WRITE_BYTES as u32,
            samples: u32::try_from(s.samples).unwrap_or(u32::MAX),
        }))
    }

    async fn get_process_stats(
        &self,
        _request: Request<pb::GetProcessStatsRequest>,
    ) -> Result<Response<pb::GetProcessStatsResponse>, Status> {
        let s = crate::diagnostics::process_stats();
        Ok(Response::new(pb::GetProcessStatsResponse {
            rss_bytes: s.rss_bytes,
            peak_rss_bytes: s.peak_rss_bytes,
            cpu_time_us: u64::try_from(s.cpu_time.as_micros()).unwrap_or(u64::MAX),
            hsm_sessions: u32::try_from(self.diagnostics.hsm_sessions()).unwrap_or(u32::MAX),
        }))
    }
}
