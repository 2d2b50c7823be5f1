//! `trustd init` and `trustd serve` with a config file, against a token made by
//! hsm/softhsm-token.sh: the production path, as an operator would run it.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn write_config(dir: &Path, policies: &Path, pin_file: &str) -> std::path::PathBuf {
    let cfg = dir.join("trustd.toml");
    std::fs::write(
        &cfg,
        format!(
            "policies = \"{}\"\n\
             [hsm]\nmodule = \"{}\"\ntoken_label = \"prod\"\npin_file = \"{pin_file}\"\nmax_sessions = 4\n\
             [store]\nsqlite = \"trustd.db\"\n\
             [server]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\noperator_credentials = \"credentials\"\npublic_url = \"{PUBLIC_URL}\"\n\
             [ceremony]\norganization = \"Test Agency\"\ncountry = \"DK\"\nroot_validity = \"10years\"\n\
             [keys]\nissuing = \"pkcs11:token=prod;object=agency-issuing;id=%01%02\"\n",
            policies.display(),
            trustd::daemon::SOFTHSM_MODULE
        ),
    )
    .unwrap();
    cfg
}

fn trustd(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trustd"))
        .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn init_is_idempotent_and_serve_issues() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/softhsm-token.sh");
    run(Command::new(&script).arg(d).arg("prod"));
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let cfg = write_config(d, &policies, "hsm-pin");
    let cfg_s = cfg.to_str().unwrap();

    let first = trustd(d, &["init", "--config", cfg_s]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let first = String::from_utf8_lossy(&first.stdout).into_owned();
    assert_eq!(first.matches("key generated, certificate created").count(), 5, "{first}");
    assert!(first.contains("pkcs11:token=prod;object=agency-issuing;id=%01%02: key generated"), "{first}");
    let second = trustd(d, &["init", "--config", cfg_s]);
    let second = String::from_utf8_lossy(&second.stdout).into_owned();
    assert_eq!(second.matches("key kept, certificate kept").count(), 5, "second run changes nothing: {second}");
    assert!(first.contains("pkcs11:object=trustd-log: key generated, no certificate"), "{first}");
    assert!(second.contains("pkcs11:object=trustd-log: key kept, no certificate"), "{second}");
    assert!(first.contains("pkcs11:object=trustd-tls: key generated, no certificate"), "{first}");

    let mut serving = Command::new(env!("CARGO_BIN_EXE_trustd"));
    serving.env("SOFTHSM2_CONF", d.join("softhsm2.conf")).args(["serve", "--config", cfg_s]);
    let (mut child, line) = serve(&mut serving, &d.join("serve.log"));
    let grpc = ready_field(&line, "grpc=");
    let trustctl = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trustctl"));
        c.arg("--server").arg(&grpc).arg("--data-dir").arg(d).args(args).output().unwrap()
    };

    let csr = openssl_csr(d, "web", P256, "/CN=web.example.com", Some("DNS:web.example.com"));
    let cert = trustctl(&["issue", "--profile", "tls-server", "--csr", csr.to_str().unwrap()]);
    assert!(cert.status.success(), "{}", String::from_utf8_lossy(&cert.stderr));
    std::fs::write(d.join("cert.pem"), &cert.stdout).unwrap();
    let chain = split_pem(&String::from_utf8_lossy(&trustctl(&["ca", "chain"]).stdout));
    std::fs::write(d.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(d.join("root.pem"), &chain[1]).unwrap();
    openssl(d, &["verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", "cert.pem"]);
    let root =
        String::from_utf8_lossy(&openssl(d, &["x509", "-in", "root.pem", "-noout", "-subject"]).stdout).into_owned();
    assert!(root.replace(" = ", "=").contains("C=DK, O=Test Agency, CN=trustd Root CA"), "{root}");
    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    assert!(child.0.wait().unwrap().success());
}

/// `pkcs11-tool` (OpenSC) on the token in `d` logged in with the user PIN.
fn pkcs11_tool(d: &Path, args: &[&str]) -> std::process::Output {
    let pin = std::fs::read_to_string(d.join("hsm-pin")).unwrap();
    run(Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", d.join("softhsm2.conf"))
        .env("TRUSTD_TEST_PIN", pin.trim())
        .args(["--module", trustd::daemon::SOFTHSM_MODULE, "--token-label", "prod", "--login"])
        .args(["--pin", "env:TRUSTD_TEST_PIN"])
        .args(args))
}

/// Keys that another tool made (`pkcs11-tool --keypairgen`, with its CKA_ID and label
/// conventions) are adopted by RFC 7512 URI: the ceremony keeps them and certifies them, and the
/// services sign with them.
#[test]
fn keys_made_by_pkcs11_tool_are_adopted_by_uri() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/softhsm-token.sh");
    run(Command::new(&script).arg(d).arg("prod"));
    pkcs11_tool(d, &["--keypairgen", "--key-type", "EC:prime256v1", "--label", "vendor-tsa", "--id", "a1b2"]);
    pkcs11_tool(d, &["--keypairgen", "--key-type", "rsa:2048", "--label", "vendor-signer", "--id", "c3"]);
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let cfg = write_config(d, &policies, "hsm-pin");
    let text_cfg = std::fs::read_to_string(&cfg).unwrap().replace(
        "[keys]\n",
        "[keys]\ntsa = \"pkcs11:object=vendor-tsa;id=%a1%b2\"\ndocument_signer = \"pkcs11:object=vendor-signer;id=%c3\"\n",
    );
    std::fs::write(&cfg, text_cfg + "[tsa]\nclock_check = \"off\"\n").unwrap();
    let cfg_s = cfg.to_str().unwrap();

    let init = trustd(d, &["init", "--config", cfg_s]);
    assert!(init.status.success(), "{}", text(&init));
    let init = String::from_utf8_lossy(&init.stdout).into_owned();
    for key in ["pkcs11:object=vendor-tsa;id=%A1%B2", "pkcs11:object=vendor-signer;id=%C3"] {
        assert!(init.contains(&format!("{key}: key kept, certificate created")), "{init}");
    }
    // The certificates are the adopted keys' own.
    let public_key = |label: &str| {
        let der = pkcs11_tool(d, &["--read-object", "--type", "pubkey", "--label", label]).stdout;
        std::fs::write(d.join(format!("{label}.pub.der")), der).unwrap();
        let pem = openssl(d, &["pkey", "-pubin", "-inform", "DER", "-in", &format!("{label}.pub.der")]);
        String::from_utf8_lossy(&pem.stdout).into_owned()
    };

    let mut serving = Command::new(env!("CARGO_BIN_EXE_trustd"));
    serving.env("SOFTHSM2_CONF", d.join("softhsm2.conf")).args(["serve", "--config", cfg_s]);
    let (mut child, line) = serve(&mut serving, &d.join("serve.log"));
    let grpc = ready_field(&line, "grpc=");
    let trustctl = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trustctl"));
        run(c.arg("--server").arg(&grpc).arg("--data-dir").arg(d).args(args)).stdout
    };
    let chain = split_pem(&String::from_utf8_lossy(&trustctl(&["tsa", "chain"])));
    std::fs::write(d.join("tsa.pem"), &chain[0]).unwrap();
    std::fs::write(d.join("issuing.pem"), &chain[1]).unwrap();
    std::fs::write(d.join("root.pem"), &chain[2]).unwrap();
    let tsa_key =
        String::from_utf8_lossy(&openssl(d, &["x509", "-in", "tsa.pem", "-noout", "-pubkey"]).stdout).into_owned();
    assert_eq!(tsa_key, public_key("vendor-tsa"));

    std::fs::write(d.join("doc.txt"), b"signed and time-stamped with keys made by pkcs11-tool\n").unwrap();
    let doc = d.join("doc.txt");
    let tsr = d.join("doc.tsr");
    trustctl(&["timestamp", "--file", doc.to_str().unwrap(), "--out", tsr.to_str().unwrap()]);
    let verified = openssl(
        d,
        &["ts", "-verify", "-in", "doc.tsr", "-data", "doc.txt", "-CAfile", "root.pem", "-untrusted", "issuing.pem"],
    );
    assert!(text(&verified).contains("Verification: OK"), "{}", text(&verified));
    let p7s = d.join("doc.p7s");
    trustctl(&["sign", "--file", doc.to_str().unwrap(), "--detached", "--out", p7s.to_str().unwrap()]);
    let certs = text(&openssl(d, &["pkcs7", "-inform", "DER", "-in", "doc.p7s", "-print_certs"]));
    let signer = split_pem(&certs).into_iter().find(|c| {
        std::fs::write(d.join("c.pem"), c).unwrap();
        text(&openssl(d, &["x509", "-in", "c.pem", "-noout", "-subject"])).contains("Document Signer")
    });
    std::fs::write(d.join("signer.pem"), signer.expect("the signer's certificate")).unwrap();
    let signer_key =
        String::from_utf8_lossy(&openssl(d, &["x509", "-in", "signer.pem", "-noout", "-pubkey"]).stdout).into_owned();
    assert_eq!(signer_key, public_key("vendor-signer"));
    assert_detached_cms_verifies(d, "doc.p7s", "doc.txt");
    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn bad_config_and_policies_fail_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/softhsm-token.sh");
    run(Command::new(&script).arg(d).arg("prod"));

    // A profile with a bad field stops start-up, naming the file and the field.
    trustd::policy::Policies::install_defaults(&d.join("policies")).unwrap();
    let server_profile = std::fs::read_to_string(d.join("policies/profiles/tls-server.toml")).unwrap();
    std::fs::write(
        d.join("policies/profiles/broken.toml"),
        server_profile.replace("max = \"199d\"", "max = \"forever\""),
    )
    .unwrap();
    let cfg = write_config(d, &d.join("policies"), "hsm-pin");
    let out = trustd(d, &["serve", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.toml") && err.contains("validity.max"), "{err}");

    // A PIN file others may read stops start-up, naming the field; the PIN is not in the error.
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(d.join("wrong-pin"), "not-the-pin-1234").unwrap();
    std::fs::set_permissions(d.join("wrong-pin"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = write_config(d, &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"), "wrong-pin");
    let out = trustd(d, &["init", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("hsm.pin_file") && err.contains("644"), "{err}");
    assert!(!err.contains("not-the-pin-1234"), "{err}");

    // A wrong PIN is a clear login error, and the PIN does not appear in it.
    std::fs::set_permissions(d.join("wrong-pin"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = trustd(d, &["init", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("login failed") && !err.contains("not-the-pin-1234"), "{err}");

    // An unknown key in the config names the key.
    std::fs::write(d.join("typo.toml"), std::fs::read_to_string(&cfg).unwrap().replace("max_sessions", "max_sesions"))
        .unwrap();
    let out = trustd(d, &["serve", "--config", d.join("typo.toml").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("typo.toml") && err.contains("max_sesions"), "{err}");
}

/// The offline root: the root key in a token of its own, which only the key ceremony opens. The
/// ceremony signs the issuing CA's certificate and a long-lived root CRL into the store; serve
/// runs with that token gone, serves the ceremony's root CRL and warns as its nextUpdate nears;
/// `trustd ceremony root-crl` signs the next, which the running daemon serves within a second.
#[test]
fn the_root_key_stays_offline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/softhsm-token.sh");
    run(Command::new(&script).arg(d).arg("prod"));
    run(Command::new(&script).arg(d).args(["agency-root", "root"]));
    let base =
        std::fs::read_to_string(write_config(d, &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"), "hsm-pin"))
            .unwrap()
            .replace("[keys]\n", "[keys]\nroot = \"pkcs11:token=agency-root;object=agency-root-ca\"\n");
    let config = |name: &str, warning: &str, root_pin: bool| {
        let server = format!("[server]\nexpiry_warning = \"{warning}\"\n");
        let mut text = base.replace("[server]\n", &server);
        if root_pin {
            text = text.replace("[ceremony]\n", "[ceremony]\nroot_pin_file = \"root-pin\"\n");
        }
        // The clock unchecked: this machine's is not NTP-synchronised, and /readyz would say so.
        text.push_str("[crl]\nroot_validity = \"20d\"\n[tsa]\nclock_check = \"off\"\n");
        std::fs::write(d.join(name), text).unwrap();
        d.join(name).to_str().unwrap().to_owned()
    };
    let cfg = config("offline.toml", "30d", true);
    let ok = |args: &[&str]| {
        let out = trustd(d, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let first = ok(&["init", "--config", &cfg]);
    assert!(
        first.contains("pkcs11:token=agency-root;object=agency-root-ca: key generated, certificate created"),
        "{first}"
    );
    assert!(first.contains("root CRL 1: signed, nextUpdate"), "{first}");
    // A root CRL within the warning of its nextUpdate is renewed by the ceremony; one further off
    // is kept.
    assert!(ok(&["init", "--config", &cfg]).contains("root CRL 2: signed"));
    let kept = ok(&["init", "--config", &config("kept.toml", "10d", true)]);
    assert!(kept.contains("agency-root-ca: key kept, certificate kept") && kept.contains("root CRL 2: kept"), "{kept}");

    // The serving token holds the root's certificate, not its key; the root's token holds the key.
    let objects = |token: &str, pin: &str, kind: &str| {
        let pin = std::fs::read_to_string(d.join(pin)).unwrap();
        let out = run(Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", d.join("softhsm2.conf"))
            .env("TRUSTD_TEST_PIN", pin.trim())
            .args(["--module", trustd::daemon::SOFTHSM_MODULE, "--token-label", token, "--login"])
            .args(["--pin", "env:TRUSTD_TEST_PIN", "--list-objects", "--type", kind]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(!objects("prod", "hsm-pin", "privkey").contains("agency-root-ca"));
    assert!(objects("prod", "hsm-pin", "cert").contains("agency-root-ca"));
    assert!(objects("agency-root", "root-pin", "privkey").contains("agency-root-ca"));

    // The root's token leaves the machine (its directory out of SoftHSM's token directory).
    let root_token = std::fs::read_dir(d.join("tokens"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read(p.join("token.object")).is_ok_and(|t| t.windows(11).any(|w| w == b"agency-root")))
        .expect("the root's token directory");
    std::fs::rename(&root_token, d.join("away")).unwrap();

    let mut serving = Command::new(env!("CARGO_BIN_EXE_trustd"));
    serving.env("SOFTHSM2_CONF", d.join("softhsm2.conf")).args(["serve", "--config", &cfg]);
    let (mut child, line) = serve(&mut serving, &d.join("serve.log"));
    let (grpc, http) = (ready_field(&line, "grpc="), ready_field(&line, "http=http://"));
    let trustctl = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trustctl"));
        run(c.arg("--server").arg(&grpc).arg("--data-dir").arg(d).args(args)).stdout
    };
    let csr = openssl_csr(d, "web", P256, "/CN=web.example.com", Some("DNS:web.example.com"));
    std::fs::write(d.join("cert.pem"), trustctl(&["issue", "--profile", "tls-server", "--csr", csr.to_str().unwrap()]))
        .unwrap();
    let chain = split_pem(&String::from_utf8_lossy(&trustctl(&["ca", "chain"])));
    std::fs::write(d.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(d.join("root.pem"), &chain[1]).unwrap();
    let fetch_crl = |ca: &str| {
        let (code, _, der) = http_request(&http, "GET", &format!("/crl/{ca}.crl"), None, &[]);
        assert_eq!(code, 200, "/crl/{ca}.crl");
        std::fs::write(d.join(format!("{ca}-crl.der")), der).unwrap();
        let pem = format!("{ca}-crl.pem");
        openssl(d, &["crl", "-in", &format!("{ca}-crl.der"), "-inform", "DER", "-out", &pem]);
        String::from_utf8_lossy(&openssl(d, &["crl", "-in", &pem, "-noout", "-crlnumber", "-nextupdate"]).stdout)
            .into_owned()
    };
    // The ceremony's root CRL, signed by the root, valid 20 days; the whole chain checks out
    // against both CRLs.
    let root_crl = fetch_crl("root");
    assert!(root_crl.contains("crlNumber=0x02"), "{root_crl}");
    let verified = openssl(d, &["crl", "-in", "root-crl.pem", "-CAfile", "root.pem", "-noout"]);
    assert!(text(&verified).contains("verify OK"), "{}", text(&verified));
    fetch_crl("issuing");
    let args = ["verify", "-crl_check_all", "-CAfile", "root.pem", "-untrusted", "issuing.pem"];
    let checked =
        openssl(d, &[&args[..], &["-CRLfile", "issuing-crl.pem", "-CRLfile", "root-crl.pem", "cert.pem"]].concat());
    assert!(text(&checked).contains("cert.pem: OK"), "{}", text(&checked));
    // Its nextUpdate is within the 30 days' warning: /readyz and the log say so, and what to do.
    let (code, _, ready) = http_request(&http, "GET", "/readyz", None, &[]);
    let ready = String::from_utf8_lossy(&ready).into_owned();
    assert_eq!(code, 200, "a warning, not unreadiness: {ready}");
    let due = |t: &str| {
        ["19 days", "20 days"].iter().any(|left| t.contains(&format!("the root CRL's nextUpdate is in {left}")))
    };
    assert!(due(&ready), "{ready}");
    assert!(ready.contains("`trustd ceremony root-crl`"), "{ready}");
    let (_, _, metrics) = http_request(&http, "GET", "/metrics", None, &[]);
    assert!(String::from_utf8_lossy(&metrics).contains("trustd_crl_next_update_seconds{ca=\"root\"} 17"));

    // With the root's token away the ceremony cannot sign; back, it signs the next root CRL,
    // which the running daemon serves within a second.
    let out = trustd(d, &["ceremony", "root-crl", "--config", &cfg]);
    assert!(
        !out.status.success() && text(&out).contains("no initialised token labelled 'agency-root'"),
        "{}",
        text(&out)
    );
    let out = trustd(d, &["rollover", "--key", "issuing", "--config", &cfg]);
    assert!(
        !out.status.success() && text(&out).contains("no initialised token labelled 'agency-root'"),
        "{}",
        text(&out)
    );
    std::fs::rename(d.join("away"), &root_token).unwrap();
    let signed = ok(&["ceremony", "root-crl", "--config", &cfg]);
    assert!(signed.starts_with("root CRL 3: signed, nextUpdate"), "{signed}");
    let start = std::time::Instant::now();
    while !fetch_crl("root").contains("crlNumber=0x03") {
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "the running daemon still serves root CRL 2");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The issuing CA rolls over in a ceremony step: the root in its own token certifies the
    // next issuing CA, which the running daemon, unable to open that token, issues with.
    let rolled = ok(&["rollover", "--key", "issuing", "--config", &cfg]);
    assert!(rolled.contains("issuing key, generation 2") && rolled.contains("object=agency-issuing.2"), "{rolled}");
    let start = std::time::Instant::now();
    let issuing_2 = loop {
        let now = split_pem(&String::from_utf8_lossy(&trustctl(&["ca", "chain"])))[0].clone();
        if now != chain[0] {
            break now;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "still the first issuing CA");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    std::fs::write(d.join("issuing-2.pem"), issuing_2).unwrap();
    std::fs::write(d.join("new.pem"), trustctl(&["issue", "--profile", "tls-server", "--csr", csr.to_str().unwrap()]))
        .unwrap();
    let subject = text(&openssl(d, &["x509", "-in", "issuing-2.pem", "-noout", "-subject"]));
    assert!(subject.contains("Test Agency") && subject.contains("trustd Issuing CA G2"), "{subject}");
    for (cert, issuing) in [("cert.pem", "issuing.pem"), ("new.pem", "issuing-2.pem")] {
        let verified = openssl(d, &["verify", "-CAfile", "root.pem", "-untrusted", issuing, cert]);
        assert_eq!(text(&verified).trim(), format!("{cert}: OK"));
    }
    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    assert!(child.0.wait().unwrap().success());
    let log = std::fs::read_to_string(d.join("serve.log")).unwrap();
    assert!(due(&log), "{log}");
    assert!(!log.contains("the root key is in the serving token"), "{log}");

    // The root PIN is the ceremony's alone: without it the ceremony says what to set.
    let out = trustd(d, &["ceremony", "root-crl", "--config", &config("no-pin.toml", "30d", false)]);
    assert!(
        !out.status.success() && text(&out).contains("set [ceremony] root_pin_env or root_pin_file"),
        "{}",
        text(&out)
    );
    // A store without a root CRL: serve refuses to start, and says how to make one.
    std::fs::write(d.join("fresh.toml"), std::fs::read_to_string(&cfg).unwrap().replace("trustd.db", "fresh.db"))
        .unwrap();
    let out = trustd(d, &["serve", "--config", d.join("fresh.toml").to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("no root CRL in the store"), "{}", text(&out));
}
