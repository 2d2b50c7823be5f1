//! The HTTP side (axum): what relying parties and load balancers fetch with plain HTTP.
//! `GET /ca/{ca}.crt` (the URL in every certificate's AIA caIssuers, RFC 5280 §4.2.2.1, served
//! as `application/pkix-cert` per RFC 2585 §4.1), `GET /healthz`, `GET /readyz`.

use crate::ca::CertificateAuthority;
use crate::hsm::Hsm;
use crate::store::Store;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// What the HTTP handlers need.
#[derive(Clone)]
pub struct HttpState {
    pub ca: Arc<CertificateAuthority>,
    pub hsm: Hsm,
    pub store: Arc<dyn Store>,
}

/// The router for the `--http` address.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/ca/{file}", get(ca_certificate))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn ca_certificate(State(s): State<HttpState>, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".crt") else {
        return (StatusCode::NOT_FOUND, "CA certificates are at /ca/{name}.crt\n").into_response();
    };
    match s.ca.ca_certificate(name) {
        Some(der) => (
            [(header::CONTENT_TYPE, "application/pkix-cert"), (header::CACHE_CONTROL, "public, max-age=3600")],
            der.to_vec(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no CA named '{name}'\n")).into_response(),
    }
}

/// 200 when the HSM answers and the store is writable, 503 with the reason otherwise.
async fn readyz(State(s): State<HttpState>) -> Response {
    let r = crate::health::check(&s.hsm, s.store.as_ref()).await;
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let body = format!("hsm: {}\nstore: {}\n", word(r.hsm), word(r.store));
    let code = if r.ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, body).into_response()
}
