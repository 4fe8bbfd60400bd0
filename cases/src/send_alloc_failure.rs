//! send-alloc-failure: whichever allocation fails, send fails cleanly or sends the right
//! stream.
//!
//! Send allocates as it walks the trees: paths, search paths, name cache entries, inodes, the
//! records of references and directory moves. Each allocation has an error path, and no real
//! workload takes them, so nothing else runs them: half the send.c mutants that the random case
//! missed sat on such lines (docs/mutants-missed-linux-6.1-send-shard1.txt). A send that reports
//! success after a failed allocation, with a stream that lacks what the failure skipped, loses
//! data on the receiving side without a word; one that fails but keeps a reference (the
//! snapshot's count of sends in progress, an inode) makes the snapshot impossible to delete, or
//! warns later. The case sends a tree made by the random case's operations (seed 1) and a few
//! more (a directory whose inode number a new one takes after a remount, among others), in
//! full and incrementally with compressed data, and fails each of the sends' allocations in
//! turn with the kernel's fail-nth, calling BTRFS_IOC_SEND itself so that only the send's own
//! allocations count. The page cache and the unused inodes are dropped before each send, so
//! that send's inode lookups (`btrfs_iget`) allocate too. Each send must fail, or succeed with
//! a stream that receives to the snapshot it came from. Then both snapshots must delete, and
//! the kernel log and `btrfs check` must be clean. It also passes send what btrfs-progs never
//! does (a parent or clone source that is no subvolume, a writable parent, unknown flags, a
//! protocol past the kernel's, a clone source count past any array), and each must be refused.
//!
//! It needs a kernel with CONFIG_FAULT_INJECTION and CONFIG_FAILSLAB, in a guest (the knob that
//! lets sleeping allocations fail is global): the config fragment in vm-images/ has them, so
//! `sendtest run send-alloc-failure --kernel-tree TREE` runs it. No kernel commit is its fix:
//! it guards every error path of send at once.

use std::fs::File;
use std::path::Path;

use anyhow::Context;
use sendtest::btrfs_ioctl::{self, SendRequest, SEND_FLAG_COMPRESSED, SEND_FLAG_VERSION};
use sendtest::context::file_name;
use sendtest::fault_inject::{self, FailNth};
use sendtest::prelude::*;
use sendtest::random::{ops, wide::Wide, Op};

pub const CASE: Case = Case {
    name: "send-alloc-failure",
    groups: &["send", "fault"],
    summary: "each allocation of a full and an incremental send failed in turn: send fails, or its stream is right",
    requires: &[Require::FailNth, Require::SendProtocol(2)],
    fix: Fix {
        subject: "no single fix: it guards the error paths of send",
        ..Fix::NONE_YET
    },
    // The root's mtime: the send bug the random case passes over (see its PASS_OVER), which
    // this tree meets too.
    ignore: &["ctime", ".:mtime"],
    run,
};

/// The operations that make the tree: the random case's seed 1, fewer of them than a random
/// run, since each send is repeated once per allocation it makes.
const SEED: u64 = 1;
const OPS: usize = 120;
/// More fault points than this in one send means a tree far larger than `OPS` makes: an
/// error in the case, not a finding.
const MOST_FAULT_POINTS: u32 = 100_000;

