//! Line and branch coverage of send and receive (`sendtest coverage`): how the builds are
//! instrumented, where the counters of a run go, and how they become one lcov tracefile.
//!
//! - The kernel is built with `CONFIG_GCOV_KERNEL` and `GCOV_PROFILE := y` in `fs/btrfs/Makefile`
//!   only (in the build's mirror of the tree, never in the tree), so the rest of the kernel runs
//!   at full speed under TCG. Each guest copies `/sys/kernel/debug/gcov` into its case's results
//!   before it powers off.
//! - btrfs-progs is built with `--coverage`; each `btrfs` process writes its counters under
//!   `GCOV_PREFIX` (the run's results, or the case's in a guest) when it exits.
//! - On the host, `lcov --capture` reads each set of counters beside a copy of the build's
//!   `.gcno` notes; the tracefiles are merged and their paths mapped back to the tree.

pub mod report;
pub mod tracefile;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::build::kernel::ExtraConfig;
use crate::exec::{self, CommandLog};
pub use tracefile::Tracefile;

/// Where a case's counters go in its results directory: the kernel's and btrfs-progs', each as
/// a tree of `.gcda` files under the absolute path of the build they belong to.
pub const KERNEL_DATA: &str = "coverage/kernel";
pub const PROGS_DATA: &str = "coverage/progs";

/// The builds' name: their mirrors and build directories are kept apart from plain builds.
pub const VARIANT: &str = "coverage";
/// The line that makes kbuild profile one directory.
const PROFILE_LINE: &str = "GCOV_PROFILE := y";
const KERNEL_MAKEFILE: &str = "fs/btrfs/Makefile";
/// `make` arguments of a btrfs-progs build with coverage.
pub const PROGS_MAKE_ARGS: &[&str] = &["EXTRA_CFLAGS=--coverage", "EXTRA_LDFLAGS=--coverage"];

/// The patch that profiles `fs/btrfs` in a kernel tree, and the options that collect it.
pub fn kernel_variant(tree: &Path) -> Result<(String, ExtraConfig)> {
    let makefile = std::fs::read_to_string(tree.join(KERNEL_MAKEFILE)).with_context(|| {
        format!(
            "{} is not a Linux kernel tree (no {KERNEL_MAKEFILE}): pass --kernel-tree with one",
            tree.display()
        )
    })?;
    let profiled = format!("{PROFILE_LINE}\n{makefile}");
    let patch = crate::mutate::mutant::unified_diff(KERNEL_MAKEFILE, &makefile, &profiled);
    let mut config = ExtraConfig::default();
    for item in ["CONFIG_DEBUG_FS=y", "CONFIG_GCOV_KERNEL=y"] {
        config.item(item)?;
    }
    Ok((patch, config))
}

