//! What each send of a chain is sent against. Backups do not always send each snapshot against
//! the one before: they send against an older one that the receiver still has, offer clone
//! sources with `-c`, and now and then send a snapshot in full again. Send finds clone sources
//! and computes differences along other paths for each, and fstests has tests for bugs in each
//! (btrfs/0xx with `-c`, btrfs/2xx with older parents). A soak draws one per seed, as it draws
//! the way to receive; `--parents` fixes one.

use std::str::FromStr;

/// How the snapshots after the first are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parents {
    /// `-p` the snapshot before.
    #[default]
    Previous,
    /// `-p` the first snapshot, for every later one: the differences span several steps.
    First,
    /// `-p` the snapshot before, and `-c` every snapshot older than it as a clone source.
    Clones,
    /// `-p` the snapshot before; then the last snapshot sent again in full, received beside
    /// the chain into `full/`, and compared too.
    FullToo,
    /// `-p` the snapshot before; then the last snapshot sent again against a twin: a snapshot
    /// of a fresh subvolume given the list's operations up to its first snapshot. Its inodes
    /// carry the same numbers as the chain's (a fresh subvolume numbers them in the same
    /// order) and newer generations, so send meets each as a number reused by a new inode, as
    /// it does after a file's number is reused across a mount (fstests' btrfs/1xx inode reuse
    /// tests): the old inode deleted, the new one created, in one stream. Received beside the
    /// chain into `twin/`, the twin first, and compared.
    Twin,
}

impl Parents {
    pub const ALL: [Parents; 5] = [
        Parents::Previous,
        Parents::First,
        Parents::Clones,
        Parents::FullToo,
        Parents::Twin,
    ];

    /// The way a seed's chain sends: a third of the seeds against a twin too, a sixth each of
    /// the others. (A twin's chain sends as `previous` does, and then once more.)
    pub fn draw(seed: u64) -> Parents {
        let hash = (seed ^ 0x9a7e_4e55).wrapping_mul(0xd1b5_4a32_d192_ed03);
        match (hash >> 32) % 6 {
            0 => Parents::Previous,
            1 | 2 => Parents::Twin,
            3 => Parents::First,
            4 => Parents::Clones,
            _ => Parents::FullToo,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Parents::Previous => "previous",
            Parents::First => "first",
            Parents::Clones => "clones",
            Parents::FullToo => "full-too",
            Parents::Twin => "twin",
        }
    }

    /// The snapshots (their indices) that snapshot `i` (from 0) is sent against: its parent
    /// first, then its clone sources.
    pub fn clone_sources(self, i: usize) -> Vec<usize> {
        if i == 0 {
            return Vec::new();
        }
        let parent = match self {
            Parents::First => 0,
            _ => i - 1,
        };
        let mut sources = vec![parent];
        if self == Parents::Clones {
            sources.extend(0..i - 1);
        }
        sources
    }

    /// The `btrfs send` options for snapshot `i` (from 0) given the snapshots' `paths`: the
    /// parent and the clone sources.
    pub fn options<T: Clone>(self, i: usize, paths: &[T], dash_p: T, dash_c: T) -> Vec<T> {
        self.clone_sources(i)
            .into_iter()
            .enumerate()
            .flat_map(|(k, n)| {
                let flag = if k == 0 { &dash_p } else { &dash_c };
                [flag.clone(), paths[n].clone()]
            })
            .collect()
    }

    /// [`Self::options`] for a shell line: each word followed by a space, the snapshots named
    /// by `path(n)`.
    pub fn shell_words(self, i: usize, count: usize, path: &dyn Fn(usize) -> String) -> String {
        let paths: Vec<String> = (0..count).map(path).collect();
        self.options(i, &paths, "-p".to_string(), "-c".to_string())
            .iter()
            .map(|word| format!("{word} "))
            .collect()
    }

    /// Whether snapshot `i` of `count` is also sent in full and compared: the last, when
    /// there is more than one (a full send of every later one would cost a soak a fifth of its
    /// seeds).
    pub fn full_too(self, i: usize, count: usize) -> bool {
        self == Parents::FullToo && i > 0 && i + 1 == count
    }

