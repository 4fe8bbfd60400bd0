//! The random cases on this kernel: fixed seeds pass; a received tree that is deliberately
//! wrong is caught and shrunk to a short list and script (which `harness/cli/tests/scripts.rs`
//! runs by hand); a soak goes on after a failure; each known bug's seed finds that bug.

use std::time::Duration;

use sendtest::context::{CaseOptions, RandomKnobs};
use sendtest::preflight;
use sendtest::random::Receive;
use sendtest::runner::{CaseResult, Outcome};
use support::{no_tamper, run_loop, Results};

mod support;

/// Runs `name` on loop devices from `seed` with a list size, for `soak` if given, with every
/// received tree broken on purpose if `broken`; the result and its results directory.
fn run_random(
    name: &str,
    (seed, ops, snapshots): (u64, usize, usize),
    broken: bool,
    soak: Option<Duration>,
) -> (CaseResult, Results) {
    run_receiving(name, (seed, ops, snapshots), broken, soak, None)
}

/// [`run_random`], with every chain received `receive`'s way if given.
fn run_receiving(
    name: &str,
    (seed, ops, snapshots): (u64, usize, usize),
    broken: bool,
    soak: Option<Duration>,
    receive: Option<Receive>,
) -> (CaseResult, Results) {
    let options = CaseOptions {
        // With a tamper hook, the random case truncates the largest received file by a byte.
        tamper: broken.then_some(no_tamper as sendtest::context::Tamper),
        duration: soak,
        random: RandomKnobs {
            seed: Some(seed),
            ops: Some(ops),
            snapshots: Some(snapshots),
            receive,
            ..RandomKnobs::default()
        },
        ..CaseOptions::default()
    };
    run_loop(name, options)
}

#[test]
fn each_way_to_receive_runs_and_a_planted_difference_is_still_named() {
    if !preflight::loopback_or_skip("random: ways to receive") {
        return;
    }
    for way in Receive::ALL {
        // Every received tree is broken: the largest file loses its last byte.
        let (result, _results) = run_receiving("random", (7, 40, 2), true, None, Some(way));
        let Outcome::Failed(reason) = &result.outcome else {
            panic!(
                "{}: a broken received tree passed: {:?}",
                way.name(),
                result.outcome
            )
        };
        assert!(
            reason.contains(": field size: expected ")
                && reason.contains("differs from its source"),
            "{}: {reason}",
            way.name()
        );
        assert!(
            reason.contains(&format!("--receive {}", way.name())),
            "{}: the replay command keeps the way: {reason}",
            way.name()
        );
        let commands = std::fs::read_to_string(result.dir.join("commands.log")).unwrap();
        // The chain's receives (not the refusals of broken copies, in `refused/`), with the
        // seed's verbosity taken out, before `receive` or after it.
        let receives: Vec<String> = commands
            .lines()
            .map(|l| {
                l.replace(" -vv ", " ")
                    .replace(" -v ", " ")
                    .replace(" -q ", " ")
            })
            .filter(|l| l.contains("$ btrfs receive ") && !l.contains("--dump"))
            // Refusals receive into `refused/` and, off btrfs, into `not-btrfs`; the first full
            // stream goes once more to the filesystem's top from `top.stream`, and the first
            // snapshot sent without data into `no-data/`.
            .filter(|l| {
                !l.contains("/refused")
                    && !l.contains("/not-btrfs")
                    && !l.contains("/top.stream")
                    && !l.contains("/no-data.stream")
            })
            .collect();
        assert!(!receives.is_empty(), "{}: no receive ran", way.name());
        if way == Receive::SubvolMount {
            assert!(commands.contains(" (subvol=chain-"), "{commands}");
        }
        if way == Receive::PrefixMount {
            assert!(
                commands.contains("# mounted a tmpfs on ") && commands.contains("/sub beside"),
                "{commands}"
            );
        }
        let expected = match way {
            Receive::Plain => "btrfs receive -f ",
            Receive::ForceDecompress => "btrfs receive --force-decompress -f ",
            Receive::Nested => "/a/b",
            Receive::Twice => "/two",
            Receive::RootMount => "btrfs receive -m /",
            Receive::Chroot => "btrfs receive --chroot -f ",
            Receive::MaxErrors => "btrfs receive --max-errors 0 -f ",
            Receive::PrefixMount => "/subdir",
            Receive::SubvolMount => ".mnt",
        };
        assert!(
            receives.iter().all(|l| l.contains(expected)) || way == Receive::Twice,
            "{}: {receives:#?}",
            way.name()
        );
        assert!(
            receives.iter().any(|l| l.contains(expected)),
            "{}: {receives:#?}",
            way.name()
        );
        let script = std::fs::read_dir(&result.dir)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".sh"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .expect("a script");
        let in_script = match way {
            Receive::Plain => "btrfs -q receive -f ",
            Receive::ForceDecompress => "btrfs -q receive --force-decompress -f ",
            Receive::Nested => "mkdir -p \"$work/dst/a/b\"",
            Receive::Twice => "\"$work/dst/two\" || status=1",
            Receive::RootMount => "btrfs -q receive -m \"$work/dst\" -f ",
            Receive::Chroot => "btrfs -q receive --chroot -f ",
            Receive::MaxErrors => "btrfs -q receive --max-errors 0 -f ",
            Receive::PrefixMount => "mount -t tmpfs -o size=1m tmpfs \"$work/dst/sub\"",
            Receive::SubvolMount => "mount -o subvol=backup \"$dst\" \"$work/backup\"",
        };
        assert!(script.contains(in_script), "{}:\n{script}", way.name());
    }
}

