//! The `sendtest` command: list, run, validate and check btrfs send/receive reproducers.
//!
//! Exit codes are an interface: 0 all passed, 1 a case failed (or two manifests differ, or a
//! validation did not hold), 2 the harness or its environment failed (including bad usage),
//! 125 the kernel tree did not build (`git bisect run` skips such a commit).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sendtest::build::kernel::Revert;
use sendtest::build::TreeDoesNotBuild;
use sendtest::manifest::{self, Ignore, Manifest};
use sendtest::report::{self, EXIT_ERROR, EXIT_FAILED, EXIT_PASSED};
use sendtest::{interrupt, results, validate, vm};

use args::{say, sweep_dead_runs, CaseArgs, KernelConfigArgs, ProgsArgs, ResultsArgs, VmArgs};

/// `git bisect run`'s "cannot test this commit".
const EXIT_UNTESTABLE: u8 = 125;

mod args;
mod bench;
mod run;

#[derive(Parser)]
#[command(
    name = "sendtest",
    version,
    about = "Regression harness for btrfs send/receive"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print one case per line: name, groups, summary.
    List,
    /// Run cases (the `auto` group unless filters are given).
    Run(run::RunArgs),
    /// Boot a guest with scratch disks and btrfs-progs, and give its shell to this terminal
    /// (`exit` powers it off; Ctrl-A X ends it at once).
    Shell(ShellArgs),
    /// Release what earlier runs left: images kept by --keep-failed, and what a killed run
    /// held (loop devices, mounts, guests). A live run's are never touched.
    Clean,
    /// Measure the harness's own speed on this machine against its targets.
    Bench(bench::BenchArgs),
    /// Show that a case fails on a kernel tree with its fix reverted and passes with it.
    Validate(ValidateArgs),
    /// Print the manifest of a tree, or compare two trees or saved manifests.
    Manifest {
        /// A directory to take the manifest of.
        #[arg(required_unless_present = "compare")]
        path: Option<PathBuf>,
        /// Compare SOURCE with RECEIVED (directories or saved manifests); exit 1 if they differ.
        #[arg(long, num_args = 2, value_names = ["SOURCE", "RECEIVED"], conflicts_with = "path")]
        compare: Option<Vec<PathBuf>>,
        /// Fields to leave out of the comparison (repeatable): ctime, atime, xattr, xattr.user.foo…;
        /// PATH:FIELD leaves one out at one path only (.:mtime, the root's mtime).
        #[arg(long, value_name = "FIELD")]
        ignore: Vec<String>,
    },
}

#[derive(clap::Args)]
struct ShellArgs {
    /// Build this kernel tree and boot it (default: --kernel, or the packaged kernel).
    #[arg(long, value_name = "PATH", conflicts_with = "kernel")]
    kernel_tree: Option<PathBuf>,
    #[command(flatten)]
    config: KernelConfigArgs,
    #[command(flatten)]
    progs: ProgsArgs,
    #[command(flatten)]
    vm: VmArgs,
}

#[derive(clap::Args)]
struct ValidateArgs {
    /// The case to validate.
    case: String,
    /// The kernel tree to build as it is, and again with the case's revert patch in a copy.
    #[arg(long, value_name = "PATH")]
    kernel_tree: PathBuf,
    /// Runs on each kernel.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Exit 1 unless at least this percentage of the runs without the fix failed.
    #[arg(long, default_value_t = 1.0, value_name = "PERCENT")]
    min_detection: f64,
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

fn main() -> ExitCode {
    if vm::guest::is_guest() {
        vm::guest::main(cases::ALL);
    }
    interrupt::install();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let code = match cli.command {
        Command::List => list(),
        Command::Clean => clean(),
        Command::Shell(args) => shell(&args),
        Command::Run(args) => run::run(&args),
        Command::Bench(args) => bench::bench(&args),
        Command::Validate(args) => validate_case(&args),
        Command::Manifest {
            path,
            compare,
            ignore,
        } => manifest_command(path, compare, &ignore),
    };
    ExitCode::from(code.unwrap_or_else(|e| {
        eprintln!("sendtest: {e:#}");
        if e.downcast_ref::<TreeDoesNotBuild>().is_some() {
            EXIT_UNTESTABLE
        } else {
            EXIT_ERROR
        }
    }))
}

/// Help and version go to stdout with exit 0; a usage error is one line on stderr and exit 2.
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return ExitCode::from(if error.use_stderr() {
            EXIT_ERROR
        } else {
            EXIT_PASSED
        });
    }
    let text = error.render().to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("bad usage")
        .trim_start_matches("error: ");
    eprintln!("sendtest: {first} (`sendtest --help` shows the usage)");
    ExitCode::from(EXIT_ERROR)
}

