//! The runner's verdicts and cleanup for cases that misbehave: a panic and an environment error
//! are harness errors (exit 2), not findings, and their scratch filesystems are released.

mod support;

use sendtest::case::{Case, Require};
use sendtest::context::CaseOptions;
use sendtest::finding::detected;
use sendtest::runner::Outcome;
use support::{our_leftovers, requiring, run_loop, test_case as case};

fn run(case: &Case) -> Outcome {
    run_loop(case, CaseOptions::default()).0.outcome
}

#[test]
fn verdicts_and_cleanup() {
    if !sendtest::preflight::loopback_or_skip("verdicts_and_cleanup") {
        return;
    }
    // One test, so that the loop-device count is not disturbed by a sibling test's devices.
    let panics = case("panics", |t| {
        t.scratch("source")?;
        panic!("deliberate panic with a scratch filesystem mounted");
    });
    let outcome = run(&panics);
    assert!(
        matches!(&outcome, Outcome::Error(r) if r.contains("deliberate panic")),
        "{outcome:?}"
    );
    assert_eq!(
        our_leftovers(),
        Vec::<String>::new(),
        "a panicking case left these"
    );

    let env_error = case("env-error", |t| {
        let fs = t.scratch("source")?;
        t.create_subvolume(&fs.join("no/such/parent"))?;
        Ok(())
    });
    let outcome = run(&env_error);
    assert!(
        matches!(&outcome, Outcome::Error(r) if r.contains("btrfs subvolume create")),
        "{outcome:?}"
    );
    assert_eq!(our_leftovers(), Vec::<String>::new());

    let finding = case("finding", |t| {
        t.scratch("source")?;
        Err(detected("the kernel did something wrong"))
    });
    assert_eq!(
        run(&finding),
        Outcome::Failed("the kernel did something wrong".into())
    );
    assert_eq!(our_leftovers(), Vec::<String>::new());
}

#[test]
fn a_case_whose_requirement_is_unmet_is_not_run_and_says_why() {
    if !sendtest::preflight::loopback_or_skip("requirements") {
        return;
    }
    const MISSING: &[Require] = &[Require::Command {
        program: "sendtest-no-such-program",
        package: "sendtest-test-package",
    }];
    let needs = requiring(
        case("needs-a-program", |_| {
            panic!("a case whose requirement is unmet ran")
        }),
        MISSING,
    );
    let (result, _results) = run_loop(&needs, CaseOptions::default());
    assert_eq!(
        result.outcome,
        Outcome::NotRun("needs `sendtest-no-such-program`: install sendtest-test-package".into())
    );
    let written = std::fs::read_to_string(result.dir.join("outcome")).unwrap();
    assert!(written.starts_with("not run"), "{written}");
}
