//! `podctl ps`: the pods of this host, as `kubectl get pods` prints them.

use std::time::SystemTime;

use podctl_runtime::pods::{self, PodRecord};

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

/// kubectl's RESTARTS column: the count, and how long ago the last restart's run ended
/// (`3 (2m ago)`).
fn restarts_column(
    status: &podctl_runtime::status::PodStatus,
    restarts: u32,
    now: SystemTime,
) -> String {
    use podctl_runtime::status::ContainerState;
    let last = status
        .all()
        .filter(|c| c.restart_count > 0)
        .filter_map(|c| match &c.last_state {
            Some(ContainerState::Terminated(t)) => {
                t.finished_at.as_deref().and_then(pods::parse_time)
            }
            _ => None,
        })
        .max();
    match last {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", crate::output::age(t, now)),
        _ => restarts.to_string(),
    }
}

/// One line of the table.
fn row(record: &PodRecord, now: SystemTime) -> Vec<String> {
    let (ready, status, restarts) = match &record.status {
        Some(s) => {
            let summary = s.summary();
            // A status that says the pod still runs, with nothing supervising it any more, is
            // stale: podctl died under it. kubectl says Unknown for a pod whose node is lost.
            let printed = if !record.is_running() && !s.phase.is_terminal() {
                "Unknown".to_string()
            } else if record.is_running() && record.dir.join(pods::files::STOP_REQUESTED).exists() {
                // kubectl's word for a pod being deleted: its containers are being stopped.
                "Terminating".to_string()
            } else {
                summary.status
            };
            (
                format!("{}/{}", summary.ready, summary.total),
                printed,
                restarts_column(s, summary.restarts, now),
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

#[cfg(test)]
mod restart_tests {
    use super::*;

    #[test]
    fn restarts_say_when_the_last_one_was() {
        let status: podctl_runtime::status::PodStatus = serde_json::from_value(serde_json::json!({
            "phase": "Running",
            "conditions": [],
            "initContainerStatuses": [],
            "containerStatuses": [{
                "name": "app", "image": "busybox", "ready": true, "restartCount": 2,
                "started": true,
                "state": {"running": {"startedAt": "2026-11-25T10:00:00Z"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "finishedAt": "2026-11-25T10:00:00Z", "containerID": "containerd://x"}}
            }]
        }))
        .unwrap();
        let now = pods::parse_time("2026-11-25T10:02:05Z").unwrap();
        assert_eq!(restarts_column(&status, 2, now), "2 (2m5s ago)");
        assert_eq!(restarts_column(&status, 0, now), "0");
    }
}
