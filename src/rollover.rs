//! Key rollover without downtime (`trustd rollover --key tsa|document-signer|ocsp|log`): the
//! command makes the role's next key (and certificate) in the HSM (the ceremony's way,
//! [`ceremony::rollover`]) and records it in the store; every replica serving the database
//! follows the store and switches new operations to it within [`FOLLOW_ROLLOVERS`], while what
//! the old key signed stays valid: its certificate stays in the store (GetCertificate, OCSP,
//! Verify) and in the log, unrevoked until it expires. The log states each new key as a
//! ceremony event before the key signs anything; the log's own new key signs checkpoints
//! together with the one before it, so that auditors who pinned that one follow.

use crate::ca::{CertificateAuthority, ServiceCertificate};
use crate::ceremony::{self, CeremonyConfig, KeyInService};
use crate::hsm::{Hsm, HsmSigner, KeyRef};
use crate::keys::{CertifiedKey, SignatureScheme, SigningKey};
use crate::log::TransparencyLog;
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
}

impl std::fmt::Display for Rolled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} key, generation {}: {}; serving replicas sign with it within {} s",
            self.role,
            self.generation,
            self.step,
            FOLLOW_ROLLOVERS.as_secs()
        )
    }
}

/// Makes `role`'s next key and certificate in `hsm` and records it in `store` (a primary's):
/// from then on every replica signs with it. Run with the daemon's config; the daemon keeps
/// serving.
pub async fn roll_over(
    hsm: &Hsm,
    store: &dyn Store,
    ceremony: CeremonyConfig,
    role: ServiceRole,
) -> Result<Rolled, String> {
    let all = store.service_keys().await.map_err(|e| e.to_string())?;
    let current = newest(&all).into_iter().find(|k| k.role == role).cloned();
    let generation = current
        .as_ref()
        .map_or(Some(2), |k| k.generation.checked_add(1))
        .ok_or_else(|| format!("the {role} key has rolled over as often as can be counted"))?;
    let previous = current.map_or_else(|| ceremony.keys.service(role).clone(), |k| k.key);
    let h = hsm.clone();
    let (key, step) =
        tokio::task::spawn_blocking(move || ceremony::rollover(&h, &ceremony, role, &previous, generation))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    let rolled =
        RolledKey { role, generation, key, created_at: i64::try_from(crate::unix_time::now()).unwrap_or(i64::MAX) };
    store.record_service_key(&rolled).await.map_err(|e| e.to_string())?;
    tracing::warn!(%role, generation, key = %rolled.key, audit = true, "service key rolled over");
    Ok(Rolled { role, generation, step })
}

