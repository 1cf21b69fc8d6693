//! The pod lifecycle end to end, against a private containerd per test: restart policies and
//! the crash-loop back-off, init containers retried, native sidecars, termination order and
//! grace, `activeDeadlineSeconds`, probes and lifecycle hooks. The back-off is lowered so each
//! test takes seconds; every test ends with the fixture's leak check.
//!
//! Timing is read from `/proc/uptime` (centiseconds, the host's clock: containers share the
//! host's time namespace), written by the containers into an emptyDir.

use std::process::Output;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use podctl_integration_tests::{
    json_status, oci_image_tar, pod, pod_with_policy, prefixed_lines, text, Fixture, OciTarOptions,
};
use serde_json::Value;

/// A lowered back-off: 200 ms, doubling, capped at 1 s.
const FAST_BACKOFF: [&str; 4] = ["--backoff-base", "200ms", "--backoff-cap", "1s"];

/// `podctl run` arguments: `extra`, then the lowered back-off, the manifest on stdin.
fn run_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&FAST_BACKOFF);
    args.push("-");
    args
}

/// How long any one pod of these tests may take before podctl is killed and the test fails
/// (a wrong engine may restart forever or ignore a deadline).
const RUN_TIMEOUT: Duration = Duration::from_secs(40);

/// Runs podctl with `args` and the manifest on stdin to its end (at most [`RUN_TIMEOUT`]).
fn run_pod(f: &Fixture, args: &[&str], manifest: &str) -> Output {
    f.start(args, Some(manifest)).wait(RUN_TIMEOUT)
}

/// The status of container `name` in the status list `list` (`initContainerStatuses` or
/// `containerStatuses`).
fn container<'a>(status: &'a Value, list: &str, name: &str) -> &'a Value {
    status[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {status:#}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}: {status:#}"))
}

/// The pod condition of type `type_`.
fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap_or_else(|| panic!("no conditions in {status:#}"))
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no condition {type_} in {status:#}"))
}

/// One `--events` line: `podctl: event <time> <type> <reason> <object>: <message>`.
#[derive(Debug)]
struct EventLine {
    type_: String,
    reason: String,
    object: String,
    message: String,
}

/// The `--events` lines of podctl's stderr.
fn events(stderr: &str) -> Vec<EventLine> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("podctl: event "))
        .map(|rest| {
            let mut parts = rest.splitn(4, ' ');
            let (_time, type_, reason) = (parts.next(), parts.next(), parts.next());
            let (object, message) = parts
                .next()
                .and_then(|r| r.split_once(": "))
                .unwrap_or_else(|| panic!("malformed event line {rest:?}"));
            EventLine {
                type_: type_.unwrap_or_default().to_string(),
                reason: reason.unwrap_or_default().to_string(),
                object: object.to_string(),
                message: message.to_string(),
            }
        })
        .collect()
}

/// How many events of `reason` about `object` there are.
fn count(events: &[EventLine], reason: &str, object: &str) -> usize {
    events
        .iter()
        .filter(|e| e.reason == reason && e.object == object)
        .count()
}

