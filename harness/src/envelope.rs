//! The envelope of one case where it runs (the host's loop devices, or inside a guest): its
//! results directory, its requirements, its time limit, and the checks every case gets after
//! its steps (btrfs check of each scratch filesystem, the kernel log).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::case::Case;
use crate::context::{append_headline, CaseOptions, Ctx};
use crate::dmesg::{self, KmsgCursor};
use crate::exec::CommandLog;
use crate::finding::Detected;
use crate::interrupt;
use crate::manifest::Ignore;
use crate::outcome::{Outcome, HUNG, TIMED_OUT};
use crate::scratch::Devices;

/// How long after its time limit a case that has not returned is given up on. Its commands are
/// killed at the limit, so only a step stuck in the kernel (a mount, an ioctl) takes longer.
const STUCK_GRACE: Duration = Duration::from_secs(5);

/// How long the checks after a case (unmount, btrfs check) may take.
const CHECKS_TIME_LIMIT: Duration = Duration::from_secs(120);

/// Runs `case` here, on scratch filesystems from `devices`, with its artifacts in `dir`, and
/// writes its `outcome` file there.
///
/// A case whose requirements are not met here is not run. Otherwise it runs on a thread of its
/// own; its commands are killed at its time limit, and if it still has not returned a few
/// seconds later (a step stuck in the kernel), it fails as hung and the run goes on without it.
pub fn run(case: &Case, dir: &Path, options: CaseOptions, devices: Arc<Devices>) -> Outcome {
    let started = Instant::now();
    let outcome = match std::fs::create_dir_all(dir) {
        Err(e) => Outcome::Error(format!(
            "cannot create results directory {}: {e}",
            dir.display()
        )),
        Ok(()) => match case
            .unmet_requirement()
            .or_else(|| options.configuration.unmet())
        {
            Some(why) => Outcome::NotRun(why),
            None => run_on_a_thread(case, dir, options, devices),
        },
    };
    let _ = std::fs::write(dir.join("outcome"), outcome.to_file(started.elapsed()));
    outcome
}

fn run_on_a_thread(
    case: &Case,
    dir: &Path,
    options: CaseOptions,
    devices: Arc<Devices>,
) -> Outcome {
    let limit = options.time_limit();
    let (sender, receiver) = mpsc::channel();
    let (owned_case, owned_dir) = (*case, dir.to_path_buf());
    let spawned = std::thread::Builder::new()
        .name(format!("case {}", case.name))
        .spawn(move || {
            let outcome = run_here(&owned_case, &owned_dir, options, devices, limit);
            let _ = sender.send(outcome);
        });
    match spawned {
        Ok(_) => wait_for_case(&receiver, limit, dir),
        Err(e) => Outcome::Error(format!("starting a thread for the case: {e}")),
    }
}

