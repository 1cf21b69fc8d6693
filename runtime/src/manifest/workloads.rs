//! Workload kinds run as their pod template on this host: Deployment, ReplicaSet,
//! StatefulSet, DaemonSet (one replica, named and labelled as their controller names and
//! labels its pods) and Job (its pods run one after another or side by side, per
//! `completions`, `parallelism`, `backoffLimit` and `activeDeadlineSeconds`), and CronJob
//! (a Job from its template at each time its schedule fires, in the daemon).
//!
//! The template is validated as the pod it becomes, its errors reported at the template's
//! own paths (`spec.template.spec.containers[0].image`), as the API server reports them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::error::{FieldError, ManifestError};
use super::validate::Errors;

const NOT_SUPPORTED: &str = "Forbidden: not supported by podctl yet";

/// The letters Kubernetes draws generated name suffixes and hashes from
/// (`utilrand.String`, `rand.SafeEncodeString`): no vowels, no look-alikes.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// What made the pod, and how its pods are named and run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Controller {
    /// A bare Pod: run as given.
    None,
    /// A Deployment's pods are its ReplicaSet's: `<name>-<pod-template-hash>-<suffix>`.
    Deployment {
        name: String,
        template_hash: String,
        replicas: u32,
    },
    ReplicaSet {
        name: String,
        replicas: u32,
    },
    /// `<name>-<ordinal>`, with the ordinal's hostname under the governing service.
    StatefulSet {
        name: String,
        ordinal: i32,
        revision_hash: String,
    },
    DaemonSet {
        name: String,
        revision_hash: String,
    },
    Job(JobRules),
    CronJob(CronRules),
}

/// What a CronJob asks: when to make a Job ([`CronRules::job`]) and what to keep of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronRules {
    pub name: String,
    pub schedule: crate::cron::Schedule,
    /// `spec.schedule` as written, for messages.
    pub schedule_text: String,
    /// `None`: the host's local zone.
    pub time_zone: Option<String>,
    pub concurrency: Concurrency,
    /// How late a missed time may still start its Job.
    pub starting_deadline_seconds: Option<u64>,
    /// Finished Jobs kept (defaults 3 and 1); older ones go with their pods.
    pub successful_jobs_history_limit: u32,
    pub failed_jobs_history_limit: u32,
    pub suspend: bool,
    /// The rules of each Job it makes, but for its name.
    pub job: JobRules,
}

/// `spec.concurrencyPolicy`: what a time that fires while a Job of the CronJob runs does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Start another Job beside it.
    Allow,
    /// Hold the time until the running Jobs ended.
    Forbid,
    /// Stop the running Jobs, then start the new one.
    Replace,
}

impl CronRules {
    /// The Job made for the time `scheduled`: named `<cronjob>-<minutes since the epoch>`,
    /// as the CronJob controller names it (so one time never makes two Jobs).
    pub fn job(&self, scheduled: jiff::Timestamp) -> JobRules {
        JobRules {
            name: format!("{}-{}", self.name, scheduled.as_second().div_euclid(60)),
            ..self.job.clone()
        }
    }

    /// The next time the schedule fires, from now, in its zone.
    pub fn next_time(&self) -> Option<jiff::Zoned> {
        let tz = crate::cron::time_zone(self.time_zone.as_deref()).ok()?;
        self.schedule
            .next_after(&jiff::Timestamp::now().to_zoned(tz))
    }
}

/// What a Job asks of its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRules {
    pub name: String,
    /// Failed pods (or, under `OnFailure`, container restarts) tolerated before the Job
    /// fails (default 6).
    pub backoff_limit: u32,
    /// Successful pods the Job needs (default 1).
    pub completions: u32,
    /// Pods run at once (default 1), never more than still needed.
    pub parallelism: u32,
    /// Seconds from the Job's start after which it fails (`DeadlineExceeded`).
    pub active_deadline_seconds: Option<u64>,
    /// The Job's own uid, in its pods' `controller-uid` labels.
    pub uid: String,
}

impl Controller {
    /// The controller's kind and name; `None` for a bare Pod.
    pub fn owner(&self) -> Option<(&'static str, &str)> {
        Some(match self {
            Controller::None => return None,
            Controller::Deployment { name, .. } => ("Deployment", name),
            Controller::ReplicaSet { name, .. } => ("ReplicaSet", name),
            Controller::StatefulSet { name, .. } => ("StatefulSet", name),
            Controller::DaemonSet { name, .. } => ("DaemonSet", name),
            Controller::Job(j) => ("Job", &j.name),
            Controller::CronJob(c) => ("CronJob", &c.name),
        })
    }