/// The `/proc/uptime` readings (seconds) the containers appended to `file`, one a line,
/// possibly after a label: `[label ]<uptime> <idle>` or `<label> ... at <uptime>`.
fn uptimes(file: &str) -> Vec<f64> {
    file.lines()
        .map(|l| {
            l.split_whitespace()
                .find_map(|w| w.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no uptime in {l:?}"))
        })
        .collect()
}

/// Seconds since the epoch of a status or event time (`YYYY-MM-DDTHH:MM:SSZ`, as
/// Kubernetes writes them).
fn unix_seconds(rfc3339: &str) -> i64 {
    let field = |range: std::ops::Range<usize>| -> i64 {
        rfc3339
            .get(range)
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("not a Kubernetes time: {rfc3339:?}"))
    };
    assert!(
        rfc3339.len() == 20 && rfc3339.ends_with('Z'),
        "not a Kubernetes time: {rfc3339:?}"
    );
    let (y, m, d) = (field(0..4), field(5..7), field(8..10));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + field(11..13) * 3600 + field(14..16) * 60 + field(17..19)
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// An init container failing twice under `OnFailure` is restarted (at once, then after the
/// back-off) until it exits 0; then the main container runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_container_is_retried_under_on_failure_until_it_succeeds() {
    let f = Fixture::new("initretry").await;
    let manifest = pod_with_policy(
        "initretry",
        "OnFailure",
        r#"
  volumes:
    - name: work
      emptyDir: {}
  initContainers:
    - name: flaky
      image: busybox:1.35
      command:
        - sh
        - -c
        - |
          n=$(cat /work/count 2>/dev/null || echo 0)
          n=$((n + 1))
          echo $n > /work/count
          echo "attempt $n"
          test $n -ge 3 || exit 1
      volumeMounts: [{name: work, mountPath: /work}]
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "echo ran >> /work/main-runs; echo count $(cat /work/count)"]
      volumeMounts: [{name: work, mountPath: /work}]
"#,
    );
    // Without --rm: the volume and the per-attempt logs stay for inspection.
    let out = run_pod(&f, &run_args(&["-o", "json"]), &manifest);
    let status = json_status(&out);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}\n{status:#}");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let flaky = container(&status, "initContainerStatuses", "flaky");
    assert_eq!(flaky["restartCount"], 2, "{flaky:#}");
    assert_eq!(flaky["state"]["terminated"]["exitCode"], 0, "{flaky:#}");
    assert_eq!(flaky["lastState"]["terminated"]["exitCode"], 1, "{flaky:#}");
    assert_eq!(
        flaky["lastState"]["terminated"]["reason"], "Error",
        "{flaky:#}"
    );
    let main = container(&status, "containerStatuses", "main");
    assert_eq!(main["restartCount"], 0, "{main:#}");
    assert_eq!(main["state"]["terminated"]["exitCode"], 0, "{main:#}");
    assert_eq!(condition(&status, "Initialized")["status"], "True");
    assert_eq!(prefixed_lines(&err, "main"), ["count 3"]);

    let work = f.volume_dir("initretry", "work");
    assert_eq!(read(&work.join("count")), "3\n");
    assert_eq!(read(&work.join("main-runs")), "ran\n", "main ran once");
    for attempt in 0..3 {
        let log = read(&f.log_path("initretry", "flaky", attempt));
        assert!(
            log.contains(&format!(" stdout F attempt {}\n", attempt + 1)),
            "attempt {attempt}: {log}"
        );
    }
    f.remove("initretry");
    f.finish().await;
}

/// Under `restartPolicy: Never` a failing init container is not retried: the pod fails with
/// its exit code and the main container never leaves `PodInitializing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_init_container_under_never_fails_the_pod_without_retry() {
    let f = Fixture::new("initnever").await;
    let manifest = pod(
        "initnever",
        r#"
  initContainers:
    - name: init
      image: busybox:1.35
      command: ["sh", "-c", "echo init ran; exit 7"]
  containers:
    - name: main
      image: busybox:1.35
      command: ["echo", "main ran"]
"#,
    );
    let out = run_pod(&f, &run_args(&["--rm", "-o", "json"]), &manifest);
    let status = json_status(&out);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}\n{status:#}");
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let init = container(&status, "initContainerStatuses", "init");
    assert_eq!(init["restartCount"], 0, "{init:#}");
    assert_eq!(init["state"]["terminated"]["exitCode"], 7, "{init:#}");
    assert_eq!(init["lastState"], serde_json::json!({}), "{init:#}");
    let main = container(&status, "containerStatuses", "main");
    assert_eq!(
        main["state"]["waiting"]["reason"], "PodInitializing",
        "{main:#}"
    );
    assert_eq!(main["restartCount"], 0, "{main:#}");
    assert_eq!(
        prefixed_lines(&err, "init"),
        ["init ran"],
        "ran once: {err}"
    );
    assert!(prefixed_lines(&err, "main").is_empty(), "{err}");
    let initialized = condition(&status, "Initialized");
    assert_eq!(initialized["status"], "False", "{initialized:#}");
    f.finish().await;
}

