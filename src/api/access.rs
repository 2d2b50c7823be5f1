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

fn decide<B>(policy: &AccessPolicy, req: &::http::Request<B>) -> Result<Arc<Client>, AccessError> {
    let Some(peer) = req.extensions().get::<Peer>() else {
        return Err(AccessError::Unauthenticated("not a TLS connection".into()));
    };
    if let Some(reason) = &peer.refused {
        return Err(AccessError::Unauthenticated(reason.clone()));
    }
    policy.authorize(peer.certificate.as_deref(), req.uri().path())
}

impl<S, B, RB> tower::Service<::http::Request<B>> for AccessCheck<S>
where
    S: tower::Service<::http::Request<B>, Response = ::http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<::http::Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ::http::Request<B>) -> <Self as tower::Service<::http::Request<B>>>::Future {
        match decide(&self.policy.current(), &req) {
            Ok(client) => {
                let rpc = req.uri().path().to_owned();
                req.extensions_mut().insert(client.clone());
                let call = self.inner.call(req);
                Box::pin(async move {
                    let response = call.await?;
                    // A failed unary call answers with its status in the headers (trailers-only);
                    // a successful one with none there.
                    let status = tonic::Status::from_header_map(response.headers());
                    match &status {
                        // What a handler refused for the client's rights (a name outside its
                        // constraints, another client's certificate, a signing policy not for
                        // it) is recorded as every refusal is.
                        Some(s) if s.code() == tonic::Code::PermissionDenied => tracing::warn!(
                            audit = true,
                            client = client.name(),
                            rpc,
                            outcome = "refused",
                            reason = s.message(),
                            "access refused"
                        ),
                        _ if is_recorded(&rpc) => tracing::info!(
                            audit = true,
                            client = client.name(),
                            rpc,
                            outcome = status.as_ref().map_or("ok".to_owned(), |s| format!("{:?}", s.code())),
                            "operation"
                        ),
                        _ => {}
                    }
                    Ok(response)
                })
            }
            Err(e) => {
                let remote = req.extensions().get::<Peer>().and_then(|p| p.remote);
                tracing::warn!(
                    audit = true,
                    rpc = req.uri().path(),
                    remote = ?remote,
                    outcome = "refused",
                    reason = %e,
                    "access refused"
                );
                let response = Status::from(e).into_http();
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }
}

/// The client [`AccessCheck`] authorized for this request.
pub fn client<T>(req: &Request<T>) -> Result<Arc<Client>, Status> {
    req.extensions().get::<Arc<Client>>().cloned().ok_or_else(|| Status::unauthenticated("no authenticated client"))
}
