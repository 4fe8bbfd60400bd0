//! `sendtest mutate`: make small faults in send (the kernel's `fs/btrfs/send.c`) or receive
//! (btrfs-progs), build each, run the suite against it, and report which faults no case
//! caught.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use sendtest::build::{short_hash, RECEIVE_FILES, SEND_FILES};
use sendtest::case::Case;
use sendtest::context::{CaseOptions, RandomKnobs};
use sendtest::coverage::tracefile::Tracefile;
use sendtest::mutate::mutant::{self, Mutant, Shard};
use sendtest::mutate::patched::PatchedView;
use sendtest::mutate::reach;
use sendtest::mutate::run::{self as mutation, MutationPlan, Score, Target};
use sendtest::mutate::targets::{KernelTarget, ProgsTarget};
use sendtest::report::{EXIT_FAILED, EXIT_PASSED};
use sendtest::{interrupt, runner};

use crate::args::{
    at_least_one, out, patch_text, say, sweep_dead_runs, KernelConfigArgs, ResultsArgs, VmArgs,
};

/// The default suite: the cases, and the fixed random seeds, each reaching code the other does
/// not (see docs/mutation.md).
const MUTATION_SUITE: &[&str] = &["ro-flip-with-delalloc", "random"];
/// What the suite adds for send (a kernel tree), whose mutants run in guests: the shapes that
/// take branches of send the random case seldom does (a second's work each), an incremental
/// send racing balance (send's restart after relocation; about 18 s in a guest), a reused
/// inode number (a bug of kernels after 6.1: on those the unmutated tree fails it, and the run
/// leaves it out, saying so), and each allocation of two sends failed in turn, which takes
/// send's error paths (last, as the slowest).
const MUTATION_SUITE_SEND: &[&str] = &[
    "rename-dependencies",
    "orphan-in-parent",
    "clone-eof-block",
    "hole-over-data",
    "send-during-balance",
    "inode-number-reuse",
    "send-alloc-failure",
];
/// The random case's seeds in a mutation run of send (a kernel tree), unless `--random-seed`
/// says otherwise: the case runs once with each, in this order, until one fails.
pub const RANDOM_SEEDS: &[u64] = &[1, 8];
/// The same for receive (a btrfs-progs tree), whose mutants run on loop devices, a second or
/// two per seed: seeds 1 and 8, then seeds that receive in ways the two do not: 3 into a
/// subvolume mounted on its own (`subvol-mount`), 24 and 36 with `--force-decompress` from lzo
/// and zlib, 2 and 29 several snapshots in one send (`bundle-e`: one stream of several
/// subvolumes; `bundle`: a stream each, one after another in one file), 28 at `-vv` with FIFOs
/// and symlinks, 7 at receive's default level and with `--chroot`, 10 with `--max-errors 0`,
/// 18 with `-m` (the mount point named), 16 a protocol-2 stream with `fallocate` (a punched
/// hole) among its last stream's commands, which the refusals then break.
pub const RECEIVE_SEEDS: &[u64] = &[1, 8, 3, 24, 36, 2, 29, 28, 7, 10, 18, 16];

