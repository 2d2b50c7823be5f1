//! `trustctl`: the gRPC client for operators and scripts. Exit 0 on success; otherwise a
//! one-line reason on stderr and a non-zero exit.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use trustd::api::pb;
use trustd::api::pb::certificate_authority_client::CertificateAuthorityClient;

#[derive(Parser)]
#[command(name = "trustctl", version, about = "Client for trustd")]
struct Cli {
    /// trustd's gRPC endpoint.
    #[arg(long, env = "TRUSTD_SERVER", default_value = "http://127.0.0.1:50051", global = true)]
    server: String,
    /// A dev server's data dir (for client credentials once the API requires them).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
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
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).map_err(|e| e.to_string())
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

async fn run(cli: Cli) -> Result<String, String> {
    let mut client = CertificateAuthorityClient::connect(cli.server.clone())
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", cli.server))?;
    let mut out = String::new();
    match cli.command {
        Command::Ca(CaCommand::Chain { ca }) => {
            let chain = client.get_ca_chain(pb::GetCaChainRequest { ca }).await.map_err(status_msg)?.into_inner();
            for c in chain.certificates_der {
                out.push_str(&pem(&c)?);
            }
        }
        Command::Issue { profile, csr, validity } => {
            let csr = std::fs::read(&csr).map_err(|e| format!("{}: {e}", csr.display()))?;
            let r = client
                .issue_certificate(pb::IssueCertificateRequest {
                    profile,
                    csr,
                    validity_seconds: validity.map_or(0, |d| d.as_secs()),
                })
                .await
                .map_err(status_msg)?
                .into_inner();
            out.push_str(&pem(&r.certificate_der)?);
        }
        Command::Cert(CertCommand::Get { serial, info }) => {
            let r =
                client.get_certificate(pb::GetCertificateRequest { serial }).await.map_err(status_msg)?.into_inner();
            if info {
                out.push_str(&format!(
                    "serial: {}\nstatus: {}\nca: {}\nprofile: {}\nsubject: {}\nsans: {}\nnot_before: {}\nnot_after: {}\nrequester: {}\ncreated_at: {}\n",
                    r.serial,
                    status_name(r.status),
                    r.ca,
                    r.profile,
                    r.subject,
                    r.sans.join(", "),
                    time(&r.not_before),
                    time(&r.not_after),
                    r.requester,
                    time(&r.created_at)
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
    Ok(out)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("trustctl: {}", e.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
