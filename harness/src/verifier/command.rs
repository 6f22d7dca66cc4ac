//! `--verifier cmd:<path>`: any program as Expressway-C's traffic server, over JSON lines.
//!
//! The harness starts the command once per Expressway-C peer of a scenario and writes one JSON
//! object per line on its stdin: a `session` message with the configuration in force, a
//! `reconfigure` message (same fields, plus `change`) on every change, and a `request` message
//! per origin request. The command answers each `request`, and only those, with one line on
//! stdout: `{"id": N, "verdict": "accept" | "reject" | "unsupported", ...}`. The protocol is
//! versioned ([`PROTOCOL_VERSION`]) and its JSON Schema is `adapters/protocol.schema.json`,
//! documented in the README.
//!
//! A command that exits, hangs past its answer timeout ([`CommandLimits`]), or prints a line that is not an answer
//! to the request asked is a harness fault ([`VerifierFault::Request`]) carrying the tail of its
//! stderr: never a verdict. Verdicts become [`Outcome`]s as the module's `outcome_of` says:
//! accept is 200, reject is 502 `connect failed` with the failed check the command names (or
//! one guessed from its error text), unsupported is status 0 with
//! `Failure::Handshake { reason: "unsupported: ..." }`.

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// What a command may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandLimits {
    /// How long a command may take to answer one request.
    pub answer_timeout: Duration,
}

impl CommandLimits {
    /// 10 s per answer.
    pub const DEFAULT: CommandLimits = CommandLimits { answer_timeout: Duration::from_secs(10) };
}

impl Default for CommandLimits {
    fn default() -> CommandLimits {
        CommandLimits::DEFAULT
    }
}

/// How much of a faulty command's stderr a fault carries.
const STDERR_TAIL: usize = 2000;

/// The status an `unsupported` verdict maps to: no HTTP status at all.
pub const UNSUPPORTED_STATUS: u16 = 0;

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
    #[error("cannot write to the command (did it exit?): {source}")]
    Write { source: io::Error },
    #[error("request {id}: not a protocol answer ({source}): {line}")]
    NotAnAnswer { id: u64, source: serde_json::Error, line: String },
    #[error("request {id}: cannot read its stdout: {source}")]
    Read { id: u64, source: io::Error },
    #[error("request {id}: the answer is for request {got}")]
    WrongId { id: u64, got: u64 },
    #[error("request {id}: no answer within {} s (hung?)", .timeout.as_secs_f64())]
    Timeout { id: u64, timeout: Duration },
    #[error("request {id}: the command exited without answering{}", .status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Exited { id: u64, status: Option<ExitStatus> },
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

/// The files a session's PEM material is written to, kept for the command's lifetime.
#[derive(Debug)]
struct SessionFiles {
    dir: tempfile::TempDir,
    generation: u32,
}

/// A verifier that is an external command speaking the JSON-lines protocol.
#[derive(Debug)]
pub struct CommandVerifier {
    path: PathBuf,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Option<Receiver<std::io::Result<String>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    files: Option<SessionFiles>,
    next_id: u64,
    limits: CommandLimits,
}

