//! Every replica of a Deployment or ReplicaSet on this host (`podctl run --all-replicas`):
//! the pods run side by side, each with the lifecycle of a lone pod; a stop request
//! reaches them all, and podctl itself failing for one of them stops the others, so that
//! nothing is left half-running.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::containerd::Client;
use crate::lifecycle::{self, LifecycleError, Observer, RunOptions, StopRequest};
use crate::manifest::RunnablePod;
use crate::status::PodStatus;

/// Runs `pods` side by side until each ended; `observer` gives each pod (by name) its
/// observer. Returns their final statuses in the order given.
pub async fn run(
    client: &Client,
    pods: Vec<RunnablePod>,
    opts: &RunOptions,
    observer: impl Fn(&str) -> Arc<dyn Observer>,
    mut stop: watch::Receiver<StopRequest>,
) -> Result<Vec<PodStatus>, LifecycleError> {
    let (all_tx, all_rx) = watch::channel(*stop.borrow());
    let mut running = JoinSet::new();
    for (i, pod) in pods.into_iter().enumerate() {
        let name = pod.pod.metadata.name.clone().unwrap_or_default();
        let (client, opts, observer, stop) = (
            client.clone(),
            opts.clone(),
            observer(&name),
            all_rx.clone(),
        );
        running
            .spawn(async move { (i, lifecycle::run(&client, pod, &opts, observer, stop).await) });
    }
    let mut statuses = Vec::new();
    let mut error = None;
    let mut stop_open = true;
    while !running.is_empty() {
        tokio::select! {
            joined = running.join_next() => {
                let result = match joined {
                    Some(Ok((i, result))) => result.map(|s| (i, s)),
                    Some(Err(e)) => Err(LifecycleError::Join(e.to_string())),
                    None => continue,
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
