//! `sendtest report` on loop devices: a finding that reproduces on the running kernel becomes
//! a report with each part the linux-btrfs list expects; a case that passes gives no report;
//! a seed of the random case that meets a known bug is reported with that bug's fix.

mod common;

use common::{leftovers_after_settling, run_sendtest};

#[test]
fn a_finding_becomes_a_bug_report_and_a_passing_case_none() {
    if !sendtest::preflight::loopback_or_skip("sendtest report") {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let dir = results.path().to_str().unwrap();
    let (out, pid) = run_sendtest(&["report", "setuid-after-chown", "--results", dir]);
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(1) && stderr.contains("did not reproduce") {
        // A kernel with the fix: the report's control. Nothing else to check here.
        eprintln!("setuid-after-chown passes on this kernel: {stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{text}\n{stderr}");
    for part in [
        "Subject: [BUG] btrfs send: ",
        "Seen on:\n  backend: loop\n  kernel: ",
        "expected 4755 got 0755",
        "    chown -h 65534:100 f 2>/dev/null\n",
        "    chown           ./chain-1.snap1/f               gid=100 uid=65534\n",
        "Subject: [PATCH] btrfs: send: send a chmod after a chown",
        "    _fixed_by_kernel_commit xxxxxxxxxxxx \\\n",
        "    $FSSUM_PROG -r $send_files_dir/1.fssum $SCRATCH_MNT/snap1\n",
        "tests/btrfs/NNN.out:\n\n    QA output created by NNN\n    OK\n    OK\n",
    ] {
        assert!(text.contains(part), "no `{part}` in the report:\n{text}");
    }
    assert!(leftovers_after_settling(pid).is_empty());

    let (out, _) = run_sendtest(&["report", "ro-flip-with-delalloc", "--results", dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to report"));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_seed_that_meets_a_known_bug_is_reported_with_its_fix() {
    if !sendtest::preflight::loopback_or_skip("sendtest report SEED")
        || sendtest::case::Require::SendProtocol(2).unmet().is_some()
    {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let dir = results.path().to_str().unwrap();
    let (out, pid) = run_sendtest(&["report", "1957065346", "--results", dir]);
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(1) && stderr.contains("did not reproduce") {
        eprintln!("seed 1957065346 passes on this kernel: {stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{text}\n{stderr}");
    for part in [
        "Subject: [BUG] btrfs send: a received file differs from its source (f0: ",
        "matched to the known bug encoded-inline-then-fallocate",
        "    # sendtest random, seed 1957065346: ",
        "    Subject: [PATCH] btrfs: send: send an inline extent encoded only when it is the whole file",
        "    _require_btrfs_send_version 2\n",
        "    # Found by sendtest's random case, seed 1957065346, shrunk to ",
    ] {
        assert!(text.contains(part), "no `{part}` in the report:\n{text}");
    }
    assert!(leftovers_after_settling(pid).is_empty());
}
