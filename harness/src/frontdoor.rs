//! Expressway-C's front door for real clients: a loopback HTTP listener that takes MRA paths
//! (`/<base64 of domain/https/host/port>/<path>`), decodes the target, and proxies only to
//! discovered nodes, through the verifier, to their loopback sockets. Any other target is
//! refused with 403 and never dialled; a token that does not decode strictly (a scheme other
//! than `https`, a port not written as canonical decimal, a host that is no host name) gets 400.
//!
//! `curl http://127.0.0.1:PORT/c3RldmVuLmxhYi9odHRwcy9jdWNtLnN0ZXZlbi5sYWIvODQ0Mw/cucm-uds/version`
//! answers `200` or `502 connect failed`, and the traffic server's lines go to the log sink.
//!
//! Clients are not trusted to behave ([`FrontDoorSettings`]): a client gets a bounded time to
//! send its headers and is closed when silent too long; at most so many connections are served
//! at once (the rest wait in the listen queue); a failed accept (out of descriptors) is retried
//! after a pause, never in a spin and never by giving up. Whatever a client sent is shown with
//! [`printable`] before it reaches a log line.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

use crate::mra;
use crate::source::printable;
use crate::verifier::{OriginRequest, Outcome, Purpose, Verifier, VerifierFault};

/// Where a discovered target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A node: the modelled address logs show and the socket to dial.
    Node {
        /// The modelled address.
        modelled_ip: IpAddr,
        /// The loopback socket.
        dial: SocketAddr,
    },
    /// A discovered name the modelled network does not resolve (a typo in System > Server):
    /// the traffic server is asked, and fails at the lookup.
    Unresolved,
}

/// The targets the front door may reach: (host as advertised, port) to route.
pub type Routes = BTreeMap<(String, u16), Route>;

/// How long the front door waits for its clients, and how many it serves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontDoorSettings {
    /// How long a client has to send a request's headers, counted from when the front door
    /// starts reading them (so a client trickling a byte at a time is cut off all the same),
    /// and between the requests of a kept-alive connection. Default 10 s.
    pub header_read_timeout: Duration,
    /// How long a connection may go without a byte read or written while no request of it is
    /// being answered, before it is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen queue (costing no descriptor)
    /// until one closes. Default 64.
    pub max_connections: usize,
    /// The pause after a failed accept (out of descriptors, EMFILE) before the next. Default
    /// 100 ms.
    pub accept_backoff: Duration,
}

impl Default for FrontDoorSettings {
    fn default() -> FrontDoorSettings {
        FrontDoorSettings {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 64,
            accept_backoff: Duration::from_millis(100),
        }
    }
}

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

