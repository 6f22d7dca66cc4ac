//! The chain model against the real OpenSSL: `cargo xtask oracle` (the helpers and the stored
//! verdicts) and `cargo xtask fuzz chain` (generated chains, both flavours).

pub mod chain;
pub mod oracle;
