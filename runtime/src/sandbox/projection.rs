//! The kubelet's `AtomicWriter` (`pkg/volume/util/atomic_writer.go`): the on-disk layout of
//! a configMap, secret, downwardAPI or projected volume, and its atomic updates.
//!
//! ```text
//! <volume>/..2024_05_01_12_00_00.1234567/   the files of one version (hidden, 0755)
//! <volume>/..data -> ..2024_05_01_12_00_00.1234567
//! <volume>/<name> -> ..data/<name>          one link per first path component
//! ```
//!
//! A new version is written into a new timestamped dir and published by renaming a
//! `..data_tmp` link over `..data`, so a reader resolving `<name>` sees one version or the
//! other, never a mix; then links of names that went away and the old dir are removed.
//! Names starting with `..` are reserved for this. Writes to one volume must not overlap
//! (the caller serializes them, as the kubelet's volume manager does).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::Permissions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::ownership::{self, Access};
use super::SandboxError;

/// The link naming the current version.
const DATA_DIR: &str = "..data";
/// The link renamed over [`DATA_DIR`] to publish a new version.
const NEW_DATA_DIR: &str = "..data_tmp";
/// The kubelet's `maxFileNameLength` and `maxPathLength`.
const MAX_FILE_NAME: usize = 255;
const MAX_PATH: usize = 4096;

/// One file of a volume: its content and permission bits (`0o000..=0o777`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileProjection {
    pub(crate) data: Vec<u8>,
    pub(crate) mode: u32,
}

/// The files of one volume by path relative to the volume (`a/b` for nested files).
pub(crate) type Payload = BTreeMap<String, FileProjection>;

/// What [`write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// The volume already held this payload: nothing was touched.
    Unchanged,
    /// A new version was published (or missing links were restored).
    Updated,
}

/// Projects `payload` into the existing directory `target` (volume `volume`, for errors):
/// the kubelet's `AtomicWriter.Write`. With `fs_group`, the new files get the group and
/// the read-only mask before they are published (the kubelet's `setPerms`).
///
/// Paths are validated first (nothing is written if one is invalid). Writing the payload
/// the volume already holds changes nothing and returns [`Written::Unchanged`]. A failure
/// before the `..data` swap leaves the previous version in place.
pub(crate) fn write(
    volume: &str,
    target: &Path,
    payload: &Payload,
    fs_group: Option<u32>,
) -> Result<Written, SandboxError> {
    let payload = clean_payload(volume, payload)?;
    let io = |op: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| SandboxError::Io { op, path, source }
    };
    // A file's mode once published: `setPerms` ORs the read-only mask into it.
    let mode_of = |f: &FileProjection| f.mode | fs_group.map_or(0, |_| Access::ReadOnly.mask());

    let data_dir = target.join(DATA_DIR);
    let old = match std::fs::read_link(&data_dir) {
        // Anything but one of our own names is not trusted as a version to walk or remove:
        // it is replaced like a missing one.
        Ok(link) => link
            .to_str()
            .filter(|name| is_version_name(name))
            .map(str::to_owned),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io("read link", &data_dir)(e)),
    };

    let mut to_remove = BTreeSet::new();
    let mut publish = true;
    if let Some(old) = &old {
        let old_dir = target.join(old);
        to_remove = stale_paths(&payload, &old_dir)?;
        let mut differs = false;
        for (path, file) in &payload {
            if !holds(&old_dir.join(path), &file.data, mode_of(file))? {
                differs = true;
                break;
            }
        }
        publish = differs || !to_remove.is_empty();
    }

    let mut changed = false;
    if publish {
        let new_name = new_version_dir(target)?;
        let new_dir = target.join(&new_name);
        let published = write_files(&new_dir, &payload)
            .and_then(|()| match fs_group {
                // The whole volume, not only the new dir: the root is new on a first write.
                Some(gid) => ownership::set_volume_ownership(target, gid, Access::ReadOnly),
                None => Ok(()),
            })
            .and_then(|()| swap_data_dir(target, &new_name));
        if let Err(e) = published {
            // The kubelet's cleanup: the half-written version goes, the old one stays.
            let _ = std::fs::remove_file(target.join(NEW_DATA_DIR));
            let _ = std::fs::remove_dir_all(&new_dir);
            return Err(e);
        }
        changed = true;
    }

    for name in top_level_names(&payload) {
        let link = target.join(name);
        match std::fs::read_link(&link) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                std::os::unix::fs::symlink(Path::new(DATA_DIR).join(name), &link)
                    .map_err(io("symlink", &link))?;
                changed = true;
            }
            // A link (ours) or, like the kubelet, anything else already there: kept.
            _ => {}
        }
    }

    // Only the links at the top: deeper paths went with the old version.
    for path in to_remove.iter().filter(|p| !p.contains('/')) {
        let link = target.join(path);
        match std::fs::remove_file(&link) {
            Ok(()) => changed = true,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove stale link", &link)(e)),
        }
    }

    if publish {
        remove_old_versions(target)?;
    }
    Ok(if changed {
        Written::Updated
    } else {
        Written::Unchanged
    })
}

