//! Running a plan: the selected cases over a backend, `jobs` at a time, repeated and rerun as
//! the plan says. Each case's result is handed to the caller as it ends; reporters read the
//! results afterwards and never call back.

mod select;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::backend::Backend;
use crate::case::Case;
use crate::configuration::Configuration;
use crate::context::CaseOptions;
use crate::interrupt;
pub use crate::outcome::{CaseResult, Outcome};
pub use select::{parse_exclude_file, select, Selection};

/// What a run does.
#[derive(Clone)]
pub struct Plan<'a> {
    /// The cases, in the order they start.
    pub cases: Vec<&'a Case>,
    /// This run's results directory: a subdirectory per case (per iteration with several).
    pub results: PathBuf,
    /// Cases run at once.
    pub jobs: usize,
    /// What every case is told.
    pub options: CaseOptions,
    /// How many times the selection runs (`-i`, `-I`).
    pub iterations: u32,
    /// Stop after the first iteration with a failure (`-I`).
    pub until_failure: bool,
    /// Rerun each failed case this many times afterwards, one at a time (`-L`).
    pub reruns: u32,
    /// A case that was not run counts as failed (`--require-all`).
    pub require_all: bool,
    /// Each case runs under each of these (`-c`), as `CASE@CONFIGURATION` unless it is the
    /// default; none: once, under `options.configuration`.
    pub configurations: Vec<&'static Configuration>,
}

/// One case under one configuration: what a plan runs and a result names.
#[derive(Clone, Copy)]
struct Unit<'a> {
    case: &'a Case,
    configuration: &'static Configuration,
}

impl Unit<'_> {
    /// `CASE`, or `CASE@CONFIGURATION` under another than the default: its results
    /// directory, and its name in every report.
    fn name(&self) -> String {
        if self.configuration.is_default() {
            self.case.name.to_string()
        } else {
            format!("{}@{}", self.case.name, self.configuration.name)
        }
    }
}

impl Plan<'_> {
    /// How many case runs one iteration of the plan makes: each case under each configuration.
    pub fn units_per_iteration(&self) -> usize {
        self.cases.len() * self.configurations.len().max(1)
    }

    /// Every case under every configuration, configuration by configuration.
    fn units(&self) -> Vec<Unit<'_>> {
        let configurations = if self.configurations.is_empty() {
            vec![self.options.configuration]
        } else {
            self.configurations.clone()
        };
        configurations
            .iter()
            .flat_map(|&configuration| {
                self.cases.iter().map(move |&case| Unit {
                    case,
                    configuration,
                })
            })
            .collect()
    }
}

