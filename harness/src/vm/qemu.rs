//! qemu: the command line of one guest, and the choice between KVM and TCG.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use super::guest::PROBE_OK;
use crate::exec::{self, CommandError, CommandLog, Failure};

pub const QEMU: &str = "qemu-system-x86_64";

/// How long a probe guest may take to reach its init under KVM. A working KVM boots it in
/// about a second; where KVM needs a special guest, a stock guest hangs and the probe times out.
const KVM_PROBE_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

impl Accel {
    fn args(self) -> [&'static str; 4] {
        match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            // "max" gives the guest SSE4.2 and friends, so crc32c-intel and other fast paths load.
            Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
        }
    }
}

/// One guest to boot.
pub struct Guest<'a> {
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    /// The kernel command line.
    pub append: String,
    /// Raw images, each attached as a virtio-blk disk with the given serial.
    pub disks: Vec<(PathBuf, String)>,
    /// Where the serial console goes.
    pub console: PathBuf,
    pub memory_mib: u32,
    pub cpus: u32,
    pub accel: Accel,
}

/// Boots `guest` and waits until it powers off, or kills it once `limit` has passed.
pub fn boot(
    sh: &Shell,
    guest: &Guest<'_>,
    log: &CommandLog,
    limit: Duration,
) -> Result<exec::Output, CommandError> {
    let serial = format!("file:{}", guest.console.display());
    exec::output_within(command(sh, guest, &serial), log, Some(limit))
}

/// Boots `guest` with its console on this terminal (`sendtest shell`) and waits until it
/// powers off. Ctrl-A X ends qemu at once.
pub fn boot_on_terminal(sh: &Shell, guest: &Guest<'_>) -> Result<()> {
    let command = command(sh, guest, "mon:stdio");
    let shown = command.to_string();
    let status = std::process::Command::from(command)
        .status()
        .with_context(|| format!("starting `{shown}`"))?;
    anyhow::ensure!(status.success(), "`{shown}` failed ({status})");
    Ok(())
}

/// The qemu command for `guest`, its serial console going to `serial`.
fn command<'a>(sh: &'a Shell, guest: &Guest<'_>, serial: &str) -> xshell::Cmd<'a> {
    let (kernel, initramfs, append) = (guest.kernel, guest.initramfs, &guest.append);
    let memory = guest.memory_mib.to_string();
    let cpus = guest.cpus.to_string();
    let accel = guest.accel.args();
    let mut drives = Vec::new();
    for (i, (image, id)) in guest.disks.iter().enumerate() {
        let file = image.display().to_string().replace(',', ",,");
        drives.push("-drive".to_string());
        drives.push(format!(
            "file={file},if=none,id=disk{i},format=raw,cache=unsafe"
        ));
        drives.push("-device".to_string());
        drives.push(format!("virtio-blk-pci,drive=disk{i},serial={id}"));
    }
    cmd!(
        sh,
        "{QEMU} -nodefaults -no-reboot -display none -machine pc -m {memory} -smp {cpus} {accel...}
            -kernel {kernel} -initrd {initramfs} -append {append} -serial {serial} {drives...}"
    )
}

/// KVM if a probe guest boots under it, TCG otherwise. The answer is kept for the run, and for
/// the host's boot in the cache.
pub fn choose_accel(kernel: &Path, initramfs: &Path, log: &CommandLog) -> Accel {
    static CHOSEN: OnceLock<Accel> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        if std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_err()
        {
            log.note("no usable /dev/kvm: TCG");
            return Accel::Tcg;
        }
        let boot_id =
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let cache_file = crate::cache::dir().ok().map(|dir| dir.join("kvm-probe"));
        if let Some(cached) = cache_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
        {
            if let Some((id, answer)) = cached.rsplit_once(' ') {
                if id == boot_id.trim() {
                    log.note(&format!("KVM probe answer from this boot: {answer}"));
                    return if answer.trim() == "kvm" {
                        Accel::Kvm
                    } else {
                        Accel::Tcg
                    };
                }
            }
        }
        match probe_kvm(kernel, initramfs, log) {
            Ok(Probe::Booted) => remember(cache_file, &boot_id, Accel::Kvm),
            Ok(Probe::Hung | Probe::Refused) => remember(cache_file, &boot_id, Accel::Tcg),
            // The guest ended without reaching init: that says nothing about KVM, so keep no answer.
            Ok(Probe::Inconclusive) => Accel::Tcg,
            Err(e) => {
                log.note(&format!("KVM probe failed: {e:#}"));
                Accel::Tcg
            }
        }
    })
}

fn remember(cache_file: Option<PathBuf>, boot_id: &str, accel: Accel) -> Accel {
    if let Some(file) = cache_file {
        let _ = std::fs::write(file, format!("{} {accel}\n", boot_id.trim()));
    }
    accel
}

enum Probe {
    /// Init ran: KVM works.
    Booted,
    /// Still not at init when the limit came: KVM needs a guest we do not have.
    Hung,
    /// qemu failed under KVM (here: it aborts setting an MSR with `-cpu host`).
    Refused,
    /// The guest ended without reaching init (a broken image, say).
    Inconclusive,
}

fn probe_kvm(kernel: &Path, initramfs: &Path, log: &CommandLog) -> Result<Probe> {
    let work = crate::workdir::create()?;
    let console = work.path().join("console.log");
    let guest = Guest {
        kernel,
        initramfs,
        append: format!("console=ttyS0 panic=-1 quiet {}", super::request::PROBE),
        disks: Vec::new(),
        console: console.clone(),
        memory_mib: 512,
        cpus: 1,
        accel: Accel::Kvm,
    };
    let sh = Shell::new()?;
    let started = Instant::now();
    let result = boot(&sh, &guest, log, KVM_PROBE_LIMIT);
    let up = std::fs::read_to_string(&console)
        .context("reading the probe's console")?
        .contains(PROBE_OK);
    log.note(&format!(
        "KVM probe: {} after {:.1}s ({})",
        if up {
            "guest init ran"
        } else {
            "guest init never ran"
        },
        started.elapsed().as_secs_f64(),
        match &result {
            Ok(out) => out.status.to_string(),
            Err(e) => e.to_string(),
        }
    ));
    Ok(match result {
        _ if up => Probe::Booted,
        Err(e) if matches!(e.failure, Failure::TimedOut(_)) => Probe::Hung,
        Ok(out) if !out.status.success() => Probe::Refused,
        _ => Probe::Inconclusive,
    })
}
