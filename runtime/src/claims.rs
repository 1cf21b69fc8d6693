//! PersistentVolumeClaims backed by local directories: what a pod's `persistentVolumeClaim`
//! volume mounts. A claim outlives the pods using it, as in a cluster, and goes only with
//! [`Store::remove`] (`podctl volume rm`), refused while a pod record names it, as
//! Kubernetes' PVC protection keeps a claim any pod object still uses.
//!
//! ```text
//! <root>/<namespace>/claims/.lock                 flock: admissions touching claims, removals
//! <root>/<namespace>/claims/.admitting/<pod>.<uid>.json
//!                                                 a pod being admitted with claims, until its
//!                                                 own record (pod.json) names them
//! <root>/<namespace>/claims/<name>/claim.json     the claim as Kubernetes shows a bound one
//! <root>/<namespace>/claims/<name>/data/          what pods mount (0777, as an emptyDir)
//! ```
//!
//! A claim is made in a hidden directory and renamed into place, and removed by a rename out
//! of the way first, so that a crash never leaves half a claim under its name. Its requested
//! storage is recorded as its capacity, not enforced: a directory has no size of its own.

use std::collections::BTreeMap;
use std::fs::{File, Permissions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimStatus, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::pods::{self, PodsError, Supervisor};

/// The finalizer the API server's PVC protection puts on every claim.
pub const PROTECTION_FINALIZER: &str = "kubernetes.io/pvc-protection";

const CLAIM_FILE: &str = "claim.json";
const DATA_DIR: &str = "data";
const LOCK_FILE: &str = ".lock";
const ADMITTING_DIR: &str = ".admitting";
/// The volume mode the API server defaults a claim to.
const FILESYSTEM: &str = "Filesystem";
const READ_WRITE_ONCE_POD: &str = "ReadWriteOncePod";

/// Errors of the claim store.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("persistentvolumeclaim {name:?} not found")]
    NotFound { name: String },
    /// persistentVolumeClaim volumes naming claims neither given with the pod nor on this
    /// host.
    #[error("{}", missing_text(.missing))]
    Missing { missing: Vec<MissingClaim> },
    /// A field the API server keeps as it was when the claim was created.
    #[error(
        "PersistentVolumeClaim {name:?} is invalid: {field}: Forbidden: spec is immutable after \
         creation except resources.requests.storage, which may grow (it is {was}, the manifest \
         says {now}); to change it, remove the claim and its data first with `podctl volume rm {name}`"
    )]
    Immutable {
        name: String,
        field: &'static str,
        was: String,
        now: String,
    },
    #[error(
        "PersistentVolumeClaim {name:?} is invalid: spec.resources.requests.storage: Forbidden: \
         field can not be less than previous value (it is {was}, the manifest says {now})"
    )]
    Shrunk {
        name: String,
        was: String,
        now: String,
    },
    /// PVC protection: pods on this host (running or finished, not removed) name the claim.
    #[error(
        "persistentvolumeclaim {name:?} is in use by {}: remove {} first with `podctl rm {}` \
         (`podctl stop` a pod that still runs)",
        quoted_pods(.pods),
        if .pods.len() == 1 { "it" } else { "them" },
        .pods.join(" ")
    )]
    InUse { name: String, pods: Vec<String> },
    /// The claim's ReadWriteOncePod access mode lets one pod at a time use it.
    #[error(
        "pod {pod:?} cannot use persistentvolumeclaim {name:?}: pod {other:?} uses it on this \
         host, and its ReadWriteOncePod access mode allows one pod at a time (node has pod using \
         PersistentVolumeClaim with the same name and ReadWriteOncePod access mode); wait for \
         {other:?} to finish, or stop it with `podctl stop {other}`"
    )]
    ReadWriteOncePod {
        name: String,
        pod: String,
        other: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a record podctl wrote: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// Reading the pods' records (boxed: its errors are large, and rare here).
    #[error(transparent)]
    Pods(Box<PodsError>),
}

impl From<PodsError> for ClaimError {
    fn from(e: PodsError) -> Self {
        ClaimError::Pods(Box::new(e))
    }
}

/// A persistentVolumeClaim volume whose claim does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingClaim {
    /// The field naming it: `spec.volumes[0].persistentVolumeClaim.claimName`.
    pub path: String,
    pub claim: String,
}

/// Each missing claim with the field naming it, and where claims come from.
pub(crate) fn missing_text(missing: &[MissingClaim]) -> String {
    let each: Vec<String> = missing
        .iter()
        .map(|m| format!("{}: persistentvolumeclaim {:?} not found", m.path, m.claim))
        .collect();
    format!(
        "{} (give the PersistentVolumeClaim in the pod's file; `podctl volume ls` lists the \
         claims on this host)",
        each.join("; ")
    )
}

fn quoted_pods(pods: &[String]) -> String {
    let names: Vec<String> = pods.iter().map(|p| format!("{p:?}")).collect();
    match names.as_slice() {
        [one] => format!("pod {one}"),
        _ => format!("pods {}", names.join(", ")),
    }
}

/// One claim on this host.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The claim as `kubectl get pvc -o json` shows a bound one: the spec given, the
    /// metadata the API server adds (namespace, uid, creationTimestamp, the protection
    /// finalizer) and a `status` of phase `Bound` with the access modes and capacity.
    pub pvc: PersistentVolumeClaim,
    /// The host directory pods mount.
    pub data: PathBuf,
}

