//! The standalone reproducer of a shrunk list: two loop-backed filesystems, the operations,
//! the snapshots, the send/receive chain, and a comparison that needs no sendtest.

use std::fmt::Write as _;

use super::ops::Op;
use crate::configuration::Configuration;

/// Fields of the manifest that the script's comparison takes with `stat`, and how.
const STAT_FIELDS: &[(&str, &str)] = &[
    ("type", "%F"),
    ("mode", "mode=%a"),
    ("uid", "uid=%u"),
    ("gid", "gid=%g"),
    ("size", "size=%s"),
    ("rdev", "rdev=%t:%T"),
    ("hardlink", "links=%h"),
    ("mtime", "mtime=%.9Y"),
    ("atime", "atime=%.9X"),
    // Where a file's data lies: the blocks it has allocated.
    ("layout", "blocks=%b"),
];

/// The script's `identity SOURCE RECEIVED`: what the identity rule checks that btrfs-progs
/// shows, each lack as a line (the received subvolume read-only, its received UUID the
/// source's UUID).
const IDENTITY: &str = "identity() {
  local uuid received
  uuid=$(btrfs subvolume show \"$1\" | awk '$1 == \"UUID:\" {print $2}')
  received=$(btrfs subvolume show \"$2\" | awk '$1 == \"Received\" && $2 == \"UUID:\" {print $3}')
  [ \"$received\" = \"$uuid\" ] || echo \"$2: received UUID $received, not the source's $uuid\"
  [ \"$(btrfs property get -ts \"$2\" ro)\" = ro=true ] || echo \"$2: not read-only\"
}
";

/// The script's `compare SOURCE RECEIVED`: with `sendtest manifest --compare` when $SENDTEST
/// names sendtest; else with stat (%N carries symlink targets), cmp for the data and getfattr
/// for the xattrs, so that the script needs nothing the kernel list would not have. Both leave
/// out what `ignore` (as `--ignore` takes it) names; for stat, whole fields and the root's.
///
/// With `compressed`, it also checks the layout oracle's compressed rule as `filefrag` shows
/// it: every block wholly inside a source file's size that fiemap reports compressed
/// (`encoded`, not inline) is compressed in the received file.
fn compare_function(ignore: &[String], compressed: bool) -> String {
    let everywhere = |field: &str| ignore.iter().any(|i| i == field);
    let at_root =
        |field: &str| everywhere(field) || ignore.iter().any(|i| *i == format!(".:{field}"));
    let format = |left_out: &dyn Fn(&str) -> bool| {
        std::iter::once("%N")
            .chain(
                STAT_FIELDS
                    .iter()
                    .filter(|(field, _)| !left_out(field))
                    .map(|(_, directive)| *directive),
            )
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (root, entries) = (format(&at_root), format(&everywhere));
    let sendtest_ignore: String = ignore.iter().map(|i| format!("--ignore {i} ")).collect();
    let data = if everywhere("sha256") {
        String::new()
    } else {
        "  while IFS= read -r -d '' f; do\n\
         \x20   cmp -s \"$1/$f\" \"$2/$f\" || { echo \"$f: data differs\"; differs=1; }\n\
         \x20 done < <(cd \"$1\" && find . -type f -print0)\n"
            .to_string()
    };
    let xattrs = if ignore.iter().any(|i| i.starts_with("xattr")) {
        String::new()
    } else {
        "  diff <(xattrs \"$1\") <(xattrs \"$2\") || differs=1\n".to_string()
    };
    let (encoded, encoded_check) = if compressed {
        (
            "encoded() {\n\
             \x20 (cd \"$1\" && find . -type f -print0 | sort -z | while IFS= read -r -d '' f; do\n\
             \x20   filefrag -v \"$f\" | awk -v f=\"$f\" -v full=$(( $(stat -c %s \"$f\") / 4096 )) \\\n\
             \x20     '$1 ~ /^[0-9]+:$/ && $NF ~ /encoded/ && $NF !~ /inline/ {\n\
             \x20       s = $2; e = $3; sub(/\\.\\./, \"\", s); sub(/:/, \"\", e)\n\
             \x20       for (b = s + 0; b <= e + 0 && b < full; b++) print f \": block \" b }'\n\
             \x20 done) | sort\n\
             }\n",
            "  comm -23 <(encoded \"$1\") <(encoded \"$2\") | sed 's/$/ compressed in the source, not received compressed/' | grep . && differs=1\n",
        )
    } else {
        ("", "")
    };
    let manifest =
        format!("\"$SENDTEST\" manifest --all-fields {sendtest_ignore}--compare \"$1\" \"$2\"");
    let identity_check = "  identity \"$1\" \"$2\" | grep . && differs=1\n";
    let with_sendtest = format!(
        "\x20   local differs=0\n\
         \x20 {manifest} || differs=1\n\
         \x20 {identity_check}{encoded_check}\
         \x20   return $differs\n"
    );
    format!(
        "{encoded}{IDENTITY}attributes() {{\n\
         \x20 (cd \"$1\" && stat -c '{root}' . &&\n\
         \x20   find . -mindepth 1 -print0 | sort -z | xargs -0 -r stat -c '{entries}')\n\
         }}\n\
         xattrs() {{\n\
         \x20 (cd \"$1\" && find . -print0 | sort -z | xargs -0 getfattr -h -d -m - 2>/dev/null)\n\
         }}\n\
         compare() {{\n\
         \x20 if [ -n \"${{SENDTEST:-}}\" ]; then\n\
         {with_sendtest}\
         \x20 fi\n\
         \x20 local differs=0 f\n\
         \x20 diff <(attributes \"$1\") <(attributes \"$2\") || differs=1\n\
         {data}{xattrs}{identity_check}{encoded_check}\
         \x20 [ $differs = 0 ] && echo \"no differences: $2\"\n\
         \x20 return $differs\n\
         }}\n"
    )
}

/// How a script runs its chain, as [`Chains`] does.
#[derive(Debug, Clone)]
pub struct ScriptOptions {
    /// Truncate the largest received file, as [`Chains::break_received`].
    pub break_received: bool,
    /// Send with `--proto 2 --compressed-data` from a filesystem mounted with `compression`.
    pub proto2: bool,
    pub compression: super::Compression,
    /// What the comparison leaves out, as `sendtest manifest --ignore` takes it.
    pub ignore: Vec<String>,
    /// How and where each stream is received.
    pub receive: super::Receive,
    /// What the later snapshots are sent against.
    pub parents: super::Parents,
    /// The mkfs, mount and send options the chain ran with.
    pub configuration: &'static Configuration,
    /// Compare which blocks are compressed too (a failure of the compressed rule).
    pub compressed: bool,
}

impl Default for ScriptOptions {
    fn default() -> ScriptOptions {
        ScriptOptions {
            break_received: false,
            proto2: false,
            compression: super::Compression::default(),
            ignore: Vec::new(),
            receive: super::Receive::default(),
            parents: super::Parents::default(),
            configuration: crate::configuration::DEFAULT,
            compressed: false,
        }
    }
}

/// `words` as shell words followed by a space each; empty for none.
fn words(words: &[&str]) -> String {
    words.iter().map(|w| format!("{w} ")).collect()
}

/// `-o OPTIONS ` for mount, or nothing.
fn mount_o(options: &str) -> String {
    if options.is_empty() {
        String::new()
    } else {
        format!("-o {options} ")
    }
}

/// A standalone script: two loop-backed btrfs filesystems, the operations in a subvolume, the
/// snapshots, the send/receive chain, and a comparison of each pair.
pub fn script(seed: u64, ops: &[Op], options: &ScriptOptions, failure: &str) -> String {
    let break_received = options.break_received;
    let config = options.configuration;
    let (source_own, send_options) = if options.proto2 {
        (
            options.compression.mount_option(),
            words(super::chain::PROTO2),
        )
    } else {
        (String::new(), words(config.send))
    };
    let src_mkfs = words(&config.mkfs_args(&[], false));
    let dst_mkfs = words(&config.mkfs_args(&[], true));
    let src_mount = mount_o(&config.mount_options(&source_own, false));
    let dst_mount = mount_o(&config.mount_options("", true));
    let configured = if config.is_default() {
        String::new()
    } else {
        format!(
            "# Configuration `{}`: {}.\n",
            config.name,
            config.describe()
        )
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "#!/bin/bash\n# sendtest random, seed {seed}: {} operations and {} snapshots that fail:\n#   {failure}\n\
         # Run as root. Needs btrfs-progs, xfsprogs (xfs_io), attr (setfattr, getfattr), coreutils,\n\
         # findutils and diffutils. SENDTEST=/path/to/sendtest compares with its manifests instead.\n\
         {configured}set -u\n{}held=()\nwork=$(mktemp -d)\ntruncate -s 4G \"$work/src.img\" \"$work/dst.img\"\n\
         src=$(losetup -f --show \"$work/src.img\"); dst=$(losetup -f --show \"$work/dst.img\")\n\
         mkfs.btrfs -q -f {src_mkfs}\"$src\" >/dev/null; mkfs.btrfs -q -f {dst_mkfs}\"$dst\" >/dev/null\n\
         mkdir \"$work/src\" \"$work/dst\"; mount {src_mount}\"$src\" \"$work/src\"; mount {dst_mount}\"$dst\" \"$work/dst\"\n\
         btrfs -q subvolume create \"$work/src/vol\"\ncd \"$work/src/vol\"",
        ops.iter().filter(|o| **o != Op::Snapshot).count(),
        ops.iter().filter(|o| **o == Op::Snapshot).count() + 1,
        compare_function(&options.ignore, options.compressed)
    );
    let mut snaps = 0;
    let snapshot = |s: &mut String, n: usize| {
        let _ = writeln!(
            s,
            "btrfs -q subvolume snapshot -r \"$work/src/vol\" \"$work/src/snap{n}\""
        );
    };
    for op in ops {
        if *op == Op::Snapshot {
            snapshot(&mut s, snaps);
            snaps += 1;
        } else if let Op::Wide(wide) = op {
            let last = format!("\"$work/src/snap{}\"", snaps.saturating_sub(1));
            match wide.flip_commands(&last) {
                Some(_) if snaps == 0 => {}
                Some(commands) => {
                    let _ = writeln!(s, "{commands}");
                }
                None => {
                    let _ = writeln!(s, "{op} 2>/dev/null");
                }
            }
        } else {
            let _ = writeln!(s, "{op} 2>/dev/null");
        }
    }
    snapshot(&mut s, snaps);
    if options.parents == super::Parents::Twin {
        let _ = writeln!(
            s,
            "# The twin: a fresh subvolume given the operations before the first snapshot (the\n\
             # same inode numbers, newer generations).\n\
             btrfs -q subvolume create \"$work/src/twin\"\ncd \"$work/src/twin\""
        );
        for op in super::parents::twin_ops(ops) {
            let _ = writeln!(s, "{op} 2>/dev/null");
        }
        let _ = writeln!(
            s,
            "btrfs -q subvolume snapshot -r \"$work/src/twin\" \"$work/src/twin.snap\""
        );
    }
    let _ = writeln!(s, "cd /\nstatus=0");
    // Where each stream is received, as the chain does it: below the receiving filesystem's
    // top, or below its subvolume `backup` mounted on its own.
    let own_mount = options.receive.own_mount();
    let base = if own_mount {
        "$work/backup"
    } else {
        "$work/dst"
    };
    if own_mount {
        let _ = writeln!(
            s,
            "# The receiving filesystem's subvolume `backup`, mounted on its own, receives.\n\
             btrfs -q subvolume create \"$work/dst/backup\"; mkdir \"$work/backup\"\n\
             mount -o subvol=backup \"$dst\" \"$work/backup\""
        );
    }
    let targets: Vec<String> = options
        .receive
        .dirs()
        .iter()
        .map(|d| {
            if d.is_empty() {
                base.to_string()
            } else {
                format!("{base}/{d}")
            }
        })
        .collect();
    for dir in targets.iter().filter(|d| *d != base) {
        let _ = writeln!(s, "mkdir -p \"{dir}\"");
    }
    let beside = options.receive.beside().map(|d| format!("$work/dst/{d}"));
    if let Some(dir) = &beside {
        let _ = writeln!(
            s,
            "# Another filesystem on a path that the receiving one's begins with.\n\
             mkdir -p \"{dir}\"; mount -t tmpfs -o size=1m tmpfs \"{dir}\""
        );
    }
    for sent in options.parents.sends(snaps + 1) {
        let words = options.parents.shell_words(sent.clone(), snaps + 1, &|n| {
            format!("\"$work/src/snap{n}\"")
        });
        let first = sent.start;
        if sent.len() > 1 {
            let _ = writeln!(
                s,
                "# Snapshots {first}-{} in one send, each against snapshot 0.",
                sent.end - 1
            );
        }
        let _ = writeln!(
            s,
            "btrfs -q send {send_options}-f \"$work/s{first}\" {words} || status=1"
        );
        let receive_options: String = options
            .receive
            .options("$work/dst")
            .iter()
            .map(|o| {
                if o.starts_with('$') {
                    format!("\"{o}\" ")
                } else {
                    format!("{o} ")
                }
            })
            .collect();
        for dir in &targets {
            let _ = writeln!(
                s,
                "btrfs -q receive {receive_options}-f \"$work/s{first}\" \"{dir}\" || status=1"
            );
        }
        for i in sent {
            if break_received {
                let _ = writeln!(
                s,
                "# The deliberate fault: the largest received file loses its last byte (-f clears the\n\
                 # received UUID too, which the comparison reports as well).\n\
                 btrfs property set -f -ts \"{first}/snap{i}\" ro false\n\
                 f=$(find \"{first}/snap{i}\" -type f -size +0 -printf '%s %p\\n' | sort -n | tail -1 | cut -d' ' -f2-)\n\
                 [ -n \"$f\" ] && truncate -s -1 \"$f\"\n\
                 btrfs property set -ts \"{first}/snap{i}\" ro true",
                first = targets[0]
            );
            }
            for dir in &targets {
                let _ = writeln!(
                    s,
                    "compare \"$work/src/snap{i}\" \"{dir}/snap{i}\" || status=1"
                );
            }
            if options.parents.full_too(i, snaps + 1) {
                let full = format!("{}/{}", targets[0], super::parents::FULL_DIR);
                let _ = writeln!(
                    s,
                    "# Snapshot {i} again, in full.\n\
                 mkdir -p \"{full}\"\n\
                 btrfs -q send {send_options}-f \"$work/f{i}\" \"$work/src/snap{i}\" || status=1\n\
                 btrfs -q receive -f \"$work/f{i}\" \"{full}\" || status=1\n\
                 compare \"$work/src/snap{i}\" \"{full}/snap{i}\" || status=1"
                );
            }
            if options.parents.twin(i, snaps + 1) {
                let twin = format!("{}/{}", targets[0], super::parents::TWIN_DIR);
                let _ = writeln!(
                s,
                "# Snapshot {i} again, against the twin.\n\
                 mkdir -p \"{twin}\"\n\
                 btrfs -q send {send_options}-f \"$work/t\" \"$work/src/twin.snap\" || status=1\n\
                 btrfs -q receive -f \"$work/t\" \"{twin}\" || status=1\n\
                 btrfs -q send {send_options}-p \"$work/src/twin.snap\" -f \"$work/t{i}\" \"$work/src/snap{i}\" || status=1\n\
                 btrfs -q receive -f \"$work/t{i}\" \"{twin}\" || status=1\n\
                 compare \"$work/src/snap{i}\" \"{twin}/snap{i}\" || status=1"
            );
            }
        }
    }
    if let Some(dir) = &beside {
        let _ = writeln!(s, "umount \"{dir}\"");
    }
    if own_mount {
        let _ = writeln!(s, "umount \"$work/backup\"");
    }
    // Files unlinked while open are closed, as the chain closes them, so that the source
    // unmounts.
    let _ = writeln!(s, "for fd in \"${{held[@]}}\"; do exec {{fd}}<&-; done");
    let _ = writeln!(
        s,
        "umount \"$work/src\" \"$work/dst\"; losetup -d \"$src\" \"$dst\"; rm -rf \"$work\"\n\
         [ $status = 0 ] && echo 'passed: the failure did not reproduce' || echo 'FAILED: reproduced'\n\
         exit $status"
    );
    s
}
