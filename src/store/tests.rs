//! The store's behaviour, the same on every backend: each test runs on SQLite in a temp dir and
//! on PostgreSQL in a database of its own (the private cluster of `ci/test-postgres.sh`).

use super::*;
use crate::log::{
    tree, Hash, HashIndex, LeafIndex, LogBatch, LogError, LoggedRecord, MemoryHashes, NewEntry, PrefetchedHashes,
    Sequencer, TreeSize,
};
use crate::testing::postgres::TestDatabase;
use std::time::Duration;

/// Where one backend's store lives for a test.
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Place {
    /// One place for each backend.
    fn each() -> [Place; 2] {
        [Place::Sqlite(tempfile::tempdir().unwrap()), Place::Postgres(TestDatabase::new())]
    }

    fn database(&self) -> Database {
        match self {
            Place::Sqlite(dir) => Database::Sqlite(dir.path().join("t.db")),
            Place::Postgres(db) => Database::Postgres { url: db.url.clone(), max_connections: 4 },
        }
    }

    /// The store on this place.
    async fn open(&self) -> Arc<dyn Store> {
        let store = self.database().open().await.unwrap();
        eprintln!("backend: {}", self.database());
        store
    }
}

fn new_cert(serial: &Serial, profile: &str) -> NewCertificate {
    NewCertificate {
        serial: serial.clone(),
        ca: CaId::ISSUING,
        origin: Origin::from_name(profile),
        subject: format!("CN={serial}"),
        sans: vec!["dns:a.example".into(), "ip:192.0.2.1".into()],
        not_before: 1,
        not_after: 2,
        requester: "test".into(),
        tbs_der: vec![0x30, 0],
    }
}

fn timestamp(gen_time: Duration) -> TimestampRecord {
    TimestampRecord {
        serial: Serial::random(),
        gen_time,
        policy: const_oid::ObjectIdentifier::new_unwrap("1.2.3"),
        hash_alg: HashAlg::Sha256,
        imprint: vec![1; 32],
        nonce: Some(vec![0xff; 8]),
        requester: String::new(),
        token_der: vec![0x30, 0],
        signer: [7; 32],
    }
}

fn signature(level: Level) -> SignatureRecord {
    SignatureRecord {
        signature_id: Serial::random(),
        signed_at: i64::MAX,
        policy: "p".into(),
        level,
        detached: true,
        digest_alg: HashAlg::Sha512,
        digest: vec![2; 64],
        signer_serial: Serial::random(),
        signer_issuer: "CN=x".into(),
        signature_hash: [3; 32],
        timestamp_serial: (level == Level::BT).then(Serial::random),
        requester: "portal".into(),
        signer: [4; 32],
    }
}

/// Typed values leave the store as they went in (a ceremony certificate keeps its origin);
/// a row the types cannot hold (a reason code that is none, a CA trustd does not run) is
/// reported as damage, and keeps neither the CRL's other entries nor its own serial off it.
#[tokio::test]
async fn typed_columns_round_trip_and_damage_is_reported() {
    for place in Place::each() {
        let store = place.open().await;
        let (ceremony, damaged, foreign) = (Serial::random(), Serial::random(), Serial::random());
        let tsa = NewCertificate { origin: Origin::Ceremony("tsa".into()), ..new_cert(&ceremony, "") };
        store.record_issued(&tsa, b"tsa").await.unwrap();
        let rec = store.certificate(&ceremony).await.unwrap().unwrap();
        assert_eq!((rec.ca, rec.origin.name().as_ref()), (CaId::ISSUING, "ceremony:tsa"));
        assert_eq!(store.unlogged_certificates(1000).await.unwrap()[0].origin, Origin::Ceremony("tsa".into()));
        assert!(matches!(store.record_issued(&tsa, b"again").await, Err(StoreError::DuplicateSerial(_))));

        for s in [&damaged, &foreign] {
            store.record_issued(&new_cert(s, "p"), b"c").await.unwrap();
            let r = Revocation { revoked_at: 7, reason: Reason::KeyCompromise, invalidity_date: Some(i64::MIN) };
            store.set_revocation(s, None, Some(r), "t").await.unwrap();
        }
        let r = store.certificate(&damaged).await.unwrap().unwrap().revocation;
        assert_eq!(
            r,
            Some(Revocation { revoked_at: 7, reason: Reason::KeyCompromise, invalidity_date: Some(i64::MIN) })
        );
        store.execute_raw(&format!("UPDATE certificates SET revocation_reason = 7 WHERE serial = '{damaged}'")).await;
        store.execute_raw(&format!("UPDATE certificates SET ca = 'elsewhere' WHERE serial = '{foreign}'")).await;
        for s in [&damaged, &foreign] {
            let e = store.certificate(s).await.unwrap_err();
            assert!(matches!(e, StoreError::Database(_)) && e.to_string().contains("in the database"), "{e}");
        }
        let crl = store.revoked(CaId::ISSUING).await.unwrap();
        assert_eq!(crl.len(), 1, "the foreign CA's row is not this CA's");
        assert_eq!(crl[0].serial, damaged);
        assert_eq!(crl[0].revocation, Revocation { revoked_at: 7, reason: Reason::Unspecified, invalidity_date: None });
        assert!(store.revoked(CaId::Root).await.unwrap().is_empty());
    }
}

/// A batch of pending records is one statement: a serial used before, or twice in the batch,
/// is refused alone and the others are recorded.
#[tokio::test]
async fn a_used_serial_is_refused_alone_in_its_batch() {
    for place in Place::each() {
        let store = place.open().await;
        let (used, fresh, twice) = (Serial::random(), Serial::random(), Serial::random());
        assert_eq!(store.record_pending(&[new_cert(&used, "first")]).await.unwrap(), [true]);
        let mixed = [new_cert(&used, "x"), new_cert(&fresh, "p"), new_cert(&twice, "first"), new_cert(&twice, "x")];
        assert_eq!(store.record_pending(&mixed).await.unwrap(), [false, true, true, false]);
        for s in [&used, &twice] {
            assert_eq!(store.certificate(s).await.unwrap().unwrap().origin, Origin::from_name("first"), "kept");
        }
        assert_eq!(store.certificate(&fresh).await.unwrap().unwrap().status, CertStatus::Pending);
        assert!(store.record_pending(&[]).await.unwrap().is_empty());
    }
}

