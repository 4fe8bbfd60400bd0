//! The case's world: what a case's steps are given (scratch filesystems, btrfs operations whose
//! failures count as findings, the manifest comparison) and the options a run passes to each case.
//! Cases say what to do; this says how. Nothing here knows how cases are scheduled.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;
use xshell::{cmd, Shell};

use crate::btrfs_ioctl;
use crate::configuration::Configuration;
use crate::exec::{self, CommandLog};
use crate::finding::detected;
use crate::manifest::{self, Ignore, Manifest};
use crate::mount::Mount;
use crate::scratch::{Devices, Scratch, ScratchSpec};
use crate::throttle::{Throttle, ThrottledSend};
use crate::workload::{self, FileSpec, Writes};

/// A change made to a received tree before it is compared, to prove a case can fail.
pub type Tamper = fn(&Path) -> Result<()>;

/// What randomized cases are told; each has defaults for what is not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RandomKnobs {
    pub seed: Option<u64>,
    pub ops: Option<usize>,
    pub snapshots: Option<usize>,
    /// How every chain receives, instead of a way drawn from its seed (`--receive`).
    pub receive: Option<crate::random::Receive>,
    /// What every chain sends against, instead of a way drawn from its seed (`--parents`).
    pub parents: Option<crate::random::Parents>,
    /// This many seeds from `seed`, reported as a soak is (`--seeds`).
    pub seeds: Option<u64>,
    /// Fail at a seed's first failure as it is, without shrinking it (`--no-shrink`): the
    /// verdict alone, as a mutation run needs it.
    pub no_shrink: bool,
}

/// How the random cases break each received tree in tests of their checks: each break is a
/// property of the received tree that one check must notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Breakage {
    /// The largest file loses its last byte (its size and data differ).
    #[default]
    Truncate,
    /// Zeros are written over a hole of a file, which keeps its data and size: only the
    /// layout oracle's holes rule can tell.
    FillHole,
    /// A compressed extent of a received file is written again, the same data, uncompressed
    /// (O_DIRECT): only the layout oracle's compressed rule can tell.
    Decompress,
    /// The blocks of the received file with the most data shared with another are written
    /// again, the same data: only the layout oracle's shared rule can tell.
    Unshare,
    /// A megabyte past the end of the largest received file is preallocated, its size kept:
    /// only the layout oracle's space rule can tell.
    Preallocate,
    /// The received subvolume is left writable, its tree and received UUID as they are: only
    /// the identity rule can tell.
    Writable,
    /// The received subvolume's received UUID and stransid are cleared, as
    /// `btrfs property set -f … ro false` does, and it is made read-only again: the identity
    /// rule tells at once (an incremental receive against it would fail to find its parent).
    Unreceived,
}

/// The time a case may take beyond its `--duration` unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// What a run tells each case, the same on every backend.
#[derive(Debug, Clone, Copy)]
pub struct CaseOptions {
    /// How long cases that repeat rounds go on (`--duration`); each case has a default.
    pub duration: Option<Duration>,
    /// How long a case may take, beyond `duration`, before it fails as hung.
    pub timeout: Duration,
    /// How much stress cases scale their sizes (`--load-factor`).
    pub load_factor: f64,
    /// `--seed`, `--ops`, `--snapshots` for randomized cases.
    pub random: RandomKnobs,
    /// Applied to every received tree before comparison (tests of the checker only).
    pub tamper: Option<Tamper>,
    /// How the random cases break a received tree when `tamper` is set (tests only).
    pub breakage: Breakage,
    /// Keep a failed case's scratch images for a look (`--keep-failed`).
    pub keep_failed: bool,
    /// The mkfs, mount and send options of every scratch filesystem and send (`-c`).
    pub configuration: &'static Configuration,
}

