//! A pod's life on this host, as the kubelet runs it: init containers one after another
//! (each to a successful exit; sidecars until they have started), then every main
//! container; restarts with the crash-loop back-off per `restartPolicy`;
//! `activeDeadlineSeconds`; stop on request (main containers first, sidecars after them in
//! reverse order); teardown.
//!
//! - `plan`: the containers in start order and the pipeline that prepares them ahead;
//! - `coordinator`: the pod-level state machine;
//! - `runner`: one container across its restarts;
//! - `container`: one attempt of a container (record, snapshot, task);
//! - `probing`: a container's probes and hooks, run against one attempt;
//! - `state`: the live status and events shared by all of them;
//! - `backoff`, `logs`.
//!
//! Start path: the next container is prepared (record, snapshot, task created, exit watch
//! armed) while the previous init container still runs, so only `Tasks.Start` waits on its
//! exit. Every container of a pod is served by one runc shim (grouped per pod run).
//! Teardown of finished containers runs off the critical path.

mod backoff;
mod container;
mod coordinator;
mod gate;
mod logs;
mod plan;
mod probing;
mod runner;
mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::watch;

use crate::containerd::{labels, Client, ContainerdError, TaskStatus};
use crate::image::{ImageError, ResolvedImage};
use crate::oci::{self, OciError};
use crate::pods;
use crate::reference::ReferenceError;
use crate::sandbox::{Sandbox, SandboxConfig, SandboxError};
use crate::status::{PodStatus, RestartPolicy, Role};
pub use backoff::{BackoffPolicy, DEFAULT_BASE, DEFAULT_CAP};
use coordinator::Coordinator;
use plan::{plan_containers, Pipeline, Step};
use state::Shared;
pub use state::{EventType, PodEvent};

const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Kubernetes sets no upper bound on grace periods; a year stands for "forever" and keeps
/// deadline arithmetic from overflowing.
const MAXIMUM_GRACE: Duration = Duration::from_secs(365 * 24 * 3600);
/// The kubelet never gives a container less (`minimumGracePeriodInSeconds`), even for
/// `terminationGracePeriodSeconds: 0`.
const MINIMUM_GRACE: Duration = Duration::from_secs(2);

/// Which standard stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The name the CRI log format uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// What happens during a run, for the caller to show.
#[derive(Debug)]
pub enum Event<'a> {
    /// One line of a container's output (without its newline).
    Output {
        container: &'a str,
        stream: Stream,
        line: &'a [u8],
    },
    /// A container exited (it may be restarted).
    Exited {
        container: &'a str,
        role: Role,
        exit_code: i32,
        reason: &'a str,
    },
    /// A lifecycle event of the pod (`Created`, `Started`, `Killing`, `BackOff` ...).
    Lifecycle(&'a PodEvent),
}

/// What the caller asks of a running pod, through the `stop` channel of [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum StopRequest {
    /// Run to the end.
    #[default]
    None,
    /// Stop gracefully: each running container's stop signal, SIGKILL after the grace period.
    Graceful,
    /// SIGKILL now, whatever is left of the grace period.
    Now,
}

/// Receives [`Event`]s; called from several tasks at once.
pub trait Observer: Send + Sync {
    fn event(&self, event: Event<'_>);
}

/// Errors of the pod lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(
        "pod {pod:?} already exists in namespace {namespace:?}: remove it with `podctl rm {pod}` \
         (`podctl rm -f {pod}` while it still runs)"
    )]
    PodExists { pod: String, namespace: String },
    #[error("{pod:?} is not a pod name: pod names are DNS-1123 labels (lower-case letters, digits and '-', at most 63)")]
    BadPodName { pod: String },
    #[error("no pod {pod:?} in namespace {namespace:?}")]
    PodNotFound { pod: String, namespace: String },
    #[error("pod {pod:?} is still running: stop its `podctl run`, or force removal with `podctl rm -f {pod}`")]
    PodRunning { pod: String },
    #[error("spec.{field}[{index}].image: {source}")]
    Reference {
        field: &'static str,
        index: usize,
        source: ReferenceError,
    },
    /// A probe or hook that cannot run as written (a named port the container lacks ...).
    #[error("{path}: {source}")]
    Handler {
        path: String,
        source: crate::probe::ProbeError,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encoding the runtime spec: {0}")]
    Encode(serde_json::Error),
    #[error("internal task failed: {0}")]
    Join(String),
    /// The run failed and so did the cleanup after it; both are reported.
    #[error("{error}; cleaning up after it failed too: {cleanup}")]
    CleanupFailed {
        error: Box<LifecycleError>,
        cleanup: Box<LifecycleError>,
    },
}

