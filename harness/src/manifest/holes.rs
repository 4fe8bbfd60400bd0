//! The layout oracle's rule for holes: a file that is new in a stream (every file of a full
//! send, and in an incremental one each inode the parent did not have) comes out with its holes
//! as holes. Send reads a new file's extents and sends writes (or clones, or encoded writes)
//! for the ranges that hold data only; a hole or a preallocated range it skips, and the size
//! comes from a truncate. So wherever the receiver has data, the source had data in that
//! block; data where the source had a hole is space the receiver should not have taken: a hole
//! sent as zeros. (For an inode the parent had, send writes zeros over a hole on purpose: no
//! kernel sends hole punches yet, so no rule applies there.)
//!
//! fstests checks the same with `fiemap` and `du` after send/receive (btrfs/2xx); here the
//! manifest's `layout` field (SEEK_DATA/SEEK_HOLE ranges) carries both sides.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};

use super::{Difference, Manifest};

/// The sector size send and receive write in; a range is rounded out to it on the source
/// side, so an inline or unaligned source range covers the block the receiver writes.
const BLOCK: u64 = 4096;

/// The field the rule's differences carry.
pub const FIELD: &str = "holes";

/// Each new file whose received data lies where its source has a hole: a [`Difference`] of
/// field `holes` with the first such range. `is_new` says which paths are new in the stream.
pub fn filled_holes(
    source: &Manifest,
    received: &Manifest,
    is_new: &dyn Fn(&str) -> bool,
) -> Vec<Difference> {
    let mut found = Vec::new();
    for (path, entry) in &source.entries {
        let (Some(theirs), Some(got)) = (
            entry.get("layout"),
            received.entries.get(path).and_then(|e| e.get("layout")),
        ) else {
            continue;
        };
        if !is_new(path) {
            continue;
        }
        let (Some(theirs), Some(got)) = (parse(theirs), parse(got)) else {
            continue;
        };
        if let Some((offset, len)) = outside(&got, &theirs) {
            found.push(Difference::Field {
                path: path.clone(),
                field: FIELD.into(),
                expected: Some(format!("data only in {}", show(&theirs))),
                got: Some(format!("data at {offset}+{len}, a hole in the source")),
            });
        }
    }
    found
}

/// The paths of `snapshot` whose inode `parent` does not have (every path without a parent).
pub fn new_paths(snapshot: &Path, parent: Option<&Path>) -> Result<HashMap<String, bool>> {
    let inodes = super::walk::inodes_of(snapshot)
        .with_context(|| format!("inode numbers of {}", snapshot.display()))?;
    let before: std::collections::HashSet<u64> = match parent {
        Some(parent) => super::walk::inodes_of(parent)
            .with_context(|| format!("inode numbers of {}", parent.display()))?
            .into_values()
            .collect(),
        None => Default::default(),
    };
    Ok(inodes
        .into_iter()
        .map(|(path, ino)| (path, !before.contains(&ino)))
        .collect())
}

/// `offset+length,…` (or `none`) as ranges.
fn parse(layout: &str) -> Option<Vec<(u64, u64)>> {
    if layout == "none" {
        return Some(Vec::new());
    }
    layout
        .split(',')
        .map(|r| {
            let (offset, len) = r.split_once('+')?;
            Some((offset.parse().ok()?, len.parse().ok()?))
        })
        .collect()
}

fn show(ranges: &[(u64, u64)]) -> String {
    if ranges.is_empty() {
        return "none".into();
    }
    ranges
        .iter()
        .map(|(o, l)| format!("{o}+{l}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The first part of `got` that no range of `allowed`, rounded out to blocks, covers.
fn outside(got: &[(u64, u64)], allowed: &[(u64, u64)]) -> Option<(u64, u64)> {
    let rounded: Vec<(u64, u64)> = allowed
        .iter()
        .map(|&(o, l)| (o / BLOCK * BLOCK, (o + l).div_ceil(BLOCK) * BLOCK))
        .collect();
    for &(offset, len) in got {
        let mut at = offset;
        let end = offset + len;
        while at < end {
            match rounded.iter().find(|&&(s, e)| s <= at && at < e) {
                Some(&(_, e)) => at = e,
                None => {
                    let next = rounded
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Entry;

    fn manifest(files: &[(&str, &str)]) -> Manifest {
        let mut m = Manifest::default();
        for (path, layout) in files {
            let mut entry = Entry::default();
            entry.fields.insert("layout".into(), layout.to_string());
            m.entries.insert(path.to_string(), entry);
        }
        m
    }

    #[test]
    fn data_where_a_new_files_source_has_a_hole_is_named() {
        let source = manifest(&[("a", "0+4096,16384+100"), ("b", "none"), ("c", "0+50")]);
        let received = manifest(&[("a", "0+8192,16384+4096"), ("b", "none"), ("c", "0+4096")]);
        let all = |_: &str| true;
        let found = filled_holes(&source, &received, &all);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].to_string(),
            "a: field holes: expected data only in 0+4096,16384+100 got data at 4096+4096, a hole in the source"
        );
        let none_new = |_: &str| false;
        assert!(filled_holes(&source, &received, &none_new).is_empty());
        let filled = manifest(&[("b", "0+4096")]);
        let found = filled_holes(&source, &filled, &all);
        assert_eq!(found[0].path(), "b");
        assert_eq!(found[0].field(), Some(FIELD));
    }

    #[test]
    fn ranges_are_compared_by_block() {
        assert_eq!(outside(&[(0, 4096)], &[(100, 10)]), None);
        assert_eq!(
            outside(&[(0, 12288)], &[(0, 4096), (8192, 4096)]),
            Some((4096, 4096))
        );
        assert_eq!(outside(&[(0, 8192)], &[(0, 4096), (4096, 4096)]), None);
        assert_eq!(outside(&[(8192, 4096)], &[]), Some((8192, 4096)));
        assert_eq!(parse("0+1,5+6"), Some(vec![(0, 1), (5, 6)]));
        assert_eq!(parse("x"), None);
    }
}
