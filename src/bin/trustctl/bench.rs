//! `trustctl bench`: throughput and latency of a running trustd, workload by workload, beside
//! the bare signing rate of the HSM key each one signs with, measured by the daemon in the same
//! run (`trust.v1.Diagnostics`), and the daemon's own CPU time and peak memory.
//!
//! Each row is a closed loop (`trustd::loadgen`): `c` clients each send one request after the
//! other's answer for the duration, after a warm-up whose answers are not counted. gRPC
//! workloads share one HTTP/2 connection, as a service's client stub does; HTTP workloads open
//! one keep-alive connection per client, as RFC 3161 and OCSP client libraries do.

use crate::status_msg;
use clap::{Args, ValueEnum};
use der::{Decode, Encode};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;
use trustd::api::pb;
use trustd::api::pb::certificate_authority_client::CertificateAuthorityClient;
use trustd::api::pb::diagnostics_client::DiagnosticsClient;
use trustd::api::pb::signing_client::SigningClient;
use trustd::api::pb::time_stamping_client::TimeStampingClient;
use trustd::loadgen::{self, ocsp_request, HttpConnection, Outcome, Worker};

#[derive(Args)]
pub struct BenchArgs {
    /// What to measure, comma-separated (all of them by default).
    #[arg(long, value_enum, value_delimiter = ',')]
    workload: Vec<Workload>,
    /// Concurrent clients of each row, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// How long each row runs: at most 1h.
    #[arg(long, default_value = "5s")]
    duration: humantime::Duration,
    /// Load before each row whose answers are not counted: at most 1h. Over HTTP it lasts at
    /// least 2.1 s, so that the daemon no longer counts this client's gRPC identity (the raw
    /// rates, the gRPC workloads before) as another client being served when the row starts.
    #[arg(long, default_value = "1s")]
    warmup: humantime::Duration,
    /// trustd's plain-HTTP listener, for time-stamps and OCSP over HTTP.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    http: String,
    /// The certificate profile `issue` asks for.
    #[arg(long, default_value = "tls-server")]
    profile: String,
    /// The DNS name `issue`'s CSR asks for (subject CN and SAN).
    #[arg(long, default_value = "bench.example.com")]
    name: String,
    /// Do not ask the daemon for its HSM's bare signing rates, CPU time and memory
    /// (trust.v1.Diagnostics, which the client's role must allow).
    #[arg(long)]
    no_raw: bool,
    /// Signatures in flight while measuring the bare HSM rate: 1 to 256; by default as many as
    /// the daemon has HSM sessions.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    raw_concurrency: Option<u32>,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// A kind of request to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Workload {
    /// IssueCertificate from one P-256 CSR.
    Issue,
    /// Timestamp over gRPC (a SHA-256 digest with a nonce).
    TsaGrpc,
    /// An RFC 3161 request over HTTP POST /tsa.
    TsaHttp,
    /// Signing.Sign by digest, CAdES B-B.
    #[value(name = "sign-b-b")]
    SignBB,
    /// Signing.Sign by digest, CAdES B-T (a second signature, the TSA's).
    #[value(name = "sign-b-t")]
    SignBT,
    /// OCSP over HTTP POST /ocsp without a nonce: the responder's cached answer.
    OcspCached,
    /// OCSP over HTTP POST /ocsp with a nonce: signed for each request.
    OcspNonce,
    /// Signing.Verify of a B-B signature by digest.
    Verify,
}

