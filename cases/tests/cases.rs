//! Every case as a test: `cargo test -p cases`, `cargo nextest run`, with the usual filters.
//!
//! A case whose requirements are missing (not root, no btrfs, or what the case itself requires)
//! is reported as ignored with the reason, unless `SENDTEST_REQUIRE_ALL=1`, which makes it fail
//! instead (CI sets it).
//!
//! A case in the group `unfixed` guards a bug that no kernel fixes yet: its trial passes when
//! the case finds the bug, and fails, saying so, when the case passes.
//!
//! A case that runs only in a guest (it needs fail-nth, whose knobs are global) is reported as
//! ignored here, whatever `SENDTEST_REQUIRE_ALL` says: CI runs it in a guest of its own
//! (`sendtest run NAME --kernel-tree TREE --require-all`).
//!
//! Randomized cases run one fixed seed here, so that a test run is repeatable:
//! `SENDTEST_SEED` (default 1). New seeds are for `sendtest run random`.

use std::path::PathBuf;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use sendtest::backend;
use sendtest::context::{CaseOptions, RandomKnobs};
use sendtest::runner::{self, Outcome};
use sendtest::{interrupt, preflight, results};

fn main() {
    interrupt::install();
    let args = Arguments::from_args();
    let root = std::env::var_os("SENDTEST_RESULTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results"));
    let seed: u64 = match std::env::var("SENDTEST_SEED") {
        Ok(text) => text.parse().unwrap_or_else(|_| {
            eprintln!("SENDTEST_SEED={text} is not a number");
            std::process::exit(2)
        }),
        Err(_) => 1,
    };
    let trials = cases::ALL
        .iter()
        .map(|&case| {
            let root = root.clone();
            Trial::ignorable_test(case.name, move || {
                if case.requires.contains(&sendtest::case::Require::FailNth) {
                    return Ok(Completion::ignored_with(format!(
                        "runs only in a guest: sendtest run {} --kernel-tree TREE",
                        case.name
                    )));
                }
                if let Err(why) = preflight::loopback() {
                    return if preflight::require_all() {
                        Err(Failed::from(format!(
                            "{why} (SENDTEST_REQUIRE_ALL=1 forbids skipping)"
                        )))
                    } else {
                        Ok(Completion::ignored_with(why))
                    };
                }
                let run_dir =
                    results::new_run_dir(&root).map_err(|e| Failed::from(format!("{e:#}")))?;
                let options = CaseOptions {
                    random: RandomKnobs {
                        seed: Some(seed),
                        ..RandomKnobs::default()
                    },
                    ..CaseOptions::default()
                };
                let result = runner::run_one(case, &run_dir, options, &backend::Loop);
                // A case of a bug no kernel fixes yet must find it; should it pass, the kernel
                // has a fix, and the case belongs in `auto` now.
                let unfixed = case.in_group("unfixed");
                match result.outcome {
                    Outcome::Failed(_) if unfixed => Ok(Completion::Completed),
                    Outcome::Passed if unfixed => Err(Failed::from(format!(
                        "{} passed: this kernel fixes the bug it guards; move it from `unfixed` to `auto` with the fix as data\nresults: {}",
                        case.name,
                        result.dir.display()
                    ))),
                    Outcome::Passed => Ok(Completion::Completed),
                    Outcome::NotRun(why) if !preflight::require_all() => {
                        Ok(Completion::ignored_with(format!("not run: {why}")))
                    }
                    other => Err(Failed::from(format!(
                        "{}: {}\nresults: {}",
                        other.label(),
                        other.reason().unwrap_or_default(),
                        result.dir.display()
                    ))),
                }
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
