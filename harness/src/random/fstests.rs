//! A list of operations as an fstests test (`tests/btrfs/NNN` and its `.out` golden file), for
//! a bug report: the same operations on the scratch filesystem, a snapshot where the list has
//! one, each snapshot's content summed with fssum, sent (incrementally after the first),
//! received on a fresh filesystem and checked against its sum. On a kernel with the fix every
//! check prints `OK`, which is all the golden file holds.

use std::fmt::Write as _;

use super::ops::Op;
use super::script::ScriptOptions;
use crate::case::Component;

/// The test and its golden output; `NNN` stands for the number fstests' `new` script gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstestsTest {
    pub script: String,
    pub golden: String,
}

/// fstests' names for the programs the operations run.
const PROGRAMS: &[(&str, &str)] = &[
    ("xfs_io ", "$XFS_IO_PROG "),
    ("setfattr ", "$SETFATTR_PROG "),
    ("chattr ", "$CHATTR_PROG "),
];

/// The fix a test names: its subject, and whether it is a kernel commit
/// (`_fixed_by_kernel_commit`) or one of btrfs-progs (`_fixed_by_git_commit btrfs-progs`), with
/// fstests' `xxxxxxxxxxxx` until it is merged.
#[derive(Debug, Clone, Copy)]
pub struct FixedBy<'a> {
    pub component: Component,
    pub subject: &'a str,
}

impl FixedBy<'_> {
    fn line(&self) -> String {
        let helper = match self.component {
            Component::Kernel => "_fixed_by_kernel_commit",
            Component::BtrfsProgs => "_fixed_by_git_commit btrfs-progs",
        };
        format!("{helper} xxxxxxxxxxxx \\\n\t\"{}\"", self.subject)
    }
}

