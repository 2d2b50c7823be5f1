//! `trustctl bench` and the daemon's Diagnostics service on a real daemon: every workload runs
//! and is answered without an error, beside the HSM's bare rate of its key, the store disk's
//! sync latency and the daemon's CPU and memory; the diagnostics refuse what is out of range
//! and clients whose role does not allow them, and the daemon keeps serving. Figures are not
//! checked here (benchmarks are not tests); that every number is there and sane is.

mod common;

use common::*;
use tonic::Code;
use trustd::api::pb;
use trustd::api::pb::diagnostics_client::DiagnosticsClient;

fn bench(d: &Daemon, args: &[&str]) -> std::process::Output {
    let http = format!("http://{}", d.http);
    d.trustctl(&[&["bench", "--http", &http][..], args].concat())
}

#[test]
fn every_workload_is_measured_beside_the_hsm_rate_of_its_key() {
    let d = Daemon::start();
    let out = bench(&d, &["--json", "--duration", "1s", "--warmup", "200ms", "--concurrency", "1,4"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "trustctl bench: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");

    let raw = report["raw_hsm"].as_array().expect("raw_hsm");
    let keys: Vec<&str> = raw.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["issuing CA", "TSA", "document signer", "OCSP"]);
    for r in raw {
        assert_eq!(r["scheme"], "ecdsa-sha256", "{r}");
        assert!(r["per_second"].as_f64().unwrap() > 0.0 && r["concurrency"].as_u64().unwrap() >= 1, "{r}");
    }

    let rows = report["results"].as_array().expect("results");
    let names = ["issue", "tsa-grpc", "tsa-http", "sign-b-b", "sign-b-t", "ocsp-cached", "ocsp-nonce", "verify"];
    assert_eq!(rows.len(), names.len() * 2);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["workload"], names[i / 2], "{row}");
        assert_eq!(row["concurrency"], [1, 4][i % 2], "{row}");
        assert_eq!(row["errors"], 0, "{row}");
        assert!(row["ops"].as_u64().unwrap() > 0 && row["per_second"].as_f64().unwrap() > 0.0, "{row}");
        let (p50, p90, p99) =
            (row["p50_ms"].as_f64().unwrap(), row["p90_ms"].as_f64().unwrap(), row["p99_ms"].as_f64().unwrap());
        assert!(0.0 < p50 && p50 <= p90 && p90 <= p99, "{row}");
        assert!(row["seconds"].as_f64().unwrap() >= 1.0, "{row}");
        assert!(row["daemon_cpu_us_per_op"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["load_cpu_us_per_op"].as_f64().unwrap() > 0.0, "{row}");
        // Verify signs nothing: no key bounds it.
        assert_eq!(row.get("of_raw").is_some(), names[i / 2] != "verify", "{row}");
    }
    assert!(report["daemon_peak_rss_bytes"].as_u64().unwrap() > 10 << 20, "{report}");
    assert!(report["hsm_sessions"].as_u64().unwrap() >= 1, "{report}");
    let sync = &report["store_sync"];
    assert_eq!(sync["write_bytes"], 48 * 1024, "{report}");
    assert!(sync["back_to_back_us"].as_u64().unwrap() > 0 && sync["after_idle_us"].as_u64().unwrap() > 0, "{sync}");
    let data: Vec<_> = std::fs::read_dir(d.data_dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!data.iter().any(|n| n.to_string_lossy().contains("sync-measurement")), "scratch file left: {data:?}");

    // The certificates issued under load are stored and issued like any other.
    let list = d.trustctl(&["cert", "list", "--profile", "tls-server", "--status", "issued", "--limit", "10000"]);
    let issued = String::from_utf8_lossy(&list.stdout).lines().count() as u64;
    let measured: u64 = rows[..2].iter().map(|r| r["ops"].as_u64().unwrap()).sum();
    assert!(issued > measured, "{issued} issued, {measured} measured (warm-up and OCSP's certificate come on top)");
    // Each measurement used a service key: it is in the audit record.
    let log = d.log();
    assert!(log.contains("MeasureSigningRate") && log.contains("signatures over the measurement message"), "{log}");

    // The table for people.
    let out =
        bench(&d, &["--workload", "tsa-grpc,sign-b-b", "--concurrency", "2", "--duration", "300ms", "--warmup", "0s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("workload") && table.contains("\ntsa-grpc         2 "), "{table}");
    assert!(table.contains("\nsign-b-b         2 "), "{table}");
    assert!(table.contains("daemon: peak RSS "), "{table}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("raw HSM signing rate, TSA key (ecdsa-sha256)"));
}

#[test]
fn bad_arguments_are_refused_before_any_load() {
    let d = Daemon::start();
    for (args, says) in [
        (&["--concurrency", "0"][..], "--concurrency"),
        (&["--concurrency", "10001"][..], "--concurrency"),
        (&["--duration", "0s"][..], "--duration"),
        (&["--duration", "61min"][..], "--duration"),
        (&["--duration", "18446744073709551615s"][..], "--duration"),
        (&["--warmup", "2h"][..], "--warmup"),
        (&["--http", "https://127.0.0.1:1"][..], "--http"),
        (&["--workload", "everything"][..], "everything"),
        (&["--workload", "sign-bb"][..], "sign-b-b"),
        (&["--workload", "issue", "--duration", "300ms", "--profile", "no-such-profile"][..], "no-such-profile"),
    ] {
        let out = bench(&d, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn diagnostics_refuse_what_is_out_of_range_and_who_may_not_and_keep_serving() {
    let d = Daemon::start();
    let mut diag = DiagnosticsClient::new(d.channel().await);
    let measure = |key: pb::ServiceKey, duration_ms: u32, concurrency: u32| pb::MeasureSigningRateRequest {
        key: key.into(),
        duration_ms,
        concurrency,
    };
    let refused = [
        (measure(pb::ServiceKey::Unspecified, 1000, 0), "no service key"),
        (pb::MeasureSigningRateRequest { key: 99, duration_ms: 1000, concurrency: 0 }, "no service key"),
        (measure(pb::ServiceKey::Tsa, 0, 0), "duration"),
        (measure(pb::ServiceKey::Tsa, 99, 0), "duration"),
        (measure(pb::ServiceKey::Tsa, 10_001, 0), "duration"),
        (measure(pb::ServiceKey::Tsa, u32::MAX, 0), "duration"),
        (measure(pb::ServiceKey::Tsa, 1000, 257), "concurrency"),
        (measure(pb::ServiceKey::Tsa, 1000, u32::MAX), "concurrency"),
    ];
    for (req, says) in refused {
        let e = diag.measure_signing_rate(req).await.expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument, "{req:?}: {e:?}");
        assert!(e.message().contains(says), "{req:?}: {e:?}");
    }

    // One at a time: a second measurement while one runs is refused, the first completes.
    let first = tokio::spawn({
        let mut diag = diag.clone();
        async move { diag.measure_signing_rate(measure(pb::ServiceKey::Log, 1500, 1)).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let e = diag.measure_signing_rate(measure(pb::ServiceKey::Tsa, 100, 1)).await.expect_err("busy");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    let r = first.await.unwrap().expect("the first measurement").into_inner();
    assert_eq!((r.scheme.as_str(), r.concurrency), ("ed25519", 1));
    assert!(r.signatures > 0 && r.elapsed_us >= 1_500_000, "{r:?}");

    let stats = diag.get_process_stats(pb::GetProcessStatsRequest {}).await.unwrap().into_inner();
    assert!(stats.peak_rss_bytes >= stats.rss_bytes && stats.rss_bytes > 0, "{stats:?}");
    assert!(stats.cpu_time_us > 0 && stats.hsm_sessions >= 1, "{stats:?}");

    // A client whose role does not list Diagnostics is refused, and trustctl bench says what to do.
    let portal = credential(&d, "portal");
    let e = DiagnosticsClient::new(channel_as(&d, &portal).await)
        .get_process_stats(pb::GetProcessStatsRequest {})
        .await
        .expect_err("not the portal's");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let (cert, key) = (portal.0.to_str().unwrap(), portal.1.to_str().unwrap());
    let ca = d.credentials().join("ca.crt");
    let as_portal = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_trustctl"))
            .args(["--server", &d.grpc, "--client-cert", cert, "--client-key", key, "--cacert", ca.to_str().unwrap()])
            .args(["bench", "--duration", "200ms", "--warmup", "0s"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = as_portal(&["--workload", "tsa-grpc", "--concurrency", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("PermissionDenied") && stderr.contains("--no-raw"), "{stderr}");
    // Without diagnostics, and over HTTP right after gRPC load from the same client: 32 HTTP
    // clients are not held to the daemon's shared per-client limit (16) by the gRPC rows. (The
    // operator's calls above must be forgotten first: the daemon counts a client as served for
    // one to two seconds, and would hold the portal's 32 gRPC clients to that share too.)
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let http = format!("http://{}", d.http);
    let out =
        as_portal(&["--no-raw", "--json", "--workload", "tsa-grpc,tsa-http", "--concurrency", "32", "--http", &http]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["raw_hsm"].as_array().unwrap().len(), 0);
    assert!(report.get("store_sync").is_none(), "--no-raw measures nothing: {report}");
    for row in report["results"].as_array().unwrap() {
        assert_eq!(row["errors"], 0, "{row}");
        assert!(row.get("of_raw").is_none() && row["ops"].as_u64().unwrap() > 0, "{row}");
    }

    // Still serving.
    let r = diag.measure_signing_rate(measure(pb::ServiceKey::IssuingCa, 100, 2)).await.unwrap().into_inner();
    assert!(r.signatures > 0 && r.concurrency == 2, "{r:?}");
}