impl Workload {
    const ALL: [Workload; 8] = [
        Workload::Issue,
        Workload::TsaGrpc,
        Workload::TsaHttp,
        Workload::SignBB,
        Workload::SignBT,
        Workload::OcspCached,
        Workload::OcspNonce,
        Workload::Verify,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Issue => "issue",
            Workload::TsaGrpc => "tsa-grpc",
            Workload::TsaHttp => "tsa-http",
            Workload::SignBB => "sign-b-b",
            Workload::SignBT => "sign-b-t",
            Workload::OcspCached => "ocsp-cached",
            Workload::OcspNonce => "ocsp-nonce",
            Workload::Verify => "verify",
        }
    }

    fn over_http(self) -> bool {
        matches!(self, Workload::TsaHttp | Workload::OcspCached | Workload::OcspNonce)
    }

    /// The key whose bare rate bounds the workload; `None` when it signs nothing.
    fn key(self) -> Option<pb::ServiceKey> {
        match self {
            Workload::Issue => Some(pb::ServiceKey::IssuingCa),
            Workload::TsaGrpc | Workload::TsaHttp => Some(pb::ServiceKey::Tsa),
            Workload::SignBB | Workload::SignBT => Some(pb::ServiceKey::DocumentSigner),
            Workload::OcspCached | Workload::OcspNonce => Some(pb::ServiceKey::Ocsp),
            Workload::Verify => None,
        }
    }
}

/// The longest row or warm-up: a longer one measures nothing a shorter one does not, and a
/// mistyped unit should not hold a daemon under load for days.
const LONGEST: Duration = Duration::from_secs(3600);

/// How long the daemon may count a client as being served after its last request (one to two
/// seconds, `api::limits`).
const RECENT_CLIENT: Duration = Duration::from_millis(2100);

/// The bare signing rate of one key.
#[derive(Serialize)]
struct RawRate {
    key: &'static str,
    scheme: String,
    per_second: f64,
    concurrency: u32,
}

/// How long the store's disk took to make a write durable (the embedded store's only).
#[derive(Serialize)]
struct StoreSync {
    write_bytes: u32,
    back_to_back_us: u64,
    after_idle_us: u64,
}

#[derive(Serialize)]
struct Row {
    workload: Workload,
    concurrency: usize,
    ops: u64,
    errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    seconds: f64,
    per_second: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    /// Throughput over the bare signing rate of the workload's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    of_raw: Option<f64>,
    /// The daemon's CPU time per answered request (of the warm-up and the row), apart from
    /// this client's.
    #[serde(skip_serializing_if = "Option::is_none")]
    daemon_cpu_us_per_op: Option<f64>,
    /// This client's own CPU time per answered request, over the same span: what the load
    /// generator takes from cores it shares with a local daemon.
    load_cpu_us_per_op: f64,
}

#[derive(Serialize)]
struct Report {
    server: String,
    duration_s: f64,
    warmup_s: f64,
    raw_hsm: Vec<RawRate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    store_sync: Option<StoreSync>,
    results: Vec<Row>,
    #[serde(skip_serializing_if = "Option::is_none")]
    daemon_peak_rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hsm_sessions: Option<u32>,
}

fn key_name(k: pb::ServiceKey) -> &'static str {
    match k {
        pb::ServiceKey::IssuingCa => "issuing CA",
        pb::ServiceKey::Tsa => "TSA",
        pb::ServiceKey::Ocsp => "OCSP",
        pb::ServiceKey::DocumentSigner => "document signer",
        pb::ServiceKey::Log => "log",
        pb::ServiceKey::Unspecified => "unspecified",
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `host:port` of an `http://` URL.
fn http_authority(url: &str) -> Result<String, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("--http '{url}': {e}"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(a)) if a.port().is_some() => Ok(a.to_string()),
        (Some("http"), Some(a)) => Ok(format!("{}:80", a.host())),
        _ => Err(format!("--http '{url}': give trustd's plain-HTTP listener as http://HOST:PORT")),
    }
}

/// A P-256 CSR for `name`, signed with a key made here for the benchmark (the client's key,
/// not the service's).
fn csr(name: &str) -> Result<Vec<u8>, String> {
    use x509_cert::builder::{Builder, RequestBuilder};
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
    let subject = format!("CN={name}").parse().map_err(|e| format!("--name '{name}': {e}"))?;
    let mut builder = RequestBuilder::new(subject, &key).map_err(|e| e.to_string())?;
    let dns = der::asn1::Ia5String::new(name).map_err(|e| format!("--name '{name}': {e}"))?;
    builder.add_extension(&SubjectAltName(vec![GeneralName::DnsName(dns)])).map_err(|e| e.to_string())?;
    let req = builder.build::<p256::ecdsa::DerSignature>().map_err(|e| e.to_string())?;
    req.to_der().map_err(|e| e.to_string())
}

