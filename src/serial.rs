//! Certificate serial numbers (RFC 5280 §4.1.2.2; CA/B Forum BR §7.1: at least 64 bits from a
//! CSPRNG, positive, at most 20 octets).

use std::fmt;
use std::str::FromStr;

/// A positive serial number of at most 20 octets, kept as its minimal big-endian magnitude.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// 128 random bits from the OS CSPRNG (well above the 64 the BRs ask for). The top bit is
    /// cleared so the DER INTEGER needs no sign octet, and the top byte is non-zero so every
    /// serial has the same length.
    pub fn random() -> Self {
        let mut b: [u8; 16] = rand::random();
        b[0] = (b[0] & 0x7f) | 0x40;
        Serial(b.to_vec())
    }

    /// 16 octets: the nanoseconds since the Unix epoch at `now` (8 octets, big-endian), then 64
    /// random bits from the OS CSPRNG. For records written at a high rate (time-stamp tokens,
    /// signatures): their serials are keys of a UNIQUE index, and random keys put every row of a
    /// group-commit batch on a different B-tree leaf (a page written to the WAL per row), while
    /// keys that grow with time land on the same last leaves. The random half keeps serials made
    /// in the same nanosecond (another replica, a clock step back) apart; the index still refuses
    /// a repeat. The time half leaks nothing a token's genTime does not say already; its top bit
    /// stays clear (and its top octet non-zero) from 1970 + 2.2 years to the year 2262.
    pub fn time_ordered(now: std::time::SystemTime) -> Self {
        let nanos = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(nanos as u64 & (u64::MAX >> 1)).to_be_bytes());
        b[8..].copy_from_slice(&rand::random::<[u8; 8]>());
        Serial::from_bytes(&b).unwrap_or_else(Serial::random)
    }

    /// From big-endian magnitude bytes (leading zeros removed). `None` for zero or > 20 octets.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let start = b.iter().position(|&x| x != 0)?;
        let v = b[start..].to_vec();
        (v.len() <= 20).then_some(Serial(v))
    }

    /// Big-endian magnitude.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The serial as an x509-cert `SerialNumber` (DER INTEGER, positive).
    pub fn to_x509(&self) -> der::Result<x509_cert::serial_number::SerialNumber> {
        let mut b = self.0.clone();
        if b[0] & 0x80 != 0 {
            b.insert(0, 0);
        }
        x509_cert::serial_number::SerialNumber::new(&b)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

impl FromStr for Serial {
    type Err = String;
    /// Accepts hex with or without `0x`, `:` separators and either case (as openssl prints).
    fn from_str(s: &str) -> Result<Self, String> {
        let clean: String = s.trim().trim_start_matches("0x").chars().filter(|c| *c != ':').collect();
        let padded = if clean.len() % 2 == 1 { format!("0{clean}") } else { clean };
        let b = hex::decode(&padded).map_err(|_| format!("serial '{s}' is not hexadecimal"))?;
        Serial::from_bytes(&b).ok_or_else(|| format!("serial '{s}' is zero or longer than 20 octets"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_serials_are_positive_and_distinct() {
        let a = Serial::random();
        assert_eq!(a.as_bytes().len(), 16);
        assert!(a.as_bytes()[0] & 0x80 == 0 && a.as_bytes()[0] != 0);
        assert_ne!(a, Serial::random());
        assert_eq!(a.to_x509().unwrap().as_bytes(), a.as_bytes());
    }

    #[test]
    fn time_ordered_serials_sort_by_time_and_stay_positive() {
        let t = std::time::SystemTime::now();
        let a = Serial::time_ordered(t);
        let b = Serial::time_ordered(t + std::time::Duration::from_nanos(1));
        assert_eq!(a.as_bytes().len(), 16);
        assert!(a.as_bytes()[0] & 0x80 == 0 && a.as_bytes()[0] != 0);
        assert!(a < b && a.to_string() < b.to_string(), "{a} {b}");
        assert_ne!(a, Serial::time_ordered(t), "64 random bits apart within one nanosecond");
        assert_eq!(a.to_x509().unwrap().as_bytes(), a.as_bytes());
    }

    #[test]
    fn parses_openssl_forms() {
        let s: Serial = "0x00:AB:cd".parse().unwrap();
        assert_eq!(s.to_string(), "abcd");
        assert_eq!("abc".parse::<Serial>().unwrap().as_bytes(), [0x0a, 0xbc]);
        assert!("00".parse::<Serial>().is_err());
        assert!("xyz".parse::<Serial>().is_err());
        assert!("01".repeat(21).parse::<Serial>().is_err());
    }
}
