//! The steps of a mutation suite: its cases in order, a case of the `random` group once per
//! seed of the suite's list, each with the options it runs with.

use std::path::Path;

use crate::backend::Backend;
use crate::case::Case;
use crate::context::CaseOptions;
use crate::runner;

/// One step of the suite: a case and the options it runs with.
#[derive(Clone)]
pub struct Step<'a> {
    pub case: &'a Case,
    pub options: CaseOptions,
    /// What verdicts call the step, and the directory its results go to under a mutant's:
    /// `None` for a case the suite runs once (its results go where they always do), a name
    /// such as `random-seed-8` for each run of a case the suite runs with several seeds.
    pub variant: Option<String>,
}

impl Step<'_> {
    /// The step as verdicts name it: the case, or its variant.
    pub fn name(&self) -> &str {
        self.variant.as_deref().unwrap_or(self.case.name)
    }

    /// Runs the step with its results under `dir`.
    pub(super) fn run(&self, dir: &Path, backend: &dyn Backend) -> runner::CaseResult {
        let dir = match &self.variant {
            Some(variant) => dir.join(variant),
            None => dir.to_path_buf(),
        };
        runner::run_one(self.case, &dir, self.options, backend)
    }
}

/// The steps of a suite of `cases`, each with `options`: a case of the `random` group once
/// per seed of `random_seeds` (its options' random seed set to it), in that order, each with a
/// variant named after its seed when there are several; every other case once.
pub fn steps<'a>(cases: &[&'a Case], options: CaseOptions, random_seeds: &[u64]) -> Vec<Step<'a>> {
    let mut steps = Vec::new();
    for &case in cases {
        if !case.groups.contains(&"random") || random_seeds.is_empty() {
            steps.push(Step {
                case,
                options,
                variant: None,
            });
            continue;
        }
        for &seed in random_seeds {
            let mut options = options;
            options.random.seed = Some(seed);
            steps.push(Step {
                case,
                options,
                variant: (random_seeds.len() > 1).then(|| format!("{}-seed-{seed}", case.name)),
            });
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_case_is_a_step_per_seed_and_other_cases_one_each() {
        let fixed = crate::case::test_case("ro-flip", &["auto"]);
        let random = crate::case::test_case("random", &["random", "send"]);
        let options = CaseOptions::default();
        let both = steps(&[&fixed, &random], options, &[1, 8]);
        let names: Vec<&str> = both.iter().map(Step::name).collect();
        assert_eq!(names, ["ro-flip", "random-seed-1", "random-seed-8"]);
        let seeds: Vec<Option<u64>> = both.iter().map(|s| s.options.random.seed).collect();
        assert_eq!(seeds, [None, Some(1), Some(8)]);
        // One seed: the case keeps its own name and results directory.
        let one = super::steps(&[&random], options, &[5]);
        assert_eq!(
            (one[0].name(), one[0].options.random.seed),
            ("random", Some(5))
        );
        assert!(one[0].variant.is_none());
    }
}
