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
use std::time::{Duration, SystemTime};

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
use crate::status::{
    ContainerState, ContainerStatus, PodStatus, RestartPolicy, Role, Terminated, Waiting,
};

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
    let objects = Sandbox::kept_objects(&dir)?;
    let sandbox = Sandbox::planned(SandboxConfig {
        dir: &dir,
        pod: &pod,
        objects: &objects,
        live: &crate::downward::LiveFields::default(),
        claims_dir: &crate::claims::Store::new(&opts.root, namespace).dir(),
    })?;
    if !sandbox.is_intact() {
        return Err(LifecycleError::SandboxLost {
            pod: name.to_string(),
        });
    }
    let plan = plan_containers(client, &pod, opts, true).await?;
    let shim_group = std::fs::read_to_string(dir.join(pods::files::SHIM_GROUP))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("{namespace}.{name}.{:016x}", rand::random::<u64>()));
    let policy = policy_of(&pod);
    let last = record.status;
    let start_time = admitted_at(last.as_ref());
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

    let live = crate::downward::LiveFields {
        node_name: crate::downward::LiveFields::host_node_name(),
        ..Default::default()
    };
    let ctx = PodContext::new(
        client,
        pod,
        dir.clone(),
        sandbox,
        shim_group,
        opts,
        objects,
        live,
    );
    let mut found: HashMap<String, Vec<String>> = HashMap::new();
    for c in pod_containers(client, name).await? {
        // The pause process holds the pod's PID namespace: it stays (see `pause::start`).
        if c.labels.get(labels::ROLE).map(String::as_str) == Some(super::pause::ROLE) {
            continue;
        }
        if let Some(n) = c.labels.get(labels::CONTAINER) {
            found.entry(n.clone()).or_default().push(c.id);
        }
    }
    // Main containers start only after every regular init container completed: once one
    // has, no init container runs again, whatever else the record says.
    let mut mains_started = plan.iter().zip(&statuses).any(|(step, status)| {
        step.role == Role::Main
            && (status.restart_count > 0 || !matches!(status.state, ContainerState::Waiting(_)))
    });
    for (step, status) in plan.iter().zip(&statuses) {
        // The run the status names was started or about to be (the runner records it just
        // before Tasks.Start); a main container only prepared ahead is named nowhere.
        if let (Role::Main, Some(id)) = (step.role, current_id(status)) {
            mains_started |= matches!(
                client.task_status(&id).await?,
                Some(TaskStatus::Running | TaskStatus::Paused | TaskStatus::Stopped)
            );
        }
    }
    let mut recovered = Vec::with_capacity(plan.len());
    for (step, status) in plan.iter().zip(statuses.iter_mut()) {
        let ids = found.remove(&step.container.name).unwrap_or_default();
        let r = if step.role == Role::Init && mains_started {
            completed_init(&ctx, step, status, ids).await?
        } else {
            recover_container(&ctx, step, status, policy, ids, &observer).await?
        };
        recovered.push(r);
    }
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
        Some(&dir),
        observer,
    );
    shared.set_qos_class(
        crate::cgroups::QosClass::of_pod(&ctx.pod)
            .ok()
            .map(crate::cgroups::QosClass::as_str),
    );
    let network = adopt_network(&ctx, &shared, &dir).await?;
    tracing::info!(pod = %name, "adopted");
    Ok(Admitted {
        ctx,
        plan,
        shared,
        recovered: Some(recovered),
        remove: false,
        network,
    })
}

