//! Reshapes staged across a snapshot: a small directory tree of names of its own is made just
//! before a snapshot, and reshaped just after it, so that the next incremental send must
//! describe exactly that change. The reshaping operations of the pool ([`super::reshape`])
//! land wherever their stream puts them, on pool directories that the operations around them
//! create and remove; between two snapshots their effects mostly cancel, and the send code
//! they aim at (the delayed directory moves of `apply_dir_move`, `wait_for_dest_dir_move`,
//! `can_rmdir`'s orphan directories) seldom runs: with seeds 1 and 8 of the default size, never
//! (`sendtest coverage`). Staged, each shape reaches the next send whole. The shapes are those of
//! fstests' send tests of directory moves (btrfs/030, 087, 105, 117 and others):
//!
//! - **invert**: `a/b` becomes `b/a` (each names the other as parent: one move waits for the
//!   other's);
//! - **reverse**: `a/b/c` becomes `c/b/a`, a chain of waiting moves;
//! - **remove-tree**: `a` with a subdirectory, an empty subdirectory and files removed whole
//!   (`a` can go only once its entries have, so it is orphanized first; the empty one can go
//!   at once);
//! - **move-out**: `a/b` moved out of `a`, then `a` removed (`a` waits for `b`'s move);
//! - **exchange**: `a` and `b` trade names (RENAME_EXCHANGE; each takes a name the other held);
//! - **reparent**: `a` moved under a new directory that took its name; `a` holds a file of the
//!   longest name a file can have (255 bytes), so its paths outgrow the buffer that send keeps
//!   inline for a path (`fs_path_ensure_buf`), which no other operation's names do;
//! - **into-new**: `a` moved under a new directory (an inode created after it); `a` holds a
//!   file with two names, so that one inode ref item holds two refs, which send walks one by
//!   one (`iterate_inode_ref`), and a file of 64 KiB that is copied by a reflink after the
//!   move: a new inode sharing the parent's extent, which send must clone (the layout
//!   oracle's shared rule checks it, and random lists seldom make one: seed 1's none); and
//!   another that is copied and then removed, so that the copy's extent is left only in the
//!   parent snapshot: send must clone it from there (another subvolume: receive looks the
//!   source up by its received UUID, and below a subvolume mount strips the mount's path).
//!
//! Each stage has names of its own, `r<k>/…`, which no other operation uses. The stages come
//! from a stream of their own and go in last ([`insert`]), so a seed's other operations stay
//! what they were.

use super::ops::{Op, Rng};
use super::reshape::Reshape;
use super::wide::Wide;

/// Every shape.
pub const SHAPES: &[&str] = &[
    "invert",
    "reverse",
    "remove-tree",
    "move-out",
    "exchange",
    "reparent",
    "into-new",
];

/// Staged reshapes per base operation: one in this many (seven in a list of the default size,
/// each shape once).
const RATE: usize = 28;

fn mkdir(path: String) -> Op {
    Op::Mkdir { path }
}

fn write(file: String) -> Op {
    Op::Write {
        file,
        offset: 0,
        len: 3000,
        byte: b's',
        direct: false,
    }
}

fn rename(from: String, to: String) -> Op {
    Op::Rename { from, to }
}

/// The longest name a file can have on btrfs (and Linux): 255 bytes.
pub fn longest_name() -> String {
    format!("long-{}", "l".repeat(250))
}

/// The operations of `shape` under `top`: those made before the snapshot, and those after it.
pub fn stage(shape: &str, top: &str) -> (Vec<Op>, Vec<Op>) {
    let at = |p: &str| format!("{top}/{p}");
    let mut before = vec![mkdir(top.to_string()), mkdir(at("a"))];
    let after = match shape {
        "invert" => {
            before.extend([mkdir(at("a/b")), write(at("a/f")), write(at("a/b/g"))]);
            vec![Op::Reshape(Reshape::Invert {
                parent: at("a"),
                child: at("a/b"),
            })]
        }
        "reverse" => {
            before.extend([mkdir(at("a/b")), mkdir(at("a/b/c")), write(at("a/b/c/g"))]);
            // a/b/c → b/a/c (b at a's name, with c) → c/b/a: c at the top, a at the bottom.
            vec![
                Op::Reshape(Reshape::Invert {
                    parent: at("a"),
                    child: at("a/b"),
                }),
                Op::Reshape(Reshape::Invert {
                    parent: at("a"),
                    child: at("a/c"),
                }),
            ]
        }
        "remove-tree" => {
            before.extend([
                mkdir(at("a/b")),
                mkdir(at("a/e")),
                write(at("a/f")),
                write(at("a/b/g")),
            ]);
            vec![Op::Reshape(Reshape::RemoveTree { dir: at("a") })]
        }
        "move-out" => {
            before.extend([mkdir(at("a/b")), write(at("a/b/g"))]);
            vec![rename(at("a/b"), at("b")), Op::Rmdir { path: at("a") }]
        }
        "exchange" => {
            before.extend([write(at("a/f")), mkdir(at("b")), mkdir(at("b/c"))]);
            vec![Op::Exchange {
                a: at("a"),
                b: at("b"),
            }]
        }
        "reparent" => {
            before.push(write(at(&format!("a/{}", longest_name()))));
            vec![Op::Reshape(Reshape::Reparent { dir: at("a") })]
        }
        "into-new" => {
            before.extend([
                write(at("a/f")),
                Op::Link {
                    from: at("a/f"),
                    to: at("a/f2"),
                },
                Op::Write {
                    file: at("a/big"),
                    offset: 0,
                    len: 65536,
                    byte: b'b',
                    direct: false,
                },
                Op::Write {
                    file: at("a/old"),
                    offset: 0,
                    len: 65536,
                    byte: b'o',
                    direct: false,
                },
            ]);
            vec![
                mkdir(at("n")),
                rename(at("a"), at("n/a")),
                Op::Wide(Wide::CopyFile {
                    src: at("n/a/big"),
                    dst: at("n/c"),
                }),
                Op::Wide(Wide::CopyFile {
                    src: at("n/a/old"),
                    dst: at("n/d"),
                }),
                Op::Unlink {
                    path: at("n/a/old"),
                },
            ]
        }
        _ => unreachable!("a shape not in SHAPES: {shape}"),
    };
    (before, after)
}

