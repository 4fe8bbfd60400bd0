//! What a merged tracefile says, for a person: per file, per function (largest first), and for
//! the lines a patch changes.

use std::collections::{BTreeMap, BTreeSet};

use super::tracefile::{FileCoverage, Tracefile};

/// Hit and total counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    pub hit: usize,
    pub total: usize,
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.total == 0 {
            return write!(f, "0/0");
        }
        write!(
            f,
            "{}/{} ({:.1}%)",
            self.hit,
            self.total,
            100.0 * self.hit as f64 / self.total as f64
        )
    }
}

/// One function's coverage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub line: usize,
    pub calls: u64,
    /// The lines with code from this function's first line to the next function's.
    pub lines: Ratio,
}

pub struct FileSummary {
    pub lines: Ratio,
    pub functions: Ratio,
    pub branches: Ratio,
}

pub fn summary(file: &FileCoverage) -> FileSummary {
    FileSummary {
        lines: Ratio {
            hit: file.lines.values().filter(|c| **c > 0).count(),
            total: file.lines.len(),
        },
        functions: Ratio {
            hit: file.functions.values().filter(|(_, c)| *c > 0).count(),
            total: file.functions.len(),
        },
        branches: Ratio {
            hit: file
                .branches
                .values()
                .filter(|t| t.unwrap_or(0) > 0)
                .count(),
            total: file.branches.len(),
        },
    }
}

/// The file's functions, largest (most lines with code) first. A line belongs to the function
/// that starts last at or before it.
pub fn functions(file: &FileCoverage) -> Vec<Function> {
    let mut starts: Vec<(usize, &String, u64)> = file
        .functions
        .iter()
        .map(|(name, (line, calls))| (*line, name, *calls))
        .collect();
    starts.sort();
    let mut functions: Vec<Function> = starts
        .iter()
        .enumerate()
        .map(|(i, (line, name, calls))| {
            let end = starts.get(i + 1).map_or(usize::MAX, |next| next.0);
            let mut lines = Ratio::default();
            for (_, count) in file.lines.range(*line..end) {
                lines.total += 1;
                lines.hit += usize::from(*count > 0);
            }
            Function {
                name: name.to_string(),
                line: *line,
                calls: *calls,
                lines,
            }
        })
        .collect();
    functions.sort_by(|a, b| b.lines.total.cmp(&a.lines.total).then(a.line.cmp(&b.line)));
    functions
}

/// The lines a patch changes that have code, in one file: which ran and which did not.
#[derive(Debug, PartialEq, Eq)]
pub struct DiffCoverage {
    pub file: String,
    /// Lines the patch adds or changes in the file.
    pub changed: usize,
    pub ran: Vec<usize>,
    pub not_reached: Vec<usize>,
}

/// For each file of `changed` (paths relative to the tree) found in `tracefile` under `tree`.
pub fn in_diff(
    tracefile: &Tracefile,
    tree: &str,
    changed: &BTreeMap<String, BTreeSet<usize>>,
) -> Vec<DiffCoverage> {
    let mut out = Vec::new();
    for (rel, lines) in changed {
        let path = format!("{}/{rel}", tree.trim_end_matches('/'));
        let Some(file) = tracefile.files.get(&path) else {
            continue;
        };
        let mut diff = DiffCoverage {
            file: rel.clone(),
            changed: lines.len(),
            ran: Vec::new(),
            not_reached: Vec::new(),
        };
        for line in lines {
            match file.lines.get(line) {
                Some(0) => diff.not_reached.push(*line),
                Some(_) => diff.ran.push(*line),
                None => {}
            }
        }
        out.push(diff);
    }
    out
}

/// The text report: each file of `tracefile` (named relative to `tree`), with its `top`
/// largest functions.
pub fn text(tracefile: &Tracefile, tree: &str, top: usize) -> String {
    let mut out = String::new();
    for (path, file) in &tracefile.files {
        let name = path
            .strip_prefix(tree.trim_end_matches('/'))
            .map_or(path.as_str(), |r| r.trim_start_matches('/'));
        let s = summary(file);
        out.push_str(&format!(
            "{name}: lines {}, functions {}, branches {}\n",
            s.lines, s.functions, s.branches
        ));
        if top == 0 {
            continue;
        }
        for f in functions(file).iter().take(top) {
            out.push_str(&format!(
                "  {:<40} line {:>5}  lines {:<20} calls {}\n",
                f.name,
                f.line,
                f.lines.to_string(),
                f.calls
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> FileCoverage {
        let mut file = FileCoverage::default();
        file.functions.insert("small".into(), (1, 3));
        file.functions.insert("big".into(), (10, 0));
        for (line, count) in [(1, 3), (2, 3), (10, 0), (11, 0), (12, 0), (13, 1)] {
            file.lines.insert(line, count);
        }
        file
    }

    #[test]
    fn lines_go_to_the_function_they_follow_and_the_largest_comes_first() {
        let functions = functions(&file());
        assert_eq!(functions[0].name, "big");
        assert_eq!(functions[0].lines, Ratio { hit: 1, total: 4 });
        assert_eq!(functions[1].name, "small");
        assert_eq!(functions[1].lines, Ratio { hit: 2, total: 2 });
        assert_eq!(summary(&file()).functions, Ratio { hit: 1, total: 2 });
    }

    #[test]
    fn a_patch_s_lines_split_into_ran_and_not_reached() {
        let mut tracefile = Tracefile::default();
        tracefile.files.insert("/t/fs/a.c".into(), file());
        let changed = BTreeMap::from([
            ("fs/a.c".to_string(), BTreeSet::from([2, 3, 11, 13])),
            ("fs/other.c".to_string(), BTreeSet::from([1])),
        ]);
        let diff = in_diff(&tracefile, "/t", &changed);
        assert_eq!(
            diff,
            [DiffCoverage {
                file: "fs/a.c".into(),
                changed: 4,
                ran: vec![2, 13],
                not_reached: vec![11],
            }]
        );
        let report = text(&tracefile, "/t/", 1);
        assert!(report.starts_with("fs/a.c: lines 3/6 (50.0%), functions 1/2 (50.0%)"));
        assert!(report.contains("  big "));
        assert!(!report.contains("  small "));
    }
}
