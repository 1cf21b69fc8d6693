//! The pod-level state machine: init containers in order (a regular one must exit 0 before
//! the next starts; a sidecar must have started), then every main container in spec order,
//! then the end: main containers first, sidecars afterwards in reverse order.
//!
//! The pod ends when every main container is done (not restarted again), when an init
//! container fails under `restartPolicy: Never`, when `activeDeadlineSeconds` runs out, or
//! when the caller asks it to stop. Each container is driven by its own [`Runner`]; the
//! coordinator only starts runners, waits on the pod's shared state, and escalates their
//! [`Control`].

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::container::Prepared;
use super::plan::{Pipeline, Step};
use super::runner::{Control, Runner};
use super::state::{Ending, EventType, Shared};
use super::{LifecycleError, PodContext, StopRequest, MINIMUM_GRACE};
use crate::status::{live_phase, ContainerState, Phase, Role};

type Outcome = Result<Option<Prepared>, LifecycleError>;

/// How often the teardown tries to remove one container.
const REMOVAL_TRIES: u32 = 3;

/// How long after its last deadline a runner that has not ended is given up on.
const RUNNER_GIVE_UP: Duration = Duration::from_secs(30);

/// A started runner.
struct Slot {
    control: watch::Sender<Control>,
    outcome: Arc<Mutex<Option<Outcome>>>,
    task: JoinHandle<()>,
}

/// Why the pod ends before its containers are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    Stop,
    Deadline,
}

pub(crate) struct Coordinator {
    ctx: Arc<PodContext>,
    shared: Arc<Shared>,
    stop: watch::Receiver<StopRequest>,
    stop_open: bool,
    /// When `activeDeadlineSeconds` runs out.
    deadline: Option<Instant>,
    slots: Vec<Option<Slot>>,
    pub teardown: Teardown,
    /// The pod network's ADD under way; the first container start waits for it.
    pub network: Option<super::NetworkSetup>,
}

impl Coordinator {
    pub fn new(
        ctx: Arc<PodContext>,
        shared: Arc<Shared>,
        stop: watch::Receiver<StopRequest>,
        remove: bool,
        containers: usize,
    ) -> Self {
        let deadline = ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map(|s| shared.started + Duration::from_secs(s));
        Self {
            teardown: Teardown::new(ctx.clone(), remove),
            ctx,
            shared,
            stop,
            stop_open: true,
            deadline,
            slots: (0..containers).map(|_| None).collect(),
            network: None,
        }
    }

    /// Waits for the pod's network before the first container starts (once; later calls
    /// return at once), recording its addresses in the status and `/etc/hosts`. A stop
    /// asked for meanwhile returns without waiting: the ADD finishes on its own, and the
    /// teardown's DEL waits for it.
    async fn network_ready(&mut self) -> Result<Option<Interrupt>, LifecycleError> {
        let Some(setup) = self.network.take() else {
            return Ok(None);
        };
        let mut stop = self.stop.clone();
        let ips = tokio::select! {
            joined = setup => joined.map_err(|e| LifecycleError::Join(e.to_string()))??,
            _ = stop.wait_for(|s| *s != StopRequest::None) => return Ok(Some(Interrupt::Stop)),
        };
        tracing::debug!(pod = %self.ctx.pod_name, ?ips, "network attached");
        let (sandbox, pod, addresses) =
            (self.ctx.sandbox.clone(), self.ctx.pod.clone(), ips.clone());
        tokio::task::spawn_blocking(move || sandbox.write_hosts(&pod, &addresses))
            .await
            .map_err(|e| LifecycleError::Join(e.to_string()))??;
        self.ctx.set_pod_ips(ips.clone());
        self.shared.set_pod_ips(ips);
        Ok(None)
    }