/// A detached signature at `level` over a SHA-256 digest.
fn digest_request(level: pb::SignatureLevel, value: Vec<u8>) -> pb::SignRequest {
    pb::SignRequest {
        options: Some(pb::SignOptions { policy: String::new(), level: level.into(), detached: true }),
        content: Some(pb::sign_request::Content::Digest(pb::Digest { hash_algorithm: "sha256".into(), value })),
    }
}

fn ocsp_successful(body: &[u8]) -> Result<(), String> {
    let r = x509_ocsp::OcspResponse::from_der(body).map_err(|e| format!("not an OCSP response: {e}"))?;
    match r.response_status {
        x509_ocsp::OcspResponseStatus::Successful if r.response_bytes.is_some() => Ok(()),
        s => Err(format!("OCSP response status {s:?}")),
    }
}

/// What the workers of a workload need, made once before its rows.
struct Fixture {
    channel: Channel,
    http: String,
    csr: Vec<u8>,
    profile: String,
    /// OCSP: the issuing CA and a certificate it issued.
    ocsp: Option<(x509_cert::Certificate, x509_cert::Certificate)>,
    /// Verify: a B-B signature and the digest it signs.
    signed: Option<(Vec<u8>, Vec<u8>)>,
}

impl Fixture {
    async fn new(channel: Channel, a: &BenchArgs, workloads: &[Workload]) -> Result<Fixture, String> {
        let mut f = Fixture {
            channel,
            http: http_authority(&a.http)?,
            csr: csr(&a.name)?,
            profile: a.profile.clone(),
            ocsp: None,
            signed: None,
        };
        if workloads.iter().any(|w| matches!(w, Workload::OcspCached | Workload::OcspNonce)) {
            let mut ca = CertificateAuthorityClient::new(f.channel.clone());
            let issued = ca
                .issue_certificate(pb::IssueCertificateRequest {
                    profile: f.profile.clone(),
                    csr: f.csr.clone(),
                    validity_seconds: 0,
                })
                .await
                .map_err(|s| format!("issuing the certificate OCSP is asked about: {}", status_msg(s)))?
                .into_inner();
            let chain = ca
                .get_ca_chain(pb::GetCaChainRequest { ca: String::new() })
                .await
                .map_err(|s| format!("the CA chain: {}", status_msg(s)))?
                .into_inner();
            let parse = |der: &[u8]| x509_cert::Certificate::from_der(der).map_err(|e| e.to_string());
            let issuer = chain.certificates_der.first().ok_or("the CA chain is empty")?;
            f.ocsp = Some((parse(issuer)?, parse(&issued.certificate_der)?));
        }
        if workloads.contains(&Workload::Verify) {
            let digest = rand::random::<[u8; 32]>().to_vec();
            let signed = SigningClient::new(f.channel.clone())
                .sign(digest_request(pb::SignatureLevel::BB, digest.clone()))
                .await
                .map_err(|s| format!("the signature Verify checks: {}", status_msg(s)))?
                .into_inner();
            f.signed = Some((signed.signature_der, digest));
        }
        Ok(f)
    }

    /// `c` workers of `w`.
    async fn workers(&self, w: Workload, c: usize) -> Result<Vec<Call>, String> {
        let mut out: Vec<Call> = Vec::with_capacity(c);
        for _ in 0..c {
            out.push(self.worker(w).await?);
        }
        Ok(out)
    }