impl Claim {
    pub fn name(&self) -> &str {
        self.pvc.metadata.name.as_deref().unwrap_or_default()
    }

    /// `spec.accessModes`.
    pub fn access_modes(&self) -> &[String] {
        access_modes(&self.pvc)
    }

    /// The capacity: the storage requested, the latest growth included.
    pub fn capacity(&self) -> Option<&Quantity> {
        self.pvc
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage"))
            .or_else(|| requested_storage(&self.pvc))
    }

    /// `metadata.creationTimestamp`.
    pub fn created(&self) -> Option<SystemTime> {
        let t = self.pvc.metadata.creation_timestamp.as_ref()?;
        let seconds = u64::try_from(t.0.as_second()).ok()?;
        Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
    }
}

/// How [`Store::ensure`] found the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    /// It existed with the same spec (labels and annotations are taken from the manifest).
    Unchanged,
    /// It existed; its storage request grew and was recorded.
    Grown,
}

/// A pod naming a claim in one of its volumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimUser {
    pub pod: String,
    /// The pod ended (phase Succeeded or Failed): it keeps the claim from removal until
    /// `podctl rm`, but no longer holds a ReadWriteOncePod claim.
    pub finished: bool,
}

/// The claims of one podctl namespace: `<root>/<namespace>/claims`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    namespace: String,
}

/// The data dir of claim `name` in the claims dir `claims_dir` ([`Store::dir`]).
pub fn data_dir(claims_dir: &Path, name: &str) -> PathBuf {
    claims_dir.join(name).join(DATA_DIR)
}

/// The claims `pod`'s volumes name, each with the field naming it, in the manifest's order.
pub fn used_by(pod: &Pod) -> Vec<(String, String)> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .enumerate()
        .filter_map(|(i, v)| {
            let claim = v.persistent_volume_claim.as_ref()?;
            Some((
                format!("spec.volumes[{i}].persistentVolumeClaim.claimName"),
                claim.claim_name.clone(),
            ))
        })
        .collect()
}

impl Store {
    pub fn new(root: &Path, namespace: &str) -> Self {
        Self {
            root: root.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    /// `<root>/<namespace>/claims`.
    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.namespace).join("claims")
    }

    /// Creates the claim `pvc` (validated) describes, or updates the one of that name: its
    /// data is kept, and its spec may only grow `resources.requests.storage` (the API
    /// server's rule); any other change is refused naming the field.
    pub fn ensure(&self, pvc: &PersistentVolumeClaim) -> Result<(Claim, Ensured), ClaimError> {
        let _lock = self.lock()?;
        let name = pvc.metadata.name.clone().unwrap_or_default();
        let existing = self.read(&name)?;
        let change = match &existing {
            Some(old) => compare(old, pvc)?,
            None => Ensured::Created,
        };
        self.write(pvc, existing.as_ref(), change)
            .map(|claim| (claim, change))
    }

    /// Claim `name`.
    pub fn get(&self, name: &str) -> Result<Claim, ClaimError> {
        self.read(name)?.ok_or_else(|| ClaimError::NotFound {
            name: name.to_owned(),
        })
    }

