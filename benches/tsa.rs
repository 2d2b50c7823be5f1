//! TSA throughput and latency against a real `trustd dev` (release build), over gRPC and over
//! HTTP, at concurrency 1, 16 and 64, beside the raw HSM signing rate of the TSA key measured in
//! the same run. Not a test: it asserts nothing and prints figures.
//!
//!     cargo bench --bench tsa [-- SECONDS]
//!
//! The daemon and this load generator share the machine, as they would share a small VM.

mod common;

use common::*;
use std::time::Duration;
use trustd::api::pb;
use trustd::api::pb::time_stamping_client::TimeStampingClient;

// One thread for the load, as `trustctl bench` (see there).
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let secs = Duration::from_secs(std::env::args().filter_map(|a| a.parse().ok()).next().unwrap_or(5));
    let d = start();
    // SoftHSM reads its config from the environment; the bench signs with the daemon's token.
    std::env::set_var("SOFTHSM2_CONF", d.data_dir().join("softhsm2.conf"));
    let (raw1, raw2) = raw_hsm_rates(&d.data_dir(), "trustd-tsa", secs).await;
    let raw = raw1.max(raw2);
    println!("raw HSM signing rate, TSA key (ECDSA P-256, SoftHSM2): {raw1:.0}/s with 1 thread, {raw2:.0}/s with 2");
    println!("ratios below are to the higher of the two ({raw:.0}/s), the most this machine's token signed");
    report_header();

    let req = trustd::tsa::request_from_digest("sha256", &[7; 32], &[1, 2, 3, 4, 5, 6, 7, 8], true, "").expect("req");
    let der = der::Encode::to_der(&req).expect("DER request");
    let channel = d.channel().await;
    for c in [1, 16, 64] {
        let (channel, der) = (channel.clone(), der.clone());
        let r = d
            .measure(load(c, secs, move || {
                let (mut client, der) = (TimeStampingClient::new(channel.clone()), der.clone());
                async move {
                    let r = client
                        .timestamp(pb::TimestampRequest { request: Some(pb::timestamp_request::Request::Der(der)) })
                        .await
                        .expect("rpc")
                        .into_inner();
                    assert_eq!(r.status(), pb::TimestampStatus::Granted, "{}", r.reason);
                }
            }))
            .await;
        report("tsa grpc", c, &r, raw);
    }
    for c in [1, 16, 64] {
        let pool = http_pool(&d.http, c).await;
        let der = der.clone();
        let r = d
            .measure(load(c, secs, move || {
                let conn = pool.lock().expect("pool").pop().expect("a connection per task");
                let (pool, der) = (pool.clone(), der.clone());
                async move {
                    conn.lock().await.post("/tsa", "application/timestamp-query", &der).await;
                    pool.lock().expect("pool").push(conn);
                }
            }))
            .await;
        report("tsa http", c, &r, raw);
    }
    raw_hsm_rates_after(&d.data_dir(), "trustd-tsa", secs, (raw1, raw2)).await;
}