fn run(t: &mut Ctx) -> Result<()> {
    fault_inject::let_sleeping_allocations_fail()?;
    let fs = t.scratch_with("source", ScratchSpec::COMPRESSED)?;
    let dest = t.scratch_to_receive("received")?;
    let source = t.create_subvolume(&fs.join("source"))?;
    let (first, second) = make_snapshots(t, &fs, &source)?;

    let full = Send {
        snapshot: &first,
        request: SendRequest::default(),
        name: "full",
    };
    let first_id = btrfs_ioctl::tree_id(&first)?;
    let clone_sources = [first_id];
    let incremental = Send {
        snapshot: &second,
        request: SendRequest {
            parent_root: first_id,
            clone_sources: &clone_sources,
            flags: SEND_FLAG_VERSION | SEND_FLAG_COMPRESSED,
            version: 2,
            ..SendRequest::default()
        },
        name: "incremental",
    };
    // Without failures, each stream must receive to its snapshot: what the failing runs'
    // streams are held to.
    let mut summary = Vec::new();
    for send in [&full, &incremental] {
        let stream = send.reference(t)?;
        let received = t.receive(&stream, &dest, file_name(send.snapshot)?)?;
        t.compare(send.snapshot, &received)?;
        let counts = send.fail_each_allocation(t, &stream, &dest)?;
        summary.push(format!("{}: {counts}", send.name));
    }
    refuses_what_progs_never_asks(t, &source, &first, &second, first_id)?;
    // A send that failed and kept the snapshot's count of sends in progress makes this fail
    // with EPERM.
    for snapshot in [&second, &first] {
        btrfs_ioctl::delete_subvolume(snapshot).map_err(|e| {
            detected(format!(
                "after the failed sends, {} cannot be deleted: {e:#}",
                snapshot.display()
            ))
        })?;
    }
    t.headline(&summary.join("\n"))
}

/// The two read-only snapshots of `source`: after the operations up to the list's first
/// snapshot point, and after the rest.
fn make_snapshots(
    t: &mut Ctx,
    fs: &Path,
    source: &Path,
) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let list = ops::generate(SEED, OPS, 1);
    let split = list
        .iter()
        .position(|op| *op == Op::Snapshot)
        .unwrap_or(list.len() / 2);
    let apply = |ops: &[Op]| {
        for op in ops.iter().filter(|op| **op != Op::Snapshot) {
            // An operation whose precondition does not hold changes nothing, as in the chain.
            let _ = op.apply(source);
        }
    };
    apply(&list[..split]);
    apply(&first_extras());
    let first = t.snapshot(source, &fs.join("first"))?;
    reuse_the_directory_number(t, source)?;
    apply(&list[split..]);
    apply(&second_extras());
    let second = t.snapshot(source, &fs.join("second"))?;
    Ok((first, second))
}

/// What seed 1's list lacks, so that the sends' allocations fail in more of send's steps: a
/// symlink (`read_symlink`), a file of an unaligned size, a file with one name, and last (so
/// that it has the highest inode number) a directory holding a file.
fn first_extras() -> Vec<Op> {
    vec![
        Op::Symlink {
            target: "a/target".into(),
            path: "alloc-link".into(),
        },
        Op::Write {
            file: "alloc-src".into(),
            offset: 0,
            len: 100_000,
            byte: b'e',
            direct: false,
        },
        Op::Write {
            file: "alloc-linked".into(),
            offset: 0,
            len: 10,
            byte: b'l',
            direct: false,
        },
        Op::Write {
            file: "alloc-in-dir".into(),
            offset: 0,
            len: 10,
            byte: b'f',
            direct: false,
        },
        Op::Mkdir {
            path: "alloc-dir".into(),
        },
        Op::Rename {
            from: "alloc-in-dir".into(),
            to: format!("alloc-dir/{IN_DIR}"),
        },
    ]
}

/// The name of the file in `alloc-dir`.
const IN_DIR: &str = "f";

/// Removes `alloc-dir` and makes it again after a remount, so that it has the same inode number
/// and a new generation, and moves its file back in under the same name: the file's reference
/// is then the same item in both snapshots, and only the directory's generation
/// (`dir_changed`) tells send that the file moved.
fn reuse_the_directory_number(t: &mut Ctx, source: &Path) -> Result<()> {
    let dir = source.join("alloc-dir");
    let out = source.join("alloc-out-of-dir");
    std::fs::rename(dir.join(IN_DIR), &out)?;
    t.remake_dir_with_its_number(&dir)?;
    std::fs::rename(&out, dir.join(IN_DIR))?;
    Ok(())
}

