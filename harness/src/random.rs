//! Randomized differential send/receive: seeded operations in a subvolume, read-only snapshots
//! at random points, the first sent in full and each later one incrementally against the one
//! before, all received on another filesystem and compared with their sources. A failure is
//! shrunk to a minimal list of operations, kept as the seed with the list of indices and as a
//! shell script that reproduces it by hand.

pub mod known;
pub mod ops;
pub mod shrink;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use xshell::cmd;

use crate::case::detected;
use crate::context::Ctx;
use crate::manifest::{self, Ignore, Manifest};
use crate::scratch::ScratchSpec;
pub use known::{KnownBug, Replay, Sends};
pub use ops::Op;

/// Oracle calls the shrinker may make; each is one chain (about a tenth of a second on loop
/// devices for a short list).
const SHRINK_BUDGET: usize = 400;

/// How one chain went.
#[derive(Debug, Default, Clone)]
pub struct Checked {
    pub ops: usize,
    pub snapshots: usize,
    pub sends: usize,
    /// Operations run in another subvolume while the chain sent (the concurrent variant).
    pub noise_ops: usize,
}

/// The failure of a chain: what differed or what failed.
#[derive(Debug, Clone)]
pub struct ChainFailure {
    /// One line.
    pub message: String,
    /// The (path, field) pairs that differed; none when a send or receive failed.
    pub differences: Vec<(String, String)>,
}

impl ChainFailure {
    fn failed(message: String) -> ChainFailure {
        ChainFailure {
            message,
            differences: Vec::new(),
        }
    }
}

/// Runs chains on two scratch filesystems of one case: `source` for the operations and
/// snapshots, `dest` for what is received. Each chain gets fresh subvolumes and deletes them
/// afterwards, so thousands fit.
pub struct Chains<'a> {
    ctx: &'a Ctx,
    source: PathBuf,
    dest: PathBuf,
    ignore: Ignore,
    /// What `ignore` was made of, as `sendtest manifest --ignore` takes it, for the scripts.
    ignore_args: Vec<String>,
    attempt: usize,
    /// Truncate a received file by one byte before comparing (tests of the chain only).
    pub break_received: bool,
    /// Send with `--proto 2 --compressed-data` (the source should be mounted with compression).
    pub proto2: bool,
    /// While the chain sends, run operations from this seed in another subvolume of the same
    /// filesystem, with a balance now and then when there is room.
    pub noise: Option<u64>,
}

/// What a randomized case asks of [`run_seeds`].
pub struct Setup<'a> {
    /// Manifest fields not compared.
    pub ignore: &'a [&'a str],
    /// (path, field) differences passed over as they are found, before any shrinking: a known
    /// bug that nearly every seed would show, hiding everything else.
    pub pass_over: &'a [(&'a str, &'a str)],
    /// Known bugs: a soak reports them apart and does not fail on them.
    pub known_bugs: &'a [KnownBug],
    /// Run operations and balance in another subvolume while each chain sends.
    pub concurrent: bool,
}

/// Operations per list unless `--ops` says otherwise.
pub const DEFAULT_OPS: usize = 200;
/// Snapshots among the operations unless `--snapshots` says otherwise (one more at the end).
pub const DEFAULT_SNAPSHOTS: usize = 3;

/// The source for protocol 2: compressed extents for `--compressed-data` to send as they are.
const COMPRESSED: ScratchSpec = ScratchSpec {
    size: crate::scratch::DEFAULT_SIZE,
    mkfs_args: &[],
    mount_options: "compress=zstd",
};

