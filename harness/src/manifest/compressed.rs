//! The layout oracle's rule for compressed data: with `--compressed-data` (protocol 2), send
//! sends a compressed extent as it is stored, an `encoded_write` of the compressed bytes,
//! whenever the compressed data is no larger than the part of the extent the file references
//! (up to its size); and the receiver passes it to the kernel as it is (BTRFS_IOC_ENCODED_WRITE),
//! so the received extent is compressed too, whatever the receiving filesystem's mount options.
//! That is the point of the option: a backup keeps its compression and the data is not
//! decompressed and compressed again. A received file whose data there is not compressed means
//! that send fell back to plain writes, or that the receiver decompressed, where neither should.
//!
//! The rule holds for a file new in the stream, whose every extent is sent (or cloned from data
//! already received). Not for an extent that an inode sent before it, an earlier part of the
//! same file, or the parent or a clone source, references too: send may pick that one to clone
//! from, clone the part it references, and write the rest of the item as plain data (an encoded
//! write sends whole items only). It
//! does not hold with `--force-decompress`, and it is not checked without `--compressed-data`.
//! fstests' btrfs/281 checks the same of one file: after a protocol-2 send with compressed
//! data, the received extents are compressed.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result};

use super::{shared, Difference, Manifest};
use crate::extents::{self, Extent, Kind};

/// The field the rule's differences carry.
pub const FIELD: &str = "compressed";

/// The file ranges that must arrive compressed: each compressed regular extent whose stored
/// size is no larger than the part of it the file references before `size` (send sends those
/// encoded).
pub fn must_stay_compressed(extents: &[Extent], size: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    for extent in extents.iter().filter(|e| e.is_compressed()) {
        let (start, end) = extent.range();
        let end = end.min(size);
        if end <= start {
            continue;
        }
        let stored = match extent.kind {
            Kind::Regular { disk_bytenr: 0, .. } => continue,
            Kind::Regular { disk_num_bytes, .. } => disk_num_bytes,
            // Send sends a compressed inline extent encoded too, and the receiver makes it an
            // inline extent again; but a later write past it or a truncate that grows the
            // file zeroes the rest of its block, and the receiver writes that block back as
            // a regular extent, compressed only if its filesystem compresses. That is the
            // receiving filesystem's doing, not send's.
            Kind::Inline { .. } | Kind::Prealloc { .. } => continue,
        };
        if stored <= end - start {
            ranges.push((start, end));
        }
    }
    ranges
}

/// The first part of `wanted` that no compressed extent of `got` covers.
pub fn uncovered(wanted: &[(u64, u64)], got: &[Extent]) -> Option<(u64, u64)> {
    let compressed: Vec<(u64, u64)> = got
        .iter()
        .filter(|e| e.is_compressed())
        .map(Extent::range)
        .collect();
    for &(start, end) in wanted {
        let mut at = start;
        while at < end {
            match compressed.iter().find(|&&(s, e)| s <= at && at < e) {
                Some(&(_, e)) => at = e,
                None => {
                    let next = compressed
                        .iter()
                        .map(|&(s, _)| s)
                        .filter(|&s| s > at)
                        .min()
                        .unwrap_or(end)
                        .min(end);
                    return Some((at, next - at));
                }
            }
        }
    }
    None
}

/// Each regular file new in the stream (`is_new`) whose received data is not compressed where
/// send must have sent it encoded: a [`Difference`] of field `compressed` with the first such
/// range. `source` is the manifest of `source_root`, for the paths and sizes; `holdings` the
/// extents of `source_root` and of the trees the stream was sent against.
pub fn decompressed(
    source_root: &Path,
    received_root: &Path,
    source: &Manifest,
    is_new: &dyn Fn(&str) -> bool,
    holdings: &shared::Holdings,
) -> Result<Vec<Difference>> {
    // The extents send may clone in part: the lowest inode of the snapshot that references
    // each, and those the trees sent against reference.
    let mut first_holder: HashMap<u64, u64> = HashMap::new();
    for (&bytenr, (_, holders)) in &holdings.snapshot {
        if let Some(ino) = holders.iter().map(|h| h.ino).min() {
            first_holder.insert(bytenr, ino);
        }
    }
    let held_before: HashSet<u64> = holdings
        .against()
        .flat_map(|by_extent| by_extent.keys().copied())
        .collect();
    let mut found = Vec::new();
    for (path, size) in source.files() {
        if !is_new(path) {
            continue;
        }
        let file = source_root.join(path);
        let ino = shared::inode(&file)?;
        let mut theirs = without_repeats(extents::of_file(&file)?);
        theirs.retain(|e| match e.kind {
            Kind::Regular { disk_bytenr, .. } if disk_bytenr != 0 => {
                !held_before.contains(&disk_bytenr)
                    && !matches!(first_holder.get(&disk_bytenr), Some(&first) if first < ino)
            }
            _ => true,
        });
        let wanted = must_stay_compressed(&theirs, size);
        if wanted.is_empty() {
            continue;
        }
        let received = received_root.join(path);
        let got = extents::of_file(&received)
            .with_context(|| format!("the extents of {}", received.display()))?;
        if let Some((offset, len)) = uncovered(&wanted, &got) {
            found.push(Difference::Field {
                path: path.clone(),
                field: FIELD.into(),
                expected: Some(format!("compressed at {}", show(&wanted))),
                got: Some(format!("data at {offset}+{len} not compressed")),
            });
        }
    }
    Ok(found)
}

