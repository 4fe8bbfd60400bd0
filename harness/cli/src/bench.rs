//! `sendtest bench`: the harness's own speed on this machine, against its targets. Every figure
//! is a median of repeated runs, printed with the machine it comes from.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sendtest::backend::{self, Backend};
use sendtest::bench::{self, spread};
use sendtest::build::kernel as kernel_build;
use sendtest::build::mirror;
use sendtest::case::Case;
use sendtest::context::CaseOptions;
use sendtest::report::EXIT_PASSED;
use sendtest::runner::{self, Outcome, Plan};
use sendtest::vm::{self, Vm};
use sendtest::{interrupt, preflight};

use crate::args::{at_least_one, say, VmArgs};

mod coverage;
mod mutants;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Repetitions of each measurement; the medians are printed.
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    reps: u64,
    /// Time a first build of this kernel tree (in a fresh build directory) and a rebuild after
    /// touching fs/btrfs/send.c; its bzImage is then the minimal kernel for the boot figure.
    #[arg(long, value_name = "PATH")]
    kernel_tree: Option<PathBuf>,
    /// A minimal bzImage for the boot figure (default: the one built from --kernel-tree).
    #[arg(long, value_name = "BZIMAGE", conflicts_with = "kernel_tree")]
    minimal_kernel: Option<PathBuf>,
    /// Also measure what coverage counters cost (`sendtest coverage`): a build of
    /// --kernel-tree with them, the auto group and a 60 s random soak against the plain build.
    #[arg(long, requires = "kernel_tree")]
    coverage: bool,
    /// Also time mutants of `sendtest mutate`: of --kernel-tree's send code (in guests) and of
    /// --btrfs-progs-tree's receive code (on loop devices), --reps of each.
    #[arg(long)]
    mutants: bool,
    /// A btrfs-progs tree, for --mutants.
    #[arg(long, value_name = "PATH")]
    btrfs_progs_tree: Option<PathBuf>,
    /// Leave out the VM figures.
    #[arg(long)]
    no_vm: bool,
    #[command(flatten)]
    vm: VmArgs,
}

/// The cases whose time the quick-suite figure adds up.
fn quick_cases() -> Vec<&'static Case> {
    cases::ALL
        .iter()
        .copied()
        .filter(|c| c.in_group("quick"))
        .collect()
}

/// A case every guest can run quickly, for the boot figures.
const BOOT_CASE: &str = "ro-flip-with-delalloc";

pub fn bench(args: &BenchArgs) -> Result<u8> {
    let reps = args.reps as usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "machine: {cores} cores, kernel {}; {reps} repetitions of each figure",
        kernel.trim()
    );
    let work = tempfile::Builder::new()
        .prefix("sendtest-bench-")
        .tempdir()
        .context("creating a directory for the benchmark")?;

    let loop_boot_case = quick_suite(reps, work.path())?;

    let mut minimal = args.minimal_kernel.clone();
    let mut copy = None;
    let mut plain_build = Duration::ZERO;
    if let Some(tree) = &args.kernel_tree {
        let (tree_copy, image, took) = kernel_builds(tree, work.path())?;
        minimal = Some(image);
        copy = Some(tree_copy);
        plain_build = took;
    }

    if args.no_vm {
        println!("VM: not measured (--no-vm)");
    } else {
        let packaged = args.vm.prepare(None)?;
        let packaged_time = boots(&packaged, reps, work.path(), "packaged")?;
        if let (Some(vm_time), Some(loop_time)) = (packaged_time, loop_boot_case) {
            println!(
                "  VM overhead for {BOOT_CASE}: {:.1}x the loop backend ({:.2} s against {:.2} s, medians)",
                vm_time.as_secs_f64() / loop_time.as_secs_f64().max(1e-9),
                vm_time.as_secs_f64(),
                loop_time.as_secs_f64()
            );
        }
        match &minimal {
            Some(image) => {
                let vm = args.vm.prepare(Some(image))?;
                boots(&vm, reps, work.path(), "minimal")?;
            }
            None => println!(
                "VM, minimal kernel: not measured (pass --kernel-tree or --minimal-kernel)"
            ),
        }
        match &copy {
            Some(tree) => edit_to_verdict(tree, &args.vm, reps, work.path())?,
            None => println!("edit to verdict: not measured (pass --kernel-tree)"),
        }
        if let (true, Some(tree), Some(image)) = (args.coverage, &copy, &minimal) {
            coverage::cost(tree, image, plain_build, &args.vm, reps, work.path())?;
        }
    }

    if args.mutants {
        match &args.btrfs_progs_tree {
            Some(tree) => mutants::progs(tree, reps, work.path())?,
            None => println!("btrfs-progs mutants: not measured (pass --btrfs-progs-tree)"),
        }
        match &args.kernel_tree {
            Some(tree) => mutants::kernel(tree, &args.vm, reps, work.path())?,
            None => println!("kernel mutants: not measured (pass --kernel-tree)"),
        }
    }

    manifest_hashing(reps, work.path())?;
    Ok(EXIT_PASSED)
}

