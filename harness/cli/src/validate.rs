//! `sendtest validate`: a case fails without its fix and passes with it, on kernels built
//! from a tree (a fix of send) or with btrfs-progs built from a tree (a fix of receive).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sendtest::backend;
use sendtest::build::kernel::Revert;
use sendtest::build::progs;
use sendtest::case::{Case, Component};
use sendtest::mutate::patched::PatchedView;
use sendtest::report::{self, EXIT_ERROR};
use sendtest::runner::CaseResult;
use sendtest::validate::{self, Side, Validation};
use sendtest::{interrupt, preflight, results};

use crate::args::{
    out, say, sweep_dead_runs, CaseArgs, KernelConfigArgs, ProgsArgs, ResultsArgs, VmArgs,
};

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The case to validate.
    case: String,
    /// The kernel tree to build as it is, and again with the case's revert patch (or --patch)
    /// in a copy. A case whose fix is one of btrfs-progs needs --btrfs-progs-tree instead, and
    /// runs on loop devices on the running kernel.
    #[arg(long, value_name = "PATH")]
    kernel_tree: Option<PathBuf>,
    /// The fix direction: the case must fail on the tree as it is and pass with this patch
    /// applied (in a copy). The default for a case with a proposed fix and no revert patch
    /// (the `unfixed` group) is its own proposed fix.
    #[arg(long, value_name = "PATCH")]
    patch: Option<PathBuf>,
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

pub fn validate_case(args: &ValidateArgs) -> Result<u8> {
    let case = cases::by_name(&args.case)
        .with_context(|| format!("no case `{}`; `sendtest list` shows the cases", args.case))?;
    if args.runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    let given = match &args.patch {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the patch {}", file.display()))?,
        ),
        None => None,
    };
    // Which patch, and whether it is the fix (applied: the case must pass) or its revert.
    let (patch, is_fix) = match (given.as_deref(), case.fix.revert, case.fix.proposed) {
        (Some(patch), _, _) => (patch, true),
        (None, Some(revert), _) => (revert, false),
        (None, None, Some(proposed)) => {
            say(&format!("{}: validating its proposed fix", case.name));
            (proposed, true)
        }
        (None, None, None) => anyhow::bail!(
            "case {} has no revert patch and no proposed fix: pass --patch FILE with a fix to validate",
            case.name
        ),
    };
    sweep_dead_runs();
    let run_dir = results::new_run_dir(&args.output.results)?;
    let validation = match case.fix.applies_to {
        Component::Kernel => with_kernels(args, case, patch, is_fix, &run_dir)?,
        Component::BtrfsProgs => with_progs(args, case, patch, is_fix, &run_dir)?,
    };
    out(&validation.table());
    out(&format!("results: {}\n", run_dir.display()));
    if interrupt::requested() {
        say("interrupted; guests released");
        return Ok(EXIT_ERROR);
    }
    Ok(validation.exit_code(args.min_detection))
}

/// What `validate` prints of each run.
fn print_run(label: &str, run: usize, result: &CaseResult) {
    out(&format!(
        "{label} run {run}: {}\n",
        report::case_line(result)
    ));
}

fn announce(case: &Case, runs: usize, sides: &str, run_dir: &Path) {
    say(&format!(
        "validating {}: {runs} run(s) {sides}, results in {}",
        case.name,
        run_dir.display()
    ));
}

/// A fix of send: the kernel tree built with the fix and without it, each booted in guests.
fn with_kernels(
    args: &ValidateArgs,
    case: &Case,
    patch: &str,
    is_fix: bool,
    run_dir: &Path,
) -> Result<Validation> {
    let tree = args.kernel_tree.as_deref().with_context(|| {
        format!(
            "case {} guards a kernel fix: pass --kernel-tree with a kernel tree",
            case.name
        )
    })?;
    args.progs.apply()?;
    let (with_fix, without_fix) = if is_fix {
        let fixed = Revert { name: "fix", patch };
        (
            args.config.build(tree, Some(fixed))?,
            args.config.build(tree, None)?,
        )
    } else {
        let revert = Revert {
            name: case.name,
            patch,
        };
        (
            args.config.build(tree, None)?,
            args.config.build(tree, Some(revert))?,
        )
    };
    let with_vm = args.vm.prepare(Some(&with_fix.bzimage))?;
    let without_vm = args.vm.prepare(Some(&without_fix.bzimage))?;
    announce(case, args.runs, "with and without its fix", run_dir);
    validate::validate(
        case,
        &Side {
            backend: &with_vm,
            progs: None,
        },
        &Side {
            backend: &without_vm,
            progs: None,
        },
        args.runs,
        &args.options.one_configuration()?,
        run_dir,
        &print_run,
    )
}

/// A fix of receive: the btrfs-progs tree built as it is and with the fix (in a build of its
/// own), each run on loop devices on the running kernel.
fn with_progs(
    args: &ValidateArgs,
    case: &Case,
    patch: &str,
    is_fix: bool,
    run_dir: &Path,
) -> Result<Validation> {
    let tree = args.progs.tree().with_context(|| {
        format!(
            "case {} guards a fix of btrfs-progs: pass --btrfs-progs-tree with a btrfs-progs tree",
            case.name
        )
    })?;
    if args.kernel_tree.is_some() {
        say(&format!(
            "{}: its fix is one of btrfs-progs; it runs on loop devices on the running kernel, not on --kernel-tree",
            case.name
        ));
    }
    preflight::loopback().map_err(anyhow::Error::msg)?;
    let view = PatchedView::new(tree, &[], patch, "the patch")?;
    let label = if is_fix { "fix" } else { "revert" };
    let patched = progs::build_variant(
        tree,
        Some(&progs::Variant {
            label,
            files: &view.files,
            make_args: &[],
        }),
        &say,
    )?;
    let plain = progs::build(tree, &say)?;
    let (with_fix, without_fix) = if is_fix {
        (&patched, &plain)
    } else {
        (&plain, &patched)
    };
    announce(
        case,
        args.runs,
        &format!(
            "with btrfs-progs built with its fix and without ({})",
            plain.version
        ),
        run_dir,
    );
    validate::validate(
        case,
        &Side {
            backend: &backend::Loop,
            progs: Some(with_fix),
        },
        &Side {
            backend: &backend::Loop,
            progs: Some(without_fix),
        },
        args.runs,
        &args.options.one_configuration()?,
        run_dir,
        &print_run,
    )
}
