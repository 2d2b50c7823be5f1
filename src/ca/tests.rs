//! The CA core in-process, over software keys, a fixed clock and a real SQLite store in a
//! temporary directory: issuance and its validity window, refusals that store nothing, the
//! issuance a failing key abandons, revocation, CRL contents and numbering, and
//! reconciliation of what the log missed.

use super::*;
use crate::clock::FixedClock;
use crate::keys::software::SoftwareKey;
use crate::keys::verify::verify_signature;
use crate::testing;
use const_oid::AssociatedOid;
use der::asn1::Ia5String;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{CrlNumber, CrlReason, SubjectAltName};

mod fuzz;

/// 2026-11-25T00:00:00Z.
const NOW: u64 = 1_795_651_200;
const DAY: u64 = 86_400;

struct Fixture {
    ca: CertificateAuthority,
    /// The key ceremony's signer of the root's CRLs.
    root_crls: CrlSigner,
    clock: Arc<FixedClock>,
    store: Arc<dyn Store>,
    issuing_spki: spki::SubjectPublicKeyInfoOwned,
    root_spki: spki::SubjectPublicKeyInfoOwned,
    _dir: tempfile::TempDir,
}

async fn fixture_with(issuing_fails: Option<&str>) -> Fixture {
    let issuing = SoftwareKey::p256(12);
    let issuing_spki = issuing.public_key().clone();
    let issuing: Arc<dyn SigningKey> = match issuing_fails {
        Some(cause) => Arc::new(issuing.failing(cause)),
        None => Arc::new(issuing),
    };
    let root_spki = SoftwareKey::p256(11).public_key().clone();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::at(Duration::from_secs(NOW)));
    let (ca, store, root_crls) = testing::certificate_authority(&dir, issuing, clock.clone()).await;
    Fixture { ca, root_crls, clock, store, issuing_spki, root_spki, _dir: dir }
}

async fn fixture() -> Fixture {
    fixture_with(None).await
}

/// A PKCS#10 request for `dns` from a subscriber's key (in software: it is not a key of the
/// service).
fn csr(seed: u8, cn: &str, dns: &[&str]) -> Vec<u8> {
    let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    let subject = cert::build_name(&[(crate::policy::AttrKind::CommonName, cn.to_owned())]).unwrap();
    let mut b = x509_cert::builder::RequestBuilder::new(subject, &key).unwrap();
    let sans = dns.iter().map(|d| GeneralName::DnsName(Ia5String::new(d).unwrap())).collect();
    b.add_extension(&SubjectAltName(sans)).unwrap();
    let req = x509_cert::builder::Builder::build::<p256::ecdsa::DerSignature>(b).unwrap();
    req.to_der().unwrap()
}

fn request(profile: &str, csr: Vec<u8>, validity: Option<Duration>) -> IssueRequest {
    IssueRequest { profile: profile.into(), csr, validity, requester: "test-client".into(), scope: NameScope::Any }
}

fn verifies(spki: &spki::SubjectPublicKeyInfoOwned, alg: &spki::AlgorithmIdentifierOwned, sig: &[u8], tbs: &[u8]) {
    verify_signature(spki, alg, None, sig, tbs).expect("signed by the CA's key");
}

async fn stored(f: &Fixture) -> Vec<CertificateRecord> {
    let q = ListQuery { profile: None, subject_contains: None, status: None, limit: 100, page_token: None };
    f.store.list_certificates(&q).await.unwrap().records
}

