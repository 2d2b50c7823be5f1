//! Key generation inside the token, key lookup, public keys and certificate objects.

use super::{Hsm, HsmError, KeyRef};
use crate::keys::ID_ED25519;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use der::asn1::OctetString;
use der::{Decode, Encode};
use spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};
use std::fmt;
use std::str::FromStr;

/// Key types trustd generates and signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EcP256,
    EcP384,
    Rsa(u32),
    /// Ed25519 (RFC 8032), for signed notes such as the log's checkpoints.
    Ed25519,
}

impl FromStr for KeyAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ecdsa-p256" => Ok(Self::EcP256),
            "ecdsa-p384" => Ok(Self::EcP384),
            "rsa-2048" => Ok(Self::Rsa(2048)),
            "rsa-3072" => Ok(Self::Rsa(3072)),
            "rsa-4096" => Ok(Self::Rsa(4096)),
            "ed25519" => Ok(Self::Ed25519),
            _ => Err(format!(
                "unknown key algorithm '{s}' (expected ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519)"
            )),
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EcP256 => f.write_str("ecdsa-p256"),
            Self::EcP384 => f.write_str("ecdsa-p384"),
            Self::Rsa(bits) => write!(f, "rsa-{bits}"),
            Self::Ed25519 => f.write_str("ed25519"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for KeyAlgorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Protection attributes of a private key as the token reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyProtection {
    pub sensitive: bool,
    pub extractable: bool,
    pub always_sensitive: bool,
    pub never_extractable: bool,
}

/// What finds the token object `key` names: never a session object, such as a key's copies
/// (`key_copies`), which carry its label and ID.
fn label_template(class: ObjectClass, key: &KeyRef) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(class), Attribute::Token(true)];
    if let Some(l) = &key.label {
        t.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    if let Some(id) = &key.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

fn find_one(s: &Session, class: ObjectClass, key: &KeyRef) -> cryptoki::error::Result<Result<ObjectHandle, HsmError>> {
    let found = s.find_objects(&label_template(class, key))?;
    Ok(match found.as_slice() {
        [h] => Ok(*h),
        [] => Err(HsmError::KeyNotFound(key.to_string())),
        _ => Err(HsmError::KeyAmbiguous(key.to_string())),
    })
}

impl Hsm {
    fn check_token(&self, key: &KeyRef) -> Result<(), HsmError> {
        match &key.token {
            Some(t) if t != self.token_label() => {
                Err(HsmError::KeyNotFound(format!("{key} (this daemon uses token '{}')", self.token_label())))
            }
            _ => Ok(()),
        }
    }

    /// Runs `f` on a pooled session with the handle of the private key named by `key`, looked
    /// up once per module generation: handles never leave this module, so none outlives a
    /// re-initialisation. A handle the device no longer knows (it renumbered its objects) is
    /// looked up again once.
    pub(super) fn with_private_key<T>(
        &self,
        key: &KeyRef,
        f: impl Fn(&Session, ObjectHandle) -> cryptoki::error::Result<T>,
    ) -> Result<T, HsmError> {
        self.with_key_handle(key, |p, h| f(&p.session, h))
    }

    /// Signs `input` with `mechanism` and the private key named by `key`, through the
    /// session's copy of it where `[hsm] session_key_copies` asks for one (`key_copies`).
    pub(super) fn sign_with(&self, key: &KeyRef, mechanism: &Mechanism, input: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.with_key_handle(key, |p, h| {
            let h = p.copies.handle(&p.session, h)?;
            p.session.sign(mechanism, h, input).inspect_err(|e| p.copies.forget_after(e))
        })
    }

    fn with_key_handle<T>(
        &self,
        key: &KeyRef,
        f: impl Fn(&mut super::Pooled, ObjectHandle) -> cryptoki::error::Result<T>,
    ) -> Result<T, HsmError> {
        self.check_token(key)?;
        let attempt = || {
            self.with_pooled(|p| {
                let cached = self.0.private_keys.lock().unwrap_or_else(|p| p.into_inner()).get(key).copied();
                let handle = match cached {
                    Some(h) => h,
                    None => match find_one(&p.session, ObjectClass::PRIVATE_KEY, key)? {
                        Ok(h) => {
                            self.0.private_keys.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), h);
                            h
                        }
                        Err(e) => return Ok(Err(e)),
                    },
                };
                f(p, handle).map(Ok)
            })
        };
        match attempt() {
            Err(HsmError::Pkcs11(CkError::Pkcs11(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _))) => {
                self.0.private_keys.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
                attempt()?
            }
            r => r?,
        }
    }

    /// True if a private key named by `key` exists.
    pub fn has_private_key(&self, key: &KeyRef) -> Result<bool, HsmError> {
        match self.with_private_key(key, |_, _| Ok(())) {
            Ok(_) => Ok(true),
            Err(HsmError::KeyNotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Generates a key pair inside the token: CKA_TOKEN, CKA_SENSITIVE and not CKA_EXTRACTABLE,
    /// so the private key can never leave it. `key` must give a label (and may give the CKA_ID;
    /// a random one otherwise). Refuses if any object already has that label or ID.
    pub fn generate_key(&self, key: &KeyRef, alg: KeyAlgorithm) -> Result<SubjectPublicKeyInfoOwned, HsmError> {
        self.check_token(key)?;
        let label = key.label.as_deref().ok_or_else(|| HsmError::NeedsLabel(key.to_string()))?;
        let id = key.id.clone().unwrap_or_else(|| rand::random::<[u8; 16]>().to_vec());
        let mut clashes = self.with_session(|s| s.find_objects(&[Attribute::Label(label.as_bytes().to_vec())]))?;
        clashes.extend(self.with_session(|s| s.find_objects(&[Attribute::Id(id.clone())]))?);
        if !clashes.is_empty() {
            return Err(HsmError::KeyExists(key.to_string()));
        }
        let common = [Attribute::Token(true), Attribute::Label(label.as_bytes().to_vec()), Attribute::Id(id.to_vec())];
        let mut public: Vec<Attribute> = common.to_vec();
        public.extend([Attribute::Verify(true), Attribute::Private(false)]);
        let mut private: Vec<Attribute> = common.to_vec();
        private.extend([
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
        ]);
        let params = |oid: const_oid::ObjectIdentifier| {
            oid.to_der().map(Attribute::EcParams).map_err(|e| HsmError::Encoding(e.to_string()))
        };
        let mechanism = match alg {
            KeyAlgorithm::EcP256 => {
                public.push(params(const_oid::db::rfc5912::SECP_256_R_1)?);
                Mechanism::EccKeyPairGen
            }
            KeyAlgorithm::EcP384 => {
                public.push(params(const_oid::db::rfc5912::SECP_384_R_1)?);
                Mechanism::EccKeyPairGen
            }
            KeyAlgorithm::Ed25519 => {
                // PKCS#11 v3.0 §2.3.10: CKA_EC_PARAMS names the curve, here by its RFC 8410 OID.
                public.push(params(ID_ED25519)?);
                Mechanism::EccEdwardsKeyPairGen
            }
            KeyAlgorithm::Rsa(bits) => {
                public.push(Attribute::ModulusBits((bits as u64).into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        let bits = match alg {
            KeyAlgorithm::Rsa(bits) => Some(bits as usize),
            _ => None,
        };
        self.capabilities().check_generate(mechanism.mechanism_type(), &key.to_string(), bits)?;
        self.with_session(|s| s.generate_key_pair(&mechanism, &public, &private))?;
        tracing::info!(key = %key, algorithm = %alg, "generated key pair in the HSM");
        self.public_key(key)
    }

    /// Destroys the token's key pair named by `key` (its private and public key objects): a key
    /// generated for something that then failed, which nothing may sign with and which should
    /// not take up the token's storage. Returns how many objects went.
    pub fn destroy_key(&self, key: &KeyRef) -> Result<usize, HsmError> {
        self.check_token(key)?;
        let destroyed = self.with_session(|s| {
            let mut n = 0;
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                for h in s.find_objects(&label_template(class, key))? {
                    s.destroy_object(h)?;
                    n += 1;
                }
            }
            Ok(n)
        })?;
        self.0.private_keys.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        tracing::info!(key = %key, objects = destroyed, "destroyed key pair in the HSM");
        Ok(destroyed)
    }

    /// The public key of the pair named by `key`, as a SubjectPublicKeyInfo (RFC 5280 §4.1.2.7).
    pub fn public_key(&self, key: &KeyRef) -> Result<SubjectPublicKeyInfoOwned, HsmError> {
        self.check_token(key)?;
        let enc = |e: &dyn fmt::Display| HsmError::Encoding(format!("public key of {key}: {e}"));
        let attrs = self.with_session(|s| {
            let h = match find_one(s, ObjectClass::PUBLIC_KEY, key)? {
                Ok(h) => h,
                Err(e) => return Ok(Err(e)),
            };
            Ok(Ok(s.get_attributes(
                h,
                &[
                    AttributeType::KeyType,
                    AttributeType::EcPoint,
                    AttributeType::Modulus,
                    AttributeType::PublicExponent,
                ],
            )?))
        })??;
        let (mut kt, mut point, mut n, mut e) = (None, None, None, None);
        for a in attrs {
            match a {
                Attribute::KeyType(t) => kt = Some(t),
                Attribute::EcPoint(p) => point = Some(p),
                Attribute::Modulus(m) => n = Some(m),
                Attribute::PublicExponent(x) => e = Some(x),
                _ => {}
            }
        }
        let der = match (kt, point, n, e) {
            (Some(KeyType::EC), Some(p), _, _) => {
                // CKA_EC_POINT is a DER OCTET STRING (PKCS#11 v2.40 §2.3.3); some modules return it raw.
                let p = OctetString::from_der(&p).map(OctetString::into_bytes).unwrap_or(p);
                match p.len() {
                    65 => p256::PublicKey::from_sec1_bytes(&p).map_err(|e| enc(&e))?.to_public_key_der(),
                    97 => p384::PublicKey::from_sec1_bytes(&p).map_err(|e| enc(&e))?.to_public_key_der(),
                    l => return Err(enc(&format!("unsupported EC point length {l}"))),
                }
            }
            (Some(KeyType::EC_EDWARDS), Some(p), _, _) => {
                let p = OctetString::from_der(&p).map(OctetString::into_bytes).unwrap_or(p);
                if p.len() != 32 {
                    return Err(enc(&format!("Ed25519 public key of {} bytes", p.len())));
                }
                // RFC 8410 §4: the key is the 32 raw bytes, no parameters.
                return Ok(SubjectPublicKeyInfoOwned {
                    algorithm: spki::AlgorithmIdentifierOwned { oid: ID_ED25519, parameters: None },
                    subject_public_key: der::asn1::BitString::from_bytes(&p).map_err(|e| enc(&e))?,
                });
            }
            (Some(KeyType::RSA), _, Some(n), Some(e)) => {
                rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(&n), rsa::BigUint::from_bytes_be(&e))
                    .map_err(|e| enc(&e))?
                    .to_public_key_der()
            }
            (kt, ..) => return Err(enc(&format!("unsupported key type {kt:?}"))),
        }
        .map_err(|e| enc(&e))?;
        SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).map_err(|e| enc(&e))
    }

    /// CKA_SENSITIVE / CKA_EXTRACTABLE / CKA_ALWAYS_SENSITIVE / CKA_NEVER_EXTRACTABLE of a private key.
    pub fn key_protection(&self, key: &KeyRef) -> Result<KeyProtection, HsmError> {
        let attrs = self.with_private_key(key, |s, h| {
            s.get_attributes(
                h,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                ],
            )
        })?;
        let mut p =
            KeyProtection { sensitive: false, extractable: true, always_sensitive: false, never_extractable: false };
        for a in attrs {
            match a {
                Attribute::Sensitive(v) => p.sensitive = v,
                Attribute::Extractable(v) => p.extractable = v,
                Attribute::AlwaysSensitive(v) => p.always_sensitive = v,
                Attribute::NeverExtractable(v) => p.never_extractable = v,
                _ => {}
            }
        }
        Ok(p)
    }

    /// Stores an X.509 certificate as a token object beside its key (same CKA_LABEL and
    /// CKA_ID as `key` names), so the token holds everything a CA needs.
    pub fn store_certificate(&self, key: &KeyRef, cert_der: &[u8], subject_der: &[u8]) -> Result<(), HsmError> {
        self.check_token(key)?;
        let mut template = label_template(ObjectClass::CERTIFICATE, key);
        template.extend([
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Private(false),
            Attribute::Subject(subject_der.to_vec()),
            Attribute::Value(cert_der.to_vec()),
        ]);
        self.with_session(|s| s.create_object(&template))?;
        Ok(())
    }

    /// The DER certificate stored beside the key `key` names, if any.
    pub fn find_certificate(&self, key: &KeyRef) -> Result<Option<Vec<u8>>, HsmError> {
        self.check_token(key)?;
        self.with_session(|s| {
            let h = match find_one(s, ObjectClass::CERTIFICATE, key)? {
                Ok(h) => h,
                Err(HsmError::KeyNotFound(_)) => return Ok(Ok(None)),
                Err(e) => return Ok(Err(e)),
            };
            Ok(Ok(s.get_attributes(h, &[AttributeType::Value])?.into_iter().find_map(|a| match a {
                Attribute::Value(v) => Some(v),
                _ => None,
            })))
        })?
    }
}
