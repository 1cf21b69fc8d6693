//! `podctl logs` end to end, against a private containerd per test: the logs of finished and
//! running pods (init containers, the previous run, `--tail`, `--timestamps`, `-f`), and log
//! rotation under `podctl run --log-max-size/--log-max-files`. Every test ends with the
//! fixture's leak check.

use std::process::Output;
use std::time::Duration;

use podctl_integration_tests::{assert_success, pod, pod_with_policy, text, Fixture};

/// A lowered back-off: 200 ms, doubling, capped at 1 s.
const FAST_BACKOFF: [&str; 4] = ["--backoff-base", "200ms", "--backoff-cap", "1s"];

/// How long any one pod or follower of these tests may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(40);

/// `podctl run` arguments: `extra`, then the lowered back-off, the manifest on stdin.
fn run_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&FAST_BACKOFF);
    args.push("-");
    args
}

/// Runs a pod to its end, without `--rm` so its logs stay; it must succeed.
fn run_to_end(f: &Fixture, extra: &[&str], manifest: &str) -> Output {
    let out = f.start(&run_args(extra), Some(manifest)).wait(RUN_TIMEOUT);
    assert_success(&out, "podctl run");
    out
}

/// `podctl logs args`.
fn logs(f: &Fixture, args: &[&str]) -> Output {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    f.podctl(&all, None)
}

/// `podctl logs args`, which must succeed; its stdout.
fn logs_ok(f: &Fixture, args: &[&str]) -> String {
    let out = logs(f, args);
    assert_success(&out, &format!("podctl logs {}", args.join(" ")));
    text(&out.stdout)
}

/// `podctl logs args`, which must fail; its error message.
fn logs_err(f: &Fixture, args: &[&str]) -> String {
    let out = logs(f, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "podctl logs {} should fail\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    text(&out.stderr)
}

/// The numbers of `<prefix> <n>` lines, checked to be consecutive.
fn numbers(lines: &str, prefix: &str) -> Vec<u32> {
    let numbers: Vec<u32> = lines
        .lines()
        .map(|l| {
            l.strip_prefix(prefix)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a {prefix:?} line: {l:?}"))
        })
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "lines not consecutive: {numbers:?}"
    );
    numbers
}

/// A finished pod's logs: its only main container by default, an init container by name,
/// stderr and stdout in the order written, an unfinished last line as it was left,
/// `--tail`, `--timestamps`, `-f` returning at once; and the errors for an unknown
/// container, a missing previous run and an unknown pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_a_finished_pod() {
    let f = Fixture::new("logsdone").await;
    let manifest = pod(
        "done",
        r#"
  initContainers:
    - name: setup
      image: busybox:1.35
      command: ["sh", "-c", "echo setting up; sleep 0.2; echo 'set up' >&2"]
  containers:
    - name: app
      image: busybox:1.35
      command: ["sh", "-c", "echo one; sleep 0.2; echo two >&2; sleep 0.2; printf 'three\\nfour'"]
"#,
    );
    run_to_end(&f, &[], &manifest);

    assert_eq!(logs_ok(&f, &["done"]), "one\ntwo\nthree\nfour");
    assert_eq!(logs_ok(&f, &["done", "-c", "app"]), "one\ntwo\nthree\nfour");
    assert_eq!(
        logs_ok(&f, &["done", "-c", "setup"]),
        "setting up\nset up\n"
    );
    assert_eq!(logs_ok(&f, &["done", "--tail", "2"]), "three\nfour");
    assert_eq!(logs_ok(&f, &["done", "--tail", "0"]), "");
    assert_eq!(
        logs_ok(&f, &["done", "--tail", "-1"]),
        "one\ntwo\nthree\nfour"
    );
    // A container that ended: following prints what there is and returns.
    assert_eq!(logs_ok(&f, &["done", "-f"]), "one\ntwo\nthree\nfour");

    let stamped = logs_ok(&f, &["done", "-c", "setup", "--timestamps"]);
    let lines: Vec<(&str, &str)> = stamped
        .lines()
        .map(|l| l.split_once(' ').unwrap_or_else(|| panic!("{l:?}")))
        .collect();
    assert_eq!(
        lines.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
        ["setting up", "set up"]
    );
    for (time, _) in &lines {
        // RFC 3339 in UTC with a fraction: 2026-11-25T12:34:56.123456789Z.
        let b = time.as_bytes();
        assert!(
            time.len() > 20
                && b[4] == b'-'
                && b[10] == b'T'
                && b[19] == b'.'
                && time.ends_with('Z'),
            "not an RFC3339Nano time: {time:?}"
        );
    }
    assert!(lines[0].0 <= lines[1].0, "{stamped}");

    let err = logs_err(&f, &["done", "-c", "nope"]);
    assert!(
        err.contains("container nope is not valid for pod done"),
        "{err}"
    );
    let err = logs_err(&f, &["done", "--previous"]);
    assert!(
        err.contains(r#"previous terminated container "app" in pod "done" not found"#),
        "{err}"
    );
    let err = logs_err(&f, &["nosuchpod"]);
    assert!(err.contains(r#"no pod "nosuchpod""#), "{err}");

    f.remove("done");
    f.finish().await;
}

/// Without `-c`, a pod with two main containers is refused with the list of its containers,
/// init containers apart, as the API server words it; each is shown when named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_must_be_named_when_there_are_two() {
    let f = Fixture::new("logstwo").await;
    let manifest = pod(
        "two",
        r#"
  initContainers:
    - name: prep
      image: busybox:1.35
      command: ["echo", "prepared"]
  containers:
    - name: web
      image: busybox:1.35
      command: ["echo", "from web"]
    - name: worker
      image: busybox:1.35
      command: ["echo", "from worker"]
"#,
    );
    run_to_end(&f, &[], &manifest);
    let err = logs_err(&f, &["two"]);
    assert!(
        err.contains(
            "a container name must be specified for pod two, choose one of: [web worker] \
             or one of the init containers: [prep]"
        ),
        "{err}"
    );
    assert_eq!(logs_ok(&f, &["two", "-c", "web"]), "from web\n");
    assert_eq!(
        logs_ok(&f, &["two", "--container", "worker"]),
        "from worker\n"
    );
    assert_eq!(logs_ok(&f, &["two", "-c", "prep"]), "prepared\n");
    f.remove("two");
    f.finish().await;
}

/// Under `OnFailure`, a container that fails once and then succeeds has two runs: the current
/// one is its second, `--previous` (`-p`) shows the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_shows_the_run_before_the_restart() {
    let f = Fixture::new("logsprev").await;
    let manifest = pod_with_policy(
        "again",
        "OnFailure",
        r#"
  volumes:
    - name: work
      emptyDir: {}
  containers:
    - name: app
      image: busybox:1.35
      command:
        - sh
        - -c
        - |
          n=$(cat /work/count 2>/dev/null || echo 0)
          n=$((n + 1))
          echo $n > /work/count
          echo "run $n"
          echo "run $n on stderr" >&2
          test $n -ge 2
      volumeMounts: [{name: work, mountPath: /work}]
"#,
    );
    run_to_end(&f, &[], &manifest);
    let current = logs_ok(&f, &["again"]);
    let mut sorted: Vec<&str> = current.lines().collect();
    sorted.sort();
    assert_eq!(sorted, ["run 2", "run 2 on stderr"], "{current}");
    let previous = logs_ok(&f, &["again", "--previous"]);
    let mut sorted: Vec<&str> = previous.lines().collect();
    sorted.sort();
    assert_eq!(sorted, ["run 1", "run 1 on stderr"], "{previous}");
    assert_eq!(logs_ok(&f, &["again", "-p"]), previous);
    assert_eq!(
        logs_ok(&f, &["again", "-p", "--tail", "1"]).lines().count(),
        1
    );
    f.remove("again");
    f.finish().await;
}

