//! The TSA core in-process, over a software key, an injected clock and a record writer that
//! keeps what it is given: every RFC 3161 §2.4.2 failure status, genTime precision and
//! accuracy, certReq, the nonce, and what is (and is not) recorded.

use super::*;
use crate::clock::FixedClock;
use crate::keys::software::SoftwareKey;
use crate::keys::verify::verify_signature;
use crate::policy::Precision;
use crate::testing;
use cms::signed_data::SignedData;
use der::asn1::OctetString;
use std::sync::Mutex;
use std::time::Duration;
use x509_cert::ext::Extension;

mod fuzz;

/// 2026-11-18T11:06:40.123456789Z.
const NOW: Duration = Duration::new(1_795_000_000 + 3_600 * 24 * 7, 123_456_789);
const BEST_PRACTICES: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");
const OTHER_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.1.2");

fn policy(precision: Precision, accuracy: Duration) -> TsaPolicy {
    TsaPolicy {
        default_policy: BEST_PRACTICES,
        accepted_policies: vec![BEST_PRACTICES, OTHER_POLICY],
        hash_algorithms: vec![HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512],
        accuracy,
        precision,
        include_tsa_name: true,
        qualified: false,
    }
}

struct Fixture {
    tsa: TimeStampAuthority,
    clock: Arc<FixedClock>,
    records: Arc<Mutex<Vec<TimestampRecord>>>,
    spki: spki::SubjectPublicKeyInfoOwned,
}

/// A TSA whose key fails every signature with `key_fails`, or whose record writer fails every
/// write with `writer_fails`, when given.
async fn fixture_with(policy: TsaPolicy, key_fails: Option<&str>, writer_fails: Option<&str>) -> Fixture {
    let good = Arc::new(SoftwareKey::p256(3));
    let (cas, issuing) = testing::ca_certificates().await;
    let mut key = testing::certify(good, "Test TSA", Some(&issuing), (1_577_836_800, 2_208_988_800), vec![]).await;
    if let Some(cause) = key_fails {
        key.key = Arc::new(SoftwareKey::p256(3).failing(cause));
    }
    let spki = key.key.public_key().clone();
    let clock = Arc::new(FixedClock::at(NOW));
    let (writer, records) = testing::writer(writer_fails);
    let tsa = TimeStampAuthority::new(key, cas, policy, clock.clone(), writer).unwrap();
    Fixture { tsa, clock, records, spki }
}

async fn fixture() -> Fixture {
    fixture_with(policy(Precision::Seconds, Duration::from_secs(1)), None, None).await
}

fn req(hash: &str, digest: &[u8], nonce: &[u8], cert_req: bool) -> TimeStampReq {
    request_from_digest(hash, digest, nonce, cert_req, "").unwrap()
}

/// The status, failure bit and statusString of a DER TimeStampResp, and its token if any.
fn decode(resp: &[u8]) -> (u8, Option<usize>, Option<String>, Option<ContentInfo>) {
    let r = TimeStampResp::from_der(resp).expect("a DER TimeStampResp");
    let bit = r.status.fail_info.map(|b| {
        let set: Vec<usize> = (0..b.bit_len()).filter(|i| b.raw_bytes()[i / 8] & (0x80 >> (i % 8)) != 0).collect();
        assert_eq!(set.len(), 1, "exactly one failure bit: {set:?}");
        set[0]
    });
    let text = r.status.status_string.map(|t| t.iter().map(|s| s.as_str().to_owned()).collect::<Vec<_>>().join(" "));
    (r.status.status, bit, text, r.time_stamp_token)
}

/// The TSTInfo of a token, after checking its signature with the TSA's key.
fn tst_info(token: &ContentInfo, spki: &spki::SubjectPublicKeyInfoOwned) -> (tst::TstInfo, SignedData) {
    let sd: SignedData = token.content.decode_as().unwrap();
    let econtent = sd.encap_content_info.econtent.as_ref().unwrap();
    let tst_der = OctetString::from_der(&econtent.to_der().unwrap()).unwrap();
    let si = sd.signer_infos.0.get(0).unwrap();
    let signed = si.signed_attrs.as_ref().unwrap().to_der().unwrap();
    verify_signature(spki, &si.signature_algorithm, Some(HashAlg::Sha256), si.signature.as_bytes(), &signed)
        .expect("the token's signature verifies with the TSA key");
    (tst::TstInfo::from_der(tst_der.as_bytes()).unwrap(), sd)
}

