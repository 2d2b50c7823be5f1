//! Wiring: open the HSM, the store and the policies, and serve gRPC until SIGTERM/SIGINT.
//! Also the `dev` bootstrap (a SoftHSM token and SQLite under a data dir) and `init`.

use crate::access::watch::PolicyFile;
use crate::access::{AccessPolicy, PolicyInForce};
use crate::api::access::AccessLayer;
use crate::api::grpc::{CaService, DiagnosticsService, LogService, SigningService as GrpcSigning, TsaService};
use crate::api::http::HttpState;
use crate::api::limits::{LimitLayer, RequestLimits};
use crate::api::pb;
use crate::api::standby::ReadOnlyLayer;
use crate::ca::{CaId, CertificateAuthority, CrlSchedule, REVOCATION_SETTLED};
use crate::ceremony::{self, CaKeys};
use crate::clock::{Clock, ClockCheck, SystemClock};
use crate::config::{
    CeremonySection, Config, CrlSection, HsmSection, OcspSection, ServerSection, StoreSection, TsaSection,
};
use crate::credentials;
use crate::diagnostics::{Diagnostics, ServiceKey};
use crate::health::ServiceCertificates;
use crate::hsm::{Hsm, HsmConfig, HsmSigner, KeyRef, Pin};
use crate::keys::{CertifiedKey, SignatureScheme, SigningKey};
use crate::log::{CheckpointSigner, LogStore, Sequencer, TransparencyLog};
use crate::ocsp::OcspResponder;
use crate::policy::signing::PolicyCertificate;
use crate::policy::{Policies, SigningPolicy};
use crate::records::{self, RecordWriter};
use crate::service_role::ServiceRole;
use crate::signing::{SigningService, Validation};
use crate::store::{Role, SignatureWriter, Store, StoreError, TimestampWriter};
use crate::tls::{self, ServerCertificate};
use crate::tsa::TimeStampAuthority;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A failure to start, with a message an operator can act on.
pub type StartError = String;

/// Runs blocking work (PKCS#11 calls, a ceremony step) on tokio's blocking pool, so that the
/// runtime's workers keep serving; its error, or the task's panic, as text.
pub(crate) async fn blocking<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, String>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
}

/// SoftHSM2's module on Debian; `TRUSTD_PKCS11_MODULE` overrides it for `dev`.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Sessions for the embedded SoftHSM token: twice the cores. SoftHSM signs on the CPU, and each
/// session has a worker thread (`Hsm::run`): fewer leave a core idle while a thread waits in
/// SoftHSM's locks and file reads; more only preempt each other mid-signature, and the job a
/// preempted thread holds waits behind all the others (measured on 2 cores, TSA at c=64:
/// 8 sessions p99 24-29 ms, 4 sessions 17-22 ms at a higher rate).
fn soft_token_sessions() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Token label `trustd dev` creates.
pub const DEV_TOKEN_LABEL: &str = "trustd-dev";

fn write_secret(path: &Path) -> Result<(), StartError> {
    use std::os::unix::fs::OpenOptionsExt;
    let pin = hex::encode(rand::random::<[u8; 12]>());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(pin.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Prepares a development data dir: SoftHSM config and token directory, PINs in 0600 files,
/// the token itself, and the default policies; the config serves on `server`'s listeners (with
/// the operator credential under the data dir) and runs the TSA as `tsa` says. Must run before
/// any thread starts, because it sets `SOFTHSM2_CONF` for this process.
pub fn prepare_dev(data_dir: &Path, server: ServerSection, tsa: TsaSection) -> Result<Config, StartError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(data_dir.join("tokens")).map_err(|e| io(data_dir, e))?;
    let data_dir = data_dir.canonicalize().map_err(|e| io(data_dir, e))?;
    // The PINs, the token and the operator's key are in here: for its owner only.
    for d in [data_dir.clone(), data_dir.join("tokens")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).map_err(|e| io(&d, e))?;
    }
    let conf = data_dir.join("softhsm2.conf");
    if !conf.exists() {
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            data_dir.join("tokens").display()
        );
        std::fs::write(&conf, text).map_err(|e| io(&conf, e))?;
    }
    // SoftHSM reads its config path from the environment when the module initialises.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    for name in ["hsm-pin", "hsm-so-pin"] {
        let p = data_dir.join(name);
        if !p.exists() {
            write_secret(&p)?;
        }
    }
    let read_pin = |name: &str| -> Result<Pin, StartError> {
        let p = data_dir.join(name);
        std::fs::read_to_string(&p).map(Pin::new).map_err(|e| io(&p, e))
    };
    let module = std::env::var_os("TRUSTD_PKCS11_MODULE").map_or_else(|| PathBuf::from(SOFTHSM_MODULE), PathBuf::from);
    Hsm::init_token(&module, DEV_TOKEN_LABEL, &read_pin("hsm-so-pin")?, &read_pin("hsm-pin")?)
        .map_err(|e| format!("creating the SoftHSM token: {e}"))?;
    let policies = data_dir.join("policies");
    Policies::install_defaults(&policies).map_err(|e| io(&policies, e))?;
    let cfg = Config {
        hsm: HsmSection {
            module,
            token_label: DEV_TOKEN_LABEL.into(),
            pin_env: None,
            pin_file: Some(data_dir.join("hsm-pin")),
            max_sessions: soft_token_sessions(),
            session_key_copies: true,
            pin_from_env: Default::default(),
        },
        store: StoreSection::sqlite(data_dir.join("trustd.db")),
        server: ServerSection { operator_credentials: Some(data_dir.join(credentials::CREDENTIALS_DIR)), ..server },
        policies,
        ceremony: CeremonySection::default(),
        keys: CaKeys::default(),
        tsa,
        crl: CrlSection::default(),
        ocsp: OcspSection::default(),
        signing: Default::default(),
        log: Default::default(),
        limits: Default::default(),
    };
    cfg.validate()?;
    Ok(cfg)
}

async fn open_hsm(cfg: &Config) -> Result<Hsm, StartError> {
    open_token(cfg.hsm_config(), cfg.read_pin()?).await
}

