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

/// What an `Error=` text (OpenSSL's `X509_verify_cert_error_string`) means here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMeaning {
    /// One of SPEC's classes.
    Class(DiagnosisClass),
    /// `unable to verify the first certificate`: the line PERMISSIVE adds after the real one.
    FollowOn,
    /// Any other verification error: reported without a class.
    Other,
}

/// Classifies by the error text first (OpenSSL 1.1 `self signed` and 3 `self-signed` alike),
/// then by the depth: `self signed certificate` at depth 0 (or unknown) is the server's own
/// self-signed certificate; the same words at depth > 0 name a self-signed root up the chain.
pub fn classify(error: &str, depth: Option<u32>) -> ErrorMeaning {
    let text = error.trim().to_ascii_lowercase().replace('-', " ");
    let has = |phrase: &str| text.contains(phrase);
    let class = if has("self signed certificate in certificate chain") {
        DiagnosisClass::UntrustedRoot
    } else if has("self signed certificate") {
        match depth {
            Some(d) if d > 0 => DiagnosisClass::UntrustedRoot,
            _ => DiagnosisClass::SelfSigned,
        }
    } else if has("unable to get local issuer certificate") {
        DiagnosisClass::UnknownIssuer
    } else if has("unable to get issuer certificate") {
        DiagnosisClass::MissingRoot
    } else if has("certificate has expired") {
        DiagnosisClass::Expired
    } else if has("certificate is not yet valid") {
        DiagnosisClass::NotYetValid
    } else if has("unsupported certificate purpose") || has("unsuitable certificate purpose") {
        DiagnosisClass::WrongPurpose
    } else if has("unable to verify the first certificate") {
        return ErrorMeaning::FollowOn;
    } else {
        return ErrorMeaning::Other;
    };
    ErrorMeaning::Class(class)
}

/// One line, as far as a diagnosis cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// `Core server certificate verification failed for (<sni>). Action=.. Error=.. server=name(ip) depth=N`.
    VerifyFailed {
        /// The SNI (or IP) in `for (...)`.
        sni: String,
        /// `Terminate` / `Continue`.
        action: Option<String>,
        /// The error text (may be cut short).
        error: String,
        /// `server=<name>`.
        server: Option<String>,
        /// `server=name(<address>)`.
        address: Option<String>,
        /// `depth=N`.
        depth: Option<u32>,
    },
    /// `SNI (<addr>) not in certificate. Action=.. server=name(ip)`.
    SniNotInCertificate {
        /// The address not in the certificate.
        sni: String,
        /// `Terminate` / `Continue`.
        action: Option<String>,
        /// `server=<name>`.
        server: Option<String>,
        /// `server=name(<address>)`.
        address: Option<String>,
    },
    /// `ERROR: SSL connection failed for '<server>'`.
    ConnectionFailed {
        /// The server.
        server: String,
    },
    /// A request line naming an MRA target: `GET http://vcs_control...:8443/<base64>/...`.
    Request {
        /// Decoded MRA domain.
        domain: String,
        /// Decoded target host.
        host: String,
        /// Decoded target port.
        port: u16,
        /// The path after the token, cut at [`MraRequest::PATH_BYTES`].
        path: String,
    },
    /// OpenSSL's verify-callback line for one certificate of the chain being verified,
    /// `depth=1 DC = vngtp, CN = vngtp-intermediate-CA-1` (as `openssl s_client` and many
    /// debug logs print it): the subject at that depth.
    ChainSubject {
        /// The depth.
        depth: u32,
        /// The subject, as printed, cut at [`MraRequest::PATH_BYTES`].
        subject: String,
    },
    /// An origin-form request line, `GET /cucm-uds/servers HTTP/1.1`: what the traffic server
    /// sends the origin.
    OriginRequest {
        /// The path.
        path: String,
    },
    /// A `Detail="Receive Request"`, `"Sending Request"` or `"Sending Response"` header line;
    /// its message follows on the next line, or on the same one after `HTTPMSG:` (see
    /// [`inline_message`]).
    Header {
        /// Which.
        kind: HeaderKind,
        /// `Txn-id`.
        txn: Option<String>,
    },
    /// A status line `HTTP/1.1 502 connect failed`.
    Status(u16),
}

/// The traffic server's message headers in mralab's (and Expressway's) debug log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    /// From the client (Expressway-E).
    ReceiveRequest,
    /// To the origin.
    SendingRequest,
    /// Back to the client.
    SendingResponse,
}

