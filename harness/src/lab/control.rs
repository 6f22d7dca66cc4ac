//! The lab's control port: how `lab check`, `reissue` and `stop` reach the background serve
//! process. One line in (`<token> reload`, `<token> reissue <json>`, `<token> capture`,
//! `<token> stop`), one JSON
//! answer out, on 127.0.0.1.
//!
//! Any local process can connect, so the port trusts nothing it reads: a line must start with
//! the lab's [`ControlToken`] (random, from the crypto provider's secure random, kept in
//! `lab.toml`, which only its owner can read); a line is at most [`ControlSettings::max_line`]
//! bytes and must arrive within [`ControlSettings::read_timeout`]; every connection is served in
//! a task of its own, so a silent client delays nobody; and a failed accept (out of descriptors)
//! is retried after a pause, never in a spin and never by giving up. Commands that pass go, one
//! at a time, to whoever owns the lab ([`Asked`]); everything else is answered with a
//! [`Refused`] and closed.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};

use crate::source::printable;

/// How the control port treats its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlSettings {
    /// How long a client has to send its whole line (counted from the connection, so a trickle
    /// does not stretch it). Default 10 s.
    pub read_timeout: Duration,
    /// The longest line, in bytes, newline excluded. Default 64 KiB.
    pub max_line: usize,
    /// Connections served at once; more wait in the listen queue. Default 32.
    pub max_connections: usize,
    /// The pause after a failed accept (out of descriptors, EMFILE). Default 100 ms.
    pub accept_backoff: Duration,
}

impl Default for ControlSettings {
    fn default() -> ControlSettings {
        ControlSettings {
            read_timeout: Duration::from_secs(10),
            max_line: 64 * 1024,
            max_connections: 32,
            accept_backoff: Duration::from_millis(100),
        }
    }
}

/// What a refused line drains at most before its connection is closed: the refusal is sent
/// first, and a client still sending would otherwise get a reset that can swallow it.
const DRAIN: u64 = 16 << 20;

/// The longest answer a client reads (a reload report is a few KiB).
const MAX_ANSWER: u64 = 16 << 20;

/// The secret every control line starts with: 32 bytes from the crypto provider's secure
/// random, in hex. Its `Debug` does not show it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ControlToken(String);

impl std::fmt::Debug for ControlToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlToken(..)")
    }
}

impl ControlToken {
    /// A fresh token.
    pub fn generate() -> Result<ControlToken, ControlError> {
        let mut bytes = [0u8; 32];
        rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut bytes)
            .map_err(|_| ControlError::Random)?;
        Ok(ControlToken(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// The token as `lab.toml` holds it and a line sends it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, compared in constant time. An empty token (a
    /// `lab.toml` written before tokens existed) matches nothing.
    fn matches(&self, presented: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        if mine.is_empty() || mine.len() != presented.len() {
            return false;
        }
        mine.iter().zip(presented).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
    }
}

/// What the lab is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Apply the workspace's files and refresh discovery: a `ReloadReport`.
    Reload,
    /// Re-issue certificates; the JSON of a `Reissue`, read by whoever obeys.
    Reissue(String),
    /// Write the last `check`'s traffic as a capture: a `CaptureAnswer`.
    Capture,
    /// Stop serving.
    Stop,
}

impl Command {
    /// Its word on the wire.
    pub fn word(&self) -> &'static str {
        match self {
            Command::Reload => "reload",
            Command::Reissue(_) => "reissue",
            Command::Capture => "capture",
            Command::Stop => "stop",
        }
    }
}

/// A command that passed the token check, waiting for its JSON answer.
#[derive(Debug)]
pub struct Asked {
    /// The command.
    pub command: Command,
    answer: oneshot::Sender<String>,
}

impl Asked {
    /// Sends the JSON answer back to the client.
    pub fn answer(self, json: String) {
        // A client that hung up meanwhile is no fault of the lab's.
        let _ = self.answer.send(json);
    }
}

/// The answer to a line the control port will not carry out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refused {
    /// Why, in words (never an echo of what the client sent).
    pub refused: String,
}

impl Refused {
    /// The JSON answer.
    pub fn json(reason: impl Into<String>) -> String {
        let refused = Refused { refused: reason.into() };
        // Invariant: a struct of one string always serialises.
        serde_json::to_string(&refused).unwrap_or_else(|_| "{\"refused\":\"refused\"}".into())
    }
}

