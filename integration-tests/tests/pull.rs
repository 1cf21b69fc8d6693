//! Pulls from a registry on loopback (Debian's `docker-registry`, started per test): by tag and
//! by digest, the pull policies on `podctl run`, an index with the host's platform, basic auth
//! with and without credentials, a corrupt blob, and a registry that goes away mid-pull. Every
//! failure must leave the content store as it was: no record, no blob, no ingest, no lease.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use podctl_integration_tests::{
    assert_success, busybox_image_tar, oci_image_tar, pod, text, Background, Fixture,
    OciTarOptions, Proxy, Registry,
};
use serde_json::Value;

/// A busybox image with `extra` more layers of `size` bytes each, as an OCI layout tarball.
fn layered_tar(dir: &Path, name: &str, extra: usize, size: usize) -> std::path::PathBuf {
    oci_image_tar(
        dir,
        &OciTarOptions {
            containerd_name: Some(name.to_string()),
            ref_name: Some("1".into()),
            extra_layers: vec![size; extra],
            ..Default::default()
        },
    )
}

/// The digests in the fixture's content store.
async fn blobs(f: &Fixture) -> BTreeSet<String> {
    f.client
        .list_blobs()
        .await
        .expect("listing content")
        .into_iter()
        .map(|b| b.digest)
        .collect()
}

/// Names of the image records in the fixture's namespace.
async fn images(f: &Fixture) -> BTreeSet<String> {
    f.client
        .list_images()
        .await
        .expect("listing images")
        .into_iter()
        .map(|i| i.name)
        .collect()
}

