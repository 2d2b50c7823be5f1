//! The certificate authority: CSR checks, certificate building and issuance (RFC 5280,
//! RFC 2986), revocation and CRLs. Signs through [`crate::keys`]; knows neither gRPC, SQL nor
//! PKCS#11.

pub mod cert;
pub mod crl;
pub mod csr;
pub mod request;
pub mod revocation;

use crate::clock::Clock;
use crate::keys::{CertifiedKey, KeyError, SigningKey};
use crate::log::{CertificateIssued, LogEntry, LogError, LoggedRecord, NewEntry, Sequencer};
use crate::policy::Policies;
use crate::serial::Serial;
use crate::store::{CertStatus, CertificateRecord, ListQuery, NewCertificate, Page, Revocation, Store, StoreError};
use cert::{CertSpec, Issuer, UrlContext};
use const_oid::db::rfc5280;
use der::{Decode, Encode};
use revocation::{Change, Reason};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::Certificate;

/// Profile name prefix of the key ceremony's service certificates in the store
/// (`ceremony:tsa`, `ceremony:ocsp`, …): they were not issued from a profile.
const CEREMONY_PROFILE_PREFIX: &str = "ceremony:";

/// Errors of the CA. `api` maps each to a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("invalid CSR: {0}")]
    BadCsr(String),
    #[error("CSR signature does not verify (no proof of possession): {0}")]
    CsrSignature(String),
    #[error("key not allowed: {0}")]
    KeyNotAllowed(String),
    #[error("unknown profile '{name}' (known: {known})")]
    UnknownProfile { name: String, known: String },
    #[error("subject not allowed: {0}")]
    SubjectNotAllowed(String),
    #[error("subject alternative name not allowed: {0}")]
    SanNotAllowed(String),
    #[error("requested validity {}s exceeds the maximum {}s of profile '{profile}'", requested.as_secs(), max.as_secs())]
    ValidityTooLong { requested: Duration, max: Duration, profile: String },
    #[error("invalid serial: {0}")]
    BadSerial(String),
    #[error("invalid revocation reason: {0}")]
    BadReason(String),
    #[error("cannot change revocation: {0}")]
    NotRevocable(String),
    #[error("unknown CA '{0}'")]
    UnknownCa(String),
    #[error("key ceremony: {0}")]
    Ceremony(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("issued-certificate log: {0}")]
    Log(#[from] LogError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Sequences `entry` in a task of its own: a caller that goes away (a cancelled RPC drops its
/// handler's future) must not leave a stored certificate or revocation unlogged until the next
/// start.
async fn append_detached(log: &Sequencer, entry: NewEntry) -> Result<crate::log::LeafIndex, LogError> {
    let log = log.clone();
    tokio::spawn(async move { log.append(entry).await })
        .await
        .map_err(|e| LogError::Store(format!("log append task: {e}")))?
}

/// The log entry of a revocation event: the serial as the DER INTEGER's content octets
/// (RFC 5280 §4.1.2.2), the CA's name, when, and the CRLReason code.
fn revocation_entry(serial: &Serial, ca: &str, at: i64, reason: u8) -> Result<Vec<u8>, CaError> {
    let serial = serial.to_x509().map_err(|e| CaError::Internal(format!("serial {serial}: {e}")))?;
    Ok(LogEntry::Revocation(crate::log::Revocation {
        serial: serial.as_bytes().to_vec(),
        issuer: ca.to_owned(),
        revoked_at: u64::try_from(at).unwrap_or(0),
        reason,
    })
    .encode()?)
}

/// The subjectKeyIdentifier of a CA certificate (the AKI of what it issues).
pub fn subject_key_id(c: &Certificate) -> Result<Vec<u8>, CaError> {
    c.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
        .and_then(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
        .map(|s| s.0.as_bytes().to_vec())
        .ok_or_else(|| CaError::Ceremony("CA certificate has no subjectKeyIdentifier".into()))
}

/// A request to issue a certificate.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    pub profile: String,
    /// PEM or DER PKCS#10.
    pub csr: Vec<u8>,
    /// `None` for the profile's default.
    pub validity: Option<Duration>,
    /// Who asked, as authenticated by the API.
    pub requester: String,
}

/// An issued certificate.
#[derive(Clone, Debug)]
pub struct Issued {
    pub serial: Serial,
    pub cert_der: Vec<u8>,
}

/// How often CRLs are made and how long each is valid (RFC 5280 §5.1.2.5 nextUpdate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrlSchedule {
    /// nextUpdate − thisUpdate.
    pub validity: Duration,
    /// A new CRL at least this often, and shortly after every revocation.
    pub refresh: Duration,
}

