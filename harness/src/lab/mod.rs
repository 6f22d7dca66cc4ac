//! Teaching labs: a broken MRA deployment a trainee investigates with real tools and fixes as
//! in the field.
//!
//! A lab is data (`labs/<lab>.toml`: a topology, a `[fleet]`, an `[expressway]` table, the
//! symptom and three graded hints) and a sheet (`labs/<lab>.md`: objectives, symptom, debrief).
//! This module holds the catalogue ([`Lab::load`], [`Lab::hint`], [`Lab::debrief`]), the lab's
//! errors and [`grade`], `check`'s conclusion: not fixed, only the workaround, or the long-term
//! fix. [`conf`] reads and writes the configuration files the trainee edits
//! (`expressway.conf` in `xConfiguration` syntax, `cucm-system-server.conf`); [`workspace`]
//! is the folder of plain files and `lab.toml`; [`control`] is the loopback port through which
//! the lab's commands reach its serve process; [`server`] runs a lab ([`LabServer`]): the
//! fleet, one Expressway-C front door per cluster peer, and [`LabServer::reload`], which
//! applies the files through the same paths as the model (trust-store files go through
//! [`TrustStore::add_pem`](crate::expressway::TrustStore::add_pem), so a second certificate
//! with the same CN is refused and named). The `xtask` crate owns processes, the command line
//! and printing; this module owns meaning.

pub mod conf;
pub mod control;
pub mod server;
mod warnings;
pub mod workspace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::expressway::ExpresswaySpec;
use crate::fleet::FleetSpec;
use crate::pki::{CertSpec, SpecError, Topology};
use crate::scenario::spec::LoginVerdict;
use crate::source::did_you_mean;

pub use conf::{
    EXPRESSWAY_CONF, ExpresswayConf, SYSTEM_SERVER_CONF, file_name, parse_expressway_conf, parse_system_server,
    render_expressway_conf,
};
pub use control::{Asked, Command, ControlError, ControlPort, ControlSettings, ControlToken, Refused};
pub use server::{
    CAPTURE_FILE, CaptureAnswer, LabServer, PeerReport, Refusal, Reissue, ReissueAnswer, ReloadReport, Target,
};
use workspace::REPLACED;
pub use workspace::{LabLimits, LabState, NodeState, PeerState, WRAPPER, Workspace, wrapper_script};

/// Every lab: name, definition, sheet.
const CATALOGUE: [(&str, &str, &str); 6] = [
    (
        "tftp-self-signed",
        include_str!("../../../labs/tftp-self-signed.toml"),
        include_str!("../../../labs/tftp-self-signed.md"),
    ),
    (
        "advertised-by-ip",
        include_str!("../../../labs/advertised-by-ip.toml"),
        include_str!("../../../labs/advertised-by-ip.md"),
    ),
    (
        "chain-intermediates",
        include_str!("../../../labs/chain-intermediates.toml"),
        include_str!("../../../labs/chain-intermediates.md"),
    ),
    ("same-cn", include_str!("../../../labs/same-cn.toml"), include_str!("../../../labs/same-cn.md")),
    ("cipher-order", include_str!("../../../labs/cipher-order.toml"), include_str!("../../../labs/cipher-order.md")),
    (
        "cluster-peer-lacks-ca",
        include_str!("../../../labs/cluster-peer-lacks-ca.toml"),
        include_str!("../../../labs/cluster-peer-lacks-ca.md"),
    ),
];

/// The lab names, in teaching order.
pub fn names() -> Vec<&'static str> {
    CATALOGUE.iter().map(|(name, _, _)| *name).collect()
}

