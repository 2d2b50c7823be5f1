//! The daemon's configuration (`trustd serve --config FILE`), validated at load. Every key is
//! documented in `config/trustd.example.toml`. The HSM PIN is never in this file: it comes from
//! an environment variable or a file named here.

use crate::ca::csr::San;
use crate::ceremony::{CaKeys, CeremonyConfig};
use crate::clock::ClockCheck;
use crate::hsm::{HsmConfig, KeyAlgorithm, Pin};
use crate::store::Database;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration that could not be loaded; names the file and, where it can, the field.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub hsm: HsmSection,
    pub store: StoreSection,
    #[serde(default)]
    pub server: ServerSection,
    /// Directory holding `profiles/*.toml`, `tsa.toml` and `signing/*.toml`.
    pub policies: PathBuf,
    #[serde(default)]
    pub ceremony: CeremonySection,
    /// Where the CA and service keys are in the token (RFC 7512 URIs or labels).
    #[serde(default)]
    pub keys: CaKeys,
    #[serde(default)]
    pub tsa: TsaSection,
    #[serde(default)]
    pub crl: CrlSection,
    #[serde(default)]
    pub ocsp: OcspSection,
    #[serde(default)]
    pub signing: SigningSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub limits: LimitsSection,
}

/// `[limits]`: what one client, one connection or a flood may take of the daemon. Past a limit
/// a request is refused at once (gRPC RESOURCE_EXHAUSTED, HTTP 503 with Retry-After) rather than
/// queued, so that well-behaved clients keep their latency and memory stays bounded.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Open connections per listener (gRPC, HTTP, HTTPS); past it a new connection is closed
    /// at once (plain HTTP first gets a 503).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections per listener from one IP address: one host holding idle connections
    /// cannot take every place. Behind a load balancer, raise it to `max_connections`.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Concurrent HTTP/2 streams per gRPC connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    #[serde(default = "default_max_streams")]
    pub max_streams_per_connection: u32,
    /// Requests in progress in the whole daemon, over every listener.
    #[serde(default = "default_max_requests")]
    pub max_requests: usize,
    /// Requests in progress per client: its name when it authenticated, else its IP address.
    #[serde(default = "default_max_requests_per_client")]
    pub max_requests_per_client: usize,
    /// Requests in progress per client while other clients are being served too (any of them
    /// sent a request within the last second): a client alone may use the whole daemon, but
    /// with others about, its share is kept small enough that their requests do not wait
    /// behind its backlog. At most `max_requests_per_client`.
    #[serde(default = "default_max_requests_per_client_shared")]
    pub max_requests_per_client_shared: usize,
    /// A request not answered by then fails (gRPC DEADLINE_EXCEEDED, HTTP 503); a client's
    /// shorter `grpc-timeout` wins. What it started (a certificate, a time-stamp, a signature, a
    /// revocation) is completed and logged all the same.
    #[serde(default = "default_request_deadline", with = "humantime_serde")]
    pub request_deadline: Duration,
    /// An HTTP/1.1 connection that has not sent a request's headers this long after it
    /// connected or after its last reply is closed (slow or idle clients).
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A connection with no request in progress for this long is closed (clients reconnect).
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A `SignStream` that sends no chunk for this long is abandoned (DEADLINE_EXCEEDED).
    #[serde(default = "default_stream_idle_timeout", with = "humantime_serde")]
    pub stream_idle_timeout: Duration,
    /// HTTP/2 PING and TCP keepalive interval: dead peers are found and dropped.
    #[serde(default = "default_keepalive", with = "humantime_serde")]
    pub keepalive: Duration,
}

fn default_max_connections() -> usize {
    1024
}
fn default_max_connections_per_address() -> usize {
    256
}
fn default_max_streams() -> u32 {
    64
}
fn default_max_requests() -> usize {
    512
}
fn default_max_requests_per_client() -> usize {
    64
}
fn default_max_requests_per_client_shared() -> usize {
    16
}
fn default_request_deadline() -> Duration {
    Duration::from_secs(30)
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_stream_idle_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_keepalive() -> Duration {
    Duration::from_secs(60)
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
            max_streams_per_connection: default_max_streams(),
            max_requests: default_max_requests(),
            max_requests_per_client: default_max_requests_per_client(),
            max_requests_per_client_shared: default_max_requests_per_client_shared(),
            request_deadline: default_request_deadline(),
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            stream_idle_timeout: default_stream_idle_timeout(),
            keepalive: default_keepalive(),
        }
    }
}

