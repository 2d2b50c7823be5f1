//! Fuzzing issuance (`crate::testing::fuzz`): CSRs edited byte by byte against the parser,
//! and CSRs signed by their key with hostile subjects and names (controls, bidi overrides,
//! zero-width characters, wildcards, over-long values, odd string types and IP lengths) under
//! every profile and validities over the whole u64 range, against the CA. A certificate comes
//! out only for a request its profile allows, signed by the CA and recorded once; a refusal is
//! the client's error and stores nothing.

use super::*;
use crate::ca::csr::San;
use crate::policy::AttrKind;
use crate::testing::fuzz;
use der::asn1::{Any, OctetString, SetOfVec};
use der::Tag;
use proptest::prelude::*;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{RdnSequence, RelativeDistinguishedName};

/// Characters of hostile names: a sane alphabet, and what no name should hold.
fn text(max: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = "abcxyz019 .-*_@:/\0\n\u{7f}\u{202e}\u{200b}\u{feff}é中".chars().collect();
    prop::collection::vec(prop::sample::select(chars), 0..max).prop_map(|c| c.into_iter().collect())
}

#[derive(Clone, Debug)]
struct Asked {
    seed: u8,
    subject: Vec<(AttrKind, Tag, String)>,
    sans: Vec<GeneralName>,
    profile: &'static str,
    validity: Option<u64>,
}

fn san() -> impl Strategy<Value = Option<GeneralName>> {
    let ip_len = prop_oneof![Just(4usize), Just(16), 0..=20usize];
    prop_oneof![
        4 => (text(30), prop::sample::select(vec!["", ".example.org", ".com", ".internal", ".co.uk"]))
            .prop_map(|(s, tail)| Ia5String::new(&format!("{s}{tail}")).ok().map(GeneralName::DnsName)),
        2 => ip_len.prop_flat_map(|n| prop::collection::vec(any::<u8>(), n))
            .prop_map(|b| OctetString::new(b).ok().map(GeneralName::IpAddress)),
        1 => text(30).prop_map(|s| Ia5String::new(&s).ok().map(GeneralName::Rfc822Name)),
        1 => text(30).prop_map(|s| Ia5String::new(&s).ok().map(GeneralName::UniformResourceIdentifier)),
    ]
}

fn asked() -> impl Strategy<Value = Asked> {
    let kind = prop::sample::select(AttrKind::ALL.to_vec());
    let tag = prop::sample::select(vec![Tag::Utf8String, Tag::PrintableString, Tag::Ia5String, Tag::TeletexString]);
    let value = prop_oneof![4 => text(24), 1 => text(200)];
    let validity = prop_oneof![
        Just(None),
        prop::sample::select(vec![0u64, 1, 86_400, 397 * 86_400, 398 * 86_400 + 1, u64::MAX / 2, u64::MAX])
            .prop_map(Some),
        any::<u64>().prop_map(Some),
    ];
    let profile = prop::sample::select(vec![
        "tls-server",
        "internal-tls-server",
        "tls-client",
        "service-client",
        "document-signer",
        "nope",
    ]);
    (
        1..=200u8,
        prop::collection::vec((kind, tag, value), 0..=4),
        prop::collection::vec(san(), 0..=4),
        profile,
        validity,
    )
        .prop_map(|(seed, subject, sans, profile, validity)| Asked {
            seed,
            subject,
            sans: sans.into_iter().flatten().collect(),
            profile,
            validity,
        })
}

/// Requests a client would send: a commonName and DNS names under a real suffix, a profile
/// that takes them, the default validity or a short one; each with one hostile field now and
/// then, from [`asked`].
fn plausible() -> impl Strategy<Value = Asked> {
    let label = prop::collection::vec(prop::sample::select(b"abcdefxyz0123456789-".to_vec()), 1..12)
        .prop_map(|l| String::from_utf8(l).unwrap());
    let name = (label, prop::sample::select(vec![".example.org", ".example.com", ".internal", ".co.uk"]))
        .prop_map(|(l, tail)| format!("{l}{tail}"));
    let profile = prop::sample::select(vec!["tls-server", "internal-tls-server", "tls-client", "service-client"]);
    let validity = prop_oneof![Just(None), (1..=90u64).prop_map(|d| Some(d * 86_400))];
    (1..=200u8, prop::collection::vec(name, 1..=3), profile, validity, asked(), 0..6u8).prop_map(
        |(seed, names, profile, validity, hostile, which)| {
            let mut a = Asked {
                seed,
                subject: vec![(AttrKind::CommonName, Tag::Utf8String, names[0].clone())],
                sans: names.iter().map(|n| GeneralName::DnsName(Ia5String::new(n).unwrap())).collect(),
                profile,
                validity,
            };
            match which {
                0 => a.subject = hostile.subject,
                1 => a.sans.extend(hostile.sans),
                2 => a.validity = hostile.validity,
                _ => {}
            }
            a
        },
    )
}

/// The CSR for `a`, signed by its own (subscriber's, software) key; a seed of 1 to 200 is a valid
/// P-256 scalar.
fn csr_for(a: &Asked) -> Vec<u8> {
    let key = p256::ecdsa::SigningKey::from_slice(&[a.seed; 32]).unwrap();
    let rdns = a
        .subject
        .iter()
        .filter_map(|(kind, tag, value)| {
            let value = Any::new(*tag, value.as_bytes()).ok()?;
            let atv = AttributeTypeAndValue { oid: kind.oid(), value };
            Some(RelativeDistinguishedName(SetOfVec::try_from(vec![atv]).ok()?))
        })
        .collect();
    let mut b = x509_cert::builder::RequestBuilder::new(RdnSequence(rdns), &key).unwrap();
    if !a.sans.is_empty() {
        b.add_extension(&SubjectAltName(a.sans.clone())).unwrap();
    }
    x509_cert::builder::Builder::build::<p256::ecdsa::DerSignature>(b).unwrap().to_der().unwrap()
}

