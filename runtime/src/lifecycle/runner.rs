//! One container across its restarts: start, supervise, and on exit either end or restart
//! after the crash-loop back-off, as its restart rule says. The coordinator steers a runner
//! through a [`Control`] channel; the runner reports through the pod's [`Shared`] state.
//!
//! Transitions of a runner (the state the pod's status shows in brackets):
//! - created (`Waiting`) → started, and `Running` once its postStart hook returned; or could
//!   not start (`Terminated: StartError`);
//! - running → exited (`Terminated`) on its own, or after preStop, the stop signal and
//!   SIGKILL once the control asks for it or a failed postStart hook, liveness or startup
//!   probe demands it;
//! - exited → done, when the rule does not restart it or the pod is ending; else back-off
//!   (`Waiting: CrashLoopBackOff`, `lastState` the exit) → created again, `restartCount` + 1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::backoff::Backoff;
use super::container::Prepared;
use super::probing::{AttemptTarget, ProbeKind};
use super::state::{EventType, Shared};
use super::{Event, LifecycleError, PodContext, Step, MINIMUM_GRACE};
use crate::containerd::SIGKILL;
use crate::probe::Outcome;
use crate::status::{ContainerState, RestartPolicy, Running, Waiting};

/// What the coordinator asks of a runner. Requests only ever escalate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Keep the container running, restarting it per its rule.
    Run,
    /// The pod is ending: no more restarts, but no signal yet (a sidecar waiting for its
    /// turn to stop).
    Drain { deadline: Instant },
    /// Send the stop signal now; SIGKILL at `deadline`.
    Stop { deadline: Instant },
    /// SIGKILL now.
    Kill,
}

impl Control {
    fn level(self) -> u8 {
        match self {
            Control::Run => 0,
            Control::Drain { .. } => 1,
            Control::Stop { .. } => 2,
            Control::Kill => 3,
        }
    }

    /// Whether the pod is ending (nothing more starts).
    pub fn is_ending(self) -> bool {
        self.level() > 0
    }

    /// Raises `current` to `next` unless it is already at least as far along.
    pub fn escalate(sender: &watch::Sender<Control>, next: Control) {
        sender.send_if_modified(|c| {
            let raise = next.level() > c.level();
            if raise {
                *c = next;
            }
            raise
        });
    }
}

/// How one container is run.
pub(crate) struct Runner {
    pub ctx: Arc<PodContext>,
    pub shared: Arc<Shared>,
    /// The container's place in the pod's status (init containers first).
    pub index: usize,
    pub step: Arc<Step>,
    /// Whether an exit leads to a restart: `Always` for sidecars, `OnFailure` for init
    /// containers of restarting pods, the pod's policy for main containers.
    pub rule: RestartPolicy,
    pub control: watch::Receiver<Control>,
}

