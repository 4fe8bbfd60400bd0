//! What a case may need beyond its backend, as data: fstests' `_require_*`. The runner checks a
//! case's requirements where the case runs (the host, or the guest) before it starts, and an
//! unmet one makes the case "not run" with the reason, which `--require-all` turns into a
//! failure.

use std::path::Path;

use crate::preflight::find_in_path;

/// One thing a case needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Require {
    /// A program in PATH, and the Debian package that has it.
    Command {
        program: &'static str,
        package: &'static str,
    },
    /// Send stream protocol N or later in both the kernel and btrfs-progs; for 2 and later,
    /// with `--compressed-data`.
    SendProtocol(u32),
    /// A btrfs feature the kernel lists in `/sys/fs/btrfs/features/`.
    KernelFeature(&'static str),
    /// A filesystem feature `mkfs.btrfs -O list-all` offers.
    MkfsFeature(&'static str),
    /// Kernel allocations failed on demand (fail-nth and failslab), in a guest: see
    /// [`crate::fault_inject`].
    FailNth,
}

const FEATURES: &str = "/sys/fs/btrfs/features";

impl Require {
    /// Why this is not met here, or `None`.
    pub fn unmet(&self) -> Option<String> {
        match *self {
            Require::Command { program, package } => find_in_path(program)
                .is_none()
                .then(|| format!("needs `{program}`: install {package}")),
            Require::SendProtocol(version) => {
                let kernel = kernel_send_protocol(Path::new(FEATURES));
                if kernel < version {
                    return Some(format!(
                        "needs send protocol {version}; this kernel sends protocol {kernel} at most"
                    ));
                }
                let help = progs_send_help();
                let flags: &[&str] = if version >= 2 {
                    &["--proto", "--compressed-data"]
                } else {
                    &[]
                };
                flags.iter().find(|f| !help.contains(*f)).map(|flag| {
                    format!(
                        "needs send protocol {version}; this btrfs-progs's `btrfs send` has no {flag} (btrfs-progs 6.0 or later has)"
                    )
                })
            }
            Require::KernelFeature(name) => (!Path::new(FEATURES).join(name).exists())
                .then(|| format!("needs the kernel's btrfs feature `{name}` (not in {FEATURES})")),
            Require::MkfsFeature(name) => (!offers_feature(&mkfs_features(), name)).then(|| {
                format!(
                    "needs mkfs.btrfs with the feature `{name}`, which `mkfs.btrfs -O list-all` does not offer here"
                )
            }),
            Require::FailNth => crate::fault_inject::unmet(),
        }
    }
}

/// The highest send protocol the kernel offers: 1 when the kernel does not say.
fn kernel_send_protocol(features: &Path) -> u32 {
    std::fs::read_to_string(features.join("send_stream_version"))
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1)
}

/// What `program args` prints on stdout and stderr together (btrfs-progs' help and listings
/// go to one or the other depending on the version); empty without the program.
fn printed_by(program: &str, args: &[&str]) -> String {
    let Some(path) = find_in_path(program) else {
        return String::new();
    };
    std::process::Command::new(path)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr)
        })
        .unwrap_or_default()
}

/// What `mkfs.btrfs -O list-all` prints.
fn mkfs_features() -> String {
    printed_by("mkfs.btrfs", &["-O", "list-all"])
}

/// Whether a `mkfs.btrfs -O list-all` listing offers `name` (a line starting with it).
fn offers_feature(listing: &str, name: &str) -> bool {
    listing
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

/// What `btrfs send --help` prints.
fn progs_send_help() -> String {
    printed_by("btrfs", &["send", "--help"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_its_package() {
        let missing = Require::Command {
            program: "sendtest-no-such-program",
            package: "nothing",
        };
        assert_eq!(
            missing.unmet().as_deref(),
            Some("needs `sendtest-no-such-program`: install nothing")
        );
        let present = Require::Command {
            program: "sh",
            package: "dash",
        };
        assert_eq!(present.unmet(), None);
    }

    #[test]
    fn mkfs_features_are_read_from_its_listing() {
        let listing = "Filesystem features available:\nmixed-bg            - mixed data\nno-holes            - no explicit hole extents (compat=3.14)\n";
        assert!(offers_feature(listing, "no-holes"));
        assert!(!offers_feature(listing, "block-group-tree"));
        assert!(!offers_feature(listing, "holes"));
    }

    #[test]
    fn the_kernel_protocol_comes_from_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(kernel_send_protocol(dir.path()), 1, "no file: protocol 1");
        std::fs::write(dir.path().join("send_stream_version"), "3\n").unwrap();
        assert_eq!(kernel_send_protocol(dir.path()), 3);
        assert!(Require::KernelFeature("sendtest-no-such-feature")
            .unmet()
            .unwrap()
            .contains("sendtest-no-such-feature"));
    }
}