    /// Runs the pod to its end and fixes its final phase.
    pub async fn drive(&mut self, pipeline: &mut Pipeline<'_>) -> Result<(), LifecycleError> {
        // `status.podIP` in env: no spec before the address is known.
        if self.ctx.env_reads_pod_ip() {
            if let Some(Interrupt::Stop) = self.network_ready().await? {
                return Ok(());
            }
        }
        self.ctx.check_specs(&pipeline.plan)?;
        let ctx = self.ctx.clone();
        let applied = tokio::task::spawn_blocking(move || ctx.apply_pod_cgroup())
            .await
            .map_err(|e| LifecycleError::Join(e.to_string()))?;
        match applied {
            // A pod that runs already is not torn down for its cgroup's limits.
            Err(e) if pipeline.adopted_any() => {
                tracing::warn!(pod = %self.ctx.pod_name, error = %e, "the adopted pod's cgroup could not be set");
            }
            other => other?,
        }
        // Before any container is created: they join its PID namespace then.
        super::pause::start(&self.ctx).await?;
        pipeline.prepare_ahead().await?;
        let plan = pipeline.plan.clone();
        let inits = plan.iter().take_while(|s| s.role.is_init()).count();
        // Attempts a restarted supervisor adopted were started in order by the one before:
        // all are supervised again at once, so that a stop reaches them too.
        for (i, step) in plan.iter().enumerate() {
            if let Some(p) = pipeline.take_adopted(i) {
                self.spawn(i, step, Some(p));
            }
        }

        let mut interrupt = self.interrupted();
        let mut failed_init = None;
        for (i, step) in plan.iter().enumerate().take(inits) {
            if interrupt.is_some() {
                break;
            }
            if pipeline.is_done(i) {
                if self.shared.container(i).exit_code() == Some(0) {
                    continue;
                }
                failed_init = Some(step.container.name.clone());
                break;
            }
            if self.slots[i].is_none() {
                let first = pipeline.take(i).await?;
                // A stop that came while the container (or the network) was being made: it
                // does not start.
                interrupt = self.network_ready().await?.or_else(|| self.interrupted());
                if interrupt.is_some() {
                    self.teardown.delete(first);
                    break;
                }
                self.spawn(i, step, Some(first));
            }
            let sidecar = step.role == Role::Sidecar;
            interrupt = self
                .wait_until(|me| me.done(i) || (sidecar && me.shared.container(i).started))
                .await;
            self.check()?;
            if interrupt.is_some() || sidecar {
                continue;
            }
            if self.shared.container(i).exit_code() != Some(0) {
                failed_init = Some(step.container.name.clone());
                break;
            }
            // Kept until the main containers have started: see `Teardown::held`.
            if let Some(p) = self.take_attempt(i) {
                self.teardown.hold(p);
            }
        }

        if interrupt.is_none() && failed_init.is_none() {
            // Adopted ones are running already; done ones never run again.
            let waiting: Vec<usize> = (inits..plan.len())
                .filter(|&i| self.slots[i].is_none() && !pipeline.is_done(i))
                .collect();
            for &i in &waiting {
                self.shared.update(i, |c| {
                    c.state = ContainerState::waiting("ContainerCreating");
                });
            }
            let mut firsts = Vec::new();
            for &i in &waiting {
                firsts.push(pipeline.take(i).await?);
            }
            if let Some(stopped) = self.network_ready().await? {
                interrupt = Some(stopped);
            }
            // One after another in spec order: a postStart hook holds the next start.
            let mut firsts = firsts.into_iter();
            for (&i, first) in waiting.iter().zip(firsts.by_ref()) {
                interrupt = interrupt.or_else(|| self.interrupted());
                if interrupt.is_some() {
                    self.teardown.delete(first);
                    break;
                }
                self.spawn(i, &plan[i], Some(first));
                interrupt = self
                    .wait_until(|me| me.done(i) || me.shared.settled(i))
                    .await;
                self.check()?;
                if interrupt.is_some() {
                    break;
                }
            }
            for unstarted in firsts {
                self.teardown.delete(unstarted);
            }
            self.teardown.release();
            if interrupt.is_none() {
                interrupt = self
                    .wait_until(|me| (inits..plan.len()).all(|i| me.done(i)))
                    .await;
                self.check()?;
            }
        }

        if interrupt == Some(Interrupt::Deadline) {
            self.shared.event(
                EventType::Warning,
                "DeadlineExceeded",
                None,
                "Pod was active on the node longer than the specified deadline".into(),
            );
        }
        self.terminate(&plan, interrupt).await;
        self.check()?;
        self.shared.end(self.ending(interrupt, failed_init));
        self.shared.save();
        let status = self.shared.snapshot();
        match status.phase {
            Phase::Succeeded => self.shared.event(
                EventType::Normal,
                "Completed",
                None,
                format!("pod {} completed", status.name),
            ),
            _ => self.shared.event(
                EventType::Warning,
                "Failed",
                None,
                format!(
                    "pod {} failed{}",
                    status.name,
                    status
                        .message
                        .as_ref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
            ),
        }
        Ok(())
    }

    fn ending(&self, interrupt: Option<Interrupt>, failed_init: Option<String>) -> Ending {
        let status = self.shared.snapshot();
        let mains: Vec<_> = status.container_statuses.iter().collect();
        let all_succeeded = !mains.is_empty() && mains.iter().all(|c| c.exit_code() == Some(0));
        match (interrupt, failed_init) {
            (Some(Interrupt::Deadline), _) => Ending {
                phase: Phase::Failed,
                reason: Some("DeadlineExceeded".into()),
                message: Some(
                    "Pod was active on the node longer than the specified deadline".into(),
                ),
            },
            (Some(Interrupt::Stop), _) if all_succeeded => Ending {
                phase: Phase::Succeeded,
                reason: None,
                message: None,
            },
            (Some(Interrupt::Stop), _) => Ending {
                phase: Phase::Failed,
                reason: Some("Stopped".into()),
                message: Some("the pod was stopped on request".into()),
            },
            (None, Some(init)) => Ending {
                phase: Phase::Failed,
                reason: None,
                message: Some(format!("init container {init} failed")),
            },
            (None, None) => {
                let all: Vec<_> = status.all().cloned().collect();
                let phase = match live_phase(&all, self.shared.policy) {
                    p if p.is_terminal() => p,
                    // Every main container is done, so the policy allowed no restart.
                    _ if all_succeeded => Phase::Succeeded,
                    _ => Phase::Failed,
                };
                Ending {
                    phase,
                    reason: None,
                    message: None,
                }
            }
        }
    }

    /// Ends every runner: the stop signal to the main containers (and a regular init
    /// container still running) at once; sidecars stop restarting now and get their stop
    /// signal in reverse order, each once the containers after it are gone. SIGKILL for
    /// whatever is left when the grace period is over, or at once on [`StopRequest::Now`].
    async fn terminate(&mut self, plan: &[Arc<Step>], interrupt: Option<Interrupt>) {
        if interrupt == Some(Interrupt::Stop) {
            // `podctl ps` shows the pod Terminating; a marker the daemon wrote stays as it is.
            let marker = self.ctx.pod_dir.join(crate::pods::files::STOP_REQUESTED);
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(marker);
        }
        let deadline = super::deadline_after(self.ctx.grace);
        for (i, step) in plan.iter().enumerate() {
            let next = match step.role {
                Role::Sidecar => Control::Drain { deadline },
                _ => Control::Stop { deadline },
            };
            self.escalate(i, next);
        }
        let sidecars: Vec<usize> = (0..plan.len())
            .filter(|i| plan[*i].role == Role::Sidecar)
            .collect();
        self.wait_stopping(deadline, |me| {
            (0..plan.len())
                .filter(|i| !sidecars.contains(i))
                .all(|i| me.done(i))
        })
        .await;
        for &i in sidecars.iter().rev() {
            // The kubelet's one-off extension when the grace period ran out meanwhile.
            let deadline = deadline.max(Instant::now() + MINIMUM_GRACE);
            self.escalate(i, Control::Stop { deadline });
            self.wait_stopping(deadline, |me| me.done(i)).await;
        }
    }

    /// Kills whatever still runs (after an error) and hands every container's last attempt
    /// to the teardown. A runner stuck on containerd is given up on after a while: the
    /// pod's objects are then removed by label.
    pub async fn shutdown(&mut self) {
        for i in 0..self.slots.len() {
            self.escalate(i, Control::Kill);
        }
        for i in 0..self.slots.len() {
            if let Some(slot) = self.slots[i].as_mut() {
                if tokio::time::timeout(RUNNER_GIVE_UP, &mut slot.task)
                    .await
                    .is_err()
                {
                    tracing::warn!(container = i, "a container's runner did not end; abandoned");
                    slot.task.abort();
                }
            }
            if let Some(p) = self.take_attempt(i) {
                self.teardown.delete(p);
            }
        }
    }

    fn spawn(&mut self, index: usize, step: &Arc<Step>, first: Option<Prepared>) {
        let rule = super::recover::restart_rule(step.role, self.shared.policy);
        let (control, rx) = watch::channel(Control::Run);
        let runner = Runner {
            ctx: self.ctx.clone(),
            shared: self.shared.clone(),
            index,
            step: step.clone(),
            rule,
            control: rx,
        };
        let outcome = Arc::new(Mutex::new(None));
        let slot_outcome = outcome.clone();
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            // A panic must still end the slot, or the coordinator would wait for ever.
            let result = AssertUnwindSafe(runner.run(first))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(LifecycleError::Join("a container runner panicked".into()))
                });
            if let Err(e) = &result {
                tracing::debug!(error = %e, "container runner failed");
            }
            *lock(&slot_outcome) = Some(result);
            shared.touch();
        });
        self.slots[index] = Some(Slot {
            control,
            outcome,
            task,
        });
    }

    fn escalate(&self, index: usize, next: Control) {
        if let Some(slot) = &self.slots[index] {
            Control::escalate(&slot.control, next);
        }
    }

    /// Whether container `index`'s runner has ended (a container never started counts).
    fn done(&self, index: usize) -> bool {
        self.slots[index]
            .as_ref()
            .is_none_or(|s| lock(&s.outcome).is_some())
    }

    /// The first error of a runner, if one failed.
    fn check(&self) -> Result<(), LifecycleError> {
        for slot in self.slots.iter().flatten() {
            let mut outcome = lock(&slot.outcome);
            if matches!(*outcome, Some(Err(_))) {
                if let Some(Err(e)) = outcome.replace(Ok(None)) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Takes the last attempt of a finished runner.
    fn take_attempt(&mut self, index: usize) -> Option<Prepared> {
        let slot = self.slots[index].as_ref()?;
        let mut outcome = lock(&slot.outcome);
        match outcome.as_mut() {
            Some(Ok(p)) => p.take(),
            _ => None,
        }
    }

    fn interrupted(&self) -> Option<Interrupt> {
        if *self.stop.borrow() != StopRequest::None {
            Some(Interrupt::Stop)
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(Interrupt::Deadline)
        } else {
            None
        }
    }

    /// Whether a runner has failed (its error is then taken by [`Coordinator::check`]).
    fn failed(&self) -> bool {
        self.slots
            .iter()
            .flatten()
            .any(|s| matches!(*lock(&s.outcome), Some(Err(_))))
    }

    /// Waits until `cond` holds, a runner failed, or the pod is interrupted.
    async fn wait_until(&mut self, cond: impl Fn(&Self) -> bool) -> Option<Interrupt> {
        let mut changed = self.shared.changed();
        loop {
            changed.borrow_and_update();
            if cond(self) || self.failed() {
                return None;
            }
            if let Some(i) = self.interrupted() {
                return Some(i);
            }
            let deadline = async {
                match self.deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = changed.changed() => {}
                r = self.stop.changed(), if self.stop_open => self.stop_open = r.is_ok(),
                _ = deadline => {}
            }
        }
    }

    /// Waits until `cond` holds while the pod stops; [`StopRequest::Now`] kills everything.
    /// Runners SIGKILL at `deadline` themselves; a runner still not done well after it is
    /// left to [`Coordinator::shutdown`].
    async fn wait_stopping(&mut self, deadline: Instant, cond: impl Fn(&Self) -> bool) {
        let mut changed = self.shared.changed();
        let give_up = deadline + RUNNER_GIVE_UP;
        loop {
            changed.borrow_and_update();
            if cond(self) || self.failed() {
                return;
            }
            if *self.stop.borrow() == StopRequest::Now {
                for i in 0..self.slots.len() {
                    self.escalate(i, Control::Kill);
                }
            }
            tokio::select! {
                _ = changed.changed() => {}
                r = self.stop.changed(), if self.stop_open => self.stop_open = r.is_ok(),
                _ = tokio::time::sleep_until(give_up.into()) => return,
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Deletes finished containers in the background: their tasks always (so the shim can go),
/// their snapshots and records too when the pod is removed at the end.
pub(crate) struct Teardown {
    ctx: Arc<PodContext>,
    remove: bool,
    /// Exited containers held until the main containers have started: deletes would
    /// compete with the creates on the start path.
    held: Vec<Prepared>,
    background: Vec<JoinHandle<()>>,
}

impl Teardown {
    fn new(ctx: Arc<PodContext>, remove: bool) -> Self {
        Self {
            ctx,
            remove,
            held: Vec::new(),
            background: Vec::new(),
        }
    }

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
    pub fn delete(&mut self, mut p: Prepared) {
        let ctx = self.ctx.clone();
        let remove = self.remove || !p.ran();
        self.background.push(tokio::spawn(async move {
            // A busy containerd can fail one removal; what a later try finds gone is done.
            let mut tries = 0;
            loop {
                tries += 1;
                let result = match p.delete_task(&ctx).await {
                    Ok(()) if remove => p.remove(&ctx.client).await,
                    other => other,
                };
                match result {
                    Ok(()) => break,
                    Err(e) if tries < REMOVAL_TRIES => {
                        tracing::debug!(container = %p.name, error = %e, "removing container; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => {
                        tracing::warn!(container = %p.name, error = %e, "removing container");
                        break;
                    }
                }
            }
        }));
    }

    pub async fn finish(mut self) {
        self.release();
        for h in self.background {
            let _ = h.await;
        }
    }
}