/// The adopted pod's addresses: from its network's record when its ADD had finished (then
/// checked with CHECK in the background), else its network made again (DEL, ADD) before
/// anything of it starts; the host's for a `hostNetwork` pod.
async fn adopt_network(
    ctx: &PodContext,
    shared: &Shared,
    dir: &Path,
) -> Result<Option<super::NetworkSetup>, LifecycleError> {
    let own_network = ctx.sandbox.netns.is_some();
    let read = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            crate::network::read_record(&dir).map(|r| (r, crate::network::host_ip()))
        })
    };
    let (record, host_ip) = read
        .await
        .map_err(|e| LifecycleError::Join(e.to_string()))??;
    let set = |pod_ips: Vec<std::net::IpAddr>| {
        ctx.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .host_ips = host_ip.into_iter().collect();
        ctx.set_pod_ips(pod_ips.clone());
        shared.set_addresses(host_ip, pod_ips);
    };
    if !own_network {
        set(host_ip.into_iter().collect());
        return Ok(None);
    }
    let dir = dir.to_path_buf();
    match record {
        Some(r) if !r.attached => Ok(Some({
            set(Vec::new());
            tokio::task::spawn_blocking(move || crate::network::reattach(&dir))
        })),
        record => {
            set(record.map(|r| r.pod_ips()).unwrap_or_default());
            tokio::task::spawn_blocking(move || crate::network::reattach(&dir));
            Ok(None)
        }
    }
}

