//! `MRALAB_SNAPSHOTS`: which checks the tests that compare runs with committed snapshots make.
//! Included with `mod snapshot_mode;`.
//!
//! - unset or `on`: written expectations and snapshots, as always;
//! - `off`: written expectations and unit tests only; no snapshot is compared (or written);
//! - `only`: snapshots only; written expectations are not checked.
//!
//! `cargo xtask mutants` judges each mutant with `off` first and, for the mutants nothing caught,
//! with `only`: a mutant caught by a snapshot alone is one a careless `--accept` would bless.

#![allow(dead_code)] // each test file uses a part of it

/// The variable's name.
pub const VARIABLE: &str = "MRALAB_SNAPSHOTS";

/// Which checks to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Expectations and snapshots.
    On,
    /// Expectations only.
    Off,
    /// Snapshots only.
    Only,
}

impl SnapshotMode {
    /// From `MRALAB_SNAPSHOTS`. Any other value stops the test run: a misspelt `of` must not
    /// quietly compare snapshots.
    pub fn from_env() -> SnapshotMode {
        let value = std::env::var(VARIABLE).ok();
        SnapshotMode::parse(value.as_deref())
            .unwrap_or_else(|| panic!("{VARIABLE}={}: use on, off or only", value.unwrap_or_default()))
    }

    /// `None` (unset) and `on`, `off`, `only`; anything else is `None`.
    pub fn parse(value: Option<&str>) -> Option<SnapshotMode> {
        match value.map(str::trim) {
            None | Some("" | "on") => Some(SnapshotMode::On),
            Some("off") => Some(SnapshotMode::Off),
            Some("only") => Some(SnapshotMode::Only),
            Some(_) => None,
        }
    }

    /// Whether written expectations are checked.
    pub fn expectations(self) -> bool {
        self != SnapshotMode::Only
    }

    /// Whether snapshots are compared.
    pub fn snapshots(self) -> bool {
        self != SnapshotMode::Off
    }
}
