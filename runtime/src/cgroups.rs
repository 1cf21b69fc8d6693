//! A pod's cgroups: the kubelet's arithmetic from `resources` to cgroup values, and the pod
//! cgroup podctl keeps itself.
//!
//! Every container of a pod run sits under one pod cgroup: its OCI `cgroupsPath` is
//! `/podctl/<pod cgroup>/<container id>` ([`container_cgroups_path`]), where the pod cgroup
//! is named after the run's shim group ([`pod_cgroup_name`]). runc creates the missing
//! parents and removes only the container's own cgroup (at task delete), so podctl creates
//! the pod cgroup with the pod-level values before the first container ([`apply_pod_cgroup`])
//! and removes it when the pod's sandbox goes ([`remove_pod_cgroup`]).
//!
//! The values follow the kubelet, read from kubernetes/kubernetes:
//! - a container (`kuberuntime_container_linux.go`, `generateLinuxContainerResources`, and
//!   containerd 1.6's CRI `WithResources`): CPU shares from the CPU request
//!   ([`milli_cpu_to_shares`], `cm.MilliCPUToShares`), CFS quota from the CPU limit over a
//!   100 ms period ([`milli_cpu_to_quota`], `cm.MilliCPUToQuota`), the memory limit (and the
//!   same memory+swap limit where swap is accounted, so a container never swaps), and an
//!   `oom_score_adj` per QoS class (`qos/policy.go`, `GetContainerOOMScoreAdjust`);
//! - the pod (`cm/helpers_linux.go`, `ResourceConfigForPod`, over component-helpers'
//!   `PodRequests`/`PodLimits`): the shares of the summed requests; the summed CPU quota and
//!   memory limit only when every container declares that limit (a Guaranteed pod always
//!   does), where init containers count as `max(sum of the regular containers and sidecars,
//!   the largest init container plus the sidecars started before it)`; a BestEffort pod gets
//!   the minimum shares;
//! - the QoS class (`apis/core/v1/helper/qos`, `ComputePodQOS`): Guaranteed when every
//!   container's CPU and memory requests equal its limits, BestEffort when no container
//!   sets either, Burstable otherwise.
//!
//! Requests are read after the API server's defaulting: a request left out while its limit
//! is set is the limit.
//!
//! Both cgroup versions are handled: v1 (a hierarchy per controller under `/sys/fs/cgroup`)
//! and v2 (one unified hierarchy), told apart by the filesystem type of `/sys/fs/cgroup`.
//!
//! An OOM kill is read from the container cgroup's counter ([`oom_kills`]: v1
//! `memory.oom_control`, v2 `memory.events`, `oom_kill`), which the kernel raises before it
//! sends the SIGKILL: whoever sees the task's exit sees the count, as long as the task (and
//! so its cgroup) has not been deleted.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::manifest::{quantity_bytes, quantity_milli, QuantityError};

/// Where the cgroup filesystems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The cgroup (in every hierarchy) under which podctl's pod cgroups sit.
const PARENT: &str = "podctl";

/// The CFS period the kubelet uses (`QuotaPeriod`, 100 ms), in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The kernel's bounds on `cpu.shares` (`MinShares`, `MaxShares`).
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;
const SHARES_PER_CPU: u64 = 1024;
/// The smallest CFS quota the kernel takes (`MinQuotaPeriod`, 1 ms), in microseconds.
const MIN_QUOTA_US: i64 = 1000;

/// `oom_score_adj` of a Guaranteed container (`guaranteedOOMScoreAdj`).
const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
/// `oom_score_adj` of a BestEffort container (`besteffortOOMScoreAdj`).
const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;

/// `cpu.shares` for `milli` millicores of CPU request (kubelet `MilliCPUToShares`): 1024 per
/// CPU, at least 2 (also for no request at all), at most 262144.
pub fn milli_cpu_to_shares(milli: u64) -> u64 {
    if milli == 0 {
        return MIN_SHARES;
    }
    (milli.saturating_mul(SHARES_PER_CPU) / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// The CFS quota in microseconds for a CPU limit of `milli` millicores over `period`
/// microseconds (kubelet `MilliCPUToQuota`): at least 1 ms; 0 (no quota) without a limit.
pub fn milli_cpu_to_quota(milli: u64, period: u64) -> i64 {
    if milli == 0 {
        return 0;
    }
    let quota = u128::from(milli) * u128::from(period) / 1000;
    i64::try_from(quota).unwrap_or(i64::MAX).max(MIN_QUOTA_US)
}

/// CPU in millicores and memory in bytes of one list (`requests` or `limits`), as the
/// kubelet reads them (`MilliValue()`, `Value()`); 0 means not set, as it does there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    pub cpu_milli: u64,
    pub memory: u64,
}

impl Amounts {
    fn plus(self, other: Self) -> Self {
        Self {
            cpu_milli: self.cpu_milli.saturating_add(other.cpu_milli),
            memory: self.memory.saturating_add(other.memory),
        }
    }

    fn max(self, other: Self) -> Self {
        Self {
            cpu_milli: self.cpu_milli.max(other.cpu_milli),
            memory: self.memory.max(other.memory),
        }
    }
}

/// Why a container's resources cannot be read: a quantity that validation would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("container {container:?}: resources.{field}: {value:?}: {reason}")]
pub struct ResourceError {
    pub container: String,
    /// `limits[cpu]`, `requests[memory]` ...
    pub field: String,
    pub value: String,
    pub reason: QuantityError,
}

/// A container's CPU and memory requests and limits, requests defaulted to limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerResources {
    pub requests: Amounts,
    pub limits: Amounts,
}

