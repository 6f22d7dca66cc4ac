//! The per-node event log: what a packet capture and CUCM's own logs would tell a person about
//! each connection (handshake, certificate served and why, alerts, requests). Scenarios snapshot
//! it, so every line is deterministic: no addresses, bound ports, times or pids.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;

/// The phase a connection timed out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TimeoutPhase {
    /// Before the TLS handshake completed (a silent client, a truncated ClientHello).
    Handshake,
    /// On an established connection waiting for a request.
    Idle,
}

/// What happened, in one line a person can read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    /// A TCP connection was accepted.
    Connected,
    /// A TLS handshake completed.
    Handshake {
        /// The protocol version, `TLSv1.2` or `TLSv1.3`.
        version: String,
        /// The suite in OpenSSL naming, e.g. `ECDHE-ECDSA-AES256-GCM-SHA384`.
        suite: String,
        /// The name of the identity served, e.g. `tomcat-ECDSA`.
        identity: String,
        /// Why that identity: `client offered ECDHE-ECDSA-AES256-GCM-SHA384 first → tomcat-ECDSA`.
        why: String,
    },
    /// The certificate a handshake that then failed was answered with (a completed
    /// handshake reports it in [`EventKind::Handshake`]).
    CertificateSent {
        /// The name of the identity sent, e.g. `CallManager-ECDSA`.
        identity: String,
        /// Why that identity.
        why: String,
    },
    /// The client certificate seen on a service that asks for one.
    ClientCertificate {
        /// The subject, in `C=BE, O=Cisco, CN=...` form, or `none`.
        subject: String,
    },
    /// The client sent a TLS alert, named as Wireshark names it (`Unknown CA`).
    AlertReceived {
        /// The alert description.
        description: String,
    },
    /// The TLS handshake failed for a reason other than a received alert.
    HandshakeFailed {
        /// What went wrong, including any alert the node sent.
        reason: String,
    },
    /// An HTTP request line.
    Request {
        /// The method, e.g. `GET`.
        method: String,
        /// The path and query, e.g. `/cucm-uds/user/emusk/devices?max=100`.
        path: String,
    },
    /// The status of the HTTP response.
    Response {
        /// The status code.
        status: u16,
    },
    /// The node gave up waiting on the client.
    TimedOut {
        /// Which wait timed out.
        phase: TimeoutPhase,
    },
    /// The running node was changed.
    Reconfigured {
        /// What changed, e.g. `identities rsa=tomcat ecdsa=tomcat-ECDSA`.
        what: String,
    },
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Connected => f.write_str("connected"),
            EventKind::Handshake { version, suite, identity, why } => {
                write!(f, "handshake {version} {suite}, served {identity} ({why})")
            }
            EventKind::CertificateSent { identity, why } => write!(f, "sent {identity} ({why})"),
            EventKind::ClientCertificate { subject } => write!(f, "client certificate: {subject}"),
            EventKind::AlertReceived { description } => write!(f, "alert received: {description}"),
            EventKind::HandshakeFailed { reason } => write!(f, "handshake failed: {reason}"),
            EventKind::Request { method, path } => write!(f, "request {method} {path}"),
            EventKind::Response { status } => write!(f, "response {status}"),
            EventKind::TimedOut { phase: TimeoutPhase::Handshake } => {
                f.write_str("timed out waiting for the handshake")
            }
            EventKind::TimedOut { phase: TimeoutPhase::Idle } => f.write_str("timed out waiting for a request"),
            EventKind::Reconfigured { what } => write!(f, "reconfigured: {what}"),
        }
    }
}

/// One entry of a node's log (serde: the container fleet's node program sends them as JSON
/// lines, see [`crate::node`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeEvent {
    /// When it was logged on this node, from 0; stable across [`crate::Fleet::take_events`]
    /// calls. Logs are returned grouped by connection, so ordinals need not ascend.
    pub ordinal: u64,
    /// The node's name.
    pub node: String,
    /// The modelled port (8443, 6972), or 0 for node-wide changes such as a System > Server name.
    pub port: u16,
    /// The connection on this node the event belongs to, numbered from 1 in accept order; 0 for
    /// events that belong to no connection.
    pub connection: u64,
    /// What happened.
    pub kind: EventKind,
}

