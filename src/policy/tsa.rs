//! The time-stamping policy (RFC 3161 §2.4.2 TSTInfo fields; ETSI EN 319 422).

use crate::digest::HashAlg;
use const_oid::ObjectIdentifier;
use serde::Deserialize;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How finely genTime is stated (the TSA policy's `precision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Precision {
    Seconds,
    Millis,
    Micros,
}

impl Precision {
    /// The precision as a duration: one second, millisecond or microsecond.
    pub fn as_duration(self) -> Duration {
        match self {
            Self::Seconds => Duration::from_secs(1),
            Self::Millis => Duration::from_millis(1),
            Self::Micros => Duration::from_micros(1),
        }
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "1s" => Ok(Self::Seconds),
            "1ms" => Ok(Self::Millis),
            "1us" => Ok(Self::Micros),
            _ => Err(format!("unknown precision '{s}' (expected 1s, 1ms or 1us)")),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Seconds => "1s",
            Self::Millis => "1ms",
            Self::Micros => "1us",
        })
    }
}

/// A validated TSA policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsaPolicy {
    /// Policy OID used when a request names none.
    pub default_policy: ObjectIdentifier,
    /// Every policy a request may name (including the default).
    pub accepted_policies: Vec<ObjectIdentifier>,
    pub hash_algorithms: Vec<HashAlg>,
    pub accuracy: Duration,
    /// How finely genTime is stated; never coarser than `accuracy`.
    pub precision: Precision,
    pub include_tsa_name: bool,
    /// A qualified time-stamping service (eIDAS): every TSTInfo carries esi4-qtstStatement-1
    /// (ETSI EN 319 422 §9.1).
    pub qualified: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TsaFile {
    policy: String,
    #[serde(default)]
    accepted_policies: Vec<String>,
    hash_algorithms: Vec<HashAlg>,
    accuracy: String,
    #[serde(default = "default_precision")]
    precision: String,
    #[serde(default)]
    include_tsa_name: bool,
    #[serde(default)]
    qualified: bool,
}

fn default_precision() -> String {
    "1s".into()
}

impl TsaPolicy {
    /// Parses and validates `tsa.toml`; the error names the field.
    pub fn parse(text: &str) -> Result<TsaPolicy, String> {
        let f: TsaFile = toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))?;
        let oid =
            |field: &str, s: &str| ObjectIdentifier::new(s).map_err(|e| format!("{field}: invalid OID '{s}': {e}"));
        let default_policy = oid("policy", &f.policy)?;
        let mut accepted_policies = vec![default_policy];
        for p in &f.accepted_policies {
            accepted_policies.push(oid("accepted_policies", p)?);
        }
        if f.hash_algorithms.is_empty() {
            return Err("hash_algorithms: at least one is required".into());
        }
        let accuracy = humantime::parse_duration(&f.accuracy)
            .map_err(|e| format!("accuracy: invalid duration '{}': {e}", f.accuracy))?;
        if accuracy.is_zero() || accuracy.subsec_nanos() % 1000 != 0 {
            return Err("accuracy: must be positive and a whole number of microseconds".into());
        }
        let precision: Precision = f.precision.parse().map_err(|e| format!("precision: {e}"))?;
        if precision.as_duration() > accuracy {
            // A genTime truncated to whole seconds can be off by up to a second: it cannot
            // honour a finer stated accuracy.
            return Err(format!("precision: {precision} is coarser than the accuracy {}", f.accuracy));
        }
        Ok(TsaPolicy {
            default_policy,
            accepted_policies,
            hash_algorithms: f.hash_algorithms,
            accuracy,
            precision,
            include_tsa_name: f.include_tsa_name,
            qualified: f.qualified,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_policy_and_errors() {
        let text = include_str!("../../policies/tsa.toml");
        let p = TsaPolicy::parse(text).unwrap();
        assert_eq!(p.default_policy.to_string(), "0.4.0.2023.1.1");
        assert_eq!(p.hash_algorithms, [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512]);
        assert_eq!(p.accuracy, Duration::from_secs(1));
        assert_eq!(p.precision, Precision::Seconds);
        for (from, to, field) in [
            ("\"sha256\", \"sha384\"", "\"sha1\", \"sha384\"", "sha1"),
            ("accuracy = \"1s\"", "accuracy = \"soon\"", "accuracy"),
            ("accuracy = \"1s\"", "accuracy = \"0s\"", "accuracy"),
            ("policy = \"0.4.0.2023.1.1\"", "policy = \"x\"", "policy"),
            ("accepted_policies = []", "accepted_policies = [\"1\"]", "accepted_policies"),
            ("include_tsa_name", "include_name", "include_name"),
            ("precision = \"1s\"", "precision = \"1ns\"", "precision"),
            ("accuracy = \"1s\"", "accuracy = \"500ms\"", "precision: 1s is coarser"),
        ] {
            let e = TsaPolicy::parse(&text.replace(from, to)).unwrap_err();
            assert!(e.contains(field), "{to}: {e}");
        }
    }
}
