//! The filesystem configurations on this kernel: every one runs the random case and a seed
//! case, with its mkfs, mount and send options where the command log shows them (the
//! receiving side's on the receiving filesystem only); under one, a planted difference is still
//! named, and its replay command and script keep the configuration.

use sendtest::configuration::{self, Configuration};
use sendtest::context::{CaseOptions, RandomKnobs};
use sendtest::preflight;
use sendtest::runner::{CaseResult, Outcome};
use support::{no_tamper, run_loop, Results};

mod support;

fn run_under(
    name: &str,
    config: &'static Configuration,
    broken: bool,
) -> (CaseResult, Results, String) {
    let options = CaseOptions {
        tamper: broken.then_some(no_tamper as sendtest::context::Tamper),
        random: RandomKnobs {
            seed: Some(7),
            ops: Some(60),
            snapshots: Some(2),
            ..RandomKnobs::default()
        },
        configuration: config,
        ..CaseOptions::default()
    };
    let (result, results) = run_loop(name, options);
    let log = std::fs::read_to_string(result.dir.join("commands.log")).unwrap_or_default();
    (result, results, log)
}

/// The `mkfs.btrfs` line and the `scratch NAME: … mounted` note of scratch filesystem `name`.
fn scratch_lines<'l>(log: &'l str, name: &str) -> (&'l str, &'l str) {
    let mkfs = log
        .lines()
        .find(|l| l.contains("$ mkfs.btrfs") && l.contains(&format!("-L sendtest-{name} ")))
        .unwrap_or_else(|| panic!("no mkfs of {name}:\n{log}"));
    let mount = log
        .lines()
        .find(|l| l.contains(&format!("# scratch {name}: ")))
        .unwrap_or_else(|| panic!("no mount of {name}:\n{log}"));
    (mkfs, mount)
}

#[test]
fn every_configuration_runs_with_its_options_where_they_belong() {
    if !preflight::loopback_or_skip("configurations") {
        return;
    }
    for config in configuration::ALL {
        for case in ["random", "ro-flip-with-delalloc"] {
            let (result, _results, log) = run_under(case, config, false);
            if let Outcome::NotRun(why) = &result.outcome {
                assert!(why.contains(config.name), "{}: {why}", config.name);
                eprintln!("{case}@{}: not run here: {why}", config.name);
                continue;
            }
            assert_eq!(result.outcome, Outcome::Passed, "{case}@{}", config.name);
            let expected_dir = if config.is_default() {
                case.to_string()
            } else {
                format!("{case}@{}", config.name)
            };
            assert!(
                result.dir.ends_with(&expected_dir),
                "{}",
                result.dir.display()
            );
            let environment = std::fs::read_to_string(result.dir.join("environment")).unwrap();
            assert!(
                environment.contains(&format!("configuration: {} (", config.name)),
                "{environment}"
            );
            let (mkfs, mount) = scratch_lines(&log, "source");
            let (recv_mkfs, recv_mount) = scratch_lines(&log, "received");
            let mkfs_all = config.mkfs.join(" ");
            let recv_only = config.receive_mkfs.join(" ");
            assert!(mkfs.contains(&mkfs_all), "{}: {mkfs}", config.name);
            assert!(
                recv_mkfs.contains(&mkfs_all),
                "{}: {recv_mkfs}",
                config.name
            );
            if !recv_only.is_empty() {
                assert!(
                    recv_mkfs.contains(&recv_only),
                    "{}: {recv_mkfs}",
                    config.name
                );
                assert!(!mkfs.contains(&recv_only), "{}: {mkfs}", config.name);
            }
            assert!(mount.contains(config.mount), "{}: {mount}", config.name);
            if !config.receive_mount.is_empty() {
                assert!(
                    recv_mount.contains(config.receive_mount),
                    "{}: {recv_mount}",
                    config.name
                );
                assert!(
                    !mount.contains(config.receive_mount),
                    "{}: {mount}",
                    config.name
                );
            }
            let sends: Vec<&str> = log.lines().filter(|l| l.contains("$ btrfs send")).collect();
            assert!(!sends.is_empty(), "{case}@{}: no send", config.name);
            let send_options = format!(" {} ", config.send.join(" "));
            // The random case's second chain always sends protocol 2 with compressed data.
            assert!(
                sends.iter().any(|l| l.contains(&send_options)),
                "{case}@{}: {sends:#?}",
                config.name
            );
        }
    }
}

#[test]
fn under_a_configuration_a_planted_difference_is_named_and_its_replay_keeps_it() {
    if !preflight::loopback_or_skip("configurations: planted difference") {
        return;
    }
    let config = configuration::by_name("receive-compress").unwrap();
    let (result, _results, _log) = run_under("random", config, true);
    let Outcome::Failed(reason) = &result.outcome else {
        panic!("a broken received tree passed: {:?}", result.outcome)
    };
    assert!(
        reason.contains(": field size: expected ") && reason.contains("differs from its source"),
        "{reason}"
    );
    assert!(
        reason
            .contains("`sendtest run random --seed 7 --ops 60 --snapshots 2 -c receive-compress`"),
        "{reason}"
    );
    let script = std::fs::read_to_string(result.dir.join("random-7.sh")).unwrap();
    assert!(
        script.contains("# Configuration `receive-compress`")
            && script.contains("mount -o compress-force=zlib \"$dst\""),
        "{script}"
    );
}
