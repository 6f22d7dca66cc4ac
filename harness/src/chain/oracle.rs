//! The real OpenSSL as an oracle for [`super::verify`]: a long-lived helper process per library
//! (`oracle/verify_oracle.c`, built by `cargo xtask oracle build` against the host's OpenSSL 3.0
//! and Debian 11's 1.1.1w), fed one request per line, answering with every error its verify
//! callback saw (it returns 1, as ATS does in PERMISSIVE), the built chain and the final result.
//!
//! Tests compare the model with verdicts stored in `harness/tests/data/chain/*.toml`
//! ([`StoredCase`]), so a machine without the second OpenSSL still runs them;
//! `cargo xtask oracle refresh` re-derives the stored verdicts from the live oracles.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use super::{ChainInput, ChainVerdict, LinkSource, OpensslFlavour, Purpose};

/// The file name of a flavour's oracle binary inside the oracle folder.
pub fn binary_name(flavour: OpensslFlavour) -> &'static str {
    match flavour {
        OpensslFlavour::V1_1_1 => "verify-oracle-1.1.1w",
        OpensslFlavour::V3_0 => "verify-oracle-3.0",
    }
}

/// How stored verdicts name a flavour.
pub fn flavour_key(flavour: OpensslFlavour) -> &'static str {
    match flavour {
        OpensslFlavour::V1_1_1 => "1.1.1w",
        OpensslFlavour::V3_0 => "3.0",
    }
}

/// Both flavours, oldest first.
pub const FLAVOURS: [OpensslFlavour; 2] = [OpensslFlavour::V1_1_1, OpensslFlavour::V3_0];

/// Where `cargo xtask oracle build` puts the binaries: `$MRALAB_ORACLE_DIR`, else
/// `<workspace>/target/oracle`.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MRALAB_ORACLE_DIR") {
        return PathBuf::from(dir);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).join("target").join("oracle")
}

/// The oracle binary of a flavour, if it has been built.
pub fn find(flavour: OpensslFlavour) -> Option<PathBuf> {
    let path = default_dir().join(binary_name(flavour));
    path.is_file().then_some(path)
}

/// What the real library answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OracleVerdict {
    /// The built chain, leaf first: `p<i>` (the peer's certificate at position i) or `t<i>`
    /// (the trust store's).
    pub chain: Vec<String>,
    /// Every `(code, depth)` the callback saw with `ok == 0`, in order.
    pub errors: Vec<(i32, usize)>,
    /// `Some(i)`: the peer's certificate at position i does not decode, so libssl refuses the
    /// Certificate message and nothing is verified (`chain` and `errors` are then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undecodable: Option<usize>,
}

/// One request: [`ChainInput`]'s fields that the oracle takes.
#[derive(Debug, Clone, Copy)]
pub struct OracleRequest<'a> {
    /// The peer's certificates, leaf first.
    pub peer: &'a [CertificateDer<'a>],
    /// The trust store in load order.
    pub trusted: &'a [CertificateDer<'a>],
    /// Unix seconds.
    pub time: i64,
    /// TLS security level (the auth level).
    pub security_level: u8,
    /// `ssl_server` or nothing.
    pub purpose: Option<Purpose>,
    /// `X509_VERIFY_PARAM_set_depth`.
    pub verify_depth: usize,
}

impl<'a> OracleRequest<'a> {
    /// The request for a model input (its flavour and stop flag are not part of it: the oracle
    /// is one flavour, and always continues).
    pub fn of(input: &ChainInput<'a>) -> Self {
        OracleRequest {
            peer: input.peer_chain,
            trusted: input.trusted,
            time: input.validation_time,
            security_level: input.security_level,
            purpose: input.purpose,
            verify_depth: input.verify_depth,
        }
    }

    fn line(&self) -> String {
        let mut line = format!(
            "V {} {} {} {} 0 {} {}",
            self.time,
            self.security_level,
            u8::from(self.purpose.is_some()),
            self.verify_depth.min(i32::MAX as usize),
            self.peer.len(),
            self.trusted.len()
        );
        for der in self.peer.iter().chain(self.trusted) {
            line.push(' ');
            push_hex(&mut line, der.as_ref());
        }
        line.push('\n');
        line
    }
}

/// A fault of the oracle process (not a verdict).
#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    /// Starting or talking to the process failed.
    #[error("oracle {path}: {source}")]
    Io {
        /// The binary.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The process answered something this module does not read.
    #[error("oracle {path} answered '{line}'")]
    Answer {
        /// The binary.
        path: String,
        /// The answer, cut to 200 characters.
        line: String,
    },
}

/// A running oracle; the process ends when this is dropped.
#[derive(Debug)]
pub struct Oracle {
    path: PathBuf,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    /// Starts the oracle binary at `path`.
    pub fn start(path: &Path) -> Result<Self, OracleError> {
        let io = |source| OracleError::Io { path: path.display().to_string(), source };
        let mut child = Command::new(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(io(std::io::Error::other("no pipes")));
        };
        Ok(Oracle { path: path.to_path_buf(), child, stdin, stdout: BufReader::new(stdout) })
    }

