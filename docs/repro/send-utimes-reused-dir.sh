#!/bin/bash
# An incremental btrfs send sends the utimes of a directory it has removed, when a new directory
# took the removed one's inode number, and the receive fails. A subvolume hands out inode
# numbers from one past the highest it holds, worked out again at each mount: remove the
# directory with the highest number, mount again, and the next mkdir gets its number, with a new
# generation. When send applies a delayed directory move (apply_dir_move()), it updates the
# times of the directories the moved one left and entered, skipping one that is gone from the
# sent snapshot; it looks that up by inode number alone, finds the new directory, and caches the
# old one's utimes, which goes out after the old directory's rmdir. Kernels that send a
# directory's utimes at once (Debian's linux-source-6.1) pass; 6.12 and 6.18 fail. sendtest's
# case inode-number-reuse does this; cases/src/inode_number_reuse.fix.patch compares the
# generations.
# Run as root; needs btrfs-progs and coreutils.
set -u
work=$(mktemp -d)
trap 'umount "$work/src" "$work/dst" 2>/dev/null; rm -rf "$work"' EXIT

for fs in src dst; do
  truncate -s 1G "$work/$fs.img"
  mkfs.btrfs -q "$work/$fs.img" >/dev/null 2>&1
  mkdir "$work/$fs"
  mount "$work/$fs.img" "$work/$fs"
done
s=$work/src
btrfs -q subvolume create "$s/vol"
# Inodes 257 (x), 258 (x/f), 259 (c), 260 (y), 261 (d).
mkdir "$s/vol/x" && echo data > "$s/vol/x/f"
mkdir "$s/vol/c" "$s/vol/y" "$s/vol/d"
mv "$s/vol/x" "$s/vol/d/x"
btrfs -q subvolume snapshot -r "$s/vol" "$s/parent"

# x waits to move under y2 (renamed, and a later inode than x); d, inode 261, goes.
mv "$s/vol/y" "$s/vol/y2"
mv "$s/vol/d/x" "$s/vol/y2/x"
rmdir "$s/vol/d"
umount "$s" && mount "$work/src.img" "$s"
mkdir "$s/vol/d"
echo "the new d is inode $(stat -c %i "$s/vol/d") (the old d was 261)"
btrfs -q subvolume snapshot -r "$s/vol" "$s/sent"

btrfs send -q -f "$work/full" "$s/parent"
btrfs send -q -f "$work/incremental" -p "$s/parent" "$s/sent"
btrfs receive -f "$work/full" "$work/dst" >/dev/null
btrfs receive -f "$work/incremental" "$work/dst"
echo "receive of the incremental stream: exit $?"
echo "the stream, around the old d's rmdir:"
btrfs receive --dump -f "$work/incremental" | grep -E 'rmdir|utimes +\./sent/o'
