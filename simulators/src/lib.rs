//! A simulated fleet of Cisco CUCM, IM and Presence and Unity Connection nodes on loopback, for
//! reproducing how Expressway-C's traffic server verifies them for MRA.
//!
//! The crate is handed DER chains and PKCS#8 keys ([`FleetConfig`]), never PKI topology types:
//! the harness builds those. [`Fleet::start`] binds each node to its own `127.x.y.z` on the real
//! ports 8443 (Tomcat) and 6972 (TFTP over HTTPS), chooses RSA or ECDSA certificates from the
//! client's cipher order as CUCM does (or from a server order, see [`CertChoice`]), and keeps a
//! per-node event log ([`NodeEvent`]) that scenarios snapshot.
//!
//! ```no_run
//! # async fn demo(tomcat: simulators::Identity, tomcat_ecdsa: simulators::Identity)
//! #     -> Result<(), simulators::FleetError> {
//! use simulators::*;
//! let node = NodeConfig {
//!     name: "cucm-pub".into(),
//!     role: Role::CucmPublisher,
//!     cluster: "steven".into(),
//!     fqdn: "cucm.steven.lab".into(),
//!     modelled_ip: "10.48.36.215".parse().expect("literal"),
//!     system_server: "10.48.36.215".into(),
//!     loopback: None,
//!     tls13: false,
//!     services: vec![ServiceConfig {
//!         port: TOMCAT_PORT,
//!         rsa: Some(tomcat),
//!         ecdsa: Some(tomcat_ecdsa),
//!         choice: CertChoice::ClientOrder,
//!         client_auth: ClientAuth::Off,
//!     }],
//! };
//! let fleet = Fleet::start(FleetConfig { nodes: vec![node], ..FleetConfig::default() }).await?;
//! print!("{}", render_table(&fleet.nodes()));
//! // ... point a client at fleet.socket("cucm-pub", 8443) ...
//! for event in fleet.take_events() {
//!     println!("{event}");
//! }
//! fleet.stop().await;
//! # Ok(()) }
//! ```
//!
//! Invariant: simulators bind loopback only; bytes from peers never cause a panic.

mod choice;
mod config;
mod events;
mod fleet;
mod http;
mod loopback;
pub mod node;
mod record;
mod tls;

pub use config::{CertChoice, ClientAuth, FleetConfig, Identity, KeyAlg, NodeConfig, Role, ServiceConfig};
pub use events::{EventKind, NodeEvent, TimeoutPhase};
pub use fleet::{Fleet, FleetError, NodeInfo, ServiceInfo, render_table};
pub use http::{TFTP_PORT, TOMCAT_PORT};
pub use record::{ConnectionRecording, Direction, MAX_RECORDED_BYTES, MAX_RECORDED_CONNECTIONS, Recordings, Segment};
pub use tls::TlsSetupError;
