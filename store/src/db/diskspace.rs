//! Free and total space of the filesystem that holds the data directory, via POSIX `statvfs(3)`
//! (`f_bavail * f_frsize` is what `df` reports as "Avail": the space unprivileged writers get).
//! Feeds `crowsnest_store_disk_free_bytes` / `crowsnest_store_disk_total_bytes` (see `metrics.rs`).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Space on one filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSpace {
    /// Bytes available to unprivileged users.
    pub free: u64,
    /// Size of the filesystem.
    pub total: u64,
}

/// `statvfs` on `path` (any file or directory on the filesystem).
// The `statvfs` field types are `u64` here but narrower on other targets.
#[allow(clippy::useless_conversion)]
pub fn fs_space(path: &Path) -> io::Result<FsSpace> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::other("path contains NUL"))?;
    // SAFETY: `statvfs` is plain old data, so all-zero is a valid value; `c` is a NUL-terminated
    // string that outlives the call, and `st` is a valid, exclusively borrowed out-pointer.
    #[allow(unsafe_code)]
    let (rc, st) = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        let rc = libc::statvfs(c.as_ptr(), &mut st);
        (rc, st)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = u64::from(st.f_frsize);
    Ok(FsSpace {
        free: u64::from(st.f_bavail).saturating_mul(frsize),
        total: u64::from(st.f_blocks).saturating_mul(frsize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_filesystem_of_a_temp_dir() {
        let d = tempfile::tempdir().expect("tmp");
        let s = fs_space(d.path()).expect("statvfs");
        assert!(s.total > 0, "{s:?}");
        assert!(s.free <= s.total, "{s:?}");
        // Writing a file does not make free space grow.
        std::fs::write(d.path().join("x"), vec![1u8; 1 << 20]).expect("write");
        let after = fs_space(d.path()).expect("statvfs");
        assert_eq!(after.total, s.total);
    }

    #[test]
    fn missing_path_is_an_error() {
        assert!(fs_space(Path::new("/definitely/not/here/crowsnest")).is_err());
        assert!(fs_space(Path::new("bad\0path")).is_err());
    }
}
