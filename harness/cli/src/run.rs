//! `sendtest run`: select cases, pick the backend, run the selection (repeatedly with `-i`/`-I`,
//! with reruns of failures with `-L`), and report to the terminal, JUnit and JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use sendtest::build::kernel as kernel_build;
use sendtest::case::Case;
use sendtest::progress::Activity;
use sendtest::report::{self, EXIT_ERROR};
use sendtest::results::{self, Times};
use sendtest::runner::{self, CaseResult, Outcome, RunConfig};
use sendtest::vm::Vm;
use sendtest::{interrupt, preflight};

use crate::{
    at_least_one, prepare_vm, say, sweep_dead_runs, Backend, OutputArgs, ProgsArgs, VmArgs,
};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Run the cases whose name contains any of these.
    filters: Vec<String>,
    /// Run the cases in this group (repeatable): auto, quick, send, race, stress, delalloc…
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Leave out the cases in this group (repeatable).
    #[arg(short = 'x', long = "exclude-group", value_name = "GROUP")]
    exclude_groups: Vec<String>,
    /// Leave out the cases named in this file: one per line, `#` starts a comment.
    #[arg(long, value_name = "FILE")]
    exclude_file: Option<PathBuf>,
    /// Where cases run: loop devices on this kernel (as root), or a qemu guest per case.
    #[arg(long, value_enum, default_value_t = Backend::Loop)]
    backend: Backend,
    /// Build this kernel tree and run the cases in guests booting it (implies --backend vm).
    #[arg(long, value_name = "PATH", conflicts_with = "kernel")]
    kernel_tree: Option<PathBuf>,
    /// Cases run at once (default: one per core; with --backend vm, one per two cores).
    #[arg(short, long, value_parser = at_least_one)]
    jobs: Option<u64>,
    /// Run the selection N times.
    #[arg(short = 'i', long, value_name = "N", value_parser = at_least_one, conflicts_with = "until_failure")]
    iterations: Option<u64>,
    /// Run the selection up to N times, stopping after the first iteration with a failure.
    #[arg(short = 'I', long, value_name = "N", value_parser = at_least_one)]
    until_failure: Option<u64>,
    /// Rerun each failed case N times afterwards and print its pass rate.
    #[arg(short = 'L', long, value_name = "N", value_parser = at_least_one)]
    rerun_failures: Option<u64>,
    /// Also write the results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Print the results as one JSON document on stdout (the human lines go to stderr).
    #[arg(long)]
    json: bool,
    /// Count a case that was not run (a missing requirement) as a failure; also set by
    /// SENDTEST_REQUIRE_ALL=1.
    #[arg(long)]
    require_all: bool,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    progs: ProgsArgs,
    #[command(flatten)]
    vm: VmArgs,
}

