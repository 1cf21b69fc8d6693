//! One container's life inside a pod: prepared (record, rootfs snapshot, task created, exit
//! watch armed), started, waited for or stopped, and removed.
//!
//! An attempt whose processes the kernel's OOM killer hit ends `OOMKilled`, as containerd's
//! CRI reports a container that had a `/tasks/oom` event: the exit watch reads the OOM-kill
//! counter of the container's cgroup as soon as the task has exited, while the task (and so
//! the cgroup) still exists. The kernel counts the kill before it sends the SIGKILL, so no
//! event can arrive after the exit and be missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Container;
use tokio::task::JoinHandle;

use super::gate::Side;
use super::logs::{open_log, Fifos, Pumps};
use super::{LifecycleError, Observer, PodContext};
use crate::cgroups;
use crate::containerd::{
    labels, Client, ContainerSpec, ContainerdError, TaskExit, TaskIo, TaskStatus,
};
use crate::image::ResolvedImage;
use crate::status::{k8s_time, Role, Terminated};

use crate::containerd::SIGKILL;

const SIGTERM: u32 = 15;

/// One run (attempt) of a container: its record, rootfs and task, from creation (or a
/// failed creation) through start and exit to removal.
pub(crate) struct Prepared {
    pub name: Arc<str>,
    pub id: String,
    /// The process of its runtime spec: what an exec in this container inherits.
    pub process: oci_spec::runtime::Process,
    snapshotter: String,
    stop_signal: u32,
    /// Why the task could not be created: the container ends as `StartError` when its turn
    /// comes, as the kubelet reports an unstartable container.
    create_error: Option<String>,
    wait: Option<JoinHandle<Result<Exit, ContainerdError>>>,
    pumps: Option<Pumps>,
    started_at: Option<SystemTime>,
    exit: Option<Exit>,
    /// Started by an earlier supervisor of the pod, and adopted by this one.
    adopted: bool,
}

/// How an attempt's task ended.
#[derive(Debug, Clone, Copy)]
struct Exit {
    task: TaskExit,
    /// The OOM killer killed a process of the container (its cgroup's count, read at the
    /// exit; false when the cgroup could not be read).
    oom_killed: bool,
}

/// Containerd resources of one container are named after this id; a fresh one per attempt,
/// since a failed create leaves a bundle that blocks the id.
pub(crate) fn container_id(pod: &str, name: &str) -> String {
    fn part(s: &str) -> &str {
        let cut = &s[..s.len().min(32)];
        cut.trim_end_matches(['-', '.'])
    }
    format!("{}.{}.{:08x}", part(pod), part(name), rand::random::<u32>())
}

impl Prepared {
    /// Creates everything up to the task; `attempt` counts the container's restarts and
    /// names its log file. Errors from the task's creation (runc refusing the process) are
    /// kept for [`Prepared::start`]; other errors undo this container's objects.
    pub async fn create(
        ctx: &PodContext,
        container: &Container,
        role: Role,
        image: &ResolvedImage,
        observer: &Arc<dyn Observer>,
        attempt: u32,
    ) -> Result<Self, LifecycleError> {
        let id = container_id(&ctx.pod_name, &container.name);
        let result = Self::create_inner(ctx, container, role, image, observer, &id, attempt).await;
        if result.is_err() {
            remove(&ctx.client, &id, &image.snapshotter).await.ok();
        }
        result
    }