/// The quick group on loop devices: wall time per case and in total. Returns the boot case's
/// median, for the VM overhead.
fn quick_suite(reps: usize, work: &Path) -> Result<Option<Duration>> {
    if let Err(why) = preflight::loopback() {
        println!("quick suite, loop backend: not measured ({why})");
        return Ok(None);
    }
    let cases = quick_cases();
    let mut totals = Vec::new();
    let mut per_case: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for rep in 0..reps {
        interrupt::check()?;
        let plan = Plan::new(
            cases.clone(),
            work.join(format!("quick-{rep}")),
            cases.len(),
        );
        let started = Instant::now();
        let results = runner::execute(&plan, &backend::Loop, &|_| {}).results;
        totals.push(started.elapsed());
        all_passed(&results)?;
        for (i, result) in results.iter().enumerate() {
            per_case[i].push(result.elapsed);
        }
    }
    let total = bench::median(&totals);
    println!(
        "quick suite, loop backend: {} wall in total; target 12 s: {}",
        spread(&totals),
        met(total <= Duration::from_secs(12))
    );
    let mut boot_case = None;
    for (case, times) in cases.iter().zip(&per_case) {
        println!("  {}: {}", case.name, spread(times));
        if case.name == BOOT_CASE {
            boot_case = Some(bench::median(times));
        }
    }
    Ok(boot_case)
}

/// Boots `vm` `reps` times with the boot case; prints the time from qemu's start to the case's
/// first step, and returns the case's whole wall time (median).
fn boots(vm: &Vm, reps: usize, work: &Path, label: &str) -> Result<Option<Duration>> {
    let case = cases::by_name(BOOT_CASE).context("the boot case is missing")?;
    let mut first_steps = Vec::new();
    let mut walls = Vec::new();
    for rep in 0..reps {
        interrupt::check()?;
        let dir = work.join(format!("vm-{label}-{rep}"));
        let result = runner::run_one(case, &dir, CaseOptions::default(), vm);
        if result.outcome != Outcome::Passed {
            anyhow::bail!(
                "{BOOT_CASE} did not pass in the {label} guest ({}); results in {}",
                result.outcome.label(),
                result.dir.display()
            );
        }
        walls.push(result.elapsed);
        first_steps.extend(vm::first_step_time(&result.dir));
    }
    let target = if label == "minimal" { 2.5 } else { 5.0 };
    println!(
        "VM, {label} kernel {} ({}): qemu start to first case step {}; target {target} s: {}",
        vm.kernel.release,
        vm.accel,
        spread(&first_steps),
        met(bench::median(&first_steps).as_secs_f64() <= target)
    );
    println!("  {BOOT_CASE} in that guest: {} wall", spread(&walls));
    Ok(Some(bench::median(&walls)))
}

