//! sendtest's reproducers. Each file holds one case: a paragraph on the bug, the fix as data,
//! and its steps. `ALL` lists them; the runner, the CLI and the test target read only that.

use sendtest::case::Case;

mod clone_eof_block;
mod clone_from_orphan;
mod encoded_inline_then_fallocate;
mod encoded_inline_truncated_then_reflinked;
mod hole_over_data;
mod inode_number_reuse;
mod orphan_in_parent;
mod random;
mod random_concurrent;
mod receive_write_after_rename;
mod rename_dependencies;
mod ro_flip_with_delalloc;
mod send_alloc_failure;
mod send_during_balance;
mod setuid_after_chown;
mod snapshot_during_send;

/// Every case, in the order `sendtest list` shows them.
pub const ALL: &[&Case] = &[
    &ro_flip_with_delalloc::CASE,
    &snapshot_during_send::CASE,
    &random::CASE,
    &random_concurrent::CASE,
    &encoded_inline_then_fallocate::CASE,
    &encoded_inline_truncated_then_reflinked::CASE,
    &setuid_after_chown::CASE,
    &clone_from_orphan::CASE,
    &receive_write_after_rename::CASE,
    &rename_dependencies::CASE,
    &orphan_in_parent::CASE,
    &clone_eof_block::CASE,
    &hole_over_data::CASE,
    &inode_number_reuse::CASE,
    &send_during_balance::CASE,
    &send_alloc_failure::CASE,
];

/// The send bugs the random cases know of (see `random.rs`).
pub use random::KNOWN_BUGS;

/// The case called `name`.
pub fn by_name(name: &str) -> Option<&'static Case> {
    ALL.iter().copied().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case_and_every_case_is_in_a_group() {
        let mut seen = std::collections::HashSet::new();
        for case in ALL {
            assert!(seen.insert(case.name), "duplicate case {}", case.name);
            assert!(
                case.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                case.name
            );
            assert!(!case.groups.is_empty(), "{} has no group", case.name);
            assert!(
                !case.fix.commit.is_empty() && !case.fix.subject.is_empty(),
                "{} lacks its fix",
                case.name
            );
            sendtest::manifest::Ignore::new(case.ignore).unwrap();
        }
    }

    #[test]
    fn a_bug_no_kernel_fixes_has_a_proposed_fix_that_says_why() {
        for case in ALL.iter().filter(|c| c.in_group("unfixed")) {
            let patch = case
                .fix
                .proposed
                .unwrap_or_else(|| panic!("{} has no proposed fix", case.name));
            // A fix of send in the kernel, or of receive in btrfs-progs.
            let (subject, file) = match case.fix.applies_to {
                sendtest::case::Component::Kernel => ("btrfs: send: ", "fs/btrfs/send.c"),
                sendtest::case::Component::BtrfsProgs => {
                    ("btrfs-progs: receive: ", "cmds/receive.c")
                }
            };
            assert!(
                patch.starts_with(&format!("Subject: [PATCH] {subject}")),
                "{}: a proposed fix opens with its subject",
                case.name
            );
            let (message, diff) = patch.split_once("\n---\n").unwrap();
            assert!(
                message.lines().count() > 5,
                "{}: the root cause, in a paragraph",
                case.name
            );
            assert!(
                diff.starts_with(&format!("--- a/{file}\n+++ b/{file}\n@@ ")),
                "{}",
                case.name
            );
            assert_eq!(
                case.fix.fix_subject(),
                &message["Subject: [PATCH] ".len()..message.find('\n').unwrap()]
            );
            assert!(
                case.fix.revert.is_none(),
                "{}: unfixed, nothing to revert",
                case.name
            );
        }
    }

    /// A known bug's fix is a kernel patch in the repository, for the exact test of a seed on a
    /// kernel tree; a bug of btrfs-progs has none there, and names the case that holds its
    /// fix instead.
    #[test]
    fn each_known_bug_s_fix_is_a_patch_in_the_repository() {
        let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for bug in random::KNOWN_BUGS {
            match bug.fix {
                Some(fix) => {
                    let text = std::fs::read_to_string(top.join(fix)).unwrap();
                    assert!(text.starts_with("Subject: [PATCH] btrfs: send: "), "{fix}");
                }
                None => {
                    let case = ALL
                        .iter()
                        .find(|c| bug.summary.contains(&format!("the case {}", c.name)))
                        .unwrap_or_else(|| panic!("{} has no fix and names no case", bug.name));
                    assert!(case.fix.proposed.is_some(), "{}", case.name);
                    assert_eq!(case.fix.applies_to, sendtest::case::Component::BtrfsProgs);
                }
            }
        }
    }
}
