//! The options several commands share, and how each turns into what the library takes: case
//! options, a btrfs-progs build in PATH, a prepared VM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;
use sendtest::build::kernel::{self as kernel_build, ExtraConfig, KernelBuild, Revert};
use sendtest::build::progs;
use sendtest::configuration::Configuration;
use sendtest::context::{CaseOptions, RandomKnobs};
use sendtest::vm::{AccelChoice, Vm, VmOptions};
use sendtest::workdir;

/// Where results go.
#[derive(clap::Args)]
#[command(next_help_heading = "Reports")]
pub struct ResultsArgs {
    /// Where results go: a directory per run (for validate: `with-fix/run-<i>/` and
    /// `without-fix/run-<i>/` inside), one per case in it.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
}

/// What every case of a run is told.
#[derive(clap::Args)]
#[command(next_help_heading = "Case options")]
pub struct CaseArgs {
    /// Seconds that cases which repeat rounds (races) go on for; each has a default. Random
    /// cases soak: new seeds until the time is up, failing only on bugs that are not known.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    duration: Option<u64>,
    /// Seconds a case may take beyond --duration before it fails as hung, with its commands
    /// killed (on the VM backend: from qemu's start to the guest's power-off).
    #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = at_least_one)]
    timeout: u64,
    /// Scale the sizes in stress cases by F (how much metadata a race case churns per round).
    #[arg(long, default_value_t = 1.0, value_name = "F", value_parser = positive)]
    load_factor: f64,
    /// Random cases: replay this seed (printed by every run of one); with --duration, the
    /// first seed of the soak.
    #[arg(long)]
    seed: Option<u64>,
    /// Random cases: operations per list.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    ops: Option<u64>,
    /// Random cases: snapshots taken among the operations (each one more send in the chain).
    #[arg(long, value_name = "N")]
    snapshots: Option<u64>,
    /// Random cases: receive every chain this way instead of the way drawn from its seed:
    /// plain, force-decompress, nested, twice, root-mount, chroot, max-errors, prefix-mount,
    /// subvol-mount.
    #[arg(long, value_name = "WAY")]
    receive: Option<sendtest::random::Receive>,
    /// Random cases: send every chain's later snapshots against this instead of the way
    /// drawn from its seed: previous, first, clones (-c older ones), full-too (also in full),
    /// twin (also against a twin: the same inode numbers, newer generations).
    #[arg(long, value_name = "WAY")]
    parents: Option<sendtest::random::Parents>,
    /// Random cases: this many seeds from --seed (a fixed set, reported as a soak is: known
    /// bugs apart).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    seeds: Option<u64>,
    /// Random cases: fail at the first failure as it is, without shrinking it to a script
    /// (a quick verdict; mutation runs do this).
    #[arg(long)]
    no_shrink: bool,
    /// Keep a failed case's scratch images and print how to mount them; the next run (or
    /// `sendtest clean`) removes them.
    #[arg(long)]
    keep_failed: bool,
    /// Filesystem configurations (mkfs, mount and send options; `sendtest list -c`): `run`
    /// runs each case under each, as CASE@NAME; other commands take one.
    #[arg(
        short = 'c',
        long = "configuration",
        value_name = "NAME[,NAME…]",
        value_delimiter = ',',
        value_parser = configuration
    )]
    configurations: Vec<&'static Configuration>,
}

fn configuration(name: &str) -> Result<&'static Configuration, String> {
    sendtest::configuration::parse(&[name.to_string()])?
        .pop()
        .ok_or_else(|| "an empty configuration name: `sendtest list -c` shows them".to_string())
}

impl CaseArgs {
    pub fn options(&self) -> CaseOptions {
        CaseOptions {
            duration: self.duration.map(Duration::from_secs),
            timeout: Duration::from_secs(self.timeout),
            load_factor: self.load_factor,
            random: RandomKnobs {
                seed: self.seed,
                ops: self.ops.map(|n| n as usize),
                snapshots: self.snapshots.map(|n| n as usize),
                receive: self.receive,
                parents: self.parents,
                seeds: self.seeds,
                no_shrink: self.no_shrink,
            },
            tamper: None,
            breakage: Default::default(),
            keep_failed: self.keep_failed,
            configuration: self
                .configurations
                .first()
                .copied()
                .unwrap_or(sendtest::configuration::DEFAULT),
        }
    }

