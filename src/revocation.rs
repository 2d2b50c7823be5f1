//! Revocation reasons (RFC 5280 §5.3.1), shared by the CA's rules, CRLs, OCSP and signature
//! validation, and the one lookup of a certificate's revocation status that OCSP and `Verify`
//! both answer from.

use crate::ca_id::CaId;
use crate::serial::Serial;
use crate::store::{CertStatus, Revocation, Store, StoreError};
use std::fmt;
use std::str::FromStr;
use x509_cert::ext::pkix::CrlReason;

/// CRLReason (RFC 5280 §5.3.1). Value 7 is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Unspecified = 0,
    KeyCompromise = 1,
    CaCompromise = 2,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
    CertificateHold = 6,
    RemoveFromCrl = 8,
    PrivilegeWithdrawn = 9,
    AaCompromise = 10,
}

const ALL: [(Reason, &str); 10] = [
    (Reason::Unspecified, "unspecified"),
    (Reason::KeyCompromise, "keyCompromise"),
    (Reason::CaCompromise, "cACompromise"),
    (Reason::AffiliationChanged, "affiliationChanged"),
    (Reason::Superseded, "superseded"),
    (Reason::CessationOfOperation, "cessationOfOperation"),
    (Reason::CertificateHold, "certificateHold"),
    (Reason::RemoveFromCrl, "removeFromCRL"),
    (Reason::PrivilegeWithdrawn, "privilegeWithdrawn"),
    (Reason::AaCompromise, "aACompromise"),
];

impl Reason {
    /// The ASN.1 CRLReason value, for CRL entries and OCSP RevokedInfo.
    pub fn crl_reason(self) -> CrlReason {
        match self {
            Reason::Unspecified => CrlReason::Unspecified,
            Reason::KeyCompromise => CrlReason::KeyCompromise,
            Reason::CaCompromise => CrlReason::CaCompromise,
            Reason::AffiliationChanged => CrlReason::AffiliationChanged,
            Reason::Superseded => CrlReason::Superseded,
            Reason::CessationOfOperation => CrlReason::CessationOfOperation,
            Reason::CertificateHold => CrlReason::CertificateHold,
            Reason::RemoveFromCrl => CrlReason::RemoveFromCRL,
            Reason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
            Reason::AaCompromise => CrlReason::AaCompromise,
        }
    }

    /// The reason with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        ALL.iter().find(|(r, _)| *r as u8 == code).map(|(r, _)| *r)
    }

    /// Whether the reason puts what the key signed before the revocation in doubt (RFC 5280
    /// §5.3.1): a compromise, or a reason that may hide one (unspecified, a hold).
    pub fn may_hide_a_compromise(self) -> bool {
        !matches!(
            self,
            Reason::AffiliationChanged | Reason::Superseded | Reason::CessationOfOperation | Reason::PrivilegeWithdrawn
        )
    }

    /// The RFC 5280 name.
    pub fn name(self) -> &'static str {
        ALL.iter().find(|(r, _)| *r == self).map_or("unspecified", |(_, n)| n)
    }
}

impl FromStr for Reason {
    type Err = String;
    /// RFC 5280 names, case-insensitively (`keyCompromise`, `keycompromise`).
    fn from_str(s: &str) -> Result<Self, String> {
        ALL.iter().find(|(_, n)| n.eq_ignore_ascii_case(s)).map(|(r, _)| *r).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|(_, n)| *n).collect();
            format!("unknown reason '{s}' (one of {})", names.join(", "))
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A certificate's revocation status as its CA's records say (RFC 6960 §2.2's three answers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked(Revocation),
    /// Not a certificate this CA issued (or one never completed).
    Unknown,
}

/// The status of the certificate `serial` of `ca`, from the same records the CRL is
/// built from, so that OCSP, signature validation and the CRL always agree.
pub async fn status_of(store: &dyn Store, ca: CaId, serial: &Serial) -> Result<Status, StoreError> {
    status_where(store, serial, |issuer| issuer == ca).await
}

/// The status of the certificate `serial` of any generation of the issuing CA: a TLS client's,
/// whose certificate the handshake verified against all of them.
pub async fn status_of_issued(store: &dyn Store, serial: &Serial) -> Result<Status, StoreError> {
    status_where(store, serial, |issuer| matches!(issuer, CaId::Issuing(_))).await
}

async fn status_where(store: &dyn Store, serial: &Serial, ca: impl Fn(CaId) -> bool) -> Result<Status, StoreError> {
    Ok(match store.certificate(serial).await? {
        Some(rec) if ca(rec.ca) => match (rec.status, rec.revocation) {
            (CertStatus::Issued, _) => Status::Good,
            (CertStatus::Revoked, Some(r)) => Status::Revoked(r),
            _ => Status::Unknown,
        },
        _ => Status::Unknown,
    })
}

/// How many revocation changes the CA has made since start. Whoever caches a certificate's status
/// (a TLS connection its client certificate's) looks again once this has moved: read it before
/// the lookup, so that a change committed meanwhile is seen at the next look.
#[derive(Clone, Debug, Default)]
pub struct Changes(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Changes {
    /// The count now.
    pub fn now(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Counts one change, once the store has it.
    pub fn count_one(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}
