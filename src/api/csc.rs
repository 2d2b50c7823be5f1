//! `POST /csc/v1/{method}` over HTTPS: the CSC API (`crate::csc`) for a client authenticated as
//! every HTTPS client is (its certificate, or a bearer token) and allowed `Signing/Sign` by the
//! access policy; answers in JSON, errors in the API's own format (CSC API v1.0.4.0 §10.1).

use super::http::{https_client, refused, HttpState};
use crate::access::AccessError;
use crate::config::HttpAccess;
use crate::csc::{Caller, CscError};
use crate::store::Role;
use crate::tls::Peer;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// What the access policy calls a CSC signature: a role that may sign over gRPC may sign here,
/// under the signing policies it names; and a time-stamp.
const SIGN_RPC: &str = "/trust.v1.Signing/Sign";
const TIMESTAMP_RPC: &str = "/trust.v1.TimeStamping/Timestamp";

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn answer(result: Result<serde_json::Value, CscError>) -> Response {
    match result {
        Ok(body) => json(StatusCode::OK, &body),
        Err(e) => json(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST), &e.body()),
    }
}

/// One CSC call. `info` is for anyone (§11.1); every other method for an authenticated client.
pub async fn call(
    State(s): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == "info" {
        return answer(Ok(s.csc.info()));
    }
    let route = format!("POST /csc/v1/{method}");
    let rpc = if method == "signatures/timestamp" { TIMESTAMP_RPC } else { SIGN_RPC };
    let client = match https_client(&s, &peer, &headers, rpc, HttpAccess::Authenticated).await {
        Ok(Some(client)) => client,
        Ok(None) => return refused(&route, &peer, &headers, &AccessError::Unauthenticated("no client".into())),
        Err(e) => {
            // The access refusal's status and challenge, with the API's error object.
            let (parts, _) = refused(&route, &peer, &headers, &e).into_parts();
            let error = if parts.status == StatusCode::UNAUTHORIZED { "invalid_token" } else { "access_denied" };
            let body = serde_json::json!({ "error": error, "error_description": e.to_string() });
            let mut response = json(parts.status, &body);
            if let Some(challenge) = parts.headers.get(header::WWW_AUTHENTICATE) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge.clone());
            }
            return response;
        }
    };
    let writes = matches!(method.as_str(), "credentials/authorize" | "signatures/signHash" | "signatures/timestamp");
    if writes && s.readiness.borrow().serving == Role::Standby {
        let e = CscError { status: 503, error: "temporarily_unavailable", description: crate::store::READ_ONLY.into() };
        return answer(Err(e));
    }
    if !headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
    {
        return answer(Err(CscError {
            status: 415,
            error: "invalid_request",
            description: "Content-Type must be application/json".into(),
        }));
    }
    let may_use = |policy: &str| client.may_sign(policy).is_ok();
    let caller = Caller { name: client.name(), may_use: &may_use };
    let result = match method.as_str() {
        "credentials/list" => s.csc.list(&caller, &body).await,
        "credentials/info" => s.csc.credential_info(&caller, &body).await,
        "credentials/authorize" => s.csc.authorize(&caller, &body).await,
        "signatures/signHash" => s.csc.sign_hash(&caller, &body).await,
        "signatures/timestamp" => s.csc.timestamp(&caller, &body).await,
        _ => Err(CscError { status: 404, error: "invalid_request", description: format!("no method {method}") }),
    };
    // Failures of the service are logged with their incident reference where they happen.
    if let Some(e) = result.as_ref().err().filter(|e| e.status < 500) {
        tracing::info!(audit = true, rpc = %route, client = client.name(), outcome = "refused", status = e.status,
            reason = %e.description, "CSC request refused");
    }
    answer(result)
}
