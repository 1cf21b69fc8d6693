//! Adopting a pod whose supervisor died (a `podctl daemon` killed and started again).
//!
//! The truth is split the way it survives a crash: containerd holds the containers (labels
//! name pod, container and role) and their tasks, which run on under their shim; the state
//! dir holds the manifest, the last status written (at most 100 ms old), the shim group and
//! the namespace pins. For each container of the plan the adopting supervisor decides:
//!
//! - an attempt whose task runs, or exited while nobody watched, is **adopted**: its FIFOs
//!   are read again and its exit is waited for; it is not restarted;
//! - an attempt the last status already shows as ended, or no attempt at all, is **done**
//!   when its rule does not restart it (a completed init container never runs again), and
//!   otherwise **fresh**: started at its turn, as the next run;
//! - what the crash left half-made (a record without a task, a task created but never
//!   started) is removed: its container starts fresh.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use super::container::{self, Prepared};
use super::plan::{plan_containers, Step};
use super::state::Shared;
use super::{
    pod_containers, pod_dir, policy_of, record_supervisor, Admitted, LifecycleError, Observer,
    PodContext, RunOptions,
};
use crate::containerd::{labels, Client, TaskStatus};
use crate::pods;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::status::{ContainerState, ContainerStatus, RestartPolicy, Role, Terminated, Waiting};

/// What an adopting supervisor found of one container.
pub(crate) enum Recovery {
    /// Nothing of it runs: it starts at its turn, as run number `restarts`.
    Fresh { restarts: u32 },
    /// Its attempt from before, running or exited meanwhile: supervised again.
    Adopted(Box<Prepared>),
    /// Done for good: a completed init container, or an attempt its rule does not restart.
    Done,
}

/// Whether a container's exit leads to a restart: sidecars always; regular init containers
/// until they succeed, unless the pod never restarts; main containers per the pod's policy.
pub(crate) fn restart_rule(role: Role, policy: RestartPolicy) -> RestartPolicy {
    match role {
        Role::Sidecar => RestartPolicy::Always,
        Role::Init if policy == RestartPolicy::Never => RestartPolicy::Never,
        Role::Init => RestartPolicy::OnFailure,
        Role::Main => policy,
    }
}

/// Adopts pod `name`, recorded in `opts.root`, whose supervisor is gone: this process becomes
/// its supervisor (with `socket`, as the daemon serving that API socket). Half-created
/// objects of the crash are removed here; [`Admitted::run`] then goes on from where the pod
/// stood. Fails with [`LifecycleError::SandboxLost`] when the pod's namespaces are gone
/// (the host rebooted): its containers died with them.
pub async fn recover(
    client: &Client,
    opts: &RunOptions,
    name: &str,
    observer: Arc<dyn Observer>,
    socket: Option<&Path>,
) -> Result<Admitted, LifecycleError> {
    let namespace = client.namespace();
    let record = pods::get(&opts.root, namespace, name)?;
    if let Some(s) = &record.supervisor {
        return Err(LifecycleError::Supervised {
            pod: name.to_string(),
            pid: s.pid,
        });
    }
    let Some(pod) = record.pod else {
        return Err(LifecycleError::NoRecord {
            pod: name.to_string(),
        });
    };
    let dir = pod_dir(&opts.root, namespace, name);
    let sandbox = Sandbox::planned(SandboxConfig {
        dir: &dir,
        pod: &pod,
    })?;
    if !sandbox.is_intact() {
        return Err(LifecycleError::SandboxLost {
            pod: name.to_string(),
        });
    }
    let plan = plan_containers(client, &pod, &opts.snapshotter).await?;
    let shim_group = std::fs::read_to_string(dir.join(pods::files::SHIM_GROUP))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("{namespace}.{name}.{:016x}", rand::random::<u64>()));
    let policy = policy_of(&pod);
    let last = record.status;
    let start_time = last
        .as_ref()
        .and_then(|s| s.start_time.as_deref())
        .and_then(pods::parse_time)
        .unwrap_or_else(SystemTime::now);
    let mut statuses: Vec<ContainerStatus> = plan
        .iter()
        .map(|s| {
            let image = s.container.image.as_deref().unwrap_or_default();
            let known = last
                .as_ref()
                .and_then(|l| l.all().find(|c| c.name == s.container.name));
            match known {
                Some(c) => ContainerStatus {
                    role: s.role,
                    // Probes start over: readiness and startup are earned again.
                    ready: false,
                    started: false,
                    ..c.clone()
                },
                None => super::state::not_started(&s.container.name, image, s.role),
            }
        })
        .collect();

    let ctx = PodContext::new(client, pod, dir.clone(), sandbox, shim_group, opts);
    let mut found: HashMap<String, Vec<String>> = HashMap::new();
    for c in pod_containers(client, name).await? {
        if let Some(n) = c.labels.get(labels::CONTAINER) {
            found.entry(n.clone()).or_default().push(c.id);
        }
    }
    let mut recovered = Vec::with_capacity(plan.len());
    for (step, status) in plan.iter().zip(statuses.iter_mut()) {
        let ids = found.remove(&step.container.name).unwrap_or_default();
        let r = recover_container(&ctx, step, status, policy, ids, &observer).await?;
        recovered.push(r);
    }
    settle_inits(&plan, &mut recovered, &mut statuses);
    // Containers of names the manifest lacks cannot be the pod's: leftovers.
    for id in found.into_values().flatten() {
        container::remove(client, &id, &opts.snapshotter).await?;
    }

    record_supervisor(&dir, socket)?;
    let started = std::time::Instant::now()
        .checked_sub(start_time.elapsed().unwrap_or_default())
        .unwrap_or_else(std::time::Instant::now);
    let shared = Shared::new(
        name,
        (start_time, started),
        policy,
        statuses,
        Some(&dir.join(pods::files::EVENTS)),
        observer,
    );
    tracing::info!(pod = %name, "adopted");
    Ok(Admitted {
        ctx,
        plan,
        shared,
        recovered: Some(recovered),
        remove: false,
    })
}

