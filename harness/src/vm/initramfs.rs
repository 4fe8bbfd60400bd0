//! The guest's initramfs: this very binary as `/init`, btrfs-progs with its libraries, and the
//! kernel modules the recipe in `vm-images/initramfs.recipe` names. Built once per set of inputs
//! and cached.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use super::kernel::Kernel;
use crate::cpio;
use crate::exec::{self, CommandLog};
use crate::preflight::find_in_path;

/// Initramfs images kept in the cache; older ones are removed when a new one is made.
const KEEP_IMAGES: usize = 8;

const RECIPE: &str = include_str!("../../../vm-images/initramfs.recipe");

/// Where the guest finds the list of modules to load: one `required|optional <path>` per line.
pub const MODULE_LIST: &str = "/sendtest/modules";

#[derive(Debug, PartialEq, Eq)]
struct Recipe {
    programs: Vec<String>,
    /// Only in the initramfs of `sendtest shell`, so that case guests boot no slower.
    shell_programs: Vec<String>,
    /// (name, required)
    modules: Vec<(String, bool)>,
}

fn parse_recipe(text: &str) -> Result<Recipe> {
    let mut recipe = Recipe {
        programs: Vec::new(),
        shell_programs: Vec::new(),
        modules: Vec::new(),
    };
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["program", name] => recipe.programs.push(name.to_string()),
            ["shell-program", name] => recipe.shell_programs.push(name.to_string()),
            ["module", name] => recipe.modules.push((name.to_string(), true)),
            ["optional-module", name] => recipe.modules.push((name.to_string(), false)),
            _ => bail!(
                "initramfs.recipe line {}: `{line}` is not `program|shell-program|module|optional-module NAME`",
                number + 1
            ),
        }
    }
    Ok(recipe)
}

/// A file to put into the image: its path inside, where it comes from on the host.
struct Input {
    inside: String,
    host: PathBuf,
}

/// Returns the cached initramfs for `init` and `kernel` (with the shell's programs for `sendtest
/// shell`), building it if needed.
/// The guest's PATH (set by its init): where a program must be for a case to find it.
pub const GUEST_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Where `program`, found at `host`, goes in the initramfs: where it is, if that is in the
/// guest's PATH, else in /usr/bin (a btrfs-progs tree's build, say, which the host puts first
/// in its PATH from a directory of the cache).
fn inside_program(program: &str, host: &Path) -> String {
    let dir = host.parent().unwrap_or(Path::new("/"));
    if GUEST_PATH.split(':').any(|d| Path::new(d) == dir) {
        inside(host)
    } else {
        format!("usr/bin/{program}")
    }
}

