//! The key ceremony: CA and service keys generated inside the HSM, and their certificates,
//! stored in the token beside the keys. Idempotent: existing keys and certificates are kept,
//! only what is missing is created, and nothing is ever overwritten.

use super::cert::{self, CeremonyCert, CertSpec, Issuer, UrlContext};
use super::CaError;
use crate::hsm::{Hsm, HsmSigner, KeyAlgorithm, KeyRef};
use crate::policy::AttrKind;
use crate::serial::Serial;
use const_oid::db::rfc5280;
use der::{Decode, Encode};
use std::time::{Duration, SystemTime};
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::Certificate;

/// Token labels of the keys (and certificates) the ceremony creates.
pub const ROOT_LABEL: &str = "trustd-root-ca";
pub const ISSUING_LABEL: &str = "trustd-issuing-ca";
pub const TSA_LABEL: &str = "trustd-tsa";
pub const DOCUMENT_SIGNER_LABEL: &str = "trustd-document-signer";
pub const OCSP_LABEL: &str = "trustd-ocsp-signer";

/// The issuing CA's name in URLs (`/crl/issuing.crl`) and in the API.
pub const ISSUING_CA_NAME: &str = "issuing";

/// What the ceremony creates.
#[derive(Clone, Debug)]
pub struct CeremonyConfig {
    pub organization: String,
    pub country: Option<String>,
    pub root_algorithm: KeyAlgorithm,
    pub issuing_algorithm: KeyAlgorithm,
    pub service_algorithm: KeyAlgorithm,
    pub root_validity: Duration,
    pub issuing_validity: Duration,
    pub service_validity: Duration,
    /// Base URL for the CRL and caIssuers URLs in CA and service certificates.
    pub public_url: String,
}

/// One line of the ceremony's report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub label: &'static str,
    pub key_generated: bool,
    pub certificate_created: bool,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: key {}, certificate {}",
            self.label,
            if self.key_generated {
                "generated"
            } else {
                "kept"
            },
            if self.certificate_created {
                "created"
            } else {
                "kept"
            }
        )
    }
}

fn subject(cfg: &CeremonyConfig, cn: &str) -> Vec<(AttrKind, String)> {
    let mut v = Vec::new();
    if let Some(c) = &cfg.country {
        v.push((AttrKind::Country, c.clone()));
    }
    v.push((AttrKind::Organization, cfg.organization.clone()));
    v.push((AttrKind::CommonName, cn.to_owned()));
    v
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ensure_key(hsm: &Hsm, label: &str, alg: KeyAlgorithm) -> Result<bool, CaError> {
    if hsm.has_private_key(&KeyRef::label(label))? {
        return Ok(false);
    }
    hsm.generate_key(label, alg)?;
    Ok(true)
}

/// A certificate found in the token, checked against the key stored under the same label.
fn stored_certificate(hsm: &Hsm, label: &str) -> Result<Option<Certificate>, CaError> {
    let Some(der) = hsm.find_certificate(label)? else {
        return Ok(None);
    };
    let c = Certificate::from_der(&der)
        .map_err(|e| CaError::Ceremony(format!("certificate '{label}' in the token: {e}")))?;
    if c.tbs_certificate.subject_public_key_info != hsm.public_key(&KeyRef::label(label))? {
        return Err(CaError::Ceremony(format!(
            "certificate '{label}' in the token does not match its key"
        )));
    }
    Ok(Some(c))
}

/// A service key certified by the issuing CA: TSA (RFC 3161 §2.3), document signer, OCSP
/// responder (RFC 6960 §4.2.2.2).
struct Service {
    label: &'static str,
    cn: &'static str,
    key_usage: flagset::FlagSet<KeyUsages>,
    eku: Option<const_oid::ObjectIdentifier>,
    ocsp_no_check: bool,
}

struct Role<'a> {
    label: &'static str,
    cn: &'a str,
    alg: KeyAlgorithm,
    validity: Duration,
}