/// Errors of the lab machinery (never a verdict: a failing login is data).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The last check's capture could not be written.
    #[error("{0}")]
    Capture(Box<crate::capture::CaptureError>),
    /// No lab of that name.
    #[error("no lab '{name}'{suggestion} (labs: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// ` (did you mean ..?)` or empty.
        suggestion: String,
        /// The catalogue.
        known: String,
    },
    /// A lab definition that does not parse (a build bug, caught by the tests).
    #[error("lab '{lab}': {message}")]
    Definition {
        /// The lab.
        lab: String,
        /// What is wrong.
        message: String,
    },
    /// `lab start` in a folder of someone's own.
    #[error("{} is not empty and is no lab workspace: give another --workspace", dir.display())]
    ForeignWorkspace {
        /// The folder.
        dir: PathBuf,
    },
    /// `lab start` without `--force` in a workspace holding a lab that is not running.
    #[error(
        "{} holds the files of lab '{before}', which is not running. Starting lab '{lab}' there replaces \
         them with its initial files ({REPLACED}: your edits are lost). Give --force to replace them \
         (`cargo xtask lab start {lab} --workspace {} --force`), or another --workspace",
        dir.display(),
        dir.display()
    )]
    WouldReplace {
        /// The workspace.
        dir: PathBuf,
        /// The lab whose files are there.
        before: String,
        /// The lab asked for.
        lab: String,
    },
    /// A workspace file the trainee edited does not parse.
    #[error("{file}:{line}: {message}")]
    Config {
        /// The file, relative to the workspace.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `reissue --cert KIND` for a certificate the node does not have.
    #[error(
        "reissue: node '{node}' has no certificate '{kind}'{} (it has: {})",
        did_you_mean(kind, kinds.iter().map(String::as_str)),
        kinds.join(", ")
    )]
    ReissueUnknownCert {
        /// The node.
        node: String,
        /// The kind asked for.
        kind: String,
        /// The kinds it has.
        kinds: Vec<String>,
    },
    /// `reissue --san` that is not `dns:NAME` or `ip:ADDRESS`.
    #[error("reissue: {source}")]
    ReissueSan {
        /// As given.
        san: String,
        /// What is wrong.
        source: SpecError,
    },
    /// `reissue --issuer` naming a certificate of the lab that is no CA.
    #[error("reissue: '{issuer}' is not a CA of this lab")]
    ReissueNotCa {
        /// The certificate id given.
        issuer: String,
    },
    /// `reissue` without a change.
    #[error("reissue: nothing to change: give --san, --issuer, --cn and/or --send-chain")]
    ReissueNothingToChange,
    /// `reissue --cn` that is not a host name.
    #[error("reissue: '{cn}' is not a host name")]
    ReissueCn {
        /// As given.
        cn: String,
    },
    /// The PKI.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// The fleet description.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetSpecError),
    /// The running fleet (its message only, as before: not chained as a source).
    #[error("fleet: {0}")]
    Simulator(simulators::FleetError),
    /// The verifier.
    #[error(transparent)]
    Verifier(#[from] crate::verifier::VerifierFault),
    /// The front door.
    #[error(transparent)]
    FrontDoor(#[from] crate::frontdoor::FrontDoorError),
    /// The control port.
    #[error(transparent)]
    Control(#[from] control::ControlError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io { path: path.to_path_buf(), source }
}

/// A file the trust store must keep, and why.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepFile {
    /// The trust-store file name.
    pub file: String,
    /// Why removing it is not a fix.
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabFile {
    title: String,
    symptom: String,
    hints: Vec<String>,
    #[serde(default)]
    keep: Vec<KeepFile>,
    #[serde(default)]
    topology: Option<String>,
    #[serde(default)]
    certs: Option<BTreeMap<String, CertSpec>>,
    fleet: FleetSpec,
    expressway: ExpresswaySpec,
}

/// One lab, loaded.
#[derive(Debug, Clone)]
pub struct Lab {
    /// Its name (`tftp-self-signed`).
    pub name: String,
    /// One line.
    pub title: String,
    /// The symptom as a user reports it.
    pub symptom: String,
    /// Three graded hints: direction, where to look, the fix.
    pub hints: Vec<String>,
    /// Trust-store files removing which is no fix.
    pub keep: Vec<KeepFile>,
    /// The certificates.
    pub topology: Topology,
    /// The nodes.
    pub fleet: FleetSpec,
    /// Expressway-C as the lab starts.
    pub expressway: ExpresswaySpec,
    /// The sheet (`labs/<lab>.md`).
    pub sheet: &'static str,
}

impl Lab {
    /// Loads a lab of the catalogue.
    pub fn load(name: &str) -> Result<Lab, LabError> {
        let Some((name, text, sheet)) = CATALOGUE.iter().find(|(n, _, _)| *n == name) else {
            return Err(LabError::Unknown {
                name: name.to_string(),
                suggestion: did_you_mean(name, names()),
                known: names().join(", "),
            });
        };
        let definition = |message: String| LabError::Definition { lab: name.to_string(), message };
        let file: LabFile = toml::from_str(text).map_err(|e| definition(e.to_string()))?;
        if file.hints.len() != 3 {
            return Err(definition(format!("{} hints, want 3 (direction, where to look, the fix)", file.hints.len())));
        }
        let source = crate::source::Source::new(format!("labs/{name}.toml"), *text);
        let topology = Topology::named_or_inline(file.topology.as_deref(), file.certs.as_ref(), None, &source)?;
        Ok(Lab {
            name: name.to_string(),
            title: file.title,
            symptom: file.symptom,
            hints: file.hints,
            keep: file.keep,
            topology,
            fleet: file.fleet,
            expressway: file.expressway,
            sheet,
        })
    }

    /// Whether Expressway-C is a cluster (one trust-store folder per peer).
    pub fn clustered(&self) -> bool {
        self.expressway.peers.len() > 1
    }

    /// The sheet's debrief: what follows its `## Debrief` heading.
    pub fn debrief(&self) -> &str {
        self.sheet.split_once("## Debrief").map_or("", |(_, rest)| rest.trim())
    }

    /// The sheet up to the debrief: objectives and symptom.
    pub fn brief(&self) -> &str {
        self.sheet.split_once("## Debrief").map_or(self.sheet, |(before, _)| before).trim()
    }

    /// The hint to give when `given` were given before: the next one, or once every hint was
    /// given, the last one again.
    pub fn hint(&self, given: usize) -> Hint<'_> {
        let index = given.min(self.hints.len().saturating_sub(1));
        Hint {
            number: index + 1,
            of: self.hints.len(),
            label: HINT_LABELS.get(index).copied().unwrap_or("hint"),
            text: self.hints.get(index).map_or("", String::as_str),
            again: given >= self.hints.len(),
        }
    }
}

/// What each of the three hints gives, in order.
const HINT_LABELS: [&str; 3] = ["direction", "where to look", "the fix"];

/// One hint, as `lab hint` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint<'a> {
    /// Which, from 1.
    pub number: usize,
    /// Of how many.
    pub of: usize,
    /// `direction`, `where to look` or `the fix`.
    pub label: &'static str,
    /// The hint.
    pub text: &'a str,
    /// Every hint was given already: this is the last one again.
    pub again: bool,
}