#[tokio::test]
async fn issues_within_the_profile_window_and_records_it() {
    let f = fixture().await;
    let issued =
        f.ca.issue(request("tls-server", csr(1, "www.example.org", &["www.example.org"]), None)).await.unwrap();
    let c = Certificate::from_der(&issued.cert_der).unwrap();
    let tbs = &c.tbs_certificate;
    let profile = f.ca.policies.profile("tls-server").unwrap();
    let not_before = NOW - profile.backdate.as_secs();
    assert_eq!(tbs.validity.not_before.to_unix_duration().as_secs(), not_before);
    assert_eq!(
        tbs.validity.not_after.to_unix_duration().as_secs(),
        not_before + profile.backdate.as_secs() + profile.default_validity.as_secs()
    );
    assert_eq!(tbs.serial_number.as_bytes(), issued.serial.to_x509().unwrap().as_bytes());
    assert_eq!(tbs.issuer.to_string(), "CN=Test Issuing CA");
    verifies(&f.issuing_spki, &c.signature_algorithm, c.signature.raw_bytes(), &tbs.to_der().unwrap());
    let rec = f.ca.certificate(&issued.serial.to_string()).await.unwrap();
    assert_eq!(
        (rec.status, rec.origin.name().as_ref(), rec.requester.as_str()),
        (CertStatus::Issued, "tls-server", "test-client")
    );
    assert_eq!(rec.cert_der.as_deref(), Some(&issued.cert_der[..]));
    assert_eq!(rec.sans, ["dns:www.example.org"]);

    // A requested validity at the profile's maximum is granted exactly.
    let max = profile.max_validity;
    let issued =
        f.ca.issue(request("tls-server", csr(2, "a.example.org", &["a.example.org"]), Some(max))).await.unwrap();
    let v = Certificate::from_der(&issued.cert_der).unwrap().tbs_certificate.validity;
    assert_eq!(v.not_after.to_unix_duration().as_secs(), NOW + max.as_secs());
}

/// Refusals store nothing: unknown profile, a validity past the maximum, a name the profile
/// forbids, a CSR whose signature does not verify, a certificate that would outlive its issuer.
#[tokio::test]
async fn refusals_store_nothing() {
    let f = fixture().await;
    let good = || csr(3, "b.example.org", &["b.example.org"]);
    let mut corrupt = good();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    let day = Duration::from_secs(DAY);
    type Expected = fn(&CaError) -> bool;
    let cases: Vec<(&str, IssueRequest, Expected)> = vec![
        ("unknown profile", request("nope", good(), None), |e| matches!(e, CaError::UnknownProfile { .. })),
        ("too long", request("tls-server", good(), Some(day * 200)), |e| matches!(e, CaError::ValidityTooLong { .. })),
        ("not a SAN", request("tls-server", csr(3, "c.example.org", &["b.example.org"]), None), |e| {
            matches!(e, CaError::SubjectNotAllowed(_))
        }),
        ("bad signature", request("tls-server", corrupt, None), |e| matches!(e, CaError::CsrSignature(_))),
        ("empty CSR", request("tls-server", vec![], None), |e| matches!(e, CaError::BadCsr(_))),
    ];
    for (what, req, expected) in cases {
        let e = f.ca.issue(req).await.expect_err(what);
        assert!(expected(&e), "{what}: {e}");
    }
    // Late in the issuing CA's life, the profile's default validity would outlive it.
    f.clock.set(Duration::from_secs(testing::CA_VALIDITY.1 - 30 * DAY));
    let e = f.ca.issue(request("tls-server", good(), None)).await.unwrap_err();
    assert!(matches!(e, CaError::ValidityTooLong { .. }), "{e}");
    assert!(stored(&f).await.is_empty());
    // 31 days before the end, 30 days are still granted.
    assert!(f.ca.issue(request("tls-server", good(), Some(day * 29))).await.is_ok());
}

/// A key that fails leaves the recorded issuance abandoned (with the cause) and hands nothing
/// out.
#[tokio::test]
async fn a_failed_signature_abandons_the_issuance() {
    let f = fixture_with(Some("CKR_DEVICE_ERROR")).await;
    let e = f.ca.issue(request("tls-server", csr(4, "d.example.org", &["d.example.org"]), None)).await.unwrap_err();
    assert!(matches!(e, CaError::Key(KeyError::Failed(_))), "{e}");
    let recs = stored(&f).await;
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].status, recs[0].cert_der.is_none()), (CertStatus::Abandoned, true));
}

