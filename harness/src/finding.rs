//! What a case exists to detect, told apart from the environment letting it down.

use std::fmt;

/// A finding: what the case exists to detect (wrong data, a failed send or receive, a kernel
/// warning, a check error). Everything else a case returns is an environment error.
#[derive(Debug)]
pub struct Detected(pub String);

impl fmt::Display for Detected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Detected {}

/// An `anyhow::Error` carrying a [`Detected`] finding.
pub fn detected(message: impl Into<String>) -> anyhow::Error {
    Detected(message.into()).into()
}

/// What `btrfs receive` says when the filesystem it writes to is full.
const NO_SPACE: &str = "No space left on device";

/// A receive into `fs` that failed with `error` (its text) because `fs` is full: not a
/// difference between what was sent and what was received, and not a finding, but a receiving
/// filesystem too small for the stream. The environment error that says so, or `None` for
/// any other failure.
pub fn receive_out_of_space(error: &str, fs: &std::path::Path) -> Option<anyhow::Error> {
    if !error.contains(NO_SPACE) {
        return None;
    }
    let room = match nix::sys::statvfs::statvfs(fs) {
        Ok(s) => {
            let unit = s.fragment_size() as f64 / f64::from(1u32 << 20);
            format!(
                "{:.0} MiB free of {:.0} MiB",
                s.blocks_available() as f64 * unit,
                s.blocks() as f64 * unit
            )
        }
        Err(e) => format!("its size unknown: {e}"),
    };
    Some(anyhow::anyhow!(
        "the receiving filesystem {} had no room for what was sent (ENOSPC; {room}): a full \
         filesystem, or an item too large for its nodes (a large xattr replaced with 4 KiB \
         nodes); btrfs receive failed saying so, and this is no difference between what was \
         sent and what was received; give the receiver more room or larger nodes (its \
         configuration, -c) ({})",
        fs.display(),
        error.lines().last().unwrap_or(error).trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_filesystem_is_out_of_space() {
        let dir = std::env::temp_dir();
        assert!(receive_out_of_space("ERROR: writing to x: Permission denied", &dir).is_none());
        let error = receive_out_of_space(
            "`btrfs receive` failed (exit status: 1): ERROR: write x failed: No space left on device",
            &dir,
        )
        .unwrap()
        .to_string();
        assert!(error.starts_with("the receiving filesystem "), "{error}");
        assert!(
            error.contains("had no room for what was sent (ENOSPC; ")
                && error.contains(" MiB free of "),
            "{error}"
        );
        assert!(
            error.ends_with("failed: No space left on device)"),
            "{error}"
        );
    }
}
