//! The newc cpio format: the kernel unpacks it as an initramfs, and a guest writes its results
//! back in it, raw on a disk of their own, where kernel messages cannot mix in.

use std::io::{self, Write};

use anyhow::{bail, Context, Result};

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;

const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Writes a newc archive entry by entry. Paths are relative, without a leading `/`.
pub struct Writer<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Writer<W> {
        Writer {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | mode, b"")
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | mode, data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, target.as_bytes())
    }

    /// A character device node, such as `dev/console` (5, 1), which the kernel opens for init
    /// before any devtmpfs is mounted.
    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry_with_rdev(path, S_IFCHR | mode, b"", (major, minor))
    }

    /// Writes the trailer and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry(TRAILER, 0, b"")?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.entry_with_rdev(path, mode, data, (0, 0))
    }

    fn entry_with_rdev(
        &mut self,
        path: &str,
        mode: u32,
        data: &[u8],
        (rdev_major, rdev_minor): (u32, u32),
    ) -> io::Result<()> {
        let ino = if path == TRAILER { 0 } else { self.next_ino };
        self.next_ino += 1;
        let name_len = path.len() + 1;
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{path}: over 4 GiB"))
        })?;
        // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
        // namesize, check.
        let fields = [
            ino,
            mode,
            0,
            0,
            1,
            0,
            size,
            0,
            0,
            rdev_major,
            rdev_minor,
            name_len as u32,
            0,
        ];
        let mut header = Vec::with_capacity(HEADER_LEN + name_len + 3);
        header.extend_from_slice(MAGIC);
        for field in fields {
            header.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        header.extend_from_slice(path.as_bytes());
        header.push(0);
        self.write_padded(&header)?;
        self.write_padded(data)
    }

    fn write_padded(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        let pad = (4 - self.written % 4) % 4;
        self.out.write_all(&[0u8; 3][..pad as usize])?;
        self.written += pad;
        Ok(())
    }
}

/// A regular file read back from an archive.
#[derive(Debug, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub data: Vec<u8>,
}

/// The regular files of the newc archive at the start of `bytes`, up to its trailer. Anything
/// after the trailer (the rest of a disk) is ignored.
pub fn read_files(bytes: &[u8]) -> Result<Vec<File>> {
    let mut files = Vec::new();
    let mut pos = 0usize;
    loop {
        let header = bytes
            .get(pos..pos + HEADER_LEN)
            .context("archive ends inside a header")?;
        if &header[..6] != MAGIC {
            bail!("no newc header at offset {pos}");
        }
        let field = |i: usize| -> Result<usize> {
            let hex = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i])?;
            Ok(usize::from_str_radix(hex, 16)?)
        };
        let (mode, size, name_len) = (field(1)?, field(6)?, field(11)?);
        let name_start = pos + HEADER_LEN;
        let name = bytes
            .get(name_start..name_start + name_len.saturating_sub(1))
            .context("archive ends inside a name")?;
        let name = String::from_utf8_lossy(name).into_owned();
        let data_start = align4(name_start + name_len);
        if name == TRAILER {
            return Ok(files);
        }
        let data = bytes
            .get(data_start..data_start + size)
            .context("archive ends inside a file")?;
        if mode as u32 & 0o170000 == S_IFREG {
            files.push(File {
                path: name,
                data: data.to_vec(),
            });
        }
        pos = align4(data_start + size);
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_trailing_bytes_are_ignored() {
        let mut writer = Writer::new(Vec::new());
        writer.dir("results", 0o755).unwrap();
        writer.file("results/outcome", 0o644, b"passed\n").unwrap();
        writer.symlink("results/link", "outcome").unwrap();
        writer.file("results/empty", 0o644, b"").unwrap();
        writer.file("odd", 0o600, b"12345").unwrap();
        let mut bytes = writer.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        bytes.extend_from_slice(&[0u8; 4096]);
        let files = read_files(&bytes).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["results/outcome", "results/empty", "odd"]);
        assert_eq!(files[2].data, b"12345");
    }

    #[test]
    fn an_empty_disk_is_not_an_archive() {
        let err = read_files(&[0u8; 512]).unwrap_err().to_string();
        assert!(err.contains("no newc header at offset 0"), "{err}");
    }

    #[test]
    fn the_kernel_format_matches_cpio() {
        // `printf hi > a; echo a | cpio -o -H newc` gives these fields (in upper-case hex, which
        // the kernel reads as well).
        let mut writer = Writer::new(Vec::new());
        writer.file("a", 0o644, b"hi").unwrap();
        let bytes = writer.finish().unwrap();
        let header = std::str::from_utf8(&bytes[..HEADER_LEN]).unwrap();
        assert_eq!(&header[..6], "070701");
        assert_eq!(&header[14..22], "000081a4", "mode: regular file 0644");
        assert_eq!(&header[54..62], "00000002", "file size");
        assert_eq!(&header[94..102], "00000002", "name size with its NUL");
    }
}