fn crl_extension<T: der::DecodeOwned>(crl: &CertificateList, oid: const_oid::ObjectIdentifier) -> T {
    let e = crl.tbs_cert_list.crl_extensions.iter().flatten().find(|e| e.extn_id == oid).unwrap();
    T::from_der(e.extn_value.as_bytes()).unwrap()
}

/// RFC 5280 §5: the CRL lists exactly the revoked certificates with their dates, reason codes
/// (none for unspecified) and invalidity dates; a hold released leaves it; cRLNumber grows by
/// one with every CRL; thisUpdate and nextUpdate follow the clock and the schedule.
#[tokio::test]
async fn crls_list_what_is_revoked_and_are_numbered() {
    let f = fixture().await;
    let mut serials = Vec::new();
    for i in 0..4u8 {
        let name = format!("h{i}.example.org");
        let issued = f.ca.issue(request("tls-server", csr(10 + i, &name, &[&name]), None)).await.unwrap();
        serials.push(issued.serial.to_string());
    }
    // Between notBefore (a minute of backdating) and now (RFC 5280 §5.3.2).
    let invalid_since = (NOW - 30) as i64;
    f.ca.revoke(&serials[0], Reason::KeyCompromise, Some(invalid_since), "ops", RevokeScope::Any).await.unwrap();
    f.ca.revoke(&serials[1], Reason::Unspecified, None, "ops", RevokeScope::Any).await.unwrap();
    f.clock.set(Duration::from_secs(NOW + 60));
    f.ca.revoke(&serials[2], Reason::CertificateHold, None, "ops", RevokeScope::Any).await.unwrap();
    // Revoking again with the same reason changes nothing; the CA's own reasons are refused.
    assert!(!f.ca.revoke(&serials[0], Reason::KeyCompromise, None, "ops", RevokeScope::Any).await.unwrap().changed);
    assert!(matches!(
        f.ca.revoke(&serials[3], Reason::CaCompromise, None, "ops", RevokeScope::Any).await,
        Err(CaError::BadReason(_))
    ));
    assert!(matches!(
        f.ca.revoke("0badc0de", Reason::Superseded, None, "ops", RevokeScope::Any).await,
        Err(CaError::Store(StoreError::NotFound(_)))
    ));

    f.clock.set(Duration::from_secs(NOW + 120));
    let first = CertificateList::from_der(&f.ca.publish_crl().await.unwrap()).unwrap();
    let tbs = &first.tbs_cert_list;
    verifies(&f.issuing_spki, &first.signature_algorithm, first.signature.raw_bytes(), &tbs.to_der().unwrap());
    assert_eq!(tbs.this_update.to_unix_duration().as_secs(), NOW + 120);
    assert_eq!(tbs.next_update.unwrap().to_unix_duration().as_secs(), NOW + 120 + 7 * DAY);
    assert_eq!(crl_extension::<CrlNumber>(&first, CrlNumber::OID).0.as_bytes(), &[1]);
    let entries = tbs.revoked_certificates.clone().unwrap();
    let listed: Vec<String> = entries.iter().map(|e| hex::encode(e.serial_number.as_bytes())).collect();
    assert_eq!(listed.len(), 3);
    for (i, reason, date) in
        [(0, Some(CrlReason::KeyCompromise), NOW), (1, None, NOW), (2, Some(CrlReason::CertificateHold), NOW + 60)]
    {
        let e = entries.iter().find(|e| hex::encode(e.serial_number.as_bytes()) == serials[i]).unwrap();
        assert_eq!(e.revocation_date.to_unix_duration().as_secs(), date, "entry {i}");
        let ext =
            |oid| e.crl_entry_extensions.iter().flatten().find(|x| x.extn_id == oid).map(|x| x.extn_value.clone());
        assert_eq!(ext(CrlReason::OID).map(|v| CrlReason::from_der(v.as_bytes()).unwrap()), reason, "entry {i}");
        let invalidity = ext(const_oid::db::rfc5280::ID_CE_INVALIDITY_DATE)
            .map(|v| der::asn1::GeneralizedTime::from_der(v.as_bytes()).unwrap().to_unix_duration().as_secs());
        assert_eq!(invalidity, (i == 0).then_some(invalid_since as u64), "entry {i}");
    }
    assert!(!listed.contains(&serials[3]));
    // The CA signs no root CRL (the root key is the ceremony's); the ceremony's, signed by the
    // root, is served once in the store: empty, revokedCertificates absent (§5.1.2.6).
    assert!(f.ca.crl(CaId::Root).is_none());
    let signed = f.root_crls.publish(f.store.as_ref(), NOW, Duration::from_secs(365 * DAY)).await.unwrap();
    assert_eq!((signed.number, signed.next_update), (1, (NOW + 365 * DAY) as i64));
    assert!(f.ca.adopt_stored_crls().await.unwrap(), "both CAs' CRLs are served");
    assert_eq!(f.ca.crl_times(CaId::Root), Some((NOW, NOW + 365 * DAY)));
    let root = CertificateList::from_der(&f.ca.crl(CaId::Root).unwrap()).unwrap();
    verifies(
        &f.root_spki,
        &root.signature_algorithm,
        root.signature.raw_bytes(),
        &root.tbs_cert_list.to_der().unwrap(),
    );
    assert!(root.tbs_cert_list.revoked_certificates.is_none());

    // The hold released: the next CRL no longer lists it, and its number is the next one.
    f.ca.revoke(&serials[2], Reason::RemoveFromCrl, None, "ops", RevokeScope::Any).await.unwrap();
    let second = CertificateList::from_der(&f.ca.publish_crl().await.unwrap()).unwrap();
    assert_eq!(crl_extension::<CrlNumber>(&second, CrlNumber::OID).0.as_bytes(), &[2]);
    assert_eq!(second.tbs_cert_list.revoked_certificates.as_ref().map(|r| r.len()), Some(2));
    let rec = f.ca.certificate(&serials[2]).await.unwrap();
    assert_eq!((rec.status, rec.revocation), (CertStatus::Issued, None));
    assert_eq!(f.ca.crl(CaId::ISSUING).unwrap().as_slice(), second.to_der().unwrap().as_slice());
}

