//! One chain: a list's operations in a fresh subvolume, its snapshots sent (the first in full,
//! each later one against the one before), received, and compared with their sources.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use xshell::cmd;

use super::compression::Compression;
use super::noise::make_noise;
use super::ops::Op;
use super::parents::{Parents, FULL_DIR, TWIN_DIR};
use super::receive::Receive;
use super::script::ScriptOptions;
use super::verbosity::{Placement, Verbosity};
use super::wide::{self, Wide};
use crate::context::{Breakage, Ctx};
use crate::manifest::Ignore;
use crate::mount::Mount;

mod again;
mod compare;
mod no_data;
mod refuse;
mod top;

/// How one chain went.
#[derive(Debug, Default, Clone)]
pub struct Checked {
    pub ops: usize,
    pub snapshots: usize,
    pub sends: usize,
    /// Extent items that send must clone, each checked to be received shared (the layout
    /// oracle's shared rule), counted once for each received copy.
    pub must_clone: usize,
    /// Operations run in another subvolume while the chain sent (the concurrent variant).
    pub noise_ops: usize,
    /// Inode numbers that a snapshot sent against a twin shares with it: each a number reused
    /// by a newer inode, as send sees it.
    pub reused: usize,
    /// Streams broken on purpose that receive refused.
    pub refused: usize,
    /// Streams without file data (`--no-data`) received, their lines counted.
    pub without_data: usize,
}

/// The failure of a chain: what differed or what failed.
#[derive(Debug, Clone)]
pub struct ChainFailure {
    /// One line.
    pub message: String,
    /// The (path, field) pairs that differed; none when a send or receive failed.
    pub differences: Vec<(String, String)>,
    /// A receive failed for a full receiving filesystem: an environment error, not a finding.
    pub out_of_space: bool,
    /// What `btrfs receive --dump` printed of the stream whose received snapshot differed.
    pub dump: Option<String>,
}

/// What a chain came to.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Every received snapshot matched its source.
    Matched,
    /// A finding: a difference, or a failed send or receive.
    Failed(ChainFailure),
}