/// A first build of `tree` in a fresh cache, and a rebuild after touching one file in
/// fs/btrfs. The bench builds a copy of the tree, which it may touch: the tree itself is only
/// read. Returns the copy, the bzImage and the first build's time.
fn kernel_builds(tree: &Path, work: &Path) -> Result<(PathBuf, PathBuf, Duration)> {
    let copy = work.join("linux");
    mirror::sync(tree, &copy).with_context(|| format!("copying {}", tree.display()))?;
    // A fresh cache of its own, so the first build starts from nothing.
    let cache = work.join("kernel-cache");
    let started = Instant::now();
    let built = kernel_build::build_in(&cache, &copy, None, &Default::default(), &say)?;
    let first = started.elapsed();
    touch(&copy.join(EDITED))?;
    let started = Instant::now();
    kernel_build::build_in(&cache, &copy, None, &Default::default(), &say)?;
    let rebuild = started.elapsed();
    println!(
        "kernel tree {}: first build {:.0} s; rebuild after touching {EDITED} {:.1} s; target 30 s: {}",
        tree.display(),
        first.as_secs_f64(),
        rebuild.as_secs_f64(),
        met(rebuild <= Duration::from_secs(30))
    );
    Ok((copy, built.bzimage, first))
}

/// The file a developer edits in the edit-to-verdict figure.
const EDITED: &str = "fs/btrfs/send.c";

fn touch(path: &Path) -> Result<()> {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .with_context(|| format!("touching {}", path.display()))
}

/// The loop a developer lives in: touch fs/btrfs/send.c in `tree`, then what `sendtest run
/// --kernel-tree TREE -g quick` does until its verdict (mirror, rebuild, initramfs, a guest per
/// case). Timed `reps` times.
fn edit_to_verdict(tree: &Path, vm_args: &VmArgs, reps: usize, work: &Path) -> Result<()> {
    let cases = quick_cases();
    let mut times = Vec::new();
    for rep in 0..reps {
        interrupt::check()?;
        touch(&tree.join(EDITED))?;
        let started = Instant::now();
        let built = kernel_build::build_in(
            &work.join("kernel-cache"),
            tree,
            None,
            &Default::default(),
            &|_| {},
        )?;
        let vm = vm_args.prepare(Some(&built.bzimage))?;
        let plan = Plan::new(
            cases.clone(),
            work.join(format!("verdict-{rep}")),
            vm.default_jobs(std::thread::available_parallelism().map_or(1, |n| n.get())),
        );
        let results = runner::execute(&plan, &vm, &|_| {}).results;
        times.push(started.elapsed());
        all_passed(&results)?;
    }
    println!(
        "edit to verdict: touch {EDITED}, rebuild, boot and run the quick group ({} case(s)) in guests: {}; target 20 s: {}",
        cases.len(),
        spread(&times),
        met(bench::median(&times) <= Duration::from_secs(20))
    );
    Ok(())
}

/// Manifest hashing of a tree of large files and of a tree of many small ones, side by side
/// with `sha256sum` over the same files.
fn manifest_hashing(reps: usize, work: &Path) -> Result<()> {
    for (label, files, size) in [
        ("large files (8 x 64 MiB)", 8, 64 << 20),
        ("small files (10000 x 4 KiB)", 10_000, 4 << 10),
    ] {
        interrupt::check()?;
        let dir = work.join(format!("tree-{files}"));
        let paths = bench::make_tree(&dir, files, size)?;
        let figures = bench::hashing(&dir, &paths, reps)?;
        println!(
            "manifest hashing, {label}: {:.0} MB/s on {} cores; sha256sum {:.0} MB/s on one; per core {:.2}x sha256sum; target 0.8x: {}",
            figures.manifest_mb_s(),
            figures.cores,
            figures.sha256sum_mb_s(),
            figures.per_core_ratio(),
            met(figures.per_core_ratio() >= 0.8)
        );
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// An error naming the first of `results` that did not pass: a benchmark of failing cases
/// measures nothing.
fn all_passed(results: &[sendtest::outcome::CaseResult]) -> Result<()> {
    if let Some(bad) = results.iter().find(|r| !r.outcome.is_pass()) {
        anyhow::bail!(
            "{} did not pass while benchmarking ({}); results in {}",
            bad.name,
            bad.outcome.label(),
            bad.dir.display()
        );
    }
    Ok(())
}

fn met(yes: bool) -> &'static str {
    if yes {
        "met"
    } else {
        "MISSED"
    }
}
