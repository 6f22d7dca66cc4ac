//! What `diagnose` says: each server's finding with its remedy and workaround, as text and
//! JSON.

use super::*;

pub(super) fn finding(
    server: String,
    address: Option<String>,
    port: Option<u16>,
    group: Group,
    recovered: bool,
) -> Finding {
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
pub(super) fn advice(
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
