//! A file's extent items as btrfs keeps them (BTRFS_IOC_TREE_SEARCH on its subvolume's tree):
//! where each starts, whether it is inline, regular or preallocated, compressed or not, and how
//! much of its on-disk extent it references. `fiemap` shows compression too, but not how large
//! the compressed data is, which decides whether send may send an extent encoded.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, Result};

const BTRFS_IOCTL_MAGIC: u8 = 0x94;
const EXTENT_DATA_KEY: u32 = 108;
/// The fixed part of `struct btrfs_file_extent_item`, up to where inline data begins.
const INLINE_DATA_START: usize = 21;
const REGULAR_ITEM_SIZE: usize = 53;

/// `struct btrfs_ioctl_search_key`.
#[repr(C)]
#[derive(Default)]
struct SearchKey {
    tree_id: u64,
    min_objectid: u64,
    max_objectid: u64,
    min_offset: u64,
    max_offset: u64,
    min_transid: u64,
    max_transid: u64,
    min_type: u32,
    max_type: u32,
    nr_items: u32,
    unused: u32,
    unused1: [u64; 4],
}

const SEARCH_BUF_SIZE: usize = 4096 - std::mem::size_of::<SearchKey>();

/// `struct btrfs_ioctl_search_args`.
#[repr(C)]
struct SearchArgs {
    key: SearchKey,
    buf: [u8; SEARCH_BUF_SIZE],
}

const _: () = assert!(std::mem::size_of::<SearchKey>() == 104);
const _: () = assert!(std::mem::size_of::<SearchArgs>() == 4096);
/// `struct btrfs_ioctl_search_header`.
const HEADER_SIZE: usize = 32;

nix::ioctl_readwrite!(ioc_tree_search, BTRFS_IOCTL_MAGIC, 17, SearchArgs);

/// What an extent item of a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Data in the item itself, `len` bytes of it as stored (compressed or not).
    Inline { len: u64 },
    /// A reference to `num_bytes` of an on-disk extent of `disk_num_bytes`, from `offset` into
    /// its decompressed data. `disk_bytenr` 0 is a hole.
    Regular {
        disk_bytenr: u64,
        disk_num_bytes: u64,
        offset: u64,
        num_bytes: u64,
    },
    /// Preallocated space (reads as zeros).
    Prealloc { num_bytes: u64 },
}

/// One extent item: the file offset it starts at, its kind, and its compression (0 none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub file_offset: u64,
    pub ram_bytes: u64,
    pub compression: u8,
    pub kind: Kind,
}

impl Extent {
    /// The file range `[start, end)` the item covers (an inline one from 0 to its length).
    pub fn range(&self) -> (u64, u64) {
        let len = match self.kind {
            Kind::Inline { .. } => self.ram_bytes,
            Kind::Regular { num_bytes, .. } | Kind::Prealloc { num_bytes } => num_bytes,
        };
        (self.file_offset, self.file_offset + len)
    }

    pub fn is_compressed(&self) -> bool {
        self.compression != 0
    }
}

/// The extent items of the regular file at `path`, in file order. Needs CAP_SYS_ADMIN.
pub fn of_file(path: &Path) -> Result<Vec<Extent>> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOATIME)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let ino = file.metadata()?.ino();
    let mut extents = Vec::new();
    // 0: the tree of the subvolume the file is in.
    search(&file, path, 0, ino, EXTENT_DATA_KEY, &mut |offset, item| {
        extents.push(
            parse(offset, item).with_context(|| format!("an extent item of {}", path.display()))?,
        );
        Ok(())
    })?;
    Ok(extents)
}

/// How many references the data extent at `disk_bytenr` has (its extent item's `refs`), on
/// the filesystem that holds `path`. Needs CAP_SYS_ADMIN.
pub fn references(path: &Path, disk_bytenr: u64) -> Result<u64> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut refs = None;
    search(
        &file,
        path,
        EXTENT_TREE,
        disk_bytenr,
        EXTENT_ITEM_KEY,
        &mut |_, item| {
            anyhow::ensure!(item.len() >= 8, "an extent item of {} bytes", item.len());
            refs.get_or_insert(le64(item, 0));
            Ok(())
        },
    )?;
    refs.with_context(|| format!("no extent item at {disk_bytenr}"))
}

const EXTENT_TREE: u64 = 2;
const EXTENT_ITEM_KEY: u32 = 168;