    /// Whether snapshot `i` of `count` is also sent against the twin: the last.
    pub fn twin(self, i: usize, count: usize) -> bool {
        self == Parents::Twin && i + 1 == count
    }
}

/// The directory under a receiving one that full sends of later snapshots go into.
pub const FULL_DIR: &str = "full";

/// The directory under a receiving one that the twin, and the last snapshot sent against it,
/// go into.
pub const TWIN_DIR: &str = "twin";

/// The operations a twin is given: those before the list's first snapshot (all, when it has
/// none), but the flips of snapshots, which act on no subvolume's contents.
pub fn twin_ops(ops: &[super::ops::Op]) -> impl Iterator<Item = &super::ops::Op> {
    use super::ops::Op;
    use super::wide::Wide;
    ops.iter()
        .take_while(|op| **op != Op::Snapshot)
        .filter(|op| !matches!(op, Op::Wide(Wide::FlipSnapshot { .. })))
}

impl FromStr for Parents {
    type Err = String;

    fn from_str(text: &str) -> Result<Parents, String> {
        Parents::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Parents::ALL.iter().map(|p| p.name()).collect();
                format!("`{text}` is not a way to send: {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_way_names_its_parent_and_clone_sources() {
        let snaps = ["s0", "s1", "s2", "s3"];
        let opts = |p: Parents, i| p.options(i, &snaps, "-p", "-c").join(" ");
        assert_eq!(opts(Parents::Previous, 0), "");
        assert_eq!(opts(Parents::Previous, 3), "-p s2");
        assert_eq!(opts(Parents::First, 3), "-p s0");
        assert_eq!(opts(Parents::Clones, 1), "-p s0");
        assert_eq!(opts(Parents::Clones, 3), "-p s2 -c s0 -c s1");
        assert!(Parents::FullToo.full_too(3, 4) && !Parents::FullToo.full_too(2, 4));
        assert!(!Parents::FullToo.full_too(0, 1));
        assert!(!Parents::Clones.full_too(3, 4));
        assert!(Parents::Twin.twin(3, 4) && Parents::Twin.twin(0, 1));
        assert!(!Parents::Twin.twin(2, 4) && !Parents::FullToo.twin(3, 4));
        assert_eq!(opts(Parents::Twin, 3), "-p s2");
        for way in Parents::ALL {
            assert_eq!(way.name().parse::<Parents>(), Ok(way));
        }
        assert!("sideways".parse::<Parents>().unwrap_err().contains("twin"));
        assert!("sideways"
            .parse::<Parents>()
            .unwrap_err()
            .contains("previous"));
    }

    #[test]
    fn seeds_draw_each_way_about_as_often_as_meant() {
        let mut counts = [0usize; 5];
        for seed in 0..6000u64 {
            assert_eq!(Parents::draw(seed), Parents::draw(seed));
            counts[Parents::ALL
                .iter()
                .position(|p| *p == Parents::draw(seed))
                .unwrap()] += 1;
        }
        // previous, first, clones, full-too: a sixth each; twin: a third.
        for count in &counts[..4] {
            assert!((800..1200).contains(count), "{counts:?}");
        }
        assert!((1800..2200).contains(&counts[4]), "{counts:?}");
    }

    #[test]
    fn a_twin_is_given_the_operations_before_the_first_snapshot_but_flips() {
        use super::super::ops::Op;
        use super::super::wide::Wide;
        let mkdir = |p: &str| Op::Mkdir { path: p.into() };
        let flip = Op::Wide(Wide::FlipSnapshot { touch: true });
        let ops = [
            mkdir("a"),
            flip.clone(),
            mkdir("b"),
            Op::Snapshot,
            mkdir("c"),
        ];
        let got: Vec<&Op> = twin_ops(&ops).collect();
        assert_eq!(got, [&mkdir("a"), &mkdir("b")]);
        let unsnapped = [mkdir("a"), mkdir("c")];
        assert_eq!(twin_ops(&unsnapped).count(), 2);
    }
}
