//! hole-over-data: on a filesystem without `no-holes`, a hole punched into data, or left by a
//! file grown by truncate, reaches the receiver as a hole, not as the parent's old data.
//!
//! Without the `no-holes` feature (mkfs `-O ^no-holes`; a default before btrfs-progs 5.15, and
//! still on many filesystems made then), every hole of a file is an extent item of its own, a
//! regular extent at disk address 0. An incremental send asks of each extent of the sent
//! snapshot whether the parent has the same one there (`is_extent_unchanged`), and sends only
//! the changed ones. A hole item over what was data in the parent is changed: the parent's
//! extent there has a disk address. Send must then send the hole (zeroes for protocol 1), or
//! the receiver keeps the data the source punched out. The random case runs with `no-holes`,
//! where holes have no items, so its runs never asked that of a hole item: on
//! linux-source-6.1 the mutant that says "unchanged" for every hole item over a parent's extent
//! (send.c:6131, docs/mutants-missed-linux-6.1-send-shard1.txt) was missed.
//!
//! No kernel commit is its fix: it guards send's comparison of hole extents.

use anyhow::bail;
use sendtest::context::file_name;
use sendtest::prelude::*;
use sendtest::random::{Falloc, Op};

pub const CASE: Case = Case {
    name: "hole-over-data",
    groups: &["send", "hole"],
    summary:
        "without no-holes: holes punched into data, and a file grown by truncate, are sent as holes",
    requires: &[],
    fix: Fix {
        subject: "no single fix: it guards send's comparison of hole extents with the parent's",
        ..Fix::NONE_YET
    },
    // Protocol 1 sends a hole as zeroes: the received file has them written, not a hole.
    ignore: &["ctime", "layout"],
    run,
};

const KIB: u64 = 1024;

/// Explicit hole items: every hole of a file is an extent item.
const HOLES: ScratchSpec = ScratchSpec {
    size: sendtest::scratch::DEFAULT_SIZE,
    mkfs_args: &["-O", "^no-holes"],
    mount_options: "",
};

/// The parent: two files of data, written and synced as single extents.
fn before() -> Vec<Op> {
    ["middle", "start"]
        .into_iter()
        .map(|file| Op::Write {
            file: file.into(),
            offset: 0,
            len: 1024 * KIB,
            byte: b'd',
            direct: false,
        })
        .collect()
}

/// The sent snapshot: a hole punched in the middle of one file, at the start of the other,
/// which then shrinks and grows back (a hole item from its new end to the old one).
fn after() -> Vec<Op> {
    vec![
        Op::Fallocate {
            file: "middle".into(),
            offset: 256 * KIB,
            len: 256 * KIB,
            mode: Falloc::PunchHole,
        },
        Op::Fallocate {
            file: "start".into(),
            offset: 0,
            len: 128 * KIB,
            mode: Falloc::PunchHole,
        },
        Op::Truncate {
            file: "start".into(),
            size: 512 * KIB,
        },
        Op::Truncate {
            file: "start".into(),
            size: 1024 * KIB,
        },
    ]
}

fn run(t: &mut Ctx) -> Result<()> {
    let fs = t.scratch_with("source", HOLES)?;
    let dest = t.scratch_to_receive("received")?;
    let source = t.create_subvolume(&fs.join("source"))?;
    apply(t, &source, &before())?;
    t.commit_quickly(&source)?;
    let parent = t.snapshot(&source, &fs.join("parent"))?;
    apply(t, &source, &after())?;
    let sent = t.snapshot(&source, &fs.join("sent"))?;
    let (_, dump) = t.dump_tree(&sent)?;
    let hole_items = dump.matches("extent data disk byte 0 nr 0").count();
    t.note(&format!(
        "the sent snapshot has {hole_items} hole extent items"
    ));
    if hole_items < 3 {
        bail!("the sent snapshot has {hole_items} hole extent items, not 3: the filesystem has no-holes, so send sees no hole items");
    }

    let full = t.send(&parent)?;
    let received = t.receive(&full, &dest, file_name(&parent)?)?;
    t.compare(&parent, &received)?;
    let stream = t.send_incremental(&sent, &parent)?;
    let received = t.receive(&stream, &dest, file_name(&sent)?)?;
    t.compare(&sent, &received)
}

fn apply(t: &Ctx, dir: &std::path::Path, ops: &[Op]) -> Result<()> {
    for op in ops {
        t.note(&format!("in {}: {op}", dir.display()));
        op.apply(dir)?;
    }
    Ok(())
}