async fn open_token(hcfg: HsmConfig, pin: Pin) -> Result<Hsm, StartError> {
    blocking(move || Hsm::open(&hcfg, pin)).await
}

/// The token of the root key: its own (the offline root, `[keys] root` with `token=`), opened
/// with the root PIN, or `serving` itself.
async fn open_root_token(cfg: &Config, serving: Option<&Hsm>) -> Result<Hsm, StartError> {
    let Some(label) = cfg.root_token() else {
        return match serving {
            Some(hsm) => Ok(hsm.clone()),
            None => open_hsm(cfg).await,
        };
    };
    let hcfg = HsmConfig { token_label: label.to_owned(), max_sessions: 1, ..cfg.hsm_config() };
    open_token(hcfg, cfg.read_root_pin()?).await.map_err(|e| format!("the root key's token: {e}"))
}

/// What the key ceremony did: each key, and the root's CRL.
pub struct Ceremony {
    pub steps: Vec<ceremony::Step>,
    pub root_crl: ceremony::RootCrlStep,
}

/// The key ceremony against the configured HSM (`trustd init`, and every `trustd dev`): the
/// keys and certificates that are missing, and a root CRL when the store has none or its
/// newest is within `[server] expiry_warning` of its nextUpdate.
pub async fn init(cfg: &Config) -> Result<Ceremony, StartError> {
    let policies = Policies::load(&cfg.policies).map_err(|e| e.to_string())?;
    let hsm = open_hsm(cfg).await?;
    let root_token = open_root_token(cfg, Some(&hsm)).await?;
    let mut ccfg = cfg.ceremony_config();
    ccfg.policy_keys = policies.signing().filter(|p| p.certificate.is_some()).filter_map(|p| p.key.clone()).collect();
    let (h, r) = (hsm.clone(), root_token.clone());
    let steps = blocking(move || ceremony::run(&h, &r, &ccfg)).await?;
    let root_crl = root_crl(cfg, &root_token, Some(cfg.server.expiry_warning)).await?;
    Ok(Ceremony { steps, root_crl })
}

/// `trustd ceremony root-crl`: the root's next CRL, signed now with the root key (its token
/// opened for this alone) and recorded in the store, where the running replicas adopt it.
pub async fn sign_root_crl(cfg: &Config) -> Result<ceremony::RootCrlStep, StartError> {
    let root_token = open_root_token(cfg, None).await?;
    match root_crl(cfg, &root_token, None).await? {
        ceremony::RootCrlStep::NotChecked => {
            Err("the database is a read-only standby: sign the root CRL against the primary".into())
        }
        step => Ok(step),
    }
}

/// `trustd rollover`: `role`'s next key and certificate, made in the HSM, the certificate
/// recorded (and logged) and the key stated in the log, then the key recorded as in service,
/// which every serving replica follows within [`crate::rollover::FOLLOW_ROLLOVERS`].
pub async fn rollover(cfg: &Config, role: ServiceRole) -> Result<crate::rollover::Rolled, StartError> {
    let policies = Arc::new(Policies::load(&cfg.policies).map_err(|e| e.to_string())?);
    let database = cfg.store.database()?;
    let store = database.open().await.map_err(|e| format!("{database}: {e}"))?;
    if store.ping().await.map_err(|e| format!("{database}: {e}"))? == Role::Standby {
        return Err("the database is a read-only standby: roll the key over against the primary".into());
    }
    let hsm = open_hsm(cfg).await?;
    // Only the issuing CA's next key is certified by the root.
    let root_token = match role {
        ServiceRole::Issuing => open_root_token(cfg, Some(&hsm)).await?,
        _ => hsm.clone(),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock(cfg.tsa.clock_check));
    let rolled = store.service_keys().await.map_err(|e| format!("{database}: the rolled-over keys: {e}"))?;
    let (ca, _, _) = issuing_ca(cfg, &hsm, store.clone(), policies, clock, &rolled).await?;
    // This process appends to the log beside the serving daemons' sequencers: the tree head's
    // compare-and-set orders them (log/sequencer.rs).
    let log = match cfg.log.enabled {
        true => Some(Sequencer::start(store.clone()).await.map_err(|e| format!("log: {e}"))?),
        false => None,
    };
    let ca = match &log {
        Some(seq) => ca.with_log(seq.clone()),
        None => ca,
    };
    crate::rollover::roll_over(&hsm, &root_token, store.as_ref(), &ca, log.as_ref(), cfg.ceremony_config(), role).await
}

/// Remote-signing credentials' keys (CSC API) in the serving token, generated with the service
/// algorithm and labelled after the credential.
struct CredentialKeys {
    hsm: Hsm,
    algorithm: crate::hsm::KeyAlgorithm,
}

#[async_trait::async_trait]
impl crate::csc::CredentialKeys for CredentialKeys {
    async fn generate(&self, label: &str) -> Result<(KeyRef, Arc<dyn crate::keys::SigningKey>), String> {
        let key = KeyRef::label(label);
        let (hsm, k, algorithm) = (self.hsm.clone(), key.clone(), self.algorithm);
        blocking(move || hsm.generate_key(&k, algorithm)).await?;
        let signer = hsm_signer(&self.hsm, &key, None, "credential key").await?;
        Ok((key, signer))
    }

    async fn destroy(&self, key: &KeyRef) -> Result<(), String> {
        let (hsm, key) = (self.hsm.clone(), key.clone());
        blocking(move || hsm.destroy_key(&key)).await.map(drop)
    }

    async fn open(&self, key: &KeyRef, certificate_der: &[u8]) -> Result<CertifiedKey, String> {
        let signer = hsm_signer(&self.hsm, key, None, "credential key").await?;
        CertifiedKey::new(signer, certificate_der.to_vec()).map_err(|e| e.to_string())
    }
}

