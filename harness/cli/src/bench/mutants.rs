//! `sendtest bench --mutants`: what one mutant of `sendtest mutate` costs (its build and the
//! default mutation suite), for the kernel's send code in guests and btrfs-progs' receive code
//! on loop devices, against the targets.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use sendtest::bench::{self, spread};
use sendtest::build::{RECEIVE_FILES, SEND_FILES};
use sendtest::mutate::mutant;
use sendtest::mutate::run::{self as mutation, MutationPlan, Target, Verdict};
use sendtest::mutate::targets::{KernelTarget, ProgsTarget};

use crate::args::VmArgs;
use crate::mutate::{mutation_suite, suite_options, RANDOM_SEEDS};

/// Per-mutant targets: a kernel mutant in a guest under TCG, a btrfs-progs one on loop devices.
const KERNEL_TARGET: Duration = Duration::from_secs(30);
const PROGS_TARGET: Duration = Duration::from_secs(5);
/// Seconds a case may take under a mutant, as `sendtest mutate`'s default.
const TIMEOUT: Duration = Duration::from_secs(120);

pub fn kernel(tree: &Path, vm_args: &VmArgs, reps: usize, work: &Path) -> Result<()> {
    let init = std::env::current_exe()?;
    let mut target = KernelTarget::new(tree, Default::default(), vm_args.options(None), &init)?;
    cost(
        &mut target,
        tree,
        SEND_FILES,
        reps,
        &work.join("mutants-kernel"),
        KERNEL_TARGET,
        true,
    )
}

pub fn progs(tree: &Path, reps: usize, work: &Path) -> Result<()> {
    let mut target = ProgsTarget::new(tree)?;
    cost(
        &mut target,
        tree,
        RECEIVE_FILES,
        reps,
        &work.join("mutants-progs"),
        PROGS_TARGET,
        false,
    )
}

/// Builds the unmutated tree and runs the suite (not timed: `sendtest mutate` does it once per
/// run), then times `reps` mutants drawn with seed 1.
fn cost(
    target: &mut dyn Target,
    tree: &Path,
    files: &[&str],
    reps: usize,
    results: &Path,
    goal: Duration,
    kernel: bool,
) -> Result<()> {
    let mut mutants = Vec::new();
    for file in files {
        mutants.extend(mutant::mutants_of(tree, file)?);
    }
    let mutants = mutant::sample(mutants, reps, 1);
    let mut plan = MutationPlan {
        steps: mutation::steps(
            &mutation_suite(kernel)?,
            suite_options(1, TIMEOUT),
            RANDOM_SEEDS,
        ),
        results: results.to_path_buf(),
        allowed: Default::default(),
    };
    mutation::baseline(&mut plan, target)?;
    let ran = mutation::run(&plan, &mutants, target, &mut |_| {})?;
    let times: Vec<Duration> = ran
        .iter()
        .filter(|r| !matches!(r.verdict, Verdict::Allowed(_)))
        .map(|r| r.elapsed)
        .collect();
    let verdicts: Vec<&str> = ran.iter().map(|r| r.verdict.label()).collect();
    println!(
        "mutants of {} ({}): {} per mutant, build and the mutation suite ({}); target {} s: {}",
        tree.display(),
        files.join(", "),
        spread(&times),
        verdicts.join(", "),
        goal.as_secs(),
        super::met(bench::median(&times) <= goal)
    );
    Ok(())
}
