//! Where cases run. A backend takes one case, its results directory and its options, and
//! returns its outcome; the runner schedules cases over it and never looks inside.

use std::path::Path;
use std::sync::Arc;

use crate::case::Case;
use crate::context::CaseOptions;
use crate::envelope;
use crate::outcome::Outcome;
use crate::scratch::Devices;

/// A way to run one case.
pub trait Backend: Sync {
    /// Where cases run, to keep case times apart: `loop`, or `vm-<kernel release>`.
    fn place(&self) -> String;

    /// Cases to run at once on `cores` cores unless `--jobs` says otherwise.
    fn default_jobs(&self, cores: usize) -> usize;

    /// Runs `case` with its artifacts in `dir` (created if need be), leaving its `outcome` file
    /// there.
    fn run(&self, case: &Case, dir: &Path, options: &CaseOptions) -> Outcome;
}

/// Loop devices over sparse images on the running kernel (root only).
pub struct Loop;

impl Backend for Loop {
    fn place(&self) -> String {
        "loop".into()
    }

    fn default_jobs(&self, cores: usize) -> usize {
        cores.max(1)
    }

    fn run(&self, case: &Case, dir: &Path, options: &CaseOptions) -> Outcome {
        envelope::run(case, dir, *options, Arc::new(Devices::Loop))
    }
}
