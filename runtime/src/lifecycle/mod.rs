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
mod pause;
mod plan;
mod probing;
mod recover;
mod runner;
mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::watch;

use crate::claims::ClaimError;
use crate::containerd::{labels, Client, ContainerdError, TaskStatus};
use crate::image::{ImageError, ResolvedImage};
use crate::network;
use crate::oci::{self, OciError};
use crate::pods;
use crate::reference::ReferenceError;
use crate::sandbox::{Sandbox, SandboxConfig, SandboxError};
use crate::status::{PodStatus, RestartPolicy, Role};
pub use backoff::{BackoffPolicy, DEFAULT_BASE, DEFAULT_CAP};
use coordinator::Coordinator;
use plan::{plan_containers, Pipeline, Step};
pub use recover::{conclude, recover};
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

impl StopRequest {
    /// Sends `self` on `sender` unless a request at least as strong was sent: a request
    /// never lowers an earlier one (a graceful stop after a kill still kills).
    pub fn raise(self, sender: &watch::Sender<StopRequest>) {
        sender.send_if_modified(|r| {
            let raise = self > *r;
            if raise {
                *r = self;
            }
            raise
        });
    }
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
    /// `jobs::run` was given a pod no Job made.
    #[error("the pod was not made by a Job")]
    NotAJob,
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
    /// persistentVolumeClaim volumes naming claims neither given with the pod nor on this
    /// host (the scheduler's `persistentvolumeclaim "x" not found`).
    #[error("{}", crate::claims::missing_text(.missing))]
    ClaimNotFound {
        missing: Vec<crate::claims::MissingClaim>,
    },
    /// The claim store refused or failed (an immutable field changed, ReadWriteOncePod
    /// taken ...).
    #[error(transparent)]
    Claim(#[from] ClaimError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error(transparent)]
    Oci(#[from] OciError),
    /// The pod's cgroup could not be set up or removed.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
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
    #[error(transparent)]
    Record(#[from] crate::pods::PodsError),
    /// A live process supervises the pod already.
    #[error("pod {pod:?} is supervised by process {pid}")]
    Supervised { pod: String, pid: i32 },
    #[error("pod {pod:?} has no manifest recorded (pod.json): it cannot be adopted")]
    NoRecord { pod: String },
    /// The pod's namespaces are gone (the host rebooted, or they were released), and its
    /// containers with them.
    #[error("pod {pod:?} lost its sandbox (its namespaces are gone, as after a reboot)")]
    SandboxLost { pod: String },
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
    /// How images are pulled: credentials, plain-HTTP registries.
    pub registries: crate::image::RegistryConfig,
    /// Told about each step of an image pull, for a progress display.
    pub pull_progress: crate::image::Progress<crate::image::PullStep>,
    /// Stops the admission's image pulls (a stop asked for before the pod started).
    pub pull_cancel: crate::image::Cancel,
    /// The network pods join (CNI), and where its plugins are.
    pub network: crate::network::NetworkOptions,
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
    /// The ConfigMaps and Secrets the pod refers to (only those).
    objects: crate::manifest::Objects,
    /// The pod fields `fieldRef` reads that are only known here: the pod's addresses are
    /// filled in once its network is attached.
    live: std::sync::Mutex<crate::downward::LiveFields>,
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

    /// Creates the pod's cgroup with the pod-level CPU shares, quota and memory limit (see
    /// [`crate::cgroups`]) before any container is created under it. Idempotent, so a
    /// supervisor adopting the pod does it again.
    fn apply_pod_cgroup(&self) -> Result<(), LifecycleError> {
        let values =
            crate::cgroups::PodCgroup::of(&self.pod).map_err(crate::cgroups::CgroupError::from)?;
        let name = crate::cgroups::pod_cgroup_name(&self.shim_group);
        tracing::debug!(pod = %self.pod_name, cgroup = %name, ?values, "pod cgroup");
        crate::cgroups::apply_pod_cgroup(&name, &values)?;
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
                read_only: m.read_only.unwrap_or(false)
                    || self.sandbox.is_read_only_volume(&m.name),
            });
        }
        let live = self.live_fields();
        let objects = self.current_objects();
        Ok(oci::container_spec(&oci::ContainerInput {
            pod: &self.pod,
            container,
            image: &image.config,
            sandbox: &self.sandbox,
            container_id: id,
            shim_group: &self.shim_group,
            host: crate::cgroups::host(),
            mounts,
            objects: &objects,
            live: &live,
        })?)
    }