impl ChainFailure {
    fn failed(message: String) -> ChainFailure {
        ChainFailure {
            message,
            differences: Vec::new(),
            out_of_space: false,
            dump: None,
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
    /// Break each received tree this way before comparing (tests of the checks only).
    pub break_received: Option<Breakage>,
    /// Send with `--proto 2 --compressed-data` (the source should be mounted with compression).
    pub proto2: bool,
    /// What the source is mounted to compress with, for the protocol-2 chain.
    pub compression: Compression,
    /// While the chain sends, run operations from this seed in another subvolume of the same
    /// filesystem, with a balance now and then when there is room.
    pub noise: Option<u64>,
    /// How and where the streams are received.
    pub receive: Receive,
    /// What the later snapshots are sent against.
    pub parents: Parents,
    /// How loudly receive runs, and so what it must print.
    pub verbosity: Verbosity,
    /// Whether that level is set by receive's option or by btrfs's.
    pub placement: Placement,
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
            break_received: None,
            proto2: false,
            noise: None,
            receive: Receive::Plain,
            parents: Parents::Previous,
            compression: Compression::default(),
            verbosity: Verbosity::default(),
            placement: Placement::default(),
        })
    }

    /// How [`script`] should run a chain to do what this one does.
    pub fn script_options(&self) -> ScriptOptions {
        ScriptOptions {
            break_received: self.break_received == Some(Breakage::Truncate),
            proto2: self.proto2,
            compression: self.compression,
            ignore: self.ignore_args.clone(),
            receive: self.receive,
            parents: self.parents,
            configuration: self.ctx.configuration(),
            compressed: false,
        }
    }

    /// The options of each `btrfs send`: protocol 2 with compressed data, or the
    /// configuration's.
    pub fn send_options(&self) -> &'static [&'static str] {
        if self.proto2 {
            PROTO2
        } else {
            self.ctx.configuration().send
        }
    }

    /// Applies `ops`, snapshots, sends, receives and compares, adding what it did to
    /// `checked`. An error is the environment failing.
    pub fn check(&mut self, ops: &[Op], checked: &mut Checked) -> Result<Verdict> {
        self.attempt += 1;
        let name = format!("chain-{}", self.attempt);
        let vol = self.ctx.create_subvolume(&self.source.join(&name))?;
        // With `subvol-mount`, the chain's directory is a subvolume mounted on its own, beside
        // it on the top of the receiving filesystem, and the mount receives.
        let (received, own_mount) = if self.receive.own_mount() {
            let subvol = self.ctx.create_subvolume(&self.dest.join(&name))?;
            let at = self.dest.join(format!("{name}.mnt"));
            std::fs::create_dir(&at)?;
            let mount = self.ctx.mount_subvolume(&subvol, &at)?;
            (at, Some((mount, subvol)))
        } else {
            let received = self.dest.join(&name);
            std::fs::create_dir(&received)?;
            (received, None)
        };
        for target in self.receive.targets(&received) {
            std::fs::create_dir_all(target)?;
        }
        let beside = match self.receive.beside() {
            Some(dir) => {
                let at = received.join(dir);
                std::fs::create_dir(&at)?;
                let mount = Mount::new(Path::new("tmpfs"), &at, "tmpfs", "size=1m")?;
                self.ctx.note(&format!(
                    "mounted a tmpfs on {} beside the receiving directory",
                    at.display()
                ));
                Some(mount)
            }
            None => None,
        };
        let mut snapshots = Vec::new();
        // Files unlinked while open stay open until the sends are done: orphan inodes in the
        // snapshots taken meanwhile.
        let mut held = Vec::new();
        for op in ops {
            if *op == Op::Snapshot {
                snapshots.push(self.snapshot(&vol, &name, snapshots.len())?);
            } else if let Op::Wide(Wide::FlipSnapshot { touch }) = op {
                if let Some(last) = snapshots.last() {
                    let sh = self.ctx.sh();
                    wide::flip(last, *touch, &mut |ro| {
                        let ro = ro.to_string();
                        self.ctx
                            .run(cmd!(sh, "btrfs property set -ts {last} ro {ro}"))
                            .map(drop)
                    })?;
                }
                checked.ops += 1;
            } else {
                if let Op::Wide(wide) = op {
                    held.extend(wide.hold(&vol));
                }
                // An operation whose precondition does not hold changes nothing.
                let _ = op.apply(&vol);
                checked.ops += 1;
            }
        }
        snapshots.push(self.snapshot(&vol, &name, snapshots.len())?);
        checked.snapshots += snapshots.len();
        let twin = match self.parents {
            Parents::Twin => Some(self.make_twin(&name, ops)?),
            _ => None,
        };
        let twin_snapshot = twin.as_ref().map(|t| t.snapshot.as_path());
        let outcome = match self.noise {
            None => self.send_all(&snapshots, twin_snapshot, &received, checked),
            Some(seed) => {
                let noise = self
                    .ctx
                    .create_subvolume(&self.source.join(format!("{name}-noise")))?;
                let stop = AtomicBool::new(false);
                let outcome = std::thread::scope(|scope| {
                    let log = self.ctx.log();
                    let worker = scope.spawn(|| make_noise(log, &noise, seed, &stop));
                    let outcome = self.send_all(&snapshots, twin_snapshot, &received, checked);
                    stop.store(true, Ordering::Relaxed);
                    let noise_ops = worker.join().unwrap_or(0);
                    checked.noise_ops += noise_ops;
                    outcome
                });
                self.ctx.delete_subvolume_quickly(&noise)?;
                outcome
            }
        };
        drop(held);
        for snapshot in snapshots.iter().rev() {
            for target in self.receive.targets(&received) {
                for dir in [target.clone(), target.join(FULL_DIR), target.join(TWIN_DIR)] {
                    let _ = self.ctx.delete_subvolume_quickly(
                        &dir.join(snapshot.file_name().unwrap_or_default()),
                    );
                }
            }
            self.ctx.delete_subvolume_quickly(snapshot)?;
        }
        if let Some(twin) = twin {
            self.delete_twin(twin)?;
        }
        self.ctx.delete_subvolume_quickly(&vol)?;
        if let Some(mount) = beside {
            mount.unmount()?;
        }
        let _ = std::fs::remove_dir_all(&received);
        if let Some((mount, subvol)) = own_mount {
            mount.unmount()?;
            std::fs::remove_dir(&received)?;
            self.ctx.delete_subvolume_quickly(&subvol)?;
        }
        Ok(match outcome {
            Ok(()) => Verdict::Matched,
            Err(failure) if failure.out_of_space => anyhow::bail!("{}", failure.message),
            Err(failure) => Verdict::Failed(failure),
        })
    }

    /// Remounts the source to compress new data with `compression`, unless it does already.
    /// (The source of the protocol-2 chain is mounted with compression to begin with; a remount
    /// changes the algorithm for what is written after it.)
    pub fn compress_with(&mut self, compression: Compression) -> Result<()> {
        if compression != self.compression {
            let option = compression.mount_option();
            crate::mount::remount(&self.source, &option)?;
            self.ctx.note(&format!(
                "remounted {} with {option}",
                self.source.display()
            ));
            self.compression = compression;
        }
        Ok(())
    }

    /// The case this chain runs in.
    pub fn ctx(&self) -> &Ctx {
        self.ctx
    }

    fn snapshot(&self, vol: &Path, name: &str, index: usize) -> Result<PathBuf> {
        self.ctx
            .snapshot_quickly(vol, &self.source.join(format!("{name}.snap{index}")))
    }

    fn send_all(
        &self,
        snapshots: &[PathBuf],
        twin: Option<&Path>,
        received: &Path,
        checked: &mut Checked,
    ) -> std::result::Result<(), ChainFailure> {
        let sh = self.ctx.sh();
        let stream = self.ctx.work_dir().join("random.stream");
        let protocol = self.send_options();
        let paths: Vec<&Path> = snapshots.iter().map(PathBuf::as_path).collect();
        for sent in self.parents.sends(snapshots.len()) {
            let i = sent.start;
            let what = if sent.len() == 1 {
                format!("snapshot {i}")
            } else {
                format!("snapshots {i}-{}", sent.end - 1)
            };
            let words = self
                .parents
                .send_words(sent.clone(), &paths, &|w| Path::new(w));
            let sent_ok = self.ctx.run(cmd!(
                sh,
                "btrfs send -q {protocol...} -f {stream} {words...}"
            ));
            sent_ok.map_err(|e| ChainFailure::failed(format!("send of {what} failed: {e:#}")))?;
            checked.sends += sent.len();
            // Every stream must parse, and its dump show each command but the end: what
            // `btrfs receive --dump` prints is not kept (the stream of a failure is, with its
            // dump).
            let lines = crate::exec::run_counting_stdout(
                cmd!(sh, "btrfs receive --dump -f {stream}"),
                self.ctx.log(),
            )
            .map_err(|e| {
                self.keep_stream(&stream, i);
                ChainFailure::failed(format!(
                    "btrfs receive --dump of the stream of {what} failed: {e:#}"
                ))
            })?;
            let bytes = std::fs::read(&stream)
                .map_err(|e| ChainFailure::failed(format!("reading {}: {e}", stream.display())))?;
            let commands = crate::send_stream::count(&bytes).map_err(|why| {
                self.keep_stream(&stream, i);
                ChainFailure::failed(format!("the stream of {what} does not frame: {why}"))
            })?;
            if lines < commands.dump_lines() {
                self.keep_stream(&stream, i);
                return Err(ChainFailure::failed(format!(
                    "btrfs receive --dump of the stream of {what} printed {lines} lines for its {} commands (an end aside)",
                    commands.dump_lines()
                )));
            }
            // A stream for each subvolume, each with its end, or with `-e` one for all.
            let streams = self.parents.streams(&sent);
            if (commands.streams, commands.ends) != (streams, streams) {
                self.keep_stream(&stream, i);
                return Err(ChainFailure::failed(format!(
                    "the send of {what} wrote {} stream headers and {} ends, not {streams} of each",
                    commands.streams, commands.ends
                )));
            }
            for target in self.receive.targets(received) {
                let printed = self.receive_loudly(&stream, &target).map_err(|e| {
                    self.keep_stream(&stream, i);
                    let text = format!("{e:#}");
                    match crate::finding::receive_out_of_space(&text, &self.dest) {
                        Some(full) => ChainFailure {
                            out_of_space: true,
                            ..ChainFailure::failed(format!("receive of {what}: {full:#}"))
                        },
                        None => ChainFailure::failed(format!("receive of {what} failed: {text}")),
                    }
                })?;
                // Receive says what it did: each level's lines, counted against the stream.
                let said = printed.stdout + &printed.stderr;
                self.verbosity
                    .check(self.placement, &said, &commands)
                    .map_err(|why| {
                        self.keep_stream(&stream, i);
                        ChainFailure::failed(format!("receive of {what}: {why}"))
                    })?;
            }
            for i in sent.clone() {
                self.check_received(i, snapshots, twin, received, &stream, checked)?;
            }
            // Broken copies of the chain's last stream, if it holds one subvolume, which
            // receive must refuse (of the last only: each refusal costs a receive); the first,
            // if it is another and holds one full subvolume, only received again.
            let one = commands.streams == 1 && commands.subvolumes() == 1;
            let first_full = one && sent.start == 0 && commands.count_of("subvol") == 1;
            let target = self.receive.targets(received)[0].clone();
            if one && sent.end == snapshots.len() {
                checked.refused += self.refuse(&stream, &bytes, &target, received, i)?;
            } else if first_full {
                checked.refused += self.refuse_again(&stream, &target, i)?;
            }
            // The first full stream also goes to the filesystem's top, and its snapshot again
            // without data.
            if first_full {
                self.receive_at_top(&bytes, paths[i], i)?;
                checked.without_data += self.receive_without_data(paths[i], received, i)?;
            }
        }
        Ok(())
    }

    /// Receives `stream` into `target` the seed's way, at the seed's level, with at most
    /// [`RECEIVE_OPEN_FILES`] open files: what receive printed.
    fn receive_loudly(&self, stream: &Path, target: &Path) -> Result<crate::exec::Output> {
        let sh = self.ctx.sh();
        let mount = self.dest.display().to_string();
        let options = self.receive.options(&mount);
        let (global, loudness) = self.verbosity.placed(self.placement);
        self.ctx.run_with_open_files(
            cmd!(
                sh,
                "btrfs {global...} receive {loudness...} {options...} -f {stream} {target}"
            ),
            RECEIVE_OPEN_FILES,
        )
    }
}

