//! The random cases' reproducer scripts, run by hand as a kernel developer would, whichever
//! way they compare: with sendtest's manifests (this package's binary, which cargo builds for
//! these tests), or with stat, cmp and getfattr alone. The script of a failure must fail the
//! same way; a script of a list that passes must pass, or it would send a developer after a bug
//! that is not there.

use std::path::Path;
use std::process::Command;

use sendtest::backend;
use sendtest::case::Require;
use sendtest::context::{CaseOptions, RandomKnobs};
use sendtest::preflight;
use sendtest::random::{ops, script, Compression, Receive, ScriptOptions};
use sendtest::runner::{self, Outcome};

/// Whether the scripts' tools are here; when they are not, a test is skipped (or fails under
/// SENDTEST_REQUIRE_ALL).
fn script_tools_here() -> bool {
    let missing: Vec<&str> = ["xfs_io", "setfattr", "getfattr"]
        .into_iter()
        .filter(|p| preflight::find_in_path(p).is_none())
        .collect();
    if !missing.is_empty() {
        assert!(!preflight::require_all(), "the scripts need {missing:?}");
        eprintln!("skipped: {missing:?} missing");
    }
    missing.is_empty()
}

/// The mounts and loop devices of scripts' images (`…/src.img`, `…/dst.img`) there are now.
fn script_images() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("/src.img") || l.contains("/dst.img"))
        .map(str::to_string)
        .collect();
    for entry in std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
    {
        let backing = entry.path().join("loop/backing_file");
        if let Ok(file) = std::fs::read_to_string(backing) {
            if file.contains("/src.img") || file.contains("/dst.img") {
                found.push(file.trim().to_string());
            }
        }
    }
    found.sort();
    found
}

/// Scripts run one at a time, so that each can be checked for what it leaves behind.
static ONE_SCRIPT_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs the script at `path`, comparing with sendtest or without: its exit code, its stdout,
/// and all it printed, for the message of a failed assertion. A script that leaves a mount or
/// loop device of its images behind fails the test.
fn run_script(path: &Path, with_sendtest: bool) -> (Option<i32>, String, String) {
    let _turn = ONE_SCRIPT_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let before = script_images();
    let (code, stdout, shown) = run_script_once(path, with_sendtest);
    let left: Vec<String> = script_images()
        .into_iter()
        .filter(|m| !before.contains(m))
        .collect();
    assert!(left.is_empty(), "the script left {left:#?} behind: {shown}");
    (code, stdout, shown)
}