/// The issuing CA as `serve` runs it (its key in the HSM, the root's certificate from the
/// token), every generation of it (the key ceremony's and those `rolled` over), with the newest
/// generation's certified key and the root's certificate.
async fn issuing_ca(
    cfg: &Config,
    hsm: &Hsm,
    store: Arc<dyn Store>,
    policies: Arc<Policies>,
    clock: Arc<dyn Clock>,
    rolled: &[crate::store::RolledKey],
) -> Result<(CertificateAuthority, CertifiedKey, x509_cert::Certificate), StartError> {
    let mut issuing = certified_key(hsm, &cfg.keys.issuing, None).await?;
    let (root, root_der) = root_certificate(hsm, &cfg.keys.root).await?;
    let ca = CertificateAuthority::new(
        issuing.clone(),
        root_der,
        policies,
        store,
        &cfg.server.public_url,
        CrlSchedule { validity: cfg.crl.validity, refresh: cfg.crl.refresh },
        clock,
    )
    .map_err(|e| e.to_string())?;
    let mut generations: Vec<_> =
        rolled.iter().filter(|k| k.role == ServiceRole::Issuing && k.in_service_at.is_some()).collect();
    generations.sort_by_key(|k| k.generation);
    for k in generations {
        issuing = certified_key(hsm, &k.key, None).await?;
        ca.add_generation(CaId::Issuing(k.generation), issuing.clone())
            .map_err(|e| format!("the issuing CA's generation {}: {e}", k.generation))?;
    }
    Ok((ca, issuing, root))
}

async fn root_crl(
    cfg: &Config,
    root_token: &Hsm,
    renew_within: Option<Duration>,
) -> Result<ceremony::RootCrlStep, StartError> {
    let database = cfg.store.database()?;
    let store = database.open().await.map_err(|e| format!("{database}: {e}"))?;
    if store.ping().await.map_err(|e| format!("{database}: {e}"))? == Role::Standby {
        return Ok(ceremony::RootCrlStep::NotChecked);
    }
    ceremony::root_crl(root_token, &cfg.keys.root, store.as_ref(), cfg.crl.root_validity, renew_within)
        .await
        .map_err(|e| format!("root CRL: {e}"))
}

/// Starts the issued-certificate log: `key` (the Ed25519 key `[keys] log` in the HSM, or its
/// newest rolled-over successor) signs its checkpoints, named by the origin, cosigned by
/// `previous`, the key it rolled over from.
async fn start_log(
    cfg: &Config,
    key: Arc<dyn SigningKey>,
    previous: Option<Arc<dyn SigningKey>>,
    store: Arc<dyn LogStore>,
) -> Result<Arc<TransparencyLog>, StartError> {
    let origin = cfg.log_origin();
    let mut signer = CheckpointSigner::new(&origin, key).map_err(|e| format!("log key: {e}"))?;
    if let Some(previous) = previous {
        signer = signer.after(&CheckpointSigner::new(&origin, previous).map_err(|e| format!("previous log key: {e}"))?);
    }
    let vkey = signer.public_key().vkey();
    let log = TransparencyLog::start(&origin, signer, store).await.map_err(|e| format!("log: {e}"))?;
    tracing::info!(%origin, %vkey, size = %log.checkpoint().checkpoint.size(), "issued-certificate log started");
    Ok(log)
}

/// The bare key `key` (no certificate) of the HSM, as a signing key.
pub(crate) async fn hsm_signer(
    hsm: &Hsm,
    key: &KeyRef,
    scheme: Option<SignatureScheme>,
    what: &str,
) -> Result<Arc<dyn SigningKey>, StartError> {
    let (hsm, key, what) = (hsm.clone(), key.clone(), what.to_owned());
    let signer =
        blocking(move || HsmSigner::new(&hsm, key.clone(), scheme).map_err(|e| format!("{what} {key}: {e}"))).await?;
    Ok(Arc::new(signer))
}

/// Makes sure a signing policy's own key has the certificate its `[certificate]` describes:
/// when the token holds none beside the key, the CA issues one for it (the key signs the CSR
/// in the HSM, so it may be certified under a QcSSCD profile) and it is stored in the token.
/// A replica on a read-only standby cannot issue: it needs the certificate there already.
async fn policy_certificate(
    hsm: &Hsm,
    ca: &CertificateAuthority,
    policy: &SigningPolicy,
    key: &KeyRef,
    c: &PolicyCertificate,
    serving: Role,
) -> Result<(), StartError> {
    let (h, k) = (hsm.clone(), key.clone());
    if blocking(move || h.stored_certificate(&k)).await?.is_some() {
        return Ok(());
    }
    if serving == Role::Standby {
        return Err(format!(
            "its key {key} has no certificate in the token, and a replica on a read-only standby cannot issue \
             one: start a trustd on the primary first"
        ));
    }
    let signer = hsm_signer(hsm, key, policy.signature, "signing key").await?;
    let csr = crate::ca::csr::build(signer.as_ref(), &c.subject, &[]).await.map_err(|e| e.to_string())?;
    let request = crate::ca::IssueRequest {
        profile: c.profile.clone(),
        csr,
        validity: None,
        requester: tls::certificate::REQUESTER.into(),
        scope: crate::ca::NameScope::Any,
    };
    let issued = ca
        .issue_for_hsm_key(request)
        .await
        .map_err(|e| format!("its certificate under profile '{}': {e}", c.profile))?;
    let cert = <x509_cert::Certificate as der::Decode>::from_der(&issued.cert_der).map_err(|e| e.to_string())?;
    let subject = der::Encode::to_der(&cert.tbs_certificate.subject).map_err(|e| e.to_string())?;
    let (h, k, der) = (hsm.clone(), key.clone(), issued.cert_der);
    blocking(move || h.store_certificate(&k, &der, &subject))
        .await
        .map_err(|e| format!("storing its certificate beside {key}: {e}"))?;
    tracing::info!(policy = %policy.name, serial = %issued.serial, profile = %c.profile, audit = true,
        "signing policy key certified by the CA and its certificate stored in the token");
    Ok(())
}

