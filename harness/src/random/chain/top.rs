//! A chain's first full stream received once more, at the top of the receiving filesystem and
//! under a one-letter name, as a backup made with `btrfs receive /mnt/backup` is. The chain's
//! own receives go into directories below the top, so this is the one receive where the new
//! subvolume's path from the filesystem's top (which receive keeps, to finish the subvolume
//! when the stream ends) is its name alone, a single byte. Receive must succeed and the
//! subvolume keep the identity rule ([`crate::manifest::identity`]): read-only, with the sent
//! subvolume's UUID as its received UUID.

use std::path::Path;

use super::{ChainFailure, Chains};
use crate::manifest::identity;
use crate::send_stream;

/// The name the subvolume is received under.
const NAME: &str = "t";

impl Chains<'_> {
    /// Receives the first full stream `bytes` (of `sent`, the `i`th snapshot), renamed
    /// [`NAME`], into the receiving filesystem's top, checks the subvolume it makes, and
    /// deletes it.
    pub(super) fn receive_at_top(
        &self,
        bytes: &[u8],
        sent: &Path,
        i: usize,
    ) -> Result<(), ChainFailure> {
        let failed = |why: String| {
            ChainFailure::failed(format!(
                "snapshot {i}'s stream received at the top of the filesystem as `{NAME}`: {why}"
            ))
        };
        let Some(renamed) = send_stream::renamed_subvolume(bytes, NAME) else {
            return Ok(());
        };
        let stream = self.ctx.work_dir().join("top.stream");
        std::fs::write(&stream, &renamed).map_err(|e| failed(e.to_string()))?;
        let subvolume = self.dest.join(NAME);
        let checks = |field: &str| self.checks(field);
        let verdict = self
            .receive_loudly(&stream, &self.dest)
            .and_then(|_| identity::received(sent, &subvolume, &[], &checks))
            .map_err(|e| format!("{e:#}"))
            .and_then(|differences| match differences.first() {
                None => Ok(()),
                Some(first) => Err(first.to_string()),
            });
        if verdict.is_err() {
            self.keep_stream(&stream, i);
        }
        if subvolume.exists() {
            self.ctx
                .delete_subvolume_quickly(&subvolume)
                .map_err(|e| failed(format!("deleting it: {e:#}")))?;
        }
        let _ = std::fs::remove_file(&stream);
        verdict.map_err(failed)
    }
}
