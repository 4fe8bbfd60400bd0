//! ro-flip-with-delalloc: data still in the page cache when a subvolume turns read-only.
//!
//! A buffered write leaves its data as delalloc: in the page cache, with no extent on disk yet.
//! If the subvolume is then set read-only and sent, send reads the on-disk extents only, so
//! without a flush it sees files with a size but no data, and the received files come out empty
//! (all holes). The fix, "Btrfs: send, flush delalloc in order to avoid data loss" (kernel commit
//! 9f89d5de8631), makes send flush delalloc of the roots it reads before it starts. fstests'
//! btrfs/186 covers one 108 KiB file; this case writes several, below a page, around the 128 KiB
//! extent boundary, multi-MiB, with holes and with xattrs, and compares every attribute.

use sendtest::prelude::*;

pub const CASE: Case = Case {
    name: "ro-flip-with-delalloc",
    groups: &["auto", "quick", "send", "delalloc"],
    summary: "send of a subvolume set read-only while its writes are still delalloc",
    requires: &[],
    fix: Fix {
        commit: "9f89d5de8631",
        subject: "Btrfs: send, flush delalloc in order to avoid data loss",
        fstests: Some("btrfs/186"),
        // Drops the flush_delalloc_roots() call from btrfs_ioctl_send().
        revert: Some(include_str!("ro_flip_with_delalloc.revert.patch")),
        proposed: None,
        applies_to: Component::Kernel,
    },
    ignore: &["ctime"],
    run,
};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

const FILES: &[FileSpec] = &[
    // btrfs/186's file.
    FileSpec {
        name: "foo",
        ranges: &[(0, 108 * KIB)],
        size: 108 * KIB,
        xattrs: &[],
    },
    // Below a page: may become an inline extent.
    FileSpec {
        name: "tiny",
        ranges: &[(0, 1000)],
        size: 1000,
        xattrs: &[("user.origin", "sendtest")],
    },
    // Around the 128 KiB maximum size of a compressed extent and of a send write.
    FileSpec {
        name: "below-128k",
        ranges: &[(0, 128 * KIB - 1)],
        size: 128 * KIB - 1,
        xattrs: &[],
    },
    FileSpec {
        name: "at-128k",
        ranges: &[(0, 128 * KIB)],
        size: 128 * KIB,
        xattrs: &[],
    },
    FileSpec {
        name: "above-128k",
        ranges: &[(0, 128 * KIB + 1)],
        size: 128 * KIB + 1,
        xattrs: &[],
    },
    FileSpec {
        name: "multi-mib",
        ranges: &[(0, 5 * MIB + 3 * KIB)],
        size: 5 * MIB + 3 * KIB,
        xattrs: &[],
    },
    // Data, a hole, unaligned data, and a hole to the end.
    FileSpec {
        name: "sparse",
        ranges: &[(0, 64 * KIB), (MIB + 100, 10 * KIB)],
        size: 3 * MIB,
        xattrs: &[("user.note", "holes at 64K-1M and after 1M+10K")],
    },
];

fn run(t: &mut Ctx) -> Result<()> {
    let fs = t.scratch("source")?;
    let subvol = t.create_subvolume(&fs.join("data"))?;
    t.write_files(&subvol, FILES, Writes::Buffered)?;
    t.set_readonly(&subvol)?;
    let received = t.send_receive(&subvol)?;
    t.compare(&subvol, &received)
}
