//! btrfs operations as ioctls, for loops that race the kernel. A snapshot, a subvolume delete
//! or a commit then costs one system call rather than a btrfs-progs process, which under TCG is
//! the difference between about a hundred and several hundred snapshots during one send.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

const BTRFS_IOCTL_MAGIC: u8 = 0x94;
const BTRFS_SUBVOL_RDONLY: u64 = 1 << 1;
const PATH_NAME_SIZE: usize = 4088;
const SUBVOL_NAME_SIZE: usize = 4040;

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; PATH_NAME_SIZE],
}

/// `struct btrfs_ioctl_vol_args_v2`.
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; SUBVOL_NAME_SIZE],
}

const _: () = assert!(std::mem::size_of::<VolArgs>() == 4096);
const _: () = assert!(std::mem::size_of::<VolArgsV2>() == 4096);

nix::ioctl_write_ptr!(ioc_snap_create_v2, BTRFS_IOCTL_MAGIC, 23, VolArgsV2);
nix::ioctl_write_ptr!(ioc_snap_destroy, BTRFS_IOCTL_MAGIC, 15, VolArgs);
nix::ioctl_none!(ioc_sync, BTRFS_IOCTL_MAGIC, 8);

fn open_dir(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("opening {}", path.display()))
}

/// The parent directory and the name of `path`, with the name checked against `max` bytes.
fn split(path: &Path, max: usize) -> Result<(File, Vec<u8>)> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("{} has no parent directory and name", path.display());
    };
    let name = name.as_bytes().to_vec();
    if name.len() >= max {
        bail!("{}: name too long for a subvolume", path.display());
    }
    Ok((open_dir(parent)?, name))
}

/// A read-only snapshot of subvolume `source` at `dest`, committed when this returns.
pub fn snapshot_readonly(source: &Path, dest: &Path) -> Result<()> {
    let source_dir = open_dir(source)?;
    let (parent, name) = split(dest, SUBVOL_NAME_SIZE)?;
    let mut args = Box::new(VolArgsV2 {
        fd: i64::from(source_dir.as_raw_fd()),
        transid: 0,
        flags: BTRFS_SUBVOL_RDONLY,
        unused: [0; 4],
        name: [0; SUBVOL_NAME_SIZE],
    });
    args.name[..name.len()].copy_from_slice(&name);
    // SAFETY: `args` is a complete, NUL-terminated btrfs_ioctl_vol_args_v2 that outlives the call.
    unsafe { ioc_snap_create_v2(parent.as_raw_fd(), &*args) }
        .with_context(|| format!("snapshotting {} to {}", source.display(), dest.display()))?;
    Ok(())
}

/// Deletes subvolume `path`; its blocks are freed by the cleaner in later commits.
pub fn delete_subvolume(path: &Path) -> Result<()> {
    let (parent, name) = split(path, PATH_NAME_SIZE)?;
    let mut args = Box::new(VolArgs {
        fd: 0,
        name: [0; PATH_NAME_SIZE],
    });
    args.name[..name.len()].copy_from_slice(&name);
    // SAFETY: as above, for btrfs_ioctl_vol_args.
    unsafe { ioc_snap_destroy(parent.as_raw_fd(), &*args) }
        .with_context(|| format!("deleting subvolume {}", path.display()))?;
    Ok(())
}

/// Commits the running transaction of the filesystem holding `path`.
pub fn commit(path: &Path) -> Result<()> {
    let dir = open_dir(path)?;
    // SAFETY: BTRFS_IOC_SYNC takes no argument.
    unsafe { ioc_sync(dir.as_raw_fd()) }
        .with_context(|| format!("committing the filesystem of {}", path.display()))?;
    Ok(())
}
