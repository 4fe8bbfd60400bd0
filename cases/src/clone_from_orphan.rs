//! clone-from-orphan: a send fails when an inode with no links shares an extent with a file it
//! sends.
//!
//! A read-only snapshot can be made writable (`btrfs property set ro false`), changed and made
//! read-only again. A file of it unlinked while a process holds it open stays in its tree as an
//! inode with no link, an orphan, until the last close. fstests' btrfs/278 sends such orphans
//! (the fix "btrfs: send: fix failures when processing inodes with no links", 9ed0a72e5b35),
//! but none of its orphans has data. Send picks an orphan as a clone source like any other
//! inode (`find_extent_clone`), then finds no path for it, and the whole send fails with
//! ENOENT. A full send hits it when the orphan shares an extent with a file of a higher inode
//! number, such as a reflinked copy; an incremental send, when its parent holds the orphan and
//! the sent snapshot the same inode with its names (they share every extent). The case has
//! both: a file and its reflinked copy are snapshotted twice, and the file becomes an orphan in
//! the first snapshot, which is sent in full and then as the parent of the second.
//!
//! Found while writing orphan-in-parent (which keeps its file's data inline, where no clone is
//! possible). Kernels 6.1 and 6.18 fail it, so it is in the group `unfixed`;
//! docs/repro/send-clone-from-orphan.sh shows both sends failing without sendtest. The proposed fix skips a clone source with no links;
//! `sendtest validate clone-from-orphan --kernel-tree TREE` builds the tree as it is and with
//! the fix, and runs the case with each.

use std::fs::File;

use sendtest::context::file_name;
use sendtest::prelude::*;

pub const CASE: Case = Case {
    name: "clone-from-orphan",
    groups: &["unfixed", "send"],
    summary: "send takes an inode with no links (unlinked while open in a snapshot made writable) as a clone source, and fails with ENOENT",
    requires: &[],
    fix: Fix {
        proposed: Some(include_str!("clone_from_orphan.fix.patch")),
        ..Fix::NONE_YET
    },
    ignore: &["ctime"],
    run,
};

/// The file: more than an inline extent, so that its copy shares it.
const DATA_LEN: usize = 3 * 4096 + 100;

fn run(t: &mut Ctx) -> Result<()> {
    let fs = t.scratch("source")?;
    let dest = t.scratch_to_receive("received")?;
    let source = t.create_subvolume(&fs.join("source"))?;
    let file = source.join("file");
    std::fs::write(&file, sendtest::workload::pattern("file", 0, DATA_LEN))?;
    // A later inode sharing the file's extent: the orphan is its clone source in a full send.
    let copy = source.join("copy");
    File::create(&copy)?;
    sendtest::file_ioctl::clone_range(&file, 0, &copy, 0, 0)?;
    let first = t.snapshot(&source, &fs.join("first"))?;
    let second = t.snapshot(&source, &fs.join("second"))?;
    let _held = t.orphan_in(&first, &["file"])?;

    let full = t.send(&first)?;
    let received = t.receive(&full, &dest, file_name(&first)?)?;
    t.compare(&first, &received)?;
    let stream = t.send_incremental(&second, &first)?;
    let received = t.receive(&stream, &dest, file_name(&second)?)?;
    t.compare(&second, &received)
}
