//! What a case is: a name, its groups, what it requires, the fix it guards, and the steps it
//! runs.

use crate::context::Ctx;
pub use crate::require::Require;

/// A reproducer. Each file under `cases/` defines one as a `const`.
#[derive(Clone, Copy)]
pub struct Case {
    /// Unique, kebab-case; what filters and results directories use.
    pub name: &'static str,
    /// fstests-style groups: `auto` is the default suite, `quick` runs in seconds.
    pub groups: &'static [&'static str],
    /// One line on what the case checks.
    pub summary: &'static str,
    /// What the case needs beyond its backend (root on loop devices, or a guest). Checked where
    /// the case runs, before it starts; an unmet one makes the case "not run" with the reason.
    pub requires: &'static [Require],
    /// The change whose absence this case detects (in the kernel, or in btrfs-progs).
    pub fix: Fix,
    /// Manifest fields this case does not compare (`ctime` can never match after receive).
    pub ignore: &'static [&'static str],
    /// The steps. Return a [`crate::finding::Detected`] error for a finding about the kernel or
    /// btrfs-progs, any other error when the environment let the case down.
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
    /// For a bug no kernel fixes yet: a proposed fix, as a patch against the reference tree
    /// (or, for a bug that tree does not have, group `after-6.1`, against linux-source-6.12),
    /// which `sendtest validate` applies (the fix direction: the case fails on the tree as it
    /// is, and passes with the patch).
    pub proposed: Option<&'static str>,
    /// Which tree the fix and its patches are changes to.
    pub applies_to: Component,
}

/// What a fix changes: send in the kernel, or receive in btrfs-progs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Kernel,
    BtrfsProgs,
}

impl Fix {
    /// The fix's subject: the upstream commit's, or the `Subject:` of the proposed patch.
    pub fn fix_subject(&self) -> &'static str {
        self.proposed
            .and_then(|patch| {
                patch
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .map(|s| s.strip_prefix("[PATCH] ").unwrap_or(s))
            })
            .unwrap_or(self.subject)
    }

    /// What a case of a bug that no kernel fixes yet (group `unfixed`) holds as its fix.
    pub const NONE_YET: Fix = Fix {
        commit: "none",
        subject: "not fixed upstream yet",
        fstests: None,
        revert: None,
        proposed: None,
        applies_to: Component::Kernel,
    };
}

impl Case {
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.contains(&group)
    }

    /// The first requirement not met where this runs, as a reason a person can act on.
    pub fn unmet_requirement(&self) -> Option<String> {
        self.requires.iter().find_map(Require::unmet)
    }
}

/// A case that does nothing, in `groups`, for the runner's and the selection's tests.
#[cfg(test)]
pub(crate) fn test_case(name: &'static str, groups: &'static [&'static str]) -> Case {
    Case {
        name,
        groups,
        summary: "",
        requires: &[],
        fix: Fix {
            commit: "0",
            subject: "",
            fstests: None,
            revert: None,
            proposed: None,
            applies_to: Component::Kernel,
        },
        ignore: &[],
        run: |_| Ok(()),
    }
}