/// Runs the ceremony against `hsm`. Blocking.
pub fn run(hsm: &Hsm, cfg: &CeremonyConfig) -> Result<Vec<Step>, CaError> {
    let mut steps = Vec::new();
    let root_role = Role {
        label: ROOT_LABEL,
        cn: "trustd Root CA",
        alg: cfg.root_algorithm,
        validity: cfg.root_validity,
    };
    let root = ensure(hsm, cfg, &root_role, None, CeremonyCert::Root, &mut steps)?;
    let root_urls = UrlContext {
        base: cfg.public_url.clone(),
        ca: "root".into(),
    };
    let issuing_role = Role {
        label: ISSUING_LABEL,
        cn: "trustd Issuing CA",
        alg: cfg.issuing_algorithm,
        validity: cfg.issuing_validity,
    };
    let issuing = ensure(
        hsm,
        cfg,
        &issuing_role,
        Some((&root, ROOT_LABEL)),
        CeremonyCert::Issuing { urls: &root_urls },
        &mut steps,
    )?;

    let urls = UrlContext {
        base: cfg.public_url.clone(),
        ca: ISSUING_CA_NAME.into(),
    };
    let services = [
        Service {
            label: TSA_LABEL,
            cn: "trustd Time-Stamping Authority",
            key_usage: KeyUsages::DigitalSignature.into(),
            eku: Some(rfc5280::ID_KP_TIME_STAMPING),
            ocsp_no_check: false,
        },
        Service {
            label: DOCUMENT_SIGNER_LABEL,
            cn: "trustd Document Signer",
            key_usage: KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
            eku: None,
            ocsp_no_check: false,
        },
        Service {
            label: OCSP_LABEL,
            cn: "trustd OCSP Responder",
            key_usage: KeyUsages::DigitalSignature.into(),
            eku: Some(rfc5280::ID_KP_OCSP_SIGNING),
            ocsp_no_check: true,
        },
    ];
    for s in services {
        let role = Role {
            label: s.label,
            cn: s.cn,
            alg: cfg.service_algorithm,
            validity: cfg.service_validity,
        };
        let kind = CeremonyCert::Service {
            urls: &urls,
            key_usage: s.key_usage,
            eku: s.eku,
            ocsp_no_check: s.ocsp_no_check,
        };
        ensure(
            hsm,
            cfg,
            &role,
            Some((&issuing, ISSUING_LABEL)),
            kind,
            &mut steps,
        )?;
    }
    Ok(steps)
}

fn ensure(
    hsm: &Hsm,
    cfg: &CeremonyConfig,
    role: &Role<'_>,
    issuer: Option<(&Certificate, &'static str)>,
    kind: CeremonyCert<'_>,
    steps: &mut Vec<Step>,
) -> Result<Certificate, CaError> {
    let key_generated = ensure_key(hsm, role.label, role.alg)?;
    if let Some(c) = stored_certificate(hsm, role.label)? {
        steps.push(Step {
            label: role.label,
            key_generated,
            certificate_created: false,
        });
        return Ok(c);
    }
    let public_key = hsm.public_key(&KeyRef::label(role.label))?;
    let subject = cert::build_name(&subject(cfg, role.cn))?;
    let (issuer_name, issuer_label, issuer_key_id) = match issuer {
        Some((c, label)) => (
            c.tbs_certificate.subject.clone(),
            label,
            super::subject_key_id(c)?,
        ),
        None => (
            subject.clone(),
            role.label,
            cert::key_identifier(&public_key),
        ),
    };
    if let Some((c, _)) = issuer {
        // A subordinate never outlives its issuer (RFC 5280 §6.1.3 checks every certificate's validity).
        let issuer_end = c
            .tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs();
        if now() + role.validity.as_secs() > issuer_end {
            return Err(CaError::Ceremony(format!(
                "{} would outlive its issuer; shorten its validity",
                role.label
            )));
        }
    }
    let signer = HsmSigner::new(hsm, KeyRef::label(issuer_label), None)?;
    let extensions = cert::ceremony_extensions(&kind, &public_key, &issuer_key_id)?;
    let start = now().saturating_sub(60);
    let spec = CertSpec {
        serial: Serial::random(),
        subject: subject.clone(),
        public_key,
        not_before: start,
        not_after: start + role.validity.as_secs(),
        extensions,
    };
    let issuer = Issuer {
        name: &issuer_name,
        key_id: &issuer_key_id,
        signer: &signer,
    };
    let tbs = cert::tbs(spec, &issuer)?;
    let tbs_der = tbs.to_der().map_err(|e| CaError::Internal(e.to_string()))?;
    let c = cert::sign(tbs, &tbs_der, &signer)?;
    let der = c.to_der().map_err(|e| CaError::Internal(e.to_string()))?;
    let subject_der = subject
        .to_der()
        .map_err(|e| CaError::Internal(e.to_string()))?;
    hsm.store_certificate(role.label, &der, &subject_der)?;
    tracing::info!(label = role.label, "key ceremony: certificate created");
    steps.push(Step {
        label: role.label,
        key_generated,
        certificate_created: true,
    });
    Ok(c)
}