impl LimitsSection {
    /// `[limits]` from `key=value` pairs (`trustd dev --limit`): numbers as they are, anything
    /// else as a string (`header_timeout=2s`).
    pub fn from_pairs(pairs: &[String]) -> Result<Self, String> {
        let mut text = String::new();
        for pair in pairs {
            let (key, value) = pair.split_once('=').ok_or_else(|| format!("--limit: '{pair}' is not KEY=VALUE"))?;
            let (key, value) = (key.trim(), value.trim());
            let quoted = if value.parse::<i64>().is_ok() { value.to_owned() } else { format!("{value:?}") };
            let line = format!("{key} = {quoted}\n");
            // Each alone first, so that the error names the setting.
            toml::from_str::<LimitsSection>(&line).map_err(|e| format!("--limit {key}: {}", e.message()))?;
            text.push_str(&line);
        }
        let limits: LimitsSection = toml::from_str(&text).map_err(|e| format!("--limit: {}", e.message()))?;
        limits.validate()?;
        Ok(limits)
    }

    fn validate(&self) -> Result<(), String> {
        let counts = [
            ("max_connections", self.max_connections),
            ("max_connections_per_address", self.max_connections_per_address),
            ("max_streams_per_connection", self.max_streams_per_connection as usize),
            ("max_requests", self.max_requests),
            ("max_requests_per_client", self.max_requests_per_client),
            ("max_requests_per_client_shared", self.max_requests_per_client_shared),
        ];
        for (field, n) in counts {
            if n == 0 {
                return Err(format!("limits.{field}: must be at least 1"));
            }
        }
        let times = [
            ("request_deadline", self.request_deadline),
            ("header_timeout", self.header_timeout),
            ("idle_timeout", self.idle_timeout),
            ("stream_idle_timeout", self.stream_idle_timeout),
            ("keepalive", self.keepalive),
        ];
        for (field, t) in times {
            if t < Duration::from_millis(100) || t > Duration::from_secs(24 * 3600) {
                return Err(format!("limits.{field}: must be between 100ms and 24h"));
            }
        }
        Ok(())
    }
}

/// `[log]`: the issued-certificate log (its key is `[keys] log`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// The log's name, the first line of every checkpoint (C2SP tlog-checkpoint "origin") and
    /// the name of its key. Default: `server.public_url` without the scheme, plus `/log` (the
    /// schema-less URL of the log's HTTP prefix, as C2SP recommends).
    #[serde(default)]
    pub origin: Option<String>,
    /// A measurement and development switch (the benchmark compares issuance with and without
    /// the log). Off, nothing is logged and the read path is not served; on again, start-up
    /// logs what was issued meanwhile. Never turn it off in production.
    #[serde(default = "default_log_enabled")]
    pub enabled: bool,
}

fn default_log_enabled() -> bool {
    true
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { origin: None, enabled: default_log_enabled() }
    }
}

/// `[signing]`: how signatures are validated (what is signed is in `policies/signing/`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSection {
    /// PEM files of further trust anchors for `Signing.Verify`, beside trustd's own root.
    #[serde(default)]
    pub trust_anchors: Vec<PathBuf>,
}

/// `[ocsp]`: the OCSP responder.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcspSection {
    /// nextUpdate − thisUpdate of each response; good responses are re-signed after half of it.
    #[serde(default = "default_ocsp_validity", with = "humantime_serde")]
    pub validity: Duration,
}

fn default_ocsp_validity() -> Duration {
    Duration::from_secs(4 * 3600)
}

impl Default for OcspSection {
    fn default() -> Self {
        OcspSection { validity: default_ocsp_validity() }
    }
}

/// `[crl]`: how often the CA publishes its CRL.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlSection {
    /// nextUpdate − thisUpdate of each CRL.
    #[serde(default = "default_crl_validity", with = "humantime_serde")]
    pub validity: Duration,
    /// A new CRL at least this often (and shortly after each revocation); below `validity`.
    #[serde(default = "default_crl_refresh", with = "humantime_serde")]
    pub refresh: Duration,
    /// nextUpdate − thisUpdate of the root's CRL, which only the key ceremony signs (the root
    /// key stays offline): long, and re-signed in a ceremony before it runs out.
    #[serde(default = "default_root_crl_validity", with = "humantime_serde")]
    pub root_validity: Duration,
}

