//! The day-2 commands against pods recorded in podctl's state dir: `ps`, `inspect`,
//! `events` and `stop` on pods run in the background by `podctl run` (without `--rm`, so they
//! stay recorded until `podctl rm`). Every test ends with the fixture's leak check.

use std::process::Output;
use std::time::Duration;

use nix::sys::signal::Signal;
use podctl_integration_tests::{assert_success, json_status, pod, text, wait_for, Fixture};
use serde_json::Value;

/// How long a pod of these tests may run before podctl is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(40);

/// A pod with a native sidecar and one main container, both running until stopped; the main
/// container exits with `exit_on_term` when it gets SIGTERM.
fn sleeper(name: &str, exit_on_term: u8) -> String {
    pod(
        name,
        &format!(
            r#"
  terminationGracePeriodSeconds: 10
  initContainers:
    - name: proxy
      image: busybox:1.35
      restartPolicy: Always
      command: ["sh", "-c", "trap 'exit 0' TERM; echo up; sleep 1000 & wait"]
  containers:
    - name: app
      image: busybox:1.35
      command: ["sh", "-c", "trap 'exit {exit_on_term}' TERM; echo ready; sleep 1000 & wait"]
"#
        ),
    )
}

/// `podctl args`, which must succeed; its stdout.
fn podctl_ok(f: &Fixture, args: &[&str]) -> String {
    let out = f.podctl(args, None);
    assert_success(&out, &format!("podctl {}", args.join(" ")));
    text(&out.stdout)
}

/// `podctl args`, which must fail with exit code 1; its stderr.
fn podctl_fails(f: &Fixture, args: &[&str]) -> String {
    let out = f.podctl(args, None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "podctl {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

/// One row of `podctl ps`: NAME, READY, STATUS, RESTARTS, AGE.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PsRow {
    name: String,
    ready: String,
    status: String,
    restarts: String,
    age: String,
}

/// The rows of `podctl ps [extra]` (the header checked and left out).
fn ps(f: &Fixture, extra: &[&str]) -> Vec<PsRow> {
    let mut args = vec!["ps"];
    args.extend_from_slice(extra);
    let out = podctl_ok(f, &args);
    let mut lines = out.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(cells.len(), 5, "ps line {l:?}");
            PsRow {
                name: cells[0].into(),
                ready: cells[1].into(),
                status: cells[2].into(),
                restarts: cells[3].into(),
                age: cells[4].into(),
            }
        })
        .collect()
}

/// The `ps` row of `pod`, if listed.
fn ps_row(f: &Fixture, extra: &[&str], pod: &str) -> Option<PsRow> {
    ps(f, extra).into_iter().find(|r| r.name == pod)
}

/// `podctl ARGS -o json` parsed.
fn json(f: &Fixture, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend_from_slice(&["-o", "json"]);
    let out = f.podctl(&args, None);
    assert_success(&out, &format!("podctl {}", args.join(" ")));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "podctl {}: not JSON ({e}):\n{}",
            args.join(" "),
            text(&out.stdout)
        )
    })
}

/// The events table's rows as (TYPE, REASON, OBJECT).
fn event_rows(table: &str) -> Vec<(String, String, String)> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("LAST SEEN") && header.contains("MESSAGE"),
        "{table}"
    );
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            assert!(cells.len() >= 4, "events line {l:?}");
            (cells[1].into(), cells[2].into(), cells[3].into())
        })
        .collect()
}

fn has_event(rows: &[(String, String, String)], reason: &str, object: &str) -> bool {
    rows.iter().any(|(_, r, o)| r == reason && o == object)
}

/// Waits until `ps` lists `pod` with READY `ready` and STATUS `status`.
fn wait_for_ps(f: &Fixture, pod: &str, ready: &str, status: &str) -> PsRow {
    let mut last = None;
    wait_for(&format!("ps showing {pod} {ready} {status}"), || {
        last = ps_row(f, &[], pod);
        last.as_ref()
            .is_some_and(|r| r.ready == ready && r.status == status)
    });
    last.unwrap()
}

