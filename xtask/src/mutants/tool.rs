//! cargo-mutants as a program: found (on PATH or in cargo's bin folder), installed on request,
//! and asked for the mutants of the scope.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::{CARGO_MUTANTS_VERSION, SCOPE, module_of};
use crate::out::noteln;

/// Every mutant of the scope, as cargo-mutants names them.
pub fn list(tool: &Path, root: &Path) -> anyhow::Result<Vec<String>> {
    let mut command = Command::new(tool);
    command.current_dir(root).args(["mutants", "--list", "--no-config", "--colors", "never", "--package", "harness"]);
    for module in &SCOPE {
        for glob in module.globs() {
            command.args(["--file", &glob]);
        }
        for glob in module.exclude_globs() {
            command.args(["--exclude", &glob]);
        }
    }
    let output = command.output().with_context(|| format!("running {}", tool.display()))?;
    if !output.status.success() {
        bail!("cargo-mutants --list failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).lines().filter(|l| module_of(l).is_some()).map(str::to_string).collect())
}

/// The cargo-mutants binary: on PATH or in cargo's bin folder, installed first with `install`.
/// It is run directly, not as `cargo mutants`, since cargo would set `$CARGO` to itself.
pub fn cargo_mutants(install: bool) -> anyhow::Result<PathBuf> {
    if let Some(found) = find_cargo_mutants() {
        return Ok(found);
    }
    let command = format!("cargo install --locked cargo-mutants --version {CARGO_MUTANTS_VERSION}");
    if !install {
        bail!("cargo-mutants is not installed: run `{command}` (or add --install)");
    }
    noteln!("installing cargo-mutants: {command}");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", "--locked", "cargo-mutants", "--version", CARGO_MUTANTS_VERSION])
        .status()
        .context("running cargo install")?;
    if !status.success() {
        bail!("`{command}` failed");
    }
    find_cargo_mutants().context("cargo-mutants was installed but is neither on PATH nor in $CARGO_HOME/bin")
}

fn find_cargo_mutants() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|d| d.join("cargo-mutants")).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| h.join("bin/cargo-mutants"));
    on_path.into_iter().chain(cargo_home).find(|p| p.is_file())
}

pub fn tool_version(tool: &Path) -> anyhow::Result<String> {
    let output = Command::new(tool).args(["mutants", "--version"]).output().context("cargo-mutants --version")?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}