    /// How many pods it runs at once: `replicas` of a Deployment or ReplicaSet, else 1.
    pub fn replicas(&self) -> u32 {
        match self {
            Controller::Deployment { replicas, .. } | Controller::ReplicaSet { replicas, .. } => {
                *replicas
            }
            _ => 1,
        }
    }

    /// The kind and name of the controller, for messages (`Deployment "web"`).
    pub fn describe(&self) -> Option<String> {
        self.owner().map(|(kind, name)| format!("{kind} {name:?}"))
    }

    /// The pod this controller makes from `template`: its name (with `suffix` where the
    /// controller generates one) and the labels it adds.
    pub fn pod(&self, template: &Pod, suffix: &str) -> Pod {
        let mut pod = template.clone();
        let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
        let mut label = |k: &str, v: &str| {
            labels.insert(k.to_owned(), v.to_owned());
        };
        let name = match self {
            Controller::None => return pod,
            // Named as the pod of a Job it makes: a time's minutes have 8 digits until 2160.
            Controller::CronJob(c) => {
                let job = c.job(jiff::Timestamp::from_second(99_999_999 * 60).unwrap_or_default());
                return Controller::Job(job).pod(template, suffix);
            }
            Controller::Deployment {
                name,
                template_hash,
                ..
            } => {
                label("pod-template-hash", template_hash);
                generate(&format!("{name}-{template_hash}-"), suffix)
            }
            Controller::ReplicaSet { name, .. } => generate(&format!("{name}-"), suffix),
            Controller::StatefulSet {
                name,
                ordinal,
                revision_hash,
            } => {
                let pod_name = format!("{name}-{ordinal}");
                label(
                    "controller-revision-hash",
                    &format!("{name}-{revision_hash}"),
                );
                label("statefulset.kubernetes.io/pod-name", &pod_name);
                label("apps.kubernetes.io/pod-index", &ordinal.to_string());
                pod_name
            }
            Controller::DaemonSet {
                name,
                revision_hash,
            } => {
                label("controller-revision-hash", revision_hash);
                label("pod-template-generation", "1");
                generate(&format!("{name}-"), suffix)
            }
            Controller::Job(job) => {
                for key in ["batch.kubernetes.io/controller-uid", "controller-uid"] {
                    label(key, &job.uid);
                }
                for key in ["batch.kubernetes.io/job-name", "job-name"] {
                    label(key, &job.name);
                }
                generate(&format!("{}-", job.name), suffix)
            }
        };
        if let Controller::StatefulSet { .. } = self {
            // Each ordinal has a stable hostname (and, with `serviceName`, a subdomain set
            // when the template was read).
            if let Some(spec) = pod.spec.as_mut() {
                spec.hostname = Some(name.clone());
            }
        }
        pod.metadata.name = Some(name);
        pod
    }
}

/// `generateName`: the base cut to leave room for the 5-letter suffix in 63 characters.
fn generate(base: &str, suffix: &str) -> String {
    let base: String = base.chars().take(63 - suffix.len()).collect();
    format!("{base}{suffix}")
}

/// A random generated-name suffix, as the API server draws one.
pub fn random_suffix() -> String {
    (0..5)
        .map(|_| char::from(ALPHABET[rand::random::<u32>() as usize % ALPHABET.len()]))
        .collect()
}

/// A suffix derived from `seed` (the daemon names a file's pod the same at every poll).
pub fn seeded_suffix(seed: &str) -> String {
    let mut h = fnv32a(seed.as_bytes());
    (0..5)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u32) as usize];
            h /= ALPHABET.len() as u32;
            char::from(c)
        })
        .collect()
}

/// The controllers' template hash: FNV-32a of the template, its decimal form encoded with
/// [`ALPHABET`] (`rand.SafeEncodeString`). Kubernetes hashes the Go object's dump, so the
/// value differs from a cluster's; the form is the same.
fn template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    fnv32a(&json)
        .to_string()
        .bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// A workload read from a document: its template as a Pod (named by the controller with
/// a placeholder suffix until [`Controller::pod`] names it) and its controller.
pub(super) struct Read {
    pub template: Pod,
    pub controller: Controller,
    /// Claims the controller makes for its pod (a StatefulSet's `volumeClaimTemplates`).
    pub claims: Vec<PersistentVolumeClaim>,
}

