//! The one way the harness opens a connection, and the loopback invariant it enforces.
//!
//! Every listener of the project binds 127.0.0.0/8 and every connection the harness makes goes
//! to loopback: nothing a scenario, lab, test or benchmark does may reach another host. Every
//! `connect` in `harness` and `xtask` goes through [`connect`], which refuses any other address
//! before a packet is sent; `harness/tests/tidy.rs` fails on a connect that bypasses it. The one
//! exception is `cargo xtask verify` (the preflight), which a person aims at their own servers:
//! it passes [`Reach::DangerAnyAddress`].

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Which addresses a dial may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// 127.0.0.0/8 and ::1 only: everything but the preflight.
    Loopback,
    /// Any address: only the preflight, which a person aims at their own servers.
    DangerAnyAddress,
}

/// Why a dial did not happen or did not connect.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The address is outside loopback, and the dial was refused before any packet was sent.
    #[error("refusing to dial {addr}: the harness dials loopback only (127.0.0.0/8, ::1)")]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The connection failed.
    #[error("{addr}: {source}")]
    Connect {
        /// The address dialled.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
}

impl DialError {
    /// The OS error of a failed connection (`None` when the dial was refused before it).
    pub fn io(&self) -> Option<&io::Error> {
        match self {
            DialError::NotLoopback { .. } => None,
            DialError::Connect { source, .. } => Some(source),
        }
    }
}

impl From<DialError> for io::Error {
    /// A refused dial is `PermissionDenied`; a failed one is the OS error itself.
    fn from(e: DialError) -> io::Error {
        match e {
            DialError::NotLoopback { .. } => io::Error::new(io::ErrorKind::PermissionDenied, e.to_string()),
            DialError::Connect { source, .. } => source,
        }
    }
}

/// Whether `reach` allows dialling `addr`.
pub fn check(addr: SocketAddr, reach: Reach) -> Result<(), DialError> {
    match reach {
        Reach::Loopback if !addr.ip().is_loopback() => Err(DialError::NotLoopback { addr }),
        _ => Ok(()),
    }
}

/// Opens a TCP connection to `addr` within `timeout`, after [`check`].
pub fn connect(addr: SocketAddr, timeout: Duration, reach: Reach) -> Result<TcpStream, DialError> {
    check(addr, reach)?;
    TcpStream::connect_timeout(&addr, timeout).map_err(|source| DialError::Connect { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_allowed_and_anything_else_is_refused_before_dialling() {
        let refused: SocketAddr = ([192, 0, 2, 1], 9).into();
        let err = connect(refused, Duration::from_millis(200), Reach::Loopback).expect_err("refused");
        assert!(matches!(err, DialError::NotLoopback { addr } if addr == refused), "{err}");
        assert!(err.io().is_none());
        for addr in [SocketAddr::from(([127, 4, 5, 6], 8443)), SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 8443))] {
            assert!(check(addr, Reach::Loopback).is_ok(), "{addr}");
        }
        assert!(check(refused, Reach::DangerAnyAddress).is_ok());
    }

    #[test]
    fn a_failed_loopback_connection_carries_the_os_error() {
        // Bind, learn the port, close: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind").port();
        let err = connect(([127, 0, 0, 1], port).into(), Duration::from_secs(2), Reach::Loopback).expect_err("no one");
        assert_eq!(err.io().map(io::Error::kind), Some(io::ErrorKind::ConnectionRefused), "{err}");
    }
}

/// How a loopback listener bounds what its clients may cost: at most `max_connections` served at
/// once (more wait in the kernel's listen queue, holding no descriptor of ours), and after a
/// failed accept (out of descriptors: EMFILE) a pause of `accept_backoff` before the next, never
/// a spin and never giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// The pause after a failed accept.
    pub accept_backoff: std::time::Duration,
}

/// Accepts on `listener` until `stop` changes, serving each connection in a task of its own
/// (`serve` gets the stream, the peer and the place it holds until it ends), within `limits`.
/// A run of failed accepts is logged once, through `log`, naming `what`. When told to stop,
/// connections still being served get `linger` to finish, then are cancelled.
pub async fn accept_bounded<F, Fut>(
    listener: tokio::net::TcpListener,
    limits: AcceptLimits,
    what: &str,
    log: impl Fn(&str),
    mut stop: tokio::sync::watch::Receiver<bool>,
    linger: std::time::Duration,
    mut serve: F,
) where
    F: FnMut(tokio::net::TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let places = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut connections = tokio::task::JoinSet::new();
    let mut failing = false;
    'serving: loop {
        let place = tokio::select! {
            _ = stop.changed() => break 'serving,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue 'serving,
            place = places.clone().acquire_owned() => match place {
                Ok(place) => place,
                // Invariant: the semaphore is never closed.
                Err(_) => break 'serving,
            },
        };
        let (tcp, peer) = loop {
            tokio::select! {
                _ = stop.changed() => break 'serving,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => break accepted,
                    Err(e) => {
                        if !failing {
                            log(&format!(
                                "{what}: accept failed ({e}); retrying every {} ms",
                                limits.accept_backoff.as_millis()
                            ));
                            failing = true;
                        }
                        tokio::select! {
                            _ = stop.changed() => break 'serving,
                            _ = tokio::time::sleep(limits.accept_backoff) => {}
                        }
                    }
                },
            }
        };
        failing = false;
        connections.spawn(serve(tcp, peer, place));
    }
    if !linger.is_zero() {
        let finish = async { while connections.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(linger, finish).await;
    }
    connections.shutdown().await;
}