    /// Every claim, by name. One whose record cannot be read is left out with a warning,
    /// so that it does not hide the others.
    pub fn list(&self) -> Result<Vec<Claim>, ClaimError> {
        let dir = self.dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ClaimError::Io { path: dir, source }),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_claim_name(n))
            .collect();
        names.sort();
        Ok(names
            .iter()
            .filter_map(|n| match self.read(n) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(claim = %n, error = %e, "skipping a claim record");
                    None
                }
            })
            .collect())
    }

    /// Removes claim `name` and its data; refused while a pod recorded on this host names
    /// it (running or finished: until `podctl rm`) or is being admitted with it.
    pub fn remove(&self, name: &str) -> Result<(), ClaimError> {
        let not_found = || ClaimError::NotFound {
            name: name.to_owned(),
        };
        // Before the lock, which would make the claims dir of a store that has none.
        if self.read(name)?.is_none() {
            return Err(not_found());
        }
        let _lock = self.lock()?;
        if self.read(name)?.is_none() {
            return Err(not_found());
        }
        let pods: Vec<String> = self.users(name, None)?.into_iter().map(|u| u.pod).collect();
        if !pods.is_empty() {
            return Err(ClaimError::InUse {
                name: name.to_owned(),
                pods,
            });
        }
        self.delete(name)
    }

    /// The pods naming claim `name` in a volume: the pods recorded on this host, and those
    /// being admitted with it.
    pub fn users_of(&self, name: &str) -> Result<Vec<ClaimUser>, ClaimError> {
        self.users(name, None)
    }

    /// The pods naming each claim, by claim (see [`Store::users_of`]).
    pub fn all_users(&self) -> Result<BTreeMap<String, Vec<ClaimUser>>, ClaimError> {
        self.usage(None)
    }

    /// Admits pod `pod` (its uid assigned) as far as claims go, under the store's lock:
    /// every claim its volumes name must be in `given` or on this host; a ReadWriteOncePod
    /// claim must not be used by another pod that has not finished; then every claim of
    /// `given` is created or updated (see [`Store::ensure`]), as `kubectl apply` creates
    /// every object of a file. Nothing is created when a check fails.
    ///
    /// Until the pod's own record names its claims, the returned [`Admission`] does, for
    /// the checks of other admissions: [`Admission::commit`] once `pod.json` is written,
    /// [`Admission::rollback`] when the pod is not admitted after all. Blocking.
    pub fn admit(
        &self,
        pod: &Pod,
        given: &BTreeMap<String, PersistentVolumeClaim>,
    ) -> Result<Admission, ClaimError> {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let used = used_by(pod);
        let mut admission = Admission {
            store: self.clone(),
            pod: pod_name.clone(),
            created: Vec::new(),
            reservation: None,
            settled: true,
        };
        if used.is_empty() && given.is_empty() {
            return Ok(admission);
        }
        let _lock = self.lock()?;
        // Every check before anything is written.
        let mut plan = Vec::new();
        for (name, pvc) in given {
            let existing = self.read(name)?;
            let change = match &existing {
                Some(old) => compare(old, pvc)?,
                None => Ensured::Created,
            };
            plan.push((pvc, existing, change));
        }
        let mut missing = Vec::new();
        let mut modes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (path, claim) in &used {
            if let Some(pvc) = given.get(claim) {
                modes.insert(claim, access_modes(pvc).to_vec());
            } else if let Some(existing) = self.read(claim)? {
                modes.insert(claim, existing.access_modes().to_vec());
            } else {
                missing.push(MissingClaim {
                    path: path.clone(),
                    claim: claim.clone(),
                });
            }
        }
        if !missing.is_empty() {
            return Err(ClaimError::Missing { missing });
        }
        let exclusive: Vec<&str> = modes
            .iter()
            .filter(|(_, m)| m.iter().any(|m| m == READ_WRITE_ONCE_POD))
            .map(|(c, _)| *c)
            .collect();
        if !exclusive.is_empty() {
            let users = self.usage(Some(&pod_name))?;
            for claim in exclusive {
                let other = users
                    .get(claim)
                    .and_then(|u| u.iter().find(|u| !u.finished));
                if let Some(other) = other {
                    return Err(ClaimError::ReadWriteOncePod {
                        name: claim.to_owned(),
                        pod: pod_name,
                        other: other.pod.clone(),
                    });
                }
            }
        }

        // A failure midway takes back what this admission created (the lock is held: no
        // other pod can have started using it).
        let undo = |created: &[String], error: ClaimError| -> ClaimError {
            for name in created {
                if let Err(e) = self.delete(name) {
                    tracing::warn!(claim = %name, error = %e, "removing a claim just created");
                }
            }
            error
        };
        for (pvc, existing, change) in plan {
            if let Err(e) = self.write(pvc, existing.as_ref(), change) {
                return Err(undo(&admission.created, e));
            }
            if change == Ensured::Created {
                admission
                    .created
                    .push(pvc.metadata.name.clone().unwrap_or_default());
            }
        }
        if !used.is_empty() {
            let uid = pod.metadata.uid.as_deref().unwrap_or("no-uid");
            let path = self
                .dir()
                .join(ADMITTING_DIR)
                .join(format!("{pod_name}.{uid}.json"));
            let reservation = Reservation {
                pod: pod_name,
                claims: used.into_iter().map(|(_, c)| c).collect(),
                supervisor: Supervisor::current(),
            };
            let written = make_dir(&self.dir().join(ADMITTING_DIR), 0o700)
                .and_then(|()| write_json(&path, &reservation));
            if let Err(e) = written {
                return Err(undo(&admission.created, e));
            }
            admission.reservation = Some(path);
        }
        admission.settled = false;
        Ok(admission)
    }

    fn claim_dir(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Claim `name`, `None` when there is none (or the name cannot be one).
    fn read(&self, name: &str) -> Result<Option<Claim>, ClaimError> {
        if !is_claim_name(name) {
            return Ok(None);
        }
        let path = self.claim_dir(name).join(CLAIM_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ClaimError::Io { path, source }),
        };
        let pvc = serde_json::from_slice(&bytes).map_err(|source| ClaimError::Corrupt {
            path: path.clone(),
            source,
        })?;
        Ok(Some(Claim {
            pvc,
            data: data_dir(&self.dir(), name),
        }))
    }

    /// Writes the record of `pvc` (and makes its data dir when `change` is `Created`).
    fn write(
        &self,
        pvc: &PersistentVolumeClaim,
        existing: Option<&Claim>,
        change: Ensured,
    ) -> Result<Claim, ClaimError> {
        let name = pvc.metadata.name.clone().unwrap_or_default();
        match (existing, change) {
            (Some(old), Ensured::Unchanged | Ensured::Grown) => {
                let record = updated(&old.pvc, pvc);
                write_json(&self.claim_dir(&name).join(CLAIM_FILE), &record)?;
                Ok(Claim {
                    pvc: record,
                    data: old.data.clone(),
                })
            }
            _ => {
                let record = created(pvc, &self.namespace);
                self.create(&name, &record)?;
                Ok(Claim {
                    pvc: record,
                    data: data_dir(&self.dir(), &name),
                })
            }
        }
    }

    /// Makes claim `name` in a hidden dir, then renames it into place.
    fn create(&self, name: &str, record: &PersistentVolumeClaim) -> Result<(), ClaimError> {
        let dir = self.dir();
        make_dir(&dir, 0o711)?;
        let tmp = dir.join(format!(".new-{name}-{:016x}", rand::random::<u64>()));
        let made = make_dir(&tmp, 0o711)
            .and_then(|()| make_dir(&tmp.join(DATA_DIR), 0o777))
            .and_then(|()| write_json(&tmp.join(CLAIM_FILE), record))
            .and_then(|()| {
                let target = self.claim_dir(name);
                std::fs::rename(&tmp, &target).map_err(|source| ClaimError::Io {
                    path: target,
                    source,
                })
            });
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        made
    }

    /// Removes claim `name`: renamed out of the way, then deleted.
    fn delete(&self, name: &str) -> Result<(), ClaimError> {
        let dir = self.claim_dir(name);
        let doomed = self
            .dir()
            .join(format!(".removing-{name}-{:016x}", rand::random::<u64>()));
        std::fs::rename(&dir, &doomed).map_err(|source| ClaimError::Io {
            path: dir.clone(),
            source,
        })?;
        std::fs::remove_dir_all(&doomed).map_err(|source| ClaimError::Io {
            path: doomed,
            source,
        })
    }

    /// The users of claim `name` but pod `except`.
    fn users(&self, name: &str, except: Option<&str>) -> Result<Vec<ClaimUser>, ClaimError> {
        Ok(self.usage(except)?.remove(name).unwrap_or_default())
    }

    /// The pods naming each claim but pod `except`: from the pods' records, and from the
    /// admissions under way whose process still runs.
    fn usage(&self, except: Option<&str>) -> Result<BTreeMap<String, Vec<ClaimUser>>, ClaimError> {
        let mut usage: BTreeMap<String, Vec<ClaimUser>> = BTreeMap::new();
        let mut add = |claim: String, user: ClaimUser| {
            let users = usage.entry(claim).or_default();
            if !users.iter().any(|u| u.pod == user.pod) {
                users.push(user);
            }
        };
        for record in pods::list(&self.root, &self.namespace)? {
            if Some(record.name.as_str()) == except {
                continue;
            }
            let Some(pod) = &record.pod else { continue };
            let finished = record
                .status
                .as_ref()
                .is_some_and(|s| s.phase.is_terminal());
            for (_, claim) in used_by(pod) {
                add(
                    claim,
                    ClaimUser {
                        pod: record.name.clone(),
                        finished,
                    },
                );
            }
        }
        for reservation in self.reservations()? {
            if Some(reservation.pod.as_str()) == except {
                continue;
            }
            for claim in reservation.claims {
                add(
                    claim,
                    ClaimUser {
                        pod: reservation.pod.clone(),
                        finished: false,
                    },
                );
            }
        }
        Ok(usage)
    }

    /// The admissions under way; those of a process that is gone (a crash midway) are
    /// dropped.
    fn reservations(&self) -> Result<Vec<Reservation>, ClaimError> {
        let dir = self.dir().join(ADMITTING_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ClaimError::Io { path: dir, source }),
        };
        let mut live = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let reservation: Option<Reservation> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match reservation {
                Some(r) if r.supervisor.as_ref().is_none_or(Supervisor::is_alive) => live.push(r),
                _ => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        Ok(live)
    }

    /// The store's lock: admissions touching claims, and removals, one at a time.
    fn lock(&self) -> Result<Flock<File>, ClaimError> {
        let dir = self.dir();
        make_dir(&dir, 0o711)?;
        let path = dir.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| ClaimError::Io {
                path: path.clone(),
                source,
            })?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| ClaimError::Io {
            path,
            source: e.into(),
        })
    }
}

