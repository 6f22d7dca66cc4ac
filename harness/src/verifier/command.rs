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
//! answers it 502 `connect failed` with `Failure::Resolve`.

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

/// What the stdout reader hands over, in order; it stops after anything but a line.
#[derive(Debug)]
enum Line {
    /// One line, without its line end.
    Text(String),
    /// A line longer than the cap: how it starts.
    TooLong { start: String },
    /// Reading failed (or the line was not UTF-8).
    Failed(io::Error),
}

/// Reads `stdout` line by line, never holding more than `max` bytes of a line, until the end,
/// an error, a line over the cap, or nobody listening.
fn read_lines(stdout: ChildStdout, max: usize, tx: &Sender<Line>) {
    let mut reader = BufReader::with_capacity(CHUNK, stdout);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Line::Failed(e));
                return;
            }
        };
        if buf.is_empty() {
            // The end: a last line without a newline still counts, as with `BufRead::lines`.
            if !line.is_empty() {
                let _ = tx.send(text_of(line));
            }
            return;
        }
        let newline = buf.iter().position(|&b| b == b'\n');
        let take = newline.unwrap_or(buf.len());
        if line.len() + take > max {
            // Enough bytes for the characters a fault shows.
            let mut start = line;
            start.truncate(SHOWN * 4);
            start.extend_from_slice(&buf[..take.min(SHOWN * 4 - start.len())]);
            let _ = tx.send(Line::TooLong { start: String::from_utf8_lossy(&start).chars().take(SHOWN).collect() });
            return;
        }
        line.extend_from_slice(&buf[..take]);
        reader.consume(take + usize::from(newline.is_some()));
        if newline.is_some() {
            let read = text_of(std::mem::take(&mut line));
            let failed = matches!(read, Line::Failed(_));
            if tx.send(read).is_err() || failed {
                return;
            }
        }
    }
}

