//! Fuzzing signature validation (`crate::testing::fuzz`): CMS signatures made by openssl (B-B
//! detached and enveloping, B-T with a token), edited byte by byte. Never a panic; and a
//! signature passes only if what it signs is what the original signed: the same signature value
//! over the same signed attributes (so the same document digest), and a time-stamp only if its
//! token's signature and TSTInfo are the original's.

use super::*;
use crate::testing::fuzz;
use proptest::prelude::*;

/// A SignerInfo's signature value and the DER of its signed attributes.
type SignedPart = (Vec<u8>, Option<Vec<u8>>);

/// The signed parts of every SignerInfo.
fn signed_parts(sd: &SignedData) -> Vec<SignedPart> {
    sd.signer_infos
        .0
        .iter()
        .map(|si| (si.signature.as_bytes().to_vec(), si.signed_attrs.as_ref().and_then(|a| a.to_der().ok())))
        .collect()
}

/// For each signature time-stamp token in `sd`: its own signed parts and its eContent (TSTInfo).
fn token_parts(sd: &SignedData) -> Vec<(Vec<SignedPart>, Option<Vec<u8>>)> {
    sd.signer_infos
        .0
        .iter()
        .flat_map(|si| si.unsigned_attrs.iter().flat_map(|a| a.iter()))
        .filter(|a| a.oid == ID_AA_SIGNATURE_TIME_STAMP_TOKEN)
        .flat_map(|a| a.values.iter())
        .filter_map(|v| v.decode_as::<ContentInfo>().ok())
        .filter_map(|ci| ci.content.decode_as::<SignedData>().ok())
        .map(|t| (signed_parts(&t), t.encap_content_info.econtent.as_ref().and_then(|e| e.to_der().ok())))
        .collect()
}

#[test]
fn an_edited_signature_passes_only_if_what_it_signs_is_unchanged() {
    let f = fixture();
    let seeds = vec![
        f.sign("ec256", &["-md", "sha256", "-cades"]),
        f.sign("rsa", &["-md", "sha256", "-cades", "-keyopt", "rsa_padding_mode:pss"]),
        b_t("ec256", "tsa_config"),
    ];
    let originals: Vec<SignedData> = seeds.iter().map(|s| parse_signed_data(s).unwrap()).collect();
    let signed: Vec<_> = originals.iter().flat_map(signed_parts).collect();
    let tokens: Vec<_> = originals.iter().flat_map(token_parts).collect();
    let v = validator();
    let at = now();
    let inputs = prop_oneof![fuzz::mutations_of(seeds), fuzz::bytes(400)];
    let passed = AtomicUsize::new(0);
    fuzz::run("cms_signature", 512, inputs, |input| {
        let report = v.validate(input, Content::Document(DOC), at);
        if report.indication != Indication::TotalPassed {
            return Ok(());
        }
        passed.fetch_add(1, Ordering::Relaxed);
        let sd = parse_signed_data(input).map_err(|e| format!("passed a signature that does not parse: {e:?}"))?;
        if signed_parts(&sd).iter().any(|p| !signed.contains(p)) {
            return Err("passed with a signature value or signed attributes the signer never made".into());
        }
        if report.timestamp_time.is_some() && token_parts(&sd).iter().any(|t| !tokens.contains(t)) {
            return Err("passed a time-stamp whose token was changed".into());
        }
        Ok(())
    });
    // Unchanged and harmlessly edited signatures among them, so the property was tried.
    let passed = passed.into_inner();
    assert!(passed > 20, "only {passed} signatures passed");
}
