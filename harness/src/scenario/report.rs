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
    /// The outcome in one line.
    pub outcome: String,
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
}

/// One identity a node serves, with its path to the top, for a report's diagram.
#[derive(Debug, Clone)]
pub struct ChainDiagram {
    /// `cucm:6972 ecdsa`.
    pub label: String,
    /// Leaf first: (certificate id, subject, self-signed, in the first peer's trust store).
    pub links: Vec<(String, String, bool, bool)>,
}

impl ScenarioRun {
    /// Every expectation that did not hold, as `step N: ...`.
    pub fn mismatches(&self) -> Vec<String> {
        self.steps.iter().flat_map(|s| s.mismatches.iter().map(move |m| format!("step {}: {m}", s.index))).collect()
    }
}
