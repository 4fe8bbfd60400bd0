//! The layout oracle's rule for allocated space: a file that is new in a stream (every file of
//! a full send, and in an incremental one each inode the parent did not have) takes no more
//! space at the receiver than at the source, counted in 4 KiB blocks (`st_blocks`, rounded up).
//! Send sends a new file's data ranges only, as writes, clones or encoded writes, and a
//! truncate for its size; the receiver allocates those ranges and nothing else. btrfs counts a
//! file's space by the logical length of its extent items (compressed or not, shared or not),
//! so what the source allocates for data, preallocated ranges included, bounds what the
//! receiver may. The holes rule sees data where the source has a hole inside the file's size;
//! this one sees, besides, space past the size (a preallocation the receiver made, or an
//! extent written past the end), which SEEK_DATA cannot reach.
//!
//! The count is rounded up to whole blocks on both sides: an inline extent counts its bytes,
//! and the receiver may store the same bytes in a block of their own (its filesystem's
//! `max_inline`, or data compressed inline at the source that it does not compress). Not a
//! rule for an inode the parent had: send writes zeros over a hole punched in it (no kernel
//! sends hole punches), which takes space the source no longer has. fstests checks the same
//! with `du` and `st_blocks` after receive (btrfs/2xx).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};

use super::{Difference, Manifest};

/// The field the rule's differences carry.
pub const FIELD: &str = "space";

const BLOCK: u64 = 4096;

/// `st_blocks` (512-byte units) as whole 4 KiB blocks, rounded up.
pub fn blocks(st_blocks: u64) -> u64 {
    (st_blocks * 512).div_ceil(BLOCK)
}

/// Each new regular file (`is_new`) of `source` (the manifest of `source_root`) whose received
/// copy below `received_root` has more blocks allocated than the source: a [`Difference`] of
/// field `space`.
pub fn grown(
    source_root: &Path,
    received_root: &Path,
    source: &Manifest,
    is_new: &dyn Fn(&str) -> bool,
) -> Result<Vec<Difference>> {
    let mut found = Vec::new();
    for (path, _) in source.files() {
        if !is_new(path) {
            continue;
        }
        let allocated = |root: &Path| -> Result<u64> {
            let file = root.join(path);
            let meta = std::fs::symlink_metadata(&file)
                .with_context(|| format!("stat {}", file.display()))?;
            Ok(blocks(meta.blocks()))
        };
        let (theirs, got) = (allocated(source_root)?, allocated(received_root)?);
        if got > theirs {
            found.push(Difference::Field {
                path: path.clone(),
                field: FIELD.into(),
                expected: Some(format!("at most {theirs} blocks of 4 KiB allocated")),
                got: Some(format!("{got}")),
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_counts_in_whole_blocks_rounded_up() {
        assert_eq!(blocks(0), 0);
        // An inline extent of 100 bytes counts one sector; a block of its own on the
        // receiver counts eight: the same block.
        assert_eq!(blocks(1), 1);
        assert_eq!(blocks(8), 1);
        assert_eq!(blocks(9), 2);
        assert_eq!(blocks(2048), 256);
    }
}
