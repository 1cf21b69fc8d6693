//! Every replica of a Deployment or ReplicaSet on this host (`podctl run --all-replicas`):
//! the pods run side by side, each with the lifecycle of a lone pod; a stop request
//! reaches them all, and podctl itself failing for one of them stops the others, so that
//! nothing is left half-running.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::jobs::PodRunner;
use crate::lifecycle::{LifecycleError, Observer, StopRequest};
use crate::manifest::RunnablePod;
use crate::status::PodStatus;

/// Runs `pods` side by side through `runner` until each ended; `observer` gives each pod
/// (by name) its observer. Returns their final statuses in the order given.
pub async fn run<R: PodRunner>(
    runner: &R,
    pods: Vec<RunnablePod>,
    observer: impl Fn(&str) -> Arc<dyn Observer>,
    mut stop: watch::Receiver<StopRequest>,
) -> Result<Vec<PodStatus>, R::Error> {
    let (all_tx, all_rx) = watch::channel(*stop.borrow());
    let mut running = JoinSet::new();
    for (i, pod) in pods.into_iter().enumerate() {
        let name = pod.pod.metadata.name.clone().unwrap_or_default();
        let (runner, observer, stop) = (runner.clone(), observer(&name), all_rx.clone());
        running.spawn(async move { (i, runner.run_pod(pod, observer, stop).await) });
    }
    let mut statuses = Vec::new();
    let mut error = None;
    let mut stop_open = true;
    while !running.is_empty() {
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { break };
                let result = match joined {
                    Ok((i, result)) => result.map(|s| (i, s)),
                    Err(e) => Err(LifecycleError::Join(e.to_string()).into()),
                };
                match result {
                    Ok(done) => statuses.push(done),
                    Err(e) => {
                        error.get_or_insert(e);
                        StopRequest::Graceful.raise(&all_tx);
                    }
                }
            }
            changed = stop.changed(), if stop_open => {
                stop_open = changed.is_ok();
                let request = *stop.borrow();
                request.raise(&all_tx);
            }
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    statuses.sort_by_key(|(i, _)| *i);
    Ok(statuses.into_iter().map(|(_, s)| s).collect())
}