    async fn worker(&self, w: Workload) -> Result<Call, String> {
        let channel = self.channel.clone();
        Ok(match w {
            Workload::Issue => {
                let (csr, profile) = (self.csr.clone(), self.profile.clone());
                let client = CertificateAuthorityClient::new(channel);
                call(move || {
                    let mut client = client.clone();
                    let req =
                        pb::IssueCertificateRequest { profile: profile.clone(), csr: csr.clone(), validity_seconds: 0 };
                    async move {
                        let r = client.issue_certificate(req).await.map_err(status_msg)?.into_inner();
                        if r.certificate_der.is_empty() {
                            return Err("no certificate in the answer".into());
                        }
                        Ok(())
                    }
                })
            }
            Workload::TsaGrpc => {
                let client = TimeStampingClient::new(channel);
                call(move || {
                    let mut client = client.clone();
                    let req = pb::DigestRequest {
                        hash_algorithm: "sha256".into(),
                        digest: rand::random::<[u8; 32]>().to_vec(),
                        nonce: rand::random::<[u8; 8]>().to_vec(),
                        cert_req: true,
                        policy: String::new(),
                    };
                    async move {
                        let r = client
                            .timestamp(pb::TimestampRequest {
                                request: Some(pb::timestamp_request::Request::Digest(req)),
                            })
                            .await
                            .map_err(status_msg)?
                            .into_inner();
                        if r.status() != pb::TimestampStatus::Granted {
                            return Err(format!("rejected: {}: {}", r.failure, r.reason));
                        }
                        Ok(())
                    }
                })
            }
            Workload::TsaHttp => {
                let conn = Arc::new(tokio::sync::Mutex::new(HttpConnection::connect(&self.http).await?));
                call(move || {
                    let conn = conn.clone();
                    async move {
                        let digest: [u8; 32] = rand::random();
                        let nonce: [u8; 8] = rand::random();
                        let req = trustd::tsa::request_from_digest("sha256", &digest, &nonce, true, "")?;
                        let der = req.to_der().map_err(|e| e.to_string())?;
                        let body = conn
                            .lock()
                            .await
                            .post("/tsa", "application/timestamp-query", "application/timestamp-reply", der)
                            .await?;
                        if !trustd::tsa::is_granted(&body) {
                            return Err("the TimeStampResp grants no token".into());
                        }
                        Ok(())
                    }
                })
            }
            Workload::SignBB | Workload::SignBT => {
                let level = if w == Workload::SignBB { pb::SignatureLevel::BB } else { pb::SignatureLevel::BT };
                let client = SigningClient::new(channel);
                call(move || {
                    let mut client = client.clone();
                    async move {
                        let r = client
                            .sign(digest_request(level, rand::random::<[u8; 32]>().to_vec()))
                            .await
                            .map_err(status_msg)?
                            .into_inner();
                        if r.signature_der.is_empty() {
                            return Err("no signature in the answer".into());
                        }
                        Ok(())
                    }
                })
            }
            Workload::OcspCached | Workload::OcspNonce => {
                let (issuer, cert) = self.ocsp.clone().ok_or("no OCSP fixture")?;
                let nonce = w == Workload::OcspNonce;
                let cached = ocsp_request(&issuer, &cert, false)?;
                let conn = Arc::new(tokio::sync::Mutex::new(HttpConnection::connect(&self.http).await?));
                call(move || {
                    let conn = conn.clone();
                    let req = if nonce { ocsp_request(&issuer, &cert, true) } else { Ok(cached.clone()) };
                    async move {
                        let body = conn
                            .lock()
                            .await
                            .post("/ocsp", "application/ocsp-request", "application/ocsp-response", req?)
                            .await?;
                        ocsp_successful(&body)
                    }
                })
            }
            Workload::Verify => {
                let (signature, digest) = self.signed.clone().ok_or("no signature to verify")?;
                let client = SigningClient::new(channel);
                call(move || {
                    let mut client = client.clone();
                    let req = pb::VerifyRequest {
                        signature: signature.clone(),
                        content: Some(pb::verify_request::Content::Digest(pb::Digest {
                            hash_algorithm: "sha256".into(),
                            value: digest.clone(),
                        })),
                        require_commitment: false,
                    };
                    async move {
                        let r = client.verify(req).await.map_err(status_msg)?.into_inner();
                        if r.indication() != pb::Indication::TotalPassed {
                            return Err(format!("indication {:?}: {}", r.indication(), r.sub_indication));
                        }
                        Ok(())
                    }
                })
            }
        })
    }
}

