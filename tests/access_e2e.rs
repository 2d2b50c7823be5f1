//! Access control on a real daemon (policies/access.toml as shipped): the TLS handshake refuses
//! clients without a certificate from trustd's CA (openssl s_client); each client of the policy
//! gets what its roles allow and PERMISSION_DENIED for the rest, with an audit record; a revoked
//! client is refused; Python's grpcio is served over mTLS with the dev credentials.

mod common;

use common::*;
use sha2::Digest;
use std::path::Path;
use std::process::Command;
use tonic::Code;
use trustd::api::pb;
use trustd::api::pb::certificate_authority_client::CertificateAuthorityClient;
use trustd::api::pb::signing_client::SigningClient;
use trustd::api::pb::time_stamping_client::TimeStampingClient;

type Channel = tonic::transport::Channel;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn host_port(d: &Daemon) -> String {
    d.grpc.trim_start_matches("https://").to_owned()
}

/// `openssl s_client` to the gRPC port, run in `dir`; with `until_closed`, it reads until the
/// server closes (a refusal comes after the client's side of the handshake in TLS 1.3).
fn s_client(d: &Daemon, dir: &Path, until_closed: bool, extra: &[&str]) -> String {
    let mut cmd = Command::new("timeout");
    cmd.current_dir(dir).args(["20", "openssl", "s_client", "-connect", &host_port(d), "-alpn", "h2"]);
    if until_closed {
        cmd.arg("-ign_eof");
    }
    let out = cmd
        .arg("-CAfile")
        .arg(d.credentials().join("ca.crt"))
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    stdout(&out) + &String::from_utf8_lossy(&out.stderr)
}

fn csr_der(dir: &Path, name: &str, dns: &str) -> Vec<u8> {
    let csr = openssl_csr(dir, name, P256, &format!("/CN={dns}"), Some(&format!("DNS:{dns}")));
    std::fs::read(csr).unwrap()
}

fn issue(profile: &str, csr: Vec<u8>) -> pb::IssueCertificateRequest {
    pb::IssueCertificateRequest { profile: profile.into(), csr, validity_seconds: 0 }
}

fn digest_sign() -> pb::SignRequest {
    pb::SignRequest {
        options: Some(pb::SignOptions { detached: true, ..Default::default() }),
        content: Some(pb::sign_request::Content::Digest(pb::Digest {
            hash_algorithm: "sha256".into(),
            value: vec![7; 32],
        })),
    }
}

fn timestamp_request() -> pb::TimestampRequest {
    pb::TimestampRequest {
        request: Some(pb::timestamp_request::Request::Digest(pb::DigestRequest {
            hash_algorithm: "sha256".into(),
            digest: vec![9; 32],
            ..Default::default()
        })),
    }
}

