//! A Job on this host, as the Job controller runs it: pods from its template, up to
//! `parallelism` at once, until `completions` of them succeeded (`Complete`), or until its
//! failures exceed `backoffLimit` (`BackoffLimitExceeded`) or `activeDeadlineSeconds` ran
//! out (`DeadlineExceeded`); then the pods still running are stopped.
//!
//! A failure is a failed pod (under `restartPolicy: Never`, each followed by a new pod after
//! the back-off: 10 s doubling, as the controller's `DefaultJobPodFailureBackOff`, taken
//! from the run's back-off options) or, under `OnFailure`, a container exit that the pod
//! restarts (the controller counts those pods' restarts).
//!
//! Who runs each pod is a [`PodRunner`]: `podctl run` runs them itself ([`Foreground`]),
//! the daemon admits and supervises them as its other pods (a CronJob's Jobs).

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::containerd::Client;
use crate::lifecycle::{
    self, BackoffPolicy, Event, LifecycleError, Observer, RunOptions, StopRequest,
};
use crate::manifest::{random_suffix, Controller, JobRules, RunnablePod};
use crate::status::{Phase, PodStatus, RestartPolicy};

/// How a Job ended, in the shape of its `status` (`succeeded`, `failed`, a `Complete` or
/// `Failed` condition).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// Not part of Kubernetes' status: the Job's name.
    #[serde(skip)]
    pub name: String,
    pub succeeded: u32,
    pub failed: u32,
    pub conditions: Vec<JobCondition>,
    /// Not part of Kubernetes' status: each pod's final status, in the order they ended.
    pub pods: Vec<PodOutcome>,
}

/// A pod of the Job and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct PodOutcome {
    pub name: String,
    pub status: PodStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl JobStatus {
    /// Whether the Job completed.
    pub fn complete(&self) -> bool {
        self.conditions.iter().any(|c| c.type_ == "Complete")
    }

    /// `podctl run`'s exit code: 0 when the Job completed; else the exit code of the last
    /// pod that failed (1 when none has one).
    pub fn exit_code(&self) -> i32 {
        if self.complete() {
            return 0;
        }
        self.pods
            .iter()
            .rev()
            .map(|p| p.status.exit_code())
            .find(|c| *c != 0)
            .unwrap_or(1)
    }
}

/// Runs one pod of a Job to its end.
pub trait PodRunner: Clone + Send + Sync + 'static {
    type Error: From<LifecycleError> + Send + 'static;

    /// Runs `pod` until it ends, passing its events to `observer`; `stop` stops it.
    fn run_pod(
        &self,
        pod: RunnablePod,
        observer: Arc<dyn Observer>,
        stop: watch::Receiver<StopRequest>,
    ) -> impl Future<Output = Result<PodStatus, Self::Error>> + Send;

    /// The back-off between a failed pod and the next.
    fn backoff(&self) -> BackoffPolicy;
}

/// `podctl run`'s runner: this process supervises each pod.
#[derive(Clone)]
pub struct Foreground {
    pub client: Client,
    pub opts: RunOptions,
}

impl PodRunner for Foreground {
    type Error = LifecycleError;

    fn run_pod(
        &self,
        pod: RunnablePod,
        observer: Arc<dyn Observer>,
        stop: watch::Receiver<StopRequest>,
    ) -> impl Future<Output = Result<PodStatus, LifecycleError>> + Send {
        let me = self.clone();
        async move { lifecycle::run(&me.client, pod, &me.opts, observer, stop).await }
    }

    fn backoff(&self) -> BackoffPolicy {
        self.opts.backoff
    }
}

