//! Log entries and their binary encoding: the bytes that are hashed into the tree
//! (RFC 9162 §2.1.1's leaf input) and served in entry bundles.
//!
//! # Format, version 1
//!
//! In the presentation language of RFC 8446 §3: integers are unsigned and big-endian, and
//! `opaque x<a..b>` is a length prefix of the smallest number of bytes that holds `b` (one byte
//! up to 255, two up to 65535) followed by that many bytes, with the length between `a` and `b`.
//! Text fields are UTF-8.
//!
//! ```text
//! enum { certificate_issued(1), revocation(2), ceremony_event(3), (255) } EntryType;
//!
//! struct {
//!     uint8 version = 1;
//!     EntryType entry_type;
//!     select (entry_type) {
//!         case certificate_issued: CertificateIssued;
//!         case revocation:         Revocation;
//!     };
//! } LogEntry;
//!
//! struct {
//!     uint64 issued_at;                  /* Unix seconds (UTC) when the CA returned it */
//!     opaque issuer<1..255>;             /* the issuing CA's name in trustd's config */
//!     opaque profile<1..255>;            /* the certificate profile's name */
//!     opaque requester<0..65535>;        /* who asked: the authenticated identity, or empty */
//!     opaque certificate<1..65535>;      /* the certificate, DER */
//! } CertificateIssued;
//!
//! struct {
//!     uint64 revoked_at;                 /* Unix seconds (UTC) of the revocation */
//!     opaque issuer<1..255>;             /* the CA that issued the certificate */
//!     opaque serial<1..20>;              /* serialNumber's DER content octets (RFC 5280 §4.1.2.2) */
//!     uint8 reason;                      /* CRLReason code (RFC 5280 §5.3.1): 0-6 or 8-10 */
//! } Revocation;
//! ```
//!
//! A `LogEntry` is the whole leaf input: nothing may follow it. The encoded entry is at most
//! 65535 bytes, since a C2SP tlog-tiles entry bundle prefixes each entry with a uint16 length.
//! Every value has exactly one encoding, so re-encoding a decoded entry gives the same bytes.
//! Type 3 (`ceremony_event`, key-ceremony records) is reserved; a reader that meets a type it
//! does not know fails with [`LogError::UnknownEntryType`] and can still verify the tree, which
//! does not depend on the entry's contents.

use super::LogError;
use std::fmt;

/// The format version this code writes and reads.
pub const ENTRY_FORMAT_VERSION: u8 = 1;

/// The largest encoded entry: an entry bundle's uint16 length prefix (C2SP tlog-tiles).
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// The type byte of a log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryType {
    /// [`CertificateIssued`].
    CertificateIssued = 1,
    /// [`Revocation`].
    Revocation = 2,
    /// Reserved for key-ceremony records; not encoded or decoded yet.
    CeremonyEvent = 3,
}

impl EntryType {
    /// The name used in audit summaries.
    pub fn name(self) -> &'static str {
        match self {
            EntryType::CertificateIssued => "certificate_issued",
            EntryType::Revocation => "revocation",
            EntryType::CeremonyEvent => "ceremony_event",
        }
    }
}

impl fmt::Display for EntryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A certificate the CA handed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateIssued {
    /// The certificate, DER.
    pub certificate_der: Vec<u8>,
    /// When the CA returned it, Unix seconds.
    pub issued_at: u64,
    /// The certificate profile's name.
    pub profile: String,
    /// Who asked for it (the authenticated identity), or empty.
    pub requester: String,
    /// The issuing CA's name.
    pub issuer: String,
}

/// A revocation of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The serialNumber's DER content octets, 1 to 20 bytes.
    pub serial: Vec<u8>,
    /// The name of the CA that issued the certificate.
    pub issuer: String,
    /// When it was revoked, Unix seconds.
    pub revoked_at: u64,
    /// The CRLReason code (RFC 5280 §5.3.1).
    pub reason: u8,
}

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEntry {
    /// Type 1.
    CertificateIssued(CertificateIssued),
    /// Type 2.
    Revocation(Revocation),
}

