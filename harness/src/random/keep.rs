//! A failing list shrunk to a minimal one and kept in the case's results: the seed with the
//! indices of the operations left, and the standalone script.

use std::fmt::Write as _;

use anyhow::Result;

use super::chain::{ChainFailure, Chains, Checked, Verdict};
use super::fstests::{fstests_test, FixedBy};
use super::ops::{self, Op};
use super::script::script;
use super::shrink;
use super::soak::case_name;

/// Oracle calls the shrinker may make; each is one chain (about a tenth of a second on loop
/// devices for a short list).
const SHRINK_BUDGET: usize = 400;

/// A failure, shrunk and kept.
#[derive(Debug, Clone)]
pub struct Found {
    pub seed: u64,
    /// The operations left, without their indices. Two seeds whose lists are the same up to
    /// names ([`ops::canonical`]) found the same problem.
    pub minimal: Vec<Op>,
    /// How the minimal list failed.
    pub failure: ChainFailure,
    /// One line: the seed, what failed, and where the script is.
    pub message: String,
    /// What to print for it: the shrinking and the script.
    pub shown: String,
}

/// Shrinks the failing `ops` and keeps the result in the case's results: `random-<seed>.ops`
/// (seed, indices, operations) and `random-<seed>.sh` (the script).
pub fn shrink_and_keep(
    chains: &mut Chains<'_>,
    seed: u64,
    ops: &[Op],
    failure: &ChainFailure,
) -> Result<Found> {
    let indexed: Vec<(usize, Op)> = ops.iter().cloned().enumerate().collect();
    let mut env_error = None;
    let mut fails = |list: &[(usize, Op)]| {
        let just: Vec<Op> = list.iter().map(|(_, o)| o.clone()).collect();
        match chains.check(&just, &mut Checked::default()) {
            Ok(verdict) => matches!(verdict, Verdict::Failed(_)),
            Err(e) => {
                env_error.get_or_insert(e);
                false
            }
        }
    };
    let simpler = |(i, op): &(usize, Op)| op.simpler().into_iter().map(|o| (*i, o)).collect();
    let without = |list: &[(usize, Op)], at: usize| {
        let just: Vec<Op> = list.iter().map(|(_, o)| o.clone()).collect();
        let rewritten = ops::without_rename(&just, at)?;
        let indices = list
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != at)
            .map(|(_, (i, _))| *i);
        Some(indices.zip(rewritten).collect())
    };
    let moves = shrink::Moves {
        simpler: &simpler,
        without: &without,
    };
    let minimal = shrink::shrink(&indexed, &mut fails, &moves, SHRINK_BUDGET);
    if let Some(e) = env_error {
        return Err(e.context("while shrinking"));
    }
    let just: Vec<Op> = minimal.iter().map(|(_, o)| o.clone()).collect();
    let last_failure = match chains.check(&just, &mut Checked::default())? {
        Verdict::Failed(f) => f,
        Verdict::Matched => failure.clone(),
    };
    let results = chains.ctx().results().to_path_buf();
    let case = case_name(chains.ctx());
    // The list depends on the seed and its size, so the replay names all three.
    let knobs = chains.ctx().random_knobs();
    let mut replay = format!("sendtest run {case} --seed {seed}");
    if let Some(n) = knobs.ops {
        replay.push_str(&format!(" --ops {n}"));
    }
    if let Some(n) = knobs.snapshots {
        replay.push_str(&format!(" --snapshots {n}"));
    }
    if let Some(way) = knobs.receive {
        replay.push_str(&format!(" --receive {}", way.name()));
    }
    if let Some(way) = knobs.parents {
        replay.push_str(&format!(" --parents {}", way.name()));
    }
    replay.push_str(&super::soak::configuration_arg(chains.ctx()));
    let indices: Vec<String> = minimal.iter().map(|(i, _)| i.to_string()).collect();
    let mut listing = format!(
        "seed {seed}\nreplay {replay}\nindices {}\n# {} of {} operations; the failure: {}\n",
        indices.join(","),
        minimal.len(),
        ops.len(),
        last_failure.message
    );
    for (i, op) in &minimal {
        let _ = writeln!(listing, "{i}\t{op:?}");
    }
    std::fs::write(results.join(format!("random-{seed}.ops")), &listing)?;
    let mut options = chains.script_options();
    // A hole filled on receive, or space grown, shows in the layout and the allocated blocks
    // alone.
    if last_failure.differences.iter().any(|(_, field)| {
        field == crate::manifest::holes::FIELD || field == crate::manifest::space::FIELD
    }) {
        options.ignore.retain(|field| field != "layout");
    }
    options.compressed = last_failure
        .differences
        .iter()
        .any(|(_, field)| field == crate::manifest::compressed::FIELD);
    let script = script(seed, &just, &options, &last_failure.message);
    let script_path = results.join(format!("random-{seed}.sh"));
    std::fs::write(&script_path, &script)?;
    // The same list as an fstests test, for a bug report (`sendtest report SEED`).
    let test = fstests_test(
        &just,
        &options,
        &format!(
            "A send/receive bug: a received file differs from its source ({}).\nThe test checks that every received snapshot matches its source.\n\nFound by sendtest's random case, seed {seed}, shrunk to {} operations.",
            super::chain::what_differs(&last_failure.message).join("; "),
            minimal.len()
        ),
        FixedBy {
            component: crate::case::Component::Kernel,
            subject: "btrfs: send: <the fix's subject>",
        },
    );
    std::fs::write(results.join(format!("random-{seed}.fstests")), test.script)?;
    std::fs::write(
        results.join(format!("random-{seed}.fstests.out")),
        test.golden,
    )?;
    Ok(Found {
        seed,
        shown: format!(
            "{case}: seed {seed} fails; shrunk from {} to {} operations; the script (random-{seed}.sh in the case's results):\n{script}",
            ops.len(),
            minimal.len(),
        ),
        message: format!(
            "seed {seed}: {}; shrunk to {} operations, replay with `{replay}`, script in random-{seed}.sh",
            last_failure.message,
            minimal.len()
        ),
        minimal: just,
        failure: last_failure,
    })
}
