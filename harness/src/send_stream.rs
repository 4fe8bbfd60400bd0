//! The framing of a btrfs send stream, read without btrfs-progs: the `btrfs-stream` magic and a
//! version, then commands, each a header (payload length, command number, crc32c) and its
//! payload; a file may hold several streams one after another. Enough to count the commands,
//! so that what `btrfs receive --dump` prints can be held to them: it prints a line for each
//! command but the end.

const MAGIC: &[u8] = b"btrfs-stream\0";
/// The magic and the version (`u32`).
const STREAM_HEADER: usize = MAGIC.len() + 4;
/// Payload length (`u32`), command (`u16`), crc32c (`u32`).
pub const COMMAND_HEADER: usize = 10;
/// `BTRFS_SEND_C_END`.
const END: u16 = 21;
/// `BTRFS_SEND_C_SUBVOL`: a full stream's first command.
pub const SUBVOL: u16 = 1;
/// `BTRFS_SEND_A_PATH`: the path a command acts on (for `link`, the new name).
pub const PATH: u16 = 15;
/// `BTRFS_SEND_A_UUID`: in a subvolume or snapshot command, the subvolume's UUID.
pub const UUID: u16 = 1;

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

/// The number (`BTRFS_SEND_C_*`) of the command named `name`, one of [`NAMES`].
pub fn number_of(name: &str) -> Option<u16> {
    NAMES.iter().position(|n| *n == name).map(|i| i as u16 + 1)
}

/// The name of command `number`, `?` for one btrfs-progs 6.2 does not know.
pub fn name_of(number: u16) -> &'static str {
    NAMES
        .get(usize::from(number).wrapping_sub(1))
        .copied()
        .unwrap_or("?")
}

impl Commands {
    /// How many commands named `name` (one of [`NAMES`]) the streams hold.
    pub fn count_of(&self, name: &str) -> usize {
        number_of(name).map_or(0, |n| self.each[usize::from(n)])
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

/// Where a command lies in a file of streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// The byte its header begins at.
    pub at: usize,
    /// Its number (`BTRFS_SEND_C_*`).
    pub command: u16,
    /// Its payload's length; the payload begins [`COMMAND_HEADER`] bytes after `at`.
    pub len: usize,
}

/// The commands of a file of streams, in order (the framing must hold: see [`count`]).
pub fn locate(bytes: &[u8]) -> Result<Vec<Located>, String> {
    count(bytes)?;
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at..].starts_with(MAGIC) {
            at += STREAM_HEADER;
            continue;
        }
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let command = u16::from_le_bytes(bytes[at + 4..at + 6].try_into().expect("2 bytes"));
        found.push(Located { at, command, len });
        at += COMMAND_HEADER + len;
    }
    Ok(found)
}

/// `BTRFS_SEND_A_DATA`: from protocol 2 on, the last attribute of a command, a type without a
/// length, its value the rest of the command.
pub const DATA: u16 = 19;

/// The protocol version of the stream a file begins with.
pub fn version(bytes: &[u8]) -> Option<u32> {
    let field = bytes.get(MAGIC.len()..STREAM_HEADER)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}

/// The value of attribute `attribute` (`BTRFS_SEND_A_*`) in a command's `payload` of
/// type-length-value attributes, in a stream of protocol `version`: its range in the payload.
pub fn attribute(payload: &[u8], attribute: u16, version: u32) -> Option<std::ops::Range<usize>> {
    let mut at = 0;
    while at + 2 <= payload.len() {
        let kind = u16::from_le_bytes([payload[at], payload[at + 1]]);
        if kind == DATA && version >= 2 {
            return (kind == attribute).then_some(at + 2..payload.len());
        }
        if at + 4 > payload.len() {
            return None;
        }
        let len = u16::from_le_bytes([payload[at + 2], payload[at + 3]]) as usize;
        let value = at + 4..at + 4 + len;
        if value.end > payload.len() {
            return None;
        }
        if kind == attribute {
            return Some(value);
        }
        at = value.end;
    }
    None
}

/// Sets the crc32c of the command at `command` in `bytes` to what its header and payload make
/// (the checksum taken with the field zeroed, as send does).
pub fn reseal(bytes: &mut [u8], command: &Located) {
    let whole = command.at..command.at + COMMAND_HEADER + command.len;
    bytes[command.at + 6..command.at + 10].fill(0);
    let crc = crc32c(&bytes[whole]);
    bytes[command.at + 6..command.at + 10].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32C as btrfs seeds it for send streams: from 0, without the final inversion.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = 0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// An attribute: its type (`BTRFS_SEND_A_*`), length and `value`.
pub fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut bytes = kind.to_le_bytes().to_vec();
    bytes.extend((value.len() as u16).to_le_bytes());
    bytes.extend(value);
    bytes
}

