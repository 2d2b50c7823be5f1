//! A replica on a read-only standby database: the RPCs that write the store are refused with
//! UNAVAILABLE and [`READ_ONLY`] before any work is done (no key is used for what could not be
//! recorded), after access control has named the client; everything else is served.

use crate::store::READ_ONLY;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::Status;

/// The RPCs that record something (a certificate, a revocation, a time-stamp, a signature).
const WRITING_RPCS: &[&str] = &[
    "/trust.v1.CertificateAuthority/IssueCertificate",
    "/trust.v1.CertificateAuthority/RevokeCertificate",
    "/trust.v1.CertificateAuthority/CreateCredential",
    "/trust.v1.CertificateAuthority/DisableCredential",
    "/trust.v1.TimeStamping/Timestamp",
    "/trust.v1.Signing/Sign",
    "/trust.v1.Signing/SignStream",
];

/// Whether a call of `path` writes the store.
pub fn writes(path: &str) -> bool {
    WRITING_RPCS.contains(&path)
}

/// Puts [`ReadOnly`] in front of a service; refusing nothing unless `standby`.
#[derive(Clone, Copy)]
pub struct ReadOnlyLayer {
    standby: bool,
}

impl ReadOnlyLayer {
    pub fn new(standby: bool) -> Self {
        ReadOnlyLayer { standby }
    }
}

impl<S> tower::Layer<S> for ReadOnlyLayer {
    type Service = ReadOnly<S>;
    fn layer(&self, inner: S) -> ReadOnly<S> {
        ReadOnly { inner, standby: self.standby }
    }
}

/// Refuses writing RPCs on a standby; passes everything else to `S`.
#[derive(Clone)]
pub struct ReadOnly<S> {
    inner: S,
    standby: bool,
}

impl<S, B, RB> tower::Service<::http::Request<B>> for ReadOnly<S>
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

    fn call(&mut self, req: ::http::Request<B>) -> Self::Future {
        if self.standby && writes(req.uri().path()) {
            return Box::pin(std::future::ready(Ok(Status::unavailable(READ_ONLY).into_http())));
        }
        Box::pin(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_writing_rpc_is_an_rpc_of_the_access_policy() {
        for rpc in WRITING_RPCS {
            let name = rpc.trim_start_matches("/trust.v1.");
            assert!(crate::access::RPCS.contains(&name), "{rpc}");
        }
        assert!(!writes("/trust.v1.CertificateAuthority/GetCertificate"));
        assert!(!writes("/trust.v1.Signing/Verify"));
    }
}
