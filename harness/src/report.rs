//! What the user and CI systems read: one line per case as it ends, a one-screen summary, JUnit
//! XML, JSON, KTAP, and the exit code. Reporters only read results; they never drive the runner.

mod json;
mod junit;
mod ktap;

pub use json::json;
pub use junit::junit;
pub use ktap::{checker as ktap_checker, ktap};

pub use crate::backend::Properties;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::exec::tail_lines;
use crate::outcome::{CaseResult, Outcome};
use crate::results::Times;
use crate::runner::Rerun;

/// All cases passed.
pub const EXIT_PASSED: u8 = 0;
/// A case found a problem in the kernel or btrfs-progs.
pub const EXIT_FAILED: u8 = 1;
/// The harness or its environment failed.
pub const EXIT_ERROR: u8 = 2;

/// Lines of a case's command log and kernel log that JUnit carries.
const LOG_TAIL_LINES: usize = 40;

/// The line printed when a case ends.
pub fn case_line(result: &CaseResult) -> String {
    let name = if result.iteration > 1 {
        format!("{} #{}", result.name, result.iteration)
    } else {
        result.name.clone()
    };
    let mut line = format!(
        "{:<28} {:<8} {:>6.1}s",
        name,
        result.outcome.label(),
        result.elapsed.as_secs_f64()
    );
    if let Some(reason) = result.outcome.reason() {
        line.push_str("  ");
        line.push_str(reason);
    }
    line
}

/// The line printed when a failed case's reruns (`-L`) end: how often it passed.
pub fn rerun_line(rerun: &Rerun) -> String {
    format!(
        "{}: passed {} of {} reruns ({:.0}%), results in {}",
        rerun.name,
        rerun.passed,
        rerun.ran,
        f64::from(rerun.passed) * 100.0 / f64::from(rerun.ran.max(1)),
        rerun.dir.display()
    )
}

/// What the case asked to show under its result ([`crate::context::Ctx::headline`]), each line
/// indented; none when it asked nothing.
pub fn headlines(result: &CaseResult) -> Vec<String> {
    headline_text(result)
        .lines()
        .map(|l| format!("  {l}"))
        .collect()
}

/// The case's headlines as written; empty when it has none.
pub(crate) fn headline_text(result: &CaseResult) -> String {
    std::fs::read_to_string(result.dir.join(crate::context::HEADLINES)).unwrap_or_default()
}

/// The closing screen, as fstests' `check` ends: each case once with its result over all
/// iterations, its time and its time in earlier runs; then what was not run and why, what
/// failed, the counts, and where the results are.
pub fn summary(results: &[CaseResult], previous: &Times, run_dir: &Path) -> String {
    let mut by_case: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
    for result in results {
        by_case.entry(&result.name).or_default().push(result);
    }
    let mut out = String::new();
    // Names under a configuration (`CASE@NAME`) may be longer than the usual column.
    let width = by_case.keys().map(|n| n.len()).max().unwrap_or(0).max(28);
    if !by_case.is_empty() {
        out.push_str(&format!(
            "{:<width$} {:<14} {:>8} {:>9}\n",
            "case", "result", "time", "previous"
        ));
    }
    for (name, runs) in &by_case {
        let passed = runs.iter().filter(|r| r.outcome == Outcome::Passed).count();
        let verdict = match runs.as_slice() {
            [only] => only.outcome.label().to_string(),
            _ => format!("passed {passed}/{}", runs.len()),
        };
        let ran: Vec<&&CaseResult> = runs
            .iter()
            .filter(|r| !matches!(r.outcome, Outcome::NotRun(_)))
            .collect();
        let time = match ran.len() {
            0 => "-".to_string(),
            1 => format!("{:.1}s", ran[0].elapsed.as_secs_f64()),
            n => {
                let mut times: Vec<Duration> = ran.iter().map(|r| r.elapsed).collect();
                times.sort();
                format!("{:.1}s med", times[n / 2].as_secs_f64())
            }
        };
        let before = previous
            .get(name)
            .map_or("-".to_string(), |t| format!("{:.1}s", t.as_secs_f64()));
        out.push_str(&format!(
            "{name:<width$} {verdict:<14} {time:>8} {before:>9}\n"
        ));
    }
    let mut not_run: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for result in results {
        let label = case_label(result);
        match &result.outcome {
            Outcome::NotRun(why) => not_run.push(format!("{label} ({why})")),
            Outcome::Failed(_) | Outcome::Error(_) => failures.push(label),
            Outcome::Passed => {}
        }
    }
    not_run.dedup();
    if !not_run.is_empty() {
        out.push_str(&format!("Not run: {}\n", not_run.join(", ")));
    }
    if !failures.is_empty() {
        out.push_str(&format!("Failures: {}\n", failures.join(" ")));
    }
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    let errors = count(|o| matches!(o, Outcome::Error(_)));
    if errors > 0 {
        out.push_str(&format!(
            "{errors} case(s) could not run to a verdict (harness or environment error)\n"
        ));
    }
    out.push_str(&format!(
        "{} passed, {} failed, {} skipped\n",
        count(|o| *o == Outcome::Passed),
        count(|o| matches!(o, Outcome::Failed(_))),
        count(|o| matches!(o, Outcome::NotRun(_)))
    ));
    out.push_str(&format!("results: {}\n", run_dir.display()));
    out
}

