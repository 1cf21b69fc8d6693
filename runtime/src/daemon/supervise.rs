//! The pods one daemon supervises: admitting new ones, adopting the ones a previous daemon
//! left, stopping and removing them. Each pod runs on a task of its own with the same
//! lifecycle code as the foreground `podctl run`.
//!
//! Admission runs on a task of the daemon, not on the API request's future: a client that
//! goes away (tonic then drops the request's future) cannot cut an admission short, so it
//! always completes or cleans up after itself. A name's [`Slot`] is settled by drop guards,
//! so that a panicking task cannot leave a name reserved or a pod listed forever.
//!
//! Adoption, of each pod whose recorded supervisor was a daemon that is gone:
//! - a pod whose last status is terminal (the daemon died while finishing it) is concluded
//!   ([`lifecycle::conclude`]): nothing of it runs again;
//! - a pod whose sandbox is gone (a reboot) is concluded as well when it was being stopped,
//!   or when it must not run again (restartPolicy Never and a container had started), as
//!   the kubelet makes no new sandbox for such a pod; any other is started afresh from its
//!   manifest (a static pod through its file);
//! - any other pod is recovered and supervised again, going on stopping it when a stop was
//!   asked for (`stop-requested`: empty for a graceful stop, `now` for a kill);
//! - a pod that cannot be adopted now (containerd briefly unavailable ...) is tried again
//!   in the background, every [`ADOPT_RETRY`], [`ADOPT_TRIES`] times in all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;

use crate::containerd::Client;
use crate::lifecycle::{self, Event, LifecycleError, Observer, RunOptions, StopRequest};
use crate::manifest::{Objects, RunnablePod};
use crate::pods::{self, Supervisor};
use crate::status::{ContainerState, PodStatus, RestartPolicy};

/// Annotation naming where a daemon's pod came from, as the kubelet marks its pods: `api`
/// (`podctl run -d`) or `file` (the manifests dir).
pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// Annotation holding the hash of a static pod's file, as the kubelet's `config.hash`.
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";

/// How long a pod that could not be adopted waits before it is tried again.
const ADOPT_RETRY: Duration = Duration::from_secs(3);
/// How many times in all a pod is tried to be adopted before it is left for the next daemon.
const ADOPT_TRIES: u32 = 10;
/// What `stop-requested` holds for a stop that kills at once; a graceful stop leaves it empty.
const STOP_NOW: &str = "now";

/// Where a daemon's pod came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `podctl run -d`, through the API.
    Api,
    /// A file of the manifests dir; the hash of its content.
    File { hash: String },
}

/// Errors of the daemon's pod operations.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Pods(#[from] pods::PodsError),
    #[error("pod {pod:?} is being started by the daemon right now: try again shortly")]
    Admitting { pod: String },
    /// A pod started again after a reboot whose ConfigMaps and Secrets were only kept in
    /// memory (with the sandbox), so they are gone.
    #[error("pod {pod:?} cannot start again after the reboot: the ConfigMaps and Secrets it was given were kept in memory only; run it again with them")]
    ObjectsLost { pod: String },
    /// The task admitting the pod panicked; what it had made was left to its own cleanup.
    #[error("admitting pod {pod:?} failed unexpectedly")]
    AdmitTask {
        pod: String,
        source: tokio::task::JoinError,
    },
    #[error("pod {pod:?} is not supervised by this daemon (it is not running, or a foreground `podctl run` runs it)")]
    NotSupervised { pod: String },
    #[error("pod {pod:?} is still running: stop it with `podctl stop {pod}`, or force removal with `podctl rm -f {pod}`")]
    Running { pod: String },
    #[error("CronJob {0:?}: {1}")]
    CronJob(String, String),
    #[error("pod {pod:?} ended without a status recorded")]
    NoStatus { pod: String },
    #[error("pod {pod:?} did not end within {waited:?}")]
    StillRunning { pod: String, waited: Duration },
}

/// How long `remove` waits for a pod that has ended but is still being finished.
const FINISHING_WAIT: Duration = Duration::from_secs(10);

