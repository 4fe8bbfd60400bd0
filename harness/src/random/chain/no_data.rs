//! A chain's first snapshot sent once more with `--no-data`, as tools that mirror a
//! subvolume's metadata do: `update_extent` commands take the place of its writes. Receive
//! carries out such a stream's other commands and only reports each `update_extent`, at `-vv`;
//! its lines are counted against the stream like the chain's own receives
//! ([`crate::random::verbosity`]). The received files have no data, so the subvolume is not
//! compared; it is deleted. A stream that clones is not received: a clone's source has no data
//! in it, and receive fails with EINVAL (btrfs-progs 6.2 to 6.19).

use std::path::Path;

use xshell::cmd;

use super::{ChainFailure, Chains};

/// The directory under the chain's that the stream is received into.
const DIR: &str = "no-data";

impl Chains<'_> {
    /// Sends `snapshot` (the `i`th, the chain's first) with `--no-data` and receives it into
    /// [`DIR`] under `received`: 1 if the stream was received, 0 if it clones.
    pub(super) fn receive_without_data(
        &self,
        snapshot: &Path,
        received: &Path,
        i: usize,
    ) -> Result<usize, ChainFailure> {
        let failed =
            |why: String| ChainFailure::failed(format!("snapshot {i} sent with --no-data: {why}"));
        let sh = self.ctx.sh();
        let stream = self.ctx.work_dir().join("no-data.stream");
        let protocol = self.send_options();
        self.ctx
            .run(cmd!(
                sh,
                "btrfs send -q --no-data {protocol...} -f {stream} {snapshot}"
            ))
            .map_err(|e| failed(format!("send failed: {e:#}")))?;
        let bytes = std::fs::read(&stream).map_err(|e| failed(e.to_string()))?;
        let commands = crate::send_stream::count(&bytes).map_err(|why| {
            self.keep_stream(&stream, i);
            failed(format!("the stream does not frame: {why}"))
        })?;
        if commands.count_of("clone") > 0 {
            let _ = std::fs::remove_file(&stream);
            return Ok(0);
        }
        let dir = received.join(DIR);
        std::fs::create_dir(&dir).map_err(|e| failed(e.to_string()))?;
        let verdict = self
            .receive_loudly(&stream, &dir)
            .map_err(|e| format!("receive failed: {e:#}"))
            .and_then(|printed| {
                self.verbosity.check(
                    self.placement,
                    &(printed.stdout + &printed.stderr),
                    &commands,
                )
            });
        if verdict.is_err() {
            self.keep_stream(&stream, i);
        }
        self.empty(&dir)
            .map_err(|e| failed(format!("emptying {}: {e:#}", dir.display())))?;
        let _ = std::fs::remove_file(&stream);
        verdict.map(|()| 1).map_err(failed)
    }
}
