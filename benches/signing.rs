//! Document-signing throughput and latency against a real `trustd dev` (release build): CAdES
//! B-B signatures over a digest at concurrency 1, 16 and 64, and B-T (a second HSM signature
//! for the time-stamp) at 64, beside the raw HSM signing rate of the document-signing key
//! measured in the same run; then a 1 GiB document streamed with SignStream, with the daemon's
//! peak memory before and after. Not a test: it asserts nothing about speed and prints figures.
//!
//!     cargo bench --bench signing [-- SECONDS]

mod common;

use common::*;
use std::time::{Duration, Instant};
use trustd::api::pb;
use trustd::api::pb::signing_client::SigningClient;

fn digest_request(level: pb::SignatureLevel) -> pb::SignRequest {
    pb::SignRequest {
        options: Some(pb::SignOptions { policy: String::new(), level: level.into(), detached: true }),
        content: Some(pb::sign_request::Content::Digest(pb::Digest {
            hash_algorithm: "sha256".into(),
            value: vec![7; 32],
        })),
    }
}

// One thread for the load, as `trustctl bench` (see there).
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let secs = Duration::from_secs(std::env::args().filter_map(|a| a.parse().ok()).next().unwrap_or(5));
    let d = start();
    std::env::set_var("SOFTHSM2_CONF", d.data_dir().join("softhsm2.conf"));
    let (raw1, raw2) = raw_hsm_rates(&d.data_dir(), "trustd-document-signer", secs).await;
    let raw = raw1.max(raw2);
    println!("raw HSM signing rate, document-signing key (ECDSA P-256, SoftHSM2): {raw1:.0}/s with 1 thread, {raw2:.0}/s with 2");
    println!("ratios below are to the higher of the two ({raw:.0}/s); B-T needs two signatures per request");
    report_header();

    let channel = d.channel().await;
    let levels = [(pb::SignatureLevel::BB, "sign B-B", &[1, 16, 64][..]), (pb::SignatureLevel::BT, "sign B-T", &[64])];
    for (level, name, concurrencies) in levels {
        for &c in concurrencies {
            let channel = channel.clone();
            let r = d
                .measure(load(c, secs, move || {
                    let mut client = SigningClient::new(channel.clone());
                    async move {
                        let r = client.sign(digest_request(level)).await.expect("rpc").into_inner();
                        assert!(!r.signature_der.is_empty());
                    }
                }))
                .await;
            report(name, c, &r, raw);
        }
    }
    raw_hsm_rates_after(&d.data_dir(), "trustd-document-signer", secs, (raw1, raw2)).await;

    // 1 GiB streamed in 1 MiB chunks: the daemon hashes as it goes, so its memory stays flat.
    let before = d.peak_rss_kib();
    let chunk: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let messages = (0..1024).map(move |i| pb::SignStreamRequest {
        options: (i == 0).then(|| pb::SignOptions { policy: String::new(), level: 0, detached: true }),
        chunk: chunk.clone(),
    });
    let t = Instant::now();
    let r = SigningClient::new(channel).sign_stream(tokio_stream::iter(messages)).await.expect("stream").into_inner();
    let elapsed = t.elapsed();
    assert!(!r.signature_der.is_empty());
    let after = d.peak_rss_kib();
    println!(
        "stream 1 GiB: {:.2} s ({:.0} MiB/s); daemon peak RSS {} MiB before, {} MiB after",
        elapsed.as_secs_f64(),
        1024.0 / elapsed.as_secs_f64(),
        before / 1024,
        after / 1024
    );
}