/// The randomized case's steps: for `--seed` (or a seed from the clock), and with
/// `--duration` for the seeds after it until the time is up, the chain with protocol 1 on a
/// plain filesystem, then with protocol 2 and compressed data on a compress=zstd one where both
/// kernel and btrfs-progs support it. A failure is shrunk and kept. One seed stops at its
/// failure, known bug or not; a soak goes on, reports each distinct failure once, and fails only
/// on those that are not known bugs. The counts are printed.
pub fn run_seeds(t: &mut Ctx, setup: &Setup<'_>) -> Result<()> {
    for bug in setup.known_bugs {
        bug.check()?;
    }
    let knobs = t.random_knobs();
    let count = knobs.ops.unwrap_or(DEFAULT_OPS);
    let snapshots = knobs.snapshots.unwrap_or(DEFAULT_SNAPSHOTS);
    let source = t.scratch("source")?;
    let compressed = t.scratch_with("compressed", COMPRESSED)?;
    let dest = t.scratch("received")?;
    let soak = t.requested_duration();
    let first = knobs.seed.unwrap_or_else(seed_from_clock);
    let proto2 = proto2_supported(t);
    if !proto2 {
        t.note("send protocol 2 with compressed data is not supported here: protocol 1 only");
    }
    let mut plain = Chains::new(t, &source, &dest, setup.ignore, setup.pass_over)?;
    let mut encoded = Chains::new(t, &compressed, &dest, setup.ignore, setup.pass_over)?;
    encoded.proto2 = true;
    for chains in [&mut plain, &mut encoded] {
        chains.break_received = t.tampering();
    }
    let variants = if proto2 { 2 } else { 1 };
    let started = Instant::now();
    let mut total = Checked::default();
    let mut seeds = 0u64;
    let mut findings = Findings::default();
    loop {
        let seed = first.wrapping_add(seeds);
        let list = ops::generate(seed, count, snapshots);
        seeds += 1;
        for chains in [&mut plain, &mut encoded].into_iter().take(variants) {
            // The noise differs from the chain's operations but follows from the same seed.
            chains.noise = setup.concurrent.then_some(seed ^ 0x005e_ed0f_5eed);
            if let Err(failure) = chains.check(&list, &mut total)? {
                let shrunk = shrink_and_keep(chains, seed, &list, &failure)?;
                let known = known::classify(
                    setup.known_bugs,
                    &shrunk.failure,
                    &shrunk.minimal,
                    chains.proto2,
                );
                if soak.is_none() {
                    t.headline(&shrunk.shown)?;
                    return Err(detected(match known {
                        Some(bug) => format!("known bug `{}`: {}", bug.name, shrunk.message),
                        None => shrunk.message,
                    }));
                }
                findings.add(shrunk, known);
                // The other protocol would most likely find the same list.
                break;
            }
        }
        if !soak.is_some_and(|d| started.elapsed() < d) {
            break;
        }
    }
    let protocols = if proto2 {
        "protocol 1, and protocol 2 with compressed data from a compress=zstd filesystem"
    } else {
        "protocol 1"
    };
    let noise = if setup.concurrent {
        format!(", {} operations alongside the sends", total.noise_ops)
    } else {
        String::new()
    };
    let case = case_name(t);
    let line = format!(
        "{case}: {seeds} seed(s) from {first}: {} operations, {} snapshots, {} sends ({protocols}){noise}; {}",
        total.ops,
        total.snapshots,
        total.sends,
        findings.verdict()
    );
    t.headline(&line)?;
    for (bug, seen) in &findings.known {
        let mut seeds: Vec<String> = seen.iter().take(5).map(|f| f.seed.to_string()).collect();
        if seen.len() > 5 {
            seeds.push("…".into());
        }
        let line = format!(
            "{case}: known bug `{}` ({}) met by seed(s) {}; the first: {}",
            bug.name,
            bug.summary,
            seeds.join(", "),
            seen[0].message
        );
        t.headline(&line)?;
    }
    if findings.new.is_empty() {
        return Ok(());
    }
    let mut each = Vec::new();
    for (found, times) in &findings.new {
        t.headline(&found.shown)?;
        each.push(if *times > 1 {
            format!("{} (shrunk to the same list {times} times)", found.message)
        } else {
            found.message.clone()
        });
    }
    Err(detected(format!(
        "{} new failure(s) in {seeds} seeds: {}",
        findings.new.len(),
        each.join(" | ")
    )))
}

/// What a soak found: failures that are not known bugs, each distinct shrunk list once with how
/// many seeds shrank to it, and the seeds that met each known bug.
#[derive(Default)]
struct Findings<'b> {
    new: Vec<(Found, usize)>,
    known: Vec<(&'b KnownBug, Vec<Found>)>,
}

