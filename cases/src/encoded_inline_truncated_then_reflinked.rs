//! encoded-inline-truncated-then-reflinked: an incremental protocol-2 send brings back the
//! truncated tail of a compressed inline extent.
//!
//! On a compress=zstd filesystem, `f` is 32 bytes of `a`, one compressed inline extent, in the
//! parent snapshot. Then `f` is truncated to 25 bytes and a reflink puts 4 KiB of another file
//! at 221184. After the incremental `btrfs send --proto 2 --compressed-data`, received on top of
//! the parent, bytes 25-31 of the received `f` are `a` where the source has zeros (`cmp -l`
//! lists exactly those 7 bytes). The likely cause, not yet confirmed by a fix: the compressed
//! inline extent is sent again whole (32 bytes) and nothing zeroes what the truncate cut off. A full send of the same tree is right, and so is the
//! same change with a write, an fallocate or a truncate past the end instead of the reflink.
//! The random case found it (seeds 2122780968 and 2122780862, shrunk to these operations);
//! kernels 6.1 and 6.18 have it, and no kernel fixes it yet, so the case is in the group
//! `unfixed`, out of `auto`, and runs by name.

use sendtest::prelude::*;
use sendtest::random::{self, Op, Protocol, Sharing};

pub const CASE: Case = Case {
    name: "encoded-inline-truncated-then-reflinked",
    groups: &["unfixed", "send"],
    summary: "an incremental protocol-2 send of a truncated compressed inline extent, then a reflink past it, brings back the truncated bytes",
    requires: &[Require::SendProtocol(2)],
    fix: Fix {
        proposed: Some(include_str!("encoded_inline.fix.patch")),
        ..Fix::NONE_YET
    },
    ignore: &["ctime", "layout"],
    run,
};

fn run(t: &mut Ctx) -> Result<()> {
    let ops = [
        // The reflink's source: 4 KiB of data at 36864 in another file.
        Op::Write {
            file: "g".into(),
            offset: 36864,
            len: 4096,
            byte: b'b',
            direct: false,
        },
        Op::Write {
            file: "f".into(),
            offset: 0,
            len: 32,
            byte: b'a',
            direct: false,
        },
        Op::Snapshot,
        Op::Truncate {
            file: "f".into(),
            size: 25,
        },
        Op::Share {
            how: Sharing::Reflink,
            src: "g".into(),
            src_offset: 36864,
            dst: "f".into(),
            dst_offset: 221184,
            len: 4096,
        },
    ];
    random::replay(t, &CASE, &ops, Protocol::TwoCompressed, &[(".", "mtime")])
}
