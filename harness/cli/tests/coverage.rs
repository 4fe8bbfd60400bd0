//! `sendtest coverage` for real: btrfs-progs built with counters on loop devices, and a kernel
//! built with counters in fs/btrfs booted in guests. A function every send or receive runs is
//! reported as covered, and one the case cannot reach as never run: the handlers of the
//! `update_extent` command, which only `btrfs send --no-data` streams carry, and which the
//! random cases send but `ro-flip-with-delalloc`, the case these run, does not.
//!
//! They build btrfs-progs or a kernel, so they run only when `SENDTEST_PROGS_TREE` or
//! `SENDTEST_KERNEL_TREE` names a tree (`.ci/run` sets both).

mod common;

use std::path::{Path, PathBuf};

use common::{leftovers_after_settling, run_sendtest};
use sendtest::coverage::Tracefile;
use sendtest::mutate::mutant::unified_diff;

fn tree(variable: &str) -> Option<PathBuf> {
    let tree = std::env::var_os(variable).map(PathBuf::from);
    if tree.is_none() {
        eprintln!("skipped: set {variable} to a tree to run it (`.ci/run` sets it)");
    }
    tree
}

/// Times `function` was called in `file` (relative to `tree`) by the tracefile at `info`.
fn calls(info: &Path, tree: &Path, file: &str, function: &str) -> u64 {
    let text = std::fs::read_to_string(info).unwrap();
    let tracefile = Tracefile::parse(&text).unwrap();
    let path = format!("{}/{file}", tree.canonicalize().unwrap().display());
    let file = tracefile
        .files
        .get(&path)
        .unwrap_or_else(|| panic!("{} has no {path}", info.display()));
    file.functions
        .get(function)
        .unwrap_or_else(|| panic!("{path} has no function {function}"))
        .1
}

/// What a `sendtest` that must have exited 0 printed on stdout.
fn succeeded(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A patch that changes the line containing `needle` in `file`: only its line number matters.
fn touching(tree: &Path, file: &str, needle: &str) -> String {
    let old = std::fs::read_to_string(tree.join(file)).unwrap();
    assert!(old.contains(needle), "no `{needle}` in {file}");
    let new = old.replacen(needle, &format!("{needle} /* changed */"), 1);
    unified_diff(file, &old, &new)
}

#[test]
fn btrfs_progs_receive_coverage_on_loop_devices() {
    let Some(tree) = tree("SENDTEST_PROGS_TREE") else {
        return;
    };
    if !sendtest::preflight::loopback_or_skip("btrfs-progs coverage") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let patch = dir.path().join("change.patch");
    let ran = "dest_dir_full_path = realpath(tomnt, NULL);";
    let never = "fprintf(stderr, \"update_extent %s: offset=%llu, len=%llu\\n\",";
    std::fs::write(
        &patch,
        touching(&tree, "cmds/receive.c", ran) + &touching(&tree, "cmds/receive.c", never),
    )
    .unwrap();
    let results = dir.path().join("results");
    let html = dir.path().join("html");
    let (out, pid) = run_sendtest(&[
        "coverage",
        "--btrfs-progs-tree",
        tree.to_str().unwrap(),
        "ro-flip-with-delalloc",
        "--in-diff",
        patch.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    let stdout = succeeded(&out);
    let info = results.join("latest/coverage/btrfs-progs.info");
    assert!(calls(&info, &tree, "cmds/receive.c", "do_receive") > 0);
    assert_eq!(
        calls(&info, &tree, "cmds/receive.c", "process_update_extent"),
        0
    );
    assert!(
        stdout.contains("cmds/receive.c: lines "),
        "no summary of receive.c:\n{stdout}"
    );
    // The patch's two lines: one ran, one was never reached, and the report says which.
    let source = std::fs::read_to_string(tree.join("cmds/receive.c")).unwrap();
    let line_of = |needle: &str| source[..source.find(needle).unwrap()].matches('\n').count() + 1;
    assert!(
        stdout.contains(&format!(
            "cmds/receive.c: the patch adds or changes 2 line(s), 2 with code; the run executed 1; never reached: {}",
            line_of(never)
        )),
        "{stdout}"
    );
    let index = std::fs::read_to_string(html.join("index.html")).unwrap();
    assert!(index.contains("LCOV - code coverage report"));
    assert!(leftovers_after_settling(pid).is_empty());
}

#[test]
fn kernel_send_coverage_in_guests() {
    let Some(tree) = tree("SENDTEST_KERNEL_TREE") else {
        return;
    };
    // With a btrfs-progs tree too, when there is one: its programs run in the guests, and
    // their counters come back with the kernel's.
    let progs = std::env::var_os("SENDTEST_PROGS_TREE").map(PathBuf::from);
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let mut args = vec![
        "coverage",
        "--kernel-tree",
        tree.to_str().unwrap(),
        "ro-flip-with-delalloc",
        "--results",
        results.to_str().unwrap(),
    ];
    if let Some(progs) = &progs {
        args.extend(["--btrfs-progs-tree", progs.to_str().unwrap()]);
    }
    let (out, pid) = run_sendtest(&args);
    let stdout = succeeded(&out);
    let info = results.join("latest/coverage/kernel.info");
    assert!(calls(&info, &tree, "fs/btrfs/send.c", "btrfs_ioctl_send") > 0);
    assert_eq!(
        calls(&info, &tree, "fs/btrfs/send.c", "send_update_extent"),
        0
    );
    assert!(stdout.contains("fs/btrfs/send.c: lines "), "{stdout}");
    if let Some(progs) = &progs {
        let info = results.join("latest/coverage/btrfs-progs.info");
        assert!(calls(&info, progs, "cmds/receive.c", "do_receive") > 0);
    }
    assert!(leftovers_after_settling(pid).is_empty());
}
