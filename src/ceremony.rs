//! The key ceremony: CA and service keys generated inside the HSM, and their certificates,
//! stored in the token beside the keys; and the root's CRL. Idempotent: existing keys and
//! certificates are kept, only what is missing is created, and nothing is ever overwritten.
//!
//! The root key may live in a token of its own (`[keys] root` with `token=`), which only the
//! ceremony opens: `trustd serve` then cannot reach it (PKCS#11 logs in per token), and finds
//! the root's certificate, copied into the serving token, and its CRL, in the store. The
//! ceremony signs the root CRL, long-lived (`[crl] root_validity`), whenever there is none or
//! the newest nears its nextUpdate (`trustd init`), or on demand (`trustd ceremony root-crl`).

use crate::ca::cert::{self, CeremonyCert, CertSpec, Issuer, UrlContext};
use crate::ca::{subject_key_id, CaError, CaId, CrlSigner, ServiceCertificate};
use crate::hsm::{Hsm, HsmError, HsmSigner, KeyAlgorithm, KeyRef};
use crate::log::{CeremonyEvent, LogEntry, LoggedRecord, NewEntry, Sequencer, Sha256};
use crate::policy::AttrKind;
use crate::serial::Serial;
use crate::service_role::ServiceRole;
use crate::store::{Store, StoredCrl};
use const_oid::db::rfc5280;
use der::{Decode, Encode};
use sha2::Digest;
use std::collections::HashSet;
use std::time::Duration;
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::name::Name;
use x509_cert::Certificate;

/// Why the ceremony stopped. It changes nothing it has not finished: run it again once the cause
/// is mended.
#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    #[error(transparent)]
    Hsm(#[from] HsmError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Refused(String),
}

/// Where the CA and service keys live in the token (each certificate is stored beside its key,
/// under the same CKA_LABEL / CKA_ID). Configurable as RFC 7512 URIs; the defaults are labels.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaKeys {
    /// The root CA's key; with `token=` naming another token than `[hsm] token_label`, the
    /// offline root: only the ceremony opens that token.
    pub root: KeyRef,
    pub issuing: KeyRef,
    pub tsa: KeyRef,
    pub document_signer: KeyRef,
    pub ocsp: KeyRef,
    /// Signs the issued-certificate log's checkpoints; a bare key, no certificate.
    pub log: KeyRef,
    /// The TLS server key of the gRPC listener; its certificate is issued by the CA at each
    /// start and renewed while serving (`tls::certificate`), not made by the ceremony.
    pub tls: KeyRef,
}

impl CaKeys {
    /// The key the ceremony made for `role` (its first generation).
    pub fn service(&self, role: ServiceRole) -> &KeyRef {
        match role {
            ServiceRole::Issuing => &self.issuing,
            ServiceRole::Tsa => &self.tsa,
            ServiceRole::DocumentSigner => &self.document_signer,
            ServiceRole::Ocsp => &self.ocsp,
            ServiceRole::Log => &self.log,
        }
    }

    fn service_mut(&mut self, role: ServiceRole) -> &mut KeyRef {
        match role {
            ServiceRole::Issuing => &mut self.issuing,
            ServiceRole::Tsa => &mut self.tsa,
            ServiceRole::DocumentSigner => &mut self.document_signer,
            ServiceRole::Ocsp => &mut self.ocsp,
            ServiceRole::Log => &mut self.log,
        }
    }

    /// These keys with each rolled-over role's newest key in place of the ceremony's.
    pub fn rolled_over(&self, rolled: &[crate::store::RolledKey]) -> CaKeys {
        let mut keys = self.clone();
        for r in crate::rollover::newest(rolled) {
            *keys.service_mut(r.role) = r.key.clone();
        }
        keys
    }
}

impl Default for CaKeys {
    fn default() -> Self {
        CaKeys {
            root: KeyRef::label("trustd-root-ca"),
            issuing: KeyRef::label("trustd-issuing-ca"),
            tsa: KeyRef::label("trustd-tsa"),
            document_signer: KeyRef::label("trustd-document-signer"),
            ocsp: KeyRef::label("trustd-ocsp-signer"),
            log: KeyRef::label("trustd-log"),
            tls: KeyRef::label("trustd-tls"),
        }
    }
}