/// The serials of every record `q` lists, following its pages.
async fn all_pages(store: &dyn Store, mut q: ListQuery) -> Vec<Serial> {
    let mut seen = Vec::new();
    loop {
        let page = store.list_certificates(&q).await.unwrap();
        seen.extend(page.records.into_iter().map(|r| r.serial));
        match page.next_page_token {
            Some(t) => q.page_token = Some(t),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn lifecycle_uniqueness_and_paging() {
    for place in Place::each() {
        let store = place.open().await;
        store.ping().await.unwrap();
        let serials: Vec<Serial> = (0..5).map(|_| Serial::random()).collect();
        let batch: Vec<_> =
            serials.iter().enumerate().map(|(i, s)| new_cert(s, if i % 2 == 0 { "even" } else { "odd" })).collect();
        assert_eq!(store.record_pending(&batch).await.unwrap(), [true; 5], "one batch, every record");
        store.complete_issued(&serials[0], b"cert").await.unwrap();
        assert!(matches!(store.complete_issued(&serials[0], b"again").await, Err(StoreError::WrongStatus { .. })));
        assert!(matches!(store.complete_issued(&Serial::random(), b"x").await, Err(StoreError::NotFound(_))));
        store.abandon(&serials[1], "hsm failed").await.unwrap();
        assert_eq!(store.abandon_pending_created_before(rows::now() - 60).await.unwrap(), 0, "in flight");
        assert_eq!(store.abandon_pending_created_before(i64::MAX).await.unwrap(), 3);

        let rec = store.certificate(&serials[0]).await.unwrap().unwrap();
        assert_eq!(rec.status, CertStatus::Issued);
        assert_eq!(rec.cert_der.as_deref(), Some(&b"cert"[..]));
        assert_eq!(rec.sans, ["dns:a.example", "ip:192.0.2.1"]);
        assert_eq!(store.certificate(&serials[1]).await.unwrap().unwrap().status, CertStatus::Abandoned);

        let seen = all_pages(store.as_ref(), ListQuery { limit: 2, ..Default::default() }).await;
        assert_eq!(seen, serials.iter().rev().cloned().collect::<Vec<_>>());
        let list = |q: ListQuery| {
            let store = store.clone();
            async move { store.list_certificates(&ListQuery { limit: 10, ..q }).await.unwrap().records.len() }
        };
        assert_eq!(list(ListQuery { profile: Some("even".into()), ..Default::default() }).await, 3);
        assert_eq!(list(ListQuery { status: Some(CertStatus::Issued), ..Default::default() }).await, 1);
        let both =
            ListQuery { profile: Some("even".into()), status: Some(CertStatus::Abandoned), ..Default::default() };
        assert_eq!(list(both).await, 2, "both filters");
        let q = ListQuery { limit: 1, status: Some(CertStatus::Abandoned), ..Default::default() };
        assert_eq!(
            all_pages(store.as_ref(), q).await,
            serials[1..].iter().rev().cloned().collect::<Vec<_>>(),
            "a filter's pages"
        );
        let subject = Some(serials[3].to_string());
        assert_eq!(list(ListQuery { subject_contains: subject, ..Default::default() }).await, 1);
        let no_match = Some("%_".into());
        assert_eq!(list(ListQuery { subject_contains: no_match, ..Default::default() }).await, 0, "not a pattern");
        assert_eq!(list(ListQuery { limit: 0, ..Default::default() }).await, 5, "a limit of 0 is the smallest page");
        let page = store.list_certificates(&ListQuery { limit: u32::MAX, ..Default::default() }).await.unwrap();
        assert_eq!((page.records.len(), page.next_page_token), (5, None), "a huge limit is the largest page");
        for token in ["x", "-", "99999999999999999999"] {
            let q = ListQuery { page_token: Some(token.into()), ..Default::default() };
            assert!(matches!(store.list_certificates(&q).await, Err(StoreError::BadPageToken)), "{token}");
        }
    }
}

/// Revocation is a compare-and-set with its audit event: a stale expectation changes nothing
/// and records nothing; a hold is released; CRL numbers count from 1 per CA.
#[tokio::test]
async fn revocation_is_compare_and_set_and_crl_numbers_count_per_ca() {
    for place in Place::each() {
        let store = place.open().await;
        let s = Serial::random();
        store.record_issued(&new_cert(&s, "p"), b"c").await.unwrap();
        let hold = Revocation { revoked_at: 10, reason: Reason::CertificateHold, invalidity_date: None };
        let compromise = Revocation { revoked_at: 11, reason: Reason::KeyCompromise, invalidity_date: Some(9) };
        let generation = store.revocation_generation().await.unwrap();
        let first = store.set_revocation(&s, None, Some(hold), "op").await.unwrap();
        assert!(matches!(store.set_revocation(&s, None, Some(compromise), "op").await, Err(StoreError::Conflict(_))));
        assert!(matches!(store.set_revocation(&s, Some(compromise), None, "op").await, Err(StoreError::Conflict(_))));
        assert_eq!(store.revocation_generation().await.unwrap(), generation + 1, "refusals move nothing");
        let released = store.set_revocation(&s, Some(hold), None, "op").await.unwrap();
        assert!(released > first);
        let beside = place.open().await;
        assert_eq!(beside.revocation_generation().await.unwrap(), generation + 2, "what another process reads");
        assert_eq!(store.certificate(&s).await.unwrap().unwrap().status, CertStatus::Issued);
        assert!(store.revoked(CaId::ISSUING).await.unwrap().is_empty());
        let unknown = store.set_revocation(&Serial::random(), None, Some(hold), "op").await;
        assert!(matches!(unknown, Err(StoreError::Conflict(_))));
        assert!(store.unlogged_revocations(Duration::from_secs(60), 1000).await.unwrap().is_empty(), "too young");
        let events = store.unlogged_revocations(Duration::ZERO, 1000).await.unwrap();
        let reasons: Vec<_> = events.iter().map(|e| (e.event_id, e.reason)).collect();
        assert_eq!(
            reasons,
            [(first, Reason::CertificateHold), (released, Reason::RemoveFromCrl)],
            "refusals not recorded"
        );
        let page = store.unlogged_revocations(Duration::ZERO, 1).await.unwrap();
        assert_eq!(page.iter().map(|e| e.event_id).collect::<Vec<_>>(), [first], "the first one");

        assert_eq!(store.next_crl_number(CaId::ISSUING).await.unwrap(), 1);
        assert_eq!(store.next_crl_number(CaId::ISSUING).await.unwrap(), 2);
        assert_eq!(store.next_crl_number(CaId::Root).await.unwrap(), 1);
    }
}

/// Time-stamp and signature records are written whole or not at all, read back as written
/// (genTime's microseconds, a nonce, B-T's time-stamp serial, extreme times), and counted.
#[tokio::test]
async fn records_round_trip_and_a_batch_with_a_reused_serial_writes_nothing() {
    for place in Place::each() {
        let store = place.open().await;
        let stamps = [timestamp(Duration::new(1_700_000_000, 999_999_000)), timestamp(Duration::ZERO)];
        store.record_timestamps(&stamps).await.unwrap();
        let back = store.unlogged_timestamps(10).await.unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(
            (back[0].serial.clone(), back[0].gen_time, back[0].nonce.clone()),
            (stamps[0].serial.clone(), stamps[0].gen_time, stamps[0].nonce.clone())
        );
        assert_eq!(store.unlogged_timestamps(1).await.unwrap().len(), 1, "the limit holds");
        let reused = [timestamp(Duration::from_secs(5)), stamps[1].clone()];
        assert!(store.record_timestamps(&reused).await.is_err());
        assert_eq!(store.count_timestamps().await.unwrap(), 2, "nothing of the failed batch");
        store.record_timestamps(&[]).await.unwrap();

        let sigs = [signature(Level::BB), signature(Level::BT)];
        store.record_signatures(&sigs).await.unwrap();
        let back = store.unlogged_signatures(10).await.unwrap();
        assert_eq!(
            back.iter().map(|s| s.signature_id.clone()).collect::<Vec<_>>(),
            [sigs[0].signature_id.clone(), sigs[1].signature_id.clone()]
        );
        assert_eq!(
            (back[1].level, back[1].timestamp_serial.clone(), back[1].signed_at),
            (Level::BT, sigs[1].timestamp_serial.clone(), i64::MAX)
        );
        assert!(back[0].detached && back[0].timestamp_serial.is_none());
        assert!(store.record_signatures(&[sigs[0].clone()]).await.is_err());
        assert_eq!(store.count_signatures().await.unwrap(), 2);
    }
}

#[tokio::test]
async fn the_sequencer_marks_what_it_logged_and_survives_a_reopen() {
    for place in Place::each() {
        let store = place.open().await;
        let serials: Vec<Serial> = (0..3).map(|_| Serial::random()).collect();
        for s in &serials {
            store.record_pending(&[new_cert(s, "p")]).await.unwrap();
            store.complete_issued(s, s.as_bytes()).await.unwrap();
        }
        let unlogged = store.unlogged_certificates(1000).await.unwrap();
        assert_eq!(unlogged.iter().map(|u| u.serial.clone()).collect::<Vec<_>>(), serials);
        let page = store.unlogged_certificates(2).await.unwrap();
        assert_eq!(page.iter().map(|u| u.serial.clone()).collect::<Vec<_>>(), serials[..2], "the first two");

        let seq = Sequencer::start(store.clone()).await.unwrap();
        let entries: Vec<NewEntry> = unlogged
            .iter()
            .map(|u| NewEntry {
                entry: u.cert_der.clone(),
                record: Some(LoggedRecord::Certificate(u.serial.to_string())),
            })
            .collect();
        seq.append_all(entries).await.unwrap();
        let revoked = Revocation { revoked_at: 5, reason: Reason::KeyCompromise, invalidity_date: None };
        let event = store.set_revocation(&serials[1], None, Some(revoked), "t").await.unwrap();
        assert_eq!(store.unlogged_revocations(Duration::ZERO, 1000).await.unwrap()[0].event_id, event);
        let idx = seq
            .append(NewEntry { entry: b"revoked".to_vec(), record: Some(LoggedRecord::RevocationEvent(event)) })
            .await
            .unwrap();
        assert_eq!(idx, LeafIndex(3));
        assert!(store.unlogged_certificates(1000).await.unwrap().is_empty());
        assert!(store.unlogged_revocations(Duration::ZERO, 1000).await.unwrap().is_empty());

        // A pending certificate, a new time-stamp and signature, and a ceremony key, each
        // written with its entry.
        let pending = Serial::random();
        store.record_pending(&[new_cert(&pending, "p")]).await.unwrap();
        let stamp = timestamp(Duration::from_secs(3));
        let sig = signature(Level::BB);
        let batch = vec![
            NewEntry {
                entry: b"issued".to_vec(),
                record: Some(LoggedRecord::IssuedCertificate { serial: pending.clone(), cert_der: b"der".to_vec() }),
            },
            NewEntry { entry: b"stamp".to_vec(), record: Some(LoggedRecord::NewTimestamp(Box::new(stamp.clone()))) },
            NewEntry { entry: b"sig".to_vec(), record: Some(LoggedRecord::NewSignature(Box::new(sig))) },
            NewEntry { entry: b"key".to_vec(), record: Some(LoggedRecord::CeremonyKey([9; 32])) },
        ];
        assert_eq!(seq.append_all(batch).await.unwrap(), [LeafIndex(4), LeafIndex(5), LeafIndex(6), LeafIndex(7)]);
        let issued = store.certificate(&pending).await.unwrap().unwrap();
        assert_eq!((issued.status, issued.cert_der.as_deref()), (CertStatus::Issued, Some(&b"der"[..])));
        assert_eq!((store.count_timestamps().await.unwrap(), store.count_signatures().await.unwrap()), (1, 1));
        assert!(store.unlogged_timestamps(10).await.unwrap().is_empty(), "logged with its entry");
        assert!(store.unlogged_signatures(10).await.unwrap().is_empty());
        assert_eq!(store.logged_ceremony_keys().await.unwrap(), [[9; 32]]);

        // The stored tree is the tree of the stored entries.
        let stored: Vec<Vec<u8>> = store.log_entries(0, 100).await.unwrap().into_iter().map(|(_, e)| e).collect();
        let fresh = tree::append(TreeSize(0), &stored, &MemoryHashes::new()).unwrap();
        assert_eq!(store.log_tree().await.unwrap(), (TreeSize(8), fresh.root));
        let all: Vec<HashIndex> = (0..fresh.hashes.len() as u64).map(HashIndex).collect();
        assert_eq!(store.log_hashes(&all).await.unwrap(), fresh.hashes);
        assert!(matches!(store.log_hashes(&[HashIndex(999)]).await, Err(LogError::MissingHash(_))));
        assert!(matches!(store.log_hashes(&[HashIndex(u64::MAX)]).await, Err(LogError::TreeTooLarge)));
        assert_eq!(store.log_entries(2, 4).await.unwrap().iter().map(|(i, _)| i.0).collect::<Vec<_>>(), [2, 3]);
        assert!(store.log_entries(u64::MAX - 1, u64::MAX).await.is_err(), "beyond any tree");

        // A batch built on a stale size is refused whole.
        let stale = LogBatch {
            old_size: TreeSize(1),
            new_size: TreeSize(2),
            root: Hash::default(),
            first_hash: HashIndex::end(TreeSize(1)),
            hashes: vec![],
            entries: vec![NewEntry { entry: b"fork".to_vec(), record: None }],
        };
        let e = store.append_log_batch(&stale).await.unwrap_err();
        assert!(e.to_string().contains("no longer at size 1"), "the database's compare-and-set: {e}");
        assert_eq!(store.log_tree().await.unwrap(), (TreeSize(8), fresh.root), "nothing of it written");
        // A batch that fails part-way (a reused time-stamp serial) leaves the store usable.
        let reused = NewEntry { entry: b"reused".to_vec(), record: Some(LoggedRecord::NewTimestamp(Box::new(stamp))) };
        assert!(seq.append(reused).await.is_err());
        assert_eq!(seq.append(NewEntry { entry: b"next".to_vec(), record: None }).await.unwrap(), LeafIndex(8));
        drop(seq);
        let seq = Sequencer::start(place.open().await).await.unwrap();
        assert_eq!(seq.head().borrow().0, TreeSize(9));
    }
}

/// The connection to PostgreSQL is TLS where the server offers it, and with
/// `sslmode=verify-full` it is refused unless the server's certificate chains to the root the
/// URL names (as a database in another data centre would be reached).
#[tokio::test]
async fn tls_to_postgresql_is_used_and_verified_against_the_root_named() {
    let db = TestDatabase::new();
    let store = PostgresStore::open(&db.url, 2).await.unwrap();
    assert!(store.over_tls().await, "sslmode=prefer: TLS when offered");
    drop(store);
    let root = crate::testing::postgres::cluster_certificate();
    let verified = format!("{}?sslmode=verify-full&sslrootcert={}", db.url, root.display());
    let store = PostgresStore::open(&verified, 2).await.unwrap();
    assert!(store.over_tls().await);
    drop(store);

    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.pem");
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=other"])
        .args(["-days", "1", "-keyout", "/dev/null", "-out"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success());
    let wrong = format!("{}?sslmode=verify-full&sslrootcert={}", db.url, other.display());
    let e = PostgresStore::open(&wrong, 2).await.err().expect("a server the root does not vouch for is refused");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
}

/// A hot standby opens read-only once the primary gave it the schema: it says so, reads what
/// the primary wrote as it replicates, and a write is `ReadOnly`, named as such. The standby of
/// a database never migrated is refused with what to do.
#[tokio::test]
async fn a_hot_standby_opens_read_only_with_the_primarys_schema() {
    let (db, empty) = (TestDatabase::new(), TestDatabase::new());
    let primary = PostgresStore::open(&db.url, 2).await.unwrap();
    let standby = crate::testing::postgres::TestStandby::new();
    let e = PostgresStore::open(&standby.of(&empty), 2).await.err().expect("no schema: refused");
    assert!(e.to_string().contains("holds no trustd schema: start trustd against the primary first"), "{e}");

    let replica = PostgresStore::open(&standby.of(&db), 2).await.unwrap();
    assert_eq!(replica.ping().await.unwrap(), Role::Standby);
    assert_eq!(primary.ping().await.unwrap(), Role::Primary);
    let serial = Serial::random();
    primary.record_pending(&[new_cert(&serial, "p")]).await.unwrap();
    let crl = StoredCrl { ca: CaId::ISSUING, number: 1, this_update: 10, next_update: 20, der: vec![0x30, 0] };
    primary.record_crl(&crl).await.unwrap();
    let start = std::time::Instant::now();
    while replica.newest_crl(CaId::ISSUING, 0).await.unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(10), "replication never brought the CRL");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("replicated within {:?}", start.elapsed());
    assert_eq!(replica.newest_crl(CaId::ISSUING, 0).await.unwrap(), Some(crl));
    assert_eq!(replica.certificate(&serial).await.unwrap().unwrap().status, CertStatus::Pending);
    let e = replica.record_pending(&[new_cert(&Serial::random(), "p")]).await.expect_err("a write is refused");
    assert!(matches!(e, StoreError::ReadOnly), "{e:?}");
    assert!(e.to_string().contains("read-only standby"), "{e}");
}

/// Published CRLs: the newest above a number is found, and only the last few of a CA are kept.
#[tokio::test]
async fn the_newest_crls_are_kept_and_found() {
    for place in Place::each() {
        let store = place.open().await;
        assert_eq!(store.newest_crl(CaId::ISSUING, 0).await.unwrap(), None);
        let crl = |ca, number: u64| StoredCrl {
            ca,
            number,
            this_update: number as i64,
            next_update: i64::MAX,
            der: vec![number as u8; 3],
        };
        for n in 1..=6 {
            store.record_crl(&crl(CaId::ISSUING, n)).await.unwrap();
        }
        store.record_crl(&crl(CaId::Root, 1)).await.unwrap();
        assert_eq!(store.newest_crl(CaId::ISSUING, 0).await.unwrap(), Some(crl(CaId::ISSUING, 6)));
        assert_eq!(store.newest_crl(CaId::ISSUING, 5).await.unwrap(), Some(crl(CaId::ISSUING, 6)));
        assert_eq!(store.newest_crl(CaId::ISSUING, 6).await.unwrap(), None);
        assert_eq!(store.newest_crl(CaId::Root, 0).await.unwrap(), Some(crl(CaId::Root, 1)));
        // The kept ones are 3 to 6: without those, nothing is left of the issuing CA's.
        store.execute_raw("DELETE FROM published_crls WHERE ca = 'issuing' AND number >= 3").await;
        assert_eq!(store.newest_crl(CaId::ISSUING, 0).await.unwrap(), None, "1 and 2 were pruned");
        assert_eq!(store.newest_crl(CaId::ISSUING, u64::MAX).await.unwrap(), None);
        let e = store.record_crl(&crl(CaId::Root, 1)).await.expect_err("a number once");
        assert!(matches!(e, StoreError::Database(_)), "{e:?}");
    }
}

/// Rolled-over service keys: every generation of each role comes back in order (and
/// `rollover::newest` and `previous` read them), a generation is recorded once, and a damaged
/// row is an error, not a key.
#[tokio::test]
async fn rolled_over_keys_are_kept_by_role_and_generation() {
    use crate::keys::KeyRef;
    use crate::rollover::{newest, previous};
    use crate::service_role::ServiceRole::{DocumentSigner, Log, Ocsp, Tsa};
    for place in Place::each() {
        let store = place.open().await;
        assert_eq!(store.service_keys().await.unwrap(), vec![]);
        let rolled = |role, generation: u32| RolledKey {
            role,
            generation,
            key: KeyRef::parse(&format!("pkcs11:object=trustd-{role}.{generation}")).unwrap(),
            created_at: i64::from(generation),
            in_service_at: Some(i64::from(generation) + 1),
        };
        for r in [rolled(Tsa, 3), rolled(Ocsp, 2), rolled(Tsa, 2), rolled(Log, 2)] {
            store.record_service_key(&r).await.unwrap();
        }
        let all = store.service_keys().await.unwrap();
        assert_eq!(all, vec![rolled(Log, 2), rolled(Ocsp, 2), rolled(Tsa, 2), rolled(Tsa, 3)]);
        let mut in_service: Vec<_> = newest(&all).into_iter().cloned().collect();
        in_service.sort_by_key(|r| r.role.name());
        assert_eq!(in_service, vec![rolled(Log, 2), rolled(Ocsp, 2), rolled(Tsa, 3)]);
        let first = KeyRef::parse("pkcs11:object=first").unwrap();
        assert_eq!(previous(&all, Tsa, &first), Some(rolled(Tsa, 2).key));
        assert_eq!(previous(&all, Log, &first), Some(first.clone()));
        assert_eq!(previous(&all, DocumentSigner, &first), None);

        let e = store.record_service_key(&rolled(Tsa, 3)).await.expect_err("a generation once");
        assert!(e.to_string().contains("another rollover got there first"), "{e}");
        store.record_service_key(&rolled(DocumentSigner, u32::MAX)).await.unwrap();
        let all = store.service_keys().await.unwrap();
        assert_eq!(all.iter().find(|k| k.role == DocumentSigner), Some(&rolled(DocumentSigner, u32::MAX)));
        // A rollover begun is not in service until it is put there, once.
        let begun = RolledKey { in_service_at: None, ..rolled(Ocsp, 3) };
        store.record_service_key(&begun).await.unwrap();
        let all = store.service_keys().await.unwrap();
        assert!(all.contains(&begun));
        assert_eq!(newest(&all).into_iter().find(|k| k.role == Ocsp), Some(&rolled(Ocsp, 2)));
        store.put_service_key_in_service(Ocsp, 3, 4).await.unwrap();
        let e = store.put_service_key_in_service(Ocsp, 3, 5).await.expect_err("once");
        assert!(e.to_string().contains("no rollover in progress"), "{e}");
        assert!(store.put_service_key_in_service(Tsa, 9, 5).await.is_err());
        let all = store.service_keys().await.unwrap();
        assert_eq!(newest(&all).into_iter().find(|k| k.role == Ocsp), Some(&rolled(Ocsp, 3)));
        store.execute_raw("UPDATE service_keys SET role = 'root' WHERE role = 'ocsp'").await;
        assert!(store.service_keys().await.is_err(), "a role trustd does not roll over is damage");
    }
}

/// Two stores on one database (two replicas, or a restart beside a running daemon) writing log
/// batches at once: the database's compare-and-set lets exactly one batch move the tree from
/// each size, so the log never forks, and what the loser wrote is nowhere.
#[tokio::test]
async fn two_writers_on_one_database_never_fork_the_log() {
    for place in Place::each() {
        let (a, b) = (place.open().await, place.open().await);
        let mut won = 0;
        for round in 0u64..20 {
            let (size, _) = a.log_tree().await.unwrap();
            let indexes = tree::subtree_roots(size).unwrap();
            let roots: PrefetchedHashes = indexes.iter().copied().zip(a.log_hashes(&indexes).await.unwrap()).collect();
            let batch = |tag: &str| {
                let entry = format!("{tag}{round}").into_bytes();
                let appended = tree::append(size, std::slice::from_ref(&entry), &roots).unwrap();
                LogBatch {
                    old_size: size,
                    new_size: TreeSize(size.0 + 1),
                    root: appended.root,
                    first_hash: HashIndex::end(size),
                    hashes: appended.hashes,
                    entries: vec![NewEntry { entry, record: None }],
                }
            };
            let (ba, bb) = (batch("a"), batch("b"));
            let (ra, rb) = tokio::join!(a.append_log_batch(&ba), b.append_log_batch(&bb));
            assert!(ra.is_ok() != rb.is_ok(), "exactly one of two batches on size {size} lands: {ra:?} {rb:?}");
            won += usize::from(ra.is_ok());
            let loser = if ra.is_ok() { &bb } else { &ba };
            let e = ra.err().or(rb.err()).unwrap();
            assert!(e.to_string().contains("no longer at size"), "{e}");
            let (now, _) = b.log_tree().await.unwrap();
            assert_eq!(now, TreeSize(size.0 + 1));
            let kept = &b.log_entries(size.0, size.0 + 1).await.unwrap()[0].1;
            assert_ne!(kept, &loser.entries[0].entry, "the loser's entry is not in the log");
        }
        eprintln!("the first store won {won} of 20");
        // The tree of what is stored is the committed tree.
        let stored: Vec<Vec<u8>> = a.log_entries(0, 100).await.unwrap().into_iter().map(|(_, e)| e).collect();
        assert_eq!(stored.len(), 20);
        let fresh = tree::append(TreeSize(0), &stored, &MemoryHashes::new()).unwrap();
        assert_eq!(a.log_tree().await.unwrap().1, fresh.root);
    }
}

/// CSC signature activation data: used once, only by its client for its credential, only before
/// it expires; what it authorizes comes back as recorded.
#[tokio::test]
async fn a_csc_authorization_is_used_once_by_its_client_before_it_expires() {
    for place in Place::each() {
        let store = place.open().await;
        let auth = |sad: &str, expires_at| CscAuthorization {
            sad_sha256: sad.into(),
            client: "portal".into(),
            credential: "default".into(),
            hashes: vec!["bbb=".into(), "aaa=".into()],
            expires_at,
        };
        store.record_csc_authorization(&auth("s1", 100), 50).await.unwrap();
        store.record_csc_authorization(&auth("s2", 100), 50).await.unwrap();
        assert!(store.record_csc_authorization(&auth("s1", 100), 50).await.is_err(), "a SAD once");
        assert_eq!(store.use_csc_authorization("s1", "other", "default", 60).await.unwrap(), None);
        assert_eq!(store.use_csc_authorization("s1", "portal", "pades", 60).await.unwrap(), None);
        assert_eq!(store.use_csc_authorization("s9", "portal", "default", 60).await.unwrap(), None);
        assert_eq!(store.use_csc_authorization("s1", "portal", "default", 100).await.unwrap(), None, "expired");
        let used = store.use_csc_authorization("s1", "portal", "default", 60).await.unwrap();
        assert_eq!(used, Some(vec!["aaa=".to_owned(), "bbb=".to_owned()]));
        assert_eq!(store.use_csc_authorization("s1", "portal", "default", 61).await.unwrap(), None, "once");
        // Recording forgets what expired over an hour ago.
        store.record_csc_authorization(&auth("s3", 10_000), 3_701).await.unwrap();
        assert_eq!(store.use_csc_authorization("s2", "portal", "default", 99).await.unwrap(), None);
        assert!(store.use_csc_authorization("s3", "portal", "default", 3_702).await.unwrap().is_some());
    }
}

/// OAuth 2.0 access tokens: found by their hash until they expire, recorded once, and the
/// expired forgotten after an hour.
#[tokio::test]
async fn an_access_token_is_found_until_it_expires() {
    for place in Place::each() {
        let store = place.open().await;
        let token = |hash: &str, expires_at| AccessToken {
            token_sha256: hash.into(),
            client: "portal".into(),
            secret_sha256: "5e".into(),
            expires_at,
        };
        store.record_access_token(&token("t1", 100), 50).await.unwrap();
        assert!(store.record_access_token(&token("t1", 200), 50).await.is_err(), "a token once");
        assert_eq!(store.access_token("t1", 99).await.unwrap(), Some(token("t1", 100)));
        assert_eq!(store.access_token("t1", 100).await.unwrap(), None, "expired");
        assert_eq!(store.access_token("t9", 50).await.unwrap(), None);
        store.record_access_token(&token("t2", 10_000), 3_701).await.unwrap();
        store.execute_raw("UPDATE oauth2_tokens SET expires_at = 20000 WHERE token_sha256 = 't1'").await;
        assert_eq!(store.access_token("t1", 3_702).await.unwrap(), None, "forgotten");
        assert!(store.access_token("t2", 3_702).await.unwrap().is_some());
    }
}

/// CSC credentials: recorded once, listed by client in the order made, disabled once (a second
/// disable changes nothing), and an unknown one is nothing.
#[tokio::test]
async fn csc_credentials_are_kept_per_client_and_disabled_once() {
    use crate::keys::KeyRef;
    for place in Place::each() {
        let store = place.open().await;
        let credential = |id: &str, client: &str, created_at| CscCredential {
            id: id.into(),
            client: client.into(),
            policy: "default".into(),
            key: KeyRef::parse(&format!("pkcs11:object=trustd-{id}")).unwrap(),
            certificate_der: vec![0x30, 0x03, 0x02, 0x01, 0x07],
            created_at,
            disabled_at: None,
        };
        for c in [credential("cred-b", "portal", 2), credential("cred-a", "portal", 1), credential("cred-c", "web", 3)]
        {
            store.record_csc_credential(&c).await.unwrap();
        }
        assert!(store.record_csc_credential(&credential("cred-a", "web", 9)).await.is_err(), "an ID once");
        let ids = |all: Vec<CscCredential>| all.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(store.csc_credentials(Some("portal")).await.unwrap()), ["cred-a", "cred-b"]);
        assert_eq!(ids(store.csc_credentials(None).await.unwrap()), ["cred-a", "cred-b", "cred-c"]);
        assert_eq!(store.csc_credentials(Some("nobody")).await.unwrap(), vec![]);
        let disabled = store.disable_csc_credential("cred-b", 50).await.unwrap().unwrap();
        assert_eq!(disabled, CscCredential { disabled_at: Some(50), ..credential("cred-b", "portal", 2) });
        assert_eq!(store.disable_csc_credential("cred-b", 60).await.unwrap().unwrap().disabled_at, Some(50));
        assert_eq!(store.disable_csc_credential("cred-z", 60).await.unwrap(), None);
        store.execute_raw("UPDATE csc_credentials SET certificate = '%%' WHERE id = 'cred-c'").await;
        assert!(store.csc_credentials(Some("web")).await.is_err(), "a damaged row is an error, not a credential");
    }
}

/// A lease is one holder's at a time: renewed by it, refused to another until it expires, then
/// taken over; released, it is free at once.
#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires_or_is_released() {
    for place in Place::each() {
        let store = place.open().await;
        assert!(store.take_lease("publisher", "a", 100, 110).await.unwrap());
        assert!(store.take_lease("publisher", "a", 105, 115).await.unwrap(), "renewed by its holder");
        assert!(!store.take_lease("publisher", "b", 114, 124).await.unwrap(), "another's until it expires");
        assert!(store.take_lease("other", "b", 114, 124).await.unwrap(), "each lease on its own");
        assert!(store.take_lease("publisher", "b", 115, 125).await.unwrap(), "taken over once expired");
        assert!(!store.take_lease("publisher", "a", 116, 126).await.unwrap(), "the old holder lost it");
        store.release_lease("publisher", "a").await.unwrap();
        assert!(!store.take_lease("publisher", "a", 117, 127).await.unwrap(), "only the holder releases");
        store.release_lease("publisher", "b").await.unwrap();
        assert!(store.take_lease("publisher", "a", 118, 128).await.unwrap(), "free once released");
    }
}

/// Two logs on one store, as two replicas: what one signs and records, the other serves (as
/// its checkpoint, and for proofs and tiles of that tree), and the served tree never shrinks
/// whichever of them answers.
#[tokio::test]
async fn replicas_serve_the_newest_recorded_checkpoint() {
    use crate::keys::software::SoftwareKey;
    use crate::log::{CheckpointSigner, StoredCheckpoint, TransparencyLog};
    let signer = || CheckpointSigner::new("trustd.test/log", Arc::new(SoftwareKey::ed25519(7))).unwrap();
    for place in Place::each() {
        let store = place.open().await;
        let a = TransparencyLog::start("trustd.test/log", signer(), store.clone()).await.unwrap();
        let b = TransparencyLog::start("trustd.test/log", signer(), store.clone()).await.unwrap();
        let entries = (0..5u8).map(|i| NewEntry { entry: vec![i], record: None }).collect();
        a.sequencer().append_all(entries).await.unwrap();
        a.publish().await.unwrap();
        let signed = a.checkpoint();
        assert_eq!(signed.checkpoint.size(), TreeSize(5));
        assert_eq!(b.checkpoint().checkpoint.size(), TreeSize(0), "b signs nothing of a's entries itself");
        b.inclusion_proof(4, 5).await.expect("b serves a proof in the tree a recorded");
        assert_eq!(b.current().await.note, signed.note, "b serves a's checkpoint, byte for byte");
        assert!(b.tile("tile/entries/000.p/5").await.is_ok());
        // b, serving a's checkpoint of the tree, signs nothing more of it.
        b.publish().await.unwrap();
        assert_eq!(b.current().await.note, signed.note);
        let newest = store.newest_checkpoint(TreeSize(0)).await.unwrap().unwrap();
        assert_eq!((newest.size, newest.note), (TreeSize(5), signed.note.clone()));
        assert_eq!(store.newest_checkpoint(TreeSize(5)).await.unwrap(), None);
        // Recording more keeps the newest; a smaller one recorded late is never the newest.
        for size in 6..30u64 {
            let c = StoredCheckpoint { size: TreeSize(size), note: vec![1], signed_at_ms: 0 };
            store.record_checkpoint(&c).await.unwrap();
        }
        store.record_checkpoint(&StoredCheckpoint { size: TreeSize(3), note: vec![2], signed_at_ms: 0 }).await.unwrap();
        assert_eq!(store.newest_checkpoint(TreeSize(0)).await.unwrap().unwrap().size, TreeSize(29));
    }
}

/// Two replicas starting together on one database both find a key unstated: the store takes
/// it once, and the later one looks again instead of failing its start.
#[tokio::test]
async fn replicas_starting_together_state_each_key_once() {
    use crate::ceremony::{log_keys, KeyInService};
    use crate::keys::software::SoftwareKey;
    use crate::keys::SigningKey;
    for place in Place::each() {
        let store = place.open().await;
        let keys: Vec<KeyInService> = (1..4u8)
            .map(|i| KeyInService {
                role: format!("role-{i}"),
                key: crate::keys::KeyRef::parse(&format!("pkcs11:object=k{i}")).unwrap(),
                public_key: SoftwareKey::p256(i).public_key().clone(),
            })
            .collect();
        let (a, b) = (Sequencer::start(store.clone()).await.unwrap(), Sequencer::start(store.clone()).await.unwrap());
        let (ra, rb) = tokio::join!(log_keys(store.as_ref(), &a, keys.clone()), log_keys(store.as_ref(), &b, keys));
        assert_eq!(ra.unwrap() + rb.unwrap(), 3, "each key stated by one of them");
        assert_eq!(store.logged_ceremony_keys().await.unwrap().len(), 3);
        assert_eq!(store.log_tree().await.unwrap().0, TreeSize(3));
    }
}

/// A SQLite store in `dir`, as itself and as a `Store`, and its log's sequencer.
async fn sqlite_with_sequencer(dir: &tempfile::TempDir) -> (Arc<sqlite::SqliteStore>, Arc<dyn Store>, Sequencer) {
    let sqlite = Arc::new(sqlite::SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
    let store: Arc<dyn Store> = sqlite.clone();
    let seq = Sequencer::start(store.clone()).await.unwrap();
    (sqlite, store, seq)
}

/// Only the pending certificates are answered before the WAL holding them is flushed
/// (`Store::record_pending`). On SQLite's records connection, a log batch that stores issued
/// certificates commits without a flush and is flushed before its caller is answered (the
/// pending record with it); every other durable write there flushes at commit, never
/// inheriting the pending records' mode. On PostgreSQL only the pending certificates'
/// connection has `synchronous_commit` off.
#[tokio::test]
async fn only_pending_certificates_are_answered_unflushed() {
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, store, seq) = sqlite_with_sequencer(&dir).await;
    let (normal, full) = (1, 2);
    let serial = Serial::random();
    store.record_pending(&[new_cert(&serial, "p")]).await.unwrap();
    assert_eq!(sqlite.records_synchronous().await, normal);
    assert_eq!(sqlite.wal_counts(), (1, 0), "committed, not flushed");
    let record = LoggedRecord::IssuedCertificate { serial: serial.clone(), cert_der: b"cert".to_vec() };
    seq.append(NewEntry { entry: b"issued".to_vec(), record: Some(record) }).await.unwrap();
    assert_eq!(sqlite.records_synchronous().await, normal, "the issuing batch commits unsynced");
    assert_eq!(sqlite.wal_counts(), (2, 2), "and is flushed before its caller is answered");
    assert_eq!(store.certificate(&serial).await.unwrap().unwrap().status, CertStatus::Issued);
    seq.append(NewEntry { entry: b"other".to_vec(), record: None }).await.unwrap();
    assert_eq!(sqlite.records_synchronous().await, full, "other batches commit synced");
    assert_eq!(sqlite.wal_counts(), (3, 3));
    store.record_pending(&[new_cert(&Serial::random(), "p")]).await.unwrap();
    store.record_timestamps(&[timestamp(Duration::from_secs(1))]).await.unwrap();
    assert_eq!(sqlite.records_synchronous().await, full, "time-stamps commit synced");
    assert_eq!(sqlite.wal_counts(), (5, 5), "and their flush covers the pending record before them");
    store.record_pending(&[new_cert(&Serial::random(), "p")]).await.unwrap();
    store.record_signatures(&[signature(Level::BB)]).await.unwrap();
    assert_eq!(sqlite.records_synchronous().await, full, "signatures commit synced");
    assert_eq!(sqlite.wal_counts(), (7, 7));

    let db = TestDatabase::new();
    let pg = postgres::PostgresStore::open(&db.url, 4).await.unwrap();
    pg.record_pending(&[new_cert(&Serial::random(), "p")]).await.unwrap();
    assert_eq!(pg.synchronous_commit().await, ("on".to_string(), "off".to_string()));
}

/// Batches whose row counts fall within one power of two run one prepared script on SQLite
/// (sqlx keeps statements by their text), and the rows that pad them to it are not written.
#[tokio::test]
async fn batches_of_nearby_sizes_reuse_their_prepared_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, store, seq) = sqlite_with_sequencer(&dir).await;
    let stamps = |n: u64| -> Vec<NewEntry> {
        (0..n)
            .map(|i| NewEntry {
                entry: i.to_be_bytes().to_vec(),
                record: Some(LoggedRecord::NewTimestamp(Box::new(timestamp(Duration::from_secs(i))))),
            })
            .collect()
    };
    let pending = |n: usize| -> Vec<NewCertificate> { (0..n).map(|_| new_cert(&Serial::random(), "p")).collect() };
    seq.append_all(stamps(5)).await.unwrap();
    store.record_pending(&pending(5)).await.unwrap();
    let prepared = sqlite.records_prepared().await;
    for n in [6, 7, 8, 5, 7] {
        seq.append_all(stamps(n)).await.unwrap();
        store.record_pending(&pending(n as usize)).await.unwrap();
    }
    // A batch's interior hashes depend on where in the tree it lands: 8 or 16 with the padding.
    assert!(sqlite.records_prepared().await <= prepared + 1, "{} after {prepared}", sqlite.records_prepared().await);
    assert_eq!(store.count_timestamps().await.unwrap(), 5 + 6 + 7 + 8 + 5 + 7);
    let (size, root) = store.log_tree().await.unwrap();
    let stored: Vec<Vec<u8>> = store.log_entries(0, 100).await.unwrap().into_iter().map(|(_, e)| e).collect();
    let fresh = tree::append(TreeSize(0), &stored, &MemoryHashes::new()).unwrap();
    assert_eq!((size, root), (TreeSize(38), fresh.root));
    let all: Vec<HashIndex> = (0..fresh.hashes.len() as u64).map(HashIndex).collect();
    assert_eq!(store.log_hashes(&all).await.unwrap(), fresh.hashes);
    assert!(store.log_hashes(&[HashIndex(fresh.hashes.len() as u64)]).await.is_err(), "no hash beyond the tree's");
    let listed = all_pages(store.as_ref(), ListQuery { limit: 100, ..Default::default() }).await;
    assert_eq!(listed.len(), 5 + 6 + 7 + 8 + 5 + 7);
}

