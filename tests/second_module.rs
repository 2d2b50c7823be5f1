//! trustd on a second PKCS#11 implementation: opencryptoki's soft token (Debian's opencryptoki,
//! installed by ci/setup.sh; a fresh token from hsm/opencryptoki-token.sh). It differs from
//! SoftHSM where physical HSMs do: RSA only (no EC, no EdDSA), no CKM_SHA256_RSA_PKCS (trustd
//! hashes and signs with CKM_RSA_PKCS), and a token clock cryptoki cannot parse (trustd reads
//! the token's information itself). `trustd init` refuses the log's Ed25519 key naming the
//! mechanism; with the log off and rsa-3072 keys it makes every key and certificate in the
//! token, and `trustd serve` issues, time-stamps, signs and answers OCSP with them, each
//! checked by openssl. The HSM layer itself, in-process: RSA keys generated non-extractable,
//! EC refused naming the mechanism, and every RSA scheme signing messages (through x509-cert's
//! CertificateBuilder) and digests, checked by openssl.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;
use trustd::hsm::{Hsm, HsmConfig, HsmError, HsmSignature, HsmSigner, KeyAlgorithm, KeyRef, Pin, SignatureScheme};

/// The module has one soft token: the tests here take turns with it.
static TOKEN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A fresh token labelled `label` (its user PIN in `d/hsm-pin`); the module's path.
fn fresh_token(d: &Path, label: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/opencryptoki-token.sh");
    let out = run(Command::new(&script).arg(d).arg(label));
    let module = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    eprintln!("second PKCS#11 module: {module}");
    module
}

#[test]
fn the_hsm_layer_signs_every_rsa_scheme_on_opencryptoki() {
    let _turn = TOKEN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let module = fresh_token(d, "layer");
    let pin = std::fs::read_to_string(d.join("hsm-pin")).unwrap();
    let cfg =
        HsmConfig { module: module.into(), token_label: "layer".into(), max_sessions: 2, session_key_copies: true };
    let hsm = Hsm::open(&cfg, Pin::new(pin)).unwrap();
    hsm.generate_key(&KeyRef::label("rsa"), KeyAlgorithm::Rsa(2048)).unwrap();
    let p = hsm.key_protection(&KeyRef::label("rsa")).unwrap();
    assert!(p.sensitive && !p.extractable && p.always_sensitive && p.never_extractable, "{p:?}");
    let e = hsm.generate_key(&KeyRef::label("ec"), KeyAlgorithm::EcP256).unwrap_err();
    assert!(matches!(e, HsmError::Unsupported { .. }) && e.to_string().contains("CKM_EC_KEY_PAIR_GEN"), "{e}");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    std::fs::write(d.join("tbs"), b"the signed attributes a portal hashed").unwrap();
    for (scheme, openssl_name, dgst, pss) in [
        ("rsa-pkcs1-sha256", "sha256WithRSAEncryption", "-sha256", false),
        ("rsa-pkcs1-sha512", "sha512WithRSAEncryption", "-sha512", false),
        ("rsa-pss-sha256", "rsassaPss", "-sha256", true),
        ("rsa-pss-sha384", "rsassaPss", "-sha384", true),
    ] {
        let scheme = SignatureScheme::from_str(scheme).unwrap();
        let signer = HsmSigner::new(&hsm, KeyRef::label("rsa"), Some(scheme)).unwrap();
        // A message: a self-signed certificate that openssl verifies.
        let builder = x509_cert::builder::CertificateBuilder::new(
            x509_cert::builder::Profile::Root,
            x509_cert::serial_number::SerialNumber::from(7u32),
            x509_cert::time::Validity::from_now(std::time::Duration::from_secs(3600)).unwrap(),
            x509_cert::name::Name::from_str(&format!("CN={scheme}")).unwrap(),
            signer.public_key_info().clone(),
            &signer,
        )
        .unwrap();
        let cert = x509_cert::builder::Builder::build::<HsmSignature>(builder).unwrap();
        std::fs::write(d.join("c.pem"), der::EncodePem::to_pem(&cert, der::pem::LineEnding::LF).unwrap()).unwrap();
        assert_eq!(text(&openssl(d, &["verify", "-CAfile", "c.pem", "c.pem"])).trim(), "c.pem: OK", "{scheme}");
        let printed = text(&openssl(d, &["x509", "-in", "c.pem", "-noout", "-text"]));
        assert!(printed.contains(&format!("Signature Algorithm: {openssl_name}")), "{scheme}: {printed}");
        // A digest a client computed.
        let digest = scheme.hash().digest(b"the signed attributes a portal hashed");
        let sig = rt.block_on(trustd::keys::SigningKey::sign_digest(&signer, &digest)).unwrap();
        std::fs::write(d.join("tbs.sig"), sig.as_bytes()).unwrap();
        let pem = der::EncodePem::to_pem(signer.public_key_info(), der::pem::LineEnding::LF).unwrap();
        std::fs::write(d.join("pub.pem"), pem).unwrap();
        let mut args = vec!["dgst", dgst, "-verify", "pub.pem", "-signature", "tbs.sig"];
        if pss {
            args.extend(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]);
        }
        args.push("tbs");
        assert_eq!(text(&openssl(d, &args)).trim(), "Verified OK", "{scheme}");
    }
}

#[test]
fn trustd_serves_from_opencryptoki_with_rsa_keys() {
    let _turn = TOKEN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let module = fresh_token(d, "ock");
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

    let mut serving = Command::new(env!("CARGO_BIN_EXE_trustd"));
    let (mut child, line) = serve(serving.current_dir(d).args(["serve", "--config", cfg_s]), &d.join("serve.log"));
    let (grpc, http) = (ready_field(&line, "grpc="), ready_field(&line, "http="));
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
    assert_detached_cms_verifies(d, "doc.p7s", "doc.txt");
    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    assert!(child.0.wait().unwrap().success());
}
