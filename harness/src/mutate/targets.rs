//! What `sendtest mutate` builds: a kernel tree, whose mutants run in guests booting them, or a
//! btrfs-progs tree, whose mutants run on loop devices. Every mutant is built in one place of
//! the cache (the tree's mirror for the kernel, a build directory for btrfs-progs), so each
//! rebuild compiles the one file that changed. The tree itself is only read.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use nix::fcntl::Flock;

use super::mutant::Mutant;
use super::run::Target;
use crate::backend::{self, Backend};
use crate::build::kernel::{self, ExtraConfig, Revert};
use crate::build::progs::{self, Variant};
use crate::build::TreeDoesNotBuild;
use crate::vm::{Vm, VmOptions};

/// The name the mutants' mirror and build directory go by.
const LABEL: &str = "mutant";

/// Holds the mutants' place of `tree` for a whole run: two runs on one tree would build their
/// mutants over each other's. A second run waits, and says so.
fn hold(tree: &Path) -> Result<Flock<File>> {
    let dir = crate::cache::dir()?.join("mutate");
    std::fs::create_dir_all(&dir)?;
    let name = crate::build::short_hash(&[tree.as_os_str().as_bytes()]);
    crate::build::lock(&dir.join(name), &|line| eprintln!("sendtest: {line}"))
}

/// Turns a build that failed for the tree's sake into `Ok(Err(why))`; other errors stay.
fn unviable(error: anyhow::Error) -> Result<std::result::Result<(), String>> {
    match error.downcast_ref::<TreeDoesNotBuild>() {
        Some(e) => Ok(Err(e.tail.clone())),
        None => Err(error),
    }
}

/// A kernel tree: each mutant is a patch on the tree's mirror, built out of tree and booted.
pub struct KernelTarget {
    pub tree: PathBuf,
    pub cache: PathBuf,
    pub extra: ExtraConfig,
    pub vm_options: VmOptions,
    /// The sendtest binary, the guests' init.
    pub init: PathBuf,
    /// A patch under every mutant (`--patch`): the mutants are of the patched tree.
    pub base_patch: String,
    vm: Option<Vm>,
    _hold: Flock<File>,
}

impl KernelTarget {
    pub fn new(
        tree: &Path,
        extra: ExtraConfig,
        vm_options: VmOptions,
        init: &Path,
    ) -> Result<KernelTarget> {
        Ok(KernelTarget {
            tree: tree.to_path_buf(),
            cache: crate::cache::dir()?,
            extra,
            vm_options,
            init: init.to_path_buf(),
            base_patch: String::new(),
            vm: None,
            _hold: hold(tree)?,
        })
    }
}

impl Target for KernelTarget {
    fn build(&mut self, mutant: Option<&Mutant>) -> Result<std::result::Result<(), String>> {
        // patch(1) applies the sections of one input in turn, so a mutant of the patched
        // tree's file follows the patch that made it.
        let patch = format!(
            "{}{}",
            self.base_patch,
            mutant.map_or("", |m| m.diff.as_str())
        );
        let revert = Revert {
            name: LABEL,
            patch: &patch,
        };
        self.vm = None;
        match kernel::build_in(&self.cache, &self.tree, Some(revert), &self.extra, &|_| {}) {
            Ok(built) => {
                let options = VmOptions {
                    kernel: Some(built.bzimage),
                    ..self.vm_options.clone()
                };
                self.vm = Some(Vm::prepare(options, &self.init)?);
                Ok(Ok(()))
            }
            Err(e) => unviable(e),
        }
    }

    fn backend(&self) -> &dyn Backend {
        self.vm
            .as_ref()
            .expect("the suite runs only after a build that succeeded")
    }
}

/// A btrfs-progs tree: each mutant is a file written into one build directory, and the cases
/// run on loop devices with the mutant's `btrfs` and `mkfs.btrfs` first in PATH.
pub struct ProgsTarget {
    pub tree: PathBuf,
    /// Files as a patch under every mutant makes them (`--patch`), relative to the tree.
    pub base_files: Vec<(String, String)>,
    /// PATH as it was, before any build was put first.
    path: OsString,
    _hold: Flock<File>,
}

impl ProgsTarget {
    pub fn new(tree: &Path) -> Result<ProgsTarget> {
        Ok(ProgsTarget {
            tree: tree.to_path_buf(),
            base_files: Vec::new(),
            path: std::env::var_os("PATH").unwrap_or_default(),
            _hold: hold(tree)?,
        })
    }
}

impl Drop for ProgsTarget {
    /// Puts PATH back as it was, so that nothing after the mutants (a kernel target's
    /// initramfs, say) takes the last mutant's `btrfs`.
    fn drop(&mut self) {
        std::env::set_var("PATH", &self.path);
    }
}

impl Target for ProgsTarget {
    fn build(&mut self, mutant: Option<&Mutant>) -> Result<std::result::Result<(), String>> {
        let mut files = self.base_files.clone();
        if let Some(m) = mutant {
            let mutated = match files.iter().find(|(f, _)| *f == m.file) {
                Some((_, patched)) => m.edit.apply(patched),
                None => m.mutated_file(&self.tree)?,
            };
            files.retain(|(f, _)| *f != m.file);
            files.push((m.file.clone(), mutated));
        }
        let variant = Variant {
            make_args: &[],
            label: LABEL,
            files: &files,
        };
        match progs::build_variant(&self.tree, Some(&variant), &|_| {}) {
            // Between mutants no case runs.
            Ok(built) => {
                built.put_first_in_path(&self.path)?;
                Ok(Ok(()))
            }
            Err(e) => unviable(e),
        }
    }

    fn backend(&self) -> &dyn Backend {
        &backend::Loop
    }
}