/// Why the control port could not start, or a client could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The crypto provider's random generator failed.
    #[error("no random bytes for the control token")]
    Random,
    /// Binding the port.
    #[error("binding the control port: {0}")]
    Bind(#[source] std::io::Error),
    /// An address that is not on 127.0.0.0/8, refused before any dial.
    #[error("{what} ({addr}) is not a loopback address (127.0.0.0/8); lab commands dial loopback only")]
    NotLoopback {
        /// What the address is (`the control port in lab.toml`).
        what: String,
        /// The address.
        addr: SocketAddr,
    },
    /// Connecting to the port.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Sending the line or reading the answer.
    #[error("talking to the control port at {addr}: {source}")]
    Exchange {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// `addr` if it is on 127.0.0.0/8, the only addresses lab commands dial.
pub fn loopback_only(what: &str, addr: SocketAddr) -> Result<SocketAddr, ControlError> {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => Ok(addr),
        _ => Err(ControlError::NotLoopback { what: what.to_string(), addr }),
    }
}

/// Sends `<token> <command>` to the control port at `addr` (loopback only, checked before the
/// dial) and returns its answer, read up to 16 MiB and `timeout`. Blocking.
pub fn ask(addr: SocketAddr, token: &ControlToken, command: &str, timeout: Duration) -> Result<String, ControlError> {
    loopback_only("the control port", addr)?;
    let mut stream = crate::net::connect(addr, Duration::from_secs(5), crate::net::Reach::Loopback)
        .map_err(|e| ControlError::Connect { addr, source: e.into() })?;
    let exchange = |source| ControlError::Exchange { addr, source };
    stream.set_read_timeout(Some(timeout)).map_err(exchange)?;
    stream.set_write_timeout(Some(timeout)).map_err(exchange)?;
    stream.write_all(format!("{} {command}\n", token.as_str()).as_bytes()).map_err(exchange)?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer).map_err(exchange)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// A running control port.
pub struct ControlPort {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ControlPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPort").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl ControlPort {
    /// Binds 127.0.0.1 (a free port) and serves; the commands that pass arrive on the
    /// receiver, one at a time. `log` gets a line per command, refusal and accept failure
    /// (never a client's bytes).
    pub async fn start(
        settings: ControlSettings,
        token: ControlToken,
        log: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<(ControlPort, mpsc::Receiver<Asked>), ControlError> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(ControlError::Bind)?;
        let addr = listener.local_addr().map_err(ControlError::Bind)?;
        let (commands, asked) = mpsc::channel(settings.max_connections.max(1));
        let (shutdown, stop) = watch::channel(false);
        let port = Port { settings, token: Arc::new(token), commands, log: Arc::new(log) };
        let task = tokio::spawn(port.accept_loop(listener, stop));
        Ok((ControlPort { addr, shutdown, task }, asked))
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving: connections get a second to finish (drop the command receiver first, so
    /// that those waiting for an answer are told the lab is stopping), then are closed.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// What every connection task shares.
#[derive(Clone)]
struct Port {
    settings: ControlSettings,
    token: Arc<ControlToken>,
    commands: mpsc::Sender<Asked>,
    log: Sink,
}

impl Port {
    async fn accept_loop(self, listener: TcpListener, stop: watch::Receiver<bool>) {
        let limits = crate::net::AcceptLimits {
            max_connections: self.settings.max_connections,
            accept_backoff: self.settings.accept_backoff,
        };
        let log = self.log.clone();
        // The connection that asked to stop is still writing its answer: a moment for it.
        let linger = Duration::from_secs(1);
        crate::net::accept_bounded(
            listener,
            limits,
            "control",
            |line| log(line),
            stop,
            linger,
            |tcp, peer, place| self.clone().serve(tcp, peer, place),
        )
        .await;
    }

    /// One connection: a bounded line within the read timeout, the token, the command; its
    /// answer, or a refusal.
    async fn serve(self, mut tcp: tokio::net::TcpStream, peer: SocketAddr, _place: OwnedSemaphorePermit) {
        let (read, mut write) = tcp.split();
        let mut reader = tokio::io::BufReader::new(read);
        let mut line = Vec::new();
        let limit = self.settings.max_line as u64 + 1;
        let mut bounded = (&mut reader).take(limit);
        let read_line = bounded.read_until(b'\n', &mut line);
        let refusal = match tokio::time::timeout(self.settings.read_timeout, read_line).await {
            Err(_) => Err(format!("no complete line within {} ms", self.settings.read_timeout.as_millis())),
            // A read error, or a connection closed without a byte (a port probe): nothing to answer.
            Ok(Err(_)) | Ok(Ok(0)) => return,
            Ok(Ok(_)) if !line.ends_with(b"\n") && line.len() as u64 == limit => {
                Err(format!("a control line is at most {} bytes", self.settings.max_line))
            }
            Ok(Ok(_)) => self.command(&line),
        };
        let answer = match refusal {
            Ok(command) => {
                (self.log)(&format!("control: {}", command.word()));
                let (answer, answered) = oneshot::channel();
                let asked = Asked { command, answer };
                match self.commands.send(asked).await {
                    Ok(()) => answered.await.unwrap_or_else(|_| Refused::json("the lab is stopping")),
                    Err(_) => Refused::json("the lab is stopping"),
                }
            }
            Err(reason) => {
                (self.log)(&format!("control: refused a line from {peer}: {reason}"));
                Refused::json(reason)
            }
        };
        let _ = write.write_all(answer.as_bytes()).await;
        let _ = write.shutdown().await;
        // Let a client still sending see the answer rather than a reset: read what it sends
        // (up to DRAIN bytes, within the read timeout) and drop it.
        let (mut rest, mut sink) = ((&mut reader).take(DRAIN), tokio::io::sink());
        let _ = tokio::time::timeout(self.settings.read_timeout, tokio::io::copy(&mut rest, &mut sink)).await;
    }

    /// The command of a line, if it carries the token and names one.
    fn command(&self, line: &[u8]) -> Result<Command, String> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (token, rest) = match line.iter().position(|b| *b == b' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &[][..]),
        };
        if !self.token.matches(token) {
            return Err("the line does not start with this lab's token (see lab.toml)".into());
        }
        let rest = std::str::from_utf8(rest).map_err(|_| "the command is not UTF-8".to_string())?;
        let (word, argument) = rest.split_once(' ').unwrap_or((rest, ""));
        match (word, argument.trim()) {
            ("reload", "") => Ok(Command::Reload),
            ("capture", "") => Ok(Command::Capture),
            ("stop", "") => Ok(Command::Stop),
            ("reissue", json) if !json.is_empty() => Ok(Command::Reissue(json.to_string())),
            _ => Err(format!(
                "unknown command '{}' (reload, reissue <json>, stop)",
                printable(&rest.chars().take(64).collect::<String>())
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(token: &str) -> Port {
        let (commands, _) = mpsc::channel(1);
        Port {
            settings: ControlSettings::default(),
            token: Arc::new(ControlToken(token.into())),
            commands,
            log: Arc::new(|_: &str| {}),
        }
    }

    #[test]
    fn tokens_are_64_hex_digits_and_differ() {
        let (a, b) = (ControlToken::generate().expect("random"), ControlToken::generate().expect("random"));
        assert_eq!(a.as_str().len(), 64);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "ControlToken(..)");
    }

    #[test]
    fn a_line_needs_the_token_and_a_known_command() {
        let port = port("abc");
        assert_eq!(port.command(b"abc reload\n"), Ok(Command::Reload));
        assert_eq!(port.command(b"abc stop\r\n"), Ok(Command::Stop));
        assert_eq!(
            port.command(b"abc reissue {\"node\":\"cucm\"}\n"),
            Ok(Command::Reissue("{\"node\":\"cucm\"}".into()))
        );
        for line in [&b"stop\n"[..], b"abd stop\n", b"ab stop\n", b"abcd stop\n", b" abc stop\n", b"\n"] {
            assert!(port.command(line).expect_err("refused").contains("token"), "{line:?}");
        }
        let unknown = port.command(b"abc stop\x1b]0;x\x07\n").expect_err("refused");
        assert!(unknown.contains("unknown command 'stop\\x1b]0;x\\x07'"), "{unknown}");
        assert!(port.command(b"abc reissue\n").is_err());
    }

    #[test]
    fn an_empty_token_matches_nothing() {
        let port = port("");
        assert!(port.command(b" stop\n").is_err());
        assert!(port.command(b"stop\n").is_err());
    }

    #[test]
    fn only_127_0_0_0_slash_8_is_dialled() {
        assert!(loopback_only("x", "127.0.0.1:1".parse().expect("addr")).is_ok());
        assert!(loopback_only("x", "127.34.163.1:8443".parse().expect("addr")).is_ok());
        for addr in ["0.0.0.0:1", "192.0.2.1:9", "[::1]:1", "[::ffff:127.0.0.1]:1", "10.0.0.1:1"] {
            let error = loopback_only("the control port in lab.toml", addr.parse().expect("addr")).expect_err(addr);
            assert!(error.to_string().contains(&format!("the control port in lab.toml ({addr}) is not a loopback")));
        }
    }
}
