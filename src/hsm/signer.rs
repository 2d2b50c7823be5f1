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

/// The PKCS#11 mechanism for `scheme` and the bytes to hand it. SoftHSM (and many HSMs) have no
/// CKM_ECDSA_SHA256, so ECDSA hashes here and signs the digest with CKM_ECDSA.
fn mechanism(scheme: SignatureScheme, msg: &[u8]) -> (Mechanism<'static>, Vec<u8>) {
    match scheme {
        SignatureScheme::EcdsaSha256 => (Mechanism::Ecdsa, HashAlg::Sha256.digest(msg)),
        SignatureScheme::EcdsaSha384 => (Mechanism::Ecdsa, HashAlg::Sha384.digest(msg)),
        SignatureScheme::RsaPkcs1Sha256 => (Mechanism::Sha256RsaPkcs, msg.to_vec()),
        SignatureScheme::RsaPkcs1Sha384 => (Mechanism::Sha384RsaPkcs, msg.to_vec()),
        SignatureScheme::RsaPkcs1Sha512 => (Mechanism::Sha512RsaPkcs, msg.to_vec()),
        SignatureScheme::RsaPssSha256 => {
            (Mechanism::Sha256RsaPkcsPss(pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32)), msg.to_vec())
        }
        SignatureScheme::RsaPssSha384 => {
            (Mechanism::Sha384RsaPkcsPss(pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48)), msg.to_vec())
        }
        SignatureScheme::RsaPssSha512 => {
            (Mechanism::Sha512RsaPkcsPss(pss(MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64)), msg.to_vec())
        }
        SignatureScheme::Ed25519 => (Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), msg.to_vec()),
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
        let (mechanism, _) = mechanism(scheme, &[]);
        hsm.capabilities().check_sign(mechanism.mechanism_type(), &key.to_string(), rsa_bits(&spki))?;
        hsm.with_private_key(&key, |_, _| Ok(()))?;
        Ok(HsmSigner(Arc::new(Inner { hsm: hsm.clone(), key, scheme, public_key: PublicKey(spki) })))
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
        let this = &self.0;
        let (mechanism, input) = mechanism(this.scheme, msg);
        let raw = this.hsm.with_private_key(&this.key, |s, h| s.sign(&mechanism, h, &input))?;
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
        let (signer, msg) = (self.clone(), msg.to_vec());
        let start = std::time::Instant::now();
        let signed = self.0.hsm.run(move || signer.sign(&msg)).await.and_then(|r| r);
        crate::metrics::global().hsm_operation(signed.is_ok(), start.elapsed());
        Ok(signed?)
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