/// A command (`BTRFS_SEND_C_*`) of `payload`, with its header and checksum.
pub fn sealed(number: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
    bytes.extend(number.to_le_bytes());
    bytes.extend([0; 4]);
    bytes.extend(payload);
    let crc = crc32c(&bytes);
    bytes[6..10].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// A full stream `bytes` (its first command `subvol`) whose subvolume is named `name`; `None`
/// for another stream.
pub fn renamed_subvolume(bytes: &[u8], name: &str) -> Option<Vec<u8>> {
    let version = version(bytes)?;
    let first = *locate(bytes)
        .ok()?
        .first()
        .filter(|c| c.command == SUBVOL)?;
    let payload = &bytes[first.at + COMMAND_HEADER..first.at + COMMAND_HEADER + first.len];
    let path = attribute(payload, PATH, version)?;
    let mut renamed = payload[..path.start - 4].to_vec();
    renamed.extend(tlv(PATH, name.as_bytes()));
    renamed.extend(&payload[path.end..]);
    let mut copy = bytes[..first.at].to_vec();
    copy.extend(sealed(SUBVOL, &renamed));
    copy.extend(&bytes[first.at + COMMAND_HEADER + first.len..]);
    Some(copy)
}

/// Streams made by hand, for tests.
#[cfg(test)]
pub(crate) mod made {
    pub use super::tlv;

    /// A command: its header (checksum 0) and `payload`.
    pub fn command(number: u16, payload: &[u8]) -> Vec<u8> {
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend(number.to_le_bytes());
        bytes.extend([0; 4]);
        bytes.extend(payload);
        bytes
    }

    /// A stream of protocol 2 of `commands`.
    pub fn stream(commands: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = super::MAGIC.to_vec();
        bytes.extend(2u32.to_le_bytes());
        for c in commands {
            bytes.extend(c);
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::made::{command, stream};
    use super::*;

    #[test]
    fn a_full_stream_s_subvolume_is_renamed_and_sealed() {
        let mut subvol = tlv(PATH, b"chain-1.snap0");
        subvol.extend(tlv(UUID, &[9; 16]));
        subvol.extend(tlv(2, &[1; 8]));
        let whole = stream(&[
            command(SUBVOL, &subvol),
            command(3, &tlv(PATH, b"f")),
            command(END, b""),
        ]);
        let renamed = renamed_subvolume(&whole, "t").unwrap();
        // The checksums are sound: crc32c of the command with its field zeroed.
        let commands = locate(&renamed).unwrap();
        let first = commands[0];
        let mut zeroed = renamed[..COMMAND_HEADER + first.len + STREAM_HEADER].to_vec();
        zeroed.drain(..STREAM_HEADER);
        let sum = u32::from_le_bytes(zeroed[6..10].try_into().unwrap());
        zeroed[6..10].fill(0);
        assert_eq!(sum, crc32c(&zeroed));
        let payload = &renamed[first.at + COMMAND_HEADER..first.at + COMMAND_HEADER + first.len];
        assert_eq!(&payload[attribute(payload, PATH, 2).unwrap()], b"t");
        assert_eq!(&payload[attribute(payload, UUID, 2).unwrap()], [9; 16]);
        assert_eq!(&payload[attribute(payload, 2, 2).unwrap()], [1; 8]);
        // The rest as it was.
        let rest = locate(&whole).unwrap()[1].at;
        assert_eq!(&renamed[commands[1].at..], &whole[rest..]);
        // Only a full stream's subvolume.
        let mut snapshot = whole.clone();
        snapshot[STREAM_HEADER + 4] = 2;
        assert!(renamed_subvolume(&snapshot, "t").is_none());
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
    fn commands_are_located_their_attributes_found_and_resealed() {
        let mut tlv = 20u16.to_le_bytes().to_vec();
        tlv.extend(3u16.to_le_bytes());
        tlv.extend(b"abc");
        let mut payload = 15u16.to_le_bytes().to_vec();
        payload.extend(1u16.to_le_bytes());
        payload.extend(b"p");
        payload.extend(&tlv);
        let mut bytes = stream(&[command(2, &payload), command(END, b"")]);
        let located = locate(&bytes).unwrap();
        assert_eq!(located.len(), 2);
        assert_eq!(
            (located[0].at, located[0].command, located[0].len),
            (17, 2, 12)
        );
        let body = &bytes[17 + COMMAND_HEADER..][..12];
        assert_eq!(attribute(body, 20, 1), Some(9..12));
        assert_eq!(attribute(body, 15, 1), Some(4..5));
        assert_eq!(attribute(body, 1, 1), None);
        assert_eq!(version(&bytes), Some(2));
        // From protocol 2, data has no length: the rest of the command.
        let mut write = 15u16.to_le_bytes().to_vec();
        write.extend(1u16.to_le_bytes());
        write.extend(b"p");
        write.extend(DATA.to_le_bytes());
        write.extend([9; 7]);
        assert_eq!(attribute(&write, DATA, 2), Some(7..14));
        assert_eq!(attribute(&write, 20, 2), None);
        reseal(&mut bytes, &located[0]);
        let mut zeroed = bytes[17..17 + COMMAND_HEADER + 12].to_vec();
        let sealed = u32::from_le_bytes(zeroed[6..10].try_into().unwrap());
        zeroed[6..10].fill(0);
        assert_eq!(sealed, crc32c(&zeroed));
        // From 0 and not inverted (the stored checksums of real streams are held to it by
        // the refusal of a stream whose parent was changed: tests/refusals.rs).
        assert_eq!(crc32c(b""), 0);
        // Inverted before and after, it is the standard CRC-32C: its check value.
        let standard = |b: &[u8]| {
            let mut crc = !0u32;
            for byte in b {
                crc ^= u32::from(*byte);
                for _ in 0..8 {
                    crc = if crc & 1 == 1 {
                        (crc >> 1) ^ 0x82f6_3b78
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        };
        assert_eq!(standard(b"123456789"), 0xe306_9283);
        // CRC is linear: from 0 without inversion, it is the standard one of the bytes
        // against the standard one of as many zeros.
        assert_eq!(
            crc32c(b"123456789"),
            standard(b"123456789") ^ standard(&[0; 9])
        );
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
