//! The differential check: two verifiers over the catalogue (the real Apache Traffic Server and
//! one of the model's profiles), request by request, field by field: verdict, error text and
//! depth, the name-check line, the number of WARNING and of ERROR lines, the number of attempts
//! (connections that reached the node), the status and its reason phrase, and the TLS alert the
//! node received. Differences that are
//! understood and accepted are listed in one file of known divergences
//! (`divergences/<left>--<right>.toml`), each naming one scenario, one request and one field,
//! with the reason and the evidence; an entry that no longer diverges is stale and fails.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use super::matrix::{Cell, Matrix};

/// One field on which two verifiers differ for one request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    /// The scenario id.
    pub scenario: String,
    /// `step N: <peer> -> <METHOD> <url>`.
    pub request: String,
    /// `verdict`, `error`, `name-line`, `warnings`, `errors`, `attempts`, `status`, `reason`,
    /// `alert`, or `presence` (one made it, the other not).
    pub field: String,
    /// The left verifier's value.
    pub left: String,
    /// The right verifier's value.
    pub right: String,
}

/// One accepted divergence.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Known {
    /// The scenario id.
    pub scenario: String,
    /// The request, as the comparison names it.
    pub request: String,
    /// The field.
    pub field: String,
    /// Why the two differ.
    pub reason: String,
    /// An observed run or a source line.
    pub evidence: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownFile {
    #[serde(default)]
    divergence: Vec<Known>,
}

/// The verdict of a comparison against the known divergences.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Requests compared.
    pub requests: usize,
    /// Differences no entry covers.
    pub unexpected: Vec<Difference>,
    /// Differences a known entry covers.
    pub known: Vec<(Difference, Known)>,
    /// Entries that no longer diverge.
    pub stale: Vec<Known>,
}

impl Comparison {
    /// Whether the comparison passes: nothing unexpected, nothing stale.
    pub fn passes(&self) -> bool {
        self.unexpected.is_empty() && self.stale.is_empty()
    }
}

fn fields(cell: &Cell) -> [(&'static str, String); 9] {
    [
        ("verdict", cell.verdict.clone()),
        ("error", cell.error.clone()),
        ("name-line", cell.name_line.clone().unwrap_or_default()),
        ("warnings", cell.warnings.to_string()),
        ("errors", cell.errors.to_string()),
        ("attempts", cell.attempts.to_string()),
        ("status", cell.status.to_string()),
        ("reason", cell.reason.clone()),
        ("alert", cell.alert.clone()),
    ]
}

/// Every field difference between the matrix's two columns.
pub fn differences(matrix: &Matrix) -> (usize, Vec<Difference>) {
    let mut out = Vec::new();
    let mut requests = 0;
    for row in &matrix.rows {
        let (Some(left), Some(right)) = (row.cells.first(), row.cells.get(1)) else { continue };
        requests += 1;
        let request = format!("step {}: {}", row.step, row.request);
        let diff = |field: &str, left: String, right: String| Difference {
            scenario: row.scenario.clone(),
            request: request.clone(),
            field: field.to_string(),
            left,
            right,
        };
        match (left, right) {
            (Some(l), Some(r)) => {
                for ((field, a), (_, b)) in fields(l).into_iter().zip(fields(r)) {
                    if a != b {
                        out.push(diff(field, a, b));
                    }
                }
            }
            (None, None) => {}
            (l, r) => out.push(diff(
                "presence",
                l.as_ref().map_or("-".into(), Cell::text),
                r.as_ref().map_or("-".into(), Cell::text),
            )),
        }
    }
    (requests, out)
}

/// A known-divergences file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DivergenceFileError {
    /// The file exists but could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a valid divergences file (the TOML reader's error with line and column).
    #[error("{}: {}", path.display(), crate::source::with_suggestion(&source.to_string(), &[]))]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// The TOML reader's error.
        source: Box<toml::de::Error>,
    },
}

