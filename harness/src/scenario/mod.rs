//! Scenario files, their runs and their snapshots: the product's main job.
//!
//! A scenario (`scenarios/<namespace>/<kebab-id>.toml`, id `namespace::kebab-id`) holds a PKI,
//! a fleet, Expressway-C's configuration and steps with written expectations. [`run::run`]
//! plays it against a verifier; [`render`] turns the run into the text snapshotted under
//! `snapshots/`; [`catalogue`] finds files and reads and writes snapshots in insta's format.

pub mod batch;
pub mod catalogue;
pub mod compare;
pub mod html;
pub mod login;
pub mod matrix;
pub mod render;
pub mod report;
pub mod run;
pub mod spec;

use std::path::{Path, PathBuf};

pub use catalogue::Catalogue;
pub use report::{ScenarioRun, StepReport};
pub use run::RunOptions;
pub use spec::ScenarioSpec;

use crate::fleet::FleetSpecError;
use crate::pki::{PkiError, Topology};
use crate::source::{Source, with_suggestion};
use crate::verifier::{VerifierFactory, VerifierFault};
use spec::Clock;

/// Why a scenario could not run (as opposed to running and differing).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not at `scenarios/<namespace>/<id>.toml`, so it has no id.
    #[error("{}: scenarios live in scenarios/<namespace>/<id>.toml", path.display())]
    Misplaced {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a valid scenario: the TOML reader's error, with its line, column and
    /// span, and a "did you mean" for a misspelt field or step kind.
    #[error("{}: {}", path.display(), with_suggestion(&source.to_string(), &STEP_KINDS))]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML reader's error.
        source: Box<toml::de::Error>,
    },
    /// The scenario's content does not hold together.
    #[error("scenario '{id}': {message}")]
    Invalid {
        /// The scenario id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// The PKI could not be built.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The fleet does not hold together (a node or certificate that does not exist).
    #[error("scenario '{id}': fleet: {source}")]
    Fleet {
        /// The scenario id.
        id: String,
        /// What is wrong.
        source: Box<FleetSpecError>,
    },
    /// The running fleet refused (a port that is taken, a node it does not have).
    #[error("scenario '{id}': fleet: {source}")]
    Running {
        /// The scenario id.
        id: String,
        /// What the fleet said.
        source: Box<run::RunningError>,
    },
    /// The verifier failed as a program.
    #[error(transparent)]
    Verifier(#[from] VerifierFault),
    /// The scenario needs a pinned clock (`clock = "pinned"`) and the verifier reads the real one.
    #[error("scenario '{id}' needs a pinned clock (clock = \"pinned\"): {verifier} validates at the real clock")]
    ClockNotPinned {
        /// The scenario id.
        id: String,
        /// The verifier's name.
        verifier: String,
    },
    /// The run's capture could not be built.
    #[error("scenario '{id}': {source}")]
    Capture {
        /// The scenario id.
        id: String,
        /// What went wrong.
        source: Box<crate::capture::CaptureError>,
    },
}

/// A loaded scenario file.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `namespace::kebab-id`.
    pub id: String,
    /// The file.
    pub path: PathBuf,
    /// Its text, for positions in messages.
    pub source: Source,
    /// Its content.
    pub spec: ScenarioSpec,
}

/// The step kinds, for suggestions.
const STEP_KINDS: [&str; 12] = [
    "discover",
    "refresh-discovery",
    "login",
    "request",
    "upgrade",
    "set-ciphers",
    "set-verify-origin",
    "set-policy",
    "trust-store-add",
    "trust-store-remove",
    "set-system-server",
    "reissue",
];

impl Scenario {
    /// The id of a file under `root`: `seed/tftp-self-signed-ecdsa.toml` is
    /// `seed::tftp-self-signed-ecdsa`.
    pub fn id_of(root: &Path, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(root).ok()?;
        let parts: Vec<String> = rel.with_extension("").iter().map(|p| p.to_string_lossy().into_owned()).collect();
        (parts.len() >= 2).then(|| parts.join("::"))
    }