/// What an admission holds until the pod's record names its claims (see [`Store::admit`]).
/// Dropped unsettled (the admitting task was cancelled), it rolls back.
#[must_use = "commit or roll back the admission"]
#[derive(Debug)]
pub struct Admission {
    store: Store,
    pod: String,
    created: Vec<String>,
    reservation: Option<PathBuf>,
    settled: bool,
}

impl Admission {
    /// The claims this admission created.
    pub fn created(&self) -> &[String] {
        &self.created
    }

    /// The pod is recorded (its `pod.json` names its claims): the admission's own record
    /// goes.
    pub fn commit(mut self) {
        self.settled = true;
        self.drop_reservation();
    }

    /// The pod was not admitted: the claims this admission created go, unless another pod
    /// took them up meanwhile (they are empty otherwise: no container of this pod ran).
    /// Blocking.
    pub fn rollback(mut self) -> Result<(), ClaimError> {
        self.settled = true;
        self.undo()
    }

    fn undo(&mut self) -> Result<(), ClaimError> {
        let result = if self.created.is_empty() {
            Ok(())
        } else {
            self.store.lock().and_then(|_lock| {
                for name in &self.created {
                    if self.store.users(name, Some(&self.pod))?.is_empty() {
                        self.store.delete(name)?;
                    }
                }
                Ok(())
            })
        };
        self.drop_reservation();
        result
    }

    fn drop_reservation(&mut self) {
        if let Some(path) = self.reservation.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.settled {
            if let Err(e) = self.undo() {
                tracing::warn!(pod = %self.pod, error = %e, "rolling back the pod's claims");
            }
        }
    }
}

/// A pod being admitted with claims, on disk for the checks of other processes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reservation {
    pod: String,
    claims: Vec<String>,
    /// The admitting process; `None` when it could not be told (counted as alive).
    supervisor: Option<Supervisor>,
}