/// Two pods in the background: `ps`, `inspect` and `events` follow them while they run;
/// `stop` ends both (each `podctl run` exits as on Ctrl-C, with its main container's exit
/// code), after which `ps` no longer lists them, `ps -a` does until `podctl rm`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day2_commands_see_running_pods_and_stop_them() {
    let f = Fixture::new("day2").await;
    // Follows every pod's events, pods run later included, until interrupted.
    let all_events = f.start(&["events", "-f", "-o", "json"], None);
    let good = f.start(&["run", "-o", "json", "-"], Some(&sleeper("good", 0)));
    let bad = f.start(&["run", "-o", "json", "-"], Some(&sleeper("bad", 143)));
    for name in ["good", "bad"] {
        f.wait_for_log(name, "proxy", "up");
        f.wait_for_log(name, "app", "ready");
    }
    let row = wait_for_ps(&f, "good", "2/2", "Running");
    assert_eq!(row.restarts, "0", "{row:?}");
    assert!(row.age.ends_with('s'), "{row:?}");
    wait_for_ps(&f, "bad", "2/2", "Running");
    let names: Vec<String> = ps(&f, &[]).into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["bad", "good"], "sorted by name");

    // `ps -o json` is a v1 List of Pods, as `kubectl get pods -o json` prints.
    let list = json(&f, &["ps"]);
    assert_eq!(list["apiVersion"], "v1", "{list:#}");
    assert_eq!(list["kind"], "List", "{list:#}");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{list:#}");
    assert!(items.iter().all(|p| p["kind"] == "Pod"), "{list:#}");
    assert_eq!(items[1]["metadata"]["name"], "good", "{list:#}");

    // `inspect`: the v1 Pod with its live status; YAML unless told otherwise.
    let inspected = json(&f, &["inspect", "good"]);
    assert_eq!(inspected["kind"], "Pod", "{inspected:#}");
    assert_eq!(inspected["metadata"]["name"], "good", "{inspected:#}");
    assert_eq!(
        inspected["metadata"]["namespace"], f.namespace,
        "{inspected:#}"
    );
    assert_eq!(
        inspected["spec"]["containers"][0]["name"], "app",
        "{inspected:#}"
    );
    assert_eq!(inspected["status"]["phase"], "Running", "{inspected:#}");
    assert!(
        inspected["metadata"]["creationTimestamp"].is_string(),
        "{inspected:#}"
    );
    let yaml = podctl_ok(&f, &["inspect", "good"]);
    assert!(yaml.contains("kind: Pod"), "{yaml}");
    assert!(yaml.contains("phase: Running"), "{yaml}");
    let unknown = podctl_fails(&f, &["inspect", "nope"]);
    assert!(
        unknown.contains(&format!("no pod \"nope\" in namespace \"{}\"", f.namespace)),
        "{unknown}"
    );

    // `events POD`, and every pod's events merged.
    let events = event_rows(&podctl_ok(&f, &["events", "good"]));
    for object in ["pod/good/proxy", "pod/good/app"] {
        assert!(has_event(&events, "Created", object), "{events:?}");
        assert!(has_event(&events, "Started", object), "{events:?}");
    }
    assert!(
        events.iter().all(|(_, _, o)| o.starts_with("pod/good")),
        "{events:?}"
    );
    let all = event_rows(&podctl_ok(&f, &["events"]));
    assert!(has_event(&all, "Started", "pod/bad/app"), "{all:?}");
    assert!(has_event(&all, "Started", "pod/good/app"), "{all:?}");
    let listed = json(&f, &["events", "bad"]);
    let listed = listed.as_array().expect("a JSON list of events");
    assert!(
        listed
            .iter()
            .any(|e| e["pod"] == "bad" && e["reason"] == "Started" && e["container"] == "app"),
        "{listed:?}"
    );
    // A follower of one pod ends with its `podctl run`, having printed the stop's events.
    let follower = f.start(&["events", "-f", "good"], None);

    // Both stopped at once: each name is printed once its pod ended.
    let stopped = podctl_ok(&f, &["stop", "good", "bad"]);
    let mut stopped: Vec<&str> = stopped.lines().collect();
    stopped.sort();
    assert_eq!(stopped, ["bad", "good"]);

    let good = good.wait(RUN_TIMEOUT);
    let status = json_status(&good);
    assert_eq!(good.status.code(), Some(0), "{}", text(&good.stderr));
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let bad = bad.wait(RUN_TIMEOUT);
    let status = json_status(&bad);
    assert_eq!(bad.status.code(), Some(143), "{}", text(&bad.stderr));
    assert_eq!(status["phase"], "Failed", "{status:#}");
    assert_eq!(status["reason"], "Stopped", "{status:#}");

    let followed = follower.wait(Duration::from_secs(10));
    assert_success(&followed, "podctl events -f good");
    let followed = event_rows(&text(&followed.stdout));
    assert!(
        has_event(&followed, "Started", "pod/good/app"),
        "{followed:?}"
    );
    assert!(
        has_event(&followed, "Killing", "pod/good/app"),
        "{followed:?}"
    );
    assert!(
        has_event(&followed, "Killing", "pod/good/proxy"),
        "{followed:?}"
    );

    // Interrupted, the follower of all pods ends normally, one JSON event per line.
    all_events.signal(Signal::SIGINT);
    let followed = all_events.wait(Duration::from_secs(10));
    assert_success(&followed, "podctl events -f -o json");
    let followed: Vec<Value> = text(&followed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    for (pod, reason) in [
        ("good", "Started"),
        ("bad", "Started"),
        ("good", "Completed"),
        ("bad", "Failed"),
    ] {
        assert!(
            followed
                .iter()
                .any(|e| e["pod"] == pod && e["reason"] == reason),
            "no {reason} of {pod} in {followed:#?}"
        );
    }

    // Finished: gone from `ps`, listed by `ps -a` as kubectl would print them.
    let out = f.podctl(&["ps"], None);
    assert_success(&out, "podctl ps");
    assert_eq!(text(&out.stdout), "", "no pod runs");
    assert!(
        text(&out.stderr).contains("No pods found"),
        "{}",
        text(&out.stderr)
    );
    let good = ps_row(&f, &["-a"], "good").expect("ps -a lists good");
    assert_eq!(
        (good.ready.as_str(), good.status.as_str()),
        ("0/2", "Completed"),
        "{good:?}"
    );
    let bad = ps_row(&f, &["-a"], "bad").expect("ps -a lists bad");
    assert_eq!(
        (bad.ready.as_str(), bad.status.as_str()),
        ("0/2", "Error"),
        "{bad:?}"
    );
    let inspected = json(&f, &["inspect", "bad"]);
    assert_eq!(inspected["status"]["phase"], "Failed", "{inspected:#}");

    // A pod that does not run any more cannot be stopped; the others still are.
    let err = podctl_fails(&f, &["stop", "good"]);
    assert!(err.contains("\"good\" is not running"), "{err}");
    let err = podctl_fails(&f, &["stop", "nope"]);
    assert!(err.contains("no pod \"nope\""), "{err}");

    f.remove("good");
    f.remove("bad");
    assert!(ps(&f, &["-a"]).is_empty());
    f.finish().await;
}

/// A pod whose init container failed under `restartPolicy: Never` shows `Init:Error`, its
/// events show the init container's run, and `podctl rm` takes it off `ps -a`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_init_shows_init_error_until_removed() {
    let f = Fixture::new("day2init").await;
    let manifest = pod(
        "initfail",
        r#"
  initContainers:
    - name: setup
      image: busybox:1.35
      command: ["sh", "-c", "exit 3"]
  containers:
    - name: app
      image: busybox:1.35
      command: ["echo", "never"]
"#,
    );
    let out: Output = f.start(&["run", "-"], Some(&manifest)).wait(RUN_TIMEOUT);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    assert!(ps_row(&f, &[], "initfail").is_none(), "not running");
    let row = ps_row(&f, &["-a"], "initfail").expect("ps -a lists it");
    assert_eq!(
        (
            row.ready.as_str(),
            row.status.as_str(),
            row.restarts.as_str()
        ),
        ("0/1", "Init:Error", "0"),
        "{row:?}"
    );
    let inspected = json(&f, &["inspect", "initfail"]);
    assert_eq!(inspected["status"]["phase"], "Failed", "{inspected:#}");
    assert_eq!(
        inspected["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 3,
        "{inspected:#}"
    );
    let events = event_rows(&podctl_ok(&f, &["events", "initfail"]));
    assert!(
        has_event(&events, "Started", "pod/initfail/setup"),
        "{events:?}"
    );
    assert!(
        !has_event(&events, "Started", "pod/initfail/app"),
        "{events:?}"
    );
    // Following a pod that no longer runs prints what it recorded and returns.
    let followed = event_rows(&podctl_ok(&f, &["events", "-f", "initfail"]));
    assert_eq!(followed, events);

    let err = podctl_fails(&f, &["stop", "initfail"]);
    assert!(err.contains("\"initfail\" is not running"), "{err}");

    f.remove("initfail");
    assert!(ps_row(&f, &["-a"], "initfail").is_none());
    let err = podctl_fails(&f, &["events", "initfail"]);
    assert!(err.contains("no pod \"initfail\""), "{err}");
    f.finish().await;
}
