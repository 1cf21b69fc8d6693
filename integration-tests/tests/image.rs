//! `podctl image` against a real containerd: import (OCI layout, gzip, docker save), names,
//! idempotence, list, resolve, remove, and failures that must leave nothing behind.

use std::path::Path;
use std::time::Instant;

use podctl_integration_tests::{
    assert_no_leaks, busybox_image_tar, docker_save_tar, oci_image_tar, unique_namespace,
    Containerd, OciTarOptions,
};
use podctl_runtime::containerd::{labels, Client};
use podctl_runtime::image::{self, ImageError, ImportOptions, DEFAULT_SNAPSHOTTER};

const BUSYBOX: &str = "docker.io/library/busybox:latest";

struct Env {
    // Field order: the client's channel closes before containerd stops.
    client: Client,
    ctrd: Containerd,
    dir: tempfile::TempDir,
}

async fn env(name: &str) -> Env {
    let ctrd = Containerd::start().await;
    let client = ctrd.client(&unique_namespace(name)).await;
    Env {
        client,
        ctrd,
        dir: tempfile::tempdir().expect("temp dir for test images"),
    }
}

fn opts(name: Option<&str>) -> ImportOptions {
    ImportOptions {
        name: name.map(str::to_string),
        snapshotter: DEFAULT_SNAPSHOTTER.to_string(),
        ..Default::default()
    }
}

async fn import(
    env: &Env,
    tar: &Path,
    name: Option<&str>,
) -> Result<Vec<image::ImportedImage>, ImageError> {
    image::import(&env.client, tar, &opts(name)).await
}

async fn snapshot_names(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_snapshots(DEFAULT_SNAPSHOTTER)
        .await
        .expect("listing snapshots")
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.sort();
    names
}

/// Nothing at all in the namespace: no image, blob, snapshot, lease or ingest.
async fn assert_empty(client: &Client) {
    assert!(
        client.list_images().await.unwrap().is_empty(),
        "images left"
    );
    let blobs: Vec<String> = client
        .list_blobs()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.digest)
        .collect();
    assert!(blobs.is_empty(), "content left: {blobs:?}");
    assert!(snapshot_names(client).await.is_empty(), "snapshots left");
    assert!(
        client.list_leases().await.unwrap().is_empty(),
        "leases left"
    );
    assert!(
        client.list_ingests().await.unwrap().is_empty(),
        "ingests left"
    );
}

