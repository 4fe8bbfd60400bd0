//! Filesystem operations as data: generated from a seed, applied through std and nix (never a
//! shell), and written out as the shell commands (xfs_io, coreutils, setfattr, btrfs) that do
//! the same by hand.
//!
//! Paths come from a small pool, so that operations collide: renames land on existing names,
//! writes hit files that were cloned, directories fill up and are removed. An operation whose
//! precondition does not hold (a rename of a file that is gone) fails with an errno and changes
//! nothing, in Rust as in the shell, so any sublist of a list is still a valid list. That is
//! what lets the shrinker drop operations freely.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::FallocateFlags;

use super::reshape::Reshape;
use super::wide::Wide;
use crate::file_ioctl;

/// Files, directories and names the generator draws from.
const DIRS: &[&str] = &["d0", "d1", "d0/e0", "d1/e1"];
const FILES: &[&str] = &[
    "f0", "f1", "f2", "f3", "d0/f4", "d0/f5", "d1/f6", "d0/e0/f7", "d1/e1/f8",
];
const XATTR_NAMES: &[&str] = &["user.a", "user.b", "user.big"];
const BLOCK: u64 = 4096;
/// The byte the shrinker writes with, when any will do.
const SIMPLE_BYTE: u8 = 0x61;

/// One operation. Offsets and lengths of clones and direct writes are multiples of 4 KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// pwrite of `len` bytes of `byte` at `offset` (creating the file), buffered or O_DIRECT.
    Write {
        file: String,
        offset: u64,
        len: u64,
        byte: u8,
        direct: bool,
    },
    Fallocate {
        file: String,
        offset: u64,
        len: u64,
        mode: Falloc,
    },
    Truncate {
        file: String,
        size: u64,
    },
    /// `len` bytes of `src` at `src_offset` shared with `dst` at `dst_offset`: by a reflink,
    /// or by a dedupe, which shares the extents where the bytes are the same and changes
    /// nothing where they differ.
    Share {
        how: Sharing,
        src: String,
        src_offset: u64,
        dst: String,
        dst_offset: u64,
        len: u64,
    },
    /// rename(2): replaces `to` if it is a file, or an empty directory when `from` is one.
    Rename {
        from: String,
        to: String,
    },
    /// renameat2(RENAME_EXCHANGE): the two names swap, directories included.
    Exchange {
        a: String,
        b: String,
    },
    /// chattr +flag or -flag, for the flags that leave the file usable: C (no copy-on-write,
    /// only while the file is empty), A (no atime), d (no dump).
    Chattr {
        path: String,
        flag: char,
        on: bool,
    },
    Link {
        from: String,
        to: String,
    },
    Unlink {
        path: String,
    },
    Symlink {
        target: String,
        path: String,
    },
    Mkdir {
        path: String,
    },
    Rmdir {
        path: String,
    },
    Mkfifo {
        path: String,
    },
    /// A character device, 1:3 (/dev/null's numbers).
    Mknod {
        path: String,
    },
    /// A Unix socket's file: bound, closed, left behind, mode 644.
    Mksock {
        path: String,
    },
    SetXattr {
        path: String,
        name: String,
        len: usize,
        byte: u8,
    },
    RemoveXattr {
        path: String,
        name: String,
    },
    Chmod {
        path: String,
        mode: u32,
    },
    Chown {
        path: String,
        uid: u32,
        gid: u32,
    },
    /// Sets the modification time (and the access time to the same).
    Utimes {
        path: String,
        seconds: i64,
        nanos: u32,
    },
    /// Take a read-only snapshot here; it is sent incrementally against the one before.
    Snapshot,
    /// One of the wider generator's operations.
    Wide(Wide),
    /// One of the operations that reshape the directory tree.
    Reshape(Reshape),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Reflink,
    Dedupe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Falloc {
    Allocate,
    KeepSize,
    PunchHole,
}

