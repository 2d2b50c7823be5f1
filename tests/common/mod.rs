//! Test harness: a real `trustd dev` on a fresh SoftHSM token in a temp dir, on loopback, and
//! helpers that run the independent tools (openssl, pkcs11-tool, pkilint).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

mod daemon;
#[allow(unused_imports)] // not every test binary starts a daemon
pub use daemon::*;
/// A database of a test's own in the private PostgreSQL cluster (the unit tests' helper).
#[path = "../../src/testing/postgres.rs"]
pub mod postgres;

/// Runs a command, panicking with its output if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A command's stdout and stderr, for assertions and their messages.
pub fn text(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    // How it ended, when that is not success: a signal prints nothing of its own.
    if o.status.success() {
        out
    } else {
        format!("{out}\n[{}]", o.status)
    }
}

/// The labels of the private keys in `d`'s token, as `pkcs11-tool --list-objects` tells them
/// (logged in with the user PIN, given through the environment).
pub fn token_private_key_labels(d: &Daemon) -> Vec<String> {
    let data = d.data_dir();
    let pin = std::fs::read_to_string(data.join("hsm-pin")).expect("hsm-pin");
    let out = run(Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", data.join("softhsm2.conf"))
        .env("TRUSTD_TEST_PIN", pin.trim())
        .args(["--module", trustd::daemon::SOFTHSM_MODULE, "--token-label", "trustd-dev", "--login"])
        .args(["--pin", "env:TRUSTD_TEST_PIN", "--list-objects", "--type", "privkey"]));
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    listed.lines().filter_map(|l| l.trim().strip_prefix("label:")).map(|l| l.trim().to_owned()).collect()
}

