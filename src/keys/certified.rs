//! A key together with the certificate that binds its public key to a name.

use super::SigningKey;
use der::Decode;
use std::sync::Arc;
use x509_cert::Certificate;

/// A signing key and its certificate (as the key ceremony stored it beside the key): what the
/// CA, the TSA, the OCSP responder and each signing policy sign with.
#[derive(Clone, Debug)]
pub struct CertifiedKey {
    pub key: Arc<dyn SigningKey>,
    pub cert: Certificate,
    /// The certificate, DER, exactly as stored (ESS certificate hashes are over these bytes).
    pub der: Vec<u8>,
}

impl CertifiedKey {
    /// Pairs `key` with the certificate `der`, which must certify that key's public key.
    /// The error names what is wrong, for the operator.
    pub fn new(key: Arc<dyn SigningKey>, der: Vec<u8>) -> Result<Self, String> {
        let cert = Certificate::from_der(&der).map_err(|e| format!("not a DER certificate: {e}"))?;
        if &cert.tbs_certificate.subject_public_key_info != key.public_key() {
            return Err("the certificate does not certify this key".into());
        }
        Ok(CertifiedKey { key, cert, der })
    }
}
