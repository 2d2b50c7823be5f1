//! OCSP responder (RFC 6960, with the RFC 5019 lightweight profile): a delegated responder whose
//! key is in the HSM (its certificate carries id-kp-OCSPSigning and id-pkix-ocsp-nocheck).
//! Knows neither HTTP nor SQL: it takes a DER request and returns a DER OCSPResponse.

use crate::ca_id::CaId;
use crate::clock::Clock;
use crate::digest::HashAlg;
use crate::incident::Incident;
use crate::keys::{CertifiedKey, SigningKey};
use crate::revocation::{self, Reason};
use crate::serial::Serial;
use crate::store::{Revocation, Store};
use const_oid::db::rfc5912::ID_SHA_1;
use const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE;
use der::asn1::{GeneralizedTime, OctetString};
use der::{Decode, Encode};
use sha1::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse, ResponderId, ResponseData,
    RevokedInfo, SingleResponse, Version,
};

/// Most CertIDs answered in one request; RFC 5019 clients send one.
const MAX_REQUESTS: usize = 16;

/// Pre-signed good responses kept at most (a few hundred bytes each): one per certificate
/// asked about, so without a bound a client asking for every serial would grow the daemon
/// without end. Past it, stale ones are dropped, and if none is stale nothing new is kept.
const MAX_CACHED: usize = 65_536;

/// The issuer's CertID hashes (RFC 6960 §4.1.1) under one hash algorithm.
struct IssuerHashes {
    name: Vec<u8>,
    key: Vec<u8>,
}

/// The longest nonce a request may carry (RFC 8954 §2.1: `Nonce ::= OCTET STRING(SIZE(1..32))`).
const MAX_NONCE: usize = 32;

/// A signed response for a good certificate, reused until shortly before its nextUpdate.
struct Cached {
    der: Arc<Vec<u8>>,
    refresh_after: u64,
    next_update: u64,
}

/// An OCSPResponse (DER), and until when HTTP caches may keep it: the nextUpdate of a
/// successful response (RFC 5019 §6.2), `None` for an error status (malformedRequest,
/// unauthorized, tryLater, internalError), which no cache may keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub der: Vec<u8>,
    pub fresh_until: Option<u64>,
}

impl Answer {
    fn error(r: OcspResponse) -> Self {
        Answer { der: status_only(r), fresh_until: None }
    }
}

/// The responder for the issuing CA, every generation of it (RFC 6960 §4.2.2.2): each answers
/// with the delegated responder key where the responder's certificate is that generation's, and
/// with the generation's own key otherwise (a generation older than the responder's
/// certificate, or one newer whose responder has not rolled over yet).
pub struct OcspResponder {
    /// Replaced whole when a key rolls over: a response is made with one responder throughout.
    issuers: arc_swap::ArcSwap<Vec<Issuer>>,
    /// What `issuers` is made from: the delegated responder, and each generation with its key.
    keys: Mutex<(CertifiedKey, Vec<(CaId, CertifiedKey)>)>,
    store: Arc<dyn Store>,
    validity: Duration,
    clock: Arc<dyn Clock>,
}

/// One generation of the issuing CA as OCSP knows it: its CertID hashes and who signs for it.
struct Issuer {
    ca: CaId,
    /// By hash-algorithm OID: SHA-1 (RFC 5019 §2.1.1 requires it) and SHA-256/384/512.
    hashes: Vec<(const_oid::ObjectIdentifier, IssuerHashes)>,
    responder: Arc<Responder>,
}

impl Issuer {
    fn named_by(&self, id: &CertId) -> bool {
        self.hashes.iter().any(|(oid, h)| {
            *oid == id.hash_algorithm.oid
                && id.issuer_name_hash.as_bytes() == h.name.as_slice()
                && id.issuer_key_hash.as_bytes() == h.key.as_slice()
        })
    }
}

