//! The static pod directory of `podctl daemon --manifests-dir`, read like the kubelet's
//! `staticPodPath`: every regular file in the dir (not recursive, symlinks followed, names
//! starting with `.` skipped) holds one pod or workload, checked exactly as `podctl run`
//! checks a manifest, and ConfigMaps, Secrets and claims, which every pod of the dir shares
//! (a Pod standing alone could not use ConfigMaps on a standalone kubelet; here it can).
//! When the objects a running pod uses change, [`Change::Objects`] hands them over without
//! restarting it.
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
        /// The pod the file defined before, when its name changed (a workload's name is
        /// derived from its content): it is removed before this one starts.
        previous: Option<String>,
    },
    /// No file defines this pod any more: stop and remove it.
    Remove { name: String },
    /// The ConfigMaps or Secrets a running pod uses changed (in its file or another file
    /// of the dir): its configMap, secret and projected volumes are brought up to date, as
    /// the kubelet's sync does; the pod itself is not restarted.
    Objects { pod: Box<RunnablePod> },
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
    /// What the pod's ConfigMaps and Secrets were when last handed over; `None` for a pod
    /// known from an earlier daemon run (its volumes are brought up to date once).
    objects: Option<String>,
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
    /// ConfigMaps, Secrets or claims only: shared by the dir's pods.
    Objects,
    Valid {
        name: String,
        pod: Box<RunnablePod>,
        hash: String,
        /// The hash of the objects the pod uses.
        objects: String,
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
            .map(|(name, hash)| {
                let running = Running {
                    file: None,
                    hash,
                    objects: None,
                };
                (name, running)
            })
            .collect();
        Self {
            dir,
            pods,
            reported: BTreeMap::new(),
            dir_error: None,
        }
    }

    /// Names the file each of `files` (known names) came from, when the daemon knows it:
    /// while that file is there but invalid, the workload is kept, not removed.
    pub fn with_files(mut self, files: BTreeMap<String, PathBuf>) -> Self {
        for (name, file) in files {
            if let Some(running) = self.pods.get_mut(&name) {
                running.file = Some(file);
            }
        }
        self
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
            objects: String,
        }
        let mut defined: BTreeMap<String, Defined> = BTreeMap::new();
        let mut invalid: Vec<(PathBuf, Report)> = Vec::new();
        // Files whose content is unusable: the pod each of them defined before is kept.
        let mut broken: BTreeSet<PathBuf> = BTreeSet::new();
        let parsed: Vec<(PathBuf, Parsed)> = files
            .into_iter()
            .map(|file| {
                let parsed = parse(&file);
                (file, parsed)
            })
            .collect();
        // Every ConfigMap, Secret and claim of the dir is shared by its pods.
        let mut shared = manifest::Bundle::default();
        let mut parsed: Vec<(PathBuf, Parsed)> = parsed
            .into_iter()
            .map(|(file, p)| {
                let Parsed::Ok { bundle, hash } = p else {
                    return (file, p);
                };
                let mut with = shared.clone();
                match with.merge(bundle.objects_only()) {
                    Ok(()) => {
                        shared = with;
                        (file, Parsed::Ok { bundle, hash })
                    }
                    Err(e) => {
                        let error = crate::describe(&e);
                        let hash = Some(hash);
                        (file, Parsed::Invalid(Report { hash, error }))
                    }
                }
            })
            .collect();
        let reads: Vec<(PathBuf, Read)> = parsed
            .drain(..)
            .map(|(file, p)| {
                let read = resolve(&file, p, &shared);
                (file, read)
            })
            .collect();
        for (file, read) in reads {
            match read {
                Read::Gone => {}
                Read::Objects => {}
                Read::Valid {
                    name,
                    pod,
                    hash,
                    objects,
                } => {
                    if let Some(first) = defined.get(&name) {
                        let error = crate::describe(&StaticPodError::Duplicate {
                            name,
                            other: first.file.clone(),
                        });
                        let hash = Some(hash);
                        invalid.push((file, Report { hash, error }));
                    } else {
                        let d = Defined {
                            file,
                            pod,
                            hash,
                            objects,
                        };
                        defined.insert(name, d);
                    }
                }
                Read::Invalid(report) => {
                    broken.insert(file.clone());
                    invalid.push((file, report));
                }
            }
        }

        let mut pods = BTreeMap::new();
        // Pods no file defines any more, with the file that defined them.
        let mut removed: Vec<(String, Option<PathBuf>)> = Vec::new();
        for (name, running) in std::mem::take(&mut self.pods) {
            let held = running.file.as_ref().is_some_and(|f| broken.contains(f));
            if defined.contains_key(&name) || held {
                pods.insert(name, running);
            } else {
                removed.push((name, running.file));
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
                    previous: None,
                }),
                // Same content, perhaps under another file name: nothing to restart, but
                // objects it uses may have changed.
                Some(running)
                    if running.objects.as_ref() != Some(&d.objects)
                        && !(running.objects.is_none() && d.pod.objects.is_empty()) =>
                {
                    Some(Change::Objects { pod: d.pod })
                }
                Some(_) => None,
            };
            if let Some(change) = change {
                by_file.insert(d.file.clone(), change);
            }
            let running = Running {
                file: Some(d.file),
                hash: d.hash,
                objects: Some(d.objects),
            };
            pods.insert(name, running);
        }
        self.pods = pods;
        // A file whose pod got a new name (an edited workload) replaces its old pod: the
        // old one is stopped first, never both running.
        for (name, file) in removed {
            let start = file.as_ref().and_then(|f| by_file.remove(f));
            match start {
                Some(Change::Start { file, pod, hash }) => {
                    let replace = Change::Replace {
                        file: file.clone(),
                        pod,
                        hash,
                        previous: Some(name),
                    };
                    by_file.insert(file, replace);
                }
                other => {
                    if let (Some(f), Some(c)) = (file, other) {
                        by_file.insert(f, c);
                    }
                    changes.push(Change::Remove { name });
                }
            }
        }

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

