//! `sendtest mutate`'s outcomes, each made to happen for real on btrfs-progs' receive code: a
//! mutant the suite catches, one it misses, one that does not compile, and one that hangs
//! `btrfs receive` until its case's time limit. And a run that stops resumes from what it kept.
//!
//! The kernel's side: a mutant of `fs/btrfs/send.c` that hangs the guest is a timeout, and one
//! that oopses it (a crash) is caught.
//!
//! They build btrfs-progs or a kernel, so they run only when `SENDTEST_PROGS_TREE` names a
//! btrfs-progs tree or `SENDTEST_KERNEL_TREE` a Linux tree (`.ci/run` sets both).

use std::path::PathBuf;
use std::time::Duration;

use sendtest::context::{CaseOptions, RandomKnobs};
use sendtest::mutate::mutant::{unified_diff, Mutant};
use sendtest::mutate::operators::{Edit, Operator};
use sendtest::mutate::run::{self, MutationPlan, Verdict};
use sendtest::mutate::targets::{KernelTarget, ProgsTarget};

const FILE: &str = "cmds/receive.c";

/// The btrfs-progs target puts each mutant's `btrfs` first in this process's PATH, where a
/// kernel target looks for the `btrfs` of its guests: the two tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A mutant of `cmds/receive.c` that replaces the first `from` after `after` with `to`.
fn mutant(tree: &std::path::Path, name: &str, after: &str, from: &str, to: &str) -> Mutant {
    mutant_of(tree, FILE, name, after, from, to)
}

/// A mutant of `file` that replaces the first `from` after `after` with `to`.
fn mutant_of(
    tree: &std::path::Path,
    file: &str,
    name: &str,
    after: &str,
    from: &str,
    to: &str,
) -> Mutant {
    let source = std::fs::read_to_string(tree.join(file)).unwrap();
    let anchor = source
        .find(after)
        .unwrap_or_else(|| panic!("no `{after}` in {file}"));
    let start = anchor + source[anchor..].find(from).unwrap();
    let edit = Edit {
        operator: Operator::NegateIf,
        start,
        end: start + from.len(),
        replacement: to.into(),
    };
    let line = edit.line(&source);
    let mut mutant = Mutant {
        id: format!("{file}:{line}:{name}:1"),
        file: file.into(),
        line,
        operator: edit.operator,
        before: from.into(),
        after: to.into(),
        diff: String::new(),
        edit,
    };
    mutant.diff = unified_diff(file, &source, &mutant.mutated_file(tree).unwrap());
    mutant
}

