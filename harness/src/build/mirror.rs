//! A mirror of a kernel tree's source files in the cache, so that any tree builds out of tree
//! (`make O=`) as it is: one built in place (which `make O=` refuses), a git worktree, a tree
//! with uncommitted edits. The tree is only read.
//!
//! Which files are sources is what the tree's own `.gitignore` files say: the kernel lists every
//! build output there (objects, generated headers, host programs, `.config`). One rule is passed
//! over: a pattern that ignores every entry of a directory (`/*`, as Debian's linux-source tree
//! has at its top), which is packaging, not a build output.
//!
//! Each sync copies what changed since the last one and removes from the mirror what the tree
//! no longer has. A copied file gets the time of the copy as its mtime, so make rebuilds what
//! it feeds whatever the tree's mtime was. An index beside the mirror (`<mirror>.index`) records,
//! per file, the tree's size and mtime and the mirror copy's mtime: a file changed on either
//! side since the last sync (an edit in the tree; a patch or a mutant written into the mirror)
//! is copied again, so nothing stale is ever built.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

/// What a sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Synced {
    /// Source files (and symbolic links) in the tree.
    pub files: usize,
    /// Files copied (new or changed since the last sync).
    pub copied: usize,
    /// Files and directories removed from the mirror.
    pub removed: usize,
}

/// What the index records of one file: the tree's size and mtime, and the mirror copy's mtime,
/// as of the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    tree_mtime: (i64, i64),
    mirror_mtime: (i64, i64),
}

fn index_path(mirror: &Path) -> PathBuf {
    super::sibling(mirror, "index")
}

fn read_index(mirror: &Path) -> HashMap<PathBuf, Stamp> {
    let text = fs::read_to_string(index_path(mirror)).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (numbers, path) = line.split_once('\t')?;
            let n: Vec<i64> = numbers
                .split(' ')
                .map(|w| w.parse().ok())
                .collect::<Option<_>>()?;
            let [size, ts, tn, ms, mn] = n[..] else {
                return None;
            };
            let stamp = Stamp {
                size: u64::try_from(size).ok()?,
                tree_mtime: (ts, tn),
                mirror_mtime: (ms, mn),
            };
            Some((PathBuf::from(path), stamp))
        })
        .collect()
}

fn write_index(mirror: &Path, index: &HashMap<PathBuf, Stamp>) -> Result<()> {
    let mut lines: Vec<String> = index
        .iter()
        .map(|(path, s)| {
            format!(
                "{} {} {} {} {}\t{}",
                s.size,
                s.tree_mtime.0,
                s.tree_mtime.1,
                s.mirror_mtime.0,
                s.mirror_mtime.1,
                path.display()
            )
        })
        .collect();
    lines.sort();
    let path = index_path(mirror);
    let staging = super::sibling(&path, "new");
    fs::write(&staging, lines.join("\n") + "\n")
        .and_then(|()| fs::rename(&staging, &path))
        .with_context(|| format!("writing {}", path.display()))
}

/// Makes `mirror` hold exactly the source files of `tree`.
pub fn sync(tree: &Path, mirror: &Path) -> Result<Synced> {
    let mut synced = Synced::default();
    let mut keep: HashSet<PathBuf> = HashSet::new();
    fs::create_dir_all(mirror).with_context(|| format!("creating {}", mirror.display()))?;
    let old_index = read_index(mirror);
    let mut index: HashMap<PathBuf, Stamp> = HashMap::new();
    let mut rules = Vec::new();
    walk(tree, Path::new(""), &mut rules, &mut |rel, kind| {
        keep.insert(rel.to_path_buf());
        let (from, to) = (tree.join(rel), mirror.join(rel));
        match kind {
            Kind::Dir => {
                if !fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir()) {
                    remove_any(&to)?;
                    fs::create_dir(&to).with_context(|| format!("creating {}", to.display()))?;
                }
            }
            Kind::File => {
                synced.files += 1;
                let (stamp, copied) = copy_if_changed(&from, &to, old_index.get(rel))?;
                index.insert(rel.to_path_buf(), stamp);
                if copied {
                    synced.copied += 1;
                }
            }
            Kind::Symlink => {
                synced.files += 1;
                let target = fs::read_link(&from)?;
                if fs::read_link(&to).ok().as_deref() != Some(target.as_path()) {
                    remove_any(&to)?;
                    std::os::unix::fs::symlink(&target, &to)
                        .with_context(|| format!("linking {}", to.display()))?;
                    synced.copied += 1;
                }
            }
        }
        Ok(())
    })?;
    synced.removed = prune(mirror, Path::new(""), &keep)?;
    write_index(mirror, &index)?;
    Ok(synced)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
}