impl<'b> Findings<'b> {
    fn add(&mut self, found: Found, known: Option<&'b KnownBug>) {
        if let Some(bug) = known {
            match self.known.iter_mut().find(|(b, _)| b.name == bug.name) {
                Some((_, seen)) => seen.push(found),
                None => self.known.push((bug, vec![found])),
            }
            return;
        }
        let same = ops::canonical(&found.minimal);
        match self
            .new
            .iter_mut()
            .find(|(f, _)| ops::canonical(&f.minimal) == same)
        {
            Some((_, again)) => *again += 1,
            None => self.new.push((found, 1)),
        }
    }

    fn verdict(&self) -> String {
        let known: Vec<String> = self
            .known
            .iter()
            .map(|(bug, seen)| format!("`{}` in {} seed(s)", bug.name, seen.len()))
            .collect();
        match (self.new.len(), known.is_empty()) {
            (0, true) => "all received trees matched".to_string(),
            (0, false) => format!("no new failures; known bugs met: {}", known.join(", ")),
            (n, true) => format!("{n} new failure(s)"),
            (n, false) => format!("{n} new failure(s); known bugs met: {}", known.join(", ")),
        }
    }
}

/// The case's name: its results directory's.
fn case_name(ctx: &Ctx) -> String {
    ctx.results()
        .file_name()
        .map_or("random".into(), |n| n.to_string_lossy().into_owned())
}

fn seed_from_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() ^ u64::from(d.subsec_nanos()))
}

/// Whether this kernel and btrfs-progs can send protocol 2 with compressed data.
pub fn proto2_supported(ctx: &Ctx) -> bool {
    let kernel = std::fs::read_to_string("/sys/fs/btrfs/features/send_stream_version")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .is_some_and(|v| v >= 2);
    let sh = ctx.sh();
    let progs = crate::exec::output(cmd!(sh, "btrfs send --help"), ctx.log())
        .is_ok_and(|out| format!("{}{}", out.stdout, out.stderr).contains("--compressed-data"));
    kernel && progs
}

