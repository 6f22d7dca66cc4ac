//! The built-in Expressway-C model: a rustls client whose certificate check is the traffic
//! server's (OpenSSL-order chain walk from [`crate::chain`], then ATS's name check), with
//! Expressway's cipher order, attempts and log lines.
//!
//! The handshake is real: the node sees Expressway-C's ClientHello (and picks its RSA or ECDSA
//! certificate from it), and a failed check aborts the handshake with an alert, as OpenSSL
//! does. rustls decides the alert: `unknown_ca` for chain errors and `certificate_expired` match
//! ATS; a name mismatch sends `bad_certificate` where ATS sends `internal_error`.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, Resumption};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{CertificateError, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::log::{DOWN_SERVER_CACHE_TIME, DownRule, LogWriter, Profile};
use super::name::name_matches;
use super::{
    Change, Failure, OriginRequest, OriginState, Outcome, Purpose, ServedCert, Session, Verifier, VerifierFault,
};
use crate::chain::{self, ChainInput, OpensslFlavour, Purpose as ChainPurpose, VerifyErrorCode};
use crate::ciphers::{CipherList, openssl_name};
use crate::expressway::{Policy, Properties, TlsVersion};
use crate::net::Reach;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The Expressway-C model, in one of its profiles.
#[derive(Debug)]
pub struct BuiltinVerifier {
    profile: Profile,
    allow_non_loopback: bool,
    state: Option<State>,
}

#[derive(Debug)]
struct State {
    session: Session,
    config: Arc<ClientConfig>,
    record: Arc<Mutex<Record>>,
    log: LogWriter,
    /// Origins that failed, keyed as the profile's down rule says: (name or address, port).
    failures: DownOrigins,
    /// Targets (host, port) seen since the last (re)configuration.
    targets: std::collections::HashSet<(String, u16)>,
}

/// The traffic server's down-origin list: failed transactions per origin and when the last one
/// failed (the log's clock). An origin with `after_failed_transactions` failed transactions is
/// marked down and gets one attempt a request, until `DOWN_SERVER_CACHE_TIME` has passed since
/// its last failure, when it is forgotten (`Profile::down_rule`).
#[derive(Debug, Default)]
struct DownOrigins(std::collections::HashMap<(String, u16), (u32, time::OffsetDateTime)>);

impl DownOrigins {
    /// The attempts a request to `origin` at `now` makes, of the profile's `attempts`.
    fn attempts(&mut self, origin: &(String, u16), now: time::OffsetDateTime, rule: DownRule, attempts: u32) -> u32 {
        match self.0.get(origin) {
            Some((_, last)) if now - *last >= DOWN_SERVER_CACHE_TIME => {
                self.0.remove(origin);
                attempts
            }
            Some((failed, _)) if *failed >= rule.after_failed_transactions => 1,
            _ => attempts,
        }
    }

    /// A transaction to `origin` failed (every attempt), the last at `at`.
    fn failed(&mut self, origin: (String, u16), at: time::OffsetDateTime) {
        let entry = self.0.entry(origin).or_insert((0, at));
        *entry = (entry.0 + 1, at);
    }

    /// A restart of the traffic server forgets every origin.
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// What the check does for the connection being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No verification (before X14.2, or VerifyOriginServer Off).
    Disabled,
    /// The traffic server's origin verification.
    TrafficServer { policy: Policy, properties: Properties },
    /// Discovery with "TLS verify mode" On: chain, validity, and the address in a SAN.
    Discovery,
}

/// Filled by the certificate check during one handshake.
#[derive(Debug)]
struct Record {
    mode: Mode,
    host: String,
    modelled_ip: IpAddr,
    warnings: Vec<String>,
    failure: Option<Failure>,
    served: Vec<ServedCert>,
}

impl Record {
    fn new() -> Record {
        Record {
            mode: Mode::Disabled,
            host: String::new(),
            modelled_ip: IpAddr::from([0, 0, 0, 0]),
            warnings: Vec::new(),
            failure: None,
            served: Vec::new(),
        }
    }
}

