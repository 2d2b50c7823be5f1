//! Fuzzing the TSA with requests (`crate::testing::fuzz`): made field by field over each
//! field's whole range, and edited byte by byte. Every answer is a DER TimeStampResp: granted
//! with a signed token for exactly that request and one record, or a rejection with one
//! failure bit and nothing recorded.

use super::*;
use crate::testing::fuzz;
use der::asn1::Int;
use proptest::prelude::*;

fn hash_oid() -> impl Strategy<Value = ObjectIdentifier> {
    prop_oneof![
        Just(HashAlg::Sha256.oid()),
        Just(HashAlg::Sha384.oid()),
        Just(HashAlg::Sha512.oid()),
        Just(const_oid::db::rfc5912::ID_SHA_1),
        Just(const_oid::db::rfc5912::ID_MD_5),
        Just(ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.10")),
    ]
}

/// Requests made field by field: any hash OID trustd knows or refuses, imprints of 0 to 80
/// octets, nonces of 0 to 40 octets (the bound is 32) of any value, a policy or none, an
/// extension or none.
fn made() -> impl Strategy<Value = Vec<u8>> {
    (
        hash_oid(),
        prop::collection::vec(any::<u8>(), 0..=80),
        prop::option::of(prop::collection::vec(any::<u8>(), 1..=40)),
        any::<bool>(),
        prop_oneof![
            Just(None),
            Just(Some(BEST_PRACTICES)),
            Just(Some(OTHER_POLICY)),
            Just(Some(ObjectIdentifier::new_unwrap("1.2.3.4")))
        ],
        prop::option::of((any::<bool>(), prop::collection::vec(any::<u8>(), 0..8))),
    )
        .prop_map(|(oid, digest, nonce, cert_req, policy, extension)| {
            let mut r = req("sha256", &[0; 32], &[], cert_req);
            r.message_imprint.hash_algorithm.oid = oid;
            r.message_imprint.hashed_message = OctetString::new(digest).unwrap();
            r.nonce = nonce.map(|n| Int::new(&n).unwrap_or_else(|_| Int::new(&[1]).unwrap()));
            r.req_policy = policy;
            r.extensions = extension.map(|(critical, value)| {
                vec![Extension {
                    extn_id: ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.9"),
                    critical,
                    extn_value: OctetString::new(value).unwrap(),
                }]
            });
            r.to_der().unwrap()
        })
}

fn requests() -> impl Strategy<Value = Vec<u8>> {
    let seeds = vec![
        req("sha256", &[7; 32], &[0x81, 2, 3], true).to_der().unwrap(),
        request_from_digest("sha512", &[1; 64], &[0xff; 32], false, "1.3.6.1.4.1.99999.1.2").unwrap().to_der().unwrap(),
    ];
    prop_oneof![made(), fuzz::mutations_of(seeds), fuzz::bytes(200)]
}

fn check(f: &Fixture, rt: &tokio::runtime::Runtime, input: &[u8]) -> Result<(), String> {
    let before = f.records.lock().unwrap().len();
    let out = rt.block_on(f.tsa.timestamp(input, "fuzz"));
    let recorded = f.records.lock().unwrap().len() - before;
    let resp = TimeStampResp::from_der(&out.response_der).map_err(|e| format!("not a DER TimeStampResp: {e}"))?;
    match (resp.status.status, &out.result) {
        (0, Ok(granted)) => {
            let token = resp.time_stamp_token.as_ref().ok_or("granted without a token")?;
            let (info, _) = tst_info(token, &f.spki);
            let asked = TimeStampReq::from_der(input).map_err(|e| format!("granted a request that is not DER: {e}"))?;
            if info.message_imprint != asked.message_imprint || info.nonce != asked.nonce {
                return Err("the token is not for this request".into());
            }
            if info.serial_number.as_bytes() != granted.serial.as_bytes() || recorded != 1 {
                return Err(format!("granted with {recorded} records"));
            }
        }
        (2, Err(refusal)) => {
            let bits = resp.status.fail_info.ok_or("rejected without a failure bit")?;
            let set: Vec<usize> =
                (0..bits.bit_len()).filter(|i| bits.raw_bytes()[i / 8] & (0x80 >> (i % 8)) != 0).collect();
            if set != [refusal.failure.bit()] || resp.time_stamp_token.is_some() || recorded != 0 {
                return Err(format!("rejection {refusal:?} with bits {set:?} and {recorded} records"));
            }
        }
        (status, result) => return Err(format!("status {status} for {result:?}")),
    }
    Ok(())
}

#[test]
fn every_request_gets_a_well_formed_answer_and_only_a_grant_is_recorded() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let f = rt.block_on(fixture());
    fuzz::run("timestamp_request", 1024, requests(), |input| check(&f, &rt, input));
    // Grants among them, so the property was tried on both sides.
    assert!(f.records.lock().unwrap().len() > 10, "too few requests were granted to test anything");
}
