//! The layout oracle's rule for shared data: where send finds a clone source for an extent,
//! the received blocks are shared as the source's are. For each extent item it sends, send
//! walks the extent's back references for an item that holds the same data and that the
//! receiver already has: an inode with a lower number (send sends inodes in order), in the
//! same snapshot or in the parent or a `-c` clone source. When it finds one it sends a `clone`
//! instead of the data, and the receiver clones it (FICLONERANGE), so the two files share
//! their blocks at the receiver as they do at the source. A received copy where there was a
//! reflink takes the space twice: an incremental backup grows with every reflinked copy.
//!
//! Send falls back to writes on purpose, and the rule asserts sharing only where every kernel
//! sendtest runs (6.1 to 6.18) clones, as their `find_extent_clone`, `send_write_or_clone` and
//! `clone_range` decide: an item in whole blocks inside its file, of an extent with at most
//! `SEND_MAX_EXTENT_REFS` references (64 in 6.1, 1024 later), that an inode with a lower number
//! holds as well; every such holder must reference the item's whole data (send may pick any of
//! them, and clones only what the one it picks references); the clone must not be of a single
//! block from a source whose item starts at offset 0 (send writes those: the receiver may have
//! made that block inline), nor end at the source's end unaligned to 64 KiB unless the item ends
//! at its own file's end too. In an incremental send the parent and the `-c` clone sources
//! count as holders too, with any inode number (send may clone from their received copies);
//! an item whose inode one of them holds the extent in is left out (an unchanged item is not
//! sent, a changed one may come from its own older self), and so is an item whose own inode
//! holds the data elsewhere.
//! fstests checks the same for chosen files with `fiemap` (btrfs/200, btrfs/283, btrfs/322:
//! "all extents shared" after receive).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Difference, Manifest};
use crate::extents::{self, Extent, Kind};

/// The field the rule's differences carry.
pub const FIELD: &str = "shared";

const BLOCK: u64 = 4096;

/// Where a block's data lies on disk: the extent it is in (its `disk_bytenr`) and the offset
/// of the block's data in that extent's (decompressed) data. Two file blocks with the same
/// place share their storage.
type Place = (u64, u64);

/// The place of each whole block (block-aligned and ending at or before `size`) of a file's
/// data that lies in a regular extent.
pub fn places(extents: &[Extent], size: u64) -> BTreeMap<u64, Place> {
    let mut blocks = BTreeMap::new();
    for extent in extents {
        let Kind::Regular {
            disk_bytenr,
            offset,
            num_bytes,
            ..
        } = extent.kind
        else {
            continue;
        };
        if disk_bytenr == 0 {
            continue;
        }
        let mut at = extent.file_offset.div_ceil(BLOCK) * BLOCK;
        let end = (extent.file_offset + num_bytes).min(size);
        while at + BLOCK <= end {
            blocks.insert(at, (disk_bytenr, offset + at - extent.file_offset));
            at += BLOCK;
        }
    }
    blocks
}

/// One item's reference to a data extent.
#[derive(Debug, Clone)]
pub struct Holder {
    /// The tree it is in: 0 for the snapshot sent, k for its k-th clone source (the parent
    /// first, then the `-c` ones).
    pub root: usize,
    pub path: String,
    pub ino: u64,
    pub size: u64,
    pub file_offset: u64,
    /// Where in the extent's (decompressed) data the item starts, and how much it references.
    pub offset: u64,
    pub num_bytes: u64,
}

impl Holder {
    fn end(&self) -> u64 {
        self.file_offset + self.num_bytes
    }

    /// Whether the item references all of `[offset, offset + len)` of the extent's data.
    fn covers(&self, offset: u64, len: u64) -> bool {
        self.offset <= offset && offset + len <= self.offset + self.num_bytes
    }

    /// Whether the item references the extent's data at `offset`.
    fn holds(&self, offset: u64) -> bool {
        self.offset <= offset && offset < self.offset + self.num_bytes
    }

    /// The file offset at which this item holds the extent's data at `offset`.
    fn at(&self, offset: u64) -> u64 {
        self.file_offset + offset - self.offset
    }
}

/// The lowest `SEND_MAX_EXTENT_REFS` of the kernels sendtest runs (6.1 has 64; later
/// kernels have 1024).
const SEND_MAX_EXTENT_REFS: u64 = 64;