#[derive(clap::Args)]
pub struct MutateArgs {
    /// The suite's cases (default: ro-flip-with-delalloc and random with a fixed seed).
    cases: Vec<String>,
    /// The suite's groups (repeatable).
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Mutate this kernel tree's send code; mutants run in guests booting each.
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "btrfs_progs_tree",
        required_unless_present = "btrfs_progs_tree"
    )]
    kernel_tree: Option<PathBuf>,
    /// Mutate this btrfs-progs tree's receive code; mutants run on loop devices.
    #[arg(long, value_name = "PATH")]
    btrfs_progs_tree: Option<PathBuf>,
    /// The files to mutate, relative to the tree (repeatable; default: fs/btrfs/send.c, or
    /// cmds/receive.c and common/send-stream.c).
    #[arg(long = "file", value_name = "FILE")]
    files: Vec<String>,
    /// Only the lines this patch (a file) or this git revision (`git diff REV` in the tree)
    /// adds or changes.
    #[arg(long, value_name = "PATCH|REV")]
    in_diff: Option<String>,
    /// Mutate the tree with this patch applied (a file, or a revision as for --in-diff): with
    /// `--in-diff` the same patch, the faults a fix could have, before posting it.
    #[arg(long, value_name = "PATCH|REV")]
    patch: Option<String>,
    /// Only the mutants this file names: a mutant id per line, as `missed.txt` or an
    /// allow-list has them (say, the mutants an earlier run missed: the work list).
    #[arg(long, value_name = "FILE")]
    only: Option<PathBuf>,
    /// At most N mutants, drawn with --seed.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    max: Option<u64>,
    /// The seed of the --max sample.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only shard K of N of the mutants (K/N), to spread them over CI runners.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Equivalent mutants: `<mutant id> <reason>` per line; reported apart, not run.
    #[arg(long, value_name = "FILE")]
    allow: Option<PathBuf>,
    /// The random case's seeds in the suite, comma-separated: it runs once with each, in this
    /// order, until one fails [default: 1,8 for a kernel tree; 1,8,3,24,36,2,29,28,7,10,18,16 for
    /// btrfs-progs].
    #[arg(long, value_name = "SEED[,SEED…]", value_delimiter = ',')]
    random_seed: Vec<u64>,
    /// How many consecutive seeds each of --random-seed's starts (a soak of N seeds per run).
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    random_seeds: u64,
    /// Seconds a case may take under a mutant before it counts as a timeout (default 120 for a
    /// btrfs-progs tree, 240 for a kernel tree, whose suite's slowest case takes about 130 s
    /// in a guest under TCG).
    #[arg(long, value_parser = at_least_one)]
    timeout: Option<u64>,
    /// A tracefile of `sendtest coverage` with the suite's cases on this tree (repeatable, the
    /// counts added up): the missed mutants are split into those on lines the suite never ran
    /// and those on lines it ran (missed-reach.txt).
    #[arg(long, value_name = "TRACEFILE")]
    lines_run: Vec<PathBuf>,
    /// Print the mutants that would run, and stop.
    #[arg(long)]
    list: bool,
    /// Print the results as one JSON document on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    output: ResultsArgs,
    #[command(flatten)]
    config: KernelConfigArgs,
    #[command(flatten)]
    vm: VmArgs,
}

