//! Readiness: the HSM answers, the store is writable, and (where the TSA checks it) the clock
//! is synchronised. Shared by `grpc.health.v1` and `GET /readyz`; the HSM probe also heals its
//! session pool after a device error.

use crate::clock::ClockCheck;
use crate::hsm::Hsm;
use crate::store::Store;

/// The state of the daemon's dependencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub hsm: bool,
    pub store: bool,
    /// `None` when the clock is not checked (`clock_check = "off"`).
    pub clock: Option<bool>,
}

impl Readiness {
    /// True when every dependency works.
    pub fn ok(self) -> bool {
        self.hsm && self.store && self.clock != Some(false)
    }
}

/// The readiness the daemon's watcher saw last (it probes every few seconds), for `/readyz`: a
/// probe costs an HSM session and the store's write lock, which a flood of readiness requests
/// must not take.
pub type Latest = tokio::sync::watch::Receiver<Readiness>;

/// Probes the HSM (on the blocking pool), the store and the clock.
pub async fn check(hsm: &Hsm, store: &dyn Store, clock: ClockCheck) -> Readiness {
    let h = hsm.clone();
    let hsm_ok = tokio::task::spawn_blocking(move || h.probe()).await.map(|r| r.is_ok()).unwrap_or(false);
    let clock = (clock != ClockCheck::Off).then(|| clock.check().is_ok());
    Readiness { hsm: hsm_ok, store: store.ping().await.is_ok(), clock }
}
