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
//! enum {
//!     certificate_issued(1), revocation(2), ceremony_event(3),
//!     timestamp_issued(4), signature_made(5), policy_change(6), (255)
//! } EntryType;
//!
//! struct {
//!     uint8 version = 1;
//!     EntryType entry_type;
//!     select (entry_type) {
//!         case certificate_issued: CertificateIssued;
//!         case revocation:         Revocation;
//!         case ceremony_event:     CeremonyEvent;
//!         case timestamp_issued:   TimestampIssued;
//!         case signature_made:     SignatureMade;
//!         case policy_change:      PolicyChange;
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
//!
//! struct {
//!     uint64 at;                         /* Unix seconds (UTC) the daemon first served with it */
//!     opaque role<1..255>;               /* what the key is for: root, issuing, tsa, … */
//!     opaque key<1..255>;                /* where it lives: its RFC 7512 URI in trustd's config */
//!     opaque public_key<1..65535>;       /* its SubjectPublicKeyInfo, DER */
//! } CeremonyEvent;
//!
//! struct {
//!     uint64 gen_time;                   /* genTime, Unix microseconds (UTC) */
//!     opaque signer[32];                 /* SHA-256 of the TSA certificate, DER (ESSCertIDv2) */
//!     opaque requester<0..65535>;        /* the client's configured name; empty: anonymous */
//!     opaque serial<1..20>;              /* TSTInfo serialNumber's DER content octets */
//!     opaque policy<1..255>;             /* TSTInfo policy, dotted OID */
//!     opaque token_hash[32];             /* SHA-256 of the TimeStampToken, DER */
//! } TimestampIssued;
//!
//! struct {
//!     uint64 signed_at;                  /* when trustd signed (CAdES: the signing-time attribute), Unix seconds (UTC) */
//!     opaque signer[32];                 /* SHA-256 of the signer certificate, DER */
//!     opaque requester<0..65535>;        /* the client's configured name */
//!     opaque policy<1..255>;             /* the signing policy's name */
//!     opaque signature_id<1..20>;        /* the id the caller got, big-endian */
//!     uint8 level;                       /* ETSI EN 319 122-1 level: 1 B-B, 2 B-T */
//!     opaque signature_hash[32];         /* SHA-256 of the SignerInfo's signature value */
//! } SignatureMade;
//!
//! struct {
//!     uint64 at;                         /* Unix seconds (UTC) the policy took effect */
//!     opaque file<1..255>;               /* the policy file's name, e.g. access.toml */
//!     opaque sha256[32];                 /* SHA-256 of the file's bytes as loaded */
//! } PolicyChange;
//! ```
//!
//! Time-stamps and signatures name their key by the SHA-256 of its certificate, the hash
//! ESSCertIDv2 carries in the token or signature itself (RFC 5035), so an auditor can match an
//! entry to a token in hand and to the certificate's own `certificate_issued` entry. Neither
//! the document's digest nor the token is in the log: its readers are auditors, not the
//! document's parties, and a digest of a guessable document would give it away.
//!
//! A `LogEntry` is the whole leaf input: nothing may follow it. The encoded entry is at most
//! 65535 bytes, since a C2SP tlog-tiles entry bundle prefixes each entry with a uint16 length.
//! Every value has exactly one encoding, so re-encoding a decoded entry gives the same bytes.
//! A `ceremony_event` states a key the key ceremony made, once per public key, at the first
//! start that serves with it (the ceremony, `trustd init`, runs without the log): so the log
//! names every key the service signs with, the root's and the log's own included. A reader that
//! meets a type it does not know fails with [`LogError::UnknownEntryType`] and can still verify
//! the tree, which does not depend on the entry's contents.

use super::LogError;
use crate::policy::Level;
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
    /// [`CeremonyEvent`].
    CeremonyEvent = 3,
    /// [`TimestampIssued`].
    TimestampIssued = 4,
    /// [`SignatureMade`].
    SignatureMade = 5,
    /// [`PolicyChange`].
    PolicyChange = 6,
}

