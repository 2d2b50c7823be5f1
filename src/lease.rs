//! Leases in the store: what one process of a deployment should do at a time, done by the one
//! holding the lease. Replicas on one database each try to take it; the holder renews it well
//! before it expires, and when the holder stops (or loses the database) another takes it over
//! once it has expired. Used for publishing: CRLs on their schedule and the log's checkpoints,
//! so that N replicas sign one CRL and one checkpoint where one would, not N.
//!
//! Expiry is compared with each replica's own clock: replicas keep time by NTP (their TSA
//! refuses to stamp otherwise), and a skew smaller than [`LEASE_TIME`] at worst lets two hold
//! it for that long, which costs one CRL or checkpoint more, never a wrong one (CRL numbers
//! come from one counter, checkpoints are of the one tree and stored before they are served).

use crate::clock::Clock;
use crate::store::{Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a lease holds without renewal.
pub const LEASE_TIME: Duration = Duration::from_secs(6);

/// How often the holder renews it, and another replica asks for it.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);

/// The lease of publishing CRLs on their schedule and signing the log's checkpoints.
pub const PUBLISHER: &str = "publisher";

/// One lease, as this process sees it.
pub struct Lease {
    name: &'static str,
    /// This process among the deployment's: random, so that a restarted replica is new.
    holder: String,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Until when (Unix seconds, this clock) this process holds it; 0 when it does not.
    held_until: AtomicU64,
}

impl Lease {
    pub fn new(name: &'static str, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Arc<Self> {
        let holder = format!("{}-{}", std::process::id(), hex::encode(rand::random::<[u8; 6]>()));
        Arc::new(Lease { name, holder, store, clock, held_until: AtomicU64::new(0) })
    }

    /// Whether this process holds the lease now. A holder that cannot renew stops holding it
    /// when it expires by its own clock, as the others see it expire.
    pub fn held(&self) -> bool {
        self.clock.unix_secs() < self.held_until.load(Ordering::SeqCst)
    }

    /// Takes or renews the lease once; whether this process holds it now.
    pub async fn renew(&self) -> Result<bool, StoreError> {
        let now = self.clock.unix_secs();
        let until = now + LEASE_TIME.as_secs();
        let (now_db, until_db) = (i64::try_from(now).unwrap_or(i64::MAX), i64::try_from(until).unwrap_or(i64::MAX));
        let taken = self.store.take_lease(self.name, &self.holder, now_db, until_db).await?;
        let before = self.held();
        self.held_until.store(if taken { until } else { 0 }, Ordering::SeqCst);
        crate::metrics::global().lease(self.name, taken);
        if taken != before {
            tracing::info!(lease = self.name, holder = %self.holder, held = taken,
                "{}", if taken { "this replica took the lease" } else { "another replica holds the lease" });
        }
        Ok(taken)
    }

    /// Keeps trying to take and renew the lease, every [`RENEW_EVERY`], until the process
    /// stops. A failure (a read-only standby's database never gives it) is said once.
    pub async fn keep(self: Arc<Self>) {
        let mut failing = false;
        loop {
            match self.renew().await {
                Ok(_) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(lease = self.name, error = %e, "the lease cannot be taken; retrying");
                }
                Err(_) => {}
            }
            tokio::time::sleep(RENEW_EVERY).await;
        }
    }

    /// Gives the lease up, for another replica to take at once (when this one stops).
    pub async fn release(&self) {
        self.held_until.store(0, Ordering::SeqCst);
        crate::metrics::global().lease(self.name, false);
        if let Err(e) = self.store.release_lease(self.name, &self.holder).await {
            tracing::debug!(lease = self.name, error = %e, "lease not released: it expires by itself");
        }
    }
}
