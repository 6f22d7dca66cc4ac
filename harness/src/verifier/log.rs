//! The traffic server's log lines, stamped with a pinned clock and pid so that snapshots are
//! byte-identical on every run.
//!
//! Two profiles decide the wording around the same facts:
//! - `expressway-x14.2`: Expressway X14.2's traffic server (ATS 8.1 line, OpenSSL 1.1.1), lines
//!   as Expressway's syslog writes them, as in the seed:
//!   `2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] WARNING: ...`,
//!   with the `ERROR: SSL connection failed ...` line and `502 connect failed`;
//! - `ats-9.2`: stock Apache Traffic Server 9.2 with OpenSSL 3, lines as its `diags.log` writes
//!   them (`[Jul 11 16:55:26.016] [ET_NET 0] WARNING: ...`), the SSL error only as a debug line,
//!   and `502` with an empty reason.
//!
//! The seed cuts Expressway's request lines short (`UTCTime="..." Module="netw`); this module
//! writes them in one documented form: `UTCTime="<utc>" Module="network.http.trafficserver"
//! Level="DEBUG": Detail="<what>" Txn-id="<n>" HTTPMSG:` followed by a `|<request or status line>`
//! line, as the seed shows them.

use time::macros::format_description;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::chain::OpensslFlavour;

