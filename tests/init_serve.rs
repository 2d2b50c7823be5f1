//! `trustd init` and `trustd serve` with a config file, against a token made by
//! hsm/softhsm-token.sh: the production path, as an operator would run it.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn write_config(dir: &Path, policies: &Path, pin_file: &str) -> std::path::PathBuf {
    let cfg = dir.join("trustd.toml");
    std::fs::write(
        &cfg,
        format!(
            "policies = \"{}\"\n\
             [hsm]\nmodule = \"{}\"\ntoken_label = \"prod\"\npin_file = \"{pin_file}\"\nmax_sessions = 4\n\
             [store]\nsqlite = \"trustd.db\"\n\
             [server]\ngrpc = \"127.0.0.1:0\"\noperator_credentials = \"credentials\"\npublic_url = \"{PUBLIC_URL}\"\n\
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

    let mut child = Command::new(env!("CARGO_BIN_EXE_trustd"))
        .env("SOFTHSM2_CONF", d.join("softhsm2.conf"))
        .args(["serve", "--config", cfg_s])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let grpc =
        line.split_whitespace().find_map(|w| w.strip_prefix("grpc=")).unwrap_or_else(|| panic!("{line:?}")).to_owned();
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
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success());
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
