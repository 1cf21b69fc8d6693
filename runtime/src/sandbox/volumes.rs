//! Pod volumes: emptyDir directories (or tmpfs for `medium: Memory`), hostPath type checks,
//! the directories (or tmpfs) of configMap, secret, downwardAPI and projected volumes (their
//! files are written by `projection`), the data dirs of persistentVolumeClaim volumes, and
//! safe subPath resolution.

use std::fs::Permissions;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::Volume;
use nix::mount::MsFlags;

use super::{mounts, payload, SandboxError};

/// Where a volume's content lives on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VolumeRoot {
    /// `<state dir>/volumes/<name>`, owned by the sandbox.
    EmptyDir(PathBuf),
    /// A host path, never created inside nor removed with the state dir.
    HostPath(PathBuf),
    /// `<state dir>/volumes/<name>` of a configMap, secret, downwardAPI or projected
    /// volume: files the sandbox writes (`projection`), read-only to containers.
    /// `tmpfs` for all but configMap: the kubelet wraps them in a `medium: Memory` emptyDir
    /// (configMap in a disk one), so that secrets never reach a disk.
    Projected { dir: PathBuf, tmpfs: bool },
    /// The data dir of a persistentVolumeClaim (`<claims>/<claim>/data`): it outlives the
    /// pod, and is never created inside nor removed with the state dir. `read_only`: the
    /// volume source's `readOnly`, which makes every mount of it read-only.
    Claim { dir: PathBuf, read_only: bool },
}

impl VolumeRoot {
    pub(crate) fn path(&self) -> &Path {
        match self {
            VolumeRoot::EmptyDir(p)
            | VolumeRoot::HostPath(p)
            | VolumeRoot::Projected { dir: p, .. }
            | VolumeRoot::Claim { dir: p, .. } => p,
        }
    }
}

/// Where each volume of the pod lives (no I/O); claims are found in `claims_dir`.
pub(crate) fn plan(
    volumes_dir: &Path,
    claims_dir: &Path,
    volume: &Volume,
) -> Result<VolumeRoot, SandboxError> {
    let dir = || volumes_dir.join(&volume.name);
    if let Some(hp) = &volume.host_path {
        Ok(VolumeRoot::HostPath(PathBuf::from(&hp.path)))
    } else if let Some(pvc) = &volume.persistent_volume_claim {
        // A name that cannot be a claim's must not become a path outside the store.
        if !crate::claims::is_claim_name(&pvc.claim_name) {
            return Err(SandboxError::ClaimNotFound {
                volume: volume.name.clone(),
                claim: pvc.claim_name.clone(),
            });
        }
        Ok(VolumeRoot::Claim {
            dir: crate::claims::data_dir(claims_dir, &pvc.claim_name),
            read_only: pvc.read_only.unwrap_or(false),
        })
    } else if volume.empty_dir.is_some() {
        Ok(VolumeRoot::EmptyDir(dir()))
    } else if volume.config_map.is_some() {
        payload::check(volume)?;
        Ok(VolumeRoot::Projected {
            dir: dir(),
            tmpfs: false,
        })
    } else if volume.secret.is_some() || volume.downward_api.is_some() || volume.projected.is_some()
    {
        payload::check(volume)?;
        Ok(VolumeRoot::Projected {
            dir: dir(),
            tmpfs: true,
        })
    } else {
        Err(SandboxError::UnsupportedVolume {
            volume: volume.name.clone(),
            reason: "only emptyDir, hostPath, configMap, secret, downwardAPI, projected and \
                     persistentVolumeClaim volumes are supported"
                .into(),
        })
    }
}