/// The holders `item` must be cloned from, one of them, when send must clone it: of
/// `holders` (every item of the snapshot and of its clone sources that references the same
/// extent, `item` among them; the extent has `refs` references and is `compressed` or not),
/// those of a lower inode or of a clone source that hold the item's data. None when send may
/// write the item instead (see the module's text).
pub fn clone_sources<'a>(
    item: &Holder,
    holders: &'a [Holder],
    refs: u64,
    compressed: bool,
) -> Option<Vec<&'a Holder>> {
    if refs > SEND_MAX_EXTENT_REFS
        || item.file_offset % BLOCK != 0
        || item.num_bytes % BLOCK != 0
        || item.end() > item.size
    {
        return None;
    }
    let (offset, len) = (item.offset, item.num_bytes);
    // The item's own inode elsewhere (for compressed data, anywhere in the extent): send may
    // clone from there, within rules of its own (6.1 clones from where the inode's reference
    // to the extent would start, and writes what it does not find there); or in a clone
    // source, where the item may be unchanged (not sent) or come from its older self.
    if holders.iter().any(|h| {
        h.ino == item.ino
            && (h.root != item.root
                || h.file_offset != item.file_offset && (compressed || h.holds(offset)))
    }) {
        return None;
    }
    // The back references send looks at: for plain data those that hold the item's first
    // byte, for compressed data every reference to the extent. Of the snapshot sent, only
    // inodes sent before this one.
    let earlier: Vec<&Holder> = holders
        .iter()
        .filter(|h| (h.root != item.root || h.ino < item.ino) && (compressed || h.holds(offset)))
        .collect();
    if earlier.is_empty() {
        return None;
    }
    let usable = earlier.iter().all(|h| {
        if !h.covers(offset, len) {
            return false;
        }
        let start = h.at(offset);
        let src_end = start + len;
        src_end <= h.size
            && !(len == BLOCK && (start == 0 || h.file_offset == 0))
            && !(src_end == h.size && src_end % (64 * 1024) != 0 && item.end() < item.size)
    });
    usable.then_some(earlier)
}

/// The received blocks' places of each file, by tree (as [`Holder::root`]) and path.
type Received = HashMap<(usize, String), BTreeMap<u64, Place>>;

/// The first block of `item` that shares no place at the receiver with the same block of any
/// of `sources`: its file offset.
fn first_unshared(item: &Holder, sources: &[&Holder], received: &Received) -> Option<u64> {
    let place = |h: &Holder, at: u64| {
        received
            .get(&(h.root, h.path.clone()))
            .and_then(|b| b.get(&at))
    };
    (0..item.num_bytes)
        .step_by(BLOCK as usize)
        .find(|&delta| {
            // A block with no data at the receiver is not shared either.
            let Some(got) = place(item, item.file_offset + delta) else {
                return true;
            };
            !sources
                .iter()
                .any(|h| place(h, h.at(item.offset + delta)) == Some(got))
        })
        .map(|delta| item.file_offset + delta)
}

/// A tree of the send and its received copy.
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    pub source: &'a Path,
    pub received: &'a Path,
}

/// What [`lost`] found.
#[derive(Debug, Default)]
pub struct Lost {
    pub differences: Vec<Difference>,
    /// The extent items send must have cloned: each was checked.
    pub checked: usize,
}

