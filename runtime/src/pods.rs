//! The pods of this host as podctl's state directory records them, for the day-2 commands.
//!
//! Each pod's directory (`<root>/<namespace>/pods/<pod>`) holds its manifest (`pod.json`,
//! written before anything runs), its status (`status.json`, rewritten on every change while
//! the pod runs, final once it ended), the process that supervises it (`supervisor.json`,
//! only while one does), its events (`events.jsonl`) and its logs (`logs/<container>/`).
//! `lifecycle` writes them (through [`write_json`], atomically); the rest of this module
//! reads them, and [`request_stop`] signals a pod's supervisor.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use crate::lifecycle::PodEvent;
use crate::status::{PodStatus, Role};

/// File names inside a pod's directory.
pub mod files {
    pub const MANIFEST: &str = "pod.json";
    pub const STATUS: &str = "status.json";
    pub const SUPERVISOR: &str = "supervisor.json";
    pub const EVENTS: &str = "events.jsonl";
    /// The runc shim group of the pod's containers (one shim per pod), for a supervisor
    /// that adopts the pod.
    pub const SHIM_GROUP: &str = "shim-group";
    /// Present once a stop of the pod was asked for: a supervisor adopting the pod goes on
    /// stopping it.
    pub const STOP_REQUESTED: &str = "stop-requested";
    pub const LOGS: &str = "logs";
}

/// Errors of reading the pods' records.
#[derive(Debug, thiserror::Error)]
pub enum PodsError {
    #[error("no pod {pod:?} in namespace {namespace:?}")]
    NotFound { pod: String, namespace: String },
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
    #[error("pod {pod:?} is not running (it has no `podctl run` supervising it)")]
    NotRunning { pod: String },
    /// No container was named and the pod has several main containers (the API server's
    /// words).
    #[error(
        "a container name must be specified for pod {pod}, choose one of: {}",
        .containers.choices()
    )]
    ContainerRequired {
        pod: String,
        containers: ContainerNames,
    },
    #[error("container {container} is not valid for pod {pod}, choose one of: {}", .containers.choices())]
    UnknownContainer {
        pod: String,
        container: String,
        containers: ContainerNames,
    },
    #[error("pod {pod:?} is supervised by the podctl daemon on {}: ask it through its API", socket.display())]
    DaemonPod { pod: String, socket: PathBuf },
    #[error("cannot signal the process supervising pod {pod:?} (pid {pid}): {source}")]
    Signal {
        pod: String,
        pid: i32,
        source: nix::Error,
    },
}

/// The process that supervises a pod (the `podctl run` in the foreground), told apart from a
/// later process that reuses its pid by its start time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Supervisor {
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks after boot when it started.
    pub start_ticks: u64,
    /// The kernel's boot id: after a reboot the same pid and start time may come back.
    #[serde(default)]
    pub boot_id: String,
    /// The API socket of the `podctl daemon` supervising the pod; `None` for a foreground
    /// `podctl run`. Requests for a daemon's pod go through its API, never a signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
}

impl Supervisor {
    /// This process.
    pub fn current() -> Option<Self> {
        let pid = std::process::id() as i32;
        Some(Self {
            pid,
            start_ticks: start_ticks(pid)?,
            boot_id: boot_id(),
            socket: None,
        })
    }