/// Creates (emptyDir; the empty dir of a projected volume) or checks (hostPath,
/// persistentVolumeClaim) one volume.
pub(crate) fn set_up(volume: &Volume, root: &VolumeRoot) -> Result<(), SandboxError> {
    match root {
        VolumeRoot::Projected { dir, tmpfs } => {
            // The wrapped emptyDir's 0777; its content is published read-only anyway.
            create_dir(dir, 0o777)?;
            if *tmpfs {
                // No size: the kernel's default. The kubelet sizes it to the pod's memory
                // limit or the node's allocatable memory; podctl does not yet.
                mounts::mount_tmpfs(dir, MsFlags::empty(), "")?;
            }
            Ok(())
        }
        VolumeRoot::EmptyDir(dir) => {
            let spec = volume.empty_dir.as_ref();
            // The kubelet makes emptyDirs 0777 so that containers running as any user can
            // write to them.
            let mode = spec
                .and_then(|e| e.mode)
                .and_then(|m| u32::try_from(m).ok())
                .unwrap_or(0o777);
            create_dir(dir, mode)?;
            match spec.and_then(|e| e.medium.as_deref()).unwrap_or("") {
                "" => {}
                "Memory" => {
                    let size = match spec.and_then(|e| e.size_limit.as_ref()) {
                        Some(q) => Some(crate::manifest::quantity_bytes(q).map_err(|source| {
                            SandboxError::SizeLimit {
                                volume: volume.name.clone(),
                                quantity: q.0.clone(),
                                source,
                            }
                        })?),
                        None => None,
                    };
                    // Like the kubelet: only the size, the tmpfs root keeps its 1777 default.
                    let data = size.map(|s| format!("size={s}")).unwrap_or_default();
                    mounts::mount_tmpfs(dir, MsFlags::empty(), &data)?;
                }
                other => {
                    return Err(SandboxError::UnsupportedVolume {
                        volume: volume.name.clone(),
                        reason: format!("emptyDir medium {other:?} is not supported"),
                    })
                }
            }
            Ok(())
        }
        VolumeRoot::Claim { dir, .. } => {
            if dir.is_dir() {
                Ok(())
            } else {
                Err(SandboxError::ClaimNotFound {
                    volume: volume.name.clone(),
                    claim: volume
                        .persistent_volume_claim
                        .as_ref()
                        .map(|c| c.claim_name.clone())
                        .unwrap_or_default(),
                })
            }
        }
        VolumeRoot::HostPath(path) => {
            let ty = volume
                .host_path
                .as_ref()
                .and_then(|h| h.type_.as_deref())
                .unwrap_or("");
            check_host_path(&volume.name, path, ty)
        }
    }
}

/// The kubelet's hostPath type checker (`checkTypeInternal`): `*OrCreate` create what is
/// missing, the others only check; the checks follow symlinks like the kubelet's `os.Stat`.
fn check_host_path(volume: &str, path: &Path, ty: &str) -> Result<(), SandboxError> {
    let mismatch = || SandboxError::HostPathType {
        volume: volume.to_owned(),
        path: path.to_owned(),
        expected: ty.to_owned(),
    };
    let io = |op, source| SandboxError::Io {
        op,
        path: path.to_owned(),
        source,
    };
    match ty {
        "" => return Ok(()),
        "DirectoryOrCreate" if !path.exists() => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(path)
                .map_err(|e| io("create hostPath directory", e))?;
        }
        "FileOrCreate" if !path.exists() => {
            // Like the kubelet: the parent must exist.
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map_err(|e| io("create hostPath file", e))?;
        }
        _ => {}
    }
    let meta = std::fs::metadata(path).map_err(|_| mismatch())?;
    let ft = meta.file_type();
    let ok = match ty {
        "DirectoryOrCreate" | "Directory" => ft.is_dir(),
        "FileOrCreate" | "File" => {
            !(ft.is_dir() || ft.is_socket() || ft.is_char_device() || ft.is_block_device())
        }
        "Socket" => ft.is_socket(),
        "CharDevice" => ft.is_char_device(),
        "BlockDevice" => ft.is_block_device(),
        _ => {
            return Err(SandboxError::UnsupportedVolume {
                volume: volume.to_owned(),
                reason: format!("unknown hostPath type {ty:?}"),
            })
        }
    };
    if ok {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// Resolves `sub_path` inside `root` and returns the canonical host path to bind.
///
/// Every existing component is canonicalized and must stay inside the canonical root, so a
/// symlink planted in the volume cannot expose host files; missing components are created
/// as directories with the volume root's mode (the kubelet does the same so that the
/// directory is usable by the container's user).
///
/// Limitation: the returned path is re-resolved by runc when it binds it; a container that
/// swaps a directory for a symlink in that window could still redirect the mount (the
/// kubelet closes this with `/proc/self/fd` binds; podctl does not yet).
pub(crate) fn resolve_sub_path(
    volume: &str,
    root: &Path,
    sub_path: &str,
) -> Result<PathBuf, SandboxError> {
    let escapes = || SandboxError::SubPathEscapes {
        volume: volume.to_owned(),
        sub_path: sub_path.to_owned(),
    };
    let io = |op, path: &Path, source| SandboxError::Io {
        op,
        path: path.to_owned(),
        source,
    };
    let canonical_root = root
        .canonicalize()
        .map_err(|e| io("canonicalize volume root", root, e))?;
    let mut current = canonical_root.clone();
    for component in Path::new(sub_path).components() {
        let name = match component {
            Component::Normal(name) => name,
            Component::CurDir => continue,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(SandboxError::InvalidSubPath {
                    volume: volume.to_owned(),
                    sub_path: sub_path.to_owned(),
                })
            }
        };
        let next = current.join(name);
        match std::fs::symlink_metadata(&next) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let mode = std::fs::metadata(&canonical_root)
                    .map_err(|e| io("stat volume root", &canonical_root, e))?
                    .permissions()
                    .mode()
                    & 0o7777;
                match std::fs::DirBuilder::new().mode(mode).create(&next) {
                    Ok(()) => std::fs::set_permissions(&next, Permissions::from_mode(mode))
                        .map_err(|e| io("chmod subPath directory", &next, e))?,
                    // Lost a race with the container creating it: fine, checked below.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io("create subPath directory", &next, e)),
                }
            }
            Err(e) => return Err(io("stat", &next, e)),
        }
        // A dangling symlink (e.g. pointing outside) fails to canonicalize: refuse it too.
        let resolved = next.canonicalize().map_err(|_| escapes())?;
        if !resolved.starts_with(&canonical_root) {
            return Err(escapes());
        }
        current = resolved;
    }
    Ok(current)
}

