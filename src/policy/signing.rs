//! Signing policies (`policies/signing/<name>.toml`): which key signs, with which algorithm, in
//! which format (CAdES, or the CMS that PAdES embeds in a PDF), at which baseline level (ETSI
//! EN 319 122-1 §6), and how large a document may be.

use crate::keys::{KeyRef, SignatureScheme};
use crate::policy::AttrKind;
use serde::Deserialize;
use std::fmt;
use std::str::FromStr;

/// CAdES baseline signature levels (ETSI EN 319 122-1 §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// B-B: the basic signature with its signed attributes.
    BB,
    /// B-T: B-B plus a signature time-stamp as unsigned attribute.
    BT,
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "B-B" => Ok(Self::BB),
            "B-T" => Ok(Self::BT),
            _ => Err(format!("unknown level '{s}' (known: B-B, B-T)")),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BB => "B-B",
            Self::BT => "B-T",
        })
    }
}

/// The signature's format: which CMS signed attributes a policy's signatures carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// CAdES baseline (ETSI EN 319 122-1 §5.2): content-type, message-digest,
    /// signing-certificate-v2 and signing-time.
    #[default]
    Cades,
    /// The CMS of a PAdES baseline signature (ETSI EN 319 142-1 §5.3, subfilter
    /// ETSI.CAdES.detached): detached over the PDF's byte-range digest, without the
    /// signing-time attribute, which PAdES forbids (the PDF's signature dictionary carries the
    /// claimed time, its M entry).
    Pades,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cades => "cades",
            Self::Pades => "pades",
        })
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A validated signing policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningPolicy {
    pub name: String,
    pub description: String,
    /// The key; `None` means the configured document-signing key.
    pub key: Option<KeyRef>,
    /// The signature algorithm; `None` means the one that matches the key.
    pub signature: Option<SignatureScheme>,
    /// CAdES, or PAdES's CMS.
    pub format: Format,
    /// Level used when a request names none.
    pub level: Level,
    /// Levels a request may ask for (contains `level`).
    pub levels: Vec<Level>,
    pub max_document_bytes: u64,
    pub max_stream_bytes: u64,
    /// Client identities allowed; `*` for any. Enforced by access control.
    pub clients: Vec<String>,
    /// The certificate of the policy's own key, issued by trustd's CA at start when the token
    /// holds none (`[certificate]`); `None` when the key's certificate is made elsewhere.
    pub certificate: Option<PolicyCertificate>,
}