impl Chains<'_> {
    /// Keeps a stream that failed, and what `btrfs receive --dump` makes of it, with the case's
    /// results (`failed.stream`, `failed.dump`); a later failure of the same case (the
    /// shrinker's smaller lists) replaces them, so the last kept is the smallest. The dump, if
    /// there is one.
    fn keep_stream(&self, stream: &Path, snapshot: usize) -> Option<String> {
        let results = self.ctx.results();
        let kept = results.join(FAILED_STREAM);
        if std::fs::copy(stream, &kept).is_err() {
            return None;
        }
        let sh = self.ctx.sh();
        let (dump, parsed) = match self.ctx.run(cmd!(sh, "btrfs receive --dump -f {kept}")) {
            Ok(out) => (out.stdout, true),
            Err(e) => (format!("btrfs receive --dump failed: {e:#}\n"), false),
        };
        let options = self.send_options();
        let header = format!(
            "# btrfs receive --dump of the stream of snapshot {snapshot} (btrfs send {})\n",
            if options.is_empty() {
                "with default options".to_string()
            } else {
                options.join(" ")
            }
        );
        let _ = std::fs::write(results.join(FAILED_DUMP), header + &dump);
        parsed.then_some(dump)
    }
}

/// What a chain's failure `message` says differs, short: `f: size expected 20 got 18`, and
/// `f: data` for a checksum (`[known bug `X`: ][seed S: ]received snapshot 1 differs from its
/// source: f: field size: expected 20 got 18; f: field sha256: …[; shrunk …]`).
pub fn what_differs(message: &str) -> Vec<String> {
    let list = message
        .split_once("differs from its source: ")
        .map_or("", |(_, rest)| rest);
    let mut what = Vec::new();
    for item in list.split("; ") {
        let Some((path, rest)) = item.split_once(": field ") else {
            break;
        };
        what.push(match rest.split_once(": ") {
            Some(("sha256", _)) => format!("{path}: data"),
            Some((field, values)) => format!("{path}: {field} {values}"),
            None => format!("{path}: {rest}"),
        });
    }
    what
}

/// What the protocol-2 chain sends with.
pub const PROTO2: &[&str] = &["--proto", "2", "--compressed-data"];

/// The open files the chain's `btrfs receive` may hold (RLIMIT_NOFILE; not in guests): it needs
/// about ten at most (the stream, the destination and its mount, the file it writes, a clone
/// source, the mount table), so a receive that leaks a descriptor per file it writes runs out
/// within a stream and fails, instead of passing until a stream of a thousand files.
pub const RECEIVE_OPEN_FILES: u64 = 16;

/// The stream that failed, and its dump, in the case's results.
pub const FAILED_STREAM: &str = "failed.stream";
pub const FAILED_DUMP: &str = "failed.dump";
