//! RFC 7512 PKCS#11 URIs naming a key: `pkcs11:token=trustd;object=root-ca;id=%01%02`.
//!
//! Written by hand because no maintained crate parses RFC 7512 on its own; we only need the
//! path attributes that select a token object (`token`, `object`, `id`), and we refuse the rest
//! rather than silently ignoring an attribute an operator expected to be honoured.

use std::fmt;

/// How a key (and the certificate stored beside it) is found in the token: by CKA_LABEL, by
/// CKA_ID, or both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyRef {
    /// Token label the key must live on (`token=`); `None` means the configured token.
    pub token: Option<String>,
    /// CKA_LABEL (`object=`).
    pub label: Option<String>,
    /// CKA_ID (`id=`), raw bytes.
    pub id: Option<Vec<u8>>,
}

impl KeyRef {
    /// A reference by label alone, as the key ceremony creates keys.
    pub fn label(label: &str) -> Self {
        KeyRef { token: None, label: Some(label.to_owned()), id: None }
    }

    /// Parses either an RFC 7512 URI or a bare label.
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some(rest) = s.strip_prefix("pkcs11:") else {
            if s.is_empty() {
                return Err("empty key reference".into());
            }
            return Ok(Self::label(s));
        };
        // RFC 7512 §2.3: path attributes before '?', query attributes (pin-source, module-path)
        // after it. We take the PIN and module from the config, never from a URI.
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if !query.is_empty() {
            return Err(format!("PKCS#11 URI query attributes are not supported here: {query}"));
        }
        let mut r = KeyRef { token: None, label: None, id: None };
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (k, v) = attr.split_once('=').ok_or_else(|| format!("PKCS#11 URI attribute without '=': {attr}"))?;
            let v = pct_decode(v)?;
            match k {
                "token" => r.token = Some(utf8(v, k)?),
                "object" => r.label = Some(utf8(v, k)?),
                "id" => r.id = Some(v),
                // RFC 7512 lets a URI narrow by type; a key reference always means the private key.
                "type" if v == b"private" => {}
                other => return Err(format!("unsupported PKCS#11 URI attribute '{other}'")),
            }
        }
        if r.label.is_none() && r.id.is_none() {
            return Err("PKCS#11 URI names no object: give object= or id=".into());
        }
        Ok(r)
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(t) = &self.token {
            parts.push(format!("token={}", pct_encode(t.as_bytes())));
        }
        if let Some(l) = &self.label {
            parts.push(format!("object={}", pct_encode(l.as_bytes())));
        }
        if let Some(id) = &self.id {
            parts.push(format!("id={}", id.iter().map(|b| format!("%{b:02X}")).collect::<String>()));
        }
        write!(f, "pkcs11:{}", parts.join(";"))
    }
}

impl<'de> serde::Deserialize<'de> for KeyRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        KeyRef::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

fn utf8(v: Vec<u8>, k: &str) -> Result<String, String> {
    String::from_utf8(v).map_err(|_| format!("PKCS#11 URI attribute '{k}' is not UTF-8"))
}

fn pct_decode(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| format!("truncated %-escape in '{s}'"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape in '{s}'"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn pct_encode(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc7512_examples() {
        let r = KeyRef::parse("pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;object=my-key;id=%01%02").unwrap();
        assert_eq!(r.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(r.label.as_deref(), Some("my-key"));
        assert_eq!(r.id, Some(vec![1, 2]));
        assert_eq!(KeyRef::parse(&r.to_string()).unwrap(), r);
    }

    #[test]
    fn bare_label_and_errors() {
        assert_eq!(KeyRef::parse("root").unwrap(), KeyRef::label("root"));
        assert!(KeyRef::parse("pkcs11:token=x").is_err());
        assert!(KeyRef::parse("pkcs11:object=a?pin-value=1234").is_err());
        assert!(KeyRef::parse("pkcs11:object=%zz").is_err());
        assert!(KeyRef::parse("pkcs11:slot-id=1;object=a").is_err());
        assert!(KeyRef::parse("").is_err());
    }
}