/// Decides what becomes of one container (see the module's rules), removing what the crash
/// left half-made, and brings its status up to date.
async fn recover_container(
    ctx: &PodContext,
    step: &Step,
    status: &mut ContainerStatus,
    policy: RestartPolicy,
    ids: Vec<String>,
    observer: &Arc<dyn Observer>,
) -> Result<Recovery, LifecycleError> {
    let client = &ctx.client;
    let current = status
        .container_id
        .as_deref()
        .and_then(|id| id.strip_prefix("containerd://"))
        .map(str::to_string);
    let snapshotter = &step.image.snapshotter;
    let ended_here = matches!(&status.state, ContainerState::Terminated(t)
        if Some(t.container_id.trim_start_matches("containerd://")) == current.as_deref());

    let mut live = None;
    for id in ids {
        let task = client.task_status(&id).await?;
        let is_current = current.as_deref() == Some(id.as_str());
        match task {
            Some(TaskStatus::Stopped) if is_current && ended_here => {
                // Its end was recorded; only the task was left to delete.
                client.delete_task(&id).await?;
            }
            Some(TaskStatus::Created) => {
                container::remove(client, &id, snapshotter).await?;
            }
            Some(_) if live.is_none() => live = Some(id),
            // A finished attempt keeps its record while the pod is kept.
            None if is_current && ended_here => {}
            _ => container::remove(client, &id, snapshotter).await?,
        }
    }

    if let Some(id) = live {
        let started_at = match &status.state {
            ContainerState::Running(r) if current.as_deref() == Some(id.as_str()) => {
                pods::parse_time(&r.started_at)
            }
            _ => None,
        }
        .unwrap_or_else(SystemTime::now);
        status.container_id = Some(format!("containerd://{id}"));
        let p = Prepared::adopt(
            ctx,
            &step.container,
            &step.image,
            observer,
            &id,
            status.restart_count,
            started_at,
        )?;
        return Ok(Recovery::Adopted(Box::new(p)));
    }

    let rule = restart_rule(step.role, policy);
    match &status.state {
        ContainerState::Waiting(_) => Ok(Recovery::Fresh {
            restarts: status.restart_count,
        }),
        ContainerState::Running(r) => {
            // Its task is gone without a trace: the kubelet's words for such a container.
            let gone = ContainerState::Terminated(Terminated {
                exit_code: 137,
                reason: "ContainerStatusUnknown".into(),
                message: Some("The container could not be located when the pod was adopted".into()),
                started_at: Some(r.started_at.clone()),
                finished_at: None,
                container_id: status.container_id.clone().unwrap_or_default(),
            });
            if let Some(id) = &current {
                container::remove(client, id, snapshotter).await?;
            }
            Ok(restart_or_done(status, gone, rule))
        }
        ContainerState::Terminated(t) => {
            let ended = ContainerState::Terminated(t.clone());
            let restarts = rule.restarts(t.exit_code);
            if restarts {
                // The dead attempt goes, as the runner removes it before a restart.
                if let Some(id) = &current {
                    container::remove(client, id, snapshotter).await?;
                }
            }
            Ok(restart_or_done(status, ended, rule))
        }
    }
}