/// How to run a pod.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// podctl's state root; the pod lives in `<root>/<namespace>/pods/<name>`.
    pub root: PathBuf,
    /// Remove everything of the pod when it ends (`--rm`).
    pub remove: bool,
    pub snapshotter: String,
    /// The crash-loop back-off's delays.
    pub backoff: BackoffPolicy,
    /// When container log files are rotated, and how many of a run are kept.
    pub log_rotation: crate::podlogs::LogRotation,
}

/// The state directory of a pod.
pub fn pod_dir(root: &Path, namespace: &str, pod: &str) -> PathBuf {
    root.join(namespace).join("pods").join(pod)
}

/// Everything a container of this pod is built from.
pub(crate) struct PodContext {
    client: Client,
    pod: Pod,
    pod_name: String,
    pod_dir: PathBuf,
    io_dir: PathBuf,
    sandbox: Sandbox,
    shim_group: String,
    /// Keeps the pod's task creates and deletes apart (see [`gate::ShimGate`]).
    shim_gate: gate::ShimGate,
    backoff: BackoffPolicy,
    log_rotation: crate::podlogs::LogRotation,
    /// `terminationGracePeriodSeconds`, at least [`MINIMUM_GRACE`].
    grace: Duration,
}

impl PodContext {
    /// The runtime spec of a container, its subPaths resolved (created if missing) now.
    fn spec_for(
        &self,
        container: &Container,
        image: &ResolvedImage,
        id: &str,
    ) -> Result<oci_spec::runtime::Spec, LifecycleError> {
        self.build_spec(container, image, id, true)
    }

    /// Builds every container's spec before any container runs, with subPaths left at their
    /// volume roots: what cannot become a spec (an image user given by name, no command)
    /// fails the pod before an init container has run. subPaths are resolved at each
    /// container's turn, since an earlier init container may create them.
    fn check_specs(&self, plan: &[Arc<Step>]) -> Result<(), LifecycleError> {
        for step in plan {
            self.build_spec(&step.container, &step.image, "check", false)?;
        }
        Ok(())
    }

    fn build_spec(
        &self,
        container: &Container,
        image: &ResolvedImage,
        id: &str,
        resolve_sub_paths: bool,
    ) -> Result<oci_spec::runtime::Spec, LifecycleError> {
        let mut mounts = Vec::new();
        for m in container.volume_mounts.iter().flatten() {
            let source = if resolve_sub_paths {
                self.sandbox.mount_source(m)?
            } else {
                self.sandbox.volume_path(&m.name, "")?
            };
            mounts.push(oci::VolumeMountSource {
                source,
                destination: PathBuf::from(&m.mount_path),
                read_only: m.read_only.unwrap_or(false),
            });
        }
        Ok(oci::container_spec(&oci::ContainerInput {
            pod: &self.pod,
            container,
            image: &image.config,
            sandbox: &self.sandbox,
            container_id: id,
            shim_group: &self.shim_group,
            mounts,
        })?)
    }
}

