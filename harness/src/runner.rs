//! Running cases: each in isolation with its own scratch filesystems and results directory, in
//! parallel, followed by the checks every case gets (btrfs check, the kernel log).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::case::{Case, Detected};
use crate::context::{Ctx, Tamper};
use crate::dmesg::{self, KmsgCursor};
use crate::exec::CommandLog;
use crate::interrupt;
use crate::manifest::Ignore;
use crate::scratch::Devices;

/// How a run is set up.
#[derive(Clone)]
pub struct RunConfig {
    /// This run's results directory; each case gets a subdirectory.
    pub results: PathBuf,
    /// Cases run at once.
    pub jobs: usize,
    /// Applied to every received tree before comparison (tests of the checker only).
    pub tamper: Option<Tamper>,
    /// Where scratch filesystems get their devices.
    pub devices: Arc<Devices>,
    /// How long cases that repeat rounds go on (`--duration`); each case has a default.
    pub duration: Option<Duration>,
    /// How long a case may take, beyond `duration`, before it fails as hung.
    pub timeout: Duration,
    /// How much stress cases scale their sizes (`--load-factor`).
    pub load_factor: f64,
    /// `--seed`, `--ops`, `--snapshots` for randomized cases.
    pub random: RandomKnobs,
}

/// What randomized cases are told; each has defaults for what is not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RandomKnobs {
    pub seed: Option<u64>,
    pub ops: Option<usize>,
    pub snapshots: Option<usize>,
}

/// The time a case may take beyond its `--duration` unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long after its time limit a case that has not returned is given up on. Its commands are
/// killed at the limit, so only a step stuck in the kernel (a mount, an ioctl) takes longer.
const STUCK_GRACE: Duration = Duration::from_secs(5);

/// How long the checks after a case (unmount, btrfs check) may take.
const CHECKS_TIME_LIMIT: Duration = Duration::from_secs(120);

impl RunConfig {
    /// Cases on loop devices, results under `results`.
    pub fn loopback(results: PathBuf, jobs: usize) -> RunConfig {
        RunConfig {
            results,
            jobs,
            tamper: None,
            devices: Arc::new(Devices::Loop),
            duration: None,
            timeout: DEFAULT_TIMEOUT,
            load_factor: 1.0,
            random: RandomKnobs::default(),
        }
    }