impl LogEntry {
    /// The entry's type byte.
    pub fn entry_type(&self) -> EntryType {
        match self {
            LogEntry::CertificateIssued(_) => EntryType::CertificateIssued,
            LogEntry::Revocation(_) => EntryType::Revocation,
        }
    }

    /// The CA the entry is about.
    pub fn issuer(&self) -> &str {
        match self {
            LogEntry::CertificateIssued(c) => &c.issuer,
            LogEntry::Revocation(r) => &r.issuer,
        }
    }

    /// The version-1 encoding (see the module documentation). Values that the format cannot
    /// carry (an empty profile, a 300-byte CA name, a certificate that makes the entry longer
    /// than 65535 bytes) are errors, so nothing unreadable is ever logged.
    pub fn encode(&self) -> Result<Vec<u8>, LogError> {
        let mut out = vec![ENTRY_FORMAT_VERSION, self.entry_type() as u8];
        match self {
            LogEntry::CertificateIssued(c) => {
                out.extend_from_slice(&c.issued_at.to_be_bytes());
                put8(&mut out, "issuer", c.issuer.as_bytes(), 1)?;
                put8(&mut out, "profile", c.profile.as_bytes(), 1)?;
                put16(&mut out, "requester", c.requester.as_bytes(), 0)?;
                put16(&mut out, "certificate", &c.certificate_der, 1)?;
            }
            LogEntry::Revocation(r) => {
                out.extend_from_slice(&r.revoked_at.to_be_bytes());
                put8(&mut out, "issuer", r.issuer.as_bytes(), 1)?;
                if r.serial.len() > 20 {
                    return Err(LogError::BadEntry(format!("serial: {} bytes, at most 20", r.serial.len())));
                }
                put8(&mut out, "serial", &r.serial, 1)?;
                check_reason(r.reason)?;
                out.push(r.reason);
            }
        }
        if out.len() > MAX_ENTRY_LEN {
            return Err(LogError::EntryTooLarge(out.len()));
        }
        Ok(out)
    }

    /// Parses a version-1 entry, refusing anything that [`LogEntry::encode`] would not have
    /// written. Never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, LogError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(LogError::EntryTooLarge(bytes.len()));
        }
        let mut r = Reader(bytes);
        let version = r.u8("version")?;
        if version != ENTRY_FORMAT_VERSION {
            return Err(LogError::BadEntry(format!(
                "format version {version}, this reader knows {ENTRY_FORMAT_VERSION}"
            )));
        }
        let entry = match r.u8("entry_type")? {
            1 => LogEntry::CertificateIssued(CertificateIssued {
                issued_at: r.u64("issued_at")?,
                issuer: r.text8("issuer", 1)?,
                profile: r.text8("profile", 1)?,
                requester: r.text16("requester", 0)?,
                certificate_der: r.bytes16("certificate", 1)?.to_vec(),
            }),
            2 => {
                let revoked_at = r.u64("revoked_at")?;
                let issuer = r.text8("issuer", 1)?;
                let serial = r.bytes8("serial", 1)?.to_vec();
                if serial.len() > 20 {
                    return Err(LogError::BadEntry(format!("serial: {} bytes, at most 20", serial.len())));
                }
                let reason = r.u8("reason")?;
                check_reason(reason)?;
                LogEntry::Revocation(Revocation { serial, issuer, revoked_at, reason })
            }
            other => return Err(LogError::UnknownEntryType(other)),
        };
        if !r.0.is_empty() {
            return Err(LogError::BadEntry(format!("{} bytes after the entry", r.0.len())));
        }
        Ok(entry)
    }
}

