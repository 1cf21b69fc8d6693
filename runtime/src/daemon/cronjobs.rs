//! The CronJobs of the manifests dir, as the CronJob controller runs them: at each time its
//! `schedule` fires (in its `timeZone`, else the host's), a Job named
//! `<cronjob>-<minutes since the epoch>` is made from `jobTemplate` and run by the daemon
//! ([`jobs::run`] over daemon-supervised pods, so `podctl ps/logs/stop` reach them).
//!
//! The controller's rules (`pkg/controller/cronjob/cronjob_controllerv2.go`):
//! - the times considered are those after the last scheduled time (or after the daemon
//!   first saw the CronJob), and no earlier than `startingDeadlineSeconds` ago; only the
//!   most recent of them starts a Job (more than 100 missed is logged, as the controller's
//!   `TooManyMissedTimes` warning);
//! - `suspend` starts nothing; once unsuspended, a missed time still in range starts;
//! - `concurrencyPolicy`: `Allow` runs Jobs side by side; `Forbid` leaves a time that fires
//!   while a Job runs pending (it starts when that Job ends, if still in range); `Replace`
//!   stops the running Jobs, then starts the new one;
//! - finished Jobs beyond `successfulJobsHistoryLimit` / `failedJobsHistoryLimit` are
//!   removed with their pods, oldest first.
//!
//! Each CronJob's record (`<root>/<namespace>/cronjobs/<name>.json`: its status with its
//! Jobs) outlives daemon restarts, so a time is never run twice. An edit of the file
//! restarts the schedule, not the Jobs running; a removed file stops and removes its Jobs
//! (a file that is there but invalid keeps them). A Job running when the daemon stops
//! cannot be continued by the next daemon: its pods are adopted and run to their end, the
//! Job counts as running until then, and is recorded as `DaemonRestarted` (complete if its
//! pods completed it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::{Timestamp, Zoned};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::supervise::{Daemon, Quiet, Source, SuperviseError};
use crate::cron::Schedule;
use crate::jobs::{self, JobStatus, PodRunner};
use crate::lifecycle::{BackoffPolicy, Observer, StopRequest};
use crate::manifest::{Concurrency, Controller, CronRules, RunnablePod};
use crate::pods;
use crate::status::{Phase, PodStatus};

/// The longest the scheduler sleeps before looking at the clock again (it may be set).
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Missed times beyond which the controller warns.
const MANY_MISSED: usize = 100;
/// How long a removed CronJob's Jobs are waited for once asked to stop.
const STOP_WAIT: Duration = Duration::from_secs(60);
/// How often the pods of a Job a previous daemon ran are looked at.
const ORPHAN_POLL: Duration = Duration::from_secs(1);
/// How long such a pod may stay neither adopted nor ended (its adoption being retried)
/// before it counts as failed.
const ORPHAN_ADOPTION_WAIT: Duration = Duration::from_secs(60);

/// A CronJob's record, in the shape of its `status` plus its Jobs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The file that defines it: the manifests dir keeps the CronJob while that file is
    /// there but invalid, as it keeps a broken file's pod.
    pub file: Option<PathBuf>,
    /// When this daemon first ran the CronJob: no time before it fires (the controller
    /// uses the object's creation time).
    pub created: Option<Timestamp>,
    pub last_schedule_time: Option<Timestamp>,
    pub last_successful_time: Option<Timestamp>,
    /// Its Jobs, oldest first.
    pub jobs: Vec<JobRecord>,
}

/// One Job a CronJob made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    pub name: String,
    /// The uid in its pods' `controller-uid` label.
    pub uid: String,
    pub scheduled_time: Timestamp,
    pub start_time: Timestamp,
    pub completion_time: Option<Timestamp>,
    pub state: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub succeeded: u32,
    pub failed: u32,
    /// The successful pods it needs.
    pub completions: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    Active,
    Complete,
    Failed,
}