/// The template as a pod and its own validation, errors at the template's paths.
fn template_pod(
    v: &mut Errors,
    prefix: &str,
    template: Option<&PodTemplateSpec>,
    namespace: Option<&String>,
) -> Pod {
    let Some(t) = template else {
        v.push(format!("{prefix}.spec.containers"), "Required value");
        return Pod::default();
    };
    let mut metadata = t.metadata.clone().unwrap_or_default();
    // The controller names the pod and puts it in its own namespace.
    metadata.name = Some("template".to_owned());
    if metadata.namespace.is_none() {
        metadata.namespace = namespace.cloned();
    }
    Pod {
        metadata,
        spec: t.spec.clone(),
        status: None,
    }
}

/// Validates the template as a pod and moves its errors under `prefix`.
fn check_template(v: &mut Errors, prefix: &str, pod: &Pod) {
    if let Err(ManifestError::Invalid { errors, .. }) = super::validate(pod) {
        for e in errors {
            let path = match e.path.split_once('.') {
                Some(("spec", rest)) => format!("{prefix}.spec.{rest}"),
                Some(("metadata", rest)) => format!("{prefix}.metadata.{rest}"),
                _ => format!("{prefix}.{}", e.path),
            };
            v.push(path, e.message);
        }
    }
}

/// `selector` required, not empty, and matching the template's labels.
fn check_selector(v: &mut Errors, kind: &str, selector: &LabelSelector, template: &Pod) {
    let LabelSelector {
        match_labels,
        match_expressions,
    } = selector;
    let empty = match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && match_expressions.as_ref().is_none_or(Vec::is_empty);
    if empty {
        v.push(
            "spec.selector",
            format!("Invalid value: {{}}: empty selector is invalid for {kind}"),
        );
        return;
    }
    let labels = template.metadata.labels.clone().unwrap_or_default();
    let mut matches = match_labels
        .iter()
        .flatten()
        .all(|(k, val)| labels.get(k) == Some(val));
    for e in match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default();
        let has = labels.get(&e.key);
        matches &= match e.operator.as_str() {
            "In" => has.is_some_and(|l| values.contains(l)),
            "NotIn" => has.is_none_or(|l| !values.contains(l)),
            "Exists" => has.is_some(),
            "DoesNotExist" => has.is_none(),
            other => {
                v.unsupported(
                    "spec.selector.matchExpressions.operator",
                    other,
                    &["In", "NotIn", "Exists", "DoesNotExist"],
                );
                true
            }
        };
    }
    if !matches {
        v.push(
            "spec.template.metadata.labels",
            format!("Invalid value: {labels:?}: `selector` does not match template `labels`"),
        );
    }
}

/// `replicas` (default 1): more than one only where `scalable` (checked against
/// `--all-replicas` later, [`super::RunnablePod::one_replica`]).
fn check_replicas(v: &mut Errors, replicas: Option<i32>, scalable: bool) -> u32 {
    match replicas {
        None | Some(1) => 1,
        Some(n) if n < 0 => {
            v.push(
                "spec.replicas",
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            );
            1
        }
        Some(n) if n > 1 && scalable => n as u32,
        Some(n) => {
            v.push(
                "spec.replicas",
                format!(
                    "Invalid value: {n}: podctl runs one replica on this host (set replicas: 1)"
                ),
            );
            1
        }
    }
}

