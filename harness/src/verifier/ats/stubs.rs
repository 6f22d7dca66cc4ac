//! The two small servers the ats verifier's `traffic_server` needs in its namespace besides the
//! relays: a stub DNS server that answers every query NXDOMAIN at once (the hosts file is the
//! only source of names), and a readiness responder that answers `200 ready` to anything, the
//! origin of the readiness probes the verifier in the parent module sends through ATS until it
//! has read its hosts file. Both sockets are made through [`Netns`].

use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::netns::{Netns, Service, accept_loop};

/// Why a stub server could not be started.
#[derive(Debug, thiserror::Error)]
pub(super) enum StubError {
    /// The DNS stub (UDP port 53 in the namespace).
    #[error("DNS stub: {source}")]
    Dns {
        /// Why.
        source: io::Error,
    },
    /// The readiness responder.
    #[error("readiness responder: {source}")]
    Ready {
        /// Why.
        source: io::Error,
    },
}

/// A DNS server that answers every query NXDOMAIN: names come from the hosts file only, and a
/// name looked up too early fails at once instead of hanging for ATS's 30 s DNS timeout.
/// Stopped on drop.
#[derive(Debug)]
pub(super) struct DnsStub {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsStub {
    /// Serves on 127.0.0.1:53 in the namespace.
    pub(super) fn start(netns: &Netns) -> Result<DnsStub, StubError> {
        Self::serve(netns).map_err(|source| StubError::Dns { source })
    }

    fn serve(netns: &Netns) -> io::Result<DnsStub> {
        let socket = netns.run(|| UdpSocket::bind((Ipv4Addr::LOCALHOST, 53)))??;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("mralab-ats-dns".into()).spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::SeqCst) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                if n < 12 {
                    continue;
                }
                let mut answer = buf[..n].to_vec();
                answer[2] |= 0x80; // QR: a response
                answer[3] = 0x80 | 3; // RA, RCODE 3: NXDOMAIN
                answer[6..10].fill(0); // no answers, no authority
                let _ = socket.send_to(&answer, from);
            }
        })?;
        Ok(DnsStub { stop, thread: Some(thread) })
    }
}

impl Drop for DnsStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers `200 ready` to anything: the target of the readiness probes. Stopped on drop.
#[derive(Debug)]
pub(super) struct ReadyResponder {
    /// Its port on 127.0.0.1 in the namespace.
    pub(super) port: u16,
    _service: Service,
}

impl ReadyResponder {
    /// Serves on a free port of 127.0.0.1 in the namespace.
    pub(super) fn start(netns: &Netns) -> Result<ReadyResponder, StubError> {
        Self::serve(netns).map_err(|source| StubError::Ready { source })
    }

    fn serve(netns: &Netns) -> io::Result<ReadyResponder> {
        let listener = netns.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let port = listener.local_addr()?.port();
        let service = accept_loop(listener, "mralab-ats-ready", |mut stream| {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nready");
        })?;
        Ok(ReadyResponder { port, _service: service })
    }
}