fn default_crl_validity() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_crl_refresh() -> Duration {
    Duration::from_secs(3600)
}
fn default_root_crl_validity() -> Duration {
    Duration::from_secs(365 * 86400)
}

impl Default for CrlSection {
    fn default() -> Self {
        CrlSection {
            validity: default_crl_validity(),
            refresh: default_crl_refresh(),
            root_validity: default_root_crl_validity(),
        }
    }
}

/// `[tsa]`: how the time-stamping authority runs (what it signs is in `policies/tsa.toml`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsaSection {
    /// "kernel": refuse time-stamps (timeNotAvailable) unless the kernel reports the clock
    /// NTP-synchronised; "off": no check (development only).
    #[serde(default = "default_clock_check")]
    pub clock_check: ClockCheck,
    /// Who may get time-stamps over HTTP: "public" (the default: anyone, over plain HTTP and
    /// HTTPS; anonymous unless the client names itself over HTTPS) or "authenticated" (over
    /// HTTPS only, clients of the access policy whose roles allow TimeStamping/Timestamp).
    #[serde(default)]
    pub http_access: HttpAccess,
}

/// Who may use an HTTP route that is not public by nature (`[tsa] http_access`,
/// `[server] readyz_access`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpAccess {
    /// Anyone, over plain HTTP and HTTPS.
    #[default]
    Public,
    /// Clients of the access policy, over HTTPS (client certificate or bearer token).
    Authenticated,
}

fn default_clock_check() -> ClockCheck {
    ClockCheck::Kernel
}

impl Default for TsaSection {
    fn default() -> Self {
        TsaSection { clock_check: default_clock_check(), http_access: HttpAccess::Public }
    }
}

/// `[hsm]`: the PKCS#11 module, the token, and where the PIN comes from.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmSection {
    pub module: PathBuf,
    pub token_label: String,
    /// Name of an environment variable holding the user PIN.
    #[serde(default)]
    pub pin_env: Option<String>,
    /// Path of a file holding the user PIN (trailing newline ignored).
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    #[serde(default = "default_sessions")]
    pub max_sessions: usize,
    /// Sign with private session copies of the keys: for SoftHSM (`trustd dev` turns it on),
    /// whose token objects are files it re-reads before every signature. Off by default.
    #[serde(default)]
    pub session_key_copies: bool,
    /// The PIN taken from `pin_env` at load, which also removes the variable from the
    /// environment (no child process inherits it, no later reader finds it).
    #[serde(skip)]
    pub pin_from_env: EnvPin,
}

/// A PIN held since it was taken from the environment; never printed.
#[derive(Clone, Default)]
pub struct EnvPin(Option<std::sync::Arc<zeroize::Zeroizing<String>>>);

impl EnvPin {
    /// The value of the environment variable `var`, removed from the environment.
    fn take(var: Option<&str>) -> EnvPin {
        let value = var.and_then(|var| {
            let v = std::env::var(var).ok()?;
            std::env::remove_var(var);
            Some(std::sync::Arc::new(zeroize::Zeroizing::new(v)))
        });
        EnvPin(value)
    }
}

/// A PIN from an environment variable taken at load or from a file no one but its owner may
/// read, each named by its config field for errors; `None` when neither is set. The error never
/// contains the PIN.
fn read_pin(
    (env_field, env, taken): (&str, &Option<String>, &EnvPin),
    (file_field, file): (&str, &Option<PathBuf>),
) -> Option<Result<Pin, String>> {
    if let Some(var) = env {
        let v = taken.0.as_ref();
        return Some(
            v.map(|v| Pin::new(String::clone(v)))
                .ok_or_else(|| format!("{env_field}: environment variable {var} is not set")),
        );
    }
    let file = file.as_ref()?;
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| format!("{file_field}: {}: {e}", file.display());
    let read = || {
        let mode = std::fs::metadata(file).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{file_field}: {} is open to group or others (mode {:o}): make it 0600 or stricter",
                file.display(),
                mode & 0o777
            ));
        }
        Ok(Pin::new(std::fs::read_to_string(file).map_err(io)?))
    };
    Some(read())
}

impl std::fmt::Debug for EnvPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "EnvPin(taken)" } else { "EnvPin(none)" })
    }
}

fn default_sessions() -> usize {
    8
}