/// A worker of any workload: a closure making one request.
type Call = Box<dyn FnMut() -> BoxFuture + Send>;
type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

fn call<F, Fut>(mut f: F) -> Call
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    Box::new(move || Box::pin(f()))
}

/// A progress bar on stderr for one run (hidden when stderr is not a terminal).
async fn with_progress<W: Worker>(label: String, workers: Vec<W>, duration: Duration) -> (Vec<W>, Outcome) {
    let bar = ProgressBar::new(duration.as_millis().try_into().unwrap_or(u64::MAX));
    if let Ok(style) = ProgressStyle::with_template("{prefix:>22} [{bar:30}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label);
    let done = Arc::new(AtomicU64::new(0));
    let ticker = {
        let (bar, done) = (bar.clone(), done.clone());
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                bar.set_position(start.elapsed().as_millis().try_into().unwrap_or(u64::MAX));
                let n = done.load(Ordering::Relaxed);
                bar.set_message(format!("{n} requests, {:.0}/s", n as f64 / start.elapsed().as_secs_f64()));
            }
        })
    };
    let out = loadgen::run(workers, duration, done).await;
    ticker.abort();
    bar.finish_and_clear();
    out
}

async fn process_stats(d: &mut Option<DiagnosticsClient<Channel>>) -> Option<pb::GetProcessStatsResponse> {
    let client = d.as_mut()?;
    client.get_process_stats(pb::GetProcessStatsRequest {}).await.ok().map(|r| r.into_inner())
}

/// The store's sync latency, said on stderr unless `quiet`; none where the daemon cannot
/// measure it (a PostgreSQL store), which is said too.
async fn store_sync(d: &mut DiagnosticsClient<Channel>, quiet: bool) -> Option<StoreSync> {
    match d.measure_store_sync(pb::MeasureStoreSyncRequest {}).await {
        Ok(r) => {
            let r = r.into_inner();
            if !quiet {
                eprintln!(
                    "store's disk: a write of {} KiB made durable (fdatasync) in {} µs back to back, {} µs after 1 ms \
                     idle (medians)",
                    r.write_bytes / 1024,
                    r.back_to_back_us,
                    r.after_idle_us
                );
                if let Some(hint) = idle_sync_hint(r.back_to_back_us, r.after_idle_us) {
                    eprintln!("{hint}");
                }
            }
            Some(StoreSync {
                write_bytes: r.write_bytes,
                back_to_back_us: r.back_to_back_us,
                after_idle_us: r.after_idle_us,
            })
        }
        Err(s) => {
            if !quiet {
                eprintln!("store's disk: not measured: {}", status_msg(s));
            }
            None
        }
    }
}

/// What to make of a sync that is much slower after idle than back to back: a lone request
/// (c=1) pays the slower figure for its record, while under load syncs come back to back.
fn idle_sync_hint(back_to_back_us: u64, after_idle_us: u64) -> Option<String> {
    (after_idle_us >= 200 && after_idle_us > back_to_back_us.saturating_mul(4)).then(|| {
        "  a lone request's record waits the slower one; on a virtual machine that is mostly its idle vCPUs \
         halting (README: \"On a virtual machine, let idle vCPUs poll\")"
            .to_string()
    })
}

