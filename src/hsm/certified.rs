//! Keys with the certificates the key ceremony stored beside them in the token.

use super::{Hsm, HsmError, HsmSigner, KeyRef};
use crate::keys::{CertifiedKey, SignatureScheme};
use der::Decode;
use std::sync::Arc;
use x509_cert::Certificate;

impl Hsm {
    /// The certificate stored beside the key `key` names (parsed and DER), checked against that
    /// key; `None` when there is none. Blocking.
    pub fn stored_certificate(&self, key: &KeyRef) -> Result<Option<(Certificate, Vec<u8>)>, HsmError> {
        let Some(der) = self.find_certificate(key)? else {
            return Ok(None);
        };
        let bad = |reason: String| HsmError::BadCertificate { key: key.to_string(), reason };
        let cert = Certificate::from_der(&der).map_err(|e| bad(e.to_string()))?;
        if cert.tbs_certificate.subject_public_key_info != self.public_key(key)? {
            return Err(bad("it does not match the key".into()));
        }
        Ok(Some((cert, der)))
    }

    /// The key `key` names, signing with `scheme` (or its default), and the certificate stored
    /// beside it: what a core signs with. Blocking.
    pub fn certified_key(&self, key: &KeyRef, scheme: Option<SignatureScheme>) -> Result<CertifiedKey, HsmError> {
        let der = self.find_certificate(key)?.ok_or_else(|| HsmError::NoCertificate(key.to_string()))?;
        let signer = HsmSigner::new(self, key.clone(), scheme)?;
        // `CertifiedKey::new` parses the certificate and checks it against the key's public key.
        CertifiedKey::new(Arc::new(signer), der)
            .map_err(|reason| HsmError::BadCertificate { key: key.to_string(), reason })
    }
}
