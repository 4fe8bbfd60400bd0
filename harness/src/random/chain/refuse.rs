//! Each stream of a chain broken on purpose, and receive held to refusing it
//! ([`crate::random::refusal`]): cut short, damaged, malformed, without its parent, with paths
//! that name nothing, for a receiver that decompresses with undecodable compressed data, for a
//! kernel without fs-verity turning it on; and the stream itself received again, and into a
//! directory that is not on btrfs.

use std::path::Path;
use std::time::Duration;

use xshell::cmd;

use super::{ChainFailure, Chains};
use crate::random::receive::Receive;
use crate::random::refusal::{self, Refusal};
use crate::require::Require;

/// The directory under the chain's that broken streams are received into, emptied after each.
const REFUSED_DIR: &str = "refused";

/// How long a refusal may take: receive stops at the first error of a broken stream.
const LIMIT: Duration = Duration::from_secs(60);

impl Chains<'_> {
    /// Receives the broken copies of `bytes` (the file `stream`, holding one stream of one
    /// subvolume, the `i`th snapshot's, received into `target`) and checks that receive
    /// refuses each: the number refused.
    pub(super) fn refuse(
        &self,
        stream: &Path,
        bytes: &[u8],
        target: &Path,
        received: &Path,
        i: usize,
    ) -> Result<usize, ChainFailure> {
        let failed = |e: &dyn std::fmt::Display| {
            ChainFailure::failed(format!("refusals of snapshot {i}'s stream: {e}"))
        };
        let receiver = refusal::Receiver {
            decompresses: self.receive == Receive::ForceDecompress,
            verity: Require::KernelFeature("verity").unmet().is_none(),
        };
        let mut copies = refusal::broken(bytes, receiver);
        // `--max-errors 0` makes receive read on past the end of a stream cut short, for ever
        // (btrfs-progs 6.2 to 6.19: docs/random.md, known receive bugs).
        if self.receive == Receive::MaxErrors {
            copies.retain(|(way, _)| *way != Refusal::Cut);
        }
        let dir = received.join(REFUSED_DIR);
        let broken = self.ctx.work_dir().join("refused.stream");
        let mut refused = 0;
        for (way, copy) in copies {
            std::fs::create_dir_all(&dir).map_err(|e| failed(&e))?;
            std::fs::write(&broken, &copy).map_err(|e| failed(&e))?;
            let verdict = self.expect_refusal(way, &broken, &dir, i);
            self.empty(&dir).map_err(|e| failed(&format!("{e:#}")))?;
            verdict?;
            refused += 1;
        }
        // Into a directory of the case's own off btrfs (the work directory's filesystem, when
        // it is not btrfs: on loop devices the host's, in a guest its root); `-m` names the
        // mount itself, so receive does not look for one.
        let elsewhere = self.ctx.work_dir().join("not-btrfs");
        std::fs::create_dir_all(&elsewhere).map_err(|e| failed(&e))?;
        let off_btrfs = nix::sys::statfs::statfs(&elsewhere)
            .map(|fs| fs.filesystem_type() != nix::sys::statfs::BTRFS_SUPER_MAGIC)
            .unwrap_or(false);
        if off_btrfs && self.receive != Receive::RootMount {
            let verdict = self.expect_refusal(Refusal::NotBtrfs, stream, &elsewhere, i);
            let _ = std::fs::remove_dir(&elsewhere);
            verdict?;
            refused += 1;
        } else {
            let _ = std::fs::remove_dir(&elsewhere);
        }
        Ok(refused + self.refuse_again(stream, target, i)?)
    }

    /// Receives `stream` (the `i`th snapshot's, received into `target`) again where it went,
    /// and checks that receive refuses it: the subvolume is there already. The number refused.
    pub(super) fn refuse_again(
        &self,
        stream: &Path,
        target: &Path,
        i: usize,
    ) -> Result<usize, ChainFailure> {
        self.expect_refusal(Refusal::Again, stream, target, i)?;
        Ok(1)
    }

    /// Receives `stream` into `into` the chain's way and checks that receive refuses it as
    /// `way` says: it must exit 1 and say why, and, unless it runs with `--max-errors 0`
    /// (which goes on past errors), stop at its first error. The stream is kept when it does
    /// not.
    fn expect_refusal(
        &self,
        way: Refusal,
        stream: &Path,
        into: &Path,
        i: usize,
    ) -> Result<(), ChainFailure> {
        let sh = self.ctx.sh();
        let mount = self.dest.display().to_string();
        let options = self.receive.options(&mount);
        let out = crate::exec::output_within(
            cmd!(sh, "btrfs receive {options...} -f {stream} {into}"),
            self.ctx.log(),
            Some(LIMIT),
        );
        let stops = self.receive != Receive::MaxErrors;
        let verdict = match out {
            Ok(out) => way.check(out.status.code(), &(out.stdout + &out.stderr), stops),
            Err(e) => Err(format!(
                "btrfs receive of a stream {} did not end: {e:#}",
                way.name()
            )),
        };
        self.refused(verdict, stream, i)
    }

    /// A refusal's verdict as the chain's: the broken stream kept when receive took it.
    fn refused(
        &self,
        verdict: Result<(), String>,
        broken: &Path,
        i: usize,
    ) -> Result<(), ChainFailure> {
        verdict.map_err(|why| {
            self.keep_stream(broken, i);
            ChainFailure::failed(format!("snapshot {i}'s stream broken on purpose: {why}"))
        })
    }

    /// Deletes what a refused receive left in `dir` (a partial subvolume) and `dir` itself.
    pub(super) fn empty(&self, dir: &Path) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if self.ctx.delete_subvolume_quickly(&path).is_err() {
                std::fs::remove_dir_all(&path)?;
            }
        }
        std::fs::remove_dir(dir)?;
        Ok(())
    }
}