/// Each extent item of `snapshot` that send must have cloned ([`clone_sources`]) but whose
/// blocks the received file shares with none of its sources: a [`Difference`] of field
/// `shared` naming the first block. `holdings` has the extents of `snapshot.source` and of
/// the trees it was sent against, with their paths and sizes; `against` those trees (the
/// parent first, then the clone sources), each with a received copy (a tree received more
/// than once comes once for each copy: the receiver may clone from any of them). A tree whose
/// received copy is missing is not looked at, and the extents it holds are left out.
pub fn lost(snapshot: Sent, against: &[Sent], holdings: &Holdings) -> Result<Lost> {
    let mut by_extent = holdings.snapshot.clone();
    let mut trees = vec![snapshot];
    for sent in against {
        let theirs = holdings.of(sent.source)?;
        if sent.received.is_dir() {
            for (bytenr, (_, items)) in theirs {
                if let Some((_, ours)) = by_extent.get_mut(bytenr) {
                    ours.extend(items.iter().map(|h| Holder {
                        root: trees.len(),
                        ..h.clone()
                    }));
                }
            }
            trees.push(*sent);
        } else {
            by_extent.retain(|bytenr, _| !theirs.contains_key(bytenr));
        }
    }
    let mut received = HashMap::new();
    let mut found: Vec<Difference> = Vec::new();
    let mut checked = 0;
    let mut named = HashSet::new();
    for (&bytenr, (compressed, holders)) in &by_extent {
        if holders.len() < 2 {
            continue;
        }
        let mut refs = None;
        for item in holders.iter().filter(|h| h.root == 0) {
            // The extent tree is read only for extents that may count.
            if clone_sources(item, holders, 0, *compressed).is_none() {
                continue;
            }
            let refs = match refs {
                Some(refs) => refs,
                None => *refs.insert(
                    extents::references(snapshot.source, bytenr)
                        .with_context(|| format!("the references of the extent at {bytenr}"))?,
                ),
            };
            let Some(sources) = clone_sources(item, holders, refs, *compressed) else {
                continue;
            };
            checked += 1;

            for h in sources.iter().copied().chain([item]) {
                if let Entry::Vacant(entry) = received.entry((h.root, h.path.clone())) {
                    let file = trees[h.root].received.join(&h.path);
                    let got = extents::of_file(&file)
                        .with_context(|| format!("the extents of {}", file.display()))?;
                    entry.insert(places(&got, h.size));
                }
            }
            if let Some(at) = first_unshared(item, &sources, &received) {
                if named.insert(item.path.clone()) {
                    let names: Vec<String> = sources
                        .iter()
                        .map(|h| {
                            let tree = if h.root == 0 {
                                String::new()
                            } else {
                                format!("the clone source {}'s ", h.root)
                            };
                            format!(
                                "{tree}{} at {}",
                                h.path,
                                h.at(item.offset + at - item.file_offset)
                            )
                        })
                        .collect();
                    found.push(Difference::Field {
                        path: item.path.clone(),
                        field: FIELD.into(),
                        expected: Some(format!("{at}+{BLOCK} shared with {}", names.join(" or "))),
                        got: Some("not shared".into()),
                    });
                }
            }
        }
    }
    Ok(Lost {
        differences: found,
        checked,
    })
}

/// The items of a tree's regular files by the extent they reference (`disk_bytenr`), with
/// whether that extent is compressed.
pub type ByExtent = BTreeMap<u64, (bool, Vec<Holder>)>;

/// What the layout oracle's compressed and shared rules read of a sent snapshot and of the
/// trees its stream was sent against: each tree's [`holders`], walked once per compare.
pub struct Holdings {
    pub snapshot: ByExtent,
    against: Vec<(PathBuf, ByExtent)>,
}

impl Holdings {
    /// The holders of `snapshot` (its manifest `source`) and of each tree of `against`.
    pub fn read(snapshot: &Path, source: &Manifest, against: &[&Path]) -> Result<Self> {
        let mut trees: Vec<(PathBuf, ByExtent)> = Vec::new();
        for &tree in against {
            if !trees.iter().any(|(t, _)| t == tree) {
                trees.push((
                    tree.to_path_buf(),
                    holders(tree, &Manifest::of_tree(tree)?)?,
                ));
            }
        }
        Ok(Holdings {
            snapshot: holders(snapshot, source)?,
            against: trees,
        })
    }

    /// The holders of `tree`, one of the trees sent against (their `root` is 0).
    pub fn of(&self, tree: &Path) -> Result<&ByExtent> {
        self.against
            .iter()
            .find(|(t, _)| t == tree)
            .map(|(_, by_extent)| by_extent)
            .with_context(|| {
                format!(
                    "{} is not a tree the stream is sent against",
                    tree.display()
                )
            })
    }

    /// The trees sent against, each with its holders.
    pub fn against(&self) -> impl Iterator<Item = &ByExtent> {
        self.against.iter().map(|(_, by_extent)| by_extent)
    }
}

