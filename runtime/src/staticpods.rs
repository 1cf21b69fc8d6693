//! The static pod directory of `podctl daemon --manifests-dir`, read like the kubelet's
//! `staticPodPath`: every regular file in the dir (not recursive, symlinks followed, names
//! starting with `.` skipped) holds one pod, checked exactly as `podctl run` checks a
//! manifest.
//!
//! [`Watcher::poll`] rescans the dir and returns only what changed since the previous poll
//! (the first poll compares with the pods the daemon already has records of), so the daemon
//! can poll often and act on every change it gets:
//! - a pod name no file defined before is started, a pod whose file content changed is
//!   replaced, a pod name no file defines any more (its file deleted, or its
//!   `metadata.name` changed) is removed;
//! - a file that cannot be used is reported once per content, not on every poll;
//! - a file that defined a running pod and becomes invalid leaves that pod running on its
//!   last good content, so a half-saved edit does not take a pod down (the kubelet drops
//!   it at its next full relist; podctl prefers availability);
//! - two files defining one pod name: the first by file name wins, as the kubelet's sorted
//!   listing makes it.
//!
//! A missing dir means no static pods: every pod goes. A dir that exists but cannot be
//! read changes nothing, since an incomplete listing must not remove the pods it missed.
//! Both are reported once.
//!
//! Each poll reports the dir's error first, then removals (so a pod that moved to another
//! name is stopped before its successor starts), then each file's change in file-name
//! order.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::manifest::{self, ManifestError, RunnablePod};

/// One thing the daemon has to act on after a poll.
#[derive(Debug)]
pub enum Change {
    /// A pod name that no file defined before: start it.
    Start {
        file: PathBuf,
        pod: Box<RunnablePod>,
        hash: String,
    },
    /// The content defining a running pod changed: the old pod goes, this one starts.
    Replace {
        file: PathBuf,
        pod: Box<RunnablePod>,
        hash: String,
    },
    /// No file defines this pod any more: stop and remove it.
    Remove { name: String },
    /// A file (or the dir itself) cannot be used; `error` is what `podctl validate` prints
    /// for it. Reported once per content: the same bad file is not reported again.
    Invalid { file: PathBuf, error: String },
}

/// Why a file or the dir cannot be used, beyond the manifest's own errors.
#[derive(Debug, thiserror::Error)]
enum StaticPodError {
    #[error("cannot read the manifests dir {}", dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("pod {name:?} is already defined by {}", other.display())]
    Duplicate { name: String, other: PathBuf },
}

/// Follows one manifests dir across polls; see the module docs for the rules.
#[derive(Debug)]
pub struct Watcher {
    dir: PathBuf,
    /// The pods the daemon was told to run (or already had), by name.
    pods: BTreeMap<String, Running>,
    /// Each unusable file with what was reported for it, so it is reported once.
    reported: BTreeMap<PathBuf, Report>,
    /// The dir's own error as last reported, so it is reported once.
    dir_error: Option<String>,
}

#[derive(Debug)]
struct Running {
    /// `None` for a pod known from an earlier daemon run: its file is not known.
    file: Option<PathBuf>,
    hash: String,
}

/// What makes an invalid file's report new: its content, or a different verdict on it
/// (a duplicate's winner can change while its own content does not).
#[derive(Debug, PartialEq, Eq)]
struct Report {
    hash: Option<String>,
    error: String,
}

/// One file as read by a poll.
enum Read {
    /// Deleted between listing and reading.
    Gone,
    Valid {
        name: String,
        pod: Box<RunnablePod>,
        hash: String,
    },
    Invalid(Report),
}

impl Watcher {
    /// A watcher of `dir`; `known` maps the static pods the daemon already has records of to
    /// the hash of the content they were started from, so that the first poll restarts only
    /// what changed while the daemon was away. Which file a known pod came from is not
    /// known, so one whose file is invalid at the first poll is removed, not kept.
    pub fn new(dir: PathBuf, known: BTreeMap<String, String>) -> Self {
        let pods = known
            .into_iter()
            .map(|(name, hash)| (name, Running { file: None, hash }))
            .collect();
        Self {
            dir,
            pods,
            reported: BTreeMap::new(),
            dir_error: None,
        }
    }

