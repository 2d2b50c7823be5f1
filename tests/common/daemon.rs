//! A real `trustd dev` on a fresh SoftHSM token in a temp dir, on loopback: the one harness
//! of the end-to-end tests and the benchmarks (which include this file).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use trustd::api::pb::certificate_authority_client::CertificateAuthorityClient;

/// Base URL the test daemons write into certificates (a public-looking name, so that the
/// CA/B Forum linter does not flag an internal address).
pub const PUBLIC_URL: &str = "http://pki.example.com";

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub grpc: String,
    /// `host:port` of the HTTP listener.
    pub http: String,
    /// `https://host:port` of the HTTPS listener.
    pub https: Option<String>,
    child: Child,
    pub stderr_log: PathBuf,
    /// The data dir (token, credentials): `dir/data`, or a replica's first daemon's.
    data: PathBuf,
}

impl Daemon {
    /// Starts `trustd dev` on a fresh data dir.
    pub fn start() -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir)
    }

    /// Starts `trustd dev` on an existing data dir (a restart).
    pub fn start_in(dir: tempfile::TempDir) -> Daemon {
        Self::start_with(dir, &[])
    }

    /// Starts `trustd dev` with extra arguments.
    pub fn start_with(dir: tempfile::TempDir, extra: &[&str]) -> Daemon {
        Self::spawn(dir, extra, None)
    }

    /// Starts `trustd dev` with extra arguments, logging at `log_level` (`TRUSTD_LOG`) when
    /// given: the benchmarks keep the daemon to warnings, as a loaded production daemon would.
    pub fn spawn(dir: tempfile::TempDir, extra: &[&str], log_level: Option<&str>) -> Daemon {
        let data = dir.path().join("data");
        Self::spawn_on(dir, data, extra, log_level)
    }

    /// A second daemon on this one's data dir (its token and credentials) with its own
    /// listeners: with `--store-url` on the same database, a replica.
    pub fn replica(&self, extra: &[&str]) -> Daemon {
        Self::spawn_on(tempfile::tempdir().expect("temp dir"), self.data.clone(), extra, None)
    }

    fn spawn_on(dir: tempfile::TempDir, data: PathBuf, extra: &[&str], log_level: Option<&str>) -> Daemon {
        let stderr_log = dir.path().join("trustd.stderr");
        let err = std::fs::File::create(&stderr_log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustd"));
        if let Some(level) = log_level {
            cmd.env("TRUSTD_LOG", level);
        }
        let mut child = cmd
            .args(["dev", "--data-dir"])
            .arg(&data)
            .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--https", "127.0.0.1:0"])
            .args(["--public-url", PUBLIC_URL])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("spawn trustd");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read ready line");
        if !line.starts_with("ready ") {
            let _ = child.kill();
            panic!(
                "trustd did not become ready: {line:?}\n{}",
                std::fs::read_to_string(&stderr_log).unwrap_or_default()
            );
        }
        let grpc =
            line.split_whitespace().find_map(|w| w.strip_prefix("grpc=")).expect("grpc= in ready line").to_owned();
        let http = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http=http://"))
            .expect("http= in ready line")
            .to_owned();
        let https = line.split_whitespace().find_map(|w| w.strip_prefix("https=")).map(str::to_owned);
        Daemon { dir, grpc, http, https, child, stderr_log, data }
    }

    /// The daemon's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    /// Kills the process at once (SIGKILL), a replica lost mid-work, and gives back its dir
    /// (which holds the data dir a replica of it still uses).
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// The operator credential `trustd dev` keeps (`ca.crt`, `operator.crt`, `operator.key`).
    pub fn credentials(&self) -> PathBuf {
        self.data_dir().join("credentials")
    }

    /// A gRPC channel over mTLS with the dev operator credential.
    pub async fn channel(&self) -> tonic::transport::Channel {
        let c = self.credentials();
        mtls_channel(&self.grpc, &c.join("ca.crt"), &c.join("operator.crt"), &c.join("operator.key")).await
    }

    pub async fn client(&self) -> CertificateAuthorityClient<tonic::transport::Channel> {
        CertificateAuthorityClient::new(self.channel().await)
    }

    /// Runs trustctl against this daemon, with its operator credential.
    pub fn trustctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_trustctl"))
            .arg("--server")
            .arg(&self.grpc)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .output()
            .expect("trustctl")
    }

    /// Sends SIGTERM and waits; returns the exit status and gives back the data dir.
    pub fn stop(mut self) -> (std::process::ExitStatus, tempfile::TempDir) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().expect("wait");
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        (status, dir)
    }

    /// A plain HTTP/1.1 GET: (status code, headers, body).
    pub fn http_get(&self, path: &str) -> (u16, String, Vec<u8>) {
        self.http_request("GET", path, None, &[])
    }

    /// A plain HTTP/1.1 POST: (status code, headers, body).
    pub fn http_post(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        self.http_request("POST", path, Some(content_type), body)
    }

    fn http_request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        http_request(&self.http, method, path, content_type, body)
    }

    /// Peak resident memory of the daemon so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// CPU time (user + system) the daemon has used so far.
    pub fn cpu_time(&self) -> std::time::Duration {
        cpu_time_of(&self.pid().to_string())
    }
}

/// CPU time (user + system) of process `pid` (a number, or `self`) so far.
pub fn cpu_time_of(pid: &str) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').expect("stat format").1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    std::time::Duration::from_micros(ticks * 1_000_000 / hz)
}

/// A gRPC channel to `url` over mTLS: the server checked against the root `ca`, the client
/// presenting `cert` and `key` (PEM files).
pub async fn mtls_channel(url: &str, ca: &Path, cert: &Path, key: &Path) -> tonic::transport::Channel {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let read = |f: &Path| std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(ca)))
        .identity(Identity::from_pem(read(cert), read(key)));
    tonic::transport::Channel::from_shared(url.to_owned())
        .expect("url")
        .tls_config(tls)
        .expect("TLS config")
        .connect()
        .await
        .expect("connect over mTLS")
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 request to `addr` (host:port): (status code, headers, body).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect HTTP");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\nContent-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) and close before it has read a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status code");
    (code, head, raw[split + 4..].to_vec())
}
