//! Workload files against a real containerd: a Deployment runs its template as the one pod
//! its ReplicaSet would make (name, labels); a Job runs pods until its completions, its
//! backoffLimit or its deadline decide, and podctl exits with the Job's result; a CronJob
//! in the daemon's manifests dir makes a Job each time its schedule fires. Bad workloads
//! are refused before anything is created. Each test ends with the leak check.

use std::time::Duration;

use nix::sys::signal::Signal;
use podctl_integration_tests::{assert_success, lines_of, text, Fixture};

fn write(f: &Fixture, name: &str, manifest: &str) -> String {
    let path = f.root.path().join(name);
    std::fs::write(&path, manifest).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The pods under the fixture's state dir.
fn pod_names(f: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(f.pods_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_runs_one_pod_named_and_labelled_by_its_controller() {
    let f = Fixture::new("deployment").await;
    let file = write(
        &f,
        "web.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      volumes:
        - name: info
          downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
      containers:
        - name: app
          image: busybox:1.35
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          command: ["sh", "-c", "echo name=$POD_NAME; cat /info/labels; echo; echo ready; exec sleep 600"]
          volumeMounts: [{name: info, mountPath: /info}]
"#,
    );
    let mut run = f.start(&["run", "--rm", &file], None);
    run.wait_until("the pod is made", Duration::from_secs(60), || {
        pod_names(&f).iter().any(|n| n.starts_with("web-"))
    });
    let name = pod_names(&f).pop().expect("the pod");
    f.wait_for_log(&name, "app", "ready");
    run.signal(Signal::SIGTERM);
    let out = run.wait(Duration::from_secs(60));
    let lines = lines_of(&out, "app");
    assert_eq!(lines[0], format!("name={name}"), "{lines:?}");
    // `<deployment>-<pod-template-hash>-<5 letters>`, the hash also a label.
    let hash = lines
        .iter()
        .find_map(|l| l.strip_prefix("pod-template-hash=\""))
        .map(|h| h.trim_end_matches('"').to_owned())
        .expect("the pod-template-hash label");
    assert!(name.starts_with(&format!("web-{hash}-")), "{name} {hash}");
    assert_eq!(name.len(), format!("web-{hash}-").len() + 5, "{name}");
    assert!(lines.contains(&"app=\"web\"".to_owned()), "{lines:?}");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_retries_up_to_its_backoff_limit_and_exits_with_its_code() {
    let f = Fixture::new("jobbackoff").await;
    let job = |policy: &str| {
        format!(
            r#"apiVersion: batch/v1
kind: Job
metadata: {{name: migrate}}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: {policy}
      containers:
        - name: m
          image: busybox:1.35
          command: ["sh", "-c", "echo attempt; exit 3"]
"#
        )
    };
    // Never: a new pod per failure, backoffLimit + 1 pods in all.
    let file = write(&f, "never.yaml", &job("Never"));
    let out = f.podctl(&["run", "--rm", "--backoff-base", "100ms", &file], None);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(lines_of(&out, "m"), ["attempt", "attempt", "attempt"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("job migrate: Failed (BackoffLimitExceeded: Job has reached the specified backoff limit) (succeeded 0, failed 3)"),
        "{stderr}"
    );
    // OnFailure: one pod, its container restarted until the restarts pass the limit.
    let file = write(&f, "onfailure.yaml", &job("OnFailure"));
    let out = f.podctl(
        &[
            "run",
            "--rm",
            "--backoff-base",
            "100ms",
            "-o",
            "json",
            &file,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The one pod, stopped when the Job failed, counts as failed, as on a cluster.
    assert_eq!(status["failed"], 1, "{status}");
    assert_eq!(status["conditions"][0]["reason"], "BackoffLimitExceeded");
    assert_eq!(status["pods"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(
        text(&out.stderr).matches("[m] attempt").count(),
        3,
        "{}",
        text(&out.stderr)
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_its_completions_in_parallel_and_keeps_its_pods_without_rm() {
    let f = Fixture::new("jobparallel").await;
    let file = write(
        &f,
        "batch.yaml",
        r#"apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  completions: 3
  parallelism: 2
  template:
    metadata: {labels: {app: batch}}
    spec:
      restartPolicy: Never
      containers:
        - name: w
          image: busybox:1.35
          command: ["sh", "-c", "echo done"]
"#,
    );
    let out = f.podctl(&["run", "-o", "json", &file], None);
    assert_success(&out, "podctl run job");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["succeeded"], 3, "{status}");
    assert_eq!(status["conditions"][0]["type"], "Complete", "{status}");
    // Without --rm the Job's pods stay, as a cluster keeps them until the Job goes.
    let pods = pod_names(&f);
    assert_eq!(pods.len(), 3, "{pods:?}");
    for pod in &pods {
        assert!(pod.starts_with("batch-"), "{pods:?}");
        f.remove(pod);
    }
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_deadline_fails_and_bad_workloads_create_nothing() {
    let f = Fixture::new("jobdeadline").await;
    let file = write(
        &f,
        "slow.yaml",
        r#"apiVersion: batch/v1
kind: Job
metadata: {name: slow}
spec:
  activeDeadlineSeconds: 1
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 2
      containers:
        - name: s
          image: busybox:1.35
          command: ["sleep", "600"]
"#,
    );
    let out = f.podctl(&["run", "--rm", &file], None);
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "job slow: Failed (DeadlineExceeded: Job was active longer than specified deadline)"
        ),
        "{stderr}"
    );

    let deployment = |replicas: u32| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: app, image: busybox:1.35}}]\n"
        )
    };
    let file = write(&f, "three.yaml", &deployment(3));
    let out = f.podctl(&["run", "--rm", &file], None);
    f.assert_refused(
        &out,
        2,
        "spec.replicas: Invalid value: 3: podctl runs one replica on this host",
        None,
    );
    let cron = |schedule: &str| {
        format!(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: c}}\nspec:\n  schedule: \"{schedule}\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{{name: m, image: busybox:1.35}}]\n"
        )
    };
    let bad = write(&f, "cron.yaml", &cron("* * *"));
    let out = f.podctl(&["validate", &bad], None);
    f.assert_refused(
        &out,
        2,
        "spec.schedule: Invalid value: \"* * *\": expected exactly 5 fields",
        None,
    );
    // A CronJob runs on its schedule in the daemon only.
    let good = write(&f, "cron.yaml", &cron("*/5 * * * *"));
    let out = f.podctl(&["validate", &good], None);
    assert_success(&out, "validate");
    assert!(text(&out.stdout).starts_with("cronjob/c is valid, next time "));
    let out = f.podctl(&["run", "--rm", &good], None);
    f.assert_refused(
        &out,
        2,
        "CronJob \"c\" runs on its schedule in the daemon",
        None,
    );
    let always = write(
        &f,
        "always.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      restartPolicy: Always\n      containers: [{name: m, image: busybox:1.35}]\n",
    );
    let out = f.podctl(&["run", "--rm", &always], None);
    f.assert_refused(
        &out,
        2,
        "spec.template.spec.restartPolicy: Unsupported value: \"Always\"",
        None,
    );
    assert!(pod_names(&f).is_empty(), "{:?}", pod_names(&f));
    f.finish().await;
}

/// The README's app: a ConfigMap, a Secret, a claim and a Deployment whose init container
/// migrates the claim's data; run twice, the second run finds the data migrated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_app_keeps_its_data_between_runs() {
    let f = Fixture::new("appstack").await;
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/app-stack.yaml")
        .to_str()
        .unwrap()
        .to_owned();
    let mut logs = Vec::new();
    for _ in 0..2 {
        let mut run = f.start(&["run", "--rm", &example], None);
        run.wait_until("the pod is made", Duration::from_secs(60), || {
            pod_names(&f).iter().any(|n| n.starts_with("app-"))
        });
        let name = pod_names(&f).pop().unwrap();
        f.wait_for_log(&name, "web", "serving on :8080");
        run.signal(Signal::SIGTERM);
        let out = run.wait(Duration::from_secs(60));
        logs.push((lines_of(&out, "migrate"), lines_of(&out, "web")));
    }
    assert_eq!(
        logs[0].0,
        [
            "migrating the data to schema version 1",
            "migrating the data to schema version 2"
        ]
    );
    assert_eq!(logs[1].0, ["schema already at version 2"]);
    for (_, web) in &logs {
        assert!(
            web.contains(&"admin password present".to_owned()),
            "{web:?}"
        );
    }
    let ls = f.podctl(&["volume", "ls"], None);
    assert_success(&ls, "podctl volume ls");
    assert!(
        text(&ls.stdout).contains("app-data"),
        "{}",
        text(&ls.stdout)
    );
    assert_success(
        &f.podctl(&["volume", "rm", "app-data"], None),
        "podctl volume rm",
    );
    f.finish().await;
}

/// A StatefulSet's pod is `<name>-0`, and each claim template becomes the ordinal's own
/// claim (`<template>-<name>-0`), which outlives the pod and serves it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_set_keeps_its_ordinals_claim() {
    let f = Fixture::new("statefulset").await;
    let file = write(
        &f,
        "db.yaml",
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  volumeClaimTemplates:
    - metadata: {name: data}
      spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: db
          image: busybox:1.35
          command: ["sh", "-c", "echo run >> /data/runs; echo \"$(hostname) runs=$(wc -l < /data/runs)\"; exec sleep 600"]
          volumeMounts: [{name: data, mountPath: /data}]
"#,
    );
    let mut seen = Vec::new();
    for _ in 0..2 {
        let mut run = f.start(&["run", "--rm", &file], None);
        run.wait_until("the pod is made", Duration::from_secs(60), || {
            f.pod_dir("db-0").exists()
        });
        f.wait_for_log("db-0", "db", "runs=");
        run.signal(Signal::SIGTERM);
        let out = run.wait(Duration::from_secs(60));
        seen.extend(lines_of(&out, "db"));
    }
    assert_eq!(seen, ["db-0 runs=1", "db-0 runs=2"]);
    let inspect = f.podctl(&["volume", "inspect", "data-db-0", "-o", "json"], None);
    assert_success(&inspect, "podctl volume inspect");
    assert_success(
        &f.podctl(&["volume", "rm", "data-db-0"], None),
        "podctl volume rm",
    );
    f.finish().await;
}

