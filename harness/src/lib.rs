//! The mralab harness: PKI topologies, the Expressway-C verifier model and the scenario
//! runner. It drives the `simulators` fleet; `xtask` is its command-line front end.
//! See ARCHITECTURE.md for the map.

pub mod capture;
pub mod chain;
pub mod ciphers;
pub mod cleanup;
pub mod container;
pub mod diagnose;
pub mod expressway;
pub mod fleet;
pub mod frontdoor;
pub mod lab;
pub mod limbo;
pub mod mra;
pub mod net;
pub mod pki;
pub mod preflight;
pub mod runtime;
pub mod scenario;
pub mod source;
pub mod verifier;
