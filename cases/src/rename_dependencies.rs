//! rename-dependencies: an incremental send orders renames, unlinks and rmdirs that depend on
//! each other, in the shapes where send must delay one or orphanize another.
//!
//! Send processes inodes in the order of their numbers, but a rename can only happen once the
//! directory it goes into has its new name, and a name can only be taken once its old owner
//! has left it. So send delays the rename of a directory whose new parent, a later inode, is
//! renamed too (`wait_for_parent_move`), or whose new name still belongs to a directory that is
//! itself waiting (`wait_for_dest_dir_move`). It removes a deleted directory only after its
//! last entry has moved out, even when that entry's move is delayed (`can_rmdir`, the
//! `rmdir_ino` of a pending move). It moves a later inode out of the way under an orphan name
//! when a new name collides with it (`orphanize_inode`), and then recomputes every path it had
//! through that inode (`orphanized_dir`, `orphanized_ancestor`). Each of these has needed
//! fixes (fstests' btrfs/083, 087, 129, 155, 221 and 222 name some of them), and each is a
//! branch the random case seldom takes: its pool of names rarely nests renames, and its inode
//! numbers fall in whatever order its operations made them. Each shape here makes its inodes
//! in the order that makes send take one branch, then changes the tree as one incremental send
//! must describe. The send.c mutants the random case missed on these branches
//! (docs/mutants-missed-linux-6.1-send-shard1.txt) are what it was written against.
//!
//! No kernel commit is its fix: it guards send's ordering of renames as a whole.

use sendtest::prelude::*;
use sendtest::random::{self, Op, Protocol};

pub const CASE: Case = Case {
    name: "rename-dependencies",
    groups: &["send", "rename"],
    summary: "renames, unlinks and rmdirs that an incremental send must delay or orphanize",
    requires: &[],
    fix: Fix {
        subject: "no single fix: it guards how send orders renames that depend on each other",
        ..Fix::NONE_YET
    },
    // Protocol 1 sends no layout.
    ignore: &["ctime", "layout"],
    run,
};

/// One shape: a directory of its own, what it holds at the first snapshot (made in this order,
/// so the inode numbers follow it), and how it changes before the second. Paths are relative to
/// the shape's directory.
struct Shape {
    dir: &'static str,
    /// The send.c branch it takes, and why.
    takes: &'static str,
    before: &'static [Step],
    after: &'static [Step],
}