/// `[store]`: one SQLite file (`sqlite`) or one PostgreSQL database (`url`), never both.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// Path of the SQLite database (created if missing).
    pub sqlite: Option<PathBuf>,
    /// A `postgres://` URL: the database replicas share.
    pub url: Option<String>,
    /// PostgreSQL connections of this daemon.
    #[serde(default = "default_store_connections")]
    pub max_connections: u32,
}

fn default_store_connections() -> u32 {
    16
}

impl StoreSection {
    /// The SQLite file at `path`.
    pub fn sqlite(path: PathBuf) -> Self {
        StoreSection { sqlite: Some(path), url: None, max_connections: default_store_connections() }
    }

    /// The PostgreSQL database at `url`.
    pub fn postgres(url: String) -> Self {
        StoreSection { sqlite: None, url: Some(url), max_connections: default_store_connections() }
    }

    /// The database named, once [`Config::validate`] has checked that exactly one is.
    pub fn database(&self) -> Result<Database, String> {
        match (&self.sqlite, &self.url) {
            (Some(path), None) => Ok(Database::Sqlite(path.clone())),
            (None, Some(url)) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err("store.url: must be a postgres:// URL (for SQLite, set store.sqlite to a path)".into());
                }
                if !(1..=1000).contains(&self.max_connections) {
                    return Err("store.max_connections: must be between 1 and 1000".into());
                }
                Ok(Database::Postgres { url: url.clone(), max_connections: self.max_connections })
            }
            (Some(_), Some(_)) => Err("store: set sqlite or url, not both".into()),
            (None, None) => Err("store: set sqlite (a file) or url (a postgres:// URL)".into()),
        }
    }
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// gRPC listen address: TLS only, client certificates required.
    #[serde(default = "default_grpc")]
    pub grpc: SocketAddr,
    /// Names (DNS names or IP addresses) of the gRPC listener's TLS certificate, which clients
    /// check. Default: the gRPC address's IP, when it is a specific one.
    #[serde(default)]
    pub tls_names: Vec<String>,
    /// A directory where the daemon keeps an operator credential (`ca.crt`, `operator.crt`,
    /// `operator.key`, for `trustctl --data-dir`), issued under `service-client` to the
    /// client `operator` and renewed at start when it nears its end. For the first start of a
    /// new deployment (and `trustd dev`); unset it once operators have credentials of their own.
    #[serde(default)]
    pub operator_credentials: Option<PathBuf>,
    /// Plain-HTTP listen address: the public, read-only routes (OCSP, CRLs, CA certificates,
    /// the log's read path, health) and RFC 3161 time-stamps when `tsa.http_access` is public.
    #[serde(default = "default_http")]
    pub http: SocketAddr,
    /// HTTPS listen address (unset: no HTTPS listener): the same routes over TLS with the gRPC
    /// listener's certificate, where a time-stamp client names itself with a client
    /// certificate or a bearer token (`Authorization: Bearer`, RFC 6750).
    #[serde(default)]
    pub https: Option<SocketAddr>,
    /// Who may read `/readyz` (whether the HSM, the store and the clock are usable) and
    /// `/metrics`: "public" (the default, for load balancers and Prometheus) or "authenticated"
    /// (over HTTPS, any client of the access policy).
    #[serde(default)]
    pub readyz_access: HttpAccess,
    /// Base URL relying parties use for CRLs, OCSP and CA certificates; goes into certificates.
    #[serde(default = "default_public_url")]
    pub public_url: String,
    /// Largest request message accepted, in bytes; larger ones are refused.
    #[serde(default = "default_max_request")]
    pub max_request_bytes: usize,
    /// How long before a service certificate (root, issuing CA, TSA, OCSP, signer) expires the
    /// daemon starts warning: a log line every hour and a line of `/readyz`.
    #[serde(default = "default_expiry_warning", with = "humantime_serde")]
    pub expiry_warning: Duration,
}

fn default_expiry_warning() -> Duration {
    Duration::from_secs(30 * 86_400)
}

fn default_grpc() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}
fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_public_url() -> String {
    "http://127.0.0.1:8080".into()
}
fn default_max_request() -> usize {
    64 * 1024
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            grpc: default_grpc(),
            tls_names: Vec::new(),
            operator_credentials: None,
            http: default_http(),
            https: None,
            readyz_access: HttpAccess::Public,
            public_url: default_public_url(),
            max_request_bytes: default_max_request(),
            expiry_warning: default_expiry_warning(),
        }
    }
}