/// `-f` on a running container prints what it wrote so far and what it writes next, and
/// returns when the container ends; with `--tail 1` it starts from the last line written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_returns_when_the_container_ends() {
    let f = Fixture::new("logsfollow").await;
    let manifest = pod(
        "ticker",
        r#"
  containers:
    - name: app
      image: busybox:1.35
      command: ["sh", "-c", "for i in $(seq 1 15); do echo tick $i; sleep 0.2; done"]
"#,
    );
    let run = f.start(&run_args(&[]), Some(&manifest));
    f.wait_for_log("ticker", "app", "tick 2");
    let follow = f.start(&["logs", "-f", "ticker"], None);
    let from_tail = f.start(&["logs", "--follow", "--tail", "1", "ticker"], None);
    let followed = follow.wait(RUN_TIMEOUT);
    assert_success(&followed, "podctl logs -f");
    let from_tail = from_tail.wait(RUN_TIMEOUT);
    assert_success(&from_tail, "podctl logs -f --tail 1");
    let out = run.wait(RUN_TIMEOUT);
    assert_success(&out, "podctl run");

    let all = text(&followed.stdout);
    assert_eq!(
        numbers(&all, "tick "),
        (1..=15).collect::<Vec<_>>(),
        "{all}"
    );
    let tail = text(&from_tail.stdout);
    let seen = numbers(&tail, "tick ");
    assert!(seen.first() >= Some(&2), "{tail}");
    assert_eq!(seen.last(), Some(&15), "{tail}");
    f.remove("ticker");
    f.finish().await;
}

/// A container printing about 1 MiB with `--log-max-size 64Ki --log-max-files 3` leaves at
/// most three files for its run, none past 64Ki by more than one record; what is kept reads
/// in order and `--tail 5` shows the last five lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_bounds_a_chatty_container() {
    let f = Fixture::new("logsrotate").await;
    let manifest = pod(
        "chatty",
        r#"
  containers:
    - name: app
      image: busybox:1.35
      command:
        - sh
        - -c
        - |
          i=0
          while [ $i -lt 16000 ]; do
            echo "line $i padding-padding-padding-padding-padding-padding-padding"
            i=$((i + 1))
          done
"#,
    );
    let out = run_to_end(
        &f,
        &["--log-max-size", "64Ki", "--log-max-files", "3"],
        &manifest,
    );
    assert!(out.stdout.len() > 1_000_000, "printed {}", out.stdout.len());

    let dir = f.pod_dir("chatty").join("logs").join("app");
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(files.len() <= 3, "{names:?}");
    assert!(names.contains(&"0.log"), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| *n == "0.log" || n.starts_with("0.log.")),
        "{names:?}"
    );
    for (name, bytes) in &files {
        let record = bytes
            .split(|b| *b == b'\n')
            .map(<[u8]>::len)
            .max()
            .unwrap_or(0)
            + 1;
        assert!(
            bytes.len() <= 64 * 1024 + record,
            "{name}: {} bytes",
            bytes.len()
        );
    }

    let last = logs_ok(&f, &["chatty", "--tail", "5"]);
    assert_eq!(numbers(&last, "line "), [15995, 15996, 15997, 15998, 15999]);
    let kept = logs_ok(&f, &["chatty"]);
    let kept = numbers(&kept, "line ");
    assert_eq!(kept.last(), Some(&15999));
    assert!(kept[0] > 0, "the oldest files were removed");
    f.remove("chatty");
    f.finish().await;
}