/// A step of a shape, as its shell command would read.
#[derive(Debug, Clone, Copy)]
enum Step {
    Mkdir(&'static str),
    /// A file of one 4 KiB block of `byte`.
    File(&'static str, u8),
    Mv(&'static str, &'static str),
    Ln(&'static str, &'static str),
    Rm(&'static str),
    Rmdir(&'static str),
}

const SHAPES: &[Shape] = &[
    Shape {
        dir: "dest-waits",
        takes: "fstests' btrfs/083, its first half: b waits for its new parent c2 (a later \
                inode, renamed), and a takes b's old name, so b goes under an orphan name \
                first (will_overwrite_ref of a waiting directory, a waiting move orphanized)",
        before: &[
            Step::Mkdir("b"),
            Step::File("b/fb", b'b'),
            Step::Mkdir("a"),
            Step::File("a/fa", b'a'),
            Step::Mkdir("c"),
        ],
        after: &[
            Step::Mv("c", "c2"),
            Step::Mv("b", "c2/b"),
            Step::Mv("a", "b"),
        ],
    },
    Shape {
        dir: "rmdir-after-move",
        takes: "a is removed, but its child b cannot leave before its new parent x (a later \
                inode) is renamed: a is orphanized, and removed when b's delayed move is done \
                (can_rmdir, a pending move's rmdir_ino)",
        before: &[
            Step::Mkdir("a"),
            Step::Mkdir("a/b"),
            Step::File("a/b/f", b'f'),
            Step::Mkdir("c"),
        ],
        after: &[Step::Mv("c", "x"), Step::Mv("a/b", "x/b"), Step::Rmdir("a")],
    },
    Shape {
        dir: "dest-freed",
        takes: "a takes the name of b, a later directory that is gone, while w waits for its \
                new parent z2 (a later inode, renamed): send looks for a delayed move to wait \
                for, finds the name's old owner missing from the send snapshot, and renames a \
                at once (wait_for_dest_dir_move)",
        before: &[
            Step::Mkdir("w"),
            Step::Mkdir("a"),
            Step::File("a/fa", b'a'),
            Step::Mkdir("b"),
            Step::Mkdir("z"),
        ],
        after: &[
            Step::Mv("z", "z2"),
            Step::Mv("w", "z2/w"),
            Step::Rmdir("b"),
            Step::Mv("a", "b"),
        ],
    },
    Shape {
        dir: "rmdir-not-yet-empty",
        takes: "fstests' btrfs/129: del is removed, but tmp's move out of it waits for c (a \
                later inode, moved), and x, a later inode, still has to leave it: send may \
                remove del only after both (can_rmdir, orphan_dir_info)",
        before: &[
            Step::Mkdir("a"),
            Step::Mkdir("tmp"),
            Step::Mkdir("del"),
            Step::Mv("tmp", "del/tmp"),
            Step::Mkdir("a/c"),
            Step::Mkdir("del/x"),
        ],
        after: &[
            Step::Mv("a/c", "c"),
            Step::Mv("del/x", "a/x"),
            Step::Mv("del/tmp", "c/tmp"),
            Step::Rmdir("del"),
        ],
    },
    Shape {
        dir: "orphanized-ancestor",
        takes: "f's new name is that of its own parent directory a, a later inode: a is \
                orphanized, and f's other old name, under a, is unlinked by its orphan path \
                (orphanized_ancestor, update_ref_path)",
        before: &[
            Step::File("f", b'f'),
            Step::Mkdir("a"),
            Step::Mv("f", "a/f"),
            Step::Ln("a/f", "a/g"),
        ],
        after: &[
            Step::Mv("a", "b"),
            Step::Ln("b/f", "a"),
            Step::Rm("b/f"),
            Step::Rm("b/g"),
        ],
    },
    Shape {
        dir: "orphanized-dir",
        takes: "f gains two names: p/D, a later directory's (orphanized), then q/h, a later \
                file's second name (unlinked), whose path is recomputed after the orphanizing \
                (orphanized_dir, refresh_ref_path)",
        before: &[
            Step::Mkdir("p"),
            Step::Mkdir("q"),
            Step::File("f", b'f'),
            Step::Mkdir("p/D"),
            Step::File("q/g", b'g'),
            Step::Ln("q/g", "q/h"),
        ],
        after: &[
            Step::Mv("p/D", "p/E"),
            Step::Rm("q/h"),
            Step::Ln("f", "p/D"),
            Step::Ln("f", "q/h"),
        ],
    },
    Shape {
        dir: "links-renamed",
        takes: "f and g each trade one of their names for another in the same directory, one \
                shorter and one longer: send matches an inode's old names against its new ones \
                by directory, length and bytes (rbtree_ref_comp), and sends only those that \
                differ",
        before: &[
            Step::File("f", b'f'),
            Step::Ln("f", "a-long-name"),
            Step::File("g", b'g'),
            Step::Ln("g", "b"),
        ],
        after: &[
            Step::Rm("a-long-name"),
            Step::Ln("f", "x"),
            Step::Rm("b"),
            Step::Ln("g", "a-longer-name"),
        ],
    },
    Shape {
        dir: "swap-parent-child",
        takes: "a directory and its child trade places, and a file moves from one to the \
                other: each rename waits for the other (add_pending_dir_move, apply_dir_move)",
        before: &[
            Step::Mkdir("a"),
            Step::Mkdir("a/b"),
            Step::File("a/b/f", b'f'),
            Step::File("a/g", b'g'),
        ],
        after: &[
            Step::Mv("a/b", "b"),
            Step::Mv("a", "b/a"),
            Step::Mv("b/f", "b/a/f"),
        ],
    },
];

impl Step {
    /// The operation, with `dir/` before each path.
    fn op(self, dir: &str) -> Op {
        let at = |path: &str| format!("{dir}/{path}");
        match self {
            Step::Mkdir(path) => Op::Mkdir { path: at(path) },
            Step::File(path, byte) => Op::Write {
                file: at(path),
                offset: 0,
                len: 4096,
                byte,
                direct: false,
            },
            Step::Mv(from, to) => Op::Rename {
                from: at(from),
                to: at(to),
            },
            Step::Ln(from, to) => Op::Link {
                from: at(from),
                to: at(to),
            },
            Step::Rm(path) => Op::Unlink { path: at(path) },
            Step::Rmdir(path) => Op::Rmdir { path: at(path) },
        }
    }
}

/// Every shape's directory and its first state, a snapshot, then every shape's changes: one
/// full and one incremental send between them.
fn ops() -> Vec<Op> {
    let mut ops: Vec<Op> = SHAPES
        .iter()
        .map(|shape| Op::Mkdir {
            path: shape.dir.to_string(),
        })
        .collect();
    for shape in SHAPES {
        ops.extend(shape.before.iter().map(|step| step.op(shape.dir)));
    }
    ops.push(Op::Snapshot);
    for shape in SHAPES {
        ops.extend(shape.after.iter().map(|step| step.op(shape.dir)));
    }
    ops
}

fn run(t: &mut Ctx) -> Result<()> {
    for shape in SHAPES {
        t.note(&format!("{}: {}", shape.dir, shape.takes));
    }
    // The root's mtime: the send bug the random case passes over (see its PASS_OVER), which
    // every orphanized inode meets.
    random::replay(t, &CASE, &ops(), Protocol::One, crate::random::PASS_OVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each step applies on a plain directory, as a shell would run it: a shape whose step
    /// fails (a name taken, a directory not empty) would change nothing and test nothing.
    #[test]
    fn every_step_of_every_shape_applies() {
        let dir = tempfile::tempdir().unwrap();
        for op in ops().iter().filter(|op| **op != Op::Snapshot) {
            op.apply(dir.path())
                .unwrap_or_else(|e| panic!("{op:?} fails: {e}"));
        }
    }

    #[test]
    fn shapes_have_distinct_directories() {
        let mut seen = std::collections::HashSet::new();
        assert!(SHAPES.iter().all(|shape| seen.insert(shape.dir)));
    }
}