/// `ops` with each path renamed to `p0`, `p1`, … in the order it first appears (a directory
/// and its entries keep their relation: `d0/f4` becomes `p0/p1`), so that two lists that differ
/// only in the names they drew compare equal.
pub fn canonical(ops: &[Op]) -> Vec<Op> {
    let mut names: Vec<String> = Vec::new();
    let mut out = ops.to_vec();
    for op in &mut out {
        for path in op.paths_mut() {
            let renamed: Vec<String> = path
                .split('/')
                .map(|part| {
                    let index = names.iter().position(|n| n == part).unwrap_or_else(|| {
                        names.push(part.to_string());
                        names.len() - 1
                    });
                    format!("p{index}")
                })
                .collect();
            *path = renamed.join("/");
        }
    }
    out
}

/// `ops` without the rename at `i`, the operations after it naming what it renamed (and what
/// lies under it) by the old name. The shrinker cannot take out a rename that later operations
/// depend on by removal alone; whether the list still fails this way is for the chain to say.
pub fn without_rename(ops: &[Op], i: usize) -> Option<Vec<Op>> {
    let Op::Rename { from, to } = &ops[i] else {
        return None;
    };
    let mut out = ops[..i].to_vec();
    for op in &ops[i + 1..] {
        let mut op = op.clone();
        for path in op.paths_mut() {
            if let Some(rest) = path.strip_prefix(to.as_str()) {
                if rest.is_empty() || rest.starts_with('/') {
                    *path = format!("{from}{rest}");
                }
            }
        }
        out.push(op);
    }
    Some(out)
}

/// A small deterministic generator (splitmix64): the same seed gives the same operations on
/// every machine and build.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// `count` operations from `seed`, with `snapshots` snapshot points spread among them.
pub fn generate(seed: u64, count: usize, snapshots: usize) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    let mut ops: Vec<Op> = (0..count).map(|_| one(&mut rng)).collect();
    for _ in 0..snapshots {
        let at = rng.below(ops.len() as u64 + 1) as usize;
        ops.insert(at, Op::Snapshot);
    }
    super::wide::insert(seed, &mut ops);
    super::reshape::insert(seed, &mut ops);
    super::wide::insert_copies(seed, &mut ops);
    super::staged::insert(seed, &mut ops);
    super::wide::insert_texts(seed, &mut ops);
    ops
}

/// Inserts `ops.len() / rate` operations (at least one), each drawn by `draw` from `rng` and put
/// at a place drawn next from it: the wider and the reshaping operations come so, each from a
/// stream of its own, so that a seed's other operations stay what they were.
pub(super) fn insert_drawn(
    ops: &mut Vec<Op>,
    rng: &mut Rng,
    rate: usize,
    mut draw: impl FnMut(&mut Rng) -> Op,
) {
    for _ in 0..(ops.len() / rate).max(1) {
        let op = draw(rng);
        let at = rng.below(ops.len() as u64 + 1) as usize;
        ops.insert(at, op);
    }
}

/// An offset or length: sub-block, unaligned, block-aligned or large, in that order of weight.
fn size(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0..=2 => 1 + rng.below(BLOCK - 1),
        3..=5 => 1 + rng.below(64 * 1024),
        6..=8 => BLOCK * (1 + rng.below(32)),
        _ => BLOCK * (64 + rng.below(512)),
    }
}

fn aligned(rng: &mut Rng, blocks: u64) -> u64 {
    BLOCK * rng.below(blocks)
}

fn any_path(rng: &mut Rng) -> String {
    if rng.chance(25) {
        rng.pick(DIRS).to_string()
    } else {
        rng.pick(FILES).to_string()
    }
}

