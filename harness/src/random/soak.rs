//! The random cases' steps: seeds one after another, each list's chain on each protocol, and
//! what a soak found, told apart into known bugs and new failures.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use super::chain::{Chains, Checked, Verdict};
use super::compression::Compression;
use super::keep::{shrink_and_keep, Found};
use super::known::{self, KnownBug};
use super::ops;
use super::parents::Parents;
use super::receive::Receive;
use super::verbosity::{Placement, Verbosity};
use crate::context::Ctx;
use crate::finding::detected;
use crate::scratch::ScratchSpec;

/// What a randomized case asks of [`run_seeds`].
pub struct Setup<'a> {
    /// Manifest fields not compared.
    pub ignore: &'a [&'a str],
    /// (path, field) differences passed over as they are found, before any shrinking: a known
    /// bug that nearly every seed would show, hiding everything else.
    pub pass_over: &'a [(&'a str, &'a str)],
    /// Known bugs: a soak reports them apart and does not fail on them.
    pub known_bugs: &'a [KnownBug],
    /// Run operations and balance in another subvolume while each chain sends.
    pub concurrent: bool,
}

/// Operations per list unless `--ops` says otherwise.
pub const DEFAULT_OPS: usize = 200;
/// Snapshots among the operations unless `--snapshots` says otherwise (one more at the end).
pub const DEFAULT_SNAPSHOTS: usize = 3;

/// ` --ops N --snapshots M` as the run was given them, for a command that replays a seed.
fn list_size(knobs: &crate::context::RandomKnobs) -> String {
    let mut text = String::new();
    if let Some(n) = knobs.ops {
        text.push_str(&format!(" --ops {n}"));
    }
    if let Some(n) = knobs.snapshots {
        text.push_str(&format!(" --snapshots {n}"));
    }
    text
}

/// How many seeds a random case's headlines say it ran (the first headline of [`run_seeds`]).
pub fn seeds_ran(headlines: &str) -> Option<u64> {
    headlines.lines().find_map(|line| {
        let (before, _) = line.split_once(" seed(s) from ")?;
        before.rsplit(' ').next()?.parse().ok()
    })
}