#[tokio::test]
async fn grants_a_signed_recorded_token() {
    let f = fixture().await;
    let nonce = [0x81, 2, 3, 4, 5, 6, 7, 8];
    let out = f.tsa.timestamp_request(req("sha256", &[7; 32], &nonce, true), "client-a").await;
    let granted = out.result.clone().unwrap();
    let (status, bit, text, token) = decode(&out.response_der);
    assert_eq!((status, bit, text), (0, None, None));
    assert!(is_granted(&out.response_der));
    let (info, sd) = tst_info(&token.unwrap(), &f.spki);
    assert_eq!(info.policy, BEST_PRACTICES);
    assert_eq!(info.message_imprint.hashed_message.as_bytes(), &[7; 32]);
    assert_eq!(info.serial_number.as_bytes(), granted.serial.as_bytes());
    assert_eq!(info.gen_time.since_epoch(), Duration::from_secs(NOW.as_secs()));
    assert_eq!(info.gen_time, granted.gen_time);
    // The nonce comes back as the request's INTEGER: positive, so a 0x00 octet leads.
    assert_eq!(info.nonce.unwrap().as_bytes(), &[0, 0x81, 2, 3, 4, 5, 6, 7, 8]);
    assert!(matches!(info.tsa, Some(GeneralName::DirectoryName(_))));
    assert_eq!(sd.certificates.map(|c| c.0.len()), Some(2), "certReq: the TSA certificate and its CA are included");

    let records = f.records.lock().unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        (&r.serial, r.gen_time, r.requester.as_str()),
        (&granted.serial, granted.gen_time.since_epoch(), "client-a")
    );
    assert_eq!((r.policy, r.hash_alg), (BEST_PRACTICES, HashAlg::Sha256));
    assert_eq!((r.imprint.as_slice(), r.nonce.as_deref()), (&[7u8; 32][..], Some(&[0, 0x81, 2, 3, 4, 5, 6, 7, 8][..])));
    assert_eq!(token_of(&out.response_der), r.token_der);
    assert!(info.extensions.is_none(), "not a qualified TSA: no qualified statement");
}

/// A qualified TSA states it in every TSTInfo (ETSI EN 319 422 §9.1), and only there.
#[tokio::test]
async fn a_qualified_tsa_puts_the_qualified_statement_into_every_token() {
    let qualified = TsaPolicy { qualified: true, ..policy(Precision::Seconds, Duration::from_secs(1)) };
    let f = fixture_with(qualified, None, None).await;
    for cert_req in [true, false] {
        let out = f.tsa.timestamp_request(req("sha256", &[7; 32], &[1], cert_req), "c").await;
        let (info, _) = tst_info(&decode(&out.response_der).3.unwrap(), &f.spki);
        assert_eq!(info.extensions, Some(vec![tst::qualified_statement().unwrap()]));
    }
}

fn token_of(resp: &[u8]) -> Vec<u8> {
    decode(resp).3.unwrap().to_der().unwrap()
}

#[tokio::test]
async fn cert_req_false_leaves_the_certificate_out() {
    let f = fixture().await;
    let out = f.tsa.timestamp(&req("sha512", &[1; 64], &[], false).to_der().unwrap(), "c").await;
    let (info, sd) = tst_info(&decode(&out.response_der).3.unwrap(), &f.spki);
    assert!(sd.certificates.is_none());
    assert!(info.nonce.is_none());
}