impl ContainerResources {
    /// Reads `c.resources`; a request left out while its limit is set is the limit, as the
    /// API server stores it (`SetDefaults_Pod`). Other resources are not read.
    pub fn of(c: &Container) -> Result<Self, ResourceError> {
        let res = c.resources.as_ref();
        let read = |field: &str, list: Option<&std::collections::BTreeMap<String, Quantity>>| {
            let get = |name: &str, parse: fn(&Quantity) -> Result<u64, QuantityError>| match list
                .and_then(|l| l.get(name))
            {
                None => Ok(None),
                Some(q) => parse(q).map(Some).map_err(|reason| ResourceError {
                    container: c.name.clone(),
                    field: format!("{field}[{name}]"),
                    value: q.0.clone(),
                    reason,
                }),
            };
            Ok::<_, ResourceError>((get("cpu", quantity_milli)?, get("memory", quantity_bytes)?))
        };
        let (cpu_limit, memory_limit) = read("limits", res.and_then(|r| r.limits.as_ref()))?;
        let (cpu_request, memory_request) =
            read("requests", res.and_then(|r| r.requests.as_ref()))?;
        let limits = Amounts {
            cpu_milli: cpu_limit.unwrap_or(0),
            memory: memory_limit.unwrap_or(0),
        };
        Ok(Self {
            requests: Amounts {
                cpu_milli: cpu_request.unwrap_or(limits.cpu_milli),
                memory: memory_request.unwrap_or(limits.memory),
            },
            limits,
        })
    }

    /// The QoS class of this container alone (`resourceQOS`).
    pub fn qos(&self) -> QosClass {
        let (r, l) = (self.requests, self.limits);
        if r.cpu_milli != l.cpu_milli || r.memory != l.memory {
            return QosClass::Burstable;
        }
        match (l.cpu_milli == 0, l.memory == 0) {
            (true, true) => QosClass::BestEffort,
            (false, false) => QosClass::Guaranteed,
            _ => QosClass::Burstable,
        }
    }
}

/// A pod's quality-of-service class, as `status.qosClass` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }

    /// The pod's class over its init and regular containers (`ComputePodQOS`): one
    /// Burstable container, or a mix of Guaranteed and BestEffort ones, makes it Burstable.
    pub fn of_pod(pod: &Pod) -> Result<Self, ResourceError> {
        let mut class = None;
        for c in all_containers(pod) {
            match (class, ContainerResources::of(c)?.qos()) {
                (_, QosClass::Burstable) => return Ok(QosClass::Burstable),
                (None, q) => class = Some(q),
                (Some(known), q) if known != q => return Ok(QosClass::Burstable),
                _ => {}
            }
        }
        Ok(class.unwrap_or(QosClass::BestEffort))
    }
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .chain(spec.map(|s| s.containers.as_slice()).unwrap_or_default())
}

/// A native sidecar: an init container with `restartPolicy: Always`.
fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// What the kubelet asks of a container's cgroup (`generateLinuxContainerResources`) and
/// containerd 1.6 writes into its runtime spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerCgroup {
    /// `cpu.shares` (cgroup v2: converted to `cpu.weight` by runc).
    pub cpu_shares: u64,
    /// Always set, as containerd sets the kubelet's period.
    pub cpu_period: u64,
    /// Set with a CPU limit.
    pub cpu_quota: Option<i64>,
    /// Set with a memory limit, in bytes.
    pub memory_limit: Option<u64>,
    /// The container's processes' `oom_score_adj`, no lower than the host allows
    /// ([`Host::min_oom_score_adj`]).
    pub oom_score_adj: i64,
}

