//! The HSM's side of the key seam: [`HsmSigner`] is a [`SigningKey`] whose private key stays in
//! the token. Its blocking [`HsmSigner::sign`] runs on the HSM's worker threads when a core
//! awaits the trait's `sign`; it also serves RustCrypto's builders through `signature::Signer`.

use super::{Hsm, HsmError, KeyRef};
use crate::digest::HashAlg;
use crate::keys::{KeyError, Signature, SignatureScheme, SigningKey};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use der::Encode;
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey, SubjectPublicKeyInfoOwned};
use std::fmt;
use std::sync::Arc;

/// The signature type of [`HsmSigner`]'s `signature::Signer`: the seam's [`Signature`].
pub type HsmSignature = Signature;

fn pss(hash: MechanismType, mgf: PkcsMgfType, len: u64) -> PkcsPssParams {
    PkcsPssParams { hash_alg: hash, mgf, s_len: len.into() }
}

/// What is signed: a message, or the scheme's hash of one that the caller computed.
#[derive(Clone, Copy)]
enum Tbs<'a> {
    Message(&'a [u8]),
    Digest(&'a [u8]),
}

impl Tbs<'_> {
    fn len(&self) -> usize {
        match self {
            Tbs::Message(b) | Tbs::Digest(b) => b.len(),
        }
    }
}

/// The PKCS#11 mechanism for `scheme` and the bytes to hand it. SoftHSM (and many HSMs) have no
/// CKM_ECDSA_SHA256, so ECDSA hashes here and signs the digest with CKM_ECDSA; a digest is
/// signed with the mechanisms that do not hash (CKM_ECDSA, CKM_RSA_PKCS over RFC 8017 §9.2's
/// DigestInfo, CKM_RSA_PKCS_PSS). `None` for a digest of the wrong length, or for a key that
/// signs only messages (pure EdDSA).
fn mechanism(scheme: SignatureScheme, tbs: Tbs<'_>) -> Option<(Mechanism<'static>, Vec<u8>)> {
    let hash = scheme.hash();
    if let Tbs::Digest(d) = tbs {
        if d.len() != hash.output_len() {
            return None;
        }
    }
    let pss_params = || match hash {
        HashAlg::Sha256 => pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32),
        HashAlg::Sha384 => pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48),
        HashAlg::Sha512 => pss(MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64),
    };
    let digest_info = |d: &[u8]| {
        let prefix = match hash {
            HashAlg::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>().prefix,
            HashAlg::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>().prefix,
            HashAlg::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>().prefix,
        };
        [&prefix[..], d].concat()
    };
    Some(match (scheme, tbs) {
        (SignatureScheme::EcdsaSha256 | SignatureScheme::EcdsaSha384, Tbs::Message(m)) => {
            (Mechanism::Ecdsa, hash.digest(m))
        }
        (SignatureScheme::EcdsaSha256 | SignatureScheme::EcdsaSha384, Tbs::Digest(d)) => (Mechanism::Ecdsa, d.to_vec()),
        (SignatureScheme::RsaPkcs1Sha256, Tbs::Message(m)) => (Mechanism::Sha256RsaPkcs, m.to_vec()),
        (SignatureScheme::RsaPkcs1Sha384, Tbs::Message(m)) => (Mechanism::Sha384RsaPkcs, m.to_vec()),
        (SignatureScheme::RsaPkcs1Sha512, Tbs::Message(m)) => (Mechanism::Sha512RsaPkcs, m.to_vec()),
        (
            SignatureScheme::RsaPkcs1Sha256 | SignatureScheme::RsaPkcs1Sha384 | SignatureScheme::RsaPkcs1Sha512,
            Tbs::Digest(d),
        ) => (Mechanism::RsaPkcs, digest_info(d)),
        (SignatureScheme::RsaPssSha256, Tbs::Message(m)) => (Mechanism::Sha256RsaPkcsPss(pss_params()), m.to_vec()),
        (SignatureScheme::RsaPssSha384, Tbs::Message(m)) => (Mechanism::Sha384RsaPkcsPss(pss_params()), m.to_vec()),
        (SignatureScheme::RsaPssSha512, Tbs::Message(m)) => (Mechanism::Sha512RsaPkcsPss(pss_params()), m.to_vec()),
        (
            SignatureScheme::RsaPssSha256 | SignatureScheme::RsaPssSha384 | SignatureScheme::RsaPssSha512,
            Tbs::Digest(d),
        ) => (Mechanism::RsaPkcsPss(pss_params()), d.to_vec()),
        (SignatureScheme::Ed25519, Tbs::Message(m)) => {
            (Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), m.to_vec())
        }
        (SignatureScheme::Ed25519, Tbs::Digest(_)) => return None,
    })
}