/// Under `Always`, a crashing main container is restarted at once the first time, then after
/// the base delay, doubling up to the cap; each delayed restart is a `BackOff` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_looping_container_restarts_with_growing_delays() {
    let f = Fixture::new("crashloop").await;
    let manifest = pod_with_policy(
        "crashloop",
        "Always",
        r#"
  terminationGracePeriodSeconds: 2
  volumes:
    - name: work
      emptyDir: {}
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "cat /proc/uptime >> /work/starts; exit 1"]
      volumeMounts: [{name: work, mountPath: /work}]
"#,
    );
    let mut run = f.start(
        &[
            "run",
            "-o",
            "json",
            "--events",
            "--backoff-base",
            "500ms",
            "--backoff-cap",
            "2s",
            "-",
        ],
        Some(&manifest),
    );
    let starts = f.volume_dir("crashloop", "work").join("starts");
    // Starts after 0, 0, 500, 1000, 2000 and 2000 ms of back-off: about 5.5 s plus overhead.
    run.wait_until("six starts", Duration::from_secs(30), || {
        std::fs::read_to_string(&starts).is_ok_and(|s| s.lines().count() >= 6)
    });
    run.signal(Signal::SIGTERM);
    let out = run.wait(RUN_TIMEOUT);
    let status = json_status(&out);
    let err = text(&out.stderr);

    let times = uptimes(&read(&starts));
    let gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) * 1000.0).collect();
    // The delay expected before each restart, in ms.
    let expected = [0.0, 500.0, 1000.0, 2000.0, 2000.0];
    let residuals: Vec<f64> = gaps.iter().zip(expected).map(|(g, e)| g - e).collect();
    let context = format!("gaps between starts (ms) {gaps:?}, expected delays {expected:?}");
    for (residual, delay) in residuals.iter().zip(expected) {
        // A start cannot come earlier than its delay (20 ms for the uptime's rounding) ...
        assert!(
            *residual >= -20.0,
            "restarted before its {delay} ms delay: {context}"
        );
    }
    // ... and the rest of each gap is the same overhead (exit, cleanup, create, start): if
    // the first restart waited, or the delay kept doubling past the cap, or did not double,
    // the residuals would differ by 500 ms or more; a loaded machine adds far less.
    let spread = residuals.iter().cloned().fold(f64::MIN, f64::max)
        - residuals.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 400.0, "delays off the back-off's shape: {context}");

    let main = container(&status, "containerStatuses", "main");
    let restarts = main["restartCount"].as_u64().expect("restartCount");
    assert!(
        restarts >= 4 && restarts <= times.len() as u64,
        "{} starts: {main:#}",
        times.len()
    );
    assert_eq!(main["lastState"]["terminated"]["exitCode"], 1, "{main:#}");
    let evs = events(&err);
    assert!(count(&evs, "BackOff", "main") >= 3, "{err}");
    assert!(
        evs.iter()
            .any(|e| e.reason == "BackOff" && e.type_ == "Warning"),
        "{err}"
    );
    assert!(count(&evs, "Started", "main") >= 6, "{err}");
    f.remove("crashloop");
    f.finish().await;
}

