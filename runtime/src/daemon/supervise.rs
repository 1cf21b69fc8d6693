//! The pods one daemon supervises: admitting new ones, adopting the ones a previous daemon
//! left, stopping and removing them. Each pod runs on a task of its own with the same
//! lifecycle code as the foreground `podctl run`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;

use crate::containerd::Client;
use crate::lifecycle::{self, Event, LifecycleError, Observer, RunOptions, StopRequest};
use crate::pods::{self, Supervisor};

/// Annotation naming where a daemon's pod came from, as the kubelet marks its pods: `api`
/// (`podctl run -d`) or `file` (the manifests dir).
pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// Annotation holding the hash of a static pod's file, as the kubelet's `config.hash`.
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";

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
    #[error("pod {pod:?} is already being started")]
    Admitting { pod: String },
    #[error("pod {pod:?} is not supervised by this daemon (it is not running, or a foreground `podctl run` runs it)")]
    NotSupervised { pod: String },
    #[error("pod {pod:?} is still running: stop it with `podctl stop {pod}`, or force removal with `podctl rm -f {pod}`")]
    Running { pod: String },
    #[error("pod {pod:?} did not end within {waited:?}")]
    StillRunning { pod: String, waited: Duration },
}

/// One pod on its supervising task.
struct Entry {
    stop: watch::Sender<StopRequest>,
    /// Becomes true when the pod's run has ended.
    ended: watch::Receiver<bool>,
}

