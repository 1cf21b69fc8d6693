//! A pod's status, shaped like Kubernetes' so scripts written against
//! `kubectl get pod -o json` read the same field names (`phase`, `conditions`,
//! `initContainerStatuses`, `containerStatuses`, `state.terminated.exitCode`, `lastState`,
//! `restartCount`), and the kubelet's rules that derive the phase and the exit code from it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Kubernetes' pod phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    /// Kubernetes' name of the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }

    /// Succeeded and Failed never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// What kind of container this is; decides which rules apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A regular init container: runs to a successful exit before the next one starts.
    Init,
    /// An init container with `restartPolicy: Always`: runs beside the main containers.
    Sidecar,
    /// A container of `spec.containers`.
    #[default]
    Main,
}

impl Role {
    /// `init`, `sidecar` or `main`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Init => "init",
            Role::Sidecar => "sidecar",
            Role::Main => "main",
        }
    }

    /// Listed under `initContainerStatuses` (regular init containers and sidecars).
    pub fn is_init(self) -> bool {
        matches!(self, Role::Init | Role::Sidecar)
    }
}

/// A terminated container, as Kubernetes reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terminated {
    pub exit_code: i32,
    /// `Completed` (exit 0), `Error` (non-zero), `StartError` (could not start).
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(rename = "containerID")]
    pub container_id: String,
}

/// A container that is not running: not started yet, or waiting for its next start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// `PodInitializing`, `ContainerCreating`, `CrashLoopBackOff` ...
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Running {
    pub started_at: String,
}

/// Exactly one of Kubernetes' container states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerState {
    Waiting(Waiting),
    Running(Running),
    Terminated(Terminated),
}

impl ContainerState {
    /// A waiting state with a reason and no message.
    pub fn waiting(reason: &str) -> Self {
        ContainerState::Waiting(Waiting {
            reason: reason.to_string(),
            message: None,
        })
    }

    /// The exit code of a terminated state.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ContainerState::Terminated(t) => Some(t.exit_code),
            _ => None,
        }
    }
}

/// One container's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub image: String,
    #[serde(rename = "containerID", skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Not part of Kubernetes' shape: readers restore it from the manifest.
    #[serde(skip)]
    pub role: Role,
    pub state: ContainerState,
    /// The previous termination, once the container has been restarted; `{}` before.
    #[serde(
        serialize_with = "empty_object_when_none",
        deserialize_with = "none_when_empty_object",
        default
    )]
    pub last_state: Option<ContainerState>,
    pub ready: bool,
    pub restart_count: u32,
    /// Running with its postStart hook done and its startupProbe (if any) passed.
    pub started: bool,
}

fn empty_object_when_none<S: Serializer>(
    value: &Option<ContainerState>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(state) => state.serialize(s),
        None => serde_json::Map::new().serialize(s),
    }
}

fn none_when_empty_object<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<ContainerState>, D::Error> {
    let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
    if map.is_empty() {
        return Ok(None);
    }
    serde_json::from_value(serde_json::Value::Object(map))
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl ContainerStatus {
    /// A container in `state` that has not been restarted, is not ready and has no
    /// containerd id yet.
    pub fn new(name: &str, image: &str, role: Role, state: ContainerState) -> Self {
        Self {
            name: name.to_string(),
            image: image.to_string(),
            container_id: None,
            role,
            state,
            last_state: None,
            ready: false,
            restart_count: 0,
            started: false,
        }
    }

    /// The exit code when the container's current state is terminated.
    pub fn exit_code(&self) -> Option<i32> {
        self.state.exit_code()
    }
}

/// One of the kubelet's pod conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `"True"` or `"False"`, as Kubernetes spells them.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The kubelet's conditions, in the order it lists them.
pub const CONDITION_TYPES: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

/// The status of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// Not part of Kubernetes' status: the pod's name, for printing.
    #[serde(skip)]
    pub name: String,
    pub phase: Phase,
    pub conditions: Vec<Condition>,
    /// `DeadlineExceeded` when `activeDeadlineSeconds` ran out, `Stopped` when asked to stop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// The host's address (the node's InternalIP on a cluster).
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    #[serde(default, rename = "hostIPs", skip_serializing_if = "Vec::is_empty")]
    pub host_ips: Vec<PodIp>,
    /// The pod's first address: from its network, or the host's with `hostNetwork`.
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    #[serde(default, rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<PodIp>,
    /// `Guaranteed`, `Burstable` or `BestEffort`, from the containers' resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_class: Option<String>,
    pub init_container_statuses: Vec<ContainerStatus>,
    pub container_statuses: Vec<ContainerStatus>,
}

