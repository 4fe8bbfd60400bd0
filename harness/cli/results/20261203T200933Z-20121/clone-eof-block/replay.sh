#!/bin/bash
# sendtest clone-eof-block: 6 operations and 2 snapshots that fail:
#   every received snapshot matched its source
# Run as root. Needs btrfs-progs, xfsprogs (xfs_io), attr (setfattr, getfattr), coreutils,
# findutils and diffutils. SENDTEST=/path/to/sendtest compares with its manifests instead.
set -u
identity() {
  local uuid received
  uuid=$(btrfs subvolume show "$1" | awk '$1 == "UUID:" {print $2}')
  received=$(btrfs subvolume show "$2" | awk '$1 == "Received" && $2 == "UUID:" {print $3}')
  [ "$received" = "$uuid" ] || echo "$2: received UUID $received, not the source's $uuid"
  [ "$(btrfs property get -ts "$2" ro)" = ro=true ] || echo "$2: not read-only"
}
attributes() {
  (cd "$1" && stat -c '%N %F mode=%a uid=%u gid=%g size=%s rdev=%t:%T links=%h atime=%.9X' . &&
    find . -mindepth 1 -print0 | sort -z | xargs -0 -r stat -c '%N %F mode=%a uid=%u gid=%g size=%s rdev=%t:%T links=%h mtime=%.9Y atime=%.9X')
}
xattrs() {
  (cd "$1" && find . -print0 | sort -z | xargs -0 getfattr -h -d -m - 2>/dev/null)
}
compare() {
  if [ -n "${SENDTEST:-}" ]; then
    local differs=0
  "$SENDTEST" manifest --all-fields --ignore ctime --ignore layout --ignore .:mtime --compare "$1" "$2" || differs=1
    identity "$1" "$2" | grep . && differs=1
    return $differs
  fi
  local differs=0 f
  diff <(attributes "$1") <(attributes "$2") || differs=1
  while IFS= read -r -d '' f; do
    cmp -s "$1/$f" "$2/$f" || { echo "$f: data differs"; differs=1; }
  done < <(cd "$1" && find . -type f -print0)
  diff <(xattrs "$1") <(xattrs "$2") || differs=1
  identity "$1" "$2" | grep . && differs=1
  [ $differs = 0 ] && echo "no differences: $2"
  return $differs
}
held=()
work=$(mktemp -d)
truncate -s 4G "$work/src.img" "$work/dst.img"
src=$(losetup -f --show "$work/src.img"); dst=$(losetup -f --show "$work/dst.img")
mkfs.btrfs -q -f "$src" >/dev/null; mkfs.btrfs -q -f "$dst" >/dev/null
mkdir "$work/src" "$work/dst"; mount "$src" "$work/src"; mount "$dst" "$work/dst"
btrfs -q subvolume create "$work/src/vol"
cd "$work/src/vol"
[ -p src ] || xfs_io -f -c 'pwrite -q -S 0x73 0 100000' src 2>/dev/null
{ [ -f src ] && cp --reflink=always --no-preserve=all src dst; } 2>/dev/null
[ -p dst ] || xfs_io -f -c 'pwrite -q -S 0x64 200000 4096' dst 2>/dev/null
btrfs -q subvolume snapshot -r "$work/src/vol" "$work/src/snap0"
[ -p src2 ] || xfs_io -f -c 'pwrite -q -S 0x73 0 100000' src2 2>/dev/null
{ [ -f src2 ] && cp --reflink=always --no-preserve=all src2 dst2; } 2>/dev/null
[ -p dst2 ] || xfs_io -f -c 'pwrite -q -S 0x64 200000 4096' dst2 2>/dev/null
btrfs -q subvolume snapshot -r "$work/src/vol" "$work/src/snap1"
cd /
status=0
btrfs -q send -f "$work/s0" "$work/src/snap0" || status=1
btrfs -q receive -f "$work/s0" "$work/dst" || status=1
compare "$work/src/snap0" "$work/dst/snap0" || status=1
btrfs -q send -f "$work/s1" -p "$work/src/snap0" "$work/src/snap1" || status=1
btrfs -q receive -f "$work/s1" "$work/dst" || status=1
compare "$work/src/snap1" "$work/dst/snap1" || status=1
for fd in "${held[@]}"; do exec {fd}<&-; done
umount "$work/src" "$work/dst"; losetup -d "$src" "$dst"; rm -rf "$work"
[ $status = 0 ] && echo 'passed: the failure did not reproduce' || echo 'FAILED: reproduced'
exit $status