impl<'a> Chains<'a> {
    /// Chains on `source` and `dest` that compare all fields but `ignore`, and pass over the
    /// differences of one field at one path in `pass_over`.
    pub fn new(
        ctx: &'a Ctx,
        source: &Path,
        dest: &Path,
        ignore: &[&str],
        pass_over: &[(&str, &str)],
    ) -> Result<Chains<'a>> {
        let ignore_args: Vec<String> = ignore
            .iter()
            .map(|field| field.to_string())
            .chain(
                pass_over
                    .iter()
                    .map(|(path, field)| format!("{path}:{field}")),
            )
            .collect();
        Ok(Chains {
            ctx,
            source: source.to_path_buf(),
            dest: dest.to_path_buf(),
            ignore: Ignore::new(&ignore_args)?,
            ignore_args,
            attempt: 0,
            break_received: false,
            proto2: false,
            noise: None,
        })
    }

    /// How [`script`] should run a chain to do what this one does.
    pub fn script_options(&self) -> ScriptOptions {
        ScriptOptions {
            break_received: self.break_received,
            proto2: self.proto2,
            ignore: self.ignore_args.clone(),
        }
    }

    /// Applies `ops`, snapshots, sends, receives and compares, adding what it did to
    /// `checked`. `Ok(Err(_))` is a finding; `Err(_)` is the environment failing.
    pub fn check(
        &mut self,
        ops: &[Op],
        checked: &mut Checked,
    ) -> Result<std::result::Result<(), ChainFailure>> {
        self.attempt += 1;
        let name = format!("chain-{}", self.attempt);
        let vol = self.ctx.create_subvolume(&self.source.join(&name))?;
        let received = self.dest.join(&name);
        std::fs::create_dir(&received)?;
        let mut snapshots = Vec::new();
        for op in ops {
            if *op == Op::Snapshot {
                snapshots.push(self.snapshot(&vol, &name, snapshots.len())?);
            } else {
                // An operation whose precondition does not hold changes nothing.
                let _ = op.apply(&vol);
                checked.ops += 1;
            }
        }
        snapshots.push(self.snapshot(&vol, &name, snapshots.len())?);
        checked.snapshots += snapshots.len();
        let outcome = match self.noise {
            None => self.send_all(&snapshots, &received, checked),
            Some(seed) => {
                let noise = self
                    .ctx
                    .create_subvolume(&self.source.join(format!("{name}-noise")))?;
                let stop = AtomicBool::new(false);
                let outcome = std::thread::scope(|scope| {
                    let log = self.ctx.log();
                    let worker = scope.spawn(|| make_noise(log, &noise, seed, &stop));
                    let outcome = self.send_all(&snapshots, &received, checked);
                    stop.store(true, Ordering::Relaxed);
                    let noise_ops = worker.join().unwrap_or(0);
                    checked.noise_ops += noise_ops;
                    outcome
                });
                self.ctx.delete_subvolume_quickly(&noise)?;
                outcome
            }
        };
        for snapshot in snapshots.iter().rev() {
            let _ = self
                .ctx
                .delete_subvolume_quickly(&received.join(file_name(snapshot)));
            self.ctx.delete_subvolume_quickly(snapshot)?;
        }
        self.ctx.delete_subvolume_quickly(&vol)?;
        let _ = std::fs::remove_dir(&received);
        Ok(outcome)
    }

    fn snapshot(&self, vol: &Path, name: &str, index: usize) -> Result<PathBuf> {
        self.ctx
            .snapshot_quickly(vol, &self.source.join(format!("{name}.snap{index}")))
    }

    fn send_all(
        &self,
        snapshots: &[PathBuf],
        received: &Path,
        checked: &mut Checked,
    ) -> std::result::Result<(), ChainFailure> {
        let sh = self.ctx.sh();
        let stream = self.ctx.work_dir().join("random.stream");
        let protocol: &[&str] = if self.proto2 {
            &["--proto", "2", "--compressed-data"]
        } else {
            &[]
        };
        for (i, snapshot) in snapshots.iter().enumerate() {
            let parent: Vec<&Path> = match i {
                0 => Vec::new(),
                _ => vec![Path::new("-p"), &snapshots[i - 1]],
            };
            let sent = self.ctx.run(cmd!(
                sh,
                "btrfs send -q {protocol...} {parent...} -f {stream} {snapshot}"
            ));
            sent.map_err(|e| ChainFailure::failed(format!("send of snapshot {i} failed: {e:#}")))?;
            checked.sends += 1;
            self.ctx
                .run(cmd!(sh, "btrfs receive -q -f {stream} {received}"))
                .map_err(|e| {
                    ChainFailure::failed(format!("receive of snapshot {i} failed: {e:#}"))
                })?;
            let got = received.join(file_name(snapshot));
            if self.break_received {
                break_tree(self.ctx, &got).map_err(|e| {
                    ChainFailure::failed(format!("breaking the received tree: {e:#}"))
                })?;
            }
            let differences = Manifest::of_tree(snapshot)
                .and_then(|source| Ok((source, Manifest::of_tree(&got)?)))
                .map(|(source, got)| manifest::compare(&source, &got, &self.ignore))
                .map_err(|e| ChainFailure::failed(format!("manifest of snapshot {i}: {e:#}")))?;
            if !differences.is_empty() {
                let shown: Vec<String> =
                    differences.iter().take(3).map(|d| d.to_string()).collect();
                return Err(ChainFailure {
                    message: format!(
                        "received snapshot {i} differs from its source: {}",
                        shown.join("; ")
                    ),
                    differences: differences
                        .iter()
                        .map(|d| {
                            // A path on one side only differs in no field; no known bug
                            // names this one.
                            let field = d.field().unwrap_or("presence");
                            (d.path().to_string(), field.to_string())
                        })
                        .collect(),
                });
            }
        }
        Ok(())
    }
}