/// The access policy file, `access.toml` in the policies directory, checked against the
/// profiles and signing policies it names.
fn access_file(dir: &Path, policies: &Policies) -> PolicyFile {
    PolicyFile {
        path: dir.join("access.toml"),
        profiles: policies.profile_names().map(str::to_owned).collect(),
        signing_policies: policies.signing().map(|p| p.name.clone()).collect(),
    }
}

/// The gRPC and HTTPS listeners' TLS set-up: one server certificate for the HSM's TLS key,
/// issued now and renewed while serving (on a read-only standby, the newest a replica on the
/// primary issued, followed as they renew it); client certificates from the issuing CA.
async fn tls_configs(
    cfg: &Config,
    hsm: &Hsm,
    ca: &Arc<CertificateAuthority>,
    serving: Role,
) -> Result<(Arc<rustls::ServerConfig>, Arc<rustls::ServerConfig>), StartError> {
    let mut key = hsm_signer(hsm, &cfg.keys.tls, None, "TLS key").await?;
    // TLS 1.3 takes RSA handshake signatures in PSS only (RFC 8446 §4.2.3).
    if matches!(
        key.scheme(),
        SignatureScheme::RsaPkcs1Sha256 | SignatureScheme::RsaPkcs1Sha384 | SignatureScheme::RsaPkcs1Sha512
    ) {
        key = hsm_signer(hsm, &cfg.keys.tls, Some(SignatureScheme::RsaPssSha256), "TLS key").await?;
    }
    let names = cfg.tls_names()?;
    let standby = serving == Role::Standby;
    let issued = match standby {
        false => tls::certificate::issue(ca, key.clone(), &names).await.map_err(|e| e.to_string())?,
        true => {
            tls::certificate::stored(ca, key.clone(), &names).await.map_err(|e| e.to_string())?.ok_or_else(|| {
                let names: Vec<String> = names.iter().map(ToString::to_string).collect();
                format!(
                "the read-only standby holds no valid TLS server certificate of the TLS key {} naming {}: a trustd \
                 on the primary with the same [keys] tls and [server] tls_names issues it; start one first",
                cfg.keys.tls,
                names.join(", ")
            )
            })?
        }
    };
    let current = ServerCertificate::new(issued.key);
    tokio::spawn(tls::certificate::keep_renewed(ca.clone(), key, names, current.clone(), issued.renew_at, standby));
    let config = |listener| tls::server_config(current.clone(), ca.certificates(), listener).map_err(|e| e.to_string());
    Ok((config(tls::Listener::Grpc)?, config(tls::Listener::Https)?))
}

/// Every key the daemon serves with, and its public key from the token.
async fn keys_in_service(
    keys: &CaKeys,
    hsm: &Hsm,
    root: &x509_cert::Certificate,
    policies: &Policies,
    log: bool,
) -> Result<Vec<ceremony::KeyInService>, StartError> {
    let (hsm, keys, root) = (hsm.clone(), keys.clone(), root.clone());
    let signing: Vec<(String, KeyRef)> =
        policies.signing().filter_map(|p| Some((p.name.clone(), p.key.clone()?))).collect();
    blocking(move || ceremony::keys_in_service(&hsm, &keys, &root, &signing, log))
        .await
        .map_err(|e| format!("the keys in service: {e}"))
}

/// What the log states at each start, before the daemon says it is ready: the keys it serves
/// with (each once), the access policy in force, and the time-stamps and signatures made while
/// the log was off.
async fn log_at_start(
    store: &dyn Store,
    seq: &Sequencer,
    in_service: Vec<ceremony::KeyInService>,
    access_file: &PolicyFile,
    access_text: &str,
) -> Result<(), StartError> {
    let n =
        ceremony::log_keys(store, seq, in_service).await.map_err(|e| format!("log: the key ceremony's keys: {e}"))?;
    if n > 0 {
        tracing::info!(count = n, audit = true, "keys of the key ceremony stated in the log");
    }
    access_file.log_change(seq, access_text).await.map_err(|e| format!("log: the access policy in force: {e}"))?;
    let n = records::log_unsequenced(store, seq)
        .await
        .map_err(|e| format!("log: appending time-stamps and signatures made while it was off: {e}"))?;
    if n > 0 {
        tracing::info!(count = n, "time-stamps and signatures made while the log was off appended to it");
    }
    Ok(())
}

