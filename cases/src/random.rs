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

use sendtest::prelude::*;
use sendtest::random::{self, Setup};

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

/// A send bug that most seeds would report, hiding every other finding: an incremental stream
/// creates new inodes under orphan names in the subvolume's root and renames them into place,
/// but sends no utimes for the root when the root itself did not change, so the received root
/// keeps the time of the receive (6.18; `btrfs receive --dump` of `mkdir d0`, snapshot,
/// `echo -n x > d0/f4`, snapshot shows no `utimes` for the root).
pub const KNOWN: &[(&str, &str)] = &[(".", "mtime")];

fn run(t: &mut Ctx) -> Result<()> {
    random::run_seeds(
        t,
        &Setup {
            ignore: CASE.ignore,
            known: KNOWN,
            concurrent: false,
        },
    )
}