impl Runner {
    /// Runs the container until it ends for good or the pod ends. `first` is the first
    /// attempt when it was prepared ahead. Returns the last attempt, if one still exists,
    /// for the pod's teardown.
    pub async fn run(
        mut self,
        mut first: Option<Prepared>,
    ) -> Result<Option<Prepared>, LifecycleError> {
        let name = self.step.container.name.clone();
        let mut backoff = Backoff::new(self.ctx.backoff);
        // Not 0 for a pod a restarted supervisor adopted.
        let mut restarts = self.shared.container(self.index).restart_count;
        loop {
            // An adopted attempt runs already: it is stopped, not dropped.
            if self.ending() && !first.as_ref().is_some_and(Prepared::adopted) {
                return Ok(first);
            }
            let mut p = match first.take() {
                Some(p) => p,
                None => {
                    let step = &self.step;
                    super::retrying(|| {
                        Prepared::create(
                            &self.ctx,
                            &step.container,
                            step.role,
                            &step.image,
                            self.shared.observer(),
                            restarts,
                        )
                    })
                    .await?
                }
            };
            // The new run's id and number together: readers tell a run that ended from the
            // next one by them.
            self.shared.update(self.index, |c| {
                c.container_id = Some(format!("containerd://{}", p.id));
                c.restart_count = restarts;
            });
            // On disk before the run starts: an adopting supervisor names its log by it.
            self.shared.save();
            // An adopted attempt was started by the supervisor before this one; it runs, or
            // ended meanwhile.
            if !p.adopted() {
                if self.ending() {
                    return Ok(Some(p));
                }
                self.start(&mut p).await;
            }
            self.supervise(&mut p).await?;
            let Some(terminated) = p.terminated() else {
                return Ok(Some(p));
            };
            let finished = Instant::now();
            let exit_code = terminated.exit_code;
            self.shared.observer().event(Event::Exited {
                container: &name,
                role: self.step.role,
                exit_code,
                reason: &terminated.reason,
            });
            self.shared.update(self.index, |c| {
                c.state = ContainerState::Terminated(terminated);
                c.started = false;
                c.ready = false;
            });
            // On disk before the attempt is deleted: its exit code lives nowhere else then.
            self.shared.save();
            if self.ending() || !self.rule.restarts(exit_code) {
                return Ok(Some(p));
            }

            // The dead attempt goes now; its log file stays, as the kubelet keeps the
            // previous one for `logs --previous`.
            let since = Instant::now();
            while let Err(e) = p.delete_task(&self.ctx).await {
                if !super::worth_retrying(&e, since) {
                    return Err(e);
                }
                tokio::time::sleep(super::RETRY_EVERY).await;
            }
            super::retrying(|| p.remove(&self.ctx.client)).await?;
            let delay = backoff.next_delay(finished);
            let waiting = if delay.is_zero() {
                Waiting {
                    reason: "ContainerCreating".into(),
                    message: None,
                }
            } else {
                Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {} restarting failed container={name} pod={}",
                        human(delay),
                        self.shared.pod_name
                    )),
                }
            };
            self.shared.update(self.index, |c| {
                let last = std::mem::replace(&mut c.state, ContainerState::Waiting(waiting));
                c.last_state = Some(last);
            });
            if !delay.is_zero() {
                self.shared.event(
                    EventType::Warning,
                    "BackOff",
                    Some(&name),
                    format!(
                        "Back-off restarting failed container {name} in pod {}",
                        self.shared.pod_name
                    ),
                );
                let ended = tokio::select! {
                    _ = tokio::time::sleep(delay) => false,
                    _ = self.control.wait_for(|c| c.is_ending()) => true,
                };
                if ended {
                    return Ok(None);
                }
            }
            restarts += 1;
        }
    }

    fn ending(&self) -> bool {
        self.control.borrow().is_ending()
    }

    /// Starts a new attempt, with its `Created` and `Started` (or `Failed`) events.
    async fn start(&self, p: &mut Prepared) {
        let name = &self.step.container.name;
        self.shared.event(
            EventType::Normal,
            "Created",
            Some(name),
            format!("Created container: {name}"),
        );
        if let Err(message) = p.start(&self.ctx.client).await {
            self.shared.event(
                EventType::Warning,
                "Failed",
                Some(name),
                format!("Error: {message}"),
            );
        } else {
            self.shared.event(
                EventType::Normal,
                "Started",
                Some(name),
                format!("Started container {name}"),
            );
        }
    }

    /// The container runs (its postStart hook, if any, done): `Running`, started unless a
    /// startupProbe has yet to pass, ready unless a readinessProbe has yet to pass. Starts
    /// the startup probe, or the other probes when there is none.
    fn mark_running(&self, p: &Prepared, attempt: &mut Attempt) {
        let handlers = &self.step.handlers;
        let started = handlers.startup.is_none();
        let ready = started && handlers.readiness.is_none();
        let started_at = p
            .started_at()
            .map(crate::status::k8s_time)
            .unwrap_or_default();
        self.shared.update(self.index, |c| {
            c.state = ContainerState::Running(Running { started_at });
            c.started = started;
            c.ready = ready;
        });
        self.shared.settle(self.index);
        if handlers.startup.is_some() {
            self.spawn_probes(&[ProbeKind::Startup], attempt);
        } else {
            self.spawn_probes(&[ProbeKind::Liveness, ProbeKind::Readiness], attempt);
        }
    }

    fn spawn_probes(&self, kinds: &[ProbeKind], attempt: &mut Attempt) {
        let handlers = &self.step.handlers;
        for &kind in kinds {
            let spec = match kind {
                ProbeKind::Startup => &handlers.startup,
                ProbeKind::Liveness => &handlers.liveness,
                ProbeKind::Readiness => &handlers.readiness,
            };
            if let Some(spec) = spec.clone() {
                let worker = attempt.target.spawn_probe(
                    kind,
                    spec,
                    attempt.started,
                    self.shared.clone(),
                    self.step.container.name.clone(),
                    attempt.verdicts.clone(),
                );
                attempt.probes.push((kind, worker));
            }
        }
    }

    /// Waits for the attempt to exit while running its hooks and probes, and sends it the
    /// stop signal and SIGKILL as the control asks, or as a failed postStart hook or
    /// liveness/startup probe demands (the kubelet kills such a container with the pod's
    /// grace period; it is then restarted per its rule).
    async fn supervise(&mut self, p: &mut Prepared) -> Result<(), LifecycleError> {
        if !p.is_running() {
            self.shared.settle(self.index);
            return Ok(());
        }
        let name = self.step.container.name.clone();
        let handlers = self.step.handlers.clone();
        let (verdict_tx, mut verdicts) = mpsc::channel(8);
        let mut a = Attempt {
            target: AttemptTarget {
                client: self.ctx.client.clone(),
                container_id: p.id.clone(),
                process: p.process.clone(),
                io_dir: self.ctx.io_dir.clone(),
                netns: self.ctx.sandbox.netns.clone(),
            },
            started: Instant::now(),
            verdicts: verdict_tx,
            probes: Vec::new(),
            post_start: None,
            pre_stop: None,
            pre_stop_begun: handlers.pre_stop.is_none(),
            announced: false,
            stop: StopClock::default(),
        };
        match handlers.post_start.clone() {
            // An adopted attempt's hook ran (or was lost with) the supervisor before.
            Some(action) if !p.adopted() => {
                a.post_start = Some(a.target.spawn_action(action, Duration::MAX))
            }
            _ => self.mark_running(p, &mut a),
        }
        let result = loop {
            let control = *self.control.borrow_and_update();
            let now = Instant::now();
            if control.is_ending() || a.stop.orphaned {
                // The kubelet stops liveness and startup probes before it kills a pod.
                a.probes.retain(|(kind, worker)| {
                    let keep = *kind == ProbeKind::Readiness;
                    if !keep {
                        worker.abort();
                    }
                    keep
                });
            }
            let ordered = match control {
                Control::Drain { deadline } | Control::Stop { deadline } => Some(deadline),
                _ => None,
            };
            if ordered.is_some() && !a.announced {
                a.announced = true;
                self.shared.event(
                    EventType::Normal,
                    "Killing",
                    Some(&name),
                    format!("Stopping container {name}"),
                );
            }
            if let Some(until) = ordered.or(a.stop.self_stop) {
                if !a.pre_stop_begun {
                    a.pre_stop_begun = true;
                    if let Some(action) = handlers.pre_stop.clone() {
                        let timeout = until.saturating_duration_since(now);
                        a.pre_stop = Some(a.target.spawn_action(action, timeout));
                    }
                }
            }
            let signal_due = a.stop.signal_due(control);
            if signal_due.is_some() && a.pre_stop.is_none() && a.stop.signalled_at.is_none() {
                a.stop.signalled_at = Some(now);
                if let Err(e) = self
                    .ctx
                    .client
                    .kill_task(&p.id, p.stop_signal(), false)
                    .await
                {
                    tracing::debug!(container = %name, error = %e, "stop signal");
                }
            }
            let kill_at = a.stop.kill_at(control, now);
            let kill_timer = async {
                match kill_at {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = p.wait() => break r,
                r = self.control.changed(), if !a.stop.orphaned => {
                    // The coordinator is gone (an error unwinds the pod): kill.
                    a.stop.orphaned = r.is_err();
                }
                _ = kill_timer => {
                    match self.ctx.client.kill_task(&p.id, SIGKILL, true).await {
                        Ok(()) => a.stop.killed = true,
                        Err(e) => {
                            tracing::warn!(container = %name, error = %e, "SIGKILL failed; retrying");
                            a.stop.kill_retry = Some(Instant::now() + KILL_RETRY);
                        }
                    }
                }
                outcome = join_hook(&mut a.post_start), if a.post_start.is_some() => {
                    a.post_start = None;
                    match outcome {
                        Outcome::Success => self.mark_running(p, &mut a),
                        Outcome::Failure(m) | Outcome::Error(m) => {
                            self.shared.event(
                                EventType::Warning,
                                "FailedPostStartHook",
                                Some(&name),
                                format!("PostStartHook failed: {m}"),
                            );
                            self.kill_for(&name, "failed its postStart hook", &mut a, None);
                        }
                    }
                }
                outcome = join_hook(&mut a.pre_stop), if a.pre_stop.is_some() => {
                    a.pre_stop = None;
                    if let Outcome::Failure(m) | Outcome::Error(m) = outcome {
                        self.shared.event(
                            EventType::Warning,
                            "FailedPreStopHook",
                            Some(&name),
                            format!("PreStopHook failed: {m}"),
                        );
                    }
                }
                Some((kind, verdict)) = verdicts.recv() => match (kind, verdict) {
                    (ProbeKind::Startup, true) => {
                        let ready = handlers.readiness.is_none();
                        self.shared.update(self.index, |c| {
                            c.started = true;
                            c.ready = ready;
                        });
                        if !control.is_ending() {
                            self.spawn_probes(&[ProbeKind::Liveness, ProbeKind::Readiness], &mut a);
                        }
                    }
                    (ProbeKind::Readiness, ready) => {
                        self.shared.update(self.index, |c| c.ready = ready && c.started);
                    }
                    (ProbeKind::Liveness, true) => {}
                    (kind, false) => {
                        let (what, probe) = match kind {
                            ProbeKind::Startup => ("startup", handlers.startup.as_ref()),
                            _ => ("liveness", handlers.liveness.as_ref()),
                        };
                        let grace = probe.and_then(|s| s.settings.termination_grace_period);
                        let why = format!("failed {what} probe, will be restarted");
                        self.kill_for(&name, &why, &mut a, grace);
                    }
                },
            }
        };
        for (_, worker) in a.probes {
            worker.abort();
        }
        for hook in [a.post_start, a.pre_stop].into_iter().flatten() {
            hook.abort();
        }
        self.shared.settle(self.index);
        result
    }

    /// Starts killing the container on its own account: a `Killing` event, then (once its
    /// preStop hook ran) its stop signal, SIGKILL after the grace period.
    fn kill_for(&self, name: &str, why: &str, a: &mut Attempt, grace: Option<Duration>) {
        if a.stop.self_stop.is_some() {
            return;
        }
        self.shared.event(
            EventType::Normal,
            "Killing",
            Some(name),
            format!("Container {name} {why}"),
        );
        let grace = grace.map_or(self.ctx.grace, |g| g.max(MINIMUM_GRACE));
        a.stop.self_stop = Some(super::deadline_after(grace));
    }
}

