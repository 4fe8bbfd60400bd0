//! The VM backend end to end: Debian's packaged kernel boots under whatever accelerator the
//! probe picks (TCG on a host whose KVM hangs stock guests), runs a case, and brings its results
//! back; a panicking or hung guest fails its case without hanging the run; nothing outlives it.
//!
//! Needs qemu-system-x86 and linux-image-amd64 (`.ci/install-deps` installs both); without them
//! these tests are skipped, or fail under SENDTEST_REQUIRE_ALL=1.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

mod common;

use common::{leftovers, leftovers_after_settling, run_sendtest, spawn_sendtest};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn vm_available(test: &str) -> bool {
    let missing = if sendtest::preflight::find_in_path("qemu-system-x86_64").is_none() {
        Some("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    } else if sendtest::vm::Kernel::packaged().is_err() {
        Some("no packaged kernel in /boot (apt-get install linux-image-amd64)")
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) if sendtest::preflight::require_all() => {
            panic!("{test}: {why} (SENDTEST_REQUIRE_ALL=1)")
        }
        Some(why) => {
            eprintln!("{test}: skipped: {why}");
            false
        }
    }
}

fn run_vm(results: &Path, extra: &[&str]) -> (Output, u32) {
    let results = results.to_str().unwrap();
    let args: Vec<&str> = ["run", "--backend", "vm", "--results", results]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    run_sendtest(&args)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn case_dir(results: &Path) -> PathBuf {
    results.join("latest/ro-flip-with-delalloc")
}

#[test]
fn the_packaged_kernel_passes_ro_flip_with_delalloc() {
    if !vm_available("the_packaged_kernel_passes") {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let (out, pid) = run_vm(results.path(), &["ro-flip-with-delalloc"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = case_dir(results.path());
    for kept in [
        "data.source.manifest",
        "data.received.manifest",
        "commands.log",
        "dmesg",
        "console.log",
    ] {
        assert!(
            dir.join(kept).is_file(),
            "{kept} did not come back from the guest"
        );
    }
    // The guest's own kernel log: the Debian kernel, on virtio disks.
    let dmesg = std::fs::read_to_string(dir.join("dmesg")).unwrap();
    assert!(dmesg.contains("BTRFS info (device vda)"), "{dmesg}");
    assert_eq!(leftovers_after_settling(pid), Vec::<String>::new());
}

#[test]
fn the_packaged_kernel_passes_snapshot_during_send() {
    if !vm_available("the_packaged_kernel_passes_snapshot_during_send") {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let (out, pid) = run_vm(results.path(), &["snapshot-during-send"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = std::fs::read_to_string(
        results
            .path()
            .join("latest/snapshot-during-send/commands.log"),
    )
    .unwrap();
    assert!(
        log.contains("snapshots of sent-1 committed while it was sent"),
        "{log}"
    );
    assert_eq!(leftovers_after_settling(pid), Vec::<String>::new());
}

#[test]
fn a_panicking_guest_fails_its_case_with_its_console() {
    if !vm_available("a_panicking_guest") {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (out, pid) = run_vm(
        results.path(),
        &["--kernel-arg", "sendtest.sysrq=c", "ro-flip-with-delalloc"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the guest kernel crashed: "),
        "{}",
        text(&out)
    );
    let console = std::fs::read_to_string(case_dir(results.path()).join("console.log")).unwrap();
    assert!(console.contains("sysrq triggered crash"), "{console}");
    // Far below the 300 s case timeout: the panic ended the guest, nothing waited for it.
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(leftovers_after_settling(pid), Vec::<String>::new());
}

/// Everything `reader` yields, kept as it comes, so a test can wait for a line.
fn collect(reader: std::fs::File) -> std::sync::Arc<std::sync::Mutex<String>> {
    use std::io::Read;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut reader = reader;
        let mut buffer = [0u8; 4096];
        // EIO once the other side of the pty is gone.
        while let Ok(n @ 1..) = reader.read(&mut buffer) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
    seen
}

/// Waits until the terminal shows `what`; fails at once if `child` ends first.
fn wait_for(
    seen: &std::sync::Mutex<String>,
    what: &str,
    limit: Duration,
    child: &mut std::process::Child,
) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if seen.lock().unwrap().contains(what) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            // What it printed last may still be on its way through the pty.
            std::thread::sleep(Duration::from_millis(200));
            panic!(
                "sendtest shell ended ({status}) before `{what}`; the terminal shows:\n{}",
                seen.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no `{what}` within {limit:?}; the terminal shows:\n{}",
        seen.lock().unwrap()
    );
}

#[test]
fn the_guest_shell_takes_commands_typed_on_a_terminal() {
    use std::io::Write;
    if !vm_available("shell") {
        return;
    }
    let pty = nix::pty::openpty(None, None).unwrap();
    let terminal = || std::process::Stdio::from(pty.slave.try_clone().unwrap());
    let mut child = std::process::Command::new(common::SENDTEST)
        .arg("shell")
        .stdin(terminal())
        .stdout(terminal())
        .stderr(terminal())
        .spawn()
        .unwrap();
    drop(pty.slave);
    let mut keyboard = std::fs::File::from(pty.master);
    let seen = collect(keyboard.try_clone().unwrap());
    wait_for(
        &seen,
        sendtest::vm::guest::SHELL_PROMPT,
        Duration::from_secs(180),
        &mut child,
    );
    keyboard
        .write_all(b"echo $((6 * 7))-from-the-guest; ls /dev/vda; btrfs --version\n")
        .unwrap();
    wait_for(
        &seen,
        "42-from-the-guest",
        Duration::from_secs(60),
        &mut child,
    );
    wait_for(&seen, "btrfs-progs v", Duration::from_secs(60), &mut child);
    keyboard.write_all(b"exit\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the guest did not power off after `exit`"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let shown = seen.lock().unwrap().clone();
    assert!(status.success(), "{status}: {shown}");
    assert!(shown.contains("/dev/vda"), "{shown}");
    assert_eq!(leftovers_after_settling(child.id()), Vec::<String>::new());
}

#[test]
fn a_failed_guests_disks_are_kept_with_keep_failed_until_clean() {
    if !vm_available("keep_failed") {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let (out, pid) = run_vm(
        results.path(),
        &[
            "--keep-failed",
            "--kernel-arg",
            "sendtest.sysrq=c",
            "ro-flip-with-delalloc",
        ],
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let note = shown
        .lines()
        .find(|l| l.contains("scratch images kept in "))
        .unwrap_or_else(|| panic!("no note of kept disks:\n{shown}"));
    let dir = PathBuf::from(
        note.split("kept in ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap(),
    );
    assert!(dir.join("scratch0.img").is_file(), "{note}");
    assert!(shown.contains(&format!(
        "mount -o loop,ro {}",
        dir.join("scratch0.img").display()
    )));
    // The disks are all that is left: no qemu, loop device or mount.
    let held: Vec<String> = leftovers_after_settling(pid)
        .into_iter()
        .filter(|l| !l.starts_with("directory"))
        .collect();
    assert_eq!(held, Vec::<String>::new());
    let (clean, _) = run_sendtest(&["clean"]);
    let said = String::from_utf8_lossy(&clean.stderr);
    assert_eq!(clean.status.code(), Some(0), "{said}");
    assert!(
        !dir.exists(),
        "`sendtest clean` left {}: {said}",
        dir.display()
    );
}

#[test]
fn a_guest_past_its_timeout_is_killed_and_fails_its_case() {
    if !vm_available("a_guest_past_its_timeout") {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let (out, pid) = run_vm(results.path(), &["--timeout", "1", "ro-flip-with-delalloc"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("did not finish within 1s"),
        "{}",
        text(&out)
    );
    assert_eq!(leftovers_after_settling(pid), Vec::<String>::new());
}

#[test]
fn sigint_kills_the_guest_and_releases_everything() {
    if !vm_available("sigint_kills_the_guest") {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let results_dir = results.path().to_str().unwrap();
    let mut child = spawn_sendtest(&[
        "run",
        "--backend",
        "vm",
        "--results",
        results_dir,
        "ro-flip-with-delalloc",
    ]);
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !leftovers(pid).iter().any(|l| l.starts_with("qemu")) {
        assert!(Instant::now() < deadline, "no qemu started within 60s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its guest started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(Pid::from_raw(pid as i32), Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leftovers_after_settling(pid), Vec::<String>::new());
}

#[test]
fn a_kernel_that_is_not_a_bzimage_is_a_one_line_error() {
    if !vm_available("a_kernel_that_is_not_a_bzimage") {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    for (kernel, message) in [
        ("/nonexistent/bzImage", "cannot read kernel"),
        ("/etc/hostname", "is not a bzImage"),
    ] {
        let (out, _) = run_vm(results.path(), &["--kernel", kernel]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(message), "{err}");
    }
}

#[test]
fn in_guests_every_way_to_receive_and_configurations_run_with_their_options() {
    if !vm_available("receive ways and configurations in guests") {
        return;
    }
    for way in sendtest::random::Receive::ALL {
        let results = tempfile::tempdir().unwrap();
        let mut args = vec![
            "random",
            "--seed",
            "7",
            "--ops",
            "40",
            "--snapshots",
            "1",
            "--receive",
            way.name(),
        ];
        // Two ways run under configurations too: one on the receiving side only, one on both.
        let configs = match way {
            sendtest::random::Receive::PrefixMount => "receive-holes,compress-zstd",
            sendtest::random::Receive::MaxErrors => "receive-compress",
            _ => "default",
        };
        args.extend(["-c", configs]);
        let (out, pid) = run_vm(results.path(), &args);
        assert_eq!(out.status.code(), Some(0), "{}: {}", way.name(), text(&out));
        for config in configs.split(',') {
            let name = if config == "default" {
                "random".to_string()
            } else {
                format!("random@{config}")
            };
            let log = std::fs::read_to_string(
                results
                    .path()
                    .join("latest")
                    .join(&name)
                    .join("commands.log"),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            // The chain's receives, whatever the seed's verbosity (7: the default) and wherever
            // its option goes, not the refusals of broken copies in `refused/`.
            let receives: Vec<String> = log
                .lines()
                .map(|l| {
                    ["-vv", "-v", "-q"].iter().fold(l.to_string(), |l, level| {
                        l.replace(&format!("$ btrfs {level} receive "), "$ btrfs receive ")
                    })
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
            assert!(!receives.is_empty(), "{name} {}: {log}", way.name());
            let options = way.options("/mount").join(" ");
            if !options.is_empty() && way != sendtest::random::Receive::RootMount {
                assert!(
                    receives.iter().all(|l| l.contains(&options)),
                    "{name} {}: {receives:#?}",
                    way.name()
                );
            }
            for dir in way.dirs().iter().filter(|d| !d.is_empty()) {
                assert!(
                    receives.iter().any(|l| l.ends_with(&format!("/{dir}"))),
                    "{name} {}: {receives:#?}",
                    way.name()
                );
            }
            let expected_in_log = match config {
                "receive-holes" => "-O ^no-holes -L sendtest-received",
                "compress-zstd" => "btrfs send -q --proto 2 --compressed-data -f",
                "receive-compress" => "mounted at /tmp/sendtest-",
                _ => "$ btrfs receive",
            };
            assert!(log.contains(expected_in_log), "{name}: {log}");
            if config == "receive-compress" {
                assert!(
                    log.lines().any(|l| l.contains("# scratch received: ")
                        && l.contains("(compress-force=zlib)")),
                    "{log}"
                );
            }
            if way == sendtest::random::Receive::PrefixMount {
                assert!(log.contains("# mounted a tmpfs on "), "{log}");
            }
        }
        assert_eq!(leftovers_after_settling(pid), Vec::<String>::new());
    }
}
