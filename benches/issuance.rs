//! Issuance throughput and latency against a real `trustd dev` (release build): gRPC
//! IssueCertificate over mTLS (the dev operator credential) at concurrency 1, 16 and 64, beside
//! the ceiling measured in the same run: building, HSM-signing and encoding one certificate after
//! another on one thread, with the issuing CA's key in the daemon's token (and, apart, what parsing
//! the CSR and verifying its proof of possession cost). Not a test: it asserts nothing about speed
//! and prints figures.
//!
//! With `cfssl` and `wrk` installed (Debian's golang-cfssl and wrk), each row is followed by the
//! peer's in the same minutes: CFSSL 1.2's `cfssl serve` (software P-256 CA key, every certificate
//! stored in its SQLite certdb) driven by wrk over its JSON sign API with the same CSR, as
//! `../shared/bench/peer-issue` does (whose trustd half, h2load, cannot present the client
//! certificate trustd's gRPC now requires).
//!
//!     cargo bench --bench issuance [-- SECONDS] [--rounds N]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use trustd::api::pb;
use trustd::api::pb::certificate_authority_client::CertificateAuthorityClient;
use trustd::ca::cert::{self, CertSpec, Issuer, UrlContext};
use trustd::ca::{csr, request, CaId};
use trustd::hsm::{Hsm, HsmConfig, HsmSigner, KeyRef, Pin};
use trustd::policy::Policies;
use trustd::serial::Serial;
use x509_cert::Certificate;

const ISSUING_KEY: &str = "trustd-issuing-ca";
const PROFILE: &str = "tls-server";

fn run(dir: &Path, cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A P-256 CSR for a public name the tls-server profile takes, made by openssl: DER, and PEM
/// in `dir/bench.csr`.
fn csr_der(dir: &Path) -> Vec<u8> {
    let subject = ["-subj", "/CN=bench.example.com", "-addext", "subjectAltName=DNS:bench.example.com"];
    run(dir, "openssl", &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "bench.key"]);
    run(dir, "openssl", &[&["req", "-new", "-key", "bench.key", "-out", "bench.csr"][..], &subject].concat());
    run(dir, "openssl", &["req", "-in", "bench.csr", "-outform", "DER", "-out", "bench.der"]);
    std::fs::read(dir.join("bench.der")).expect("csr")
}

/// CFSSL serving its sign API on a free loopback port, as `../shared/bench/peer-issue` sets it
/// up.
struct Cfssl {
    child: Child,
    url: String,
    dir: PathBuf,
}

