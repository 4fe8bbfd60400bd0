//! The VM backend: each case runs in its own qemu guest that boots the kernel under test, with
//! this binary as init. The case code and the results layout are those of the loop backend; the
//! guest adds `console.log`, and `host-commands.log` holds the qemu command.

pub mod guest;
mod initramfs;
mod kernel;
mod qemu;
pub mod request;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::backend::Backend;
use crate::case::Case;
use crate::context::CaseOptions;
use crate::dmesg;
use crate::exec::{self, CommandLog, Failure};
use crate::outcome::{Outcome, TIMED_OUT};
use crate::preflight::find_in_path;
pub use kernel::Kernel;
pub use qemu::Accel;
use request::Request;

/// The note in `host-commands.log` that times a guest's boot, followed by seconds.
pub const FIRST_STEP_NOTE: &str = "qemu start to the case's first step: ";

/// The boot time a case's `host-commands.log` records, if the guest got to its first step.
pub fn first_step_time(case_dir: &Path) -> Option<Duration> {
    let log = std::fs::read_to_string(case_dir.join("host-commands.log")).ok()?;
    let line = log.lines().find_map(|l| l.split_once(FIRST_STEP_NOTE))?.1;
    let seconds: f64 = line.trim().trim_end_matches('s').parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// Scratch disks each guest gets; no case uses more scratch filesystems.
const SCRATCH_DISKS: usize = 3;
const SCRATCH_DISK_SIZE: u64 = crate::scratch::DEFAULT_SIZE;
/// Large enough for a failed case's stream, manifests and logs.
const RESULTS_DISK_SIZE: u64 = 1 << 30;
const CONSOLE_TAIL: usize = 8;
/// How much sooner than the host the guest gives up on a case: time to boot, and to write its
/// results back.
const GUEST_TIMEOUT_MARGIN: Duration = Duration::from_secs(30);

/// Which accelerator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM if a probe guest boots under it, else TCG.
    Auto,
    Kvm,
    Tcg,
}

/// How guests are set up.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// A bzImage; the distribution's kernel from /boot when `None`.
    pub kernel: Option<PathBuf>,
    pub memory_mib: u32,
    pub cpus: u32,
    pub accel: AccelChoice,
    /// Appended to the guest kernel's command line.
    pub kernel_args: Vec<String>,
    /// Guests for `sendtest shell`: the initramfs has a shell and the tools to look around.
    pub shell: bool,
    /// Each guest keeps its coverage counters with its case's results (`sendtest coverage`).
    pub coverage: bool,
}

impl Default for VmOptions {
    fn default() -> VmOptions {
        VmOptions {
            kernel: None,
            memory_mib: 1024,
            cpus: 2,
            accel: AccelChoice::Auto,
            kernel_args: Vec::new(),
            shell: false,
            coverage: false,
        }
    }
}

/// A kernel, an initramfs and an accelerator, ready to boot guests.
pub struct Vm {
    pub kernel: Kernel,
    /// What qemu boots: the kernel's image, or its uncompressed ELF (see [`Kernel::bootable`]).
    pub boot_image: PathBuf,
    pub initramfs: PathBuf,
    pub accel: Accel,
    options: VmOptions,
}

impl Vm {
    /// Finds the kernel, builds (or reuses) the initramfs around `init` (the sendtest binary),
    /// and chooses the accelerator.
    pub fn prepare(options: VmOptions, init: &Path) -> Result<Vm> {
        if find_in_path(qemu::QEMU).is_none() {
            bail!(
                "{} is not installed: `apt-get install qemu-system-x86`",
                qemu::QEMU
            );
        }
        let kernel = match &options.kernel {
            Some(path) => Kernel::from_image(path)?,
            None => Kernel::packaged()?,
        };
        let log = CommandLog::discard();
        let initramfs = initramfs::build(init, &kernel, options.shell, &log)
            .context("building the guest initramfs")?;
        let boot_image = kernel.bootable(&log);
        let accel = match options.accel {
            AccelChoice::Kvm => Accel::Kvm,
            AccelChoice::Tcg => Accel::Tcg,
            AccelChoice::Auto => qemu::choose_accel(&boot_image, &initramfs, &log),
        };
        Ok(Vm {
            kernel,
            boot_image,
            initramfs,
            accel,
            options,
        })
    }

