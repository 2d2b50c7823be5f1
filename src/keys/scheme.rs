//! Signature schemes: the algorithms trustd's keys sign with, as profiles and policies name them,
//! with the AlgorithmIdentifier each puts into certificates, CRLs, OCSP responses and CMS.

use crate::digest::HashAlg;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::fmt;
use std::str::FromStr;

/// id-Ed25519 (RFC 8410 §3).
pub const ID_ED25519: const_oid::ObjectIdentifier = const_oid::ObjectIdentifier::new_unwrap("1.3.101.112");

/// Signature algorithms, named as in the profiles and policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// ecdsa-with-SHA256 (RFC 5758 §3.2), for P-256 keys.
    EcdsaSha256,
    /// ecdsa-with-SHA384 (RFC 5758 §3.2), for P-384 keys.
    EcdsaSha384,
    /// sha256WithRSAEncryption (RFC 4055 §5).
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    /// RSASSA-PSS with MGF1 and salt length equal to the hash length (RFC 4055 §3.1).
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
    /// Pure Ed25519 (RFC 8032 §5.1, RFC 8410 §3).
    Ed25519,
}

impl FromStr for SignatureScheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "ecdsa-sha256" => Self::EcdsaSha256,
            "ecdsa-sha384" => Self::EcdsaSha384,
            "rsa-pkcs1-sha256" => Self::RsaPkcs1Sha256,
            "rsa-pkcs1-sha384" => Self::RsaPkcs1Sha384,
            "rsa-pkcs1-sha512" => Self::RsaPkcs1Sha512,
            "rsa-pss-sha256" => Self::RsaPssSha256,
            "rsa-pss-sha384" => Self::RsaPssSha384,
            "rsa-pss-sha512" => Self::RsaPssSha512,
            "ed25519" => Self::Ed25519,
            _ => return Err(format!("unknown signature scheme '{s}'")),
        })
    }
}

impl fmt::Display for SignatureScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EcdsaSha256 => "ecdsa-sha256",
            Self::EcdsaSha384 => "ecdsa-sha384",
            Self::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
            Self::RsaPkcs1Sha384 => "rsa-pkcs1-sha384",
            Self::RsaPkcs1Sha512 => "rsa-pkcs1-sha512",
            Self::RsaPssSha256 => "rsa-pss-sha256",
            Self::RsaPssSha384 => "rsa-pss-sha384",
            Self::RsaPssSha512 => "rsa-pss-sha512",
            Self::Ed25519 => "ed25519",
        })
    }
}

impl<'de> serde::Deserialize<'de> for SignatureScheme {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl SignatureScheme {
    /// The scheme that matches a key: ECDSA with the hash of the curve's strength (as the
    /// CA/Browser Forum requires), PKCS#1 v1.5 with SHA-256 for RSA.
    pub fn default_for(spki: &SubjectPublicKeyInfoOwned) -> Option<Self> {
        use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1};
        let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
        match (spki.algorithm.oid, curve) {
            (ID_EC_PUBLIC_KEY, Some(SECP_256_R_1)) => Some(Self::EcdsaSha256),
            (ID_EC_PUBLIC_KEY, Some(SECP_384_R_1)) => Some(Self::EcdsaSha384),
            (RSA_ENCRYPTION, _) => Some(Self::RsaPkcs1Sha256),
            (ID_ED25519, _) => Some(Self::Ed25519),
            _ => None,
        }
    }

    /// The scheme a key with `spki` signs with: `requested` when the key can sign with it (any
    /// RSA scheme for an RSA key; only the curve's own for ECDSA), else its default. `None` when
    /// the key cannot sign with what was asked, or with anything trustd knows.
    pub fn for_key(spki: &SubjectPublicKeyInfoOwned, requested: Option<Self>) -> Option<Self> {
        let default = Self::default_for(spki)?;
        match requested {
            None => Some(default),
            Some(s) if s == default || (s.is_rsa() && default.is_rsa()) => Some(s),
            Some(_) => None,
        }
    }

    /// The hash the scheme signs with (the digestAlgorithm of a CMS SignerInfo, RFC 5652 §5.3).
    pub fn hash(self) -> HashAlg {
        match self {
            Self::EcdsaSha256 | Self::RsaPkcs1Sha256 | Self::RsaPssSha256 => HashAlg::Sha256,
            Self::EcdsaSha384 | Self::RsaPkcs1Sha384 | Self::RsaPssSha384 => HashAlg::Sha384,
            // RFC 8419 §3: SHA-512 is the digest algorithm for Ed25519 in CMS.
            Self::RsaPkcs1Sha512 | Self::RsaPssSha512 | Self::Ed25519 => HashAlg::Sha512,
        }
    }

    fn is_rsa(self) -> bool {
        !matches!(self, Self::EcdsaSha256 | Self::EcdsaSha384 | Self::Ed25519)
    }

    /// The AlgorithmIdentifier that goes into `signatureAlgorithm` (RFC 5280 §4.1.1.2).
    pub fn algorithm_identifier(self) -> spki::Result<AlgorithmIdentifierOwned> {
        use const_oid::db::rfc5912::*;
        let null = || Some(der::Any::null());
        let (oid, parameters) = match self {
            // RFC 5758 §3.2: the parameters field MUST be absent for ECDSA.
            Self::EcdsaSha256 => (ECDSA_WITH_SHA_256, None),
            Self::EcdsaSha384 => (ECDSA_WITH_SHA_384, None),
            // RFC 4055 §5: NULL parameters for the PKCS#1 v1.5 OIDs.
            Self::RsaPkcs1Sha256 => (SHA_256_WITH_RSA_ENCRYPTION, null()),
            Self::RsaPkcs1Sha384 => (SHA_384_WITH_RSA_ENCRYPTION, null()),
            Self::RsaPkcs1Sha512 => (SHA_512_WITH_RSA_ENCRYPTION, null()),
            Self::RsaPssSha256 => return rsa::pss::get_default_pss_signature_algo_id::<sha2::Sha256>(),
            Self::RsaPssSha384 => return rsa::pss::get_default_pss_signature_algo_id::<sha2::Sha384>(),
            Self::RsaPssSha512 => return rsa::pss::get_default_pss_signature_algo_id::<sha2::Sha512>(),
            // RFC 8410 §3: parameters absent.
            Self::Ed25519 => (ID_ED25519, None),
        };
        Ok(AlgorithmIdentifierOwned { oid, parameters })
    }
}
