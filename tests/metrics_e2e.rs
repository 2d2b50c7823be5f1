//! `GET /metrics` on a real daemon, read by the Prometheus project's own OpenMetrics parser
//! (`tests/py/parse_metrics.py`, prometheus-client): requests by method or route and outcome,
//! refusals included, HSM signatures, readiness, the log, the CRLs' freshness and the seconds
//! until each service certificate expires.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use tonic::Code;
use trustd::api::pb;
use trustd::api::pb::time_stamping_client::TimeStampingClient;

/// The samples of `text`, parsed by prometheus-client: (name, labels, value).
fn parse(text: &[u8]) -> Vec<(String, serde_json::Map<String, serde_json::Value>, f64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/parse_metrics.py");
    let mut child = Command::new(venv_bin("python"))
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "prometheus-client refused it: {}", String::from_utf8_lossy(&out.stderr));
    let samples: Vec<(String, serde_json::Map<String, serde_json::Value>, f64)> =
        serde_json::from_slice(&out.stdout).unwrap();
    samples
}

fn value(
    samples: &[(String, serde_json::Map<String, serde_json::Value>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).and_then(|x| x.as_str()) == Some(*v)))
        .map(|(_, _, v)| *v)
}

fn timestamp(digest: Vec<u8>) -> pb::TimestampRequest {
    pb::TimestampRequest {
        request: Some(pb::timestamp_request::Request::Digest(pb::DigestRequest {
            hash_algorithm: "sha256".into(),
            digest,
            nonce: vec![1, 2, 3],
            cert_req: false,
            policy: String::new(),
        })),
    }
}

#[tokio::test]
async fn prometheus_reads_requests_refusals_hsm_readiness_and_expiry() {
    let d = Daemon::start();
    let channel = d.channel().await;
    let mut tsa = TimeStampingClient::new(channel.clone());
    for _ in 0..3 {
        let r = tsa.timestamp(timestamp(vec![7; 32])).await.unwrap().into_inner();
        assert_eq!(r.status(), pb::TimestampStatus::Granted, "{}", r.reason);
    }
    // A malformed call, and one the caller's role does not allow.
    let e = tsa.timestamp(pb::TimestampRequest { request: None }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let auditor = channel_as(&d, &credential(&d, "auditor")).await;
    let e = TimeStampingClient::new(auditor).timestamp(timestamp(vec![7; 32])).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Over HTTP: a time-stamp query of the wrong media type.
    let (code, _, _) = d.http_post("/tsa", "text/plain", b"x");
    assert_eq!(code, 415);

    let (code, head, body) = d.http_get("/metrics");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert!(head.contains("content-type: application/openmetrics-text; version=1.0.0"), "{head}");
    let s = parse(&body);
    let rpc = "TimeStamping/Timestamp";
    assert_eq!(value(&s, "trustd_requests_total", &[("api", "grpc"), ("method", rpc), ("code", "Ok")]), Some(3.0));
    assert_eq!(value(&s, "trustd_requests_total", &[("method", rpc), ("code", "InvalidArgument")]), Some(1.0));
    assert_eq!(value(&s, "trustd_requests_total", &[("method", rpc), ("code", "PermissionDenied")]), Some(1.0));
    assert_eq!(value(&s, "trustd_request_duration_seconds_count", &[("api", "grpc"), ("method", rpc)]), Some(5.0));
    assert_eq!(
        value(&s, "trustd_requests_total", &[("api", "http"), ("method", "POST /tsa"), ("code", "415")]),
        Some(1.0)
    );
    // Every token, every CRL and checkpoint, the TLS handshakes: each an HSM signature.
    assert!(value(&s, "trustd_hsm_operations_total", &[("result", "ok")]).unwrap() >= 3.0);
    assert!(value(&s, "trustd_hsm_operation_duration_seconds_count", &[]).unwrap() >= 3.0);
    assert_eq!(value(&s, "trustd_ready", &[("dependency", "hsm")]), Some(1.0));
    assert_eq!(value(&s, "trustd_ready", &[("dependency", "store")]), Some(1.0));
    assert_eq!(value(&s, "trustd_replica_role", &[("role", "primary")]), Some(1.0));
    assert_eq!(value(&s, "trustd_replica_role", &[("role", "standby")]), Some(0.0));
    assert_eq!(value(&s, "trustd_lease_held", &[("lease", "publisher")]), Some(1.0), "a lone daemon publishes");
    let probe = value(&s, "trustd_store_probe_seconds", &[]).unwrap();
    assert!(probe > 0.0 && probe < 10.0, "{probe}");
    assert!(value(&s, "trustd_log_tree_size", &[]).unwrap() >= 1.0);
    assert!(value(&s, "trustd_log_entries_awaiting_checkpoint", &[]).is_some());
    assert!(value(&s, "trustd_log_checkpoint_age_seconds", &[]).is_some_and(|age| (0.0..600.0).contains(&age)));
    // The log's writer wrote each token with its entry, in group-commit batches.
    let log = [("writer", "log")];
    assert!(value(&s, "trustd_store_batch_records_sum", &log).unwrap() >= 3.0);
    let batches = value(&s, "trustd_store_batch_records_count", &log).unwrap();
    assert!(batches >= 1.0);
    // Each timed once done (the last perhaps not yet).
    let timed = value(&s, "trustd_store_batch_duration_seconds_count", &log).unwrap();
    assert!(timed == batches || timed == batches - 1.0, "{timed} of {batches}");
    assert!(value(&s, "trustd_store_queue_depth", &log).is_some());
    let sessions = |state| value(&s, "trustd_hsm_sessions", &[("state", state)]).unwrap();
    assert!(sessions("open") >= 1.0 && sessions("in_use") <= sessions("open") && sessions("max") >= sessions("open"));
    for ca in ["issuing", "root"] {
        let age = value(&s, "trustd_crl_age_seconds", &[("ca", ca)]).unwrap_or_else(|| panic!("{ca}"));
        let next = value(&s, "trustd_crl_next_update_seconds", &[("ca", ca)]).unwrap();
        assert!((0.0..600.0).contains(&age) && next > 3600.0, "{ca}: age {age}, next update in {next}");
    }
    for role in ["root", "issuing", "tsa", "ocsp", "signing:default"] {
        let left =
            value(&s, "trustd_certificate_expiry_seconds", &[("role", role)]).unwrap_or_else(|| panic!("{role}"));
        assert!(left > 86_400.0, "{role}: {left}");
    }
    // Paths nobody serves do not become labels.
    let (code, _, _) = d.http_get("/no/such/route");
    assert_eq!(code, 404);
    let (_, _, body) = d.http_get("/metrics");
    let s = parse(&body);
    assert!(s.iter().all(|(_, l, _)| l.get("method").and_then(|m| m.as_str()).is_none_or(|m| !m.contains("no/such"))));
    assert_eq!(
        value(&s, "trustd_requests_total", &[("api", "http"), ("method", "GET /metrics"), ("code", "200")]),
        Some(1.0)
    );
}