impl ContainerCgroup {
    /// The values of `container`, one of `pod`'s, on `host`.
    pub fn of(pod: &Pod, container: &Container, host: &Host) -> Result<Self, ResourceError> {
        let r = ContainerResources::of(container)?;
        let quota = milli_cpu_to_quota(r.limits.cpu_milli, CPU_PERIOD_US);
        Ok(Self {
            // The defaulted request: the limit when only a limit is set (the kubelet
            // repeats the API server's defaulting here).
            cpu_shares: milli_cpu_to_shares(r.requests.cpu_milli),
            cpu_period: CPU_PERIOD_US,
            cpu_quota: (quota != 0).then_some(quota),
            memory_limit: (r.limits.memory != 0).then_some(r.limits.memory),
            oom_score_adj: oom_score_adj(pod, container, host.memory_capacity)?
                .max(host.min_oom_score_adj),
        })
    }
}

/// The container's `oom_score_adj` (kubelet `GetContainerOOMScoreAdjust`): -997 in a
/// Guaranteed pod, 1000 in a BestEffort one; in a Burstable pod `1000 - 1000 * memory
/// request / memory capacity`, for a sidecar no more than that of the regular container
/// with the smallest request, then kept within 3..=999 (above Guaranteed, below BestEffort).
pub fn oom_score_adj(
    pod: &Pod,
    container: &Container,
    memory_capacity: u64,
) -> Result<i64, ResourceError> {
    match QosClass::of_pod(pod)? {
        QosClass::Guaranteed => return Ok(GUARANTEED_OOM_SCORE_ADJ),
        QosClass::BestEffort => return Ok(BEST_EFFORT_OOM_SCORE_ADJ),
        QosClass::Burstable => {}
    }
    let capacity = i128::from(memory_capacity.max(1));
    let adj = |request: u64| 1000 - 1000 * i128::from(request) / capacity;
    let mut score = adj(ContainerResources::of(container)?.requests.memory);
    let spec = pod.spec.as_ref();
    let in_init = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|i| i.name == container.name);
    if is_sidecar(container) && in_init {
        let mut smallest: Option<u64> = None;
        for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
            let request = ContainerResources::of(c)?.requests.memory;
            smallest = Some(smallest.map_or(request, |s| s.min(request)));
        }
        if let Some(smallest) = smallest {
            score = score.min(adj(smallest));
        }
    }
    let floor = i128::from(1000 + GUARANTEED_OOM_SCORE_ADJ);
    let score = if score < floor {
        floor
    } else if score == i128::from(BEST_EFFORT_OOM_SCORE_ADJ) {
        score - 1
    } else {
        score
    };
    Ok(i64::try_from(score).unwrap_or(BEST_EFFORT_OOM_SCORE_ADJ - 1))
}

/// The pod cgroup's values (kubelet `ResourceConfigForPod`); `None` leaves the kernel's
/// default (no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCgroup {
    pub cpu_shares: u64,
    /// Over [`CPU_PERIOD_US`].
    pub cpu_quota: Option<i64>,
    /// In bytes.
    pub memory_limit: Option<u64>,
}

impl PodCgroup {
    pub fn of(pod: &Pod) -> Result<Self, ResourceError> {
        let spec = pod.spec.as_ref();
        let mut requests = Amounts::default();
        let mut limits = Amounts::default();
        // Whether every container (every init container with the sidecars before it)
        // declares a CPU, a memory limit.
        let mut cpu_declared = true;
        let mut memory_declared = true;
        let mut declare = |l: Amounts| {
            cpu_declared &= l.cpu_milli != 0;
            memory_declared &= l.memory != 0;
        };
        for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
            let r = ContainerResources::of(c)?;
            declare(r.limits);
            requests = requests.plus(r.requests);
            limits = limits.plus(r.limits);
        }
        // Sidecars run alongside everything after them; an init container runs alone with
        // the sidecars before it.
        let (mut sidecar_requests, mut sidecar_limits) = (Amounts::default(), Amounts::default());
        let (mut init_requests, mut init_limits) = (Amounts::default(), Amounts::default());
        for c in spec
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default()
        {
            let r = ContainerResources::of(c)?;
            let (during_requests, during_limits) = if is_sidecar(c) {
                requests = requests.plus(r.requests);
                limits = limits.plus(r.limits);
                sidecar_requests = sidecar_requests.plus(r.requests);
                sidecar_limits = sidecar_limits.plus(r.limits);
                (sidecar_requests, sidecar_limits)
            } else {
                (
                    r.requests.plus(sidecar_requests),
                    r.limits.plus(sidecar_limits),
                )
            };
            declare(during_limits);
            init_requests = init_requests.max(during_requests);
            init_limits = init_limits.max(during_limits);
        }
        let requests = requests.max(init_requests);
        let limits = limits.max(init_limits);

