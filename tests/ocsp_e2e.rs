//! End-to-end tests of the OCSP responder with `openssl ocsp` as the client and pkilint's OCSP
//! linter: good, revoked with reason, unknown, unauthorized, malformed, GET and POST, SHA-1 and
//! SHA-256 CertIDs, nonces.

mod common;

use common::*;
use std::process::Command;

struct Setup {
    d: Daemon,
    url: String,
    serial: String,
}

fn setup() -> Setup {
    let d = Daemon::start();
    let dir = d.dir.path();
    let chain = split_pem(&String::from_utf8_lossy(&d.trustctl(&["ca", "chain"]).stdout));
    std::fs::write(dir.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(dir.join("root.pem"), &chain[1]).unwrap();
    let csr = openssl_csr(dir, "web", P256, "/CN=web.example.com", Some("DNS:web.example.com"));
    let o = d.trustctl(&["issue", "--profile", "tls-server", "--csr", csr.to_str().unwrap()]);
    std::fs::write(dir.join("cert.pem"), &o.stdout).unwrap();
    let serial = text(&openssl(dir, &["x509", "-in", "cert.pem", "-noout", "-serial"]));
    let serial = serial.trim().trim_start_matches("serial=").to_owned();
    let url = format!("http://{}/ocsp", d.http);
    Setup { d, url, serial }
}

fn ocsp(s: &Setup, extra: &[&str]) -> String {
    let o = Command::new("openssl")
        .current_dir(s.d.dir.path())
        .args(["ocsp", "-issuer", "issuing.pem", "-url", &s.url, "-CAfile", "root.pem"])
        .args(extra)
        .output()
        .unwrap();
    text(&o)
}

#[test]
fn good_then_revoked_with_reason() {
    let s = setup();
    let dir = s.d.dir.path();
    for extra in [&["-cert", "cert.pem"][..], &["-cert", "cert.pem", "-no_nonce"], &["-sha256", "-cert", "cert.pem"]] {
        let out = ocsp(&s, extra);
        assert!(out.contains("Response verify OK") && out.contains("cert.pem: good"), "{extra:?}: {out}");
    }
    // The key ceremony's service certificates are known like any other (here the TSA's).
    let tsa = split_pem(&String::from_utf8_lossy(&s.d.trustctl(&["tsa", "chain"]).stdout)).remove(0);
    std::fs::write(dir.join("tsa.pem"), tsa).unwrap();
    let out = ocsp(&s, &["-cert", "tsa.pem"]);
    assert!(out.contains("Response verify OK") && out.contains("tsa.pem: good"), "{out}");
    let out = ocsp(&s, &["-cert", "cert.pem", "-resp_text"]);
    assert!(out.contains("OCSP Nonce"), "the nonce is echoed: {out}");
    assert!(out.contains("Next Update"), "{out}");

    let r = s.d.trustctl(&["revoke", "--serial", &s.serial, "--reason", "keyCompromise"]);
    assert!(r.status.success(), "{}", text(&r));
    // Revocation shows at once, also where a good response had been cached (no nonce).
    for extra in [&["-cert", "cert.pem"][..], &["-cert", "cert.pem", "-no_nonce"], &["-sha256", "-cert", "cert.pem"]] {
        let out = ocsp(&s, extra);
        assert!(out.contains("Response verify OK") && out.contains("cert.pem: revoked"), "{extra:?}: {out}");
        assert!(out.contains("Reason: keyCompromise"), "{out}");
    }
    let out = ocsp(&s, &["-cert", "cert.pem", "-no_nonce", "-respout", "revoked.der"]);
    assert!(out.contains("revoked"));
    let lint = Command::new(venv_bin("lint_ocsp_response")).arg("lint").arg(dir.join("revoked.der")).output().unwrap();
    let lint = text(&lint);
    assert!(!lint.contains("ERROR") && !lint.contains("FATAL"), "{lint}");
}

#[test]
fn unknown_unauthorized_and_malformed() {
    let s = setup();
    let dir = s.d.dir.path();
    let out = ocsp(&s, &["-serial", "0x1234567890abcdef"]);
    assert!(out.contains("Response verify OK") && out.contains(": unknown"), "never issued: {out}");

    // A certificate from some other CA: this responder answers unauthorized.
    openssl_self_signed(dir, "other", "/CN=Other CA", None);
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(["ocsp", "-issuer", "other.pem", "-serial", "0x1234", "-url", &s.url])
        .output()
        .unwrap();
    assert!(text(&o).contains("unauthorized (6)"), "{}", text(&o));

    // malformedRequest (OCSPResponseStatus 1) for what does not parse, in an HTTP 200 reply.
    for body in [&b"garbage"[..], b"", &[0x30, 0x03, 0x30, 0x01]] {
        let (code, _, resp) = s.d.http_post("/ocsp", "application/ocsp-request", body);
        assert_eq!((code, resp.as_slice()), (200, &[0x30, 0x03, 0x0a, 0x01, 0x01][..]), "{body:?}");
    }
    let (code, _, _) = s.d.http_post("/ocsp", "text/plain", b"x");
    assert_eq!(code, 415);
    let (code, _, _) = s.d.http_post("/ocsp", "application/ocsp-request", &vec![0x30; 100 * 1024]);
    assert_eq!(code, 413);
    let (code, head, resp) = s.d.http_get("/ocsp/not-base64!");
    assert_eq!((code, resp.as_slice()), (200, &[0x30, 0x03, 0x0a, 0x01, 0x01][..]));
    assert!(head.to_ascii_lowercase().contains("cache-control: no-store"), "an error is never cached: {head}");
    // A GET request far longer than sixteen CertIDs need: 414, as HTTP says.
    let (code, _, _) = s.d.http_get(&format!("/ocsp/{}", "A".repeat(5000)));
    assert_eq!(code, 414);
}

#[test]
fn get_requests_are_cacheable() {
    let s = setup();
    let dir = s.d.dir.path();
    openssl(dir, &["ocsp", "-issuer", "issuing.pem", "-cert", "cert.pem", "-no_nonce", "-reqout", "req.der"]);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join("req.der")).unwrap());
    let path = format!("/ocsp/{}", b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D"));
    let (code, head, resp) = s.d.http_get(&path);
    assert_eq!(code, 200);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: application/ocsp-response"), "{head}");
    let max_age: u64 = head
        .split("max-age=")
        .nth(1)
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{head}"));
    assert!((1..=300).contains(&max_age), "at most five minutes, never past nextUpdate: {head}");
    std::fs::write(dir.join("get.der"), resp).unwrap();
    let out = text(&openssl(
        dir,
        &["ocsp", "-respin", "get.der", "-issuer", "issuing.pem", "-CAfile", "root.pem", "-resp_text"],
    ));
    assert!(out.contains("Response verify OK") && out.contains("Cert Status: good"), "{out}");
    let (_, _, again) = s.d.http_get(&path);
    assert_eq!(again, std::fs::read(dir.join("get.der")).unwrap(), "good responses are pre-signed and reused");
}
