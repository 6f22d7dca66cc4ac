//! Expressway-C's front door for real clients: a loopback HTTP listener that takes MRA paths
//! (`/<base64 of domain/https/host/port>/<path>`), decodes the target, and proxies only to
//! discovered nodes, through the verifier, to their loopback sockets. Any other target is
//! refused with 403 and never dialled.
//!
//! `curl http://127.0.0.1:PORT/c3RldmVuLmxhYi9odHRwcy9jdWNtLnN0ZXZlbi5sYWIvODQ0Mw/cucm-uds/version`
//! answers `200` or `502 connect failed`, and the traffic server's lines go to the log sink.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::mra;
use crate::verifier::{OriginRequest, Outcome, Purpose, Verifier};

/// Where a discovered target is: the modelled address logs show and the socket to dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The modelled address.
    pub modelled_ip: IpAddr,
    /// The loopback socket.
    pub dial: SocketAddr,
}

/// The targets the front door may reach: (host as advertised, port) to route.
pub type Routes = BTreeMap<(String, u16), Route>;

type Sink = Box<dyn Fn(&str) + Send + Sync>;

struct State {
    verifier: Mutex<Box<dyn Verifier>>,
    routes: Mutex<Routes>,
    sink: Sink,
}

/// A running front door.
pub struct FrontDoor {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FrontDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontDoor").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Why the front door could not start.
#[derive(Debug, thiserror::Error)]
pub enum FrontDoorError {
    /// Only loopback addresses are allowed.
    #[error("the front door listens on loopback only, not {0}")]
    NotLoopback(SocketAddr),
    /// Binding failed (the port is taken).
    #[error("binding the front door on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

impl FrontDoor {
    /// Binds `addr` (loopback; port 0 picks one) and serves; returns once bound.
    pub async fn start(
        addr: SocketAddr,
        verifier: Box<dyn Verifier>,
        routes: Routes,
        sink: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<FrontDoor, FrontDoorError> {
        if !addr.ip().is_loopback() {
            return Err(FrontDoorError::NotLoopback(addr));
        }
        let listener = TcpListener::bind(addr).await.map_err(|source| FrontDoorError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| FrontDoorError::Bind { addr, source })?;
        let state =
            Arc::new(State { verifier: Mutex::new(verifier), routes: Mutex::new(routes), sink: Box::new(sink) });
        let (shutdown, mut stop) = watch::channel(false);
        let serving = state.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        let state = serving.clone();
                        connections.spawn(async move {
                            let service = hyper::service::service_fn(move |req| {
                                let state = state.clone();
                                async move { Ok::<_, Infallible>(handle(state, req).await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(tcp), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
            connections.shutdown().await;
        });
        Ok(FrontDoor { addr, state, shutdown, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the routes (after a discovery refresh).
    pub fn set_routes(&self, routes: Routes) {
        *self.state.routes.lock().unwrap_or_else(|p| p.into_inner()) = routes;
    }

    /// Runs `change` on the verifier (a reconfiguration).
    pub fn with_verifier<T>(&self, change: impl FnOnce(&mut dyn Verifier) -> T) -> T {
        let mut verifier = self.state.verifier.lock().unwrap_or_else(|p| p.into_inner());
        change(verifier.as_mut())
    }

    /// Stops serving.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

fn reply(status: u16, reason: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    // A custom reason phrase (`502 connect failed`) as Expressway sends it.
    if !reason.is_empty()
        && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes())
    {
        response.extensions_mut().insert(phrase);
    }
    response
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path_and_query().map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let method = req.method().as_str().to_string();
    let target = match mra::decode(&path) {
        Ok(target) => target,
        Err(e) => {
            (state.sink)(&format!("front door: 400 for {path}: {e}"));
            return reply(400, "Bad Request", format!("{e}\n"));
        }
    };
    let route =
        state.routes.lock().unwrap_or_else(|p| p.into_inner()).get(&(target.host.clone(), target.port)).copied();
    let Some(route) = route else {
        let message = format!(
            "{}:{} is not a discovered node; the front door proxies to discovered nodes only",
            target.host, target.port
        );
        (state.sink)(&format!("front door: 403: {message}"));
        return reply(403, "Forbidden", format!("{message}\n"));
    };
    let request = OriginRequest {
        host: target.host.clone(),
        modelled_ip: route.modelled_ip,
        port: target.port,
        dial: route.dial,
        method,
        path: target.path.clone(),
        purpose: Purpose::Mra,
    };
    let worker = state.clone();
    let outcome: Result<Outcome, String> = tokio::task::spawn_blocking(move || {
        let mut verifier = worker.verifier.lock().unwrap_or_else(|p| p.into_inner());
        verifier.request(&request).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(format!("verifier task failed: {e}")));
    match outcome {
        Ok(outcome) => {
            for line in &outcome.log {
                (state.sink)(line);
            }
            reply(outcome.status, &outcome.reason, outcome.body)
        }
        Err(e) => {
            (state.sink)(&format!("front door: harness fault: {e}"));
            reply(500, "Internal Server Error", format!("{e}\n"))
        }
    }
}

/// What discovery found: the names the publisher advertises, each routed to its node's
/// listeners, plus IM&P and Unity Connection nodes by their advertised names (they have
/// server entries of their own).
pub fn discover(
    verifier: &mut dyn Verifier,
    publisher: &str,
    fleet: &crate::fleet::ResolvedFleet,
    running: &simulators::Fleet,
    tls_verify_mode: bool,
) -> Result<(Routes, Outcome), crate::verifier::VerifierFault> {
    let node = fleet.find_by_host(publisher).ok_or_else(|| crate::verifier::VerifierFault::Request {
        verifier: verifier.name(),
        message: format!("discovery publisher '{publisher}' is no node of the fleet"),
    })?;
    let dial = running.socket(&node.name, 8443).ok_or_else(|| crate::verifier::VerifierFault::Request {
        verifier: verifier.name(),
        message: format!("node '{}' has no 8443 listener", node.name),
    })?;
    let outcome = verifier.request(&OriginRequest {
        host: publisher.to_string(),
        modelled_ip: node.spec.ip,
        port: 8443,
        dial,
        method: "GET".into(),
        path: "/cucm-uds/servers".into(),
        purpose: Purpose::Discovery { tls_verify_mode },
    })?;
    let mut routes = Routes::new();
    if outcome.ok() {
        for (name, node) in fleet.discovered(&outcome.body).0 {
            for port in &node.ports {
                if let Some(dial) = running.socket(&node.name, port.port) {
                    routes.insert((name.clone(), port.port), Route { modelled_ip: node.spec.ip, dial });
                }
            }
        }
    }
    Ok((routes, outcome))
}
