//! The issued-certificate log end to end (issue #6), against a real `trustd dev`: every issued
//! certificate is in the log, proofs verify with the log core's verify functions (not the
//! daemon's word), checkpoints are consistent, bad requests get the right codes, the HTTP
//! tiles are enough for an auditor, and `trustctl log verify` names an entry changed, reordered
//! or deleted directly in SQLite.

mod common;

use common::*;
use sha2::Digest;
use std::time::{Duration, Instant};
use tonic::Code;
use trustd::api::pb;
use trustd::api::pb::signing_client::SigningClient;
use trustd::api::pb::time_stamping_client::TimeStampingClient;
use trustd::api::pb::transparency_log_client::TransparencyLogClient;
use trustd::log::tiles::{parse_entry_bundle, parse_hash_tile};
use trustd::log::tree::{leaf_hash, verify_consistency, verify_inclusion};
use trustd::log::{
    open_checkpoint, Audit, AuditEntries, Checkpoint, ConsistencyProof, Hash, InclusionProof, LeafIndex, LogEntry,
    LogPublicKey, Tile, TreeSize,
};

type LogClient = TransparencyLogClient<tonic::transport::Channel>;

async fn log_client(d: &Daemon) -> LogClient {
    TransparencyLogClient::new(d.channel().await)
}

/// Issues `n` tls-server certificates from one CSR; returns their DER.
async fn issue(d: &Daemon, n: usize) -> Vec<Vec<u8>> {
    let csr = openssl_csr(d.dir.path(), "web", P256, "/CN=www.example.com", Some("DNS:www.example.com"));
    let csr = std::fs::read(csr).unwrap();
    let mut client = d.client().await;
    let mut out = Vec::new();
    for _ in 0..n {
        let r = client
            .issue_certificate(pb::IssueCertificateRequest {
                profile: "tls-server".into(),
                csr: csr.clone(),
                validity_seconds: 0,
            })
            .await
            .unwrap()
            .into_inner();
        out.push(r.certificate_der);
    }
    out
}

