//! ConfigMaps and Secrets against a real containerd: given beside the pod or in other
//! files, read through volumes (laid out as the kubelet does, secrets on tmpfs) and env
//! (`envFrom`, `valueFrom` with the kubelet's precedence); missing objects and bad input
//! refused before anything is created. Each test ends with the leak check.

use podctl_integration_tests::{assert_success, lines_of, pod, text, Fixture};

const SECRET_VALUE: &str = "hunter2-not-on-disk";

/// A ConfigMap, a Secret and a Service beside a pod whose init container renders a config
/// file from the ConfigMap volume (and the Secret's env) into an emptyDir for main.
fn app(name: &str) -> String {
    let objects = format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data:
  MODE: production
  SHARED: from-configmap
  template.conf: |
    listen 8080
    user @USER@
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData:
  SHARED: from-secret
  password: {SECRET_VALUE}
  user: admin
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{port: 80}}]}}
---
"#
    );
    let spec = r#"
  volumes:
    - name: template
      configMap: {name: settings, items: [{key: template.conf, path: conf/template.conf}]}
    - name: creds
      secret: {secretName: creds, defaultMode: 0400}
    - name: info
      downwardAPI:
        items:
          - {path: labels, fieldRef: {fieldPath: metadata.labels}}
          - {path: mem, resourceFieldRef: {containerName: main, resource: limits.memory, divisor: 1Mi}}
    - name: optional
      configMap: {name: absent, optional: true}
    - name: rendered
      emptyDir: {}
  initContainers:
    - name: render
      image: busybox:1.35
      env:
        - name: USER_NAME
          valueFrom: {secretKeyRef: {name: creds, key: user}}
      command: ["sh", "-c", "sed \"s/@USER@/$USER_NAME/\" /template/conf/template.conf > /rendered/app.conf"]
      volumeMounts:
        - {name: template, mountPath: /template}
        - {name: rendered, mountPath: /rendered}
  containers:
    - name: main
      image: busybox:1.35
      resources: {limits: {memory: 64Mi}}
      envFrom:
        - configMapRef: {name: settings}
        - secretRef: {name: creds}
        - configMapRef: {name: settings}
          prefix: CFG_
      env:
        - {name: MODE, value: "env-$(SHARED)"}
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - name: MEM
          valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
        - name: MAYBE
          valueFrom: {configMapKeyRef: {name: settings, key: nothere, optional: true}}
      command:
        - sh
        - -c
        - |
          cat /rendered/app.conf
          echo "MODE=$MODE SHARED=$SHARED CFG_MODE=$CFG_MODE POD_NAME=$POD_NAME MEM=$MEM MAYBE=${MAYBE-unset}"
          echo "POD_IP=$POD_IP"
          ls -a /template | tr '\n' ' '; echo
          stat -L -c '%a' /creds/password
          grep ' /creds ' /proc/self/mountinfo | grep -c tmpfs
          touch /creds/x 2>/dev/null && echo writable || echo read-only
          cat /info/labels; echo
          cat /info/mem; echo
          ls /optional | wc -l
      volumeMounts:
        - {name: template, mountPath: /template}
        - {name: creds, mountPath: /creds}
        - {name: info, mountPath: /info}
        - {name: optional, mountPath: /optional}
        - {name: rendered, mountPath: /rendered}
