//! Abuse on loopback, bounded in count and time, while a well-behaved client keeps issuing,
//! time-stamping (gRPC and HTTP) and signing: thousands of idle connections held open to the gRPC
//! and HTTP listeners, a flood of requests from one client past its limit over gRPC and over
//! HTTP, oversized messages and slowloris HTTP clients. Prints the well-behaved client's
//! successes and latency before, during and after the abuse, what the abusers were told, and
//! the daemon's peak RSS; then checks that `trustctl log verify` passes, the CRL is fresh and a
//! restart succeeds. Not a test: it prints figures and stops by itself.
//!
//!     cargo bench --bench stress [-- SECONDS] [--limit KEY=VALUE ...]
//!
//! SECONDS is the abuse phase (default 20); `--limit` goes to `trustd dev`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;
use trustd::api::pb;
use trustd::api::pb::certificate_authority_client::CertificateAuthorityClient;
use trustd::api::pb::signing_client::SigningClient;
use trustd::api::pb::time_stamping_client::TimeStampingClient;

/// Idle connections held per listener (gRPC, HTTP); each reconnects when the daemon closes it.
const IDLE_PER_LISTENER: usize = 1500;
/// Concurrent requests of the flooding client, per protocol: four times its limit.
const FLOOD: usize = 256;
const SLOWLORIS: usize = 200;

#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn add(&self, what: impl Into<String>) {
        *self.0.lock().unwrap().entry(what.into()).or_insert(0) += 1;
    }
    fn print(&self, name: &str) {
        let t = self.0.lock().unwrap();
        let parts: Vec<String> = t.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  {name}: {}", if parts.is_empty() { "nothing".into() } else { parts.join(", ") });
    }
}

/// What the well-behaved client saw in one phase, per operation.
#[derive(Default)]
struct Steady {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    failures: BTreeMap<String, u64>,
}

impl Steady {
    fn print(&mut self, phase: &str) {
        println!("well-behaved client, {phase}:");
        for (op, lat) in &mut self.latencies {
            lat.sort();
            let p = |q: f64| lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1))).copied();
            println!(
                "  {op:<14} {:>5} ok, p50 {:>7.2} ms, p99 {:>7.2} ms",
                lat.len(),
                p(0.5).unwrap_or_default().as_secs_f64() * 1e3,
                p(0.99).unwrap_or_default().as_secs_f64() * 1e3
            );
        }
        let failures: Vec<String> = self.failures.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  failures: {}", if failures.is_empty() { "none".into() } else { failures.join(", ") });
    }
}

/// One keep-alive HTTP/1.1 POST /tsa; the status code, or why there was none.
async fn post_tsa(conn: &mut TcpStream, host: &str, der: &[u8]) -> Result<u16, String> {
    let head = format!(
        "POST /tsa HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/timestamp-query\r\nContent-Length: {}\r\n\r\n",
        der.len()
    );
    // One write: head and body in two would wait out Nagle and the daemon's delayed ACK.
    conn.write_all(&[head.as_bytes(), der].concat()).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = conn.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + len {
            let n = conn.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        return Ok(code);
    }
}

async fn connect_from(from: IpAddr, addr: &str) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr.parse().map_err(std::io::Error::other)?).await
}