        let shares = milli_cpu_to_shares(requests.cpu_milli);
        let quota = milli_cpu_to_quota(limits.cpu_milli, CPU_PERIOD_US);
        Ok(match QosClass::of_pod(pod)? {
            QosClass::Guaranteed => Self {
                cpu_shares: shares,
                cpu_quota: Some(quota),
                memory_limit: Some(limits.memory),
            },
            QosClass::Burstable => Self {
                cpu_shares: shares,
                cpu_quota: cpu_declared.then_some(quota),
                memory_limit: memory_declared.then_some(limits.memory),
            },
            QosClass::BestEffort => Self {
                cpu_shares: MIN_SHARES,
                cpu_quota: None,
                memory_limit: None,
            },
        })
    }
}

/// The facts about this host that the values depend on, read once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// `MemTotal` of `/proc/meminfo`, in bytes (cadvisor's `MemoryCapacity`).
    pub memory_capacity: u64,
    /// Whether memory+swap is accounted (containerd's `SwapControllerAvailable`): then a
    /// container's memory+swap limit is its memory limit, so it never swaps.
    pub swap_accounting: bool,
    /// The lowest `oom_score_adj` a container can be given: -1000 when podctl holds
    /// CAP_SYS_RESOURCE (as containerd and its shims do on a normal host); otherwise (podctl
    /// in a container that lacks it) podctl's own, as containerd's `restrict_oom_score_adj`
    /// does, since the kernel refuses anything lower and runc would fail the container.
    pub min_oom_score_adj: i64,
}

/// This host's [`Host`] facts. A `/proc/meminfo` that cannot be read counts as a host of
/// unbounded memory (Burstable containers then get `oom_score_adj` 999).
pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let memory_capacity = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_total(&text))
            .unwrap_or_else(|| {
                tracing::warn!("cannot read MemTotal from /proc/meminfo");
                u64::MAX
            });
        Host {
            memory_capacity,
            swap_accounting: swap_accounting(),
            min_oom_score_adj: min_oom_score_adj(),
        }
    })
}

/// CAP_SYS_RESOURCE's bit in `CapEff`.
const CAP_SYS_RESOURCE: u32 = 24;

fn min_oom_score_adj() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let privileged = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << CAP_SYS_RESOURCE) != 0);
    if privileged {
        return -1000;
    }
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `MemTotal:  24684084 kB` in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

fn swap_accounting() -> bool {
    let file = match version() {
        Version::V1 => Path::new(CGROUP_ROOT).join("memory/memory.memsw.limit_in_bytes"),
        Version::V2 => {
            // The root cgroup has no memory.swap.max: look at this process's own.
            let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let Some(path) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
                return false;
            };
            Path::new(CGROUP_ROOT)
                .join(path.trim_start_matches('/'))
                .join("memory.swap.max")
        }
    };
    file.exists()
}

/// The cgroup version of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// A hierarchy per controller (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup/cpu` ...).
    V1,
    /// The unified hierarchy mounted at `/sys/fs/cgroup`.
    V2,
}

/// Whether `/sys/fs/cgroup` is the unified hierarchy (cgroup2 filesystem) or not.
pub fn version() -> Version {
    static VERSION: OnceLock<Version> = OnceLock::new();
    *VERSION.get_or_init(|| match nix::sys::statfs::statfs(CGROUP_ROOT) {
        Ok(fs) if fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => Version::V2,
        _ => Version::V1,
    })
}

/// Why the pod cgroup could not be set up or removed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("creating cgroup {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {value:?} to {}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("removing cgroup {}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Resources(#[from] ResourceError),
}

/// The pod cgroup's name for a pod run: its shim group (`<namespace>.<pod>.<random>`, unique
/// per run), made one safe path component.
pub fn pod_cgroup_name(shim_group: &str) -> String {
    let name: String = shim_group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        name.replace('.', "_") + "_"
    } else {
        name
    }
}

/// A container's OCI `cgroupsPath`: under its pod's cgroup.
pub fn container_cgroups_path(pod_cgroup: &str, container_id: &str) -> String {
    format!("/{PARENT}/{pod_cgroup}/{container_id}")
}

