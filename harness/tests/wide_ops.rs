//! The wider generator's operations on real btrfs: a list of them makes what they are meant to
//! (extended refs, a subvolume tree with nodes, an orphan inode in a snapshot, capabilities and
//! ACLs: checked with dump-tree), and the random chain sends, receives and compares it, with a
//! snapshot flipped read-write, changed and flipped back between. Numbered lines written on an
//! lzo filesystem make compressed extents of several sectors, received whole by
//! `--force-decompress`.

mod support;

use sendtest::case::Case;
use sendtest::context::{CaseOptions, RandomKnobs};
use sendtest::random::wide::Wide;
use sendtest::random::{replay, Op, Protocol, Receive};
use sendtest::runner::Outcome;
use sendtest::scratch::ScratchSpec;

fn write(file: &str) -> Op {
    Op::Write {
        file: file.into(),
        offset: 0,
        len: 5000,
        byte: b'w',
        direct: false,
    }
}

fn list() -> Vec<Op> {
    let mut ops = vec![
        write("f0"),
        write("f1"),
        write("f2"),
        write("f3"),
        Op::Mkdir { path: "d0".into() },
        Op::Mkdir { path: "d1".into() },
        Op::Wide(Wide::SetCap { path: "f0".into() }),
        Op::Snapshot,
        // The snapshot changed after it was taken: sent, and the next one's parent, as it is.
        Op::Wide(Wide::FlipSnapshot { touch: true }),
        // A chown clears the capability; it is set again, so the received file must have it
        // after the receiver's chown too.
        Op::Chown {
            path: "f0".into(),
            uid: 1000,
            gid: 100,
        },
        Op::Wide(Wide::SetCap { path: "f0".into() }),
        Op::Wide(Wide::LinkMany {
            file: "f1".into(),
            dir: "d0".into(),
            count: 1500,
        }),
        Op::Wide(Wide::FillDir {
            dir: "d1".into(),
            count: 2500,
        }),
        Op::Wide(Wide::SetAcl {
            path: "d0".into(),
            default: true,
        }),
        Op::Wide(Wide::SetAcl {
            path: "f2".into(),
            default: false,
        }),
        Op::Wide(Wide::UnlinkHeld { path: "f3".into() }),
    ];
    ops.push(Op::Snapshot);
    ops
}

/// Applies the list in a subvolume, snapshots with the unlinked file still open, and checks
/// the snapshot's tree; then the chain with protocol 1.
fn run(t: &mut sendtest::context::Ctx) -> anyhow::Result<()> {
    let fs = t.scratch("layout")?;
    let vol = t.create_subvolume(&fs.join("vol"))?;
    let mut held = Vec::new();
    for op in list().iter().filter(|o| **o != Op::Snapshot) {
        if let Op::Wide(wide) = op {
            held.extend(wide.hold(&vol));
        }
        op.apply(&vol)?;
    }
    anyhow::ensure!(held.len() == 1, "f3 was not held open");
    let snap = fs.join("snap");
    let sh = t.sh();
    t.run(xshell::cmd!(sh, "btrfs subvolume snapshot -r {vol} {snap}"))?;
    let (_, dump) = t.dump_tree(&snap)?;
    for (what, expected) in [
        ("extended refs", "INODE_EXTREF"),
        ("an orphan item", "ORPHAN_ITEM"),
        ("a capability", "name: security.capability"),
        ("a default ACL", "name: system.posix_acl_default"),
        ("an access ACL", "name: system.posix_acl_access"),
    ] {
        anyhow::ensure!(
            dump.contains(expected),
            "the snapshot has no {what} ({expected})"
        );
    }
    let top = t.tree_top(&snap)?;
    anyhow::ensure!(top.level >= 1, "the snapshot's tree is one leaf: {top:?}");
    drop(held);
    replay(t, &CASE, &list(), Protocol::One, &[(".", "mtime")])
}

const CASE: Case = support::layout_free_case("wide-ops", run);

#[test]
fn the_wide_operations_make_what_they_mean_and_are_sent_and_received_whole() {
    support::passes_on_loop(&CASE, "wide operations");
}

fn text() -> Vec<Op> {
    vec![
        Op::Wide(Wide::WriteText {
            file: "f0".into(),
            offset: 4096,
            len: 300 << 10,
        }),
        Op::Snapshot,
        Op::Wide(Wide::WriteText {
            file: "f0".into(),
            offset: 100_000,
            len: 64 << 10,
        }),
    ]
}

/// The stored sizes of the lzo-compressed extents that `dump` (of `dump-tree`) lists.
fn lzo_extents(dump: &str) -> Vec<u64> {
    let mut stored = Vec::new();
    let mut disk_nr: Option<u64> = None;
    for line in dump.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("extent data disk byte ") {
            disk_nr = rest.split(" nr ").nth(1).and_then(|n| n.parse().ok());
        } else if line.starts_with("extent compression 2") {
            stored.extend(disk_nr.take());
        }
    }
    stored
}

/// Writes numbered lines on an lzo filesystem and checks that they make compressed extents of
/// several sectors; then the chain with protocol 2 (received as the options say).
fn run_text(t: &mut sendtest::context::Ctx) -> anyhow::Result<()> {
    let spec = ScratchSpec {
        mount_options: "compress=lzo",
        ..ScratchSpec::default()
    };
    let fs = t.scratch_with("lzo", spec)?;
    let vol = t.create_subvolume(&fs.join("vol"))?;
    text()[0].apply(&vol)?;
    let snap = fs.join("snap");
    let sh = t.sh();
    t.run(xshell::cmd!(sh, "btrfs subvolume snapshot -r {vol} {snap}"))?;
    let (_, dump) = t.dump_tree(&snap)?;
    let stored = lzo_extents(&dump);
    anyhow::ensure!(
        stored.len() >= 2 && stored.iter().all(|n| *n > 4096),
        "lzo extents of several sectors each, stored sizes {stored:?}"
    );
    replay(
        t,
        &TEXT,
        &text(),
        Protocol::TwoCompressed,
        &[(".", "mtime")],
    )
}

const TEXT: Case = support::test_case("write-text", run_text);

#[test]
fn numbered_lines_compress_to_several_sectors_and_are_received_whole_when_decompressed() {
    if !sendtest::preflight::loopback_or_skip("write-text") {
        return;
    }
    let options = CaseOptions {
        random: RandomKnobs {
            receive: Some(Receive::ForceDecompress),
            ..RandomKnobs::default()
        },
        ..CaseOptions::default()
    };
    let (result, results) = support::run_loop(&TEXT, options);
    assert_eq!(result.outcome, Outcome::Passed, "{:?}", result.outcome);
    let log = std::fs::read_to_string(result.dir.join("commands.log")).unwrap();
    assert!(log.contains("receive -q --force-decompress"), "{log}");
    drop(results);
}
