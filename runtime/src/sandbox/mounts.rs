//! Mount bookkeeping: reading `/proc/self/mountinfo`, mounting tmpfs, detaching mounts.
//!
//! `destroy` must work after a crash with nothing but the state directory, so mounts are never
//! recorded anywhere: the kernel's mount table is the record.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use super::SandboxError;

/// Mount points of this process's mount namespace, in mountinfo order (a path appears once
/// per stacked mount).
pub(crate) fn mount_points() -> Result<Vec<PathBuf>, SandboxError> {
    let path = Path::new("/proc/self/mountinfo");
    let text = std::fs::read(path).map_err(|source| SandboxError::Io {
        op: "read",
        path: path.to_owned(),
        source,
    })?;
    Ok(text
        .split(|b| *b == b'\n')
        .filter_map(|line| line.split(|b| *b == b' ').nth(4))
        .map(|field| PathBuf::from(OsString::from_vec(unescape_octal(field))))
        .collect())
}

/// Mount points strictly below `dir` (which must be canonical, as mountinfo paths are),
/// deepest first so that children are detached before their parents.
pub(crate) fn mount_points_under(dir: &Path) -> Result<Vec<PathBuf>, SandboxError> {
    let mut under: Vec<PathBuf> = mount_points()?
        .into_iter()
        .filter(|p| p != dir && p.starts_with(dir))
        .collect();
    under.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    under.dedup();
    Ok(under)
}

/// Whether `path` (canonical) is currently a mount point.
pub(crate) fn is_mount_point(path: &Path) -> Result<bool, SandboxError> {
    Ok(mount_points()?.iter().any(|p| p == path))
}

/// Detaches every mount at or below each path, tolerating mounts that vanished meanwhile.
pub(crate) fn detach(path: &Path) -> Result<(), SandboxError> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (any more); ENOENT: gone.
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(source) => Err(SandboxError::Sys {
            op: "umount2(MNT_DETACH)",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Mounts a fresh tmpfs at `target`.
pub(crate) fn mount_tmpfs(target: &Path, flags: MsFlags, data: &str) -> Result<(), SandboxError> {
    nix::mount::mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(data)).map_err(|source| {
        SandboxError::Sys {
            op: "mount tmpfs",
            path: target.to_owned(),
            source,
        }
    })
}

/// Bind-mounts `source` onto `target` (an existing file or directory).
pub(crate) fn bind(source: &Path, target: &Path) -> Result<(), SandboxError> {
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|source| SandboxError::Sys {
        op: "bind mount",
        path: target.to_owned(),
        source,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && i + 3 < field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (field[i + 1] - b'0') as u32 * 64
                + (field[i + 2] - b'0') as u32 * 8
                + (field[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_octal(br"/a\040b\011c\134d"), b"/a b\tc\\d");
        assert_eq!(unescape_octal(br"/plain"), b"/plain");
        assert_eq!(unescape_octal(br"/trailing\04"), br"/trailing\04");
    }

    #[test]
    fn finds_root_mount() {
        assert!(is_mount_point(Path::new("/proc")).unwrap());
    }
}
