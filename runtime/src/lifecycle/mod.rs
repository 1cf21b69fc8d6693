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

use crate::containerd::{labels, Client, ContainerdError, TaskStatus};
use crate::image::{self, ImageError, ResolvedImage};
use crate::oci::{self, OciError};
use crate::reference::{self, ReferenceError};
use crate::sandbox::{Sandbox, SandboxConfig, SandboxError};
use crate::status::{ContainerState, ContainerStatus, Phase, PodStatus, Role, Waiting};
use container::Prepared;

const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// The kubelet never gives a container less (`minimumGracePeriodInSeconds`), even for
/// `terminationGracePeriodSeconds: 0`.
const MINIMUM_GRACE: Duration = Duration::from_secs(2);
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
    Warning(&'a str),
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
    fn check_specs(&self, plan: &[Step]) -> Result<(), LifecycleError> {
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

/// Runs a validated pod to its end: init containers in order (each must exit 0), then all
/// main containers, until they exit or `stop` asks otherwise (see [`StopRequest`]). Returns
/// the pod's final status. On an error, everything created is removed.
pub async fn run(
    client: &Client,
    pod: Pod,
    opts: &RunOptions,
    observer: Arc<dyn Observer>,
    mut stop: watch::Receiver<StopRequest>,
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

    match run_containers(&ctx, plan, &observer, &mut stop, opts.remove).await {
        Ok(status) => {
            let finished = finish(&ctx, &status, opts.remove).await;
            tracing::debug!(pod = %name, "finished");
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

/// One container of the pod, in start order, with its resolved image.
struct Step {
    container: Container,
    role: Role,
    image: Arc<ResolvedImage>,
}

/// The pod's containers in start order (init, then main), each distinct image resolved once
/// and all at once; a missing image fails before anything is created.
async fn plan_containers(
    client: &Client,
    pod: &Pod,
    snapshotter: &str,
) -> Result<Vec<Step>, LifecycleError> {
    let spec = pod.spec.as_ref();
    let inits = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let mains = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let mut names = Vec::new();
    for (field, role, list) in [
        ("initContainers", Role::Init, inits),
        ("containers", Role::Main, mains),
    ] {
        for (index, c) in list.iter().enumerate() {
            let raw = c.image.as_deref().unwrap_or_default();
            let name = reference::normalize(raw).map_err(|source| LifecycleError::Reference {
                field,
                index,
                source,
            })?;
            names.push((c, role, name));
        }
    }
    let distinct: BTreeSet<&str> = names.iter().map(|(_, _, n)| n.as_str()).collect();
    let resolved = join_all(
        distinct
            .iter()
            .map(|n| image::resolve(client, n, snapshotter)),
    )
    .await;
    let mut images = HashMap::new();
    for (name, r) in distinct.into_iter().zip(resolved) {
        images.insert(name, Arc::new(r?));
    }
    Ok(names
        .iter()
        .map(|(c, role, name)| Step {
            container: (*c).clone(),
            role: *role,
            image: images[name.as_str()].clone(),
        })
        .collect())
}

type PrepareHandle = JoinHandle<Result<Prepared, LifecycleError>>;

fn spawn_prepare(
    ctx: &Arc<PodContext>,
    step: &Step,
    observer: &Arc<dyn Observer>,
) -> PrepareHandle {
    let ctx = ctx.clone();
    let image = step.image.clone();
    let container = step.container.clone();
    let role = step.role;
    let observer = observer.clone();
    tokio::spawn(async move { Prepared::create(&ctx, &container, role, &image, &observer).await })
}

async fn join_prepare(h: PrepareHandle) -> Result<Prepared, LifecycleError> {
    h.await.map_err(|e| LifecycleError::Join(e.to_string()))?
}

/// Whether a container's task may be created before its turn. runc resolves subPaths,
/// creates missing mount points and the working directory, and checks that the executable
/// exists, all at create time; so a container for which any of that happens inside a volume
/// that an earlier init container may be filling is created only at its turn, as the kubelet
/// creates every container. (An executable installed by an init container is caught by
/// retrying a failed early create at the container's turn.)
fn may_prepare_early(c: &Container, image: &ResolvedImage) -> bool {
    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    let in_a_volume = |path: &str| {
        mounts
            .iter()
            .any(|m| Path::new(path).starts_with(&m.mount_path))
    };
    let sub_path = mounts
        .iter()
        .any(|m| m.sub_path.as_deref().is_some_and(|s| !s.is_empty()));
    let nested_mount = mounts.iter().any(|inner| {
        mounts.iter().any(|outer| {
            !std::ptr::eq(inner, outer)
                && Path::new(&inner.mount_path).starts_with(&outer.mount_path)
        })
    });
    let image_work_dir = image
        .config
        .config()
        .as_ref()
        .and_then(|cfg| cfg.working_dir().clone())
        .unwrap_or_default();
    let work_dir = c.working_dir.as_deref().unwrap_or(&image_work_dir);
    let work_dir_in_volume = !work_dir.is_empty() && in_a_volume(work_dir);
    !(sub_path || nested_mount || work_dir_in_volume)
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

/// The containers of a pod in start order, with what has been prepared of them so far.
struct Pipeline<'a> {
    ctx: &'a Arc<PodContext>,
    observer: &'a Arc<dyn Observer>,
    plan: Vec<Step>,
    handles: Vec<Option<PrepareHandle>>,
    ready: Vec<Option<Prepared>>,
}

impl<'a> Pipeline<'a> {
    fn new(ctx: &'a Arc<PodContext>, observer: &'a Arc<dyn Observer>, plan: Vec<Step>) -> Self {
        let n = plan.len();
        Self {
            ctx,
            observer,
            plan,
            handles: (0..n).map(|_| None).collect(),
            ready: (0..n).map(|_| None).collect(),
        }
    }

    /// Creates the first container's task (which starts the pod's shim), then prepares every
    /// other container that may be prepared early, all at once: their tasks join that shim.
    async fn prepare_ahead(&mut self) -> Result<(), LifecycleError> {
        if self.plan.is_empty() {
            return Ok(());
        }
        self.ready[0] = Some(self.create(0).await?);
        for (i, step) in self.plan.iter().enumerate().skip(1) {
            if may_prepare_early(&step.container, &step.image) {
                self.handles[i] = Some(spawn_prepare(self.ctx, step, self.observer));
            }
        }
        Ok(())
    }

    /// Container `i`, prepared: from the pipeline, or created now when it had to wait for
    /// its turn. A task that could not be created ahead is created once more now: what it
    /// lacked (typically its executable) may be what the init containers just installed.
    async fn take(&mut self, i: usize) -> Result<Prepared, LifecycleError> {
        if let Some(p) = self.ready[i].take() {
            return Ok(p);
        }
        if let Some(h) = self.handles[i].take() {
            let early = join_prepare(h).await?;
            if !early.create_failed() {
                return Ok(early);
            }
            early.remove(&self.ctx.client).await?;
        }
        self.create(i).await
    }

    /// Creates container `i` now.
    async fn create(&self, i: usize) -> Result<Prepared, LifecycleError> {
        let step = &self.plan[i];
        Prepared::create(
            self.ctx,
            &step.container,
            step.role,
            &step.image,
            self.observer,
        )
        .await
    }

    /// Every container prepared but not taken; waits for preparations under way, so that
    /// everything they create is known before the pod is torn down.
    async fn leftovers(&mut self) -> Vec<Prepared> {
        let mut out: Vec<Prepared> = self.ready.iter_mut().filter_map(Option::take).collect();
        for h in self.handles.iter_mut().filter_map(Option::take) {
            if let Ok(p) = join_prepare(h).await {
                out.push(p);
            }
        }
        out
    }
}

/// Deletes finished containers in the background: their tasks always (so the shim can go),
/// their snapshots and records too when the pod is removed at the end.
struct Teardown<'a> {
    client: &'a Client,
    remove: bool,
    /// Exited containers held until the main containers have started: deleting the last
    /// task of the pod's shim while another is being created makes the shim shut down under
    /// that create, and deletes would compete with the creates on the start path.
    held: Vec<Prepared>,
    background: Vec<JoinHandle<()>>,
}

impl Teardown<'_> {
    fn hold(&mut self, p: Prepared) {
        self.held.push(p);
    }

    fn release(&mut self) {
        for p in std::mem::take(&mut self.held) {
            self.delete(p);
        }
    }

    /// Deletes a container's task, and its snapshot and record too when the pod is removed
    /// at the end or the container never ran (nothing of it is worth keeping).
    fn delete(&mut self, mut p: Prepared) {
        let client = self.client.clone();
        let remove = self.remove || !p.ran();
        self.background.push(tokio::spawn(async move {
            let result = match p.delete_task(&client).await {
                Ok(()) if remove => p.remove(&client).await,
                other => other,
            };
            if let Err(e) = result {
                tracing::warn!(container = %p.name, error = %e, "removing container");
            }
        }));
    }

    async fn finish(mut self) {
        self.release();
        for h in self.background {
            let _ = h.await;
        }
    }
}

async fn run_containers(
    ctx: &Arc<PodContext>,
    plan: Vec<Step>,
    observer: &Arc<dyn Observer>,
    stop: &mut watch::Receiver<StopRequest>,
    remove: bool,
) -> Result<PodStatus, LifecycleError> {
    let spec = ctx.pod.spec.clone().unwrap_or_default();
    let inits = spec.init_containers.clone().unwrap_or_default();
    let mains = spec.containers.clone();
    let mut pipeline = Pipeline::new(ctx, observer, plan);
    let mut teardown = Teardown {
        client: &ctx.client,
        remove,
        held: Vec::new(),
        background: Vec::new(),
    };
    let result = drive(&mut pipeline, &mut teardown, &inits, &mains, stop, &spec).await;
    // Tasks prepared ahead and never started are discarded; on an error the caller removes
    // everything by label, so only their preparation must have finished.
    for p in pipeline.leftovers().await {
        teardown.delete(p);
    }
    teardown.finish().await;
    result
}

async fn drive(
    pipeline: &mut Pipeline<'_>,
    teardown: &mut Teardown<'_>,
    inits: &[Container],
    mains: &[Container],
    stop: &mut watch::Receiver<StopRequest>,
    spec: &k8s_openapi::api::core::v1::PodSpec,
) -> Result<PodStatus, LifecycleError> {
    let grace = spec
        .termination_grace_period_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_GRACE)
        .max(MINIMUM_GRACE);
    let ctx = pipeline.ctx;
    let client = &ctx.client;
    let observer = pipeline.observer.clone();
    ctx.check_specs(&pipeline.plan)?;
    pipeline.prepare_ahead().await?;

    let mut init_statuses = Vec::new();
    let mut failed = false;
    let mut stopped = *stop.borrow() != StopRequest::None;
    for (i, c) in inits.iter().enumerate() {
        if failed || stopped {
            init_statuses.push(never_ran(c, Role::Init));
            continue;
        }
        let mut current = pipeline.take(i).await?;
        current.start(client, observer.as_ref()).await;
        stopped = supervise(client, std::slice::from_mut(&mut current), stop, grace).await?;
        let status = current.status();
        report_exit(observer.as_ref(), &status);
        failed = status.exit_code() != Some(0);
        teardown.hold(current);
        init_statuses.push(status);
    }

    let mut main_statuses = Vec::new();
    if failed || stopped {
        main_statuses.extend(mains.iter().map(|c| never_ran(c, Role::Main)));
    } else {
        let mut running = Vec::new();
        for i in inits.len()..inits.len() + mains.len() {
            running.push(pipeline.take(i).await?);
        }
        // A stop asked for while they were being created: none of them starts.
        if *stop.borrow() == StopRequest::None {
            for p in running.iter_mut() {
                p.start(client, observer.as_ref()).await;
            }
        }
        teardown.release();
        stopped = supervise(client, &mut running, stop, grace).await? || stopped;
        for p in running {
            let status = p.status();
            report_exit(observer.as_ref(), &status);
            teardown.hold(p);
            main_statuses.push(status);
        }
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

/// Waits until every container has exited. When a stop is requested meanwhile, sends each
/// running container its stop signal, then SIGKILL after `grace` (at once for
/// [`StopRequest::Now`]). Returns whether a stop was requested.
async fn supervise(
    client: &Client,
    containers: &mut [Prepared],
    stop: &mut watch::Receiver<StopRequest>,
    grace: Duration,
) -> Result<bool, LifecycleError> {
    let targets: Vec<(String, u32)> = containers
        .iter()
        .filter(|p| p.is_running())
        .map(|p| (p.id.clone(), p.stop_signal()))
        .collect();
    let killer = async {
        let _ = stop.wait_for(|s| *s >= StopRequest::Graceful).await;
        for (id, signal) in &targets {
            let _ = client.kill_task(id, *signal, false).await;
        }
        let now = async {
            let _ = stop.wait_for(|s| *s == StopRequest::Now).await;
        };
        tokio::select! {
            _ = tokio::time::sleep(grace) => {}
            _ = now => {}
        }
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
    Ok(*stop.borrow() != StopRequest::None)
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
        // The containers went as they finished (see Teardown); a removal that failed there
        // is retried here by label.
        remove_objects(&ctx.client, &ctx.pod_name).await?;
        return destroy_sandbox(ctx.pod_dir.clone()).await;
    }
    // Namespaces and mounts go first, so a failure to write the status cannot keep them.
    let dir = ctx.pod_dir.clone();
    tokio::task::spawn_blocking(move || Sandbox::release(&dir))
        .await
        .map_err(|e| LifecycleError::Join(e.to_string()))??;
    let path = ctx.pod_dir.join("status.json");
    let json = serde_json::to_vec_pretty(status).map_err(LifecycleError::Encode)?;
    std::fs::write(&path, json).map_err(|source| LifecycleError::Io { path, source })?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeMount;

    fn container(working_dir: Option<&str>, mounts: &[(&str, Option<&str>)]) -> Container {
        Container {
            name: "c".into(),
            working_dir: working_dir.map(Into::into),
            volume_mounts: Some(
                mounts
                    .iter()
                    .map(|(path, sub)| VolumeMount {
                        name: "v".into(),
                        mount_path: (*path).into(),
                        sub_path: sub.map(Into::into),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn image(working_dir: Option<&str>) -> ResolvedImage {
        let config = oci_spec::image::ConfigBuilder::default()
            .working_dir(working_dir.unwrap_or_default().to_string())
            .build()
            .unwrap();
        ResolvedImage {
            name: "busybox".into(),
            config: oci_spec::image::ImageConfigurationBuilder::default()
                .config(config)
                .build()
                .unwrap(),
            chain_id: String::new(),
            snapshotter: "overlayfs".into(),
        }
    }

    #[test]
    fn containers_waiting_on_init_output_are_created_in_turn() {
        let plain = image(None);
        let early = |c: Container| may_prepare_early(&c, &plain);
        assert!(early(container(None, &[("/data", None)])));
        assert!(early(container(Some("/app"), &[("/data", None)])));
        assert!(early(container(None, &[("/data", Some(""))])));
        assert!(early(container(Some("/database"), &[("/data", None)])));
        assert!(early(container(None, &[("/data", None), ("/cache", None)])));
        // subPath, working dir in a volume, a mount point inside another volume.
        assert!(!early(container(None, &[("/data", Some("conf"))])));
        assert!(!early(container(Some("/data/run"), &[("/data", None)])));
        assert!(!early(container(
            None,
            &[("/work", None), ("/work/cache", None)]
        )));
        // The image's working directory counts when the container sets none.
        let workdir_image = image(Some("/data/app"));
        assert!(!may_prepare_early(
            &container(None, &[("/data", None)]),
            &workdir_image
        ));
        assert!(may_prepare_early(
            &container(Some("/"), &[("/data", None)]),
            &workdir_image
        ));
    }
}
