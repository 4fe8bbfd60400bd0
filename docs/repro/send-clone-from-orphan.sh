#!/bin/bash
# btrfs send takes an inode with no links as a clone source and fails with ENOENT. A snapshot
# made writable for a while (btrfs property set ro false) keeps a file unlinked there while it
# is open as an orphan: an inode with no link. When the orphan shares an extent with a file that
# send sends, find_extent_clone() may choose it as the clone source, and then no path is found
# for it (get_cur_path() in the sent snapshot, get_inode_path() in the parent): the whole send
# fails. A full send fails when the orphan shares an extent with a file of a higher inode number
# (a reflinked copy); an incremental send fails when its parent holds the orphan and the sent
# snapshot still holds the file (one inode, the same extents). sendtest's case clone-from-orphan
# does both; cases/src/clone_from_orphan.fix.patch skips a clone source with no links.
# Run as root; needs btrfs-progs, xfsprogs (xfs_io) and coreutils.
set -u
work=$(mktemp -d)
trap 'exec 71<&- 72<&- 2>/dev/null; umount "$work"/m* 2>/dev/null; rm -rf "$work"' EXIT

# A filesystem with a subvolume holding `file` (64 KiB of data), with a reflinked `copy` of it
# when $1 is "copy", snapshotted twice, and `file` made an orphan in the first snapshot (opened
# on descriptor $2, unlinked, and held open across the sends).
setup() {
  local m=$work/m$2
  truncate -s 1G "$work/img$2"
  mkfs.btrfs -q "$work/img$2" >/dev/null 2>&1
  mkdir "$m"
  mount "$work/img$2" "$m"
  btrfs -q subvolume create "$m/vol"
  xfs_io -f -c "pwrite -q 0 65536" "$m/vol/file"
  [ "$1" = copy ] && cp --reflink=always "$m/vol/file" "$m/vol/copy"
  btrfs -q subvolume snapshot -r "$m/vol" "$m/snap1"
  btrfs -q subvolume snapshot -r "$m/vol" "$m/snap2"
  btrfs property set "$m/snap1" ro false
  eval "exec $2<\"\$m/snap1/file\""
  unlink "$m/snap1/file"
  btrfs property set "$m/snap1" ro true
  btrfs inspect-internal dump-tree -t "$(btrfs inspect-internal rootid "$m/snap1")" "$work/img$2" |
    grep -q "ORPHAN ORPHAN_ITEM" && echo "snap1 holds an orphan inode"
}

echo "1. The orphan shares its extent with a later inode, the copy:"
setup copy 71
btrfs send -q -f "$work/full" "$work/m71/snap1"
echo "full send of snap1: exit $?"
btrfs send -q -f "$work/plain" "$work/m71/snap2"
echo "full send of snap2, which holds no orphan: exit $?"

echo "2. No copy; the parent holds the orphan, the sent snapshot the file:"
setup none 72
btrfs send -q -f "$work/full2" "$work/m72/snap1"
echo "full send of snap1: exit $?"
btrfs send -q -f "$work/incremental" -p "$work/m72/snap1" "$work/m72/snap2"
echo "incremental send of snap2 from snap1: exit $?"