/// The TBS is kept while a certificate is pending or abandoned (what the HSM was about to sign),
/// and emptied by each way a certificate, which holds it, is stored: its log batch, completion
/// with the log off, and a record written issued at once.
/// After a failed flush of the WAL no write is taken, a pending certificate's included, so that
/// nothing more is signed for a store that may have lost what it acknowledged.
#[tokio::test]
async fn after_a_failed_flush_no_write_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store: Arc<dyn Store> = Arc::new(sqlite::SqliteStore::open(&path).await.unwrap());
    let seq = Sequencer::start(store.clone()).await.unwrap();
    let serial = Serial::random();
    store.record_pending(&[new_cert(&serial, "p")]).await.unwrap();
    // The path then names another file than the WAL SQLite writes: flushing it would make
    // nothing durable, so the flush fails.
    let wal = dir.path().join("t.db-wal");
    std::fs::rename(&wal, dir.path().join("moved-wal")).unwrap();
    std::fs::write(&wal, b"").unwrap();
    let record = LoggedRecord::IssuedCertificate { serial, cert_der: b"cert".to_vec() };
    let e = seq.append(NewEntry { entry: b"issued".to_vec(), record: Some(record) }).await.unwrap_err();
    assert!(e.to_string().contains("restart trustd"), "{e}");
    let e = store.record_pending(&[new_cert(&Serial::random(), "p")]).await.unwrap_err();
    assert!(e.to_string().contains("restart trustd"), "{e}");
    let e = store.record_timestamps(&[timestamp(Duration::from_secs(1))]).await.unwrap_err();
    assert!(e.to_string().contains("restart trustd"), "{e}");
    assert!(store.ping().await.is_err(), "the health check says so");
}