/// How the manifest's `given` changes the recorded claim `old`: the API server's
/// immutability rule for a bound claim.
fn compare(old: &Claim, given: &PersistentVolumeClaim) -> Result<Ensured, ClaimError> {
    let name = old.name().to_owned();
    let immutable = |field, was: String, now: String| ClaimError::Immutable {
        name: name.clone(),
        field,
        was,
        now,
    };
    let sorted = |p: &PersistentVolumeClaim| {
        let mut m = access_modes(p).to_vec();
        m.sort();
        m.dedup();
        m
    };
    if sorted(&old.pvc) != sorted(given) {
        return Err(immutable(
            "spec.accessModes",
            format!("{:?}", access_modes(&old.pvc)),
            format!("{:?}", access_modes(given)),
        ));
    }
    let class =
        |p: &PersistentVolumeClaim| p.spec.as_ref().and_then(|s| s.storage_class_name.clone());
    if class(&old.pvc) != class(given) {
        let show = |c: Option<String>| c.map_or_else(|| "unset".to_owned(), |c| format!("{c:?}"));
        return Err(immutable(
            "spec.storageClassName",
            show(class(&old.pvc)),
            show(class(given)),
        ));
    }
    let mode = |p: &PersistentVolumeClaim| {
        p.spec
            .as_ref()
            .and_then(|s| s.volume_mode.clone())
            .unwrap_or_else(|| FILESYSTEM.to_owned())
    };
    if mode(&old.pvc) != mode(given) {
        return Err(immutable("spec.volumeMode", mode(&old.pvc), mode(given)));
    }
    let bytes = |q: Option<&Quantity>| q.and_then(|q| crate::manifest::quantity_bytes(q).ok());
    let (was, now) = (requested_storage(&old.pvc), requested_storage(given));
    match (bytes(was), bytes(now)) {
        (Some(w), Some(n)) if n < w => Err(ClaimError::Shrunk {
            name,
            was: was.map(|q| q.0.clone()).unwrap_or_default(),
            now: now.map(|q| q.0.clone()).unwrap_or_default(),
        }),
        (Some(w), Some(n)) if n > w => Ok(Ensured::Grown),
        _ => Ok(Ensured::Unchanged),
    }
}

/// The record of a new claim: as given, with what the API server and a binding add.
fn created(given: &PersistentVolumeClaim, namespace: &str) -> PersistentVolumeClaim {
    let mut pvc = given.clone();
    let meta = &mut pvc.metadata;
    meta.namespace = Some(namespace.to_owned());
    meta.uid = Some(crate::lifecycle::new_uid());
    meta.creation_timestamp = Some(now());
    meta.finalizers = Some(vec![PROTECTION_FINALIZER.to_owned()]);
    // What a manifest exported from a cluster carries of the cluster's own bookkeeping.
    meta.resource_version = None;
    meta.generation = None;
    meta.managed_fields = None;
    meta.self_link = None;
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    meta.owner_references = None;
    let spec = pvc.spec.get_or_insert_with(Default::default);
    spec.volume_mode
        .get_or_insert_with(|| FILESYSTEM.to_owned());
    pvc.status = Some(bound_status(&pvc));
    pvc
}

/// The record `old` updated by the manifest's `given` (checked by [`compare`]): its labels
/// and annotations, and a grown storage request, which becomes the capacity at once.
fn updated(old: &PersistentVolumeClaim, given: &PersistentVolumeClaim) -> PersistentVolumeClaim {
    let mut pvc = old.clone();
    pvc.metadata.labels = given.metadata.labels.clone();
    pvc.metadata.annotations = given.metadata.annotations.clone();
    let grown = matches!(
        (requested_storage(old), requested_storage(given)),
        (Some(w), Some(n)) if crate::manifest::quantity_bytes(n).ok() > crate::manifest::quantity_bytes(w).ok()
    );
    if grown {
        let spec = pvc.spec.get_or_insert_with(Default::default);
        spec.resources = given.spec.as_ref().and_then(|s| s.resources.clone());
        pvc.status = Some(bound_status(&pvc));
    }
    pvc
}

/// The status of a bound claim: its access modes, and its request as its capacity.
fn bound_status(pvc: &PersistentVolumeClaim) -> PersistentVolumeClaimStatus {
    PersistentVolumeClaimStatus {
        phase: Some("Bound".to_owned()),
        access_modes: Some(access_modes(pvc).to_vec()),
        capacity: requested_storage(pvc)
            .map(|q| BTreeMap::from([("storage".to_owned(), q.clone())])),
        ..Default::default()
    }
}

fn access_modes(pvc: &PersistentVolumeClaim) -> &[String] {
    pvc.spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
}

fn requested_storage(pvc: &PersistentVolumeClaim) -> Option<&Quantity> {
    pvc.spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

/// Now, to the second, as the API server stamps objects.
fn now() -> Time {
    let seconds = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let seconds = i64::try_from(seconds).unwrap_or(0);
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or_default())
}

/// Whether `name` can be a claim's: a DNS-1123 subdomain, as the API server requires. What
/// is not one is never a path below the store (no `.`, `..` or `/`).
pub fn is_claim_name(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.starts_with(alnum)
                && label.ends_with(alnum)
                && label.chars().all(|c| alnum(c) || c == '-')
        })
}

