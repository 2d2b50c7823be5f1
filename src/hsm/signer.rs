//! A signer whose private key stays in the HSM, usable by every RustCrypto builder
//! (`x509_cert::builder`, `cms::builder`, `x509_ocsp::builder`) through `signature::Signer`.

use super::{Hsm, HsmError, KeyRef};
use crate::digest::HashAlg;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::ObjectHandle;
use der::asn1::BitString;
use der::Encode;
use spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey, SignatureBitStringEncoding,
    SubjectPublicKeyInfoOwned,
};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

/// Signature algorithms, named as in the profiles and policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
            (super::keys::ID_ED25519, _) => Some(Self::Ed25519),
            _ => None,
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
            Self::Ed25519 => (super::keys::ID_ED25519, None),
        };
        Ok(AlgorithmIdentifierOwned { oid, parameters })
    }

    fn pss(hash: MechanismType, mgf: PkcsMgfType, len: u64) -> PkcsPssParams {
        PkcsPssParams { hash_alg: hash, mgf, s_len: len.into() }
    }

    /// The PKCS#11 mechanism and the bytes to hand it. SoftHSM (and many HSMs) have no
    /// CKM_ECDSA_SHA256, so ECDSA hashes here and signs the digest with CKM_ECDSA.
    fn mechanism(self, msg: &[u8]) -> (Mechanism<'static>, Vec<u8>) {
        match self {
            Self::EcdsaSha256 => (Mechanism::Ecdsa, HashAlg::Sha256.digest(msg)),
            Self::EcdsaSha384 => (Mechanism::Ecdsa, HashAlg::Sha384.digest(msg)),
            Self::RsaPkcs1Sha256 => (Mechanism::Sha256RsaPkcs, msg.to_vec()),
            Self::RsaPkcs1Sha384 => (Mechanism::Sha384RsaPkcs, msg.to_vec()),
            Self::RsaPkcs1Sha512 => (Mechanism::Sha512RsaPkcs, msg.to_vec()),
            Self::RsaPssSha256 => (
                Mechanism::Sha256RsaPkcsPss(Self::pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32)),
                msg.to_vec(),
            ),
            Self::RsaPssSha384 => (
                Mechanism::Sha384RsaPkcsPss(Self::pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48)),
                msg.to_vec(),
            ),
            Self::RsaPssSha512 => (
                Mechanism::Sha512RsaPkcsPss(Self::pss(MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64)),
                msg.to_vec(),
            ),
            Self::Ed25519 => (Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), msg.to_vec()),
        }
    }
}

/// A signature value as it goes into a certificate's or CMS structure's signature field:
/// DER `Ecdsa-Sig-Value` for ECDSA (RFC 3279 §2.2.3), the raw octets for RSA and Ed25519.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HsmSignature(Vec<u8>);

impl HsmSignature {
    /// The encoded signature value.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<HsmSignature> for Vec<u8> {
    fn from(s: HsmSignature) -> Vec<u8> {
        s.0
    }
}

impl TryFrom<&[u8]> for HsmSignature {
    type Error = signature::Error;
    fn try_from(b: &[u8]) -> Result<Self, signature::Error> {
        Ok(HsmSignature(b.to_vec()))
    }
}

impl signature::SignatureEncoding for HsmSignature {
    type Repr = Vec<u8>;
}

impl SignatureBitStringEncoding for HsmSignature {
    fn to_bitstring(&self) -> der::Result<BitString> {
        BitString::from_bytes(&self.0)
    }
}

/// The verifying half of an HSM key pair, as its SubjectPublicKeyInfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(pub SubjectPublicKeyInfoOwned);

impl EncodePublicKey for PublicKey {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        Ok(der::Document::try_from(self.0.to_der()?)?)
    }
}

