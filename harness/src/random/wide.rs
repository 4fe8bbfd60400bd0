//! The wider generator's operations: what fstests' send tests cover and the small pool of
//! names never reaches. Hard links by the hundred in one directory (an inode's names outgrow
//! its inode ref item and spill into extended refs), directories of thousands of entries (a
//! subvolume tree several levels deep), file capabilities (which a chown clears, so send must
//! order them after it) and POSIX ACLs, and files unlinked while a process still holds them
//! open (orphan inodes that a snapshot keeps, and send must pass over).
//!
//! Whole files copied by a reflink (`cp --reflink=always`) into names of their own come too:
//! the new file's inode number is higher than its source's, and every extent of it is one
//! the source holds whole, so send must clone it (`find_extent_clone`, `clone_range`), which
//! the layout oracle's shared rule checks. The pool's partial reflinks seldom make such an
//! extent: they mostly clone into lower-numbered inodes, or parts of extents.
//!
//! They are drawn from streams of their own ([`insert`], [`insert_copies`]: the copies just
//! before snapshots, so that one holds each copy whole), a few per list,
//! so that a seed's other operations stay what they were. Large sizes are rare: a list seldom
//! holds more than one, and the shrinker halves them.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::ops::{Op, Rng};

/// Directories the wide operations use ("" is the subvolume's top).
const DIRS: &[&str] = &["", "d0", "d1", "d0/e0"];
const FILES: &[&str] = &["f0", "f1", "f2", "d0/f4", "d1/f6"];
/// The names whole-file copies go to: only copies make them, so a copy's file is new (or an
/// earlier copy), never a name the other operations write.
const COPIES: &[&str] = &["c0", "c1", "d0/c2", "d1/c3"];

/// A file capability: revision 2, effective, CAP_NET_RAW permitted.
const CAPABILITY: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];
/// A POSIX ACL: owner rw, user 1000 r, group r-x, mask r-x, other r.
const ACL: [u8; 44] = [
    0x02, 0x00, 0x00, 0x00, // version 2
    0x01, 0x00, 0x06, 0x00, 0xff, 0xff, 0xff, 0xff, // ACL_USER_OBJ rw-
    0x02, 0x00, 0x04, 0x00, 0xe8, 0x03, 0x00, 0x00, // ACL_USER 1000 r--
    0x04, 0x00, 0x05, 0x00, 0xff, 0xff, 0xff, 0xff, // ACL_GROUP_OBJ r-x
    0x10, 0x00, 0x05, 0x00, 0xff, 0xff, 0xff, 0xff, // ACL_MASK r-x
    0x20, 0x00, 0x04, 0x00, 0xff, 0xff, 0xff, 0xff, // ACL_OTHER r--
];

/// One wide operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wide {
    /// `count` hard links to `file` in `dir`, named `<file's name>.<k>`, stopping at the first
    /// that fails.
    LinkMany {
        file: String,
        dir: String,
        count: u32,
    },
    /// `count` empty files `n<k>` in `dir`, stopping at the first that fails.
    FillDir { dir: String, count: u32 },
    /// `security.capability` set on `path`.
    SetCap { path: String },
    /// A POSIX ACL set on `path`: the access ACL, or a directory's default one.
    SetAcl { path: String, default: bool },
    /// `path` opened, then unlinked while open; the chain holds it open until its sends are
    /// done, so the snapshots in between keep an orphan inode.
    UnlinkHeld { path: String },
    /// The last snapshot taken flipped read-write and back to read-only (`btrfs property
    /// set`), with `touch` a byte appended to its `f0` meanwhile: a snapshot changed after it
    /// was taken is sent, and is the parent of the next, as it is then. The chain does it
    /// ([`Wide::flip_commands`] for scripts); under the subvolume it changes nothing.
    FlipSnapshot { touch: bool },
    /// `src`, a regular file (through a symlink too), copied whole into `dst` by a reflink, as
    /// `cp --reflink=always`: `dst` is created (mode 0644) or truncated, then shares all of
    /// `src`'s extents. A failed clone leaves `dst` empty, as cp does.
    CopyFile { src: String, dst: String },
    /// `len` bytes of numbered lines (`0000000\n0000001\n…`, as `seq -w 0 9999999` prints
    /// them) written into `file` at `offset` (creating it): data that compresses, but not to
    /// nothing, so that a compressed extent spans several sectors (lzo about 2.5 to 1, zlib
    /// 3.5, zstd 10), as the pool's writes of one byte value never do. Receive's own
    /// decompression (`--force-decompress`) then walks lzo's segments across sector
    /// boundaries, zlib's and zstd's streams over several buffers, and send's encoded writes
    /// carry extents tens of KiB long.
    WriteText { file: String, offset: u64, len: u64 },
}

