//! `sendtest report CASE|SEED`: run a finding's case (or a seed of the random case) once and
//! print it as a bug report for the linux-btrfs list (also kept as `report.txt` in the case's
//! results).

use std::path::PathBuf;

use anyhow::{Context, Result};
use sendtest::backend::{self, Backend};
use sendtest::context::{CaseOptions, RandomKnobs};
use sendtest::report::{EXIT_ERROR, EXIT_FAILED, EXIT_PASSED};
use sendtest::{bug_report, preflight, results, runner};

use crate::args::{out, say, sweep_dead_runs, KernelConfigArgs, ProgsArgs, ResultsArgs, VmArgs};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The case of a finding (`sendtest list -g unfixed` shows them), or a seed of the random
    /// case.
    case: String,
    /// With a seed: the list's size, as the run that found it had it.
    #[arg(long, value_name = "N")]
    ops: Option<usize>,
    /// With a seed: the snapshots among the operations.
    #[arg(long, value_name = "N")]
    snapshots: Option<usize>,
    /// Run it in a guest booting a kernel built from this tree (default: loop devices on the
    /// running kernel).
    #[arg(long, value_name = "PATH", conflicts_with = "kernel")]
    kernel_tree: Option<PathBuf>,
    #[command(flatten)]
    output: ResultsArgs,
    #[command(flatten)]
    config: KernelConfigArgs,
    #[command(flatten)]
    progs: ProgsArgs,
    #[command(flatten)]
    vm: VmArgs,
}

pub fn report(args: &ReportArgs) -> Result<u8> {
    let seed: Option<u64> = args.case.parse().ok();
    let case = match seed {
        Some(_) => cases::by_name("random").context("no random case")?,
        None => cases::by_name(&args.case).with_context(|| {
            format!(
                "no case `{}`; `sendtest list -g unfixed` shows the findings' cases, or give a seed",
                args.case
            )
        })?,
    };
    sweep_dead_runs();
    args.progs.apply()?;
    let backend: Box<dyn Backend> = match (&args.kernel_tree, &args.vm.kernel) {
        (Some(tree), _) => {
            let built = args.config.build(tree, None)?;
            Box::new(args.vm.prepare(Some(&built.bzimage))?)
        }
        (None, Some(_)) => Box::new(args.vm.prepare(None)?),
        (None, None) => {
            preflight::loopback().map_err(anyhow::Error::msg)?;
            Box::new(backend::Loop)
        }
    };
    let run_dir = results::new_run_dir(&args.output.results)?;
    let options = CaseOptions {
        random: RandomKnobs {
            seed,
            ops: args.ops,
            snapshots: args.snapshots,
            ..RandomKnobs::default()
        },
        ..CaseOptions::default()
    };
    let result = runner::run_one(case, &run_dir, options, backend.as_ref());
    let mut seen = backend.properties();
    seen.push(("btrfs-progs", crate::run::installed_progs()));
    match &result.outcome {
        runner::Outcome::Failed(message) => {
            let finding = match seed {
                Some(seed) => {
                    let mut finding = bug_report::Finding::of_seed(seed, message);
                    // A known bug's case holds its proposed fix.
                    if let Some(known) =
                        bug_report::Finding::known_bug(message).and_then(cases::by_name)
                    {
                        finding.proposed = known.fix.proposed;
                        finding.component = known.fix.applies_to;
                        finding.summary = format!(
                            "{} (matched to the known bug {}: {})",
                            finding.summary, known.name, known.summary
                        );
                    }
                    finding
                }
                None => bug_report::Finding::of_case(case),
            };
            let text = bug_report::text(&finding, &result, &seen)?;
            std::fs::write(result.dir.join("report.txt"), &text)?;
            out(&text);
            say(&format!(
                "kept with the case's results: {}",
                result.dir.join("report.txt").display()
            ));
            Ok(EXIT_PASSED)
        }
        runner::Outcome::Passed => {
            say(&format!(
                "{} passed on {}: the bug did not reproduce, so there is nothing to report",
                args.case,
                backend.place()
            ));
            Ok(EXIT_FAILED)
        }
        other => {
            say(&format!(
                "{}: {} (results in {})",
                case.name,
                other.label(),
                result.dir.display()
            ));
            Ok(EXIT_ERROR)
        }
    }
}
