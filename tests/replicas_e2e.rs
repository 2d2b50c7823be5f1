//! Two daemons on one PostgreSQL database and one token directory (`trustd dev --store-url`),
//! as two data centres run them behind a load balancer: either serves any request, a
//! revocation made on one is stated by the other's OCSP at once and its CRL within about a
//! second, and when one is SIGKILLed under load of issuances, time-stamps and signatures on
//! both, every certificate, token and signature any client received is in the store and in the
//! log, every serial is unique, the survivor answered every request sent to it, and `trustctl
//! log verify` passes.

mod common;

use common::postgres::TestDatabase;
use common::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use trustd::api::pb;
use trustd::api::pb::signing_client::SigningClient;
use trustd::api::pb::time_stamping_client::TimeStampingClient;

fn column(db: &TestDatabase, sql: &str) -> Vec<String> {
    psql_column(&db.url, sql)
}

/// What one replica's clients were given, and how many of their requests failed.
#[derive(Default)]
struct Received {
    certificates: Vec<String>,
    tokens: Vec<String>,
    signatures: Vec<String>,
    failed: usize,
    /// What the first few failures said.
    errors: Vec<String>,
}

impl Received {
    fn failed(&mut self, what: &str, e: impl std::fmt::Debug) {
        self.failed += 1;
        if self.errors.len() < 5 {
            self.errors.push(format!("{what}: {e:?}"));
        }
    }
}