/// How long a failed SIGKILL waits before it is tried again.
const KILL_RETRY: Duration = Duration::from_secs(1);

/// Where one run of a container stands while it runs.
struct Attempt {
    target: AttemptTarget,
    /// When the process started: probes' `initialDelaySeconds` count from here.
    started: Instant,
    verdicts: mpsc::Sender<(ProbeKind, bool)>,
    probes: Vec<(ProbeKind, JoinHandle<()>)>,
    /// The postStart hook, while it runs: the container is not `Running` until it returns.
    post_start: Option<JoinHandle<Outcome>>,
    /// The preStop hook, while it runs: the stop signal waits for it.
    pre_stop: Option<JoinHandle<Outcome>>,
    /// preStop was started (or there is none): it runs once per attempt.
    pre_stop_begun: bool,
    /// The `Killing` event of a stop the coordinator asked for was recorded.
    announced: bool,
    stop: StopClock,
}

/// When an attempt is stopped and killed.
#[derive(Debug, Default)]
struct StopClock {
    /// A kill the container brought on itself (failed hook or probe): its grace deadline.
    self_stop: Option<Instant>,
    signalled_at: Option<Instant>,
    /// When a SIGKILL that failed is tried again.
    kill_retry: Option<Instant>,
    killed: bool,
    /// The coordinator is gone: kill.
    orphaned: bool,
}