pub fn mutate(args: &MutateArgs) -> Result<u8> {
    let (tree, default_files) = match (&args.kernel_tree, &args.btrfs_progs_tree) {
        (Some(tree), _) => (tree, SEND_FILES),
        (None, Some(tree)) => (tree, RECEIVE_FILES),
        (None, None) => anyhow::bail!("pass --kernel-tree or --btrfs-progs-tree"),
    };
    let tree = tree
        .canonicalize()
        .with_context(|| format!("tree {} does not exist", tree.display()))?;
    let files: Vec<String> = if args.files.is_empty() {
        default_files.iter().map(|f| f.to_string()).collect()
    } else {
        args.files.clone()
    };
    let view = match &args.patch {
        Some(spec) => Some(PatchedView::new(
            &tree,
            &files,
            &patch_text(&tree, spec)?,
            spec,
        )?),
        None => None,
    };
    let source = view.as_ref().map_or(tree.as_path(), |v| v.dir());
    let mutants = select(args, &tree, source, &files)?;
    if args.list {
        for m in &mutants {
            out(&format!(
                "{} ({}: `{}` -> `{}`)\n",
                m.id, m.operator, m.before, m.after
            ));
        }
        say(&format!("{} mutant(s)", mutants.len()));
        return Ok(EXIT_PASSED);
    }
    let cases = suite(args)?;
    let lines_run = lines_run(&args.lines_run)?;
    if let Some(tracefile) = &lines_run {
        if let Some(file) = files.iter().find(|f| !reach::covers(tracefile, &tree, f)) {
            anyhow::bail!(
                "--lines-run: no tracefile has a record of {file}; pass the kernel.info or btrfs-progs.info that `sendtest coverage` wrote for this tree"
            );
        }
    }
    let allowed = match &args.allow {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read allow-list {}", file.display()))?;
            mutant::read_allow_list(&file.display().to_string(), &text)?
        }
        None => Default::default(),
    };
    // One results directory per tree, files' contents and suite, and per sendtest binary (its
    // cases and random generator are the suite too): a rerun of the same command resumes there,
    // and a rebuilt sendtest starts afresh rather than mix verdicts of two suites.
    let exe = std::env::current_exe().context("finding the sendtest binary")?;
    let mut key_parts: Vec<Vec<u8>> = vec![
        tree.display().to_string().into_bytes(),
        std::fs::read(&exe).with_context(|| format!("reading {}", exe.display()))?,
    ];
    for file in &files {
        key_parts.push(std::fs::read(tree.join(file)).unwrap_or_default());
    }
    key_parts.push(
        cases
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(",")
            .into_bytes(),
    );
    let random_seeds = if !args.random_seed.is_empty() {
        args.random_seed.clone()
    } else if args.btrfs_progs_tree.is_some() {
        RECEIVE_SEEDS.to_vec()
    } else {
        RANDOM_SEEDS.to_vec()
    };
    for seed in &random_seeds {
        key_parts.push(seed.to_le_bytes().to_vec());
    }
    if args.random_seeds > 1 {
        key_parts.push(args.random_seeds.to_le_bytes().to_vec());
    }
    if let Some(view) = &view {
        key_parts.push(view.patch.clone().into_bytes());
    }
    let parts: Vec<&[u8]> = key_parts.iter().map(Vec::as_slice).collect();
    let results = args
        .output
        .results
        .join(format!("mutate-{}", short_hash(&parts)));
    let mut plan = MutationPlan {
        steps: mutation::steps(
            &cases,
            suite_options(args.random_seeds, Duration::from_secs(case_timeout(args))),
            &random_seeds,
        ),
        results: results.clone(),
        allowed,
    };
    sweep_dead_runs();
    let mut target: Box<dyn Target> = match &args.kernel_tree {
        Some(_) => {
            let mut target =
                KernelTarget::new(&tree, args.config.extra()?, args.vm.options(None), &exe)?;
            if let Some(view) = &view {
                target.base_patch = view.patch.clone();
            }
            Box::new(target)
        }
        None => {
            sendtest::preflight::loopback().map_err(anyhow::Error::msg)?;
            let mut target = ProgsTarget::new(&tree)?;
            if let Some(view) = &view {
                target.base_files = view.files.clone();
            }
            Box::new(target)
        }
    };
    say(&format!(
        "{} mutant(s) of {} in {}; suite: {}; results in {}",
        mutants.len(),
        files.join(", "),
        tree.display(),
        plan.steps
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", "),
        results.display()
    ));
    let baseline = mutation::baseline(&mut plan, target.as_mut())?;
    for why in &baseline.left_out {
        say(why);
    }
    say(&format!(
        "the unmutated tree builds and passes the suite ({:.1} s)",
        baseline.took.as_secs_f64()
    ));
    let total = mutants.len();
    let mut done = 0;
    let ran = mutation::run(&plan, &mutants, target.as_mut(), &mut |result| {
        done += 1;
        let line = format!(
            "[{done}/{total}] {}{}",
            mutation::result_line(result),
            if result.resumed {
                " (kept from an earlier run)"
            } else {
                ""
            }
        );
        if args.json {
            eprintln!("{line}");
        } else {
            out(&format!("{line}\n"));
        }
    })?;
    let score = Score::of(&ran);
    if args.json {
        out(&mutation::json(&ran, &score));
    }
    say(&score.line());
    if let Some(cost) = mutation::cost_line(&ran) {
        say(&cost);
    }
    if let Some(tracefile) = &lines_run {
        let counts = reach::write(&results, &ran, tracefile, &tree)?;
        let names: Vec<String> = args
            .lines_run
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        say(&counts.line(&names.join(" and ")));
    }
    say(&format!(
        "per mutant: caught.txt, missed.txt, unviable.txt, timeout.txt, allowed.txt and each mutant's diff and case results in {}",
        results.display()
    ));
    if interrupt::requested() {
        say("interrupted; a rerun of the same command resumes where this one stopped");
        return Ok(sendtest::report::EXIT_ERROR);
    }
    Ok(if score.missed > 0 {
        EXIT_FAILED
    } else {
        EXIT_PASSED
    })
}

/// The tracefiles of `--lines-run`, their counts added up; `None` without any.
fn lines_run(files: &[PathBuf]) -> Result<Option<Tracefile>> {
    let mut merged: Option<Tracefile> = None;
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --lines-run {}", file.display()))?;
        let tracefile = Tracefile::parse(&text).with_context(|| {
            format!(
                "--lines-run {} is not an lcov tracefile (sendtest coverage writes one: coverage/kernel.info)",
                file.display()
            )
        })?;
        merged
            .get_or_insert_with(Tracefile::default)
            .merge(&tracefile);
    }
    Ok(merged)
}

