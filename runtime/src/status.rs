//! The outcome of a pod, shaped like Kubernetes' pod status so scripts written against
//! `kubectl get pod -o json` read the same field names (`phase`, `initContainerStatuses`,
//! `containerStatuses`, `state.terminated.exitCode`).

use serde::Serialize;

/// Kubernetes' pod phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// Whether a container is an init container or a main (app) container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Init,
    Main,
}

/// A terminated container, as Kubernetes reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// A container that never ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    /// `PodInitializing` for containers held back by a failed or interrupted init.
    pub reason: String,
}

/// Exactly one of Kubernetes' container states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerState {
    Waiting(Waiting),
    Terminated(Terminated),
}

/// One container's final status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub image: String,
    #[serde(skip)]
    pub role: Role,
    pub state: ContainerState,
    pub restart_count: u32,
}

impl ContainerStatus {
    /// The exit code when the container ran to an end.
    pub fn exit_code(&self) -> Option<i32> {
        match &self.state {
            ContainerState::Terminated(t) => Some(t.exit_code),
            ContainerState::Waiting(_) => None,
        }
    }
}

/// The final status of a pod run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(skip)]
    pub name: String,
    pub phase: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub init_container_statuses: Vec<ContainerStatus>,
    pub container_statuses: Vec<ContainerStatus>,
}

impl PodStatus {
    /// The exit code `podctl run` reports: the first non-zero exit code of the main
    /// containers, else the failed init container's, else 0 when the pod succeeded.
    /// A pod that failed without any container exit code (e.g. stopped before its main
    /// containers ran) reports 1.
    pub fn exit_code(&self) -> i32 {
        let first_failure = |list: &[ContainerStatus]| {
            list.iter()
                .filter_map(ContainerStatus::exit_code)
                .find(|c| *c != 0)
        };
        if let Some(code) = first_failure(&self.container_statuses) {
            return code;
        }
        if let Some(code) = first_failure(&self.init_container_statuses) {
            return code;
        }
        match self.phase {
            Phase::Succeeded => 0,
            _ => 1,
        }
    }

    /// Every container, init containers first, in spec order.
    pub fn all(&self) -> impl Iterator<Item = &ContainerStatus> {
        self.init_container_statuses
            .iter()
            .chain(&self.container_statuses)
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

    fn terminated(name: &str, role: Role, code: i32) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            image: "busybox".into(),
            role,
            state: ContainerState::Terminated(Terminated {
                exit_code: code,
                reason: if code == 0 { "Completed" } else { "Error" }.into(),
                message: None,
                started_at: None,
                finished_at: None,
                container_id: String::new(),
            }),
            restart_count: 0,
        }
    }

    fn waiting(name: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            image: "busybox".into(),
            role: Role::Main,
            state: ContainerState::Waiting(Waiting {
                reason: "PodInitializing".into(),
            }),
            restart_count: 0,
        }
    }

    fn pod(phase: Phase, init: Vec<ContainerStatus>, main: Vec<ContainerStatus>) -> PodStatus {
        PodStatus {
            name: "p".into(),
            phase,
            reason: None,
            message: None,
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
            vec![waiting("a")],
        );
        assert_eq!(p.exit_code(), 7);
    }

    #[test]
    fn failure_without_exit_code_is_one() {
        let p = pod(Phase::Failed, vec![], vec![waiting("a")]);
        assert_eq!(p.exit_code(), 1);
        let ok = pod(
            Phase::Succeeded,
            vec![],
            vec![terminated("a", Role::Main, 0)],
        );
        assert_eq!(ok.exit_code(), 0);
    }

    #[test]
    fn serializes_with_kubernetes_field_names() {
        let p = pod(
            Phase::Succeeded,
            vec![terminated("i", Role::Init, 0)],
            vec![],
        );
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["phase"], "Succeeded");
        assert_eq!(
            v["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
        assert_eq!(
            v["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(v["initContainerStatuses"][0]["restartCount"], 0);
    }
}