fn check_reason(reason: u8) -> Result<(), LogError> {
    // RFC 5280 §5.3.1: value 7 is unused.
    if reason > 10 || reason == 7 {
        return Err(LogError::BadEntry(format!("reason {reason} is not a CRLReason")));
    }
    Ok(())
}

fn put8(out: &mut Vec<u8>, field: &str, v: &[u8], min: usize) -> Result<(), LogError> {
    let len = u8::try_from(v.len())
        .ok()
        .filter(|&l| usize::from(l) >= min)
        .ok_or_else(|| bad_len(field, v.len(), min, 255))?;
    out.push(len);
    out.extend_from_slice(v);
    Ok(())
}

fn put16(out: &mut Vec<u8>, field: &str, v: &[u8], min: usize) -> Result<(), LogError> {
    let len = u16::try_from(v.len())
        .ok()
        .filter(|&l| usize::from(l) >= min)
        .ok_or_else(|| bad_len(field, v.len(), min, 65535))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(v);
    Ok(())
}

fn bad_len(field: &str, len: usize, min: usize, max: usize) -> LogError {
    LogError::BadEntry(format!("{field}: {len} bytes, must be {min} to {max}"))
}

/// Reads fields off the front of the remaining bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, field: &str, n: usize) -> Result<&'a [u8], LogError> {
        if self.0.len() < n {
            return Err(LogError::BadEntry(format!("truncated in {field}: {} of {n} bytes", self.0.len())));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, field: &str) -> Result<u8, LogError> {
        Ok(self.take(field, 1)?[0])
    }

    fn u64(&mut self, field: &str) -> Result<u64, LogError> {
        let b = self.take(field, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn bytes8(&mut self, field: &str, min: usize) -> Result<&'a [u8], LogError> {
        let len = usize::from(self.u8(field)?);
        if len < min {
            return Err(bad_len(field, len, min, 255));
        }
        self.take(field, len)
    }

    fn bytes16(&mut self, field: &str, min: usize) -> Result<&'a [u8], LogError> {
        let b = self.take(field, 2)?;
        let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
        if len < min {
            return Err(bad_len(field, len, min, 65535));
        }
        self.take(field, len)
    }

    fn text8(&mut self, field: &str, min: usize) -> Result<String, LogError> {
        utf8(field, self.bytes8(field, min)?)
    }

    fn text16(&mut self, field: &str, min: usize) -> Result<String, LogError> {
        utf8(field, self.bytes16(field, min)?)
    }
}

