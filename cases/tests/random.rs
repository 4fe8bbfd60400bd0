//! The random case against a received tree that is deliberately wrong: the chain must catch
//! it, shrink the operations to a short list, and leave a script that reproduces the failure
//! when run by hand.

use std::path::{Path, PathBuf};
use std::process::Command;

use sendtest::preflight;
use sendtest::runner::{run_case, Outcome, RandomKnobs, RunConfig};

fn no_tamper(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// A trial's results directory: removed after it passes, kept and named when it panics, so that
/// a failure in CI leaves its logs, manifests and scripts.
struct Results(Option<tempfile::TempDir>);

impl Results {
    fn new() -> Results {
        Results(Some(tempfile::tempdir().unwrap()))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().expect("present until dropped").path()
    }
}

impl Drop for Results {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.0.take() {
                eprintln!(
                    "the failed trial's results are kept in {}",
                    dir.keep().display()
                );
            }
        }
    }
}

/// Runs `name` with a fixed seed and list size on loop devices; the result and its results
/// directory.
fn run_seed(
    name: &str,
    seed: u64,
    ops: usize,
    snapshots: usize,
) -> (sendtest::runner::CaseResult, Results) {
    let results = Results::new();
    let config = RunConfig {
        random: RandomKnobs {
            seed: Some(seed),
            ops: Some(ops),
            snapshots: Some(snapshots),
        },
        ..RunConfig::loopback(results.path().to_path_buf(), 1)
    };
    (run_case(cases::by_name(name).unwrap(), &config), results)
}

/// The sendtest binary that `cargo test --workspace` built next to this test.
fn sendtest_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("sendtest");
    candidate.is_file().then_some(candidate)
}

#[test]
fn a_broken_received_tree_is_caught_and_shrunk_to_a_script_that_reproduces_it() {
    if !preflight::loopback_or_skip("random: broken received tree") {
        return;
    }
    let results = Results::new();
    let config = RunConfig {
        // With a tamper hook, the random case truncates the largest received file by a byte.
        tamper: Some(no_tamper),
        random: RandomKnobs {
            seed: Some(42),
            ops: Some(300),
            snapshots: Some(4),
        },
        ..RunConfig::loopback(results.path().to_path_buf(), 1)
    };
    let case = cases::by_name("random").unwrap();
    let result = run_case(case, &config);
    let Outcome::Failed(reason) = &result.outcome else {
        panic!("a broken received tree passed: {:?}", result.outcome)
    };
    assert!(reason.contains("seed 42"), "{reason}");
    assert!(
        reason.contains("`sendtest run random --seed 42 --ops 300 --snapshots 4`"),
        "{reason}"
    );
    let listing = std::fs::read_to_string(result.dir.join("random-42.ops")).unwrap();
    assert!(
        listing.starts_with(
            "seed 42\nreplay sendtest run random --seed 42 --ops 300 --snapshots 4\nindices "
        ),
        "{listing}"
    );
    let script = std::fs::read_to_string(result.dir.join("random-42.sh")).unwrap();
    let operations = script
        .lines()
        .filter(|l| l.ends_with(" 2>/dev/null"))
        .count();
    assert!(
        (1..=10).contains(&operations),
        "{operations} operations left:\n{script}"
    );

    // By hand: the script must fail the same way on its own filesystems.
    let Some(sendtest) = sendtest_binary() else {
        assert!(
            !preflight::require_all(),
            "no sendtest binary next to the tests to compare with"
        );
        eprintln!("skipped running the script: no sendtest binary next to the tests");
        return;
    };
    let missing: Vec<&str> = ["xfs_io", "setfattr"]
        .into_iter()
        .filter(|p| preflight::find_in_path(p).is_none())
        .collect();
    if !missing.is_empty() {
        assert!(!preflight::require_all(), "the script needs {missing:?}");
        eprintln!("skipped running the script: {missing:?} missing");
        return;
    }
    // With sendtest's manifests, then with stat, cmp and getfattr alone.
    for with_sendtest in [true, false] {
        let mut bash = Command::new("bash");
        bash.arg(result.dir.join("random-42.sh"));
        if with_sendtest {
            bash.env("SENDTEST", &sendtest);
        } else {
            bash.env_remove("SENDTEST");
        }
        let out = bash.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // The script runs the sendtest binary that `cargo test --workspace` builds; a narrower
        // `cargo test -p cases` leaves an older one, which may not take the script's arguments.
        let shown = format!(
            "{stdout}\n{}\n(sendtest: {with_sendtest}, {}; if it is stale, `cargo build --bin sendtest`)",
            String::from_utf8_lossy(&out.stderr),
            sendtest.display()
        );
        assert_eq!(out.status.code(), Some(1), "{shown}");
        assert!(stdout.contains("FAILED: reproduced"), "{shown}");
        let named = if with_sendtest {
            stdout.contains("field size") || stdout.contains("field sha256")
        } else {
            stdout.contains(" size=") && stdout.contains(": data differs")
        };
        assert!(named, "{shown}");
    }
}