/// Reads a known-divergences file; a missing file means none.
pub fn load_known(path: &Path) -> Result<Vec<Known>, DivergenceFileError> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(DivergenceFileError::Read { path: path.into(), source }),
        Ok(text) => toml::from_str::<KnownFile>(&text)
            .map(|f| f.divergence)
            .map_err(|e| DivergenceFileError::Parse { path: path.into(), source: Box::new(e) }),
    }
}

/// Compares the matrix's two columns against the known divergences. Only scenarios in
/// `scenarios` can make an entry stale (a filtered run does not judge the others).
pub fn compare(matrix: &Matrix, known: &[Known], scenarios: &BTreeSet<String>) -> Comparison {
    let (requests, diffs) = differences(matrix);
    let mut out = Comparison { requests, ..Comparison::default() };
    let mut used = vec![false; known.len()];
    for d in diffs {
        let hit = known.iter().position(|k| k.scenario == d.scenario && k.request == d.request && k.field == d.field);
        match hit {
            Some(i) => {
                used[i] = true;
                out.known.push((d, known[i].clone()));
            }
            None => out.unexpected.push(d),
        }
    }
    out.stale = known
        .iter()
        .zip(used)
        .filter(|(k, used)| !used && scenarios.contains(&k.scenario))
        .map(|(k, _)| k.clone())
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::matrix::Row;

    fn cell(verdict: &str, warnings: usize) -> Option<Cell> {
        Some(Cell {
            verdict: verdict.into(),
            error: String::new(),
            status: 200,
            warnings,
            errors: 0,
            attempts: 1,
            reason: "OK".into(),
            alert: String::new(),
            name_line: None,
        })
    }

    fn matrix(rows: Vec<(Option<Cell>, Option<Cell>)>) -> Matrix {
        Matrix {
            verifiers: vec!["ats".into(), "builtin:ats-9.2".into()],
            rows: rows
                .into_iter()
                .enumerate()
                .map(|(i, (a, b))| Row {
                    scenario: "seed::x".into(),
                    step: i + 1,
                    request: "vcsc -> GET https://cucm.steven.lab:8443/".into(),
                    cells: vec![a, b],
                })
                .collect(),
        }
    }

    fn known(step: usize, field: &str) -> Known {
        Known {
            scenario: "seed::x".into(),
            request: format!("step {step}: vcsc -> GET https://cucm.steven.lab:8443/"),
            field: field.into(),
            reason: "r".into(),
            evidence: "e".into(),
        }
    }

    #[test]
    fn a_known_divergence_passes_an_unknown_one_fails_and_a_cured_one_is_stale() {
        let m = matrix(vec![(cell("accept", 0), cell("accept", 0)), (cell("reject", 1), cell("reject", 4))]);
        let ids: BTreeSet<String> = ["seed::x".to_string()].into();
        let unknown = compare(&m, &[], &ids);
        assert_eq!(unknown.requests, 2);
        assert_eq!(unknown.unexpected.len(), 1);
        assert_eq!((unknown.unexpected[0].field.as_str(), unknown.unexpected[0].left.as_str()), ("warnings", "1"));
        assert!(!unknown.passes());
        let covered = compare(&m, &[known(2, "warnings")], &ids);
        assert!(covered.passes(), "{covered:?}");
        let stale = compare(&m, &[known(2, "warnings"), known(1, "verdict")], &ids);
        assert_eq!(stale.stale.len(), 1);
        assert!(!stale.passes());
        let elsewhere = compare(&m, &[known(2, "warnings"), known(1, "verdict")], &BTreeSet::new());
        assert!(elsewhere.stale.is_empty(), "a filtered run does not judge other scenarios");
    }

    #[test]
    fn a_request_only_one_verifier_made_is_a_presence_difference() {
        let m = matrix(vec![(cell("accept", 0), None)]);
        let result = compare(&m, &[], &["seed::x".to_string()].into());
        assert_eq!(result.unexpected[0].field, "presence");
    }
}
