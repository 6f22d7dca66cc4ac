//! Running many scenarios at once: in parallel on the machine's cores, each compared with its
//! snapshot, with reports for people (a table) and for CI systems (md, json, junit). A
//! scenario that panics (a harness bug) is an error entry of its own; the others still run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::ScenarioError;
use super::catalogue::{Catalogue, SnapshotState};
use super::report::{ScenarioRun, StepReport};
use super::run::{RunOptions, run, run_captured};

/// Why a scenario in a batch has no run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    /// It could not be loaded or run (shared: entries are cloned into reports).
    #[error(transparent)]
    Scenario(Arc<ScenarioError>),
    /// It panicked: a bug in the harness, caught so that the rest of the batch runs.
    #[error("the harness panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
}

impl From<ScenarioError> for BatchError {
    fn from(error: ScenarioError) -> Self {
        BatchError::Scenario(Arc::new(error))
    }
}

/// Runs `work`, a panic included: one scenario's panic must not take its batch (the scoped
/// threads, then the whole process) down with it. The panic hook has already printed the
/// panic, with its place, to stderr.
pub fn guarded<T>(work: impl FnOnce() -> Result<T, ScenarioError>) -> Result<T, BatchError> {
    // Nothing `work` leaves half-changed is looked at again: shared state (the key cache)
    // recovers from poisoned locks, and a panicked scenario's own state is dropped.
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result.map_err(BatchError::from),
        Err(payload) => Err(BatchError::Panicked {
            message: payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(a panic without a message)".to_string()),
        }),
    }
}

/// One scenario's result in a batch.
#[derive(Debug, Clone)]
pub struct BatchEntry {
    /// The id (or the file name when the id cannot be known).
    pub id: String,
    /// The file.
    pub path: PathBuf,
    /// The run and its snapshot comparison, or why it could not run.
    pub result: Result<(ScenarioRun, SnapshotState), BatchError>,
    /// Wall time.
    pub elapsed: std::time::Duration,
}

impl BatchEntry {
    /// Whether this entry fails the batch: it could not run, an expectation did not hold, or
    /// its snapshot is not the stored one.
    pub fn failed(&self) -> bool {
        match &self.result {
            Err(_) => true,
            Ok((run, state)) => !run.mismatches().is_empty() || *state != SnapshotState::Same,
        }
    }

    /// `ok`, `MISMATCH`, `CHANGED`, `NEW`, `ERROR`.
    pub fn verdict(&self) -> &'static str {
        match &self.result {
            Err(_) => "ERROR",
            Ok((run, _)) if !run.mismatches().is_empty() => "MISMATCH",
            Ok((_, SnapshotState::Changed(_))) => "CHANGED",
            Ok((_, SnapshotState::New)) => "NEW",
            Ok(_) => "ok",
        }
    }

    /// The step to show for this scenario: the first whose expectation did not hold, or else the
    /// last checked step.
    pub fn shown_step(&self) -> Option<&StepReport> {
        let (run, _) = self.result.as_ref().ok()?;
        run.steps
            .iter()
            .find(|s| !s.mismatches.is_empty())
            .or_else(|| run.steps.iter().rev().find(|s| s.expected.is_some()))
    }

    /// The shown step's expectation and what happened. A failing step is named (`step 2: ...`)
    /// and its actual outcome says what failed (the check, the error code and depth); a passing
    /// scenario shows its last checked step's outcome.
    pub fn expected_actual(&self) -> (String, String) {
        if let Err(e) = &self.result {
            return ("-".into(), e.to_string().lines().next().unwrap_or_default().to_string());
        }
        let Some(step) = self.shown_step() else { return Default::default() };
        let expected = step.expected.clone().unwrap_or_default();
        if step.mismatches.is_empty() {
            (expected, step.outcome.clone())
        } else {
            (format!("step {}: {expected}", step.index), format!("step {}: {}", step.index, step.actual))
        }
    }
}