/// A line read, without its `\r`, if any; not UTF-8 is a read error.
fn text_of(mut line: Vec<u8>) -> Line {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    match String::from_utf8(line) {
        Ok(text) => Line::Text(text),
        Err(_) => Line::Failed(io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8")),
    }
}

/// The end of a command's stderr: at most `kept` bytes shown, and how many came before them.
#[derive(Debug)]
struct StderrTail {
    kept: usize,
    /// The last bytes read; up to twice `kept`, so that trimming is amortised.
    bytes: Vec<u8>,
    total: u64,
}

impl StderrTail {
    fn new(kept: usize) -> StderrTail {
        StderrTail { kept, bytes: Vec::new(), total: 0 }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let chunk = &chunk[chunk.len().saturating_sub(self.kept)..];
        if self.bytes.len() + chunk.len() > 2 * self.kept {
            let keep_from = (self.bytes.len() + chunk.len()).saturating_sub(self.kept).min(self.bytes.len());
            self.bytes.drain(..keep_from);
        }
        self.bytes.extend_from_slice(chunk);
    }

    /// The kept bytes as text, after a note of how many were dropped, or `(empty)`.
    fn text(&self) -> String {
        let mut shown = &self.bytes[self.bytes.len().saturating_sub(self.kept)..];
        if (shown.len() as u64) < self.total {
            // Do not start in the middle of a character.
            let continuation = shown.iter().take(3).take_while(|&&b| b & 0xC0 == 0x80).count();
            shown = &shown[continuation..];
        }
        let dropped = self.total - shown.len() as u64;
        let text = String::from_utf8_lossy(shown);
        let text = text.trim_end();
        match (dropped, text.is_empty()) {
            (0, true) => "(empty)".into(),
            (0, false) => text.into(),
            (n, _) => format!("[{n} earlier bytes dropped]\n{text}"),
        }
    }
}

/// Reads `stderr` into `tail` until the end.
fn read_stderr(mut stderr: ChildStderr, tail: &Mutex<StderrTail>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => tail.lock().unwrap_or_else(|p| p.into_inner()).push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Writes `lines` to the command's stdin on a thread of its own and reports each write, so
/// that a command that stops reading its stdin blocks that thread, never the harness. Ends
/// (closing stdin) when `lines` closes or a write fails.
fn write_lines(mut stdin: ChildStdin, lines: &Receiver<String>, written: &Sender<io::Result<()>>) {
    for line in lines {
        let result = stdin.write_all(line.as_bytes()).and_then(|()| stdin.flush());
        let failed = result.is_err();
        if written.send(result).is_err() || failed {
            return;
        }
    }
}

/// Why a line could not be written to a command.
#[derive(Debug)]
enum Unwritten {
    /// The write failed: the command closed its stdin, most likely by exiting.
    Failed(io::Error),
    /// The write did not finish within the timeout: the command is not reading its stdin.
    Blocked,
}

/// A running command: the leader of its own process group.
#[derive(Debug)]
struct Running {
    child: Child,
    /// The command's pid, which is also its process group's id.
    pid: Pid,
    /// The group, registered for a signal handler to kill until [`Running::end`] has.
    group: Option<crate::cleanup::Registered>,
    /// Lines for the writer thread; dropping it closes the command's stdin.
    stdin: Option<Sender<String>>,
    written: Receiver<io::Result<()>>,
    lines: Receiver<Line>,
    stderr: Arc<Mutex<StderrTail>>,
    /// Disconnected once the stderr reader has read to the end.
    stderr_open: Receiver<()>,
}

impl Running {
    fn spawn(path: &Path, limits: &CommandLimits) -> Result<Running, CommandError> {
        let mut child = Command::new(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| CommandError::Start { path: path.to_path_buf(), source })?;
        let pid = Pid::from_child(&child);
        let (Some(stdout), Some(stderr), Some(stdin)) = (child.stdout.take(), child.stderr.take(), child.stdin.take())
        else {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            let _ = child.wait();
            return Err(CommandError::NoPipes);
        };
        let (to_write, lines_to_write) = channel();
        let (report, written) = channel();
        std::thread::spawn(move || write_lines(stdin, &lines_to_write, &report));
        let (tx, lines) = channel();
        let max = limits.max_answer_line;
        std::thread::spawn(move || read_lines(stdout, max, &tx));
        let tail = Arc::new(Mutex::new(StderrTail::new(limits.stderr_kept)));
        let sink = Arc::clone(&tail);
        let (open, stderr_open) = channel::<()>();
        std::thread::spawn(move || {
            read_stderr(stderr, &sink);
            drop(open);
        });
        let group = Some(crate::cleanup::process_group(pid));
        Ok(Running { child, pid, group, stdin: Some(to_write), written, lines, stderr: tail, stderr_open })
    }

    /// Writes `line`, waiting at most `timeout` for the command to take it.
    fn write(&self, line: String, timeout: Duration) -> Result<(), Unwritten> {
        let gone = || Unwritten::Failed(io::Error::from(io::ErrorKind::BrokenPipe));
        let stdin = self.stdin.as_ref().ok_or_else(gone)?;
        stdin.send(line).map_err(|_| gone())?;
        match self.written.recv_timeout(timeout) {
            Ok(result) => result.map_err(Unwritten::Failed),
            Err(RecvTimeoutError::Timeout) => Err(Unwritten::Blocked),
            Err(RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }

    /// How the command ended, if it has; it is not reaped, so its pid and process group id
    /// stay its own until [`Running::end`] has killed the group.
    fn exit(&self) -> Option<Exit> {
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        let status = rustix::process::waitid(WaitId::Pid(self.pid), options).ok().flatten()?;
        status.exit_status().map(Exit::Code).or(status.terminating_signal().map(Exit::Signal))
    }

    /// Waits up to `grace` for the command to end.
    fn exit_within(&self, grace: Duration) -> Option<Exit> {
        let start = Instant::now();
        loop {
            let exit = self.exit();
            if exit.is_some() || start.elapsed() >= grace {
                return exit;
            }
            std::thread::sleep(POLL.min(grace));
        }
    }

    /// The next line, if one comes within `wait`.
    fn line_within(&self, wait: Duration) -> Option<Line> {
        self.lines.recv_timeout(wait).ok()
    }

    /// Closes the command's stdin (its cue to exit), gives it `grace` to exit, then kills its
    /// process group (the command and everything it started that stayed in the group) and
    /// reaps it. The group is killed before the command is reaped, so its id cannot have been
    /// reused.
    fn end(&mut self, grace: Duration) {
        self.stdin = None;
        let _ = self.exit_within(grace);
        let _ = rustix::process::kill_process_group(self.pid, Signal::KILL);
        self.group = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ends the command ([`Running::end`]) and returns the end of its stderr, read to the end
    /// when that comes within `grace`.
    fn finish(mut self, grace: Duration) -> String {
        self.end(grace);
        let _ = self.stderr_open.recv_timeout(grace);
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).text()
    }
}

/// The files a session's PEM material is written to (a folder of the owner's, the key readable
/// by the owner only), kept for the command's lifetime and removed with it.
#[derive(Debug)]
struct SessionFiles {
    dir: tempfile::TempDir,
    generation: u32,
    /// Removed by a signal handler too (a private key is in it).
    _registered: crate::cleanup::Registered,
}

impl SessionFiles {
    fn new() -> Result<SessionFiles, ScratchError> {
        let dir = tempfile::Builder::new()
            .prefix("mralab-cmd-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|source| ScratchError::Folder { source })?;
        let _registered = crate::cleanup::folder(dir.path());
        Ok(SessionFiles { dir, generation: 0, _registered })
    }

    /// Writes `text` to a new file of this generation, readable by its owner only when `private`.
    fn write(&self, name: &str, text: &str, private: bool) -> Result<PathBuf, ScratchError> {
        let path = self.dir.path().join(format!("{}-{name}", self.generation));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        if private {
            options.mode(0o600);
        }
        options
            .open(&path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(|source| ScratchError::Write { path: path.clone(), source })?;
        Ok(path)
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

/// One answer line, as the schema describes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    id: u64,
    verdict: Verdict,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    check: Option<Check>,
    #[serde(default)]
    code: Option<i32>,
    #[serde(default)]
    depth: Option<usize>,
    #[serde(default)]
    log_lines: Vec<String>,
    #[serde(default)]
    served_chain: Vec<AnswerCert>,
    #[serde(default)]
    tls: Option<AnswerTls>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    body: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Accept,
    Reject,
    Unsupported,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Check {
    Chain,
    Name,
    Handshake,
    Connect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerCert {
    subject: String,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    pem: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerTls {
    version: String,
    cipher: String,
}

/// Which check an error text names, when the command does not say: OpenSSL's, curl's and
/// Python's wordings for a name mismatch, then for chain errors; anything else is a handshake
/// failure.
pub fn guess_check(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    let name_words =
        ["hostname mismatch", "ip address mismatch", "not in certificate", "doesn't match", "does not match"];
    let chain_words = [
        "self signed",
        "self-signed",
        "issuer",
        "expired",
        "not yet valid",
        "certificate verify failed",
        "unable to get",
        "path length",
        "unsuitable certificate purpose",
        "invalid ca",
    ];
    if name_words.iter().any(|w| e.contains(w)) {
        "name"
    } else if chain_words.iter().any(|w| e.contains(w)) {
        "chain"
    } else {
        "handshake"
    }
}

fn outcome_of(answer: Answer, request: &OriginRequest) -> Outcome {
    let served = answer
        .served_chain
        .iter()
        .map(|c| {
            let der = c
                .pem
                .as_deref()
                .and_then(|p| crate::expressway::pem_certificates(p).ok())
                .and_then(|mut v| if v.is_empty() { None } else { Some(v.remove(0)) });
            match der {
                Some(der) => super::builtin::describe(&der),
                None => ServedCert {
                    subject: c.subject.clone(),
                    issuer: c.issuer.clone().unwrap_or_default(),
                    key: c.key.clone().unwrap_or_else(|| "key not reported".into()),
                    der: Vec::new(),
                },
            }
        })
        .collect();
    let error = answer.error.clone().unwrap_or_default();
    let mut outcome = Outcome {
        log: answer.log_lines,
        served,
        tls: answer.tls.map(|t| (t.version, t.cipher)),
        attempts: 1,
        body: answer.body.unwrap_or_default(),
        ..Outcome::default()
    };
    match answer.verdict {
        Verdict::Accept => {
            outcome.status = answer.status.unwrap_or(200);
            outcome.reason = if outcome.status == 200 { "OK".into() } else { String::new() };
            // An error with an accept is a verification the command logged and let through
            // (PERMISSIVE).
            if !error.is_empty() {
                outcome.failure = Some(failure_of(answer.check, &error, answer.code, answer.depth, request));
            }
        }
        Verdict::Reject => {
            outcome.status = 502;
            outcome.reason = "connect failed".into();
            outcome.failure = Some(failure_of(answer.check, &error, answer.code, answer.depth, request));
        }
        Verdict::Unsupported => {
            outcome.status = UNSUPPORTED_STATUS;
            outcome.reason = "unsupported".into();
            outcome.failure = Some(Failure::Handshake {
                reason: if error.is_empty() { "unsupported".into() } else { format!("unsupported: {error}") },
            });
        }
    }
    outcome
}

fn failure_of(
    check: Option<Check>,
    error: &str,
    code: Option<i32>,
    depth: Option<usize>,
    request: &OriginRequest,
) -> Failure {
    let check = check.unwrap_or(match guess_check(error) {
        "name" => Check::Name,
        "chain" => Check::Chain,
        _ => Check::Handshake,
    });
    match check {
        Check::Chain => Failure::Chain { code: code.unwrap_or(0), text: error.to_string(), depth: depth.unwrap_or(0) },
        Check::Name => Failure::Name { checked: request.host.clone() },
        Check::Handshake => Failure::Handshake { reason: error.to_string() },
        Check::Connect => Failure::Connect { reason: error.to_string() },
    }
}

/// The `request` message for one origin request.
pub fn request_message(id: u64, request: &OriginRequest) -> Value {
    let is_ip = request.host.parse::<std::net::IpAddr>().is_ok();
    json!({
        "type": "request",
        "id": id,
        "host": request.host,
        "connect": request.dial.to_string(),
        "sni": if is_ip { Value::Null } else { json!(request.host) },
        "port": request.port,
        "modelled_ip": request.modelled_ip.to_string(),
        "method": request.method,
        "path": request.path,
        "purpose": match request.purpose {
            super::Purpose::Mra => "mra",
            super::Purpose::Discovery { .. } => "discovery",
        },
        "tls_verify_mode": matches!(request.purpose, super::Purpose::Discovery { tls_verify_mode: true }),
    })
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

#[cfg(test)]
mod tests {
    use super::StderrTail;

    #[test]
    fn the_stderr_tail_keeps_the_last_bytes_and_counts_the_rest() {
        let mut tail = StderrTail::new(4);
        assert_eq!(tail.text(), "(empty)");
        tail.push(b"ab");
        assert_eq!(tail.text(), "ab");
        for chunk in [&b"cdef"[..], b"g", b"hijklmnop", b"q"] {
            tail.push(chunk);
            assert!(tail.bytes.len() <= 8, "at most twice what is kept is held");
        }
        assert_eq!(tail.text(), "[13 earlier bytes dropped]\nnopq");
    }

    #[test]
    fn the_stderr_tail_does_not_start_inside_a_character() {
        let mut tail = StderrTail::new(4);
        tail.push("aé€".as_bytes());
        assert_eq!(tail.text(), "[3 earlier bytes dropped]\n€");
    }
}
