//! `podctl stop`: stops running pods as Ctrl-C on their `podctl run` would.

use std::time::Duration;

use podctl_runtime::pods;
use tokio::task::JoinSet;

use crate::Global;

/// How long past a pod's grace period `stop` waits by default: the sidecars' own stop and
/// the teardown after the last container ended.
const WAIT_BEYOND_GRACE: Duration = Duration::from_secs(10);

/// Arguments of `podctl stop`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each pod's `podctl run` is asked to stop (SIGTERM): every main container runs its preStop \
hook, then gets its stop signal, then SIGKILL when terminationGracePeriodSeconds is over; \
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
                eprintln!("podctl: {}", podctl_runtime::describe(&e));
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
    root: &std::path::Path,
    namespace: &str,
    pod: &str,
    timeout: Option<Duration>,
) -> Result<Stopped, pods::PodsError> {
    let wait = match timeout {
        Some(t) => t,
        None => pods::get(root, namespace, pod)?.grace_period() + WAIT_BEYOND_GRACE,
    };
    let ended = pods::request_stop(root, namespace, pod, wait).await?;
    Ok(if ended {
        Stopped::Ended
    } else if wait.is_zero() {
        Stopped::Asked
    } else {
        Stopped::StillRunning(wait)
    })
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
}
