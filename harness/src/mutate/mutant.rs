//! Mutants as data: which file and line, which operator, the unified diff that makes it, and a
//! name that stays the same between runs (for resuming, sharding and the allow-list). Also
//! which mutants a run takes: the lines a patch changes (`--in-diff`), a seeded sample
//! (`--max`, `--seed`), and one shard of N (`--shard K/N`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::operators::{edits, Edit, Operator};

/// One fault in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutant {
    /// `<file>:<line>:<operator>:<k>`, k counting the same operator on the same line from 1.
    pub id: String,
    /// The file, relative to the tree's top.
    pub file: String,
    pub line: usize,
    pub operator: Operator,
    /// The line as it was, and as the mutant has it (first lines only, for reports).
    pub before: String,
    pub after: String,
    /// A unified diff (`patch -p1` from the tree's top).
    pub diff: String,
    /// The change itself, to apply to the file as it is in the tree.
    pub edit: Edit,
}

impl Mutant {
    /// A mutant of `file` at `line` that changes nothing, for tests of what handles verdicts.
    #[cfg(test)]
    pub(crate) fn for_tests(id: &str, file: &str, line: usize) -> Mutant {
        let operator = Operator::NegateIf;
        Mutant {
            id: id.into(),
            file: file.into(),
            line,
            operator,
            before: String::new(),
            after: String::new(),
            diff: String::new(),
            edit: Edit {
                operator,
                start: 0,
                end: 0,
                replacement: String::new(),
            },
        }
    }

    /// The mutated file, from the tree's copy.
    pub fn mutated_file(&self, tree: &Path) -> Result<String> {
        let source = std::fs::read_to_string(tree.join(&self.file))
            .with_context(|| format!("reading {} in {}", self.file, tree.display()))?;
        Ok(self.edit.apply(&source))
    }
}

/// The mutant ids in `text`: per line, the first word shaped `FILE:LINE:OPERATOR:N`, as
/// `missed.txt`, `caught.txt` and allow-lists write them.
pub fn ids_in(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            l.split_whitespace().find(|word| {
                let parts: Vec<&str> = word.split(':').collect();
                parts.len() == 4
                    && parts[1].parse::<usize>().is_ok()
                    && parts[3].parse::<usize>().is_ok()
            })
        })
        .map(str::to_string)
        .collect()
}

/// Every mutant of `file` (relative to `tree`), in the order of the text.
pub fn mutants_of(tree: &Path, file: &str) -> Result<Vec<Mutant>> {
    let path = tree.join(file);
    let source = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no {file} in {}: pass --file with a file of the tree",
            tree.display()
        )
    })?;
    let mut seen: BTreeMap<(usize, Operator), usize> = BTreeMap::new();
    let mut mutants = Vec::new();
    for edit in edits(&source) {
        let mutated = edit.apply(&source);
        let line = edit.line(&source);
        let k = seen.entry((line, edit.operator)).or_insert(0);
        *k += 1;
        let before = source
            .lines()
            .nth(line - 1)
            .unwrap_or("")
            .trim()
            .to_string();
        let after = mutated
            .lines()
            .nth(line - 1)
            .unwrap_or("")
            .trim()
            .to_string();
        mutants.push(Mutant {
            id: format!("{file}:{line}:{}:{k}", edit.operator),
            file: file.to_string(),
            line,
            operator: edit.operator,
            before,
            after,
            diff: unified_diff(file, &source, &mutated),
            edit,
        });
    }
    Ok(mutants)
}

/// A unified diff of `old` → `new` for `file`, with three lines of context: one hunk, from the
/// first line that differs to the last.
pub fn unified_diff(file: &str, old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let context = 3;
    let start = prefix.saturating_sub(context);
    let (a_end, b_end) = (
        (a.len() - suffix + context).min(a.len()),
        (b.len() - suffix + context).min(b.len()),
    );
    let mut diff = format!(
        "--- a/{file}\n+++ b/{file}\n@@ -{},{} +{},{} @@\n",
        start + 1,
        a_end - start,
        start + 1,
        b_end - start
    );
    for line in &a[start..prefix] {
        diff.push_str(&format!(" {line}\n"));
    }
    for line in &a[prefix..a.len() - suffix] {
        diff.push_str(&format!("-{line}\n"));
    }
    for line in &b[prefix..b.len() - suffix] {
        diff.push_str(&format!("+{line}\n"));
    }
    for line in &a[a.len() - suffix..a_end] {
        diff.push_str(&format!(" {line}\n"));
    }
    diff
}

