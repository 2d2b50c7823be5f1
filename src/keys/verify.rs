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

/// ring's ECDSA verification for `curve` with `hash`, where ring has one.
fn ring_ecdsa(curve: ObjectIdentifier, hash: HashAlg) -> Option<&'static ring::signature::EcdsaVerificationAlgorithm> {
    use ring::signature::*;
    Some(match (curve, hash) {
        (rfc5912::SECP_256_R_1, HashAlg::Sha256) => &ECDSA_P256_SHA256_ASN1,
        (rfc5912::SECP_256_R_1, HashAlg::Sha384) => &ECDSA_P256_SHA384_ASN1,
        (rfc5912::SECP_384_R_1, HashAlg::Sha256) => &ECDSA_P384_SHA256_ASN1,
        (rfc5912::SECP_384_R_1, HashAlg::Sha384) => &ECDSA_P384_SHA384_ASN1,
        _ => return None,
    })
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
    let spki_der = || spki.to_der().map_err(|e| invalid(&e));
    match spki.algorithm.oid {
        rfc5912::ID_EC_PUBLIC_KEY => {
            let hash = match alg.oid {
                rfc5912::ECDSA_WITH_SHA_256 => HashAlg::Sha256,
                rfc5912::ECDSA_WITH_SHA_384 => HashAlg::Sha384,
                rfc5912::ECDSA_WITH_SHA_512 => HashAlg::Sha512,
                rfc5912::ID_EC_PUBLIC_KEY => cms_digest.ok_or_else(|| unsupported(&sig_alg()))?,
                _ => return Err(SigError::Invalid(format!("{} cannot be used with an EC key", oid_name(&alg.oid)))),
            };
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            // ring takes an uncompressed point as the SubjectPublicKeyInfo carries it (SEC 1
            // §2.3.3) and the signature as DER Ecdsa-Sig-Value (RFC 5480 §2.2.3); RustCrypto
            // verifies the rest (compressed points, SHA-512).
            let point = spki.subject_public_key.as_bytes().filter(|p| p.first() == Some(&0x04));
            if let (Some(point), Some(ring_alg)) = (point, curve.and_then(|c| ring_ecdsa(c, hash))) {
                return ring::signature::UnparsedPublicKey::new(ring_alg, point)
                    .verify(msg, sig)
                    .map_err(|_| invalid(&"signature verification failed"));
            }
            let prehash = hash.digest(msg);
            match curve {
                Some(rfc5912::SECP_256_R_1) => {
                    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der()?).map_err(|e| invalid(&e))?;
                    let s = p256::ecdsa::Signature::from_der(sig).map_err(|e| invalid(&e))?;
                    vk.verify_prehash(&prehash, &s).map_err(|e| invalid(&e))
                }
                Some(rfc5912::SECP_384_R_1) => {
                    let vk = p384::ecdsa::VerifyingKey::from_public_key_der(&spki_der()?).map_err(|e| invalid(&e))?;
                    let s = p384::ecdsa::Signature::from_der(sig).map_err(|e| invalid(&e))?;
                    vk.verify_prehash(&prehash, &s).map_err(|e| invalid(&e))
                }
                Some(other) => Err(SigError::Unsupported(format!("EC curve {} is not supported", oid_name(&other)))),
                None => Err(unsupported("EC key without a named curve")),
            }
        }
        rfc5912::RSA_ENCRYPTION => {
            let pk = rsa::RsaPublicKey::from_public_key_der(&spki_der()?).map_err(|e| invalid(&e))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use signature::hazmat::PrehashSigner;
    use spki::EncodePublicKey;

    fn spki_of(der: &[u8]) -> SubjectPublicKeyInfoOwned {
        der::Decode::from_der(der).unwrap()
    }

    fn alg(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned { oid, parameters: None }
    }

    /// ring (uncompressed points, SHA-256/384) and RustCrypto (compressed points, SHA-512)
    /// accept the same signatures and refuse the same tampering: what one path of
    /// `verify_signature` accepts, the other does too.
    #[test]
    fn both_ecdsa_paths_agree() {
        let p256 = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let p384 = p384::ecdsa::SigningKey::from_slice(&[9; 48]).unwrap();
        let vk256 = *p256.verifying_key();
        let vk384 = *p384.verifying_key();
        let keys = [
            ("P-256 uncompressed", spki_of(vk256.to_public_key_der().unwrap().as_bytes()), true),
            ("P-384 uncompressed", spki_of(vk384.to_public_key_der().unwrap().as_bytes()), false),
        ];
        let compressed = |spki: &SubjectPublicKeyInfoOwned, point: Vec<u8>| SubjectPublicKeyInfoOwned {
            algorithm: spki.algorithm.clone(),
            subject_public_key: der::asn1::BitString::from_bytes(&point).unwrap(),
        };
        let keys = [
            keys[0].clone(),
            ("P-256 compressed", compressed(&keys[0].1, vk256.to_encoded_point(true).as_bytes().to_vec()), true),
            keys[1].clone(),
            ("P-384 compressed", compressed(&keys[1].1, vk384.to_encoded_point(true).as_bytes().to_vec()), false),
        ];
        let hashes = [
            (HashAlg::Sha256, rfc5912::ECDSA_WITH_SHA_256),
            (HashAlg::Sha384, rfc5912::ECDSA_WITH_SHA_384),
            (HashAlg::Sha512, rfc5912::ECDSA_WITH_SHA_512),
        ];
        for msg in [&b""[..], b"a", &[0xa5; 1000]] {
            for (name, spki, is_p256) in &keys {
                for (hash, oid) in hashes {
                    let prehash = hash.digest(msg);
                    let sig = if *is_p256 {
                        let s: p256::ecdsa::Signature = p256.sign_prehash(&prehash).unwrap();
                        s.to_der().as_bytes().to_vec()
                    } else {
                        let s: p384::ecdsa::Signature = p384.sign_prehash(&prehash).unwrap();
                        s.to_der().as_bytes().to_vec()
                    };
                    let what = format!("{name} {hash:?} {} bytes", msg.len());
                    verify_signature(spki, &alg(oid), None, &sig, msg).unwrap_or_else(|e| panic!("{what}: {e:?}"));
                    let cms = verify_signature(spki, &alg(rfc5912::ID_EC_PUBLIC_KEY), Some(hash), &sig, msg);
                    assert!(cms.is_ok(), "{what}, digest from CMS");
                    let mut other = msg.to_vec();
                    other.push(0);
                    let mut flipped = sig.clone();
                    *flipped.last_mut().unwrap() ^= 1;
                    for (bad, m) in [(&sig, &other[..]), (&flipped, msg), (&sig[..sig.len() - 1].to_vec(), msg)] {
                        let e = verify_signature(spki, &alg(oid), None, bad, m).expect_err(&what);
                        assert!(matches!(e, SigError::Invalid(_)), "{what}: {e:?}");
                    }
                    let wrong_hash =
                        if hash == HashAlg::Sha256 { rfc5912::ECDSA_WITH_SHA_384 } else { rfc5912::ECDSA_WITH_SHA_256 };
                    assert!(verify_signature(spki, &alg(wrong_hash), None, &sig, msg).is_err(), "{what}: wrong hash");
                }
            }
        }
    }
}