/// The latest checkpoint once it covers at least `size` entries, verified with the log's key.
/// Issuance returns once its entry is sequenced; the checkpoint follows within a second.
async fn checkpoint_of_at_least(log: &mut LogClient, key: &LogPublicKey, size: u64) -> (Checkpoint, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = log.get_checkpoint(pb::GetCheckpointRequest::default()).await.unwrap().into_inner();
        let cp = open_checkpoint(&r.signed_note, key.name(), key).expect("checkpoint signed by the log key");
        assert_eq!((cp.size().0, cp.root().0.to_vec()), (r.tree_size, r.root_hash.clone()));
        if cp.size().0 >= size {
            return (cp, r.signed_note);
        }
        assert!(Instant::now() < deadline, "no checkpoint of size {size} within 5 s (latest {})", cp.size());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn entries(log: &mut LogClient, start: u64, end: u64) -> Vec<Vec<u8>> {
    let r =
        log.get_entries(pb::GetEntriesRequest { start, end, include_leaf_hashes: false }).await.unwrap().into_inner();
    assert!(r.entries.iter().enumerate().all(|(i, e)| e.index == start + i as u64));
    r.entries.into_iter().map(|e| e.entry).collect()
}

fn hashes(v: Vec<Vec<u8>>) -> Vec<Hash> {
    v.iter().map(|h| Hash::from_slice(h).unwrap()).collect()
}

async fn code_of<T>(r: impl std::future::Future<Output = Result<T, tonic::Status>>) -> Code {
    match r.await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test]
async fn every_issued_certificate_has_a_verifying_inclusion_proof_and_checkpoints_are_consistent() {
    let d = Daemon::start();
    let mut log = log_client(&d).await;
    let vkey = log.get_checkpoint(pb::GetCheckpointRequest::default()).await.unwrap().into_inner().verifier_key;
    let (code, _, body) = d.http_get("/log/key");
    assert_eq!((code, String::from_utf8(body).unwrap().trim()), (200, vkey.as_str()));
    let key = LogPublicKey::from_vkey(&vkey).unwrap();
    assert_eq!(key.name(), "pki.example.com/log", "origin derived from the public URL");

    // The key ceremony's service certificates are logged at start-up, before `ready`.
    let (cp0, _) = checkpoint_of_at_least(&mut log, &key, 0).await;
    let at_start = entries(&mut log, 0, cp0.size().0).await;
    let access = std::fs::read(d.data_dir().join("policies/access.toml")).unwrap();
    let kinds: Vec<String> = at_start
        .iter()
        .map(|e| match LogEntry::decode(e).unwrap() {
            LogEntry::CertificateIssued(c) => c.profile,
            LogEntry::PolicyChange(p) => {
                assert_eq!(p.sha256, <[u8; 32]>::from(sha2::Sha256::digest(&access)), "the access policy in force");
                format!("policy:{}", p.file)
            }
            LogEntry::CeremonyEvent(k) => format!("key:{}", k.role),
            other => panic!("unexpected entry {other:?}"),
        })
        .collect();
    // Then every key the daemon serves with, the access policy in force, and what the daemon
    // issues itself at start: its TLS server certificate and the dev operator credential.
    let keys = ["root", "issuing", "tsa", "document-signer", "ocsp", "log", "tls"].map(|k| format!("key:{k}"));
    let mut want = vec!["ceremony:tsa".to_owned(), "ceremony:document-signer".into(), "ceremony:ocsp".into()];
    want.extend(keys);
    want.extend(["policy:access.toml".to_owned(), "internal-tls-server".into(), "service-client".into()]);
    assert_eq!(kinds, want);

    let first = issue(&d, 4).await;
    // Asked for a fresh checkpoint, the log signs one that covers what was just issued, at once.
    let fresh = log.get_checkpoint(pb::GetCheckpointRequest { fresh: true }).await.unwrap().into_inner();
    assert!(fresh.tree_size >= cp0.size().0 + 4, "{} < {}", fresh.tree_size, cp0.size().0 + 4);
    let (cp1, _) = checkpoint_of_at_least(&mut log, &key, cp0.size().0 + 4).await;
    let second = issue(&d, 3).await;
    let (cp2, note2) = checkpoint_of_at_least(&mut log, &key, cp1.size().0 + 3).await;

    let all = entries(&mut log, 0, cp2.size().0).await;
    assert_eq!(all.len() as u64, cp2.size().0);
    for der in first.iter().chain(&second) {
        let (index, entry) = all
            .iter()
            .enumerate()
            .find(
                |(_, e)| matches!(LogEntry::decode(e), Ok(LogEntry::CertificateIssued(c)) if &c.certificate_der == der),
            )
            .expect("every issued certificate is in the log");
        let LogEntry::CertificateIssued(c) = LogEntry::decode(entry).unwrap() else { unreachable!() };
        assert_eq!((c.profile.as_str(), c.issuer.as_str()), ("tls-server", "issuing"));
        assert_eq!(c.requester, "operator", "the client's configured name, never its address");
        for cp in [&cp1, &cp2].into_iter().filter(|cp| (index as u64) < cp.size().0) {
            let proof = log
                .get_inclusion_proof(pb::GetInclusionProofRequest { index: index as u64, tree_size: cp.size().0 })
                .await
                .unwrap()
                .into_inner();
            verify_inclusion(
                &leaf_hash(entry),
                LeafIndex(index as u64),
                cp.size(),
                &cp.root(),
                &InclusionProof(hashes(proof.hashes)),
            )
            .unwrap_or_else(|e| panic!("entry {index} in tree {}: {e}", cp.size()));
        }
    }
    for (a, b) in [(&cp0, &cp1), (&cp1, &cp2), (&cp0, &cp2)] {
        let proof = log
            .get_consistency_proof(pb::GetConsistencyProofRequest { first: a.size().0, second: b.size().0 })
            .await
            .unwrap()
            .into_inner();
        verify_consistency(a.size(), &a.root(), b.size(), &b.root(), &ConsistencyProof(hashes(proof.hashes)))
            .unwrap_or_else(|e| panic!("{} → {}: {e}", a.size(), b.size()));
    }

    // Bad requests: clear codes, and the daemon keeps serving.
    let n = cp2.size().0;
    let inclusion = |index, tree_size| pb::GetInclusionProofRequest { index, tree_size };
    let consistency = |first, second| pb::GetConsistencyProofRequest { first, second };
    let range = |start, end| pb::GetEntriesRequest { start, end, include_leaf_hashes: true };
    let mut l = log.clone();
    assert_eq!(code_of(l.get_inclusion_proof(inclusion(0, n + 1))).await, Code::OutOfRange);
    assert_eq!(code_of(l.get_inclusion_proof(inclusion(0, u64::MAX))).await, Code::OutOfRange);
    assert_eq!(code_of(l.get_inclusion_proof(inclusion(n, n))).await, Code::InvalidArgument);
    assert_eq!(code_of(l.get_inclusion_proof(inclusion(0, 0))).await, Code::InvalidArgument);
    assert_eq!(code_of(l.get_consistency_proof(consistency(3, 2))).await, Code::InvalidArgument);
    assert_eq!(code_of(l.get_consistency_proof(consistency(0, n))).await, Code::InvalidArgument);
    assert_eq!(code_of(l.get_consistency_proof(consistency(1, n + 1))).await, Code::OutOfRange);
    assert_eq!(code_of(l.get_entries(range(5, 2))).await, Code::InvalidArgument);
    assert_eq!(code_of(l.get_entries(range(2, 2))).await, Code::InvalidArgument);
    assert_eq!(code_of(l.get_entries(range(0, u64::MAX))).await, Code::OutOfRange);
    assert_eq!(code_of(l.get_entries(range(u64::MAX - 1, u64::MAX))).await, Code::OutOfRange);
    let page = l.get_entries(range(1, n)).await.unwrap().into_inner();
    assert_eq!((page.entries.len() as u64, page.leaf_hashes.len() as u64), (n - 1, n - 1));

    // An auditor with nothing but HTTP: the checkpoint, the entry bundle and the level-0 tile
    // make the signed tree (the log core's audit over what plain GETs returned).
    let (code, head, body) = d.http_get("/log/checkpoint");
    assert_eq!(code, 200);
    assert!(head.to_ascii_lowercase().contains("cache-control: no-store"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain"), "{head}");
    let (http_cp, http_note) = (open_checkpoint(&body, key.name(), &key).unwrap(), body);
    assert!(http_cp.size() >= cp2.size());
    let w = http_cp.size().0;
    assert!(w < 256, "one partial tile holds this test's tree");
    let bundle_path = format!("tile/entries/000.p/{w}");
    let (code, head, bundle) = d.http_get(&format!("/log/{bundle_path}"));
    assert_eq!(code, 200, "{head}");
    assert!(head.contains("max-age=60") && !head.contains("immutable"), "partial tiles are short-lived: {head}");
    let tile = Tile::parse(&bundle_path).unwrap();
    let http_entries: Vec<Vec<u8>> =
        parse_entry_bundle(&tile, &bundle).unwrap().into_iter().map(<[u8]>::to_vec).collect();
    assert_eq!(http_entries[..n as usize], all[..]);
    let (code, _, leaves) = d.http_get(&format!("/log/tile/0/000.p/{w}"));
    assert_eq!(code, 200);
    let leaves = parse_hash_tile(&Tile::parse(&format!("tile/0/000.p/{w}")).unwrap(), &leaves).unwrap();
    let report = Audit {
        origin: key.name(),
        key: &key,
        checkpoint: &http_note,
        trusted: None,
        entries: AuditEntries::All(&http_entries),
        published_leaves: Some(&leaves),
    }
    .run()
    .expect("the HTTP read path alone verifies");
    let by_profile = &report.summary.certificates_by_profile;
    assert_eq!(by_profile.get("tls-server"), Some(&7));
    assert_eq!(by_profile.get("internal-tls-server"), Some(&1), "the daemon's own");
    // The gRPC checkpoint and the HTTP one are the same note once they have the same size.
    if http_cp.size() == cp2.size() {
        assert_eq!(http_note, note2);
    }

    for bad in [
        format!("/log/tile/0/000.p/{}", w + 1),
        format!("/log/tile/entries/000.p/{}", w + 1),
        "/log/tile/0/000".into(),
        "/log/tile/0/001.p/1".into(),
        "/log/tile/1/000.p/1".into(),
        "/log/tile/entries/000.p/0".into(),
        "/log/tile/0/000.p/0256".into(),
        "/log/tile/0/0.p/1".into(),
        "/log/tile/64/000.p/1".into(),
        "/log/tile/x/y".into(),
        "/log/tile/".into(),
        "/log/tile/8/x999/x999/x999/x999/x999/x999/999".into(),
        "/log/nothing".into(),
    ] {
        let (code, _, _) = d.http_get(&bad);
        assert_eq!(code, 404, "{bad}");
    }
    assert_eq!(code_of(log.get_checkpoint(pb::GetCheckpointRequest::default())).await, Code::Ok, "still serving");
}

fn trustctl_fails(d: &Daemon, args: &[&str]) -> String {
    let out = d.trustctl(args);
    assert!(!out.status.success(), "trustctl {args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

#[tokio::test]
async fn trustctl_verifies_incrementally_and_names_the_entry_changed_reordered_or_deleted_in_sqlite() {
    let d = Daemon::start();
    let (_, _, vkey) = d.http_get("/log/key");
    let vkey = String::from_utf8(vkey).unwrap().trim().to_owned();
    let key_file = d.dir.path().join("log.vkey");
    std::fs::write(&key_file, format!("{vkey}\n")).unwrap();
    let state = d.dir.path().join("state.json");
    let state_arg = state.to_str().unwrap();

    // Without a pinned key, verify refuses rather than trusting the log's own.
    assert!(trustctl_fails(&d, &["log", "verify"]).contains("--key"));

    let issued = issue(&d, 3).await;
    let serial = x509_serial_hex(&issued[0]);
    trustctl_ok(&d, &["revoke", "--serial", &serial, "--reason", "keyCompromise"]);
    let mut log = log_client(&d).await;
    let key = LogPublicKey::from_vkey(&vkey).unwrap();
    // The ceremony's three certificates and seven keys, the access policy, the daemon's TLS and
    // operator certificates, three issued, one revoked.
    let (cp1, _) = checkpoint_of_at_least(&mut log, &key, 3 + 7 + 1 + 2 + 3 + 1).await;

    let first = trustctl_ok(&d, &["log", "verify", "--key", key_file.to_str().unwrap(), "--state", state_arg]);
    assert!(first.contains(&format!("tree size {} verified", cp1.size())), "{first}");
    assert!(first.contains("every entry from 0 checked"), "{first}");
    assert!(first.contains("certificates by CA: issuing 8"), "{first}");
    assert!(first.contains("internal-tls-server 1") && first.contains(" tls-server 3"), "{first}");
    assert!(first.contains("revocations by CA: issuing 1"), "{first}");

    issue(&d, 2).await;
    let (cp2, _) = checkpoint_of_at_least(&mut log, &key, cp1.size().0 + 2).await;
    // The second run pins the key from the state and checks only the new entries.
    let second = trustctl_ok(&d, &["log", "verify", "--state", state_arg]);
    assert!(second.contains(&format!("entries checked: {}..{}", cp1.size(), cp2.size())), "{second}");
    assert!(second.contains(&format!("consistent with the saved tree of size {}", cp1.size())), "{second}");
    assert!(second.contains("certificate_issued 2") && second.contains("tls-server 2"), "{second}");

    let note = trustctl_ok(&d, &["log", "checkpoint"]);
    assert!(note.starts_with("pki.example.com/log\n"), "{note}");
    let export = d.dir.path().join("log.bin");
    trustctl_ok(&d, &["log", "export", "--out", export.to_str().unwrap()]);
    let exported = std::fs::read(&export).unwrap();
    let cp_note = std::fs::read(d.dir.path().join("log.bin.checkpoint")).unwrap();
    let exported_cp = open_checkpoint(&cp_note, key.name(), &key).unwrap();
    let mut rest = &exported[..];
    let mut count = 0;
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        LogEntry::decode(&rest[2..2 + len]).unwrap();
        rest = &rest[2 + len..];
        count += 1;
    }
    assert_eq!(count, exported_cp.size().0);

    // Tampering, straight in the database while the daemon runs. A full verification (no
    // state) recomputes the tree and names the entry.
    let db =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", d.data_dir().join("trustd.db").display())).await.unwrap();
    let get = |i: i64| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, Vec<u8>>("SELECT entry FROM log_entries WHERE idx = ?")
                .bind(i)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let set = |i: i64, e: Vec<u8>| {
        let db = db.clone();
        async move {
            sqlx::query("UPDATE log_entries SET entry = ? WHERE idx = ?").bind(e).bind(i).execute(&db).await.unwrap();
        }
    };
    let verify_full = |d: &Daemon| trustctl_fails(d, &["log", "verify", "--key", &vkey]);
    let (e4, e5) = (get(4).await, get(5).await);

    // Edited: the last byte of entry 4.
    let mut edited = e4.clone();
    let last = edited.len() - 1;
    edited[last] ^= 1;
    set(4, edited).await;
    let err = verify_full(&d);
    assert!(err.contains("FAILED") && err.contains("entry 4 differs"), "{err}");
    set(4, e4.clone()).await;
    trustctl_ok(&d, &["log", "verify", "--key", &vkey]);

    // Reordered: entries 4 and 5 swapped.
    set(4, e5.clone()).await;
    set(5, e4.clone()).await;
    let err = verify_full(&d);
    assert!(err.contains("entry 4 differs"), "{err}");
    set(4, e4.clone()).await;
    set(5, e5).await;

    // Deleted: entry 4's row is gone.
    sqlx::query("DELETE FROM log_entries WHERE idx = 4").execute(&db).await.unwrap();
    let err = verify_full(&d);
    assert!(err.contains("entry 4 is missing"), "{err}");
    // The tile that held it cannot be served either.
    let (code, _, _) = d.http_get(&format!("/log/tile/entries/000.p/{}", cp2.size()));
    assert_eq!(code, 500);
}

/// The serial of a DER certificate in lower-case hex, as trustctl takes it.
fn x509_serial_hex(der: &[u8]) -> String {
    use der::Decode;
    let c = x509_cert::Certificate::from_der(der).unwrap();
    hex::encode(c.tbs_certificate.serial_number.as_bytes()).trim_start_matches("00").to_owned()
}

// Multi-threaded: a graceful stop waits for the clients' connections to close, which their tasks
// can only do while the test thread waits for the daemon to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_issued_while_the_log_was_off_are_logged_at_the_next_start_before_ready() {
    // The same state as a crash between storing a certificate and sequencing it: the store has
    // an issued certificate that the log lacks.
    let d = Daemon::start_with(tempfile::tempdir().unwrap(), &["--log", "off"]);
    let mut log = log_client(&d).await;
    assert_eq!(code_of(log.get_checkpoint(pb::GetCheckpointRequest::default())).await, Code::Unimplemented);
    assert_eq!(d.http_get("/log/checkpoint").0, 404);
    let issued = issue(&d, 2).await;
    // And a time-stamp, recorded in the store alone.
    let stamped = TimeStampingClient::new(d.channel().await)
        .timestamp(pb::TimestampRequest {
            request: Some(pb::timestamp_request::Request::Digest(pb::DigestRequest {
                hash_algorithm: "sha256".into(),
                digest: vec![3; 32],
                ..Default::default()
            })),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stamped.status(), pb::TimestampStatus::Granted, "{}", stamped.reason);
    drop(log);
    let (_, dir) = d.stop();

    let d = Daemon::start_in(dir);
    let mut log = log_client(&d).await;
    // Right after `ready`, without waiting: the start-up checkpoint already covers them.
    let r = log.get_checkpoint(pb::GetCheckpointRequest::default()).await.unwrap().into_inner();
    let key = LogPublicKey::from_vkey(&r.verifier_key).unwrap();
    let cp = open_checkpoint(&r.signed_note, key.name(), &key).unwrap();
    // The ceremony's three certificates and seven keys, the two issued here, a TLS server
    // certificate per start, the operator credential, the access policy in force and the
    // time-stamp.
    assert_eq!(cp.size(), TreeSize(3 + 7 + 2 + 2 + 1 + 1 + 1));
    let all = entries(&mut log, 0, cp.size().0).await;
    let logged: Vec<Vec<u8>> = all
        .iter()
        .filter_map(|e| match LogEntry::decode(e) {
            Ok(LogEntry::CertificateIssued(c)) if c.requester == "operator" => Some(c.certificate_der),
            _ => None,
        })
        .collect();
    assert_eq!(logged, issued, "in issuance order");
    let stamps: Vec<_> = all
        .iter()
        .filter_map(|e| match LogEntry::decode(e) {
            Ok(LogEntry::TimestampIssued(t)) => Some(hex::encode(t.serial)),
            _ => None,
        })
        .collect();
    assert_eq!(stamps, [stamped.serial.trim_start_matches("00")]);
    assert!(d.log().contains("records missing from the issued-certificate log appended"));
    // Nothing is logged twice on the next start.
    drop(log);
    let (_, dir) = d.stop();
    let d = Daemon::start_in(dir);
    let mut log = log_client(&d).await;
    let r = log.get_checkpoint(pb::GetCheckpointRequest::default()).await.unwrap().into_inner();
    assert_eq!(r.tree_size, 17 + 2, "only this start's TLS server certificate and policy entry are new");
}

#[tokio::test]
async fn time_stamps_and_signatures_are_logged_counted_by_client_and_key_and_a_deleted_one_is_named() {
    let d = Daemon::start();
    let channel = d.channel().await;
    // A B-T signature (its signature time-stamp is a token of its own), a gRPC time-stamp, and
    // an anonymous one over plain HTTP.
    let signed = SigningClient::new(channel.clone())
        .sign(pb::SignRequest {
            options: Some(pb::SignOptions {
                level: pb::SignatureLevel::BT.into(),
                detached: true,
                ..Default::default()
            }),
            content: Some(pb::sign_request::Content::Digest(pb::Digest {
                hash_algorithm: "sha256".into(),
                value: vec![7; 32],
            })),
        })
        .await
        .unwrap()
        .into_inner();
    let stamped = TimeStampingClient::new(channel.clone())
        .timestamp(pb::TimestampRequest {
            request: Some(pb::timestamp_request::Request::Digest(pb::DigestRequest {
                hash_algorithm: "sha256".into(),
                digest: vec![9; 32],
                ..Default::default()
            })),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stamped.status(), pb::TimestampStatus::Granted, "{}", stamped.reason);
    let dir = d.dir.path();
    std::fs::write(dir.join("doc.txt"), b"logged").unwrap();
    openssl(dir, &["ts", "-query", "-data", "doc.txt", "-sha256", "-cert", "-out", "doc.tsq"]);
    let (code, _, http_reply) =
        d.http_post("/tsa", "application/timestamp-query", &std::fs::read(dir.join("doc.tsq")).unwrap());
    assert_eq!(code, 200);

    // Each reply came only once its entry was sequenced: the log has them all now.
    let mut log = log_client(&d).await;
    let fresh = log.get_checkpoint(pb::GetCheckpointRequest { fresh: true }).await.unwrap().into_inner();
    let all = entries(&mut log, 0, fresh.tree_size).await;
    let decoded: Vec<LogEntry> = all.iter().map(|e| LogEntry::decode(e).unwrap()).collect();
    let stamps: Vec<(usize, &trustd::log::TimestampIssued)> = decoded
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            LogEntry::TimestampIssued(t) => Some((i, t)),
            _ => None,
        })
        .collect();
    let sigs: Vec<&trustd::log::SignatureMade> = decoded
        .iter()
        .filter_map(|e| match e {
            LogEntry::SignatureMade(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(stamps.len(), 3, "{decoded:?}");
    assert_eq!(sigs.len(), 1);
    assert_eq!((sigs[0].requester.as_str(), sigs[0].policy.as_str()), ("operator", "default"));
    assert_eq!(hex::encode(&sigs[0].signature_id), signed.signature_id);
    assert_eq!(sigs[0].level, trustd::policy::Level::BT);
    // The anonymous HTTP token: its entry names no one and commits to the token received.
    use der::{Decode, Encode};
    let resp = x509_tsp::TimeStampResp::from_der(&http_reply).unwrap();
    let token = resp.time_stamp_token.unwrap().to_der().unwrap();
    let (http_index, http_entry) = stamps.iter().find(|(_, t)| t.requester.is_empty()).unwrap();
    assert_eq!(http_entry.token_hash, <[u8; 32]>::from(sha2::Sha256::digest(&token)));
    assert_eq!(stamps.iter().filter(|(_, t)| t.requester == "operator").count(), 2);
    assert_eq!(hex::encode(&stamps[1].1.serial), stamped.serial.trim_start_matches("00"));
    // Named by the TSA certificate's hash, as its ESSCertIDv2 does.
    let tsa_chain = TimeStampingClient::new(channel.clone())
        .get_tsa_chain(pb::GetTsaChainRequest::default())
        .await
        .unwrap()
        .into_inner();
    let tsa_hash: [u8; 32] = sha2::Sha256::digest(&tsa_chain.certificates_der[0]).into();
    assert!(stamps.iter().all(|(_, t)| t.signer == tsa_hash));

    let (_, _, vkey) = d.http_get("/log/key");
    let vkey = String::from_utf8(vkey).unwrap().trim().to_owned();
    let report = trustctl_ok(&d, &["log", "verify", "--key", &vkey]);
    assert!(report.contains("timestamp_issued 3") && report.contains("signature_made 1"), "{report}");
    assert!(report.contains("\n  (anonymous): time-stamps 1\n"), "{report}");
    assert!(report.contains("\n  operator: signatures 1, time-stamps 2\n"), "{report}");
    assert!(report.contains("\n  trustd: certificates 2\n"), "its TLS and operator certificates: {report}");
    assert!(report.contains(&format!("\n  {} CN=", hex::encode(tsa_hash))), "{report}");
    assert!(report.contains(": time-stamps 3\n"), "{report}");
    assert!(report.contains("policy change at entry 10: access.toml with SHA-256 "), "{report}");
    assert!(
        report.contains("key of the ceremony at entry 3: root pkcs11:object=trustd-root-ca with public key SHA-256 "),
        "{report}"
    );

    // An operator who deletes the anonymous token's entry is found out, and the entry named.
    let db =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", d.data_dir().join("trustd.db").display())).await.unwrap();
    sqlx::query("DELETE FROM log_entries WHERE idx = ?").bind(*http_index as i64).execute(&db).await.unwrap();
    let err = trustctl_fails(&d, &["log", "verify", "--key", &vkey]);
    assert!(err.contains(&format!("entry {http_index} is missing")), "{err}");
}
