//! Tree manifests: every attribute send/receive must carry, per path, with a sha256 of the data.
//!
//! A manifest maps each path below a root (the root itself is `.`) to its fields. Two manifests
//! are compared field by field, so a mismatch names the path and the field. The text form, one
//! line per path, is what results directories keep and what `sendtest manifest` prints.

mod compare;
pub mod compressed;
pub mod holes;
pub mod identity;
pub mod shared;
pub mod space;
mod text;
mod walk;
pub(crate) use walk::inodes_of;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

pub use compare::{compare, Difference, Ignore};

/// The fields a manifest records. `xattr` stands for the family `xattr.<name>`, one per attribute.
pub const FIELDS: &[(&str, &str)] = &[
    ("type", "file, dir, symlink, fifo, socket, chr or blk"),
    (
        "mode",
        "permission bits, octal, with setuid, setgid and sticky",
    ),
    ("uid", "owner"),
    ("gid", "group"),
    ("size", "st_size"),
    ("rdev", "major:minor of a device node"),
    ("target", "where a symlink points"),
    (
        "hardlink",
        "the first path (in sorted order) that shares this inode, on every later one",
    ),
    ("mtime", "modification time, seconds.nanoseconds"),
    ("atime", "access time, seconds.nanoseconds"),
    (
        "ctime",
        "change time; never carried by receive, so cases ignore it",
    ),
    (
        "xattr",
        "xattr.<name>=<value>, one field per extended attribute",
    ),
    ("sha256", "sha256 of the file data"),
    (
        "layout",
        "data ranges offset+length from SEEK_DATA/SEEK_HOLE; the rest is holes",
    ),
];

/// The fields of one path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub fields: BTreeMap<String, String>,
}

impl Entry {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }
}

/// Entries by path, relative to the root (escaped as in the text form; the root is `.`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: BTreeMap<String, Entry>,
}

impl Manifest {
    /// The regular files, by path, with their sizes.
    pub fn files(&self) -> impl Iterator<Item = (&String, u64)> {
        self.entries.iter().filter_map(|(path, entry)| {
            let size = entry.get("size")?.parse().ok()?;
            (entry.get("type") == Some("file")).then_some((path, size))
        })
    }

    /// Walks the tree at `root` and hashes its files on all cores. Does not cross into other
    /// filesystems or subvolumes; their mount point is recorded like a directory. Files and
    /// directories are read with O_NOATIME, but reading a symlink updates its atime on a writable
    /// tree (relatime), so a second walk of a writable tree can see a newer symlink atime. The
    /// read-only snapshots that send sends, and received subvolumes, do not change.
    pub fn of_tree(root: &Path) -> Result<Manifest> {
        walk::manifest_of(root)
            .with_context(|| format!("taking the manifest of {}", root.display()))
    }

    /// A tree's manifest if `path` is a directory, otherwise a saved manifest to parse.
    pub fn load(path: &Path) -> Result<Manifest> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("{}: no such tree or manifest file", path.display()))?;
        if meta.is_dir() {
            Manifest::of_tree(path)
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            text::parse(&text)
                .with_context(|| format!("{} is not a sendtest manifest", path.display()))
        }
    }

    /// The text form: a header line, then one line per path.
    pub fn to_text(&self) -> String {
        text::render(self)
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Manifest> {
        text::parse(text)
    }
}

/// Escapes bytes for the text form: everything but printable ASCII, `%` and `=` becomes `%XX`.
pub fn escape(bytes: &[u8]) -> String {
    text::escape(bytes)
}