/// The template's `restartPolicy` must be one of `allowed` (absent is `Always`).
fn check_restart_policy(v: &mut Errors, prefix: &str, pod: &Pod, allowed: &[&str], required: bool) {
    let path = format!("{prefix}.spec.restartPolicy");
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
    match policy {
        Some(p) if allowed.contains(&p) => {}
        None if !required && allowed.contains(&"Always") => {}
        None => v.push(
            path,
            format!(
                "Required value: valid values: {}",
                allowed
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Some(p) => v.unsupported(path, p, allowed),
    }
}

fn finish(
    kind: &'static str,
    meta: &ObjectMeta,
    mut v: Errors,
    template: Pod,
    controller: Controller,
) -> Result<Read, ManifestError> {
    v.object_name(meta);
    let errors: Vec<FieldError> = v.into_errors();
    if errors.is_empty() {
        Ok(Read {
            template,
            controller,
            claims: Vec::new(),
        })
    } else {
        Err(ManifestError::Invalid {
            kind,
            name: meta.name.clone().unwrap_or_default(),
            errors,
        })
    }
}

/// How an apps/v1 controller's `replicas` is read.
enum Replicas {
    /// A DaemonSet: one pod per node.
    None,
    /// A StatefulSet: one ordinal; other counts are refused.
    One(Option<i32>),
    /// A Deployment or ReplicaSet: as many as asked for.
    Scalable(Option<i32>),
}

/// What every apps/v1 controller's spec shares: a template that restarts `Always`, a
/// selector matching its labels, and its replicas (returned).
fn apps_template(
    v: &mut Errors,
    kind: &str,
    meta: &ObjectMeta,
    template: Option<&PodTemplateSpec>,
    selector: &LabelSelector,
    replicas: Replicas,
) -> (Pod, u32) {
    let pod = template_pod(v, "spec.template", template, meta.namespace.as_ref());
    check_template(v, "spec.template", &pod);
    check_selector(v, kind, selector, &pod);
    let replicas = match replicas {
        Replicas::None => 1,
        Replicas::One(n) => check_replicas(v, n, false),
        Replicas::Scalable(n) => check_replicas(v, n, true),
    };
    check_restart_policy(v, "spec.template", &pod, &["Always"], false);
    (pod, replicas)
}

pub(super) fn deployment(d: &Deployment) -> Result<Read, ManifestError> {
    let mut v = Errors::default();
    let spec = &d.spec;
    let (template, replicas) = apps_template(
        &mut v,
        "deployment",
        &d.metadata,
        Some(&spec.template),
        &spec.selector,
        Replicas::Scalable(spec.replicas),
    );
    if spec.paused == Some(true) {
        v.push("spec.paused", NOT_SUPPORTED);
    }
    let controller = Controller::Deployment {
        name: d.metadata.name.clone().unwrap_or_default(),
        template_hash: template_hash(&spec.template),
        replicas,
    };
    finish("Deployment", &d.metadata, v, template, controller)
}

pub(super) fn replica_set(r: &ReplicaSet) -> Result<Read, ManifestError> {
    let mut v = Errors::default();
    let spec = &r.spec;
    let (template, replicas) = apps_template(
        &mut v,
        "replicaset",
        &r.metadata,
        spec.template.as_ref(),
        &spec.selector,
        Replicas::Scalable(spec.replicas),
    );
    let controller = Controller::ReplicaSet {
        name: r.metadata.name.clone().unwrap_or_default(),
        replicas,
    };
    finish("ReplicaSet", &r.metadata, v, template, controller)
}

pub(super) fn stateful_set(s: &StatefulSet) -> Result<Read, ManifestError> {
    let mut v = Errors::default();
    let spec = &s.spec;
    let name = s.metadata.name.clone().unwrap_or_default();
    let ordinal = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    // Each claim template becomes the ordinal's own claim, `<template>-<set>-<ordinal>`,
    // and the pod's volume of the template's name refers to it (the controller's
    // `updateStorage`).
    let mut pod_template = spec.template.clone();
    let mut claims = Vec::new();
    for (i, t) in spec.volume_claim_templates.iter().flatten().enumerate() {
        let volume = t.metadata.name.clone().unwrap_or_default();
        let mut claim = t.clone();
        claim.metadata.name = Some(format!("{volume}-{name}-{ordinal}"));
        claim.metadata.namespace = s.metadata.namespace.clone();
        let labels = claim.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.extend(spec.selector.match_labels.clone().unwrap_or_default());
        if let Err(ManifestError::Invalid { errors, .. }) = super::objects::validate_claim(&claim) {
            for e in errors {
                // The claim's name is the controller's; a bad template name shows there.
                let path = match e.path.as_str() {
                    "metadata.name" => format!("spec.volumeClaimTemplates[{i}].metadata.name"),
                    p => format!("spec.volumeClaimTemplates[{i}].{p}"),
                };
                v.push(path, e.message);
            }
        }
        let volumes = pod_template
            .spec
            .get_or_insert_with(Default::default)
            .volumes
            .get_or_insert_with(Vec::new);
        volumes.retain(|v| v.name != volume);
        volumes.push(Volume {
            name: volume,
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name.clone().unwrap_or_default(),
                read_only: None,
            }),
            ..Default::default()
        });
        claims.push(claim);
    }
    if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
        // podctl keeps claims until `podctl volume rm`: Retain is all it does.
        for (field, value) in [
            ("whenDeleted", &policy.when_deleted),
            ("whenScaled", &policy.when_scaled),
        ] {
            if value.as_deref().is_some_and(|w| w != "Retain") {
                v.push(
                    format!("spec.persistentVolumeClaimRetentionPolicy.{field}"),
                    NOT_SUPPORTED,
                );
            }
        }
    }
    let (mut template, _) = apps_template(
        &mut v,
        "statefulset",
        &s.metadata,
        Some(&pod_template),
        &spec.selector,
        Replicas::One(spec.replicas),
    );
    if let Some(service) = spec.service_name.as_ref().filter(|s| !s.is_empty()) {
        if let Some(pod_spec) = template.spec.as_mut() {
            pod_spec.subdomain = Some(service.clone());
        }
    }
    let controller = Controller::StatefulSet {
        name,
        ordinal,
        revision_hash: template_hash(&spec.template),
    };
    let mut read = finish("StatefulSet", &s.metadata, v, template, controller)?;
    read.claims = claims;
    Ok(read)
}