/// A root certificate that did not issue the issuing CA's is refused: the CA would hand relying
/// parties a chain that does not verify.
#[tokio::test]
async fn a_root_that_did_not_issue_the_issuing_ca_is_refused() {
    let f = fixture().await;
    use cert::CeremonyCert;
    let key = |seed| -> Arc<dyn SigningKey> { Arc::new(SoftwareKey::p256(seed)) };
    let root_ext =
        |k: &Arc<dyn SigningKey>| cert::ceremony_extensions(&CeremonyCert::Root, k.public_key(), &[]).unwrap();
    let root = testing::certify(key(11), "Test Root", None, testing::CA_VALIDITY, root_ext(&key(11))).await;
    let stranger = testing::certify(key(13), "Test Root", None, testing::CA_VALIDITY, root_ext(&key(13))).await;
    let urls = UrlContext { base: "http://ca.test".into(), ca: CaId::ISSUING };
    let kind = CeremonyCert::Issuing { urls: &urls };
    let issuing_ext =
        cert::ceremony_extensions(&kind, key(12).public_key(), &subject_key_id(&root.cert).unwrap()).unwrap();
    let policies = Arc::new(Policies::load(std::path::Path::new("policies")).unwrap());
    let schedule = CrlSchedule { validity: Duration::from_secs(DAY), refresh: Duration::from_secs(3600) };
    for (root_der, ok) in [(root.der.clone(), true), (stranger.der, false), (b"not DER".to_vec(), false)] {
        let ext = issuing_ext.clone();
        let issuing = testing::certify(key(12), "Test Issuing CA", Some(&root), testing::CA_VALIDITY, ext).await;
        let made = CertificateAuthority::new(
            issuing,
            root_der,
            policies.clone(),
            f.store.clone(),
            "http://ca.test",
            schedule,
            f.clock.clone(),
        );
        assert_eq!(made.is_ok(), ok, "{:?}", made.err());
    }
}