/// The delegated responder: its key, its certificate (RFC 6960 §4.2.2.2), the SHA-1 hash of
/// its public key (the byKey ResponderID, RFC 5019 §2.2.3), and the good responses it
/// pre-signed, which go with it when the key rolls over.
struct Responder {
    key: Arc<dyn SigningKey>,
    cert: Certificate,
    key_hash: Vec<u8>,
    /// By the CertID's DER: the response must carry the CertID exactly as asked (hash
    /// algorithm parameters NULL or absent included), so two spellings are two entries.
    cache: Mutex<HashMap<Vec<u8>, Cached>>,
}

impl Responder {
    fn new(key: CertifiedKey) -> Self {
        let CertifiedKey { key, cert, .. } = key;
        let key_hash =
            sha1::Sha1::digest(cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes()).to_vec();
        Responder { key, cert, key_hash, cache: Mutex::new(HashMap::new()) }
    }
}

fn gtime(secs: u64) -> Option<OcspGeneralizedTime> {
    GeneralizedTime::from_unix_duration(Duration::from_secs(secs)).ok().map(OcspGeneralizedTime)
}

fn hash_with(oid: &const_oid::ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    if *oid == ID_SHA_1 {
        return Some(sha1::Sha1::digest(data).to_vec());
    }
    HashAlg::from_oid(oid).map(|h| h.digest(data))
}

/// An OCSPResponse with only a status (RFC 6960 §4.2.1: no responseBytes).
fn status_only(r: OcspResponse) -> Vec<u8> {
    r.to_der().unwrap_or_else(|_| vec![0x30, 0x03, 0x0a, 0x01, 0x02])
}

/// Answer to a request that could not be parsed (malformedRequest, RFC 6960 §2.3).
pub fn malformed() -> Answer {
    Answer::error(OcspResponse::malformed_request())
}

impl OcspResponder {
    /// The responder for the issuing CA's generations `cas` (each with its key and certificate),
    /// with the delegated responder `delegated`, whose certificate one of them issued.
    /// Per-request problems are OCSP statuses, not errors; only this can fail, with a reason
    /// for the operator.
    pub fn new(
        delegated: CertifiedKey,
        cas: Vec<(CaId, CertifiedKey)>,
        store: Arc<dyn Store>,
        validity: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let issuers = issuers(&delegated, &cas, &[])?;
        if !issuers.iter().any(|i| i.responder.cert == delegated.cert) {
            return Err("the OCSP responder's certificate was not issued by the issuing CA".into());
        }
        Ok(OcspResponder {
            issuers: arc_swap::ArcSwap::from_pointee(issuers),
            keys: Mutex::new((delegated, cas)),
            store,
            validity,
            clock,
        })
    }

    /// Signs responses from now on with `delegated` (a rolled-over responder key and its
    /// certificate) for the generation of the CA that issued it, pre-signed ones included:
    /// those made with the previous key go with it.
    pub fn rotate(&self, delegated: CertifiedKey) -> Result<(), String> {
        self.rebuild(|keys| keys.0 = delegated)
    }

    /// Answers for generation `ca` of the issuing CA (with `key`, its key and certificate) too.
    pub fn add_ca(&self, ca: CaId, key: CertifiedKey) -> Result<(), String> {
        self.rebuild(|keys| {
            if !keys.1.iter().any(|(known, _)| *known == ca) {
                keys.1.push((ca, key));
            }
        })
    }