/// `about`: what the test checks, one or more lines; `fix`: what fixes the bug.
pub fn fstests_test(
    ops: &[Op],
    options: &ScriptOptions,
    about: &str,
    fix: FixedBy<'_>,
) -> FstestsTest {
    let snapshots = ops.iter().filter(|o| **o == Op::Snapshot).count() + 1;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "#! /bin/bash\n# SPDX-License-Identifier: GPL-2.0\n#\n# FS QA Test NNN\n#"
    );
    for line in about.lines() {
        let _ = writeln!(s, "{}", format!("# {line}").trim_end());
    }
    let groups = if options.proto2 {
        "auto quick send compress"
    } else {
        "auto quick send"
    };
    let _ = writeln!(
        s,
        "#\n. ./common/preamble\n_begin_fstest {groups}\n\n. ./common/filter\n\n\
         _require_scratch\n_require_fssum"
    );
    if options.proto2 {
        let _ = writeln!(s, "_require_btrfs_send_version 2");
    }
    if ops
        .iter()
        .any(|o| matches!(o, Op::SetXattr { .. } | Op::RemoveXattr { .. }))
    {
        let _ = writeln!(s, "_require_attrs");
    }
    let _ = writeln!(
        s,
        "\n{}\n\n\
         send_files_dir=$TEST_DIR/btrfs-test-$seq\nrm -fr $send_files_dir\nmkdir $send_files_dir\n\n\
         _scratch_mkfs >> $seqres.full 2>&1 || _fail \"mkfs failed\"\n_scratch_mount{}\n\n\
         $BTRFS_UTIL_PROG subvolume create $SCRATCH_MNT/vol >> $seqres.full\ncd $SCRATCH_MNT/vol",
        fix.line(),
        if options.proto2 {
            format!(" -o {}", options.compression.mount_option())
        } else {
            String::new()
        }
    );
    let mut snapshot = 0;
    let take = |s: &mut String, n: usize| {
        let _ = writeln!(
            s,
            "$BTRFS_UTIL_PROG subvolume snapshot -r $SCRATCH_MNT/vol $SCRATCH_MNT/snap{n} >> $seqres.full"
        );
    };
    for op in ops {
        if *op == Op::Snapshot {
            take(&mut s, snapshot);
            snapshot += 1;
            continue;
        }
        if let Op::Wide(wide) = op {
            let last = format!("$SCRATCH_MNT/snap{}", snapshot.saturating_sub(1));
            if let Some(commands) = wide.flip_commands(&last) {
                if snapshot > 0 {
                    let _ = writeln!(
                        s,
                        "{} >> $seqres.full 2>&1",
                        commands.replace("btrfs ", "$BTRFS_UTIL_PROG ")
                    );
                }
                continue;
            }
        }
        let mut line = op.to_string();
        for (plain, variable) in PROGRAMS {
            line = line.replace(plain, variable);
        }
        let _ = writeln!(s, "{line} >> $seqres.full 2>&1");
    }
    take(&mut s, snapshot);
    let send_options = if options.proto2 {
        "--proto 2 --compressed-data "
    } else {
        ""
    };
    let _ = writeln!(s, "cd /\n");
    for i in 0..snapshots {
        let _ = writeln!(
            s,
            "$FSSUM_PROG -A -f -w $send_files_dir/{i}.fssum $SCRATCH_MNT/snap{i}"
        );
    }
    let sends = options.parents.sends(snapshots);
    for sent in &sends {
        // Full sends of later snapshots (`full-too`) and the twin (`twin`) are left to the script.
        let words = options.parents.shell_words(sent.clone(), snapshots, &|n| {
            format!("$SCRATCH_MNT/snap{n}")
        });
        let _ = writeln!(
            s,
            "$BTRFS_UTIL_PROG send {send_options}-f $send_files_dir/{}.snap \\\n\
             \t{words} >> $seqres.full 2>&1",
            sent.start
        );
    }
    if ops
        .iter()
        .any(|op| matches!(op, Op::Wide(super::wide::Wide::UnlinkHeld { .. })))
    {
        let _ = writeln!(
            s,
            "\n# Close the files held open since they were unlinked.\n\
             for fd in \"${{held[@]}}\"; do exec {{fd}}<&-; done"
        );
    }
    let _ = writeln!(
        s,
        "\n# Receive on a fresh filesystem: each snapshot must have what was sent.\n\
         _scratch_unmount\n_scratch_mkfs >> $seqres.full 2>&1 || _fail \"mkfs failed\"\n_scratch_mount"
    );
    for sent in sends {
        let _ = writeln!(
            s,
            "$BTRFS_UTIL_PROG receive -f $send_files_dir/{}.snap $SCRATCH_MNT >> $seqres.full 2>&1",
            sent.start
        );
        for i in sent {
            let _ = writeln!(
                s,
                "$FSSUM_PROG -r $send_files_dir/{i}.fssum $SCRATCH_MNT/snap{i}"
            );
        }
    }
    let _ = writeln!(s, "\n# success, all done\nstatus=0\nexit");
    let mut golden = String::from("QA output created by NNN\n");
    for _ in 0..snapshots {
        golden.push_str("OK\n");
    }
    FstestsTest { script: s, golden }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::{Falloc, Op};

    #[test]
    fn bundled_snapshots_are_sent_by_one_send_and_received_by_one_receive() {
        let mkdir = |p: &str| Op::Mkdir { path: p.into() };
        let ops = [
            mkdir("a"),
            Op::Snapshot,
            mkdir("b"),
            Op::Snapshot,
            mkdir("c"),
        ];
        let options = ScriptOptions {
            parents: crate::random::Parents::BundleOneStream,
            ..ScriptOptions::default()
        };
        let fixed = FixedBy {
            component: Component::Kernel,
            subject: "btrfs: send: fix it",
        };
        let test = fstests_test(&ops, &options, "Bundled.", fixed);
        let s = &test.script;
        assert!(
            s.contains("send -f $send_files_dir/1.snap \\\n\t-e -p $SCRATCH_MNT/snap0 $SCRATCH_MNT/snap1 $SCRATCH_MNT/snap2 "),
            "{s}"
        );
        assert!(!s.contains("2.snap"), "{s}");
        assert_eq!(s.matches("receive -f").count(), 2, "{s}");
        assert_eq!(s.matches("$FSSUM_PROG -r").count(), 3, "{s}");
        assert_eq!(test.golden, "QA output created by NNN\nOK\nOK\nOK\n");
    }

    #[test]
    fn the_operations_become_an_fstests_test_with_one_ok_per_snapshot() {
        let ops = [
            Op::Write {
                file: "f".into(),
                offset: 0,
                len: 24,
                byte: b'a',
                direct: false,
            },
            Op::Snapshot,
            Op::Fallocate {
                file: "f".into(),
                offset: 634,
                len: 1,
                mode: Falloc::Allocate,
            },
        ];
        let options = ScriptOptions {
            proto2: true,
            ..ScriptOptions::default()
        };
        let test = fstests_test(
            &ops,
            &options,
            "Test that a file keeps its size.\nFound by sendtest.",
            FixedBy {
                component: Component::Kernel,
                subject: "btrfs: send: fix it",
            },
        );
        let s = &test.script;
        assert!(s.starts_with("#! /bin/bash\n# SPDX-License-Identifier: GPL-2.0\n"));
        assert!(s.contains("# Test that a file keeps its size.\n# Found by sendtest.\n"));
        assert!(s.contains("_require_btrfs_send_version 2\n"));
        assert!(s.contains("_fixed_by_kernel_commit xxxxxxxxxxxx \\\n\t\"btrfs: send: fix it\""));
        assert!(s.contains("_scratch_mount -o compress=zstd\n"));
        assert!(s.contains(
            "[ -p f ] || $XFS_IO_PROG -f -c 'pwrite -q -S 0x61 0 24' f >> $seqres.full 2>&1\n"
        ));
        assert!(s.contains("snapshot -r $SCRATCH_MNT/vol $SCRATCH_MNT/snap1 "));
        assert!(s.contains(
            "send --proto 2 --compressed-data -f $send_files_dir/1.snap \\\n\t-p $SCRATCH_MNT/snap0 $SCRATCH_MNT/snap1 "
        ));
        assert!(s.contains("$FSSUM_PROG -r $send_files_dir/1.fssum $SCRATCH_MNT/snap1\n"));
        assert!(
            !s.contains("xfs_io -"),
            "a program called by its plain name"
        );
        assert_eq!(test.golden, "QA output created by NNN\nOK\nOK\n");
        assert!(!s.contains("held[@]"));
        let held = [Op::Wide(crate::random::wide::Wide::UnlinkHeld {
            path: "f".into(),
        })];
        let progs = FixedBy {
            component: Component::BtrfsProgs,
            subject: "btrfs-progs: receive: fix it",
        };
        let test = fstests_test(&held, &options, "held", progs);
        assert!(test.script.contains(
            "_fixed_by_git_commit btrfs-progs xxxxxxxxxxxx \\\n\t\"btrfs-progs: receive: fix it\""
        ));
        let close = test.script.find("do exec {fd}<&-; done").unwrap();
        assert!(close < test.script.find("_scratch_unmount").unwrap());
    }
}
