//! `sendtest coverage`: build send (a kernel tree) and receive (a btrfs-progs tree) with
//! coverage counters, run cases, and report which lines and functions they executed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sendtest::backend::{self, Backend};
use sendtest::build::kernel::{self as kernel_build, Revert};
use sendtest::build::progs::{self, Variant};
use sendtest::build::{RECEIVE_FILES, SEND_FILES};
use sendtest::coverage::{self, report as coverage_report, Build, Tracefile};
use sendtest::exec::CommandLog;
use sendtest::report::{self, EXIT_ERROR};
use sendtest::runner::{self, Event, Plan};
use sendtest::{interrupt, preflight, results};

use crate::args::{
    at_least_one, out, patch_text, say, sweep_dead_runs, CaseArgs, KernelConfigArgs, ResultsArgs,
    VmArgs,
};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("tree").required(true).multiple(true).args(["kernel_tree", "btrfs_progs_tree"])))]
pub struct CoverageArgs {
    /// The cases to run (default: the `auto` group).
    cases: Vec<String>,
    /// Run the cases in this group (repeatable).
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Build this kernel tree with counters in fs/btrfs and run the cases in guests booting it.
    #[arg(long, value_name = "PATH")]
    kernel_tree: Option<PathBuf>,
    /// Build btrfs and mkfs.btrfs from this btrfs-progs tree with counters, and use them (on
    /// loop devices, or in the guests with --kernel-tree).
    #[arg(long, value_name = "PATH")]
    btrfs_progs_tree: Option<PathBuf>,
    /// Report only the lines this patch (a file) or this git revision (`git diff REV` in the
    /// tree) adds or changes: which ran, which never did.
    #[arg(long, value_name = "PATCH|REV")]
    in_diff: Option<String>,
    /// Also write an HTML report (lcov's genhtml) into DIR.
    #[arg(long, value_name = "DIR")]
    html: Option<PathBuf>,
    /// The files to report on, relative to their tree (repeatable; default: fs/btrfs/send.c,
    /// cmds/receive.c and common/send-stream.c). The tracefiles hold every file.
    #[arg(long = "file", value_name = "FILE")]
    files: Vec<String>,
    /// Functions listed per file, largest first.
    #[arg(long, default_value_t = 20, value_name = "N")]
    top: usize,
    /// Cases run at once (default: one per core; in guests, one per two cores).
    #[arg(short, long, value_parser = at_least_one)]
    jobs: Option<u64>,
    #[command(flatten)]
    output: ResultsArgs,
    #[command(flatten)]
    options: CaseArgs,
    #[command(flatten)]
    config: KernelConfigArgs,
    #[command(flatten)]
    vm: VmArgs,
}

