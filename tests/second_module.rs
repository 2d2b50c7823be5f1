//! trustd on a second PKCS#11 implementation: opencryptoki's soft token (Debian's opencryptoki,
//! installed by ci/setup.sh; a fresh token from hsm/opencryptoki-token.sh). It differs from
//! SoftHSM where physical HSMs do: RSA only (no EC, no EdDSA), no CKM_SHA256_RSA_PKCS (trustd
//! hashes and signs with CKM_RSA_PKCS), and a token clock cryptoki cannot parse (trustd reads
//! the token's information itself). `trustd init` refuses the log's Ed25519 key naming the
//! mechanism; with the log off and rsa-3072 keys it makes every key and certificate in the
//! token, and `trustd serve` issues, time-stamps, signs and answers OCSP with them, each
//! checked by openssl.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn trustd_serves_from_opencryptoki_with_rsa_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/opencryptoki-token.sh");
    let out = run(Command::new(&script).arg(d).arg("ock"));
    let module = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    eprintln!("second PKCS#11 module: {module}");
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let config = |log: bool| {
        format!(
            "policies = \"{}\"\n\
             [hsm]\nmodule = \"{module}\"\ntoken_label = \"ock\"\npin_file = \"hsm-pin\"\nmax_sessions = 4\n\
             [store]\nsqlite = \"trustd.db\"\n\
             [server]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\noperator_credentials = \"credentials\"\n\
             public_url = \"{PUBLIC_URL}\"\n\
             [tsa]\nclock_check = \"off\"\nhttp_access = \"public\"\n\
             [log]\nenabled = {log}\n\
             [ceremony]\norganization = \"Test Agency\"\ncountry = \"DK\"\nroot_algorithm = \"rsa-3072\"\n\
             issuing_algorithm = \"rsa-3072\"\nservice_algorithm = \"rsa-3072\"\n",
            policies.display()
        )
    };
    let cfg = d.join("trustd.toml");
    let cfg_s = cfg.to_str().unwrap();
    let trustd = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_trustd")).current_dir(d).args(args).output().unwrap();

    // The log signs with Ed25519, which this module cannot make: refused, naming what and why.
    std::fs::write(&cfg, config(true)).unwrap();
    let refused = trustd(&["init", "--config", cfg_s]);
    assert!(!refused.status.success());
    assert!(
        text(&refused)
            .contains("cannot generate key pairs with CKM_EC_EDWARDS_KEY_PAIR_GEN, which pkcs11:object=trustd-log"),
        "{}",
        text(&refused)
    );
    // Without the log, the ceremony finishes what the refused run began: every other key and
    // certificate is in the token.
    std::fs::write(&cfg, config(false)).unwrap();
    let init = trustd(&["init", "--config", cfg_s]);
    assert!(init.status.success(), "{}", text(&init));
    let init = String::from_utf8_lossy(&init.stdout).into_owned();
    for key in ["root-ca", "issuing-ca", "tsa", "document-signer", "ocsp-signer"] {
        assert!(init.contains(&format!("pkcs11:object=trustd-{key}: key kept, certificate kept")), "{init}");
    }
    assert!(init.contains("pkcs11:object=trustd-tls: key generated"), "{init}");
    assert!(!init.contains("trustd-log"), "no log key without the log: {init}");

    let mut child = Stopped(
        Command::new(env!("CARGO_BIN_EXE_trustd"))
            .current_dir(d)
            .args(["serve", "--config", cfg_s])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(d.join("serve.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let field = |name: &str| {
        line.split_whitespace().find_map(|w| w.strip_prefix(name)).unwrap_or_else(|| panic!("{line:?}")).to_owned()
    };
    let (grpc, http) = (field("grpc="), field("http="));
    let trustctl = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trustctl"));
        run(c.arg("--server").arg(&grpc).arg("--data-dir").arg(d).args(args)).stdout
    };
    let serve_log = std::fs::read_to_string(d.join("serve.log")).unwrap();
    assert!(
        serve_log.contains("the token signs this scheme only over a digest: trustd hashes messages"),
        "{serve_log}"
    );

    // Issuance: an RSA-3072 issuing CA in the token certifies a P-256 key.
    let chain = split_pem(&String::from_utf8_lossy(&trustctl(&["ca", "chain"])));
    std::fs::write(d.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(d.join("root.pem"), &chain[1]).unwrap();
    let csr = openssl_csr(d, "web", P256, "/CN=web.example.com", Some("DNS:web.example.com"));
    let cert = trustctl(&["issue", "--profile", "tls-server", "--csr", csr.to_str().unwrap()]);
    std::fs::write(d.join("cert.pem"), cert).unwrap();
    let verified = text(&openssl(d, &["verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", "cert.pem"]));
    assert!(verified.contains("cert.pem: OK"), "{verified}");
    let issuer = text(&openssl(d, &["x509", "-in", "cert.pem", "-noout", "-text"]));
    assert!(issuer.contains("sha256WithRSAEncryption"), "{issuer}");

    // OCSP, signed in the token, says good.
    let url = format!("{http}/ocsp");
    let args = ["ocsp", "-issuer", "issuing.pem", "-cert", "cert.pem", "-url", &url, "-CAfile", "root.pem"];
    let ocsp = text(&openssl(d, &args));
    assert!(ocsp.contains("Response verify OK") && ocsp.contains("cert.pem: good"), "{ocsp}");

    // A time-stamp and a signature over a document, each verified by openssl.
    std::fs::write(d.join("doc.txt"), b"signed and time-stamped by a second PKCS#11 module\n").unwrap();
    let doc = d.join("doc.txt");
    trustctl(&["timestamp", "--file", doc.to_str().unwrap(), "--out", d.join("doc.tsr").to_str().unwrap()]);
    let args =
        ["ts", "-verify", "-in", "doc.tsr", "-data", "doc.txt", "-CAfile", "root.pem", "-untrusted", "issuing.pem"];
    let verified = text(&openssl(d, &args));
    assert!(verified.contains("Verification: OK"), "{verified}");
    trustctl(&["sign", "--file", doc.to_str().unwrap(), "--detached", "--out", d.join("doc.p7s").to_str().unwrap()]);
    let args =
        ["cms", "-verify", "-binary", "-inform", "DER", "-in", "doc.p7s", "-content", "doc.txt", "-CAfile", "root.pem"];
    let verified = Command::new("openssl")
        .current_dir(d)
        .args(args)
        .args(["-purpose", "any", "-out", "/dev/null"])
        .output()
        .unwrap();
    assert!(verified.status.success() && text(&verified).contains("Verification successful"), "{}", text(&verified));
    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    assert!(child.0.wait().unwrap().success());
}
