//! What the command-line tests share: starting the binary, and finding what a harness process
//! left behind.

#![allow(dead_code)] // Each test file uses a part.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SENDTEST: &str = env!("CARGO_BIN_EXE_sendtest");

/// Starts `sendtest ARGS…` with stderr kept (for the message of a failed assertion).
pub fn spawn_sendtest(args: &[&str]) -> Child {
    Command::new(SENDTEST)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the sendtest binary")
}

/// Runs `sendtest ARGS…` to its end; what it printed, and its pid (to look for leftovers).
pub fn run_sendtest(args: &[&str]) -> (Output, u32) {
    let child = Command::new(SENDTEST)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the sendtest binary");
    let pid = child.id();
    (child.wait_with_output().expect("waiting for sendtest"), pid)
}

/// Everything a harness with pid `pid` may leave: loop devices over its images, mounts under its
/// private directories, qemu processes with its disks, and the directories themselves. The
/// harness marks all of them with `/sendtest-<pid>-` in their paths.
pub fn leftovers(pid: u32) -> Vec<String> {
    let mark = format!("/sendtest-{pid}-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/sys/block").unwrap().flatten() {
        if let Ok(file) = std::fs::read_to_string(entry.path().join("loop/backing_file")) {
            if file.contains(&mark) {
                found.push(format!(
                    "loop device {:?} over {}",
                    entry.file_name(),
                    file.trim()
                ));
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    found.extend(
        mounts
            .lines()
            .filter(|l| l.contains(&mark))
            .map(|l| format!("mount {l}")),
    );
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("qemu-system") && cmdline.contains(&mark) {
            found.push(format!("qemu pid {:?}", entry.file_name()));
        }
    }
    for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if format!("/{}", entry.file_name().to_string_lossy()).starts_with(&mark) {
            found.push(format!("directory {}", entry.path().display()));
        }
    }
    found
}

/// [`leftovers`], after giving the kernel a moment: a loop device detaches when its last
/// user closes it.
pub fn leftovers_after_settling(pid: u32) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let found = leftovers(pid);
        if found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
