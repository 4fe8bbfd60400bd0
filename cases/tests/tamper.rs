//! A case fails when its received tree is wrong: the real ro-flip-with-delalloc send/receive
//! runs, the received tree is changed before the comparison, and the case must fail, naming the
//! changed path and field and keeping the stream, both manifests and the diff.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use sendtest::context::{CaseOptions, Tamper};
use sendtest::runner::Outcome;
use sendtest::{preflight, xattr};
use support::{run_loop, Results};

mod support;

fn run_tampered(tamper: Tamper) -> (Outcome, std::path::PathBuf, Results) {
    let options = CaseOptions {
        tamper: Some(tamper),
        ..CaseOptions::default()
    };
    let (result, results) = run_loop("ro-flip-with-delalloc", options);
    (result.outcome, result.dir, results)
}

/// Flips one byte of `foo` and puts its times back, so that only its data differs.
fn flip_a_byte(received: &Path) -> anyhow::Result<()> {
    let path = received.join("foo");
    let meta = std::fs::metadata(&path)?;
    let file = OpenOptions::new().read(true).write(true).open(&path)?;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, 4097)?;
    file.write_all_at(&[!byte[0]], 4097)?;
    file.sync_all()?;
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        &path,
        &atime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )?;
    Ok(())
}

fn drop_an_xattr(received: &Path) -> anyhow::Result<()> {
    Ok(xattr::remove(&received.join("tiny"), "user.origin")?)
}

#[test]
fn a_flipped_byte_fails_the_case_and_keeps_the_evidence() {
    if !preflight::loopback_or_skip("a_flipped_byte_fails_the_case") {
        return;
    }
    let (outcome, dir, _results) = run_tampered(flip_a_byte);
    let Outcome::Failed(reason) = &outcome else {
        panic!("expected a failure, got {outcome:?}")
    };
    assert!(reason.contains("foo: field sha256: expected"), "{reason}");
    let diff = std::fs::read_to_string(dir.join("data.diff")).unwrap();
    assert_eq!(
        diff.lines().count(),
        1,
        "only foo's data should differ:\n{diff}"
    );
    for kept in [
        "data.stream",
        "data.source.manifest",
        "data.received.manifest",
        "commands.log",
        "dmesg",
    ] {
        assert!(dir.join(kept).is_file(), "{kept} was not kept");
    }
}

#[test]
fn a_dropped_xattr_fails_the_case() {
    if !preflight::loopback_or_skip("a_dropped_xattr_fails_the_case") {
        return;
    }
    let (outcome, _dir, _results) = run_tampered(drop_an_xattr);
    let Outcome::Failed(reason) = &outcome else {
        panic!("expected a failure, got {outcome:?}")
    };
    assert!(
        reason.contains("tiny: field xattr.user.origin: expected sendtest got (absent)"),
        "{reason}"
    );
}

#[test]
fn the_untampered_case_passes_and_keeps_its_manifests_but_not_its_stream() {
    if !preflight::loopback_or_skip("the_untampered_case_passes") {
        return;
    }
    let (result, _results) = run_loop("ro-flip-with-delalloc", CaseOptions::default());
    assert_eq!(result.outcome, Outcome::Passed);
    assert!(result.dir.join("data.source.manifest").is_file());
    assert!(result.dir.join("data.received.manifest").is_file());
    assert!(!result.dir.join("data.stream").exists());
}
