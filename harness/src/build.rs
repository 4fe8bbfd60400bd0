//! Building what is under test from source trees, out of tree, in the cache.

pub mod kernel;
pub mod progs;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

/// A tree that does not build (or configure). Under `git bisect run` conventions this is
/// "cannot test this commit": exit code 125.
#[derive(Debug)]
pub struct TreeDoesNotBuild {
    pub what: String,
    pub log: PathBuf,
    pub tail: String,
}

impl fmt::Display for TreeDoesNotBuild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} does not build (log: {}): {}",
            self.what,
            self.log.display(),
            self.tail
        )
    }
}

impl std::error::Error for TreeDoesNotBuild {}

/// Turns a failed build command into [`TreeDoesNotBuild`] (with the end of the build log),
/// except when a stop signal ended it.
pub fn not_building(what: &str, log: &Path) -> impl Fn(crate::exec::CommandError) -> anyhow::Error {
    let (what, log) = (what.to_string(), log.to_path_buf());
    move |e| {
        if e.interrupted() {
            e.into()
        } else {
            TreeDoesNotBuild {
                what: what.clone(),
                log: log.clone(),
                tail: e.stderr_tail(),
            }
            .into()
        }
    }
}

/// The first 16 hex digits of the sha256 of `parts`, to name cache entries.
pub fn short_hash(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    format!("{:x}", hasher.finalize())[..16].to_string()
}

/// An exclusive lock on `<path>.lock`, held until dropped, so that two runs never build into
/// one directory at once. Says so when it has to wait.
pub fn lock(path: &Path, say: &dyn Fn(&str)) -> Result<Flock<File>> {
    let lock_path = path.with_extension("lock");
    let file =
        File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((file, _)) => {
            say(&format!(
                "waiting for another sendtest that holds {}",
                lock_path.display()
            ));
            Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, e)| anyhow::anyhow!("locking {}: {e}", lock_path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hashes_separate_their_parts() {
        assert_eq!(short_hash(&[b"ab", b"c"]).len(), 16);
        assert_ne!(short_hash(&[b"ab", b"c"]), short_hash(&[b"a", b"bc"]));
    }
}
