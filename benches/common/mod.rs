//! Shared by the benchmarks: a release `trustd dev`, the raw HSM signing rate of one of its keys,
//! a fixed-time load loop with latencies, and a keep-alive HTTP/1.1 client.
#![allow(dead_code)]

#[path = "../../tests/common/daemon.rs"]
mod daemon;
pub use daemon::{cpu_time_of, Daemon};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trustd::hsm::{Hsm, HsmConfig, HsmSigner, KeyRef, Pin};

impl Daemon {
    /// Runs `load` and records the CPU time the daemon and this load generator used.
    pub async fn measure(&self, load: impl std::future::Future<Output = Run>) -> Run {
        let (before, client_before) = (self.cpu_time(), cpu_time_of("self"));
        let mut run = load.await;
        run.daemon_cpu = Some(self.cpu_time().saturating_sub(before));
        run.client_cpu = Some(cpu_time_of("self").saturating_sub(client_before));
        run
    }
}

pub fn start() -> Daemon {
    start_with(&[])
}

/// Starts a release `trustd dev` with extra arguments (e.g. `--log off`), logging warnings only.
pub fn start_with(extra: &[&str]) -> Daemon {
    Daemon::spawn(tempfile::tempdir().expect("temp dir"), extra, Some("warn"))
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

pub struct Run {
    pub ops: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    /// Daemon CPU time during the run, when measured with [`Daemon::measure`].
    pub daemon_cpu: Option<Duration>,
    /// The load generator's own CPU time (it shares the machine), likewise.
    pub client_cpu: Option<Duration>,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// Raw signing rates of the key labelled `label` with 1 and with 2 threads, `secs` each, off
/// the runtime (signing blocks).
pub async fn raw_hsm_rates(data: &std::path::Path, label: &'static str, secs: Duration) -> (f64, f64) {
    let data = data.to_owned();
    tokio::task::spawn_blocking(move || (raw_hsm_rate(&data, label, 1, secs), raw_hsm_rate(&data, label, 2, secs)))
        .await
        .expect("raw")
}

/// Measures the raw rates again after the loads and prints them beside the first ones: the host
/// is shared, and a drift between the two says how far to trust the ratios of that run.
pub async fn raw_hsm_rates_after(data: &std::path::Path, label: &'static str, secs: Duration, before: (f64, f64)) {
    let (raw1, raw2) = raw_hsm_rates(data, label, secs).await;
    println!(
        "raw HSM signing rate again after the loads: {raw1:.0}/s with 1 thread, {raw2:.0}/s with 2 (before: {:.0}, {:.0})",
        before.0, before.1
    );
}

/// Raw signing rate of the key labelled `label` in the same token, `threads` threads for `secs`.
pub fn raw_hsm_rate(data: &std::path::Path, label: &str, threads: usize, secs: Duration) -> f64 {
    let pin = std::fs::read_to_string(data.join("hsm-pin")).expect("pin");
    let cfg = HsmConfig {
        module: trustd::daemon::SOFTHSM_MODULE.into(),
        token_label: trustd::daemon::DEV_TOKEN_LABEL.into(),
        max_sessions: threads,
    };
    let hsm = Hsm::open(&cfg, Pin::new(pin)).expect("open token");
    let signer = Arc::new(HsmSigner::new(&hsm, KeyRef::label(label), None).expect("key"));
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

pub async fn load<F, Fut>(concurrency: usize, secs: Duration, op: F) -> Run
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
    Run { ops: latencies.len(), elapsed, latencies, daemon_cpu: None, client_cpu: None }
}

/// One keep-alive HTTP/1.1 connection posting time-stamp queries: the load an RFC 3161 client
/// library puts on the TSA. Hand-rolled to keep an HTTP client out of the dependency tree.
pub struct HttpConn {
    pub stream: tokio::net::TcpStream,
    pub buf: Vec<u8>,
}

impl HttpConn {
    pub async fn post(&mut self, host: &str, path: &str, content_type: &str, body: &[u8]) {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
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

/// Opens `c` keep-alive HTTP connections to `addr`, as a pool the load tasks share.
pub async fn http_pool(addr: &str, c: usize) -> Arc<std::sync::Mutex<Vec<Arc<tokio::sync::Mutex<HttpConn>>>>> {
    let mut conns = Vec::new();
    for _ in 0..c {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        conns.push(Arc::new(tokio::sync::Mutex::new(HttpConn { stream, buf: Vec::new() })));
    }
    Arc::new(std::sync::Mutex::new(conns))
}

/// One line of results: rate, ratio to the raw HSM rate, p50 and p99 latency, and (when
/// measured) the daemon's CPU time per operation: what the daemon costs apart from the load
/// generator that shares the machine with it.
pub fn report(name: &str, c: usize, r: &Run, raw: f64) {
    let per_op = |t: Option<Duration>| {
        t.map_or_else(|| "-".into(), |t| format!("{:.0}", t.as_secs_f64() * 1e6 / r.ops.max(1) as f64))
    };
    let (cpu, client) = (per_op(r.daemon_cpu), per_op(r.client_cpu));
    println!(
        "{name:<12} {c:>4} {:>10.0} {:>7.1}% {:>9.2} {:>9.2} {cpu:>10} {client:>10}",
        r.rate(),
        100.0 * r.rate() / raw,
        percentile(&r.latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&r.latencies, 0.99).as_secs_f64() * 1e3
    );
}

/// Header for [`report`] lines.
pub fn report_header() {
    println!(
        "{:<12} {:>4} {:>10} {:>8} {:>9} {:>9} {:>10} {:>10}",
        "what", "conc", "per s", "of raw", "p50 ms", "p99 ms", "cpu µs/op", "load µs/op"
    );
}
