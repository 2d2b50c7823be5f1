//! The HTTP/1.1 server under both HTTP routers: hyper, as `axum::serve` uses it, with what
//! `axum::serve` cannot set. A connection that has not sent a request's headers within
//! `[limits] header_timeout` of connecting or of its last reply is closed (slow and idle
//! clients, slowloris); plain HTTP sheds connections past `max_connections` with a 503 and
//! `Retry-After`; a stop lets requests in progress finish.

use crate::config::LimitsSection;
use crate::connections::{self, ConnectionLimit};
use crate::tls::ClientConnection;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_stream::StreamExt;
use tower::ServiceExt;

/// What a shed plain-HTTP connection is told before it is closed.
const SHED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
Content-Type: text/plain\r\nContent-Length: 44\r\n\r\ntoo many connections to this server; retry\r\n";

/// Shed connections being told so at once; past this many a flood's connections are just
/// closed (the 503 is a courtesy, not worth a task per connection of a flood).
const MAX_SHEDDING: usize = 64;

/// Serves `app` on plain-HTTP `listener` until `stop` turns true, then waits for the requests in
/// progress. Handlers see the remote address as `ConnectInfo<SocketAddr>`.
pub async fn serve_plain(listener: TcpListener, app: Router, limits: &LimitsSection, mut stop: watch::Receiver<bool>) {
    let open = ConnectionLimit::new("http", limits.max_connections, limits.max_connections_per_address);
    let shedding = Arc::new(Semaphore::new(MAX_SHEDDING));
    let (done, connections) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut stop) => break,
        };
        let (tcp, remote) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait, rather than spin.
                tracing::warn!(error = %e, "HTTP listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = open.admit(remote).await else {
            if let Ok(permit) = shedding.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    let _permit = permit;
                    shed(tcp).await;
                });
            }
            continue;
        };
        connections::tune(&tcp, limits.keepalive);
        let hold = (slot, connections.clone());
        serve_connection(tcp, app.clone(), ConnectInfo(remote), limits.header_timeout, stop.clone(), hold);
    }
    drop(connections);
    done.closed().await;
}

/// Serves `app` on the TLS connections of `incoming` ([`crate::tls::incoming`], which applied
/// the connection limit) until `stop` turns true, then waits for the requests in progress.
/// Handlers see the connection's [`crate::tls::Peer`] as `ConnectInfo<Peer>`.
pub async fn serve_tls(
    mut incoming: tokio_stream::wrappers::ReceiverStream<std::io::Result<ClientConnection>>,
    app: Router,
    limits: &LimitsSection,
    mut stop: watch::Receiver<bool>,
) {
    let (done, connections) = watch::channel(());
    loop {
        let next = tokio::select! {
            next = incoming.next() => next,
            _ = stopped(&mut stop) => break,
        };
        match next {
            Some(Ok(conn)) => {
                let peer = ConnectInfo(conn.peer().clone());
                serve_connection(conn, app.clone(), peer, limits.header_timeout, stop.clone(), connections.clone());
            }
            Some(Err(_)) => continue,
            // The accepting task has stopped: no connection comes any more.
            None => break,
        }
    }
    drop(connections);
    done.closed().await;
}

/// One HTTP/1.1 connection in a task of its own, each request carrying `info` in its extensions;
/// `hold` lives as long as the connection.
fn serve_connection<I, C, H>(
    io: I,
    app: Router,
    info: C,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    hold: H,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    C: Clone + Send + Sync + 'static,
    H: Send + 'static,
{
    tokio::spawn(async move {
        let _hold = hold;
        let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(info.clone());
            app.clone().oneshot(req)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            _ = stopped(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "HTTP connection ended");
        }
    });
}

/// Once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Tells a connection past the limit to come back, and closes it; a client that does not read
/// within a second is just dropped.
async fn shed(mut tcp: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(SHED_RESPONSE).await?;
        tcp.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn the_shed_response_is_well_formed() {
        let text = std::str::from_utf8(SHED_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
        assert_eq!(body.len(), length);
        assert!(head.starts_with("HTTP/1.1 503 ") && head.contains("\r\nRetry-After: 1\r\n"));
    }

    async fn serve(limits: LimitsSection) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let (_stop_tx, stop) = watch::channel(false);
        tokio::spawn(async move {
            let _keep = _stop_tx;
            serve_plain(listener, app, &limits, stop).await
        });
        addr
    }

    async fn get(tcp: &mut TcpStream) -> String {
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        read_some(tcp).await
    }

    async fn read_some(tcp: &mut TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.unwrap().unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn slow_and_idle_clients_are_closed_and_a_full_listener_sheds_with_503() {
        let limits =
            LimitsSection { max_connections: 2, header_timeout: Duration::from_millis(300), ..Default::default() };
        let addr = serve(limits).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        assert!(get(&mut first).await.starts_with("HTTP/1.1 200"));
        // A slow client: half a request line, then nothing. Closed after the header timeout.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HT").await.unwrap();
        // Both places are taken: a third connection is told 503 and closed.
        let mut third = TcpStream::connect(addr).await.unwrap();
        let shed = read_some(&mut third).await;
        assert!(shed.starts_with("HTTP/1.1 503") && shed.contains("Retry-After: 1"), "{shed}");
        // The slow one and the idle keep-alive one are closed by the header timeout.
        assert_eq!(read_some(&mut first).await, "", "idle keep-alive connection closed");
        assert!(!read_some(&mut slow).await.starts_with("HTTP/1.1 200"));
        // Their places are free again.
        let mut again = TcpStream::connect(addr).await.unwrap();
        assert!(get(&mut again).await.starts_with("HTTP/1.1 200"));
    }
}