/// The bootstrap operator credential in `[server] operator_credentials`, when configured; warns
/// when the access policy would not serve it. A replica on a read-only standby cannot issue one:
/// it warns when the one there is missing or due for renewal.
async fn operator_credentials(
    cfg: &Config,
    ca: &CertificateAuthority,
    access: &AccessPolicy,
    serving: Role,
) -> Result<(), StartError> {
    let Some(dir) = &cfg.server.operator_credentials else { return Ok(()) };
    if serving == Role::Standby {
        if !credentials::operator_is_fresh(dir) {
            tracing::warn!(
                dir = %dir.display(),
                "the operator credential is missing or due for renewal, and a replica on a read-only standby \
                 cannot issue one: a trustd on the primary does"
            );
        }
        return Ok(());
    }
    let identity = format!("spiffe://{}/{}", access.trust_domain(), credentials::OPERATOR);
    if let Some(der) = credentials::ensure_operator(ca, dir, &identity).await? {
        if let Err(e) = access.authorize(Some(&der), "/trust.v1.CertificateAuthority/IssueCertificate") {
            tracing::warn!(reason = %e, "the operator credential will be refused: see access.toml's client 'operator'");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// How often records the log missed while serving are appended to it: each run is two indexed
/// queries that find nothing, unless sequencing failed.
const RECONCILE_EVERY: Duration = Duration::from_secs(30);

/// The least time a pending issuance is left before it counts as abandoned: far longer than any
/// signature and log batch take, so that no process abandons an issuance another replica on
/// the same database (or a request still within its deadline) is completing.
const PENDING_GRACE: Duration = Duration::from_secs(600);

/// Marks abandoned what a stopped process left pending for longer than `grace`: at start, and
/// every [`RECONCILE_EVERY`] while serving (a replica that died leaves its issuances in flight
/// pending; this process's own, after a crash, become old enough meanwhile).
async fn abandon_stale_pending(store: &dyn Store, grace: Duration) -> Result<(), StoreError> {
    let before = crate::unix_time::now().saturating_sub(grace.as_secs()) as i64;
    let abandoned = store.abandon_pending_created_before(before).await?;
    if abandoned > 0 {
        tracing::warn!(
            count = abandoned,
            audit = true,
            "issuances recorded but not completed by a process that stopped marked abandoned"
        );
    }
    Ok(())
}

/// How often a service certificate near its notAfter is logged again.
const EXPIRY_WARNING_EVERY: Duration = Duration::from_secs(3600);

/// Logs every service certificate within `warning` of its notAfter (or past it), and the root
/// CRL within `warning` of its nextUpdate, at start and every [`EXPIRY_WARNING_EVERY`], until
/// the daemon stops.
async fn warn_of_expiry(certificates: ServiceCertificates, ca: Arc<CertificateAuthority>, warning: Duration) {
    let mut tick = tokio::time::interval(EXPIRY_WARNING_EVERY);
    loop {
        tick.tick().await;
        let now = crate::unix_time::now();
        for e in crate::health::expiring(&certificates.snapshot(), now, warning) {
            tracing::warn!(role = e.role, not_after = e.not_after, "{e}; roll the key over or renew the certificate");
        }
        if let Some(due) = crate::health::root_crl_due(ca.crl_times(CaId::Root), now, warning) {
            tracing::warn!(next_update = due.next_update, "{due}");
        }
    }
}

/// How long an HTTP/2 PING may go unanswered before the connection is dropped as dead.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves until SIGTERM or SIGINT. Prints one line starting `ready` once it accepts requests.
pub async fn serve(cfg: Config, data_dir: Option<&Path>) -> Result<(), StartError> {
    let policies = Arc::new(Policies::load(&cfg.policies).map_err(|e| e.to_string())?);
    let access_file = access_file(&cfg.policies, &policies);
    let (access, access_text) = access_file.load()?;
    let hsm = open_hsm(&cfg).await?;
    let sessions = hsm.clone();
    crate::metrics::global().read_hsm_sessions_with(Box::new(move || {
        let (open, in_use) = sessions.sessions();
        (open, in_use, sessions.max_sessions())
    }));
    let database = cfg.store.database()?;
    let store = database.open().await.map_err(|e| format!("{database}: {e}"))?;
    // A hot standby takes reads only: this daemon then serves what needs no write (see
    // api/standby.rs) and skips every write of a start, which the primary's replicas make.
    let serving = store.ping().await.map_err(|e| format!("{database}: {e}"))?;
    let primary = serving == Role::Primary;
    if !primary {
        tracing::warn!(%database, "the database is a read-only standby: serving reads; writes are refused");
    }
    // The root's CRL is the key ceremony's (the root key is not this process's to use): without
    // one, relying parties that check the whole chain would fail every certificate.
    if store.newest_crl(CaId::Root, 0).await.map_err(|e| format!("{database}: {e}"))?.is_none() {
        return Err("no root CRL in the store: the key ceremony signs it (`trustd init` when there is none, or \
                    `trustd ceremony root-crl`)"
            .into());
    }
    let pending_grace = (2 * cfg.limits.request_deadline).max(PENDING_GRACE);
    if primary {
        abandon_stale_pending(store.as_ref(), pending_grace).await.map_err(|e| e.to_string())?;
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock(cfg.tsa.clock_check));
    // The keys the services sign with, as operators measure them (trust.v1.Diagnostics), and
    // each service certificate's notAfter by role, for /metrics.
    let diagnostics = Arc::new(Diagnostics::new(hsm.max_sessions(), database.sqlite_directory()));
    let expiry = ServiceCertificates::default();
    // The keys rolled over (`trustd rollover`) serve in place of the ceremony's.
    let rolled = store.service_keys().await.map_err(|e| format!("{database}: the rolled-over keys: {e}"))?;
    let (ca, issuing, root) = issuing_ca(&cfg, &hsm, store.clone(), policies.clone(), clock.clone(), &rolled).await?;
    diagnostics.replace(ServiceKey::IssuingCa, issuing.key.clone());
    expiry.set("root", cert_not_after(&root));
    expiry.set("issuing", not_after(&issuing));
    let keys = cfg.keys.rolled_over(&rolled);
    // Each role's generation in service: 1 (the ceremony's) where none rolled over.
    let mut in_use: HashMap<ServiceRole, u32> = ServiceRole::ALL.into_iter().map(|role| (role, 1)).collect();
    in_use.extend(crate::rollover::newest(&rolled).into_iter().map(|r| (r.role, r.generation)));
    let log = if cfg.log.enabled {
        let key = hsm_signer(&hsm, &keys.log, Some(SignatureScheme::Ed25519), "log key").await?;
        diagnostics.replace(ServiceKey::Log, key.clone());
        let previous = match crate::rollover::previous(&rolled, ServiceRole::Log, &cfg.keys.log) {
            Some(k) => Some(hsm_signer(&hsm, &k, Some(SignatureScheme::Ed25519), "previous log key").await?),
            None => None,
        };
        Some(start_log(&cfg, key, previous, store.clone()).await?)
    } else {
        tracing::warn!("the issued-certificate log is disabled ([log] enabled = false): issuance is not logged");
        None
    };
    let ca = match &log {
        Some(l) => ca.with_log(l.sequencer().clone()),
        None => ca,
    };

    // Before anything answers OCSP or validates signatures: the service certificates must be
    // known like every certificate of the CA.
    let ceremony_certs = {
        let (hsm, keys) = (hsm.clone(), keys.clone());
        blocking(move || ceremony::service_certificates(&hsm, &keys))
            .await
            .map_err(|e| format!("ceremony certificates: {e}"))?
    };
    let in_service = keys_in_service(&keys, &hsm, &root, &policies, log.is_some()).await?;
    let sequencer = log.as_ref().map(|l| l.sequencer());
    if primary {
        ca.record_ceremony_certificates(ceremony_certs).await.map_err(|e| format!("ceremony certificates: {e}"))?;
        // Every certificate the store knows as issued is in the log before the daemon says it
        // is ready: those of a crash between store and log, and the ceremony's just recorded.
        ca.log_unsequenced(REVOCATION_SETTLED).await.map_err(|e| format!("log: appending unlogged records: {e}"))?;
        if let Some(seq) = sequencer {
            log_at_start(store.as_ref(), seq, in_service.clone(), &access_file, &access_text).await?;
        }
    }
    let ca = Arc::new(ca);
    // The certificates the daemon gives itself are issued (and logged) before the first
    // checkpoint, so that it covers everything issued at start.
    let (tls_config, https_config) = tls_configs(&cfg, &hsm, &ca, serving).await?;
    operator_credentials(&cfg, &ca, &access, serving).await?;
    // One replica of a database publishes CRLs on their schedule and signs the log's
    // checkpoints at a time: the holder of the publishing lease (a standby never holds it).
    let publisher = crate::lease::Lease::new(crate::lease::PUBLISHER, store.clone(), clock.clone());
    if primary {
        if let Err(e) = publisher.renew().await {
            tracing::warn!(error = %e, "the publishing lease cannot be taken yet; retrying");
        }
        tokio::spawn(publisher.clone().keep());
    }
    let publishes = |lease: &Arc<crate::lease::Lease>| {
        let lease = lease.clone();
        move || lease.held()
    };
    if let Some(l) = &log {
        l.publish().await.map_err(|e| format!("log: first checkpoint: {e}"))?;
        tokio::spawn(l.clone().run_checkpoints(publishes(&publisher)));
    }

    let tsa_key = certified_key(&hsm, &keys.tsa, None).await?;
    diagnostics.replace(ServiceKey::Tsa, tsa_key.key.clone());
    expiry.set("tsa", not_after(&tsa_key));
    let tsa = TimeStampAuthority::new(
        tsa_key,
        ca.certificates(),
        policies.tsa.clone(),
        clock.clone(),
        RecordWriter::new(sequencer, || TimestampWriter::spawn(store.clone())),
    )
    .map_err(|e| e.to_string())?;
    if let Err(e) = cfg.tsa.clock_check.check() {
        tracing::warn!(reason = %e, "time-stamps will be refused with timeNotAvailable until the clock is synchronised");
    }
    let ocsp_key = certified_key(&hsm, &keys.ocsp, None).await?;
    diagnostics.replace(ServiceKey::Ocsp, ocsp_key.key.clone());
    expiry.set("ocsp", not_after(&ocsp_key));
    let ocsp = OcspResponder::new(ocsp_key, ca.issuing_keys(), store.clone(), cfg.ocsp.validity, clock.clone())?;
    let tsa = Arc::new(tsa);
    let signing = {
        let mut keyed = Vec::new();
        for policy in policies.signing() {
            let key = policy.own_key(&cfg.keys.document_signer).unwrap_or(&keys.document_signer);
            if let Some(c) = &policy.certificate {
                policy_certificate(&hsm, &ca, policy, key, c, serving)
                    .await
                    .map_err(|e| format!("signing policy '{}': {e}", policy.name))?;
            }
            let certified = certified_key(&hsm, key, policy.signature)
                .await
                .map_err(|e| format!("signing policy '{}': {e}", policy.name))?;
            // A document signature made with a key that signs for the CA, the TSA, OCSP, the
            // log or TLS would speak for that service.
            let service = in_service.iter().find(|k| {
                !k.role.starts_with("signing:")
                    && k.role != "document-signer"
                    && k.public_key == *certified.key.public_key()
            });
            if let Some(k) = service {
                return Err(format!(
                    "signing policy '{}': its key {key} is the {} key; a signing policy signs with the document \
                     signer's key or a key of its own",
                    policy.name, k.role
                ));
            }
            if policy.name == crate::signing::DEFAULT_POLICY {
                diagnostics.replace(ServiceKey::DocumentSigner, certified.key.clone());
            }
            expiry.set(&format!("signing:{}", policy.name), not_after(&certified));
            keyed.push((policy.clone(), certified));
        }
        let validation = Validation { extra_anchors: load_anchors(&cfg.signing.trust_anchors)?, store: store.clone() };
        SigningService::new(
            keyed,
            ca.certificates(),
            tsa.clone(),
            RecordWriter::new(sequencer, || SignatureWriter::spawn(store.clone())),
            validation,
            clock.clone(),
        )
        .map_err(|e| e.to_string())?
    };
    let (ocsp, signing) = (Arc::new(ocsp), Arc::new(signing));
    let credential_keys =
        Arc::new(CredentialKeys { hsm: hsm.clone(), algorithm: cfg.ceremony_config().service_algorithm });
    let tokens = Arc::new(crate::oauth2::Tokens::new(store.clone(), clock.clone()));
    let csc =
        Arc::new(crate::csc::Csc::new(signing.clone(), tsa.clone(), ca.clone(), credential_keys, store.clone(), clock));
    let pending_rollovers = crate::health::PendingRollovers::default();
    let follower = crate::rollover::Follower {
        store: store.clone(),
        hsm: hsm.clone(),
        ca: ca.clone(),
        first: cfg.keys.clone(),
        log: log.clone(),
        tsa: tsa.clone(),
        signing: signing.clone(),
        ocsp: ocsp.clone(),
        certificates: expiry.clone(),
        diagnostics: diagnostics.clone(),
        in_use,
        pending: pending_rollovers.clone(),
    };
    tokio::spawn(follower.run());
    // A CRL exists before the daemon says it is ready: certificates point relying parties at
    // it. The root's is the key ceremony's; a standby serves the primary's (the newest in the
    // store), followed as it publishes.
    let every_ca = ca.adopt_stored_crls().await.map_err(|e| format!("the CRLs in the store: {e}"))?;
    if primary {
        ca.publish_crl().await.map_err(|e| format!("first CRL: {e}"))?;
        tokio::spawn(ca.clone().run_crl_schedule(publishes(&publisher)));
    } else if !every_ca {
        tracing::warn!(
            "the read-only standby holds no CRL of a CA yet: /crl answers 404 for it until the primary's arrives"
        );
    }
    tokio::spawn(ca.clone().follow_revocations());
    if primary {
        if log.is_some() {
            tokio::spawn(ca.clone().run_reconciliation(RECONCILE_EVERY, REVOCATION_SETTLED));
        }
        let sweep = store.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RECONCILE_EVERY).await;
                if let Err(e) = abandon_stale_pending(sweep.as_ref(), pending_grace).await {
                    tracing::warn!(error = %e, "stale pending issuances could not be marked abandoned; retrying");
                }
            }
        });
    }

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<CaServer>().await;
    // A time-stamp is a write: a standby's TSA serves only its chain.
    match primary {
        true => reporter.set_serving::<TsaServer>().await,
        false => reporter.set_not_serving::<TsaServer>().await,
    }
    reporter.set_serving::<SigningServer>().await;
    if log.is_some() {
        reporter.set_serving::<LogServer>().await;
    }
    let first = crate::health::check(&hsm, store.as_ref(), serving, cfg.tsa.clock_check).await;
    let (readiness_tx, readiness) = tokio::sync::watch::channel(first);
    tokio::spawn(watch_health(
        hsm.clone(),
        store.clone(),
        cfg.tsa.clock_check,
        log.is_some(),
        reporter,
        readiness_tx,
        first,
    ));
    // Both reflection versions: grpcurl asks v1, but Python's grpcio-reflection and many GUI
    // clients still ask v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| e.to_string())?;
    let reflection = reflection().build_v1().map_err(|e| e.to_string())?;
    let max = cfg.server.max_request_bytes;
    let access = PolicyInForce::new(access);
    let ca_service = CaServer::new(CaService { ca: ca.clone(), csc: csc.clone(), access: access.clone() })
        .max_decoding_message_size(max);
    let tsa_service = TsaServer::new(TsaService { tsa: tsa.clone() }).max_decoding_message_size(max);
    // A whole document may travel in one Sign message: the policies' limit plus room for the
    // options.
    let signing_max = usize::try_from(signing.max_document_bytes()).unwrap_or(usize::MAX).saturating_add(64 * 1024);
    let signing_service = GrpcSigning { signing, stream_idle_timeout: cfg.limits.stream_idle_timeout };
    let signing_service = SigningServer::new(signing_service).max_decoding_message_size(max.max(signing_max));
    let diagnostics_service = DiagnosticsServer::new(DiagnosticsService { diagnostics });
    // Disabled, the log's service is not offered at all (UNIMPLEMENTED), rather than an empty log.
    let log_service = log.clone().map(|log| LogServer::new(LogService { log }));

    let grpc_listener =
        tokio::net::TcpListener::bind(cfg.server.grpc).await.map_err(|e| format!("gRPC {}: {e}", cfg.server.grpc))?;
    let http_listener =
        tokio::net::TcpListener::bind(cfg.server.http).await.map_err(|e| format!("HTTP {}: {e}", cfg.server.http))?;
    let https_listener = match cfg.server.https {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("HTTPS {addr}: {e}"))?),
        None => None,
    };
    let grpc_addr = grpc_listener.local_addr().map_err(|e| e.to_string())?;
    let http_addr = http_listener.local_addr().map_err(|e| e.to_string())?;
    let mut ready = format!("ready grpc=https://{grpc_addr} http=http://{http_addr}");
    if let Some(l) = &https_listener {
        ready.push_str(&format!(" https=https://{}", l.local_addr().map_err(|e| e.to_string())?));
    }
    ready.push_str(&format!(" token={} role={}", hsm.token_label(), serving.name()));
    if let Some(d) = data_dir {
        ready.push_str(&format!(" data-dir={}", d.display()));
    }

    // One signal stops every server; each finishes its requests in progress.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        // Another replica publishes from now on, without waiting for the lease to expire.
        publisher.release().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let limits = cfg.limits;
    // Three listeners' connections, plus the store, the HSM and the log's files.
    let needed = 3 * limits.max_connections as u64 + 512;
    let open_files = crate::connections::raise_open_files(needed);
    if open_files < needed {
        tracing::warn!(
            open_files,
            needed,
            "the open-file limit is below what [limits] max_connections asks; raise it (LimitNOFILE)"
        );
    }
    let requests = RequestLimits::new(&limits);
    let changes = ca.revocation_changes();
    let incoming = tls::incoming("grpc", grpc_listener, tls_config, &limits, store.clone(), changes.clone());
    // A standby's log takes no entry: its policy changes (which govern reads only, every write is
    // refused there) apply unlogged, as with the log off.
    tokio::spawn(access_file.watch(access.clone(), access_text, sequencer.filter(|_| primary).cloned()));
    let state = HttpState {
        ca,
        tsa,
        ocsp,
        readiness,
        log,
        tsa_access: cfg.tsa.http_access,
        readyz_access: cfg.server.readyz_access,
        service_certificates: expiry.clone(),
        pending_rollovers,
        expiry_warning: cfg.server.expiry_warning,
        access: access.clone(),
        csc,
        tokens,
    };
    tokio::spawn(warn_of_expiry(expiry, state.ca.clone(), cfg.server.expiry_warning));
    let https = https_listener.map(|listener| {
        let incoming = tls::incoming("https", listener, https_config, &limits, store, changes);
        let app = crate::api::http::https_router(state.clone(), max, requests.clone());
        crate::api::http_server::serve_tls(incoming, app, &limits, stop_rx.clone())
    });
    let https = async move {
        if let Some(server) = https {
            server.await
        }
    };
    let http_app = crate::api::http::router(state, max, requests.clone());
    let http = crate::api::http_server::serve_plain(http_listener, http_app, &limits, stop_rx.clone());
    let grpc = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_streams_per_connection)
        .http2_keepalive_interval(Some(limits.keepalive))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        // Streams a client resets at once count against it: the HTTP/2 rapid-reset flood
        // (CVE-2023-44487) is bounded by h2's default, kept explicit here.
        .http2_max_pending_accept_reset_streams(Some(20))
        // Outermost, so that refusals by access control and limits are counted too.
        .layer(crate::api::metrics::MetricsLayer)
        .layer(AccessLayer::new(access))
        .layer(ReadOnlyLayer::new(!primary))
        .layer(LimitLayer::new(requests))
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(ca_service)
        .add_service(tsa_service)
        .add_service(signing_service)
        .add_service(diagnostics_service)
        .add_optional_service(log_service)
        .serve_with_incoming_shutdown(incoming, stopped(stop_rx));
    println!("{ready}");
    let _ = std::io::stdout().flush();
    tracing::info!(%grpc_addr, %http_addr, "serving");
    let (g, (), ()) = tokio::join!(grpc, http, https);
    g.map_err(|e| format!("gRPC server: {e}"))
}

