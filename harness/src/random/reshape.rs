//! Operations that reshape the directory tree between snapshots, which an incremental send
//! finds the hardest to describe: whole subtrees removed (send must remove a directory only
//! once every entry in it is gone, orphanizing what it cannot yet remove: `can_rmdir`), a
//! directory and its child trading places (each now names the other as parent, so send must
//! delay one rename until the other's is done: `add_pending_dir_move`, `apply_dir_move`), and a
//! directory moved under a new directory that took its name (a new inode with an old name, so
//! the old one is orphanized first). fstests' send tests are full of these (btrfs/087, 105, 117
//! and others each name a fix). The small pool of names seldom makes them: a directory of the
//! pool is rarely empty, so `rmdir` of it fails, and renames of directories rarely nest.
//!
//! They are drawn from a stream of their own ([`insert`]), so a seed's other operations stay
//! what they were, and each leaves the pool's names in place where it can, so the operations
//! after it still find their paths.

use std::fmt;
use std::io;
use std::path::Path;

use super::ops::{Op, Rng};
use super::wide::base_name;

/// The directories that have a child directory in the pool, and that child's name.
const NESTED: &[(&str, &str)] = &[("d0", "e0"), ("d1", "e1")];
const DIRS: &[&str] = &["d0", "d1", "d0/e0", "d1/e1"];

/// One reshaping operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reshape {
    /// `rm -rf`: the directory and all under it (a file or symlink of that name alone).
    RemoveTree { dir: String },
    /// `parent` and its child directory `child` (a path under it) trade places: the child's
    /// inode takes the parent's name, and the parent's inode goes under it with the child's
    /// name. Each keeps its other entries.
    Invert { parent: String, child: String },
    /// `dir` moved aside, a new directory made with its name, and `dir` moved under the new
    /// one as `old`.
    Reparent { dir: String },
}

/// Every name [`Reshape::kind`] gives.
pub const KINDS: &[&str] = &["remove-tree", "invert", "reparent"];

/// Reshaping operations per base operation: one in this many.
const RATE: usize = 25;

/// Inserts `ops.len() / RATE` reshaping operations (at least one) into `ops` at places drawn
/// from their own stream of `seed`.
pub fn insert(seed: u64, ops: &mut Vec<Op>) {
    let mut rng = Rng::new(seed ^ 0x5e5a_9ed1_u64);
    super::ops::insert_drawn(ops, &mut rng, RATE, |rng| Op::Reshape(one(rng)));
}

fn one(rng: &mut Rng) -> Reshape {
    match rng.below(10) {
        0..=2 => Reshape::RemoveTree {
            dir: DIRS[rng.below(DIRS.len() as u64) as usize].to_string(),
        },
        3..=6 => {
            let (parent, child) = NESTED[rng.below(NESTED.len() as u64) as usize];
            Reshape::Invert {
                parent: parent.to_string(),
                child: format!("{parent}/{child}"),
            }
        }
        _ => Reshape::Reparent {
            dir: DIRS[rng.below(DIRS.len() as u64) as usize].to_string(),
        },
    }
}

/// Where a directory waits while it is moved: beside it, as `<path>.t`.
fn aside(path: &str) -> String {
    format!("{path}.t")
}

