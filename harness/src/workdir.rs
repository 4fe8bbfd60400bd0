//! Private working directories, `$TMPDIR/sendtest-<pid>-XXXXXX`, and the sweep that releases
//! what a killed harness left in them.
//!
//! Every image, loop device, mount and qemu process of a run lives in or refers to such a
//! directory, and each directory holds an `owner` file naming the process that made it (pid and
//! start time, which together name one process for the life of a boot). A harness killed with
//! SIGKILL releases nothing; the next one to start finds its directories by their owner being
//! gone, and releases exactly what refers to them. Directories of a live harness, and anything
//! outside these directories, are never touched.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::loopdev;

const PREFIX: &str = "sendtest-";
const OWNER_FILE: &str = "owner";

/// A fresh private directory owned by this process, removed on drop.
pub fn create() -> Result<TempDir> {
    let pid = std::process::id();
    let dir = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{pid}-"))
        .tempdir()
        .context("creating a private directory for images")?;
    let owner = identity(pid).context("reading this process's start time from /proc")?;
    std::fs::write(dir.path().join(OWNER_FILE), owner)
        .with_context(|| format!("writing the owner file in {}", dir.path().display()))?;
    Ok(dir)
}

/// What to tell the user of a private directory whose images were kept after a failure
/// (`--keep-failed`): where it is, how to look at each image, and what releases it.
pub fn kept_images_note(dir: &Path) -> String {
    let mut images: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "img") && !p.ends_with("results.img"))
        .collect();
    images.sort();
    let mut note = format!(
        "scratch images kept in {} (the next `sendtest run` or `sendtest clean` removes them); to look:",
        dir.display()
    );
    for image in images {
        note.push_str(&format!(
            "\n  mkdir -p /mnt/look && mount -o loop,ro {} /mnt/look && ls /mnt/look; umount /mnt/look",
            image.display()
        ));
    }
    note
}

/// `<pid> <start time>` of a running process, from `/proc/<pid>/stat`.
fn identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    start_time_in_stat(&stat).map(|start| format!("{pid} {start}"))
}

/// Field 22 (starttime) of a `/proc/<pid>/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so counting starts after its closing parenthesis.
fn start_time_in_stat(stat: &str) -> Option<&str> {
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(19)
}

/// The pid in a directory name made by [`create`].
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Whether the process that made `dir` is still running. Without an owner file (a directory
/// being made right now, or one from an older harness) only the pid is checked, which errs on
/// the side of leaving it alone.
fn owner_alive(dir: &Path, pid: u32) -> bool {
    match std::fs::read_to_string(dir.join(OWNER_FILE)) {
        Ok(owner) => identity(pid).is_some_and(|now| now == owner.trim()),
        Err(_) => Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// What a sweep released.
#[derive(Debug, Default)]
pub struct Swept {
    pub directories: usize,
    pub processes: usize,
    pub mounts: usize,
    pub loop_devices: usize,
    /// What could not be released, one line each.
    pub problems: Vec<String>,
}

impl Swept {
    pub fn is_empty(&self) -> bool {
        self.directories == 0 && self.problems.is_empty()
    }

    /// One line for the user.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "released what earlier runs left (killed, or kept with --keep-failed): {} director(ies), {} qemu process(es), {} mount(s), {} loop device(s)",
            self.directories, self.processes, self.mounts, self.loop_devices
        );
        if !self.problems.is_empty() {
            line.push_str(&format!("; left: {}", self.problems.join("; ")));
        }
        line
    }
}

/// Releases everything that belongs to directories whose owner is dead.
pub fn sweep_dead() -> Swept {
    let mut swept = Swept::default();
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return swept;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner_pid) else {
            continue;
        };
        let dir = entry.path();
        if pid == std::process::id() || !entry.path().is_dir() || owner_alive(&dir, pid) {
            continue;
        }
        sweep_dir(&dir, &mut swept);
    }
    swept
}

fn sweep_dir(dir: &Path, swept: &mut Swept) {
    let inside = |path: &Path| path.starts_with(dir);
    // Processes first: a qemu of the dead harness holds its disk images open.
    for pid in processes_mentioning(dir) {
        if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
            swept.processes += 1;
        }
        wait_gone(pid);
    }
    let bound_before = loopdev::bound()
        .into_iter()
        .filter(|(_, backing)| inside(backing))
        .count();
    // Deepest mounts first, in case one is mounted inside another.
    let mut mounts: Vec<PathBuf> = mount_points().into_iter().filter(|m| inside(m)).collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for mount in &mounts {
        let result =
            umount2(mount, MntFlags::empty()).or_else(|_| umount2(mount, MntFlags::MNT_DETACH));
        match result {
            Ok(()) => swept.mounts += 1,
            Err(e) => swept
                .problems
                .push(format!("mount {}: {e}", mount.display())),
        }
    }
    // A loop device with autoclear goes by itself once its filesystem is unmounted; give it a
    // moment, then detach what is still bound.
    let deadline = Instant::now() + Duration::from_secs(2);
    let ours = || -> Vec<PathBuf> {
        loopdev::bound()
            .into_iter()
            .filter(|(_, backing)| inside(backing))
            .map(|(device, _)| device)
            .collect()
    };
    let mut left = ours();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left = ours();
    }
    for device in &left {
        if let Err(e) = loopdev::detach(device) {
            swept.problems.push(format!("{e:#}"));
        }
    }
    swept.loop_devices += bound_before;
    if mount_points().iter().any(|m| inside(m)) {
        swept.problems.push(format!(
            "{} still has a mount inside; not removed",
            dir.display()
        ));
        return;
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => swept.directories += 1,
        Err(e) => swept
            .problems
            .push(format!("removing {}: {e}", dir.display())),
    }
}

/// Pids whose command line names a path inside `dir` (a dead harness's qemu, say).
fn processes_mentioning(dir: &Path) -> Vec<i32> {
    let mark = format!("{}/", dir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .contains(&mark)
                .then_some(pid)
        })
        .collect()
}

fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    // A killed process's cmdline reads empty once it is a zombie, and the zombie of a dead
    // harness's child is reaped by init.
    while std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Mount points of this mount namespace, unescaped.
fn mount_points() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split(' ').nth(1))
        .map(|field| PathBuf::from(unescape_mount_field(field)))
        .collect()
}

/// `/proc/mounts` writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let text = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_field_22_even_with_a_strange_name() {
        let stat =
            "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time_in_stat(stat), Some("987654"));
        let own = identity(std::process::id()).expect("own stat");
        assert!(
            own.starts_with(&format!("{} ", std::process::id())),
            "{own}"
        );
    }

    #[test]
    fn directory_names_give_their_pid() {
        assert_eq!(owner_pid("sendtest-1234-AbCd12"), Some(1234));
        assert_eq!(owner_pid("sendtest-x-AbCd12"), None);
        assert_eq!(owner_pid("other-1234-AbCd12"), None);
    }

    #[test]
    fn mount_fields_are_unescaped() {
        assert_eq!(unescape_mount_field(r"/tmp/a\040b\134c"), r"/tmp/a b\c");
        assert_eq!(unescape_mount_field("/plain"), "/plain");
    }

    #[test]
    fn own_directories_are_alive_and_a_dead_owner_is_not() {
        let dir = create().unwrap();
        assert!(owner_alive(dir.path(), std::process::id()));
        // The same pid with another start time: a reused pid, so the owner is gone.
        std::fs::write(
            dir.path().join(OWNER_FILE),
            format!("{} 1", std::process::id()),
        )
        .unwrap();
        assert!(!owner_alive(dir.path(), std::process::id()));
    }
}
