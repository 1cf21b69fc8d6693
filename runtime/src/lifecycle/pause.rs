//! The pause container of a `shareProcessNamespace` pod: started before any container of
//! the pod is created (they join its PID namespace by the pin the sandbox makes of it), in
//! the pod's shim; killed when the pod ends. Pods without `shareProcessNamespace` have none.

use std::collections::HashMap;

use super::container::{self, remove_task};
use super::gate::Side;
use super::{pod_containers, LifecycleError, PodContext};
use crate::containerd::{labels, Client, ContainerSpec, TaskIo, TaskStatus};
use crate::oci;

/// The role label of the pause container (`io.podctl.role`).
pub(crate) const ROLE: &str = "pause";
/// Its container label: no container name (a DNS label) can be this.
const NAME: &str = "(pause)";

/// Starts the pod's pause process and pins its PID namespace, unless the pod shares none or
/// its pause runs already (a pod adopted after its supervisor died).
pub(crate) async fn start(ctx: &PodContext) -> Result<(), LifecycleError> {
    if ctx.sandbox.pidns.is_none() {
        return Ok(());
    }
    for c in pod_containers(&ctx.client, &ctx.pod_name).await? {
        if c.labels.get(labels::ROLE).map(String::as_str) == Some(ROLE) {
            if ctx.client.task_status(&c.id).await? == Some(TaskStatus::Running) {
                return Ok(());
            }
            container::remove(&ctx.client, &c.id, &c.snapshotter).await?;
        }
    }
    let id = container::container_id(&ctx.pod_name, "pause");
    let snapshotter = crate::image::DEFAULT_SNAPSHOTTER;
    let result = create(ctx, &id, snapshotter).await;
    if result.is_err() {
        container::remove(&ctx.client, &id, snapshotter).await.ok();
    }
    result
}

async fn create(ctx: &PodContext, id: &str, snapshotter: &str) -> Result<(), LifecycleError> {
    let sandbox = ctx.sandbox.clone();
    let (rootfs, binds) = tokio::task::spawn_blocking(move || sandbox.pause_rootfs())
        .await
        .map_err(|e| LifecycleError::Join(e.to_string()))??;
    let exe = std::env::current_exe().map_err(|source| LifecycleError::Io {
        path: "/proc/self/exe".into(),
        source,
    })?;
    let spec = oci::pause_spec(&oci::PauseInput {
        sandbox: &ctx.sandbox,
        container_id: id,
        shim_group: &ctx.shim_group,
        rootfs: &rootfs,
        binds: &binds,
        exe: &exe,
    });
    let labels = HashMap::from([
        (labels::POD.to_string(), ctx.pod_name.clone()),
        (labels::CONTAINER.to_string(), NAME.to_string()),
        (labels::ROLE.to_string(), ROLE.to_string()),
    ]);
    // No image and no snapshot: its root is a dir of the sandbox.
    ctx.client
        .create_container(ContainerSpec {
            id,
            image: "",
            spec_json: serde_json::to_vec(&spec).map_err(LifecycleError::Encode)?,
            snapshotter,
            snapshot_key: id,
            labels,
        })
        .await?;
    {
        let _pass = ctx.shim_gate.enter(Side::Create).await;
        let io = TaskIo {
            stdout: String::new(),
            stderr: String::new(),
        };
        ctx.client.create_task(id, Vec::new(), io).await?;
    }
    let pid = ctx.client.start_task(id).await?;
    let sandbox = ctx.sandbox.clone();
    tokio::task::spawn_blocking(move || sandbox.pin_pid_namespace(pid))
        .await
        .map_err(|e| LifecycleError::Join(e.to_string()))??;
    tracing::debug!(pod = %ctx.pod_name, id, pid, "pause process started");
    Ok(())
}

/// Kills and deletes the pod's pause task (its record goes with the pod's other records).
pub(crate) async fn stop(client: &Client, pod: &str) -> Result<(), LifecycleError> {
    for c in pod_containers(client, pod).await? {
        if c.labels.get(labels::ROLE).map(String::as_str) == Some(ROLE) {
            remove_task(client, &c.id).await?;
        }
    }
    Ok(())
}
