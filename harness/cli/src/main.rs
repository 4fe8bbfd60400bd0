//! The `sendtest` command: list, run, validate and check btrfs send/receive reproducers.
//!
//! Exit codes are an interface: 0 all passed, 1 a case failed (or two manifests differ, or a
//! validation did not hold), 2 the harness or its environment failed (including bad usage),
//! 125 the kernel tree did not build (`git bisect run` skips such a commit).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sendtest::build::TreeDoesNotBuild;
use sendtest::report::{EXIT_ERROR, EXIT_PASSED};
use sendtest::{interrupt, vm};

use args::{say, sweep_dead_runs, KernelConfigArgs, ProgsArgs, VmArgs};

/// `git bisect run`'s "cannot test this commit".
const EXIT_UNTESTABLE: u8 = 125;

mod args;
mod bench;
mod bug;
mod coverage;
mod mutate;
mod run;
mod show;
mod validate;

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
    /// Print one case per line: name, groups, what it needs, summary.
    List(show::ListArgs),
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
    /// Show that a case fails on a kernel tree with its fix reverted and passes with it; or,
    /// for a bug no kernel fixes yet, that it fails on the tree and passes with a proposed fix.
    Validate(validate::ValidateArgs),
    /// Measure which faults in send (a kernel tree) or receive (a btrfs-progs tree) the suite
    /// catches: mutation testing. Exit 1 if any mutant was missed.
    Mutate(Box<mutate::MutateArgs>),
    /// Build send (a kernel tree) and receive (a btrfs-progs tree) with coverage counters, run
    /// cases, and report the lines and functions they executed (lcov tracefile, HTML).
    Coverage(Box<coverage::CoverageArgs>),
    /// Run a finding's case and print it as a bug report for the linux-btrfs list: reproducer,
    /// `btrfs receive --dump`, expected and actual, proposed fix, and an fstests test.
    Report(Box<bug::ReportArgs>),
    /// Print the manifest of a tree, or compare two trees or saved manifests.
    Manifest(show::ManifestArgs),
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
        Command::List(args) => show::list(&args),
        Command::Clean => clean(),
        Command::Shell(args) => shell(&args),
        Command::Run(args) => run::run(&args),
        Command::Bench(args) => bench::bench(&args),
        Command::Validate(args) => validate::validate_case(&args),
        Command::Mutate(args) => mutate::mutate(&args),
        Command::Coverage(args) => coverage::coverage(&args),
        Command::Report(args) => bug::report(&args),
        Command::Manifest(args) => show::manifest(&args),
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
    eprintln!(
        "sendtest: {} (`sendtest --help` shows the usage)",
        one_line_usage_error(&error.render().to_string())
    );
    ExitCode::from(EXIT_ERROR)
}

/// clap's message on one line: its first line, with what it lists below it (the arguments
/// that were not provided, say), and without the usage and help hints that follow.
fn one_line_usage_error(text: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if !parts.is_empty() {
                break;
            }
            continue;
        }
        parts.push(line.trim_start_matches("error: "));
    }
    if parts.is_empty() {
        return "bad usage".into();
    }
    parts.join(" ")
}

fn shell(args: &ShellArgs) -> Result<u8> {
    sweep_dead_runs();
    args.progs.apply()?;
    let built = match &args.kernel_tree {
        Some(tree) => Some(args.config.build(tree, None)?),
        None => None,
    };
    let options = sendtest::vm::VmOptions {
        shell: true,
        ..args.vm.options(built.as_ref().map(|b| b.bzimage.as_path()))
    };
    let init = std::env::current_exe().context("finding the sendtest binary")?;
    sendtest::vm::Vm::prepare(options, &init)?.shell()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_error_keeps_the_names_of_the_missing_arguments() {
        let text = "error: the following required arguments were not provided:\n  <PATH>\n\nUsage: sendtest manifest <PATH>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line_usage_error(text),
            "the following required arguments were not provided: <PATH>"
        );
        assert_eq!(
            one_line_usage_error("error: unexpected argument '--bogus' found\n\nUsage: x\n"),
            "unexpected argument '--bogus' found"
        );
    }
}