/// The certificate a signing policy's key gets from trustd's CA: under a profile of
/// `policies/profiles/` (a seal of a legal person: `qcp-l-qscd`), naming a fixed subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyCertificate {
    pub profile: String,
    pub subject: Vec<(AttrKind, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateFile {
    profile: String,
    subject: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningFile {
    description: String,
    key: Option<KeyRef>,
    signature: Option<SignatureScheme>,
    #[serde(default)]
    format: Format,
    level: Level,
    levels: Vec<Level>,
    max_document_bytes: u64,
    max_stream_bytes: u64,
    clients: Vec<String>,
    #[serde(default)]
    certificate: Option<CertificateFile>,
}

impl SigningPolicy {
    /// The key of its own this policy signs with, if any: `None` for a policy on the
    /// document-signing key, by default or by naming `document_signer` (the key ceremony's),
    /// which then follows that key's rollovers.
    pub fn own_key(&self, document_signer: &KeyRef) -> Option<&KeyRef> {
        self.key.as_ref().filter(|k| *k != document_signer)
    }

    /// Parses and validates one policy file; the error names the field.
    pub fn parse(name: &str, text: &str) -> Result<SigningPolicy, String> {
        let f: SigningFile = toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))?;
        if !f.levels.contains(&f.level) {
            return Err(format!("levels: must contain the default level {}", f.level));
        }
        if f.max_document_bytes == 0 || f.max_stream_bytes == 0 {
            return Err("max_document_bytes, max_stream_bytes: must be positive".into());
        }
        // The whole document travels in one gRPC message; beyond this a stream is the way.
        const MAX_INLINE: u64 = 256 * 1024 * 1024;
        if f.max_document_bytes > MAX_INLINE {
            return Err(format!("max_document_bytes: at most {MAX_INLINE}; stream larger documents"));
        }
        if f.clients.is_empty() {
            return Err("clients: at least one entry (\"*\" for any) is required".into());
        }
        let certificate = f
            .certificate
            .map(|c| {
                if f.key.is_none() {
                    return Err("certificate: needs the policy's own key (key = …); the document signer's \
                                certificate is the key ceremony's"
                        .to_owned());
                }
                let mut subject = Vec::new();
                for (attr, value) in c.subject {
                    let kind = AttrKind::from_name(&attr)
                        .ok_or_else(|| format!("certificate.subject.{attr}: unknown attribute"))?;
                    subject.push((kind, value));
                }
                if subject.is_empty() {
                    return Err("certificate.subject: names no attribute".to_owned());
                }
                Ok(PolicyCertificate { profile: c.profile, subject })
            })
            .transpose()?;
        Ok(SigningPolicy {
            name: name.to_owned(),
            description: f.description,
            key: f.key,
            signature: f.signature,
            format: f.format,
            level: f.level,
            levels: f.levels,
            max_document_bytes: f.max_document_bytes,
            max_stream_bytes: f.max_stream_bytes,
            clients: f.clients,
            certificate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../policies/signing/default.toml");

    #[test]
    fn shipped_policy_parses() {
        let p = SigningPolicy::parse("default", SHIPPED).unwrap();
        assert_eq!(p.level, Level::BB);
        assert_eq!(p.levels, [Level::BB, Level::BT]);
        assert_eq!(p.key, None);
        assert_eq!(p.format, Format::Cades);
        let p = SigningPolicy::parse("pades", include_str!("../../policies/signing/pades.toml")).unwrap();
        assert_eq!(p.format, Format::Pades);
        let e = SigningPolicy::parse("x", &SHIPPED.replace("level = ", "format = \"xades\"\nlevel = ")).unwrap_err();
        assert!(e.contains("format") && e.contains("cades") && e.contains("pades"), "{e}");
    }

    /// `[certificate]`: the policy's own key certified under a profile, the subject by attribute.
    #[test]
    fn a_certificate_of_the_policys_own_key() {
        let with = |key: &str, subject: &str| {
            format!("{SHIPPED}\n{key}\n[certificate]\nprofile = \"qcp-l-qscd\"\nsubject = {{ {subject} }}\n")
        };
        let p = SigningPolicy::parse("seal", &with("key = \"seal-key\"", "C = \"DK\", CN = \"Seal\"")).unwrap();
        let c = p.certificate.unwrap();
        assert_eq!(c.profile, "qcp-l-qscd");
        assert_eq!(c.subject, [(AttrKind::Country, "DK".into()), (AttrKind::CommonName, "Seal".into())]);
        let e = SigningPolicy::parse("seal", &with("", "CN = \"Seal\"")).unwrap_err();
        assert!(e.contains("certificate: needs the policy's own key"), "{e}");
        let e = SigningPolicy::parse("seal", &with("key = \"k\"", "CN = \"Seal\", title = \"x\"")).unwrap_err();
        assert!(e.contains("certificate.subject.title: unknown attribute"), "{e}");
        let e = SigningPolicy::parse("seal", &with("key = \"k\"", "")).unwrap_err();
        assert!(e.contains("certificate.subject: names no attribute"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        let bad = SHIPPED.replace("levels = [\"B-B\", \"B-T\"]", "levels = [\"B-T\"]");
        assert!(SigningPolicy::parse("x", &bad).unwrap_err().contains("levels"));
        let bad = SHIPPED.replace("level = \"B-B\"", "level = \"B-LTA\"");
        assert!(SigningPolicy::parse("x", &bad).unwrap_err().contains("B-LTA"));
        let bad = SHIPPED.replace("# signature = \"ecdsa-sha256\"", "signature = \"md5\"");
        assert!(SigningPolicy::parse("x", &bad).unwrap_err().contains("md5"));
        let bad = SHIPPED.replace("max_document_bytes = 8388608", "max_document_bytes = 0");
        assert!(SigningPolicy::parse("x", &bad).unwrap_err().contains("max_document_bytes"));
    }
}