/// Runs trustctl against `d` and returns its stdout, panicking with its output if it fails.
pub fn trustctl_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.trustctl(args);
    assert!(out.status.success(), "trustctl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (up to 20 s) until the daemon's signed checkpoint covers `size` entries: a checkpoint
/// follows the entries it covers within about a second, longer on a loaded machine.
pub fn wait_for_checkpoint(d: &Daemon, size: u64) {
    let start = std::time::Instant::now();
    loop {
        let (_, _, note) = d.http_get("/log/checkpoint");
        let note = String::from_utf8_lossy(&note).into_owned();
        let covered: u64 = note.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or(0);
        if covered >= size {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no checkpoint of {size} entries:\n{note}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One column of a query on the database at `url`, a value a line (psql).
pub fn psql_column(url: &str, sql: &str) -> Vec<String> {
    let out = run(Command::new("psql").args(["-X", "-At", url, "-c", sql]));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// What `openssl ocsp` says of `cert.pem` (issued by `issuing.pem`, under `root.pem`, all in
/// `dir`) asking `d`'s responder over plain HTTP.
pub fn ocsp_status(dir: &Path, d: &Daemon) -> String {
    let url = format!("http://{}/ocsp", d.http);
    let args = ["ocsp", "-issuer", "issuing.pem", "-cert", "cert.pem", "-url", &url, "-CAfile", "root.pem"];
    text(&Command::new("openssl").current_dir(dir).args(args).output().unwrap())
}

pub fn openssl(dir: &Path, args: &[&str]) -> Output {
    run(Command::new("openssl").current_dir(dir).args(args))
}

/// A key and a PEM CSR made by openssl. `keygen` are the `openssl genpkey` arguments.
pub fn openssl_csr(dir: &Path, name: &str, keygen: &[&str], subj: &str, san: Option<&str>) -> PathBuf {
    let key = format!("{name}.key");
    let mut args = vec!["genpkey", "-out", &key];
    args.extend_from_slice(keygen);
    openssl(dir, &args);
    let csr = format!("{name}.csr");
    let mut args = vec!["req", "-new", "-key", &key, "-subj", subj, "-out", &csr];
    let ext;
    if let Some(s) = san {
        ext = format!("subjectAltName={s}");
        args.extend_from_slice(&["-addext", &ext]);
    }
    openssl(dir, &args);
    dir.join(csr)
}

/// A self-signed P-256 certificate made by openssl in `dir`: `NAME.key` and `NAME.pem`, with
/// an extension (`-addext`) when given. Stands for some CA other than trustd's.
pub fn openssl_self_signed(dir: &Path, name: &str, subj: &str, ext: Option<&str>) -> PathBuf {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec!["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    args.extend_from_slice(&["-keyout", &key, "-subj", subj, "-out", &pem, "-days", "2"]);
    if let Some(e) = ext {
        args.extend_from_slice(&["-addext", e]);
    }
    openssl(dir, &args);
    dir.join(pem)
}

pub const P256: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
pub const P384: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];
pub const RSA3072: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"];

/// Splits a PEM bundle into its certificates.
pub fn split_pem(pem: &str) -> Vec<String> {
    pem.split_inclusive("-----END CERTIFICATE-----\n").filter(|s| s.contains("BEGIN")).map(str::to_owned).collect()
}

/// The venv with the pinned Python checkers (ci/setup.sh).
pub fn venv_bin(tool: &str) -> PathBuf {
    let venv = std::env::var_os("TRUSTD_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv"));
    let p = venv.join("bin").join(tool);
    assert!(p.exists(), "{} missing: run ci/setup.sh", p.display());
    p
}

/// Runs a checker script of `tests/py/` with the test venv's Python in `dir`.
pub fn py_checker(dir: &Path, script: &str, args: &[&str]) -> Output {
    Command::new(venv_bin("python"))
        .current_dir(dir)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Runs a pkilint linter on a PEM file and returns its findings; panics on any ERROR or FATAL.
pub fn pkilint_no_errors(linter: &str, extra: &[&str], pem: &Path) -> String {
    let out = Command::new(venv_bin(linter)).arg("lint").args(extra).arg(pem).output().expect("pkilint");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("(ERROR)")
            && !text.contains("(FATAL)")
            && !text.contains("(CRITICAL)")
            && !text.contains("Traceback"),
        "{linter} on {}:\n{text}",
        pem.display()
    );
    text
}

pub fn wait_a_moment() {
    std::thread::sleep(Duration::from_millis(100));
}

/// A credential for client `name` of the access policy: its key and CSR made by openssl, its
/// certificate by `trustctl client issue` (the operator's credential). Returns (cert, key).
pub fn credential(d: &Daemon, name: &str) -> (PathBuf, PathBuf) {
    let dir = d.dir.path();
    let uri = format!("URI:spiffe://trustd/{name}");
    let csr = openssl_csr(dir, name, P256, &format!("/CN={name}"), Some(&uri));
    let out = d.trustctl(&["client", "issue", "--csr", csr.to_str().unwrap()]);
    assert!(out.status.success(), "client issue: {}", String::from_utf8_lossy(&out.stderr));
    let cert = dir.join(format!("{name}.crt"));
    std::fs::write(&cert, &out.stdout).unwrap();
    assert_eq!(split_pem(&String::from_utf8_lossy(&out.stdout)).len(), 2, "the client certificate and the issuing CA");
    (cert, dir.join(format!("{name}.key")))
}

pub async fn channel_as(d: &Daemon, (cert, key): &(PathBuf, PathBuf)) -> tonic::transport::Channel {
    mtls_channel(&d.grpc, &d.credentials().join("ca.crt"), cert, key).await
}

/// A daemon that is killed if the test ends before it stopped it.
pub struct Stopped(pub std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `trustd serve` as `cmd` says, its stderr in `log`: the daemon (killed if the test ends
/// before it stopped it) and its ready line (`ready grpc=… http=…`), read once it is serving. A
/// daemon that stops before it is ready fails the test with its log.
pub fn serve(cmd: &mut Command, log: &Path) -> (Stopped, String) {
    use std::io::BufRead;
    let mut child =
        Stopped(cmd.stdout(std::process::Stdio::piped()).stderr(std::fs::File::create(log).unwrap()).spawn().unwrap());
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    if !line.starts_with("ready ") {
        let status = child.0.wait().unwrap();
        panic!("trustd serve stopped before it was ready ({status}): {}", std::fs::read_to_string(log).unwrap());
    }
    (child, line)
}

/// What follows `key` in the ready line `line` (`grpc=`, `http=http://`, …).
pub fn ready_field(line: &str, key: &str) -> String {
    line.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap_or_else(|| panic!("{line:?}")).to_owned()
}

/// Asserts that openssl verifies the detached CMS `p7s` over `content` under `root.pem`, all in `dir`.
pub fn assert_detached_cms_verifies(dir: &Path, p7s: &str, content: &str) {
    let args = ["cms", "-verify", "-binary", "-inform", "DER", "-in", p7s, "-content", content, "-CAfile", "root.pem"];
    let verified = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .args(["-purpose", "any", "-out", "/dev/null"])
        .output()
        .unwrap();
    assert!(verified.status.success() && text(&verified).contains("Verification successful"), "{}", text(&verified));
}