/// What `--accept` does with one entry's snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// The run could not be made: there is nothing to write.
    NoRun,
    /// The stored snapshot is this run's already.
    Unchanged,
    /// The snapshot is new or changed, and the run meets its written expectations: write it.
    Write,
    /// The snapshot is new or changed, but written expectations do not hold (`step N: ...`): a
    /// snapshot must not bless what the scenario says is wrong. Only verifier families that
    /// written expectations cover (the built-in model, the real traffic server) have any.
    Refused(Vec<String>),
}

impl BatchEntry {
    /// Whether `--accept` writes this entry's snapshot.
    pub fn acceptance(&self) -> Acceptance {
        match &self.result {
            Err(_) => Acceptance::NoRun,
            Ok((_, SnapshotState::Same)) => Acceptance::Unchanged,
            Ok((run, _)) => {
                let mismatches = run.mismatches();
                if mismatches.is_empty() { Acceptance::Write } else { Acceptance::Refused(mismatches) }
            }
        }
    }
}

/// Runs `files` with `threads` workers; `progress(done, total, id)` is called as each ends.
pub fn run_files(
    catalogue: &Catalogue,
    files: &[PathBuf],
    options: &RunOptions<'_>,
    snapshot_dir: &str,
    threads: usize,
    progress: &(dyn Fn(usize, usize, &BatchEntry) + Sync),
) -> Vec<BatchEntry> {
    run_files_with(catalogue, files, options, snapshot_dir, threads, false, progress)
}

/// [`run_files`], each run also recording its capture ([`ScenarioRun::capture`]) when
/// `capture` is set.
pub fn run_files_with(
    catalogue: &Catalogue,
    files: &[PathBuf],
    options: &RunOptions<'_>,
    snapshot_dir: &str,
    threads: usize,
    capture: bool,
    progress: &(dyn Fn(usize, usize, &BatchEntry) + Sync),
) -> Vec<BatchEntry> {
    let done = AtomicUsize::new(0);
    in_parallel(files, threads, |_, path| {
        let start = std::time::Instant::now();
        let id = catalogue.id_of(path).unwrap_or_else(|| path.display().to_string());
        let result = guarded(|| {
            let run = catalogue.load(path).and_then(|scenario| {
                if capture { run_captured(&scenario, options) } else { run(&scenario, options) }
            })?;
            let state = catalogue.compare(&catalogue.snapshot_path(snapshot_dir, &run.id), &run.snapshot);
            Ok((run, state))
        });
        let entry = BatchEntry { id, path: path.clone(), result, elapsed: start.elapsed() };
        progress(done.fetch_add(1, Ordering::SeqCst) + 1, files.len(), &entry);
        entry
    })
}

