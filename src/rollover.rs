//! Key rollover without downtime (`trustd rollover --key tsa|document-signer|ocsp|log`): the
//! command makes the role's next key (and certificate) in the HSM (the ceremony's way,
//! [`ceremony::rollover`]), records the certificate like every other of the CA, states the key
//! in the log, and only then records the key as the role's newest in the store. Every daemon
//! serving the database (a standby's through replication, which keeps commit order) follows
//! that record and switches new operations to the key within [`FOLLOW_ROLLOVERS`], so nothing
//! the new key signs names a certificate or a key that the store and the log lack. What the old
//! key signed stays valid: its certificate stays in the store (GetCertificate, OCSP, Verify)
//! and in the log, unrevoked until it expires. The log's own new key signs each checkpoint
//! together with the one before it, so that auditors who pinned that one follow.

use crate::ca::{CaId, CertificateAuthority, ServiceCertificate, REVOCATION_SETTLED};
use crate::ceremony::{self, CaKeys, CeremonyConfig, KeyInService};
use crate::daemon::{blocking, certified_key, hsm_signer};
use crate::diagnostics::ServiceKey;
use crate::hsm::{Hsm, KeyRef};
use crate::keys::SignatureScheme;
use crate::log::{Sequencer, TransparencyLog};
use crate::ocsp::OcspResponder;
use crate::service_role::ServiceRole;
use crate::signing::SigningService;
use crate::store::{RolledKey, Store};
use crate::tsa::TimeStampAuthority;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often a serving daemon reads the store for keys rolled over: the bound on how long after
/// `trustd rollover` returns a replica still signs with the previous key.
pub const FOLLOW_ROLLOVERS: Duration = Duration::from_secs(1);

/// What `trustd rollover` did.
pub struct Rolled {
    pub role: ServiceRole,
    pub generation: u32,
    pub step: ceremony::Step,
    /// Whether this finished a rollover that an earlier run began.
    pub resumed: bool,
}

impl std::fmt::Display for Rolled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} key, generation {}{}: {}; serving replicas sign with it within {} s",
            self.role,
            self.generation,
            if self.resumed { " (finishing the rollover an earlier run began)" } else { "" },
            self.step,
            FOLLOW_ROLLOVERS.as_secs()
        )
    }
}

/// Makes `role`'s next key (and its certificate, from `ca`) in `hsm`; records the certificate
/// and states the key in `log` (when the log is on); then records the key in `store` (a
/// primary's) as the role's newest, which every replica follows. Run with the daemon's config;
/// the daemon keeps serving. Run again after a failure, it finishes what the failed run began.
pub async fn roll_over(
    hsm: &Hsm,
    root_token: &Hsm,
    store: &dyn Store,
    ca: &CertificateAuthority,
    log: Option<&Sequencer>,
    ceremony: CeremonyConfig,
    role: ServiceRole,
) -> Result<Rolled, String> {
    let all = store.service_keys().await.map_err(|e| e.to_string())?;
    let now = i64::try_from(crate::unix_time::now()).unwrap_or(i64::MAX);
    // A rollover of this role that did not finish is finished; otherwise the next generation
    // is reserved first, so that a second rollover of the role running at once fails here.
    let (generation, resumed) = match all.iter().filter(|k| k.role == role).max_by_key(|k| k.generation) {
        Some(k) if k.in_service_at.is_none() => (k.generation, true),
        Some(k) => (
            k.generation
                .checked_add(1)
                .ok_or_else(|| format!("the {role} key has rolled over as often as can be counted"))?,
            false,
        ),
        None => (2, false),
    };
    let in_service = ceremony.keys.rolled_over(&all);
    let (previous, issuing) = (in_service.service(role).clone(), in_service.issuing.clone());
    if !resumed {
        let reserved = RolledKey {
            role,
            generation,
            key: successor(ceremony.keys.service(role), generation),
            created_at: now,
            in_service_at: None,
        };
        store.record_service_key(&reserved).await.map_err(|e| e.to_string())?;
    }
    let (h, r) = (hsm.clone(), root_token.clone());
    let (key, step) =
        blocking(move || ceremony::rollover(&h, &r, &ceremony, role, (&previous, &issuing), generation)).await?;
    let public_key = if role == ServiceRole::Log {
        hsm_signer(hsm, &key, Some(SignatureScheme::Ed25519), "log key").await?.public_key().clone()
    } else if role == ServiceRole::Issuing {
        // Checked as every daemon will check it: the root signed it.
        let certified = certified_key(hsm, &key, None).await?;
        let public_key = certified.key.public_key().clone();
        ca.add_generation(CaId::Issuing(generation), certified).map_err(|e| e.to_string())?;
        public_key
    } else {
        let certified = certified_key(hsm, &key, None).await?;
        let service = ServiceCertificate { role: role.name(), cert: certified.cert.clone(), der: certified.der };
        ca.record_ceremony_certificates(vec![service]).await.map_err(|e| format!("its certificate: {e}"))?;
        if log.is_some() {
            ca.log_unsequenced(REVOCATION_SETTLED).await.map_err(|e| format!("logging its certificate: {e}"))?;
        }
        certified.key.public_key().clone()
    };
    if let Some(log) = log {
        let stated = KeyInService { role: role.name().into(), key: key.clone(), public_key };
        ceremony::log_keys(store, log, vec![stated]).await.map_err(|e| format!("stating it in the log: {e}"))?;
    }
    store.put_service_key_in_service(role, generation, now).await.map_err(|e| e.to_string())?;
    tracing::warn!(%role, generation, %key, resumed, audit = true, "service key rolled over");
    Ok(Rolled { role, generation, step, resumed })
}