/// The path of CronJob `name`'s record.
pub fn record_path(root: &Path, namespace: &str, name: &str) -> PathBuf {
    root.join(namespace)
        .join("cronjobs")
        .join(format!("{name}.json"))
}

/// The CronJobs recorded in `namespace`, by name.
pub fn recorded(root: &Path, namespace: &str) -> Vec<String> {
    let dir = root.join(namespace).join("cronjobs");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// The file each recorded CronJob came from, by its manifests-dir key (`cronjob/<name>`).
pub fn recorded_files(root: &Path, namespace: &str) -> std::collections::BTreeMap<String, PathBuf> {
    recorded(root, namespace)
        .into_iter()
        .filter_map(|name| {
            let file = read_record(root, namespace, &name)?.file?;
            Some((format!("{}{name}", crate::staticpods::CRON_JOB_KEY), file))
        })
        .collect()
}

/// Reads CronJob `name`'s record; `None` when it has none (or it cannot be read).
pub fn read_record(root: &Path, namespace: &str, name: &str) -> Option<Record> {
    let path = record_path(root, namespace, name);
    let text = std::fs::read(&path).ok()?;
    serde_json::from_slice(&text)
        .map_err(
            |e| tracing::warn!(file = %path.display(), error = %e, "unreadable CronJob record"),
        )
        .ok()
}

/// What the schedule says at `now`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Due {
    /// The most recent time in range that has not started a Job.
    pub time: Option<Zoned>,
    /// More than [`MANY_MISSED`] times were missed.
    pub many_missed: bool,
    /// The next time after `now`.
    pub next: Option<Zoned>,
}

/// The times of `schedule` after `last` (the last scheduled time, or when the CronJob was
/// first seen), no earlier than `deadline` seconds before `now`, up to `now`.
pub(crate) fn due(schedule: &Schedule, last: &Zoned, now: &Zoned, deadline: Option<u64>) -> Due {
    let mut earliest = last.clone();
    if let Some(d) = deadline {
        let bound = now.saturating_sub(jiff::SignedDuration::from_secs(
            i64::try_from(d).unwrap_or(i64::MAX),
        ));
        if bound > earliest {
            earliest = bound;
        }
    }
    let next = schedule.next_after(now);
    // Count up to the warning's bound from the start; past it, find the most recent time
    // in windows back from `now` rather than walking every missed time.
    let mut time = None;
    let mut count = 0;
    let mut t = schedule.next_after(&earliest);
    while let Some(at) = t.filter(|at| at <= now) {
        count += 1;
        if count > MANY_MISSED {
            break;
        }
        t = schedule.next_after(&at);
        time = Some(at);
    }
    let many_missed = count > MANY_MISSED;
    if many_missed {
        time = None;
        for hours in [1, 24, 24 * 31, 24 * 366, 24 * 366 * 5] {
            let from = now.saturating_sub(jiff::SignedDuration::from_hours(hours));
            let from = if from > earliest {
                from
            } else {
                earliest.clone()
            };
            let mut t = schedule.next_after(&from);
            while let Some(at) = t.filter(|at| at <= now) {
                t = schedule.next_after(&at);
                time = Some(at);
            }
            if time.is_some() {
                break;
            }
        }
    }
    Due {
        time,
        many_missed,
        next,
    }
}

/// The daemon's CronJobs, by name; each kept across edits of its file.
#[derive(Default)]
pub(crate) struct CronJobs {
    jobs: Mutex<HashMap<String, Arc<CronState>>>,
}