/// The randomized case's steps: for `--seed` (or a seed from the clock), and with
/// `--duration` for the seeds after it until the time is up, the chain with protocol 1 on a
/// plain filesystem, then with protocol 2 and compressed data on one that compresses with the
/// seed's algorithm ([`Compression::draw`]; the case requires both kernel and btrfs-progs to
/// support protocol 2). A failure is shrunk and kept (with
/// `--no-shrink`, the first failure ends the case as it is). One seed stops at its
/// failure, known bug or not; a soak goes on, reports each distinct failure once, and fails only
/// on those that are not known bugs. The counts are printed.
pub fn run_seeds(t: &mut Ctx, setup: &Setup<'_>) -> Result<()> {
    for bug in setup.known_bugs {
        bug.check()?;
    }
    let knobs = t.random_knobs();
    let count = knobs.ops.unwrap_or(DEFAULT_OPS);
    let snapshots = knobs.snapshots.unwrap_or(DEFAULT_SNAPSHOTS);
    let source = t.scratch("source")?;
    // Compressed extents for `--compressed-data` to send as they are: mounted with zstd, and
    // each seed remounts it with its own algorithm.
    let compressed = t.scratch_with("compressed", ScratchSpec::COMPRESSED)?;
    let dest = t.scratch_to_receive("received")?;
    // A soak goes on until its time is up, or through its number of seeds.
    let soak = t.requested_duration();
    let seed_count = knobs.seeds;
    let soaking = soak.is_some() || seed_count.is_some();
    let first = knobs.seed.unwrap_or_else(seed_from_clock);
    let mut plain = Chains::new(t, &source, &dest, setup.ignore, setup.pass_over)?;
    let mut encoded = Chains::new(t, &compressed, &dest, setup.ignore, setup.pass_over)?;
    encoded.proto2 = true;
    for chains in [&mut plain, &mut encoded] {
        chains.break_received = t.breakage();
    }
    let started = Instant::now();
    let mut total = Checked::default();
    let mut seeds = 0u64;
    let mut findings = Findings::default();
    loop {
        let seed = first.wrapping_add(seeds);
        let list = ops::generate(seed, count, snapshots);
        seeds += 1;
        for chains in [&mut plain, &mut encoded] {
            // The noise differs from the chain's operations but follows from the same seed.
            chains.noise = setup.concurrent.then_some(seed ^ 0x005e_ed0f_5eed);
            chains.receive = knobs.receive.unwrap_or_else(|| Receive::draw(seed));
            chains.parents = knobs.parents.unwrap_or_else(|| Parents::draw(seed));
            chains.verbosity = Verbosity::draw(seed);
            chains.placement = Placement::draw(seed);
            if chains.proto2 {
                chains.compress_with(Compression::draw(seed))?;
            }
            let protocol = if chains.proto2 {
                format!(
                    "protocol 2 with {}-compressed data",
                    chains.compression.name()
                )
            } else {
                "protocol 1".to_string()
            };
            chains.ctx().note(&format!(
                "seed {seed}, {protocol}: receive {}, parents {}",
                chains.receive.name(),
                chains.parents.name()
            ));
            // A seed that errs or outlasts the case's time limit is named, so that it can be
            // run again alone.
            let verdict = chains
                .check(&list, &mut total)
                .with_context(|| format!("seed {seed}, {protocol}"))?;
            if let Verdict::Failed(failure) = verdict {
                if knobs.no_shrink {
                    return Err(detected(format!(
                        "seed {seed}, {protocol}: {} (not shrunk: --no-shrink)",
                        failure.message
                    )));
                }
                let shrunk = shrink_and_keep(chains, seed, &list, &failure)
                    .with_context(|| format!("seed {seed}, {protocol}: {}", failure.message))?;
                let known = known::classify(
                    setup.known_bugs,
                    &shrunk.failure,
                    &shrunk.minimal,
                    chains.proto2,
                );
                if !soaking {
                    t.headline(&shrunk.shown)?;
                    return Err(detected(match known {
                        Some(bug) => format!("known bug `{}`: {}", bug.name, shrunk.message),
                        None => shrunk.message,
                    }));
                }
                findings.add(shrunk, known);
                // The other protocol would most likely find the same list.
                break;
            }
        }
        let time_left = soak.is_some_and(|d| started.elapsed() < d);
        let seeds_left = seed_count.is_some_and(|n| seeds < n);
        let stop = match (soak, seed_count) {
            (Some(_), Some(_)) => !(time_left && seeds_left),
            (Some(_), None) => !time_left,
            (None, Some(_)) => !seeds_left,
            (None, None) => true,
        };
        if stop {
            break;
        }
    }
    let protocols = "protocol 1, and protocol 2 with compressed data from a filesystem \
                     compressing with each seed's algorithm (zstd, zlib or lzo)";
    let noise = if setup.concurrent {
        format!(", {} operations alongside the sends", total.noise_ops)
    } else {
        String::new()
    };
    let reused = if total.reused > 0 {
        format!(
            ", {} inode numbers sent against a twin that holds them older",
            total.reused
        )
    } else {
        String::new()
    };
    let case = case_name(t);
    let line = format!(
        "{case}: {seeds} seed(s) from {first}: {} operations, {} snapshots, {} sends ({protocols}){noise}, {} extent items that send must clone checked received shared{reused}, {} streams broken on purpose refused, {} streams without data received; {}",
        total.ops,
        total.snapshots,
        total.sends,
        total.must_clone,
        total.refused,
        total.without_data,
        findings.verdict()
    );
    t.headline(&line)?;
    for (bug, seen) in &findings.known {
        let mut seeds: Vec<String> = seen.iter().take(5).map(|f| f.seed.to_string()).collect();
        if seen.len() > 5 {
            seeds.push("…".into());
        }
        let exact = match bug.fix {
            Some(fix) => format!(
                "the exact test, whether it goes away with the bug's fix: `sendtest validate {case} --seed {}{}{} --patch {fix} --kernel-tree TREE`",
                seen[0].seed,
                list_size(&knobs),
                configuration_arg(t)
            ),
            None => "no kernel fix to test it against".to_string(),
        };
        let matched = match bug.stream {
            Some(_) => "its sign in the stream, the fields that differ and the kinds of operation",
            None => "the fields that differ and the kinds of operation",
        };
        let line = format!(
            "{case}: known bug `{}` ({}) met by seed(s) {}, matched by {matched} ({exact}); the first: {}",
            bug.name,
            bug.summary,
            seeds.join(", "),
            seen[0].message
        );
        t.headline(&line)?;
    }
    if findings.new.is_empty() {
        return Ok(());
    }
    let mut each = Vec::new();
    for (found, times) in &findings.new {
        t.headline(&found.shown)?;
        each.push(if *times > 1 {
            format!("{} (shrunk to the same list {times} times)", found.message)
        } else {
            found.message.clone()
        });
    }
    Err(detected(format!(
        "{} new failure(s) in {seeds} seeds: {}",
        findings.new.len(),
        each.join(" | ")
    )))
}

