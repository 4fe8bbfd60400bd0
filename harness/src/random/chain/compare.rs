//! What a chain checks of each received snapshot: every field of its manifest but those
//! ignored, the received subvolume's identity, and the layout oracle's rules; then the sends
//! again that the way to pick parents asks for (in full, against a twin).

use std::path::{Path, PathBuf};

use super::{again, ChainFailure, Chains, Checked};
use crate::manifest::{self, compressed, holes, identity, shared, space, Manifest};
use crate::random::parents::{FULL_DIR, TWIN_DIR};
use crate::random::receive::Receive;

impl Chains<'_> {
    /// Compares snapshot `i` of `snapshots`, received into the chain's directory `received`
    /// from `stream`, with its source in each of the receiving directories, then sends it
    /// again as the way to pick parents says (in full, against the `twin`).
    pub(super) fn check_received(
        &self,
        i: usize,
        snapshots: &[PathBuf],
        twin: Option<&Path>,
        received: &Path,
        stream: &Path,
        checked: &mut Checked,
    ) -> std::result::Result<(), ChainFailure> {
        let snapshot = &snapshots[i];
        let paths: Vec<&Path> = snapshots.iter().map(PathBuf::as_path).collect();
        let targets = self.receive.targets(received);
        // What the stream was sent against, each received copy of it: the receiver may
        // clone from any subvolume received from it (the received UUID tells them apart
        // from others, not from each other).
        let against: Vec<(&Path, PathBuf)> = self
            .parents
            .clone_sources(i)
            .into_iter()
            .flat_map(|n| {
                let source = paths[n];
                targets
                    .iter()
                    .map(move |t| (source, t.join(source.file_name().unwrap_or_default())))
            })
            .collect();
        for (target, dir) in targets.iter().zip(self.receive.dirs()) {
            let got = target.join(snapshot.file_name().unwrap_or_default());
            let parent = i.checked_sub(1).map(|p| snapshots[p].as_path());
            checked.must_clone += self.compare(snapshot, parent, &against, &got, dir, i, stream)?;
        }
        if self.parents.full_too(i, snapshots.len()) {
            checked.must_clone +=
                self.send_in_full(snapshot, i, &received.join(self.receive.dirs()[0]))?;
            checked.sends += 1;
        }
        if let Some(twin) = twin.filter(|_| self.parents.twin(i, snapshots.len())) {
            let target = received.join(self.receive.dirs()[0]);
            checked.reused += again::shared_inode_numbers(twin, snapshot);
            checked.must_clone += self.send_against_twin(twin, snapshot, i, &target)?;
            checked.sends += 2;
        }
        Ok(())
    }

    /// Compares `got`, received into `dir` of the chain's directory, with its source
    /// `snapshot` (the `i`th of the chain, sent in `stream` against the snapshots of
    /// `against`, each with a received copy; `parent` is the snapshot before it): every field
    /// but those ignored, then the layout oracle's rules.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn compare(
        &self,
        snapshot: &Path,
        parent: Option<&Path>,
        against: &[(&Path, PathBuf)],
        got: &Path,
        dir: &str,
        i: usize,
        stream: &Path,
    ) -> std::result::Result<usize, ChainFailure> {
        let mut must_clone = 0;
        {
            if let Some(breakage) = self.break_received {
                crate::random::breakage::break_tree(self.ctx, got, breakage).map_err(|e| {
                    ChainFailure::failed(format!("breaking the received tree: {e:#}"))
                })?;
            }
            let differences = Manifest::of_tree(snapshot)
                .and_then(|source| Ok((source, Manifest::of_tree(got)?)))
                .and_then(|(source, received)| {
                    let mut differences = manifest::compare(&source, &received, &self.ignore);
                    if differences.is_empty() {
                        // Receive may make the subvolume from any received copy of the parent.
                        let parent_copies: Vec<&Path> = against
                            .first()
                            .map(|(parent, _)| {
                                against
                                    .iter()
                                    .filter(|(source, _)| source == parent)
                                    .map(|(_, copy)| copy.as_path())
                                    .collect()
                            })
                            .unwrap_or_default();
                        let checks = |field: &str| self.checks(field);
                        differences = identity::received(snapshot, got, &parent_copies, &checks)?;
                    }
                    if !differences.is_empty() {
                        return Ok(differences);
                    }
                    let new = holes::new_paths(snapshot, parent)?;
                    let is_new = |path: &str| new.get(path).copied().unwrap_or(false);
                    if self.checks(holes::FIELD) {
                        differences = holes::filled_holes(&source, &received, &is_new);
                    }
                    if differences.is_empty() && self.checks(space::FIELD) {
                        differences = space::grown(snapshot, got, &source, &is_new)?;
                    }
                    let compressed_rule =
                        self.checks(compressed::FIELD) && self.keeps_compression(dir);
                    // A balance beside the send (noise) makes send write what it would
                    // have cloned: it cannot trust the extents' places across relocation.
                    let shared_rule = self.checks(shared::FIELD) && self.noise.is_none();
                    if !differences.is_empty() || !(compressed_rule || shared_rule) {
                        return Ok(differences);
                    }
                    let trees: Vec<&Path> = against.iter().map(|(tree, _)| *tree).collect();
                    let holdings = shared::Holdings::read(snapshot, &source, &trees)?;
                    if compressed_rule {
                        differences =
                            compressed::decompressed(snapshot, got, &source, &is_new, &holdings)?;
                    }
                    if differences.is_empty() && shared_rule {
                        let sent: Vec<shared::Sent> = against
                            .iter()
                            .map(|(source, received)| shared::Sent { source, received })
                            .collect();
                        let snapshot = shared::Sent {
                            source: snapshot,
                            received: got,
                        };
                        let lost = shared::lost(snapshot, &sent, &holdings)?;
                        must_clone = lost.checked;
                        differences = lost.differences;
                    }
                    Ok(differences)
                })
                .map_err(|e| ChainFailure::failed(format!("manifest of snapshot {i}: {e:#}")))?;
            if !differences.is_empty() {
                let dump = self.keep_stream(stream, i);
                let shown: Vec<String> =
                    differences.iter().take(3).map(|d| d.to_string()).collect();
                return Err(ChainFailure {
                    message: format!(
                        "received snapshot {i}{} differs from its source: {}",
                        if dir.is_empty() {
                            String::new()
                        } else {
                            format!(" (into {dir}/)")
                        },
                        shown.join("; ")
                    ),
                    out_of_space: false,
                    dump,
                    differences: differences
                        .iter()
                        .map(|d| {
                            // A path on one side only differs in no field; no known bug
                            // names this one.
                            let field = d.field().unwrap_or("presence");
                            (d.path().to_string(), field.to_string())
                        })
                        .collect(),
                });
            }
        }
        Ok(must_clone)
    }

    /// Whether the layout oracle's rule `field` is on: not when the chain ignores the field.
    pub(super) fn checks(&self, field: &str) -> bool {
        !self.ignore_args.iter().any(|f| f == field)
    }

    /// Whether what is received into `dir` keeps send's compressed extents compressed: sent
    /// with `--compressed-data`, and received without `--force-decompress` (the sends again,
    /// into `full/` and `twin/`, receive plainly).
    fn keeps_compression(&self, dir: &str) -> bool {
        self.send_options().contains(&"--compressed-data")
            && (dir == FULL_DIR || dir == TWIN_DIR || self.receive != Receive::ForceDecompress)
    }
}
