//! Two replicas on the primary's database and, in the second data centre, a third on a
//! PostgreSQL hot standby of it (streaming replication set up by the test), all with one token
//! directory. The third starts, says it is a
//! standby (`/readyz`, `/metrics`, the ready line), answers OCSP, CRLs, CA certificates,
//! certificate lookups and the log's read path from what replication brings, and refuses every
//! write with UNAVAILABLE (time-stamps over HTTP with RFC 3161's systemFailure) without a
//! crash. A revocation on either primary replica reaches its OCSP and CRL within the
//! replication lag.

mod common;

use common::postgres::{TestDatabase, TestStandby};
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};
use trustd::api::pb;

/// Polls `check` every 50 ms until it holds, for at most 20 s; returns how long it took.
fn within(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(20), "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// The text form of `d`'s CRL of the issuing CA (openssl).
fn crl_text(dir: &Path, d: &Daemon) -> String {
    let (status, _, der) = d.http_get("/crl/issuing.crl");
    assert_eq!(status, 200);
    std::fs::write(dir.join("crl.der"), der).unwrap();
    text(&openssl(dir, &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_on_a_hot_standby_serves_reads_and_refuses_writes() {
    let db = TestDatabase::new();
    let primary = Daemon::start_with(tempfile::tempdir().unwrap(), &["--store-url", db.url.as_str()]);
    let standby_db = TestStandby::new();
    let on_standby = standby_db.of(&db);
    let other = primary.replica(&["--store-url", db.url.as_str()]);
    let s = primary.replica(&["--store-url", on_standby.as_str()]);
    let dir = s.dir.path().to_owned();

    // It says what it is.
    let (status, _, body) = s.http_get("/readyz");
    let readyz = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "{readyz}");
    assert!(readyz.contains("role: standby\n"), "{readyz}");
    assert!(readyz.contains("store: ok, a read-only standby"), "{readyz}");
    let (_, _, metrics) = s.http_get("/metrics");
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    assert!(metrics.contains("trustd_replica_role{role=\"standby\"} 1"), "{metrics}");
    assert!(metrics.contains("trustd_replica_role{role=\"primary\"} 0"), "{metrics}");
    let (_, _, primary_metrics) = primary.http_get("/metrics");
    assert!(String::from_utf8_lossy(&primary_metrics).contains("trustd_replica_role{role=\"primary\"} 1"));

    // CA certificates and the chain, over its own TLS certificate (the primary's replicas'),
    // as any client verifies it.
    let chain = split_pem(&trustctl_ok(&s, &["ca", "chain"]));
    std::fs::write(dir.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(dir.join("root.pem"), &chain[1]).unwrap();
    let (status, _, root) = s.http_get("/ca/root.crt");
    assert_eq!(status, 200);
    assert!(!root.is_empty());

    // Issued on the primary: found on the standby, good, then revoked within the lag.
    let csr = openssl_csr(&dir, "web", P256, "/CN=web.example.com", Some("DNS:web.example.com"));
    let pem = trustctl_ok(&primary, &["issue", "--profile", "tls-server", "--csr", csr.to_str().unwrap()]);
    std::fs::write(dir.join("cert.pem"), &pem).unwrap();
    let serial = text(&openssl(&dir, &["x509", "-in", "cert.pem", "-noout", "-serial"]));
    let serial = serial.trim().trim_start_matches("serial=").to_ascii_lowercase();
    let lag =
        within("the certificate on the standby", || s.trustctl(&["cert", "get", "--serial", &serial]).status.success());
    eprintln!("issued on the primary, found on the standby after {lag:?}");
    assert!(ocsp_status(&dir, &s).contains("cert.pem: good"), "{}", ocsp_status(&dir, &s));
    let listed = trustctl_ok(&s, &["cert", "list"]);
    assert!(listed.contains(&serial), "{listed}");

    trustctl_ok(&other, &["revoke", "--serial", &serial, "--reason", "keyCompromise"]);
    let lag = within("OCSP on the standby says revoked", || ocsp_status(&dir, &s).contains("cert.pem: revoked"));
    eprintln!("revoked on the other primary replica, the standby's OCSP said so after {lag:?}");
    let upper = serial.to_ascii_uppercase();
    let lag = within("the standby's CRL lists it", || crl_text(&dir, &s).contains(&upper));
    eprintln!("the standby's CRL (the primary's) listed it after {lag:?}");
    let crl = crl_text(&dir, &s);
    assert!(crl.contains("Key Compromise"), "{crl}");
    // The CRL served is the newest a primary replica published, byte for byte, as they serve it.
    within("every replica serves the one newest CRL", || {
        let served = s.http_get("/crl/issuing.crl").2;
        served == primary.http_get("/crl/issuing.crl").2 && served == other.http_get("/crl/issuing.crl").2
    });

    // Writes: refused as such, over gRPC (trustctl and a tonic client for the code) and HTTP.
    let csr_path = csr.to_str().unwrap();
    for args in [
        vec!["issue", "--profile", "tls-server", "--csr", csr_path],
        vec!["revoke", "--serial", &serial, "--reason", "superseded"],
        vec!["timestamp", "--digest", &"ab".repeat(32), "--out", "/dev/null"],
    ] {
        let out = s.trustctl(&args);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("read-only standby"), "{args:?}: {}", text(&out));
    }
    let mut ca = pb::certificate_authority_client::CertificateAuthorityClient::new(s.channel().await);
    let req = pb::IssueCertificateRequest {
        profile: "tls-server".into(),
        csr: std::fs::read(&csr).unwrap(),
        validity_seconds: 0,
    };
    let e = ca.issue_certificate(req).await.expect_err("a standby issues nothing");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(
        e.message().contains("issuance, revocation, time-stamps and signatures by a trustd on the primary"),
        "{e:?}"
    );
    openssl(&dir, &["ts", "-query", "-data", "cert.pem", "-sha256", "-cert", "-out", "q.tsq"]);
    let (status, _, reply) =
        s.http_post("/tsa", "application/timestamp-query", &std::fs::read(dir.join("q.tsq")).unwrap());
    assert_eq!(status, 200);
    std::fs::write(dir.join("r.tsr"), reply).unwrap();
    let said = text(&openssl(&dir, &["ts", "-reply", "-in", "r.tsr", "-text"]));
    assert!(said.contains("Status: Rejected") || said.contains("rejection"), "{said}");
    assert!(said.contains("system failure") && said.contains("read-only standby"), "{said}");
    let stored = psql_column(&db.url, "SELECT COUNT(*) FROM timestamps");
    assert_eq!(stored, ["0"], "nothing recorded on the primary either");

    // The log's read path: checkpoints the standby signs of the replicated tree, verified by
    // an auditor through it.
    let (_, _, vkey) = s.http_get("/log/key");
    std::fs::write(dir.join("log.vkey"), vkey).unwrap();
    let size: u64 = psql_column(&db.url, "SELECT size FROM log_tree")[0].parse().unwrap();
    within("the standby's checkpoint covers the primary's tree", || {
        let (_, _, note) = s.http_get("/log/checkpoint");
        String::from_utf8_lossy(&note).lines().nth(1).and_then(|l| l.parse::<u64>().ok()) >= Some(size)
    });
    let report = trustctl_ok(&s, &["log", "verify", "--key", dir.join("log.vkey").to_str().unwrap()]);
    assert!(report.contains(&format!("tree size {size} verified")), "{report}");

    // Still serving, still a standby; the primary unaffected.
    let (status, _, body) = s.http_get("/readyz");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    trustctl_ok(&primary, &["timestamp", "--digest", &"cd".repeat(32), "--out", dir.join("ok.tsr").to_str().unwrap()]);
    drop(s);
    drop(other);
    drop(primary);
    drop(standby_db);
}
