//! Send/receive bugs that are known and not fixed in the kernels at hand, described by what
//! their shrunk failures look like. A soak that meets one reports it and goes on looking for
//! bugs nobody has found; a single seed still fails on it, so that a fix can be checked with
//! the seed that found the bug.

use anyhow::{bail, Result};

use super::ops::{Op, KINDS};
use super::stream_sign::StreamSign;
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
/// its kinds of operation. A bug with a sign in the stream ([`KnownBug::stream`]) is told by
/// that sign instead, in the stream whose received snapshot differed, and the fields that
/// differ need only be among its fields. A send or receive that fails is never a known bug.
#[derive(Debug)]
pub struct KnownBug {
    /// A short name for reports.
    pub name: &'static str,
    /// What goes wrong.
    pub summary: &'static str,
    pub sends: Sends,
    /// The manifest fields it makes differ, all of them; with a sign in the stream, the fields
    /// it can make differ.
    pub fields: &'static [&'static str],
    /// Kinds of operation ([`Op::kind`]) that every list shrunk to it holds.
    pub ops: &'static [&'static str],
    /// A seed that shows it.
    pub found_by: Replay,
    /// What the stream that caused the differences shows, for a bug whose differences vary.
    pub stream: Option<StreamSign>,
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
        let fields: std::collections::BTreeSet<&str> = self.fields.iter().copied().collect();
        let shown = match self.stream {
            Some(sign) => {
                !differ.is_empty()
                    && differ.is_subset(&fields)
                    && failure
                        .dump
                        .as_deref()
                        .is_some_and(|dump| sign.shown_at(dump).is_some())
            }
            None => differ == fields,
        };
        chain
            && shown
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
        stream: None,
        fix: None,
    };

    fn differs(fields: &[&str]) -> ChainFailure {
        ChainFailure {
            message: "differs".into(),
            differences: fields.iter().map(|f| ("f".into(), f.to_string())).collect(),
            out_of_space: false,
            dump: None,
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
            dump: None,
        };
        assert!(!SIZE.matches(&failed, &list(), true));
    }

    #[test]
    fn a_bug_with_a_sign_in_the_stream_is_told_by_it_and_fields_among_its_own() {
        let reused = KnownBug {
            sends: Sends::Any,
            fields: &["size", "sha256", "mtime"],
            ops: &["write"],
            stream: Some(StreamSign::WriteToReusedPath),
            ..SIZE
        };
        let with_dump = |fields: &[&str], dump: &str| ChainFailure {
            dump: Some(dump.to_string()),
            ..differs(fields)
        };
        let shown = "write ./s/x offset=0 len=1\nunlink ./s/x\nwrite ./s/x offset=0 len=1\n";
        let not_shown = "write ./s/x offset=0 len=1\nwrite ./s/x offset=1 len=1\n";
        assert!(reused.matches(&with_dump(&["size"], shown), &list(), false));
        assert!(reused.matches(&with_dump(&["mtime", "sha256"], shown), &list(), true));
        assert!(!reused.matches(&with_dump(&["size"], not_shown), &list(), false));
        assert!(!reused.matches(&with_dump(&["size", "mode"], shown), &list(), false));
        assert!(!reused.matches(&differs(&["size"]), &list(), false));
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
