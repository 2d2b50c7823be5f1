//! A rustls signing key over [`keys::SigningKey`](crate::keys::SigningKey): the TLS server key
//! stays in the HSM like every other key; rustls asks for one handshake signature per
//! connection (RFC 8446 §4.4.3 CertificateVerify).

use crate::keys::{SignatureScheme, SigningKey};
use rustls::sign::{Signer, SigningKey as TlsSigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme as TlsScheme};
use std::sync::Arc;

/// The key, for rustls.
#[derive(Debug)]
pub struct TlsKey {
    key: Arc<dyn SigningKey>,
    scheme: TlsScheme,
    algorithm: SignatureAlgorithm,
}

impl TlsKey {
    /// `None` for a key TLS cannot use: RSA PKCS#1 v1.5 is not a TLS 1.3 handshake signature
    /// (RFC 8446 §4.2.3), so an RSA server key must sign with PSS.
    pub fn new(key: Arc<dyn SigningKey>) -> Option<TlsKey> {
        let (scheme, algorithm) = match key.scheme() {
            SignatureScheme::EcdsaSha256 => (TlsScheme::ECDSA_NISTP256_SHA256, SignatureAlgorithm::ECDSA),
            SignatureScheme::EcdsaSha384 => (TlsScheme::ECDSA_NISTP384_SHA384, SignatureAlgorithm::ECDSA),
            SignatureScheme::RsaPssSha256 => (TlsScheme::RSA_PSS_SHA256, SignatureAlgorithm::RSA),
            SignatureScheme::RsaPssSha384 => (TlsScheme::RSA_PSS_SHA384, SignatureAlgorithm::RSA),
            SignatureScheme::RsaPssSha512 => (TlsScheme::RSA_PSS_SHA512, SignatureAlgorithm::RSA),
            SignatureScheme::Ed25519 => (TlsScheme::ED25519, SignatureAlgorithm::ED25519),
            SignatureScheme::RsaPkcs1Sha256 | SignatureScheme::RsaPkcs1Sha384 | SignatureScheme::RsaPkcs1Sha512 => {
                return None
            }
        };
        Some(TlsKey { key, scheme, algorithm })
    }
}

impl TlsSigningKey for TlsKey {
    fn choose_scheme(&self, offered: &[TlsScheme]) -> Option<Box<dyn Signer>> {
        offered.contains(&self.scheme).then(|| Box::new(HandshakeSigner(self.key.clone(), self.scheme)) as _)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }
}

#[derive(Debug)]
struct HandshakeSigner(Arc<dyn SigningKey>, TlsScheme);

impl Signer for HandshakeSigner {
    /// rustls signs synchronously inside the handshake, which runs on a task of the
    /// multi-threaded runtime: `block_in_place` hands that worker's other tasks to another
    /// thread while the HSM signs, and the signature comes back in the encoding TLS wants (DER
    /// for ECDSA, raw for RSA-PSS and Ed25519), the same as X.509's.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .ok_or_else(|| rustls::Error::General("TLS handshakes need the multi-threaded runtime".into()))?;
        tokio::task::block_in_place(|| handle.block_on(self.0.sign(message))).map(Vec::from).map_err(|e| {
            tracing::error!(error = %e, "TLS handshake: the server key could not sign");
            rustls::Error::General("the server key could not sign".into())
        })
    }

    fn scheme(&self) -> TlsScheme {
        self.1
    }
}
