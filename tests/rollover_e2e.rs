//! Key rollover without downtime (`trustd rollover`) on a running `trustd dev`: the TSA, the
//! document signer and the OCSP responder each get a new key while the daemon serves; what the
//! old keys signed still verifies with openssl and trustctl, new work carries the new
//! certificates, OCSP answers for the old and the new, the log states each new key, and a
//! restart keeps the newest.

mod common;

use common::postgres::{TestDatabase, TestStandby};
use common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TSQ: &str = "application/timestamp-query";

fn rollover(d: &Daemon, key: &str) -> Output {
    rollover_with(d, key, &[])
}

/// `trustd rollover` on `d`'s data dir with `extra` arguments (`--store-url`).
fn rollover_with(d: &Daemon, key: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trustd"))
        .args(["rollover", "--key", key, "--public-url", PUBLIC_URL, "--data-dir"])
        .arg(d.data_dir())
        .args(extra)
        .output()
        .expect("trustd rollover")
}

fn rollover_ok(d: &Daemon, key: &str) -> String {
    rollover_ok_with(d, key, &[])
}

fn rollover_ok_with(d: &Daemon, key: &str, extra: &[&str]) -> String {
    let out = rollover_with(d, key, extra);
    assert!(out.status.success(), "trustd rollover --key {key}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A time-stamp over HTTP for `doc.txt` with the TSA certificate in it, saved as `name`; the
/// certificate it names, PEM.
fn timestamp(d: &Daemon, name: &str) -> String {
    let dir = d.dir.path();
    openssl(dir, &["ts", "-query", "-data", "doc.txt", "-sha256", "-cert", "-out", "q.tsq"]);
    let (code, _, body) = d.http_post("/tsa", TSQ, &std::fs::read(dir.join("q.tsq")).unwrap());
    assert_eq!(code, 200);
    std::fs::write(dir.join(name), body).unwrap();
    openssl(dir, &["ts", "-reply", "-in", name, "-token_out", "-out", "token.der"]);
    let certs = text(&openssl(dir, &["pkcs7", "-inform", "DER", "-in", "token.der", "-print_certs"]));
    certificate_named(&certs, "Time-Stamping Authority")
}

/// The PEM certificate in openssl's `-print_certs` output whose subject names `name` (a token
/// or signature carries its CA's certificate too, in DER's SET OF order).
fn certificate_named(printed: &str, name: &str) -> String {
    let at = printed.lines().position(|l| l.starts_with("subject=") && l.contains(name)).expect("the certificate");
    let rest: Vec<&str> = printed.lines().skip(at).collect();
    let begin = rest.iter().position(|l| *l == "-----BEGIN CERTIFICATE-----").expect("its PEM");
    let end = rest.iter().position(|l| *l == "-----END CERTIFICATE-----").expect("its end");
    rest[begin..=end].join("\n") + "\n"
}

fn ts_verifies(dir: &Path, name: &str) -> bool {
    let args = ["ts", "-verify", "-in", name, "-data", "doc.txt", "-CAfile", "root.pem", "-untrusted", "issuing.pem"];
    text(&Command::new("openssl").current_dir(dir).args(args).output().unwrap()).contains("Verification: OK")
}

/// A detached CMS signature of `doc.txt` by trustctl, saved as `name`; its signer's certificate.
fn sign(d: &Daemon, name: &str) -> String {
    let dir = d.dir.path();
    trustctl_ok(
        d,
        &[
            "sign",
            "--file",
            dir.join("doc.txt").to_str().unwrap(),
            "--detached",
            "--out",
            dir.join(name).to_str().unwrap(),
        ],
    );
    let certs = text(&openssl(dir, &["pkcs7", "-inform", "DER", "-in", name, "-print_certs"]));
    certificate_named(&certs, "Document Signer")
}

fn cms_verifies(dir: &Path, name: &str) -> bool {
    let args =
        ["cms", "-verify", "-binary", "-inform", "DER", "-in", name, "-content", "doc.txt", "-CAfile", "root.pem"];
    let out =
        Command::new("openssl").current_dir(dir).args(args).args(["-purpose", "any", "-out", "/dev/null"]).output();
    let out = out.unwrap();
    out.status.success() && text(&out).contains("Verification successful")
}

/// `openssl ocsp` for `cert` (a PEM file in the dir): the status line and the responder's key
/// hash (byKey), after checking that openssl verified the response.
fn ocsp(d: &Daemon, cert: &str) -> (String, String) {
    let url = format!("http://{}/ocsp", d.http);
    let args = ["ocsp", "-issuer", "issuing.pem", "-cert", cert, "-url", &url, "-CAfile", "root.pem", "-resp_text"];
    let out = text(&Command::new("openssl").current_dir(d.dir.path()).args(args).output().unwrap());
    assert!(out.contains("Response verify OK"), "{out}");
    let status = out.lines().find(|l| l.starts_with(&format!("{cert}: "))).expect("status line").to_owned();
    let responder = out.lines().find_map(|l| l.trim().strip_prefix("Responder Id: ")).expect("responder").to_owned();
    (status, responder)
}

/// Waits (up to 10 s) until `made` gives something other than `old`: a replica follows a
/// rollover within about a second.
fn changed_from(old: &str, mut made: impl FnMut() -> String) -> String {
    let start = Instant::now();
    loop {
        let now = made();
        if now != old {
            return now;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still the old key after 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn service_keys_roll_over_while_serving_and_what_they_signed_stays_valid() {
    let d = Daemon::start();
    let dir = d.dir.path().to_path_buf();
    std::fs::write(dir.join("doc.txt"), b"a contract signed before and after a key rollover\n").unwrap();
    let chain = split_pem(&trustctl_ok(&d, &["ca", "chain"]));
    std::fs::write(dir.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(dir.join("root.pem"), &chain[1]).unwrap();
    let (_, _, vkey) = d.http_get("/log/key");
    let vkey = String::from_utf8(vkey).unwrap().trim().to_owned();

    let tsa_1 = timestamp(&d, "before.tsr");
    let signer_1 = sign(&d, "before.p7s");
    std::fs::write(dir.join("tsa-1.pem"), &tsa_1).unwrap();
    let (status, responder_1) = ocsp(&d, "tsa-1.pem");
    assert!(status.ends_with(": good"), "{status}");

    // Each rollover while the daemon serves; it switches within a second.
    let rolled = rollover_ok(&d, "tsa");
    assert!(rolled.contains("tsa key, generation 2") && rolled.contains("object=trustd-tsa.2"), "{rolled}");
    let tsa_2 = changed_from(&tsa_1, || timestamp(&d, "after.tsr"));
    let rolled = rollover_ok(&d, "signer");
    assert!(rolled.contains("document-signer key, generation 2"), "{rolled}");
    let signer_2 = changed_from(&signer_1, || sign(&d, "after.p7s"));
    rollover_ok(&d, "ocsp");
    let responder_2 = changed_from(&responder_1, || ocsp(&d, "tsa-1.pem").1);

    // The new certificates keep the old names; both generations verify with openssl.
    std::fs::write(dir.join("tsa-2.pem"), &tsa_2).unwrap();
    std::fs::write(dir.join("signer-1.pem"), &signer_1).unwrap();
    std::fs::write(dir.join("signer-2.pem"), &signer_2).unwrap();
    let subject = |f: &str| text(&openssl(&dir, &["x509", "-in", f, "-noout", "-subject"]));
    assert_eq!(subject("tsa-1.pem"), subject("tsa-2.pem"));
    assert_eq!(subject("signer-1.pem"), subject("signer-2.pem"));
    for f in ["tsa-2.pem", "signer-2.pem"] {
        openssl(&dir, &["verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", f]);
    }
    for tsr in ["before.tsr", "after.tsr"] {
        assert!(ts_verifies(&dir, tsr), "{tsr}");
    }
    for sig in ["before.p7s", "after.p7s"] {
        assert!(cms_verifies(&dir, sig), "{sig}");
        let doc = dir.join("doc.txt");
        let report = trustctl_ok(
            &d,
            &["verify", "--signature", dir.join(sig).to_str().unwrap(), "--file", doc.to_str().unwrap()],
        );
        assert!(report.contains("indication: TOTAL_PASSED"), "{report}");
    }
    // OCSP, signed by the new responder key, knows the old and the new service certificates.
    for cert in ["tsa-1.pem", "tsa-2.pem", "signer-1.pem", "signer-2.pem"] {
        let (status, responder) = ocsp(&d, cert);
        assert!(status.ends_with(": good"), "{status}");
        assert_eq!(responder, responder_2);
    }

    // The log states each new key, and every token and signature's certificate is in it.
    let stated =
        [("tsa", "trustd-tsa.2"), ("document-signer", "trustd-document-signer.2"), ("ocsp", "trustd-ocsp-signer.2")]
            .map(|(role, label)| format!(": {role} pkcs11:object={label} with public key"));
    let start = Instant::now();
    let log = loop {
        // The checkpoint follows the entries within about a second.
        let log = trustctl_ok(&d, &["log", "verify", "--key", &vkey]);
        if stated.iter().all(|line| log.contains(line)) {
            break log;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "not every new key is stated in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    };
    for role in ["tsa", "document-signer", "ocsp"] {
        assert!(log.contains(&format!("ceremony:{role} 2")), "both {role} certificates in the log:\n{log}");
    }
    assert!(!log.contains("certificate not among these entries"), "{log}");

    let (_, _, metrics) = d.http_get("/metrics");
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    for role in ["tsa", "document-signer", "ocsp"] {
        assert!(metrics.contains(&format!("trustd_service_key_generation{{role=\"{role}\"}} 2")), "{role}: {metrics}");
        assert!(metrics.contains(&format!("trustd_service_key_rollover_pending{{role=\"{role}\"}} 0")), "{metrics}");
    }
    assert!(metrics.contains("trustd_service_key_generation{role=\"log\"} 1"), "{metrics}");

    // A restart serves with the newest keys; a second rollover makes generation 3.
    let (status, dir_kept) = d.stop();
    assert!(status.success());
    let d = Daemon::start_in(dir_kept);
    assert_eq!(timestamp(&d, "restarted.tsr"), tsa_2);
    assert_eq!(sign(&d, "restarted.p7s"), signer_2);
    assert_eq!(ocsp(&d, "tsa-1.pem").1, responder_2);
    let rolled = rollover_ok(&d, "tsa");
    assert!(rolled.contains("tsa key, generation 3") && rolled.contains("object=trustd-tsa.3"), "{rolled}");
    let tsa_3 = changed_from(&tsa_2, || timestamp(&d, "third.tsr"));
    assert_ne!(tsa_3, tsa_1);
    for tsr in ["before.tsr", "after.tsr", "third.tsr"] {
        assert!(ts_verifies(d.dir.path(), tsr), "{tsr}");
    }
    trustctl_ok(&d, &["log", "verify", "--key", &vkey]);
    let (_, _, ready) = d.http_get("/readyz");
    let ready = String::from_utf8_lossy(&ready).into_owned();
    assert!(ready.contains("certificates: ok") && ready.contains("rollover: ok\n"), "{ready}");
}

#[tokio::test]
async fn a_rollover_refuses_what_it_cannot_do_and_changes_nothing() {
    let d = Daemon::start();
    for (key, says) in [
        ("tls", "is replaced by a key ceremony"),
        ("root", "is replaced by a key ceremony"),
        ("TSA", "is not a key that rolls over"),
        ("issuing-2", "is not a key that rolls over"),
        ("", "is not a key that rolls over"),
    ] {
        let out = rollover(&d, key);
        assert!(!out.status.success(), "--key {key:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("trustd: ") && err.contains(says), "--key {key:?}: {err}");
    }
    let missing = d.dir.path().join("no-such-dir");
    let out = Command::new(env!("CARGO_BIN_EXE_trustd"))
        .args(["rollover", "--key", "tsa", "--data-dir"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no trustd dev data dir there"), "{}", text(&out));
    assert!(!missing.exists(), "nothing created where no data dir was");
    let out = Command::new(env!("CARGO_BIN_EXE_trustd")).args(["rollover", "--key", "tsa"]).output().unwrap();
    assert!(!out.status.success(), "a config or a data dir is required");
    // A row in the store naming another key of the token (here the issuing CA's) as the TSA's
    // next generation is not followed: the daemon says so and keeps the ceremony's TSA key.
    let store = trustd::store::SqliteStore::open(&d.data_dir().join("trustd.db")).await.unwrap();
    let forged = trustd::store::RolledKey {
        role: trustd::service_role::ServiceRole::Tsa,
        generation: 2,
        key: trustd::keys::KeyRef::label("trustd-issuing-ca"),
        created_at: 0,
        in_service_at: Some(0),
    };
    trustd::store::Store::record_service_key(&store, &forged).await.unwrap();
    let start = Instant::now();
    while !d.log().contains("not the key trustd rollover makes") {
        assert!(start.elapsed() < Duration::from_secs(10), "no refusal logged:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, _, metrics) = d.http_get("/metrics");
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    assert!(metrics.contains("trustd_service_key_generation{role=\"tsa\"} 1"), "{metrics}");
    assert!(metrics.contains("trustd_service_key_rollover_pending{role=\"tsa\"} 1"), "{metrics}");
    let (code, _, ready) = d.http_get("/readyz");
    let ready = String::from_utf8_lossy(&ready).into_owned();
    assert_eq!(code, 200, "the old key still serves: {ready}");
    assert!(ready.contains("rollover: the tsa key's generation 2 is not in service here yet"), "{ready}");
    std::fs::write(d.dir.path().join("doc.txt"), b"x").unwrap();
    let chain = split_pem(&trustctl_ok(&d, &["tsa", "chain"]));
    assert_eq!(timestamp(&d, "t.tsr"), chain[0]);
}

/// A tls-server certificate issued now by `d` for `name`, saved as `<name>.pem`; its serial.
fn issue(d: &Daemon, name: &str) -> String {
    let dir = d.dir.path();
    let csr =
        openssl_csr(dir, name, P256, &format!("/CN={name}.example.com"), Some(&format!("DNS:{name}.example.com")));
    let pem = trustctl_ok(d, &["issue", "--profile", "tls-server", "--csr", csr.to_str().unwrap()]);
    std::fs::write(dir.join(format!("{name}.pem")), pem).unwrap();
    let serial = text(&openssl(dir, &["x509", "-in", &format!("{name}.pem"), "-noout", "-serial"]));
    serial.trim().trim_start_matches("serial=").to_owned()
}

/// `openssl ocsp` for `cert` issued by `issuer` (PEM files in the dir): the status line and the
/// responder's key hash, once openssl verified the response against the root.
fn ocsp_under(d: &Daemon, issuer: &str, cert: &str) -> (String, String) {
    let url = format!("http://{}/ocsp", d.http);
    let args = ["ocsp", "-issuer", issuer, "-cert", cert, "-url", &url, "-CAfile", "root.pem", "-resp_text"];
    let out = text(&Command::new("openssl").current_dir(d.dir.path()).args(args).output().unwrap());
    assert!(out.contains("Response verify OK"), "{out}");
    let status = out.lines().find(|l| l.starts_with(&format!("{cert}: "))).expect("status line").to_owned();
    let responder = out.lines().find_map(|l| l.trim().strip_prefix("Responder Id: ")).expect("responder").to_owned();
    (status, responder)
}

/// The SHA-1 hash of the public key in `cert` (a PEM file in the dir), uppercase hex: the byKey
/// responder ID of a response it signed (RFC 6960 §4.2.1).
fn key_hash(dir: &Path, cert: &str) -> String {
    use sha1::Digest;
    use x509_cert::der::DecodePem;
    let cert = x509_cert::Certificate::from_pem(std::fs::read(dir.join(cert)).unwrap()).unwrap();
    let hash = sha1::Sha1::digest(cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes());
    hash.iter().map(|b| format!("{b:02X}")).collect()
}

/// The CRL `/crl/<ca>.crl` serves, as openssl prints it once it verified its signature with
/// `issuer` (a PEM file in the dir).
fn crl_text(d: &Daemon, ca: &str, issuer: &str) -> String {
    let dir = d.dir.path();
    let (code, _, der) = d.http_get(&format!("/crl/{ca}.crl"));
    assert_eq!(code, 200, "/crl/{ca}.crl");
    std::fs::write(dir.join(format!("{ca}.crl")), der).unwrap();
    let checked =
        text(&openssl(dir, &["crl", "-inform", "DER", "-in", &format!("{ca}.crl"), "-CAfile", issuer, "-noout"]));
    assert!(checked.contains("verify OK"), "{ca} CRL signed by {issuer}: {checked}");
    text(&openssl(dir, &["crl", "-inform", "DER", "-in", &format!("{ca}.crl"), "-noout", "-text"]))
}

/// Waits (up to 10 s) until `/crl/<ca>.crl` lists `serial`.
fn wait_listed(d: &Daemon, ca: &str, issuer: &str, serial: &str) -> String {
    let start = Instant::now();
    loop {
        let crl = crl_text(d, ca, issuer);
        if crl.contains(&format!("Serial Number: {serial}")) {
            return crl;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{serial} not on the {ca} CRL:\n{crl}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_issuing_ca_rolls_over_and_both_generations_stay_verifiable_and_revocable() {
    let d = Daemon::start();
    let dir = d.dir.path().to_path_buf();
    std::fs::write(dir.join("doc.txt"), b"a time-stamp under the first and the second issuing CA\n").unwrap();
    let chain = split_pem(&trustctl_ok(&d, &["ca", "chain"]));
    std::fs::write(dir.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(dir.join("root.pem"), &chain[1]).unwrap();
    let old = issue(&d, "old");
    let tsa_1 = timestamp(&d, "before.tsr");
    let (_, delegated_1) = ocsp_under(&d, "issuing.pem", "old.pem");

    // The new CA: certified by the root (the dev token holds it) under a name of its own.
    let rolled = rollover_ok(&d, "issuing");
    assert!(rolled.contains("issuing key, generation 2") && rolled.contains("object=trustd-issuing-ca.2"), "{rolled}");
    let issuing_2 = changed_from(&chain[0], || split_pem(&trustctl_ok(&d, &["ca", "chain"]))[0].clone());
    std::fs::write(dir.join("issuing-2.pem"), &issuing_2).unwrap();
    let (_, _, served) = d.http_get("/ca/issuing-2.crt");
    std::fs::write(dir.join("issuing-2.der"), served).unwrap();
    openssl(&dir, &["x509", "-inform", "DER", "-in", "issuing-2.der", "-out", "issuing-2-served.pem"]);
    assert_eq!(std::fs::read_to_string(dir.join("issuing-2-served.pem")).unwrap(), issuing_2);
    let printed = text(&openssl(
        &dir,
        &["x509", "-in", "issuing-2.pem", "-noout", "-subject", "-ext", "basicConstraints,crlDistributionPoints"],
    ));
    assert!(printed.contains("CN=trustd Issuing CA G2") || printed.contains("CN = trustd Issuing CA G2"), "{printed}");
    assert!(printed.contains("CA:TRUE") && printed.contains("/crl/root.crl"), "{printed}");
    assert_eq!(text(&openssl(&dir, &["verify", "-CAfile", "root.pem", "issuing-2.pem"])).trim(), "issuing-2.pem: OK");
    assert_eq!(
        split_pem(&trustctl_ok(&d, &["ca", "chain", "--ca", "issuing"]))[0],
        chain[0],
        "the first generation's chain stays fetchable by name"
    );

    // New certificates come from the new CA, pointing at its own CRL and certificate; the old
    // verify as before.
    let new = issue(&d, "new");
    let printed = text(&openssl(
        &dir,
        &["x509", "-in", "new.pem", "-noout", "-issuer", "-ext", "crlDistributionPoints,authorityInfoAccess"],
    ));
    assert!(
        printed.contains("trustd Issuing CA G2")
            && printed.contains("/crl/issuing-2.crl")
            && printed.contains("/ca/issuing-2.crt"),
        "{printed}"
    );
    assert_eq!(
        text(&openssl(&dir, &["verify", "-CAfile", "root.pem", "-untrusted", "issuing-2.pem", "new.pem"])).trim(),
        "new.pem: OK"
    );
    assert_eq!(
        text(&openssl(&dir, &["verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", "old.pem"])).trim(),
        "old.pem: OK"
    );

    // OCSP answers for both: the old generation through its delegated responder, the new one with
    // its own key until a responder certificate of the new CA is rolled over, then with that.
    let (status, responder) = ocsp_under(&d, "issuing.pem", "old.pem");
    assert!(status.ends_with(": good") && responder == delegated_1, "{status} {responder}");
    let (status, responder) = ocsp_under(&d, "issuing-2.pem", "new.pem");
    assert!(status.ends_with(": good"), "{status}");
    assert_eq!(responder, key_hash(&dir, "issuing-2.pem"), "signed by the new CA itself");
    rollover_ok(&d, "ocsp");
    let delegated_2 = changed_from(&responder, || ocsp_under(&d, "issuing-2.pem", "new.pem").1);
    assert_ne!(delegated_2, delegated_1);
    let (status, responder) = ocsp_under(&d, "issuing.pem", "old.pem");
    assert!(status.ends_with(": good"), "{status}");
    assert_eq!(responder, key_hash(&dir, "issuing.pem"), "the old CA answers with its own key now");

    // A service key rolled over now is certified by the new CA; tokens of both verify.
    rollover_ok(&d, "tsa");
    let tsa_2 = changed_from(&tsa_1, || timestamp(&d, "after.tsr"));
    std::fs::write(dir.join("tsa-2.pem"), &tsa_2).unwrap();
    assert!(text(&openssl(&dir, &["x509", "-in", "tsa-2.pem", "-noout", "-issuer"])).contains("G2"));
    let both = format!("{}{}", chain[0], issuing_2);
    std::fs::write(dir.join("issuing.pem"), &both).unwrap();
    for tsr in ["before.tsr", "after.tsr"] {
        assert!(ts_verifies(&dir, tsr), "{tsr}");
    }
    std::fs::write(dir.join("issuing.pem"), &chain[0]).unwrap();

    // A client certificate of the new CA opens the API over mTLS, as the old CA's do.
    let (cert, key) = credential(&d, "portal");
    let issued_by = text(&openssl(&dir, &["x509", "-in", cert.to_str().unwrap(), "-noout", "-issuer"]));
    assert!(issued_by.contains("G2"), "{issued_by}");
    let as_portal = ["--client-cert", cert.to_str().unwrap(), "--client-key", key.to_str().unwrap()];
    let root = dir.join("root.pem");
    let out = Command::new(env!("CARGO_BIN_EXE_trustctl"))
        .args(["--server", &d.grpc, "tsa", "chain", "--cacert", root.to_str().unwrap()])
        .args(as_portal)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(split_pem(&String::from_utf8_lossy(&out.stdout))[0], tsa_2);

    // Each CA keeps its own CRL: a revocation lands on the CRL of the generation that issued it.
    trustctl_ok(&d, &["revoke", "--serial", &old, "--reason", "keyCompromise"]);
    trustctl_ok(&d, &["revoke", "--serial", &new, "--reason", "superseded"]);
    let crl_1 = wait_listed(&d, "issuing", "issuing.pem", &old);
    let crl_2 = wait_listed(&d, "issuing-2", "issuing-2.pem", &new);
    assert!(!crl_1.contains(&new) && !crl_2.contains(&old), "{crl_1}\n{crl_2}");
    assert!(
        crl_2.contains("Issuer: O=trustd, CN=trustd Issuing CA G2") || crl_2.contains("CN = trustd Issuing CA G2"),
        "{crl_2}"
    );
    for (cert, issuer) in [("old.pem", "issuing.pem"), ("new.pem", "issuing-2.pem")] {
        let (status, _) = ocsp_under(&d, issuer, cert);
        assert!(status.contains(": revoked"), "{status}");
    }
    let (code, _, _) = d.http_get("/crl/issuing-3.crl");
    assert_eq!(code, 404, "no third generation");
    let out = d.trustctl(&["crl", "--ca", "issuing-3"]);
    assert!(!out.status.success() && text(&out).contains("unknown CA 'issuing-3'"), "{}", text(&out));

    // The log states the new CA's key; it verifies across the rollover.
    let (_, _, vkey) = d.http_get("/log/key");
    let vkey = String::from_utf8(vkey).unwrap().trim().to_owned();
    let start = Instant::now();
    loop {
        let log = trustctl_ok(&d, &["log", "verify", "--key", &vkey]);
        if log.contains(": issuing pkcs11:object=trustd-issuing-ca.2 with public key") && log.contains("issuing-2") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the new CA is not in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, _, metrics) = d.http_get("/metrics");
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    assert!(metrics.contains("trustd_service_key_generation{role=\"issuing\"} 2"), "{metrics}");
    assert!(metrics.contains("trustd_crl_age_seconds{ca=\"issuing-2\"}"), "{metrics}");

    // A restart serves both generations, issues with the newest, and the operator's client
    // certificate of the old one still opens the API.
    let (status, kept) = d.stop();
    assert!(status.success());
    let d = Daemon::start_in(kept);
    assert_eq!(split_pem(&trustctl_ok(&d, &["ca", "chain"]))[0], issuing_2);
    issue(&d, "third");
    assert_eq!(
        text(&openssl(&dir, &["verify", "-CAfile", "root.pem", "-untrusted", "issuing-2.pem", "third.pem"])).trim(),
        "third.pem: OK"
    );
    crl_text(&d, "issuing", "issuing.pem");
    crl_text(&d, "issuing-2", "issuing-2.pem");
    let (status, _) = ocsp_under(&d, "issuing.pem", "old.pem");
    assert!(status.contains(": revoked"), "{status}");
}

/// The log's verifier key, as `GET /log/key` serves it.
fn log_key(d: &Daemon) -> String {
    let (code, _, vkey) = d.http_get("/log/key");
    assert_eq!(code, 200);
    String::from_utf8(vkey).unwrap().trim().to_owned()
}

/// The signature lines of the latest checkpoint (C2SP signed-note: `— name base64`).
fn checkpoint_signatures(d: &Daemon) -> usize {
    let (_, _, note) = d.http_get("/log/checkpoint");
    String::from_utf8(note).unwrap().lines().filter(|l| l.starts_with('\u{2014}')).count()
}

#[test]
fn the_log_key_rolls_over_and_auditors_follow_it_from_the_log() {
    let d = Daemon::start();
    let state = d.dir.path().join("auditor.json");
    let state = state.to_str().unwrap().to_owned();
    let first = log_key(&d);
    trustctl_ok(&d, &["log", "verify", "--key", &first, "--state", &state]);
    assert_eq!(checkpoint_signatures(&d), 1);

    let rolled = rollover_ok(&d, "log");
    assert!(rolled.contains("log key, generation 2") && rolled.contains("object=trustd-log.2"), "{rolled}");
    let second = changed_from(&first, || log_key(&d));
    // Until the next rollover every checkpoint is signed by the new key and the old.
    assert_eq!(checkpoint_signatures(&d), 2);
    for key in [&first, &second] {
        trustctl_ok(&d, &["log", "verify", "--key", key]);
    }
    // The auditor who pinned the first key finds the second stated in the log it verified.
    let out = trustctl_ok(&d, &["log", "verify", "--state", &state]);
    assert!(out.contains("the log's key rolled over at entry") && out.contains("pinned from now on"), "{out}");
    assert!(out.contains(&second), "{out}");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["key"], second.as_str());
    assert!(out.contains(": log pkcs11:object=trustd-log.2 with public key"), "{out}");

    // A restart signs with the newest key, cosigned by the one before.
    let (status, dir) = d.stop();
    assert!(status.success());
    let d = Daemon::start_in(dir);
    assert_eq!(log_key(&d), second);
    assert_eq!(checkpoint_signatures(&d), 2);
    let out = trustctl_ok(&d, &["log", "verify", "--state", &state]);
    assert!(!out.contains("rolled over"), "{out}");

    // A second rollover: the first key signs no more, the auditor moves on to the third.
    rollover_ok(&d, "log");
    let third = changed_from(&second, || log_key(&d));
    assert_eq!(checkpoint_signatures(&d), 2);
    let out = d.trustctl(&["log", "verify", "--key", &first]);
    assert!(!out.status.success(), "the first key no longer signs: {}", text(&out));
    let out = trustctl_ok(&d, &["log", "verify", "--state", &state]);
    assert!(out.contains(&third) && out.contains("pinned from now on"), "{out}");
    trustctl_ok(&d, &["log", "verify", "--key", &third]);
}

/// Two replicas on one PostgreSQL database and a third on a hot standby of it: a rollover made
/// against the database reaches all three (the standby's through replication), the new
/// certificate is recorded once, and the log verifies across it.
#[test]
fn replicas_and_a_standby_follow_a_rollover_made_against_the_database() {
    let db = TestDatabase::new();
    let store = ["--store-url", db.url.as_str()];
    let primary = Daemon::start_with(tempfile::tempdir().unwrap(), &store);
    let other = primary.replica(&store);
    let standby_db = TestStandby::new();
    let on_standby = standby_db.of(&db);
    let standby = primary.replica(&["--store-url", on_standby.as_str()]);
    let replicas = [&primary, &other, &standby];
    let chain = split_pem(&trustctl_ok(&primary, &["ca", "chain"]));
    let tsa_1 = split_pem(&trustctl_ok(&primary, &["tsa", "chain"])).remove(0);
    for d in replicas {
        std::fs::write(d.dir.path().join("issuing.pem"), &chain[0]).unwrap();
        std::fs::write(d.dir.path().join("root.pem"), &chain[1]).unwrap();
        std::fs::write(d.dir.path().join("tsa-1.pem"), &tsa_1).unwrap();
        std::fs::write(d.dir.path().join("doc.txt"), b"time-stamped by whichever replica").unwrap();
    }
    let responder_1 = ocsp(&primary, "tsa-1.pem").1;
    let log_1 = log_key(&primary);

    // A standby's database takes no rollover.
    let out = rollover_with(&primary, "tsa", &["--store-url", on_standby.as_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only standby"), "{}", text(&out));

    for key in ["tsa", "ocsp", "log"] {
        rollover_ok_with(&primary, key, &store);
    }
    for d in [&primary, &other] {
        let tsa_2 = changed_from(&tsa_1, || timestamp(d, "after.tsr"));
        assert!(ts_verifies(d.dir.path(), "after.tsr"));
        assert_eq!(tsa_2, split_pem(&trustctl_ok(d, &["tsa", "chain"]))[0]);
    }
    for d in replicas {
        let responder = changed_from(&responder_1, || ocsp(d, "tsa-1.pem").1);
        assert_eq!(responder, ocsp(&primary, "tsa-1.pem").1, "one responder key for every replica");
        changed_from(&log_1, || log_key(d));
        assert_eq!(checkpoint_signatures(d), 2);
    }
    // The standby takes the TSA's chain from its own follower too, though it time-stamps nothing.
    changed_from(&tsa_1, || split_pem(&trustctl_ok(&standby, &["tsa", "chain"])).remove(0));
    let recorded = psql_column(&db.url, "SELECT COUNT(*) FROM certificates WHERE profile = 'ceremony:tsa'");
    assert_eq!(recorded, ["2"], "the new TSA certificate recorded once, beside the first");
    let out = trustctl_ok(&other, &["log", "verify", "--key", &log_1]);
    assert!(out.contains("ceremony:tsa 2") && out.contains("ceremony:ocsp 2"), "{out}");
}

/// A rollover that stopped before its key was in service (a crash, a failed HSM) leaves its
/// generation reserved: no replica follows it, and the next run finishes it.
#[tokio::test]
async fn an_interrupted_rollover_is_finished_by_the_next_run() {
    let d = Daemon::start();
    let chain = split_pem(&trustctl_ok(&d, &["ca", "chain"]));
    std::fs::write(d.dir.path().join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(d.dir.path().join("root.pem"), &chain[1]).unwrap();
    std::fs::write(d.dir.path().join("tsa.pem"), &split_pem(&trustctl_ok(&d, &["tsa", "chain"]))[0]).unwrap();
    let responder_1 = ocsp(&d, "tsa.pem").1;
    let store = trustd::store::SqliteStore::open(&d.data_dir().join("trustd.db")).await.unwrap();
    let begun = trustd::store::RolledKey {
        role: trustd::service_role::ServiceRole::Ocsp,
        generation: 2,
        key: trustd::keys::KeyRef::label("trustd-ocsp-signer.2"),
        created_at: 0,
        in_service_at: None,
    };
    trustd::store::Store::record_service_key(&store, &begun).await.unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(ocsp(&d, "tsa.pem").1, responder_1, "a generation not in service is not followed");
    let out = rollover_ok(&d, "ocsp");
    assert!(out.contains("ocsp key, generation 2 (finishing the rollover an earlier run began)"), "{out}");
    changed_from(&responder_1, || ocsp(&d, "tsa.pem").1);
    let out = rollover_ok(&d, "ocsp");
    assert!(out.contains("ocsp key, generation 3:"), "{out}");
}
