//! trustd's CA certificates as every core sees them: the root's, and each generation of the
//! issuing CA's (`trustd rollover --key issuing` adds one while the daemon serves). Shared and
//! live: the CA adds a generation here, and the TSA, signing, OCSP and TLS find the chain of
//! each certificate they hand out, and the CA that answers for it, from here.

use crate::ca_id::CaId;
use arc_swap::ArcSwap;
use const_oid::db::rfc5280::{ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_SUBJECT_KEY_IDENTIFIER};
use der::{Decode, Encode};
use std::sync::Arc;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
use x509_cert::Certificate;

/// One CA's certificate.
#[derive(Debug)]
pub struct CaCertificate {
    pub ca: CaId,
    pub cert: Certificate,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Its subjectKeyIdentifier: the authorityKeyIdentifier of what it issues (RFC 5280 §4.2.1.1).
    pub key_id: Vec<u8>,
}

impl CaCertificate {
    fn new(ca: CaId, der: Vec<u8>) -> Result<Self, String> {
        let cert = Certificate::from_der(&der).map_err(|e| format!("the {ca} CA certificate does not parse: {e}"))?;
        let key_id = extension(&cert, ID_CE_SUBJECT_KEY_IDENTIFIER)
            .and_then(|v| SubjectKeyIdentifier::from_der(v).ok())
            .map(|s| s.0.as_bytes().to_vec())
            .ok_or_else(|| format!("the {ca} CA certificate has no subjectKeyIdentifier"))?;
        Ok(CaCertificate { ca, cert, der, key_id })
    }

    /// Whether this CA issued `cert`: its issuer is this CA's subject, and its
    /// authorityKeyIdentifier (where it has one) this CA's key (two generations of a CA may share
    /// a name, never a key).
    pub fn issued(&self, cert: &Certificate) -> bool {
        let aki = extension(cert, ID_CE_AUTHORITY_KEY_IDENTIFIER)
            .and_then(|v| AuthorityKeyIdentifier::from_der(v).ok())
            .and_then(|a| a.key_identifier)
            .map(|k| k.as_bytes().to_vec());
        cert.tbs_certificate.issuer == self.cert.tbs_certificate.subject && aki.is_none_or(|k| k == self.key_id)
    }

    /// Whether `cert` is this CA's certificate, or another of this CA's name and key.
    pub fn is(&self, cert: &Certificate) -> bool {
        let (a, b) = (&self.cert.tbs_certificate, &cert.tbs_certificate);
        a.subject == b.subject && a.subject_public_key_info == b.subject_public_key_info
    }
}

fn extension(cert: &Certificate, oid: const_oid::ObjectIdentifier) -> Option<&[u8]> {
    cert.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == oid).map(|e| e.extn_value.as_bytes())
}

struct Set {
    root: Arc<CaCertificate>,
    /// Oldest first; never empty.
    issuing: Vec<Arc<CaCertificate>>,
}

/// The root and every generation of the issuing CA; cheap to clone, every clone sees a
/// generation added to any.
#[derive(Clone)]
pub struct CaCertificates(Arc<ArcSwap<Set>>);

impl CaCertificates {
    /// The root (DER) and the issuing CA's generations, each of which the root must have
    /// signed (RFC 5280 §6.1.3 (a)(1): a chain the root did not sign would be handed to every
    /// relying party).
    pub fn new(root_der: Vec<u8>, issuing: Vec<(CaId, Vec<u8>)>) -> Result<Self, String> {
        let root = Arc::new(CaCertificate::new(CaId::Root, root_der)?);
        let set = Set { root, issuing: Vec::new() };
        let all = CaCertificates(Arc::new(ArcSwap::from_pointee(set)));
        for (ca, der) in issuing {
            all.add(ca, der)?;
        }
        if all.0.load().issuing.is_empty() {
            return Err("no issuing CA certificate".into());
        }
        Ok(all)
    }

