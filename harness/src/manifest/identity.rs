//! The oracle's rule for the received subvolume itself, whatever the tree inside it. Receive
//! ends each subvolume of a stream (`finish_subvol` in btrfs-progs) by setting, with
//! BTRFS_IOC_SET_RECEIVED_SUBVOL, the sent subvolume's UUID as its received UUID and the sent
//! `ctransid` as its `stransid`, and then its read-only flag. Later receives find the parent of
//! an incremental stream by that received UUID, and a stream's data is cloned only from
//! subvolumes it names, so a received subvolume that lacks them, or is left writable (and so may
//! change under them), breaks every later send/receive against it. An incremental stream's
//! subvolume is made as a snapshot of a received copy of its parent, so its parent UUID is that
//! copy's UUID; a full stream's subvolume is new, with none.
//!
//! The differences name the subvolume's root (`.`) and these fields; each can be ignored like
//! any other.

use std::path::Path;

use anyhow::Result;

use super::Difference;
use crate::btrfs_ioctl::{subvolume_info, SubvolumeInfo};

/// The received subvolume is read-only.
pub const READONLY: &str = "readonly";
/// Its received UUID is the sent subvolume's UUID.
pub const RECEIVED_UUID: &str = "received_uuid";
/// Its `stransid` is the sent subvolume's `ctransid`.
pub const STRANSID: &str = "stransid";
/// Its parent UUID is the UUID of a received copy of the stream's parent (none for a full
/// stream).
pub const PARENT_UUID: &str = "parent_uuid";

pub const FIELDS: [&str; 4] = [READONLY, RECEIVED_UUID, STRANSID, PARENT_UUID];

/// What `got`, received from a stream of subvolume `sent`, lacks: `parent_copies` are the
/// received copies of the stream's parent (`-p`), empty for a full stream. Fields for which
/// `checks` says no are left out.
pub fn received(
    sent: &Path,
    got: &Path,
    parent_copies: &[&Path],
    checks: &dyn Fn(&str) -> bool,
) -> Result<Vec<Difference>> {
    let parents = parent_copies
        .iter()
        .map(|copy| Ok(subvolume_info(copy)?.uuid))
        .collect::<Result<Vec<_>>>()?;
    let differences = compare(&subvolume_info(sent)?, &subvolume_info(got)?, &parents);
    Ok(differences
        .into_iter()
        .filter(|d| d.field().is_some_and(checks))
        .collect())
}

/// The rule on the two subvolumes' identities; `parents` are the UUIDs the received one may be
/// a snapshot of (empty: it must be no snapshot).
fn compare(sent: &SubvolumeInfo, got: &SubvolumeInfo, parents: &[[u8; 16]]) -> Vec<Difference> {
    let mut differences = Vec::new();
    let mut differ = |field: &str, expected: String, found: String| {
        differences.push(Difference::Field {
            path: ".".into(),
            field: field.into(),
            expected: Some(expected),
            got: Some(found),
        })
    };
    if !got.readonly {
        differ(READONLY, "true".into(), "false".into());
    }
    if got.received_uuid != sent.uuid {
        differ(RECEIVED_UUID, uuid(&sent.uuid), uuid(&got.received_uuid));
    }
    if got.stransid != sent.ctransid {
        differ(
            STRANSID,
            sent.ctransid.to_string(),
            got.stransid.to_string(),
        );
    }
    let parent_ok = if parents.is_empty() {
        got.parent_uuid == [0; 16]
    } else {
        parents.contains(&got.parent_uuid)
    };
    if !parent_ok {
        let expected = if parents.is_empty() {
            uuid(&[0; 16])
        } else {
            parents.iter().map(uuid).collect::<Vec<_>>().join(" or ")
        };
        differ(PARENT_UUID, expected, uuid(&got.parent_uuid));
    }
    differences
}

/// A UUID as btrfs-progs prints it, `-` for none.
fn uuid(bytes: &[u8; 16]) -> String {
    if bytes == &[0; 16] {
        return "-".into();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(uuid: u8, received: u8, parent: u8, ctransid: u64, stransid: u64) -> SubvolumeInfo {
        SubvolumeInfo {
            readonly: true,
            uuid: [uuid; 16],
            parent_uuid: [parent; 16],
            received_uuid: [received; 16],
            ctransid,
            stransid,
            rtransid: 9,
        }
    }

    fn fields(differences: &[Difference]) -> Vec<&str> {
        differences.iter().filter_map(Difference::field).collect()
    }

    #[test]
    fn a_subvolume_received_as_receive_leaves_it_passes() {
        let sent = info(1, 0, 7, 30, 0);
        assert!(compare(&sent, &info(2, 1, 0, 12, 30), &[]).is_empty());
        assert!(compare(&sent, &info(2, 1, 5, 12, 30), &[[4; 16], [5; 16]]).is_empty());
    }

    #[test]
    fn each_field_receive_sets_is_seen_missing() {
        let sent = info(1, 0, 0, 30, 0);
        let mut writable = info(2, 1, 0, 12, 30);
        writable.readonly = false;
        assert_eq!(fields(&compare(&sent, &writable, &[])), [READONLY]);
        assert_eq!(
            fields(&compare(&sent, &info(2, 0, 0, 12, 30), &[])),
            [RECEIVED_UUID]
        );
        assert_eq!(
            fields(&compare(&sent, &info(2, 1, 0, 12, 0), &[])),
            [STRANSID]
        );
        // A full stream's subvolume is no snapshot; an incremental one's is one of its
        // parent's received copies.
        assert_eq!(
            fields(&compare(&sent, &info(2, 1, 5, 12, 30), &[])),
            [PARENT_UUID]
        );
        assert_eq!(
            fields(&compare(&sent, &info(2, 1, 0, 12, 30), &[[5; 16]])),
            [PARENT_UUID]
        );
        assert_eq!(
            fields(&compare(&sent, &info(2, 1, 6, 12, 30), &[[5; 16]])),
            [PARENT_UUID]
        );
    }

    #[test]
    fn uuids_print_as_btrfs_progs_prints_them() {
        let mut bytes = [0u8; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8 * 17;
        }
        assert_eq!(uuid(&bytes), "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(uuid(&[0; 16]), "-");
    }
}
