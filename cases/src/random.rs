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
//! It has found send bugs that no kernel fixes yet; `KNOWN_BUGS` below describes them. A soak
//! reports those apart and fails only on the others, so that it keeps looking for new ones.
//!
//! `--seed S` replays one seed, and fails on any bug; `--ops N` and `--snapshots N` size the
//! list; `--duration` keeps trying new seeds until the time is up.

use sendtest::prelude::*;
use sendtest::random::{
    self, KnownBug, Replay, Sends, Setup, StreamSign, DEFAULT_OPS, DEFAULT_SNAPSHOTS,
};

pub const CASE: Case = Case {
    name: "random",
    groups: &["random", "send"],
    summary:
        "seeded random operations and an incremental send chain; a failure shrinks to a script",
    requires: &[Require::SendProtocol(2)],
    fix: Fix {
        commit: "none",
        subject: "no single fix: it looks for send/receive bugs that are not known yet",
        fstests: Some("btrfs/007"),
        revert: None,
        proposed: None,
        applies_to: Component::Kernel,
    },
    // Send protocol 1 carries data and size, not where holes and preallocated extents lie:
    // the received layout of a file that was fallocated or punched differs, its bytes do not.
    ignore: &["ctime", "layout"],
    run,
};

/// A send bug that most seeds would report, hiding every other finding, so it is passed over
/// where it is found: an incremental stream creates new inodes under orphan names in the
/// subvolume's root and renames them into place, but sends no utimes for the root when the
/// root itself did not change, so the received root keeps the time of the receive (6.18;
/// `btrfs receive --dump` of `mkdir d0`, snapshot, `echo -n x > d0/f4`, snapshot shows no
/// `utimes` for the root).
pub const PASS_OVER: &[(&str, &str)] = &[(".", "mtime")];

/// Send bugs this case has found that no kernel fixes yet (6.18, and Debian's 6.1 where
/// noted). A soak reports them and does not fail on them; `--seed` of one fails, so that a fix
/// can be checked. Each was shrunk and reproduced by hand; the README has the scripts.
pub const KNOWN_BUGS: &[KnownBug] = &[
    KnownBug {
        name: "encoded-inline-then-fallocate",
        summary: "protocol 2 with compressed data loses the size of a file that grew past its \
                  compressed inline extent (write 28 bytes, fallocate 1 byte at 3512: received \
                  28 bytes; or grown by a reflink and truncated back above the inline data, seed \
                  1957065346; both go away with cases/src/encoded_inline.fix.patch; also in \
                  Debian's 6.1)",
        sends: Sends::CompressedData,
        fields: &["size", "sha256"],
        // The file grows by fallocate, by a reflink then a truncate, …: what every shrunk list
        // holds is the write that made the inline extent.
        ops: &["write"],
        found_by: Replay {
            seed: 2122780973,
            ops: DEFAULT_OPS,
            snapshots: DEFAULT_SNAPSHOTS,
        },
        stream: None,
        fix: Some("cases/src/encoded_inline.fix.patch"),
    },
    KnownBug {
        name: "encoded-inline-truncated-then-reflinked",
        summary: "an incremental protocol-2 send with compressed data of a file whose compressed \
                  inline extent was truncated, then extended by a reflink, brings back the \
                  truncated bytes (write 32 bytes, snapshot, truncate to 25, reflink 4 KiB at \
                  221184: bytes 25-31 received as written; also in Debian's 6.1)",
        sends: Sends::CompressedData,
        fields: &["sha256"],
        ops: &["truncate", "reflink", "snapshot"],
        found_by: Replay {
            seed: 2122780968,
            ops: DEFAULT_OPS,
            snapshots: DEFAULT_SNAPSHOTS,
        },
        stream: None,
        fix: Some("cases/src/encoded_inline.fix.patch"),
    },
    KnownBug {
        name: "setuid-after-chown",
        summary: "an incremental send of a setuid file whose owner changed but whose mode did not \
                  holds a lone chown, which clears the bit on receive (mode 4755, snapshot, chown, \
                  chmod 4755, snapshot: received 0755)",
        sends: Sends::Any,
        fields: &["mode"],
        ops: &["chown", "chmod", "snapshot"],
        found_by: Replay {
            seed: 13,
            ops: 2000,
            snapshots: 10,
        },
        stream: None,
        fix: Some("cases/src/setuid_after_chown.fix.patch"),
    },
    KnownBug {
        name: "receive-write-after-rename",
        summary: "btrfs-progs' receive keeps the file of its last write open by path, and a \
                  rename or unlink does not close it: a write to a path that names another \
                  inode by then goes into the first file (a changed file's directory renamed, \
                  a new directory and file made with the old names: the new file is received \
                  empty, its data in the old one); see the case receive-write-after-rename",
        sends: Sends::Any,
        fields: &["sha256", "size", "mtime"],
        ops: &["write"],
        found_by: Replay {
            seed: 1898057522,
            ops: DEFAULT_OPS,
            snapshots: DEFAULT_SNAPSHOTS,
        },
        stream: Some(StreamSign::WriteToReusedPath),
        fix: None,
    },
];

fn run(t: &mut Ctx) -> Result<()> {
    random::run_seeds(
        t,
        &Setup {
            ignore: CASE.ignore,
            pass_over: PASS_OVER,
            known_bugs: KNOWN_BUGS,
            concurrent: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_known_bug_names_real_fields_and_operations() {
        for bug in KNOWN_BUGS {
            bug.check().unwrap();
        }
    }
}
