//! End-to-end tests of revocation and CRLs: a real daemon, trustctl and a tonic client,
//! checked with `openssl crl`, `openssl verify -crl_check` and pkilint's CRL linter.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tonic::Code;
use trustd::api::pb;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Issues a tls-server certificate for `name` and returns (serial hex, PEM file name).
fn issue(d: &Daemon, name: &str) -> (String, String) {
    let csr = openssl_csr(
        d.dir.path(),
        name,
        P256,
        &format!("/CN={name}.example.com"),
        Some(&format!("DNS:{name}.example.com")),
    );
    let o = d.trustctl(&["issue", "--profile", "tls-server", "--csr", csr.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let pem = format!("{name}.pem");
    std::fs::write(d.dir.path().join(&pem), &o.stdout).unwrap();
    let serial = out(&openssl(d.dir.path(), &["x509", "-in", &pem, "-noout", "-serial"]));
    (serial.trim().trim_start_matches("serial=").to_ascii_lowercase(), pem)
}

/// Fetches the CRL from the URL in the certificates, as a relying party does; writes crl.pem.
fn fetch_crl(d: &Daemon) -> String {
    let (code, head, der) = d.http_get("/crl/issuing.crl");
    assert_eq!(code, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: application/pkix-crl"), "{head}");
    std::fs::write(d.dir.path().join("crl.der"), der).unwrap();
    openssl(d.dir.path(), &["crl", "-in", "crl.der", "-inform", "DER", "-out", "crl.pem"]);
    out(&openssl(d.dir.path(), &["crl", "-in", "crl.pem", "-noout", "-text"]))
}

/// Waits until the published CRL satisfies `pred` (a new CRL follows a revocation within a
/// second or so).
fn wait_for_crl(d: &Daemon, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = fetch_crl(d);
        if pred(&text) {
            return text;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "CRL did not change:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn crl_number(text: &str) -> u64 {
    let mut lines = text.lines().skip_while(|l| !l.contains("X509v3 CRL Number"));
    lines.nth(1).and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("no CRL number in\n{text}"))
}

fn verify_with_crl(d: &Daemon, pem: &str) -> std::process::Output {
    std::process::Command::new("openssl")
        .current_dir(d.dir.path())
        .args(["verify", "-crl_check", "-CAfile", "root.pem", "-untrusted", "issuing.pem", "-CRLfile", "crl.pem", pem])
        .output()
        .unwrap()
}

#[test]
fn revoked_certificates_fail_crl_checks() {
    let d = Daemon::start();
    let dir = d.dir.path();
    let chain = split_pem(&String::from_utf8_lossy(&d.trustctl(&["ca", "chain"]).stdout));
    std::fs::write(dir.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(dir.join("root.pem"), &chain[1]).unwrap();
    let (serial, pem) = issue(&d, "victim");
    let (_, bystander) = issue(&d, "bystander");

    let before = fetch_crl(&d);
    assert!(before.contains("No Revoked Certificates."), "{before}");
    let v = verify_with_crl(&d, &pem);
    assert!(v.status.success(), "good before revocation: {}", out(&v));
    let sig = out(&openssl(dir, &["crl", "-in", "crl.pem", "-CAfile", "issuing.pem", "-noout"]));
    assert!(sig.contains("verify OK"), "CRL signature: {sig}");
    pkilint_no_errors("lint_crl", &["-t", "CRL", "-p", "PKIX"], &dir.join("crl.pem"));

    // Compromised a moment ago: after its notBefore (a minute of backdating), before now.
    let at = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - time::Duration::seconds(10);
    let compromised = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let fmt = time::format_description::parse_borrowed::<2>(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT",
    );
    let as_openssl_prints = at.format(&fmt.unwrap()).unwrap();
    let r =
        d.trustctl(&["revoke", "--serial", &serial, "--reason", "keyCompromise", "--invalidity-date", &compromised]);
    assert!(r.status.success(), "{}", out(&r));
    assert!(out(&r).contains("revoked (keyCompromise)"), "{}", out(&r));

    let after = wait_for_crl(&d, |t| t.contains(&serial.to_ascii_uppercase()));
    assert!(after.contains("Key Compromise"), "{after}");
    assert!(after.contains("Invalidity Date") && after.contains(&as_openssl_prints), "{after}");
    assert!(crl_number(&after) > crl_number(&before), "CRL numbers increase");
    let sig = out(&openssl(dir, &["crl", "-in", "crl.pem", "-CAfile", "issuing.pem", "-noout"]));
    assert!(sig.contains("verify OK"), "{sig}");
    for profile in ["PKIX", "BR"] {
        pkilint_no_errors("lint_crl", &["-t", "CRL", "-p", profile], &dir.join("crl.pem"));
    }
    let v = verify_with_crl(&d, &pem);
    assert!(!v.status.success() && out(&v).contains("certificate revoked"), "{}", out(&v));
    assert!(verify_with_crl(&d, &bystander).status.success(), "other certificates stay good");

    // The root's CRL (the issuing CA certificate's distribution point) completes a whole-chain
    // check.
    let (code, _, root_crl) = d.http_get("/crl/root.crl");
    assert_eq!(code, 200);
    std::fs::write(dir.join("root-crl.der"), root_crl).unwrap();
    openssl(dir, &["crl", "-in", "root-crl.der", "-inform", "DER", "-out", "root-crl.pem"]);
    let sig = out(&openssl(dir, &["crl", "-in", "root-crl.pem", "-CAfile", "root.pem", "-noout"]));
    assert!(sig.contains("verify OK"), "{sig}");
    pkilint_no_errors("lint_crl", &["-t", "CRL", "-p", "PKIX"], &dir.join("root-crl.pem"));
    let all = |pem: &str| {
        std::process::Command::new("openssl")
            .current_dir(dir)
            .args(["verify", "-crl_check_all", "-CAfile", "root.pem", "-untrusted", "issuing.pem"])
            .args(["-CRLfile", "crl.pem", "-CRLfile", "root-crl.pem", pem])
            .output()
            .unwrap()
    };
    assert!(all(&bystander).status.success(), "{}", out(&all(&bystander)));
    assert!(!all(&pem).status.success());

    let info = out(&d.trustctl(&["cert", "get", "--serial", &serial, "--info"]));
    assert!(info.contains("status: revoked") && info.contains("revocation_reason: keyCompromise"), "{info}");
    let der = d.trustctl(&["crl", "--der"]).stdout;
    assert_eq!(der, std::fs::read(dir.join("crl.der")).unwrap(), "GetCrl serves the CRL the URL serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_rules_and_refusals() {
    let d = Daemon::start();
    let mut client = d.client().await;
    let (serial, _) = issue(&d, "held");
    let revoke = |serial: &str, reason: &str| pb::RevokeCertificateRequest {
        serial: serial.into(),
        reason: reason.into(),
        invalidity_date: None,
    };

    // Hold, release, hold again, then make it permanent.
    let r = client.revoke_certificate(revoke(&serial, "certificateHold")).await.unwrap().into_inner();
    assert!(r.revoked && r.changed && r.reason == "certificateHold");
    let held = wait_for_crl(&d, |t| t.contains(&serial.to_ascii_uppercase()));
    assert!(held.contains("Certificate Hold"), "{held}");
    let r = client.revoke_certificate(revoke(&serial, "removeFromCRL")).await.unwrap().into_inner();
    assert!(!r.revoked && r.changed);
    wait_for_crl(&d, |t| !t.contains(&serial.to_ascii_uppercase()));
    client.revoke_certificate(revoke(&serial, "certificateHold")).await.unwrap();
    let r = client.revoke_certificate(revoke(&serial, "superseded")).await.unwrap().into_inner();
    assert!(r.revoked && r.changed && r.reason == "superseded");
    let r = client.revoke_certificate(revoke(&serial, "superseded")).await.unwrap().into_inner();
    assert!(r.revoked && !r.changed, "idempotent");

    let refusals = [
        (revoke(&serial, "keyCompromise"), Code::FailedPrecondition, "cannot change reason"),
        (revoke(&serial, "removeFromCRL"), Code::FailedPrecondition, "cannot change reason"),
        (revoke(&serial, "stolen"), Code::InvalidArgument, "unknown reason"),
        (revoke(&serial, "cACompromise"), Code::InvalidArgument, "for CA"),
        (revoke("0123456789abcdef", "keyCompromise"), Code::NotFound, "not found"),
        (revoke("not-hex", "keyCompromise"), Code::InvalidArgument, "not hexadecimal"),
    ];
    let (fresh, _) = issue(&d, "fresh");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let invalid_since = |seconds: i64| pb::RevokeCertificateRequest {
        serial: fresh.clone(),
        reason: "keyCompromise".into(),
        invalidity_date: Some(prost_types::Timestamp { seconds, nanos: 0 }),
    };
    let refusals = refusals.into_iter().chain([
        (invalid_since(now + 3600), Code::InvalidArgument, "in the future"),
        (invalid_since(i64::MAX), Code::InvalidArgument, "in the future"),
        (invalid_since(now - 86_400), Code::InvalidArgument, "before the certificate's notBefore"),
        (invalid_since(i64::MIN), Code::InvalidArgument, "before the certificate's notBefore"),
        (invalid_since(0), Code::InvalidArgument, "before the certificate's notBefore"),
    ]);
    for (req, code, msg) in refusals {
        let what = format!("{} {}", req.serial, req.reason);
        let e = client.revoke_certificate(req).await.expect_err(&what);
        assert_eq!(e.code(), code, "{what}: {e:?}");
        assert!(e.message().contains(msg), "{what}: {}", e.message());
    }
    let r = client.get_certificate(pb::GetCertificateRequest { serial: fresh.clone() }).await.unwrap().into_inner();
    assert_eq!(r.status(), pb::CertificateStatus::Issued, "a refused revocation changes nothing");
    let (good, _) = issue(&d, "good");
    let e = client.revoke_certificate(revoke(&good, "removeFromCRL")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "only a hold can be released");
    assert!(!d.trustctl(&["revoke", "--serial", &good, "--reason", "nonsense"]).status.success());
    let e = client.get_crl(pb::GetCrlRequest { ca: "other".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[test]
fn crl_numbers_keep_increasing_across_restarts() {
    let d = Daemon::start();
    let first = crl_number(&fetch_crl(&d));
    let (_, dir) = d.stop();
    let d = Daemon::start_in(dir);
    let second = crl_number(&fetch_crl(&d));
    assert!(second > first, "{second} after {first}");
}