/// A native sidecar serves the main container on localhost; once the main container is done
/// the sidecar is stopped after it, does not hold the pod open, and its non-zero exit does
/// not fail the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_serves_main_on_localhost_and_is_stopped_after_it() {
    let f = Fixture::new("sidecar").await;
    let manifest = pod(
        "sidecar",
        r#"
  terminationGracePeriodSeconds: 30
  initContainers:
    - name: web
      image: busybox:1.35
      restartPolicy: Always
      command:
        - sh
        - -c
        - |
          mkdir -p /www && echo hello from the sidecar > /www/index.html
          trap 'exit 143' TERM
          httpd -f -p 8080 -h /www &
          wait
  containers:
    - name: main
      image: busybox:1.35
      command:
        - sh
        - -c
        - |
          # busybox's static wget crashes on some hosts: speak HTTP with nc.
          for i in $(seq 50); do
            printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc 127.0.0.1 8080 > /tmp/response &&
              grep -q '^HTTP/1.[01] 200' /tmp/response && tail -n 1 /tmp/response && exit 0
            sleep 0.1
          done
          exit 1
"#,
    );
    let started = Instant::now();
    let out = run_pod(&f, &run_args(&["--rm", "-o", "json"]), &manifest);
    let elapsed = started.elapsed();
    let status = json_status(&out);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}\n{status:#}");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    assert_eq!(prefixed_lines(&err, "main"), ["hello from the sidecar"]);
    let main = container(&status, "containerStatuses", "main");
    let web = container(&status, "initContainerStatuses", "web");
    assert_eq!(main["state"]["terminated"]["exitCode"], 0, "{main:#}");
    let web_exit = web["state"]["terminated"]["exitCode"]
        .as_i64()
        .unwrap_or_else(|| panic!("sidecar not terminated: {web:#}"));
    assert_ne!(web_exit, 0, "the sidecar was stopped: {web:#}");
    assert_eq!(web["restartCount"], 0, "{web:#}");
    let finished = |c: &Value| {
        c["state"]["terminated"]["finishedAt"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(finished(web) >= finished(main), "{status:#}");
    let main_exit = err
        .find("container main exited with code 0")
        .unwrap_or_else(|| panic!("{err}"));
    let web_exit_line = err
        .find("sidecar web exited with code")
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        main_exit < web_exit_line,
        "sidecar stopped before main: {err}"
    );
    // The grace period is 30 s: only a sidecar stopped at once lets the run end this soon.
    assert!(
        elapsed < Duration::from_secs(10),
        "the sidecar held the pod open for {elapsed:?}: {err}"
    );
    f.finish().await;
}

/// When the main containers are done, sidecars are stopped in the reverse of their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_are_stopped_in_reverse_order() {
    let f = Fixture::new("reverse").await;
    let sidecar = |name: &str| {
        format!(
            r#"
    - name: {name}
      image: busybox:1.35
      restartPolicy: Always
      env: [{{name: NAME, value: {name}}}]
      command:
        - sh
        - -c
        - |
          trap 'echo "$NAME stopped at $(cut -d" " -f1 /proc/uptime)" >> /work/stops; exit 0' TERM
          sleep 1000 &
          wait
      volumeMounts: [{{name: work, mountPath: /work}}]"#
        )
    };
    let manifest = pod(
        "reverse",
        &format!(
            r#"
  terminationGracePeriodSeconds: 10
  volumes:
    - name: work
      emptyDir: {{}}
  initContainers:{}{}
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "sleep 0.5; echo \"main done at $(cut -d' ' -f1 /proc/uptime)\" >> /work/stops"]
      volumeMounts: [{{name: work, mountPath: /work}}]
"#,
            sidecar("first"),
            sidecar("second")
        ),
    );
    let out = run_pod(&f, &run_args(&["-o", "json"]), &manifest);
    let status = json_status(&out);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}\n{status:#}");
    let stops = read(&f.volume_dir("reverse", "work").join("stops"));
    let who: Vec<&str> = stops
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(who, ["main", "second", "first"], "{stops}");
    let times = uptimes(&stops);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{stops}");
    for name in ["first", "second"] {
        let c = container(&status, "initContainerStatuses", name);
        assert_eq!(c["state"]["terminated"]["exitCode"], 0, "{c:#}");
        assert_eq!(c["restartCount"], 0, "{c:#}");
    }
    f.remove("reverse");
    f.finish().await;
}

/// A container that ignores SIGTERM is killed when `terminationGracePeriodSeconds` is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_ignoring_sigterm_is_killed_after_the_grace_period() {
    let f = Fixture::new("grace").await;
    let manifest = pod(
        "grace",
        r#"
  terminationGracePeriodSeconds: 3
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "trap '' TERM; echo ready; sleep 1000"]
"#,
    );
    let run = f.start(&run_args(&["--rm", "-o", "json"]), Some(&manifest));
    f.wait_for_log("grace", "main", "ready");
    let signalled = Instant::now();
    run.signal(Signal::SIGTERM);
    let out = run.wait(RUN_TIMEOUT);
    let elapsed = signalled.elapsed();
    let status = json_status(&out);
    let err = text(&out.stderr);
    assert!(
        elapsed >= Duration::from_millis(2900),
        "killed before the grace period was over: {elapsed:?}\n{err}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "not killed when the grace period was over: {elapsed:?}\n{err}"
    );
    let main = container(&status, "containerStatuses", "main");
    assert_eq!(main["state"]["terminated"]["exitCode"], 137, "{main:#}");
    assert_eq!(out.status.code(), Some(137), "{err}");
    assert_eq!(status["phase"], "Failed", "{status:#}");
    f.finish().await;
}