/// The kubelet's `validatePayload`: every path checked, then cleaned (`a//./b` → `a/b`).
fn clean_payload<'a>(
    volume: &str,
    payload: &'a Payload,
) -> Result<BTreeMap<String, &'a FileProjection>, SandboxError> {
    payload
        .iter()
        .map(|(path, file)| Ok((clean_path(volume, path)?, file)))
        .collect()
}

/// The kubelet's `validatePath`, with its messages, and the cleaned path. The cleaned path
/// is checked again so that `./..data` cannot name a reserved entry.
pub(crate) fn clean_path(volume: &str, path: &str) -> Result<String, SandboxError> {
    let invalid = |reason: &'static str| SandboxError::InvalidProjectionPath {
        volume: volume.to_owned(),
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if path.starts_with('/') {
        return Err(invalid("must be relative path"));
    }
    if path.len() > MAX_PATH {
        return Err(invalid("must be less than or equal to 4096 characters"));
    }
    let items: Vec<&str> = path.split('/').collect();
    for item in &items {
        if *item == ".." {
            return Err(invalid("must not contain '..'"));
        }
        if item.len() > MAX_FILE_NAME {
            return Err(invalid(
                "filenames must be less than or equal to 255 characters",
            ));
        }
    }
    let clean: Vec<&str> = items
        .into_iter()
        .filter(|i| !i.is_empty() && *i != ".")
        .collect();
    match clean.first() {
        None => Err(invalid("must not be empty")),
        Some(first) if first.starts_with("..") => Err(invalid("must not start with '..'")),
        Some(_) => Ok(clean.join("/")),
    }
}

/// Whether `name` is a version dir this writer makes (`..<timestamp>.<random>`).
fn is_version_name(name: &str) -> bool {
    name.len() > 2
        && name.starts_with("..")
        && !name.contains('/')
        && name != DATA_DIR
        && name != NEW_DATA_DIR
}

/// The first components of the payload's paths: the names users see at the top.
fn top_level_names<'a>(payload: &'a BTreeMap<String, &FileProjection>) -> BTreeSet<&'a str> {
    payload
        .keys()
        .map(|p| p.split('/').next().unwrap_or(p))
        .collect()
}

/// The kubelet's `pathsToRemove`: what the old version holds that the payload (with every
/// parent dir of its paths) does not.
fn stale_paths(
    payload: &BTreeMap<String, &FileProjection>,
    old_dir: &Path,
) -> Result<BTreeSet<String>, SandboxError> {
    let mut old = BTreeSet::new();
    match std::fs::symlink_metadata(old_dir) {
        Ok(meta) if meta.is_dir() => walk(old_dir, "", &mut old)?,
        // A version `..data` names but that is gone holds nothing to remove.
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Ok(_) => {}
        Err(source) => {
            return Err(SandboxError::Io {
                op: "stat",
                path: old_dir.to_owned(),
                source,
            })
        }
    }
    for path in payload.keys() {
        let mut prefix = path.as_str();
        loop {
            old.remove(prefix);
            match prefix.rfind('/') {
                Some(i) => prefix = &prefix[..i],
                None => break,
            }
        }
    }
    Ok(old)
}