impl CommandVerifier {
    /// A verifier for the command at `path`; nothing runs until [`Verifier::open`].
    pub fn new(path: impl Into<PathBuf>) -> CommandVerifier {
        CommandVerifier {
            path: path.into(),
            child: None,
            stdin: None,
            lines: None,
            stderr: Arc::new(Mutex::new(Vec::new())),
            files: None,
            next_id: 1,
            limits: CommandLimits::DEFAULT,
        }
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

    /// Turns `error` into a fault; a fault of the running command ends it and quotes the tail
    /// of its stderr.
    fn fault(&mut self, error: CommandError) -> VerifierFault {
        if error.is_config() {
            return VerifierFault::Config { verifier: self.name(), message: error.to_string() };
        }
        // Give a dying command a moment to finish writing its stderr.
        if let Some(child) = self.child.as_mut() {
            for _ in 0..20 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        let stderr = {
            let bytes = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let start = text.char_indices().rev().nth(STDERR_TAIL).map_or(0, |(i, _)| i);
            text[start..].trim_end().to_string()
        };
        self.stop();
        let stderr = if stderr.is_empty() { "(empty)".to_string() } else { stderr };
        VerifierFault::Request { verifier: self.name(), message: format!("{error}; its stderr:\n{stderr}") }
    }

    fn stop(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.lines = None;
    }

    fn spawn(&mut self) -> Result<(), CommandError> {
        let mut child = Command::new(&self.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| CommandError::Start { path: self.path.clone(), source })?;
        let (Some(stdout), Some(mut stderr), Some(stdin)) =
            (child.stdout.take(), child.stderr.take(), child.stdin.take())
        else {
            let _ = child.kill();
            return Err(CommandError::NoPipes);
        };
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let end = line.is_err();
                if tx.send(line).is_err() || end {
                    break;
                }
            }
        });
        let sink = Arc::clone(&self.stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&buf[..n]);
            }
        });
        self.child = Some(child);
        self.stdin = Some(stdin);
        self.lines = Some(rx);
        Ok(())
    }

    fn send(&mut self, message: &Value) -> Result<(), VerifierFault> {
        let line = format!("{message}\n");
        let written = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(line.as_bytes()).and_then(|()| stdin.flush()),
            None => Err(io::Error::other("the command is not running")),
        };
        written.map_err(|source| self.fault(CommandError::Write { source }))
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
        let trust_path = files.write("trust-store.pem", &trust)?;
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
                    Some(files.write("client-cert.pem", &chain)?),
                    Some(files.write("client-key.pem", &crate::pki::pem_block(label, der))?),
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

impl SessionFiles {
    fn new() -> Result<SessionFiles, ScratchError> {
        let dir = tempfile::Builder::new()
            .prefix("mralab-cmd-")
            .tempdir()
            .map_err(|source| ScratchError::Folder { source })?;
        Ok(SessionFiles { dir, generation: 0 })
    }

    /// Writes `text` to a file of this generation.
    fn write(&self, name: &str, text: &str) -> Result<PathBuf, ScratchError> {
        let path = self.dir.path().join(format!("{}-{name}", self.generation));
        std::fs::write(&path, text).map_err(|source| ScratchError::Write { path: path.clone(), source })?;
        Ok(path)
    }
}

impl Drop for CommandVerifier {
    fn drop(&mut self) {
        // Closing stdin is the command's cue to exit; give it a moment, then make sure.
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
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
        if self.child.is_none() {
            self.spawn().map_err(|e| self.fault(e))?;
        }
        let message = self.session_message("session", session, None).map_err(|e| self.fault(e))?;
        self.send(&message)
    }

    fn reconfigure(&mut self, session: &Session, change: Change) -> Result<(), VerifierFault> {
        let message = self.session_message("reconfigure", session, Some(change)).map_err(|e| self.fault(e))?;
        self.send(&message)
    }

    fn request(&mut self, request: &OriginRequest) -> Result<Outcome, VerifierFault> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&request_message(id, request))?;
        match self.answer(id) {
            Ok(answer) => Ok(outcome_of(answer, request)),
            Err(e) => Err(self.fault(e)),
        }
    }
}

impl CommandVerifier {
    /// Waits for the answer to request `id`.
    fn answer(&mut self, id: u64) -> Result<Answer, CommandError> {
        let timeout = self.limits.answer_timeout;
        let received = match self.lines.as_ref() {
            Some(lines) => lines.recv_timeout(timeout),
            None => Err(RecvTimeoutError::Disconnected),
        };
        let line = match received {
            Ok(Ok(line)) => line,
            Ok(Err(source)) => return Err(CommandError::Read { id, source }),
            Err(RecvTimeoutError::Timeout) => return Err(CommandError::Timeout { id, timeout }),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                return Err(CommandError::Exited { id, status });
            }
        };
        let answer: Answer = serde_json::from_str(&line).map_err(|source| CommandError::NotAnAnswer {
            id,
            source,
            line: line.chars().take(200).collect(),
        })?;
        if answer.id != id {
            return Err(CommandError::WrongId { id, got: answer.id });
        }
        Ok(answer)
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
