//! TSTInfo (RFC 3161 §2.4.2) whose genTime can carry fractions of a second.
//!
//! x509-tsp 0.1's `TstInfo` holds genTime as der 0.7's `GeneralizedTime`, which has whole
//! seconds only and refuses to decode fractions. RFC 3161 allows sub-second genTime (and ETSI
//! EN 319 422 profiles it), so this module declares the same SEQUENCE with its own time type;
//! every other field reuses x509-tsp's types.

use crate::policy::Precision;
use der::{DecodeValue, EncodeValue, ErrorKind, FixedTag, Header, Length, Reader, Sequence, Tag, Writer};
use std::time::Duration;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::Extensions;
use x509_tsp::{Accuracy, MessageImprint, TspVersion};

/// A GeneralizedTime in UTC with up to microseconds, encoded as RFC 3161 §2.4.2 asks:
/// `YYYYMMDDhhmmss[.s...]Z`, the fraction without trailing zeros and left out when zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GenTime {
    /// Since the Unix epoch.
    since_epoch: Duration,
}

/// Digits of "YYYYMMDDhhmmss".
const WHOLE_LEN: usize = 14;

impl GenTime {
    /// `since_epoch` truncated to `precision`.
    pub fn new(since_epoch: Duration, precision: Precision) -> Self {
        let step = precision.as_duration().as_nanos();
        let nanos = since_epoch.as_nanos() - since_epoch.as_nanos() % step;
        GenTime { since_epoch: Duration::new(since_epoch.as_secs(), (nanos % 1_000_000_000) as u32) }
    }

    /// The time since the Unix epoch.
    pub fn since_epoch(&self) -> Duration {
        self.since_epoch
    }

    /// Whole seconds since the Unix epoch.
    pub fn unix_secs(&self) -> u64 {
        self.since_epoch.as_secs()
    }

    /// The fraction digits without trailing zeros ("" for a whole second).
    fn fraction(&self) -> String {
        let micros = format!("{:06}", self.since_epoch.subsec_micros());
        micros.trim_end_matches('0').to_owned()
    }
}

impl FixedTag for GenTime {
    const TAG: Tag = Tag::GeneralizedTime;
}

impl EncodeValue for GenTime {
    fn value_len(&self) -> der::Result<Length> {
        let f = self.fraction().len();
        Length::try_from(WHOLE_LEN + if f == 0 { 0 } else { 1 + f } + 1)
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        let dt = der::DateTime::from_unix_duration(Duration::from_secs(self.since_epoch.as_secs()))?;
        let whole = crate::unix_time::generalized_digits(&dt);
        writer.write(whole.as_bytes())?;
        let f = self.fraction();
        if !f.is_empty() {
            writer.write(b".")?;
            writer.write(f.as_bytes())?;
        }
        writer.write(b"Z")
    }
}

impl<'a> DecodeValue<'a> for GenTime {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        let bytes = reader.read_vec(header.length)?;
        let bad = || der::Error::from(ErrorKind::DateTime);
        let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
        let body = text.strip_suffix('Z').ok_or_else(bad)?;
        let (whole, fraction) = match body.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (body, None),
        };
        if whole.len() != WHOLE_LEN || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| whole.get(r).and_then(|s| s.parse::<u16>().ok()).ok_or_else(bad);
        let dt = der::DateTime::new(
            num(0..4)?,
            num(4..6)? as u8,
            num(6..8)? as u8,
            num(8..10)? as u8,
            num(10..12)? as u8,
            num(12..14)? as u8,
        )?;
        let micros = match fraction {
            None => 0,
            // DER (X.690 §11.7): no trailing zeros, no empty fraction. Finer than microseconds
            // is not something this TSA states; it is refused rather than rounded.
            Some(f) if f.is_empty() || f.len() > 6 || f.ends_with('0') || !f.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(bad())
            }
            Some(f) => f.parse::<u32>().map_err(|_| bad())? * 10u32.pow(6 - f.len() as u32),
        };
        Ok(GenTime { since_epoch: dt.unix_duration() + Duration::from_micros(micros.into()) })
    }
}

/// The TSTInfo extension of a qualified electronic time-stamp (ETSI EN 319 422 §9.1): a
/// non-critical qcStatements extension holding esi4-qtstStatement-1, which has no
/// statementInfo.
pub fn qualified_statement() -> der::Result<x509_cert::ext::Extension> {
    crate::qc::extension(&[crate::qc::Statement::QualifiedTimestamp])
}

/// `TSTInfo` (RFC 3161 §2.4.2), as x509-tsp declares it but with [`GenTime`].
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TstInfo {
    pub version: TspVersion,
    pub policy: const_oid::ObjectIdentifier,
    pub message_imprint: MessageImprint,
    pub serial_number: der::asn1::Int,
    pub gen_time: GenTime,
    #[asn1(optional = "true")]
    pub accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    pub ordering: bool,
    #[asn1(optional = "true")]
    pub nonce: Option<der::asn1::Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub tsa: Option<GeneralName>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub extensions: Option<Extensions>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Decode, Encode};

    fn der_of(text: &str) -> Vec<u8> {
        [&[0x18, text.len() as u8][..], text.as_bytes()].concat()
    }

    #[test]
    fn fractions_encode_without_trailing_zeros() {
        let t = Duration::new(1_795_000_000, 123_456_789);
        for (p, text) in [
            (Precision::Seconds, "20261118110640Z"),
            (Precision::Millis, "20261118110640.123Z"),
            (Precision::Micros, "20261118110640.123456Z"),
        ] {
            let g = GenTime::new(t, p);
            assert_eq!(g.to_der().unwrap(), der_of(text), "{p}");
            assert_eq!(GenTime::from_der(&der_of(text)).unwrap(), g);
        }
        let g = GenTime::new(Duration::new(1_795_000_000, 120_000_000), Precision::Micros);
        assert_eq!(g.to_der().unwrap(), der_of("20261118110640.12Z"));
        let whole = GenTime::new(Duration::new(1_795_000_000, 400), Precision::Micros);
        assert_eq!(whole.to_der().unwrap(), der_of("20261118110640Z"), "a zero fraction is left out");
    }

    #[test]
    fn non_der_times_are_refused() {
        for bad in [
            "20261118110640.Z",
            "20261118110640.120Z",
            "20261118110640.1234567Z",
            "20261118110640",
            "20261118110640+0100",
            "2026111808064Z",
            "20261318080640Z",
            "2026111808064aZ",
            "20261118110640.1aZ",
        ] {
            assert!(GenTime::from_der(&der_of(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn whole_second_tokens_decode_as_x509_tsp_encodes_them() {
        let t = GenTime::new(Duration::from_secs(1_795_000_000), Precision::Seconds);
        let theirs = der::asn1::GeneralizedTime::from_unix_duration(Duration::from_secs(1_795_000_000)).unwrap();
        assert_eq!(t.to_der().unwrap(), theirs.to_der().unwrap());
    }
}