    /// Adds generation `ca` of the issuing CA (newer than every one known), certified by the
    /// root; adding one already known changes nothing.
    pub fn add(&self, ca: CaId, der: Vec<u8>) -> Result<(), String> {
        let CaId::Issuing(generation) = ca else { return Err(format!("the {ca} CA is not an issuing CA")) };
        let current = self.0.load_full();
        if let Some(known) = current.issuing.iter().find(|c| c.ca == ca) {
            return match known.der == der {
                true => Ok(()),
                false => Err(format!("the {ca} CA has another certificate already")),
            };
        }
        if current.issuing.last().is_some_and(|c| c.ca > ca) {
            return Err(format!("the {ca} CA (generation {generation}) is older than the newest known"));
        }
        let added = CaCertificate::new(ca, der)?;
        let root = &current.root;
        let tbs = added.cert.tbs_certificate.to_der().map_err(|e| e.to_string())?;
        let signed = crate::keys::verify::verify_signature(
            &root.cert.tbs_certificate.subject_public_key_info,
            &added.cert.signature_algorithm,
            None,
            added.cert.signature.raw_bytes(),
            &tbs,
        );
        if !root.issued(&added.cert) || signed.is_err() {
            return Err(format!("the {ca} CA certificate was not issued by the root certificate"));
        }
        let mut issuing = current.issuing.clone();
        issuing.push(Arc::new(added));
        self.0.store(Arc::new(Set { root: root.clone(), issuing }));
        Ok(())
    }

    /// The root's certificate.
    pub fn root(&self) -> Arc<CaCertificate> {
        self.0.load().root.clone()
    }

    /// Every generation of the issuing CA, oldest first.
    pub fn issuing(&self) -> Vec<Arc<CaCertificate>> {
        self.0.load().issuing.clone()
    }

    /// Every CA: the issuing CA's generations, oldest first, then the root.
    pub fn all(&self) -> Vec<Arc<CaCertificate>> {
        let set = self.0.load();
        set.issuing.iter().chain([&set.root]).cloned().collect()
    }

    /// The CA named `ca`.
    pub fn get(&self, ca: CaId) -> Option<Arc<CaCertificate>> {
        self.all().into_iter().find(|c| c.ca == ca)
    }

    /// The CA that issued `cert`, if it is one of these.
    pub fn issuer_of(&self, cert: &Certificate) -> Option<Arc<CaCertificate>> {
        self.all().into_iter().find(|c| c.issued(cert))
    }