/// One CronJob: its record, its running Jobs and its scheduler.
struct CronState {
    name: String,
    path: PathBuf,
    record: Mutex<Record>,
    /// Which scheduler may start Jobs: each start of the schedule takes the next number,
    /// a removal sets 0. Checked under the record's lock, so an aborted scheduler still
    /// running its last steps starts nothing.
    generation: AtomicU64,
    /// The history limits (successful, failed) of the CronJob as last read.
    limits: Mutex<(u32, u32)>,
    /// The Jobs running, each with its stop request.
    active: Mutex<HashMap<String, watch::Sender<StopRequest>>>,
    /// Counts Jobs ended: the scheduler wakes on it.
    ended: watch::Sender<u64>,
    scheduler: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CronJobs {
    /// Whether `state` is still its CronJob's (not removed).
    fn is_current(&self, state: &Arc<CronState>) -> bool {
        lock(&self.jobs)
            .get(&state.name)
            .is_some_and(|s| Arc::ptr_eq(s, state))
    }

    /// CronJob `name`'s state, read from its record the first time; the Jobs a previous
    /// daemon left running are followed until their pods end.
    fn state(&self, daemon: &Arc<Daemon>, name: &str) -> Arc<CronState> {
        let mut jobs = lock(&self.jobs);
        if let Some(state) = jobs.get(name) {
            return state.clone();
        }
        let record = read_record(daemon.root(), daemon.namespace(), name).unwrap_or_default();
        let orphans: Vec<JobRecord> = record
            .jobs
            .iter()
            .filter(|j| j.state == JobState::Active)
            .cloned()
            .collect();
        let state = Arc::new(CronState {
            name: name.to_owned(),
            path: record_path(daemon.root(), daemon.namespace(), name),
            record: Mutex::new(record),
            generation: AtomicU64::new(0),
            limits: Mutex::new((3, 1)),
            active: Mutex::new(HashMap::new()),
            ended: watch::channel(0).0,
            scheduler: Mutex::new(None),
        });
        for job in orphans {
            let (stop, stop_rx) = watch::channel(StopRequest::None);
            lock(&state.active).insert(job.name.clone(), stop);
            tokio::spawn(follow_orphan(daemon.clone(), state.clone(), job, stop_rx));
        }
        jobs.insert(name.to_owned(), state.clone());
        state
    }
}

/// Starts (or restarts, after an edit) the schedule of CronJob `cron`, defined in `file`
/// (`None`: as recorded); its running Jobs go on.
pub(crate) fn start(
    daemon: &Arc<Daemon>,
    cron: &RunnablePod,
    file: Option<&Path>,
) -> Result<(), SuperviseError> {
    let Controller::CronJob(rules) = &cron.controller else {
        return Ok(());
    };
    let tz = crate::cron::time_zone(rules.time_zone.as_deref())
        .map_err(|e| SuperviseError::CronJob(rules.name.clone(), e.to_string()))?;
    let state = daemon.cron_jobs().state(daemon, &rules.name);
    let generation = {
        let mut record = lock(&state.record);
        record.created.get_or_insert_with(Timestamp::now);
        if let Some(file) = file {
            record.file = Some(file.to_owned());
        }
        state.save(&record)?;
        *lock(&state.limits) = (
            rules.successful_jobs_history_limit,
            rules.failed_jobs_history_limit,
        );
        state.generation.fetch_add(1, Ordering::SeqCst) + 1
    };
    let scheduler = tokio::spawn(schedule(
        daemon.clone(),
        state.clone(),
        rules.clone(),
        cron.clone(),
        tz,
        generation,
    ));
    if let Some(old) = lock(&state.scheduler).replace(scheduler) {
        old.abort();
    }
    tracing::info!(cronjob = %rules.name, schedule = %rules.schedule_text, time_zone = ?rules.time_zone, suspend = rules.suspend, "following the CronJob's schedule");
    Ok(())
}

/// Stops CronJob `name`: its schedule, then its Jobs; removes them with their pods and its
/// record. Returns whether all of it is gone.
pub(crate) async fn remove(daemon: &Arc<Daemon>, name: &str) -> bool {
    let state = daemon.cron_jobs().state(daemon, name);
    let scheduler = lock(&state.scheduler).take();
    if let Some(scheduler) = scheduler {
        scheduler.abort();
        let _ = scheduler.await;
    }
    {
        let _record = lock(&state.record);
        state.generation.store(0, Ordering::SeqCst);
    }
    state.stop_active(StopRequest::Graceful);
    if !state.wait_idle(STOP_WAIT).await {
        tracing::error!(cronjob = %name, "its Jobs did not stop in time; trying again later");
        return false;
    }
    // Every Job's pods, recorded or not (a record written before they started).
    if !remove_job_pods(daemon, &state.name, None, true).await {
        return false;
    }
    if let Err(e) = std::fs::remove_file(&state.path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::error!(cronjob = %name, error = %e, "cannot remove the CronJob's record");
            return false;
        }
    }
    lock(&daemon.cron_jobs().jobs).remove(name);
    tracing::info!(cronjob = %name, "CronJob removed with its Jobs");
    true
}

