//! The ats verifier's HTTP client: one HTTP/1.1 request with an empty body to `traffic_server`,
//! sent with hyper on a socket made in the namespace (through [`Netns`]), answered as status,
//! reason phrase and body. The verifier in the parent module sends the MRA client's requests
//! and the readiness probes with it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};

use super::netns::Netns;

/// Why a request to ATS got no answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum ClientError {
    /// No connection to ATS's port.
    #[error("connect to ATS: {source}")]
    Connect {
        /// Why.
        source: io::Error,
    },
    /// The connected socket could not be handed to the runtime.
    #[error("{source}")]
    Socket {
        /// Why.
        source: io::Error,
    },
    /// A method hyper refuses.
    #[error("method '{method}': {source}")]
    Method {
        /// The method as given.
        method: String,
        /// Why.
        source: hyper::http::method::InvalidMethod,
    },
    /// The request could not be built.
    #[error("{source}")]
    Build {
        /// Why.
        source: hyper::http::Error,
    },
    /// The exchange with ATS failed (handshake, request, response body).
    #[error("{source}")]
    Http {
        /// Why.
        source: hyper::Error,
    },
    /// No whole answer in time.
    #[error("timed out")]
    TimedOut,
}

/// One HTTP/1.1 GET through ATS with hyper, on a socket made in the namespace.
pub(super) fn http_get(
    netns: &Netns,
    ats: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String, String), ClientError> {
    http_send(netns, ats, "GET", host, path, timeout)
}

/// One HTTP/1.1 request with an empty body through ATS with hyper, on a socket made in the
/// namespace.
pub(super) fn http_send(
    netns: &Netns,
    ats: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String, String), ClientError> {
    let stream = netns.connect(ats, Duration::from_secs(2)).map_err(|source| ClientError::Connect { source })?;
    let _ = stream.set_nodelay(true);
    stream.set_nonblocking(true).map_err(|source| ClientError::Socket { source })?;
    let method = hyper::Method::from_bytes(method.as_bytes())
        .map_err(|source| ClientError::Method { method: method.to_string(), source })?;
    // ATS answers 411 to a POST without a length: say the body is empty.
    let length = if matches!(method, hyper::Method::GET | hyper::Method::HEAD) { None } else { Some("0") };
    let mut builder = hyper::Request::builder().method(method).uri(path);
    if let Some(length) = length {
        builder = builder.header(hyper::header::CONTENT_LENGTH, length);
    }
    let request = builder
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "mralab-mra-client")
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|source| ClientError::Build { source })?;
    let http = |source| ClientError::Http { source };
    crate::runtime::runtime().block_on(async move {
        let exchange = async move {
            let stream = tokio::net::TcpStream::from_std(stream).map_err(|source| ClientError::Socket { source })?;
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(http)?;
            tokio::spawn(conn);
            let response = send.send_request(request).await.map_err(http)?;
            let status = response.status();
            let reason = match response.extensions().get::<hyper::ext::ReasonPhrase>() {
                Some(r) => String::from_utf8_lossy(r.as_bytes()).into_owned(),
                None => status.canonical_reason().unwrap_or("").to_string(),
            };
            let body = response.into_body().collect().await.map_err(http)?.to_bytes();
            Ok::<_, ClientError>((status.as_u16(), reason, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| ClientError::TimedOut)?
    })
}