/// What `lab check` concludes from a reload and the login through each peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grade {
    /// The login fails or is degraded through these peers (in the order given).
    NotFixed {
        /// The peers.
        failing: Vec<String>,
    },
    /// The login works only because the traffic server verifies nothing: VerifyOriginServer
    /// Off (pre-X14.2 behaviour), the workaround.
    WorkaroundOnly,
    /// The login works with origin verification on, but a trust-store file that must stay is
    /// gone or refused, or an edited file was not applied.
    NotLongTerm {
        /// One line each: the missing files, then the errors.
        reasons: Vec<String>,
    },
    /// The login works through every peer with origin verification on: the long-term fix.
    Fixed,
}

impl Grade {
    /// `lab check`'s exit code: 0 fixed, 1 not fixed, 3 works but not by the long-term fix.
    pub fn exit_code(&self) -> u8 {
        match self {
            Grade::Fixed => 0,
            Grade::NotFixed { .. } => 1,
            Grade::WorkaroundOnly | Grade::NotLongTerm { .. } => 3,
        }
    }
}

/// Grades a check: `report` is what the reload applied, `verdicts` the login's verdict through
/// each peer. A login that fails or is degraded anywhere is not fixed; one that works only
/// because nothing is verified is the workaround; one that needs a kept file gone, or that
/// ignores a file in error, is not the long-term fix.
pub fn grade(report: &ReloadReport, verdicts: &[(String, LoginVerdict)]) -> Grade {
    let failing: Vec<String> =
        verdicts.iter().filter(|(_, v)| *v != LoginVerdict::Works).map(|(peer, _)| peer.clone()).collect();
    if !failing.is_empty() {
        return Grade::NotFixed { failing };
    }
    if !report.verifies {
        return Grade::WorkaroundOnly;
    }
    if !report.missing.is_empty() || !report.errors.is_empty() {
        return Grade::NotLongTerm { reasons: report.missing.iter().chain(&report.errors).cloned().collect() };
    }
    Grade::Fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lab_loads_and_has_a_debrief() {
        for name in names() {
            let lab = Lab::load(name).unwrap_or_else(|e| panic!("{e}"));
            assert!(!lab.debrief().is_empty(), "{name}: the sheet has no `## Debrief`");
        }
    }

    #[test]
    fn hints_come_in_order_then_the_last_again() {
        let lab = Lab::load("tftp-self-signed").expect("lab");
        let first = lab.hint(0);
        assert_eq!((first.number, first.of, first.label, first.again), (1, 3, "direction", false));
        assert_eq!(first.text, lab.hints[0]);
        assert_eq!((lab.hint(1).number, lab.hint(1).label), (2, "where to look"));
        let last = lab.hint(2);
        assert_eq!((last.number, last.label, last.again), (3, "the fix", false));
        assert_eq!(lab.hint(3), Hint { again: true, ..last });
        assert_eq!(lab.hint(7), Hint { again: true, ..last });
    }

    /// A reload with origin verification on and nothing wrong.
    fn verifying() -> ReloadReport {
        ReloadReport { verify_origin_server: true, verifies: true, ..ReloadReport::default() }
    }

    fn verdicts(of: &[(&str, LoginVerdict)]) -> Vec<(String, LoginVerdict)> {
        of.iter().map(|(peer, v)| (peer.to_string(), *v)).collect()
    }

    #[test]
    fn a_login_failing_or_degraded_through_any_peer_is_not_fixed() {
        use LoginVerdict::{Degraded, Fails, Works};
        let g = grade(&verifying(), &verdicts(&[("vcsc1", Works), ("vcsc2", Fails), ("vcsc3", Degraded)]));
        assert_eq!(g, Grade::NotFixed { failing: vec!["vcsc2".into(), "vcsc3".into()] });
        assert_eq!(g.exit_code(), 1);
        // Failing comes first: with verification off and a kept file gone, still not fixed.
        let report = ReloadReport { missing: vec!["kept".into()], ..ReloadReport::default() };
        assert_eq!(grade(&report, &verdicts(&[("vcsc", Fails)])), Grade::NotFixed { failing: vec!["vcsc".into()] });
    }

    #[test]
    fn works_without_verification_is_only_the_workaround() {
        let report = ReloadReport {
            verify_origin_server: false,
            verifies: false,
            missing: vec!["vcsc: trust-store/x.pem is no longer trusted: why".into()],
            ..ReloadReport::default()
        };
        let g = grade(&report, &verdicts(&[("vcsc", LoginVerdict::Works)]));
        assert_eq!(g, Grade::WorkaroundOnly);
        assert_eq!(g.exit_code(), 3);
    }

    #[test]
    fn works_with_a_kept_file_gone_or_a_file_in_error_is_not_long_term() {
        let report = ReloadReport {
            missing: vec!["vcsc: trust-store/cups-cup-xmpp.pem is no longer trusted: IM&P".into()],
            errors: vec!["expressway.conf:4: unknown setting 'Cipher' (expressway.conf not applied)".into()],
            ..verifying()
        };
        let g = grade(&report, &verdicts(&[("vcsc", LoginVerdict::Works)]));
        assert_eq!(g, Grade::NotLongTerm { reasons: [report.missing.clone(), report.errors.clone()].concat() });
        assert_eq!(g.exit_code(), 3);
    }

    #[test]
    fn works_through_every_peer_with_verification_on_is_fixed() {
        // A refused upload the login does not need does not stand in the way.
        let report = ReloadReport { refused: vec!["vcsc1: trust-store/vcsc1/x.pem: same CN".into()], ..verifying() };
        let g = grade(&report, &verdicts(&[("vcsc1", LoginVerdict::Works), ("vcsc2", LoginVerdict::Works)]));
        assert_eq!(g, Grade::Fixed);
        assert_eq!(g.exit_code(), 0);
    }
}