/// Runs a validated pod to its end: init containers in order, then all main containers,
/// restarted per the pod's `restartPolicy`, until the pod is done, its deadline runs out or
/// `stop` asks otherwise (see [`StopRequest`]). Returns the pod's final status. On an
/// error, everything created is removed.
pub async fn run(
    client: &Client,
    pod: Pod,
    opts: &RunOptions,
    observer: Arc<dyn Observer>,
    stop: watch::Receiver<StopRequest>,
) -> Result<PodStatus, LifecycleError> {
    let admitted = (std::time::SystemTime::now(), std::time::Instant::now());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = client.namespace().to_string();
    let dir = pod_dir(&opts.root, &namespace, &name);
    let exists = || LifecycleError::PodExists {
        pod: name.clone(),
        namespace: namespace.clone(),
    };
    if dir.exists() || !pod_containers(client, &name).await?.is_empty() {
        return Err(exists());
    }

    tracing::debug!(pod = %name, "resolving images, creating the sandbox");
    let plan = plan_containers(client, &pod, &opts.snapshotter);
    let sandbox = {
        let dir = dir.clone();
        let pod = pod.clone();
        tokio::task::spawn_blocking(move || {
            Sandbox::create(SandboxConfig {
                dir: &dir,
                pod: &pod,
            })
        })
    };
    let (plan, sandbox) = tokio::join!(plan, sandbox);
    tracing::debug!(pod = %name, "images resolved, sandbox created");
    let sandbox = sandbox.map_err(|e| LifecycleError::Join(e.to_string()))?;
    let (plan, sandbox) = match (plan, sandbox) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(e), Ok(_)) => return Err(with_cleanup(e, destroy_sandbox(dir).await)),
        (_, Err(SandboxError::AlreadyExists { .. })) => return Err(exists()),
        (Err(e), Err(_)) => return Err(e),
        (Ok(_), Err(e)) => return Err(e.into()),
    };

    let io_dir = dir.join("io");
    if let Err(e) = record_start(&dir, &io_dir, &pod) {
        return Err(with_cleanup(e, destroy_sandbox(dir).await));
    }
    let policy =
        RestartPolicy::from_spec(pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()));
    let statuses = plan
        .iter()
        .map(|s| {
            let image = s.container.image.as_deref().unwrap_or_default();
            state::not_started(&s.container.name, image, s.role)
        })
        .collect();
    let shared = Shared::new(
        &name,
        admitted,
        policy,
        statuses,
        Some(&dir.join(pods::files::EVENTS)),
        observer,
    );
    let ctx = Arc::new(PodContext {
        client: client.clone(),
        pod_name: name.clone(),
        pod_dir: dir.clone(),
        io_dir,
        sandbox,
        shim_group: format!("{namespace}.{name}.{:016x}", rand::random::<u64>()),
        shim_gate: gate::ShimGate::default(),
        backoff: opts.backoff,
        log_rotation: opts.log_rotation,
        grace: grace_period(&pod),
        pod,
    });

    let status_writer = spawn_status_writer(&shared, dir.join(pods::files::STATUS));
    let result = run_containers(&ctx, plan, &shared, stop, opts.remove).await;
    status_writer.abort();
    let _ = status_writer.await;
    match result {
        Ok(()) => {
            let status = finish(&ctx, &shared, opts.remove).await;
            tracing::debug!(pod = %name, "finished");
            status
        }
        Err(e) => {
            let cleanup = remove_objects(client, &name).await;
            let cleanup = match cleanup {
                Ok(()) => destroy_sandbox(dir).await,
                Err(c) => Err(c),
            };
            Err(with_cleanup(e, cleanup))
        }
    }
}

/// How long stopping the pod may take before its containers are killed, as the kubelet
/// reads `terminationGracePeriodSeconds`: 30 s when absent, never less than 2 s.
pub fn grace_period(pod: &Pod) -> Duration {
    pod.spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_GRACE)
        .clamp(MINIMUM_GRACE, MAXIMUM_GRACE)
}

/// `now + d`, for grace periods (at most [`MAXIMUM_GRACE`]).
fn deadline_after(d: Duration) -> std::time::Instant {
    std::time::Instant::now() + d.min(MAXIMUM_GRACE)
}

fn with_cleanup(error: LifecycleError, cleanup: Result<(), LifecycleError>) -> LifecycleError {
    match cleanup {
        Ok(()) => error,
        Err(c) => LifecycleError::CleanupFailed {
            error: Box::new(error),
            cleanup: Box::new(c),
        },
    }
}

async fn destroy_sandbox(dir: PathBuf) -> Result<(), LifecycleError> {
    tokio::task::spawn_blocking(move || Sandbox::destroy(&dir))
        .await
        .map_err(|e| LifecycleError::Join(e.to_string()))?
        .map_err(Into::into)
}

/// What is left of a pod once it ended: with `remove`, nothing; otherwise its records,
/// snapshots, logs, events, volumes and `status.json` stay until `podctl rm`, while its
/// namespaces and mounts are released. Returns the final status.
async fn finish(
    ctx: &Arc<PodContext>,
    shared: &Shared,
    remove: bool,
) -> Result<PodStatus, LifecycleError> {
    if remove {
        // The containers went as they finished (see Teardown); a removal that failed there
        // is retried here by label.
        remove_objects(&ctx.client, &ctx.pod_name).await?;
        destroy_sandbox(ctx.pod_dir.clone()).await?;
        shared.sandbox_released();
        return Ok(shared.snapshot());
    }
    // Namespaces and mounts go first, so a failure to write the status cannot keep them.
    let dir = ctx.pod_dir.clone();
    tokio::task::spawn_blocking(move || Sandbox::release(&dir))
        .await
        .map_err(|e| LifecycleError::Join(e.to_string()))??;
    shared.sandbox_released();
    let status = shared.snapshot();
    let path = ctx.pod_dir.join(pods::files::STATUS);
    pods::write_json(&path, &status).map_err(|source| LifecycleError::Io { path, source })?;
    let _ = std::fs::remove_file(ctx.pod_dir.join(pods::files::SUPERVISOR));
    Ok(status)
}