/// `name`, or `name#k` for iteration k > 1.
pub(crate) fn case_label(result: &CaseResult) -> String {
    if result.iteration > 1 {
        format!("{}#{}", result.name, result.iteration)
    } else {
        result.name.clone()
    }
}

/// 1 if any case failed, else 2 if any could not run to a verdict, else 0.
pub fn exit_code(results: &[CaseResult]) -> u8 {
    if results
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Failed(_)))
    {
        EXIT_FAILED
    } else if results
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Error(_)))
    {
        EXIT_ERROR
    } else {
        EXIT_PASSED
    }
}

pub(crate) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The last lines of the first of `names` that exists in `dir`, with its name.
pub(crate) fn file_tail(dir: &Path, names: &[&str]) -> String {
    for name in names {
        if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
            let tail = tail_lines(&text, LOG_TAIL_LINES).join("\n");
            return format!("--- end of {name} ---\n{tail}\n");
        }
    }
    String::new()
}

/// `text` as a JSON string literal (every JSON document sendtest prints uses it).
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A result of case `c` taking 1.5 s, for the reporters' tests.
#[cfg(test)]
pub(crate) fn test_result(outcome: Outcome) -> CaseResult {
    CaseResult {
        name: "c".into(),
        iteration: 1,
        outcome,
        elapsed: Duration::from_millis(1500),
        dir: "d".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_result as result;

    #[test]
    fn a_finding_outranks_an_environment_error() {
        assert_eq!(exit_code(&[result(Outcome::Passed)]), 0);
        assert_eq!(exit_code(&[result(Outcome::NotRun("x".into()))]), 0);
        assert_eq!(
            exit_code(&[result(Outcome::Error("e".into())), result(Outcome::Passed)]),
            2
        );
        assert_eq!(
            exit_code(&[
                result(Outcome::Error("e".into())),
                result(Outcome::Failed("f".into()))
            ]),
            1
        );
    }

    #[test]
    fn the_summary_has_times_reasons_and_the_plain_closing_line() {
        let mut previous = Times::default();
        previous.record("c", Duration::from_millis(1200));
        let skipped = CaseResult {
            name: "s".into(),
            ..result(Outcome::NotRun("needs send protocol 2".into()))
        };
        let text = summary(
            &[
                result(Outcome::Passed),
                CaseResult {
                    iteration: 2,
                    ..result(Outcome::Failed("f".into()))
                },
                skipped,
            ],
            &previous,
            "r".as_ref(),
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("c ") && l.contains("passed 1/2") && l.ends_with("1.2s")),
            "{text}"
        );
        assert!(
            text.contains("Not run: s (needs send protocol 2)"),
            "{text}"
        );
        assert!(text.contains("Failures: c#2"), "{text}");
        assert!(
            text.lines().any(|l| l == "1 passed, 1 failed, 1 skipped"),
            "{text}"
        );
    }
}
