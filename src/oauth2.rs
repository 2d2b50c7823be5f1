//! OAuth 2.0 access tokens by the client credentials grant (RFC 6749 §4.4), as the CSC API's
//! `oauth2/token` offers them (CSC API v1.0.4.0 §8.3.3, v2.0.0.2 §8.3.3, scope `service`): a
//! client of the access policy trades its name (`client_id`) and one of its client secrets for
//! a bearer token (RFC 6750) good for an hour on every replica, which then names it over HTTPS
//! as a static bearer token would. Tokens are kept as SHA-256 hashes in the store, bound to the
//! secret they were granted for: removing the secret from the access policy ends them at once.
//! Knows the grant's parameters and answers, not HTTP: `api::csc` parses the request.

use crate::access::{AccessError, AccessPolicy, Client};
use crate::clock::Clock;
use crate::incident::Incident;
use crate::store::{AccessToken, Store};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long an access token names its client (`expires_in`).
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The scope of a client credentials token in the CSC API: the service, not one credential.
pub const SCOPE: &str = "service";

/// How many tokens a replica remembers having checked (each is checked in the store once).
const REMEMBERED: usize = 10_000;

/// A token request's parameters (RFC 6749 §4.4.2), however the client sent its credentials:
/// in the body, or with HTTP Basic (§2.3.1, then `basic`).
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
    pub basic: bool,
}

/// A refusal in RFC 6749 §5.2's shape, with its HTTP status.
#[derive(Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn invalid_request(description: impl Into<String>) -> Self {
        OAuthError { status: 400, error: "invalid_request", description: description.into() }
    }

    /// The body: `{"error": …, "error_description": …}`.
    pub fn body(&self) -> Value {
        json!({ "error": self.error, "error_description": self.description })
    }
}

/// The access tokens of this deployment: granted here, honoured by any replica.
pub struct Tokens {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Tokens already found in the store, by hash: a token never changes once granted (only
    /// its secret's place in the access policy, which is checked at every use).
    known: Mutex<HashMap<[u8; 32], AccessToken>>,
}

impl Tokens {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Tokens { store, clock, known: Mutex::default() }
    }

    /// The token endpoint (RFC 6749 §4.4.2–4.4.3): a new access token for a client whose name
    /// and secret are the access policy's, recorded before it is handed out (no refresh token:
    /// §4.4.3).
    pub async fn grant(&self, policy: &AccessPolicy, req: TokenRequest) -> Result<Value, OAuthError> {
        match req.grant_type.as_deref() {
            Some("client_credentials") => {}
            Some(other) => {
                return Err(OAuthError {
                    status: 400,
                    error: "unsupported_grant_type",
                    description: format!("grant_type '{other}': only client_credentials is offered"),
                })
            }
            None => return Err(OAuthError::invalid_request("missing grant_type")),
        }
        if req.scope.as_deref().is_some_and(|s| s.split(' ').any(|s| s != SCOPE)) {
            return Err(OAuthError {
                status: 400,
                error: "invalid_scope",
                description: format!("a client credentials token has scope '{SCOPE}'"),
            });
        }
        let (Some(client_id), Some(secret)) = (req.client_id.as_deref(), req.client_secret.as_deref()) else {
            return Err(OAuthError {
                status: 401,
                error: "invalid_client",
                description: "authenticate with client_id and client_secret, or HTTP Basic".into(),
            });
        };
        let (client, secret_sha256) = policy.client_of_secret(client_id, secret).map_err(|e| {
            tracing::warn!(audit = true, client = client_id, outcome = "refused", reason = %e, "OAuth 2.0 token refused");
            OAuthError { status: 401, error: "invalid_client", description: e.to_string() }
        })?;
        let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let now = self.clock.unix_secs() as i64;
        let record = AccessToken {
            token_sha256: hex::encode(sha2::Sha256::digest(token.as_bytes())),
            client: client.name().to_owned(),
            secret_sha256: hex::encode(secret_sha256),
            expires_at: now + ACCESS_TOKEN_LIFETIME.as_secs() as i64,
        };
        if let Err(e) = self.store.record_access_token(&record, now).await {
            if matches!(e, crate::store::StoreError::ReadOnly) {
                return Err(OAuthError {
                    status: 503,
                    error: "temporarily_unavailable",
                    description: crate::store::READ_ONLY.into(),
                });
            }
            let incident = Incident::record("OAuth 2.0: recording an access token", &e);
            return Err(OAuthError {
                status: 500,
                error: "server_error",
                description: format!("internal error, incident {incident}"),
            });
        }
        tracing::info!(
            audit = true,
            client = client.name(),
            expires_at = record.expires_at,
            "OAuth 2.0 access token granted"
        );
        Ok(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_LIFETIME.as_secs(),
            "scope": SCOPE,
        }))
    }

    /// The client whose unexpired access token `token` is, allowed to call `path` by the
    /// access policy in force, while the secret the token was granted for is still its own.
    pub async fn authorize(&self, policy: &AccessPolicy, token: &str, path: &str) -> Result<Arc<Client>, AccessError> {
        let hash: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = self.clock.unix_secs() as i64;
        let remembered = self.known.lock().unwrap_or_else(|p| p.into_inner()).get(&hash).cloned();
        let found = match remembered {
            Some(t) => Some(t),
            None => {
                let found = self.store.access_token(&hex::encode(hash), now).await.map_err(|e| {
                    let incident = Incident::record("OAuth 2.0: reading an access token", &e);
                    AccessError::Unavailable(format!("access tokens cannot be checked now (incident {incident})"))
                })?;
                if let Some(t) = &found {
                    let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
                    if known.len() >= REMEMBERED {
                        known.retain(|_, t| t.expires_at > now);
                    }
                    if known.len() < REMEMBERED {
                        known.insert(hash, t.clone());
                    }
                }
                found
            }
        };
        let Some(t) = found.filter(|t| t.expires_at > now) else {
            return Err(AccessError::Unauthenticated(
                "the bearer token is neither one of the access policy nor an unexpired access token".into(),
            ));
        };
        let secret = hex::decode(&t.secret_sha256).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).unwrap_or_default();
        policy.authorize_secret_holder(&t.client, &secret, path)
    }
}
