//! btrfs-progs from a tree: configured with the minimum (no documentation, convert or python)
//! and built in a copy in the cache, since btrfs-progs builds in its source directory. Only
//! `btrfs` and `mkfs.btrfs` are built; they go into a directory of their own, which the run puts
//! first in PATH, so both backends (and a guest's initramfs) use them.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use super::{lock, not_building, short_hash};
use crate::exec::{self, CommandLog};

const PROGRAMS: [&str; 2] = ["btrfs", "mkfs.btrfs"];

/// Built btrfs-progs.
#[derive(Debug, Clone)]
pub struct ProgsBuild {
    /// Holds `btrfs` and `mkfs.btrfs`, nothing else.
    pub bin: PathBuf,
    /// The copy of the tree it was built in (objects beside sources).
    pub dir: PathBuf,
    /// What `btrfs --version` says.
    pub version: String,
}

impl ProgsBuild {
    /// Puts this build's programs first in the process's PATH, ahead of `base` (a PATH value),
    /// for the cases (and a guest's initramfs) that run `btrfs` and `mkfs.btrfs` from PATH.
    /// Call it only while no case runs: cases read PATH.
    pub fn put_first_in_path(&self, base: &std::ffi::OsStr) -> Result<()> {
        let mut dirs = vec![self.bin.clone()];
        dirs.extend(std::env::split_paths(base));
        std::env::set_var("PATH", std::env::join_paths(dirs)?);
        Ok(())
    }
}

pub fn build(tree: &Path, say: &dyn Fn(&str)) -> Result<ProgsBuild> {
    build_variant(tree, None, say)
}

/// A variant of a tree: files whose content replaces the tree's, built in a directory of its
/// own named by `label` (`sendtest mutate` builds each mutant so, under one label).
pub struct Variant<'a> {
    pub label: &'a str,
    /// (path relative to the tree, content); empty for the tree as it is.
    pub files: &'a [(String, String)],
    /// Extra `make` arguments (`EXTRA_CFLAGS=--coverage`, say), the same for every build under
    /// one label.
    pub make_args: &'a [&'a str],
}

/// Builds `tree`, or `variant` of it. A variant's build directory remembers which files the
/// last variant replaced and puts the tree's back first, so nothing of an earlier variant
/// stays.
pub fn build_variant(
    tree: &Path,
    variant: Option<&Variant<'_>>,
    say: &dyn Fn(&str),
) -> Result<ProgsBuild> {
    let tree = tree.canonicalize().with_context(|| {
        format!("btrfs-progs tree {} does not exist: pass --btrfs-progs-tree with a btrfs-progs source tree", tree.display())
    })?;
    for marker in ["configure.ac", "btrfs.c", "mkfs"] {
        if !tree.join(marker).exists() {
            bail!(
                "{} is not a btrfs-progs tree (no {marker}): pass --btrfs-progs-tree with one",
                tree.display()
            );
        }
    }
    let name = tree
        .file_name()
        .map_or("btrfs-progs".into(), |n| n.to_string_lossy().into_owned());
    let suffix = variant.map_or(String::new(), |v| format!("-{}", v.label));
    let dir = crate::cache::dir()?.join("progs-builds").join(format!(
        "{name}-{}{suffix}",
        short_hash(&[tree.as_os_str().as_bytes()])
    ));
    std::fs::create_dir_all(&dir)?;
    let _lock = lock(&dir, say)?;
    let log_path = dir.join("sendtest-build.log");
    // A fresh log per build, so that the error lines of a build that fails are its own (a
    // mutant's, not an earlier one's).
    let _ = std::fs::remove_file(&log_path);
    let log = CommandLog::create(&dir.join("sendtest-commands.log"))?;
    let what = format!("btrfs-progs tree {}", tree.display());
    let not_building = not_building(&what, &log_path, (&tree, &tree));
    let sh = Shell::new()?;
    // Copies only what changed since the last build, so make rebuilds only that.
    exec::run(cmd!(sh, "cp -a -u {tree}/. {dir}/"), &log)?;
    if let Some(variant) = variant {
        replace_files(&tree, &dir, variant.files)?;
    }
    sh.change_dir(&dir);
    if !dir.join("config.status").exists() {
        say(&format!(
            "configuring {} in {}",
            tree.display(),
            dir.display()
        ));
        // The configure script a tree ships can be older than its configure.ac (Debian's is),
        // so regenerate it as Debian's build does.
        let autogen = dir.join("autogen.sh");
        if autogen.exists() {
            exec::run_to_file(cmd!(sh, "{autogen}"), &log, &log_path, &mut |_| {})
                .map_err(&not_building)?;
        }
        let configure = dir.join("configure");
        exec::run_to_file(
            cmd!(
                sh,
                "{configure} --disable-documentation --disable-convert --disable-python"
            ),
            &log,
            &log_path,
            &mut |_| {},
        )
        .map_err(&not_building)?;
    }
    say(&format!(
        "building btrfs and mkfs.btrfs from {} (log: {})",
        tree.display(),
        log_path.display()
    ));
    let jobs = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .to_string();
    let make_args = variant.map_or(&[][..], |v| v.make_args);
    exec::run_to_file(
        cmd!(sh, "make -j{jobs} {make_args...} {PROGRAMS...}"),
        &log,
        &log_path,
        &mut |_| {},
    )
    .map_err(&not_building)?;
    let bin = dir.join("sendtest-bin");
    // Copied fresh each time, so a program that a variant's make did not relink still is the
    // one built last.
    std::fs::create_dir_all(&bin)?;
    for program in PROGRAMS {
        std::fs::copy(dir.join(program), bin.join(program))
            .with_context(|| format!("copying the built {program}"))?;
    }
    let btrfs = bin.join("btrfs");
    let version = exec::run(cmd!(sh, "{btrfs} --version"), &log)?
        .stdout
        .trim()
        .to_string();
    say(&format!("using {version} from {}", bin.display()));
    Ok(ProgsBuild { bin, dir, version })
}

/// Puts back the tree's copy of every file the last variant replaced, then writes `files`,
/// each with a fresh mtime so that make rebuilds what they feed.
fn replace_files(tree: &Path, dir: &Path, files: &[(String, String)]) -> Result<()> {
    let record = dir.join("sendtest-replaced");
    let previous = std::fs::read_to_string(&record).unwrap_or_default();
    for rel in previous.lines().filter(|l| !l.is_empty()) {
        let data = std::fs::read(tree.join(rel)).with_context(|| format!("reading {rel}"))?;
        std::fs::write(dir.join(rel), data).with_context(|| format!("restoring {rel}"))?;
    }
    let mut names = String::new();
    for (rel, content) in files {
        std::fs::write(dir.join(rel), content).with_context(|| format!("writing {rel}"))?;
        names.push_str(rel);
        names.push('\n');
    }
    std::fs::write(&record, names)?;
    Ok(())
}