impl Default for CaseOptions {
    fn default() -> CaseOptions {
        CaseOptions {
            duration: None,
            timeout: DEFAULT_TIMEOUT,
            load_factor: 1.0,
            random: RandomKnobs::default(),
            tamper: None,
            breakage: Breakage::default(),
            keep_failed: false,
            configuration: crate::configuration::DEFAULT,
        }
    }
}

impl CaseOptions {
    /// How long a case may take: `timeout`, plus `duration` when one is given.
    pub fn time_limit(&self) -> Duration {
        self.timeout + self.duration.unwrap_or_default()
    }
}

/// The file in a case's results that [`Ctx::headline`] appends to.
pub const HEADLINES: &str = "headlines";

/// Appends `text` to the headlines of the case whose results are in `dir`.
pub fn append_headline(dir: &Path, text: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(HEADLINES))?;
    writeln!(file, "{}", text.trim_end())?;
    Ok(())
}

/// The state of one running case.
pub struct Ctx {
    // Field order is drop order: scratch filesystems go before the directory holding their images.
    scratches: Vec<Scratch>,
    work: TempDir,
    sh: Shell,
    log: CommandLog,
    results: PathBuf,
    ignore: Ignore,
    options: CaseOptions,
    devices: Arc<Devices>,
}

impl Ctx {
    /// A context whose images live in a fresh private directory, on devices from `devices`, and
    /// whose artifacts go to `results`.
    pub fn new(
        results: &Path,
        log: CommandLog,
        ignore: Ignore,
        options: CaseOptions,
        devices: Arc<Devices>,
    ) -> Result<Ctx> {
        let work = crate::workdir::create()?;
        let sh = Shell::new().context("creating a command shell")?;
        Ok(Ctx {
            scratches: Vec::new(),
            work,
            sh,
            log,
            results: results.to_path_buf(),
            ignore,
            options,
            devices,
        })
    }

    pub fn sh(&self) -> &Shell {
        &self.sh
    }

    pub fn log(&self) -> &CommandLog {
        &self.log
    }

    /// This case's results directory.
    pub fn results(&self) -> &Path {
        &self.results
    }

    /// Writes `environment` to the results: the kernel release and its build (`/proc/version`:
    /// compiler, build number and time), and which btrfs-progs ran.
    pub fn record_environment(&self) -> Result<()> {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let build = std::fs::read_to_string("/proc/version").unwrap_or_default();
        let btrfs = crate::preflight::find_in_path("btrfs").context("no btrfs in PATH")?;
        let version = self.run(cmd!(self.sh, "{btrfs} --version"))?.stdout;
        let config = self.options.configuration;
        let text = format!(
            "kernel: {}\nkernel build: {}\nbtrfs-progs: {} ({})\nconfiguration: {} ({})\n",
            kernel.trim(),
            build.trim(),
            version.trim(),
            btrfs.display(),
            config.name,
            config.describe()
        );
        self.keep("environment", &text)
    }

    /// A fresh, mounted scratch btrfs named `name`; returns where it is mounted.
    pub fn scratch(&mut self, name: &str) -> Result<PathBuf> {
        self.scratch_with(name, ScratchSpec::default())
    }

    /// A fresh, mounted scratch btrfs named `name` that only receives: the configuration's
    /// receiving-side options (`receive-*`) apply to it.
    pub fn scratch_to_receive(&mut self, name: &str) -> Result<PathBuf> {
        self.scratch_made(name, ScratchSpec::default(), true)
    }

