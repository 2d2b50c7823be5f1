//! CRL publishing (RFC 5280 §5): this CA's CRLs made from the store's revoked index, signed,
//! kept in the store and served, on a schedule and shortly after every
//! revocation. Every replica of a database serves the newest CRL any of them published (so
//! the cRLNumber a relying party sees never goes back, whichever replica answers), and a
//! replica on a read-only standby serves the primary's.

use super::*;
use crate::store::StoredCrl;

/// Signs `ca`'s CRLs (RFC 5280 §5): its name and key identifier, and its key. The issuing CA's
/// is the daemon's; the root's exists only in the key ceremony, which signs the root's CRL
/// (`trustd init`, `trustd ceremony root-crl`) so that the root key stays offline.
pub struct CrlSigner {
    ca: CaId,
    subject: x509_cert::name::Name,
    key_id: Vec<u8>,
    key: Arc<dyn SigningKey>,
}

impl CrlSigner {
    /// The signer of `ca`'s CRLs: `key`, the key of `cert`.
    pub fn new(ca: CaId, cert: &Certificate, key: Arc<dyn SigningKey>) -> Result<Self, CaError> {
        if cert.tbs_certificate.subject_public_key_info != *key.public_key() {
            return Err(CaError::Ceremony(format!("the {ca} CA's key is not the key of its certificate")));
        }
        Ok(CrlSigner { ca, subject: cert.tbs_certificate.subject.clone(), key_id: subject_key_id(cert)?, key })
    }

    /// Makes the next CRL of this CA from the store's revoked index, valid `validity` from
    /// `now` (Unix seconds), signs it and records it in the store, where every replica finds it
    /// (stored before it is served: no replica serves a CRL the others cannot find).
    pub async fn publish(&self, store: &dyn Store, now: u64, validity: Duration) -> Result<StoredCrl, CaError> {
        let entries = store.revoked(self.ca).await?;
        let number = store.next_crl_number(self.ca).await?;
        let (name, key_id, scheme) = (self.subject.clone(), self.key_id.clone(), self.key.scheme());
        // Building and encoding 100,000 entries takes a few hundred milliseconds of CPU.
        let tbs_der = tokio::task::spawn_blocking(move || {
            let issuer = Issuer { name: &name, key_id: &key_id, scheme };
            crl::tbs_der(&issuer, number, now, validity, &entries)
        })
        .await
        .map_err(|e| CaError::Internal(format!("CRL task: {e}")))??;
        let signature = self.key.sign(&tbs_der).await?;
        let der = cert::signed_der(&tbs_der, scheme, &signature)?;
        let time = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
        let crl = StoredCrl {
            ca: self.ca,
            number,
            this_update: time(now),
            next_update: time(now.saturating_add(validity.as_secs())),
            der,
        };
        store.record_crl(&crl).await?;
        tracing::info!(ca = %self.ca, number, "CRL published");
        Ok(crl)
    }
}

impl CertificateAuthority {
    /// Makes, signs and publishes a new CRL of this CA from the store's revoked index, and
    /// returns it. The root's comes from the key ceremony ([`CrlSigner`]).
    pub async fn publish_crl(&self) -> Result<Arc<Vec<u8>>, CaError> {
        let _one_at_a_time = self.crl_publish.lock().await;
        let mut published = None;
        let generations = self.generations.load_full();
        // The newest generation's first: the one returned.
        for ci in generations.iter().rev().map(|g| &g.crls) {
            let Some(signer) = &ci.signer else { continue };
            let crl = PublishedCrl::from(
                signer.publish(self.store.as_ref(), self.clock.unix_secs(), self.crl_schedule.validity).await?,
            );
            ci.serve(crl.clone());
            published.get_or_insert(crl.der);
        }
        published.ok_or_else(|| CaError::Internal("no CRL issuer".into()))
    }

    /// Serves the newest CRL of each CA in the store, where it is newer than the one served:
    /// another replica's, or (on a read-only standby) the primary's. Returns whether every CA
    /// has one to serve.
    pub async fn adopt_stored_crls(&self) -> Result<bool, CaError> {
        let mut all = true;
        let generations = self.generations.load_full();
        for ci in generations.iter().map(|g| &g.crls).chain([&self.root_crls]) {
            let served = ci.current.read().unwrap_or_else(|p| p.into_inner()).as_ref().map_or(0, |c| c.number);
            match self.store.newest_crl(ci.ca, served).await? {
                Some(stored) => {
                    tracing::debug!(ca = %ci.ca, number = stored.number, "newer CRL found in the store");
                    ci.serve(PublishedCrl::from(stored));
                }
                None => all &= served > 0,
            }
        }
        Ok(all)
    }