fn one(rng: &mut Rng) -> Op {
    let file = |rng: &mut Rng| rng.pick(FILES).to_string();
    match rng.below(100) {
        0..=21 => {
            let direct = rng.chance(20);
            let (offset, len) = if direct {
                (aligned(rng, 64), BLOCK * (1 + rng.below(16)))
            } else {
                (if rng.chance(30) { 0 } else { size(rng) }, size(rng))
            };
            Op::Write {
                file: file(rng),
                offset,
                len,
                byte: rng.below(256) as u8,
                direct,
            }
        }
        22..=27 => Op::Fallocate {
            file: file(rng),
            offset: size(rng),
            len: size(rng),
            mode: match rng.below(3) {
                0 => Falloc::Allocate,
                1 => Falloc::KeepSize,
                _ => Falloc::PunchHole,
            },
        },
        28..=33 => Op::Truncate {
            file: file(rng),
            size: if rng.chance(30) { 0 } else { size(rng) },
        },
        34..=39 => share(rng, Sharing::Reflink, (32, 64), 16),
        40..=41 => share(rng, Sharing::Dedupe, (8, 8), 8),
        42..=43 => Op::Chattr {
            path: file(rng),
            flag: ['C', 'A', 'd'][rng.below(3) as usize],
            on: rng.chance(70),
        },
        44..=48 => Op::Rename {
            from: any_path(rng),
            to: any_path(rng),
        },
        49..=51 => Op::Exchange {
            a: any_path(rng),
            b: any_path(rng),
        },
        52..=56 => Op::Link {
            from: file(rng),
            to: file(rng),
        },
        57..=61 => Op::Unlink { path: file(rng) },
        62..=64 => Op::Symlink {
            target: any_path(rng),
            path: file(rng),
        },
        65..=69 => Op::Mkdir {
            path: rng.pick(DIRS).to_string(),
        },
        70..=72 => Op::Rmdir {
            path: rng.pick(DIRS).to_string(),
        },
        73..=74 => Op::Mkfifo { path: file(rng) },
        75 => Op::Mknod { path: file(rng) },
        76 => Op::Mksock { path: file(rng) },
        77..=83 => {
            let name = rng.pick(XATTR_NAMES).to_string();
            let len = if name == "user.big" {
                2000 + rng.below(2000) as usize
            } else {
                1 + rng.below(64) as usize
            };
            Op::SetXattr {
                path: any_path(rng),
                name,
                len,
                byte: b'a' + rng.below(26) as u8,
            }
        }
        84..=86 => Op::RemoveXattr {
            path: any_path(rng),
            name: rng.pick(XATTR_NAMES).to_string(),
        },
        87..=90 => Op::Chmod {
            path: any_path(rng),
            mode: [0o600, 0o644, 0o755, 0o700, 0o4755, 0o1777][rng.below(6) as usize],
        },
        91..=94 => Op::Chown {
            path: any_path(rng),
            uid: [0, 1000, 65534][rng.below(3) as usize],
            gid: [0, 100, 65534][rng.below(3) as usize],
        },
        _ => Op::Utimes {
            path: any_path(rng),
            seconds: 1_000_000_000 + rng.below(1_000_000_000) as i64,
            nanos: rng.below(1_000_000_000) as u32,
        },
    }
}

/// A [`Op::Share`] with offsets below the given numbers of blocks and at most `most` blocks.
fn share(rng: &mut Rng, how: Sharing, (src_blocks, dst_blocks): (u64, u64), most: u64) -> Op {
    let src = rng.pick(FILES).to_string();
    let src_offset = aligned(rng, src_blocks);
    let dst = rng.pick(FILES).to_string();
    let dst_offset = aligned(rng, dst_blocks);
    Op::Share {
        how,
        src,
        src_offset,
        dst,
        dst_offset,
        len: BLOCK * (1 + rng.below(most)),
    }
}

/// Every name [`Op::kind`] gives.
pub const KINDS: &[&str] = &[
    "write",
    "fallocate",
    "truncate",
    "reflink",
    "dedupe",
    "rename",
    "exchange",
    "chattr",
    "link",
    "unlink",
    "symlink",
    "mkdir",
    "rmdir",
    "mkfifo",
    "mknod",
    "mksock",
    "setxattr",
    "removexattr",
    "chmod",
    "chown",
    "utimes",
    "snapshot",
    "link-many",
    "fill-dir",
    "setcap",
    "setacl",
    "unlink-held",
    "flip-snapshot",
    "copy-file",
    "write-text",
    "remove-tree",
    "invert",
    "reparent",
];

