//! The daemon on PostgreSQL (`trustd dev --store-url`), checked with the same independent tools
//! as on SQLite: a certificate (openssl x509), a time-stamp over HTTP (`openssl ts -verify`),
//! a B-T signature (`openssl cms -verify`), a revocation as OCSP (`openssl ocsp`) and the CRL
//! (`openssl crl`) state it, the log (`trustctl log verify`), and all of it still there after a
//! restart on the same database; the rows are counted with psql, nothing written to SQLite.

mod common;

use common::postgres::TestDatabase;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `SELECT COUNT(*)` of a table of the test's database.
fn rows(db: &TestDatabase, table: &str) -> u64 {
    let out = run(Command::new("psql").args(["-X", "-At", &db.url, "-c", &format!("SELECT COUNT(*) FROM {table}")]));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn ocsp(d: &Daemon) -> String {
    let url = format!("http://{}/ocsp", d.http);
    let args = ["ocsp", "-issuer", "issuing.pem", "-cert", "cert.pem", "-url", &url, "-CAfile", "root.pem"];
    text(&Command::new("openssl").current_dir(d.dir.path()).args(args).output().unwrap())
}

/// The CRL as a relying party fetches it, printed by openssl, once `pred` holds (a new CRL
/// follows a revocation within a second or so).
fn crl_once(d: &Daemon, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let (code, _, der) = d.http_get("/crl/issuing.crl");
        assert_eq!(code, 200);
        std::fs::write(d.dir.path().join("crl.der"), der).unwrap();
        let printed = text(&openssl(d.dir.path(), &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"]));
        if pred(&printed) {
            return printed;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "CRL did not change:\n{printed}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_verifies(d: &Daemon, db: &TestDatabase, vkey: &Path) -> String {
    // Issuance returns once its entry is sequenced; the checkpoint covering it, which verify
    // reads, follows.
    wait_for_checkpoint(d, rows(db, "log_entries"));
    trustctl_ok(d, &["log", "verify", "--key", vkey.to_str().unwrap()])
}

#[test]
fn every_service_records_in_postgresql_and_survives_a_restart() {
    let db = TestDatabase::new();
    let args = ["--store-url", db.url.as_str()];
    let d = Daemon::start_with(tempfile::tempdir().unwrap(), &args);
    let dir = d.dir.path().to_owned();
    assert!(!d.data_dir().join("trustd.db").exists(), "no SQLite file beside PostgreSQL");
    // Its disk is the database server's: the daemon says so rather than measure its own.
    let sync = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut diag = trustd::api::pb::diagnostics_client::DiagnosticsClient::new(d.channel().await);
        diag.measure_store_sync(trustd::api::pb::MeasureStoreSyncRequest {}).await
    });
    let e = sync.expect_err("not measured");
    assert!(e.code() == tonic::Code::FailedPrecondition && e.message().contains("PostgreSQL"), "{e:?}");
    let chain = split_pem(&trustctl_ok(&d, &["tsa", "chain"]));
    for (name, pem) in ["tsa.pem", "issuing.pem", "root.pem"].iter().zip(&chain) {
        std::fs::write(dir.join(name), pem).unwrap();
    }
    let (_, _, vkey) = d.http_get("/log/key");
    std::fs::write(dir.join("log.vkey"), vkey).unwrap();

    // A certificate.
    let csr = openssl_csr(&dir, "web", P256, "/CN=web.example.com", Some("DNS:web.example.com"));
    std::fs::write(
        dir.join("cert.pem"),
        trustctl_ok(&d, &["issue", "--profile", "tls-server", "--csr", csr.to_str().unwrap()]),
    )
    .unwrap();
    let verify = ["verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", "cert.pem"];
    assert!(text(&openssl(&dir, &verify)).contains("cert.pem: OK"));
    let serial = text(&openssl(&dir, &["x509", "-in", "cert.pem", "-noout", "-serial"]));
    let serial = serial.trim().trim_start_matches("serial=").to_ascii_lowercase();
    assert!(ocsp(&d).contains("cert.pem: good"), "{}", ocsp(&d));

    // A time-stamp over HTTP, as any RFC 3161 client asks for one.
    std::fs::write(dir.join("doc.txt"), b"a document for PostgreSQL").unwrap();
    openssl(&dir, &["ts", "-query", "-data", "doc.txt", "-sha256", "-cert", "-out", "q.tsq"]);
    let (code, _, tsr) = d.http_post("/tsa", "application/timestamp-query", &std::fs::read(dir.join("q.tsq")).unwrap());
    assert_eq!(code, 200);
    std::fs::write(dir.join("r.tsr"), tsr).unwrap();
    let ts_verify =
        ["ts", "-verify", "-in", "r.tsr", "-data", "doc.txt", "-CAfile", "root.pem", "-untrusted", "issuing.pem"];
    assert!(text(&openssl(&dir, &ts_verify)).contains("Verification: OK"));

    // A B-T signature: a signature record and its time-stamp's.
    trustctl_ok(
        &d,
        &[
            "sign",
            "--file",
            dir.join("doc.txt").to_str().unwrap(),
            "--timestamp",
            "--out",
            dir.join("sig.p7s").to_str().unwrap(),
        ],
    );
    let cms = [
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "sig.p7s",
        "-CAfile",
        "root.pem",
        "-purpose",
        "any",
        "-out",
        "signed.out",
    ];
    assert!(text(&openssl(&dir, &cms)).contains("Verification successful"));

    // A revocation, as OCSP and the CRL state it.
    trustctl_ok(&d, &["revoke", "--serial", &serial, "--reason", "keyCompromise"]);
    let answer = ocsp(&d);
    assert!(answer.contains("cert.pem: revoked") && answer.contains("Reason: keyCompromise"), "{answer}");
    let upper = serial.to_ascii_uppercase();
    let crl = crl_once(&d, |t| t.contains(&upper));
    assert!(crl.contains("Key Compromise"), "{crl}");

    assert_eq!(rows(&db, "timestamps"), 2, "the HTTP token and the signature's");
    assert_eq!(rows(&db, "signatures"), 1);
    assert_eq!(rows(&db, "revocation_events"), 1);
    let certificates = rows(&db, "certificates");
    assert!(certificates >= 4, "the ceremony's, the daemon's own and the issued one: {certificates}");
    let report = log_verifies(&d, &db, &dir.join("log.vkey"));
    assert!(report.contains("revocations by CA: issuing 1"), "{report}");
    let logged = rows(&db, "log_entries");

    // A restart on the same database: everything still there, the log goes on from its size.
    let (status, tmp) = d.stop();
    assert!(status.success());
    let d = Daemon::start_with(tmp, &args);
    assert!(ocsp(&d).contains("cert.pem: revoked"));
    let info = trustctl_ok(&d, &["cert", "get", "--serial", &serial, "--info"]);
    assert!(info.contains("revoked"), "{info}");
    trustctl_ok(&d, &["timestamp", "--digest", &"ab".repeat(32), "--out", dir.join("again.tsr").to_str().unwrap()]);
    assert_eq!(rows(&db, "timestamps"), 3);
    let report = log_verifies(&d, &db, &dir.join("log.vkey"));
    assert!(rows(&db, "log_entries") > logged, "{report}");
    assert!(!d.data_dir().join("trustd.db").exists());
}

/// A database URL that cannot be used stops the start with a message naming it, never with
/// its password: a server that is not there, a URL that is not PostgreSQL's, and a hot standby
/// of a database no trustd ever migrated (a standby takes its schema from the primary).
#[test]
fn an_unreachable_wrong_or_standby_database_is_named_at_start_without_its_password() {
    let db = TestDatabase::new();
    let standby = common::postgres::TestStandby::new();
    let on_standby = standby.of(&db).replace("postgres@", "postgres:s3cret@");
    for (url, says) in [
        ("postgres://trustd:s3cret@127.0.0.1:1/trustd", "postgres://trustd@127.0.0.1:1/trustd"),
        ("mysql://trustd:s3cret@127.0.0.1/trustd", "must be a postgres:// URL"),
        (on_standby.as_str(), "holds no trustd schema: start trustd against the primary first"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_trustd"))
            .args(["dev", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--https", "off", "--store-url", url])
            .output()
            .unwrap();
        let said = text(&out);
        assert!(!out.status.success(), "{url}: {said}");
        assert!(said.contains(says), "{url}: {said}");
        assert!(!said.contains("s3cret"), "{url}: {said}");
    }
}
