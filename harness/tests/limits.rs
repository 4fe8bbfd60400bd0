//! Cases that do not end by themselves, and cases that run out of space: a stuck send is killed
//! at the case's time limit, a step stuck in the kernel is given up on shortly after it, and a
//! full scratch filesystem is an environment error, never a pass or a finding.

use std::time::{Duration, Instant};

mod support;

use sendtest::case::Case;
use sendtest::context::CaseOptions;
use sendtest::exec;
use sendtest::runner::{CaseResult, Outcome};
use sendtest::scratch::ScratchSpec;
use sendtest::workload::{FileSpec, Writes};
use support::{our_leftovers, run_loop, test_case as case};
use xshell::cmd;

const BIG: FileSpec = FileSpec {
    name: "big",
    ranges: &[(0, 4 << 20)],
    size: 4 << 20,
    xattrs: &[],
};

/// The result, and the results directory it points into.
fn run_with_timeout(case: &Case, timeout: Duration) -> (CaseResult, tempfile::TempDir) {
    run_loop(
        case,
        CaseOptions {
            timeout,
            ..CaseOptions::default()
        },
    )
}

#[test]
fn time_limits_and_full_disks() {
    if !sendtest::preflight::loopback_or_skip("time_limits_and_full_disks") {
        return;
    }
    // One test, so that no sibling's devices are counted as leftovers.

    // btrfs send into a pipe nobody reads blocks once the pipe is full, as a stuck receiver
    // would leave it.
    let stuck_send = case("stuck-send", |t| {
        let fs = t.scratch("source")?;
        let subvol = t.create_subvolume(&fs.join("data"))?;
        t.write_files(&subvol, &[BIG], Writes::Fsynced)?;
        t.set_readonly(&subvol)?;
        let sh = t.sh();
        let (send, _never_read) = exec::spawn_reading(cmd!(sh, "btrfs send {subvol}"))?;
        send.wait(t.log())?;
        Ok(())
    });
    let started = Instant::now();
    let (result, _results) = run_with_timeout(&stuck_send, Duration::from_secs(4));
    assert!(
        matches!(&result.outcome, Outcome::Failed(r)
            if r.contains("timed out") && r.contains("btrfs send") && r.contains("time limit of 4s")),
        "{:?}",
        result.outcome
    );
    assert!(
        started.elapsed() < Duration::from_secs(4 + 10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(our_leftovers(), Vec::<String>::new());

    // A step that never returns, as a mount stuck in the kernel would: the run gives up on it
    // and goes on; the thread is left behind, holding nothing.
    let hung = case("hung-step", |t| {
        t.note("about to hang");
        std::thread::sleep(Duration::from_secs(3600));
        Ok(())
    });
    let started = Instant::now();
    let (result, _results) = run_with_timeout(&hung, Duration::from_secs(2));
    assert!(
        matches!(&result.outcome, Outcome::Failed(r) if r.contains("hung") && r.contains("about to hang")),
        "{:?}",
        result.outcome
    );
    assert!(
        started.elapsed() < Duration::from_secs(2 + 5 + 3),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        result.dir.join("outcome").is_file(),
        "a hung case still gets its outcome file"
    );

    // More data than the filesystem holds.
    let full = case("full", |t| {
        let fs = t.scratch_with(
            "small",
            ScratchSpec {
                size: 256 << 20,
                mkfs_args: &[],
                mount_options: "",
            },
        )?;
        const TOO_BIG: FileSpec = FileSpec {
            name: "too-big",
            ranges: &[(0, 512 << 20)],
            size: 512 << 20,
            xattrs: &[],
        };
        t.write_files(&fs, &[TOO_BIG], Writes::Fsynced)
    });
    let (result, _results) = run_with_timeout(&full, Duration::from_secs(120));
    assert!(
        matches!(&result.outcome, Outcome::Error(r) if r.contains("ENOSPC")),
        "{:?}",
        result.outcome
    );
    assert_eq!(our_leftovers(), Vec::<String>::new());

    // A stream bigger than the receiving filesystem of `receive-small`: receive fails with
    // ENOSPC, and the harness says the receiver is full, not that the trees differ.
    let receiver_full = case("receiver-full", |t| {
        let fs = t.scratch("source")?;
        let vol = t.create_subvolume(&fs.join("vol"))?;
        const BIGGER: FileSpec = FileSpec {
            name: "bigger-than-the-receiver",
            ranges: &[(0, 320 << 20)],
            size: 320 << 20,
            xattrs: &[],
        };
        t.write_files(&vol, &[BIGGER], Writes::Fsynced)?;
        t.set_readonly(&vol)?;
        let received = t.send_receive(&vol)?;
        t.compare(&vol, &received)
    });
    let (result, _results) = run_loop(
        &receiver_full,
        CaseOptions {
            timeout: Duration::from_secs(120),
            configuration: sendtest::configuration::by_name("receive-small").unwrap(),
            ..CaseOptions::default()
        },
    );
    assert!(
        matches!(&result.outcome, Outcome::Error(r) if r.contains("had no room for what was sent (ENOSPC;") && r.contains("no difference")),
        "{:?}",
        result.outcome
    );
    assert_eq!(our_leftovers(), Vec::<String>::new());

    // The hung case's private directory holds nothing but its owner file; remove it, as the
    // next harness run would.
    for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("sendtest-{}-", std::process::id())) {
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
    }
}