    /// The configuration the case runs under (`-c`).
    pub fn configuration(&self) -> &'static Configuration {
        self.options.configuration
    }

    /// Runs a command built with `cmd!(ctx.sh(), …)`; a failure is an environment error.
    pub fn run(&self, cmd: xshell::Cmd<'_>) -> Result<exec::Output> {
        Ok(exec::run(cmd, &self.log)?)
    }

    /// [`Ctx::run`] with at most `most` open files for the command
    /// ([`exec::run_with_open_files`]).
    pub fn run_with_open_files(&self, cmd: xshell::Cmd<'_>, most: u64) -> Result<exec::Output> {
        Ok(exec::run_with_open_files(cmd, &self.log, most)?)
    }

    pub fn create_subvolume(&self, path: &Path) -> Result<PathBuf> {
        self.run(cmd!(self.sh, "btrfs subvolume create {path}"))?;
        Ok(path.to_path_buf())
    }

    /// Writes `files` into `dir`, leaving the data as `writes` says.
    pub fn write_files(&self, dir: &Path, files: &[FileSpec], writes: Writes) -> Result<()> {
        self.log.note(&format!(
            "write {} files into {} ({writes})",
            files.len(),
            dir.display()
        ));
        workload::write(dir, files, writes)
    }

    /// Flips a subvolume read-only, as `btrfs property set … ro true` does.
    pub fn set_readonly(&self, subvol: &Path) -> Result<()> {
        self.run(cmd!(self.sh, "btrfs property set -ts {subvol} ro true"))?;
        Ok(())
    }

    /// Sends `subvol` to a stream file in the results directory. A failing send is a finding.
    pub fn send(&self, subvol: &Path) -> Result<PathBuf> {
        self.send_from(subvol, None)
    }

    /// Sends `subvol` incrementally against `parent` (`send -p`) to a stream file in the
    /// results directory. A failing send is a finding.
    pub fn send_incremental(&self, subvol: &Path, parent: &Path) -> Result<PathBuf> {
        self.send_from(subvol, Some(parent))
    }

    fn send_from(&self, subvol: &Path, parent: Option<&Path>) -> Result<PathBuf> {
        let stream = self.results.join(format!("{}.stream", file_name(subvol)?));
        let options = self.options.configuration.send;
        let parent = parent.map(|p| ["-p".as_ref(), p.as_os_str()]);
        let parent = parent.iter().flatten();
        exec::run(
            cmd!(
                self.sh,
                "btrfs send {options...} -f {stream} {parent...} {subvol}"
            ),
            &self.log,
        )
        .map_err(|e| finding_unless_interrupted("btrfs send failed", e))?;
        Ok(stream)
    }

    /// Makes the read-only `snapshot` writable, opens `names[0]`, unlinks every name, and makes
    /// it read-only again (as `btrfs property set ro false`, `rm`, `ro true` would): an inode
    /// with no link, an orphan, stays in the snapshot's tree while the returned file is open.
    pub fn orphan_in(&self, snapshot: &Path, names: &[&str]) -> Result<std::fs::File> {
        let first = names.first().context("no name to unlink")?;
        btrfs_ioctl::set_readonly(snapshot, false)?;
        let held = std::fs::File::open(snapshot.join(first))
            .with_context(|| format!("opening {}", snapshot.join(first).display()))?;
        for name in names {
            std::fs::remove_file(snapshot.join(name))
                .with_context(|| format!("unlinking {}", snapshot.join(name).display()))?;
        }
        btrfs_ioctl::set_readonly(snapshot, true)?;
        self.log.note(&format!(
            "{}: {} unlinked while open, an orphan while the case holds it",
            snapshot.display(),
            names.join(", ")
        ));
        Ok(held)
    }

    /// Receives `stream` into directory `dest`; returns the received subvolume. A failing
    /// receive is a finding.
    pub fn receive(&self, stream: &Path, dest: &Path, subvol_name: &str) -> Result<PathBuf> {
        exec::run(cmd!(self.sh, "btrfs receive -f {stream} {dest}"), &self.log).map_err(|e| {
            match crate::finding::receive_out_of_space(&e.to_string(), dest) {
                Some(full) => full,
                None => finding_unless_interrupted("btrfs receive failed", e),
            }
        })?;
        Ok(dest.join(subvol_name))
    }

    /// Sends `subvol` and receives it on a fresh scratch filesystem named `received`.
    pub fn send_receive(&mut self, subvol: &Path) -> Result<PathBuf> {
        let stream = self.send(subvol)?;
        let dest = self.scratch_to_receive("received")?;
        self.receive(&stream, &dest, file_name(subvol)?)
    }

    /// Compares the manifests of `source` and `received`, and the identity receive gives the
    /// received subvolume ([`manifest::identity`]); keeps both manifests and the differences
    /// in the results directory, and returns a finding naming each differing path and field.
    pub fn compare(&self, source: &Path, received: &Path) -> Result<()> {
        if let Some(tamper) = self.options.tamper {
            self.tamper_with(received, tamper)?;
        }
        let name = file_name(received)?;
        let expected = Manifest::of_tree(source)?;
        let got = Manifest::of_tree(received)?;
        self.keep(&format!("{name}.source.manifest"), &expected.to_text())?;
        self.keep(&format!("{name}.received.manifest"), &got.to_text())?;
        let mut differences = manifest::compare(&expected, &got, &self.ignore);
        // The subvolume as receive leaves it; which parent it came from is the caller's to
        // know, so not that.
        let checks = |field: &str| field != manifest::identity::PARENT_UUID;
        differences.extend(manifest::identity::received(
            source,
            received,
            &[],
            &checks,
        )?);
        self.log.note(&format!(
            "compared {} paths of {name}: {} differences",
            expected.entries.len(),
            differences.len()
        ));
        if differences.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = differences.iter().map(ToString::to_string).collect();
        self.keep(&format!("{name}.diff"), &(lines.join("\n") + "\n"))?;
        const SHOWN: usize = 5;
        let more = lines.len().saturating_sub(SHOWN);
        let mut message = format!(
            "received `{name}` differs from its source: {}",
            lines[..lines.len().min(SHOWN)].join("; ")
        );
        if more > 0 {
            message.push_str(&format!("; and {more} more in {name}.diff"));
        }
        Err(detected(message))
    }

    /// Unmounts every scratch filesystem and runs `btrfs check` on it. Returns the problems found.
    pub fn unmount_and_check(&mut self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for scratch in &mut self.scratches {
            if let Some(report) = scratch.unmount_and_check(&self.sh, &self.log)? {
                let first = exec::tail_lines(&report, 3).join(" | ");
                problems.push(format!(
                    "btrfs check of `{}` found errors: {first}",
                    scratch.name()
                ));
            }
        }
        Ok(problems)
    }

    fn keep(&self, file: &str, contents: &str) -> Result<()> {
        let path = self.results.join(file);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
    }

    fn tamper_with(&self, received: &Path, tamper: Tamper) -> Result<()> {
        self.log.note(&format!(
            "tampering with {} before comparing",
            received.display()
        ));
        // Writable for the change, keeping its received UUID (which `btrfs property set -f …
        // ro false` would clear): the change is the only fault.
        crate::btrfs_ioctl::set_readonly(received, false)?;
        tamper(received)?;
        crate::btrfs_ioctl::set_readonly(received, true)?;
        Ok(())
    }
}

