//! Relays from a node's modelled address in the ats verifier's namespace (`10.48.36.215:6972`)
//! to the node's socket on the host's loopback, where the simulated fleet stays. A relay copies
//! bytes unchanged; it counts connections (handshake attempts) and, with a [`Sniffer`], reads
//! the node's ServerHello (cipher suite) and Certificate message off the wire while they are in
//! clear text (TLS 1.2), to report what the node served. Under TLS 1.3 the certificate is
//! encrypted and `served` stays empty. The listener is made through [`Netns`]; the verifier in
//! the parent module starts one relay per node address and port and reads what it saw.

use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::netns::{Netns, Service, accept_loop};

/// Why a relay could not be started.
#[derive(Debug, thiserror::Error)]
#[error("relay {at} -> {dial}: {source}")]
pub(super) struct RelayError {
    /// The modelled address it was to listen on, in the namespace.
    at: SocketAddr,
    /// The node's loopback socket it was to dial.
    dial: SocketAddr,
    /// Why.
    source: io::Error,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What one relay saw since it was last reset.
#[derive(Debug, Default, Clone)]
pub(super) struct RelayRecord {
    /// Connections accepted (handshake attempts).
    pub(super) connections: u32,
    /// The chain of the last Certificate message read in clear text, leaf first.
    pub(super) served: Vec<Vec<u8>>,
    /// The cipher suite of the last ServerHello read.
    pub(super) hello: Option<u16>,
}

/// A relay's [`RelayRecord`], shared between its connections and the verifier.
#[derive(Debug, Default, Clone)]
pub(super) struct Seen(Arc<Mutex<RelayRecord>>);

impl Seen {
    /// Forgets what was seen so far.
    pub(super) fn reset(&self) {
        *lock(&self.0) = RelayRecord::default();
    }

    /// What was seen since the last reset.
    pub(super) fn get(&self) -> RelayRecord {
        lock(&self.0).clone()
    }
}

/// A relay from a node's modelled address (in the namespace) to its loopback socket.
#[derive(Debug)]
pub(super) struct Relay {
    /// The node's loopback socket.
    pub(super) dial: SocketAddr,
    /// What the relay saw.
    pub(super) seen: Seen,
    _service: Service,
}

/// Listens on `at` in the namespace and forwards each connection to `dial`.
pub(super) fn start_relay(netns: &Netns, at: SocketAddr, dial: SocketAddr) -> Result<Relay, RelayError> {
    start(netns, at, dial).map_err(|source| RelayError { at, dial, source })
}

fn start(netns: &Netns, at: SocketAddr, dial: SocketAddr) -> io::Result<Relay> {
    let listener = netns.bind(at)?;
    let seen = Seen::default();
    let rec = seen.0.clone();
    let service = accept_loop(listener, "mralab-ats-relay", move |client| {
        lock(&rec).connections += 1;
        let Ok(node) = crate::net::connect(dial, Duration::from_secs(3), crate::net::Reach::Loopback) else { return };
        let _ = client.set_nodelay(true);
        let _ = node.set_nodelay(true);
        let (Ok(mut client_r), Ok(mut node_w)) = (client.try_clone(), node.try_clone()) else { return };
        let up = std::thread::spawn(move || {
            let _ = io::copy(&mut client_r, &mut node_w);
            let _ = node_w.shutdown(std::net::Shutdown::Write);
        });
        let mut sniffer = Sniffer::default();
        let (mut node_r, mut client_w) = (node, client);
        let mut buf = [0u8; 16 * 1024];
        loop {
            match node_r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sniffer.feed(&buf[..n]) {
                        let mut r = lock(&rec);
                        if let Some(certs) = sniffer.certs.take() {
                            r.served = certs;
                        }
                        r.hello = sniffer.suite.or(r.hello);
                    }
                    if client_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = client_w.shutdown(std::net::Shutdown::Write);
        let _ = up.join();
    })?;
    Ok(Relay { dial, seen, _service: service })
}

/// Reads the server's ServerHello (cipher suite) and Certificate message off a TLS stream,
/// while they are in clear text.
#[derive(Debug, Default)]
struct Sniffer {
    records: Vec<u8>,
    handshake: Vec<u8>,
    done: bool,
    suite: Option<u16>,
    certs: Option<Vec<Vec<u8>>>,
}

fn u24(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

impl Sniffer {
    /// Feeds bytes from the server; true when something new was learnt.
    fn feed(&mut self, data: &[u8]) -> bool {
        if self.done {
            return false;
        }
        let mut learnt = false;
        self.records.extend_from_slice(data);
        while self.records.len() >= 5 && !self.done {
            let len = usize::from(u16::from_be_bytes([self.records[3], self.records[4]]));
            if self.records.len() < 5 + len {
                break;
            }
            let kind = self.records[0];
            let payload: Vec<u8> = self.records.drain(..5 + len).skip(5).collect();
            if kind != 22 {
                self.done = true;
                break;
            }
            self.handshake.extend_from_slice(&payload);
            while self.handshake.len() >= 4 {
                let len = u24(&self.handshake[1..4]);
                if self.handshake.len() < 4 + len {
                    break;
                }
                let kind = self.handshake[0];
                let body: Vec<u8> = self.handshake.drain(..4 + len).skip(4).collect();
                match kind {
                    2 => {
                        let sid = body.get(34).map(|&l| usize::from(l)).unwrap_or(0);
                        if let Some(s) = body.get(35 + sid..37 + sid) {
                            self.suite = Some(u16::from_be_bytes([s[0], s[1]]));
                            learnt = true;
                        }
                    }
                    11 => {
                        let mut certs = Vec::new();
                        let mut at = 3;
                        while at + 3 <= body.len() {
                            let len = u24(&body[at..at + 3]);
                            let Some(der) = body.get(at + 3..at + 3 + len) else { break };
                            certs.push(der.to_vec());
                            at += 3 + len;
                        }
                        self.certs = Some(certs);
                        self.done = true;
                        return true;
                    }
                    _ => {}
                }
            }
        }
        if self.records.len() > 1 << 20 {
            self.done = true;
        }
        learnt
    }
}
