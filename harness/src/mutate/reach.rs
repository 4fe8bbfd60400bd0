//! Which missed mutants sit on lines the suite never ran. A tracefile of `sendtest coverage`
//! run with the mutation suite's cases on the same tree splits the work list in two: a mutant
//! on a line that never ran needs a case or an operation that reaches the line; one on a line
//! that ran needs a check that notices what the fault changes.

use std::path::Path;

use anyhow::{Context, Result};

use super::run::{MutantResult, Verdict};
use crate::coverage::tracefile::{FileCoverage, Tracefile};

/// How far the suite got to a mutant's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The line has code and never ran, or has no count of its own and is in a function
    /// that was never called.
    NeverRan,
    /// The line ran this many times.
    Ran(u64),
    /// The tracefile has no count for the line (no code of its own, such as the rest of a
    /// statement that starts above, or code the compiler folded into another line's) in a
    /// function that ran, or no record of the file.
    NoCount,
}

impl Reach {
    fn label(self) -> String {
        match self {
            Reach::NeverRan => "never-ran".into(),
            Reach::Ran(times) => format!("ran-{times}"),
            Reach::NoCount => "no-count".into(),
        }
    }
}

/// The coverage of `file` (relative to its tree) in `tracefile`: the record of `tree/file`, or
/// the one record whose path ends in `/file`.
fn file_in<'t>(tracefile: &'t Tracefile, tree: &Path, file: &str) -> Option<&'t FileCoverage> {
    let full = tree.join(file).display().to_string();
    tracefile.files.get(&full).or_else(|| {
        let suffix = format!("/{file}");
        let mut found = tracefile.files.iter().filter(|(n, _)| n.ends_with(&suffix));
        match (found.next(), found.next()) {
            (Some((_, coverage)), None) => Some(coverage),
            _ => None,
        }
    })
}

/// Whether `tracefile` has a record of `file` (relative to `tree`).
pub fn covers(tracefile: &Tracefile, tree: &Path, file: &str) -> bool {
    file_in(tracefile, tree, file).is_some()
}

/// How far `tracefile` says the suite got to `line` of `file`.
pub fn reach(tracefile: &Tracefile, tree: &Path, file: &str, line: usize) -> Reach {
    let Some(coverage) = file_in(tracefile, tree, file) else {
        return Reach::NoCount;
    };
    match coverage.lines.get(&line) {
        Some(0) => Reach::NeverRan,
        Some(&times) => Reach::Ran(times),
        None => {
            // The function the line is in: the one that starts last before it.
            let calls = coverage
                .functions
                .values()
                .filter(|(first, _)| *first <= line)
                .max_by_key(|(first, _)| *first)
                .map(|(_, calls)| *calls);
            match calls {
                Some(0) => Reach::NeverRan,
                _ => Reach::NoCount,
            }
        }
    }
}

/// The missed mutants by reach.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReachCounts {
    pub never_ran: usize,
    pub ran: usize,
    pub no_count: usize,
}

impl ReachCounts {
    pub fn line(&self, tracefiles: &str) -> String {
        format!(
            "of {} missed: {} on lines the suite never ran (or in functions it never called), {} on lines it ran, {} on lines without a count of their own in functions it called (by {tracefiles}; missed-reach.txt)",
            self.never_ran + self.ran + self.no_count,
            self.never_ran,
            self.ran,
            self.no_count
        )
    }
}