/// The top of a subvolume's tree, as `btrfs inspect-internal dump-tree` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeTop {
    pub root_id: u64,
    /// 0 when the whole tree is one leaf.
    pub level: u8,
    pub items: u32,
    pub bytenr: u64,
}

/// Helpers for cases that race send against other operations.
impl Ctx {
    /// A fresh, mounted scratch btrfs made as `spec` says (size, mkfs options), with the
    /// configuration's options after the spec's.
    pub fn scratch_with(&mut self, name: &str, spec: ScratchSpec<'_>) -> Result<PathBuf> {
        self.scratch_made(name, spec, false)
    }

    fn scratch_made(
        &mut self,
        name: &str,
        spec: ScratchSpec<'_>,
        receives: bool,
    ) -> Result<PathBuf> {
        let config = self.options.configuration;
        let mkfs_args = config.mkfs_args(spec.mkfs_args, receives);
        let mount_options = config.mount_options(spec.mount_options, receives);
        let spec = ScratchSpec {
            size: spec.size,
            mkfs_args: &mkfs_args,
            mount_options: &mount_options,
        };
        let scratch = Scratch::create(
            &self.sh,
            &self.log,
            &self.devices,
            self.work.path(),
            name,
            &spec,
        )
        .with_context(|| format!("creating scratch filesystem `{name}`"))?;
        let path = scratch.path().to_path_buf();
        self.scratches.push(scratch);
        Ok(path)
    }

