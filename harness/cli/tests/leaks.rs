//! A harness killed with SIGKILL releases nothing itself; the next run must release what it
//! left, and only that: a run that is still going is left alone.

use std::process::{Child, Output};
use std::time::{Duration, Instant};

mod common;

use common::{leftovers, leftovers_after_settling, run_sendtest, spawn_sendtest};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Waits until the run `child` has a scratch filesystem mounted.
fn wait_for_a_mount(child: &mut Child) {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if leftovers(pid).iter().any(|l| l.starts_with("mount")) {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "run {pid} ended before it mounted anything"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("run {pid} mounted nothing within 60 s");
}

fn finished(child: Child) -> (Output, String) {
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

#[test]
fn the_next_run_sweeps_what_sigkill_left_and_spares_a_live_run() {
    if !sendtest::preflight::loopback_or_skip("sigkill_sweep") {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let results = results.path().to_str().unwrap();
    let race = |seconds: &str| {
        spawn_sendtest(&[
            "run",
            "--results",
            results,
            "--duration",
            seconds,
            "snapshot-during-send",
        ])
    };
    let mut live = race("10");
    let mut doomed = race("60");
    wait_for_a_mount(&mut live);
    wait_for_a_mount(&mut doomed);
    let doomed_pid = doomed.id();
    kill(Pid::from_raw(doomed_pid as i32), Signal::SIGKILL).unwrap();
    doomed.wait().unwrap();
    let left = leftovers_after_settling(doomed_pid);
    assert!(
        left.iter().any(|l| l.starts_with("mount")),
        "SIGKILL should leave a mount for the sweep to find: {left:?}"
    );

    // Another run, at the same time as the live one and into the same results directory.
    let (next, _) = run_sendtest(&["run", "-g", "quick", "--results", results]);
    let next_err = String::from_utf8_lossy(&next.stderr);
    assert_eq!(next.status.code(), Some(0), "{next_err}");
    assert!(
        next_err.contains("released what earlier runs left"),
        "{next_err}"
    );
    assert_eq!(leftovers_after_settling(doomed_pid), Vec::<String>::new());

    let live_pid = live.id();
    assert!(
        !leftovers(live_pid).is_empty(),
        "the live run should still be running and holding its scratch filesystems"
    );
    let (live_out, live_err) = finished(live);
    assert_eq!(
        live_out.status.code(),
        Some(0),
        "the sweep must not touch a live run: {live_err}"
    );
    assert_eq!(leftovers_after_settling(live_pid), Vec::<String>::new());
    let runs = std::fs::read_dir(results)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "latest" && e.path().is_dir())
        .count();
    assert_eq!(runs, 3, "each run gets its own results directory");
}