impl fmt::Display for NodeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} #{}", self.node, self.ordinal)?;
        if self.port != 0 {
            write!(f, " :{}", self.port)?;
        }
        if self.connection != 0 {
            write!(f, " conn {}", self.connection)?;
        }
        write!(f, ": {}", self.kind)
    }
}

/// A node's log: append-only, with a drain point for [`crate::Fleet::take_events`].
#[derive(Debug)]
pub(crate) struct EventLog {
    node: String,
    inner: Mutex<LogInner>,
}

/// The most events a node keeps: a long-running fleet forgets its oldest ones beyond this.
const MAX_EVENTS: usize = 100_000;

#[derive(Debug, Default)]
struct LogInner {
    next_ordinal: u64,
    next_connection: u64,
    events: VecDeque<NodeEvent>,
}

impl EventLog {
    pub(crate) fn new(node: &str) -> Self {
        EventLog { node: node.to_owned(), inner: Mutex::new(LogInner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        // A poisoned lock only means a panic elsewhere while pushing; the Vec is still valid.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Numbers a new connection and logs it as connected.
    pub(crate) fn connected(&self, port: u16) -> u64 {
        let mut inner = self.lock();
        inner.next_connection += 1;
        let connection = inner.next_connection;
        Self::push_locked(&mut inner, &self.node, port, connection, EventKind::Connected);
        connection
    }

    pub(crate) fn push(&self, port: u16, connection: u64, kind: EventKind) {
        let mut inner = self.lock();
        Self::push_locked(&mut inner, &self.node, port, connection, kind);
    }

    fn push_locked(inner: &mut LogInner, node: &str, port: u16, connection: u64, kind: EventKind) {
        let ordinal = inner.next_ordinal;
        inner.next_ordinal += 1;
        if inner.events.len() >= MAX_EVENTS {
            inner.events.pop_front();
        }
        inner.events.push_back(NodeEvent { ordinal, node: node.to_owned(), port, connection, kind });
    }

    pub(crate) fn snapshot(&self) -> Vec<NodeEvent> {
        grouped(self.lock().events.iter().cloned().collect())
    }

    pub(crate) fn drain(&self) -> Vec<NodeEvent> {
        grouped(std::mem::take(&mut self.lock().events).into())
    }
}

/// Orders events so that each connection's events sit together at the place of its `Connected`
/// event. A node logs a handshake's end just after the client sees it, so a quick next client
/// can otherwise slip its `Connected` in between; grouping makes sequential clients give the
/// same log on every run. Node-wide events (connection 0) keep their place.
fn grouped(mut events: Vec<NodeEvent>) -> Vec<NodeEvent> {
    let mut opened: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    for e in &events {
        if e.connection != 0 {
            opened.entry(e.connection).or_insert(e.ordinal);
        }
    }
    events.sort_by_key(|e| {
        let anchor =
            if e.connection == 0 { e.ordinal } else { opened.get(&e.connection).copied().unwrap_or(e.ordinal) };
        (anchor, e.ordinal)
    });
    events
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_late_handshake_line_is_grouped_with_its_connection() {
        let log = EventLog::new("pub");
        let first = log.connected(8443);
        let second = log.connected(8443);
        log.push(8443, first, EventKind::Response { status: 200 });
        log.push(0, 0, EventKind::Reconfigured { what: "x".to_owned() });
        log.push(8443, second, EventKind::Response { status: 404 });
        let lines: Vec<String> = log.drain().iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "pub #0 :8443 conn 1: connected",
                "pub #2 :8443 conn 1: response 200",
                "pub #1 :8443 conn 2: connected",
                "pub #4 :8443 conn 2: response 404",
                "pub #3: reconfigured: x",
            ]
        );
        assert!(log.snapshot().is_empty());
    }
}
