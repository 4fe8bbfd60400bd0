//! Running mutants: the unmutated tree first (it must build and pass the suite), then each
//! mutant built and run against the suite, one case after another until one fails. Outcomes,
//! as cargo-mutants names them: caught (a case failed, or the guest crashed), missed (every
//! case passed), unviable (it does not build), timeout (a case ran past its limit), and
//! allowed (on the allow-list of equivalent mutants, not run). Each mutant's outcome is kept
//! in the results as it is known, so a run that stops resumes where it was.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::mutant::Mutant;
pub use super::suite::{steps, Step};
use crate::backend::Backend;
use crate::interrupt;
use crate::outcome::Outcome;

/// What builds the code under test, with or without a mutant, and runs cases on the result.
pub trait Target {
    /// Builds the tree with `mutant` applied (`None`: as it is). `Ok(Err(why))` when it does
    /// not build.
    fn build(&mut self, mutant: Option<&Mutant>) -> Result<std::result::Result<(), String>>;

    /// Where the suite runs against the last build.
    fn backend(&self) -> &dyn Backend;
}

/// What became of one mutant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A case failed: which one, and why.
    Caught { case: String, reason: String },
    /// Every case passed.
    Missed,
    /// It does not build: the compiler's first lines.
    Unviable(String),
    /// A case ran past its time limit.
    Timeout { case: String, reason: String },
    /// On the allow-list, with its reason: equivalent, not run.
    Allowed(String),
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Caught { .. } => "caught",
            Verdict::Missed => "missed",
            Verdict::Unviable(_) => "unviable",
            Verdict::Timeout { .. } => "timeout",
            Verdict::Allowed(_) => "allowed",
        }
    }

    fn detail(&self) -> String {
        match self {
            Verdict::Caught { case, reason } | Verdict::Timeout { case, reason } => {
                format!("{case}: {reason}")
            }
            Verdict::Unviable(why) | Verdict::Allowed(why) => why.clone(),
            Verdict::Missed => String::new(),
        }
    }

    /// The `outcome` file of a mutant: the label, then the detail.
    fn to_file(&self, elapsed: Duration) -> String {
        format!(
            "{} {:.1}s\n{}\n",
            self.label(),
            elapsed.as_secs_f64(),
            self.detail()
        )
    }

    fn from_file(text: &str) -> Option<(Verdict, Duration)> {
        let (first, detail) = text.split_once('\n')?;
        let detail = detail.trim_end().to_string();
        let (label, time) = first.split_once(' ')?;
        let elapsed = Duration::from_secs_f64(time.trim_end_matches('s').parse().ok()?);
        let (case, reason) = detail
            .split_once(": ")
            .map_or((String::new(), detail.clone()), |(c, r)| {
                (c.to_string(), r.to_string())
            });
        let verdict = match label {
            "caught" => Verdict::Caught { case, reason },
            "missed" => Verdict::Missed,
            "unviable" => Verdict::Unviable(detail),
            "timeout" => Verdict::Timeout { case, reason },
            "allowed" => Verdict::Allowed(detail),
            _ => return None,
        };
        Some((verdict, elapsed))
    }
}

/// One mutant and what became of it.
#[derive(Debug, Clone)]
pub struct MutantResult {
    pub mutant: Mutant,
    pub verdict: Verdict,
    pub elapsed: Duration,
    /// Whether it came from an earlier run's results.
    pub resumed: bool,
}

/// What a mutation run does.
pub struct MutationPlan<'a> {
    /// The suite, run in this order until a step fails.
    pub steps: Vec<Step<'a>>,
    /// Where each mutant's results go (`<id>/`), and the summaries.
    pub results: PathBuf,
    /// Equivalent mutants by id, with why.
    pub allowed: BTreeMap<String, String>,
}

/// What the unmutated tree's run found.
#[derive(Debug)]
pub struct Baseline {
    pub took: Duration,
    /// The steps left out of the suite, each with why: a case of a bug no kernel fixes yet
    /// (group `unfixed`) that finds its bug in the unmutated tree cannot judge a mutant.
    pub left_out: Vec<String>,
}

