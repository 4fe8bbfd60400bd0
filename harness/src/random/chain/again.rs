//! A chain's last snapshot sent once more, another way, after the chain's own sends: in full
//! (`Parents::FullToo`), or against a twin (`Parents::Twin`), a subvolume that holds the same
//! inode numbers with newer generations.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::cmd;

use super::{ChainFailure, Chains};
use crate::random::ops::Op;
use crate::random::parents::{twin_ops, FULL_DIR, TWIN_DIR};

/// A chain's twin: a subvolume, its read-only snapshot, and the files it holds open (unlinked
/// while open, as the chain's are: orphan inodes in the snapshot).
pub(super) struct Twin {
    vol: PathBuf,
    pub(super) snapshot: PathBuf,
    held: Vec<File>,
}

impl Chains<'_> {
    /// The twin of chain `name`'s list `ops`: a fresh subvolume given the operations before
    /// the list's first snapshot, snapshotted read-only.
    pub(super) fn make_twin(&self, name: &str, ops: &[Op]) -> Result<Twin> {
        let vol = self
            .ctx
            .create_subvolume(&self.source.join(format!("{name}-twin")))?;
        let mut held = Vec::new();
        for op in twin_ops(ops) {
            if let Op::Wide(wide) = op {
                held.extend(wide.hold(&vol));
            }
            // As in the chain: an operation whose precondition does not hold changes nothing.
            let _ = op.apply(&vol);
        }
        let snapshot = self
            .ctx
            .snapshot_quickly(&vol, &self.source.join(format!("{name}-twin.snap")))?;
        Ok(Twin {
            vol,
            snapshot,
            held,
        })
    }

    /// Closes what `twin` holds open and deletes its snapshot and subvolume.
    pub(super) fn delete_twin(&self, twin: Twin) -> Result<()> {
        drop(twin.held);
        self.ctx.delete_subvolume_quickly(&twin.snapshot)?;
        self.ctx.delete_subvolume_quickly(&twin.vol)
    }

    /// Sends `snapshot` (the `i`th) again in full, receives it into `full/` under `target`,
    /// compares it, and deletes it.
    pub(super) fn send_in_full(
        &self,
        snapshot: &Path,
        i: usize,
        target: &Path,
    ) -> std::result::Result<usize, ChainFailure> {
        let into = self.dir_under(target, FULL_DIR)?;
        let what = format!("the full send of snapshot {i}");
        let got = self.send_into(snapshot, None, &into, i, &what)?;
        let must_clone = self.compare(snapshot, None, &[], &got, FULL_DIR, i, &self.stream())?;
        let _ = self.ctx.delete_subvolume_quickly(&got);
        Ok(must_clone)
    }

    /// Sends `twin` in full and `snapshot` (the `i`th) against it, receives both into `twin/`
    /// under `target`, compares the snapshot, and deletes both.
    pub(super) fn send_against_twin(
        &self,
        twin: &Path,
        snapshot: &Path,
        i: usize,
        target: &Path,
    ) -> std::result::Result<usize, ChainFailure> {
        let into = self.dir_under(target, TWIN_DIR)?;
        let received_twin = self.send_into(twin, None, &into, i, "the full send of the twin")?;
        let what = format!("the send of snapshot {i} against the twin");
        let got = self.send_into(snapshot, Some(twin), &into, i, &what);
        let compared = got.and_then(|got| {
            let against = [(twin, received_twin.clone())];
            let must_clone = self.compare(
                snapshot,
                Some(twin),
                &against,
                &got,
                TWIN_DIR,
                i,
                &self.stream(),
            );
            let _ = self.ctx.delete_subvolume_quickly(&got);
            must_clone
        });
        let _ = self.ctx.delete_subvolume_quickly(&received_twin);
        compared
    }

    /// `target/dir`, made if need be.
    fn dir_under(&self, target: &Path, dir: &str) -> std::result::Result<PathBuf, ChainFailure> {
        let into = target.join(dir);
        std::fs::create_dir_all(&into)
            .map_err(|e| ChainFailure::failed(format!("creating {}: {e}", into.display())))?;
        Ok(into)
    }

    /// Where these sends write their stream.
    fn stream(&self) -> PathBuf {
        self.ctx.work_dir().join("random-again.stream")
    }

    /// Sends `snapshot` (against `parent`, or in full) and receives it into `into`, plainly;
    /// the received subvolume. `what` names the send in a failure.
    fn send_into(
        &self,
        snapshot: &Path,
        parent: Option<&Path>,
        into: &Path,
        i: usize,
        what: &str,
    ) -> std::result::Result<PathBuf, ChainFailure> {
        let sh = self.ctx.sh();
        let stream = self.stream();
        let protocol = self.send_options();
        let parent: Vec<&Path> = parent
            .map(|p| [Path::new("-p"), p])
            .into_iter()
            .flatten()
            .collect();
        self.ctx
            .run(cmd!(
                sh,
                "btrfs send -q {protocol...} {parent...} -f {stream} {snapshot}"
            ))
            .map_err(|e| ChainFailure::failed(format!("{what} failed: {e:#}")))?;
        self.ctx
            .run(cmd!(sh, "btrfs receive -q -f {stream} {into}"))
            .map_err(|e| {
                self.keep_stream(&stream, i);
                ChainFailure::failed(format!("receive of {what} failed: {e:#}"))
            })?;
        Ok(into.join(snapshot.file_name().unwrap_or_default()))
    }
}

/// How many inode numbers the trees under `a` and `b` both hold (their roots aside; 0 when
/// either cannot be walked).
pub(super) fn shared_inode_numbers(a: &Path, b: &Path) -> usize {
    let numbers = |root: &Path| -> std::collections::HashSet<u64> {
        let own = std::fs::symlink_metadata(root).map(|m| m.ino()).ok();
        crate::manifest::inodes_of(root)
            .map(|paths| paths.into_values().filter(|n| Some(*n) != own).collect())
            .unwrap_or_default()
    };
    numbers(a).intersection(&numbers(b)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_inode_numbers_counts_the_numbers_both_trees_hold() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(a.join("d")).unwrap();
        std::fs::write(a.join("d/f"), "x").unwrap();
        std::fs::create_dir(&b).unwrap();
        // A hard link holds the same number in the other tree.
        std::fs::hard_link(a.join("d/f"), b.join("f")).unwrap();
        std::fs::write(b.join("g"), "y").unwrap();
        assert_eq!(shared_inode_numbers(&a, &b), 1);
        assert_eq!(shared_inode_numbers(&a, &a), 2);
    }
}