/// Two CAs on one store (replicas on one database) serve the newest CRL either published: a
/// CRL is in the store when it is served, the other adopts it, and numbers go on from the
/// newest either made.
#[tokio::test]
async fn replicas_serve_the_newest_crl_either_published() {
    let f = fixture().await;
    let (other, ..) = testing::certificate_authority(&f._dir, Arc::new(SoftwareKey::p256(12)), f.clock.clone()).await;
    let number = |der: &[u8]| {
        let crl = CertificateList::from_der(der).unwrap();
        crl_extension::<CrlNumber>(&crl, CrlNumber::OID).0.as_bytes().to_vec()
    };
    assert!(!other.adopt_stored_crls().await.unwrap(), "nothing published yet");
    assert!(other.crl(CaId::ISSUING).is_none());
    let first = f.ca.publish_crl().await.unwrap();
    assert!(!other.adopt_stored_crls().await.unwrap(), "no root CRL from the ceremony yet");
    assert_eq!(other.crl(CaId::ISSUING).unwrap(), first);
    f.root_crls.publish(f.store.as_ref(), NOW, Duration::from_secs(DAY)).await.unwrap();
    assert!(other.adopt_stored_crls().await.unwrap());
    assert!(f.ca.adopt_stored_crls().await.unwrap());
    assert_eq!(other.crl(CaId::Root), f.ca.crl(CaId::Root));
    assert_eq!(other.crl_times(CaId::ISSUING), Some((NOW, NOW + 7 * DAY)));

    let second = other.publish_crl().await.unwrap();
    assert_eq!(number(&second), [2]);
    assert_eq!(number(&f.ca.crl(CaId::ISSUING).unwrap()), [1], "until it looks");
    assert!(f.ca.adopt_stored_crls().await.unwrap());
    assert_eq!(f.ca.crl(CaId::ISSUING).unwrap(), second);
    assert_eq!(number(&f.ca.publish_crl().await.unwrap()), [3], "numbered after the newest either made");
}

/// An invalidity date in the future or before notBefore is refused and changes nothing; and
/// a stored revocation the CRL cannot carry (damage: the rules never store one) neither stops
/// publication nor leaves its serial off the CRL.
#[tokio::test]
async fn bad_invalidity_dates_are_refused_and_no_stored_row_stops_the_crl() {
    let f = fixture().await;
    let mut serials = Vec::new();
    for i in 0..3u8 {
        let name = format!("d{i}.example.org");
        serials.push(f.ca.issue(request("tls-server", csr(20 + i, &name, &[&name]), None)).await.unwrap().serial);
    }
    let s0 = serials[0].to_string();
    for bad in [NOW as i64 + 1, i64::MAX, NOW as i64 - 61, i64::MIN, -1] {
        let e = f.ca.revoke(&s0, Reason::KeyCompromise, Some(bad), "ops", RevokeScope::Any).await.unwrap_err();
        assert!(matches!(e, CaError::BadInvalidityDate(_)), "{bad}: {e}");
    }
    assert_eq!(f.store.certificate(&serials[0]).await.unwrap().unwrap().status, CertStatus::Issued, "nothing stored");

    // Damage straight in the store: a date past year 9999 (an unreadable reason code is the
    // store's to report, see store::sqlite's tests).
    let far = 400_000_000_000;
    let damaged = Revocation { revoked_at: far, reason: Reason::KeyCompromise, invalidity_date: Some(far) };
    f.store.set_revocation(&serials[1], None, Some(damaged), "intruder").await.unwrap();
    let fine = Revocation { revoked_at: NOW as i64, reason: Reason::Superseded, invalidity_date: None };
    f.store.set_revocation(&serials[2], None, Some(fine), "ops").await.unwrap();
    let crl = CertificateList::from_der(&f.ca.publish_crl().await.unwrap()).unwrap();
    let entries = crl.tbs_cert_list.revoked_certificates.clone().unwrap();
    let find = |s: &Serial| entries.iter().find(|e| e.serial_number.as_bytes() == s.as_bytes()).unwrap().clone();
    let d = find(&serials[1]);
    assert_eq!(d.revocation_date.to_unix_duration().as_secs(), NOW, "the CRL's own thisUpdate");
    let exts = d.crl_entry_extensions.unwrap();
    assert_eq!(exts.len(), 1, "the reason, not the date it cannot carry");
    assert_eq!(exts[0].extn_id, x509_cert::ext::pkix::CrlReason::OID);
    let ok = find(&serials[2]);
    assert_eq!(ok.crl_entry_extensions.unwrap().len(), 1, "the reason code");
}