/// An entry of `podIPs`/`hostIPs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodIp {
    pub ip: String,
}

impl From<&std::net::IpAddr> for PodIp {
    fn from(ip: &std::net::IpAddr) -> Self {
        PodIp { ip: ip.to_string() }
    }
}

impl PodStatus {
    /// The exit code `podctl run` reports: 0 when the pod succeeded; else the exit code of
    /// the first main container (in spec order) that ended non-zero; else that of the
    /// regular init container that failed the pod; else 1 (deadline or stop without any
    /// container exit code to report). Sidecars never decide it: they are stopped when the
    /// pod ends, and their exit codes then mean nothing.
    pub fn exit_code(&self) -> i32 {
        if self.phase == Phase::Succeeded {
            return 0;
        }
        // A container stopped while it waited to be restarted ends with its last exit.
        let first_failure = |list: &[ContainerStatus]| {
            list.iter()
                .filter(|c| c.role != Role::Sidecar)
                .filter_map(|c| {
                    c.exit_code()
                        .or_else(|| c.last_state.as_ref().and_then(ContainerState::exit_code))
                })
                .find(|c| *c != 0)
        };
        first_failure(&self.container_statuses)
            .or_else(|| first_failure(&self.init_container_statuses))
            .unwrap_or(1)
    }

    /// Every container, init containers first, in spec order.
    pub fn all(&self) -> impl Iterator<Item = &ContainerStatus> {
        self.init_container_statuses
            .iter()
            .chain(&self.container_statuses)
    }

    /// The condition of the given type.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// What `kubectl get pods` shows of the pod (see [`Summary`]).
    pub fn summary(&self) -> Summary {
        summarize(self)
    }
}