    /// Whether the process still runs (and is the same process, in this boot). A process
    /// that exited but was not reaped yet by its parent (a zombie) does not run.
    pub fn is_alive(&self) -> bool {
        self.boot_id == boot_id() && start_ticks(self.pid) == Some(self.start_ticks)
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The start time of a running process; `None` when there is no such process or it is a
/// zombie (it has exited; its parent has not collected its exit status yet).
fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    // Field 3: the state.
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// What the state directory says about one pod.
#[derive(Debug, Clone)]
pub struct PodRecord {
    pub name: String,
    pub dir: PathBuf,
    /// The manifest it was started from.
    pub pod: Option<Pod>,
    /// Its latest status; roles of init containers restored from the manifest.
    pub status: Option<PodStatus>,
    /// The process supervising it, when one still runs.
    pub supervisor: Option<Supervisor>,
}

impl PodRecord {
    /// Whether a `podctl run` still supervises the pod.
    pub fn is_running(&self) -> bool {
        self.supervisor.is_some()
    }

    /// The pod as `kubectl get pod -o json` shows one: the manifest with its status.
    pub fn to_kubernetes(&self, namespace: &str) -> serde_json::Value {
        let mut pod = self.pod.clone().unwrap_or_default();
        pod.metadata.name = Some(self.name.clone());
        pod.metadata.namespace = Some(namespace.to_string());
        pod.metadata.creation_timestamp = None;
        pod.status = None;
        let mut value = serde_json::to_value(&pod).unwrap_or_default();
        value["apiVersion"] = "v1".into();
        value["kind"] = "Pod".into();
        if let Some(status) = &self.status {
            if let Some(start) = &status.start_time {
                value["metadata"]["creationTimestamp"] = start.clone().into();
            }
            value["status"] = serde_json::to_value(status).unwrap_or_default();
        }
        value
    }

    /// How long stopping the pod may take before its containers are killed:
    /// `terminationGracePeriodSeconds` from its manifest (default 30 s, at least 2 s, as
    /// `lifecycle` applies it).
    pub fn grace_period(&self) -> Duration {
        crate::lifecycle::grace_period(self.pod.as_ref().unwrap_or(&Pod::default()))
    }

    /// The pod's events file.
    pub fn events_path(&self) -> PathBuf {
        self.dir.join(files::EVENTS)
    }
}

/// Parses a time as Kubernetes writes it in statuses and events (RFC 3339).
pub fn parse_time(text: &str) -> Option<SystemTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// Every event a pod recorded so far, oldest first (see [`EventsTail`]).
pub fn read_events(record: &PodRecord) -> Result<Vec<PodEvent>, PodsError> {
    EventsTail::new(record.events_path()).read_new()
}

/// Reads a pod's `events.jsonl` as it grows: each [`EventsTail::read_new`] returns the
/// events appended since the previous call. A line still being written waits for the next
/// call; a line that is not an event (a write cut short by a full disk) is skipped with a
/// warning. A file that was replaced (the pod removed and run again under the same name) is
/// read again from its start; a file that does not exist (yet, or any more) holds no events.
#[derive(Debug)]
pub struct EventsTail {
    path: PathBuf,
    /// The file being read, `(device, inode)`, once it was opened.
    file: Option<(u64, u64)>,
    offset: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
}

impl EventsTail {
    /// Starts at the beginning of the file at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// The events appended since the previous call (all of them on the first call).
    pub fn read_new(&mut self) -> Result<Vec<PodEvent>, PodsError> {
        let io = |source| PodsError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Gone (the pod was removed): a file made later is another pod's.
                self.file = None;
                return Ok(Vec::new());
            }
            Err(e) => return Err(io(e)),
        };
        let meta = file.metadata().map_err(io)?;
        let identity = (meta.dev(), meta.ino());
        if self.file != Some(identity) || meta.len() < self.offset {
            self.file = Some(identity);
            self.offset = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        let before = self.partial.len();
        file.read_to_end(&mut self.partial).map_err(io)?;
        self.offset += (self.partial.len() - before) as u64;
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(Vec::new());
        };
        let rest = self.partial.split_off(end + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        let path = &self.path;
        let parse = |line: &[u8]| match serde_json::from_slice(line) {
            Ok(event) => Some(event),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "not an event: skipped");
                None
            }
        };
        Ok(complete
            .split(|b| *b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .filter_map(parse)
            .collect())
    }
}

/// A pod's containers by kind, in spec order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerNames {
    pub main: Vec<String>,
    /// Init containers with `restartPolicy: Always`.
    pub sidecars: Vec<String>,
    /// Regular init containers.
    pub init: Vec<String>,
}

impl ContainerNames {
    /// The names in the pod's manifest.
    pub fn from_manifest(pod: &Pod) -> Self {
        let mut names = Self::default();
        let Some(spec) = pod.spec.as_ref() else {
            return names;
        };
        names.main = spec.containers.iter().map(|c| c.name.clone()).collect();
        for c in spec.init_containers.iter().flatten() {
            if c.restart_policy.as_deref() == Some("Always") {
                names.sidecars.push(c.name.clone());
            } else {
                names.init.push(c.name.clone());
            }
        }
        names
    }

