//! What the user reads: one line per case as it ends, a summary, and the exit code.

use crate::runner::{CaseResult, Outcome};

/// All cases passed.
pub const EXIT_PASSED: u8 = 0;
/// A case found a problem in the kernel or btrfs-progs.
pub const EXIT_FAILED: u8 = 1;
/// The harness or its environment failed.
pub const EXIT_ERROR: u8 = 2;

/// The line printed when a case ends.
pub fn case_line(result: &CaseResult) -> String {
    let mut line = format!(
        "{:<28} {:<8} {:>6.1}s",
        result.name,
        result.outcome.label(),
        result.elapsed.as_secs_f64()
    );
    if let Some(reason) = result.outcome.reason() {
        line.push_str("  ");
        line.push_str(reason);
    }
    line
}

/// The closing lines: counts, then where the results are.
pub fn summary(results: &[CaseResult], run_dir: &std::path::Path) -> String {
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    let passed = count(|o| *o == Outcome::Passed);
    let failed = count(|o| matches!(o, Outcome::Failed(_)));
    let errors = count(|o| matches!(o, Outcome::Error(_)));
    let not_run = count(|o| matches!(o, Outcome::NotRun(_)));
    let mut out = String::new();
    if errors > 0 {
        out.push_str(&format!(
            "{errors} case(s) could not run to a verdict (harness or environment error)\n"
        ));
    }
    out.push_str(&format!(
        "{passed} passed, {failed} failed, {not_run} skipped\n"
    ));
    out.push_str(&format!("results: {}\n", run_dir.display()));
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn result(outcome: Outcome) -> CaseResult {
        CaseResult {
            name: "c".into(),
            outcome,
            elapsed: Duration::ZERO,
            dir: "d".into(),
        }
    }

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
    fn summary_has_the_plain_closing_line() {
        let text = summary(
            &[result(Outcome::Passed), result(Outcome::Failed("f".into()))],
            "r".as_ref(),
        );
        assert!(
            text.lines().any(|l| l == "1 passed, 1 failed, 0 skipped"),
            "{text}"
        );
    }
}
