//! Fixtures for in-process tests of the protocol cores: software keys with certificates, and
//! record writers that keep what they are given. Test builds only.

use crate::ca::cert::{self, CertSpec, Issuer};
use crate::keys::{CertifiedKey, SigningKey};
use crate::policy::AttrKind;
use crate::serial::Serial;
use crate::store::{GroupCommit, StoreError};
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
    let key_id = cert::key_identifier(key.public_key());
    let (name, signer) = match issuer {
        Some(i) => (i.cert.tbs_certificate.subject.clone(), i.key.clone()),
        None => (subject, key.clone()),
    };
    let tbs = cert::tbs(spec, &Issuer { name: &name, key_id: &key_id, scheme: signer.scheme() }).unwrap();
    let tbs_der = der::Encode::to_der(&tbs).unwrap();
    let signature = signer.sign(&tbs_der).await.unwrap();
    CertifiedKey::new(key, cert::signed_der(&tbs_der, signer.scheme(), &signature).unwrap()).unwrap()
}

/// A record writer that keeps every batch it is given, or fails every one with `fails_with`.
pub fn writer<R: Clone + Send + 'static>(fails_with: Option<&str>) -> (GroupCommit<R>, Arc<Mutex<Vec<R>>>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let (k, fail) = (kept.clone(), fails_with.map(str::to_owned));
    let writer = GroupCommit::start(move |batch: Vec<R>| {
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
    (writer, kept)
}

/// Runs `f` to completion on a runtime of its own, for synchronous tests of async cores.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// A real SQLite store in `dir` (the cores' tests record through the same store the daemon uses).
pub async fn sqlite_store(dir: &tempfile::TempDir) -> Arc<dyn crate::store::Store> {
    Arc::new(crate::store::SqliteStore::open(&dir.path().join("trustd.db")).await.unwrap())
}
