//! `podctl run` end to end: the real binary against a private containerd, one per test, with a
//! leak check at the end of each.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use podctl_integration_tests::{assert_success, lines_of, pod, podctl_bin, text, Fixture};

const REFERENCE_POD: &str = r#"
  volumes:
    - name: work
      emptyDir: {}
  initContainers:
    - name: first
      image: busybox:1.35
      command: ["sh", "-c", "echo first >> /work/order"]
      volumeMounts: [{name: work, mountPath: /work}]
    - name: second
      image: busybox:1.35
      command: ["sh", "-c", "test -s /work/order && echo second >> /work/order"]
      volumeMounts: [{name: work, mountPath: /work}]
  containers:
    - name: main
      image: busybox:1.35
      command: ["cat", "/work/order"]
      volumeMounts: [{name: work, mountPath: /work}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_pod_runs_init_containers_in_order() {
    let f = Fixture::new("reference").await;
    let out = f.run(&pod("reference", REFERENCE_POD));
    assert_success(&out, "podctl run");
    assert_eq!(lines_of(&out, "main"), ["first", "second"]);
    let err = text(&out.stderr);
    let first = err
        .find("init container first exited with code 0")
        .expect(&err);
    let second = err
        .find("init container second exited with code 0")
        .expect(&err);
    let main = err.find("container main exited with code 0").expect(&err);
    assert!(first < second && second < main, "{err}");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_demo_example_runs() {
    let f = Fixture::new("demo").await;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/init-demo.yaml");
    let out = f.podctl(&["run", "--rm", manifest.to_str().unwrap()], None);
    assert_success(&out, "podctl run examples/init-demo.yaml");
    assert_eq!(
        lines_of(&out, "app"),
        [
            "step 1: fetched by init container fetch",
            "step 2: rendered by init container render on host init-demo"
        ]
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_init_container_fails_the_pod_and_main_never_runs() {
    let f = Fixture::new("initfail").await;
    let manifest = pod(
        "initfail",
        r#"
  volumes:
    - name: work
      emptyDir: {}
  initContainers:
    - name: ok
      image: busybox:1.35
      command: ["true"]
    - name: broken
      image: busybox:1.35
      command: ["sh", "-c", "echo giving up >&2; exit 3"]
    - name: after
      image: busybox:1.35
      command: ["sh", "-c", "touch /work/after-ran"]
      volumeMounts: [{name: work, mountPath: /work}]
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "touch /work/main-ran; echo main ran"]
      volumeMounts: [{name: work, mountPath: /work}]
"#,
    );
    // Without --rm the pod's volume stays, so we can look for what would have run.
    let out = f.podctl(&["run", "-o", "json", "-"], Some(&manifest));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status["phase"], "Failed");
    let init = &status["initContainerStatuses"];
    assert_eq!(init[0]["state"]["terminated"]["exitCode"], 0);
    assert_eq!(init[1]["state"]["terminated"]["exitCode"], 3);
    assert_eq!(init[1]["state"]["terminated"]["reason"], "Error");
    assert_eq!(init[2]["state"]["waiting"]["reason"], "PodInitializing");
    assert_eq!(
        status["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    assert!(text(&out.stderr).contains("[broken] giving up"));
    assert!(!text(&out.stderr).contains("main ran"));
    let volume = f.pods_dir().join("initfail/volumes/work");
    assert!(volume.is_dir());
    assert!(!volume.join("after-ran").exists());
    assert!(!volume.join("main-ran").exists());
    // Containers that never ran leave no record behind; those that ran stay until `podctl rm`.
    let mut kept: Vec<String> = f
        .client
        .list_containers("")
        .await
        .unwrap()
        .iter()
        .map(|c| c.labels[podctl_runtime::containerd::labels::CONTAINER].clone())
        .collect();
    kept.sort();
    assert_eq!(kept, ["broken", "ok"]);
    let log = std::fs::read_to_string(f.pods_dir().join("initfail/logs/broken/0.log")).unwrap();
    assert!(log.contains(" stderr F giving up"), "{log}");
    let rm = f.podctl(&["rm", "initfail"], None);
    assert_success(&rm, "podctl rm");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_share_localhost() {
    let f = Fixture::new("localhost").await;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/shared-localhost.yaml");
    let out = f.podctl(&["run", "--rm", manifest.to_str().unwrap()], None);
    assert_success(&out, "podctl run examples/shared-localhost.yaml");
    assert_eq!(lines_of(&out, "client"), ["hello from the server"]);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_and_hosts_name_the_pod() {
    let f = Fixture::new("hostname").await;
    let out = f.run(&pod(
        "web-1",
        r#"
  initContainers:
    - name: init
      image: busybox:1.35
      command: ["hostname"]
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "hostname; cat /etc/hostname; grep -c web-1 /etc/hosts; echo $HOSTNAME"]
"#,
    ));
    assert_success(&out, "podctl run");
    assert_eq!(lines_of(&out, "init"), ["web-1"]);
    assert_eq!(lines_of(&out, "main"), ["web-1", "web-1", "1", "web-1"]);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_follow_hostname_subdomain_host_aliases_and_dns_settings() {
    let f = Fixture::new("names").await;
    // dnsPolicy None: only dnsConfig, in containerd's layout.
    let out = f.podctl(
        &["run", "--rm", "--events", "-"],
        Some(&pod(
            "named",
            r#"
  hostname: box
  subdomain: db
  dnsPolicy: None
  dnsConfig:
    nameservers: ["10.0.0.10", "fd00::10"]
    searches: ["svc.example", "example"]
    options: [{name: ndots, value: "2"}, {name: edns0}]
  hostAliases:
    - ip: 10.1.2.3
      hostnames: [api.internal, api]
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "hostname; cat /etc/resolv.conf; grep -v '^#' /etc/hosts | grep -e box -e api"]
"#,
        )),
    );
    assert_success(&out, "podctl run");
    assert_eq!(
        lines_of(&out, "main"),
        [
            "box",
            "search svc.example example",
            "nameserver 10.0.0.10",
            "nameserver fd00::10",
            "options ndots:2 edns0",
            // The kubelet's line for the pod's address (the network's first pod gets .2).
            format!(
                "{}\tbox.db.default.svc.cluster.local\tbox",
                f.net.address(2)
            )
            .as_str(),
            "10.1.2.3\tapi.internal\tapi",
        ]
    );
    assert!(
        !text(&out.stderr).contains("MissingClusterDNS"),
        "{}",
        text(&out.stderr)
    );

    // The default policy, ClusterFirst, falls back to the host's resolvers with the kubelet's
    // warning; dnsConfig is appended to them, and no loopback resolver of the host remains.
    let out = f.podctl(
        &["run", "--rm", "--events", "-"],
        Some(&pod(
            "fallback",
            r#"
  dnsConfig:
    searches: ["extra.example"]
    options: [{name: ndots, value: "3"}]
  containers:
    - name: main
      image: busybox:1.35
      command: ["cat", "/etc/resolv.conf"]
"#,
        )),
    );
    assert_success(&out, "podctl run");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Warning MissingClusterDNS pod: podctl has no cluster DNS"),
        "{stderr}"
    );
    let resolv = lines_of(&out, "main");
    assert!(
        resolv.iter().any(
            |l| l.starts_with("search ") && l.ends_with(" extra.example")
                || l == "search extra.example"
        ),
        "{resolv:?}"
    );
    assert!(
        resolv
            .iter()
            .any(|l| l.starts_with("options ") && l.contains("ndots:3")),
        "{resolv:?}"
    );
    let nameservers: Vec<&String> = resolv
        .iter()
        .filter(|l| l.starts_with("nameserver "))
        .collect();
    assert!(!nameservers.is_empty(), "{resolv:?}");
    assert!(
        nameservers
            .iter()
            .all(|l| !l.contains(" 127.") && !l.ends_with(" ::1")),
        "{resolv:?}"
    );

    // setHostnameAsFQDN: the kernel hostname is the FQDN; /etc/hosts still names both.
    // Three more nameservers over the host's own: cut to three with the kubelet's event
    // (when the host has a resolver pods can reach; with none, nothing is cut).
    // Read as podctl reads them: behind systemd-resolved's stub, its upstream file.
    let host_file = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host_file = if host_file.contains("nameserver 127.0.0.53") {
        std::fs::read_to_string("/run/systemd/resolve/resolv.conf").unwrap_or_default()
    } else {
        host_file
    };
    let host_resolvers = host_file
        .lines()
        .filter(|l| l.starts_with("nameserver "))
        .filter(|l| !l.contains(" 127.") && !l.ends_with(" ::1"))
        .count();
    let out = f.podctl(
        &["run", "--rm", "--events", "-"],
        Some(&pod(
            "fqdn",
            r#"
  hostname: box
  subdomain: db
  setHostnameAsFQDN: true
  dnsPolicy: Default
  dnsConfig:
    nameservers: ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "hostname; cat /etc/hostname; grep -c nameserver /etc/resolv.conf"]
"#,
        )),
    );
    assert_success(&out, "podctl run");
    assert_eq!(
        lines_of(&out, "main"),
        [
            "box.db.default.svc.cluster.local",
            "box.db.default.svc.cluster.local",
            "3"
        ]
    );
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.contains("Warning DNSConfigForming pod: Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: "),
        host_resolvers > 0,
        "{stderr}"
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_context_sets_user_groups_capabilities_and_a_read_only_root() {
    let f = Fixture::new("security").await;
    let out = f.run(&pod(
        "secure",
        r#"
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    supplementalGroups: [4000]
    runAsNonRoot: true
  volumes:
    - name: scratch
      emptyDir: {}
  containers:
    - name: user
      image: busybox:1.35
      command: ["sh", "-c", "id -u; id -g; id -G; grep NoNewPrivs /proc/self/status; touch /rootfile 2>/dev/null && echo root-writable || echo root-read-only; touch /scratch/f && echo scratch-writable"]
      securityContext:
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
      volumeMounts: [{name: scratch, mountPath: /scratch}]
    - name: nochown
      image: busybox:1.35
      command: ["sh", "-c", "touch /tmp/f; chown 1 /tmp/f && echo chown-ok || echo chown-refused; chown 1 /tmp/f 2>&1 | head -1 >&2; exit 0"]
      securityContext:
        runAsUser: 0
        runAsNonRoot: false
        capabilities: {drop: [CHOWN]}
"#,
    ));
    assert_success(&out, "podctl run");
    assert_eq!(
        lines_of(&out, "user"),
        [
            "1000",
            "3000",
            "3000 4000",
            "NoNewPrivs:\t1",
            "root-read-only",
            "scratch-writable"
        ]
    );
    assert_eq!(lines_of(&out, "nochown"), ["chown-refused"]);

    // runAsNonRoot with a root image: the kubelet's error, exit 125, nothing left.
    let out = f.run(&pod(
        "rooted",
        "  securityContext: {runAsNonRoot: true}\n  containers:\n    - name: c\n      image: busybox:1.35\n      command: [\"true\"]\n",
    ));
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "CreateContainerConfigError: container has runAsNonRoot and image will run as root (pod: \"rooted_default\", container: c)"
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(!f.pod_dir("rooted").exists());

    // What podctl does not implement yet is refused by name, before anything exists.
    let out = f.run(&pod(
        "apparmor",
        "  containers:\n    - name: c\n      image: busybox:1.35\n      securityContext: {appArmorProfile: {type: RuntimeDefault}}\n",
    ));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "spec.containers[0].securityContext.appArmorProfile: Forbidden: not supported by podctl yet"
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(!f.pod_dir("apparmor").exists());
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_mount_refuses_writes() {
    let f = Fixture::new("readonly").await;
    let out = f.run(&pod(
        "readonly",
        r#"
  volumes:
    - name: data
      emptyDir: {}
  initContainers:
    - name: fill
      image: busybox:1.35
      command: ["sh", "-c", "echo kept > /data/file"]
      volumeMounts: [{name: data, mountPath: /data}]
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "cat /data/file; if echo x > /data/other; then echo WROTE; exit 0; fi; exit 9"]
      volumeMounts: [{name: data, mountPath: /data, readOnly: true}]
"#,
    ));
    assert_eq!(out.status.code(), Some(9), "{}", text(&out.stderr));
    assert_eq!(lines_of(&out, "main"), ["kept"]);
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_path_mounts_a_directory_and_refuses_escapes() {
    let f = Fixture::new("subpath").await;
    // A subPath naming a file the init container writes: resolved only when the main
    // container's turn comes (resolved earlier, it would be made a directory and the init
    // container's write would fail).
    let out = f.run(&pod(
        "subpath",
        r#"
  volumes:
    - name: data
      emptyDir: {}
  initContainers:
    - name: fill
      image: busybox:1.35
      command: ["sh", "-c", "mkdir /data/conf && echo inside > /data/conf/value"]
      volumeMounts: [{name: data, mountPath: /data}]
  containers:
    - name: main
      image: busybox:1.35
      command: ["cat", "/etc/app/value", "/etc/app.conf"]
      volumeMounts:
        - {name: data, mountPath: /etc/app, subPath: conf}
        - {name: data, mountPath: /etc/app.conf, subPath: conf/value}
"#,
    ));
    assert_success(&out, "subPath pod");
    assert_eq!(lines_of(&out, "main"), ["inside", "inside"]);

    // An init container plants a symlink to / ; the main container's subPath through it must
    // be refused, and the half-run pod removed.
    let out = f.run(&pod(
        "escape",
        r#"
  volumes:
    - name: data
      emptyDir: {}
  initContainers:
    - name: plant
      image: busybox:1.35
      command: ["ln", "-s", "/", "/data/escape"]
      volumeMounts: [{name: data, mountPath: /data}]
  containers:
    - name: main
      image: busybox:1.35
      command: ["ls", "/host"]
      volumeMounts: [{name: data, mountPath: /host, subPath: escape}]
"#,
    ));
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("escape"), "{err}");
    assert!(lines_of(&out, "main").is_empty());

    // `..` is refused by validation before anything exists.
    let out = f.run(&pod(
        "dotdot",
        r#"
  volumes:
    - name: data
      emptyDir: {}
  containers:
    - name: main
      image: busybox:1.35
      volumeMounts: [{name: data, mountPath: /x, subPath: ../../etc}]
"#,
    ));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("spec.containers[0].volumeMounts[0].subPath"));
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_manifests_are_refused_before_anything_is_created() {
    let f = Fixture::new("malformed").await;
    let cases: &[(&str, String, &str)] = &[
        (
            "unknown field",
            pod("typo", "  containers:\n    - name: a\n      image: busybox:1.35\n      volumeMount: []\n"),
            "spec.containers[0].volumeMount",
        ),
        (
            "missing image",
            pod("noimage", "  containers:\n    - name: a\n"),
            "spec.containers[0].image: Required value",
        ),
        (
            "restartPolicy",
            pod("policy", "  containers:\n    - name: a\n      image: busybox:1.35\n")
                .replace("restartPolicy: Never", "restartPolicy: Sometimes"),
            "spec.restartPolicy: Unsupported value: \"Sometimes\"",
        ),
        (
            "unsupported field",
            pod(
                "probe",
                "  containers:\n    - name: a\n      image: busybox:1.35\n      livenessProbe:\n        grpc: {port: 9000}\n",
            ),
            "spec.containers[0].livenessProbe.grpc",
        ),
        (
            "duplicate names",
            pod(
                "dup",
                "  initContainers:\n    - name: a\n      image: busybox:1.35\n  containers:\n    - name: a\n      image: busybox:1.35\n",
            ),
            "Duplicate value: \"a\"",
        ),
        (
            "unknown volume",
            pod(
                "novol",
                "  containers:\n    - name: a\n      image: busybox:1.35\n      volumeMounts: [{name: cache, mountPath: /c}]\n",
            ),
            "spec.containers[0].volumeMounts[0].name: Not found: \"cache\"",
        ),
        (
            "bad name",
            pod("Bad_Name", "  containers:\n    - name: a\n      image: busybox:1.35\n"),
            "metadata.name",
        ),
        ("yaml syntax", "apiVersion: v1\nkind: Pod\nmetadata: [\n".to_string(), "<stdin>"),
        (
            "not a kind podctl reads",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n".to_string(),
            "kind: Unsupported value: \"Widget\"",
        ),
    ];
    for (what, manifest, expected) in cases {
        for verb in ["run", "validate"] {
            let out = f.podctl(&[verb, "-"], Some(manifest));
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{what} ({verb}): {err}");
            assert!(
                err.contains(expected),
                "{what} ({verb}): expected {expected:?} in:\n{err}"
            );
        }
    }
    assert!(!f.pods_dir().exists() || f.pods_dir().read_dir().unwrap().next().is_none());
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_is_named_and_nothing_is_created() {
    let f = Fixture::new("noimage").await;
    let out = f.run(&pod(
        "noimage",
        // Never: a missing image must not send the test to a registry outside this machine.
        "  containers:\n    - name: a\n      image: example.com/team/app:2.0\n      imagePullPolicy: Never\n",
    ));
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("example.com/team/app:2.0"), "{err}");
    assert!(err.contains("podctl image import"), "{err}");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_containerd_is_one_clear_line() {
    let root = tempfile::tempdir().unwrap();
    let socket = root.path().join("nothing.sock");
    let manifest = pod(
        "x",
        "  containers:\n    - name: a\n      image: busybox:1.35\n",
    );
    let mut child = Command::new(podctl_bin())
        .args(["--address", socket.to_str().unwrap(), "run", "-"])
        .env("PODCTL_ROOT", root.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(socket.to_str().unwrap()), "{err}");
    assert!(err.contains("start it"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_and_command_expand_like_the_kubelet() {
    let f = Fixture::new("expand").await;
    let out = f.run(&pod(
        "expand",
        r#"
  containers:
    - name: main
      image: busybox:1.35
      env:
        - name: NAME
          value: world
        - name: GREETING
          value: "hello $(NAME)"
        - name: LITERAL
          value: "$$(NAME) $(MISSING)"
      command: ["echo", "$(GREETING)", "$(LITERAL)", "$$(GREETING)"]
"#,
    ));
    assert_success(&out, "podctl run");
    assert_eq!(
        lines_of(&out, "main"),
        ["hello world $(NAME) $(MISSING) $(GREETING)"]
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_empty_dir_is_a_sized_tmpfs_and_host_path_is_checked() {
    let f = Fixture::new("volumes").await;
    let host = f.root.path().join("host-data");
    let manifest = pod(
        "volumes",
        &format!(
            r#"
  volumes:
    - name: mem
      emptyDir: {{medium: Memory, sizeLimit: 8Mi}}
    - name: host
      hostPath: {{path: {host}, type: DirectoryOrCreate}}
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "grep ' /mem ' /proc/mounts | cut -d' ' -f3; df -k /mem | tail -1 | awk '{{print $2}}'; echo from-pod > /host/out"]
      volumeMounts: [{{name: mem, mountPath: /mem}}, {{name: host, mountPath: /host}}]
"#,
            host = host.display()
        ),
    );
    let out = f.run(&manifest);
    assert_success(&out, "podctl run");
    assert_eq!(lines_of(&out, "main"), ["tmpfs", "8192"]);
    assert_eq!(
        std::fs::read_to_string(host.join("out")).unwrap(),
        "from-pod\n"
    );

    let missing = f.root.path().join("not-there");
    let out = f.run(&pod(
        "hostfile",
        &format!(
            "  volumes:\n    - name: h\n      hostPath: {{path: {}, type: File}}\n  containers:\n    - name: main\n      image: busybox:1.35\n      volumeMounts: [{{name: h, mountPath: /h}}]\n",
            missing.display()
        ),
    ));
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(missing.to_str().unwrap()));
    std::fs::remove_dir_all(host).unwrap();
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_pod_within_its_grace_period() {
    let f = Fixture::new("stop").await;
    let manifest = pod(
        "stop",
        r#"
  terminationGracePeriodSeconds: 1
  containers:
    - name: polite
      image: busybox:1.35
      command: ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done"]
    - name: stubborn
      image: busybox:1.35
      command: ["sh", "-c", "trap '' TERM; echo ready; sleep 1000"]
"#,
    );
    let child = f.spawn(&["run", "--rm", "-o", "json", "-"], Some(&manifest));
    // Both must run: a stop that comes before a container started keeps it from starting.
    f.wait_for_log("stop", "polite", "ready");
    f.wait_for_log("stop", "stubborn", "ready");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect(&err);
    let by_name = |n: &str| {
        status["containerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap()["state"]["terminated"]
            .clone()
    };
    // `polite` handles TERM and exits 0; `stubborn` ignores it and is killed.
    assert_eq!(by_name("polite")["exitCode"], 0, "{status}");
    assert_eq!(by_name("stubborn")["exitCode"], 137, "{status}");
    assert!(err.contains("[polite] got TERM"), "{err}");
    assert_eq!(status["phase"], "Failed");
    assert_eq!(out.status.code(), Some(137));
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shim_serves_the_whole_pod() {
    let f = Fixture::new("shim").await;
    let manifest = pod(
        "shim",
        r#"
  initContainers:
    - name: init
      image: busybox:1.35
      command: ["sleep", "0.3"]
  containers:
    - name: a
      image: busybox:1.35
      command: ["sleep", "1"]
    - name: b
      image: busybox:1.35
      command: ["sleep", "1"]
"#,
    );
    let mut child = f.spawn(&["run", "--rm", "-"], Some(&manifest));
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(shims_of(&f.namespace));
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_success(&out, "podctl run");
    assert_eq!(peak, 1, "containerd shims seen at once for one pod");
    f.finish().await;
}

/// Long-lived shim processes serving `namespace`: not the short `start`/`delete`
/// invocations containerd runs to locate or clean up a shim, nor a shim's child between fork
/// and exec of runc (it shows the shim's command line for that moment).
fn shims_of(namespace: &str) -> usize {
    let mut found = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let (Ok(cmdline), Ok(stat)) = (
            std::fs::read(entry.path().join("cmdline")),
            std::fs::read_to_string(entry.path().join("stat")),
        ) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let has = |a: &str| args.contains(&a.as_bytes());
        let is_shim = args
            .first()
            .is_some_and(|a0| String::from_utf8_lossy(a0).contains("containerd-shim"))
            && args
                .windows(2)
                .any(|w| w[0] == b"-namespace" && w[1] == namespace.as_bytes())
            && !has("start")
            && !has("delete");
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .unwrap_or_default()
            .to_string();
        if is_shim {
            found.insert(entry.file_name().to_string_lossy().into_owned(), ppid);
        }
    }
    found
        .values()
        .filter(|ppid| !found.contains_key(*ppid))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_pod_keeps_logs_and_status_until_removed() {
    let f = Fixture::new("keep").await;
    let manifest = pod(
        "keep",
        "  containers:\n    - name: main\n      image: busybox:1.35\n      command: [\"sh\", \"-c\", \"echo out; echo err >&2; exit 4\"]\n",
    );
    let out = f.podctl(&["run", "-"], Some(&manifest));
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let dir = f.pods_dir().join("keep");
    let log = std::fs::read_to_string(dir.join("logs/main/0.log")).unwrap();
    assert!(log.contains(" stdout F out\n"), "{log}");
    assert!(log.contains(" stderr F err\n"), "{log}");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(
        status["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        4
    );
    // Namespaces and mounts are released at once; the rest waits for `podctl rm`.
    assert!(podctl_integration_tests::mounts_under(f.root.path()).is_empty());
    let again = f.podctl(&["run", "-"], Some(&manifest));
    assert_eq!(again.status.code(), Some(125));
    assert!(text(&again.stderr).contains("podctl rm keep"));
    assert_success(&f.podctl(&["rm", "keep"], None), "podctl rm");
    let gone = f.podctl(&["rm", "keep"], None);
    assert_eq!(gone.status.code(), Some(1));
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_joins_the_host_namespaces_and_others_do_not() {
    let f = Fixture::new("hostnet").await;
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    let host_name = nix::unistd::gethostname().unwrap();
    let probe = "  containers:\n    - name: main\n      image: busybox:1.35\n      command: [\"sh\", \"-c\", \"readlink /proc/self/ns/net; hostname\"]\n";
    let out = f.run(&pod("hostnet", &format!("  hostNetwork: true\n{probe}")));
    assert_success(&out, "hostNetwork pod");
    assert_eq!(
        lines_of(&out, "main"),
        [
            host_net.to_string_lossy().into_owned(),
            host_name.to_string_lossy().into_owned()
        ]
    );
    let out = f.run(&pod("podnet", probe));
    assert_success(&out, "pod network pod");
    let lines = lines_of(&out, "main");
    assert_ne!(lines[0], host_net.to_string_lossy());
    assert_eq!(lines[1], "podnet");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_kills_without_waiting_for_the_grace_period() {
    let f = Fixture::new("kill").await;
    let manifest = pod(
        "kill",
        "  terminationGracePeriodSeconds: 600\n  containers:\n    - name: main\n      image: busybox:1.35\n      command: [\"sh\", \"-c\", \"echo ready; sleep 1000\"]\n",
    );
    let mut child = f.spawn(&["run", "--rm", "-"], Some(&manifest));
    f.wait_for_log("kill", "main", "ready");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    // The grace period is ten minutes: only the second signal can end the run this soon.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("podctl still waits for the grace period after a second signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("killing"),
        "{}",
        text(&out.stderr)
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_container_may_run_an_executable_an_init_container_installed() {
    let f = Fixture::new("tools").await;
    let out = f.run(&pod(
        "tools",
        r#"
  volumes:
    - name: tools
      emptyDir: {}
  initContainers:
    - name: install
      image: busybox:1.35
      # Slow enough that the main container's task is created before the tool exists.
      command: ["sh", "-c", "sleep 0.5; printf '#!/bin/sh\necho tool ran\n' > /tools/tool; chmod +x /tools/tool"]
      volumeMounts: [{name: tools, mountPath: /tools}]
  containers:
    - name: main
      image: busybox:1.35
      command: ["/tools/tool"]
      volumeMounts: [{name: tools, mountPath: /tools}]
"#,
    ));
    assert_success(&out, "podctl run");
    assert_eq!(lines_of(&out, "main"), ["tool ran"]);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_see_volumes_untouched_by_later_containers() {
    let f = Fixture::new("nested").await;
    let out = f.run(&pod(
        "nested",
        r#"
  volumes:
    - name: work
      emptyDir: {}
    - name: cache
      emptyDir: {}
  initContainers:
    - name: check
      image: busybox:1.35
      command: ["sh", "-c", "echo \"init sees: [$(ls -A /work)]\"; test -z \"$(ls -A /work)\""]
      volumeMounts: [{name: work, mountPath: /work}]
  containers:
    - name: main
      image: busybox:1.35
      command: ["true"]
      volumeMounts: [{name: work, mountPath: /work}, {name: cache, mountPath: /work/cache}]
"#,
    ));
    assert_success(&out, "podctl run");
    assert_eq!(lines_of(&out, "check"), ["init sees: []"]);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_cannot_be_specified_fails_the_pod_before_anything_runs() {
    let f = Fixture::new("username").await;
    let tar = podctl_integration_tests::oci_image_tar(
        f.root.path(),
        &podctl_integration_tests::OciTarOptions {
            containerd_name: Some("example.com/named-user:1".into()),
            user: Some("nobody".into()),
            ..Default::default()
        },
    );
    assert_success(
        &f.podctl(&["image", "import", "-q", tar.to_str().unwrap()], None),
        "import",
    );
    std::fs::remove_file(tar).unwrap();
    let marker = f.root.path().join("marker");
    let out = f.run(&pod(
        "username",
        &format!(
            r#"
  volumes:
    - name: out
      hostPath: {{path: {}, type: DirectoryOrCreate}}
  initContainers:
    - name: first
      image: busybox:1.35
      command: ["touch", "/out/init-ran"]
      volumeMounts: [{{name: out, mountPath: /out}}]
  containers:
    - name: main
      image: example.com/named-user:1
      command: ["true"]
"#,
            marker.display()
        ),
    ));
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("nobody"), "{err}");
    assert_eq!(
        err.matches("nobody").count(),
        1,
        "the cause is told once: {err}"
    );
    assert!(!marker.join("init-ran").exists(), "the init container ran");
    std::fs::remove_dir_all(marker).unwrap();
    assert_success(
        &f.podctl(&["image", "rm", "example.com/named-user:1"], None),
        "image rm",
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lines_are_cut_into_partial_records() {
    let f = Fixture::new("longline").await;
    let manifest = pod(
        "longline",
        "  containers:\n    - name: main\n      image: busybox:1.35\n      command: [\"sh\", \"-c\", \"head -c 40000 /dev/zero | tr '\\\\0' a; echo; echo short\"]\n",
    );
    let out = f.podctl(&["run", "-"], Some(&manifest));
    assert_success(&out, "podctl run");
    let log = std::fs::read_to_string(f.pods_dir().join("longline/logs/main/0.log")).unwrap();
    let records: Vec<(&str, usize)> = log
        .lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (_time, stream, tag) = (parts.next(), parts.next(), parts.next().unwrap());
            assert_eq!(stream, Some("stdout"), "{l}");
            (tag, parts.next().unwrap_or_default().len())
        })
        .collect();
    assert_eq!(
        records,
        [
            ("P", 16384),
            ("P", 16384),
            ("F", 40000 - 2 * 16384),
            ("F", 5)
        ]
    );
    assert_success(&f.podctl(&["rm", "longline"], None), "podctl rm");
    f.finish().await;
}

/// `shareProcessNamespace`: one PID namespace for the pod, held by podctl's pause process as
/// PID 1 (so it outlives the init container that exits first); each container sees the
/// others' processes and their roots; the pause goes with the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_process_namespace_shows_every_container_its_neighbours() {
    let f = Fixture::new("sharepid").await;
    let out = f.run(&pod(
        "shared",
        r#"
  shareProcessNamespace: true
  initContainers:
    - name: init
      image: busybox:1.35
      # `$$$$`: the kubelet's expansion makes it `$$`.
      command: ["sh", "-c", "echo pid $$$$"]
    - name: side
      image: busybox:1.35
      restartPolicy: Always
      command: ["sleep", "1000"]
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; ps -o args | grep -c '^sleep 1000'; test -e /proc/$(pidof sleep)/root/bin/sh && echo root-visible"]
"#,
    ));
    assert_success(&out, "podctl run");
    let init = lines_of(&out, "init");
    assert!(
        init.len() == 1 && init[0].starts_with("pid ") && init[0] != "pid 1",
        "the init container is not the namespace's first process: {init:?}"
    );
    assert_eq!(
        lines_of(&out, "main"),
        ["/pause __podctl_pause ", "1", "root-visible"]
    );

    // Kept after it ends (no --rm): the pause is gone with the containers' tasks, and
    // `podctl rm` removes its record.
    let out = f.podctl(
        &["run", "-"],
        Some(&pod(
            "kept",
            "  shareProcessNamespace: true\n  containers:\n    - name: c\n      image: busybox:1.35\n      command: [\"true\"]\n",
        )),
    );
    assert_success(&out, "podctl run");
    assert_eq!(f.client.list_tasks().await.unwrap(), Vec::<String>::new());
    f.remove("kept");

    // Without it, each container is PID 1 of its own namespace.
    let out = f.run(&pod(
        "apart",
        "  containers:\n    - name: c\n      image: busybox:1.35\n      command: [\"sh\", \"-c\", \"echo pid $$$$\"]\n",
    ));
    assert_success(&out, "podctl run");
    assert_eq!(lines_of(&out, "c"), ["pid 1"]);
    f.finish().await;
}
