//! What running a case came to, as every backend and reporter sees it.

use std::path::PathBuf;
use std::time::Duration;

/// How the reason of a case that did not return after its time limit starts.
pub const HUNG: &str = "hung:";
/// How the reason of a case killed at its time limit starts.
pub const TIMED_OUT: &str = "timed out:";

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// A finding: the kernel or btrfs-progs misbehaved.
    Failed(String),
    /// The harness or the environment failed; nothing was learned about the kernel.
    Error(String),
    NotRun(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed(_) => "FAILED",
            Outcome::Error(_) => "ERROR",
            Outcome::NotRun(_) => "not run",
        }
    }

    /// The `outcome` file of a results directory: the label and time, then the reason.
    pub fn to_file(&self, elapsed: Duration) -> String {
        let reason = self.reason().unwrap_or("");
        format!("{} {:.1}s\n{reason}\n", self.label(), elapsed.as_secs_f64())
    }

    /// Reads back what [`Outcome::to_file`] wrote.
    pub fn from_file(text: &str) -> Option<Outcome> {
        let (first, reason) = text.split_once('\n').unwrap_or((text, ""));
        let reason = reason.trim_end().to_string();
        match first.rsplit_once(' ').map_or(first, |(label, _time)| label) {
            "passed" => Some(Outcome::Passed),
            "FAILED" => Some(Outcome::Failed(reason)),
            "ERROR" => Some(Outcome::Error(reason)),
            "not run" => Some(Outcome::NotRun(reason)),
            _ => None,
        }
    }

    pub fn is_pass(&self) -> bool {
        *self == Outcome::Passed
    }

    /// A case that did not return after its time limit (its scratch filesystems stay).
    pub fn is_hang(&self) -> bool {
        self.reason().is_some_and(|why| why.starts_with(HUNG))
    }

    /// A case that ran past its time limit, whether it returned (timed out) or not (hung).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Outcome::Failed(why) if why.starts_with(TIMED_OUT) || why.starts_with(HUNG))
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Passed => None,
            Outcome::Failed(r) | Outcome::Error(r) | Outcome::NotRun(r) => Some(r),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    /// Which repetition of the selection this was (`-i`, `-I`, `-L`), from 1.
    pub iteration: u32,
    pub outcome: Outcome,
    pub elapsed: Duration,
    pub dir: PathBuf,
}

impl CaseResult {
    /// A finding or an error: what `-I` stops on and `-L` reruns.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_) | Outcome::Error(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_files_read_back() {
        for outcome in [
            Outcome::Passed,
            Outcome::Failed("a: field sha256: expected x got y".into()),
            Outcome::Error("`mkfs.btrfs` failed".into()),
            Outcome::NotRun("interrupted before it started".into()),
        ] {
            let text = outcome.to_file(Duration::from_millis(1500));
            assert_eq!(Outcome::from_file(&text), Some(outcome), "{text}");
        }
        assert_eq!(Outcome::from_file("garbage"), None);
    }
}