/// One file as parsed by a poll, before the dir's shared objects are known.
enum Parsed {
    /// Deleted between listing and reading.
    Gone,
    Ok {
        bundle: Box<manifest::Bundle>,
        hash: String,
    },
    Invalid(Report),
}

/// Reads and parses one file.
fn parse(file: &Path) -> Parsed {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Parsed::Gone,
        Err(source) => {
            let error = crate::describe(&ManifestError::Read {
                path: file.to_owned(),
                source,
            });
            return Parsed::Invalid(Report { hash: None, error });
        }
    };
    let hash = content_hash(&bytes);
    let parsed = String::from_utf8(bytes)
        .map_err(|e| ManifestError::Read {
            path: file.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()),
        })
        .and_then(|text| manifest::parse_bundle(&text, &file.display().to_string()));
    match parsed {
        Ok(bundle) => Parsed::Ok {
            bundle: Box::new(bundle),
            hash,
        },
        Err(e) => Parsed::Invalid(Report {
            hash: Some(hash),
            error: crate::describe(&e),
        }),
    }
}

/// A parsed file's pod with the dir's shared objects: every reference resolved.
fn resolve(file: &Path, parsed: Parsed, shared: &manifest::Bundle) -> Read {
    let (bundle, hash) = match parsed {
        Parsed::Gone => return Read::Gone,
        Parsed::Invalid(report) => return Read::Invalid(report),
        Parsed::Ok { bundle, hash } => (bundle, hash),
    };
    if bundle.pod.is_none() {
        // Shared objects; a file of only skipped kinds is reported, as a mistake.
        if bundle.objects.is_empty() && bundle.claims.is_empty() {
            if let Err(e) = (*bundle).runnable(&file.display().to_string()) {
                return Read::Invalid(Report {
                    hash: Some(hash),
                    error: crate::describe(&e),
                });
            }
        }
        return Read::Objects;
    }
    let mut full = shared.clone();
    let runnable = full
        .merge((*bundle).pod_only())
        .and_then(|()| full.runnable(&file.display().to_string()))
        .and_then(|pod| pod.one_replica().map(|()| pod));
    let invalid = |error: String| {
        Read::Invalid(Report {
            hash: Some(hash.clone()),
            error,
        })
    };
    match runnable {
        Err(e) => invalid(crate::describe(&e)),
        Ok(pod) if matches!(pod.controller, manifest::Controller::Job(_)) => invalid(format!(
            "{}: a Job in the manifests dir is not supported yet: run it with `podctl run`, or make it a CronJob",
            file.display()
        )),
        // The pod's identity is its own document (an edit to a ConfigMap beside it is an
        // objects change, not a new pod); a controller's generated name is derived from
        // it, so that every poll names the file's pod the same, and a changed workload
        // names a new pod.
        Ok(mut pod) => {
            let hash = workload_hash(&pod);
            // Only the claims it uses: a claim another pod of the dir names is not this
            // pod's to create (nor to fail on).
            let used: Vec<String> = crate::claims::used_by(&pod.pod)
                .into_iter()
                .map(|(_, claim)| claim)
                .collect();
            pod.claims.retain(|name, _| used.contains(name));
            // A CronJob's pods are named when its Jobs make them.
            if !matches!(pod.controller, manifest::Controller::CronJob(_)) {
                pod = pod.renamed(&manifest::seeded_suffix(&hash));
            }
            let objects = content_hash(&pod.objects.to_json().unwrap_or_default());
            Read::Valid {
                name: key(&pod),
                pod: Box::new(pod),
                hash,
                objects,
            }
        }
    }
}

