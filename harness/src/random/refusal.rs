//! Streams that receive must refuse. A backup is only as good as its failures are loud: a
//! stream cut short (a full disk, a dropped connection), one damaged in transit, an incremental
//! stream whose parent the receiver lacks, and a stream received twice into one place must
//! each make `btrfs receive` say `ERROR:` and exit non-zero, never exit 0 with a partial or
//! wrong subvolume. The chain breaks a copy of each stream it sends these ways and holds
//! receive to refusing it (and to the reason, where the reason tells the ways apart).

use crate::send_stream::{self, Located, COMMAND_HEADER, PATH, SUBVOL, UUID};

/// `BTRFS_SEND_C_SNAPSHOT`.
const SNAPSHOT: u16 = 2;
/// `BTRFS_SEND_C_END`.
const END: u16 = 21;
/// `BTRFS_SEND_C_WRITE`.
const WRITE: u16 = 15;
/// `BTRFS_SEND_C_ENCODED_WRITE`.
const ENCODED_WRITE: u16 = 25;
/// `BTRFS_SEND_C_ENABLE_VERITY` (protocol 3), with its attributes: `BTRFS_SEND_A_PATH`, then
/// `_VERITY_ALGORITHM` (`u8`), `_VERITY_BLOCK_SIZE` (`u32`), `_VERITY_SALT_DATA` and
/// `_VERITY_SIG_DATA`, all of which btrfs-progs requires.
const ENABLE_VERITY: u16 = 26;
const VERITY_ALGORITHM: u16 = 32;
const VERITY_BLOCK_SIZE: u16 = 33;
const VERITY_SALT: u16 = 34;
const VERITY_SIG: u16 = 35;
/// `FS_VERITY_HASH_ALG_SHA256`.
const SHA256: u8 = 1;
/// `BTRFS_SEND_A_CLONE_UUID`: in a snapshot command, the parent's UUID.
const CLONE_UUID: u16 = 20;
/// `BTRFS_SEND_A_CTRANSID`: the type a subvolume's UUID is given to take it away (the command's
/// own ctransid follows it and wins).
const CTRANSID: u16 = 2;
/// `BTRFS_SEND_A_INO`: the type a path is given to take it away (commands that carry an inode
/// number carry it after the path, and it wins).
const INO: u16 = 3;
/// `BTRFS_SEND_A_COMPRESSION`: an encoded write's compression (`BTRFS_ENCODED_IO_COMPRESSION_*`).
const COMPRESSION: u16 = 30;
/// `BTRFS_ENCODED_IO_COMPRESSION_LZO_4K` to `_LZO_64K`: lzo data, in sectors of 4 to 64 KiB,
/// behind a header of its total length and each segment's.
const LZO: std::ops::RangeInclusive<u32> = 3..=7;
/// The commands that receive carries out on their path, with whether they make it: a command
/// on a path that names nothing must fail, as must one that makes a path in a directory that
/// does not exist. For `rename` the path is its source, for `link` its new name, for `clone`
/// its destination. Not `fileattr` and `update_extent`, which btrfs-progs 6.2 takes without
/// touching the path, nor `enable_verity`, which no stream of protocol 2 carries (see
/// [`Refusal::Verity`]).
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
    /// The middle command with a payload, its first attribute's type made 0 (no attribute has
    /// it), its checksum made anew.
    Untyped,
    /// The first command (`subvol` or `snapshot`) without the subvolume's UUID: its type made
    /// the ctransid's, which follows it and takes its place; its checksum made anew.
    NoUuid,
    /// The middle command with a path, without it: its type made the inode number's; its
    /// checksum made anew.
    NoPath,
    /// The first lzo encoded write's first segment longer than the data (its length field set
    /// to all ones, its checksum made anew): a receive that decompresses must fail.
    LzoSegment,
    /// The first lzo encoded write's data said to end two bytes into its first segment's
    /// header (its total length set to 6, its checksum made anew).
    LzoTruncated,
    /// The stream received into a directory on a filesystem that is not btrfs.
    NotBtrfs,
    /// For a receiving kernel without fs-verity, an `enable_verity` command (as protocol 3
    /// carries a file's fs-verity) added after the first write, on its file: receive cannot
    /// give the file what the stream says it has, and must fail, not leave it without.
    Verity,
}