    /// `--seed`, `--ops` and `--snapshots`, for randomized cases.
    pub fn random_knobs(&self) -> RandomKnobs {
        self.options.random
    }

    /// Whether received trees are to be tampered with (tests of the checks only).
    pub fn tampering(&self) -> bool {
        self.options.tamper.is_some()
    }

    /// How the random cases break received trees when [`Self::tampering`].
    pub fn breakage(&self) -> Option<Breakage> {
        self.tampering().then_some(self.options.breakage)
    }

    /// The case's private directory, for files that are not results (streams of a chain).
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    /// `--duration`, if it was given.
    pub fn requested_duration(&self) -> Option<Duration> {
        self.options.duration
    }

    /// How long a case that repeats rounds should go on: `--duration`, or the case's default.
    pub fn duration(&self, default: Duration) -> Duration {
        self.options.duration.unwrap_or(default)
    }

    /// A line in the command log, for what a case wants to remember (rounds, counts).
    pub fn note(&self, line: &str) {
        self.log.note(line);
    }

    /// Something the person running the case should read without opening its results: noted,
    /// and kept in `headlines` in its results, which the command line prints under the case's
    /// result on either backend. It may span lines.
    pub fn headline(&self, text: &str) -> Result<()> {
        for line in text.lines() {
            self.log.note(line);
        }
        append_headline(&self.results, text)
    }

    /// Releases the scratch filesystems' devices but keeps their images (`--keep-failed`);
    /// returns the private directory that holds them, which the next run's sweep (or `sendtest
    /// clean`) removes.
    pub fn keep_images(self) -> PathBuf {
        let Ctx {
            scratches, work, ..
        } = self;
        drop(scratches);
        work.keep()
    }

    /// A read-only snapshot of `source` at `dest`.
    pub fn snapshot(&self, source: &Path, dest: &Path) -> Result<PathBuf> {
        self.run(cmd!(self.sh, "btrfs subvolume snapshot -r {source} {dest}"))?;
        Ok(dest.to_path_buf())
    }

    pub fn delete_subvolume(&self, path: &Path) -> Result<()> {
        self.run(cmd!(self.sh, "btrfs subvolume delete {path}"))?;
        Ok(())
    }

    /// A read-only snapshot by ioctl, not logged: for loops that race send, where a
    /// btrfs-progs process per snapshot would cut the rate (most of all under TCG).
    pub fn snapshot_quickly(&self, source: &Path, dest: &Path) -> Result<PathBuf> {
        crate::btrfs_ioctl::snapshot_readonly(source, dest)?;
        Ok(dest.to_path_buf())
    }

    /// Deletes a subvolume by ioctl, not logged (see [`Ctx::snapshot_quickly`]).
    pub fn delete_subvolume_quickly(&self, path: &Path) -> Result<()> {
        crate::btrfs_ioctl::delete_subvolume(path)
    }

    /// Commits by ioctl, not logged (see [`Ctx::snapshot_quickly`]).
    pub fn commit_quickly(&self, path: &Path) -> Result<()> {
        crate::btrfs_ioctl::commit(path)
    }

    /// Creates, writes and deletes a few small files in `dir`, so that metadata blocks are
    /// allocated and freed.
    pub fn churn(&self, dir: &Path, round: u64) -> Result<()> {
        workload::churn(dir, round, self.options.load_factor)
    }

