//! The OCSP responder in-process, over software keys, a fixed clock and a real SQLite store in a
//! temporary directory: every answer RFC 6960 §2.2–§2.3 defines that trustd gives.

use super::*;
use crate::ca::cert::{self, CeremonyCert};
use crate::clock::FixedClock;
use crate::keys::software::SoftwareKey;
use crate::keys::verify::verify_signature;
use crate::store::{NewCertificate, Origin};
use crate::testing;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{OcspResponseStatus, Request, TbsRequest};

mod fuzz;

/// 2026-11-25T00:00:00Z.
const NOW: u64 = 1_795_651_200;
const VALIDITY: Duration = Duration::from_secs(4 * 3600);

struct Fixture {
    responder: OcspResponder,
    store: Arc<dyn Store>,
    clock: Arc<FixedClock>,
    issuer: Certificate,
    responder_spki: spki::SubjectPublicKeyInfoOwned,
    _dir: tempfile::TempDir,
}

async fn fixture_with(responder_fails: Option<&str>) -> Fixture {
    let ca_key: Arc<dyn SigningKey> = Arc::new(SoftwareKey::p256(21));
    let ext = cert::ceremony_extensions(&CeremonyCert::Root, ca_key.public_key(), &[]).unwrap();
    let ca = testing::certify(ca_key, "Test Issuing CA", None, (1_577_836_800, 2_208_988_800), ext).await;
    let mut key = testing::certify(
        Arc::new(SoftwareKey::p256(22)),
        "Test OCSP Responder",
        Some(&ca),
        (1_577_836_800, 2_208_988_800),
        vec![],
    )
    .await;
    if let Some(cause) = responder_fails {
        key.key = Arc::new(SoftwareKey::p256(22).failing(cause));
    }
    let responder_spki = key.key.public_key().clone();
    let dir = tempfile::tempdir().unwrap();
    let store = testing::sqlite_store(&dir).await;
    let clock = Arc::new(FixedClock::at(Duration::from_secs(NOW)));
    let responder =
        OcspResponder::new(key, vec![(CaId::ISSUING, ca.clone())], store.clone(), VALIDITY, clock.clone()).unwrap();
    Fixture { responder, store, clock, issuer: ca.cert, responder_spki, _dir: dir }
}

/// A certificate of the issuing CA in the store, issued and, with `reason`, revoked at `NOW - 60`.
async fn stored(f: &Fixture, reason: Option<Reason>) -> Serial {
    let serial = Serial::random();
    let record = NewCertificate {
        serial: serial.clone(),
        ca: CaId::ISSUING,
        origin: Origin::Profile("tls-server".into()),
        subject: "CN=a.example.org".into(),
        sans: vec!["dns:a.example.org".into()],
        not_before: (NOW - 86_400) as i64,
        not_after: (NOW + 86_400 * 90) as i64,
        requester: "test".into(),
        tbs_der: vec![0x30, 0x00],
    };
    f.store.record_issued(&record, &[0x30, 0x00]).await.unwrap();
    if let Some(r) = reason {
        let revocation = Revocation { revoked_at: (NOW - 60) as i64, reason: r, invalidity_date: None };
        f.store.set_revocation(&serial, None, Some(revocation), "ops").await.unwrap();
    }
    serial
}

/// The CertID of `serial` under our issuer (RFC 6960 §4.1.1), hashed with `hash`.
fn cert_id(issuer: &Certificate, serial: &[u8], hash: const_oid::ObjectIdentifier) -> CertId {
    let name = issuer.tbs_certificate.subject.to_der().unwrap();
    let key = issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned { oid: hash, parameters: Some(der::Any::null()) },
        issuer_name_hash: OctetString::new(hash_with(&hash, &name).unwrap()).unwrap(),
        issuer_key_hash: OctetString::new(hash_with(&hash, key).unwrap()).unwrap(),
        serial_number: SerialNumber::new(serial).unwrap(),
    }
}