    /// The names in a recorded pod: from its manifest, else from its status (where, without
    /// the manifest, sidecars count as regular init containers).
    pub fn of_record(record: &PodRecord) -> Self {
        if let Some(pod) = &record.pod {
            return Self::from_manifest(pod);
        }
        let mut names = Self::default();
        for c in record.status.iter().flat_map(PodStatus::all) {
            match c.role {
                Role::Main => names.main.push(c.name.clone()),
                Role::Sidecar => names.sidecars.push(c.name.clone()),
                Role::Init => names.init.push(c.name.clone()),
            }
        }
        names
    }

    pub fn contains(&self, name: &str) -> bool {
        [&self.main, &self.sidecars, &self.init]
            .iter()
            .any(|l| l.iter().any(|n| n == name))
    }

    /// `[app web]`, then ` or one of the init containers: [proxy setup]` (kubectl's words).
    pub fn choices(&self) -> String {
        let mut text = format!("[{}]", self.main.join(" "));
        let init: Vec<&str> = self
            .sidecars
            .iter()
            .chain(&self.init)
            .map(String::as_str)
            .collect();
        if !init.is_empty() {
            text.push_str(&format!(
                " or one of the init containers: [{}]",
                init.join(" ")
            ));
        }
        text
    }

    /// Which container a command is about, as kubectl picks it: the named one (any kind),
    /// else the pod's only main container.
    pub fn choose(&self, pod: &str, requested: Option<&str>) -> Result<String, PodsError> {
        match requested {
            Some(name) if self.contains(name) => Ok(name.to_string()),
            Some(name) => Err(PodsError::UnknownContainer {
                pod: pod.to_string(),
                container: name.to_string(),
                containers: self.clone(),
            }),
            None => match self.main.as_slice() {
                [only] => Ok(only.clone()),
                _ => Err(PodsError::ContainerRequired {
                    pod: pod.to_string(),
                    containers: self.clone(),
                }),
            },
        }
    }
}

/// The directory holding a namespace's pods.
pub fn pods_dir(root: &Path, namespace: &str) -> PathBuf {
    root.join(namespace).join("pods")
}

/// Every pod recorded in `namespace`, by name.
///
/// A pod whose record cannot be read is left out with a warning: one damaged directory must
/// not hide the others.
pub fn list(root: &Path, namespace: &str) -> Result<Vec<PodRecord>, PodsError> {
    let dir = pods_dir(root, namespace);
    Ok(names(root, namespace)?
        .iter()
        .filter_map(|n| {
            read(&dir.join(n), n)
                .map_err(|e| tracing::warn!(pod = %n, error = %e, "skipping a pod record"))
                .ok()
        })
        .collect())
}

/// The names of the pods recorded in `namespace`, sorted, without reading their records.
pub fn names(root: &Path, namespace: &str) -> Result<Vec<String>, PodsError> {
    let dir = pods_dir(root, namespace);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(PodsError::Io { path: dir, source }),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        // Only what podctl could have made: pod names are DNS labels.
        .filter(|n| crate::manifest::is_dns_label(n))
        .collect();
    names.sort();
    Ok(names)
}

/// One pod's record.
pub fn get(root: &Path, namespace: &str, pod: &str) -> Result<PodRecord, PodsError> {
    let dir = pods_dir(root, namespace).join(pod);
    let is_dir = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
    if !crate::manifest::is_dns_label(pod) || !is_dir {
        return Err(PodsError::NotFound {
            pod: pod.to_string(),
            namespace: namespace.to_string(),
        });
    }
    read(&dir, pod)
}

fn read(dir: &Path, name: &str) -> Result<PodRecord, PodsError> {
    // The supervisor first: it removes its file after writing the final status, so a
    // record read in between is a supervised pod with its last live status, never an
    // unsupervised one whose status is not final.
    let supervisor: Option<Supervisor> = read_json(&dir.join(files::SUPERVISOR))?;
    let pod: Option<Pod> = read_json(&dir.join(files::MANIFEST))?;
    // A damaged status (a crash before the disk caught up, a hand edit) must not make the
    // pod unreachable: stop, logs and rm still work without it.
    let mut status: Option<PodStatus> = read_json(&dir.join(files::STATUS))
        .map_err(|e| tracing::warn!(pod = %name, error = %e, "ignoring the pod's status"))
        .ok()
        .flatten();
    if let Some(status) = status.as_mut() {
        restore_roles(status, pod.as_ref());
        status.name = name.to_string();
    }
    Ok(PodRecord {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        pod,
        status,
        supervisor: supervisor.filter(Supervisor::is_alive),
    })
}

