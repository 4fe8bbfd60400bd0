//! `sendtest report`: a finding as a plain-text bug report in the form the linux-btrfs list
//! expects: a subject, where it was seen, a reproducer script, the relevant lines of `btrfs
//! receive --dump`, what was expected and what was got, the proposed fix, and an fstests test
//! with its golden output. Everything comes from one failing run of the case: its results
//! directory holds the script, the kept stream's dump and the fstests test.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use crate::case::{Case, Component};
use crate::outcome::{CaseResult, Outcome};
use crate::random::{FAILED_DUMP, FSTESTS_TEST};

/// A dump this long or shorter is quoted whole; a longer one only where it names a path
/// that differs.
const WHOLE_DUMP: usize = 40;

/// What a report is about: a case of a finding, or a seed of the random case.
pub struct Finding<'a> {
    /// One line on what goes wrong.
    pub summary: String,
    /// How to run it again: `sendtest run CASE` or `sendtest run random --seed S`.
    pub rerun: String,
    /// The proposed fix, if there is one.
    pub proposed: Option<&'a str>,
    /// What the bug and its fix are in: send in the kernel, or receive in btrfs-progs.
    pub component: Component,
    /// The reproducer script and the fstests test, in the run's results.
    pub script: String,
    pub test: String,
}

impl Finding<'_> {
    pub fn of_case(case: &Case) -> Finding<'_> {
        Finding {
            summary: case.summary.to_string(),
            rerun: format!("sendtest run {}", case.name),
            proposed: case.fix.proposed,
            component: case.fix.applies_to,
            script: "replay.sh".into(),
            test: FSTESTS_TEST.into(),
        }
    }

    /// Seed `seed` of the random case, whose failing run said `message`.
    pub fn of_seed(seed: u64, message: &str) -> Finding<'static> {
        let what = crate::random::what_differs(message);
        let summary = if what.is_empty() {
            format!("seed {seed} of a random list fails")
        } else {
            format!(
                "a received file differs from its source ({})",
                what.join("; ")
            )
        };
        Finding {
            summary,
            rerun: format!("sendtest run random --seed {seed}"),
            proposed: None,
            component: Component::Kernel,
            script: format!("random-{seed}.sh"),
            test: format!("random-{seed}.fstests"),
        }
    }

    /// The known bug a failure `message` was matched to, if any: `known bug `NAME`: …`.
    pub fn known_bug(message: &str) -> Option<&str> {
        message.strip_prefix("known bug `")?.split('`').next()
    }
}

/// The report of a finding's failing run `result`, seen on `seen` (kernel and btrfs-progs, as
/// the run's properties say them).
pub fn text(finding: &Finding<'_>, result: &CaseResult, seen: &[(&str, String)]) -> Result<String> {
    let Outcome::Failed(message) = &result.outcome else {
        anyhow::bail!(
            "`{}` did not fail, so there is nothing to report",
            finding.rerun
        );
    };
    let dir = &result.dir;
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .with_context(|| format!("the failing run kept no {name} in {}", dir.display()))
    };
    let script = read(&finding.script)?;
    let dump = read(FAILED_DUMP)?;
    let test = read(&finding.test)?;
    let golden = read(&format!("{}.out", finding.test))?;
    let message = message.lines().next().unwrap_or_default();

    let mut s = String::new();
    let (subject, fix_against) = match finding.component {
        Component::Kernel => ("btrfs send", "linux 6.1"),
        Component::BtrfsProgs => ("btrfs-progs receive", "btrfs-progs 6.2"),
    };
    let _ = writeln!(s, "Subject: [BUG] {subject}: {}\n", finding.summary);
    let opening = format!(
        "btrfs send/receive gets a file wrong: {}. The random case of sendtest (a send/receive \
         regression harness) found it; the operations below are what its shrinker left of a \
         longer random list.",
        finding.summary
    );
    let _ = writeln!(s, "Hello,\n\n{}", wrap(&opening, 72));
    let _ = writeln!(s, "Seen on:");
    for (name, value) in seen {
        let _ = writeln!(s, "  {name}: {value}");
    }
    let _ = writeln!(
        s,
        "\nExpected and actual (the received tree against its source):\n  {message}\n"
    );
    let _ = writeln!(
        s,
        "Reproducer (bash, as root; it makes two loop devices and removes them):\n\n{}",
        indent(&script)
    );
    let _ = writeln!(
        s,
        "The stream, as `btrfs receive --dump` shows it{}:\n\n{}",
        if dump.lines().count() > WHOLE_DUMP {
            " (the lines of the paths that differ)"
        } else {
            ""
        },
        indent(&relevant(&dump, message))
    );
    match finding.proposed {
        Some(patch) => {
            let _ = writeln!(
                s,
                "Proposed fix (against {fix_against}; `sendtest validate` shows `{}` failing\n\
                 without it and passing with it):\n\n{}",
                finding.rerun,
                indent(patch)
            );
        }
        None => {
            let _ = writeln!(s, "No fix is proposed yet.\n");
        }
    }
    let _ = writeln!(
        s,
        "An fstests test, tests/btrfs/NNN (it fails without the fix):\n\n{}\n\
         tests/btrfs/NNN.out:\n\n{}",
        indent(&test),
        indent(&golden)
    );
    Ok(s)
}

