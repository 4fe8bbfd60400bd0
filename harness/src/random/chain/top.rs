//! A chain's first full stream received once more, at the top of the receiving filesystem and
//! under a one-letter name, as a backup made with `btrfs receive /mnt/backup` is. The chain's
//! own receives go into directories below the top, so this is the one receive where the new
//! subvolume's path from the filesystem's top (which receive keeps, to finish the subvolume
//! when the stream ends) is its name alone, a single byte. Receive must succeed and leave the
//! subvolume read-only, with the sent subvolume's UUID as its received UUID.

use xshell::cmd;

use super::{ChainFailure, Chains, RECEIVE_OPEN_FILES};
use crate::btrfs_ioctl::subvolume_info;
use crate::random::wide::hex;
use crate::send_stream;

/// The name the subvolume is received under.
const NAME: &str = "t";

impl Chains<'_> {
    /// Receives the first full stream `bytes` (the `i`th snapshot's), renamed [`NAME`], into
    /// the receiving filesystem's top, checks the subvolume it makes, and deletes it.
    pub(super) fn receive_at_top(&self, bytes: &[u8], i: usize) -> Result<(), ChainFailure> {
        let failed = |why: String| {
            ChainFailure::failed(format!(
                "snapshot {i}'s stream received at the top of the filesystem as `{NAME}`: {why}"
            ))
        };
        let Some((renamed, uuid)) = send_stream::renamed_subvolume(bytes, NAME) else {
            return Ok(());
        };
        let stream = self.ctx.work_dir().join("top.stream");
        std::fs::write(&stream, &renamed).map_err(|e| failed(e.to_string()))?;
        let sh = self.ctx.sh();
        let mount = self.dest.display().to_string();
        let options = self.receive.options(&mount);
        let top = &self.dest;
        let received = self.ctx.run_with_open_files(
            cmd!(sh, "btrfs receive {options...} -f {stream} {top}"),
            RECEIVE_OPEN_FILES,
        );
        let subvolume = top.join(NAME);
        let verdict = received
            .map_err(|e| format!("{e:#}"))
            .and_then(|_| subvolume_info(&subvolume).map_err(|e| format!("{e:#}")))
            .and_then(|info| {
                if !info.readonly {
                    Err("receive left it writable".to_string())
                } else if info.received_uuid != uuid {
                    Err(format!(
                        "its received UUID is {}, not the sent subvolume's {}",
                        hex(&info.received_uuid),
                        hex(&uuid)
                    ))
                } else {
                    Ok(())
                }
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