/// The lines a unified diff adds or changes, per file (new-side line numbers): what
/// `--in-diff` keeps mutants to.
pub fn changed_lines(patch: &str) -> BTreeMap<String, BTreeSet<usize>> {
    let mut changed: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    let mut file: Option<String> = None;
    let mut line = 0usize;
    for text in patch.lines() {
        if let Some(path) = text.strip_prefix("+++ ") {
            let path = path.split('\t').next().unwrap_or(path);
            file = (path != "/dev/null").then(|| {
                path.split_once('/')
                    .map_or(path, |(_, rest)| rest)
                    .to_string()
            });
        } else if let Some(hunk) = text.strip_prefix("@@ ") {
            // @@ -a,b +c,d @@
            line = hunk
                .split_whitespace()
                .find_map(|w| w.strip_prefix('+'))
                .and_then(|w| w.split(',').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if text.starts_with("---") {
        } else if let Some(file) = &file {
            if text.starts_with('+') {
                changed.entry(file.clone()).or_default().insert(line);
                line += 1;
            } else if text.starts_with(' ') || text.is_empty() {
                line += 1;
            }
        }
    }
    changed
}

/// Keeps the mutants on the lines `changed` names.
pub fn in_diff(mutants: Vec<Mutant>, changed: &BTreeMap<String, BTreeSet<usize>>) -> Vec<Mutant> {
    mutants
        .into_iter()
        .filter(|m| {
            changed
                .get(&m.file)
                .is_some_and(|lines| lines.contains(&m.line))
        })
        .collect()
}

/// At most `max` mutants, drawn with `seed` (the same seed draws the same sample), in the
/// order of the text.
pub fn sample(mutants: Vec<Mutant>, max: usize, seed: u64) -> Vec<Mutant> {
    if mutants.len() <= max {
        return mutants;
    }
    let mut rng = crate::random::ops::Rng::new(seed);
    let mut indices: Vec<usize> = (0..mutants.len()).collect();
    // Fisher-Yates, the first `max` places only.
    for i in 0..max {
        let j = i + rng.below((indices.len() - i) as u64) as usize;
        indices.swap(i, j);
    }
    let mut chosen: Vec<usize> = indices[..max].to_vec();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| mutants[i].clone()).collect()
}

/// `K/N`: shard K (from 1) of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl Shard {
    pub fn parse(text: &str) -> Result<Shard> {
        let parsed = text
            .split_once('/')
            .and_then(|(k, n)| Some((k.parse().ok()?, n.parse().ok()?)));
        match parsed {
            Some((k, n)) if n >= 1 && (1..=n).contains(&k) => Ok(Shard { k, n }),
            _ => bail!("`{text}` is not a shard: write K/N with 1 <= K <= N, e.g. --shard 2/4"),
        }
    }

    /// Every N-th mutant, starting at the K-th: the shards of one list cover it exactly once.
    pub fn take(self, mutants: Vec<Mutant>) -> Vec<Mutant> {
        mutants
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.n == self.k - 1)
            .map(|(_, m)| m)
            .collect()
    }
}