/// Calls `visit` for every entry under `tree/rel` that no `.gitignore` excludes, parents first.
/// `rules` holds the matchers of the directories above, outermost first.
fn walk(
    tree: &Path,
    rel: &Path,
    rules: &mut Vec<Gitignore>,
    visit: &mut dyn FnMut(&Path, Kind) -> Result<()>,
) -> Result<()> {
    let dir = tree.join(rel);
    let pushed = match read_gitignore(&dir)? {
        Some(rule) => {
            rules.push(rule);
            true
        }
        None => false,
    };
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = match entry.file_type()? {
            t if t.is_symlink() => Kind::Symlink,
            t if t.is_dir() => Kind::Dir,
            t if t.is_file() => Kind::File,
            _ => continue,
        };
        if entry.file_name() == ".git" || ignored(rules, &path, kind == Kind::Dir) {
            continue;
        }
        let child = rel.join(entry.file_name());
        visit(&child, kind)?;
        if kind == Kind::Dir {
            walk(tree, &child, rules, visit)?;
        }
    }
    if pushed {
        rules.pop();
    }
    Ok(())
}

/// Whether the innermost rule that matches `path` ignores it.
fn ignored(rules: &[Gitignore], path: &Path, is_dir: bool) -> bool {
    for rule in rules.iter().rev() {
        match rule.matched(path, is_dir) {
            Match::Ignore(_) => return true,
            Match::Whitelist(_) => return false,
            Match::None => {}
        }
    }
    false
}

/// The rules of `dir/.gitignore`, without those that ignore every entry of a directory.
fn read_gitignore(dir: &Path) -> Result<Option<Gitignore>> {
    let file = dir.join(".gitignore");
    let Ok(text) = fs::read_to_string(&file) else {
        return Ok(None);
    };
    let mut builder = GitignoreBuilder::new(dir);
    for line in text.lines() {
        let pattern = line.trim();
        if matches!(pattern, "/*" | "*" | "/**" | "**") {
            continue;
        }
        // A line the matcher cannot read is passed over, as git passes over it.
        let _ = builder.add_line(Some(file.clone()), line);
    }
    Ok(Some(builder.build().with_context(|| {
        format!("reading the rules of {}", file.display())
    })?))
}

fn mtime(meta: &fs::Metadata) -> (i64, i64) {
    (meta.mtime(), meta.mtime_nsec())
}

/// Copies `from` to `to` unless neither has changed since `recorded`; a copy gets the time of
/// the copy as its mtime. Returns the new stamp and whether it copied.
fn copy_if_changed(from: &Path, to: &Path, recorded: Option<&Stamp>) -> Result<(Stamp, bool)> {
    let source = fs::metadata(from).with_context(|| format!("reading {}", from.display()))?;
    let mirrored = fs::symlink_metadata(to).ok();
    if let (Some(stamp), Some(mirrored)) = (recorded, &mirrored) {
        if mirrored.is_file()
            && stamp.size == source.len()
            && stamp.tree_mtime == mtime(&source)
            && mirrored.len() == source.len()
            && stamp.mirror_mtime == mtime(mirrored)
        {
            return Ok((*stamp, false));
        }
    }
    if mirrored.is_some() {
        remove_any(to)?;
    }
    // std's copy uses copy_file_range, which shares the extents where the filesystem can.
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    let copy = File::options()
        .write(true)
        .open(to)
        .and_then(|f| {
            f.set_modified(SystemTime::now())?;
            f.metadata()
        })
        .with_context(|| format!("setting the mtime of {}", to.display()))?;
    let stamp = Stamp {
        size: source.len(),
        tree_mtime: mtime(&source),
        mirror_mtime: mtime(&copy),
    };
    Ok((stamp, true))
}