/// What the receiving side can do, which decides the ways a stream is broken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Receiver {
    /// It decompresses encoded writes itself (`--force-decompress`).
    pub decompresses: bool,
    /// Its kernel has fs-verity (btrfs lists the feature `verity`).
    pub verity: bool,
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
            Refusal::Untyped => "with an attribute of type 0".into(),
            Refusal::NoUuid => "whose subvolume has no UUID".into(),
            Refusal::NoPath => "with a command without its path".into(),
            Refusal::LzoSegment => "whose lzo segment is longer than its data".into(),
            Refusal::LzoTruncated => "whose lzo data ends in a segment's header".into(),
            Refusal::NotBtrfs => "into a directory not on btrfs".into(),
            Refusal::Verity => "that turns on fs-verity, which the receiving kernel lacks".into(),
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
            Refusal::Untyped => &["invalid tlv in cmd tlv_type = 0"],
            Refusal::NoUuid => &["attribute 1 requested but not present"],
            Refusal::NoPath => &["attribute 15 requested but not present"],
            Refusal::LzoSegment => &["lzo segment header is invalid"],
            Refusal::LzoTruncated => &["lzo segment header is truncated"],
            Refusal::NotBtrfs => &["doesn't belong to btrfs mount point"],
            Refusal::Verity => &[
                "failed to enable verity on",
                "fs-verity for stream not compiled in",
            ],
        }
    }

    /// Checks how receive took the broken stream: it ran to its end with `status` (`None`:
    /// killed by a signal) and printed `printed`. It must exit 1, having said why with an
    /// `ERROR:` line; receive that `stops` at the first error (any `--max-errors` but 0) must
    /// say no more than that one: a second means it went on past it. `Err` says how it did
    /// not refuse the stream.
    pub fn check(self, status: Option<i32>, printed: &str, stops: bool) -> Result<(), String> {
        match status {
            Some(1) => {}
            Some(0) => {
                return Err(format!(
                    "btrfs receive of a stream {} exited 0",
                    self.name()
                ))
            }
            Some(code) => {
                return Err(format!(
                    "btrfs receive of a stream {} exited {code}, not 1",
                    self.name()
                ))
            }
            None => {
                return Err(format!(
                    "btrfs receive of a stream {} was killed by a signal",
                    self.name()
                ))
            }
        }
        let errors: Vec<&str> = printed
            .lines()
            .filter(|line| line.starts_with("ERROR: "))
            .collect();
        let said = |reason: &&str| errors.iter().any(|line| line.contains(reason));
        if !self.reasons().iter().any(said) {
            let last = printed.lines().last().unwrap_or("");
            return Err(format!(
                "btrfs receive of a stream {} failed without saying `{}` (its last line: `{last}`)",
                self.name(),
                self.reasons().join("` or `")
            ));
        }
        if stops && errors.len() > 1 {
            return Err(format!(
                "btrfs receive of a stream {} went on past its first error: `{}`, then `{}`",
                self.name(),
                errors[0],
                errors[1]
            ));
        }
        Ok(())
    }
}