#[test]
fn twenty_fixed_seeds_pass_on_this_kernel() {
    if !preflight::loopback_or_skip("random: 20 seeds") {
        return;
    }
    for seed in 1..=20 {
        let (result, _results) = run_seed("random", seed, 400, 5);
        assert_eq!(result.outcome, Outcome::Passed, "seed {seed}");
    }
}

#[test]
fn the_concurrent_variant_passes_five_fixed_seeds() {
    if !preflight::loopback_or_skip("random-concurrent: 5 seeds") {
        return;
    }
    for seed in 1..=5 {
        let (result, _results) = run_seed("random-concurrent", seed, 400, 5);
        assert_eq!(result.outcome, Outcome::Passed, "seed {seed}");
        let log = std::fs::read_to_string(result.dir.join("commands.log")).unwrap();
        assert!(
            log.contains("operations alongside the sends"),
            "seed {seed}: no noise ran"
        );
    }
}

#[test]
fn a_soak_goes_on_after_a_failure_and_reports_each_distinct_one() {
    if !preflight::loopback_or_skip("random: soak after a failure") {
        return;
    }
    let results = Results::new();
    let config = RunConfig {
        tamper: Some(no_tamper),
        duration: Some(std::time::Duration::from_secs(4)),
        // A soak from a fixed seed: the same seeds each time.
        random: RandomKnobs {
            seed: Some(100),
            ops: Some(100),
            snapshots: Some(2),
        },
        ..RunConfig::loopback(results.path().to_path_buf(), 1)
    };
    let result = run_case(cases::by_name("random").unwrap(), &config);
    let Outcome::Failed(reason) = &result.outcome else {
        panic!("a broken received tree passed: {:?}", result.outcome)
    };
    assert!(reason.contains("new failure(s) in"), "{reason}");
    let scripts = std::fs::read_dir(&result.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sh"))
        .count();
    assert!(
        scripts >= 2,
        "the soak stopped at its first failure: {reason}"
    );
}

#[test]
fn each_known_bugs_seed_fails_as_that_bug_or_passes_where_it_is_fixed() {
    if !preflight::loopback_or_skip("random: the seeds of known bugs") {
        return;
    }
    for bug in cases::KNOWN_BUGS {
        let replay = bug.found_by;
        let (result, _results) = run_seed("random", replay.seed, replay.ops, replay.snapshots);
        match &result.outcome {
            // A kernel with the fix (or without protocol 2, for a bug only it shows).
            Outcome::Passed => eprintln!("known bug {}: not shown here", bug.name),
            Outcome::Failed(reason) => assert!(
                reason.starts_with(&format!("known bug `{}`: seed {}:", bug.name, replay.seed)),
                "seed {} of known bug {} failed otherwise: {reason}",
                replay.seed,
                bug.name
            ),
            other => panic!("seed {} of {}: {other:?}", replay.seed, bug.name),
        }
    }
}