fn lock(record: &Mutex<Record>) -> MutexGuard<'_, Record> {
    record.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl BuiltinVerifier {
    /// The model in `profile`, dialling loopback only.
    pub fn new(profile: Profile) -> BuiltinVerifier {
        BuiltinVerifier { profile, allow_non_loopback: false, state: None }
    }

    /// The model allowed to dial any address: only `cargo xtask verify`, aimed by a person at
    /// their own servers, uses this.
    pub fn danger_allow_non_loopback(profile: Profile) -> BuiltinVerifier {
        BuiltinVerifier { profile, allow_non_loopback: true, state: None }
    }

    /// Where this verifier may dial.
    fn reach(&self) -> Reach {
        if self.allow_non_loopback { Reach::DangerAnyAddress } else { Reach::Loopback }
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    fn fault(&self, message: impl Into<String>) -> VerifierFault {
        VerifierFault::Config { verifier: self.name(), message: message.into() }
    }

    fn build_config(&self, session: &Session, record: &Arc<Mutex<Record>>) -> Result<Arc<ClientConfig>, VerifierFault> {
        let ciphers = CipherList::parse(&session.expressway.ciphers())
            .map_err(|e| self.fault(format!("xConfiguration Ciphers: {e}")))?;
        let tls13 = session.expressway.tls.contains(&TlsVersion::Tls13);
        let provider = Arc::new(ciphers.crypto_provider(tls13));
        let mut versions = Vec::new();
        if session.expressway.tls.contains(&TlsVersion::Tls12) {
            versions.push(&rustls::version::TLS12);
        }
        if tls13 {
            versions.push(&rustls::version::TLS13);
        }
        let check = ModelCheck {
            record: record.clone(),
            trusted: session.trust.ders(),
            validation_time: session.validation_time.unix_timestamp(),
            profile: self.profile,
            provider: provider.clone(),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| {
                self.fault(format!(
                    "cipher list '{}' leaves no suite for {:?}: {e}",
                    ciphers.source(),
                    session.expressway.tls
                ))
            })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(check));
        let mut config = match &session.client_identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(|e| self.fault(format!("client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.resumption =
            if self.profile.resumes_sessions() { Resumption::in_memory_sessions(256) } else { Resumption::disabled() };
        Ok(Arc::new(config))
    }
}

impl BuiltinVerifier {
    /// A request to a name that does not resolve: the traffic server's lookup fails, nothing
    /// is dialled, no certificate is checked and no WARNING is written. The MRA client gets the
    /// profile's answer (`502 Cannot find server.` from ATS 8.1, `500` from 9.2, both observed); Expressway's
    /// request and response lines are still logged.
    fn unresolved(&mut self, request: &OriginRequest) -> Result<Outcome, VerifierFault> {
        let name = self.name();
        let profile = self.profile;
        let state = self.state.as_mut().ok_or_else(|| VerifierFault::Request {
            verifier: name,
            message: "request before the session was opened".into(),
        })?;
        let expressway = &state.session.expressway;
        let log = &mut state.log;
        log.advance(time::Duration::milliseconds(10));
        let txn = log.next_txn();
        let (status, reason) = profile.unresolved_status();
        let mut outcome = Outcome {
            status,
            reason: reason.to_string(),
            failure: Some(Failure::Resolve { host: request.host.clone() }),
            ..Outcome::default()
        };
        outcome.log.extend(received(log, expressway, request, txn));
        outcome.log.extend(log.http_message("Sending Response", txn, &format!("HTTP/1.1 {status} {reason}")));
        Ok(outcome)
    }
}

impl Verifier for BuiltinVerifier {
    fn name(&self) -> String {
        format!("builtin:{}", self.profile)
    }

    fn open(&mut self, session: &Session) -> Result<(), VerifierFault> {
        let record = Arc::new(Mutex::new(Record::new()));
        let config = self.build_config(session, &record)?;
        self.state = Some(State {
            session: session.clone(),
            config,
            record,
            log: LogWriter::new(self.profile, session.log.clone()),
            failures: Default::default(),
            targets: Default::default(),
        });
        Ok(())
    }

    fn reconfigure(&mut self, session: &Session, _change: Change) -> Result<(), VerifierFault> {
        let Some(state) = &self.state else { return self.open(session) };
        let record = state.record.clone();
        let config = self.build_config(session, &record)?;
        if let Some(state) = &mut self.state {
            state.session = session.clone();
            state.config = config;
            // Reconfiguring restarts the traffic server (as the ats verifier does): its
            // negative cache of down origins starts empty.
            state.failures.clear();
            state.targets.clear();
        }
        Ok(())
    }

    fn request(&mut self, request: &OriginRequest) -> Result<Outcome, VerifierFault> {
        let name = self.name();
        let profile = self.profile;
        let reach = self.reach();
        if !request.resolves {
            return self.unresolved(request);
        }
        crate::net::check(request.dial, reach)
            .map_err(|e| VerifierFault::Request { verifier: name.clone(), message: e.to_string() })?;
        let state = self.state.as_mut().ok_or_else(|| VerifierFault::Request {
            verifier: name.clone(),
            message: "request before the session was opened".into(),
        })?;
        let expressway = &state.session.expressway;
        let mode = match (expressway.policy(), request.purpose) {
            (Policy::Disabled, Purpose::Discovery { tls_verify_mode: true }) => Mode::Discovery,
            (Policy::Disabled, _) => Mode::Disabled,
            (policy, _) => Mode::TrafficServer { policy, properties: expressway.properties() },
        };
        // A target the traffic server has not been configured for restarts it (the ats
        // verifier adds a remap rule), which also empties its list of down origins.
        if state.targets.insert((request.host.clone(), request.port)) {
            state.failures.clear();
        }
        let rule = profile.down_rule();
        let origin = if rule.by_name {
            (request.host.clone(), request.port)
        } else {
            (request.modelled_ip.to_string(), request.port)
        };
        let now = state.log.now();
        let attempts = state.failures.attempts(&origin, now, rule, profile.attempts(expressway.attempts));
        let mut outcome = Outcome::default();
        let log = &mut state.log;
        log.advance(time::Duration::milliseconds(10));
        let txn = log.next_txn();
        outcome.log.extend(received(log, expressway, request, txn));
        // A node that is down refuses every attempt at once; a partitioned one never answers,
        // and each attempt waits the connect timeout (on the log clock). Nothing reaches the
        // node, no certificate is seen and nothing is written to diags.log (observed on ATS
        // 8.1.10 and 9.2); the origin is marked down as after a failed handshake.
        if request.origin_state != OriginState::Listening {
            let (reason, wait) = match request.origin_state {
                OriginState::Silent => {
                    (profile.silent_reason(), time::Duration::seconds(i64::from(expressway.connect_attempts_timeout)))
                }
                _ => (profile.refused_reason(), time::Duration::ZERO),
            };
            for _ in 0..attempts {
                log.advance(wait);
            }
            outcome.status = 502;
            outcome.reason = reason.to_string();
            outcome.failure =
                Some(Failure::Connect { reason: format!("{}: no connection reached the node", request.host) });
            state.failures.failed(origin, log.now());
            outcome.log.extend(log.http_message("Sending Response", txn, &format!("HTTP/1.1 502 {reason}")));
            return Ok(outcome);
        }
        outcome.log.extend(log.http_message(
            "Sending Request",
            txn,
            &format!("{} {} HTTP/1.1", request.method, request.path),
        ));

        let mut response = None;
        for _ in 0..attempts {
            outcome.attempts += 1;
            {
                let mut record = lock(&state.record);
                *record = Record::new();
                record.mode = mode;
                record.host = request.host.clone();
                record.modelled_ip = request.modelled_ip;
            }
            let result = attempt(&state.config, request, reach);
            let mut record = lock(&state.record);
            for warning in record.warnings.drain(..) {
                outcome.log.push(log.net(&warning));
            }
            if !record.served.is_empty() {
                outcome.served = std::mem::take(&mut record.served);
            }
            if outcome.failure.is_none() {
                outcome.failure = record.failure.take();
            }
            match result {
                Ok(ok) => {
                    outcome.tls = Some(ok.tls.clone());
                    if outcome.served.is_empty() {
                        outcome.served = ok.served.clone();
                    }
                    response = Some(ok);
                    break;
                }
                Err(AttemptError::Connect(reason)) => {
                    outcome.failure.get_or_insert(Failure::Connect { reason });
                }
                Err(AttemptError::Tls { error, verify_failed, after_handshake }) => {
                    let openssl = if verify_failed {
                        profile.verify_failed_error().to_string()
                    } else {
                        // Reported as the traffic server's OpenSSL would word it.
                        let openssl = match error.strip_prefix("received fatal alert: ") {
                            Some(alert) => profile.alert_error(alert),
                            None => profile.alert_error("internal_error"),
                        };
                        if outcome.failure.is_none() {
                            outcome.failure = Some(Failure::Handshake { reason: openssl.clone() });
                        }
                        openssl
                    };
                    // A failure after the handshake is a read error to the traffic server: both
                    // ATS 8.1 and 9.2 write it under the `ssl.error.read` debug tag only, no
                    // ERROR line (observed: beyond::tls13-client-cert-required-none-sent).
                    if after_handshake {
                        continue;
                    }
                    let line = format!("SSL connection failed for '{}': {openssl}", request.host);
                    match profile {
                        Profile::ExpresswayX14_2 => outcome.log.push(log.net(&format!("ERROR: {line}"))),
                        Profile::Ats9_2 => outcome.debug.push(log.debug("ssl.error", &line)),
                    }
                }
            }
        }
        match response {
            Some(ok) => {
                outcome.status = ok.status;
                outcome.reason = ok.reason.clone();
                outcome.body = ok.body;
            }
            None => {
                outcome.status = 502;
                outcome.reason = profile.bad_gateway_reason().to_string();
                state.failures.failed(origin, now);
            }
        }
        let status_line = format!("HTTP/1.1 {} {}", outcome.status, outcome.reason);
        outcome.log.extend(log.http_message("Sending Response", txn, status_line.trim_end()));
        Ok(outcome)
    }
}

/// The most of a node's response the model reads: a node that never stops sending does not
/// hold the request forever.
const RESPONSE_LIMIT: usize = 4 * 1024 * 1024;

/// A node's response, read until the node closes (with close_notify, or without it once some
/// bytes came: it has still answered) or past [`RESPONSE_LIMIT`] bytes.
fn read_response(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(raw),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => return Ok(raw),
            Err(e) => return Err(e),
        }
        if raw.len() > RESPONSE_LIMIT {
            return Ok(raw);
        }
    }
}

struct Response {
    served: Vec<ServedCert>,
    status: u16,
    reason: String,
    body: String,
    tls: (String, String),
}

enum AttemptError {
    Connect(String),
    /// `after_handshake`: the error came once the client's handshake was done, on writing the
    /// request or reading the answer (over TLS 1.3 the server judges the client's certificate
    /// only then, and says so with an alert on the next read).
    Tls {
        error: String,
        verify_failed: bool,
        after_handshake: bool,
    },
}

/// One connection: TCP, TLS handshake (the check runs inside it), one HTTP/1.1 exchange.
fn attempt(config: &Arc<ClientConfig>, request: &OriginRequest, reach: Reach) -> Result<Response, AttemptError> {
    let tcp = crate::net::connect(request.dial, CONNECT_TIMEOUT, reach).map_err(|e| match e.io() {
        Some(io) => AttemptError::Connect(format!("{}: {io}", request.host)),
        None => AttemptError::Connect(e.to_string()),
    })?;
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
    let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
    let server_name = match request.host.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(request.host.clone())
            .map_err(|e| AttemptError::Connect(format!("'{}' is not a host name: {e}", request.host)))?,
    };
    let conn = ClientConnection::new(config.clone(), server_name).map_err(|e| AttemptError::Tls {
        error: e.to_string(),
        verify_failed: false,
        after_handshake: false,
    })?;
    let mut tls = StreamOwned::new(conn, tcp);
    let tls_error = |after_handshake: bool| {
        move |e: std::io::Error| {
            let verify_failed = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)));
            AttemptError::Tls { error: e.to_string(), verify_failed, after_handshake }
        }
    };
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(tls_error(false))?;
    }
    // A resumed session runs no certificate check: the chain comes from the session.
    let resumed_chain: Vec<ServedCert> =
        tls.conn.peer_certificates().map(|chain| chain.iter().map(|c| describe(c)).collect()).unwrap_or_default();
    let version = match tls.conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        _ => "TLSv1.2",
    };
    let suite =
        tls.conn.negotiated_cipher_suite().and_then(|s| openssl_name(s.suite())).unwrap_or("unknown").to_string();
    let message = format!(
        "{} {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: mralab-expressway-model\r\nConnection: close\r\n\r\n",
        request.method, request.path, request.host, request.port
    );
    tls.write_all(message.as_bytes()).map_err(tls_error(true))?;
    let raw = read_response(&mut tls).map_err(tls_error(true))?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let body_at = match parsed.parse(&raw) {
        Ok(httparse::Status::Complete(at)) => at,
        _ => {
            return Err(AttemptError::Tls {
                error: "the node's response is not HTTP".into(),
                verify_failed: false,
                after_handshake: false,
            });
        }
    };
    Ok(Response {
        served: resumed_chain,
        status: parsed.code.unwrap_or(0),
        reason: parsed.reason.unwrap_or_default().to_string(),
        body: String::from_utf8_lossy(&raw[body_at..]).into_owned(),
        tls: (version.to_string(), suite),
    })
}

