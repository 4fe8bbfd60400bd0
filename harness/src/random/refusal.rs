//! Streams that receive must refuse. A backup is only as good as its failures are loud: a
//! stream cut short (a full disk, a dropped connection), one damaged in transit, an incremental
//! stream whose parent the receiver lacks, and a stream received twice into one place must
//! each make `btrfs receive` say `ERROR:` and exit non-zero, never exit 0 with a partial or
//! wrong subvolume. The chain breaks a copy of each stream it sends these ways and holds
//! receive to refusing it (and to the reason, where the reason tells the ways apart).

use crate::send_stream::{self, Located, COMMAND_HEADER};

/// `BTRFS_SEND_C_SNAPSHOT`.
const SNAPSHOT: u16 = 2;
/// `BTRFS_SEND_C_END`.
const END: u16 = 21;
/// `BTRFS_SEND_C_ENCODED_WRITE`.
const ENCODED_WRITE: u16 = 25;
/// `BTRFS_SEND_A_CLONE_UUID`: in a snapshot command, the parent's UUID.
const CLONE_UUID: u16 = 20;
/// `BTRFS_SEND_A_PATH`: the path a command acts on (for `link`, the new name).
const PATH: u16 = 15;
/// The commands that receive carries out on their path, with whether they make it: a command
/// on a path that names nothing must fail, as must one that makes a path in a directory that
/// does not exist. For `rename` the path is its source, for `link` its new name, for `clone`
/// its destination. Not `fileattr`, `update_extent` and `enable_verity`, which btrfs-progs 6.2
/// takes without touching the path.
const ON_A_PATH: &[(&str, bool)] = &[
    ("mkfile", true),
    ("mkdir", true),
    ("mknod", true),
    ("mkfifo", true),
    ("mksock", true),
    ("symlink", true),
    ("link", true),
    ("rename", false),
    ("unlink", false),
    ("rmdir", false),
    ("set_xattr", false),
    ("remove_xattr", false),
    ("write", false),
    ("clone", false),
    ("truncate", false),
    ("chmod", false),
    ("chown", false),
    ("utimes", false),
    ("fallocate", false),
    ("encoded_write", false),
];

/// A way to break a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Cut one byte into a command's payload.
    Cut,
    /// A byte of a command's payload changed, its checksum left as it was.
    Damaged,
    /// An incremental stream whose parent UUID names no subvolume (its checksum made anew).
    NoParent,
    /// The stream received again where it was received.
    Again,
    /// The first encoded write's compressed data made undecodable (its first four bytes set,
    /// its checksum made anew): a receive that decompresses must fail.
    BadData,
    /// The first command of a kind (`BTRFS_SEND_C_*`) whose path names nothing: its first
    /// bytes made `\x01/` (a directory no operation makes), or for a command that does not
    /// make its path, its only byte `\x01`; its checksum made anew. Receive must stop at the
    /// error, not go on as if the command had been carried out.
    Missing(u16),
}

impl Refusal {
    pub fn name(self) -> String {
        match self {
            Refusal::Cut => "cut short".into(),
            Refusal::Damaged => "damaged".into(),
            Refusal::NoParent => "without its parent".into(),
            Refusal::Again => "received again".into(),
            Refusal::BadData => "with undecodable compressed data".into(),
            Refusal::Missing(command) => format!(
                "whose first `{}` names a path that is not there",
                send_stream::name_of(command)
            ),
        }
    }

    /// What receive's error must say: the reasons that tell this way apart (one of them).
    pub fn reasons(self) -> &'static [&'static str] {
        match self {
            Refusal::Cut => &["short read from stream"],
            Refusal::Damaged => &["crc32 mismatch in command"],
            Refusal::NoParent => &["cannot find parent subvolume"],
            Refusal::Again => &["File exists"],
            Refusal::BadData => &[
                "zlib inflate failed",
                "failed to decompress zstd stream",
                "lzo header is invalid",
            ],
            Refusal::Missing(_) => &["No such file or directory"],
        }
    }

    /// Checks how receive took the broken stream: `Err` says how it did not refuse it.
    pub fn check(self, succeeded: bool, printed: &str) -> Result<(), String> {
        if succeeded {
            return Err(format!(
                "btrfs receive of a stream {} exited 0",
                self.name()
            ));
        }
        let said = |reason: &&str| {
            printed
                .lines()
                .any(|line| line.starts_with("ERROR: ") && line.contains(reason))
        };
        if !self.reasons().iter().any(said) {
            let last = printed.lines().last().unwrap_or("");
            return Err(format!(
                "btrfs receive of a stream {} failed without saying `{}` (its last line: `{last}`)",
                self.name(),
                self.reasons().join("` or `")
            ));
        }
        Ok(())
    }
}

