//! random-concurrent: the random case's chain, while another subvolume of the same filesystem
//! changes under it.
//!
//! A sequential chain sends snapshots of a filesystem that is otherwise quiet. Send's bugs have
//! more often been races: a commit, a snapshot or a relocation while send walks its commit
//! roots (snapshot-during-send is one). Here, while each chain's snapshots are sent, a thread
//! runs random operations of its own in a sibling subvolume, and every 200 of them a balance of
//! the data and metadata block groups up to 90% full, while the filesystem is less than half
//! full. The snapshots being sent must still arrive exactly as they are. A failure shrinks like
//! the random case's, though the noise around it makes it less certain to repeat.

use sendtest::prelude::*;
use sendtest::random::{self, Setup};

pub const CASE: Case = Case {
    name: "random-concurrent",
    groups: &["random", "send", "race"],
    summary: "the random chain, with operations and balance in another subvolume during the sends",
    requires: &[Require::SendProtocol(2)],
    fix: Fix {
        commit: "none",
        subject: "no single fix: it looks for send races that are not known yet",
        fstests: Some("btrfs/007"),
        revert: None,
        proposed: None,
        applies_to: Component::Kernel,
    },
    ignore: &["ctime", "layout"],
    run,
};

fn run(t: &mut Ctx) -> Result<()> {
    random::run_seeds(
        t,
        &Setup {
            ignore: CASE.ignore,
            pass_over: crate::random::PASS_OVER,
            known_bugs: crate::random::KNOWN_BUGS,
            concurrent: true,
        },
    )
}