    /// Each configuration given once, in order (`run` runs every case under each).
    pub fn configurations(&self) -> Vec<&'static Configuration> {
        let mut each: Vec<&'static Configuration> = Vec::new();
        for config in &self.configurations {
            if !each.iter().any(|c| c.name == config.name) {
                each.push(config);
            }
        }
        each
    }

    /// For commands that run under one configuration: the options, or one line saying so.
    pub fn one_configuration(&self) -> Result<CaseOptions> {
        if self.configurations().len() > 1 {
            anyhow::bail!(
                "this command runs under one configuration: give -c once (`sendtest run` takes several)"
            );
        }
        Ok(self.options())
    }
}

/// The kernel configuration a build from a tree gets beyond tinyconfig and
/// `vm-images/kernel.config`, applied in this order.
#[derive(clap::Args)]
#[command(next_help_heading = "Kernel builds (--kernel-tree)")]
pub struct KernelConfigArgs {
    /// Kernel builds: also apply this config fragment (repeatable; `CONFIG_X=y` lines).
    #[arg(long = "config", value_name = "FRAGMENT")]
    fragments: Vec<PathBuf>,
    /// Kernel builds: also set this option (repeatable), e.g. CONFIG_BTRFS_DEBUG=y.
    #[arg(long = "configitem", value_name = "CONFIG_X=VALUE")]
    items: Vec<String>,
    /// Kernel builds: lockdep, list debugging and btrfs's debug checks
    /// (`vm-images/debug.config`); a splat in the guest fails the case.
    #[arg(long)]
    debug: bool,
}

impl KernelConfigArgs {
    /// What the options add, checked.
    pub fn extra(&self) -> Result<ExtraConfig> {
        let mut extra = ExtraConfig::default();
        if self.debug {
            extra.fragment("vm-images/debug.config", kernel_build::DEBUG_FRAGMENT)?;
        }
        for file in &self.fragments {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read config fragment {}", file.display()))?;
            extra.fragment(&file.display().to_string(), &text)?;
        }
        for item in &self.items {
            extra.item(item)?;
        }
        Ok(extra)
    }

    /// Builds `tree` (with `revert` applied in a mirror, if given) with these options.
    pub fn build(&self, tree: &Path, revert: Option<Revert<'_>>) -> Result<KernelBuild> {
        kernel_build::build(tree, revert, &self.extra()?, &say)
    }
}

#[derive(clap::Args)]
#[command(next_help_heading = "btrfs-progs")]
pub struct ProgsArgs {
    /// Build btrfs and mkfs.btrfs from this btrfs-progs tree and use them instead of the
    /// installed ones, on either backend.
    #[arg(long, value_name = "PATH")]
    btrfs_progs_tree: Option<PathBuf>,
}

impl ProgsArgs {
    /// The tree given with `--btrfs-progs-tree`.
    pub fn tree(&self) -> Option<&Path> {
        self.btrfs_progs_tree.as_deref()
    }

    /// Builds the tree, if one was given, and puts its programs first in PATH.
    pub fn apply(&self) -> Result<()> {
        let Some(tree) = &self.btrfs_progs_tree else {
            return Ok(());
        };
        // Only the signal thread runs besides this one, and it never reads the environment.
        progs::build(tree, &say)?
            .put_first_in_path(&std::env::var_os("PATH").unwrap_or_default())?;
        Ok(())
    }
}

