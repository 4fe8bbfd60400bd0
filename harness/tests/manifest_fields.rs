//! The comparison names exactly the path and field that changed: two trees are built from one
//! recipe, one attribute of one path is changed in the second, and the differences must be that
//! path and that field alone. Parts that need root (owners, device nodes, trusted xattrs on
//! symlinks) are left out of the recipe when not root.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{chown, Gid, Uid};
use sendtest::manifest::{compare, Ignore, Manifest};
use sendtest::{workload, xattr};

fn is_root() -> bool {
    Uid::effective().is_root()
}

/// Fixed times per path, so that two builds of the recipe match.
fn set_times(path: &Path, seconds: i64) {
    let atime = TimeSpec::new(seconds, 111);
    let mtime = TimeSpec::new(seconds + 7, 222_333_444);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &atime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

fn write_file(path: &Path, ranges: &[(u64, usize)], size: u64) {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    for &(offset, len) in ranges {
        file.write_all_at(&workload::pattern("recipe", offset, len), offset)
            .unwrap();
    }
    file.set_len(size).unwrap();
}

/// Paths in the recipe and the time each gets; directories last, after their contents.
const TIMED: &[(&str, i64)] = &[
    ("file", 1_000),
    ("sparse", 2_000),
    ("linked", 3_000),
    ("link", 4_000),
    ("fifo", 5_000),
    ("dir/inner", 6_000),
    ("dir", 7_000),
    (".", 8_000),
];

fn build(root: &Path) {
    fs::create_dir(root.join("dir")).unwrap();
    write_file(&root.join("file"), &[(0, 8192)], 8192);
    write_file(&root.join("sparse"), &[(0, 4096), (1 << 20, 4096)], 3 << 20);
    write_file(&root.join("linked"), &[(0, 5000)], 5000);
    fs::hard_link(root.join("linked"), root.join("dir/linked2")).unwrap();
    write_file(&root.join("dir/inner"), &[(0, 10)], 10);
    std::os::unix::fs::symlink("dir/inner", root.join("link")).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    xattr::set(&root.join("file"), "user.colour", b"blue").unwrap();
    xattr::set(root, "user.on-root", b"yes").unwrap();
    if is_root() {
        chown(
            &root.join("file"),
            Some(Uid::from_raw(1000)),
            Some(Gid::from_raw(1000)),
        )
        .unwrap();
        xattr::set(&root.join("link"), "trusted.on-symlink", b"1").unwrap();
        xattr::set(&root.join("fifo"), "trusted.on-fifo", b"2").unwrap();
        let dev = nix::sys::stat::makedev(1, 3);
        nix::sys::stat::mknod(
            &root.join("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            dev,
        )
        .unwrap();
        set_times(&root.join("null"), 9_000);
    }
    restore_times(root);
}

fn restore_times(root: &Path) {
    for (path, seconds) in TIMED {
        set_times(&root.join(path), *seconds);
    }
}

/// Builds the recipe twice, changes the second with `change`, and returns the differing
/// (path, field) pairs, with ctime ignored because no change can keep it. Each tree is walked
/// once: reading a symlink updates its atime on a writable tree.
fn differences_after(change: impl FnOnce(&Path)) -> Vec<(String, Option<String>)> {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for root in [&a, &b] {
        fs::create_dir(root).unwrap();
        build(root);
    }
    change(&b);
    let before = Manifest::of_tree(&a).unwrap();
    let after = Manifest::of_tree(&b).unwrap();
    let ignore = Ignore::new(&["ctime"]).unwrap();
    compare(&before, &after, &ignore)
        .iter()
        .map(|d| (d.path().to_string(), d.field().map(String::from)))
        .collect()
}

fn field(path: &str, field: &str) -> (String, Option<String>) {
    (path.to_string(), Some(field.to_string()))
}

#[test]
fn two_builds_of_the_recipe_match() {
    assert_eq!(differences_after(|_| {}), []);
}

#[test]
fn a_changed_data_byte_is_sha256() {
    let diffs = differences_after(|b| {
        OpenOptions::new()
            .write(true)
            .open(b.join("file"))
            .unwrap()
            .write_all_at(b"!", 100)
            .unwrap();
        restore_times(b);
    });
    assert_eq!(diffs, [field("file", "sha256")]);
}

#[test]
fn a_grown_file_is_size_and_sha256() {
    let diffs = differences_after(|b| {
        OpenOptions::new()
            .write(true)
            .open(b.join("file"))
            .unwrap()
            .set_len(12288)
            .unwrap();
        restore_times(b);
    });
    assert_eq!(diffs, [field("file", "sha256"), field("file", "size")]);
}

#[test]
fn a_changed_mode_is_mode() {
    let diffs = differences_after(|b| {
        fs::set_permissions(b.join("file"), fs::Permissions::from_mode(0o600)).unwrap();
    });
    assert_eq!(diffs, [field("file", "mode")]);
}

#[test]
fn a_changed_owner_is_uid() {
    if !is_root() {
        eprintln!("skipped: chown needs root");
        return;
    }
    let diffs = differences_after(|b| {
        chown(&b.join("sparse"), Some(Uid::from_raw(1234)), None).unwrap();
    });
    assert_eq!(diffs, [field("sparse", "uid")]);
}

#[test]
fn a_changed_mtime_is_mtime() {
    let diffs = differences_after(|b| {
        let path = b.join("dir/inner");
        let atime = TimeSpec::new(6_000, 111);
        utimensat(
            nix::fcntl::AT_FDCWD,
            &path,
            &atime,
            &TimeSpec::new(1, 0),
            UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    });
    assert_eq!(diffs, [field("dir/inner", "mtime")]);
}

#[test]
fn a_changed_xattr_is_that_xattr() {
    let diffs = differences_after(|b| xattr::set(&b.join("file"), "user.colour", b"red").unwrap());
    assert_eq!(diffs, [field("file", "xattr.user.colour")]);
    let diffs = differences_after(|b| xattr::remove(b, "user.on-root").unwrap());
    assert_eq!(diffs, [field(".", "xattr.user.on-root")]);
}

#[test]
fn a_removed_xattr_on_a_symlink_is_that_xattr() {
    if !is_root() {
        eprintln!("skipped: trusted xattrs need root");
        return;
    }
    let diffs =
        differences_after(|b| xattr::remove(&b.join("link"), "trusted.on-symlink").unwrap());
    assert_eq!(diffs, [field("link", "xattr.trusted.on-symlink")]);
}

#[test]
fn a_changed_symlink_target_is_target() {
    let diffs = differences_after(|b| {
        fs::remove_file(b.join("link")).unwrap();
        // Same length, so the size stays.
        std::os::unix::fs::symlink("dir/innex", b.join("link")).unwrap();
        if is_root() {
            xattr::set(&b.join("link"), "trusted.on-symlink", b"1").unwrap();
        }
        restore_times(b);
    });
    assert_eq!(diffs, [field("link", "target")]);
}

#[test]
fn a_split_hardlink_is_hardlink() {
    let diffs = differences_after(|b| {
        fs::remove_file(b.join("dir/linked2")).unwrap();
        fs::copy(b.join("linked"), b.join("dir/linked2")).unwrap();
        set_times(&b.join("dir/linked2"), 3_000);
        restore_times(b);
    });
    // `dir/linked2` sorts first, so `linked` is the path that names it.
    assert_eq!(diffs, [field("linked", "hardlink")]);
}

#[test]
fn a_filled_hole_is_layout() {
    let diffs = differences_after(|b| {
        let zeros = vec![0u8; 4096];
        OpenOptions::new()
            .write(true)
            .open(b.join("sparse"))
            .unwrap()
            .write_all_at(&zeros, 8192)
            .unwrap();
        restore_times(b);
    });
    assert_eq!(diffs, [field("sparse", "layout")]);
}

#[test]
fn a_changed_device_number_is_rdev() {
    if !is_root() {
        eprintln!("skipped: mknod needs root");
        return;
    }
    let diffs = differences_after(|b| {
        fs::remove_file(b.join("null")).unwrap();
        let dev = nix::sys::stat::makedev(1, 5);
        nix::sys::stat::mknod(
            &b.join("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            dev,
        )
        .unwrap();
        set_times(&b.join("null"), 9_000);
        restore_times(b);
    });
    assert_eq!(diffs, [field("null", "rdev")]);
}

#[test]
fn a_missing_and_an_extra_path_are_named() {
    let diffs = differences_after(|b| {
        fs::remove_file(b.join("fifo")).unwrap();
        fs::write(b.join("extra"), b"x").unwrap();
        set_times(b, 8_000);
    });
    assert_eq!(
        diffs,
        [("extra".to_string(), None), ("fifo".to_string(), None)]
    );
}

#[test]
fn the_text_form_compares_like_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let manifest = Manifest::of_tree(dir.path()).unwrap();
    assert_eq!(Manifest::parse(&manifest.to_text()).unwrap(), manifest);
}