/// `activeDeadlineSeconds` ends a pod that runs too long: Failed with reason
/// `DeadlineExceeded`, its containers stopped with the normal graceful flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_deadline_fails_a_pod_that_runs_too_long() {
    let f = Fixture::new("deadline").await;
    let manifest = pod(
        "deadline",
        r#"
  activeDeadlineSeconds: 2
  terminationGracePeriodSeconds: 2
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "trap 'exit 143' TERM; sleep 100 & wait"]
"#,
    );
    let started = Instant::now();
    let out = run_pod(
        &f,
        &run_args(&["--rm", "-o", "json", "--events"]),
        &manifest,
    );
    let elapsed = started.elapsed();
    let status = json_status(&out);
    let err = text(&out.stderr);
    assert_eq!(status["phase"], "Failed", "{status:#}");
    assert_eq!(status["reason"], "DeadlineExceeded", "{status:#}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("deadline")),
        "{status:#}"
    );
    let main = container(&status, "containerStatuses", "main");
    assert_eq!(main["state"]["terminated"]["exitCode"], 143, "{main:#}");
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(
        elapsed >= Duration::from_secs(2),
        "ended before the deadline: {elapsed:?}"
    );
    // Deadline (2 s) + grace (2 s) + start and teardown.
    assert!(
        elapsed < Duration::from_secs(7),
        "the deadline did not end the pod in time: {elapsed:?}\n{err}"
    );
    let evs = events(&err);
    assert!(
        evs.iter()
            .any(|e| e.reason == "DeadlineExceeded" && e.type_ == "Warning" && e.object == "pod"),
        "{err}"
    );
    assert!(count(&evs, "Killing", "main") >= 1, "{err}");
    f.finish().await;
}

/// `OnFailure` restarts a main container that exits non-zero, never one that exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_restarts_failures_only() {
    let f = Fixture::new("onfailure").await;
    let manifest = pod_with_policy(
        "onfailure",
        "OnFailure",
        r#"
  volumes:
    - name: work
      emptyDir: {}
  containers:
    - name: ok
      image: busybox:1.35
      command: ["sh", "-c", "echo run >> /work/ok-runs"]
      volumeMounts: [{name: work, mountPath: /work}]
    - name: flaky
      image: busybox:1.35
      command:
        - sh
        - -c
        - |
          echo run >> /work/flaky-runs
          test $(wc -l < /work/flaky-runs) -ge 3
      volumeMounts: [{name: work, mountPath: /work}]
"#,
    );
    let out = run_pod(&f, &run_args(&["-o", "json"]), &manifest);
    let status = json_status(&out);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}\n{status:#}");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let ok = container(&status, "containerStatuses", "ok");
    assert_eq!(ok["restartCount"], 0, "{ok:#}");
    assert_eq!(ok["state"]["terminated"]["exitCode"], 0, "{ok:#}");
    assert_eq!(ok["lastState"], serde_json::json!({}), "{ok:#}");
    let flaky = container(&status, "containerStatuses", "flaky");
    assert_eq!(flaky["restartCount"], 2, "{flaky:#}");
    assert_eq!(flaky["state"]["terminated"]["exitCode"], 0, "{flaky:#}");
    assert_eq!(flaky["lastState"]["terminated"]["exitCode"], 1, "{flaky:#}");
    let work = f.volume_dir("onfailure", "work");
    assert_eq!(read(&work.join("ok-runs")), "run\n");
    assert_eq!(read(&work.join("flaky-runs")), "run\nrun\nrun\n");
    f.remove("onfailure");
    f.finish().await;
}

