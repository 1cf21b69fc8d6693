//! The live state of a running pod, shared by the coordinator and the container runners:
//! every container's Kubernetes status, the pod's conditions with their transition times,
//! and the pod's events. Every change wakes whoever waits on [`Shared::changed`].

use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Event, Observer};
use crate::status::{
    condition_values, k8s_time, live_phase, Condition, ContainerState, ContainerStatus, Phase,
    PodIp, PodStatus, RestartPolicy, Role,
};

/// Kubernetes' event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

/// One lifecycle event of a pod, as the kubelet records them (`kubectl get events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodEvent {
    /// RFC 3339, UTC.
    pub time: String,
    #[serde(rename = "type")]
    pub type_: EventType,
    /// `Created`, `Started`, `Killing`, `BackOff`, `Unhealthy`, `Completed`, `Failed` ...
    pub reason: String,
    /// The container the event is about; none for the pod itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub message: String,
}

/// What the coordinator knows once the pod ended.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    pub phase: Phase,
    pub reason: Option<String>,
    pub message: Option<String>,
}

struct Inner {
    containers: Vec<ContainerStatus>,
    /// Per container: its first start is over (running with postStart done, or failed).
    settled: Vec<bool>,
    conditions: Vec<Condition>,
    sandbox_ready: bool,
    ending: Option<Ending>,
    events: Option<File>,
    host_ip: Option<IpAddr>,
    pod_ips: Vec<IpAddr>,
    qos_class: Option<&'static str>,
}

/// The pod's live state; cheap to share.
pub(crate) struct Shared {
    pub pod_name: String,
    pub policy: RestartPolicy,
    /// When the pod was admitted (`status.startTime`; `activeDeadlineSeconds` counts from it).
    pub started: Instant,
    start_time: SystemTime,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    observer: Arc<dyn Observer>,
    /// `status.json`, written by [`Shared::save`] one save at a time.
    status_file: Mutex<Option<PathBuf>>,
}