/// The fixture's CA logging through a sequencer over [`testing::FlakyLog`], with its store and the
/// directory that holds it.
async fn logged() -> (Arc<CertificateAuthority>, Arc<testing::FlakyLog>, Arc<dyn Store>, tempfile::TempDir) {
    let Fixture { ca, store, _dir, .. } = fixture().await;
    let flaky = Arc::new(testing::FlakyLog::new(store.clone()));
    let seq = Sequencer::start(flaky.clone()).await.unwrap();
    (Arc::new(ca.with_log(seq)), flaky, store, _dir)
}

/// The certificates in the log's entries, by serial, in log order.
async fn logged_serials(store: &dyn Store) -> Vec<Vec<u8>> {
    let (size, _) = store.log_tree().await.unwrap();
    let mut out = Vec::new();
    for (_, bytes) in store.log_entries(0, size.0).await.unwrap() {
        match LogEntry::decode(&bytes).unwrap() {
            LogEntry::CertificateIssued(c) => out.push(
                Certificate::from_der(&c.certificate_der).unwrap().tbs_certificate.serial_number.as_bytes().to_vec(),
            ),
            LogEntry::Revocation(r) => out.push([b"revoked:".as_slice(), &r.serial].concat()),
            other => panic!("unexpected entry {other:?}"),
        }
    }
    out
}

/// A certificate whose log batch fails is neither stored as issued nor logged: withheld, its
/// record abandoned. A revocation whose entry could not be sequenced while serving (the caller
/// was refused, the change stays stored) reaches the log at the next periodic reconciliation,
/// not only at the next start.
#[tokio::test]
async fn what_the_log_missed_while_serving_is_appended_by_the_next_reconciliation() {
    let (ca, flaky, store, _dir) = logged().await;
    let first = ca.issue(request("tls-server", csr(30, "a.example.org", &["a.example.org"]), None)).await.unwrap();
    flaky.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = ca.issue(request("tls-server", csr(31, "b.example.org", &["b.example.org"]), None)).await.unwrap_err();
    assert!(matches!(e, CaError::Log(_)), "{e}");
    let e =
        ca.revoke(&first.serial.to_string(), Reason::KeyCompromise, None, "ops", RevokeScope::Any).await.unwrap_err();
    assert!(matches!(e, CaError::Log(_)), "{e}");
    assert!(
        store.unlogged_certificates(1000).await.unwrap().is_empty(),
        "the withheld certificate is not stored issued"
    );
    let all = store.list_certificates(&ListQuery { limit: 10, ..Default::default() }).await.unwrap().records;
    let statuses: Vec<_> = all.iter().map(|r| (r.status, r.cert_der.is_some())).collect();
    assert_eq!(statuses, [(CertStatus::Abandoned, false), (CertStatus::Revoked, true)], "newest first");
    assert_eq!(store.unlogged_revocations(Duration::ZERO, 1000).await.unwrap().len(), 1);

    // While the log still fails, a reconciliation fails too and the loop keeps going.
    let task = tokio::spawn(ca.clone().run_reconciliation(Duration::from_millis(20), Duration::ZERO));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.unlogged_revocations(Duration::ZERO, 1000).await.unwrap().len(), 1);
    flaky.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !store.unlogged_revocations(Duration::ZERO, 1000).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "not reconciled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let revoked = [b"revoked:".as_slice(), first.serial.as_bytes()].concat();
    assert_eq!(logged_serials(store.as_ref()).await, vec![first.serial.as_bytes().to_vec(), revoked]);
}

