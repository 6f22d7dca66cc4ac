//! One log line read: what it is (a verification warning, a request line, a header, a chain
//! line), and what an `Error=` text means. No state: [`super::Diagnosis`] ties lines together.

use super::*;

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
pub(super) fn chain_subject(line: &str) -> Option<LineEvent> {
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
pub(super) fn cut(text: &str, max: usize) -> String {
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
    if let Some(inner) = line.strip_prefix('[')
        && rfc3164_stamp(inner)
    {
        return true;
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
pub(super) fn rfc3339_stamp(line: &str) -> bool {
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
pub(super) fn rfc3164_stamp(line: &str) -> bool {
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
pub(super) fn field<'a>(text: &'a str, key: &str, ends: &[&str]) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let rest = &text[start..];
    let end = ends.iter().filter_map(|e| rest.find(e)).min().unwrap_or(rest.len());
    Some(&rest[..end])
}

/// `server=name(address)`, either part possibly cut short.
pub(super) fn server_field(text: &str) -> (Option<String>, Option<String>) {
    let Some(value) = field(text, "server=", &[" "]) else { return (None, None) };
    let (name, address) = match value.split_once('(') {
        Some((name, rest)) => (name, Some(rest.split_once(')').map_or(rest, |(a, _)| a))),
        None => (value, None),
    };
    let clean = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    (clean(name), address.and_then(clean))
}
