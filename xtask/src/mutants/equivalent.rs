//! `mutants/equivalent.toml`: the mutants no test can catch because they do not change what the
//! program does, each with a one-line reason. The run excludes exactly the mutants the entries
//! match; an entry that matches none is stale, and so is one that matches a different number of
//! mutants than it says.
//!
//! ```toml
//! [[equivalent]]
//! mutant = "harness/src/chain.rs:790:9: replace && with || in Cert::time_valid"  # as `--list` names it
//! reason = "one line: why no input can tell the two apart"
//!
//! [[equivalent]]
//! mutant = "harness/src/ciphers/table.rs: replace | with ^"   # without :line:col, every mutant so named
//! count = 12                                                  # ... and there must be exactly this many
//! reason = "..."
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// The file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EquivalentFile {
    /// The entries.
    #[serde(default)]
    pub equivalent: Vec<Entry>,
}

/// One entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The mutant's name as `cargo mutants --list` prints it, with or without `:line:col`.
    pub mutant: String,
    /// Why it is equivalent: one line.
    pub reason: String,
    /// For a name without `:line:col`: how many mutants it names (default 1).
    pub count: Option<usize>,
}

/// An entry that does not match what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// The entry.
    pub entry: Entry,
    /// How many mutants it matched.
    pub matched: usize,
}

/// The entries matched against the mutants in scope.
#[derive(Debug, Default)]
pub struct Matched {
    /// The names of the mutants to exclude (full names, with `:line:col`).
    pub excluded: BTreeSet<String>,
    /// Entries that match no mutant, or not as many as they say.
    pub stale: Vec<Stale>,
}

impl EquivalentFile {
    /// Reads the file; a missing file has no entries.
    pub fn load(path: &Path) -> anyhow::Result<EquivalentFile> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(EquivalentFile::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        EquivalentFile::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// Parses and checks the entries: every one has a mutant and a one-line reason, none twice.
    pub fn parse(text: &str) -> anyhow::Result<EquivalentFile> {
        let file: EquivalentFile = toml::from_str(text)?;
        let mut seen = BTreeSet::new();
        for entry in &file.equivalent {
            if entry.mutant.trim().is_empty() {
                bail!("an entry without a mutant");
            }
            if entry.reason.trim().is_empty() || entry.reason.contains('\n') {
                bail!("{}: the reason must be one line, and there must be one", entry.mutant);
            }
            if entry.count == Some(0) {
                bail!("{}: count = 0 excludes nothing", entry.mutant);
            }
            if entry.count.is_some() && has_line_col(&entry.mutant) {
                bail!("{}: count is for a name without :line:col, which names one mutant", entry.mutant);
            }
            if !seen.insert(entry.mutant.clone()) {
                bail!("{}: listed twice", entry.mutant);
            }
        }
        Ok(file)
    }

    /// Matches every entry against `names` (the mutants in scope, full names).
    pub fn match_names<'a>(&self, names: impl IntoIterator<Item = &'a str> + Clone) -> Matched {
        let mut matched = Matched::default();
        for entry in &self.equivalent {
            let hits: Vec<&str> = names.clone().into_iter().filter(|name| entry.matches(name)).collect();
            let wanted = if has_line_col(&entry.mutant) { 1 } else { entry.count.unwrap_or(1) };
            if hits.len() == wanted {
                matched.excluded.extend(hits.into_iter().map(str::to_string));
            } else {
                matched.stale.push(Stale { entry: entry.clone(), matched: hits.len() });
            }
        }
        matched
    }
}

impl Entry {
    /// Whether this entry names `name` (`path:line:col: description`).
    pub fn matches(&self, name: &str) -> bool {
        name == self.mutant || without_line_col(name) == self.mutant
    }
}

/// `path:line:col: description` as `path: description`.
pub fn without_line_col(name: &str) -> String {
    match split_line_col(name) {
        Some((path, description)) => format!("{path}: {description}"),
        None => name.to_string(),
    }
}

fn has_line_col(name: &str) -> bool {
    split_line_col(name).is_some()
}

/// `(path, description)` of `path:line:col: description`.
fn split_line_col(name: &str) -> Option<(&str, &str)> {
    let (head, description) = name.split_once(": ")?;
    let mut parts = head.rsplitn(3, ':');
    let col = parts.next()?;
    let line = parts.next()?;
    let path = parts.next()?;
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (numeric(line) && numeric(col)).then_some((path, description))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 4] = [
        "harness/src/verifier/name.rs:44:91: replace && with || in dns_matches",
        "harness/src/verifier/name.rs:44:54: replace && with || in dns_matches",
        "harness/src/verifier/name.rs:52:5: replace ip_bytes_match -> bool with true",
        "harness/src/verifier/name.rs:52:5: replace ip_bytes_match -> bool with false",
    ];

    #[test]
    fn names_lose_their_line_and_column_only() {
        assert_eq!(without_line_col(NAMES[0]), "harness/src/verifier/name.rs: replace && with || in dns_matches");
        assert_eq!(without_line_col("a.rs: replace x with y"), "a.rs: replace x with y");
    }

    #[test]
    fn an_entry_excludes_exactly_what_it_names_and_a_miss_is_stale() {
        let file = EquivalentFile::parse(
            r#"
            [[equivalent]]
            mutant = "harness/src/verifier/name.rs:52:5: replace ip_bytes_match -> bool with false"
            reason = "r"
            [[equivalent]]
            mutant = "harness/src/verifier/name.rs: replace && with || in dns_matches"
            count = 2
            reason = "r"
            [[equivalent]]
            mutant = "harness/src/verifier/name.rs:99:1: replace gone -> bool with true"
            reason = "the function was removed"
            "#,
        )
        .expect("parses");
        let matched = file.match_names(NAMES);
        let expected: BTreeSet<String> = [NAMES[0], NAMES[1], NAMES[3]].map(String::from).into();
        assert_eq!(matched.excluded, expected);
        assert_eq!(matched.stale.len(), 1);
        assert_eq!(matched.stale[0].matched, 0);
        assert!(matched.stale[0].entry.mutant.contains("gone"));
    }

    #[test]
    fn a_name_without_line_col_must_match_as_many_as_it_says() {
        let file = EquivalentFile::parse(
            r#"
            [[equivalent]]
            mutant = "harness/src/verifier/name.rs: replace && with || in dns_matches"
            reason = "r"
            "#,
        )
        .expect("parses");
        let matched = file.match_names(NAMES);
        assert!(matched.excluded.is_empty(), "two mutants share the name: neither is excluded");
        assert_eq!(matched.stale[0].matched, 2);
    }

    #[test]
    fn entries_without_a_one_line_reason_or_twice_are_refused() {
        let refused = |text: &str| EquivalentFile::parse(text).expect_err("refused").to_string();
        assert!(refused("[[equivalent]]\nmutant = \"a.rs:1:1: x\"\nreason = \"\"").contains("one line"));
        assert!(refused("[[equivalent]]\nmutant = \"a.rs:1:1: x\"\nreason = \"\"\"a\nb\"\"\"").contains("one line"));
        assert!(
            refused("[[equivalent]]\nmutant = \"a.rs:1:1: x\"\nreason = \"r\"\n[[equivalent]]\nmutant = \"a.rs:1:1: x\"\nreason = \"r\"")
                .contains("twice")
        );
        assert!(refused("[[equivalent]]\nmutant = \"a.rs:1:1: x\"\nreason = \"r\"\ncount = 2").contains("count"));
        assert!(EquivalentFile::parse("[[equivalent]]\nmutant = \"a.rs: x\"\nreson = \"r\"").is_err());
    }
}
