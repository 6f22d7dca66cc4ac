//! What a scenario run produced: one [`StepReport`] per step, and the [`ScenarioRun`] that
//! renderers (snapshot text, tables, HTML) and the expectation check read. Plain data, filled
//! by the runner.

/// The result of one step.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// 1-based.
    pub index: usize,
    /// `request GET https://cucm.steven.lab:6972/SPDefault.cnf.xml via vcsc`.
    pub title: String,
    /// What happened, for people (log lines, served certificates, node events).
    pub lines: Vec<String>,
    /// The outcome in one line, as the snapshot shows it.
    pub outcome: String,
    /// The outcome with what failed (the check, the error code and depth), for tables and
    /// reports; the same as `outcome` for steps with nothing more to say.
    pub actual: String,
    /// The written expectation in one line, for steps that have one.
    pub expected: Option<String>,
    /// Expectations that did not hold.
    pub mismatches: Vec<String>,
}

/// The result of one scenario.
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    /// The scenario id.
    pub id: String,
    /// Steps, in order.
    pub steps: Vec<StepReport>,
    /// The snapshot text.
    pub snapshot: String,
    /// Every traffic server line the run produced, in order, as a diagnostic log holds them.
    pub log: Vec<String>,
    /// The scenario's title and description (Markdown), for reports.
    pub title: String,
    /// The description.
    pub description: String,
    /// Each listener's certificates at the start, as chains to draw.
    pub chains: Vec<ChainDiagram>,
    /// Every connection to the nodes as a capture, when the run was asked for one
    /// ([`super::run::run_captured`]); never part of the snapshot.
    pub capture: Option<crate::capture::Capture>,
}

/// One identity a node serves, with its path to the top, for a report's diagram.
#[derive(Debug, Clone)]
pub struct ChainDiagram {
    /// `cucm:6972 ecdsa`.
    pub label: String,
    /// Leaf first.
    pub links: Vec<DiagramLink>,
}

impl ScenarioRun {
    /// Every expectation that did not hold, as `step N: ...`.
    pub fn mismatches(&self) -> Vec<String> {
        self.steps.iter().flat_map(|s| s.mismatches.iter().map(move |m| format!("step {}: {m}", s.index))).collect()
    }
}

/// One certificate of a [`ChainDiagram`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagramLink {
    /// The certificate id.
    pub id: String,
    /// Its subject.
    pub subject: String,
    /// Whether it is self-signed.
    pub self_signed: bool,
    /// Whether the first peer's trust store holds it.
    pub trusted: bool,
    /// Why verification failed at this certificate during the run (the first time it did):
    /// `error 10 at depth 1: certificate has expired`, `name: 10.48.36.215 not in certificate`.
    pub failed: Option<String>,
}

impl StepReport {
    /// A report for step `index` (1-based) about to be played.
    pub fn new(index: usize, title: impl Into<String>) -> StepReport {
        StepReport {
            index,
            title: title.into(),
            lines: Vec::new(),
            outcome: String::new(),
            actual: String::new(),
            expected: None,
            mismatches: Vec::new(),
        }
    }
}
