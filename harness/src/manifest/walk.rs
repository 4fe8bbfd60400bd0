//! Walking a tree into a manifest: metadata serially, file data hashed by one worker per core.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::{lseek, Whence};
use sha2::{Digest, Sha256};

use super::text::escape;
use super::{Entry, Manifest};
use crate::xattr;

const READ_CHUNK: usize = 1 << 20;

struct Found {
    key: String,
    path: PathBuf,
    meta: Metadata,
}

pub(super) fn manifest_of(root: &Path) -> Result<Manifest> {
    let found = walk(root)?;
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for f in &found {
        entries.insert(f.key.clone(), metadata_entry(&f.path, &f.meta)?);
    }
    mark_hardlinks(&found, &mut entries);
    let files: Vec<&Found> = found
        .iter()
        .filter(|f| f.meta.file_type().is_file())
        .collect();
    for (key, (sha, layout)) in hash_in_parallel(&files)? {
        let fields = &mut entries
            .get_mut(&key)
            .expect("hashed file has an entry")
            .fields;
        fields.insert("sha256".into(), sha);
        fields.insert("layout".into(), layout);
    }
    Ok(Manifest { entries })
}

/// Every path below `root`, depth first, without crossing onto another device.
fn walk(root: &Path) -> Result<Vec<Found>> {
    let root_meta = std::fs::symlink_metadata(root)?;
    let device = root_meta.dev();
    let mut found = Vec::new();
    let mut stack = vec![(".".to_string(), root.to_path_buf(), root_meta)];
    while let Some((key, path, meta)) = stack.pop() {
        if meta.file_type().is_dir() && meta.dev() == device {
            for name in read_dir_names(&path)? {
                let child = path.join(OsStr::from_bytes(&name));
                let child_meta = std::fs::symlink_metadata(&child)
                    .with_context(|| format!("lstat {}", child.display()))?;
                let child_key = if key == "." {
                    escape(&name)
                } else {
                    format!("{key}/{}", escape(&name))
                };
                stack.push((child_key, child, child_meta));
            }
        }
        found.push(Found { key, path, meta });
    }
    Ok(found)
}

/// Names in a directory, read without updating its atime where we may.
fn read_dir_names(path: &Path) -> Result<Vec<Vec<u8>>> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut dir = match Dir::open(path, flags | OFlag::O_NOATIME, Mode::empty()) {
        Err(Errno::EPERM) => Dir::open(path, flags, Mode::empty()),
        other => other,
    }
    .with_context(|| format!("opening directory {}", path.display()))?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry.with_context(|| format!("reading directory {}", path.display()))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}

