//! inode-number-reuse: a removed directory's inode number taken by a new one after a remount,
//! and a delayed move out of the old directory.
//!
//! A subvolume gives out inode numbers from one past the highest it holds, and works that out
//! again at each mount; so after the inodes with the highest numbers are deleted and the
//! filesystem is mounted again, their numbers are reused, with new generations. Send tells an
//! inode by number and generation, but some of its lookups go by number alone. fstests'
//! btrfs/133 and 134 remount between snapshots for some of them; no run of the random case
//! remounts. Here a directory `x` waits to move (under `y`, renamed and later), and the
//! directory it leaves, the old `d`, was removed and its number given to a new `d`.
//!
//! The bug: when send applies the delayed move (`apply_dir_move`), it updates the times of the
//! directories `x` left and entered, and skips one that is gone from the sent snapshot, but
//! looks it up by number alone. It finds the new `d`, and caches the old `d`'s utimes, which
//! goes out after the old `d` was removed under its orphan name: the receive fails with
//! `ERROR: utimes o261-7-0 failed: No such file or directory`. Kernels that send a directory's
//! utimes at once (linux-source-6.1) pass; 6.12 and 6.18, which cache them, fail. So the case is
//! in the group `unfixed`, and in `after-6.1`, which keeps it out of the validation on
//! linux-source-6.1; its proposed fix, against linux-source-6.12, compares the generations:
//! `sendtest validate inode-number-reuse --kernel-tree linux-source-6.12`.
//! docs/repro/send-utimes-reused-dir.sh shows it without sendtest.
//!
//! The case also keeps a move that `wait_for_dest_dir_move` delays through a reused number:
//! `c` moves into the new `d` under the name `x` had in the old one. On linux-source-6.1 it
//! catches the mutant that returns 0 from there (send.c:3600).
//!
//! The inode numbers are made in the order the delay needs: `x` (257), `c` (259), `y` (260),
//! and the old `d` last (261), so that the new `d` gets its number.

use sendtest::context::file_name;
use sendtest::prelude::*;

pub const CASE: Case = Case {
    name: "inode-number-reuse",
    groups: &["unfixed", "send", "rename", "after-6.1"],
    summary: "send caches the utimes of a removed directory whose inode number a new one took, and sends it after the rmdir",
    requires: &[],
    fix: Fix {
        fstests: Some("btrfs/133"),
        proposed: Some(include_str!("inode_number_reuse.fix.patch")),
        ..Fix::NONE_YET
    },
    // The root's mtime: the send bug the random case passes over (see its PASS_OVER).
    ignore: &["ctime", ".:mtime"],
    run,
};

fn run(t: &mut Ctx) -> Result<()> {
    let fs = t.scratch("source")?;
    let dest = t.scratch_to_receive("received")?;
    let source = t.create_subvolume(&fs.join("source"))?;
    let at = |name: &str| source.join(name);
    // In this order, for the inode numbers 257 to 261.
    std::fs::create_dir(at("x"))?;
    std::fs::write(at("x/f"), b"in x\n")?;
    std::fs::create_dir(at("c"))?;
    std::fs::create_dir(at("y"))?;
    std::fs::create_dir(at("d"))?;
    std::fs::rename(at("x"), at("d/x"))?;
    let parent = t.snapshot(&source, &fs.join("parent"))?;

    std::fs::rename(at("y"), at("y2"))?;
    std::fs::rename(at("d/x"), at("y2/x"))?;
    t.remake_dir_with_its_number(&at("d"))?;
    std::fs::rename(at("c"), at("d/x"))?;
    let sent = t.snapshot(&source, &fs.join("sent"))?;

    for (snapshot, parent) in [(&parent, None), (&sent, Some(&parent))] {
        let stream = match parent {
            None => t.send(snapshot)?,
            Some(parent) => t.send_incremental(snapshot, parent)?,
        };
        let received = t.receive(&stream, &dest, file_name(snapshot)?)?;
        t.compare(snapshot, &received)?;
    }
    Ok(())
}
