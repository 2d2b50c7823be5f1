//! Fuzzing the OCSP responder with requests (`crate::testing::fuzz`): made field by field and
//! edited byte by byte. Every answer is a DER OCSPResponse; a successful one is signed, answers
//! each CertID asked in order, echoes the nonce, and says good or revoked only for the
//! certificates that are; only a successful one may be cached.

use super::*;
use crate::testing::fuzz;
use proptest::prelude::*;
use x509_ocsp::OcspResponse;

/// The fixture's two stored certificates: one good, one revoked.
struct Known {
    good: Vec<u8>,
    revoked: Vec<u8>,
}

fn made(f: &Fixture, known: &Known) -> impl Strategy<Value = Vec<u8>> {
    let issuer = f.issuer.clone();
    let serial =
        prop_oneof![Just(known.good.clone()), Just(known.revoked.clone()), prop::collection::vec(any::<u8>(), 1..=24),];
    let hash = prop_oneof![
        3 => Just(ID_SHA_1),
        3 => Just(HashAlg::Sha256.oid()),
        1 => Just(HashAlg::Sha384.oid()),
        1 => Just(HashAlg::Sha512.oid()),
        1 => Just(const_oid::db::rfc5912::ID_MD_5),
    ];
    // Another issuer's CertID now and then: the whole request is then unauthorized.
    let id =
        (serial, hash, any::<bool>(), prop::bool::weighted(0.95)).prop_map(move |(serial, hash, null, our_issuer)| {
            let serial: SerialNumber = SerialNumber::new(&serial).unwrap_or_else(|_| SerialNumber::new(&[1]).unwrap());
            let mut id = cert_id(
                &issuer,
                serial.as_bytes(),
                if hash == const_oid::db::rfc5912::ID_MD_5 { ID_SHA_1 } else { hash },
            );
            id.hash_algorithm.oid = hash;
            if !null {
                id.hash_algorithm.parameters = None;
            }
            if !our_issuer {
                id.issuer_key_hash = OctetString::new(vec![0x5a; id.issuer_key_hash.as_bytes().len()]).unwrap();
            }
            id
        });
    // Nonces of 1 to 32 octets (RFC 8954) most of the time, of 0 to 40 now and then.
    let nonce = prop_oneof![
        2 => Just(None),
        2 => prop::collection::vec(any::<u8>(), 1..=32).prop_map(Some),
        1 => prop::collection::vec(any::<u8>(), 0..=40).prop_map(Some),
    ];
    (prop::collection::vec(id, 0..=4), nonce).prop_map(|(ids, nonce)| request(ids, nonce.as_deref()))
}

fn nonce_of(exts: &Option<Vec<x509_cert::ext::Extension>>) -> Option<Vec<u8>> {
    let e = exts.as_ref()?.iter().find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)?;
    Some(e.extn_value.as_bytes().to_vec())
}

fn check(f: &Fixture, known: &Known, rt: &tokio::runtime::Runtime, input: &[u8]) -> Result<bool, String> {
    let answer = rt.block_on(f.responder.respond(input));
    OcspResponse::from_der(&answer.der).map_err(|e| format!("not a DER OCSPResponse: {e}"))?;
    let (status, basic) = open(f, &answer.der);
    if status != OcspResponseStatus::Successful {
        return match (basic, answer.fresh_until) {
            (None, None) => Ok(false),
            _ => Err(format!("{status:?} with a body or a cache lifetime")),
        };
    }
    let basic = basic.ok_or("successful without a BasicOCSPResponse")?;
    answer.fresh_until.ok_or("a successful answer without nextUpdate")?;
    let asked = OcspRequest::from_der(input).map_err(|e| format!("answered a request that is not DER: {e}"))?;
    let data = &basic.tbs_response_data;
    let ids: Vec<&CertId> = asked.tbs_request.request_list.iter().map(|r| &r.req_cert).collect();
    if data.responses.iter().map(|r| &r.cert_id).collect::<Vec<_>>() != ids {
        return Err("the answers are not for the CertIDs asked".into());
    }
    if nonce_of(&data.response_extensions) != nonce_of(&asked.tbs_request.request_extensions) {
        return Err("the nonce is not echoed".into());
    }
    let name = f.issuer.tbs_certificate.subject.to_der().unwrap();
    let key = f.issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    for r in &data.responses {
        let (id, serial) = (&r.cert_id, r.cert_id.serial_number.as_bytes());
        let oid = id.hash_algorithm.oid;
        let ours = hash_with(&oid, &name).is_some_and(|h| h == id.issuer_name_hash.as_bytes())
            && hash_with(&oid, key).is_some_and(|h| h == id.issuer_key_hash.as_bytes());
        match r.cert_status {
            CertStatus::Good(_) if !(ours && serial == known.good) => return Err(format!("good for {serial:02x?}")),
            CertStatus::Revoked(_) if !(ours && serial == known.revoked) => {
                return Err(format!("revoked for {serial:02x?}"))
            }
            _ => {}
        }
    }
    Ok(true)
}

#[test]
fn every_request_gets_a_well_formed_answer_and_no_false_good() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let f = rt.block_on(fixture_with(None));
    let known = rt.block_on(async {
        let good = serial_bytes(&stored(&f, None).await);
        let revoked = serial_bytes(&stored(&f, Some(Reason::KeyCompromise)).await);
        Known { good, revoked }
    });
    let seeds = vec![
        request(vec![cert_id(&f.issuer, &known.good, ID_SHA_1)], None),
        request(
            vec![cert_id(&f.issuer, &known.revoked, HashAlg::Sha256.oid()), cert_id(&f.issuer, &known.good, ID_SHA_1)],
            Some(&[7; 16]),
        ),
    ];
    let requests = prop_oneof![made(&f, &known), fuzz::mutations_of(seeds), fuzz::bytes(200)];
    let answered = std::sync::atomic::AtomicUsize::new(0);
    fuzz::run("ocsp_request", 1024, requests, |input| {
        let successful = check(&f, &known, &rt, input)?;
        answered.fetch_add(usize::from(successful), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    });
    // Successful answers among them, so the property was tried on both sides.
    let answered = answered.into_inner();
    assert!(answered > 100, "only {answered} requests were answered");
}
