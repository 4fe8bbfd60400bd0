//! Known bugs in the random chain, on real btrfs: a received tree broken on purpose is declared
//! a known bug. One seed must still fail on it, naming it; a soak must report it and pass; and
//! a soak whose failures are not the declared bug must fail.

use std::path::Path;
use std::time::Duration;

mod support;

use sendtest::case::Case;
use sendtest::context::{CaseOptions, Ctx, RandomKnobs};
use sendtest::random::{self, KnownBug, Sends, Setup};
use sendtest::runner::{CaseResult, Outcome};
use support::{run_loop, test_case};

/// What the test hook does to a received tree: its largest file loses a byte (which changes
/// its mtime too).
const BROKEN: KnownBug = KnownBug {
    name: "broken-on-purpose",
    summary: "the test hook truncates the largest received file",
    sends: Sends::Any,
    fields: &["size", "sha256", "mtime"],
    ops: &["write"],
    found_by: random::Replay {
        seed: 7,
        ops: 60,
        snapshots: 1,
    },
    stream: None,
    fix: None,
};

/// Declared for protocol 2 only, so protocol 1's failures are new.
const ELSEWHERE: KnownBug = KnownBug {
    sends: Sends::CompressedData,
    ..BROKEN
};

fn known_on_both(t: &mut Ctx) -> anyhow::Result<()> {
    run(t, &[BROKEN])
}

fn known_on_protocol_2(t: &mut Ctx) -> anyhow::Result<()> {
    run(t, &[ELSEWHERE])
}

fn run(t: &mut Ctx, known_bugs: &[KnownBug]) -> anyhow::Result<()> {
    random::run_seeds(
        t,
        &Setup {
            ignore: &["ctime", "layout"],
            pass_over: &[(".", "mtime")],
            known_bugs,
            concurrent: false,
        },
    )
}

fn case(run: fn(&mut Ctx) -> anyhow::Result<()>) -> Case {
    Case {
        ignore: &["ctime", "layout"],
        ..test_case("random", run)
    }
}

fn no_tamper(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

fn run_broken(case: &Case, soak: Option<Duration>) -> (CaseResult, String, tempfile::TempDir) {
    let options = CaseOptions {
        tamper: Some(no_tamper),
        duration: soak,
        random: RandomKnobs {
            seed: Some(7),
            ops: Some(60),
            snapshots: Some(1),
            ..RandomKnobs::default()
        },
        ..CaseOptions::default()
    };
    let (result, results) = run_loop(case, options);
    let log = std::fs::read_to_string(result.dir.join("commands.log")).unwrap_or_default();
    (result, log, results)
}

#[test]
fn known_bugs_fail_a_replay_and_are_reported_by_a_soak() {
    if !sendtest::preflight::loopback_or_skip("random: known bugs") {
        return;
    }
    let known = case(known_on_both);

    let (result, _, _keep) = run_broken(&known, None);
    let Outcome::Failed(reason) = &result.outcome else {
        panic!("one seed passed on a known bug: {:?}", result.outcome)
    };
    assert!(
        reason.starts_with("known bug `broken-on-purpose`: seed 7:"),
        "{reason}"
    );

    let (result, log, _keep) = run_broken(&known, Some(Duration::from_secs(3)));
    assert_eq!(result.outcome, Outcome::Passed, "{log}");
    assert!(
        log.contains("no new failures; known bugs met: `broken-on-purpose` in "),
        "{log}"
    );
    let summary = log
        .lines()
        .find(|l| l.contains("random: ") && l.contains(" seed(s) from 7: "))
        .unwrap_or_else(|| panic!("no summary line:\n{log}"));
    assert!(summary.contains(" sends "), "{summary}");
    // Shown under the case's result, on either backend.
    let shown = sendtest::report::headlines(&result);
    assert!(
        shown
            .iter()
            .any(|l| l.starts_with("  random: known bug `broken-on-purpose` (")),
        "{shown:?}"
    );

    let elsewhere = case(known_on_protocol_2);
    let (result, log, _keep) = run_broken(&elsewhere, Some(Duration::from_secs(3)));
    let Outcome::Failed(reason) = &result.outcome else {
        panic!("a soak passed on failures that are not known: {log}")
    };
    assert!(reason.contains("new failure(s) in "), "{reason}");
}
