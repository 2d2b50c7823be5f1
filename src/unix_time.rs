//! The current time as Unix seconds, the one unit trustd stores and signs times in.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 for a clock set before 1970, which no check would pass).
pub fn now() -> u64 {
    secs(SystemTime::now())
}

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `t` as Unix seconds (0 before 1970).
pub fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// RFC 5280 §4.1.2.5 (and RFC 5652 §11.3 signing-time): UTCTime through 2049, GeneralizedTime
/// from 2050; whole seconds.
pub fn x509_time(unix_secs: u64) -> der::Result<x509_cert::time::Time> {
    use der::asn1::{GeneralizedTime, UtcTime};
    let dt = der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix_secs))?;
    Ok(if dt.year() < 2050 {
        x509_cert::time::Time::UtcTime(UtcTime::from_date_time(dt)?)
    } else {
        x509_cert::time::Time::GeneralTime(GeneralizedTime::from_date_time(dt))
    })
}

/// `dt` as GeneralizedTime's digits, `YYYYMMDDHHMMSS` (X.680 §46, no fraction or zone): the
/// start of a TSTInfo genTime (RFC 3161 §2.4.2) and of the CSC API's validFrom/validTo.
pub fn generalized_digits(dt: &der::DateTime) -> String {
    format!("{:04}{:02}{:02}{:02}{:02}{:02}", dt.year(), dt.month(), dt.day(), dt.hour(), dt.minutes(), dt.seconds())
}

/// `unix_secs` as RFC 3339 (`2026-12-02T19:45:00Z`), for messages; `None` outside the years
/// 0–9999 that RFC 3339 can write.
pub fn rfc3339(unix_secs: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_secs).ok()?;
    t.format(&time::format_description::well_known::Rfc3339).ok()
}
