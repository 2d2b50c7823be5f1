//! `trustd`: the trust-services daemon. Argument parsing and wiring only.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use trustd::clock::ClockCheck;
use trustd::config::{Config, HttpAccess, LimitsSection, ServerSection, StoreSection, TsaSection};
use trustd::daemon;
use trustd::service_role::ServiceRole;

// glibc's allocator spent over a tenth of the daemon's CPU in malloc/free under concurrent
// signing (perf); mimalloc's per-thread heaps suit the many small ASN.1 allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "trustd",
    version,
    about = "Certificate authority, time-stamping and signing with keys in a PKCS#11 HSM"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// One command to a working service: a SoftHSM token and SQLite under DIR, the key
    /// ceremony on first start, then serve.
    Dev {
        #[arg(long, default_value = "./trustd-dev")]
        data_dir: PathBuf,
        /// gRPC address (TLS, client certificates required).
        #[arg(long, default_value = "127.0.0.1:50051")]
        grpc: SocketAddr,
        /// A name (DNS name or IP address) for the gRPC listener's TLS certificate; repeat for
        /// more. Default: the --grpc address's IP.
        #[arg(long = "tls-name")]
        tls_names: Vec<String>,
        /// HTTP address (CA certificates, health); by default also the base of the CRL, OCSP
        /// and CA URLs written into certificates.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// HTTPS address: the HTTP routes over TLS, where time-stamp clients authenticate with
        /// a client certificate or a bearer token; "off" for none.
        #[arg(long, default_value = "127.0.0.1:8443")]
        https: String,
        /// Who may get time-stamps over HTTP: "public" (the default) or "authenticated" (over
        /// HTTPS, clients of the access policy), as `[tsa] http_access`.
        #[arg(long, default_value = "public")]
        tsa_access: String,
        /// Who may read /readyz and /metrics: "public" (the default) or "authenticated", as
        /// `[server] readyz_access`.
        #[arg(long, default_value = "public")]
        readyz_access: String,
        /// Base URL written into certificates instead of http://HTTP-ADDR (first start only
        /// matters for the CA certificates; issued certificates use the current value).
        #[arg(long)]
        public_url: Option<String>,
        /// Clock check before each time-stamp: "off" (the default for dev) or "kernel".
        #[arg(long, default_value = "off")]
        clock_check: String,
        /// The issued-certificate log: "on" (the default) or "off". A measurement switch for
        /// the benchmark (issuance with and without the log), as `[log] enabled`.
        #[arg(long, default_value = "on")]
        log: String,
        /// A `[limits]` setting, as KEY=VALUE (`--limit max_connections=64 --limit
        /// header_timeout=2s`); repeat for more.
        #[arg(long = "limit")]
        limits: Vec<String>,
        /// How long before a service certificate expires the daemon warns, as
        /// `[server] expiry_warning` ("30d", "1year").
        #[arg(long, default_value = "30d")]
        expiry_warning: String,
        /// The CAs' countryName (ISO 3166, two letters), as `[ceremony] country`: first start
        /// only. The ETSI profiles (qcp-*, ncp-*) need it (EN 319 412-2 §4.2.3.1).
        #[arg(long)]
        country: Option<String>,
        /// A PostgreSQL database (a postgres:// URL) for the records instead of SQLite under
        /// DIR, as `[store] url`; the token stays under DIR.
        #[arg(long)]
        store_url: Option<String>,
    },
    /// The key ceremony against the HSM in the config: the keys and certificates that are
    /// missing, and the root's CRL when there is none or it nears its nextUpdate. Never
    /// overwrites an existing key.
    Init {
        #[arg(long)]
        config: PathBuf,
    },
    /// A step of the key ceremony on its own, with the root key's token.
    Ceremony {
        #[command(subcommand)]
        step: CeremonyStep,
    },
    /// The production daemon.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Replaces a key while the daemon serves: a new key in the HSM, certified by the issuing CA
    /// under the old certificate's name (the issuing CA's: by the root, opening the root's token,
    /// as a new CA; the log's: cosigning checkpoints with the old), recorded in the store; every
    /// running replica signs with it within a second. What the old key signed stays valid.
    Rollover {
        /// The key: issuing, tsa, document-signer (or signer), ocsp, log.
        #[arg(long)]
        key: String,
        /// The daemon's config (`trustd serve`).
        #[arg(long, conflicts_with = "data_dir", required_unless_present = "data_dir")]
        config: Option<PathBuf>,
        /// A `trustd dev` data dir instead of a config.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// With --data-dir: the base URL the dev daemon writes into certificates (its
        /// --public-url).
        #[arg(long, requires = "data_dir", default_value = "http://127.0.0.1:8080")]
        public_url: String,
        /// With --data-dir: the dev daemon's --store-url, when it keeps its records in
        /// PostgreSQL.
        #[arg(long, requires = "data_dir")]
        store_url: Option<String>,
    },
}

/// The role `--key` names. The root's key is not among them: a key ceremony replaces it; the TLS
/// key's certificate is renewed while serving.
fn rollover_role(key: &str) -> Result<ServiceRole, String> {
    let name = if key == "signer" { "document-signer" } else { key };
    ServiceRole::from_name(name).ok_or_else(|| match key {
        "root" | "tls" => format!(
            "--key {key}: only the issuing, tsa, document-signer, ocsp and log keys roll over with trustd rollover; \
             the {key} key is replaced by a key ceremony"
        ),
        _ => format!("--key: '{key}' is not a key that rolls over (issuing, tsa, document-signer, ocsp, log)"),
    })
}

