//! The runner's verdicts and cleanup for cases that misbehave: a panic and an environment error
//! are harness errors (exit 2), not findings, and their scratch filesystems are released.

use sendtest::case::{detected, Case, Fix};
use sendtest::context::Ctx;
use sendtest::runner::{run_case, Outcome, RunConfig};

const FIX: Fix = Fix {
    commit: "0",
    subject: "test",
    fstests: None,
    revert: None,
};

fn case(name: &'static str, run: fn(&mut Ctx) -> anyhow::Result<()>) -> Case {
    Case {
        name,
        groups: &["test"],
        summary: "",
        fix: FIX,
        ignore: &["ctime"],
        run,
    }
}

/// Loop devices bound to images under this process's private directories.
fn our_loop_devices() -> usize {
    let mark = format!("/sendtest-{}-", std::process::id());
    std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|f| f.contains(&mark))
        })
        .count()
}

fn run(case: &Case) -> Outcome {
    let results = tempfile::tempdir().unwrap();
    let config = RunConfig::loopback(results.path().to_path_buf(), 1);
    run_case(case, &config).outcome
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
    assert_eq!(our_loop_devices(), 0, "a panicking case left loop devices");

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
    assert_eq!(our_loop_devices(), 0);

    let finding = case("finding", |t| {
        t.scratch("source")?;
        Err(detected("the kernel did something wrong"))
    });
    assert_eq!(
        run(&finding),
        Outcome::Failed("the kernel did something wrong".into())
    );
    assert_eq!(our_loop_devices(), 0);
}
