//! The leak check every integration test ends with: what a test leaves in its containerd
//! namespace or on the host beyond its images is a bug in podctl.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use podctl_runtime::containerd::{labels, Client};
use podctl_runtime::image::DEFAULT_SNAPSHOTTER;

/// containerd's snapshot kinds (`Kind` in the snapshots API).
const KIND_COMMITTED: i32 = 3;

/// Everything left behind in `client`'s namespace, and under `podctl_root` on the host:
/// containers, tasks, leases, content ingests, snapshots other than the committed layer chains
/// of the namespace's images (the chains their configs' gc labels keep alive), the pod
/// cgroups of the namespace's pods, and mounts. Empty means clean.
pub async fn leak_check(client: &Client, podctl_root: Option<&Path>) -> Vec<String> {
    let mut leaks = Vec::new();
    let ns = client.namespace().to_string();
    match client.list_containers("").await {
        Ok(c) => leaks.extend(c.into_iter().map(|c| format!("container {} in {ns}", c.id))),
        Err(e) => leaks.push(format!("cannot list containers: {e}")),
    }
    match client.list_tasks().await {
        Ok(t) => leaks.extend(t.into_iter().map(|t| format!("task of {t} in {ns}"))),
        Err(e) => leaks.push(format!("cannot list tasks: {e}")),
    }
    match client.list_leases().await {
        Ok(l) => leaks.extend(l.into_iter().map(|l| format!("lease {l} in {ns}"))),
        Err(e) => leaks.push(format!("cannot list leases: {e}")),
    }
    match client.list_ingests().await {
        Ok(i) => leaks.extend(i.into_iter().map(|i| format!("content ingest {i} in {ns}"))),
        Err(e) => leaks.push(format!("cannot list content ingests: {e}")),
    }
    match image_snapshot_leaks(client).await {
        Ok(l) => leaks.extend(l),
        Err(e) => leaks.push(e),
    }
    leaks.extend(pod_cgroup_leaks(&ns));
    if let Some(root) = podctl_root {
        leaks.extend(
            crate::daemon::mounts_under(root)
                .into_iter()
                .map(|m| format!("mount {} on the host", m.display())),
        );
    }
    leaks
}

/// The pod cgroups of `namespace`'s pods left on the host: `/sys/fs/cgroup/<hierarchy>/podctl/
/// <namespace>.<pod>.<run>` (cgroup v1) or `/sys/fs/cgroup/podctl/<namespace>.<pod>.<run>`
/// (v2). A pod's cgroup is named after its run's shim group, which starts with the namespace.
pub fn pod_cgroup_leaks(namespace: &str) -> Vec<String> {
    let prefix = podctl_runtime::cgroups::pod_cgroup_name(&format!("{namespace}."));
    let root = Path::new("/sys/fs/cgroup");
    let mut parents: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.path().join("podctl"))
        .collect();
    parents.push(root.join("podctl"));
    let mut leaks = Vec::new();
    for parent in parents {
        for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                leaks.push(format!("pod cgroup {} on the host", entry.path().display()));
            }
        }
    }
    leaks.sort();
    leaks.dedup();
    leaks
}

/// Panics listing every leak [`leak_check`] finds.
pub async fn assert_no_leaks(client: &Client, podctl_root: Option<&Path>) {
    let leaks = leak_check(client, podctl_root).await;
    assert!(
        leaks.is_empty(),
        "leaked after the test:\n  {}",
        leaks.join("\n  ")
    );
}

/// Snapshots that are not committed layers of an image's chain.
async fn image_snapshot_leaks(client: &Client) -> Result<Vec<String>, String> {
    let snapshots = client
        .list_snapshots(DEFAULT_SNAPSHOTTER)
        .await
        .map_err(|e| format!("cannot list snapshots: {e}"))?;
    let blobs = client
        .list_blobs()
        .await
        .map_err(|e| format!("cannot list content: {e}"))?;
    let gc_label = format!("{}.{DEFAULT_SNAPSHOTTER}", labels::GC_REF_SNAPSHOT);
    let parents: HashMap<&str, &str> = snapshots
        .iter()
        .map(|s| (s.name.as_str(), s.parent.as_str()))
        .collect();
    let mut kept = HashSet::new();
    for top in blobs.iter().filter_map(|b| b.labels.get(&gc_label)) {
        let mut name = top.as_str();
        while !name.is_empty() && kept.insert(name.to_string()) {
            name = parents.get(name).copied().unwrap_or("");
        }
    }
    Ok(snapshots
        .iter()
        .filter(|s| s.kind != KIND_COMMITTED || !kept.contains(&s.name))
        .map(|s| {
            format!(
                "snapshot {} (kind {}, parent {:?}) in {}",
                s.name,
                s.kind,
                s.parent,
                client.namespace()
            )
        })
        .collect())
}