    /// How long a case may take: `timeout`, plus `duration` when one is given.
    pub fn case_time_limit(&self) -> Duration {
        self.timeout + self.duration.unwrap_or_default()
    }
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// A finding: the kernel or btrfs-progs misbehaved.
    Failed(String),
    /// The harness or the environment failed; nothing was learned about the kernel.
    Error(String),
    NotRun(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed(_) => "FAILED",
            Outcome::Error(_) => "ERROR",
            Outcome::NotRun(_) => "not run",
        }
    }

    /// The `outcome` file of a results directory: the label and time, then the reason.
    pub fn to_file(&self, elapsed: Duration) -> String {
        let reason = self.reason().unwrap_or("");
        format!("{} {:.1}s\n{reason}\n", self.label(), elapsed.as_secs_f64())
    }

    /// Reads back what [`Outcome::to_file`] wrote.
    pub fn from_file(text: &str) -> Option<Outcome> {
        let (first, reason) = text.split_once('\n').unwrap_or((text, ""));
        let reason = reason.trim_end().to_string();
        match first.rsplit_once(' ').map_or(first, |(label, _time)| label) {
            "passed" => Some(Outcome::Passed),
            "FAILED" => Some(Outcome::Failed(reason)),
            "ERROR" => Some(Outcome::Error(reason)),
            "not run" => Some(Outcome::NotRun(reason)),
            _ => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Passed => None,
            Outcome::Failed(r) | Outcome::Error(r) | Outcome::NotRun(r) => Some(r),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    /// Which repetition of the selection this was (`-i`, `-I`, `-L`), from 1.
    pub iteration: u32,
    pub outcome: Outcome,
    pub elapsed: Duration,
    pub dir: PathBuf,
}

/// Runs `cases` on loop devices, `config.jobs` at a time, calling `on_done` as each finishes.
pub fn run_cases(
    cases: &[&Case],
    config: &RunConfig,
    on_done: &(dyn Fn(&CaseResult) + Sync),
) -> Vec<CaseResult> {
    run_cases_with(cases, config, &|case| run_case(case, config), on_done)
}

/// Runs `cases` with `run_one` (one backend's way to run a case), `config.jobs` at a time.
/// Cases not started when a stop signal arrives are reported as not run.
pub fn run_cases_with(
    cases: &[&Case],
    config: &RunConfig,
    run_one: &(dyn Fn(&Case) -> CaseResult + Sync),
    on_done: &(dyn Fn(&CaseResult) + Sync),
) -> Vec<CaseResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<CaseResult>>> = Mutex::new(vec![None; cases.len()]);
    std::thread::scope(|scope| {
        for _ in 0..config.jobs.clamp(1, cases.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                let result = if interrupt::requested() {
                    not_run(case, config, "interrupted before it started")
                } else {
                    run_one(case)
                };
                on_done(&result);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every case ran"))
        .collect()
}

fn not_run(case: &Case, config: &RunConfig, why: &str) -> CaseResult {
    CaseResult {
        name: case.name.to_string(),
        iteration: 1,
        outcome: Outcome::NotRun(why.into()),
        elapsed: Duration::ZERO,
        dir: config.results.join(case.name),
    }
}

/// Runs one case and its checks, and leaves its artifacts in `<results>/<case>/`.
///
/// The case runs on a thread of its own. Its commands are killed at its time limit; if it still
/// has not returned a few seconds later (a step stuck in the kernel), it fails as hung and the
/// run goes on without it.
pub fn run_case(case: &Case, config: &RunConfig) -> CaseResult {
    let dir = config.results.join(case.name);
    let started = Instant::now();
    let limit = config.case_time_limit();
    let (sender, receiver) = mpsc::channel();
    let (owned_case, owned_config, owned_dir) = (*case, config.clone(), dir.clone());
    let spawned = std::thread::Builder::new()
        .name(format!("case {}", case.name))
        .spawn(move || {
            let outcome = run_here(&owned_case, &owned_config, &owned_dir, limit);
            let _ = sender.send(outcome);
        });
    let outcome = match spawned {
        Ok(_) => wait_for_case(&receiver, limit, &dir),
        Err(e) => Outcome::Error(format!("starting a thread for the case: {e}")),
    };
    finish(case, dir, started, outcome)
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
                "hung: the case did not return {}s after its time limit of {}s, with its commands killed (a step stuck in the kernel?); its scratch filesystems stay until it returns; last logged step: {last}",
                STUCK_GRACE.as_secs(),
                limit.as_secs()
            ));
        }
    }
}

/// Runs the case on this thread: its steps, then its checks.
fn run_here(case: &Case, config: &RunConfig, dir: &Path, limit: Duration) -> Outcome {
    let outcome = match std::fs::create_dir_all(dir) {
        Ok(()) => {
            run_in(case, config, dir, limit).unwrap_or_else(|e| Outcome::Error(format!("{e:#}")))
        }
        Err(e) => Outcome::Error(format!(
            "cannot create results directory {}: {e}",
            dir.display()
        )),
    };
    if outcome == Outcome::Passed {
        remove_streams(dir);
    }
    outcome
}

/// Ends a case on any backend: an outcome other than a pass under a stop signal becomes an
/// interruption, and the `outcome` file is written.
pub(crate) fn finish(case: &Case, dir: PathBuf, started: Instant, outcome: Outcome) -> CaseResult {
    let outcome = if interrupt::requested() && outcome != Outcome::Passed {
        Outcome::Error("interrupted by a signal".into())
    } else {
        outcome
    };
    let elapsed = started.elapsed();
    let _ = std::fs::write(dir.join("outcome"), outcome.to_file(elapsed));
    CaseResult {
        name: case.name.to_string(),
        iteration: 1,
        outcome,
        elapsed,
        dir,
    }
}

