//! End-to-end tests of the certificate authority: a real `trustd dev` on a fresh SoftHSM token,
//! driven over gRPC by trustctl and by a tonic client, checked with openssl, pkcs11-tool and
//! pkilint.

mod common;

use common::*;
use der::DecodePem;
use std::path::PathBuf;
use std::process::Command;
use tonic::Code;
use trustd::api::pb;
use x509_cert::Certificate;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn newcomer_flow_verifies_with_openssl_and_pkilint() {
    let d = Daemon::start();
    let dir = d.dir.path();
    let csr = openssl_csr(dir, "web", P256, "/CN=www.example.com", Some("DNS:www.example.com,DNS:example.com"));
    let issued = d.trustctl(&["issue", "--profile", "tls-server", "--csr", csr.to_str().unwrap()]);
    assert!(issued.status.success(), "{}", String::from_utf8_lossy(&issued.stderr));
    std::fs::write(dir.join("cert.pem"), &issued.stdout).unwrap();
    let chain = d.trustctl(&["ca", "chain"]);
    assert!(chain.status.success());
    let chain = split_pem(&stdout(&chain));
    assert_eq!(chain.len(), 2, "issuing CA and root");
    std::fs::write(dir.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(dir.join("root.pem"), &chain[1]).unwrap();

    let v = openssl(
        dir,
        &["verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", "-purpose", "sslserver", "cert.pem"],
    );
    assert_eq!(stdout(&v).trim(), "cert.pem: OK");

    let text = stdout(&openssl(dir, &["x509", "-in", "cert.pem", "-noout", "-text"]));
    for want in [
        "Subject: CN=www.example.com",
        "Issuer: O=trustd, CN=trustd Issuing CA",
        "X509v3 Basic Constraints: critical\n                CA:FALSE",
        "X509v3 Key Usage: critical\n                Digital Signature\n",
        "TLS Web Server Authentication",
        "DNS:www.example.com, DNS:example.com",
        "Policy: 2.23.140.1.2.1",
        "URI:http://pki.example.com/crl/issuing.crl",
        "OCSP - URI:http://pki.example.com/ocsp",
        "CA Issuers - URI:http://pki.example.com/ca/issuing.crt",
        "Signature Algorithm: ecdsa-with-SHA256",
    ] {
        let normalized = text.replace(" = ", "=");
        assert!(normalized.contains(want), "missing {want:?} in\n{text}");
    }

    // Parsed independently of openssl's printer: serial, validity and extension criticality.
    let cert = Certificate::from_pem(&issued.stdout).unwrap();
    let tbs = &cert.tbs_certificate;
    let serial = tbs.serial_number.as_bytes();
    assert!(serial.len() >= 9 && serial[0] & 0x80 == 0, "serial of >= 64 bits, positive: {serial:02x?}");
    let days =
        (tbs.validity.not_after.to_unix_duration() - tbs.validity.not_before.to_unix_duration()).as_secs() / 86400;
    assert_eq!(days, 90, "tls-server default validity");
    let exts = tbs.extensions.as_ref().unwrap();
    let critical: Vec<String> = exts.iter().filter(|e| e.critical).map(|e| e.extn_id.to_string()).collect();
    assert_eq!(critical, ["2.5.29.19", "2.5.29.15"], "only basicConstraints and keyUsage are critical");

    pkilint_no_errors("lint_cabf_serverauth_cert", &["-d"], &dir.join("cert.pem"));
    for ca in ["issuing.pem", "root.pem"] {
        pkilint_no_errors("lint_pkix_cert", &[], &dir.join(ca));
    }
    let root_text = stdout(&openssl(dir, &["x509", "-in", "root.pem", "-noout", "-text"]));
    assert!(root_text.contains("CA:TRUE") && root_text.contains("Certificate Sign, CRL Sign"), "{root_text}");
    let issuing_text = stdout(&openssl(dir, &["x509", "-in", "issuing.pem", "-noout", "-text"]));
    assert!(issuing_text.contains("CA:TRUE, pathlen:0"), "{issuing_text}");
}

#[test]
fn client_and_document_signer_profiles() {
    let d = Daemon::start();
    let dir = d.dir.path();
    let chain = split_pem(&stdout(&d.trustctl(&["ca", "chain"])));
    std::fs::write(dir.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(dir.join("root.pem"), &chain[1]).unwrap();

    let csr = openssl_csr(dir, "svc", P384, "/O=Agency/CN=svc-a", Some("URI:spiffe://example.org/ns/svc-a"));
    let out = d.trustctl(&["issue", "--profile", "tls-client", "--csr", csr.to_str().unwrap(), "--validity", "7d"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(dir.join("client.pem"), &out.stdout).unwrap();
    openssl(
        dir,
        &["verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", "-purpose", "sslclient", "client.pem"],
    );
    let text = stdout(&openssl(dir, &["x509", "-in", "client.pem", "-noout", "-text"]));
    assert!(
        text.contains("TLS Web Client Authentication") && text.contains("URI:spiffe://example.org/ns/svc-a"),
        "{text}"
    );
    let c = Certificate::from_pem(&out.stdout).unwrap();
    let v = &c.tbs_certificate.validity;
    assert_eq!((v.not_after.to_unix_duration() - v.not_before.to_unix_duration()).as_secs(), 7 * 86400 + 60);

    let csr = openssl_csr(dir, "person", RSA3072, "/C=DK/CN=Jens Hansen", Some("email:jens@example.dk"));
    let out = d.trustctl(&["issue", "--profile", "document-signer", "--csr", csr.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(dir.join("signer.pem"), &out.stdout).unwrap();
    openssl(dir, &["verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", "signer.pem"]);
    let text = stdout(&openssl(dir, &["x509", "-in", "signer.pem", "-noout", "-text"]));
    assert!(text.contains("Digital Signature, Non Repudiation"), "{text}");
    assert!(
        text.contains("Subject: C=DK, CN=Jens Hansen") || text.contains("Subject: C = DK, CN = Jens Hansen"),
        "{text}"
    );
    // pkilint's URI check rejects the spiffe: scheme, so lint a client certificate with a DNS SAN.
    let csr = openssl_csr(dir, "svc-b", P256, "/CN=svc-b", Some("DNS:svc-b.example.com"));
    let out = d.trustctl(&["issue", "--profile", "tls-client", "--csr", csr.to_str().unwrap()]);
    std::fs::write(dir.join("client-dns.pem"), &out.stdout).unwrap();
    for pem in ["client-dns.pem", "signer.pem"] {
        pkilint_no_errors("lint_pkix_cert", &[], &dir.join(pem));
    }
}

#[test]
fn ca_keys_are_sensitive_and_never_extractable() {
    let d = Daemon::start();
    let data = d.data_dir();
    let pin = std::fs::read_to_string(data.join("hsm-pin")).unwrap();
    let out = run(Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", data.join("softhsm2.conf"))
        // Through the environment: no PIN on a command line, in tests either.
        .env("TRUSTD_TEST_PIN", pin.trim())
        .args(["--module", trustd::daemon::SOFTHSM_MODULE, "--token-label", "trustd-dev", "--login"])
        .args(["--pin", "env:TRUSTD_TEST_PIN"])
        .args(["--list-objects", "--type", "privkey"]));
    let text = stdout(&out);
    let keys: Vec<&str> = text.split("Private Key Object").skip(1).collect();
    assert_eq!(keys.len(), 7, "root, issuing, TSA, document signer, OCSP, log and TLS keys:\n{text}");
    for label in [
        "trustd-root-ca",
        "trustd-issuing-ca",
        "trustd-tsa",
        "trustd-document-signer",
        "trustd-ocsp-signer",
        "trustd-log",
        "trustd-tls",
    ] {
        let k = keys
            .iter()
            .find(|k| k.contains(&format!("label:      {label}\n")))
            .unwrap_or_else(|| panic!("{label}:\n{text}"));
        let access = k.lines().find(|l| l.trim_start().starts_with("Access:")).unwrap_or_else(|| panic!("{k}"));
        assert!(access.contains("sensitive") && access.contains("always sensitive"), "{label}: {access}");
        assert!(access.contains("never extractable"), "{label}: {access}");
        assert!(!access.replace("never extractable", "").contains("extractable"), "{label}: {access}");
    }
    // The data dir, the token and the credentials are their owner's alone; the PIN is in no log
    // line.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: PathBuf| std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    for (p, want) in [
        (data.clone(), 0o700),
        (data.join("tokens"), 0o700),
        (data.join("hsm-pin"), 0o600),
        (data.join("hsm-so-pin"), 0o600),
        (d.credentials(), 0o700),
        (d.credentials().join("operator.key"), 0o600),
    ] {
        assert_eq!(mode(p.clone()), want, "{}", p.display());
    }
    assert!(!d.log().contains(pin.trim()), "the PIN is logged");
    // Nothing resembling a private key sits in the data dir next to the token (the dev operator's
    // own client key is in credentials/).
    for entry in std::fs::read_dir(&data).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains("PRIVATE KEY"), "{}", p.display());
        }
    }
}

async fn count(
    client: &mut pb::certificate_authority_client::CertificateAuthorityClient<tonic::transport::Channel>,
) -> usize {
    client
        .list_certificates(pb::ListCertificatesRequest { page_size: 1000, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .certificates
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let d = Daemon::start();
    let dir = d.dir.path();
    let mut client = d.client().await;
    let der_csr = |name: &str, keygen: &[&str], subj: &str, san: Option<&str>| -> Vec<u8> {
        let pem = openssl_csr(dir, name, keygen, subj, san);
        std::fs::read(pem).unwrap()
    };
    let good = der_csr("good", P256, "/CN=a.example.com", Some("DNS:a.example.com"));
    // Flip a bit in the CSR's signature: the request still parses, but proof of possession fails.
    let mut corrupt = openssl(dir, &["req", "-in", "good.csr", "-outform", "DER"]).stdout;
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01;
    let cert_pem = {
        let out = d.trustctl(&["ca", "chain"]);
        split_pem(&stdout(&out)).remove(0).into_bytes()
    };
    let huge = vec![b'A'; 200 * 1024];
    // (what, profile, CSR, validity seconds, expected code, expected message part)
    type Case<'a> = (&'a str, &'a str, Vec<u8>, u64, Code, &'a str);
    let cases: Vec<Case> = vec![
        ("garbage bytes", "tls-server", b"hello, world".to_vec(), 0, Code::InvalidArgument, "invalid CSR"),
        ("empty", "tls-server", Vec::new(), 0, Code::InvalidArgument, "empty CSR"),
        ("certificate instead of CSR", "tls-server", cert_pem, 0, Code::InvalidArgument, "PEM label"),
        ("truncated", "tls-server", good[..good.len() / 2].to_vec(), 0, Code::InvalidArgument, "invalid"),
        ("bad signature", "tls-server", corrupt, 0, Code::InvalidArgument, "does not verify"),
        (
            "RSA-1024",
            "tls-server",
            der_csr(
                "rsa1024",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
                "/CN=a.example.com",
                Some("DNS:a.example.com"),
            ),
            0,
            Code::InvalidArgument,
            "at least 2048",
        ),
        (
            "P-192",
            "tls-server",
            der_csr(
                "p192",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-192"],
                "/CN=a.example.com",
                Some("DNS:a.example.com"),
            ),
            0,
            Code::InvalidArgument,
            "curve",
        ),
        (
            "Ed25519",
            "tls-server",
            der_csr("ed", &["-algorithm", "ED25519"], "/CN=a.example.com", Some("DNS:a.example.com")),
            0,
            Code::InvalidArgument,
            "not supported",
        ),
        ("unknown profile", "no-such-profile", good.clone(), 0, Code::InvalidArgument, "unknown profile"),
        ("empty profile", "", good.clone(), 0, Code::InvalidArgument, "profile is required"),
        (
            "forbidden subject attribute",
            "tls-server",
            der_csr("org", P256, "/O=Evil/CN=a.example.com", Some("DNS:a.example.com")),
            0,
            Code::InvalidArgument,
            "O is not allowed",
        ),
        (
            "forbidden SAN type",
            "tls-server",
            der_csr("mail", P256, "/CN=a.example.com", Some("DNS:a.example.com,email:x@example.com")),
            0,
            Code::InvalidArgument,
            "email SANs are not allowed",
        ),
        (
            "CN not among SANs",
            "tls-server",
            der_csr("cn", P256, "/CN=b.example.com", Some("DNS:a.example.com")),
            0,
            Code::InvalidArgument,
            "not one of the subject alternative names",
        ),
        (
            "no SAN",
            "tls-server",
            der_csr("nosan", P256, "/CN=a.example.com", None),
            0,
            Code::InvalidArgument,
            "at least 1",
        ),
        ("validity above max", "tls-server", good.clone(), 400 * 86400, Code::InvalidArgument, "exceeds the maximum"),
        (
            "wildcard over a public suffix",
            "tls-server",
            der_csr("psl", P256, "/CN=*.co.uk", Some("DNS:*.co.uk")),
            0,
            Code::InvalidArgument,
            "covers the public suffix 'co.uk'",
        ),
        (
            "internal name in a public profile",
            "tls-server",
            der_csr("corp", P256, "/CN=db.corp", Some("DNS:db.corp")),
            0,
            Code::InvalidArgument,
            "internal name",
        ),
        (
            "reserved address in a public profile",
            "tls-server",
            der_csr("rfc1918", P256, "/CN=a.example.com", Some("DNS:a.example.com,IP:10.0.0.1")),
            0,
            Code::InvalidArgument,
            "IP address 10.0.0.1 is reserved",
        ),
        (
            "an address written as a DNS name",
            "internal-tls-server",
            der_csr("numeric", P256, "/CN=10.0.0.1", Some("DNS:10.0.0.1")),
            0,
            Code::InvalidArgument,
            "all-numeric",
        ),
        (
            "missing required attribute",
            "document-signer",
            der_csr("nocountry", P256, "/CN=Jens", None),
            0,
            Code::InvalidArgument,
            "requires subject attribute C",
        ),
    ];
    for (what, profile, csr, validity_seconds, code, msg) in cases {
        let err = client
            .issue_certificate(pb::IssueCertificateRequest { profile: profile.into(), csr, validity_seconds })
            .await
            .expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err:?}");
        assert!(err.message().contains(msg), "{what}: message {:?} lacks {msg:?}", err.message());
    }
    let err = client
        .issue_certificate(pb::IssueCertificateRequest { profile: "tls-server".into(), csr: huge, validity_seconds: 0 })
        .await
        .expect_err("oversized request");
    assert!(matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted), "oversized: {err:?}");
    let err = client.get_certificate(pb::GetCertificateRequest { serial: "zz".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client.get_certificate(pb::GetCertificateRequest { serial: "01".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client.get_ca_chain(pb::GetCaChainRequest { ca: "nope".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Only the key ceremony's three service certificates, the daemon's TLS server certificate
    // and the dev operator's credential.
    assert_eq!(count(&mut client).await, 5, "refused requests leave no record");
    // The daemon keeps serving: the good request still succeeds afterwards.
    let ok = client
        .issue_certificate(pb::IssueCertificateRequest { profile: "tls-server".into(), csr: good, validity_seconds: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(!ok.certificate_der.is_empty() && ok.chain_der.len() == 2);
    assert_eq!(count(&mut client).await, 6);
    // What the public profile refuses, the internal one issues.
    let internal = der_csr("internal", P256, "/CN=db.corp", Some("DNS:db.corp,IP:10.0.0.1"));
    let request =
        pb::IssueCertificateRequest { profile: "internal-tls-server".into(), csr: internal, validity_seconds: 0 };
    client.issue_certificate(request).await.expect("internal names under internal-tls-server");
    assert_eq!(count(&mut client).await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_restart_and_keys_are_kept() {
    let d = Daemon::start();
    let dir = d.dir.path().to_owned();
    let mut serials = Vec::new();
    for (name, profile, subj, san) in [
        ("s1", "tls-server", "/CN=one.example.com", Some("DNS:one.example.com")),
        ("s2", "tls-client", "/CN=svc-two", None),
        ("s3", "tls-server", "/CN=three.example.com", Some("DNS:three.example.com")),
    ] {
        let csr = openssl_csr(&dir, name, P256, subj, san);
        let out = d.trustctl(&["issue", "--profile", profile, "--csr", csr.to_str().unwrap()]);
        assert!(out.status.success());
        let c = Certificate::from_pem(&out.stdout).unwrap();
        serials.push((hex::encode(c.tbs_certificate.serial_number.as_bytes()), out.stdout));
    }
    let list = stdout(&d.trustctl(&["cert", "list", "--profile", "tls-server"]));
    assert_eq!(list.lines().count(), 2, "the two here (the daemon's own is internal-tls-server): {list}");
    assert!(list.lines().next().unwrap().starts_with(&serials[2].0), "newest first: {list}");
    assert!(list.contains("CN=three.example.com\n"));
    let filtered = stdout(&d.trustctl(&["cert", "list", "--subject", "svc-two", "--status", "issued"]));
    assert_eq!(filtered.lines().count(), 1, "{filtered}");
    let paged = stdout(&d.trustctl(&["cert", "list", "--limit", "2"]));
    assert_eq!(paged.lines().count(), 2);
    let mut client = d.client().await;
    let page = client
        .list_certificates(pb::ListCertificatesRequest { page_size: 2, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(!page.next_page_token.is_empty());
    // Paging through everything: the three issued here, the key ceremony's three service
    // certificates (TSA, document signer, OCSP responder), the daemon's TLS server certificate
    // and the dev operator credential, each once.
    let mut profiles: Vec<String> = page.certificates.into_iter().map(|c| c.profile).collect();
    let mut token = page.next_page_token;
    while !token.is_empty() {
        let rest = client
            .list_certificates(pb::ListCertificatesRequest { page_size: 2, page_token: token, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        profiles.extend(rest.certificates.into_iter().map(|c| c.profile));
        token = rest.next_page_token;
    }
    profiles.sort();
    assert_eq!(
        profiles,
        [
            "ceremony:document-signer",
            "ceremony:ocsp",
            "ceremony:tsa",
            "internal-tls-server",
            "service-client",
            "tls-client",
            "tls-server",
            "tls-server"
        ]
    );
    let info = stdout(&d.trustctl(&["cert", "get", "--serial", &serials[1].0, "--info"]));
    assert!(
        info.contains("status: issued") && info.contains("profile: tls-client") && info.contains("requester: operator"),
        "{info}"
    );

    let chain_before = stdout(&d.trustctl(&["ca", "chain"]));
    let (status, dir_handle) = d.stop();
    assert!(status.success(), "SIGTERM is a clean shutdown: {status:?}");

    let d = Daemon::start_in(dir_handle);
    assert!(d.log().contains("trustd-root-ca: key kept, certificate kept"), "{}", d.log());
    assert_eq!(stdout(&d.trustctl(&["ca", "chain"])), chain_before, "same CA after restart");
    for (serial, pem) in &serials {
        let got = d.trustctl(&["cert", "get", "--serial", serial]);
        assert!(got.status.success());
        assert_eq!(&got.stdout, pem);
    }
    let missing = d.trustctl(&["cert", "get", "--serial", "0123456789"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.starts_with("trustctl: NotFound") && err.lines().count() == 1, "{err}");
    let bad = d.trustctl(&["issue", "--profile", "tls-server", "--csr", "/nonexistent.csr"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("/nonexistent.csr"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving() {
    let d = Daemon::start();
    let channel = d.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "trust.v1.CertificateAuthority", "trust.v1.Signing", "trust.v1.TransparencyLog"] {
        let r =
            health.check(tonic_health::pb::HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(r.status(), tonic_health::pb::health_check_response::ServingStatus::Serving, "{service:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_serves_ca_certificates_and_readiness() {
    let d = Daemon::start();
    let chain =
        d.client().await.get_ca_chain(pb::GetCaChainRequest::default()).await.unwrap().into_inner().certificates_der;
    let (code, head, body) = d.http_get("/ca/issuing.crt");
    assert_eq!(code, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: application/pkix-cert"), "{head}");
    assert_eq!(body, chain[0], "the caIssuers URL serves the issuing CA");
    assert_eq!(d.http_get("/ca/root.crt").2, chain[1]);
    assert_eq!(d.http_get("/ca/nope.crt").0, 404);
    assert_eq!(d.http_get("/ca/issuing.pem").0, 404);
    assert_eq!(d.http_get("/healthz").0, 200);
    // `trustd dev` keeps every key in one token, the root's too, and says so.
    assert!(d.log().contains("the root key is in the serving token"), "{}", d.log());
    let (code, _, body) = d.http_get("/readyz");
    assert_eq!(
        (code, String::from_utf8_lossy(&body).into_owned()),
        (
            200,
            "hsm: ok\nstore: ok\nrole: primary\nclock: not checked\ncertificates: ok\nrollover: ok\nroot crl: ok\n"
                .to_string()
        )
    );
}

/// Within `[server] expiry_warning` of a service certificate's notAfter, `/readyz` names it
/// (soonest first) and stays 200, and the log warns of it; a warning time out of range is
/// refused at start.
#[test]
fn service_certificates_near_their_end_are_warned_of() {
    let d = Daemon::start_with(tempfile::tempdir().unwrap(), &["--expiry-warning", "99years"]);
    let (code, _, body) = d.http_get("/readyz");
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(code, 200, "{body}");
    let warned: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("certificates: the ")).collect();
    let roles: Vec<&str> = warned.iter().map(|l| l.split(' ').next().unwrap()).collect();
    for role in ["root", "issuing", "tsa", "ocsp", "signing:default"] {
        assert!(roles.contains(&role), "{role} in\n{body}");
    }
    assert!(warned.iter().all(|l| l.contains(" certificate expires in ") && l.contains("(notAfter 20")), "{body}");
    assert_eq!(roles.last(), Some(&"root"), "soonest first; the root lives longest:\n{body}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(d.log().contains("the tsa certificate expires in"), "{}", d.log());

    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trustd"))
        .args(["dev", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--https", "off", "--expiry-warning", "0s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.expiry_warning: must be between 1s and 100 years"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    let d = Daemon::start();
    let channel = d.channel().await;
    // The same question in both versions of the reflection protocol.
    macro_rules! list_services {
        ($v:ident) => {{
            use tonic_reflection::pb::$v::{
                server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse, ServerReflectionRequest,
            };
            let mut client = ServerReflectionClient::new(channel.clone());
            let req = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut replies = client.server_reflection_info(tokio_stream::iter([req])).await.unwrap().into_inner();
            let reply = replies.message().await.unwrap().unwrap();
            let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else { panic!("{reply:?}") };
            list.service.into_iter().map(|s| s.name).collect::<Vec<String>>()
        }};
    }
    for names in [list_services!(v1), list_services!(v1alpha)] {
        for want in
            ["trust.v1.CertificateAuthority", "trust.v1.TimeStamping", "trust.v1.Signing", "grpc.health.v1.Health"]
        {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
    }
}
