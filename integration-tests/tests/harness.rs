//! The harness itself: a test that dies with a running container must still leave nothing on
//! the host once its `Containerd` drops.

use std::collections::HashMap;
use std::path::Path;

use podctl_integration_tests::{
    busybox_image_tar, is_alive, mounts_under, unique_namespace, Containerd,
};
use podctl_runtime::containerd::{ContainerSpec, TaskIo};
use podctl_runtime::image::{self, ImportOptions, DEFAULT_SNAPSHOTTER};

/// A bare runc spec running `args` in the container: just enough for the teardown test.
fn spec(args: &[&str]) -> Vec<u8> {
    let caps = ["CAP_KILL", "CAP_SETUID", "CAP_SETGID"];
    serde_json::to_vec(&serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "noNewPrivileges": true,
        },
        "root": { "path": "rootfs" },
        "hostname": "harness",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
        ],
        "linux": {
            "namespaces": [
                { "type": "pid" }, { "type": "ipc" }, { "type": "uts" },
                { "type": "mount" }, { "type": "network" },
            ],
        },
    }))
    .expect("serializing the spec")
}

fn processes_mentioning(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains(&dir) && is_alive(pid as i32)).then(|| format!("{pid}: {cmd}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_containerd_cleans_up_a_running_container() {
    let images = tempfile::tempdir().unwrap();
    let ctrd = Containerd::start().await;
    let ns = unique_namespace("harness");
    let client = ctrd.client(&ns).await;
    let tar = busybox_image_tar(images.path(), "busybox", false);
    image::import(&client, &tar, &ImportOptions::default())
        .await
        .expect("import");
    let img = image::resolve(&client, "busybox", DEFAULT_SNAPSHOTTER)
        .await
        .expect("resolve");

    let id = "sleeper";
    client
        .create_container(ContainerSpec {
            id,
            image: &img.name,
            spec_json: spec(&["sleep", "1000"]),
            snapshotter: DEFAULT_SNAPSHOTTER,
            snapshot_key: id,
            labels: HashMap::new(),
        })
        .await
        .expect("create container");
    // Only now: an active snapshot that no lease and no container references is fair game
    // for containerd's gc, which an import just scheduled.
    let mounts = client
        .prepare_snapshot(DEFAULT_SNAPSHOTTER, id, &img.chain_id, HashMap::new(), None)
        .await
        .expect("prepare rootfs");
    client
        .create_task(id, mounts, TaskIo::default())
        .await
        .unwrap_or_else(|e| panic!("create task: {e}\n{}", ctrd.log()));
    let pid = client.start_task(id).await.expect("start task");
    assert!(is_alive(pid as i32));

    let dir = ctrd.dir().to_path_buf();
    assert!(
        !processes_mentioning(&dir).is_empty(),
        "containerd and its shim run"
    );
    assert!(!mounts_under(&dir).is_empty(), "the rootfs is mounted");

    // The test "fails" here: no teardown through the API, only the drop.
    drop(client);
    drop(ctrd);

    assert!(!is_alive(pid as i32), "container process {pid} survived");
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
    assert!(
        mounts_under(&dir).is_empty(),
        "mounts left under {}",
        dir.display()
    );
    assert!(!dir.exists(), "{} left", dir.display());
    assert!(
        !Path::new("/run/containerd/runc").join(&ns).exists(),
        "runc state of {ns} left"
    );
}
