//! TLS for the gRPC listener (rustls, RFC 8446): the server key in the HSM ([`key`]), its
//! certificate from trustd's own CA and renewed before it expires ([`certificate`]), client
//! certificates required and verified against the client CAs, and a client whose certificate
//! trustd's store knows as revoked marked refused on its connection.

pub mod certificate;
pub mod key;

use crate::ca_certificates::CaCertificates;
use crate::config::LimitsSection;
use crate::connections::{self, Activity, ConnectionLimit, IdleClose, Slot};
use crate::revocation::{status_of_issued, Changes, Status};
use crate::serial::Serial;
use crate::store::Store;
use crate::throttle::EverySecond;
use der::Decode;
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// A TLS set-up that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS: {0}")]
    Config(String),
    #[error("TLS server certificate: {0}")]
    Certificate(String),
}

/// The server's certificate chain and key, swapped in place when the certificate is renewed:
/// new handshakes get the new one, open connections are not touched.
#[derive(Debug)]
pub struct ServerCertificate(RwLock<Arc<CertifiedKey>>);

impl ServerCertificate {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(ServerCertificate(RwLock::new(key)))
    }

    pub fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Which listener a TLS configuration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// gRPC: HTTP/2, a client certificate required.
    Grpc,
    /// HTTPS: HTTP/1.1, a client certificate optional (a client may name itself with a bearer
    /// token instead, or, where the route is public, not at all).
    Https,
}

/// A rustls server configuration for `listener`: TLS 1.2 and 1.3 with ring's safe defaults, and
/// client certificates chaining to a generation of the issuing CA in `cas` (one added by a
/// rollover from the next handshake on).
pub fn server_config(
    certificate: Arc<ServerCertificate>,
    cas: CaCertificates,
    listener: Listener,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = ClientCas::new(cas, listener, provider.clone())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![match listener {
        Listener::Grpc => b"h2".to_vec(),
        Listener::Https => b"http/1.1".to_vec(),
    }];
    Ok(Arc::new(config))
}

/// rustls' WebPKI client verifier over the issuing CA's generations as they are now: made again
/// when a generation is added. rustls takes one verifier per configuration, so this one
/// delegates to the current.
struct ClientCas {
    cas: CaCertificates,
    listener: Listener,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// The verifier, and how many generations it trusts.
    current: RwLock<(usize, Arc<dyn ClientCertVerifier>)>,
}

impl std::fmt::Debug for ClientCas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCas").field("listener", &self.listener).finish_non_exhaustive()
    }
}

impl ClientCas {
    fn new(
        cas: CaCertificates,
        listener: Listener,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let built = Self::build(&cas, listener, &provider)?;
        Ok(ClientCas { cas, listener, provider, current: RwLock::new(built) })
    }

    fn build(
        cas: &CaCertificates,
        listener: Listener,
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<(usize, Arc<dyn ClientCertVerifier>), TlsError> {
        let issuing = cas.issuing();
        let mut roots = rustls::RootCertStore::empty();
        for ca in &issuing {
            roots.add(CertificateDer::from(ca.der.clone())).map_err(|e| TlsError::Config(format!("client CA: {e}")))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        let verifier = match listener {
            Listener::Grpc => verifier,
            Listener::Https => verifier.allow_unauthenticated(),
        };
        let verifier = verifier.build().map_err(|e| TlsError::Config(format!("client certificate verifier: {e}")))?;
        Ok((issuing.len(), verifier))
    }

    /// The verifier for the generations there are now.
    fn verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        let generations = self.cas.issuing().len();
        {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            if current.0 == generations {
                return Ok(current.1.clone());
            }
        }
        let built =
            Self::build(&self.cas, self.listener, &self.provider).map_err(|e| rustls::Error::General(e.to_string()))?;
        let verifier = built.1.clone();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = built;
        Ok(verifier)
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }
}

impl ClientCertVerifier for ClientCas {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.listener == Listener::Grpc
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        // No hints (RFC 8446 §4.2.4 makes them optional; RFC 5246 §7.4.4 lets a client send
        // any certificate then): they would borrow from a verifier a rollover replaces, and
        // trustd's clients hold one certificate each.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.verifier()?.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// Who is at the other end of a connection, as the API's access check reads it.
#[derive(Clone, Debug)]
pub struct Peer {
    pub remote: Option<SocketAddr>,
    /// The verified client certificate (DER), if any.
    pub certificate: Option<Arc<[u8]>>,
    /// The identities `certificate` names, read once at the handshake.
    pub identities: Option<crate::access::CertificateIdentities>,
    /// Whether the client may be served although its certificate verified (not revoked), as
    /// last looked up for this connection.
    pub status: Arc<ClientStatus>,
    /// The connection's requests in progress, which the API counts and its idle timeout reads.
    pub activity: Arc<Activity>,
}

/// A connection's client certificate status, looked up at the handshake and again for a request
/// once the CA has revoked anything since: a revoked client is refused on the connection it has
/// open, not only on its next one.
pub struct ClientStatus {
    store: Arc<dyn Store>,
    changes: Changes,
    /// The count of revocation changes at the last look, and its answer.
    last: RwLock<(u64, Option<String>)>,
}

impl std::fmt::Debug for ClientStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStatus").field("refused", &self.last_known()).finish_non_exhaustive()
    }
}