impl Op {
    /// What kind of operation this is, one word of [`KINDS`]: reflink and dedupe differ.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Write { .. } => "write",
            Op::Fallocate { .. } => "fallocate",
            Op::Truncate { .. } => "truncate",
            Op::Share {
                how: Sharing::Reflink,
                ..
            } => "reflink",
            Op::Share {
                how: Sharing::Dedupe,
                ..
            } => "dedupe",
            Op::Rename { .. } => "rename",
            Op::Exchange { .. } => "exchange",
            Op::Chattr { .. } => "chattr",
            Op::Link { .. } => "link",
            Op::Unlink { .. } => "unlink",
            Op::Symlink { .. } => "symlink",
            Op::Mkdir { .. } => "mkdir",
            Op::Rmdir { .. } => "rmdir",
            Op::Mkfifo { .. } => "mkfifo",
            Op::Mknod { .. } => "mknod",
            Op::Mksock { .. } => "mksock",
            Op::SetXattr { .. } => "setxattr",
            Op::RemoveXattr { .. } => "removexattr",
            Op::Chmod { .. } => "chmod",
            Op::Chown { .. } => "chown",
            Op::Utimes { .. } => "utimes",
            Op::Snapshot => "snapshot",
            Op::Wide(wide) => wide.kind(),
            Op::Reshape(reshape) => reshape.kind(),
        }
    }

    /// Applies the operation under `root`. An error means it changed nothing (its
    /// precondition did not hold), which is not a failure of the run.
    pub fn apply(&self, root: &Path) -> io::Result<()> {
        let at = |p: &str| root.join(p);
        match self {
            Op::Write {
                file,
                offset,
                len,
                byte,
                direct,
            } => write(&at(file), *offset, *len, *byte, *direct),
            Op::Fallocate {
                file,
                offset,
                len,
                mode,
            } => {
                let f = file_ioctl::open(&at(file), true)?;
                let flags = match mode {
                    Falloc::Allocate => FallocateFlags::empty(),
                    Falloc::KeepSize => FallocateFlags::FALLOC_FL_KEEP_SIZE,
                    Falloc::PunchHole => {
                        FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE
                    }
                };
                nix::fcntl::fallocate(&f, flags, *offset as i64, *len as i64)?;
                Ok(())
            }
            Op::Truncate { file, size } => file_ioctl::open(&at(file), true)?.set_len(*size),
            Op::Share {
                how,
                src,
                src_offset,
                dst,
                dst_offset,
                len,
            } => {
                let share = match how {
                    Sharing::Reflink => file_ioctl::clone_range,
                    Sharing::Dedupe => file_ioctl::dedupe_range,
                };
                share(&at(src), *src_offset, &at(dst), *dst_offset, *len)
            }
            Op::Rename { from, to } => std::fs::rename(at(from), at(to)),
            Op::Exchange { a, b } => {
                nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &at(a),
                    nix::fcntl::AT_FDCWD,
                    &at(b),
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )?;
                Ok(())
            }
            Op::Chattr { path, flag, on } => file_ioctl::chattr(&at(path), *flag, *on),
            Op::Link { from, to } => std::fs::hard_link(at(from), at(to)),
            Op::Unlink { path } => std::fs::remove_file(at(path)),
            Op::Symlink { target, path } => std::os::unix::fs::symlink(target, at(path)),
            Op::Mkdir { path } => std::fs::create_dir(at(path)),
            Op::Rmdir { path } => std::fs::remove_dir(at(path)),
            Op::Mkfifo { path } => {
                nix::unistd::mkfifo(&at(path), nix::sys::stat::Mode::from_bits_truncate(0o644))?;
                Ok(())
            }
            Op::Mknod { path } => {
                nix::sys::stat::mknod(
                    &at(path),
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::from_bits_truncate(0o644),
                    nix::sys::stat::makedev(1, 3),
                )?;
                Ok(())
            }
            Op::Mksock { path } => {
                // Binding makes the file; closing the socket leaves it. Its mode is set after,
                // since bind(2) follows the umask.
                drop(std::os::unix::net::UnixListener::bind(at(path))?);
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(at(path), std::fs::Permissions::from_mode(0o644))
            }
            Op::SetXattr {
                path,
                name,
                len,
                byte,
            } => crate::xattr::set(&at(path), name, &vec![*byte; *len]),
            Op::RemoveXattr { path, name } => crate::xattr::remove(&at(path), name),
            Op::Chmod { path, mode } => {
                // As chmod(1) without -h: a symlink's target, which may be missing.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(at(path), std::fs::Permissions::from_mode(*mode))
            }
            Op::Chown { path, uid, gid } => {
                std::os::unix::fs::lchown(at(path), Some(*uid), Some(*gid))
            }
            Op::Utimes {
                path,
                seconds,
                nanos,
            } => {
                let time = nix::sys::time::TimeSpec::new(*seconds, i64::from(*nanos));
                nix::sys::stat::utimensat(
                    nix::fcntl::AT_FDCWD,
                    &at(path),
                    &time,
                    &time,
                    nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                )?;
                Ok(())
            }
            Op::Snapshot => Ok(()),
            Op::Wide(wide) => wide.apply(root),
            Op::Reshape(reshape) => reshape.apply(root),
        }
    }

    /// The paths this operation names, for renaming them all.
    pub(super) fn paths_mut(&mut self) -> Vec<&mut String> {
        match self {
            Op::Write { file, .. } | Op::Fallocate { file, .. } | Op::Truncate { file, .. } => {
                vec![file]
            }
            Op::Share { src, dst, .. } => vec![src, dst],
            Op::Rename { from, to } | Op::Link { from, to } => vec![from, to],
            Op::Exchange { a, b } => vec![a, b],
            Op::Symlink { target, path } => vec![target, path],
            Op::Unlink { path }
            | Op::Mkdir { path }
            | Op::Rmdir { path }
            | Op::Mkfifo { path }
            | Op::Mknod { path }
            | Op::Mksock { path }
            | Op::SetXattr { path, .. }
            | Op::RemoveXattr { path, .. }
            | Op::Chmod { path, .. }
            | Op::Chown { path, .. }
            | Op::Utimes { path, .. }
            | Op::Chattr { path, .. } => vec![path],
            Op::Snapshot => Vec::new(),
            Op::Wide(wide) => wide.paths_mut(),
            Op::Reshape(reshape) => reshape.paths_mut(),
        }
    }

    /// Smaller versions of this operation, for the shrinker to try in its place: each changes
    /// one argument.
    pub fn simpler(&self) -> Vec<Op> {
        let changes: [fn(&mut Op); 4] = [
            |op| {
                if let Op::Write { direct, .. } = op {
                    *direct = false;
                }
            },
            |op| {
                if let Op::Write {
                    offset,
                    direct: false,
                    ..
                } = op
                {
                    *offset = 0;
                }
            },
            // One byte value for all, so that two failures that differ only in the bytes
            // written shrink to the same list.
            |op| {
                if let Op::Write { byte, .. } = op {
                    *byte = SIMPLE_BYTE;
                }
            },
            |op| match op {
                Op::Write {
                    len, direct: true, ..
                }
                | Op::Share { len, .. } => *len = (*len / 2 / BLOCK * BLOCK).max(BLOCK),
                Op::Write { len, .. } | Op::Fallocate { len, .. } => *len = (*len / 2).max(1),
                Op::SetXattr { len, .. } => *len = (*len / 2).max(1),
                Op::Truncate { size, .. } => *size /= 2,
                Op::Wide(wide) => {
                    if let Some(smaller) = wide.halved() {
                        *wide = smaller;
                    }
                }
                _ => {}
            },
        ];
        changes
            .iter()
            .filter_map(|change| {
                let mut op = self.clone();
                change(&mut op);
                (op != *self).then_some(op)
            })
            .collect()
    }
}

