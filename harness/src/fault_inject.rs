//! Allocation failures on demand: the kernel's fail-nth (CONFIG_FAULT_INJECTION), which fails
//! the Nth fault point a task passes from the moment it is armed. With failslab
//! (CONFIG_FAILSLAB) each slab allocation is a fault point; debugfs' `failslab/ignore-gfp-wait`
//! must be off for allocations that may sleep (nearly all of a filesystem's) to count.
//!
//! Stepping N through 1, 2, … fails each allocation of an operation in turn, as syzkaller's
//! fault injection does. Only a guest's init sets the debugfs knobs: they are global, and the
//! host's belong to its owner.

use std::fs::File;
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};

const FAIL_NTH: &str = "/proc/thread-self/fail-nth";
const DEBUGFS: &str = "/sys/kernel/debug";
const FAILSLAB: &str = "/sys/kernel/debug/failslab";

/// Why allocation failures cannot be injected here, or `None`.
pub fn unmet() -> Option<String> {
    if !crate::vm::guest::is_guest() {
        return Some(
            "fails kernel allocations only in a guest (its debugfs knobs are global): run with \
             --kernel-tree TREE, which boots the tree built with vm-images/kernel.config"
                .into(),
        );
    }
    if !Path::new(FAIL_NTH).exists() {
        return Some(
            "needs a kernel with CONFIG_FAULT_INJECTION and CONFIG_FAILSLAB (vm-images/kernel.config \
             has them): run with --kernel-tree TREE"
                .into(),
        );
    }
    None
}

/// Lets allocations that may sleep fail too, and keeps each injected failure out of the kernel
/// log (failslab's `verbose` prints a stack trace, which would read as a problem). In a guest
/// only; debugfs is mounted if it is not.
pub fn let_sleeping_allocations_fail() -> Result<()> {
    anyhow::ensure!(
        crate::vm::guest::is_guest(),
        "failslab's knobs are set only in a guest"
    );
    if !Path::new(FAILSLAB).exists() {
        nix::mount::mount(
            Some("debugfs"),
            DEBUGFS,
            Some("debugfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .context("mounting debugfs for failslab's knobs")?;
    }
    for (knob, value) in [("ignore-gfp-wait", "N"), ("verbose", "0")] {
        let path = Path::new(FAILSLAB).join(knob);
        std::fs::write(&path, value).with_context(|| {
            format!(
                "writing {value} to {}: the kernel needs CONFIG_FAULT_INJECTION_DEBUG_FS",
                path.display()
            )
        })?;
    }
    Ok(())
}

/// Drops the page cache and the inodes and dentries no one holds (`vm/drop_caches` 3), so
/// that what next looks an inode up reads it again and allocates for it: the error paths of
/// `btrfs_iget` are fault points only for an inode that is not cached. Mode 2 alone leaves a
/// snapshot's inodes cached while their pages are, so both go. In a guest only: it is global.
pub fn drop_caches() -> Result<()> {
    const DROP_CACHES: &str = "/proc/sys/vm/drop_caches";
    anyhow::ensure!(
        crate::vm::guest::is_guest(),
        "the caches are dropped only in a guest"
    );
    std::fs::write(DROP_CACHES, "3").with_context(|| format!("writing 3 to {DROP_CACHES}"))
}

/// The calling thread's fail-nth. Not `Send`: the file names the thread that opened it, and
/// the failure lands in that thread's system calls.
pub struct FailNth {
    file: File,
    _this_thread: PhantomData<*const ()>,
}

impl FailNth {
    pub fn open() -> Result<FailNth> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(FAIL_NTH)
            .with_context(|| format!("opening {FAIL_NTH}"))?;
        Ok(FailNth {
            file,
            _this_thread: PhantomData,
        })
    }

    /// The `n`th fault point this thread passes from now on fails (n ≥ 1); 0 disarms.
    pub fn arm(&self, n: u32) -> Result<()> {
        self.file
            .write_at(n.to_string().as_bytes(), 0)
            .with_context(|| format!("writing {n} to {FAIL_NTH}"))?;
        Ok(())
    }

    /// Whether the armed failure happened. If it did not, the thread passed fewer fault points
    /// than it was armed for; it is disarmed, so that what follows runs without failures.
    pub fn fired(&self) -> Result<bool> {
        let mut buf = [0u8; 16];
        let len = self
            .file
            .read_at(&mut buf, 0)
            .with_context(|| format!("reading {FAIL_NTH}"))?;
        let left = parse_left(&buf[..len]).with_context(|| format!("{FAIL_NTH} holds no count"))?;
        if left > 0 {
            self.arm(0)?;
        }
        Ok(left == 0)
    }
}

/// The count fail-nth reads back: the fault points still to pass before the failure, 0 once
/// it happened.
fn parse_left(text: &[u8]) -> Option<u32> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_read_back_says_whether_the_failure_happened() {
        assert_eq!(parse_left(b"0\n"), Some(0));
        assert_eq!(parse_left(b"17\n"), Some(17));
        assert_eq!(parse_left(b""), None);
        assert_eq!(parse_left(b"x"), None);
    }

    #[test]
    fn on_the_host_nothing_is_injected() {
        // Tests run on the host, never as a guest's init.
        assert!(unmet().unwrap().contains("only in a guest"));
        assert!(let_sleeping_allocations_fail().is_err());
    }
}