    /// The pod's ConfigMaps and Secrets as they are now: the daemon rewrites the kept copy
    /// when they change in its manifests dir, and a container created later reads the new
    /// values, as the kubelet resolves env at every container start.
    fn current_objects(&self) -> crate::manifest::Objects {
        if self.objects.is_empty() {
            return crate::manifest::Objects::default();
        }
        Sandbox::kept_objects(&self.pod_dir)
            .ok()
            .filter(|o| !o.is_empty())
            .unwrap_or_else(|| self.objects.clone())
    }

    /// The live pod fields as they stand now.
    fn live_fields(&self) -> crate::downward::LiveFields {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Records the pod's addresses once its network is attached (`status.podIP` in env).
    fn set_pod_ips(&self, ips: Vec<std::net::IpAddr>) {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pod_ips = ips;
    }

    /// Whether a container's env reads the pod's addresses, so the network must be
    /// attached before any spec is built.
    fn env_reads_pod_ip(&self) -> bool {
        self.pod.spec.iter().any(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(&s.containers)
                .any(crate::expand::reads_pod_ip)
        })
    }
}

/// Runs a validated pod to its end: init containers in order, then all main containers,
/// restarted per the pod's `restartPolicy`, until the pod is done, its deadline runs out or
/// `stop` asks otherwise (see [`StopRequest`]). Returns the pod's final status. On an
/// error, everything created is removed.
pub async fn run(
    client: &Client,
    pod: crate::manifest::RunnablePod,
    opts: &RunOptions,
    observer: Arc<dyn Observer>,
    stop: watch::Receiver<StopRequest>,
) -> Result<PodStatus, LifecycleError> {
    admit(client, pod, opts, observer, None)
        .await?
        .run(stop)
        .await
}

/// A pod admitted on this host: its images resolved, its sandbox created, its records
/// written; nothing of it runs yet. [`Admitted::run`] runs it to its end.
pub struct Admitted {
    ctx: Arc<PodContext>,
    plan: Vec<Arc<Step>>,
    shared: Arc<Shared>,
    /// What a restarted supervisor found of each container (see [`recover`]).
    recovered: Option<Vec<recover::Recovery>>,
    remove: bool,
    /// The CNI ADD under way, which the first container start waits for.
    network: Option<NetworkSetup>,
}

/// The pod's network being attached (CNI ADD, on a blocking thread): its addresses.
pub(crate) type NetworkSetup =
    tokio::task::JoinHandle<Result<Vec<std::net::IpAddr>, network::NetworkError>>;

impl Admitted {
    /// The pod's name.
    pub fn name(&self) -> &str {
        &self.ctx.pod_name
    }

    /// Runs the pod to its end (see [`run`]).
    pub async fn run(
        self,
        stop: watch::Receiver<StopRequest>,
    ) -> Result<PodStatus, LifecycleError> {
        let Self {
            ctx,
            plan,
            shared,
            recovered,
            remove,
            network,
        } = self;
        let status_writer = spawn_status_writer(&shared);
        let result = run_containers(&ctx, plan, recovered, &shared, stop, remove, network).await;
        status_writer.abort();
        let _ = status_writer.await;
        match result {
            Ok(()) => {
                let status = finish(&ctx, &shared, remove).await;
                tracing::debug!(pod = %ctx.pod_name, "finished");
                status
            }
            Err(e) => {
                let cleanup = remove_objects(&ctx.client, &ctx.pod_name).await;
                let cleanup = match cleanup {
                    Ok(()) => destroy_sandbox(ctx.pod_dir.clone()).await,
                    Err(c) => Err(c),
                };
                Err(with_cleanup(e, cleanup))
            }
        }
    }
}

