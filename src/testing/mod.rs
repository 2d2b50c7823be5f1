//! Fixtures for in-process tests of the protocol cores: software keys with certificates, and
//! record writers that keep what they are given. Test builds only.

use crate::ca::cert::{self, CertSpec, Issuer};
use crate::keys::{CertifiedKey, SigningKey};
use crate::log::{Hash, HashIndex, LeafIndex, LogBatch, LogError, LogStore, StoredCheckpoint, TreeSize};
use crate::policy::AttrKind;
use crate::records::RecordWriter;
use crate::serial::Serial;
use crate::store::{GroupCommit, StoreError};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use x509_cert::ext::Extension;

/// A certificate for `key` named `CN=<cn>`, issued by `issuer` (self-signed when `None`), valid
/// from `not_before` to `not_after` (Unix seconds).
pub async fn certify(
    key: Arc<dyn SigningKey>,
    cn: &str,
    issuer: Option<&CertifiedKey>,
    validity: (u64, u64),
    extensions: Vec<Extension>,
) -> CertifiedKey {
    let subject = cert::build_name(&[(AttrKind::CommonName, cn.to_owned())]).unwrap();
    let spec = CertSpec {
        serial: Serial::random(),
        subject: subject.clone(),
        public_key: key.public_key().clone(),
        not_before: validity.0,
        not_after: validity.1,
        extensions,
    };
    // The authorityKeyIdentifier: the issuer's subjectKeyIdentifier, or its key's.
    let (name, signer, key_id) = match issuer {
        Some(i) => (
            i.cert.tbs_certificate.subject.clone(),
            i.key.clone(),
            crate::ca::subject_key_id(&i.cert).unwrap_or_else(|_| cert::key_identifier(i.key.public_key())),
        ),
        None => (subject, key.clone(), cert::key_identifier(key.public_key())),
    };
    let tbs = cert::tbs(spec, &Issuer { name: &name, key_id: &key_id, scheme: signer.scheme() }).unwrap();
    let tbs_der = der::Encode::to_der(&tbs).unwrap();
    let signature = signer.sign(&tbs_der).await.unwrap();
    CertifiedKey::new(key, cert::signed_der(&tbs_der, signer.scheme(), &signature).unwrap()).unwrap()
}

/// A record writer (the log off) that keeps every batch it is given, or fails every one with
/// `fails_with`.
pub fn writer<R: Clone + Send + 'static>(fails_with: Option<&str>) -> (RecordWriter<R>, Arc<Mutex<Vec<R>>>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let (k, fail) = (kept.clone(), fails_with.map(str::to_owned));
    let writer = GroupCommit::start("test", crate::batch::Gather::AfterYield, move |batch: Vec<R>| {
        let (k, fail) = (k.clone(), fail.clone());
        async move {
            match fail {
                Some(cause) => Err(StoreError::Database(cause)),
                None => {
                    k.lock().unwrap().extend(batch);
                    Ok(())
                }
            }
        }
    });
    (RecordWriter::Unlogged(writer), kept)
}

/// Runs `f` to completion on a runtime of its own, for synchronous tests of async cores.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// A real SQLite store in `dir` (the cores' tests record through the same store the daemon uses).
pub async fn sqlite_store(dir: &tempfile::TempDir) -> Arc<dyn crate::store::Store> {
    Arc::new(crate::store::SqliteStore::open(&dir.path().join("trustd.db")).await.unwrap())
}

/// The validity of [`certificate_authority`]'s CA certificates: 2020-01-01 to 2040-01-01.
pub const CA_VALIDITY: (u64, u64) = (1_577_836_800, 2_208_988_800);

/// A CA over software keys (root P-256 seed 11, issuing `issuing_key`) with the repository's
/// policies and a real SQLite store in `dir`; CA certificates valid for [`CA_VALIDITY`], URLs
/// under `http://ca.test`; and the root's CRL signer (the key ceremony's, which the CA does not
/// hold).
pub async fn certificate_authority(
    dir: &tempfile::TempDir,
    issuing_key: Arc<dyn SigningKey>,
    clock: Arc<dyn crate::clock::Clock>,
) -> (crate::ca::CertificateAuthority, Arc<dyn crate::store::Store>, crate::ca::CrlSigner) {
    use crate::ca::{CaId, CrlSchedule};
    use std::time::Duration;
    let (root, issuing) = ca_pair(issuing_key).await;
    let store = sqlite_store(dir).await;
    let policies = Arc::new(crate::policy::Policies::load(std::path::Path::new("policies")).unwrap());
    let schedule = CrlSchedule { validity: Duration::from_secs(7 * 86_400), refresh: Duration::from_secs(3600) };
    let root_crls = crate::ca::CrlSigner::new(CaId::Root, &root.cert, root.key).unwrap();
    let ca = crate::ca::CertificateAuthority::new(
        issuing,
        root.der,
        policies,
        store.clone(),
        "http://ca.test",
        schedule,
        clock,
    )
    .unwrap();
    (ca, store, root_crls)
}

