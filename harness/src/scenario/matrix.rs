//! The verifier matrix: the catalogue run once per verifier, side by side.
//!
//! Each verifier plays every scenario through [`run`](super::run::run) as usual; a recording
//! wrapper around its factory keeps every request and outcome. A row is one request of one step
//! of one scenario (`vcsc -> GET https://cucm.steven.lab:6972/SPDefault.cnf.xml`), a column one
//! verifier, a cell the verdict (`accept`, `reject`, `unsupported`, or `-` when that verifier
//! never made the request, because an earlier step went another way) with the failed check.
//! Rows whose verdicts differ are marked: that is what a person changing a verifier reads, and
//! what shows that curl, Python and Expressway disagree on CN fallback and IP SANs.
//!
//! Written expectations play no part here: the matrix compares verifiers with each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::catalogue::Catalogue;
use super::login::LoginSpec;
use super::run::{RunOptions, run};
use crate::pki::KeyCache;
use crate::verifier::command::UNSUPPORTED_STATUS;
use crate::verifier::{Change, Failure, OriginRequest, Outcome, Session, Verifier, VerifierFault};
use crate::verifier::{Family, VerifierFactory};

/// One verifier's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// `accept`, `reject`, `unsupported` or `fault`.
    pub verdict: String,
    /// The failed check and its error (empty when nothing failed).
    pub error: String,
    /// The status the MRA client got.
    pub status: u16,
    /// How many WARNING lines the request produced (ATS's verify callback).
    pub warnings: usize,
    /// How many ERROR lines (ATS 8.1's `SSL connection failed`).
    pub errors: usize,
    /// How many connections (handshake attempts) reached the node.
    pub attempts: u32,
    /// The reason phrase the MRA client got.
    pub reason: String,
    /// The TLS alert the node received from the verifier (`Unknown CA`), empty if none: read
    /// off the node's events, so every verifier is judged by what reached the wire.
    pub alert: String,
    /// The name-check line, without its time stamp, if one was logged.
    pub name_line: Option<String>,
}

impl Cell {
    fn of(outcome: &Outcome) -> Cell {
        let verdict = if outcome.status == 200 {
            "accept"
        } else if outcome.status == UNSUPPORTED_STATUS && outcome.reason == "unsupported" {
            "unsupported"
        } else {
            "reject"
        };
        let error = match &outcome.failure {
            None => String::new(),
            Some(Failure::Chain { text, depth, .. }) => format!("chain: {text} (depth {depth})"),
            Some(Failure::Handshake { reason }) if verdict == "unsupported" => {
                reason.trim_start_matches("unsupported").trim_start_matches(": ").to_string()
            }
            Some(other) => other.to_string(),
        };
        let name_line = outcome.log.iter().find_map(|l| l.find("WARNING: SNI (").map(|at| l[at..].to_string()));
        Cell {
            verdict: verdict.into(),
            error,
            status: outcome.status,
            warnings: outcome.warnings(),
            errors: outcome.errors(),
            attempts: outcome.attempts,
            reason: outcome.reason.clone(),
            alert: String::new(),
            name_line,
        }
    }

    /// `reject (chain: self-signed certificate (depth 0))`.
    pub fn text(&self) -> String {
        if self.error.is_empty() { self.verdict.clone() } else { format!("{} ({})", self.verdict, self.error) }
    }
}

/// One request of one step of one scenario, as every verifier answered it.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario id.
    pub scenario: String,
    /// The step, 1-based (0 for a scenario that could not run).
    pub step: usize,
    /// `vcsc -> GET https://cucm.steven.lab:8443/cucm-uds/version`, with `#2` when a step makes
    /// the same request twice.
    pub request: String,
    /// One cell per verifier, in the matrix's order; `None` when that verifier never made it.
    pub cells: Vec<Option<Cell>>,
}

impl Row {
    /// Whether the verifiers' verdicts differ (a missing cell counts as a verdict).
    pub fn disagrees(&self) -> bool {
        let verdicts: Vec<Option<&str>> = self.cells.iter().map(|c| c.as_ref().map(|c| c.verdict.as_str())).collect();
        verdicts.windows(2).any(|w| w[0] != w[1])
    }

    /// Whether any verifier faulted on this row's scenario.
    pub fn faulted(&self) -> bool {
        self.cells.iter().flatten().any(|c| c.verdict == "fault")
    }
}

/// The whole matrix.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// Verifier names, one per column.
    pub verifiers: Vec<String>,
    /// Rows, by scenario, step and request order.
    pub rows: Vec<Row>,
}

type Record = Arc<Mutex<Vec<(String, OriginRequest, Outcome)>>>;

struct Recording<'a> {
    inner: &'a dyn VerifierFactory,
    record: Record,
}