pub(super) fn daemon_set(d: &DaemonSet) -> Result<Read, ManifestError> {
    let mut v = Errors::default();
    let spec = &d.spec;
    let (template, _) = apps_template(
        &mut v,
        "daemonset",
        &d.metadata,
        Some(&spec.template),
        &spec.selector,
        Replicas::None,
    );
    let controller = Controller::DaemonSet {
        name: d.metadata.name.clone().unwrap_or_default(),
        revision_hash: template_hash(&spec.template),
    };
    finish("DaemonSet", &d.metadata, v, template, controller)
}

pub(super) fn job(j: &Job) -> Result<Read, ManifestError> {
    let mut v = Errors::default();
    let spec = j.spec.clone().unwrap_or_default();
    let name = j.metadata.name.clone().unwrap_or_default();
    let (template, rules) = job_spec(&mut v, "spec", &spec, j.metadata.namespace.as_ref(), name);
    finish("Job", &j.metadata, v, template, Controller::Job(rules))
}

/// A Job's spec (at `prefix`: `spec`, or a CronJob's `spec.jobTemplate.spec`): its template
/// as a pod and its rules.
fn job_spec(
    v: &mut Errors,
    prefix: &str,
    spec: &JobSpec,
    namespace: Option<&String>,
    name: String,
) -> (Pod, JobRules) {
    let at = |field: &str| format!("{prefix}.{field}");
    let template = template_pod(v, &at("template"), Some(&spec.template), namespace);
    check_template(v, &at("template"), &template);
    check_restart_policy(v, &at("template"), &template, &["OnFailure", "Never"], true);
    let count = |v: &mut Errors, field: &str, value: Option<i32>, default: u32| match value {
        None => default,
        Some(n) => u32::try_from(n).unwrap_or_else(|_| {
            v.push(
                at(field),
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            );
            default
        }),
    };
    let backoff_limit = count(v, "backoffLimit", spec.backoff_limit, 6);
    let completions = count(v, "completions", spec.completions, 1);
    let parallelism = count(v, "parallelism", spec.parallelism, 1);
    if completions == 0 || parallelism == 0 {
        // Nothing would run: refuse rather than report a Job complete that never ran.
        let field = if completions == 0 {
            "completions"
        } else {
            "parallelism"
        };
        v.push(
            at(field),
            "Invalid value: 0: podctl runs a Job's pods; a Job with none to run is refused",
        );
    }
    let active_deadline_seconds = match spec.active_deadline_seconds {
        None => None,
        Some(n) if (1..=i64::from(i32::MAX)).contains(&n) => Some(n as u64),
        Some(n) => {
            // The API server's bound is any positive int64; a deadline past 68 years is
            // refused here rather than overflowing a clock.
            v.push(
                at("activeDeadlineSeconds"),
                format!(
                    "Invalid value: {n}: must be between 1 and {}, inclusive",
                    i32::MAX
                ),
            );
            None
        }
    };
    if spec.completions.is_none() && spec.parallelism.is_some_and(|p| p > 1) {
        // A work-queue Job: done when any pod succeeds and the rest ended.
        v.push(
            at("parallelism"),
            "Forbidden: not supported by podctl yet without spec.completions (a work-queue Job)",
        );
    }
    let refused = [
        (
            "backoffLimitPerIndex",
            spec.backoff_limit_per_index.is_some(),
        ),
        (
            "completionMode",
            spec.completion_mode
                .as_deref()
                .is_some_and(|m| m != "NonIndexed"),
        ),
        ("managedBy", spec.managed_by.is_some()),
        ("manualSelector", spec.manual_selector == Some(true)),
        ("maxFailedIndexes", spec.max_failed_indexes.is_some()),
        ("podFailurePolicy", spec.pod_failure_policy.is_some()),
        (
            "podReplacementPolicy",
            spec.pod_replacement_policy.is_some(),
        ),
        ("scheduling", spec.scheduling.is_some()),
        ("selector", spec.selector.is_some()),
        ("successPolicy", spec.success_policy.is_some()),
        ("suspend", spec.suspend == Some(true)),
        (
            "ttlSecondsAfterFinished",
            spec.ttl_seconds_after_finished.is_some(),
        ),
    ];
    for (field, set) in refused {
        if set {
            v.push(at(field), NOT_SUPPORTED);
        }
    }
    let rules = JobRules {
        name,
        backoff_limit,
        completions,
        parallelism: parallelism.min(completions).max(1),
        active_deadline_seconds,
        uid: String::new(),
    };
    (template, rules)
}

