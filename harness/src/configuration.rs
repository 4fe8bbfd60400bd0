//! Filesystem configurations, as data: named sets of mkfs options, mount options and send
//! options, as xfstests-bld keeps them for fstests. `sendtest run -c NAME[,NAME…]` runs each
//! case under each; a case's scratch filesystems are made and mounted with its configuration's
//! options on top of the case's own, and every send it makes (through [`crate::context::Ctx`]
//! or the random chains) carries the configuration's send options. Some configurations change
//! only the receiving side (`receive-*`): people back up to filesystems unlike the ones they
//! send from.

use crate::require::Require;

/// One configuration.
#[derive(Debug, PartialEq, Eq)]
pub struct Configuration {
    pub name: &'static str,
    /// What it is for: which send/receive code it reaches that the default does not.
    pub summary: &'static str,
    /// mkfs.btrfs options of every scratch filesystem.
    pub mkfs: &'static [&'static str],
    /// Mount options of every scratch filesystem, comma-separated.
    pub mount: &'static str,
    /// mkfs.btrfs options of the filesystems that receive only.
    pub receive_mkfs: &'static [&'static str],
    /// Mount options of the filesystems that receive only.
    pub receive_mount: &'static str,
    /// Options of every `btrfs send`.
    pub send: &'static [&'static str],
    /// What the kernel and btrfs-progs must support; a case under a configuration whose
    /// requirements are not met is not run, and says why.
    pub requires: &'static [Require],
}

impl Configuration {
    /// Whether this is the configuration a run without `-c` uses.
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT.name
    }

    /// The first requirement not met where this runs.
    pub fn unmet(&self) -> Option<String> {
        self.requires
            .iter()
            .find_map(Require::unmet)
            .map(|why| format!("configuration `{}` {why}", self.name))
    }

    /// mkfs.btrfs options of a scratch filesystem: `own` (the case's), then the
    /// configuration's, then the receiving side's for a filesystem that receives.
    pub fn mkfs_args<'a>(&'a self, own: &[&'a str], receives: bool) -> Vec<&'a str> {
        let mut args: Vec<&str> = own.to_vec();
        args.extend_from_slice(self.mkfs);
        if receives {
            args.extend_from_slice(self.receive_mkfs);
        }
        args
    }

    /// Mount options of a scratch filesystem, in the same order as [`Self::mkfs_args`] (a later
    /// option wins where two set the same thing).
    pub fn mount_options(&self, own: &str, receives: bool) -> String {
        let receiving = if receives { self.receive_mount } else { "" };
        [own, self.mount, receiving]
            .iter()
            .filter(|o| !o.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One line: the options as a person would type them.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.mkfs.is_empty() {
            parts.push(format!("mkfs {}", self.mkfs.join(" ")));
        }
        if !self.mount.is_empty() {
            parts.push(format!("mount -o {}", self.mount));
        }
        if !self.receive_mkfs.is_empty() {
            parts.push(format!("receiving mkfs {}", self.receive_mkfs.join(" ")));
        }
        if !self.receive_mount.is_empty() {
            parts.push(format!("receiving mount -o {}", self.receive_mount));
        }
        if !self.send.is_empty() {
            parts.push(format!("send {}", self.send.join(" ")));
        }
        if parts.is_empty() {
            "mkfs, mount and send defaults".to_string()
        } else {
            parts.join("; ")
        }
    }
}

/// The configuration of a run without `-c`.
pub const DEFAULT: &Configuration = &ALL[0];

const BLOCK_GROUP_TREE: &[Require] = &[
    Require::KernelFeature("block_group_tree"),
    Require::MkfsFeature("block-group-tree"),
];

/// Every configuration, the default first.
pub const ALL: &[Configuration] = &[
    Configuration {
        name: "default",
        summary: "what most people run: the defaults (16 KiB nodes, no-holes, inline data)",
        mkfs: &[],
        mount: "",
        receive_mkfs: &[],
        receive_mount: "",
        send: &[],
        requires: &[],
    },
    Configuration {
        name: "nodesize-4k",
        summary: "4 KiB nodes: subvolume trees get several levels with a few hundred items, so \
                  send's tree walks and comparisons cross leaves and nodes sooner",
        mkfs: &["-n", "4096"],
        mount: "",
        receive_mkfs: &[],
        receive_mount: "",
        send: &[],
        requires: &[],
    },
    Configuration {
        name: "nodesize-64k",
        summary: "64 KiB nodes: large leaves, item offsets beyond 16 KiB, and inline extents \
                  up to the sector size",
        mkfs: &["-n", "65536"],
        mount: "",
        receive_mkfs: &[],
        receive_mount: "",
        send: &[],
        requires: &[],
    },
    Configuration {
        name: "holes",
        summary: "`-O ^no-holes`: explicit hole extents, which send must tell from data when it \
                  finds holes in a file and in its parent",
        mkfs: &["-O", "^no-holes"],
        mount: "",
        receive_mkfs: &[],
        receive_mount: "",
        send: &[],
        requires: &[],
    },
    Configuration {
        name: "block-group-tree",
        summary: "`-O block-group-tree`: the block groups in a tree of their own (kernel 6.1 \
                  and later)",
        mkfs: &["-O", "block-group-tree"],
        mount: "",
        receive_mkfs: &[],
        receive_mount: "",
        send: &[],
        requires: BLOCK_GROUP_TREE,
    },
    Configuration {
        name: "max-inline-0",
        summary: "`max_inline=0`: no inline extents, so small files take send's regular extent \
                  paths (clones, holes) instead of inline ones",
        mkfs: &[],
        mount: "max_inline=0",
        receive_mkfs: &[],
        receive_mount: "",
        send: &[],
        requires: &[],
    },
    Configuration {
        name: "proto2",
        summary: "send protocol 2 without compressed data: the v2 commands (fileattr, larger \
                  writes) on uncompressed extents",
        mkfs: &[],
        mount: "",
        receive_mkfs: &[],
        receive_mount: "",
        send: &["--proto", "2"],
        requires: &[Require::SendProtocol(2)],
    },
    Configuration {
        name: "compress-zstd",
        summary: "compress=zstd on every filesystem and protocol 2 with `--compressed-data`: \
                  encoded writes for every case, received into compressed extents",
        mkfs: &[],
        mount: "compress=zstd",
        receive_mkfs: &[],
        receive_mount: "",
        send: &["--proto", "2", "--compressed-data"],
        requires: &[Require::SendProtocol(2)],
    },
    Configuration {
        name: "receive-nodesize-4k",
        summary: "the receiving filesystem has 4 KiB nodes, the sending one the default 16 KiB",
        mkfs: &[],
        mount: "",
        receive_mkfs: &["-n", "4096"],
        receive_mount: "",
        send: &[],
        requires: &[],
    },
    Configuration {
        name: "receive-compress",
        summary: "the receiving filesystem compresses everything it writes \
                  (`compress-force=zlib`): received data, clones and encoded writes land in \
                  compressed extents the sender never had",
        mkfs: &[],
        mount: "",
        receive_mkfs: &[],
        receive_mount: "compress-force=zlib",
        send: &[],
        requires: &[],
    },
    Configuration {
        name: "receive-holes",
        summary: "the receiving filesystem has explicit hole extents (`-O ^no-holes`), the \
                  sending one not",
        mkfs: &[],
        mount: "",
        receive_mkfs: &["-O", "^no-holes"],
        receive_mount: "",
        send: &[],
        requires: &[],
    },
    Configuration {
        name: "receive-small",
        summary: "the receiving filesystem is 256 MiB: a receiver with little room, where a \
                  stream too big for it must end in a clear ENOSPC failure of receive (the \
                  harness says so, as an environment error), never in a tree that differs",
        mkfs: &[],
        mount: "",
        receive_mkfs: &["-b", "256M"],
        receive_mount: "",
        send: &[],
        requires: &[],
    },
];

/// The configurations `names` (comma-separated, repeatable) names, in order, each once.
pub fn parse(names: &[String]) -> Result<Vec<&'static Configuration>, String> {
    let mut chosen: Vec<&'static Configuration> = Vec::new();
    for name in names.iter().flat_map(|n| n.split(',')).map(str::trim) {
        if name.is_empty() {
            continue;
        }
        let Some(config) = by_name(name) else {
            return Err(format!(
                "no configuration `{name}`: `sendtest list -c` shows them ({})",
                ALL.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
            ));
        };
        if !chosen.iter().any(|c| c.name == config.name) {
            chosen.push(config);
        }
    }
    Ok(chosen)
}