/// wrk's Lua script for CFSSL's sign API (`../shared/bench/peer-issue`'s, printing p50 too).
const SIGN_LUA: &str = r#"local f = io.open("sign.json", "rb"); wrk.body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body) if status ~= 200 or not body:find('"success":true') then bad = bad + 1 end end
function done(summary, latency, requests)
  local n = 0; for _, t in ipairs(threads) do n = n + t:get("bad") end
  io.write(string.format("RESULT %d %.3f %.3f %d %.3f\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, n, latency:percentile(99) / 1000))
end
"#;

const CERTDB_SCHEMA: &str = "CREATE TABLE certificates (serial_number blob NOT NULL, \
    authority_key_identifier blob NOT NULL, ca_label blob, status blob NOT NULL, reason int, expiry timestamp, \
    revoked_at timestamp, pem blob NOT NULL, PRIMARY KEY(serial_number, authority_key_identifier)); \
    CREATE TABLE ocsp_responses (serial_number blob NOT NULL, authority_key_identifier blob NOT NULL, \
    body blob NOT NULL, expiry timestamp, PRIMARY KEY(serial_number, authority_key_identifier));";

impl Cfssl {
    /// `None` when cfssl, wrk or sqlite3 is not installed.
    fn start(dir: &Path) -> Option<Cfssl> {
        let have = |tool: &str| {
            Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
        };
        if !["cfssl", "wrk", "sqlite3"].into_iter().all(have) {
            println!("(no cfssl, wrk or sqlite3 here: the peer's rows are left out; apt-get install golang-cfssl wrk sqlite3)");
            return None;
        }
        let ca = ["-new", "-x509", "-key", "ca.key", "-subj", "/CN=peer CA", "-days", "30", "-out", "ca.pem"];
        run(dir, "openssl", &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"]);
        run(dir, "openssl", &[&["req"][..], &ca].concat());
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
        write(
            "cfg.json",
            r#"{"signing": {"default": {"expiry": "2160h", "usages": ["digital signature", "server auth"]}}}"#,
        );
        write("schema.sql", CERTDB_SCHEMA);
        run(dir, "sh", &["-c", "sqlite3 certs.db < schema.sql"]);
        write("db.json", &serde_json::json!({"driver": "sqlite3", "data_source": dir.join("certs.db")}).to_string());
        let pem = std::fs::read_to_string(dir.join("bench.csr")).expect("csr");
        write(
            "sign.json",
            &serde_json::json!({"certificate_request": pem, "hosts": ["bench.example.com"]}).to_string(),
        );
        write("sign.lua", SIGN_LUA);
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let log = std::fs::File::create(dir.join("cfssl.log")).expect("log");
        let child = Command::new("cfssl")
            .args(["serve", "-address", "127.0.0.1", "-port", &port.to_string(), "-ca", "ca.pem", "-ca-key", "ca.key"])
            .args(["-config", "cfg.json", "-db-config", "db.json", "-loglevel", "5"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cfssl serve");
        let peer = Cfssl { child, url: format!("http://127.0.0.1:{port}/api/v1/cfssl/sign"), dir: dir.to_owned() };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(peer);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("cfssl serve did not start: {}", std::fs::read_to_string(dir.join("cfssl.log")).unwrap_or_default());
    }

    /// One row driven by wrk (a thread per 32 connections, at most 2): certificates/s, p50 and
    /// p99 in ms, failed requests, and the peer's CPU time per certificate in µs.
    fn row(&self, c: usize, secs: Duration) -> (f64, f64, f64, u64, f64) {
        let pid = self.child.id().to_string();
        let before = cpu_time_of(&pid);
        let (threads, conns, time) =
            (c.div_ceil(32).clamp(1, 2).to_string(), c.to_string(), format!("{}s", secs.as_secs()));
        let args = ["-t", &threads, "-c", &conns, "-d", &time, "--timeout", "10s", "-s", "sign.lua", &self.url];
        let out = run(&self.dir, "wrk", &args);
        let cpu = cpu_time_of(&pid).saturating_sub(before);
        let f: Vec<f64> = out
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .expect("wrk RESULT line")
            .split_whitespace()
            .map(|v| v.parse().expect("number"))
            .collect();
        let (n, elapsed, p50, bad, p99) = (f[0], f[1], f[2], f[3] as u64, f[4]);
        (n / elapsed, p50, p99, bad, cpu.as_secs_f64() * 1e6 / n.max(1.0))
    }
}

impl Drop for Cfssl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Certificates per second built, signed in the HSM and encoded one after another on this
/// thread, as `CertificateAuthority::issue` does between its checks and its records; and CSRs
/// per second parsed and verified.
fn ceilings(data: &Path, issuing_der: &[u8], csr: &[u8], secs: Duration) -> (f64, f64) {
    let pin = std::fs::read_to_string(data.join("hsm-pin")).expect("pin");
    let cfg = HsmConfig {
        module: trustd::daemon::SOFTHSM_MODULE.into(),
        token_label: trustd::daemon::DEV_TOKEN_LABEL.into(),
        max_sessions: 1,
        // As `trustd dev` signs, so the ceiling is the daemon's own.
        session_key_copies: true,
    };
    let hsm = Hsm::open(&cfg, Pin::new(pin)).expect("open token");
    let key = HsmSigner::new(&hsm, KeyRef::label(ISSUING_KEY), None).expect("issuing key");
    let ca: Certificate = der::Decode::from_der(issuing_der).expect("issuing CA certificate");
    let key_id = trustd::ca::subject_key_id(&ca).expect("SKI");
    let policies = Policies::load(&data.join("policies")).expect("policies");
    let profile = policies.profile(PROFILE).expect("profile");
    let urls = UrlContext { base: "http://bench.test".into(), ca: CaId::ISSUING };
    let verified = csr::parse(csr).expect("csr");
    let valid = request::validate(&verified, profile, None, trustd::ca::KeyCustody::Client).expect("valid");
    let issuer = Issuer { name: &ca.tbs_certificate.subject, key_id: &key_id, scheme: key.scheme() };

    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < secs {
        let extensions = cert::end_entity_extensions(profile, &valid.sans, false, &verified.public_key, &key_id, &urls)
            .expect("ext");
        let spec = CertSpec {
            serial: Serial::random(),
            subject: cert::build_name(&valid.subject).expect("name"),
            public_key: verified.public_key.clone(),
            not_before: 1_800_000_000,
            not_after: 1_800_000_000 + valid.validity.as_secs(),
            extensions,
        };
        let tbs_der = der::Encode::to_der(&cert::tbs(spec, &issuer).expect("tbs")).expect("tbs DER");
        let signature = key.sign(&tbs_der).expect("sign");
        std::hint::black_box(cert::signed_der(&tbs_der, key.scheme(), &signature).expect("certificate"));
        n += 1;
    }
    let build = n as f64 / start.elapsed().as_secs_f64();
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < secs {
        std::hint::black_box(csr::parse(csr).expect("csr"));
        n += 1;
    }
    (build, n as f64 / start.elapsed().as_secs_f64())
}

// One thread for the load, as `trustctl bench` (see there).
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(1);
    let secs = Duration::from_secs(
        args.iter().skip(1).take_while(|a| *a != "--rounds").find_map(|a| a.parse().ok()).unwrap_or(5),
    );
    let d = start();
    std::env::set_var("SOFTHSM2_CONF", d.data_dir().join("softhsm2.conf"));
    let scratch = tempfile::tempdir().expect("temp dir");
    let csr = csr_der(scratch.path());
    let (status, _, issuing_der) = d.http_get("/ca/issuing.crt");
    assert_eq!(status, 200, "issuing CA certificate");

    let (raw1, raw2) = raw_hsm_rates(&d.data_dir(), ISSUING_KEY, secs).await;
    let data = d.data_dir();
    let (ceiling, csr_rate) = {
        let (data, der, csr) = (data.clone(), issuing_der.clone(), csr.clone());
        tokio::task::spawn_blocking(move || ceilings(&data, &der, &csr, secs)).await.expect("ceiling")
    };
    println!(
        "raw HSM signing rate, issuing CA key (ECDSA P-256, SoftHSM2): {raw1:.0}/s with 1 thread, {raw2:.0}/s with 2"
    );
    println!("ceiling: build + HSM-sign + encode on one thread {ceiling:.0}/s; CSR parse + proof of possession {csr_rate:.0}/s");
    println!("ratios below are to the ceiling ({ceiling:.0}/s)");
    report_header();

    let peer = Cfssl::start(scratch.path());
    let channel = d.channel().await;
    for c in std::iter::repeat_n([1, 16, 64], rounds).flatten() {
        let (channel, csr) = (channel.clone(), Arc::new(csr.clone()));
        let r = d
            .measure(load(c, secs, move || {
                let (mut client, csr) = (CertificateAuthorityClient::new(channel.clone()), csr.clone());
                async move {
                    let request =
                        pb::IssueCertificateRequest { profile: PROFILE.into(), csr: csr.to_vec(), validity_seconds: 0 };
                    let r = client.issue_certificate(request).await.expect("rpc").into_inner();
                    assert!(!r.certificate_der.is_empty());
                }
            }))
            .await;
        report("issue grpc", c, &r, ceiling);
        if let Some(peer) = &peer {
            let (rate, p50, p99, bad, cpu) = peer.row(c, secs);
            println!(
                "{:<12} {c:>4} {rate:>10.0} {:>7.1}% {p50:>9.2} {p99:>9.2} {cpu:>10.0} {:>10}   trustd/cfssl {:.2}{}",
                "cfssl sign",
                100.0 * rate / ceiling,
                "-",
                r.rate() / rate,
                if bad > 0 { format!(", {bad} failed") } else { String::new() },
            );
        }
    }
    raw_hsm_rates_after(&d.data_dir(), ISSUING_KEY, secs, (raw1, raw2)).await;
    println!("daemon peak RSS {} MiB", d.peak_rss_kib() / 1024);
    if let Some(peer) = &peer {
        let stored = run(&peer.dir, "sqlite3", &["certs.db", "SELECT count(*) FROM certificates"]);
        println!("cfssl stored {} certificates", stored.trim());
    }
}