    /// Unmounts the scratch filesystem that `path` is on and mounts it again (fstests'
    /// `_scratch_cycle_mount`). A subvolume's next inode number is then one past the highest
    /// inode it holds, so the numbers of the inodes last deleted are given out again.
    pub fn cycle_mount(&mut self, path: &Path) -> Result<()> {
        let scratch = self
            .scratches
            .iter_mut()
            .find(|s| path.starts_with(s.path()))
            .with_context(|| {
                format!(
                    "{} is on no scratch filesystem of this case",
                    path.display()
                )
            })?;
        scratch.cycle_mount(&self.log)
    }

    /// Removes the empty directory `dir`, mounts its filesystem again and makes `dir` anew, so
    /// that it has its old inode number and a new generation: what send must tell apart from
    /// the old directory. `dir` must hold the highest inode number of its subvolume; if the
    /// number is not reused, this fails, as the caller would test nothing. Returns the number.
    pub fn remake_dir_with_its_number(&mut self, dir: &Path) -> Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let old = std::fs::metadata(dir)?.ino();
        std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))?;
        self.cycle_mount(dir)?;
        std::fs::create_dir(dir).with_context(|| format!("making {}", dir.display()))?;
        let new = std::fs::metadata(dir)?.ino();
        self.note(&format!(
            "{} was inode {old}; the new one is inode {new}",
            dir.display()
        ));
        anyhow::ensure!(
            new == old,
            "the new {} is inode {new}, not {old}: its number was not reused",
            dir.display()
        );
        Ok(new)
    }

    /// The scratch filesystem of this case that `path` is on.
    fn scratch_of(&self, path: &Path) -> Result<&Scratch> {
        self.scratches
            .iter()
            .find(|s| path.starts_with(s.path()))
            .with_context(|| {
                format!(
                    "{} is on no scratch filesystem of this case",
                    path.display()
                )
            })
    }

    /// Mounts subvolume `subvol` of a scratch filesystem on its own at `at` (an empty
    /// directory), as `mount -o subvol=PATH` does; unmounted when the [`Mount`] is dropped.
    /// `subvol` must lie directly below the scratch filesystem's top.
    pub fn mount_subvolume(&self, subvol: &Path, at: &Path) -> Result<Mount> {
        let scratch = self.scratch_of(subvol)?;
        let inside = subvol.strip_prefix(scratch.path())?;
        let option = format!("subvol={}", inside.display());
        let mount = Mount::new(scratch.device(), at, "btrfs", &option)?;
        self.log.note(&format!(
            "mounted {} ({option}) on {}",
            scratch.device().display(),
            at.display()
        ));
        Ok(mount)
    }

    /// The top of `subvol`'s tree as last committed.
    pub fn tree_top(&self, subvol: &Path) -> Result<TreeTop> {
        let (root_id, dump) = self.dump_tree(subvol)?;
        parse_tree_top(root_id, &dump)
            .with_context(|| format!("no leaf or node line in dump-tree of root {root_id}"))
    }

    /// `subvol`'s root id and its tree as last committed, as `btrfs inspect-internal dump-tree`
    /// prints it (not logged: it can be long).
    pub fn dump_tree(&self, subvol: &Path) -> Result<(u64, String)> {
        let device = self.scratch_of(subvol)?.device().to_path_buf();
        let root_id: u64 = self
            .run(cmd!(self.sh, "btrfs inspect-internal rootid {subvol}"))?
            .stdout
            .trim()
            .parse()?;
        let id = root_id.to_string();
        let dump = exec::run(
            cmd!(self.sh, "btrfs inspect-internal dump-tree -t {id} {device}"),
            &CommandLog::discard(),
        )?
        .stdout;
        Ok((root_id, dump))
    }

    /// Starts `btrfs send` of `subvol` (incrementally against `parent`, if given) into a pipe
    /// drained as `throttle` says, copying the stream to `<subvol>.stream` in the results.
    pub fn send_throttled(
        &self,
        subvol: &Path,
        parent: Option<&Path>,
        throttle: Throttle,
    ) -> Result<ThrottledSend> {
        let stream = self.results.join(format!("{}.stream", file_name(subvol)?));
        let parent = parent.map(|p| ["-p".as_ref(), p.as_os_str()]);
        let parent = parent.iter().flatten();
        let (send, pipe) = exec::spawn_reading(cmd!(self.sh, "btrfs send {parent...} {subvol}"))?;
        ThrottledSend::start(send, pipe, &stream, throttle)
    }

    /// Relocates every data and metadata block group of the filesystem `path` is on
    /// (`btrfs balance start -dusage=100 -musage=100`). Each block group is relocated in
    /// transactions committed while the filesystem is marked as relocating, which a running
    /// send sees (`last_reloc_trans`) and restarts its walk after.
    pub fn balance(&self, path: &Path) -> Result<()> {
        self.run(cmd!(
            self.sh,
            "btrfs balance start -dusage=100 -musage=100 {path}"
        ))?;
        Ok(())
    }

    /// Whether a throttled send is still going and the case is within its time limit: what a
    /// loop racing the send asks each round. Each call counts a round, which a reader paced by
    /// rounds drains by. Past the limit it says no, and [`Ctx::finish_send`] then kills the
    /// send, so the case ends as timed out, not hung.
    pub fn sending(&self, send: &mut ThrottledSend) -> bool {
        send.round();
        self.log.time_limit_passed().is_none() && send.is_running()
    }

    /// Waits for a throttled send; its failure is a finding. Returns the stream file.
    pub fn finish_send(&self, send: ThrottledSend) -> Result<PathBuf> {
        let (stream, bytes) = send
            .finish(&self.log)?
            .map_err(|e| finding_unless_interrupted("btrfs send failed", e))?;
        self.log.note(&format!("send stream: {bytes} bytes"));
        Ok(stream)
    }
}

