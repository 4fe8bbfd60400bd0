//! Measurements of the harness's own speed, for `sendtest bench`: medians of repeated runs, and
//! manifest hashing side by side with `sha256sum` over the same files.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::exec::{self, CommandLog};
use crate::manifest::Manifest;

/// The median of `times` (the upper one of the middle two for an even count).
pub fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// `min–max, median m` of `times`, in seconds.
pub fn spread(times: &[Duration]) -> String {
    let min = times.iter().min().copied().unwrap_or_default();
    let max = times.iter().max().copied().unwrap_or_default();
    format!(
        "median {:.2} s (min {:.2}, max {:.2}, {} runs)",
        median(times).as_secs_f64(),
        min.as_secs_f64(),
        max.as_secs_f64(),
        times.len()
    )
}

/// A tree of `files` files of `size` bytes each under `dir`, filled with bytes that do not
/// compress or repeat within a file.
pub fn make_tree(dir: &Path, files: usize, size: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; size.min(1 << 20)];
    let mut paths = Vec::with_capacity(files);
    for i in 0..files {
        // 256 files per directory, as real trees spread them.
        let sub = dir.join(format!("d{:03}", i / 256));
        std::fs::create_dir_all(&sub)?;
        let path = sub.join(format!("f{i:06}"));
        let mut file =
            File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut left = size;
        while left > 0 {
            for chunk in block.chunks_mut(8) {
                // xorshift64
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let bytes = state.to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
            let n = left.min(block.len());
            file.write_all(&block[..n])?;
            left -= n;
        }
        paths.push(path);
    }
    Ok(paths)
}

/// Hashing of one tree: the manifest against `sha256sum`.
#[derive(Debug, Clone)]
pub struct Hashing {
    pub bytes: u64,
    pub files: usize,
    /// Medians.
    pub manifest: Duration,
    pub sha256sum: Duration,
    /// Threads the manifest hashed with.
    pub cores: usize,
}

impl Hashing {
    pub fn manifest_mb_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.manifest.as_secs_f64().max(1e-9)
    }

    pub fn sha256sum_mb_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.sha256sum.as_secs_f64().max(1e-9)
    }

    /// The manifest's throughput per core used, over `sha256sum`'s on one core.
    pub fn per_core_ratio(&self) -> f64 {
        self.manifest_mb_s() / self.cores.max(1) as f64 / self.sha256sum_mb_s().max(1e-9)
    }
}

/// Arguments per `sha256sum` command, well under the kernel's limit on a command line.
const SHA256SUM_BATCH: usize = 512;

/// Times the manifest of `dir` and `sha256sum` over `files` (the same files), `reps` times
/// each after one warm-up of each, so both read from the page cache.
pub fn hashing(dir: &Path, files: &[PathBuf], reps: usize) -> Result<Hashing> {
    let sh = Shell::new()?;
    let log = CommandLog::discard();
    let bytes: u64 = files
        .iter()
        .map(|f| f.metadata().map_or(0, |m| m.len()))
        .sum();
    let sha256sum = || -> Result<Duration> {
        let started = Instant::now();
        for batch in files.chunks(SHA256SUM_BATCH) {
            exec::run(cmd!(sh, "sha256sum {batch...}"), &log)?;
        }
        Ok(started.elapsed())
    };
    let manifest = || -> Result<Duration> {
        let started = Instant::now();
        Manifest::of_tree(dir)?;
        Ok(started.elapsed())
    };
    manifest()?;
    sha256sum()?;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..reps.max(1) {
        ours.push(manifest()?);
        theirs.push(sha256sum()?);
    }
    Ok(Hashing {
        bytes,
        files: files.len(),
        manifest: median(&ours),
        sha256sum: median(&theirs),
        cores: std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(files.len().max(1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spreads() {
        let s = |n: u64| Duration::from_millis(n);
        assert_eq!(median(&[s(3), s(1), s(2)]), s(2));
        assert_eq!(median(&[s(4), s(1), s(2), s(3)]), s(3));
        assert_eq!(median(&[]), Duration::ZERO);
        assert_eq!(
            spread(&[s(1000), s(3000), s(2000)]),
            "median 2.00 s (min 1.00, max 3.00, 3 runs)"
        );
    }

    #[test]
    fn hashing_compares_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let files = make_tree(dir.path(), 3, 100_000).unwrap();
        assert_eq!(files.len(), 3);
        let figures = hashing(dir.path(), &files, 1).unwrap();
        assert_eq!(figures.bytes, 300_000);
        assert!(figures.manifest_mb_s() > 0.0 && figures.sha256sum_mb_s() > 0.0);
    }
}
