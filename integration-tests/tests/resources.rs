//! Container `resources` end to end: CPU and memory limits in the containers' cgroups and
//! the pod's, an OOM kill reported `OOMKilled` and restarted per policy, bad input refused
//! before anything exists, and no pod cgroup left once the pod is gone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use podctl_integration_tests::{
    assert_success, json_status, lines_of, pod, pod_cgroup_leaks, pod_with_policy, text, Fixture,
};
use podctl_runtime::cgroups::{self, Version};

/// How long any one pod of these tests may take before podctl is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Prints the memory limit, CPU quota and period of the container's own cgroup, and its
/// `oom_score_adj`, on one line: `mem=<bytes> cpu=<quota> <period> adj=<n>`. On cgroup v1
/// runc mounts the container's own cgroups at /sys/fs/cgroup/<controller>; on v2 (no cgroup
/// namespace) the whole hierarchy is there and /proc/self/cgroup says where.
const PRINT_CGROUP: &str = r#"
          if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
            d=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
            echo mem=$(cat $d/memory.max) cpu=$(cat $d/cpu.max) adj=$(cat /proc/self/oom_score_adj)
          else
            echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us) adj=$(cat /proc/self/oom_score_adj)
          fi"#;

/// The host side of pod cgroup `name`: (memory limit, CPU quota, CPU period).
fn pod_cgroup_values(name: &str) -> (String, String) {
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_owned()
    };
    let root = Path::new("/sys/fs/cgroup");
    match cgroups::version() {
        Version::V1 => (
            read(
                root.join("memory/podctl")
                    .join(name)
                    .join("memory.limit_in_bytes"),
            ),
            format!(
                "{} {}",
                read(root.join("cpu/podctl").join(name).join("cpu.cfs_quota_us")),
                read(root.join("cpu/podctl").join(name).join("cpu.cfs_period_us"))
            ),
        ),
        Version::V2 => (
            read(root.join("podctl").join(name).join("memory.max")),
            read(root.join("podctl").join(name).join("cpu.max")),
        ),
    }
}