/// A container is stopped with its image's `StopSignal`, not SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_stop_signal_stops_the_container() {
    let f = Fixture::new("stopsignal").await;
    let tar = oci_image_tar(
        f.root.path(),
        &OciTarOptions {
            containerd_name: Some("docker.io/library/quitter:1".into()),
            stop_signal: Some("SIGQUIT".into()),
            ..Default::default()
        },
    );
    let imported = f.podctl(&["image", "import", "-q", tar.to_str().unwrap()], None);
    assert_eq!(
        imported.status.code(),
        Some(0),
        "{}",
        text(&imported.stderr)
    );
    let manifest = pod(
        "stopsignal",
        r#"
  terminationGracePeriodSeconds: 10
  containers:
    - name: main
      image: quitter:1
      command: ["sh", "-c", "trap 'echo got QUIT; exit 3' QUIT; trap 'echo got TERM; exit 4' TERM; echo ready; sleep 1000 & wait"]
"#,
    );
    let run = f.start(&run_args(&["--rm", "-o", "json"]), Some(&manifest));
    f.wait_for_log("stopsignal", "main", "ready");
    run.signal(Signal::SIGTERM);
    let out = run.wait(RUN_TIMEOUT);
    let status = json_status(&out);
    let err = text(&out.stderr);
    assert_eq!(prefixed_lines(&err, "main"), ["ready", "got QUIT"], "{err}");
    let main = container(&status, "containerStatuses", "main");
    assert_eq!(main["state"]["terminated"]["exitCode"], 3, "{main:#}");
    let removed = f.podctl(&["image", "rm", "quitter:1"], None);
    assert_eq!(removed.status.code(), Some(0), "{}", text(&removed.stderr));
    f.finish().await;
}

/// A sidecar with a startupProbe counts as started only once the probe succeeds: the next
/// init container waits until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_probe_gates_the_next_init_container() {
    let f = Fixture::new("startup").await;
    let manifest = pod(
        "startup",
        r#"
  terminationGracePeriodSeconds: 5
  volumes:
    - name: shared
      emptyDir: {}
  initContainers:
    - name: warmup
      image: busybox:1.35
      restartPolicy: Always
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1; touch /shared/ready; sleep 1000 & wait"]
      startupProbe:
        exec: {command: ["test", "-f", "/shared/ready"]}
        periodSeconds: 1
        failureThreshold: 30
      volumeMounts: [{name: shared, mountPath: /shared}]
    - name: check
      image: busybox:1.35
      command: ["sh", "-c", "if test -f /shared/ready; then echo present; else echo absent; exit 1; fi"]
      volumeMounts: [{name: shared, mountPath: /shared}]
  containers:
    - name: main
      image: busybox:1.35
      command: ["true"]
"#,
    );
    let out = run_pod(&f, &run_args(&["--rm", "-o", "json"]), &manifest);
    let status = json_status(&out);
    let err = text(&out.stderr);
    assert_eq!(
        prefixed_lines(&err, "check"),
        ["present"],
        "the next init container ran before the startupProbe succeeded: {err}"
    );
    assert_eq!(out.status.code(), Some(0), "{err}\n{status:#}");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let warmup = container(&status, "initContainerStatuses", "warmup");
    assert_eq!(warmup["restartCount"], 0, "{warmup:#}");
    f.finish().await;
}

/// A failing livenessProbe kills the container, which `Always` then restarts; the failure is
/// an `Unhealthy` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_liveness_probe_restarts_the_container() {
    let f = Fixture::new("liveness").await;
    let manifest = pod_with_policy(
        "liveness",
        "Always",
        r#"
  terminationGracePeriodSeconds: 2
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "trap 'exit 0' TERM; touch /tmp/alive; echo up; sleep 1; rm /tmp/alive; sleep 1000 & wait"]
      livenessProbe:
        exec: {command: ["test", "-f", "/tmp/alive"]}
        periodSeconds: 1
        failureThreshold: 1