/// Runs `job` (a [`RunnablePod`] made by a Job) to its end, each pod through `runner`;
/// `stop` stops it: no new pod starts and the running ones get the request.
pub async fn run<R: PodRunner>(
    runner: &R,
    job: RunnablePod,
    observer: Arc<dyn Observer>,
    mut stop: watch::Receiver<StopRequest>,
) -> Result<JobStatus, R::Error> {
    let Controller::Job(mut rules) = job.controller.clone() else {
        return Err(LifecycleError::NotAJob.into());
    };
    if rules.uid.is_empty() {
        rules.uid = lifecycle::new_uid();
    }
    let job = RunnablePod {
        controller: Controller::Job(rules.clone()),
        ..job
    };
    let policy = RestartPolicy::from_spec(
        job.template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref()),
    );
    let started = Instant::now();
    let deadline = rules
        .active_deadline_seconds
        .map(|s| started + Duration::from_secs(s));
    // Container exits each running pod restarts (OnFailure): the controller counts those
    // of the pods still active.
    let mut restarts: std::collections::HashMap<String, Arc<AtomicU32>> = Default::default();
    let (restarted_tx, mut restarted) = watch::channel(0u32);
    let restarted_tx = Arc::new(restarted_tx);
    let mut stop_open = true;

    let mut status = JobStatus {
        name: rules.name.clone(),
        succeeded: 0,
        failed: 0,
        conditions: Vec::new(),
        pods: Vec::new(),
    };
    let backoff = runner.backoff();
    let mut active: JoinSet<(String, Result<PodStatus, R::Error>)> = JoinSet::new();
    let mut pod_stops: Vec<watch::Sender<StopRequest>> = Vec::new();
    let mut next_start = Instant::now();
    let mut ending: Option<(String, String)> = None;
    let mut error: Option<R::Error> = None;

    loop {
        let restarted_now: u32 = restarts.values().map(|r| r.load(Ordering::SeqCst)).sum();
        let failures = status.failed + restarted_now;
        if ending.is_none() && failures > rules.backoff_limit {
            ending = Some((
                "BackoffLimitExceeded".into(),
                "Job has reached the specified backoff limit".into(),
            ));
        }
        if ending.is_none() && status.succeeded >= rules.completions {
            break;
        }
        if ending.is_some() || *stop.borrow() != StopRequest::None {
            let request = (*stop.borrow()).max(StopRequest::Graceful);
            for s in &pod_stops {
                request.raise(s);
            }
            if active.is_empty() {
                break;
            }
        } else {
            let wanted = rules.parallelism.min(rules.completions - status.succeeded);
            while (active.len() as u32) < wanted && Instant::now() >= next_start {
                let pod = job.renamed(&random_suffix());
                let name = pod.pod.metadata.name.clone().unwrap_or_default();
                let (pod_stop, pod_stop_rx) = watch::channel(StopRequest::None);
                pod_stops.push(pod_stop);
                let counter = Arc::new(AtomicU32::new(0));
                restarts.insert(name.clone(), counter.clone());
                let watcher: Arc<dyn Observer> = Arc::new(RestartCounter {
                    inner: observer.clone(),
                    counts: policy == RestartPolicy::OnFailure,
                    restarts: counter,
                    changed: restarted_tx.clone(),
                });
                let runner = runner.clone();
                active.spawn(async move {
                    let result = runner.run_pod(pod, watcher, pod_stop_rx).await;
                    (name, result)
                });
            }
        }
        let wait_deadline = async {
            match deadline {
                Some(d) if ending.is_none() => tokio::time::sleep_until(d.into()).await,
                _ => std::future::pending().await,
            }
        };
        let wait_start = async {
            if ending.is_none() && next_start > Instant::now() {
                tokio::time::sleep_until(next_start.into()).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            joined = active.join_next(), if !active.is_empty() => {
                let Some(joined) = joined else { continue };
                let (name, result) = match joined {
                    Ok(done) => done,
                    // A pod's task panicked: the others are still stopped and awaited, so
                    // nothing of them is left behind.
                    Err(e) => (String::new(), Err(LifecycleError::Join(e.to_string()).into())),
                };
                restarts.remove(&name);
                match result {
                    Ok(pod_status) => {
                        match pod_status.phase {
                            Phase::Succeeded => status.succeeded += 1,
                            _ => {
                                status.failed += 1;
                                // The controller's back-off before the next pod.
                                let delay = backoff.base
                                    .saturating_mul(1 << status.failed.saturating_sub(1).min(16))
                                    .min(backoff.cap);
                                next_start = Instant::now() + delay;
                            }
                        }
                        status.pods.push(PodOutcome { name, status: pod_status });
                    }
                    Err(e) => {
                        // podctl itself failed: stop the others, report it.
                        error.get_or_insert(e);
                        ending.get_or_insert(("PodctlFailed".into(), String::new()));
                    }
                }
            }
            _ = wait_deadline => {
                ending = Some((
                    "DeadlineExceeded".into(),
                    "Job was active longer than specified deadline".into(),
                ));
            }
            _ = wait_start => {}
            _ = restarted.changed() => {}
            // The sender goes once the last request was sent: then it must not wake the
            // loop again (it would spin).
            changed = stop.changed(), if stop_open => stop_open = changed.is_ok(),
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    let condition = |type_: &str, reason: Option<String>, message: Option<String>| JobCondition {
        type_: type_.to_owned(),
        status: "True".into(),
        reason,
        message,
    };
    match ending {
        None if status.succeeded >= rules.completions => {
            status.conditions.push(condition("Complete", None, None));
        }
        None => status.conditions.push(condition(
            "Failed",
            Some("Stopped".into()),
            Some("The Job was stopped before it completed".into()),
        )),
        Some((reason, message)) => {
            status
                .conditions
                .push(condition("Failed", Some(reason), Some(message)));
        }
    }
    Ok(status)
}

/// Passes events on, counting the container exits an `OnFailure` pod restarts.
struct RestartCounter {
    inner: Arc<dyn Observer>,
    counts: bool,
    restarts: Arc<AtomicU32>,
    changed: Arc<watch::Sender<u32>>,
}

impl Observer for RestartCounter {
    fn event(&self, event: Event<'_>) {
        if let Event::Exited {
            exit_code, role, ..
        } = &event
        {
            if self.counts && *exit_code != 0 && *role != crate::status::Role::Sidecar {
                let n = self.restarts.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = self.changed.send(n);
            }
        }
        self.inner.event(event);
    }
}

/// The rules of a Job-made pod, `None` for other pods.
pub fn rules(pod: &RunnablePod) -> Option<&JobRules> {
    match &pod.controller {
        Controller::Job(r) => Some(r),
        _ => None,
    }
}