/// Runs `random` with `seed` (of `ops` operations and `snapshots` snapshots, the defaults if
/// none, received `receive`) twice: unbroken, which must pass with the layout oracle on (the
/// control), then with each received tree broken by `breakage`, which must fail. The failure's
/// reason, its commands log, its directory, and the results tree that holds it.
fn broken_fails(
    breakage: sendtest::context::Breakage,
    seed: u64,
    ops: Option<usize>,
    snapshots: Option<usize>,
    receive: Option<Receive>,
) -> (String, String, std::path::PathBuf, Results) {
    let options = CaseOptions {
        tamper: Some(no_tamper as sendtest::context::Tamper),
        breakage,
        random: RandomKnobs {
            seed: Some(seed),
            ops,
            snapshots,
            receive,
            ..RandomKnobs::default()
        },
        ..CaseOptions::default()
    };
    let (control, _control_results) = run_loop(
        "random",
        CaseOptions {
            tamper: None,
            ..options
        },
    );
    assert_eq!(control.outcome, Outcome::Passed);
    let (result, results) = run_loop("random", options);
    let Outcome::Failed(reason) = &result.outcome else {
        panic!("{breakage:?} passed: {:?}", result.outcome)
    };
    let log = std::fs::read_to_string(result.dir.join("commands.log")).unwrap();
    (reason.clone(), log, result.dir.clone(), results)
}

#[test]
fn a_hole_filled_with_zeros_on_receive_is_caught_by_the_layout_oracle_alone() {
    if !preflight::loopback_or_skip("random: filled hole") {
        return;
    }
    // The same data and size, zeros where the source has a hole: only the holes rule sees it.
    let (reason, log, dir, _results) = broken_fails(
        sendtest::context::Breakage::FillHole,
        11,
        Some(120),
        Some(2),
        None,
    );
    assert!(
        reason.contains(": field holes: expected data only in ")
            && reason.contains(", a hole in the source"),
        "{reason}"
    );
    assert!(log.contains(" with zeros"), "the tree was broken: {log}");
    // The script compares allocated blocks for it.
    let script = std::fs::read_to_string(dir.join("random-11.sh")).unwrap();
    assert!(script.contains("blocks=%b"), "{script}");
}

#[test]
fn a_received_extent_written_again_uncompressed_is_caught_by_the_layout_oracle_alone() {
    if !preflight::loopback_or_skip("random: decompressed extent") {
        return;
    }
    // The same data, size and times, but plain where send sent compressed data encoded: only
    // the compressed rule sees it, in the protocol-2 chain that sends with --compressed-data.
    let (reason, log, _, _results) = broken_fails(
        sendtest::context::Breakage::Decompress,
        11,
        Some(120),
        Some(2),
        Some(Receive::Plain),
    );
    assert!(
        reason.contains(": field compressed: expected compressed at ")
            && reason.contains(" not compressed"),
        "{reason}"
    );
    assert!(log.contains(", uncompressed"), "the tree was broken: {log}");
    assert!(log.contains("--compressed-data"), "{log}");
}