/// The shell command that does what [`Op::apply`] does, run in the subvolume's directory.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Write {
                file,
                offset,
                len,
                byte,
                direct,
            } => write!(
                f,
                "[ -p {file} ] || xfs_io -f {}-c 'pwrite -q -S 0x{byte:02x} {offset} {len}' {file}",
                if *direct { "-d " } else { "" }
            ),
            Op::Fallocate {
                file,
                offset,
                len,
                mode,
            } => {
                let command = match mode {
                    Falloc::Allocate => "falloc",
                    Falloc::KeepSize => "falloc -k",
                    Falloc::PunchHole => "fpunch",
                };
                write!(f, "[ -p {file} ] || xfs_io -c '{command} {offset} {len}' {file}")
            }
            Op::Truncate { file, size } => {
                write!(f, "[ -p {file} ] || truncate --no-create -s {size} {file}")
            }
            Op::Share {
                how,
                src,
                src_offset,
                dst,
                dst_offset,
                len,
            } => {
                let command = match how {
                    Sharing::Reflink => "reflink",
                    Sharing::Dedupe => "dedupe",
                };
                write!(
                    f,
                    "[ -p {src} ] || [ -p {dst} ] || xfs_io -c '{command} {src} {src_offset} {dst_offset} {len}' {dst}"
                )
            }
            Op::Rename { from, to } => write!(f, "mv -T {from} {to}"),
            // coreutils before 9.5 cannot exchange; three renames leave the same tree.
            Op::Exchange { a, b }
                if a == b
                    || a.starts_with(&format!("{b}/"))
                    || b.starts_with(&format!("{a}/")) =>
            {
                write!(f, ": exchange {a} {b} changes nothing")
            }
            Op::Exchange { a, b } => write!(
                f,
                "{{ [ -e {a} -o -L {a} ] && [ -e {b} -o -L {b} ] && [ {a} != {b} ] && mv -T {a} .exchange && mv -T {b} {a} && mv -T .exchange {b}; }}"
            ),
            Op::Chattr { path, flag, on } => {
                write!(f, "chattr {}{flag} {path}", if *on { '+' } else { '-' })
            }
            Op::Link { from, to } => write!(f, "ln {from} {to}"),
            Op::Unlink { path } => write!(f, "unlink {path}"),
            Op::Symlink { target, path } => write!(f, "ln -s {target} {path}"),
            Op::Mkdir { path } => write!(f, "mkdir {path}"),
            Op::Rmdir { path } => write!(f, "rmdir {path}"),
            Op::Mkfifo { path } => write!(f, "mkfifo -m 644 {path}"),
            Op::Mknod { path } => write!(f, "mknod -m 644 {path} c 1 3"),
            // No coreutils program makes a socket; perl-base (in every Debian) binds one.
            Op::Mksock { path } => write!(
                f,
                "perl -MSocket -e 'socket(S, AF_UNIX, SOCK_STREAM, 0) && bind(S, pack_sockaddr_un($ARGV[0])) && chmod(0644, $ARGV[0]) or die \"mksock: $!\\n\"' {path}"
            ),
            Op::SetXattr {
                path,
                name,
                len,
                byte,
            } => write!(
                f,
                "setfattr -h -n {name} -v {} {path}",
                String::from_utf8_lossy(&vec![*byte; *len])
            ),
            Op::RemoveXattr { path, name } => write!(f, "setfattr -h -x {name} {path}"),
            Op::Chmod { path, mode } => write!(f, "chmod {mode:o} {path}"),
            Op::Chown { path, uid, gid } => write!(f, "chown -h {uid}:{gid} {path}"),
            Op::Utimes {
                path,
                seconds,
                nanos,
            } => write!(f, "touch -h -d @{seconds}.{nanos:09} {path}"),
            Op::Snapshot => write!(f, "# snapshot"),
            Op::Wide(wide) => write!(f, "{wide}"),
            Op::Reshape(reshape) => write!(f, "{reshape}"),
        }
    }
}

