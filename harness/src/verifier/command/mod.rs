//! `--verifier cmd:<path>`: any program as Expressway-C's traffic server, over JSON lines.
//!
//! The harness starts the command once per Expressway-C peer of a scenario and writes one JSON
//! object per line on its stdin: a `session` message with the configuration in force, a
//! `reconfigure` message (same fields, plus `change`) on every change, and a `request` message
//! per origin request. The command answers each `request`, and only those, with one line on
//! stdout: `{"id": N, "verdict": "accept" | "reject" | "unsupported", ...}`. The protocol is
//! versioned ([`PROTOCOL_VERSION`]) and its JSON Schema is `adapters/protocol.schema.json`,
//! documented in `adapters/PROTOCOL.md`.
//!
//! The command is not trusted. It runs in a process group of its own, killed whole on a fault,
//! a timeout and when the verifier is dropped, so no grandchild outlives it; its answer lines
//! are read up to a cap and its stderr is kept in a bounded ring, so no output costs more than
//! [`CommandLimits`] allow; its scratch folder (`mralab-cmd-*`: the trust store, the client
//! certificate and key, 0600) is removed on every way out. A command that exits, hangs past the
//! answer timeout, or prints a line that is not an answer to the request asked (a line over the
//! cap included) is a harness fault ([`VerifierFault::Request`]) quoting the end of its stderr:
//! never a verdict. Verdicts become [`Outcome`]s as the module's `outcome_of` says: accept is
//! 200, reject is 502 `connect failed` with the failed check the command names (or one guessed
//! from its error text), unsupported is status 0 with
//! `Failure::Handshake { reason: "unsupported: ..." }`. A request to a name that does not
//! resolve ([`OriginRequest::resolves`]) is never sent: it has nothing to dial, and the harness
//! answers it 502 `connect failed` with `Failure::Resolve`. Nor is a request to a node that is
//! down or partitioned ([`OriginRequest::origin_state`]): the in-process fleet still listens on
//! loopback, where nothing can be refused or dropped for one command, so the harness answers it
//! 502 `connect failed` with `Failure::Connect`, as nothing reached the node.

use std::fmt;
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use rustls_pki_types::PrivateKeyDer;
use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::{Change, Failure, OriginRequest, Outcome, ServedCert, Session, Verifier, VerifierFault};
use crate::ciphers::CipherError;
use crate::expressway::TlsVersion;
use crate::verifier::Family;

mod process;
mod protocol;
use process::*;
pub use protocol::*;

/// The protocol version this harness speaks; sent in every `session` message.
pub const PROTOCOL_VERSION: u32 = 1;

/// The status an `unsupported` verdict maps to: no HTTP status at all.
pub const UNSUPPORTED_STATUS: u16 = 0;

/// What a command may cost: every wait on it is bounded and everything read from it capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandLimits {
    /// How long a command may take to answer one request, and to take a message from its
    /// stdin.
    pub answer_timeout: Duration,
    /// How long a command has to exit once its stdin is closed, and a failed command to finish
    /// what it writes, before its process group is killed.
    pub exit_grace: Duration,
    /// The longest answer line, in bytes before its newline; a longer one is a fault, read no
    /// further than the cap.
    pub max_answer_line: usize,
    /// How many of the last bytes of stderr are kept, and quoted in a fault.
    pub stderr_kept: usize,
}

impl CommandLimits {
    /// 10 s per answer, 500 ms to exit, 1 MiB answer lines, the last 64 KiB of stderr.
    pub const DEFAULT: CommandLimits = CommandLimits {
        answer_timeout: Duration::from_secs(10),
        exit_grace: Duration::from_millis(500),
        max_answer_line: 1 << 20,
        stderr_kept: 64 << 10,
    };
}

impl Default for CommandLimits {
    fn default() -> CommandLimits {
        CommandLimits::DEFAULT
    }
}

/// How much of a bad line a fault shows, in characters.
const SHOWN: usize = 200;
/// How often a wait for an answer looks whether the command has exited.
const POLL: Duration = Duration::from_millis(20);
/// How much the pipe readers read at once.
const CHUNK: usize = 64 << 10;

/// What the harness was writing or waiting for when a command failed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum During {
    Session,
    Reconfigure,
    Request(u64),
}

impl fmt::Display for During {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            During::Session => f.write_str("session"),
            During::Reconfigure => f.write_str("reconfigure"),
            During::Request(id) => write!(f, "request {id}"),
        }
    }
}

