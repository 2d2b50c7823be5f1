//! `trustctl`: the gRPC client for operators and scripts. Exit 0 on success; otherwise a
//! one-line reason on stderr and a non-zero exit.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use trustd::api::pb;
use trustd::api::pb::certificate_authority_client::CertificateAuthorityClient;
use trustd::api::pb::signing_client::SigningClient;
use trustd::api::pb::time_stamping_client::TimeStampingClient;
use trustd::credentials;
use trustd::digest::HashAlg;

// Not src/bin/log.rs: that would be a binary of its own.
#[path = "trustctl/bench.rs"]
mod bench;
#[path = "trustctl/log.rs"]
mod log_cmd;

#[derive(Parser)]
#[command(name = "trustctl", version, about = "Client for trustd")]
struct Cli {
    /// trustd's gRPC endpoint (TLS).
    #[arg(long, env = "TRUSTD_SERVER", default_value = "https://127.0.0.1:50051", global = true)]
    server: String,
    /// A data dir whose `credentials/` holds the operator credential (`trustd dev`'s, or
    /// `[server] operator_credentials`' parent). Default: ./trustd-dev when it has one.
    #[arg(long, env = "TRUSTD_DATA_DIR", global = true, conflicts_with_all = ["client_cert", "client_key"])]
    data_dir: Option<PathBuf>,
    /// This client's certificate (PEM), instead of --data-dir's. (Not `--cert`/`--key`:
    /// `--key` is the log's verifier key in `log verify`.)
    #[arg(long, global = true, requires_all = ["client_key", "cacert"])]
    client_cert: Option<PathBuf>,
    /// This client's private key (PEM, PKCS#8).
    #[arg(long, global = true, requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// The root CA certificate (PEM) to check the server's certificate against (curl's name;
    /// `--ca` names a CA in the commands that take one).
    #[arg(long, global = true)]
    cacert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// CA certificates.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Issue a certificate from a CSR; PEM certificate on stdout.
    Issue {
        #[arg(long)]
        profile: String,
        /// CSR file, PEM or DER.
        #[arg(long)]
        csr: PathBuf,
        /// Validity, e.g. "30d"; the profile's default if absent.
        #[arg(long)]
        validity: Option<humantime::Duration>,
    },
    /// Issued certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Credentials of trustd's own clients (policies/access.toml).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Remote-signing credentials of the CSC API: a key in the HSM for one client.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Revoke a certificate (RFC 5280 reasons), put it on hold, or release a hold.
    Revoke {
        #[arg(long)]
        serial: String,
        /// keyCompromise, affiliationChanged, superseded, cessationOfOperation, certificateHold,
        /// removeFromCRL, privilegeWithdrawn or unspecified.
        #[arg(long, default_value = "unspecified")]
        reason: String,
        /// When the key was compromised, RFC 3339 (e.g. 2026-11-20T08:00:00Z).
        #[arg(long)]
        invalidity_date: Option<String>,
    },
    /// The CA's current CRL: PEM on stdout, or DER with --der.
    Crl {
        #[arg(long, default_value = "")]
        ca: String,
        #[arg(long)]
        der: bool,
    },
    /// An RFC 3161 time-stamp over gRPC: the DER TimeStampResp to --out or stdout.
    Timestamp(TimestampArgs),
    /// The time-stamping authority.
    #[command(subcommand)]
    Tsa(TsaCommand),
    /// Sign a document (CMS/CAdES in the HSM): the DER SignedData to --out or stdout.
    Sign(SignArgs),
    /// The issued-certificate log: its checkpoint, an auditor's verification, an export.
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
    /// Measure a running daemon: throughput and latency per workload and concurrency, beside
    /// the HSM's bare signing rate of each workload's key and the daemon's CPU and memory.
    Bench(bench::BenchArgs),
    /// Validate a CMS/CAdES signature: the report on stdout; exit 0 only when TOTAL_PASSED.
    Verify {
        /// The signature, DER or PEM.
        #[arg(long)]
        signature: PathBuf,
        /// The document of a detached signature (hashed here; only the digest is sent).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Ask for a signature with commitment: the signer's certificate must have the
        /// nonRepudiation (contentCommitment) key usage.
        #[arg(long)]
        require_commitment: bool,
    },
}