/// `status.json` keeps Kubernetes' shape, which does not say which init containers are
/// sidecars: the manifest does (without it, they count as regular init containers).
fn restore_roles(status: &mut PodStatus, pod: Option<&Pod>) {
    let spec = pod.and_then(|p| p.spec.as_ref());
    let inits = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    for c in &mut status.init_container_statuses {
        let sidecar = inits
            .iter()
            .any(|i| i.name == c.name && i.restart_policy.as_deref() == Some("Always"));
        c.role = if sidecar { Role::Sidecar } else { Role::Init };
    }
    for c in &mut status.container_statuses {
        c.role = Role::Main;
    }
}

/// A JSON file, or `None` when it does not exist.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, PodsError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PodsError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| PodsError::Corrupt {
            path: path.to_path_buf(),
            source,
        })
}

/// Writes `value` as JSON to `path` through a temporary file and a rename, so a reader sees
/// the old content or the new, never half of it.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

/// Asks the process supervising a pod to stop it, as Ctrl-C would: preStop hooks, stop
/// signals, SIGKILL after the grace period. Waits at most `wait` for the pod to end; returns
/// whether it ended.
pub async fn request_stop(
    root: &Path,
    namespace: &str,
    pod: &str,
    wait: Duration,
) -> Result<bool, PodsError> {
    let record = get(root, namespace, pod)?;
    let Some(supervisor) = record.supervisor else {
        return Err(PodsError::NotRunning {
            pod: pod.to_string(),
        });
    };
    if let Some(socket) = supervisor.socket {
        // Signalling a daemon would stop the daemon, not the pod.
        return Err(PodsError::DaemonPod {
            pod: pod.to_string(),
            socket,
        });
    }
    match nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor.pid),
        nix::sys::signal::Signal::SIGTERM,
    ) {
        Ok(()) => {}
        // It ended between the look and the signal.
        Err(nix::errno::Errno::ESRCH) => return Ok(true),
        Err(source) => {
            return Err(PodsError::Signal {
                pod: pod.to_string(),
                pid: supervisor.pid,
                source,
            })
        }
    }
    let deadline = tokio::time::Instant::now() + wait;
    while supervisor.is_alive() {
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_stranger_is_not() {
        let me = Supervisor::current().unwrap();
        assert!(me.is_alive());
        let reused = Supervisor {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(!reused.is_alive());
        let other_boot = Supervisor {
            boot_id: "another boot".into(),
            ..me
        };
        assert!(!other_boot.is_alive());
    }

    #[test]
    fn an_exited_child_not_yet_reaped_is_not_alive() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.3")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let supervisor = Supervisor {
            pid,
            start_ticks: start_ticks(pid).expect("sleep runs"),
            boot_id: boot_id(),
            socket: None,
        };
        assert!(supervisor.is_alive());
        // Exited, not reaped: a zombie, whose /proc entry stays until `wait`.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while supervisor.is_alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(!supervisor.is_alive());
        child.wait().unwrap();
    }

    #[test]
    fn records_restore_sidecar_roles_and_survive_a_missing_status() {
        let root = tempfile::tempdir().unwrap();
        let dir = pods_dir(root.path(), "ns").join("web");
        std::fs::create_dir_all(&dir).unwrap();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {
                "initContainers": [
                    {"name": "proxy", "image": "busybox", "restartPolicy": "Always"},
                    {"name": "setup", "image": "busybox"}
                ],
                "containers": [{"name": "app", "image": "busybox"}]
            }
        }))
        .unwrap();
        write_json(&dir.join(files::MANIFEST), &pod).unwrap();
        let only_manifest = get(root.path(), "ns", "web").unwrap();
        assert!(only_manifest.status.is_none());
        assert!(!only_manifest.is_running());

        let status = serde_json::json!({
            "phase": "Running",
            "conditions": [],
            "initContainerStatuses": [
                {"name": "proxy", "image": "busybox", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                 "lastState": {}, "ready": true, "restartCount": 0, "started": true},
                {"name": "setup", "image": "busybox", "state": {"terminated": {"exitCode": 0, "reason": "Completed", "containerID": "containerd://x"}},
                 "lastState": {}, "ready": false, "restartCount": 0, "started": false}
            ],
            "containerStatuses": [
                {"name": "app", "image": "busybox", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "containerID": "containerd://y"}},
                 "ready": false, "restartCount": 3, "started": false}
            ]
        });
        write_json(&dir.join(files::STATUS), &status).unwrap();
        write_json(
            &dir.join(files::SUPERVISOR),
            &Supervisor::current().unwrap(),
        )
        .unwrap();
        let record = get(root.path(), "ns", "web").unwrap();
        assert!(record.is_running());
        let status = record.status.as_ref().unwrap();
        assert_eq!(status.init_container_statuses[0].role, Role::Sidecar);
        assert_eq!(status.init_container_statuses[1].role, Role::Init);
        assert!(status.init_container_statuses[0].last_state.is_none());
        assert_eq!(
            status.container_statuses[0]
                .last_state
                .as_ref()
                .and_then(|s| s.exit_code()),
            Some(2)
        );
        let k8s = record.to_kubernetes("ns");
        assert_eq!(k8s["kind"], "Pod");
        assert_eq!(k8s["metadata"]["namespace"], "ns");
        assert_eq!(k8s["status"]["containerStatuses"][0]["restartCount"], 3);
        assert_eq!(list(root.path(), "ns").unwrap().len(), 1);
        assert!(matches!(
            get(root.path(), "ns", "nope"),
            Err(PodsError::NotFound { .. })
        ));
    }

    fn event_line(reason: &str) -> String {
        format!(
            "{{\"time\":\"2026-01-01T00:00:00Z\",\"type\":\"Normal\",\"reason\":\"{reason}\",\"container\":\"app\",\"message\":\"m\"}}\n"
        )
    }

    #[test]
    fn events_are_read_as_they_are_appended() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(files::EVENTS);
        let mut tail = EventsTail::new(path.clone());
        assert!(tail.read_new().unwrap().is_empty(), "no file yet");

        let mut file = std::fs::File::create(&path).unwrap();
        let created = event_line("Created");
        let started = event_line("Started");
        file.write_all(created.as_bytes()).unwrap();
        // Half a line: left for the next read.
        file.write_all(&started.as_bytes()[..10]).unwrap();
        let first = tail.read_new().unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].reason, "Created");
        assert_eq!(first[0].container.as_deref(), Some("app"));
        assert_eq!(first[0].type_, crate::lifecycle::EventType::Normal);
        assert!(tail.read_new().unwrap().is_empty());

        file.write_all(&started.as_bytes()[10..]).unwrap();
        file.write_all(b"{not an event}\n\n").unwrap();
        file.write_all(event_line("Killing").as_bytes()).unwrap();
        let reasons: Vec<String> = tail
            .read_new()
            .unwrap()
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, ["Started", "Killing"]);

        // The pod removed and run again: its new file is read from the start.
        drop(file);
        std::fs::remove_file(&path).unwrap();
        assert!(tail.read_new().unwrap().is_empty());
        std::fs::write(
            &path,
            event_line("Created")
                + &event_line("Started")
                + &event_line("Killing")
                + &event_line("Completed"),
        )
        .unwrap();
        assert_eq!(tail.read_new().unwrap().len(), 4);
        assert_eq!(tail.read_new().unwrap().len(), 0);
        let record = PodRecord {
            name: "p".into(),
            dir: dir.path().to_path_buf(),
            pod: None,
            status: None,
            supervisor: None,
        };
        assert_eq!(read_events(&record).unwrap().len(), 4);
    }

    #[test]
    fn grace_periods_and_times() {
        let record = |grace: Option<i64>| PodRecord {
            name: "p".into(),
            dir: PathBuf::from("/nonexistent"),
            pod: Some(Pod {
                spec: Some(k8s_openapi::api::core::v1::PodSpec {
                    termination_grace_period_seconds: grace,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
            supervisor: None,
        };
        assert_eq!(record(None).grace_period(), Duration::from_secs(30));
        assert_eq!(record(Some(0)).grace_period(), Duration::from_secs(2));
        assert_eq!(record(Some(45)).grace_period(), Duration::from_secs(45));
        let t = parse_time("2026-01-01T00:00:10Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_767_225_610
        );
        assert!(parse_time("yesterday").is_none());
    }
}