#[derive(Subcommand)]
enum CeremonyStep {
    /// Signs the root's next CRL (valid `[crl] root_validity`) and records it in the store,
    /// where every running replica serves it within a second. Run it before the current one's
    /// nextUpdate, which /readyz and the log warn of (`[server] expiry_warning`).
    RootCrl {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr (stdout carries only the `ready` line); TRUSTD_LOG_FORMAT=json gives
    // one JSON object per line for log shippers. Colours only on a terminal: a file or a
    // journal gets plain `key=value` text.
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRUSTD_LOG").unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter);
    if std::env::var("TRUSTD_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trustd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Runtime::new().map_err(|e| e.to_string())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Dev {
            data_dir,
            grpc,
            tls_names,
            http,
            https,
            tsa_access,
            readyz_access,
            public_url,
            clock_check,
            log,
            limits,
            expiry_warning,
            country,
            store_url,
        } => {
            let clock_check = match clock_check.as_str() {
                "off" => ClockCheck::Off,
                "kernel" => ClockCheck::Kernel,
                other => return Err(format!("--clock-check: '{other}' is not off or kernel")),
            };
            let https = match https.as_str() {
                "off" => None,
                addr => Some(addr.parse().map_err(|e| format!("--https: '{addr}': {e}"))?),
            };
            let access = |flag: &str, value: &str| match value {
                "public" => Ok(HttpAccess::Public),
                "authenticated" => Ok(HttpAccess::Authenticated),
                other => Err(format!("--{flag}: '{other}' is not public or authenticated")),
            };
            let http_access = access("tsa-access", &tsa_access)?;
            let readyz_access = access("readyz-access", &readyz_access)?;
            let limits = LimitsSection::from_pairs(&limits)?;
            let public_url = public_url.unwrap_or_else(|| format!("http://{http}"));
            let expiry_warning = humantime::parse_duration(&expiry_warning)
                .map_err(|e| format!("--expiry-warning: '{expiry_warning}': {e}"))?;
            let server = ServerSection {
                grpc,
                tls_names,
                http,
                https,
                readyz_access,
                public_url,
                expiry_warning,
                ..ServerSection::default()
            };
            // Before any thread exists: this sets SOFTHSM2_CONF for the process.
            let mut cfg = daemon::prepare_dev(&data_dir, server, TsaSection { clock_check, http_access })?;
            cfg.log.enabled = match log.as_str() {
                "on" => true,
                "off" => false,
                other => return Err(format!("--log: '{other}' is not on or off")),
            };
            cfg.limits = limits;
            cfg.ceremony.country = country;
            cfg.validate().map_err(|e| e.replace("ceremony.country", "--country"))?;
            if let Some(url) = store_url {
                cfg.store = StoreSection::postgres(url);
                cfg.store.database().map_err(|e| format!("--store-url: {e}"))?;
            }
            runtime()?.block_on(async {
                let ceremony = daemon::init(&cfg).await?;
                for step in ceremony.steps {
                    tracing::info!("key ceremony: {step}");
                }
                tracing::info!("key ceremony: {}", ceremony.root_crl);
                daemon::serve(cfg, Some(&data_dir)).await
            })
        }
        Command::Init { config } => {
            let cfg = Config::load(&config).map_err(|e| e.to_string())?;
            let ceremony = runtime()?.block_on(daemon::init(&cfg))?;
            for step in ceremony.steps {
                println!("{step}");
            }
            println!("{}", ceremony.root_crl);
            Ok(())
        }
        Command::Ceremony { step: CeremonyStep::RootCrl { config } } => {
            let cfg = Config::load(&config).map_err(|e| e.to_string())?;
            println!("{}", runtime()?.block_on(daemon::sign_root_crl(&cfg))?);
            Ok(())
        }
        Command::Rollover { key, config, data_dir, public_url, store_url } => {
            let role = rollover_role(&key)?;
            let cfg = match (config, data_dir) {
                (Some(config), _) => Config::load(&config).map_err(|e| e.to_string())?,
                (None, Some(dir)) => {
                    if !dir.join("hsm-pin").is_file() {
                        return Err(format!(
                            "--data-dir {}: no trustd dev data dir there (start `trustd dev --data-dir` first)",
                            dir.display()
                        ));
                    }
                    let server = ServerSection { public_url, ..ServerSection::default() };
                    // Before any thread exists: this sets SOFTHSM2_CONF for the process.
                    let mut cfg = daemon::prepare_dev(&dir, server, TsaSection::default())?;
                    if let Some(url) = store_url {
                        cfg.store = StoreSection::postgres(url);
                        cfg.store.database().map_err(|e| format!("--store-url: {e}"))?;
                    }
                    cfg
                }
                (None, None) => return Err("--config or --data-dir is needed".into()),
            };
            println!("{}", runtime()?.block_on(daemon::rollover(&cfg, role))?);
            Ok(())
        }
        Command::Serve { config } => {
            let cfg = Config::load(&config).map_err(|e| e.to_string())?;
            runtime()?.block_on(daemon::serve(cfg, None))
        }
    }
}