/// Writes `missed-reach.txt` into `dir`: each missed mutant's line of `missed.txt`, after its
/// reach (`never-ran`, `ran-N`, `no-count`), never-ran first. `--only` takes the file, or
/// the lines of one reach (`grep ^never-ran`), as a work list.
pub fn write(
    dir: &Path,
    results: &[MutantResult],
    tracefile: &Tracefile,
    tree: &Path,
) -> Result<ReachCounts> {
    let mut counts = ReachCounts::default();
    let mut rows: Vec<(u8, String)> = Vec::new();
    for result in results {
        if result.verdict != Verdict::Missed {
            continue;
        }
        let m = &result.mutant;
        let reach = reach(tracefile, tree, &m.file, m.line);
        let order = match reach {
            Reach::NeverRan => {
                counts.never_ran += 1;
                0
            }
            Reach::Ran(_) => {
                counts.ran += 1;
                1
            }
            Reach::NoCount => {
                counts.no_count += 1;
                2
            }
        };
        let row = format!("{:<10} {}", reach.label(), super::run::result_line(result));
        rows.push((order, row));
    }
    rows.sort_by_key(|(order, _)| *order);
    let text: String = rows.into_iter().map(|(_, row)| row + "\n").collect();
    std::fs::write(dir.join("missed-reach.txt"), text).context("writing missed-reach.txt")?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutate::mutant::Mutant;
    use std::time::Duration;

    const TRACE: &str = "TN:\nSF:/src/linux/fs/btrfs/send.c\nFN:9,send_cmd\nFN:20,send_verity\n\
        FNDA:4,send_cmd\nFNDA:0,send_verity\nDA:10,4\nDA:12,0\nDA:21,0\nLF:3\nLH:1\nend_of_record\n";

    fn missed(file: &str, line: usize) -> MutantResult {
        let id = format!("{file}:{line}:negate-if:1");
        MutantResult {
            mutant: Mutant::for_tests(&id, file, line),
            verdict: Verdict::Missed,
            elapsed: Duration::ZERO,
            resumed: false,
        }
    }

    #[test]
    fn a_line_that_ran_one_that_never_did_and_one_without_a_count() {
        let trace = Tracefile::parse(TRACE).unwrap();
        let tree = Path::new("/src/linux");
        assert_eq!(reach(&trace, tree, "fs/btrfs/send.c", 10), Reach::Ran(4));
        assert_eq!(reach(&trace, tree, "fs/btrfs/send.c", 12), Reach::NeverRan);
        assert_eq!(reach(&trace, tree, "fs/btrfs/send.c", 11), Reach::NoCount);
        // No count of its own, in a function never called.
        assert_eq!(reach(&trace, tree, "fs/btrfs/send.c", 23), Reach::NeverRan);
        assert!(covers(&trace, tree, "fs/btrfs/send.c"));
        assert!(!covers(&trace, tree, "fs/btrfs/ctree.c"));
        // A tracefile of the same tree elsewhere: its one record that ends in the file.
        let moved = Path::new("/elsewhere/linux");
        assert_eq!(reach(&trace, moved, "fs/btrfs/send.c", 12), Reach::NeverRan);
        assert_eq!(reach(&trace, tree, "fs/btrfs/ctree.c", 10), Reach::NoCount);
    }

    #[test]
    fn the_work_list_puts_never_ran_first_and_keeps_the_ids() {
        let dir = tempfile::tempdir().unwrap();
        let trace = Tracefile::parse(TRACE).unwrap();
        let mut caught = missed("fs/btrfs/send.c", 10);
        caught.verdict = Verdict::Caught {
            case: "random".into(),
            reason: "r".into(),
        };
        let results = [
            missed("fs/btrfs/send.c", 10),
            missed("fs/btrfs/send.c", 11),
            missed("fs/btrfs/send.c", 12),
            caught,
        ];
        let counts = write(dir.path(), &results, &trace, Path::new("/src/linux")).unwrap();
        assert_eq!(
            counts,
            ReachCounts {
                never_ran: 1,
                ran: 1,
                no_count: 1
            }
        );
        let text = std::fs::read_to_string(dir.path().join("missed-reach.txt")).unwrap();
        let firsts: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(firsts, ["never-ran", "ran-4", "no-count"]);
        let ids = crate::mutate::mutant::ids_in(&text);
        assert_eq!(ids.len(), 3);
        assert!(ids.contains("fs/btrfs/send.c:12:negate-if:1"));
    }
}
