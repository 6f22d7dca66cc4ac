//! What a mutation run found: each mutant's verdict, read from cargo-mutants' `outcomes.json`
//! and the markers the cargo shim wrote into each mutant's log; the report as text and JSON; and
//! shard reports merged into one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::equivalent::EquivalentFile;
use super::shim;

/// The report format's version (`format` in the JSON).
pub const FORMAT: u32 = 1;

/// How a mutant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A written expectation or a unit test failed with snapshots off.
    Expectation,
    /// Only a snapshot comparison failed: one careless `--accept` would bless it.
    SnapshotOnly,
    /// Nothing failed.
    Missed,
    /// The tests ran past cargo-mutants' timeout.
    Timeout,
    /// It does not build.
    Unviable,
}

impl Verdict {
    /// In the order the report lists them.
    pub const ALL: [Verdict; 5] =
        [Verdict::Expectation, Verdict::SnapshotOnly, Verdict::Missed, Verdict::Timeout, Verdict::Unviable];

    /// The column heading.
    pub fn heading(self) -> &'static str {
        match self {
            Verdict::Expectation => "expectation/unit",
            Verdict::SnapshotOnly => "snapshot-only",
            Verdict::Missed => "missed",
            Verdict::Timeout => "timeout",
            Verdict::Unviable => "unviable",
        }
    }
}

/// One mutant's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MutantResult {
    /// cargo-mutants' name: `path:line:col: description`.
    pub name: String,
    /// The module of the scope it belongs to (`chain`, `ciphers`, ...).
    pub module: String,
    /// How it ended.
    pub verdict: Verdict,
    /// Build and test time, in seconds.
    pub seconds: f64,
    /// For a timeout: the pass that ran out of time (1: snapshots off, 2: snapshots only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_in_pass: Option<u8>,
    /// For a caught mutant: the test target that failed (`scenarios`, `chain`, `lib`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caught_by: Option<String>,
}

/// The test target whose run failed in a mutant's log: the last test binary cargo ran before
/// `marker` (`Running \`.../deps/chain-0123abcd\``), named by its target (`lib` for the
/// harness's unit tests).
fn failed_target(log: &str, marker: &str) -> Option<String> {
    let before = &log[..log.find(marker)?];
    let line = before.lines().rev().find(|l| l.trim_start().starts_with("Running `") && l.contains("/deps/"))?;
    let binary = line.rsplit("/deps/").next()?.trim_end_matches('`').trim();
    let (name, hash) = binary.rsplit_once('-')?;
    if !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(if name == "harness" { "lib".to_string() } else { name.to_string() })
}

/// An entry of `mutants/equivalent.toml` that matched no mutant, or not as many as it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleEntry {
    /// The entry's mutant.
    pub mutant: String,
    /// Its reason.
    pub reason: String,
    /// How many mutants it matched.
    pub matched: usize,
}

/// A run's report, or several merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT`].
    pub format: u32,
    /// `git rev-parse HEAD` of the tree that was mutated (merged: the newest of the runs').
    pub commit: String,
    /// Merged: every run's commit, oldest first (empty for one run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<String>,
    /// The scope's files the mutants were made from (`scope::Files`: path → fingerprint).
    /// `merge` reads them again from git for a clean commit (reports written before they were
    /// recorded have none); for a run on a tree with changes, these are all there is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// cargo-mutants' version.
    pub cargo_mutants: String,
    /// The cargo profile the mutants were built in.
    pub profile: String,
    /// The modules of the scope that were selected.
    pub modules: Vec<String>,
    /// The shards this report covers (`1/4`), empty for an unsharded run.
    pub shards: Vec<String>,
    /// The rotation slice it ran (`7/120`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<String>,
    /// Wall time, in seconds (merged: the sum over the runs).
    pub seconds: f64,
    /// How many runs this report sums.
    pub runs: usize,
    /// Mutants of the selected modules excluded as equivalent.
    pub equivalent: usize,
    /// Stale entries of `mutants/equivalent.toml`.
    pub stale: Vec<StaleEntry>,
    /// Every mutant that ran.
    pub mutants: Vec<MutantResult>,
    /// Merged: mutants run again at a newer commit (the same source, newer tests), whose newer
    /// verdict replaced the older.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rechecked: Vec<Recheck>,
    /// Merged: mutants of an older run whose file has changed since but whose item (function,
    /// constant) has not (`items`): their verdicts counted, under their names at the newest
    /// commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried: Vec<String>,
    /// Merged: mutants of an older run whose item has changed since (their verdict is about
    /// other code), left out; they need running again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outdated: Vec<String>,
    /// Merged: mutants a run judged that `mutants/equivalent.toml` has listed as equivalent
    /// since; their verdicts are left out of the counts, as the run would have excluded them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub now_equivalent: Vec<String>,
    /// Merged: mutants of the scope, in files the merged runs describe as they are in the
    /// working tree, that no run judged (`mutants merge` lists them from cargo-mutants).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_run: Vec<String>,
}