#[derive(Args)]
struct SignArgs {
    /// The document.
    #[arg(long, conflicts_with = "digest", required_unless_present = "digest")]
    file: Option<PathBuf>,
    /// A digest to sign instead of a file (hex), with --hash's algorithm (sha256 if absent):
    /// for a PAdES policy, the digest of the PDF's byte range. The signature is detached.
    #[arg(long)]
    digest: Option<String>,
    /// Detached signature (the document is not inside it). The document is streamed to the
    /// server in chunks, or with --hash only its digest is sent. Enveloping otherwise.
    #[arg(long)]
    detached: bool,
    /// B-T: add a signature time-stamp from trustd's TSA (the policy's default level otherwise).
    #[arg(long)]
    timestamp: bool,
    /// Hash the document here with this algorithm (the policy's) and send only the digest
    /// (with --detached); with --digest, the digest's algorithm.
    #[arg(long)]
    hash: Option<String>,
    /// Signing policy (policies/signing/NAME.toml); "default" if absent.
    #[arg(long, default_value = "")]
    policy: String,
    /// Where to write the signature (stdout if absent).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct TimestampArgs {
    /// File to time-stamp (hashed here; only the hash is sent).
    #[arg(long, conflicts_with = "digest", required_unless_present = "digest")]
    file: Option<PathBuf>,
    /// Hex digest to time-stamp instead of a file.
    #[arg(long)]
    digest: Option<String>,
    /// sha256, sha384 or sha512.
    #[arg(long, default_value = "sha256")]
    hash: String,
    /// Where to write the DER TimeStampResp (stdout if absent).
    #[arg(long)]
    out: Option<PathBuf>,
    /// TSA policy OID to ask for (the TSA's default if absent).
    #[arg(long)]
    policy: Option<String>,
    /// Send no nonce.
    #[arg(long)]
    no_nonce: bool,
    /// Do not ask for the TSA certificate in the token.
    #[arg(long)]
    no_cert: bool,
}

