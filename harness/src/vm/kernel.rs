//! The kernel a guest boots: a bzImage, its release, and where its modules are (if it has any).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

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
    fn other_files_are_not_kernels() {
        assert_eq!(release_of(b"#!/bin/sh\n"), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinuz");
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        let err = Kernel::from_image(&path).unwrap_err().to_string();
        assert!(err.contains("is not a bzImage"), "{err}");
    }
}