/// A mutant run again at a newer commit, in a merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recheck {
    /// The mutant.
    pub name: String,
    /// Its verdict at the older commit.
    pub was: Verdict,
    /// Its verdict at the newer one, which the merged report keeps.
    pub now: Verdict,
    /// The newer commit.
    pub commit: String,
}

/// Counts per verdict.
pub type Counts = BTreeMap<Verdict, usize>;

impl Report {
    /// Counts per module (and verdict), modules in name order.
    pub fn counts(&self) -> BTreeMap<String, Counts> {
        let mut out: BTreeMap<String, Counts> = BTreeMap::new();
        for m in &self.mutants {
            *out.entry(m.module.clone()).or_default().entry(m.verdict).or_default() += 1;
        }
        out
    }

    /// Moves the verdicts of mutants that `equivalents` lists into `now_equivalent`: an entry
    /// written after a run (for a survivor found equivalent) counts without running it again.
    pub fn drop_equivalent(&mut self, equivalents: &EquivalentFile) {
        let (now, kept): (Vec<MutantResult>, Vec<MutantResult>) = std::mem::take(&mut self.mutants)
            .into_iter()
            .partition(|m| equivalents.equivalent.iter().any(|e| e.matches(&m.name)));
        self.mutants = kept;
        self.now_equivalent.extend(now.into_iter().map(|m| m.name));
        self.now_equivalent.sort();
    }

    /// Counts over every module.
    pub fn totals(&self) -> Counts {
        let mut out = Counts::new();
        for m in &self.mutants {
            *out.entry(m.verdict).or_default() += 1;
        }
        out
    }

    /// Mutants caught by an expectation or a unit test, and those the score is out of: every
    /// mutant that built and finished (caught either way, or missed).
    pub fn score(&self) -> (usize, usize) {
        let totals = self.totals();
        let n = |v| totals.get(&v).copied().unwrap_or(0);
        (n(Verdict::Expectation), n(Verdict::Expectation) + n(Verdict::SnapshotOnly) + n(Verdict::Missed))
    }