/// What the ceremony creates.
#[derive(Clone, Debug)]
pub struct CeremonyConfig {
    pub organization: String,
    pub country: Option<String>,
    pub root_algorithm: KeyAlgorithm,
    pub issuing_algorithm: KeyAlgorithm,
    pub service_algorithm: KeyAlgorithm,
    pub log_algorithm: KeyAlgorithm,
    pub root_validity: Duration,
    pub issuing_validity: Duration,
    pub service_validity: Duration,
    /// Base URL for the CRL and caIssuers URLs in CA and service certificates.
    pub public_url: String,
    pub keys: CaKeys,
    /// The signing policies' own keys whose certificates trustd's CA issues (`[certificate]`
    /// of a policy): generated here with the service algorithm, certified at serve.
    pub policy_keys: Vec<KeyRef>,
    /// Whether the log is on (`[log] enabled`): without it, no log key is made (a token
    /// without EdDSA serves every other service).
    pub log: bool,
}

/// One line of the ceremony's report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub key: String,
    pub key_generated: bool,
    /// `None` for keys without a certificate from the ceremony (the log key, the TLS key).
    pub certificate_created: Option<bool>,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: key {}, {}",
            self.key,
            if self.key_generated { "generated" } else { "kept" },
            match self.certificate_created {
                Some(true) => "certificate created",
                Some(false) => "certificate kept",
                None => "no certificate",
            }
        )
    }
}

fn subject(cfg: &CeremonyConfig, cn: &str) -> Vec<(AttrKind, String)> {
    let mut v = Vec::new();
    if let Some(c) = &cfg.country {
        v.push((AttrKind::Country, c.clone()));
    }
    v.push((AttrKind::Organization, cfg.organization.clone()));
    v.push((AttrKind::CommonName, cn.to_owned()));
    v
}

fn ensure_key(hsm: &Hsm, key: &KeyRef, alg: KeyAlgorithm) -> Result<bool, CeremonyError> {
    if hsm.has_private_key(key)? {
        return Ok(false);
    }
    hsm.generate_key(key, alg)?;
    Ok(true)
}

/// A service key certified by the issuing CA under its role's certificate: TSA (RFC 3161
/// §2.3), document signer, OCSP responder (RFC 6960 §4.2.2.2). Blocking.
fn ensure_service(
    hsm: &Hsm,
    cfg: &CeremonyConfig,
    role: ServiceRole,
    key: &KeyRef,
    (issuing, issuing_key): (&Certificate, &KeyRef),
    name: Option<Name>,
    steps: &mut Vec<Step>,
) -> Result<Certificate, CeremonyError> {
    let (cn, key_usage, eku, ocsp_no_check) = match role {
        ServiceRole::Tsa => (
            "trustd Time-Stamping Authority",
            KeyUsages::DigitalSignature.into(),
            Some(rfc5280::ID_KP_TIME_STAMPING),
            false,
        ),
        ServiceRole::DocumentSigner => {
            ("trustd Document Signer", KeyUsages::DigitalSignature | KeyUsages::NonRepudiation, None, false)
        }
        ServiceRole::Ocsp => {
            ("trustd OCSP Responder", KeyUsages::DigitalSignature.into(), Some(rfc5280::ID_KP_OCSP_SIGNING), true)
        }
        ServiceRole::Log | ServiceRole::Issuing => {
            return Err(CeremonyError::Refused(format!("the {role} key has no service certificate")))
        }
    };
    let ca = match crate::rollover::generation_of(&cfg.keys.issuing, issuing_key) {
        Some(generation) => CaId::Issuing(generation),
        None => return Err(CeremonyError::Refused(format!("{issuing_key} is not a key of the issuing CA"))),
    };
    let urls = UrlContext { base: cfg.public_url.clone(), ca };
    let kind = CeremonyCert::Service { urls: &urls, key_usage, eku, ocsp_no_check };
    let role = Role { key, cn, name, alg: cfg.service_algorithm, validity: cfg.service_validity };
    ensure(hsm, cfg, &role, Some((issuing, hsm, issuing_key)), kind, steps)
}

