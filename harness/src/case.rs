//! What a case is: a name, its groups, the fix it guards, and the steps it runs.

use std::fmt;

use crate::context::Ctx;

/// A reproducer. Each file under `cases/` defines one as a `const`.
#[derive(Clone, Copy)]
pub struct Case {
    /// Unique, kebab-case; what filters and results directories use.
    pub name: &'static str,
    /// fstests-style groups: `auto` is the default suite, `quick` runs in seconds.
    pub groups: &'static [&'static str],
    /// One line on what the case checks.
    pub summary: &'static str,
    /// The kernel change whose absence this case detects.
    pub fix: Fix,
    /// Manifest fields this case does not compare (`ctime` can never match after receive).
    pub ignore: &'static [&'static str],
    /// The steps. Return a [`Detected`] error for a finding about the kernel or btrfs-progs, any
    /// other error when the environment let the case down.
    pub run: fn(&mut Ctx) -> anyhow::Result<()>,
}

/// The fix a case guards, as data.
#[derive(Clone, Copy)]
pub struct Fix {
    /// Abbreviated kernel commit id.
    pub commit: &'static str,
    pub subject: &'static str,
    /// The fstests test that covers the same bug, if any.
    pub fstests: Option<&'static str>,
    /// A patch that brings the bug back into the reference tree, Debian's linux-source-6.1, for
    /// `sendtest validate`.
    pub revert: Option<&'static str>,
}

impl Case {
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.contains(&group)
    }
}

/// A finding: what the case exists to detect (wrong data, a failed send or receive, a kernel
/// warning, a check error). Everything else a case returns is an environment error.
#[derive(Debug)]
pub struct Detected(pub String);

impl fmt::Display for Detected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Detected {}

/// An `anyhow::Error` carrying a [`Detected`] finding.
pub fn detected(message: impl Into<String>) -> anyhow::Error {
    Detected(message.into()).into()
}
