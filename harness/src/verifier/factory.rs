//! How the scenario runner, the matrix and the labs get verifiers without knowing which kind:
//! a [`VerifierFactory`] makes one [`Verifier`] per Expressway-C peer, and says whose written
//! expectations apply to it ([`Family`]).

use super::{Verifier, VerifierFault};

/// Verifier families whose expectations may legitimately differ: the two generations of
/// traffic server, each as the model imitates it and as the real one runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Expressway's generation (ATS 8.1 + OpenSSL 1.1.1): the model's `expressway-x14.2`
    /// profile and `ats:8.1`. The catalogue's expectations are written for it.
    Expressway,
    /// Stock ATS 9.2 with OpenSSL 3: the model's `ats-9.2` profile, `ats` and `ats:9.2`; a
    /// request's `expect.ats` and a login's `ats` say where it differs.
    Ats,
    /// Anything else: written expectations do not apply.
    Other,
}

/// Makes one verifier per Expressway-C peer.
pub trait VerifierFactory: Sync {
    /// The verifier's name as reports show it.
    fn name(&self) -> String;
    /// Whose written expectations apply.
    fn family(&self) -> Family;
    /// A fresh verifier for one peer of one scenario.
    fn make(&self) -> Result<Box<dyn Verifier>, VerifierFault>;
    /// Whether the PKI must be built at the real current time (real verifiers read the clock).
    fn needs_real_clock(&self) -> bool {
        false
    }
    /// Whether its verifiers reach a container fleet ([`super::Verifier::join_fleet`]).
    fn reaches_container_fleet(&self) -> bool {
        false
    }
    /// Whether verifiers can be made here at all (an engine, an image), checked once before a
    /// run so that a missing prerequisite is one error, not one per scenario.
    fn preflight(&self) -> Result<(), VerifierFault> {
        Ok(())
    }
    /// Whether it validates at a time it is told, to the second, when a scenario pins it
    /// (`clock = "pinned"`): the model does (under every profile), and so do commands, though
    /// they read the real clock otherwise (they are sent the time, and answer `unsupported` when
    /// they cannot use it: `openssl -attime` can, curl cannot). The real traffic servers (real
    /// clock, [`Family::Ats`] and `ats:8.1`) cannot be told the time.
    fn pins_clock(&self) -> bool {
        !self.needs_real_clock() || self.family() == Family::Other
    }
}
