//! How the scenario runner, the matrix and the labs get verifiers without knowing which kind:
//! a [`VerifierFactory`] makes one [`Verifier`] per Expressway-C peer, and says whose written
//! expectations apply to it ([`Family`]).

use super::{Verifier, VerifierFault};

/// Verifier families whose expectations may legitimately differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// The built-in model.
    Builtin,
    /// The real Apache Traffic Server.
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
    /// Whether it validates at a time it is told, to the second, when a scenario pins it
    /// (`clock = "pinned"`): the model does (under every profile), and so do commands, though
    /// they read the real clock otherwise (they are sent the time, and answer `unsupported` when
    /// they cannot use it: `openssl -attime` can, curl cannot). The real traffic server (real
    /// clock, [`Family::Ats`]) cannot be told the time.
    fn pins_clock(&self) -> bool {
        !self.needs_real_clock() || self.family() != Family::Ats
    }
}