/// Every name [`Wide::kind`] gives.
pub const KINDS: &[&str] = &[
    "link-many",
    "fill-dir",
    "setcap",
    "setacl",
    "unlink-held",
    "flip-snapshot",
    "copy-file",
    "write-text",
];

/// Wide operations per base operation: one in this many.
const RATE: usize = 60;

/// Whole-file copies per base operation: one in this many.
const COPY_RATE: usize = 50;

/// Inserts `ops.len() / RATE` wide operations (at least one) into `ops` at places drawn from
/// their own stream of `seed`.
pub fn insert(seed: u64, ops: &mut Vec<Op>) {
    let mut rng = Rng::new(seed ^ 0x00de_7a11_5eed_u64);
    super::ops::insert_drawn(ops, &mut rng, RATE, |rng| Op::Wide(one(rng)));
}

/// Inserts `ops.len() / COPY_RATE` whole-file copies (at least one), each just before a
/// snapshot point (a [`Op::Snapshot`], or the list's end, where the chain takes its last) drawn
/// from a stream of their own: that snapshot holds the copy and its source as the copy left
/// them, all of the copy's extents shared, which is where send must clone. The generator
/// inserts them last, so that every operation drawn before keeps its place.
pub fn insert_copies(seed: u64, ops: &mut Vec<Op>) {
    let mut rng = Rng::new(seed ^ 0x0c09_f11e_u64);
    for _ in 0..(ops.len() / COPY_RATE).max(1) {
        let copy = Op::Wide(Wide::CopyFile {
            src: pick(&mut rng, FILES),
            dst: pick(&mut rng, COPIES),
        });
        let points: Vec<usize> = ops
            .iter()
            .enumerate()
            .filter(|(_, op)| **op == Op::Snapshot)
            .map(|(i, _)| i)
            .chain([ops.len()])
            .collect();
        let at = points[rng.below(points.len() as u64) as usize];
        ops.insert(at, copy);
    }
}

/// Writes of numbered lines per base operation: one in this many.
const TEXT_RATE: usize = 120;

/// Inserts `ops.len() / TEXT_RATE` writes of numbered lines (at least one) at places drawn from
/// a stream of their own; the generator inserts them after all others, so that every operation
/// drawn before stays what it was. Most are 16 to 256 KiB, one in twenty up to 2 MiB.
pub fn insert_texts(seed: u64, ops: &mut Vec<Op>) {
    let mut rng = Rng::new(seed ^ 0x7e47_11e5_u64);
    for _ in 0..(ops.len() / TEXT_RATE).max(1) {
        let blocks = if rng.below(20) == 0 {
            64 + rng.below(448)
        } else {
            4 + rng.below(60)
        };
        let text = Op::Wide(Wide::WriteText {
            file: pick(&mut rng, FILES),
            offset: rng.below(64) * 4096
                + if rng.below(5) == 0 {
                    rng.below(4096)
                } else {
                    0
                },
            len: blocks * 4096,
        });
        let at = rng.below(ops.len() as u64 + 1) as usize;
        ops.insert(at, text);
    }
}

/// The first `len` bytes of the lines that `seq -w 0 9999999` prints.
pub fn numbered_lines(len: u64) -> Vec<u8> {
    let mut text = Vec::with_capacity(len as usize + 8);
    let mut k = 0u32;
    while (text.len() as u64) < len {
        text.extend_from_slice(format!("{k:07}\n").as_bytes());
        k += 1;
    }
    text.truncate(len as usize);
    text
}