/// One pod on its supervising task.
struct Entry {
    stop: watch::Sender<StopRequest>,
    /// Becomes true when the pod's run has ended.
    ended: watch::Receiver<bool>,
}

/// A name is reserved while its pod is being admitted or adopted.
enum Slot {
    Admitting,
    Running(Entry),
}

/// The daemon's pods, shared by the API and the manifests-dir watcher.
pub struct Daemon {
    client: Client,
    run: RunOptions,
    socket: PathBuf,
    pods: Mutex<HashMap<String, Slot>>,
    cron_jobs: super::cronjobs::CronJobs,
}

impl Daemon {
    /// A supervisor for pods run with `run` (its `remove` is ignored), serving `socket`.
    pub fn new(client: Client, run: RunOptions, socket: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            client,
            run: RunOptions {
                remove: false,
                ..run
            },
            socket,
            pods: Mutex::new(HashMap::new()),
            cron_jobs: Default::default(),
        })
    }

    /// The containerd client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// podctl's state root.
    pub fn root(&self) -> &Path {
        &self.run.root
    }

    /// The containerd namespace.
    pub fn namespace(&self) -> &str {
        self.client.namespace()
    }

    /// The crash-loop back-off the daemon's pods (and a Job's pods after a failure) use.
    pub fn backoff(&self) -> lifecycle::BackoffPolicy {
        self.run.backoff
    }

    pub(super) fn cron_jobs(&self) -> &super::cronjobs::CronJobs {
        &self.cron_jobs
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this daemon supervises `pod` now.
    pub fn supervises(&self, pod: &str) -> bool {
        matches!(self.lock().get(pod), Some(Slot::Running(_)))
    }

    /// Reserves `name` for a pod being admitted or adopted.
    fn reserve(self: &Arc<Self>, name: &str) -> Result<Reservation, SuperviseError> {
        let mut pods = self.lock();
        match pods.get(name) {
            Some(Slot::Admitting) => Err(SuperviseError::Admitting {
                pod: name.to_string(),
            }),
            Some(Slot::Running(_)) => Err(LifecycleError::PodExists {
                pod: name.to_string(),
                namespace: self.namespace().to_string(),
            }
            .into()),
            None => {
                pods.insert(name.to_string(), Slot::Admitting);
                Ok(Reservation {
                    daemon: self.clone(),
                    name: name.to_string(),
                })
            }
        }
    }

    /// Admits a validated pod and starts supervising it; returns once it is admitted (images
    /// present, sandbox made, records written). A pod that cannot be admitted leaves nothing.
    /// The admission runs on a task of its own: it completes (or cleans up) even when the
    /// caller stops waiting for it.
    pub async fn run(
        self: &Arc<Self>,
        pod: RunnablePod,
        source: Source,
    ) -> Result<String, SuperviseError> {
        let (name, _) = self.run_observed(pod, source, Arc::new(Quiet)).await?;
        Ok(name)
    }

    /// [`Daemon::run`] with the pod's events passed to `observer`; also returns a receiver
    /// that becomes true when the pod's run has ended.
    pub(crate) async fn run_observed(
        self: &Arc<Self>,
        mut pod: RunnablePod,
        source: Source,
        observer: Arc<dyn Observer>,
    ) -> Result<(String, watch::Receiver<bool>), SuperviseError> {
        let name = pod.pod.metadata.name.clone().unwrap_or_default();
        annotate(&mut pod.pod, &source);
        let reservation = self.reserve(&name)?;
        let me = self.clone();
        let admission = tokio::spawn(async move {
            let admitted =
                lifecycle::admit(&me.client, pod, &me.run, observer, Some(&me.socket)).await?;
            let ended = me.supervise(admitted, StopRequest::None);
            drop(reservation);
            Ok(ended)
        });
        match admission.await {
            Ok(result) => result.map(|ended| (name, ended)),
            Err(source) => Err(SuperviseError::AdmitTask { pod: name, source }),
        }
    }

    /// Runs an admitted (or adopted) pod on a task of its own until it ends; returns a
    /// receiver that becomes true then.
    fn supervise(
        self: &Arc<Self>,
        admitted: lifecycle::Admitted,
        stop: StopRequest,
    ) -> watch::Receiver<bool> {
        let name = admitted.name().to_string();
        let (stop_tx, stop_rx) = watch::channel(stop);
        let (ended_tx, ended_rx) = watch::channel(false);
        self.lock().insert(
            name.clone(),
            Slot::Running(Entry {
                stop: stop_tx,
                ended: ended_rx.clone(),
            }),
        );
        let guard = Supervising {
            daemon: self.clone(),
            name,
            ended: ended_tx,
        };
        tokio::spawn(async move {
            let name = &guard.name;
            match admitted.run(stop_rx).await {
                Ok(status) => tracing::info!(pod = %name, phase = ?status.phase, "pod ended"),
                Err(e) => tracing::error!(pod = %name, error = %crate::describe(&e), "pod failed"),
            }
            drop(guard);
        });
        ended_rx
    }

    /// Adopts every pod a previous daemon supervised (see the module doc). A pod that
    /// cannot be adopted now is tried again in the background.
    pub async fn adopt_all(self: &Arc<Self>) {
        let names = match pods::names(self.root(), self.namespace()) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %crate::describe(&e), "cannot list the pods to adopt");
                return;
            }
        };
        for name in names {
            if let Err(e) = self.adopt(&name).await {
                tracing::error!(pod = %name, error = %crate::describe(&e), "cannot adopt the pod now; trying again in the background");
                tokio::spawn(self.clone().retry_adoption(name));
            }
        }
    }

    /// Tries again to adopt a pod that could not be adopted, a bounded number of times.
    async fn retry_adoption(self: Arc<Self>, name: String) {
        for attempt in 2..=ADOPT_TRIES {
            tokio::time::sleep(ADOPT_RETRY).await;
            match self.adopt(&name).await {
                Ok(()) => return,
                Err(e) if attempt == ADOPT_TRIES => {
                    tracing::error!(pod = %name, error = %crate::describe(&e), "cannot adopt the pod; giving up (a daemon started again tries again)")
                }
                Err(e) => {
                    tracing::warn!(pod = %name, attempt, error = %crate::describe(&e), "cannot adopt the pod yet")
                }
            }
        }
    }

    /// Adopts pod `name` when a daemon that is gone supervised it (see the module doc);
    /// does nothing otherwise.
    async fn adopt(self: &Arc<Self>, name: &str) -> Result<(), SuperviseError> {
        let dir = lifecycle::pod_dir(self.root(), self.namespace(), name);
        let Some(last) = orphaned(&dir) else {
            return Ok(());
        };
        let reservation = self.reserve(name)?;
        let record = pods::get(self.root(), self.namespace(), name)?;
        let stop = stop_requested(&dir);
        if record
            .status
            .as_ref()
            .is_some_and(|s| s.phase.is_terminal())
        {
            // The status is kept as it was: reason and message are not used.
            let status = lifecycle::conclude(&self.client, self.root(), name, "", "").await?;
            tracing::info!(pod = %name, previous = last.pid, phase = ?status.phase, "concluded the pod, which had ended");
            return Ok(());
        }
        let recovered = lifecycle::recover(
            &self.client,
            &self.run,
            name,
            Arc::new(Quiet),
            Some(&self.socket),
        )
        .await;
        match recovered {
            Ok(admitted) => {
                self.supervise(admitted, stop);
                tracing::info!(pod = %name, previous = last.pid, ?stop, "supervising the adopted pod");
                Ok(())
            }
            Err(LifecycleError::SandboxLost { .. })
                if ends_with_its_sandbox(record.pod.as_ref(), record.status.as_ref(), stop) =>
            {
                let status = lifecycle::conclude(
                    &self.client,
                    self.root(),
                    name,
                    "SandboxLost",
                    "The pod's sandbox is gone (as after a reboot) and the pod is not started again",
                )
                .await?;
                tracing::info!(pod = %name, phase = ?status.phase, "sandbox gone: concluded the pod");
                Ok(())
            }
            Err(LifecycleError::SandboxLost { .. }) => {
                drop(reservation);
                tracing::info!(pod = %name, "sandbox gone: starting the pod afresh");
                self.recreate(record).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a pod whose sandbox is gone again from its recorded manifest.
    async fn recreate(self: &Arc<Self>, record: pods::PodRecord) -> Result<(), SuperviseError> {
        let source = record.pod.as_ref().and_then(source_of);
        lifecycle::remove(&self.client, self.root(), &record.name, true).await?;
        match (record.pod, source) {
            // A static pod comes back through the manifests dir, with its file as it is now.
            (_, Some(Source::File { .. })) | (None, _) => Ok(()),
            (Some(pod), _) => {
                // Its claims are on disk already: they outlive the pod.
                let pod = RunnablePod {
                    template: pod.clone(),
                    pod,
                    controller: crate::manifest::Controller::None,
                    objects: Objects::default(),
                    claims: Default::default(),
                };
                if !pod.objects.missing(&pod.pod).is_empty() {
                    return Err(SuperviseError::ObjectsLost { pod: record.name });
                }
                self.run(pod, Source::Api).await.map(|_| ())
            }
        }
    }

    /// Asks the pod to stop, recording the request so that a daemon adopting the pod goes
    /// on stopping it, and waits at most `wait` for it to end; returns whether it ended. A
    /// request never lowers an earlier one (a graceful stop after a kill still kills).
    pub async fn stop(&self, pod: &str, now: bool, wait: Duration) -> Result<bool, SuperviseError> {
        let mut ended = {
            let pods = self.lock();
            let Some(Slot::Running(entry)) = pods.get(pod) else {
                return Err(SuperviseError::NotSupervised {
                    pod: pod.to_string(),
                });
            };
            let asked = if now {
                StopRequest::Now
            } else {
                StopRequest::Graceful
            };
            let request = asked.max(*entry.stop.borrow());
            let dir = lifecycle::pod_dir(self.root(), self.namespace(), pod);
            let file = dir.join(pods::files::STOP_REQUESTED);
            if let Err(e) = std::fs::write(file, stop_record(request)) {
                tracing::warn!(pod, error = %e, "recording the stop request");
            }
            request.raise(&entry.stop);
            entry.ended.clone()
        };
        let ended = tokio::time::timeout(wait, ended.wait_for(|e| *e)).await;
        Ok(ended.is_ok())
    }

    /// Removes a pod; a running one only with `force` (stopped at once first). A pod being
    /// admitted or adopted is not removed meanwhile.
    pub async fn remove(&self, pod: &str, force: bool) -> Result<(), SuperviseError> {
        let running = match self.lock().get(pod) {
            Some(Slot::Admitting) => {
                return Err(SuperviseError::Admitting {
                    pod: pod.to_string(),
                })
            }
            Some(Slot::Running(entry)) => Some(entry.ended.clone()),
            None => None,
        };
        if let Some(mut ended) = running {
            // A pod whose status is final is only finishing (its sandbox being released):
            // removing it waits for that rather than calling it running.
            let finishing = pods::get(self.root(), self.namespace(), pod)
                .ok()
                .and_then(|r| r.status)
                .is_some_and(|s| s.phase.is_terminal());
            if finishing
                && tokio::time::timeout(FINISHING_WAIT, ended.wait_for(|e| *e))
                    .await
                    .is_ok()
            {
                return Ok(lifecycle::remove(&self.client, self.root(), pod, force).await?);
            }
            if !force {
                return Err(SuperviseError::Running {
                    pod: pod.to_string(),
                });
            }
            let wait = Duration::from_secs(30);
            if !self.stop(pod, true, wait).await? {
                return Err(SuperviseError::StillRunning {
                    pod: pod.to_string(),
                    waited: wait,
                });
            }
        }
        lifecycle::remove(&self.client, self.root(), pod, force).await?;
        Ok(())
    }

    /// The static pods this daemon has records of: name → the hash of the file they came
    /// from; and its recorded CronJobs (`cronjob/<name>`), with no hash, so that the first
    /// poll resumes each one whose file is still there.
    pub fn static_pods(&self) -> std::collections::BTreeMap<String, String> {
        let mut known: std::collections::BTreeMap<String, String> =
            pods::list(self.root(), self.namespace())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| match r.pod.as_ref().map(source_of) {
                    Some(Some(Source::File { hash })) => Some((r.name, hash)),
                    _ => None,
                })
                .collect();
        for name in super::cronjobs::recorded(self.root(), self.namespace()) {
            known.insert(
                format!("{}{name}", crate::staticpods::CRON_JOB_KEY),
                String::new(),
            );
        }
        known
    }
}

/// A name reserved ([`Slot::Admitting`]) for a pod being admitted or adopted. Dropped
/// (the admission failed, was abandoned, or panicked), it frees the name, unless the pod
/// went on to run.
struct Reservation {
    daemon: Arc<Daemon>,
    name: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut pods = self.daemon.lock();
        if matches!(pods.get(&self.name), Some(Slot::Admitting)) {
            pods.remove(&self.name);
        }
    }
}