/// The CronJob controller's Job names add 11 characters, so its name is at most 52.
const CRON_JOB_NAME_MAX: usize = 52;

pub(super) fn cron_job(c: &CronJob) -> Result<Read, ManifestError> {
    let mut v = Errors::default();
    let spec = c.spec.clone();
    let name = c.metadata.name.clone().unwrap_or_default();
    if name.len() > CRON_JOB_NAME_MAX {
        v.invalid(
            "metadata.name",
            &name,
            &format!("must be no more than {CRON_JOB_NAME_MAX} characters"),
        );
    }
    let schedule = if spec.schedule.is_empty() {
        v.push("spec.schedule", "Required value");
        None
    } else {
        match crate::cron::Schedule::parse(&spec.schedule) {
            Ok(s) => Some(s),
            Err(e) => {
                v.invalid("spec.schedule", &spec.schedule, &e.to_string());
                None
            }
        }
    };
    if let Some(tz) = spec.time_zone.as_deref() {
        if let Err(e) = crate::cron::time_zone(Some(tz)) {
            v.invalid("spec.timeZone", tz, &e.to_string());
        }
    }
    v.one_of(
        "spec.concurrencyPolicy",
        spec.concurrency_policy.as_deref(),
        &["Allow", "Forbid", "Replace"],
    );
    let concurrency = match spec.concurrency_policy.as_deref() {
        Some("Forbid") => Concurrency::Forbid,
        Some("Replace") => Concurrency::Replace,
        _ => Concurrency::Allow,
    };
    let nonnegative = |v: &mut Errors, field: &str, value: Option<i64>| match value {
        Some(n) if n < 0 => {
            v.push(
                format!("spec.{field}"),
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            );
            None
        }
        other => other.map(|n| n as u64),
    };
    let starting_deadline_seconds = nonnegative(
        &mut v,
        "startingDeadlineSeconds",
        spec.starting_deadline_seconds,
    );
    let limit = |v: &mut Errors, field: &str, value: Option<i32>, default: u32| {
        nonnegative(v, field, value.map(i64::from))
            .map_or(default, |n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    let successful_jobs_history_limit = limit(
        &mut v,
        "successfulJobsHistoryLimit",
        spec.successful_jobs_history_limit,
        3,
    );
    let failed_jobs_history_limit = limit(
        &mut v,
        "failedJobsHistoryLimit",
        spec.failed_jobs_history_limit,
        1,
    );
    let job_spec_of = spec.job_template.spec.clone().unwrap_or_default();
    let (template, job) = job_spec(
        &mut v,
        "spec.jobTemplate.spec",
        &job_spec_of,
        c.metadata.namespace.as_ref(),
        name.clone(),
    );
    let controller = schedule.map(|schedule| {
        Controller::CronJob(CronRules {
            name,
            schedule,
            schedule_text: spec.schedule.clone(),
            time_zone: spec.time_zone.clone(),
            concurrency,
            starting_deadline_seconds,
            successful_jobs_history_limit,
            failed_jobs_history_limit,
            suspend: spec.suspend == Some(true),
            job,
        })
    });
    // Without a schedule there are errors already: `finish` reports them.
    finish(
        "CronJob",
        &c.metadata,
        v,
        template,
        controller.unwrap_or(Controller::None),
    )
}