/// The newest generation in service of each role among `all`.
pub fn newest(all: &[RolledKey]) -> Vec<&RolledKey> {
    let mut newest: HashMap<ServiceRole, &RolledKey> = HashMap::new();
    for k in all.iter().filter(|k| k.in_service_at.is_some()) {
        let slot = newest.entry(k.role).or_insert(k);
        if k.generation > slot.generation {
            *slot = k;
        }
    }
    newest.into_values().collect()
}

/// The key `role` signed with before its newest generation among `all`: the one before it, or
/// the key ceremony's (`first`); `None` when it never rolled over.
pub fn previous(all: &[RolledKey], role: ServiceRole, first: &KeyRef) -> Option<KeyRef> {
    let newest = newest(all).into_iter().find(|k| k.role == role)?.generation;
    match newest.checked_sub(1)? {
        1 => Some(first.clone()),
        before => all.iter().find(|k| k.role == role && k.generation == before).map(|k| k.key.clone()),
    }
}

/// The services whose keys roll over: what each daemon switches when the store names a newer
/// key for a role.
pub struct Follower {
    pub store: Arc<dyn Store>,
    pub hsm: Hsm,
    pub ca: Arc<CertificateAuthority>,
    /// The key ceremony's keys (the config's), each role's first generation.
    pub first: CaKeys,
    /// The issued-certificate log, when enabled: its checkpoints are signed with the log's
    /// newest key.
    pub log: Option<Arc<TransparencyLog>>,
    pub tsa: Arc<TimeStampAuthority>,
    pub signing: Arc<SigningService>,
    pub ocsp: Arc<OcspResponder>,
    pub certificates: crate::health::ServiceCertificates,
    /// What trust.v1.Diagnostics measures: the keys in service.
    pub diagnostics: Arc<crate::diagnostics::Diagnostics>,
    /// The generation each role signs with.
    pub in_use: HashMap<ServiceRole, u32>,
    /// The roles that could not switch yet, with why: for `/readyz`, and to log each error once.
    pub pending: crate::health::PendingRollovers,
}