/// Admits a validated pod: checks it does not exist, settles its claims (those it uses exist
/// or come with it, a ReadWriteOncePod one is free; those given are created: see
/// [`crate::claims::Store::admit`]), resolves every image and creates the sandbox at once,
/// and records the pod (`pod.json`, and `supervisor.json` naming this process; with
/// `socket`, as the daemon serving that API socket). On an error nothing of the pod is
/// left, nor any claim it created.
pub async fn admit(
    client: &Client,
    input: crate::manifest::RunnablePod,
    opts: &RunOptions,
    observer: Arc<dyn Observer>,
    socket: Option<&Path>,
) -> Result<Admitted, LifecycleError> {
    let admitted = (std::time::SystemTime::now(), std::time::Instant::now());
    let crate::manifest::RunnablePod {
        mut pod,
        objects,
        claims,
        ..
    } = input;
    // The API server assigns every pod its uid on create, whatever the manifest says.
    pod.metadata.uid = Some(new_uid());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = client.namespace().to_string();
    let dir = pod_dir(&opts.root, &namespace, &name);
    if dir.exists() || !pod_containers(client, &name).await?.is_empty() {
        return Err(LifecycleError::PodExists {
            pod: name,
            namespace,
        });
    }

    // The claims it uses must exist (or come with it), a ReadWriteOncePod one be free; those
    // given are created, as `kubectl apply` creates every object of the file. Until the
    // pod's record names them, the admission does, for other admissions' checks.
    let store = crate::claims::Store::new(&opts.root, &namespace);
    let claims = {
        let (store, pod) = (store.clone(), pod.clone());
        tokio::task::spawn_blocking(move || store.admit(&pod, &claims))
            .await
            .map_err(|e| LifecycleError::Join(e.to_string()))?
            .map_err(|e| match e {
                ClaimError::Missing { missing } => LifecycleError::ClaimNotFound { missing },
                e => e.into(),
            })?
    };
    match admit_pod(
        client, pod, objects, opts, observer, socket, admitted, &store,
    )
    .await
    {
        Ok(a) => {
            claims.commit();
            Ok(a)
        }
        Err(e) => {
            // The claims this admission created go with it: bad input leaves nothing.
            let cleanup = tokio::task::spawn_blocking(move || claims.rollback())
                .await
                .map_err(|e| LifecycleError::Join(e.to_string()))
                .and_then(|r| r.map_err(LifecycleError::from));
            Err(with_cleanup(e, cleanup))
        }
    }
}