/// The items of the regular files of `root` (its manifest `manifest`) by the extent they
/// reference, each holder naming the tree as 0. Each inode counts once, under its first name.
pub fn holders(root: &Path, manifest: &Manifest) -> Result<ByExtent> {
    let mut seen_inodes = HashSet::new();
    let mut by_extent = ByExtent::new();
    for (path, size) in manifest.files() {
        let file = root.join(path);
        let ino = inode(&file)?;
        if !seen_inodes.insert(ino) {
            continue;
        }
        for extent in extents::of_file(&file)? {
            if let Kind::Regular {
                disk_bytenr,
                offset,
                num_bytes,
                ..
            } = extent.kind
            {
                if disk_bytenr != 0 {
                    let (compressed, items) = by_extent.entry(disk_bytenr).or_default();
                    *compressed |= extent.is_compressed();
                    items.push(Holder {
                        root: 0,
                        path: path.clone(),
                        ino,
                        size,
                        file_offset: extent.file_offset,
                        offset,
                        num_bytes,
                    });
                }
            }
        }
    }
    Ok(by_extent)
}

/// The inode number of `file` (not following a symlink).
pub fn inode(file: &Path) -> Result<u64> {
    std::fs::symlink_metadata(file)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .with_context(|| format!("inode of {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regular(file_offset: u64, disk_bytenr: u64, offset: u64, num_bytes: u64) -> Extent {
        Extent {
            file_offset,
            ram_bytes: 1 << 20,
            compression: 0,
            kind: Kind::Regular {
                disk_bytenr,
                disk_num_bytes: 1 << 20,
                offset,
                num_bytes,
            },
        }
    }

    #[test]
    fn whole_blocks_of_regular_extents_have_places() {
        let extents = [
            regular(0, 1 << 30, 8192, 8192),
            regular(8192, 0, 0, 4096),
            regular(12288, 2 << 30, 0, 8192),
        ];
        let blocks = places(&extents, 12288 + 5000);
        assert_eq!(
            blocks.into_iter().collect::<Vec<_>>(),
            vec![
                (0, (1 << 30, 8192)),
                (4096, (1 << 30, 12288)),
                (12288, (2 << 30, 0)),
            ]
        );
    }

    fn holder(
        path: &str,
        ino: u64,
        size: u64,
        file_offset: u64,
        offset: u64,
        num_bytes: u64,
    ) -> Holder {
        Holder {
            root: 0,
            path: path.into(),
            ino,
            size,
            file_offset,
            offset,
            num_bytes,
        }
    }

    #[test]
    fn an_item_must_be_cloned_from_lower_inodes_that_hold_all_of_its_data() {
        // `a` holds 256 KiB of the extent; `b` (a later inode) reflinks 16 KiB of its middle.
        let a = holder("a", 257, 1 << 20, 0, 0, 262144);
        let b = holder("b", 258, 1 << 20, 65536, 8192, 16384);
        let both = [a.clone(), b.clone()];
        let sources = clone_sources(&b, &both, 2, false).unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].path, "a");
        // `a` comes first: nothing to clone it from.
        assert!(clone_sources(&a, &both, 2, false).is_none());
        assert!(
            clone_sources(&b, &both, 65, false).is_none(),
            "too many references"
        );
        // The reverse order: `b`'s inode is lower, so `a` is sent after it, and `b` holds
        // only part of `a`'s data.
        let mut a_later = a.clone();
        a_later.ino = 259;
        assert!(clone_sources(&a_later, &[a_later.clone(), b.clone()], 2, false).is_none());
        // Another lower holder that references only part of `b`'s data: send may pick it.
        let part = holder("c", 256, 1 << 20, 0, 8192, 4096);
        assert!(clone_sources(&b, &[a.clone(), b.clone(), part.clone()], 3, false).is_none());
        // For plain data a holder that does not hold the item's first byte is not looked at;
        // for compressed data every reference is.
        let elsewhere = holder("c", 256, 1 << 20, 0, 131072, 4096);
        assert!(clone_sources(&b, &[a.clone(), b.clone(), elsewhere.clone()], 3, false).is_some());
        assert!(clone_sources(&b, &[a.clone(), b.clone(), elsewhere], 3, true).is_none());
        // The item's own inode holds the data elsewhere; for compressed data, any of it.
        let self_too = holder("b", 258, 1 << 20, 0, 8192, 4096);
        assert!(clone_sources(&b, &[a.clone(), b.clone(), self_too], 3, false).is_none());
        let self_before = holder("b", 258, 1 << 20, 0, 0, 4096);
        assert!(
            clone_sources(&b, &[a.clone(), b.clone(), self_before.clone()], 3, false).is_some()
        );
        assert!(clone_sources(&b, &[a.clone(), b.clone(), self_before], 3, true).is_none());
    }

    #[test]
    fn a_clone_source_holds_with_any_inode_but_not_the_items_own() {
        // `b`, a new inode, copies all of an extent that the parent's `a` holds (the sent
        // snapshot's `a`, an inode sent after `b`, too): send must clone it from one of them.
        let in_parent = |h: &Holder| Holder {
            root: 1,
            ..h.clone()
        };
        let a = holder("a", 259, 1 << 20, 0, 0, 262144);
        let b = holder("b", 258, 1 << 20, 0, 0, 262144);
        let parent_a = in_parent(&a);
        let all = [a.clone(), b.clone(), parent_a.clone()];
        let sources = clone_sources(&b, &all, 3, false).unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].root, 1);
        // `a` in both trees: unchanged, or changed from its older self; not looked at.
        assert!(clone_sources(&a, &all, 3, false).is_none());
        // A parent's holder of part of the data: send may pick it.
        let part = in_parent(&holder("c", 300, 1 << 20, 0, 0, 8192));
        assert!(clone_sources(&b, &[a, b.clone(), parent_a, part], 4, false).is_none());
    }

    #[test]
    fn send_writes_instead_at_the_edges() {
        // Past the item's file size, or not in whole blocks.
        let a = holder("a", 257, 1 << 20, 0, 0, 262144);
        let short = holder("b", 258, 65536 + 100, 65536, 8192, 16384);
        assert!(clone_sources(&short, &[a.clone(), short.clone()], 2, false).is_none());
        // The source range past the source's size.
        let small_a = holder("a", 257, 12288, 0, 0, 262144);
        let b = holder("b", 258, 1 << 20, 65536, 8192, 16384);
        assert!(clone_sources(&b, &[small_a, b.clone()], 2, false).is_none());
        // One block from offset 0 of the source.
        let one = holder("b", 258, 1 << 20, 65536, 0, 4096);
        assert!(clone_sources(&one, &[a.clone(), one.clone()], 2, false).is_none());
        // Ending at the source's end unaligned to 64 KiB, into the middle of the item's file;
        // fine when the item ends its file too, or at a multiple of 64 KiB.
        let ends_a = holder("a", 257, 24576, 0, 0, 24576);
        let b = holder("b", 258, 1 << 20, 65536, 8192, 16384);
        assert!(clone_sources(&b, &[ends_a.clone(), b.clone()], 2, false).is_none());
        let b_ends = holder("b", 258, 65536 + 16384, 65536, 8192, 16384);
        assert!(clone_sources(&b_ends, &[ends_a, b_ends.clone()], 2, false).is_some());
        let ends_64k = holder("a", 257, 65536, 0, 0, 65536);
        let b = holder("b", 258, 1 << 20, 65536, 49152, 16384);
        assert!(clone_sources(&b, &[ends_64k, b.clone()], 2, false).is_some());
    }

    #[test]
    fn the_first_block_shared_with_no_source_is_named() {
        let a = holder("a", 257, 1 << 20, 0, 0, 262144);
        let b = holder("b", 258, 1 << 20, 65536, 8192, 16384);
        let map = |entries: &[(&str, Vec<(u64, Place)>)]| -> Received {
            entries
                .iter()
                .map(|(p, b)| ((0, p.to_string()), b.iter().copied().collect()))
                .collect()
        };
        let blocks = |at: u64, n: u64, bytenr: u64, from: u64| -> Vec<(u64, Place)> {
            (0..n)
                .map(|i| (at + i * 4096, (bytenr, from + i * 4096)))
                .collect()
        };
        // The receiver's places are its own; what counts is that b's blocks are a's.
        let kept = map(&[("a", blocks(0, 64, 7, 0)), ("b", blocks(65536, 4, 7, 8192))]);
        assert_eq!(first_unshared(&b, &[&a], &kept), None);
        let mut tail = blocks(65536, 4, 7, 8192);
        tail[3].1 = (9, 0);
        let copied = map(&[("a", blocks(0, 64, 7, 0)), ("b", tail)]);
        assert_eq!(first_unshared(&b, &[&a], &copied), Some(65536 + 12288));
        let hole = map(&[
            ("a", blocks(0, 64, 7, 0)),
            ("b", blocks(69632, 3, 7, 12288)),
        ]);
        assert_eq!(first_unshared(&b, &[&a], &hole), Some(65536));
    }
}