fn create_dir(dir: &Path, mode: u32) -> Result<(), SandboxError> {
    std::fs::DirBuilder::new()
        .mode(mode)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, Permissions::from_mode(mode)))
        .map_err(|source| SandboxError::Io {
            op: "create volume directory",
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_path_stays_inside_volume() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("vol");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, Permissions::from_mode(0o777)).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", root.join("dangling")).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink("real", root.join("inner-link")).unwrap();
        let canon_root = root.canonicalize().unwrap();

        assert_eq!(resolve_sub_path("v", &root, "").unwrap(), canon_root);
        assert_eq!(
            resolve_sub_path("v", &root, "inner-link").unwrap(),
            canon_root.join("real")
        );
        let created = resolve_sub_path("v", &root, "a/b/c").unwrap();
        assert_eq!(created, canon_root.join("a/b/c"));
        let mode = std::fs::metadata(&created).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o777);
        for evil in ["evil", "evil/x", "dangling", "inner-link/../../outside"] {
            let err = resolve_sub_path("v", &root, evil).unwrap_err();
            assert!(
                matches!(
                    err,
                    SandboxError::SubPathEscapes { .. } | SandboxError::InvalidSubPath { .. }
                ),
                "{evil}: {err}"
            );
        }
        // Nothing got created outside through the symlink.
        assert!(!outside.join("x").exists());
    }

    #[test]
    fn host_path_types() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("d/e");
        check_host_path("v", &d, "DirectoryOrCreate").unwrap();
        assert!(d.is_dir());
        check_host_path("v", &d, "Directory").unwrap();
        let f = tmp.path().join("f");
        check_host_path("v", &f, "FileOrCreate").unwrap();
        assert!(f.is_file());
        check_host_path("v", &f, "File").unwrap();
        check_host_path("v", Path::new("/dev/null"), "CharDevice").unwrap();
        check_host_path("v", Path::new("/nonexistent"), "").unwrap();
        for (path, ty) in [
            (f.as_path(), "Directory"),
            (d.as_path(), "File"),
            (f.as_path(), "DirectoryOrCreate"),
            (tmp.path().join("missing").as_path(), "Directory"),
            (f.as_path(), "Socket"),
            (f.as_path(), "BlockDevice"),
        ] {
            let err = check_host_path("v", path, ty).unwrap_err();
            assert!(matches!(err, SandboxError::HostPathType { .. }), "{err}");
        }
        // FileOrCreate needs the parent.
        assert!(check_host_path("v", &tmp.path().join("no/parent"), "FileOrCreate").is_err());
    }
}
