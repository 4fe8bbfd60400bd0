//! A fixed list of operations run through the random cases' chain, as a case of its own: what
//! a finding of the random case becomes once it is understood. The list, the send options and
//! the fields that differ read as the bug report; the standalone script goes to the results.

use anyhow::Result;

use super::chain::{Chains, Verdict};
use super::fstests::{fstests_test, FixedBy};
use super::ops::Op;
use super::script::script;
use crate::case::Case;
use crate::context::Ctx;
use crate::finding::detected;
use crate::scratch::ScratchSpec;

/// The fstests test a replay writes into the case's results, and its golden output beside it
/// (`.out`).
pub const FSTESTS_TEST: &str = "fstests-test";

/// How a list is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `btrfs send`, protocol 1, from a plain filesystem.
    One,
    /// `btrfs send --proto 2 --compressed-data`, from a compress=zstd filesystem.
    TwoCompressed,
}

/// Runs `ops` (snapshots where it says, and one at the end; the first sent in full, each later
/// one against the one before), receives, and compares every field but `ignore` and the
/// `pass_over` (path, field) pairs. A difference or a failed send or receive is a finding.
/// `replay.sh` in the results reproduces it without sendtest, and `fstests-test` (with its
/// golden output, `fstests-test.out`) is the same as an fstests test for the bug report.
pub fn replay(
    t: &mut Ctx,
    case: &Case,
    ops: &[Op],
    protocol: Protocol,
    pass_over: &[(&str, &str)],
) -> Result<()> {
    let ignore = case.ignore;
    let source = match protocol {
        Protocol::One => t.scratch("source")?,
        Protocol::TwoCompressed => t.scratch_with("compressed", ScratchSpec::COMPRESSED)?,
    };
    let dest = t.scratch_to_receive("received")?;
    let mut chains = Chains::new(t, &source, &dest, ignore, pass_over)?;
    chains.proto2 = protocol == Protocol::TwoCompressed;
    chains.break_received = t.breakage();
    chains.receive = t.random_knobs().receive.unwrap_or_default();
    chains.parents = t.random_knobs().parents.unwrap_or_default();
    let verdict = chains.check(ops, &mut Default::default())?;
    let message = match &verdict {
        Verdict::Matched => "every received snapshot matched its source".to_string(),
        Verdict::Failed(failure) => failure.message.clone(),
    };
    // The script's header names a seed, which a fixed list has not: it names the case instead.
    let text = script(0, ops, &chains.script_options(), &message).replacen(
        "sendtest random, seed 0:",
        &format!("sendtest {}:", case.name),
        1,
    );
    std::fs::write(t.results().join("replay.sh"), text)?;
    let about = format!(
        "A send/receive bug: {}.\nThe test checks that every received snapshot matches its source.\n\nFound by sendtest's random case; sendtest's case {} is the same test.",
        case.summary, case.name
    );
    let test = fstests_test(
        ops,
        &chains.script_options(),
        &about,
        FixedBy {
            component: case.fix.applies_to,
            subject: case.fix.fix_subject(),
        },
    );
    std::fs::write(t.results().join(FSTESTS_TEST), test.script)?;
    std::fs::write(t.results().join(format!("{FSTESTS_TEST}.out")), test.golden)?;
    match verdict {
        Verdict::Matched => Ok(()),
        Verdict::Failed(failure) => Err(detected(failure.message)),
    }
}
