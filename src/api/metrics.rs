//! Every request counted into [`crate::metrics`] where it enters: a tower layer outside all
//! others in front of the gRPC services (so refusals by access control and limits count too),
//! and an axum middleware around every HTTP route; and `GET /metrics` itself.

use crate::metrics::{global, RequestLabels};
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Puts [`Counted`] in front of the gRPC services.
#[derive(Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted { inner }
    }
}

/// Counts each gRPC request by method and status code.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
}

/// The gRPC status codes' names (gRPC `statuscodes.md`), as tonic spells them, by number.
const CODES: [&str; 17] = [
    "Ok",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The gRPC status of a response whose headers are all there is of it (an error, answered
/// trailers-only), or OK: a successful unary answer's status travels in its trailers.
fn grpc_code(headers: &http::HeaderMap) -> &'static str {
    let code = headers.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    code.map_or(CODES[0], |c| CODES.get(c).copied().unwrap_or("Unknown"))
}

/// The label of a gRPC path: trustd's own RPCs by their static name, the standard services'
/// as sent, anything else (a path nobody serves, which any client may send) as `other`.
fn grpc_method(path: &str) -> Cow<'static, str> {
    if let Some(&rpc) = path.strip_prefix("/trust.v1.").and_then(|p| crate::access::RPCS.iter().find(|r| **r == p)) {
        return Cow::Borrowed(rpc);
    }
    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
        return Cow::Owned(path.to_owned());
    }
    Cow::Borrowed("other")
}

impl<S, B, RB> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let method = grpc_method(req.uri().path());
        let start = Instant::now();
        Box::pin(async move {
            let response = inner.call(req).await?;
            let code = grpc_code(response.headers());
            global().request(RequestLabels { api: "grpc", method, code: Cow::Borrowed(code) }, start.elapsed());
            Ok(response)
        })
    }
}

/// Counts each HTTP request by route pattern and status.
pub async fn http_metrics(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("other", |p| p.as_str()).to_owned();
    let method = Cow::Owned(format!("{} {route}", req.method()));
    let start = Instant::now();
    let response = next.run(req).await;
    let code = Cow::Owned(response.status().as_u16().to_string());
    global().request(RequestLabels { api: "http", method, code }, start.elapsed());
    response
}