fn pick(rng: &mut Rng, items: &[&str]) -> String {
    items[rng.below(items.len() as u64) as usize].to_string()
}

/// A size: usually small, one in fifty times large (a large one costs a seed a few seconds:
/// rare, so that a soak's seeds per minute stay).
fn count(rng: &mut Rng, small: (u64, u64), large: (u64, u64)) -> u32 {
    let (low, high) = if rng.below(50) == 0 { large } else { small };
    (low + rng.below(high - low)) as u32
}

fn one(rng: &mut Rng) -> Wide {
    match rng.below(100) {
        0..=21 => Wide::LinkMany {
            file: pick(rng, FILES),
            dir: pick(rng, DIRS),
            count: count(rng, (2, 10), (1000, 1300)),
        },
        22..=39 => Wide::FillDir {
            dir: pick(rng, DIRS),
            count: count(rng, (5, 30), (400, 1500)),
        },
        40..=57 => Wide::SetCap {
            path: pick(rng, FILES),
        },
        58..=74 => {
            let default = rng.below(3) == 0;
            Wide::SetAcl {
                path: if default {
                    pick(rng, &DIRS[1..])
                } else {
                    pick(rng, FILES)
                },
                default,
            }
        }
        75..=87 => Wide::UnlinkHeld {
            path: pick(rng, FILES),
        },
        _ => Wide::FlipSnapshot {
            touch: rng.below(2) == 0,
        },
    }
}

fn joined(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The last component of a pool path.
pub(super) fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl Wide {
    pub fn kind(&self) -> &'static str {
        match self {
            Wide::LinkMany { .. } => "link-many",
            Wide::FillDir { .. } => "fill-dir",
            Wide::SetCap { .. } => "setcap",
            Wide::SetAcl { .. } => "setacl",
            Wide::UnlinkHeld { .. } => "unlink-held",
            Wide::FlipSnapshot { .. } => "flip-snapshot",
            Wide::CopyFile { .. } => "copy-file",
            Wide::WriteText { .. } => "write-text",
        }
    }

    /// Applies it under `root`; an error means it stopped where it failed, as the shell's does.
    pub fn apply(&self, root: &Path) -> io::Result<()> {
        let at = |p: &str| root.join(p);
        match self {
            Wide::LinkMany { file, dir, count } => {
                for k in 0..*count {
                    let name = joined(dir, &format!("{}.{k}", base_name(file)));
                    std::fs::hard_link(at(file), at(&name))?;
                }
                Ok(())
            }
            Wide::FillDir { dir, count } => {
                for k in 0..*count {
                    File::create(at(&joined(dir, &format!("n{k}"))))?;
                }
                Ok(())
            }
            Wide::SetCap { path } => {
                crate::xattr::set(&at(path), "security.capability", &CAPABILITY)
            }
            Wide::SetAcl { path, default } => {
                crate::xattr::set(&at(path), acl_name(*default), &ACL)
            }
            // As `[ -f PATH ]`: only a regular file (through a symlink too) is held and
            // unlinked; opening a fifo would block.
            Wide::UnlinkHeld { path } => {
                if !std::fs::metadata(at(path))?.is_file() {
                    return Err(io::Error::from(io::ErrorKind::InvalidInput));
                }
                std::fs::remove_file(at(path))
            }
            Wide::FlipSnapshot { .. } => Ok(()),
            Wide::CopyFile { src, dst } => {
                if !std::fs::metadata(at(src))?.is_file() {
                    return Err(io::Error::from(io::ErrorKind::InvalidInput));
                }
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o644)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(at(dst))?;
                // A length of 0 clones to the source's end, as FICLONE does.
                crate::file_ioctl::clone_range(&at(src), 0, &at(dst), 0, 0)
            }
            Wide::WriteText { file, offset, len } => {
                super::ops::write_data(&at(file), *offset, &numbered_lines(*len))
            }
        }
    }

    /// For [`Wide::UnlinkHeld`]: the file opened before it is unlinked, for the chain to hold.
    pub fn hold(&self, root: &Path) -> Option<File> {
        match self {
            Wide::UnlinkHeld { path } => {
                let path = root.join(path);
                std::fs::metadata(&path)
                    .is_ok_and(|m| m.is_file())
                    .then(|| File::open(&path).ok())
                    .flatten()
            }
            _ => None,
        }
    }

    pub fn paths_mut(&mut self) -> Vec<&mut String> {
        match self {
            Wide::LinkMany { file, dir, .. } => vec![file, dir],
            Wide::FillDir { dir, .. } => vec![dir],
            Wide::SetCap { path } | Wide::SetAcl { path, .. } | Wide::UnlinkHeld { path } => {
                vec![path]
            }
            Wide::FlipSnapshot { .. } => Vec::new(),
            Wide::CopyFile { src, dst } => vec![src, dst],
            Wide::WriteText { file, .. } => vec![file],
        }
    }

    /// The same with half the count, for the shrinker; `None` when there is nothing to halve.
    pub fn halved(&self) -> Option<Wide> {
        let mut smaller = self.clone();
        match &mut smaller {
            Wide::LinkMany { count, .. } | Wide::FillDir { count, .. } if *count > 1 => {
                *count /= 2;
                Some(smaller)
            }
            Wide::WriteText { len, .. } if *len > 1 => {
                *len /= 2;
                Some(smaller)
            }
            _ => None,
        }
    }
}