struct RecordingVerifier {
    inner: Box<dyn Verifier>,
    peer: String,
    record: Record,
}

impl VerifierFactory for Recording<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn family(&self) -> Family {
        // The matrix compares verifiers; no written expectation is checked.
        Family::Other
    }
    fn make(&self) -> Result<Box<dyn Verifier>, VerifierFault> {
        Ok(Box::new(RecordingVerifier {
            inner: self.inner.make()?,
            peer: String::new(),
            record: Arc::clone(&self.record),
        }))
    }
    fn needs_real_clock(&self) -> bool {
        self.inner.needs_real_clock()
    }
}

impl Verifier for RecordingVerifier {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn open(&mut self, session: &Session) -> Result<(), VerifierFault> {
        self.peer = session.peer.clone();
        self.inner.open(session)
    }
    fn reconfigure(&mut self, session: &Session, change: Change) -> Result<(), VerifierFault> {
        self.inner.reconfigure(session, change)
    }
    fn request(&mut self, request: &OriginRequest) -> Result<Outcome, VerifierFault> {
        let outcome = self.inner.request(request)?;
        self.record.lock().unwrap_or_else(|p| p.into_inner()).push((
            self.peer.clone(),
            request.clone(),
            outcome.clone(),
        ));
        Ok(outcome)
    }
}

/// A row's request text and its cells, while the matrix is assembled.
type RowCells = (String, Vec<Option<Cell>>);

/// Row keys and cells of one scenario under one verifier.
type ScenarioCells = Vec<((usize, String), Cell)>;

fn one(
    catalogue: &Catalogue,
    path: &Path,
    factory: &dyn VerifierFactory,
    keys: &KeyCache,
    login: &LoginSpec,
) -> ScenarioCells {
    let record: Record = Arc::default();
    let recording = Recording { inner: factory, record: Arc::clone(&record) };
    let options = RunOptions {
        verifier: &recording,
        keys: keys.clone(),
        login: login.clone(),
        fleet: crate::scenario::run::FleetTier::InProcess,
    };
    let result = super::batch::guarded(|| catalogue.load(path).and_then(|scenario| run(&scenario, &options)));
    let run = match result {
        Ok(run) => run,
        Err(e) => {
            let first = e.to_string();
            let cell = Cell {
                verdict: "fault".into(),
                error: first,
                status: 0,
                warnings: 0,
                errors: 0,
                attempts: 0,
                reason: String::new(),
                alert: String::new(),
                name_line: None,
            };
            return vec![((0, "(scenario)".into()), cell)];
        }
    };
    let recorded = std::mem::take(&mut *record.lock().unwrap_or_else(|p| p.into_inner()));
    let mut recorded = recorded.into_iter();
    let mut out = Vec::new();
    for step in &run.steps {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        // The runner writes `<peer> -> <method> https://...` for each request it sends, in order.
        let is_request = |l: &String| !l.starts_with(' ') && l.contains(" -> ") && l.contains(" https://");
        for (at, line) in step.lines.iter().enumerate().filter(|(_, l)| is_request(l)) {
            let Some((_peer, _request, outcome)) = recorded.next() else { break };
            let text = line.clone();
            let n = seen.entry(text.clone()).or_insert(0);
            *n += 1;
            let key = if *n > 1 { format!("{text} #{n}") } else { text };
            let mut cell = Cell::of(&outcome);
            // The node's events follow the request's lines, indented, until the next request.
            cell.alert = step.lines[at + 1..]
                .iter()
                .take_while(|l| l.starts_with(' '))
                .find_map(|l| l.split("alert received: ").nth(1))
                .map(|rest| rest.split([';', '(']).next().unwrap_or(rest).trim().to_string())
                .unwrap_or_default();
            out.push(((step.index, key), cell));
        }
    }
    out
}