    /// The current CRL (DER) of `ca`, once one is published.
    pub fn crl(&self, ca: CaId) -> Option<Arc<Vec<u8>>> {
        self.published_crl(ca).map(|p| p.der)
    }

    /// The thisUpdate and nextUpdate (Unix seconds) of `ca`'s current CRL, once one is
    /// published: how fresh what relying parties fetch is.
    pub fn crl_times(&self, ca: CaId) -> Option<(u64, u64)> {
        self.published_crl(ca).map(|p| (p.this_update, p.next_update))
    }

    fn published_crl(&self, ca: CaId) -> Option<PublishedCrl> {
        let current = |ci: &CrlIssuer| ci.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        match ca {
            CaId::Root => current(&self.root_crls),
            CaId::Issuing(_) => current(&self.generations.load().iter().find(|g| g.cert.ca == ca)?.crls),
        }
    }

    /// Every CA whose CRL this CA serves: the issuing CA's generations, oldest first, and the
    /// root.
    pub fn crl_issuers(&self) -> Vec<CaId> {
        self.generations.load().iter().map(|g| g.cert.ca).chain([CaId::Root]).collect()
    }

    /// Republishes the CRL every `refresh`, and shortly after revocations made here or by
    /// another replica (coalescing bursts into one CRL), while `publishes()` (this replica holds
    /// the publishing lease: one replica publishes for all, and the others serve what it stores,
    /// [`CertificateAuthority::follow_revocations`]). Runs until the daemon stops.
    pub async fn run_crl_schedule(self: Arc<Self>, publishes: impl Fn() -> bool + Send + 'static) {
        loop {
            tokio::select! {
                _ = self.crl_dirty.notified() => tokio::time::sleep(Duration::from_millis(200)).await,
                _ = tokio::time::sleep(self.crl_schedule.refresh) => {}
            }
            if !publishes() {
                continue;
            }
            if let Err(e) = self.publish_crl().await {
                tracing::error!(error = %e, "CRL could not be published; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
                self.crl_dirty.notify_one();
            }
        }
    }

    /// Follows revocations made by other processes on the same database (replicas): every
    /// [`FOLLOW_REVOCATIONS`] it reads the store's revocation generation, and when others'
    /// changes moved it, counts a change (cached client statuses are looked up again) and
    /// republishes the CRLs (where this process holds the publishing lease), as a revocation made
    /// here does at once; and it serves any newer CRL another process stored. OCSP needs nothing: it reads
    /// the store for every answer. Runs until the daemon stops.
    pub async fn follow_revocations(self: Arc<Self>) {
        use std::sync::atomic::Ordering::SeqCst;
        let mut tick = tokio::time::interval(FOLLOW_REVOCATIONS);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Others' changes = the generation less this process's own changes. Own changes are
        // counted before they reach the store and read after the generation, so every own
        // change the generation holds is counted: the estimate never runs ahead of the truth,
        // only behind it while one of ours is on its way, and reaches it once that lands; only
        // a rise past the highest yet seen counts.
        let (mut highest, mut failing) = (None::<i128>, false);
        loop {
            tick.tick().await;
            if let Err(e) = self.adopt_stored_crls().await {
                if !failing {
                    tracing::warn!(error = %e, "CRLs published by other processes cannot be read; retrying");
                }
            }
            match self.store.revocation_generation().await {
                Ok(generation) => {
                    let own = self.own_revocations.load(SeqCst);
                    let others = i128::from(generation) - i128::from(own);
                    if highest.is_some_and(|h| others > h) {
                        self.revocation_changes.count_one();
                        self.crl_dirty.notify_one();
                    }
                    highest = Some(highest.map_or(others, |h| h.max(others)));
                    failing = false;
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "revocations by other processes cannot be followed; retrying");
                }
                Err(_) => {}
            }
        }
    }
}

/// How often [`CertificateAuthority::follow_revocations`] reads the store: the bound on how long
/// a revocation made on another replica is missing from this one's CRL (plus the time to
/// publish it) and from its clients' cached statuses.
pub const FOLLOW_REVOCATIONS: Duration = Duration::from_millis(500);

impl CrlIssuer {
    /// Serves `crl` unless a CRL numbered as high or higher is served already (publishing and
    /// adopting may race; the number never goes back).
    fn serve(&self, crl: PublishedCrl) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_none_or(|c| c.number < crl.number) {
            *current = Some(crl);
        }
    }
}

impl From<StoredCrl> for PublishedCrl {
    fn from(stored: StoredCrl) -> Self {
        PublishedCrl {
            der: Arc::new(stored.der),
            number: stored.number,
            this_update: u64::try_from(stored.this_update).unwrap_or(0),
            next_update: u64::try_from(stored.next_update).unwrap_or(0),
        }
    }
}
