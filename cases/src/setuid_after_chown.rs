//! setuid-after-chown: an incremental send loses the setuid bit of a file whose owner changed.
//!
//! A file is mode 4755 in the parent snapshot. Between the snapshots its owner changes (which
//! clears the setuid bit) and it is made 4755 again. Its mode is the same in both snapshots, so
//! the incremental stream holds only the `chown`, and receiving that chown clears the bit: the
//! received file is 0755. Send would have to follow a chown of a setuid or setgid file with a
//! chmod even when the mode did not change. The random case found it (seed 13 at 2,000
//! operations and 10 snapshots, shrunk from 2,010 operations to 9); `btrfs receive --dump`
//! shows the lone `chown`. Kernel 6.18 has it, and no kernel fixes it yet, so the case is in the
//! group `unfixed`, out of `auto`, and runs by name.
//!
//! The list also chowns a symlink to another file: a fix must not send a chmod for it, since
//! the receiver's chmod follows the link and would change the target's mode. Mutation testing
//! of the proposed fix's lines showed the case passing with the fix's `!S_ISLNK` test broken;
//! with the symlink it fails.

use sendtest::prelude::*;
use sendtest::random::{self, Op, Protocol};

pub const CASE: Case = Case {
    name: "setuid-after-chown",
    groups: &["unfixed", "send"],
    summary: "an incremental send of a setuid file whose owner changed, mode unchanged, clears the bit on receive",
    requires: &[],
    fix: Fix {
        proposed: Some(include_str!("setuid_after_chown.fix.patch")),
        ..Fix::NONE_YET
    },
    ignore: &["ctime", "layout"],
    run,
};

fn run(t: &mut Ctx) -> Result<()> {
    let f = || "f".to_string();
    let ops = [
        Op::Write {
            file: f(),
            offset: 0,
            len: 1,
            byte: b'x',
            direct: false,
        },
        Op::Chmod {
            path: f(),
            mode: 0o4755,
        },
        Op::Write {
            file: "g".into(),
            offset: 0,
            len: 1,
            byte: b'y',
            direct: false,
        },
        Op::Chmod {
            path: "g".into(),
            mode: 0o644,
        },
        Op::Symlink {
            target: "g".into(),
            path: "l".into(),
        },
        Op::Snapshot,
        Op::Chown {
            path: f(),
            uid: 65534,
            gid: 100,
        },
        Op::Chown {
            path: "l".into(),
            uid: 65534,
            gid: 100,
        },
        Op::Chmod {
            path: f(),
            mode: 0o4755,
        },
    ];
    // The root's mtime after an incremental receive is another send bug (see the random case);
    // it is passed over here so that this case names only its own.
    random::replay(t, &CASE, &ops, Protocol::One, &[(".", "mtime")])
}