/// Creates the pod cgroup `name` (where needed) and writes `config` into it: on cgroup v1
/// `cpu.shares`, `cpu.cfs_period_us`/`cpu.cfs_quota_us` and `memory.limit_in_bytes`; on v2
/// `cpu.weight`, `cpu.max` and `memory.max` (the controllers enabled down to it first).
/// Idempotent: writing the same values again changes nothing.
pub fn apply_pod_cgroup(name: &str, config: &PodCgroup) -> Result<(), CgroupError> {
    let root = Path::new(CGROUP_ROOT);
    match version() {
        Version::V1 => {
            let cpu = create(&root.join("cpu").join(PARENT).join(name))?;
            write(&cpu.join("cpu.shares"), &config.cpu_shares.to_string())?;
            if let Some(quota) = config.cpu_quota {
                write(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
            let memory = create(&root.join("memory").join(PARENT).join(name))?;
            if let Some(limit) = config.memory_limit {
                write(&memory.join("memory.limit_in_bytes"), &limit.to_string())?;
            }
        }
        Version::V2 => {
            let parent = root.join(PARENT);
            enable_controllers(root)?;
            create(&parent)?;
            enable_controllers(&parent)?;
            let dir = create(&parent.join(name))?;
            write(
                &dir.join("cpu.weight"),
                &shares_to_weight(config.cpu_shares).to_string(),
            )?;
            let max = match config.cpu_quota {
                Some(quota) => format!("{quota} {CPU_PERIOD_US}"),
                None => format!("max {CPU_PERIOD_US}"),
            };
            write(&dir.join("cpu.max"), &max)?;
            if let Some(limit) = config.memory_limit {
                write(&dir.join("memory.max"), &limit.to_string())?;
            }
        }
    }
    Ok(())
}

/// runc's `ConvertCPUSharesToCgroupV2Value`: shares 2..=262144 onto weight 1..=10000.
fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// Makes the `cpu` and `memory` controllers (those the hierarchy has) available to the
/// children of `dir` (cgroup v2).
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = dir.join("cgroup.controllers");
    let available = std::fs::read_to_string(&available).map_err(|source| CgroupError::Read {
        path: available,
        source,
    })?;
    let subtree = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&subtree).unwrap_or_default();
    for controller in ["cpu", "memory"] {
        let has = |list: &str| list.split_whitespace().any(|c| c == controller);
        if has(&available) && !has(&enabled) {
            write(&subtree, &format!("+{controller}"))?;
        }
    }
    Ok(())
}

/// Removes the pod cgroup `name` from every hierarchy that has it, its leftover children
/// first (runc removes a container's own cgroup when its task is deleted; one whose removal
/// failed is tried again here). Every process of the pod must be gone. Idempotent: a cgroup
/// that is not there is done.
pub fn remove_pod_cgroup(name: &str) -> Result<(), CgroupError> {
    let root = Path::new(CGROUP_ROOT);
    match version() {
        Version::V1 => {
            let hierarchies = match std::fs::read_dir(root) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(source) => {
                    return Err(CgroupError::Read {
                        path: root.to_owned(),
                        source,
                    })
                }
            };
            // A symlinked hierarchy (`cpu` -> `cpu,cpuacct`) is found under both names; the
            // second visit finds it gone.
            for hierarchy in hierarchies.flatten() {
                remove_tree(&hierarchy.path().join(PARENT).join(name))?;
            }
            Ok(())
        }
        Version::V2 => remove_tree(&root.join(PARENT).join(name)),
    }
}

/// Removes the pod cgroup of the pod whose state directory is `pod_dir`, named by the shim
/// group recorded there (`pods::files::SHIM_GROUP`); without that record no pod cgroup was
/// ever made. Idempotent.
pub fn remove_pod_cgroup_of(pod_dir: &Path) -> Result<(), CgroupError> {
    let file = pod_dir.join(crate::pods::files::SHIM_GROUP);
    match std::fs::read_to_string(&file) {
        Ok(group) => remove_pod_cgroup(&pod_cgroup_name(group.trim())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CgroupError::Read { path: file, source }),
    }
}

/// How many processes of container `container_id` of pod cgroup `pod_cgroup` the kernel's
/// OOM killer has killed; `None` when its cgroup cannot be read (gone, or no memory
/// controller).
pub fn oom_kills(pod_cgroup: &str, container_id: &str) -> Option<u64> {
    let relative = container_cgroups_path(pod_cgroup, container_id);
    let relative = relative.trim_start_matches('/');
    let file = match version() {
        Version::V1 => Path::new(CGROUP_ROOT)
            .join("memory")
            .join(relative)
            .join("memory.oom_control"),
        Version::V2 => Path::new(CGROUP_ROOT).join(relative).join("memory.events"),
    };
    let text = std::fs::read_to_string(file).ok()?;
    oom_kill_count(&text)
}

