//! `spec.securityContext.fsGroup` on a pod's volumes, as the kubelet's `SetVolumeOwnership`
//! (`pkg/volume/volume_linux.go`) applies it: everything in the volume gets group `fsGroup`
//! and becomes group-readable (and -writable for emptyDirs), directories also
//! group-searchable and setgid, so that what containers create later inherits the group.
//! The kubelet's read-only plugins (configMap, secret, downwardAPI, projected) get the
//! read-only mask. hostPath volumes are never changed (the kubelet does not either).
//!
//! `fsGroupChangePolicy: OnRootMismatch` only skips the walk for a volume whose root already
//! matches ([`root_matches`]): it matters for a persistentVolumeClaim, whose files outlive
//! the pod; podctl applies ownership to a new and empty emptyDir, where both policies do the
//! same.

use std::fs::{Metadata, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::SandboxError;

/// User and group read and write, added to every file of a writable volume (`rwMask`).
const RW_MASK: u32 = 0o660;
/// User and group read, added to every file of a read-only volume (`roMask`).
const RO_MASK: u32 = 0o440;
/// Added to directories: setgid and search (`os.ModeSetgid` and `execMask`).
const DIR_BITS: u32 = 0o2000 | 0o110;

/// Which of the kubelet's masks a volume gets: its plugin's `ReadOnly` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// emptyDir.
    ReadWrite,
    /// configMap, secret, downwardAPI, projected.
    ReadOnly,
}

impl Access {
    /// The bits OR-ed into a file's mode (directories also get [`DIR_BITS`]).
    pub(crate) fn mask(self) -> u32 {
        match self {
            Access::ReadWrite => RW_MASK,
            Access::ReadOnly => RO_MASK,
        }
    }
}

/// Gives the tree at `path` (not following symlinks) the group `fs_group` and the
/// permissions of `access`. Symlinks get the group but keep their mode (a chmod would
/// reach their target).
pub(crate) fn set_volume_ownership(
    path: &Path,
    fs_group: u32,
    access: Access,
) -> Result<(), SandboxError> {
    let io = |op, source| SandboxError::Io {
        op,
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(|e| io("stat volume", e))?;
    change(path, &meta, fs_group, access)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| io("read volume directory", e))? {
            let entry = entry.map_err(|e| io("read volume directory", e))?;
            set_volume_ownership(&entry.path(), fs_group, access)?;
        }
    }
    Ok(())
}

/// Whether the root of a volume has the group `fs_group`, the permissions of `access` and
/// the setgid bit already: the kubelet's `requiresPermissionChange` false, so that
/// `fsGroupChangePolicy: OnRootMismatch` skips the walk.
pub(crate) fn root_matches(path: &Path, fs_group: u32, access: Access) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let wanted = access.mask() | 0o110;
    meta.is_dir()
        && meta.gid() == fs_group
        && meta.mode() & wanted == wanted
        && meta.mode() & 0o2000 != 0
}

fn change(path: &Path, meta: &Metadata, fs_group: u32, access: Access) -> Result<(), SandboxError> {
    let io = |op, source| SandboxError::Io {
        op,
        path: path.to_owned(),
        source,
    };
    std::os::unix::fs::lchown(path, None, Some(fs_group))
        .map_err(|e| io("chown volume to fsGroup", e))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mode = (meta.mode() & 0o7777) | access.mask();
    if meta.is_dir() {
        mode |= DIR_BITS;
    }
    std::fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| io("chmod volume for fsGroup", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gid_mode(p: &Path) -> (u32, u32) {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.gid(), m.mode() & 0o7777)
    }

    /// Needs root (chown to another group), as every podctl test of the sandbox does.
    #[test]
    fn volumes_get_the_group_and_setgid_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("vol");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, Permissions::from_mode(0o777)).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::set_permissions(root.join("sub"), Permissions::from_mode(0o700)).unwrap();
        std::fs::write(root.join("sub/file"), "x").unwrap();
        std::fs::set_permissions(root.join("sub/file"), Permissions::from_mode(0o604)).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, "host").unwrap();
        std::fs::set_permissions(&outside, Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();

        set_volume_ownership(&root, 2000, Access::ReadWrite).unwrap();

        assert_eq!(gid_mode(&root), (2000, 0o2777));
        assert_eq!(gid_mode(&root.join("sub")), (2000, 0o2770));
        assert_eq!(gid_mode(&root.join("sub/file")), (2000, 0o664));
        assert_eq!(gid_mode(&root.join("link")).0, 2000);
        // The symlink's target outside the volume is untouched.
        assert_eq!(gid_mode(&outside), (0, 0o600));

        // What a container creates later inherits the group through setgid.
        std::fs::create_dir(root.join("later")).unwrap();
        assert_eq!(gid_mode(&root.join("later")).0, 2000);

        let err =
            set_volume_ownership(&tmp.path().join("missing"), 2000, Access::ReadWrite).unwrap_err();
        assert!(matches!(err, SandboxError::Io { .. }), "{err}");
    }

    #[test]
    fn a_matching_root_is_told_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("vol");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, Permissions::from_mode(0o777)).unwrap();
        assert!(!root_matches(&root, 2000, Access::ReadWrite));
        set_volume_ownership(&root, 2000, Access::ReadWrite).unwrap();
        assert!(root_matches(&root, 2000, Access::ReadWrite));
        assert!(
            !root_matches(&root, 2001, Access::ReadWrite),
            "another group"
        );
        std::fs::set_permissions(&root, Permissions::from_mode(0o777)).unwrap();
        assert!(!root_matches(&root, 2000, Access::ReadWrite), "setgid lost");
        assert!(!root_matches(
            &tmp.path().join("missing"),
            2000,
            Access::ReadWrite
        ));
    }

    #[test]
    fn read_only_volumes_get_group_read_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("vol");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, Permissions::from_mode(0o755)).unwrap();
        std::fs::write(root.join("secret"), "x").unwrap();
        std::fs::set_permissions(root.join("secret"), Permissions::from_mode(0o400)).unwrap();
        std::fs::write(root.join("script"), "x").unwrap();
        std::fs::set_permissions(root.join("script"), Permissions::from_mode(0o700)).unwrap();

        set_volume_ownership(&root, 2000, Access::ReadOnly).unwrap();

        assert_eq!(gid_mode(&root), (2000, 0o2755));
        assert_eq!(gid_mode(&root.join("secret")), (2000, 0o440));
        assert_eq!(gid_mode(&root.join("script")), (2000, 0o740));
    }
}