    /// Whether anything survived the expectations: a mutant missed or caught by a snapshot only.
    pub fn has_survivors(&self) -> bool {
        self.mutants.iter().any(|m| matches!(m.verdict, Verdict::Missed | Verdict::SnapshotOnly))
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let short = super::short(&self.commit);
        let runs = if self.runs > 1 { format!(" (summed over {} runs)", self.runs) } else { String::new() };
        let commits = if self.commits.len() > 1 {
            let all: Vec<&str> = self.commits.iter().map(|c| super::short(c)).collect();
            format!("commits {} (each verdict counted while its file is as at the newest)", all.join(", "))
        } else {
            format!("commit {short}")
        };
        let _ = writeln!(
            out,
            "{commits}, cargo-mutants {}, profile {}; modules {}{}{}; {}{runs}",
            self.cargo_mutants,
            self.profile,
            self.modules.join(", "),
            if self.shards.is_empty() { String::new() } else { format!("; shards {}", self.shards.join(", ")) },
            self.slice.as_ref().map(|s| format!("; rotation slice {s}")).unwrap_or_default(),
            duration(self.seconds),
        );
        let _ = writeln!(out);
        let mut header = format!("{:<12} {:>7}", "module", "mutants");
        for v in Verdict::ALL {
            let _ = write!(header, "  {:>16}", v.heading());
        }
        let _ = writeln!(out, "{header}");
        let row = |out: &mut String, name: &str, counts: &Counts| {
            let total: usize = counts.values().sum();
            let mut line = format!("{name:<12} {total:>7}");
            for v in Verdict::ALL {
                let _ = write!(line, "  {:>16}", counts.get(&v).copied().unwrap_or(0));
            }
            let _ = writeln!(out, "{line}");
        };
        for (module, counts) in self.counts() {
            row(&mut out, &module, &counts);
        }
        row(&mut out, "total", &self.totals());
        let (caught, of) = self.score();
        let percent = if of == 0 { 100.0 } else { caught as f64 * 100.0 / of as f64 };
        let _ = writeln!(
            out,
            "\ncaught by an expectation or a unit test: {caught} of {of} ({percent:.1}%; goal 95%; timeouts and \
             unviable mutants not counted)"
        );
        let _ = writeln!(out, "{} equivalent mutant(s) excluded (mutants/equivalent.toml)", self.equivalent);
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.mutants.iter().filter(|m| m.verdict == Verdict::Expectation) {
            *by.entry(m.caught_by.as_deref().unwrap_or("?")).or_default() += 1;
        }
        if !by.is_empty() {
            let mut by: Vec<(&str, usize)> = by.into_iter().collect();
            by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let list: Vec<String> = by.iter().map(|(t, n)| format!("{t} {n}")).collect();
            let _ = writeln!(out, "caught first by (test target): {}", list.join(", "));
        }
        let list = |out: &mut String, verdict: Verdict, title: &str| {
            let names: Vec<&MutantResult> = self.mutants.iter().filter(|m| m.verdict == verdict).collect();
            if names.is_empty() {
                return;
            }
            let _ = writeln!(out, "\n{title}:");
            for m in names {
                let pass = m.timeout_in_pass.map(|p| format!(" (in pass {p})")).unwrap_or_default();
                let _ = writeln!(out, "  {}{pass}", m.name);
            }
        };
        list(&mut out, Verdict::SnapshotOnly, "caught by a snapshot alone (one careless --accept would bless them)");
        list(&mut out, Verdict::Missed, "missed (nothing failed)");
        list(&mut out, Verdict::Timeout, "timeout");
        if !self.rechecked.is_empty() {
            let _ = writeln!(out, "\nrun again at a newer commit (the newer verdict is counted):");
            for r in &self.rechecked {
                let short = super::short(&r.commit);
                let _ = writeln!(out, "  {}: {} -> {} at {short}", r.name, r.was.heading(), r.now.heading());
            }
        }
        let some = |out: &mut String, names: &[String], title: &str| {
            if names.is_empty() {
                return;
            }
            let _ = writeln!(out, "\n{title}");
            for name in names.iter().take(20) {
                let _ = writeln!(out, "  {name}");
            }
            if names.len() > 20 {
                let _ = writeln!(out, "  ... and {} more (the JSON report lists them all)", names.len() - 20);
            }
        };
        let title = format!(
            "carried from an older commit, their item unchanged though their file changed: {}",
            self.carried.len()
        );
        some(&mut out, &self.carried, &title);
        let title = format!("left out: run at an older commit, their item has changed since: {}", self.outdated.len());
        some(&mut out, &self.outdated, &title);
        let title = format!(
            "left out: judged by a run, listed in mutants/equivalent.toml since: {}",
            self.now_equivalent.len()
        );
        some(&mut out, &self.now_equivalent, &title);
        let mut per_module: BTreeMap<&str, usize> = BTreeMap::new();
        for name in &self.not_run {
            *per_module.entry(super::module_of(name).map_or("?", |m| m.name)).or_default() += 1;
        }
        let per_module: Vec<String> = per_module.iter().map(|(m, n)| format!("{m} {n}")).collect();
        let title = format!(
            "not run yet (of the selection; in a merge, of the scope): {} ({})",
            self.not_run.len(),
            per_module.join(", ")
        );
        some(&mut out, &self.not_run, &title);
        if !self.stale.is_empty() {
            let _ = writeln!(out, "\nstale entries in mutants/equivalent.toml:");
            for s in &self.stale {
                let _ = writeln!(out, "  {} (matches {} mutant(s)): {}", s.mutant, s.matched, s.reason);
            }
        }
        out
    }

    /// The report as JSON, with the counts spelt out for readers that do not count.
    pub fn json(&self) -> anyhow::Result<String> {
        let mut value = serde_json::to_value(self)?;
        let counts: BTreeMap<String, BTreeMap<&str, usize>> = self
            .counts()
            .into_iter()
            .chain([("total".to_string(), self.totals())])
            .map(|(module, counts)| {
                (module, Verdict::ALL.iter().map(|v| (v.heading(), counts.get(v).copied().unwrap_or(0))).collect())
            })
            .collect();
        let (caught, of) = self.score();
        if let Some(object) = value.as_object_mut() {
            object.insert("counts".into(), serde_json::to_value(counts)?);
            object
                .insert("score".into(), serde_json::json!({ "caught_by_expectation_or_unit_test": caught, "of": of }));
        }
        Ok(serde_json::to_string_pretty(&value)?)
    }