impl Shared {
    /// A pod whose containers start as `containers` say; with `dir` (the pod's state dir),
    /// its events go to `events.jsonl` there and [`Shared::save`] writes `status.json`.
    pub fn new(
        pod_name: &str,
        started: (SystemTime, Instant),
        policy: RestartPolicy,
        containers: Vec<ContainerStatus>,
        dir: Option<&Path>,
        observer: Arc<dyn Observer>,
    ) -> Arc<Self> {
        let events_path = dir.map(|d| d.join(crate::pods::files::EVENTS));
        let events = events_path.as_deref().and_then(|p| {
            File::options()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| tracing::warn!(path = %p.display(), error = %e, "events file"))
                .ok()
        });
        let shared = Arc::new(Self {
            pod_name: pod_name.to_string(),
            policy,
            start_time: started.0,
            started: started.1,
            inner: Mutex::new(Inner {
                settled: vec![false; containers.len()],
                containers,
                conditions: Vec::new(),
                sandbox_ready: true,
                ending: None,
                events,
                host_ip: None,
                pod_ips: Vec::new(),
                qos_class: None,
            }),
            changed: watch::channel(0).0,
            observer,
            status_file: Mutex::new(dir.map(|d| d.join(crate::pods::files::STATUS))),
        });
        shared.refresh(&mut shared.lock());
        shared
    }

    /// Writes the status now (atomically). Called at the transitions a supervisor adopting
    /// the pod after a crash must not miss (a run begun, a run ended, the pod ended); the
    /// status writer covers the rest.
    pub fn save(&self) {
        let file = self
            .status_file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(path) = file.as_deref() {
            if let Err(e) = crate::pods::write_json(path, &self.snapshot()) {
                tracing::warn!(path = %path.display(), error = %e, "writing the pod's status");
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A receiver that sees every later change.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Applies `f` to container `index`'s status.
    pub fn update<R>(&self, index: usize, f: impl FnOnce(&mut ContainerStatus) -> R) -> R {
        let mut inner = self.lock();
        let r = f(&mut inner.containers[index]);
        self.refresh(&mut inner);
        r
    }

    /// Wakes whoever waits on [`Shared::changed`] without changing anything (a runner
    /// ended).
    pub fn touch(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Container `index` is through its first start: the next container may start.
    pub fn settle(&self, index: usize) {
        let mut inner = self.lock();
        if !inner.settled[index] {
            inner.settled[index] = true;
            drop(inner);
            self.touch();
        }
    }

    /// Whether container `index` is through its first start.
    pub fn settled(&self, index: usize) -> bool {
        self.lock().settled[index]
    }

    /// A copy of container `index`'s status.
    pub fn container(&self, index: usize) -> ContainerStatus {
        self.lock().containers[index].clone()
    }

    /// The host's address and the pod's (`status.hostIP`, `status.podIP`).
    pub fn set_addresses(&self, host_ip: Option<IpAddr>, pod_ips: Vec<IpAddr>) {
        let mut inner = self.lock();
        inner.host_ip = host_ip;
        inner.pod_ips = pod_ips;
        self.refresh(&mut inner);
    }

    /// The pod's QoS class (`status.qosClass`).
    pub fn set_qos_class(&self, class: Option<&'static str>) {
        let mut inner = self.lock();
        inner.qos_class = class;
        self.refresh(&mut inner);
    }

    /// The pod's addresses, once its network is attached.
    pub fn set_pod_ips(&self, pod_ips: Vec<IpAddr>) {
        let mut inner = self.lock();
        inner.pod_ips = pod_ips;
        self.refresh(&mut inner);
    }

    /// The pod's namespaces are gone (it ended).
    pub fn sandbox_released(&self) {
        let mut inner = self.lock();
        inner.sandbox_ready = false;
        self.refresh(&mut inner);
    }

    /// Fixes the pod's final phase; the status no longer follows the containers' states.
    pub fn end(&self, ending: Ending) {
        let mut inner = self.lock();
        inner.ending = Some(ending);
        self.refresh(&mut inner);
    }

    fn phase_of(&self, inner: &Inner) -> Phase {
        match &inner.ending {
            Some(e) => e.phase,
            None => live_phase(&inner.containers, self.policy),
        }
    }

    /// Conditions take a new transition time only when their value changes.
    fn refresh(&self, inner: &mut Inner) {
        let phase = self.phase_of(inner);
        let now = k8s_time(SystemTime::now());
        let values = condition_values(&inner.containers, inner.sandbox_ready, phase);
        let mut conditions = Vec::with_capacity(values.len());
        for (type_, value, reason, message) in values {
            let status = if value { "True" } else { "False" }.to_string();
            let since = inner
                .conditions
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone());
            conditions.push(Condition {
                type_: type_.to_string(),
                status,
                last_transition_time: Some(since.unwrap_or_else(|| now.clone())),
                reason,
                message,
            });
        }
        inner.conditions = conditions;
        self.changed.send_modify(|n| *n += 1);
    }

    /// The pod's status now.
    pub fn snapshot(&self) -> PodStatus {
        let inner = self.lock();
        let (init, main) = inner
            .containers
            .iter()
            .cloned()
            .partition(|c| c.role.is_init());
        let ending = inner.ending.clone();
        PodStatus {
            name: self.pod_name.clone(),
            phase: self.phase_of(&inner),
            conditions: inner.conditions.clone(),
            reason: ending.as_ref().and_then(|e| e.reason.clone()),
            message: ending.and_then(|e| e.message),
            start_time: Some(k8s_time(self.start_time)),
            host_ip: inner.host_ip.map(|ip| ip.to_string()),
            host_ips: inner.host_ip.iter().map(PodIp::from).collect(),
            pod_ip: inner.pod_ips.first().map(ToString::to_string),
            pod_ips: inner.pod_ips.iter().map(PodIp::from).collect(),
            qos_class: inner.qos_class.map(str::to_owned),
            init_container_statuses: init,
            container_statuses: main,
        }
    }

    /// Records an event: to the observer, and to the pod's events file.
    pub fn event(&self, type_: EventType, reason: &str, container: Option<&str>, message: String) {
        let event = PodEvent {
            time: k8s_time(SystemTime::now()),
            type_,
            reason: reason.to_string(),
            container: container.map(str::to_string),
            message,
        };
        tracing::debug!(pod = %self.pod_name, reason, container, message = %event.message, "event");
        if let Some(f) = self.lock().events.as_mut() {
            if let Ok(mut line) = serde_json::to_vec(&event) {
                line.push(b'\n');
                // Like the logs: a full disk must not take the pod down.
                let _ = f.write_all(&line);
            }
        }
        self.observer.event(Event::Lifecycle(&event));
    }

    pub fn observer(&self) -> &Arc<dyn Observer> {
        &self.observer
    }
}

/// The status of a container that has not been created yet.
pub(crate) fn not_started(name: &str, image: &str, role: Role) -> ContainerStatus {
    ContainerStatus::new(
        name,
        image,
        role,
        ContainerState::waiting("PodInitializing"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Running;

    struct Recorder(Mutex<Vec<String>>);

    impl Observer for Recorder {
        fn event(&self, event: Event<'_>) {
            if let Event::Lifecycle(e) = event {
                self.0
                    .lock()
                    .unwrap()
                    .push(format!("{} {}", e.reason, e.message));
            }
        }
    }

    fn pod(dir: &Path) -> (Arc<Shared>, Arc<Recorder>) {
        let recorder = Arc::new(Recorder(Mutex::new(Vec::new())));
        let shared = Shared::new(
            "p",
            (SystemTime::now(), Instant::now()),
            RestartPolicy::Never,
            vec![
                not_started("init", "busybox", Role::Init),
                not_started("app", "busybox", Role::Main),
            ],
            Some(dir),
            recorder.clone(),
        );
        (shared, recorder)
    }

    #[test]
    fn conditions_keep_their_time_until_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, _) = pod(dir.path());
        let first = shared.snapshot();
        assert_eq!(first.phase, Phase::Pending);
        let initialized = first.condition("Initialized").unwrap();
        assert_eq!(initialized.status, "False");
        assert_eq!(
            initialized.message.as_deref(),
            Some("containers with incomplete status: [init]")
        );
        let changes = shared.changed();
        shared.update(0, |c| {
            c.state = ContainerState::Running(Running {
                started_at: String::new(),
            });
        });
        assert!(changes.has_changed().unwrap());
        // The init container runs but has not completed: the condition, and its time, stay.
        let now = shared.snapshot();
        assert_eq!(now.condition("Initialized"), first.condition("Initialized"));
        shared.update(1, |c| {
            c.state = ContainerState::Running(Running {
                started_at: String::new(),
            });
            c.started = true;
            c.ready = true;
        });
        let now = shared.snapshot();
        assert_eq!(now.condition("Initialized").unwrap().status, "True");
        assert_eq!(now.condition("Ready").unwrap().status, "True");
        shared.end(Ending {
            phase: Phase::Failed,
            reason: Some("DeadlineExceeded".into()),
            message: None,
        });
        let end = shared.snapshot();
        assert_eq!(end.phase, Phase::Failed);
        assert_eq!(end.reason.as_deref(), Some("DeadlineExceeded"));
    }

    #[test]
    fn events_reach_the_observer_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, recorder) = pod(dir.path());
        shared.event(
            EventType::Warning,
            "BackOff",
            Some("app"),
            "back-off".into(),
        );
        assert_eq!(*recorder.0.lock().unwrap(), ["BackOff back-off"]);
        let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        let event: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["container"], "app");
        assert_eq!(event["reason"], "BackOff");
    }

    #[test]
    fn a_container_settles_once() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, _) = pod(dir.path());
        assert!(!shared.settled(0));
        shared.settle(0);
        shared.settle(0);
        assert!(shared.settled(0));
        assert!(!shared.settled(1));
    }
}
