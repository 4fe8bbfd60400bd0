//! receive-write-after-rename: btrfs receive writes a new file's data into another file that
//! had the same path earlier in the stream.
//!
//! btrfs-progs' receive keeps the file of its last write open, by path, and reuses it while
//! the stream writes to the same path; only a write to another path closes it. A rename or an
//! unlink does not, though either can make the path name another inode. An incremental send
//! makes such a stream when a changed file's directory was renamed and a new directory and
//! file took the old names: send writes the changed file at its old path (its directory is a
//! later inode, renamed after it), renames the directory, creates the new file at that path
//! and writes it. Receive writes the new file's data into the old file, through the descriptor
//! it kept, and the new file is received empty. Nothing fails and nothing is logged. A
//! rotation of directories (`mv logs logs.1; mkdir logs`) between snapshots is enough.
//!
//! The random case found it (seed 1898057522, with the operations that reshape the tree, shrunk
//! from 214 operations to 7); this is its shape by hand, on loop devices with btrfs-progs 6.2
//! and 6.19 on kernel 6.18. It is btrfs-progs' bug, not send's: the stream is right, and
//! `btrfs receive --dump` shows the second write at the path the new file has by then. The
//! proposed fix closes the kept file before a rename or unlink; `sendtest validate
//! receive-write-after-rename --btrfs-progs-tree TREE` builds the tree as it is and with the
//! fix, and runs the case with each.

use sendtest::prelude::*;
use sendtest::random::{self, Op, Protocol};

pub const CASE: Case = Case {
    name: "receive-write-after-rename",
    groups: &["unfixed", "receive"],
    summary: "receive writes a file's data into the file its path named before a rename",
    requires: &[],
    fix: Fix {
        proposed: Some(include_str!("receive_write_after_rename.progs-fix.patch")),
        applies_to: Component::BtrfsProgs,
        ..Fix::NONE_YET
    },
    ignore: &["ctime", "layout"],
    run,
};

fn write(file: &str, offset: u64, byte: u8) -> Op {
    Op::Write {
        file: file.into(),
        offset,
        len: 1,
        byte,
        direct: false,
    }
}

fn rename(from: &str, to: &str) -> Op {
    Op::Rename {
        from: from.into(),
        to: to.into(),
    }
}

fn run(t: &mut Ctx) -> Result<()> {
    let ops = [
        // A file (the lower inode), then its directory.
        write("x", 0, b'a'),
        Op::Mkdir { path: "d".into() },
        rename("x", "d/x"),
        Op::Snapshot,
        // The file changes, its directory is renamed, and a new directory and file take the
        // old names.
        write("d/x", 1, b'b'),
        rename("d", "e"),
        Op::Mkdir { path: "d".into() },
        write("d/x", 0, b'c'),
    ];
    random::replay(t, &CASE, &ops, Protocol::One, &[(".", "mtime")])
}
