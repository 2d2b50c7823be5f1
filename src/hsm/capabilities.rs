//! What the token can do, read once when it is opened (PKCS#11 v2.40 §5.5 C_GetMechanismList,
//! C_GetMechanismInfo, C_GetTokenInfo's ulMaxSessionCount): every key's mechanism is checked
//! before the key is used or generated, so a module that lacks one (an HSM without EdDSA, an
//! RSA size it refuses) is refused when the daemon starts, naming the mechanism and the key,
//! rather than at its first signature; and the session pool never asks for more sessions than
//! the token allows (a YubiHSM 2 has 16).

use super::HsmError;
use cryptoki::context::Pkcs11;
use cryptoki::mechanism::MechanismType;
use cryptoki::slot::{Limit, Slot};

/// What the token says of one mechanism (its CK_MECHANISM_INFO).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// CKF_SIGN.
    pub sign: bool,
    /// CKF_GENERATE_KEY_PAIR.
    pub generate_key_pair: bool,
    /// ulMinKeySize and ulMaxKeySize: bits for RSA, and as the module reports them for
    /// elliptic curves (some give bits, some bytes, some 0), so trustd checks them for RSA only.
    pub min_key_size: usize,
    pub max_key_size: usize,
}

/// The token's mechanisms and what each can do.
#[derive(Clone, Debug, Default)]
pub struct Capabilities(Vec<(MechanismType, Capability)>);

impl Capabilities {
    /// Reads the token's mechanisms in `slot`.
    pub fn read(ctx: &Pkcs11, slot: Slot) -> Result<Self, HsmError> {
        // cryptoki logs an error for each mechanism it has no name for (vendor-defined ones, and
        // standard ones newer than it, of which SoftHSM lists many), and leaves them out; trustd
        // uses only mechanisms it names, so those lines would only alarm an operator at every start.
        let listed = tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            ctx.get_mechanism_list(slot)
        });
        let mut all = Vec::new();
        for m in listed.map_err(HsmError::Pkcs11)? {
            let info = ctx.get_mechanism_info(slot, m).map_err(HsmError::Pkcs11)?;
            let c = Capability {
                sign: info.sign(),
                generate_key_pair: info.generate_key_pair(),
                min_key_size: info.min_key_size(),
                max_key_size: info.max_key_size(),
            };
            all.push((m, c));
        }
        Ok(Capabilities(all))
    }

    #[cfg(test)]
    pub fn of(all: Vec<(MechanismType, Capability)>) -> Self {
        Capabilities(all)
    }

    fn get(&self, m: MechanismType) -> Option<Capability> {
        self.0.iter().find(|(t, _)| *t == m).map(|(_, c)| *c)
    }

    /// Whether the token signs with `m`, for `key` (named in the error); `rsa_bits` checks an
    /// RSA key's size against the mechanism's range.
    pub fn check_sign(&self, m: MechanismType, key: &str, rsa_bits: Option<usize>) -> Result<(), HsmError> {
        let c = self
            .get(m)
            .filter(|c| c.sign)
            .ok_or_else(|| HsmError::Unsupported { what: format!("sign with {m}"), key: key.to_owned() })?;
        check_size(c, m, key, rsa_bits)
    }

    /// Whether the token generates key pairs with `m`, for `key` (named in the error).
    pub fn check_generate(&self, m: MechanismType, key: &str, rsa_bits: Option<usize>) -> Result<(), HsmError> {
        let c = self.get(m).filter(|c| c.generate_key_pair).ok_or_else(|| HsmError::Unsupported {
            what: format!("generate key pairs with {m}"),
            key: key.to_owned(),
        })?;
        check_size(c, m, key, rsa_bits)
    }

    /// How many mechanisms the token offers (for the log line at open).
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

fn check_size(c: Capability, m: MechanismType, key: &str, rsa_bits: Option<usize>) -> Result<(), HsmError> {
    match rsa_bits {
        // A maximum of 0 is a module that does not say.
        Some(bits) if bits < c.min_key_size || (c.max_key_size > 0 && bits > c.max_key_size) => {
            Err(HsmError::Unsupported {
                what: format!("use {bits}-bit RSA keys with {m} ({} to {} bits)", c.min_key_size, c.max_key_size),
                key: key.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// The sessions the pool may open: `wanted` (`[hsm] max_sessions`), or fewer when the token
/// allows fewer (ulMaxSessionCount); `None` when it is not limited below `wanted`.
pub fn session_limit(token: Limit, wanted: usize) -> Option<usize> {
    match token {
        Limit::Max(n) if usize::try_from(n).is_ok_and(|n| n < wanted) => Some(usize::try_from(n).unwrap_or(1).max(1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(sign: bool, generate_key_pair: bool, min: usize, max: usize) -> Capability {
        Capability { sign, generate_key_pair, min_key_size: min, max_key_size: max }
    }

    #[test]
    fn a_missing_mechanism_or_flag_is_named_with_its_key() {
        let caps = Capabilities::of(vec![
            (MechanismType::ECDSA, cap(true, false, 256, 384)),
            (MechanismType::ECC_KEY_PAIR_GEN, cap(false, true, 256, 384)),
            (MechanismType::SHA256_RSA_PKCS, cap(true, false, 2048, 4096)),
            (MechanismType::EDDSA, cap(false, false, 0, 0)),
        ]);
        caps.check_sign(MechanismType::ECDSA, "k", None).unwrap();
        caps.check_generate(MechanismType::ECC_KEY_PAIR_GEN, "k", None).unwrap();
        let e = caps.check_sign(MechanismType::EDDSA, "pkcs11:object=trustd-log", None).unwrap_err().to_string();
        assert!(e.contains("CKM_EDDSA") && e.contains("trustd-log") && e.contains("cannot sign"), "{e}");
        let e = caps.check_generate(MechanismType::ECDSA, "k", None).unwrap_err().to_string();
        assert!(e.contains("generate key pairs with CKM_ECDSA"), "{e}");
        let e = caps.check_sign(MechanismType::SHA384_RSA_PKCS, "k", None).unwrap_err().to_string();
        assert!(e.contains("CKM_SHA384_RSA_PKCS"), "{e}");
        caps.check_sign(MechanismType::SHA256_RSA_PKCS, "k", Some(3072)).unwrap();
        for bits in [1024, 8192] {
            let e = caps.check_sign(MechanismType::SHA256_RSA_PKCS, "k", Some(bits)).unwrap_err().to_string();
            assert!(e.contains(&format!("{bits}-bit RSA")) && e.contains("2048 to 4096"), "{e}");
        }
        // A module that gives no maximum (0) limits nothing above its minimum.
        let open = Capabilities::of(vec![(MechanismType::SHA256_RSA_PKCS, cap(true, false, 1024, 0))]);
        open.check_sign(MechanismType::SHA256_RSA_PKCS, "k", Some(16384)).unwrap();
    }

    #[test]
    fn the_pool_never_asks_for_more_sessions_than_the_token_allows() {
        assert_eq!(session_limit(Limit::Max(16), 32), Some(16));
        assert_eq!(session_limit(Limit::Max(16), 16), None);
        assert_eq!(session_limit(Limit::Max(0), 4), Some(1));
        assert_eq!(session_limit(Limit::Infinite, 1024), None);
        assert_eq!(session_limit(Limit::Unavailable, 1024), None);
        assert_eq!(session_limit(Limit::Max(u64::MAX), 8), None);
    }
}
