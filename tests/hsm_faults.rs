//! The HSM behaviours physical devices are known for, injected by a PKCS#11 module between trustd
//! and SoftHSM (`hsm/shim`, built here): a token that allows fewer sessions than the pool wants,
//! sessions the device closes, a login the device forgets, and the device removed while trustd
//! signs. Each heals without a
//! restart, and `/readyz` says what is wrong meanwhile.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Builds the fault-injecting module (a crate of its own) and returns its path.
fn shim() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target/shim");
    let manifest = root.join("hsm/shim/Cargo.toml");
    run(Command::new(env!("CARGO"))
        .args(["build", "--locked", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target));
    target.join("debug/libtrustd_pkcs11_fault_shim.so")
}

/// Whether an RFC 3161 response (DER) grants a token, as openssl reads it.
fn granted(dir: &Path, response: &[u8]) -> bool {
    std::fs::write(dir.join("r.tsr"), response).unwrap();
    text(&openssl(dir, &["ts", "-reply", "-in", "r.tsr", "-text"])).contains("Status: Granted.")
}

fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    start.elapsed()
}

#[test]
fn a_small_session_limit_closed_sessions_a_lost_login_and_a_removed_device_heal_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let module = shim();
    run(Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/softhsm-token.sh")).arg(d).arg("prod"));
    let control = d.join("control");
    // A YubiHSM 2 allows 16 sessions; this token 2, against a pool of 8.
    std::fs::write(&control, "max-sessions=2\n").unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    std::fs::write(
        d.join("trustd.toml"),
        format!(
            "policies = \"{}\"\n\
             [hsm]\nmodule = \"{}\"\ntoken_label = \"prod\"\npin_file = \"hsm-pin\"\nmax_sessions = 8\n\
             [store]\nsqlite = \"trustd.db\"\n\
             [server]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\npublic_url = \"{PUBLIC_URL}\"\n\
             [tsa]\nclock_check = \"off\"\nhttp_access = \"public\"\n\
             [ceremony]\norganization = \"Test Agency\"\n",
            policies.display(),
            module.display()
        ),
    )
    .unwrap();
    let trustd = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trustd"));
        c.current_dir(d)
            .env("SOFTHSM2_CONF", d.join("softhsm2.conf"))
            .env("TRUSTD_SHIM_MODULE", trustd::daemon::SOFTHSM_MODULE)
            .env("TRUSTD_SHIM_CONTROL", &control)
            .args(args);
        c
    };
    run(&mut trustd(&["init", "--config", "trustd.toml"]));
    let (mut child, line) = serve(&mut trustd(&["serve", "--config", "trustd.toml"]), &d.join("serve.log"));
    let http = ready_field(&line, "http=http://");
    let log = || std::fs::read_to_string(d.join("serve.log")).unwrap();
    run(Command::new("openssl")
        .current_dir(d)
        .args(["ts", "-query", "-digest", &"ab".repeat(32), "-sha256"])
        .args(["-cert", "-out", "q.tsq"]));
    let tsq = std::fs::read(d.join("q.tsq")).unwrap();
    let stamp = || http_request(&http, "POST", "/tsa", Some("application/timestamp-query"), &tsq);
    let readyz = || http_request(&http, "GET", "/readyz", None, b"");

    // The pool opens what the token allows, and 64 concurrent time-stamps share its 2 sessions.
    assert!(log().contains("the token allows fewer sessions than [hsm] max_sessions"), "{}", log());
    let (_, _, metrics) = http_request(&http, "GET", "/metrics", None, b"");
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    assert!(metrics.contains("trustd_hsm_sessions{state=\"max\"} 2"), "{metrics}");
    let answers: Vec<(u16, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..64)
            .map(|_| {
                s.spawn(|| {
                    let (code, _, body) = stamp();
                    (code, body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (code, body) in &answers {
        assert_eq!(*code, 200);
        assert!(granted(d, body), "every one granted");
    }

    // The device closes every session (as an HSM that drops idle ones does): the next
    // signatures reopen them, and every request is answered.
    std::fs::write(&control, "max-sessions=2\nclose-sessions=1\n").unwrap();
    for _ in 0..10 {
        let (code, _, body) = stamp();
        assert!(code == 200 && granted(d, &body));
    }
    assert!(log().contains("HSM session failed; reopening"), "{}", log());

    // The token forgets the login (a device restart): trustd logs in again, nothing is refused.
    std::fs::write(&control, "max-sessions=2\nlogout=1\n").unwrap();
    for _ in 0..10 {
        let (code, _, body) = stamp();
        assert!(code == 200 && granted(d, &body));
    }
    assert!(log().contains("HSM login was lost; logged in again"), "{}", log());

    // The device is removed: time-stamps are refused with systemFailure, /readyz names the HSM,
    // and the daemon keeps serving what needs no key.
    std::fs::write(&control, "max-sessions=2\nremoved=1\n").unwrap();
    let (code, _, body) = stamp();
    assert_eq!(code, 200, "an RFC 3161 rejection");
    assert!(!granted(d, &body));
    let refused = text(&openssl(d, &["ts", "-reply", "-in", "r.tsr", "-text"]));
    assert!(refused.contains("system failure") || refused.contains("systemFailure"), "{refused}");
    until("/readyz says the HSM is unavailable", Duration::from_secs(20), || {
        let (code, _, body) = readyz();
        code == 503 && String::from_utf8_lossy(&body).contains("hsm")
    });
    assert_eq!(http_request(&http, "GET", "/ca/root.crt", None, b"").0, 200);

    // It comes back: within the re-initialisation interval the daemon signs again, unrestarted.
    std::fs::write(&control, "max-sessions=2\n").unwrap();
    let healed = until("time-stamps granted again", Duration::from_secs(40), || {
        let (code, _, body) = stamp();
        code == 200 && granted(d, &body)
    });
    eprintln!("healed {healed:?} after the device came back");
    until("/readyz ready again", Duration::from_secs(20), || readyz().0 == 200);
    assert!(log().contains("HSM available again"), "{}", log());
    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    assert!(child.0.wait().unwrap().success());
}