/// The newest generation of each role among `all`.
pub fn newest(all: &[RolledKey]) -> Vec<&RolledKey> {
    let mut newest: HashMap<ServiceRole, &RolledKey> = HashMap::new();
    for k in all {
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

/// The services whose keys roll over, and what a switch must keep true.
pub struct Follower {
    pub store: Arc<dyn Store>,
    pub hsm: Hsm,
    pub ca: Arc<CertificateAuthority>,
    /// The log, when enabled: a primary's replica states each new key in it, and every replica
    /// signs its checkpoints with the log's newest key.
    pub log: Option<Arc<TransparencyLog>>,
    pub tsa: Arc<TimeStampAuthority>,
    pub signing: Arc<SigningService>,
    pub ocsp: Arc<OcspResponder>,
    pub certificates: crate::health::ServiceCertificates,
    /// The generation each role signs with, and its key's public key.
    pub in_use: HashMap<ServiceRole, (u32, spki::SubjectPublicKeyInfoOwned)>,
    /// Whether this daemon records and logs (a replica on a read-only standby only switches).
    pub primary: bool,
}

impl Follower {
    /// Follows the store's rolled-over keys every [`FOLLOW_ROLLOVERS`] until the daemon stops.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(FOLLOW_ROLLOVERS);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match self.follow().await {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "a rolled-over service key cannot be taken into service yet; retrying");
                }
                Err(_) => {}
            }
        }
    }

    /// Switches every role whose newest key in the store is newer than the one in use.
    async fn follow(&mut self) -> Result<(), String> {
        let all = self.store.service_keys().await.map_err(|e| e.to_string())?;
        for rolled in newest(&all) {
            if self.in_use.get(&rolled.role).is_some_and(|(generation, _)| *generation >= rolled.generation) {
                continue;
            }
            self.switch(rolled).await?;
            tracing::warn!(role = %rolled.role, generation = rolled.generation, key = %rolled.key, audit = true,
                "signing with the rolled-over key");
        }
        Ok(())
    }

    /// Takes `rolled` into service for its role: its certificate recorded (and logged) first,
    /// so that nothing it signs names a certificate the CA does not know; then its key stated in
    /// the log; then new operations sign with it.
    async fn switch(&mut self, rolled: &RolledKey) -> Result<(), String> {
        let role = rolled.role;
        if role == ServiceRole::Log {
            let key = log_key(&self.hsm, &rolled.key).await?;
            let public_key = key.public_key().clone();
            if let Some(log) = &self.log {
                self.state_in_log(log, rolled, &public_key).await?;
                log.rotate(key).await.map_err(|e| format!("the log's checkpoints with {}: {e}", rolled.key))?;
            }
            self.in_use.insert(role, (rolled.generation, public_key));
            return Ok(());
        }
        let certified = certified_key(&self.hsm, &rolled.key, None).await?;
        let public_key = certified.cert.tbs_certificate.subject_public_key_info.clone();
        if self.primary {
            let service =
                ServiceCertificate { role: role.name(), cert: certified.cert.clone(), der: certified.der.clone() };
            self.ca.record_ceremony_certificates(vec![service]).await.map_err(|e| e.to_string())?;
            self.ca.log_unsequenced(crate::ca::REVOCATION_SETTLED).await.map_err(|e| e.to_string())?;
        }
        if let Some(log) = &self.log {
            self.state_in_log(log, rolled, &public_key).await?;
        }
        let not_after = certified.cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs();
        match role {
            ServiceRole::Tsa => {
                self.tsa.rotate(certified).map_err(|e| e.to_string())?;
                self.certificates.set(role.name(), not_after);
            }
            ServiceRole::DocumentSigner => {
                let previous = self.in_use.get(&role).map(|(_, k)| k.clone());
                let previous = previous.ok_or("the document signer's key in use is unknown")?;
                // The policies without a key of their own, each in its own signature scheme.
                for policy in self.signing.policies_signing_with(&previous) {
                    if policy.key.is_some() {
                        continue;
                    }
                    let key = certified_key(&self.hsm, &rolled.key, policy.signature).await?;
                    self.signing.rotate(&policy.name, key).map_err(|e| e.to_string())?;
                    self.certificates.set(&format!("signing:{}", policy.name), not_after);
                    tracing::info!(policy = %policy.name, "signing policy switched to the new document-signing key");
                }
            }
            ServiceRole::Ocsp => {
                self.ocsp.rotate(certified);
                self.certificates.set(role.name(), not_after);
            }
            ServiceRole::Log => {}
        }
        self.in_use.insert(role, (rolled.generation, public_key));
        Ok(())
    }

    /// States `rolled`'s key in the log (a ceremony_event, once per key), where this daemon
    /// writes: a replica on a read-only standby finds it there from the primary.
    async fn state_in_log(
        &self,
        log: &TransparencyLog,
        rolled: &RolledKey,
        public_key: &spki::SubjectPublicKeyInfoOwned,
    ) -> Result<(), String> {
        if !self.primary {
            return Ok(());
        }
        let stated =
            KeyInService { role: rolled.role.name().into(), key: rolled.key.clone(), public_key: public_key.clone() };
        ceremony::log_keys(self.store.as_ref(), log.sequencer(), vec![stated]).await.map(|_| ())
    }
}

/// The log's key `key` in `hsm` (Ed25519, no certificate).
pub async fn log_key(hsm: &Hsm, key: &KeyRef) -> Result<Arc<dyn SigningKey>, String> {
    let (hsm, k) = (hsm.clone(), key.clone());
    let signer = tokio::task::spawn_blocking(move || HsmSigner::new(&hsm, k, Some(SignatureScheme::Ed25519)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("log key {key}: {e}"))?;
    Ok(Arc::new(signer))
}

/// The key `key` names in `hsm` with the certificate stored beside it, signing with `scheme`.
async fn certified_key(hsm: &Hsm, key: &KeyRef, scheme: Option<SignatureScheme>) -> Result<CertifiedKey, String> {
    let (hsm, k) = (hsm.clone(), key.clone());
    tokio::task::spawn_blocking(move || hsm.certified_key(&k, scheme))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{key}: {e}"))
}
