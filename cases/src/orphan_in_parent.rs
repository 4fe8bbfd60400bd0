//! orphan-in-parent: an incremental send whose parent holds an inode with no links, which the
//! sent snapshot holds with its names, sends it whole: data, xattrs, links.
//!
//! A read-only snapshot can be made writable (`btrfs property set ro false`), changed and made
//! read-only again. A file of it unlinked while a process holds it open stays in its tree as an
//! inode with no link, an orphan, until the last close. An incremental send then finds the
//! inode with no link on one side. Send used to fail there, or take the orphan for an inode
//! with names to remove; since the fix below it treats the inode as one deleted and created
//! anew (`changed_inode`'s new generation): nothing for the orphan, which the receiver never
//! had, and everything for the new one: create it, write its data, set every xattr
//! (`process_all_new_xattrs`), link every name. fstests' btrfs/278 makes its orphans in both
//! snapshots or in the sent one only; here the orphan is in the parent and the file in the sent
//! snapshot, which no run of the random case reached (docs/mutants-missed-linux-6.1-send-shard1.txt,
//! send.c:4903 and 6807). The file's data is inline (below 2 KiB), so no clone is involved:
//! a clone from the orphan fails every kernel tried, which is clone-from-orphan's bug.

use std::path::Path;

use sendtest::context::file_name;
use sendtest::prelude::*;

pub const CASE: Case = Case {
    name: "orphan-in-parent",
    groups: &["send", "orphan"],
    summary: "an incremental send whose parent holds an unlinked, open file that the sent snapshot has with its names",
    requires: &[],
    fix: Fix {
        commit: "9ed0a72e5b35",
        subject: "btrfs: send: fix failures when processing inodes with no links",
        fstests: Some("btrfs/278"),
        revert: None,
        proposed: None,
        applies_to: Component::Kernel,
    },
    ignore: &["ctime"],
    run,
};

/// The file: inline data, two names and two xattrs.
const DATA_LEN: usize = 1000;
const XATTRS: &[(&str, &str)] = &[("user.first", "1"), ("user.second", "two")];

fn run(t: &mut Ctx) -> Result<()> {
    let fs = t.scratch("source")?;
    let dest = t.scratch_to_receive("received")?;
    let source = t.create_subvolume(&fs.join("source"))?;
    std::fs::create_dir(source.join("d"))?;
    std::fs::write(source.join("other"), b"a file left alone\n")?;
    let file = source.join("file");
    std::fs::write(&file, sendtest::workload::pattern("file", 0, DATA_LEN))?;
    for (name, value) in XATTRS {
        sendtest::xattr::set(&file, name, value.as_bytes())?;
    }
    std::fs::hard_link(&file, source.join("d/file-too"))?;
    let first = t.snapshot(&source, &fs.join("first"))?;
    let second = t.snapshot(&source, &fs.join("second"))?;
    // The file becomes an orphan in the parent: open, then unlinked by both names.
    let _held = t.orphan_in(&first, &["file", "d/file-too"])?;

    let full = t.send(&first)?;
    let received = t.receive(&full, &dest, file_name(&first)?)?;
    t.compare(&first, &received)?;
    let stream = t.send_incremental(&second, &first)?;
    let received = t.receive(&stream, &dest, file_name(&second)?)?;
    t.compare(&second, &received)?;
    linked_twice(&received)
}

/// The received file's two names are one inode, as they are in the source.
fn linked_twice(received: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let one = std::fs::metadata(received.join("file"))?;
    let two = std::fs::metadata(received.join("d/file-too"))?;
    if one.ino() != two.ino() || one.nlink() != 2 {
        return Err(detected(format!(
            "the received file's two names are not one inode with two links: inodes {} and {}, {} links",
            one.ino(),
            two.ino(),
            one.nlink()
        )));
    }
    Ok(())
}
