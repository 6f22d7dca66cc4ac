//! Reading the ats verifier's `traffic_server` diags.log: the lines written since the last
//! request, split into thread and body, and read into what the verifier reports: the WARNING
//! lines of ATS's origin verify callback as [`Failure`]s (with the `X509_V_ERR_*` codes of the
//! OpenSSL it runs on), the handshake's reason (9.2: the `ssl.error` debug line; 8.1: an ERROR
//! line), and them as log lines in the profile of its generation (`ats-9.2`, or
//! `expressway-x14.2` for 8.1). The verifier in the parent module decides when to read; nothing here
//! talks to ATS.

use std::fs;
use std::io::{self, Read as _, Seek as _};
use std::path::Path;
use std::time::Duration;

use crate::chain::{OpensslFlavour, VerifyErrorCode};
use crate::verifier::Failure;
use crate::verifier::log::LogWriter;

/// Where diags.log is, relative to the runroot.
pub(super) const DIAGS_LOG: &str = "log/diags.log";

/// How long a line ATS has begun to write may take to end.
const PARTIAL_LINE_WAIT: Duration = Duration::from_millis(200);

/// The lines of the file at `path` written after `offset`. Whole lines only: `offset` moves past
/// the last newline read.
///
/// Called once ATS has answered a request: ATS's one network thread writes a request's WARNING
/// and `ssl.error` lines (flushed, line by line) before it writes the answer, so they are there.
/// Only a line caught half-written is waited for, briefly; no fixed wait for the file to stop
/// growing.
pub(super) fn lines_since(path: &Path, offset: &mut u64) -> Vec<String> {
    let waited = std::time::Instant::now();
    let mut bytes = read_from(path, *offset);
    while bytes.last().is_some_and(|&b| b != b'\n') && waited.elapsed() < PARTIAL_LINE_WAIT {
        std::thread::sleep(Duration::from_millis(2));
        bytes = read_from(path, *offset);
    }
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    *offset += whole as u64;
    String::from_utf8_lossy(&bytes[..whole]).lines().map(str::to_string).collect()
}

/// The bytes of the file at `path` from `offset` on (none if it cannot be read).
fn read_from(path: &Path, offset: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(mut f) = fs::File::open(path)
        && f.seek(io::SeekFrom::Start(offset)).is_ok()
    {
        let _ = f.read_to_end(&mut bytes);
    }
    bytes
}

/// The first line of the diags.log at `path` in which traffic_server says it does not know a
/// setting (`Unrecognized configuration value`): a harness fault, never a verdict.
pub(super) fn unrecognized(path: &Path) -> Option<String> {
    let diags = fs::read_to_string(path).unwrap_or_default();
    diags.lines().find(|l| l.contains("Unrecognized configuration value")).map(str::to_string)
}

/// The last `n` lines of the file at `path` (none if it cannot be read), joined by newlines.
pub(super) fn last_lines(path: &Path, n: usize) -> String {
    let diags = fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = diags.lines().rev().take(n).collect::<Vec<_>>().into_iter().rev().collect();
    tail.join("\n")
}

/// What one request's diags.log lines say.
#[derive(Debug, Default)]
pub(super) struct Reading {
    /// The reason of the last `SSL connection failed` line, if any.
    pub(super) ssl_error: Option<String>,
    /// The OpenSSL error of the last failed read after a handshake (`ssl.error.read`: `SSL read
    /// returned 0, ssl_error=1, ERR_get_error=... (error:...:tlsv13 alert certificate
    /// required)`), if any: how a TLS 1.3 server's rejection of the client certificate shows.
    pub(super) read_error: Option<String>,
    /// Those lines, as the profile writes debug lines.
    pub(super) debug: Vec<String>,
    /// The WARNING lines, as the profile writes them.
    pub(super) log: Vec<String>,
    /// The first failure a WARNING line states.
    pub(super) failure: Option<Failure>,
}

