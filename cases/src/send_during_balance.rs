//! send-during-balance: an incremental send while every block group is relocated, over and over.
//!
//! Send walks the commit roots of the sent snapshot and its parent side by side. Relocation
//! moves their tree blocks and rewrites the disk addresses in their file extent items, so a
//! leaf send holds can be stale: its extents point at addresses that relocation freed and may
//! have handed to new data, and a clone or a write from there sends the wrong bytes. Since
//! d96b34248c2f ("btrfs: make send work with concurrent block group relocation") send lets
//! balance run beside it: each turn of its walk checks whether a transaction committed while
//! relocation ran (`last_reloc_trans`), and if so searches both trees again for the keys it
//! stood on, clones the fresh leaves and goes on from there (`restart_after_relocation`). Before
//! that fix the two refused to run together. fstests' btrfs/187 runs send, balance and dedupe
//! together and checks that nothing crashes; this case receives the stream and compares every
//! attribute. No other case restarts the walk: on linux-source-6.1 the mutants of its error
//! checks (send.c:7162 and 7643, docs/mutants-missed-linux-6.1-send-shard1.txt) were missed.
//!
//! The parent holds a few hundred files of 8 KiB in directories, so its tree has many leaves;
//! the sent snapshot changes every file a little (data, a name, an xattr), so the walk has work
//! all along. The stream is drained one chunk per balance, so balances commit while send is
//! mid-walk, and the walk restarts after each.

use std::path::Path;

use anyhow::bail;
use sendtest::context::file_name;
use sendtest::prelude::*;
use sendtest::throttle::{Pace, Throttle};

pub const CASE: Case = Case {
    name: "send-during-balance",
    groups: &["send", "race", "relocation"],
    summary: "an incremental send while every block group is relocated, over and over",
    requires: &[],
    fix: Fix {
        commit: "d96b34248c2f",
        subject: "btrfs: make send work with concurrent block group relocation",
        fstests: Some("btrfs/187"),
        ..Fix::NONE_YET
    },
    // The root's mtime: the send bug the random case passes over (see its PASS_OVER). On 6.1
    // every new inode is made under an orphan name in the root and renamed into place, and no
    // utimes of the root follows.
    ignore: &["ctime", ".:mtime"],
    run,
};

/// Files, in directories of [`PER_DIR`], each of [`FILE_LEN`] bytes (past the inline limit).
const FILES: usize = 320;
const PER_DIR: usize = 40;
const FILE_LEN: usize = 8192;
/// The stream is drained this much per balance (a pipe gives at most 64 KiB a read): about
/// six balances per send of the ~400 KiB stream, the pipes holding the rest.
const THROTTLE: Throttle = Throttle {
    chunk: 64 * 1024,
    pace: Pace::Rounds(1),
};
/// Fewer balances than this while send ran, and the case did not test what it is for.
const MIN_BALANCES: u32 = 2;

fn run(t: &mut Ctx) -> Result<()> {
    let fs = t.scratch("source")?;
    let dest = t.scratch_to_receive("received")?;
    let source = t.create_subvolume(&fs.join("source"))?;
    populate(&source)?;
    let parent = t.snapshot(&source, &fs.join("parent"))?;
    change(&source)?;
    let sent = t.snapshot(&source, &fs.join("sent"))?;
    let top = t.tree_top(&sent)?;
    t.note(&format!(
        "the sent snapshot's tree has a level-{} root",
        top.level
    ));
    if top.level == 0 {
        bail!(
            "the sent snapshot's tree is a single leaf: the walk would have nothing to restart in"
        );
    }

    let full = t.send(&parent)?;
    let received = t.receive(&full, &dest, file_name(&parent)?)?;
    t.compare(&parent, &received)?;

    let mut send = t.send_throttled(&sent, Some(&parent), THROTTLE)?;
    let mut balances = 0;
    while t.sending(&mut send) {
        t.balance(&fs)?;
        balances += 1;
    }
    let stream = t.finish_send(send)?;
    t.note(&format!("{balances} balances ran while the send did"));
    // The stream first: a send that stops early after a restart runs fewer balances, and what
    // it lost is the finding, not the short race.
    let received = t.receive(&stream, &dest, file_name(&sent)?)?;
    t.compare(&sent, &received)?;
    if balances < MIN_BALANCES {
        bail!("only {balances} balances ran while the send did, fewer than {MIN_BALANCES}: the send did not race relocation");
    }
    Ok(())
}

fn path_of(root: &Path, i: usize) -> std::path::PathBuf {
    root.join(format!("d{}", i / PER_DIR)).join(format!("f{i}"))
}

/// [`FILES`] files, every third a reflinked copy of the one before, so their extents are shared.
fn populate(source: &Path) -> Result<()> {
    for i in 0..FILES {
        let path = path_of(source, i);
        if i % PER_DIR == 0 {
            std::fs::create_dir(path.parent().expect("in a directory"))?;
        }
        if i % 3 == 2 {
            // A reflinked copy of the file before it: its extent is shared.
            std::fs::File::create(&path)?;
            sendtest::file_ioctl::clone_range(
                &path_of(source, i - 1),
                0,
                &path,
                0,
                FILE_LEN as u64,
            )?;
        } else {
            let name = format!("f{i}");
            std::fs::write(&path, sendtest::workload::pattern(&name, 0, FILE_LEN))?;
        }
    }
    Ok(())
}

/// Every file changes, so the walk has work from the first leaf to the last: every fourth has
/// its first 4 KiB rewritten, the others a new mode; every fifth gains an xattr; every seventh
/// is renamed within its directory. (Few rewrites keep the stream, and so the balances it
/// takes, small.)
fn change(source: &Path) -> Result<()> {
    use std::os::unix::fs::{FileExt, PermissionsExt};
    for i in 0..FILES {
        let path = path_of(source, i);
        let name = format!("changed-{i}");
        if i % 4 == 0 {
            let file = std::fs::OpenOptions::new().write(true).open(&path)?;
            file.write_all_at(&sendtest::workload::pattern(&name, 0, 4096), 0)?;
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        if i % 5 == 0 {
            sendtest::xattr::set(&path, "user.changed", name.as_bytes())?;
        }
        if i % 7 == 0 {
            std::fs::rename(&path, path.with_file_name(&name))?;
        }
    }
    Ok(())
}
