//! A tree with a patch on it, as the mutants see it (`sendtest mutate --patch FIX`): a developer
//! checks that the suite catches faults in the lines their fix adds before posting it, on the
//! tree the fix applies to. The view holds copies of the files to mutate and of the files the
//! patch touches, with the patch applied, in a directory of its own; the tree is only read.
//! Each mutant's diff is made against the view, and built on top of the patch.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::exec::{self, CommandLog};

/// The files to mutate and those a patch touches, patched.
pub struct PatchedView {
    dir: tempfile::TempDir,
    /// The patch, as given.
    pub patch: String,
    /// Every file of the view (relative to the tree), with its patched contents.
    pub files: Vec<(String, String)>,
}

impl PatchedView {
    /// Copies `files` and the files `patch` names from `tree` and applies `patch` (`-p1`) to the
    /// copies; `name` says which patch in an error.
    pub fn new(tree: &Path, files: &[String], patch: &str, name: &str) -> Result<PatchedView> {
        let touched = touched_files(patch);
        if touched.is_empty() {
            bail!("{name} changes no file: pass a unified diff (`git format-patch` or `diff -u`)");
        }
        let dir = tempfile::Builder::new()
            .prefix("sendtest-patched")
            .tempdir()?;
        let all: BTreeSet<&str> = files
            .iter()
            .map(String::as_str)
            .chain(touched.iter().map(String::as_str))
            .collect();
        for file in &all {
            let to = dir.path().join(file);
            std::fs::create_dir_all(to.parent().unwrap_or(dir.path()))?;
            match std::fs::copy(tree.join(file), &to) {
                Ok(_) => {}
                // A file the patch creates.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && touched.contains(*file) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("reading {file} in {}", tree.display()))
                }
            }
        }
        let sh = Shell::new()?;
        let patch_file = dir.path().join(".sendtest.patch");
        std::fs::write(&patch_file, patch)?;
        let at = dir.path();
        exec::run(
            cmd!(
                sh,
                "patch -p1 -d {at} --forward --batch --no-backup-if-mismatch -i {patch_file}"
            ),
            &CommandLog::discard(),
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "{name} does not apply to {}: {}",
                tree.display(),
                e.stderr_tail()
            )
        })?;
        std::fs::remove_file(&patch_file)?;
        let mut contents = Vec::new();
        for file in &all {
            let text = std::fs::read_to_string(dir.path().join(file)).unwrap_or_default();
            contents.push((file.to_string(), text));
        }
        Ok(PatchedView {
            dir,
            patch: patch.to_string(),
            files: contents,
        })
    }

    /// The directory the patched files are in, at their paths in the tree.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The files a unified diff changes (its `+++ b/FILE` lines, `-p1`).
pub fn touched_files(patch: &str) -> BTreeSet<String> {
    patch
        .lines()
        .filter_map(|l| l.strip_prefix("+++ "))
        .map(|l| l.split('\t').next().unwrap_or(l).trim())
        .filter(|l| *l != "/dev/null")
        .filter_map(|l| l.split_once('/').map(|(_, rest)| rest.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutate::mutant::mutants_of;

    const SOURCE: &str = "int f(int x)\n{\n\tif (x == 1)\n\t\treturn 2;\n\treturn 0;\n}\n";
    const FIX: &str = "--- a/fs/btrfs/send.c\n+++ b/fs/btrfs/send.c\n@@ -3,4 +3,6 @@\n \tif (x == 1)\n \t\treturn 2;\n+\tif (x > 7)\n+\t\treturn 3;\n \treturn 0;\n }\n";

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fs/btrfs")).unwrap();
        std::fs::write(dir.path().join("fs/btrfs/send.c"), SOURCE).unwrap();
        dir
    }

    #[test]
    fn mutants_of_the_view_apply_after_the_patch() {
        let tree = tree();
        let files = vec!["fs/btrfs/send.c".to_string()];
        let view = PatchedView::new(tree.path(), &files, FIX, "fix.patch").unwrap();
        assert!(view.files[0].1.contains("if (x > 7)"), "{:?}", view.files);
        let mutants = mutants_of(view.dir(), "fs/btrfs/send.c").unwrap();
        let relational = mutants
            .iter()
            .find(|m| m.line == 5 && m.after.contains(">="))
            .unwrap_or_else(|| panic!("{mutants:?}"));
        // As the kernel build does: the patch, then the mutant, in one input to patch(1).
        let both = tree.path().join("both.patch");
        std::fs::write(&both, format!("{FIX}{}", relational.diff)).unwrap();
        let status = std::process::Command::new("patch")
            .args(["-s", "-p1", "--batch", "-d"])
            .arg(tree.path())
            .arg("-i")
            .arg(&both)
            .status()
            .unwrap();
        assert!(status.success());
        let built = std::fs::read_to_string(tree.path().join("fs/btrfs/send.c")).unwrap();
        assert!(built.contains("if (x >= 7)"), "{built}");
        assert!(built.contains("if (x == 1)"), "{built}");
    }

    #[test]
    fn a_patch_that_does_not_apply_says_so() {
        let tree = tree();
        let files = vec!["fs/btrfs/send.c".to_string()];
        let wrong = "--- a/fs/btrfs/send.c\n+++ b/fs/btrfs/send.c\n@@ -3,2 +3,2 @@\n-\tif (y == 9)\n+\tif (y == 8)\n \t\treturn 9;\n";
        let error = PatchedView::new(tree.path(), &files, wrong, "fix.patch")
            .err()
            .expect("a patch that does not apply");
        assert!(
            error.to_string().starts_with("fix.patch does not apply to"),
            "{error}"
        );
        let error = PatchedView::new(tree.path(), &files, "not a diff\n", "x.patch")
            .err()
            .unwrap();
        assert!(error.to_string().contains("changes no file"), "{error}");
    }

    #[test]
    fn the_files_a_patch_touches_are_read_from_its_headers() {
        let patch = "--- a/cmds/receive.c\t2024\n+++ b/cmds/receive.c\t2024\n@@\n--- /dev/null\n+++ b/common/new.c\n";
        let files: Vec<String> = touched_files(patch).into_iter().collect();
        assert_eq!(files, ["cmds/receive.c", "common/new.c"]);
    }
}