    /// Starts the built oracle of `flavour`, if there is one.
    pub fn start_flavour(flavour: OpensslFlavour) -> Option<Result<Self, OracleError>> {
        find(flavour).map(|path| Self::start(&path))
    }

    fn exchange(&mut self, line: &str) -> Result<String, OracleError> {
        let path = self.path.display().to_string();
        self.stdin.write_all(line.as_bytes()).map_err(|source| OracleError::Io { path: path.clone(), source })?;
        self.stdin.flush().map_err(|source| OracleError::Io { path: path.clone(), source })?;
        let mut answer = String::new();
        let n = self.stdout.read_line(&mut answer).map_err(|source| OracleError::Io { path: path.clone(), source })?;
        if n == 0 {
            return Err(OracleError::Io { path, source: std::io::Error::other("the oracle closed its output") });
        }
        Ok(answer.trim_end().to_string())
    }

    /// The library's version string (`OpenSSL_version`).
    pub fn version(&mut self) -> Result<String, OracleError> {
        self.exchange("I\n")
    }

    /// `X509_verify_cert_error_string(code)`.
    pub fn error_text(&mut self, code: i32) -> Result<String, OracleError> {
        self.exchange(&format!("T {code}\n"))
    }

    /// Verifies as libssl would, the callback always returning 1.
    pub fn verify(&mut self, request: &OracleRequest<'_>) -> Result<OracleVerdict, OracleError> {
        self.submit(request)?;
        self.receive()
    }

    /// Sends a request without waiting for its answer, so that several oracles (one per
    /// flavour) work at once; [`Oracle::receive`] reads the answer. Requests are answered in
    /// order.
    pub fn submit(&mut self, request: &OracleRequest<'_>) -> Result<(), OracleError> {
        let path = self.path.display().to_string();
        self.stdin
            .write_all(request.line().as_bytes())
            .map_err(|source| OracleError::Io { path: path.clone(), source })?;
        self.stdin.flush().map_err(|source| OracleError::Io { path, source })
    }

    /// The answer to the oldest request sent with [`Oracle::submit`].
    pub fn receive(&mut self) -> Result<OracleVerdict, OracleError> {
        let path = self.path.display().to_string();
        let mut answer = String::new();
        let n = self.stdout.read_line(&mut answer).map_err(|source| OracleError::Io { path: path.clone(), source })?;
        if n == 0 {
            return Err(OracleError::Io { path, source: std::io::Error::other("the oracle closed its output") });
        }
        let answer = answer.trim_end();
        parse_answer(answer).ok_or_else(|| OracleError::Answer { path, line: answer.chars().take(200).collect() })
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_answer(answer: &str) -> Option<OracleVerdict> {
    let mut words = answer.split(' ');
    match words.next()? {
        "D" => {
            let position = words.next()?.parse().ok()?;
            Some(OracleVerdict { chain: Vec::new(), errors: Vec::new(), undecodable: Some(position) })
        }
        "R" => {
            let _ret: i32 = words.next()?.parse().ok()?;
            let _error: i32 = words.next()?.parse().ok()?;
            let chain = match words.next()? {
                "-" => Vec::new(),
                list => list.split(',').map(str::to_string).collect(),
            };
            let errors = match words.next()? {
                "-" => Vec::new(),
                list => list
                    .split(',')
                    .map(|pair| {
                        let (code, depth) = pair.split_once(':')?;
                        Some((code.parse().ok()?, depth.parse().ok()?))
                    })
                    .collect::<Option<Vec<_>>>()?,
            };
            Some(OracleVerdict { chain, errors, undecodable: None })
        }
        _ => None,
    }
}

/// The model's verdict in the oracle's terms (the model run with `stop_at_first_error: false`).
pub fn as_oracle_verdict(verdict: &ChainVerdict, flavour: OpensslFlavour) -> OracleVerdict {
    OracleVerdict {
        chain: verdict
            .built
            .iter()
            .map(|link| match link.source {
                LinkSource::Peer { position } => format!("p{position}"),
                LinkSource::TrustStore { position } => format!("t{position}"),
            })
            .collect(),
        errors: verdict.errors.iter().map(|e| (e.code.code(flavour), e.depth)).collect(),
        undecodable: None,
    }
}

/// How a model verdict differs from the real one, coarsely enough to count by class.
pub fn disagreement(model: &OracleVerdict, real: &OracleVerdict) -> Option<String> {
    if let Some(position) = real.undecodable {
        // The model has no notion of a refused Certificate message; it agrees when it too could
        // not read that certificate (x509-parser), which the caller checks.
        return Some(format!("undecodable p{position}"));
    }
    let first = |v: &OracleVerdict| v.errors.first().copied();
    match (first(model), first(real)) {
        (None, None) => {}
        (None, Some((code, depth))) => return Some(format!("missed {code}@{}", depth_class(depth))),
        (Some((code, depth)), None) => return Some(format!("spurious {code}@{}", depth_class(depth))),
        (Some(m), Some(r)) if m != r => {
            return Some(format!("first {}@{} instead of {}@{}", m.0, depth_class(m.1), r.0, depth_class(r.1)));
        }
        _ => {}
    }
    if model.errors != real.errors {
        let extra: Vec<String> =
            model.errors.iter().filter(|e| !real.errors.contains(e)).map(|e| e.0.to_string()).collect();
        let missing: Vec<String> =
            real.errors.iter().filter(|e| !model.errors.contains(e)).map(|e| e.0.to_string()).collect();
        return Some(format!("later errors: model adds [{}], misses [{}]", extra.join(","), missing.join(",")));
    }
    if model.chain != real.chain {
        return Some("built chain".to_string());
    }
    None
}

fn depth_class(depth: usize) -> &'static str {
    match depth {
        0 => "leaf",
        _ => "ca",
    }
}

/// A chain with the real verdicts of both libraries, as stored under `harness/tests/data/chain/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredCase {
    /// What the case shows.
    pub description: String,
    /// Unix seconds.
    pub time: i64,
    /// Security level.
    #[serde(default)]
    pub security_level: u8,
    /// `true`: the `ssl_server` purpose, as in TLS.
    #[serde(default)]
    pub ssl_server: bool,
    /// Verify depth.
    #[serde(default = "default_depth")]
    pub verify_depth: usize,
    /// The peer's certificates, hex DER, leaf first.
    pub peer: Vec<String>,
    /// The trust store, hex DER, in load order.
    pub trusted: Vec<String>,
    /// Real verdicts by flavour (`1.1.1w`, `3.0`).
    pub verdict: BTreeMap<String, OracleVerdict>,
}