/// Reads a request's diags.log `lines`, writing log lines with `log`.
pub(super) fn read(lines: &[String], log: &mut LogWriter, flavour: OpensslFlavour) -> Reading {
    let mut reading = Reading::default();
    for line in lines {
        let Some((thread, body)) = diags_body(line) else { continue };
        if let Some(rest) = body.strip_prefix("DEBUG: ") {
            // `<SSLNetVConnection.cc:1577 (sslClientHandShakeEvent)> (ssl.error) text`
            let rest = rest.split_once("> ").map_or(rest, |(_, r)| r);
            // Only the `SSL connection failed` line, as the model writes it: the tag's other
            // lines (SSL_ERROR_WANT_READ, ...) are the state machine's chatter.
            if let Some((tag, text)) = rest.strip_prefix('(').and_then(|r| r.split_once(") "))
                && tag == "ssl.error"
                && text.starts_with("SSL connection failed")
            {
                reading.ssl_error = Some(text.rsplit("': ").next().unwrap_or(text).to_string());
                reading.debug.push(log.debug(tag, text));
            } else if let Some((tag, text)) = rest.strip_prefix('(').and_then(|r| r.split_once(") "))
                && tag == "ssl.error.read"
                && text.contains("ERR_get_error=")
                && let Some(error) = text.rsplit_once(" (").and_then(|(_, e)| e.strip_suffix(')'))
                && error.starts_with("error:")
            {
                reading.read_error = Some(error.to_string());
            }
        } else if let Some(text) = body.strip_prefix("ERROR: ") {
            // ATS 8.1 writes the handshake's failure at ERROR level, as Expressway's logs show:
            // `ERROR: SSL connection failed for 'cucm.steven.lab': error:1416F086:...`.
            if text.starts_with("SSL connection failed") {
                reading.ssl_error = Some(text.rsplit("': ").next().unwrap_or(text).to_string());
            }
            reading.log.push(if thread == "ET_NET 0" { log.net(body) } else { format!("[{thread}] {body}") });
        } else if body.starts_with("WARNING: ") {
            if reading.failure.is_none() {
                reading.failure = failure_in(body, flavour);
            }
            reading.log.push(if thread == "ET_NET 0" { log.net(body) } else { format!("[{thread}] {body}") });
        }
    }
    reading
}

/// The `X509_V_ERR_*` code OpenSSL of `flavour` prints as `text`.
fn code_of(text: &str, flavour: OpensslFlavour) -> i32 {
    (0..100)
        .filter_map(|c| VerifyErrorCode::from_code(c, flavour))
        .find(|c| c.text(flavour) == text)
        .map_or(0, |c| c.code(flavour))
}

/// The failure a WARNING line of ATS 9.2's origin verify callback states, if it is one.
pub fn failure_of(line: &str) -> Option<Failure> {
    failure_in(line, OpensslFlavour::V3_0)
}

/// The failure a WARNING line of ATS's origin verify callback states, in the words of OpenSSL
/// of `flavour`, if it is one.
pub fn failure_in(line: &str, flavour: OpensslFlavour) -> Option<Failure> {
    if let Some(rest) = line.split("Core server certificate verification failed for (").nth(1) {
        let text = rest.split(" Error=").nth(1)?.split(" server=").next()?.to_string();
        let depth = rest.rsplit(" depth=").next()?.trim().parse().ok()?;
        return Some(Failure::Chain { code: code_of(&text, flavour), text, depth });
    }
    if let Some(rest) = line.split("SNI (").nth(1) {
        let checked = rest.split(") not in certificate").next()?.to_string();
        if rest.contains(") not in certificate") {
            return Some(Failure::Name { checked });
        }
    }
    None
}