/// Rolls `role`'s key over to `generation` (`trustd rollover`): a new key in the token, named
/// after the ceremony's with the generation (`trustd-tsa` → `trustd-tsa.2`). A service key is
/// certified by `issuing` (the issuing CA's newest generation) as the ceremony's was, under the
/// subject name of `previous`'s certificate (a TSA or a signer keeps its name across keys); the
/// issuing CA's is certified by the root key in `root_token`, as the ceremony's was, under a
/// name of its own (`trustd Issuing CA G2`: two CAs never share a name, so no relying party
/// takes one's CRL for the other's); the log's next key is an Ed25519 key like the first,
/// without a certificate. A key and certificate of that name left by an interrupted rollover
/// are kept, as the ceremony keeps what exists. Returns the new key's name. Blocking.
pub fn rollover(
    hsm: &Hsm,
    root_token: &Hsm,
    cfg: &CeremonyConfig,
    role: ServiceRole,
    (previous, issuing): (&KeyRef, &KeyRef),
    generation: u32,
) -> Result<(KeyRef, Step), CeremonyError> {
    let first = cfg.keys.service(role);
    if first.label.is_none() {
        return Err(CeremonyError::Refused(format!(
            "the {role} key {first} has no label (object=) to name its successors after"
        )));
    }
    let key = crate::rollover::successor(first, generation);
    let mut steps = Vec::new();
    match role {
        ServiceRole::Log => {
            let key_generated = ensure_key(hsm, &key, cfg.log_algorithm)?;
            steps.push(Step { key: key.to_string(), key_generated, certificate_created: None });
        }
        ServiceRole::Issuing => {
            let (root, _) = root_token
                .stored_certificate(&cfg.keys.root)?
                .ok_or_else(|| HsmError::NoCertificate(cfg.keys.root.to_string()))?;
            let cn = format!("trustd Issuing CA G{generation}");
            let role =
                Role { key: &key, cn: &cn, name: None, alg: cfg.issuing_algorithm, validity: cfg.issuing_validity };
            let urls = UrlContext { base: cfg.public_url.clone(), ca: CaId::Root };
            let kind = CeremonyCert::Issuing { urls: &urls };
            ensure(hsm, cfg, &role, Some((&root, root_token, &cfg.keys.root)), kind, &mut steps)?;
        }
        _ => {
            let (issuing_cert, _) =
                hsm.stored_certificate(issuing)?.ok_or_else(|| HsmError::NoCertificate(issuing.to_string()))?;
            let (predecessor, _) =
                hsm.stored_certificate(previous)?.ok_or_else(|| HsmError::NoCertificate(previous.to_string()))?;
            let name = Some(predecessor.tbs_certificate.subject);
            ensure_service(hsm, cfg, role, &key, (&issuing_cert, issuing), name, &mut steps)?;
        }
    }
    let step = steps.pop().ok_or_else(|| CeremonyError::Refused("the rollover made no step".into()))?;
    Ok((key, step))
}

struct Role<'a> {
    key: &'a KeyRef,
    cn: &'a str,
    /// The subject name, when not the one `cn` and the config make.
    name: Option<Name>,
    alg: KeyAlgorithm,
    validity: Duration,
}