"#;
    let pod = pod(name, spec).replace(
        &format!("metadata:\n  name: {name}\n"),
        &format!("metadata:\n  name: {name}\n  labels: {{app: web}}\n"),
    );
    format!("{objects}{pod}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_maps_and_secrets_reach_volumes_and_env() {
    let f = Fixture::new("objects").await;
    let file = f.root.path().join("app.yaml");
    std::fs::write(&file, app("app1")).unwrap();
    let out = f.podctl(&["run", file.to_str().unwrap()], None);
    assert_success(&out, "podctl run");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("skipped Service \"web\""),
        "the Service is skipped with a warning: {stderr}"
    );
    let main = lines_of(&out, "main");
    assert_eq!(main[0], "listen 8080", "{main:?}");
    assert_eq!(main[1], "user admin", "{main:?}");
    // envFrom in order (the Secret's SHARED wins), then env: `value` sees envFrom's
    // variables; an optional missing key leaves the variable unset.
    assert_eq!(
        main[2],
        "MODE=env-from-secret SHARED=from-secret CFG_MODE=production POD_NAME=app1 MEM=64 MAYBE=unset",
        "{main:?}"
    );
    assert_eq!(main[3], format!("POD_IP={}", f.net.address(2)), "{main:?}");
    // The kubelet's layout: `..data` and a timestamped dir behind the user's paths.
    assert!(
        main[4].contains("..data") && main[4].contains("..20") && main[4].contains("conf"),
        "{main:?}"
    );
    assert_eq!(main[5], "400", "{main:?}");
    assert_eq!(main[6], "1", "the secret volume is a tmpfs: {main:?}");
    assert_eq!(main[7], "read-only", "{main:?}");
    assert_eq!(main[8], "app=\"web\"", "{main:?}");
    assert_eq!(main[9], "64", "{main:?}");
    assert_eq!(
        main[10], "0",
        "an optional missing ConfigMap is an empty volume: {main:?}"
    );

    // Nothing of the Secret is on disk under the pod's state, nor in what podctl shows.
    let grep = std::process::Command::new("grep")
        .args(["-r", "-l", SECRET_VALUE])
        .arg(f.pod_dir("app1"))
        .output()
        .unwrap();
    assert_eq!(text(&grep.stdout), "", "the secret's value is on disk");
    let inspect = f.podctl(&["inspect", "app1", "-o", "json"], None);
    assert_success(&inspect, "podctl inspect");
    assert!(!text(&inspect.stdout).contains(SECRET_VALUE));
    assert!(!text(&inspect.stdout).contains("hunter2"));
    f.remove("app1");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_from_other_files_and_bad_input_create_nothing() {
    let f = Fixture::new("objectsbad").await;
    let dir = f.root.path();
    let pod_text = pod(
        "app2",
        r#"
  containers:
    - name: main
      image: busybox:1.35
      env:
        - name: TOKEN
          valueFrom: {secretKeyRef: {name: token, key: value}}
        - name: LEVEL
          valueFrom: {configMapKeyRef: {name: levels, key: level}}
      command: ["sh", "-c", "echo $TOKEN $LEVEL"]
"#,
    );
    let pod_file = dir.join("pod.yaml");
    std::fs::write(&pod_file, &pod_text).unwrap();
    let secret = dir.join("secret.yaml");
    std::fs::write(
        &secret,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: token}\ndata: {value: czNjcjN0}\n",
    )
    .unwrap();
    let levels = dir.join("levels.yaml");
    std::fs::write(
        &levels,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: levels}\ndata: {level: debug}\n",
    )
    .unwrap();
    let (pod_path, secret_path, levels_path) = (
        pod_file.to_str().unwrap(),
        secret.to_str().unwrap(),
        levels.to_str().unwrap(),
    );

    // A missing object: named with the field that needs it; nothing created.
    let out = f.podctl(&["run", "--rm", pod_path, "--secret", secret_path], None);
    f.assert_refused(
        &out,
        2,
        "spec.containers[0].env[1].valueFrom.configMapKeyRef: configmaps \"levels\" not found",
        Some("app2"),
    );
    // A file of the wrong kind for its flag.
    let out = f.podctl(&["run", "--rm", pod_path, "--configmap", secret_path], None);
    f.assert_refused(&out, 2, "in a file given with --configmap", Some("app2"));
    // A Secret whose data is not base64.
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: token}\ndata: {value: \"not base64!\"}\n",
    )
    .unwrap();
    let out = f.podctl(
        &[
            "run",
            "--rm",
            pod_path,
            "--secret",
            bad.to_str().unwrap(),
            "--configmap",
            levels_path,
        ],
        None,
    );
    f.assert_refused(&out, 2, "data.value", Some("app2"));
    // A cluster object under --strict.
    let strict = dir.join("strict.yaml");
    std::fs::write(
        &strict,
        format!("{pod_text}---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: web}}\n"),
    )
    .unwrap();
    let out = f.podctl(
        &[
            "run",
            "--rm",
            "--strict",
            strict.to_str().unwrap(),
            "--secret",
            secret_path,
            "--configmap",
            levels_path,
        ],
        None,
    );
    f.assert_refused(
        &out,
        2,
        "Ingress \"web\" has no meaning for pods on one host",
        Some("app2"),
    );

    // The README's example, as written.
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config-and-secret.yaml");
    let out = f.podctl(&["run", "--rm", example.to_str().unwrap()], None);
    assert_success(&out, "podctl run examples/config-and-secret.yaml");
    assert_eq!(
        lines_of(&out, "app"),
        [
            format!("configured-app ({}) log level info", f.net.address(2)),
            "listen 8080".to_owned(),
            "database postgres://app@db:5432/app".to_owned(),
            "password file: 400, 9 bytes".to_owned(),
        ]
    );

    // All given: it runs.
    let out = f.podctl(
        &[
            "run",
            "--rm",
            pod_path,
            "--secret",
            secret_path,
            "--configmap",
            levels_path,
        ],
        None,
    );
    assert_success(&out, "podctl run");
    assert_eq!(lines_of(&out, "main"), ["s3cr3t debug"]);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_map_update_in_the_manifests_dir_reaches_the_running_pod() {
    let f = Fixture::new("objectsdaemon").await;
    let dir = f.root.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    let config = |level: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: shared}}\ndata: {{level: {level}}}\n")
    };
    std::fs::write(dir.join("shared.yaml"), config("info")).unwrap();
    // The pod's file holds no ConfigMap: the one in the dir is shared. Its container ends
    // when the file in its volume no longer says what its env said at its start.
    std::fs::write(
        dir.join("web.yaml"),
        podctl_integration_tests::pod_with_policy(
            "web",
            "Always",
            r#"
  terminationGracePeriodSeconds: 2
  volumes:
    - name: config
      configMap: {name: shared}
  containers:
    - name: app
      image: busybox:1.35
      env:
        - name: START_LEVEL
          valueFrom: {configMapKeyRef: {name: shared, key: level}}
      command:
        - sh
        - -c
        - |
          echo "env=$START_LEVEL"
          while true; do
            now=$(cat /config/level)
            if [ "$now" != "$START_LEVEL" ]; then echo "level=$now"; exit 1; fi
            sleep 0.1
          done
      volumeMounts: [{name: config, mountPath: /config}]
"#,
        ),
    )
    .unwrap();
    let daemon = f.daemon(&[
        "--manifests-dir",
        dir.to_str().unwrap(),
        "--backoff-base",
        "200ms",
    ]);
    f.wait_for_log("web", "app", "env=info");
    std::fs::write(dir.join("shared.yaml"), config("debug")).unwrap();
    // The daemon polls the dir every second or so; the volume is swapped atomically, the
    // pod is not restarted for it.
    f.wait_for_log("web", "app", "level=debug");
    // The container restarted (its own exit) reads the new value into its env, as the
    // kubelet resolves env at every container start.
    f.wait_for_attempt_log("web", "app", 1, "env=debug");

    std::fs::remove_file(dir.join("web.yaml")).unwrap();
    podctl_integration_tests::wait_for("web removed", || !f.pod_dir("web").exists());
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = daemon.wait(std::time::Duration::from_secs(30));
    f.finish().await;
}
