//! Revocation of the chain's certificates (EN 319 102-1 §5.2.6), judged at the time the
//! signature is proven to have existed.

use super::{fail, rfc3339, Cert, Fail, RevocationStatus, Validator};
use crate::signing::report::SubIndication;

impl Validator {
    /// Revocation of every certificate of `chain` but the anchor (EN 319 102-1 §5.2.6): a
    /// revocation after the proof of existence `poe` does not matter; before it, or, without
    /// POE, before the signer's own claimed signing time, the signature is TOTAL_FAILED
    /// REVOKED; otherwise nothing tells whether it was made before: REVOKED_NO_POE. Returns
    /// notes for a passed report.
    ///
    /// `time_stamp`: the chain is a TSA's and `claimed` its genTime, which the TSA vouches for;
    /// RFC 3161 §4 keeps tokens made before a revocation for a reason other than a key
    /// compromise valid.
    pub(super) fn check_revocation(
        &self,
        chain: &[&Cert],
        poe: Option<u64>,
        claimed: Option<u64>,
        time_stamp: bool,
    ) -> Result<Vec<String>, Fail> {
        let mut notes = Vec::new();
        for (i, pair) in chain.windows(2).enumerate() {
            let [cert, issuer] = pair else { continue };
            let who = if i == 0 { "signing certificate" } else { "CA certificate" };
            match self.revocation.status(&cert.cert, &issuer.cert) {
                RevocationStatus::Good => {}
                RevocationStatus::Unknown => {
                    return fail(
                        SubIndication::TryLater,
                        format!("revocation status of {who} '{}' is unknown", cert.subject()),
                    )
                }
                RevocationStatus::Revoked { at, reason } => {
                    let what = format!("{who} '{}' was revoked at {} ({reason})", cert.subject(), rfc3339(at));
                    match (poe, claimed) {
                        (Some(p), _) if p < at => {
                            notes.push(format!("{what}, after the signature time-stamp at {}", rfc3339(p)))
                        }
                        (None, Some(t)) if time_stamp && t < at && !reason.may_hide_a_compromise() => {
                            notes.push(format!("{what}, after the time-stamp at {}", rfc3339(t)))
                        }
                        (Some(p), _) if i == 0 => {
                            return fail(
                                SubIndication::Revoked,
                                format!("{what}, before the signature time-stamp at {}", rfc3339(p)),
                            )
                        }
                        (None, Some(t)) if i == 0 && t >= at => {
                            return fail(
                                SubIndication::Revoked,
                                format!("{what}, before the signing time {} the signature claims", rfc3339(t)),
                            )
                        }
                        _ if i == 0 => {
                            return fail(
                                SubIndication::RevokedNoPoe,
                                format!("{what} and nothing proves the signature existed before"),
                            )
                        }
                        _ => {
                            return fail(
                                SubIndication::RevokedCaNoPoe,
                                format!("{what} and nothing proves the signature existed before"),
                            )
                        }
                    }
                }
            }
        }
        Ok(notes)
    }
}
