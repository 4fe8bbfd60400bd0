//! Where cases run. A backend takes one case, its results directory and its options, and
//! returns its outcome; the runner schedules cases over it and never looks inside.

use std::path::Path;
use std::sync::Arc;

use crate::case::Case;
use crate::context::CaseOptions;
use crate::envelope;
use crate::outcome::Outcome;
use crate::scratch::Devices;

/// What a run was: the kernel, the btrfs-progs, the backend and its acceleration, the seed,
/// as (name, value) pairs in the order reports show them.
pub type Properties = Vec<(&'static str, String)>;

/// A way to run one case.
pub trait Backend: Sync {
    /// Where cases run, to keep case times apart: `loop`, or `vm-<kernel release>`.
    fn place(&self) -> String;

    /// What reports say of it: `backend`, `kernel` (the release cases run on), `accel`.
    fn properties(&self) -> Properties;

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

    fn properties(&self) -> Properties {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        vec![
            ("backend", "loop".into()),
            ("kernel", kernel.trim().to_string()),
            ("accel", "none (the running kernel)".into()),
        ]
    }

    fn default_jobs(&self, cores: usize) -> usize {
        cores.max(1)
    }

    fn run(&self, case: &Case, dir: &Path, options: &CaseOptions) -> Outcome {
        envelope::run(case, dir, *options, Arc::new(Devices::Loop))
    }
}