/// `work` over every item on `threads` workers, results in the items' order.
pub fn in_parallel<I: Sync, T: Send>(items: &[I], threads: usize, work: impl Fn(usize, &I) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let result = work(i, item);
                    results.lock().unwrap_or_else(|p| p.into_inner()).push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// The summary table people read.
pub fn table(entries: &[BatchEntry]) -> String {
    let mut rows =
        vec![["scenario".to_string(), "expected".into(), "actual".into(), "snapshot".into(), "result".into()]];
    for e in entries {
        let (expected, actual) = e.expected_actual();
        let snapshot = match &e.result {
            Ok((_, state)) => state.label().to_string(),
            Err(_) => "-".into(),
        };
        rows.push([e.id.clone(), expected, actual, snapshot, e.verdict().to_string()]);
    }
    text_table(&rows.into_iter().map(Vec::from).collect::<Vec<_>>(), 60)
}

/// Rows as a plain-text table: columns padded to their widest cell, cells longer than
/// `max_width` cut with `…`.
pub fn text_table(rows: &[Vec<String>], max_width: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter().filter_map(|r| r.get(c)).map(|cell| cell.chars().count()).max().unwrap_or(0).min(max_width)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| {
                let cell: String = if cell.chars().count() > *w {
                    cell.chars().take(w.saturating_sub(1)).collect::<String>() + "…"
                } else {
                    cell.clone()
                };
                format!("{cell:<w$}")
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A Markdown report.
pub fn markdown(entries: &[BatchEntry], verifier: &str) -> String {
    let mut out = format!(
        "# mralab scenarios ({verifier})\n\n| scenario | expected | actual | snapshot | result |\n|---|---|---|---|---|\n"
    );
    for e in entries {
        let (expected, actual) = e.expected_actual();
        let snapshot = e.result.as_ref().map(|(_, s)| s.label()).unwrap_or("-");
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            e.id,
            expected.replace('|', "\\|"),
            actual.replace('|', "\\|"),
            snapshot,
            e.verdict()
        ));
    }
    for e in entries.iter().filter(|e| e.failed()) {
        out.push_str(&format!("\n## {}\n\n```\n{}\n```\n", e.id, details(e)));
    }
    out
}

/// Why an entry failed, for people.
pub fn details(entry: &BatchEntry) -> String {
    match &entry.result {
        Err(e) => format!("could not run: {e}"),
        Ok((run, state)) => {
            let mut out: Vec<String> = run.mismatches().into_iter().map(|m| format!("expectation: {m}")).collect();
            match state {
                SnapshotState::Changed(diff) => out.push(diff.clone()),
                SnapshotState::New => out.push("no snapshot yet: run with --accept to write it".into()),
                SnapshotState::Same => {}
            }
            out.join("\n")
        }
    }
}

/// A JSON report.
pub fn json(entries: &[BatchEntry], verifier: &str) -> String {
    let scenarios: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            let (expected, actual) = e.expected_actual();
            serde_json::json!({
                "id": e.id,
                "result": e.verdict(),
                "expected": expected,
                "actual": actual,
                "snapshot": e.result.as_ref().map(|(_, s)| s.label()).unwrap_or("-"),
                "mismatches": e.result.as_ref().map(|(r, _)| r.mismatches()).unwrap_or_default(),
                "error": e.result.as_ref().err().map(ToString::to_string),
                "diff": match &e.result { Ok((_, super::catalogue::SnapshotState::Changed(d))) => Some(d.clone()), _ => None },
                "steps": e.result.as_ref().map(|(r, _)| r.steps.iter().map(|s| serde_json::json!({
                    "index": s.index, "title": s.title, "expected": s.expected, "outcome": s.outcome, "mismatches": s.mismatches,
                })).collect::<Vec<_>>()).unwrap_or_default(),
            })
        })
        .collect();
    let report = serde_json::json!({
        "verifier": verifier,
        "total": entries.len(),
        "failed": entries.iter().filter(|e| e.failed()).count(),
        "scenarios": scenarios,
    });
    serde_json::to_string_pretty(&report).unwrap_or_default()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A JUnit XML report.
