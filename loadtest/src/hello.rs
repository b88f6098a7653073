//! A trivial server answering every request with a fixed 13-byte body, on the same
//! accept loop as the real servers: the baseline that shows whether the generator
//! (this tool or wrk) is the bottleneck.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;

/// The fixed answer.
pub const BODY: &[u8] = b"Hello, world!";

struct Hello;

impl httpkit::Handler for Hello {
    fn handle(
        &self,
        _req: Request<Incoming>,
        _peer: SocketAddr,
    ) -> impl Future<Output = Response<httpkit::Body>> + Send {
        let mut resp = Response::new(httpkit::full(BODY));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        std::future::ready(resp)
    }
}

/// Serves `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    httpkit::serve(
        listener,
        Arc::new(Hello),
        httpkit::ServerConfig::default(),
        shutdown,
    )
    .await;
}