/// Checks the resolved busybox image: config from the archive, chain committed.
async fn assert_resolves(client: &Client, name: &str) -> String {
    let resolved = image::resolve(client, name, DEFAULT_SNAPSHOTTER)
        .await
        .unwrap_or_else(|e| panic!("resolve {name}: {e}"));
    assert_eq!(resolved.name, name);
    let cmd = resolved
        .config
        .config()
        .as_ref()
        .and_then(|c| c.cmd().clone());
    assert_eq!(cmd, Some(vec!["sh".to_string()]));
    assert_eq!(resolved.config.rootfs().diff_ids().len(), 1);
    // One layer: the chain id is the diff id.
    assert_eq!(resolved.chain_id, resolved.config.rootfs().diff_ids()[0]);
    let snap = client
        .stat_snapshot(DEFAULT_SNAPSHOTTER, &resolved.chain_id)
        .await
        .unwrap()
        .expect("the image's snapshot exists");
    assert_eq!(snap.kind, 3, "committed");
    resolved.chain_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_oci_layout_then_list_and_resolve() {
    let env = env("oci").await;
    eprintln!("containerd answered after {:?}", env.ctrd.startup_time());
    let tar = busybox_image_tar(env.dir.path(), "busybox", false);

    let started = Instant::now();
    let imported = import(&env, &tar, None).await.expect("import");
    eprintln!("imported the busybox OCI layout in {:?}", started.elapsed());

    assert_eq!(imported.len(), 1);
    let img = &imported[0];
    assert_eq!(img.name, BUSYBOX, "annotation name normalized");
    assert_eq!(img.layers, 1);
    assert!(img.digest.starts_with("sha256:"));
    assert!(img.size > 1_000_000, "busybox is bigger than {}", img.size);

    let listed = image::list(&env.client).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, BUSYBOX);
    assert_eq!(listed[0].digest, img.digest);
    assert_eq!(listed[0].size, img.size);
    let created = listed[0].created.expect("config has created");
    assert_eq!(
        created
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        1_704_067_200
    );

    let chain = assert_resolves(&env.client, BUSYBOX).await;
    // The config keeps the chain alive once the import lease is gone.
    let gc_label = format!("{}.{DEFAULT_SNAPSHOTTER}", labels::GC_REF_SNAPSHOT);
    let blobs = env.client.list_blobs().await.unwrap();
    assert_eq!(blobs.len(), 3, "layer, config, manifest");
    assert!(blobs
        .iter()
        .any(|b| b.labels.get(&gc_label) == Some(&chain)));
    assert!(blobs
        .iter()
        .any(|b| b.labels.contains_key("containerd.io/gc.ref.content.l.0")));
    assert_no_leaks(&env.client, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_gzip_layer_and_gzip_archive() {
    let env = env("gzip").await;
    let tar = oci_image_tar(
        env.dir.path(),
        &OciTarOptions {
            gzip: true,
            gzip_archive: true,
            containerd_name: Some("docker.io/library/busybox:gz".into()),
            ..Default::default()
        },
    );
    let imported = import(&env, &tar, None).await.expect("import");
    assert_eq!(imported[0].name, "docker.io/library/busybox:gz");
    let chain = assert_resolves(&env.client, "docker.io/library/busybox:gz").await;

    // The same image with an uncompressed layer unpacks to the same chain: one snapshot.
    let plain = busybox_image_tar(env.dir.path(), BUSYBOX, false);
    import(&env, &plain, None).await.expect("import plain");
    assert_eq!(assert_resolves(&env.client, BUSYBOX).await, chain);
    assert_eq!(snapshot_names(&env.client).await, vec![chain]);
    assert_no_leaks(&env.client, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_docker_save_archive() {
    let env = env("docker").await;
    let tar = docker_save_tar(env.dir.path(), "busybox:1.36");
    let imported = import(&env, &tar, None).await.expect("import");
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].name, "docker.io/library/busybox:1.36");
    assert_eq!(imported[0].layers, 1);

    let record = env
        .client
        .get_image("docker.io/library/busybox:1.36")
        .await
        .unwrap()
        .expect("record");
    let target = record.target.expect("target");
    assert_eq!(
        target.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(target.digest, imported[0].digest);
    let manifest: serde_json::Value =
        serde_json::from_slice(&env.client.read_blob(&target.digest).await.unwrap()).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar"
    );
    assert_resolves(&env.client, "docker.io/library/busybox:1.36").await;
    assert_no_leaks(&env.client, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_override_replaces_archive_names() {
    let env = env("name").await;
    let tar = busybox_image_tar(env.dir.path(), BUSYBOX, false);
    let imported = import(&env, &tar, Some("localhost:5000/tools/bb:v1"))
        .await
        .expect("import");
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].name, "localhost:5000/tools/bb:v1");
    let names: Vec<String> = image::list(&env.client)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, vec!["localhost:5000/tools/bb:v1"]);

    // --name is normalized too.
    let imported = import(&env, &tar, Some("bb")).await.expect("import");
    assert_eq!(imported[0].name, "docker.io/library/bb:latest");
    assert_resolves(&env.client, "docker.io/library/bb:latest").await;
    assert_no_leaks(&env.client, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_names_must_be_usable() {
    let env = env("names").await;
    // Only a tag: a repository is needed.
    let tag_only = oci_image_tar(
        env.dir.path(),
        &OciTarOptions {
            ref_name: Some("1.0".into()),
            ..Default::default()
        },
    );
    let err = import(&env, &tag_only, None).await.unwrap_err();
    assert!(matches!(err, ImageError::Unnamed { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("--name") && msg.contains("\"1.0\""), "{msg}");
    // ...which --name gives.
    let imported = import(&env, &tag_only, Some("app:1.0"))
        .await
        .expect("import");
    assert_eq!(imported[0].name, "docker.io/library/app:1.0");

    // A full reference in ref.name is used as the name.
    let full_ref = oci_image_tar(
        env.dir.path(),
        &OciTarOptions {
            ref_name: Some("quay.io/team/tool:2".into()),
            ..Default::default()
        },
    );
    let imported = import(&env, &full_ref, None).await.expect("import");
    assert_eq!(imported[0].name, "quay.io/team/tool:2");

    // No name at all.
    let unnamed = oci_image_tar(env.dir.path(), &OciTarOptions::default());
    let err = import(&env, &unnamed, None).await.unwrap_err();
    assert!(err.to_string().contains("--name"), "{err}");

    // An invalid name names itself.
    let upper = busybox_image_tar(env.dir.path(), "BusyBox", false);
    let err = import(&env, &upper, None).await.unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        chain.contains("\"BusyBox\"") && chain.contains("lowercase"),
        "{chain}"
    );

    let names: Vec<String> = image::list(&env.client)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(
        names,
        vec!["docker.io/library/app:1.0", "quay.io/team/tool:2"]
    );
    assert_no_leaks(&env.client, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reimport_is_idempotent() {
    let env = env("reimport").await;
    let tar = busybox_image_tar(env.dir.path(), BUSYBOX, true);
    let first = import(&env, &tar, None).await.expect("first import");
    let blobs_before = env.client.list_blobs().await.unwrap().len();
    let snaps_before = snapshot_names(&env.client).await;

    let started = Instant::now();
    let second = import(&env, &tar, None).await.expect("second import");
    eprintln!("re-import took {:?}", started.elapsed());
    assert_eq!(first, second);
    assert_eq!(env.client.list_blobs().await.unwrap().len(), blobs_before);
    assert_eq!(snapshot_names(&env.client).await, snaps_before);
    assert_eq!(image::list(&env.client).await.unwrap().len(), 1);
    assert_resolves(&env.client, BUSYBOX).await;
    assert_no_leaks(&env.client, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_collects_content_and_snapshots() {
    let env = env("remove").await;
    let tar = busybox_image_tar(env.dir.path(), BUSYBOX, false);
    import(&env, &tar, None).await.expect("import");
    assert_eq!(snapshot_names(&env.client).await.len(), 1);

    // A familiar name is normalized before the lookup.
    image::remove(&env.client, "busybox").await.expect("remove");
    assert!(image::list(&env.client).await.unwrap().is_empty());
    assert_empty(&env.client).await;

    let err = image::remove(&env.client, "busybox").await.unwrap_err();
    assert!(
        matches!(&err, ImageError::NotFound { reference, .. } if reference == BUSYBOX),
        "{err:?}"
    );
    assert_no_leaks(&env.client, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_layers_survive_removing_one_image() {
    let env = env("shared").await;
    let tar = busybox_image_tar(env.dir.path(), BUSYBOX, false);
    import(&env, &tar, None).await.expect("import");
    import(&env, &tar, Some("other:1"))
        .await
        .expect("import other");
    image::remove(&env.client, BUSYBOX).await.expect("remove");
    // The other name still references everything.
    assert_resolves(&env.client, "docker.io/library/other:1").await;
    assert_eq!(env.client.list_blobs().await.unwrap().len(), 3);
    image::remove(&env.client, "other:1")
        .await
        .expect("remove other");
    assert_empty(&env.client).await;
    assert_no_leaks(&env.client, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_blob_is_refused_and_records_nothing() {
    let env = env("corrupt").await;
    let tar = oci_image_tar(
        env.dir.path(),
        &OciTarOptions {
            corrupt_layer: true,
            containerd_name: Some(BUSYBOX.into()),
            ..Default::default()
        },
    );
    let err = import(&env, &tar, None).await.unwrap_err();
    let ImageError::CorruptBlob { digest, what, .. } = &err else {
        panic!("expected CorruptBlob, got {err:?}");
    };
    assert_eq!(*what, "layer");
    let msg = err.to_string();
    assert!(
        msg.contains(digest.as_str()) && msg.contains("corrupt"),
        "{msg}"
    );
    assert_empty(&env.client).await;
    assert_no_leaks(&env.client, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_diff_id_fails_the_unpack_and_unwinds() {
    let env = env("diffid").await;
    let tar = oci_image_tar(
        env.dir.path(),
        &OciTarOptions {
            wrong_diff_id: true,
            gzip: true,
            containerd_name: Some(BUSYBOX.into()),
            ..Default::default()
        },
    );
    let err = import(&env, &tar, None).await.unwrap_err();
    assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("layer sha256:"), "{err}");
    // Blobs written under the lease are collected with it.
    assert_empty(&env.client).await;
    assert_no_leaks(&env.client, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_is_a_helpful_not_found() {
    let env = env("missing").await;
    let err = image::resolve(&env.client, "busybox", DEFAULT_SNAPSHOTTER)
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "image \"{BUSYBOX}\" not found in containerd namespace \"{}\": pull it with \
             `podctl image pull {BUSYBOX}` or import it with `podctl image import FILE.tar`",
            env.client.namespace()
        )
    );
    assert_no_leaks(&env.client, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_unpacks_an_image_whose_snapshots_are_gone() {
    let env = env("unpack").await;
    let tar = busybox_image_tar(env.dir.path(), BUSYBOX, true);
    import(&env, &tar, None).await.expect("import");
    let chain = snapshot_names(&env.client).await.remove(0);
    env.client
        .remove_snapshot(DEFAULT_SNAPSHOTTER, &chain)
        .await
        .expect("removing the snapshot");
    assert!(snapshot_names(&env.client).await.is_empty());

    assert_eq!(assert_resolves(&env.client, BUSYBOX).await, chain);
    assert_no_leaks(&env.client, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_an_image_archive() {
    let env = env("notimage").await;
    let tar = env.dir.path().join("empty.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "hello.txt", &b"hi"[..]).unwrap();
        b.finish().unwrap();
    }
    let err = import(&env, &tar, None).await.unwrap_err();
    assert!(matches!(err, ImageError::NotAnImage { .. }), "{err:?}");
    let err = import(&env, &env.dir.path().join("nope.tar"), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope.tar"), "{err}");
    assert_empty(&env.client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_platform_layout_picks_the_host() {
    let env = env("platform").await;
    let multi = oci_image_tar(
        env.dir.path(),
        &OciTarOptions {
            containerd_name: Some(BUSYBOX.into()),
            extra_platforms: vec!["linux/s390x".into(), "windows/amd64".into()],
            ..Default::default()
        },
    );
    let imported = import(&env, &multi, None).await.expect("import");
    assert_eq!(imported.len(), 1);
    assert_resolves(&env.client, BUSYBOX).await;

    let foreign = oci_image_tar(
        env.dir.path(),
        &OciTarOptions {
            containerd_name: Some("docker.io/library/foreign:1".into()),
            extra_platforms: vec!["linux/s390x".into(), "linux/riscv64".into()],
            omit_host: true,
            ..Default::default()
        },
    );
    let err = import(&env, &foreign, None).await.unwrap_err();
    assert!(
        matches!(err, ImageError::NoMatchingPlatform { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("linux/s390x") && msg.contains("linux/riscv64"),
        "{msg}"
    );
    assert_eq!(image::list(&env.client).await.unwrap().len(), 1);
    assert_no_leaks(&env.client, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_import_records_nothing() {
    let env = env("cancel").await;
    let tar = busybox_image_tar(env.dir.path(), BUSYBOX, false);
    let opts = opts(None);
    opts.cancel.cancel();
    let err = image::import(&env.client, &tar, &opts).await.unwrap_err();
    assert!(
        matches!(err, ImageError::Cancelled { .. }),
        "expected Cancelled, got {err:?}"
    );
    assert_empty(&env.client).await;
    assert_no_leaks(&env.client, None).await;
}