pub fn junit(entries: &[BatchEntry], verifier: &str) -> String {
    let failures = entries.iter().filter(|e| e.failed() && e.result.is_ok()).count();
    let errors = entries.iter().filter(|e| e.result.is_err()).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"mralab scenarios ({})\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">\n",
        xml_escape(verifier),
        entries.len()
    );
    for e in entries {
        out.push_str(&format!(
            "  <testcase classname=\"scenarios\" name=\"{}\" time=\"{:.3}\">",
            xml_escape(&e.id),
            e.elapsed.as_secs_f64()
        ));
        match &e.result {
            Err(err) => out.push_str(&format!("<error message=\"{}\"/>", xml_escape(&err.to_string()))),
            Ok(_) if e.failed() => {
                out.push_str(&format!("<failure message=\"{}\">{}</failure>", e.verdict(), xml_escape(&details(e))))
            }
            Ok(_) => {}
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("</testsuite>\n");
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::pki::KeyCache;
    use crate::scenario::login::LoginSpec;
    use crate::verifier::builtin::BuiltinFactory;
    use crate::verifier::{Family, Profile, Verifier, VerifierFactory, VerifierFault};

    /// The built-in model, except that the first verifier it is asked for panics.
    struct PanicsOnce {
        inner: BuiltinFactory,
        panicked: AtomicBool,
    }

    impl VerifierFactory for PanicsOnce {
        fn name(&self) -> String {
            self.inner.name()
        }
        fn family(&self) -> Family {
            self.inner.family()
        }
        fn make(&self) -> Result<Box<dyn Verifier>, VerifierFault> {
            if !self.panicked.swap(true, Ordering::SeqCst) {
                panic!("a verifier that panics");
            }
            self.inner.make()
        }
    }

    #[test]
    fn a_panicking_scenario_is_an_error_entry_and_the_rest_of_the_batch_runs() {
        let catalogue = Catalogue::at(&Catalogue::workspace_root());
        let files: Vec<PathBuf> = ["beyond/expired-leaf.toml", "beyond/expired-root.toml"]
            .iter()
            .map(|f| Catalogue::workspace_root().join("scenarios").join(f))
            .collect();
        let factory = PanicsOnce { inner: BuiltinFactory(Profile::ExpresswayX14_2), panicked: AtomicBool::new(false) };
        let options = RunOptions {
            verifier: &factory,
            keys: KeyCache::default(),
            login: LoginSpec::jabber(),
            fleet: crate::scenario::run::FleetTier::InProcess,
        };
        let entries = run_files(&catalogue, &files, &options, "builtin", 1, &|_, _, _| {});

        assert_eq!(entries.len(), 2);
        assert!(
            matches!(&entries[0].result, Err(BatchError::Panicked { message }) if message == "a verifier that panics"),
            "{:?}",
            entries[0].result.as_ref().err()
        );
        assert_eq!(entries[0].verdict(), "ERROR");
        assert_eq!(entries[0].expected_actual().1, "the harness panicked: a verifier that panics");
        assert!(entries[1].result.is_ok(), "{:?}", entries[1].result.as_ref().err());
        assert_eq!(entries[1].verdict(), "ok");
    }

    #[test]
    fn accept_writes_new_and_changed_snapshots_only_when_the_expectations_hold() {
        let catalogue = Catalogue::at(&Catalogue::workspace_root());
        let files = vec![Catalogue::workspace_root().join("scenarios/beyond/expired-leaf.toml")];
        let factory = BuiltinFactory(Profile::ExpresswayX14_2);
        let options = RunOptions {
            verifier: &factory,
            keys: KeyCache::default(),
            login: LoginSpec::jabber(),
            fleet: crate::scenario::run::FleetTier::InProcess,
        };
        let entry = run_files(&catalogue, &files, &options, "builtin", 1, &|_, _, _| {}).remove(0);
        let with = |state: SnapshotState, mismatch: Option<&str>| {
            let mut entry = entry.clone();
            if let Ok((run, old)) = &mut entry.result {
                *old = state;
                if let Some(m) = mismatch {
                    run.steps[0].mismatches.push(m.to_string());
                }
            }
            entry.acceptance()
        };
        assert_eq!(entry.acceptance(), Acceptance::Unchanged);
        assert_eq!(with(SnapshotState::New, None), Acceptance::Write);
        assert_eq!(with(SnapshotState::Changed("-a\n+b".into()), None), Acceptance::Write);
        assert_eq!(
            with(SnapshotState::Changed("-a\n+b".into()), Some("vcsc: expected status 502, got 200")),
            Acceptance::Refused(vec!["step 1: vcsc: expected status 502, got 200".into()])
        );
        assert!(matches!(with(SnapshotState::New, Some("x")), Acceptance::Refused(_)));
        let failed = BatchEntry { result: Err(BatchError::Panicked { message: "boom".into() }), ..entry.clone() };
        assert_eq!(failed.acceptance(), Acceptance::NoRun);
    }

    #[test]
    fn a_scenario_error_stays_typed() {
        let error = guarded::<()>(|| Err(ScenarioError::Misplaced { path: "t.toml".into() })).expect_err("an error");
        assert!(matches!(&error, BatchError::Scenario(e) if matches!(**e, ScenarioError::Misplaced { .. })));
        assert_eq!(error.to_string(), "t.toml: scenarios live in scenarios/<namespace>/<id>.toml");
    }
}
