//! `cargo xtask diagnose`: Expressway-C diagnostic logs in, a diagnosis per affected server out.
//!
//! This is what Cisco's Collaboration Solutions Analyzer does for the X14.2 origin-verification
//! change (SPEC, "Troubleshooting flow and remedies"), offline. It sits beside the verifier
//! model: the model *writes* traffic-server lines (`ScenarioRun::log`), this module *reads* them
//! back, and those of real Expressways: syslog lines (`... traffic_server[18242]: [ET_NET 0]
//! WARNING: ...`), stock ATS `diags.log` lines (`[Jul 11 16:55:26.016] [ET_NET 0] WARNING: ...`),
//! OpenSSL 1.1 and 3 wordings, plain or compressed (gzip, bzip2, xz), one file, a folder, the
//! `.tar.gz` bundle that Maintenance > Diagnostics > Diagnostic logging downloads, or the `.zip`,
//! `.tar.bz2` or `.tar.xz` a customer makes of it.
//!
//! `input` reads all of those as a stream, a line at a time, under [`Limits`]; this module is
//! fed those lines and keeps only what the findings need (and the latest `REMEMBERED`
//! processes, request targets and transactions), so memory follows the findings, never the
//! size of the input.
//!
//! How a log becomes findings:
//! - An MRA request line (`GET http://vcs_control.steven.lab:8443/<base64>/...`) gives a target:
//!   host and port, decoded with [`crate::mra::decode`]. It follows its `HTTPMSG:` header on the
//!   next line, or on the same line (`HTTPMSG:|GET ...`, or `HTTPMSG:#012|GET ...` from a syslog
//!   relay that escapes newlines): [`inline_message`]. The finding shows it ([`MraRequest`]).
//! - A `WARNING: Core server certificate verification failed ...` or `WARNING: SNI (...) not in
//!   certificate ...` line is tied to the port of the most recent request target of the same
//!   host (SNI, server name or address) from the same peer and traffic_server pid of the same
//!   file (a merged cluster log can repeat a pid); with none, the port is unknown. One
//!   exception: a request Expressway-C makes on its own (discovery: `Sending Request` with a
//!   Txn-id no `Receive Request` announced, origin-form `GET /cucm-uds/servers`) goes to UDS,
//!   which CUCM serves on Tomcat, port 8443; a warning after it, with no more recent request to
//!   its host, is tied to 8443.
//! - Warnings are grouped by (server, address, port); a group keeps its latest warning, and its
//!   class comes from that warning's `Error=` text first, then the depth (see [`classify`]).
//!   `ERROR: SSL connection failed for '...'` lines are counted with the latest group of that
//!   host. `unable to verify the first certificate` is PERMISSIVE's follow-on line, not a class.
//! - A server whose failing target later answered a request (a response below 500) still counts:
//!   the log shows the failure CSA would flag, and the finding says it recovered since.
//!
//! - An input in which no line looks like a log line ([`looks_like_log`]) is not a clean bill of
//!   health but [`DiagnoseError::NotLogs`] (exit 2).
//!
//! Invariant: nothing here panics on any input; a line that does not parse is skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The closed set of diagnosis classes (SPEC's troubleshooting flow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiagnosisClass {
    /// A self-signed certificate at depth 0: upload it.
    SelfSigned,
    /// `unable to get local issuer certificate`: upload the issuing CA chain, or send intermediates.
    UnknownIssuer,
    /// `self signed certificate in certificate chain`: upload that root.
    UntrustedRoot,
    /// `unable to get issuer certificate` at depth N: the certificate at depth N was found, the
    /// one that signed it (an intermediate or the root) was not: upload it and the CAs above it.
    MissingRoot,
    /// Expired: re-issue.
    Expired,
    /// Not yet valid: re-issue (or fix the clock).
    NotYetValid,
    /// The EKU does not allow serverAuth: re-issue.
    WrongPurpose,
    /// `SNI (<addr>) not in certificate`: add the address, or advertise a name it holds.
    NameNotInCertificate,
}