#[test]
fn received_copies_of_what_send_must_clone_are_caught_by_the_layout_oracle_alone() {
    if !preflight::loopback_or_skip("random: unshared blocks") {
        return;
    }
    // The same data, size and times, but the blocks of the received file with the most
    // shared data written again, so that it shares them no more: only the shared rule sees
    // it. Seed 28's chain has items that send must clone (whole-file copies whose
    // lower-numbered source holds all of their data). Not a seed whose shared file has a
    // capability: the breakage's writes clear it, which the xattr comparison sees first.
    let (reason, log, _, _results) = broken_fails(
        sendtest::context::Breakage::Unshare,
        28,
        None,
        None,
        Some(Receive::Plain),
    );
    assert!(
        reason.contains(": field shared: expected ") && reason.contains(" got not shared"),
        "{reason}"
    );
    assert!(
        log.contains(" again, unshared"),
        "the tree was broken: {log}"
    );
}

#[test]
fn space_preallocated_past_a_received_file_s_end_is_caught_by_the_layout_oracle_alone() {
    if !preflight::loopback_or_skip("random: grown space") {
        return;
    }
    // The same data, size, times and holes, but a megabyte allocated past the end of the
    // largest received file: SEEK_DATA does not reach past the size, so only the space rule
    // sees it.
    let (reason, log, dir, _results) = broken_fails(
        sendtest::context::Breakage::Preallocate,
        11,
        Some(120),
        Some(2),
        None,
    );
    assert!(
        reason.contains(": field space: expected at most ")
            && reason.contains(" blocks of 4 KiB allocated"),
        "{reason}"
    );
    assert!(log.contains(", past its end"), "the tree was broken: {log}");
    // The script compares allocated blocks for it.
    let script = std::fs::read_to_string(dir.join("random-11.sh")).unwrap();
    assert!(script.contains("blocks=%b"), "{script}");
}

#[test]
fn a_received_subvolume_left_writable_or_unreceived_is_caught_by_the_identity_rule_alone() {
    if !preflight::loopback_or_skip("random: received subvolume identity") {
        return;
    }
    // The same tree, but the received subvolume left writable: only the identity rule sees it
    // (the manifest compares what is inside the subvolume).
    let (reason, log, dir, _results) = broken_fails(
        sendtest::context::Breakage::Writable,
        11,
        Some(60),
        Some(2),
        Some(Receive::Plain),
    );
    assert!(
        reason.contains(".: field readonly: expected true got false"),
        "{reason}"
    );
    assert!(log.contains(" writable"), "the tree was broken: {log}");
    // The script checks it too.
    let script = std::fs::read_to_string(dir.join("random-11.sh")).unwrap();
    assert!(script.contains("identity \"$1\" \"$2\""), "{script}");
    // Read-only again but without its received UUID, as `btrfs property set -f … ro false`
    // leaves it: a later incremental receive could not find it as a parent.
    let (reason, log, _, _results) = broken_fails(
        sendtest::context::Breakage::Unreceived,
        11,
        Some(60),
        Some(2),
        Some(Receive::Plain),
    );
    assert!(
        reason.contains(".: field received_uuid: expected ") && reason.contains(" got -"),
        "{reason}"
    );
    assert!(reason.contains(".: field stransid: expected "), "{reason}");
    assert!(log.contains(" ro false"), "the tree was broken: {log}");
}