/// Collects the paths below `dir` (relative, `/`-separated), not following symlinks.
fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) -> Result<(), SandboxError> {
    let io = |source| SandboxError::Io {
        op: "read volume directory",
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type().map_err(io)?.is_dir() {
            walk(&entry.path(), &rel, out)?;
        }
        out.insert(rel);
    }
    Ok(())
}

/// Whether `path` is a regular file with exactly this content and mode.
fn holds(path: &Path, data: &[u8], mode: u32) -> Result<bool, SandboxError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(SandboxError::Io {
                op: "stat",
                path: path.to_owned(),
                source,
            })
        }
    };
    if !meta.is_file() || meta.len() != data.len() as u64 || meta.mode() & 0o7777 != mode {
        return Ok(false);
    }
    let on_disk = std::fs::read(path).map_err(|source| SandboxError::Io {
        op: "read",
        path: path.to_owned(),
        source,
    })?;
    Ok(on_disk == data)
}

/// Creates `..YYYY_MM_DD_HH_MM_SS.<random>` (UTC, the kubelet's `MkdirTemp` pattern) and
/// returns its name.
fn new_version_dir(target: &Path) -> Result<String, SandboxError> {
    let format = time::macros::format_description!("[year]_[month]_[day]_[hour]_[minute]_[second]");
    let stamp = time::OffsetDateTime::now_utc()
        .format(format)
        .unwrap_or_default();
    loop {
        let name = format!("..{stamp}.{}", rand::random::<u32>());
        let dir = target.join(&name);
        match create_dir(&dir) {
            Ok(()) => return Ok(name),
            Err(SandboxError::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

/// A directory with mode 0755 whatever the umask: every user must reach the files.
fn create_dir(dir: &Path) -> Result<(), SandboxError> {
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, Permissions::from_mode(0o755)))
        .map_err(|source| SandboxError::Io {
            op: "create volume directory",
            path: dir.to_owned(),
            source,
        })
}

/// Writes every file (and its parent dirs) into the new, empty version dir.
fn write_files(
    dir: &Path,
    payload: &BTreeMap<String, &FileProjection>,
) -> Result<(), SandboxError> {
    for (path, file) in payload {
        let full = dir.join(path);
        let components: Vec<&str> = path.split('/').collect();
        let mut parent = dir.to_path_buf();
        for component in &components[..components.len() - 1] {
            parent.push(component);
            match create_dir(&parent) {
                Ok(()) => {}
                Err(SandboxError::Io { source, .. })
                    if source.kind() == ErrorKind::AlreadyExists && parent.is_dir() => {}
                Err(e) => return Err(e),
            }
        }
        let io = |op| {
            let path = full.clone();
            move |source| SandboxError::Io { op, path, source }
        };
        // create_new: a file never follows a link; a path written twice is a conflict.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&full)
            .map_err(io("create volume file"))?;
        f.write_all(&file.data).map_err(io("write volume file"))?;
        // The exact mode, whatever the umask (the kubelet's chmod after WriteFile).
        f.set_permissions(Permissions::from_mode(file.mode & 0o777))
            .map_err(io("chmod volume file"))?;
    }
    Ok(())
}

/// Points `..data` at `new_name` in one rename.
fn swap_data_dir(target: &Path, new_name: &str) -> Result<(), SandboxError> {
    let tmp = target.join(NEW_DATA_DIR);
    // A crash between the link and the rename leaves it behind.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(source) => {
            return Err(SandboxError::Io {
                op: "remove",
                path: tmp,
                source,
            })
        }
    }
    std::os::unix::fs::symlink(new_name, &tmp).map_err(|source| SandboxError::Io {
        op: "symlink",
        path: tmp.clone(),
        source,
    })?;
    let data_dir = target.join(DATA_DIR);
    std::fs::rename(&tmp, &data_dir).map_err(|source| SandboxError::Io {
        op: "rename",
        path: data_dir,
        source,
    })
}

