//! `sendtest mutate`'s outcomes, each made to happen for real on btrfs-progs' receive code: a
//! mutant the suite catches, one it misses, one that does not compile, and one that hangs
//! `btrfs receive` until its case's time limit. And a run that stops resumes from what it kept.
//!
//! It builds btrfs-progs, so it runs only when `SENDTEST_PROGS_TREE` names a btrfs-progs tree
//! (`bash .ci/btrfs-progs-tree` prints one; `.ci/run` sets it).

use std::path::PathBuf;
use std::time::Duration;

use sendtest::context::{CaseOptions, RandomKnobs};
use sendtest::mutate::mutant::Mutant;
use sendtest::mutate::operators::{Edit, Operator};
use sendtest::mutate::run::{self, MutationPlan, Verdict};
use sendtest::mutate::targets::ProgsTarget;

const FILE: &str = "cmds/receive.c";

/// A mutant of `cmds/receive.c` that replaces the first `from` after `after` with `to`.
fn mutant(tree: &std::path::Path, name: &str, after: &str, from: &str, to: &str) -> Mutant {
    let source = std::fs::read_to_string(tree.join(FILE)).unwrap();
    let anchor = source
        .find(after)
        .unwrap_or_else(|| panic!("no `{after}` in {FILE}"));
    let start = anchor + source[anchor..].find(from).unwrap();
    let edit = Edit {
        operator: Operator::NegateIf,
        start,
        end: start + from.len(),
        replacement: to.into(),
    };
    let line = edit.line(&source);
    Mutant {
        id: format!("{FILE}:{line}:{name}:1"),
        file: FILE.into(),
        line,
        operator: edit.operator,
        before: from.into(),
        after: to.into(),
        diff: String::new(),
        edit,
    }
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
    let mutants = [
        // Every write of the stream is dropped: received files are empty.
        mutant(
            &tree,
            "caught",
            "static int process_write(",
            "while (pos < len) {",
            "while (0) {",
        ),
        // Only the verbose message of a chown changes: nothing the suite can see.
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
    ];
    let cases = vec![cases::by_name("ro-flip-with-delalloc").unwrap()];
    let results = tempfile::tempdir().unwrap();
    let plan = MutationPlan {
        cases,
        options: CaseOptions {
            timeout: Duration::from_secs(15),
            random: RandomKnobs::default(),
            ..CaseOptions::default()
        },
        results: results.path().to_path_buf(),
        allowed: Default::default(),
    };
    let mut target = ProgsTarget::new(&tree).unwrap();
    run::baseline(&plan, &mut target).unwrap();
    let ran = run::run(&plan, &mutants, &mut target, &mut |_| {}).unwrap();
    let verdicts: Vec<&str> = ran.iter().map(|r| r.verdict.label()).collect();
    assert_eq!(
        verdicts,
        ["caught", "missed", "unviable", "timeout"],
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
    let missed = std::fs::read_to_string(results.path().join("missed.txt")).unwrap();
    assert!(missed.contains(&mutants[1].id), "{missed}");

    // A rerun takes what was kept and builds nothing.
    let again = run::run(&plan, &mutants, &mut target, &mut |_| {}).unwrap();
    assert!(again.iter().all(|r| r.resumed));
    let verdicts: Vec<&str> = again.iter().map(|r| r.verdict.label()).collect();
    assert_eq!(verdicts, ["caught", "missed", "unviable", "timeout"]);
}
