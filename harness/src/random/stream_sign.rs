//! Signs of a known bug in a stream, read from what `btrfs receive --dump` prints of it: a
//! known bug whose differences vary from list to list is told by what the stream that caused
//! them holds.

/// A pattern in a stream that a known bug needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamSign {
    /// A write to a path, then a rename or removal that makes the path name another inode (the
    /// path, or a directory above it, moved away or removed), then a write to the same path
    /// with no write to another path between. btrfs-progs' receive keeps the file of its last
    /// write open by path and writes the second into the first file: it does not close that
    /// file on a rename or unlink.
    WriteToReusedPath,
}

/// The commands whose data btrfs-progs' receive writes through the file it keeps open
/// (`open_inode_for_write`).
const WRITES: &[&str] = &["write", "clone", "encoded_write", "fallocate"];

impl StreamSign {
    /// The path at which `dump` shows the sign, if it does.
    pub fn shown_at(&self, dump: &str) -> Option<String> {
        match self {
            StreamSign::WriteToReusedPath => write_to_reused_path(dump),
        }
    }
}

/// Whether `path` is `at` or lies under it.
fn under(path: &str, at: &str) -> bool {
    path == at
        || path
            .strip_prefix(at)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn write_to_reused_path(dump: &str) -> Option<String> {
    // The path of the last write, and whether it has since come to name another inode.
    let mut open: Option<(&str, bool)> = None;
    for line in dump.lines() {
        let mut words = line.split_whitespace();
        let (Some(command), Some(path)) = (words.next(), words.next()) else {
            continue;
        };
        let dest = words.find_map(|w| w.strip_prefix("dest="));
        match command {
            c if WRITES.contains(&c) => match open {
                Some((last, true)) if last == path => return Some(path.to_string()),
                Some((last, _)) if last == path => {}
                _ => open = Some((path, false)),
            },
            "rename" | "unlink" | "rmdir" => {
                if let Some((last, stale)) = &mut open {
                    if under(last, path) || dest.is_some_and(|d| under(last, d)) {
                        *stale = true;
                    }
                }
            }
            // Receive closes the file before it enables verity, and at each subvolume.
            "enable_verity" | "snapshot" | "subvol" => open = None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `btrfs receive --dump` printed for the stream of the case
    /// `receive-write-after-rename`, its times and uuids cut.
    const REUSED: &str = "\
snapshot        ./snap1                         uuid=2 transid=8 parent_uuid=1 parent_transid=7
write           ./snap1/d/x                     offset=0 len=2
utimes          ./snap1/d/x                     atime=0 mtime=0 ctime=0
rename          ./snap1/d                       dest=./snap1/e
mkdir           ./snap1/o259-8-0
rename          ./snap1/o259-8-0                dest=./snap1/d
mkfile          ./snap1/o260-8-0
rename          ./snap1/o260-8-0                dest=./snap1/d/x
write           ./snap1/d/x                     offset=0 len=1
chmod           ./snap1/d/x                     mode=644
";

    #[test]
    fn a_write_to_a_path_that_moved_on_is_seen() {
        assert_eq!(
            StreamSign::WriteToReusedPath.shown_at(REUSED).as_deref(),
            Some("./snap1/d/x")
        );
    }

    #[test]
    fn a_write_elsewhere_between_or_no_move_is_not() {
        let elsewhere = REUSED.replace(
            "mkfile          ./snap1/o260-8-0",
            "write           ./snap1/e/y offset=0 len=1\nmkfile ./snap1/o260-8-0",
        );
        assert_eq!(StreamSign::WriteToReusedPath.shown_at(&elsewhere), None);
        // A rename of a sibling whose name starts the same is not a move of the path.
        let sibling = "write ./s/d/x offset=0 len=1\nrename ./s/d/xy dest=./s/z\nwrite ./s/d/x offset=1 len=1\n";
        assert_eq!(StreamSign::WriteToReusedPath.shown_at(sibling), None);
        let unlinked = "write ./s/x offset=0 len=1\nunlink ./s/x\nmkfile ./s/o1\nrename ./s/o1 dest=./s/x\nclone ./s/x offset=0 len=4096\n";
        assert_eq!(
            StreamSign::WriteToReusedPath.shown_at(unlinked).as_deref(),
            Some("./s/x")
        );
        let next_subvolume = "write ./s/x offset=0 len=1\nunlink ./s/x\nsnapshot ./t uuid=1\nwrite ./s/x offset=0 len=1\n";
        assert_eq!(StreamSign::WriteToReusedPath.shown_at(next_subvolume), None);
    }
}
