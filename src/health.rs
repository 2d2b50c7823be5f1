//! Readiness: the HSM answers, the store answers and takes what this daemon asks of it (writes,
//! unless it serves a read-only standby), and (where the TSA checks it) the clock is
//! synchronised. Shared by `grpc.health.v1` and `GET /readyz`; the HSM probe also heals its
//! session pool after a device error.

use crate::clock::ClockCheck;
use crate::hsm::Hsm;
use crate::store::{Role, Store};

/// The state of the daemon's dependencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub hsm: bool,
    /// What the database took at the last probe; `None` when it did not answer.
    pub store: Option<Role>,
    /// What this daemon serves as, from the database it found at start: a primary's replica
    /// serves everything, a standby's reads only.
    pub serving: Role,
    /// `None` when the clock is not checked (`clock_check = "off"`).
    pub clock: Option<bool>,
}

impl Readiness {
    /// True when every dependency works.
    pub fn ok(self) -> bool {
        self.hsm && self.store_ok() && self.clock != Some(false)
    }

    /// Whether the store serves what this daemon asks of it: a database that became a standby
    /// under a daemon serving writes does not; one promoted under a daemon serving reads still
    /// serves them.
    pub fn store_ok(self) -> bool {
        matches!((self.serving, self.store), (_, Some(Role::Primary)) | (Role::Standby, Some(Role::Standby)))
    }

    /// How `/readyz` states the store.
    pub fn store_state(self) -> &'static str {
        match (self.serving, self.store) {
            (_, None) => "unavailable",
            (Role::Primary, Some(Role::Primary)) => "ok",
            (Role::Primary, Some(Role::Standby)) => {
                "unavailable: the database became a read-only standby; point trustd at the primary"
            }
            (Role::Standby, Some(Role::Standby)) => {
                "ok, a read-only standby: reads are served here, writes refused with UNAVAILABLE"
            }
            (Role::Standby, Some(Role::Primary)) => {
                "ok, promoted to primary since trustd started: restart trustd to serve writes"
            }
        }
    }
}

/// The readiness the daemon's watcher saw last (it probes every few seconds), for `/readyz`: a
/// probe costs an HSM session and the store's write lock, which a flood of readiness requests
/// must not take.
pub type Latest = tokio::sync::watch::Receiver<Readiness>;

/// Probes the HSM (on the blocking pool), the store and the clock, for a daemon `serving` as a
/// primary's replica or a standby's.
pub async fn check(hsm: &Hsm, store: &dyn Store, serving: Role, clock: ClockCheck) -> Readiness {
    let h = hsm.clone();
    let hsm_ok = tokio::task::spawn_blocking(move || h.probe()).await.map(|r| r.is_ok()).unwrap_or(false);
    let clock = (clock != ClockCheck::Off).then(|| clock.check().is_ok());
    let asked = std::time::Instant::now();
    let store = store.ping().await.ok();
    crate::metrics::global().store_probed(asked.elapsed());
    Readiness { hsm: hsm_ok, store, serving, clock }
}

/// A service certificate within the warning time before its notAfter, or past it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiring {
    /// The key's role: `root`, `issuing`, `tsa`, `ocsp`, `signing:<policy>`.
    pub role: String,
    pub not_after: u64,
    /// Seconds left (negative once expired).
    pub left: i64,
}

/// Each service certificate's role and notAfter (Unix seconds), as rollovers change them: for
/// expiry warnings, `/readyz` and `/metrics`.
#[derive(Clone, Default)]
pub struct ServiceCertificates(std::sync::Arc<std::sync::RwLock<Vec<(String, u64)>>>);

impl ServiceCertificates {
    /// Sets `role`'s notAfter, replacing the one before.
    pub fn set(&self, role: &str, not_after: u64) {
        let mut all = self.0.write().unwrap_or_else(|p| p.into_inner());
        match all.iter_mut().find(|(r, _)| r == role) {
            Some(entry) => entry.1 = not_after,
            None => all.push((role.to_owned(), not_after)),
        }
    }

    /// Every role's notAfter now.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The service keys whose newer generation (`trustd rollover`) this daemon cannot take into
/// service yet, by role, with why: for `/readyz` (which gives the generation, the log the why).
#[derive(Clone, Default)]
pub struct PendingRollovers(std::sync::Arc<std::sync::RwLock<std::collections::BTreeMap<&'static str, (u32, String)>>>);

impl PendingRollovers {
    /// Says `role`'s generation is waiting and why, or (`None`) that nothing of `role` is.
    /// Returns whether that changed what was said of `role`.
    pub fn set(&self, role: &'static str, pending: Option<(u32, String)>) -> bool {
        let mut all = self.0.write().unwrap_or_else(|p| p.into_inner());
        let before = match pending {
            Some(p) => all.insert(role, p.clone()).filter(|b| *b == p),
            None => return all.remove(role).is_some(),
        };
        before.is_none()
    }

    /// The `/readyz` lines: `rollover: ok`, or one per waiting role.
    pub fn readyz_lines(&self) -> String {
        let all = self.0.read().unwrap_or_else(|p| p.into_inner());
        if all.is_empty() {
            return "rollover: ok\n".into();
        }
        all.iter()
            .map(|(role, (g, _))| {
                format!("rollover: the {role} key's generation {g} is not in service here yet (the log says why)\n")
            })
            .collect()
    }
}

/// The certificates of `certificates` (role, notAfter) that expire within `warning` of `now`
/// (Unix seconds), soonest first.
pub fn expiring(certificates: &[(String, u64)], now: u64, warning: std::time::Duration) -> Vec<Expiring> {
    let mut soon: Vec<Expiring> = certificates
        .iter()
        .filter(|(_, not_after)| not_after.saturating_sub(now) <= warning.as_secs())
        .map(|(role, not_after)| Expiring {
            role: role.clone(),
            not_after: *not_after,
            left: i64::try_from(*not_after).unwrap_or(i64::MAX).saturating_sub(i64::try_from(now).unwrap_or(i64::MAX)),
        })
        .collect();
    soon.sort_by_key(|e| e.not_after);
    soon
}

/// "the tsa certificate expires in 12 days (notAfter 2027-01-01T00:00:00Z)", or "expired 3 days
/// ago": how a log line and `/readyz` say it.
impl std::fmt::Display for Expiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = rfc3339(self.not_after);
        match self.left {
            left if left >= 0 => {
                write!(f, "the {} certificate expires in {} (notAfter {when})", self.role, span(left.unsigned_abs()))
            }
            left => {
                write!(f, "the {} certificate expired {} ago (notAfter {when})", self.role, span(left.unsigned_abs()))
            }
        }
    }
}

