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

    /// The newest generation of the issuing CA: the one that issues.
    pub fn newest(&self) -> Arc<CaCertificate> {
        let set = self.0.load();
        set.issuing.last().unwrap_or(&set.root).clone()
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

    /// The chain above `cert` up to the root (DER, its issuer first), when one of these CAs
    /// issued it.
    pub fn chain_above(&self, cert: &Certificate) -> Option<Vec<Vec<u8>>> {
        self.chain(self.issuer_of(cert)?.ca)
    }
}