/// The mutants the arguments take: the files' mutants (of `source`: the tree, or the tree with
/// `--patch`), kept to a patch's lines, sampled, and sharded, in that order.
fn select(args: &MutateArgs, tree: &Path, source: &Path, files: &[String]) -> Result<Vec<Mutant>> {
    let mut mutants = Vec::new();
    for file in files {
        mutants.extend(mutant::mutants_of(source, file)?);
    }
    if let Some(spec) = &args.in_diff {
        let patch = patch_text(tree, spec)?;
        mutants = mutant::in_diff(mutants, &mutant::changed_lines(&patch));
    }
    if let Some(file) = &args.only {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --only {}", file.display()))?;
        let wanted = mutant::ids_in(&text);
        let unknown = wanted
            .iter()
            .filter(|id| !mutants.iter().any(|m| &m.id == *id))
            .count();
        if unknown > 0 {
            say(&format!(
                "{unknown} of the {} mutant id(s) in {} are not mutants of these files (another tree or version?)",
                wanted.len(),
                file.display()
            ));
        }
        mutants.retain(|m| wanted.contains(&m.id));
    }
    if let Some(max) = args.max {
        mutants = mutant::sample(mutants, max as usize, args.seed);
    }
    if let Some(shard) = &args.shard {
        mutants = Shard::parse(shard)?.take(mutants);
    }
    Ok(mutants)
}

/// The default mutation suite's cases: for send (`kernel`), or for receive.
pub fn mutation_suite(kernel: bool) -> Result<Vec<&'static Case>> {
    let send: &[&str] = if kernel { MUTATION_SUITE_SEND } else { &[] };
    MUTATION_SUITE
        .iter()
        .chain(send)
        .map(|name| cases::by_name(name).context("the mutation suite names a missing case"))
        .collect()
}

/// The seconds each case may take: `--timeout`, or the default for the tree's suite.
fn case_timeout(args: &MutateArgs) -> u64 {
    args.timeout
        .unwrap_or(if args.kernel_tree.is_some() { 240 } else { 120 })
}

/// The options the suite runs with: `random_seeds` seeds from each of the random case's
/// (which [`mutation::steps`] sets), and `timeout` per case.
pub fn suite_options(random_seeds: u64, timeout: Duration) -> CaseOptions {
    CaseOptions {
        timeout,
        random: RandomKnobs {
            seeds: (random_seeds > 1).then_some(random_seeds),
            // A caught mutant needs its verdict, not a script: shrinking would spend the
            // case's time limit on tries.
            no_shrink: true,
            ..RandomKnobs::default()
        },
        ..CaseOptions::default()
    }
}

/// The suite: the cases and groups named, or the mutation suite.
fn suite(args: &MutateArgs) -> Result<Vec<&'static Case>> {
    if args.cases.is_empty() && args.groups.is_empty() {
        return mutation_suite(args.kernel_tree.is_some());
    }
    let selection = runner::Selection {
        names: args.cases.clone(),
        groups: args.groups.clone(),
        ..Default::default()
    };
    runner::select(cases::ALL, &selection).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_adds_the_rename_shapes_and_the_allocation_failures_last_and_receive_does_not() {
        let names = |kernel| -> Vec<&str> {
            mutation_suite(kernel)
                .unwrap()
                .iter()
                .map(|c| c.name)
                .collect()
        };
        assert_eq!(
            names(true),
            [
                "ro-flip-with-delalloc",
                "random",
                "rename-dependencies",
                "orphan-in-parent",
                "clone-eof-block",
                "hole-over-data",
                "send-during-balance",
                "inode-number-reuse",
                "send-alloc-failure"
            ]
        );
        assert_eq!(names(false), ["ro-flip-with-delalloc", "random"]);
    }

    #[test]
    fn a_kernel_tree_gets_the_longer_default_timeout_and_timeout_overrides_both() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            mutate: MutateArgs,
        }
        let timeout = |argv: &[&str]| {
            let cli = <Cli as clap::Parser>::try_parse_from(argv).unwrap();
            case_timeout(&cli.mutate)
        };
        assert_eq!(timeout(&["x", "--kernel-tree", "/k"]), 240);
        assert_eq!(timeout(&["x", "--btrfs-progs-tree", "/p"]), 120);
        assert_eq!(
            timeout(&["x", "--kernel-tree", "/k", "--timeout", "90"]),
            90
        );
    }
}