/// The result of a revocation request.
#[derive(Clone, Debug)]
pub struct Revoked {
    pub serial: Serial,
    /// The state now (`None`: good, after a hold was released).
    pub revocation: Option<Revocation>,
    /// False when the request changed nothing (the same revocation again).
    pub changed: bool,
}

/// A CA that publishes a CRL: its name in URLs, its subject and key, and its current CRL (DER).
struct CrlIssuer {
    ca: String,
    subject: x509_cert::name::Name,
    key_id: Vec<u8>,
    key: Arc<dyn SigningKey>,
    current: RwLock<Option<Arc<Vec<u8>>>>,
}

/// The issuing CA: its key in the HSM, its chain, the profiles and the store.
pub struct CertificateAuthority {
    name: String,
    issuer_cert: Certificate,
    issuer_key_id: Vec<u8>,
    chain: Vec<Vec<u8>>,
    key: Arc<dyn SigningKey>,
    policies: Arc<Policies>,
    store: Arc<dyn Store>,
    urls: UrlContext,
    crl_schedule: CrlSchedule,
    /// This CA's CRL issuer first, then the root's (the issuing CA certificate's CRL
    /// distribution point). Publishing is serialised so a newer CRL is never replaced by an
    /// older one.
    crl_issuers: Vec<CrlIssuer>,
    crl_publish: tokio::sync::Mutex<()>,
    crl_dirty: tokio::sync::Notify,
    /// The issued-certificate log; `None` only with `[log] enabled = false`.
    log: Option<Sequencer>,
    clock: Arc<dyn Clock>,
}