/// Runs the ceremony against `hsm`, the serving token, and `root`, the token of the root key
/// (the same token, or one that `trustd serve` never opens). Blocking.
pub fn run(hsm: &Hsm, root_token: &Hsm, cfg: &CeremonyConfig) -> Result<Vec<Step>, CeremonyError> {
    let keys = &cfg.keys;
    let mut steps = Vec::new();
    let root_role = Role {
        key: &keys.root,
        cn: "trustd Root CA",
        name: None,
        alg: cfg.root_algorithm,
        validity: cfg.root_validity,
    };
    let root = ensure(root_token, cfg, &root_role, None, CeremonyCert::Root, &mut steps)?;
    if root_token.token_label() != hsm.token_label() {
        copy_root_certificate(hsm, &keys.root, &root)?;
    }
    let root_urls = UrlContext { base: cfg.public_url.clone(), ca: CaId::Root };
    let issuing_role = Role {
        key: &keys.issuing,
        cn: "trustd Issuing CA",
        name: None,
        alg: cfg.issuing_algorithm,
        validity: cfg.issuing_validity,
    };
    let kind = CeremonyCert::Issuing { urls: &root_urls };
    let issuing = ensure(hsm, cfg, &issuing_role, Some((&root, root_token, &keys.root)), kind, &mut steps)?;

    for role in ServiceRole::CERTIFIED {
        ensure_service(hsm, cfg, role, keys.service(role), (&issuing, &keys.issuing), None, &mut steps)?;
    }
    if cfg.log {
        let key_generated = ensure_key(hsm, &keys.log, cfg.log_algorithm)?;
        steps.push(Step { key: keys.log.to_string(), key_generated, certificate_created: None });
    }
    let key_generated = ensure_key(hsm, &keys.tls, cfg.service_algorithm)?;
    steps.push(Step { key: keys.tls.to_string(), key_generated, certificate_created: None });
    for key in &cfg.policy_keys {
        let key_generated = ensure_key(hsm, key, cfg.service_algorithm)?;
        steps.push(Step { key: key.to_string(), key_generated, certificate_created: None });
    }
    Ok(steps)
}

fn ensure(
    hsm: &Hsm,
    cfg: &CeremonyConfig,
    role: &Role<'_>,
    issuer: Option<(&Certificate, &Hsm, &KeyRef)>,
    kind: CeremonyCert<'_>,
    steps: &mut Vec<Step>,
) -> Result<Certificate, CeremonyError> {
    let key_generated = ensure_key(hsm, role.key, role.alg)?;
    let step = |created| Step { key: role.key.to_string(), key_generated, certificate_created: Some(created) };
    if let Some((c, _)) = hsm.stored_certificate(role.key)? {
        steps.push(step(false));
        return Ok(c);
    }
    let public_key = hsm.public_key(role.key)?;
    let subject = match &role.name {
        Some(name) => name.clone(),
        None => cert::build_name(&subject(cfg, role.cn))?,
    };
    let (issuer_name, issuer_token, issuer_key, issuer_key_id) = match issuer {
        Some((c, token, key)) => (c.tbs_certificate.subject.clone(), token, key, subject_key_id(c)?),
        None => (subject.clone(), hsm, role.key, cert::key_identifier(&public_key)),
    };
    if let Some((c, ..)) = issuer {
        // A subordinate never outlives its issuer (RFC 5280 §6.1.3 checks every certificate's validity).
        let issuer_end = c.tbs_certificate.validity.not_after.to_unix_duration().as_secs();
        if crate::unix_time::now() + role.validity.as_secs() > issuer_end {
            return Err(CeremonyError::Refused(format!("{} would outlive its issuer; shorten its validity", role.key)));
        }
    }
    let signer = HsmSigner::new(issuer_token, issuer_key.clone(), None)?;
    let extensions = cert::ceremony_extensions(&kind, &public_key, &issuer_key_id)?;
    let start = crate::unix_time::now().saturating_sub(60);
    let spec = CertSpec {
        serial: Serial::random(),
        subject: subject.clone(),
        public_key,
        not_before: start,
        not_after: start + role.validity.as_secs(),
        extensions,
    };
    let issuer = Issuer { name: &issuer_name, key_id: &issuer_key_id, scheme: signer.scheme() };
    let tbs = cert::tbs(spec, &issuer)?;
    let encode = |e: der::Error| CaError::Internal(e.to_string());
    let tbs_der = tbs.to_der().map_err(encode)?;
    // The ceremony runs on a blocking thread of its own: it signs in the HSM directly.
    let signature = signer.sign(&tbs_der)?;
    let der = cert::signed_der(&tbs_der, signer.scheme(), &signature)?;
    let c = Certificate::from_der(&der).map_err(encode)?;
    hsm.store_certificate(role.key, &der, &subject.to_der().map_err(encode)?)?;
    tracing::info!(key = %role.key, "key ceremony: certificate created");
    steps.push(step(true));
    Ok(c)
}

