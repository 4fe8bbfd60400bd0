//! clone-eof-block: a file that shares another's last, partial block in its middle is sent as
//! a clone of the aligned part and a write of the rest.
//!
//! A clone may not put a file's last block, when the file's size is not block-aligned, in the
//! middle of another file: the receiving kernel refuses it (EINVAL), or, before the fix
//! "Btrfs: fix data corruption due to cloning of eof block" (ac765f83f139), cloned the block
//! and left the bytes past the source's end in the middle of the destination. A file can still
//! come to share such a block in its middle: copied whole by a reflink, then grown by a write
//! past its end. Send must then clone the range up to an aligned boundary and write the rest
//! (`clone_range`; 6.1 aligns to 64 KiB, the largest sector size a receiver may have). The
//! random case's reflinks copy whole files but seldom grow them after, and its files are small.
//! On 6.18 the stream holds a clone of the copy's first 96 KiB and a write of the rest
//! (`btrfs receive --dump`). On linux-source-6.1 the mutant of that branch's error check
//! (send.c:5871, docs/mutants-missed-linux-6.1-send-shard1.txt) is still missed with this
//! case, so 6.1's send may take another way there; that was not looked into.
//!
//! No kernel commit is its fix: it guards the eof-block branch of send's clones.

use sendtest::prelude::*;
use sendtest::random::{self, wide::Wide, Op, Protocol};

pub const CASE: Case = Case {
    name: "clone-eof-block",
    groups: &["send", "clone"],
    summary: "a file sharing another's partial last block in its middle: clone and write",
    requires: &[],
    fix: Fix {
        subject: "no single fix: it guards send's clone of a range that ends at a source's unaligned size",
        ..Fix::NONE_YET
    },
    ignore: &["ctime", "layout"],
    run,
};

/// The source's size: past 64 KiB, and not a multiple of 4 KiB.
const SOURCE_SIZE: u64 = 100_000;

/// The source, its reflinked copy grown past the source's end, and the same again after a
/// snapshot (the first is sent in full, the second incrementally).
fn ops() -> Vec<Op> {
    let mut ops = Vec::new();
    for (round, (src, dst)) in [("src", "dst"), ("src2", "dst2")].into_iter().enumerate() {
        if round == 1 {
            ops.push(Op::Snapshot);
        }
        ops.extend([
            Op::Write {
                file: src.into(),
                offset: 0,
                len: SOURCE_SIZE,
                byte: b's',
                direct: false,
            },
            Op::Wide(Wide::CopyFile {
                src: src.into(),
                dst: dst.into(),
            }),
            // The shared block is now in the copy's middle.
            Op::Write {
                file: dst.into(),
                offset: 2 * SOURCE_SIZE,
                len: 4096,
                byte: b'd',
                direct: false,
            },
        ]);
    }
    ops
}

fn run(t: &mut Ctx) -> Result<()> {
    random::replay(t, &CASE, &ops(), Protocol::One, crate::random::PASS_OVER)
}
