//! `cargo xtask scenarios`: run the catalogue, compare with snapshots, report.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::out::{note, noteln, outln};
use anyhow::{Context as _, bail};
use clap::Args;
use harness::pki::KeyCache;
use harness::scenario::batch::{self, Acceptance, BatchEntry};
use harness::scenario::login::LoginSpec;
use harness::scenario::run::FleetTier;
use harness::scenario::{Catalogue, RunOptions};
use harness::verifier::{VerifierFactory, VerifierSpec};

#[derive(Debug, Args)]
pub struct ScenariosArgs {
    /// Only scenarios whose id contains this (`*` matches anything): `seed::`, `*expired*`.
    pattern: Option<String>,
    /// List the scenarios with their titles and stop.
    #[arg(long)]
    list: bool,
    /// Write changed and new snapshots. A scenario whose written expectations fail keeps its
    /// old snapshot (the built-in model and the traffic server, whose expectations are written):
    /// the failed expectations are listed and the run exits 1.
    #[arg(long)]
    accept: bool,
    /// The verifier: `builtin` (the model, in --profile), `builtin:<profile>`, `ats` (the real
    /// Apache Traffic Server, `apt-get install trafficserver`, run as root), `ats:8.1` or `ats:9.2`
    /// (ATS 8.1 + OpenSSL 1.1.1 or ATS 9.2 + OpenSSL 3.0 in a container, as root; `cargo xtask
    /// images` builds them), or `cmd:<path>` (an external command speaking the adapters' JSON-lines protocol, e.g. `cmd:adapters/curl.sh`).
    #[arg(long, default_value = "builtin")]
    verifier: String,
    /// Run the catalogue once per verifier and print one table, a column per verifier:
    /// `--matrix builtin:expressway-x14.2,builtin:ats-9.2,cmd:adapters/curl.sh`. Reports
    /// (`--report`) then hold the matrix; snapshots are neither compared nor written.
    #[arg(long, value_name = "LIST")]
    matrix: Option<String>,
    /// The differential check: run --verifier and this verifier over the catalogue and list
    /// where they differ (verdict, error and depth, name-check line, number of lines, status),
    /// against the known divergences in `divergences/<verifier>--<this>.toml`:
    /// `--verifier ats --compare builtin:ats-9.2`.
    #[arg(long, value_name = "VERIFIER", conflicts_with = "matrix")]
    compare: Option<String>,
    /// Where the fleet's nodes run: `in-process` (this process, each node on its own
    /// `127.x.y.z`) or `containers` (a `mralab/node` container per node on its modelled address,
    /// `10.48.36.215`, sharing one private network namespace with the traffic server; needs
    /// --verifier ats:8.1 or ats:9.2, root, and `cargo xtask images`). The snapshots are the
    /// verifier's own, the same in both tiers.
    #[arg(long, default_value = "in-process", value_parser = ["in-process", "containers"])]
    fleet: String,
    /// The built-in model's profile: expressway-x14.2 or ats-9.2.
    #[arg(long, default_value = "expressway-x14.2")]
    profile: String,
    /// Write a report: `--report md|json|junit|html PATH`.
    #[arg(long, num_args = 2, value_names = ["FORMAT", "PATH"], action = clap::ArgAction::Append)]
    report: Vec<String>,
    /// Run one slice, as nextest counts: `--partition 2/4` runs the 2nd of every 4.
    #[arg(long)]
    partition: Option<String>,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Write each scenario's traffic as a decrypted Wireshark capture, `DIR/<namespace>--<id>.pcapng`:
    /// every TCP connection between the verifier and the nodes, modelled addresses, the TLS
    /// secrets inside (no key-log file needed). With `--report html`, the report links them.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["matrix", "compare"])]
    pcap: Option<PathBuf>,
    /// The workspace whose scenarios/ and snapshots/ to use (default: this one).
    #[arg(long)]
    root: Option<PathBuf>,
}