/// A CronJob in the daemon's manifests dir fires each minute: each time a Job named
/// `<cronjob>-<minutes since the epoch>` whose pod carries its labels; a daemon killed
/// while a Job runs leaves it to the next daemon, which follows its pod to the end; with
/// `successfulJobsHistoryLimit: 1` the older Job goes with its pod; a suspended CronJob
/// never fires; removing the files removes the Jobs and the records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_job_fires_each_minute_in_the_daemon_and_keeps_its_history() {
    let f = Fixture::new("cronjob").await;
    let dir = f.root.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    let cron = |name: &str, suspend: bool| {
        format!(
            r#"apiVersion: batch/v1
kind: CronJob
metadata: {{name: {name}}}
spec:
  schedule: "* * * * *"
  timeZone: Etc/UTC
  suspend: {suspend}
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: tick
              image: busybox:1.35
              env:
                - name: JOB
                  valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['job-name']"}}}}
              command: ["sh", "-c", "echo job=$(JOB); sleep 4"]
"#
        )
    };
    std::fs::write(dir.join("tick.yaml"), cron("tick", false)).unwrap();
    std::fs::write(dir.join("paused.yaml"), cron("paused", true)).unwrap();
    let mut daemon = f.daemon(&["--manifests-dir", dir.to_str().unwrap()]);
    let ticks = |f: &Fixture| -> Vec<String> {
        pod_names(f)
            .into_iter()
            .filter(|n| n.starts_with("tick-"))
            .collect()
    };
    let succeeded = |f: &Fixture, pod: &str| {
        std::fs::read_to_string(f.pod_dir(pod).join("status.json"))
            .is_ok_and(|s| s.contains("\"phase\": \"Succeeded\""))
    };
    // The first time is at most a minute away.
    daemon.wait_until("the first Job's pod", Duration::from_secs(90), || {
        ticks(&f).len() == 1
    });
    let first = ticks(&f).remove(0);
    let records = f.pods_dir().parent().unwrap().join("cronjobs");
    let record = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(records.join("tick.json")).unwrap()).unwrap()
    };
    // Killed while the Job runs: the next daemon adopts its pod and follows it.
    f.wait_for_log(&first, "tick", "job=");
    daemon.signal(Signal::SIGKILL);
    let _ = daemon.wait(Duration::from_secs(30));
    let mut daemon = f.daemon(&["--manifests-dir", dir.to_str().unwrap()]);
    daemon.wait_until("the first pod succeeded", Duration::from_secs(30), || {
        succeeded(&f, &first)
    });
    daemon.wait_until("the first Job recorded", Duration::from_secs(30), || {
        let r = record();
        r["jobs"][0]["state"] == "Complete" && r["jobs"][0]["reason"] == "DaemonRestarted"
    });
    // `tick-<minutes>-<5 letters>`; the job-name label is `tick-<minutes>`.
    let job = |pod: &str| pod[..pod.len() - 6].to_owned();
    let first_job = job(&first);
    let minutes: i64 = first_job["tick-".len()..].parse().expect("minutes");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        minutes * 60 <= now && now - minutes * 60 < 120,
        "{first_job} at {now}"
    );
    f.wait_for_log(&first, "tick", &format!("job={first_job}"));

    // The next minute makes the next Job, and the first goes (history limit 1).
    daemon.wait_until("the second Job's pod", Duration::from_secs(75), || {
        ticks(&f).iter().any(|p| job(p) != first_job)
    });
    let second = ticks(&f).into_iter().find(|p| job(p) != first_job).unwrap();
    assert_eq!(job(&second), format!("tick-{}", minutes + 1));
    daemon.wait_until("the second pod succeeded", Duration::from_secs(30), || {
        succeeded(&f, &second)
    });
    daemon.wait_until("the first Job removed", Duration::from_secs(30), || {
        ticks(&f) == [second.clone()]
    });
    let records = f.pods_dir().parent().unwrap().join("cronjobs");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(records.join("tick.json")).unwrap()).unwrap();
    let jobs = record["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{record}");
    assert_eq!(jobs[0]["name"], job(&second));
    assert_eq!(jobs[0]["state"], "Complete");
    assert!(record["lastSuccessfulTime"].is_string(), "{record}");
    // Suspended: it never fired.
    assert!(
        !pod_names(&f).iter().any(|n| n.starts_with("paused-")),
        "{:?}",
        pod_names(&f)
    );

    std::fs::remove_file(dir.join("tick.yaml")).unwrap();
    std::fs::remove_file(dir.join("paused.yaml")).unwrap();
    daemon.wait_until("the CronJobs removed", Duration::from_secs(30), || {
        pod_names(&f).is_empty()
            && !records.join("tick.json").exists()
            && !records.join("paused.json").exists()
    });
    daemon.signal(Signal::SIGTERM);
    let _ = daemon.wait(Duration::from_secs(30));
    f.finish().await;
}