impl Wide {
    /// For [`Wide::FlipSnapshot`]: the shell commands that do it to the snapshot at `snapshot`
    /// (a shell word), as the chain's [`flip`] does.
    pub fn flip_commands(&self, snapshot: &str) -> Option<String> {
        let Wide::FlipSnapshot { touch } = self else {
            return None;
        };
        let f0 = match snapshot.strip_suffix('"') {
            Some(open) => format!("{open}/f0\""),
            None => format!("{snapshot}/f0"),
        };
        let touched = if *touch {
            format!("{{ [ -f {f0} ] && [ ! -L {f0} ] && printf z >> {f0}; }}; ")
        } else {
            String::new()
        };
        Some(format!(
            "btrfs property set -ts {snapshot} ro false; {touched}btrfs property set -ts {snapshot} ro true"
        ))
    }
}

/// What [`Wide::FlipSnapshot`] does to `snapshot`, through `set_ro` (the property command).
pub fn flip(
    snapshot: &Path,
    touch: bool,
    set_ro: &mut dyn FnMut(bool) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    set_ro(false)?;
    if touch {
        let f0 = snapshot.join("f0");
        if std::fs::symlink_metadata(&f0).is_ok_and(|m| m.is_file()) {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .append(true)
                .open(&f0)?
                .write_all(b"z")?;
        }
    }
    set_ro(true)
}

fn acl_name(default: bool) -> &'static str {
    if default {
        "system.posix_acl_default"
    } else {
        "system.posix_acl_access"
    }
}

fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}

