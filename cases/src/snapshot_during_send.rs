//! snapshot-during-send: snapshots of a snapshot, committed while that snapshot is being sent.
//!
//! Send walks the commit root of the snapshot it sends, keeping a reference to the tree block it
//! is reading. A snapshot of that same snapshot COWs its root block, and the commit frees the old
//! one; once unpinned, another tree can be given the block. If send still reads it, it reads
//! another tree's items: send fails (ENOENT, EIO) or, worse, sends wrong data. Kernel commit
//! d96b34248c2f ("btrfs: make send work with concurrent block group relocation") made send clone
//! the commit-root leaf each search ends on, before it drops `commit_root_sem`, so a freed and
//! reused block cannot change under it. fstests' btrfs/036 snapshots during a send but only
//! checks send's exit status; this case receives the stream and compares every attribute.
//!
//! To hit the window: the sent subvolume's tree is a single leaf, since a snapshot commit COWs
//! (and frees) only the root block; send writes into a pipe read slowly, so it blocks while it
//! holds the leaf; and each loop commits a new snapshot of it and churns metadata elsewhere, so
//! freed blocks are soon handed out again. Three things were needed under TCG on the reverted
//! 6.1 kernel: the loop uses ioctls, not btrfs-progs (a process per snapshot allowed 94 snapshots
//! in a 21 s send); the filesystem is 256 MiB (on 4 GiB, 675–866 snapshots per send caught
//! nothing in 3 runs; on 256 MiB, about 400 caught the bug in 3 of 3); and the pipe is drained
//! by the loop's rounds, not by the clock (drained by the clock, a loaded machine's slower loop
//! committed too few snapshots per send: 0 of 3 runs caught the bug beside a kernel build).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::bail;
use sendtest::prelude::*;
use sendtest::throttle::{Pace, Throttle};

pub const CASE: Case = Case {
    name: "snapshot-during-send",
    groups: &["auto", "send", "race", "stress"],
    summary: "snapshots of a snapshot, committed while that snapshot is being sent",
    requires: &[],
    fix: Fix {
        commit: "d96b34248c2f",
        subject: "btrfs: make send work with concurrent block group relocation",
        fstests: Some("btrfs/036"),
        // finish_need_commit_sem_search() returns without cloning the leaf, for both of its
        // callers (btrfs_search_slot() and btrfs_next_old_leaf()).
        revert: Some(include_str!("snapshot_during_send.revert.patch")),
        proposed: None,
        applies_to: Component::Kernel,
    },
    ignore: &["ctime"],
    run,
};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Small, so that freed metadata blocks are soon reused.
const SOURCE_FS: ScratchSpec = ScratchSpec {
    size: 256 * MIB,
    mkfs_args: &[],
    mount_options: "",
};
/// Rounds go on until this much time has passed (`--duration` overrides it).
const DEFAULT_DURATION: Duration = Duration::from_secs(20);
/// The drained stream: 64 KiB per 15 rounds of the loop, so a send of the ~4.2 MiB tree holds
/// its leaf for about 1000 snapshot commits however fast the machine is. (Drained by the clock,
/// 64 KiB every 0.3 s, a send saw 730–988 commits on an idle machine and too few to hit on a
/// loaded one.)
const THROTTLE: Throttle = Throttle {
    chunk: 64 * 1024,
    pace: Pace::Rounds(15),
};
/// Snapshots kept while sending; older ones are deleted, so the work per commit stays bounded.
const KEEP_SNAPSHOTS: usize = 4;

/// Eight files written and fsynced one by one: one leaf of a few dozen items.
const FILES: &[FileSpec] = &[
    FileSpec {
        name: "a",
        ranges: &[(0, 512 * KIB)],
        size: 512 * KIB,
        xattrs: &[],
    },
    FileSpec {
        name: "b",
        ranges: &[(0, 512 * KIB)],
        size: 512 * KIB,
        xattrs: &[],
    },
    FileSpec {
        name: "c",
        ranges: &[(0, 512 * KIB)],
        size: 512 * KIB,
        xattrs: &[],
    },
    FileSpec {
        name: "d",
        ranges: &[(0, 512 * KIB)],
        size: 512 * KIB,
        xattrs: &[("user.d", "dee")],
    },
    FileSpec {
        name: "e",
        ranges: &[(0, 512 * KIB)],
        size: 512 * KIB,
        xattrs: &[],
    },
    FileSpec {
        name: "f",
        ranges: &[(0, 512 * KIB)],
        size: 512 * KIB,
        xattrs: &[],
    },
    FileSpec {
        name: "g",
        ranges: &[(0, 256 * KIB), (MIB, 256 * KIB)],
        size: 2 * MIB,
        xattrs: &[],
    },
    FileSpec {
        name: "h",
        ranges: &[(0, 512 * KIB)],
        size: 512 * KIB,
        xattrs: &[],
    },
];

fn run(t: &mut Ctx) -> Result<()> {
    let fs = t.scratch_with("source", SOURCE_FS)?;
    let source = t.create_subvolume(&fs.join("source"))?;
    t.write_files(&source, FILES, Writes::Fsynced)?;
    let churn = t.create_subvolume(&fs.join("churn"))?;
    let received = t.scratch_to_receive("received")?;
    let deadline = Instant::now() + t.duration(DEFAULT_DURATION);

    for round in 1.. {
        let name = format!("sent-{round}");
        let sent = t.snapshot(&source, &fs.join(&name))?;
        let top = t.tree_top(&sent)?;
        if top.level != 0 {
            bail!("{name}'s tree has a level-{} root, not a single leaf: the race needs send to hold the root", top.level);
        }
        t.note(&format!(
            "round {round}: {name} is one leaf of {} items at {}",
            top.items, top.bytenr
        ));

        let mut send = t.send_throttled(&sent, None, THROTTLE)?;
        let mut snapshots = VecDeque::new();
        let mut taken = 0;
        while t.sending(&mut send) {
            taken += 1;
            snapshots
                .push_back(t.snapshot_quickly(&sent, &fs.join(format!("snap-{round}-{taken}")))?);
            if snapshots.len() > KEEP_SNAPSHOTS {
                t.delete_subvolume_quickly(&snapshots.pop_front().expect("more than kept"))?;
            }
            t.churn(&churn, taken)?;
            t.commit_quickly(&fs)?;
        }
        let stream = t.finish_send(send)?;
        t.note(&format!(
            "round {round}: {taken} snapshots of {name} committed while it was sent"
        ));
        let got = t.receive(&stream, &received, &name)?;
        t.compare(&sent, &got)?;

        for snapshot in snapshots {
            t.delete_subvolume_quickly(&snapshot)?;
        }
        t.delete_subvolume(&sent)?;
        if Instant::now() >= deadline {
            return Ok(());
        }
    }
    unreachable!("the rounds end at the deadline")
}
