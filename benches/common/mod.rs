//! Shared by the benchmarks: a release `trustd dev`, the raw HSM signing rate of one of its keys,
//! and `trustctl bench`'s load loop and keep-alive HTTP/1.1 client (`trustd::loadgen`), made to
//! panic on a failed request.
#![allow(dead_code)]

#[path = "../../tests/common/daemon.rs"]
mod daemon;
pub use daemon::{cpu_time_of, Daemon};

use std::sync::Arc;
use std::time::{Duration, Instant};
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

pub use trustd::loadgen::percentile;

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
        // As `trustd dev` signs.
        session_key_copies: true,
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

/// `concurrency` clients doing `op` one after another for `secs` ([`trustd::loadgen::run`]); an
/// `op` that fails panics, as a benchmark's set-up error should.
pub async fn load<F, Fut>(concurrency: usize, secs: Duration, op: F) -> Run
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let op = op.clone();
            move || {
                let done = op();
                async move {
                    done.await;
                    Ok(())
                }
            }
        })
        .collect();
    let (_, out) = trustd::loadgen::run(workers, secs, Default::default()).await;
    assert_eq!(out.errors, 0, "{:?}", out.first_error);
    Run { ops: out.ops as usize, elapsed: out.elapsed, latencies: out.latencies, daemon_cpu: None, client_cpu: None }
}

/// One keep-alive HTTP/1.1 connection of a pool; a request that fails panics.
pub struct HttpConn(trustd::loadgen::HttpConnection);

impl HttpConn {
    /// POSTs an RFC 3161 query or an OCSP request (`content_type`) to `path` and expects 200
    /// with the matching response type.
    pub async fn post(&mut self, path: &str, content_type: &str, body: &[u8]) {
        let expect = match content_type {
            "application/timestamp-query" => "application/timestamp-reply",
            "application/ocsp-request" => "application/ocsp-response",
            other => panic!("no response type known for {other}"),
        };
        self.0.post(path, content_type, expect, body.to_vec()).await.expect("HTTP request");
    }
}

/// Opens `c` keep-alive HTTP connections to `addr`, as a pool the load tasks share.
pub async fn http_pool(addr: &str, c: usize) -> Arc<std::sync::Mutex<Vec<Arc<tokio::sync::Mutex<HttpConn>>>>> {
    let mut conns = Vec::new();
    for _ in 0..c {
        let conn = trustd::loadgen::HttpConnection::connect(addr).await.expect("connect");
        conns.push(Arc::new(tokio::sync::Mutex::new(HttpConn(conn))));
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
