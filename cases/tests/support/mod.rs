//! What the cases' tests share: running a case once on loop devices, with a results directory
//! that is removed after a passing test and kept, and named, after a failing one.

#![allow(dead_code)] // Each test file uses a part.

use std::path::Path;

use sendtest::backend;
use sendtest::context::CaseOptions;
use sendtest::runner::{self, CaseResult};

/// A test's results directory: removed after it passes, kept and named when it panics, so that
/// a failure in CI leaves its logs, manifests and scripts.
pub struct Results(Option<tempfile::TempDir>);

impl Results {
    pub fn new() -> Results {
        Results(Some(tempfile::tempdir().unwrap()))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("present until dropped").path()
    }
}

impl Drop for Results {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.0.take() {
                eprintln!(
                    "the failed test's results are kept in {}",
                    dir.keep().display()
                );
            }
        }
    }
}

/// Runs the case called `name` once on loop devices with `options`.
pub fn run_loop(name: &str, options: CaseOptions) -> (CaseResult, Results) {
    let case = cases::by_name(name).unwrap_or_else(|| panic!("no case {name}"));
    let results = Results::new();
    let result = runner::run_one(case, results.path(), options, &backend::Loop);
    (result, results)
}

/// A tamper hook that changes nothing itself: with one, the random case truncates the largest
/// received file by a byte.
pub fn no_tamper(_: &Path) -> anyhow::Result<()> {
    Ok(())
}