fn run_script_once(path: &Path, with_sendtest: bool) -> (Option<i32>, String, String) {
    let mut bash = Command::new("bash");
    bash.arg(path);
    if with_sendtest {
        bash.env("SENDTEST", env!("CARGO_BIN_EXE_sendtest"));
    } else {
        bash.env_remove("SENDTEST");
    }
    let out = bash.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let shown = format!(
        "{} (sendtest: {with_sendtest})\n{stdout}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), stdout, shown)
}

fn no_tamper(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[test]
fn the_script_of_a_broken_tree_fails_with_either_comparison() {
    if !preflight::loopback_or_skip("random scripts: a broken tree") || !script_tools_here() {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let options = CaseOptions {
        // The random case truncates the largest received file by a byte.
        tamper: Some(no_tamper),
        random: RandomKnobs {
            seed: Some(42),
            ops: Some(300),
            snapshots: Some(4),
            receive: Some(Receive::Plain),
            ..RandomKnobs::default()
        },
        ..CaseOptions::default()
    };
    let random = cases::by_name("random").unwrap();
    let result = runner::run_one(random, results.path(), options, &backend::Loop);
    assert!(
        matches!(result.outcome, Outcome::Failed(_)),
        "{:?}",
        result.outcome
    );
    for with_sendtest in [true, false] {
        let (code, stdout, shown) = run_script(&result.dir.join("random-42.sh"), with_sendtest);
        assert_eq!(code, Some(1), "{shown}");
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
fn scripts_of_lists_that_pass_pass_with_either_comparison() {
    if !preflight::loopback_or_skip("random scripts: lists that pass") || !script_tools_here() {
        return;
    }
    // Seeds that the random case passes at this size (its tests run 1-20); the third also
    // with protocol 2 where it can. Each receives another way.
    let proto2 = Require::SendProtocol(2).unmet().is_none();
    // Some under a configuration, whose options the script's mkfs and mount lines carry.
    // And each sends its later snapshots against one of the ways.
    use sendtest::random::Parents;
    let runs = [
        (1, false, Receive::Twice, "default", Parents::Clones),
        (
            2,
            false,
            Receive::RootMount,
            "receive-compress",
            Parents::FullToo,
        ),
        (3, proto2, Receive::ForceDecompress, "holes", Parents::First),
        (4, false, Receive::Nested, "nodesize-64k", Parents::Previous),
        (5, false, Receive::Chroot, "receive-holes", Parents::FullToo),
        (
            6,
            false,
            Receive::MaxErrors,
            "max-inline-0",
            Parents::Clones,
        ),
        (7, false, Receive::PrefixMount, "default", Parents::First),
        (8, proto2, Receive::Plain, "default", Parents::Twin),
        (9, proto2, Receive::SubvolMount, "default", Parents::Clones),
        (10, false, Receive::Twice, "default", Parents::Bundle),
        (
            11,
            proto2,
            Receive::Plain,
            "default",
            Parents::BundleOneStream,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    // The sockets' line (perl binds them) runs in some of these scripts.
    let mut sockets = 0;
    for (seed, proto2, receive, config, parents) in runs {
        let list = ops::generate(seed, 400, 5);
        let options = ScriptOptions {
            break_received: false,
            proto2,
            ignore: vec!["ctime".into(), "layout".into(), ".:mtime".into()],
            receive,
            parents,
            configuration: sendtest::configuration::by_name(config).unwrap(),
            compressed: false,
            // Seed 8 draws zlib; seed 3's --force-decompress decompresses lzo itself.
            compression: match seed {
                3 => Compression::Lzo,
                _ => Compression::draw(seed),
            },
        };
        let path = dir.path().join(format!("random-{seed}.sh"));
        let text = script(seed, &list, &options, "none: a test");
        sockets += text.matches("perl -MSocket").count();
        if proto2 {
            let mount = options.compression.mount_option();
            assert!(text.contains(&mount), "{mount}: {text}");
        }
        if parents == Parents::Twin {
            assert!(text.contains("-p \"$work/src/twin.snap\""), "{text}");
        }
        if parents == Parents::BundleOneStream {
            assert!(
                text.contains(" -e -p \"$work/src/snap0\" \"$work/src/snap1\" \"$work/src/snap2\""),
                "{text}"
            );
        }
        std::fs::write(&path, text).unwrap();
        for with_sendtest in [true, false] {
            let (code, stdout, shown) = run_script(&path, with_sendtest);
            let shown = format!(
                "seed {seed}, protocol 2: {proto2}, receive {}, configuration {config}, parents {}: {shown}",
                receive.name(),
                parents.name()
            );
            assert_eq!(code, Some(0), "{shown}");
            assert!(
                stdout.contains("passed: the failure did not reproduce"),
                "{shown}"
            );
        }
    }
    assert!(sockets > 0, "no script made a socket");
}

#[test]
fn the_compressed_check_of_a_script_fails_where_the_receiver_decompressed() {
    if !preflight::loopback_or_skip("random scripts: compressed blocks") || !script_tools_here() {
        return;
    }
    if let Some(unmet) = Require::SendProtocol(2).unmet() {
        assert!(!preflight::require_all(), "{unmet}");
        eprintln!("skipped: {unmet}");
        return;
    }
    // The script of a compressed-rule failure compares which blocks fiemap reports compressed
    // (filefrag's `encoded`). Received plainly, the stream's encoded writes are compressed
    // on the receiver too: it passes. With --force-decompress, the receiver writes them
    // decompressed on a filesystem that does not compress: it fails, either way it compares.
    let dir = tempfile::tempdir().unwrap();
    let list = ops::generate(3, 400, 5);
    for (receive, fails) in [(Receive::Plain, false), (Receive::ForceDecompress, true)] {
        let options = ScriptOptions {
            proto2: true,
            ignore: vec!["ctime".into(), "layout".into(), ".:mtime".into()],
            receive,
            compressed: true,
            ..ScriptOptions::default()
        };
        let path = dir.path().join(format!("random-3-{}.sh", receive.name()));
        std::fs::write(&path, script(3, &list, &options, "none: a test")).unwrap();
        for with_sendtest in [true, false] {
            let (code, stdout, shown) = run_script(&path, with_sendtest);
            if fails {
                assert_eq!(code, Some(1), "{shown}");
                assert!(
                    stdout.contains(" compressed in the source, not received compressed"),
                    "{shown}"
                );
            } else {
                assert_eq!(code, Some(0), "{shown}");
                assert!(!stdout.contains("not received compressed"), "{shown}");
            }
        }
    }
}