/// A certified key's notAfter, Unix seconds.
fn not_after(key: &CertifiedKey) -> u64 {
    cert_not_after(&key.cert)
}

fn cert_not_after(cert: &x509_cert::Certificate) -> u64 {
    cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs()
}

/// The root CA's certificate in the serving token (beside the root key, or the ceremony's copy
/// when the root key is in a token of its own), parsed and DER. The root key is never opened
/// here: its CRL comes from the ceremony. Says so where the root key sits in this token.
async fn root_certificate(hsm: &Hsm, root: &KeyRef) -> Result<(x509_cert::Certificate, Vec<u8>), StartError> {
    use der::Decode;
    let (h, here) = (hsm.clone(), ceremony::root_certificate_ref(root));
    let (found, online) =
        blocking(move || Ok::<_, crate::hsm::HsmError>((h.find_certificate(&here)?, h.has_private_key(&here)?)))
            .await
            .map_err(|e| format!("root CA certificate: {e}"))?;
    let der = found.ok_or_else(|| {
        format!("no root CA certificate in token '{}' ({root}); run `trustd init`", hsm.token_label())
    })?;
    let cert = x509_cert::Certificate::from_der(&der).map_err(|e| format!("root CA certificate in the token: {e}"))?;
    if online {
        tracing::warn!(
            token = hsm.token_label(),
            "the root key is in the serving token: trustd serve never uses it, but could; an offline root keeps it \
             in a token of its own ([keys] root = \"pkcs11:token=…;object=…\"), which only the key ceremony opens"
        );
    }
    Ok((cert, der))
}