/// How `key` signs messages in `scheme`: with the mechanism that hashes in the token (`true`),
/// or, where the token lacks it (opencryptoki's soft token has no CKM_SHA256_RSA_PKCS), hashed
/// by trustd and signed with the mechanism that signs a digest (`false`), which makes the same
/// signature: PKCS#1 v1.5 and PSS sign the hash (RFC 8017 §8.1, §8.2). Neither: refused, naming
/// the mechanism the token lacks.
fn hashes_in_token(
    caps: &super::capabilities::Capabilities,
    scheme: SignatureScheme,
    key: &str,
    bits: Option<usize>,
) -> Result<bool, HsmError> {
    let mismatch = || HsmError::SchemeMismatch { key: key.to_owned(), scheme: scheme.to_string() };
    let (message, _) = mechanism(scheme, Tbs::Message(&[])).ok_or_else(mismatch)?;
    let refused = match caps.check_sign(message.mechanism_type(), key, bits) {
        Ok(()) => return Ok(true),
        Err(e) => e,
    };
    let digest = vec![0; scheme.hash().output_len()];
    match mechanism(scheme, Tbs::Digest(&digest)) {
        Some((m, _)) if m.mechanism_type() != message.mechanism_type() => {
            caps.check_sign(m.mechanism_type(), key, bits).map_err(|_| refused)?;
            Ok(false)
        }
        _ => Err(refused),
    }
}

/// The modulus length in bits of an RSA public key; `None` for other keys.
pub(super) fn rsa_bits(spki: &SubjectPublicKeyInfoOwned) -> Option<usize> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPublicKey::from_pkcs1_der(spki.subject_public_key.as_bytes()?).ok()?;
    Some(key.n().bits())
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
/// a pooled session, so many threads may sign at once. Cheap to clone.
#[derive(Clone)]
pub struct HsmSigner(Arc<Inner>);

struct Inner {
    hsm: Hsm,
    key: KeyRef,
    scheme: SignatureScheme,
    public_key: PublicKey,
    /// Whether messages are hashed by the token (CKM_SHA256_RSA_PKCS, …) or by trustd and
    /// signed as a digest (a token without the hashing mechanism).
    hashes_in_token: bool,
}

impl fmt::Debug for HsmSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HsmSigner").field("key", &self.0.key.to_string()).field("scheme", &self.0.scheme).finish()
    }
}

impl HsmSigner {
    /// Finds the key pair and checks that `scheme` (or the key's default scheme) fits it and
    /// that the token signs with its mechanism. Blocking.
    pub fn new(hsm: &Hsm, key: KeyRef, scheme: Option<SignatureScheme>) -> Result<Self, HsmError> {
        let spki = hsm.public_key(&key)?;
        let scheme = SignatureScheme::for_key(&spki, scheme).ok_or_else(|| HsmError::SchemeMismatch {
            key: key.to_string(),
            scheme: scheme.map_or("any supported scheme".into(), |s| s.to_string()),
        })?;
        let hashes_in_token = hashes_in_token(hsm.capabilities(), scheme, &key.to_string(), rsa_bits(&spki))?;
        if !hashes_in_token {
            tracing::info!(%key, %scheme, "the token signs this scheme only over a digest: trustd hashes messages");
        }
        hsm.with_private_key(&key, |_, _| Ok(()))?;
        Ok(HsmSigner(Arc::new(Inner { hsm: hsm.clone(), key, scheme, public_key: PublicKey(spki), hashes_in_token })))
    }

    /// The key's SubjectPublicKeyInfo.
    pub fn public_key_info(&self) -> &SubjectPublicKeyInfoOwned {
        &self.0.public_key.0
    }

    /// The scheme this signer signs with.
    pub fn scheme(&self) -> SignatureScheme {
        self.0.scheme
    }

    /// Signs `msg` in the HSM on the calling thread. Blocking: async code signs through
    /// [`SigningKey::sign`], which runs this on the HSM's workers.
    pub fn sign(&self, msg: &[u8]) -> Result<Signature, HsmError> {
        self.sign_tbs(Tbs::Message(msg))
    }