/// The shell commands that do what [`Wide::apply`] does. `UnlinkHeld` holds the file on a
/// descriptor of the script's shell, kept in the array `held`, which the script closes after
/// its sends (as the chain drops its files), before it unmounts.
impl fmt::Display for Wide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wide::LinkMany { file, dir, count } => write!(
                f,
                "for k in $(seq 0 {}); do ln {file} {} || break; done",
                count - 1,
                joined(dir, &format!("{}.$k", base_name(file)))
            ),
            Wide::FillDir { dir, count } => write!(
                f,
                "for k in $(seq 0 {}); do : > {} || break; done",
                count - 1,
                joined(dir, "n$k")
            ),
            Wide::SetCap { path } => write!(
                f,
                "setfattr -h -n security.capability -v {} {path}",
                hex(&CAPABILITY)
            ),
            Wide::SetAcl { path, default } => write!(
                f,
                "setfattr -h -n {} -v {} {path}",
                acl_name(*default),
                hex(&ACL)
            ),
            Wide::UnlinkHeld { path } => write!(
                f,
                "{{ [ -f {path} ] && exec {{fd}}<{path} && held+=($fd) && unlink {path}; }}"
            ),
            // Scripts write [`Wide::flip_commands`] in its place.
            Wide::FlipSnapshot { .. } => write!(f, ": flip the last snapshot"),
            Wide::CopyFile { src, dst } => write!(
                f,
                "{{ [ -f {src} ] && cp --reflink=always --no-preserve=all {src} {dst}; }}"
            ),
            Wide::WriteText { file, offset, len } => write!(
                f,
                "[ -p {file} ] || seq -w 0 9999999 | head -c {len} | dd of={file} bs=64K seek={offset} \
                 oflag=seek_bytes iflag=fullblock conv=notrunc status=none"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_seed_inserts_the_same_few_and_keeps_the_others_in_order() {
        let base: Vec<Op> = (0..200)
            .map(|i| Op::Mkdir {
                path: format!("x{i}"),
            })
            .collect();
        let mut one = base.clone();
        insert(5, &mut one);
        let mut again = base.clone();
        insert(5, &mut again);
        assert_eq!(one, again);
        assert_eq!(one.len(), 203);
        let kept: Vec<&Op> = one.iter().filter(|o| !matches!(o, Op::Wide(_))).collect();
        assert_eq!(kept, base.iter().collect::<Vec<_>>());
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut ops = Vec::new();
            insert(seed, &mut ops);
            insert_copies(seed, &mut ops);
            insert_texts(seed, &mut ops);
            for op in &ops {
                if let Op::Wide(w) = op {
                    kinds.insert(w.kind());
                }
            }
        }
        assert_eq!(kinds.len(), KINDS.len(), "{kinds:?}");
    }

    #[test]
    fn numbered_lines_are_what_seq_prints_and_are_written_where_drawn() {
        assert_eq!(numbered_lines(20), b"0000000\n0000001\n0000".to_vec());
        assert_eq!(numbered_lines(0), Vec::<u8>::new());
        let text = numbered_lines(1 << 20);
        assert_eq!(&text[text.len() - 8..], b"0131071\n");
        let dir = tempfile::tempdir().unwrap();
        let op = Wide::WriteText {
            file: "f0".into(),
            offset: 5000,
            len: 100,
        };
        op.apply(dir.path()).unwrap();
        let got = std::fs::read(dir.path().join("f0")).unwrap();
        assert_eq!(got.len(), 5100);
        assert!(got[..5000].iter().all(|b| *b == 0));
        assert_eq!(&got[5000..], numbered_lines(100).as_slice());
        assert_eq!(
            op.to_string(),
            "[ -p f0 ] || seq -w 0 9999999 | head -c 100 | dd of=f0 bs=64K seek=5000 \
             oflag=seek_bytes iflag=fullblock conv=notrunc status=none"
        );
        assert_eq!(
            op.halved(),
            Some(Wide::WriteText {
                file: "f0".into(),
                offset: 5000,
                len: 50
            })
        );
        // A list of 400 gets three, most of 16 to 256 KiB.
        let mut ops: Vec<Op> = vec![Op::Snapshot; 400];
        insert_texts(3, &mut ops);
        let texts: Vec<u64> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Wide(Wide::WriteText { len, .. }) => Some(*len),
                _ => None,
            })
            .collect();
        assert_eq!(texts.len(), 3, "{texts:?}");
        assert!(
            texts.iter().all(|len| (16384..=2 << 20).contains(len)),
            "{texts:?}"
        );
    }

    #[test]
    fn the_operations_kinds_list_these_too() {
        let all = crate::random::ops::KINDS;
        assert!(KINDS.iter().all(|k| all.contains(k)), "{all:?}");
    }

    #[test]
    fn applied_here_as_the_shell_would() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d0")).unwrap();
        std::fs::write(root.join("f0"), b"x").unwrap();
        let links = Wide::LinkMany {
            file: "f0".into(),
            dir: "d0".into(),
            count: 5,
        };
        links.apply(root).unwrap();
        assert!(root.join("d0/f0.4").exists());
        assert_eq!(
            links.to_string(),
            "for k in $(seq 0 4); do ln f0 d0/f0.$k || break; done"
        );
        // The sixth link exists already: it stops there, as `|| break` does.
        let more = Wide::LinkMany {
            file: "f0".into(),
            dir: "d0".into(),
            count: 9,
        };
        assert!(more.apply(root).is_err());
        let fill = Wide::FillDir {
            dir: "missing".into(),
            count: 3,
        };
        assert!(fill.apply(root).is_err());
        assert_eq!(
            Wide::FillDir {
                dir: String::new(),
                count: 2
            }
            .to_string(),
            "for k in $(seq 0 1); do : > n$k || break; done"
        );
        assert_eq!(
            links.halved().map(|w| w.to_string()).unwrap(),
            "for k in $(seq 0 1); do ln f0 d0/f0.$k || break; done"
        );
        let flip = Wide::FlipSnapshot { touch: true };
        assert_eq!(
            flip.flip_commands("\"$work/src/snap1\"").unwrap(),
            "btrfs property set -ts \"$work/src/snap1\" ro false; { [ -f \"$work/src/snap1/f0\" ] && [ ! -L \"$work/src/snap1/f0\" ] && printf z >> \"$work/src/snap1/f0\"; }; btrfs property set -ts \"$work/src/snap1\" ro true"
        );
        assert!(Wide::FlipSnapshot { touch: false }
            .flip_commands("$SCRATCH_MNT/snap0")
            .unwrap()
            .ends_with("-ts $SCRATCH_MNT/snap0 ro false; btrfs property set -ts $SCRATCH_MNT/snap0 ro true"));
        let held = Wide::UnlinkHeld { path: "f0".into() };
        let file = held.hold(root).unwrap();
        held.apply(root).unwrap();
        assert!(!root.join("f0").exists());
        drop(file);
        assert_eq!(&hex(&CAPABILITY)[..10], "0x01000002");
        let copy = Wide::CopyFile {
            src: "d0".into(),
            dst: "c0".into(),
        };
        assert!(copy.apply(root).is_err(), "a directory is not copied");
        assert!(!root.join("c0").exists(), "nor is its copy made");
        assert_eq!(
            copy.to_string(),
            "{ [ -f d0 ] && cp --reflink=always --no-preserve=all d0 c0; }"
        );
    }

    #[test]
    fn copies_come_last_and_leave_every_other_operation_in_place() {
        let ops = crate::random::ops::generate(9, 200, 3);
        // The staged reshapes go in after the copies, under names of their own (`r<k>`).
        let staged = |o: &Op| o.clone().paths_mut().iter().any(|p| p.starts_with('r'));
        let without: Vec<&Op> = ops
            .iter()
            .filter(|o| !matches!(o, Op::Wide(Wide::CopyFile { .. })) && !staged(o))
            .collect();
        let copies = ops
            .iter()
            .filter(|o| matches!(o, Op::Wide(Wide::CopyFile { .. })) && !staged(o))
            .count();
        assert_eq!(copies, 4);
        let mut before: Vec<Op> = without.into_iter().cloned().collect();
        insert_copies(9, &mut before);
        crate::random::staged::insert(9, &mut before);
        assert_eq!(before, ops);
        // The copies of the list's own files (the staged `into-new` copies one of its own).
        for (i, op) in ops.iter().enumerate().filter(|(_, op)| !staged(op)) {
            if let Op::Wide(Wide::CopyFile { src, dst }) = op {
                assert!(FILES.contains(&src.as_str()) && COPIES.contains(&dst.as_str()));
                // Just before a snapshot point, other copies and staged reshapes aside.
                let next = ops[i..]
                    .iter()
                    .find(|o| !matches!(o, Op::Wide(Wide::CopyFile { .. })) && !staged(o));
                assert!(matches!(next, None | Some(Op::Snapshot)), "{i}: {next:?}");
            }
        }
    }
}