impl Follower {
    /// Follows the store's rolled-over keys every [`FOLLOW_ROLLOVERS`] until the daemon stops.
    pub async fn run(mut self) {
        for (role, generation) in &self.in_use {
            crate::metrics::global().service_key(role.name(), *generation, false);
        }
        let mut tick = tokio::time::interval(FOLLOW_ROLLOVERS);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.store.service_keys().await {
                Ok(all) => self.follow(&all).await,
                Err(e) => tracing::debug!(error = %e, "the rolled-over keys could not be read; retrying"),
            }
        }
    }

    /// Switches every role whose newest key in `all` is newer than the one in use; a role that
    /// cannot switch yet keeps its key and is tried again, the others switch regardless.
    async fn follow(&mut self, all: &[RolledKey]) {
        for rolled in newest(all) {
            let role = rolled.role;
            if self.in_use.get(&role).is_some_and(|generation| *generation >= rolled.generation) {
                continue;
            }
            match self.switch(all, rolled).await {
                Ok(true) => {
                    self.in_use.insert(role, rolled.generation);
                    crate::metrics::global().service_key(role.name(), rolled.generation, false);
                    self.pending.set(role.name(), None);
                    tracing::warn!(%role, generation = rolled.generation, key = %rolled.key, audit = true,
                        "signing with the rolled-over key");
                }
                Ok(false) => {}
                Err(e) => {
                    if self.pending.set(role.name(), Some((rolled.generation, e.clone()))) {
                        tracing::error!(%role, generation = rolled.generation, key = %rolled.key, error = %e,
                            "the rolled-over key cannot be taken into service; still signing with the previous one, retrying");
                    }
                    let in_use = self.in_use.get(&role).copied().unwrap_or(1);
                    crate::metrics::global().service_key(role.name(), in_use, true);
                }
            }
        }
    }

    /// Signs new operations of `rolled`'s role with its key: `true` once switched, `false` when
    /// the log here has not caught up with the key's statement yet.
    async fn switch(&self, all: &[RolledKey], rolled: &RolledKey) -> Result<bool, String> {
        let role = rolled.role;
        let first = self.first.service(role);
        if rolled.key != successor(first, rolled.generation) {
            return Err(format!(
                "the store names {} as its generation {}, not the key trustd rollover makes ({})",
                rolled.key,
                rolled.generation,
                successor(first, rolled.generation)
            ));
        }
        if role == ServiceRole::Log {
            let key = hsm_signer(&self.hsm, &rolled.key, Some(SignatureScheme::Ed25519), "log key").await?;
            if let Some(log) = &self.log {
                // Checkpoints by the new key cover its statement, which trustd rollover made
                // before recording the key: wait until this replica's tree includes it.
                let (stored, _) = self.store.log_tree().await.map_err(|e| e.to_string())?;
                if log.sequencer().head().borrow().0 < stored {
                    return Ok(false);
                }
                let previous = match previous(all, role, first) {
                    Some(k) => {
                        Some(hsm_signer(&self.hsm, &k, Some(SignatureScheme::Ed25519), "previous log key").await?)
                    }
                    None => None,
                };
                log.rotate(key.clone(), previous).await.map_err(|e| format!("the log's checkpoints: {e}"))?;
            }
            self.diagnostics.replace(ServiceKey::Log, key);
            return Ok(true);
        }
        let certified = certified_key(&self.hsm, &rolled.key, None).await?;
        let not_after = certified.cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs();
        match role {
            ServiceRole::Tsa => {
                self.diagnostics.replace(ServiceKey::Tsa, certified.key.clone());
                self.tsa.rotate(certified).map_err(|e| e.to_string())?;
                self.certificates.set(role.name(), not_after);
            }
            ServiceRole::DocumentSigner => {
                // Each policy on the document-signing key (as at start), in its own scheme.
                let following = self.signing.policies().filter(|p| p.own_key(&self.first.document_signer).is_none());
                for policy in following.collect::<Vec<_>>() {
                    let key = certified_key(&self.hsm, &rolled.key, policy.signature).await?;
                    if policy.name == crate::signing::DEFAULT_POLICY {
                        self.diagnostics.replace(ServiceKey::DocumentSigner, key.key.clone());
                    }
                    self.signing.rotate(&policy.name, key).map_err(|e| e.to_string())?;
                    self.certificates.set(&format!("signing:{}", policy.name), not_after);
                    tracing::info!(policy = %policy.name, "signing policy switched to the new document-signing key");
                }
            }
            ServiceRole::Ocsp => {
                self.diagnostics.replace(ServiceKey::Ocsp, certified.key.clone());
                self.ocsp.rotate(certified)?;
                self.certificates.set(role.name(), not_after);
            }
            ServiceRole::Issuing => {
                // The CA first (it checks the root signed the certificate), then the CA's own
                // OCSP answers until a responder certificate of the new CA is rolled over.
                let ca = CaId::Issuing(rolled.generation);
                self.diagnostics.replace(ServiceKey::IssuingCa, certified.key.clone());
                self.ca.add_generation(ca, certified.clone()).map_err(|e| e.to_string())?;
                self.ocsp.add_ca(ca, certified)?;
                self.certificates.set(role.name(), not_after);
            }
            ServiceRole::Log => {}
        }
        Ok(true)
    }
}

/// The key `trustd rollover` makes for generation `generation` of the role whose ceremony key is
/// `first`: in the same token, labelled after it (`trustd-tsa` → `trustd-tsa.2`).
pub fn successor(first: &KeyRef, generation: u32) -> KeyRef {
    let label = first.label.as_deref().map(|l| format!("{l}.{generation}"));
    KeyRef { token: first.token.clone(), label, id: None }
}

/// Which generation of the role whose ceremony key is `first` `key` is: 1 for `first` itself,
/// `n` for `successor(first, n)`.
pub fn generation_of(first: &KeyRef, key: &KeyRef) -> Option<u32> {
    if key == first {
        return Some(1);
    }
    let suffix = key.label.as_deref()?.strip_prefix(first.label.as_deref()?)?.strip_prefix('.')?;
    let n: u32 = suffix.parse().ok()?;
    (n >= 2 && successor(first, n) == *key).then_some(n)
}
