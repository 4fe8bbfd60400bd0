//! Building what is under test from source trees, out of tree, in the cache.

pub mod kernel;
pub mod mirror;
pub mod progs;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

/// The send code of a kernel tree: what `sendtest mutate` mutates and `sendtest coverage`
/// reports on by default.
pub const SEND_FILES: &[&str] = &["fs/btrfs/send.c"];
/// The receive code of a btrfs-progs tree, likewise.
pub const RECEIVE_FILES: &[&str] = &["cmds/receive.c", "common/send-stream.c"];

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

/// Turns a failed build command into [`TreeDoesNotBuild`] (with the compiler's or Kconfig's
/// own error lines from the build log, or its end when it has none), except when a stop signal
/// ended it. Paths under `built` (the copy that was built) are shown under `shown` (the tree
/// the user named).
pub fn not_building(
    what: &str,
    log: &Path,
    (built, shown): (&Path, &Path),
) -> impl Fn(crate::exec::CommandError) -> anyhow::Error {
    let (what, log) = (what.to_string(), log.to_path_buf());
    let (built, shown) = (built.display().to_string(), shown.display().to_string());
    move |e| {
        if e.interrupted() {
            return e.into();
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let errors = error_lines(&text);
        let tail = if errors.is_empty() {
            e.stderr_tail()
        } else {
            errors.join(" | ")
        };
        TreeDoesNotBuild {
            what: what.clone(),
            log: log.clone(),
            tail: tail.replace(&built, &shown),
        }
        .into()
    }
}

/// Error lines that make's own trailer hides: the compiler's (`fs/btrfs/send.c:12:5: error:
/// …`), the linker's, the assembler's and Kconfig's, at most the first few.
pub fn error_lines(log: &str) -> Vec<String> {
    const SHOWN: usize = 4;
    log.lines()
        .map(str::trim_end)
        .filter(|line| {
            !line.starts_with("make") // make's trailer: `make[2]: *** [...] Error 1`
                && (line.contains(": error:")
                    || line.contains(": fatal error:")
                    || line.contains("undefined reference to")
                    || line.contains(": Error:")
                    || line.contains("syntax error")
                    || line.starts_with("ld: ")
                    || line.starts_with("*** ") && !line.starts_with("*** Default configuration"))
        })
        .take(SHOWN)
        .map(String::from)
        .collect()
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

/// `<path>.<suffix>`, beside `path`: `linux-source-6.1-0123` gives `linux-source-6.1-0123.lock`
/// (where `with_extension` would give `linux-source-6.lock`, one name for every such path).
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// An exclusive lock on `<path>.lock`, held until dropped, so that two runs never build into
/// one directory at once. Says so when it has to wait.
pub fn lock(path: &Path, say: &dyn Fn(&str)) -> Result<Flock<File>> {
    let lock_path = sibling(path, "lock");
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
    fn a_failed_build_is_told_by_the_compilers_lines_not_makes() {
        let log = "  CC      fs/btrfs/send.o\n\
fs/btrfs/send.c: In function 'send_utimes':\n\
fs/btrfs/send.c:2531:9: error: 'ret' undeclared (first use in this function)\n\
make[3]: *** [scripts/Makefile.build:250: fs/btrfs/send.o] Error 1\n\
make[2]: *** [scripts/Makefile.build:500: fs/btrfs] Error 2\n";
        assert_eq!(
            error_lines(log),
            ["fs/btrfs/send.c:2531:9: error: 'ret' undeclared (first use in this function)"]
        );
        let kconfig = "fs/btrfs/Kconfig:3: syntax error\nfs/btrfs/Kconfig:2: invalid statement\nmake[2]: *** [scripts/kconfig/Makefile:77: olddefconfig] Error 1\n";
        assert_eq!(error_lines(kconfig), ["fs/btrfs/Kconfig:3: syntax error"]);
        assert!(error_lines("make: *** [Makefile:1] Error 2\n").is_empty());
    }

    #[test]
    fn siblings_keep_the_whole_name() {
        assert_eq!(
            sibling(Path::new("/c/linux-source-6.1-0123"), "lock"),
            Path::new("/c/linux-source-6.1-0123.lock")
        );
    }

    #[test]
    fn short_hashes_separate_their_parts() {
        assert_eq!(short_hash(&[b"ab", b"c"]).len(), 16);
        assert_ne!(short_hash(&[b"ab", b"c"]), short_hash(&[b"a", b"bc"]));
    }
}
