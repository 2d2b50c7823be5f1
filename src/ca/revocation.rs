//! Revocation rules (RFC 5280 §5.3.1 reason codes): what may change into what.

use super::CaError;
pub use crate::revocation::Reason;
use crate::store::Revocation;

/// What a revocation request does to a certificate's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing: the certificate is already revoked for this reason (revocation is idempotent).
    None,
    /// New state (`None`: good again, after a hold is released).
    To(Option<Revocation>),
}

/// Decides the change for `reason` on a certificate whose current revocation is `current`.
/// A revoked certificate never becomes good again, except from certificateHold, which
/// removeFromCRL releases; a hold may also become a permanent revocation.
pub fn decide(
    current: Option<Revocation>,
    reason: Reason,
    now: i64,
    invalidity_date: Option<i64>,
) -> Result<Change, CaError> {
    if matches!(reason, Reason::CaCompromise | Reason::AaCompromise) {
        return Err(CaError::BadReason(format!("{reason} is for CA and attribute-authority certificates")));
    }
    let hold = Reason::CertificateHold as u8;
    let new = |revoked_at| Revocation { revoked_at, reason: reason as u8, invalidity_date };
    match (current, reason) {
        (None, Reason::RemoveFromCrl) => Err(CaError::NotRevocable("the certificate is not on hold".into())),
        (None, _) => Ok(Change::To(Some(new(now)))),
        (Some(cur), Reason::RemoveFromCrl) if cur.reason == hold => Ok(Change::To(None)),
        (Some(cur), _) if cur.reason == reason as u8 => Ok(Change::None),
        // A hold made permanent keeps the date the certificate stopped being trusted.
        (Some(cur), _) if cur.reason == hold => Ok(Change::To(Some(new(cur.revoked_at)))),
        (Some(cur), _) => Err(CaError::NotRevocable(format!(
            "already revoked ({}); a revoked certificate cannot change reason or become good again",
            Reason::from_code(cur.reason).map_or("unknown", Reason::name)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(reason: Reason, at: i64) -> Option<Revocation> {
        Some(Revocation { revoked_at: at, reason: reason as u8, invalidity_date: None })
    }

    #[test]
    fn lifecycle() {
        use Reason::*;
        assert_eq!(decide(None, KeyCompromise, 5, None).unwrap(), Change::To(rev(KeyCompromise, 5)));
        assert_eq!(decide(rev(KeyCompromise, 5), KeyCompromise, 9, None).unwrap(), Change::None);
        assert!(decide(rev(KeyCompromise, 5), Superseded, 9, None).is_err());
        assert!(decide(rev(KeyCompromise, 5), RemoveFromCrl, 9, None).is_err());
        assert_eq!(decide(rev(CertificateHold, 5), RemoveFromCrl, 9, None).unwrap(), Change::To(None));
        assert_eq!(decide(rev(CertificateHold, 5), Superseded, 9, None).unwrap(), Change::To(rev(Superseded, 5)));
        assert!(decide(None, RemoveFromCrl, 5, None).is_err());
        assert!(decide(None, CaCompromise, 5, None).is_err());
        assert_eq!("keycompromise".parse::<Reason>().unwrap(), KeyCompromise);
        assert!("stolen".parse::<Reason>().is_err());
        assert_eq!(Reason::from_code(8), Some(RemoveFromCrl));
        assert_eq!(Reason::from_code(7), None);
    }
}