/// Records the pod for the day-2 commands before anything runs: its manifest, and this
/// process as its supervisor (see [`crate::pods`]).
fn record_start(dir: &Path, io_dir: &Path, pod: &Pod) -> Result<(), LifecycleError> {
    let io = |path: PathBuf| move |source| LifecycleError::Io { path, source };
    std::fs::create_dir_all(io_dir).map_err(io(io_dir.to_path_buf()))?;
    let manifest = dir.join(pods::files::MANIFEST);
    pods::write_json(&manifest, pod).map_err(io(manifest.clone()))?;
    if let Some(me) = pods::Supervisor::current() {
        let path = dir.join(pods::files::SUPERVISOR);
        pods::write_json(&path, &me).map_err(io(path.clone()))?;
    }
    Ok(())
}

/// Keeps `status.json` current while the pod runs, at most every [`STATUS_EVERY`]: a crash
/// of podctl leaves the last state on disk, and `podctl ps`/`inspect` read it.
fn spawn_status_writer(shared: &Arc<Shared>, path: PathBuf) -> tokio::task::JoinHandle<()> {
    let shared = shared.clone();
    let mut changed = shared.changed();
    tokio::spawn(async move {
        loop {
            let status = shared.snapshot();
            if let Err(e) = pods::write_json(&path, &status) {
                tracing::warn!(path = %path.display(), error = %e, "writing the pod's status");
            }
            tokio::time::sleep(STATUS_EVERY).await;
            if changed.changed().await.is_err() {
                return;
            }
        }
    })
}

/// How often, at most, a running pod's `status.json` is rewritten.
const STATUS_EVERY: Duration = Duration::from_millis(100);

async fn run_containers(
    ctx: &Arc<PodContext>,
    plan: Vec<Arc<Step>>,
    shared: &Arc<Shared>,
    stop: watch::Receiver<StopRequest>,
    remove: bool,
) -> Result<(), LifecycleError> {
    let observer = shared.observer().clone();
    let mut pipeline = Pipeline::new(ctx, &observer, plan);
    let mut coordinator = Coordinator::new(
        ctx.clone(),
        shared.clone(),
        stop,
        remove,
        pipeline.plan.len(),
    );
    let result = coordinator.drive(&mut pipeline).await;
    coordinator.shutdown().await;
    // Tasks prepared ahead and never started are discarded; on an error the caller removes
    // everything by label, so only their preparation must have finished.
    for p in pipeline.leftovers().await {
        coordinator.teardown.delete(p);
    }
    coordinator.teardown.finish().await;
    result
}

async fn pod_containers(
    client: &Client,
    pod: &str,
) -> Result<Vec<crate::containerd::Container>, LifecycleError> {
    let filter = format!("labels.\"{}\"==\"{}\"", labels::POD, pod);
    Ok(client.list_containers(&filter).await?)
}

/// Removes every containerd object of the pod, whatever state it was left in.
async fn remove_objects(client: &Client, pod: &str) -> Result<(), LifecycleError> {
    let containers = pod_containers(client, pod).await?;
    let results = join_all(
        containers
            .iter()
            .map(|c| container::remove(client, &c.id, &c.snapshotter)),
    )
    .await;
    results.into_iter().collect()
}

/// Removes a pod: its containers, snapshots, namespaces, mounts and state directory.
/// Idempotent for a pod that is half gone; refuses a running pod unless `force`.
pub async fn remove(
    client: &Client,
    root: &Path,
    pod: &str,
    force: bool,
) -> Result<(), LifecycleError> {
    if !crate::manifest::is_dns_label(pod) {
        return Err(LifecycleError::BadPodName {
            pod: pod.to_string(),
        });
    }
    let dir = pod_dir(root, client.namespace(), pod);
    let containers = pod_containers(client, pod).await?;
    if containers.is_empty() && !dir.exists() {
        return Err(LifecycleError::PodNotFound {
            pod: pod.to_string(),
            namespace: client.namespace().to_string(),
        });
    }
    if !force {
        for c in &containers {
            if matches!(client.task_status(&c.id).await?, Some(s) if s != TaskStatus::Stopped) {
                return Err(LifecycleError::PodRunning {
                    pod: pod.to_string(),
                });
            }
        }
    }
    remove_objects(client, pod).await?;
    destroy_sandbox(dir).await
}
