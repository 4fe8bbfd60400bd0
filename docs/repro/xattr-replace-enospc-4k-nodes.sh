#!/bin/bash
# btrfs, 4 KiB nodes: replacing a directory's 2,031-byte xattr with a 2,300-byte one fails with
# ENOSPC, gigabytes free, once the directory has a few entries in the leaf beside the xattr.
# No send or receive involved; receive meets it when a stream replaces such an xattr
# (docs/random.md). Run as root; needs btrfs-progs and attr. Prints the entry counts that fail.
set -u
old=$(head -c 2031 /dev/zero | tr '\0' a)
new=$(head -c 2300 /dev/zero | tr '\0' b)
work=$(mktemp -d)
trap 'umount "$work/m" 2>/dev/null; rm -rf "$work"' EXIT
truncate -s 1G "$work/img"
mkdir "$work/m"
failed=0
for n in $(seq 0 2 40); do
  mkfs.btrfs -q -f -n 4096 "$work/img" >/dev/null 2>&1
  mount "$work/img" "$work/m"
  mkdir "$work/m/d"
  setfattr -n user.big -v "$old" "$work/m/d"
  for i in $(seq 1 "$n"); do : >"$work/m/d/file$i"; done
  sync
  if ! err=$(setfattr -n user.big -v "$new" "$work/m/d" 2>&1); then
    echo "$n entries: $err ($(df --output=avail -BM "$work/m" | tail -1 | tr -d ' ') free)"
    failed=1
  fi
  umount "$work/m"
done
[ $failed = 1 ] && echo "reproduced: ENOSPC with room to spare" || echo "not reproduced"