/// Inserts `ops.len() / RATE` staged reshapes (at least one) into `ops`, each around one of
/// its snapshots drawn from a stream of their own of `seed`: what it makes just before the
/// snapshot, the reshape just after. The shapes take turns from one drawn, so a list of the
/// default size has each. A list without snapshots gets none (the chain's only snapshot is
/// then its last, with nothing after it).
pub fn insert(seed: u64, ops: &mut Vec<Op>) {
    let mut rng = Rng::new(seed ^ 0x57a9_ed00_u64);
    let first = rng.below(SHAPES.len() as u64) as usize;
    for k in 0..(ops.len() / RATE).max(1) {
        let snapshots: Vec<usize> = ops
            .iter()
            .enumerate()
            .filter(|(_, op)| **op == Op::Snapshot)
            .map(|(i, _)| i)
            .collect();
        if snapshots.is_empty() {
            return;
        }
        let at = snapshots[rng.below(snapshots.len() as u64) as usize];
        let shape = SHAPES[(first + k) % SHAPES.len()];
        let (before, after) = stage(shape, &format!("r{k}"));
        ops.splice(at + 1..at + 1, after);
        ops.splice(at..at, before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn ino(root: &Path, path: &str) -> u64 {
        std::fs::symlink_metadata(root.join(path)).unwrap().ino()
    }

    fn names(op: &Op, prefix: &str) -> bool {
        op.clone().paths_mut().iter().any(|p| p.starts_with(prefix))
    }

    /// Applies `ops` under `root`; whether each reflink copy cloned (the temporary directory's
    /// filesystem may not clone: `harness/tests/staged_reshapes.rs` sees the copies on btrfs).
    fn apply(root: &Path, ops: &[Op]) -> bool {
        let mut cloned = true;
        for op in ops {
            match op.apply(root) {
                Err(e) if matches!(op, Op::Wide(Wide::CopyFile { .. })) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{op}: {e}");
                    cloned = false;
                }
                result => result.unwrap_or_else(|e| panic!("{op}: {e}")),
            }
        }
        cloned
    }

    #[test]
    fn each_shape_applies_whole_and_reshapes_what_it_made() {
        for shape in SHAPES {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            let (before, after) = stage(shape, "r0");
            apply(root, &before);
            let a = ino(root, "r0/a");
            let cloned = apply(root, &after);
            match *shape {
                "invert" => assert_eq!(ino(root, "r0/a/b"), a),
                "reverse" => assert_eq!(ino(root, "r0/a/c/b"), a),
                "remove-tree" => assert!(!root.join("r0/a").exists()),
                "move-out" => assert!(!root.join("r0/a").exists() && root.join("r0/b/g").exists()),
                "exchange" => assert_eq!(ino(root, "r0/b"), a),
                "reparent" => {
                    assert_eq!(ino(root, "r0/a/old"), a);
                    let long = root.join("r0/a/old").join(longest_name());
                    assert!(long.exists() && longest_name().len() == 255);
                }
                "into-new" => {
                    assert_eq!(ino(root, "r0/n/a"), a);
                    assert_eq!(ino(root, "r0/n/a/f"), ino(root, "r0/n/a/f2"));
                    if cloned {
                        let copy = std::fs::read(root.join("r0/n/c")).unwrap();
                        assert_eq!(copy, vec![b'b'; 65536]);
                        let copy = std::fs::read(root.join("r0/n/d")).unwrap();
                        assert_eq!(copy, vec![b'o'; 65536]);
                    }
                    assert!(!root.join("r0/n/a/old").exists());
                }
                other => panic!("no check for {other}"),
            }
        }
    }

    #[test]
    fn stages_straddle_a_snapshot_and_keep_the_other_operations_in_order() {
        let mut base: Vec<Op> = (0..300)
            .map(|i| Op::Mkdir {
                path: format!("x{i}"),
            })
            .collect();
        base.insert(100, Op::Snapshot);
        base.insert(200, Op::Snapshot);
        let mut ops = base.clone();
        insert(3, &mut ops);
        let mut again = base.clone();
        insert(3, &mut again);
        assert_eq!(ops, again);
        let kept: Vec<&Op> = ops.iter().filter(|op| !names(op, "r")).collect();
        assert_eq!(kept, base.iter().collect::<Vec<_>>());
        // Each stage's first operation (mkdir r<k>) comes before a snapshot, and its reshape
        // after it; ten stages hold every shape.
        let stages = ops
            .iter()
            .filter(|op| names(op, "r") && matches!(op, Op::Mkdir { path } if !path.contains('/')))
            .count();
        assert_eq!(stages, 302 / RATE);
        for k in 0..stages {
            let top = format!("r{k}");
            let made = ops
                .iter()
                .position(|op| *op == Op::Mkdir { path: top.clone() })
                .unwrap();
            let last = ops.iter().rposition(|op| names(op, &top)).unwrap();
            assert!(
                ops[made..last].contains(&Op::Snapshot),
                "stage {top} does not straddle a snapshot: {:?}",
                &ops[made..=last]
            );
        }
        let mut none = vec![Op::Mkdir { path: "x".into() }];
        insert(3, &mut none);
        assert_eq!(none.len(), 1);
    }
}
