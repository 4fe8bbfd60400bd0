//! Mounts the harness makes, unmounted on drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// How long an unmount may keep failing with EBUSY (a command still finishing) before we detach.
const BUSY_RETRIES: u32 = 50;

/// A filesystem mounted by the harness. Unmounted on drop.
#[derive(Debug)]
pub struct Mount {
    target: PathBuf,
    mounted: bool,
}

impl Mount {
    /// Mounts `source` of type `fstype` on `target` with `options` (comma-separated, may be empty).
    pub fn new(source: &Path, target: &Path, fstype: &str, options: &str) -> Result<Mount> {
        let data = (!options.is_empty()).then_some(options);
        mount(Some(source), target, Some(fstype), MsFlags::empty(), data).with_context(|| {
            format!(
                "mounting {} ({fstype}) on {}",
                source.display(),
                target.display()
            )
        })?;
        Ok(Mount {
            target: target.to_path_buf(),
            mounted: true,
        })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmounts now and reports failure, where drop can only log it.
    pub fn unmount(mut self) -> Result<()> {
        self.mounted = false;
        unmount_path(&self.target)
    }
}

/// Remounts the filesystem mounted on `target` with `options` (as `mount -o remount,OPTIONS`
/// does, with no `mount` program: guests have none).
pub fn remount(target: &Path, options: &str) -> Result<()> {
    mount(
        None::<&Path>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT,
        Some(options),
    )
    .with_context(|| format!("remounting {} with {options}", target.display()))
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = unmount_path(&self.target) {
                eprintln!("sendtest: {e:#}");
            }
        }
    }
}

fn unmount_path(target: &Path) -> Result<()> {
    for _ in 0..BUSY_RETRIES {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(Errno::EBUSY) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(e).with_context(|| format!("unmounting {}", target.display())),
        }
    }
    // Something of ours still holds it; detach it from the tree so nothing outlives the run.
    umount2(target, MntFlags::MNT_DETACH)
        .with_context(|| format!("lazily unmounting busy {}", target.display()))?;
    anyhow::bail!("{} stayed busy and was detached lazily", target.display())
}
