//! The handshake summary of one recorded connection, read from the clear part of its TLS
//! records: the certificate the node sent (subject of the first certificate), whether it asked
//! for a client certificate, and the alerts either side sent in clear. Encrypted records
//! (TLS 1.3 handshakes, alerts after ChangeCipherSpec) are counted, not read.
//!
//! Bytes from a peer: every length is checked, nothing here panics on them.

use simulators::{ConnectionRecording, Direction, Segment};

/// What one connection showed in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeSummary {
    /// The client's port in the capture.
    pub client_port: u16,
    /// The node's name.
    pub node: String,
    /// The node's modelled address and port, `10.48.36.215:6972`.
    pub server: String,
    /// The subject of each certificate the node sent in clear, leaf first.
    pub certificates: Vec<String>,
    /// Whether the node asked for a client certificate (CertificateRequest).
    pub certificate_request: bool,
    /// Alerts sent in clear: who sent it (`verifier` or `node`), its description and code.
    pub alerts: Vec<(String, String, u8)>,
    /// Records after ChangeCipherSpec (or TLS 1.3 encrypted ones), per direction: client, node.
    pub encrypted_records: (usize, usize),
}

impl HandshakeSummary {
    /// One line for people: `:31576 → cucm 10.48.36.215:6972: certificate CN=...; alert
    /// unknown_ca (48) from verifier`.
    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        if self.certificates.is_empty() {
            parts.push("no certificate in clear".to_owned());
        } else {
            parts.push(format!("node sent certificate {}", self.certificates.join(" ← ")));
        }
        if self.certificate_request {
            parts.push("CertificateRequest".to_owned());
        }
        for (who, name, code) in &self.alerts {
            parts.push(format!("alert {name} ({code}) from {who}"));
        }
        if self.alerts.is_empty() && self.encrypted_records.0 + self.encrypted_records.1 > 0 {
            parts.push(format!(
                "{} encrypted records (decrypted by the capture's secrets)",
                self.encrypted_records.0 + self.encrypted_records.1
            ));
        }
        format!(":{} → {} {}: {}", self.client_port, self.node, self.server, parts.join("; "))
    }
}

/// The alert names Wireshark shows, by code (RFC 8446 §6).
pub fn alert_name(code: u8) -> &'static str {
    match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        90 => "user_canceled",
        109 => "missing_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        _ => "unknown",
    }
}

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const CERTIFICATE: u8 = 11;
const CERTIFICATE_REQUEST: u8 = 13;
const SERVER_HELLO: u8 = 2;

fn stream(connection: &ConnectionRecording, direction: Direction) -> Vec<u8> {
    let mut out = Vec::new();
    for segment in &connection.segments {
        if let Segment::Data { direction: d, bytes } = segment
            && *d == direction
        {
            out.extend_from_slice(bytes);
        }
    }
    out
}

/// TLS records as (content type, fragment), up to the first incomplete one.
fn records(bytes: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let [kind, _, _, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let Some(fragment) = tail.get(..len) else { break };
        out.push((*kind, fragment));
        rest = tail.get(len..).unwrap_or_default();
    }
    out
}

fn u24(b: &[u8]) -> Option<usize> {
    match b {
        [a, b, c, ..] => Some((usize::from(*a) << 16) | (usize::from(*b) << 8) | usize::from(*c)),
        _ => None,
    }
}

/// The subjects in a TLS 1.2 Certificate message body.
fn certificate_subjects(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(total) = u24(body) else { return out };
    let mut list = body.get(3..3 + total).unwrap_or_default();
    while let Some(len) = u24(list) {
        let Some(der) = list.get(3..3 + len) else { break };
        let subject = x509_parser::parse_x509_certificate(der)
            .map_or_else(|_| "(unparsable certificate)".to_owned(), |(_, c)| c.subject().to_string());
        out.push(subject);
        list = list.get(3 + len..).unwrap_or_default();
    }
    out
}

/// Reads one connection's clear handshake and alerts.
pub fn summarise(client_port: u16, connection: &ConnectionRecording) -> HandshakeSummary {
    let mut summary = HandshakeSummary {
        client_port,
        node: connection.node.clone(),
        server: format!("{}:{}", connection.modelled_ip, connection.port),
        certificates: Vec::new(),
        certificate_request: false,
        alerts: Vec::new(),
        encrypted_records: (0, 0),
    };
    for direction in [Direction::ToNode, Direction::FromNode] {
        let bytes = stream(connection, direction);
        let who = if direction == Direction::ToNode { "verifier" } else { "node" };
        let mut encrypted = false;
        let mut handshake = Vec::new();
        for (kind, fragment) in records(&bytes) {
            match kind {
                _ if encrypted => {
                    if direction == Direction::ToNode {
                        summary.encrypted_records.0 += 1;
                    } else {
                        summary.encrypted_records.1 += 1;
                    }
                }
                CHANGE_CIPHER_SPEC => encrypted = true,
                ALERT => {
                    if let [_, code] = fragment {
                        summary.alerts.push((who.to_owned(), alert_name(*code).to_owned(), *code));
                    }
                }
                HANDSHAKE => handshake.extend_from_slice(fragment),
                // Application data before ChangeCipherSpec: TLS 1.3 after its ServerHello.
                _ => {
                    encrypted = true;
                    if direction == Direction::ToNode {
                        summary.encrypted_records.0 += 1;
                    } else {
                        summary.encrypted_records.1 += 1;
                    }
                }
            }
        }
        if direction == Direction::FromNode {
            let mut rest = handshake.as_slice();
            while let [kind, tail @ ..] = rest {
                let Some(len) = u24(tail) else { break };
                let Some(body) = tail.get(3..3 + len) else { break };
                match *kind {
                    CERTIFICATE => summary.certificates = certificate_subjects(body),
                    CERTIFICATE_REQUEST => summary.certificate_request = true,
                    SERVER_HELLO => {}
                    _ => {}
                }
                rest = tail.get(3 + len..).unwrap_or_default();
            }
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clear_alert_is_read_with_its_sender() {
        let c = ConnectionRecording {
            order: 0,
            node: "cucm".into(),
            modelled_ip: "10.48.36.215".parse().expect("literal"),
            port: 6972,
            peer: "127.0.0.1:1".parse().expect("literal"),
            segments: vec![Segment::Data { direction: Direction::ToNode, bytes: vec![21, 3, 3, 0, 2, 2, 48] }],
        };
        let s = summarise(31576, &c);
        assert_eq!(s.alerts, vec![("verifier".to_owned(), "unknown_ca".to_owned(), 48)]);
        assert!(s.line().contains("alert unknown_ca (48) from verifier"), "{}", s.line());
    }

    #[test]
    fn truncated_records_are_ignored_without_panicking() {
        for bytes in [vec![22, 3, 3, 0xff, 0xff, 11], vec![22, 3, 3, 0, 4, 11, 0xff, 0xff, 0xff], vec![22]] {
            let c = ConnectionRecording {
                order: 0,
                node: "n".into(),
                modelled_ip: "10.0.0.1".parse().expect("literal"),
                port: 8443,
                peer: "127.0.0.1:1".parse().expect("literal"),
                segments: vec![Segment::Data { direction: Direction::FromNode, bytes }],
            };
            assert!(summarise(1, &c).certificates.is_empty());
        }
    }
}
