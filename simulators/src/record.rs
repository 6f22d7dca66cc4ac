//! Recording what crossed each node's sockets, for captures: the bytes of every TCP
//! connection in the order the node read and wrote them, who closed first, and the TLS secrets
//! of every session (rustls' [`KeyLog`], as `SSLKEYLOGFILE` lines). Off unless
//! [`crate::Fleet::record`] turns it on: then a connection costs one `Option` check per read
//! and write, and rustls is not asked for secrets.
//!
//! The nodes terminate TLS for every verifier (the built-in model, `cmd:` adapters, and the
//! real traffic server through its relays), so these secrets decrypt every capture.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use rustls::{KeyLog, KeyLogFile};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Which way bytes went, seen from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client (the verifier) to the node.
    ToNode,
    /// From the node to the client.
    FromNode,
}

/// One thing that happened on a connection, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Bytes read or written in one call.
    Data {
        /// Which way.
        direction: Direction,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// That side closed its half (a FIN).
    Fin(Direction),
}

/// One TCP connection a node accepted, as it crossed the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecording {
    /// Accept order across the fleet since recording began (0-based).
    pub order: u64,
    /// The node's name.
    pub node: String,
    /// The node's modelled address (`10.48.36.215`), never the loopback one bound.
    pub modelled_ip: IpAddr,
    /// The node's port.
    pub port: u16,
    /// The client's real (loopback) address, for telling clients apart.
    pub peer: SocketAddr,
    /// Reads, writes and closes in order; each side's FIN appears exactly once.
    pub segments: Vec<Segment>,
}

/// Everything recorded since the last [`crate::Fleet::take_recordings`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recordings {
    /// Connections in accept order.
    pub connections: Vec<ConnectionRecording>,
    /// TLS secrets as key-log lines (`CLIENT_RANDOM <hex> <hex>`, TLS 1.3 labels), no newline.
    pub key_log: Vec<String>,
}

/// At most this many finished connections are kept until taken (a lab serves for hours); the
/// rest are not recorded.
pub const MAX_RECORDED_CONNECTIONS: usize = 4096;
/// At most this many bytes of one connection are kept; later bytes are not recorded.
pub const MAX_RECORDED_BYTES: usize = 16 << 20;

/// The fleet's recorder: the switch, the finished connections, the secrets.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    enabled: AtomicBool,
    /// Keep the TLS secrets even when not recording bytes (a node container's program).
    secrets: AtomicBool,
    next: AtomicU64,
    done: Mutex<Vec<ConnectionRecording>>,
    key_log: Mutex<Vec<String>>,
}

impl Recorder {
    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
    }

    pub(crate) fn set_secrets(&self, on: bool) {
        self.secrets.store(on, Ordering::SeqCst);
    }

    fn keeps_secrets(&self) -> bool {
        self.enabled.load(Ordering::SeqCst) || self.secrets.load(Ordering::SeqCst)
    }

    /// A recording for a connection just accepted, or `None` when recording is off.
    pub(crate) fn begin(
        self: &Arc<Self>,
        node: &str,
        modelled_ip: IpAddr,
        port: u16,
        peer: SocketAddr,
    ) -> Option<Live> {
        if !self.enabled.load(Ordering::SeqCst) {
            return None;
        }
        let order = self.next.fetch_add(1, Ordering::SeqCst);
        Some(Live {
            bytes: 0,
            recorder: self.clone(),
            recording: ConnectionRecording {
                order,
                node: node.to_owned(),
                modelled_ip,
                port,
                peer,
                segments: Vec::new(),
            },
        })
    }

    pub(crate) fn take(&self) -> Recordings {
        let mut connections = std::mem::take(&mut *self.done.lock().unwrap_or_else(PoisonError::into_inner));
        connections.sort_by_key(|c| c.order);
        let key_log = std::mem::take(&mut *self.key_log.lock().unwrap_or_else(PoisonError::into_inner));
        Recordings { connections, key_log }
    }
}

/// A connection being recorded; handed to the fleet's list when dropped.
#[derive(Debug)]
pub(crate) struct Live {
    recorder: Arc<Recorder>,
    recording: ConnectionRecording,
    /// Bytes kept so far.
    bytes: usize,
}

impl Live {
    fn data(&mut self, direction: Direction, bytes: &[u8]) {
        if !bytes.is_empty() && self.bytes + bytes.len() <= MAX_RECORDED_BYTES {
            self.bytes += bytes.len();
            self.recording.segments.push(Segment::Data { direction, bytes: bytes.to_vec() });
        }
    }

    fn fin(&mut self, direction: Direction) {
        if !self.recording.segments.contains(&Segment::Fin(direction)) {
            self.recording.segments.push(Segment::Fin(direction));
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // Closing the socket sends the node's FIN if it had not shut down; the client's close
        // follows (it has nothing left to read).
        self.fin(Direction::FromNode);
        self.fin(Direction::ToNode);
        let recording = std::mem::replace(
            &mut self.recording,
            ConnectionRecording {
                order: 0,
                node: String::new(),
                modelled_ip: IpAddr::from([0, 0, 0, 0]),
                port: 0,
                peer: SocketAddr::from(([0, 0, 0, 0], 0)),
                segments: Vec::new(),
            },
        );
        let mut done = self.recorder.done.lock().unwrap_or_else(PoisonError::into_inner);
        if done.len() < MAX_RECORDED_CONNECTIONS {
            done.push(recording);
        }
    }
}

/// A socket that writes what crosses it into a [`Live`] recording, if it has one.
#[derive(Debug)]
pub(crate) struct Recorded<S> {
    inner: S,
    live: Option<Live>,
}

impl<S> Recorded<S> {
    pub(crate) fn new(inner: S, live: Option<Live>) -> Self {
        Recorded { inner, live }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Some(live), Poll::Ready(Ok(()))) = (this.live.as_mut(), &polled) {
            let read = buf.filled().get(before..).unwrap_or_default();
            if read.is_empty() && buf.remaining() > 0 {
                live.fin(Direction::ToNode);
            } else {
                live.data(Direction::ToNode, read);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let (Some(live), Poll::Ready(Ok(n))) = (this.live.as_mut(), &polled) {
            live.data(Direction::FromNode, buf.get(..*n).unwrap_or_default());
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        if let (Some(live), Poll::Ready(_)) = (this.live.as_mut(), &polled) {
            live.fin(Direction::FromNode);
        }
        polled
    }
}

/// The key log every node config carries: the recorder's when recording is on, and the
/// `SSLKEYLOGFILE` file when the fleet was started with `key_log`.
#[derive(Debug)]
pub(crate) struct NodeKeyLog {
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) file: Option<Arc<KeyLogFile>>,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl KeyLog for NodeKeyLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if let Some(file) = &self.file {
            file.log(label, client_random, secret);
        }
        if self.recorder.keeps_secrets() {
            let line = format!("{label} {} {}", hex(client_random), hex(secret));
            let mut key_log = self.recorder.key_log.lock().unwrap_or_else(PoisonError::into_inner);
            // A TLS 1.3 session logs five lines; keep as many as the connections kept need.
            if key_log.len() < MAX_RECORDED_CONNECTIONS * 5 {
                key_log.push(line);
            }
        }
    }

    fn will_log(&self, label: &str) -> bool {
        self.file.as_ref().is_some_and(|f| f.will_log(label)) || self.recorder.keeps_secrets()
    }
}