/// The outcome the case's thread sends, or a hang once it is `STUCK_GRACE` past its limit
/// (or past a stop signal).
fn wait_for_case(receiver: &mpsc::Receiver<Outcome>, limit: Duration, dir: &Path) -> Outcome {
    let started = Instant::now();
    let mut give_up_at = started + limit + STUCK_GRACE;
    let mut interrupted = false;
    loop {
        match receiver.recv_timeout(Duration::from_millis(100)) {
            Ok(outcome) => return outcome,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Outcome::Error("the case's thread ended without an outcome".into())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if interrupt::requested() && !interrupted {
            interrupted = true;
            give_up_at = give_up_at.min(Instant::now() + STUCK_GRACE);
        }
        if Instant::now() >= give_up_at {
            let last = CommandLog::last_line(&dir.join("commands.log"))
                .unwrap_or_else(|| "(nothing logged)".into());
            return Outcome::Failed(format!(
                "{HUNG} the case did not return {}s after its time limit of {}s, with its commands killed (a step stuck in the kernel?); its scratch filesystems stay until it returns; last logged step: {last}",
                STUCK_GRACE.as_secs(),
                limit.as_secs()
            ));
        }
    }
}

/// Runs the case on this thread: its steps, then its checks.
fn run_here(
    case: &Case,
    dir: &Path,
    options: CaseOptions,
    devices: Arc<Devices>,
    limit: Duration,
) -> Outcome {
    let outcome = run_in(case, dir, options, devices, limit)
        .unwrap_or_else(|e| Outcome::Error(format!("{e:#}")));
    if outcome == Outcome::Passed {
        remove_streams(dir);
    }
    outcome
}

fn run_in(
    case: &Case,
    dir: &Path,
    options: CaseOptions,
    devices: Arc<Devices>,
    limit: Duration,
) -> Result<Outcome> {
    let log = CommandLog::create(&dir.join("commands.log")).context("creating the command log")?;
    log.set_time_limit(limit);
    let ignore = Ignore::new(case.ignore).with_context(|| format!("case {}", case.name))?;
    let mut kmsg = KmsgCursor::start(&format!(
        "sendtest: {} starts, results in {}",
        case.name,
        dir.display()
    ))?;
    let mut ctx = Ctx::new(dir, log, ignore, options, devices)?;
    ctx.record_environment()?;

    let steps = catch_unwind(AssertUnwindSafe(|| (case.run)(&mut ctx)));
    let over_time = ctx.log().time_limit_passed();
    let log = ctx.log();
    log.set_time_limit(log.elapsed() + CHECKS_TIME_LIMIT);
    // Checks run whatever the steps did: a kernel that corrupts metadata while send fails is
    // still worth knowing about.
    let checks = ctx.unmount_and_check();
    let failed = !matches!(steps, Ok(Ok(()))) || checks.as_ref().is_ok_and(|p| !p.is_empty());
    if options.keep_failed && failed {
        let kept = ctx.keep_images();
        append_headline(dir, &crate::workdir::kept_images_note(&kept))?;
    } else {
        drop(ctx);
    }
    let kernel_log = kmsg.read_new()?;
    std::fs::write(dir.join("dmesg"), kernel_log.join("\n") + "\n")
        .context("writing the dmesg slice")?;

    let mut findings: Vec<String> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    match steps {
        Ok(Ok(())) => {}
        Ok(Err(e)) if over_time.is_some() => findings.push(format!(
            "{TIMED_OUT} the case passed its time limit of {}s: {e:#}",
            over_time.unwrap_or_default().as_secs()
        )),
        Ok(Err(e)) if is_no_space(&e) => errors.push(format!(
            "a scratch filesystem had no room (ENOSPC), so nothing was learned; make the case's data fit its images: {e:#}"
        )),
        Ok(Err(e)) if e.downcast_ref::<Detected>().is_some() => findings.push(format!("{e:#}")),
        Ok(Err(e)) => errors.push(format!("{e:#}")),
        Err(panic) => errors.push(format!("case panicked: {}", panic_message(&panic))),
    }
    match checks {
        Ok(problems) => findings.extend(problems),
        Err(e) => errors.push(format!("releasing scratch filesystems: {e:#}")),
    }
    let bad_lines = dmesg::problems(&kernel_log);
    if !bad_lines.is_empty() {
        findings.push(format!(
            "kernel log: {}",
            bad_lines[..bad_lines.len().min(3)].join(" | ")
        ));
    }
    Ok(if !findings.is_empty() {
        Outcome::Failed(findings.join("; "))
    } else if !errors.is_empty() {
        Outcome::Error(errors.join("; "))
    } else {
        Outcome::Passed
    })
}

/// Whether `error` comes from a full filesystem: an ENOSPC from a system call, or a command that
/// said so.
fn is_no_space(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.raw_os_error() == Some(libc::ENOSPC))
            || cause
                .downcast_ref::<nix::errno::Errno>()
                .is_some_and(|e| *e == nix::errno::Errno::ENOSPC)
            || cause.to_string().contains("No space left on device")
    })
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

/// Streams are large; a passing case does not need them.
fn remove_streams(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.path().extension().is_some_and(|e| e == "stream") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
