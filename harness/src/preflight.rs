//! Checks that the loopback backend can run here. Each failure is one line that names the fix.

use std::path::Path;

/// Programs the loopback backend runs.
const PROGRAMS: &[(&str, &str)] = &[("btrfs", "btrfs-progs"), ("mkfs.btrfs", "btrfs-progs")];

/// Why the loopback backend cannot run here, or `Ok`.
pub fn loopback() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("the loopback backend needs root (loop devices, mounts, /dev/kmsg): rerun as root, or pass `--backend vm`, which does not".into());
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.split_whitespace().any(|fs| fs == "btrfs") {
        return Err(
            "the running kernel has no btrfs (not in /proc/filesystems): run `modprobe btrfs`"
                .into(),
        );
    }
    for (program, package) in PROGRAMS {
        if find_in_path(program).is_none() {
            return Err(format!(
                "`{program}` is not in PATH: install {package} (`apt-get install {package}`)"
            ));
        }
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err("no /dev/loop-control: load the loop module (`modprobe loop`)".into());
    }
    Ok(())
}

/// Whether tests that need the loopback backend must run: set `SENDTEST_REQUIRE_ALL=1` (as CI
/// does) to turn a missing requirement into a failure instead of a skip.
pub fn require_all() -> bool {
    std::env::var_os("SENDTEST_REQUIRE_ALL").is_some_and(|v| v == "1")
}

/// For tests that need the loopback backend: `true` if they can run, `false` (with a message)
/// if they should skip, and a panic if they must run but cannot.
pub fn loopback_or_skip(test: &str) -> bool {
    match loopback() {
        Ok(()) => true,
        Err(why) if require_all() => {
            panic!("{test}: {why} (SENDTEST_REQUIRE_ALL=1 forbids skipping)")
        }
        Err(why) => {
            eprintln!("{test}: skipped: {why}");
            false
        }
    }
}

pub fn find_in_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