/// `leaf 30408704 items 42 …` or `node 30425088 level 1 items 4 …`: the first such line.
fn parse_tree_top(root_id: u64, dump: &str) -> Option<TreeTop> {
    let line = dump
        .lines()
        .find(|l| l.starts_with("leaf ") || l.starts_with("node "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| -> Option<u64> {
        let i = words.iter().position(|w| *w == key)?;
        words.get(i + 1)?.parse().ok()
    };
    Some(TreeTop {
        root_id,
        level: if words[0] == "leaf" {
            0
        } else {
            u8::try_from(after("level")?).ok()?
        },
        items: u32::try_from(after("items")?).ok()?,
        bytenr: words.get(1)?.parse().ok()?,
    })
}

/// The last component of `path`, as the name of a subvolume that receive creates.
pub fn file_name(path: &Path) -> Result<&str> {
    path.file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no usable file name", path.display()))
}

fn finding_unless_interrupted(what: &str, err: exec::CommandError) -> anyhow::Error {
    if err.interrupted() {
        err.into()
    } else {
        detected(format!("{what}: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_top_of_a_dumped_tree() {
        let leaf = "btrfs-progs v6.2\nfile tree key (257 ROOT_ITEM 0) \nleaf 30408704 items 42 free space 2210 generation 9 owner 257\n";
        assert_eq!(
            parse_tree_top(257, leaf),
            Some(TreeTop {
                root_id: 257,
                level: 0,
                items: 42,
                bytenr: 30408704
            })
        );
        let node = "file tree key (257 ROOT_ITEM 0) \nnode 30425088 level 1 items 4 free 117 generation 12 owner 257\n";
        assert_eq!(
            parse_tree_top(257, node).map(|t| (t.level, t.items)),
            Some((1, 4))
        );
        assert_eq!(parse_tree_top(257, "nothing"), None);
    }
}
