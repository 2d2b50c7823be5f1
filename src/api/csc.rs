//! `POST /csc/v1/{method}` and `/csc/v2/{method}` over HTTPS: the CSC API (`crate::csc`) for a
//! client authenticated as every HTTPS client is (its certificate, or a bearer token: static, or
//! an OAuth 2.0 access token from `oauth2/token`) and allowed `Signing/Sign` by the access
//! policy; answers in JSON, errors in the API's own format (CSC API v1.0.4.0 §10.1).

use super::http::{https_client, refused, HttpState};
use crate::access::AccessError;
use crate::config::HttpAccess;
use crate::csc::{Caller, CscError, Version};
use crate::oauth2::{OAuthError, TokenRequest};
use crate::store::Role;
use crate::tls::Peer;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

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

/// One CSC call. `info` is for anyone (§11.1), and `oauth2/token` for a client with its secret;
/// every other method for an authenticated client.
pub async fn call(
    State(s): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path((version, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(version) = Version::from_segment(&version) else {
        let e = CscError {
            status: 404,
            error: "invalid_request",
            description: "the CSC API is at /csc/v1/ and /csc/v2/".into(),
        };
        return answer(Err(e));
    };
    match method.as_str() {
        "info" => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            let base = format!("https://{host}/csc/{}/", version.segment());
            return answer(Ok(s.csc.info(version, &base)));
        }
        "oauth2/token" => return token(&s, &headers, &body).await,
        _ => {}
    }
    let route = format!("POST /csc/{}/{method}", version.segment());
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
        "credentials/list" => s.csc.list(&caller, version, &body).await,
        "credentials/info" => s.csc.credential_info(&caller, version, &body).await,
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

/// `oauth2/token` (RFC 6749 §4.4.2, CSC API §8.3.3): a form-encoded client credentials grant,
/// the client authenticated in the body or with HTTP Basic (§2.3.1, not both); the answer is
/// never cached (§5.1).
async fn token(s: &HttpState, headers: &HeaderMap, body: &[u8]) -> Response {
    let reply = |status: StatusCode, body: &serde_json::Value, basic: bool| {
        let mut response = json(status, body);
        let h = response.headers_mut();
        h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
        if basic && status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static(r#"Basic realm="trustd""#));
        }
        response
    };
    let request = token_request(headers, body);
    let basic = request.as_ref().is_ok_and(|r| r.basic);
    let result = match request {
        Ok(request) => s.tokens.grant(&s.access.current(), request).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(granted) => reply(StatusCode::OK, &granted, basic),
        Err(e) => reply(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST), &e.body(), basic),
    }
}

/// The token request's parameters: each once (RFC 6749 §3.2: one without a value is left out),
/// and the client's credentials from the body or the Authorization header.
fn token_request(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, OAuthError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form && !body.is_empty() {
        return Err(OAuthError::invalid_request(
            "the token request is application/x-www-form-urlencoded (RFC 6749 §4.4.2)",
        ));
    }
    let mut req = TokenRequest::default();
    for (name, value) in form_urlencoded::parse(body) {
        let slot = match name.as_ref() {
            "grant_type" => &mut req.grant_type,
            "client_id" => &mut req.client_id,
            "client_secret" => &mut req.client_secret,
            "scope" => &mut req.scope,
            _ => continue,
        };
        if slot.is_some() {
            return Err(OAuthError::invalid_request(format!("{name} is given more than once")));
        }
        *slot = Some(value.into_owned()).filter(|v| !v.is_empty());
    }
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let (id, secret) = basic_credentials(value).ok_or_else(|| OAuthError {
            status: 401,
            error: "invalid_client",
            description: "the Authorization header must be 'Basic' with the client ID and secret".into(),
        })?;
        if req.client_secret.is_some() {
            return Err(OAuthError::invalid_request("authenticate with HTTP Basic or client_secret, not both"));
        }
        if req.client_id.as_deref().is_some_and(|given| given != id) {
            return Err(OAuthError::invalid_request("client_id is not the client HTTP Basic names"));
        }
        (req.client_id, req.client_secret, req.basic) = (Some(id), Some(secret), true);
    }
    Ok(req)
}

/// The client ID and secret of `Authorization: Basic` (RFC 7617), each form-encoded as RFC 6749
/// §2.3.1 asks.
fn basic_credentials(value: &header::HeaderValue) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = value.to_str().ok()?.strip_prefix("Basic ")?.trim();
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let decode = |part: &str| -> Option<String> {
        let pair = format!("v={part}");
        let mut pairs = form_urlencoded::parse(pair.as_bytes()).into_owned();
        match (pairs.next(), pairs.next()) {
            (Some((_, v)), None) if !part.contains(['&', '=']) => Some(v),
            _ => None,
        }
    };
    Some((decode(id)?, decode(secret)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn basic(user_pass: &str) -> header::HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_pass);
        header::HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    #[test]
    fn basic_credentials_are_form_decoded_and_malformed_ones_refused() {
        assert_eq!(basic_credentials(&basic("portal:s3cret")), Some(("portal".into(), "s3cret".into())));
        // RFC 6749 §2.3.1: each form-encoded before Basic; a ':' in the secret is its own.
        assert_eq!(basic_credentials(&basic("a%20b:x%3Ay+z:w")), Some(("a b".into(), "x:y z:w".into())));
        assert_eq!(basic_credentials(&basic("no-colon")), None);
        assert_eq!(basic_credentials(&basic("a&b=c:x")), None);
        assert_eq!(basic_credentials(&header::HeaderValue::from_static("Bearer abc")), None);
        assert_eq!(basic_credentials(&header::HeaderValue::from_static("Basic %%%")), None);
    }

    #[test]
    fn a_token_request_takes_each_parameter_once_from_a_form() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/x-www-form-urlencoded"));
        let r =
            token_request(&headers, b"grant_type=client_credentials&client_id=portal&client_secret=s&scope=").unwrap();
        assert_eq!(r.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(
            (r.client_id.as_deref(), r.client_secret.as_deref(), r.scope, r.basic),
            (Some("portal"), Some("s"), None, false)
        );
        let e = token_request(&headers, b"grant_type=a&grant_type=b").unwrap_err();
        assert!(e.description.contains("more than once"), "{e:?}");
        headers.insert(header::AUTHORIZATION, basic("portal:s"));
        let r = token_request(&headers, b"grant_type=client_credentials").unwrap();
        assert_eq!((r.client_id.as_deref(), r.client_secret.as_deref(), r.basic), (Some("portal"), Some("s"), true));
        let e = token_request(&headers, b"client_id=web").unwrap_err();
        assert!(e.description.contains("not the client HTTP Basic names"), "{e:?}");
        headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        assert!(token_request(&headers, b"{}").unwrap_err().description.contains("x-www-form-urlencoded"));
    }
}