/// What a soak found: failures that are not known bugs, each distinct shrunk list once with how
/// many seeds shrank to it, and the seeds that met each known bug.
#[derive(Default)]
struct Findings<'b> {
    new: Vec<(Found, usize)>,
    known: Vec<(&'b KnownBug, Vec<Found>)>,
}

impl<'b> Findings<'b> {
    fn add(&mut self, found: Found, known: Option<&'b KnownBug>) {
        if let Some(bug) = known {
            match self.known.iter_mut().find(|(b, _)| b.name == bug.name) {
                Some((_, seen)) => seen.push(found),
                None => self.known.push((bug, vec![found])),
            }
            return;
        }
        let same = ops::canonical(&found.minimal);
        match self
            .new
            .iter_mut()
            .find(|(f, _)| ops::canonical(&f.minimal) == same)
        {
            Some((_, again)) => *again += 1,
            None => self.new.push((found, 1)),
        }
    }

    fn verdict(&self) -> String {
        let known: Vec<String> = self
            .known
            .iter()
            .map(|(bug, seen)| format!("`{}` in {} seed(s)", bug.name, seen.len()))
            .collect();
        match (self.new.len(), known.is_empty()) {
            (0, true) => "all received trees matched".to_string(),
            (0, false) => format!("no new failures; known bugs met: {}", known.join(", ")),
            (n, true) => format!("{n} new failure(s)"),
            (n, false) => format!("{n} new failure(s); known bugs met: {}", known.join(", ")),
        }
    }
}

/// The case's name: its results directory's, without the configuration (`random@holes`).
pub(super) fn case_name(ctx: &Ctx) -> String {
    let dir = ctx
        .results()
        .file_name()
        .map_or("random".into(), |n| n.to_string_lossy().into_owned());
    match dir.split_once('@') {
        Some((case, _)) => case.to_string(),
        None => dir,
    }
}

/// ` -c NAME` for a command that replays under the case's configuration; empty for the
/// default.
pub(super) fn configuration_arg(ctx: &Ctx) -> String {
    let config = ctx.configuration();
    if config.is_default() {
        String::new()
    } else {
        format!(" -c {}", config.name)
    }
}

fn seed_from_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() ^ u64::from(d.subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_count_is_read_back_from_the_headline() {
        let headlines = "random: 14 seed(s) from 7: 2800 operations, 3 snapshots, 84 sends (x); passed\nrandom: known bug `b` (s) met by seed(s) 9; the first: m\n";
        assert_eq!(seeds_ran(headlines), Some(14));
        assert_eq!(seeds_ran("random: failed\n"), None);
    }
}