/// The unmutated tree must build and pass the suite; an error (exit 2) says what failed. A
/// step whose case is in the group `unfixed` and fails here is left out of `plan`'s suite
/// instead, as long as one step remains.
pub fn baseline(plan: &mut MutationPlan<'_>, target: &mut dyn Target) -> Result<Baseline> {
    let started = Instant::now();
    if let Err(why) = target.build(None)? {
        bail!("the unmutated tree does not build, so no mutant can be judged: {why}");
    }
    let dir = plan.results.join("unmutated");
    let mut left_out = Vec::new();
    let mut kept = Vec::new();
    for step in std::mem::take(&mut plan.steps) {
        let result = step.run(&dir, target.backend());
        if interrupt::requested() {
            bail!("interrupted while the unmutated tree ran");
        }
        if matches!(result.outcome, Outcome::Failed(_)) && step.case.in_group("unfixed") {
            left_out.push(format!(
                "{} finds the bug it guards in the unmutated tree (a bug no kernel fixes yet: {}), so it is left out of the suite",
                step.name(),
                result.outcome.reason().unwrap_or_default()
            ));
            continue;
        }
        if !result.outcome.is_pass() {
            bail!(
                "the unmutated tree fails the suite ({}: {}; results in {}): mutation testing needs a suite that passes first",
                step.name(),
                result.outcome.reason().unwrap_or("not run"),
                result.dir.display()
            );
        }
        kept.push(step);
    }
    if kept.is_empty() {
        bail!(
            "every case of the suite finds a bug in the unmutated tree: name cases that pass on it"
        );
    }
    plan.steps = kept;
    Ok(Baseline {
        took: started.elapsed(),
        left_out,
    })
}

/// Runs each of `mutants` (after [`baseline`]), calling `on_result` as each is known.
pub fn run(
    plan: &MutationPlan<'_>,
    mutants: &[Mutant],
    target: &mut dyn Target,
    on_result: &mut dyn FnMut(&MutantResult),
) -> Result<Vec<MutantResult>> {
    let mut results = Vec::new();
    for mutant in mutants {
        if interrupt::requested() {
            break;
        }
        let dir = plan.results.join(dir_name(&mutant.id));
        let kept = kept(&dir);
        // The allow-list is read afresh each run and wins over a kept verdict, except a
        // catch: a mutant the suite caught changes behaviour, so it is not equivalent.
        let caught = matches!(kept, Some((Verdict::Caught { .. }, _)));
        let result = match (plan.allowed.get(&mutant.id), kept) {
            (Some(why), kept) if !caught => MutantResult {
                mutant: mutant.clone(),
                verdict: Verdict::Allowed(why.clone()),
                elapsed: Duration::ZERO,
                resumed: kept.is_some(),
            },
            (_, Some((verdict, elapsed))) => MutantResult {
                mutant: mutant.clone(),
                verdict,
                elapsed,
                resumed: true,
            },
            (_, None) => {
                let started = Instant::now();
                let verdict = judge(plan, mutant, target, &dir)?;
                if interrupt::requested() {
                    break;
                }
                let elapsed = started.elapsed();
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join("mutant.diff"), &mutant.diff)?;
                std::fs::write(dir.join("outcome"), verdict.to_file(elapsed))?;
                MutantResult {
                    mutant: mutant.clone(),
                    verdict,
                    elapsed,
                    resumed: false,
                }
            }
        };
        on_result(&result);
        results.push(result);
    }
    write_summaries(&plan.results, &results)?;
    Ok(results)
}

/// Builds and runs one mutant.
fn judge(
    plan: &MutationPlan<'_>,
    mutant: &Mutant,
    target: &mut dyn Target,
    dir: &Path,
) -> Result<Verdict> {
    if let Err(why) = target.build(Some(mutant))? {
        return Ok(Verdict::Unviable(why));
    }
    for step in &plan.steps {
        let result = step.run(dir, target.backend());
        let reason = || result.outcome.reason().unwrap_or("").to_string();
        match &result.outcome {
            Outcome::Passed => {}
            outcome if outcome.is_timeout() => {
                return Ok(Verdict::Timeout {
                    case: step.name().into(),
                    reason: reason(),
                })
            }
            // Not run under a mutant means the mutant broke what the case needs.
            Outcome::Failed(_) | Outcome::Error(_) | Outcome::NotRun(_) => {
                return Ok(Verdict::Caught {
                    case: step.name().into(),
                    reason: reason(),
                })
            }
        }
    }
    Ok(Verdict::Missed)
}

/// The outcome an earlier run kept for this mutant.
fn kept(dir: &Path) -> Option<(Verdict, Duration)> {
    Verdict::from_file(&std::fs::read_to_string(dir.join("outcome")).ok()?)
}

/// A directory name for a mutant id (`fs/btrfs/send.c:12:equality:1`).
fn dir_name(id: &str) -> String {
    id.replace('/', "_").replace(':', "-")
}

/// Totals of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    pub caught: usize,
    pub missed: usize,
    pub unviable: usize,
    pub timeout: usize,
    pub allowed: usize,
}

impl Score {
    pub fn of(results: &[MutantResult]) -> Score {
        let mut score = Score::default();
        for result in results {
            match result.verdict {
                Verdict::Caught { .. } => score.caught += 1,
                Verdict::Missed => score.missed += 1,
                Verdict::Unviable(_) => score.unviable += 1,
                Verdict::Timeout { .. } => score.timeout += 1,
                Verdict::Allowed(_) => score.allowed += 1,
            }
        }
        score
    }

