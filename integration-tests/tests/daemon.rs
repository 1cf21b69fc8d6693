//! `podctl daemon` against a real containerd: pods handed over with `run -d`, the day-2
//! commands on them, the manifests dir, the API socket's permissions, and recovery: the
//! daemon killed (SIGKILL) at several points of a pod's start, containerd restarted while a
//! pod runs, and a simulated reboot. Every test ends with the fixture's leak check.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use podctl_integration_tests::{assert_success, text, wait_for, Background, Fixture};
use podctl_runtime::containerd::{labels, TaskStatus};
use serde_json::Value;

/// How long a daemon may take to exit on SIGTERM.
const DAEMON_EXIT: Duration = Duration::from_secs(10);
/// How long a pod may take to reach a state these tests wait for.
const CONVERGE: Duration = Duration::from_secs(30);

/// A pod whose init containers and main container each append their name to `runs` in a
/// shared volume when they start: how often each ran is on disk.
fn counted(name: &str, init_sleep: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 5
  volumes:
    - name: data
      emptyDir: {{}}
  initContainers:
    - name: first
      image: busybox:1.35
      command: ["sh", "-c", "echo first >> /data/runs; echo first-log; sleep {init_sleep}"]
      volumeMounts: [{{name: data, mountPath: /data}}]
    - name: second
      image: busybox:1.35
      command: ["sh", "-c", "echo second >> /data/runs; sleep {init_sleep}"]
      volumeMounts: [{{name: data, mountPath: /data}}]
  containers:
    - name: app
      image: busybox:1.35
      command: ["sh", "-c", "trap 'exit 0' TERM; echo app >> /data/runs; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"]
      volumeMounts: [{{name: data, mountPath: /data}}]
"#
    )
}

/// `podctl args`, which must succeed; its stdout.
fn ok(f: &Fixture, args: &[&str]) -> String {
    let out = f.podctl(args, None);
    assert_success(&out, &format!("podctl {}", args.join(" ")));
    text(&out.stdout)
}

/// `podctl run -d -` with `manifest`; the pod's name.
fn run_detached(f: &Fixture, manifest: &str) -> String {
    let out = f.podctl(&["run", "-d", "-"], Some(manifest));
    assert_success(&out, "podctl run -d");
    text(&out.stdout).trim().to_string()
}

/// The pod's status, as `inspect -o json` shows it.
fn status(f: &Fixture, pod: &str) -> Value {
    let out = f.podctl(&["inspect", pod, "-o", "json"], None);
    assert_success(&out, "podctl inspect");
    let pod: Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    pod["status"].clone()
}

/// The pod's status, or `None` while it does not exist (being replaced or recreated).
fn try_status(f: &Fixture, pod: &str) -> Option<Value> {
    let out = f.podctl(&["inspect", pod, "-o", "json"], None);
    if !out.status.success() {
        return None;
    }
    let pod: Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    Some(pod["status"].clone())
}

fn container<'a>(status: &'a Value, list: &str, name: &str) -> &'a Value {
    find(status, list, name).unwrap_or_else(|| panic!("no {name} in {list}: {status:#}"))
}

fn find<'a>(status: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    status[list]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == name))
}

