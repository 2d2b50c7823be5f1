//! The Cloud Signature Consortium API (CSC API v1.0.4.0 and v2.0.0.2, the remote-signing
//! protocol ETSI TS 119 432 builds on): a signing portal that hashes its own documents (pyHanko's `CSCSigner`,
//! say) lists its credentials, gets signature activation data (SAD) bound to the exact hashes it
//! will sign (SCAL 2), and has trustd's HSM sign them. A credential is a signing policy the
//! client may sign under (its `clients` list and the client's access roles), its ID the policy's
//! name; every signature is recorded and logged like any other. Knows the API's JSON, not HTTP:
//! `api::csc` routes `/csc/v1/…` and `/csc/v2/…` here after authenticating the client. Both
//! versions' request field names are taken on both paths (v2 renamed `hash` to `hashes` and
//! `hashAlgo` to `hashAlgorithmOID`); the answers take the shape of the path's version.

use crate::ca::{CertificateAuthority, IssueRequest, NameScope, RevokeScope};
use crate::clock::Clock;
use crate::digest::HashAlg;
use crate::incident::Incident;
use crate::keys::SignatureScheme;
use crate::keys::{CertifiedKey, KeyRef, SigningKey};
use crate::signing::{CredentialSigner, KeyDescription, SigningError, SigningService};
use crate::store::{CscAuthorization, CscCredential, Store};
use crate::tsa::TimeStampAuthority;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The version of the API a path speaks: `/csc/v1/` (1.0.4.0, which pyHanko uses) or `/csc/v2/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    /// The version of a path's segment (`v1`, `v2`).
    pub fn from_segment(segment: &str) -> Option<Self> {
        match segment {
            "v1" => Some(Version::V1),
            "v2" => Some(Version::V2),
            _ => None,
        }
    }

    /// The path segment.
    pub fn segment(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }

    /// The specification whose field names the version speaks (`specs` of `info`).
    pub fn specs(self) -> &'static str {
        match self {
            Version::V1 => "1.0.4.0",
            Version::V2 => "2.0.0.2",
        }
    }
}

/// Most hashes one authorization or signHash call may carry (`multisign`).
pub const MAX_HASHES: usize = 32;

/// How long a SAD may be used after credentials/authorize (`expiresIn`).
pub const SAD_LIFETIME: Duration = Duration::from_secs(300);

/// What the client is told when a call fails: the API's error object (§10.1) and its HTTP status.
#[derive(Debug, PartialEq, Eq)]
pub struct CscError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl CscError {
    fn invalid(description: impl Into<String>) -> Self {
        CscError { status: 400, error: "invalid_request", description: description.into() }
    }

    /// A failure of the service: logged with a reference, which is all the client gets.
    fn internal(what: &str, cause: &dyn std::fmt::Display) -> Self {
        let incident = Incident::record(what, cause);
        CscError { status: 500, error: "server_error", description: format!("internal error, incident {incident}") }
    }

    /// The body: `{"error": …, "error_description": …}`.
    pub fn body(&self) -> Value {
        json!({ "error": self.error, "error_description": self.description })
    }
}

impl From<SigningError> for CscError {
    fn from(e: SigningError) -> Self {
        match e {
            SigningError::BadRequest(m) => CscError::invalid(m),
            // Whether a credential exists is not told to a client that may not use it.
            SigningError::UnknownPolicy { .. } | SigningError::ClientNotListed { .. } => {
                CscError::invalid("Invalid parameter credentialID")
            }
            SigningError::Key(crate::keys::KeyError::Busy(_) | crate::keys::KeyError::Unavailable(_)) => CscError {
                status: 503,
                error: "temporarily_unavailable",
                description: "the signing device is busy or unavailable; retry shortly".into(),
            },
            e => CscError::internal("CSC: signing failed", &e),
        }
    }
}

/// The authenticated client of a call, and which credentials its access roles let it use.
pub struct Caller<'a> {
    pub name: &'a str,
    pub may_use: &'a (dyn Fn(&str) -> bool + Sync),
}

/// The CSC service over the signing service and the store (where SADs are kept, so that any
/// replica takes a SAD another handed out).
pub struct Csc {
    signing: Arc<SigningService>,
    tsa: Arc<TimeStampAuthority>,
    ca: Arc<CertificateAuthority>,
    keys: Arc<dyn CredentialKeys>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// The signers of credentials used here, by ID (their rows are read at each call: a
    /// credential disabled on another replica signs nothing more here either).
    signers: std::sync::Mutex<HashMap<String, CredentialSigner>>,
}

/// Where credentials' keys are made and opened: the HSM, as the daemon wires it.
#[async_trait::async_trait]
pub trait CredentialKeys: Send + Sync {
    /// Generates a key labelled `label` (never overwriting one), in the service algorithm.
    async fn generate(&self, label: &str) -> Result<(KeyRef, Arc<dyn SigningKey>), String>;
    /// Destroys a key [`CredentialKeys::generate`] made for a credential that was then not made.
    async fn destroy(&self, key: &KeyRef) -> Result<(), String>;
    /// Opens `key` for signing, with its certificate (DER), in `scheme`'s default for the key.
    async fn open(&self, key: &KeyRef, certificate_der: &[u8]) -> Result<CertifiedKey, String>;
}

/// A credential a call names: a signing policy, or a client's own key under one.
struct Resolved {
    policy: String,
    key: KeyDescription,
    signer: Option<CredentialSigner>,
}

/// Why a credential could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no credential '{0}'")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CscError> {
    serde_json::from_slice(body).map_err(|e| CscError::invalid(format!("malformed request: {e}")))
}

fn hashes(b64: &[String], alg: HashAlg) -> Result<Vec<Vec<u8>>, CscError> {
    if b64.is_empty() || b64.len() > MAX_HASHES {
        return Err(CscError::invalid(format!("give 1 to {MAX_HASHES} hashes, not {}", b64.len())));
    }
    b64.iter()
        .map(|h| match B64.decode(h) {
            Ok(d) if d.len() == alg.output_len() => Ok(d),
            Ok(d) => Err(CscError::invalid(format!("a {alg} hash is {} bytes, got {}", alg.output_len(), d.len()))),
            Err(_) => Err(CscError::invalid("Invalid Base64 hash string parameter")),
        })
        .collect()
}

/// The signature algorithm OIDs a key's scheme answers to (`key/algo`, `signAlgo`): its own, and
/// for PKCS#1 v1.5 RSA also rsaEncryption with the hash in `hashAlgo`, as CSC clients send it.
fn algorithms(scheme: SignatureScheme) -> Vec<const_oid::ObjectIdentifier> {
    let own = scheme.algorithm_identifier().map(|a| a.oid).into_iter();
    match scheme {
        SignatureScheme::RsaPkcs1Sha256 | SignatureScheme::RsaPkcs1Sha384 | SignatureScheme::RsaPkcs1Sha512 => {
            own.chain([const_oid::db::rfc5912::RSA_ENCRYPTION]).collect()
        }
        _ => own.collect(),
    }
}

#[derive(Deserialize)]
struct ListRequest {
    #[serde(rename = "maxResults")]
    max_results: Option<u32>,
    #[serde(rename = "pageToken")]
    page_token: Option<String>,
    /// v2: each credential's information too, as credentials/info gives it.
    #[serde(rename = "credentialInfo", default)]
    credential_info: bool,
    #[serde(flatten)]
    shown: Shown,
    /// v2: only credentials that can sign now (trustd lists no other).
    #[serde(rename = "onlyValid", default)]
    only_valid: bool,
}

/// What credentials/info (and v2's credentials/list) shows of a credential.
#[derive(Deserialize)]
struct Shown {
    certificates: Option<String>,
    #[serde(rename = "certInfo", default)]
    cert_info: bool,
}

#[derive(Deserialize)]
struct InfoRequest {
    #[serde(rename = "credentialID")]
    credential_id: String,
    #[serde(flatten)]
    shown: Shown,
}

#[derive(Deserialize)]
struct AuthorizeRequest {
    #[serde(rename = "credentialID")]
    credential_id: String,
    #[serde(rename = "numSignatures")]
    num_signatures: u32,
    #[serde(alias = "hashes")]
    hash: Option<Vec<String>>,
    #[serde(rename = "hashAlgorithmOID", alias = "hashAlgo")]
    hash_algo: Option<String>,
    /// v2: PINs and OTPs; a trustd credential is authorized by its client's authentication alone.
    #[serde(rename = "authData", default)]
    auth_data: Vec<Value>,
}

#[derive(Deserialize)]
struct TimestampRequest {
    hash: String,
    #[serde(rename = "hashAlgo", alias = "hashAlgorithmOID")]
    hash_algo: String,
    nonce: Option<String>,
}

#[derive(Deserialize)]
struct SignHashRequest {
    #[serde(rename = "credentialID")]
    credential_id: String,
    #[serde(rename = "SAD")]
    sad: Option<String>,
    #[serde(alias = "hashes")]
    hash: Vec<String>,
    #[serde(rename = "hashAlgo", alias = "hashAlgorithmOID")]
    hash_algo: Option<String>,
    #[serde(rename = "signAlgo")]
    sign_algo: String,
    #[serde(rename = "signAlgoParams")]
    sign_algo_params: Option<String>,
    /// v2: "S" (synchronous, the default) or "A" (asynchronous, which trustd does not offer).
    #[serde(rename = "operationMode")]
    operation_mode: Option<String>,
}

impl Csc {
    pub fn new(
        signing: Arc<SigningService>,
        tsa: Arc<TimeStampAuthority>,
        ca: Arc<CertificateAuthority>,
        keys: Arc<dyn CredentialKeys>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Csc { signing, tsa, ca, keys, store, clock, signers: Default::default() }
    }

    /// `info` (§11.1): the service, the methods it offers, and where a client gets an OAuth 2.0
    /// access token (`oauth2`: `base`, the API's own URL, under which `oauth2/token` is).
    pub fn info(&self, version: Version, base: &str) -> Value {
        let mut methods = vec![
            "credentials/list",
            "credentials/info",
            "credentials/authorize",
            "signatures/signHash",
            "signatures/timestamp",
            "oauth2/token",
        ];
        if version == Version::V2 {
            methods.insert(0, "info");
        }
        let mut info = json!({
            "specs": version.specs(),
            "name": "trustd",
            "logo": "",
            "region": "",
            "lang": "en-US",
            "description": "trustd remote signing: keys in an HSM, every signature recorded and logged",
            "authType": ["TLS", "external", "oauth2client"],
            "oauth2": base,
            "methods": methods,
        });
        if version == Version::V2 {
            let mut algos: Vec<String> = self
                .signing
                .schemes()
                .into_iter()
                .filter(|s| *s != SignatureScheme::Ed25519)
                .flat_map(algorithms)
                .map(|oid| oid.to_string())
                .collect();
            algos.sort();
            algos.dedup();
            info["asynchronousOperationMode"] = json!(false);
            info["validationInfo"] = json!(false);
            info["signAlgorithms"] = json!({ "algos": algos });
        }
        info
    }

    /// The credential `id` if `caller` may use it and its key signs hashes (pure EdDSA signs
    /// only whole messages, so an Ed25519 policy is no credential): a signing policy, or one of
    /// the caller's own enabled credentials under a policy it may sign under.
    async fn credential(&self, caller: &Caller<'_>, id: &str) -> Result<Resolved, CscError> {
        let invalid = || CscError::invalid("Invalid parameter credentialID");
        let resolved = if self.signing.policies().any(|p| p.name == id) {
            if !(caller.may_use)(id) {
                return Err(invalid());
            }
            Resolved { policy: id.to_owned(), key: self.signing.key_of(id, caller.name)?, signer: None }
        } else {
            let own = self
                .store
                .csc_credentials(Some(caller.name))
                .await
                .map_err(|e| CscError::internal("CSC: credentials", &e))?;
            let Some(c) = own.into_iter().find(|c| c.id == id && c.disabled_at.is_none()) else {
                return Err(invalid());
            };
            if !(caller.may_use)(&c.policy) {
                return Err(invalid());
            }
            let signer = self.signer(&c).await?;
            Resolved { policy: c.policy.clone(), key: signer.describe(), signer: Some(signer) }
        };
        if resolved.key.scheme == SignatureScheme::Ed25519 {
            return Err(invalid());
        }
        Ok(resolved)
    }

    /// The signer of credential `c`, opened once per daemon.
    async fn signer(&self, c: &CscCredential) -> Result<CredentialSigner, CscError> {
        if let Some(s) = self.signers.lock().unwrap_or_else(|p| p.into_inner()).get(&c.id) {
            return Ok(s.clone());
        }
        let certified = self
            .keys
            .open(&c.key, &c.certificate_der)
            .await
            .map_err(|e| CscError::internal("CSC: a credential's key", &e))?;
        let signer = self.signing.credential_signer(&c.policy, certified)?;
        self.signers.lock().unwrap_or_else(|p| p.into_inner()).insert(c.id.clone(), signer.clone());
        Ok(signer)
    }

    /// `credentials/list` (§11.4): the credentials `caller` may use, by ID, a page at a time:
    /// the signing policies, then its own; with v2's `credentialInfo`, each one's information.
    pub async fn list(&self, caller: &Caller<'_>, version: Version, body: &[u8]) -> Result<Value, CscError> {
        let req: ListRequest = parse(body)?;
        let mut all = Vec::new();
        for name in self.signing.policies().map(|p| p.name.clone()) {
            if self.credential(caller, &name).await.is_ok() {
                all.push(name);
            }
        }
        let own = self
            .store
            .csc_credentials(Some(caller.name))
            .await
            .map_err(|e| CscError::internal("CSC: credentials", &e))?;
        for c in own.into_iter().filter(|c| c.disabled_at.is_none() && (caller.may_use)(&c.policy)) {
            all.push(c.id);
        }
        let from = match req.page_token.as_deref() {
            None => 0,
            Some(t) => t
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= all.len())
                .ok_or_else(|| CscError::invalid("Invalid parameter pageToken"))?,
        };
        let max = match req.max_results {
            Some(0) => return Err(CscError::invalid("Invalid parameter maxResults")),
            Some(n) => n as usize,
            None => all.len(),
        };
        let page: Vec<&String> = all[from..].iter().take(max).collect();
        let mut out = json!({ "credentialIDs": page });
        if from + page.len() < all.len() {
            out["nextPageToken"] = json!((from + page.len()).to_string());
        }
        if version == Version::V2 && req.credential_info {
            let mut infos = Vec::with_capacity(page.len());
            for id in &page {
                let key = self.credential(caller, id).await?.key;
                let mut info = describe(version, &key, &req.shown)?;
                info["credentialID"] = json!(id);
                infos.push(info);
            }
            out["credentialInfos"] = json!(infos);
        }
        if version == Version::V2 && req.only_valid {
            out["onlyValid"] = json!(true);
        }
        Ok(out)
    }

    /// Makes a credential for `client` under signing policy `policy` (`trustctl credential
    /// create`): a key generated in the HSM, certified by the CA under the policy's certificate
    /// profile (`document-signer` where it names none) with `subject` (checked by the profile),
    /// recorded in the store. Only `client` may use it, and only while its roles may sign under `policy`.
    pub async fn create_credential(
        &self,
        client: &str,
        policy: &str,
        subject: &[(crate::policy::AttrKind, String)],
    ) -> Result<CscCredential, CredentialError> {
        let bad = |m: String| CredentialError::BadRequest(m);
        let p = self
            .signing
            .policies()
            .find(|p| p.name == policy)
            .ok_or_else(|| bad(format!("no signing policy '{policy}'")))?;
        self.signing.check_client(policy, client).map_err(|e| bad(e.to_string()))?;
        let cn = subject.iter().find(|(kind, _)| *kind == crate::policy::AttrKind::CommonName);
        if cn.is_none_or(|(_, v)| v.trim().is_empty() || v.len() > 64) {
            return Err(bad("give the certificate's common name, 1 to 64 characters (RFC 5280 ub-common-name)".into()));
        }
        let id = format!("cred-{}", hex::encode(rand::random::<[u8; 8]>()));
        let (key, signer) = self.keys.generate(&format!("trustd-{id}")).await.map_err(CredentialError::Internal)?;
        match self.certify_and_record(id, client, &p, subject, key.clone(), signer).await {
            Ok(credential) => Ok(credential),
            Err(e) => {
                // A refused subject would otherwise leave a key in the token each time: a client
                // that may create credentials could fill the HSM's storage.
                if let Err(d) = self.keys.destroy(&key).await {
                    tracing::error!(key = %key, error = %d, "the key of a credential not made could not be destroyed");
                }
                Err(e)
            }
        }
    }

    /// The rest of [`Csc::create_credential`] once the key is made: its certificate, the record.
    async fn certify_and_record(
        &self,
        id: String,
        client: &str,
        p: &crate::policy::SigningPolicy,
        subject: &[(crate::policy::AttrKind, String)],
        key: KeyRef,
        signer: Arc<dyn SigningKey>,
    ) -> Result<CscCredential, CredentialError> {
        let bad = |m: String| CredentialError::BadRequest(m);
        let csr = crate::ca::csr::build(signer.as_ref(), subject, &[])
            .await
            .map_err(|e| CredentialError::Internal(e.to_string()))?;
        let profile = p.certificate.as_ref().map_or("document-signer", |c| c.profile.as_str()).to_owned();
        let requester = format!("credential:{client}");
        let request =
            IssueRequest { profile, csr, validity: None, requester: requester.clone(), scope: NameScope::Any };
        let issued = self.ca.issue_for_hsm_key(request).await.map_err(|e| match e {
            crate::ca::CaError::Key(_)
            | crate::ca::CaError::Store(_)
            | crate::ca::CaError::Log(_)
            | crate::ca::CaError::Internal(_) => CredentialError::Internal(e.to_string()),
            e => bad(e.to_string()),
        })?;
        let policy = p.name.as_str();
        let credential = CscCredential {
            id,
            client: client.to_owned(),
            policy: policy.to_owned(),
            key,
            certificate_der: issued.cert_der,
            created_at: self.clock.unix_secs() as i64,
            disabled_at: None,
        };
        if let Err(e) = self.store.record_csc_credential(&credential).await {
            // The certificate is issued and logged, and its key is about to be destroyed
            // (`create_credential`): revoked, it is not taken for a key that anyone holds.
            let serial = issued.serial.to_string();
            let reason = crate::revocation::Reason::CessationOfOperation;
            if let Err(r) = self.ca.revoke(&serial, reason, None, &requester, RevokeScope::Any).await {
                tracing::error!(%serial, error = %r, audit = true, "the certificate of a credential not recorded could not be revoked");
            }
            return Err(CredentialError::Internal(e.to_string()));
        }
        tracing::warn!(id = %credential.id, client, policy, key = %credential.key, serial = %issued.serial, audit = true,
            "CSC credential created");
        Ok(credential)
    }

    /// The credentials made for `client` (every client's with `None`).
    pub async fn credentials(&self, client: Option<&str>) -> Result<Vec<CscCredential>, CredentialError> {
        self.store.csc_credentials(client).await.map_err(|e| CredentialError::Internal(e.to_string()))
    }

    /// Disables credential `id`: it signs nothing more, on every replica.
    pub async fn disable_credential(&self, id: &str) -> Result<CscCredential, CredentialError> {
        let at = self.clock.unix_secs() as i64;
        let c = self
            .store
            .disable_csc_credential(id, at)
            .await
            .map_err(|e| CredentialError::Internal(e.to_string()))?
            .ok_or_else(|| CredentialError::NotFound(id.to_owned()))?;
        self.signers.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        tracing::warn!(id, client = %c.client, audit = true, "CSC credential disabled");
        Ok(c)
    }

    /// `credentials/info` (§11.5): the key's algorithms and length, the certificate chain (the
    /// signer's first), and how signatures are authorized: by the service, per hash (SCAL 2).
    pub async fn credential_info(&self, caller: &Caller<'_>, version: Version, body: &[u8]) -> Result<Value, CscError> {
        let req: InfoRequest = parse(body)?;
        let key = self.credential(caller, &req.credential_id).await?.key;
        describe(version, &key, &req.shown)
    }

    /// `credentials/authorize` (§11.6): SAD for exactly the hashes given (SCAL 2), usable once,
    /// within [`SAD_LIFETIME`], by this client for this credential.
    pub async fn authorize(&self, caller: &Caller<'_>, body: &[u8]) -> Result<Value, CscError> {
        let req: AuthorizeRequest = parse(body)?;
        let key = self.credential(caller, &req.credential_id).await?.key;
        if !req.auth_data.is_empty() {
            return Err(CscError::invalid(
                "Invalid parameter authData: a trustd credential is authorized by its client's authentication, \
                 with no PIN or OTP",
            ));
        }
        if let Some(oid) = req.hash_algo.as_deref().filter(|oid| *oid != key.scheme.hash().oid().to_string()) {
            return Err(CscError::invalid(format!(
                "the credential's key signs {} hashes, not {oid}",
                key.scheme.hash()
            )));
        }
        let Some(given) = req.hash else {
            return Err(CscError::invalid("Missing (or invalid type) array parameter hash: the credential is SCAL 2"));
        };
        hashes(&given, key.scheme.hash())?;
        if req.num_signatures as usize != given.len() {
            return Err(CscError::invalid(format!(
                "numSignatures is {}, but {} hashes were given",
                req.num_signatures,
                given.len()
            )));
        }
        let sad = B64.encode(rand::random::<[u8; 32]>());
        let now = self.clock.unix_secs() as i64;
        let authorization = CscAuthorization {
            sad_sha256: hex::encode(sha2::Sha256::digest(sad.as_bytes())),
            client: caller.name.to_owned(),
            credential: req.credential_id.clone(),
            hashes: given,
            expires_at: now + SAD_LIFETIME.as_secs() as i64,
        };
        self.store
            .record_csc_authorization(&authorization, now)
            .await
            .map_err(|e| CscError::internal("CSC: recording a SAD", &e))?;
        tracing::info!(client = caller.name, credential = %req.credential_id, hashes = req.num_signatures, audit = true,
            "CSC signatures authorized");
        Ok(json!({ "SAD": sad, "expiresIn": SAD_LIFETIME.as_secs() }))
    }

    /// `signatures/signHash` (§11.9): signs hashes the SAD authorized, with the algorithm the
    /// credential's key signs with. The SAD is used up, whatever the outcome after it is taken.
    pub async fn sign_hash(&self, caller: &Caller<'_>, body: &[u8]) -> Result<Value, CscError> {
        let req: SignHashRequest = parse(body)?;
        match req.operation_mode.as_deref() {
            None | Some("S") => {}
            Some("A") => {
                return Err(CscError::invalid("Invalid parameter operationMode: only synchronous ('S') is offered"))
            }
            Some(_) => return Err(CscError::invalid("Invalid parameter operationMode")),
        }
        let Some(sad) = req.sad.as_deref() else {
            return Err(CscError::invalid("Missing string parameter SAD: get one from credentials/authorize"));
        };
        let credential = self.credential(caller, &req.credential_id).await?;
        let key = &credential.key;
        let alg = key.scheme.hash();
        let sign_algo: const_oid::ObjectIdentifier =
            req.sign_algo.parse().map_err(|_| CscError::invalid("Invalid parameter signAlgo"))?;
        if !algorithms(key.scheme).contains(&sign_algo) {
            return Err(CscError::invalid(format!("the credential's key does not sign with {sign_algo}")));
        }
        match req.hash_algo.as_deref() {
            Some(oid) if oid != alg.oid().to_string() => {
                return Err(CscError::invalid(format!("the credential's key signs {alg} hashes, not {oid}")));
            }
            None if sign_algo == const_oid::db::rfc5912::RSA_ENCRYPTION => {
                return Err(CscError::invalid("Missing string parameter hashAlgo"));
            }
            _ => {}
        }
        if let Some(params) = &req.sign_algo_params {
            let own = key
                .scheme
                .algorithm_identifier()
                .ok()
                .and_then(|a| a.parameters)
                .and_then(|p| der::Encode::to_der(&p).ok());
            if B64.decode(params).ok() != own {
                return Err(CscError::invalid("Invalid parameter signAlgoParams"));
            }
        }
        let digests = hashes(&req.hash, alg)?;
        let now = self.clock.unix_secs() as i64;
        let sad_sha256 = hex::encode(sha2::Sha256::digest(sad.as_bytes()));
        let authorized = self
            .store
            .use_csc_authorization(&sad_sha256, caller.name, &req.credential_id, now)
            .await
            .map_err(|e| CscError::internal("CSC: reading a SAD", &e))?
            .ok_or_else(|| {
                CscError::invalid("Invalid parameter SAD: unknown, expired, used already, or not for this credential")
            })?;
        if let Some(h) = req.hash.iter().find(|h| !authorized.contains(h)) {
            return Err(CscError::invalid(format!("the SAD does not authorize the hash {h}")));
        }
        let signatures = match &credential.signer {
            Some(signer) => self.signing.sign_digests_as(signer, caller.name, alg, &digests).await?,
            None => self.signing.sign_digests(&credential.policy, caller.name, alg, &digests).await?,
        };
        tracing::info!(client = caller.name, credential = %req.credential_id, count = signatures.len(), audit = true,
            "CSC hashes signed");
        Ok(json!({ "signatures": signatures.iter().map(|s| B64.encode(s.as_bytes())).collect::<Vec<_>>() }))
    }
    /// `signatures/timestamp` (§11.10): an RFC 3161 time-stamp token from trustd's TSA over the
    /// hash (with the TSA certificate in it), carrying `nonce` (hex) when given, recorded and
    /// logged as every token is. For a client the access policy lets time-stamp.
    pub async fn timestamp(&self, caller: &Caller<'_>, body: &[u8]) -> Result<Value, CscError> {
        let req: TimestampRequest = parse(body)?;
        let oid: const_oid::ObjectIdentifier =
            req.hash_algo.parse().map_err(|_| CscError::invalid("Invalid parameter hashAlgo"))?;
        let alg = HashAlg::from_oid(&oid).ok_or_else(|| {
            CscError::invalid(format!("Invalid parameter hashAlgo: {oid} is not a hash the TSA takes"))
        })?;
        let digest = hashes(std::slice::from_ref(&req.hash), alg)?.remove(0);
        let nonce = match &req.nonce {
            Some(n) => hex::decode(n)
                .ok()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| CscError::invalid("Invalid parameter nonce: hex digits"))?,
            None => rand::random::<[u8; 8]>().to_vec(),
        };
        match self.tsa.token_with_nonce(alg, &digest, &nonce, caller.name).await {
            Ok(token) => Ok(json!({ "timestamp": B64.encode(&token.der) })),
            Err(refusal) if refusal.failure == crate::tsa::Failure::SystemFailure => {
                Err(CscError::internal("CSC: time-stamp", &refusal.reason))
            }
            Err(refusal) if refusal.failure == crate::tsa::Failure::TimeNotAvailable => Err(CscError {
                status: 503,
                error: "temporarily_unavailable",
                description: format!("the TSA's clock cannot be relied on: {}", refusal.reason),
            }),
            Err(refusal) => {
                Err(CscError::invalid(format!("the TSA refused: {}: {}", refusal.failure.name(), refusal.reason)))
            }
        }
    }
}