impl CronState {
    fn save(&self, record: &Record) -> Result<(), SuperviseError> {
        let write = || {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            pods::write_json(&self.path, record)
        };
        write().map_err(|e| SuperviseError::CronJob(self.name.clone(), e.to_string()))
    }

    fn stop_active(&self, request: StopRequest) {
        for stop in lock(&self.active).values() {
            request.raise(stop);
        }
    }

    /// Waits at most `wait` for no Job to be running; returns whether none is.
    async fn wait_idle(&self, wait: Duration) -> bool {
        let mut ended = self.ended.subscribe();
        tokio::time::timeout(wait, async {
            while !lock(&self.active).is_empty() {
                if ended.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
        .is_ok()
    }
}

/// The scheduler of one CronJob: sleeps until a time fires (or a Job ends), then acts on it.
async fn schedule(
    daemon: Arc<Daemon>,
    state: Arc<CronState>,
    rules: CronRules,
    cron: RunnablePod,
    tz: jiff::tz::TimeZone,
    generation: u64,
) {
    let mut ended = state.ended.subscribe();
    loop {
        let now = Timestamp::now().to_zoned(tz.clone());
        let (last, created) = {
            let record = lock(&state.record);
            (record.last_schedule_time, record.created)
        };
        let last = last
            .or(created)
            .unwrap_or_else(|| now.timestamp())
            .to_zoned(tz.clone());
        let due = due(
            &rules.schedule,
            &last,
            &now,
            rules.starting_deadline_seconds,
        );
        if let Some(time) = due.time.filter(|_| !rules.suspend) {
            if due.many_missed {
                tracing::warn!(cronjob = %rules.name, "too many missed start times (> {MANY_MISSED}): check the clock, or set startingDeadlineSeconds");
            }
            let active = lock(&state.active).len();
            let start = match rules.concurrency {
                Concurrency::Forbid if active > 0 => {
                    tracing::info!(cronjob = %rules.name, time = %time, "a Job is still running (concurrencyPolicy Forbid): the time waits for it");
                    false
                }
                Concurrency::Replace if active > 0 => {
                    tracing::info!(cronjob = %rules.name, time = %time, "replacing the running Jobs (concurrencyPolicy Replace)");
                    state.stop_active(StopRequest::Graceful);
                    // Then the times are looked at again: a newer one may be due by then.
                    state.wait_idle(MAX_SLEEP).await;
                    continue;
                }
                _ => true,
            };
            if start {
                match start_job(&daemon, &state, &rules, &cron, &time, generation) {
                    Started::Yes => continue,
                    // An edit or a removal took over: this scheduler is done.
                    Started::Superseded => return,
                    // Tried again after the sleep.
                    Started::Failed => {}
                }
            }
        }
        let sleep = due
            .next
            .map(|next| {
                next.timestamp()
                    .duration_since(now.timestamp())
                    .unsigned_abs()
            })
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = ended.changed() => {}
        }
    }
}

/// What came of a time that fired.
enum Started {
    Yes,
    /// A newer schedule (an edit) or a removal took over.
    Superseded,
    /// The record could not be written: the time is tried again later.
    Failed,
}

/// Makes the Job of `time` and runs it on a task of its own (it outlives an edit of the
/// CronJob); records it first, so that the time never starts twice.
fn start_job(
    daemon: &Arc<Daemon>,
    state: &Arc<CronState>,
    rules: &CronRules,
    cron: &RunnablePod,
    time: &Zoned,
    generation: u64,
) -> Started {
    let mut job_rules = rules.job(time.timestamp());
    job_rules.uid = crate::lifecycle::new_uid();
    let name = job_rules.name.clone();
    let stop_rx = {
        let mut record = lock(&state.record);
        if state.generation.load(Ordering::SeqCst) != generation {
            return Started::Superseded;
        }
        let last = record.last_schedule_time;
        record.last_schedule_time = Some(time.timestamp());
        record.jobs.push(JobRecord {
            name: name.clone(),
            uid: job_rules.uid.clone(),
            scheduled_time: time.timestamp(),
            start_time: Timestamp::now(),
            completion_time: None,
            state: JobState::Active,
            reason: None,
            succeeded: 0,
            failed: 0,
            completions: job_rules.completions,
        });
        if let Err(e) = state.save(&record) {
            tracing::error!(cronjob = %rules.name, error = %crate::describe(&e), "cannot record the Job; not starting it");
            record.jobs.pop();
            record.last_schedule_time = last;
            return Started::Failed;
        }
        // Under the record's lock: a removal either sees this Job running or stops it
        // from starting (the generation).
        let (stop, stop_rx) = watch::channel(StopRequest::None);
        lock(&state.active).insert(name.clone(), stop);
        stop_rx
    };
    tracing::info!(cronjob = %rules.name, job = %name, time = %time, "schedule fired: Job started");
    let job = RunnablePod {
        controller: Controller::Job(job_rules),
        ..cron.clone()
    };
    let (daemon, state) = (daemon.clone(), state.clone());
    tokio::spawn(async move {
        let runner = Runner(daemon.clone());
        // On a task of its own, so that a panic still ends the Job (as failed).
        let run =
            tokio::spawn(async move { jobs::run(&runner, job, Arc::new(Quiet), stop_rx).await });
        let outcome = match run.await {
            Ok(Ok(status)) => Outcome::of(&status),
            Ok(Err(e)) => Outcome::failed(format!("PodctlFailed: {}", crate::describe(&e))),
            Err(e) => Outcome::failed(format!("PodctlFailed: {e}")),
        };
        finish_job(&daemon, &state, &name, outcome).await;
    });
    Started::Yes
}

/// How a Job ended, as its record keeps it.
struct Outcome {
    state: JobState,
    reason: Option<String>,
    succeeded: u32,
    failed: u32,
}

impl Outcome {
    fn of(status: &JobStatus) -> Outcome {
        Outcome {
            state: if status.complete() {
                JobState::Complete
            } else {
                JobState::Failed
            },
            reason: status.conditions.iter().find_map(|c| c.reason.clone()),
            succeeded: status.succeeded,
            failed: status.failed,
        }
    }

    fn failed(reason: String) -> Outcome {
        Outcome {
            state: JobState::Failed,
            reason: Some(reason),
            succeeded: 0,
            failed: 0,
        }
    }
}

/// Follows a Job a previous daemon started: it counts as running until its pods (adopted
/// by this daemon) ended; a stop request reaches them. A pod neither adopted nor ended
/// within [`ORPHAN_ADOPTION_WAIT`] counts as failed.
async fn follow_orphan(
    daemon: Arc<Daemon>,
    state: Arc<CronState>,
    job: JobRecord,
    mut stop: watch::Receiver<StopRequest>,
) {
    tracing::info!(cronjob = %state.name, job = %job.name, "following the pods of a Job the previous daemon ran");
    let names: Vec<String> = pods::list(daemon.root(), daemon.namespace())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| uid_of(r) == Some(job.uid.as_str()))
        .map(|r| r.name)
        .collect();
    let since = std::time::Instant::now();
    let mut sent = StopRequest::None;
    let mut stop_open = true;
    let outcome = loop {
        let mut running = Vec::new();
        let mut ended = Vec::new();
        for name in &names {
            // A pod removed meanwhile counts for nothing.
            let Ok(record) = pods::get(daemon.root(), daemon.namespace(), name) else {
                continue;
            };
            match record.status.map(|s| s.phase) {
                Some(phase) if phase.is_terminal() => ended.push(phase),
                _ if daemon.supervises(name) || since.elapsed() < ORPHAN_ADOPTION_WAIT => {
                    running.push(name)
                }
                _ => ended.push(Phase::Failed),
            }
        }
        if running.is_empty() {
            let count = |want: Phase| ended.iter().filter(|p| **p == want).count() as u32;
            let succeeded = count(Phase::Succeeded);
            break Outcome {
                state: if succeeded >= job.completions {
                    JobState::Complete
                } else {
                    JobState::Failed
                },
                reason: Some("DaemonRestarted".into()),
                succeeded,
                failed: count(Phase::Failed),
            };
        }
        let request = *stop.borrow();
        if request > sent {
            for pod in running {
                let _ = daemon
                    .stop(pod, request == StopRequest::Now, Duration::ZERO)
                    .await;
            }
            sent = request;
        }
        tokio::select! {
            _ = tokio::time::sleep(ORPHAN_POLL) => {}
            changed = stop.changed(), if stop_open => stop_open = changed.is_ok(),
        }
    };
    finish_job(&daemon, &state, &job.name, outcome).await;
}

/// Records how Job `name` ended, then removes the Jobs beyond the history limits (a Job
/// whose pods cannot be removed now stays in the record, to be removed next time).
async fn finish_job(daemon: &Arc<Daemon>, state: &Arc<CronState>, name: &str, outcome: Outcome) {
    let (successful_limit, failed_limit) = *lock(&state.limits);
    let trimmed = {
        let mut record = lock(&state.record);
        let now = Timestamp::now();
        if let Some(job) = record.jobs.iter_mut().find(|j| j.name == name) {
            job.completion_time = Some(now);
            job.state = outcome.state;
            job.reason = outcome.reason;
            job.succeeded = outcome.succeeded;
            job.failed = outcome.failed;
            tracing::info!(cronjob = %state.name, job = %name, state = ?job.state, reason = ?job.reason, "Job ended");
            if job.state == JobState::Complete {
                record.last_successful_time = Some(now);
            }
        }
        let trimmed = beyond_history(&mut record.jobs, successful_limit, failed_limit);
        if let Err(e) = state.save(&record) {
            tracing::error!(cronjob = %state.name, error = %crate::describe(&e), "cannot record the Job's end");
        }
        trimmed
    };
    lock(&state.active).remove(name);
    state.ended.send_modify(|n| *n += 1);
    let mut kept = Vec::new();
    for job in trimmed {
        if remove_job_pods(daemon, &state.name, Some(&job), false).await {
            tracing::info!(cronjob = %state.name, job = %job.name, "Job beyond the history limit removed");
        } else {
            kept.push(job);
        }
    }
    // A CronJob removed meanwhile has no record to write back.
    if !kept.is_empty() && daemon.cron_jobs().is_current(state) {
        let mut record = lock(&state.record);
        kept.append(&mut record.jobs);
        record.jobs = kept;
        let _ = state.save(&record);
    }
}

/// Takes out of `jobs` the finished ones beyond the limits, oldest first.
fn beyond_history(jobs: &mut Vec<JobRecord>, successful: u32, failed: u32) -> Vec<JobRecord> {
    let mut kept = (0u32, 0u32);
    let mut out = Vec::new();
    // Newest first, so the ones kept are the most recent.
    for i in (0..jobs.len()).rev() {
        let (count, limit) = match jobs[i].state {
            JobState::Active => continue,
            JobState::Complete => (&mut kept.0, successful),
            JobState::Failed => (&mut kept.1, failed),
        };
        if *count < limit {
            *count += 1;
        } else {
            out.push(jobs.remove(i));
        }
    }
    out.reverse();
    out
}

/// The `controller-uid` label of a pod record.
fn uid_of(record: &pods::PodRecord) -> Option<&str> {
    record
        .pod
        .as_ref()
        .and_then(|p| p.metadata.labels.as_ref())
        .and_then(|l| l.get("controller-uid"))
        .map(String::as_str)
}

/// Whether a pod record is of a Job CronJob `cron` made: its `job-name` label is
/// `<cron>-<digits>`.
fn made_by(record: &pods::PodRecord, cron: &str) -> bool {
    record
        .pod
        .as_ref()
        .and_then(|p| p.metadata.labels.as_ref())
        .and_then(|l| l.get("job-name"))
        .and_then(|j| j.strip_prefix(cron)?.strip_prefix('-'))
        .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the pods of `job` (labelled with its uid), or with `None` every pod of a Job of
/// CronJob `cron`; returns whether all are gone.
async fn remove_job_pods(
    daemon: &Arc<Daemon>,
    cron: &str,
    job: Option<&JobRecord>,
    force: bool,
) -> bool {
    let Ok(pods) = pods::list(daemon.root(), daemon.namespace()) else {
        return false;
    };
    let mut gone = true;
    for record in pods {
        let ours = match job {
            Some(job) => uid_of(&record) == Some(job.uid.as_str()),
            None => made_by(&record, cron),
        };
        if !ours {
            continue;
        }
        if let Err(e) = daemon.remove(&record.name, force).await {
            tracing::warn!(pod = %record.name, cronjob = %cron, error = %crate::describe(&e), "cannot remove the Job's pod");
            gone = false;
        }
    }
    gone
}

/// Runs a Job's pods as the daemon's own: admitted, supervised, reached by `podctl stop`.
#[derive(Clone)]
struct Runner(Arc<Daemon>);

impl PodRunner for Runner {
    type Error = SuperviseError;

    fn run_pod(
        &self,
        pod: RunnablePod,
        observer: Arc<dyn Observer>,
        mut stop: watch::Receiver<StopRequest>,
    ) -> impl std::future::Future<Output = Result<PodStatus, SuperviseError>> + Send {
        let daemon = self.0.clone();
        async move {
            let (name, mut ended) = daemon.run_observed(pod, Source::Api, observer).await?;
            let mut stop_open = true;
            loop {
                tokio::select! {
                    // Mapped: the guard it returns must not live across the other arm's await.
                    _ = async { ended.wait_for(|e| *e).await.map(|_| ()) } => break,
                    changed = stop.changed(), if stop_open => {
                        stop_open = changed.is_ok();
                        let request = *stop.borrow();
                        if request != StopRequest::None {
                            let now = request == StopRequest::Now;
                            // An error means the pod has ended meanwhile: `ended` says so.
                            let _ = daemon.stop(&name, now, Duration::ZERO).await;
                        }
                    }
                }
            }
            pods::get(daemon.root(), daemon.namespace(), &name)?
                .status
                .ok_or(SuperviseError::NoStatus { pod: name })
        }
    }

    fn backoff(&self) -> BackoffPolicy {
        self.0.backoff()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Zoned {
        format!("{text}[UTC]").parse().unwrap()
    }

    fn every_minute() -> Schedule {
        Schedule::parse("* * * * *").unwrap()
    }

    #[test]
    fn the_most_recent_time_after_the_last_one_is_due() {
        let s = every_minute();
        let d = due(
            &s,
            &at("2026-01-01T10:00:00"),
            &at("2026-01-01T10:03:30"),
            None,
        );
        assert_eq!(d.time, Some(at("2026-01-01T10:03:00")));
        assert!(!d.many_missed);
        assert_eq!(d.next, Some(at("2026-01-01T10:04:00")));
        // The last time itself is not due again.
        let d = due(
            &s,
            &at("2026-01-01T10:03:00"),
            &at("2026-01-01T10:03:30"),
            None,
        );
        assert_eq!(d.time, None);
    }

    #[test]
    fn the_starting_deadline_drops_times_too_old() {
        let s = Schedule::parse("0 * * * *").unwrap();
        let last = at("2026-01-01T08:00:00");
        let now = at("2026-01-01T10:00:50");
        assert_eq!(
            due(&s, &last, &now, Some(60)).time,
            Some(at("2026-01-01T10:00:00"))
        );
        assert_eq!(due(&s, &last, &now, Some(30)).time, None);
        // Without a deadline, a missed time starts however late.
        let now = at("2026-01-01T10:59:00");
        assert_eq!(
            due(&s, &last, &now, None).time,
            Some(at("2026-01-01T10:00:00"))
        );
    }

    #[test]
    fn many_missed_times_still_find_the_most_recent() {
        let s = every_minute();
        let d = due(
            &s,
            &at("2025-01-01T00:00:00"),
            &at("2026-01-01T10:03:30"),
            None,
        );
        assert!(d.many_missed);
        assert_eq!(d.time, Some(at("2026-01-01T10:03:00")));
        let yearly = Schedule::parse("@yearly").unwrap();
        let d = due(
            &yearly,
            &at("2024-06-01T00:00:00"),
            &at("2026-03-01T00:00:00"),
            None,
        );
        assert!(!d.many_missed);
        assert_eq!(d.time, Some(at("2026-01-01T00:00:00")));
    }

    fn job(name: &str, state: JobState) -> JobRecord {
        JobRecord {
            name: name.into(),
            uid: String::new(),
            scheduled_time: Timestamp::UNIX_EPOCH,
            start_time: Timestamp::UNIX_EPOCH,
            completion_time: None,
            state,
            reason: None,
            succeeded: 0,
            failed: 0,
            completions: 1,
        }
    }

    #[test]
    fn history_keeps_the_newest_finished_jobs_of_each_kind() {
        use JobState::*;
        let mut jobs = vec![
            job("a", Complete),
            job("b", Failed),
            job("c", Complete),
            job("d", Failed),
            job("e", Active),
            job("f", Complete),
        ];
        let out = beyond_history(&mut jobs, 2, 1);
        let names = |v: &[JobRecord]| v.iter().map(|j| j.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&out), ["a", "b"]);
        assert_eq!(names(&jobs), ["c", "d", "e", "f"]);
        let out = beyond_history(&mut jobs, 0, 0);
        assert_eq!(names(&out), ["c", "d", "f"]);
        assert_eq!(names(&jobs), ["e"]);
    }

    #[test]
    fn a_pod_belongs_to_a_cron_jobs_job_by_its_job_name() {
        let record = |job: &str| pods::PodRecord {
            name: "p".into(),
            dir: PathBuf::new(),
            pod: Some(
                serde_json::from_value(
                    serde_json::json!({"metadata": {"labels": {"job-name": job}}}),
                )
                .unwrap(),
            ),
            status: None,
            supervisor: None,
        };
        assert!(made_by(&record("tick-29412345"), "tick"));
        // Another CronJob's (`tick-5`), a bare Job's, a prefix only.
        assert!(!made_by(&record("tick-5-29412345"), "tick"));
        assert!(!made_by(&record("ticker-29412345"), "tick"));
        assert!(!made_by(&record("tick-"), "tick"));
        assert!(!made_by(&record("tick-migrate"), "tick"));
    }
}