pub fn build(init: &Path, kernel: &Kernel, shell: bool, log: &CommandLog) -> Result<PathBuf> {
    let mut recipe = parse_recipe(RECIPE)?;
    if shell {
        let extra = std::mem::take(&mut recipe.shell_programs);
        recipe.programs.extend(extra);
    }
    let sh = Shell::new()?;
    let mut inputs = vec![Input {
        inside: "init".into(),
        host: init.to_path_buf(),
    }];
    for library in shared_libraries(&sh, init, log)? {
        inputs.push(Input {
            inside: inside(&library),
            host: library,
        });
    }
    for program in &recipe.programs {
        let path = find_in_path(program).with_context(|| {
            format!(
                "`{program}` (vm-images/initramfs.recipe) is not in PATH: install the package that has it (btrfs-progs, coreutils, mount, util-linux)"
            )
        })?;
        for library in shared_libraries(&sh, &path, log)? {
            inputs.push(Input {
                inside: inside(&library),
                host: library,
            });
        }
        inputs.push(Input {
            inside: inside_program(program, &path),
            host: path,
        });
    }
    let modules = match &kernel.modules {
        Some(dir) => modules_to_load(dir, &recipe.modules)?,
        None => Vec::new(),
    };
    let mut module_list = String::new();
    for (path, required) in &modules {
        let host = kernel
            .modules
            .as_ref()
            .expect("modules come from a modules dir")
            .join(path);
        let inside_path = format!("lib/modules/{}/{}", kernel.release, path.display());
        module_list.push_str(&format!(
            "{} /{inside_path}\n",
            if *required { "required" } else { "optional" }
        ));
        inputs.push(Input {
            inside: inside_path,
            host,
        });
    }
    inputs.sort_by(|a, b| a.inside.cmp(&b.inside));
    inputs.dedup_by(|a, b| a.inside == b.inside);

    let name = format!("initramfs-{}.cpio", cache_key(&inputs, &module_list)?);
    let cached = crate::cache::dir()?.join(&name);
    if cached.is_file() {
        // Marked as recently used, so that pruning keeps it.
        let _ = std::fs::File::options()
            .write(true)
            .open(&cached)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        log.note(&format!("initramfs {} (cached)", cached.display()));
        return Ok(cached);
    }
    // A debug build of sendtest is mostly debug info (43 MB of initramfs instead of 9); a guest
    // never reads it, and under TCG every megabyte of initramfs costs boot time.
    let stripped_dir = tempfile::tempdir()?;
    let stripped = stripped_dir.path().join("init");
    if find_in_path("objcopy").is_some()
        && exec::run(cmd!(sh, "objcopy --strip-debug {init} {stripped}"), log).is_ok()
    {
        if let Some(input) = inputs.iter_mut().find(|i| i.inside == "init") {
            input.host = stripped;
        }
    }
    let image = pack(&inputs, &module_list)?;
    let path = crate::cache::store(&name, &image)?;
    // Each new sendtest binary or btrfs-progs makes a new image; keep only the recent ones.
    crate::cache::prune("initramfs-", KEEP_IMAGES);
    log.note(&format!(
        "initramfs {}: {} files, {} bytes",
        path.display(),
        inputs.len(),
        image.len()
    ));
    Ok(path)
}

/// A host path as a path inside the image: relative, with the same directories.
fn inside(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_string()
}

/// The shared libraries `ldd` lists for `program`, the dynamic loader included.
fn shared_libraries(sh: &Shell, program: &Path, log: &CommandLog) -> Result<Vec<PathBuf>> {
    let out = exec::output(cmd!(sh, "ldd {program}"), log)?;
    if !out.status.success() {
        // "not a dynamic executable": nothing to add.
        return Ok(Vec::new());
    }
    Ok(parse_ldd(&out.stdout))
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| line.split_whitespace().find(|word| word.starts_with('/')))
        .map(PathBuf::from)
        .collect()
}

/// The module files (relative to the modules dir) to load, dependencies first, with whether
/// each is required.
fn modules_to_load(modules_dir: &Path, wanted: &[(String, bool)]) -> Result<Vec<(PathBuf, bool)>> {
    let read = |name: &str| {
        std::fs::read_to_string(modules_dir.join(name))
            .with_context(|| format!("reading {}", modules_dir.join(name).display()))
    };
    let deps = parse_modules_dep(&read("modules.dep")?);
    let builtin: HashSet<String> = read("modules.builtin")
        .unwrap_or_default()
        .lines()
        .map(module_name)
        .collect();
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for (name, required) in wanted {
        let key = normalize(name);
        if builtin.contains(&key) {
            continue;
        }
        match deps.get(&key) {
            Some(_) => add_with_dependencies(&key, &deps, *required, &mut seen, &mut order),
            None if *required => bail!(
                "the kernel in {} has no {name} module, built in or loadable: use a kernel with CONFIG_{}",
                modules_dir.display(),
                name.to_uppercase()
            ),
            None => {}
        }
    }
    Ok(order)
}

/// modules.dep: module name to (its path, the paths it depends on).
fn parse_modules_dep(text: &str) -> HashMap<String, (PathBuf, Vec<PathBuf>)> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(path, deps)| {
            let deps = deps.split_whitespace().map(PathBuf::from).collect();
            (module_name(path), (PathBuf::from(path), deps))
        })
        .collect()
}

fn add_with_dependencies(
    key: &str,
    deps: &HashMap<String, (PathBuf, Vec<PathBuf>)>,
    required: bool,
    seen: &mut HashSet<String>,
    order: &mut Vec<(PathBuf, bool)>,
) {
    if !seen.insert(key.to_string()) {
        return;
    }
    let Some((path, needs)) = deps.get(key) else {
        return;
    };
    for need in needs {
        add_with_dependencies(
            &module_name(&need.to_string_lossy()),
            deps,
            required,
            seen,
            order,
        );
    }
    order.push((path.clone(), required));
}

