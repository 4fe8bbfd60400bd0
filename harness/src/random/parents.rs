//! What each send of a chain is sent against. Backups do not always send each snapshot against
//! the one before: they send against an older one that the receiver still has, offer clone
//! sources with `-c`, and now and then send a snapshot in full again. Send finds clone sources
//! and computes differences along other paths for each, and fstests has tests for bugs in each
//! (btrfs/0xx with `-c`, btrfs/2xx with older parents). A soak draws one per seed, as it draws
//! the way to receive; `--parents` fixes one.

use std::ops::Range;
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
    /// `-p` the first snapshot, every later one in one `btrfs send -p FIRST S1 S2 …`: a stream
    /// for each snapshot, one after another in one file, which one `btrfs receive` takes whole
    /// (it reads stream after stream until the file ends).
    Bundle,
    /// As `bundle`, with send's `-e`: one stream holding several subvolumes (the kernel leaves
    /// out the header of each but the first and the end of each but the last; receive finishes
    /// each subvolume when the next begins).
    BundleOneStream,
}

impl Parents {
    pub const ALL: [Parents; 7] = [
        Parents::Previous,
        Parents::First,
        Parents::Clones,
        Parents::FullToo,
        Parents::Twin,
        Parents::Bundle,
        Parents::BundleOneStream,
    ];

    /// The way a seed's chain sends: a sixth each of the seeds `previous`, `first`, `clones`,
    /// `full-too` and `twin`, a twelfth each `bundle` and `bundle-e`. (A twin's chain sends as
    /// `previous` does, and then once more; the bundles took half of the third that twin had,
    /// so that the seeds of the other ways kept theirs.)
    pub fn draw(seed: u64) -> Parents {
        let hash = (seed ^ 0x9a7e_4e55).wrapping_mul(0xd1b5_4a32_d192_ed03);
        match (hash >> 32) % 6 {
            0 => Parents::Previous,
            1 => Parents::Twin,
            2 if (hash >> 20) & 1 == 0 => Parents::Bundle,
            2 => Parents::BundleOneStream,
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
            Parents::Bundle => "bundle",
            Parents::BundleOneStream => "bundle-e",
        }
    }

    /// The snapshots (their indices) that snapshot `i` (from 0) is sent against: its parent
    /// first, then its clone sources.
    pub fn clone_sources(self, i: usize) -> Vec<usize> {
        if i == 0 {
            return Vec::new();
        }
        let parent = match self {
            Parents::First | Parents::Bundle | Parents::BundleOneStream => 0,
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

    /// The `btrfs send`s of a chain of `count` snapshots, each the range of snapshots it sends:
    /// one each, or the first and then the rest in one.
    pub fn sends(self, count: usize) -> Vec<Range<usize>> {
        match self {
            Parents::Bundle | Parents::BundleOneStream if count > 1 => vec![0..1, 1..count],
            _ => (0..count).map(|i| i..i + 1).collect(),
        }
    }

    /// The words of the `btrfs send` of the snapshots `sent` (a range of [`Self::sends`]),
    /// given the snapshots' `paths`: the options (`-e`, made by `word`, then [`Self::options`]),
    /// then the snapshots.
    pub fn send_words<T: Clone>(
        self,
        sent: Range<usize>,
        paths: &[T],
        word: &dyn Fn(&'static str) -> T,
    ) -> Vec<T> {
        let mut words = Vec::new();
        if self == Parents::BundleOneStream && sent.len() > 1 {
            words.push(word("-e"));
        }
        words.extend(self.options(sent.start, paths, word("-p"), word("-c")));
        words.extend(paths[sent].iter().cloned());
        words
    }

    /// The streams, and the ends, that the send of the snapshots `sent` must write: one for
    /// each snapshot, but one in all with `-e`.
    pub fn streams(self, sent: &Range<usize>) -> usize {
        if self == Parents::BundleOneStream {
            1
        } else {
            sent.len()
        }
    }

    /// [`Self::send_words`] for a shell line, the snapshots named by `path(n)`.
    pub fn shell_words(
        self,
        sent: Range<usize>,
        count: usize,
        path: &dyn Fn(usize) -> String,
    ) -> String {
        let paths: Vec<String> = (0..count).map(path).collect();
        self.send_words(sent, &paths, &|w| w.to_string()).join(" ")
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
        for bundle in [Parents::Bundle, Parents::BundleOneStream] {
            assert_eq!(opts(bundle, 3), "-p s0");
            assert_eq!(bundle.clone_sources(2), [0]);
            assert_eq!(bundle.sends(4), [0..1, 1..4]);
            assert_eq!(bundle.sends(1).len(), 1);
            assert_eq!(bundle.sends(1)[0], 0..1);
        }
        assert_eq!(Parents::Clones.sends(3), [0..1, 1..2, 2..3]);
        let words = |p: Parents, sent| p.send_words(sent, &snaps, &|w| w).join(" ");
        assert_eq!(words(Parents::Bundle, 1..4), "-p s0 s1 s2 s3");
        assert_eq!(words(Parents::BundleOneStream, 1..4), "-e -p s0 s1 s2 s3");
        assert_eq!(words(Parents::BundleOneStream, 1..2), "-p s0 s1");
        assert_eq!(words(Parents::BundleOneStream, 0..1), "s0");
        assert_eq!(words(Parents::Clones, 2..3), "-p s1 -c s0 s2");
        assert_eq!(Parents::Bundle.streams(&(1..4)), 3);
        assert_eq!(Parents::BundleOneStream.streams(&(1..4)), 1);
        assert_eq!(Parents::Previous.streams(&(2..3)), 1);
        assert_eq!(
            Parents::Bundle.shell_words(1..3, 3, &|n| format!("\"$s{n}\"")),
            "-p \"$s0\" \"$s1\" \"$s2\""
        );
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
        let mut counts = [0usize; 7];
        for seed in 0..6000u64 {
            assert_eq!(Parents::draw(seed), Parents::draw(seed));
            counts[Parents::ALL
                .iter()
                .position(|p| *p == Parents::draw(seed))
                .unwrap()] += 1;
        }
        // previous, first, clones, full-too, twin: a sixth each; the bundles a twelfth.
        for count in &counts[..5] {
            assert!((800..1200).contains(count), "{counts:?}");
        }
        for count in &counts[5..] {
            assert!((350..650).contains(count), "{counts:?}");
        }
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