/// For the incremental send: a whole-file reflink of the unaligned file (sent as a clone
/// ending at the source's size, after a truncate: `send_write_or_clone`), a second name of the
/// file with one (a changed reference), a new symlink, and a small file that compresses well
/// (an inline extent sent compressed: `send_encoded_inline_extent`).
fn second_extras() -> Vec<Op> {
    vec![
        Op::Wide(Wide::CopyFile {
            src: "alloc-src".into(),
            dst: "alloc-copy".into(),
        }),
        Op::Link {
            from: "alloc-linked".into(),
            to: "alloc-linked-too".into(),
        },
        Op::Symlink {
            target: "b/target".into(),
            path: "alloc-link-too".into(),
        },
        Op::Write {
            file: "alloc-inline".into(),
            offset: 0,
            len: 3000,
            byte: b'i',
            direct: false,
        },
    ]
}

/// One send as the case makes it: a snapshot, and the ioctl's arguments.
struct Send<'a> {
    snapshot: &'a Path,
    request: SendRequest<'a>,
    name: &'a str,
}

/// What the sends with one allocation failing came to.
#[derive(Default)]
struct Counts {
    failed: u32,
    enomem: u32,
    succeeded: u32,
    other_stream: u32,
    /// How many of those were distinct.
    distinct: u32,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} allocations failed in turn: {} sends failed ({} with ENOMEM), {} succeeded ({} with another stream, {} distinct, each received right)",
            self.failed + self.succeeded,
            self.failed,
            self.enomem,
            self.succeeded,
            self.other_stream,
            self.distinct
        )
    }
}

impl Send<'_> {
    /// The stream without failures, kept in the results as `NAME.stream`.
    fn reference(&self, t: &Ctx) -> Result<std::path::PathBuf> {
        let path = t.results().join(format!("{}.stream", self.name));
        let out = File::create(&path)?;
        let subvol = File::open(self.snapshot)?;
        btrfs_ioctl::send(&subvol, &out, &self.request)
            .with_context(|| format!("the {} send without failures", self.name))
            .map_err(|e| detected(format!("{e:#}")))?;
        Ok(path)
    }

    /// Sends once per fault point of the send, the Nth failing in the Nth send, until a send
    /// passes all of them.
    fn fail_each_allocation(&self, t: &Ctx, reference: &Path, dest: &Path) -> Result<Counts> {
        let expected = std::fs::read(reference)?;
        let subvol = File::open(self.snapshot)?;
        let path = t.work_dir().join(format!("{}.failing.stream", self.name));
        let out = File::create(&path)?;
        let fail = FailNth::open()?;
        let mut counts = Counts::default();
        // The other streams that received right so far.
        let mut right: Vec<Vec<u8>> = Vec::new();
        for n in 1.. {
            anyhow::ensure!(
                n <= MOST_FAULT_POINTS,
                "the {} send passed more than {MOST_FAULT_POINTS} fault points",
                self.name
            );
            // No command runs here for the runner to stop: the loop stops itself.
            sendtest::interrupt::check()?;
            if let Some(limit) = t.log().time_limit_passed() {
                anyhow::bail!(
                    "the {} send with allocation {n} failing was not tried: the case's time limit of {}s passed",
                    self.name,
                    limit.as_secs()
                );
            }
            out.set_len(0)?;
            // Else the send finds its inodes cached, and their lookups' allocations never fail.
            fault_inject::drop_caches()?;
            fail.arm(n)?;
            let sent = btrfs_ioctl::send(&subvol, &out, &self.request);
            if !fail.fired()? {
                // The send passed every fault point: it must be the stream without failures.
                sent.with_context(|| format!("the {} send with nothing failing", self.name))
                    .map_err(|e| detected(format!("{e:#}")))?;
                if std::fs::read(&path)? != expected {
                    self.check_stream(t, &path, dest, n)?;
                }
                counts.distinct = right.len() as u32;
                return Ok(counts);
            }
            match sent {
                Err(errno) => {
                    counts.failed += 1;
                    counts.enomem += u32::from(errno == btrfs_ioctl::Errno::ENOMEM);
                }
                Ok(()) => {
                    counts.succeeded += 1;
                    let stream = std::fs::read(&path)?;
                    if stream != expected {
                        counts.other_stream += 1;
                        // Another allocation's failure often leads to the same other stream
                        // (a clone sent as a write, say): each is received once.
                        if !right.contains(&stream) {
                            self.check_stream(t, &path, dest, n)?;
                            right.push(stream);
                        }
                    }
                }
            }
        }
        unreachable!("the loop returns or fails")
    }

    /// Receives a stream that a send with fault point `n` failing returned as a success, and
    /// compares it with the snapshot: it must receive to the same tree.
    fn check_stream(&self, t: &Ctx, stream: &Path, dest: &Path, n: u32) -> Result<()> {
        let kept = t
            .results()
            .join(format!("{}.fail-nth-{n}.stream", self.name));
        std::fs::copy(stream, &kept)?;
        let into = dest.join(format!("{}-fail-nth-{n}", self.name));
        std::fs::create_dir(&into)?;
        let what = format!(
            "the {} send with allocation {n} failing succeeded with another stream ({})",
            self.name,
            kept.display()
        );
        let received = t
            .receive(&kept, &into, file_name(self.snapshot)?)
            .map_err(|e| detected(format!("{what}, which does not receive: {e:#}")))?;
        t.compare(self.snapshot, &received)
            .map_err(|e| detected(format!("{what}: {e:#}")))?;
        btrfs_ioctl::delete_subvolume(&received)?;
        std::fs::remove_dir(&into)?;
        std::fs::remove_file(&kept)?;
        Ok(())
    }
}