/// The syslog host (the Expressway-C peer) of a line: the word before `traffic_server[`.
pub fn syslog_host(line: &str) -> Option<&str> {
    let i = line.find("traffic_server[").or_else(|| line.find("traffic\\_server["))?;
    line[..i].split_whitespace().nth(1)
}

/// The pid of a syslog line (`traffic_server[18242]:`), and the rest of the line after it.
pub fn split_prefix(line: &str) -> (Option<u32>, &str) {
    for marker in ["traffic_server[", "traffic\\_server["] {
        if let Some(i) = line.find(marker) {
            let after = &line[i + marker.len()..];
            let digits_end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
            let pid = after[..digits_end].parse().ok();
            let rest = after[digits_end..].trim_start_matches(']').trim_start_matches(':');
            return (pid, rest);
        }
    }
    (None, line)
}

/// Parses one line (without its pid prefix, or with it: markers are searched for anywhere).
pub fn parse_line(line: &str) -> Option<LineEvent> {
    const VERIFY: &str = "Core server certificate verification failed for (";
    if let Some(i) = line.find(VERIFY) {
        let rest = &line[i + VERIFY.len()..];
        let (sni, rest) = rest.split_once(')').unwrap_or((rest, ""));
        let error = field(rest, "Error=", &[" server=", " depth="]).unwrap_or_default();
        let (server, address) = server_field(rest);
        let depth = field(rest, "depth=", &[" "]).and_then(|d| d.trim().parse().ok());
        return Some(LineEvent::VerifyFailed {
            sni: sni.trim().to_string(),
            action: field(rest, "Action=", &[" "]).map(str::to_string).filter(|a| !a.is_empty()),
            error: error.trim().to_string(),
            server,
            address,
            depth,
        });
    }
    const SNI: &str = "SNI (";
    if let Some(i) = line.find(SNI) {
        let rest = &line[i + SNI.len()..];
        if let Some((sni, tail)) = rest.split_once(") not in certificate") {
            let (server, address) = server_field(tail);
            return Some(LineEvent::SniNotInCertificate {
                sni: sni.trim().to_string(),
                action: field(tail, "Action=", &[" "]).map(str::to_string).filter(|a| !a.is_empty()),
                server,
                address,
            });
        }
    }
    const FAILED: &str = "SSL connection failed for '";
    if let Some(i) = line.find(FAILED) {
        let rest = &line[i + FAILED.len()..];
        let server = rest.split_once('\'').map_or(rest, |(s, _)| s);
        return Some(LineEvent::ConnectionFailed { server: server.trim().to_string() });
    }
    for (detail, kind) in [
        ("Detail=\"Receive Request\"", HeaderKind::ReceiveRequest),
        ("Detail=\"Sending Request\"", HeaderKind::SendingRequest),
        ("Detail=\"Sending Response\"", HeaderKind::SendingResponse),
    ] {
        if line.contains(detail) {
            let txn = field(line, "Txn-id=\"", &["\""]).map(str::to_string);
            return Some(LineEvent::Header { kind, txn });
        }
    }
    if let Some(i) = line.find("http://") {
        let rest = &line[i + "http://".len()..];
        let path_start = rest.find('/')?;
        let path = rest[path_start..].split_whitespace().next().unwrap_or_default();
        let target = crate::mra::decode(path).ok()?;
        return Some(LineEvent::Request {
            domain: target.domain,
            host: target.host,
            port: target.port,
            path: cut(&target.path, MraRequest::PATH_BYTES),
        });
    }
    if let Some(event) = chain_subject(line) {
        return Some(event);
    }
    let trimmed = line.trim_start_matches(|c: char| c == '|' || c.is_whitespace());
    if let Some(rest) = trimmed.strip_prefix("HTTP/") {
        let status = rest.split_whitespace().nth(1)?;
        return status.parse().ok().map(LineEvent::Status);
    }
    let mut words = trimmed.split_whitespace();
    let (method, path) = (words.next()?, words.next()?);
    if ["GET", "POST", "PUT", "HEAD", "DELETE"].contains(&method)
        && path.starts_with('/')
        && words.next()?.starts_with("HTTP/")
    {
        return Some(LineEvent::OriginRequest { path: path.to_string() });
    }
    None
}