    /// Reads and checks one scenario file.
    pub fn load(root: &Path, path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.into(), source })?;
        let id = Scenario::id_of(root, path).ok_or_else(|| ScenarioError::Misplaced { path: path.into() })?;
        Scenario::from_text(id, path, &text)
    }

    /// Checks a scenario from its text.
    pub fn from_text(id: String, path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let source = Source::new(path.display().to_string(), text);
        let spec: ScenarioSpec =
            toml::from_str(text).map_err(|e| ScenarioError::Parse { path: path.into(), source: Box::new(e) })?;
        let scenario = Scenario { id, path: path.into(), source, spec };
        scenario.check()?;
        Ok(scenario)
    }

    fn check(&self) -> Result<(), ScenarioError> {
        let invalid = |message: String| ScenarioError::Invalid { id: self.id.clone(), message };
        if self.spec.steps.is_empty() {
            return Err(invalid("no steps".into()));
        }
        for (i, step) in self.spec.steps.iter().enumerate() {
            if let spec::Step::Request(request) = step
                && request.expect.is_empty()
            {
                return Err(invalid(format!(
                    "step {} (request): state the expected outcome, e.g. expect = {{ status = 502 }}",
                    i + 1
                )));
            }
        }
        if !self.spec.steps.iter().any(|s| {
            matches!(
                s,
                spec::Step::Discover(_)
                    | spec::Step::RefreshDiscovery(_)
                    | spec::Step::Login(_)
                    | spec::Step::Request(_)
            )
        }) {
            return Err(invalid("no discover, login or request step: nothing is checked".into()));
        }
        self.topology()?;
        Ok(())
    }

    /// The topology the scenario names or writes inline.
    pub fn topology(&self) -> Result<Topology, ScenarioError> {
        Ok(Topology::named_or_inline(
            self.spec.topology.as_deref(),
            self.spec.certs.as_ref(),
            Some(self.spec.title.clone()),
            &self.source,
        )?)
    }

    /// Whether `verifier` can run this scenario: one whose outcome depends on the validation
    /// time to the second (`clock = "pinned"`) needs a verifier that validates at the time it
    /// is given.
    pub fn runs_on(&self, verifier: &dyn VerifierFactory) -> Result<(), ScenarioError> {
        if self.spec.clock == Clock::Pinned && !verifier.pins_clock() {
            return Err(ScenarioError::ClockNotPinned { id: self.id.clone(), verifier: verifier.name() });
        }
        Ok(())
    }

    /// The first paragraph of the description, on one line.
    pub fn summary(&self) -> String {
        self.spec.title.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verifier as the run sees it: its family and whether it reads the real clock.
    struct Stub(crate::verifier::Family, bool);

    impl VerifierFactory for Stub {
        fn name(&self) -> String {
            format!("{:?}", self.0)
        }
        fn family(&self) -> crate::verifier::Family {
            self.0
        }
        fn make(&self) -> Result<Box<dyn crate::verifier::Verifier>, VerifierFault> {
            Err(VerifierFault::Config { verifier: self.name(), message: "a stub".into() })
        }
        fn needs_real_clock(&self) -> bool {
            self.1
        }
    }

    #[test]
    fn a_pinned_clock_keeps_the_real_traffic_server_out_and_everyone_else_in() {
        use crate::verifier::Family;
        let root = Catalogue::workspace_root().join("scenarios");
        let load = |file: &str| Scenario::load(&root, &root.join(file)).expect("loads");
        let pinned = load("beyond/validity-boundary-not-after.toml");
        let days = load("beyond/expired-leaf.toml");
        assert_eq!(pinned.spec.clock, Clock::Pinned);
        assert_eq!(days.spec.clock, Clock::Any);
        let model = Stub(Family::Expressway, false);
        let model_as_ats = Stub(Family::Ats, false);
        let command = Stub(Family::Other, true);
        let traffic_server = Stub(Family::Ats, true);
        for verifier in [&model as &dyn VerifierFactory, &model_as_ats, &command, &traffic_server] {
            assert!(days.runs_on(verifier).is_ok(), "{}", verifier.name());
        }
        for verifier in [&model as &dyn VerifierFactory, &model_as_ats, &command] {
            assert!(pinned.runs_on(verifier).is_ok(), "{}", verifier.name());
        }
        let refused = pinned.runs_on(&traffic_server).expect_err("the traffic server reads the real clock");
        assert_eq!(
            refused.to_string(),
            "scenario 'beyond::validity-boundary-not-after' needs a pinned clock (clock = \"pinned\"): Ats validates \
             at the real clock"
        );
    }

    #[test]
    fn an_unknown_step_kind_is_matched_against_the_step_kinds() {
        let m = with_suggestion("unknown variant `requst`", &STEP_KINDS);
        assert!(m.contains("(did you mean 'request'?)"), "{m}");
    }
}