/// The well-behaved client: issues, time-stamps over gRPC and HTTP (from its own address) and
/// signs, one after the other, until `stop`.
async fn steady(d_http: String, channel: Channel, csr: Vec<u8>, tsq: Vec<u8>, stop: Arc<AtomicBool>) -> Steady {
    let mut s = Steady::default();
    let mut ca = CertificateAuthorityClient::new(channel.clone());
    let mut tsa = TimeStampingClient::new(channel.clone());
    let mut signing = SigningClient::new(channel);
    let own: IpAddr = "127.0.0.2".parse().unwrap();
    let mut http = connect_from(own, &d_http).await.ok();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let r = ca.issue_certificate(pb::IssueCertificateRequest {
            profile: "tls-server".into(),
            csr: csr.clone(),
            validity_seconds: 0,
        });
        match r.await {
            Ok(_) => s.latencies.entry("issue").or_default().push(t.elapsed()),
            Err(e) => *s.failures.entry(format!("issue {:?}", e.code())).or_default() += 1,
        }
        let t = Instant::now();
        let req = pb::TimestampRequest { request: Some(pb::timestamp_request::Request::Der(tsq.clone())) };
        match tsa.timestamp(req).await {
            Ok(_) => s.latencies.entry("timestamp grpc").or_default().push(t.elapsed()),
            Err(e) => *s.failures.entry(format!("timestamp {:?}", e.code())).or_default() += 1,
        }
        let t = Instant::now();
        let req = pb::SignRequest {
            options: Some(pb::SignOptions { detached: true, ..Default::default() }),
            content: Some(pb::sign_request::Content::Digest(pb::Digest {
                hash_algorithm: "sha256".into(),
                value: vec![7; 32],
            })),
        };
        match signing.sign(req).await {
            Ok(_) => s.latencies.entry("sign").or_default().push(t.elapsed()),
            Err(e) => *s.failures.entry(format!("sign {:?}", e.code())).or_default() += 1,
        }
        let t = Instant::now();
        if http.is_none() {
            http = connect_from(own, &d_http).await.ok();
        }
        let outcome = match http.as_mut() {
            Some(conn) => post_tsa(conn, &d_http, &tsq).await,
            None => Err("connect failed".into()),
        };
        match outcome {
            Ok(200) => s.latencies.entry("timestamp http").or_default().push(t.elapsed()),
            Ok(code) => *s.failures.entry(format!("timestamp http {code}")).or_default() += 1,
            Err(e) => {
                http = None;
                *s.failures.entry(format!("timestamp http {e}")).or_default() += 1;
            }
        }
    }
    s
}

/// A phase of the well-behaved client alone or beside the abuse.
async fn phase(d: &Daemon, channel: &Channel, csr: &[u8], tsq: &[u8], secs: Duration) -> Steady {
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(steady(d.http.clone(), channel.clone(), csr.to_vec(), tsq.to_vec(), stop.clone()));
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    task.await.expect("steady client")
}

