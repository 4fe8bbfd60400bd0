//! Kernels from a tree: `tinyconfig` plus `vm-images/kernel.config`, built out of tree
//! (`make O=`) in the cache, so rebuilds are incremental and the tree stays as it was. A revert
//! patch is applied in a hard-linked copy of the tree, never in the tree itself.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use super::{lock, not_building, short_hash, TreeDoesNotBuild};
use crate::exec::{self, CommandLog};
use crate::progress::Activity;

const FRAGMENT: &str = include_str!("../../../vm-images/kernel.config");

/// A built kernel.
#[derive(Debug, Clone)]
pub struct KernelBuild {
    pub bzimage: PathBuf,
    /// The build directory (`O=`), in the cache.
    pub dir: PathBuf,
    pub log: PathBuf,
}

/// A patch to apply before building, with a name for the copy it goes into.
pub struct Revert<'a> {
    pub name: &'a str,
    pub patch: &'a str,
}

/// Builds a bzImage from `tree`, or from a copy of it with `revert` applied, in the cache.
/// `say` receives progress lines.
pub fn build(tree: &Path, revert: Option<Revert<'_>>, say: &dyn Fn(&str)) -> Result<KernelBuild> {
    build_in(&crate::cache::dir()?, tree, revert, say)
}

/// [`build`], with its build directory (and copies of the tree) under `cache`.
pub fn build_in(
    cache: &Path,
    tree: &Path,
    revert: Option<Revert<'_>>,
    say: &dyn Fn(&str),
) -> Result<KernelBuild> {
    let tree = check_tree(tree)?;
    let base = tree
        .file_name()
        .map_or("linux".into(), |n| n.to_string_lossy().into_owned());
    let (source, label) = match &revert {
        Some(revert) => (
            patched_copy(&tree, revert, &cache.join("trees"), say)?,
            format!("{base}-{}", revert.name),
        ),
        None => (tree.clone(), base),
    };
    let key = short_hash(&[source.as_os_str().as_bytes(), FRAGMENT.as_bytes()]);
    let dir = cache.join("kernel-builds").join(format!("{label}-{key}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = lock(&dir, say)?;
    let log_path = dir.join("build.log");
    let log = CommandLog::create(&dir.join("commands.log"))?;
    let sh = Shell::new()?;
    let what = format!("kernel tree {}", source.display());
    let not_building = not_building(&what, &log_path);

    let stamp = dir.join("sendtest-fragment");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(FRAGMENT) {
        say(&format!(
            "configuring {} (tinyconfig + vm-images/kernel.config) in {}",
            source.display(),
            dir.display()
        ));
        let _ = std::fs::remove_file(&stamp);
        exec::run_to_file(
            cmd!(sh, "make -C {source} O={dir} tinyconfig"),
            &log,
            &log_path,
            &mut |_| {},
        )
        .map_err(&not_building)?;
        let config = dir.join(".config");
        let mut text = std::fs::read_to_string(&config).context("reading .config")?;
        text.push_str(FRAGMENT);
        std::fs::write(&config, text).context("writing .config")?;
        exec::run_to_file(
            cmd!(sh, "make -C {source} O={dir} olddefconfig"),
            &log,
            &log_path,
            &mut |_| {},
        )
        .map_err(&not_building)?;
        let dropped = dropped_options(&std::fs::read_to_string(&config)?);
        if !dropped.is_empty() {
            return Err(TreeDoesNotBuild {
                what,
                log: config,
                tail: format!(
                    "its Kconfig dropped {} from vm-images/kernel.config",
                    dropped.join(", ")
                ),
            }
            .into());
        }
        std::fs::write(&stamp, FRAGMENT)?;
    }

    let jobs = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .to_string();
    let started = Instant::now();
    let activity = Activity::start(&format!(
        "building {} (log: {})",
        source.display(),
        log_path.display()
    ));
    let mut tick = |elapsed: Duration| {
        let compiled = std::fs::read_to_string(&log_path)
            .map_or(0, |t| t.lines().filter(|l| l.starts_with("  CC")).count());
        activity.update(&format!(
            "{}s, {compiled} files compiled so far",
            elapsed.as_secs()
        ));
    };
    exec::run_to_file(
        cmd!(sh, "make -C {source} O={dir} -j{jobs} bzImage"),
        &log,
        &log_path,
        &mut tick,
    )
    .map_err(&not_building)?;
    drop(activity);
    say(&format!(
        "built {} in {:.0}s",
        source.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(KernelBuild {
        bzimage: dir.join("arch/x86/boot/bzImage"),
        dir,
        log: log_path,
    })
}

/// The canonical path of `tree`, if it is a kernel tree.
fn check_tree(tree: &Path) -> Result<PathBuf> {
    let canonical = tree.canonicalize().with_context(|| {
        format!(
            "kernel tree {} does not exist: pass --kernel-tree with a Linux source tree",
            tree.display()
        )
    })?;
    for marker in ["Makefile", "Kconfig", "arch/x86/Makefile", "fs/btrfs"] {
        if !canonical.join(marker).exists() {
            bail!(
                "{} is not a Linux kernel tree (no {marker}): pass --kernel-tree with one",
                tree.display()
            );
        }
    }
    Ok(canonical)
}

/// Options the fragment sets to `y` that did not end up as `y` in `config`.
fn dropped_options(config: &str) -> Vec<String> {
    FRAGMENT
        .lines()
        .filter_map(|line| line.strip_suffix("=y"))
        .filter(|option| option.starts_with("CONFIG_"))
        .filter(|option| !config.lines().any(|l| l.strip_suffix("=y") == Some(option)))
        .map(String::from)
        .collect()
}

/// A fresh copy of `tree` under `trees_dir` with `revert` applied. Files are hard links where
/// the filesystem allows, and each file the patch touches is first replaced by a copy of its
/// own, so the patch cannot reach the original tree through a link.
fn patched_copy(
    tree: &Path,
    revert: &Revert<'_>,
    trees_dir: &Path,
    say: &dyn Fn(&str),
) -> Result<PathBuf> {
    let name = tree
        .file_name()
        .map_or("linux".into(), |n| n.to_string_lossy().into_owned());
    let copy = trees_dir.join(format!("{name}-{}", revert.name));
    std::fs::create_dir_all(trees_dir)?;
    let _lock = lock(&copy, say)?;
    let sh = Shell::new()?;
    let log = CommandLog::discard();
    if copy.exists() {
        std::fs::remove_dir_all(&copy)
            .with_context(|| format!("removing the old copy {}", copy.display()))?;
    }
    say(&format!(
        "copying {} to {} to apply {}",
        tree.display(),
        copy.display(),
        revert.name
    ));
    if exec::run(cmd!(sh, "cp -al {tree} {copy}"), &log).is_err() {
        let _ = std::fs::remove_dir_all(&copy);
        // Another filesystem: hard links are impossible, so copy the data.
        exec::run(cmd!(sh, "cp -a {tree} {copy}"), &log)?;
    }
    for file in patched_files(revert.patch) {
        let path = copy.join(&file);
        let data = std::fs::read(&path)
            .with_context(|| format!("{} is in the patch but not in the tree", file))?;
        let fresh = path.with_extension("sendtest-unlinked");
        std::fs::write(&fresh, data)?;
        std::fs::rename(&fresh, &path)?;
    }
    let patch_file = trees_dir.join(format!("{name}-{}.patch", revert.name));
    std::fs::write(&patch_file, revert.patch)?;
    exec::run(
        cmd!(
            sh,
            "patch -p1 -d {copy} --forward --batch --no-backup-if-mismatch -i {patch_file}"
        ),
        &log,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "the patch {} does not apply to {}: {}",
            revert.name,
            tree.display(),
            e.stderr_tail()
        )
    })?;
    Ok(copy)
}

/// The files a unified diff changes, relative to the tree (`+++ b/fs/btrfs/send.c`).
fn patched_files(patch: &str) -> Vec<String> {
    patch
        .lines()
        .filter_map(|l| l.strip_prefix("+++ "))
        .map(|path| path.split('\t').next().unwrap_or(path))
        .map(|path| {
            path.split_once('/')
                .map_or(path, |(_, rest)| rest)
                .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_files_a_patch_changes() {
        let patch = "--- a/fs/btrfs/send.c\n+++ b/fs/btrfs/send.c\n@@ -1 +1 @@\n--- a/fs/btrfs/ctree.c\t2026\n+++ b/fs/btrfs/ctree.c\t2026\n";
        assert_eq!(
            patched_files(patch),
            ["fs/btrfs/send.c", "fs/btrfs/ctree.c"]
        );
    }

    #[test]
    fn options_the_kconfig_dropped_are_named() {
        let all: String = FRAGMENT
            .lines()
            .filter(|l| l.ends_with("=y"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(dropped_options(&all).is_empty());
        let without_btrfs = all.replace("CONFIG_BTRFS_FS=y\n", "# CONFIG_BTRFS_FS is not set\n");
        assert_eq!(dropped_options(&without_btrfs), ["CONFIG_BTRFS_FS"]);
    }

    #[test]
    fn a_directory_that_is_not_a_kernel_tree_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_tree(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("is not a Linux kernel tree (no Makefile)"),
            "{err}"
        );
        let err = check_tree(Path::new("/nonexistent/linux"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
