//! What happens on a listener once the fleet runs: the accept loop, then for each connection
//! the ClientHello read, the identity choice handed to [`crate::choice`], the TLS handshake,
//! HTTP/1.1 serving through [`crate::http`], and every step logged in the node's event log.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::Acceptor;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::LazyConfigAcceptor;

use super::{Node, Service, Shared};
use crate::choice::{self, Candidate};
use crate::config::KeyAlg;
use crate::events::{EventKind, TimeoutPhase};
use crate::http::{self, NodeView};
use crate::record::Recorded;
use crate::tls;

pub(super) async fn accept_loop(
    shared: Arc<Shared>,
    node_index: usize,
    service: Arc<Service>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(node) = shared.nodes.get(node_index).cloned() else {
        return;
    };
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    // Without it small TLS records wait for delayed ACKs (FIELD-NOTES).
                    let _ = tcp.set_nodelay(true);
                    let live = shared.recorder.begin(&node.name, node.modelled_ip, service.port, peer);
                    let tcp = Recorded::new(tcp, live);
                    shared.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let conn_shared = shared.clone();
                    let serving = serve_connection(shared.clone(),
                        node.clone(),
                        service.clone(),
                        tcp,);
                    connections.spawn(async move {
                        serving.await;
                        conn_shared.connection_done();
                    });
                }
                // Out of descriptors or similar: back off briefly rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                // A connection task never panics on peer bytes; if one ever does, say so in the
                // log (tests read it) instead of losing it silently.
                if let Err(e) = done
                    && e.is_panic()
                {
                    node.log.push(
                        service.port,
                        0,
                        EventKind::HandshakeFailed {
                            reason: "internal error: connection task panicked".to_owned(),
                        },
                    );
                }
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// The rustls error inside an I/O error from tokio-rustls, if any.
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

fn handshake_failure(e: &io::Error) -> EventKind {
    match rustls_error(e) {
        Some(rustls::Error::AlertReceived(alert)) => EventKind::AlertReceived { description: tls::alert_name(*alert) },
        Some(err) => EventKind::HandshakeFailed { reason: tls::describe_error(err) },
        None if e.kind() == io::ErrorKind::UnexpectedEof => EventKind::HandshakeFailed {
            reason: "client closed the connection before the handshake completed".to_owned(),
        },
        None => EventKind::HandshakeFailed { reason: e.kind().to_string() },
    }
}

struct Established {
    stream: tokio_rustls::server::TlsStream<Recorded<TcpStream>>,
    identity: String,
    why: String,
}

/// A failed handshake, with the identity chosen for it when the ClientHello got that far.
struct HandshakeError {
    chosen: Option<(String, String)>,
    error: io::Error,
}

async fn handshake(service: &Service, tls13: bool, tcp: Recorded<TcpStream>) -> Result<Established, HandshakeError> {
    let start = LazyConfigAcceptor::new(Acceptor::default(), tcp)
        .await
        .map_err(|error| HandshakeError { chosen: None, error })?;
    let tls = service.current();
    let (alg, why) = {
        let hello = start.client_hello();
        let candidates: Vec<Candidate<'_>> =
            tls.all().map(|s| Candidate { name: &s.name, alg: s.alg, key: s.key.key.as_ref() }).collect();
        let d = choice::decide(hello.cipher_suites(), hello.signature_schemes(), tls13, &service.choice, &candidates);
        (d.alg, d.why)
    };
    // The decision names an identity the service has; fall back to any one to stay total.
    let served = tls
        .served(alg)
        .or_else(|| tls.served(KeyAlg::Rsa))
        .or_else(|| tls.served(KeyAlg::Ecdsa))
        .ok_or_else(|| HandshakeError { chosen: None, error: io::Error::other("service has no identity") })?;
    let stream = start
        .into_stream(served.config.clone())
        .await
        .map_err(|error| HandshakeError { chosen: Some((served.name.clone(), why.clone())), error })?;
    Ok(Established { stream, identity: served.name.clone(), why })
}

async fn serve_connection(shared: Arc<Shared>, node: Arc<Node>, service: Arc<Service>, tcp: Recorded<TcpStream>) {
    let port = service.port;
    let conn = node.log.connected(port);
    let established = match tokio::time::timeout(shared.handshake_timeout, handshake(&service, node.tls13, tcp)).await {
        Err(_) => {
            node.log.push(port, conn, EventKind::TimedOut { phase: TimeoutPhase::Handshake });
            return;
        }
        Ok(Err(HandshakeError { chosen, error })) => {
            if let Some((identity, why)) = chosen {
                node.log.push(port, conn, EventKind::CertificateSent { identity, why });
            }
            node.log.push(port, conn, handshake_failure(&error));
            return;
        }
        Ok(Ok(established)) => established,
    };
    let Established { stream, identity, mut why } = established;
    {
        let (_, state) = stream.get_ref();
        let version = match state.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(other) => format!("{other:?}"),
            None => "unknown".to_owned(),
        };
        let suite = state
            .negotiated_cipher_suite()
            .map_or_else(|| "unknown".to_owned(), |s| choice::openssl_suite_name(s.suite()));
        if state.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            why.push_str("; resumed session, no certificate sent");
        }
        node.log.push(port, conn, EventKind::Handshake { version, suite, identity, why });
        if service.client_auth != "off" {
            let subject =
                state.peer_certificates().and_then(|c| c.first()).map_or_else(|| "none".to_owned(), tls::subject_of);
            node.log.push(port, conn, EventKind::ClientCertificate { subject });
        }
    }

    let svc = {
        let node = node.clone();
        let shared = shared.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let node = node.clone();
            let shared = shared.clone();
            async move { Ok::<_, std::convert::Infallible>(answer(&shared, &node, port, conn, &req)) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(shared.idle_timeout).keep_alive(true);
    if let Err(e) = builder.serve_connection(TokioIo::new(stream), svc).await {
        if e.is_timeout() {
            node.log.push(port, conn, EventKind::TimedOut { phase: TimeoutPhase::Idle });
        } else if let Some(rustls::Error::AlertReceived(alert)) =
            std::error::Error::source(&e).and_then(|s| s.downcast_ref::<io::Error>()).and_then(rustls_error)
        {
            node.log.push(port, conn, EventKind::AlertReceived { description: tls::alert_name(*alert) });
        }
    }
}

fn answer(shared: &Shared, node: &Node, port: u16, conn: u64, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_owned();
    let target = req.uri().path_and_query().map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    node.log.push(port, conn, EventKind::Request { method: method.clone(), path: target.clone() });
    let servers = || shared.cluster_servers(&node.cluster);
    let view = NodeView { role: node.role, fqdn: &node.fqdn, cluster_servers: &servers };
    let reply = http::respond(&view, port, &method, &target);
    node.log.push(port, conn, EventKind::Response { status: reply.status });
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(reply.content_type));
    response
}