#[tokio::main]
async fn main() {
    let secs = Duration::from_secs(std::env::args().filter_map(|a| a.parse().ok()).next().unwrap_or(20));
    // Thousands of sockets on this side too.
    trustd::connections::raise_open_files(2 * IDLE_PER_LISTENER as u64 + 4 * FLOOD as u64 + 1024);
    // `--limit KEY=VALUE` arguments go to `trustd dev` as they are.
    let args: Vec<String> = std::env::args().collect();
    let limits: Vec<&str> =
        args.windows(2).filter(|w| w[0] == "--limit").flat_map(|w| ["--limit", w[1].as_str()]).collect();
    let d = Daemon::spawn(tempfile::tempdir().expect("temp dir"), &limits, Some("warn"));
    let dir = d.dir.path().to_owned();
    let csr =
        std::fs::read(openssl_csr(&dir, "steady", P256, "/CN=steady.example.com", Some("DNS:steady.example.com")))
            .expect("CSR");
    let tsq =
        der::Encode::to_der(&trustd::tsa::request_from_digest("sha256", &[7; 32], &[1; 8], true, "").expect("req"))
            .expect("DER");
    let steady_channel = d.channel().await;
    // The flooding client is another client of the policy: its limit is its own. Four
    // connections, so that it has more requests in progress than its limit (one connection's
    // stream cap alone would hold it to 64).
    let portal_credential = credential(&d, "portal");
    let mut portal = Vec::new();
    for _ in 0..4 {
        portal.push(channel_as(&d, &portal_credential).await);
    }

    phase(&d, &steady_channel, &csr, &tsq, Duration::from_secs(5)).await.print("before the abuse (5 s)");

    let stop = Arc::new(AtomicBool::new(false));
    let (idle, grpc_flood, http_flood, oversized, slowloris) = (
        Arc::new(Tally::default()),
        Arc::new(Tally::default()),
        Arc::new(Tally::default()),
        Arc::new(Tally::default()),
        Arc::new(Tally::default()),
    );
    let held = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let grpc_addr = d.grpc.trim_start_matches("https://").to_owned();
    for (target, addr) in [("grpc", grpc_addr.clone()), ("http", d.http.clone())] {
        for _ in 0..IDLE_PER_LISTENER {
            let (stop, idle, held, addr) = (stop.clone(), idle.clone(), held.clone(), addr.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut c) = TcpStream::connect(&addr).await else {
                        idle.add(format!("{target} connect failed"));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    held.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 512];
                    let opened = Instant::now();
                    let r = tokio::time::timeout(Duration::from_secs(30), c.read(&mut buf)).await;
                    held.fetch_sub(1, Ordering::Relaxed);
                    let what = match r {
                        Ok(Ok(n)) if n > 0 && buf.starts_with(b"HTTP/1.1 503") => "shed with 503",
                        Ok(Ok(_)) | Ok(Err(_)) if opened.elapsed() < Duration::from_secs(1) => "shed at once",
                        Ok(Ok(_)) | Ok(Err(_)) => "closed after a timeout",
                        Err(_) => "still open after 30 s",
                    };
                    idle.add(format!("{target} {what}"));
                }
            }));
        }
    }
    for i in 0..FLOOD {
        {
            let channel = portal[i % portal.len()].clone();
            let (stop, tally, mut client, tsq) =
                (stop.clone(), grpc_flood.clone(), TimeStampingClient::new(channel), tsq.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let req = pb::TimestampRequest { request: Some(pb::timestamp_request::Request::Der(tsq.clone())) };
                    match client.timestamp(req).await {
                        Ok(_) => tally.add("ok"),
                        Err(e) if e.code() == tonic::Code::ResourceExhausted => tally.add("ResourceExhausted"),
                        Err(e) => tally.add(format!("{:?} ({})", e.code(), e.message())),
                    }
                }
            }));
        }
        let (stop, tally, host, tsq) = (stop.clone(), http_flood.clone(), d.http.clone(), tsq.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = None;
            while !stop.load(Ordering::Relaxed) {
                if conn.is_none() {
                    conn = TcpStream::connect(&host).await.ok();
                }
                let Some(c) = conn.as_mut() else { continue };
                match post_tsa(c, &host, &tsq).await {
                    Ok(code) => tally.add(code.to_string()),
                    Err(e) => {
                        tally.add(e);
                        conn = None;
                    }
                }
            }
        }));
    }
    {
        let (stop, tally, mut tsa, host) =
            (stop.clone(), oversized.clone(), TimeStampingClient::new(portal[0].clone()), d.http.clone());
        tasks.push(tokio::spawn(async move {
            let huge = vec![b'A'; 1 << 20];
            while !stop.load(Ordering::Relaxed) {
                let req = pb::TimestampRequest { request: Some(pb::timestamp_request::Request::Der(huge.clone())) };
                match tsa.timestamp(req).await {
                    Ok(_) => tally.add("grpc 1 MiB accepted"),
                    Err(e) => tally.add(format!("grpc 1 MiB {:?}", e.code())),
                }
                match TcpStream::connect(&host).await {
                    Ok(mut c) => match post_tsa(&mut c, &host, &huge).await {
                        Ok(code) => tally.add(format!("http 1 MiB {code}")),
                        Err(e) => tally.add(format!("http 1 MiB {e}")),
                    },
                    Err(_) => tally.add("http connect failed"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    for _ in 0..SLOWLORIS {
        let (stop, tally, host) = (stop.clone(), slowloris.clone(), d.http.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut c) = TcpStream::connect(&host).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let opened = Instant::now();
                let head = b"POST /tsa HTTP/1.1\r\nHost: x\r\nX-Slow: ";
                let mut i = 0;
                let closed = loop {
                    if stop.load(Ordering::Relaxed) {
                        break false;
                    }
                    if c.write_all(&head[i % head.len()..i % head.len() + 1]).await.is_err() {
                        break true;
                    }
                    i += 1;
                    let mut b = [0u8; 64];
                    if let Ok(r) = tokio::time::timeout(Duration::from_secs(1), c.read(&mut b)).await {
                        let _ = r;
                        break true;
                    }
                };
                if closed {
                    tally.add(format!("closed after {} s", opened.elapsed().as_secs()));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("abuse under way: {} idle connections held open by the abusers", held.load(Ordering::Relaxed));
    let cpu_before = (d.cpu_time(), cpu_time_of("self"));
    let during = phase(&d, &steady_channel, &csr, &tsq, secs).await;
    let cpu = (d.cpu_time() - cpu_before.0, cpu_time_of("self") - cpu_before.1);
    let held_at_end = held.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let mut during = during;
    during.print(&format!("during the abuse ({} s)", secs.as_secs()));
    println!(
        "  CPU in those {} s: daemon {:.1} s, abusers and this client {:.1} s (the machine has {} cores)",
        secs.as_secs(),
        cpu.0.as_secs_f64(),
        cpu.1.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("what the abusers were told:");
    println!("  idle connections held at the end: {held_at_end}");
    idle.print("idle connections");
    grpc_flood.print("gRPC flood (one client, 4 connections, 256 at once)");
    http_flood.print("HTTP flood (one address, 256 at once)");
    oversized.print("oversized requests");
    slowloris.print("slowloris");
    tokio::time::sleep(Duration::from_secs(2)).await;
    phase(&d, &steady_channel, &csr, &tsq, Duration::from_secs(5)).await.print("after the abuse (5 s)");
    println!("daemon peak RSS: {} MiB", d.peak_rss_kib() / 1024);
    // What the daemon warned of, by message (the fields after it differ line by line).
    let logged = Tally::default();
    for line in d.log().lines() {
        let Some((level, rest)) =
            ["WARN", "ERROR"].iter().find_map(|l| line.split_once(&format!(" {l} ")).map(|(_, r)| (l, r)))
        else {
            continue;
        };
        let message: String = rest.trim().split('=').next().unwrap_or("").chars().take(90).collect();
        let message = message.rsplit_once(' ').map_or(message.as_str(), |(m, _)| m).to_owned();
        logged.add(format!("{level} {message}"));
    }
    logged.print("daemon warnings");

    // Afterwards: the log verifies, the CRL is fresh, a restart succeeds.
    let (_, _, vkey) = d.http_get("/log/key");
    let key_file = dir.join("log.vkey");
    std::fs::write(&key_file, [&vkey[..], b"\n"].concat()).expect("key file");
    let verify = d.trustctl(&["log", "verify", "--key", key_file.to_str().unwrap()]);
    let verified = String::from_utf8_lossy(&verify.stdout);
    println!(
        "trustctl log verify: {}",
        if verify.status.success() {
            verified.lines().next().unwrap_or("").to_owned()
        } else {
            format!("FAILED: {}", String::from_utf8_lossy(&verify.stderr))
        }
    );
    let (code, _, crl) = d.http_get("/crl/issuing.crl");
    let crl_file = dir.join("issuing.crl");
    std::fs::write(&crl_file, &crl).expect("crl");
    let next = openssl(
        &dir,
        &["crl", "-inform", "DER", "-in", crl_file.to_str().unwrap(), "-noout", "-lastupdate", "-nextupdate"],
    );
    println!("CRL: HTTP {code}, {}", String::from_utf8_lossy(&next.stdout).trim().replace('\n', ", "));
    let (status, dir) = d.stop();
    let again = Daemon::start_in(dir);
    let (code, _, _) = again.http_get("/readyz");
    println!("stopped ({status}); restarted: /readyz {code}");
}
