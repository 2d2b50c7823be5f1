//! TSA throughput and latency against a real `trustd dev` (release build), over gRPC and over
//! HTTP, at concurrency 1, 16 and 64, beside the raw HSM signing rate of the TSA key measured in
//! the same run. Not a test: it asserts nothing and prints figures.
//!
//!     cargo bench --bench tsa [-- SECONDS]
//!
//! The daemon and this load generator share the machine, as they would share a small VM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trustd::api::pb;
use trustd::api::pb::time_stamping_client::TimeStampingClient;
use trustd::hsm::{Hsm, HsmConfig, HsmSigner, KeyRef, Pin};

struct Daemon {
    child: std::process::Child,
    grpc: String,
    http: String,
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Daemon {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trustd"))
        .args(["dev", "--data-dir"])
        .arg(&data)
        .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .env("TRUSTD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn trustd");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
    let field = |k: &str| line.split_whitespace().find_map(|w| w.strip_prefix(k)).expect("ready line").to_owned();
    Daemon { grpc: field("grpc="), http: field("http=http://"), child, _dir: dir, data }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

struct Run {
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// Raw signing rate of the TSA key in the same token, `threads` threads for `secs`.
fn raw_hsm_rate(data: &std::path::Path, threads: usize, secs: Duration) -> f64 {
    let pin = std::fs::read_to_string(data.join("hsm-pin")).expect("pin");
    let cfg = HsmConfig {
        module: trustd::daemon::SOFTHSM_MODULE.into(),
        token_label: trustd::daemon::DEV_TOKEN_LABEL.into(),
        max_sessions: threads,
    };
    let hsm = Hsm::open(&cfg, Pin::new(pin)).expect("open token");
    let signer = Arc::new(HsmSigner::new(&hsm, KeyRef::label("trustd-tsa"), None).expect("TSA key"));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let signer = signer.clone();
            std::thread::spawn(move || {
                let mut n = 0usize;
                while start.elapsed() < secs {
                    signer.sign(b"raw HSM rate: 32 bytes of input.").expect("sign");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let n: usize = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    n as f64 / start.elapsed().as_secs_f64()
}

async fn load<F, Fut>(concurrency: usize, secs: Duration, op: F) -> Run
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, stop) = (op.clone(), stop.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    op().await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("task"));
    }
    let elapsed = start.elapsed();
    latencies.sort();
    Run { ops: latencies.len(), elapsed, latencies }
}

/// One keep-alive HTTP/1.1 connection posting time-stamp queries: the load an RFC 3161 client
/// library puts on the TSA. Hand-rolled to keep an HTTP client out of the dependency tree.
struct HttpConn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl HttpConn {
    async fn post(&mut self, host: &str, body: &[u8]) {
        let head = format!(
            "POST /tsa HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/timestamp-query\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.stream.write_all(head.as_bytes()).await.expect("write");
        self.stream.write_all(body).await.expect("write");
        self.buf.clear();
        let mut chunk = [0u8; 8192];
        loop {
            let n = self.stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                assert!(head.starts_with("http/1.1 200"), "{head}");
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("content-length");
                while self.buf.len() < end + 4 + len {
                    let n = self.stream.read(&mut chunk).await.expect("read");
                    assert!(n > 0, "connection closed");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                return;
            }
        }
    }
}

fn report(name: &str, c: usize, r: &Run, raw: f64) {
    println!(
        "{name:<5} {c:>4} {:>10.0} {:>7.1}% {:>9.2} {:>9.2}",
        r.rate(),
        100.0 * r.rate() / raw,
        percentile(&r.latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&r.latencies, 0.99).as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let secs = Duration::from_secs(std::env::args().filter_map(|a| a.parse().ok()).next().unwrap_or(5));
    let d = start();
    // SoftHSM reads its config from the environment; the bench signs with the daemon's token.
    std::env::set_var("SOFTHSM2_CONF", d.data.join("softhsm2.conf"));
    let data = d.data.clone();
    let raw1 = tokio::task::spawn_blocking({
        let data = data.clone();
        move || raw_hsm_rate(&data, 1, secs)
    })
    .await
    .expect("raw");
    let raw2 = tokio::task::spawn_blocking(move || raw_hsm_rate(&data, 2, secs)).await.expect("raw");
    let raw = raw1.max(raw2);
    println!("raw HSM signing rate, TSA key (ECDSA P-256, SoftHSM2): {raw1:.0}/s with 1 thread, {raw2:.0}/s with 2");
    println!("ratios below are to the higher of the two ({raw:.0}/s), the most this machine's token signed");
    println!("{:<5} {:>4} {:>10} {:>8} {:>9} {:>9}", "api", "conc", "tokens/s", "of raw", "p50 ms", "p99 ms");

    let der = trustd::tsa::request_from_digest("sha256", &[7; 32], &[1, 2, 3, 4, 5, 6, 7, 8], true, "").expect("req");
    let channel =
        tonic::transport::Channel::from_shared(d.grpc.clone()).expect("url").connect().await.expect("connect");
    for c in [1, 16, 64] {
        let (channel, der) = (channel.clone(), der.clone());
        let r = load(c, secs, move || {
            let (mut client, der) = (TimeStampingClient::new(channel.clone()), der.clone());
            async move {
                let r = client
                    .timestamp(pb::TimestampRequest { request: Some(pb::timestamp_request::Request::Der(der)) })
                    .await
                    .expect("rpc")
                    .into_inner();
                assert_eq!(r.status(), pb::TimestampStatus::Granted, "{}", r.reason);
            }
        })
        .await;
        report("grpc", c, &r, raw);
    }
    for c in [1, 16, 64] {
        let mut conns = Vec::new();
        for _ in 0..c {
            let stream = tokio::net::TcpStream::connect(&d.http).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            conns.push(Arc::new(tokio::sync::Mutex::new(HttpConn { stream, buf: Vec::new() })));
        }
        let pool = Arc::new(std::sync::Mutex::new(conns));
        let (host, der) = (d.http.clone(), der.clone());
        let r = load(c, secs, move || {
            let conn = pool.lock().expect("pool").pop().expect("a connection per task");
            let (pool, host, der) = (pool.clone(), host.clone(), der.clone());
            async move {
                conn.lock().await.post(&host, &der).await;
                pool.lock().expect("pool").push(conn);
            }
        })
        .await;
        report("http", c, &r, raw);
    }
}
