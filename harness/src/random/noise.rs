//! The concurrent variant's noise: operations and balance in a sibling subvolume while a
//! chain sends.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use xshell::cmd;

use super::ops;

/// Operations from `seed`, over and over, in `dir` until `stop`, and a balance every 200 of them
/// while the filesystem is less than half full. Returns how many operations ran.
pub(super) fn make_noise(
    log: &crate::exec::CommandLog,
    dir: &Path,
    seed: u64,
    stop: &AtomicBool,
) -> usize {
    let list = ops::generate(seed, 200, 0);
    let Ok(sh) = xshell::Shell::new() else {
        return 0;
    };
    let mut done = 0;
    for op in list.iter().cycle() {
        if stop.load(Ordering::Relaxed) || crate::interrupt::requested() {
            break;
        }
        let _ = op.apply(dir);
        done += 1;
        if done % 200 == 0 && half_empty(dir) {
            // Balance may refuse while another runs or the filesystem is busy; either is fine.
            let _ = crate::exec::output(
                cmd!(sh, "btrfs balance start -dusage=90 -musage=90 {dir}"),
                log,
            );
        }
        if done % 200 == 0 {
            // Start over on a clean slate, so the noise keeps changing the tree.
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let _ = if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
    }
    done
}

fn half_empty(path: &Path) -> bool {
    nix::sys::statvfs::statvfs(path).is_ok_and(|s| s.blocks_available() * 2 > s.blocks())
}
