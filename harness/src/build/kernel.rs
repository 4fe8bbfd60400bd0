//! Kernels from a tree: `tinyconfig` plus `vm-images/kernel.config` plus what the user adds
//! (`--config`, `--configitem`, `--debug`), built out of tree (`make O=`) in the cache from a
//! mirror of the tree's sources ([`super::mirror`]), so any tree builds as it is (built in
//! place, a worktree, with uncommitted edits), rebuilds are incremental, and the tree is only
//! read. A revert patch is applied in a mirror of its own, never in the tree.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use super::{lock, mirror, not_building, short_hash, TreeDoesNotBuild};
use crate::exec::{self, CommandLog};
use crate::preflight::find_in_path;
use crate::progress::Activity;

const FRAGMENT: &str = include_str!("../../../vm-images/kernel.config");
/// `--debug`: lockdep, list debugging, btrfs's debug checks.
pub const DEBUG_FRAGMENT: &str = include_str!("../../../vm-images/debug.config");

/// What a kernel build adds to tinyconfig and `vm-images/kernel.config`, in order: fragments
/// (`--config FILE`, `--debug`) and single options (`--configitem CONFIG_X=y`). Part of the
/// build's cache key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraConfig {
    text: String,
}

impl ExtraConfig {
    /// Adds a fragment: `CONFIG_X=…` and `# CONFIG_X is not set` lines, and comments.
    pub fn fragment(&mut self, name: &str, text: &str) -> Result<()> {
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if !(line.is_empty() || line.starts_with('#') || is_option(line)) {
                bail!(
                    "{name}:{}: `{line}` is not a config option: write CONFIG_NAME=value or `# CONFIG_NAME is not set`",
                    number + 1
                );
            }
        }
        self.text.push_str(text.trim_end());
        self.text.push('\n');
        Ok(())
    }

    /// Adds one option, `CONFIG_X=value`.
    pub fn item(&mut self, item: &str) -> Result<()> {
        if !is_option(item) {
            bail!("`{item}` is not a config option: write --configitem CONFIG_NAME=value");
        }
        self.text.push_str(item);
        self.text.push('\n');
        Ok(())
    }

    /// Everything added, as one fragment.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// `CONFIG_X=value`.
fn is_option(line: &str) -> bool {
    line.split_once('=').is_some_and(|(name, _)| {
        name.strip_prefix("CONFIG_").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
    })
}

/// What building a kernel needs on the host, with the package that has each.
const BUILD_PROGRAMS: &[(&str, &str)] = &[
    ("make", "make"),
    ("gcc", "gcc"),
    ("flex", "flex"),
    ("bison", "bison"),
    ("bc", "bc"),
];
/// objtool, which x86-64 builds need, reads ELF with libelf.
const BUILD_HEADERS: &[(&str, &str)] = &[("/usr/include/gelf.h", "libelf-dev")];

/// Why this host cannot build a kernel, naming what to install; an environment error, never
/// the tree's fault.
fn check_build_tools() -> Result<()> {
    let mut missing: Vec<&str> = BUILD_PROGRAMS
        .iter()
        .filter(|(program, _)| find_in_path(program).is_none())
        .map(|(_, package)| *package)
        .collect();
    missing.extend(
        BUILD_HEADERS
            .iter()
            .filter(|(header, _)| !Path::new(header).exists())
            .map(|(_, package)| *package),
    );
    if !missing.is_empty() {
        bail!(
            "building a kernel needs {}: `apt-get install {}` (or run `bash .ci/kernel-tree` once as root)",
            missing.join(", "),
            missing.join(" ")
        );
    }
    Ok(())
}

/// A built kernel.
#[derive(Debug, Clone)]
pub struct KernelBuild {
    pub bzimage: PathBuf,
    /// The build directory (`O=`), in the cache.
    pub dir: PathBuf,
    /// The mirror of the tree it compiled.
    pub source: PathBuf,
    pub log: PathBuf,
}

/// A patch to apply before building, with a name for the mirror it goes into. Builds with one
/// name share a mirror and a build directory, so a different patch under the same name (the
/// mutants of `sendtest mutate`, an empty one for the unmutated tree) rebuilds incrementally.
pub struct Revert<'a> {
    pub name: &'a str,
    pub patch: &'a str,
}

