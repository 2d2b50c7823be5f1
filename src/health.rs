//! Readiness: the HSM answers and the store is writable. Shared by `grpc.health.v1` and
//! `GET /readyz`; the HSM probe also heals its session pool after a device error.

use crate::hsm::Hsm;
use crate::store::Store;

/// The state of the daemon's dependencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub hsm: bool,
    pub store: bool,
}

impl Readiness {
    /// True when every dependency works.
    pub fn ok(self) -> bool {
        self.hsm && self.store
    }
}

/// Probes the HSM (on the blocking pool) and the store.
pub async fn check(hsm: &Hsm, store: &dyn Store) -> Readiness {
    let h = hsm.clone();
    let hsm_ok = tokio::task::spawn_blocking(move || h.probe()).await.map(|r| r.is_ok()).unwrap_or(false);
    Readiness { hsm: hsm_ok, store: store.ping().await.is_ok() }
}
