#!/bin/bash
# sendtest rename-dependencies: 75 operations and 2 snapshots that fail:
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
mkdir dest-waits 2>/dev/null
mkdir rmdir-after-move 2>/dev/null
mkdir dest-freed 2>/dev/null
mkdir rmdir-not-yet-empty 2>/dev/null
mkdir orphanized-ancestor 2>/dev/null
mkdir orphanized-dir 2>/dev/null
mkdir links-renamed 2>/dev/null
mkdir swap-parent-child 2>/dev/null
mkdir dest-waits/b 2>/dev/null
[ -p dest-waits/b/fb ] || xfs_io -f -c 'pwrite -q -S 0x62 0 4096' dest-waits/b/fb 2>/dev/null
mkdir dest-waits/a 2>/dev/null
[ -p dest-waits/a/fa ] || xfs_io -f -c 'pwrite -q -S 0x61 0 4096' dest-waits/a/fa 2>/dev/null
mkdir dest-waits/c 2>/dev/null
mkdir rmdir-after-move/a 2>/dev/null
mkdir rmdir-after-move/a/b 2>/dev/null
[ -p rmdir-after-move/a/b/f ] || xfs_io -f -c 'pwrite -q -S 0x66 0 4096' rmdir-after-move/a/b/f 2>/dev/null
mkdir rmdir-after-move/c 2>/dev/null
mkdir dest-freed/w 2>/dev/null
mkdir dest-freed/a 2>/dev/null
[ -p dest-freed/a/fa ] || xfs_io -f -c 'pwrite -q -S 0x61 0 4096' dest-freed/a/fa 2>/dev/null
mkdir dest-freed/b 2>/dev/null
mkdir dest-freed/z 2>/dev/null
mkdir rmdir-not-yet-empty/a 2>/dev/null
mkdir rmdir-not-yet-empty/tmp 2>/dev/null
mkdir rmdir-not-yet-empty/del 2>/dev/null
mv -T rmdir-not-yet-empty/tmp rmdir-not-yet-empty/del/tmp 2>/dev/null
mkdir rmdir-not-yet-empty/a/c 2>/dev/null
mkdir rmdir-not-yet-empty/del/x 2>/dev/null
[ -p orphanized-ancestor/f ] || xfs_io -f -c 'pwrite -q -S 0x66 0 4096' orphanized-ancestor/f 2>/dev/null
mkdir orphanized-ancestor/a 2>/dev/null
mv -T orphanized-ancestor/f orphanized-ancestor/a/f 2>/dev/null
ln orphanized-ancestor/a/f orphanized-ancestor/a/g 2>/dev/null
mkdir orphanized-dir/p 2>/dev/null
mkdir orphanized-dir/q 2>/dev/null
[ -p orphanized-dir/f ] || xfs_io -f -c 'pwrite -q -S 0x66 0 4096' orphanized-dir/f 2>/dev/null
mkdir orphanized-dir/p/D 2>/dev/null
[ -p orphanized-dir/q/g ] || xfs_io -f -c 'pwrite -q -S 0x67 0 4096' orphanized-dir/q/g 2>/dev/null
ln orphanized-dir/q/g orphanized-dir/q/h 2>/dev/null
[ -p links-renamed/f ] || xfs_io -f -c 'pwrite -q -S 0x66 0 4096' links-renamed/f 2>/dev/null
ln links-renamed/f links-renamed/a-long-name 2>/dev/null
[ -p links-renamed/g ] || xfs_io -f -c 'pwrite -q -S 0x67 0 4096' links-renamed/g 2>/dev/null
ln links-renamed/g links-renamed/b 2>/dev/null
mkdir swap-parent-child/a 2>/dev/null
mkdir swap-parent-child/a/b 2>/dev/null
[ -p swap-parent-child/a/b/f ] || xfs_io -f -c 'pwrite -q -S 0x66 0 4096' swap-parent-child/a/b/f 2>/dev/null
[ -p swap-parent-child/a/g ] || xfs_io -f -c 'pwrite -q -S 0x67 0 4096' swap-parent-child/a/g 2>/dev/null
btrfs -q subvolume snapshot -r "$work/src/vol" "$work/src/snap0"
mv -T dest-waits/c dest-waits/c2 2>/dev/null
mv -T dest-waits/b dest-waits/c2/b 2>/dev/null
mv -T dest-waits/a dest-waits/b 2>/dev/null
mv -T rmdir-after-move/c rmdir-after-move/x 2>/dev/null
mv -T rmdir-after-move/a/b rmdir-after-move/x/b 2>/dev/null
rmdir rmdir-after-move/a 2>/dev/null
mv -T dest-freed/z dest-freed/z2 2>/dev/null
mv -T dest-freed/w dest-freed/z2/w 2>/dev/null
rmdir dest-freed/b 2>/dev/null
mv -T dest-freed/a dest-freed/b 2>/dev/null
mv -T rmdir-not-yet-empty/a/c rmdir-not-yet-empty/c 2>/dev/null
mv -T rmdir-not-yet-empty/del/x rmdir-not-yet-empty/a/x 2>/dev/null
mv -T rmdir-not-yet-empty/del/tmp rmdir-not-yet-empty/c/tmp 2>/dev/null
rmdir rmdir-not-yet-empty/del 2>/dev/null
mv -T orphanized-ancestor/a orphanized-ancestor/b 2>/dev/null
ln orphanized-ancestor/b/f orphanized-ancestor/a 2>/dev/null
unlink orphanized-ancestor/b/f 2>/dev/null
unlink orphanized-ancestor/b/g 2>/dev/null
mv -T orphanized-dir/p/D orphanized-dir/p/E 2>/dev/null
unlink orphanized-dir/q/h 2>/dev/null
ln orphanized-dir/f orphanized-dir/p/D 2>/dev/null
ln orphanized-dir/f orphanized-dir/q/h 2>/dev/null
unlink links-renamed/a-long-name 2>/dev/null
ln links-renamed/f links-renamed/x 2>/dev/null
unlink links-renamed/b 2>/dev/null
ln links-renamed/g links-renamed/a-longer-name 2>/dev/null
mv -T swap-parent-child/a/b swap-parent-child/b 2>/dev/null
mv -T swap-parent-child/a swap-parent-child/b/a 2>/dev/null
mv -T swap-parent-child/b/f swap-parent-child/b/a/f 2>/dev/null
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