    /// Rescans the dir and returns what changed since the previous poll.
    pub fn poll(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        let files = match list(&self.dir) {
            Ok(files) => {
                self.dir_error = None;
                files
            }
            Err(source) => {
                let missing = source.kind() == io::ErrorKind::NotFound;
                let error = crate::describe(&StaticPodError::ReadDir {
                    dir: self.dir.clone(),
                    source,
                });
                if self.dir_error.as_ref() != Some(&error) {
                    changes.push(Change::Invalid {
                        file: self.dir.clone(),
                        error: error.clone(),
                    });
                    self.dir_error = Some(error);
                }
                if !missing {
                    return changes;
                }
                Vec::new()
            }
        };
        self.update(files, &mut changes);
        changes
    }

    /// Brings the watcher's view to `files` (sorted), pushing the changes that takes.
    fn update(&mut self, files: Vec<PathBuf>, changes: &mut Vec<Change>) {
        struct Defined {
            file: PathBuf,
            pod: Box<RunnablePod>,
            hash: String,
        }
        let mut defined: BTreeMap<String, Defined> = BTreeMap::new();
        let mut invalid: Vec<(PathBuf, Report)> = Vec::new();
        // Files whose content is unusable: the pod each of them defined before is kept.
        let mut broken: BTreeSet<PathBuf> = BTreeSet::new();
        for file in files {
            match read(&file) {
                Read::Gone => {}
                Read::Valid { name, pod, hash } => {
                    if let Some(first) = defined.get(&name) {
                        let error = crate::describe(&StaticPodError::Duplicate {
                            name,
                            other: first.file.clone(),
                        });
                        let hash = Some(hash);
                        invalid.push((file, Report { hash, error }));
                    } else {
                        defined.insert(name, Defined { file, pod, hash });
                    }
                }
                Read::Invalid(report) => {
                    broken.insert(file.clone());
                    invalid.push((file, report));
                }
            }
        }

        let mut pods = BTreeMap::new();
        for (name, running) in std::mem::take(&mut self.pods) {
            let held = running.file.as_ref().is_some_and(|f| broken.contains(f));
            if defined.contains_key(&name) || held {
                pods.insert(name, running);
            } else {
                changes.push(Change::Remove { name });
            }
        }

        // Every file yields at most one change; keyed by file for file-name order.
        let mut by_file: BTreeMap<PathBuf, Change> = BTreeMap::new();
        for (name, d) in defined {
            let change = match pods.get(&name) {
                None => Some(Change::Start {
                    file: d.file.clone(),
                    pod: d.pod,
                    hash: d.hash.clone(),
                }),
                Some(running) if running.hash != d.hash => Some(Change::Replace {
                    file: d.file.clone(),
                    pod: d.pod,
                    hash: d.hash.clone(),
                }),
                // Same content, perhaps under another file name: nothing to restart.
                Some(_) => None,
            };
            if let Some(change) = change {
                by_file.insert(d.file.clone(), change);
            }
            let running = Running {
                file: Some(d.file),
                hash: d.hash,
            };
            pods.insert(name, running);
        }
        self.pods = pods;

        // Rebuilt from the files present, so a bad file that comes back is reported again.
        let mut reported = BTreeMap::new();
        for (file, report) in invalid {
            if self.reported.get(&file) != Some(&report) {
                let change = Change::Invalid {
                    file: file.clone(),
                    error: report.error.clone(),
                };
                by_file.insert(file.clone(), change);
            }
            reported.insert(file, report);
        }
        self.reported = reported;
        changes.extend(by_file.into_values());
    }
}

/// The candidate files of `dir`, sorted. Any error reading the dir itself fails the whole
/// listing: a partial one would look like removed files.
fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        // `metadata` follows symlinks: a link to a file counts, a dangling one is no file.
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => files.push(path),
            // Directories are not recursed into; FIFOs and sockets could block a read.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // It exists but cannot be examined: reading it reports why.
            Err(_) => files.push(path),
        }
    }
    files.sort();
    Ok(files)
}