impl Reshape {
    pub fn kind(&self) -> &'static str {
        match self {
            Reshape::RemoveTree { .. } => "remove-tree",
            Reshape::Invert { .. } => "invert",
            Reshape::Reparent { .. } => "reparent",
        }
    }

    /// Applies it under `root`, step by step as the shell's `&&` does: an error means it
    /// stopped at the step that failed.
    pub fn apply(&self, root: &Path) -> io::Result<()> {
        let at = |p: &str| root.join(p);
        match self {
            Reshape::RemoveTree { dir } => {
                if dir.is_empty() {
                    return Err(io::Error::from(io::ErrorKind::InvalidInput));
                }
                // As `rm -rf`: a directory with everything in it, anything else by itself
                // (a symlink is removed, not followed), and nothing to remove is no error.
                match std::fs::symlink_metadata(at(dir)) {
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(at(dir)),
                    Ok(_) => std::fs::remove_file(at(dir)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Reshape::Invert { parent, child } => {
                let aside = aside(parent);
                std::fs::rename(at(child), at(&aside))?;
                std::fs::rename(at(parent), at(&format!("{aside}/{}", base_name(child))))?;
                std::fs::rename(at(&aside), at(parent))
            }
            Reshape::Reparent { dir } => {
                let aside = aside(dir);
                std::fs::rename(at(dir), at(&aside))?;
                std::fs::create_dir(at(dir))?;
                std::fs::rename(at(&aside), at(&format!("{dir}/old")))
            }
        }
    }

    pub fn paths_mut(&mut self) -> Vec<&mut String> {
        match self {
            Reshape::RemoveTree { dir } | Reshape::Reparent { dir } => vec![dir],
            Reshape::Invert { parent, child } => vec![parent, child],
        }
    }
}

/// The shell commands that do what [`Reshape::apply`] does, as one command. `mv -T` renames as
/// rename(2) does (it never moves into a directory that has the target's name).
impl fmt::Display for Reshape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `./` so that a path made empty could never name the directory the script is in
            // (`rm` refuses to remove `.`).
            Reshape::RemoveTree { dir } => write!(f, "rm -rf -- ./{dir}"),
            Reshape::Invert { parent, child } => {
                let aside = aside(parent);
                write!(
                    f,
                    "{{ mv -T {child} {aside} && mv -T {parent} {aside}/{} && mv -T {aside} {parent}; }}",
                    base_name(child)
                )
            }
            Reshape::Reparent { dir } => {
                let aside = aside(dir);
                write!(
                    f,
                    "{{ mv -T {dir} {aside} && mkdir {dir} && mv -T {aside} {dir}/old; }}"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn ino(path: &Path) -> u64 {
        std::fs::symlink_metadata(path).unwrap().ino()
    }

    #[test]
    fn each_seed_inserts_the_same_and_keeps_the_others_in_order() {
        let base: Vec<Op> = (0..200)
            .map(|i| Op::Mkdir {
                path: format!("x{i}"),
            })
            .collect();
        let mut one = base.clone();
        insert(5, &mut one);
        let mut again = base.clone();
        insert(5, &mut again);
        assert_eq!(one, again);
        assert_eq!(one.len(), 208);
        let kept: Vec<&Op> = one
            .iter()
            .filter(|o| !matches!(o, Op::Reshape(_)))
            .collect();
        assert_eq!(kept, base.iter().collect::<Vec<_>>());
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..50 {
            let mut ops = Vec::new();
            insert(seed, &mut ops);
            kinds.extend(ops.iter().map(Op::kind));
        }
        assert_eq!(kinds.len(), KINDS.len(), "{kinds:?}");
        for kind in KINDS {
            assert!(crate::random::ops::KINDS.contains(kind), "{kind}");
        }
    }

    #[test]
    fn invert_swaps_the_inodes_and_keeps_the_names_and_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("d0/e0")).unwrap();
        std::fs::write(root.join("d0/f4"), b"4").unwrap();
        std::fs::write(root.join("d0/e0/f7"), b"7").unwrap();
        let (d0, e0) = (ino(&root.join("d0")), ino(&root.join("d0/e0")));
        let invert = Reshape::Invert {
            parent: "d0".into(),
            child: "d0/e0".into(),
        };
        invert.apply(root).unwrap();
        assert_eq!(ino(&root.join("d0")), e0);
        assert_eq!(ino(&root.join("d0/e0")), d0);
        assert_eq!(std::fs::read(root.join("d0/f7")).unwrap(), b"7");
        assert_eq!(std::fs::read(root.join("d0/e0/f4")).unwrap(), b"4");
        assert!(!root.join("d0.t").exists());
        assert_eq!(
            invert.to_string(),
            "{ mv -T d0/e0 d0.t && mv -T d0 d0.t/e0 && mv -T d0.t d0; }"
        );
        // Without the child it stops at the first step and changes nothing.
        assert!(Reshape::Invert {
            parent: "d1".into(),
            child: "d1/e1".into()
        }
        .apply(root)
        .is_err());
    }

    #[test]
    fn reparent_and_remove_tree_as_the_shell_would() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("d1/e1")).unwrap();
        std::fs::write(root.join("d1/f6"), b"6").unwrap();
        let d1 = ino(&root.join("d1"));
        let reparent = Reshape::Reparent { dir: "d1".into() };
        reparent.apply(root).unwrap();
        assert_eq!(ino(&root.join("d1/old")), d1);
        assert_ne!(ino(&root.join("d1")), d1);
        assert_eq!(std::fs::read(root.join("d1/old/f6")).unwrap(), b"6");
        assert_eq!(
            reparent.to_string(),
            "{ mv -T d1 d1.t && mkdir d1 && mv -T d1.t d1/old; }"
        );
        let remove = Reshape::RemoveTree { dir: "d1".into() };
        remove.apply(root).unwrap();
        assert!(!root.join("d1").exists());
        assert_eq!(remove.to_string(), "rm -rf -- ./d1");
        // Nothing there is no error, as with `rm -rf`; a symlink goes, its target stays.
        remove.apply(root).unwrap();
        std::fs::create_dir(root.join("t")).unwrap();
        std::os::unix::fs::symlink("t", root.join("d1")).unwrap();
        remove.apply(root).unwrap();
        assert!(root.join("t").is_dir() && std::fs::symlink_metadata(root.join("d1")).is_err());
    }
}
