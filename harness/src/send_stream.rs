//! The framing of a btrfs send stream, read without btrfs-progs: the `btrfs-stream` magic and a
//! version, then commands, each a header (payload length, command number, crc32c) and its
//! payload; a file may hold several streams one after another. Enough to count the commands,
//! so that what `btrfs receive --dump` prints can be held to them: it prints a line for each
//! command but the end.

const MAGIC: &[u8] = b"btrfs-stream\0";
/// The magic and the version (`u32`).
const STREAM_HEADER: usize = MAGIC.len() + 4;
/// Payload length (`u32`), command (`u16`), crc32c (`u32`).
const COMMAND_HEADER: usize = 10;
/// `BTRFS_SEND_C_END`.
const END: u16 = 21;

/// The commands of the streams in `bytes`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Commands {
    /// Every command, the ends included.
    pub all: usize,
    /// The `end` commands (one per stream, unless cut short).
    pub ends: usize,
    /// The streams (each begun by the magic).
    pub streams: usize,
    /// The commands of the first stream but its end.
    pub first: usize,
    /// Each command's count, by its number (`BTRFS_SEND_C_*`, 1 to 26; 0 holds numbers
    /// beyond).
    pub each: [usize; 27],
}

/// The name of each command (`BTRFS_SEND_C_*` by number, from 1), as btrfs-progs spells it.
pub const NAMES: [&str; 26] = [
    "subvol",
    "snapshot",
    "mkfile",
    "mkdir",
    "mknod",
    "mkfifo",
    "mksock",
    "symlink",
    "rename",
    "link",
    "unlink",
    "rmdir",
    "set_xattr",
    "remove_xattr",
    "write",
    "clone",
    "truncate",
    "chmod",
    "chown",
    "utimes",
    "end",
    "update_extent",
    "fallocate",
    "fileattr",
    "encoded_write",
    "enable_verity",
];

impl Commands {
    /// How many commands named `name` (one of [`NAMES`]) the streams hold.
    pub fn count_of(&self, name: &str) -> usize {
        NAMES
            .iter()
            .position(|n| *n == name)
            .map_or(0, |i| self.each[i + 1])
    }

    /// The subvolumes the streams begin (`subvol` and `snapshot` commands).
    pub fn subvolumes(&self) -> usize {
        self.count_of("subvol") + self.count_of("snapshot")
    }

    /// The lines `btrfs receive --dump` prints at least: one per command of the first stream
    /// but its end (it reads only the first stream of a file: btrfs-progs 6.2 stops at that
    /// stream's end).
    pub fn dump_lines(&self) -> usize {
        self.first
    }
}

/// Counts the commands of the streams in `bytes`; an error says where the framing breaks.
pub fn count(bytes: &[u8]) -> Result<Commands, String> {
    let mut commands = Commands::default();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at..].starts_with(MAGIC) {
            if bytes.len() - at < STREAM_HEADER {
                return Err(format!("a stream header cut short at byte {at}"));
            }
            at += STREAM_HEADER;
            commands.streams += 1;
            continue;
        }
        if at == 0 {
            return Err("no btrfs-stream magic at the start".into());
        }
        let Some(header) = bytes.get(at..at + COMMAND_HEADER) else {
            return Err(format!("a command header cut short at byte {at}"));
        };
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let command = u16::from_le_bytes(header[4..6].try_into().expect("2 bytes"));
        at += COMMAND_HEADER;
        if bytes.len() - at < len {
            return Err(format!(
                "command {command}'s payload of {len} bytes cut short at byte {at}"
            ));
        }
        at += len;
        commands.all += 1;
        commands.each[if (command as usize) < commands.each.len() {
            command as usize
        } else {
            0
        }] += 1;
        if command == END {
            commands.ends += 1;
        } else if commands.streams == 1 {
            commands.first += 1;
        }
    }
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(number: u16, payload: &[u8]) -> Vec<u8> {
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend(number.to_le_bytes());
        bytes.extend([0; 4]);
        bytes.extend(payload);
        bytes
    }

    fn stream(commands: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend(2u32.to_le_bytes());
        for c in commands {
            bytes.extend(c);
        }
        bytes
    }

    #[test]
    fn commands_of_one_stream_and_of_two_in_a_row() {
        // subvol, mkfile, write, end.
        let one = stream(&[
            command(1, b"subvol"),
            command(3, b"f"),
            command(15, &[7; 100]),
            command(END, b""),
        ]);
        let got = count(&one).unwrap();
        assert_eq!(
            (got.all, got.ends, got.streams, got.first),
            (4, 1, 1, 3),
            "{got:?}"
        );
        assert_eq!(
            (
                got.count_of("subvol"),
                got.count_of("mkfile"),
                got.count_of("write")
            ),
            (1, 1, 1)
        );
        assert_eq!((got.count_of("end"), got.subvolumes()), (1, 1));
        assert_eq!(count(&one).unwrap().dump_lines(), 3);
        let mut two = one.clone();
        two.extend(stream(&[
            command(2, b"snapshot"),
            command(3, b"g"),
            command(END, b""),
        ]));
        let got = count(&two).unwrap();
        assert_eq!(
            (got.all, got.ends, got.streams, got.first),
            (7, 2, 2, 3),
            "{got:?}"
        );
        assert_eq!((got.count_of("mkfile"), got.subvolumes()), (2, 2));
        assert_eq!(count(&two).unwrap().dump_lines(), 3);
    }

    #[test]
    fn a_stream_cut_short_or_without_its_magic_is_an_error() {
        let whole = stream(&[command(3, b"file"), command(END, b"")]);
        assert!(count(&whole[..whole.len() - 13])
            .unwrap_err()
            .contains("cut short"));
        assert!(count(&whole[..whole.len() - 3])
            .unwrap_err()
            .contains("cut short"));
        assert!(count(b"not a stream").unwrap_err().contains("magic"));
        assert_eq!(count(b""), Ok(Commands::default()));
    }
}
