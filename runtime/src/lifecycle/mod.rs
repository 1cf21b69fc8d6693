//! The pod state machine: init containers one after another, each to a successful exit, then
//! every main container; stop on request; teardown.
//!
//! Start path: the next container is prepared (record, snapshot, task created, exit watch
//! armed) while the previous init container still runs, so only `Tasks.Start` waits on its
//! exit. Every container of a pod is served by one runc shim (grouped by the pod's uid).
//! Teardown of finished containers runs off the critical path.

mod container;
mod logs;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::containerd::{labels, Client, ContainerdError};
use crate::image::{self, ImageError, ResolvedImage};
use crate::oci::{self, OciError};
use crate::reference::{self, ReferenceError};
use crate::sandbox::{Sandbox, SandboxConfig, SandboxError};
use crate::status::{ContainerState, ContainerStatus, Phase, PodStatus, Role, Waiting};
use container::Prepared;

const DEFAULT_GRACE: Duration = Duration::from_secs(30);
const SIGKILL: u32 = 9;

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
    Started {
        container: &'a str,
        role: Role,
    },
    Exited {
        container: &'a str,
        role: Role,
        exit_code: i32,
        reason: &'a str,
    },
    /// The pod is being stopped on request.
    Stopping,
    Warning(&'a str),
}

/// Receives [`Event`]s; called from several tasks at once.
pub trait Observer: Send + Sync {
    fn event(&self, event: Event<'_>);
}

/// Errors of the pod lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(
        "pod {pod:?} already exists in namespace {namespace:?}: remove it with `podctl rm {pod}`"
    )]
    PodExists { pod: String, namespace: String },
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
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("container {container:?}: {source}")]
    Oci { container: String, source: OciError },
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
}

impl PodContext {
    fn spec_for(
        &self,
        container: &Container,
        image: &ResolvedImage,
        id: &str,
    ) -> Result<oci_spec::runtime::Spec, LifecycleError> {
        let oci_err = |source| LifecycleError::Oci {
            container: container.name.clone(),
            source,
        };
        let mut mounts = Vec::new();
        for m in container.volume_mounts.iter().flatten() {
            let source = self.sandbox.mount_source(m)?;
            mounts.push(oci::VolumeMountSource {
                source,
                destination: PathBuf::from(&m.mount_path),
                read_only: m.read_only.unwrap_or(false),
            });
        }
        oci::container_spec(&oci::ContainerInput {
            pod: &self.pod,
            container,
            image: &image.config,
            sandbox: &self.sandbox,
            container_id: id,
            shim_group: &self.shim_group,
            mounts,
        })
        .map_err(oci_err)
    }
}

