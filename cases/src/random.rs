//! random: seeded random operations in a subvolume, read-only snapshots at random points, and an
//! incremental send/receive chain, compared snapshot by snapshot.
//!
//! The seed cases guard bugs that are known. This one looks for those that are not, as fstests'
//! btrfs/007 does with fsstress, snapshots, send and fssum. The operations mix buffered and
//! direct writes of every size, fallocate and hole punching, truncation, reflinks, renames over
//! existing names, hard links, special files, xattrs and metadata changes, on a small pool of
//! names so that they collide. The first snapshot is sent in full, each later one incrementally
//! against the one before, and every received snapshot is compared with its source. When one
//! differs, or a send or receive fails, the operations shrink to a list from which nothing can
//! be removed; the results keep it as the seed with the indices of the operations, and as a
//! shell script that reproduces the failure by hand.
//!
//! `--seed S` replays one seed; `--ops N` and `--snapshots N` size the list; `--duration` keeps
//! trying new seeds until the time is up.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sendtest::prelude::*;
use sendtest::random::{self, ops, Chains, Checked};

pub const CASE: Case = Case {
    name: "random",
    groups: &["random", "send"],
    summary:
        "seeded random operations and an incremental send chain; a failure shrinks to a script",
    fix: Fix {
        commit: "none",
        subject: "no single fix: it looks for send/receive bugs that are not known yet",
        fstests: Some("btrfs/007"),
        revert: None,
    },
    // Send protocol 1 carries data and size, not where holes and preallocated extents lie:
    // the received layout of a file that was fallocated or punched differs, its bytes do not.
    ignore: &["ctime", "layout"],
    run,
};

/// Differences seen on every kernel tried (6.18 with btrfs-progs 6.2), left for a later look
/// rather than reported by every seed: after an incremental receive, the root directory of the
/// received snapshot can have the mtime of a directory changed below it, when its own did not
/// change in the source.
const KNOWN: &[(&str, &str)] = &[(".", "mtime")];

const DEFAULT_OPS: usize = 200;
const DEFAULT_SNAPSHOTS: usize = 3;

fn run(t: &mut Ctx) -> Result<()> {
    let knobs = t.random_knobs();
    let count = knobs.ops.unwrap_or(DEFAULT_OPS);
    let snapshots = knobs.snapshots.unwrap_or(DEFAULT_SNAPSHOTS);
    let source = t.scratch("source")?;
    let dest = t.scratch("received")?;
    let soak = t.requested_duration();
    let first = knobs.seed.unwrap_or_else(seed_from_clock);
    let mut chains = Chains::new(t, &source, &dest, CASE.ignore, KNOWN)?;
    chains.break_received = t.tampering();
    let started = Instant::now();
    let mut total = Checked::default();
    let mut seeds = 0u64;
    loop {
        let seed = first.wrapping_add(seeds);
        let list = ops::generate(seed, count, snapshots);
        seeds += 1;
        match chains.check(&list)? {
            Ok(checked) => {
                total.ops += checked.ops;
                total.snapshots += checked.snapshots;
                total.sends += checked.sends;
            }
            Err(failure) => {
                return Err(random::shrink_and_keep(&mut chains, seed, &list, &failure)?)
            }
        }
        let more = knobs.seed.is_none() && soak.is_some_and(|d| started.elapsed() < d);
        if !more {
            break;
        }
    }
    let line = format!(
        "random: {seeds} seed(s) from {first}: {} operations, {} snapshots, {} sends, all received trees matched",
        total.ops, total.snapshots, total.sends
    );
    t.note(&line);
    println!("{line}");
    Ok(())
}

fn seed_from_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() ^ u64::from(d.subsec_nanos()))
}
