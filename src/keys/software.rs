//! Software keys for in-process tests of the protocol cores. Compiled into test builds only:
//! no configuration, and no release binary, can select a key held in memory.

use super::{KeyError, Signature, SignatureScheme, SigningKey};
use der::Decode;
use spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};

enum Secret {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A key in memory; or, for tests of failure paths, one that always fails with a given cause.
pub struct SoftwareKey {
    secret: Secret,
    spki: SubjectPublicKeyInfoOwned,
    fails_with: Option<String>,
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKey").field("scheme", &self.scheme()).finish()
    }
}

impl SoftwareKey {
    /// An ECDSA P-256 key derived from `seed` (any non-zero byte gives a valid scalar).
    pub fn p256(seed: u8) -> Self {
        let sk = p256::ecdsa::SigningKey::from_slice(&[seed.max(1); 32]).expect("a valid P-256 scalar");
        let der = sk.verifying_key().to_public_key_der().expect("SPKI of a P-256 key");
        let spki = SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).expect("SPKI of a P-256 key");
        SoftwareKey { secret: Secret::P256(sk), spki, fails_with: None }
    }

    /// An Ed25519 key derived from `seed`.
    pub fn ed25519(seed: u8) -> Self {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let spki = SubjectPublicKeyInfoOwned {
            algorithm: spki::AlgorithmIdentifierOwned { oid: super::ID_ED25519, parameters: None },
            subject_public_key: der::asn1::BitString::from_bytes(sk.verifying_key().as_bytes()).expect("a 32-byte key"),
        };
        SoftwareKey { secret: Secret::Ed25519(sk), spki, fails_with: None }
    }

    /// The same key, failing every signature with `cause` (as a device error would).
    pub fn failing(mut self, cause: &str) -> Self {
        self.fails_with = Some(cause.to_owned());
        self
    }
}

#[async_trait::async_trait]
impl SigningKey for SoftwareKey {
    fn scheme(&self) -> SignatureScheme {
        match self.secret {
            Secret::P256(_) => SignatureScheme::EcdsaSha256,
            Secret::Ed25519(_) => SignatureScheme::Ed25519,
        }
    }

    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.spki
    }

    async fn sign(&self, msg: &[u8]) -> Result<Signature, KeyError> {
        if let Some(cause) = &self.fails_with {
            return Err(KeyError::Failed(cause.clone()));
        }
        Ok(Signature::new(match &self.secret {
            Secret::P256(sk) => {
                let sig: p256::ecdsa::Signature = signature::Signer::sign(sk, msg);
                sig.to_der().as_bytes().to_vec()
            }
            Secret::Ed25519(sk) => signature::Signer::<ed25519_dalek::Signature>::sign(sk, msg).to_bytes().to_vec(),
        }))
    }

    async fn sign_digest(&self, digest: &[u8]) -> Result<Signature, KeyError> {
        if let Some(cause) = &self.fails_with {
            return Err(KeyError::Failed(cause.clone()));
        }
        match &self.secret {
            Secret::P256(sk) => {
                let sig: p256::ecdsa::Signature = signature::hazmat::PrehashSigner::sign_prehash(sk, digest)
                    .map_err(|e| KeyError::Failed(e.to_string()))?;
                Ok(Signature::new(sig.to_der().as_bytes().to_vec()))
            }
            Secret::Ed25519(_) => Err(KeyError::Failed("an Ed25519 key signs whole messages, not digests".into())),
        }
    }
}