/// `[ceremony]`: what `trustd init` creates.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CeremonySection {
    #[serde(default = "default_org")]
    pub organization: String,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default = "default_root_alg")]
    pub root_algorithm: KeyAlgorithm,
    #[serde(default = "default_leaf_alg")]
    pub issuing_algorithm: KeyAlgorithm,
    #[serde(default = "default_leaf_alg")]
    pub service_algorithm: KeyAlgorithm,
    #[serde(default = "default_log_alg")]
    pub log_algorithm: KeyAlgorithm,
    #[serde(default = "default_root_validity", with = "humantime_serde")]
    pub root_validity: Duration,
    #[serde(default = "default_issuing_validity", with = "humantime_serde")]
    pub issuing_validity: Duration,
    #[serde(default = "default_service_validity", with = "humantime_serde")]
    pub service_validity: Duration,
    /// The user PIN of the root key's own token (`[keys] root` with `token=`), from an
    /// environment variable or a file as `[hsm]`'s. Only the ceremony reads it: `trustd serve`
    /// never opens that token, so its config needs neither.
    #[serde(default)]
    pub root_pin_env: Option<String>,
    #[serde(default)]
    pub root_pin_file: Option<PathBuf>,
    #[serde(skip)]
    pub root_pin_from_env: EnvPin,
}

fn default_org() -> String {
    "trustd".into()
}
fn default_root_alg() -> KeyAlgorithm {
    KeyAlgorithm::EcP384
}
fn default_leaf_alg() -> KeyAlgorithm {
    KeyAlgorithm::EcP256
}
fn default_log_alg() -> KeyAlgorithm {
    KeyAlgorithm::Ed25519
}
fn default_root_validity() -> Duration {
    Duration::from_secs(20 * 365 * 86400)
}
fn default_issuing_validity() -> Duration {
    Duration::from_secs(10 * 365 * 86400)
}
fn default_service_validity() -> Duration {
    Duration::from_secs(3 * 365 * 86400)
}

impl Default for CeremonySection {
    fn default() -> Self {
        CeremonySection {
            organization: default_org(),
            country: None,
            root_algorithm: default_root_alg(),
            issuing_algorithm: default_leaf_alg(),
            service_algorithm: default_leaf_alg(),
            log_algorithm: default_log_alg(),
            root_validity: default_root_validity(),
            issuing_validity: default_issuing_validity(),
            service_validity: default_service_validity(),
            root_pin_env: None,
            root_pin_file: None,
            root_pin_from_env: EnvPin::default(),
        }
    }
}

impl Config {
    /// Reads and validates a config file. Relative paths in it are taken relative to the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError { file: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| err(e.to_string().trim_end().replace('\n', " ")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let operator_credentials = cfg.server.operator_credentials.iter_mut();
        for p in [&mut cfg.policies].into_iter().chain(cfg.store.sqlite.as_mut()).chain(operator_credentials) {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        let pin_files = cfg.hsm.pin_file.iter_mut().chain(cfg.ceremony.root_pin_file.iter_mut());
        for p in pin_files.chain(cfg.signing.trust_anchors.iter_mut()).filter(|p| p.is_relative()) {
            *p = base.join(&*p);
        }
        cfg.validate().map_err(err)?;
        cfg.take_pin_from_env();
        Ok(cfg)
    }

    /// Moves the PINs of `hsm.pin_env` and `ceremony.root_pin_env` out of the environment into
    /// the config. Call it before threads start (`Config::load` does): the environment is
    /// process-wide.
    pub fn take_pin_from_env(&mut self) {
        self.hsm.pin_from_env = EnvPin::take(self.hsm.pin_env.as_deref());
        self.ceremony.root_pin_from_env = EnvPin::take(self.ceremony.root_pin_env.as_deref());
    }

