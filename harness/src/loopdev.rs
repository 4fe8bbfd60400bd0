//! Loop devices the harness attaches itself, through `/dev/loop-control`, and detaches on drop.
//!
//! A device is bound to its image with one `LOOP_CONFIGURE` call, so no other process can slip in
//! between "find a free device" and "bind it"; when one takes the free device first, the call
//! fails with EBUSY and we ask for another. The device's backing-file name is the image path, so
//! `losetup -a` shows which image (and so which harness run) a device belongs to.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;

const LOOP_CONTROL: &str = "/dev/loop-control";
/// Detach when the last opener closes: a harness that dies leaves no bound device behind once
/// its mounts are gone.
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;
/// Tries at binding a free device before giving up; each failure means another process won a race.
const ATTACH_TRIES: usize = 32;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

nix::ioctl_none_bad!(loop_ctl_get_free, 0x4C82);
nix::ioctl_write_ptr_bad!(loop_configure, 0x4C0A, LoopConfig);
nix::ioctl_none_bad!(loop_clr_fd, 0x4C01);

/// A loop device bound to an image file of ours. Detached on drop.
#[derive(Debug)]
pub struct LoopDevice {
    device: File,
    path: PathBuf,
}

impl LoopDevice {
    /// Binds a free loop device to `image`.
    pub fn attach(image: &Path) -> Result<LoopDevice> {
        let control = OpenOptions::new().read(true).write(true).open(LOOP_CONTROL).with_context(|| {
            format!("no usable {LOOP_CONTROL}: load the loop module (`modprobe loop`) and run as root")
        })?;
        let backing = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(image)
            .with_context(|| format!("opening image {}", image.display()))?;
        let config = loop_config(&backing, image);

        for _ in 0..ATTACH_TRIES {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
            let number = unsafe { loop_ctl_get_free(control.as_raw_fd()) }
                .map_err(|e| anyhow::anyhow!("no free loop device ({e}): detach unused ones with `losetup -D` or raise max_loop"))?;
            let path = PathBuf::from(format!("/dev/loop{number}"));
            let device = match OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)
            {
                Ok(device) => device,
                // The node may not exist yet on a /dev without devtmpfs, or was just removed.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
            };
            // SAFETY: `config` is a fully initialised loop_config that outlives the call.
            match unsafe { loop_configure(device.as_raw_fd(), &config) } {
                Ok(_) => return Ok(LoopDevice { device, path }),
                Err(Errno::EBUSY) => continue,
                Err(e) => bail!("binding {} to {}: {e}", path.display(), image.display()),
            }
        }
        bail!("no free loop device after {ATTACH_TRIES} tries: other processes keep taking them")
    }

    /// The device node, such as `/dev/loop3`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        // SAFETY: LOOP_CLR_FD takes no argument; the fd is our open loop device. With another
        // opener still present the kernel only marks it for autoclear, which then happens when
        // the last one closes.
        if let Err(e) = unsafe { loop_clr_fd(self.device.as_raw_fd()) } {
            if e != Errno::ENXIO {
                eprintln!("sendtest: detaching {}: {e}", self.path.display());
            }
        }
    }
}

/// Detaches the loop device at `path` (one a dead harness left bound).
pub fn detach(path: &Path) -> Result<()> {
    let device = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: LOOP_CLR_FD takes no argument; the fd is an open loop device.
    match unsafe { loop_clr_fd(device.as_raw_fd()) } {
        Ok(_) | Err(Errno::ENXIO) => Ok(()),
        Err(e) => bail!("detaching {}: {e}", path.display()),
    }
}

/// Loop devices and the files they are bound to, from sysfs.
pub fn bound() -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let backing = std::fs::read_to_string(entry.path().join("loop/backing_file")).ok()?;
            Some((
                Path::new("/dev").join(entry.file_name()),
                PathBuf::from(backing.trim_end_matches('\n')),
            ))
        })
        .collect()
}

fn loop_config(backing: &File, image: &Path) -> LoopConfig {
    let mut file_name = [0u8; LO_NAME_SIZE];
    let name = image.as_os_str().as_encoded_bytes();
    let len = name.len().min(LO_NAME_SIZE - 1);
    file_name[..len].copy_from_slice(&name[..len]);
    LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size: 0,
        info: LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: LO_FLAGS_AUTOCLEAR,
            lo_file_name: file_name,
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        },
        reserved: [0; 8],
    }
}