#[derive(Subcommand)]
enum CredentialCommand {
    /// Make a credential for --client under signing policy --policy: a key generated in the HSM,
    /// certified by the CA with --name as its common name. Prints its credentialID.
    Create {
        #[arg(long)]
        client: String,
        #[arg(long, default_value = "default")]
        policy: String,
        /// The certificate's common name: the signer's, or the organisation's for a seal.
        #[arg(long)]
        name: String,
        /// The subject's country (ISO 3166 alpha-2), which the document-signer profile asks for.
        #[arg(long, default_value = "")]
        country: String,
        /// The subject's organization.
        #[arg(long, default_value = "")]
        organization: String,
    },
    /// The credentials of --client, or of every client.
    List {
        #[arg(long, default_value = "")]
        client: String,
    },
    /// Disable a credential: it signs nothing more.
    Disable {
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Issue a client credential (profile service-client) from the client's own CSR, whose
    /// one SAN URI is its identity (spiffe://TRUST_DOMAIN/NAME); PEM certificate and issuing CA
    /// on stdout.
    Issue {
        /// CSR file, PEM or DER.
        #[arg(long)]
        csr: PathBuf,
        /// Validity, e.g. "30d"; the profile's default if absent.
        #[arg(long)]
        validity: Option<humantime::Duration>,
    },
    /// Make a bearer token for a client of the HTTPS TSA (no server is asked): prints the
    /// token, for the client, and its SHA-256, for its `bearer_tokens_sha256` in access.toml.
    Token,
    /// Make an OAuth 2.0 client secret (no server is asked): prints the secret, for the client
    /// to get hour-long access tokens at the CSC API's oauth2/token with its name as client_id,
    /// and its SHA-256, for its `client_secrets_sha256` in access.toml.
    Secret,
}

#[derive(Subcommand)]
enum TsaCommand {
    /// PEM chain on stdout: the TSA certificate, the issuing CA, the root.
    Chain,
}

#[derive(Subcommand)]
enum CaCommand {
    /// PEM chain on stdout: the issuing CA first, the root last.
    Chain {
        #[arg(long, default_value = "")]
        ca: String,
    },
}

#[derive(Subcommand)]
enum CertCommand {
    /// One certificate: PEM on stdout (or its record with --info).
    Get {
        #[arg(long)]
        serial: String,
        /// Print the record (status, profile, subject, SANs, validity) instead of the PEM.
        #[arg(long)]
        info: bool,
    },
    /// Issued certificates, newest first: serial, status, profile, notAfter, subject.
    List(ListArgs),
}

#[derive(Args)]
struct ListArgs {
    #[arg(long)]
    profile: Option<String>,
    /// Substring of the subject DN.
    #[arg(long)]
    subject: Option<String>,
    /// pending, issued, revoked or abandoned.
    #[arg(long)]
    status: Option<String>,
    /// Most records to print.
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

fn pem(der: &[u8]) -> Result<String, String> {
    pem_labelled("CERTIFICATE", der)
}

fn pem_labelled(label: &str, der: &[u8]) -> Result<String, String> {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).map_err(|e| e.to_string())
}

/// IssueCertificate with the CSR in file `csr` (PEM or DER).
async fn issue(
    client: &mut CertificateAuthorityClient<Channel>,
    profile: String,
    csr: &std::path::Path,
    validity: Option<humantime::Duration>,
) -> Result<pb::IssueCertificateResponse, String> {
    let csr = std::fs::read(csr).map_err(|e| format!("{}: {e}", csr.display()))?;
    let validity_seconds = validity.map_or(0, |d| d.as_secs());
    let r = client.issue_certificate(pb::IssueCertificateRequest { profile, csr, validity_seconds }).await;
    Ok(r.map_err(status_msg)?.into_inner())
}

/// An error with its causes: a TLS failure's reason is deep in the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

fn status_msg(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

fn status_name(v: i32) -> &'static str {
    match pb::CertificateStatus::try_from(v) {
        Ok(pb::CertificateStatus::Issued) => "issued",
        Ok(pb::CertificateStatus::Revoked) => "revoked",
        Ok(pb::CertificateStatus::Pending) => "pending",
        Ok(pb::CertificateStatus::Abandoned) => "abandoned",
        _ => "unknown",
    }
}

async fn timestamp(channel: Channel, a: TimestampArgs) -> Result<Vec<u8>, String> {
    let hash: HashAlg = a.hash.parse()?;
    let digest = match (&a.file, &a.digest) {
        (Some(f), _) => {
            let file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
            hash.digest_reader(file).map_err(|e| format!("{}: {e}", f.display()))?
        }
        (None, Some(h)) => hex::decode(h).map_err(|_| format!("--digest '{h}' is not hex"))?,
        (None, None) => return Err("give --file or --digest".into()),
    };
    let nonce = if a.no_nonce { Vec::new() } else { rand::random::<[u8; 8]>().to_vec() };
    let req = pb::DigestRequest {
        hash_algorithm: hash.to_string(),
        digest,
        nonce,
        cert_req: !a.no_cert,
        policy: a.policy.unwrap_or_default(),
    };
    let r = TimeStampingClient::new(channel)
        .timestamp(pb::TimestampRequest { request: Some(pb::timestamp_request::Request::Digest(req)) })
        .await
        .map_err(status_msg)?
        .into_inner();
    if r.status != i32::from(pb::TimestampStatus::Granted) {
        return Err(format!("time-stamp rejected: {}: {}", r.failure, r.reason));
    }
    match a.out {
        Some(path) => {
            std::fs::write(&path, &r.response_der).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Vec::new())
        }
        None => Ok(r.response_der),
    }
}

