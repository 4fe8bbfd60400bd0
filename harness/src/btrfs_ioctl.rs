//! btrfs operations as ioctls, for loops that race the kernel. A snapshot, a subvolume delete
//! or a commit then costs one system call rather than a btrfs-progs process, which under TCG is
//! the difference between about a hundred and several hundred snapshots during one send.
//!
//! Also what btrfs-progs would tell less exactly: a subvolume's identity as receive leaves it
//! (read-only flag, UUIDs, transaction ids), and its read-only flag set or cleared without
//! touching the received UUID (`btrfs property set -f … ro false` clears it).
//!
//! And send itself (BTRFS_IOC_SEND) as one system call, for what `btrfs send` cannot do: fail
//! a chosen allocation inside the ioctl alone, or pass arguments btrfs-progs never would.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
pub use nix::errno::Errno;

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
nix::ioctl_read!(ioc_subvol_getflags, BTRFS_IOCTL_MAGIC, 25, u64);
nix::ioctl_write_ptr!(ioc_subvol_setflags, BTRFS_IOCTL_MAGIC, 26, u64);
nix::ioctl_read!(ioc_get_subvol_info, BTRFS_IOCTL_MAGIC, 60, SubvolInfoArgs);
nix::ioctl_write_ptr!(ioc_send, BTRFS_IOCTL_MAGIC, 38, SendArgs);

/// `struct btrfs_ioctl_send_args`.
#[repr(C)]
struct SendArgs {
    send_fd: i64,
    clone_sources_count: u64,
    clone_sources: *const u64,
    parent_root: u64,
    flags: u64,
    version: u32,
    reserved: [u8; 28],
}

const _: () = assert!(std::mem::size_of::<SendArgs>() == 72);

/// `BTRFS_SEND_FLAG_VERSION`: `version` names the stream's protocol.
pub const SEND_FLAG_VERSION: u64 = 0x8;
/// `BTRFS_SEND_FLAG_COMPRESSED`: compressed extents go as they are (protocol 2 and later).
pub const SEND_FLAG_COMPRESSED: u64 = 0x10;

/// What BTRFS_IOC_SEND is asked: the fields of `struct btrfs_ioctl_send_args`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendRequest<'a> {
    /// The parent's tree id, 0 for a full send.
    pub parent_root: u64,
    pub clone_sources: &'a [u64],
    /// Overrides `clone_sources.len()` as the count the kernel is told.
    pub clone_sources_count: Option<u64>,
    pub flags: u64,
    pub version: u32,
}

/// Sends subvolume `subvol` into `out` at offset 0, as one ioctl: nothing else enters the
/// kernel, so a fault armed just before fails inside send.
pub fn send(subvol: &File, out: &File, request: &SendRequest) -> nix::Result<()> {
    let args = SendArgs {
        send_fd: i64::from(out.as_raw_fd()),
        clone_sources_count: request
            .clone_sources_count
            .unwrap_or(request.clone_sources.len() as u64),
        clone_sources: request.clone_sources.as_ptr(),
        parent_root: request.parent_root,
        flags: request.flags,
        version: request.version,
        reserved: [0; 28],
    };
    // SAFETY: `args` is a complete btrfs_ioctl_send_args; its clone_sources points at the
    // request's slice, which outlives the call (the kernel copies at most the count it is told,
    // and fails with EFAULT past the slice's end, which only a wrong count can ask).
    unsafe { ioc_send(subvol.as_raw_fd(), &args) }.map(drop)
}

/// The tree id (root id) of subvolume `path`: what a send names a parent or clone source by.
pub fn tree_id(path: &Path) -> Result<u64> {
    Ok(info_args(path)?.treeid)
}

/// `struct btrfs_ioctl_timespec`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Timespec {
    sec: u64,
    nsec: u32,
}

/// `struct btrfs_ioctl_get_subvol_info_args`.
#[repr(C)]
struct SubvolInfoArgs {
    treeid: u64,
    name: [u8; 256],
    parent_id: u64,
    dirid: u64,
    generation: u64,
    flags: u64,
    uuid: [u8; 16],
    parent_uuid: [u8; 16],
    received_uuid: [u8; 16],
    ctransid: u64,
    otransid: u64,
    stransid: u64,
    rtransid: u64,
    ctime: Timespec,
    otime: Timespec,
    stime: Timespec,
    rtime: Timespec,
    reserved: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<SubvolInfoArgs>() == 504);

/// `BTRFS_ROOT_SUBVOL_RDONLY`, in the root item's flags that BTRFS_IOC_GET_SUBVOL_INFO returns.
const ROOT_SUBVOL_RDONLY: u64 = 1;

/// A subvolume's identity: what receive sets on the subvolume it creates, and what it takes
/// from the one that was sent. UUIDs are all zeros where the subvolume has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubvolumeInfo {
    pub readonly: bool,
    pub uuid: [u8; 16],
    /// The UUID of the subvolume this one is a snapshot of.
    pub parent_uuid: [u8; 16],
    /// The UUID of the subvolume this one was received from.
    pub received_uuid: [u8; 16],
    /// The transaction of the subvolume's last change.
    pub ctransid: u64,
    /// For a received subvolume: the sent subvolume's `ctransid`.
    pub stransid: u64,
    /// For a received subvolume: the transaction that received it.
    pub rtransid: u64,
}

/// The identity of subvolume `path` (BTRFS_IOC_GET_SUBVOL_INFO, kernels from 4.18).
pub fn subvolume_info(path: &Path) -> Result<SubvolumeInfo> {
    let args = info_args(path)?;
    Ok(SubvolumeInfo {
        readonly: args.flags & ROOT_SUBVOL_RDONLY != 0,
        uuid: args.uuid,
        parent_uuid: args.parent_uuid,
        received_uuid: args.received_uuid,
        ctransid: args.ctransid,
        stransid: args.stransid,
        rtransid: args.rtransid,
    })
}

fn info_args(path: &Path) -> Result<Box<SubvolInfoArgs>> {
    let dir = open_dir(path)?;
    // SAFETY: the kernel fills the whole struct; all-zero bytes are a valid value of it.
    let mut args: Box<SubvolInfoArgs> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: `args` is a btrfs_ioctl_get_subvol_info_args that outlives the call.
    unsafe { ioc_get_subvol_info(dir.as_raw_fd(), &mut *args) }
        .with_context(|| format!("reading subvolume info of {}", path.display()))?;
    Ok(args)
}

/// Sets or clears subvolume `path`'s read-only flag, leaving its received UUID as it is.
pub fn set_readonly(path: &Path, readonly: bool) -> Result<()> {
    let dir = open_dir(path)?;
    let mut flags = 0u64;
    // SAFETY: BTRFS_IOC_SUBVOL_GETFLAGS writes one u64.
    unsafe { ioc_subvol_getflags(dir.as_raw_fd(), &mut flags) }
        .with_context(|| format!("reading the flags of subvolume {}", path.display()))?;
    if readonly {
        flags |= BTRFS_SUBVOL_RDONLY;
    } else {
        flags &= !BTRFS_SUBVOL_RDONLY;
    }
    // SAFETY: BTRFS_IOC_SUBVOL_SETFLAGS reads one u64.
    unsafe { ioc_subvol_setflags(dir.as_raw_fd(), &flags) }
        .with_context(|| format!("setting the flags of subvolume {}", path.display()))?;
    Ok(())
}

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