#[test]
fn each_outcome_happens_and_a_rerun_resumes() {
    let Some(tree) = std::env::var_os("SENDTEST_PROGS_TREE").map(PathBuf::from) else {
        eprintln!(
            "skipped: set SENDTEST_PROGS_TREE to a btrfs-progs tree to run it (`bash .ci/btrfs-progs-tree` prints one)"
        );
        return;
    };
    if !sendtest::preflight::loopback_or_skip("mutate outcomes") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mutants = [
        // Every write of the stream is dropped: received files are empty.
        mutant(
            &tree,
            "caught",
            "static int process_write(",
            "while (pos < len) {",
            "while (0) {",
        ),
        // Only the -vv message of a chown changes: ro-flip-with-delalloc, this suite, reads no
        // output of receive.
        mutant(
            &tree,
            "missed",
            "static int process_chown(",
            "if (bconf.verbose >= 3)",
            "if (bconf.verbose >= 4)",
        ),
        mutant(
            &tree,
            "unviable",
            "static int process_mkfile(",
            "{",
            "{ this does not compile;",
        ),
        // receive never returns.
        mutant(
            &tree,
            "timeout",
            "static int process_mkfile(",
            "{",
            "{ for (;;) sleep(1);",
        ),
        // Another that does not compile, elsewhere: its reason must be its own error.
        mutant(
            &tree,
            "unviable-too",
            "static int process_rmdir(",
            "{",
            "{ nor does this;",
        ),
    ];
    let cases = vec![cases::by_name("ro-flip-with-delalloc").unwrap()];
    let results = tempfile::tempdir().unwrap();
    let options = CaseOptions {
        timeout: Duration::from_secs(15),
        random: RandomKnobs::default(),
        ..CaseOptions::default()
    };
    let mut plan = MutationPlan {
        steps: run::steps(&cases, options, &[]),
        results: results.path().to_path_buf(),
        allowed: Default::default(),
    };
    let path_before = std::env::var_os("PATH");
    let mut target = ProgsTarget::new(&tree).unwrap();
    run::baseline(&mut plan, &mut target).unwrap();
    let ran = run::run(&plan, &mutants, &mut target, &mut |_| {}).unwrap();
    let verdicts: Vec<&str> = ran.iter().map(|r| r.verdict.label()).collect();
    assert_eq!(
        verdicts,
        ["caught", "missed", "unviable", "timeout", "unviable"],
        "{ran:#?}"
    );
    let Verdict::Caught { case, reason } = &ran[0].verdict else {
        unreachable!()
    };
    assert_eq!(case, "ro-flip-with-delalloc");
    assert!(reason.contains("field sha256"), "{reason}");
    let Verdict::Unviable(why) = &ran[2].verdict else {
        unreachable!()
    };
    assert!(why.contains("error"), "{why}");
    for i in [2, 4] {
        let Verdict::Unviable(why) = &ran[i].verdict else {
            unreachable!()
        };
        let own = format!("{FILE}:{}:", mutants[i].line);
        assert!(why.starts_with(&own), "not the error of {own}: {why}");
    }
    let missed = std::fs::read_to_string(results.path().join("missed.txt")).unwrap();
    assert!(missed.contains(&mutants[1].id), "{missed}");

    // A rerun takes what was kept and builds nothing.
    let again = run::run(&plan, &mutants, &mut target, &mut |_| {}).unwrap();
    assert!(again.iter().all(|r| r.resumed));
    // Done with the mutants, PATH no longer leads to the last one's `btrfs`.
    drop(target);
    assert_eq!(std::env::var_os("PATH"), path_before);
    let verdicts: Vec<&str> = again.iter().map(|r| r.verdict.label()).collect();
    assert_eq!(
        verdicts,
        ["caught", "missed", "unviable", "timeout", "unviable"]
    );
}

#[test]
fn a_kernel_mutant_that_hangs_the_guest_is_a_timeout_and_one_that_oopses_it_is_caught() {
    let Some(tree) = std::env::var_os("SENDTEST_KERNEL_TREE").map(PathBuf::from) else {
        eprintln!(
            "skipped: set SENDTEST_KERNEL_TREE to a Linux tree to run it (`bash .ci/kernel-tree` prints one)"
        );
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let send = "fs/btrfs/send.c";
    let mutants = [
        // Send spins forever: the guest never finishes the case.
        mutant_of(
            &tree,
            send,
            "timeout",
            "static int send_subvol(struct send_ctx *sctx)",
            "{",
            "{ for (;;) cond_resched();",
        ),
        // Send oopses (and oops=panic ends the guest).
        mutant_of(
            &tree,
            send,
            "crash",
            "static int send_subvol(struct send_ctx *sctx)",
            "{",
            "{ BUG();",
        ),
    ];
    let results = tempfile::tempdir().unwrap();
    let options = CaseOptions {
        timeout: Duration::from_secs(40),
        ..CaseOptions::default()
    };
    let mut plan = MutationPlan {
        steps: run::steps(
            &[cases::by_name("ro-flip-with-delalloc").unwrap()],
            options,
            &[],
        ),
        results: results.path().to_path_buf(),
        allowed: Default::default(),
    };
    let mut target = KernelTarget::new(
        &tree,
        Default::default(),
        Default::default(),
        std::path::Path::new(env!("CARGO_BIN_EXE_sendtest")),
    )
    .unwrap();
    run::baseline(&mut plan, &mut target).unwrap();
    let ran = run::run(&plan, &mutants, &mut target, &mut |_| {}).unwrap();
    let verdicts: Vec<&str> = ran.iter().map(|r| r.verdict.label()).collect();
    assert_eq!(verdicts, ["timeout", "caught"], "{ran:#?}");
    let Verdict::Caught { reason, .. } = &ran[1].verdict else {
        unreachable!()
    };
    assert!(
        reason.contains("panic") || reason.contains("BUG"),
        "{reason}"
    );
}