/// The traffic server's certificate check, inside rustls.
#[derive(Debug)]
struct ModelCheck {
    record: Arc<Mutex<Record>>,
    trusted: Vec<CertificateDer<'static>>,
    validation_time: i64,
    profile: Profile,
    provider: Arc<CryptoProvider>,
}

/// The rustls error for an OpenSSL verify error, chosen so that rustls sends the alert OpenSSL
/// sends (libssl's `x509table`, ssl/statem/statem_lib.c, the same in 1.1.1w and 3.0): unknown_ca
/// for the chain errors, certificate_expired, bad_certificate for "not yet valid" and weak
/// keys or digests, decrypt_error for a bad signature, unsupported_certificate for the purpose,
/// internal_error for an unspecified error (which rustls cannot send: it sends
/// handshake_failure; see the divergences files).
fn rustls_error(code: VerifyErrorCode) -> rustls::Error {
    let error = match code {
        VerifyErrorCode::CertHasExpired => CertificateError::Expired,
        // bad_certificate (42): rustls sends it for an encoding error.
        VerifyErrorCode::CertNotYetValid
        | VerifyErrorCode::EeKeyTooSmall
        | VerifyErrorCode::CaKeyTooSmall
        | VerifyErrorCode::CaMdTooWeak => CertificateError::BadEncoding,
        VerifyErrorCode::CertSignatureFailure => CertificateError::BadSignature,
        VerifyErrorCode::InvalidPurpose => CertificateError::InvalidPurpose,
        VerifyErrorCode::Unspecified => return rustls::Error::General("unspecified verify error".into()),
        // Not in libssl's table: its default, certificate_unknown (46). 94, explicit EC
        // parameters (3.0 only), is not in 3.0's table either.
        VerifyErrorCode::KeyUsageNoCertSign
        | VerifyErrorCode::EcKeyExplicitParams
        | VerifyErrorCode::UnhandledCriticalExtension
        | VerifyErrorCode::PermittedViolation
        | VerifyErrorCode::ExcludedViolation
        | VerifyErrorCode::SubtreeMinMax
        | VerifyErrorCode::UnsupportedConstraintType
        | VerifyErrorCode::UnsupportedNameSyntax => CertificateError::Other(rustls::OtherError(Arc::new(
            std::io::Error::other(code.text(OpensslFlavour::V3_0)),
        ))),
        // unknown_ca (48): 2, 18-22, 24/79 and 25.
        VerifyErrorCode::UnableToGetIssuerCert
        | VerifyErrorCode::DepthZeroSelfSignedCert
        | VerifyErrorCode::SelfSignedCertInChain
        | VerifyErrorCode::UnableToGetIssuerCertLocally
        | VerifyErrorCode::UnableToVerifyLeafSignature
        | VerifyErrorCode::CertChainTooLong
        | VerifyErrorCode::InvalidCa
        | VerifyErrorCode::PathLengthExceeded => CertificateError::UnknownIssuer,
    };
    rustls::Error::InvalidCertificate(error)
}

