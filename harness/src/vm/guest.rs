//! The guest side: this binary as PID 1 of the VM. It mounts the kernel filesystems, loads the
//! modules the initramfs lists, runs the case named on the kernel command line on the virtio
//! scratch disks, writes the case's results to the results disk, and reboots (which ends qemu).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};

use super::initramfs::MODULE_LIST;
use super::request::Request;
use crate::case::Case;
use crate::coverage;
use crate::cpio;
use crate::envelope;
use crate::outcome::Outcome;
use crate::scratch::Devices;

/// Printed on the console once init runs; the KVM probe looks for it.
pub const PROBE_OK: &str = "sendtest: guest init is up";
/// Printed on the console right before the case's first step; the host times the boot by it.
pub const CASE_STARTS: &str = "sendtest: the case starts";
pub const RESULTS_SERIAL: &str = "sendtest-results";
/// The prompt of `sendtest shell`.
pub const SHELL_PROMPT: &str = "sendtest-guest# ";
pub const SCRATCH_SERIAL_PREFIX: &str = "sendtest-scratch";
/// The results disk starts with this line and the archive's length; the archive follows at
/// [`RESULTS_OFFSET`].
pub const RESULTS_HEADER: &str = "SENDTEST-RESULTS v1";
pub const RESULTS_OFFSET: u64 = 512;

const GUEST_RESULTS: &str = "/tmp/results";
const DISK_WAIT: Duration = Duration::from_secs(20);

/// The kernel filesystems init mounts: (source, target, type).
const KERNEL_MOUNTS: &[(&str, &str, &str)] = &[
    ("devtmpfs", "/dev", "devtmpfs"),
    ("proc", "/proc", "proc"),
    ("sysfs", "/sys", "sysfs"),
    ("tmpfs", "/tmp", "tmpfs"),
];

/// Whether this process is a guest's init.
pub fn is_guest() -> bool {
    std::process::id() == 1
}

/// Runs the guest and reboots, which ends qemu. Never returns.
pub fn main(cases: &[&Case]) -> ! {
    match std::panic::catch_unwind(|| boot_and_run(cases)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("sendtest guest: {e:#}"),
        Err(_) => eprintln!("sendtest guest: init panicked"),
    }
    nix::unistd::sync();
    // Reboot rather than power off: power-off needs ACPI, which a tinyconfig kernel lacks, and
    // qemu runs with -no-reboot, so a reboot ends it just the same.
    let err = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    eprintln!("sendtest guest: reboot failed: {err:?}");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn boot_and_run(cases: &[&Case]) -> Result<()> {
    for (source, target, fstype) in KERNEL_MOUNTS {
        std::fs::create_dir_all(target)?;
        mount(
            Some(*source),
            *target,
            Some(*fstype),
            MsFlags::empty(),
            None::<&str>,
        )
        .with_context(|| format!("mounting {fstype} on {target}"))?;
    }
    println!("{PROBE_OK}");
    let request = Request::parse(&std::fs::read_to_string("/proc/cmdline")?);
    if request.probe {
        return Ok(());
    }
    // Init is single-threaded here, so changing the environment is safe.
    std::env::set_var("PATH", super::initramfs::GUEST_PATH);
    load_modules()?;
    if request.shell {
        let disks = wait_for_disks(request.scratch_disks)?;
        return shell(disks.values());
    }
    let mut disks = wait_for_disks(request.scratch_disks + 1)?;
    let results_disk = disks.remove(RESULTS_SERIAL).context("no results disk")?;
    let scratch: Vec<PathBuf> = disks.into_values().collect();

    let name = request
        .case
        .clone()
        .context("no sendtest.case= on the kernel command line")?;
    let case_dir = Path::new(GUEST_RESULTS).join(&name);
    match cases.iter().find(|c| c.name == name) {
        Some(case) => {
            if let Some(key) = &request.sysrq {
                println!("sendtest: writing `{key}` to /proc/sysrq-trigger as asked");
                std::fs::write("/proc/sysrq-trigger", key)?;
            }
            if request.coverage {
                // Each btrfs process writes its counters here when it exits. Init is still
                // single-threaded, so changing the environment is safe.
                std::env::set_var("GCOV_PREFIX", case_dir.join(coverage::PROGS_DATA));
            }
            println!("{CASE_STARTS}");
            let devices = Arc::new(Devices::given(scratch));
            let outcome = envelope::run(case, &case_dir, request.options(), devices);
            println!("sendtest: {name}: {}", outcome.label());
            if request.coverage {
                keep_kernel_counters(&case_dir);
            }
        }
        None => {
            std::fs::create_dir_all(&case_dir)?;
            let outcome = Outcome::Error(format!("the guest's sendtest has no case `{name}`"));
            std::fs::write(case_dir.join("outcome"), outcome.to_file(Duration::ZERO))?;
        }
    }
    write_results(&case_dir, &results_disk)
}

/// `sendtest shell`: an interactive shell on the console, with the scratch disks named; the
/// guest powers off when it exits.
fn shell<'a>(disks: impl Iterator<Item = &'a PathBuf>) -> Result<()> {
    let names: Vec<String> = disks.map(|d| d.display().to_string()).collect();
    println!(
        "sendtest: a shell in the guest, kernel {}; scratch disks: {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        names.join(" ")
    );
    if let Some(first) = names.first() {
        println!(
            "sendtest: for example `mkfs.btrfs -q {first} && mkdir -p /mnt && mount {first} /mnt`; `exit` powers off"
        );
    }
    let status = std::process::Command::new("sh")
        .arg("-i")
        .env("PS1", SHELL_PROMPT)
        .env("HOME", "/")
        .status()
        .context("starting sh in the guest")?;
    println!("sendtest: the shell exited ({status}); powering off");
    Ok(())
}