/// How a command ended, as `waitid` sees it without reaping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Code(i32),
    Signal(i32),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit status: {code}"),
            Exit::Signal(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

/// ` (exit status: 3)`, or nothing when the command has not been seen to end.
fn exit_note(exit: &Option<Exit>) -> String {
    exit.map(|e| format!(" ({e})")).unwrap_or_default()
}

/// A session file that cannot be written.
#[derive(Debug, thiserror::Error)]
enum ScratchError {
    /// The `mralab-cmd-*` folder.
    #[error("cannot create a folder for the session files: {source}")]
    Folder { source: io::Error },
    /// One file in it.
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Why a command is no use. The first four are configuration faults; the rest are about a
/// running command and become request faults quoting the end of its stderr.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error("cannot start {}: {source}", .path.display())]
    Start { path: PathBuf, source: io::Error },
    #[error("no pipes to the command")]
    NoPipes,
    #[error(transparent)]
    Scratch(#[from] ScratchError),
    #[error("cipher string '{ciphers}': {source}")]
    Ciphers { ciphers: String, source: CipherError },
    #[error("{during}: cannot write to the command ({}): {source}", .exit.map_or("did it exit?".to_string(), |e| format!("it exited, {e}")))]
    Write { during: During, exit: Option<Exit>, source: io::Error },
    #[error("{during}: the command took nothing from its stdin for {} s (is it reading it?)", .timeout.as_secs_f64())]
    WriteTimeout { during: During, timeout: Duration },
    #[error("{during}: not a protocol answer ({source}): {line}")]
    NotAnAnswer { during: During, source: serde_json::Error, line: String },
    #[error("{during}: an answer line longer than {max} bytes: {start}…")]
    LineTooLong { during: During, max: usize, start: String },
    #[error("{during}: cannot read its stdout: {source}")]
    Read { during: During, source: io::Error },
    #[error("{during}: the answer is for request {got}")]
    WrongId { during: During, got: u64 },
    #[error("{during}: no answer within {} s (hung?)", .timeout.as_secs_f64())]
    Timeout { during: During, timeout: Duration },
    #[error("{during}: the command exited without answering{}", exit_note(.exit))]
    Exited { during: During, exit: Option<Exit> },
}

impl CommandError {
    /// A fault of the configuration rather than of a running command.
    fn is_config(&self) -> bool {
        matches!(
            self,
            CommandError::Start { .. }
                | CommandError::NoPipes
                | CommandError::Scratch(_)
                | CommandError::Ciphers { .. }
        )
    }
}

/// A verifier that is an external command speaking the JSON-lines protocol.
#[derive(Debug)]
pub struct CommandVerifier {
    path: PathBuf,
    limits: CommandLimits,
    running: Option<Running>,
    files: Option<SessionFiles>,
    next_id: u64,
}

impl CommandVerifier {
    /// A verifier for the command at `path` under [`CommandLimits::DEFAULT`]; nothing runs
    /// until [`Verifier::open`].
    pub fn new(path: impl Into<PathBuf>) -> CommandVerifier {
        CommandVerifier { path: path.into(), limits: CommandLimits::DEFAULT, running: None, files: None, next_id: 1 }
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: CommandLimits) -> CommandVerifier {
        self.limits = limits;
        self
    }

    /// Sets the answer timeout alone (tests use short ones).
    pub fn with_timeout(mut self, timeout: Duration) -> CommandVerifier {
        self.limits.answer_timeout = timeout;
        self
    }

    /// Turns `error` into a fault. Every fault ends the command (its whole process group) and
    /// removes its scratch folder; a fault of the running command quotes the end of its stderr.
    fn fault(&mut self, error: CommandError) -> VerifierFault {
        let verifier = self.name();
        let stderr = self.stop();
        if error.is_config() {
            return VerifierFault::Config { verifier, message: error.to_string() };
        }
        VerifierFault::Request { verifier, message: format!("{error}; its stderr:\n{stderr}") }
    }

    /// Ends the command and removes its scratch folder; returns the end of its stderr.
    fn stop(&mut self) -> String {
        self.files = None;
        match self.running.take() {
            Some(running) => running.finish(self.limits.exit_grace),
            None => "(the command was not running)".into(),
        }
    }

    fn send(&mut self, during: During, message: &Value) -> Result<(), VerifierFault> {
        let Some(running) = self.running.as_ref() else {
            let source = io::Error::other("the command is not running");
            return Err(self.fault(CommandError::Write { during, exit: None, source }));
        };
        let timeout = self.limits.answer_timeout;
        let source = match running.write(format!("{message}\n"), timeout) {
            Ok(()) => return Ok(()),
            Err(Unwritten::Blocked) => return Err(self.fault(CommandError::WriteTimeout { during, timeout })),
            Err(Unwritten::Failed(source)) => source,
        };
        // It stopped reading, most likely by exiting: what it printed says why.
        let grace = self.limits.exit_grace;
        let error = match running.line_within(grace) {
            Some(Line::Text(line)) => match serde_json::from_str::<Answer>(&line) {
                Err(e) => not_an_answer(during, e, &line),
                Ok(_) => CommandError::Write { during, exit: running.exit_within(grace), source },
            },
            Some(Line::TooLong { start }) => {
                CommandError::LineTooLong { during, max: self.limits.max_answer_line, start }
            }
            Some(Line::Failed(e)) => CommandError::Read { during, source: e },
            None => CommandError::Write { during, exit: running.exit_within(grace), source },
        };
        Err(self.fault(error))
    }

    /// Waits for the answer to request `id`: the next line, until the timeout or the command's
    /// end, whichever comes first.
    fn answer(&mut self, id: u64) -> Result<Answer, CommandError> {
        let during = During::Request(id);
        let limits = self.limits;
        let Some(running) = self.running.as_ref() else {
            return Err(CommandError::Exited { during, exit: None });
        };
        let start = Instant::now();
        let line = loop {
            let left = limits.answer_timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(CommandError::Timeout { during, timeout: limits.answer_timeout });
            }
            match running.lines.recv_timeout(left.min(POLL)) {
                Ok(line) => break line,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(CommandError::Exited { during, exit: running.exit_within(limits.exit_grace) });
                }
                Err(RecvTimeoutError::Timeout) => {
                    // Exited, while something it started may hold its stdout open: what it
                    // wrote before the end is in the pipe already.
                    if let Some(exit) = running.exit() {
                        match running.line_within(limits.exit_grace) {
                            Some(line) => break line,
                            None => return Err(CommandError::Exited { during, exit: Some(exit) }),
                        }
                    }
                }
            }
        };
        let line = match line {
            Line::Text(line) => line,
            Line::TooLong { start } => {
                return Err(CommandError::LineTooLong { during, max: limits.max_answer_line, start });
            }
            Line::Failed(source) => return Err(CommandError::Read { during, source }),
        };
        let answer: Answer = serde_json::from_str(&line).map_err(|e| not_an_answer(during, e, &line))?;
        if answer.id != id {
            return Err(CommandError::WrongId { during, got: answer.id });
        }
        Ok(answer)
    }

    /// Writes the session's trust store and client identity, and describes the session.
    fn session_message(
        &mut self,
        kind: &str,
        session: &Session,
        change: Option<Change>,
    ) -> Result<Value, CommandError> {
        let files = match self.files.as_mut() {
            Some(files) => files,
            None => self.files.insert(SessionFiles::new()?),
        };
        files.generation += 1;
        let trust: String = session.trust.ders().iter().map(|der| crate::pki::pem_block("CERTIFICATE", der)).collect();
        let trust_path = files.write("trust-store.pem", &trust, false)?;
        let (cert_path, key_path) = match &session.client_identity {
            Some(identity) => {
                let chain: String =
                    identity.chain.iter().map(|der| crate::pki::pem_block("CERTIFICATE", der)).collect();
                let (label, der) = match &identity.key {
                    PrivateKeyDer::Pkcs1(k) => ("RSA PRIVATE KEY", k.secret_pkcs1_der()),
                    PrivateKeyDer::Sec1(k) => ("EC PRIVATE KEY", k.secret_sec1_der()),
                    PrivateKeyDer::Pkcs8(k) => ("PRIVATE KEY", k.secret_pkcs8_der()),
                    _ => ("PRIVATE KEY", &[][..]),
                };
                (
                    Some(files.write("client-cert.pem", &chain, false)?),
                    Some(files.write("client-key.pem", &crate::pki::pem_block(label, der), true)?),
                )
            }
            None => (None, None),
        };
        let ciphers = session.expressway.ciphers();
        let list = crate::ciphers::CipherList::parse(&ciphers)
            .map_err(|source| CommandError::Ciphers { ciphers: ciphers.clone(), source })?;
        let time = session.validation_time;
        let mut message = json!({
            "type": kind,
            "protocol": PROTOCOL_VERSION,
            "peer": session.peer,
            "expressway_version": session.expressway.version.to_string(),
            "verify_origin_server": session.expressway.verify_origin_server,
            "policy": session.expressway.policy().to_string(),
            "properties": session.expressway.properties().to_string(),
            "trust_store_pem": trust_path,
            "trust_store_count": session.trust.ders().len(),
            "client_cert_pem": cert_path,
            "client_key_pem": key_path,
            "cipher_string": ciphers,
            "ciphers": list.openssl_order(),
            "tls_versions": session.expressway.tls.iter().map(|v| match v {
                TlsVersion::Tls12 => "1.2",
                TlsVersion::Tls13 => "1.3",
            }).collect::<Vec<_>>(),
            "validation_time": time.unix_timestamp(),
            "validation_time_rfc3339": time.format(&Rfc3339).unwrap_or_default(),
        });
        if let Some(change) = change {
            message["change"] = json!(match change {
                Change::TrustStore => "trust-store",
                Change::Ciphers => "ciphers",
                Change::Verification => "verification",
                Change::Version => "version",
            });
        }
        Ok(message)
    }
}