/// Waits until `pod` exists and its main container `app` runs and, when given, is not
/// the container `not`; its status then.
fn wait_app_running(
    f: &Fixture,
    pod: &str,
    not: Option<&Value>,
    daemon: Option<&Background>,
) -> Value {
    let deadline = Instant::now() + CONVERGE;
    let mut last = Value::Null;
    loop {
        if let Some(s) = try_status(f, pod) {
            last = s;
            let app = find(&last, "containerStatuses", "app");
            let running = app.is_some_and(|a| {
                a["state"]["running"].is_object() && not.is_none_or(|n| &a["containerID"] != n)
            });
            if last["phase"] == "Running" && running {
                return last;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{pod} not running: {last:#}\ndaemon log:\n{}",
            daemon.map(Background::stderr_so_far).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the pod's main container `app` runs.
fn wait_running(f: &Fixture, pod: &str) -> Value {
    wait_app_running(f, pod, None, None)
}

/// How many times each container of a [`counted`] pod started.
fn runs(f: &Fixture, pod: &str) -> BTreeMap<String, usize> {
    let file = f.volume_dir(pod, "data").join("runs");
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
        *counts.entry(line.to_string()).or_default() += 1;
    }
    counts
}

/// The pod's containerd containers by container name, with their task states.
async fn objects(f: &Fixture, pod: &str) -> BTreeMap<String, Vec<Option<TaskStatus>>> {
    let filter = format!("labels.\"{}\"==\"{pod}\"", labels::POD);
    let mut out: BTreeMap<String, Vec<Option<TaskStatus>>> = BTreeMap::new();
    for c in f
        .client
        .list_containers(&filter)
        .await
        .expect("listing containers")
    {
        let name = c.labels.get(labels::CONTAINER).cloned().unwrap_or_default();
        let task = f.client.task_status(&c.id).await.expect("task status");
        out.entry(name).or_default().push(task);
    }
    out
}

/// Stops the daemon as systemd does (SIGTERM); its pods keep running.
fn stop_daemon(daemon: Background) {
    daemon.signal(Signal::SIGTERM);
    let out = daemon.wait(DAEMON_EXIT);
    assert!(out.status.success(), "daemon exit: {}", text(&out.stderr));
}

/// Stops and removes `pod` through the daemon.
fn stop_and_remove(f: &Fixture, pod: &str) {
    ok(f, &["stop", pod]);
    ok(f, &["rm", pod]);
}

/// `run -d`, then every day-2 command on the daemon's pod: ps, inspect, logs (init
/// container, -f, --previous), exec with its exit code, stop, rm; the daemon refuses a
/// second pod of the same name and a manifest it must refuse, leaving nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_pods_answer_every_day2_command() {
    let f = Fixture::new("daemon-day2").await;
    let daemon = f.daemon(&[]);
    let mode = std::fs::metadata(f.socket())
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    assert_eq!(run_detached(&f, &counted("web", "0.2")), "web");
    let s = wait_running(&f, "web");
    assert_eq!(
        container(&s, "initContainerStatuses", "first")["state"]["terminated"]["exitCode"],
        0,
        "{s:#}"
    );
    let ps = ok(&f, &["ps"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with("web ") && l.contains("Running")),
        "{ps}"
    );

    // A second pod of that name, and an invalid manifest: refused, nothing created.
    let again = f.podctl(&["run", "-d", "-"], Some(&counted("web", "0.2")));
    assert_eq!(again.status.code(), Some(125), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    let typo = counted("typo", "0").replace(
        "volumeMounts: [{name: data, mountPath: /data}]\n  containers",
        "volumeMount: [{name: data, mountPath: /data}]\n  containers",
    );
    let refused = f.podctl(&["run", "-d", "-"], Some(&typo));
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(!f.pod_dir("typo").exists());

    let logs = ok(&f, &["logs", "web", "-c", "first"]);
    assert_eq!(logs.trim(), "first-log");
    let tail = ok(&f, &["logs", "web", "--tail", "1"]);
    assert!(tail.starts_with("tick "), "{tail}");

    let exec = f.podctl(
        &["exec", "web", "--", "sh", "-c", "cat /data/runs; exit 7"],
        None,
    );
    assert_eq!(exec.status.code(), Some(7), "{}", text(&exec.stderr));
    assert_eq!(text(&exec.stdout), "first\nsecond\napp\n");

    // `rm` of a running daemon pod needs -f; `stop` goes through the daemon, which keeps
    // running.
    let rm = f.podctl(&["rm", "web"], None);
    assert_eq!(rm.status.code(), Some(1), "{}", text(&rm.stderr));
    assert!(
        text(&rm.stderr).contains("still running"),
        "{}",
        text(&rm.stderr)
    );
    ok(&f, &["stop", "web"]);
    let s = status(&f, "web");
    assert_eq!(s["phase"], "Succeeded", "{s:#}");
    let all = ok(&f, &["ps", "-a"]);
    assert!(
        all.lines()
            .any(|l| l.starts_with("web ") && l.contains("Completed")),
        "{all}"
    );
    ok(&f, &["rm", "web"]);
    stop_daemon(daemon);
    f.finish().await;
}

/// A client without access to the root-only socket gets a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_socket_is_roots() {
    let f = Fixture::new("daemon-perm").await;
    let daemon = f.daemon(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let manifest = dir.path().join("pod.yaml");
    std::fs::write(&manifest, counted("nobody", "0")).unwrap();
    let out = f
        .command(&["run", "-d", manifest.to_str().unwrap()])
        .uid(65534)
        .gid(65534)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running podctl as nobody");
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("permission denied"), "{err}");
    stop_daemon(daemon);
    f.finish().await;
}

/// The manifests dir: a file added is started, a changed file replaces its pod, a removed
/// file stops and removes it; an invalid file is reported and skipped, the others run on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_dir_starts_replaces_and_removes_pods() {
    let f = Fixture::new("daemon-static").await;
    let dir = f.root.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.yaml"), counted("alpha", "0")).unwrap();
    std::fs::write(dir.join("bad.yaml"), "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n    - name: c\n      image: busybox:1.35\n      imagePullPolicy: Sometimes\n").unwrap();
    let daemon = f.daemon(&["--manifests-dir", dir.to_str().unwrap()]);
    let first = wait_running(&f, "alpha");
    let first_id = container(&first, "containerStatuses", "app")["containerID"].clone();
    wait_for("the invalid file reported", || {
        let log = daemon.stderr_so_far();
        log.contains("bad.yaml") && log.contains("imagePullPolicy")
    });
    assert!(!f.pod_dir("bad").exists());

    // Added.
    std::fs::write(dir.join("b.yaml"), counted("beta", "0")).unwrap();
    wait_running(&f, "beta");
    // Changed: a new pod (new containers) from the new content.
    std::fs::write(dir.join("a.yaml"), counted("alpha", "0.1")).unwrap();
    wait_app_running(&f, "alpha", Some(&first_id), Some(&daemon));
    assert_eq!(runs(&f, "alpha").get("app"), Some(&1), "a fresh volume");
    // Removed.
    std::fs::remove_file(dir.join("b.yaml")).unwrap();
    wait_for("beta removed", || !f.pod_dir("beta").exists());
    assert!(objects(&f, "beta").await.is_empty());

    std::fs::remove_file(dir.join("a.yaml")).unwrap();
    wait_for("alpha removed", || !f.pod_dir("alpha").exists());
    stop_daemon(daemon);
    f.finish().await;
}

/// The daemon killed with SIGKILL at several points of a pod's start (during the first init
/// container, during the second, around the main container's start, while it runs), then
/// started again: every pod converges to its main container running, each container having
/// run exactly once, one containerd container per container, nothing leaked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_adopts_its_pods_at_every_kill_point() {
    let f = Fixture::new("daemon-kill").await;
    // Each init container sleeps 0.6 s: the kill points fall inside the first, the second,
    // around the main container's start, and well into its run.
    let delays_ms = [
        30, 150, 300, 450, 600, 750, 900, 1050, 1200, 1350, 1500, 2500,
    ];
    let (mut converged, mut leaked) = (0, 0);
    for (trial, delay) in delays_ms.iter().enumerate() {
        let pod = format!("kill{trial}");
        let daemon = f.daemon(&[]);
        run_detached(&f, &counted(&pod, "0.6"));
        std::thread::sleep(Duration::from_millis(*delay));
        daemon.signal(Signal::SIGKILL);
        let _ = daemon.wait(DAEMON_EXIT);

        let daemon = f.daemon(&["--log", "debug"]);
        let s = wait_app_running(&f, &pod, None, Some(&daemon));
        // Give a wrongly restarted container time to show.
        std::thread::sleep(Duration::from_millis(800));
        let counts = runs(&f, &pod);
        let once = ["first", "second", "app"]
            .iter()
            .all(|c| counts.get(*c) == Some(&1));
        let objs = objects(&f, &pod).await;
        let single = objs.len() == 3 && objs.values().all(|v| v.len() == 1);
        let app_running = objs
            .get("app")
            .is_some_and(|v| v == &[Some(TaskStatus::Running)]);
        let restarts =
            container(&status(&f, &pod), "containerStatuses", "app")["restartCount"].clone();
        eprintln!("trial {trial} (kill after {delay} ms): runs {counts:?}, objects {objs:?}, app restarts {restarts}");
        if once && single && app_running && restarts == 0 {
            converged += 1;
        } else {
            eprintln!(
                "trial {trial} did not converge; daemon log:\n{}",
                daemon.stderr_so_far()
            );
        }
        assert_eq!(s["phase"], "Running");
        stop_and_remove(&f, &pod);
        if !podctl_integration_tests::leak_check(&f.client, Some(f.root.path()))
            .await
            .is_empty()
        {
            leaked += 1;
        }
        stop_daemon(daemon);
    }
    eprintln!(
        "kill-point trials: {}, converged: {converged}, leaked: {leaked}",
        delays_ms.len()
    );
    assert_eq!(converged, delays_ms.len(), "every trial converges");
    assert_eq!(leaked, 0);
    f.finish().await;
}

/// containerd restarted while a pod runs: the container keeps running (same container, no
/// restart), its output keeps reaching its log, and the daemon goes on serving it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containerd_restart_leaves_the_pod_running() {
    let mut f = Fixture::new("daemon-ctrd").await;
    let daemon = f.daemon(&[]);
    run_detached(&f, &counted("steady", "0"));
    let before = wait_running(&f, "steady");
    let id = container(&before, "containerStatuses", "app")["containerID"].clone();
    f.ctrd.restart().await;
    let log = f.log_path("steady", "app", 0);
    let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    wait_for("the log growing after the restart", || {
        std::fs::metadata(&log).is_ok_and(|m| m.len() > size + 100)
    });
    let after = status(&f, "steady");
    let app = container(&after, "containerStatuses", "app");
    assert_eq!(app["containerID"], id, "{after:#}");
    assert_eq!(app["restartCount"], 0, "{after:#}");
    assert!(app["state"]["running"].is_object(), "{after:#}");
    let exec = f.podctl(&["exec", "steady", "--", "true"], None);
    assert_success(&exec, "exec after the restart");
    stop_and_remove(&f, "steady");
    stop_daemon(daemon);
    f.finish().await;
}

