//! OCSP throughput (cached good responses and freshly signed ones) and CRL generation time at
//! 100,000 revoked certificates, beside the raw HSM signing rates of the OCSP and issuing CA keys
//! measured in the same run. Not a test: it prints figures.
//!
//!     cargo bench --bench revocation [-- SECONDS]

mod common;

use common::*;
use der::Decode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use trustd::api::pb;
use trustd::api::pb::certificate_authority_client::CertificateAuthorityClient;
use trustd::ca::{CertificateAuthority, CrlSchedule};
use trustd::ceremony::CaKeys;
use trustd::hsm::{Hsm, HsmConfig, Pin};
use trustd::serial::Serial;
use trustd::store::SqliteStore;
use x509_cert::Certificate;

const REVOKED: usize = 100_000;

fn ocsp_request(issuer: &Certificate, cert: &Certificate, nonce: bool) -> Vec<u8> {
    trustd::loadgen::ocsp_request(issuer, cert, nonce).expect("OCSP request")
}

#[tokio::main]
async fn main() {
    let secs = Duration::from_secs(std::env::args().filter_map(|a| a.parse().ok()).next().unwrap_or(5));
    let d = start();
    std::env::set_var("SOFTHSM2_CONF", d.data_dir().join("softhsm2.conf"));

    let mut raw = Vec::new();
    for label in ["trustd-ocsp-signer", "trustd-issuing-ca"] {
        let (one, two) = raw_hsm_rates(&d.data_dir(), label, secs).await;
        let rate = one.max(two);
        println!("raw HSM signing rate, {label} (ECDSA P-256, SoftHSM2, best of 1 and 2 threads): {rate:.0}/s");
        raw.push(rate);
    }

    // One issued certificate to ask about.
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["bench.example.com".to_owned()]).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).expect("csr");
    let mut ca = CertificateAuthorityClient::new(d.channel().await);
    let issued = ca
        .issue_certificate(pb::IssueCertificateRequest {
            profile: "tls-server".into(),
            csr: csr.der().to_vec(),
            validity_seconds: 0,
        })
        .await
        .expect("issue")
        .into_inner();
    let cert = Certificate::from_der(&issued.certificate_der).expect("cert");
    let issuer = Certificate::from_der(&issued.chain_der[0]).expect("issuer");

    report_header();
    for (name, nonce) in [("ocsp cached", false), ("ocsp fresh", true)] {
        for c in [1, 64] {
            let pool = http_pool(&d.http, c).await;
            let (issuer, cert) = (issuer.clone(), cert.clone());
            let fixed = Arc::new(ocsp_request(&issuer, &cert, false));
            let r = load(c, secs, move || {
                let conn = pool.lock().expect("pool").pop().expect("a connection per task");
                let body = if nonce { Arc::new(ocsp_request(&issuer, &cert, true)) } else { fixed.clone() };
                let pool = pool.clone();
                async move {
                    conn.lock().await.post("/ocsp", "application/ocsp-request", &body).await;
                    pool.lock().expect("pool").push(conn);
                }
            })
            .await;
            report(name, c, &r, raw[0]);
        }
    }

    // CRL generation in-process, against the daemon's own token and database.
    let pin = std::fs::read_to_string(d.data_dir().join("hsm-pin")).expect("pin");
    let cfg = HsmConfig {
        module: trustd::daemon::SOFTHSM_MODULE.into(),
        token_label: trustd::daemon::DEV_TOKEN_LABEL.into(),
        max_sessions: 2,
        session_key_copies: true,
    };
    let hsm = Hsm::open(&cfg, Pin::new(pin)).expect("token");
    let db = d.data_dir().join("trustd.db");
    let store = Arc::new(SqliteStore::open(&db).await.expect("store"));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.expect("db");
    let start = Instant::now();
    let mut tx = pool.begin().await.expect("tx");
    for _ in 0..REVOKED {
        sqlx::query(
            "INSERT INTO certificates (serial, ca, profile, subject, sans, not_before, not_after, requester, status, \
             tbs_der, cert_der, created_at, revoked_at, revocation_reason) \
             VALUES (?, 'issuing', 'tls-server', 'CN=bench', '', 0, 1, 'bench', 'revoked', x'00', x'00', 0, ?, 1)",
        )
        .bind(Serial::random().to_string())
        .bind(1_790_000_000i64)
        .execute(&mut *tx)
        .await
        .expect("insert");
    }
    tx.commit().await.expect("commit");
    println!("inserted {REVOKED} revoked certificates in {:.1} s", start.elapsed().as_secs_f64());
    let policies = Arc::new(trustd::policy::Policies::load(&d.data_dir().join("policies")).expect("policies"));
    let schedule = CrlSchedule { validity: Duration::from_secs(86400), refresh: Duration::from_secs(3600) };
    let keys = CaKeys::default();
    let issuing = hsm.certified_key(&keys.issuing, None).expect("issuing CA key");
    let root = hsm.find_certificate(&keys.root).expect("token").expect("root CA certificate");
    let clock = Arc::new(trustd::clock::SystemClock(trustd::clock::ClockCheck::Off));
    let ca = CertificateAuthority::new(issuing, root, policies, store, "http://bench", schedule, clock).expect("CA");
    for i in 1..=3 {
        let t = Instant::now();
        let crl = ca.publish_crl().await.expect("CRL");
        println!(
            "CRL with {REVOKED} entries, run {i}: {:.0} ms (read index, build, sign in the HSM, encode), {:.1} MiB",
            t.elapsed().as_secs_f64() * 1e3,
            crl.len() as f64 / 1048576.0
        );
    }
    println!("(the issuing CA key signs {:.0}/s raw: one CRL costs one signature)", raw[1]);
}