/// An allow-list of equivalent mutants (a change that cannot alter behaviour): one per line,
/// `<id> <reason>`; `#` starts a comment. A line without a reason is an error.
pub fn read_allow_list(name: &str, text: &str) -> Result<BTreeMap<String, String>> {
    let mut allowed = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once(char::is_whitespace) {
            Some((id, reason)) if !reason.trim().is_empty() => {
                allowed.insert(id.to_string(), reason.trim().to_string());
            }
            _ => bail!(
                "{name}:{}: `{line}` has no reason: write `<mutant id> <why it cannot change behaviour>`",
                n + 1
            ),
        }
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str =
        "int a;\nint b;\nint f(int x)\n{\n\tif (x == 1)\n\t\treturn 2;\n\treturn 0;\n}\nint c;\n";

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fs/btrfs")).unwrap();
        std::fs::write(dir.path().join("fs/btrfs/send.c"), SOURCE).unwrap();
        dir
    }

    #[test]
    fn mutants_have_stable_ids_and_diffs_that_patch_applies() {
        let dir = tree();
        let mutants = mutants_of(dir.path(), "fs/btrfs/send.c").unwrap();
        let ids: Vec<&str> = mutants.iter().map(|m| m.id.as_str()).collect();
        assert!(ids.contains(&"fs/btrfs/send.c:5:equality:1"), "{ids:?}");
        assert!(ids.contains(&"fs/btrfs/send.c:5:off-by-one:1"), "{ids:?}");
        assert!(ids.contains(&"fs/btrfs/send.c:6:return-zero:1"), "{ids:?}");
        let equality = mutants
            .iter()
            .find(|m| m.operator == Operator::Equality)
            .unwrap();
        assert_eq!(
            (equality.before.as_str(), equality.after.as_str()),
            ("if (x == 1)", "if (x != 1)")
        );
        let patch = dir.path().join("m.patch");
        std::fs::write(&patch, &equality.diff).unwrap();
        let status = std::process::Command::new("patch")
            .args(["-s", "-p1", "-d"])
            .arg(dir.path())
            .arg("-i")
            .arg(&patch)
            .status()
            .unwrap();
        assert!(status.success(), "{}", equality.diff);
        let patched = std::fs::read_to_string(dir.path().join("fs/btrfs/send.c")).unwrap();
        assert_eq!(patched, SOURCE.replace("x == 1", "x != 1"));
    }

    #[test]
    fn ids_are_read_from_verdict_lists_and_allow_lists() {
        let text = "missed   cmds/receive.c:96:off-by-one:1 (off-by-one: `a:b:c:1`)\n# a comment x.c:1:y:1\ncommon/send-stream.c:12:negate-if:2 prints only\n";
        let ids: Vec<String> = ids_in(text).into_iter().collect();
        assert_eq!(
            ids,
            [
                "cmds/receive.c:96:off-by-one:1",
                "common/send-stream.c:12:negate-if:2"
            ]
        );
    }

    #[test]
    fn in_diff_keeps_the_lines_a_patch_adds() {
        let patch = "--- a/fs/btrfs/send.c\n+++ b/fs/btrfs/send.c\n@@ -4,3 +4,3 @@\n {\n-\tif (x)\n+\tif (x == 1)\n \t\treturn 2;\n";
        let changed = changed_lines(patch);
        assert_eq!(changed["fs/btrfs/send.c"], BTreeSet::from([5]));
        let dir = tree();
        let kept = in_diff(mutants_of(dir.path(), "fs/btrfs/send.c").unwrap(), &changed);
        assert!(
            !kept.is_empty() && kept.iter().all(|m| m.line == 5),
            "{kept:?}"
        );
    }

    #[test]
    fn samples_repeat_with_their_seed_and_shards_cover_the_list_once() {
        let dir = tree();
        let all = mutants_of(dir.path(), "fs/btrfs/send.c").unwrap();
        assert!(all.len() > 4);
        let one = sample(all.clone(), 3, 42);
        assert_eq!(one, sample(all.clone(), 3, 42));
        assert_eq!(one.len(), 3);
        let mut covered: Vec<String> = Vec::new();
        for k in 1..=3 {
            covered.extend(
                Shard { k, n: 3 }
                    .take(all.clone())
                    .into_iter()
                    .map(|m| m.id),
            );
        }
        covered.sort();
        let mut ids: Vec<String> = all.iter().map(|m| m.id.clone()).collect();
        ids.sort();
        assert_eq!(covered, ids);
        assert!(Shard::parse("0/2").is_err() && Shard::parse("3/2").is_err());
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { k: 2, n: 4 });
    }

    #[test]
    fn allow_lists_need_a_reason() {
        let allowed = read_allow_list(
            "a",
            "# equivalent\nx.c:1:off-by-one:1 only sizes a buffer\n",
        )
        .unwrap();
        assert_eq!(allowed["x.c:1:off-by-one:1"], "only sizes a buffer");
        assert!(read_allow_list("a", "x.c:1:off-by-one:1\n").is_err());
    }

    #[test]
    fn the_shipped_allow_lists_name_mutants_with_reasons() {
        let lists = [
            (
                "linux-6.1-send.allow",
                include_str!("../../../.ci/linux-6.1-send.allow"),
            ),
            (
                "btrfs-progs-6.2-receive.allow",
                include_str!("../../../.ci/btrfs-progs-6.2-receive.allow"),
            ),
        ];
        for (name, text) in lists {
            let allowed = read_allow_list(name, text).unwrap();
            assert!(!allowed.is_empty(), "{name}");
            for id in allowed.keys() {
                // <file>:<line>:<operator>:<n>, the operator one that sendtest makes.
                let parts: Vec<&str> = id.split(':').collect();
                assert_eq!(parts.len(), 4, "{name}: {id}");
                assert!(parts[1].parse::<u32>().is_ok() && parts[3].parse::<u32>().is_ok());
                assert!(
                    super::super::operators::Operator::ALL
                        .iter()
                        .any(|o| o.name() == parts[2]),
                    "{name}: {id}"
                );
            }
        }
    }
}
