//! The `sendtest` command: list, run and check btrfs send/receive reproducers.
//!
//! Exit codes are an interface: 0 all passed, 1 a case failed (or two manifests differ),
//! 2 the harness or its environment failed (including bad usage).

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use sendtest::manifest::{self, Ignore, Manifest};
use sendtest::report::{self, EXIT_ERROR, EXIT_FAILED, EXIT_PASSED};
use sendtest::runner::{self, RunConfig};
use sendtest::vm::{self, AccelChoice, Vm, VmOptions};
use sendtest::{interrupt, preflight, results};

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
    Run(RunArgs),
    /// Print the manifest of a tree, or compare two trees or saved manifests.
    Manifest {
        /// A directory to take the manifest of.
        #[arg(required_unless_present = "compare")]
        path: Option<PathBuf>,
        /// Compare SOURCE with RECEIVED (directories or saved manifests); exit 1 if they differ.
        #[arg(long, num_args = 2, value_names = ["SOURCE", "RECEIVED"], conflicts_with = "path")]
        compare: Option<Vec<PathBuf>>,
        /// Fields to leave out of the comparison (repeatable): ctime, atime, xattr, xattr.user.foo…
        #[arg(long, value_name = "FIELD")]
        ignore: Vec<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Run the cases whose name contains any of these.
    filters: Vec<String>,
    /// Where cases run: loop devices on this kernel (as root), or a qemu guest per case.
    #[arg(long, value_enum, default_value_t = Backend::Loop)]
    backend: Backend,
    /// Cases run at once (default: one per core; with --backend vm, one per two cores).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Where results go: a directory per run, one per case inside.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// VM: the bzImage to boot (default: the newest kernel in /boot with its modules).
    #[arg(long, value_name = "BZIMAGE")]
    kernel: Option<PathBuf>,
    /// VM: memory per guest, in MiB.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    memory: u32,
    /// VM: seconds a guest may take from start to power-off before its case fails as hung.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    timeout: u64,
    /// VM: accelerator; `auto` uses KVM only when a probe guest boots under it.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    accel: Accel,
    /// VM: appended to the guest kernel's command line (repeatable).
    #[arg(long = "kernel-arg", value_name = "ARG")]
    kernel_args: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
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
    let cli = Cli::parse();
    let code = match cli.command {
        Command::List => list(),
        Command::Run(args) => run(&args),
        Command::Manifest {
            path,
            compare,
            ignore,
        } => manifest_command(path, compare, &ignore),
    };
    ExitCode::from(code.unwrap_or_else(|e| {
        eprintln!("sendtest: {e:#}");
        EXIT_ERROR
    }))
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

fn run(args: &RunArgs) -> Result<u8> {
    let selected = runner::select(cases::ALL, &args.filters).map_err(anyhow::Error::msg)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let vm = match args.backend {
        Backend::Loop => {
            preflight::loopback().map_err(anyhow::Error::msg)?;
            None
        }
        Backend::Vm => Some(prepare_vm(args)?),
    };
    let default_jobs = if vm.is_some() {
        (cores / 2).max(1)
    } else {
        cores
    };
    let jobs = args.jobs.unwrap_or(default_jobs);
    if jobs == 0 {
        anyhow::bail!("--jobs must be at least 1");
    }
    let run_dir = results::new_run_dir(&args.results)?;
    eprintln!(
        "sendtest: {} case(s), {jobs} at a time, results in {}",
        selected.len(),
        run_dir.display()
    );
    let config = RunConfig::loopback(run_dir.clone(), jobs);
    let print = |result: &runner::CaseResult| println!("{}", report::case_line(result));
    let outcomes = match &vm {
        None => runner::run_cases(&selected, &config, &print),
        Some(vm) => runner::run_cases_with(
            &selected,
            &config,
            &|case| vm.run_case(case, &config),
            &print,
        ),
    };
    print!("{}", report::summary(&outcomes, &run_dir));
    if interrupt::requested() {
        eprintln!("sendtest: interrupted; scratch filesystems and guests released");
        return Ok(EXIT_ERROR);
    }
    Ok(report::exit_code(&outcomes))
}

fn prepare_vm(args: &RunArgs) -> Result<Vm> {
    let options = VmOptions {
        kernel: args.kernel.clone(),
        memory_mib: args.memory,
        timeout: Duration::from_secs(args.timeout),
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
    eprintln!(
        "sendtest: VM backend: kernel {} ({}), {}, initramfs {}",
        vm.kernel.release,
        vm.kernel.image.display(),
        vm.accel,
        vm.initramfs.display()
    );
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
            eprintln!("sendtest: no differences in {} paths", source.entries.len());
            return Ok(EXIT_PASSED);
        }
        eprintln!("sendtest: {} difference(s)", differences.len());
        return Ok(EXIT_FAILED);
    }
    let path = path.expect("clap requires a path without --compare");
    print!("{}", Manifest::load(&path)?.to_text());
    Ok(EXIT_PASSED)
}
