//! `cargo xtask mutants`: mutation testing of the verifier model with cargo-mutants, each mutant
//! judged twice (see `shim`): caught by a written expectation or a unit test, caught by a
//! snapshot alone, missed, timeout or unviable.
//!
//! The one xtask command with logic of its own: it is tooling around cargo-mutants, not a model
//! of anything, so its parts live here rather than in `harness`. `tool`: cargo-mutants found,
//! installed and asked for the scope's mutants; `equivalent`: the file of equivalent mutants;
//! `report`: verdicts, the report, merging shards; `shim`: the `cargo` cargo-mutants calls.
//!
//! cargo-mutants copies the tree to a temporary folder (never `--in-place`) and builds there
//! into this workspace's target folder (`$CARGO_TARGET_DIR` or `target/`), in the `mutants`
//! profile by default (`target/mutants/`: the test profile without debug information, built
//! once, apart from `target/debug`), one mutant at a time.

pub mod equivalent;
pub mod items;
pub mod report;
pub mod scope;
pub mod shim;
mod tool;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use crate::out::{noteln, outln};
use equivalent::EquivalentFile;
use report::{Report, StaleEntry};
use tool::{cargo_mutants, list, tool_version};

/// The cargo-mutants version this wrapper is written against (outcomes.json, names, options);
/// `--install` installs it.
pub const CARGO_MUTANTS_VERSION: &str = "27.1.0";

/// A module of the scope: the verifier model.
#[derive(Debug, Clone, Copy)]
pub struct Module {
    /// Its name on the command line.
    pub name: &'static str,
    /// Its files: a file, or a folder (ending in `/`) whose `.rs` files all belong to it.
    pub paths: &'static [&'static str],
    /// Files and folders under `paths` that are not the model, written the same way.
    pub except: &'static [&'static str],
}

/// The scope: the verifier model, module by module. `chain/generate/` (the proptest generator
/// of test chains) and `chain/oracle.rs` (the protocol to the real OpenSSL programs) live beside
/// the model but are test equipment: a mutant there changes which chains are tried or how a
/// verdict is carried, never what the model decides.
pub const SCOPE: [Module; 6] = [
    Module {
        name: "chain",
        paths: &["harness/src/chain.rs", "harness/src/chain/"],
        except: &["harness/src/chain/generate/", "harness/src/chain/oracle.rs"],
    },
    Module { name: "name", paths: &["harness/src/verifier/name.rs"], except: &[] },
    Module {
        name: "builtin",
        paths: &["harness/src/verifier/builtin.rs", "harness/src/verifier/builtin/"],
        except: &[],
    },
    Module { name: "log", paths: &["harness/src/verifier/log.rs", "harness/src/verifier/log/"], except: &[] },
    Module { name: "expressway", paths: &["harness/src/expressway.rs", "harness/src/expressway/"], except: &[] },
    Module { name: "ciphers", paths: &["harness/src/ciphers/"], except: &[] },
];

/// Whether `path` is the file `pattern`, or a `.rs` file under the folder `pattern` (ending in `/`).
fn matches(pattern: &str, path: &str) -> bool {
    if pattern.ends_with('/') { path.starts_with(pattern) && path.ends_with(".rs") } else { path == pattern }
}

/// `pattern` as a cargo-mutants glob.
fn glob(pattern: &str) -> String {
    if pattern.ends_with('/') { format!("{pattern}**/*.rs") } else { pattern.to_string() }
}

impl Module {
    /// Whether the file `path` (relative to the workspace) belongs to it.
    pub fn owns(&self, path: &str) -> bool {
        self.paths.iter().any(|p| matches(p, path)) && !self.except.iter().any(|p| matches(p, path))
    }

    /// cargo-mutants `--file` globs.
    fn globs(&self) -> Vec<String> {
        self.paths.iter().map(|p| glob(p)).collect()
    }

    /// cargo-mutants `--exclude` globs.
    fn exclude_globs(&self) -> Vec<String> {
        self.except.iter().map(|p| glob(p)).collect()
    }
}