/// Ends pod `name` for good without running anything of it again: a pod adopted after it
/// had ended (its supervisor died while finishing), or one whose sandbox died with the
/// host and that must not start afresh. Containers the last status shows running end as
/// `ContainerStatusUnknown` (exit 137, as the kubelet reports containers it lost); a pod
/// that had not ended is Failed with `reason`. Tasks are deleted (killed first), the
/// sandbox is released, the status written, the supervisor record removed; records, logs
/// and volumes stay until `podctl rm`.
pub async fn conclude(
    client: &Client,
    root: &Path,
    name: &str,
    reason: &str,
    message: &str,
) -> Result<PodStatus, LifecycleError> {
    let namespace = client.namespace();
    let record = pods::get(root, namespace, name)?;
    let dir = pod_dir(root, namespace, name);
    for c in pod_containers(client, name).await? {
        container::remove_task(client, &c.id).await?;
    }
    super::destroy_or_release(&dir, false).await?;
    let pod = record.pod.unwrap_or_default();
    let last = record.status;
    let start_time = admitted_at(last.as_ref());
    let mut containers: Vec<ContainerStatus> = last
        .as_ref()
        .map(|s| s.all().cloned().collect())
        .unwrap_or_default();
    for c in &mut containers {
        if let ContainerState::Running(r) = &c.state {
            c.state = ContainerState::Terminated(Terminated {
                exit_code: 137,
                reason: "ContainerStatusUnknown".into(),
                message: Some(
                    "The container could not be located when the pod was terminated".into(),
                ),
                started_at: Some(r.started_at.clone()),
                finished_at: None,
                container_id: c.container_id.clone().unwrap_or_default(),
            });
            c.ready = false;
            c.started = false;
        }
    }
    let ending = match &last {
        Some(s) if s.phase.is_terminal() => super::state::Ending {
            phase: s.phase,
            reason: s.reason.clone(),
            message: s.message.clone(),
        },
        _ => super::state::Ending {
            phase: crate::status::Phase::Failed,
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
        },
    };
    let shared = Shared::new(
        name,
        (start_time, std::time::Instant::now()),
        policy_of(&pod),
        containers,
        Some(&dir),
        Arc::new(super::NoObserver),
    );
    // The addresses the pod had stay in its final status, as `finish` keeps them.
    if let Some(s) = &last {
        let ips = |list: &[crate::status::PodIp]| {
            list.iter()
                .filter_map(|p| p.ip.parse().ok())
                .collect::<Vec<_>>()
        };
        shared.set_addresses(ips(&s.host_ips).into_iter().next(), ips(&s.pod_ips));
    }
    shared.end(ending);
    shared.sandbox_released();
    shared.save();
    let _ = std::fs::remove_file(dir.join(pods::files::SUPERVISOR));
    Ok(shared.snapshot())
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
    let current = current_id(status);
    let snapshotter = &step.image.snapshotter;
    let ended_here = matches!(&status.state, ContainerState::Terminated(t)
        if Some(t.container_id.trim_start_matches("containerd://")) == current.as_deref());

    // Only the run the status names can have been started: the runner records a run's id
    // (synchronously) before Tasks.Start. Anything else is a leftover: prepared ahead, or
    // half-created, or half-deleted.
    let mut live = None;
    for id in ids {
        let is_current = current.as_deref() == Some(id.as_str());
        let task = if is_current {
            settled_task_status(client, &id).await?
        } else {
            client.task_status(&id).await?
        };
        match task {
            Some(TaskStatus::Stopped) if is_current && ended_here => {
                // Its end was recorded; only the task was left to delete.
                container::remove_task(client, &id).await?;
            }
            Some(TaskStatus::Running | TaskStatus::Paused | TaskStatus::Stopped) if is_current => {
                live = Some(id)
            }
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
        ContainerState::Waiting(_) => {
            // In back-off, the dead run still named: the next run is a restart.
            let after_exit = matches!(&status.last_state, Some(ContainerState::Terminated(t))
                if Some(t.container_id.as_str()) == status.container_id.as_deref());
            if after_exit {
                status.restart_count += 1;
            }
            Ok(Recovery::Fresh {
                restarts: status.restart_count,
            })
        }
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

/// How long a named run's task may stay `Created` before it counts as never started: a
/// start in flight on a loaded host can take seconds.
const START_SETTLES: Duration = Duration::from_secs(10);

/// The status of the task of the run the status names. The runner records the run just
/// before Tasks.Start; a start still in flight when the supervisor died completes in
/// containerd meanwhile, so `Created` (or UNKNOWN, during the start) is looked at again for
/// a moment before it is believed.
async fn settled_task_status(
    client: &Client,
    id: &str,
) -> Result<Option<TaskStatus>, LifecycleError> {
    let deadline = std::time::Instant::now() + START_SETTLES;
    loop {
        let task = client.task_status(id).await?;
        // `Other` is containerd's UNKNOWN, which it reports while a start is under way.
        let unsettled = matches!(task, Some(TaskStatus::Created | TaskStatus::Other));
        if !unsettled || std::time::Instant::now() >= deadline {
            return Ok(task);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// When the pod was admitted, as its last status says (`startTime`); now if unknown.
fn admitted_at(last: Option<&PodStatus>) -> SystemTime {
    last.and_then(|s| s.start_time.as_deref())
        .and_then(pods::parse_time)
        .unwrap_or_else(SystemTime::now)
}

/// The containerd id of the run a container's status names.
fn current_id(status: &ContainerStatus) -> Option<String> {
    status
        .container_id
        .as_deref()
        .and_then(|id| id.strip_prefix("containerd://"))
        .map(str::to_string)
}

/// A regular init container of a pod whose main containers have started: it completed.
/// Its record stays (it is part of the pod's status); a task left of it goes.
async fn completed_init(
    ctx: &PodContext,
    step: &Step,
    status: &mut ContainerStatus,
    ids: Vec<String>,
) -> Result<Recovery, LifecycleError> {
    let current = current_id(status);
    for id in ids {
        if current.as_deref() == Some(id.as_str()) {
            if ctx.client.task_status(&id).await?.is_some() {
                container::remove_task(&ctx.client, &id).await?;
            }
        } else {
            container::remove(&ctx.client, &id, &step.image.snapshotter).await?;
        }
    }
    if status.exit_code() != Some(0) {
        let started_at = match &status.state {
            ContainerState::Running(r) => Some(r.started_at.clone()),
            _ => None,
        };
        status.state = ContainerState::Terminated(Terminated {
            exit_code: 0,
            reason: "Completed".into(),
            message: None,
            started_at,
            finished_at: None,
            container_id: status.container_id.clone().unwrap_or_default(),
        });
    }
    Ok(Recovery::Done)
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
