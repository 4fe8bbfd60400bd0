//! The staged reshapes on real btrfs: each shape, made before a snapshot and reshaped after
//! it, makes the incremental stream do what the shape is for (moves through orphan names,
//! directories removed, moves under new directories: checked in `btrfs receive --dump`), and
//! the random chain sends, receives and compares the list of all seven. The reparent shape's
//! full stream names a path longer than the buffer send keeps inline for one.

mod support;

use sendtest::case::Case;
use sendtest::random::staged::{stage, SHAPES};
use sendtest::random::{replay, Op, Protocol};

/// Whether a dump line is `rename FROM dest=TO` with FROM and TO matching.
fn renamed(dump: &str, from: impl Fn(&str) -> bool, to: impl Fn(&str) -> bool) -> bool {
    dump.lines().any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.len() == 3
            && words[0] == "rename"
            && from(words[1])
            && words[2].strip_prefix("dest=").is_some_and(&to)
    })
}

/// An orphan name as send makes them: `o<inode>-<generation>-<n>`.
fn orphan(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.strip_prefix('o').is_some_and(|rest| {
        let parts: Vec<&str> = rest.split('-').collect();
        parts.len() == 3 && parts.iter().all(|p| p.parse::<u64>().is_ok())
    })
}

/// How many `clone` lines of `dump` take their data from a path ending in `source`.
fn clones_from(dump: &str, source: &str) -> usize {
    dump.lines()
        .filter(|l| l.split_whitespace().next() == Some("clone"))
        .filter(|l| {
            l.split_whitespace()
                .any(|w| w.strip_prefix("from=").is_some_and(|f| f.ends_with(source)))
        })
        .count()
}

/// What the incremental stream of `shape` must hold; `None` if it does.
fn missing(shape: &str, dump: &str) -> Option<&'static str> {
    let count = |command: &str| {
        dump.lines()
            .filter(|l| l.split_whitespace().next() == Some(command))
            .count()
    };
    let through_orphan = renamed(dump, orphan, |_| true) || renamed(dump, |_| true, orphan);
    let ok = match shape {
        "invert" | "reverse" | "exchange" | "reparent" => through_orphan,
        "remove-tree" => count("rmdir") >= 3 && count("unlink") >= 2,
        "move-out" => {
            through_orphan
                && count("rmdir") == 1
                && renamed(dump, |_| true, |t| t.ends_with("r0/b"))
        }
        // Made under an orphan name, a moved into it, then it takes its name.
        "into-new" => {
            renamed(dump, |f| f.ends_with("r0/a"), |t| t.ends_with("/a"))
                && renamed(dump, orphan, |t| t.ends_with("r0/n"))
                // big from the snapshot itself (its path there, under n), old from the
                // parent, where alone it is left (its path there, not under n).
                && clones_from(dump, "/r0/n/a/big") >= 1
                && clones_from(dump, "/r0/a/old") >= 1
        }
        _ => false,
    };
    (!ok).then_some(match shape {
        "invert" | "reverse" | "exchange" | "reparent" => "a rename through an orphan name",
        "remove-tree" => "three rmdirs and two unlinks",
        "move-out" => "a through an orphan name, b's move out of it, and one rmdir",
        "into-new" => {
            "n made under an orphan name, a moved into it, and clones of the copies from the \
             snapshot and from its parent"
        }
        _ => "a check for this shape",
    })
}

fn run(t: &mut sendtest::context::Ctx) -> anyhow::Result<()> {
    let fs = t.scratch("staged")?;
    let sh = t.sh();
    for shape in SHAPES {
        let vol = t.create_subvolume(&fs.join(format!("vol-{shape}")))?;
        let (before, after) = stage(shape, "r0");
        let mut snaps = Vec::new();
        for ops in [&before, &after] {
            for op in ops {
                op.apply(&vol)?;
            }
            let snap = fs.join(format!("{shape}-{}", snaps.len()));
            t.run(xshell::cmd!(sh, "btrfs subvolume snapshot -r {vol} {snap}"))?;
            snaps.push(snap);
        }
        let (parent, snap) = (&snaps[0], &snaps[1]);
        let stream = fs.join(format!("{shape}.stream"));
        t.run(xshell::cmd!(
            sh,
            "btrfs send -q -p {parent} -f {stream} {snap}"
        ))?;
        let dump = t
            .run(xshell::cmd!(sh, "btrfs receive --dump -f {stream}"))?
            .stdout;
        if let Some(what) = missing(shape, &dump) {
            anyhow::bail!("the {shape} shape's incremental stream has no {what}:\n{dump}");
        }
        if *shape == "reparent" {
            // The full send of what it made names a path longer than send keeps inline.
            let full = fs.join("reparent-full.stream");
            t.run(xshell::cmd!(sh, "btrfs send -q -f {full} {parent}"))?;
            let dump = t
                .run(xshell::cmd!(sh, "btrfs receive --dump -f {full}"))?
                .stdout;
            let long = format!("r0/a/{}", sendtest::random::staged::longest_name());
            if !dump.lines().any(|l| l.contains(&long)) {
                anyhow::bail!("the full stream of the reparent shape has no {long}:\n{dump}");
            }
        }
    }
    // All seven in one list, around one snapshot, sent, received and compared.
    let mut list = Vec::new();
    let mut after_all = Vec::new();
    for (k, shape) in SHAPES.iter().enumerate() {
        let (before, after) = stage(shape, &format!("r{k}"));
        list.extend(before);
        after_all.extend(after);
    }
    list.push(Op::Snapshot);
    list.extend(after_all);
    replay(t, &CASE, &list, Protocol::One, &[(".", "mtime")])
}

const CASE: Case = support::layout_free_case("staged-reshapes", run);

#[test]
fn each_staged_shape_reaches_the_incremental_stream_and_all_are_received_whole() {
    support::passes_on_loop(&CASE, "staged reshapes");
}

#[test]
fn orphan_names_are_told_from_others() {
    assert!(orphan("r0/o261-7-0"));
    assert!(!orphan("r0/a"));
    assert!(!orphan("o1-2"));
}

#[test]
fn clones_are_counted_by_their_source() {
    let dump = "clone ./s1/r0/n/d offset=0 len=65536 from=./s1/r0/a/old clone_offset=0\n\
                write ./s1/r0/n/e offset=0 len=3\n\
                clone ./s1/r0/n/c offset=0 len=65536 from=./s1/r0/n/a/big clone_offset=0\n";
    assert_eq!(clones_from(dump, "/r0/a/old"), 1);
    assert_eq!(clones_from(dump, "/r0/n/a/big"), 1);
    assert_eq!(clones_from(dump, "/r0/n/e"), 0);
}