/// Why a request through the front door got no outcome: a harness fault, answered with 500
/// (a failed verification is an outcome, never this).
#[derive(Debug, thiserror::Error)]
enum ProxyFault {
    /// The verifier could not run.
    #[error(transparent)]
    Verifier(#[from] VerifierFault),
    /// The blocking task running the verifier panicked or was cancelled.
    #[error("the verifier's task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl FrontDoor {
    /// Binds `addr` (loopback; port 0 picks one) and serves with the default
    /// [`FrontDoorSettings`]; returns once bound.
    pub async fn start(
        addr: SocketAddr,
        verifier: Box<dyn Verifier>,
        routes: Routes,
        sink: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<FrontDoor, FrontDoorError> {
        FrontDoor::start_with(addr, verifier, routes, FrontDoorSettings::default(), sink).await
    }

    /// Binds `addr` (loopback; port 0 picks one) and serves with `settings`; returns once bound.
    pub async fn start_with(
        addr: SocketAddr,
        verifier: Box<dyn Verifier>,
        routes: Routes,
        settings: FrontDoorSettings,
        sink: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<FrontDoor, FrontDoorError> {
        if !addr.ip().is_loopback() {
            return Err(FrontDoorError::NotLoopback(addr));
        }
        let listener = TcpListener::bind(addr).await.map_err(|source| FrontDoorError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| FrontDoorError::Bind { addr, source })?;
        let state =
            Arc::new(State { verifier: Mutex::new(verifier), routes: Mutex::new(routes), sink: Box::new(sink) });
        let (shutdown, stop) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, state.clone(), settings, stop));
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

/// Takes a place (beyond the cap, connections wait in the listen queue), then a connection,
/// and serves it in a task of its own, until told to stop. A failed accept is logged once per
/// run of failures and retried after `accept_backoff`.
async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    settings: FrontDoorSettings,
    stop: watch::Receiver<bool>,
) {
    let limits =
        crate::net::AcceptLimits { max_connections: settings.max_connections, accept_backoff: settings.accept_backoff };
    let log_state = state.clone();
    crate::net::accept_bounded(
        listener,
        limits,
        "front door",
        |line| (log_state.sink)(line),
        stop,
        Duration::ZERO,
        |tcp, _, place| serve_connection(tcp, state.clone(), settings, place),
    )
    .await;
}

/// One connection: HTTP/1.1 with the header-read timeout, closed once idle for `idle_timeout`.
async fn serve_connection(
    tcp: TcpStream,
    state: Arc<State>,
    settings: FrontDoorSettings,
    _place: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched { inner: tcp, activity: activity.clone() });
    let answering = activity.clone();
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let busy = answering.busy();
        async move {
            let _busy = busy;
            Ok::<_, Infallible>(handle(state, req).await)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    loop {
        let wait = match activity.quiet_since() {
            // A request is being answered: the verifier's own timeouts bound it.
            None => settings.idle_timeout,
            Some(since) => match settings.idle_timeout.checked_sub(since.elapsed()) {
                Some(left) if !left.is_zero() => left,
                // Idle too long: dropping the connection closes it.
                _ => return,
            },
        };
        tokio::select! {
            _ = &mut connection => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// When a connection last read or wrote, and how many of its requests are being answered.
struct Activity {
    last: Mutex<Instant>,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity { last: Mutex::new(Instant::now()), busy: AtomicUsize::new(0) }
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Since when the connection is quiet; `None` while a request is being answered.
    fn quiet_since(&self) -> Option<Instant> {
        (self.busy.load(Ordering::SeqCst) == 0).then(|| *self.last.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Marks a request as being answered until the guard is dropped.
    fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }
}

/// A request being answered (see [`Activity::busy`]).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A socket that records its activity: every read or write of at least one byte.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
            // The error shows only checked fields and escaped text; the path is escaped here.
            (state.sink)(&format!("front door: 400 for {}: {e}", printable(&path)));
            return reply(400, "Bad Request", format!("{e}\n"));
        }
    };
    let route =
        state.routes.lock().unwrap_or_else(|p| p.into_inner()).get(&(target.host.clone(), target.port)).copied();
    let Some(route) = route else {
        // The host passed the decoder's host-name check: no control character, no space.
        let message = format!(
            "{}:{} is not a discovered node; the front door proxies to discovered nodes only",
            target.host, target.port
        );
        (state.sink)(&format!("front door: 403: {message}"));
        return reply(403, "Forbidden", format!("{message}\n"));
    };
    let method = printable(&method).into_owned();
    let request = match route {
        Route::Node { modelled_ip, dial } => OriginRequest {
            host: target.host.clone(),
            modelled_ip,
            port: target.port,
            dial,
            method,
            path: target.path.clone(),
            purpose: Purpose::Mra,
            resolves: true,
            origin_state: crate::verifier::OriginState::Listening,
        },
        Route::Unresolved => OriginRequest::unresolved(&target.host, target.port, &method, &target.path, Purpose::Mra),
    };
    let worker = state.clone();
    let outcome: Result<Outcome, ProxyFault> = tokio::task::spawn_blocking(move || {
        let mut verifier = worker.verifier.lock().unwrap_or_else(|p| p.into_inner());
        verifier.request(&request).map_err(ProxyFault::from)
    })
    .await
    .unwrap_or_else(|e| Err(ProxyFault::from(e)));
    match outcome {
        Ok(outcome) => {
            for line in &outcome.log {
                (state.sink)(line);
            }
            reply(outcome.status, &outcome.reason, outcome.body)
        }
        Err(e) => {
            (state.sink)(&format!("front door: harness fault: {}", printable(&e.to_string())));
            reply(500, "Internal Server Error", format!("{e}\n"))
        }
    }
}

/// What discovery found: the names the publisher advertises, each routed to its node's
/// listeners, plus IM&P and Unity Connection nodes by their advertised names (they have
/// server entries of their own). A name that does not resolve is routed nowhere
/// ([`Route::Unresolved`]): requests to it reach the verifier, which fails them at the lookup.
pub fn discover(
    verifier: &mut dyn Verifier,
    publisher: &str,
    fleet: &crate::fleet::ResolvedFleet,
    running: &simulators::Fleet,
    tls_verify_mode: bool,
) -> Result<(Routes, Outcome), VerifierFault> {
    let node = fleet.find_by_host(publisher).ok_or_else(|| VerifierFault::Request {
        verifier: verifier.name(),
        message: format!("discovery publisher '{publisher}' is no node of the fleet"),
    })?;
    let dial = running.socket(&node.name, 8443).ok_or_else(|| VerifierFault::Request {
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
        resolves: true,
        origin_state: crate::verifier::OriginState::Listening,
    })?;
    let mut routes = Routes::new();
    if outcome.ok() {
        for found in fleet.discovered(&outcome.body).0 {
            for port in &found.node.ports {
                if !found.resolves {
                    routes.insert((found.name.clone(), port.port), Route::Unresolved);
                } else if let Some(dial) = running.socket(&found.node.name, port.port) {
                    routes
                        .insert((found.name.clone(), port.port), Route::Node { modelled_ip: found.node.spec.ip, dial });
                }
            }
        }
    }
    Ok((routes, outcome))
}