/// Clients of one replica issuing, time-stamping and signing (B-B, by digest) until `stop`.
async fn load(d: &Daemon, csr: Vec<u8>, clients: usize, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Received> {
    let channel = d.channel().await;
    tokio::spawn(async move {
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                let (channel, csr, stop) = (channel.clone(), csr.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut ca = pb::certificate_authority_client::CertificateAuthorityClient::new(channel.clone());
                    let mut tsa = TimeStampingClient::new(channel.clone());
                    let mut signing = SigningClient::new(channel);
                    let mut got = Received::default();
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let digest = trustd::digest::HashAlg::Sha256.digest(&n.to_be_bytes());
                        if (n + i as u32) % 3 == 2 {
                            let req = pb::SignRequest {
                                options: Some(pb::SignOptions {
                                    policy: String::new(),
                                    level: pb::SignatureLevel::BB as i32,
                                    detached: true,
                                }),
                                content: Some(pb::sign_request::Content::Digest(pb::Digest {
                                    hash_algorithm: "sha256".into(),
                                    value: digest,
                                })),
                            };
                            match signing.sign(req).await {
                                Ok(r) => got.signatures.push(r.into_inner().signature_id),
                                Err(e) => got.failed("sign", e),
                            }
                        } else if (n + i as u32).is_multiple_of(3) {
                            let req = pb::IssueCertificateRequest {
                                profile: "tls-server".into(),
                                csr: csr.clone(),
                                validity_seconds: 0,
                            };
                            match ca.issue_certificate(req).await {
                                Ok(r) => got.certificates.push(r.into_inner().serial),
                                Err(e) => got.failed("issue", e),
                            }
                        } else {
                            let req = pb::TimestampRequest {
                                request: Some(pb::timestamp_request::Request::Digest(pb::DigestRequest {
                                    hash_algorithm: "sha256".into(),
                                    digest,
                                    nonce: n.to_be_bytes().to_vec(),
                                    cert_req: false,
                                    policy: String::new(),
                                })),
                            };
                            match tsa.timestamp(req).await {
                                Ok(r) if r.get_ref().status() == pb::TimestampStatus::Granted => {
                                    got.tokens.push(r.into_inner().serial)
                                }
                                other => got.failed("timestamp", other.map(|r| r.into_inner().status)),
                            }
                        }
                    }
                    got
                })
            })
            .collect();
        let mut all = Received::default();
        for t in tasks {
            let got = t.await.unwrap();
            all.certificates.extend(got.certificates);
            all.tokens.extend(got.tokens);
            all.signatures.extend(got.signatures);
            all.failed += got.failed;
            all.errors.extend(got.errors);
        }
        all
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_as_one_and_a_killed_one_loses_nothing() {
    let db = TestDatabase::new();
    let store = ["--store-url", db.url.as_str()];
    let a = Daemon::start_with(tempfile::tempdir().unwrap(), &store);
    let b = a.replica(&store);
    let dir = b.dir.path().to_owned();
    let chain = split_pem(&trustctl_ok(&a, &["ca", "chain"]));
    std::fs::write(dir.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(dir.join("root.pem"), &chain[1]).unwrap();
    let (_, _, vkey) = b.http_get("/log/key");
    std::fs::write(dir.join("log.vkey"), vkey).unwrap();

    // Issued on one, revoked on the other: the first's OCSP says so at once (it reads the
    // store), its CRL within about a second (it follows the database's revocations).
    let csr = openssl_csr(&dir, "web", P256, "/CN=web.example.com", Some("DNS:web.example.com"));
    let pem = trustctl_ok(&a, &["issue", "--profile", "tls-server", "--csr", csr.to_str().unwrap()]);
    std::fs::write(dir.join("cert.pem"), pem).unwrap();
    assert!(ocsp_status(&dir, &b).contains("cert.pem: good"));
    let serial = text(&openssl(&dir, &["x509", "-in", "cert.pem", "-noout", "-serial"]));
    let serial = serial.trim().trim_start_matches("serial=").to_owned();
    trustctl_ok(&b, &["revoke", "--serial", &serial.to_ascii_lowercase(), "--reason", "keyCompromise"]);
    let revoked_at = Instant::now();
    assert!(ocsp_status(&dir, &a).contains("cert.pem: revoked"), "{}", ocsp_status(&dir, &a));
    loop {
        let (_, _, der) = a.http_get("/crl/issuing.crl");
        std::fs::write(dir.join("crl.der"), der).unwrap();
        let crl = text(&openssl(&dir, &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"]));
        if crl.contains(&serial.to_ascii_uppercase()) {
            eprintln!("the other replica's CRL listed it after {:?}", revoked_at.elapsed());
            break;
        }
        assert!(revoked_at.elapsed() < Duration::from_secs(5), "the other replica's CRL never listed it:\n{crl}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One publisher for both: the first replica took the lease and signed that CRL; the second,
    // where the revocation was made, published only its start-up CRL.
    let took = |d: &Daemon| d.log().matches("this replica took the lease").count();
    assert_eq!((took(&a), took(&b)), (1, 0), "the first replica publishes");
    assert_eq!(b.log().matches("CRL published").count(), 1, "{}", b.log());

    // Load on both; one is killed in the middle.
    let csr = std::fs::read(&csr).unwrap();
    let (stop_a, stop_b) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let on_a = load(&a, csr.clone(), 8, stop_a.clone()).await;
    let on_b = load(&b, csr, 8, stop_b.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let a_dir = a.kill();
    // Its clients would only be refused from here on (a load balancer takes it out).
    stop_a.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_b.store(true, Ordering::Relaxed);
    let (on_a, on_b) = (on_a.await.unwrap(), on_b.await.unwrap());
    eprintln!(
        "killed replica: {} certificates, {} tokens, {} signatures, {} failed; \
         survivor: {} certificates, {} tokens, {} signatures, {} failed",
        on_a.certificates.len(),
        on_a.tokens.len(),
        on_a.signatures.len(),
        on_a.failed,
        on_b.certificates.len(),
        on_b.tokens.len(),
        on_b.signatures.len(),
        on_b.failed
    );
    let troubles = |d: &Daemon| {
        d.log().lines().filter(|l| l.contains("ERROR") || l.contains("WARN")).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(
        on_b.failed,
        0,
        "the survivor answered every request sent to it: {:?}\nits errors and warnings:\n{}",
        on_b.errors,
        troubles(&b)
    );
    assert!(!on_a.certificates.is_empty() && !on_b.certificates.is_empty() && !on_b.tokens.is_empty());
    assert!(!on_a.signatures.is_empty() && !on_b.signatures.is_empty());

    // Everything a client received is stored and logged, once.
    let logged: HashSet<String> =
        column(&db, "SELECT serial FROM certificates WHERE log_index IS NOT NULL AND status <> 'pending'")
            .into_iter()
            .collect();
    let tokens: HashSet<String> =
        column(&db, "SELECT serial FROM timestamps WHERE log_index IS NOT NULL").into_iter().collect();
    let received: Vec<&String> = on_a.certificates.iter().chain(&on_b.certificates).collect();
    assert_eq!(received.iter().collect::<HashSet<_>>().len(), received.len(), "serials unique");
    for s in &received {
        assert!(logged.contains(*s), "certificate {s} was handed out but is not stored and logged");
    }
    for s in on_a.tokens.iter().chain(&on_b.tokens) {
        assert!(tokens.contains(s), "time-stamp {s} was handed out but is not stored and logged");
    }
    let signatures: HashSet<String> =
        column(&db, "SELECT signature_id FROM signatures WHERE log_index IS NOT NULL").into_iter().collect();
    for s in on_a.signatures.iter().chain(&on_b.signatures) {
        assert!(signatures.contains(s), "signature {s} was handed out but is not stored and logged");
    }
    let indexes =
        column(&db, "SELECT COUNT(DISTINCT idx) = COUNT(*) AND COALESCE(MAX(idx) + 1, 0) = COUNT(*) FROM log_entries");
    assert_eq!(indexes, ["t"], "log indexes 0..n without gaps or repeats");

    // The survivor takes the publishing lease over once the killed one's expires, and signs
    // the checkpoint of everything both logged.
    let size: u64 = column(&db, "SELECT size FROM log_tree")[0].parse().unwrap();
    wait_for_checkpoint(&b, size);
    assert_eq!(took(&b), 1, "the survivor took the lease over");
    // An auditor's check of the whole log through the survivor.
    let report = trustctl_ok(&b, &["log", "verify", "--key", dir.join("log.vkey").to_str().unwrap()]);
    assert!(report.contains(&format!("tree size {size} verified")), "{report}");
    drop(b);
    drop(a_dir);
}