    /// Reads a report written by [`Report::json`].
    pub fn from_json(text: &str) -> anyhow::Result<Report> {
        let report: Report = serde_json::from_str(text)?;
        if report.format != FORMAT {
            bail!("report format {} (this is format {FORMAT})", report.format);
        }
        Ok(report)
    }
}

/// `4m 12s`, `35s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, s) => format!("{h}h {m:02}m {s:02}s"),
    }
}

/// Every mutant of cargo-mutants' `outcomes.json`, judged: `log(path)` reads a log file named
/// relative to the output folder, `module(name)` names a mutant's module.
pub fn classify(
    outcomes: &str,
    log: impl Fn(&str) -> Option<String>,
    module: impl Fn(&str) -> String,
) -> anyhow::Result<Vec<MutantResult>> {
    let value: serde_json::Value = serde_json::from_str(outcomes).context("outcomes.json")?;
    let entries = value["outcomes"].as_array().context("outcomes.json has no outcomes")?;
    let mut out = Vec::new();
    for entry in entries {
        let Some(name) = entry["scenario"]["Mutant"]["name"].as_str() else { continue };
        let summary = entry["summary"].as_str().unwrap_or_default();
        let text = entry["log_path"].as_str().and_then(&log).unwrap_or_default();
        let seconds: f64 = entry["phase_results"]
            .as_array()
            .map(|phases| phases.iter().filter_map(|p| p["duration"].as_f64()).sum())
            .unwrap_or_default();
        let mut timeout_in_pass = None;
        let verdict = match summary {
            "CaughtMutant" if text.contains(shim::UNVIABLE_LATE) => Verdict::Unviable,
            "CaughtMutant" if text.contains(shim::SNAPSHOT_ONLY) => Verdict::SnapshotOnly,
            "CaughtMutant" => Verdict::Expectation,
            "MissedMutant" => Verdict::Missed,
            "Timeout" => {
                timeout_in_pass = Some(if text.contains(shim::PASS_2) { 2 } else { 1 });
                Verdict::Timeout
            }
            "Unviable" => Verdict::Unviable,
            // The mutant being judged when the run was stopped (a signal, a session's end):
            // no verdict, so it stays among the selection's mutants not run.
            "Failure" => {
                crate::out::noteln!(
                    "note: {name}: cargo-mutants says 'Failure' (the run stopped while judging it): not run"
                );
                continue;
            }
            other => bail!("{name}: cargo-mutants says '{other}', which is no verdict on a mutant"),
        };
        let caught_by = match verdict {
            Verdict::Expectation => failed_target(&text, shim::PASS_1_CAUGHT),
            Verdict::SnapshotOnly => failed_target(&text, shim::SNAPSHOT_ONLY),
            _ => None,
        };
        out.push(MutantResult {
            name: name.to_string(),
            module: module(name),
            verdict,
            seconds,
            timeout_in_pass,
            caught_by,
        });
    }
    Ok(out)
}