"#,
    );
    let mut run = f.start(&run_args(&["-o", "json", "--events"]), Some(&manifest));
    run.wait_until(
        "an Unhealthy event and a second start",
        Duration::from_secs(20),
        || {
            let evs = f.recorded_events("liveness");
            let of = |reason: &str| {
                evs.iter()
                    .filter(|e| e["reason"] == reason && e["container"] == "main")
                    .count()
            };
            of("Unhealthy") >= 1 && of("Started") >= 2
        },
    );
    run.signal(Signal::SIGTERM);
    let out = run.wait(RUN_TIMEOUT);
    let status = json_status(&out);
    let err = text(&out.stderr);
    let main = container(&status, "containerStatuses", "main");
    assert!(
        main["restartCount"].as_u64().is_some_and(|n| n >= 1),
        "{main:#}"
    );
    let evs = events(&err);
    assert!(
        evs.iter().any(|e| e.reason == "Unhealthy"
            && e.type_ == "Warning"
            && e.object == "main"
            && e.message.contains("Liveness probe failed")),
        "{err}"
    );
    assert!(count(&evs, "Killing", "main") >= 1, "{err}");
    f.remove("liveness");
    f.finish().await;
}

/// A readinessProbe that never succeeds keeps the container unready: `ContainersReady` and
/// `Ready` never turn True (their last transition is from before the container started), and
/// each failure is an `Unhealthy` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_whose_readiness_probe_fails_is_never_ready() {
    let f = Fixture::new("unready").await;
    let manifest = pod(
        "unready",
        r#"
  containers:
    - name: main
      image: busybox:1.35
      command: ["sleep", "3"]
      readinessProbe:
        exec: {command: ["test", "-f", "/tmp/ready"]}
        periodSeconds: 1
"#,
    );
    let out = run_pod(
        &f,
        &run_args(&["--rm", "-o", "json", "--events"]),
        &manifest,
    );
    let status = json_status(&out);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}\n{status:#}");
    let main = container(&status, "containerStatuses", "main");
    assert_eq!(main["ready"], false, "{main:#}");
    let started_at = unix_seconds(main["state"]["terminated"]["startedAt"].as_str().unwrap());
    let finished_at = unix_seconds(main["state"]["terminated"]["finishedAt"].as_str().unwrap());
    for type_ in ["ContainersReady", "Ready"] {
        let c = condition(&status, type_);
        assert_eq!(c["status"], "False", "{c:#}");
        let since = unix_seconds(c["lastTransitionTime"].as_str().unwrap());
        // Times have a resolution of one second; the container ran three.
        assert!(
            since <= started_at && since < finished_at,
            "{type_} changed while the container ran ({started_at} .. {finished_at}), so it \
             was True meanwhile: {c:#}"
        );
    }
    let evs = events(&err);
    assert!(
        evs.iter().any(|e| e.reason == "Unhealthy"
            && e.object == "main"
            && e.message.contains("Readiness probe failed")),
        "{err}"
    );
    f.finish().await;
}

/// Readiness follows the probe: ready once it succeeds, unready again once it fails. Seen in
/// the final status as a `ContainersReady` transition (to False) strictly inside the
/// container's run, and as readiness failures reported after it had been ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_probe_while_the_container_runs() {
    let f = Fixture::new("readiness").await;
    let manifest = pod(
        "readiness",
        r#"
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "sleep 1; touch /tmp/ready; sleep 2; rm /tmp/ready; sleep 3"]
      readinessProbe:
        exec: {command: ["test", "-f", "/tmp/ready"]}
        periodSeconds: 1
        failureThreshold: 1
