//! What the issued-certificate log costs issuance (issue #6) and the TSA (issue #19: every token
//! is an entry): certificates per second over gRPC and time-stamps per second over HTTP, with
//! p50/p99 latency, at concurrency 64, with the log on and off, against two release `trustd dev`
//! daemons in the same run (alternating, so drift on the noisy machine hits both), and how long
//! after issuance a certificate is in a signed checkpoint. Not a test: it asserts nothing and
//! prints figures.
//!
//!     cargo bench --bench log [-- SECONDS]
//!
//! Goals: the log costs issuance and the TSA each under 10 % of throughput, and adds under 1 s
//! to issuance's p99 latency.

mod common;

use common::*;
use std::time::{Duration, Instant};
use trustd::api::pb;
use trustd::api::pb::certificate_authority_client::CertificateAuthorityClient;
use trustd::api::pb::transparency_log_client::TransparencyLogClient;

const CONCURRENCY: usize = 64;
/// Alternations of off and on per comparison: the machine's speed drifts by tens of percent from
/// one run to the next, and more pairs average it out of the difference.
const ROUNDS: usize = 4;

fn csr() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new("openssl")
        .current_dir(dir.path())
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k.pem"])
        .args(["-subj", "/CN=www.example.com", "-addext", "subjectAltName=DNS:www.example.com", "-outform", "DER"])
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

async fn issuance(d: &Daemon, csr: &[u8], secs: Duration) -> Run {
    let channel = d.channel().await;
    let csr = csr.to_vec();
    load(CONCURRENCY, secs, move || {
        let (mut client, csr) = (CertificateAuthorityClient::new(channel.clone()), csr.clone());
        async move {
            client
                .issue_certificate(pb::IssueCertificateRequest {
                    profile: "tls-server".into(),
                    csr,
                    validity_seconds: 0,
                })
                .await
                .expect("issue");
        }
    })
    .await
}

async fn timestamps(d: &Daemon, der: &[u8], secs: Duration) -> Run {
    let pool = http_pool(&d.http, CONCURRENCY).await;
    let der = der.to_vec();
    load(CONCURRENCY, secs, move || {
        let conn = pool.lock().expect("pool").pop().expect("a connection per task");
        let (pool, der) = (pool.clone(), der.clone());
        async move {
            conn.lock().await.post("/tsa", "application/timestamp-query", &der).await;
            pool.lock().expect("pool").push(conn);
        }
    })
    .await
}

/// Runs `op` on the daemon with the log off, then on the one with it on, [`ROUNDS`] times;
/// prints each run, both merged and what the log costs.
async fn compare<'a, F, Fut>(what: &str, off: &'a Daemon, on: &'a Daemon, op: F)
where
    F: Fn(&'a Daemon) -> Fut,
    Fut: std::future::Future<Output = Run>,
{
    let (mut runs_off, mut runs_on) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let r = off.measure(op(off)).await;
        row(&format!("{what}, log off"), &r);
        runs_off.push(r);
        let r = on.measure(op(on)).await;
        row(&format!("{what}, log on"), &r);
        runs_on.push(r);
    }
    let merge = |runs: &[Run]| {
        let ops: usize = runs.iter().map(|r| r.ops).sum();
        let elapsed: Duration = runs.iter().map(|r| r.elapsed).sum();
        let mut latencies: Vec<Duration> = runs.iter().flat_map(|r| r.latencies.iter().copied()).collect();
        latencies.sort();
        let daemon_cpu = runs.iter().map(|r| r.daemon_cpu).sum::<Option<Duration>>();
        Run { ops, elapsed, latencies, daemon_cpu, client_cpu: None }
    };
    let (off_all, on_all) = (merge(&runs_off), merge(&runs_on));
    row(&format!("{what}, off, all"), &off_all);
    row(&format!("{what}, on, all"), &on_all);
    let p = |r: &Run, q| percentile(&r.latencies, q).as_secs_f64() * 1e3;
    println!(
        "the log costs {what} {:.1}% of throughput; adds {:.2} ms at p50 and {:.2} ms at p99",
        100.0 * (1.0 - on_all.rate() / off_all.rate()),
        p(&on_all, 0.50) - p(&off_all, 0.50),
        p(&on_all, 0.99) - p(&off_all, 0.99)
    );
}

/// From an issuance's reply to the first signed checkpoint that covers it, one at a time.
async fn time_to_checkpoint(d: &Daemon, csr: &[u8], samples: usize) -> Vec<Duration> {
    let mut ca = CertificateAuthorityClient::new(d.channel().await);
    let mut log = TransparencyLogClient::new(d.channel().await);
    let mut out = Vec::new();
    // Let the checkpoint catch up with whatever the load left sequenced.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..samples {
        // Nothing else issues meanwhile: the first checkpoint larger than this one covers ours.
        let before =
            log.get_checkpoint(pb::GetCheckpointRequest::default()).await.expect("checkpoint").into_inner().tree_size;
        ca.issue_certificate(pb::IssueCertificateRequest {
            profile: "tls-server".into(),
            csr: csr.to_vec(),
            validity_seconds: 0,
        })
        .await
        .expect("issue");
        let issued = Instant::now();
        while log.get_checkpoint(pb::GetCheckpointRequest::default()).await.expect("checkpoint").into_inner().tree_size
            <= before
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        out.push(issued.elapsed());
    }
    out.sort();
    out
}

fn row(name: &str, r: &Run) {
    let cpu = r.daemon_cpu.map_or(0.0, |c| c.as_secs_f64() * 1e6 / r.ops.max(1) as f64);
    println!(
        "{name:<22} {CONCURRENCY:>4} {:>9.0} {:>9.2} {:>9.2} {cpu:>12.0}",
        r.rate(),
        percentile(&r.latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&r.latencies, 0.99).as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let secs = Duration::from_secs(std::env::args().filter_map(|a| a.parse().ok()).next().unwrap_or(5));
    let csr = csr();
    let off = start_with(&["--log", "off"]);
    let on = start_with(&[]);
    println!(
        "issuance over gRPC (tls-server profile, ECDSA P-256 issuing key), time-stamps over HTTP (ECDSA P-256 \
         TSA key), SoftHSM2, {}s a row",
        secs.as_secs()
    );
    println!("{:<22} {:>4} {:>9} {:>9} {:>9} {:>12}", "what", "conc", "per s", "p50 ms", "p99 ms", "daemon CPU µs");
    compare("issuance", &off, &on, |d| issuance(d, &csr, secs)).await;
    let req = trustd::tsa::request_from_digest("sha256", &[7; 32], &[1, 2, 3, 4, 5, 6, 7, 8], true, "").expect("req");
    let der = der::Encode::to_der(&req).expect("DER request");
    compare("tsa", &off, &on, |d| timestamps(d, &der, secs)).await;
    let t = time_to_checkpoint(&on, &csr, 20).await;
    println!(
        "issuance reply to a signed checkpoint covering it (20 sequential issuances): p50 {:.0} ms, max {:.0} ms",
        percentile(&t, 0.5).as_secs_f64() * 1e3,
        t.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}
