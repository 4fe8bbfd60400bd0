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
}

impl Parents {
    pub const ALL: [Parents; 4] = [
        Parents::Previous,
        Parents::First,
        Parents::Clones,
        Parents::FullToo,
    ];

    /// The way a seed's chain sends: half of the seeds against the snapshot before, a sixth
    /// each of the others.
    pub fn draw(seed: u64) -> Parents {
        let hash = (seed ^ 0x9a7e_4e55).wrapping_mul(0xd1b5_4a32_d192_ed03);
        match (hash >> 32) % 6 {
            0..=2 => Parents::Previous,
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
}

/// The directory under a receiving one that full sends of later snapshots go into.
pub const FULL_DIR: &str = "full";

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
        for way in Parents::ALL {
            assert_eq!(way.name().parse::<Parents>(), Ok(way));
        }
        assert!("sideways"
            .parse::<Parents>()
            .unwrap_err()
            .contains("previous"));
    }

    #[test]
    fn seeds_draw_each_way_about_as_often_as_meant() {
        let mut counts = [0usize; 4];
        for seed in 0..6000u64 {
            assert_eq!(Parents::draw(seed), Parents::draw(seed));
            counts[Parents::ALL
                .iter()
                .position(|p| *p == Parents::draw(seed))
                .unwrap()] += 1;
        }
        assert!((2700..3300).contains(&counts[0]), "{counts:?}");
        for count in &counts[1..] {
            assert!((800..1200).contains(count), "{counts:?}");
        }
    }
}
