//! PersistentVolumeClaims against a real containerd: a claim given with a pod outlives it and
//! is shared by later pods naming it; `podctl volume ls | inspect | rm` (rm refused while a
//! pod record names the claim); ReadWriteOncePod enforced on this host; a missing claim, or
//! an admission that fails after creating one, leaves nothing. Each test ends with the leak
//! check, which reports claims the test did not remove.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use podctl_integration_tests::{assert_success, lines_of, pod, text, Fixture};
use serde_json::Value;

/// How long a pod of these tests may run before podctl is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(40);

/// A PersistentVolumeClaim document (and its `---`).
fn claim(name: &str, modes: &str, storage: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n  \
         accessModes: [{modes}]\n  resources: {{requests: {{storage: {storage}}}}}\n---\n"
    )
}

/// A pod whose container `main` runs `script` with claim `claim_name` at /data.
fn pod_on_claim(name: &str, claim_name: &str, read_only: bool, script: &str) -> String {
    pod(
        name,
        &format!(
            r#"
  terminationGracePeriodSeconds: 2
  securityContext: {{runAsUser: 1000, fsGroup: 2000}}
  volumes:
    - name: data
      persistentVolumeClaim: {{claimName: {claim_name}, readOnly: {read_only}}}
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", {script:?}]
      volumeMounts:
        - {{name: data, mountPath: /data}}
"#
        ),
    )
}

/// Writes `manifest` to a file of the fixture and runs `podctl run [--rm] FILE`.
fn run_file(f: &Fixture, file: &str, manifest: &str, remove: bool) -> Output {
    let path = f.root.path().join(file);
    std::fs::write(&path, manifest).unwrap();
    let mut args = vec!["run"];
    if remove {
        args.push("--rm");
    }
    args.push(path.to_str().unwrap());
    f.podctl(&args, None)
}

/// `podctl args`, which must succeed; its stdout.
fn podctl_ok(f: &Fixture, args: &[&str]) -> String {
    let out = f.podctl(args, None);
    assert_success(&out, &format!("podctl {}", args.join(" ")));
    text(&out.stdout)
}

/// The claims dir of the fixture's namespace.
fn claims_dir(f: &Fixture) -> PathBuf {
    f.root.path().join(&f.namespace).join("claims")
}

