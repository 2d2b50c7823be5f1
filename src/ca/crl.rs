//! Certificate revocation lists (RFC 5280 §5): built from the store's index of revoked
//! certificates, never by scanning every issued one, and signed in the HSM.

use super::cert::{self, enc, Issuer};
use super::revocation::Reason;
use super::CaError;
use crate::store::RevokedEntry;
use const_oid::db::rfc5280;
use const_oid::AssociatedOid;
use der::asn1::GeneralizedTime;
use der::Encode;
use std::time::Duration;
use x509_cert::crl::{RevokedCert, TbsCertList};
use x509_cert::ext::pkix::{CrlNumber, CrlReason};
use x509_cert::ext::Extension;

/// A non-critical CRL or CRL-entry extension (RFC 5280 §5.2, §5.3: all of ours are).
fn ext(oid: const_oid::ObjectIdentifier, value: &impl Encode) -> Result<Extension, CaError> {
    cert::extension(oid, false, value)
}

/// One CRL entry: serial, revocation date, and the reasonCode (§5.3.1, left out for
/// unspecified as the RFC asks) and invalidityDate (§5.3.2) entry extensions.
///
/// A stored value the CRL cannot carry (a date past what X.509 time can write) must not stop publication, nor leave the serial out: the entry is listed without
/// that extension, or with the CRL's own thisUpdate as its revocation date, and the row is
/// reported. Revocation only ever stores what the rules allow; such a row is damage.
fn entry(e: &RevokedEntry, this_update: u64) -> Result<RevokedCert, CaError> {
    let r = &e.revocation;
    let damaged = |what: &str| tracing::error!(serial = %e.serial, what, "stored revocation listed without what the CRL cannot carry");
    let mut exts = Vec::new();
    if r.reason != Reason::Unspecified {
        exts.push(ext(CrlReason::OID, &r.reason.crl_reason())?);
    }
    if let Some(d) = r.invalidity_date {
        match u64::try_from(d).ok().and_then(|d| GeneralizedTime::from_unix_duration(Duration::from_secs(d)).ok()) {
            Some(t) => exts.push(ext(rfc5280::ID_CE_INVALIDITY_DATE, &t)?),
            None => damaged("invalidity date"),
        }
    }
    let revocation_date = match u64::try_from(r.revoked_at).ok().and_then(|t| cert::x509_time(t).ok()) {
        Some(t) => t,
        None => {
            damaged("revocation date");
            cert::x509_time(this_update)?
        }
    };
    Ok(RevokedCert {
        serial_number: e.serial.to_x509().map_err(enc)?,
        revocation_date,
        crl_entry_extensions: (!exts.is_empty()).then_some(exts),
    })
}

/// The TBSCertList of a full CRL (v2, with cRLNumber and authorityKeyIdentifier), DER, to be
/// signed by `issuer`'s key and completed with [`cert::signed_der`]. CPU work in proportion to
/// the entries: run it off the async workers.
pub fn tbs_der(
    issuer: &Issuer<'_>,
    number: u64,
    this_update: u64,
    validity: Duration,
    entries: &[RevokedEntry],
) -> Result<Vec<u8>, CaError> {
    let revoked = entries.iter().map(|e| entry(e, this_update)).collect::<Result<Vec<_>, _>>()?;
    let number = der::asn1::Uint::new(&number.to_be_bytes()).map_err(enc)?;
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: issuer.scheme.algorithm_identifier().map_err(enc)?,
        issuer: issuer.name.clone(),
        this_update: cert::x509_time(this_update)?,
        next_update: Some(cert::x509_time(this_update + validity.as_secs())?),
        // RFC 5280 §5.1.2.6: absent, not empty, when nothing is revoked.
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(vec![cert::authority_key_id(issuer.key_id)?, ext(CrlNumber::OID, &CrlNumber(number))?]),
    };
    tbs.to_der().map_err(enc)
}
