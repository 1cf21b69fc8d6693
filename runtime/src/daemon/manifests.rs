//! The manifests dir (static pods), as the kubelet's `staticPodPath`: a pod file added is
//! started, a changed file replaces its pod (the old one stopped gracefully and removed
//! first), a removed file stops and removes its pod. Invalid files are reported and
//! skipped.
//!
//! Each change runs on a task of its own, so a pod stopping through its grace period
//! stalls no other, and the dir is read on meanwhile. The changes of one pod run one at a
//! time, in order ([`Schedule`]): a change that comes while one of that pod runs waits
//! behind it, replacing any change already waiting (only the newest content matters). A
//! change that fails (the old pod cannot be removed, the new one cannot be started yet,
//! its name belongs to a pod that is not from the dir) is tried again after [`RETRY`],
//! unless a newer change of that pod came meanwhile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use super::supervise::{source_of, Daemon, Source};
use crate::lifecycle::LifecycleError;
use crate::manifest::RunnablePod;
use crate::pods;
use crate::staticpods::{Change, Watcher};

/// How often the dir is read.
const POLL: Duration = Duration::from_secs(1);
/// How long a change that failed waits before it is tried again.
const RETRY: Duration = Duration::from_secs(10);
/// How long past its grace period a replaced or removed pod is waited for.
const STOP_SLACK: Duration = Duration::from_secs(10);

/// Follows `dir` for as long as the daemon runs.
pub(crate) async fn watch(daemon: Arc<Daemon>, dir: PathBuf) {
    tracing::info!(dir = %dir.display(), "following the manifests dir");
    let mut watcher = Watcher::new(dir, daemon.static_pods()).with_files(
        super::cronjobs::recorded_files(daemon.root(), daemon.namespace()),
    );
    let mut schedule = Schedule::new();
    let mut running: FuturesUnordered<BoxFuture<'static, (String, Option<Change>)>> =
        FuturesUnordered::new();
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut ready = Vec::new();
        tokio::select! {
            _ = poll.tick() => {
                for change in watcher.poll() {
                    match pod_name(&change) {
                        Some(name) => ready.extend(schedule.submit(&name, change).map(|c| (name, c))),
                        None => log_invalid(&change),
                    }
                }
                ready.extend(schedule.due(Instant::now()));
            }
            Some((name, failed)) = running.next() => {
                ready.extend(schedule.finished(&name, failed, Instant::now()).map(|c| (name, c)));
            }
        }
        for (name, change) in ready {
            let task = tokio::spawn(apply(daemon.clone(), change));
            running.push(
                async move {
                    let failed = task.await.unwrap_or_else(|e| {
                        tracing::error!(pod = %name, error = %e, "the task applying a manifest change failed");
                        None
                    });
                    (name, failed)
                }
                .boxed(),
            );
        }
    }
}

/// The pod (or `cronjob/<name>`) a change is about; `None` for an invalid file.
fn pod_name(change: &Change) -> Option<String> {
    match change {
        Change::Start { pod, .. } | Change::Replace { pod, .. } | Change::Objects { pod } => {
            Some(crate::staticpods::key(pod))
        }
        Change::Remove { name } => Some(name.clone()),
        Change::Invalid { .. } => None,
    }
}

fn log_invalid(change: &Change) {
    if let Change::Invalid { file, error } = change {
        tracing::error!(file = %file.display(), error = %error, "invalid manifest skipped");
    }
}

/// Applies one change; returns it when it failed, to be tried again.
async fn apply(daemon: Arc<Daemon>, change: Change) -> Option<Change> {
    let done = match &change {
        Change::Start { file, pod, hash } => start(&daemon, file, pod, hash).await,
        // `start` removes the pod of the earlier content first, under its name or under
        // the name it had (a workload's changed with its content).
        Change::Replace {
            file,
            pod,
            hash,
            previous,
        } => {
            let name = crate::staticpods::key(pod);
            tracing::info!(pod = %name, previous = ?previous, file = %file.display(), "manifest changed: replacing the pod");
            let removed = match previous {
                Some(old) if *old != name => remove(&daemon, old).await,
                _ => true,
            };
            removed && start(&daemon, file, pod, hash).await
        }
        Change::Remove { name } => {
            tracing::info!(pod = %name, "manifest removed: stopping and removing the pod");
            remove(&daemon, name).await
        }
        // A CronJob's Jobs to come get the new objects.
        Change::Objects { pod } if cron_job(pod) => start_cron_job(&daemon, pod, None),
        Change::Objects { pod } => update_objects(&daemon, pod).await,
        Change::Invalid { .. } => true,
    };
    (!done).then_some(change)
}