impl<'a> Plan<'a> {
    /// Each of `cases` once, `jobs` at a time, with default options.
    pub fn new(cases: Vec<&'a Case>, results: PathBuf, jobs: usize) -> Plan<'a> {
        Plan {
            cases,
            results,
            jobs,
            options: CaseOptions::default(),
            iterations: 1,
            until_failure: false,
            reruns: 0,
            require_all: false,
            configurations: Vec::new(),
        }
    }
}

/// How the reruns of one failed case went.
#[derive(Debug, Clone)]
pub struct Rerun {
    pub name: String,
    pub passed: u32,
    pub ran: u32,
    /// Where their results are: `<run>/reruns/<case>/<k>/`.
    pub dir: PathBuf,
}

/// What the caller hears while a plan runs.
pub enum Event<'r> {
    /// A case ended (not a rerun).
    Done(&'r CaseResult),
    /// A failed case's reruns ended.
    Reran(&'r Rerun),
}

/// What a plan came to.
#[derive(Debug, Default)]
pub struct RunResults {
    /// Every case of every iteration, in the plan's order within each.
    pub results: Vec<CaseResult>,
    pub reruns: Vec<Rerun>,
}

/// Runs `plan` on `backend`. Cases not started when a stop signal arrives are not run; no
/// iteration or rerun starts after one.
pub fn execute(
    plan: &Plan<'_>,
    backend: &dyn Backend,
    on_event: &(dyn Fn(Event<'_>) + Sync),
) -> RunResults {
    let mut all = RunResults::default();
    for iteration in 1..=plan.iterations {
        let dir = if plan.iterations > 1 {
            plan.results.join(format!("iteration-{iteration}"))
        } else {
            plan.results.clone()
        };
        let results = run_batch(
            plan,
            &plan.units(),
            &dir,
            plan.jobs,
            iteration,
            backend,
            &|r| on_event(Event::Done(r)),
        );
        let failed = results.iter().any(CaseResult::failed);
        all.results.extend(results);
        if interrupt::requested() || (plan.until_failure && failed) {
            break;
        }
    }
    if plan.reruns > 0 {
        all.reruns = rerun_failures(plan, &all.results, backend, on_event);
    }
    all
}

/// Runs `units` with results under `dir`, `jobs` at a time.
fn run_batch(
    plan: &Plan<'_>,
    units: &[Unit<'_>],
    dir: &Path,
    jobs: usize,
    iteration: u32,
    backend: &dyn Backend,
    on_done: &(dyn Fn(&CaseResult) + Sync),
) -> Vec<CaseResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<CaseResult>>> = Mutex::new(vec![None; units.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, units.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(unit) = units.get(i) else { break };
                let name = unit.name();
                let case_dir = dir.join(&name);
                let started = Instant::now();
                let options = CaseOptions {
                    configuration: unit.configuration,
                    ..plan.options
                };
                let outcome = if interrupt::requested() {
                    Outcome::NotRun("interrupted before it started".into())
                } else {
                    backend.run(unit.case, &case_dir, &options)
                };
                let result = finish(
                    name,
                    case_dir,
                    iteration,
                    started,
                    outcome,
                    plan.require_all,
                );
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

/// Ends a case: an outcome other than a pass under a stop signal becomes an interruption, a
/// case not run fails when all are required, and the `outcome` file is rewritten with the time
/// the backend took (a guest's boot included).
fn finish(
    name: String,
    dir: PathBuf,
    iteration: u32,
    started: Instant,
    outcome: Outcome,
    require_all: bool,
) -> CaseResult {
    let outcome = match outcome {
        Outcome::NotRun(why) if require_all => {
            Outcome::Failed(format!("not run ({why}), and all cases are required"))
        }
        outcome if interrupt::requested() && outcome != Outcome::Passed => {
            Outcome::Error("interrupted by a signal".into())
        }
        outcome => outcome,
    };
    let elapsed = started.elapsed();
    if dir.is_dir() {
        let _ = std::fs::write(dir.join("outcome"), outcome.to_file(elapsed));
    }
    CaseResult {
        name,
        iteration,
        outcome,
        elapsed,
        dir,
    }
}

/// `-L N`: runs each case that failed N more times, one at a time, under
/// `<run>/reruns/<case>/<k>/`.
fn rerun_failures(
    plan: &Plan<'_>,
    results: &[CaseResult],
    backend: &dyn Backend,
    on_event: &(dyn Fn(Event<'_>) + Sync),
) -> Vec<Rerun> {
    let mut failed: Vec<&str> = results
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.name.as_str())
        .collect();
    failed.dedup();
    let mut reruns = Vec::new();
    let units = plan.units();
    for name in failed {
        let Some(unit) = units.iter().find(|u| u.name() == name) else {
            continue;
        };
        let dir = plan.results.join("reruns").join(name);
        let mut rerun = Rerun {
            name: name.to_string(),
            passed: 0,
            ran: 0,
            dir: dir.clone(),
        };
        for k in 1..=plan.reruns {
            if interrupt::requested() {
                break;
            }
            let result = run_batch(
                plan,
                &[*unit],
                &dir.join(k.to_string()),
                1,
                k,
                backend,
                &|_| {},
            );
            rerun.ran += 1;
            if result.iter().all(|r| r.outcome == Outcome::Passed) {
                rerun.passed += 1;
            }
        }
        on_event(Event::Reran(&rerun));
        reruns.push(rerun);
    }
    reruns
}

/// Runs one case once on `backend`, with its results in `<results>/<case>/`.
pub fn run_one(
    case: &Case,
    results: &Path,
    options: CaseOptions,
    backend: &dyn Backend,
) -> CaseResult {
    let plan = Plan {
        options,
        ..Plan::new(vec![case], results.to_path_buf(), 1)
    };
    run_batch(&plan, &plan.units(), results, 1, 1, backend, &|_| {})
        .pop()
        .expect("a batch of one case has one result")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn case(name: &'static str) -> Case {
        crate::case::test_case(name, &["auto"])
    }

    /// A backend that runs nothing: `flaky` fails its first `fails` runs, `missing` is never
    /// run for a missing requirement, every other case passes.
    struct Scripted {
        fails: u32,
        runs: AtomicU32,
    }

    impl Backend for Scripted {
        fn place(&self) -> String {
            "scripted".into()
        }

        fn properties(&self) -> crate::backend::Properties {
            Vec::new()
        }

        fn default_jobs(&self, _: usize) -> usize {
            1
        }

        fn run(&self, case: &Case, dir: &Path, _: &CaseOptions) -> Outcome {
            std::fs::create_dir_all(dir).unwrap();
            match case.name {
                "flaky" if self.runs.fetch_add(1, Ordering::SeqCst) < self.fails => {
                    Outcome::Failed("wrong data".into())
                }
                "missing" => Outcome::NotRun("needs `xfs_io`: install xfsprogs".into()),
                _ => Outcome::Passed,
            }
        }
    }

    #[test]
    fn iterations_stop_at_a_failure_with_until_failure_and_failures_are_rerun() {
        let (flaky, steady) = (case("flaky"), case("steady"));
        let dir = tempfile::tempdir().unwrap();
        let backend = Scripted {
            fails: 2,
            runs: AtomicU32::new(0),
        };
        let plan = Plan {
            iterations: 5,
            until_failure: true,
            reruns: 3,
            ..Plan::new(vec![&flaky, &steady], dir.path().to_path_buf(), 2)
        };
        let heard = Mutex::new(Vec::new());
        let ran = execute(&plan, &backend, &|event| {
            let line = match event {
                Event::Done(r) => format!("{} #{} {}", r.name, r.iteration, r.outcome.label()),
                Event::Reran(r) => format!("{}: {} of {}", r.name, r.passed, r.ran),
            };
            heard.lock().unwrap().push(line);
        });
        let got: Vec<(String, u32, bool)> = ran
            .results
            .iter()
            .map(|r| (r.name.clone(), r.iteration, r.failed()))
            .collect();
        assert_eq!(
            got,
            [("flaky".into(), 1, true), ("steady".into(), 1, false)],
            "-I stops after the first iteration with a failure"
        );
        assert!(dir.path().join("iteration-1/flaky/outcome").is_file());
        let rerun = &ran.reruns[0];
        assert_eq!(
            (rerun.name.as_str(), rerun.passed, rerun.ran),
            ("flaky", 2, 3)
        );
        assert!(dir.path().join("reruns/flaky/1/flaky/outcome").is_file());
        let heard = heard.into_inner().unwrap();
        assert!(heard.contains(&"flaky #1 FAILED".to_string()), "{heard:?}");
        assert_eq!(heard.last().unwrap(), "flaky: 2 of 3");
    }

    #[test]
    fn a_case_not_run_fails_only_when_all_are_required() {
        let missing = case("missing");
        let dir = tempfile::tempdir().unwrap();
        let backend = Scripted {
            fails: 0,
            runs: AtomicU32::new(0),
        };
        let plan = Plan::new(vec![&missing], dir.path().to_path_buf(), 1);
        let result = &execute(&plan, &backend, &|_| {}).results[0];
        assert_eq!(
            result.outcome,
            Outcome::NotRun("needs `xfs_io`: install xfsprogs".into())
        );
        let required = Plan {
            require_all: true,
            ..plan
        };
        let result = &execute(&required, &backend, &|_| {}).results[0];
        assert_eq!(
            result.outcome,
            Outcome::Failed(
                "not run (needs `xfs_io`: install xfsprogs), and all cases are required".into()
            )
        );
        let written = std::fs::read_to_string(result.dir.join("outcome")).unwrap();
        assert!(written.starts_with("FAILED"), "{written}");
    }

    #[test]
    fn each_case_runs_once_under_each_configuration() {
        let (a, b) = (case("a"), case("b"));
        let plan = Plan::new(vec![&a, &b], PathBuf::from("unused"), 1);
        assert_eq!(plan.units_per_iteration(), 2);
        let plan = Plan {
            configurations: ["holes", "proto2", "max-inline-0"]
                .map(|name| crate::configuration::by_name(name).unwrap())
                .to_vec(),
            ..plan
        };
        let units: Vec<String> = plan.units().iter().map(Unit::name).collect();
        assert_eq!(units.len(), plan.units_per_iteration());
        assert_eq!(units[..2], ["a@holes", "b@holes"]);
    }
}