/// `kernel/fs/btrfs/btrfs.ko` to `btrfs`; `-` and `_` are the same in module names.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    normalize(file.split(".ko").next().unwrap_or(file))
}

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// A name for this set of inputs: their paths, sizes and mtimes, and the module list.
fn cache_key(inputs: &[Input], module_list: &str) -> Result<String> {
    let mut hasher = Sha256::new();
    for input in inputs {
        let meta = std::fs::metadata(&input.host)
            .with_context(|| format!("reading {}", input.host.display()))?;
        hasher.update(format!(
            "{} {} {} {}\n",
            input.inside,
            input.host.display(),
            meta.len(),
            meta.mtime_nsec() + meta.mtime() * 1_000_000_000
        ));
    }
    hasher.update(module_list);
    Ok(format!("{:x}", hasher.finalize())[..16].to_string())
}

fn pack(inputs: &[Input], module_list: &str) -> Result<Vec<u8>> {
    let mut archive = cpio::Writer::new(Vec::new());
    let mut dirs: BTreeMap<String, ()> = BTreeMap::new();
    for top in ["dev", "proc", "sys", "tmp", "sendtest"] {
        dirs.insert(top.into(), ());
    }
    for input in inputs {
        let mut parent = Path::new(&input.inside).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(dir.to_string_lossy().into_owned(), ());
            parent = dir.parent();
        }
    }
    for dir in dirs.keys() {
        archive.dir(dir, 0o755)?;
    }
    archive.char_device("dev/console", 0o600, 5, 1)?;
    archive.file(
        MODULE_LIST.trim_start_matches('/'),
        0o644,
        module_list.as_bytes(),
    )?;
    for input in inputs {
        let data = std::fs::read(&input.host)
            .with_context(|| format!("reading {}", input.host.display()))?;
        archive.file(&input.inside, 0o755, &data)?;
    }
    Ok(archive.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_go_where_the_guest_s_path_finds_them() {
        assert_eq!(
            inside_program("btrfs", Path::new("/usr/bin/btrfs")),
            "usr/bin/btrfs"
        );
        assert_eq!(inside_program("sh", Path::new("/bin/sh")), "bin/sh");
        assert_eq!(
            inside_program(
                "btrfs",
                Path::new("/root/.cache/sendtest/progs-builds/p/sendtest-bin/btrfs")
            ),
            "usr/bin/btrfs"
        );
    }

    #[test]
    fn the_recipe_parses() {
        let recipe = parse_recipe(RECIPE).unwrap();
        assert!(recipe.programs.contains(&"mkfs.btrfs".to_string()));
        assert!(recipe.modules.contains(&("btrfs".to_string(), true)));
        assert!(parse_recipe("progam btrfs").is_err());
    }

    #[test]
    fn ldd_output_gives_absolute_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n";
        assert_eq!(
            parse_ldd(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn modules_come_after_their_dependencies_and_builtins_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("modules.dep"),
            "kernel/fs/btrfs/btrfs.ko: kernel/crypto/xor.ko kernel/lib/libcrc32c.ko\nkernel/crypto/xor.ko:\nkernel/lib/libcrc32c.ko:\nkernel/crypto/crc32c-intel.ko:\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("modules.builtin"),
            "kernel/drivers/block/virtio_blk.ko\n",
        )
        .unwrap();
        let wanted = [
            ("virtio_blk".to_string(), true),
            ("crc32c_intel".to_string(), false),
            ("btrfs".to_string(), true),
        ];
        let order = modules_to_load(dir.path(), &wanted).unwrap();
        let names: Vec<String> = order.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "kernel/crypto/crc32c-intel.ko",
                "kernel/crypto/xor.ko",
                "kernel/lib/libcrc32c.ko",
                "kernel/fs/btrfs/btrfs.ko"
            ]
        );
        assert!(!order[0].1 && order[3].1);
        let missing = modules_to_load(dir.path(), &[("zstd".to_string(), true)])
            .unwrap_err()
            .to_string();
        assert!(missing.contains("has no zstd module"), "{missing}");
    }
}
