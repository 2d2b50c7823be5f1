//! The hash functions trustd accepts (FIPS 180-4 SHA-2), by name and by OID (RFC 5754 §2).

use const_oid::db::rfc5912;
use const_oid::ObjectIdentifier;
use sha2::Digest;
use std::fmt;
use std::str::FromStr;

/// A SHA-2 hash function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// The algorithm OID (id-sha256, …).
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha256 => rfc5912::ID_SHA_256,
            Self::Sha384 => rfc5912::ID_SHA_384,
            Self::Sha512 => rfc5912::ID_SHA_512,
        }
    }

    /// The hash with this OID, if it is one trustd accepts.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        [Self::Sha256, Self::Sha384, Self::Sha512].into_iter().find(|h| h.oid() == *oid)
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// Hashes `msg`.
    pub fn digest(self, msg: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => sha2::Sha256::digest(msg).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(msg).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(msg).to_vec(),
        }
    }

    /// Hashes everything `r` yields, in constant memory.
    pub fn digest_reader(self, mut r: impl std::io::Read) -> std::io::Result<Vec<u8>> {
        fn run<D: Digest>(mut d: D, r: &mut dyn std::io::Read) -> std::io::Result<Vec<u8>> {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut buf)? {
                    0 => return Ok(d.finalize().to_vec()),
                    n => d.update(&buf[..n]),
                }
            }
        }
        match self {
            Self::Sha256 => run(sha2::Sha256::new(), &mut r),
            Self::Sha384 => run(sha2::Sha384::new(), &mut r),
            Self::Sha512 => run(sha2::Sha512::new(), &mut r),
        }
    }

    /// AlgorithmIdentifier with absent parameters (RFC 5754 §2: SHOULD omit).
    pub fn algorithm_identifier(self) -> spki::AlgorithmIdentifierOwned {
        spki::AlgorithmIdentifierOwned { oid: self.oid(), parameters: None }
    }
}

impl FromStr for HashAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "sha256" => Ok(Self::Sha256),
            "sha384" => Ok(Self::Sha384),
            "sha512" => Ok(Self::Sha512),
            _ => Err(format!("unsupported hash algorithm '{s}' (sha256, sha384, sha512)")),
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        })
    }
}

impl<'de> serde::Deserialize<'de> for HashAlg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}