    fn boot_case(
        &self,
        case: &Case,
        dir: &Path,
        options: &CaseOptions,
        work: &tempfile::TempDir,
    ) -> Result<Outcome> {
        let log = CommandLog::create(&dir.join("host-commands.log"))?;
        let mut disks = Vec::new();
        for i in 0..SCRATCH_DISKS {
            let image = sparse_image(work.path(), &format!("scratch{i}.img"), SCRATCH_DISK_SIZE)?;
            disks.push((image, format!("{}{i}", guest::SCRATCH_SERIAL_PREFIX)));
        }
        let results_image = sparse_image(work.path(), "results.img", RESULTS_DISK_SIZE)?;
        disks.push((results_image.clone(), guest::RESULTS_SERIAL.to_string()));
        // random.trust_cpu=on: without a trusted entropy source, getrandom() (which mkfs needs
        // for UUIDs) waited 6 s per call under TCG on a tinyconfig kernel. oops=panic: an oops
        // (a failed btrfs assertion, say) ends the guest at once instead of leaving the case
        // hanging until its timeout.
        // The guest's own limit comes first, so that a hung step is named from inside; the
        // host's, which covers boot too, is the backstop.
        let guest_timeout = options
            .timeout
            .saturating_sub(GUEST_TIMEOUT_MARGIN)
            .max(options.timeout / 2);
        let request = Request {
            coverage: self.options.coverage,
            ..Request::case(case.name, SCRATCH_DISKS, options, guest_timeout)
        };
        let mut append = format!(
            "console=ttyS0 panic=-1 oops=panic quiet random.trust_cpu=on {}",
            request.to_cmdline()
        );
        let timeout = options.time_limit();
        for arg in &self.options.kernel_args {
            append.push(' ');
            append.push_str(arg);
        }
        let console = dir.join("console.log");
        let guest = qemu::Guest {
            kernel: &self.boot_image,
            initramfs: &self.initramfs,
            append,
            disks,
            console: console.clone(),
            memory_mib: self.options.memory_mib,
            cpus: self.options.cpus,
            accel: self.accel,
        };
        let sh = Shell::new()?;
        let console_tail = || {
            let text = std::fs::read_to_string(&console).unwrap_or_default();
            exec::tail_lines(&text, CONSOLE_TAIL).join(" | ")
        };
        let booted = boot_timed(&console, || qemu::boot(&sh, &guest, &log, timeout));
        if let Some(time) = booted.1 {
            log.note(&format!("{FIRST_STEP_NOTE}{:.3}s", time.as_secs_f64()));
        }
        match booted.0 {
            Ok(out) if !out.status.success() => {
                bail!(
                    "{} failed ({}): {}",
                    qemu::QEMU,
                    out.status,
                    exec::tail_lines(&out.stderr, 3).join(" | ")
                )
            }
            Ok(_) => {}
            Err(e) if matches!(e.failure, Failure::TimedOut(_)) => {
                return Ok(Outcome::Failed(format!(
                    "{TIMED_OUT} the guest did not finish within {}s (hung?); console.log ends: {}",
                    timeout.as_secs(),
                    console_tail()
                )));
            }
            Err(e) => return Err(e.into()),
        }
        match guest::read_results(&results_image) {
            Ok(files) => {
                for file in files {
                    let path = results_path(dir, &file.path)?;
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(path, &file.data)?;
                }
                let text = std::fs::read_to_string(dir.join("outcome")).unwrap_or_default();
                Ok(Outcome::from_file(&text)
                    .unwrap_or_else(|| Outcome::Error("the guest wrote no outcome".into())))
            }
            Err(_) => Ok(outcome_without_results(
                &std::fs::read_to_string(&console).unwrap_or_default(),
            )),
        }
    }
}

impl Vm {
    /// `sendtest shell`: boots a guest with fresh scratch disks and btrfs-progs, and gives its
    /// console to this terminal until the shell in it exits.
    pub fn shell(&self) -> Result<()> {
        let work = crate::workdir::create()?;
        let mut disks = Vec::new();
        for i in 0..SCRATCH_DISKS {
            let image = sparse_image(work.path(), &format!("scratch{i}.img"), SCRATCH_DISK_SIZE)?;
            disks.push((image, format!("{}{i}", guest::SCRATCH_SERIAL_PREFIX)));
        }
        let request = Request {
            shell: true,
            scratch_disks: SCRATCH_DISKS,
            ..Request::default()
        };
        let mut append = format!(
            "console=ttyS0 panic=-1 oops=panic quiet random.trust_cpu=on {}",
            request.to_cmdline()
        );
        for arg in &self.options.kernel_args {
            append.push(' ');
            append.push_str(arg);
        }
        let guest = qemu::Guest {
            kernel: &self.boot_image,
            initramfs: &self.initramfs,
            append,
            disks,
            console: work.path().join("console.log"),
            memory_mib: self.options.memory_mib,
            cpus: self.options.cpus,
            accel: self.accel,
        };
        qemu::boot_on_terminal(&Shell::new()?, &guest)
    }
}