/// [`admit`] once the pod's claims are settled: sandbox, images, records.
#[allow(clippy::too_many_arguments)]
async fn admit_pod(
    client: &Client,
    pod: Pod,
    objects: crate::manifest::Objects,
    opts: &RunOptions,
    observer: Arc<dyn Observer>,
    socket: Option<&Path>,
    admitted: (std::time::SystemTime, std::time::Instant),
    claims: &crate::claims::Store,
) -> Result<Admitted, LifecycleError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = client.namespace().to_string();
    let dir = pod_dir(&opts.root, &namespace, &name);
    let exists = || LifecycleError::PodExists {
        pod: name.clone(),
        namespace: namespace.clone(),
    };
    let claims_dir = claims.dir();

    // The network is chosen and checked (plugins, routes, hostPorts) before anything exists.
    let planned = Sandbox::planned(SandboxConfig {
        dir: &dir,
        pod: &pod,
        objects: &objects,
        live: &crate::downward::LiveFields::default(),
        claims_dir: &claims_dir,
    })?;
    let (attachment, host_ip) = {
        let (network, pod, root, namespace) = (
            opts.network.clone(),
            pod.clone(),
            opts.root.clone(),
            namespace.clone(),
        );
        let netns = planned.netns.clone().unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            network::plan(&network, &pod, &root, &namespace, &netns)
                .map(|a| (a, network::host_ip()))
        })
        .await
        .map_err(|e| LifecycleError::Join(e.to_string()))??
    };

    let live = crate::downward::LiveFields {
        node_name: crate::downward::LiveFields::host_node_name(),
        host_ips: host_ip.into_iter().collect(),
        pod_ips: Vec::new(),
    };

    tracing::debug!(pod = %name, "resolving images, creating the sandbox");
    let plan = plan_containers(client, &pod, opts, false);
    let sandbox = {
        let dir = dir.clone();
        let pod = pod.clone();
        let root = opts.root.clone();
        let attachment = attachment.clone();
        let (objects, live) = (objects.clone(), live.clone());
        let claims_dir = claims_dir.clone();
        tokio::task::spawn_blocking(move || -> Result<Sandbox, LifecycleError> {
            let sandbox = Sandbox::create(SandboxConfig {
                dir: &dir,
                pod: &pod,
                objects: &objects,
                live: &live,
                claims_dir: &claims_dir,
            })?;
            if let Some(a) = &attachment {
                if let Err(e) = network::claim(&root, &dir, a) {
                    return Err(with_cleanup(
                        e.into(),
                        Sandbox::destroy(&dir).map_err(Into::into),
                    ));
                }
            }
            Ok(sandbox)
        })
    };
    let (plan, sandbox) = tokio::join!(plan, sandbox);
    tracing::debug!(pod = %name, "images resolved, sandbox created");
    let sandbox = sandbox.map_err(|e| LifecycleError::Join(e.to_string()))?;
    let (plan, sandbox) = match (plan, sandbox) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(e), Ok(_)) => return Err(with_cleanup(e, destroy_sandbox(dir).await)),
        (_, Err(LifecycleError::Sandbox(SandboxError::AlreadyExists { .. }))) => {
            return Err(exists())
        }
        (Err(e), Err(_)) => return Err(e),
        (Ok(_), Err(e)) => return Err(e),
    };

    let shim_group = format!("{namespace}.{name}.{:016x}", rand::random::<u64>());
    if let Err(e) = record_start(&dir, &pod, &shim_group, socket) {
        return Err(with_cleanup(e, destroy_sandbox(dir).await));
    }
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
        policy_of(&pod),
        statuses,
        Some(&dir),
        observer,
    );
    if crate::sandbox::dns::missing_cluster_dns(&pod) {
        // After the kubelet's event on a node without clusterDNS.
        shared.event(
            EventType::Warning,
            "MissingClusterDNS",
            None,
            "podctl has no cluster DNS and cannot create Pod using \"ClusterFirst\" policy. \
             Falling back to \"Default\" policy."
                .to_string(),
        );
    }
    for warning in &sandbox.dns_warnings {
        shared.event(
            EventType::Warning,
            "DNSConfigForming",
            None,
            warning.clone(),
        );
    }
    let sources = crate::expand::EnvSources {
        pod: &pod,
        objects: &objects,
        live: &live,
    };
    for step in &plan {
        for message in crate::expand::env_from_skipped(&step.container, &sources) {
            shared.event(
                EventType::Warning,
                "InvalidEnvironmentVariableNames",
                Some(&step.container.name),
                message,
            );
        }
    }
    for step in &plan {
        for (reason, message) in &step.image_events {
            shared.event(
                EventType::Normal,
                reason,
                Some(&step.container.name),
                message.clone(),
            );
        }
    }
    shared.set_qos_class(
        crate::cgroups::QosClass::of_pod(&pod)
            .ok()
            .map(crate::cgroups::QosClass::as_str),
    );
    let host_network = planned.netns.is_none();
    shared.set_addresses(
        host_ip,
        if host_network {
            host_ip.into_iter().collect()
        } else {
            Vec::new()
        },
    );
    // ADD runs while the containers are prepared; the first start waits for it.
    let network = attachment.filter(|a| !a.is_claim_only()).map(|_| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || network::attach(&dir))
    });
    let ctx = PodContext::new(client, pod, dir, sandbox, shim_group, opts, objects, live);
    Ok(Admitted {
        ctx,
        plan,
        shared,
        recovered: None,
        remove: opts.remove,
        network,
    })
}