/// The module a mutant (`path:line:col: description`) belongs to.
pub fn module_of(name: &str) -> Option<&'static Module> {
    let path = name.split(':').next().unwrap_or_default();
    SCOPE.iter().find(|m| m.owns(path))
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MutantsArgs {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Merge reports (`--json` of each run) into one, with the summed time:
    /// `mutants merge mutants/runs/*.json --json all.json`. Runs of different commits merge
    /// when the model's source (the scope) is the same; a mutant run again at a newer commit
    /// keeps the newer verdict. Exit 1 when a shard of a k/n series is missing or an
    /// equivalent entry is stale.
    Merge {
        /// The reports.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Write the merged report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Moves the stale entries of mutants/equivalent.toml that name a mutant by its place
    /// (`path:line:col: ...`) from their place at commit FROM to their place in the working
    /// tree, when the item they are in is there unchanged (as `merge` carries verdicts); names
    /// the entries it cannot follow, whose item changed: judge those again. After an edit to a
    /// file of the scope: `mutants follow HEAD`. An entry that names a mutant of the tree stays.
    Follow {
        /// The commit the entries were written against.
        from: String,
    },
    /// The report of a run's output folder (`--out`), also of a run cut short: what it judged
    /// so far, the rest of its selection listed as not run (time: the mutants' own, summed).
    Report {
        /// The run's output folder (default target/mutants-out).
        dir: Option<PathBuf>,
        /// Write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Only these modules of the scope (repeat or comma-separate): chain, name, builtin, log,
    /// expressway, ciphers.
    #[arg(long, value_delimiter = ',')]
    module: Vec<String>,
    /// One shard of the selection, counted as --partition does: `--shard 2/8` runs the 2nd of
    /// every 8 mutants. `mutants merge` joins the shards' reports.
    #[arg(long, conflicts_with = "rotate")]
    shard: Option<String>,
    /// For CI: one slice of at most --slice-size mutants of one module, chosen by the commit
    /// (`git rev-parse HEAD`), so that successive commits go round the whole scope.
    #[arg(long, conflicts_with = "module")]
    rotate: bool,
    /// Mutants in a --rotate slice.
    #[arg(long, default_value_t = 3)]
    slice_size: usize,
    /// Only the mutants whose name holds this text (repeat for several): the survivors of an
    /// earlier run, to check a fix (`--matching 'in Profile::alert_error'`).
    #[arg(long, value_name = "TEXT", conflicts_with = "rotate")]
    matching: Vec<String>,
    /// Only the mutants a report lists as not run: `merge --json`'s (what is left of the
    /// scope) or a run's cut short. With --shard, a shard of those.
    #[arg(long, value_name = "REPORT", conflicts_with = "rotate")]
    not_run_in: Option<PathBuf>,
    /// List the selection, the equivalents excluded and stale entries; run nothing.
    #[arg(long)]
    list: bool,
    /// Write the report as JSON (it is always written to <out>/report.json too).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// cargo-mutants' output folder (a log per mutant in mutants.out/log/); default
    /// target/mutants-out.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The cargo profile mutants are built in: `mutants` (the test profile without debug
    /// information, in target/mutants/, built once), or `test` to reuse what `cargo test` built
    /// in target/debug (CI, after its test stage; it then rebuilds the harness there).
    #[arg(long, default_value = "mutants")]
    profile: String,
    /// Skip cargo-mutants' run of the unmutated tree (CI, after its test stage); needs --timeout.
    #[arg(long, requires = "timeout")]
    skip_baseline: bool,
    /// Test timeout per mutant, in seconds (default: cargo-mutants', from the baseline's time).
    #[arg(long)]
    timeout: Option<u64>,
    /// Install cargo-mutants when it is missing (`cargo install --locked cargo-mutants
    /// --version 27.1.0`).
    #[arg(long)]
    install: bool,
    /// Exit 1 when a mutant is missed or caught by a snapshot alone (default: report only).
    #[arg(long)]
    fail_on_survivors: bool,
}

pub fn run(args: MutantsArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Some(Action::Merge { reports, json }) => merge(&reports, json.as_deref()),
        Some(Action::Follow { from }) => follow(&from),
        Some(Action::Report { dir, json }) => {
            let dir = dir.unwrap_or_else(|| harness::scenario::Catalogue::workspace_root().join("target/mutants-out"));
            report_of(&dir, json.as_deref())
        }
        None => run_mutants(args.run),
    }
}

/// The mutants selected, and how.
#[derive(Debug, Default)]
struct Selection {
    /// Full names, in cargo-mutants' order.
    names: Vec<String>,
    /// The modules they come from.
    modules: Vec<&'static Module>,
    /// `k/n`, for a shard.
    shard: Option<String>,
    /// `i/T`, for a rotation slice.
    slice: Option<String>,
}

fn run_mutants(args: RunArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let root = harness::scenario::Catalogue::workspace_root();
    let tool = cargo_mutants(args.install)?;
    let version = tool_version(&tool)?;
    if !version.ends_with(CARGO_MUTANTS_VERSION) {
        noteln!("note: {version}; this wrapper is written against cargo-mutants {CARGO_MUTANTS_VERSION}");
    }
    let modules = chosen_modules(&args.module)?;
    let listed = list(&tool, &root)?;
    let equivalents = EquivalentFile::load(&root.join("mutants/equivalent.toml"))?;
    let matched = equivalents.match_names(listed.iter().map(String::as_str));
    let stale: Vec<StaleEntry> = matched
        .stale
        .iter()
        .map(|s| StaleEntry { mutant: s.entry.mutant.clone(), reason: s.entry.reason.clone(), matched: s.matched })
        .collect();
    let in_modules = |name: &String| module_of(name).is_some_and(|m| modules.iter().any(|c| c.name == m.name));
    let equivalent = matched.excluded.iter().filter(|n| in_modules(n)).count();
    let left = args.not_run_in.as_deref().map(not_run_in).transpose()?;
    let wanted = |name: &String| {
        (args.matching.is_empty() || args.matching.iter().any(|m| name.contains(m.as_str())))
            && left.as_ref().is_none_or(|left| left.contains(name))
    };
    let candidates: Vec<String> =
        listed.iter().filter(|n| in_modules(n) && !matched.excluded.contains(*n) && wanted(n)).cloned().collect();
    if let Some(left) = &left {
        let gone = left.iter().filter(|n| !listed.contains(n)).count();
        if gone > 0 {
            noteln!(
                "note: {gone} mutant(s) the report lists as not run are not mutants of this tree (their file changed)"
            );
        }
    }
    let commit = git_head(&root);
    // Taken before cargo-mutants copies the tree: the source its mutants are made from.
    let files = scope::of_tree(&root)?;
    let selection = if args.rotate {
        rotate(&candidates, args.slice_size, &commit)?
    } else {
        shard(candidates, &modules, args.shard.as_deref())?
    };

    if args.list {
        return print_list(&selection, &listed, &matched.excluded, &stale);
    }
    for s in &stale {
        noteln!("stale: mutants/equivalent.toml: {} matches {} mutant(s)", s.mutant, s.matched);
    }
    if selection.names.is_empty() {
        outln!("no mutant selected")?;
        return Ok(if stale.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    if let Some(slice) = &selection.slice {
        outln!("rotation slice {slice} (commit {}): {} mutant(s)", short(&commit), selection.names.len())?;
    }

    // Absolute: cargo-mutants runs the shim from its copy of the tree, not from here.
    let out = match &args.out {
        Some(out) => std::path::absolute(out).with_context(|| format!("--out {}", out.display()))?,
        None => root.join("target/mutants-out"),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let config = out.join("mutants.toml");
    std::fs::write(&config, examine_config(&selection.names)?)
        .with_context(|| format!("writing {}", config.display()))?;
    // A copy, so that rebuilding xtask during a long run does not swap the shim under it.
    let shim_path = out.join("cargo-shim");
    std::fs::copy(std::env::current_exe()?, &shim_path).context("copying the cargo shim")?;
    let real_cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| root.join("target").into());
    // The chain tests find the OpenSSL oracles beside the workspace they were built from
    // (`<workspace>/target/oracle`): in cargo-mutants' copy of the tree that folder does not
    // exist, and the tests would quietly compare against the OpenSSL 3.0 CLI alone.
    let oracle_dir = std::env::var_os("MRALAB_ORACLE_DIR").unwrap_or_else(|| root.join("target/oracle").into());
    let flavours = [harness::chain::OpensslFlavour::V1_1_1, harness::chain::OpensslFlavour::V3_0];
    if flavours.iter().any(|f| !Path::new(&oracle_dir).join(harness::chain::oracle::binary_name(*f)).is_file()) {
        noteln!(
            "warning: the OpenSSL oracles are not all built in {}: the chain tests run without them (`cargo xtask oracle build`)",
            Path::new(&oracle_dir).display()
        );
    }

    // The run's description, written before cargo-mutants starts: with it, `mutants report`
    // makes a report of whatever a run that was cut short judged (its outcomes.json grows
    // mutant by mutant).
    let run = RunRecord {
        report: Report {
            format: report::FORMAT,
            commit,
            commits: Vec::new(),
            files,
            cargo_mutants: version.trim_start_matches("cargo-mutants ").to_string(),
            profile: args.profile.clone(),
            modules: selection.modules.iter().map(|m| m.name.to_string()).collect(),
            shards: selection.shard.clone().into_iter().collect(),
            slice: selection.slice.clone(),
            seconds: 0.0,
            runs: 1,
            equivalent,
            stale,
            mutants: Vec::new(),
            rechecked: Vec::new(),
            carried: Vec::new(),
            outdated: Vec::new(),
            now_equivalent: Vec::new(),
            not_run: Vec::new(),
        },
        selected: selection.names.clone(),
    };
    let record = out.join(RUN_RECORD);
    std::fs::write(&record, serde_json::to_string_pretty(&run)?)
        .with_context(|| format!("writing {}", record.display()))?;

    let mut command = Command::new(&tool);
    command
        .current_dir(&root)
        .env("CARGO", &shim_path)
        .env(shim::ENV, &real_cargo)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("MRALAB_ORACLE_DIR", &oracle_dir)
        .args(["mutants", "--config"])
        .arg(&config)
        // One mutant at a time: copies of the tree building into one target folder get the same
        // artifact names (cargo's metadata hash of a workspace member does not depend on where
        // the workspace is), so a second job's build overwrites the test binaries the first is
        // about to run (seen with cargo-mutants --jobs 2: one `ciphers-<hash>` for both copies).
        .args(["--package", "harness", "--jobs", "1", "--no-shuffle", "--profile", &args.profile])
        .arg("--output")
        .arg(&out)
        .args(["--baseline", if args.skip_baseline { "skip" } else { "run" }]);
    for module in &selection.modules {
        for glob in module.globs() {
            command.args(["--file", &glob]);
        }
        for glob in module.exclude_globs() {
            command.args(["--exclude", &glob]);
        }
    }
    if let Some(timeout) = args.timeout {
        command.args(["--timeout", &timeout.to_string()]);
    }
    noteln!(
        "cargo-mutants: {} mutant(s) of {}, profile {}, builds in {}",
        selection.names.len(),
        selection.modules.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
        args.profile,
        Path::new(&target_dir).display()
    );
    let status = command.status().with_context(|| format!("running {}", tool.display()))?;
    if args.profile != "mutants" {
        forget_mutated_build(&real_cargo, &root, &target_dir, &args.profile);
    }
    match status.code() {
        Some(0 | 2 | 3) => {}
        Some(4) => bail!(
            "the tests fail on the unmutated tree (cargo-mutants' baseline): see {}",
            out.join("mutants.out/log/baseline.log").display()
        ),
        other => bail!("cargo-mutants failed ({other:?}): see {}", out.join("mutants.out/debug.log").display()),
    }

    let mut report = collect(&out, run)?;
    report.seconds = started.elapsed().as_secs_f64();
    finish(&report, Some(&out.join("report.json")), args.json.as_deref(), args.fail_on_survivors, &[])
}

/// The file in a run's output folder that describes the run (commit, files, selection).
const RUN_RECORD: &str = "mralab-run.json";

/// What a run was asked to do, written before it starts.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RunRecord {
    /// The report, without its mutants.
    report: Report,
    /// The selection, in cargo-mutants' order.
    selected: Vec<String>,
}

/// The report of the run in `out`, from cargo-mutants' outcomes.json and logs so far: the
/// selected mutants it did not reach (a run cut short) are listed as not run.
fn collect(out: &Path, run: RunRecord) -> anyhow::Result<Report> {
    let mutants_out = out.join("mutants.out");
    let outcomes = std::fs::read_to_string(mutants_out.join("outcomes.json"))
        .with_context(|| format!("reading {}", mutants_out.join("outcomes.json").display()))?;
    let results = report::classify(
        &outcomes,
        |log| std::fs::read_to_string(mutants_out.join(log)).ok(),
        |name| module_of(name).map_or("?", |m| m.name).to_string(),
    )?;
    // cargo-mutants 27.1.0 applies no name filter (`examine_re`) to its "delete field ... from
    // struct ... expression" mutants: it runs every one of them in the files given. Only the
    // selection is reported, so shards never overlap and a slice reports what it chose.
    let selected: BTreeSet<&str> = run.selected.iter().map(String::as_str).collect();
    let (results, extra): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| selected.contains(r.name.as_str()));
    if !extra.is_empty() {
        noteln!(
            "note: cargo-mutants also ran {} mutant(s) outside the selection (it applies no name filter to \
             'delete field' mutants); they are left out of this report",
            extra.len()
        );
    }
    let ran: BTreeSet<&str> = results.iter().map(|r| r.name.as_str()).collect();
    let not_run: Vec<String> = run.selected.iter().filter(|n| !ran.contains(n.as_str())).cloned().collect();
    if !not_run.is_empty() {
        noteln!("warning: {} selected mutant(s) were not run (listed in the report)", not_run.len());
    }
    let mut report = run.report;
    report.seconds = results.iter().map(|r| r.seconds).sum();
    report.mutants = results;
    report.not_run = not_run;
    Ok(report)
}

/// `mutants report DIR`: the report of a run's output folder, finished or cut short.
fn report_of(dir: &Path, json: Option<&Path>) -> anyhow::Result<ExitCode> {
    let record = dir.join(RUN_RECORD);
    let text = std::fs::read_to_string(&record).with_context(|| {
        format!("reading {} (written when a run starts; runs before it was added have none)", record.display())
    })?;
    let run: RunRecord = serde_json::from_str(&text).with_context(|| format!("{}", record.display()))?;
    let report = collect(dir, run)?;
    finish(&report, None, json, false, &[])
}

/// In a profile that normal builds share (`test`), the harness's last build came from the
/// copy, with the last mutant in it; cargo could take it for fresh (it compares the same relative
/// paths' times), so it is removed and the next build makes it again.
fn forget_mutated_build(cargo: &std::ffi::OsStr, root: &Path, target_dir: &std::ffi::OsStr, profile: &str) {
    let cleaned = Command::new(cargo)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target_dir)
        .args(["clean", "--quiet", "--package", "harness", "--profile", profile])
        .status();
    match cleaned {
        Ok(status) if status.success() => {
            noteln!("the harness built from the mutated copy was removed from the {profile} profile's folder")
        }
        _ => noteln!(
            "warning: could not remove the harness built from the mutated copy: run `cargo clean -p harness --profile {profile}`"
        ),
    }
}