    async fn create_inner(
        ctx: &PodContext,
        container: &Container,
        role: Role,
        image: &ResolvedImage,
        observer: &Arc<dyn Observer>,
        id: &str,
        attempt: u32,
    ) -> Result<Self, LifecycleError> {
        let spec = ctx.spec_for(container, image, id)?;
        let stop_signal = stop_signal_of(image);
        let spec_json = serde_json::to_vec(&spec).map_err(LifecycleError::Encode)?;
        let labels = HashMap::from([
            (labels::POD.to_string(), ctx.pod_name.to_string()),
            (labels::CONTAINER.to_string(), container.name.clone()),
            (labels::ROLE.to_string(), role.as_str().to_string()),
        ]);
        // The record comes first: once it names the snapshot key, gc keeps the snapshot.
        ctx.client
            .create_container(ContainerSpec {
                id,
                image: &image.name,
                spec_json,
                snapshotter: &image.snapshotter,
                snapshot_key: id,
                labels,
            })
            .await?;
        let rootfs = ctx
            .client
            .prepare_snapshot(
                &image.snapshotter,
                id,
                &image.chain_id,
                HashMap::new(),
                None,
            )
            .await?;
        let log = open_log(&ctx.pod_dir, &container.name, attempt, ctx.log_rotation)?;
        let fifos = Fifos::open(&ctx.io_dir, id)?;
        let io = TaskIo {
            stdout: fifos.stdout_path.display().to_string(),
            stderr: fifos.stderr_path.display().to_string(),
        };
        let name: Arc<str> = Arc::from(container.name.as_str());
        let mut prepared = Self {
            name: name.clone(),
            id: id.to_string(),
            process: spec.process().clone().unwrap_or_default(),
            snapshotter: image.snapshotter.clone(),
            stop_signal,
            create_error: None,
            wait: None,
            pumps: None,
            started_at: None,
            exit: None,
            adopted: false,
        };
        tracing::debug!(pod = %ctx.pod_name, container = %container.name, id, "creating task");
        let created = {
            let _pass = ctx.shim_gate.enter(Side::Create).await;
            ctx.client.create_task(id, rootfs, io).await
        };
        match created {
            Ok(_pid) => {
                prepared.pumps = Some(fifos.pump(name, log, observer.clone()));
                prepared.wait = Some(spawn_wait(ctx, id));
            }
            Err(e) => {
                fifos.discard();
                prepared.create_error = Some(e.to_string());
            }
        }
        Ok(prepared)
    }

    /// Takes over the started attempt `id` of a pod's container that an earlier supervisor
    /// left running (or that exited meanwhile): its output FIFOs are read again into run
    /// number `attempt`'s log file, and its exit is waited for.
    pub fn adopt(
        ctx: &PodContext,
        container: &Container,
        image: &ResolvedImage,
        observer: &Arc<dyn Observer>,
        id: &str,
        attempt: u32,
        started_at: SystemTime,
    ) -> Result<Self, LifecycleError> {
        let spec = ctx.build_spec(container, image, id, false)?;
        let name: Arc<str> = Arc::from(container.name.as_str());
        // Without its FIFOs (removed by hand), the container still runs, unlogged.
        let pumps = match Fifos::reopen(&ctx.io_dir, id) {
            Ok(fifos) => {
                let log = open_log(&ctx.pod_dir, &container.name, attempt, ctx.log_rotation)?;
                Some(fifos.pump(name.clone(), log, observer.clone()))
            }
            Err(e) => {
                tracing::warn!(container = %name, error = %e, "cannot read the output of an adopted container");
                None
            }
        };
        Ok(Self {
            name,
            id: id.to_string(),
            process: spec.process().clone().unwrap_or_default(),
            snapshotter: image.snapshotter.clone(),
            stop_signal: stop_signal_of(image),
            create_error: None,
            wait: Some(spawn_wait(ctx, id)),
            pumps,
            started_at: Some(started_at),
            exit: None,
            adopted: true,
        })
    }

    /// Whether this attempt was started by an earlier supervisor (see [`Prepared::adopt`]).
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Starts the task; returns when it started. A container that cannot start is
    /// recorded as exited (`StartError`, exit code 128) rather than failing the whole run;
    /// the error says why.
    pub async fn start(&mut self, client: &Client) -> Result<SystemTime, String> {
        if let Some(msg) = &self.create_error {
            return Err(msg.clone());
        }
        match client.start_task(&self.id).await {
            Ok(_) => {
                tracing::debug!(container = %self.name, "started");
                let now = SystemTime::now();
                self.started_at = Some(now);
                Ok(now)
            }
            Err(e) => {
                let msg = e.to_string();
                self.create_error = Some(msg.clone());
                Err(msg)
            }
        }
    }