pub fn run(args: &RunArgs) -> Result<u8> {
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
    let mut selected = runner::select(cases::ALL, &selection).map_err(anyhow::Error::msg)?;
    if selected.is_empty() {
        anyhow::bail!("the filters and exclusions leave no case to run");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    sweep_dead_runs();
    args.progs.apply()?;
    let vm = if let Some(tree) = &args.kernel_tree {
        let built = kernel_build::build(tree, None, &say)?;
        Some(prepare_vm(&args.vm, Some(&built.bzimage))?)
    } else if args.backend == Backend::Vm || args.vm.kernel.is_some() {
        Some(prepare_vm(&args.vm, None)?)
    } else {
        preflight::loopback().map_err(anyhow::Error::msg)?;
        None
    };
    let default_jobs = if vm.is_some() {
        (cores / 2).max(1)
    } else {
        cores
    };
    let jobs = args.jobs.map_or(default_jobs, |j| j as usize);

    let root = &args.output.results;
    let run_dir = results::new_run_dir(root)?;
    let place = match &vm {
        None => "loop".to_string(),
        Some(vm) => format!("vm-{}", vm.kernel.release),
    };
    let mut times = Times::load(root, &place);
    let previous = times.clone();
    times.longest_first(&mut selected, |c| c.name);
    let iterations = args.iterations.or(args.until_failure).unwrap_or(1) as u32;
    say(&format!(
        "{} case(s), {jobs} at a time{}, results in {}",
        selected.len(),
        if iterations > 1 {
            format!(", {iterations} iterations")
        } else {
            String::new()
        },
        run_dir.display()
    ));

    let total = selected.len() * iterations as usize;
    let activity = Activity::start_quietly(&format!("running {total} case(s)"));
    let done = std::sync::atomic::AtomicUsize::new(0);
    let print = |result: &CaseResult| {
        let mut lines = vec![report::case_line(result)];
        lines.extend(report::headlines(result));
        for line in &lines {
            if args.json {
                activity.eprintln(line);
            } else {
                activity.println(line);
            }
        }
        let finished = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        activity.update(&format!("{finished}/{total} done"));
    };
    let backend = Runner { vm: vm.as_ref() };
    let mut all: Vec<CaseResult> = Vec::new();
    for iteration in 1..=iterations {
        let dir = if iterations > 1 {
            run_dir.join(format!("iteration-{iteration}"))
        } else {
            run_dir.clone()
        };
        let mut outcomes = backend.run(&selected, &args.output.config(dir, jobs), &|r| {
            let mut r = r.clone();
            r.iteration = iteration;
            print(&r)
        });
        for outcome in &mut outcomes {
            outcome.iteration = iteration;
        }
        let failed = outcomes.iter().any(is_failure);
        all.extend(outcomes);
        if interrupt::requested() || (args.until_failure.is_some() && failed) {
            break;
        }
    }
    if let Some(reruns) = args.rerun_failures {
        rerun_failures(
            &backend,
            &all,
            reruns as u32,
            &run_dir,
            &args.output,
            &activity,
        );
    }
    drop(activity);

    if args.require_all || preflight::require_all() {
        for result in &mut all {
            if let Outcome::NotRun(why) = &result.outcome {
                result.outcome =
                    Outcome::Failed(format!("not run ({why}), and all cases are required"));
            }
        }
    }
    for result in all.iter().filter(|r| r.outcome == Outcome::Passed) {
        times.record(&result.name, result.elapsed);
    }
    if let Err(e) = times.save(root) {
        say(&format!("could not keep case times: {e:#}"));
    }
    let summary = report::summary(&all, &previous, &run_dir);
    if args.json {
        eprint!("{summary}");
        print!("{}", report::json(&all, &previous, &run_dir));
    } else {
        print!("{summary}");
    }
    if let Some(path) = &args.junit {
        let xml = report::junit(&all, &run_dir)?;
        std::fs::write(path, xml)
            .with_context(|| format!("cannot write JUnit to {}", path.display()))?;
    }
    if all.iter().any(|r| {
        r.outcome
            .reason()
            .is_some_and(|why| why.starts_with("hung:"))
    }) {
        say("a hung case still holds its scratch filesystems; the next `sendtest run` releases them");
    }
    if interrupt::requested() {
        say("interrupted; scratch filesystems and guests released");
        return Ok(EXIT_ERROR);
    }
    Ok(report::exit_code(&all))
}

fn is_failure(result: &CaseResult) -> bool {
    matches!(result.outcome, Outcome::Failed(_) | Outcome::Error(_))
}

/// Runs cases on the chosen backend.
struct Runner<'a> {
    vm: Option<&'a Vm>,
}

impl Runner<'_> {
    fn run(
        &self,
        cases: &[&Case],
        config: &RunConfig,
        on_done: &(dyn Fn(&CaseResult) + Sync),
    ) -> Vec<CaseResult> {
        match self.vm {
            None => runner::run_cases(cases, config, on_done),
            Some(vm) => {
                runner::run_cases_with(cases, config, &|case| vm.run_case(case, config), on_done)
            }
        }
    }
}

/// `-L N`: runs each case that failed N more times, one at a time, under
/// `<run>/reruns/<case>/<k>/`, and prints how often it passed.
fn rerun_failures(
    backend: &Runner<'_>,
    results: &[CaseResult],
    reruns: u32,
    run_dir: &std::path::Path,
    output: &OutputArgs,
    activity: &Activity,
) {
    let mut failed: Vec<&str> = results
        .iter()
        .filter(|r| is_failure(r))
        .map(|r| r.name.as_str())
        .collect();
    failed.dedup();
    for name in failed {
        let Some(case) = cases::by_name(name) else {
            continue;
        };
        let mut passed = 0;
        let mut ran = 0;
        for k in 1..=reruns {
            if interrupt::requested() {
                break;
            }
            let dir = run_dir.join("reruns").join(name).join(k.to_string());
            let outcome = backend.run(&[case], &output.config(dir, 1), &|_| {});
            ran += 1;
            if outcome.iter().all(|r| r.outcome == Outcome::Passed) {
                passed += 1;
            }
        }
        activity.println(&format!(
            "{name}: passed {passed} of {ran} reruns ({:.0}%), results in {}",
            f64::from(passed) * 100.0 / f64::from(ran.max(1)),
            run_dir.join("reruns").join(name).display()
        ));
    }
}