/// Chunks of a streamed document: small enough for any gRPC message limit.
const SIGN_CHUNK: usize = 1024 * 1024;

async fn sign(channel: Channel, a: SignArgs) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncReadExt;
    let path = a.file.clone().unwrap_or_default();
    let file_err = |e: std::io::Error| format!("{}: {e}", path.display());
    let options = pb::SignOptions {
        policy: a.policy.clone(),
        level: if a.timestamp { pb::SignatureLevel::BT } else { pb::SignatureLevel::Unspecified }.into(),
        detached: a.detached || a.digest.is_some(),
    };
    let mut client = SigningClient::new(channel).max_decoding_message_size(usize::MAX);
    let content = match (&a.digest, &a.hash, a.detached) {
        (Some(d), h, _) => {
            let hash: HashAlg = h.as_deref().unwrap_or("sha256").parse()?;
            let value = hex::decode(d).map_err(|_| format!("--digest '{d}' is not hex"))?;
            Some(pb::sign_request::Content::Digest(pb::Digest { hash_algorithm: hash.to_string(), value }))
        }
        (None, Some(_), false) => return Err("--hash sends only the digest: add --detached".into()),
        (None, Some(h), true) => {
            let hash: HashAlg = h.parse()?;
            let file = std::fs::File::open(&path).map_err(file_err)?;
            let value = hash.digest_reader(file).map_err(file_err)?;
            Some(pb::sign_request::Content::Digest(pb::Digest { hash_algorithm: hash.to_string(), value }))
        }
        (None, None, false) => Some(pb::sign_request::Content::Document(std::fs::read(&path).map_err(file_err)?)),
        (None, None, true) => None,
    };
    let r = match content {
        Some(content) => client.sign(pb::SignRequest { options: Some(options), content: Some(content) }).await,
        None => {
            let mut file = tokio::fs::File::open(&path).await.map_err(file_err)?;
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let reader = tokio::spawn(async move {
                let mut options = Some(options);
                loop {
                    let mut chunk = vec![0u8; SIGN_CHUNK];
                    let n = file.read(&mut chunk).await?;
                    chunk.truncate(n);
                    // The first message goes even for an empty file, so the server can say so.
                    if n == 0 && options.is_none() {
                        return Ok(());
                    }
                    if tx.send(pb::SignStreamRequest { options: options.take(), chunk }).await.is_err() || n == 0 {
                        return Ok::<(), std::io::Error>(());
                    }
                }
            });
            let r = client.sign_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
            reader.await.map_err(|e| e.to_string())?.map_err(file_err)?;
            r
        }
    }
    .map_err(status_msg)?
    .into_inner();
    match a.out {
        Some(path) => {
            std::fs::write(&path, &r.signature_der).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Vec::new())
        }
        None => Ok(r.signature_der),
    }
}

/// The digest algorithm of a signature's SignerInfo, read here so that only the document's hash
/// needs to travel. `None` when the signature cannot be read; the server's report says why.
fn signer_digest_alg(signature: &[u8]) -> Option<HashAlg> {
    use der::Decode;
    let der = match der::pem::decode_vec(signature) {
        Ok((_, der)) => der,
        Err(_) => signature.to_vec(),
    };
    let info = cms::content_info::ContentInfo::from_der(&der).ok()?;
    let sd = info.content.decode_as::<cms::signed_data::SignedData>().ok()?;
    let si = sd.signer_infos.0.iter().next()?;
    HashAlg::from_oid(&si.digest_alg.oid)
}