#[test]
fn each_way_to_pick_parents_runs_with_its_send_options() {
    if !preflight::loopback_or_skip("random: parents") {
        return;
    }
    use sendtest::random::Parents;
    for way in Parents::ALL {
        let options = CaseOptions {
            random: RandomKnobs {
                seed: Some(7),
                ops: Some(60),
                snapshots: Some(3),
                receive: Some(Receive::Plain),
                parents: Some(way),
                ..RandomKnobs::default()
            },
            ..CaseOptions::default()
        };
        let (result, _results) = run_loop("random", options);
        assert_eq!(result.outcome, Outcome::Passed, "{}", way.name());
        let log = std::fs::read_to_string(result.dir.join("commands.log")).unwrap();
        let sends: Vec<&str> = log.lines().filter(|l| l.contains("$ btrfs send")).collect();
        let fourth = |line: &str| line.ends_with(".snap3");
        let last = sends
            .iter()
            .find(|l| fourth(l))
            .unwrap_or_else(|| panic!("{}: {sends:#?}", way.name()));
        // `btrfs send -q -f STREAM [-e] -p PARENT [-c SOURCE…] SNAPSHOT…`
        let (expected, not) = match way {
            Parents::Previous | Parents::FullToo | Parents::Twin => (" -p /", ".snap0"),
            Parents::First => (".snap0 /", ".snap2"),
            Parents::Clones => (".snap2 -c /", " -e "),
            Parents::Bundle => (".snap0 /", " -e "),
            Parents::BundleOneStream => (" -e -p /", " -c "),
        };
        assert!(
            last.contains(expected) && !last.contains(not),
            "{}: {last}",
            way.name()
        );
        if matches!(way, Parents::Bundle | Parents::BundleOneStream) {
            // Snapshots 1 to 3 in one send, received by one receive.
            assert!(
                last.contains(".snap1 /") && last.contains(".snap2 /"),
                "{last}"
            );
            assert!(
                !sends
                    .iter()
                    .any(|l| l.ends_with(".snap1") || l.ends_with(".snap2")),
                "{sends:#?}"
            );
        }
        if way == Parents::FullToo {
            assert!(
                sends
                    .iter()
                    .filter(|l| fourth(l))
                    .any(|l| !l.contains(" -p ")),
                "a full send of the last snapshot: {sends:#?}"
            );
            assert!(log.contains("/full"), "{log}");
        }
        if way == Parents::Twin {
            // The last snapshot again, against the twin, received into twin/ after it.
            assert!(
                sends
                    .iter()
                    .filter(|l| fourth(l))
                    .any(|l| l.contains("-twin.snap -f ")),
                "a send of the last snapshot against the twin: {sends:#?}"
            );
            assert!(log.contains("/twin"), "{log}");
            let reused = log
                .lines()
                .find_map(|l| l.split_once(" inode numbers sent against a twin"))
                .and_then(|(before, _)| before.rsplit(' ').next()?.parse::<usize>().ok());
            assert!(
                reused.is_some_and(|n| n > 0),
                "the twin holds some of the chain's inode numbers: {log}"
            );
        }
    }
}

/// One seed of `name`, as it is.
fn run_seed(name: &str, seed: u64, ops: usize, snapshots: usize) -> (CaseResult, Results) {
    run_random(name, (seed, ops, snapshots), false, None)
}

#[test]
fn a_broken_received_tree_is_caught_and_shrunk_to_a_short_script() {
    if !preflight::loopback_or_skip("random: broken received tree") {
        return;
    }
    let (result, _results) = run_random("random", (42, 300, 4), true, None);
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
    // `harness/cli/tests/scripts.rs` runs the script by hand.
}

#[test]
fn with_no_shrink_the_first_failure_ends_the_case_as_it_is() {
    if !preflight::loopback_or_skip("random: --no-shrink") {
        return;
    }
    // The same broken seed as above: the same failure, named at once, and no list or
    // script kept, since nothing was shrunk.
    let options = CaseOptions {
        tamper: Some(no_tamper as sendtest::context::Tamper),
        random: RandomKnobs {
            seed: Some(42),
            ops: Some(300),
            snapshots: Some(4),
            no_shrink: true,
            ..RandomKnobs::default()
        },
        ..CaseOptions::default()
    };
    let (result, _results) = run_loop("random", options);
    let Outcome::Failed(reason) = &result.outcome else {
        panic!("a broken received tree passed: {:?}", result.outcome)
    };
    assert!(
        reason.starts_with("seed 42, protocol 1: received snapshot ")
            && reason.contains(": field size: ")
            && reason.ends_with("(not shrunk: --no-shrink)"),
        "{reason}"
    );
    assert!(!result.dir.join("random-42.ops").exists());
    assert!(!result.dir.join("random-42.sh").exists());
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
    // A soak of a fixed set of seeds (`--seeds 3`), not of a time: how many seeds fit in a
    // time depends on the machine, and how long each shrink takes.
    let options = CaseOptions {
        tamper: Some(no_tamper as sendtest::context::Tamper),
        random: RandomKnobs {
            seed: Some(100),
            ops: Some(100),
            snapshots: Some(2),
            seeds: Some(3),
            ..RandomKnobs::default()
        },
        ..CaseOptions::default()
    };
    let (result, _results) = run_loop("random", options);
    let Outcome::Failed(reason) = &result.outcome else {
        panic!("a broken received tree passed: {:?}", result.outcome)
    };
    assert!(reason.contains("new failure(s) in"), "{reason}");
    let scripts = std::fs::read_dir(&result.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sh"))
        .count();
    assert_eq!(
        scripts, 3,
        "each of the three broken seeds leaves its script: {reason}"
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