/// A credential as credentials/info tells it (§11.5), in `version`'s shape: v1 says how it is
/// authorized in `authMode`, v2 in `auth`.
fn describe(version: Version, key: &KeyDescription, shown: &Shown) -> Result<Value, CscError> {
    let certificates: &[Vec<u8>] = match shown.certificates.as_deref().unwrap_or("single") {
        "none" => &[],
        "single" => &key.chain[..1],
        "chain" => &key.chain,
        _ => return Err(CscError::invalid("Invalid parameter certificates")),
    };
    let mut cert = json!({
        "status": "valid",
        "certificates": certificates.iter().map(|c| B64.encode(c)).collect::<Vec<_>>(),
    });
    if shown.cert_info {
        let parsed = <x509_cert::Certificate as der::Decode>::from_der(&key.chain[0])
            .map_err(|e| CscError::internal("CSC: the signer certificate", &e))?;
        let tbs = &parsed.tbs_certificate;
        let time = |t: &x509_cert::time::Time| crate::unix_time::generalized_digits(&t.to_date_time()) + "Z";
        cert["issuerDN"] = json!(tbs.issuer.to_string());
        cert["serialNumber"] = json!(hex::encode(tbs.serial_number.as_bytes()));
        cert["subjectDN"] = json!(tbs.subject.to_string());
        cert["validFrom"] = json!(time(&tbs.validity.not_before));
        cert["validTo"] = json!(time(&tbs.validity.not_after));
    }
    let mut key_info = json!({
        "status": "enabled",
        "algo": algorithms(key.scheme).iter().map(ToString::to_string).collect::<Vec<_>>(),
        "len": key_bits(&key.public_key),
    });
    if let Some(curve) =
        key.public_key.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
    {
        key_info["curve"] = json!(curve.to_string());
    }
    let mut info = json!({
        "key": key_info,
        "cert": cert,
        "SCAL": "2",
        "multisign": MAX_HASHES,
        "lang": "en-US",
    });
    // Implicit (§8.2): the signing application collects no PIN or OTP ("explicit" would ask it
    // to); credentials/authorize hands the SAD to the authenticated client, bound to the hashes.
    // certomancer-csc-dummy says the same.
    match version {
        Version::V1 => info["authMode"] = json!("implicit"),
        Version::V2 => info["auth"] = json!({ "mode": "implicit" }),
    }
    Ok(info)
}