    fn sign_tbs(&self, tbs: Tbs<'_>) -> Result<Signature, HsmError> {
        let this = &self.0;
        let digest;
        let tbs = match tbs {
            Tbs::Message(m) if !this.hashes_in_token => {
                digest = this.scheme.hash().digest(m);
                Tbs::Digest(&digest)
            }
            tbs => tbs,
        };
        let (mechanism, input) = mechanism(this.scheme, tbs).ok_or_else(|| HsmError::SchemeMismatch {
            key: this.key.to_string(),
            scheme: format!("{} over a digest of {} bytes", this.scheme, tbs.len()),
        })?;
        if let Tbs::Digest(_) = tbs {
            // The mechanisms that sign a digest are not those checked when the key was opened.
            let bits = rsa_bits(&this.public_key.0);
            this.hsm.capabilities().check_sign(mechanism.mechanism_type(), &this.key.to_string(), bits)?;
        }
        let raw = this.hsm.sign_with(&this.key, &mechanism, &input)?;
        let enc = |e: signature::Error| HsmError::Encoding(format!("ECDSA signature from the HSM: {e}"));
        // PKCS#11 returns ECDSA signatures as r‖s; X.509 and CMS want the DER Ecdsa-Sig-Value.
        Ok(Signature::new(match this.scheme {
            SignatureScheme::EcdsaSha256 => {
                p256::ecdsa::Signature::from_slice(&raw).map_err(enc)?.to_der().as_bytes().to_vec()
            }
            SignatureScheme::EcdsaSha384 => {
                p384::ecdsa::Signature::from_slice(&raw).map_err(enc)?.to_der().as_bytes().to_vec()
            }
            _ => raw,
        }))
    }

    async fn run(&self, tbs: Vec<u8>, digest: bool) -> Result<Signature, KeyError> {
        let signer = self.clone();
        let start = std::time::Instant::now();
        let signed = self
            .0
            .hsm
            .run(move || signer.sign_tbs(if digest { Tbs::Digest(&tbs) } else { Tbs::Message(&tbs) }))
            .await
            .and_then(|r| r);
        crate::metrics::global().hsm_operation(signed.is_ok(), start.elapsed());
        Ok(signed?)
    }
}

impl From<HsmError> for KeyError {
    fn from(e: HsmError) -> KeyError {
        match e {
            HsmError::Unavailable(_) => KeyError::Unavailable(e.to_string()),
            HsmError::Busy | HsmError::Saturated => KeyError::Busy(e.to_string()),
            e => KeyError::Failed(e.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl SigningKey for HsmSigner {
    fn scheme(&self) -> SignatureScheme {
        self.0.scheme
    }

    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.0.public_key.0
    }

    async fn sign(&self, msg: &[u8]) -> Result<Signature, KeyError> {
        self.run(msg.to_vec(), false).await
    }

    async fn sign_digest(&self, digest: &[u8]) -> Result<Signature, KeyError> {
        self.run(digest.to_vec(), true).await
    }
}

impl signature::Keypair for HsmSigner {
    type VerifyingKey = PublicKey;
    fn verifying_key(&self) -> PublicKey {
        self.0.public_key.clone()
    }
}

impl signature::Signer<Signature> for HsmSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Signature, signature::Error> {
        HsmSigner::sign(self, msg).map_err(signature::Error::from_source)
    }
}

impl DynSignatureAlgorithmIdentifier for HsmSigner {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        self.0.scheme.algorithm_identifier()
    }
}

#[cfg(test)]
mod tests {
    use super::super::capabilities::{Capabilities, Capability};
    use super::*;

    fn signs(m: MechanismType) -> (MechanismType, Capability) {
        (m, Capability { sign: true, generate_key_pair: false, min_key_size: 1024, max_key_size: 4096 })
    }

    #[test]
    fn messages_are_hashed_by_trustd_where_the_token_only_signs_digests() {
        let full = Capabilities::of(vec![signs(MechanismType::SHA256_RSA_PKCS), signs(MechanismType::RSA_PKCS)]);
        assert!(hashes_in_token(&full, SignatureScheme::RsaPkcs1Sha256, "k", Some(3072)).unwrap());
        // opencryptoki 3.8's soft token: CKM_RSA_PKCS, no CKM_SHA256_RSA_PKCS.
        let raw = Capabilities::of(vec![signs(MechanismType::RSA_PKCS), signs(MechanismType::RSA_PKCS_PSS)]);
        assert!(!hashes_in_token(&raw, SignatureScheme::RsaPkcs1Sha256, "k", Some(3072)).unwrap());
        assert!(!hashes_in_token(&raw, SignatureScheme::RsaPssSha384, "k", Some(3072)).unwrap());
        // ECDSA is always signed over trustd's digest, with the one mechanism.
        let ec = Capabilities::of(vec![signs(MechanismType::ECDSA)]);
        assert!(hashes_in_token(&ec, SignatureScheme::EcdsaSha256, "k", None).unwrap());
        // Neither mechanism, or a size the token refuses: refused, naming the hashing one.
        let none = Capabilities::of(vec![signs(MechanismType::ECDSA)]);
        let e = hashes_in_token(&none, SignatureScheme::RsaPkcs1Sha256, "pkcs11:object=k", Some(3072)).unwrap_err();
        assert!(e.to_string().contains("SHA256_RSA_PKCS") && e.to_string().contains("object=k"), "{e}");
        assert!(hashes_in_token(&raw, SignatureScheme::RsaPkcs1Sha256, "k", Some(8192)).is_err());
        assert!(hashes_in_token(&ec, SignatureScheme::Ed25519, "k", None).is_err());
    }
}