/// Generated chains chosen for coverage, with the real verdicts of both libraries, as stored in
/// `harness/tests/data/chain-sample.toml` by `cargo xtask fuzz chain --write-sample`. The file
/// holds each case's place in the generator's sequence, not its certificates: the test draws the
/// same cases from the seed and builds them again (the digest tells a changed generator apart
/// from a changed model).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// How the sample was made (the command), for people.
    pub description: String,
    /// The generator's seed.
    pub seed: u64,
    /// How many cases the run drew and compared, of which these were kept.
    pub drawn: u64,
    /// Each feature and each real error code (per flavour) is in at least this many kept cases,
    /// or in every case of the run that had it.
    pub per: usize,
    /// The kept cases, in the generator's order.
    #[serde(rename = "case")]
    pub cases: Vec<SampleCase>,
}

/// One kept case of a [`Sample`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleCase {
    /// Its place in the generator's sequence (0: the first drawn).
    pub index: u64,
    /// [`super::generate::BuiltChain::digest`] of the case as built.
    pub digest: String,
    /// Real verdicts by flavour (`1.1.1w`, `3.0`).
    pub verdict: BTreeMap<String, OracleVerdict>,
}

/// Where the sample is stored.
pub fn sample_path() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.join("tests").join("data").join("chain-sample.toml")
}

fn default_depth() -> usize {
    super::OPENSSL_DEFAULT_VERIFY_DEPTH
}

/// A hex string that is not hex.
#[derive(Debug, thiserror::Error)]
#[error("not hex DER")]
pub struct HexError;

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends the lower-case hex of `bytes` (a fuzz run sends some 10 MB of it a second).
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

/// Bytes of a hex string.
pub fn unhex(text: &str) -> Result<Vec<u8>, HexError> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return Err(HexError);
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()).ok_or(HexError))
        .collect()
}

/// The certificates of a stored case, decoded.
#[derive(Debug, Clone)]
pub struct CaseCerts {
    /// The peer's.
    pub peer: Vec<CertificateDer<'static>>,
    /// The trust store's.
    pub trusted: Vec<CertificateDer<'static>>,
}

impl StoredCase {
    /// The certificates, decoded from hex.
    pub fn certs(&self) -> Result<CaseCerts, HexError> {
        let decode = |list: &[String]| -> Result<Vec<CertificateDer<'static>>, HexError> {
            list.iter().map(|h| unhex(h).map(CertificateDer::from)).collect()
        };
        Ok(CaseCerts { peer: decode(&self.peer)?, trusted: decode(&self.trusted)? })
    }

    /// The model's input for this case (PERMISSIVE).
    pub fn input<'a>(&self, certs: &'a CaseCerts, flavour: OpensslFlavour) -> ChainInput<'a> {
        ChainInput {
            peer_chain: &certs.peer,
            trusted: &certs.trusted,
            validation_time: self.time,
            purpose: self.ssl_server.then_some(Purpose::SslServer),
            flavour,
            stop_at_first_error: false,
            security_level: self.security_level,
            verify_depth: self.verify_depth,
        }
    }
}