/// Brings a running static pod's configMap, secret and projected volumes up to date with
/// the dir's objects, and keeps them for its restarts; returns whether that is done (a pod
/// that is not running has nothing to update).
async fn update_objects(daemon: &Arc<Daemon>, pod: &RunnablePod) -> bool {
    let name = pod.pod.metadata.name.clone().unwrap_or_default();
    let Ok(record) = pods::get(daemon.root(), daemon.namespace(), &name) else {
        return true;
    };
    let Some(recorded) = record.pod else {
        return true;
    };
    let dir = crate::lifecycle::pod_dir(daemon.root(), daemon.namespace(), &name);
    let claims_dir = crate::claims::Store::new(daemon.root(), daemon.namespace()).dir();
    let objects = pod.objects.clone();
    let updated = tokio::task::spawn_blocking(move || {
        let live = crate::downward::LiveFields {
            node_name: crate::downward::LiveFields::host_node_name(),
            ..Default::default()
        };
        let sandbox = crate::sandbox::Sandbox::planned(crate::sandbox::SandboxConfig {
            dir: &dir,
            pod: &recorded,
            objects: &objects,
            live: &live,
            claims_dir: &claims_dir,
        })?;
        if !sandbox.is_intact() {
            return Ok(Vec::new());
        }
        let changed = sandbox.update_projected(&recorded, &objects, &live)?;
        sandbox.keep_objects_again(&objects)?;
        Ok::<_, crate::sandbox::SandboxError>(changed)
    })
    .await;
    match updated {
        Ok(Ok(changed)) => {
            if !changed.is_empty() {
                tracing::info!(pod = %name, volumes = ?changed, "ConfigMaps or Secrets changed: volumes updated");
            }
            true
        }
        Ok(Err(e)) => {
            tracing::error!(pod = %name, error = %crate::describe(&e), "cannot update the pod's volumes; trying again later");
            false
        }
        Err(e) => {
            tracing::error!(pod = %name, error = %e, "updating the pod's volumes failed");
            false
        }
    }
}

fn cron_job(pod: &RunnablePod) -> bool {
    matches!(pod.controller, crate::manifest::Controller::CronJob(_))
}

/// Starts (or restarts with its new content) a CronJob's schedule; returns whether it did.
fn start_cron_job(daemon: &Arc<Daemon>, pod: &RunnablePod, file: Option<&Path>) -> bool {
    match super::cronjobs::start(daemon, pod, file) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %crate::describe(&e), "cannot start the CronJob; trying again later");
            false
        }
    }
}

/// Starts a static pod, removing the pod of an earlier content of its file first; returns
/// whether it started. A CronJob's schedule starts instead.
async fn start(daemon: &Arc<Daemon>, file: &Path, pod: &RunnablePod, hash: &str) -> bool {
    if cron_job(pod) {
        return start_cron_job(daemon, pod, Some(file));
    }
    let name = pod.pod.metadata.name.clone().unwrap_or_default();
    if let Ok(record) = pods::get(daemon.root(), daemon.namespace(), &name) {
        // A pod of that name that did not come from this dir is not the dir's to replace.
        if !matches!(
            record.pod.as_ref().and_then(source_of),
            Some(Source::File { .. })
        ) {
            tracing::error!(pod = %name, file = %file.display(), "a pod of that name exists that is not from the manifests dir; trying again later");
            return false;
        }
        if !remove(daemon, &name).await {
            return false;
        }
    }
    let source = Source::File {
        hash: hash.to_string(),
    };
    match daemon.run(pod.clone(), source).await {
        Ok(_) => {
            tracing::info!(pod = %name, file = %file.display(), "static pod started");
            true
        }
        Err(e) => {
            tracing::error!(pod = %name, file = %file.display(), error = %crate::describe(&e), "cannot start the static pod; trying again later");
            false
        }
    }
}

/// Stops a static pod gracefully and removes it; returns whether it is gone. A CronJob
/// goes with its Jobs.
async fn remove(daemon: &Arc<Daemon>, name: &str) -> bool {
    if let Some(cron) = name.strip_prefix(crate::staticpods::CRON_JOB_KEY) {
        return super::cronjobs::remove(daemon, cron).await;
    }
    if daemon.supervises(name) {
        let grace = pods::get(daemon.root(), daemon.namespace(), name)
            .map(|r| r.grace_period())
            .unwrap_or_default();
        match daemon.stop(name, false, grace + STOP_SLACK).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(pod = %name, "did not stop within its grace period; killing");
            }
            Err(e) => tracing::warn!(pod = %name, error = %crate::describe(&e), "stopping"),
        }
    }
    match daemon.remove(name, true).await {
        Ok(()) => true,
        Err(super::SuperviseError::Lifecycle(LifecycleError::PodNotFound { .. })) => true,
        Err(e) => {
            tracing::error!(pod = %name, error = %crate::describe(&e), "cannot remove the pod; trying again later");
            false
        }
    }
}

