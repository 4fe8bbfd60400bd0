//! A developer's own kernel tree, as it is: built in place (which `make O=` refuses), then
//! edited, then given to `sendtest run --kernel-tree`. An edit that does not compile is exit
//! 125 with the compiler's own error line; one that does must pass, boot a kernel that has the
//! edit, and leave the tree as it was.
//!
//! It builds a kernel, so it runs only when `SENDTEST_KERNEL_TREE` names a Linux tree (`bash
//! .ci/kernel-tree` prints one; `.ci/run` sets it). The copy it builds in place stays in the
//! cache, so later runs rebuild only what the edit touches.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::run_sendtest;

/// The pristine tree, or `None` (with a message) when the test is not asked for.
fn pristine_tree() -> Option<PathBuf> {
    match std::env::var_os("SENDTEST_KERNEL_TREE") {
        Some(tree) => Some(PathBuf::from(tree)),
        None => {
            eprintln!(
                "skipped: set SENDTEST_KERNEL_TREE to a Linux tree to run it (`bash .ci/kernel-tree` prints one)"
            );
            None
        }
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("starting a command");
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A copy of `pristine` in the cache, configured and prepared in place as `make` leaves a tree:
/// `.config`, generated headers and host programs beside the sources.
fn built_in_place(pristine: &Path) -> PathBuf {
    let cache = sendtest::cache::dir().unwrap();
    let tree = cache.join("test-trees/built-in-place");
    if !tree.join("Makefile").exists() {
        let staging = cache.join("test-trees/.copying");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(cache.join("test-trees")).unwrap();
        run(Command::new("cp").arg("-a").arg(pristine).arg(&staging));
        std::fs::rename(&staging, &tree).unwrap();
    }
    run(Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&tree)
        .arg("tinyconfig"));
    run(Command::new("make")
        .args(["-s", "-j2", "-C"])
        .arg(&tree)
        .arg("prepare"));
    assert!(tree.join(".config").is_file() && tree.join("include/generated").is_dir());
    tree
}

#[test]
fn a_tree_built_in_place_runs_and_boots_its_edit() {
    let Some(pristine) = pristine_tree() else {
        return;
    };
    let tree = built_in_place(&pristine);
    let results = tempfile::tempdir().unwrap();
    let results_arg = results.path().to_str().unwrap();
    let tree_arg = tree.to_str().unwrap();
    let run_case = || {
        run_sendtest(&[
            "run",
            "--kernel-tree",
            tree_arg,
            "--results",
            results_arg,
            "ro-flip-with-delalloc",
        ])
        .0
    };

    // An edit that does not compile: `git bisect run` must skip the commit (125), and the
    // message must carry the compiler's line, not make's trailer.
    let send_c = std::fs::read_to_string(pristine.join("fs/btrfs/send.c")).unwrap();
    std::fs::write(
        tree.join("fs/btrfs/send.c"),
        format!("{send_c}\nint sendtest_broken(void) {{ return undeclared_here; }}\n"),
    )
    .unwrap();
    let out = run_case();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("fs/btrfs/send.c:")
            && stderr.contains("error: 'undeclared_here' undeclared"),
        "{stderr}"
    );
    std::fs::write(tree.join("fs/btrfs/send.c"), send_c).unwrap();

    // The edit: a marker in /proc/version, new on every run so that a stale kernel cannot
    // carry it.
    let marker = format!(
        "sendtest-edit-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let original = std::fs::read_to_string(pristine.join("init/version.c")).unwrap();
    let edited = original.replace("\"%s version %s\"", &format!("\"%s version %s {marker}\""));
    assert_ne!(
        edited, original,
        "init/version.c has no proc banner to edit"
    );
    std::fs::write(tree.join("init/version.c"), edited).unwrap();
    let config_before = std::fs::read(tree.join(".config")).unwrap();

    let out = run_case();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let run_dir = std::fs::read_dir(results.path())
        .unwrap()
        .flatten()
        .find(|e| e.path().join("ro-flip-with-delalloc").is_dir())
        .expect("a run directory")
        .path();
    let environment =
        std::fs::read_to_string(run_dir.join("ro-flip-with-delalloc/environment")).unwrap();
    assert!(
        environment.contains(&marker),
        "the booted kernel lacks the edit ({marker}):\n{environment}"
    );
    assert_eq!(
        std::fs::read(tree.join(".config")).unwrap(),
        config_before,
        "the tree is only read"
    );
}
