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

/// Decides the change for `reason` on a certificate valid from `not_before` whose current
/// revocation is `current`. A revoked certificate never becomes good again, except from
/// certificateHold, which removeFromCRL releases; a hold may also become a permanent
/// revocation. An invalidity date (RFC 5280 §5.3.2: when the key was compromised or the
/// certificate otherwise became invalid) lies between the certificate's notBefore and now:
/// nothing is known of the future, and a certificate cannot become invalid before it was valid.
pub fn decide(
    current: Option<Revocation>,
    reason: Reason,
    now: i64,
    invalidity_date: Option<i64>,
    not_before: i64,
) -> Result<Change, CaError> {
    if matches!(reason, Reason::CaCompromise | Reason::AaCompromise) {
        return Err(CaError::BadReason(format!("{reason} is for CA and attribute-authority certificates")));
    }
    if let Some(d) = invalidity_date {
        let when = |t: i64| crate::unix_time::rfc3339(t).unwrap_or_else(|| format!("{t} s after 1970"));
        if d > now {
            return Err(CaError::BadInvalidityDate(format!("{} is in the future (now: {})", when(d), when(now))));
        }
        if d < not_before {
            return Err(CaError::BadInvalidityDate(format!(
                "{} is before the certificate's notBefore {}",
                when(d),
                when(not_before)
            )));
        }
        if reason == Reason::RemoveFromCrl {
            return Err(CaError::BadInvalidityDate("a released hold has none".into()));
        }
    }
    let hold = Reason::CertificateHold;
    let new = |revoked_at| Revocation { revoked_at, reason, invalidity_date };
    match (current, reason) {
        (None, Reason::RemoveFromCrl) => Err(CaError::NotRevocable("the certificate is not on hold".into())),
        (None, _) => Ok(Change::To(Some(new(now)))),
        (Some(cur), Reason::RemoveFromCrl) if cur.reason == hold => Ok(Change::To(None)),
        (Some(cur), _) if cur.reason == reason => Ok(Change::None),
        // A hold made permanent keeps the date the certificate stopped being trusted.
        (Some(cur), _) if cur.reason == hold => Ok(Change::To(Some(new(cur.revoked_at)))),
        (Some(cur), _) => Err(CaError::NotRevocable(format!(
            "already revoked ({}); a revoked certificate cannot change reason or become good again",
            cur.reason
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(reason: Reason, at: i64) -> Option<Revocation> {
        Some(Revocation { revoked_at: at, reason, invalidity_date: None })
    }

    #[test]
    fn lifecycle() {
        use Reason::*;
        assert_eq!(decide(None, KeyCompromise, 5, None, 0).unwrap(), Change::To(rev(KeyCompromise, 5)));
        assert_eq!(decide(rev(KeyCompromise, 5), KeyCompromise, 9, None, 0).unwrap(), Change::None);
        assert!(decide(rev(KeyCompromise, 5), Superseded, 9, None, 0).is_err());
        assert!(decide(rev(KeyCompromise, 5), RemoveFromCrl, 9, None, 0).is_err());
        assert_eq!(decide(rev(CertificateHold, 5), RemoveFromCrl, 9, None, 0).unwrap(), Change::To(None));
        assert_eq!(decide(rev(CertificateHold, 5), Superseded, 9, None, 0).unwrap(), Change::To(rev(Superseded, 5)));
        assert!(decide(None, RemoveFromCrl, 5, None, 0).is_err());
        assert!(decide(None, CaCompromise, 5, None, 0).is_err());
        assert_eq!("keycompromise".parse::<Reason>().unwrap(), KeyCompromise);
        assert!("stolen".parse::<Reason>().is_err());
        assert_eq!(Reason::from_code(8), Some(RemoveFromCrl));
        assert_eq!(Reason::from_code(7), None);
    }

    #[test]
    fn an_invalidity_date_lies_between_not_before_and_now() {
        use Reason::*;
        let (not_before, now) = (1_000, 5_000);
        let with = |d| decide(None, KeyCompromise, now, Some(d), not_before);
        for ok in [not_before, not_before + 1, now - 1, now] {
            assert!(with(ok).is_ok(), "{ok}");
        }
        for (bad, why) in
            [(now + 1, "in the future"), (i64::MAX, "in the future"), (not_before - 1, "before"), (i64::MIN, "before")]
        {
            let e = with(bad).unwrap_err();
            assert!(matches!(&e, CaError::BadInvalidityDate(m) if m.contains(why)), "{bad}: {e}");
        }
        assert!(matches!(
            decide(rev(CertificateHold, 2_000), RemoveFromCrl, now, Some(3_000), not_before),
            Err(CaError::BadInvalidityDate(_))
        ));
    }
}