/// A header line's message when it is on the same line: `HTTPMSG:|GET ...`, or with a syslog
/// relay's escaped newline, `HTTPMSG:#012|GET ...` (rsyslog writes control characters as `#`
/// and three octal digits). Only the message's first line (up to the next `#012`) is returned:
/// the request or status line.
pub fn inline_message(line: &str) -> Option<&str> {
    const MARKER: &str = "HTTPMSG:";
    let rest = &line[line.find(MARKER)? + MARKER.len()..];
    let rest = rest.trim_start();
    let rest = rest.strip_prefix("#012").unwrap_or(rest);
    let first = rest.split("#012").next().unwrap_or_default().trim();
    (!first.trim_start_matches('|').trim().is_empty()).then_some(first)
}

/// `depth=N <subject>` (OpenSSL's verify callback): N, and a subject that reads like a
/// distinguished name (`CN = x`, `/CN=x`). `... depth=0` at the end of a warning is not one.
fn chain_subject(line: &str) -> Option<LineEvent> {
    const KEY: &str = "depth=";
    let i = line.find(KEY)?;
    if line[..i].chars().next_back().is_some_and(|c| !c.is_whitespace() && c != ':' && c != '>') {
        return None;
    }
    let rest = &line[i + KEY.len()..];
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let depth = rest[..digits].parse().ok()?;
    let subject = rest[digits..].strip_prefix(' ')?.trim();
    if !subject.contains('=') || subject.contains("Core server certificate") {
        return None;
    }
    Some(LineEvent::ChainSubject { depth, subject: cut(subject, MraRequest::PATH_BYTES) })
}

/// `text`, cut at `max` bytes (on a character boundary), `...` marking the cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Whether a line reads as a line of a log this command reads: a syslog line (RFC 3339 or
/// RFC 3164 time stamp first, or a `traffic_server[pid]:` tag), a `diags.log` line (`[Jul 11
/// 16:55:26.016]` first), or a traffic server line this module understands without its prefix
/// (a verification warning, `SSL connection failed`, an MRA request line). An input with no
/// such line cannot be read as logs: `diagnose` says so rather than find nothing in it.
pub fn looks_like_log(line: &str) -> bool {
    let line = line.trim_start_matches('\u{feff}');
    if split_prefix(line).0.is_some() || rfc3339_stamp(line) || rfc3164_stamp(line) {
        return true;
    }
    if let Some(inner) = line.strip_prefix('[') {
        if rfc3164_stamp(inner) {
            return true;
        }
    }
    matches!(
        parse_line(line),
        Some(
            LineEvent::VerifyFailed { .. }
                | LineEvent::SniNotInCertificate { .. }
                | LineEvent::ConnectionFailed { .. }
                | LineEvent::Request { .. }
        )
    )
}

/// `2022-07-11T18:55:26` (or with a space for the `T`) first.
fn rfc3339_stamp(line: &str) -> bool {
    let b = line.as_bytes();
    let digits = |range: std::ops::Range<usize>| b.get(range).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && matches!(b.get(10), Some(b'T' | b' '))
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19)
}

/// `Jul 11 16:55:26` (or `Jul  1 ...`) first.
fn rfc3164_stamp(line: &str) -> bool {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let b = line.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    MONTHS.iter().any(|m| line.starts_with(m))
        && b.get(3) == Some(&b' ')
        && (digit(4) || b.get(4) == Some(&b' '))
        && digit(5)
        && b.get(6) == Some(&b' ')
        && digit(7)
        && digit(8)
        && b.get(9) == Some(&b':')
        && digit(10)
        && digit(11)
        && b.get(12) == Some(&b':')
        && digit(13)
        && digit(14)
}

/// The text after `key` up to the first of `ends` (or the end of the line).
fn field<'a>(text: &'a str, key: &str, ends: &[&str]) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let rest = &text[start..];
    let end = ends.iter().filter_map(|e| rest.find(e)).min().unwrap_or(rest.len());
    Some(&rest[..end])
}