/// Splits `[Nov 26 22:41:56.719] [ET_NET 0] WARNING: ...` into thread and body.
fn diags_body(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('[')?.split_once("] ")?.1;
    let rest = rest.strip_prefix('[')?;
    rest.split_once("] ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lines` read as ATS 8.1's diags.log, in the Expressway profile's words.
    fn read_as_8_1(lines: &[String]) -> Reading {
        let profile = crate::verifier::log::Profile::ExpresswayX14_2;
        let mut log =
            LogWriter::new(profile, crate::verifier::log::LogSettings::seed(time::OffsetDateTime::UNIX_EPOCH));
        read(lines, &mut log, profile.flavour())
    }

    #[test]
    fn reads_ats_8_1_s_error_line_and_openssl_1_1_1_s_words() {
        let lines = [
            "[Nov 28 13:00:09.965] [ET_NET 0] WARNING: Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error=self signed certificate server=cucm.steven.lab(10.48.36.215) depth=0",
            "[Nov 28 13:00:09.965] [ET_NET 0] DEBUG: <SSLNetVConnection.cc:1455 (sslClientHandShakeEvent)> (ssl.error) SSLNetVConnection::sslClientHandShakeEvent, SSL_ERROR_SSL",
            "[Nov 28 13:00:09.965] [ET_NET 0] ERROR: SSL connection failed for 'cucm.steven.lab': error:1416F086:SSL routines:tls_process_server_certificate:certificate verify failed",
        ]
        .map(String::from);
        let reading = read_as_8_1(&lines);
        assert_eq!(
            reading.failure,
            Some(Failure::Chain { code: 18, text: "self signed certificate".into(), depth: 0 })
        );
        assert_eq!(
            reading.ssl_error.as_deref(),
            Some("error:1416F086:SSL routines:tls_process_server_certificate:certificate verify failed")
        );
        assert_eq!(reading.log.len(), 2, "{:?}", reading.log);
        assert!(reading.log[1].ends_with("[ET_NET 0] ERROR: SSL connection failed for 'cucm.steven.lab': error:1416F086:SSL routines:tls_process_server_certificate:certificate verify failed"));
        assert!(reading.debug.is_empty(), "the state machine's chatter is not kept: {:?}", reading.debug);
    }

    #[test]
    fn a_failed_read_after_the_handshake_gives_its_openssl_error_and_no_line() {
        // ATS 8.1 (OpenSSL 1.1.1w) and 9.2 (3.0) when a TLS 1.3 server refuses the client
        // certificate: the alert comes on the first read, under `ssl.error.read`.
        let lines = [
            "[Nov 28 16:09:31.315] [ET_NET 0] DEBUG: <SSLNetVConnection.cc:1414 (sslClientHandShakeEvent)> (ssl.error) SSLNetVConnection::sslClientHandShakeEvent, SSL_ERROR_WANT_READ",
            "[Nov 28 16:09:31.322] [ET_NET 0] DEBUG: <SSLUtils.cc:2422 (SSLReadBuffer)> (ssl.error.read) SSL read returned 0, ssl_error=1, ERR_get_error=336151644 (error:1409445C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required)",
            "[Nov 28 16:09:30.321] [ET_NET 0] DEBUG: <SSLNetVConnection.cc:2252 (_ssl_read_buffer)> (ssl.error.read) SSL read returned 0, ssl_error=5, ERR_get_error=0 (no error)",
        ]
        .map(String::from);
        let reading = read_as_8_1(&lines);
        assert_eq!(
            reading.read_error.as_deref(),
            Some("error:1409445C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required")
        );
        assert_eq!(reading.ssl_error, None);
        assert!(reading.log.is_empty() && reading.debug.is_empty(), "{reading:?}");
    }

    #[test]
    fn reads_the_chain_warning_of_the_verify_callback() {
        let line = "WARNING: Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error=self-signed certificate server=cucm.steven.lab(10.48.36.215) depth=0";
        assert_eq!(
            failure_of(line),
            Some(Failure::Chain { code: 18, text: "self-signed certificate".into(), depth: 0 })
        );
    }

    #[test]
    fn reads_the_name_warning_of_the_verify_callback() {
        let line = "WARNING: SNI (10.48.36.215) not in certificate. Action=Terminate server=10.48.36.215(10.48.36.215)";
        assert_eq!(failure_of(line), Some(Failure::Name { checked: "10.48.36.215".into() }));
    }

    #[test]
    fn splits_a_diags_line() {
        let line = "[Nov 26 22:41:56.719] [ET_NET 0] WARNING: x";
        assert_eq!(diags_body(line), Some(("ET_NET 0", "WARNING: x")));
    }
}