/// Settles a pod's entry when its supervising task ends, however it ends (a panic too):
/// the entry goes and `ended` is sent, so that stop and remove never wait on a pod that
/// is no longer supervised.
struct Supervising {
    daemon: Arc<Daemon>,
    name: String,
    ended: watch::Sender<bool>,
}

impl Drop for Supervising {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(pod = %self.name, "the task supervising the pod panicked; its containers are left as they are");
        }
        self.daemon.lock().remove(&self.name);
        let _ = self.ended.send(true);
    }
}

/// Whether a pod whose sandbox is gone ends for good rather than being started afresh:
/// when a stop of it was asked for, or when it must not run again (restartPolicy Never,
/// and one of its containers had started), as the kubelet makes no new sandbox for such a
/// pod.
fn ends_with_its_sandbox(pod: Option<&Pod>, status: Option<&PodStatus>, stop: StopRequest) -> bool {
    let policy = RestartPolicy::from_spec(
        pod.and_then(|p| p.spec.as_ref())
            .and_then(|s| s.restart_policy.as_deref()),
    );
    let started = status.is_some_and(|s| {
        s.all().any(|c| {
            !matches!(c.state, ContainerState::Waiting(_))
                || c.last_state.is_some()
                || c.restart_count > 0
        })
    });
    stop != StopRequest::None || (policy == RestartPolicy::Never && started)
}