/// One file's `extents`, in file order, without each regular extent that an earlier part of
/// the file references too: send may clone from that part (seed 1972184315 writes 146 KiB
/// compressed, reflinks into its middle, and the extent's tail arrives cloned and written).
fn without_repeats(extents: Vec<Extent>) -> Vec<Extent> {
    let mut seen = HashSet::new();
    extents
        .into_iter()
        .filter(|e| match e.kind {
            Kind::Regular { disk_bytenr, .. } if disk_bytenr != 0 => seen.insert(disk_bytenr),
            _ => true,
        })
        .collect()
}

fn show(ranges: &[(u64, u64)]) -> String {
    ranges
        .iter()
        .map(|(s, e)| format!("{s}+{}", e - s))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regular(file_offset: u64, compression: u8, disk_num_bytes: u64, num_bytes: u64) -> Extent {
        Extent {
            file_offset,
            ram_bytes: 131072,
            compression,
            kind: Kind::Regular {
                disk_bytenr: 1 << 30,
                disk_num_bytes,
                offset: 0,
                num_bytes,
            },
        }
    }

    #[test]
    fn compressed_extents_smaller_than_what_is_referenced_must_stay_compressed() {
        let extents = [
            regular(0, 3, 4096, 131072),
            // Plain data: nothing to keep.
            regular(131072, 0, 8192, 8192),
            // Referenced for less than its stored size: send writes it plainly.
            regular(139264, 3, 8192, 4096),
            // Cut by the file's size to 1000 bytes: plain too.
            regular(143360, 3, 4096, 131072),
        ];
        assert_eq!(
            must_stay_compressed(&extents, 143360 + 1000),
            vec![(0, 131072)]
        );
        // A larger size makes the last one count.
        assert_eq!(
            must_stay_compressed(&extents, 143360 + 4096),
            vec![(0, 131072), (143360, 147456)]
        );
        let inline = Extent {
            file_offset: 0,
            ram_bytes: 100,
            compression: 3,
            kind: Kind::Inline { len: 20 },
        };
        assert_eq!(must_stay_compressed(&[inline], 100), vec![]);
    }

    #[test]
    fn an_extent_the_file_references_twice_counts_the_first_time_only() {
        let mut tail = regular(94208, 3, 4096, 36864);
        if let Kind::Regular { ref mut offset, .. } = tail.kind {
            *offset = 94208;
        }
        let other = Extent {
            kind: Kind::Regular {
                disk_bytenr: 2 << 30,
                disk_num_bytes: 4096,
                offset: 0,
                num_bytes: 61440,
            },
            ..regular(32768, 3, 4096, 61440)
        };
        let hole = Extent {
            kind: Kind::Regular {
                disk_bytenr: 0,
                disk_num_bytes: 0,
                offset: 0,
                num_bytes: 4096,
            },
            ..regular(131072, 0, 0, 4096)
        };
        let kept = without_repeats(vec![regular(0, 3, 4096, 32768), other, tail, hole, hole]);
        let offsets: Vec<u64> = kept.iter().map(|e| e.file_offset).collect();
        assert_eq!(offsets, [0, 32768, 131072, 131072]);
        assert_eq!(
            must_stay_compressed(&kept, 1 << 20),
            vec![(0, 32768), (32768, 94208)]
        );
    }

    #[test]
    fn the_first_range_not_compressed_is_named() {
        let got = [regular(0, 3, 4096, 65536), regular(65536, 0, 65536, 65536)];
        assert_eq!(uncovered(&[(0, 65536)], &got), None);
        assert_eq!(uncovered(&[(0, 131072)], &got), Some((65536, 65536)));
        assert_eq!(uncovered(&[(0, 4096)], &[]), Some((0, 4096)));
    }
}
