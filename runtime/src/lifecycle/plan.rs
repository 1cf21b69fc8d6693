//! The pod's containers in start order, and the pipeline that prepares them ahead of their
//! turn: record, rootfs snapshot, stdout/stderr FIFOs and the created task, so that only
//! `Tasks.Start` waits on the previous init container's exit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::task::JoinHandle;

use super::container::Prepared;
use super::probing::Handlers;
use super::recover::Recovery;
use super::{LifecycleError, Observer, PodContext, RunOptions};
use crate::containerd::Client;
use crate::image::{self, PullOptions, PullPolicy, ResolvedImage};
use crate::reference;
use crate::status::Role;

/// One container of the pod, in start order, with its resolved image.
pub(crate) struct Step {
    pub container: Container,
    pub role: Role,
    pub image: Arc<ResolvedImage>,
    pub handlers: Handlers,
    /// The kubelet's image events for this container (reason, message), recorded once the
    /// pod is admitted.
    pub image_events: Vec<(&'static str, String)>,
}

/// The pod's containers in start order (init, then main), each distinct image made available
/// once, per the strongest `imagePullPolicy` of the containers naming it, and all at once; a
/// missing image or a failed pull fails before anything is created. `adopting` (a pod found
/// running) never pulls an image that is present, whatever the policy.
pub(crate) async fn plan_containers(
    client: &Client,
    pod: &Pod,
    opts: &RunOptions,
    adopting: bool,
) -> Result<Vec<Arc<Step>>, LifecycleError> {
    let spec = pod.spec.as_ref();
    let inits = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let mains = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let mut names = Vec::new();
    let mut policies: BTreeMap<String, PullPolicy> = BTreeMap::new();
    for (field, list) in [("initContainers", inits), ("containers", mains)] {
        for (index, c) in list.iter().enumerate() {
            let role = match (field, c.restart_policy.as_deref()) {
                ("containers", _) => Role::Main,
                (_, Some("Always")) => Role::Sidecar,
                _ => Role::Init,
            };
            let handlers = Handlers::from_container(c, &format!("spec.{field}[{index}]"))?;
            let raw = c.image.as_deref().unwrap_or_default();
            let name = reference::normalize(raw).map_err(|source| LifecycleError::Reference {
                field,
                index,
                source,
            })?;
            let mut policy = PullPolicy::of(c.image_pull_policy.as_deref(), &name);
            if adopting && policy == PullPolicy::Always {
                policy = PullPolicy::IfNotPresent;
            }
            let strongest = policies.entry(name.clone()).or_insert(policy);
            *strongest = strongest_of(*strongest, policy);
            names.push((c, role, name, handlers));
        }
    }
    let pull_secrets: Vec<String> = spec
        .and_then(|s| s.image_pull_secrets.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|r| r.name.clone())
        .collect();
    let pull = PullOptions {
        registries: opts.registries.clone(),
        pull_secrets,
        snapshotter: opts.snapshotter.clone(),
        progress: opts.pull_progress.clone(),
        cancel: opts.pull_cancel.clone(),
    };
    let ensured = join_all(
        policies
            .iter()
            .map(|(name, policy)| image::ensure(client, name, *policy, &pull)),
    )
    .await;
    let mut images = HashMap::new();
    for ((name, _), r) in policies.iter().zip(ensured) {
        images.insert(name.as_str(), r?);
    }
    // The kubelet pulls for the first container naming an image; the others find it present.
    let mut pulled_for: BTreeSet<&str> = BTreeSet::new();
    Ok(names
        .iter()
        .map(|(c, role, name, handlers)| {
            let raw = c.image.as_deref().unwrap_or_default();
            let ensured = &images[name.as_str()];
            let first = pulled_for.insert(name.as_str());
            let image_events = match &ensured.pulled {
                Some(p) if first => vec![
                    ("Pulling", format!("Pulling image {raw:?}")),
                    (
                        "Pulled",
                        format!(
                            "Successfully pulled image {raw:?} in {:.3}s. Image size: {} bytes.",
                            ensured.elapsed.as_secs_f64(),
                            p.size
                        ),
                    ),
                ],
                _ => vec![(
                    "Pulled",
                    format!("Container image {raw:?} already present on machine"),
                )],
            };
            Arc::new(Step {
                container: (*c).clone(),
                role: *role,
                image: ensured.image.clone(),
                handlers: handlers.clone(),
                image_events,
            })
        })
        .collect())
}

/// Of two containers' policies for one image, the one that makes the image available:
/// `Always` pulls, `IfNotPresent` pulls when missing, `Never` never does.
fn strongest_of(a: PullPolicy, b: PullPolicy) -> PullPolicy {
    use PullPolicy::*;
    match (a, b) {
        (Always, _) | (_, Always) => Always,
        (IfNotPresent, _) | (_, IfNotPresent) => IfNotPresent,
        _ => Never,
    }
}

type PrepareHandle = JoinHandle<Result<Prepared, LifecycleError>>;

fn spawn_prepare(
    ctx: &Arc<PodContext>,
    step: &Step,
    observer: &Arc<dyn Observer>,
    restarts: u32,
) -> PrepareHandle {
    let ctx = ctx.clone();
    let image = step.image.clone();
    let container = step.container.clone();
    let role = step.role;
    let observer = observer.clone();
    tokio::spawn(async move {
        Prepared::create(&ctx, &container, role, &image, &observer, restarts).await
    })
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
pub(crate) fn may_prepare_early(c: &Container, image: &ResolvedImage) -> bool {
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

/// The containers of a pod in start order, with what has been prepared of them so far.
pub(crate) struct Pipeline<'a> {
    ctx: &'a Arc<PodContext>,
    observer: &'a Arc<dyn Observer>,
    pub plan: Vec<Arc<Step>>,
    handles: Vec<Option<PrepareHandle>>,
    ready: Vec<Option<Prepared>>,
    /// Containers a restarted supervisor found done for good: they never run again.
    done: Vec<bool>,
    /// The run number each container's next attempt gets (its log file's name).
    restarts: Vec<u32>,
}

impl<'a> Pipeline<'a> {
    pub fn new(
        ctx: &'a Arc<PodContext>,
        observer: &'a Arc<dyn Observer>,
        plan: Vec<Arc<Step>>,
        recovered: Option<Vec<Recovery>>,
    ) -> Self {
        let n = plan.len();
        let mut ready: Vec<Option<Prepared>> = (0..n).map(|_| None).collect();
        let mut done = vec![false; n];
        let mut restarts = vec![0; n];
        for (i, r) in recovered.into_iter().flatten().enumerate().take(n) {
            match r {
                Recovery::Fresh { restarts: r } => restarts[i] = r,
                Recovery::Adopted(p) => ready[i] = Some(*p),
                Recovery::Done => done[i] = true,
            }
        }
        Self {
            ctx,
            observer,
            plan,
            handles: (0..n).map(|_| None).collect(),
            ready,
            done,
            restarts,
        }
    }

    /// Whether a restarted supervisor adopted any attempt of this pod (it runs already).
    pub fn adopted_any(&self) -> bool {
        self.ready.iter().flatten().any(Prepared::adopted)
    }

    /// Container `i`'s attempt adopted by a restarted supervisor, if any.
    pub fn take_adopted(&mut self, i: usize) -> Option<Prepared> {
        if self.ready[i].as_ref().is_some_and(Prepared::adopted) {
            self.ready[i].take()
        } else {
            None
        }
    }

    /// Whether container `i` is done for good (found so by a restarted supervisor).
    pub fn is_done(&self, i: usize) -> bool {
        self.done[i]
    }

    /// Creates the first container's task (which starts the pod's shim), then prepares every
    /// other container that may be prepared early, all at once: their tasks join that shim.
    /// Containers adopted or done (after a restart of the supervisor) are left alone.
    pub async fn prepare_ahead(&mut self) -> Result<(), LifecycleError> {
        let fresh: Vec<usize> = (0..self.plan.len())
            .filter(|&i| self.ready[i].is_none() && !self.done[i])
            .collect();
        let Some((&first, rest)) = fresh.split_first() else {
            return Ok(());
        };
        // After an adoption the shim runs already, and an adopted init container may still
        // be filling the volumes the first fresh container needs.
        let adopted = self.ready.iter().any(Option::is_some);
        let step = &self.plan[first];
        if !adopted || may_prepare_early(&step.container, &step.image) {
            self.ready[first] = Some(self.create(first).await?);
        }
        for &i in rest {
            let step = &self.plan[i];
            if may_prepare_early(&step.container, &step.image) {
                self.handles[i] = Some(spawn_prepare(
                    self.ctx,
                    step,
                    self.observer,
                    self.restarts[i],
                ));
            }
        }
        Ok(())
    }

    /// Container `i`, prepared: from the pipeline, or created now when it had to wait for
    /// its turn. A task that could not be created ahead is created once more now: what it
    /// lacked (typically its executable) may be what the init containers just installed.
    pub async fn take(&mut self, i: usize) -> Result<Prepared, LifecycleError> {
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

    /// Creates container `i` now, as run number `restartCount` of its status (0 unless a
    /// restarted supervisor found earlier runs).
    async fn create(&self, i: usize) -> Result<Prepared, LifecycleError> {
        let step = &self.plan[i];
        Prepared::create(
            self.ctx,
            &step.container,
            step.role,
            &step.image,
            self.observer,
            self.restarts[i],
        )
        .await
    }

    /// Every container prepared but not taken; waits for preparations under way, so that
    /// everything they create is known before the pod is torn down.
    pub async fn leftovers(&mut self) -> Vec<Prepared> {
        let mut out: Vec<Prepared> = self.ready.iter_mut().filter_map(Option::take).collect();
        for h in self.handles.iter_mut().filter_map(Option::take) {
            if let Ok(p) = join_prepare(h).await {
                out.push(p);
            }
        }
        out
    }
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