/// Each item of type `kind` and object id `objectid` in tree `tree_id` (0: the subvolume of
/// `file`), by key offset: `found(offset, item)`.
fn search(
    file: &File,
    path: &Path,
    tree_id: u64,
    objectid: u64,
    kind: u32,
    found: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut from = 0u64;
    loop {
        let mut args = SearchArgs {
            key: SearchKey {
                tree_id,
                min_objectid: objectid,
                max_objectid: objectid,
                min_offset: from,
                max_offset: u64::MAX,
                min_transid: 0,
                max_transid: u64::MAX,
                min_type: kind,
                max_type: kind,
                nr_items: 4096,
                ..SearchKey::default()
            },
            buf: [0; SEARCH_BUF_SIZE],
        };
        // SAFETY: `args` is a properly sized and initialized btrfs_ioctl_search_args that
        // outlives the call; the kernel writes only within it.
        unsafe { ioc_tree_search(file.as_raw_fd(), &mut args) }
            .with_context(|| format!("BTRFS_IOC_TREE_SEARCH on {}", path.display()))?;
        let items = args.key.nr_items as usize;
        if items == 0 {
            return Ok(());
        }
        let mut at = 0usize;
        for _ in 0..items {
            let header = args
                .buf
                .get(at..at + HEADER_SIZE)
                .context("a tree search result past its buffer")?;
            let offset = le64(header, 16);
            let item_kind = u32::from_le_bytes(header[24..28].try_into().unwrap());
            let len = u32::from_le_bytes(header[28..32].try_into().unwrap()) as usize;
            let item = args
                .buf
                .get(at + HEADER_SIZE..at + HEADER_SIZE + len)
                .context("a tree search item past its buffer")?;
            at += HEADER_SIZE + len;
            if item_kind == kind {
                found(offset, item)?;
            }
            from = offset.saturating_add(1);
        }
        if from == u64::MAX {
            return Ok(());
        }
    }
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// A `btrfs_file_extent_item` at file offset `file_offset`.
fn parse(file_offset: u64, item: &[u8]) -> Result<Extent> {
    anyhow::ensure!(item.len() >= INLINE_DATA_START, "{} bytes", item.len());
    let ram_bytes = le64(item, 8);
    let compression = item[16];
    let kind = match item[20] {
        0 => Kind::Inline {
            len: (item.len() - INLINE_DATA_START) as u64,
        },
        kind @ (1 | 2) => {
            anyhow::ensure!(item.len() >= REGULAR_ITEM_SIZE, "{} bytes", item.len());
            let num_bytes = le64(item, 45);
            if kind == 2 {
                Kind::Prealloc { num_bytes }
            } else {
                Kind::Regular {
                    disk_bytenr: le64(item, 21),
                    disk_num_bytes: le64(item, 29),
                    offset: le64(item, 37),
                    num_bytes,
                }
            }
        }
        other => anyhow::bail!("unknown extent type {other}"),
    };
    Ok(Extent {
        file_offset,
        ram_bytes,
        compression,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: u8, compression: u8, fields: &[u64]) -> Vec<u8> {
        let mut item = vec![0u8; INLINE_DATA_START];
        item[8..16].copy_from_slice(&131072u64.to_le_bytes());
        item[16] = compression;
        item[20] = kind;
        for field in fields {
            item.extend_from_slice(&field.to_le_bytes());
        }
        item
    }

    #[test]
    fn items_are_read_by_their_kind() {
        let regular = parse(8192, &item(1, 3, &[1 << 20, 4096, 0, 131072])).unwrap();
        assert_eq!(
            regular.kind,
            Kind::Regular {
                disk_bytenr: 1 << 20,
                disk_num_bytes: 4096,
                offset: 0,
                num_bytes: 131072
            }
        );
        assert!(regular.is_compressed());
        assert_eq!(regular.range(), (8192, 8192 + 131072));
        let prealloc = parse(0, &item(2, 0, &[1 << 20, 4096, 0, 4096])).unwrap();
        assert_eq!(prealloc.kind, Kind::Prealloc { num_bytes: 4096 });
        let mut inline = item(0, 0, &[]);
        inline.extend_from_slice(b"data");
        let inline = parse(0, &inline).unwrap();
        assert_eq!(inline.kind, Kind::Inline { len: 4 });
        assert!(!inline.is_compressed());
        assert!(parse(0, &item(7, 0, &[0; 4])).is_err());
        assert!(parse(0, &[0; 10]).is_err());
    }
}
