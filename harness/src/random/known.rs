//! Send/receive bugs that are known and not fixed in the kernels at hand, described by what
//! their shrunk failures look like. A soak that meets one reports it and goes on looking for
//! bugs nobody has found; a single seed still fails on it, so that a fix can be checked with
//! the seed that found the bug.

use anyhow::{bail, Result};

use super::ops::{Op, KINDS};
use super::ChainFailure;

/// Which chain shows a known bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sends {
    /// Either: protocol 1, or protocol 2 with compressed data.
    Any,
    /// Only `--proto 2 --compressed-data` from a compress=zstd filesystem.
    CompressedData,
}

/// A known bug, as data: a failure is this bug when its chain is one that shows it, the fields
/// that differ are its fields (all of them, and no other), and the shrunk list holds each of
/// its kinds of operation. A send or receive that fails is never a known bug.
#[derive(Debug)]
pub struct KnownBug {
    /// A short name for reports.
    pub name: &'static str,
    /// What goes wrong.
    pub summary: &'static str,
    pub sends: Sends,
    /// The manifest fields it makes differ, all of them.
    pub fields: &'static [&'static str],
    /// Kinds of operation ([`Op::kind`]) that every list shrunk to it holds.
    pub ops: &'static [&'static str],
    /// A seed that shows it.
    pub found_by: Replay,
    /// Its proposed fix, a patch in this repository (`cases/src/….fix.patch`), for the exact
    /// test of a failure that matches: it is this bug if it goes away with the fix.
    pub fix: Option<&'static str>,
}

/// A seed and its list size: `sendtest run <case> --seed S --ops N --snapshots M`.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    pub seed: u64,
    pub ops: usize,
    pub snapshots: usize,
}

impl KnownBug {
    /// Whether `failure`, shrunk to `minimal` on a chain that sent compressed data or not, is
    /// this bug.
    pub fn matches(&self, failure: &ChainFailure, minimal: &[Op], compressed_data: bool) -> bool {
        let chain = match self.sends {
            Sends::Any => true,
            Sends::CompressedData => compressed_data,
        };
        let differ: std::collections::BTreeSet<&str> = failure
            .differences
            .iter()
            .map(|(_, field)| field.as_str())
            .collect();
        chain
            && differ == self.fields.iter().copied().collect()
            && self
                .ops
                .iter()
                .all(|kind| minimal.iter().any(|op| op.kind() == *kind))
    }

    /// Refuses a description that names a field or a kind of operation that does not exist
    /// (it could never match), or that has none (it would match too much).
    pub fn check(&self) -> Result<()> {
        if self.fields.is_empty() || self.ops.is_empty() {
            bail!(
                "known bug `{}` needs at least one field and one kind of operation",
                self.name
            );
        }
        for field in self.fields {
            if !crate::manifest::FIELDS
                .iter()
                .any(|(name, _)| name == field)
            {
                bail!(
                    "known bug `{}` names `{field}`, which is not a manifest field",
                    self.name
                );
            }
        }
        for kind in self.ops {
            if !KINDS.contains(kind) {
                bail!(
                    "known bug `{}` names `{kind}`, which is not a kind of operation ({})",
                    self.name,
                    KINDS.join(", ")
                );
            }
        }
        Ok(())
    }
}

/// The first of `bugs` that `failure` is.
pub fn classify<'b>(
    bugs: &'b [KnownBug],
    failure: &ChainFailure,
    minimal: &[Op],
    compressed_data: bool,
) -> Option<&'b KnownBug> {
    bugs.iter()
        .find(|bug| bug.matches(failure, minimal, compressed_data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::ops::{Falloc, Sharing};

    const SIZE: KnownBug = KnownBug {
        name: "size",
        summary: "",
        sends: Sends::CompressedData,
        fields: &["size", "sha256"],
        ops: &["fallocate"],
        found_by: Replay {
            seed: 1,
            ops: 200,
            snapshots: 3,
        },
        fix: None,
    };

    fn differs(fields: &[&str]) -> ChainFailure {
        ChainFailure {
            message: "differs".into(),
            differences: fields.iter().map(|f| ("f".into(), f.to_string())).collect(),
            out_of_space: false,
        }
    }

    fn list() -> Vec<Op> {
        vec![
            Op::Write {
                file: "f".into(),
                offset: 0,
                len: 28,
                byte: b'a',
                direct: false,
            },
            Op::Fallocate {
                file: "f".into(),
                offset: 3512,
                len: 1,
                mode: Falloc::Allocate,
            },
        ]
    }

    #[test]
    fn a_failure_is_a_known_bug_only_when_chain_fields_and_operations_all_fit() {
        assert!(SIZE.matches(&differs(&["size", "sha256"]), &list(), true));
        assert!(SIZE.matches(&differs(&["sha256", "size", "sha256"]), &list(), true));
        // The size did not differ: another bug.
        assert!(!SIZE.matches(&differs(&["sha256"]), &list(), true));
        // Protocol 1 does not show it: a protocol-1 failure is something else.
        assert!(!SIZE.matches(&differs(&["size", "sha256"]), &list(), false));
        // Another field differs too.
        assert!(!SIZE.matches(&differs(&["size", "sha256", "mode"]), &list(), true));
        // Without a fallocate left in the list.
        assert!(!SIZE.matches(&differs(&["size", "sha256"]), &list()[..1], true));
        // A send or receive that failed has no differences.
        let failed = ChainFailure {
            message: "send of snapshot 0 failed".into(),
            differences: Vec::new(),
            out_of_space: false,
        };
        assert!(!SIZE.matches(&failed, &list(), true));
    }

    #[test]
    fn classify_names_the_first_that_fits() {
        let reflink = KnownBug {
            name: "reflink",
            summary: "",
            sends: Sends::Any,
            fields: &["sha256"],
            ops: &["reflink"],
            ..SIZE
        };
        let bugs = [SIZE, reflink];
        let mut ops = list();
        assert_eq!(
            classify(&bugs, &differs(&["size", "sha256"]), &ops, true).map(|b| b.name),
            Some("size")
        );
        assert!(classify(&bugs, &differs(&["size", "sha256"]), &ops, false).is_none());
        ops.push(Op::Share {
            how: Sharing::Reflink,
            src: "f".into(),
            src_offset: 0,
            dst: "g".into(),
            dst_offset: 0,
            len: 4096,
        });
        assert_eq!(
            classify(&bugs, &differs(&["sha256"]), &ops, false).map(|b| b.name),
            Some("reflink")
        );
    }

    #[test]
    fn a_description_that_could_never_match_is_refused() {
        assert!(SIZE.check().is_ok());
        let typo = KnownBug {
            fields: &["szie"],
            ..SIZE
        };
        assert!(typo.check().unwrap_err().to_string().contains("`szie`"));
        let kind = KnownBug {
            ops: &["falloc"],
            ..SIZE
        };
        assert!(kind.check().unwrap_err().to_string().contains("`falloc`"));
        let empty = KnownBug { ops: &[], ..SIZE };
        assert!(empty.check().is_err());
    }
}
