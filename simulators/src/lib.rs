//! A simulated fleet of Cisco CUCM, IM and Presence and Unity Connection nodes on loopback, for
//! reproducing how Expressway-C's traffic server verifies them for MRA.
//!
//! The crate is handed DER chains and PKCS#8 keys ([`FleetConfig`]), never PKI topology types:
//! the harness builds those. [`Fleet::start`] binds each node to its own `127.x.y.z` on the real
//! ports 8443 (Tomcat) and 6972 (TFTP over HTTPS), chooses RSA or ECDSA certificates from the
//! client's cipher order as CUCM does (or from a server order, see [`CertChoice`]), and keeps a
//! per-node event log ([`NodeEvent`]) that scenarios snapshot.
//!
//! Invariant: simulators bind loopback only; bytes from peers never cause a panic.

mod choice;
mod config;
mod events;
mod fleet;
mod http;
mod loopback;
mod tls;

pub use config::{
    CertChoice, ClientAuth, FleetConfig, Identity, KeyAlg, NodeConfig, Role, ServiceConfig,
};
pub use events::{EventKind, NodeEvent, TimeoutPhase};
pub use fleet::{Fleet, FleetError, NodeInfo, ServiceInfo, render_table};
pub use http::{TFTP_PORT, TOMCAT_PORT};
pub use tls::TlsSetupError;
