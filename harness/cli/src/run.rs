//! `sendtest run`: turn the arguments into a plan and a backend, run it, and report to the
//! terminal, JUnit and JSON.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use sendtest::backend::{self, Backend};
use sendtest::progress::Activity;
use sendtest::report::{self, EXIT_ERROR};
use sendtest::results::{self, Times};
use sendtest::runner::{self, Event, Plan};
use sendtest::{interrupt, preflight};

use crate::args::{
    at_least_one, out, say, sweep_dead_runs, BackendChoice, CaseArgs, KernelConfigArgs, ProgsArgs,
    ResultsArgs, VmArgs,
};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Run the cases whose name contains any of these.
    #[arg(help_heading = "Selection")]
    filters: Vec<String>,
    /// Run the cases in this group (repeatable): auto, quick, send, race, stress, delalloc…
    #[arg(
        help_heading = "Selection",
        short = 'g',
        long = "group",
        value_name = "GROUP"
    )]
    groups: Vec<String>,
    /// Leave out the cases in this group (repeatable).
    #[arg(
        help_heading = "Selection",
        short = 'x',
        long = "exclude-group",
        value_name = "GROUP"
    )]
    exclude_groups: Vec<String>,
    /// Leave out the cases named in this file: one per line, `#` starts a comment.
    #[arg(help_heading = "Selection", short = 'E', long, value_name = "FILE")]
    exclude_file: Option<PathBuf>,
    /// Print what would run (the cases in order, the backend, the options) and stop.
    #[arg(help_heading = "Selection", short = 'n', long)]
    dry_run: bool,
    /// Where cases run: loop devices on this kernel (as root), or a qemu guest per case.
    #[arg(help_heading = "Where cases run", long, value_enum, default_value_t = BackendChoice::Loop)]
    backend: BackendChoice,
    /// Build this kernel tree and run the cases in guests booting it (implies --backend vm).
    #[arg(
        help_heading = "Where cases run",
        long,
        value_name = "PATH",
        conflicts_with = "kernel"
    )]
    kernel_tree: Option<PathBuf>,
    /// Cases run at once (default: one per core; with --backend vm, one per two cores).
    #[arg(help_heading = "Where cases run", short, long, value_parser = at_least_one)]
    jobs: Option<u64>,
    /// Run the selection N times.
    #[arg(help_heading = "Repetition", short = 'i', long, value_name = "N", value_parser = at_least_one, conflicts_with = "until_failure")]
    iterations: Option<u64>,
    /// Run the selection up to N times, stopping after the first iteration with a failure.
    #[arg(help_heading = "Repetition", short = 'I', long, value_name = "N", value_parser = at_least_one)]
    until_failure: Option<u64>,
    /// Rerun each failed case N times afterwards and print its pass rate.
    #[arg(help_heading = "Repetition", short = 'L', long, value_name = "N", value_parser = at_least_one)]
    rerun_failures: Option<u64>,
    /// Also write the results as JUnit XML to FILE.
    #[arg(help_heading = "Reports", long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write the results as KTAP (the kselftest format) to FILE.
    #[arg(help_heading = "Reports", long, value_name = "FILE")]
    ktap: Option<PathBuf>,
    /// Print the results as one JSON document on stdout (the human lines go to stderr).
    #[arg(help_heading = "Reports", long)]
    json: bool,
    /// Count a case that was not run (a missing requirement) as a failure; also set by
    /// SENDTEST_REQUIRE_ALL=1.
    #[arg(help_heading = "Reports", long)]
    require_all: bool,
    #[command(flatten)]
    output: ResultsArgs,
    #[command(flatten)]
    options: CaseArgs,
    #[command(flatten)]
    config: KernelConfigArgs,
    #[command(flatten)]
    progs: ProgsArgs,
    #[command(flatten)]
    vm: VmArgs,
}