/// Copies every `.gcda` file under `from` (the guest's `/sys/kernel/debug/gcov`) to the same
/// place under `to`; returns how many. The `.gcno` links beside them are left.
pub fn copy_counters(from: &Path, to: &Path) -> Result<usize> {
    let mut copied = 0;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            copied += copy_counters(&path, &to.join(entry.file_name()))?;
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "gcda") {
            std::fs::create_dir_all(to)?;
            // debugfs reports a size of 0: read to the end rather than by the size.
            let data =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            std::fs::write(to.join(entry.file_name()), data)?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// A build whose counters are captured: the kernel's or btrfs-progs'.
pub struct Build {
    /// `kernel` or `btrfs-progs`: the tracefile's name.
    pub label: &'static str,
    /// Where each case keeps this build's counters: [`KERNEL_DATA`] or [`PROGS_DATA`].
    pub data: &'static str,
    /// Where its objects and `.gcno` notes are.
    pub objects: PathBuf,
    /// The copy of the tree it compiled (paths in the notes point there).
    pub sources: PathBuf,
    /// The user's tree, which the report names.
    pub tree: PathBuf,
}

/// A build's counters over a whole run, in one tracefile.
pub struct Captured {
    pub tracefile: Tracefile,
    /// Where it was written: `<run>/coverage/<label>.info`.
    pub info: PathBuf,
}

/// Captures and merges the counters every case of the run at `run` kept for `build`, and
/// writes the tracefile into `<run>/coverage/`. An error if no case kept any.
pub fn collect(run: &Path, build: &Build, log: &CommandLog) -> Result<Captured> {
    let tracefile = merged(run, build.data, build, log)?.with_context(|| {
        format!(
            "no {} coverage counters were kept by any case (see the cases' console.log and commands.log in {})",
            build.label,
            run.display()
        )
    })?;
    let dir = run.join("coverage");
    std::fs::create_dir_all(&dir)?;
    let info = dir.join(format!("{}.info", build.label));
    std::fs::write(&info, tracefile.write())?;
    Ok(Captured { tracefile, info })
}

/// Writes lcov's HTML report of `infos` into `out` with `genhtml`.
pub fn html(infos: &[PathBuf], out: &Path, log: &CommandLog) -> Result<()> {
    let sh = Shell::new()?;
    exec::run(
        cmd!(
            sh,
            "genhtml --quiet --branch-coverage --output-directory {out} {infos...}"
        ),
        log,
    )?;
    Ok(())
}

/// Reads the counters under `data` (a tree of `.gcda` files under `build`'s absolute path) with
/// `lcov --capture`, next to copies of the build's notes, into a tracefile named after the
/// user's tree. `None` if `data` holds no counters of this build.
pub fn capture(data: &Path, build: &Build, log: &CommandLog) -> Result<Option<Tracefile>> {
    let root = data.join(build.objects.strip_prefix("/").unwrap_or(&build.objects));
    let counters = gcda_files(&root)?;
    if counters.is_empty() {
        return Ok(None);
    }
    for gcda in &counters {
        let rel = gcda.strip_prefix(&root)?;
        let notes = build.objects.join(rel).with_extension("gcno");
        std::fs::copy(&notes, gcda.with_extension("gcno")).with_context(|| {
            format!(
                "copying {} (the build's notes for {})",
                notes.display(),
                gcda.display()
            )
        })?;
    }
    let out = data.join("capture.info");
    let base = &build.objects;
    let sh = Shell::new()?;
    exec::run(
        cmd!(
            sh,
            "lcov --capture --quiet --rc lcov_branch_coverage=1 --base-directory {base} --directory {root} --output-file {out}"
        ),
        log,
    )?;
    let text = std::fs::read_to_string(&out)?;
    let tracefile =
        Tracefile::parse(&text).with_context(|| format!("reading {}", out.display()))?;
    Ok(Some(tracefile.map_prefix(
        &build.sources.display().to_string(),
        &build.tree.display().to_string(),
    )))
}

/// The counters of every run under `run` (each `data` directory: `KERNEL_DATA` or
/// `PROGS_DATA`) captured and merged; `None` if no run kept any. Each capture's tracefile
/// stays beside its counters.
pub fn merged(
    run: &Path,
    data: &str,
    build: &Build,
    log: &CommandLog,
) -> Result<Option<Tracefile>> {
    let mut total: Option<Tracefile> = None;
    for dir in data_dirs(run, data) {
        if let Some(one) = capture(&dir, build, log)? {
            total.get_or_insert_with(Tracefile::default).merge(&one);
        }
    }
    Ok(total)
}

/// The `.gcda` files under `dir`, if it exists.
fn gcda_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(found);
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            found.extend(gcda_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "gcda") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The directories under `run` named `name` (`coverage/kernel` of each case, say).
pub fn data_dirs(run: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let direct = run.join(name);
    if direct.is_dir() {
        found.push(direct);
    }
    if let Ok(entries) = std::fs::read_dir(run) {
        let mut subdirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .filter(|p| !p.ends_with("coverage"))
            .collect();
        subdirs.sort();
        for dir in subdirs {
            found.extend(data_dirs(&dir, name));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_variant_profiles_fs_btrfs_only() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("fs/btrfs")).unwrap();
        std::fs::write(
            tree.path().join(KERNEL_MAKEFILE),
            "# SPDX-License-Identifier: GPL-2.0\nobj-$(CONFIG_BTRFS_FS) := btrfs.o\n",
        )
        .unwrap();
        let (patch, config) = kernel_variant(tree.path()).unwrap();
        assert!(patch.contains("+++ b/fs/btrfs/Makefile"));
        assert!(patch.contains("\n+GCOV_PROFILE := y\n"));
        assert!(config.text().contains("CONFIG_GCOV_KERNEL=y"));
        assert!(!config.text().contains("GCOV_PROFILE_ALL"));
    }

    #[test]
    fn counters_are_copied_and_found_by_their_build_path() {
        let dir = tempfile::tempdir().unwrap();
        let debugfs = dir.path().join("gcov/build/fs/btrfs");
        std::fs::create_dir_all(&debugfs).unwrap();
        std::fs::write(debugfs.join("send.gcda"), b"counts").unwrap();
        std::os::unix::fs::symlink("/nowhere.gcno", debugfs.join("send.gcno")).unwrap();
        let case = dir.path().join("run/case-a");
        let copied = copy_counters(&dir.path().join("gcov"), &case.join(KERNEL_DATA)).unwrap();
        assert_eq!(copied, 1);
        let kept = case.join(KERNEL_DATA).join("build/fs/btrfs/send.gcda");
        assert_eq!(std::fs::read(kept).unwrap(), b"counts");
        assert_eq!(
            data_dirs(&dir.path().join("run"), KERNEL_DATA),
            [case.join(KERNEL_DATA)]
        );
        assert_eq!(
            gcda_files(&case.join(KERNEL_DATA)).unwrap().len(),
            1,
            "the link to the notes is not a counter"
        );
    }
}