/// Builds a bzImage from `tree` (or, with `revert`, from the tree with that patch applied) and
/// `extra` configuration, in the cache. `say` receives progress lines.
pub fn build(
    tree: &Path,
    revert: Option<Revert<'_>>,
    extra: &ExtraConfig,
    say: &dyn Fn(&str),
) -> Result<KernelBuild> {
    build_in(&crate::cache::dir()?, tree, revert, extra, say)
}

/// [`build`], with its build directory (and mirrors of the tree) under `cache`.
pub fn build_in(
    cache: &Path,
    tree: &Path,
    revert: Option<Revert<'_>>,
    extra: &ExtraConfig,
    say: &dyn Fn(&str),
) -> Result<KernelBuild> {
    let tree = check_tree(tree)?;
    check_build_tools()?;
    let base = tree
        .file_name()
        .map_or("linux".into(), |n| n.to_string_lossy().into_owned());
    let label = match &revert {
        Some(revert) => format!("{base}-{}", revert.name),
        None => base,
    };
    // One mirror per tree (and revert), kept between runs so that a rebuild is incremental.
    let source = cache.join("mirrors").join(format!(
        "{label}-{}",
        short_hash(&[tree.as_os_str().as_bytes()])
    ));
    std::fs::create_dir_all(cache.join("mirrors"))?;
    let _mirror_lock = lock(&source, say)?;
    let synced = mirror::sync(&tree, &source)
        .with_context(|| format!("mirroring {} into {}", tree.display(), source.display()))?;
    if synced.copied + synced.removed > 0 {
        say(&format!(
            "mirrored {}: {} of {} source files changed, {} removed",
            tree.display(),
            synced.copied,
            synced.files,
            synced.removed
        ));
    }
    if let Some(revert) = revert.as_ref().filter(|r| !r.patch.is_empty()) {
        apply_patch(&source, revert, &tree)?;
    }
    let config_text = format!("{FRAGMENT}{}", extra.text());
    let key = short_hash(&[source.as_os_str().as_bytes(), config_text.as_bytes()]);
    let dir = cache.join("kernel-builds").join(format!("{label}-{key}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = lock(&dir, say)?;
    let log_path = dir.join("build.log");
    let log = CommandLog::create(&dir.join("commands.log"))?;
    let sh = Shell::new()?;
    let what = format!("kernel tree {}", tree.display());
    // Error lines name the files as the user knows them: in the tree, not in the mirror.
    let not_building = not_building(&what, &log_path, (&source, &tree));

    // A fresh log per build, so that its error lines are this build's. Each make gets
    // LC_CTYPE=C (kbuild unexports LC_ALL): the compiler's messages in plain ASCII, whatever
    // the user's locale.
    let _ = std::fs::remove_file(&log_path);
    let stamp = dir.join("sendtest-fragment");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(config_text.as_str()) {
        say(&format!(
            "configuring {} (tinyconfig + vm-images/kernel.config{}) in {}",
            tree.display(),
            if extra.text().is_empty() {
                ""
            } else {
                " + your options"
            },
            dir.display()
        ));

        let _ = std::fs::remove_file(&stamp);
        exec::run_to_file(
            cmd!(sh, "make -C {source} O={dir} tinyconfig")
                .env("LC_CTYPE", "C")
                .env("LC_MESSAGES", "C"),
            &log,
            &log_path,
            &mut |_| {},
        )
        .map_err(&not_building)?;
        let config = dir.join(".config");
        let mut text = std::fs::read_to_string(&config).context("reading .config")?;
        text.push_str(&config_text);
        std::fs::write(&config, text).context("writing .config")?;
        exec::run_to_file(
            cmd!(sh, "make -C {source} O={dir} olddefconfig")
                .env("LC_CTYPE", "C")
                .env("LC_MESSAGES", "C"),
            &log,
            &log_path,
            &mut |_| {},
        )
        .map_err(&not_building)?;
        let dropped = dropped_options(&config_text, &std::fs::read_to_string(&config)?);
        if !dropped.is_empty() {
            return Err(TreeDoesNotBuild {
                what,
                log: config,
                tail: format!(
                    "its Kconfig dropped {} (missing dependencies, or no such option in this tree)",
                    dropped.join(", ")
                ),
            }
            .into());
        }
        std::fs::write(&stamp, &config_text)?;
    }

    let jobs = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .to_string();
    let started = Instant::now();
    let activity = Activity::start(&format!(
        "building {} (log: {})",
        tree.display(),
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
        cmd!(sh, "make -C {source} O={dir} -j{jobs} bzImage")
            .env("LC_CTYPE", "C")
            .env("LC_MESSAGES", "C"),
        &log,
        &log_path,
        &mut tick,
    )
    .map_err(&not_building)?;
    drop(activity);
    say(&format!(
        "built {} in {:.0}s",
        tree.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(KernelBuild {
        bzimage: dir.join("arch/x86/boot/bzImage"),
        dir,
        source,
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

/// Options `fragment` sets that `config` (after olddefconfig) does not have as set: a value
/// the tree's Kconfig dropped or changed.
fn dropped_options(fragment: &str, config: &str) -> Vec<String> {
    let mut dropped: Vec<String> = Vec::new();
    for line in fragment.lines().map(str::trim) {
        let Some((name, _)) = line.split_once('=').filter(|_| is_option(line)) else {
            continue;
        };
        // The last setting of an option is the one that counts.
        let last = fragment
            .lines()
            .map(str::trim)
            .rfind(|l| l.split_once('=').is_some_and(|(n, _)| n == name));
        if last == Some(line)
            && !config.lines().any(|l| l == line)
            && !dropped.iter().any(|d| d == name)
        {
            dropped.push(name.to_string());
        }
    }
    dropped
}

/// Applies `revert` in `mirror`, a fresh mirror of `tree` (the sync has just put back every
/// file an earlier patch changed, since their mtimes differ from the tree's).
fn apply_patch(mirror: &Path, revert: &Revert<'_>, tree: &Path) -> Result<()> {
    let sh = Shell::new()?;
    let patch_file = super::sibling(mirror, "patch");
    std::fs::write(&patch_file, revert.patch)?;
    exec::run(
        cmd!(
            sh,
            "patch -p1 -d {mirror} --forward --batch --no-backup-if-mismatch -i {patch_file}"
        ),
        &CommandLog::discard(),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "the patch {} does not apply to {}: {}",
            revert.name,
            tree.display(),
            e.stderr_tail()
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_the_kconfig_dropped_are_named() {
        let all: String = FRAGMENT
            .lines()
            .filter(|l| l.ends_with("=y"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(dropped_options(FRAGMENT, &all).is_empty());
        let without_btrfs = all.replace("CONFIG_BTRFS_FS=y\n", "# CONFIG_BTRFS_FS is not set\n");
        assert_eq!(
            dropped_options(FRAGMENT, &without_btrfs),
            ["CONFIG_BTRFS_FS"]
        );
        let later = format!("{FRAGMENT}CONFIG_BTRFS_ASSERT=n\nCONFIG_LOG_BUF_SHIFT=16\n");
        let config = all.replace("CONFIG_BTRFS_ASSERT=y\n", "CONFIG_BTRFS_ASSERT=n\n");
        assert_eq!(
            dropped_options(&later, &config),
            ["CONFIG_LOG_BUF_SHIFT"],
            "the last setting of an option counts"
        );
    }

    #[test]
    fn extra_options_are_checked_as_they_are_given() {
        let mut extra = ExtraConfig::default();
        extra.item("CONFIG_BTRFS_DEBUG=y").unwrap();
        extra.fragment("debug", DEBUG_FRAGMENT).unwrap();
        assert!(extra
            .text()
            .starts_with("CONFIG_BTRFS_DEBUG=y\n# `--debug`"));
        let err = extra.item("BTRFS_DEBUG=y").unwrap_err().to_string();
        assert!(err.contains("is not a config option"), "{err}");
        let err = extra
            .fragment("my.config", "CONFIG_A=y\nbogus line\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("my.config:2: `bogus line`"), "{err}");
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