    fn rebuild(&self, change: impl FnOnce(&mut (CertifiedKey, Vec<(CaId, CertifiedKey)>))) -> Result<(), String> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = keys.clone();
        change(&mut changed);
        let rebuilt = issuers(&changed.0, &changed.1, &self.issuers.load())?;
        self.issuers.store(Arc::new(rebuilt));
        *keys = changed;
        Ok(())
    }

    /// Answers a DER OCSPRequest (RFC 6960 §4.1) with a DER OCSPResponse (§4.2): good, revoked
    /// (time and reason) or unknown per CertID; `unauthorized` for another CA's certificates;
    /// `malformedRequest` for what does not parse, and for a nonce that is not 1 to 32 octets
    /// (RFC 8954 §2.1). The nonce is echoed when present.
    pub async fn respond(&self, request_der: &[u8]) -> Answer {
        let Ok(req) = OcspRequest::from_der(request_der) else {
            return malformed();
        };
        let list = &req.tbs_request.request_list;
        if list.is_empty() || list.len() > MAX_REQUESTS {
            return malformed();
        }
        let nonce =
            req.tbs_request.request_extensions.iter().flatten().find(|e| e.extn_id == ID_PKIX_OCSP_NONCE).cloned();
        if let Some(n) = &nonce {
            let len = OctetString::from_der(n.extn_value.as_bytes()).map(|o| o.as_bytes().len());
            if !matches!(len, Ok(1..=MAX_NONCE)) {
                return malformed();
            }
        }
        let now = self.clock.unix_secs();
        let issuers = self.issuers.load_full();
        // RFC 5019 §2.2.3: a responder that cannot answer for an issuer says unauthorized; one
        // response has one signer, so every CertID must name the same generation.
        let Some(issuer) = issuers.iter().find(|i| i.named_by(&list[0].req_cert)) else {
            return Answer::error(OcspResponse::unauthorized());
        };
        let mut statuses = Vec::with_capacity(list.len());
        for r in list {
            let id = &r.req_cert;
            if !issuer.named_by(id) {
                return Answer::error(OcspResponse::unauthorized());
            }
            let serial = Serial::from_bytes(id.serial_number.as_bytes());
            let status = match &serial {
                Some(s) => match revocation::status_of(self.store.as_ref(), issuer.ca, s).await {
                    Ok(revocation::Status::Good) => Some(None),
                    Ok(revocation::Status::Revoked(r)) => Some(Some(r)),
                    Ok(revocation::Status::Unknown) => None,
                    Err(e) => {
                        Incident::record("OCSP: store lookup failed", &e);
                        return Answer::error(OcspResponse::try_later());
                    }
                },
                None => None,
            };
            statuses.push((id.clone(), serial, status));
        }

        // RFC 5019 §2.2.1: one CertID, no nonce, good: a pre-signed response can be reused.
        let cacheable = nonce.is_none() && statuses.len() == 1 && matches!(statuses[0].2, Some(None));
        let key = if cacheable { statuses[0].0.to_der().ok() } else { None };
        let responder = &issuer.responder;
        if let Some(k) = &key {
            if let Some(c) = responder.cache.lock().unwrap_or_else(|p| p.into_inner()).get(k) {
                if now < c.refresh_after {
                    return Answer { der: c.der.to_vec(), fresh_until: Some(c.next_update) };
                }
            }
        }

        let responses = statuses
            .into_iter()
            .map(|(cert_id, _, status)| self.single(cert_id, status, now))
            .collect::<Option<Vec<_>>>();
        let (Some(responses), Some(produced_at)) = (responses, gtime(now)) else {
            return Answer::error(OcspResponse::internal_error());
        };
        let data = ResponseData {
            version: Version::V1,
            // RFC 5019 §2.2.3: byKey, the SHA-1 hash of the responder's public key.
            responder_id: ResponderId::ByKey(match OctetString::new(responder.key_hash.clone()) {
                Ok(k) => k,
                Err(_) => return Answer::error(OcspResponse::internal_error()),
            }),
            produced_at,
            responses,
            response_extensions: nonce.map(|n| vec![n]),
        };
        let der = match responder.sign(data).await {
            Ok(d) => d,
            Err(e) => {
                Incident::record("OCSP: signing failed", &e);
                return Answer::error(OcspResponse::try_later());
            }
        };
        let next_update = now + self.validity.as_secs();
        if let Some(k) = key {
            // Re-sign once half the validity has passed, long before nextUpdate.
            let refresh_after = now + self.validity.as_secs() / 2;
            let mut cache = responder.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= MAX_CACHED {
                cache.retain(|_, c| now < c.refresh_after);
            }
            if cache.len() < MAX_CACHED {
                cache.insert(k, Cached { der: Arc::new(der.clone()), refresh_after, next_update });
            }
        }
        Answer { der, fresh_until: Some(next_update) }
    }

    fn single(&self, cert_id: CertId, status: Option<Option<Revocation>>, now: u64) -> Option<SingleResponse> {
        let cert_status = match status {
            None => CertStatus::unknown(),
            Some(None) => CertStatus::good(),
            Some(Some(r)) => CertStatus::revoked(RevokedInfo {
                revocation_time: gtime(r.revoked_at.max(0) as u64)?,
                // unspecified is left out, as RFC 5280 §5.3.1 asks of CRLs.
                revocation_reason: Some(r.reason)
                    .filter(|reason| *reason != Reason::Unspecified)
                    .map(Reason::crl_reason),
            }),
        };
        Some(SingleResponse {
            cert_id,
            cert_status,
            this_update: gtime(now)?,
            next_update: Some(gtime(now + self.validity.as_secs())?),
            single_extensions: None,
        })
    }
}