"#,
    );
    let out = run_pod(&f, &run_args(&["-o", "json", "--events"]), &manifest);
    let status = json_status(&out);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}\n{status:#}");
    let main = container(&status, "containerStatuses", "main");
    let started_at = unix_seconds(main["state"]["terminated"]["startedAt"].as_str().unwrap());
    let finished_at = unix_seconds(main["state"]["terminated"]["finishedAt"].as_str().unwrap());
    // True after about 1 s, False again after about 3 s, then unchanged at the end (6 s).
    for type_ in ["ContainersReady", "Ready"] {
        let c = condition(&status, type_);
        assert_eq!(c["status"], "False", "{c:#}");
        let since = unix_seconds(c["lastTransitionTime"].as_str().unwrap());
        assert!(
            started_at < since && since < finished_at,
            "{type_} should have turned False while the container ran ({started_at} .. \
             {finished_at}) when the probe began failing: {c:#}"
        );
    }
    // Readiness failures both before the file exists and after it is gone, none in between:
    // the events file keeps the times.
    let unhealthy: Vec<Value> = f
        .recorded_events("readiness")
        .into_iter()
        .filter(|e| e["reason"] == "Unhealthy" && e["container"] == "main")
        .collect();
    assert!(
        unhealthy.iter().all(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("Readiness probe failed")),
        "{unhealthy:#?}"
    );
    assert!(
        unhealthy
            .iter()
            .any(|e| unix_seconds(e["time"].as_str().unwrap()) > started_at + 3),
        "no readiness failure after the file was removed: {unhealthy:#?}\n{err}"
    );
    f.remove("readiness");
    f.finish().await;
}

/// A postStart hook runs to its end before the next container in spec order starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_start_hook_completes_before_the_next_container_starts() {
    let f = Fixture::new("poststart").await;
    let manifest = pod(
        "poststart",
        r#"
  terminationGracePeriodSeconds: 2
  volumes:
    - name: work
      emptyDir: {}
  containers:
    - name: a
      image: busybox:1.35
      command: ["sleep", "3"]
      lifecycle:
        postStart:
          exec: {command: ["sh", "-c", "sleep 1; touch /work/post-start-done"]}
      volumeMounts: [{name: work, mountPath: /work}]
    - name: b
      image: busybox:1.35
      command: ["sh", "-c", "if test -f /work/post-start-done; then echo present; else echo absent; exit 1; fi"]
      volumeMounts: [{name: work, mountPath: /work}]
"#,
    );
    let out = run_pod(&f, &run_args(&["--rm", "-o", "json"]), &manifest);
    let status = json_status(&out);
    let err = text(&out.stderr);
    assert_eq!(
        prefixed_lines(&err, "b"),
        ["present"],
        "b started before a's postStart hook was done: {err}"
    );
    assert_eq!(out.status.code(), Some(0), "{err}\n{status:#}");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    f.finish().await;
}

/// On stop, the preStop hook runs to its end before the stop signal is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_stop_hook_runs_before_the_stop_signal() {
    let f = Fixture::new("prestop").await;
    let manifest = pod(
        "prestop",
        r#"
  terminationGracePeriodSeconds: 10
  volumes:
    - name: work
      emptyDir: {}
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "trap 'echo term >> /work/order; exit 0' TERM; echo ready; sleep 1000 & wait"]
      lifecycle:
        preStop:
          exec: {command: ["sh", "-c", "sleep 0.5; echo prestop >> /work/order"]}
      volumeMounts: [{name: work, mountPath: /work}]
"#,
    );
    let run = f.start(&run_args(&["-o", "json"]), Some(&manifest));
    f.wait_for_log("prestop", "main", "ready");
    run.signal(Signal::SIGTERM);
    let out = run.wait(RUN_TIMEOUT);
    let status = json_status(&out);
    let err = text(&out.stderr);
    let order =
        std::fs::read_to_string(f.volume_dir("prestop", "work").join("order")).unwrap_or_default();
    assert_eq!(order, "prestop\nterm\n", "{err}\n{status:#}");
    let main = container(&status, "containerStatuses", "main");
    assert_eq!(main["state"]["terminated"]["exitCode"], 0, "{main:#}");
    f.remove("prestop");
    f.finish().await;
}

/// The README's sidecar example: the job reads from the sidecar it waited for, and the pod
/// ends as soon as the job is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_example_runs() {
    let f = Fixture::new("sidecar-example").await;
    let manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sidecar-job.yaml");
    let out = f.podctl(
        &["run", "--rm", "-o", "json", manifest.to_str().unwrap()],
        None,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let status = json_status(&out);
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    assert_eq!(
        prefixed_lines(&err, "job"),
        ["hello from the sidecar"],
        "{err}"
    );
    assert_eq!(prefixed_lines(&err, "server"), ["server stopping"], "{err}");
    f.finish().await;
}