/// A line that is not a protocol answer, shown as far as [`SHOWN`] characters.
fn not_an_answer(during: During, source: serde_json::Error, line: &str) -> CommandError {
    CommandError::NotAnAnswer { during, source, line: line.chars().take(SHOWN).collect() }
}

impl Drop for CommandVerifier {
    fn drop(&mut self) {
        // The command's process group goes first, then the scratch folder with `files`.
        if let Some(mut running) = self.running.take() {
            running.end(self.limits.exit_grace);
        }
    }
}

impl Verifier for CommandVerifier {
    fn name(&self) -> String {
        format!("cmd:{}", self.path.display())
    }

    fn open(&mut self, session: &Session) -> Result<(), VerifierFault> {
        if self.running.is_none() {
            match Running::spawn(&self.path, &self.limits) {
                Ok(running) => self.running = Some(running),
                Err(e) => return Err(self.fault(e)),
            }
        }
        let message = self.session_message("session", session, None).map_err(|e| self.fault(e))?;
        self.send(During::Session, &message)
    }

    fn reconfigure(&mut self, session: &Session, change: Change) -> Result<(), VerifierFault> {
        let message = self.session_message("reconfigure", session, Some(change)).map_err(|e| self.fault(e))?;
        self.send(During::Reconfigure, &message)
    }

