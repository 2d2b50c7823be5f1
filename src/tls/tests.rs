//! A real TLS listener over software keys: the server certificate from the CA, client
//! certificates required, revocation seen on the next connection.

use super::*;
use crate::ca::csr::San;
use crate::ca::{CaId, IssueRequest, NameScope, RevokeScope};
use crate::clock::FixedClock;
use crate::keys::software::SoftwareKey;
use crate::revocation::Reason;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap()
}

/// A client's own key (in software: it is not a key of the service) and its PEM.
fn client_key(seed: u8) -> (p256::ecdsa::SigningKey, String) {
    use p256::pkcs8::EncodePrivateKey;
    let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    let der = key.to_pkcs8_der().unwrap();
    (key, pem("PRIVATE KEY", der.as_bytes()))
}

async fn check(port: u16, root_pem: &str, identity: Option<(&str, &str)>) -> Result<(), tonic::Status> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(root_pem)).domain_name("trustd.test");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Channel::from_shared(format!("https://127.0.0.1:{port}")).unwrap().tls_config(tls).unwrap();
    let channel = channel.connect().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_need_a_certificate_from_the_ca_that_is_not_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let clock = Arc::new(FixedClock::at(now));
    let (ca, store, _) = crate::testing::certificate_authority(&dir, Arc::new(SoftwareKey::p256(12)), clock).await;
    let server_key: Arc<dyn crate::keys::SigningKey> = Arc::new(SoftwareKey::p256(21));
    let names = [San::Dns("trustd.test".into()), San::Ip("127.0.0.1".parse().unwrap())];
    let issued = certificate::issue(&ca, server_key, &names).await.unwrap();
    assert!(issued.renew_at > now.as_secs());
    let config = server_config(ServerCertificate::new(issued.key), ca.certificates(), Listener::Grpc).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // What the API's access check will do: read the Peer that the connection carries.
    let (_, health) = tonic_health::server::health_reporter();
    let health = tonic::service::interceptor::InterceptedService::new(health, |req: tonic::Request<()>| {
        let peer = req.extensions().get::<Peer>().cloned();
        match peer.map(|p| (p.certificate.is_some(), p.status.last_known())) {
            Some((true, None)) => Ok(req),
            Some((_, Some(why))) => Err(tonic::Status::unauthenticated(why)),
            _ => Err(tonic::Status::unauthenticated("no client certificate")),
        }
    });
    let server = tonic::transport::Server::builder().add_service(health).serve_with_incoming(incoming(
        "grpc",
        listener,
        config,
        &crate::config::LimitsSection::default(),
        store.clone(),
        ca.revocation_changes(),
    ));
    tokio::spawn(server);

    let root_pem = pem("CERTIFICATE", ca.chain(CaId::Root).unwrap()[0].as_slice());
    let (key, key_pem) = client_key(31);
    let client = ca
        .issue(IssueRequest {
            profile: "service-client".into(),
            csr: crate::credentials::client_csr(&key, "portal", "spiffe://trustd/portal").unwrap(),
            validity: None,
            requester: "operator".into(),
            scope: NameScope::Any,
        })
        .await
        .unwrap();
    let chain_pem =
        pem("CERTIFICATE", &client.cert_der) + &pem("CERTIFICATE", ca.chain(CaId::ISSUING).unwrap()[0].as_slice());
    check(port, &root_pem, Some((&chain_pem, &key_pem))).await.unwrap();

    // No certificate: the handshake fails (with TLS 1.3 the client learns it on its first
    // request).
    assert!(check(port, &root_pem, None).await.is_err());

    // A certificate from another CA (self-signed here).
    let other_pair = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(vec!["portal".to_owned()]).unwrap();
    let other_cert = other.self_signed(&other_pair).unwrap().pem();
    let other_pem = other_pair.serialize_pem();
    assert!(check(port, &root_pem, Some((&other_cert, &other_pem))).await.is_err());

    // Revoked: refused on the next connection, with the reason.
    ca.revoke(&client.serial.to_string(), Reason::KeyCompromise, None, "operator", RevokeScope::Any).await.unwrap();
    let e = check(port, &root_pem, Some((&chain_pem, &key_pem))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    assert!(e.message().contains("revoked"), "{e}");
}
