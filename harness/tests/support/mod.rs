//! What the library's integration tests share: cases made on the spot, running one on loop
//! devices, and counting the loop devices this process holds.

#![allow(dead_code)] // Each test file uses a part.

use sendtest::backend;
use sendtest::case::{Case, Component, Fix, Require};
use sendtest::context::{CaseOptions, Ctx};
use sendtest::runner::{self, CaseResult, Outcome};

/// A case made for a test: in group `test`, comparing all but ctime.
pub const fn test_case(name: &'static str, run: fn(&mut Ctx) -> anyhow::Result<()>) -> Case {
    Case {
        name,
        groups: &["test"],
        summary: "",
        requires: &[],
        fix: Fix {
            commit: "0",
            subject: "test",
            fstests: None,
            revert: None,
            proposed: None,
            applies_to: Component::Kernel,
        },
        ignore: &["ctime"],
        run,
    }
}

/// [`test_case`] that leaves `layout` out too, for lists replayed with protocol 1 (which
/// carries no layout).
pub const fn layout_free_case(name: &'static str, run: fn(&mut Ctx) -> anyhow::Result<()>) -> Case {
    Case {
        ignore: &["ctime", "layout"],
        ..test_case(name, run)
    }
}

/// Runs `case` on loop devices (unless they are missing, which `loopback_or_skip` reports
/// for `what`) and asserts that it passed.
pub fn passes_on_loop(case: &Case, what: &str) {
    if !sendtest::preflight::loopback_or_skip(what) {
        return;
    }
    let (result, _results) = run_loop(case, CaseOptions::default());
    assert_eq!(result.outcome, Outcome::Passed, "{:?}", result.outcome);
}

/// [`test_case`] with requirements.
pub fn requiring(case: Case, requires: &'static [Require]) -> Case {
    Case { requires, ..case }
}

/// Runs `case` once on loop devices with `options`; the result, and the results directory it
/// points into.
pub fn run_loop(case: &Case, options: CaseOptions) -> (CaseResult, tempfile::TempDir) {
    let results = tempfile::tempdir().unwrap();
    let result = runner::run_one(case, results.path(), options, &backend::Loop);
    (result, results)
}

/// What of this process's is still around: loop devices, mounts and processes that name its
/// private directories.
pub fn our_leftovers() -> Vec<String> {
    let mark = format!("/sendtest-{}-", std::process::id());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let backing = std::fs::read_to_string(entry.path().join("loop/backing_file"));
        if backing.is_ok_and(|f| f.contains(&mark)) {
            found.push(format!("loop device {:?}", entry.file_name()));
        }
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    found.extend(
        mounts
            .lines()
            .filter(|l| l.contains(&mark))
            .map(String::from),
    );
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&mark) {
            found.push(format!("process {:?}", entry.file_name()));
        }
    }
    found
}