/// Removes every version dir but the one `..data` names: the previous version, and any a
/// crash between writing and publishing left behind (the kubelet keeps those forever).
fn remove_old_versions(target: &Path) -> Result<(), SandboxError> {
    let io = |op, path: &Path| {
        let path = path.to_owned();
        move |source| SandboxError::Io { op, path, source }
    };
    let data_dir = target.join(DATA_DIR);
    let current: PathBuf = std::fs::read_link(&data_dir).map_err(io("read link", &data_dir))?;
    for entry in std::fs::read_dir(target).map_err(io("read volume directory", target))? {
        let entry = entry.map_err(io("read volume directory", target))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_version_name(name) || Path::new(name) == current {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(entry.path())
                .map_err(io("remove old version", &entry.path()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files
            .iter()
            .map(|(p, d, m)| {
                (
                    p.to_string(),
                    FileProjection {
                        data: d.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    fn entries(dir: &Path) -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }

    /// The one version dir of `dir`, as `..data` names it.
    fn version(dir: &Path) -> String {
        let v = std::fs::read_link(dir.join("..data")).unwrap();
        v.to_str().unwrap().to_owned()
    }

    #[test]
    fn layout_of_a_first_write() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let files = payload(&[
            ("a", "A", 0o644),
            ("sub/b", "B", 0o400),
            ("sub/deeper/c", "C", 0o755),
        ]);
        assert_eq!(write("v", dir, &files, None).unwrap(), Written::Updated);

        let ts = version(dir);
        // ..YYYY_MM_DD_HH_MM_SS.<random>
        let (stamp, random) = ts[2..].split_once('.').unwrap();
        assert_eq!(stamp.len(), 19, "{ts}");
        assert!(stamp
            .split('_')
            .all(|p| p.chars().all(|c| c.is_ascii_digit())));
        assert!(random.parse::<u32>().is_ok(), "{ts}");
        assert_eq!(
            entries(dir),
            ["..data", "a", "sub", &ts].map(String::from).into()
        );
        assert_eq!(
            std::fs::read_link(dir.join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert_eq!(
            std::fs::read_link(dir.join("sub")).unwrap(),
            Path::new("..data/sub")
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("sub/deeper/c")).unwrap(),
            "C"
        );
        assert_eq!(mode(&dir.join(&ts)), 0o755);
        assert_eq!(mode(&dir.join(&ts).join("sub/deeper")), 0o755);
        assert_eq!(mode(&dir.join(&ts).join("a")), 0o644);
        assert_eq!(mode(&dir.join(&ts).join("sub/b")), 0o400);
        assert_eq!(mode(&dir.join(&ts).join("sub/deeper/c")), 0o755);
    }

    #[test]
    fn rewrites_swap_versions_and_drop_stale_links() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let first = payload(&[("a", "1", 0o644), ("gone", "x", 0o644), ("d/e", "1", 0o644)]);
        write("v", dir, &first, None).unwrap();
        let v1 = version(dir);
        // A crash leftover of an unpublished version.
        std::fs::create_dir(dir.join("..2000_01_01_00_00_00.1")).unwrap();

        assert_eq!(write("v", dir, &first, None).unwrap(), Written::Unchanged);
        assert_eq!(version(dir), v1);

        let second = payload(&[("a", "2", 0o644), ("d/f", "2", 0o644), ("new", "n", 0o600)]);
        assert_eq!(write("v", dir, &second, None).unwrap(), Written::Updated);
        let v2 = version(dir);
        assert_ne!(v1, v2);
        assert_eq!(
            entries(dir),
            ["..data", "a", "d", "new", &v2].map(String::from).into()
        );
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "2");
        assert!(!dir.join("d/e").exists());
        assert_eq!(std::fs::read_to_string(dir.join("d/f")).unwrap(), "2");

        // Only a removed path is a change too.
        let third = payload(&[("a", "2", 0o644), ("d/f", "2", 0o644)]);
        assert_eq!(write("v", dir, &third, None).unwrap(), Written::Updated);
        assert!(!dir.join("new").exists() && std::fs::symlink_metadata(dir.join("new")).is_err());
        // So is a mode.
        let fourth = payload(&[("a", "2", 0o600), ("d/f", "2", 0o644)]);
        assert_eq!(write("v", dir, &fourth, None).unwrap(), Written::Updated);
        assert_eq!(mode(&dir.join("..data/a")), 0o600);

        // Emptied: only ..data and its (empty) version remain.
        assert_eq!(
            write("v", dir, &Payload::new(), None).unwrap(),
            Written::Updated
        );
        assert_eq!(entries(dir), ["..data".to_owned(), version(dir)].into());
        assert_eq!(
            write("v", dir, &Payload::new(), None).unwrap(),
            Written::Unchanged
        );
    }

    #[test]
    fn a_missing_link_is_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let files = payload(&[("a", "1", 0o644)]);
        write("v", dir, &files, None).unwrap();
        std::fs::remove_file(dir.join("a")).unwrap();
        let v = version(dir);
        assert_eq!(write("v", dir, &files, None).unwrap(), Written::Updated);
        assert_eq!(version(dir), v);
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
    }

    #[test]
    fn invalid_paths_are_refused_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let long = "x".repeat(256);
        for (path, reason) in [
            ("", "must not be empty"),
            (".", "must not be empty"),
            ("/etc/passwd", "must be relative path"),
            ("a/../b", "must not contain '..'"),
            ("..", "must not contain '..'"),
            ("..data", "must not start with '..'"),
            ("..a/b", "must not start with '..'"),
            ("./..data", "must not start with '..'"),
            (
                long.as_str(),
                "filenames must be less than or equal to 255 characters",
            ),
        ] {
            let files = payload(&[("ok", "x", 0o644), (path, "x", 0o644)]);
            let err = write("v", tmp.path(), &files, None).unwrap_err();
            match &err {
                SandboxError::InvalidProjectionPath {
                    volume,
                    path: p,
                    reason: r,
                } => {
                    assert_eq!((volume.as_str(), p.as_str(), *r), ("v", path, reason));
                }
                other => panic!("{path:?}: {other}"),
            }
            assert!(entries(tmp.path()).is_empty(), "{path:?}");
        }
        // Allowed: names that only contain dots, and redundant separators (cleaned).
        let files = payload(&[
            ("a..b", "1", 0o644),
            (".hidden", "2", 0o644),
            ("c//./d", "3", 0o644),
        ]);
        write("v", tmp.path(), &files, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("c/d")).unwrap(),
            "3"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(".hidden")).unwrap(),
            "2"
        );
    }

    #[test]
    fn a_failed_write_keeps_the_previous_version() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write("v", dir, &payload(&[("a", "1", 0o644)]), None).unwrap();
        let v = version(dir);
        // "a" as a file and as a directory: the second cannot be written.
        let conflict = payload(&[("a", "2", 0o644), ("a/b", "3", 0o644)]);
        let err = write("v", dir, &conflict, None).unwrap_err();
        assert!(matches!(err, SandboxError::Io { .. }), "{err}");
        assert_eq!(version(dir), v);
        assert_eq!(entries(dir), ["..data", "a", &v].map(String::from).into());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
    }

    /// Needs root (chown to another group), as every sandbox test does.
    #[test]
    fn fs_group_gets_the_read_only_mask() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, Permissions::from_mode(0o777)).unwrap();
        let files = payload(&[("a", "1", 0o400), ("s/b", "2", 0o644)]);
        write("v", &dir, &files, Some(3000)).unwrap();
        let ts = dir.join(version(&dir));
        let gid_mode = |p: &Path| {
            let m = std::fs::symlink_metadata(p).unwrap();
            (m.gid(), m.mode() & 0o7777)
        };
        assert_eq!(gid_mode(&dir), (3000, 0o2777));
        assert_eq!(gid_mode(&ts), (3000, 0o2755));
        assert_eq!(gid_mode(&ts.join("s")), (3000, 0o2755));
        assert_eq!(gid_mode(&ts.join("a")), (3000, 0o440));
        assert_eq!(gid_mode(&ts.join("s/b")), (3000, 0o644));
        // The modes as published count as unchanged.
        assert_eq!(
            write("v", &dir, &files, Some(3000)).unwrap(),
            Written::Unchanged
        );
    }
}
