//! sendtest: a regression harness for btrfs send/receive.
//!
//! The library holds the mechanisms (provisioning scratch filesystems, running commands and
//! cases, manifests, reporting); the `cases` crate holds the reproducers, one file each.

pub mod backend;
pub mod bench;
pub mod btrfs_ioctl;
pub mod bug_report;
pub mod build;
pub mod cache;
pub mod case;
pub mod configuration;
pub mod context;
pub mod coverage;
pub mod cpio;
pub mod dmesg;
pub mod envelope;
pub mod exec;
pub mod extents;
pub mod fault_inject;
pub mod file_ioctl;
pub mod finding;
pub mod interrupt;
pub mod loopdev;
pub mod manifest;
pub mod mount;
pub mod mutate;
pub mod outcome;
pub mod preflight;
pub mod progress;
pub mod random;
pub mod report;
pub mod require;
pub mod results;
pub mod runner;
pub mod scratch;
pub mod send_stream;
pub mod throttle;
pub mod validate;
pub mod vm;
pub mod workdir;
pub mod workload;
pub mod xattr;

/// What a case file needs.
pub mod prelude {
    pub use crate::case::{Case, Component, Fix, Require};
    pub use crate::context::Ctx;
    pub use crate::finding::detected;
    pub use crate::scratch::ScratchSpec;
    pub use crate::workload::{FileSpec, Writes};
    pub use anyhow::Result;
    pub use xshell::cmd;
}