/// A root (P-256 seed 11, `Test Root`) and an issuing CA under it (`issuing_key`, `Test Issuing
/// CA`), as the key ceremony makes them, valid for [`CA_VALIDITY`], URLs under `http://ca.test`.
pub async fn ca_pair(issuing_key: Arc<dyn SigningKey>) -> (CertifiedKey, CertifiedKey) {
    use crate::ca::{cert::CeremonyCert, cert::UrlContext, subject_key_id, CaId};
    let urls = UrlContext { base: "http://ca.test".into(), ca: CaId::Root };
    let root_key: Arc<dyn SigningKey> = Arc::new(crate::keys::software::SoftwareKey::p256(11));
    let root_ext = cert::ceremony_extensions(&CeremonyCert::Root, root_key.public_key(), &[]).unwrap();
    let root = certify(root_key, "Test Root", None, CA_VALIDITY, root_ext).await;
    let ext = cert::ceremony_extensions(
        &CeremonyCert::Issuing { urls: &urls },
        issuing_key.public_key(),
        &subject_key_id(&root.cert).unwrap(),
    )
    .unwrap();
    let issuing = certify(issuing_key, "Test Issuing CA", Some(&root), CA_VALIDITY, ext).await;
    (root, issuing)
}

/// [`ca_pair`]'s CAs as the cores see them, with the issuing CA's key: what a service
/// certificate of a core's tests is issued by.
pub async fn ca_certificates() -> (crate::ca_certificates::CaCertificates, CertifiedKey) {
    let (root, issuing) = ca_pair(Arc::new(crate::keys::software::SoftwareKey::p256(12))).await;
    let cas =
        crate::ca_certificates::CaCertificates::new(root.der, vec![(crate::ca::CaId::ISSUING, issuing.der.clone())])
            .unwrap();
    (cas, issuing)
}

/// The store's own log tables, with a switch that fails every log batch while it is on (a full
/// disk, a lost database connection), and one that appends entries without marking their
/// records logged (a store that loses those updates).
pub struct FlakyLog {
    store: Arc<dyn crate::store::Store>,
    pub failing: AtomicBool,
    pub forgetful: AtomicBool,
}

impl FlakyLog {
    /// Over `store`'s log tables, both switches off.
    pub fn new(store: Arc<dyn crate::store::Store>) -> Self {
        FlakyLog { store, failing: false.into(), forgetful: false.into() }
    }
}

#[async_trait::async_trait]
impl LogStore for FlakyLog {
    async fn log_tree(&self) -> Result<(TreeSize, Hash), LogError> {
        self.store.log_tree().await
    }
    async fn log_hashes(&self, indexes: &[HashIndex]) -> Result<Vec<Hash>, LogError> {
        self.store.log_hashes(indexes).await
    }
    async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<(LeafIndex, Vec<u8>)>, LogError> {
        self.store.log_entries(start, end).await
    }
    async fn append_log_batch(&self, batch: &LogBatch) -> Result<(), LogError> {
        if self.failing.load(SeqCst) {
            return Err(LogError::Store("disk full".into()));
        }
        if self.forgetful.load(SeqCst) {
            let mut forgotten = batch.clone();
            forgotten.entries.iter_mut().for_each(|e| e.record = None);
            return self.store.append_log_batch(&forgotten).await;
        }
        self.store.append_log_batch(batch).await
    }
    async fn log_durable(&self) -> Result<(), LogError> {
        self.store.log_durable().await
    }
    async fn record_checkpoint(&self, c: &StoredCheckpoint) -> Result<(), LogError> {
        self.store.record_checkpoint(c).await
    }
    async fn newest_checkpoint(&self, above: TreeSize) -> Result<Option<StoredCheckpoint>, LogError> {
        self.store.newest_checkpoint(above).await
    }
}

pub mod fuzz;
pub mod postgres;