/// `podctl args`, which must fail; its stderr.
fn fails(f: &Fixture, args: &[&str], stdin: Option<&str>) -> String {
    let out = f.podctl(args, stdin);
    assert!(
        !out.status.success(),
        "podctl {} succeeded:\n{}",
        args.join(" "),
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// A pull that fails must leave the store exactly as it was.
async fn assert_store_unchanged(
    f: &Fixture,
    blobs_before: &BTreeSet<String>,
    images_before: &BTreeSet<String>,
) {
    assert_eq!(
        &blobs(f).await,
        blobs_before,
        "content left by a failed pull"
    );
    assert_eq!(
        &images(f).await,
        images_before,
        "image record left by a failed pull"
    );
    assert!(
        f.client.list_ingests().await.unwrap().is_empty(),
        "ingest left"
    );
    assert!(
        f.client.list_leases().await.unwrap().is_empty(),
        "lease left"
    );
}

fn pod_with_image(name: &str, image: &str, policy: Option<&str>) -> String {
    let policy = policy
        .map(|p| format!("\n      imagePullPolicy: {p}"))
        .unwrap_or_default();
    pod(
        name,
        &format!(
            "  containers:\n    - name: app\n      image: {image}{policy}\n      command: [\"sh\", \"-c\", \"echo ran from the pulled image\"]\n"
        ),
    )
}

/// The reasons of the events `run --events` printed, in order.
fn event_reasons(out: &std::process::Output) -> Vec<String> {
    text(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("podctl: event "))
        .map(|l| l.split_whitespace().nth(2).unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn pulls_by_tag_and_digest_and_runs_per_pull_policy() {
    let f = Fixture::new("pull-policy").await;
    let mut registry = Registry::start();
    let host = registry.host();
    // busybox's layer is in the store already (the fixture imported it); the second is not.
    let tar = layered_tar(f.root.path(), "busybox", 1, 64 * 1024);
    let digest = registry.push_oci_tar(&tar, "test/busybox:1");
    let by_tag = format!("{host}/test/busybox:1");

    // By tag: progress on stderr (one line per layer, not a terminal), result on stdout.
    let out = f.podctl(&["image", "pull", &by_tag], None);
    assert_success(&out, "image pull by tag");
    let progress = text(&out.stderr);
    assert!(
        progress.contains(&format!("pulling {by_tag} ({digest}")),
        "{progress}"
    );
    assert!(progress.contains("downloaded in"), "{progress}");
    assert!(progress.contains("already present"), "{progress}");
    assert!(
        text(&out.stdout).contains(&format!("pulled {by_tag} ({digest}, 2 layers")),
        "{}",
        text(&out.stdout)
    );
    // Again: nothing is downloaded.
    let out = f.podctl(&["image", "pull", "-o", "json", &by_tag], None);
    assert_success(&out, "second pull");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["downloaded"], 0, "{json}");
    assert_eq!(json["digest"], digest.as_str());
    assert!(text(&out.stderr).contains("already present"));

    // By digest.
    let by_digest = format!("{host}/test/busybox@{digest}");
    let out = f.podctl(&["image", "pull", "--quiet", &by_digest], None);
    assert_success(&out, "image pull by digest");
    assert!(
        text(&out.stderr).is_empty(),
        "--quiet: {}",
        text(&out.stderr)
    );
    assert!(images(&f).await.contains(&by_digest));

    // A pod naming a tag that is not `latest` defaults to IfNotPresent: it runs with the
    // registry gone, and says the image was present.
    registry.stop();
    let out = f.run(&pod_with_image("present", &by_tag, None));
    assert_success(&out, "IfNotPresent with the image present");
    assert!(text(&out.stdout).contains("ran from the pulled image"));
    let out = f.podctl(
        &["run", "--rm", "--events", "-"],
        Some(&pod_with_image("present2", &by_tag, None)),
    );
    assert_success(&out, "IfNotPresent again");
    assert!(
        text(&out.stderr).contains("already present on machine"),
        "{}",
        text(&out.stderr)
    );
    assert!(!event_reasons(&out).contains(&"Pulling".to_string()));

    // Always asks the registry, which is gone: a clear error, exit 125, nothing created.
    let (b, i) = (blobs(&f).await, images(&f).await);
    let out = f.podctl(
        &["run", "--rm", "-"],
        Some(&pod_with_image("always", &by_tag, Some("Always"))),
    );
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("cannot reach registry {host}")),
        "{}",
        text(&out.stderr)
    );
    assert!(!f.pod_dir("always").exists());
    assert_store_unchanged(&f, &b, &i).await;

    // Never with an absent image: the kubelet's error, nothing created.
    let absent = format!("{host}/test/absent:1");
    let stderr = fails(
        &f,
        &["run", "--rm", "-"],
        Some(&pod_with_image("never", &absent, Some("Never"))),
    );
    assert!(
        stderr.contains(&format!(
            "container image \"{absent}\" is not present with pull policy of Never"
        )),
        "{stderr}"
    );
    assert!(!f.pod_dir("never").exists());
    f.finish().await;
}

#[tokio::test]
async fn always_pulls_a_retagged_image_and_a_missing_one_is_pulled_on_run() {
    let f = Fixture::new("pull-always").await;
    let registry = Registry::start();
    let host = registry.host();
    let reference = format!("{host}/test/app:1");
    let first = registry.push_oci_tar(
        &busybox_image_tar(f.root.path(), "busybox:1.35", false),
        "test/app:1",
    );

    // Not present: IfNotPresent pulls it on `run`, with the kubelet's events.
    let out = f.podctl(
        &["run", "--rm", "--events", "-"],
        Some(&pod_with_image("fresh", &reference, None)),
    );
    assert_success(&out, "run pulling a missing image");
    let reasons = event_reasons(&out);
    let pulls: Vec<&String> = reasons.iter().filter(|r| r.starts_with("Pull")).collect();
    assert_eq!(pulls, ["Pulling", "Pulled"], "{reasons:?}");
    assert!(text(&out.stdout).contains("ran from the pulled image"));

    // The tag moves to an image with one more layer: Always finds and runs the new one.
    let second = registry.push_oci_tar(&layered_tar(f.root.path(), "app", 1, 4096), "test/app:1");
    assert_ne!(first, second);
    let out = f.run(&pod_with_image("moved", &reference, Some("Always")));
    assert_success(&out, "run with Always");
    let record = f.client.get_image(&reference).await.unwrap().unwrap();
    assert_eq!(
        record.target.unwrap().digest,
        second,
        "the record follows the tag"
    );
    assert_success(&f.podctl(&["image", "rm", &reference], None), "image rm");
    f.finish().await;
}

#[tokio::test]
async fn an_index_is_resolved_to_the_host_platform_or_refused_naming_the_others() {
    let f = Fixture::new("pull-index").await;
    let registry = Registry::start();
    let host = registry.host();
    let multi = oci_image_tar(
        f.root.path(),
        &OciTarOptions {
            containerd_name: Some("multi:1".into()),
            ref_name: Some("1".into()),
            extra_platforms: vec!["linux/s390x".into(), "windows/amd64".into()],
            platform_index: true,
            ..Default::default()
        },
    );
    let index = registry.push_oci_tar(&multi, "test/multi:1");
    let out = f.podctl(&["image", "pull", &format!("{host}/test/multi:1")], None);
    assert_success(&out, "pull of an index");
    let host_platform = format!(
        "linux/{}",
        if cfg!(target_arch = "x86_64") {
            "amd64"
        } else {
            "arm64"
        }
    );
    assert!(
        text(&out.stderr).contains(&format!("{index} for {host_platform}")),
        "{}",
        text(&out.stderr)
    );
    let record = f
        .client
        .get_image(&format!("{host}/test/multi:1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.target.unwrap().digest,
        index,
        "the record points at the index"
    );

    let foreign = oci_image_tar(
        f.root.path(),
        &OciTarOptions {
            containerd_name: Some("foreign:1".into()),
            ref_name: Some("1".into()),
            extra_platforms: vec!["linux/s390x".into(), "linux/ppc64le".into()],
            omit_host: true,
            platform_index: true,
            ..Default::default()
        },
    );
    registry.push_oci_tar(&foreign, "test/foreign:1");
    let (b, i) = (blobs(&f).await, images(&f).await);
    let stderr = fails(
        &f,
        &["image", "pull", &format!("{host}/test/foreign:1")],
        None,
    );
    assert!(
        stderr.contains(&format!("no manifest for platform {host_platform}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("linux/s390x") && stderr.contains("linux/ppc64le"),
        "{stderr}"
    );
    assert_store_unchanged(&f, &b, &i).await;
    f.finish().await;
}

#[tokio::test]
async fn basic_auth_needs_credentials_from_docker_config_authfile_or_pull_secret() {
    let f = Fixture::new("pull-auth").await;
    let registry = Registry::start_with_auth("alice", "s3cret");
    let host = registry.host();
    registry.push_oci_tar(
        &busybox_image_tar(f.root.path(), "busybox:1.35", false),
        "private/app:1",
    );
    let reference = format!("{host}/private/app:1");
    let (b, i) = (blobs(&f).await, images(&f).await);

    let stderr = fails(&f, &["image", "pull", &reference], None);
    assert!(
        stderr.contains(&format!(
            "registry {host} refused access without credentials"
        )),
        "{stderr}"
    );
    assert_store_unchanged(&f, &b, &i).await;

    let config = |user: &str, password: &str| {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#)
    };
    // A wrong password names the file it came from.
    let wrong = f.root.path().join("wrong.json");
    std::fs::write(&wrong, config("alice", "nope")).unwrap();
    let stderr = fails(
        &f,
        &[
            "image",
            "pull",
            "--authfile",
            wrong.to_str().unwrap(),
            &reference,
        ],
        None,
    );
    assert!(
        stderr.contains(&format!(
            "refused access with the credentials from {}",
            wrong.display()
        )),
        "{stderr}"
    );
    assert_store_unchanged(&f, &b, &i).await;

    // --authfile.
    let right = f.root.path().join("right.json");
    std::fs::write(&right, config("alice", "s3cret")).unwrap();
    assert_success(
        &f.podctl(
            &[
                "image",
                "pull",
                "-q",
                "--authfile",
                right.to_str().unwrap(),
                &reference,
            ],
            None,
        ),
        "pull with --authfile",
    );
    assert_success(&f.podctl(&["image", "rm", &reference], None), "image rm");

    // Docker's config ($DOCKER_CONFIG/config.json), used by `run`.
    std::fs::create_dir_all(f.docker_config_dir()).unwrap();
    std::fs::write(
        f.docker_config_dir().join("config.json"),
        config("alice", "s3cret"),
    )
    .unwrap();
    assert_success(
        &f.run(&pod_with_image("docker-config", &reference, None)),
        "run with Docker's config",
    );
    assert_success(&f.podctl(&["image", "rm", &reference], None), "image rm");
    std::fs::remove_file(f.docker_config_dir().join("config.json")).unwrap();

    // imagePullSecrets: the secret's file in the pull-secrets dir.
    let secrets = f.root.path().join("pull-secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("regcred.json"), config("alice", "s3cret")).unwrap();
    let manifest = pod_with_image("secret", &reference, None).replace(
        "  containers:",
        "  imagePullSecrets:\n    - name: regcred\n  containers:",
    );
    let out = f.run(&manifest);
    assert_success(&out, "run with imagePullSecrets");
    assert!(text(&out.stdout).contains("ran from the pulled image"));
    assert_success(&f.podctl(&["image", "rm", &reference], None), "image rm");
    f.finish().await;
}

#[tokio::test]
async fn a_corrupt_blob_is_refused_and_nothing_is_recorded() {
    let f = Fixture::new("pull-corrupt").await;
    let registry = Registry::start();
    let host = registry.host();
    let tar = layered_tar(f.root.path(), "corrupt", 2, 256 * 1024);
    registry.push_oci_tar(&tar, "test/corrupt:1");
    let reference = format!("{host}/test/corrupt:1");
    // The last layer is one of the extra ones; find its digest from the registry's manifest.
    let out = f.podctl(&["image", "pull", "-o", "json", &reference], None);
    assert_success(&out, "pull before the corruption");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = json["digest"].as_str().unwrap().to_string();
    let manifest: Value =
        serde_json::from_slice(&f.client.read_blob(&digest).await.unwrap()).unwrap();
    let layer = manifest["layers"][2]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_success(&f.podctl(&["image", "rm", &reference], None), "image rm");

    registry.corrupt_blob(&layer);
    let (b, i) = (blobs(&f).await, images(&f).await);
    let stderr = fails(&f, &["image", "pull", &reference], None);
    assert!(
        stderr.contains(&format!(
            "registry {host} served blob {layer} corrupt: its content is sha256:"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was recorded"), "{stderr}");
    assert_store_unchanged(&f, &b, &i).await;
    // `run` fails the same way, before anything of the pod exists.
    let out = f.podctl(
        &["run", "--rm", "-"],
        Some(&pod_with_image("corrupt", &reference, None)),
    );
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("corrupt"),
        "{}",
        text(&out.stderr)
    );
    assert!(!f.pod_dir("corrupt").exists());
    assert_store_unchanged(&f, &b, &i).await;
    f.finish().await;
}

/// Waits until `bytes` went through `proxy` to `podctl` (running in the background): its
/// layers are then part way.
fn wait_for_bytes(proxy: &Proxy, podctl: &mut Background, bytes: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while proxy.bytes_to_clients() < bytes {
        assert!(
            !podctl.exited(),
            "podctl ended early:\n{}",
            podctl.stderr_so_far()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "not {bytes} bytes through the proxy within 20s:\n{}",
            podctl.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `podctl image pull` through `proxy` and waits until `bytes` went through it.
fn pull_under_way(f: &Fixture, proxy: &Proxy, reference: &str, bytes: u64) -> Background {
    let mut pull = f.start(&["--log", "warn", "image", "pull", reference], None);
    wait_for_bytes(proxy, &mut pull, bytes);
    pull
}

#[tokio::test]
async fn a_registry_going_away_mid_pull_fails_cleanly_and_a_dropped_connection_resumes() {
    let f = Fixture::new("pull-away").await;
    let registry = Registry::start();
    let tar = layered_tar(f.root.path(), "slow", 2, 4 << 20);
    let digest = registry.push_oci_tar(&tar, "test/slow:1");

    // Throttled to 2 MiB/s, the two 4 MiB layers take a few seconds: cut the proxy midway.
    let proxy = Proxy::start(&registry.host(), 2 << 20);
    let reference = format!("{}/test/slow:1", proxy.host());
    let (b, i) = (blobs(&f).await, images(&f).await);
    let pull = pull_under_way(&f, &proxy, &reference, 2 << 20);
    proxy.cut();
    let out = pull.wait(Duration::from_secs(60));
    assert!(
        !out.status.success(),
        "the pull survived the registry going away"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("pulling {reference}")), "{stderr}");
    assert!(
        stderr.contains("cannot reach registry") || stderr.contains("downloading blob"),
        "{stderr}"
    );
    assert_store_unchanged(&f, &b, &i).await;

    // A connection dropped once is resumed with a range request and the pull completes.
    let proxy = Proxy::start(&registry.host(), 2 << 20);
    let reference = format!("{}/test/slow:1", proxy.host());
    let pull = pull_under_way(&f, &proxy, &reference, 2 << 20);
    proxy.drop_connections();
    let out = pull.wait(Duration::from_secs(60));
    assert_success(&out, "pull across a dropped connection");
    assert!(
        text(&out.stderr).contains("resuming"),
        "{}",
        text(&out.stderr)
    );
    let record = f.client.get_image(&reference).await.unwrap().unwrap();
    assert_eq!(record.target.unwrap().digest, digest);
    f.finish().await;
}

#[tokio::test]
async fn interrupting_run_while_it_pulls_removes_what_the_pull_wrote() {
    let f = Fixture::new("pull-interrupt").await;
    let registry = Registry::start();
    registry.push_oci_tar(
        &layered_tar(f.root.path(), "slow", 2, 4 << 20),
        "test/slow:1",
    );
    let proxy = Proxy::start(&registry.host(), 1 << 20);
    let reference = format!("{}/test/slow:1", proxy.host());
    let (b, i) = (blobs(&f).await, images(&f).await);
    let mut run = f.start(
        &["run", "--rm", "-"],
        Some(&pod_with_image("interrupted", &reference, None)),
    );
    wait_for_bytes(&proxy, &mut run, 1 << 20);
    run.signal(nix::sys::signal::Signal::SIGINT);
    let out = run.wait(Duration::from_secs(30));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "pull of {reference} interrupted; nothing was recorded"
        )),
        "{stderr}"
    );
    assert!(!f.pod_dir("interrupted").exists());
    assert_store_unchanged(&f, &b, &i).await;
    f.finish().await;
}