async fn verify(
    channel: Channel,
    signature: PathBuf,
    file: Option<PathBuf>,
    require_commitment: bool,
) -> Result<Vec<u8>, String> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let signature = read(&signature)?;
    let content = match (&file, signer_digest_alg(&signature)) {
        (None, _) => None,
        (Some(f), Some(alg)) => {
            let file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
            let value = alg.digest_reader(file).map_err(|e| format!("{}: {e}", f.display()))?;
            Some(pb::verify_request::Content::Digest(pb::Digest { hash_algorithm: alg.to_string(), value }))
        }
        (Some(f), None) => Some(pb::verify_request::Content::Document(read(f)?)),
    };
    let r = SigningClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .verify(pb::VerifyRequest { signature, content, require_commitment })
        .await
        .map_err(status_msg)?
        .into_inner();
    let indication = pb::Indication::try_from(r.indication).unwrap_or(pb::Indication::Unspecified);
    let mut out = format!("indication: {}\n", indication.as_str_name());
    if !r.sub_indication.is_empty() {
        out.push_str(&format!("sub_indication: {}\n", r.sub_indication));
    }
    for reason in &r.reasons {
        out.push_str(&format!("reason: {reason}\n"));
    }
    if !r.signer_subject.is_empty() {
        out.push_str(&format!("signer: {}\n", r.signer_subject));
    }
    let level = pb::SignatureLevel::try_from(r.level).unwrap_or(pb::SignatureLevel::Unspecified);
    if level != pb::SignatureLevel::Unspecified {
        out.push_str(&format!(
            "level: {}\n",
            level.as_str_name().trim_start_matches("SIGNATURE_LEVEL_").replace('_', "-")
        ));
    }
    for (name, t) in [("signing_time", &r.signing_time), ("timestamp_time", &r.timestamp_time)] {
        if t.is_some() {
            out.push_str(&format!("{name}: {}\n", time(t)));
        }
    }
    if indication != pb::Indication::TotalPassed {
        // The report goes to stdout all the same, for the person reading it.
        print!("{out}");
        return Err(format!("signature not valid: {}", r.sub_indication));
    }
    Ok(out.into_bytes())
}

/// The client credential: --client-cert/--client-key/--cacert, or the `credentials/` of --data-dir (or of
/// ./trustd-dev).
fn tls_config(cli: &Cli) -> Result<ClientTlsConfig, String> {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let (cert, key, ca) = match (&cli.client_cert, &cli.client_key) {
        (Some(cert), Some(key)) => {
            let ca = cli.cacert.as_ref().ok_or("--cacert: the root CA certificate is needed with --client-cert")?;
            (cert.clone(), key.clone(), ca.clone())
        }
        _ => {
            let dir = cli.data_dir.clone().unwrap_or_else(|| PathBuf::from("./trustd-dev"));
            let creds = dir.join(credentials::CREDENTIALS_DIR);
            if !creds.join(credentials::CERT_FILE).exists() {
                return Err(format!(
                    "no client credential in {}: give --data-dir (a trustd dev data dir) or --client-cert, --client-key and --cacert",
                    creds.display()
                ));
            }
            let ca = cli.cacert.clone().unwrap_or_else(|| creds.join(credentials::CA_FILE));
            (creds.join(credentials::CERT_FILE), creds.join(credentials::KEY_FILE), ca)
        }
    };
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&ca)?))
        .identity(Identity::from_pem(read(&cert)?, read(&key)?)))
}

/// 32 random bytes, base64url (RFC 4648 §5), and the hex SHA-256 the access policy keeps: a
/// bearer token, or a client secret.
fn client_secret(command: &ClientCommand) -> Option<String> {
    use base64::Engine;
    use sha2::Digest;
    let (what, field) = match command {
        ClientCommand::Token => ("token", "bearer_tokens_sha256"),
        ClientCommand::Secret => ("client secret", "client_secrets_sha256"),
        _ => return None,
    };
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = hex::encode(sha2::Sha256::digest(value.as_bytes()));
    Some(format!(
        "{what} (give it to the client; it is not stored anywhere): {value}\n\
         for its client in access.toml: {field} = [\"{hash}\"]\n"
    ))
}

