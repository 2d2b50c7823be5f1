//! Signature verification with a public key: the one function that CSR proof of possession
//! (RFC 2986 §4.2), certificate chains (RFC 5280 §6.1.3) and CMS signatures (RFC 5652 §5.6) all
//! use, so that what one accepts the others accept too.

use crate::digest::HashAlg;
use const_oid::db::rfc5912;
use const_oid::ObjectIdentifier;
use der::Encode;
use signature::hazmat::PrehashVerifier;
use signature::Verifier;
use spki::{AlgorithmIdentifierOwned, DecodePublicKey, SubjectPublicKeyInfoOwned};

/// An OID by its registered name where const-oid knows one, else dotted.
pub fn oid_name(oid: &ObjectIdentifier) -> String {
    const_oid::db::DB.by_oid(oid).map(str::to_owned).unwrap_or_else(|| oid.to_string())
}

/// The modulus length of an RSA public key, `None` for any other key or one that does not parse.
pub fn rsa_modulus_bits(spki: &SubjectPublicKeyInfoOwned) -> Option<usize> {
    if spki.algorithm.oid != rfc5912::RSA_ENCRYPTION {
        return None;
    }
    let der = spki.to_der().ok()?;
    let pk = rsa::RsaPublicKey::from_public_key_der(&der).ok()?;
    Some(rsa::traits::PublicKeyParts::n(&pk).bits())
}

/// Why a signature did not verify.
#[derive(Debug)]
pub enum SigError {
    /// The algorithm, curve or key size is not supported: INDETERMINATE.
    Unsupported(String),
    /// The signature is wrong or the key unusable: TOTAL_FAILED.
    Invalid(String),
}

/// Verifies `sig` over `msg` with `spki` for the signature algorithm `alg`: ECDSA P-256/P-384
/// with SHA-2 (RFC 5758 §3.2), RSA PKCS#1 v1.5 (RFC 4055 §5) and RSASSA-PSS with MGF1 over the
/// same hash (RFC 4055 §3.1). `cms_digest` is the SignerInfo's digestAlgorithm, which CMS uses
/// when the signature algorithm names only the key type (rsaEncryption, RFC 3370 §3.2;
/// id-ecPublicKey).
pub fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    alg: &AlgorithmIdentifierOwned,
    cms_digest: Option<HashAlg>,
    sig: &[u8],
    msg: &[u8],
) -> Result<(), SigError> {
    let unsupported = |what: &str| SigError::Unsupported(what.to_owned());
    let invalid = |e: &dyn std::fmt::Display| SigError::Invalid(e.to_string());
    let sig_alg = || format!("signature algorithm {} is not supported", oid_name(&alg.oid));
    let spki_der = spki.to_der().map_err(|e| invalid(&e))?;
    match spki.algorithm.oid {
        rfc5912::ID_EC_PUBLIC_KEY => {
            let hash = match alg.oid {
                rfc5912::ECDSA_WITH_SHA_256 => HashAlg::Sha256,
                rfc5912::ECDSA_WITH_SHA_384 => HashAlg::Sha384,
                rfc5912::ECDSA_WITH_SHA_512 => HashAlg::Sha512,
                rfc5912::ID_EC_PUBLIC_KEY => cms_digest.ok_or_else(|| unsupported(&sig_alg()))?,
                _ => return Err(SigError::Invalid(format!("{} cannot be used with an EC key", oid_name(&alg.oid)))),
            };
            let prehash = hash.digest(msg);
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            match curve {
                Some(rfc5912::SECP_256_R_1) => {
                    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der).map_err(|e| invalid(&e))?;
                    let s = p256::ecdsa::Signature::from_der(sig).map_err(|e| invalid(&e))?;
                    vk.verify_prehash(&prehash, &s).map_err(|e| invalid(&e))
                }
                Some(rfc5912::SECP_384_R_1) => {
                    let vk = p384::ecdsa::VerifyingKey::from_public_key_der(&spki_der).map_err(|e| invalid(&e))?;
                    let s = p384::ecdsa::Signature::from_der(sig).map_err(|e| invalid(&e))?;
                    vk.verify_prehash(&prehash, &s).map_err(|e| invalid(&e))
                }
                Some(other) => Err(SigError::Unsupported(format!("EC curve {} is not supported", oid_name(&other)))),
                None => Err(unsupported("EC key without a named curve")),
            }
        }
        rfc5912::RSA_ENCRYPTION => {
            let pk = rsa::RsaPublicKey::from_public_key_der(&spki_der).map_err(|e| invalid(&e))?;
            let pkcs1 = |hash: HashAlg| -> Result<(), SigError> {
                let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| invalid(&e))?;
                match hash {
                    HashAlg::Sha256 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(pk.clone()).verify(msg, &s),
                    HashAlg::Sha384 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(pk.clone()).verify(msg, &s),
                    HashAlg::Sha512 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(pk.clone()).verify(msg, &s),
                }
                .map_err(|e| invalid(&e))
            };
            match alg.oid {
                rfc5912::SHA_256_WITH_RSA_ENCRYPTION => pkcs1(HashAlg::Sha256),
                rfc5912::SHA_384_WITH_RSA_ENCRYPTION => pkcs1(HashAlg::Sha384),
                rfc5912::SHA_512_WITH_RSA_ENCRYPTION => pkcs1(HashAlg::Sha512),
                rfc5912::RSA_ENCRYPTION => pkcs1(cms_digest.ok_or_else(|| unsupported(&sig_alg()))?),
                rfc5912::ID_RSASSA_PSS => {
                    let params = alg
                        .parameters
                        .as_ref()
                        .and_then(|p| p.decode_as::<rsa::pkcs1::RsaPssParams>().ok())
                        .ok_or_else(|| SigError::Invalid("RSASSA-PSS without valid parameters".into()))?;
                    let hash = HashAlg::from_oid(&params.hash.oid).ok_or_else(|| {
                        SigError::Unsupported(format!("RSASSA-PSS with {}", oid_name(&params.hash.oid)))
                    })?;
                    let mgf_hash = params.mask_gen.parameters.map(|p| p.oid);
                    if params.mask_gen.oid != rfc5912::ID_MGF_1 || mgf_hash != Some(hash.oid()) {
                        return Err(unsupported(
                            "RSASSA-PSS with a mask generation other than MGF1 over the same hash",
                        ));
                    }
                    let salt = usize::from(params.salt_len);
                    let s = rsa::pss::Signature::try_from(sig).map_err(|e| invalid(&e))?;
                    match hash {
                        HashAlg::Sha256 => {
                            rsa::pss::VerifyingKey::<sha2::Sha256>::new_with_salt_len(pk, salt).verify(msg, &s)
                        }
                        HashAlg::Sha384 => {
                            rsa::pss::VerifyingKey::<sha2::Sha384>::new_with_salt_len(pk, salt).verify(msg, &s)
                        }
                        HashAlg::Sha512 => {
                            rsa::pss::VerifyingKey::<sha2::Sha512>::new_with_salt_len(pk, salt).verify(msg, &s)
                        }
                    }
                    .map_err(|e| invalid(&e))
                }
                _ => Err(SigError::Invalid(format!("{} cannot be used with an RSA key", oid_name(&alg.oid)))),
            }
        }
        other => Err(SigError::Unsupported(format!("public key algorithm {} is not supported", oid_name(&other)))),
    }
}