/// The root's CRL within the warning time before its nextUpdate, or past it: only the key
/// ceremony signs it (the root key is offline), so an operator must.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootCrlDue {
    pub next_update: u64,
    /// Seconds left (negative once past).
    pub left: i64,
}

/// The root CRL served (`(thisUpdate, nextUpdate)`, Unix seconds) when its nextUpdate is within
/// `warning` of `now`, or past.
pub fn root_crl_due(served: Option<(u64, u64)>, now: u64, warning: std::time::Duration) -> Option<RootCrlDue> {
    let (_, next_update) = served?;
    (next_update.saturating_sub(now) <= warning.as_secs()).then(|| RootCrlDue {
        next_update,
        left: i64::try_from(next_update).unwrap_or(i64::MAX).saturating_sub(i64::try_from(now).unwrap_or(i64::MAX)),
    })
}

impl std::fmt::Display for RootCrlDue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = rfc3339(self.next_update);
        match self.left {
            left if left >= 0 => write!(f, "the root CRL's nextUpdate is in {} ({when})", span(left.unsigned_abs()))?,
            left => write!(f, "the root CRL's nextUpdate passed {} ago ({when})", span(left.unsigned_abs()))?,
        }
        f.write_str("; sign the next in a key ceremony (`trustd ceremony root-crl`)")
    }
}

fn rfc3339(unix: u64) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
}

/// A span as a person reads it: days, hours or minutes.
fn span(secs: u64) -> String {
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 2 * 3600 => format!("{} hours", s / 3600),
        s => format!("{} minutes", s / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_store_serves_what_the_daemon_asks_of_it() {
        let r = |serving, store| Readiness { hsm: true, store, serving, clock: None };
        assert!(r(Role::Primary, Some(Role::Primary)).ok());
        assert!(r(Role::Standby, Some(Role::Standby)).ok());
        assert!(r(Role::Standby, Some(Role::Primary)).ok(), "a promoted database still serves reads");
        assert!(!r(Role::Primary, Some(Role::Standby)).ok(), "writes fail on a demoted database");
        assert!(!r(Role::Standby, None).ok());
        assert!(r(Role::Standby, Some(Role::Primary)).store_state().contains("restart trustd"));
    }

    #[test]
    fn the_root_crl_is_due_within_the_warning_of_its_next_update() {
        let (day, now) = (86_400, 1_800_000_000);
        let warning = Duration::from_secs(30 * day);
        assert_eq!(root_crl_due(None, now, warning), None, "none served: the daemon refuses to start without");
        assert_eq!(root_crl_due(Some((now, now + 31 * day)), now, warning), None);
        let due = root_crl_due(Some((now - day, now + 12 * day)), now, warning).unwrap();
        assert_eq!(
            due.to_string(),
            "the root CRL's nextUpdate is in 12 days (2027-01-27T08:00:00Z); sign the next in a key ceremony \
             (`trustd ceremony root-crl`)"
        );
        let past = root_crl_due(Some((now - 40 * day, now - 3 * 3600)), now, warning).unwrap();
        assert!(past.to_string().starts_with("the root CRL's nextUpdate passed 3 hours ago"), "{past}");
        assert_eq!(root_crl_due(Some((0, u64::MAX)), u64::MAX, warning).map(|d| d.left), Some(0), "extremes");
    }

    #[test]
    fn expiring_certificates_are_those_within_the_warning_soonest_first() {
        let day = 86_400;
        let now = 1_800_000_000;
        let certs = [
            ("root".to_owned(), now + 3650 * day),
            ("tsa".to_owned(), now + 12 * day),
            ("ocsp".to_owned(), now - 3 * day),
            ("issuing".to_owned(), now + 30 * day),
        ];
        let soon = expiring(&certs, now, Duration::from_secs(30 * day));
        let roles: Vec<_> = soon.iter().map(|e| (e.role.as_str(), e.left)).collect();
        assert_eq!(roles, [("ocsp", -3 * day as i64), ("tsa", 12 * day as i64), ("issuing", 30 * day as i64)]);
        assert_eq!(soon[1].to_string(), "the tsa certificate expires in 12 days (notAfter 2027-01-27T08:00:00Z)");
        assert_eq!(soon[0].to_string(), "the ocsp certificate expired 3 days ago (notAfter 2027-01-12T08:00:00Z)");
        assert!(expiring(&certs, now, Duration::from_secs(1)).iter().all(|e| e.left < 0), "only the expired");
        let hours = Expiring { role: "tsa".into(), not_after: now + 5 * 3600, left: 5 * 3600 };
        assert!(hours.to_string().starts_with("the tsa certificate expires in 5 hours"), "{hours}");
    }
}
