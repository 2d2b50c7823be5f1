//! Who may do what, deny by default: the access policy (`policies/access.toml`), the identity a
//! client certificate carries, and the decisions. Knows nothing of gRPC or TLS: the API hands it
//! the verified client certificate and the RPC's path, and asks.

mod file;
pub mod identity;
pub mod watch;

pub use identity::{CertificateIdentities, Identity};

use crate::ca::{NameConstraints, NameScope, RevokeScope};
use sha2::Digest;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

/// The proto package every trustd service is in.
const PACKAGE: &str = "trust.v1.";

/// Every RPC of trustd's services, as `Service/Method`: what a role's `rpcs` may name.
pub const RPCS: &[&str] = &[
    "CertificateAuthority/IssueCertificate",
    "CertificateAuthority/GetCertificate",
    "CertificateAuthority/ListCertificates",
    "CertificateAuthority/GetCaChain",
    "CertificateAuthority/RevokeCertificate",
    "CertificateAuthority/GetCrl",
    "CertificateAuthority/CreateCredential",
    "CertificateAuthority/ListCredentials",
    "CertificateAuthority/DisableCredential",
    "TimeStamping/Timestamp",
    "TimeStamping/GetTsaChain",
    "Signing/Sign",
    "Signing/SignStream",
    "Signing/Verify",
    "TransparencyLog/GetCheckpoint",
    "TransparencyLog/GetEntries",
    "TransparencyLog/GetInclusionProof",
    "TransparencyLog/GetConsistencyProof",
    "Diagnostics/MeasureSigningRate",
    "Diagnostics/MeasureStoreSync",
    "Diagnostics/GetProcessStats",
];

/// The RPCs that change state or use a key of the service: every call of one gets an audit
/// record (who, what, outcome), whatever its outcome.
const RECORDED: &[&str] = &[
    "CertificateAuthority/IssueCertificate",
    "CertificateAuthority/RevokeCertificate",
    "CertificateAuthority/CreateCredential",
    "CertificateAuthority/DisableCredential",
    "TimeStamping/Timestamp",
    "Signing/Sign",
    "Signing/SignStream",
    "Diagnostics/MeasureSigningRate",
];

/// Whether a call of `path` (`/package.Service/Method`) gets an audit record of its own.
pub fn is_recorded(path: &str) -> bool {
    path.strip_prefix('/').and_then(|p| p.strip_prefix(PACKAGE)).is_some_and(|rpc| RECORDED.contains(&rpc))
}

/// What any authenticated client may call: what relying parties fetch anyway over plain HTTP
/// (CA certificates, CRLs, the log's read path), health, and server reflection.
fn is_public(path: &str) -> bool {
    const PUBLIC_SERVICES: &[&str] = &[
        "/grpc.health.v1.Health/",
        "/grpc.reflection.v1.ServerReflection/",
        "/grpc.reflection.v1alpha.ServerReflection/",
        "/trust.v1.TransparencyLog/",
    ];
    const PUBLIC_RPCS: &[&str] = &[
        "/trust.v1.CertificateAuthority/GetCaChain",
        "/trust.v1.CertificateAuthority/GetCrl",
        "/trust.v1.TimeStamping/GetTsaChain",
    ];
    PUBLIC_SERVICES.iter().any(|s| path.starts_with(s)) || PUBLIC_RPCS.contains(&path)
}

/// Why a request was refused. The message names the client and what it asked, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// No usable client certificate (or none from a trusted CA, or revoked).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// A known (or unknown) client asking for what it may not do.
    #[error("{client} may not {what}")]
    Denied { client: String, what: String },
    /// The client could not be told apart now (its access token could not be looked up).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// A set of names from the policy: `["*"]` for any.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Names {
    Any,
    Only(BTreeSet<String>),
}

impl Names {
    fn contains(&self, name: &str) -> bool {
        match self {
            Names::Any => true,
            Names::Only(s) => s.contains(name),
        }
    }
}