fn request(ids: Vec<CertId>, nonce: Option<&[u8]>) -> Vec<u8> {
    let request_extensions = nonce.map(|n| {
        vec![x509_cert::ext::Extension {
            extn_id: ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(OctetString::new(n).unwrap().to_der().unwrap()).unwrap(),
        }]
    });
    OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: ids
                .into_iter()
                .map(|req_cert| Request { req_cert, single_request_extensions: None })
                .collect(),
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

fn serial_bytes(s: &Serial) -> Vec<u8> {
    s.to_x509().unwrap().as_bytes().to_vec()
}

/// The response's status and, when successful, its BasicOCSPResponse after checking the
/// responder's signature.
fn open(f: &Fixture, der: &[u8]) -> (OcspResponseStatus, Option<BasicOcspResponse>) {
    let r = OcspResponse::from_der(der).unwrap();
    let basic = r.response_bytes.map(|b| {
        let basic = BasicOcspResponse::from_der(b.response.as_bytes()).unwrap();
        let tbs = basic.tbs_response_data.to_der().unwrap();
        let sig = basic.signature.as_bytes().unwrap();
        verify_signature(&f.responder_spki, &basic.signature_algorithm, None, sig, &tbs).expect("responder signed");
        basic
    });
    (r.response_status, basic)
}

#[tokio::test]
async fn good_revoked_and_unknown() {
    let f = fixture_with(None).await;
    let good = stored(&f, None).await;
    let compromised = stored(&f, Some(Reason::KeyCompromise)).await;
    let unspecified = stored(&f, Some(Reason::Unspecified)).await;
    let sha1 = ID_SHA_1;
    let ids = vec![
        cert_id(&f.issuer, &serial_bytes(&good), sha1),
        cert_id(&f.issuer, &serial_bytes(&compromised), HashAlg::Sha256.oid()),
        cert_id(&f.issuer, &serial_bytes(&unspecified), sha1),
        cert_id(&f.issuer, &serial_bytes(&Serial::random()), sha1),
    ];
    let (status, basic) = open(&f, &f.responder.respond(&request(ids.clone(), None)).await.der);
    assert_eq!(status, OcspResponseStatus::Successful);
    let basic = basic.unwrap();
    let data = &basic.tbs_response_data;
    assert_eq!(data.produced_at.0.to_unix_duration().as_secs(), NOW);
    assert_eq!(basic.certs.as_ref().map(Vec::len), Some(1), "the delegated responder's certificate");
    let statuses: Vec<_> = data.responses.iter().map(|r| r.cert_status).collect();
    assert_eq!(statuses[0], CertStatus::good());
    let revoked_at = |s: &CertStatus| match s {
        CertStatus::Revoked(r) => (r.revocation_time.0.to_unix_duration().as_secs(), r.revocation_reason),
        other => panic!("not revoked: {other:?}"),
    };
    assert_eq!(revoked_at(&statuses[1]), (NOW - 60, Some(CrlReason::KeyCompromise)));
    assert_eq!(revoked_at(&statuses[2]), (NOW - 60, None), "unspecified is left out");
    assert_eq!(statuses[3], CertStatus::unknown());
    for (r, id) in data.responses.iter().zip(&ids) {
        assert_eq!(&r.cert_id, id);
        assert_eq!(r.this_update.0.to_unix_duration().as_secs(), NOW);
        assert_eq!(r.next_update.unwrap().0.to_unix_duration().as_secs(), NOW + VALIDITY.as_secs());
    }
    assert!(data.response_extensions.is_none());
}

/// RFC 5019 §2.2.1: a lone good answer without a nonce is pre-signed and reused; a revocation
/// is answered at once all the same; a nonce is echoed (RFC 8954) and never cached.
#[tokio::test]
async fn cache_and_nonce() {
    let f = fixture_with(None).await;
    let serial = stored(&f, None).await;
    let req = request(vec![cert_id(&f.issuer, &serial_bytes(&serial), ID_SHA_1)], None);
    let first = f.responder.respond(&req).await.der;
    f.clock.set(Duration::from_secs(NOW + 60));
    assert_eq!(f.responder.respond(&req).await.der, first, "reused within half the validity");
    f.clock.set(Duration::from_secs(NOW + VALIDITY.as_secs() / 2 + 1));
    let (_, fresh) = open(&f, &f.responder.respond(&req).await.der);
    assert_eq!(
        fresh.unwrap().tbs_response_data.produced_at.0.to_unix_duration().as_secs(),
        NOW + VALIDITY.as_secs() / 2 + 1
    );

    let current = f.store.certificate(&serial).await.unwrap().unwrap().revocation;
    let revocation = Revocation { revoked_at: NOW as i64, reason: Reason::Superseded, invalidity_date: None };
    f.store.set_revocation(&serial, current, Some(revocation), "ops").await.unwrap();
    let (_, basic) = open(&f, &f.responder.respond(&req).await.der);
    assert!(matches!(basic.unwrap().tbs_response_data.responses[0].cert_status, CertStatus::Revoked(_)));

    let nonce = [7u8; 32];
    let with_nonce = request(vec![cert_id(&f.issuer, &serial_bytes(&serial), ID_SHA_1)], Some(&nonce));
    let (_, basic) = open(&f, &f.responder.respond(&with_nonce).await.der);
    let ext = basic.unwrap().tbs_response_data.response_extensions.unwrap();
    assert_eq!(ext[0].extn_id, ID_PKIX_OCSP_NONCE);
    assert_eq!(OctetString::from_der(ext[0].extn_value.as_bytes()).unwrap().as_bytes(), &nonce);

    // RFC 8954 §2.1: 1 to 32 octets; no nonce at all, or one of 0 or 33 octets, is refused.
    let id = || vec![cert_id(&f.issuer, &serial_bytes(&serial), ID_SHA_1)];
    for (len, ok) in [(1, true), (32, true), (0, false), (33, false), (4000, false)] {
        let answer = f.responder.respond(&request(id(), Some(&vec![9u8; len]))).await;
        let status = OcspResponse::from_der(&answer.der).unwrap().response_status;
        let want = if ok { OcspResponseStatus::Successful } else { OcspResponseStatus::MalformedRequest };
        assert_eq!(status, want, "nonce of {len} octets");
        assert_eq!(answer.fresh_until.is_some(), ok, "only successful answers may be cached");
    }
    // A nonce extension whose value is not an OCTET STRING.
    let mut bad = OcspRequest::from_der(&with_nonce).unwrap();
    bad.tbs_request.request_extensions.as_mut().unwrap()[0].extn_value = OctetString::new(vec![0x05, 0x00]).unwrap();
    let answer = f.responder.respond(&bad.to_der().unwrap()).await;
    assert_eq!(OcspResponse::from_der(&answer.der).unwrap().response_status, OcspResponseStatus::MalformedRequest);
    // A successful answer is fresh until its nextUpdate.
    let answer = f.responder.respond(&req).await;
    let now = NOW + VALIDITY.as_secs() / 2 + 1;
    assert_eq!(answer.fresh_until, Some(now + VALIDITY.as_secs()));
}

#[tokio::test]
async fn unauthorized_malformed_and_try_later() {
    let f = fixture_with(None).await;
    let serial = serial_bytes(&stored(&f, None).await);
    let status = |der: Vec<u8>| {
        let f = &f;
        async move { OcspResponse::from_der(&f.responder.respond(&der).await.der).unwrap().response_status }
    };
    // Another issuer's certificate (its key hash differs): unauthorized (RFC 5019 §2.2.3).
    let mut other = cert_id(&f.issuer, &serial, ID_SHA_1);
    other.issuer_key_hash = OctetString::new(vec![0; 20]).unwrap();
    assert_eq!(status(request(vec![other], None)).await, OcspResponseStatus::Unauthorized);
    // An unknown hash algorithm cannot name our issuer either.
    let mut md5 = cert_id(&f.issuer, &serial, ID_SHA_1);
    md5.hash_algorithm.oid = const_oid::db::rfc5912::ID_MD_5;
    assert_eq!(status(request(vec![md5], None)).await, OcspResponseStatus::Unauthorized);
    // What does not parse, an empty list and more CertIDs than answered: malformedRequest.
    let one = cert_id(&f.issuer, &serial, ID_SHA_1);
    let mut trailing = request(vec![one.clone()], None);
    trailing.push(0);
    for (what, der) in [
        ("empty", vec![]),
        ("garbage", b"GET / HTTP/1.1".to_vec()),
        ("trailing byte", trailing),
        ("no CertID", request(vec![], None)),
        ("17 CertIDs", request(vec![one.clone(); MAX_REQUESTS + 1], None)),
    ] {
        assert_eq!(status(der).await, OcspResponseStatus::MalformedRequest, "{what}");
    }
    assert_eq!(status(request(vec![one.clone(); MAX_REQUESTS], None)).await, OcspResponseStatus::Successful);

    // A responder key that fails: tryLater, and the cause stays in the log.
    let failing = fixture_with(Some("CKR_DEVICE_REMOVED")).await;
    let serial = serial_bytes(&stored(&failing, None).await);
    let der = failing.responder.respond(&request(vec![cert_id(&failing.issuer, &serial, ID_SHA_1)], None)).await.der;
    assert_eq!(OcspResponse::from_der(&der).unwrap().response_status, OcspResponseStatus::TryLater);
    assert!(!String::from_utf8_lossy(&der).contains("CKR_"));
}