/// The short-term workaround: back to pre-X14.2 behaviour (SPEC, "Behaviour by version").
pub const WORKAROUND: &str = "xConfiguration EdgeConfigServer VerifyOriginServer: Off";

mod input;
mod lines;
mod report;
mod state;

pub use lines::*;
use report::*;
use state::*;

pub use input::{
    FileKind, Limits, Reading, SizeError, SkipReason, Skipped, Skips, Text, XZ_MEMORY, bytes, parse_bytes,
};

/// Why the input could not be read as logs: the only `Err` of this module (exit 2). Inside a
/// folder or an archive, the same troubles skip the entry instead ([`Skips`]).
///
/// A message names the object and what is wrong with it; the system's or the decoder's words
/// are its [`source`](std::error::Error::source), printed after it (`{:#}` with anyhow), never
/// twice.
#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    /// Missing or unreadable file or folder, or a broken symbolic link.
    #[error("cannot read '{path}'")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A FIFO, socket or device: reading it could block forever or never end.
    #[error("'{path}' is a {kind}, not a file, folder or archive")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
    },
    /// A gzip stream that does not decompress.
    #[error("'{name}' is not a valid gzip file")]
    Gzip {
        /// The file (and bundle entry) name.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A bzip2 stream that does not decompress.
    #[error("'{name}' is not a valid bzip2 file")]
    Bzip2 {
        /// The file (and bundle entry) name.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An xz stream that does not decompress, or whose dictionary exceeds [`XZ_MEMORY`].
    #[error("'{name}' is not a valid xz file")]
    Xz {
        /// The file (and bundle entry) name.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A zip archive that does not read to its end.
    #[error("'{name}' is not a readable zip archive")]
    Zip {
        /// The file (and bundle entry) name.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A tar archive that does not read to its end.
    #[error("'{name}' is not a valid tar archive")]
    Tar {
        /// The file (and bundle entry) name.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Containers nested deeper than [`Limits::layers`].
    #[error("'{name}' nests containers deeper than {layers}")]
    TooDeep {
        /// The file (and bundle entry) name.
        name: String,
        /// The limit.
        layers: usize,
    },
    /// A folder or an archive in which no log could be read (empty, or every entry skipped).
    #[error("nothing readable in '{path}': {skipped}")]
    NothingReadable {
        /// The path.
        path: PathBuf,
        /// What was skipped, and why.
        skipped: Skips,
    },
    /// Read, but not as logs: no line of it looks like a log line ([`looks_like_log`]).
    #[error("'{path}' cannot be read as logs: {why}")]
    NotLogs {
        /// The path.
        path: PathBuf,
        /// What it looked like instead (binary, text of another kind, empty).
        why: String,
        /// How many files were read.
        files: usize,
        /// How many lines were read.
        lines: usize,
        /// How it was read (what was skipped, a limit reached): worth printing beside the error.
        reading: Box<Reading>,
    },
}

/// What a diagnosis found, for people ([`Report::render`]) and for tools ([`Report::to_json`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// How many files were read.
    pub files: usize,
    /// How many lines were read.
    pub lines: usize,
    /// One finding per affected (server, address, port), sorted.
    pub findings: Vec<Finding>,
    /// What was skipped or cut short while reading, and under which limits.
    pub reading: Reading,
}

/// One affected server: its latest verification failure and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The server as the traffic server logs it (`server=<name>`; the SNI if that is missing).
    pub server: String,
    /// The address it connected to (`server=name(<address>)`), when the line has it.
    pub address: Option<String>,
    /// The origin port, from the latest MRA request to that host in the same pid; `None`
    /// when no request line tells it.
    pub port: Option<u16>,
    /// Where the port came from.
    pub port_from: PortSource,
    /// The MRA request that tied the latest warning to its port, decoded.
    pub request: Option<MraRequest>,
    /// The class; `None` for a verification error outside SPEC's classes (shown as is).
    #[serde(serialize_with = "class_name_opt")]
    pub class: Option<DiagnosisClass>,
    /// The `Error=` text, or `SNI (<addr>) not in certificate`.
    pub error: String,
    /// The depth of the certificate the error is about (0 = the server's own).
    pub depth: Option<u32>,
    /// `Terminate` (the request failed) or `Continue` (PERMISSIVE: it went through).
    pub action: Option<String>,
    /// How many warnings the group holds.
    pub count: usize,
    /// How many `SSL connection failed` errors followed them.
    pub errors: usize,
    /// The latest warning line, verbatim.
    pub last_line: String,
    /// The latest `SSL connection failed` line of that host, verbatim.
    pub last_error_line: Option<String>,
    /// Where the latest warning was read (file name, line number from 1).
    pub source: String,
    /// The certificate or address concerned.
    pub concerns: String,
    /// The long-term remedy.
    pub remedy: String,
    /// The short-term workaround.
    pub workaround: String,
    /// A later request to the same host and port got an answer below 500.
    pub recovered: bool,
    /// The Expressway-C peers (syslog host names) that logged the warnings, sorted; empty for
    /// `diags.log` lines, which name none. A peer missing here may lack nothing, or may not
    /// have been asked.
    pub peers: Vec<String>,
}

/// The kebab-case name of a class, as scenario files and `--json` spell it.
pub fn class_name(class: DiagnosisClass) -> &'static str {
    match class {
        DiagnosisClass::SelfSigned => "self-signed",
        DiagnosisClass::UnknownIssuer => "unknown-issuer",
        DiagnosisClass::UntrustedRoot => "untrusted-root",
        DiagnosisClass::MissingRoot => "missing-root",
        DiagnosisClass::Expired => "expired",
        DiagnosisClass::NotYetValid => "not-yet-valid",
        DiagnosisClass::WrongPurpose => "wrong-purpose",
        DiagnosisClass::NameNotInCertificate => "name-not-in-certificate",
    }
}

fn class_name_opt<S: serde::Serializer>(class: &Option<DiagnosisClass>, s: S) -> Result<S::Ok, S::Error> {
    match class {
        Some(c) => s.serialize_str(class_name(*c)),
        None => s.serialize_none(),
    }
}

/// Diagnoses a file, a folder or a bundle under the default [`Limits`].
pub fn diagnose_path(path: &Path) -> Result<Report, DiagnoseError> {
    diagnose_path_within(path, &Limits::default())
}

/// Diagnoses a file, a folder or a bundle, read as a stream under `limits`: a line at a time,
/// containers recognised by their first bytes, only regular files opened; what could not be
/// read inside a folder or a bundle is skipped and counted in [`Report::reading`].
///
/// Input in which no line looks like a log line ([`looks_like_log`]) is
/// [`DiagnoseError::NotLogs`]: random bytes, a capture, an empty file, text of another kind.
/// Finding no failure in what is not a log would be a false clean bill of health.
pub fn diagnose_path_within(path: &Path, limits: &Limits) -> Result<Report, DiagnoseError> {
    let mut diagnosis = Diagnosis::default();
    let (files, reading) = input::read_path(path, limits, &mut diagnosis)?;
    if !diagnosis.saw_log_line {
        let text = &reading.text;
        let why = if diagnosis.lines == 0 {
            "it is empty".to_string()
        } else if text.bytes == 0 {
            "it holds only empty lines".to_string()
        } else if text.looks_binary() {
            format!("it looks binary, not text ({text}), and no line of it looks like a syslog or diags.log line")
        } else {
            format!("no line of it looks like a syslog or diags.log line ({} line(s) read)", diagnosis.lines)
        };
        let (path, lines) = (path.to_path_buf(), diagnosis.lines);
        return Err(DiagnoseError::NotLogs { path, why, files, lines, reading: Box::new(reading) });
    }
    Ok(diagnosis.finish(files, reading))
}

/// How an input was read, for tools, as one line of JSON: `files`, `lines` and the [`Reading`]
/// (`skipped`, `truncated_lines`, `decompressed_bytes`, `text`, `limit_reached`, `limits`, ...).
pub fn summary_json(files: usize, lines: usize, reading: &Reading) -> String {
    #[derive(Serialize)]
    struct Summary<'a> {
        files: usize,
        lines: usize,
        #[serde(flatten)]
        reading: &'a Reading,
    }
    let summary = Summary { files, lines, reading };
    serde_json::to_string(&summary).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Diagnoses lines given in memory (one file).
pub fn diagnose_lines<S: AsRef<str>>(lines: &[S]) -> Report {
    let text = lines.iter().map(AsRef::as_ref).collect::<Vec<_>>().join("\n");
    diagnose_text("<lines>", text.as_bytes())
}

/// Diagnoses raw bytes as one file (the fuzz entry point): not UTF-8 is replaced, never refused.
pub fn diagnose_bytes(bytes: &[u8]) -> Report {
    diagnose_text("<bytes>", bytes)
}

fn diagnose_text(name: &str, text: &[u8]) -> Report {
    let mut diagnosis = Diagnosis::default();
    let reading = input::read_text(name, text, &Limits::default(), &mut diagnosis);
    diagnosis.finish(1, reading)
}

type GroupKey = (String, Option<String>, Option<u16>);

/// A traffic_server process: the syslog host (the peer) and the pid of its lines.
type PidKey = (Option<String>, Option<u32>);

#[derive(Debug)]
struct Group {
    latest: LatestWarning,
    count: usize,
    errors: usize,
    last_error_line: Option<String>,
    seq: u64,
    peers: BTreeSet<String>,
    /// The peers (`None`: a line naming none) whose request to this group's host and port was
    /// answered (below 500) after its latest warning.
    answered_by: BTreeSet<Option<String>>,
}

#[derive(Debug)]
struct LatestWarning {
    meaning: ErrorMeaning,
    error: String,
    depth: Option<u32>,
    action: Option<String>,
    sni: String,
    line: String,
    source: String,
    /// The subject of the certificate at `depth`, when a chain line before it told it.
    subject: Option<String>,
    /// Where the port came from.
    port_from: PortFrom,
}

/// Where a warning's port came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PortFrom {
    /// The decoded MRA request line before the warning.
    Request(MraRequest),
    /// Expressway-C's own UDS request (discovery), which CUCM serves on Tomcat, port 8443.
    UdsDiscovery,
    /// No line before the warning tells it.
    Unknown,
}