async fn run(cli: Cli) -> Result<Vec<u8>, String> {
    if let Some(printed) = match &cli.command {
        Command::Client(command) => client_secret(command),
        _ => None,
    } {
        return Ok(printed.into_bytes());
    }
    if !cli.server.starts_with("https://") {
        return Err(format!("--server '{}': trustd's gRPC is TLS only; give an https:// URL", cli.server));
    }
    let channel = Channel::from_shared(cli.server.clone())
        .map_err(|e| format!("--server '{}': {e}", cli.server))?
        .tls_config(tls_config(&cli)?)
        .map_err(|e| format!("TLS: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {}: {}", cli.server, error_chain(&e)))?;
    let mut client = CertificateAuthorityClient::new(channel.clone());
    let mut out = String::new();
    match cli.command {
        Command::Timestamp(a) => return timestamp(channel, a).await,
        Command::Sign(a) => return sign(channel, a).await,
        Command::Log(c) => return log_cmd::run(channel, c).await,
        Command::Bench(a) => return bench::run(channel, &cli.server, a).await,
        Command::Verify { signature, file, require_commitment } => {
            return verify(channel, signature, file, require_commitment).await
        }
        Command::Tsa(TsaCommand::Chain) => {
            let chain = TimeStampingClient::new(channel)
                .get_tsa_chain(pb::GetTsaChainRequest {})
                .await
                .map_err(status_msg)?
                .into_inner();
            for c in chain.certificates_der {
                out.push_str(&pem(&c)?);
            }
        }
        Command::Ca(CaCommand::Chain { ca }) => {
            let chain = client.get_ca_chain(pb::GetCaChainRequest { ca }).await.map_err(status_msg)?.into_inner();
            for c in chain.certificates_der {
                out.push_str(&pem(&c)?);
            }
        }
        Command::Issue { profile, csr, validity } => {
            let r = issue(&mut client, profile, &csr, validity).await?;
            out.push_str(&pem(&r.certificate_der)?);
        }
        // Made above, with no server.
        Command::Client(ClientCommand::Token | ClientCommand::Secret) => {}
        Command::Credential(command) => {
            let line = |c: &pb::Credential| {
                let state = if c.enabled { "enabled" } else { "disabled" };
                format!("{}\t{}\t{}\t{}\t{state}\n", c.id, c.client, c.policy, c.key)
            };
            match command {
                CredentialCommand::Create { client: owner, policy, name, country, organization } => {
                    let req =
                        pb::CreateCredentialRequest { client: owner, policy, common_name: name, country, organization };
                    let c = client.create_credential(req).await.map_err(status_msg)?.into_inner();
                    out.push_str(&format!("{}\n", c.id));
                }
                CredentialCommand::List { client: owner } => {
                    let req = pb::ListCredentialsRequest { client: owner };
                    for c in client.list_credentials(req).await.map_err(status_msg)?.into_inner().credentials {
                        out.push_str(&line(&c));
                    }
                }
                CredentialCommand::Disable { id } => {
                    let c = client.disable_credential(pb::DisableCredentialRequest { id }).await.map_err(status_msg)?;
                    out.push_str(&line(&c.into_inner()));
                }
            }
        }
        Command::Client(ClientCommand::Issue { csr, validity }) => {
            let r = issue(&mut client, credentials::PROFILE.into(), &csr, validity).await?;
            out.push_str(&pem(&r.certificate_der)?);
            for c in r.chain_der.iter().take(1) {
                out.push_str(&pem(c)?);
            }
        }
        Command::Revoke { serial, reason, invalidity_date } => {
            let invalidity_date = invalidity_date
                .map(|d| {
                    time::OffsetDateTime::parse(&d, &time::format_description::well_known::Rfc3339)
                        .map(|t| prost_types::Timestamp { seconds: t.unix_timestamp(), nanos: 0 })
                        .map_err(|e| format!("--invalidity-date '{d}': {e}"))
                })
                .transpose()?;
            let r = client
                .revoke_certificate(pb::RevokeCertificateRequest { serial, reason, invalidity_date })
                .await
                .map_err(status_msg)?
                .into_inner();
            let state =
                if r.revoked { format!("revoked ({}) since {}", r.reason, time(&r.revoked_at)) } else { "good".into() };
            let change = if r.changed { "" } else { " (unchanged)" };
            out.push_str(&format!("{}: {state}{change}\n", r.serial));
        }
        Command::Crl { ca, der } => {
            let crl = client.get_crl(pb::GetCrlRequest { ca }).await.map_err(status_msg)?.into_inner().crl_der;
            if der {
                return Ok(crl);
            }
            out.push_str(&pem_labelled("X509 CRL", &crl)?);
        }
        Command::Cert(CertCommand::Get { serial, info }) => {
            let r =
                client.get_certificate(pb::GetCertificateRequest { serial }).await.map_err(status_msg)?.into_inner();
            if info {
                out.push_str(&format!(
                    "serial: {}\nstatus: {}\nca: {}\nprofile: {}\nsubject: {}\nsans: {}\nnot_before: {}\nnot_after: {}\nrequester: {}\ncreated_at: {}\n{}",
                    r.serial,
                    status_name(r.status),
                    r.ca,
                    r.profile,
                    r.subject,
                    r.sans.join(", "),
                    time(&r.not_before),
                    time(&r.not_after),
                    r.requester,
                    time(&r.created_at),
                    if r.revocation_reason.is_empty() {
                        String::new()
                    } else {
                        format!("revocation_reason: {}\nrevoked_at: {}\n", r.revocation_reason, time(&r.revoked_at))
                    }
                ));
            } else if r.certificate_der.is_empty() {
                return Err(format!("certificate {} is {}: it was never issued", r.serial, status_name(r.status)));
            } else {
                out.push_str(&pem(&r.certificate_der)?);
            }
        }
        Command::Cert(CertCommand::List(a)) => {
            let status = match a.status.as_deref() {
                None => pb::CertificateStatus::Unspecified,
                Some("issued") => pb::CertificateStatus::Issued,
                Some("revoked") => pb::CertificateStatus::Revoked,
                Some("pending") => pb::CertificateStatus::Pending,
                Some("abandoned") => pb::CertificateStatus::Abandoned,
                Some(s) => return Err(format!("unknown status '{s}' (issued, revoked, pending, abandoned)")),
            };
            let mut token = String::new();
            let mut left = a.limit;
            while left > 0 {
                let page = client
                    .list_certificates(pb::ListCertificatesRequest {
                        page_size: left.min(1000),
                        page_token: token.clone(),
                        profile: a.profile.clone().unwrap_or_default(),
                        subject_contains: a.subject.clone().unwrap_or_default(),
                        status: status.into(),
                    })
                    .await
                    .map_err(status_msg)?
                    .into_inner();
                for r in &page.certificates {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{}\n",
                        r.serial,
                        status_name(r.status),
                        r.profile,
                        time(&r.not_after),
                        r.subject
                    ));
                }
                left = left.saturating_sub(page.certificates.len() as u32);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
    }
    Ok(out.into_bytes())
}

// One thread: every command drives one connection, and as `bench`'s load generator, on the
// cores the daemon it measures uses, a multi-thread runtime spent more CPU and latency handing
// each gRPC call between its threads (the caller, tonic's buffer task, the HTTP/2 connection)
// than on the call itself (README, "Measuring a running daemon").
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(out) => {
            use std::io::Write;
            match std::io::stdout().write_all(&out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("trustctl: stdout: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("trustctl: {}", e.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
