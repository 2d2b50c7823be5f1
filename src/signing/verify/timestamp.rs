//! The signature time-stamp (ETSI EN 319 122-1 §5.3, EN 319 102-1 §5.4): imprint, token
//! signature, TSA chain and EKU, used as proof of existence.

use super::{
    fail, format_failure, signer::verify_signer, structure::certificates, structure::econtent,
    structure::parse_signed_data, Cert, Content, Fail, Found, Validator,
};
use crate::digest::HashAlg;
use crate::keys::verify::oid_name;
use crate::signing::report::SubIndication;
use const_oid::db::rfc5280;
use der::Any;
use der::{Decode, Encode};
use x509_cert::ext::pkix::ExtendedKeyUsage;

impl Validator {
    /// A signature time-stamp (RFC 3161 §2.4.2, EN 319 102-1 §5.4): the token is a CMS
    /// signature verified like the signature itself, by a TSA whose certificate carries the
    /// critical id-kp-timeStamping EKU, chained to an anchor and valid now (EN 319 102-1 §5.4:
    /// a token is proof of existence only while its TSA certificate is; otherwise an expired
    /// TSA key could back-date anything), over the signature value. Returns genTime and notes
    /// for the report.
    pub(super) fn validate_timestamp(
        &self,
        token: &Any,
        signature_value: &[u8],
        outer: &[Cert],
        now: u64,
    ) -> Result<(u64, Vec<String>), Fail> {
        let der = token.to_der().or_else(|e| format_failure(format!("unreadable token: {e}")))?;
        let sd = parse_signed_data(&der)?;
        if sd.encap_content_info.econtent_type != crate::tsa::ID_CT_TST_INFO {
            return format_failure(format!(
                "the token's content is {}, not id-ct-TSTInfo",
                oid_name(&sd.encap_content_info.econtent_type)
            ));
        }
        let certs = certificates(&sd)?;
        // The TSA certificate is in the token only if the requester set certReq: look among the
        // signature's own certificates, the configured intermediates and the anchors as well.
        let pool: Vec<&Cert> = certs.iter().chain(outer).chain(&self.intermediates).chain(&self.anchors).collect();
        let mut found = Found::default();
        let (tsa, _) = verify_signer(&sd, Content::Enveloped, &pool, &mut found)?;

        let tst_der = econtent(&sd)?
            .ok_or_else(|| Fail { sub: SubIndication::FormatFailure, reason: "the token has no TSTInfo".into() })?;
        let tst = crate::tsa::tst::TstInfo::from_der(&tst_der)
            .or_else(|e| format_failure(format!("invalid TSTInfo: {e}")))?;
        let imprint = &tst.message_imprint;
        let Some(alg) = HashAlg::from_oid(&imprint.hash_algorithm.oid) else {
            return fail(
                SubIndication::CryptoConstraintsFailure,
                format!("message imprint hash {} is not supported", oid_name(&imprint.hash_algorithm.oid)),
            );
        };
        if imprint.hashed_message.as_bytes() != alg.digest(signature_value).as_slice() {
            return fail(
                SubIndication::HashFailure,
                "the message imprint does not match the hash of the signature value",
            );
        }
        let gen_time = tst.gen_time.unix_secs();

        // RFC 3161 §2.3: exactly one EKU, id-kp-timeStamping, in a critical extension.
        match tsa.cert.tbs_certificate.get::<ExtendedKeyUsage>() {
            Ok(Some((true, eku))) if eku.0 == [rfc5280::ID_KP_TIME_STAMPING] => {}
            _ => {
                return fail(
                    SubIndication::SigConstraintsFailure,
                    format!(
                        "TSA certificate '{}' lacks the critical extendedKeyUsage id-kp-timeStamping (RFC 3161 §2.3)",
                        tsa.subject()
                    ),
                )
            }
        }
        let chain = self.build_chain(&tsa, &pool, now)?;
        let notes = self.check_revocation(&chain, None, Some(gen_time), true)?;
        Ok((gen_time, notes))
    }
}