fn utf8(field: &str, b: &[u8]) -> Result<String, LogError> {
    String::from_utf8(b.to_vec()).map_err(|_| LogError::BadEntry(format!("{field}: not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> LogEntry {
        LogEntry::CertificateIssued(CertificateIssued {
            certificate_der: vec![0x30, 0x82, 0x01, 0x0a, 0xde, 0xad],
            issued_at: 1_767_225_600,
            profile: "tls-server".into(),
            requester: "spiffe://example.org/ops".into(),
            issuer: "issuing".into(),
        })
    }

    fn revocation() -> LogEntry {
        LogEntry::Revocation(Revocation {
            serial: vec![0x45, 0x49, 0xbd],
            issuer: "issuing".into(),
            revoked_at: 1_767_225_601,
            reason: 1,
        })
    }

    #[test]
    fn the_documented_layout_byte_for_byte() {
        let b = cert().encode().unwrap();
        let mut want = vec![1, 1];
        want.extend_from_slice(&1_767_225_600u64.to_be_bytes());
        want.push(7);
        want.extend_from_slice(b"issuing");
        want.push(10);
        want.extend_from_slice(b"tls-server");
        want.extend_from_slice(&[0, 24]);
        want.extend_from_slice(b"spiffe://example.org/ops");
        want.extend_from_slice(&[0, 6, 0x30, 0x82, 0x01, 0x0a, 0xde, 0xad]);
        assert_eq!(b, want);

        let b = revocation().encode().unwrap();
        let mut want = vec![1, 2];
        want.extend_from_slice(&1_767_225_601u64.to_be_bytes());
        want.push(7);
        want.extend_from_slice(b"issuing");
        want.extend_from_slice(&[3, 0x45, 0x49, 0xbd, 1]);
        assert_eq!(b, want);
    }

    #[test]
    fn round_trips() {
        for e in [cert(), revocation()] {
            let b = e.encode().unwrap();
            assert_eq!(LogEntry::decode(&b).unwrap(), e);
        }
        let mut anonymous = cert();
        if let LogEntry::CertificateIssued(c) = &mut anonymous {
            c.requester.clear();
        }
        assert_eq!(LogEntry::decode(&anonymous.encode().unwrap()).unwrap(), anonymous);
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        for e in [cert(), revocation()] {
            let b = e.encode().unwrap();
            for cut in 0..b.len() {
                assert!(LogEntry::decode(&b[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert!(LogEntry::decode(&longer).is_err());
        }
    }

    #[test]
    fn hostile_bytes_never_panic() {
        // Every single-byte corruption of valid entries, and a cheap deterministic stream of
        // random-looking inputs: decode must return, and whatever it accepts must re-encode to
        // the very same bytes (one encoding per value).
        let mut inputs = Vec::new();
        for e in [cert(), revocation()] {
            let b = e.encode().unwrap();
            for i in 0..b.len() {
                for v in [0u8, 1, 2, 3, 7, 0x7f, 0x80, 0xff] {
                    let mut c = b.clone();
                    c[i] = v;
                    inputs.push(c);
                }
            }
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..2000 {
            let mut v = Vec::with_capacity(len % 90);
            for _ in 0..len % 90 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(x as u8);
            }
            if len % 3 == 0 && v.len() > 2 {
                v[0] = 1;
                v[1] = (len % 4) as u8;
            }
            inputs.push(v);
        }
        for input in inputs {
            if let Ok(e) = LogEntry::decode(&input) {
                assert_eq!(e.encode().unwrap(), input);
            }
        }
    }

    #[test]
    fn values_the_format_cannot_carry_are_refused() {
        let with = |f: &dyn Fn(&mut CertificateIssued)| {
            let mut e = cert();
            if let LogEntry::CertificateIssued(c) = &mut e {
                f(c);
            }
            e.encode()
        };
        assert!(with(&|c| c.profile.clear()).is_err());
        assert!(with(&|c| c.issuer = "x".repeat(256)).is_err());
        assert!(with(&|c| c.certificate_der.clear()).is_err());
        assert!(matches!(with(&|c| c.certificate_der = vec![0; 65_500]), Err(LogError::EntryTooLarge(_))));
        assert!(with(&|c| c.certificate_der = vec![0; 70_000]).is_err());

        let rev = |serial: Vec<u8>, reason: u8| {
            LogEntry::Revocation(Revocation { serial, issuer: "issuing".into(), revoked_at: 0, reason }).encode()
        };
        assert!(rev(vec![], 0).is_err());
        assert!(rev(vec![1; 21], 0).is_err());
        assert!(rev(vec![1; 20], 7).is_err());
        assert!(rev(vec![1; 20], 11).is_err());
        assert!(rev(vec![1; 20], 10).is_ok());
    }

    #[test]
    fn unknown_versions_and_types_are_named() {
        let mut b = cert().encode().unwrap();
        b[1] = 3;
        assert!(matches!(LogEntry::decode(&b), Err(LogError::UnknownEntryType(3))));
        b[0] = 2;
        assert!(matches!(LogEntry::decode(&b), Err(LogError::BadEntry(_))));
        let mut b = cert().encode().unwrap();
        // "issuing" → invalid UTF-8.
        b[11] = 0xff;
        assert!(matches!(LogEntry::decode(&b), Err(LogError::BadEntry(m)) if m.contains("UTF-8")));
    }
}