/// A name is reserved while its pod is being admitted.
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

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this daemon supervises `pod` now.
    pub fn supervises(&self, pod: &str) -> bool {
        matches!(self.lock().get(pod), Some(Slot::Running(_)))
    }

    /// Admits a validated pod and starts supervising it; returns once it is admitted (images
    /// present, sandbox made, records written). A pod that cannot be admitted leaves nothing.
    pub async fn run(
        self: &Arc<Self>,
        mut pod: Pod,
        source: Source,
    ) -> Result<String, SuperviseError> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        annotate(&mut pod, &source);
        {
            let mut pods = self.lock();
            match pods.get(&name) {
                Some(Slot::Admitting) => return Err(SuperviseError::Admitting { pod: name }),
                Some(Slot::Running(_)) => {
                    return Err(LifecycleError::PodExists {
                        pod: name,
                        namespace: self.namespace().to_string(),
                    }
                    .into())
                }
                None => {}
            }
            pods.insert(name.clone(), Slot::Admitting);
        }
        let admitted = lifecycle::admit(
            &self.client,
            pod,
            &self.run,
            Arc::new(Quiet),
            Some(&self.socket),
        )
        .await;
        match admitted {
            Ok(a) => {
                self.supervise(a, StopRequest::None);
                Ok(name)
            }
            Err(e) => {
                self.lock().remove(&name);
                Err(e.into())
            }
        }
    }

    /// Runs an admitted (or adopted) pod on a task of its own until it ends.
    fn supervise(self: &Arc<Self>, admitted: lifecycle::Admitted, stop: StopRequest) {
        let name = admitted.name().to_string();
        let (stop_tx, stop_rx) = watch::channel(stop);
        let (ended_tx, ended_rx) = watch::channel(false);
        self.lock().insert(
            name.clone(),
            Slot::Running(Entry {
                stop: stop_tx,
                ended: ended_rx,
            }),
        );
        let me = self.clone();
        tokio::spawn(async move {
            match admitted.run(stop_rx).await {
                Ok(status) => {
                    tracing::info!(pod = %name, phase = ?status.phase, "pod ended")
                }
                Err(e) => {
                    tracing::error!(pod = %name, error = %crate::describe(&e), "pod failed")
                }
            }
            me.lock().remove(&name);
            let _ = ended_tx.send(true);
        });
    }

    /// Adopts every pod a previous daemon supervised (see [`lifecycle::recover`]). A pod
    /// whose sandbox died with the host is started again from its manifest, as the
    /// kubelet makes a new sandbox for a pod whose sandbox is gone. Returns the names of
    /// the pods it found and how each went, for the log.
    pub async fn adopt_all(self: &Arc<Self>) -> Vec<(String, Result<(), SuperviseError>)> {
        let names = match pods::names(self.root(), self.namespace()) {
            Ok(n) => n,
            Err(e) => return vec![(String::new(), Err(e.into()))],
        };
        let mut results = Vec::new();
        for name in names {
            let dir = pods::pods_dir(self.root(), self.namespace()).join(&name);
            let Some(last) = orphaned(&dir, &self.socket) else {
                continue;
            };
            let stop = if dir.join(pods::files::STOP_REQUESTED).exists() {
                StopRequest::Graceful
            } else {
                StopRequest::None
            };
            tracing::info!(pod = %name, previous = last.pid, "adopting");
            let result = match lifecycle::recover(
                &self.client,
                &self.run,
                &name,
                Arc::new(Quiet),
                Some(&self.socket),
            )
            .await
            {
                Ok(admitted) => {
                    self.supervise(admitted, stop);
                    Ok(())
                }
                Err(LifecycleError::SandboxLost { .. }) => self.recreate(&name).await,
                Err(e) => Err(e.into()),
            };
            results.push((name, result));
        }
        results
    }

    /// Starts a pod whose sandbox is gone again from its recorded manifest.
    async fn recreate(self: &Arc<Self>, name: &str) -> Result<(), SuperviseError> {
        let record = pods::get(self.root(), self.namespace(), name)?;
        let source = record.pod.as_ref().map(source_of);
        lifecycle::remove(&self.client, self.root(), name, true).await?;
        match (record.pod, source) {
            // A static pod comes back through the manifests dir, with its file as it is now.
            (_, Some(Some(Source::File { .. }))) => Ok(()),
            (Some(pod), _) => self.run(pod, Source::Api).await.map(|_| ()),
            (None, _) => Ok(()),
        }
    }

    /// Asks the pod to stop (it stays stopping when the daemon restarts meanwhile) and
    /// waits at most `wait` for it to end; returns whether it ended.
    pub async fn stop(&self, pod: &str, now: bool, wait: Duration) -> Result<bool, SuperviseError> {
        let mut ended = {
            let pods = self.lock();
            let Some(Slot::Running(entry)) = pods.get(pod) else {
                return Err(SuperviseError::NotSupervised {
                    pod: pod.to_string(),
                });
            };
            let dir = pods::pods_dir(self.root(), self.namespace()).join(pod);
            if let Err(e) = std::fs::write(dir.join(pods::files::STOP_REQUESTED), b"") {
                tracing::warn!(pod, error = %e, "recording the stop request");
            }
            let request = if now {
                StopRequest::Now
            } else {
                StopRequest::Graceful
            };
            entry.stop.send_if_modified(|r| {
                let raise = request > *r;
                if raise {
                    *r = request;
                }
                raise
            });
            entry.ended.clone()
        };
        let ended = tokio::time::timeout(wait, ended.wait_for(|e| *e)).await;
        Ok(ended.is_ok())
    }

    /// Removes a pod; a running one only with `force` (stopped at once first).
    pub async fn remove(&self, pod: &str, force: bool) -> Result<(), SuperviseError> {
        if self.supervises(pod) {
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
    /// from.
    pub fn static_pods(&self) -> std::collections::BTreeMap<String, String> {
        pods::list(self.root(), self.namespace())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| match r.pod.as_ref().map(source_of) {
                Some(Some(Source::File { hash })) => Some((r.name, hash)),
                _ => None,
            })
            .collect()
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
fn orphaned(dir: &Path, _socket: &Path) -> Option<Supervisor> {
    let bytes = std::fs::read(dir.join(pods::files::SUPERVISOR)).ok()?;
    let last: Supervisor = serde_json::from_slice(&bytes).ok()?;
    (last.socket.is_some() && !last.is_alive()).then_some(last)
}

/// The daemon's pods print nothing: their output is in their log files, their events in
/// `events.jsonl`.
struct Quiet;

impl Observer for Quiet {
    fn event(&self, event: Event<'_>) {
        if let Event::Lifecycle(e) = event {
            tracing::debug!(reason = %e.reason, message = %e.message, "pod event");
        }
    }
}
