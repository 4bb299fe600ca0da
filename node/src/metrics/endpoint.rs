//! The Prometheus text endpoint: `GET /metrics` over HTTP/1 answers what the
//! meter provider has collected; any other path is a 404. One task accepts
//! connections and owns each connection's task, so stopping it ends them all.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Longest wait for a scraper's request head; a connection that sends
/// nothing is closed rather than held.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound, serving endpoint.
pub(super) struct Endpoint {
    pub(super) addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    /// Binds `listen` and starts answering scrapes from `registry`.
    pub(super) async fn bind(
        listen: &str,
        registry: prometheus::Registry,
    ) -> anyhow::Result<Endpoint> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {listen}: {e}"))?;
        let addr = listener.local_addr()?;
        // The word "listening" is kept out of this line on purpose: launchers
        // wait for the client port's "listening" line and read its `addr=`.
        tracing::info!(metrics_addr = %addr, path = "/metrics", "serving Prometheus metrics");
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept(listener, registry, stopped));
        Ok(Endpoint { addr, stop, task })
    }

    /// Stops accepting, ends open connections, and waits for the task.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept(
    listener: TcpListener,
    registry: prometheus::Registry,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let registry = registry.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req: Request<Incoming>| {
                            let registry = registry.clone();
                            let (path, method) = (req.uri().path().to_owned(), req.method().clone());
                            // Collecting runs the gauges' callbacks, which
                            // read the store (point reads): off the workers.
                            async move {
                                let r = tokio::task::spawn_blocking(move || {
                                    answer(&registry, &path, &method)
                                })
                                .await
                                .unwrap_or_else(|_| {
                                    plain(StatusCode::INTERNAL_SERVER_ERROR, "collecting metrics failed\n")
                                });
                                Ok::<_, Infallible>(r)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(e) => {
                    // Out of descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    connections.shutdown().await;
}

fn answer(registry: &prometheus::Registry, path: &str, method: &Method) -> Response<Full<Bytes>> {
    if path != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    if let Err(e) = encoder.encode(&registry.gather(), &mut body) {
        tracing::warn!(error = %e, "encoding metrics failed");
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding metrics failed\n",
        );
    }
    let mut r = Response::new(Full::new(Bytes::from(body)));
    if let Ok(v) = encoder.format_type().parse() {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r
}