/// Logs the traffic server's WARNING line for each chain error and records the first as the
/// failure; returns the first error's code.
fn chain_warnings(
    record: &mut Record,
    errors: &[chain::ChainError],
    flavour: OpensslFlavour,
    host: &str,
    ip: impl std::fmt::Display,
    action: &str,
) -> Option<VerifyErrorCode> {
    for error in errors {
        let text = error.code.text(flavour);
        record.warnings.push(format!(
            "WARNING: Core server certificate verification failed for ({host}). Action={action} Error={text} server={host}({ip}) depth={}",
            error.depth
        ));
        if record.failure.is_none() {
            record.failure =
                Some(Failure::Chain { code: error.code.code(flavour), text: text.to_string(), depth: error.depth });
        }
    }
    errors.first().map(|e| e.code)
}

/// A served certificate, for people.
pub fn describe(der: &[u8]) -> ServedCert {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => {
            let key = match cert.public_key().parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => format!("rsa-{}", rsa.key_size()),
                Ok(x509_parser::public_key::PublicKey::EC(ec)) => format!("ecdsa-p{}", ec.key_size()),
                _ => "other key".to_string(),
            };
            ServedCert {
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                key,
                der: der.to_vec(),
            }
        }
        Err(_) => ServedCert {
            subject: "(not a certificate)".into(),
            issuer: String::new(),
            key: String::new(),
            der: der.to_vec(),
        },
    }
}