/// A reboot (daemon and containerd gone, containerd's state and the pods' namespaces lost):
/// the static pod comes back, started afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pods_come_back_after_a_reboot() {
    let mut f = Fixture::new("daemon-reboot").await;
    let dir = f.root.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.yaml"), counted("boot", "0")).unwrap();
    let args = ["--manifests-dir", dir.to_str().unwrap()];
    let daemon = f.daemon(&args);
    let before = wait_running(&f, "boot");
    daemon.signal(Signal::SIGKILL);
    let _ = daemon.wait(DAEMON_EXIT);
    f.ctrd.reboot().await;
    for m in podctl_integration_tests::mounts_under(f.root.path())
        .iter()
        .rev()
    {
        let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
    }
    f.net.reboot();

    let daemon = f.daemon(&args);
    let old = container(&before, "containerStatuses", "app")["containerID"].clone();
    wait_app_running(&f, "boot", Some(&old), Some(&daemon));
    std::fs::remove_file(dir.join("a.yaml")).unwrap();
    wait_for("boot removed", || !f.pod_dir("boot").exists());
    stop_daemon(daemon);
    f.finish().await;
}

/// The daemon killed during the first init container and kept down until the whole pod
/// has run: the exits nobody watched are not lost. The pod ends Failed with the main
/// container's exit code, each container having run once, and `ps -a` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exits_while_the_daemon_is_down_are_not_lost() {
    let f = Fixture::new("daemon-down").await;
    let manifest = counted("gone", "0.4").replace(
        "  containers:\n    - name: app\n      image: busybox:1.35\n      command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; echo app >> /data/runs; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done\"]",
        "  restartPolicy: Never\n  containers:\n    - name: app\n      image: busybox:1.35\n      command: [\"sh\", \"-c\", \"echo app >> /data/runs; exit 3\"]",
    );
    assert!(manifest.contains("exit 3"), "{manifest}");
    let daemon = f.daemon(&[]);
    run_detached(&f, &manifest);
    std::thread::sleep(Duration::from_millis(150));
    daemon.signal(Signal::SIGKILL);
    let _ = daemon.wait(DAEMON_EXIT);
    // The first init container ends meanwhile; nothing starts the second one.
    std::thread::sleep(Duration::from_millis(1500));

    let daemon = f.daemon(&["--log", "debug"]);
    let deadline = Instant::now() + CONVERGE;
    let s = loop {
        let s = status(&f, "gone");
        if s["phase"] == "Failed" {
            break s;
        }
        assert!(Instant::now() < deadline, "gone did not end: {s:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let app = container(&s, "containerStatuses", "app");
    assert_eq!(
        app["state"]["terminated"]["exitCode"],
        3,
        "{s:#}\ndaemon log:\n{}",
        daemon.stderr_so_far()
    );
    assert_eq!(
        container(&s, "initContainerStatuses", "first")["state"]["terminated"]["exitCode"],
        0,
        "{s:#}"
    );
    let counts = runs(&f, "gone");
    assert!(
        ["first", "second", "app"]
            .iter()
            .all(|c| counts.get(*c) == Some(&1)),
        "{counts:?}"
    );
    let all = ok(&f, &["ps", "-a"]);
    assert!(
        all.lines()
            .any(|l| l.starts_with("gone ") && l.contains("Error")),
        "{all}"
    );
    ok(&f, &["rm", "gone"]);
    stop_daemon(daemon);
    f.finish().await;
}