/// The key length in bits (`key/len`): the RSA modulus, or the curve's field size.
fn key_bits(spki: &spki::SubjectPublicKeyInfoOwned) -> usize {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::traits::PublicKeyParts;
    if let Some(key) = spki.subject_public_key.as_bytes().and_then(|b| rsa::RsaPublicKey::from_pkcs1_der(b).ok()) {
        return key.n().bits();
    }
    // An uncompressed EC point: 0x04, then x and y.
    (spki.subject_public_key.raw_bytes().len().saturating_sub(1) / 2) * 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_base64_of_the_right_length_and_not_too_many() {
        let h = B64.encode([7u8; 32]);
        assert_eq!(hashes(std::slice::from_ref(&h), HashAlg::Sha256).unwrap(), vec![vec![7u8; 32]]);
        assert!(hashes(std::slice::from_ref(&h), HashAlg::Sha384)
            .unwrap_err()
            .description
            .contains("is 48 bytes, got 32"));
        assert!(hashes(&[], HashAlg::Sha256).is_err());
        assert!(hashes(&vec![h; MAX_HASHES + 1], HashAlg::Sha256).unwrap_err().description.contains("not 33"));
        assert!(hashes(&["not base64!".into()], HashAlg::Sha256).unwrap_err().description.contains("Base64"));
    }

    #[test]
    fn a_key_answers_to_its_own_algorithm_and_pkcs1_also_to_rsa_encryption() {
        use const_oid::db::rfc5912::*;
        assert_eq!(algorithms(SignatureScheme::EcdsaSha256), vec![ECDSA_WITH_SHA_256]);
        assert_eq!(algorithms(SignatureScheme::RsaPkcs1Sha384), vec![SHA_384_WITH_RSA_ENCRYPTION, RSA_ENCRYPTION]);
        assert_eq!(algorithms(SignatureScheme::RsaPssSha256), vec![ID_RSASSA_PSS]);
    }

    #[test]
    fn errors_take_the_apis_shape_and_hide_internal_causes() {
        let e = CscError::internal("test", &"the database at 10.0.0.7 said no");
        assert_eq!(e.status, 500);
        let body = e.body().to_string();
        assert!(body.contains("server_error") && !body.contains("10.0.0.7"), "{body}");
        let e = CscError::from(SigningError::ClientNotListed { policy: "p".into(), client: "c".into() });
        assert_eq!(e.body()["error_description"], "Invalid parameter credentialID");
    }
}
