//! The certificate authority: CSR checks, certificate building and issuance (RFC 5280,
//! RFC 2986), revocation and CRLs. Signs through [`crate::keys`]; knows neither gRPC, SQL nor
//! PKCS#11.

pub mod cert;
pub mod crl;
mod crl_publisher;
pub mod csr;
mod issuance;
pub mod names;
mod reconcile;
pub mod request;
pub mod revocation;
pub mod scope;

use crate::ca_certificates::{CaCertificate, CaCertificates};
pub use crate::ca_id::CaId;
use crate::clock::Clock;
use crate::keys::{CertifiedKey, KeyError, SigningKey};
use crate::log::{CertificateIssued, LogEntry, LogError, LoggedRecord, NewEntry, Sequencer};
use crate::policy::Policies;
use crate::serial::Serial;
use crate::store::{
    CertStatus, CertificateRecord, ListQuery, NewCertificate, Origin, Page, PendingWriter, Revocation, Store,
    StoreError,
};
use cert::{CertSpec, Issuer, UrlContext};
use const_oid::db::rfc5280;
pub use crl_publisher::{CrlSigner, FOLLOW_REVOCATIONS};
use der::{Decode, Encode};
pub use issuance::KeyCustody;
pub use reconcile::REVOCATION_SETTLED;
use revocation::{Change, Reason};
pub use scope::{NameConstraints, NameScope, RevokeScope};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::Certificate;

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
    #[error("invalid invalidity date: {0}")]
    BadInvalidityDate(String),
    #[error("cannot change revocation: {0}")]
    NotRevocable(String),
    /// The access policy does not let this requester have it (a name, another's certificate).
    #[error("not permitted: {0}")]
    NotPermitted(String),
    #[error("unknown CA '{0}'")]
    UnknownCa(String),
    /// A profile this CA cannot issue under as it was set up (its own name, say).
    #[error("profile '{profile}' cannot be used: {reason}")]
    ProfileUnusable { profile: String, reason: String },
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
fn revocation_entry(serial: &Serial, ca: CaId, at: i64, reason: Reason) -> Result<Vec<u8>, CaError> {
    let serial = serial.to_x509().map_err(|e| CaError::Internal(format!("serial {serial}: {e}")))?;
    Ok(LogEntry::Revocation(crate::log::Revocation {
        serial: serial.as_bytes().to_vec(),
        issuer: ca.name(),
        revoked_at: u64::try_from(at).unwrap_or(0),
        reason: reason as u8,
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
    /// The names the requester may have certified.
    pub scope: NameScope,
}

/// An issued certificate.
#[derive(Clone, Debug)]
pub struct Issued {
    pub serial: Serial,
    pub cert_der: Vec<u8>,
    /// The generation of the issuing CA that issued it: its chain is [`CertificateAuthority::chain`]'s.
    pub ca: CaId,
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

/// A CA whose CRL the daemon serves: its name in URLs, its signer where the daemon signs its
/// CRLs (the root's are signed in the key ceremony and found in the store), and its current CRL.
struct CrlIssuer {
    ca: CaId,
    signer: Option<CrlSigner>,
    current: RwLock<Option<PublishedCrl>>,
}

/// A CRL as published: its DER, its cRLNumber, and its thisUpdate and nextUpdate (Unix
/// seconds).
#[derive(Clone)]
struct PublishedCrl {
    der: Arc<Vec<u8>>,
    number: u64,
    this_update: u64,
    next_update: u64,
}

/// One generation of the issuing CA: its certificate and key, the URLs put in what it issues
/// (its own CRL and certificate), and its CRLs. Every generation keeps signing its CRLs: what it
/// issued stays revocable until it expires.
struct Generation {
    cert: Arc<CaCertificate>,
    key: Arc<dyn SigningKey>,
    urls: UrlContext,
    crls: CrlIssuer,
}

/// The issuing CA: its key in the HSM (each generation's), its certificates, the profiles and the
/// store.
pub struct CertificateAuthority {
    certificates: CaCertificates,
    /// Oldest first, never empty; the newest issues. Grows when the key rolls over.
    generations: arc_swap::ArcSwap<Vec<Arc<Generation>>>,
    /// The root's CRLs (the issuing CA certificates' CRL distribution point), which the key
    /// ceremony signs.
    root_crls: CrlIssuer,
    policies: Arc<Policies>,
    store: Arc<dyn Store>,
    /// Pending records of concurrent issuances, group-committed before the HSM signs.
    pending: PendingWriter,
    public_url: String,
    crl_schedule: CrlSchedule,
    /// Publishing is serialised so a newer CRL is never replaced by an older one.
    crl_publish: tokio::sync::Mutex<()>,
    crl_dirty: tokio::sync::Notify,
    revocation_changes: crate::revocation::Changes,
    /// Revocation changes this process made or is making (counted before the store has them):
    /// what [`CertificateAuthority::follow_revocations`] takes off the store's generation to
    /// see only other processes' changes.
    own_revocations: std::sync::atomic::AtomicU64,
    /// The issued-certificate log; `None` only with `[log] enabled = false`.
    log: Option<Sequencer>,
    /// Held shared by a revocation from storing its event until its log entry is sequenced, and
    /// exclusively by reconciliation: what reconciliation finds unlogged was missed, never still
    /// on its way (which it would log twice). (An issuance stores and logs its certificate in
    /// one transaction, so has no such window.)
    logging: tokio::sync::RwLock<()>,
    clock: Arc<dyn Clock>,
}

/// A revocation change of this process, counted in `own_revocations` from before it reaches the
/// store until it is known to be there; uncounted again if it never gets there (an error, or
/// the request dropped midway).
struct OwnRevocation<'a>(Option<&'a std::sync::atomic::AtomicU64>);

impl<'a> OwnRevocation<'a> {
    fn begin(count: &'a std::sync::atomic::AtomicU64) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        OwnRevocation(Some(count))
    }

    /// The store has it: it stays counted.
    fn made(mut self) {
        self.0 = None;
    }
}

impl Drop for OwnRevocation<'_> {
    fn drop(&mut self) {
        if let Some(count) = self.0 {
            count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A certificate the key ceremony issued to one of trustd's own services.
pub struct ServiceCertificate {
    /// `tsa`, `document-signer` or `ocsp`.
    pub role: &'static str,
    pub cert: Certificate,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

impl CertificateAuthority {
    /// The issuing CA with its key and certificate (its first generation), under the root's
    /// certificate (DER). The root's key is not needed: its CRL comes from the key ceremony,
    /// through the store.
    pub fn new(
        issuing: CertifiedKey,
        root_der: Vec<u8>,
        policies: Arc<Policies>,
        store: Arc<dyn Store>,
        public_url: &str,
        crl_schedule: CrlSchedule,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CaError> {
        let certificates =
            CaCertificates::new(root_der, vec![(CaId::ISSUING, issuing.der.clone())]).map_err(CaError::Ceremony)?;
        let first = Self::generation(&certificates, public_url, CaId::ISSUING, issuing.key)?;
        Ok(CertificateAuthority {
            certificates,
            generations: arc_swap::ArcSwap::from_pointee(vec![Arc::new(first)]),
            // Nothing revokes CA certificates through the API yet, so the root's CRL is empty;
            // it exists because relying parties that check the whole chain fetch it.
            root_crls: CrlIssuer { ca: CaId::Root, signer: None, current: RwLock::new(None) },
            policies,
            pending: PendingWriter::spawn(store.clone()),
            store,
            public_url: public_url.to_owned(),
            crl_schedule,
            crl_publish: tokio::sync::Mutex::new(()),
            crl_dirty: tokio::sync::Notify::new(),
            revocation_changes: Default::default(),
            own_revocations: Default::default(),
            log: None,
            logging: tokio::sync::RwLock::new(()),
            clock,
        })
    }

    fn generation(
        certificates: &CaCertificates,
        public_url: &str,
        ca: CaId,
        key: Arc<dyn SigningKey>,
    ) -> Result<Generation, CaError> {
        let cert = certificates.get(ca).ok_or_else(|| CaError::Internal(format!("no {ca} CA certificate")))?;
        Ok(Generation {
            crls: CrlIssuer {
                ca,
                signer: Some(CrlSigner::new(ca, &cert.cert, key.clone())?),
                current: RwLock::new(None),
            },
            urls: UrlContext { base: public_url.to_owned(), ca },
            cert,
            key,
        })
    }

    /// Issues with generation `ca` of the issuing CA (`key`, certified by the root) from now on,
    /// newer than every generation this CA has; the older ones keep their CRLs and their
    /// certificates stay verifiable. Adding one this CA has already changes nothing.
    pub fn add_generation(&self, ca: CaId, key: CertifiedKey) -> Result<(), CaError> {
        if self.generations.load().iter().any(|g| g.cert.ca == ca) {
            return Ok(());
        }
        self.certificates.add(ca, key.der).map_err(CaError::Ceremony)?;
        let added = Arc::new(Self::generation(&self.certificates, &self.public_url, ca, key.key)?);
        self.generations.rcu(|all| {
            let mut all = Vec::clone(all);
            all.push(added.clone());
            all
        });
        // Its first CRL, as soon as it can be made.
        self.crl_dirty.notify_one();
        Ok(())
    }

    /// The generation that issues: the newest.
    fn newest(&self) -> Arc<Generation> {
        let all = self.generations.load();
        // Never empty: `new` makes the first, and generations are only added.
        all[all.len() - 1].clone()
    }

    /// The root's and the issuing CA's certificates, as the cores that hand out chains see them.
    pub fn certificates(&self) -> CaCertificates {
        self.certificates.clone()
    }

    /// The issuing CA's generations, oldest first, with their keys: where OCSP answers with the
    /// CA's own key.
    pub fn issuing_keys(&self) -> Vec<(CaId, CertifiedKey)> {
        let certified =
            |g: &Generation| CertifiedKey { key: g.key.clone(), cert: g.cert.cert.clone(), der: g.cert.der.clone() };
        self.generations.load().iter().map(|g| (g.cert.ca, certified(g))).collect()
    }

    /// The count of this CA's revocation changes, for caches of certificate status.
    pub fn revocation_changes(&self) -> crate::revocation::Changes {
        self.revocation_changes.clone()
    }

    /// Logs every issuance and revocation from now on in `log`: [`CertificateAuthority::issue`]
    /// and [`CertificateAuthority::revoke`] return only once the entry is sequenced.
    pub fn with_log(mut self, log: Sequencer) -> Self {
        self.log = Some(log);
        self
    }

    /// The chain of `ca`, DER, up to the root: a generation of the issuing CA and the root, or
    /// the root alone; `None` for a CA this one does not know.
    pub fn chain(&self, ca: CaId) -> Option<Vec<Vec<u8>>> {
        self.certificates.chain(ca)
    }

    /// The issuing CA's newest generation: the CA a request that names none means.
    pub fn issuing(&self) -> CaId {
        self.newest().cert.ca
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
        scope: RevokeScope,
    ) -> Result<Revoked, CaError> {
        let rec = self.certificate(serial).await?;
        if scope == RevokeScope::Own && rec.requester != requester {
            return Err(CaError::NotPermitted(format!("certificate {} was not issued to {requester}", rec.serial)));
        }
        if !matches!(rec.status, CertStatus::Issued | CertStatus::Revoked) {
            return Err(CaError::NotRevocable(format!(
                "certificate {} is {} and was never issued",
                rec.serial, rec.status
            )));
        }
        let now = self.clock.unix_secs() as i64;
        match revocation::decide(rec.revocation, reason, now, invalidity_date, rec.not_before)? {
            Change::None => Ok(Revoked { serial: rec.serial, revocation: rec.revocation, changed: false }),
            Change::To(new) => {
                let _logging = self.logging.read().await;
                let own = OwnRevocation::begin(&self.own_revocations);
                let event = self.store.set_revocation(&rec.serial, rec.revocation, new, requester).await?;
                own.made();
                tracing::warn!(serial = %rec.serial, %reason, requester, audit = true, "revocation changed");
                self.revocation_changes.count_one();
                self.crl_dirty.notify_one();
                if let Some(log) = &self.log {
                    // A released hold is logged as removeFromCRL (RFC 5280 §5.3.1), as a delta
                    // CRL would say it. A failure here leaves the event unlogged; reconciliation
                    // logs it.
                    let reason = new.map_or(Reason::RemoveFromCrl, |n| n.reason);
                    let entry = revocation_entry(&rec.serial, rec.ca, now, reason)?;
                    append_detached(log, NewEntry { entry, record: Some(LoggedRecord::RevocationEvent(event)) })
                        .await?;
                }
                Ok(Revoked { serial: rec.serial, revocation: new, changed: true })
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