/// A certificate the key ceremony issued to one of trustd's own services.
pub struct ServiceCertificate {
    /// `tsa`, `document-signer` or `ocsp`.
    pub role: &'static str,
    pub cert: Certificate,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

/// The issuing CA's name in URLs (`/crl/issuing.crl`) and in the API.
pub const ISSUING_CA_NAME: &str = "issuing";

impl CertificateAuthority {
    /// The issuing CA with its key and certificate, and the root's (for the root's CRL).
    pub fn new(
        issuing: CertifiedKey,
        root: CertifiedKey,
        policies: Arc<Policies>,
        store: Arc<dyn Store>,
        public_url: &str,
        crl_schedule: CrlSchedule,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CaError> {
        let (issuer_cert, issuing_der, key) = (issuing.cert, issuing.der, issuing.key);
        let (root_cert, root_der) = (root.cert, root.der);
        let crl_issuers = vec![
            CrlIssuer {
                ca: ISSUING_CA_NAME.into(),
                subject: issuer_cert.tbs_certificate.subject.clone(),
                key_id: subject_key_id(&issuer_cert)?,
                key: key.clone(),
                current: RwLock::new(None),
            },
            // Nothing revokes CA certificates through the API yet, so the root's CRL is empty;
            // it exists because relying parties that check the whole chain fetch it.
            CrlIssuer {
                ca: "root".into(),
                key_id: subject_key_id(&root_cert)?,
                subject: root_cert.tbs_certificate.subject,
                key: root.key,
                current: RwLock::new(None),
            },
        ];
        Ok(CertificateAuthority {
            name: ISSUING_CA_NAME.into(),
            issuer_key_id: subject_key_id(&issuer_cert)?,
            issuer_cert,
            chain: vec![issuing_der, root_der],
            key,
            policies,
            store,
            urls: UrlContext { base: public_url.to_owned(), ca: ISSUING_CA_NAME.into() },
            crl_schedule,
            crl_issuers,
            crl_publish: tokio::sync::Mutex::new(()),
            crl_dirty: tokio::sync::Notify::new(),
            log: None,
            clock,
        })
    }

    /// Logs every issuance and revocation from now on in `log`: [`CertificateAuthority::issue`]
    /// and [`CertificateAuthority::revoke`] return only once the entry is sequenced.
    pub fn with_log(mut self, log: Sequencer) -> Self {
        self.log = Some(log);
        self
    }

    /// The CA chain, DER: the issuing CA first, the root last. `ca` empty or the CA's name.
    pub fn chain(&self, ca: &str) -> Result<&[Vec<u8>], CaError> {
        if !ca.is_empty() && ca != self.name {
            return Err(CaError::UnknownCa(ca.to_owned()));
        }
        Ok(&self.chain)
    }

    /// A CA certificate by name, DER: `issuing` (this CA) or `root`.
    pub fn ca_certificate(&self, name: &str) -> Option<&[u8]> {
        match name {
            n if n == self.name => self.chain.first(),
            "root" => self.chain.last(),
            _ => None,
        }
        .map(Vec::as_slice)
    }

    /// Issues a certificate. The to-be-signed certificate is recorded before the HSM signs,
    /// and the certificate is stored before it is returned: nothing signed goes unrecorded.
    pub async fn issue(&self, req: IssueRequest) -> Result<Issued, CaError> {
        let profile = self.policies.profile(&req.profile).ok_or_else(|| CaError::UnknownProfile {
            name: req.profile.clone(),
            known: self.policies.profile_names().collect::<Vec<_>>().join(", "),
        })?;
        let csr = csr::parse(&req.csr)?;
        let valid = request::validate(&csr, profile, req.validity)?;
        let subject = cert::build_name(&valid.subject)?;
        let extensions = cert::end_entity_extensions(
            profile,
            &valid.sans,
            valid.subject.is_empty(),
            &csr.public_key,
            &self.issuer_key_id,
            &self.urls,
        )?;
        let now = self.clock.unix_secs();
        let not_before = now.saturating_sub(profile.backdate.as_secs());
        let not_after = not_before + profile.backdate.as_secs() + valid.validity.as_secs();
        // RFC 5280 §6.1.3 (a)(2): a certificate outliving its issuer fails path validation later.
        let issuer_end = self.issuer_cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs();
        if not_after > issuer_end {
            return Err(CaError::ValidityTooLong {
                requested: valid.validity,
                max: Duration::from_secs(issuer_end.saturating_sub(now)),
                profile: profile.name.clone(),
            });
        }
        let issuer =
            Issuer { name: &self.issuer_cert.tbs_certificate.subject, key_id: &self.issuer_key_id, signer: &*self.key };

        // A clash of 128-bit random serials is practically impossible; the store's unique
        // constraint makes it impossible outright, and we draw again if it ever happens.
        let mut attempt = 0;
        let (serial, tbs_der) = loop {
            let serial = Serial::random();
            let spec = CertSpec {
                serial: serial.clone(),
                subject: subject.clone(),
                public_key: csr.public_key.clone(),
                not_before,
                not_after,
                extensions: extensions.clone(),
            };
            let tbs = cert::tbs(spec, &issuer)?;
            let tbs_der = tbs.to_der().map_err(|e| CaError::Internal(e.to_string()))?;
            // The certificate must fit a log entry (uint16-length bundles, C2SP tlog-tiles):
            // refuse it now, before it is recorded and signed, not after. The signature and
            // its algorithm add at most ~600 bytes (RSA-4096); the entry's fields ~300 more.
            let entry_len = tbs_der.len() + 1024 + profile.name.len() + req.requester.len() + self.name.len();
            if entry_len > crate::log::entry::MAX_ENTRY_LEN {
                return Err(CaError::BadCsr(format!(
                    "the certificate would be about {entry_len} bytes, more than the log's {} byte entries hold",
                    crate::log::entry::MAX_ENTRY_LEN
                )));
            }
            let record = NewCertificate {
                serial: serial.clone(),
                ca: self.name.clone(),
                profile: profile.name.clone(),
                subject: subject.to_string(),
                sans: valid.sans.iter().map(ToString::to_string).collect(),
                not_before: not_before as i64,
                not_after: not_after as i64,
                requester: req.requester.clone(),
                tbs_der: tbs_der.clone(),
            };
            match self.store.record_pending(&record).await {
                Ok(()) => break (serial, tbs_der),
                Err(StoreError::DuplicateSerial(_)) if attempt < 3 => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        };

        let signed = match self.key.sign(&tbs_der).await {
            Ok(signature) => cert::signed_der(&tbs_der, self.key.scheme(), &signature),
            Err(e) => Err(e.into()),
        };
        let cert_der = match signed {
            Ok(c) => c,
            Err(e) => {
                if let Err(se) = self.store.abandon(&serial, &e.to_string()).await {
                    tracing::error!(%serial, error = %se, "could not mark failed issuance abandoned");
                }
                return Err(e);
            }
        };
        if let Err(e) = self.store.complete_issued(&serial, &cert_der).await {
            // The TBS is recorded as pending, so the signature is known to the store; start-up
            // reconciliation flags it. The certificate itself is never handed out.
            tracing::error!(%serial, error = %e, audit = true, "signed certificate could not be stored; withheld");
            return Err(e.into());
        }
        if let Some(log) = &self.log {
            // Nothing is handed out that the log does not show (issue #6). If sequencing fails
            // the certificate is stored but withheld; start-up logs it (`log_unsequenced`).
            let entry = LogEntry::CertificateIssued(CertificateIssued {
                certificate_der: cert_der.clone(),
                issued_at: self.clock.unix_secs(),
                profile: profile.name.clone(),
                requester: req.requester.clone(),
                issuer: self.name.clone(),
            });
            let logged = match entry.encode() {
                Ok(entry) => {
                    append_detached(
                        log,
                        NewEntry { entry, record: Some(LoggedRecord::Certificate(serial.to_string())) },
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = logged {
                tracing::error!(%serial, error = %e, audit = true, "issued certificate could not be logged; withheld");
                return Err(e.into());
            }
        }
        tracing::info!(%serial, profile = %profile.name, subject = %subject, requester = %req.requester, audit = true, "certificate issued");
        Ok(Issued { serial, cert_der })
    }

    /// Records the service certificates the key ceremony issued from this CA (TSA, document
    /// signer, OCSP responder) in the store, once, so that revocation, CRLs, OCSP and signature
    /// validation treat them like every other certificate of this CA. Returns how many were new.
    pub async fn record_ceremony_certificates(&self, certs: Vec<ServiceCertificate>) -> Result<usize, CaError> {
        let mut added = 0;
        for ServiceCertificate { role, cert, der } in certs {
            let tbs = &cert.tbs_certificate;
            if tbs.issuer != self.issuer_cert.tbs_certificate.subject {
                continue;
            }
            let serial = Serial::from_bytes(tbs.serial_number.as_bytes())
                .ok_or_else(|| CaError::Ceremony(format!("{role} certificate has an invalid serial")))?;
            if self.store.certificate(&serial).await?.is_some() {
                continue;
            }
            let record = NewCertificate {
                serial: serial.clone(),
                ca: self.name.clone(),
                profile: format!("{CEREMONY_PROFILE_PREFIX}{role}"),
                subject: tbs.subject.to_string(),
                sans: Vec::new(),
                not_before: tbs.validity.not_before.to_unix_duration().as_secs() as i64,
                not_after: tbs.validity.not_after.to_unix_duration().as_secs() as i64,
                requester: "key-ceremony".into(),
                tbs_der: tbs.to_der().map_err(|e| CaError::Internal(e.to_string()))?,
            };
            self.store.record_issued(&record, &der).await?;
            tracing::info!(%serial, role, audit = true, "key-ceremony certificate recorded");
            added += 1;
        }
        Ok(added)
    }

    /// Appends to the log what the store has but the log lacks, in order: certificates issued
    /// (or recorded by the key ceremony) before a crash between store and log, or while the log
    /// was disabled, then revocation events. Run at start-up, before the daemon says it is
    /// ready. Returns how many certificates and revocations were appended.
    pub async fn log_unsequenced(&self) -> Result<(usize, usize), CaError> {
        let Some(log) = &self.log else {
            return Ok((0, 0));
        };
        let certs = self.store.unlogged_certificates().await?;
        let mut entries = Vec::with_capacity(certs.len());
        for c in &certs {
            let entry = LogEntry::CertificateIssued(CertificateIssued {
                certificate_der: c.cert_der.clone(),
                issued_at: u64::try_from(c.issued_at).unwrap_or(0),
                profile: c.profile.clone(),
                requester: c.requester.clone(),
                issuer: c.ca.clone(),
            })
            .encode()?;
            entries.push(NewEntry { entry, record: Some(LoggedRecord::Certificate(c.serial.to_string())) });
        }
        log.append_all(entries).await?;
        let revocations = self.store.unlogged_revocations().await?;
        let mut entries = Vec::with_capacity(revocations.len());
        for r in &revocations {
            let entry = revocation_entry(&r.serial, &r.ca, r.at, r.reason)?;
            entries.push(NewEntry { entry, record: Some(LoggedRecord::RevocationEvent(r.event_id)) });
        }
        log.append_all(entries).await?;
        // The key ceremony's certificates reach the log this way by design (recorded at start,
        // logged here); anything else was missing after a crash or while the log was off.
        let ceremony = certs.iter().filter(|c| c.profile.starts_with(CEREMONY_PROFILE_PREFIX)).count();
        if ceremony > 0 {
            tracing::info!(certificates = ceremony, audit = true, "key-ceremony certificates appended to the log");
        }
        if certs.len() > ceremony || !revocations.is_empty() {
            tracing::warn!(
                certificates = certs.len() - ceremony,
                revocations = revocations.len(),
                audit = true,
                "records missing from the issued-certificate log appended"
            );
        }
        Ok((certs.len(), revocations.len()))
    }

    /// One certificate record by serial.
    pub async fn certificate(&self, serial: &str) -> Result<CertificateRecord, CaError> {
        let serial: Serial = serial.parse().map_err(CaError::BadSerial)?;
        self.store.certificate(&serial).await?.ok_or(CaError::Store(StoreError::NotFound(serial)))
    }

    /// Revokes, puts on hold, or releases from hold (`removeFromCRL`) the certificate with
    /// `serial` (RFC 5280 §5.3.1). Idempotent for the same reason. The CRL follows shortly.
    pub async fn revoke(
        &self,
        serial: &str,
        reason: Reason,
        invalidity_date: Option<i64>,
        requester: &str,
    ) -> Result<Revoked, CaError> {
        let rec = self.certificate(serial).await?;
        if !matches!(rec.status, CertStatus::Issued | CertStatus::Revoked) {
            return Err(CaError::NotRevocable(format!(
                "certificate {} is {} and was never issued",
                rec.serial, rec.status
            )));
        }
        let now = self.clock.unix_secs() as i64;
        match revocation::decide(rec.revocation, reason, now, invalidity_date)? {
            Change::None => Ok(Revoked { serial: rec.serial, revocation: rec.revocation, changed: false }),
            Change::To(new) => {
                let event = self.store.set_revocation(&rec.serial, rec.revocation, new, requester).await?;
                tracing::warn!(serial = %rec.serial, %reason, requester, audit = true, "revocation changed");
                self.crl_dirty.notify_one();
                if let Some(log) = &self.log {
                    // A released hold is logged as removeFromCRL (RFC 5280 §5.3.1), as a delta
                    // CRL would say it. A failure here leaves the event unlogged; start-up logs it.
                    let reason = new.map_or(Reason::RemoveFromCrl as u8, |n| n.reason);
                    let entry = revocation_entry(&rec.serial, &rec.ca, now, reason)?;
                    append_detached(log, NewEntry { entry, record: Some(LoggedRecord::RevocationEvent(event)) })
                        .await?;
                }
                Ok(Revoked { serial: rec.serial, revocation: new, changed: true })
            }
        }
    }

    /// Makes, signs and publishes new CRLs (this CA's and the root's) from the store's revoked
    /// index; returns this CA's.
    pub async fn publish_crl(&self) -> Result<Arc<Vec<u8>>, CaError> {
        let _one_at_a_time = self.crl_publish.lock().await;
        let mut published = Vec::new();
        for ci in &self.crl_issuers {
            let entries = self.store.revoked(&ci.ca).await?;
            let number = self.store.next_crl_number(&ci.ca).await?;
            let (name, key_id, key) = (ci.subject.clone(), ci.key_id.clone(), ci.key.clone());
            let (validity, now) = (self.crl_schedule.validity, self.clock.unix_secs());
            // Building and encoding 100,000 entries takes a few hundred milliseconds of CPU.
            let tbs_der = tokio::task::spawn_blocking(move || {
                let issuer = Issuer { name: &name, key_id: &key_id, signer: &*key };
                crl::tbs_der(&issuer, number, now, validity, &entries)
            })
            .await
            .map_err(|e| CaError::Internal(format!("CRL task: {e}")))??;
            let signature = ci.key.sign(&tbs_der).await?;
            let crl = cert::signed_der(&tbs_der, ci.key.scheme(), &signature)?;
            let crl = Arc::new(crl);
            *ci.current.write().unwrap_or_else(|p| p.into_inner()) = Some(crl.clone());
            tracing::info!(ca = %ci.ca, number, "CRL published");
            published.push(crl);
        }
        published.into_iter().next().ok_or_else(|| CaError::Internal("no CRL issuer".into()))
    }

    /// The current CRL (DER) of the CA called `ca`: this CA (or empty) or `root`.
    pub fn crl(&self, ca: &str) -> Result<Option<Arc<Vec<u8>>>, CaError> {
        let ca = if ca.is_empty() { self.name.as_str() } else { ca };
        let ci = self.crl_issuers.iter().find(|c| c.ca == ca).ok_or_else(|| CaError::UnknownCa(ca.to_owned()))?;
        Ok(ci.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Republishes the CRL every `refresh`, and shortly after revocations (coalescing bursts
    /// into one CRL). Runs until the daemon stops.
    pub async fn run_crl_schedule(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.crl_dirty.notified() => tokio::time::sleep(Duration::from_millis(200)).await,
                _ = tokio::time::sleep(self.crl_schedule.refresh) => {}
            }
            if let Err(e) = self.publish_crl().await {
                tracing::error!(error = %e, "CRL could not be published; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
                self.crl_dirty.notify_one();
            }
        }
    }

    /// A page of certificate records, newest first.
    pub async fn list(&self, q: &ListQuery) -> Result<Page, CaError> {
        Ok(self.store.list_certificates(q).await?)
    }
}

#[cfg(test)]
mod tests;