/// One role: what it lets its clients do.
#[derive(Debug)]
struct Role {
    /// `Service/Method` or `Service/*` patterns, or `*`.
    rpcs: Vec<String>,
    profiles: Names,
    /// `None`: whatever the profile allows.
    names: Option<NameConstraints>,
    signing_policies: Names,
    revoke: Option<RevokeScope>,
}

impl Role {
    fn allows_rpc(&self, rpc: &str) -> bool {
        self.rpcs
            .iter()
            .any(|p| p == "*" || p == rpc || p.strip_suffix("/*").is_some_and(|svc| rpc.split('/').next() == Some(svc)))
    }
}

/// A client the policy names, as a request is made by it.
#[derive(Debug)]
pub struct Client {
    name: String,
    roles: Vec<Arc<Role>>,
}

impl Client {
    /// The client's configured name: what records and log entries call it.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn denied(&self, what: impl Into<String>) -> AccessError {
        AccessError::Denied { client: self.name.clone(), what: what.into() }
    }

    /// The names this client may have certified under `profile`: one alternative per role that
    /// allows the profile. Refused when none does.
    pub fn issue_scope(&self, profile: &str) -> Result<NameScope, AccessError> {
        let roles: Vec<_> = self.roles.iter().filter(|r| r.profiles.contains(profile)).collect();
        if roles.is_empty() {
            return Err(self.denied(format!("have certificates of profile '{profile}'")));
        }
        if roles.iter().any(|r| r.names.is_none()) {
            return Ok(NameScope::Any);
        }
        Ok(NameScope::OneOf(roles.iter().filter_map(|r| r.names.clone()).collect()))
    }

    /// Whether one of this client's roles lets it sign under the signing policy `policy`.
    pub fn may_sign(&self, policy: &str) -> Result<(), AccessError> {
        if self.roles.iter().any(|r| r.signing_policies.contains(policy)) {
            Ok(())
        } else {
            Err(self.denied(format!("sign under the signing policy '{policy}'")))
        }
    }

    /// Whose certificates this client may revoke: any if one of its roles says so.
    pub fn revoke_scope(&self) -> RevokeScope {
        if self.roles.iter().any(|r| r.revoke == Some(RevokeScope::Any)) {
            RevokeScope::Any
        } else {
            RevokeScope::Own
        }
    }
}

/// The access policy: clients by identity, and their roles.
#[derive(Debug)]
pub struct AccessPolicy {
    by_identity: HashMap<Identity, Arc<Client>>,
    /// Clients by the SHA-256 of their bearer tokens.
    by_bearer: HashMap<[u8; 32], Arc<Client>>,
    /// Clients by the SHA-256 of their OAuth 2.0 client secrets.
    by_secret: HashMap<[u8; 32], Arc<Client>>,
    trust_domain: String,
}

/// Profile and signing-policy names the access policy may refer to (a typo is an error at load,
/// not a silent denial).
pub struct Known<'a> {
    pub profiles: &'a [String],
    pub signing_policies: &'a [String],
}

impl AccessPolicy {
    /// Parses and validates the text of an access policy.
    pub fn parse(text: &str, known: &Known<'_>) -> Result<Self, String> {
        file::parse(text, known)
    }

    /// Whether the policy has a client called `name`.
    pub fn has_client(&self, name: &str) -> bool {
        self.by_identity.values().chain(self.by_bearer.values()).chain(self.by_secret.values()).any(|c| c.name == name)
    }

    /// The SPIFFE trust domain of client identities (`spiffe://DOMAIN/NAME`).
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The client a verified certificate (DER) names, allowed to call `path`
    /// (`/package.Service/Method`).
    pub fn authorize(&self, cert_der: Option<&[u8]>, path: &str) -> Result<Arc<Client>, AccessError> {
        self.authorize_identities(cert_der.map(CertificateIdentities::of).as_ref(), path)
    }

    /// As [`AccessPolicy::authorize`], for a certificate's identities read already (a TLS
    /// connection's, [`crate::tls::Peer`]).
    pub fn authorize_identities(
        &self,
        ids: Option<&CertificateIdentities>,
        path: &str,
    ) -> Result<Arc<Client>, AccessError> {
        let client = self.client_of_certificate(ids)?;
        Self::permit(client, path)
    }