/// What `stop-requested` holds for `request`.
fn stop_record(request: StopRequest) -> &'static str {
    match request {
        StopRequest::Now => STOP_NOW,
        _ => "",
    }
}

/// The stop a pod's `stop-requested` asks for: none without the file, a kill when it says
/// so, a graceful stop otherwise.
fn stop_requested(dir: &Path) -> StopRequest {
    match std::fs::read_to_string(dir.join(pods::files::STOP_REQUESTED)) {
        Err(_) => StopRequest::None,
        Ok(text) if text.trim() == STOP_NOW => StopRequest::Now,
        Ok(_) => StopRequest::Graceful,
    }
}

/// Where a recorded pod came from, by its annotations; `None` for a foreground pod.
pub fn source_of(pod: &Pod) -> Option<Source> {
    let annotations = pod.metadata.annotations.as_ref()?;
    match annotations.get(SOURCE_ANNOTATION)?.as_str() {
        "api" => Some(Source::Api),
        "file" => Some(Source::File {
            hash: annotations
                .get(HASH_ANNOTATION)
                .cloned()
                .unwrap_or_default(),
        }),
        _ => None,
    }
}

fn annotate(pod: &mut Pod, source: &Source) {
    let annotations = pod
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    match source {
        Source::Api => {
            annotations.insert(SOURCE_ANNOTATION.into(), "api".into());
        }
        Source::File { hash } => {
            annotations.insert(SOURCE_ANNOTATION.into(), "file".into());
            annotations.insert(HASH_ANNOTATION.into(), hash.clone());
        }
    }
}

