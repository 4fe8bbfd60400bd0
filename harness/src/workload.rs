//! Writing the files a case describes as data: ranges of deterministic bytes, holes between them.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::xattr;

/// A file to create: data at `ranges` (offset, length), holes elsewhere, `size` at the end.
pub struct FileSpec {
    pub name: &'static str,
    pub ranges: &'static [(u64, u64)],
    pub size: u64,
    pub xattrs: &'static [(&'static str, &'static str)],
}

/// How [`write`] leaves the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// Plain buffered writes and no sync: the data stays delalloc in the page cache until
    /// something flushes it.
    Buffered,
    /// Buffered writes, then an fsync of each file.
    Fsynced,
}

impl std::fmt::Display for Writes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Writes::Buffered => "buffered, no sync",
            Writes::Fsynced => "fsync each",
        })
    }
}

/// Files created and deleted by one [`churn`] at load factor 1.
const CHURN_FILES: u64 = 16;
const CHURN_FILE_SIZE: usize = 16 * 1024;

/// Creates and writes a few small files in `dir`, then deletes them: metadata blocks get
/// allocated, and are freed at the next commit.
pub fn churn(dir: &Path, round: u64, load_factor: f64) -> Result<()> {
    let files = churn_files(load_factor);
    for i in 0..files {
        let path = dir.join(format!("churn-{round}-{i}"));
        std::fs::write(&path, pattern("churn", round * files + i, CHURN_FILE_SIZE))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for i in 0..files {
        let path = dir.join(format!("churn-{round}-{i}"));
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// Files per churn round: [`CHURN_FILES`] scaled by `--load-factor`, at least one.
fn churn_files(load_factor: f64) -> u64 {
    ((CHURN_FILES as f64 * load_factor).round() as u64).max(1)
}

/// Writes each file of `files` into `dir`, leaving the data as `writes` says.
pub fn write(dir: &Path, files: &[FileSpec], writes: Writes) -> Result<()> {
    for spec in files {
        let path = dir.join(spec.name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        for &(offset, len) in spec.ranges {
            let data = pattern(spec.name, offset, len as usize);
            file.write_all_at(&data, offset)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        file.set_len(spec.size)
            .with_context(|| format!("truncating {}", path.display()))?;
        if writes == Writes::Fsynced {
            file.sync_all()
                .with_context(|| format!("fsync {}", path.display()))?;
        }
        for (name, value) in spec.xattrs {
            xattr::set(&path, name, value.as_bytes())
                .with_context(|| format!("setting {name} on {}", path.display()))?;
        }
    }
    Ok(())
}

/// Bytes that differ per file and per offset, so that a block written to the wrong place or the
/// wrong file changes the checksum.
pub fn pattern(seed: &str, offset: u64, len: usize) -> Vec<u8> {
    let mut state = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    state ^= offset.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_factor_scales_churn() {
        assert_eq!(churn_files(1.0), 16);
        assert_eq!(churn_files(2.5), 40);
        assert_eq!(churn_files(0.01), 1);
    }

    #[test]
    fn pattern_is_deterministic_and_depends_on_seed_and_offset() {
        assert_eq!(pattern("a", 0, 100), pattern("a", 0, 100));
        assert_ne!(pattern("a", 0, 100), pattern("b", 0, 100));
        assert_ne!(pattern("a", 0, 100), pattern("a", 4096, 100));
        assert_eq!(pattern("a", 0, 5).len(), 5);
    }
}