/// The `oom_kill N` line of `memory.oom_control` (v1) or `memory.events` (v2).
fn oom_kill_count(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

fn create(dir: &Path) -> Result<PathBuf, CgroupError> {
    std::fs::create_dir_all(dir).map_err(|source| CgroupError::Create {
        path: dir.to_owned(),
        source,
    })?;
    Ok(dir.to_owned())
}

/// Writes a cgroup file, which must exist (cgroup files are never created).
fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Write {
            path: path.to_owned(),
            value: value.to_owned(),
            source,
        })
}

/// Removes the cgroup `dir` and every cgroup below it, deepest first. A cgroup whose last
/// process just exited may refuse for a moment (EBUSY): tried again for about a second,
/// as runc does.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let removal = |source| CgroupError::Remove {
        path: dir.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(removal(e)),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    let mut delay = Duration::from_millis(10);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && delay < Duration::from_secs(1) => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(removal(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    /// A container with `limits`/`requests` given as `{"cpu": "1", ...}`.
    fn c(name: &str, limits: serde_json::Value, requests: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "name": name,
            "image": "busybox",
            "resources": {"limits": limits, "requests": requests},
        })
    }

    fn sidecar(
        name: &str,
        limits: serde_json::Value,
        requests: serde_json::Value,
    ) -> serde_json::Value {
        let mut s = c(name, limits, requests);
        s["restartPolicy"] = "Always".into();
        s
    }

    fn spec(containers: Vec<serde_json::Value>, init: Vec<serde_json::Value>) -> Pod {
        pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": containers, "initContainers": init},
        }))
    }

    fn none() -> serde_json::Value {
        serde_json::json!({})
    }

    const GI: u64 = 1 << 30;
    const MI: u64 = 1 << 20;

    #[test]
    fn shares_and_quota_as_the_kubelet_computes_them() {
        // MilliCPUToShares
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(2), 2);
        assert_eq!(milli_cpu_to_shares(3), 3);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(250), 256);
        assert_eq!(milli_cpu_to_shares(500), 512);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1500), 1536);
        assert_eq!(milli_cpu_to_shares(300_000), MAX_SHARES);
        // MilliCPUToQuota (period 100 ms)
        assert_eq!(milli_cpu_to_quota(0, CPU_PERIOD_US), 0);
        assert_eq!(milli_cpu_to_quota(1, CPU_PERIOD_US), 1000);
        assert_eq!(milli_cpu_to_quota(5, CPU_PERIOD_US), 1000);
        assert_eq!(milli_cpu_to_quota(10, CPU_PERIOD_US), 1000);
        assert_eq!(milli_cpu_to_quota(11, CPU_PERIOD_US), 1100);
        assert_eq!(milli_cpu_to_quota(200, CPU_PERIOD_US), 20_000);
        assert_eq!(milli_cpu_to_quota(500, CPU_PERIOD_US), 50_000);
        assert_eq!(milli_cpu_to_quota(2000, CPU_PERIOD_US), 200_000);
        assert_eq!(milli_cpu_to_quota(u64::MAX, CPU_PERIOD_US), i64::MAX);
        // runc's v2 conversion
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(MAX_SHARES), 10_000);
    }

    #[test]
    fn requests_default_to_limits() {
        let p = spec(
            vec![c(
                "a",
                serde_json::json!({"cpu": "500m", "memory": "64Mi"}),
                serde_json::json!({"memory": "32Mi"}),
            )],
            vec![],
        );
        let r = ContainerResources::of(&p.spec.as_ref().unwrap().containers[0]).unwrap();
        assert_eq!(
            r,
            ContainerResources {
                requests: Amounts {
                    cpu_milli: 500,
                    memory: 32 * MI
                },
                limits: Amounts {
                    cpu_milli: 500,
                    memory: 64 * MI
                },
            }
        );
        let bad = spec(
            vec![c("a", serde_json::json!({"cpu": "x"}), none())],
            vec![],
        );
        let err = ContainerResources::of(&bad.spec.as_ref().unwrap().containers[0]).unwrap_err();
        assert_eq!(err.field, "limits[cpu]");
        assert_eq!(err.reason, QuantityError::Syntax);
    }

    #[test]
    fn qos_classes() {
        let full = || serde_json::json!({"cpu": "1", "memory": "1Gi"});
        let cases: Vec<(Pod, QosClass)> = vec![
            (
                spec(vec![c("a", none(), none())], vec![]),
                QosClass::BestEffort,
            ),
            // Limits only: requests default to them.
            (
                spec(vec![c("a", full(), none())], vec![]),
                QosClass::Guaranteed,
            ),
            (
                spec(vec![c("a", full(), full())], vec![]),
                QosClass::Guaranteed,
            ),
            (
                spec(
                    vec![c("a", full(), serde_json::json!({"cpu": "500m"}))],
                    vec![],
                ),
                QosClass::Burstable,
            ),
            (
                spec(
                    vec![c("a", serde_json::json!({"cpu": "1"}), none())],
                    vec![],
                ),
                QosClass::Burstable,
            ),
            (
                spec(
                    vec![c("a", none(), serde_json::json!({"memory": "1Mi"}))],
                    vec![],
                ),
                QosClass::Burstable,
            ),
            // Guaranteed and BestEffort together.
            (
                spec(vec![c("a", full(), none()), c("b", none(), none())], vec![]),
                QosClass::Burstable,
            ),
            // Init containers count.
            (
                spec(vec![c("a", full(), none())], vec![c("i", none(), none())]),
                QosClass::Burstable,
            ),
            (
                spec(vec![c("a", full(), none())], vec![c("i", full(), none())]),
                QosClass::Guaranteed,
            ),
            // Other resources do not.
            (
                spec(
                    vec![c(
                        "a",
                        none(),
                        serde_json::json!({"ephemeral-storage": "1Gi"}),
                    )],
                    vec![],
                ),
                QosClass::BestEffort,
            ),
        ];
        for (i, (p, want)) in cases.into_iter().enumerate() {
            assert_eq!(QosClass::of_pod(&p).unwrap(), want, "case {i}");
        }
    }

    #[test]
    fn oom_score_adj_per_qos_class() {
        let capacity = 16 * GI;
        let adj = |p: &Pod, name: &str| {
            let s = p.spec.as_ref().unwrap();
            let c = s
                .containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|c| c.name == name)
                .unwrap();
            oom_score_adj(p, c, capacity).unwrap()
        };
        let guaranteed = spec(
            vec![c(
                "a",
                serde_json::json!({"cpu": "1", "memory": "1Gi"}),
                none(),
            )],
            vec![],
        );
        assert_eq!(adj(&guaranteed, "a"), -997);
        let best_effort = spec(vec![c("a", none(), none())], vec![]);
        assert_eq!(adj(&best_effort, "a"), 1000);
        // 1 GiB of 16: 1000 - 62.5, rounded as integer division does.
        let burstable = spec(
            vec![
                c("a", none(), serde_json::json!({"memory": "1Gi"})),
                c("b", none(), serde_json::json!({"cpu": "1"})),
                c("c", none(), serde_json::json!({"memory": "16Gi"})),
                c("d", none(), serde_json::json!({"memory": "20Gi"})),
            ],
            vec![
                sidecar("s", none(), serde_json::json!({"memory": "4Gi"})),
                sidecar("t", none(), serde_json::json!({"memory": "512Mi"})),
            ],
        );
        assert_eq!(adj(&burstable, "a"), 938);
        // No memory request: 1000, kept below BestEffort.
        assert_eq!(adj(&burstable, "b"), 999);
        // All of the host's memory, or more: kept above Guaranteed.
        assert_eq!(adj(&burstable, "c"), 3);
        assert_eq!(adj(&burstable, "d"), 3);
        // A sidecar scores no higher than the regular container with the smallest request
        // (b, none: 999); its own request decides when that is lower.
        assert_eq!(adj(&burstable, "s"), 750);
        assert_eq!(adj(&burstable, "t"), 969);
        let sidecar_over_small = spec(
            vec![c("a", none(), serde_json::json!({"memory": "2Gi"}))],
            vec![sidecar("s", none(), serde_json::json!({"memory": "1Gi"}))],
        );
        assert_eq!(adj(&sidecar_over_small, "s"), 875);
    }

    #[test]
    fn container_cgroup_values() {
        let p = spec(
            vec![c(
                "a",
                serde_json::json!({"cpu": "500m", "memory": "64Mi"}),
                serde_json::json!({"cpu": "250m"}),
            )],
            vec![],
        );
        let host = Host {
            memory_capacity: 16 * GI,
            swap_accounting: true,
            min_oom_score_adj: -1000,
        };
        let v = ContainerCgroup::of(&p, &p.spec.as_ref().unwrap().containers[0], &host).unwrap();
        assert_eq!(
            v,
            ContainerCgroup {
                cpu_shares: 256,
                cpu_period: 100_000,
                cpu_quota: Some(50_000),
                memory_limit: Some(64 * MI),
                // Burstable, memory request defaulted to the 64 MiB limit.
                oom_score_adj: 997,
            }
        );
        let p = spec(vec![c("a", none(), none())], vec![]);
        let v = ContainerCgroup::of(&p, &p.spec.as_ref().unwrap().containers[0], &host).unwrap();
        assert_eq!(
            v,
            ContainerCgroup {
                cpu_shares: 2,
                cpu_period: 100_000,
                cpu_quota: None,
                memory_limit: None,
                oom_score_adj: 1000,
            }
        );
        // Guaranteed, where podctl may not go below its own score.
        let p = spec(
            vec![c(
                "a",
                serde_json::json!({"cpu": "1", "memory": "1Gi"}),
                none(),
            )],
            vec![],
        );
        let c0 = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            ContainerCgroup::of(&p, c0, &host).unwrap().oom_score_adj,
            -997
        );
        let restricted = Host {
            min_oom_score_adj: 0,
            ..host
        };
        assert_eq!(
            ContainerCgroup::of(&p, c0, &restricted)
                .unwrap()
                .oom_score_adj,
            0
        );
    }

    #[test]
    fn pod_cgroup_sums_like_resource_config_for_pod() {
        let lim = |cpu: &str, mem: &str| serde_json::json!({"cpu": cpu, "memory": mem});
        // Guaranteed: sums of everything.
        let p = spec(
            vec![
                c("a", lim("500m", "64Mi"), none()),
                c("b", lim("1", "128Mi"), none()),
            ],
            vec![],
        );
        assert_eq!(
            PodCgroup::of(&p).unwrap(),
            PodCgroup {
                cpu_shares: 1536,
                cpu_quota: Some(150_000),
                memory_limit: Some(192 * MI),
            }
        );
        // Burstable with one container lacking a memory limit: CPU quota only.
        let p = spec(
            vec![
                c("a", lim("500m", "64Mi"), none()),
                c(
                    "b",
                    serde_json::json!({"cpu": "1"}),
                    serde_json::json!({"memory": "8Mi"}),
                ),
            ],
            vec![],
        );
        assert_eq!(
            PodCgroup::of(&p).unwrap(),
            PodCgroup {
                cpu_shares: 1536,
                cpu_quota: Some(150_000),
                memory_limit: None,
            }
        );
        // A larger init container sets the pod's values; a sidecar adds to everything after it.
        let p = spec(
            vec![c("a", lim("500m", "64Mi"), none())],
            vec![
                c("i", lim("2", "32Mi"), none()),
                sidecar("s", lim("100m", "16Mi"), none()),
                c("j", lim("100m", "100Mi"), none()),
            ],
        );
        // regular + sidecar: 600m, 80Mi; i alone: 2000m, 32Mi; j with s: 200m, 116Mi.
        assert_eq!(
            PodCgroup::of(&p).unwrap(),
            PodCgroup {
                cpu_shares: 2048,
                cpu_quota: Some(200_000),
                memory_limit: Some(116 * MI),
            }
        );
        // An init container without limits in a Burstable pod: no pod limits.
        let p = spec(
            vec![c("a", lim("500m", "64Mi"), none())],
            vec![c("i", none(), serde_json::json!({"cpu": "100m"}))],
        );
        assert_eq!(
            PodCgroup::of(&p).unwrap(),
            PodCgroup {
                cpu_shares: 512,
                cpu_quota: None,
                memory_limit: None,
            }
        );
        // BestEffort.
        let p = spec(vec![c("a", none(), none())], vec![]);
        assert_eq!(
            PodCgroup::of(&p).unwrap(),
            PodCgroup {
                cpu_shares: 2,
                cpu_quota: None,
                memory_limit: None,
            }
        );
    }

    #[test]
    fn host_files_parse() {
        assert_eq!(
            mem_total("MemTotal:       24684084 kB\nMemFree: 1 kB\n"),
            Some(24_684_084 * 1024)
        );
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(
            oom_kill_count("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(
            oom_kill_count("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n"),
            Some(1)
        );
        assert_eq!(oom_kill_count("oom_kill_disable 0\n"), None);
        assert!(host().memory_capacity > 0);
    }

    #[test]
    fn pod_cgroup_names_are_one_path_component() {
        assert_eq!(pod_cgroup_name("default.web.00ff"), "default.web.00ff");
        assert_eq!(pod_cgroup_name("a/b c"), "a_b_c");
        assert_eq!(pod_cgroup_name(".."), "___");
        assert_eq!(pod_cgroup_name(""), "_");
        assert_eq!(
            container_cgroups_path("default.web.00ff", "web.app.1234"),
            "/podctl/default.web.00ff/web.app.1234"
        );
    }

    #[test]
    fn removing_a_missing_pod_cgroup_is_done() {
        remove_pod_cgroup("podctl-unit-test-never-created").unwrap();
        let dir = tempfile::tempdir().unwrap();
        remove_pod_cgroup_of(dir.path()).unwrap();
    }
}