/// `--all-replicas` runs every replica of a Deployment side by side, each named by the
/// controller and its output prefixed with its pod; a stop reaches all of them. Without
/// the flag, or with a hostPort the replicas would share, it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_replicas_run_side_by_side_when_asked_for() {
    let f = Fixture::new("replicas").await;
    let deployment = |ports: &str| {
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: busybox:1.35
          {ports}
          env:
            - name: POD_NAME
              valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
          command: ["sh", "-c", "echo name=$POD_NAME; echo ready; exec sleep 600"]
"#
        )
    };
    let file = write(&f, "web.yaml", &deployment(""));
    let out = f.podctl(&["run", "--rm", &file], None);
    f.assert_refused(
        &out,
        2,
        "spec.replicas: Invalid value: 2: podctl runs one replica on this host (set replicas: 1, or run every replica in the foreground with `podctl run --all-replicas`)",
        None,
    );
    let ported = write(
        &f,
        "ported.yaml",
        &deployment("ports: [{containerPort: 80, hostPort: 18080}]"),
    );
    let out = f.podctl(&["run", "--rm", "--all-replicas", &ported], None);
    f.assert_refused(
        &out,
        2,
        "spec.template.spec.containers[0].ports[0].hostPort: Invalid value: 18080: 2 replicas on one host cannot share a host port",
        None,
    );
    let out = f.podctl(&["run", "-d", "--all-replicas", &file], None);
    f.assert_refused(
        &out,
        2,
        "--all-replicas runs the replicas in the foreground",
        None,
    );
    assert!(pod_names(&f).is_empty(), "{:?}", pod_names(&f));

    let mut run = f.start(&["run", "--rm", "--all-replicas", &file], None);
    run.wait_until("both replicas made", Duration::from_secs(60), || {
        pod_names(&f).len() == 2
    });
    let names = pod_names(&f);
    for name in &names {
        assert!(name.starts_with("web-"), "{name}");
        f.wait_for_log(name, "app", "ready");
    }
    run.signal(Signal::SIGTERM);
    let out = run.wait(Duration::from_secs(60));
    for name in &names {
        let lines = lines_of(&out, &format!("{name}/app"));
        assert_eq!(
            lines.first(),
            Some(&format!("name={name}")),
            "{}",
            text(&out.stdout)
        );
    }
    assert!(pod_names(&f).is_empty(), "{:?}", pod_names(&f));
    f.finish().await;
}