/// The key `key` names in the HSM with the certificate the ceremony stored beside it.
pub(crate) async fn certified_key(
    hsm: &Hsm,
    key: &KeyRef,
    scheme: Option<SignatureScheme>,
) -> Result<CertifiedKey, StartError> {
    let (hsm, key) = (hsm.clone(), key.clone());
    blocking(move || hsm.certified_key(&key, scheme)).await
}

/// Certificates from PEM files (`[signing] trust_anchors`).
fn load_anchors(files: &[PathBuf]) -> Result<Vec<x509_cert::Certificate>, StartError> {
    let mut anchors = Vec::new();
    for f in files {
        let pem = std::fs::read(f).map_err(|e| format!("signing.trust_anchors: {}: {e}", f.display()))?;
        let certs = x509_cert::Certificate::load_pem_chain(&pem)
            .map_err(|e| format!("signing.trust_anchors: {}: not PEM certificates: {e}", f.display()))?;
        if certs.is_empty() {
            return Err(format!("signing.trust_anchors: {}: no certificate in it", f.display()));
        }
        anchors.extend(certs);
    }
    Ok(anchors)
}

type CaServer = pb::certificate_authority_server::CertificateAuthorityServer<CaService>;
type TsaServer = pb::time_stamping_server::TimeStampingServer<TsaService>;
type SigningServer = pb::signing_server::SigningServer<GrpcSigning>;
type DiagnosticsServer = pb::diagnostics_server::DiagnosticsServer<DiagnosticsService>;
type LogServer = pb::transparency_log_server::TransparencyLogServer<LogService>;