#[derive(clap::Args)]
#[command(next_help_heading = "Guests (--backend vm)")]
pub struct VmArgs {
    /// The bzImage to boot (implies --backend vm; default: the newest kernel in /boot with
    /// its modules).
    #[arg(long, value_name = "BZIMAGE")]
    pub kernel: Option<PathBuf>,
    /// VM: memory per guest, in MiB.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    memory: u32,
    /// VM: accelerator; `auto` uses KVM only when a probe guest boots under it.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    accel: Accel,
    /// VM: appended to the guest kernel's command line (repeatable).
    #[arg(long = "kernel-arg", value_name = "ARG")]
    kernel_args: Vec<String>,
}

impl VmArgs {
    /// The VM backend booting `built` (a kernel built from a tree), or else `--kernel`, or else
    /// the packaged kernel.
    pub fn prepare(&self, built: Option<&Path>) -> Result<Vm> {
        let options = self.options(built);
        let init = std::env::current_exe()
            .context("finding the sendtest binary to use as the guest's init")?;
        let vm = Vm::prepare(options, &init)?;
        say(&format!(
            "VM backend: kernel {} ({}), {}, initramfs {}",
            vm.kernel.release,
            vm.kernel.image.display(),
            vm.accel,
            vm.initramfs.display()
        ));
        Ok(vm)
    }

    /// How guests are set up: booting `built`, or else `--kernel`, or else the packaged kernel.
    pub fn options(&self, built: Option<&Path>) -> VmOptions {
        VmOptions {
            kernel: built.map(Path::to_path_buf).or_else(|| self.kernel.clone()),
            memory_mib: self.memory,
            accel: match self.accel {
                Accel::Auto => AccelChoice::Auto,
                Accel::Kvm => AccelChoice::Kvm,
                Accel::Tcg => AccelChoice::Tcg,
            },
            kernel_args: self.kernel_args.clone(),
            ..VmOptions::default()
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    Loop,
    Vm,
}

#[derive(Clone, Copy, ValueEnum)]
enum Accel {
    Auto,
    Kvm,
    Tcg,
}

/// Seconds, as `90`, `90s`, `2m` or `1h`.
fn seconds(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("`{text}` is not a time: write 90, 90s, 2m or 1h")),
    };
    number
        .parse::<u64>()
        .map(|n| n * scale)
        .map_err(|_| format!("`{text}` is not a time: write 90, 90s, 2m or 1h"))
}

/// A factor that must be above 0.
fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if f > 0.0 && f.is_finite() => Ok(f),
        Ok(_) => Err("must be above 0".into()),
        Err(_) => Err(format!("`{text}` is not a number")),
    }
}

/// A count or number of seconds that must not be 0.
pub fn at_least_one(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

/// Writes `text` to stdout. Once a reader has gone (`sendtest manifest TREE | head`), the
/// rest is dropped quietly and the command goes on to its end and its exit code.
pub fn out(text: &str) {
    use std::io::Write;
    static GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if GONE.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            GONE.store(true, std::sync::atomic::Ordering::Relaxed);
        } else {
            eprintln!("sendtest: writing to stdout: {e}");
        }
    }
}

/// A line on stderr, prefixed as every line of the harness's own is.
pub fn say(line: &str) {
    eprintln!("sendtest: {line}");
}

/// Releases what earlier harness runs killed with SIGKILL left behind (never a live run's).
pub fn sweep_dead_runs() {
    let swept = workdir::sweep_dead();
    if !swept.is_empty() {
        say(&swept.summary());
    }
}

/// `--in-diff PATCH|REV`: the patch file's text, or else `git diff REV` in `tree` (read only: no
/// index refresh is written).
pub fn patch_text(tree: &Path, spec: &str) -> Result<String> {
    if let Ok(text) = std::fs::read_to_string(spec) {
        return Ok(text);
    }
    let out = std::process::Command::new("git")
        .arg("--no-optional-locks")
        .arg("-C")
        .arg(tree)
        .args(["diff", "--no-color", spec, "--"])
        .output()
        .context("running git")?;
    if !out.status.success() {
        anyhow::bail!(
            "{spec}: neither a patch file nor a revision of {} ({})",
            tree.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