/// The pod's `restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// From `spec.restartPolicy` (validated; absent means Always).
    pub fn from_spec(value: Option<&str>) -> Self {
        match value {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// The kubelet's `getPhase` for a pod that is still live: from the containers' states and
/// the pod's restart policy.
pub fn live_phase(containers: &[ContainerStatus], policy: RestartPolicy) -> Phase {
    let mut pending_init = false;
    let mut failed_init = false;
    let mains_have_run = mains_have_run(containers);
    for c in containers.iter().filter(|c| c.role.is_init()) {
        match c.role {
            // A sidecar holds the pod in Pending until it has started; once the main
            // containers have run, a restarting sidecar does not send the pod back.
            Role::Sidecar => pending_init |= !c.started && !mains_have_run,
            _ => match (&c.state, &c.last_state) {
                (ContainerState::Terminated(t), _) if t.exit_code == 0 => {}
                (ContainerState::Terminated(_), _) => failed_init = true,
                (ContainerState::Waiting(_), Some(last)) if last.exit_code() != Some(0) => {
                    failed_init = true;
                    pending_init = true;
                }
                _ => pending_init = true,
            },
        }
    }
    if failed_init && policy == RestartPolicy::Never {
        return Phase::Failed;
    }
    if pending_init {
        return Phase::Pending;
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers.iter().filter(|c| c.role == Role::Main) {
        match &c.state {
            ContainerState::Running(_) => running += 1,
            ContainerState::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            ContainerState::Waiting(_) if c.last_state.is_some() => stopped += 1,
            ContainerState::Waiting(_) => waiting += 1,
        }
    }
    // Like the kubelet, a sidecar still running keeps the pod Running.
    running += containers
        .iter()
        .filter(|c| c.role == Role::Sidecar && matches!(c.state, ContainerState::Running(_)))
        .count();
    if waiting > 0 {
        Phase::Pending
    } else if running > 0 {
        Phase::Running
    } else if stopped == 0 {
        Phase::Pending
    } else if policy == RestartPolicy::Always {
        Phase::Running
    } else if stopped == succeeded {
        Phase::Succeeded
    } else if policy == RestartPolicy::Never {
        Phase::Failed
    } else {
        Phase::Running
    }
}

/// Whether a main container has been running at some point (initialization is then over
/// for good, whatever a sidecar does since).
fn mains_have_run(containers: &[ContainerStatus]) -> bool {
    containers.iter().any(|c| {
        c.role == Role::Main
            && (!matches!(c.state, ContainerState::Waiting(_)) || c.last_state.is_some())
    })
}

/// Values of the kubelet's conditions (without times) for the current container states:
/// `(type, true?, reason, message)`.
pub fn condition_values(
    containers: &[ContainerStatus],
    sandbox_ready: bool,
    phase: Phase,
) -> Vec<(&'static str, bool, Option<String>, Option<String>)> {
    let incomplete: Vec<&str> = containers
        .iter()
        .filter(|c| match c.role {
            Role::Init => c.exit_code() != Some(0),
            Role::Sidecar => !c.started,
            Role::Main => false,
        })
        .map(|c| c.name.as_str())
        .collect();
    let unready: Vec<&str> = containers
        .iter()
        .filter(|c| c.role != Role::Init && !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let list = |names: &[&str]| format!("[{}]", names.join(" "));
    let initialized = if phase == Phase::Succeeded {
        (true, Some("PodCompleted".to_string()), None)
    } else if incomplete.is_empty() || mains_have_run(containers) {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotInitialized".to_string()),
            Some(format!(
                "containers with incomplete status: {}",
                list(&incomplete)
            )),
        )
    };
    let ready = if unready.is_empty() {
        (true, None, None)
    } else if phase == Phase::Succeeded {
        (false, Some("PodCompleted".to_string()), None)
    } else if phase == Phase::Failed {
        (false, Some("PodFailed".to_string()), None)
    } else {
        (
            false,
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: {}",
                list(&unready)
            )),
        )
    };
    vec![
        (CONDITION_TYPES[0], sandbox_ready, None, None),
        (
            CONDITION_TYPES[1],
            initialized.0,
            initialized.1,
            initialized.2,
        ),
        (
            CONDITION_TYPES[2],
            ready.0,
            ready.1.clone(),
            ready.2.clone(),
        ),
        (CONDITION_TYPES[3], ready.0, ready.1, ready.2),
    ]
}

/// What `kubectl get pods` shows of a pod's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Running and ready main containers, plus started and ready sidecars.
    pub ready: usize,
    /// Main containers and sidecars.
    pub total: usize,
    /// The STATUS column.
    pub status: String,
    /// The RESTARTS column (without "(5s ago)").
    pub restarts: u32,
}