/// `server=name(address)`, either part possibly cut short.
fn server_field(text: &str) -> (Option<String>, Option<String>) {
    let Some(value) = field(text, "server=", &[" "]) else { return (None, None) };
    let (name, address) = match value.split_once('(') {
        Some((name, rest)) => (name, Some(rest.split_once(')').map_or(rest, |(a, _)| a))),
        None => (value, None),
    };
    let clean = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    (clean(name), address.and_then(clean))
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

/// How many chain lines (`depth=N subject`) a process keeps until its next warning.
const CHAIN_LINES: usize = 16;

/// Per file and pid: which transaction a message line belongs to, and UDS discovery.
#[derive(Debug, Default)]
struct PidState {
    /// The header the next message line belongs to.
    pending: Option<(HeaderKind, Option<String>)>,
    /// The chain lines since the last warning, latest last (at most [`CHAIN_LINES`]).
    chain: Vec<(u32, String)>,
    /// Seq of the latest request Expressway-C made on its own (a `Sending Request` whose
    /// Txn-id no `Receive Request` announced: discovery) to UDS, which CUCM serves on Tomcat,
    /// port 8443. It names no host: it gives the port of a warning only when no request to
    /// that host is more recent.
    own_uds_request: Option<u64>,
}

/// The port CUCM serves UDS (`/cucm-uds/`) on: Tomcat.
const UDS_PORT: u16 = 8443;

/// How many processes, request targets, transactions and hosts a diagnosis remembers at least
/// (the most recently written); older ones are forgotten, so that memory follows the findings,
/// not the length of the log. A warning follows its request within the same connection, a
/// response its request within seconds: thousands of requests apart is far beyond either.
const REMEMBERED: usize = 16_384;

/// What the current file has told so far, per traffic_server process.
#[derive(Debug)]
struct FileState {
    name: String,
    /// Lines read so far in this file.
    number: usize,
    /// The process of the latest line with a pid prefix: lines without one (`|GET ...`,
    /// `HTTPMSG:`) continue it.
    current: PidKey,
    pids: Recent<PidKey, PidState>,
    /// (process, host lowercase) -> the latest request line to it.
    targets: Recent<(PidKey, String), Target>,
    /// (process, Txn-id) -> target.
    txns: Recent<(PidKey, String), (String, u16)>,
}

impl FileState {
    fn new(name: &str) -> FileState {
        FileState {
            name: name.to_string(),
            number: 0,
            current: (None, None),
            pids: Recent::new(REMEMBERED),
            targets: Recent::new(REMEMBERED),
            txns: Recent::new(REMEMBERED),
        }
    }
}

/// A diagnosis in progress, fed a file at a time and a line at a time (see the module
/// documentation for the rules).
#[derive(Debug)]
struct Diagnosis {
    groups: BTreeMap<GroupKey, Group>,
    /// Host (lowercase) -> the key of the latest group of that host, for ERROR lines.
    latest_group_of: Recent<String, GroupKey>,
    /// Server or address (lowercase) -> the groups of it, for answers.
    groups_of_host: HashMap<String, BTreeSet<GroupKey>>,
    seq: u64,
    lines: usize,
    /// Whether a line looked like a log line ([`looks_like_log`]): once one has, the others
    /// are not asked.
    saw_log_line: bool,
    file: FileState,
}

impl Default for Diagnosis {
    fn default() -> Self {
        Diagnosis {
            groups: BTreeMap::new(),
            latest_group_of: Recent::new(REMEMBERED),
            groups_of_host: HashMap::new(),
            seq: 0,
            lines: 0,
            saw_log_line: false,
            file: FileState::new(""),
        }
    }
}

impl input::LineSink for Diagnosis {
    fn file(&mut self, name: &str) {
        // Keyed by (peer, pid): a merged syslog of a cluster can hold the same pid twice.
        self.file = FileState::new(name);
    }

    fn line(&mut self, line: &str) {
        self.lines += 1;
        self.seq += 1;
        self.file.number += 1;
        if !self.saw_log_line {
            self.saw_log_line = looks_like_log(line);
        }
        let (pid, body) = split_prefix(line);
        if pid.is_some() {
            self.file.current = (syslog_host(line).map(str::to_string), pid);
        }
        let Some(event) = parse_line(body) else { return };
        let header = matches!(event, LineEvent::Header { .. });
        self.event(event, line);
        // `HTTPMSG:|GET ...` on the header's own line: its message, as if on the next line.
        if header {
            if let Some(event) = inline_message(body).and_then(parse_line) {
                self.event(event, line);
            }
        }
    }
}

impl Diagnosis {
    /// What one event of `line` tells.
    fn event(&mut self, event: LineEvent, line: &str) {
        let seq = self.seq;
        let file = &mut self.file;
        let current = file.current.clone();
        match event {
            LineEvent::Header { kind, txn } => file.pids.entry(current).pending = Some((kind, txn)),
            LineEvent::Request { domain, host, port, path } => {
                let key = host.to_ascii_lowercase();
                let target = Target { domain, host, port, path, number: file.number, seq };
                file.targets.insert((current.clone(), key.clone()), target);
                if let Some((HeaderKind::ReceiveRequest, Some(txn))) = file.pids.entry(current.clone()).pending.take() {
                    file.txns.insert((current, txn), (key, port));
                }
            }
            LineEvent::ChainSubject { depth, subject } => {
                let chain = &mut file.pids.entry(current).chain;
                if chain.len() >= CHAIN_LINES {
                    chain.remove(0);
                }
                chain.push((depth, subject));
            }
            LineEvent::OriginRequest { path } => {
                let state = file.pids.entry(current.clone());
                if let Some((HeaderKind::SendingRequest, txn)) = state.pending.take() {
                    let own = txn.is_none_or(|t| file.txns.get(&(current, t)).is_none());
                    if own && path.starts_with("/cucm-uds/") {
                        state.own_uds_request = Some(seq);
                    }
                }
            }
            LineEvent::Status(status) => {
                if let Some((HeaderKind::SendingResponse, Some(txn))) = file.pids.entry(current.clone()).pending.take()
                {
                    if let Some((host, port)) = file.txns.get(&(current.clone(), txn)) {
                        if status < 500 {
                            let (host, port) = (host.clone(), *port);
                            self.answered(current.0, &host, port, seq);
                        }
                    }
                }
            }
            LineEvent::ConnectionFailed { server } => {
                if let Some(group) =
                    self.latest_group_of.get(&server.to_ascii_lowercase()).and_then(|k| self.groups.get_mut(k))
                {
                    group.errors += 1;
                    group.last_error_line = Some(line.to_string());
                }
            }
            LineEvent::VerifyFailed { sni, action, error, server, address, depth } => {
                let meaning = classify(&error, depth);
                if meaning == ErrorMeaning::FollowOn {
                    return;
                }
                let source = format!("{}:{}", self.file.name, self.file.number);
                let chain = std::mem::take(&mut self.file.pids.entry(current).chain);
                let subject = depth.and_then(|d| chain.into_iter().rev().find(|(at, _)| *at == d)).map(|(_, s)| s);
                let warning = LatestWarning {
                    meaning,
                    error,
                    depth,
                    action,
                    sni: sni.clone(),
                    line: line.to_string(),
                    source,
                    subject,
                    port_from: PortFrom::Unknown,
                };
                self.record(seq, server.unwrap_or(sni), address, warning);
            }
            LineEvent::SniNotInCertificate { sni, action, server, address } => {
                let source = format!("{}:{}", self.file.name, self.file.number);
                self.file.pids.entry(current).chain.clear();
                let warning = LatestWarning {
                    meaning: ErrorMeaning::Class(DiagnosisClass::NameNotInCertificate),
                    error: format!("SNI ({sni}) not in certificate"),
                    depth: None,
                    action,
                    sni: sni.clone(),
                    line: line.to_string(),
                    source,
                    subject: None,
                    port_from: PortFrom::Unknown,
                };
                self.record(seq, server.unwrap_or(sni), address, warning);
            }
        }
    }

    /// A response below 500 from `host:port` to a request `peer` relayed.
    fn answered(&mut self, peer: Option<String>, host: &str, port: u16, seq: u64) {
        let Some(keys) = self.groups_of_host.get(host) else { return };
        for key in keys {
            if let Some(group) = self.groups.get_mut(key) {
                if key.2 == Some(port) && seq > group.seq {
                    group.answered_by.insert(peer.clone());
                }
            }
        }
    }

    fn record(&mut self, seq: u64, server: String, address: Option<String>, mut warning: LatestWarning) {
        let file = &mut self.file;
        let current = file.current.clone();
        let candidates = [Some(warning.sni.as_str()), Some(server.as_str()), address.as_deref()];
        let own_uds_request = file.pids.get(&current).and_then(|state| state.own_uds_request);
        let target = candidates
            .iter()
            .flatten()
            .filter_map(|host| file.targets.get(&(current.clone(), host.to_ascii_lowercase())))
            .max_by_key(|target| target.seq);
        let uds_is_newer = |target: &Target| own_uds_request.is_some_and(|uds| uds > target.seq);
        warning.port_from = match target {
            Some(target) if !uds_is_newer(target) => PortFrom::Request(MraRequest {
                decoded: format!("{}/https/{}/{}", target.domain, target.host, target.port),
                domain: target.domain.clone(),
                host: target.host.clone(),
                port: target.port,
                path: target.path.clone(),
                source: format!("{}:{}", file.name, target.number),
            }),
            _ if own_uds_request.is_some() => PortFrom::UdsDiscovery,
            _ => PortFrom::Unknown,
        };
        let port = match &warning.port_from {
            PortFrom::Request(request) => Some(request.port),
            PortFrom::UdsDiscovery => Some(UDS_PORT),
            PortFrom::Unknown => None,
        };
        let peer = syslog_host(&warning.line).map(str::to_string);
        let mut key = (server.clone(), address.clone(), port);
        // A line cut before `server=name(address)` belongs with the latest group of its host.
        if address.is_none() {
            if let Some(existing) = self.latest_group_of.get(&warning.sni.to_ascii_lowercase()) {
                key = existing.clone();
            }
        }
        if key.2 != port {
            // The group's port came from an earlier warning: so does where it came from.
            if let Some(group) = self.groups.get(&key) {
                warning.port_from = group.latest.port_from.clone();
            }
        }
        for host in candidates.iter().flatten() {
            self.latest_group_of.insert(host.to_ascii_lowercase(), key.clone());
        }
        match self.groups.get_mut(&key) {
            // A line cut before its `Error=` counts, but does not hide what a whole line said.
            Some(group) if warning.meaning == ErrorMeaning::Other && warning.error.is_empty() => {
                group.count += 1;
                group.peers.extend(peer);
            }
            Some(group) => {
                group.count += 1;
                group.seq = seq;
                group.latest = warning;
                group.peers.extend(peer);
                group.answered_by.clear();
            }
            None => {
                for host in [Some(&key.0), key.1.as_ref()].into_iter().flatten() {
                    self.groups_of_host.entry(host.to_ascii_lowercase()).or_default().insert(key.clone());
                }
                let peers = peer.into_iter().collect();
                let group = Group {
                    latest: warning,
                    count: 1,
                    errors: 0,
                    last_error_line: None,
                    seq,
                    peers,
                    answered_by: BTreeSet::new(),
                };
                self.groups.insert(key, group);
            }
        }
    }

    fn finish(self, files: usize, reading: Reading) -> Report {
        let findings = self
            .groups
            .into_iter()
            .map(|((server, address, port), group)| {
                // Recovered: every peer that logged the failure later got an answer from that target.
                let recovered = port.is_some()
                    && if group.peers.is_empty() {
                        group.answered_by.contains(&None)
                    } else {
                        group.peers.iter().all(|peer| group.answered_by.contains(&Some(peer.clone())))
                    };
                finding(server, address, port, group, recovered)
            })
            .collect();
        Report { files, lines: self.lines, findings, reading }
    }
}

/// A map that remembers at least the `capacity` most recently written keys, and at most twice
/// as many: when the newer half fills, the older one is dropped. What the newer half holds
/// shadows the older.
#[derive(Debug)]
struct Recent<K, V> {
    capacity: usize,
    newer: HashMap<K, V>,
    older: HashMap<K, V>,
}

impl<K: std::hash::Hash + Eq, V> Recent<K, V> {
    fn new(capacity: usize) -> Self {
        Recent { capacity, newer: HashMap::new(), older: HashMap::new() }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.newer.get(key).or_else(|| self.older.get(key))
    }

    fn make_room(&mut self, key: &K) {
        if self.newer.len() >= self.capacity && !self.newer.contains_key(key) {
            self.older = std::mem::take(&mut self.newer);
        }
    }

    fn insert(&mut self, key: K, value: V) {
        self.older.remove(&key);
        self.make_room(&key);
        self.newer.insert(key, value);
    }

    /// The value of `key`, its default if it has none, as the most recently written.
    fn entry(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        if !self.newer.contains_key(&key) {
            let value = self.older.remove(&key).unwrap_or_default();
            self.make_room(&key);
            return self.newer.entry(key).or_insert(value);
        }
        self.newer.entry(key).or_default()
    }
}

fn finding(server: String, address: Option<String>, port: Option<u16>, group: Group, recovered: bool) -> Finding {
    let latest = group.latest;
    let class = match latest.meaning {
        ErrorMeaning::Class(c) => Some(c),
        _ => None,
    };
    let (concerns, remedy) = advice(class, &server, address.as_deref(), port, &latest);
    let (port_from, request) = match latest.port_from {
        PortFrom::Request(request) => (PortSource::Request, Some(request)),
        PortFrom::UdsDiscovery => (PortSource::UdsDiscovery, None),
        PortFrom::Unknown => (PortSource::Unknown, None),
    };
    Finding {
        server,
        address,
        port,
        port_from,
        request,
        class,
        error: latest.error,
        depth: latest.depth,
        action: latest.action,
        count: group.count,
        errors: group.errors,
        last_line: latest.line,
        last_error_line: group.last_error_line,
        source: latest.source,
        concerns,
        remedy,
        workaround: WORKAROUND.to_string(),
        recovered,
        peers: group.peers.into_iter().collect(),
    }
}

/// The certificate or address concerned, and the long-term remedy (SPEC's troubleshooting
/// flow). No remedy uploads a CA-signed leaf: only a self-signed certificate is its own anchor.
fn advice(
    class: Option<DiagnosisClass>,
    server: &str,
    address: Option<&str>,
    port: Option<u16>,
    warning: &LatestWarning,
) -> (String, String) {
    let (sni, depth, error) = (warning.sni.as_str(), warning.depth, warning.error.as_str());
    let at = match port {
        Some(p) => format!("{server}:{p}"),
        None => format!("{server} (port not in the log)"),
    };
    let depth_text = depth.map_or("at an unknown depth".to_string(), |d| format!("at depth {d}"));
    let cert = match depth {
        Some(0) | None => format!("the certificate {at} serves (depth 0)"),
        Some(d) => format!("the CA certificate at depth {d} of the chain {at} serves"),
    };
    let trust =
        "Expressway-C's trust store (Maintenance > Security > Trusted CA certificate), on every peer of the cluster";
    let refresh = "then refresh discovery (Configuration > Unified Communications)";
    let Some(class) = class else {
        return (
            cert,
            format!(
                "verification failed with '{error}' {depth_text}: not one of the known classes; check that certificate and its chain with openssl s_client"
            ),
        );
    };
    match class {
        DiagnosisClass::SelfSigned => (
            format!("the self-signed certificate {at} serves (depth 0)"),
            format!(
                "upload that self-signed certificate to {trust}; or have the node serve a CA-signed certificate whose CA chain is uploaded"
            ),
        ),
        DiagnosisClass::UnknownIssuer => (
            cert,
            format!(
                "upload the issuing CA chain (every intermediate and the root) of the certificate {depth_text} to {trust}, or make the node send its intermediates; never the server's own CA-signed certificate"
            ),
        ),
        DiagnosisClass::UntrustedRoot => (
            format!("the self-signed root {depth_text} of the chain {at} serves"),
            format!("upload that root CA certificate to {trust}"),
        ),
        DiagnosisClass::MissingRoot => {
            // The certificate at that depth was found (sent, or in the trust store); the one that
            // signed it was not, whatever it is: an intermediate or the root.
            let issuer = format!("the issuer of the certificate {depth_text}");
            let subject = warning.subject.as_deref().map(|s| format!(" ({s})")).unwrap_or_default();
            (
                format!("{issuer}{subject} of the chain built for {at}"),
                format!(
                    "upload {issuer}{}, and every CA certificate above it up to its root, to {trust}",
                    warning.subject.as_deref().map(|s| format!(", the CA that signed {s}")).unwrap_or_default()
                ),
            )
        }
        DiagnosisClass::Expired => (
            cert,
            "re-issue (renew) that certificate and install it on the node; check Expressway-C's clock".to_string(),
        ),
        DiagnosisClass::NotYetValid => (
            cert,
            "re-issue that certificate with a validity that has started, or fix the clock of Expressway-C or of the CA"
                .to_string(),
        ),
        DiagnosisClass::WrongPurpose => (
            cert,
            "re-issue that certificate with Extended Key Usage serverAuth (TLS Web Server Authentication)".to_string(),
        ),
        DiagnosisClass::NameNotInCertificate => {
            let is_ip = sni.parse::<std::net::IpAddr>().is_ok();
            let kind = if is_ip { "IP address" } else { "name" };
            let via = address.filter(|a| *a != sni).map(|a| format!(" ({a})")).unwrap_or_default();
            // The traffic server (ATS 8.1 and 9.2 alike) matches the SNI against DNS SANs and
            // the CN only: an iPAddress SAN does not help (scenario seed::remedy-reissue-ip-san),
            // the address written as a DNS name does (seed::remedy-reissue-ip-as-dns-san).
            let remedy = if is_ip {
                format!(
                    "re-issue the node's certificate with a DNS SAN holding the address text (dns:{sni}), as IP SANs are not matched; or advertise the FQDN: set CUCM System > Server to the FQDN in the certificate's SAN, so the node is advertised by it; {refresh}"
                )
            } else {
                format!(
                    "re-issue the node's certificate with {sni} as a DNS SAN (dns:{sni}), or set CUCM System > Server to a name the certificate holds, so the node is advertised by it; {refresh}"
                )
            };
            (format!("the {kind} {sni}{via}, absent from the certificate {at} serves"), remedy)
        }
    }
}

impl Report {
    /// Whether any server failed verification: exit 1.
    pub fn found_failures(&self) -> bool {
        !self.findings.is_empty()
    }

    /// For people: how the input was read, when not all of it was (see [`Reading::notes`]).
    pub fn notes(&self) -> String {
        self.reading.notes()
    }

    /// For tools: the counts and [`Reading`] as one line of JSON (`files`, `lines`, `skipped`,
    /// `truncated_lines`, `decompressed_bytes`, `limit_reached`, `limits`, ...).
    pub fn summary_json(&self) -> String {
        summary_json(self.files, self.lines, &self.reading)
    }

    /// The findings as a JSON list (the report's `findings`), pretty-printed.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.findings).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// For people: one block per finding.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "read {} file(s), {} line(s)", self.files, self.lines);
        if self.findings.is_empty() {
            out.push_str("no origin certificate verification failures found\n");
            return out;
        }
        let _ =
            writeln!(out, "{} server(s) failed Expressway-C's origin certificate verification:", self.findings.len());
        for f in &self.findings {
            let port = f.port.map_or("?".to_string(), |p| p.to_string());
            // `10.48.36.215 (10.48.36.215)` says nothing twice: the address once.
            let address = f
                .address
                .as_deref()
                .filter(|a| !a.eq_ignore_ascii_case(&f.server))
                .map(|a| format!(" ({a})"))
                .unwrap_or_default();
            let class = f.class.map_or("unclassified", class_name);
            let _ = writeln!(out, "\n{}{address} port {port}: {class}", f.server);
            let depth = f.depth.map(|d| format!(" at depth {d}")).unwrap_or_default();
            let action = f.action.as_deref().map(|a| format!(", Action={a}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "  error:      {}{depth}{action} ({} warning(s), {} connection error(s))",
                f.error, f.count, f.errors
            );
            match (&f.request, f.port_from) {
                (Some(r), _) => {
                    let _ = writeln!(
                        out,
                        "  request:    {} (host {}, port {}), path {} (at {})",
                        r.decoded, r.host, r.port, r.path, r.source
                    );
                }
                (None, PortSource::UdsDiscovery) => {
                    out.push_str(
                        "  request:    Expressway-C's own UDS request (discovery): CUCM serves UDS on port 8443\n",
                    );
                }
                (None, _) => {
                    let _ = writeln!(out, "  port:       not in the log: {PORT_HINT}");
                }
            }
            let _ = writeln!(out, "  concerns:   {}", f.concerns);
            let _ = writeln!(out, "  remedy:     {}", f.remedy);
            let _ = writeln!(out, "  workaround: {}", f.workaround);
            if !f.peers.is_empty() {
                let _ = writeln!(out, "  logged by:  {} (apply the remedy on every peer)", f.peers.join(", "));
            }
            if f.action.as_deref() == Some("Continue") {
                out.push_str(
                    "  note:       Action=Continue (PERMISSIVE): requests went through; under enforcement they fail\n",
                );
            }
            if f.recovered {
                out.push_str("  note:       a later request to it succeeded: the remedy may already be in place\n");
            }
            let _ = writeln!(out, "  last line:  {}", f.last_line);
            let _ = writeln!(out, "  at:         {}", f.source);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Recent;

    #[test]
    fn recent_remembers_at_least_its_capacity_of_the_latest_writes_and_at_most_twice_that() {
        let mut recent = Recent::new(4);
        for i in 0..100u32 {
            recent.insert(i, i * 10);
            // The 4 latest are always there, with their latest value.
            for j in i.saturating_sub(3)..=i {
                assert_eq!(recent.get(&j), Some(&(j * 10)));
            }
            assert!(recent.newer.len() + recent.older.len() <= 8);
        }
        assert_eq!(recent.get(&0), None);
        // A rewritten key counts as written again, with its new value.
        recent.insert(96, 1);
        for i in 100..103 {
            recent.insert(i, 0);
        }
        *recent.entry(96) += 1;
        assert_eq!(recent.get(&96), Some(&2));
        assert_eq!(recent.get(&95), None);
    }
}
