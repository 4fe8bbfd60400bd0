//! How and where a chain receives its streams. People who back up with send/receive do more
//! on the receiving side than `btrfs receive -f STREAM DIR`, and btrfs-progs has had bugs in
//! each of these ways. A soak draws one per seed, so a seed always receives the same way, and
//! its script does too; `--receive` fixes one.

use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A way to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Receive {
    /// `btrfs receive -f STREAM DIR`.
    #[default]
    Plain,
    /// `--force-decompress`: the receiver decompresses encoded writes itself instead of passing
    /// them to the kernel.
    ForceDecompress,
    /// Into a directory two levels below the chain's.
    Nested,
    /// Each stream twice, into two directories of one filesystem (two backup targets); an
    /// incremental stream's parent was received twice too.
    Twice,
    /// With `-m` naming the receiving filesystem's mount point.
    RootMount,
    /// `--chroot`: the receiver confines itself to the directory it receives into.
    Chroot,
    /// `--max-errors 0`: the receiver goes on after errors instead of stopping at the first
    /// (a correct stream has none, so every receive must still succeed).
    MaxErrors,
    /// Into `subdir` while another filesystem (a tmpfs) is mounted on `sub` beside it: the
    /// receiver must find the filesystem it receives into by whole path components, not by a
    /// string prefix of a mount point.
    PrefixMount,
    /// Into a subvolume of the receiving filesystem mounted on its own (`mount -o subvol=`), as
    /// backup targets often are: receive finds an incremental stream's parent and each clone
    /// source by their paths from the filesystem's top, and must take the mounted subvolume's
    /// path off them.
    SubvolMount,
}

impl Receive {
    pub const ALL: [Receive; 9] = [
        Receive::Plain,
        Receive::ForceDecompress,
        Receive::Nested,
        Receive::Twice,
        Receive::RootMount,
        Receive::Chroot,
        Receive::MaxErrors,
        Receive::PrefixMount,
        Receive::SubvolMount,
    ];

    /// The way a seed's chain receives: three eighths of the seeds plainly, an eighth each
    /// `subvol-mount`, `force-decompress`, `nested` and `twice`, a thirty-second each
    /// `root-mount`, `chroot`, `max-errors` and `prefix-mount`.
    pub fn draw(seed: u64) -> Receive {
        // A multiplicative hash, so that consecutive seeds spread out.
        let hash = (seed ^ 0x7ece_17e5).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        match hash >> 61 {
            0..=2 => Receive::Plain,
            3 => Receive::SubvolMount,
            4 => Receive::ForceDecompress,
            5 => Receive::Nested,
            6 => Receive::Twice,
            _ => match (hash >> 59) & 3 {
                0 => Receive::RootMount,
                1 => Receive::Chroot,
                2 => Receive::MaxErrors,
                _ => Receive::PrefixMount,
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Receive::Plain => "plain",
            Receive::ForceDecompress => "force-decompress",
            Receive::Nested => "nested",
            Receive::Twice => "twice",
            Receive::RootMount => "root-mount",
            Receive::Chroot => "chroot",
            Receive::MaxErrors => "max-errors",
            Receive::PrefixMount => "prefix-mount",
            Receive::SubvolMount => "subvol-mount",
        }
    }

    /// A directory beside the receiving one, under the chain's, with a tmpfs mounted on it
    /// while the chain receives.
    pub fn beside(self) -> Option<&'static str> {
        match self {
            Receive::PrefixMount => Some("sub"),
            _ => None,
        }
    }

    /// Whether the chain's directory is a subvolume mounted on its own that receives.
    pub fn own_mount(self) -> bool {
        self == Receive::SubvolMount
    }

    /// The directories under the chain's that receive each stream (`""`: the chain's own).
    pub fn dirs(self) -> &'static [&'static str] {
        match self {
            Receive::Nested => &["a/b"],
            Receive::Twice => &["one", "two"],
            Receive::PrefixMount => &["subdir"],
            _ => &[""],
        }
    }

    /// The directories that receive each stream, under `base`.
    pub fn targets(self, base: &Path) -> Vec<PathBuf> {
        self.dirs()
            .iter()
            .map(|d| {
                if d.is_empty() {
                    base.to_path_buf()
                } else {
                    base.join(d)
                }
            })
            .collect()
    }

    /// The options `btrfs receive` gets, with `mount` the receiving filesystem's mount point.
    pub fn options(self, mount: &str) -> Vec<String> {
        match self {
            Receive::ForceDecompress => vec!["--force-decompress".into()],
            Receive::RootMount => vec!["-m".into(), mount.into()],
            Receive::Chroot => vec!["--chroot".into()],
            Receive::MaxErrors => vec!["--max-errors".into(), "0".into()],
            _ => Vec::new(),
        }
    }
}

impl FromStr for Receive {
    type Err = String;

    fn from_str(text: &str) -> Result<Receive, String> {
        Receive::ALL
            .into_iter()
            .find(|r| r.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Receive::ALL.iter().map(|r| r.name()).collect();
                format!("`{text}` is not a way to receive: {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_draw_every_way_about_as_often_as_meant() {
        let mut counts = [0usize; 9];
        for seed in 0..8000u64 {
            let drawn = Receive::draw(seed);
            assert_eq!(drawn, Receive::draw(seed), "a seed always draws the same");
            counts[Receive::ALL.iter().position(|r| *r == drawn).unwrap()] += 1;
        }
        assert!((2600..3400).contains(&counts[0]), "{counts:?}");
        for count in counts[1..4].iter().chain(&counts[8..]) {
            assert!((800..1200).contains(count), "{counts:?}");
        }
        for count in &counts[4..8] {
            assert!((150..350).contains(count), "{counts:?}");
        }
    }

    #[test]
    fn names_parse_back_and_each_way_says_where_and_how() {
        for way in Receive::ALL {
            assert_eq!(way.name().parse::<Receive>(), Ok(way));
        }
        assert!("sideways".parse::<Receive>().unwrap_err().contains("plain"));
        let base = Path::new("/mnt/dst/chain-1");
        assert_eq!(
            Receive::Twice.targets(base),
            [base.join("one"), base.join("two")]
        );
        assert_eq!(Receive::Nested.targets(base), [base.join("a/b")]);
        assert_eq!(Receive::RootMount.options("/mnt/dst"), ["-m", "/mnt/dst"]);
        assert_eq!(
            Receive::ForceDecompress.options("/mnt/dst"),
            ["--force-decompress"]
        );
        assert_eq!(Receive::Chroot.options("/mnt/dst"), ["--chroot"]);
        assert_eq!(
            Receive::MaxErrors.options("/mnt/dst"),
            ["--max-errors", "0"]
        );
        assert_eq!(Receive::PrefixMount.targets(base), [base.join("subdir")]);
        assert_eq!(Receive::PrefixMount.beside(), Some("sub"));
        assert!(Receive::Plain.options("/mnt/dst").is_empty());
        assert!(Receive::SubvolMount.own_mount() && !Receive::Plain.own_mount());
        assert_eq!(Receive::SubvolMount.targets(base), [base.to_path_buf()]);
    }
}
