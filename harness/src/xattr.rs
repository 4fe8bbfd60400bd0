//! Extended attributes of a path itself, never of what a symlink points to (the `l*xattr` calls).
//! nix has no xattr calls, so these wrap libc.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn c_name(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Calls `f(buffer, len)` with a growing buffer until the value fits.
fn read_sized(mut f: impl FnMut(*mut libc::c_void, usize) -> isize) -> io::Result<Vec<u8>> {
    loop {
        let needed = f(std::ptr::null_mut(), 0);
        if needed < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; needed as usize];
        let got = f(buf.as_mut_ptr().cast(), buf.len());
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ERANGE) {
            return Err(err);
        }
        // The value grew between the two calls; ask again.
    }
}

/// Names of the xattrs of `path`, sorted.
pub fn list(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let p = c_path(path)?;
    // SAFETY: `p` is a valid C string; the buffer pointer and length describe a live allocation.
    let raw = read_sized(|buf, len| unsafe { libc::llistxattr(p.as_ptr(), buf.cast(), len) })?;
    let mut names: Vec<Vec<u8>> = raw
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    names.sort();
    Ok(names)
}

/// The value of xattr `name` of `path`.
pub fn get(path: &Path, name: &[u8]) -> io::Result<Vec<u8>> {
    let p = c_path(path)?;
    let n = c_name(name)?;
    // SAFETY: as in `list`.
    read_sized(|buf, len| unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf, len) })
}

/// Sets xattr `name` of `path` to `value`.
pub fn set(path: &Path, name: impl AsRef<OsStr>, value: &[u8]) -> io::Result<()> {
    let p = c_path(path)?;
    let n = c_name(name.as_ref().as_bytes())?;
    // SAFETY: valid C strings and a live value buffer of the given length.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes xattr `name` of `path`.
pub fn remove(path: &Path, name: impl AsRef<OsStr>) -> io::Result<()> {
    let p = c_path(path)?;
    let n = c_name(name.as_ref().as_bytes())?;
    // SAFETY: valid C strings.
    if unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_list_get_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let big = vec![7u8; 3000];
        if let Err(e) = set(&file, "user.sendtest", &big) {
            eprintln!("skipping: the temp dir's filesystem has no user xattrs ({e})");
            return;
        }
        set(&file, "user.a", b"1").unwrap();
        assert_eq!(
            list(&file).unwrap(),
            vec![b"user.a".to_vec(), b"user.sendtest".to_vec()]
        );
        assert_eq!(get(&file, b"user.sendtest").unwrap(), big);
        remove(&file, "user.a").unwrap();
        assert_eq!(list(&file).unwrap(), vec![b"user.sendtest".to_vec()]);
    }
}