/// The lines of `dump` worth quoting: all of a short one; of a long one, its first line (the
/// subvolume or snapshot) and those naming a path the failure `message` names.
fn relevant(dump: &str, message: &str) -> String {
    if dump.lines().count() <= WHOLE_DUMP {
        return dump.to_string();
    }
    let paths = differing_paths(message);
    let mut out: Vec<&str> = dump.lines().take(2).collect();
    out.extend(dump.lines().skip(2).filter(|line| {
        line.split_whitespace()
            .nth(1)
            .is_some_and(|p| paths.iter().any(|d| p.ends_with(&format!("/{d}"))))
    }));
    out.join("\n") + "\n"
}

/// The paths a comparison's failure message names: `… differs from its source: f: field size:
/// …; d/g: field mode: …`.
fn differing_paths(message: &str) -> Vec<String> {
    let Some((_, list)) = message.split_once("differs from its source: ") else {
        return Vec::new();
    };
    list.split("; ")
        .filter_map(|item| item.split_once(": ").map(|(path, _)| path.to_string()))
        .collect()
}

/// `text` as lines of at most `width` columns, broken between words.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("    {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paths_that_differ_pick_the_dump_lines() {
        let message = "received snapshot 1 differs from its source: f: field size: expected 635 got 24; d/g: field mode: expected 4755 got 755";
        assert_eq!(differing_paths(message), ["f", "d/g"]);
        let mut dump = String::from("# header\nsnapshot ./s uuid=1\n");
        for i in 0..50 {
            dump.push_str(&format!("mkfile ./s/o{i}\n"));
        }
        dump.push_str(
            "write ./s/f offset=0 len=24\nchmod ./s/d/g mode=755\nwrite ./s/ff offset=0\n",
        );
        assert_eq!(
            relevant(&dump, message),
            "# header\nsnapshot ./s uuid=1\nwrite ./s/f offset=0 len=24\nchmod ./s/d/g mode=755\n"
        );
        assert_eq!(relevant("a\nb\n", message), "a\nb\n");
    }

    #[test]
    fn prose_is_wrapped_between_words() {
        assert_eq!(wrap("aaa bbb ccc dd", 7), "aaa bbb\nccc dd\n");
    }

    #[test]
    fn a_run_that_passed_has_no_report() {
        let case = crate::case::test_case("passes", &[]);
        let finding = Finding::of_case(&case);
        let result = CaseResult {
            name: "passes".into(),
            iteration: 1,
            outcome: Outcome::Passed,
            elapsed: std::time::Duration::ZERO,
            dir: "/nonexistent".into(),
        };
        assert!(text(&finding, &result, &[]).is_err());
        let seed = Finding::of_seed(
            9,
            "seed 9: received snapshot 0 differs from its source: f0: field size: expected 20 got 18; shrunk to 9 operations",
        );
        assert_eq!(
            seed.summary,
            "a received file differs from its source (f0: size expected 20 got 18)"
        );
        let known = "known bug `b`: seed 9: received snapshot 0 differs from its source: f0: field sha256: expected 1 got 2; f0: field size: expected 20 got 18; shrunk to 9 operations";
        assert_eq!(
            Finding::of_seed(9, known).summary,
            "a received file differs from its source (f0: data; f0: size expected 20 got 18)"
        );
        assert_eq!(Finding::known_bug(known), Some("b"));
        assert_eq!(Finding::known_bug("seed 9: …"), None);
        assert_eq!(seed.test, "random-9.fstests");
    }
}
