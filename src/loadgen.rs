//! A closed-loop load for measuring a running daemon (`trustctl bench`, the cargo benches):
//! each worker makes one request after another for a fixed time; the outcome counts the answers
//! and the failures and keeps every latency. Knows nothing of what a request is.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One client of the load: a connection or a stub and what it sends.
#[async_trait::async_trait]
pub trait Worker: Send + 'static {
    /// One request, answered as expected or not (why, for the report).
    async fn call(&mut self) -> Result<(), String>;
}

/// A closure as a worker.
#[async_trait::async_trait]
impl<F, Fut> Worker for F
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    async fn call(&mut self) -> Result<(), String> {
        self().await
    }
}

/// What a load measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Requests answered as expected.
    pub ops: u64,
    /// Requests that failed, and the first failure's reason.
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// The answered requests' latencies, sorted.
    pub latencies: Vec<Duration>,
}

impl Outcome {
    /// Answered requests per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The `p`-quantile (0 to 1) of the answered requests' latencies; zero when none was.
    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// The `p`-quantile (0 to 1) of `sorted` latencies; zero when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    match sorted.len() {
        0 => Duration::ZERO,
        n => sorted[((n as f64 * p) as usize).min(n - 1)],
    }
}

/// Runs every worker concurrently for `duration`, each request after the last one's answer;
/// `done` counts the requests finished so far (for a progress display). Requests in flight at
/// the end are waited for and counted. Gives the workers back for another run.
pub async fn run<W: Worker>(workers: Vec<W>, duration: Duration, done: Arc<AtomicU64>) -> (Vec<W>, Outcome) {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut w| {
            let (stop, done) = (stop.clone(), done.clone());
            tokio::spawn(async move {
                let mut out = Outcome::default();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match w.call().await {
                        Ok(()) => out.latencies.push(t.elapsed()),
                        Err(e) => {
                            out.errors += 1;
                            out.first_error.get_or_insert(e);
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                (w, out)
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut workers = Vec::with_capacity(tasks.len());
    let mut total = Outcome::default();
    for t in tasks {
        match t.await {
            Ok((w, out)) => {
                workers.push(w);
                total.errors += out.errors;
                if total.first_error.is_none() {
                    total.first_error = out.first_error;
                }
                total.latencies.extend(out.latencies);
            }
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert_with(|| format!("worker failed: {e}"));
            }
        }
    }
    total.elapsed = start.elapsed();
    total.latencies.sort_unstable();
    total.ops = total.latencies.len() as u64;
    (workers, total)
}

/// One keep-alive HTTP/1.1 connection posting requests, as an RFC 3161 or OCSP client library
/// does.
pub struct HttpConnection {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>,
    host: String,
}

impl HttpConnection {
    /// Connects to `authority` (`host:port`).
    pub async fn connect(authority: &str) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| format!("{authority}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
        tokio::spawn(conn);
        Ok(HttpConnection { sender, host: authority.to_owned() })
    }

    /// POSTs `body` to `path`: the response body of a 200 with `expect_type`, an error otherwise.
    pub async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        expect_type: &str,
        body: Vec<u8>,
    ) -> Result<hyper::body::Bytes, String> {
        use http_body_util::BodyExt;
        let req = http::Request::post(path)
            .header(http::header::HOST, &self.host)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self.sender.send_request(req).await.map_err(|e| e.to_string())?;
        let (status, got_type) = (resp.status(), resp.headers().get(http::header::CONTENT_TYPE).cloned());
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        if status != http::StatusCode::OK {
            return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim()));
        }
        if got_type.as_ref().and_then(|t| t.to_str().ok()) != Some(expect_type) {
            return Err(format!("content type {got_type:?}, not {expect_type}"));
        }
        Ok(body)
    }
}

/// A DER OCSP request (RFC 6960 §4.1) for `cert` of `issuer` by SHA-1 CertID, as OCSP clients
/// send it, with a fresh 16-byte nonce when `nonce`.
pub fn ocsp_request(
    issuer: &x509_cert::Certificate,
    cert: &x509_cert::Certificate,
    nonce: bool,
) -> Result<Vec<u8>, String> {
    use der::Encode;
    use x509_ocsp::builder::OcspRequestBuilder;
    use x509_ocsp::ext::Nonce;
    let req = x509_ocsp::Request::from_cert::<sha1::Sha1>(issuer, cert).map_err(|e| e.to_string())?;
    let mut builder = OcspRequestBuilder::default().with_request(req);
    if nonce {
        let n = Nonce::new(rand::random::<[u8; 16]>().to_vec()).map_err(|e| e.to_string())?;
        builder = builder.with_extension(n).map_err(|e| e.to_string())?;
    }
    builder.build().to_der().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_answers_and_failures_and_gives_the_workers_back() {
        let workers: Vec<_> = (0..4u64)
            .map(|i| {
                let mut n = 0u64;
                move || {
                    n += 1;
                    let fail = i == 0 && n.is_multiple_of(2);
                    async move {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        if fail {
                            Err(format!("worker {i} failed"))
                        } else {
                            Ok(())
                        }
                    }
                }
            })
            .collect();
        let done = Arc::new(AtomicU64::new(0));
        let (workers, out) = run(workers, Duration::from_millis(200), done.clone()).await;
        assert_eq!(workers.len(), 4);
        assert!(out.ops > 20 && out.errors > 2, "{out:?}");
        assert_eq!(out.first_error.as_deref(), Some("worker 0 failed"));
        assert_eq!(done.load(Ordering::Relaxed), out.ops + out.errors);
        assert!(out.elapsed >= Duration::from_millis(200));
        assert!(out.percentile(0.0) >= Duration::from_millis(5));
        assert!(out.percentile(0.5) <= out.percentile(0.99) && out.percentile(1.0) == *out.latencies.last().unwrap());
        assert!(out.rate() > 0.0);
        assert_eq!(Outcome::default().percentile(0.99), Duration::ZERO);
    }
}
