//! `podctl stop`: stops running pods as Ctrl-C on their `podctl run` would, or through the
//! API of the daemon that runs them.

use std::path::Path;
use std::time::Duration;

use podctl_proto::{v1, Code};
use podctl_runtime::pods::{self, PodRecord};
use tokio::task::JoinSet;

use crate::Global;

/// How long past a pod's grace period `stop` waits by default: the sidecars' own stop and
/// the teardown after the last container ended.
const WAIT_BEYOND_GRACE: Duration = Duration::from_secs(10);

/// Arguments of `podctl stop`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each pod is stopped by what supervises it: its `podctl run` (asked with SIGTERM), or the \
`podctl daemon` running it (asked through its API; the daemon keeps running). Every main \
container runs its preStop hook, then gets its stop signal, then SIGKILL when terminationGracePeriodSeconds is over; \
sidecars stop after them. The pod stays recorded (`podctl ps -a`) until `podctl rm`, unless \
it was run with --rm. Asking again while a pod stops kills its containers at once.

Prints the name of each pod once it ended. Exit code 1 when a pod is unknown, not running, \
or did not end within the timeout.")]
pub struct Args {
    /// Names of the running pods to stop (stopped together)
    #[arg(required = true)]
    pods: Vec<String>,
    /// How long to wait for each pod to end, such as 30s, 2m or 500ms (default: the pod's
    /// terminationGracePeriodSeconds + 10s); 0 asks without waiting
    #[arg(short, long, value_parser = super::parse_duration)]
    timeout: Option<Duration>,
}

pub async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let mut stops = JoinSet::new();
    for pod in args.pods {
        let (root, namespace, timeout) = (g.root.clone(), g.namespace.clone(), args.timeout);
        stops.spawn(async move {
            let result = stop(&root, &namespace, &pod, timeout).await;
            (pod, result)
        });
    }
    let mut failed = false;
    while let Some(joined) = stops.join_next().await {
        let (pod, result) = joined?;
        match result {
            Ok(Stopped::Ended) => println!("{pod}"),
            Ok(Stopped::Asked) => eprintln!("podctl: pod {pod:?} is stopping"),
            Ok(Stopped::StillRunning(waited)) => {
                eprintln!(
                    "podctl: pod {pod:?} did not end within {}: it is still stopping \
                     (`podctl stop {pod}` again kills its containers at once)",
                    show(waited)
                );
                failed = true;
            }
            Err(e) => {
                eprintln!("podctl: {}", podctl_runtime::describe(e.as_ref()));
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}

/// How a stop went.
enum Stopped {
    Ended,
    /// Asked with a timeout of 0.
    Asked,
    /// Still running after waiting this long.
    StillRunning(Duration),
}

async fn stop(
    root: &Path,
    namespace: &str,
    pod: &str,
    timeout: Option<Duration>,
) -> anyhow::Result<Stopped> {
    let record = pods::get(root, namespace, pod)?;
    let wait = timeout.unwrap_or_else(|| record.grace_period() + WAIT_BEYOND_GRACE);
    let daemon = record.supervisor.as_ref().and_then(|s| s.socket.clone());
    let ended = match daemon {
        // Signalling a daemon would stop the daemon, not the pod.
        Some(socket) => stop_through(&socket, root, namespace, &record, wait).await?,
        None => pods::request_stop(root, namespace, pod, wait).await?,
    };
    Ok(if ended {
        Stopped::Ended
    } else if wait.is_zero() {
        Stopped::Asked
    } else {
        Stopped::StillRunning(wait)
    })
}

/// Asks the daemon on `socket` to stop the pod, waiting at most `wait` (rounded up to whole
/// seconds); returns whether it ended. Asking again while the pod stops kills at once, as a
/// second Ctrl-C on `podctl run` does.
async fn stop_through(
    socket: &Path,
    root: &Path,
    namespace: &str,
    record: &PodRecord,
    wait: Duration,
) -> anyhow::Result<bool> {
    let now = record.dir.join(pods::files::STOP_REQUESTED).exists();
    let mut client = podctl_proto::connect(socket).await?;
    let request = v1::StopRequest {
        name: record.name.clone(),
        wait_seconds: whole_seconds(wait),
        now,
    };
    match client.stop(request).await {
        Ok(answer) => Ok(answer.into_inner().ended),
        // It ended between the look and the request.
        Err(status)
            if status.code() == Code::FailedPrecondition
                && pods::get(root, namespace, &record.name).is_ok_and(|r| !r.is_running()) =>
        {
            Ok(true)
        }
        Err(status) => Err(super::api_error(socket, status)),
    }
}

/// `d` in seconds, rounded up (a wait of 500ms waits 1s, not 0, which would not wait).
fn whole_seconds(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// `40s`, `1.5s`, `250ms`.
fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(
            super::super::parse_duration("40"),
            Ok(Duration::from_secs(40))
        );
        assert_eq!(
            super::super::parse_duration("2m"),
            Ok(Duration::from_secs(120))
        );
        assert_eq!(
            super::super::parse_duration("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert!(super::super::parse_duration("soon").is_err());
        assert!(super::super::parse_duration("5d").is_err());
        assert_eq!(show(Duration::from_secs(40)), "40s");
        assert_eq!(show(Duration::from_millis(250)), "250ms");
        assert_eq!(show(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn waits_are_rounded_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(40)), 40);
        assert_eq!(whole_seconds(Duration::from_millis(40_500)), 41);
        assert_eq!(whole_seconds(Duration::from_secs(u64::MAX)), u32::MAX);
    }
}