/// A private key in the HSM with the scheme it signs with. `Send + Sync`; each signature takes
/// a pooled session, so many threads may sign at once.
pub struct HsmSigner {
    hsm: Hsm,
    key: KeyRef,
    scheme: SignatureScheme,
    public_key: PublicKey,
    handle: Mutex<Option<ObjectHandle>>,
}

impl fmt::Debug for HsmSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HsmSigner").field("key", &self.key.to_string()).field("scheme", &self.scheme).finish()
    }
}

impl HsmSigner {
    /// Finds the key pair and checks that `scheme` (or the key's default scheme) fits it.
    pub fn new(hsm: &Hsm, key: KeyRef, scheme: Option<SignatureScheme>) -> Result<Self, HsmError> {
        let spki = hsm.public_key(&key)?;
        let default = SignatureScheme::default_for(&spki);
        let scheme = match (scheme, default) {
            (None, Some(d)) => d,
            (Some(s), Some(d)) if s == d || (s.is_rsa() && d.is_rsa()) => s,
            (s, _) => {
                return Err(HsmError::SchemeMismatch {
                    key: key.to_string(),
                    scheme: s.map_or("any supported scheme".into(), |s| s.to_string()),
                })
            }
        };
        let handle = hsm.find_private_key(&key)?;
        Ok(HsmSigner { hsm: hsm.clone(), key, scheme, public_key: PublicKey(spki), handle: Mutex::new(Some(handle)) })
    }

    /// The key's SubjectPublicKeyInfo.
    pub fn public_key_info(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public_key.0
    }

    /// Runs blocking work that uses this signer on its HSM's workers; see [`Hsm::run`].
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, HsmError> {
        self.hsm.run(job).await
    }

    /// The scheme this signer signs with.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// Signs `msg` in the HSM. Blocking: async code calls it through `spawn_blocking`.
    pub fn sign(&self, msg: &[u8]) -> Result<HsmSignature, HsmError> {
        let (mechanism, input) = self.scheme.mechanism(msg);
        let cached = *self.handle.lock().unwrap_or_else(|p| p.into_inner());
        let handle = match cached {
            Some(h) => h,
            None => {
                let h = self.hsm.find_private_key(&self.key)?;
                *self.handle.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
                h
            }
        };
        let raw = match self.hsm.with_session(|s| s.sign(&mechanism, handle, &input)) {
            // The device may renumber objects after it recovers: look the key up again next time.
            Err(HsmError::Pkcs11(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::KeyHandleInvalid | cryptoki::error::RvError::ObjectHandleInvalid,
                _,
            ))) => {
                *self.handle.lock().unwrap_or_else(|p| p.into_inner()) = None;
                let h = self.hsm.find_private_key(&self.key)?;
                *self.handle.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
                self.hsm.with_session(|s| s.sign(&mechanism, h, &input))?
            }
            r => r?,
        };
        let enc = |e: signature::Error| HsmError::Encoding(format!("ECDSA signature from the HSM: {e}"));
        // PKCS#11 returns ECDSA signatures as r‖s; X.509 and CMS want the DER Ecdsa-Sig-Value.
        Ok(HsmSignature(match self.scheme {
            SignatureScheme::EcdsaSha256 => {
                p256::ecdsa::Signature::from_slice(&raw).map_err(enc)?.to_der().as_bytes().to_vec()
            }
            SignatureScheme::EcdsaSha384 => {
                p384::ecdsa::Signature::from_slice(&raw).map_err(enc)?.to_der().as_bytes().to_vec()
            }
            _ => raw,
        }))
    }
}

impl signature::Keypair for HsmSigner {
    type VerifyingKey = PublicKey;
    fn verifying_key(&self) -> PublicKey {
        self.public_key.clone()
    }
}

impl signature::Signer<HsmSignature> for HsmSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<HsmSignature, signature::Error> {
        self.sign(msg).map_err(signature::Error::from_source)
    }
}

impl DynSignatureAlgorithmIdentifier for HsmSigner {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        self.scheme.algorithm_identifier()
    }
}