    /// The client whose bearer token (RFC 6750 §2.1, over HTTPS only) `token` is, allowed to
    /// call `path`. Tokens are kept as SHA-256 hashes: the policy file holds no secret.
    pub fn authorize_bearer(&self, token: &str, path: &str) -> Result<Arc<Client>, AccessError> {
        let hash: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let client =
            self.by_bearer.get(&hash).cloned().ok_or_else(|| {
                AccessError::Unauthenticated("the bearer token is not one of the access policy".into())
            })?;
        Self::permit(client, path)
    }

    /// The client `client_id` if `secret` is one of its client secrets (RFC 6749 §2.3.1), with
    /// the secret's SHA-256, which an access token granted for it is bound to.
    pub fn client_of_secret(&self, client_id: &str, secret: &str) -> Result<(Arc<Client>, [u8; 32]), AccessError> {
        let hash: [u8; 32] = sha2::Sha256::digest(secret.as_bytes()).into();
        match self.by_secret.get(&hash) {
            Some(c) if c.name == client_id => Ok((c.clone(), hash)),
            _ => Err(AccessError::Unauthenticated(
                "the client ID and secret are not a client of the access policy".into(),
            )),
        }
    }

    /// Client `client`, allowed to call `path`, while the secret whose SHA-256 is
    /// `secret_sha256` is still one of its client secrets: an access token dies with its secret.
    pub fn authorize_secret_holder(
        &self,
        client: &str,
        secret_sha256: &[u8; 32],
        path: &str,
    ) -> Result<Arc<Client>, AccessError> {
        match self.by_secret.get(secret_sha256) {
            Some(c) if c.name == client => Self::permit(c.clone(), path),
            _ => Err(AccessError::Unauthenticated(
                "the access token was granted for a client secret the access policy no longer has".into(),
            )),
        }
    }

    fn client_of_certificate(&self, ids: Option<&CertificateIdentities>) -> Result<Arc<Client>, AccessError> {
        let ids = ids.ok_or_else(|| AccessError::Unauthenticated("no client certificate".into()))?;
        let ids = ids.get().map_err(|e| AccessError::Unauthenticated(e.to_owned()))?;
        let mut found = ids.iter().filter_map(|id| self.by_identity.get(id)).collect::<Vec<_>>();
        found.dedup_by(|a, b| a.name == b.name);
        let client = match found.as_slice() {
            [one] => (*one).clone(),
            [] => {
                let names = ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                return Err(AccessError::Denied {
                    client: format!("the unknown client ({names})"),
                    what: "call anything: no client of the access policy has this identity".into(),
                });
            }
            many => {
                let names = many.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
                return Err(AccessError::Denied {
                    client: format!("a certificate naming several clients ({names})"),
                    what: "be served: one certificate must name one client".into(),
                });
            }
        };
        Ok(client)
    }

    fn permit(client: Arc<Client>, path: &str) -> Result<Arc<Client>, AccessError> {
        if is_public(path) {
            return Ok(client);
        }
        let rpc = path.strip_prefix('/').and_then(|p| p.strip_prefix(PACKAGE)).unwrap_or(path);
        if client.roles.iter().any(|r| r.allows_rpc(rpc)) {
            Ok(client)
        } else {
            Err(client.denied(format!("call {rpc}")))
        }
    }
}

/// The access policy in force, replaced whole on reload: a request is decided by the old policy
/// or the new one, never by a mix, and open connections are not touched.
#[derive(Debug)]
pub struct PolicyInForce(RwLock<Arc<AccessPolicy>>);

impl PolicyInForce {
    pub fn new(policy: AccessPolicy) -> Arc<Self> {
        Arc::new(PolicyInForce(RwLock::new(Arc::new(policy))))
    }

    /// The policy to decide a request by.
    pub fn current(&self) -> Arc<AccessPolicy> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `policy` in force for every request from now on.
    pub fn replace(&self, policy: AccessPolicy) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policy);
    }
}

#[cfg(test)]
mod tests;
