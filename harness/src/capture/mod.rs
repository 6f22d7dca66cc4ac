//! Captures: every TCP connection between a verifier and the nodes as a pcapng file that
//! Wireshark and tshark open decrypted, with no extra file.
//!
//! A [`Capture`] holds Ethernet frames with the modelled addresses (the node's
//! `10.48.36.215:6972`, Expressway-C's [`EXPRESSWAY_C_IP`]), never the loopback ones, and the
//! TLS secrets of every session, which the pcapng's Decryption Secrets Block carries. Frames come
//! from one of two places:
//! - [`Capture::synthesised`]: built from the bytes that really crossed the nodes' sockets
//!   ([`simulators::Recordings`]), with a TCP handshake and teardown, sequence and
//!   acknowledgement numbers and timestamps from the scenario's logical clock (`synth`). The
//!   built-in model and `cmd:` verifiers run in-process; a comment marks these files.
//! - [`Capture::captured`]: packets read off a private network namespace's loopback (the ats
//!   verifiers), addresses rewritten to the modelled ones.
//!
//! `pcapng` writes the file (pcap-file, plus the one block it lacks), `tls` reads the handshake
//! summary (who sent which certificate, which alert) out of the recorded bytes.
//!
//! In the lowest layer: it knows bytes and addresses, nothing of scenarios or verifiers.

mod pcapng;
mod synth;
mod tls;
mod wire;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub use self::tls::{HandshakeSummary, alert_name, summarise};
pub use self::wire::{client_ports, drop_loopback_copies, to_modelled};

/// Expressway-C's modelled address in every capture: the seed's capture shows
/// `10.48.36.46` dialling CUCM's `10.48.36.215`.
pub const EXPRESSWAY_C_IP: Ipv4Addr = Ipv4Addr::new(10, 48, 36, 46);

/// The first client port of a synthesised capture; each further connection takes the next
/// but one (the seed's retries came from 31576, 31578, 31580).
pub const FIRST_CLIENT_PORT: u16 = 31576;

/// Why a capture could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A frame could not be built (a payload too large for one IPv4 packet).
    #[error("capture: cannot build a frame: {0}")]
    Frame(String),
    /// pcap-file refused a block.
    #[error("capture: cannot write pcapng: {0}")]
    Pcapng(#[from] pcap_file::PcapError),
    /// The file could not be written.
    #[error("capture: cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Where a capture's frames came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Built from the bytes the nodes' sockets saw (in-process verifiers).
    Synthesised,
    /// Read off the wire in a private network namespace.
    Captured,
}

/// One frame and its timestamp (nanoseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// When.
    pub timestamp_ns: u64,
    /// An Ethernet II frame.
    pub data: Vec<u8>,
}

/// A capture ready to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// Where the frames came from.
    pub origin: Origin,
    /// The section comment: what this is, and how it was made.
    pub comment: String,
    /// The frames, in order.
    pub frames: Vec<Frame>,
    /// Key-log lines of every TLS session, for the Decryption Secrets Block.
    pub key_log: Vec<String>,
    /// One summary per TCP connection, in order.
    pub handshakes: Vec<HandshakeSummary>,
}

impl Capture {
    /// A capture built from what the nodes recorded, on a clock starting at `start_ns`
    /// (nanoseconds since the Unix epoch: the scenario's log clock).
    pub fn synthesised(
        title: &str,
        recordings: &simulators::Recordings,
        start_ns: u64,
    ) -> Result<Capture, CaptureError> {
        let frames = synth::frames(&recordings.connections, start_ns)?;
        let handshakes =
            recordings.connections.iter().enumerate().map(|(i, c)| summarise(synth::client_port(i), c)).collect();
        Ok(Capture {
            origin: Origin::Synthesised,
            comment: format!(
                "{title}: synthesised by mralab from the bytes that crossed the simulated nodes' \
                 sockets (TCP handshake, sequence numbers and timestamps are modelled; addresses \
                 are the modelled ones, Expressway-C {EXPRESSWAY_C_IP}). TLS secrets are in the \
                 Decryption Secrets Block."
            ),
            frames,
            key_log: recordings.key_log.clone(),
            handshakes,
        })
    }

    /// A capture of frames read off the wire, with the nodes' recordings for the secrets and
    /// the handshake summary.
    pub fn captured(
        title: &str,
        frames: Vec<Frame>,
        recordings: &simulators::Recordings,
        client_ports: &[u16],
    ) -> Capture {
        let handshakes = recordings
            .connections
            .iter()
            .enumerate()
            .map(|(i, c)| summarise(client_ports.get(i).copied().unwrap_or(0), c))
            .collect();
        Capture {
            origin: Origin::Captured,
            comment: format!(
                "{title}: captured by mralab on the loopback interface of the traffic server's \
                 private network namespace (the nodes' modelled addresses are local there; the \
                 client's address is rewritten to Expressway-C {EXPRESSWAY_C_IP}). TLS secrets, \
                 logged by the simulated nodes, are in the Decryption Secrets Block."
            ),
            frames,
            key_log: recordings.key_log.clone(),
            handshakes,
        }
    }

    /// How many TCP connections the capture holds (SYNs without ACK).
    pub fn connections(&self) -> usize {
        self.frames.iter().filter(|f| synth::is_syn(&f.data)).count()
    }

    /// The pcapng file's bytes.
    pub fn to_pcapng(&self) -> Result<Vec<u8>, CaptureError> {
        pcapng::write(self)
    }

    /// Writes the pcapng file.
    pub fn write(&self, path: &Path) -> Result<(), CaptureError> {
        let bytes = self.to_pcapng()?;
        std::fs::write(path, bytes).map_err(|source| CaptureError::Write { path: path.to_owned(), source })
    }
}

/// The file name of a scenario's capture: its id with `::` and `/` as `--`.
pub fn file_name(scenario_id: &str) -> String {
    format!("{}.pcapng", scenario_id.replace("::", "--").replace('/', "--"))
}

/// Nanoseconds since the Unix epoch of a logical clock's start, clamped into what a pcapng
/// timestamp at nanosecond resolution holds (1970 to 2554); a scenario may pin its clock at
/// year 0 or 9999.
pub fn clock_start_ns(start: time::OffsetDateTime) -> u64 {
    let ns = start.unix_timestamp_nanos();
    // Leave an hour of room for the frames after the start.
    let max = i128::from(u64::MAX) - 3_600_000_000_000;
    u64::try_from(ns.clamp(0, max)).unwrap_or(0)
}
