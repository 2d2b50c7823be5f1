//! The access check in front of every gRPC service: the client named by the connection's
//! verified certificate ([`crate::tls::Peer`]), allowed to call the RPC by the access policy, or
//! refused (UNAUTHENTICATED, PERMISSION_DENIED) with an audit record. A tower layer rather than a
//! tonic interceptor, because the decision needs the RPC's path, which interceptors do not see.

use crate::access::{is_recorded, AccessError, AccessPolicy, Client, PolicyInForce};
use crate::tls::Peer;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::{Request, Status};

/// What a handler tells the audit record of its call: the key it used (named as the log's
/// `ceremony_event` entries name roles: `issuing`, `tsa`, `signing:<policy>`) and what it made
/// or changed. Put in the response's extensions ([`with_audit`]).
#[derive(Clone, Debug)]
pub struct AuditTarget {
    pub key: Option<String>,
    pub target: String,
}

/// `reply` with `key` and `target` for the audit record.
pub fn with_audit<T>(reply: T, key: Option<String>, target: String) -> tonic::Response<T> {
    let mut r = tonic::Response::new(reply);
    r.extensions_mut().insert(AuditTarget { key, target });
    r
}

/// Puts [`AccessCheck`] in front of a service.
#[derive(Clone)]
pub struct AccessLayer {
    policy: Arc<PolicyInForce>,
}

impl AccessLayer {
    pub fn new(policy: Arc<PolicyInForce>) -> Self {
        AccessLayer { policy }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessCheck<S>;
    fn layer(&self, inner: S) -> AccessCheck<S> {
        AccessCheck { inner, policy: self.policy.clone() }
    }
}

/// Authorizes each request before `S` sees it; the authorized [`Client`] travels in the
/// request's extensions, for [`client`].
#[derive(Clone)]
pub struct AccessCheck<S> {
    inner: S,
    policy: Arc<PolicyInForce>,
}

/// The client of a TLS connection's verified certificate (UNAUTHENTICATED when revoked or
/// unknown), allowed to call `path`; also the HTTPS TSA's check of a client certificate.
pub(crate) async fn decide(policy: &AccessPolicy, peer: Option<&Peer>, path: &str) -> Result<Arc<Client>, AccessError> {
    let Some(peer) = peer else {
        return Err(AccessError::Unauthenticated("not a TLS connection".into()));
    };
    let certificate = peer.certificate.as_deref();
    if let Some(reason) = match certificate {
        Some(der) => peer.status.refusal(der).await,
        None => None,
    } {
        return Err(AccessError::Unauthenticated(reason));
    }
    policy.authorize_identities(peer.identities.as_ref(), path)
}

impl<S, B, RB> tower::Service<::http::Request<B>> for AccessCheck<S>
where
    S: tower::Service<::http::Request<B>, Response = ::http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<::http::Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ::http::Request<B>) -> <Self as tower::Service<::http::Request<B>>>::Future {
        let policy = self.policy.current();
        // The service that was made ready is the one to call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let rpc = req.uri().path().to_owned();
            let peer = req.extensions().get::<Peer>().cloned();
            let client = match decide(&policy, peer.as_ref(), &rpc).await {
                Ok(client) => client,
                Err(e) => {
                    tracing::warn!(
                        audit = true,
                        rpc,
                        remote = ?peer.and_then(|p| p.remote),
                        outcome = "refused",
                        reason = %e,
                        "access refused"
                    );
                    return Ok(Status::from(e).into_http());
                }
            };
            req.extensions_mut().insert(client.clone());
            let response = inner.call(req).await?;
            // A failed unary call answers with its status in the headers (trailers-only); a
            // successful one with none there.
            let status = tonic::Status::from_header_map(response.headers());
            match &status {
                // What a handler refused for the client's rights (a name outside its
                // constraints, another client's certificate, a signing policy not for it) is
                // recorded as every refusal is.
                Some(s) if s.code() == tonic::Code::PermissionDenied => tracing::warn!(
                    audit = true,
                    client = client.name(),
                    rpc,
                    outcome = "refused",
                    reason = s.message(),
                    "access refused"
                ),
                _ if is_recorded(&rpc) => {
                    let audit = response.extensions().get::<AuditTarget>();
                    tracing::info!(
                        audit = true,
                        client = client.name(),
                        rpc,
                        key = audit.and_then(|a| a.key.as_deref()),
                        target = audit.map(|a| a.target.as_str()),
                        outcome = status.as_ref().map_or("ok".to_owned(), |s| format!("{:?}", s.code())),
                        "operation"
                    )
                }
                _ => {}
            }
            Ok(response)
        })
    }
}

/// The client [`AccessCheck`] authorized for this request.
pub fn client<T>(req: &Request<T>) -> Result<Arc<Client>, Status> {
    req.extensions().get::<Arc<Client>>().cloned().ok_or_else(|| Status::unauthenticated("no authenticated client"))
}
