//! The TLS server certificate: issued by trustd's own CA for the HSM-held TLS key, through the
//! same issuance path (CSR, profile `internal-tls-server`, store, log) as any certificate, and renewed
//! once two thirds of its validity have passed.

use super::key::TlsKey;
use super::{ServerCertificate, TlsError};
use crate::ca::csr::{self, San};
use crate::ca::{CertificateAuthority, IssueRequest, NameScope};
use crate::keys::SigningKey;
use crate::policy::AttrKind;
use der::Decode;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;

/// The profile the server certificate is issued under.
pub const PROFILE: &str = "internal-tls-server";

/// What the daemon records as the requester of its own server certificates.
pub const REQUESTER: &str = "trustd";

/// A server certificate and when to renew it (Unix seconds).
pub struct Issued {
    pub key: Arc<rustls::sign::CertifiedKey>,
    pub renew_at: u64,
}

/// Issues a server certificate for `key` naming `names`; the first DNS name is also the subject's
/// commonName (CA/B BR §7.1.2.7.2: the CN, if any, is one of the SANs).
pub async fn issue(ca: &CertificateAuthority, key: Arc<dyn SigningKey>, names: &[San]) -> Result<Issued, TlsError> {
    let fail = |e: crate::ca::CaError| match e {
        crate::ca::CaError::UnknownProfile { .. } => TlsError::Certificate(format!(
            "{e}: the daemon's own TLS certificate is issued under profiles/{PROFILE}.toml; copy it from the \
             policies trustd ships"
        )),
        e => TlsError::Certificate(e.to_string()),
    };
    let tls_key = TlsKey::new(key.clone())
        .ok_or_else(|| TlsError::Certificate(format!("a {:?} key cannot sign TLS 1.3 handshakes", key.scheme())))?;
    let cn = names.iter().find_map(|n| match n {
        San::Dns(d) => Some(d.clone()),
        _ => None,
    });
    let subject: Vec<_> = cn.map(|cn| (AttrKind::CommonName, cn)).into_iter().collect();
    let request = csr::build(key.as_ref(), &subject, names).await.map_err(fail)?;
    let issued = ca
        .issue(IssueRequest {
            profile: PROFILE.into(),
            csr: request,
            validity: None,
            requester: REQUESTER.into(),
            scope: NameScope::Any,
        })
        .await
        .map_err(fail)?;
    let cert = x509_cert::Certificate::from_der(&issued.cert_der).map_err(|e| TlsError::Certificate(e.to_string()))?;
    tracing::info!(serial = %issued.serial, "TLS server certificate issued");
    Ok(served(ca, tls_key, &cert, issued.cert_der))
}

/// `cert` (DER `der`) of `key` as served, and when to renew it.
fn served(ca: &CertificateAuthority, key: TlsKey, cert: &x509_cert::Certificate, der: Vec<u8>) -> Issued {
    // The leaf and its issuing CA; the root is the client's trust anchor (RFC 8446 §4.4.2).
    let issuer = ca.certificates().issuer_of(cert).map(|c| c.der.clone());
    let chain = std::iter::once(der).chain(issuer).map(CertificateDer::from).collect();
    Issued {
        key: Arc::new(rustls::sign::CertifiedKey::new(chain, Arc::new(key))),
        renew_at: crate::ca::cert::renewal_time(cert),
    }
}

/// How many of the newest server certificates [`stored`] looks through.
const STORED_LOOKED_AT: u32 = 100;

/// The server certificate a replica on the primary issued for `key` naming at least `names`,
/// the one of latest notAfter still valid and not revoked: what a replica on a read-only
/// standby, which cannot issue, serves. `None` when the store has none.
pub async fn stored(
    ca: &CertificateAuthority,
    key: Arc<dyn SigningKey>,
    names: &[San],
) -> Result<Option<Issued>, TlsError> {
    let failed = |e: &dyn std::fmt::Display| TlsError::Certificate(e.to_string());
    let query = crate::store::ListQuery {
        profile: Some(PROFILE.into()),
        status: Some(crate::store::CertStatus::Issued),
        limit: STORED_LOOKED_AT,
        ..Default::default()
    };
    let page = ca.list(&query).await.map_err(|e| failed(&e))?;
    let now = crate::unix_time::now() as i64;
    let names: Vec<String> = names.iter().map(ToString::to_string).collect();
    let best = page
        .records
        .into_iter()
        .filter(|r| r.not_before <= now && now < r.not_after && names.iter().all(|n| r.sans.contains(n)))
        .filter_map(|r| {
            let der = r.cert_der?;
            let cert = x509_cert::Certificate::from_der(&der).ok()?;
            (cert.tbs_certificate.subject_public_key_info == *key.public_key()).then_some((r.not_after, cert, der))
        })
        .max_by_key(|(not_after, ..)| *not_after);
    let Some((_, cert, der)) = best else { return Ok(None) };
    let tls_key = TlsKey::new(key.clone())
        .ok_or_else(|| TlsError::Certificate(format!("a {:?} key cannot sign TLS 1.3 handshakes", key.scheme())))?;
    tracing::info!(serial = %cert.tbs_certificate.serial_number, "TLS server certificate found in the store");
    Ok(Some(served(ca, tls_key, &cert, der)))
}

/// Renews the server certificate in `current` for ever: at `renew_at`, and again a minute after
/// a failure (the old certificate serves meanwhile). With `from_store` (a replica on a read-only
/// standby) it does not issue but serves the newer certificate a replica on the primary
/// issued, looking every minute from `renew_at` on.
pub async fn keep_renewed(
    ca: Arc<CertificateAuthority>,
    key: Arc<dyn SigningKey>,
    names: Vec<San>,
    current: Arc<ServerCertificate>,
    mut renew_at: u64,
    from_store: bool,
) {
    loop {
        let wait = renew_at.saturating_sub(crate::unix_time::now());
        tokio::time::sleep(Duration::from_secs(wait.clamp(1, 3600))).await;
        if crate::unix_time::now() < renew_at {
            continue;
        }
        let next = match from_store {
            false => issue(&ca, key.clone(), &names).await,
            true => match stored(&ca, key.clone(), &names).await {
                Ok(Some(found)) if found.renew_at > renew_at => Ok(found),
                Ok(_) => Err(TlsError::Certificate("no newer server certificate is in the standby's store".into())),
                Err(e) => Err(e),
            },
        };
        match next {
            Ok(next) => {
                current.set(next.key);
                renew_at = next.renew_at;
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS server certificate renewal failed; retrying in a minute");
                renew_at = crate::unix_time::now() + 60;
            }
        }
    }
}