impl EntryType {
    /// The name used in audit summaries.
    pub fn name(self) -> &'static str {
        match self {
            EntryType::CertificateIssued => "certificate_issued",
            EntryType::Revocation => "revocation",
            EntryType::CeremonyEvent => "ceremony_event",
            EntryType::TimestampIssued => "timestamp_issued",
            EntryType::SignatureMade => "signature_made",
            EntryType::PolicyChange => "policy_change",
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

/// A key of the key ceremony that the daemon serves with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CeremonyEvent {
    /// When the daemon first served with it, Unix seconds.
    pub at: u64,
    /// What it is for (`root`, `issuing`, `tsa`, `document-signer`, `ocsp`, `log`, `tls`, or
    /// `signing:<policy>`).
    pub role: String,
    /// Its RFC 7512 URI in trustd's config.
    pub key: String,
    /// Its SubjectPublicKeyInfo, DER.
    pub public_key_der: Vec<u8>,
}

/// A SHA-256 value in an entry: of a certificate, a token or a signature value.
pub type Sha256 = [u8; 32];

/// A time-stamp token the TSA handed out (RFC 3161 §2.4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampIssued {
    /// genTime, microseconds since the Unix epoch.
    pub gen_time_us: u64,
    /// SHA-256 of the TSA certificate (DER).
    pub signer: Sha256,
    /// The client's configured name; empty for an anonymous request.
    pub requester: String,
    /// The TSTInfo serialNumber's DER content octets, 1 to 20 bytes.
    pub serial: Vec<u8>,
    /// The TSTInfo policy.
    pub policy: const_oid::ObjectIdentifier,
    /// SHA-256 of the TimeStampToken (DER).
    pub token_hash: Sha256,
}

/// A CMS signature the signing service made (ETSI EN 319 122-1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureMade {
    /// When trustd signed (a CAdES signature's signing-time attribute), Unix seconds.
    pub signed_at: u64,
    /// SHA-256 of the signer certificate (DER).
    pub signer: Sha256,
    /// The client's configured name.
    pub requester: String,
    /// The signing policy's name.
    pub policy: String,
    /// The signature id the caller got, 1 to 20 bytes.
    pub signature_id: Vec<u8>,
    /// The CAdES level.
    pub level: Level,
    /// SHA-256 of the SignerInfo's signature value.
    pub signature_hash: Sha256,
}

/// A policy file that took effect (at start or on reload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyChange {
    /// When it took effect, Unix seconds.
    pub at: u64,
    /// The file's name, e.g. `access.toml`.
    pub file: String,
    /// SHA-256 of the file's bytes as loaded.
    pub sha256: Sha256,
}

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEntry {
    /// Type 1.
    CertificateIssued(CertificateIssued),
    /// Type 2.
    Revocation(Revocation),
    /// Type 3.
    CeremonyEvent(CeremonyEvent),
    /// Type 4.
    TimestampIssued(TimestampIssued),
    /// Type 5.
    SignatureMade(SignatureMade),
    /// Type 6.
    PolicyChange(PolicyChange),
}