pub fn run(args: &RunArgs) -> Result<u8> {
    let mut cases = runner::select(cases::ALL, &selection(args)?).map_err(anyhow::Error::msg)?;
    if cases.is_empty() {
        anyhow::bail!("the filters and exclusions leave no case to run");
    }
    if args.dry_run {
        out(&dry_run(args, &cases));
        return Ok(report::EXIT_PASSED);
    }
    sweep_dead_runs();
    args.progs.apply()?;
    let backend = choose_backend(args)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args
        .jobs
        .map_or_else(|| backend.default_jobs(cores), |j| j as usize);

    let root = &args.output.results;
    let run_dir = results::new_run_dir(root)?;
    let place = backend.place();
    let mut times = Times::load(root, &place);
    let previous = times.clone();
    times.longest_first(&mut cases, |c| c.name);
    let iterations = args.iterations.or(args.until_failure).unwrap_or(1) as u32;
    let plan = Plan {
        options: args.options.options(),
        iterations,
        until_failure: args.until_failure.is_some(),
        reruns: args.rerun_failures.unwrap_or(0) as u32,
        require_all: args.require_all || preflight::require_all(),
        configurations: args.options.configurations(),
        ..Plan::new(cases, run_dir.clone(), jobs)
    };
    say(&format!(
        "{} case(s), {jobs} at a time{}, results in {}",
        plan.units_per_iteration(),
        if iterations > 1 {
            format!(", {iterations} iterations")
        } else {
            String::new()
        },
        run_dir.display()
    ));

    let total = plan.units_per_iteration() * iterations as usize;
    let activity = Activity::start_quietly(&format!("running {total} case(s)"));
    let done = AtomicUsize::new(0);
    let print = |line: &str| {
        if args.json {
            activity.eprintln(line);
        } else {
            activity.println(line);
        }
    };
    let ran = runner::execute(&plan, backend.as_ref(), &|event| match event {
        Event::Done(result) => {
            print(&report::case_line(result));
            for line in report::headlines(result) {
                print(&line);
            }
            let finished = done.fetch_add(1, Ordering::SeqCst) + 1;
            activity.update(&format!("{finished}/{total} done"));
        }
        Event::Reran(rerun) => print(&report::rerun_line(rerun)),
    });
    drop(activity);
    let all = ran.results;

    for result in all.iter().filter(|r| r.outcome.is_pass()) {
        times.record(&result.name, result.elapsed);
    }
    if let Err(e) = times.save(root) {
        say(&format!("could not keep case times: {e:#}"));
    }
    let properties = run_properties(backend.as_ref(), &plan);
    let summary = report::summary(&all, &previous, &run_dir);
    if args.json {
        eprint!("{summary}");
        out(&report::json(&all, &properties, &previous, &run_dir));
    } else {
        out(&summary);
    }
    if let Some(path) = &args.junit {
        let xml = report::junit(&all, &properties, &run_dir)?;
        std::fs::write(path, xml)
            .with_context(|| format!("cannot write JUnit to {}", path.display()))?;
    }
    if let Some(path) = &args.ktap {
        std::fs::write(path, report::ktap(&all, &properties))
            .with_context(|| format!("cannot write KTAP to {}", path.display()))?;
    }
    if all.iter().any(|r| r.outcome.is_hang()) {
        say("a hung case still holds its scratch filesystems; the next `sendtest run` releases them");
    }
    if interrupt::requested() {
        say("interrupted; scratch filesystems and guests released");
        return Ok(EXIT_ERROR);
    }
    Ok(report::exit_code(&all))
}

/// What the reports say the run was: the backend's kernel and acceleration, the btrfs-progs
/// that ran, and the seed given.
fn run_properties(backend: &dyn Backend, plan: &Plan<'_>) -> report::Properties {
    let mut properties = backend.properties();
    properties.push(("btrfs_progs", installed_progs()));
    if let Some(seed) = plan.options.random.seed {
        properties.push(("seed", seed.to_string()));
    }
    properties.push(("sendtest", env!("CARGO_PKG_VERSION").to_string()));
    properties
}

/// What `btrfs --version` says of the btrfs-progs first in PATH.
pub fn installed_progs() -> String {
    std::process::Command::new("btrfs")
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default()
}

/// What `--dry-run` prints: the cases, where they would run, and how often.
fn dry_run(args: &RunArgs, cases: &[&sendtest::case::Case]) -> String {
    let place = if let Some(tree) = &args.kernel_tree {
        format!("guests booting a kernel built from {}", tree.display())
    } else if let Some(kernel) = &args.vm.kernel {
        format!("guests booting {}", kernel.display())
    } else if args.backend == BackendChoice::Vm {
        "guests booting the packaged kernel".to_string()
    } else {
        "loop devices on the running kernel".to_string()
    };
    let times = args.iterations.or(args.until_failure).unwrap_or(1);
    let mut text = format!(
        "would run {} case(s) on {place}, {times} time(s){}:\n",
        cases.len(),
        if args.until_failure.is_some() {
            ", stopping after the first iteration with a failure"
        } else {
            ""
        }
    );
    for case in cases {
        text.push_str(&format!("  {}  ({})\n", case.name, case.groups.join(",")));
    }
    text
}

/// The selection the filters, groups and exclusions name.
fn selection(args: &RunArgs) -> Result<runner::Selection> {
    let mut selection = runner::Selection {
        names: args.filters.clone(),
        groups: args.groups.clone(),
        exclude_groups: args.exclude_groups.clone(),
        exclude_names: Vec::new(),
    };
    if let Some(file) = &args.exclude_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read exclude file {}", file.display()))?;
        selection.exclude_names =
            runner::parse_exclude_file(&file.display().to_string(), &text, cases::ALL)
                .map_err(anyhow::Error::msg)?;
    }
    Ok(selection)
}

/// Guests booting a kernel built from `--kernel-tree`, or `--kernel`, or the packaged kernel
/// with `--backend vm`; else loop devices on the running kernel.
fn choose_backend(args: &RunArgs) -> Result<Box<dyn Backend>> {
    if let Some(tree) = &args.kernel_tree {
        let built = args.config.build(tree, None)?;
        return Ok(Box::new(args.vm.prepare(Some(&built.bzimage))?));
    }
    if args.backend == BackendChoice::Vm || args.vm.kernel.is_some() {
        return Ok(Box::new(args.vm.prepare(None)?));
    }
    preflight::loopback().map_err(anyhow::Error::msg)?;
    Ok(Box::new(backend::Loop))
}