    /// Caught among the viable mutants that are not equivalent and did not time out.
    pub fn percent(&self) -> f64 {
        let judged = self.caught + self.missed;
        if judged == 0 {
            0.0
        } else {
            self.caught as f64 * 100.0 / judged as f64
        }
    }

    pub fn line(&self) -> String {
        format!(
            "{} caught, {} missed, {} unviable, {} timeout, {} allowed as equivalent; score {:.1}% ({} of {} viable mutants caught)",
            self.caught,
            self.missed,
            self.unviable,
            self.timeout,
            self.allowed,
            self.percent(),
            self.caught,
            self.caught + self.missed
        )
    }
}

/// The time per mutant (its build and the suite) of the mutants this run built, not those kept
/// from an earlier one: median and range. `None` if it built none.
pub fn cost_line(results: &[MutantResult]) -> Option<String> {
    let times: Vec<Duration> = results
        .iter()
        .filter(|r| !r.resumed && !matches!(r.verdict, Verdict::Allowed(_)))
        .map(|r| r.elapsed)
        .collect();
    if times.is_empty() {
        return None;
    }
    Some(format!(
        "time per mutant (build and suite): {}",
        crate::bench::spread(&times)
    ))
}

/// One line per mutant, as the summaries and the terminal show it.
pub fn result_line(result: &MutantResult) -> String {
    let m = &result.mutant;
    let mut line = format!(
        "{:<8} {} ({}: `{}` -> `{}`)",
        result.verdict.label(),
        m.id,
        m.operator,
        m.before,
        m.after
    );
    let detail = result.verdict.detail();
    if !detail.is_empty() {
        let first = detail.lines().next().unwrap_or("");
        let short: String = first.chars().take(160).collect();
        let _ = write!(line, ": {short}");
    }
    line
}

/// `caught.txt`, `missed.txt`, `unviable.txt`, `timeout.txt`, `allowed.txt` and `score`.
fn write_summaries(dir: &Path, results: &[MutantResult]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for label in ["caught", "missed", "unviable", "timeout", "allowed"] {
        let text: String = results
            .iter()
            .filter(|r| r.verdict.label() == label)
            .map(|r| result_line(r) + "\n")
            .collect();
        std::fs::write(dir.join(format!("{label}.txt")), text)
            .with_context(|| format!("writing {label}.txt"))?;
    }
    std::fs::write(dir.join("score"), Score::of(results).line() + "\n")?;
    Ok(())
}

