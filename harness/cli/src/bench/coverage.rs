//! `sendtest bench --coverage`: what coverage counters in fs/btrfs cost under the VM backend,
//! against a plain build of the same tree: the first build, the `auto` group's wall time, and
//! the seeds a 60 s random soak gets through.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sendtest::backend::Backend;
use sendtest::bench::{self, spread};
use sendtest::build::kernel::{self as kernel_build, Revert};
use sendtest::context::CaseOptions;
use sendtest::runner::{self, Plan};
use sendtest::{coverage, interrupt, random, report};

use crate::args::{say, VmArgs};

/// The soak whose seeds are counted.
const SOAK: Duration = Duration::from_secs(60);

/// Builds `tree` (a copy the bench owns) with counters in the bench's cache, and compares it
/// with the plain build `plain` (a bzImage, which took `plain_build`).
pub fn cost(
    tree: &Path,
    plain: &Path,
    plain_build: Duration,
    vm_args: &VmArgs,
    reps: usize,
    work: &Path,
) -> Result<()> {
    let (patch, config) = coverage::kernel_variant(tree)?;
    let started = Instant::now();
    let built = kernel_build::build_in(
        &work.join("kernel-cache"),
        tree,
        Some(Revert {
            name: coverage::VARIANT,
            patch: &patch,
        }),
        &config,
        &say,
    )?;
    let build = started.elapsed();
    println!(
        "coverage build (counters in fs/btrfs): first build {:.0} s against {:.0} s plain, {:.2}x",
        build.as_secs_f64(),
        plain_build.as_secs_f64(),
        build.as_secs_f64() / plain_build.as_secs_f64().max(1e-9)
    );
    let init = std::env::current_exe().context("finding the sendtest binary")?;
    let mut figures = Vec::new();
    for (label, image, counters) in [
        ("plain", plain, false),
        ("coverage", built.bzimage.as_path(), true),
    ] {
        let options = sendtest::vm::VmOptions {
            coverage: counters,
            ..vm_args.options(Some(image))
        };
        let vm = sendtest::vm::Vm::prepare(options, &init)?;
        figures.push((auto_group(&vm, reps, work, label)?, soak(&vm, work, label)?));
    }
    let [(plain_auto, plain_seeds), (cov_auto, cov_seeds)] = &figures[..] else {
        unreachable!("two kernels");
    };
    println!(
        "  auto group in guests: {} plain, {} with counters, {:.2}x",
        spread(plain_auto),
        spread(cov_auto),
        bench::median(cov_auto).as_secs_f64() / bench::median(plain_auto).as_secs_f64().max(1e-9)
    );
    println!(
        "  random soak of {} s in a guest: {plain_seeds} seeds plain, {cov_seeds} with counters ({:.0}% of plain)",
        SOAK.as_secs(),
        100.0 * *cov_seeds as f64 / (*plain_seeds).max(1) as f64
    );
    Ok(())
}

/// The `auto` group's wall time in guests of `vm`, `reps` times.
fn auto_group(vm: &dyn Backend, reps: usize, work: &Path, label: &str) -> Result<Vec<Duration>> {
    let cases: Vec<_> = cases::ALL
        .iter()
        .copied()
        .filter(|c| c.in_group("auto"))
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut times = Vec::new();
    for rep in 0..reps {
        interrupt::check()?;
        let plan = Plan::new(
            cases.clone(),
            work.join(format!("auto-{label}-{rep}")),
            vm.default_jobs(cores),
        );
        let started = Instant::now();
        let results = runner::execute(&plan, vm, &|_| {}).results;
        times.push(started.elapsed());
        super::all_passed(&results)?;
    }
    Ok(times)
}

/// The seeds a random soak of [`SOAK`] ran in one guest of `vm`.
fn soak(vm: &dyn Backend, work: &Path, label: &str) -> Result<u64> {
    interrupt::check()?;
    let case = cases::by_name("random").context("no random case")?;
    let dir = work.join(format!("soak-{label}"));
    let options = CaseOptions {
        duration: Some(SOAK),
        ..CaseOptions::default()
    };
    let result = runner::run_one(case, &dir, options, vm);
    super::all_passed(std::slice::from_ref(&result))?;
    random::seeds_ran(&report::headlines(&result).join("\n")).with_context(|| {
        format!(
            "the soak's headlines name no seed count ({})",
            dir.display()
        )
    })
}
