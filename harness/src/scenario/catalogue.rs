//! The catalogue on disk: scenario files under `scenarios/`, their snapshots under
//! `snapshots/<verifier>/<namespace>/<id>.snap` in insta's file format (so `cargo insta review`
//! works on them), and the comparison of a run with its snapshot.

use std::path::{Path, PathBuf};

use super::{Scenario, ScenarioError};

/// The header every snapshot file starts with: insta's metadata block, as the per-scenario
/// tests in `harness/tests/scenarios.rs` write it.
const HEADER: &str = "---\nsource: harness/tests/scenarios.rs\nexpression: snapshot\n---\n";

/// Where the scenarios and snapshots are.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// `scenarios/`.
    pub scenarios: PathBuf,
    /// `snapshots/`.
    pub snapshots: PathBuf,
}

/// How a run compares with its stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotState {
    /// Byte-identical (modulo trailing whitespace, as insta compares).
    Same,
    /// Different: a unified diff, old to new.
    Changed(String),
    /// No snapshot yet.
    New,
}

impl SnapshotState {
    /// `same`, `changed`, `new`.
    pub fn label(&self) -> &'static str {
        match self {
            SnapshotState::Same => "same",
            SnapshotState::Changed(_) => "changed",
            SnapshotState::New => "new",
        }
    }
}

impl Catalogue {
    /// The workspace this crate was built in.
    pub fn workspace_root() -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        root.canonicalize().unwrap_or(root)
    }

    /// The catalogue of a workspace (or a copy of one).
    pub fn at(root: &Path) -> Catalogue {
        Catalogue { scenarios: root.join("scenarios"), snapshots: root.join("snapshots") }
    }

    /// Every scenario file, `scenarios/<namespace>/<id>.toml`, sorted by id.
    pub fn files(&self) -> Result<Vec<PathBuf>, ScenarioError> {
        let read = |dir: &Path| {
            std::fs::read_dir(dir).map_err(|source| ScenarioError::Read { path: dir.to_path_buf(), source })
        };
        let mut files = Vec::new();
        for namespace in read(&self.scenarios)? {
            let namespace = namespace.map_err(|source| ScenarioError::Read { path: self.scenarios.clone(), source })?;
            if !namespace.path().is_dir() {
                continue;
            }
            for file in read(&namespace.path())? {
                let file = file.map_err(|source| ScenarioError::Read { path: namespace.path(), source })?;
                if file.path().extension().is_some_and(|e| e == "toml") {
                    files.push(file.path());
                }
            }
        }
        files.sort();
        Ok(files)
    }

    /// Loads one file.
    pub fn load(&self, path: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::load(&self.scenarios, path)
    }

    /// The id a file has.
    pub fn id_of(&self, path: &Path) -> Option<String> {
        Scenario::id_of(&self.scenarios, path)
    }

    /// The snapshot file of a scenario for one verifier directory (`builtin`, `ats`, ...).
    pub fn snapshot_path(&self, verifier_dir: &str, id: &str) -> PathBuf {
        let mut path = self.snapshots.join(verifier_dir);
        let parts: Vec<&str> = id.split("::").collect();
        for (i, part) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                path = path.join(format!("{part}.snap"));
            } else {
                path = path.join(part);
            }
        }
        path
    }

    /// The stored snapshot's content (without insta's header), if any.
    pub fn read_snapshot(&self, path: &Path) -> Option<String> {
        let text = std::fs::read_to_string(path).ok()?;
        Some(strip_header(&text).to_string())
    }

    /// Writes a snapshot in insta's format.
    pub fn write_snapshot(&self, path: &Path, content: &str) -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, format!("{HEADER}{}\n", content.trim_end()))
    }

    /// How `content` compares with the stored snapshot at `path`.
    pub fn compare(&self, path: &Path, content: &str) -> SnapshotState {
        match self.read_snapshot(path) {
            None => SnapshotState::New,
            Some(old) if old.trim_end() == content.trim_end() => SnapshotState::Same,
            Some(old) => SnapshotState::Changed(diff(old.trim_end(), content.trim_end())),
        }
    }
}

/// The content of an insta snapshot file.
pub fn strip_header(text: &str) -> &str {
    if let Some(rest) = text.strip_prefix("---\n")
        && let Some(end) = rest.find("\n---\n")
    {
        return &rest[end + 5..];
    }
    text
}

/// A unified diff with a little context.
pub fn diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new).unified_diff().context_radius(2).header("snapshot", "this run").to_string()
}
