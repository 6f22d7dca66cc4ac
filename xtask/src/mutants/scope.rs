//! The scope's fingerprint: which source the mutants were made from.
//!
//! A mutant is named by its place in the source (`path:line:col: description`), so two runs'
//! verdicts on "the same" mutant are about the same change only when the scope's files are the
//! same bytes. The fingerprint is a SHA-256 over every file of the scope, path and contents, in
//! path order; it is taken from the working tree when a run starts (what cargo-mutants copies)
//! or, for a report written before reports carried it, from the report's commit in git.
//!
//! Runs from different commits with one fingerprint can be merged: only the tests differ between
//! them, and the full run of the scope (about eight hours on two cores) can then be made of shards
//! run on different days.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

use super::module_of;

/// The fingerprint of `files`: `(path relative to the workspace, contents)`, in any order. A
/// file's unit tests, when they are its last item (`#[cfg(test)]` then `mod tests {` to the end,
/// as rustfmt writes it), are left out: cargo-mutants makes no mutant in them, and a unit test
/// added for a survivor must not make the model's source look changed.
pub fn fingerprint(mut files: Vec<(String, Vec<u8>)>) -> String {
    files.sort();
    let mut hash = Sha256::new();
    for (path, contents) in &files {
        let model = without_trailing_tests(contents);
        hash.update(path.as_bytes());
        hash.update([0]);
        hash.update((model.len() as u64).to_be_bytes());
        hash.update(model);
    }
    format!("model-sha256:{:x}", hash.finalize())
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

/// The fingerprint of the scope in the working tree at `root`.
pub fn of_tree(root: &Path) -> anyhow::Result<String> {
    let mut files = Vec::new();
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
                files.push((relative, contents));
            }
        }
    }
    if files.is_empty() {
        bail!("no file of the scope under {}", root.join("harness/src").display());
    }
    Ok(fingerprint(files))
}

/// The fingerprint of the scope at `commit`, read from git in `root`.
pub fn of_commit(root: &Path, commit: &str) -> anyhow::Result<String> {
    if commit.ends_with("-dirty") || commit == "unknown" {
        bail!("the report of commit {commit} carries no scope fingerprint, and git cannot give the source it ran on");
    }
    let git = |args: &[&str]| -> anyhow::Result<Vec<u8>> {
        let output = Command::new("git").current_dir(root).args(args).output().context("running git")?;
        if !output.status.success() {
            bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(output.stdout)
    };
    let listed = git(&["ls-tree", "-r", "--name-only", commit, "--", "harness/src"])?;
    let mut files = Vec::new();
    for path in String::from_utf8_lossy(&listed).lines().filter(|p| in_scope(p)) {
        files.push((path.to_string(), git(&["show", &format!("{commit}:{path}")])?));
    }
    if files.is_empty() {
        bail!("commit {commit} has no file of the scope");
    }
    Ok(fingerprint(files))
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
    fn the_fingerprint_depends_on_paths_and_contents_not_on_order() {
        let a = || ("harness/src/chain.rs".to_string(), b"fn a() {}".to_vec());
        let b = || ("harness/src/ciphers/rules.rs".to_string(), b"fn b() {}".to_vec());
        assert_eq!(fingerprint(vec![a(), b()]), fingerprint(vec![b(), a()]));
        assert_ne!(fingerprint(vec![a(), b()]), fingerprint(vec![a()]));
        let changed = ("harness/src/chain.rs".to_string(), b"fn a() { }".to_vec());
        assert_ne!(fingerprint(vec![a(), b()]), fingerprint(vec![changed, b()]));
        let moved = ("harness/src/chain/mod.rs".to_string(), b"fn a() {}".to_vec());
        assert_ne!(fingerprint(vec![a(), b()]), fingerprint(vec![moved, b()]));
        // A path's end is marked: "ab" + "c" is not "a" + "bc".
        assert_ne!(fingerprint(vec![("ab".into(), b"c".to_vec())]), fingerprint(vec![("a".into(), b"bc".to_vec())]));
    }

    #[test]
    fn unit_tests_at_the_end_of_a_file_are_not_the_models_source() {
        let file = |text: &str| vec![("harness/src/expressway.rs".to_string(), text.as_bytes().to_vec())];
        let code = "fn f() -> u32 {\n    1\n}\n";
        let tests =
            "\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {\n        assert_eq!(super::f(), 1);\n    }\n}\n";
        let more_tests = "\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n\n    #[test]\n    fn u() {}\n}\n";
        assert_eq!(fingerprint(file(&format!("{code}{tests}"))), fingerprint(file(code)));
        assert_eq!(fingerprint(file(&format!("{code}{tests}"))), fingerprint(file(&format!("{code}{more_tests}"))));
        // The code itself still counts, and so does anything after the tests.
        assert_ne!(
            fingerprint(file(&format!("{code}{tests}"))),
            fingerprint(file(&format!("fn f() -> u32 {{\n    2\n}}\n{tests}")))
        );
        assert_ne!(
            fingerprint(file(&format!("{code}{tests}fn g() {{}}\n"))),
            fingerprint(file(&format!("{code}{tests}")))
        );
    }

    #[test]
    fn the_tree_and_its_commit_give_one_fingerprint() {
        let root = harness::scenario::Catalogue::workspace_root();
        let tree = of_tree(&root).expect("the working tree");
        assert!(tree.starts_with("model-sha256:"), "{tree}");
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
        assert!(in_scope("harness/src/verifier/name.rs") && !in_scope("harness/src/verifier/mod.rs"));
    }
}