/// The broken copies of `bytes`, a file holding one stream, for `receiver`: cut one byte into,
/// and damaged in the middle of, the middle command that has a payload; for an incremental
/// stream, without its parent; for a receiver that decompresses, with undecodable compressed
/// data; for one without fs-verity, turning it on; and for each kind of command on a path, its
/// first with a path that names nothing. None for a file that does not frame.
pub fn broken(bytes: &[u8], receiver: Receiver) -> Vec<(Refusal, Vec<u8>)> {
    let decompresses = receiver.decompresses;
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
        let mut untyped = bytes.to_vec();
        untyped[payload..payload + 2].fill(0);
        send_stream::reseal(&mut untyped, middle);
        copies.push((Refusal::Untyped, untyped));
    }
    let body = |c: &Located| {
        let payload = c.at + COMMAND_HEADER;
        (payload, &bytes[payload..payload + c.len])
    };
    // Another attribute's type given to one the command needs: the type field is the four
    // bytes before the value's (type, then length).
    let retyped = |c: &Located, needed: u16, given: u16| {
        let (payload, body) = body(c);
        let value = send_stream::attribute(body, needed, version)?;
        let mut copy = bytes.to_vec();
        let at = payload + value.start - 4;
        copy[at..at + 2].copy_from_slice(&given.to_le_bytes());
        send_stream::reseal(&mut copy, c);
        Some(copy)
    };
    // Taken away only where the attribute given its type comes after it, and so wins.
    let after = |c: &Located, needed: u16, given: u16| {
        let (_, body) = body(c);
        match (
            send_stream::attribute(body, needed, version),
            send_stream::attribute(body, given, version),
        ) {
            (Some(needed), Some(given)) => given.start > needed.start,
            (Some(_), None) => true,
            _ => false,
        }
    };
    if let Some(first) = commands
        .first()
        .filter(|c| c.command == SUBVOL || c.command == SNAPSHOT)
        .filter(|c| {
            after(c, UUID, CTRANSID)
                && send_stream::attribute(body(c).1, CTRANSID, version).is_some()
        })
    {
        copies.extend(retyped(first, UUID, CTRANSID).map(|copy| (Refusal::NoUuid, copy)));
    }
    let with_path: Vec<&Located> = commands
        .iter()
        .filter(|c| c.command != SUBVOL && c.command != SNAPSHOT && after(c, PATH, INO))
        .collect();
    if let Some(middle) = with_path.get(with_path.len() / 2) {
        copies.extend(retyped(middle, PATH, INO).map(|copy| (Refusal::NoPath, copy)));
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
    let lzo = commands.iter().filter(|_| decompresses).find(|c| {
        let (_, body) = body(c);
        c.command == ENCODED_WRITE
            && send_stream::attribute(body, COMPRESSION, version)
                .and_then(|r| body[r].try_into().ok())
                .is_some_and(|v: [u8; 4]| LZO.contains(&u32::from_le_bytes(v)))
    });
    if let Some(write) = lzo {
        let (payload, body) = body(write);
        if let Some(data) = send_stream::attribute(body, send_stream::DATA, version) {
            if data.len() >= 8 {
                let at = payload + data.start;
                let mut long = bytes.to_vec();
                long[at + 4..at + 8].fill(0xff);
                send_stream::reseal(&mut long, write);
                copies.push((Refusal::LzoSegment, long));
                let mut short = bytes.to_vec();
                short[at..at + 4].copy_from_slice(&6u32.to_le_bytes());
                send_stream::reseal(&mut short, write);
                copies.push((Refusal::LzoTruncated, short));
            }
        }
    }
    if !receiver.verity {
        copies.extend(with_verity(bytes, &commands, version).map(|copy| (Refusal::Verity, copy)));
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

/// `bytes` with an `enable_verity` command after its first write (plain or encoded), on that
/// write's path: SHA-256 in blocks of 4 KiB, with a salt and without a signature.
fn with_verity(bytes: &[u8], commands: &[Located], version: u32) -> Option<Vec<u8>> {
    let (write, path) = commands
        .iter()
        .filter(|c| c.command == WRITE || c.command == ENCODED_WRITE)
        .find_map(|c| {
            let payload = &bytes[c.at + COMMAND_HEADER..c.at + COMMAND_HEADER + c.len];
            send_stream::attribute(payload, PATH, version).map(|path| (c, payload[path].to_vec()))
        })?;
    let mut verity = send_stream::tlv(PATH, &path);
    verity.extend(send_stream::tlv(VERITY_ALGORITHM, &[SHA256]));
    verity.extend(send_stream::tlv(VERITY_BLOCK_SIZE, &4096u32.to_le_bytes()));
    verity.extend(send_stream::tlv(VERITY_SALT, b"sendtest"));
    verity.extend(send_stream::tlv(VERITY_SIG, b""));
    let after = write.at + COMMAND_HEADER + write.len;
    let mut copy = bytes[..after].to_vec();
    copy.extend(send_stream::sealed(ENABLE_VERITY, &verity));
    copy.extend(&bytes[after..]);
    Some(copy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send_stream::made::{command, stream, tlv};

    /// A receiver that decompresses, and one that does not, both with fs-verity (so that no
    /// `enable_verity` is added unless a test asks for it).
    const DECOMPRESSES: Receiver = Receiver {
        decompresses: true,
        verity: true,
    };
    const PLAIN: Receiver = Receiver {
        decompresses: false,
        verity: true,
    };

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
        // The ways a stream's framing and parent break (the others are tested below).
        let framing = |w: &Refusal| {
            matches!(
                w,
                Refusal::Cut | Refusal::Damaged | Refusal::NoParent | Refusal::BadData
            )
        };
        let copies: Vec<(Refusal, Vec<u8>)> = broken(&whole, DECOMPRESSES)
            .into_iter()
            .filter(|(w, _)| framing(w))
            .collect();
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
        let ways: Vec<Refusal> = broken(&full, DECOMPRESSES)
            .iter()
            .map(|(w, _)| *w)
            .filter(framing)
            .collect();
        assert_eq!(ways, [Refusal::Cut, Refusal::Damaged]);
        assert!(broken(b"junk", DECOMPRESSES).is_empty());
        // An encoded write's data (protocol 2: the rest of the command) loses its header, for
        // a receiver that decompresses only.
        let mut encoded = tlv(15, b"f");
        encoded.extend(send_stream::DATA.to_le_bytes());
        encoded.extend([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]);
        let mut proto2 = stream(&[command(1, &tlv(15, b"s0")), command(25, &encoded)]);
        proto2[13] = 2;
        let copies = broken(&proto2, DECOMPRESSES);
        let (way, bad) = copies.iter().find(|(w, _)| *w == Refusal::BadData).unwrap();
        assert_eq!(*way, Refusal::BadData);
        let data = bad.len() - 7;
        assert_eq!(&bad[data..], &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert!(broken(&proto2, PLAIN)
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
        let missing: Vec<(Refusal, Vec<u8>)> = broken(&whole, PLAIN)
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
        let cut = "ERROR: short read from stream: expected 5 read 1\n";
        assert_eq!(Refusal::Cut.check(Some(1), cut, true), Ok(()));
        assert!(Refusal::Cut
            .check(Some(0), "", true)
            .unwrap_err()
            .contains("exited 0"));
        // A crash or another status is not a refusal, even after the right words.
        assert!(Refusal::Cut
            .check(None, cut, true)
            .unwrap_err()
            .contains("killed by a signal"));
        assert!(Refusal::Cut
            .check(Some(139), cut, true)
            .unwrap_err()
            .contains("exited 139"));
        let err = Refusal::NoParent
            .check(Some(1), "ERROR: crc32 mismatch in command\n", true)
            .unwrap_err();
        assert!(err.contains("cannot find parent subvolume"), "{err}");
        assert!(err.contains("crc32 mismatch"), "{err}");
        // The reason must be an error's, not another line's.
        assert!(Refusal::Again
            .check(Some(1), "File exists\nERROR: other\n", true)
            .is_err());
    }

    #[test]
    fn a_receive_that_stops_says_one_error() {
        let printed = "At subvol s0\nERROR: mkdir \u{1}/x failed: No such file or directory\n\
                       ERROR: rename o257-5-0 -> d failed: No such file or directory\n";
        let err = Refusal::Missing(4)
            .check(Some(1), printed, true)
            .unwrap_err();
        assert!(err.contains("went on past its first error"), "{err}");
        assert!(err.contains("then `ERROR: rename"), "{err}");
        // With `--max-errors 0` it is meant to go on.
        assert_eq!(Refusal::Missing(4).check(Some(1), printed, false), Ok(()));
    }

    #[test]
    fn commands_lose_an_attribute_they_need() {
        let mut snapshot = tlv(PATH, b"snap1");
        snapshot.extend(tlv(UUID, &[9; 16]));
        snapshot.extend(tlv(CTRANSID, &[1; 8]));
        snapshot.extend(tlv(CLONE_UUID, &[7; 16]));
        let mut mkfile = tlv(PATH, b"o257-5-0");
        mkfile.extend(tlv(INO, &[2; 8]));
        let mut rename = tlv(PATH, b"o257-5-0");
        rename.extend(tlv(16, b"f"));
        let whole = stream(&[
            command(SNAPSHOT, &snapshot),
            command(3, &mkfile),
            command(9, &rename),
            command(END, b""),
        ]);
        let located = send_stream::locate(&whole).unwrap();
        let copies = broken(&whole, PLAIN);
        let copy = |way| &copies.iter().find(|(w, _)| *w == way).unwrap().1;
        let types = |bytes: &[u8], c: &Located| {
            let payload = &bytes[c.at + COMMAND_HEADER..c.at + COMMAND_HEADER + c.len];
            let mut at = 0;
            let mut types = Vec::new();
            while at < payload.len() {
                types.push(u16::from_le_bytes([payload[at], payload[at + 1]]));
                at += 4 + u16::from_le_bytes([payload[at + 2], payload[at + 3]]) as usize;
            }
            types
        };
        assert_eq!(
            types(copy(Refusal::NoUuid), &located[0]),
            [PATH, CTRANSID, CTRANSID, CLONE_UUID]
        );
        // Two commands with a path: the middle one is the rename (the second).
        assert_eq!(types(copy(Refusal::NoPath), &located[2]), [INO, 16]);
        assert_eq!(types(copy(Refusal::NoPath), &located[1]), [PATH, INO]);
        // The middle command with a payload is the mkfile.
        assert_eq!(types(copy(Refusal::Untyped), &located[1]), [0, INO]);
        // Each still frames, with sound checksums.
        for (_, copy) in copies.iter().filter(|(w, _)| *w != Refusal::Cut) {
            assert!(send_stream::count(copy).is_ok());
        }
        // A subvolume whose ctransid comes before its UUID keeps it: the ctransid would not win.
        let mut subvol = tlv(PATH, b"s");
        subvol.extend(tlv(CTRANSID, &[1; 8]));
        subvol.extend(tlv(UUID, &[9; 16]));
        let odd = stream(&[command(SUBVOL, &subvol), command(END, b"")]);
        assert!(broken(&odd, PLAIN)
            .iter()
            .all(|(w, _)| *w != Refusal::NoUuid));
    }

    #[test]
    fn a_receiver_without_fs_verity_is_asked_for_it_after_the_first_write() {
        let mut write = tlv(PATH, b"o257-5-0");
        write.extend(tlv(18, &[0; 8]));
        write.extend(send_stream::DATA.to_le_bytes());
        write.extend([7; 5]);
        let whole = stream(&[
            command(SUBVOL, &tlv(PATH, b"s0")),
            command(3, &tlv(PATH, b"o257-5-0")),
            command(WRITE, &write),
            command(WRITE, &write),
            command(END, b""),
        ]);
        let lacking = Receiver {
            verity: false,
            ..PLAIN
        };
        let copies = broken(&whole, lacking);
        let (_, copy) = copies.iter().find(|(w, _)| *w == Refusal::Verity).unwrap();
        let before = send_stream::locate(&whole).unwrap();
        let after = send_stream::locate(copy).unwrap();
        let kinds: Vec<u16> = after.iter().map(|c| c.command).collect();
        assert_eq!(kinds, [SUBVOL, 3, WRITE, ENABLE_VERITY, WRITE, END]);
        // Everything else as it was, byte for byte.
        let added = after[3].at..after[4].at;
        assert_eq!(&copy[..added.start], &whole[..before[3].at]);
        assert_eq!(&copy[added.end..], &whole[before[3].at..]);
        // Its checksum is sound, and it carries every attribute btrfs-progs reads, on the
        // write's path.
        let framed = send_stream::count(copy).unwrap();
        assert_eq!(framed.count_of("enable_verity"), 1);
        let payload = &copy[added.start + COMMAND_HEADER..added.end];
        let value = |kind| &payload[send_stream::attribute(payload, kind, 2).unwrap()];
        assert_eq!(value(PATH), b"o257-5-0");
        assert_eq!(value(VERITY_ALGORITHM), [SHA256]);
        assert_eq!(value(VERITY_BLOCK_SIZE), 4096u32.to_le_bytes());
        assert_eq!(value(VERITY_SALT), b"sendtest");
        assert_eq!(value(VERITY_SIG), b"");
        // Not for a kernel with fs-verity, nor for a stream that writes nothing.
        assert!(broken(&whole, PLAIN)
            .iter()
            .all(|(w, _)| *w != Refusal::Verity));
        let empty = stream(&[command(SUBVOL, &tlv(PATH, b"s0")), command(END, b"")]);
        assert!(broken(&empty, lacking)
            .iter()
            .all(|(w, _)| *w != Refusal::Verity));
        let said = "ERROR: failed to enable verity on /mnt/s0/o257-5-0: -95\n";
        assert_eq!(Refusal::Verity.check(Some(1), said, true), Ok(()));
        // Failing on the way to it is not refusing it.
        assert!(Refusal::Verity
            .check(Some(1), "ERROR: write: path invalid: o257-5-0\n", true)
            .is_err());
    }

    #[test]
    fn lzo_data_is_made_too_long_and_too_short() {
        let mut encoded = tlv(PATH, b"f");
        encoded.extend(tlv(COMPRESSION, &4u32.to_le_bytes()));
        encoded.extend(send_stream::DATA.to_le_bytes());
        // Total length 12, one segment of 4 bytes.
        encoded.extend(12u32.to_le_bytes());
        encoded.extend(4u32.to_le_bytes());
        encoded.extend([1, 2, 3, 4]);
        let mut proto2 = stream(&[command(1, &tlv(PATH, b"s0")), command(25, &encoded)]);
        proto2[13] = 2;
        let copies = broken(&proto2, DECOMPRESSES);
        let copy = |way| &copies.iter().find(|(w, _)| *w == way).unwrap().1;
        let data = proto2.len() - 12;
        assert_eq!(
            &copy(Refusal::LzoSegment)[data..data + 8],
            &[12, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            &copy(Refusal::LzoTruncated)[data..data + 8],
            &[6, 0, 0, 0, 4, 0, 0, 0]
        );
        // Only for a receiver that decompresses, and only lzo.
        let lzo_ways = |copies: Vec<(Refusal, Vec<u8>)>| {
            copies
                .iter()
                .filter(|(w, _)| matches!(w, Refusal::LzoSegment | Refusal::LzoTruncated))
                .count()
        };
        assert_eq!(lzo_ways(broken(&proto2, PLAIN)), 0);
        let compression = proto2.len() - 12 - 2 - 4;
        proto2[compression] = 2;
        assert_eq!(lzo_ways(broken(&proto2, DECOMPRESSES)), 0);
    }
}