impl ServerCertVerifier for ModelCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut record = lock(&self.record);
        let mut chain: Vec<CertificateDer<'_>> = vec![end_entity.clone()];
        chain.extend(intermediates.iter().cloned());
        record.served = chain.iter().map(|c| describe(c)).collect();
        let host = record.host.clone();
        let ip = record.modelled_ip;
        let flavour = self.profile.flavour();
        match record.mode {
            Mode::Disabled => Ok(ServerCertVerified::assertion()),
            Mode::TrafficServer { policy, properties } => {
                let enforce = policy == Policy::Enforced;
                let action = if enforce { "Terminate" } else { "Continue" };
                // Name-constraint errors come after the depth-0 callback where ATS checks the
                // name (chain::VerifyErrorCode::after_leaf_callback).
                let mut later_errors = Vec::new();
                if properties.signature() {
                    let verdict = chain::verify(&ChainInput {
                        peer_chain: &chain,
                        trusted: &self.trusted,
                        validation_time: self.validation_time,
                        purpose: Some(ChainPurpose::SslServer),
                        flavour,
                        stop_at_first_error: enforce,
                        security_level: self.profile.security_level(),
                        verify_depth: self.profile.verify_depth(),
                    });
                    let (later, now): (Vec<_>, Vec<_>) =
                        verdict.errors.into_iter().partition(|e| e.code.after_leaf_callback());
                    later_errors = later;
                    if let Some(code) = chain_warnings(&mut record, &now, flavour, &host, ip, action)
                        && enforce
                    {
                        return Err(rustls_error(code));
                    }
                }
                if properties.name() {
                    let matched = X509Certificate::from_der(end_entity)
                        .map(|(_, cert)| name_matches(&cert, &host, self.profile.ip_sans_count()))
                        .unwrap_or(false);
                    if !matched {
                        record.warnings.push(format!(
                            "WARNING: SNI ({host}) not in certificate. Action={action} server={host}({ip})"
                        ));
                        record.failure.get_or_insert(Failure::Name { checked: host.clone() });
                        if enforce {
                            return Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName));
                        }
                    }
                }
                if let Some(code) = chain_warnings(&mut record, &later_errors, flavour, &host, ip, action)
                    && enforce
                {
                    return Err(rustls_error(code));
                }
                Ok(ServerCertVerified::assertion())
            }
            Mode::Discovery => {
                let verdict = chain::verify(&ChainInput {
                    peer_chain: &chain,
                    trusted: &self.trusted,
                    validation_time: self.validation_time,
                    purpose: Some(ChainPurpose::SslServer),
                    flavour,
                    stop_at_first_error: true,
                    security_level: self.profile.security_level(),
                    verify_depth: self.profile.verify_depth(),
                });
                if let Some(error) = verdict.errors.first() {
                    record.failure = Some(Failure::Chain {
                        code: error.code.code(flavour),
                        text: error.code.text(flavour).to_string(),
                        depth: error.depth,
                    });
                    return Err(rustls_error(error.code));
                }
                // TLS verify mode matches the address typed in against the SANs: FQDN or IP.
                let in_san = X509Certificate::from_der(end_entity)
                    .ok()
                    .and_then(|(_, cert)| cert.subject_alternative_name().ok().flatten().map(|san| san.value.clone()))
                    .is_some_and(|san| {
                        san.general_names.iter().any(|name| match name {
                            x509_parser::extensions::GeneralName::DNSName(dns) => dns.eq_ignore_ascii_case(&host),
                            x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                                host.parse::<IpAddr>().is_ok_and(|want| match want {
                                    IpAddr::V4(v4) => *bytes == v4.octets(),
                                    IpAddr::V6(v6) => *bytes == v6.octets(),
                                })
                            }
                            _ => false,
                        })
                    });
                if !in_san {
                    record.failure = Some(Failure::Name { checked: host });
                    return Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName));
                }
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Makes built-in verifiers of one profile, for the scenario runner.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinFactory(pub Profile);