/// Main containers start only after every regular init container completed: once one has
/// started, an init container the last status (written up to 100 ms before the crash)
/// does not show completed did complete, and must not run again.
fn settle_inits(plan: &[Arc<Step>], recovered: &mut [Recovery], statuses: &mut [ContainerStatus]) {
    let mains_started =
        plan.iter()
            .zip(recovered.iter())
            .zip(statuses.iter())
            .any(|((step, r), status)| {
                step.role == Role::Main
                    && (matches!(r, Recovery::Adopted(_))
                        || status.restart_count > 0
                        || !matches!(status.state, ContainerState::Waiting(_)))
            });
    if !mains_started {
        return;
    }
    for ((step, r), status) in plan
        .iter()
        .zip(recovered.iter_mut())
        .zip(statuses.iter_mut())
    {
        if step.role == Role::Init && matches!(r, Recovery::Fresh { .. }) {
            *r = Recovery::Done;
            status.state = ContainerState::Terminated(Terminated {
                exit_code: 0,
                reason: "Completed".into(),
                message: None,
                started_at: None,
                finished_at: None,
                container_id: status.container_id.clone().unwrap_or_default(),
            });
        }
    }
}

/// A container whose last attempt ended with `ended`: restarted as the next run when its
/// rule says so (at once: the back-off's memory went with the supervisor, as the
/// kubelet's goes with a kubelet restart), else done.
fn restart_or_done(
    status: &mut ContainerStatus,
    ended: ContainerState,
    rule: RestartPolicy,
) -> Recovery {
    let code = ended.exit_code().unwrap_or(137);
    if !rule.restarts(code) {
        status.state = ended;
        return Recovery::Done;
    }
    status.last_state = Some(ended);
    status.state = ContainerState::Waiting(Waiting {
        reason: "ContainerCreating".into(),
        message: None,
    });
    status.restart_count += 1;
    Recovery::Fresh {
        restarts: status.restart_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_the_role() {
        use RestartPolicy::*;
        assert_eq!(restart_rule(Role::Sidecar, Never), Always);
        assert_eq!(restart_rule(Role::Init, Never), Never);
        assert_eq!(restart_rule(Role::Init, Always), OnFailure);
        assert_eq!(restart_rule(Role::Main, OnFailure), OnFailure);
    }

    fn terminated(code: i32) -> ContainerState {
        ContainerState::Terminated(Terminated {
            exit_code: code,
            reason: "Error".into(),
            message: None,
            started_at: None,
            finished_at: None,
            container_id: "containerd://x".into(),
        })
    }

    #[test]
    fn an_ended_attempt_is_restarted_as_the_next_run_or_done() {
        let mut status = ContainerStatus::new("c", "busybox", Role::Main, terminated(1));
        status.restart_count = 2;
        let r = restart_or_done(&mut status, terminated(1), RestartPolicy::OnFailure);
        assert!(matches!(r, Recovery::Fresh { restarts: 3 }));
        assert_eq!(status.restart_count, 3);
        assert_eq!(status.last_state, Some(terminated(1)));
        assert!(matches!(status.state, ContainerState::Waiting(_)));

        let mut done = ContainerStatus::new("c", "busybox", Role::Init, terminated(0));
        let r = restart_or_done(&mut done, terminated(0), RestartPolicy::OnFailure);
        assert!(matches!(r, Recovery::Done));
        assert_eq!(done.restart_count, 0);
        assert_eq!(done.state, terminated(0));
    }
}
