//! BTRFS_IOC_SEND as `btrfs_ioctl::send` calls it: a full stream and an incremental one with
//! compressed data receive to the snapshots they came from, and arguments the kernel must refuse
//! are refused. On loop devices, as root.

use std::fs::File;

mod support;

use sendtest::btrfs_ioctl::{self, SendRequest, SEND_FLAG_COMPRESSED, SEND_FLAG_VERSION};
use sendtest::prelude::*;
use support::{passes_on_loop, test_case};

fn sends_and_refuses(t: &mut Ctx) -> Result<()> {
    let fs = t.scratch_with("source", ScratchSpec::COMPRESSED)?;
    let dest = t.scratch_to_receive("received")?;
    let source = t.create_subvolume(&fs.join("source"))?;
    std::fs::write(source.join("a"), vec![b'a'; 200_000])?;
    std::fs::create_dir(source.join("d"))?;
    let first = t.snapshot(&source, &fs.join("first"))?;
    std::fs::rename(source.join("a"), source.join("d/b"))?;
    std::fs::write(source.join("c"), b"c")?;
    let second = t.snapshot(&source, &fs.join("second"))?;

    let first_id = btrfs_ioctl::tree_id(&first)?;
    let parent = [first_id];
    let sends = [
        (&first, SendRequest::default()),
        (
            &second,
            SendRequest {
                parent_root: first_id,
                clone_sources: &parent,
                flags: SEND_FLAG_VERSION | SEND_FLAG_COMPRESSED,
                version: 2,
                ..SendRequest::default()
            },
        ),
    ];
    for (snapshot, request) in sends {
        let name = sendtest::context::file_name(snapshot)?;
        let stream = t.results().join(format!("{name}.stream"));
        btrfs_ioctl::send(&File::open(snapshot)?, &File::create(&stream)?, &request)?;
        let received = t.receive(&stream, &dest, name)?;
        t.compare(snapshot, &received)?;
    }

    let out = File::create(t.work_dir().join("refused.stream"))?;
    let refused = |subvol: &std::path::Path, request: SendRequest| {
        btrfs_ioctl::send(&File::open(subvol).unwrap(), &out, &request).unwrap_err()
    };
    assert_eq!(
        refused(&source, SendRequest::default()),
        btrfs_ioctl::Errno::EPERM,
        "a writable subvolume"
    );
    let no_subvolume = [987_654];
    assert_eq!(
        refused(
            &second,
            SendRequest {
                clone_sources: &no_subvolume,
                ..SendRequest::default()
            }
        ),
        btrfs_ioctl::Errno::ENOENT,
        "a clone source that is no subvolume"
    );
    Ok(())
}

const CASE: Case = test_case("send-ioctl", sends_and_refuses);

#[test]
fn the_send_ioctl_sends_streams_that_receive_and_refuses_bad_arguments() {
    passes_on_loop(&CASE, "the_send_ioctl_sends_streams_that_receive");
}