/// Runs `files` once per verifier (`threads` scenarios at a time) and lines the answers up.
/// `progress(verifier, done, total)` is called as scenarios end.
pub fn run_matrix(
    catalogue: &Catalogue,
    files: &[PathBuf],
    verifiers: &[&dyn VerifierFactory],
    keys: &KeyCache,
    login: &LoginSpec,
    threads: usize,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Matrix {
    // (scenario index, step, request) -> cells
    let mut table: BTreeMap<(usize, usize, usize), RowCells> = BTreeMap::new();
    let mut order: BTreeMap<(usize, usize, String), usize> = BTreeMap::new();
    for (column, factory) in verifiers.iter().enumerate() {
        let done = AtomicUsize::new(0);
        let name = factory.name();
        let results = super::batch::in_parallel(files, threads, |i, path| {
            let cells = one(catalogue, path, *factory, keys, login);
            progress(&name, done.fetch_add(1, Ordering::SeqCst) + 1, files.len());
            (i, cells)
        });
        for (i, cells) in results {
            for ((step, request), cell) in cells {
                let next_slot = order.len();
                let slot = *order.entry((i, step, request.clone())).or_insert(next_slot);
                let entry = table.entry((i, step, slot)).or_insert_with(|| (request, vec![None; verifiers.len()]));
                entry.1[column] = Some(cell);
            }
        }
    }
    let rows = table
        .into_iter()
        .map(|((i, step, _), (request, cells))| Row {
            scenario: catalogue.id_of(&files[i]).unwrap_or_else(|| files[i].display().to_string()),
            step,
            request,
            cells,
        })
        .collect();
    Matrix { verifiers: verifiers.iter().map(|v| v.name()).collect(), rows }
}

fn cell_text(cell: &Option<Cell>) -> String {
    cell.as_ref().map(Cell::text).unwrap_or_else(|| "-".into())
}

impl Matrix {
    /// Rows where the verifiers disagree.
    pub fn disagreements(&self) -> usize {
        self.rows.iter().filter(|r| r.disagrees()).count()
    }

    /// Whether any verifier faulted.
    pub fn faulted(&self) -> bool {
        self.rows.iter().any(Row::faulted)
    }

    /// The table people read: `≠` marks a disagreement; cells are cut at `width` characters.
    pub fn table(&self, width: usize) -> String {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut header = vec![" ".to_string(), "scenario".into(), "step".into(), "request".into()];
        header.extend(self.verifiers.iter().cloned());
        rows.push(header);
        for row in &self.rows {
            let mut cells = vec![
                if row.disagrees() { "≠".into() } else { " ".into() },
                row.scenario.clone(),
                row.step.to_string(),
                row.request.clone(),
            ];
            cells.extend(row.cells.iter().map(cell_text));
            rows.push(cells);
        }
        super::batch::text_table(&rows, width)
    }

    /// A Markdown report: the whole table, `≠` on disagreements.
    pub fn markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = format!(
            "# mralab verifier matrix\n\n{} rows, {} disagreement(s)\n\n|  | scenario | step | request | {} |\n|---|---|---|---|{}\n",
            self.rows.len(),
            self.disagreements(),
            self.verifiers.iter().map(|v| esc(v)).collect::<Vec<_>>().join(" | "),
            "---|".repeat(self.verifiers.len())
        );
        for row in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                if row.disagrees() { "≠" } else { "" },
                row.scenario,
                row.step,
                esc(&row.request),
                row.cells.iter().map(|c| esc(&cell_text(c))).collect::<Vec<_>>().join(" | ")
            ));
        }
        out
    }

    /// A JSON report.
    pub fn json(&self) -> String {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|row| {
                serde_json::json!({
                    "scenario": row.scenario,
                    "step": row.step,
                    "request": row.request,
                    "disagree": row.disagrees(),
                    "cells": self.verifiers.iter().zip(&row.cells).map(|(v, c)| (v.clone(), match c {
                        Some(c) => serde_json::json!({"verdict": c.verdict, "error": c.error}),
                        None => serde_json::Value::Null,
                    })).collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect();
        let report = serde_json::json!({
            "verifiers": self.verifiers,
            "rows": rows,
            "disagreements": self.disagreements(),
            "faulted": self.faulted(),
        });
        serde_json::to_string_pretty(&report).unwrap_or_default()
    }

    /// A JUnit report: a test case per row. A verifier fault is an `<error>`; a disagreement is
    /// information (verifiers legitimately differ), written to `<system-out>` with every cell.
    pub fn junit(&self) -> String {
        let x = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
        let errors = self.rows.iter().filter(|r| r.faulted()).count();
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"mralab verifier matrix ({})\" tests=\"{}\" failures=\"0\" errors=\"{errors}\">\n",
            x(&self.verifiers.join(", ")),
            self.rows.len()
        );
        for row in &self.rows {
            out.push_str(&format!(
                "  <testcase classname=\"{}\" name=\"step {}: {}\">",
                x(&row.scenario),
                row.step,
                x(&row.request)
            ));
            if row.faulted() {
                out.push_str("<error message=\"a verifier faulted\"/>");
            }
            let cells: Vec<String> =
                self.verifiers.iter().zip(&row.cells).map(|(v, c)| format!("{v}: {}", cell_text(c))).collect();
            out.push_str(&format!(
                "<system-out>{}{}</system-out></testcase>\n",
                if row.disagrees() { "DISAGREE\n" } else { "" },
                x(&cells.join("\n"))
            ));
        }
        out.push_str("</testsuite>\n");
        out
    }
}
