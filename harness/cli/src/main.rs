//! The `sendtest` command: list, run and check btrfs send/receive reproducers.
//!
//! Exit codes are an interface: 0 all passed, 1 a case failed (or two manifests differ),
//! 2 the harness or its environment failed (including bad usage).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use sendtest::manifest::{self, Ignore, Manifest};
use sendtest::report::{self, EXIT_ERROR, EXIT_FAILED, EXIT_PASSED};
use sendtest::runner::{self, RunConfig};
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
    /// Run cases (the `auto` group unless filters are given) on loop devices, as root.
    Run {
        /// Run the cases whose name contains any of these.
        filters: Vec<String>,
        /// Cases run at once (default: one per core).
        #[arg(short, long)]
        jobs: Option<usize>,
        /// Where results go: a directory per run, one per case inside.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
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

fn main() -> ExitCode {
    interrupt::install();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::List => list(),
        Command::Run {
            filters,
            jobs,
            results,
        } => run(&filters, jobs, &results),
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

fn run(filters: &[String], jobs: Option<usize>, results_root: &std::path::Path) -> Result<u8> {
    let selected = runner::select(cases::ALL, filters).map_err(anyhow::Error::msg)?;
    preflight::loopback().map_err(anyhow::Error::msg)?;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if jobs == 0 {
        anyhow::bail!("--jobs must be at least 1");
    }
    let run_dir = results::new_run_dir(results_root)?;
    eprintln!(
        "sendtest: {} case(s), {jobs} at a time, results in {}",
        selected.len(),
        run_dir.display()
    );
    let config = RunConfig::loopback(run_dir.clone(), jobs);
    let outcomes = runner::run_cases(&selected, &config, &|result| {
        println!("{}", report::case_line(result))
    });
    print!("{}", report::summary(&outcomes, &run_dir));
    if interrupt::requested() {
        eprintln!("sendtest: interrupted; scratch filesystems released");
        return Ok(EXIT_ERROR);
    }
    Ok(report::exit_code(&outcomes))
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