fn metadata_entry(path: &Path, meta: &Metadata) -> Result<Entry> {
    let kind = meta.file_type();
    let type_name = if kind.is_file() {
        "file"
    } else if kind.is_dir() {
        "dir"
    } else if kind.is_symlink() {
        "symlink"
    } else if kind.is_fifo() {
        "fifo"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_char_device() {
        "chr"
    } else {
        "blk"
    };
    let mut fields = BTreeMap::new();
    let mut put = |k: &str, v: String| fields.insert(k.to_string(), v);
    put("type", type_name.into());
    put("mode", format!("{:04o}", meta.mode() & 0o7777));
    put("uid", meta.uid().to_string());
    put("gid", meta.gid().to_string());
    if kind.is_file() || kind.is_dir() || kind.is_symlink() {
        put("size", meta.size().to_string());
    }
    if kind.is_char_device() || kind.is_block_device() {
        let rdev = meta.rdev();
        put(
            "rdev",
            format!("{}:{}", libc::major(rdev), libc::minor(rdev)),
        );
    }
    if kind.is_symlink() {
        let target =
            std::fs::read_link(path).with_context(|| format!("readlink {}", path.display()))?;
        put("target", escape(target.as_os_str().as_bytes()));
    }
    put(
        "mtime",
        format!("{}.{:09}", meta.mtime(), meta.mtime_nsec()),
    );
    put(
        "atime",
        format!("{}.{:09}", meta.atime(), meta.atime_nsec()),
    );
    put(
        "ctime",
        format!("{}.{:09}", meta.ctime(), meta.ctime_nsec()),
    );
    let names =
        xattr::list(path).with_context(|| format!("listing xattrs of {}", path.display()))?;
    for name in names {
        let value = xattr::get(path, &name).with_context(|| {
            format!(
                "reading xattr {} of {}",
                String::from_utf8_lossy(&name),
                path.display()
            )
        })?;
        put(&format!("xattr.{}", escape(&name)), escape(&value));
    }
    Ok(Entry { fields })
}

/// Gives every path after the first of a group of hard links a `hardlink` field naming the
/// first, so that the comparison speaks of link structure, never of inode numbers.
fn mark_hardlinks(found: &[Found], entries: &mut BTreeMap<String, Entry>) {
    let mut groups: HashMap<(u64, u64), Vec<&str>> = HashMap::new();
    for f in found
        .iter()
        .filter(|f| !f.meta.is_dir() && f.meta.nlink() > 1)
    {
        groups
            .entry((f.meta.dev(), f.meta.ino()))
            .or_default()
            .push(&f.key);
    }
    for mut keys in groups.into_values().filter(|keys| keys.len() > 1) {
        keys.sort_unstable();
        let first = keys[0].to_string();
        for key in &keys[1..] {
            entries
                .get_mut(*key)
                .expect("linked path has an entry")
                .fields
                .insert("hardlink".into(), first.clone());
        }
    }
}

/// A file's entry key with its sha256 and data layout.
type Hashed = (String, (String, String));

/// sha256 and layout of each file, keyed like the entries.
fn hash_in_parallel(files: &[&Found]) -> Result<Vec<Hashed>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let per_worker: Vec<Result<Vec<Hashed>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut buffer = vec![0u8; READ_CHUNK];
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(i) else {
                            return Ok(done);
                        };
                        let summary = hash_file(&file.path, &mut buffer)
                            .with_context(|| format!("hashing {}", file.path.display()))?;
                        done.push((file.key.clone(), summary));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("hash worker panicked"))
            .collect()
    });
    let mut all = Vec::with_capacity(files.len());
    for part in per_worker {
        all.extend(part?);
    }
    Ok(all)
}

fn open_noatime(path: &Path) -> io::Result<File> {
    let open = |flags| OpenOptions::new().read(true).custom_flags(flags).open(path);
    match open(libc::O_NOATIME | libc::O_CLOEXEC) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(libc::O_CLOEXEC),
        other => other,
    }
}

fn hash_file(path: &Path, buffer: &mut [u8]) -> Result<(String, String)> {
    let mut file = open_noatime(path)?;
    let mut hasher = Sha256::new();
    loop {
        match file.read(buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let size = file.metadata()?.len();
    Ok((
        format!("{:x}", hasher.finalize()),
        data_layout(&file, size)?,
    ))
}

/// Data ranges as `offset+length,…`, from SEEK_DATA/SEEK_HOLE; `none` for a file of holes only.
fn data_layout(file: &File, size: u64) -> Result<String> {
    let mut ranges = Vec::new();
    let mut pos: i64 = 0;
    while (pos as u64) < size {
        let data = match lseek(file.as_fd(), pos, Whence::SeekData) {
            Ok(offset) => offset,
            Err(Errno::ENXIO) => break,
            Err(e) => return Err(e).context("SEEK_DATA"),
        };
        let hole = lseek(file.as_fd(), data, Whence::SeekHole).context("SEEK_HOLE")?;
        ranges.push(format!("{data}+{}", hole - data));
        pos = hole;
    }
    Ok(if ranges.is_empty() {
        "none".into()
    } else {
        ranges.join(",")
    })
}

/// The inode number of every path below `root`, keyed as the manifest's entries are.
pub(crate) fn inodes_of(root: &Path) -> Result<HashMap<String, u64>> {
    Ok(walk(root)?
        .into_iter()
        .map(|f| (f.key, f.meta.ino()))
        .collect())
}