/// kubectl's `printPod` (pkg/printers/internalversion/printers.go): the STATUS column is
/// the pod's reason or phase, overridden by the first init container that has not
/// completed (`Init:Error`, `Init:CrashLoopBackOff`, `Init:1/2`) or, once initialization is
/// over, by the first main container that is not running (`PodInitializing`,
/// `CrashLoopBackOff`, `Completed`, `Error`); `Completed` turns back into `Running` (or
/// `NotReady`) while another main container still runs. RESTARTS counts the init
/// containers' restarts while the pod initializes, then the main containers' and sidecars'.
fn summarize(status: &PodStatus) -> Summary {
    let sidecars = status
        .init_container_statuses
        .iter()
        .filter(|c| c.role == Role::Sidecar)
        .count();
    let total = status.container_statuses.len() + sidecars;
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut reason = status
        .reason
        .clone()
        .unwrap_or_else(|| status.phase.as_str().to_string());

    let inits = &status.init_container_statuses;
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        restarts += c.restart_count;
        if c.role == Role::Sidecar {
            sidecar_restarts += c.restart_count;
        }
        match &c.state {
            ContainerState::Terminated(t) if t.exit_code == 0 => continue,
            _ if c.role == Role::Sidecar && c.started => {
                if c.ready {
                    ready += 1;
                }
                continue;
            }
            ContainerState::Terminated(t) => {
                reason = if t.reason.is_empty() {
                    format!("Init:ExitCode:{}", t.exit_code)
                } else {
                    format!("Init:{}", t.reason)
                };
            }
            ContainerState::Waiting(w) if !w.reason.is_empty() && w.reason != "PodInitializing" => {
                reason = format!("Init:{}", w.reason);
            }
            _ => reason = format!("Init:{i}/{}", inits.len()),
        }
        initializing = true;
        break;
    }

    let initialized = status
        .condition("Initialized")
        .is_some_and(|c| c.status == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        let mut has_running = false;
        // In reverse, so the first container in spec order that is not running decides.
        for c in status.container_statuses.iter().rev() {
            restarts += c.restart_count;
            match &c.state {
                ContainerState::Waiting(w) if !w.reason.is_empty() => reason = w.reason.clone(),
                ContainerState::Terminated(t) if !t.reason.is_empty() => reason = t.reason.clone(),
                ContainerState::Terminated(t) => reason = format!("ExitCode:{}", t.exit_code),
                ContainerState::Running(_) if c.ready => {
                    has_running = true;
                    ready += 1;
                }
                _ => {}
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = status
                .condition("Ready")
                .is_some_and(|c| c.status == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }
    Summary {
        ready,
        total,
        status: reason,
        restarts,
    }
}

/// Formats a time as Kubernetes does in status fields (RFC 3339, UTC, seconds).
pub fn k8s_time(t: std::time::SystemTime) -> String {
    let t = time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, role: Role, state: ContainerState) -> ContainerStatus {
        ContainerStatus::new(name, "busybox", role, state)
    }

    fn exited(code: i32) -> ContainerState {
        ContainerState::Terminated(Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: None,
            finished_at: None,
            container_id: String::new(),
        })
    }

    fn running() -> ContainerState {
        ContainerState::Running(Running {
            started_at: String::new(),
        })
    }

    fn terminated(name: &str, role: Role, code: i32) -> ContainerStatus {
        status(name, role, exited(code))
    }

    fn back_off(name: &str, role: Role, last: i32) -> ContainerStatus {
        ContainerStatus {
            last_state: Some(exited(last)),
            restart_count: 1,
            ..status(name, role, ContainerState::waiting("CrashLoopBackOff"))
        }
    }

    fn pod(phase: Phase, init: Vec<ContainerStatus>, main: Vec<ContainerStatus>) -> PodStatus {
        PodStatus {
            name: "p".into(),
            phase,
            conditions: Vec::new(),
            reason: None,
            message: None,
            start_time: None,
            host_ip: None,
            host_ips: Vec::new(),
            pod_ip: None,
            pod_ips: Vec::new(),
            qos_class: None,
            init_container_statuses: init,
            container_statuses: main,
        }
    }

    #[test]
    fn exit_code_is_first_nonzero_main() {
        let p = pod(
            Phase::Failed,
            vec![terminated("i", Role::Init, 0)],
            vec![
                terminated("a", Role::Main, 0),
                terminated("b", Role::Main, 3),
                terminated("c", Role::Main, 4),
            ],
        );
        assert_eq!(p.exit_code(), 3);
    }

    #[test]
    fn failed_init_gives_its_code() {
        let p = pod(
            Phase::Failed,
            vec![terminated("i", Role::Init, 7)],
            vec![status(
                "a",
                Role::Main,
                ContainerState::waiting("PodInitializing"),
            )],
        );
        assert_eq!(p.exit_code(), 7);
    }

    #[test]
    fn sidecars_never_decide_the_exit_code() {
        let p = pod(
            Phase::Succeeded,
            vec![terminated("proxy", Role::Sidecar, 143)],
            vec![terminated("a", Role::Main, 0)],
        );
        assert_eq!(p.exit_code(), 0);
        let p = pod(
            Phase::Failed,
            vec![terminated("proxy", Role::Sidecar, 143)],
            vec![status(
                "a",
                Role::Main,
                ContainerState::waiting("PodInitializing"),
            )],
        );
        assert_eq!(p.exit_code(), 1);
    }

    #[test]
    fn a_container_stopped_in_back_off_reports_its_last_exit() {
        let p = pod(Phase::Failed, vec![], vec![back_off("a", Role::Main, 3)]);
        assert_eq!(p.exit_code(), 3);
    }

    #[test]
    fn failure_without_exit_code_is_one() {
        let p = pod(
            Phase::Failed,
            vec![],
            vec![status(
                "a",
                Role::Main,
                ContainerState::waiting("PodInitializing"),
            )],
        );
        assert_eq!(p.exit_code(), 1);
        let ok = pod(
            Phase::Succeeded,
            vec![],
            vec![terminated("a", Role::Main, 0)],
        );
        assert_eq!(ok.exit_code(), 0);
    }

    #[test]
    fn phase_follows_get_phase() {
        use RestartPolicy::*;
        let init_pending = [
            status("i", Role::Init, running()),
            status("a", Role::Main, ContainerState::waiting("PodInitializing")),
        ];
        assert_eq!(live_phase(&init_pending, Never), Phase::Pending);
        let init_failed = [
            terminated("i", Role::Init, 1),
            status("a", Role::Main, ContainerState::waiting("PodInitializing")),
        ];
        assert_eq!(live_phase(&init_failed, Never), Phase::Failed);
        // Under OnFailure a failed init container is retried: still Pending.
        let init_retry = [
            back_off("i", Role::Init, 1),
            status("a", Role::Main, ContainerState::waiting("PodInitializing")),
        ];
        assert_eq!(live_phase(&init_retry, OnFailure), Phase::Pending);
        // A sidecar that has not started yet holds the pod in Pending.
        let sidecar_starting = [
            status("s", Role::Sidecar, running()),
            status("a", Role::Main, ContainerState::waiting("PodInitializing")),
        ];
        assert_eq!(live_phase(&sidecar_starting, Always), Phase::Pending);

        let main = |state| {
            [
                terminated("i", Role::Init, 0),
                status("a", Role::Main, state),
            ]
        };
        assert_eq!(live_phase(&main(running()), Never), Phase::Running);
        assert_eq!(live_phase(&main(exited(0)), Never), Phase::Succeeded);
        assert_eq!(live_phase(&main(exited(0)), OnFailure), Phase::Succeeded);
        assert_eq!(live_phase(&main(exited(0)), Always), Phase::Running);
        assert_eq!(live_phase(&main(exited(2)), Never), Phase::Failed);
        assert_eq!(live_phase(&main(exited(2)), OnFailure), Phase::Running);
        // A sidecar's exit never fails the pod.
        let with_sidecar = [
            terminated("s", Role::Sidecar, 137),
            terminated("a", Role::Main, 0),
        ];
        assert_eq!(live_phase(&with_sidecar, Never), Phase::Succeeded);
        let crash_looping = [back_off("a", Role::Main, 1)];
        assert_eq!(live_phase(&crash_looping, Always), Phase::Running);
        // The pod stays Running while its sidecar is stopped after the main container.
        let sidecar_stopping = [
            status("s", Role::Sidecar, running()),
            terminated("a", Role::Main, 0),
        ];
        assert_eq!(live_phase(&sidecar_stopping, Never), Phase::Running);
    }

    #[test]
    fn conditions_name_the_containers_holding_them() {
        let mut sidecar = status("s", Role::Sidecar, running());
        sidecar.started = true;
        sidecar.ready = true;
        let containers = [
            terminated("i", Role::Init, 0),
            sidecar,
            status("a", Role::Main, running()),
        ];
        let values = condition_values(&containers, true, Phase::Running);
        assert_eq!(values[1], ("Initialized", true, None, None));
        assert_eq!(
            values[3],
            (
                "Ready",
                false,
                Some("ContainersNotReady".into()),
                Some("containers with unready status: [a]".into())
            )
        );
        let pending = [
            status("i", Role::Init, running()),
            status("a", Role::Main, ContainerState::waiting("PodInitializing")),
        ];
        let values = condition_values(&pending, true, Phase::Pending);
        assert_eq!(
            values[1].3.as_deref(),
            Some("containers with incomplete status: [i]")
        );
        let done = condition_values(&[terminated("a", Role::Main, 0)], false, Phase::Succeeded);
        assert!(!done[0].1);
        assert_eq!(done[3].2.as_deref(), Some("PodCompleted"));
        // A sidecar stopped at the end does not undo initialization.
        let ended = [
            terminated("s", Role::Sidecar, 143),
            terminated("a", Role::Main, 1),
        ];
        let values = condition_values(&ended, false, Phase::Failed);
        assert_eq!(values[1], ("Initialized", true, None, None));
        assert_eq!(values[3].2.as_deref(), Some("PodFailed"));
    }

    #[test]
    fn serializes_with_kubernetes_field_names() {
        let mut restarted = back_off("a", Role::Main, 1);
        restarted.state = exited(0);
        let p = pod(
            Phase::Succeeded,
            vec![terminated("i", Role::Init, 0)],
            vec![restarted],
        );
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["phase"], "Succeeded");
        let init = &v["initContainerStatuses"][0];
        assert_eq!(init["state"]["terminated"]["exitCode"], 0);
        assert_eq!(init["state"]["terminated"]["reason"], "Completed");
        assert_eq!(init["restartCount"], 0);
        assert_eq!(init["lastState"], serde_json::json!({}));
        let main = &v["containerStatuses"][0];
        assert_eq!(main["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(main["restartCount"], 1);
        assert_eq!(main["ready"], false);
    }
}

#[cfg(test)]
mod summary_tests {
    use super::*;

    fn container(name: &str, role: Role, state: ContainerState) -> ContainerStatus {
        ContainerStatus::new(name, "busybox", role, state)
    }

    fn running(name: &str, role: Role) -> ContainerStatus {
        ContainerStatus {
            ready: true,
            started: true,
            ..container(
                name,
                role,
                ContainerState::Running(Running {
                    started_at: "2026-01-01T00:00:00Z".into(),
                }),
            )
        }
    }

    fn exited(name: &str, role: Role, code: i32) -> ContainerStatus {
        container(
            name,
            role,
            ContainerState::Terminated(Terminated {
                exit_code: code,
                reason: if code == 0 { "Completed" } else { "Error" }.into(),
                message: None,
                started_at: None,
                finished_at: None,
                container_id: "containerd://x".into(),
            }),
        )
    }

    fn waiting(name: &str, role: Role, reason: &str) -> ContainerStatus {
        container(name, role, ContainerState::waiting(reason))
    }

    fn pod(
        phase: Phase,
        initialized: bool,
        ready: bool,
        containers: Vec<ContainerStatus>,
    ) -> PodStatus {
        let condition = |type_: &str, value: bool| Condition {
            type_: type_.into(),
            status: if value { "True" } else { "False" }.into(),
            last_transition_time: None,
            reason: None,
            message: None,
        };
        let (init, main) = containers.into_iter().partition(|c| c.role.is_init());
        PodStatus {
            name: "p".into(),
            phase,
            conditions: vec![
                condition("Initialized", initialized),
                condition("Ready", ready),
            ],
            reason: None,
            message: None,
            start_time: None,
            host_ip: None,
            host_ips: Vec::new(),
            pod_ip: None,
            pod_ips: Vec::new(),
            qos_class: None,
            init_container_statuses: init,
            container_statuses: main,
        }
    }

    fn printed(status: &PodStatus) -> (String, String, u32) {
        let s = status.summary();
        (format!("{}/{}", s.ready, s.total), s.status, s.restarts)
    }

    #[test]
    fn running_pod_counts_ready_mains_and_sidecars() {
        let status = pod(
            Phase::Running,
            true,
            true,
            vec![
                exited("setup", Role::Init, 0),
                running("proxy", Role::Sidecar),
                running("app", Role::Main),
            ],
        );
        assert_eq!(printed(&status), ("2/2".into(), "Running".into(), 0));
    }

    #[test]
    fn init_containers_in_progress_show_their_index() {
        let status = pod(
            Phase::Pending,
            false,
            false,
            vec![
                exited("one", Role::Init, 0),
                running("two", Role::Init),
                waiting("three", Role::Init, "PodInitializing"),
                waiting("app", Role::Main, "PodInitializing"),
            ],
        );
        assert_eq!(printed(&status), ("0/1".into(), "Init:1/3".into(), 0));
    }

    #[test]
    fn failed_init_container_shows_its_reason() {
        let status = pod(
            Phase::Failed,
            false,
            false,
            vec![
                exited("setup", Role::Init, 1),
                waiting("app", Role::Main, "PodInitializing"),
            ],
        );
        assert_eq!(printed(&status).1, "Init:Error");

        let mut looping = waiting("setup", Role::Init, "CrashLoopBackOff");
        looping.restart_count = 3;
        let status = pod(
            Phase::Pending,
            false,
            false,
            vec![looping, waiting("app", Role::Main, "PodInitializing")],
        );
        assert_eq!(
            printed(&status),
            ("0/1".into(), "Init:CrashLoopBackOff".into(), 3)
        );
    }

    #[test]
    fn init_done_mains_not_started_is_pod_initializing() {
        let status = pod(
            Phase::Pending,
            true,
            false,
            vec![
                exited("setup", Role::Init, 0),
                waiting("app", Role::Main, "PodInitializing"),
            ],
        );
        assert_eq!(printed(&status).1, "PodInitializing");
    }

    #[test]
    fn crash_looping_main_container() {
        let mut app = waiting("app", Role::Main, "CrashLoopBackOff");
        app.restart_count = 4;
        let mut proxy = running("proxy", Role::Sidecar);
        proxy.restart_count = 1;
        let mut setup = exited("setup", Role::Init, 0);
        setup.restart_count = 2;
        let status = pod(Phase::Running, true, false, vec![setup, proxy, app]);
        // Once initialized, a regular init container's restarts no longer count.
        assert_eq!(
            printed(&status),
            ("1/2".into(), "CrashLoopBackOff".into(), 5)
        );
    }

    #[test]
    fn finished_pods_show_the_first_main_container_reason() {
        let status = pod(
            Phase::Succeeded,
            true,
            false,
            vec![
                exited("proxy", Role::Sidecar, 143),
                exited("app", Role::Main, 0),
            ],
        );
        assert_eq!(printed(&status), ("0/2".into(), "Completed".into(), 0));

        let status = pod(
            Phase::Failed,
            true,
            false,
            vec![exited("a", Role::Main, 143), exited("b", Role::Main, 0)],
        );
        assert_eq!(printed(&status).1, "Error");
        // kubectl's quirk: the first container in spec order decides, even when a later
        // one failed.
        let status = pod(
            Phase::Failed,
            true,
            false,
            vec![exited("a", Role::Main, 0), exited("b", Role::Main, 143)],
        );
        assert_eq!(printed(&status).1, "Completed");

        let mut stopped = pod(
            Phase::Failed,
            true,
            false,
            vec![exited("a", Role::Main, 143)],
        );
        stopped.reason = Some("Stopped".into());
        assert_eq!(printed(&stopped).1, "Error");
    }

    #[test]
    fn a_completed_container_beside_a_running_one_is_running() {
        let status = pod(
            Phase::Running,
            true,
            true,
            vec![exited("a", Role::Main, 0), running("b", Role::Main)],
        );
        assert_eq!(printed(&status), ("1/2".into(), "Running".into(), 0));
        let status = pod(
            Phase::Running,
            true,
            false,
            vec![exited("a", Role::Main, 0), running("b", Role::Main)],
        );
        assert_eq!(printed(&status).1, "NotReady");
    }

    #[test]
    fn the_pod_reason_stands_when_no_container_overrides_it() {
        let mut status = pod(
            Phase::Failed,
            false,
            false,
            vec![
                running("setup", Role::Init),
                waiting("app", Role::Main, "PodInitializing"),
            ],
        );
        status.reason = Some("DeadlineExceeded".into());
        // kubectl: the running init container decides.
        assert_eq!(printed(&status).1, "Init:0/1");
        let mut status = pod(Phase::Failed, true, false, vec![]);
        status.reason = Some("DeadlineExceeded".into());
        assert_eq!(printed(&status).1, "DeadlineExceeded");
    }
}