impl LogEntry {
    /// The entry's type byte.
    pub fn entry_type(&self) -> EntryType {
        match self {
            LogEntry::CertificateIssued(_) => EntryType::CertificateIssued,
            LogEntry::Revocation(_) => EntryType::Revocation,
            LogEntry::CeremonyEvent(_) => EntryType::CeremonyEvent,
            LogEntry::TimestampIssued(_) => EntryType::TimestampIssued,
            LogEntry::SignatureMade(_) => EntryType::SignatureMade,
            LogEntry::PolicyChange(_) => EntryType::PolicyChange,
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
                put_serial(&mut out, "serial", &r.serial)?;
                check_reason(r.reason)?;
                out.push(r.reason);
            }
            LogEntry::CeremonyEvent(c) => {
                out.extend_from_slice(&c.at.to_be_bytes());
                put8(&mut out, "role", c.role.as_bytes(), 1)?;
                put8(&mut out, "key", c.key.as_bytes(), 1)?;
                put16(&mut out, "public_key", &c.public_key_der, 1)?;
            }
            LogEntry::TimestampIssued(t) => {
                out.extend_from_slice(&t.gen_time_us.to_be_bytes());
                out.extend_from_slice(&t.signer);
                put16(&mut out, "requester", t.requester.as_bytes(), 0)?;
                put_serial(&mut out, "serial", &t.serial)?;
                put8(&mut out, "policy", t.policy.to_string().as_bytes(), 1)?;
                out.extend_from_slice(&t.token_hash);
            }
            LogEntry::SignatureMade(s) => {
                out.extend_from_slice(&s.signed_at.to_be_bytes());
                out.extend_from_slice(&s.signer);
                put16(&mut out, "requester", s.requester.as_bytes(), 0)?;
                put8(&mut out, "policy", s.policy.as_bytes(), 1)?;
                put_serial(&mut out, "signature_id", &s.signature_id)?;
                out.push(match s.level {
                    Level::BB => 1,
                    Level::BT => 2,
                });
                out.extend_from_slice(&s.signature_hash);
            }
            LogEntry::PolicyChange(p) => {
                out.extend_from_slice(&p.at.to_be_bytes());
                put8(&mut out, "file", p.file.as_bytes(), 1)?;
                out.extend_from_slice(&p.sha256);
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
                let serial = r.serial("serial")?;
                let reason = r.u8("reason")?;
                check_reason(reason)?;
                LogEntry::Revocation(Revocation { serial, issuer, revoked_at, reason })
            }
            3 => LogEntry::CeremonyEvent(CeremonyEvent {
                at: r.u64("at")?,
                role: r.text8("role", 1)?,
                key: r.text8("key", 1)?,
                public_key_der: r.bytes16("public_key", 1)?.to_vec(),
            }),
            4 => LogEntry::TimestampIssued(TimestampIssued {
                gen_time_us: r.u64("gen_time")?,
                signer: r.sha256("signer")?,
                requester: r.text16("requester", 0)?,
                serial: r.serial("serial")?,
                policy: {
                    let text = r.text8("policy", 1)?;
                    const_oid::ObjectIdentifier::new(&text)
                        .ok()
                        .filter(|oid| oid.to_string() == text)
                        .ok_or_else(|| LogError::BadEntry(format!("policy: '{text}' is not a dotted OID")))?
                },
                token_hash: r.sha256("token_hash")?,
            }),
            5 => LogEntry::SignatureMade(SignatureMade {
                signed_at: r.u64("signed_at")?,
                signer: r.sha256("signer")?,
                requester: r.text16("requester", 0)?,
                policy: r.text8("policy", 1)?,
                signature_id: r.serial("signature_id")?,
                level: match r.u8("level")? {
                    1 => Level::BB,
                    2 => Level::BT,
                    other => return Err(LogError::BadEntry(format!("level {other} is neither 1 (B-B) nor 2 (B-T)"))),
                },
                signature_hash: r.sha256("signature_hash")?,
            }),
            6 => LogEntry::PolicyChange(PolicyChange {
                at: r.u64("at")?,
                file: r.text8("file", 1)?,
                sha256: r.sha256("sha256")?,
            }),
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

/// A serial number or id: `opaque<1..20>`, as RFC 5280 §4.1.2.2 bounds serials.
fn put_serial(out: &mut Vec<u8>, field: &str, v: &[u8]) -> Result<(), LogError> {
    if v.len() > 20 {
        return Err(LogError::BadEntry(format!("{field}: {} bytes, at most 20", v.len())));
    }
    put8(out, field, v, 1)
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

    fn sha256(&mut self, field: &str) -> Result<Sha256, LogError> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(field, 32)?);
        Ok(a)
    }