fn read(file: &Path) -> Read {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Read::Gone,
        Err(source) => {
            let error = crate::describe(&ManifestError::Read {
                path: file.to_owned(),
                source,
            });
            return Read::Invalid(Report { hash: None, error });
        }
    };
    let hash = content_hash(&bytes);
    match load(file, bytes) {
        Ok(pod) => Read::Valid {
            // Validation refuses a pod without a name.
            name: pod.pod.metadata.name.clone().unwrap_or_default(),
            pod: Box::new(pod),
            hash,
        },
        Err(e) => Read::Invalid(Report {
            hash: Some(hash),
            error: crate::describe(&e),
        }),
    }
}

/// `manifest::load_valid` on bytes already read, so the pod and its hash are of the same
/// content even if the file changes meanwhile.
fn load(file: &Path, bytes: Vec<u8>) -> Result<RunnablePod, ManifestError> {
    let text = String::from_utf8(bytes).map_err(|e| ManifestError::Read {
        path: file.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()),
    })?;
    manifest::parse_valid(&text, &file.display().to_string())
}

/// The first 16 hex digits of the content's sha256: the daemon records it with the pod.
fn content_hash(bytes: &[u8]) -> String {
    let mut hash = hex::encode(Sha256::digest(bytes));
    hash.truncate(16);
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, image: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: app\n    image: {image}\n"
        )
    }

    const BAD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: app\n    image: busybox\n    imagePullPolicy: Sometimes\n";

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::write(dir.join(file), text).unwrap();
    }

    /// Changes in a compact form: `start web a.yaml`, `replace ...`, `remove web`,
    /// `invalid a.yaml`.
    fn summary(changes: &[Change]) -> Vec<String> {
        let base = |f: &Path| f.file_name().unwrap().to_string_lossy().into_owned();
        let name = |p: &RunnablePod| p.pod.metadata.name.clone().unwrap();
        changes
            .iter()
            .map(|c| match c {
                Change::Start { file, pod, .. } => format!("start {} {}", name(pod), base(file)),
                Change::Replace { file, pod, .. } => {
                    format!("replace {} {}", name(pod), base(file))
                }
                Change::Remove { name } => format!("remove {name}"),
                Change::Invalid { file, .. } => format!("invalid {}", base(file)),
            })
            .collect()
    }

    fn error_of(changes: &[Change]) -> String {
        match changes {
            [Change::Invalid { error, .. }] => error.clone(),
            other => panic!("expected one Invalid, got {:?}", summary(other)),
        }
    }

    fn watcher(dir: &Path) -> Watcher {
        Watcher::new(dir.to_owned(), BTreeMap::new())
    }

    #[test]
    fn files_added_changed_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let mut w = watcher(d.path());
        assert!(w.poll().is_empty());
        write(d.path(), "b.yaml", &pod("beta", "busybox"));
        write(d.path(), "a.yaml", &pod("alpha", "busybox"));
        assert_eq!(
            summary(&w.poll()),
            ["start alpha a.yaml", "start beta b.yaml"]
        );
        assert!(w.poll().is_empty());

        write(d.path(), "a.yaml", &pod("alpha", "busybox:1.36"));
        let changes = w.poll();
        assert_eq!(summary(&changes), ["replace alpha a.yaml"]);
        let Change::Replace { hash, .. } = &changes[0] else {
            unreachable!()
        };
        assert_eq!(hash, &content_hash(pod("alpha", "busybox:1.36").as_bytes()));
        assert_eq!(hash.len(), 16);

        std::fs::remove_file(d.path().join("b.yaml")).unwrap();
        assert_eq!(summary(&w.poll()), ["remove beta"]);
        assert!(w.poll().is_empty());
    }

    #[test]
    fn a_renamed_pod_is_removed_then_started() {
        let d = tempfile::tempdir().unwrap();
        let mut w = watcher(d.path());
        write(d.path(), "a.yaml", &pod("alpha", "busybox"));
        assert_eq!(summary(&w.poll()), ["start alpha a.yaml"]);
        write(d.path(), "a.yaml", &pod("omega", "busybox"));
        assert_eq!(summary(&w.poll()), ["remove alpha", "start omega a.yaml"]);
    }

    #[test]
    fn a_moved_file_with_the_same_content_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut w = watcher(d.path());
        write(d.path(), "a.yaml", &pod("alpha", "busybox"));
        w.poll();
        std::fs::rename(d.path().join("a.yaml"), d.path().join("z.yaml")).unwrap();
        assert!(w.poll().is_empty());
        std::fs::remove_file(d.path().join("z.yaml")).unwrap();
        assert_eq!(summary(&w.poll()), ["remove alpha"]);
    }

    #[test]
    fn an_invalid_file_is_reported_once_then_started_when_fixed() {
        let d = tempfile::tempdir().unwrap();
        let mut w = watcher(d.path());
        write(d.path(), "bad.yaml", BAD);
        let changes = w.poll();
        let file = d.path().join("bad.yaml");
        // The message `podctl validate` prints.
        let expected = crate::describe(&manifest::load_valid(&file).unwrap_err());
        assert_eq!(error_of(&changes), expected);
        assert!(expected.contains("imagePullPolicy"), "{expected}");
        assert!(w.poll().is_empty());
        assert!(w.poll().is_empty());

        // Another bad content is news.
        write(d.path(), "bad.yaml", &BAD.replace("Sometimes", "Rarely"));
        assert_eq!(summary(&w.poll()), ["invalid bad.yaml"]);

        write(d.path(), "bad.yaml", &pod("bad", "busybox"));
        assert_eq!(summary(&w.poll()), ["start bad bad.yaml"]);
    }

    #[test]
    fn an_invalid_file_that_disappears_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut w = watcher(d.path());
        write(d.path(), "bad.yaml", BAD);
        assert_eq!(summary(&w.poll()), ["invalid bad.yaml"]);
        std::fs::remove_file(d.path().join("bad.yaml")).unwrap();
        assert!(w.poll().is_empty());
        // Back again: reported again, as a new file.
        write(d.path(), "bad.yaml", BAD);
        assert_eq!(summary(&w.poll()), ["invalid bad.yaml"]);
    }

    #[test]
    fn an_invalid_edit_keeps_the_running_pod() {
        let d = tempfile::tempdir().unwrap();
        let mut w = watcher(d.path());
        write(d.path(), "a.yaml", &pod("alpha", "busybox"));
        w.poll();
        write(
            d.path(),
            "a.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: alpha\n",
        );
        assert_eq!(summary(&w.poll()), ["invalid a.yaml"]);
        assert!(w.poll().is_empty());
        // Back to the content it runs: nothing to do.
        write(d.path(), "a.yaml", &pod("alpha", "busybox"));
        assert!(w.poll().is_empty());

        write(d.path(), "a.yaml", BAD);
        assert_eq!(summary(&w.poll()), ["invalid a.yaml"]);
        write(d.path(), "a.yaml", &pod("alpha", "busybox:1.36"));
        assert_eq!(summary(&w.poll()), ["replace alpha a.yaml"]);

        // Its file deleted while invalid: the pod is defined by nothing any more.
        write(d.path(), "a.yaml", BAD);
        w.poll();
        std::fs::remove_file(d.path().join("a.yaml")).unwrap();
        assert_eq!(summary(&w.poll()), ["remove alpha"]);
    }

    #[test]
    fn non_utf8_content_is_invalid() {
        let d = tempfile::tempdir().unwrap();
        let mut w = watcher(d.path());
        std::fs::write(d.path().join("a.yaml"), b"kind: \xff\xfe\n").unwrap();
        let error = error_of(&w.poll());
        assert!(error.starts_with("cannot read manifest"), "{error}");
        assert!(error.contains("utf-8"), "{error}");
    }

    #[test]
    fn the_first_file_by_name_wins_a_duplicate_pod_name() {
        let d = tempfile::tempdir().unwrap();
        let mut w = watcher(d.path());
        write(d.path(), "b.yaml", &pod("web", "busybox:1.36"));
        write(d.path(), "a.yaml", &pod("web", "busybox"));
        let changes = w.poll();
        assert_eq!(summary(&changes), ["start web a.yaml", "invalid b.yaml"]);
        let Change::Invalid { error, .. } = &changes[1] else {
            unreachable!()
        };
        let first = d.path().join("a.yaml");
        assert_eq!(
            error,
            &format!("pod \"web\" is already defined by {}", first.display())
        );
        assert!(w.poll().is_empty());

        // The winner gone, the other file takes over with its own content.
        std::fs::remove_file(&first).unwrap();
        assert_eq!(summary(&w.poll()), ["replace web b.yaml"]);
    }

    #[test]
    fn dotfiles_directories_and_dangling_links_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        let mut w = watcher(d.path());
        write(d.path(), ".a.yaml.swp", "not yaml: [");
        write(d.path(), ".hidden.yaml", &pod("hidden", "busybox"));
        std::fs::create_dir(d.path().join("sub")).unwrap();
        write(
            &d.path().join("sub"),
            "nested.yaml",
            &pod("nested", "busybox"),
        );
        std::os::unix::fs::symlink("/nonexistent/pod.yaml", d.path().join("dangling.yaml"))
            .unwrap();
        assert!(w.poll().is_empty());
    }

    #[test]
    fn symlinks_to_files_are_followed() {
        let d = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        write(elsewhere.path(), "real.yaml", &pod("linked", "busybox"));
        std::os::unix::fs::symlink(
            elsewhere.path().join("real.yaml"),
            d.path().join("link.yaml"),
        )
        .unwrap();
        let mut w = watcher(d.path());
        assert_eq!(summary(&w.poll()), ["start linked link.yaml"]);
    }

    #[test]
    fn the_first_poll_compares_with_known_pods() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "same.yaml", &pod("same", "busybox"));
        write(d.path(), "changed.yaml", &pod("changed", "busybox:1.36"));
        write(d.path(), "new.yaml", &pod("new", "busybox"));
        let known = BTreeMap::from([
            (
                "same".to_owned(),
                content_hash(pod("same", "busybox").as_bytes()),
            ),
            (
                "changed".to_owned(),
                content_hash(pod("changed", "busybox").as_bytes()),
            ),
            ("gone".to_owned(), "0123456789abcdef".to_owned()),
        ]);
        let mut w = Watcher::new(d.path().to_owned(), known);
        assert_eq!(
            summary(&w.poll()),
            [
                "remove gone",
                "replace changed changed.yaml",
                "start new new.yaml"
            ]
        );
        assert!(w.poll().is_empty());
    }

    #[test]
    fn a_missing_dir_removes_every_pod_and_is_reported_once() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("manifests");
        std::fs::create_dir(&dir).unwrap();
        write(&dir, "a.yaml", &pod("alpha", "busybox"));
        let mut w = watcher(&dir);
        w.poll();
        std::fs::remove_dir_all(&dir).unwrap();
        let changes = w.poll();
        assert_eq!(summary(&changes), ["invalid manifests", "remove alpha"]);
        let Change::Invalid { error, .. } = &changes[0] else {
            unreachable!()
        };
        assert!(
            error.starts_with("cannot read the manifests dir"),
            "{error}"
        );
        assert!(w.poll().is_empty());

        std::fs::create_dir(&dir).unwrap();
        write(&dir, "a.yaml", &pod("alpha", "busybox"));
        assert_eq!(summary(&w.poll()), ["start alpha a.yaml"]);
    }

    #[test]
    fn an_unreadable_dir_keeps_every_pod_and_is_reported_once() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("manifests");
        std::fs::create_dir(&dir).unwrap();
        write(&dir, "a.yaml", &pod("alpha", "busybox"));
        let mut w = watcher(&dir);
        w.poll();
        // A file where the dir was: it exists, but cannot be listed.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(&dir, "").unwrap();
        assert_eq!(summary(&w.poll()), ["invalid manifests"]);
        assert!(w.poll().is_empty());

        std::fs::remove_file(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        write(&dir, "a.yaml", &pod("alpha", "busybox"));
        assert!(w.poll().is_empty());
    }
}
