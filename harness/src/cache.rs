//! The cache directory, for what is costly to make and safe to reuse: initramfs images, the KVM
//! probe's answer. `$SENDTEST_CACHE`, else `$XDG_CACHE_HOME/sendtest`, else `~/.cache/sendtest`.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// The cache directory, created if needed.
pub fn dir() -> Result<PathBuf> {
    let dir = if let Some(dir) = std::env::var_os("SENDTEST_CACHE") {
        PathBuf::from(dir)
    } else if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        PathBuf::from(xdg).join("sendtest")
    } else {
        let home = std::env::var_os("HOME")
            .context("no HOME: set SENDTEST_CACHE to a writable directory")?;
        PathBuf::from(home).join(".cache/sendtest")
    };
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create cache directory {} (set SENDTEST_CACHE)",
            dir.display()
        )
    })?;
    Ok(dir)
}

/// Removes all but the `keep` most recently modified cache files whose names start with
/// `prefix`. Best effort: a file another run is reading stays readable through its open fd.
pub fn prune(prefix: &str, keep: usize) {
    let Ok(entries) = dir().and_then(|d| Ok(std::fs::read_dir(d)?)) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, path) in files.into_iter().skip(keep) {
        let _ = std::fs::remove_file(path);
    }
}

/// Writes `contents` to `name` in the cache through a temp file and a rename, so that two runs
/// at once never see half a file.
pub fn store(name: &str, contents: &[u8]) -> Result<PathBuf> {
    let dir = dir()?;
    let path = dir.join(name);
    let mut temp =
        tempfile::NamedTempFile::new_in(&dir).context("creating a temp file in the cache")?;
    std::io::Write::write_all(&mut temp, contents).context("writing to the cache")?;
    temp.persist(&path)
        .with_context(|| format!("storing {}", path.display()))?;
    Ok(path)
}
