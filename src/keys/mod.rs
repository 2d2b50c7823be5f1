//! The one key seam: every private key of trustd (CA, TSA, document signer, OCSP responder,
//! log) is a [`SigningKey`], and protocol cores sign only through it. The HSM implements it
//! (`crate::hsm`) and owns the threads that talk to the device; a software key exists for tests
//! only (`software`, compiled into test builds alone, so no configuration can select it).
//!
//! The shape follows rustls's `SigningKey`/`Signer` and smallstep's `KeyManager`: a key knows
//! its scheme and public key and signs bytes; what is signed (a TBSCertificate, a CRL, an OCSP
//! ResponseData, CMS signed attributes, a checkpoint) is the core's business.

mod certified;
mod scheme;
#[cfg(test)]
pub mod software;
pub mod uri;
pub mod verify;

pub use certified::CertifiedKey;
pub use scheme::{SignatureScheme, ID_ED25519};
pub use uri::KeyRef;

use der::asn1::BitString;
use spki::{SignatureBitStringEncoding, SubjectPublicKeyInfoOwned};
use std::fmt;

/// Why a key could not sign. The detail is for the operator's log, never for a client.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key's device is down, restarting or saturated: asking again later may work.
    #[error("key unavailable: {0}")]
    Unavailable(String),
    /// The device has more work waiting than it is given: refused at once, asking again
    /// shortly will work.
    #[error("key busy: {0}")]
    Busy(String),
    /// The device refused or returned something unusable.
    #[error("signing failed: {0}")]
    Failed(String),
}

/// A private key that signs with one [`SignatureScheme`]. `sign` may wait for a device; it never
/// blocks the async worker that awaits it.
#[async_trait::async_trait]
pub trait SigningKey: Send + Sync + fmt::Debug {
    /// The scheme every signature of this key uses.
    fn scheme(&self) -> SignatureScheme;

    /// The key's SubjectPublicKeyInfo (RFC 5280 §4.1.2.7).
    fn public_key(&self) -> &SubjectPublicKeyInfoOwned;

    /// Signs `msg` (the scheme hashes it): the value for a signature field, see [`Signature`].
    async fn sign(&self, msg: &[u8]) -> Result<Signature, KeyError>;

    /// Signs `digest`, the scheme's hash of a message that the caller hashed itself (a remote
    /// signing client's, CSC `signatures/signHash`): the same signature [`SigningKey::sign`]
    /// makes of that message. Keys that sign only whole messages (pure EdDSA, RFC 8032) refuse.
    async fn sign_digest(&self, digest: &[u8]) -> Result<Signature, KeyError> {
        let _ = digest;
        Err(KeyError::Failed(format!("a {} key signs whole messages, not digests", self.scheme())))
    }
}

/// A signature value as it goes into a certificate's, CRL's, OCSP response's or CMS
/// structure's signature field: DER `Ecdsa-Sig-Value` for ECDSA (RFC 3279 §2.2.3), the raw
/// octets for RSA (RFC 8017 §8) and Ed25519 (RFC 8032 §5.1.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature(Vec<u8>);

impl Signature {
    /// A signature value already in the encoding above.
    pub fn new(encoded: Vec<u8>) -> Self {
        Signature(encoded)
    }

    /// The encoded signature value.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// As a BIT STRING with no unused bits (RFC 5280 §4.1.1.3, RFC 6960 §4.2.1).
    pub fn to_bit_string(&self) -> der::Result<BitString> {
        BitString::from_bytes(&self.0)
    }
}

impl From<Signature> for Vec<u8> {
    fn from(s: Signature) -> Vec<u8> {
        s.0
    }
}

impl TryFrom<&[u8]> for Signature {
    type Error = signature::Error;
    fn try_from(b: &[u8]) -> Result<Self, signature::Error> {
        Ok(Signature(b.to_vec()))
    }
}

impl signature::SignatureEncoding for Signature {
    type Repr = Vec<u8>;
}

impl SignatureBitStringEncoding for Signature {
    fn to_bitstring(&self) -> der::Result<BitString> {
        self.to_bit_string()
    }
}