/// Opens `path` to write (creating it), O_DIRECT with `direct`: a FIFO fails instead of
/// waiting for a reader.
fn open_to_write(path: &Path, direct: bool) -> io::Result<std::fs::File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).mode(0o644);
    // O_NONBLOCK: opening a FIFO with no reader fails instead of waiting for ever.
    let direct_flag = if direct { libc::O_DIRECT } else { 0 };
    options.custom_flags(libc::O_NONBLOCK | direct_flag);
    options.open(path)
}

/// Writes `data` into `path` at `offset` (creating it), buffered.
pub(super) fn write_data(path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
    open_to_write(path, false)?.write_all_at(data, offset)
}

fn write(path: &Path, offset: u64, len: u64, byte: u8, direct: bool) -> io::Result<()> {
    if !direct {
        return write_data(path, offset, &vec![byte; len as usize]);
    }
    let file = open_to_write(path, true)?;
    // O_DIRECT needs a buffer aligned to the block size.
    let layout = std::alloc::Layout::from_size_align(len as usize, BLOCK as usize)
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `layout` has a non-zero size (len is at least one block); the buffer is filled
    // before it is read, and freed with the same layout.
    unsafe {
        let buffer = std::alloc::alloc(layout);
        if buffer.is_null() {
            return Err(io::Error::from_raw_os_error(libc::ENOMEM));
        }
        std::ptr::write_bytes(buffer, byte, len as usize);
        let slice = std::slice::from_raw_parts(buffer, len as usize);
        let result = file.write_all_at(slice, offset);
        std::alloc::dealloc(buffer, layout);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_operations() {
        let a = generate(7, 200, 3);
        assert_eq!(a, generate(7, 200, 3));
        assert_ne!(a, generate(8, 200, 3));
        assert_eq!(
            a.len(),
            267,
            "200 operations, 3 snapshots, 3 wide operations, 8 that reshape the tree, 4 copies, \
             47 of seven staged reshapes and 2 writes of numbered lines"
        );
        assert_eq!(a.iter().filter(|o| **o == Op::Snapshot).count(), 3);
        let kinds: std::collections::HashSet<_> = a.iter().map(std::mem::discriminant).collect();
        assert!(
            kinds.len() >= 15,
            "200 operations use {} kinds",
            kinds.len()
        );
    }

    #[test]
    fn the_generator_draws_every_kind_and_only_those() {
        let drawn: std::collections::BTreeSet<&str> =
            generate(3, 5000, 5).iter().map(Op::kind).collect();
        let listed: std::collections::BTreeSet<&str> = KINDS.iter().copied().collect();
        assert_eq!(drawn, listed);
    }

    #[test]
    fn without_a_rename_later_operations_use_the_old_name() {
        let rename = |from: &str, to: &str| Op::Rename {
            from: from.into(),
            to: to.into(),
        };
        let chmod = |path: &str| Op::Chmod {
            path: path.into(),
            mode: 0o600,
        };
        let ops = vec![
            Op::Mkdir { path: "d0".into() },
            rename("d0", "d1"),
            chmod("d1"),
            chmod("d1/f0"),
            chmod("d10"),
            Op::Snapshot,
        ];
        assert_eq!(
            without_rename(&ops, 1).unwrap(),
            vec![
                Op::Mkdir { path: "d0".into() },
                chmod("d0"),
                chmod("d0/f0"),
                chmod("d10"),
                Op::Snapshot,
            ]
        );
        assert_eq!(without_rename(&ops, 2), None);
    }

    #[test]
    fn operations_apply_and_a_missing_precondition_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = Op::Write {
            file: "f0".into(),
            offset: 5,
            len: 10,
            byte: 0x41,
            direct: false,
        };
        write.apply(root).unwrap();
        assert_eq!(
            std::fs::read(root.join("f0")).unwrap(),
            b"\0\0\0\0\0AAAAAAAAAA"
        );
        assert!(Op::Rename {
            from: "f9".into(),
            to: "f0".into()
        }
        .apply(root)
        .is_err());
        assert!(root.join("f0").is_file());
        assert_eq!(
            write.to_string(),
            "[ -p f0 ] || xfs_io -f -c 'pwrite -q -S 0x41 5 10' f0"
        );
    }

    #[test]
    fn lists_that_differ_only_in_names_are_the_same_canonically() {
        let write = |file: &str| Op::Write {
            file: file.into(),
            offset: 0,
            len: 20,
            byte: 0x61,
            direct: false,
        };
        let a = vec![
            Op::Mkdir { path: "d1".into() },
            write("d1/f6"),
            Op::Fallocate {
                file: "d1/f6".into(),
                offset: 904,
                len: 1,
                mode: Falloc::Allocate,
            },
        ];
        let mut b = a.clone();
        b[0] = Op::Mkdir { path: "d0".into() };
        b[1] = write("d0/f4");
        if let Op::Fallocate { file, .. } = &mut b[2] {
            *file = "d0/f4".into();
        }
        assert_ne!(a, b);
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a)[1], write("p0/p1"));
        assert_ne!(canonical(&a), canonical(&[write("f0")]));
    }

    #[test]
    fn simpler_operations_are_smaller() {
        let write = Op::Write {
            file: "f0".into(),
            offset: 8192,
            len: 8192,
            byte: 1,
            direct: true,
        };
        let simpler = write.simpler();
        assert!(simpler
            .iter()
            .any(|o| matches!(o, Op::Write { direct: false, .. })));
        assert!(simpler
            .iter()
            .any(|o| matches!(o, Op::Write { len: 4096, .. })));
        assert!(Op::Snapshot.simpler().is_empty());
    }
}
