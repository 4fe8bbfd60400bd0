//! Scratch filesystems: a block device of ours (a loop device over a sparse image in the case's
//! private directory, or a virtio disk the host made for a guest), a fresh btrfs, and a mount.
//! Released in that order, backwards, on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::exec::{self, CommandLog};
use crate::loopdev::LoopDevice;
use crate::mount::Mount;

/// Size of a scratch image. Sparse, so it costs only what is written; large enough that mkfs
/// does not switch to mixed block groups (it does below 1 GiB) and that cases do not hit ENOSPC.
pub const DEFAULT_SIZE: u64 = 4 << 30;

/// How to make a scratch filesystem.
#[derive(Debug, Clone, Copy)]
pub struct ScratchSpec<'a> {
    /// Bytes; below 1 GiB, consider `--mixed`.
    pub size: u64,
    /// More mkfs.btrfs arguments, such as `--mixed` or `-n 4096`.
    pub mkfs_args: &'a [&'a str],
    /// Mount options, comma-separated, such as `compress=zstd`; empty for the defaults.
    pub mount_options: &'a str,
}

impl ScratchSpec<'static> {
    /// The default size and mkfs, mounted with `compress=zstd`: compressed extents, for a
    /// send with `--compressed-data` (protocol 2) to send as they are.
    pub const COMPRESSED: ScratchSpec<'static> = ScratchSpec {
        size: DEFAULT_SIZE,
        mkfs_args: &[],
        mount_options: "compress=zstd",
    };
}

impl Default for ScratchSpec<'_> {
    fn default() -> Self {
        ScratchSpec {
            size: DEFAULT_SIZE,
            mkfs_args: &[],
            mount_options: "",
        }
    }
}

/// Where scratch filesystems get their block devices.
#[derive(Debug)]
pub enum Devices {
    /// A new sparse image and loop device for each scratch filesystem.
    Loop,
    /// Block devices made for this run by the harness (a guest's virtio disks), used in order.
    Given(Mutex<Vec<PathBuf>>),
}

impl Devices {
    pub fn given(paths: Vec<PathBuf>) -> Devices {
        Devices::Given(Mutex::new(paths.into_iter().rev().collect()))
    }

    fn device_for(&self, dir: &Path, name: &str, size: u64) -> Result<Device> {
        match self {
            Devices::Loop => {
                let image = dir.join(format!("{name}.img"));
                File::create_new(&image)
                    .and_then(|file| file.set_len(size))
                    .with_context(|| format!("creating sparse image {}", image.display()))?;
                Ok(Device::Loop(LoopDevice::attach(&image)?))
            }
            Devices::Given(free) => {
                let next = free.lock().unwrap_or_else(|e| e.into_inner()).pop();
                next.map(Device::Given).context(
                    "no scratch disk left: the case uses more scratch filesystems than the VM has disks",
                )
            }
        }
    }
}

#[derive(Debug)]
enum Device {
    Loop(LoopDevice),
    Given(PathBuf),
}

impl Device {
    fn path(&self) -> &Path {
        match self {
            Device::Loop(device) => device.path(),
            Device::Given(path) => path,
        }
    }
}

/// One scratch btrfs, mounted.
#[derive(Debug)]
pub struct Scratch {
    name: String,
    // Field order is drop order: unmount before detaching the device.
    mount: Option<Mount>,
    device: Device,
    mountpoint: PathBuf,
    mount_options: String,
}

impl Scratch {
    /// Takes a device from `devices` (for loop devices, an image `<dir>/<name>.img` of the
    /// spec's size), makes a btrfs of that size on it and mounts it on `<dir>/<name>`.
    pub fn create(
        sh: &Shell,
        log: &CommandLog,
        devices: &Devices,
        dir: &Path,
        name: &str,
        spec: &ScratchSpec<'_>,
    ) -> Result<Scratch> {
        let device = devices.device_for(dir, name, spec.size)?;
        let dev = device.path();
        let label = format!("sendtest-{name}");
        // -b: the filesystem is `size` bytes on any device, a guest's larger disk included.
        // -K: no discard, which only punches holes in an image that is already sparse.
        let size = spec.size.to_string();
        let extra = spec.mkfs_args;
        exec::run(
            cmd!(
                sh,
                "mkfs.btrfs -f -q -K -b {size} {extra...} -L {label} {dev}"
            ),
            log,
        )?;
        let mountpoint = dir.join(name);
        std::fs::create_dir(&mountpoint)
            .with_context(|| format!("creating {}", mountpoint.display()))?;
        let mount = Mount::new(dev, &mountpoint, "btrfs", spec.mount_options)?;
        log.note(&format!(
            "scratch {name}: {} mounted at {} ({})",
            dev.display(),
            mountpoint.display(),
            if spec.mount_options.is_empty() {
                "default options"
            } else {
                spec.mount_options
            }
        ));
        Ok(Scratch {
            name: name.to_string(),
            mount: Some(mount),
            device,
            mountpoint,
            mount_options: spec.mount_options.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    pub fn device(&self) -> &Path {
        self.device.path()
    }

    /// Unmounts the filesystem and mounts it again with the same options, as fstests'
    /// `_scratch_cycle_mount` does: whatever lives only in memory (the inode cache, each
    /// root's next inode number) is read anew from disk.
    pub fn cycle_mount(&mut self, log: &CommandLog) -> Result<()> {
        if let Some(mount) = self.mount.take() {
            mount.unmount()?;
        }
        let mount = Mount::new(
            self.device.path(),
            &self.mountpoint,
            "btrfs",
            &self.mount_options,
        )?;
        self.mount = Some(mount);
        log.note(&format!(
            "scratch {}: unmounted and mounted again",
            self.name
        ));
        Ok(())
    }

    /// Unmounts, then runs `btrfs check --readonly` on the device. Returns the check's output
    /// when it found problems.
    pub fn unmount_and_check(&mut self, sh: &Shell, log: &CommandLog) -> Result<Option<String>> {
        if let Some(mount) = self.mount.take() {
            mount.unmount()?;
        }
        let dev = self.device.path();
        let out = exec::output(cmd!(sh, "btrfs check --readonly {dev}"), log)?;
        Ok((!out.status.success()).then(|| format!("{}{}", out.stdout, out.stderr)))
    }
}