    /// True when the container's process was started (whatever happened next).
    pub fn ran(&self) -> bool {
        self.started_at.is_some()
    }

    /// When the process was started.
    pub fn started_at(&self) -> Option<SystemTime> {
        self.started_at
    }

    /// True when the task could not be created.
    pub fn create_failed(&self) -> bool {
        self.create_error.is_some()
    }

    /// True when the task runs (started and not yet seen to exit).
    pub fn is_running(&self) -> bool {
        self.started_at.is_some() && self.exit.is_none()
    }

    /// Waits for the process to exit and for its output to be drained.
    pub async fn wait(&mut self) -> Result<(), LifecycleError> {
        if self.exit.is_some() || self.create_error.is_some() {
            return Ok(());
        }
        let Some(wait) = self.wait.as_mut() else {
            return Ok(());
        };
        let exit = wait
            .await
            .map_err(|e| LifecycleError::Join(e.to_string()))??;
        tracing::debug!(
            container = %self.name,
            status = exit.task.status,
            oom_killed = exit.oom_killed,
            "exited"
        );
        self.exit = Some(exit);
        self.wait = None;
        if let Some(pumps) = self.pumps.take() {
            // Output still buffered in the pipe arrives within moments of the exit.
            pumps.finish(Duration::from_secs(2)).await;
        }
        Ok(())
    }

    /// The signal that asks this container to stop: the image's `StopSignal`, else SIGTERM.
    pub fn stop_signal(&self) -> u32 {
        self.stop_signal
    }

    /// How this attempt ended, as Kubernetes reports it; `None` while it has not.
    pub fn terminated(&self) -> Option<Terminated> {
        if let Some(exit) = self.exit {
            let code = exit.task.status as i32;
            // containerd's CRI: an OOM event decides the reason, whatever the exit code.
            let reason = if exit.oom_killed {
                "OOMKilled"
            } else if code == 0 {
                "Completed"
            } else {
                "Error"
            };
            Some(Terminated {
                exit_code: code,
                reason: reason.into(),
                message: None,
                started_at: self.started_at.map(k8s_time),
                finished_at: exit.task.exited_at.map(k8s_time),
                container_id: format!("containerd://{}", self.id),
            })
        } else {
            self.create_error.as_ref().map(|msg| Terminated {
                exit_code: 128,
                reason: "StartError".into(),
                message: Some(msg.clone()),
                started_at: None,
                finished_at: None,
                container_id: format!("containerd://{}", self.id),
            })
        }
    }

    /// Deletes the task (its process must have exited or never started) so the shim can go.
    pub async fn delete_task(&mut self, ctx: &PodContext) -> Result<(), LifecycleError> {
        let client = &ctx.client;
        let never_started = self.started_at.is_none() && self.create_error.is_none();
        // An adopted attempt the pod's end caught before its runner did may still run.
        if never_started || (self.adopted && self.exit.is_none()) {
            // Created, never started: the process sits in runc's exec fifo; kill it first.
            let _ = client.kill_task(&self.id, SIGKILL, true).await;
            if let Some(wait) = self.wait.take() {
                let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
            }
        }
        if let Some(pumps) = self.pumps.take() {
            pumps.close();
        }
        let _pass = ctx.shim_gate.enter(Side::Delete).await;
        client.delete_task(&self.id).await?;
        tracing::debug!(container = %self.name, "task deleted");
        Ok(())
    }