/// The claims on the host, by name, from their directories.
fn claim_dirs(f: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(claims_dir(f))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The rows of `podctl volume ls`, each cell apart.
fn volume_rows(f: &Fixture) -> Vec<Vec<String>> {
    podctl_ok(f, &["volume", "ls"])
        .lines()
        .skip(1)
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

fn inspect(f: &Fixture, name: &str) -> Value {
    let out = podctl_ok(f, &["volume", "inspect", name, "-o", "json"]);
    let all: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    all[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_outlive_pods_and_are_shared() {
    let f = Fixture::new("claims").await;
    // The first pod's file gives the claim; it writes as user 1000 and is removed (--rm).
    let writer = format!(
        "{}{}",
        claim("shared", "ReadWriteOnce", "1Gi"),
        pod_on_claim(
            "writer",
            "shared",
            false,
            "echo hello > /data/greeting && stat -c '%g %a' /data && id -u"
        )
    );
    let out = run_file(&f, "writer.yaml", &writer, true);
    assert_success(&out, "podctl run writer");
    // fsGroup as on an emptyDir: the group, setgid, group-writable.
    assert_eq!(lines_of(&out, "main"), ["2000 2777", "1000"]);
    assert!(!f.pod_dir("writer").exists());
    let data = claims_dir(&f).join("shared/data");
    assert_eq!(
        std::fs::read_to_string(data.join("greeting")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::metadata(data.join("greeting")).unwrap().gid(),
        2000
    );
    let rows = volume_rows(&f);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][..4], ["shared", "RWO", "1Gi", "<none>"]);

    // A later pod names the existing claim without giving it; readOnly on the volume source
    // makes its mount read-only. It finishes and stays recorded (no --rm).
    let reader = pod_on_claim(
        "reader",
        "shared",
        true,
        "cat /data/greeting; touch /data/x 2>/dev/null && echo writable || echo read-only",
    );
    let out = run_file(&f, "reader.yaml", &reader, false);
    assert_success(&out, "podctl run reader");
    assert_eq!(lines_of(&out, "main"), ["hello", "read-only"]);

    let rows = volume_rows(&f);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][..4], ["shared", "RWO", "1Gi", "reader"]);
    let details = inspect(&f, "shared");
    assert_eq!(details["name"], "shared");
    assert_eq!(Path::new(details["path"].as_str().unwrap()), data);
    assert!(details["usedBytes"].as_u64().unwrap() > 0, "{details}");
    assert_eq!(details["usedBy"][0]["pod"], "reader");
    assert_eq!(details["usedBy"][0]["finished"], true);
    let pvc = &details["claim"];
    assert_eq!(pvc["kind"], "PersistentVolumeClaim");
    assert_eq!(pvc["metadata"]["namespace"], f.namespace.as_str());
    assert_eq!(pvc["status"]["phase"], "Bound");
    assert_eq!(pvc["status"]["capacity"]["storage"], "1Gi");
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteOnce");
    let listed: Value =
        serde_json::from_str(&podctl_ok(&f, &["volume", "ls", "-o", "json"])).unwrap();
    assert_eq!(listed["kind"], "List");
    assert_eq!(listed["items"][0]["metadata"]["name"], "shared");

    // Given again: only a larger storage request is taken; another access mode is the API
    // server's "immutable" refusal, before anything of the pod exists.
    let changed = format!(
        "{}{}",
        claim("shared", "ReadWriteMany", "1Gi"),
        pod_on_claim("changer", "shared", false, "true")
    );
    let out = run_file(&f, "changed.yaml", &changed, true);
    f.assert_refused(
        &out,
        2,
        "PersistentVolumeClaim \"shared\" is invalid: spec.accessModes: Forbidden: spec is immutable",
        Some("changer"),
    );
    let grown = format!(
        "{}{}",
        claim("shared", "ReadWriteOnce", "2Gi"),
        pod_on_claim("grower", "shared", false, "cat /data/greeting")
    );
    let out = run_file(&f, "grown.yaml", &grown, true);
    assert_success(&out, "podctl run grower");
    assert_eq!(lines_of(&out, "main"), ["hello"]);
    assert_eq!(
        inspect(&f, "shared")["claim"]["status"]["capacity"]["storage"],
        "2Gi"
    );

    // PVC protection: refused while the finished reader is recorded, then removed with it.
    let out = f.podctl(&["volume", "rm", "shared"], None);
    f.assert_refused(
        &out,
        1,
        "persistentvolumeclaim \"shared\" is in use by pod \"reader\": remove it first with `podctl rm reader`",
        None,
    );
    assert!(data.join("greeting").exists());
    let out = f.podctl(&["volume", "inspect", "shared", "nope"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("persistentvolumeclaim \"nope\" not found"));
    f.remove("reader");
    assert_eq!(podctl_ok(&f, &["volume", "rm", "shared"]), "shared\n");
    assert!(claim_dirs(&f).is_empty());
    let out = f.podctl(&["volume", "rm", "shared"], None);
    f.assert_refused(&out, 1, "persistentvolumeclaim \"shared\" not found", None);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_once_pod_admits_one_pod_at_a_time() {
    let f = Fixture::new("claimsrwop").await;
    let first = format!(
        "{}{}",
        claim("solo", "ReadWriteOncePod", "100Mi"),
        pod_on_claim(
            "first",
            "solo",
            false,
            "echo first > /data/owner; echo ready; trap 'exit 0' TERM; sleep 1000 & wait"
        )
    );
    let path = f.root.path().join("first.yaml");
    std::fs::write(&path, &first).unwrap();
    let running = f.start(&["run", "--rm", path.to_str().unwrap()], None);
    f.wait_for_log("first", "main", "ready");

    let second = pod_on_claim("second", "solo", false, "cat /data/owner");
    let out = run_file(&f, "second.yaml", &second, true);
    f.assert_refused(
        &out,
        125,
        "pod \"second\" cannot use persistentvolumeclaim \"solo\": pod \"first\" uses it on this \
         host, and its ReadWriteOncePod access mode allows one pod at a time",
        Some("second"),
    );

    // Once the first pod ended, the claim is free again.
    podctl_ok(&f, &["stop", "first"]);
    let out = running.wait(RUN_TIMEOUT);
    assert_success(&out, "podctl run first");
    let out = run_file(&f, "second.yaml", &second, true);
    assert_success(&out, "podctl run second");
    assert_eq!(lines_of(&out, "main"), ["first"]);
    assert_eq!(podctl_ok(&f, &["volume", "rm", "solo"]), "solo\n");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_claims_and_failed_admissions_leave_nothing() {
    let f = Fixture::new("claimsmissing").await;
    // A claim neither given nor on the host: the scheduler's words, exit 2, nothing made.
    let out = run_file(
        &f,
        "absent.yaml",
        &pod_on_claim("lonely", "absent", false, "true"),
        true,
    );
    f.assert_refused(
        &out,
        2,
        "spec.volumes[0].persistentVolumeClaim.claimName: persistentvolumeclaim \"absent\" not found",
        Some("lonely"),
    );
    assert!(claim_dirs(&f).is_empty());

    // The claims given with it are not made either when another one is missing.
    let two = pod(
        "two",
        r#"
  volumes:
    - {name: a, persistentVolumeClaim: {claimName: made}}
    - {name: b, persistentVolumeClaim: {claimName: absent}}
  containers:
    - name: main
      image: busybox:1.35
      command: ["true"]
"#,
    );
    let out = run_file(
        &f,
        "two.yaml",
        &format!("{}{two}", claim("made", "ReadWriteOnce", "1Gi")),
        true,
    );
    f.assert_refused(
        &out,
        2,
        "spec.volumes[1].persistentVolumeClaim.claimName: persistentvolumeclaim \"absent\" not found",
        Some("two"),
    );
    assert!(claim_dirs(&f).is_empty());

    // The API server's rule for the volume source.
    let out = run_file(
        &f,
        "unnamed.yaml",
        &pod_on_claim("unnamed", "\"\"", false, "true"),
        true,
    );
    f.assert_refused(
        &out,
        2,
        "spec.volumes[0].persistentVolumeClaim.claimName: Required value",
        Some("unnamed"),
    );

    // An admission failing after it created its claim (the image is not there) takes the
    // claim back.
    let no_image = format!(
        "{}{}",
        claim("fresh", "ReadWriteOnce", "1Gi"),
        pod_on_claim("noimage", "fresh", false, "true").replace(
            "image: busybox:1.35",
            "image: busybox:0.0-absent\n      imagePullPolicy: Never"
        )
    );
    let out = run_file(&f, "noimage.yaml", &no_image, true);
    f.assert_refused(&out, 125, "busybox:0.0-absent", Some("noimage"));
    assert!(claim_dirs(&f).is_empty(), "{:?}", claim_dirs(&f));
    let out = f.podctl(&["volume", "ls"], None);
    assert_success(&out, "podctl volume ls");
    assert!(
        text(&out.stderr).contains("No volumes found"),
        "{}",
        text(&out.stderr)
    );
    f.finish().await;
}
