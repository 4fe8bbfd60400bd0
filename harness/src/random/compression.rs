//! What the protocol-2 chain's source filesystem compresses with. Send passes compressed
//! extents on as they are (`--compressed-data`), naming the algorithm in each encoded write, and
//! the receiver hands them to the kernel or, with `--force-decompress` or where the kernel
//! refuses them, decompresses them itself: each algorithm has its own code on both sides (lzo,
//! for one, is stored and sent as one segment per 4 KiB sector). A soak draws one per seed, as
//! it draws the way to receive, so a seed and its script always compress the same way.

/// A compression algorithm of `mount -o compress=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Zstd,
    Zlib,
    Lzo,
}

impl Compression {
    pub const ALL: [Compression; 3] = [Compression::Zstd, Compression::Zlib, Compression::Lzo];

    /// A seed's algorithm: half of the seeds zstd (the one most filesystems use), a quarter
    /// each zlib and lzo. Drawn from other bits than the ways to receive and to pick parents,
    /// so each algorithm meets each of them.
    pub fn draw(seed: u64) -> Compression {
        let hash = (seed ^ 0xc04b_7e55).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        match hash >> 62 {
            0 | 1 => Compression::Zstd,
            2 => Compression::Zlib,
            _ => Compression::Lzo,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Zlib => "zlib",
            Compression::Lzo => "lzo",
        }
    }

    /// The mount option: `compress=zstd`.
    pub fn mount_option(self) -> String {
        format!("compress={}", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_draw_each_algorithm_about_as_often_as_meant() {
        let mut counts = [0usize; 3];
        for seed in 0..4000 {
            let drawn = Compression::draw(seed);
            counts[Compression::ALL.iter().position(|c| *c == drawn).unwrap()] += 1;
        }
        // Half zstd, a quarter each of the others, give or take.
        assert!((1800..2200).contains(&counts[0]), "{counts:?}");
        assert!((850..1150).contains(&counts[1]), "{counts:?}");
        assert!((850..1150).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn each_algorithm_meets_each_way_to_receive() {
        for way in super::super::Receive::ALL {
            for algorithm in Compression::ALL {
                assert!(
                    (0..2000).any(|seed| super::super::Receive::draw(seed) == way
                        && Compression::draw(seed) == algorithm),
                    "no seed below 2000 receives {} from {}",
                    way.name(),
                    algorithm.name()
                );
            }
        }
    }

    #[test]
    fn the_mount_option_names_the_algorithm() {
        assert_eq!(Compression::Lzo.mount_option(), "compress=lzo");
        assert_eq!(Compression::default(), Compression::Zstd);
    }
}