/// Arguments btrfs-progs never passes: each must make the ioctl fail, and none may send.
fn refuses_what_progs_never_asks(
    t: &Ctx,
    source: &Path,
    first: &Path,
    second: &Path,
    first_id: u64,
) -> Result<()> {
    // No subvolume has this id: the test filesystem has four.
    const NO_SUBVOLUME: u64 = 987_654;
    const FS_TREE: u64 = 5;
    let no_subvolume = [NO_SUBVOLUME];
    let writable = [FS_TREE];
    let asks: [(&str, &Path, SendRequest); 8] = [
        (
            "a clone source that is no subvolume",
            second,
            SendRequest {
                parent_root: first_id,
                clone_sources: &no_subvolume,
                ..SendRequest::default()
            },
        ),
        (
            "a writable clone source",
            second,
            SendRequest {
                clone_sources: &writable,
                ..SendRequest::default()
            },
        ),
        (
            "a parent that is no subvolume",
            second,
            SendRequest {
                parent_root: NO_SUBVOLUME,
                ..SendRequest::default()
            },
        ),
        (
            "a writable parent",
            second,
            SendRequest {
                parent_root: FS_TREE,
                ..SendRequest::default()
            },
        ),
        (
            "an unknown flag",
            first,
            SendRequest {
                flags: 1 << 40,
                ..SendRequest::default()
            },
        ),
        (
            "protocol 99",
            first,
            SendRequest {
                flags: SEND_FLAG_VERSION,
                version: 99,
                ..SendRequest::default()
            },
        ),
        (
            "compressed data in protocol 1",
            first,
            SendRequest {
                flags: SEND_FLAG_VERSION | SEND_FLAG_COMPRESSED,
                version: 1,
                ..SendRequest::default()
            },
        ),
        (
            "a clone source count past any array",
            first,
            SendRequest {
                clone_sources_count: Some(u64::MAX / 8),
                ..SendRequest::default()
            },
        ),
    ];
    let out = File::create(t.work_dir().join("refused.stream"))?;
    for (what, snapshot, request) in asks {
        out.set_len(0)?;
        let subvol = File::open(snapshot)?;
        match btrfs_ioctl::send(&subvol, &out, &request) {
            Err(errno) => t.note(&format!("send with {what}: refused ({errno})")),
            Ok(()) => {
                return Err(detected(format!(
                    "send of {} with {what} was not refused: it sent {} bytes",
                    snapshot.display(),
                    out.metadata()?.len()
                )))
            }
        }
    }
    // The writable source itself.
    out.set_len(0)?;
    if btrfs_ioctl::send(&File::open(source)?, &out, &SendRequest::default()).is_ok() {
        return Err(detected(format!(
            "send of the writable subvolume {} was not refused",
            source.display()
        )));
    }
    Ok(())
}
