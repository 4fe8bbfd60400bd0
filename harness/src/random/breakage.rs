//! The deliberate faults of the random chains' tests ([`Breakage`]): a received tree broken
//! in one property that exactly one check must notice.

use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::cmd;

use crate::context::{Breakage, Ctx};
use crate::manifest::Manifest;

/// The deliberate fault of [`super::Chains::break_received`]: the largest file loses its last byte,
/// or zeros fill the first hole of the first file (in the manifest's order) that has one.
pub(super) fn break_tree(ctx: &Ctx, received: &Path, breakage: Breakage) -> Result<()> {
    let victim = match breakage {
        Breakage::Truncate => largest_file(received)?.map(|f| (f, None)),
        Breakage::FillHole => first_hole(received)?.map(|(f, hole)| (f, Some(hole))),
    };
    let Some((victim, hole)) = victim else {
        return Ok(());
    };
    let sh = ctx.sh();
    ctx.run(cmd!(sh, "btrfs property set -f -ts {received} ro false"))?;
    let file = std::fs::OpenOptions::new().write(true).open(&victim)?;
    match hole {
        None => file.set_len(file.metadata()?.len() - 1)?,
        Some((offset, len)) => {
            use std::os::unix::fs::FileExt;
            let before = file.metadata()?;
            file.write_all_at(&vec![0u8; len as usize], offset)?;
            // The same data and times: only the layout changed.
            file.set_times(
                std::fs::FileTimes::new()
                    .set_accessed(before.accessed()?)
                    .set_modified(before.modified()?),
            )?;
            file.sync_all()?;
            ctx.note(&format!(
                "filled {}+{len} of {} with zeros",
                offset,
                victim.display()
            ));
        }
    }
    ctx.run(cmd!(sh, "btrfs property set -ts {received} ro true"))?;
    Ok(())
}

/// A file below `dir` with a hole inside its size, and the hole's first block (or less, at
/// the end of the file).
fn first_hole(dir: &Path) -> Result<Option<(PathBuf, (u64, u64))>> {
    let manifest = Manifest::of_tree(dir)?;
    for (path, entry) in &manifest.entries {
        let (Some(layout), Some(size)) = (
            entry.get("layout"),
            entry.get("size").and_then(|s| s.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let mut at = 0u64;
        let ranges = if layout == "none" { "" } else { layout };
        for range in ranges.split(',').filter(|r| !r.is_empty()) {
            let Some((offset, len)) = range
                .split_once('+')
                .and_then(|(o, l)| Some((o.parse::<u64>().ok()?, l.parse::<u64>().ok()?)))
            else {
                break;
            };
            if offset > at {
                break;
            }
            at = offset + len;
        }
        if at < size {
            let start = at.div_ceil(4096) * 4096;
            if start < size {
                return Ok(Some((dir.join(path), (start, (size - start).min(4096)))));
            }
        }
    }
    Ok(None)
}

fn largest_file(dir: &Path) -> Result<Option<PathBuf>> {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let len = entry.metadata()?.len();
                if len > 0 && best.as_ref().map_or(true, |(b, _)| len > *b) {
                    best = Some((len, entry.path()));
                }
            }
        }
    }
    Ok(best.map(|(_, p)| p))
}