impl StopClock {
    /// When the stop signal is due to have been sent: a stop asked for, or one the container
    /// brought on itself; the earlier deadline of the two.
    fn signal_due(&self, control: Control) -> Option<Instant> {
        let asked = match control {
            Control::Stop { deadline } => Some(deadline),
            _ => None,
        };
        match (asked, self.self_stop) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When SIGKILL is due: now for [`Control::Kill`]; else at the grace deadline, but never
    /// sooner than [`MINIMUM_GRACE`] after the stop signal (a preStop hook may have used the
    /// grace period up), and with that one-off extension when preStop is still running at
    /// the deadline.
    fn kill_at(&self, control: Control, now: Instant) -> Option<Instant> {
        if self.killed {
            return None;
        }
        let at = if control == Control::Kill || self.orphaned {
            now
        } else {
            let deadline = self.signal_due(control)?;
            match self.signalled_at {
                Some(t) => deadline.max(t + MINIMUM_GRACE),
                None => deadline + MINIMUM_GRACE,
            }
        };
        Some(self.kill_retry.map_or(at, |r| r.max(at)))
    }
}

/// The outcome of a hook task; a task that died counts as an error.
async fn join_hook(hook: &mut Option<JoinHandle<Outcome>>) -> Outcome {
    match hook.as_mut() {
        Some(h) => h.await.unwrap_or_else(|e| Outcome::Error(e.to_string())),
        None => std::future::pending().await,
    }
}

/// A delay as the kubelet prints it in back-off messages (`10s`, `2m40s`, `300ms`).
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (m, s) = (secs / 60, secs % 60);
    match (m, s) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m0s"),
        (m, s) => format!("{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_print_like_the_kubelet() {
        assert_eq!(human(Duration::from_secs(10)), "10s");
        assert_eq!(human(Duration::from_secs(160)), "2m40s");
        assert_eq!(human(Duration::from_secs(300)), "5m0s");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn kill_follows_the_grace_deadline() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(30);
        let mut clock = StopClock::default();
        // Running, or draining: nothing is due.
        assert_eq!(clock.kill_at(Control::Run, now), None);
        assert_eq!(clock.kill_at(Control::Drain { deadline }, now), None);
        // Stopped and signalled: SIGKILL at the deadline.
        clock.signalled_at = Some(now);
        assert_eq!(
            clock.kill_at(Control::Stop { deadline }, now),
            Some(deadline)
        );
        // A preStop hook that used the grace period up still leaves the signal two seconds.
        let late = deadline + Duration::from_secs(1);
        clock.signalled_at = Some(late);
        assert_eq!(
            clock.kill_at(Control::Stop { deadline }, late),
            Some(late + MINIMUM_GRACE)
        );
        // Kill means now; a failed SIGKILL is retried later; a delivered one is not repeated.
        assert_eq!(clock.kill_at(Control::Kill, now), Some(now));
        clock.kill_retry = Some(now + KILL_RETRY);
        assert_eq!(clock.kill_at(Control::Kill, now), Some(now + KILL_RETRY));
        clock.killed = true;
        assert_eq!(clock.kill_at(Control::Kill, now), None);
    }

    #[test]
    fn a_self_inflicted_stop_takes_the_earlier_deadline() {
        let now = Instant::now();
        let mut clock = StopClock {
            self_stop: Some(now + Duration::from_secs(5)),
            ..StopClock::default()
        };
        assert_eq!(clock.signal_due(Control::Run), clock.self_stop);
        let pod_deadline = now + Duration::from_secs(2);
        assert_eq!(
            clock.signal_due(Control::Stop {
                deadline: pod_deadline
            }),
            Some(pod_deadline)
        );
        // Still in preStop when the deadline passed: the one-off extension.
        clock.self_stop = None;
        assert_eq!(
            clock.kill_at(Control::Stop { deadline: now }, now),
            Some(now + MINIMUM_GRACE)
        );
    }

    #[test]
    fn control_only_escalates() {
        let (tx, rx) = watch::channel(Control::Run);
        let deadline = Instant::now();
        Control::escalate(&tx, Control::Stop { deadline });
        Control::escalate(&tx, Control::Drain { deadline });
        assert_eq!(*rx.borrow(), Control::Stop { deadline });
        Control::escalate(&tx, Control::Kill);
        assert_eq!(*rx.borrow(), Control::Kill);
    }
}