/// The broken copies of `bytes`, a file holding one stream: cut one byte into, and damaged in
/// the middle of, the middle command that has a payload; for an incremental stream, without
/// its parent; for a receiver that `decompresses`, with undecodable compressed data; and for
/// each kind of command on a path, its first with a path that names nothing. None for a file
/// that does not frame.
pub fn broken(bytes: &[u8], decompresses: bool) -> Vec<(Refusal, Vec<u8>)> {
    let (Ok(commands), Some(version)) = (send_stream::locate(bytes), send_stream::version(bytes))
    else {
        return Vec::new();
    };
    let with_payload: Vec<&Located> = commands
        .iter()
        .filter(|c| c.command != END && c.len >= 2)
        .collect();
    let mut copies = Vec::new();
    if let Some(middle) = with_payload.get(with_payload.len() / 2) {
        let payload = middle.at + COMMAND_HEADER;
        copies.push((Refusal::Cut, bytes[..payload + 1].to_vec()));
        let mut damaged = bytes.to_vec();
        damaged[payload + middle.len / 2] ^= 0x55;
        copies.push((Refusal::Damaged, damaged));
    }
    if let Some(snapshot) = commands.first().filter(|c| c.command == SNAPSHOT) {
        let payload = snapshot.at + COMMAND_HEADER;
        let body = &bytes[payload..payload + snapshot.len];
        if let Some(uuid) =
            send_stream::attribute(body, CLONE_UUID, version).filter(|r| !r.is_empty())
        {
            let mut orphan = bytes.to_vec();
            for byte in &mut orphan[payload + uuid.start..payload + uuid.end] {
                *byte ^= 0xa5;
            }
            send_stream::reseal(&mut orphan, snapshot);
            copies.push((Refusal::NoParent, orphan));
        }
    }
    let encoded = commands.iter().find(|c| c.command == ENCODED_WRITE);
    if let Some(write) = encoded.filter(|_| decompresses) {
        let payload = write.at + COMMAND_HEADER;
        let body = &bytes[payload..payload + write.len];
        if let Some(data) = send_stream::attribute(body, send_stream::DATA, version) {
            if data.len() >= 4 {
                let mut bad = bytes.to_vec();
                bad[payload + data.start..payload + data.start + 4].fill(0xff);
                send_stream::reseal(&mut bad, write);
                copies.push((Refusal::BadData, bad));
            }
        }
    }
    for &(name, makes) in ON_A_PATH {
        let Some(kind) = send_stream::number_of(name) else {
            continue;
        };
        // A command that makes its path needs a name after `\x01/`: a bare `\x01/` is the
        // name `\x01` in the top directory, which it would make.
        let shortest = if makes { 3 } else { 1 };
        let found = commands.iter().filter(|c| c.command == kind).find_map(|c| {
            let payload = c.at + COMMAND_HEADER;
            send_stream::attribute(&bytes[payload..payload + c.len], PATH, version)
                .filter(|path| path.len() >= shortest)
                .map(|path| (c, payload + path.start, path.len()))
        });
        if let Some((command, path, len)) = found {
            let mut missing = bytes.to_vec();
            let nothing: &[u8] = if len == 1 { b"\x01" } else { b"\x01/" };
            missing[path..path + nothing.len()].copy_from_slice(nothing);
            send_stream::reseal(&mut missing, command);
            copies.push((Refusal::Missing(kind), missing));
        }
    }
    copies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send_stream::made::{command, stream, tlv};

    #[test]
    fn an_incremental_stream_is_cut_damaged_and_orphaned() {
        let mut snapshot = tlv(15, b"snap1");
        snapshot.extend(tlv(CLONE_UUID, &[7; 16]));
        let whole = stream(&[
            command(SNAPSHOT, &snapshot),
            command(3, &tlv(15, b"f")),
            command(15, &tlv(19, &[1; 40])),
            command(END, b""),
        ]);
        let copies = broken(&whole, true);
        let ways: Vec<Refusal> = copies.iter().map(|(w, _)| *w).collect();
        assert_eq!(ways, [Refusal::Cut, Refusal::Damaged, Refusal::NoParent]);
        // The middle command with a payload is the mkfile: cut one byte into its payload.
        let mkfile = 17 + COMMAND_HEADER + snapshot.len();
        assert_eq!(copies[0].1.len(), mkfile + COMMAND_HEADER + 1);
        assert!(send_stream::count(&copies[0].1).is_err());
        let changed: Vec<usize> = (0..whole.len())
            .filter(|i| whole[*i] != copies[1].1[*i])
            .collect();
        assert_eq!(changed, [mkfile + COMMAND_HEADER + 2]);
        // Only the parent's UUID and the snapshot command's checksum differ.
        let orphan = &copies[2].1;
        let changed: Vec<usize> = (0..whole.len())
            .filter(|i| whole[*i] != orphan[*i])
            .collect();
        let uuid = 17 + COMMAND_HEADER + 9 + 4;
        assert!(changed
            .iter()
            .all(|i| (23..27).contains(i) || (uuid..uuid + 16).contains(i)));
        assert_eq!(changed.iter().filter(|i| **i >= uuid).count(), 16);
        // A full stream has no parent to take away.
        let full = stream(&[command(1, &tlv(15, b"s0")), command(END, b"")]);
        let ways: Vec<Refusal> = broken(&full, true).iter().map(|(w, _)| *w).collect();
        assert_eq!(ways, [Refusal::Cut, Refusal::Damaged]);
        assert!(broken(b"junk", true).is_empty());
        // An encoded write's data (protocol 2: the rest of the command) loses its header, for
        // a receiver that decompresses only.
        let mut encoded = tlv(15, b"f");
        encoded.extend(send_stream::DATA.to_le_bytes());
        encoded.extend([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]);
        let mut proto2 = stream(&[command(1, &tlv(15, b"s0")), command(25, &encoded)]);
        proto2[13] = 2;
        let copies = broken(&proto2, true);
        let (way, bad) = copies.iter().find(|(w, _)| *w == Refusal::BadData).unwrap();
        assert_eq!(*way, Refusal::BadData);
        let data = bad.len() - 7;
        assert_eq!(&bad[data..], &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert!(broken(&proto2, false)
            .iter()
            .all(|(w, _)| *w != Refusal::BadData));
    }

    #[test]
    fn the_first_command_of_each_kind_on_a_path_loses_it() {
        let mut chown = tlv(PATH, b"d0/f1");
        chown.extend(tlv(6, &[0; 8]));
        let whole = stream(&[
            command(1, &tlv(PATH, b"s0")),
            command(3, &tlv(PATH, b"x")),
            command(3, &tlv(PATH, b"xy")),
            command(3, &tlv(PATH, b"o258-7-0")),
            command(19, &chown),
            command(19, &tlv(PATH, b"g")),
            command(20, &tlv(PATH, b"")),
            command(20, &tlv(PATH, b"h")),
            command(24, &tlv(PATH, b"f")),
            command(END, b""),
        ]);
        let missing: Vec<(Refusal, Vec<u8>)> = broken(&whole, false)
            .into_iter()
            .filter(|(w, _)| matches!(w, Refusal::Missing(_)))
            .collect();
        let kinds: Vec<Refusal> = missing.iter().map(|(w, _)| *w).collect();
        // mkfile's paths of one and two bytes are passed over (`\x01` and `\x01/` name a new
        // file in the top directory), utimes' empty one (the subvolume's top) too; fileattr is
        // not carried out on its path.
        assert_eq!(
            kinds,
            [
                Refusal::Missing(3),
                Refusal::Missing(19),
                Refusal::Missing(20)
            ]
        );
        let located = send_stream::locate(&whole).unwrap();
        let path_of = |bytes: &[u8], c: &Located| {
            let payload = c.at + COMMAND_HEADER;
            let range = send_stream::attribute(&bytes[payload..payload + c.len], PATH, 1).unwrap();
            bytes[payload + range.start..payload + range.end].to_vec()
        };
        assert_eq!(path_of(&missing[0].1, &located[3]), b"\x01/58-7-0");
        assert_eq!(path_of(&missing[1].1, &located[4]), b"\x01//f1");
        assert_eq!(path_of(&missing[2].1, &located[7]), b"\x01");
        // Each still frames, with sound checksums: receive reads it up to the missing path.
        for (_, copy) in &missing {
            assert!(send_stream::count(copy).is_ok());
            assert_eq!(copy.len(), whole.len());
        }
        assert!(Refusal::Missing(19).name().contains("`chown`"));
    }

    #[test]
    fn a_refusal_must_fail_and_say_why() {
        assert_eq!(
            Refusal::Cut.check(false, "ERROR: short read from stream: expected 5 read 1\n"),
            Ok(())
        );
        assert!(Refusal::Cut
            .check(true, "")
            .unwrap_err()
            .contains("exited 0"));
        let err = Refusal::NoParent
            .check(false, "ERROR: crc32 mismatch in command\n")
            .unwrap_err();
        assert!(err.contains("cannot find parent subvolume"), "{err}");
        assert!(err.contains("crc32 mismatch"), "{err}");
    }
}