/// A random (version 4) UUID, the form of the uids the API server assigns.
pub(crate) fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn policy_of(pod: &Pod) -> RestartPolicy {
    RestartPolicy::from_spec(pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()))
}

impl PodContext {
    #[allow(clippy::too_many_arguments)]
    fn new(
        client: &Client,
        pod: Pod,
        dir: PathBuf,
        sandbox: Sandbox,
        shim_group: String,
        opts: &RunOptions,
        objects: crate::manifest::Objects,
        live: crate::downward::LiveFields,
    ) -> Arc<Self> {
        Arc::new(PodContext {
            client: client.clone(),
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
            io_dir: dir.join("io"),
            pod_dir: dir,
            sandbox,
            shim_group,
            shim_gate: gate::ShimGate::default(),
            backoff: opts.backoff,
            log_rotation: opts.log_rotation,
            grace: grace_period(&pod),
            pod,
            objects,
            live: std::sync::Mutex::new(live),
        })
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

/// Releases a pod's namespaces and mounts (`destroy`: and removes its state dir).
async fn destroy_or_release(dir: &Path, destroy: bool) -> Result<(), LifecycleError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<(), LifecycleError> {
        // DEL while the namespace pin still holds the pod's interface; a failed DEL keeps
        // everything (and its record) for `podctl rm` to try again.
        network::detach(&dir)?;
        // runc removes a container's own cgroup, not the pod's above it. Its name is read
        // from the state dir: before `destroy`, which deletes it; after `release`, so that
        // a cgroup that will not go keeps no mount.
        if destroy {
            crate::cgroups::remove_pod_cgroup_of(&dir)?;
            Sandbox::destroy(&dir)?;
        } else {
            let released = Sandbox::release(&dir).map_err(LifecycleError::from);
            let removed = crate::cgroups::remove_pod_cgroup_of(&dir).map_err(LifecycleError::from);
            match (released, removed) {
                (Ok(()), Ok(())) => {}
                (Err(e), Ok(())) | (Ok(()), Err(e)) => return Err(e),
                (Err(e), Err(c)) => return Err(with_cleanup(e, Err(c))),
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| LifecycleError::Join(e.to_string()))?
}

/// How long a step of a container's restart keeps being retried while containerd cannot be
/// reached (a restart of containerd must not unwind the pod).
const CONTAINERD_RETRY_FOR: Duration = Duration::from_secs(60);

/// How often such a step is tried.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// Whether a step that failed with `e` is tried again: containerd is away, and has been
/// for less than [`CONTAINERD_RETRY_FOR`] since the first try.
fn worth_retrying(e: &LifecycleError, since: std::time::Instant) -> bool {
    let transient = matches!(e, LifecycleError::Containerd(c) if c.is_transient());
    if transient {
        tracing::debug!(error = %e, "containerd away; trying again");
    }
    transient && since.elapsed() < CONTAINERD_RETRY_FOR
}

/// Runs `op` again while it fails only because containerd is away (see
/// [`worth_retrying`]).
async fn retrying<T, F, Fut>(mut op: F) -> Result<T, LifecycleError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, LifecycleError>>,
{
    let since = std::time::Instant::now();
    loop {
        match op().await {
            Err(e) if worth_retrying(&e, since) => tokio::time::sleep(RETRY_EVERY).await,
            other => return other,
        }
    }
}

/// An observer for a pod nobody watches.
struct NoObserver;

impl Observer for NoObserver {
    fn event(&self, _: Event<'_>) {}
}

async fn destroy_sandbox(dir: PathBuf) -> Result<(), LifecycleError> {
    destroy_or_release(&dir, true).await
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
        // is retried here by label. The network's DEL needs no container: it runs alongside.
        let dir = ctx.pod_dir.clone();
        let detach = tokio::task::spawn_blocking(move || network::detach(&dir));
        let (removed, detached) = tokio::join!(remove_objects(&ctx.client, &ctx.pod_name), detach);
        let detached = detached
            .map_err(|e| LifecycleError::Join(e.to_string()))
            .and_then(|d| d.map_err(Into::into));
        match (removed, detached) {
            (Ok(()), Ok(())) => {}
            (Err(e), Ok(())) | (Ok(()), Err(e)) => return Err(e),
            (Err(e), Err(d)) => return Err(with_cleanup(e, Err(d))),
        }
        destroy_sandbox(ctx.pod_dir.clone()).await?;
        shared.sandbox_released();
        return Ok(shared.snapshot());
    }
    // The final phase is on disk already (the coordinator saved it): a supervisor adopting
    // the pod after a crash from here on only concludes it. Namespaces and mounts go first,
    // so a failure to write the status cannot keep them.
    pause::stop(&ctx.client, &ctx.pod_name).await?;
    destroy_or_release(&ctx.pod_dir, false).await?;
    shared.sandbox_released();
    let status = shared.snapshot();
    let path = ctx.pod_dir.join(pods::files::STATUS);
    pods::write_json(&path, &status).map_err(|source| LifecycleError::Io { path, source })?;
    let _ = std::fs::remove_file(ctx.pod_dir.join(pods::files::SUPERVISOR));
    Ok(status)
}

/// Records the pod for the day-2 commands and for a supervisor that adopts it after a
/// crash, before anything runs: its manifest, the shim group its containers share, and
/// this process as its supervisor (see [`crate::pods`]).
fn record_start(
    dir: &Path,
    pod: &Pod,
    shim_group: &str,
    socket: Option<&Path>,
) -> Result<(), LifecycleError> {
    let io = |path: PathBuf| move |source| LifecycleError::Io { path, source };
    let io_dir = dir.join("io");
    std::fs::create_dir_all(&io_dir).map_err(io(io_dir.clone()))?;
    let manifest = dir.join(pods::files::MANIFEST);
    pods::write_json(&manifest, pod).map_err(io(manifest.clone()))?;
    let group = dir.join(pods::files::SHIM_GROUP);
    std::fs::write(&group, shim_group).map_err(io(group.clone()))?;
    record_supervisor(dir, socket)
}

/// Names this process as the pod's supervisor.
fn record_supervisor(dir: &Path, socket: Option<&Path>) -> Result<(), LifecycleError> {
    if let Some(mut me) = pods::Supervisor::current() {
        me.socket = socket.map(Path::to_path_buf);
        let path = dir.join(pods::files::SUPERVISOR);
        pods::write_json(&path, &me).map_err(|source| LifecycleError::Io { path, source })?;
    }
    Ok(())
}

/// Keeps `status.json` current while the pod runs, at most every [`STATUS_EVERY`]: a crash
/// of podctl leaves the last state on disk, and `podctl ps`/`inspect` read it.
fn spawn_status_writer(shared: &Arc<Shared>) -> tokio::task::JoinHandle<()> {
    let shared = shared.clone();
    let mut changed = shared.changed();
    tokio::spawn(async move {
        loop {
            shared.save();
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
    recovered: Option<Vec<recover::Recovery>>,
    shared: &Arc<Shared>,
    stop: watch::Receiver<StopRequest>,
    remove: bool,
    network: Option<NetworkSetup>,
) -> Result<(), LifecycleError> {
    let observer = shared.observer().clone();
    let mut pipeline = Pipeline::new(ctx, &observer, plan, recovered);
    let mut coordinator = Coordinator::new(
        ctx.clone(),
        shared.clone(),
        stop,
        remove,
        pipeline.plan.len(),
    );
    coordinator.network = network;
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
    if force {
        // A DEL that cannot succeed (plugins gone, a config changed) must not keep a pod
        // forever: forced, its record is dropped with a warning naming what may be left.
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = network::detach(&dir) {
                tracing::warn!(error = %e, "the pod's network could not be torn down (CNI DEL); its record is dropped, and what the plugins made may be left behind");
                network::forget(&dir);
            }
        })
        .await
        .map_err(|e| LifecycleError::Join(e.to_string()))?;
    }
    destroy_sandbox(dir).await
}