/// The pod's recorded supervisor, when it was a daemon (on any socket: the socket may have
/// moved) that no longer runs; `None` for foreground pods, finished pods and live ones.
fn orphaned(dir: &Path) -> Option<Supervisor> {
    let bytes = std::fs::read(dir.join(pods::files::SUPERVISOR)).ok()?;
    let last: Supervisor = serde_json::from_slice(&bytes).ok()?;
    (last.socket.is_some() && !last.is_alive()).then_some(last)
}

/// The daemon's pods print nothing: their output is in their log files, their events in
/// `events.jsonl`.
pub(super) struct Quiet;

impl Observer for Quiet {
    fn event(&self, event: Event<'_>) {
        if let Event::Lifecycle(e) = event {
            tracing::debug!(reason = %e.reason, message = %e.message, "pod event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{ContainerStatus, Phase, Role};

    fn pod(policy: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "app", "image": "busybox"}]},
        }))
        .unwrap()
    }

    fn status(state: ContainerState, restart_count: u32) -> PodStatus {
        let mut app = ContainerStatus::new("app", "busybox", Role::Main, state);
        app.restart_count = restart_count;
        PodStatus {
            name: "p".into(),
            phase: Phase::Running,
            conditions: Vec::new(),
            reason: None,
            message: None,
            start_time: None,
            host_ip: None,
            host_ips: Vec::new(),
            pod_ip: None,
            pod_ips: Vec::new(),
            qos_class: None,
            init_container_statuses: Vec::new(),
            container_statuses: vec![app],
        }
    }

    fn running() -> ContainerState {
        ContainerState::Running(crate::status::Running {
            started_at: String::new(),
        })
    }

    #[test]
    fn a_pod_that_lost_its_sandbox_is_started_afresh_unless_it_must_not_run_again() {
        let never = pod(Some("Never"));
        let always = pod(None);
        let waiting = status(ContainerState::waiting("PodInitializing"), 0);
        let started = status(running(), 0);
        let restarted = status(ContainerState::waiting("CrashLoopBackOff"), 1);
        let none = StopRequest::None;
        // restartPolicy Never: once a container started, the pod does not run again.
        assert!(ends_with_its_sandbox(Some(&never), Some(&started), none));
        assert!(ends_with_its_sandbox(Some(&never), Some(&restarted), none));
        assert!(!ends_with_its_sandbox(Some(&never), Some(&waiting), none));
        assert!(!ends_with_its_sandbox(Some(&never), None, none));
        // Any other policy starts afresh, as the kubelet makes a new sandbox.
        assert!(!ends_with_its_sandbox(Some(&always), Some(&started), none));
        assert!(!ends_with_its_sandbox(
            Some(&pod(Some("OnFailure"))),
            Some(&started),
            none
        ));
        // A pod being stopped is not started again, whatever its policy.
        assert!(ends_with_its_sandbox(
            Some(&always),
            Some(&waiting),
            StopRequest::Graceful
        ));
        assert!(ends_with_its_sandbox(Some(&always), None, StopRequest::Now));
    }

    #[test]
    fn a_recorded_stop_is_read_back_as_it_was_asked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(stop_requested(dir.path()), StopRequest::None);
        for request in [StopRequest::Graceful, StopRequest::Now] {
            std::fs::write(
                dir.path().join(pods::files::STOP_REQUESTED),
                stop_record(request),
            )
            .unwrap();
            assert_eq!(stop_requested(dir.path()), request);
        }
        // An empty file, as earlier daemons wrote it, is a graceful stop.
        std::fs::write(dir.path().join(pods::files::STOP_REQUESTED), "").unwrap();
        assert_eq!(stop_requested(dir.path()), StopRequest::Graceful);
    }
}