/// Reports merged into the score at the newest of their commits. Each report carries its files'
/// fingerprints; a mutant's verdict counts only if its file is the same at the newest commit
/// (otherwise it is listed in `outdated`): so reports of different commits merge, their tests
/// differing. A mutant in two reports of one commit is an error (the same shard twice); in
/// reports of two commits, the newer verdict is kept and the change listed in `rechecked` (a
/// survivor run again after a test was added). `newer(a, b)` says whether commit `b` descends
/// from commit `a` (`None`: git cannot say). Times are summed; shards of one `k/n` series that
/// are missing are named.
pub fn merge(
    reports: Vec<Report>,
    newer: impl Fn(&str, &str) -> Option<bool>,
    carry: impl Fn(&str, &str, &str) -> Option<String>,
) -> anyhow::Result<(Report, Vec<String>)> {
    if let Some(r) = reports.iter().find(|r| r.files.is_empty()) {
        bail!("the report of commit {} says nothing of the files it was made from", r.commit);
    }
    // Oldest commit first, so that a newer verdict replaces an older one.
    let mut commits: Vec<String> = Vec::new();
    for r in &reports {
        if commits.contains(&r.commit) {
            continue;
        }
        let mut at = commits.len();
        for (i, c) in commits.iter().enumerate() {
            match newer(&r.commit, c) {
                Some(true) => {
                    at = i;
                    break;
                }
                Some(false) => {}
                None => bail!("git cannot order commits {} and {}", r.commit, c),
            }
        }
        commits.insert(at, r.commit.clone());
    }
    for pair in commits.windows(2) {
        if newer(&pair[0], &pair[1]) != Some(true) {
            bail!("commits {} and {} are not one after the other in git's history", pair[0], pair[1]);
        }
    }
    let mut reports = reports;
    reports.sort_by_key(|r| commits.iter().position(|c| *c == r.commit));
    let Some(newest) = reports.last().map(|r| r.files.clone()) else { bail!("nothing to merge") };
    let newest_commit = commits.last().cloned().unwrap_or_default();
    let current = |files: &BTreeMap<String, String>, name: &str| {
        let file = super::scope::file_of(name);
        files.get(file).is_some_and(|hash| newest.get(file) == Some(hash))
    };
    // The merged report starts as the oldest one without its verdicts; every report's verdicts
    // then go in, oldest first, and each newer report adds its metadata.
    let Some(mut merged) = reports.first().map(|r| Report { mutants: Vec::new(), outdated: Vec::new(), ..r.clone() })
    else {
        bail!("nothing to merge")
    };
    let mut from: BTreeMap<String, String> = BTreeMap::new();
    // The mutants whose latest verdict so far was carried (a verdict judged where the file is as
    // at the newest commit takes a name out again).
    let mut carried: BTreeSet<String> = BTreeSet::new();
    for (index, mut report) in reports.into_iter().enumerate() {
        let commit = report.commit.clone();
        for m in std::mem::take(&mut report.mutants) {
            let m = if current(&report.files, &m.name) {
                carried.remove(&m.name);
                m
            } else if let Some(name) = carry(&commit, &newest_commit, &m.name) {
                carried.insert(name.clone());
                MutantResult { name, ..m }
            } else {
                merged.outdated.push(m.name);
                continue;
            };
            match from.get(&m.name) {
                Some(earlier) if *earlier == commit => {
                    bail!("{} is in two reports of commit {commit}: the same shard twice?", m.name)
                }
                Some(_) => {
                    let Some(old) = merged.mutants.iter_mut().find(|o| o.name == m.name) else { continue };
                    merged.rechecked.push(Recheck {
                        name: m.name.clone(),
                        was: old.verdict,
                        now: m.verdict,
                        commit: commit.clone(),
                    });
                    from.insert(m.name.clone(), commit.clone());
                    *old = m;
                }
                None => {
                    from.insert(m.name.clone(), commit.clone());
                    merged.mutants.push(m);
                }
            }
        }
        if index == 0 {
            continue;
        }
        merged.seconds += report.seconds;
        merged.runs += report.runs;
        // Equivalents are counted per run over its modules: added for modules new to the merge,
        // the same count again for shards of modules already in it.
        if report.modules.iter().all(|m| !merged.modules.contains(m)) {
            merged.equivalent += report.equivalent;
        } else {
            merged.equivalent = merged.equivalent.max(report.equivalent);
        }
        for module in report.modules {
            if !merged.modules.contains(&module) {
                merged.modules.push(module);
            }
        }
        merged.shards.extend(report.shards);
        for s in report.stale {
            if !merged.stale.contains(&s) {
                merged.stale.push(s);
            }
        }
        merged.commit = report.commit;
    }
    // A mutant left out at an older commit but judged at a newer one is not outdated.
    merged.outdated.retain(|name| !from.contains_key(name));
    merged.carried = carried.into_iter().collect();
    merged.outdated.sort();
    merged.outdated.dedup();
    merged.files = newest;
    merged.commits = if commits.len() > 1 { commits } else { Vec::new() };
    merged.slice = None;
    let missing = missing_shards(&merged.shards);
    Ok((merged, missing))
}