#[test]
fn the_handshake_refuses_clients_without_a_certificate_of_the_ca() {
    let d = Daemon::start();
    let dir = d.dir.path();
    // TLS 1.3: the server asks for a certificate, the client sends none, the server aborts with
    // certificate_required (RFC 8446 §6.2, alert 116) before any request is read.
    let none = s_client(&d, dir, true, &[]);
    assert!(none.contains("alert number 116"), "{none}");
    assert!(d.log().contains("TLS handshake refused"), "{}", d.log());

    // A certificate naming a client of the policy, from a CA the daemon does not trust.
    openssl_self_signed(dir, "foreign", "/CN=operator", Some("subjectAltName=URI:spiffe://trustd/operator"));
    let foreign = s_client(&d, dir, true, &["-cert", "foreign.pem", "-key", "foreign.key"]);
    // rustls answers a chain it cannot build with certificate_unknown (46) or unknown_ca (48).
    assert!(foreign.contains("alert number 46") || foreign.contains("alert number 48"), "{foreign}");

    // With the operator's credential the handshake completes and the server's certificate
    // verifies for its IP address.
    let ok = s_client(
        &d,
        &d.credentials(),
        false,
        &["-cert", "operator.crt", "-key", "operator.key", "-verify_return_error", "-verify_ip", "127.0.0.1"],
    );
    assert!(ok.contains("Verify return code: 0 (ok)") && ok.contains("ALPN protocol: h2"), "{ok}");
    assert!(!ok.contains("alert"), "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_gets_what_its_roles_allow_and_nothing_else() {
    let d = Daemon::start();
    let dir = d.dir.path().to_owned();
    let mut operator = d.client().await;

    // web-frontend: internal-tls-server certificates for names under web.internal, and revoking its own.
    let web = credential(&d, "web-frontend");
    let mut web_ca = CertificateAuthorityClient::new(channel_as(&d, &web).await);
    let mine = web_ca.issue_certificate(issue("internal-tls-server", csr_der(&dir, "a", "a.web.internal"))).await;
    let mine = mine.expect("a name under web.internal").into_inner();
    let record = operator.get_certificate(pb::GetCertificateRequest { serial: mine.serial.clone() }).await;
    assert_eq!(record.unwrap().into_inner().requester, "web-frontend", "recorded under its configured name");
    let theirs = operator.issue_certificate(issue("internal-tls-server", csr_der(&dir, "b", "b.example.com"))).await;
    let theirs = theirs.unwrap().into_inner();
    let before = count(&mut operator).await;

    let refusals: Vec<(&str, tonic::Status)> = vec![
        (
            "a name outside web.internal",
            web_ca
                .issue_certificate(issue("internal-tls-server", csr_der(&dir, "c", "evil.example.com")))
                .await
                .unwrap_err(),
        ),
        (
            "a profile its role does not list",
            web_ca.issue_certificate(issue("tls-client", csr_der(&dir, "e", "e.web.internal"))).await.unwrap_err(),
        ),
        (
            "another client's certificate",
            web_ca
                .revoke_certificate(pb::RevokeCertificateRequest {
                    serial: theirs.serial.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
        ),
        (
            "an RPC its role does not list",
            SigningClient::new(channel_as(&d, &web).await).sign(digest_sign()).await.unwrap_err(),
        ),
        (
            "reading certificate records",
            web_ca.get_certificate(pb::GetCertificateRequest { serial: theirs.serial.clone() }).await.unwrap_err(),
        ),
    ];
    for (what, e) in &refusals {
        assert_eq!(e.code(), Code::PermissionDenied, "{what}: {e:?}");
        assert!(e.message().contains("web-frontend") || e.message().contains("not permitted"), "{what}: {e:?}");
    }
    assert_eq!(count(&mut operator).await, before, "nothing stored for a refused request");
    let own = pb::RevokeCertificateRequest { serial: mine.serial.clone(), ..Default::default() };
    assert!(web_ca.revoke_certificate(own).await.unwrap().into_inner().revoked, "its own certificate");

    // portal: signs under the default policy and gets time-stamps, nothing else.
    let portal = channel_as(&d, &credential(&d, "portal")).await;
    let signed = SigningClient::new(portal.clone()).sign(digest_sign()).await.expect("portal signs").into_inner();
    assert!(!signed.signature_der.is_empty());
    let stamped = TimeStampingClient::new(portal.clone()).timestamp(timestamp_request()).await.unwrap().into_inner();
    assert_eq!(stamped.status(), pb::TimestampStatus::Granted, "{}", stamped.reason);
    let e = CertificateAuthorityClient::new(portal.clone())
        .issue_certificate(issue("internal-tls-server", csr_der(&dir, "f", "f.web.internal")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // What relying parties fetch anyway is open to every client.
    let chain = CertificateAuthorityClient::new(portal.clone()).get_ca_chain(pb::GetCaChainRequest::default()).await;
    assert_eq!(chain.unwrap().into_inner().certificates_der.len(), 2);

    // A certificate of the CA whose identity no client of the policy has.
    let stranger = channel_as(&d, &credential(&d, "stranger")).await;
    let e = CertificateAuthorityClient::new(stranger).get_ca_chain(pb::GetCaChainRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("spiffe://trustd/stranger"), "{e:?}");

    // Every refusal is recorded: who, what, the outcome; so is every use of a key.
    let log = d.log();
    // Who, what, with which key, on what, and how it ended.
    let recorded = |client: &str, rpc: &str, key: &str, target: &str, outcome: &str| {
        log.lines().any(|l| {
            l.contains("operation audit=true")
                && l.contains(&format!("client=\"{client}\""))
                && l.contains(rpc)
                && l.contains(key)
                && l.contains(&format!("target=\"{target}"))
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
    };
    assert!(recorded("portal", "/trust.v1.Signing/Sign", "key=\"signing:default\"", "signature ", "ok"), "{log}");
    assert!(recorded("portal", "/trust.v1.TimeStamping/Timestamp", "key=\"tsa\"", "time-stamp ", "ok"), "{log}");
    let issue = "/trust.v1.CertificateAuthority/IssueCertificate";
    assert!(recorded("web-frontend", issue, "key=\"issuing\"", "certificate ", "ok"), "{log}");
    let revoke = "/trust.v1.CertificateAuthority/RevokeCertificate";
    assert!(recorded("web-frontend", revoke, "", "certificate ", "ok"), "{log}");
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("access refused")).collect();
    for rpc in ["Signing/Sign", "CertificateAuthority/GetCertificate", "CertificateAuthority/GetCaChain"] {
        assert!(audit.iter().any(|l| l.contains(rpc) && l.contains("audit")), "{rpc} not in\n{}", audit.join("\n"));
    }
    assert!(log.contains("is outside the names this client may have certified"), "{log}");

    // Revoked, a client is refused on the connection it has open and on any new one; everyone
    // else is still served.
    let ops = credential(&d, "ops");
    let ops_serial = {
        let pem = std::fs::read(&ops.0).unwrap();
        let cert = x509_cert::Certificate::load_pem_chain(&pem).unwrap().remove(0);
        hex::encode(cert.tbs_certificate.serial_number.as_bytes())
    };
    let mut ops_ca = CertificateAuthorityClient::new(channel_as(&d, &ops).await);
    ops_ca.get_certificate(pb::GetCertificateRequest { serial: mine.serial.clone() }).await.expect("ops reads");
    let revoke =
        pb::RevokeCertificateRequest { serial: ops_serial, reason: "keyCompromise".into(), ..Default::default() };
    operator.revoke_certificate(revoke).await.unwrap();
    let again = CertificateAuthorityClient::new(channel_as(&d, &ops).await);
    for (which, mut c) in [("open", ops_ca), ("new", again)] {
        let e = c.get_certificate(pb::GetCertificateRequest { serial: mine.serial.clone() }).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{which} connection: {e:?}");
        assert!(e.message().contains("revoked"), "{which} connection: {e:?}");
    }
    operator.get_ca_chain(pb::GetCaChainRequest::default()).await.expect("the daemon keeps serving");
}

async fn count(client: &mut CertificateAuthorityClient<Channel>) -> usize {
    let r = client.list_certificates(pb::ListCertificatesRequest { page_size: 1000, ..Default::default() }).await;
    r.unwrap().into_inner().certificates.len()
}

#[test]
fn python_grpcio_is_served_over_mtls_with_the_dev_credentials() {
    let d = Daemon::start();
    let csr = openssl_csr(d.dir.path(), "py", P256, "/CN=py.example.com", Some("DNS:py.example.com"));
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/grpc_client.py");
    let out =
        run(Command::new(venv_bin("python")).arg(script).arg(host_port(&d)).arg(d.credentials()).arg(proto).arg(csr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from grpc_client.py");
    assert!(seen["issued_der_len"].as_u64().unwrap() > 300, "{seen}");
    assert_eq!(seen["timestamp_status"], "TIMESTAMP_STATUS_GRANTED", "{seen}");
    let services: Vec<&str> = seen["v1alpha_services"].as_array().unwrap().iter().filter_map(|s| s.as_str()).collect();
    for s in ["trust.v1.CertificateAuthority", "trust.v1.TimeStamping", "trust.v1.Signing", "grpc.health.v1.Health"] {
        assert!(services.contains(&s), "{s} not in {services:?}");
    }
    assert_eq!(seen["without_certificate"], "UNAVAILABLE", "no certificate, no call: {seen}");
    let serial = seen["issued_serial"].as_str().unwrap();
    let info = stdout(&d.trustctl(&["cert", "get", "--serial", serial, "--info"]));
    assert!(info.contains("requester: operator"), "{info}");
}

/// Writes `path` as an operator's tooling should: a new file renamed over the old one, so that
/// the daemon never reads half of it.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls `f` every 100 ms for up to 15 s (the policy file is looked at every 2 s).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 15 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_policy_applies_without_a_restart_and_an_invalid_one_is_refused() {
    let d = Daemon::start();
    let dir = d.dir.path().to_owned();
    // One connection for the whole test: a reload does not touch it.
    let mut portal = CertificateAuthorityClient::new(channel_as(&d, &credential(&d, "portal")).await);
    let web_cert = |n: &str| issue("internal-tls-server", csr_der(&dir, n, &format!("{n}.web.internal")));
    let e = portal.issue_certificate(web_cert("p0")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    let file = d.data_dir().join("policies/access.toml");
    let shipped = std::fs::read_to_string(&file).unwrap();
    let portal_roles = "[clients.portal]\nroles = [\"signer\", \"timestamper\"]";
    assert!(shipped.contains(portal_roles));
    let widened =
        shipped.replace(portal_roles, "[clients.portal]\nroles = [\"signer\", \"timestamper\", \"web-certificates\"]");
    replace_file(&file, &widened);
    let hup = Command::new("kill").args(["-HUP", &d.pid().to_string()]).status().unwrap();
    assert!(hup.success());
    let mut n = 0;
    eventually("SIGHUP applies the new policy", || {
        n += 1;
        let req = web_cert(&format!("p{n}"));
        let mut c = portal.clone();
        async move { c.issue_certificate(req).await.is_ok() }
    })
    .await;
    assert!(d.log().contains("access policy reloaded"), "{}", d.log());

    // An invalid file (a role that does not exist), noticed without a signal: refused in one
    // line naming the file and the field, and the policy in force stays.
    let broken = shipped.replace(portal_roles, "[clients.portal]\nroles = [\"signer\", \"no-such-role\"]");
    replace_file(&file, &broken);
    eventually("the invalid file is reported", || {
        let log = d.log();
        async move { log.contains("access policy not reloaded") }
    })
    .await;
    let log = d.log();
    let line = log.lines().find(|l| l.contains("access policy not reloaded")).unwrap();
    assert!(
        line.contains("access.toml") && line.contains("clients.portal.roles") && line.contains("no-such-role"),
        "{line}"
    );
    assert_eq!(log.matches("access policy not reloaded").count(), 1, "reported once, not every poll");
    portal.issue_certificate(web_cert("still")).await.expect("the policy in force stays");

    // The shipped file back, again without a signal: the portal is refused once more.
    replace_file(&file, &shipped);
    eventually("the file change applies", || {
        let (req, mut c) = (web_cert("back"), portal.clone());
        async move { c.issue_certificate(req).await.is_err_and(|e| e.code() == Code::PermissionDenied) }
    })
    .await;

    // Each policy that took effect is in the log, in order: the shipped one at start, the
    // widened one, the shipped one again; the refused one is not.
    let changes: Vec<[u8; 32]> = logged_entries(&d)
        .await
        .into_iter()
        .filter_map(|e| match e {
            trustd::log::LogEntry::PolicyChange(p) => Some(p.sha256),
            _ => None,
        })
        .collect();
    let sha = |t: &str| <[u8; 32]>::from(sha2::Sha256::digest(t.as_bytes()));
    assert_eq!(changes, [sha(&shipped), sha(&widened), sha(&shipped)]);
}

/// `curl` POSTs the time-stamp query `tsq` to `url` with `extra` arguments, trusting the
/// daemon's CA; returns the HTTP status, the response headers, and whether the body is a
/// granted TimeStampResp (openssl's reading).
fn curl_tsa(d: &Daemon, url: &str, tsq: &Path, extra: &[&str]) -> (u16, String, bool) {
    let dir = d.dir.path();
    let reply = dir.join("curl.tsr");
    let _ = std::fs::remove_file(&reply);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "-", "-o"])
        .arg(&reply)
        .arg("--cacert")
        .arg(d.credentials().join("ca.crt"))
        .args(["-H", "Content-Type: application/timestamp-query", "--data-binary"])
        .arg(format!("@{}", tsq.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
    let headers = stdout(&out);
    let code = headers.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let granted = code == 200 && {
        let text = openssl(dir, &["ts", "-reply", "-in", "curl.tsr", "-text"]);
        stdout(&text).contains("Status: Granted.")
    };
    (code, headers, granted)
}

/// Every entry of the log, decoded, after a checkpoint signed on request covers them all.
async fn logged_entries(d: &Daemon) -> Vec<trustd::log::LogEntry> {
    let mut log = trustd::api::pb::transparency_log_client::TransparencyLogClient::new(d.channel().await);
    let size = log.get_checkpoint(pb::GetCheckpointRequest { fresh: true }).await.unwrap().into_inner().tree_size;
    let entries = log
        .get_entries(pb::GetEntriesRequest { start: 0, end: size, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    entries.iter().map(|e| trustd::log::LogEntry::decode(&e.entry).unwrap()).collect()
}

/// The requesters of the log's time-stamp entries, in log order.
async fn logged_timestamp_requesters(d: &Daemon) -> Vec<String> {
    logged_entries(d)
        .await
        .into_iter()
        .filter_map(|e| match e {
            trustd::log::LogEntry::TimestampIssued(t) => Some(t.requester),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_tsa_and_readiness_serve_clients_named_by_certificate_or_bearer_token_only() {
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &["--tsa-access", "authenticated", "--readyz-access", "authenticated"],
    );
    let dir = d.dir.path().to_owned();
    std::fs::write(dir.join("doc.txt"), b"to be time-stamped").unwrap();
    openssl(&dir, &["ts", "-query", "-data", "doc.txt", "-sha256", "-cert", "-out", "doc.tsq"]);
    let tsq = dir.join("doc.tsq");
    let https = format!("{}/tsa", d.https.as_ref().expect("an HTTPS listener"));
    let creds = d.credentials();
    let (cert, key) = (creds.join("operator.crt"), creds.join("operator.key"));

    // Over plain HTTP there is no way to name oneself: refused, saying where to go.
    let (code, _, body) = d.http_post("/tsa", "application/timestamp-query", &std::fs::read(&tsq).unwrap());
    assert_eq!(code, 403);
    assert!(String::from_utf8_lossy(&body).contains("HTTPS"), "{}", String::from_utf8_lossy(&body));
    // Over HTTPS without credentials: 401 with the RFC 6750 challenge.
    let (code, headers, _) = curl_tsa(&d, &https, &tsq, &[]);
    assert_eq!(code, 401, "{headers}");
    assert!(headers.to_ascii_lowercase().contains("www-authenticate: bearer realm=\"trustd\""), "{headers}");
    // With the operator's client certificate: granted, for "operator".
    let cert_args = ["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()];
    let (code, headers, granted) = curl_tsa(&d, &https, &tsq, &cert_args);
    assert!(code == 200 && granted, "{headers}");

    // Bearer tokens, made by trustctl, for the portal (may time-stamp) and the web tier (may not).
    let token = |label: &str| {
        let out = d.trustctl(&["client", "token"]);
        assert!(out.status.success(), "{label}: {}", String::from_utf8_lossy(&out.stderr));
        let text = stdout(&out);
        let token = text.lines().next().and_then(|l| l.rsplit(' ').next()).unwrap().to_owned();
        let hash = text.split('"').nth(1).unwrap().to_owned();
        assert_eq!(hash, hex::encode(sha2::Sha256::digest(token.as_bytes())), "{text}");
        (token, hash)
    };
    let (portal_token, portal_hash) = token("portal");
    let (web_token, web_hash) = token("web-frontend");
    let file = d.data_dir().join("policies/access.toml");
    let shipped = std::fs::read_to_string(&file).unwrap();
    let with_tokens = shipped
        .replace(
            "[clients.portal]\nroles = [\"signer\", \"timestamper\"]",
            &format!(
                "[clients.portal]\nroles = [\"signer\", \"timestamper\"]\nbearer_tokens_sha256 = [\"{portal_hash}\"]"
            ),
        )
        .replace(
            "[clients.web-frontend]\nroles = [\"web-certificates\"]",
            &format!("[clients.web-frontend]\nroles = [\"web-certificates\"]\nbearer_tokens_sha256 = [\"{web_hash}\"]"),
        );
    assert_ne!(with_tokens, shipped);
    replace_file(&file, &with_tokens);
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    let portal_header = bearer(&portal_token);
    eventually("the portal's token is accepted once the policy is reloaded", || {
        let granted = curl_tsa(&d, &https, &tsq, &["-H", &portal_header]).2;
        async move { granted }
    })
    .await;
    let (code, headers, _) = curl_tsa(&d, &https, &tsq, &["-H", &bearer(&web_token)]);
    assert_eq!(code, 403, "the web tier may not time-stamp: {headers}");
    let (code, headers, _) = curl_tsa(&d, &https, &tsq, &["-H", &bearer("not-a-token-of-anyone")]);
    assert_eq!(code, 401, "{headers}");
    assert!(headers.contains("error=\"invalid_token\""), "{headers}");
    let (code, headers, _) = curl_tsa(&d, &https, &tsq, &["-H", "Authorization: Basic b3BlcmF0b3I6eA=="]);
    assert_eq!(code, 401, "only bearer tokens: {headers}");

    // Readiness for clients of the policy only, whatever their roles.
    assert_eq!(d.http_get("/readyz").0, 403);
    let readyz = format!("{}/readyz", d.https.as_ref().unwrap());
    let get = |extra: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(d.credentials().join("ca.crt"))
            .args(extra)
            .arg(&readyz)
            .output()
            .unwrap();
        stdout(&out)
    };
    assert_eq!(get(&[]), "401");
    assert_eq!(get(&cert_args), "200");
    assert_eq!(get(&["-H", &bearer(&web_token)]), "200", "the web tier may not time-stamp, but may ask");

    // Each token is logged for the client that asked, and each refusal is on record.
    assert_eq!(logged_timestamp_requesters(&d).await, ["operator", "portal"]);
    let log = d.log();
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("access refused") && l.contains("POST /tsa")).collect();
    // (The portal's token was refused as unknown until the policy with it was loaded.)
    let count = |reason: &str| refusals.iter().filter(|l| l.contains(reason)).count();
    assert_eq!(count("neither a client certificate nor a bearer token"), 1, "{refusals:#?}");
    assert!(log.contains("rpc=\"GET /readyz\""), "the readiness refusal is on record too");
    assert_eq!(count("web-frontend may not call TimeStamping/Timestamp"), 1, "{refusals:#?}");
    assert_eq!(count("must be 'Bearer TOKEN'"), 1, "{refusals:#?}");
    assert!(
        count("the bearer token is neither one of the access policy nor an unexpired access token") >= 1,
        "{refusals:#?}"
    );
    assert!(!log.contains(&portal_token) && !log.contains(&web_token), "no token in the log");
    assert!(log.contains("client=\"portal\"") || log.contains("client=portal"), "the portal's time-stamp is on record");
}

#[tokio::test]
async fn a_public_tsa_serves_anonymous_requests_over_http_and_https() {
    let d = Daemon::start();
    let dir = d.dir.path().to_owned();
    std::fs::write(dir.join("doc.txt"), b"public").unwrap();
    openssl(&dir, &["ts", "-query", "-data", "doc.txt", "-sha256", "-out", "doc.tsq"]);
    let tsq = dir.join("doc.tsq");
    let (code, _, _) = d.http_post("/tsa", "application/timestamp-query", &std::fs::read(&tsq).unwrap());
    assert_eq!(code, 200);
    let https = format!("{}/tsa", d.https.as_ref().unwrap());
    let (code, headers, granted) = curl_tsa(&d, &https, &tsq, &[]);
    assert!(code == 200 && granted, "{headers}");
    // The other routes are there over HTTPS too.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(d.credentials().join("ca.crt"))
        .arg(format!("{}/healthz", d.https.as_ref().unwrap()))
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "200");
    assert_eq!(logged_timestamp_requesters(&d).await, ["", ""], "both anonymous");
}