/// Where a finding's port came from, as `--json` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum PortSource {
    /// The decoded MRA request line before the warning ([`Finding::request`]).
    Request,
    /// Expressway-C's own UDS request (discovery), which CUCM serves on Tomcat, port 8443.
    UdsDiscovery,
    /// No line before the warning tells it: see [`PORT_HINT`].
    Unknown,
}

/// Which log lines tell a warning's port, for a finding whose port is not in the log.
pub const PORT_HINT: &str = "the port is in the MRA request lines before a warning (`HTTPMSG:` then `|GET http://<expressway>:<port>/<token>/...`), which the traffic server logs at DEBUG level (module network.http.trafficserver): collect the diagnostic log with that module at DEBUG to see it";

/// The MRA request that tied a finding to its port: a request line's token, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MraRequest {
    /// The token as it decodes: `steven.lab/https/10.48.36.215/8443`.
    pub decoded: String,
    /// The MRA domain.
    pub domain: String,
    /// The origin host, FQDN or IP, as the client asked for it.
    pub host: String,
    /// The origin port.
    pub port: u16,
    /// What was asked of it: the path after the token (`/cucm-uds/user/emusk/devices?max=100`),
    /// cut at [`MraRequest::PATH_BYTES`].
    pub path: String,
    /// Where the request line was read (file name, line number from 1).
    pub source: String,
}

impl MraRequest {
    /// How much of a path (or of a chain line's subject) is kept: it is shown, and remembered
    /// for thousands of recent requests.
    pub const PATH_BYTES: usize = 256;
}

/// A request line's target, remembered per process and host.
#[derive(Debug, Clone)]
struct Target {
    domain: String,
    host: String,
    port: u16,
    path: String,
    /// Its line number in the file.
    number: usize,
    seq: u64,
}