impl ClientStatus {
    async fn looked_up(store: Arc<dyn Store>, changes: Changes, der: Option<&[u8]>) -> Arc<Self> {
        let count = changes.now();
        let refused = match der {
            Some(der) => refusal(store.as_ref(), der).await,
            None => None,
        };
        Arc::new(ClientStatus { store, changes, last: RwLock::new((count, refused)) })
    }

    /// The answer of the last look, without looking again.
    pub fn last_known(&self) -> Option<String> {
        self.last.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    /// Why the client certificate `der` may not be served now, if it may not: the last answer, or
    /// a new look when the CA has revoked anything since.
    pub async fn refusal(&self, der: &[u8]) -> Option<String> {
        let count = self.changes.now();
        if self.last.read().unwrap_or_else(|p| p.into_inner()).0 == count {
            return self.last_known();
        }
        let refused = refusal(self.store.as_ref(), der).await;
        *self.last.write().unwrap_or_else(|p| p.into_inner()) = (count, refused.clone());
        refused
    }
}

/// A TLS connection with what is known of its client.
pub struct ClientConnection {
    stream: TlsStream<TcpStream>,
    peer: Peer,
    idle: IdleClose,
    _slot: Slot,
}

impl ClientConnection {
    /// Who is at the other end.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }
}

impl tonic::transport::server::Connected for ClientConnection {
    type ConnectInfo = Peer;
    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for ClientConnection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        // Idle past the timeout: end-of-file, and the server closes the connection.
        if self.idle.poll_expired(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A handshake that has not finished by then is dropped (a client that connects and sends
/// nothing must not hold a task for ever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts TCP connections on `listener` within `limits` ([`crate::connections`]: at most
/// `max_connections`, those in their handshake included; closed when idle), completes each TLS
/// handshake in a task of its own (a slow client delays nobody else), looks the client
/// certificate up in `store` (again whenever `changes` has moved, [`ClientStatus`]), and yields
/// the connections for tonic's `serve_with_incoming` and the HTTPS server.
pub fn incoming(
    name: &'static str,
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    limits: &LimitsSection,
    store: Arc<dyn Store>,
    changes: Changes,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<ClientConnection>> {
    let open = ConnectionLimit::new(name, limits.max_connections, limits.max_connections_per_address);
    let (keepalive, idle_timeout) = (limits.keepalive, limits.idle_timeout);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    // A flood of connections that never finish a handshake must not flood the log as well.
    let failed = Arc::new((EverySecond::default(), EverySecond::default()));
    tokio::spawn(async move {
        // Until the server stops taking connections (it dropped the receiver).
        while !tx.is_closed() {
            let (tcp, remote) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, rather than spin.
                    tracing::warn!(error = %e, "TLS listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Past the limit the connection is closed before any TLS work is spent on it.
            let Some(slot) = open.admit(remote).await else { continue };
            connections::tune(&tcp, keepalive);
            let (acceptor, tx, store, changes) = (acceptor.clone(), tx.clone(), store.clone(), changes.clone());
            let failed = failed.clone();
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        if let Some(count) = failed.0.tick() {
                            tracing::warn!(%remote, error = %e, count, audit = true, "TLS handshake refused");
                        }
                        return;
                    }
                    Err(_) => {
                        if let Some(count) = failed.1.tick() {
                            tracing::warn!(%remote, count, "TLS handshake timed out");
                        }
                        return;
                    }
                };
                let certificate: Option<Arc<[u8]>> =
                    stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| Arc::from(c.as_ref()));
                let status = ClientStatus::looked_up(store, changes, certificate.as_deref()).await;
                let activity = Activity::new();
                let identities = certificate.as_deref().map(crate::access::CertificateIdentities::of);
                let peer = Peer { remote: Some(remote), certificate, identities, status, activity: activity.clone() };
                let idle = IdleClose::new(activity, idle_timeout);
                let _ = tx.send(Ok(ClientConnection { stream, peer, idle, _slot: slot })).await;
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Why a verified client certificate may not be served: revoked in trustd's store, or not known
/// there at all (a certificate the CA never recorded is not one it issued). The client CAs are
/// the issuing CA's generations, so every client certificate is one the store knows.
async fn refusal(store: &dyn Store, der: &[u8]) -> Option<String> {
    let unreadable = || Some("the client certificate's serial number is unreadable".to_owned());
    let Ok(cert) = x509_cert::Certificate::from_der(der) else { return unreadable() };
    let Some(serial) = Serial::from_bytes(cert.tbs_certificate.serial_number.as_bytes()) else { return unreadable() };
    match status_of_issued(store, &serial).await {
        Ok(Status::Good) => None,
        Ok(Status::Revoked(_)) => Some(format!("client certificate {serial} is revoked")),
        Ok(Status::Unknown) => Some(format!("client certificate {serial} is not one this CA issued")),
        Err(e) => {
            tracing::error!(error = %e, %serial, "client certificate status unavailable");
            Some("the client certificate's status could not be checked".into())
        }
    }
}

#[cfg(test)]
mod tests;
