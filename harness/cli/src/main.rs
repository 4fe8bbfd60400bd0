//! The `sendtest` command: list, run, validate and check btrfs send/receive reproducers.
//!
//! Exit codes are an interface: 0 all passed, 1 a case failed (or two manifests differ, or a
//! validation did not hold), 2 the harness or its environment failed (including bad usage),
//! 125 the kernel tree did not build (`git bisect run` skips such a commit).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use sendtest::build::kernel::{self as kernel_build, Revert};
use sendtest::build::progs;
use sendtest::build::TreeDoesNotBuild;
use sendtest::manifest::{self, Ignore, Manifest};
use sendtest::report::{self, EXIT_ERROR, EXIT_FAILED, EXIT_PASSED};
use sendtest::runner::{RandomKnobs, RunConfig};
use sendtest::vm::{self, AccelChoice, Vm, VmOptions};
use sendtest::{interrupt, results, validate, workdir};

/// `git bisect run`'s "cannot test this commit".
const EXIT_UNTESTABLE: u8 = 125;

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

/// Where results go and how long race cases run, for `run` and `validate`.
#[derive(clap::Args)]
pub struct OutputArgs {
    /// Where results go: a directory per run (for validate: `with-fix/run-<i>/` and
    /// `without-fix/run-<i>/` inside), one per case in it.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Seconds that cases which repeat rounds (races) go on for; each has a default. Random
    /// cases soak: new seeds until the time is up, failing only on bugs that are not known.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    duration: Option<u64>,
    /// Seconds a case may take beyond --duration before it fails as hung, with its commands
    /// killed (on the VM backend: from qemu's start to the guest's power-off).
    #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = at_least_one)]
    timeout: u64,
    /// Scale the sizes in stress cases by F (how much metadata a race case churns per round).
    #[arg(long, default_value_t = 1.0, value_name = "F", value_parser = positive)]
    load_factor: f64,
    /// Random cases: replay this seed (printed by every run of one); with --duration, the
    /// first seed of the soak.
    #[arg(long)]
    seed: Option<u64>,
    /// Random cases: operations per list.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    ops: Option<u64>,
    /// Random cases: snapshots taken among the operations (each one more send in the chain).
    #[arg(long, value_name = "N")]
    snapshots: Option<u64>,
}

impl OutputArgs {
    /// A run's configuration with these options.
    pub fn config(&self, results: PathBuf, jobs: usize) -> RunConfig {
        RunConfig {
            duration: self.duration.map(Duration::from_secs),
            timeout: Duration::from_secs(self.timeout),
            load_factor: self.load_factor,
            random: RandomKnobs {
                seed: self.seed,
                ops: self.ops.map(|n| n as usize),
                snapshots: self.snapshots.map(|n| n as usize),
            },
            ..RunConfig::loopback(results, jobs)
        }
    }
}

#[derive(clap::Args)]
pub struct ProgsArgs {
    /// Build btrfs and mkfs.btrfs from this btrfs-progs tree and use them instead of the
    /// installed ones, on either backend.
    #[arg(long, value_name = "PATH")]
    btrfs_progs_tree: Option<PathBuf>,
}

impl ProgsArgs {
    /// Builds the tree, if one was given, and puts its programs first in PATH.
    fn apply(&self) -> Result<()> {
        let Some(tree) = &self.btrfs_progs_tree else {
            return Ok(());
        };
        let built = progs::build(tree, &say)?;
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![built.bin];
        dirs.extend(std::env::split_paths(&path));
        // Only the signal thread runs besides this one, and it never reads the environment.
        std::env::set_var("PATH", std::env::join_paths(dirs)?);
        Ok(())
    }
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
    output: OutputArgs,
    #[command(flatten)]
    progs: ProgsArgs,
    #[command(flatten)]
    vm: VmArgs,
}

#[derive(clap::Args)]
pub struct VmArgs {
    /// The bzImage to boot (implies --backend vm; default: the newest kernel in /boot with
    /// its modules).
    #[arg(long, value_name = "BZIMAGE")]
    kernel: Option<PathBuf>,
    /// VM: memory per guest, in MiB.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    memory: u32,
    /// VM: accelerator; `auto` uses KVM only when a probe guest boots under it.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    accel: Accel,
    /// VM: appended to the guest kernel's command line (repeatable).
    #[arg(long = "kernel-arg", value_name = "ARG")]
    kernel_args: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Loop,
    Vm,
}

#[derive(Clone, Copy, ValueEnum)]
enum Accel {
    Auto,
    Kvm,
    Tcg,
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

/// Seconds, as `90`, `90s`, `2m` or `1h`.
fn seconds(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("`{text}` is not a time: write 90, 90s, 2m or 1h")),
    };
    number
        .parse::<u64>()
        .map(|n| n * scale)
        .map_err(|_| format!("`{text}` is not a time: write 90, 90s, 2m or 1h"))
}

/// A factor that must be above 0.
fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if f > 0.0 && f.is_finite() => Ok(f),
        Ok(_) => Err("must be above 0".into()),
        Err(_) => Err(format!("`{text}` is not a number")),
    }
}

/// A count or number of seconds that must not be 0.
pub fn at_least_one(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
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

pub fn say(line: &str) {
    eprintln!("sendtest: {line}");
}

/// Releases what earlier harness runs killed with SIGKILL left behind (never a live run's).
pub fn sweep_dead_runs() {
    let swept = workdir::sweep_dead();
    if !swept.is_empty() {
        say(&swept.summary());
    }
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
    let with_fix = kernel_build::build(&args.kernel_tree, None, &say)?;
    let revert = Revert {
        name: case.name,
        patch,
    };
    let without_fix = kernel_build::build(&args.kernel_tree, Some(revert), &say)?;
    let with_vm = prepare_vm(&args.vm, Some(&with_fix.bzimage))?;
    let without_vm = prepare_vm(&args.vm, Some(&without_fix.bzimage))?;
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
        &args.output.config(run_dir.clone(), 1),
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

pub fn prepare_vm(args: &VmArgs, built: Option<&Path>) -> Result<Vm> {
    let options = VmOptions {
        kernel: built.map(Path::to_path_buf).or_else(|| args.kernel.clone()),
        memory_mib: args.memory,
        accel: match args.accel {
            Accel::Auto => AccelChoice::Auto,
            Accel::Kvm => AccelChoice::Kvm,
            Accel::Tcg => AccelChoice::Tcg,
        },
        kernel_args: args.kernel_args.clone(),
        ..VmOptions::default()
    };
    let init = std::env::current_exe()
        .context("finding the sendtest binary to use as the guest's init")?;
    let vm = Vm::prepare(options, &init)?;
    say(&format!(
        "VM backend: kernel {} ({}), {}, initramfs {}",
        vm.kernel.release,
        vm.kernel.image.display(),
        vm.accel,
        vm.initramfs.display()
    ));
    Ok(vm)
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