/// Which traffic server the lines and checks imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Expressway X14.2's traffic server (ATS 8.1 line, OpenSSL 1.1.1).
    ExpresswayX14_2,
    /// Stock Apache Traffic Server 9.2 with OpenSSL 3.
    Ats9_2,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 2] = [Profile::ExpresswayX14_2, Profile::Ats9_2];

    /// `expressway-x14.2` or `ats-9.2`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::ExpresswayX14_2 => "expressway-x14.2",
            Profile::Ats9_2 => "ats-9.2",
        }
    }

    /// Parses a profile name.
    pub fn from_name(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The OpenSSL whose chain rules and error texts apply.
    pub fn flavour(self) -> OpensslFlavour {
        match self {
            Profile::ExpresswayX14_2 => OpensslFlavour::V1_1_1,
            Profile::Ats9_2 => OpensslFlavour::V3_0,
        }
    }

    /// OpenSSL's security level: 1 is OpenSSL 1.1.1's default (Expressway's build is not
    /// known to change it); Debian builds OpenSSL 3 with level 2, which stock ATS inherits.
    pub fn security_level(self) -> u8 {
        match self {
            Profile::ExpresswayX14_2 => 1,
            Profile::Ats9_2 => 2,
        }
    }

    /// `proxy.config.ssl.client.verify.depth`: ATS sets it on its client context; 7 is the
    /// records.config default.
    pub fn verify_depth(self) -> usize {
        7
    }

    /// The reason phrase of a 502.
    pub fn bad_gateway_reason(self) -> &'static str {
        match self {
            Profile::ExpresswayX14_2 => "connect failed",
            Profile::Ats9_2 => "",
        }
    }

    /// The reason phrase of the 502 when every connection to the origin is refused (its
    /// services are down), with nothing in diags.log. Observed: ATS 8.1.10 answers `502
    /// Connection refused`, stock ATS 9.2 `502 Broken pipe` (a node-down step through
    /// `--verifier ats:8.1`, both fleet tiers, and `--verifier ats`).
    pub fn refused_reason(self) -> &'static str {
        match self {
            Profile::ExpresswayX14_2 => "Connection refused",
            Profile::Ats9_2 => "Broken pipe",
        }
    }

    /// The reason phrase of the 502 when no connection to the origin is ever answered (a
    /// partition), each attempt having waited the connect timeout, with nothing in diags.log.
    /// Observed: ATS 8.1.10 answers `502 internal error - server connection terminated`, stock
    /// ATS 9.2 `502 connect failed` (a partition step through `--verifier ats:8.1` and `ats`).
    pub fn silent_reason(self) -> &'static str {
        match self {
            Profile::ExpresswayX14_2 => "internal error - server connection terminated",
            Profile::Ats9_2 => "connect failed",
        }
    }

    /// The status and reason phrase when the origin's name does not resolve, with the "Unknown
    /// Host" page and nothing in diags.log. Stock ATS 9.2 answers `500 Cannot find server.`;
    /// ATS 8.1.10, Expressway's generation, `502 Cannot find server.` (both observed:
    /// `snapshots/ats/` and `snapshots/ats-8.1/beyond/system-server-name-does-not-resolve.snap`).
    pub fn unresolved_status(self) -> (u16, &'static str) {
        match self {
            Profile::ExpresswayX14_2 => (502, "Cannot find server."),
            Profile::Ats9_2 => (500, "Cannot find server."),
        }
    }

    /// Whether IP SANs count when a node is reached by IP. Stock ATS 9.2 ignores them
    /// (observed); Expressway is modelled the same way, not confirmed for Cisco's build.
    pub fn ip_sans_count(self) -> bool {
        false
    }

    /// Whether origin TLS sessions are resumed (stock ATS: on by default, and a resumed
    /// session is not verified again). Expressway's build is modelled without it.
    pub fn resumes_sessions(self) -> bool {
        matches!(self, Profile::Ats9_2)
    }

    /// Connections a request may make to a failing origin, for a configured
    /// `connect_attempts_max_retries` of `attempts - 1`: ATS 9.2 makes 1 + the retries (4);
    /// ATS 8.1 takes `connect_attempts_max_retries` as the total (3). Observed through
    /// `--verifier ats` and `--verifier ats:8.1`; the seed's capture shows three connections to
    /// 6972 for one failing request.
    pub fn attempts(self, configured: u32) -> u32 {
        match self {
            Profile::ExpresswayX14_2 => configured.saturating_sub(1).max(1),
            Profile::Ats9_2 => configured.max(1),
        }
    }

    /// How the traffic server marks an origin down after failed transactions, so that later
    /// requests make one attempt (`connect_attempts_max_retries_dead_server` = 1) until
    /// `down_server.cache_time` (60 s) has passed.
    /// - ATS 9.2: the address and port, after `connect_attempts_rr_retries` = 3 failed
    ///   transactions (observed).
    /// - ATS 8.1: the host as the request names it (a name or an address) and the port (HostDB's
    ///   key), after one failed transaction (observed through `--verifier ats:8.1`: 3 attempts,
    ///   then 1 per request to that host and port, an address as much as a name:
    ///   `snapshots/ats-8.1/seed/cucm-advertised-by-ip.snap`, step 4).
    pub fn down_rule(self) -> DownRule {
        match self {
            Profile::ExpresswayX14_2 => DownRule { after_failed_transactions: 1, by_name: true },
            Profile::Ats9_2 => DownRule { after_failed_transactions: 3, by_name: false },
        }
    }

    /// The libssl error for a failed certificate verification, as `ERR_error_string` prints it.
    pub fn verify_failed_error(self) -> &'static str {
        match self {
            Profile::ExpresswayX14_2 => {
                "error:1416F086:SSL routines:tls_process_server_certificate:certificate verify failed"
            }
            Profile::Ats9_2 => "error:0A000086:SSL routines::certificate verify failed",
        }
    }

    /// The libssl error for a fatal alert received from the node. libssl reports a received
    /// fatal alert as reason `SSL_AD_REASON_OFFSET` (1000) + the alert's number, with the
    /// reason's text from its error table (the same in 1.1.1 and 3.0).
    pub fn alert_error(self, alert: &str) -> String {
        let (number, text) = match alert {
            "unknown_ca" | "UnknownCA" => (48, "tlsv1 alert unknown ca"),
            "bad_certificate" | "BadCertificate" => (42, "sslv3 alert bad certificate"),
            "certificate_required" | "CertificateRequired" => (116, "tlsv13 alert certificate required"),
            "handshake_failure" | "HandshakeFailure" => (40, "sslv3 alert handshake failure"),
            "certificate_expired" | "CertificateExpired" => (45, "sslv3 alert certificate expired"),
            _ => (80, "tlsv1 alert internal error"),
        };
        let code = 1000 + number;
        match self {
            Profile::ExpresswayX14_2 => format!("error:14094{code:03X}:SSL routines:ssl3_read_bytes:{text}"),
            Profile::Ats9_2 => format!("error:0A000{code:03X}:SSL routines::{text}"),
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How lines are stamped: a pinned start time, pid and host name.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// The clock's start (a scenario pins it to its validation time).
    pub start: OffsetDateTime,
    /// Expressway's local time offset, as its syslog shows it.
    pub utc_offset: UtcOffset,
    /// The traffic_server pid.
    pub pid: u32,
    /// Expressway-C's host name.
    pub hostname: String,
}

impl LogSettings {
    /// The seed's stamps: +02:00, pid 18242, host `vcsc`.
    pub fn seed(start: OffsetDateTime) -> LogSettings {
        LogSettings {
            start,
            utc_offset: UtcOffset::from_hms(2, 0, 0).unwrap_or(UtcOffset::UTC),
            pid: 18242,
            hostname: "vcsc".into(),
        }
    }
}

/// When an origin is marked down; see [`Profile::down_rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownRule {
    /// Failed transactions (every attempt failed) after which it is marked down.
    pub after_failed_transactions: u32,
    /// Whether the origin is keyed by the host as the request names it (name or address) and
    /// the port; otherwise by the address it resolved to and the port.
    pub by_name: bool,
}