/// Each generation in `cas` with its CertID hashes and its signer: the delegated responder where
/// its certificate is the generation's (RFC 6960 §4.2.2.2, a CA Designated Responder), the
/// generation's own key otherwise (the CA who issued the certificate in question). Responders
/// of `before` are kept where they sign the same, with what they pre-signed.
fn issuers(delegated: &CertifiedKey, cas: &[(CaId, CertifiedKey)], before: &[Issuer]) -> Result<Vec<Issuer>, String> {
    let mut out = Vec::with_capacity(cas.len());
    for (ca, ca_key) in cas {
        let bad = |e: &dyn std::fmt::Display| format!("OCSP: the {ca} CA certificate: {e}");
        let issuer = &ca_key.cert;
        let name = issuer.tbs_certificate.subject.to_der().map_err(|e| bad(&e))?;
        let issuer_key = issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
        let hashes = [ID_SHA_1, HashAlg::Sha256.oid(), HashAlg::Sha384.oid(), HashAlg::Sha512.oid()]
            .into_iter()
            .filter_map(|oid| {
                Some((oid, IssuerHashes { name: hash_with(&oid, &name)?, key: hash_with(&oid, issuer_key)? }))
            })
            .collect();
        let signer = if issued_by(&delegated.cert, issuer) { delegated } else { ca_key };
        let responder = match before.iter().find(|i| i.responder.cert == signer.cert) {
            Some(kept) => kept.responder.clone(),
            None => Arc::new(Responder::new(signer.clone())),
        };
        out.push(Issuer { ca: *ca, hashes, responder });
    }
    Ok(out)
}

/// Whether `issuer`'s key signed `cert` under `issuer`'s name.
fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    let Ok(tbs) = cert.tbs_certificate.to_der() else { return false };
    cert.tbs_certificate.issuer == issuer.tbs_certificate.subject
        && crate::keys::verify::verify_signature(
            &issuer.tbs_certificate.subject_public_key_info,
            &cert.signature_algorithm,
            None,
            cert.signature.raw_bytes(),
            &tbs,
        )
        .is_ok()
}

impl Responder {
    async fn sign(&self, data: ResponseData) -> Result<Vec<u8>, String> {
        let tbs = data.to_der().map_err(|e| e.to_string())?;
        let signature = self.key.sign(&tbs).await.map_err(|e| e.to_string())?;
        let basic = BasicOcspResponse {
            tbs_response_data: data,
            signature_algorithm: self.key.scheme().algorithm_identifier().map_err(|e| e.to_string())?,
            signature: signature.to_bit_string().map_err(|e| e.to_string())?,
            certs: Some(vec![self.cert.clone()]),
        };
        OcspResponse::successful(basic).and_then(|r| r.to_der()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
