//! `podctl ps`: the pods of this host, as `kubectl get pods` prints them.

use std::time::SystemTime;

use podctl_runtime::pods::{self, PodRecord};
use podctl_runtime::status::{ContainerState, Phase, PodStatus, Role};

use crate::output::{print_data, table};
use crate::{Format, Global};

/// Arguments of `podctl ps`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also list pods no `podctl run` supervises any more (finished, or whose podctl died);
    /// they stay until `podctl rm`
    #[arg(short, long)]
    all: bool,
    /// table: NAME, READY, STATUS, RESTARTS and AGE as `kubectl get pods` prints them
    /// (RESTARTS without kubectl's "(5m ago)");
    /// json or yaml: a v1 List of Pod objects with their status, as `kubectl get pods -o json`
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

pub async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let records: Vec<PodRecord> = pods::list(&g.root, &g.namespace)?
        .into_iter()
        .filter(|r| args.all || r.is_running())
        .collect();
    match args.output {
        Format::Table => {
            if records.is_empty() {
                eprintln!("No pods found in namespace {:?}.", g.namespace);
                return Ok(0);
            }
            let now = SystemTime::now();
            let rows: Vec<Vec<String>> = records.iter().map(|r| row(r, now)).collect();
            print!(
                "{}",
                table(&["NAME", "READY", "STATUS", "RESTARTS", "AGE"], &rows)
            );
        }
        f => {
            let items: Vec<serde_json::Value> = records
                .iter()
                .map(|r| r.to_kubernetes(&g.namespace))
                .collect();
            print_data(
                f,
                &serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "metadata": {"resourceVersion": ""},
                    "items": items,
                }),
            )?;
        }
    }
    Ok(0)
}

/// One line of the table.
fn row(record: &PodRecord, now: SystemTime) -> Vec<String> {
    let (ready, status, restarts) = match &record.status {
        Some(s) => {
            let summary = summarize(s);
            // A status that says the pod still runs, with nothing supervising it any more, is
            // stale: podctl died under it. kubectl says Unknown for a pod whose node is lost.
            let printed = if !record.is_running() && !s.phase.is_terminal() {
                "Unknown".to_string()
            } else {
                summary.status
            };
            (
                format!("{}/{}", summary.ready, summary.total),
                printed,
                summary.restarts.to_string(),
            )
        }
        // Recorded, but no status written yet (the pod is being set up) or ever (podctl died
        // while setting it up).
        None => (
            {
                // kubectl counts main containers and sidecars.
                let names = podctl_runtime::pods::ContainerNames::of_record(record);
                format!("0/{}", names.main.len() + names.sidecars.len())
            },
            if record.is_running() {
                "Pending"
            } else {
                "Unknown"
            }
            .to_string(),
            "0".to_string(),
        ),
    };
    let age = record
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_deref())
        .and_then(pods::parse_time)
        .map_or_else(|| "<unknown>".to_string(), |t| crate::output::age(t, now));
    vec![record.name.clone(), ready, status, restarts, age]
}

/// What `kubectl get pods` shows of a pod's status.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    /// Running and ready main containers, plus started and ready sidecars.
    ready: usize,
    /// Main containers and sidecars.
    total: usize,
    /// The STATUS column.
    status: String,
    /// The RESTARTS column (without "(5s ago)").
    restarts: u32,
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
        .unwrap_or_else(|| phase_name(status.phase).to_string());

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

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Pending",
        Phase::Running => "Running",
        Phase::Succeeded => "Succeeded",
        Phase::Failed => "Failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podctl_runtime::status::{Condition, ContainerStatus, Running, Terminated};

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
            init_container_statuses: init,
            container_statuses: main,
        }
    }

    fn printed(status: &PodStatus) -> (String, String, u32) {
        let s = summarize(status);
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