    fn request(&mut self, request: &OriginRequest) -> Result<Outcome, VerifierFault> {
        if !request.resolves {
            // No address, nothing to dial: the command is not asked. The lookup fails before
            // any verifier could see a certificate, whichever verifier it is.
            return Ok(Outcome {
                status: 502,
                reason: "connect failed".into(),
                failure: Some(Failure::Resolve { host: request.host.clone() }),
                ..Outcome::default()
            });
        }
        if request.origin_state != crate::verifier::OriginState::Listening {
            return Ok(Outcome {
                status: 502,
                reason: "connect failed".into(),
                failure: Some(Failure::Connect { reason: format!("{}: no connection reached the node", request.host) }),
                ..Outcome::default()
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        self.send(During::Request(id), &request_message(id, request))?;
        match self.answer(id) {
            Ok(answer) => Ok(outcome_of(answer, request)),
            Err(e) => Err(self.fault(e)),
        }
    }
}

/// Makes a [`CommandVerifier`] per peer.
#[derive(Debug, Clone)]
pub struct CommandFactory {
    /// The command.
    pub path: PathBuf,
    /// The limits each command runs under.
    pub limits: CommandLimits,
}

impl CommandFactory {
    /// A factory for the command at `path` under [`CommandLimits::DEFAULT`].
    pub fn new(path: impl Into<PathBuf>) -> CommandFactory {
        CommandFactory { path: path.into(), limits: CommandLimits::DEFAULT }
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: CommandLimits) -> CommandFactory {
        self.limits = limits;
        self
    }

    /// The snapshot folder for the command: `cmd-` and its file stem up to the first `_`
    /// (`adapters/openssl.sh` → `cmd-openssl`, `adapters/python_ssl.py` → `cmd-python`).
    pub fn snapshot_dir(path: &Path) -> String {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = stem.split('_').next().unwrap_or_default();
        format!("cmd-{stem}")
    }
}

impl crate::verifier::VerifierFactory for CommandFactory {
    fn name(&self) -> String {
        format!("cmd:{}", self.path.display())
    }

    fn family(&self) -> Family {
        Family::Other
    }

    fn make(&self) -> Result<Box<dyn Verifier>, VerifierFault> {
        Ok(Box::new(CommandVerifier::new(self.path.clone()).with_limits(self.limits)))
    }

    /// Commands are real verifiers: most read the real clock (curl and Python cannot be told
    /// another time), so the PKI is built around now and the validation time sent is now.
    fn needs_real_clock(&self) -> bool {
        true
    }
}
