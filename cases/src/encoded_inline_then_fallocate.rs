//! encoded-inline-then-fallocate: protocol 2 loses a file's size past a compressed inline extent.
//!
//! On a compress=zstd filesystem, a file of 24 bytes is one compressed inline extent. A plain
//! `fallocate` of one byte at 634 makes it 635 bytes (an unwritten extent past the inline one).
//! `btrfs send --proto 2 --compressed-data` sends the inline extent as an `encoded_write` of
//! its 24 bytes and nothing that sets the size (`btrfs receive --dump` shows it), so the
//! received file has 24 bytes. The likely cause, not yet confirmed by a fix: the encoded write
//! of an inline extent covers only its bytes, while send's bookkeeping takes the file as
//! written to the end of the extent's range, so no truncate to the size follows. Protocol 1
//! sends a 635-byte write and is right; so is growing the file by `truncate`, by a write, or by
//! `fallocate --keep-size` instead. The random case found it (seed 1807807937, shrunk from 203
//! operations to 2); kernels 6.1 and 6.18 have it, and no kernel fixes it yet, so the case is in
//! the group `unfixed`, out of `auto`, and runs by name.

use sendtest::prelude::*;
use sendtest::random::{self, Falloc, Op, Protocol};

pub const CASE: Case = Case {
    name: "encoded-inline-then-fallocate",
    groups: &["unfixed", "send"],
    summary: "protocol 2 with compressed data loses the size of a file fallocated past its compressed inline extent",
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
        Op::Write {
            file: "f".into(),
            offset: 0,
            len: 24,
            byte: b'a',
            direct: false,
        },
        Op::Fallocate {
            file: "f".into(),
            offset: 634,
            len: 1,
            mode: Falloc::Allocate,
        },
    ];
    random::replay(t, &CASE, &ops, Protocol::TwoCompressed, &[])
}