fn list() -> Result<u8> {
    let width = cases::ALL.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for case in cases::ALL {
        println!(
            "{:<width$}  {}  {}",
            case.name,
            case.groups.join(","),
            case.summary
        );
    }
    Ok(EXIT_PASSED)
}

fn shell(args: &ShellArgs) -> Result<u8> {
    sweep_dead_runs();
    args.progs.apply()?;
    let built = match &args.kernel_tree {
        Some(tree) => Some(args.config.build(tree, None)?),
        None => None,
    };
    let vm = args
        .vm
        .prepare(built.as_ref().map(|b| b.bzimage.as_path()))?;
    vm.shell()?;
    Ok(EXIT_PASSED)
}

fn clean() -> Result<u8> {
    let swept = sendtest::workdir::sweep_dead();
    if swept.is_empty() {
        say("nothing to release");
    } else {
        say(&swept.summary());
    }
    Ok(if swept.problems.is_empty() {
        EXIT_PASSED
    } else {
        EXIT_ERROR
    })
}

fn validate_case(args: &ValidateArgs) -> Result<u8> {
    let case = cases::by_name(&args.case)
        .with_context(|| format!("no case `{}`; `sendtest list` shows the cases", args.case))?;
    let patch = case
        .fix
        .revert
        .with_context(|| format!("case {} has no revert patch to validate with", case.name))?;
    if args.runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    sweep_dead_runs();
    args.progs.apply()?;
    let with_fix = args.config.build(&args.kernel_tree, None)?;
    let revert = Revert {
        name: case.name,
        patch,
    };
    let without_fix = args.config.build(&args.kernel_tree, Some(revert))?;
    let with_vm = args.vm.prepare(Some(&with_fix.bzimage))?;
    let without_vm = args.vm.prepare(Some(&without_fix.bzimage))?;
    let run_dir = results::new_run_dir(&args.output.results)?;
    say(&format!(
        "validating {}: {} run(s) with and without its fix, results in {}",
        case.name,
        args.runs,
        run_dir.display()
    ));
    let validation = validate::validate(
        case,
        &with_vm,
        &without_vm,
        args.runs,
        &args.options.options(),
        &run_dir,
        &|label, run, result| {
            println!("{label} run {run}: {}", report::case_line(result));
        },
    );
    print!("{}", validation.table());
    println!("results: {}", run_dir.display());
    if interrupt::requested() {
        say("interrupted; guests released");
        return Ok(EXIT_ERROR);
    }
    Ok(validation.exit_code(args.min_detection))
}

fn manifest_command(
    path: Option<PathBuf>,
    compare: Option<Vec<PathBuf>>,
    ignore: &[String],
) -> Result<u8> {
    let ignore = Ignore::new(ignore)?;
    if let Some(pair) = compare {
        let (source, received) = (Manifest::load(&pair[0])?, Manifest::load(&pair[1])?);
        let differences = manifest::compare(&source, &received, &ignore);
        for difference in &differences {
            println!("{difference}");
        }
        if differences.is_empty() {
            say(&format!("no differences in {} paths", source.entries.len()));
            return Ok(EXIT_PASSED);
        }
        say(&format!("{} difference(s)", differences.len()));
        return Ok(EXIT_FAILED);
    }
    let path = path.expect("clap requires a path without --compare");
    print!("{}", Manifest::load(&path)?.to_text());
    Ok(EXIT_PASSED)
}
