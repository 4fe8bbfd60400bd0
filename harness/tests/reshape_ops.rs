//! The operations that reshape the tree on real btrfs: between two snapshots, a directory
//! removed whole, a directory and its child swapped, and a directory moved under a new one of
//! its name make the incremental stream remove directories and move them through orphan names
//! (what `can_rmdir` and the delayed directory moves of send handle: checked in `btrfs receive
//! --dump`), and the random chain sends, receives and compares the list.

mod support;

use sendtest::case::Case;
use sendtest::random::reshape::Reshape;
use sendtest::random::{replay, Op, Protocol};

fn write(file: &str) -> Op {
    Op::Write {
        file: file.into(),
        offset: 0,
        len: 5000,
        byte: b'r',
        direct: false,
    }
}

fn mkdir(path: &str) -> Op {
    Op::Mkdir { path: path.into() }
}

fn list() -> Vec<Op> {
    vec![
        mkdir("d0"),
        mkdir("d0/e0"),
        write("d0/f4"),
        write("d0/e0/f7"),
        mkdir("d1"),
        mkdir("d1/e1"),
        write("d1/e1/f8"),
        mkdir("d2"),
        mkdir("d2/e2"),
        write("d2/f9"),
        Op::Snapshot,
        Op::Reshape(Reshape::RemoveTree { dir: "d1".into() }),
        Op::Reshape(Reshape::Invert {
            parent: "d0".into(),
            child: "d0/e0".into(),
        }),
        Op::Reshape(Reshape::Reparent { dir: "d2".into() }),
        Op::Snapshot,
    ]
}

/// Applies the list with its two snapshots, checks what the incremental stream does, then runs
/// the chain with protocol 1.
fn run(t: &mut sendtest::context::Ctx) -> anyhow::Result<()> {
    let fs = t.scratch("reshape")?;
    let vol = t.create_subvolume(&fs.join("vol"))?;
    let sh = t.sh();
    let mut snaps = Vec::new();
    for op in list() {
        if op == Op::Snapshot {
            let snap = fs.join(format!("snap{}", snaps.len()));
            t.run(xshell::cmd!(sh, "btrfs subvolume snapshot -r {vol} {snap}"))?;
            snaps.push(snap);
        } else {
            op.apply(&vol)?;
        }
    }
    let (parent, snap) = (&snaps[0], &snaps[1]);
    let stream = fs.join("stream");
    t.run(xshell::cmd!(
        sh,
        "btrfs send -q -p {parent} -f {stream} {snap}"
    ))?;
    let dump = t
        .run(xshell::cmd!(sh, "btrfs receive --dump -f {stream}"))?
        .stdout;
    let has = |command: &str, path: &str| {
        dump.lines().any(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some(command) && words.next().is_some_and(|p| p.ends_with(path))
        })
    };
    // d1 and d1/e1 go, through orphan names (their entries are later inodes).
    let rmdirs = dump.lines().filter(|l| l.starts_with("rmdir")).count();
    anyhow::ensure!(
        has("unlink", "/f8") && rmdirs >= 2,
        "removing d1 whole sent no unlink of its file or {rmdirs} rmdir(s) of its directories:\n{dump}"
    );
    // A rename from `from` (a path ending so) to `to`.
    let renamed = |from: &str, to: &str| {
        dump.lines().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.len() == 3
                && words[0] == "rename"
                && words[1].ends_with(from)
                && words[2]
                    .strip_prefix("dest=")
                    .is_some_and(|d| d.ends_with(to))
        })
    };
    // The swap: d0 goes to an orphan name first (its new parent, e0, is a later inode), then
    // e0 comes out from under it to be d0, then the orphan goes under e0.
    anyhow::ensure!(
        renamed("/e0", "/d0") && renamed("/d0", "-0") && renamed("-0", "/d0/e0"),
        "the swap of d0 and d0/e0 did not go through an orphan name:\n{dump}"
    );
    // The new d2 is made under an orphan name, the old one moved under it, and it takes its
    // name.
    anyhow::ensure!(
        renamed("/d2", "/old") && renamed("-0", "/d2"),
        "the move of d2 under a new d2 is not in the stream:\n{dump}"
    );
    replay(t, &CASE, &list(), Protocol::One, &[(".", "mtime")])
}

const CASE: Case = support::layout_free_case("reshape-ops", run);

#[test]
fn the_reshaping_operations_make_send_remove_and_move_directories_and_are_received_whole() {
    support::passes_on_loop(&CASE, "reshaping operations");
}