/// Keeps `grpc.health.v1` truthful: NOT_SERVING while the HSM or the store fails (`first` is
/// what start-up reported). The probe also heals the HSM session pool after a device error.
async fn watch_health(
    hsm: Hsm,
    store: Arc<dyn Store>,
    clock: ClockCheck,
    log_enabled: bool,
    reporter: tonic_health::server::HealthReporter,
    readiness: tokio::sync::watch::Sender<crate::health::Readiness>,
    first: crate::health::Readiness,
) {
    let serving = first.serving;
    let mut was_ok = (true, serving == Role::Primary);
    let mut was_store = first.store;
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let r = crate::health::check(&hsm, store.as_ref(), serving, clock).await;
        readiness.send_replace(r);
        if r.store.is_some() && r.store != was_store && r.store != Some(serving) {
            tracing::error!(database = ?r.store, serving = serving.name(), "the database's role changed: {}", r.store_state());
        }
        if r.store.is_some() {
            was_store = r.store;
        }
        // The CA, signing and the log need the HSM and the store; the TSA also needs a
        // trustworthy clock, and writes.
        let ca_ok = r.hsm && r.store_ok();
        let tsa_ok = r.ok() && serving == Role::Primary;
        if (ca_ok, tsa_ok) != was_ok {
            if ca_ok {
                reporter.set_serving::<CaServer>().await;
                reporter.set_serving::<SigningServer>().await;
                if log_enabled {
                    reporter.set_serving::<LogServer>().await;
                }
            } else {
                tracing::error!(hsm_ok = r.hsm, store = r.store_state(), "not ready");
                reporter.set_not_serving::<CaServer>().await;
                reporter.set_not_serving::<SigningServer>().await;
                if log_enabled {
                    reporter.set_not_serving::<LogServer>().await;
                }
            }
            if tsa_ok {
                reporter.set_serving::<TsaServer>().await;
            } else {
                reporter.set_not_serving::<TsaServer>().await;
            }
            was_ok = (ca_ok, tsa_ok);
        }
    }
}