/// Reconciliation running as often as it can beside concurrent issuances and revocations
/// logs each exactly once: what is between store and log is never taken for missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_never_logs_twice_what_is_on_its_way() {
    let (ca, _flaky, store, _dir) = logged().await;
    let task = tokio::spawn(ca.clone().run_reconciliation(Duration::from_micros(100), Duration::ZERO));
    let jobs: Vec<_> = (0..48u8)
        .map(|i| {
            let ca = ca.clone();
            tokio::spawn(async move {
                let name = format!("r{i}.example.org");
                let issued = ca.issue(request("tls-server", csr(40 + i, &name, &[&name]), None)).await.unwrap();
                if i % 3 == 0 {
                    ca.revoke(&issued.serial.to_string(), Reason::Superseded, None, "ops", RevokeScope::Any)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for j in jobs {
        j.await.unwrap();
    }
    task.abort();
    let logged = logged_serials(store.as_ref()).await;
    let distinct: std::collections::BTreeSet<_> = logged.iter().collect();
    assert_eq!(distinct.len(), logged.len(), "an entry logged twice");
    assert_eq!(logged.len(), 48 + 16);
}

/// More records missing from the log than the sequencer's queue holds (the certificates issued
/// and revoked while the log was off, say) are all appended when it is on, a page at a time,
/// each once; with them appended in one go, start-up failed ("too many entries waiting").
#[tokio::test]
async fn more_missing_records_than_the_sequencer_holds_are_all_appended() {
    let Fixture { ca, store, _dir, .. } = fixture().await;
    let n = 4 * crate::batch::MAX_BATCH + 1;
    let revoked = Revocation { revoked_at: NOW as i64, reason: Reason::Superseded, invalidity_date: None };
    for i in 0..n {
        let serial = Serial::random();
        let record = NewCertificate {
            serial: serial.clone(),
            ca: CaId::ISSUING,
            origin: Origin::Profile("tls-server".into()),
            subject: format!("CN=c{i}"),
            sans: vec![],
            not_before: 0,
            not_after: 1,
            requester: "test-client".into(),
            tbs_der: vec![0x30, 0],
        };
        store.record_issued(&record, &[0x30, 0]).await.unwrap();
        store.set_revocation(&serial, None, Some(revoked), "ops").await.unwrap();
    }
    let ca = ca.with_log(Sequencer::start(store.clone()).await.unwrap());
    assert_eq!(ca.log_unsequenced(Duration::ZERO).await.unwrap(), (n, n));
    assert!(store.unlogged_certificates(1).await.unwrap().is_empty());
    assert!(store.unlogged_revocations(Duration::ZERO, 1).await.unwrap().is_empty());
    assert_eq!(store.log_tree().await.unwrap().0 .0, 2 * n as u64);
    assert_eq!(ca.log_unsequenced(Duration::ZERO).await.unwrap(), (0, 0), "each once");
}

/// Records that reconciliation appended but the store still has as unlogged stop it with an
/// error, rather than being appended again and again.
#[tokio::test]
async fn records_appended_but_not_marked_logged_are_not_appended_again() {
    let (ca, flaky, store, _dir) = logged().await;
    let issued = ca.issue(request("tls-server", csr(50, "a.example.org", &["a.example.org"]), None)).await.unwrap();
    flaky.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    ca.revoke(&issued.serial.to_string(), Reason::Superseded, None, "ops", RevokeScope::Any).await.unwrap_err();
    flaky.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    flaky.forgetful.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = ca.log_unsequenced(Duration::ZERO).await.unwrap_err();
    assert!(e.to_string().contains("still unlogged"), "{e}");
    assert_eq!(store.log_tree().await.unwrap().0 .0, 2, "the certificate, and the revocation once");
}
