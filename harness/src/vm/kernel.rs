//! The kernel a guest boots: a bzImage, its release, and where its modules are (if it has any).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::exec::{self, CommandLog};
use crate::preflight::find_in_path;

/// A bootable kernel image.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub image: PathBuf,
    /// `uname -r` of the kernel, read from the image's header.
    pub release: String,
    /// `/lib/modules/<release>`, when it exists.
    pub modules: Option<PathBuf>,
}

/// Offset of the "HdrS" magic of the x86 boot protocol, and of the pointer to the version string.
const HDRS_OFFSET: usize = 0x202;
const VERSION_POINTER_OFFSET: usize = 0x20e;

impl Kernel {
    /// The kernel at `path`, which must be an x86 bzImage.
    pub fn from_image(path: &Path) -> Result<Kernel> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "cannot read kernel {}: pass --kernel with a bzImage",
                path.display()
            )
        })?;
        let release = release_of(&bytes).with_context(|| {
            format!(
                "{} is not a bzImage (pass the arch/x86/boot/bzImage of a kernel build)",
                path.display()
            )
        })?;
        let modules = Path::new("/lib/modules").join(&release);
        let modules = modules.join("modules.dep").is_file().then_some(modules);
        Ok(Kernel {
            image: path.to_path_buf(),
            release,
            modules,
        })
    }

    /// The distribution's kernel: the newest `/boot/vmlinuz-*` that has its modules installed.
    pub fn packaged() -> Result<Kernel> {
        let mut candidates: Vec<PathBuf> = std::fs::read_dir("/boot")
            .map(|dir| dir.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        candidates.retain(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        });
        candidates.sort();
        for image in candidates.iter().rev() {
            if let Ok(kernel) = Kernel::from_image(image) {
                if kernel.modules.is_some() {
                    return Ok(kernel);
                }
            }
        }
        bail!("no kernel with modules in /boot: install one (`apt-get install linux-image-amd64`) or pass --kernel")
    }
}

/// Start of an xz stream, as in a bzImage compressed with CONFIG_KERNEL_XZ.
const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";

impl Kernel {
    /// What qemu should boot: the image itself, or, for an xz-compressed bzImage whose kernel
    /// has a PVH entry point (Debian's has), its uncompressed ELF. qemu starts that directly, and
    /// the guest is spared decompressing it: for Debian's kernel under TCG, boot to init took
    /// 1.8–2.0 s instead of 4.9–5.0 s. The ELF is extracted once and cached.
    pub fn bootable(&self, log: &CommandLog) -> PathBuf {
        match uncompressed_with_pvh(&self.image, log) {
            Ok(Some(elf)) => elf,
            Ok(None) => self.image.clone(),
            Err(e) => {
                log.note(&format!("booting {} as it is: {e:#}", self.image.display()));
                self.image.clone()
            }
        }
    }
}

/// The cached uncompressed kernel of `image`, made if needed; `None` when the image is not
/// xz-compressed or its kernel has no PVH entry point.
fn uncompressed_with_pvh(image: &Path, log: &CommandLog) -> Result<Option<PathBuf>> {
    let meta = std::fs::metadata(image)?;
    let key = crate::build::short_hash(&[
        image.as_os_str().as_encoded_bytes(),
        &meta.len().to_le_bytes(),
        &meta.mtime().to_le_bytes(),
        &meta.mtime_nsec().to_le_bytes(),
    ]);
    let cache = crate::cache::dir()?;
    let cached = cache.join(format!("vmlinux-{key}"));
    let not_pvh = cache.join(format!("vmlinux-{key}.not-pvh"));
    if cached.is_file() {
        return Ok(Some(cached));
    }
    if not_pvh.is_file() || find_in_path("xz").is_none() {
        return Ok(None);
    }
    let bytes = std::fs::read(image)?;
    let Some(start) = bytes.windows(XZ_MAGIC.len()).position(|w| w == XZ_MAGIC) else {
        std::fs::write(&not_pvh, "not xz-compressed\n")?;
        return Ok(None);
    };
    let work = tempfile::tempdir_in(&cache)?;
    let compressed = work.path().join("vmlinux.xz");
    std::fs::write(&compressed, &bytes[start..])?;
    let sh = Shell::new()?;
    // --single-stream: the payload is followed by the rest of the bzImage.
    exec::run(
        cmd!(sh, "xz --decompress --single-stream {compressed}"),
        log,
    )?;
    let elf = work.path().join("vmlinux");
    let data = std::fs::read(&elf)?;
    if !data.starts_with(b"\x7fELF") || !has_pvh_note(&data) {
        std::fs::write(&not_pvh, "no PVH entry point\n")?;
        return Ok(None);
    }
    std::fs::rename(&elf, &cached)?;
    log.note(&format!(
        "extracted {} for PVH boot: {}",
        image.display(),
        cached.display()
    ));
    crate::cache::prune("vmlinux-", 8);
    Ok(Some(cached))
}

/// Whether an ELF kernel carries XEN_ELFNOTE_PHYS32_ENTRY (type 18, name "Xen"), the entry
/// point qemu uses to boot it directly.
fn has_pvh_note(elf: &[u8]) -> bool {
    elf.windows(16).any(|w| {
        w[0..4] == 4u32.to_le_bytes() && w[8..12] == 18u32.to_le_bytes() && &w[12..16] == b"Xen\0"
    })
}

/// The release (first word of the version string) of a bzImage.
fn release_of(image: &[u8]) -> Option<String> {
    if image.get(HDRS_OFFSET..HDRS_OFFSET + 4)? != b"HdrS" {
        return None;
    }
    let pointer = u16::from_le_bytes([
        *image.get(VERSION_POINTER_OFFSET)?,
        *image.get(VERSION_POINTER_OFFSET + 1)?,
    ]);
    let start = usize::from(pointer) + 0x200;
    let text = image.get(start..start + 256)?;
    let end = text.iter().position(|b| *b == 0 || *b == b' ')?;
    let release = std::str::from_utf8(&text[..end]).ok()?;
    (!release.is_empty()).then(|| release.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_release_from_a_boot_header() {
        let mut image = vec![0u8; 0x1000];
        image[HDRS_OFFSET..HDRS_OFFSET + 4].copy_from_slice(b"HdrS");
        image[VERSION_POINTER_OFFSET..VERSION_POINTER_OFFSET + 2]
            .copy_from_slice(&0x300u16.to_le_bytes());
        let version = b"6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP";
        image[0x500..0x500 + version.len()].copy_from_slice(version);
        assert_eq!(release_of(&image).as_deref(), Some("6.1.0-56-amd64"));
    }

    #[test]
    fn finds_the_pvh_note() {
        let mut note = Vec::new();
        note.extend(4u32.to_le_bytes());
        note.extend(8u32.to_le_bytes());
        note.extend(18u32.to_le_bytes());
        note.extend(b"Xen\0");
        let elf = [b"\x7fELF".as_slice(), &[0; 20], &note, &[0; 8]].concat();
        assert!(has_pvh_note(&elf));
        note[8] = 17;
        assert!(!has_pvh_note(&[b"\x7fELF".as_slice(), &note].concat()));
    }

    #[test]
    fn other_files_are_not_kernels() {
        assert_eq!(release_of(b"#!/bin/sh\n"), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinuz");
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        let err = Kernel::from_image(&path).unwrap_err().to_string();
        assert!(err.contains("is not a bzImage"), "{err}");
    }
}