/// The root key's name in the serving token, where its certificate is (beside the key, or
/// copied there from the root's own token).
pub fn root_certificate_ref(root: &KeyRef) -> KeyRef {
    KeyRef { token: None, ..root.clone() }
}

/// Copies the root's certificate into the serving token (a certificate object, no key), where
/// `trustd serve` finds it. Blocking.
fn copy_root_certificate(hsm: &Hsm, root_key: &KeyRef, root: &Certificate) -> Result<(), CeremonyError> {
    let here = root_certificate_ref(root_key);
    let encode = |e: der::Error| CaError::Internal(e.to_string());
    let der = root.to_der().map_err(encode)?;
    match hsm.find_certificate(&here)? {
        Some(copy) if copy == der => Ok(()),
        Some(_) => Err(CeremonyError::Refused(format!(
            "token '{}' holds another root certificate under {here}; remove it, or name the root key that certified it",
            hsm.token_label()
        ))),
        None => {
            hsm.store_certificate(&here, &der, &root.tbs_certificate.subject.to_der().map_err(encode)?)?;
            tracing::info!(token = hsm.token_label(), "key ceremony: root certificate copied into the serving token");
            Ok(())
        }
    }
}

/// What the ceremony did about the root's CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCrlStep {
    /// A new CRL was signed and recorded in the store.
    Signed { number: u64, next_update: i64 },
    /// The newest in the store was kept: its nextUpdate is not near.
    Kept { number: u64, next_update: i64 },
    /// The database is a read-only standby: nothing could be recorded there.
    NotChecked,
}

impl std::fmt::Display for RootCrlStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |t: &i64| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(*t).unwrap_or(0)),
            )
        };
        match self {
            RootCrlStep::Signed { number, next_update } => {
                write!(f, "root CRL {number}: signed, nextUpdate {}", at(next_update))
            }
            RootCrlStep::Kept { number, next_update } => {
                write!(f, "root CRL {number}: kept, nextUpdate {}", at(next_update))
            }
            RootCrlStep::NotChecked => f.write_str(
                "root CRL: not checked, the database is a read-only standby; run the ceremony against the primary",
            ),
        }
    }
}

/// Signs the root's next CRL (RFC 5280 §5) with the root key in `root_token`, valid `validity`,
/// and records it in the store, where every replica serving the CA adopts it within
/// [`crate::ca::FOLLOW_REVOCATIONS`]. With `renew_within`, only when the store has no root CRL
/// or its newest has less than that left before its nextUpdate.
pub async fn root_crl(
    root_token: &Hsm,
    root_key: &KeyRef,
    store: &dyn Store,
    validity: Duration,
    renew_within: Option<Duration>,
) -> Result<RootCrlStep, CeremonyError> {
    let now = crate::unix_time::now();
    if let Some(within) = renew_within {
        if let Some(StoredCrl { number, next_update, .. }) = store.newest_crl(CaId::Root, 0).await? {
            let left = next_update.saturating_sub(i64::try_from(now).unwrap_or(i64::MAX));
            if left > i64::try_from(within.as_secs()).unwrap_or(i64::MAX) {
                return Ok(RootCrlStep::Kept { number, next_update });
            }
        }
    }
    let (token, key) = (root_token.clone(), root_key.clone());
    let root = tokio::task::spawn_blocking(move || token.certified_key(&key, None))
        .await
        .map_err(|e| CeremonyError::Refused(format!("root key task: {e}")))??;
    let signer = CrlSigner::new(CaId::Root, &root.cert, root.key)?;
    let crl = signer.publish(store, now, validity).await?;
    Ok(RootCrlStep::Signed { number: crl.number, next_update: crl.next_update })
}