/// Operations from `seed`, over and over, in `dir` until `stop`, and a balance every 200 of them
/// while the filesystem is less than half full. Returns how many operations ran.
fn make_noise(log: &crate::exec::CommandLog, dir: &Path, seed: u64, stop: &AtomicBool) -> usize {
    let list = ops::generate(seed, 200, 0);
    let Ok(sh) = xshell::Shell::new() else {
        return 0;
    };
    let mut done = 0;
    for op in list.iter().cycle() {
        if stop.load(Ordering::Relaxed) || crate::interrupt::requested() {
            break;
        }
        let _ = op.apply(dir);
        done += 1;
        if done % 200 == 0 && half_empty(dir) {
            // Balance may refuse while another runs or the filesystem is busy; either is fine.
            let _ = crate::exec::output(
                cmd!(sh, "btrfs balance start -dusage=90 -musage=90 {dir}"),
                log,
            );
        }
        if done % 200 == 0 {
            // Start over on a clean slate, so the noise keeps changing the tree.
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let _ = if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
    }
    done
}

fn half_empty(path: &Path) -> bool {
    nix::sys::statvfs::statvfs(path).is_ok_and(|s| s.blocks_available() * 2 > s.blocks())
}

/// The deliberate fault of [`Chains::break_received`]: the largest file loses its last byte.
fn break_tree(ctx: &Ctx, received: &Path) -> Result<()> {
    let Some(victim) = largest_file(received)? else {
        return Ok(());
    };
    let sh = ctx.sh();
    ctx.run(cmd!(sh, "btrfs property set -f -ts {received} ro false"))?;
    let file = std::fs::OpenOptions::new().write(true).open(&victim)?;
    file.set_len(file.metadata()?.len() - 1)?;
    ctx.run(cmd!(sh, "btrfs property set -ts {received} ro true"))?;
    Ok(())
}

fn largest_file(dir: &Path) -> Result<Option<PathBuf>> {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let len = entry.metadata()?.len();
                if len > 0 && best.as_ref().map_or(true, |(b, _)| len > *b) {
                    best = Some((len, entry.path()));
                }
            }
        }
    }
    Ok(best.map(|(_, p)| p))
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// A failure, shrunk and kept.
#[derive(Debug, Clone)]
pub struct Found {
    pub seed: u64,
    /// The operations left, without their indices. Two seeds whose lists are the same up to
    /// names ([`ops::canonical`]) found the same problem.
    pub minimal: Vec<Op>,
    /// How the minimal list failed.
    pub failure: ChainFailure,
    /// One line: the seed, what failed, and where the script is.
    pub message: String,
    /// What to print for it: the shrinking and the script.
    pub shown: String,
}

/// Shrinks the failing `ops` and keeps the result in the case's results: `random-<seed>.ops`
/// (seed, indices, operations) and `random-<seed>.sh` (the script).
pub fn shrink_and_keep(
    chains: &mut Chains<'_>,
    seed: u64,
    ops: &[Op],
    failure: &ChainFailure,
) -> Result<Found> {
    let indexed: Vec<(usize, Op)> = ops.iter().cloned().enumerate().collect();
    let mut env_error = None;
    let mut fails = |list: &[(usize, Op)]| {
        let just: Vec<Op> = list.iter().map(|(_, o)| o.clone()).collect();
        match chains.check(&just, &mut Checked::default()) {
            Ok(result) => result.is_err(),
            Err(e) => {
                env_error.get_or_insert(e);
                false
            }
        }
    };
    let simpler = |(i, op): &(usize, Op)| op.simpler().into_iter().map(|o| (*i, o)).collect();
    let without = |list: &[(usize, Op)], at: usize| {
        let just: Vec<Op> = list.iter().map(|(_, o)| o.clone()).collect();
        let rewritten = ops::without_rename(&just, at)?;
        let indices = list
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != at)
            .map(|(_, (i, _))| *i);
        Some(indices.zip(rewritten).collect())
    };
    let moves = shrink::Moves {
        simpler: &simpler,
        without: &without,
    };
    let minimal = shrink::shrink(&indexed, &mut fails, &moves, SHRINK_BUDGET);
    if let Some(e) = env_error {
        return Err(e.context("while shrinking"));
    }
    let just: Vec<Op> = minimal.iter().map(|(_, o)| o.clone()).collect();
    let last_failure = match chains.check(&just, &mut Checked::default())? {
        Err(f) => f,
        Ok(_) => failure.clone(),
    };
    let results = chains.ctx.results().to_path_buf();
    let case = case_name(chains.ctx);
    // The list depends on the seed and its size, so the replay names all three.
    let knobs = chains.ctx.random_knobs();
    let mut replay = format!("sendtest run {case} --seed {seed}");
    if let Some(n) = knobs.ops {
        replay.push_str(&format!(" --ops {n}"));
    }
    if let Some(n) = knobs.snapshots {
        replay.push_str(&format!(" --snapshots {n}"));
    }
    let indices: Vec<String> = minimal.iter().map(|(i, _)| i.to_string()).collect();
    let mut listing = format!(
        "seed {seed}\nreplay {replay}\nindices {}\n# {} of {} operations; the failure: {}\n",
        indices.join(","),
        minimal.len(),
        ops.len(),
        last_failure.message
    );
    for (i, op) in &minimal {
        let _ = writeln!(listing, "{i}\t{op:?}");
    }
    std::fs::write(results.join(format!("random-{seed}.ops")), &listing)?;
    let script = script(seed, &just, &chains.script_options(), &last_failure.message);
    let script_path = results.join(format!("random-{seed}.sh"));
    std::fs::write(&script_path, &script)?;
    Ok(Found {
        seed,
        shown: format!(
            "{case}: seed {seed} fails; shrunk from {} to {} operations; the script (random-{seed}.sh in the case's results):\n{script}",
            ops.len(),
            minimal.len(),
        ),
        message: format!(
            "seed {seed}: {}; shrunk to {} operations, replay with `{replay}`, script in random-{seed}.sh",
            last_failure.message,
            minimal.len()
        ),
        minimal: just,
        failure: last_failure,
    })
}

