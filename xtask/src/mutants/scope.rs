//! The model's source, file by file: which source a run's mutants were made from.
//!
//! A mutant is named by its place in the source (`path:line:col: description`), so two runs'
//! verdicts on "the same" mutant are about the same change only when its file is the same. Each
//! file of the scope is fingerprinted (a SHA-256 of its contents without its trailing unit
//! tests), from the working tree when a run starts (what cargo-mutants copies) or from a
//! report's commit in git.
//!
//! Runs from different commits can then be merged mutant by mutant: a verdict counts as long as
//! its file has not changed since, so the full run of the scope (about eight hours on two cores)
//! can be made of shards run on different days, and a fix to one file sends only that file's
//! mutants round again.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

use super::module_of;

/// The scope's files: path relative to the workspace → [`file_hash`].
pub type Files = BTreeMap<String, String>;

/// A file's fingerprint. Its unit tests, when they are its last item (`#[cfg(test)]` then `mod
/// tests {` to the end, as rustfmt writes it), are left out: cargo-mutants makes no mutant in
/// them, and a unit test added for a survivor must not make the model's source look changed.
pub fn file_hash(contents: &[u8]) -> String {
    format!("{:x}", Sha256::digest(without_trailing_tests(contents)))
}

/// The path of a mutant's file (`path:line:col: description`).
pub fn file_of(mutant: &str) -> &str {
    mutant.split(':').next().unwrap_or_default()
}

/// `contents` without its unit-test module, when that module is the file's last item: from a
/// line `#[cfg(test)]` followed by `mod tests {`, to the first line that is `}` alone, with
/// nothing but blank lines after it. Otherwise `contents` whole. Trailing blank lines are
/// dropped either way.
fn without_trailing_tests(contents: &[u8]) -> &[u8] {
    let Ok(text) = std::str::from_utf8(contents) else { return contents };
    let model = match text.find("\n#[cfg(test)]\nmod tests {\n").map(|i| i + 1) {
        Some(start) => {
            let rest = &text[start..];
            match rest.find("\n}\n").map(|i| i + 3) {
                Some(close) if rest[close..].trim().is_empty() => &text[..start],
                _ => text,
            }
        }
        None => text,
    };
    model.trim_end().as_bytes()
}

/// Whether the file `path` (relative to the workspace) is in the scope.
fn in_scope(path: &str) -> bool {
    module_of(&format!("{path}:")).is_some()
}

/// The scope's files in the working tree at `root`.
pub fn of_tree(root: &Path) -> anyhow::Result<Files> {
    let mut files = Files::new();
    let mut folders = vec![root.join("harness/src")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).with_context(|| format!("reading {}", folder.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let relative = path.strip_prefix(root)?.to_string_lossy().replace('\\', "/");
            if in_scope(&relative) {
                let contents = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                files.insert(relative, file_hash(&contents));
            }
        }
    }
    if files.is_empty() {
        bail!("no file of the scope under {}", root.join("harness/src").display());
    }
    Ok(files)
}

/// The scope's files at `commit`, read from git in `root`.
pub fn of_commit(root: &Path, commit: &str) -> anyhow::Result<Files> {
    if commit.ends_with("-dirty") || commit == "unknown" {
        bail!(
            "the report of commit {commit} carries no fingerprint of its files, and git cannot give the source it ran on"
        );
    }
    let listed = git(root, &["ls-tree", "-r", "--name-only", commit, "--", "harness/src"])?;
    let mut files = Files::new();
    for path in String::from_utf8_lossy(&listed).lines().filter(|p| in_scope(p)) {
        files.insert(path.to_string(), file_hash(&contents_at(root, commit, path)?));
    }
    if files.is_empty() {
        bail!("commit {commit} has no file of the scope");
    }
    Ok(files)
}

/// The contents of `path` (relative to the workspace) at `commit`, from git in `root`.
pub fn contents_at(root: &Path, commit: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    git(root, &["show", &format!("{commit}:{path}")])
}

fn git(root: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let output = Command::new("git").current_dir(root).args(args).output().context("running git")?;
    if !output.status.success() {
        bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(output.stdout)
}

/// Whether `older` is an ancestor of `newer` in git (`None` when git cannot say).
pub fn is_ancestor(root: &Path, older: &str, newer: &str) -> Option<bool> {
    let status =
        Command::new("git").current_dir(root).args(["merge-base", "--is-ancestor", older, newer]).status().ok()?;
    match status.code() {
        Some(0) => Some(true),
        Some(1) => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_hash_depends_on_its_code_not_on_its_trailing_unit_tests() {
        let code = "fn f() -> u32 {\n    1\n}\n";
        let tests =
            "\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {\n        assert_eq!(super::f(), 1);\n    }\n}\n";
        let more_tests = "\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n\n    #[test]\n    fn u() {}\n}\n";
        let h = |text: &str| file_hash(text.as_bytes());
        assert_eq!(h(&format!("{code}{tests}")), h(code));
        assert_eq!(h(&format!("{code}{tests}")), h(&format!("{code}{more_tests}")));
        // The code itself counts, and so does anything after the tests.
        assert_ne!(h(&format!("{code}{tests}")), h(&format!("fn f() -> u32 {{\n    2\n}}\n{tests}")));
        assert_ne!(h(&format!("{code}{tests}fn g() {{}}\n")), h(&format!("{code}{tests}")));
        assert_eq!(file_of("harness/src/chain/mod.rs:12:5: replace f -> bool with true"), "harness/src/chain/mod.rs");
    }

    #[test]
    fn the_tree_and_its_commit_give_the_same_files() {
        let root = harness::scenario::Catalogue::workspace_root();
        let tree = of_tree(&root).expect("the working tree");
        assert!(tree.contains_key("harness/src/verifier/name.rs"), "{tree:?}");
        assert!(!tree.contains_key("harness/src/verifier/mod.rs"));
        assert!(tree.keys().all(|p| in_scope(p)));
        // Compared with HEAD only when the scope has no uncommitted change (a developer's tree).
        let clean = Command::new("git")
            .current_dir(&root)
            .args(["status", "--porcelain", "--", "harness/src"])
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.is_empty());
        if clean {
            assert_eq!(of_commit(&root, "HEAD").expect("HEAD"), tree);
        }
        assert!(of_commit(&root, "abc-dirty").is_err());
    }
}