pub fn coverage(args: &CoverageArgs) -> Result<u8> {
    let selection = runner::Selection {
        names: args.cases.clone(),
        groups: if args.cases.is_empty() && args.groups.is_empty() {
            vec!["auto".into()]
        } else {
            args.groups.clone()
        },
        ..Default::default()
    };
    let cases = runner::select(cases::ALL, &selection).map_err(anyhow::Error::msg)?;
    if cases.is_empty() {
        anyhow::bail!("the cases and groups given leave no case to run");
    }
    check_tools()?;
    sweep_dead_runs();
    let mut sides = Vec::new();
    if let Some(tree) = &args.btrfs_progs_tree {
        let variant = Variant {
            label: coverage::VARIANT,
            files: &[],
            make_args: coverage::PROGS_MAKE_ARGS,
        };
        let built = progs::build_variant(tree, Some(&variant), &say)?;
        // Only the signal thread runs besides this one, and it never reads the environment.
        built.put_first_in_path(&std::env::var_os("PATH").unwrap_or_default())?;
        sides.push(Build {
            label: "btrfs-progs",
            data: coverage::PROGS_DATA,
            objects: built.dir.clone(),
            sources: built.dir,
            tree: tree.canonicalize()?,
        });
    }
    let backend: Box<dyn Backend> = match &args.kernel_tree {
        Some(tree) => {
            let tree = tree
                .canonicalize()
                .with_context(|| format!("kernel tree {} does not exist", tree.display()))?;
            let (patch, config) = coverage::kernel_variant(&tree)?;
            let mut extra = args.config.extra()?;
            extra.fragment("coverage", config.text())?;
            let revert = Revert {
                name: coverage::VARIANT,
                patch: &patch,
            };
            let built = kernel_build::build(&tree, Some(revert), &extra, &say)?;
            let options = sendtest::vm::VmOptions {
                coverage: true,
                ..args.vm.options(Some(&built.bzimage))
            };
            let init = std::env::current_exe().context("finding the sendtest binary")?;
            let vm = sendtest::vm::Vm::prepare(options, &init)?;
            sides.insert(
                0,
                Build {
                    label: "kernel",
                    data: coverage::KERNEL_DATA,
                    objects: built.dir,
                    sources: built.source,
                    tree,
                },
            );
            Box::new(vm)
        }
        None => {
            preflight::loopback().map_err(anyhow::Error::msg)?;
            Box::new(backend::Loop)
        }
    };
    let run_dir = results::new_run_dir(&args.output.results)?;
    if args.kernel_tree.is_none() {
        // On loop devices every btrfs process of the run writes its counters here on exit.
        std::env::set_var("GCOV_PREFIX", run_dir.join(coverage::PROGS_DATA));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args
        .jobs
        .map_or_else(|| backend.default_jobs(cores), |j| j as usize);
    let plan = Plan {
        options: args.options.one_configuration()?,
        ..Plan::new(cases, run_dir.clone(), jobs)
    };
    say(&format!(
        "{} case(s) with coverage counters, {jobs} at a time, results in {}",
        plan.cases.len(),
        run_dir.display()
    ));
    let ran = runner::execute(&plan, backend.as_ref(), &|event| match event {
        Event::Done(result) => {
            out(&format!("{}\n", report::case_line(result)));
            for line in report::headlines(result) {
                out(&format!("{line}\n"));
            }
        }
        Event::Reran(rerun) => out(&format!("{}\n", report::rerun_line(rerun))),
    });
    if interrupt::requested() {
        say("interrupted; scratch filesystems and guests released");
        return Ok(EXIT_ERROR);
    }

    let dir = run_dir.join("coverage");
    std::fs::create_dir_all(&dir)?;
    let log = CommandLog::create(&dir.join("commands.log"))?;
    let changed = match &args.in_diff {
        Some(spec) => {
            let tree = &sides.first().context("no tree")?.tree;
            Some(sendtest::mutate::mutant::changed_lines(&patch_text(
                tree, spec,
            )?))
        }
        None => None,
    };
    let mut text = String::new();
    let mut infos = Vec::new();
    for side in &sides {
        let captured = coverage::collect(&run_dir, side, &log)?;
        infos.push(captured.info.clone());
        text.push_str(&format!(
            "{} ({}), tracefile {}:\n",
            side.label,
            side.tree.display(),
            captured.info.display()
        ));
        let tree = side.tree.display().to_string();
        let files: Vec<&str> = if args.files.is_empty() {
            SEND_FILES.iter().chain(RECEIVE_FILES).copied().collect()
        } else {
            args.files.iter().map(String::as_str).collect()
        };
        let shown = captured.tracefile.only(&tree, &files);
        if shown.files.is_empty() {
            text.push_str("  (none of the files asked for has counters)\n");
        }
        let top = if changed.is_some() { 0 } else { args.top };
        text.push_str(&coverage_report::text(&shown, &tree, top));
        if let Some(changed) = &changed {
            text.push_str(&diff_text(&captured.tracefile, &tree, changed));
        }
    }
    std::fs::write(dir.join("report.txt"), &text)?;
    out(&text);
    if let Some(html) = &args.html {
        coverage::html(&infos, html, &log)?;
        say(&format!(
            "HTML report: {}",
            Path::new(html).join("index.html").display()
        ));
    }
    Ok(report::exit_code(&ran.results))
}

/// The lines a patch changes, per file: how many ran, and those that never did.
fn diff_text(
    tracefile: &Tracefile,
    tree: &str,
    changed: &std::collections::BTreeMap<String, std::collections::BTreeSet<usize>>,
) -> String {
    let mut text = String::new();
    let diffs = coverage_report::in_diff(tracefile, tree, changed);
    if diffs.is_empty() {
        text.push_str("  the patch changes no file this side reports on\n");
    }
    for d in diffs {
        text.push_str(&format!(
            "  {}: the patch adds or changes {} line(s), {} with code; the run executed {}{}\n",
            d.file,
            d.changed,
            d.ran.len() + d.not_reached.len(),
            d.ran.len(),
            if d.not_reached.is_empty() {
                String::new()
            } else {
                format!(
                    "; never reached: {}",
                    d.not_reached
                        .iter()
                        .map(|l| l.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ));
    }
    text
}

/// lcov's tools, which capture the counters and write the HTML report.
fn check_tools() -> Result<()> {
    for tool in ["lcov", "genhtml", "gcov"] {
        if preflight::find_in_path(tool).is_none() {
            anyhow::bail!(
                "sendtest coverage needs {tool}: `apt-get install lcov` (or run `bash .ci/install-deps`)"
            );
        }
    }
    Ok(())
}