/// Fields of the manifest that the script's comparison takes with `stat`, and how.
const STAT_FIELDS: &[(&str, &str)] = &[
    ("type", "%F"),
    ("mode", "mode=%a"),
    ("uid", "uid=%u"),
    ("gid", "gid=%g"),
    ("size", "size=%s"),
    ("rdev", "rdev=%t:%T"),
    ("hardlink", "links=%h"),
    ("mtime", "mtime=%.9Y"),
    ("atime", "atime=%.9X"),
];

/// The script's `compare SOURCE RECEIVED`: with `sendtest manifest --compare` when $SENDTEST
/// names sendtest; else with stat (%N carries symlink targets), cmp for the data and getfattr
/// for the xattrs, so that the script needs nothing the kernel list would not have. Both leave
/// out what `ignore` (as `--ignore` takes it) names; for stat, whole fields and the root's.
fn compare_function(ignore: &[String]) -> String {
    let everywhere = |field: &str| ignore.iter().any(|i| i == field);
    let at_root =
        |field: &str| everywhere(field) || ignore.iter().any(|i| *i == format!(".:{field}"));
    let format = |left_out: &dyn Fn(&str) -> bool| {
        std::iter::once("%N")
            .chain(
                STAT_FIELDS
                    .iter()
                    .filter(|(field, _)| !left_out(field))
                    .map(|(_, directive)| *directive),
            )
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (root, entries) = (format(&at_root), format(&everywhere));
    let sendtest_ignore: String = ignore.iter().map(|i| format!("--ignore {i} ")).collect();
    let data = if everywhere("sha256") {
        String::new()
    } else {
        "  while IFS= read -r -d '' f; do\n\
         \x20   cmp -s \"$1/$f\" \"$2/$f\" || { echo \"$f: data differs\"; differs=1; }\n\
         \x20 done < <(cd \"$1\" && find . -type f -print0)\n"
            .to_string()
    };
    let xattrs = if ignore.iter().any(|i| i.starts_with("xattr")) {
        String::new()
    } else {
        "  diff <(xattrs \"$1\") <(xattrs \"$2\") || differs=1\n".to_string()
    };
    format!(
        "attributes() {{\n\
         \x20 (cd \"$1\" && stat -c '{root}' . &&\n\
         \x20   find . -mindepth 1 -print0 | sort -z | xargs -0 -r stat -c '{entries}')\n\
         }}\n\
         xattrs() {{\n\
         \x20 (cd \"$1\" && find . -print0 | sort -z | xargs -0 getfattr -h -d -m - 2>/dev/null)\n\
         }}\n\
         compare() {{\n\
         \x20 if [ -n \"${{SENDTEST:-}}\" ]; then\n\
         \x20   \"$SENDTEST\" manifest {sendtest_ignore}--compare \"$1\" \"$2\"\n\
         \x20   return\n\
         \x20 fi\n\
         \x20 local differs=0 f\n\
         \x20 diff <(attributes \"$1\") <(attributes \"$2\") || differs=1\n\
         {data}{xattrs}\
         \x20 [ $differs = 0 ] && echo \"no differences: $2\"\n\
         \x20 return $differs\n\
         }}\n"
    )
}

/// How a script runs its chain, as [`Chains`] does.
#[derive(Debug, Clone, Default)]
pub struct ScriptOptions {
    /// Truncate the largest received file, as [`Chains::break_received`].
    pub break_received: bool,
    /// Send with `--proto 2 --compressed-data` from a compress=zstd filesystem.
    pub proto2: bool,
    /// What the comparison leaves out, as `sendtest manifest --ignore` takes it.
    pub ignore: Vec<String>,
}

/// A standalone script: two loop-backed btrfs filesystems, the operations in a subvolume, the
/// snapshots, the send/receive chain, and a comparison of each pair.
pub fn script(seed: u64, ops: &[Op], options: &ScriptOptions, failure: &str) -> String {
    let break_received = options.break_received;
    let (mount_options, send_options) = if options.proto2 {
        ("-o compress=zstd ", "--proto 2 --compressed-data ")
    } else {
        ("", "")
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "#!/bin/bash\n# sendtest random, seed {seed}: {} operations and {} snapshots that fail:\n#   {failure}\n\
         # Run as root. Needs btrfs-progs, xfsprogs (xfs_io), attr (setfattr, getfattr), coreutils,\n\
         # findutils and diffutils. SENDTEST=/path/to/sendtest compares with its manifests instead.\n\
         set -u\n{}work=$(mktemp -d)\ntruncate -s 4G \"$work/src.img\" \"$work/dst.img\"\n\
         src=$(losetup -f --show \"$work/src.img\"); dst=$(losetup -f --show \"$work/dst.img\")\n\
         mkfs.btrfs -q -f \"$src\" >/dev/null; mkfs.btrfs -q -f \"$dst\" >/dev/null\n\
         mkdir \"$work/src\" \"$work/dst\"; mount {mount_options}\"$src\" \"$work/src\"; mount \"$dst\" \"$work/dst\"\n\
         btrfs -q subvolume create \"$work/src/vol\"\ncd \"$work/src/vol\"",
        ops.iter().filter(|o| **o != Op::Snapshot).count(),
        ops.iter().filter(|o| **o == Op::Snapshot).count() + 1,
        compare_function(&options.ignore)
    );
    let mut snaps = 0;
    let snapshot = |s: &mut String, n: usize| {
        let _ = writeln!(
            s,
            "btrfs -q subvolume snapshot -r \"$work/src/vol\" \"$work/src/snap{n}\""
        );
    };
    for op in ops {
        if *op == Op::Snapshot {
            snapshot(&mut s, snaps);
            snaps += 1;
        } else {
            let _ = writeln!(s, "{op} 2>/dev/null");
        }
    }
    snapshot(&mut s, snaps);
    let _ = writeln!(s, "cd /\nstatus=0");
    for i in 0..=snaps {
        let parent = if i == 0 {
            String::new()
        } else {
            format!("-p \"$work/src/snap{}\" ", i - 1)
        };
        let _ = writeln!(
            s,
            "btrfs -q send {send_options}{parent}-f \"$work/s{i}\" \"$work/src/snap{i}\" || status=1\n\
             btrfs -q receive -f \"$work/s{i}\" \"$work/dst\" || status=1"
        );
        if break_received {
            let _ = writeln!(
                s,
                "# The deliberate fault: the largest received file loses its last byte.\n\
                 btrfs property set -f -ts \"$work/dst/snap{i}\" ro false\n\
                 f=$(find \"$work/dst/snap{i}\" -type f -size +0 -printf '%s %p\\n' | sort -n | tail -1 | cut -d' ' -f2-)\n\
                 [ -n \"$f\" ] && truncate -s -1 \"$f\"\n\
                 btrfs property set -ts \"$work/dst/snap{i}\" ro true"
            );
        }
        let _ = writeln!(
            s,
            "compare \"$work/src/snap{i}\" \"$work/dst/snap{i}\" || status=1"
        );
    }
    let _ = writeln!(
        s,
        "umount \"$work/src\" \"$work/dst\"; losetup -d \"$src\" \"$dst\"; rm -rf \"$work\"\n\
         [ $status = 0 ] && echo 'passed: the failure did not reproduce' || echo 'FAILED: reproduced'\n\
         exit $status"
    );
    s
}