impl crate::verifier::VerifierFactory for BuiltinFactory {
    fn name(&self) -> String {
        format!("builtin:{}", self.0)
    }

    /// Each profile imitates one generation of traffic server, whose expectations apply.
    fn family(&self) -> crate::verifier::Family {
        match self.0 {
            Profile::ExpresswayX14_2 => crate::verifier::Family::Expressway,
            Profile::Ats9_2 => crate::verifier::Family::Ats,
        }
    }

    fn make(&self) -> Result<Box<dyn Verifier>, VerifierFault> {
        Ok(Box::new(BuiltinVerifier::new(self.0)))
    }
}

/// Expressway's "Receive Request" lines for an MRA request as the client sent it to the front
/// (`GET http://<front>:<port>/<token>/<path>`); nothing for Expressway's own requests.
fn received(
    log: &mut LogWriter,
    expressway: &crate::expressway::ExpresswaySpec,
    request: &OriginRequest,
    txn: u64,
) -> Vec<String> {
    if request.purpose != Purpose::Mra {
        return Vec::new();
    }
    let front = format!(
        "{} http://{}:{}{}",
        request.method,
        expressway.front_name,
        request.port,
        crate::mra::encode(&expressway.domain, &request.host, request.port, &request.path)
    );
    log.http_message("Receive Request", txn, &front)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::generate::{self, CertSpec, ChainSpec, Hash, KeyKind, SanSpec, SigSpec};

    /// The failure discovery's check (TLS verify mode On) records for `leaf`, issued by an
    /// RSA-2048 root the check trusts, when the publisher is typed as `host`, under `profile`.
    fn discovery_failure(profile: Profile, leaf: CertSpec, host: &str) -> Option<Failure> {
        let spec =
            ChainSpec::root_and_leaf(CertSpec::standard(KeyKind::Rsa2048, SigSpec::Natural(Hash::Sha256), true), leaf);
        let built = generate::build(&spec).expect("the chain builds");
        let record = Arc::new(Mutex::new(Record { mode: Mode::Discovery, host: host.into(), ..Record::new() }));
        let check = ModelCheck {
            record: record.clone(),
            trusted: built.trusted.iter().map(|d| CertificateDer::from(d.clone())).collect(),
            validation_time: built.time,
            profile,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        };
        let peer: Vec<CertificateDer<'static>> = built.peer.iter().map(|d| CertificateDer::from(d.clone())).collect();
        let name = ServerName::try_from("node.example").expect("a name");
        let _ = check.verify_server_cert(&peer[0], &peer[1..], &name, &[], UnixTime::now());
        lock(&record).failure.clone()
    }

    /// The chain error discovery's check reports for a leaf with `leaf_key`.
    fn discovery_chain_error(profile: Profile, leaf_key: KeyKind) -> Option<i32> {
        let leaf = CertSpec::standard(leaf_key, SigSpec::Natural(Hash::Sha256), false);
        match discovery_failure(profile, leaf, "node.example") {
            Some(Failure::Chain { code, .. }) => Some(code),
            _ => None,
        }
    }

    #[test]
    fn discovery_checks_a_publisher_typed_as_an_address_against_the_ip_sans() {
        // The leaf's SAN is IP:10.0.0.5 (the generator's `SanSpec::Ip`).
        let leaf = || CertSpec {
            san: SanSpec::Ip,
            ..CertSpec::standard(KeyKind::Rsa2048, SigSpec::Natural(Hash::Sha256), false)
        };
        for profile in [Profile::ExpresswayX14_2, Profile::Ats9_2] {
            assert_eq!(discovery_failure(profile, leaf(), "10.0.0.5"), None, "{profile}");
            let other = discovery_failure(profile, leaf(), "10.0.0.6");
            assert!(matches!(other, Some(Failure::Name { ref checked }) if checked == "10.0.0.6"), "{other:?}");
            // An IPv6 address is compared with IPv6 SANs only.
            let v6 = discovery_failure(profile, leaf(), "::ffff:10.0.0.5");
            assert!(matches!(v6, Some(Failure::Name { .. })), "{v6:?}");
            // A name is not compared with IP SANs.
            assert!(matches!(discovery_failure(profile, leaf(), "node.example"), Some(Failure::Name { .. })));
        }
    }

    /// The alert rustls sends for an error a certificate verifier returns (rustls 0.23
    /// `send_cert_verify_error_alert`: a certificate error's own alert, handshake_failure for
    /// anything else).
    fn alert_sent(error: rustls::Error) -> rustls::AlertDescription {
        match error {
            rustls::Error::InvalidCertificate(e) => e.into(),
            _ => rustls::AlertDescription::HandshakeFailure,
        }
    }

    #[test]
    fn an_origin_is_marked_down_after_the_rules_failures_and_forgotten_after_the_cache_time() {
        let t0 = time::macros::datetime!(2022-07-11 16:55:26 UTC);
        let origin = ("cucm.steven.lab".to_string(), 8443);
        let other = ("cucm.steven.lab".to_string(), 6972);
        // ATS 8.1: down after one failed transaction.
        let rule = DownRule { after_failed_transactions: 1, by_name: true };
        let mut down = DownOrigins::default();
        assert_eq!(down.attempts(&origin, t0, rule, 3), 3);
        down.failed(origin.clone(), t0);
        assert_eq!(down.attempts(&origin, t0 + time::Duration::seconds(1), rule, 3), 1);
        assert_eq!(down.attempts(&other, t0 + time::Duration::seconds(1), rule, 3), 3, "per origin");
        // Still down 1 ms before the cache time; forgotten at it, and failing again counts from 1.
        let almost = t0 + DOWN_SERVER_CACHE_TIME - time::Duration::milliseconds(1);
        assert_eq!(down.attempts(&origin, almost, rule, 3), 1);
        assert_eq!(down.attempts(&origin, t0 + DOWN_SERVER_CACHE_TIME, rule, 3), 3);
        assert_eq!(down.attempts(&origin, t0 + DOWN_SERVER_CACHE_TIME, rule, 3), 3, "forgotten");
        // The cache time counts from the last failure, not the first.
        down.failed(origin.clone(), t0);
        down.failed(origin.clone(), t0 + time::Duration::seconds(30));
        assert_eq!(down.attempts(&origin, t0 + time::Duration::seconds(70), rule, 3), 1);
        // ATS 9.2: down after three failed transactions.
        let rule = DownRule { after_failed_transactions: 3, by_name: false };
        let mut down = DownOrigins::default();
        for failed in 0..3 {
            assert_eq!(down.attempts(&origin, t0, rule, 4), 4, "after {failed} failed transaction(s)");
            down.failed(origin.clone(), t0);
        }
        assert_eq!(down.attempts(&origin, t0, rule, 4), 1);
        down.clear();
        assert_eq!(down.attempts(&origin, t0, rule, 4), 4, "a restart forgets");
    }

    /// A node's side of the connection: these reads, then `end` (0 bytes, or an error).
    struct Node {
        reads: std::collections::VecDeque<Vec<u8>>,
        end: Option<std::io::ErrorKind>,
        endless: bool,
    }

    impl Read for Node {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.endless {
                buf.fill(b'x');
                return Ok(buf.len());
            }
            match (self.reads.pop_front(), self.end) {
                (Some(chunk), _) => {
                    buf[..chunk.len()].copy_from_slice(&chunk);
                    Ok(chunk.len())
                }
                (None, Some(kind)) => Err(std::io::Error::from(kind)),
                (None, None) => Ok(0),
            }
        }
    }

    fn node(reads: &[&str], end: Option<std::io::ErrorKind>) -> Node {
        Node { reads: reads.iter().map(|r| r.as_bytes().to_vec()).collect(), end, endless: false }
    }

    #[test]
    fn a_response_is_read_to_the_nodes_close_and_no_further_than_the_limit() {
        use std::io::ErrorKind;
        let parts = ["HTTP/1.1 200 OK\r\n", "Content-Length: 2\r\n\r\n", "ok"];
        let whole = parts.concat().into_bytes();
        assert_eq!(read_response(&mut node(&parts, None)).expect("read"), whole, "every read, to close_notify");
        // A close without close_notify after the response: it has answered.
        let bare = read_response(&mut node(&parts, Some(ErrorKind::UnexpectedEof)));
        assert_eq!(bare.expect("read"), whole);
        // ... before any byte: no answer.
        let nothing = read_response(&mut node(&[], Some(ErrorKind::UnexpectedEof)));
        assert_eq!(nothing.expect_err("no response").kind(), ErrorKind::UnexpectedEof);
        let reset = read_response(&mut node(&parts, Some(ErrorKind::ConnectionReset)));
        assert_eq!(reset.expect_err("reset").kind(), ErrorKind::ConnectionReset);
        // A node that never stops: cut just past the limit.
        let endless = read_response(&mut Node { reads: Default::default(), end: None, endless: true }).expect("read");
        assert!(endless.len() > RESPONSE_LIMIT && endless.len() <= RESPONSE_LIMIT + 16 * 1024, "{}", endless.len());
        assert_eq!(RESPONSE_LIMIT, 4 * 1024 * 1024);
    }

    #[test]
    fn a_served_certificate_is_described_by_its_key() {
        let key_of_leaf = |key: KeyKind| {
            let spec = ChainSpec::root_and_leaf(
                CertSpec::standard(KeyKind::Rsa2048, SigSpec::Natural(Hash::Sha256), true),
                CertSpec::standard(key, SigSpec::Natural(Hash::Sha256), false),
            );
            let built = generate::build(&spec).expect("the chain builds");
            describe(&built.peer[0]).key
        };
        assert_eq!(key_of_leaf(KeyKind::Rsa2048), "rsa-2048");
        assert_eq!(key_of_leaf(KeyKind::Rsa3072), "rsa-3072");
        assert_eq!(key_of_leaf(KeyKind::P256), "ecdsa-p256");
        assert_eq!(key_of_leaf(KeyKind::P384), "ecdsa-p384");
        assert_eq!(key_of_leaf(KeyKind::Ed25519), "other key");
        let junk = describe(b"not a certificate");
        assert_eq!((junk.subject.as_str(), junk.key.as_str()), ("(not a certificate)", ""));
    }

    #[test]
    fn the_verifier_is_named_as_the_command_line_names_it() {
        // `--verifier builtin:<profile>`: the name in reports, fault messages and matrix columns.
        assert_eq!(BuiltinVerifier::new(Profile::ExpresswayX14_2).name(), "builtin:expressway-x14.2");
        assert_eq!(BuiltinVerifier::new(Profile::Ats9_2).name(), "builtin:ats-9.2");
        use crate::verifier::VerifierFactory as _;
        assert_eq!(BuiltinFactory(Profile::ExpresswayX14_2).name(), "builtin:expressway-x14.2");
        assert_eq!(BuiltinFactory(Profile::Ats9_2).name(), "builtin:ats-9.2");
    }

    #[test]
    fn each_verify_error_sends_the_alert_libssl_sends() {
        use rustls::AlertDescription as A;
        // libssl's x509table (ssl/statem/statem_lib.c), where rustls can send it.
        let table = [
            (VerifyErrorCode::CertHasExpired, A::CertificateExpired),
            (VerifyErrorCode::CertNotYetValid, A::BadCertificate),
            (VerifyErrorCode::EeKeyTooSmall, A::BadCertificate),
            (VerifyErrorCode::CaKeyTooSmall, A::BadCertificate),
            (VerifyErrorCode::CaMdTooWeak, A::BadCertificate),
            (VerifyErrorCode::CertSignatureFailure, A::DecryptError),
            (VerifyErrorCode::InvalidPurpose, A::UnsupportedCertificate),
            (VerifyErrorCode::UnableToGetIssuerCert, A::UnknownCA),
            (VerifyErrorCode::DepthZeroSelfSignedCert, A::UnknownCA),
            (VerifyErrorCode::SelfSignedCertInChain, A::UnknownCA),
            (VerifyErrorCode::UnableToGetIssuerCertLocally, A::UnknownCA),
            (VerifyErrorCode::UnableToVerifyLeafSignature, A::UnknownCA),
            (VerifyErrorCode::CertChainTooLong, A::UnknownCA),
            (VerifyErrorCode::InvalidCa, A::UnknownCA),
            (VerifyErrorCode::PathLengthExceeded, A::UnknownCA),
            // Not in the table: its default, certificate_unknown.
            (VerifyErrorCode::KeyUsageNoCertSign, A::CertificateUnknown),
            (VerifyErrorCode::EcKeyExplicitParams, A::CertificateUnknown),
            (VerifyErrorCode::UnhandledCriticalExtension, A::CertificateUnknown),
            (VerifyErrorCode::PermittedViolation, A::CertificateUnknown),
            (VerifyErrorCode::ExcludedViolation, A::CertificateUnknown),
            (VerifyErrorCode::SubtreeMinMax, A::CertificateUnknown),
            (VerifyErrorCode::UnsupportedConstraintType, A::CertificateUnknown),
            (VerifyErrorCode::UnsupportedNameSyntax, A::CertificateUnknown),
            // internal_error in the table, which rustls cannot send from a verifier: it sends
            // handshake_failure (a known divergence).
            (VerifyErrorCode::Unspecified, A::HandshakeFailure),
        ];
        for (code, alert) in table {
            assert_eq!(alert_sent(rustls_error(code)), alert, "{code:?}");
        }
    }

    #[test]
    fn each_profile_checks_keys_at_its_own_security_level() {
        // Expressway's generation, level 1 (80 bits): RSA-512 is refused, RSA-1024 (80) is not.
        assert_eq!(discovery_chain_error(Profile::ExpresswayX14_2, KeyKind::Rsa512), Some(66));
        assert_eq!(discovery_chain_error(Profile::ExpresswayX14_2, KeyKind::Rsa1024), None);
        // Stock ATS 9.2 on Debian's OpenSSL 3, level 2 (112 bits): RSA-1024 is refused too.
        assert_eq!(discovery_chain_error(Profile::Ats9_2, KeyKind::Rsa1024), Some(66));
        assert_eq!(discovery_chain_error(Profile::Ats9_2, KeyKind::Rsa2048), None);
    }
}