/// The bytes the files under `path` take on disk, as `du` counts them: each inode once,
/// other filesystems mounted below not entered.
pub fn used_bytes(path: &Path) -> Result<u64, ClaimError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ClaimError::Io { path, source }
    };
    let root = std::fs::symlink_metadata(path).map_err(io(path))?;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut pending = vec![(path.to_owned(), root.clone())];
    while let Some((p, meta)) = pending.pop() {
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total += meta.blocks() * 512;
        if meta.is_dir() && meta.dev() == root.dev() {
            for entry in std::fs::read_dir(&p).map_err(io(&p))? {
                let entry = entry.map_err(io(&p))?;
                let child = entry.path();
                let meta = std::fs::symlink_metadata(&child).map_err(io(&child))?;
                pending.push((child, meta));
            }
        }
    }
    Ok(total)
}

fn make_dir(path: &Path, mode: u32) -> Result<(), ClaimError> {
    let io = |source| ClaimError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
    {
        Ok(()) => {}
        Err(e) => return Err(io(e)),
    }
    // The umask cut what a 0777 data dir must give every user, as an emptyDir does.
    if mode == 0o777 {
        std::fs::set_permissions(path, Permissions::from_mode(mode)).map_err(io)?;
    }
    Ok(())
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ClaimError> {
    pods::write_json(path, value).map_err(|source| ClaimError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(name: &str, modes: &[&str], storage: &str) -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "labels": {"app": "db"}},
            "spec": {"accessModes": modes, "resources": {"requests": {"storage": storage}}},
        }))
        .unwrap()
    }

    fn pod(name: &str, claims: &[&str]) -> Pod {
        let volumes: Vec<_> = claims
            .iter()
            .enumerate()
            .map(|(i, c)| serde_json::json!({"name": format!("v{i}"), "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "uid": format!("uid-{name}")},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "volumes": volumes},
        }))
        .unwrap()
    }

    /// Records `pod` on the host as `lifecycle` does; `phase`: its status.
    fn record(root: &Path, pod: &Pod, phase: Option<&str>) {
        let dir = pods::pods_dir(root, "ns").join(pod.metadata.name.as_deref().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        pods::write_json(&dir.join(pods::files::MANIFEST), pod).unwrap();
        if let Some(phase) = phase {
            let status = serde_json::json!({"phase": phase, "conditions": [],
                "initContainerStatuses": [], "containerStatuses": []});
            pods::write_json(&dir.join(pods::files::STATUS), &status).unwrap();
        }
    }

    fn names(store: &Store) -> Vec<String> {
        store
            .list()
            .unwrap()
            .iter()
            .map(|c| c.name().to_owned())
            .collect()
    }

    #[test]
    fn a_claim_is_created_once_and_keeps_its_data() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path(), "ns");
        let given = claim("data", &["ReadWriteOnce"], "1Gi");
        let (made, how) = store.ensure(&given).unwrap();
        assert_eq!(how, Ensured::Created);
        assert_eq!(made.data, root.path().join("ns/claims/data/data"));
        let mode = std::fs::metadata(&made.data).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o777);
        std::fs::write(made.data.join("kept"), "yes").unwrap();

        let record: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.path().join("ns/claims/data/claim.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(record["kind"], "PersistentVolumeClaim");
        assert_eq!(record["metadata"]["namespace"], "ns");
        assert_eq!(record["metadata"]["finalizers"][0], PROTECTION_FINALIZER);
        assert!(record["metadata"]["uid"].as_str().unwrap().len() == 36);
        assert!(record["metadata"]["creationTimestamp"].is_string());
        assert_eq!(record["spec"]["volumeMode"], "Filesystem");
        assert_eq!(record["status"]["phase"], "Bound");
        assert_eq!(record["status"]["accessModes"][0], "ReadWriteOnce");
        assert_eq!(record["status"]["capacity"]["storage"], "1Gi");

        let (again, how) = store.ensure(&given).unwrap();
        assert_eq!(how, Ensured::Unchanged);
        assert_eq!(again.pvc.metadata.uid, made.pvc.metadata.uid);
        assert_eq!(
            std::fs::read_to_string(again.data.join("kept")).unwrap(),
            "yes"
        );
        let got = store.get("data").unwrap();
        assert_eq!(got.capacity().unwrap().0, "1Gi");
        assert_eq!(got.access_modes(), ["ReadWriteOnce"]);
        assert!(got.created().is_some());
        assert!(matches!(
            store.get("other"),
            Err(ClaimError::NotFound { name }) if name == "other"
        ));
        // A name that cannot be a claim's is no path below the store.
        assert!(matches!(store.get(".."), Err(ClaimError::NotFound { .. })));
        assert!(matches!(store.get("a/b"), Err(ClaimError::NotFound { .. })));
    }

    #[test]
    fn specs_are_immutable_but_storage_may_grow() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path(), "ns");
        store
            .ensure(&claim("data", &["ReadWriteOnce"], "1Gi"))
            .unwrap();

        let err = store
            .ensure(&claim("data", &["ReadWriteOncePod"], "1Gi"))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("PersistentVolumeClaim \"data\" is invalid: spec.accessModes: Forbidden: spec is immutable"),
            "{text}"
        );
        assert!(
            text.contains("[\"ReadWriteOnce\"]") && text.contains("[\"ReadWriteOncePod\"]"),
            "{text}"
        );

        let mut classed = claim("data", &["ReadWriteOnce"], "1Gi");
        classed.spec.as_mut().unwrap().storage_class_name = Some("fast".into());
        let err = store.ensure(&classed).unwrap_err();
        assert!(
            matches!(
                err,
                ClaimError::Immutable {
                    field: "spec.storageClassName",
                    ..
                }
            ),
            "{err}"
        );

        let mut block = claim("data", &["ReadWriteOnce"], "1Gi");
        block.spec.as_mut().unwrap().volume_mode = Some("Block".into());
        let err = store.ensure(&block).unwrap_err();
        assert!(
            matches!(
                err,
                ClaimError::Immutable {
                    field: "spec.volumeMode",
                    ..
                }
            ),
            "{err}"
        );
        // Filesystem is the default: saying so changes nothing.
        let mut explicit = claim("data", &["ReadWriteOnce"], "1024Mi");
        explicit.spec.as_mut().unwrap().volume_mode = Some("Filesystem".into());
        assert_eq!(store.ensure(&explicit).unwrap().1, Ensured::Unchanged);

        let err = store
            .ensure(&claim("data", &["ReadWriteOnce"], "500Mi"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "PersistentVolumeClaim \"data\" is invalid: spec.resources.requests.storage: \
             Forbidden: field can not be less than previous value (it is 1Gi, the manifest says 500Mi)"
        );

        let (grown, how) = store
            .ensure(&claim("data", &["ReadWriteOnce"], "2Gi"))
            .unwrap();
        assert_eq!(how, Ensured::Grown);
        assert_eq!(grown.capacity().unwrap().0, "2Gi");
        let got = store.get("data").unwrap();
        assert_eq!(got.capacity().unwrap().0, "2Gi");
        assert_eq!(
            requested_storage(&got.pvc).unwrap().0,
            "2Gi",
            "the request is recorded too"
        );
    }

    #[test]
    fn removal_is_refused_while_a_pod_record_names_the_claim() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path(), "ns");
        let (made, _) = store
            .ensure(&claim("data", &["ReadWriteOnce"], "1Gi"))
            .unwrap();
        store
            .ensure(&claim("logs", &["ReadWriteMany"], "1Gi"))
            .unwrap();
        record(root.path(), &pod("writer", &["data"]), Some("Succeeded"));
        record(root.path(), &pod("reader", &["data", "data"]), None);

        assert_eq!(
            store.users_of("data").unwrap(),
            [
                ClaimUser {
                    pod: "reader".into(),
                    finished: false
                },
                ClaimUser {
                    pod: "writer".into(),
                    finished: true
                },
            ]
        );
        let err = store.remove("data").unwrap_err();
        assert_eq!(
            err.to_string(),
            "persistentvolumeclaim \"data\" is in use by pods \"reader\", \"writer\": remove them \
             first with `podctl rm reader writer` (`podctl stop` a pod that still runs)"
        );
        assert!(made.data.is_dir());

        std::fs::remove_dir_all(pods::pods_dir(root.path(), "ns").join("reader")).unwrap();
        let err = store.remove("data").unwrap_err();
        assert!(
            err.to_string()
                .contains("in use by pod \"writer\": remove it first with `podctl rm writer`"),
            "{err}"
        );
        std::fs::remove_dir_all(pods::pods_dir(root.path(), "ns").join("writer")).unwrap();
        store.remove("data").unwrap();
        assert!(!made.data.exists());
        assert!(matches!(
            store.remove("data"),
            Err(ClaimError::NotFound { .. })
        ));
        assert_eq!(names(&store), ["logs"]);
    }

    #[test]
    fn listing_skips_what_is_no_claim() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path(), "ns");
        assert!(store.list().unwrap().is_empty(), "no store yet");
        assert!(matches!(
            store.remove("data"),
            Err(ClaimError::NotFound { .. })
        ));
        assert!(!store.dir().exists(), "looking made nothing");
        for name in ["b", "a", "c.example"] {
            store
                .ensure(&claim(name, &["ReadWriteOnce"], "1Mi"))
                .unwrap();
        }
        // A creation cut short, a damaged record, a dir without a record.
        std::fs::create_dir_all(store.dir().join(".new-d-1234/data")).unwrap();
        std::fs::create_dir_all(store.dir().join("damaged")).unwrap();
        std::fs::write(store.dir().join("damaged/claim.json"), "{").unwrap();
        std::fs::create_dir_all(store.dir().join("empty")).unwrap();
        assert_eq!(names(&store), ["a", "b", "c.example"]);
        assert!(store.all_users().unwrap().is_empty());
    }

    #[test]
    fn admission_checks_creates_and_rolls_back() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path(), "ns");
        let none = BTreeMap::new();

        // Nothing of claims: nothing touched.
        let plain = store.admit(&pod("plain", &[]), &none).unwrap();
        plain.commit();
        assert!(!store.dir().exists());

        let err = store
            .admit(&pod("p", &["cache", "missing"]), &none)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.volumes[0].persistentVolumeClaim.claimName: persistentvolumeclaim \"cache\" not \
             found; spec.volumes[1].persistentVolumeClaim.claimName: persistentvolumeclaim \
             \"missing\" not found (give the PersistentVolumeClaim in the pod's file; `podctl \
             volume ls` lists the claims on this host)"
        );

        // Given claims are all created, used or not; a rollback takes them back.
        let given = BTreeMap::from([
            (
                "cache".to_owned(),
                claim("cache", &["ReadWriteOnce"], "1Gi"),
            ),
            (
                "spare".to_owned(),
                claim("spare", &["ReadWriteOnce"], "1Gi"),
            ),
        ]);
        let a = store.admit(&pod("p", &["cache"]), &given).unwrap();
        assert_eq!(a.created(), ["cache", "spare"]);
        assert_eq!(names(&store), ["cache", "spare"]);
        // Being admitted, the pod uses the claim already.
        assert_eq!(
            store.users_of("cache").unwrap(),
            [ClaimUser {
                pod: "p".into(),
                finished: false
            }]
        );
        a.rollback().unwrap();
        assert!(names(&store).is_empty());
        assert!(store.all_users().unwrap().is_empty());

        // Committed: the claims stay, the pod's record names them from now on.
        let a = store.admit(&pod("p", &["cache"]), &given).unwrap();
        record(root.path(), &pod("p", &["cache"]), None);
        a.commit();
        assert_eq!(names(&store), ["cache", "spare"]);
        assert_eq!(store.users_of("cache").unwrap().len(), 1);

        // A later pod uses the existing claim without giving it; an admission dropped
        // unsettled (cancelled) rolls back, and keeps claims it did not create.
        let b = store.admit(&pod("q", &["cache"]), &none).unwrap();
        assert!(b.created().is_empty());
        drop(b);
        assert_eq!(names(&store), ["cache", "spare"]);
        assert_eq!(store.users_of("cache").unwrap().len(), 1);

        // A conflicting spec refuses the pod before anything is made.
        let conflicting = BTreeMap::from([
            ("new".to_owned(), claim("new", &["ReadWriteOnce"], "1Gi")),
            (
                "cache".to_owned(),
                claim("cache", &["ReadWriteMany"], "1Gi"),
            ),
        ]);
        let err = store.admit(&pod("r", &["new"]), &conflicting).unwrap_err();
        assert!(matches!(err, ClaimError::Immutable { .. }), "{err}");
        assert_eq!(names(&store), ["cache", "spare"]);
    }

    #[test]
    fn read_write_once_pod_claims_take_one_unfinished_pod() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path(), "ns");
        let given = BTreeMap::from([(
            "solo".to_owned(),
            claim("solo", &["ReadWriteOncePod"], "1Gi"),
        )]);
        let first = store.admit(&pod("first", &["solo"]), &given).unwrap();
        // While the first is being admitted (no record yet), a second is refused.
        let err = store
            .admit(&pod("second", &["solo"]), &BTreeMap::new())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod \"second\" cannot use persistentvolumeclaim \"solo\": pod \"first\" uses it on \
             this host, and its ReadWriteOncePod access mode allows one pod at a time (node has \
             pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access \
             mode); wait for \"first\" to finish, or stop it with `podctl stop first`"
        );
        record(root.path(), &pod("first", &["solo"]), Some("Running"));
        first.commit();
        assert!(store
            .admit(&pod("second", &["solo"]), &BTreeMap::new())
            .is_err());

        // A finished pod no longer holds it (but still keeps it from removal).
        record(root.path(), &pod("first", &["solo"]), Some("Failed"));
        let second = store
            .admit(&pod("second", &["solo"]), &BTreeMap::new())
            .unwrap();
        second.rollback().unwrap();
        assert_eq!(
            names(&store),
            ["solo"],
            "an existing claim stays on rollback"
        );
        assert!(matches!(
            store.remove("solo"),
            Err(ClaimError::InUse { .. })
        ));

        // An admission whose process is gone (a crash) holds nothing.
        let stale = Reservation {
            pod: "ghost".into(),
            claims: vec!["solo".into()],
            supervisor: Some(Supervisor {
                pid: i32::MAX,
                start_ticks: 1,
                boot_id: "gone".into(),
                socket: None,
            }),
        };
        let path = store.dir().join(ADMITTING_DIR).join("ghost.x.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_json(&path, &stale).unwrap();
        std::fs::remove_dir_all(pods::pods_dir(root.path(), "ns").join("first")).unwrap();
        store
            .admit(&pod("third", &["solo"]), &BTreeMap::new())
            .unwrap()
            .rollback()
            .unwrap();
        assert!(!path.exists(), "a stale admission record is dropped");
    }

    #[test]
    fn bytes_used_count_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let empty = used_bytes(dir.path()).unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 64 * 1024]).unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("sub/link")).unwrap();
        let used = used_bytes(dir.path()).unwrap();
        assert!(used >= empty + 64 * 1024, "{used}");
        assert!(
            used < empty + 2 * 64 * 1024,
            "a hard link counts once: {used}"
        );
    }

    #[test]
    fn claim_names_are_subdomains() {
        for good in ["a", "data", "db-0", "a.b", "x1.y-2"] {
            assert!(is_claim_name(good), "{good}");
        }
        let long = "a".repeat(254);
        for bad in [
            "",
            ".",
            "..",
            ".lock",
            "A",
            "a/b",
            "a..b",
            "-a",
            "a-",
            "a_b",
            long.as_str(),
        ] {
            assert!(!is_claim_name(bad), "{bad}");
        }
    }
}