/// Each refusal with its RFC 3161 §2.4.2 failure bit; nothing recorded for any.
#[tokio::test]
async fn every_refusal_has_its_failure_status() {
    let f = fixture().await;
    let good = req("sha256", &[7; 32], &[1], false).to_der().unwrap();
    let mut trailing = good.clone();
    trailing.push(0);
    let with_params = {
        let mut r = req("sha256", &[7; 32], &[], false);
        r.message_imprint.hash_algorithm.parameters = Some(der::Any::encode_from(&1u8).unwrap());
        r.to_der().unwrap()
    };
    let null_params = {
        let mut r = req("sha256", &[7; 32], &[], false);
        r.message_imprint.hash_algorithm.parameters = Some(der::Any::null());
        r.to_der().unwrap()
    };
    let unknown_alg = {
        let mut r = req("sha256", &[7; 32], &[], false);
        r.message_imprint.hash_algorithm.oid = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.10");
        r.to_der().unwrap()
    };
    let with_ext = |critical: bool| {
        let mut r = req("sha256", &[7; 32], &[], false);
        r.extensions = Some(vec![Extension {
            extn_id: ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.9"),
            critical,
            extn_value: OctetString::new(vec![5, 0]).unwrap(),
        }]);
        r.to_der().unwrap()
    };
    let with_policy = |p: &str| request_from_digest("sha256", &[7; 32], &[], false, p).unwrap().to_der().unwrap();
    // A nonce longer than any client sends, which only a DER request can carry.
    let long_nonce = |octets: usize| {
        let mut r = req("sha256", &[7; 32], &[], false);
        r.nonce = Some(der::asn1::Int::new(&vec![0x11; octets]).unwrap());
        r.to_der().unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, Failure)> = vec![
        ("empty", vec![], Failure::BadRequest),
        ("garbage", b"not a request".to_vec(), Failure::BadRequest),
        ("truncated", good[..good.len() - 3].to_vec(), Failure::BadRequest),
        ("trailing byte", trailing, Failure::BadRequest),
        ("SHA-1", req("sha1", &[7; 20], &[], false).to_der().unwrap(), Failure::BadAlg),
        ("MD5", req("md5", &[7; 16], &[], false).to_der().unwrap(), Failure::BadAlg),
        ("unknown hash", unknown_alg, Failure::BadAlg),
        ("hash parameters", with_params, Failure::BadAlg),
        ("imprint 31 bytes", req("sha256", &[7; 31], &[], false).to_der().unwrap(), Failure::BadDataFormat),
        ("imprint 33 bytes", req("sha256", &[7; 33], &[], false).to_der().unwrap(), Failure::BadDataFormat),
        ("imprint empty", req("sha384", &[], &[], false).to_der().unwrap(), Failure::BadDataFormat),
        ("imprint of SHA-512 length", req("sha256", &[7; 64], &[], false).to_der().unwrap(), Failure::BadDataFormat),
        ("other policy", with_policy("1.2.3.4"), Failure::UnacceptedPolicy),
        ("critical extension", with_ext(true), Failure::UnacceptedExtension),
        ("nonce of 33 octets", long_nonce(33), Failure::BadRequest),
        ("nonce of 60000 octets", long_nonce(60_000), Failure::BadRequest),
    ];
    for (what, der, failure) in cases {
        let out = f.tsa.timestamp(&der, "c").await;
        let refusal = out.result.clone().expect_err(what);
        assert_eq!(refusal.failure, failure, "{what}: {refusal:?}");
        let (status, bit, text, token) = decode(&out.response_der);
        assert_eq!((status, bit), (2, Some(failure.bit())), "{what}");
        assert_eq!(text.as_deref(), Some(refusal.reason.as_str()), "{what}");
        assert!(token.is_none(), "{what}");
        assert!(!is_granted(&out.response_der), "{what}");
    }
    assert!(!is_granted(b"") && !is_granted(&[0x30, 0x03, 0x30, 0x01, 0x00]), "not a TimeStampResp");
    assert!(f.records.lock().unwrap().is_empty(), "nothing is recorded for a refused request");

    // What is allowed beside them: NULL parameters, a non-critical extension, an accepted
    // policy named in the request.
    let top_bit = {
        // 32 octets whose top bit is set: 33 content octets, a 32-octet magnitude.
        let mut r = req("sha256", &[7; 32], &[0xff; 32], false);
        assert_eq!(r.nonce.as_ref().unwrap().as_bytes().len(), 33);
        r.cert_req = false;
        r.to_der().unwrap()
    };
    for (what, der) in [
        ("NULL parameters", null_params),
        ("non-critical extension", with_ext(false)),
        ("nonce of 32 octets", long_nonce(32)),
        ("nonce of 32 octets, top bit set", top_bit),
    ] {
        assert!(f.tsa.timestamp(&der, "c").await.result.is_ok(), "{what}");
    }
    let out = f.tsa.timestamp(&with_policy("1.3.6.1.4.1.99999.1.2"), "c").await;
    let (info, _) = tst_info(&decode(&out.response_der).3.unwrap(), &f.spki);
    assert_eq!(info.policy, OTHER_POLICY);
    assert_eq!(f.records.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn an_unsynchronised_clock_is_time_not_available() {
    let f = fixture().await;
    f.clock.unsynchronised(Some("kernel NTP status unsynchronised"));
    let out = f.tsa.timestamp_request(req("sha256", &[7; 32], &[], false), "c").await;
    assert_eq!(out.result.clone().unwrap_err().failure, Failure::TimeNotAvailable);
    assert_eq!(decode(&out.response_der).1, Some(14));
    assert!(f.tsa.token_for_digest(HashAlg::Sha256, &[7; 32], "c").await.is_err());
    f.clock.unsynchronised(None);
    assert!(f.tsa.timestamp_request(req("sha256", &[7; 32], &[], false), "c").await.result.is_ok());
    assert_eq!(f.records.lock().unwrap().len(), 1);
}

/// A system failure (the key's device, the store) is systemFailure with a reference; the cause
/// stays in the log.
#[tokio::test]
async fn system_failures_tell_a_reference_not_the_cause() {
    let cause = "CKR_DEVICE_ERROR from /usr/lib/softhsm/libsofthsm2.so slot 7";
    let db = "disk I/O error: /var/lib/trustd/trustd.db-wal";
    let seconds = || policy(Precision::Seconds, Duration::from_secs(1));
    for (f, hidden) in
        [(fixture_with(seconds(), Some(cause), None).await, cause), (fixture_with(seconds(), None, Some(db)).await, db)]
    {
        let out = f.tsa.timestamp_request(req("sha256", &[7; 32], &[], true), "c").await;
        let refusal = out.result.clone().unwrap_err();
        assert_eq!(refusal.failure, Failure::SystemFailure);
        let (status, bit, text, _) = decode(&out.response_der);
        assert_eq!((status, bit), (2, Some(25)));
        let text = text.unwrap();
        assert!(text.contains("reference ") && !text.contains(hidden), "{text}");
        assert!(!refusal.reason.contains(hidden));
        assert!(f.records.lock().unwrap().is_empty());
    }
}

/// genTime is truncated to the policy's precision, never rounded up past the real time, and
/// the accuracy is stated as seconds, millis and micros without zero fields (RFC 3161 §2.4.2).
#[tokio::test]
async fn gen_time_precision_and_accuracy() {
    for (precision, accuracy, want_time, want_accuracy) in [
        (Precision::Seconds, Duration::from_secs(1), Duration::new(NOW.as_secs(), 0), (Some(1), None, None)),
        (
            Precision::Millis,
            Duration::from_millis(500),
            Duration::new(NOW.as_secs(), 123_000_000),
            (None, Some(500), None),
        ),
        (
            Precision::Micros,
            Duration::from_micros(1_000_250),
            Duration::new(NOW.as_secs(), 123_456_000),
            (Some(1), None, Some(250)),
        ),
        (Precision::Micros, Duration::from_micros(2), Duration::new(NOW.as_secs(), 123_456_000), (None, None, Some(2))),
    ] {
        let f = fixture_with(policy(precision, accuracy), None, None).await;
        let out = f.tsa.timestamp_request(req("sha384", &[9; 48], &[], false), "c").await;
        let (info, _) = tst_info(&decode(&out.response_der).3.unwrap(), &f.spki);
        assert_eq!(info.gen_time.since_epoch(), want_time, "{precision}");
        assert_eq!(out.result.unwrap().gen_time.since_epoch(), want_time, "{precision}: the caller sees the fraction");
        assert_eq!(f.records.lock().unwrap()[0].gen_time, want_time, "{precision}: so does the record");
        let a = info.accuracy.unwrap();
        assert_eq!((a.seconds, a.millis, a.micros), want_accuracy, "{precision} {accuracy:?}");
    }
}

/// genTime and serials follow the clock: a later time gives a later genTime and a greater
/// serial (time-ordered, so the store's index grows at its end).
#[tokio::test]
async fn gen_time_and_serial_follow_the_clock() {
    let f = fixture().await;
    let first = f.tsa.timestamp_request(req("sha256", &[1; 32], &[], false), "c").await.result.unwrap();
    f.clock.set(NOW + Duration::from_secs(90));
    let second = f.tsa.timestamp_request(req("sha256", &[1; 32], &[], false), "c").await.result.unwrap();
    assert_eq!(second.gen_time.since_epoch() - first.gen_time.since_epoch(), Duration::from_secs(90));
    assert!(second.serial.as_bytes() > first.serial.as_bytes());
}

/// The CAdES signature time-stamp path: the same checks and record, the certificate always in.
#[tokio::test]
async fn token_for_digest_is_checked_and_recorded() {
    let f = fixture().await;
    let token = f.tsa.token_for_digest(HashAlg::Sha256, &[3; 32], "signer").await.unwrap();
    let ci = ContentInfo::from_der(&token.der).unwrap();
    let (info, sd) = tst_info(&ci, &f.spki);
    assert_eq!(info.message_imprint.hashed_message.as_bytes(), &[3; 32]);
    assert!(sd.certificates.is_some());
    assert_eq!(info.nonce.map(|n| n.as_bytes().len() <= 9), Some(true));
    let wrong = f.tsa.token_for_digest(HashAlg::Sha256, &[3; 48], "signer").await.err().unwrap();
    assert_eq!(wrong.failure, Failure::BadDataFormat);
    assert_eq!(f.records.lock().unwrap().len(), 1);
}

#[test]
fn nonces_encode_as_minimal_positive_integers() {
    for (nonce, want) in [
        (&[0x00, 0x00, 0x12, 0x34][..], &[0x12, 0x34][..]),
        (&[0x00, 0x92], &[0x00, 0x92]),
        (&[0xff, 0x01], &[0x00, 0xff, 0x01]),
        (&[0x00, 0x00], &[0x00]),
        (&[0x7f], &[0x7f]),
    ] {
        let req = request_from_digest("sha256", &[1; 32], nonce, false, "").unwrap();
        assert_eq!(req.nonce.unwrap().as_bytes(), want, "{nonce:02x?}");
    }
}