/// The configuration called `name`.
pub fn by_name(name: &str) -> Option<&'static Configuration> {
    ALL.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        for (i, config) in ALL.iter().enumerate() {
            assert!(
                ALL[..i].iter().all(|c| c.name != config.name),
                "{} twice",
                config.name
            );
            assert_eq!(by_name(config.name).unwrap(), config);
            assert!(!config.summary.is_empty());
        }
        assert!(DEFAULT.is_default() && !ALL[1].is_default());
        let chosen = parse(&["holes,proto2".into(), "holes".into()]).unwrap();
        let names: Vec<&str> = chosen.iter().map(|c| c.name).collect();
        assert_eq!(names, ["holes", "proto2"]);
        let error = parse(&["nodesize-8k".into()]).unwrap_err();
        assert!(
            error.starts_with("no configuration `nodesize-8k`: `sendtest list -c`"),
            "{error}"
        );
    }

    #[test]
    fn the_receiving_side_adds_its_own_options() {
        let config = by_name("receive-compress").unwrap();
        assert_eq!(config.mount_options("", false), "");
        assert_eq!(
            config.mount_options("compress=zstd", true),
            "compress=zstd,compress-force=zlib"
        );
        let config = by_name("receive-nodesize-4k").unwrap();
        assert_eq!(
            config.mkfs_args(&["--mixed"], true),
            ["--mixed", "-n", "4096"]
        );
        assert_eq!(config.mkfs_args(&["--mixed"], false), ["--mixed"]);
        assert_eq!(
            by_name("compress-zstd").unwrap().describe(),
            "mount -o compress=zstd; send --proto 2 --compressed-data"
        );
        assert_eq!(DEFAULT.describe(), "mkfs, mount and send defaults");
    }
}