/// The `oom_score_adj` a Guaranteed container gets here: -997, or podctl's own score where
/// podctl lacks CAP_SYS_RESOURCE and the kernel refuses anything lower.
fn guaranteed_adj() -> i64 {
    (-997).max(cgroups::host().min_oom_score_adj)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_reach_the_container_and_pod_cgroups() {
    let f = Fixture::new("limits").await;
    let name = "limits";
    let manifest = pod(
        name,
        &format!(
            r#"
  volumes:
    - name: work
      emptyDir: {{}}
  containers:
    - name: app
      image: busybox:1.35
      resources:
        limits: {{cpu: 500m, memory: 64Mi}}
      volumeMounts: [{{name: work, mountPath: /work}}]
      command:
        - sh
        - -c
        - |{PRINT_CGROUP}
          until [ -e /work/done ]; do sleep 0.1; done
    - name: side
      image: busybox:1.35
      resources:
        limits: {{cpu: 250m, memory: 32Mi}}
      command:
        - sh
        - -c
        - |{PRINT_CGROUP}
"#
        ),
    );
    let run = f.start(&["run", "-"], Some(&manifest));
    f.wait_for_log(name, "app", "mem=");
    f.wait_for_log(name, "side", "mem=");

    // The pod cgroup, named after the run's shim group, holds the sums: both containers
    // declare both limits (a Guaranteed pod).
    let group = std::fs::read_to_string(f.pod_dir(name).join("shim-group")).unwrap();
    let pod_cgroup = cgroups::pod_cgroup_name(group.trim());
    let (memory, cpu) = pod_cgroup_values(&pod_cgroup);
    assert_eq!(memory, (96u64 << 20).to_string());
    assert_eq!(cpu, "75000 100000");
    if cgroups::version() == Version::V1 {
        let shares = Path::new("/sys/fs/cgroup/cpu/podctl")
            .join(&pod_cgroup)
            .join("cpu.shares");
        assert_eq!(std::fs::read_to_string(shares).unwrap().trim(), "768");
    }

    std::fs::write(f.volume_dir(name, "work").join("done"), "").unwrap();
    let out = run.wait(RUN_TIMEOUT);
    assert_success(&out, "podctl run");
    let adj = guaranteed_adj();
    assert_eq!(
        lines_of(&out, "app"),
        [format!("mem=67108864 cpu=50000 100000 adj={adj}")]
    );
    assert_eq!(
        lines_of(&out, "side"),
        [format!("mem=33554432 cpu=25000 100000 adj={adj}")]
    );

    // Gone with the pod: runc removes each container's cgroup, podctl the pod's.
    f.remove(name);
    assert_eq!(pod_cgroup_leaks(&f.namespace), Vec::<String>::new());
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hog_is_oom_killed_and_restarted() {
    let f = Fixture::new("oom").await;
    // The first run fills its memory until the OOM killer ends it; the second exits 0.
    let manifest = pod_with_policy(
        "hog",
        "OnFailure",
        r#"
  volumes:
    - name: work
      emptyDir: {}
  containers:
    - name: hog
      image: busybox:1.35
      resources:
        limits: {memory: 16Mi}
      volumeMounts: [{name: work, mountPath: /work}]
      command:
        - sh
        - -c
        - |
          if [ -e /work/ran ]; then echo second run; exit 0; fi
          touch /work/ran
          echo filling
          x=a; while true; do x=$x$x; done
"#,
    );
    let out = f
        .start(
            &["run", "--rm", "-o", "json", "--backoff-base", "200ms", "-"],
            Some(&manifest),
        )
        .wait(RUN_TIMEOUT);
    let status = json_status(&out);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}\n{status:#}");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    // A memory limit without a request: the request is the limit, no CPU: Burstable.
    assert_eq!(status["qosClass"], "Burstable", "{status:#}");
    let hog = &status["containerStatuses"][0];
    assert_eq!(hog["restartCount"], 1, "{hog:#}");
    let killed = &hog["lastState"]["terminated"];
    assert_eq!(killed["reason"], "OOMKilled", "{hog:#}");
    assert_eq!(killed["exitCode"], 137, "{hog:#}");
    assert_eq!(hog["state"]["terminated"]["reason"], "Completed", "{hog:#}");
    assert!(
        err.contains("container hog exited with code 137 (OOMKilled)"),
        "{err}"
    );
    assert_eq!(pod_cgroup_leaks(&f.namespace), Vec::<String>::new());
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_killed_without_restart_fails_the_pod() {
    let f = Fixture::new("oomnever").await;
    let manifest = pod(
        "hog",
        r#"
  containers:
    - name: hog
      image: busybox:1.35
      resources:
        limits: {memory: 16Mi}
      command: ["sh", "-c", "x=a; while true; do x=$x$x; done"]
"#,
    );
    let out = f
        .start(&["run", "--rm", "-o", "json", "-"], Some(&manifest))
        .wait(RUN_TIMEOUT);
    let status = json_status(&out);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let hog = &status["containerStatuses"][0];
    assert_eq!(hog["restartCount"], 0, "{hog:#}");
    assert_eq!(hog["state"]["terminated"]["reason"], "OOMKilled", "{hog:#}");
    assert_eq!(hog["state"]["terminated"]["exitCode"], 137, "{hog:#}");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_resources_are_refused_before_anything_exists() {
    let f = Fixture::new("badres").await;
    let cases = [
        (
            "requests: {cpu: '2'}\n        limits: {cpu: '1'}",
            "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
        ),
        (
            "limits: {memory: lots}",
            "spec.containers[0].resources.limits[memory]: Invalid value: \"lots\": quantities must match the regular expression",
        ),
        (
            "limits: {gpu: '1'}",
            "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
        ),
        (
            "limits: {example.com/gpu: '1'}",
            "spec.containers[0].resources.limits[example.com/gpu]: Forbidden: not supported by podctl yet",
        ),
        (
            "limits: {memory: 1Mi}",
            "spec.containers[0].resources.limits[memory]: Invalid value: \"1Mi\": must be at least 6Mi",
        ),
    ];
    for (resources, message) in cases {
        let out = f.run(&pod(
            "bad",
            &format!(
                "  containers:\n    - name: c\n      image: busybox:1.35\n      resources:\n        {resources}\n"
            ),
        ));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{resources}: {err}");
        assert!(err.contains(message), "{resources}: {err}");
        assert!(!f.pod_dir("bad").exists());
    }
    assert_eq!(pod_cgroup_leaks(&f.namespace), Vec::<String>::new());
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smallest_memory_limit_accepted_runs() {
    let f = Fixture::new("minmem").await;
    // Validation's minimum must leave room for runc's init and a shell (runc 1.1 fails to
    // start a container below about 3 MiB).
    let out = f.run(&pod(
        "small",
        "  containers:\n    - name: c\n      image: busybox:1.35\n      resources: {limits: {memory: 6Mi}}\n      command: [\"sh\", \"-c\", \"echo ok\"]\n",
    ));
    assert_success(&out, "podctl run");
    assert_eq!(lines_of(&out, "c"), ["ok"]);
    assert_eq!(pod_cgroup_leaks(&f.namespace), Vec::<String>::new());
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pod_cgroup_is_left_behind() {
    let f = Fixture::new("podcg").await;
    // Kept after its end (no --rm), then removed with `podctl rm`; and a pod removed as it
    // ends (--rm), which includes a restart, so one container cgroup was made twice.
    let manifest = pod(
        "kept",
        "  containers:\n    - name: c\n      image: busybox:1.35\n      resources: {limits: {cpu: 100m, memory: 32Mi}}\n      command: [\"true\"]\n",
    );
    let out = f.podctl(&["run", "-"], Some(&manifest));
    assert_success(&out, "podctl run");
    // Released with the pod's namespaces when it ended.
    assert_eq!(pod_cgroup_leaks(&f.namespace), Vec::<String>::new());
    f.remove("kept");
    let manifest = pod_with_policy(
        "removed",
        "OnFailure",
        r#"
  volumes:
    - name: work
      emptyDir: {}
  containers:
    - name: c
      image: busybox:1.35
      volumeMounts: [{name: work, mountPath: /work}]
      command: ["sh", "-c", "test -e /work/again && exit 0; touch /work/again; exit 1"]
"#,
    );
    let out = f.podctl(
        &["run", "--rm", "--backoff-base", "200ms", "-"],
        Some(&manifest),
    );
    assert_success(&out, "podctl run --rm");
    assert_eq!(pod_cgroup_leaks(&f.namespace), Vec::<String>::new());
    f.finish().await;
}