/// How long an origin stays marked down (`proxy.config.http.down_server.cache_time`), on the
/// log's clock; the ats verifiers write the same value into records.config.
pub const DOWN_SERVER_CACHE_TIME: Duration = Duration::seconds(60);

/// Writes lines for one profile, advancing a virtual clock by a millisecond per line.
#[derive(Debug, Clone)]
pub struct LogWriter {
    profile: Profile,
    settings: LogSettings,
    now: OffsetDateTime,
    txn: u64,
}

impl LogWriter {
    /// A writer whose clock starts at `settings.start`.
    pub fn new(profile: Profile, settings: LogSettings) -> LogWriter {
        LogWriter { profile, now: settings.start, settings, txn: 0 }
    }

    /// The clock's reading.
    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// Moves the clock on (it stops at the last instant `time` can hold rather than overflow:
    /// a scenario may pin its validation time at the end of year 9999).
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now.checked_add(by).unwrap_or(self.now);
    }

    /// The next transaction id.
    pub fn next_txn(&mut self) -> u64 {
        self.txn += 1;
        self.txn
    }

    fn prefix(&mut self) -> String {
        self.advance(Duration::milliseconds(1));
        match self.profile {
            Profile::ExpresswayX14_2 => {
                // Out of range at the very edges of year 0 and 9999: stamp in UTC there.
                let local = self.now.checked_to_offset(self.settings.utc_offset).unwrap_or(self.now);
                let stamp = local
                    .format(format_description!(
                        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory]:[offset_minute]"
                    ))
                    .unwrap_or_default();
                format!("{stamp} {} traffic_server[{}]: ", self.settings.hostname, self.settings.pid)
            }
            Profile::Ats9_2 => {
                let stamp = self
                    .now
                    .format(format_description!(
                        "[month repr:short] [day] [hour]:[minute]:[second].[subsecond digits:3]"
                    ))
                    .unwrap_or_default();
                format!("[{stamp}] ")
            }
        }
    }

    /// A line from a network thread: `[ET_NET 0] WARNING: ...`.
    pub fn net(&mut self, body: &str) -> String {
        format!("{}[ET_NET 0] {body}", self.prefix())
    }

    /// A request or response message line and its `|...` continuation (Expressway only).
    pub fn http_message(&mut self, detail: &str, txn: u64, message: &str) -> Vec<String> {
        if self.profile != Profile::ExpresswayX14_2 {
            return Vec::new();
        }
        let utc = self
            .now
            .checked_add(Duration::milliseconds(1))
            .unwrap_or(self.now)
            .format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second],[subsecond digits:3]"))
            .unwrap_or_default();
        let head = format!(
            "{}UTCTime=\"{utc}\" Module=\"network.http.trafficserver\" Level=\"DEBUG\": Detail=\"{detail}\" Txn-id=\"{txn}\" HTTPMSG:",
            self.prefix()
        );
        vec![head, format!("|{message}")]
    }

    /// A debug-tag line (stock ATS `ssl.error`), same stamp, with its tag.
    pub fn debug(&mut self, tag: &str, body: &str) -> String {
        format!("{}[ET_NET 0] DEBUG: <{tag}> {body}", self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// Each alert's error line is libssl's own: OpenSSL 3.0's `openssl errstr` prints the
    /// ats-9.2 line for the same code, and Expressway's 1.1.1 line carries the same reason (its
    /// library 0x14, function ssl3_read_bytes 0x094).
    #[test]
    fn alert_errors_are_libssls_own() {
        let alerts = ["UnknownCA", "BadCertificate", "CertificateRequired", "HandshakeFailure", "CertificateExpired"];
        for alert in alerts.into_iter().chain(["internal_error", "DecodeError"]) {
            let line = Profile::Ats9_2.alert_error(alert);
            let code = line.split(':').nth(1).expect("a code");
            let out = std::process::Command::new("openssl").args(["errstr", code]).output().expect("openssl runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), line, "{alert}");
            let old = Profile::ExpresswayX14_2.alert_error(alert);
            let reason = &code[5..];
            let text = line.rsplit(':').next().expect("a text");
            assert_eq!(old, format!("error:14094{reason}:SSL routines:ssl3_read_bytes:{text}"), "{alert}");
        }
        // Each named alert has its own line, none the fallback's.
        let fallback = Profile::Ats9_2.alert_error("internal_error");
        for alert in alerts {
            assert_ne!(Profile::Ats9_2.alert_error(alert), fallback, "{alert}");
        }
    }

    #[test]
    fn expressway_lines_carry_the_seed_prefix() {
        let mut w = LogWriter::new(Profile::ExpresswayX14_2, LogSettings::seed(datetime!(2022-07-11 16:55:26.015 UTC)));
        assert_eq!(
            w.net("WARNING: x"),
            "2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] WARNING: x"
        );
    }

    #[test]
    fn a_clock_pinned_at_the_end_of_year_9999_writes_lines_instead_of_panicking() {
        let end = datetime!(9999-12-31 23:59:59.999 UTC);
        for profile in Profile::ALL {
            let mut w = LogWriter::new(profile, LogSettings::seed(end));
            w.advance(Duration::days(1));
            assert!(w.net("WARNING: x").ends_with("WARNING: x"));
            assert!(w.debug("ssl.error", "y").ends_with("y"));
        }
    }

    #[test]
    fn ats_lines_carry_the_diags_prefix() {
        let mut w = LogWriter::new(Profile::Ats9_2, LogSettings::seed(datetime!(2022-07-11 16:55:26.015 UTC)));
        assert_eq!(w.net("WARNING: x"), "[Jul 11 16:55:26.016] [ET_NET 0] WARNING: x");
        // A debug tag's line (stock ATS's ssl.error), on the same clock, a millisecond on.
        assert_eq!(
            w.debug("ssl.error", "SSL connection failed"),
            "[Jul 11 16:55:26.017] [ET_NET 0] DEBUG: <ssl.error> SSL connection failed"
        );
    }
}