/// The service certificates the ceremony stored in the token, for
/// [`crate::ca::CertificateAuthority::record_ceremony_certificates`]. Blocking.
pub fn service_certificates(hsm: &Hsm, keys: &CaKeys) -> Result<Vec<ServiceCertificate>, HsmError> {
    let mut found = Vec::new();
    for role in ServiceRole::CERTIFIED {
        if let Some((cert, der)) = hsm.stored_certificate(keys.service(role))? {
            found.push(ServiceCertificate { role: role.name(), cert, der });
        }
    }
    Ok(found)
}

/// A key the daemon serves with, as its `ceremony_event` log entry states it.
#[derive(Clone, Debug)]
pub struct KeyInService {
    /// What it is for: `root`, `issuing`, `tsa`, …, or `signing:<policy>`.
    pub role: String,
    pub key: KeyRef,
    pub public_key: spki::SubjectPublicKeyInfoOwned,
}

/// Every key of `keys` and the signing policies' own (`(policy, key)`), with its public key
/// from the token; the root's from its certificate (`root`: its key may be in a token this
/// process does not open). Blocking.
pub fn keys_in_service(
    hsm: &Hsm,
    keys: &CaKeys,
    root: &Certificate,
    signing: &[(String, KeyRef)],
    log: bool,
) -> Result<Vec<KeyInService>, HsmError> {
    let root = KeyInService {
        role: "root".into(),
        key: keys.root.clone(),
        public_key: root.tbs_certificate.subject_public_key_info.clone(),
    };
    let all = ServiceRole::ALL
        .into_iter()
        .filter(|role| log || *role != ServiceRole::Log)
        .map(|role| (role.name(), keys.service(role)))
        .chain([("tls", &keys.tls)])
        .map(|(role, key)| (role.to_owned(), key))
        .chain(signing.iter().map(|(policy, key)| (format!("signing:{policy}"), key)));
    let others = all.map(|(role, key)| Ok(KeyInService { role, key: key.clone(), public_key: hsm.public_key(key)? }));
    std::iter::once(Ok(root)).chain(others).collect()
}

/// Appends a `ceremony_event` entry for each key the log does not name yet (once per public
/// key: a key shared by two roles is stated for the first); returns how many. Run at start-up,
/// before the daemon says it is ready, and by `trustd rollover` before it records the new key,
/// so the log names every key before anything it signs.
pub async fn log_keys(store: &dyn Store, log: &Sequencer, keys: Vec<KeyInService>) -> Result<usize, String> {
    // Replicas starting together may both find a key unstated; the store takes each key once
    // (ceremony_keys), so the later batch fails: look again, and state only what is still
    // missing.
    let mut tries = 0;
    loop {
        match log_missing_keys(store, log, keys.clone()).await {
            Err(e) if tries < 2 => {
                tries += 1;
                tracing::info!(error = %e, "stating the ceremony's keys again: another process stated some meanwhile");
            }
            done => return done,
        }
    }
}

async fn log_missing_keys(store: &dyn Store, log: &Sequencer, keys: Vec<KeyInService>) -> Result<usize, String> {
    let mut logged: HashSet<Sha256> =
        store.logged_ceremony_keys().await.map_err(|e| e.to_string())?.into_iter().collect();
    let mut entries = Vec::new();
    for k in keys {
        let public_key_der = k.public_key.to_der().map_err(|e| format!("{}: {e}", k.key))?;
        let spki: Sha256 = sha2::Sha256::digest(&public_key_der).into();
        if !logged.insert(spki) {
            continue;
        }
        let entry = LogEntry::CeremonyEvent(CeremonyEvent {
            at: crate::unix_time::now(),
            role: k.role,
            key: k.key.to_string(),
            public_key_der,
        });
        entries.push(NewEntry {
            entry: entry.encode().map_err(|e| e.to_string())?,
            record: Some(LoggedRecord::CeremonyKey(spki)),
        });
    }
    Ok(log.append_all(entries).await.map_err(|e| e.to_string())?.len())
}