/// The order in which the dir's changes run, per pod name; pure bookkeeping: the loop runs
/// what it hands out. A name has at most one change running and one waiting behind it,
/// and a failed change waiting to be tried again only while nothing of it runs.
/// How a change of a pod combines with an older one still to be applied.
trait Supersede: Sized {
    /// `newer` replaces `self`, keeping what of `self` it does not say.
    fn then(self, newer: Self) -> Self;
}

impl Supersede for Change {
    /// New objects for a pod still to be started go into that start: the start must not
    /// be lost to them.
    fn then(self, newer: Change) -> Change {
        match (self, newer) {
            (Change::Start { file, hash, .. }, Change::Objects { pod }) => {
                Change::Start { file, pod, hash }
            }
            (
                Change::Replace {
                    file,
                    hash,
                    previous,
                    ..
                },
                Change::Objects { pod },
            ) => Change::Replace {
                file,
                pod,
                hash,
                previous,
            },
            (_, newer) => newer,
        }
    }
}

struct Schedule<C> {
    /// Names with a change running → the change waiting behind it.
    running: HashMap<String, Option<C>>,
    /// Names whose last change failed → that change, and when it is tried again.
    retry: HashMap<String, (C, Instant)>,
}

impl<C: Supersede> Schedule<C> {
    fn new() -> Self {
        Self {
            running: HashMap::new(),
            retry: HashMap::new(),
        }
    }

    /// A new change of `name`, which supersedes a failed one: returned when it may run
    /// now; else it waits behind the running one, replacing any change waiting there.
    fn submit(&mut self, name: &str, change: C) -> Option<C> {
        let failed = self.retry.remove(name).map(|(c, _)| c);
        match self.running.get_mut(name) {
            Some(waiting) => {
                let older = waiting.take().or(failed);
                *waiting = Some(match older {
                    Some(older) => older.then(change),
                    None => change,
                });
                None
            }
            None => {
                self.running.insert(name.to_string(), None);
                Some(match failed {
                    Some(older) => older.then(change),
                    None => change,
                })
            }
        }
    }

    /// The running change of `name` ended; `failed` holds it when it is to be tried again
    /// (unless a newer one waits). Returns the change of `name` to run now, if any.
    fn finished(&mut self, name: &str, failed: Option<C>, now: Instant) -> Option<C> {
        match self.running.remove(name).flatten() {
            Some(next) => {
                let next = match failed {
                    Some(failed) => failed.then(next),
                    None => next,
                };
                self.submit(name, next)
            }
            None => {
                if let Some(change) = failed {
                    self.retry.insert(name.to_string(), (change, now + RETRY));
                }
                None
            }
        }
    }

    /// The failed changes whose time has come, to run now.
    fn due(&mut self, now: Instant) -> Vec<(String, C)> {
        let names: Vec<String> = self
            .retry
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(name, _)| name.clone())
            .collect();
        names
            .into_iter()
            .filter_map(|name| {
                let (change, _) = self.retry.remove(&name)?;
                let change = self.submit(&name, change)?;
                Some((name, change))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Supersede for i32 {
        fn then(self, newer: i32) -> i32 {
            newer
        }
    }

    #[test]
    fn a_pods_changes_run_one_at_a_time_and_the_newest_waiting_wins() {
        let now = Instant::now();
        let mut s = Schedule::new();
        assert_eq!(s.submit("a", 1), Some(1));
        // Another pod is not held up by `a`.
        assert_eq!(s.submit("b", 10), Some(10));
        assert_eq!(s.submit("a", 2), None);
        assert_eq!(s.submit("a", 3), None);
        assert_eq!(s.finished("a", None, now), Some(3));
        assert_eq!(s.finished("a", None, now), None);
        assert_eq!(s.submit("a", 4), Some(4));
        assert_eq!(s.finished("b", None, now), None);
    }

    #[test]
    fn a_failed_change_is_tried_again_unless_a_newer_one_came() {
        let now = Instant::now();
        let mut s = Schedule::new();
        assert_eq!(s.submit("a", 1), Some(1));
        assert_eq!(s.finished("a", Some(1), now), None);
        assert!(s.due(now).is_empty());
        assert_eq!(s.due(now + RETRY), vec![("a".to_string(), 1)]);
        assert!(s.due(now + RETRY * 2).is_empty(), "it runs once at a time");
        // Failing again: tried again later.
        assert_eq!(s.finished("a", Some(1), now), None);
        // A newer change supersedes the failed one.
        assert_eq!(s.submit("a", 2), Some(2));
        assert!(s.due(now + RETRY).is_empty());
        // A change failing while a newer one waits: the newer one runs, the failed one goes.
        assert_eq!(s.submit("a", 3), None);
        assert_eq!(s.finished("a", Some(2), now), Some(3));
        assert_eq!(s.finished("a", None, now), None);
        assert!(s.due(now + RETRY).is_empty());
    }
}