/// Copies the kernel's coverage counters (`CONFIG_GCOV_KERNEL`) into the case's results. A
/// kernel without them is said on the console; the host reports the missing data.
fn keep_kernel_counters(case_dir: &Path) {
    let debugfs = Path::new("/sys/kernel/debug");
    let mounted = mount(
        Some("debugfs"),
        debugfs,
        Some("debugfs"),
        MsFlags::empty(),
        None::<&str>,
    );
    let copied = mounted.map_err(anyhow::Error::from).and_then(|()| {
        coverage::copy_counters(&debugfs.join("gcov"), &case_dir.join(coverage::KERNEL_DATA))
    });
    match copied {
        Ok(n) => println!("sendtest: kept {n} kernel coverage counter file(s)"),
        Err(e) => eprintln!("sendtest guest: no kernel coverage counters: {e:#}"),
    }
}

/// Loads the modules the initramfs lists, in order. A required one that fails stops the boot.
fn load_modules() -> Result<()> {
    let list = std::fs::read_to_string(MODULE_LIST).unwrap_or_default();
    for line in list.lines() {
        let Some((kind, path)) = line.split_once(' ') else {
            continue;
        };
        let file = File::open(path).with_context(|| format!("opening module {path}"))?;
        match nix::kmod::finit_module(&file, c"", nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) if kind == "optional" => {
                eprintln!("sendtest guest: optional module {path}: {e}")
            }
            Err(e) => bail!("loading module {path}: {e}"),
        }
    }
    Ok(())
}

/// Waits until `count` disks with a sendtest serial exist; returns them by serial.
fn wait_for_disks(count: usize) -> Result<BTreeMap<String, PathBuf>> {
    let started = Instant::now();
    loop {
        let mut found = BTreeMap::new();
        for entry in std::fs::read_dir("/sys/block")?.flatten() {
            let serial = std::fs::read_to_string(entry.path().join("serial")).unwrap_or_default();
            let serial = serial.trim();
            if serial == RESULTS_SERIAL || serial.starts_with(SCRATCH_SERIAL_PREFIX) {
                found.insert(
                    serial.to_string(),
                    Path::new("/dev").join(entry.file_name()),
                );
            }
        }
        if found.len() >= count {
            return Ok(found);
        }
        if started.elapsed() > DISK_WAIT {
            bail!(
                "only {} of {count} sendtest disks appeared within {}s",
                found.len(),
                DISK_WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Packs the case's results directory (its subdirectories too) and writes it raw to the
/// results disk.
fn write_results(dir: &Path, disk: &Path) -> Result<()> {
    let mut archive = cpio::Writer::new(Vec::new());
    pack(&mut archive, dir, "")?;
    let bytes = archive.finish()?;
    let mut disk = std::fs::OpenOptions::new()
        .write(true)
        .open(disk)
        .context("opening the results disk")?;
    let header = format!("{RESULTS_HEADER} {}\n", bytes.len());
    disk.write_all_at(header.as_bytes(), 0)?;
    disk.write_all_at(&bytes, RESULTS_OFFSET)?;
    disk.flush()?;
    disk.sync_all().context("syncing the results disk")?;
    Ok(())
}

/// Adds the regular files under `dir` to `archive`, named from `prefix`.
fn pack(archive: &mut cpio::Writer<Vec<u8>>, dir: &Path, prefix: &str) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            pack(archive, &entry.path(), &format!("{name}/"))?;
        } else if kind.is_file() {
            archive.file(&name, 0o644, &std::fs::read(entry.path())?)?;
        }
    }
    Ok(())
}

/// Reads the archive a guest wrote to the results image at `path`.
pub fn read_results(path: &Path) -> Result<Vec<cpio::File>> {
    let image = File::open(path)?;
    let mut header = [0u8; RESULTS_OFFSET as usize];
    image.read_exact_at(&mut header, 0)?;
    let line = String::from_utf8_lossy(&header);
    let length: usize = line
        .lines()
        .next()
        .and_then(|l| l.strip_prefix(RESULTS_HEADER))
        .and_then(|rest| rest.trim().parse().ok())
        .context("the guest wrote no results")?;
    let mut archive = vec![0u8; length];
    image
        .read_exact_at(&mut archive, RESULTS_OFFSET)
        .context("the results archive is cut short")?;
    cpio::read_files(&archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_written_to_a_disk_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let case_dir = dir.path().join("case");
        std::fs::create_dir(&case_dir).unwrap();
        std::fs::write(case_dir.join("outcome"), "passed 0.2s\n\n").unwrap();
        std::fs::write(case_dir.join("dmesg"), "[ 1.0] hello\n").unwrap();
        std::fs::create_dir_all(case_dir.join("coverage/kernel")).unwrap();
        std::fs::write(case_dir.join("coverage/kernel/send.gcda"), "c").unwrap();
        let disk = dir.path().join("results.img");
        File::create(&disk).unwrap().set_len(1 << 20).unwrap();
        write_results(&case_dir, &disk).unwrap();
        let files = read_results(&disk).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["coverage/kernel/send.gcda", "dmesg", "outcome"]);
        let blank = dir.path().join("blank.img");
        File::create(&blank).unwrap().set_len(1 << 20).unwrap();
        assert!(read_results(&blank)
            .unwrap_err()
            .to_string()
            .contains("no results"));
    }
}
