//! `[limits]` on a real daemon: a client past its requests in progress gets RESOURCE_EXHAUSTED
//! while another is served; a SignStream that stops sending is abandoned and records nothing;
//! a listener past its connections sheds
//! new ones (plain HTTP with 503 and Retry-After) while established clients keep working; slow
//! and idle HTTP connections are closed; HTTP requests are limited per address and by deadline;
//! probes and scrapes hold no client to its share.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tonic::Code;
use trustd::api::pb;
use trustd::api::pb::certificate_authority_client::CertificateAuthorityClient;
use trustd::api::pb::signing_client::SigningClient;

const LIMITS: &[&str] = &[
    "--limit",
    "max_connections=4",
    "--limit",
    "max_requests_per_client=2",
    "--limit",
    "stream_idle_timeout=2s",
    "--limit",
    "header_timeout=1s",
    "--limit",
    "request_deadline=3s",
];

fn start() -> Daemon {
    Daemon::start_with(tempfile::tempdir().unwrap(), LIMITS)
}

/// A SignStream that sends its options and one chunk, then nothing while the sender lives.
fn held_stream(
    client: &SigningClient<tonic::transport::Channel>,
) -> (
    tokio::sync::mpsc::Sender<pb::SignStreamRequest>,
    tokio::task::JoinHandle<Result<tonic::Response<pb::SignResponse>, tonic::Status>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let first = pb::SignStreamRequest {
        options: Some(pb::SignOptions { policy: "default".into(), detached: true, ..Default::default() }),
        chunk: b"the first part of a document".to_vec(),
    };
    tx.try_send(first).unwrap();
    let request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut client = client.clone();
    (tx, tokio::spawn(async move { client.sign_stream(request).await }))
}

async fn signatures(d: &Daemon) -> u64 {
    use trustd::store::Store;
    let store = trustd::store::SqliteStore::open(&d.data_dir().join("trustd.db")).await.unwrap();
    store.count_signatures().await.unwrap()
}

#[tokio::test]
async fn a_client_past_its_requests_is_refused_and_abandoned_streams_record_nothing() {
    let d = start();
    let operator = CertificateAuthorityClient::new(d.channel().await);
    let portal = channel_as(&d, &credential(&d, "portal")).await;
    let signing = SigningClient::new(portal.clone());
    let mut portal_ca = CertificateAuthorityClient::new(portal);

    // Two streams hold the portal's two places.
    let held: Vec<_> = (0..2).map(|_| held_stream(&signing)).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = portal_ca.get_ca_chain(pb::GetCaChainRequest::default()).await.expect_err("past the client's limit");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("this client has 2 requests in progress"), "{}", e.message());
    // Another client is served meanwhile.
    operator.clone().get_ca_chain(pb::GetCaChainRequest::default()).await.expect("the operator is served");

    // The streams send nothing more: abandoned after stream_idle_timeout, nothing signed.
    let started = Instant::now();
    for (_tx, call) in held {
        let e = call.await.unwrap().expect_err("abandoned");
        assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
        assert!(e.message().contains("no chunk for 2s"), "{}", e.message());
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    portal_ca.get_ca_chain(pb::GetCaChainRequest::default()).await.expect("the places are free again");

    assert_eq!(signatures(&d).await, 0, "nothing recorded for abandoned streams");

    // A stream that finishes is signed as before.
    let (tx, call) = held_stream(&signing);
    drop(tx);
    assert!(!call.await.unwrap().expect("signed").into_inner().signature_der.is_empty());
    assert_eq!(signatures(&d).await, 1);
}

/// A GET of `path` on `addr` from source address `from`: the whole response as text (a binary
/// body lossily).
fn get_from(from: IpAddr, addr: &str, path: &str) -> String {
    let addr: SocketAddr = addr.parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(from, 0).into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    read_all(&mut s)
}

/// A POST /tsa that announces a body and never sends it: a request in progress until its
/// deadline.
fn slow_post(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head =
        "POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\nContent-Length: 100\r\n\r\n";
    s.write_all(head.as_bytes()).unwrap();
    s
}

fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn full_listeners_shed_new_connections_and_slow_http_clients_are_bounded() {
    let d = start();
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    let other: IpAddr = "127.0.0.2".parse().unwrap();

    // gRPC: one established client, three connections that never start TLS fill the four places.
    let mut operator = CertificateAuthorityClient::new(d.channel().await);
    let grpc_addr = d.grpc.trim_start_matches("https://").to_owned();
    let silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&grpc_addr).unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = d.credentials();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(c.join("ca.crt")).unwrap()))
        .identity(tonic::transport::Identity::from_pem(
            std::fs::read(c.join("operator.crt")).unwrap(),
            std::fs::read(c.join("operator.key")).unwrap(),
        ));
    let endpoint = tonic::transport::Channel::from_shared(d.grpc.clone()).unwrap().tls_config(tls).unwrap();
    assert!(endpoint.connect().await.is_err(), "a fifth connection is shed");
    operator.get_ca_chain(pb::GetCaChainRequest::default()).await.expect("the established client is served");
    drop(silent);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = endpoint.connect().await.expect("places free once the silent connections close");
    CertificateAuthorityClient::new(fresh).get_ca_chain(pb::GetCaChainRequest::default()).await.unwrap();

    // Plain HTTP: four idle connections fill the listener; the next is told 503 with Retry-After.
    let mut idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&d.http).unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let shed = get_from(local, &d.http, "/healthz");
    assert!(shed.starts_with("HTTP/1.1 503") && shed.contains("Retry-After: 1"), "{shed}");
    // The idle ones send no request within header_timeout: closed, and their places free.
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(read_all(s), "", "an idle connection is closed without a reply");
    }
    assert!(get_from(local, &d.http, "/healthz").starts_with("HTTP/1.1 200"));

    // Two requests in progress from 127.0.0.1 (bodies that never come) hold its two places:
    // a third from it gets 503, one from 127.0.0.2 is served; health checks, counted apart,
    // are answered from either.
    let mut slow: Vec<TcpStream> = (0..2).map(|_| slow_post(&d.http)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = get_from(local, &d.http, "/ca/root.crt");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after: 1") && refused.contains("this client has 2 requests"), "{refused}");
    let served = get_from(other, &d.http, "/ca/root.crt");
    assert!(served.starts_with("HTTP/1.1 200"), "another address is served: {served}");
    assert!(get_from(local, &d.http, "/healthz").starts_with("HTTP/1.1 200"), "a health check is served");
    // Past request_deadline the slow requests are answered 503 and nothing is time-stamped.
    for s in &mut slow {
        let reply = read_all(s);
        assert!(reply.starts_with("HTTP/1.1 503") && reply.contains("deadline of 3s"), "{reply}");
    }
    assert!(get_from(local, &d.http, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(d.log().contains("connection limit reached"), "the shedding is logged");
}

/// Health checks, readiness probes, metrics scrapes and process statistics hold no client to
/// its share (`max_requests_per_client_shared`): a client alone keeps its whole limit while
/// they poll, from its own address too; work from another client holds it to its share.
#[tokio::test]
async fn probes_and_scrapes_hold_no_client_to_its_share_and_work_from_another_does() {
    use trustd::api::pb::diagnostics_client::DiagnosticsClient;
    let limits = ["max_requests_per_client=4", "max_requests_per_client_shared=2", "stream_idle_timeout=60s"];
    let args: Vec<&str> = limits.iter().flat_map(|l| ["--limit", l]).collect();
    let d = Daemon::start_with(tempfile::tempdir().unwrap(), &args);
    let operator = d.channel().await;
    let portal = channel_as(&d, &credential(&d, "portal")).await;
    let signing = SigningClient::new(portal.clone());
    let mut portal_ca = CertificateAuthorityClient::new(portal);

    // The portal holds its share in two streams, then probes come from everywhere. The
    // operator made the portal's credential: a client counts as served for up to two seconds.
    let held: Vec<_> = (0..2).map(|_| held_stream(&signing)).collect();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let reply = get_from(local, &d.http, path);
        assert!(reply.starts_with("HTTP/1.1 200"), "{path}: {reply}");
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(operator.clone());
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.expect("health");
    DiagnosticsClient::new(operator.clone()).get_process_stats(pb::GetProcessStatsRequest {}).await.expect("stats");
    // Still the only client being served: requests beside its two streams get in.
    for _ in 0..2 {
        portal_ca.get_ca_chain(pb::GetCaChainRequest::default()).await.expect("the portal is alone");
    }

    // Work from the operator: the portal, with two in progress, is held to its share.
    CertificateAuthorityClient::new(operator).get_ca_chain(pb::GetCaChainRequest::default()).await.unwrap();
    let e = portal_ca.get_ca_chain(pb::GetCaChainRequest::default()).await.expect_err("held to its share");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("its share while other clients are served"), "{}", e.message());

    // The streams end and are signed.
    for (tx, call) in held {
        drop(tx);
        assert!(!call.await.unwrap().expect("signed").into_inner().signature_der.is_empty());
    }
}

#[test]
fn bad_limits_stop_start_up_with_the_field_named() {
    for (limit, says) in [
        ("max_connections=0", "limits.max_connections: must be at least 1"),
        ("request_deadline=10ms", "limits.request_deadline: must be between 100ms and 24h"),
        ("no_such_limit=1", "no_such_limit"),
        ("max_requests", "is not KEY=VALUE"),
        ("max_requests=-1", "max_requests"),
        ("header_timeout=soon", "header_timeout"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_trustd"))
            .args(["dev", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--limit", limit])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{limit}: refused");
        assert!(err.contains(says), "{limit}: {err}");
        assert!(!dir.path().join("data").exists(), "{limit}: nothing created");
    }
}