#[tokio::test]
async fn the_tbs_is_kept_until_the_certificate_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(sqlite::SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
    let db = TestDatabase::new();
    let pg = Arc::new(postgres::PostgresStore::open(&db.url, 4).await.unwrap());
    enum Concrete {
        Sqlite(Arc<sqlite::SqliteStore>),
        Postgres(Arc<postgres::PostgresStore>),
    }
    impl Concrete {
        async fn tbs_len(&self, serial: &Serial) -> i64 {
            match self {
                Concrete::Sqlite(s) => s.tbs_len(serial).await,
                Concrete::Postgres(s) => s.tbs_len(serial).await,
            }
        }
    }
    let stores: [(Arc<dyn Store>, Concrete); 2] =
        [(sqlite.clone(), Concrete::Sqlite(sqlite)), (pg.clone(), Concrete::Postgres(pg))];
    for (store, concrete) in stores {
        let seq = Sequencer::start(store.clone()).await.unwrap();
        let [logged, completed, abandoned] = [(); 3].map(|()| Serial::random());
        let pending: Vec<_> = [&logged, &completed, &abandoned].map(|s| new_cert(s, "p")).into();
        store.record_pending(&pending).await.unwrap();
        assert_eq!(concrete.tbs_len(&logged).await, 2, "kept while pending");
        let record = LoggedRecord::IssuedCertificate { serial: logged.clone(), cert_der: b"cert".to_vec() };
        seq.append(NewEntry { entry: b"issued".to_vec(), record: Some(record) }).await.unwrap();
        store.complete_issued(&completed, b"cert").await.unwrap();
        store.abandon(&abandoned, "test").await.unwrap();
        let direct = Serial::random();
        store.record_issued(&new_cert(&direct, "p"), b"cert").await.unwrap();
        for s in [&logged, &completed, &direct] {
            assert_eq!(store.certificate(s).await.unwrap().unwrap().cert_der.as_deref(), Some(&b"cert"[..]));
            assert_eq!(concrete.tbs_len(s).await, 0, "{s}: emptied once the certificate is stored");
        }
        assert_eq!(concrete.tbs_len(&abandoned).await, 2, "kept with an abandoned record");
    }
}