fn matches(pattern: &str, id: &str) -> bool {
    if !pattern.contains('*') {
        return id.contains(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut at = 0;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        match id[at..].find(part) {
            Some(found) if i > 0 || found == 0 => at += found + part.len(),
            _ => return false,
        }
    }
    parts.last().is_none_or(|last| last.is_empty() || id.ends_with(last))
}

fn partition(spec: &str) -> anyhow::Result<(usize, usize)> {
    let (k, n) = spec.split_once('/').context("--partition takes k/n, e.g. 1/3")?;
    let (k, n): (usize, usize) = (k.parse().context("--partition k")?, n.parse().context("--partition n")?);
    if n == 0 || k == 0 || k > n {
        bail!("--partition {spec}: k must be from 1 to n");
    }
    Ok((k, n))
}

/// `files` without the scenarios one of `verifiers` cannot run (a pinned clock and the real
/// traffic server, which reads the real one), each named on stderr. A file that does not load
/// stays: its run reports why.
fn runnable(
    catalogue: &Catalogue,
    files: Vec<PathBuf>,
    verifiers: &[&dyn VerifierFactory],
) -> anyhow::Result<Vec<PathBuf>> {
    let mut kept = Vec::new();
    for file in files {
        let refusal =
            catalogue.load(&file).ok().and_then(|scenario| verifiers.iter().find_map(|v| scenario.runs_on(*v).err()));
        match refusal {
            Some(why) => noteln!("skipped: {why}"),
            None => kept.push(file),
        }
    }
    if kept.is_empty() {
        bail!("no scenario left that these verifiers can run");
    }
    Ok(kept)
}

/// The verifier named on the command line (a bare `builtin` takes `--profile`), and the
/// snapshot folder it uses.
pub fn factory(verifier: &str, profile: &str) -> anyhow::Result<(Box<dyn VerifierFactory>, String)> {
    let spec: VerifierSpec =
        if verifier == "builtin" { format!("builtin:{profile}").parse()? } else { verifier.parse()? };
    let factory = spec.factory()?;
    factory.preflight()?;
    Ok((factory, spec.snapshot_dir()))
}

pub fn run(args: ScenariosArgs) -> anyhow::Result<ExitCode> {
    let root = args.root.clone().unwrap_or_else(Catalogue::workspace_root);
    let catalogue = Catalogue::at(&root);
    let mut files = catalogue.files()?;
    if let Some(pattern) = &args.pattern {
        files.retain(|f| catalogue.id_of(f).is_some_and(|id| matches(pattern, &id)));
    }
    if let Some(spec) = &args.partition {
        let (k, n) = partition(spec)?;
        files = files.into_iter().enumerate().filter(|(i, _)| i % n == k - 1).map(|(_, f)| f).collect();
    }
    if files.is_empty() {
        bail!("no scenario matches{}", args.pattern.as_ref().map(|p| format!(" '{p}'")).unwrap_or_default());
    }
    if args.list {
        for file in &files {
            match catalogue.load(file) {
                Ok(s) => outln!("{:<48} {}", s.id, s.summary())?,
                Err(e) => outln!("{:<48} (cannot load: {e})", catalogue.id_of(file).unwrap_or_default())?,
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let login_path = root.join("scenarios").join("jabber-login.toml");
    let login: LoginSpec = toml::from_str(
        &std::fs::read_to_string(&login_path).with_context(|| format!("reading {}", login_path.display()))?,
    )
    .with_context(|| format!("{}", login_path.display()))?;
    let threads = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    if args.fleet == "containers" && (args.matrix.is_some() || args.compare.is_some()) {
        bail!(
            "--fleet containers runs one verifier against its snapshots; --matrix and --compare use the in-process fleet"
        );
    }
    if let Some(list) = &args.matrix {
        return matrix(&args, list, &catalogue, &files, &login, threads);
    }
    if let Some(other) = &args.compare {
        return compare(&args, other, &root, &catalogue, &files, &login, threads);
    }
    let (verifier, snapshot_dir) = factory(&args.verifier, &args.profile)?;
    let files = runnable(&catalogue, files, &[verifier.as_ref()])?;
    let fleet = if args.fleet == "containers" {
        if !verifier.reaches_container_fleet() {
            bail!(
                "--fleet containers: {} cannot reach a container fleet; use --verifier ats:8.1 or ats:9.2",
                verifier.name()
            );
        }
        // The image's recipe covers the node program: build it first, so a stale image is found.
        crate::images::build_program(harness::container::image::NODE_PROGRAM)?;
        harness::container::image::NODE.check_built()?;
        FleetTier::Containers
    } else {
        FleetTier::InProcess
    };
    let options = RunOptions { verifier: verifier.as_ref(), keys: KeyCache::default(), login, fleet };
    let tty = std::io::stderr().is_terminal();
    let progress = |done: usize, total: usize, entry: &BatchEntry| {
        if tty {
            note!("\r\x1b[K[{done}/{total}] {} {}", entry.verdict(), entry.id);
        } else {
            noteln!("[{done}/{total}] {} {} ({} ms)", entry.verdict(), entry.id, entry.elapsed.as_millis());
        }
    };
    let start = std::time::Instant::now();
    let entries =
        batch::run_files_with(&catalogue, &files, &options, &snapshot_dir, threads, args.pcap.is_some(), &progress);
    if tty {
        noteln!();
    }
    if let Some(dir) = &args.pcap {
        let (written, connections) = write_captures(dir, &entries)?;
        outln!(
            "captures: {written} pcapng file(s), {connections} TCP connection(s), in {} (TLS secrets inside: wireshark or tshark -r)",
            dir.display()
        )?;
    }
    // On failure the table shows what failed; a passing run shows every scenario.
    let any_failed = entries.iter().any(BatchEntry::failed);
    let shown: Vec<BatchEntry> = entries.iter().filter(|e| !any_failed || e.failed()).cloned().collect();
    outln!("\n{}", batch::table(&shown))?;
    if any_failed && shown.len() < entries.len() {
        outln!("(and {} more scenario(s) ok)", entries.len() - shown.len())?;
    }

    let mut written = 0;
    let mut refused = Vec::new();
    for entry in entries.iter().filter(|_| args.accept) {
        let Ok((run, _)) = &entry.result else { continue };
        let path = catalogue.snapshot_path(&snapshot_dir, &run.id);
        match entry.acceptance() {
            Acceptance::Write => {
                catalogue
                    .write_snapshot(&path, &run.snapshot)
                    .with_context(|| format!("writing {}", path.display()))?;
                written += 1;
            }
            Acceptance::Refused(mismatches) => refused.push((entry, path, mismatches)),
            Acceptance::Unchanged | Acceptance::NoRun => {}
        }
    }
    let failed: Vec<&BatchEntry> = entries
        .iter()
        .filter(|e| match &e.result {
            Ok((run, _)) if args.accept => !run.mismatches().is_empty(),
            _ => e.failed(),
        })
        .collect();
    for entry in &failed {
        outln!("--- {} ({})\n{}\n", entry.id, entry.verdict(), batch::details(entry))?;
    }
    for (entry, path, mismatches) in &refused {
        outln!(
            "NOT WRITTEN {}: {} does not meet its written expectations:\n  {}\n",
            path.display(),
            entry.id,
            mismatches.join("\n  ")
        )?;
    }
    for pair in args.report.chunks(2) {
        let [format, path] = pair else { continue };
        let text = match format.as_str() {
            "md" => batch::markdown(&entries, &verifier.name()),
            "json" => batch::json(&entries, &verifier.name()),
            "junit" => batch::junit(&entries, &verifier.name()),
            "html" => harness::scenario::html::report_with_captures(
                &entries,
                &verifier.name(),
                args.pcap.as_deref().map(|dir| capture_link_base(dir, std::path::Path::new(path))).as_deref(),
                &alert_divergences(&root)?,
            ),
            other => bail!("unknown report format '{other}'; use md, json, junit or html"),
        };
        std::fs::write(path, text).with_context(|| format!("writing report {path}"))?;
        outln!("report: {path} ({format})")?;
    }
    outln!(
        "{} scenarios with {} in {:.2} s: {} passed, {} failed{}",
        entries.len(),
        verifier.name(),
        start.elapsed().as_secs_f64(),
        entries.len() - failed.len(),
        failed.len(),
        if args.accept {
            let refused = if refused.is_empty() {
                String::new()
            } else {
                format!(", {} refused (written expectations fail)", refused.len())
            };
            format!(", {written} snapshot(s) written{refused}")
        } else {
            String::new()
        }
    )?;
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Every known divergence of an alert, from all of `divergences/*.toml`: the report shows them
/// beside the model's alerts in captures.
fn alert_divergences(root: &std::path::Path) -> anyhow::Result<Vec<harness::scenario::compare::Known>> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(root.join("divergences")) else { return Ok(out) };
    let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        let known = harness::scenario::compare::load_known(path)?;
        out.extend(known.into_iter().filter(|k| k.field == "alert"));
    }
    Ok(out)
}

/// Writes each run's capture into `dir`; returns how many, and their TCP connections.
fn write_captures(dir: &std::path::Path, entries: &[BatchEntry]) -> anyhow::Result<(usize, usize)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (mut written, mut connections) = (0, 0);
    for entry in entries {
        let Ok((run, _)) = &entry.result else { continue };
        let Some(capture) = &run.capture else { continue };
        capture.write(&dir.join(harness::capture::file_name(&run.id)))?;
        written += 1;
        connections += capture.connections();
    }
    Ok((written, connections))
}

/// How the HTML report at `report` reaches the captures in `dir`: relative when the report
/// sits above or beside them, else the absolute path.
fn capture_link_base(dir: &std::path::Path, report: &std::path::Path) -> String {
    let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let dir = absolute(dir);
    let report_dir = absolute(report).parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    match dir.strip_prefix(&report_dir) {
        Ok(relative) if relative.as_os_str().is_empty() => ".".to_owned(),
        Ok(relative) => relative.display().to_string(),
        Err(_) => dir.display().to_string(),
    }
}

/// `--matrix`: every verifier over the same scenarios, one table.
fn matrix(
    args: &ScenariosArgs,
    list: &str,
    catalogue: &Catalogue,
    files: &[PathBuf],
    login: &LoginSpec,
    threads: usize,
) -> anyhow::Result<ExitCode> {
    let factories: Vec<Box<dyn VerifierFactory>> = list
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| factory(v, &args.profile).map(|(f, _)| f))
        .collect::<anyhow::Result<_>>()?;
    if factories.len() < 2 {
        bail!("--matrix wants at least two verifiers, comma-separated");
    }
    let refs: Vec<&dyn VerifierFactory> = factories.iter().map(|f| f.as_ref()).collect();
    let files = &runnable(catalogue, files.to_vec(), &refs)?;
    let tty = std::io::stderr().is_terminal();
    let progress = |verifier: &str, done: usize, total: usize| {
        if tty {
            note!("\r\x1b[K[{done}/{total}] {verifier}");
        } else if done == total {
            noteln!("[{done}/{total}] {verifier}");
        }
    };
    let start = std::time::Instant::now();
    let matrix =
        harness::scenario::matrix::run_matrix(catalogue, files, &refs, &KeyCache::default(), login, threads, &progress);
    if tty {
        noteln!();
    }
    outln!("{}", matrix.table(48))?;
    for pair in args.report.chunks(2) {
        let [format, path] = pair else { continue };
        let text = match format.as_str() {
            "md" => matrix.markdown(),
            "json" => matrix.json(),
            "junit" => matrix.junit(),
            other => bail!("unknown report format '{other}'; use md, json or junit"),
        };
        std::fs::write(path, text).with_context(|| format!("writing report {path}"))?;
        outln!("report: {path} ({format})")?;
    }
    outln!(
        "{} scenarios x {} verifiers in {:.2} s: {} rows, {} disagreement(s) (marked ≠){}",
        files.len(),
        refs.len(),
        start.elapsed().as_secs_f64(),
        matrix.rows.len(),
        matrix.disagreements(),
        if matrix.faulted() { "; a verifier faulted: see the `fault` cells" } else { "" }
    )?;
    Ok(if matrix.faulted() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `--compare`: the differential check between two verifiers.
fn compare(
    args: &ScenariosArgs,
    other: &str,
    root: &std::path::Path,
    catalogue: &Catalogue,
    files: &[std::path::PathBuf],
    login: &LoginSpec,
    threads: usize,
) -> anyhow::Result<ExitCode> {
    let (left, _) = factory(&args.verifier, &args.profile)?;
    let (right, _) = factory(other, &args.profile)?;
    // ATS 9.2 in its container is the host's traffic server: the same snapshots, the same
    // known divergences.
    let file_name = |name: String| if name == "ats:9.2" { "ats".to_string() } else { name.replace(':', "-") };
    let known_path =
        root.join("divergences").join(format!("{}--{}.toml", file_name(left.name()), file_name(right.name())));
    let known = harness::scenario::compare::load_known(&known_path)?;
    let progress = |name: &str, done: usize, total: usize| noteln!("[{name} {done}/{total}]");
    let refs: Vec<&dyn VerifierFactory> = vec![left.as_ref(), right.as_ref()];
    let files = &runnable(catalogue, files.to_vec(), &refs)?;
    let matrix =
        harness::scenario::matrix::run_matrix(catalogue, files, &refs, &KeyCache::default(), login, threads, &progress);
    let ids: std::collections::BTreeSet<String> = files.iter().filter_map(|f| catalogue.id_of(f)).collect();
    let result = harness::scenario::compare::compare(&matrix, &known, &ids);
    outln!(
        "{} against {}: {} requests in {} scenarios compared ({})",
        left.name(),
        right.name(),
        result.requests,
        ids.len(),
        known_path.display()
    )?;
    for d in &result.unexpected {
        outln!(
            "DIFFERS {} | {} | {}\n  {}: {}\n  {}: {}",
            d.scenario,
            d.request,
            d.field,
            left.name(),
            d.left,
            right.name(),
            d.right
        )?;
    }
    for k in &result.stale {
        outln!("STALE   {} | {} | {}: no longer diverges ({})", k.scenario, k.request, k.field, k.reason)?;
    }
    outln!(
        "{} unexpected difference(s), {} known divergence(s) seen, {} stale",
        result.unexpected.len(),
        result.known.len(),
        result.stale.len()
    )?;
    if matrix.faulted() {
        outln!("a verifier faulted: run the scenarios with each verifier alone to see why")?;
        return Ok(ExitCode::FAILURE);
    }
    Ok(if result.passes() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_match_substrings_and_wildcards() {
        assert!(matches("seed::", "seed::tftp-self-signed-ecdsa"));
        assert!(matches("*self-signed*", "seed::tftp-self-signed-ecdsa"));
        assert!(matches("seed::*ecdsa", "seed::tftp-self-signed-ecdsa"));
        assert!(!matches("beyond::*", "seed::tftp-self-signed-ecdsa"));
    }
}