    /// Cross-field checks that serde cannot express.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.hsm.pin_env, &self.hsm.pin_file) {
            (Some(_), Some(_)) => return Err("hsm: set pin_env or pin_file, not both".into()),
            (None, None) => return Err("hsm: set pin_env or pin_file (the PIN never goes in this file)".into()),
            _ => {}
        }
        if self.hsm.max_sessions == 0 {
            return Err("hsm.max_sessions: must be at least 1".into());
        }
        let root_pin = (&self.ceremony.root_pin_env, &self.ceremony.root_pin_file);
        if root_pin.0.is_some() && root_pin.1.is_some() {
            return Err("ceremony: set root_pin_env or root_pin_file, not both".into());
        }
        if self.root_token().is_none() && (root_pin.0.is_some() || root_pin.1.is_some()) {
            return Err(format!(
                "ceremony.root_pin_*: the root key is in the serving token '{}'; name its own token in [keys] root \
                 (\"pkcs11:token=…;object=…\") or remove the root PIN",
                self.hsm.token_label
            ));
        }
        if self.crl.root_validity < Duration::from_secs(3600)
            || self.crl.root_validity > Duration::from_secs(10 * 365 * 86_400)
        {
            return Err("crl.root_validity: must be between an hour and 10 years".into());
        }
        if !self.server.public_url.starts_with("http://") && !self.server.public_url.starts_with("https://") {
            return Err(format!("server.public_url: '{}' is not an http(s) URL", self.server.public_url));
        }
        if let Some(c) = &self.ceremony.country {
            if !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())) {
                return Err(format!("ceremony.country: '{c}' is not an ISO 3166 two-letter code"));
            }
        }
        if self.crl.refresh.is_zero() || self.crl.refresh >= self.crl.validity {
            return Err("crl.refresh: must be positive and shorter than crl.validity".into());
        }
        if self.ocsp.validity < Duration::from_secs(60) {
            return Err("ocsp.validity: must be at least a minute".into());
        }
        if self.server.max_request_bytes < 1024 {
            return Err("server.max_request_bytes: must be at least 1024".into());
        }
        if self.server.expiry_warning.is_zero() || self.server.expiry_warning > Duration::from_secs(100 * 365 * 86_400)
        {
            return Err("server.expiry_warning: must be between 1s and 100 years".into());
        }
        self.limits.validate()?;
        self.store.database()?;
        self.tls_names()?;
        for (field, access) in
            [("tsa.http_access", self.tsa.http_access), ("server.readyz_access", self.server.readyz_access)]
        {
            if access == HttpAccess::Authenticated && self.server.https.is_none() {
                return Err(format!("{field}: 'authenticated' needs server.https, where clients authenticate"));
            }
        }
        let origin = self.log_origin();
        // C2SP signed-note: a key name is non-empty and has no whitespace and no '+'.
        if origin.is_empty() || origin.contains(|c: char| c.is_whitespace() || c == '+') {
            return Err(format!("log.origin: '{origin}' must be non-empty without spaces or '+'"));
        }
        Ok(())
    }

    /// The log's origin: `[log] origin`, or `server.public_url` without its scheme and with
    /// `/log` appended (`https://pki.example.com` → `pki.example.com/log`).
    pub fn log_origin(&self) -> String {
        if let Some(o) = &self.log.origin {
            return o.clone();
        }
        let url = &self.server.public_url;
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        format!("{}/log", rest.trim_end_matches('/'))
    }

    /// The names of the gRPC and HTTPS listeners' TLS certificate (`server.tls_names`), as
    /// SANs; by default their IP addresses.
    pub fn tls_names(&self) -> Result<Vec<San>, String> {
        if self.server.tls_names.is_empty() {
            let mut names = Vec::new();
            for (field, addr) in [("grpc", Some(self.server.grpc)), ("https", self.server.https)] {
                let Some(addr) = addr else { continue };
                if addr.ip().is_unspecified() {
                    return Err(format!(
                        "server.tls_names: required when server.{field} ({addr}) listens on every address: \
                         name the host clients connect to"
                    ));
                }
                if !names.contains(&San::Ip(addr.ip())) {
                    names.push(San::Ip(addr.ip()));
                }
            }
            return Ok(names);
        }
        Ok(self
            .server
            .tls_names
            .iter()
            .map(|n| n.parse().map_or_else(|_| San::Dns(n.to_ascii_lowercase()), San::Ip))
            .collect())
    }

    /// The HSM part of the config.
    pub fn hsm_config(&self) -> HsmConfig {
        HsmConfig {
            module: self.hsm.module.clone(),
            token_label: self.hsm.token_label.clone(),
            max_sessions: self.hsm.max_sessions,
            session_key_copies: self.hsm.session_key_copies,
        }
    }

    /// Reads the PIN from its source: the value taken from `pin_env`, or `pin_file`, which no
    /// one but its owner may read. The error never contains the PIN.
    pub fn read_pin(&self) -> Result<Pin, String> {
        let h = &self.hsm;
        read_pin(("hsm.pin_env", &h.pin_env, &h.pin_from_env), ("hsm.pin_file", &h.pin_file))
            .unwrap_or_else(|| Err("hsm: no PIN source configured".into()))
    }

    /// The label of the root key's own token, when `[keys] root` names one other than the
    /// serving token: the offline root, which only the ceremony opens.
    pub fn root_token(&self) -> Option<&str> {
        self.keys.root.token.as_deref().filter(|t| *t != self.hsm.token_label)
    }

    /// The root token's PIN (`[ceremony] root_pin_env` or `root_pin_file`), read as
    /// [`Config::read_pin`] reads the serving token's.
    pub fn read_root_pin(&self) -> Result<Pin, String> {
        let c = &self.ceremony;
        read_pin(
            ("ceremony.root_pin_env", &c.root_pin_env, &c.root_pin_from_env),
            ("ceremony.root_pin_file", &c.root_pin_file),
        )
        .unwrap_or_else(|| {
            Err(format!(
                "the root key is in token '{}': set [ceremony] root_pin_env or root_pin_file to open it",
                self.root_token().unwrap_or_default()
            ))
        })
    }

    /// What the key ceremony creates.
    pub fn ceremony_config(&self) -> CeremonyConfig {
        let c = &self.ceremony;
        CeremonyConfig {
            organization: c.organization.clone(),
            country: c.country.clone(),
            root_algorithm: c.root_algorithm,
            issuing_algorithm: c.issuing_algorithm,
            service_algorithm: c.service_algorithm,
            log_algorithm: c.log_algorithm,
            root_validity: c.root_validity,
            issuing_validity: c.issuing_validity,
            service_validity: c.service_validity,
            public_url: self.server.public_url.clone(),
            keys: self.keys.clone(),
            policy_keys: Vec::new(),
            log: self.log.enabled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/trustd.example.toml");
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.hsm.pin_env.as_deref(), Some("TRUSTD_HSM_PIN"));
        assert!(cfg.policies.is_absolute() || cfg.policies.starts_with(path.parent().unwrap()));
    }

    #[test]
    fn a_pin_from_the_environment_leaves_it_and_a_readable_pin_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let var = "TRUSTD_CONFIG_TEST_PIN_7F3A";
        std::env::set_var(var, "1234-secret");
        let base = "policies = \"p\"\n[store]\nsqlite = \"d\"\n[hsm]\nmodule = \"m\"\ntoken_label = \"t\"\n";
        std::fs::write(&path, format!("{base}pin_env = \"{var}\"\n")).unwrap();
        let cfg = Config::load(&path).unwrap();
        assert!(std::env::var_os(var).is_none(), "removed from the environment once read");
        assert!(!format!("{cfg:?}").contains("1234-secret"));
        cfg.read_pin().unwrap();
        cfg.read_pin().expect("the PIN serves more than one login (init, then serve)");

        let pin = dir.path().join("pin");
        std::fs::write(&pin, "1234\n").unwrap();
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::write(&path, format!("{base}pin_file = \"pin\"\n")).unwrap();
        let e = Config::load(&path).unwrap().read_pin().err().unwrap();
        assert!(e.contains("hsm.pin_file") && e.contains("640") && !e.contains("1234"), "{e}");
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
        Config::load(&path).unwrap().read_pin().unwrap();
    }

    #[test]
    fn log_origin_defaults_to_the_public_url_without_scheme() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/trustd.example.toml");
        let mut cfg = Config::load(&path).unwrap();
        assert!(cfg.log.enabled);
        cfg.log.origin = None;
        cfg.server.public_url = "https://pki.example.com/".into();
        assert_eq!(cfg.log_origin(), "pki.example.com/log");
        cfg.server.public_url = "http://127.0.0.1:8080".into();
        assert_eq!(cfg.log_origin(), "127.0.0.1:8080/log");
        cfg.log.origin = Some("ca.example.org/log".into());
        assert_eq!(cfg.log_origin(), "ca.example.org/log");
    }

    #[test]
    fn errors_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let base = "policies = \"p\"\n[hsm]\nmodule = \"m\"\ntoken_label = \"t\"\n[store]\nsqlite = \"d\"\n";
        for (extra, field) in [
            ("", "pin_env or pin_file"),
            ("pin_env = \"X\"\nmax_sessions = 0\n", "max_sessions"),
            ("pin_env = \"X\"\npin = \"1234\"\n", "pin"),
            ("pin_env = \"X\"\n[server]\npublic_url = \"ftp://x\"\n", "public_url"),
            ("pin_env = \"X\"\n[ceremony]\nroot_algorithm = \"rsa-1024\"\n", "rsa-1024"),
            ("pin_env = \"X\"\n[log]\norigin = \"a b\"\n", "log.origin"),
            ("pin_env = \"X\"\n[server]\ngrpc = \"0.0.0.0:50051\"\n", "server.tls_names"),
            ("pin_env = \"X\"\n[server]\nhttps = \"0.0.0.0:8443\"\n", "server.tls_names"),
            ("pin_env = \"X\"\n[tsa]\nhttp_access = \"authenticated\"\n", "server.https"),
            ("pin_env = \"X\"\n[tsa]\nhttp_access = \"private\"\n", "private"),
            ("pin_env = \"X\"\n[server]\nreadyz_access = \"authenticated\"\n", "server.readyz_access"),
            ("pin_env = \"X\"\n[server]\nexpiry_warning = \"0s\"\n", "server.expiry_warning"),
            ("pin_env = \"X\"\n[server]\nexpiry_warning = \"200years\"\n", "server.expiry_warning"),
            ("pin_env = \"X\"\n[server]\nexpiry_warning = \"soon\"\n", "expiry_warning"),
            ("pin_env = \"X\"\n[ceremony]\nroot_pin_file = \"r\"\n", "the root key is in the serving token 't'"),
            (
                "pin_env = \"X\"\n[keys]\nroot = \"pkcs11:token=t;object=r\"\n[ceremony]\nroot_pin_env = \"R\"\n",
                "ceremony.root_pin_*",
            ),
            (
                "pin_env = \"X\"\n[keys]\nroot = \"pkcs11:token=r;object=r\"\n[ceremony]\nroot_pin_env = \"R\"\n\
                 root_pin_file = \"r\"\n",
                "root_pin_env or root_pin_file, not both",
            ),
            ("pin_env = \"X\"\n[crl]\nroot_validity = \"59m\"\n", "crl.root_validity"),
            ("pin_env = \"X\"\n[crl]\nroot_validity = \"11years\"\n", "crl.root_validity"),
        ] {
            let text = base.replace("token_label = \"t\"\n", &format!("token_label = \"t\"\n{extra}"));
            std::fs::write(&path, text).unwrap();
            let e = Config::load(&path).unwrap_err().to_string();
            assert!(e.contains("c.toml") && e.contains(field), "{extra:?}: {e}");
        }
    }

    /// `[store]` names one database: a file, or a postgres:// URL with a sane pool.
    #[test]
    fn the_store_is_one_sqlite_file_or_one_postgresql_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let base = "policies = \"p\"\n[hsm]\nmodule = \"m\"\ntoken_label = \"t\"\npin_env = \"X\"\n[store]\n";
        let load = |store: &str| {
            std::fs::write(&path, format!("{base}{store}")).unwrap();
            Config::load(&path).map(|c| c.store.database().unwrap()).map_err(|e| e.to_string())
        };
        assert_eq!(load("sqlite = \"d.db\"\n").unwrap(), Database::Sqlite(dir.path().join("d.db")));
        let url = "postgres://trustd@db:5432/trustd";
        let pg = load(&format!("url = \"{url}\"\nmax_connections = 1000\n")).unwrap();
        assert_eq!(pg, Database::Postgres { url: url.into(), max_connections: 1000 });
        for (store, says) in [
            ("", "set sqlite (a file) or url"),
            ("sqlite = \"d\"\nurl = \"postgres://db/t\"\n", "not both"),
            ("url = \"mysql://db/t\"\n", "must be a postgres:// URL"),
            ("url = \"postgres://db/t\"\nmax_connections = 0\n", "store.max_connections"),
            ("url = \"postgres://db/t\"\nmax_connections = 1001\n", "store.max_connections"),
            ("url = \"postgres://db/t\"\nmax_connections = -1\n", "max_connections"),
        ] {
            let e = load(store).unwrap_err();
            assert!(e.contains(says), "{store:?}: {e}");
        }
        let shown = Database::Postgres { url: "postgresql://u:pw@h:1/d?password=pw2".into(), max_connections: 1 };
        assert_eq!(shown.to_string(), "postgresql://u@h:1/d", "no password, no parameters");
    }
}
