//! Issuance throughput and latency against a real `trustd dev` (release build): gRPC
//! IssueCertificate over mTLS (the dev operator credential) at concurrency 1, 16 and 64, beside
//! the ceiling measured in the same run: building, HSM-signing and encoding one certificate after
//! another on one thread, with the issuing CA's key in the daemon's token (and, apart, what parsing
//! the CSR and verifying its proof of possession cost). Not a test: it asserts nothing about speed
//! and prints figures.
//!
//!     cargo bench --bench issuance [-- SECONDS]

mod common;

use common::*;
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

/// A P-256 CSR for a public name the tls-server profile takes, made by openssl.
fn csr_der(dir: &std::path::Path) -> Vec<u8> {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "bench.key"]);
    run(&[
        "req",
        "-new",
        "-key",
        "bench.key",
        "-subj",
        "/CN=bench.example.com",
        "-addext",
        "subjectAltName=DNS:bench.example.com",
        "-outform",
        "DER",
        "-out",
        "bench.csr",
    ]);
    std::fs::read(dir.join("bench.csr")).expect("csr")
}

/// Certificates per second built, signed in the HSM and encoded one after another on this
/// thread, as `CertificateAuthority::issue` does between its checks and its records; and CSRs
/// per second parsed and verified.
fn ceilings(data: &std::path::Path, issuing_der: &[u8], csr: &[u8], secs: Duration) -> (f64, f64) {
    let pin = std::fs::read_to_string(data.join("hsm-pin")).expect("pin");
    let cfg = HsmConfig {
        module: trustd::daemon::SOFTHSM_MODULE.into(),
        token_label: trustd::daemon::DEV_TOKEN_LABEL.into(),
        max_sessions: 1,
    };
    let hsm = Hsm::open(&cfg, Pin::new(pin)).expect("open token");
    let key = HsmSigner::new(&hsm, KeyRef::label(ISSUING_KEY), None).expect("issuing key");
    let ca: Certificate = der::Decode::from_der(issuing_der).expect("issuing CA certificate");
    let key_id = trustd::ca::subject_key_id(&ca).expect("SKI");
    let policies = Policies::load(&data.join("policies")).expect("policies");
    let profile = policies.profile(PROFILE).expect("profile");
    let urls = UrlContext { base: "http://bench.test".into(), ca: CaId::Issuing };
    let verified = csr::parse(csr).expect("csr");
    let valid = request::validate(&verified, profile, None).expect("valid");
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

#[tokio::main]
async fn main() {
    let secs = Duration::from_secs(std::env::args().filter_map(|a| a.parse().ok()).next().unwrap_or(5));
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

    let channel = d.channel().await;
    for c in [1, 16, 64] {
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
    }
    raw_hsm_rates_after(&d.data_dir(), ISSUING_KEY, secs, (raw1, raw2)).await;
    println!("daemon peak RSS {} MiB", d.peak_rss_kib() / 1024);
}