    fn serial(&mut self, field: &str) -> Result<Vec<u8>, LogError> {
        let v = self.bytes8(field, 1)?;
        if v.len() > 20 {
            return Err(LogError::BadEntry(format!("{field}: {} bytes, at most 20", v.len())));
        }
        Ok(v.to_vec())
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

    fn timestamp() -> LogEntry {
        LogEntry::TimestampIssued(TimestampIssued {
            gen_time_us: 1_767_225_600_123_456,
            signer: [0x11; 32],
            requester: "portal".into(),
            serial: vec![0x18, 0x2a, 0x01],
            policy: const_oid::ObjectIdentifier::new_unwrap("0.4.0.2023.1.1"),
            token_hash: [0x22; 32],
        })
    }

    fn signature() -> LogEntry {
        LogEntry::SignatureMade(SignatureMade {
            signed_at: 1_767_225_602,
            signer: [0x33; 32],
            requester: "portal".into(),
            policy: "default".into(),
            signature_id: vec![0x18, 0x2a, 0x02],
            level: Level::BT,
            signature_hash: [0x44; 32],
        })
    }

    fn policy_change() -> LogEntry {
        LogEntry::PolicyChange(PolicyChange { at: 1_767_225_603, file: "access.toml".into(), sha256: [0x55; 32] })
    }

    fn ceremony() -> LogEntry {
        LogEntry::CeremonyEvent(CeremonyEvent {
            at: 1_767_225_599,
            role: "root".into(),
            key: "pkcs11:object=trustd-root-ca".into(),
            public_key_der: vec![0x30, 0x02, 0x05, 0x00],
        })
    }

    fn all() -> [LogEntry; 6] {
        [cert(), revocation(), ceremony(), timestamp(), signature(), policy_change()]
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

        let b = ceremony().encode().unwrap();
        let mut want = vec![1, 3];
        want.extend_from_slice(&1_767_225_599u64.to_be_bytes());
        want.push(4);
        want.extend_from_slice(b"root");
        want.push(28);
        want.extend_from_slice(b"pkcs11:object=trustd-root-ca");
        want.extend_from_slice(&[0, 4, 0x30, 0x02, 0x05, 0x00]);
        assert_eq!(b, want);

        let b = timestamp().encode().unwrap();
        let mut want = vec![1, 4];
        want.extend_from_slice(&1_767_225_600_123_456u64.to_be_bytes());
        want.extend_from_slice(&[0x11; 32]);
        want.extend_from_slice(&[0, 6]);
        want.extend_from_slice(b"portal");
        want.extend_from_slice(&[3, 0x18, 0x2a, 0x01, 14]);
        want.extend_from_slice(b"0.4.0.2023.1.1");
        want.extend_from_slice(&[0x22; 32]);
        assert_eq!(b, want);

        let b = signature().encode().unwrap();
        let mut want = vec![1, 5];
        want.extend_from_slice(&1_767_225_602u64.to_be_bytes());
        want.extend_from_slice(&[0x33; 32]);
        want.extend_from_slice(&[0, 6]);
        want.extend_from_slice(b"portal");
        want.push(7);
        want.extend_from_slice(b"default");
        want.extend_from_slice(&[3, 0x18, 0x2a, 0x02, 2]);
        want.extend_from_slice(&[0x44; 32]);
        assert_eq!(b, want);

        let b = policy_change().encode().unwrap();
        let mut want = vec![1, 6];
        want.extend_from_slice(&1_767_225_603u64.to_be_bytes());
        want.push(11);
        want.extend_from_slice(b"access.toml");
        want.extend_from_slice(&[0x55; 32]);
        assert_eq!(b, want);
    }

    #[test]
    fn round_trips() {
        for e in all() {
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
        for e in all() {
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
        for e in all() {
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
                v[1] = (len % 7) as u8;
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

        let mut t = timestamp();
        if let LogEntry::TimestampIssued(t) = &mut t {
            t.serial = vec![1; 21];
        }
        assert!(t.encode().is_err());
        let mut s = signature();
        if let LogEntry::SignatureMade(s) = &mut s {
            s.policy.clear();
        }
        assert!(s.encode().is_err());
    }

    #[test]
    fn a_policy_that_is_not_a_dotted_oid_or_an_unknown_level_is_refused() {
        let mut b = timestamp().encode().unwrap();
        // The policy's "0.4.0…" → "x.4.0…"; then a level of 3.
        let at = 2 + 8 + 32 + 2 + 6 + 4 + 1;
        b[at] = b'x';
        assert!(matches!(LogEntry::decode(&b), Err(LogError::BadEntry(m)) if m.contains("OID")));
        let mut b = signature().encode().unwrap();
        let at = 2 + 8 + 32 + 2 + 6 + 8 + 4;
        assert_eq!(b[at], 2);
        b[at] = 3;
        assert!(matches!(LogEntry::decode(&b), Err(LogError::BadEntry(m)) if m.contains("level")));
    }

    #[test]
    fn unknown_versions_and_types_are_named() {
        let mut b = cert().encode().unwrap();
        b[1] = 7;
        assert!(matches!(LogEntry::decode(&b), Err(LogError::UnknownEntryType(7))));
        b[0] = 2;
        assert!(matches!(LogEntry::decode(&b), Err(LogError::BadEntry(_))));
        let mut b = cert().encode().unwrap();
        // "issuing" → invalid UTF-8.
        b[11] = 0xff;
        assert!(matches!(LogEntry::decode(&b), Err(LogError::BadEntry(m)) if m.contains("UTF-8")));
    }
}