/// A made request as bytes (profile length, profile, validity flag and seconds, CSR), so that
/// a kept input replays exactly.
fn encode(a: &Asked) -> Vec<u8> {
    let mut out = vec![a.profile.len() as u8];
    out.extend(a.profile.as_bytes());
    match a.validity {
        Some(v) => {
            out.push(1);
            out.extend(v.to_be_bytes());
        }
        None => out.push(0),
    }
    out.extend(csr_for(a));
    out
}

/// The profile, validity and CSR of an encoded request; None for bytes that are not one.
fn decode(input: &[u8]) -> Option<(String, Option<Duration>, &[u8])> {
    let (&n, rest) = input.split_first()?;
    let profile = std::str::from_utf8(rest.get(..usize::from(n))?).ok()?.to_owned();
    let rest = &rest[usize::from(n)..];
    let (&has, rest) = rest.split_first()?;
    match has {
        0 => Some((profile, None, rest)),
        _ => {
            let secs = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
            Some((profile, Some(Duration::from_secs(secs)), &rest[8..]))
        }
    }
}

/// The serials of the two newest records: what a refusal must leave as it was, and an
/// issuance must put one new serial in front of.
async fn newest(f: &Fixture) -> Vec<Serial> {
    let q = ListQuery { profile: None, subject_contains: None, status: None, limit: 2, page_token: None };
    f.store.list_certificates(&q).await.unwrap().records.into_iter().map(|r| r.serial).collect()
}

fn check(f: &Fixture, rt: &tokio::runtime::Runtime, input: &[u8]) -> Result<(), String> {
    let Some((profile, validity, csr)) = decode(input) else {
        return Ok(());
    };
    rt.block_on(async {
        let before = newest(f).await;
        let outcome = f.ca.issue(request(&profile, csr.to_vec(), validity)).await;
        let after = newest(f).await;
        match outcome {
            Ok(issued) => {
                let cert = Certificate::from_der(&issued.cert_der)
                    .map_err(|e| format!("issued a non-DER certificate: {e}"))?;
                let tbs = cert.tbs_certificate.to_der().unwrap();
                verify_signature(&f.issuing_spki, &cert.signature_algorithm, None, cert.signature.raw_bytes(), &tbs)
                    .map_err(|e| format!("not signed by the CA: {e:?}"))?;
                let asked =
                    crate::ca::csr::parse(csr).map_err(|e| format!("issued for a CSR that does not parse: {e}"))?;
                let issued_names: Vec<San> = cert
                    .tbs_certificate
                    .extensions
                    .iter()
                    .flatten()
                    .filter(|e| e.extn_id == SubjectAltName::OID)
                    .flat_map(|e| SubjectAltName::from_der(e.extn_value.as_bytes()).unwrap().0)
                    .filter_map(|g| match g {
                        GeneralName::DnsName(d) => Some(San::Dns(d.to_string())),
                        _ => None,
                    })
                    .collect();
                if let Some(n) = issued_names.iter().find(|n| !asked.sans.contains(n)) {
                    return Err(format!("certified {n}, which was not asked"));
                }
                if after.first() != Some(&issued.serial) || after.get(1) != before.first() {
                    return Err("issued, but not recorded as the one new certificate".into());
                }
            }
            Err(e @ (CaError::Internal(_) | CaError::Store(_) | CaError::Key(_) | CaError::Log(_))) => {
                return Err(format!("a request got a server-side error: {e}"))
            }
            Err(e) if after != before => return Err(format!("refused ({e}), yet a record was added")),
            Err(_) => {}
        }
        Ok(())
    })
}

#[test]
fn only_what_a_profile_allows_is_issued_and_a_refusal_stores_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let f = rt.block_on(fixture());
    fuzz::run("issue", 512, prop_oneof![plausible(), asked()].prop_map(|a| encode(&a)), |input| check(&f, &rt, input));
    // Certificates among them, so the property was tried on both sides.
    let q = ListQuery { profile: None, subject_contains: None, status: None, limit: 1000, page_token: None };
    let issued = rt.block_on(f.store.list_certificates(&q)).unwrap().records.len();
    assert!(issued > 20, "only {issued} requests were granted");
}

/// The parser alone, over CSRs edited byte by byte (PEM and DER): never a panic, and only
/// what is strict DER with a signature that verifies is accepted.
#[test]
fn csrs_edited_byte_by_byte_parse_only_when_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/csr");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "der" || x == "pem"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    seeds.push(csr(9, "seed.example.org", &["seed.example.org"]));
    let inputs = prop_oneof![fuzz::mutations_of(seeds), fuzz::bytes(300)];
    fuzz::run("csr", 2048, inputs, |input| {
        if let Ok(parsed) = crate::ca::csr::parse(input) {
            let der = if input.starts_with(b"-----") {
                der::pem::decode_vec(std::str::from_utf8(input).unwrap().trim().as_bytes()).unwrap().1
            } else {
                input.to_vec()
            };
            let req = x509_cert::request::CertReq::from_der(&der).map_err(|e| format!("accepted non-DER: {e}"))?;
            if req.info.public_key != parsed.public_key {
                return Err("parsed another key than the CSR's".into());
            }
        }
        Ok(())
    });
}
