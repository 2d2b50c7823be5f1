//! A database of its own for a test, in the private PostgreSQL cluster `ci/test-postgres.sh`
//! starts on loopback; dropped with the value. Standard library only, so that the end-to-end
//! harness includes this same file (`tests/common`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The cluster's URL and the file of its TLS certificate, the cluster started on first use in
/// this process.
fn started() -> &'static (String, PathBuf) {
    static CLUSTER: OnceLock<(String, PathBuf)> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let script = script();
        let out = Command::new(script).output().unwrap_or_else(|e| panic!("{script}: {e}"));
        assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
        let out = String::from_utf8(out.stdout).expect("the script prints a URL and a file");
        let mut lines = out.lines();
        let (url, cert) = (lines.next().expect("a URL"), lines.next().expect("a certificate file"));
        (url.to_owned(), PathBuf::from(cert))
    })
}

fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/ci/test-postgres.sh")
}

fn cluster() -> &'static str {
    &started().0
}

/// The root the cluster's TLS certificate (for 127.0.0.1) chains to, as a client verifies it.
pub fn cluster_certificate() -> &'static Path {
    &started().1
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &format!("{}/postgres", cluster()), "-c", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

/// An empty database, dropped (with whatever still connects to it) when this is.
pub struct TestDatabase {
    name: String,
    /// Its URL, for `PostgresStore::open` or a daemon's `[store] url`.
    pub url: String,
}

impl TestDatabase {
    pub fn new() -> TestDatabase {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("trustd_test_{}_{n}_{nanos}", std::process::id());
        psql(&format!("CREATE DATABASE {name}"));
        TestDatabase { url: format!("{}/{name}", cluster()), name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// A hot standby of the whole cluster (PostgreSQL streaming replication from a fresh base
/// backup), read-only, on a port of its own; stopped and removed when this is dropped.
pub struct TestStandby {
    name: String,
    /// Its URL without a database: append `/NAME` of a database of the cluster.
    pub url: String,
}

impl TestStandby {
    pub fn new() -> TestStandby {
        cluster();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let name = format!("standby_{}_{port}", std::process::id());
        let out = Command::new(script()).args(["standby", &name, &port.to_string()]).output().unwrap();
        assert!(out.status.success(), "standby: {}", String::from_utf8_lossy(&out.stderr));
        let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        TestStandby { name, url }
    }

    /// The standby's copy of `db`.
    pub fn of(&self, db: &TestDatabase) -> String {
        format!("{}/{}", self.url, db.name)
    }
}

impl Drop for TestStandby {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["drop-standby", &self.name]).output();
    }
}