/// Prints the report, writes its JSON, and says how to exit.
fn finish(
    report: &Report,
    default_json: Option<&Path>,
    json: Option<&Path>,
    fail_on_survivors: bool,
    missing_shards: &[String],
) -> anyhow::Result<ExitCode> {
    let text = report.json()?;
    for path in default_json.into_iter().chain(json) {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    outln!("\n{}", report.text().trim_end())?;
    if !missing_shards.is_empty() {
        outln!("\nmissing shards: {}", missing_shards.join(", "))?;
    }
    if let Some(path) = json {
        outln!("\nreport: {}", path.display())?;
    }
    let failed =
        !report.stale.is_empty() || !missing_shards.is_empty() || (fail_on_survivors && report.has_survivors());
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn follow(from: &str) -> anyhow::Result<ExitCode> {
    let root = harness::scenario::Catalogue::workspace_root();
    let path = root.join("mutants/equivalent.toml");
    let mut text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let equivalents = EquivalentFile::parse(&text).with_context(|| format!("{}", path.display()))?;
    // Only a stale entry moves, and only to a mutant of the tree: running it twice moves nothing
    // twice.
    let listed: BTreeSet<String> = list(&cargo_mutants(false)?, &root)?.into_iter().collect();
    let mut sources: BTreeMap<String, Option<(items::Source, items::Source)>> = BTreeMap::new();
    let (mut moved, mut lost) = (0, Vec::new());
    for entry in &equivalents.equivalent {
        let file = scope::file_of(&entry.mutant).to_string();
        if equivalent::without_line_col(&entry.mutant) == entry.mutant || listed.contains(&entry.mutant) {
            continue;
        }
        let pair = sources.entry(file.clone()).or_insert_with(|| {
            let new = std::fs::read_to_string(root.join(&file)).ok()?;
            Some((source_at(&root, from, &file)?, items::Source::parse(new)?))
        });
        match pair.as_ref().and_then(|(old, new)| items::carried(&entry.mutant, old, new)) {
            Some(name) if listed.contains(&name) => {
                text = renamed(&text, &entry.mutant, &name).with_context(|| format!("{}", path.display()))?;
                outln!("moved: {} -> {}", entry.mutant, name.split(':').nth(1).unwrap_or_default())?;
                moved += 1;
            }
            _ => lost.push(entry.mutant.clone()),
        }
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    outln!("{moved} entr(ies) moved in {}", path.display())?;
    for name in &lost {
        outln!("not followed (its item changed at {from} or since, or went): {name}")?;
    }
    Ok(if lost.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `text` (mutants/equivalent.toml) with the entry naming `old` naming `new`, its other lines as
/// they are.
fn renamed(text: &str, old: &str, new: &str) -> anyhow::Result<String> {
    // The entry's line, whichever way its string is written.
    let names = |line: &str| {
        let value: Option<toml::Table> = line.starts_with("mutant =").then(|| toml::from_str(line).ok())?;
        value?.get("mutant")?.as_str().map(str::to_string)
    };
    let Some(at) = text.lines().position(|line| names(line).as_deref() == Some(old)) else {
        bail!("cannot find the line of {old} to rewrite it");
    };
    // A TOML basic string is a JSON string.
    let line = format!("mutant = {}", serde_json::to_string(new)?);
    let lines: Vec<&str> = text.lines().enumerate().map(|(i, l)| if i == at { line.as_str() } else { l }).collect();
    Ok(lines.join("\n") + "\n")
}

/// The file `path` at `commit`, read from git and parsed (`None`: git or syn could not read it).
fn source_at(root: &Path, commit: &str, path: &str) -> Option<items::Source> {
    let text = String::from_utf8(scope::contents_at(root, commit, path).ok()?).ok()?;
    items::Source::parse(text)
}

/// Files of the scope read at a commit, by (commit, path); `None`: git or syn could not read it.
type SourcesAt = std::cell::RefCell<BTreeMap<(String, String), Option<std::rc::Rc<items::Source>>>>;

fn merge(paths: &[PathBuf], json: Option<&Path>) -> anyhow::Result<ExitCode> {
    let reports = paths
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .map_err(anyhow::Error::from)
                .and_then(|text| Report::from_json(&text))
                .with_context(|| format!("{}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let root = harness::scenario::Catalogue::workspace_root();
    // A clean commit's files are read again from git, so that reports written before they were
    // recorded (or recorded another way) are compared alike; a run on a tree with changes
    // (`-dirty`) has only what it recorded.
    let mut reports = reports;
    let mut at_commit: BTreeMap<String, scope::Files> = BTreeMap::new();
    for (report, path) in reports.iter_mut().zip(paths) {
        if report.commit.ends_with("-dirty") && !report.files.is_empty() {
            continue;
        }
        if !at_commit.contains_key(&report.commit) {
            let files = scope::of_commit(&root, &report.commit).with_context(|| format!("{}", path.display()))?;
            at_commit.insert(report.commit.clone(), files);
        }
        report.files = at_commit[&report.commit].clone();
    }
    // A run on a tree with changes (`<commit>-dirty`) comes after its commit.
    let newer = |a: &str, b: &str| {
        let (base_a, dirty_a) = a.strip_suffix("-dirty").map_or((a, false), |c| (c, true));
        let (base_b, dirty_b) = b.strip_suffix("-dirty").map_or((b, false), |c| (c, true));
        if base_a == base_b { Some(!dirty_a && dirty_b) } else { scope::is_ancestor(&root, base_a, base_b) }
    };
    // The score is of the code as it is: when the tree is clean at a commit that comes after
    // every run, the merge ends there (a run of no mutant at HEAD), so that each verdict is
    // carried to HEAD's source or left out.
    let head = git_head(&root);
    let after_every_run = reports.iter().all(|r| r.commit != head && newer(&r.commit, &head) == Some(true));
    if !head.ends_with("-dirty")
        && head != "unknown"
        && after_every_run
        && let Some(last) = reports.last()
    {
        let files = scope::of_commit(&root, &head)?;
        reports.push(Report {
            commit: head.clone(),
            files,
            modules: Vec::new(),
            shards: Vec::new(),
            slice: None,
            seconds: 0.0,
            runs: 0,
            equivalent: 0,
            stale: Vec::new(),
            mutants: Vec::new(),
            ..last.clone()
        });
    }
    // A verdict outlives a change to its file when its item (function, constant) is unchanged
    // (`items`): each file's source at each commit, read from git once.
    let sources: SourcesAt = Default::default();
    let source = |commit: &str, path: &str| {
        let key = (commit.to_string(), path.to_string());
        if let Some(known) = sources.borrow().get(&key) {
            return known.clone();
        }
        let parsed = source_at(&root, commit, path).map(std::rc::Rc::new);
        sources.borrow_mut().insert(key, parsed.clone());
        parsed
    };
    let carry = |from: &str, to: &str, name: &str| {
        if from.ends_with("-dirty") || to.ends_with("-dirty") {
            return None;
        }
        let path = scope::file_of(name);
        items::carried(name, &*source(from, path)?, &*source(to, path)?)
    };
    let (mut merged, missing) = report::merge(reports, newer, carry)?;
    let equivalents = EquivalentFile::load(&root.join("mutants/equivalent.toml"))?;
    merged.drop_equivalent(&equivalents);
    merged.not_run = not_run(&merged, &root)?;
    finish(&merged, None, json, false, &missing)
}

/// The mutants of the scope (less the equivalents) that `merged` does not judge, and every
/// mutant of a file whose working-tree version differs from the one the merged runs describe:
/// what is left to run in this tree for the score over the whole scope (`--not-run-in`).
fn not_run(merged: &Report, root: &Path) -> anyhow::Result<Vec<String>> {
    let tree = scope::of_tree(root)?;
    let differ: Vec<&String> = tree.keys().filter(|f| merged.files.get(*f) != tree.get(*f)).collect();
    if !differ.is_empty() {
        noteln!(
            "note: {} file(s) of the scope differ between the working tree and commit {}; no merged verdict is of \
             their version here, so all their mutants are listed as not run: {}",
            differ.len(),
            short(&merged.commit),
            differ.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let Ok(tool) = cargo_mutants(false) else {
        noteln!("note: no cargo-mutants here: the scope's mutants that no run judged are not listed");
        return Ok(Vec::new());
    };
    let listed = list(&tool, root)?;
    let equivalents = EquivalentFile::load(&root.join("mutants/equivalent.toml"))?;
    let matched = equivalents.match_names(listed.iter().map(String::as_str));
    let judged: BTreeSet<&str> = merged.mutants.iter().map(|m| m.name.as_str()).collect();
    let changed = |n: &str| differ.iter().any(|f| f.as_str() == scope::file_of(n));
    Ok(listed
        .iter()
        .filter(|n| module_of(n).is_some() && !matched.excluded.contains(*n))
        .filter(|n| changed(n) || !judged.contains(n.as_str()))
        .cloned()
        .collect())
}

/// The names a report (`--json` of a run or of `merge`) lists as not run.
fn not_run_in(path: &Path) -> anyhow::Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let report = Report::from_json(&text).with_context(|| format!("{}", path.display()))?;
    if report.not_run.is_empty() {
        bail!("{} lists no mutant as not run", path.display());
    }
    Ok(report.not_run.into_iter().collect())
}

/// The modules named, or the whole scope.
fn chosen_modules(names: &[String]) -> anyhow::Result<Vec<&'static Module>> {
    if names.is_empty() {
        return Ok(SCOPE.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            SCOPE
                .iter()
                .find(|m| m.name == n)
                .with_context(|| format!("unknown module '{n}'; modules: {}", SCOPE.map(|m| m.name).join(", ")))
        })
        .collect()
}

/// `candidates` (of `modules`), or one shard of them: `k/n`, 1-based, every n-th from the k-th.
fn shard(candidates: Vec<String>, modules: &[&'static Module], spec: Option<&str>) -> anyhow::Result<Selection> {
    let Some(spec) = spec else {
        return Ok(Selection { names: candidates, modules: modules.to_vec(), ..Selection::default() });
    };
    let (k, n) = spec
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|(k, n)| (1..=*n).contains(k))
        .with_context(|| format!("--shard {spec}: write k/n with k from 1 to n, e.g. 2/8"))?;
    let names: Vec<String> =
        candidates.into_iter().enumerate().filter(|(i, _)| i % n == k - 1).map(|(_, c)| c).collect();
    let modules = modules
        .iter()
        .copied()
        .filter(|m| names.iter().any(|name| module_of(name).is_some_and(|o| o.name == m.name)))
        .collect();
    Ok(Selection { names, modules, shard: Some(format!("{k}/{n}")), slice: None })
}

/// The rotation slice for `commit`: every module's candidates cut into slices of at most
/// `size`, in scope order; the commit's hash picks one.
fn rotate(candidates: &[String], size: usize, commit: &str) -> anyhow::Result<Selection> {
    if size == 0 {
        bail!("--slice-size must be at least 1");
    }
    let mut slices: Vec<(&'static Module, Vec<String>)> = Vec::new();
    for module in &SCOPE {
        let mine: Vec<String> =
            candidates.iter().filter(|n| module_of(n).is_some_and(|m| m.name == module.name)).cloned().collect();
        slices.extend(mine.chunks(size).map(|chunk| (module, chunk.to_vec())));
    }
    if slices.is_empty() {
        return Ok(Selection::default());
    }
    let hash = u64::from_str_radix(commit.get(..15).unwrap_or(commit), 16)
        .with_context(|| format!("--rotate needs the commit's hash, got '{commit}'"))?;
    let total = slices.len();
    let index = usize::try_from(hash % total as u64).unwrap_or(0);
    let (module, names) = slices.swap_remove(index);
    Ok(Selection { names, modules: vec![module], shard: None, slice: Some(format!("{}/{total}", index + 1)) })
}

fn print_list(
    selection: &Selection,
    listed: &[String],
    excluded: &BTreeSet<String>,
    stale: &[StaleEntry],
) -> anyhow::Result<ExitCode> {
    for name in &selection.names {
        outln!("{name}")?;
    }
    outln!()?;
    for module in &SCOPE {
        let all = listed.iter().filter(|n| module_of(n).is_some_and(|m| m.name == module.name)).count();
        let eq = excluded.iter().filter(|n| module_of(n).is_some_and(|m| m.name == module.name)).count();
        let chosen = selection.names.iter().filter(|n| module_of(n).is_some_and(|m| m.name == module.name)).count();
        outln!("{:<12} {all:>5} mutants, {eq:>4} equivalent, {chosen:>5} selected", module.name)?;
    }
    let how = match (&selection.shard, &selection.slice) {
        (Some(shard), _) => format!(" (shard {shard})"),
        (_, Some(slice)) => format!(" (rotation slice {slice})"),
        _ => String::new(),
    };
    outln!("{} mutant(s) selected{how}", selection.names.len())?;
    for s in stale {
        outln!("stale: mutants/equivalent.toml: {} matches {} mutant(s): {}", s.mutant, s.matched, s.reason)?;
    }
    Ok(if stale.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// cargo-mutants' configuration for the run: exactly the selected mutants.
fn examine_config(names: &[String]) -> anyhow::Result<String> {
    #[derive(serde::Serialize)]
    struct Config {
        examine_re: Vec<String>,
    }
    let examine_re = names.iter().map(|n| format!("^{}$", regex_escape(n))).collect();
    Ok(toml::to_string(&Config { examine_re })?)
}

/// `text` as a regular expression that matches only itself.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `git rev-parse HEAD`, with `-dirty` when tracked files have changes (cargo-mutants copies
/// the tree as it is); `unknown` outside git.
fn git_head(root: &Path) -> String {
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git").current_dir(root).args(args).output().ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        // Untracked files (a report just copied into mutants/runs/) change no build.
        Some(head) if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) => {
            format!("{head}-dirty")
        }
        Some(head) => head,
        None => "unknown".into(),
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Called first thing in `main`: when cargo-mutants runs this binary as its `cargo`.
pub fn shim_if_asked() -> Option<ExitCode> {
    let real: OsString = std::env::var_os(shim::ENV)?;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    Some(shim::run(&real, &args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(module: &str, n: usize) -> Vec<String> {
        let path = SCOPE.iter().find(|m| m.name == module).map(|m| m.paths[0]).unwrap_or_default();
        let path = if path.ends_with('/') { format!("{path}rules.rs") } else { path.to_string() };
        (1..=n).map(|i| format!("{path}:{i}:5: replace f -> bool with true")).collect()
    }

    #[test]
    fn every_file_of_the_scope_has_its_module() {
        assert_eq!(module_of("harness/src/chain.rs:1:1: x").map(|m| m.name), Some("chain"));
        assert_eq!(module_of("harness/src/ciphers/table.rs:1:1: x").map(|m| m.name), Some("ciphers"));
        assert_eq!(module_of("harness/src/verifier/name.rs:1:1: x").map(|m| m.name), Some("name"));
        assert_eq!(module_of("harness/src/verifier/mod.rs:1:1: x").map(|m| m.name), None);
        assert_eq!(module_of("harness/src/chain/walk.rs:1:1: x").map(|m| m.name), Some("chain"));
        assert_eq!(module_of("harness/src/chain/generate/mod.rs:1:1: x").map(|m| m.name), None);
        assert_eq!(module_of("harness/src/chain/generate/keys.rs:1:1: x").map(|m| m.name), None);
        assert_eq!(module_of("harness/src/chain/oracle.rs:1:1: x").map(|m| m.name), None);
        assert_eq!(SCOPE[0].exclude_globs(), ["harness/src/chain/generate/**/*.rs", "harness/src/chain/oracle.rs"]);
        assert_eq!(SCOPE[5].globs(), ["harness/src/ciphers/**/*.rs"]);
    }

    #[test]
    fn shards_take_every_nth_and_together_take_everything_once() {
        let all: Vec<String> = [names("chain", 5), names("name", 3)].concat();
        let modules: Vec<&'static Module> = SCOPE.iter().collect();
        let mut seen = Vec::new();
        for k in 1..=3 {
            let s = shard(all.clone(), &modules, Some(&format!("{k}/3"))).expect("shard");
            assert_eq!(s.shard.as_deref(), Some(format!("{k}/3").as_str()));
            seen.extend(s.names);
        }
        seen.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(seen, want);
        for bad in ["0/3", "4/3", "3", "a/b"] {
            assert!(shard(all.clone(), &modules, Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(shard(all.clone(), &modules, None).expect("all").names, all);
    }

    #[test]
    fn an_equivalent_entry_is_renamed_on_its_own_line_whichever_way_its_string_is_written() {
        let text = "# c\n[[equivalent]]\nmutant = \"a.rs:1:2: delete match arm \\\"x\\\" in f\"\nreason = \"r\"\n\n[[equivalent]]\nmutant = 'a.rs:5:2: replace < with <= in g'\nreason = \"mutant = 'a.rs:5:2: replace < with <= in g'\"\n";
        let once = renamed(text, "a.rs:1:2: delete match arm \"x\" in f", "a.rs:3:2: delete match arm \"x\" in f")
            .expect("found");
        assert!(once.contains("mutant = \"a.rs:3:2: delete match arm \\\"x\\\" in f\"\n"), "{once}");
        let twice =
            renamed(&once, "a.rs:5:2: replace < with <= in g", "a.rs:9:2: replace < with <= in g").expect("found");
        assert!(
            twice.contains("mutant = \"a.rs:9:2: replace < with <= in g\"\nreason = \"mutant = 'a.rs:5:2"),
            "{twice}"
        );
        assert_eq!(EquivalentFile::parse(&twice).expect("still TOML").equivalent.len(), 2);
        assert!(renamed(text, "a.rs:7:7: gone", "x").is_err());
    }

    #[test]
    fn the_commit_picks_one_slice_of_one_module() {
        let all: Vec<String> = [names("chain", 5), names("name", 3)].concat();
        // chain: 3 + 2, name: 3 → 3 slices.
        let pick = |commit: &str| rotate(&all, 3, commit).expect("slice");
        let first = pick("000000000000000aaaa");
        assert_eq!(first.slice.as_deref(), Some("1/3"));
        assert_eq!(first.names, all[..3]);
        let second = pick("0000000000000010");
        assert_eq!((second.slice.as_deref(), second.names.len()), (Some("2/3"), 2));
        let third = pick("0000000000000050");
        assert_eq!((third.slice.as_deref(), third.modules[0].name), (Some("3/3"), "name"));
        assert_eq!(pick("b2b9e2a5c0ffee00").names, pick("b2b9e2a5c0ffee00").names, "the same commit, the same slice");
        assert!(rotate(&all, 3, "unknown").is_err());
        assert!(rotate(&all, 0, "00").is_err());
    }

    #[test]
    fn the_examine_list_matches_exactly_the_selected_names() {
        let config = examine_config(&["a.rs:1:2: replace && with || in f".into()]).expect("config");
        let read: toml::Value = toml::from_str(&config).expect("TOML");
        assert_eq!(read["examine_re"][0].as_str(), Some(r"^a\.rs:1:2: replace \&\& with \|\| in f$"));
        assert_eq!(regex_escape("x -> Option<T>"), r"x \-> Option<T>");
    }

    #[test]
    fn unknown_modules_are_refused_with_the_list() {
        let e = chosen_modules(&["chains".into()]).expect_err("refused").to_string();
        assert!(e.contains("chain, name, builtin, log, expressway, ciphers"), "{e}");
        assert_eq!(chosen_modules(&[]).expect("all").len(), SCOPE.len());
    }
}