fn run_in(case: &Case, config: &RunConfig, dir: &Path, limit: Duration) -> Result<Outcome> {
    let log = CommandLog::create(&dir.join("commands.log")).context("creating the command log")?;
    log.set_time_limit(limit);
    let ignore = Ignore::new(case.ignore).with_context(|| format!("case {}", case.name))?;
    let mut kmsg = KmsgCursor::start(&format!(
        "sendtest: {} starts, results in {}",
        case.name,
        dir.display()
    ))?;
    let mut ctx = Ctx::new(dir, log, ignore, config)?;
    ctx.record_environment()?;

    let steps = catch_unwind(AssertUnwindSafe(|| (case.run)(&mut ctx)));
    let over_time = ctx.log().time_limit_passed();
    let log = ctx.log();
    log.set_time_limit(log.elapsed() + CHECKS_TIME_LIMIT);
    // Checks run whatever the steps did: a kernel that corrupts metadata while send fails is
    // still worth knowing about.
    let checks = ctx.unmount_and_check();
    drop(ctx);
    let kernel_log = kmsg.read_new()?;
    std::fs::write(dir.join("dmesg"), kernel_log.join("\n") + "\n")
        .context("writing the dmesg slice")?;

    let mut findings: Vec<String> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    match steps {
        Ok(Ok(())) => {}
        Ok(Err(e)) if over_time.is_some() => findings.push(format!(
            "timed out: the case passed its time limit of {}s: {e:#}",
            over_time.unwrap_or_default().as_secs()
        )),
        Ok(Err(e)) if is_no_space(&e) => errors.push(format!(
            "a scratch filesystem is full (ENOSPC), so nothing was learned; make the case's data fit its images: {e:#}"
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

/// Which cases a run takes.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Cases named one of these, or whose name contains one that names no case exactly.
    pub names: Vec<String>,
    /// Cases in one of these groups.
    pub groups: Vec<String>,
    /// Cases in none of these groups.
    pub exclude_groups: Vec<String>,
    /// Cases not named here (exact names, from `--exclude-file`).
    pub exclude_names: Vec<String>,
}

/// The case names in an exclude file: one per line, `#` starts a comment. A line that is not
/// exactly one case name is an error naming the file and line.
pub fn parse_exclude_file(
    file: &str,
    text: &str,
    all: &[&Case],
) -> std::result::Result<Vec<String>, String> {
    let mut names = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let at = format!("{file}:{}", number + 1);
        if entry.split_whitespace().count() > 1 {
            return Err(format!(
                "{at}: `{entry}` is not one case name (one case per line, `#` for comments)"
            ));
        }
        if !all.iter().any(|c| c.name == entry) {
            return Err(format!(
                "{at}: no case `{entry}`; `sendtest list` shows the cases"
            ));
        }
        names.push(entry.to_string());
    }
    Ok(names)
}

/// The cases `selection` takes, in `all`'s order. With neither names nor groups, the `auto`
/// group. A name or group that matches no case is an error naming it.
pub fn select<'a>(all: &'a [&'a Case], selection: &Selection) -> Result<Vec<&'a Case>, String> {
    for name in &selection.names {
        if !all.iter().any(|c| c.name.contains(name.as_str())) {
            return Err(format!(
                "no case matches `{name}`; `sendtest list` shows the cases"
            ));
        }
    }
    for group in selection.groups.iter().chain(&selection.exclude_groups) {
        if !all.iter().any(|c| c.in_group(group)) {
            return Err(format!(
                "no case is in group `{group}`; `sendtest list` shows the groups"
            ));
        }
    }
    let default_group = ["auto".to_string()];
    let groups: &[String] = if selection.names.is_empty() && selection.groups.is_empty() {
        &default_group
    } else {
        &selection.groups
    };
    Ok(all
        .iter()
        .copied()
        .filter(|c| {
            let by_name = selection.names.iter().any(|n| {
                let exact = all.iter().any(|other| other.name == n.as_str());
                if exact {
                    c.name == n.as_str()
                } else {
                    c.name.contains(n.as_str())
                }
            });
            let by_group = groups.iter().any(|g| c.in_group(g));
            (by_name || by_group)
                && !selection.exclude_groups.iter().any(|g| c.in_group(g))
                && !selection.exclude_names.iter().any(|n| n == c.name)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &'static str, groups: &'static [&'static str]) -> Case {
        Case {
            name,
            groups,
            summary: "",
            fix: crate::case::Fix {
                commit: "0",
                subject: "",
                fstests: None,
                revert: None,
            },
            ignore: &[],
            run: |_| Ok(()),
        }
    }

    #[test]
    fn selection_by_name_group_and_exclusion() {
        let (quick, race, manual) = (
            case("quick-one", &["auto", "quick"]),
            case("race-one", &["auto", "race"]),
            case("manual", &["stress"]),
        );
        let all = [&quick, &race, &manual];
        let names = |s: &Selection| {
            select(&all, s)
                .unwrap()
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(&Selection::default()),
            ["quick-one", "race-one"],
            "default: the auto group"
        );
        assert_eq!(
            names(&Selection {
                groups: strings(&["quick"]),
                ..Default::default()
            }),
            ["quick-one"]
        );
        assert_eq!(
            names(&Selection {
                exclude_groups: strings(&["race"]),
                ..Default::default()
            }),
            ["quick-one"]
        );
        assert_eq!(
            names(&Selection {
                names: strings(&["man"]),
                ..Default::default()
            }),
            ["manual"]
        );
        assert_eq!(
            names(&Selection {
                names: strings(&["-one"]),
                ..Default::default()
            }),
            ["quick-one", "race-one"],
            "a part of names"
        );
        let (plain, longer) = (case("random", &[]), case("random-concurrent", &[]));
        let both = [&plain, &longer];
        let exact = Selection {
            names: strings(&["random"]),
            ..Default::default()
        };
        let chosen: Vec<_> = select(&both, &exact)
            .unwrap()
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(chosen, ["random"], "a whole name selects that case only");
        let unknown = Selection {
            groups: strings(&["nope"]),
            ..Default::default()
        };
        let Err(message) = select(&all, &unknown) else {
            panic!("an unknown group was accepted")
        };
        assert!(message.contains("no case is in group `nope`"), "{message}");
    }

    #[test]
    fn exclude_files_name_cases_and_bad_lines_are_errors() {
        let (a, b) = (case("a-case", &["auto"]), case("b-case", &["auto"]));
        let all = [&a, &b];
        let text = "# flaky here\na-case   # see bug 123\n\n";
        assert_eq!(
            parse_exclude_file("x", text, &all),
            Ok(vec!["a-case".into()])
        );
        let selection = Selection {
            exclude_names: vec!["a-case".into()],
            ..Default::default()
        };
        let names: Vec<_> = select(&all, &selection)
            .unwrap()
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["b-case"]);
        assert_eq!(
            parse_exclude_file("x", "a-case\nno-case\n", &all),
            Err("x:2: no case `no-case`; `sendtest list` shows the cases".into())
        );
        assert!(parse_exclude_file("x", "a-case b-case\n", &all)
            .unwrap_err()
            .starts_with("x:1: `a-case b-case` is not one case name"));
    }

    #[test]
    fn outcome_files_read_back() {
        for outcome in [
            Outcome::Passed,
            Outcome::Failed("a: field sha256: expected x got y".into()),
            Outcome::Error("`mkfs.btrfs` failed".into()),
            Outcome::NotRun("interrupted before it started".into()),
        ] {
            let text = outcome.to_file(Duration::from_millis(1500));
            assert_eq!(Outcome::from_file(&text), Some(outcome), "{text}");
        }
        assert_eq!(Outcome::from_file("garbage"), None);
    }
}