/// Runs a validated pod to its end: init containers in order (each must exit 0), then all
/// main containers, until they exit or `stop` turns true (then: stop signal, grace period,
/// SIGKILL). Returns the pod's final status. On an error, everything created is removed.
pub async fn run(
    client: &Client,
    pod: Pod,
    opts: &RunOptions,
    observer: Arc<dyn Observer>,
    mut stop: watch::Receiver<bool>,
) -> Result<PodStatus, LifecycleError> {
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

    let images = resolve_images(client, &pod, &opts.snapshotter);
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
    let (images, sandbox) = tokio::join!(images, sandbox);
    let sandbox = sandbox.map_err(|e| LifecycleError::Join(e.to_string()))?;
    let (images, sandbox) = match (images, sandbox) {
        (Ok(i), Ok(s)) => (i, s),
        (Err(e), Ok(_)) => return Err(with_cleanup(e, destroy_sandbox(dir).await)),
        (_, Err(SandboxError::AlreadyExists { .. })) => return Err(exists()),
        (Err(e), Err(_)) => return Err(e),
        (Ok(_), Err(e)) => return Err(e.into()),
    };

    let io_dir = dir.join("io");
    if let Err(source) = std::fs::create_dir_all(&io_dir) {
        let e = LifecycleError::Io {
            path: io_dir,
            source,
        };
        return Err(with_cleanup(e, destroy_sandbox(dir).await));
    }
    let restart_policy = pod.spec.as_ref().and_then(|s| s.restart_policy.clone());
    if restart_policy.as_deref() != Some("Never") {
        observer.event(Event::Warning(&format!(
            "restartPolicy {} asks for restarts, which podctl does not do yet: every container runs once",
            restart_policy.as_deref().unwrap_or("Always (the default)")
        )));
    }
    let ctx = Arc::new(PodContext {
        client: client.clone(),
        pod_name: name.clone(),
        pod_dir: dir.clone(),
        io_dir,
        sandbox,
        shim_group: format!("{namespace}.{name}.{:016x}", rand::random::<u64>()),
        pod,
    });
    let images = Arc::new(images);

    match run_containers(&ctx, &images, &observer, &mut stop).await {
        Ok(status) => {
            let finished = finish(&ctx, &status, opts.remove).await;
            finished.map(|()| status)
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

/// Resolves every distinct image of the pod at once; a missing one fails before anything is
/// created.
async fn resolve_images(
    client: &Client,
    pod: &Pod,
    snapshotter: &str,
) -> Result<HashMap<String, Arc<ResolvedImage>>, LifecycleError> {
    let mut names = BTreeSet::new();
    for (field, list) in containers_by_field(pod) {
        for (index, c) in list.iter().enumerate() {
            let raw = c.image.as_deref().unwrap_or_default();
            let normalized =
                reference::normalize(raw).map_err(|source| LifecycleError::Reference {
                    field,
                    index,
                    source,
                })?;
            names.insert(normalized);
        }
    }
    let resolved = join_all(names.iter().map(|n| image::resolve(client, n, snapshotter))).await;
    let mut out = HashMap::new();
    for (name, r) in names.into_iter().zip(resolved) {
        out.insert(name, Arc::new(r?));
    }
    Ok(out)
}

fn containers_by_field(pod: &Pod) -> [(&'static str, &[Container]); 2] {
    let spec = pod.spec.as_ref();
    [
        (
            "initContainers",
            spec.and_then(|s| s.init_containers.as_deref())
                .unwrap_or_default(),
        ),
        (
            "containers",
            spec.map(|s| s.containers.as_slice()).unwrap_or_default(),
        ),
    ]
}

fn image_of(images: &HashMap<String, Arc<ResolvedImage>>, c: &Container) -> Arc<ResolvedImage> {
    let normalized =
        reference::normalize(c.image.as_deref().unwrap_or_default()).unwrap_or_default();
    images[&normalized].clone()
}

type PrepareHandle = JoinHandle<Result<Prepared, LifecycleError>>;

fn spawn_prepare(
    ctx: &Arc<PodContext>,
    images: &HashMap<String, Arc<ResolvedImage>>,
    container: &Container,
    role: Role,
    observer: &Arc<dyn Observer>,
) -> PrepareHandle {
    let ctx = ctx.clone();
    let image = image_of(images, container);
    let container = container.clone();
    let observer = observer.clone();
    tokio::spawn(async move { Prepared::create(&ctx, &container, role, &image, &observer).await })
}

async fn join_prepare(h: PrepareHandle) -> Result<Prepared, LifecycleError> {
    h.await.map_err(|e| LifecycleError::Join(e.to_string()))?
}

/// A container that reads a subPath may depend on files an earlier init container creates,
/// so it is prepared only when its turn comes (the kubelet resolves subPaths at start).
fn may_prepare_early(c: &Container) -> bool {
    !c.volume_mounts
        .iter()
        .flatten()
        .any(|m| m.sub_path.as_deref().is_some_and(|s| !s.is_empty()))
}

fn waiting(reason: &str) -> ContainerState {
    ContainerState::Waiting(Waiting {
        reason: reason.to_string(),
    })
}

fn never_ran(c: &Container, role: Role) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        role,
        state: waiting("PodInitializing"),
        restart_count: 0,
    }
}

async fn run_containers(
    ctx: &Arc<PodContext>,
    images: &Arc<HashMap<String, Arc<ResolvedImage>>>,
    observer: &Arc<dyn Observer>,
    stop: &mut watch::Receiver<bool>,
) -> Result<PodStatus, LifecycleError> {
    let spec = ctx.pod.spec.clone().unwrap_or_default();
    let inits = spec.init_containers.clone().unwrap_or_default();
    let mains = spec.containers.clone();
    let grace = spec
        .termination_grace_period_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_GRACE);
    let client = &ctx.client;

    let mut init_statuses = Vec::new();
    let mut background: Vec<JoinHandle<()>> = Vec::new();
    // Exited containers whose tasks wait to be deleted until the next task exists: deleting
    // the last task of the pod's shim while the next one is being created makes the shim
    // shut down under that create.
    let mut finished: Vec<Prepared> = Vec::new();
    let prepare_mains = |ctx: &Arc<PodContext>| -> Vec<Option<PrepareHandle>> {
        mains
            .iter()
            .map(|c| {
                may_prepare_early(c).then(|| spawn_prepare(ctx, images, c, Role::Main, observer))
            })
            .collect()
    };
    let mut main_handles: Option<Vec<Option<PrepareHandle>>> = None;
    let mut next: Option<PrepareHandle> = inits
        .first()
        .map(|c| spawn_prepare(ctx, images, c, Role::Init, observer));
    let mut failed = false;
    let mut stopped = *stop.borrow();

    for (i, c) in inits.iter().enumerate() {
        if failed || stopped {
            init_statuses.push(never_ran(c, Role::Init));
            continue;
        }
        let mut current = match next.take() {
            Some(h) => join_prepare(h).await?,
            None => Prepared::create(ctx, c, Role::Init, &image_of(images, c), observer).await?,
        };
        flush_deletes(client, &mut finished, &mut background);
        // Pipeline: prepare what comes next while this one runs.
        match inits.get(i + 1) {
            Some(n) if may_prepare_early(n) => {
                next = Some(spawn_prepare(ctx, images, n, Role::Init, observer))
            }
            Some(_) => {}
            None => main_handles = Some(prepare_mains(ctx)),
        }
        current.start(client, observer.as_ref()).await;
        stopped = supervise(client, std::slice::from_mut(&mut current), stop, grace).await?;
        let status = current.status();
        report_exit(observer.as_ref(), &status);
        failed = status.exit_code() != Some(0);
        finished.push(current);
        init_statuses.push(status);
    }

    let mut main_statuses = Vec::new();
    if failed || stopped {
        flush_deletes(client, &mut finished, &mut background);
        // Tasks prepared ahead are discarded unstarted.
        for h in next
            .into_iter()
            .chain(main_handles.into_iter().flatten().flatten())
        {
            if let Ok(p) = join_prepare(h).await {
                background.push(spawn_delete_task(client, p));
            }
        }
        main_statuses.extend(mains.iter().map(|c| never_ran(c, Role::Main)));
    } else {
        let handles = main_handles.unwrap_or_else(|| prepare_mains(ctx));
        let mut running = Vec::new();
        for (c, h) in mains.iter().zip(handles) {
            let p = match h {
                Some(h) => join_prepare(h).await?,
                None => {
                    Prepared::create(ctx, c, Role::Main, &image_of(images, c), observer).await?
                }
            };
            running.push(p);
        }
        flush_deletes(client, &mut finished, &mut background);
        for p in running.iter_mut() {
            p.start(client, observer.as_ref()).await;
        }
        stopped = supervise(client, &mut running, stop, grace).await? || stopped;
        for p in running {
            let status = p.status();
            report_exit(observer.as_ref(), &status);
            background.push(spawn_delete_task(client, p));
            main_statuses.push(status);
        }
    }
    for h in background {
        let _ = h.await;
    }

    let mains_ok = main_statuses.iter().all(|s| s.exit_code() == Some(0));
    let (phase, reason, message) = if stopped {
        (
            Phase::Failed,
            Some("Stopped".to_string()),
            Some("the pod was stopped on request".to_string()),
        )
    } else if failed {
        (
            Phase::Failed,
            None,
            Some("an init container failed".to_string()),
        )
    } else if mains_ok {
        (Phase::Succeeded, None, None)
    } else {
        (Phase::Failed, None, None)
    };
    Ok(PodStatus {
        name: ctx.pod_name.clone(),
        phase,
        reason,
        message,
        init_container_statuses: init_statuses,
        container_statuses: main_statuses,
    })
}

fn report_exit(observer: &dyn Observer, status: &ContainerStatus) {
    if let ContainerState::Terminated(t) = &status.state {
        observer.event(Event::Exited {
            container: &status.name,
            role: status.role,
            exit_code: t.exit_code,
            reason: &t.reason,
        });
    }
}

fn flush_deletes(
    client: &Client,
    finished: &mut Vec<Prepared>,
    background: &mut Vec<JoinHandle<()>>,
) {
    background.extend(finished.drain(..).map(|p| spawn_delete_task(client, p)));
}

fn spawn_delete_task(client: &Client, mut p: Prepared) -> JoinHandle<()> {
    let client = client.clone();
    tokio::spawn(async move {
        if let Err(e) = p.delete_task(&client).await {
            tracing::warn!(container = %p.name, error = %e, "deleting task");
        }
    })
}

/// Waits until every container has exited. When `stop` turns true meanwhile, sends each
/// running container its stop signal, then SIGKILL after `grace`. Returns whether a stop was
/// requested.
async fn supervise(
    client: &Client,
    containers: &mut [Prepared],
    stop: &mut watch::Receiver<bool>,
    grace: Duration,
) -> Result<bool, LifecycleError> {
    let targets: Vec<(String, u32)> = containers
        .iter()
        .filter(|p| p.is_running())
        .map(|p| (p.id.clone(), p.stop_signal()))
        .collect();
    let killer = async {
        let _ = stop.wait_for(|s| *s).await;
        for (id, signal) in &targets {
            let _ = client.kill_task(id, *signal, false).await;
        }
        tokio::time::sleep(grace).await;
        for (id, _) in &targets {
            let _ = client.kill_task(id, SIGKILL, true).await;
        }
        std::future::pending::<()>().await;
    };
    let waits = join_all(containers.iter_mut().map(|p| p.wait()));
    let results = tokio::select! {
        r = waits => r,
        _ = killer => unreachable!("the killer never finishes"),
    };
    for r in results {
        r?;
    }
    Ok(*stop.borrow())
}

/// What is left of a pod once it ended: with `remove`, nothing; otherwise its records,
/// snapshots, logs, volumes and `status.json` stay until `podctl rm`, while its namespaces and
/// mounts are released.
async fn finish(
    ctx: &Arc<PodContext>,
    status: &PodStatus,
    remove: bool,
) -> Result<(), LifecycleError> {
    if remove {
        remove_objects(&ctx.client, &ctx.pod_name).await?;
        return destroy_sandbox(ctx.pod_dir.clone()).await;
    }
    let path = ctx.pod_dir.join("status.json");
    let json = serde_json::to_vec_pretty(status).map_err(LifecycleError::Encode)?;
    std::fs::write(&path, json).map_err(|source| LifecycleError::Io { path, source })?;
    let dir = ctx.pod_dir.clone();
    tokio::task::spawn_blocking(move || Sandbox::release(&dir))
        .await
        .map_err(|e| LifecycleError::Join(e.to_string()))??;
    Ok(())
}

async fn pod_containers(
    client: &Client,
    pod: &str,
) -> Result<Vec<crate::containerd::Container>, LifecycleError> {
    let filter = format!("labels.\"{}\"=={}", labels::POD, pod);
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
            if matches!(client.task_status(&c.id).await?, Some(s) if s != 3) {
                return Err(LifecycleError::PodRunning {
                    pod: pod.to_string(),
                });
            }
        }
    }
    remove_objects(client, pod).await?;
    destroy_sandbox(dir).await
}