/// Removes whatever is at `path`, if anything.
fn remove_any(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))
        }
        Ok(_) => fs::remove_file(path).with_context(|| format!("removing {}", path.display())),
    }
}

/// Removes what is under `mirror/rel` but not in `keep`; returns how many entries went.
fn prune(mirror: &Path, rel: &Path, keep: &HashSet<PathBuf>) -> Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(mirror.join(rel))? {
        let entry = entry?;
        let child = rel.join(entry.file_name());
        if !keep.contains(&child) {
            remove_any(&entry.path())?;
            removed += 1;
        } else if entry.file_type()?.is_dir() {
            removed += prune(mirror, &child, keep)?;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut rules = Vec::new();
        let mut all = |rel: &Path, _: Kind| {
            found.push(rel.display().to_string());
            Ok(())
        };
        // The tree's `.*` rule leaves its .gitignore files out of the mirror, so the same walk
        // lists all of the mirror.
        walk(dir, Path::new(""), &mut rules, &mut all).unwrap();
        found
    }

    #[test]
    fn a_tree_built_in_place_mirrors_as_its_sources_and_edits_follow() {
        let work = tempfile::tempdir().unwrap();
        let (tree, mirror) = (work.path().join("linux"), work.path().join("mirror"));
        // Debian's top-level rules: the kernel's, then `/*` and `!/debian/`.
        write(
            &tree.join(".gitignore"),
            ".*\n*.o\n/vmlinux\n/include/config/\n/*\n!/debian/\n",
        );
        write(&tree.join("fs/btrfs/.gitignore"), "generated.h\n");
        write(&tree.join("Makefile"), "all:\n");
        write(&tree.join("fs/btrfs/send.c"), "int send;\n");
        write(&tree.join("debian/rules"), "rules\n");
        // What `make` in place leaves.
        write(&tree.join(".config"), "CONFIG_BTRFS_FS=y\n");
        write(&tree.join("include/config/auto.conf"), "x\n");
        write(&tree.join("fs/btrfs/send.o"), "ELF\n");
        write(&tree.join("fs/btrfs/generated.h"), "x\n");
        write(&tree.join("vmlinux"), "ELF\n");
        std::os::unix::fs::symlink("send.c", tree.join("fs/btrfs/link.c")).unwrap();

        let first = sync(&tree, &mirror).unwrap();
        assert_eq!((first.files, first.copied, first.removed), (4, 4, 0));
        assert_eq!(
            files(&mirror),
            [
                "Makefile",
                "debian",
                "debian/rules",
                "fs",
                "fs/btrfs",
                "fs/btrfs/link.c",
                "fs/btrfs/send.c",
                "include"
            ]
        );
        assert!(!mirror.join(".config").exists() && !mirror.join(".gitignore").exists());
        let modified = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
        assert!(
            modified(&mirror.join("fs/btrfs/send.c")) >= modified(&tree.join("fs/btrfs/send.c")),
            "a copy is never older than what make built before it"
        );

        let again = sync(&tree, &mirror).unwrap();
        assert_eq!(again.copied, 0, "nothing changed, nothing copied");

        // A patch written into the mirror is undone by the next sync.
        fs::write(mirror.join("fs/btrfs/send.c"), "int mutant;\n").unwrap();
        let undone = sync(&tree, &mirror).unwrap();
        assert_eq!(undone.copied, 1);
        assert_eq!(
            fs::read_to_string(mirror.join("fs/btrfs/send.c")).unwrap(),
            "int send;\n"
        );

        write(&tree.join("fs/btrfs/send.c"), "int send = 1;\n");
        fs::remove_file(tree.join("debian/rules")).unwrap();
        let edited = sync(&tree, &mirror).unwrap();
        assert_eq!((edited.copied, edited.removed), (1, 1));
        assert_eq!(
            fs::read_to_string(mirror.join("fs/btrfs/send.c")).unwrap(),
            "int send = 1;\n"
        );
        assert!(!mirror.join("debian/rules").exists());
        assert_eq!(
            fs::read_to_string(tree.join(".config")).unwrap(),
            "CONFIG_BTRFS_FS=y\n",
            "the tree is only read"
        );
    }
}