    /// The chain of `ca` up to the root, DER: the issuing CA's generation and the root, or the
    /// root alone.
    pub fn chain(&self, ca: CaId) -> Option<Vec<Vec<u8>>> {
        let set = self.0.load();
        match ca {
            CaId::Root => Some(vec![set.root.der.clone()]),
            CaId::Issuing(_) => {
                let issuing = set.issuing.iter().find(|c| c.ca == ca)?;
                Some(vec![issuing.der.clone(), set.root.der.clone()])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::cert::{self, CeremonyCert, UrlContext};
    use crate::keys::software::SoftwareKey;
    use crate::keys::SigningKey;
    use crate::testing::{self, CA_VALIDITY};

    /// A CA certificate for `key` named `cn`, issued by `issuer`, as the ceremony makes one.
    async fn ca(key: u8, cn: &str, issuer: &crate::keys::CertifiedKey) -> crate::keys::CertifiedKey {
        let key: Arc<dyn SigningKey> = Arc::new(SoftwareKey::p256(key));
        let urls = UrlContext { base: "http://ca.test".into(), ca: CaId::Root };
        let issuer_id = crate::ca::subject_key_id(&issuer.cert).unwrap();
        let ext =
            cert::ceremony_extensions(&CeremonyCert::Issuing { urls: &urls }, key.public_key(), &issuer_id).unwrap();
        testing::certify(key, cn, Some(issuer), CA_VALIDITY, ext).await
    }

    #[tokio::test]
    async fn generations_chain_to_the_root_and_each_finds_what_it_issued() {
        let (root, first) = testing::ca_pair(Arc::new(SoftwareKey::p256(12))).await;
        let cas = CaCertificates::new(root.der.clone(), vec![(CaId::ISSUING, first.der.clone())]).unwrap();
        let second = ca(13, "Test Issuing CA G2", &root).await;
        cas.add(CaId::Issuing(2), second.der.clone()).unwrap();
        cas.add(CaId::Issuing(2), second.der.clone()).unwrap();
        assert_eq!(cas.issuing().iter().map(|c| c.ca).collect::<Vec<_>>(), [CaId::ISSUING, CaId::Issuing(2)]);
        assert_eq!(cas.chain(CaId::Issuing(2)).unwrap(), [second.der.clone(), root.der.clone()]);
        assert_eq!(cas.chain(CaId::Root).unwrap(), vec![root.der.clone()]);
        assert!(cas.chain(CaId::Issuing(3)).is_none());

        // A service certificate, with its authorityKeyIdentifier.
        let leaf = |issuer: &crate::keys::CertifiedKey| {
            let key: Arc<dyn SigningKey> = Arc::new(SoftwareKey::p256(30));
            let urls = UrlContext { base: "http://ca.test".into(), ca: CaId::ISSUING };
            let kind = CeremonyCert::Service {
                urls: &urls,
                key_usage: x509_cert::ext::pkix::KeyUsages::DigitalSignature.into(),
                eku: None,
                ocsp_no_check: false,
            };
            let ext =
                cert::ceremony_extensions(&kind, key.public_key(), &crate::ca::subject_key_id(&issuer.cert).unwrap());
            let issuer = issuer.clone();
            async move { testing::certify(key, "leaf", Some(&issuer), CA_VALIDITY, ext.unwrap()).await }
        };
        assert_eq!(cas.issuer_of(&leaf(&first).await.cert).unwrap().ca, CaId::ISSUING);
        assert_eq!(cas.issuer_of(&leaf(&second).await.cert).unwrap().ca, CaId::Issuing(2));
        assert_eq!(cas.issuer_of(&second.cert).unwrap().ca, CaId::Root);
        // Same name, another key: told apart by the authorityKeyIdentifier.
        let twin = ca(14, "Test Issuing CA G2", &root).await;
        assert!(cas.issuer_of(&leaf(&twin).await.cert).is_none());
        let foreign = ca(15, "Test Issuing CA G3", &first).await;
        assert!(cas.issuer_of(&leaf(&foreign).await.cert).is_none());
    }

    #[tokio::test]
    async fn only_a_newer_generation_the_root_certified_is_added() {
        let (root, first) = testing::ca_pair(Arc::new(SoftwareKey::p256(12))).await;
        let cas = CaCertificates::new(root.der.clone(), vec![(CaId::ISSUING, first.der.clone())]).unwrap();
        // Certified by the first issuing CA, not by the root.
        let under_first = ca(13, "Test Issuing CA G2", &first).await;
        let err = cas.add(CaId::Issuing(2), under_first.der).unwrap_err();
        assert!(err.contains("was not issued by the root"), "{err}");
        let third = ca(14, "Test Issuing CA G3", &root).await;
        cas.add(CaId::Issuing(3), third.der.clone()).unwrap();
        let second = ca(13, "Test Issuing CA G2", &root).await;
        let err = cas.add(CaId::Issuing(2), second.der.clone()).unwrap_err();
        assert!(err.contains("older than the newest"), "{err}");
        let err = cas.add(CaId::Issuing(3), second.der).unwrap_err();
        assert!(err.contains("has another certificate already"), "{err}");
        assert!(cas.add(CaId::Root, third.der).unwrap_err().contains("not an issuing CA"));
        assert_eq!(cas.issuing().len(), 2);
        assert!(CaCertificates::new(root.der, vec![]).is_err());
    }
}