/// What a CronJob's key starts with: `cronjob/<name>` (a pod name has no `/`).
pub const CRON_JOB_KEY: &str = "cronjob/";

/// What names a file's workload among the dir's: its pod's name, or `cronjob/<name>` for
/// a CronJob, so that its changes are ordered like a pod's.
pub fn key(pod: &RunnablePod) -> String {
    match &pod.controller {
        manifest::Controller::CronJob(c) => format!("{CRON_JOB_KEY}{}", c.name),
        // Validation refuses a pod without a name.
        _ => pod.pod.metadata.name.clone().unwrap_or_default(),
    }
}

/// The identity of a file's pod: its own document (the template and what made it), not
/// the objects beside it.
fn workload_hash(pod: &RunnablePod) -> String {
    let template = serde_json::to_string(&pod.template).unwrap_or_default();
    content_hash(format!("{template}{:?}", pod.controller).as_bytes())
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
                Change::Replace {
                    file,
                    pod,
                    previous,
                    ..
                } => match previous {
                    Some(old) => format!("replace {old} by {} {}", name(pod), base(file)),
                    None => format!("replace {} {}", name(pod), base(file)),
                },
                Change::Remove { name } => format!("remove {name}"),
                Change::Objects { pod } => format!("objects {}", name(pod)),
                Change::Invalid { file, .. } => format!("invalid {}", base(file)),
            })
            .collect()
    }

    #[test]
    fn config_maps_in_the_dir_are_shared_and_their_changes_reach_running_pods() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let cm = |value: &str| {
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{level: {value}}}\n")
        };
        let web = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  volumes: [{name: c, configMap: {name: cfg}}]\n  containers: [{name: app, image: busybox, volumeMounts: [{name: c, mountPath: /c}]}]\n";
        write(dir, "cfg.yaml", &cm("info"));
        write(dir, "web.yaml", web);
        let mut w = Watcher::new(dir.to_owned(), BTreeMap::new());
        let changes = w.poll();
        assert_eq!(summary(&changes), ["start web web.yaml"]);
        let Change::Start { pod, .. } = &changes[0] else {
            unreachable!()
        };
        assert!(pod.objects.config_maps.contains_key("cfg"));
        assert!(w.poll().is_empty());
        // The ConfigMap changes: the pod is not restarted, its objects are handed over.
        write(dir, "cfg.yaml", &cm("debug"));
        let changes = w.poll();
        assert_eq!(summary(&changes), ["objects web"]);
        let Change::Objects { pod } = &changes[0] else {
            unreachable!()
        };
        let data = pod.objects.config_maps["cfg"].data.clone().unwrap();
        assert_eq!(data["level"], "debug");
        assert!(w.poll().is_empty());
        // The ConfigMap goes: the pod's file is now invalid, the running pod stays.
        std::fs::remove_file(dir.join("cfg.yaml")).unwrap();
        let changes = w.poll();
        assert_eq!(summary(&changes), ["invalid web.yaml"]);
        assert!(error_of(&changes).contains("configmaps \"cfg\" not found"));
        // A ConfigMap beside its pod in one file: editing it is an objects change too.
        std::fs::remove_file(dir.join("web.yaml")).unwrap();
        write(dir, "both.yaml", &format!("{}---\n{web}", cm("one")));
        assert_eq!(summary(&w.poll()), ["objects web"]);
        write(dir, "both.yaml", &format!("{}---\n{web}", cm("two")));
        assert_eq!(summary(&w.poll()), ["objects web"]);
        std::fs::remove_file(dir.join("both.yaml")).unwrap();
        assert_eq!(summary(&w.poll()), ["remove web"]);
        // Two files defining one ConfigMap: the second is reported.
        write(dir, "a.yaml", &cm("a"));
        write(dir, "b.yaml", &cm("b"));
        let changes = w.poll();
        let text = summary(&changes).join(" ");
        assert!(text.contains("invalid b.yaml"), "{text}");
    }

    #[test]
    fn an_edited_workload_replaces_its_pod_under_a_new_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let deployment = |image: &str| {
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: app, image: {image}}}]}}\n")
        };
        write(dir, "web.yaml", &deployment("busybox:1.35"));
        let mut w = Watcher::new(dir.to_owned(), BTreeMap::new());
        let first = summary(&w.poll());
        assert_eq!(first.len(), 1);
        let old = first[0].split(' ').nth(1).unwrap().to_owned();
        assert!(old.starts_with("web-"), "{old}");
        // The same content keeps the name at every poll.
        assert!(w.poll().is_empty());
        write(dir, "web.yaml", &deployment("busybox:1.36"));
        let second = summary(&w.poll());
        assert_eq!(second.len(), 1, "{second:?}");
        assert!(
            second[0].starts_with(&format!("replace {old} by web-")),
            "{second:?}"
        );
        assert!(!second[0].contains(&format!("by {old} ")), "{second:?}");
    }

    /// The hash the watcher gives the pod of `text`.
    fn hash_of(text: &str) -> String {
        workload_hash(&manifest::parse_valid(text, "t.yaml").unwrap())
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
        assert_eq!(hash, &hash_of(&pod("alpha", "busybox:1.36")));
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
        assert_eq!(summary(&w.poll()), ["replace alpha by omega a.yaml"]);
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
    fn a_known_cron_job_whose_file_is_invalid_is_kept_then_resumed() {
        let d = tempfile::tempdir().unwrap();
        let cron = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: tick}\nspec:\n  schedule: \"* * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: t, image: busybox}]\n";
        // Invalid at the first poll after a restart (a bad schedule written meanwhile).
        write(
            d.path(),
            "tick.yaml",
            &cron.replace("* * * * *", "61 * * * *"),
        );
        let known = BTreeMap::from([("cronjob/tick".to_owned(), String::new())]);
        let files = BTreeMap::from([("cronjob/tick".to_owned(), d.path().join("tick.yaml"))]);
        let mut w = Watcher::new(d.path().to_owned(), known).with_files(files);
        let changes = w.poll();
        assert!(
            error_of(&changes).contains("spec.schedule"),
            "{}",
            error_of(&changes)
        );
        // Fixed: its schedule resumes (a replace of the recorded CronJob, not a new one).
        write(d.path(), "tick.yaml", cron);
        match &w.poll()[..] {
            [Change::Replace {
                pod,
                previous: None,
                ..
            }] => assert_eq!(key(pod), "cronjob/tick"),
            other => panic!("{:?}", summary(other)),
        }
        // Without the file known, the invalid file would remove it.
        write(
            d.path(),
            "tick.yaml",
            &cron.replace("* * * * *", "61 * * * *"),
        );
        let known = BTreeMap::from([("cronjob/tick".to_owned(), String::new())]);
        let mut w = Watcher::new(d.path().to_owned(), known);
        let changes = w.poll();
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, Change::Remove { name } if name == "cronjob/tick")),
            "{:?}",
            summary(&changes)
        );
    }

    #[test]
    fn the_first_poll_compares_with_known_pods() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "same.yaml", &pod("same", "busybox"));
        write(d.path(), "changed.yaml", &pod("changed", "busybox:1.36"));
        write(d.path(), "new.yaml", &pod("new", "busybox"));
        let known = BTreeMap::from([
            ("same".to_owned(), hash_of(&pod("same", "busybox"))),
            ("changed".to_owned(), hash_of(&pod("changed", "busybox"))),
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