impl Backend for Vm {
    fn place(&self) -> String {
        format!("vm-{}", self.kernel.release)
    }

    fn properties(&self) -> crate::backend::Properties {
        vec![
            ("backend", "vm".into()),
            ("kernel", self.kernel.release.clone()),
            ("kernel_image", self.kernel.image.display().to_string()),
            ("accel", self.accel.to_string()),
        ]
    }

    /// One guest per two cores: each has two virtual CPUs.
    fn default_jobs(&self, cores: usize) -> usize {
        (cores / 2).max(1)
    }

    /// Boots a guest that runs `case`, and brings its results back into `dir`. With
    /// `keep_failed`, a failed case's scratch disks stay for a look.
    fn run(&self, case: &Case, dir: &Path, options: &CaseOptions) -> Outcome {
        let booted = std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create results directory {}", dir.display()))
            .and_then(|()| crate::workdir::create())
            .and_then(|work| Ok((self.boot_case(case, dir, options, &work)?, work)));
        match booted {
            Ok((outcome @ Outcome::Failed(_), work)) if options.keep_failed => {
                let kept = work.keep();
                let note = crate::workdir::kept_images_note(&kept);
                match crate::context::append_headline(dir, &note) {
                    Ok(()) => outcome,
                    Err(e) => Outcome::Error(format!("keeping the scratch images: {e:#}")),
                }
            }
            Ok((outcome, _work)) => outcome,
            Err(e) => Outcome::Error(format!("{e:#}")),
        }
    }
}

/// A guest that rebooted or crashed without writing results: a kernel crash is a finding,
/// named by the first line that says what went wrong; a dead init is a harness error.
/// Where a file the guest wrote goes in the case's results: its relative path, with nothing
/// that climbs out.
fn results_path(dir: &Path, name: &str) -> Result<PathBuf> {
    let relative = Path::new(name);
    if name.is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        bail!("the guest wrote a result file named `{name}`");
    }
    Ok(dir.join(relative))
}

fn outcome_without_results(console: &str) -> Outcome {
    let tail = exec::tail_lines(console, CONSOLE_TAIL).join(" | ");
    if console.contains("Attempted to kill init") {
        return Outcome::Error(format!("the guest's init died; console.log ends: {tail}"));
    }
    let lines: Vec<String> = console.lines().map(String::from).collect();
    let first_bad = dmesg::problems(&lines)
        .first()
        .map(|l| l.trim().to_string());
    match (
        first_bad,
        console.lines().find(|l| l.contains("Kernel panic")),
    ) {
        (Some(bad), Some(_)) => {
            Outcome::Failed(format!("the guest kernel crashed: {bad}; see console.log"))
        }
        (None, Some(panic)) => Outcome::Failed(format!(
            "the guest kernel panicked: {}; see console.log",
            panic.trim()
        )),
        _ => Outcome::Error(format!(
            "the guest stopped without results; console.log ends: {tail}"
        )),
    }
}

/// Runs `boot` while watching `console` for the line the guest prints before its case's first
/// step; returns what `boot` returned and how long after the start that line appeared.
fn boot_timed<T>(console: &Path, boot: impl FnOnce() -> T) -> (T, Option<Duration>) {
    let started = Instant::now();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let text = std::fs::read(console).unwrap_or_default();
                if text
                    .windows(guest::CASE_STARTS.len())
                    .any(|w| w == guest::CASE_STARTS.as_bytes())
                {
                    return Some(started.elapsed());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            None
        });
        let result = boot();
        done.store(true, Ordering::Relaxed);
        (result, watcher.join().unwrap_or(None))
    })
}

fn sparse_image(dir: &Path, name: &str, size: u64) -> Result<PathBuf> {
    let path = dir.join(name);
    File::create_new(&path)
        .and_then(|f| f.set_len(size))
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_files_stay_inside_the_case_s_directory() {
        let dir = Path::new("/r/case");
        assert_eq!(
            results_path(dir, "coverage/kernel/x.gcda").unwrap(),
            dir.join("coverage/kernel/x.gcda")
        );
        for bad in ["", "../x", "/etc/passwd", "a/../../x"] {
            assert!(results_path(dir, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_panic_is_a_finding_and_a_dead_init_an_error() {
        let panic = "[ 3.1] sysrq: Trigger a crash\n[ 3.1] Kernel panic - not syncing: sysrq triggered crash\n";
        assert!(
            matches!(outcome_without_results(panic), Outcome::Failed(r) if r.contains("sysrq triggered crash"))
        );
        let init = "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n";
        assert!(matches!(outcome_without_results(init), Outcome::Error(_)));
        assert!(matches!(
            outcome_without_results("booting\n"),
            Outcome::Error(_)
        ));
    }
}
