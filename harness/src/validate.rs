//! Proof that a case guards its fix: it passes every run on a kernel with the fix, and fails
//! on the same kernel with the fix reverted (or, for a fix of btrfs-progs, with btrfs-progs
//! built with the fix and without it).

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use crate::backend::Backend;
use crate::build::progs::ProgsBuild;
use crate::case::Case;
use crate::context::CaseOptions;
use crate::runner::{self, CaseResult, Outcome};

/// The runs on each kernel.
#[derive(Debug, Default)]
pub struct Validation {
    pub with_fix: Vec<CaseResult>,
    pub without_fix: Vec<CaseResult>,
}

impl Validation {
    pub fn passed_with_fix(&self) -> usize {
        self.with_fix
            .iter()
            .filter(|r| r.outcome == Outcome::Passed)
            .count()
    }

    pub fn failed_without_fix(&self) -> usize {
        self.without_fix
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
            .count()
    }

    /// Runs that ended without a verdict (harness or environment errors), on either kernel.
    pub fn errors(&self) -> usize {
        self.with_fix
            .iter()
            .chain(&self.without_fix)
            .filter(|r| matches!(r.outcome, Outcome::Error(_)))
            .count()
    }

    /// Percentage of runs without the fix that failed.
    pub fn detection_rate(&self) -> f64 {
        if self.without_fix.is_empty() {
            return 0.0;
        }
        100.0 * self.failed_without_fix() as f64 / self.without_fix.len() as f64
    }

    /// Time spent running the case without the fix until it first failed.
    pub fn time_to_first_detection(&self) -> Option<Duration> {
        let first = self
            .without_fix
            .iter()
            .position(|r| matches!(r.outcome, Outcome::Failed(_)))?;
        Some(self.without_fix[..=first].iter().map(|r| r.elapsed).sum())
    }

    /// 0 if every run passed with the fix and at least `min_rate` percent (and at least one run)
    /// failed without it; 2 if a run ended without a verdict; 1 otherwise.
    pub fn exit_code(&self, min_rate: f64) -> u8 {
        if self.errors() > 0 {
            crate::report::EXIT_ERROR
        } else if self.passed_with_fix() == self.with_fix.len()
            && self.failed_without_fix() > 0
            && self.detection_rate() >= min_rate
        {
            crate::report::EXIT_PASSED
        } else {
            crate::report::EXIT_FAILED
        }
    }

    /// The table printed at the end.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "with fix:    {}/{} passed",
            self.passed_with_fix(),
            self.with_fix.len()
        );
        let _ = write!(
            out,
            "without fix: {}/{} failed (detection rate {:.0}%)",
            self.failed_without_fix(),
            self.without_fix.len(),
            self.detection_rate()
        );
        match self.time_to_first_detection() {
            Some(time) => {
                let _ = writeln!(out, ", first detection after {:.1}s", time.as_secs_f64());
            }
            None => out.push('\n'),
        }
        if self.errors() > 0 {
            let _ = writeln!(
                out,
                "{} run(s) ended without a verdict; see their outcome files",
                self.errors()
            );
        }
        out
    }
}

/// Where one side of a validation runs: a backend (a guest booting one kernel, or loop
/// devices), and the btrfs-progs build to put first in PATH for it, if the sides differ there.
pub struct Side<'a> {
    pub backend: &'a dyn Backend,
    pub progs: Option<&'a ProgsBuild>,
}

/// Runs `case` `runs` times on each side, one run at a time, with results under
/// `<results>/with-fix/run-<i>/` and `<results>/without-fix/run-<i>/`.
pub fn validate(
    case: &Case,
    with_fix: &Side<'_>,
    without_fix: &Side<'_>,
    runs: usize,
    options: &CaseOptions,
    results: &Path,
    on_done: &dyn Fn(&str, usize, &CaseResult),
) -> anyhow::Result<Validation> {
    let mut validation = Validation::default();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for (label, side) in [("with-fix", with_fix), ("without-fix", without_fix)] {
        if let Some(progs) = side.progs {
            // Only the signal thread runs besides this one, and it never reads the environment.
            progs.put_first_in_path(&path)?;
        }
        for run in 1..=runs {
            if crate::interrupt::requested() {
                std::env::set_var("PATH", path);
                return Ok(validation);
            }
            let dir = results.join(label).join(format!("run-{run}"));
            let result = runner::run_one(case, &dir, *options, side.backend);
            on_done(label, run, &result);
            if label == "with-fix" {
                validation.with_fix.push(result);
            } else {
                validation.without_fix.push(result);
            }
        }
    }
    std::env::set_var("PATH", path);
    Ok(validation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: Outcome, seconds: u64) -> CaseResult {
        CaseResult {
            name: "c".into(),
            iteration: 1,
            outcome,
            elapsed: Duration::from_secs(seconds),
            dir: "d".into(),
        }
    }

    #[test]
    fn a_case_that_catches_its_bug_validates() {
        let v = Validation {
            with_fix: vec![result(Outcome::Passed, 7), result(Outcome::Passed, 7)],
            without_fix: vec![
                result(Outcome::Passed, 5),
                result(Outcome::Failed("x".into()), 6),
            ],
        };
        assert_eq!(v.detection_rate(), 50.0);
        assert_eq!(v.time_to_first_detection(), Some(Duration::from_secs(11)));
        assert_eq!(v.exit_code(1.0), 0);
        assert_eq!(v.exit_code(100.0), 1, "below the required rate");
        assert!(v
            .table()
            .contains("without fix: 1/2 failed (detection rate 50%), first detection after 11.0s"));
    }

    #[test]
    fn a_false_failure_or_no_detection_does_not_validate() {
        let false_failure = Validation {
            with_fix: vec![result(Outcome::Failed("x".into()), 7)],
            without_fix: vec![result(Outcome::Failed("x".into()), 7)],
        };
        assert_eq!(false_failure.exit_code(1.0), 1);
        let blind = Validation {
            with_fix: vec![result(Outcome::Passed, 7)],
            without_fix: vec![result(Outcome::Passed, 7)],
        };
        assert_eq!(blind.exit_code(1.0), 1);
        assert_eq!(blind.time_to_first_detection(), None);
        let broken = Validation {
            with_fix: vec![result(Outcome::Error("e".into()), 1)],
            without_fix: vec![],
        };
        assert_eq!(broken.exit_code(1.0), 2);
    }
}
