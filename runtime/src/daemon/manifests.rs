//! The manifests dir (static pods), as the kubelet's `staticPodPath`: a pod file added is
//! started, a changed file replaces its pod (the old one stopped gracefully and removed
//! first), a removed file stops and removes its pod. Invalid files are reported and
//! skipped; a pod that cannot be started (a missing image) is tried again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use super::supervise::{source_of, Daemon, Source};
use crate::pods;
use crate::staticpods::{Change, Watcher};

/// How often the dir is read.
const POLL: Duration = Duration::from_secs(1);
/// How long a pod that could not be started waits before it is tried again.
const RETRY: Duration = Duration::from_secs(10);
/// How long past its grace period a replaced or removed pod is waited for.
const STOP_SLACK: Duration = Duration::from_secs(10);

/// A static pod that could not be started yet.
struct Pending {
    file: PathBuf,
    pod: Box<Pod>,
    hash: String,
    next: Instant,
}

/// Follows `dir` for as long as the daemon runs.
pub(crate) async fn watch(daemon: Arc<Daemon>, dir: PathBuf) {
    tracing::info!(dir = %dir.display(), "following the manifests dir");
    let mut watcher = Watcher::new(dir, daemon.static_pods());
    let mut pending: HashMap<String, Pending> = HashMap::new();
    loop {
        for change in watcher.poll() {
            apply(&daemon, change, &mut pending).await;
        }
        let now = Instant::now();
        let due: Vec<String> = pending
            .iter()
            .filter(|(_, p)| p.next <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            if let Some(p) = pending.remove(&name) {
                start(&daemon, p.file, p.pod, p.hash, &mut pending).await;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn apply(daemon: &Arc<Daemon>, change: Change, pending: &mut HashMap<String, Pending>) {
    match change {
        Change::Start { file, pod, hash } => start(daemon, file, pod, hash, pending).await,
        Change::Replace { file, pod, hash } => {
            let name = pod.metadata.name.clone().unwrap_or_default();
            pending.remove(&name);
            tracing::info!(pod = %name, file = %file.display(), "manifest changed: replacing the pod");
            if remove(daemon, &name).await {
                start(daemon, file, pod, hash, pending).await;
            }
        }
        Change::Remove { name } => {
            pending.remove(&name);
            tracing::info!(pod = %name, "manifest removed: stopping and removing the pod");
            remove(daemon, &name).await;
        }
        Change::Invalid { file, error } => {
            tracing::error!(file = %file.display(), error = %error, "invalid manifest skipped");
        }
    }
}

async fn start(
    daemon: &Arc<Daemon>,
    file: PathBuf,
    pod: Box<Pod>,
    hash: String,
    pending: &mut HashMap<String, Pending>,
) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    // A pod of that name that did not come from this dir is not the dir's to replace.
    if let Ok(record) = pods::get(daemon.root(), daemon.namespace(), &name) {
        if !matches!(
            record.pod.as_ref().and_then(source_of),
            Some(Source::File { .. })
        ) {
            tracing::error!(pod = %name, file = %file.display(), "a pod of that name exists that is not from the manifests dir; skipped");
            return;
        }
        // A static pod of an earlier file version the daemon did not see go.
        if !remove(daemon, &name).await {
            return;
        }
    }
    let source = Source::File { hash: hash.clone() };
    match daemon.run((*pod).clone(), source).await {
        Ok(_) => tracing::info!(pod = %name, file = %file.display(), "static pod started"),
        Err(e) => {
            tracing::error!(pod = %name, file = %file.display(), error = %crate::describe(&e), "cannot start the static pod; trying again later");
            pending.insert(
                name,
                Pending {
                    file,
                    pod,
                    hash,
                    next: Instant::now() + RETRY,
                },
            );
        }
    }
}

/// Stops a static pod gracefully and removes it; returns whether it is gone.
async fn remove(daemon: &Arc<Daemon>, name: &str) -> bool {
    if daemon.supervises(name) {
        let grace = pods::get(daemon.root(), daemon.namespace(), name)
            .map(|r| r.grace_period())
            .unwrap_or_default();
        match daemon.stop(name, false, grace + STOP_SLACK).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(pod = %name, "did not stop within its grace period; killing");
            }
            Err(e) => tracing::warn!(pod = %name, error = %crate::describe(&e), "stopping"),
        }
    }
    match daemon.remove(name, true).await {
        Ok(()) => true,
        Err(super::SuperviseError::Lifecycle(crate::lifecycle::LifecycleError::PodNotFound {
            ..
        })) => true,
        Err(e) => {
            tracing::error!(pod = %name, error = %crate::describe(&e), "cannot remove the pod");
            false
        }
    }
}