/// The shards of `k/n` series that `shards` lacks.
fn missing_shards(shards: &[String]) -> Vec<String> {
    let mut series: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for shard in shards {
        if let Some((k, n)) = shard.split_once('/').and_then(|(k, n)| Some((k.parse().ok()?, n.parse().ok()?))) {
            series.entry(n).or_default().insert(k);
        }
    }
    series
        .iter()
        .flat_map(|(n, have)| (1..=*n).filter(|k| !have.contains(k)).map(move |k| format!("{k}/{n}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: &str, summary: &str, log: &str) -> serde_json::Value {
        serde_json::json!({
            "scenario": { "Mutant": { "name": name } },
            "summary": summary,
            "log_path": log,
            "phase_results": [{ "phase": "Build", "duration": 10.5 }, { "phase": "Test", "duration": 4.5 }],
        })
    }

    fn report(mutants: Vec<MutantResult>, shard: &str, seconds: f64) -> Report {
        Report {
            format: FORMAT,
            commit: "abc".into(),
            commits: vec![],
            files: [("a".to_string(), "1".to_string()), ("b".into(), "1".into()), ("c".into(), "1".into())].into(),
            cargo_mutants: "27.1.0".into(),
            profile: "mutants".into(),
            modules: vec!["name".into()],
            shards: vec![shard.into()],
            slice: None,
            seconds,
            runs: 1,
            equivalent: 2,
            stale: vec![],
            mutants,
            rechecked: vec![],
            carried: vec![],
            outdated: vec![],
            now_equivalent: vec![],
            not_run: vec![],
        }
    }

    /// Commits in a line: `b` descends from `a` when it sorts after it.
    fn line(a: &str, b: &str) -> Option<bool> {
        Some(a < b)
    }

    /// No item is unchanged: a changed file outdates every verdict on it.
    fn no_carry(_: &str, _: &str, _: &str) -> Option<String> {
        None
    }

    fn result(name: &str, verdict: Verdict) -> MutantResult {
        MutantResult {
            name: name.into(),
            module: "name".into(),
            verdict,
            seconds: 1.0,
            timeout_in_pass: None,
            caught_by: None,
        }
    }

    #[test]
    fn a_verdict_listed_as_equivalent_since_is_left_out_of_the_counts() {
        let equivalents = EquivalentFile::parse(
            "[[equivalent]]\nmutant = \"x.rs:1:1: replace | with ^ in f\"\nreason = \"disjoint bits\"\n",
        )
        .expect("an equivalent file");
        let mut merged = report(
            vec![
                result("x.rs:1:1: replace | with ^ in f", Verdict::Missed),
                result("x.rs:2:1: replace & with ^ in f", Verdict::Expectation),
            ],
            "1/1",
            1.0,
        );
        merged.drop_equivalent(&equivalents);
        assert_eq!(merged.now_equivalent, ["x.rs:1:1: replace | with ^ in f"]);
        assert_eq!(merged.score(), (1, 1));
        assert!(merged.text().contains("listed in mutants/equivalent.toml since: 1"), "{}", merged.text());
    }

    #[test]
    fn verdicts_come_from_cargo_mutants_and_the_shims_markers() {
        let outcomes = serde_json::json!({ "outcomes": [
            { "scenario": "Baseline", "summary": "Success", "log_path": "log/baseline.log", "phase_results": [] },
            outcome("a.rs:1:1: caught", "CaughtMutant", "log/a.log"),
            outcome("a.rs:2:1: snapshot", "CaughtMutant", "log/b.log"),
            outcome("a.rs:3:1: missed", "MissedMutant", "log/c.log"),
            outcome("a.rs:4:1: slow", "Timeout", "log/d.log"),
            outcome("a.rs:5:1: broken", "Unviable", "log/e.log"),
        ]});
        let logs = |path: &str| {
            Some(match path {
                "log/a.log" => format!(
                    "     Running `/t/debug/deps/scenarios-8fde3d4a`\n     Running `/t/debug/deps/harness-4397`\n\
                     test result: FAILED.\n{}\n",
                    shim::PASS_1_CAUGHT
                ),
                "log/b.log" => format!("{}\n{}\n", shim::PASS_2, shim::SNAPSHOT_ONLY),
                "log/d.log" => format!("{}\n", shim::PASS_2),
                _ => String::new(),
            })
        };
        let results = classify(&outcomes.to_string(), logs, |_| "a".into()).expect("classified");
        let verdicts: Vec<Verdict> = results.iter().map(|r| r.verdict).collect();
        assert_eq!(verdicts, Verdict::ALL);
        assert_eq!(results[0].seconds, 15.0);
        assert_eq!(results[3].timeout_in_pass, Some(2));
        assert_eq!(results[0].caught_by.as_deref(), Some("lib"), "the last test binary run before the marker");
        assert_eq!(results[1].caught_by, None, "no test binary named in its log");
        assert_eq!(results[2].caught_by, None);
        // A test target that does not build in the test phase: cargo-mutants saw a failure, but
        // the mutant is unviable, not caught.
        let late = serde_json::json!({ "outcomes": [outcome("a.rs:6:1: late", "CaughtMutant", "log/f.log")] });
        let late_log = |_: &str| Some(format!("{}\n", shim::UNVIABLE_LATE));
        let late = classify(&late.to_string(), late_log, |_| "a".into()).expect("classified");
        assert_eq!(late[0].verdict, Verdict::Unviable);
        let strange = serde_json::json!({ "outcomes": [outcome("a.rs:1:1: x", "Success", "log/a.log")] });
        assert!(classify(&strange.to_string(), |_| None, |_| "a".into()).is_err());
        // The mutant a stopped run was judging has no verdict: it is left to the not-run list.
        let stopped = serde_json::json!({ "outcomes": [outcome("a.rs:7:1: stopped", "Failure", "log/g.log")] });
        assert!(classify(&stopped.to_string(), |_| None, |_| "a".into()).expect("classified").is_empty());
    }

    #[test]
    fn the_score_counts_expectations_out_of_every_finished_mutant() {
        let r = report(
            vec![
                result("a", Verdict::Expectation),
                result("b", Verdict::Expectation),
                result("c", Verdict::SnapshotOnly),
                result("d", Verdict::Missed),
                result("e", Verdict::Timeout),
                result("f", Verdict::Unviable),
            ],
            "1/2",
            70.0,
        );
        assert_eq!(r.score(), (2, 4));
        assert!(r.has_survivors());
        let text = r.text();
        assert!(text.contains("caught by an expectation or a unit test: 2 of 4 (50.0%"), "{text}");
        assert!(text.contains("caught by a snapshot alone") && text.contains("\n  c\n"), "{text}");
        assert!(text.contains("missed (nothing failed):\n  d\n"), "{text}");
        assert!(text.contains("1m 10s"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&r.json().expect("json")).expect("parses");
        assert_eq!(json["counts"]["total"]["snapshot-only"], 1);
        assert_eq!(json["score"]["of"], 4);
        assert_eq!(Report::from_json(&r.json().expect("json")).expect("reads back"), r);
    }

    #[test]
    fn shards_merge_with_their_times_summed_and_the_missing_ones_named() {
        let a = report(vec![result("a", Verdict::Expectation)], "1/3", 100.0);
        let b = report(vec![result("b", Verdict::Missed)], "3/3", 50.0);
        let (merged, missing) = merge(vec![a.clone(), b], line, no_carry).expect("merges");
        assert_eq!(merged.seconds, 150.0);
        assert_eq!(merged.runs, 2);
        assert_eq!(merged.mutants.len(), 2);
        assert_eq!(missing, ["2/3"]);
        assert!(merged.commits.is_empty() && merged.rechecked.is_empty());
        assert!(merged.text().contains("summed over 2 runs"));
        assert!(
            merge(vec![a.clone(), a.clone()], line, no_carry).expect_err("twice").to_string().contains("two reports")
        );
        assert!(merge(vec![], line, no_carry).is_err());
    }

    #[test]
    fn runs_of_one_scope_at_different_commits_merge_and_the_newer_verdict_counts() {
        let older = |shard| Report { commit: "c1".into(), ..report(vec![], shard, 10.0) };
        let shard1 =
            Report { mutants: vec![result("a", Verdict::Missed), result("b", Verdict::Expectation)], ..older("1/2") };
        let shard2 = Report { mutants: vec![result("c", Verdict::SnapshotOnly)], ..older("2/2") };
        // A re-check of the survivors after tests were added: no shard.
        let mut recheck = report(vec![result("a", Verdict::Expectation), result("c", Verdict::Expectation)], "", 5.0);
        recheck.commit = "c2".into();
        recheck.shards.clear();
        // The order given does not matter: git's history orders them.
        let (merged, missing) =
            merge(vec![recheck.clone(), shard2.clone(), shard1.clone()], line, no_carry).expect("merges");
        assert!(missing.is_empty(), "{missing:?}");
        assert_eq!(merged.commit, "c2");
        assert_eq!(merged.commits, ["c1", "c2"]);
        assert_eq!(merged.mutants.len(), 3);
        assert_eq!(merged.score(), (3, 3));
        assert_eq!(merged.rechecked.len(), 2);
        assert_eq!((merged.rechecked[0].was, merged.rechecked[0].now), (Verdict::Missed, Verdict::Expectation));
        let text = merged.text();
        assert!(text.contains("commits c1, c2 (each verdict counted"), "{text}");
        assert!(text.contains("a: missed -> expectation/unit at c2"), "{text}");
        assert_eq!(Report::from_json(&merged.json().expect("json")).expect("reads back"), merged);
        // A file changed since: its mutants' older verdicts are left out, the others still count.
        let mut changed = recheck.clone();
        changed.files.insert("c".into(), "2".into());
        let (merged, _) = merge(vec![shard1.clone(), shard2.clone(), changed.clone()], line, no_carry).expect("merges");
        assert_eq!(merged.outdated, Vec::<String>::new(), "c was judged again at the newer commit");
        assert_eq!(merged.mutants.len(), 3);
        changed.mutants.retain(|m| m.name == "a");
        let (merged, _) = merge(vec![shard1.clone(), shard2.clone(), changed], line, no_carry).expect("merges");
        assert_eq!(merged.outdated, ["c"]);
        assert_eq!(merged.mutants.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(merged.text().contains("left out: run at an older commit, their item has changed since: 1\n  c\n"));
        let unknown = Report { files: BTreeMap::new(), ..recheck.clone() };
        assert!(merge(vec![shard1.clone(), unknown], line, no_carry).is_err());
        // Commits git cannot order.
        assert!(merge(vec![shard1.clone(), recheck.clone()], |_, _| None, no_carry).is_err());
        assert!(merge(vec![shard1, recheck], |_, _| Some(false), no_carry).is_err());
    }

    #[test]
    fn a_verdict_in_an_unchanged_item_is_carried_to_its_name_at_the_newest_commit() {
        let at = |commit: &str, files: &str, mutants| Report {
            commit: commit.into(),
            files: [("x.rs".to_string(), files.to_string())].into(),
            ..report(mutants, "", 10.0)
        };
        let old =
            at("c1", "1", vec![result("x.rs:10:5: a", Verdict::Expectation), result("x.rs:40:5: b", Verdict::Missed)]);
        // At c2, x.rs changed: a's item moved down three lines, b's item changed.
        let new = at("c2", "2", vec![result("x.rs:90:1: fresh", Verdict::Expectation)]);
        let carry = |from: &str, to: &str, name: &str| {
            assert_eq!((from, to), ("c1", "c2"));
            (name == "x.rs:10:5: a").then(|| "x.rs:13:5: a".to_string())
        };
        let (merged, _) = merge(vec![new.clone(), old.clone()], line, carry).expect("merges");
        let names: Vec<&str> = merged.mutants.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["x.rs:13:5: a", "x.rs:90:1: fresh"]);
        assert_eq!(merged.carried, ["x.rs:13:5: a"]);
        assert_eq!(merged.outdated, ["x.rs:40:5: b"]);
        let text = merged.text();
        assert!(
            text.contains("carried from an older commit, their item unchanged though their file changed: 1"),
            "{text}"
        );
        // Judged again at the newest commit: the newer verdict, and it is not carried.
        let again = at("c2", "2", vec![result("x.rs:13:5: a", Verdict::Missed)]);
        let (merged, _) = merge(vec![new.clone(), old.clone(), again.clone()], line, carry).expect("merges");
        assert!(merged.carried.is_empty(), "{:?}", merged.carried);
        assert_eq!(merged.rechecked.len(), 1);
        assert_eq!(merged.mutants.iter().find(|m| m.name == "x.rs:13:5: a").map(|m| m.verdict), Some(Verdict::Missed));
        // ... or at a commit between, whose file is already the newest's: not carried either.
        let carry_to_c3 = |from: &str, _: &str, name: &str| {
            (from == "c1" && name == "x.rs:10:5: a").then(|| "x.rs:13:5: a".to_string())
        };
        let newest = at("c3", "2", vec![]);
        let (merged, _) = merge(vec![newest, again, old], line, carry_to_c3).expect("merges");
        assert!(merged.carried.is_empty(), "{:?}", merged.carried);
        assert_eq!(merged.commit, "c3");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration(35.2), "35s");
        assert_eq!(duration(252.0), "4m 12s");
        assert_eq!(duration(3723.0), "1h 02m 03s");
    }
}