/// The results as one JSON document.
pub fn json(results: &[MutantResult], score: &Score) -> String {
    let string = crate::report::json_string;
    let entries: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{{\"id\":{},\"file\":{},\"line\":{},\"operator\":{},\"outcome\":{},\"detail\":{},\"seconds\":{:.1},\"diff\":{}}}",
                string(&r.mutant.id),
                string(&r.mutant.file),
                r.mutant.line,
                string(r.mutant.operator.name()),
                string(r.verdict.label()),
                string(&r.verdict.detail()),
                r.elapsed.as_secs_f64(),
                string(&r.mutant.diff)
            )
        })
        .collect();
    format!(
        "{{\"caught\":{},\"missed\":{},\"unviable\":{},\"timeout\":{},\"allowed\":{},\"score_percent\":{:.1},\"mutants\":[{}]}}\n",
        score.caught,
        score.missed,
        score.unviable,
        score.timeout,
        score.allowed,
        score.percent(),
        entries.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Case;
    use crate::context::CaseOptions;

    /// A target that must not be asked to build: every mutant here has a kept verdict or is
    /// on the allow-list.
    struct NoBuilds;

    impl Target for NoBuilds {
        fn build(&mut self, mutant: Option<&Mutant>) -> Result<std::result::Result<(), String>> {
            panic!("built {mutant:?}")
        }

        fn backend(&self) -> &dyn Backend {
            &crate::backend::Loop
        }
    }

    /// A target whose builds all succeed and whose backend fails the cases named `bug-*`.
    struct Builds;

    impl Backend for Builds {
        fn place(&self) -> String {
            "scripted".into()
        }

        fn properties(&self) -> crate::backend::Properties {
            Vec::new()
        }

        fn default_jobs(&self, _: usize) -> usize {
            1
        }

        fn run(&self, case: &Case, _: &Path, _: &CaseOptions) -> Outcome {
            if case.name.starts_with("bug-") {
                Outcome::Failed("the bug".into())
            } else {
                Outcome::Passed
            }
        }
    }

    impl Target for Builds {
        fn build(&mut self, _: Option<&Mutant>) -> Result<std::result::Result<(), String>> {
            Ok(Ok(()))
        }

        fn backend(&self) -> &dyn Backend {
            self
        }
    }

    #[test]
    fn the_baseline_leaves_out_an_unfixed_case_that_finds_its_bug_and_no_other() {
        let results = tempfile::tempdir().unwrap();
        let unfixed = crate::case::test_case("bug-unfixed", &["unfixed"]);
        let fixed = crate::case::test_case("bug-fixed", &["auto"]);
        let passing = crate::case::test_case("passing", &["auto"]);
        let plan_of = |cases: &[&'static Case]| MutationPlan {
            steps: cases
                .iter()
                .map(|&case| Step {
                    case,
                    options: CaseOptions::default(),
                    variant: None,
                })
                .collect(),
            results: results.path().to_path_buf(),
            allowed: BTreeMap::new(),
        };
        let (unfixed, fixed, passing): (&'static Case, &'static Case, &'static Case) = (
            Box::leak(Box::new(unfixed)),
            Box::leak(Box::new(fixed)),
            Box::leak(Box::new(passing)),
        );

        let mut plan = plan_of(&[unfixed, passing]);
        let baseline = baseline(&mut plan, &mut Builds).unwrap();
        let kept: Vec<&str> = plan.steps.iter().map(|s| s.name()).collect();
        assert_eq!(kept, ["passing"]);
        assert_eq!(baseline.left_out.len(), 1);
        assert!(baseline.left_out[0].starts_with("bug-unfixed finds the bug"));

        let error = baseline_error(&mut plan_of(&[fixed, passing]));
        assert!(
            error.contains("the unmutated tree fails the suite (bug-fixed"),
            "{error}"
        );
        let error = baseline_error(&mut plan_of(&[unfixed]));
        assert!(
            error.contains("every case of the suite finds a bug"),
            "{error}"
        );
    }

    fn baseline_error(plan: &mut MutationPlan<'_>) -> String {
        format!("{:#}", baseline(plan, &mut Builds).unwrap_err())
    }

    fn mutant(id: &str) -> Mutant {
        Mutant::for_tests(id, "a.c", 1)
    }

    #[test]
    fn the_allow_list_wins_over_a_kept_verdict_but_not_over_a_catch() {
        let results = tempfile::tempdir().unwrap();
        let kept = [
            ("a.c:1:negate-if:1", Verdict::Missed),
            (
                "a.c:2:negate-if:1",
                Verdict::Caught {
                    case: "c".into(),
                    reason: "r".into(),
                },
            ),
        ];
        for (id, verdict) in &kept {
            let dir = results.path().join(dir_name(id));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("outcome"), verdict.to_file(Duration::from_secs(1))).unwrap();
        }
        let ids = [
            "a.c:1:negate-if:1",
            "a.c:2:negate-if:1",
            "a.c:3:negate-if:1",
        ];
        let plan = MutationPlan {
            steps: Vec::new(),
            results: results.path().to_path_buf(),
            allowed: ids
                .iter()
                .map(|id| (id.to_string(), "prints only".to_string()))
                .collect(),
        };
        let mutants: Vec<Mutant> = ids.iter().map(|id| mutant(id)).collect();
        let ran = run(&plan, &mutants, &mut NoBuilds, &mut |_| {}).unwrap();
        let labels: Vec<&str> = ran.iter().map(|r| r.verdict.label()).collect();
        assert_eq!(labels, ["allowed", "caught", "allowed"]);
        // The kept verdict stays on disk: without the allow-list, it is missed again.
        let again = MutationPlan {
            allowed: Default::default(),
            ..plan
        };
        let ran = run(&again, &mutants[..2], &mut NoBuilds, &mut |_| {}).unwrap();
        assert_eq!(ran[0].verdict, Verdict::Missed);
    }

    #[test]
    fn verdicts_read_back_from_their_files() {
        for verdict in [
            Verdict::Caught {
                case: "random".into(),
                reason: "f0: field size: expected 20 got 18".into(),
            },
            Verdict::Missed,
            Verdict::Unviable("send.c:12: error: x".into()),
            Verdict::Timeout {
                case: "ro-flip-with-delalloc".into(),
                reason: "timed out: the guest did not finish".into(),
            },
            Verdict::Allowed("only a buffer's size".into()),
        ] {
            let text = verdict.to_file(Duration::from_millis(2500));
            let (back, elapsed) = Verdict::from_file(&text).unwrap();
            assert_eq!(back, verdict, "{text}");
            assert_eq!(elapsed, Duration::from_millis(2500));
        }
    }

    #[test]
    fn the_score_counts_caught_among_the_judged() {
        let score = Score {
            caught: 9,
            missed: 1,
            unviable: 5,
            timeout: 2,
            allowed: 3,
        };
        assert_eq!(score.percent(), 90.0);
        assert!(score
            .line()
            .contains("score 90.0% (9 of 10 viable mutants caught)"));
        assert_eq!(Score::default().percent(), 0.0);
    }
}
