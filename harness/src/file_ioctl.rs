//! File ioctls of the VFS that btrfs implements: reflink (FICLONERANGE), dedupe
//! (FIDEDUPERANGE), and the inode flags of `chattr` (FS_IOC_GETFLAGS/SETFLAGS).

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens an existing file, never blocking on a FIFO (which has no reader here).
pub fn open(path: &Path, write: bool) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[repr(C)]
struct FileCloneRange {
    src_fd: i64,
    src_offset: u64,
    src_length: u64,
    dest_offset: u64,
}

nix::ioctl_write_ptr!(ficlonerange, 0x94, 13, FileCloneRange);

/// FICLONERANGE: `len` bytes of `src` at `src_offset` shared into `dst` at `dst_offset`.
pub fn clone_range(
    src: &Path,
    src_offset: u64,
    dst: &Path,
    dst_offset: u64,
    len: u64,
) -> io::Result<()> {
    let source = open(src, false)?;
    let dest = open(dst, true)?;
    let range = FileCloneRange {
        src_fd: i64::from(source.as_raw_fd()),
        src_offset,
        src_length: len,
        dest_offset: dst_offset,
    };
    // SAFETY: `range` is a valid file_clone_range for the call's duration; both fds are open.
    unsafe { ficlonerange(dest.as_raw_fd(), &range) }?;
    Ok(())
}

#[repr(C)]
struct FileDedupeRange {
    src_offset: u64,
    src_length: u64,
    dest_count: u16,
    reserved1: u16,
    reserved2: u32,
}

#[repr(C)]
struct FileDedupeRangeInfo {
    dest_fd: i64,
    dest_offset: u64,
    bytes_deduped: u64,
    status: i32,
    reserved: u32,
}

/// `file_dedupe_range` with its one destination.
#[repr(C)]
struct DedupeOne {
    range: FileDedupeRange,
    info: FileDedupeRangeInfo,
}

nix::ioctl_readwrite!(fideduperange, 0x94, 54, FileDedupeRange);
nix::ioctl_read!(fs_ioc_getflags, b'f', 1, libc::c_long);
nix::ioctl_write_ptr!(fs_ioc_setflags, b'f', 2, libc::c_long);

/// FIDEDUPERANGE: the same, where the bytes are already equal.
pub fn dedupe_range(
    src: &Path,
    src_offset: u64,
    dst: &Path,
    dst_offset: u64,
    len: u64,
) -> io::Result<()> {
    let source = open(src, false)?;
    let dest = open(dst, true)?;
    let mut request = DedupeOne {
        range: FileDedupeRange {
            src_offset,
            src_length: len,
            dest_count: 1,
            reserved1: 0,
            reserved2: 0,
        },
        info: FileDedupeRangeInfo {
            dest_fd: i64::from(dest.as_raw_fd()),
            dest_offset: dst_offset,
            bytes_deduped: 0,
            status: 0,
            reserved: 0,
        },
    };
    // SAFETY: `request` is a file_dedupe_range followed by its one file_dedupe_range_info, as
    // the kernel reads and writes it; both fds are open for the call.
    unsafe { fideduperange(source.as_raw_fd(), &mut request.range) }?;
    if request.info.status < 0 {
        return Err(io::Error::from_raw_os_error(-request.info.status));
    }
    Ok(())
}

/// Sets (`on`) or clears one of the `chattr` flags `C`, `A` and `d` of `path`.
pub fn chattr(path: &Path, flag: char, on: bool) -> io::Result<()> {
    let bit: libc::c_long = match flag {
        'C' => 0x0080_0000,
        'A' => 0x0000_0080,
        'd' => 0x0000_0040,
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    // Only regular files and directories take flags; opening anything else could block.
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_file() && !meta.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::ENOTTY));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let mut flags: libc::c_long = 0;
    // SAFETY: the kernel writes an int into `flags`, which is larger; the fd is open.
    unsafe { fs_ioc_getflags(file.as_raw_fd(), &mut flags) }?;
    let flags = if on { flags | bit } else { flags & !bit };
    // SAFETY: the kernel reads an int from `flags`; the fd is open.
    unsafe { fs_ioc_setflags(file.as_raw_fd(), &flags) }?;
    Ok(())
}