async fn raw_rate(
    d: &mut DiagnosticsClient<Channel>,
    key: pb::ServiceKey,
    duration: Duration,
    concurrency: u32,
) -> Result<RawRate, String> {
    let duration_ms = duration.as_millis().clamp(100, 10_000) as u32;
    let label = format!("raw HSM: {}", key_name(key));
    let bar = ProgressBar::new_spinner().with_prefix(label);
    if let Ok(style) = ProgressStyle::with_template("{prefix:>22} {spinner}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    let r = d.measure_signing_rate(pb::MeasureSigningRateRequest { key: key.into(), duration_ms, concurrency }).await;
    bar.finish_and_clear();
    let r = r
        .map_err(|s| {
            format!("the HSM's bare signing rate of the {} key: {} (or give --no-raw)", key_name(key), status_msg(s))
        })?
        .into_inner();
    Ok(RawRate {
        key: key_name(key),
        scheme: r.scheme,
        per_second: r.signatures as f64 / (r.elapsed_us.max(1) as f64 / 1e6),
        concurrency: r.concurrency,
    })
}

/// The report for people: a line per row, then the daemon's memory.
fn table(report: &Report) -> String {
    let mut t = format!(
        "{:<12} {:>5} {:>9} {:>8} {:>8} {:>8} {:>7} {:>7} {:>10} {:>10}\n",
        "workload", "conc", "per s", "p50 ms", "p90 ms", "p99 ms", "errors", "of raw", "cpu µs/op", "load µs/op"
    );
    let opt = |v: Option<f64>, digits: usize| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"));
    for row in &report.results {
        t.push_str(&format!(
            "{:<12} {:>5} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>7} {:>10} {:>10.0}\n",
            row.workload.name(),
            row.concurrency,
            row.per_second,
            row.p50_ms,
            row.p90_ms,
            row.p99_ms,
            row.errors,
            opt(row.of_raw, 2),
            opt(row.daemon_cpu_us_per_op, 0),
            row.load_cpu_us_per_op,
        ));
    }
    if let (Some(peak), Some(sessions)) = (report.daemon_peak_rss_bytes, report.hsm_sessions) {
        t.push_str(&format!("daemon: peak RSS {} MiB, {sessions} HSM sessions\n", peak / (1024 * 1024)));
    }
    t
}

/// Runs the benchmark; the report (a table, or JSON with `--json`) is the output. Failed
/// requests are counted and reported; any makes the command fail after the report.
pub async fn run(channel: Channel, server: &str, a: BenchArgs) -> Result<Vec<u8>, String> {
    let workloads = if a.workload.is_empty() { Workload::ALL.to_vec() } else { a.workload.clone() };
    if a.concurrency.is_empty() || a.concurrency.iter().any(|&c| c == 0 || c > 10_000) {
        return Err("--concurrency: give counts of 1 to 10000".into());
    }
    let (duration, warmup): (Duration, Duration) = (a.duration.into(), a.warmup.into());
    if duration.is_zero() || duration > LONGEST {
        return Err("--duration: give more than zero and at most 1h".into());
    }
    if warmup > LONGEST {
        return Err("--warmup: give at most 1h".into());
    }
    let fixture = Fixture::new(channel.clone(), &a, &workloads).await?;
    let mut diagnostics = (!a.no_raw).then(|| DiagnosticsClient::new(channel));
    let mut report = Report {
        server: server.to_owned(),
        duration_s: duration.as_secs_f64(),
        warmup_s: warmup.as_secs_f64(),
        raw_hsm: Vec::new(),
        store_sync: None,
        results: Vec::new(),
        daemon_peak_rss_bytes: None,
        hsm_sessions: None,
    };
    if !a.json {
        eprintln!("trustctl bench against {server}: {duration:?} per row after {warmup:?} of warm-up");
    }
    if let Some(d) = &mut diagnostics {
        report.store_sync = store_sync(d, a.json).await;
    }
    for w in workloads {
        let raw = match (&mut diagnostics, w.key()) {
            (Some(d), Some(key)) => match report.raw_hsm.iter().position(|r| r.key == key_name(key)) {
                Some(i) => Some(report.raw_hsm[i].per_second),
                None => {
                    let r = raw_rate(d, key, duration, a.raw_concurrency.unwrap_or(0)).await?;
                    let rate = r.per_second;
                    if !a.json {
                        eprintln!(
                            "raw HSM signing rate, {} key ({}): {:.0}/s with {} in flight",
                            r.key, r.scheme, r.per_second, r.concurrency
                        );
                    }
                    report.raw_hsm.push(r);
                    Some(rate)
                }
            },
            _ => None,
        };
        // One request first: a profile the client may not use, a policy it may not sign under,
        // a listener that is not there fail the command at once, not every request of a row.
        let mut probe = fixture.worker(w).await?;
        probe().await.map_err(|e| format!("{}: the first request failed: {e}", w.name()))?;
        for &c in &a.concurrency {
            let mut workers = fixture.workers(w, c).await?;
            // An HTTP row's warm-up lasts at least as long as the daemon counts a client as
            // being served: the gRPC identity's work just before (the row before, the raw HSM
            // rate) would hold the HTTP client to its shared limit ([limits]
            // max_requests_per_client_shared). The daemon's CPU time is read by a probe, which
            // holds no one to a share.
            let before = process_stats(&mut diagnostics).await;
            let load_before = trustd::diagnostics::process_stats().cpu_time;
            let warmup = if w.over_http() { warmup.max(RECENT_CLIENT) } else { warmup };
            let mut warm = Outcome::default();
            if !warmup.is_zero() {
                (workers, warm) = with_progress(format!("{} c={c} warm-up", w.name()), workers, warmup).await;
            }
            let (_, out) = with_progress(format!("{} c={c}", w.name()), workers, duration).await;
            let load_cpu = trustd::diagnostics::process_stats().cpu_time.saturating_sub(load_before);
            let after = process_stats(&mut diagnostics).await;
            let answered = (warm.ops + out.ops).max(1) as f64;
            let cpu = before.zip(after).map(|(b, a)| a.cpu_time_us.saturating_sub(b.cpu_time_us) as f64 / answered);
            let row = Row {
                workload: w,
                concurrency: c,
                ops: out.ops,
                errors: out.errors,
                first_error: out.first_error.clone(),
                seconds: out.elapsed.as_secs_f64(),
                per_second: out.rate(),
                p50_ms: ms(out.percentile(0.50)),
                p90_ms: ms(out.percentile(0.90)),
                p99_ms: ms(out.percentile(0.99)),
                of_raw: raw.map(|r| out.rate() / r.max(f64::MIN_POSITIVE)),
                daemon_cpu_us_per_op: cpu,
                load_cpu_us_per_op: load_cpu.as_secs_f64() * 1e6 / answered,
            };
            if let (false, Some(e)) = (a.json, &row.first_error) {
                eprintln!("{} c={c}: {} requests failed, the first: {e}", w.name(), row.errors);
            }
            report.results.push(row);
        }
    }
    if let Some(s) = process_stats(&mut diagnostics).await {
        report.daemon_peak_rss_bytes = Some(s.peak_rss_bytes);
        report.hsm_sessions = Some(s.hsm_sessions);
    }
    let failed: u64 = report.results.iter().map(|r| r.errors).sum();
    let out = if a.json {
        let mut j = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        j.push('\n');
        j
    } else {
        table(&report)
    };
    if failed > 0 {
        use std::io::Write;
        let _ = std::io::stdout().write_all(out.as_bytes());
        return Err(format!("{failed} requests failed (the first of each row is above)"));
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::idle_sync_hint;

    #[test]
    fn a_sync_much_slower_after_idle_is_explained_and_a_steady_disk_is_not() {
        // As this project's VM measured (README, "Measuring a running daemon").
        assert!(idle_sync_hint(47, 790).unwrap().contains("idle vCPUs"));
        assert_eq!(idle_sync_hint(47, 150), None, "too small to matter");
        assert_eq!(idle_sync_hint(400, 900), None, "a slow disk, not an idle one");
        assert_eq!(idle_sync_hint(0, 0), None);
        assert!(idle_sync_hint(u64::MAX / 2, u64::MAX).is_none());
        assert!(idle_sync_hint(0, u64::MAX).is_some());
    }
}
