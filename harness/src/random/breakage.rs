//! The deliberate faults of the random chains' tests ([`Breakage`]): a received tree broken
//! in one property that exactly one check must notice.

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::cmd;

use crate::context::{Breakage, Ctx};
use crate::manifest::Manifest;

/// The deliberate fault of [`super::Chains::break_received`], as [`Breakage`] says.
pub(super) fn break_tree(ctx: &Ctx, received: &Path, breakage: Breakage) -> Result<()> {
    let victim = match breakage {
        Breakage::Writable => {
            crate::btrfs_ioctl::set_readonly(received, false)?;
            ctx.note(&format!("left {} writable", received.display()));
            return Ok(());
        }
        Breakage::Unreceived => {
            // What a user who needs a received subvolume writable does: -f clears its received
            // UUID and stransid.
            let sh = ctx.sh();
            ctx.run(cmd!(sh, "btrfs property set -f -ts {received} ro false"))?;
            ctx.run(cmd!(sh, "btrfs property set -ts {received} ro true"))?;
            return Ok(());
        }
        Breakage::Truncate => largest_file(received)?.map(|f| (f, Fault::LastByte)),
        Breakage::FillHole => first_hole(received)?.map(|(f, hole)| (f, Fault::Zeros(hole))),
        Breakage::Decompress => {
            first_compressed(received)?.map(|(f, range)| (f, Fault::Uncompressed(range)))
        }
        Breakage::Unshare => shared_blocks(received)?.map(|(f, ranges)| (f, Fault::Copies(ranges))),
        Breakage::Preallocate => largest_file(received)?.map(|f| (f, Fault::PastTheEnd)),
    };
    let Some((victim, fault)) = victim else {
        return Ok(());
    };
    // Writable for the change, keeping its received UUID: the change is the only fault.
    crate::btrfs_ioctl::set_readonly(received, false)?;
    let before = std::fs::metadata(&victim)?;
    match fault {
        Fault::LastByte => {
            let file = std::fs::OpenOptions::new().write(true).open(&victim)?;
            file.set_len(before.len() - 1)?;
        }
        Fault::Zeros((offset, len)) => {
            let file = std::fs::OpenOptions::new().write(true).open(&victim)?;
            file.write_all_at(&vec![0u8; len as usize], offset)?;
            keep_times(&file, &before)?;
            ctx.note(&format!(
                "filled {offset}+{len} of {} with zeros",
                victim.display()
            ));
        }
        Fault::Uncompressed((offset, len)) => {
            let mut data = vec![0u8; len as usize];
            std::fs::File::open(&victim)?.read_exact_at(&mut data, offset)?;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&victim)?;
            // O_DIRECT writes are never compressed; they need a block-aligned buffer.
            let mut buffer = AlignedBlocks::new(data.len())?;
            buffer.as_mut().copy_from_slice(&data);
            file.write_all_at(buffer.as_mut(), offset)?;
            keep_times(&file, &before)?;
            ctx.note(&format!(
                "wrote {offset}+{len} of {} again, uncompressed",
                victim.display()
            ));
        }
        Fault::Copies(ranges) => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&victim)?;
            for &(offset, len) in &ranges {
                let mut data = vec![0u8; len as usize];
                file.read_exact_at(&mut data, offset)?;
                // Written again, the same bytes take a new extent of their own.
                file.write_all_at(&data, offset)?;
            }
            keep_times(&file, &before)?;
            ctx.note(&format!(
                "wrote {} shared range(s) of {} again, unshared",
                ranges.len(),
                victim.display()
            ));
        }
        Fault::PastTheEnd => {
            let file = std::fs::OpenOptions::new().write(true).open(&victim)?;
            let end = before.len().div_ceil(BLOCK) * BLOCK;
            nix::fcntl::fallocate(
                &file,
                nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
                end as i64,
                1 << 20,
            )?;
            keep_times(&file, &before)?;
            ctx.note(&format!(
                "preallocated {end}+1048576 of {}, past its end",
                victim.display()
            ));
        }
    }
    crate::btrfs_ioctl::set_readonly(received, true)?;
    Ok(())
}

/// What [`break_tree`] does to its victim.
enum Fault {
    LastByte,
    Zeros((u64, u64)),
    Uncompressed((u64, u64)),
    Copies(Vec<(u64, u64)>),
    PastTheEnd,
}

/// The same data and times after a fault: only the layout changed.
fn keep_times(file: &std::fs::File, before: &std::fs::Metadata) -> Result<()> {
    file.set_times(
        std::fs::FileTimes::new()
            .set_accessed(before.accessed()?)
            .set_modified(before.modified()?),
    )?;
    file.sync_all()?;
    Ok(())
}

/// A zeroed buffer of whole blocks, aligned to the block size, for O_DIRECT.
struct AlignedBlocks {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl AlignedBlocks {
    fn new(len: usize) -> Result<AlignedBlocks> {
        anyhow::ensure!(
            len > 0 && len % BLOCK as usize == 0,
            "{len}: not whole blocks"
        );
        let layout = std::alloc::Layout::from_size_align(len, BLOCK as usize)?;
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        anyhow::ensure!(!ptr.is_null(), "out of memory for {len} bytes");
        Ok(AlignedBlocks { ptr, layout })
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` holds `layout.size()` initialized bytes, owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBlocks {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

const BLOCK: u64 = 4096;

/// A file and the ranges of it to break.
type Victim = (PathBuf, Vec<(u64, u64)>);

/// The file below `dir` with the most whole blocks in extents that another inode (or the same
/// one elsewhere) references too, and those blocks' ranges. Hard links count once.
fn shared_blocks(dir: &Path) -> Result<Option<Victim>> {
    let by_extent = crate::manifest::shared::holders(dir, &Manifest::of_tree(dir)?)?;
    let mut ranges: std::collections::BTreeMap<&str, Vec<(u64, u64)>> = Default::default();
    for (_, holders) in by_extent.values().filter(|(_, h)| h.len() > 1) {
        for h in holders {
            let end = (h.file_offset + h.num_bytes).min(h.size) / BLOCK * BLOCK;
            if h.file_offset % BLOCK == 0 && end > h.file_offset {
                let range = (h.file_offset, end - h.file_offset);
                ranges.entry(&h.path).or_default().push(range);
            }
        }
    }
    let blocks = |r: &Vec<(u64, u64)>| r.iter().map(|(_, len)| len).sum::<u64>();
    Ok(ranges
        .into_iter()
        .max_by_key(|(_, r)| blocks(r))
        .map(|(path, r)| (dir.join(path), r)))
}

/// A file below `dir` with a compressed regular extent that lies in whole blocks inside its
/// size, and that extent's range.
fn first_compressed(dir: &Path) -> Result<Option<(PathBuf, (u64, u64))>> {
    let manifest = Manifest::of_tree(dir)?;
    for (path, size) in manifest.files() {
        let file = dir.join(path);
        for extent in crate::extents::of_file(&file)? {
            let (start, end) = extent.range();
            let regular = matches!(extent.kind, crate::extents::Kind::Regular { .. });
            if regular
                && extent.is_compressed()
                && end <= size
                && start % BLOCK == 0
                && end % BLOCK == 0
            {
                return Ok(Some((file, (start, end - start))));
            }
        }
    }
    Ok(None)
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