    /// Removes the rootfs snapshot and the record of a container whose task is gone.
    pub async fn remove(&self, client: &Client) -> Result<(), LifecycleError> {
        remove_rootfs_and_record(client, &self.id, &self.snapshotter).await
    }
}

/// Removes one container's objects in the order containerd needs: task (which unmounts the
/// rootfs), snapshot, record. Idempotent: anything already gone counts as done.
pub(crate) async fn remove(
    client: &Client,
    id: &str,
    snapshotter: &str,
) -> Result<(), LifecycleError> {
    remove_task(client, id).await?;
    remove_rootfs_and_record(client, id, snapshotter).await
}

/// Deletes one container's task, killing it first if it still runs. Idempotent.
pub(crate) async fn remove_task(client: &Client, id: &str) -> Result<(), LifecycleError> {
    if let Some(status) = client.task_status(id).await? {
        if status != TaskStatus::Stopped {
            let _ = client.kill_task(id, SIGKILL, true).await;
            let wait = client.wait_task(id);
            let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
        }
        client.delete_task(id).await?;
    }
    Ok(())
}

/// The snapshot goes before the record: once the record is gone, nothing names the snapshot.
async fn remove_rootfs_and_record(
    client: &Client,
    id: &str,
    snapshotter: &str,
) -> Result<(), LifecycleError> {
    client.remove_snapshot(snapshotter, id).await?;
    client.delete_container(id).await?;
    Ok(())
}

/// The signal that stops a container of this image: its `StopSignal`, else SIGTERM.
fn stop_signal_of(image: &ResolvedImage) -> u32 {
    image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.stop_signal().as_deref().and_then(parse_signal))
        .unwrap_or(SIGTERM)
}

/// How long a wait for a task's exit keeps trying while containerd cannot be reached (a
/// restart of containerd leaves the task running; the wait is made again).
const WAIT_RETRY_FOR: Duration = Duration::from_secs(120);

/// Waits for a task's exit on a task of its own, and reads at once whether the OOM killer
/// killed in its cgroup (the task is not deleted before this wait has answered). Only
/// containerd going away (a restart) breaks a wait: it is made again, as Wait also answers
/// for a task that exited meanwhile.
fn spawn_wait(ctx: &PodContext, id: &str) -> JoinHandle<Result<Exit, ContainerdError>> {
    let client = ctx.client.clone();
    let pod_cgroup = cgroups::pod_cgroup_name(&ctx.shim_group);
    let id = id.to_string();
    tokio::spawn(async move {
        let mut failing_since: Option<std::time::Instant> = None;
        loop {
            match client.wait_task(&id).await {
                Ok(task) => {
                    let oom_killed = cgroups::oom_kills(&pod_cgroup, &id).is_some_and(|n| n > 0);
                    return Ok(Exit { task, oom_killed });
                }
                Err(e) if !e.is_transient() => return Err(e),
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > WAIT_RETRY_FOR {
                        return Err(e);
                    }
                    tracing::debug!(id, error = %e, "waiting for the task; containerd away, trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    })
}

fn parse_signal(name: &str) -> Option<u32> {
    let name = name.trim();
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    let name = name.strip_prefix("SIG").unwrap_or(name);
    let signal: nix::sys::signal::Signal = format!("SIG{name}").parse().ok()?;
    Some(signal as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_fit_containerd_rules() {
        let long = "a".repeat(63);
        let id = container_id(&long, &format!("{}-b", "c".repeat(31)));
        assert!(id.len() <= 76, "{id}");
        assert!(!id.contains("-."), "{id}");
        let re_ok = id
            .split(['.', '-', '_'])
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(re_ok, "{id}");
        assert_ne!(container_id("p", "c"), container_id("p", "c"));
    }

    #[test]
    fn stop_signals_parse_like_docker() {
        assert_eq!(parse_signal("SIGQUIT"), Some(3));
        assert_eq!(parse_signal("TERM"), Some(15));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGNOPE"), None);
    }
}
