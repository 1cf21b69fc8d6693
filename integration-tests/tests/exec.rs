//! `podctl exec` end to end, against a private containerd per test: a command in a running
//! container of a pod run by `podctl run` in the background, with the container's env and
//! working directory, its exit code, stdin with `-i`, a terminal with `-t` (podctl run under
//! a pseudo-terminal made by the test), the choice of container, and the errors. After every
//! exec no exec process is left in the container and no exec FIFO in the pod's `io` dir;
//! every test ends with the fixture's leak check.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::{openpty, Winsize};
use nix::sys::signal::{kill, Signal};
use nix::sys::termios::{tcgetattr, LocalFlags};
use nix::unistd::Pid;
use podctl_integration_tests::{pod, text, wait_for, Background, Fixture};

/// How long a pod of these tests may run before podctl is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(40);
/// How long one exec may take.
const EXEC_TIMEOUT: Duration = Duration::from_secs(20);

/// A main container that runs until SIGTERM, logging `ready` first.
const SERVE: &str = r#"["sh", "-c", "trap 'exit 0' TERM; echo ready; sleep 1000 & wait"]"#;

/// Starts `manifest` with `podctl run --rm` in the background and waits until `container`
/// logged `ready`.
fn start_pod(f: &Fixture, name: &str, container: &str, manifest: &str) -> Background {
    let run = f.start(&["run", "--rm", "-"], Some(manifest));
    f.wait_for_log(name, container, "ready");
    run
}

/// Stops a pod started by [`start_pod`] (its containers exit 0 on SIGTERM).
fn stop_pod(run: Background) {
    run.signal(Signal::SIGTERM);
    let out = run.wait(RUN_TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// `podctl exec args`, with `stdin` piped in when given, bounded by [`EXEC_TIMEOUT`]. The
/// whole of `stdin` is written before podctl's output is read: keep it well below the
/// pipes' buffers.
fn exec(f: &Fixture, args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    f.start(&all, stdin).wait(EXEC_TIMEOUT)
}

/// Waits for `child` to end (killing it and failing after [`EXEC_TIMEOUT`]).
fn wait_child(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + EXEC_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("polling podctl") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {EXEC_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fails unless `out` ended with `code`.
fn assert_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The exec FIFOs in `pod`'s `io` dir: there must be none once an exec is over.
fn exec_fifos(f: &Fixture, pod: &str) -> Vec<String> {
    std::fs::read_dir(f.pod_dir(pod).join("io"))
        .expect("reading the pod's io dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("podctl-exec-"))
        .collect()
}

/// Asserts that no exec process runs in `container` of `pod` (its processes as `ps`, run
/// by exec, lists them: the container's own, and `ps` itself) and no exec FIFO is left.
fn assert_exec_cleaned_up(f: &Fixture, pod: &str, container: &str, own: &[&str]) {
    let out = exec(f, &[pod, "-c", container, "--", "ps", "-o", "args"], None);
    assert_code(&out, 0, "ps in the container");
    let listed = text(&out.stdout);
    let others: Vec<&str> = listed
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "ps -o args" && !own.contains(l))
        .collect();
    assert!(
        others.is_empty(),
        "exec processes left: {others:?}\n{listed}"
    );
    assert_eq!(exec_fifos(f, pod), Vec::<String>::new());
}

/// The processes of the [`SERVE`] container.
const SERVE_PROCESSES: [&str; 2] = [
    "sh -c trap 'exit 0' TERM; echo ready; sleep 1000 & wait",
    "sleep 1000",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_with_the_containers_env_and_cwd_and_returns_its_exit_code() {
    let f = Fixture::new("exec-basic").await;
    let manifest = pod(
        "web",
        &format!(
            r#"
  volumes:
    - name: work
      emptyDir: {{}}
  containers:
    - name: app
      image: busybox:1.35
      workingDir: /work
      env:
        - name: GREETING
          value: hello from the pod
      command: {SERVE}
      volumeMounts:
        - name: work
          mountPath: /work
"#
        ),
    );
    let run = start_pod(&f, "web", "app", &manifest);

    // The pod's hostname (HOSTNAME is in the container's env), and the exit code.
    let out = exec(
        &f,
        &["web", "--", "sh", "-c", "echo $HOSTNAME; exit 3"],
        None,
    );
    assert_code(&out, 3, "exit 3");
    assert_eq!(text(&out.stdout), "web\n");
    assert_eq!(text(&out.stderr), "");

    // Env and working directory are the container's; stderr goes to stderr.
    let out = exec(
        &f,
        &[
            "web",
            "--",
            "sh",
            "-c",
            "echo $GREETING; pwd; echo oops >&2",
        ],
        None,
    );
    assert_code(&out, 0, "env and cwd");
    assert_eq!(text(&out.stdout), "hello from the pod\n/work\n");
    assert_eq!(text(&out.stderr), "oops\n");

    // -c naming the only container works as leaving it out.
    let out = exec(&f, &["web", "-c", "app", "--", "pwd"], None);
    assert_code(&out, 0, "-c app");
    assert_eq!(text(&out.stdout), "/work\n");

    // A command killed by a signal: 128 + n.
    let out = exec(&f, &["web", "--", "sh", "-c", "kill -9 $$"], None);
    assert_code(&out, 137, "killed by SIGKILL");

    // -i: stdin is passed through, and its end closes the command's stdin.
    let input = "first line\nsecond line\n";
    let out = exec(&f, &["-i", "web", "--", "cat"], Some(input));
    assert_code(&out, 0, "-i cat");
    assert_eq!(text(&out.stdout), input);
    let out = exec(&f, &["-i", "web", "--", "wc", "-c"], Some(""));
    assert_code(&out, 0, "-i with empty stdin");
    assert_eq!(text(&out.stdout).trim(), "0");
    // Without -i the command has no input: cat ends at once.
    let out = exec(&f, &["web", "--", "cat"], Some("ignored\n"));
    assert_code(&out, 0, "cat without -i");
    assert_eq!(text(&out.stdout), "");
    // Input and output larger than a pipe's buffer arrive whole.
    let big = "0123456789abcdef".repeat(100_000 / 16);
    let out = exec(&f, &["-i", "web", "--", "cat"], Some(&big));
    assert_code(&out, 0, "-i cat of 100 kB");
    assert_eq!(out.stdout.len(), big.len());
    assert!(out.stdout == big.as_bytes());
    let out = exec(
        &f,
        &[
            "web",
            "--",
            "sh",
            "-c",
            "yes 0123456789abcdef | head -c 1000000",
        ],
        None,
    );
    assert_code(&out, 0, "1 MB of output");
    assert_eq!(out.stdout.len(), 1_000_000);

    // podctl's stdout closed early (`podctl exec web -- yes | head -c 4`): the command gets
    // SIGPIPE, as in a pipeline of its own.
    let mut child = f
        .command(&["exec", "web", "--", "yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning podctl exec");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut first = [0u8; 4];
    stdout.read_exact(&mut first).expect("reading yes's output");
    assert_eq!(&first, b"y\ny\n");
    drop(stdout);
    let status = wait_child(&mut child, "podctl exec -- yes with its stdout closed");
    assert_eq!(status.code(), Some(141), "SIGPIPE");

    // Commands that cannot be started.
    let out = exec(&f, &["web", "--", "no-such-command", "x"], None);
    assert_code(&out, 127, "command not found");
    let err = text(&out.stderr);
    assert!(
        err.starts_with("podctl: \"no-such-command\" not found in container \"app\""),
        "{err}"
    );
    assert!(err.contains("executable file not found"), "{err}");
    let out = exec(&f, &["web", "--", "/no/such/file"], None);
    assert_code(&out, 127, "absent path");
    let out = exec(&f, &["web", "--", "/etc"], None);
    assert_code(&out, 126, "a directory cannot be run");
    let err = text(&out.stderr);
    assert!(
        err.starts_with("podctl: cannot run \"/etc\" in container \"app\""),
        "{err}"
    );

    assert_exec_cleaned_up(&f, "web", "app", &SERVE_PROCESSES);
    stop_pod(run);
    f.finish().await;
}

/// Ctrl-C (SIGINT) without a terminal kills the command: podctl exits 130 and nothing of
/// the exec is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupting_exec_kills_the_command() {
    let f = Fixture::new("exec-int").await;
    let manifest = pod(
        "intr",
        &format!(
            r#"
  containers:
    - name: app
      image: busybox:1.35
      command: {SERVE}
"#
        ),
    );
    let run = start_pod(&f, "intr", "app", &manifest);
    let mut exec_run = f.start(
        &[
            "exec",
            "intr",
            "--",
            "sh",
            "-c",
            "echo started >&2; exec sleep 300",
        ],
        None,
    );
    exec_run.wait_until("the command started", EXEC_TIMEOUT, || {
        exec_run_started(&f, "intr")
    });
    let interrupted = Instant::now();
    exec_run.signal(Signal::SIGINT);
    let out = exec_run.wait(EXEC_TIMEOUT);
    assert_code(&out, 130, "interrupted");
    assert_eq!(text(&out.stderr), "started\n");
    assert!(interrupted.elapsed() < Duration::from_secs(5));
    assert_exec_cleaned_up(&f, "intr", "app", &SERVE_PROCESSES);

    // A command still running when its container stops ends with it (killed as the
    // container's processes are), and podctl exec reports that.
    let mut exec_run = f.start(&["exec", "intr", "--", "sleep", "300"], None);
    exec_run.wait_until("the command started", EXEC_TIMEOUT, || {
        exec_run_started(&f, "intr")
    });
    stop_pod(run);
    let out = exec_run.wait(EXEC_TIMEOUT);
    assert_code(&out, 137, "the container stopped");
    f.finish().await;
}

/// Whether `sleep 300`, started by an exec, runs in `pod`.
fn exec_run_started(f: &Fixture, pod: &str) -> bool {
    let out = exec(f, &[pod, "--", "ps", "-o", "args"], None);
    text(&out.stdout).lines().any(|l| l.trim() == "sleep 300")
}

/// Several containers: one must be named; a sidecar can be named; an init container that
/// has finished is not running; an unknown name is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_chooses_among_the_pods_containers() {
    let f = Fixture::new("exec-choose").await;
    let manifest = pod(
        "duo",
        &format!(
            r#"
  initContainers:
    - name: setup
      image: busybox:1.35
      command: ["true"]
    - name: proxy
      image: busybox:1.35
      restartPolicy: Always
      env:
        - name: WHO
          value: proxy
      command: {SERVE}
  containers:
    - name: first
      image: busybox:1.35
      env:
        - name: WHO
          value: first
      command: {SERVE}
    - name: second
      image: busybox:1.35
      env:
        - name: WHO
          value: second
      command: {SERVE}
"#
        ),
    );
    let run = f.start(&["run", "--rm", "-"], Some(&manifest));
    f.wait_for_log("duo", "first", "ready");
    f.wait_for_log("duo", "second", "ready");

    let out = exec(&f, &["duo", "--", "sh", "-c", "echo $WHO"], None);
    assert_code(&out, 1, "no -c with two main containers");
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "podctl: a container name must be specified for pod duo, choose one of: \
         [first second] or one of the init containers: [proxy setup]\n"
    );

    for who in ["second", "first", "proxy"] {
        let out = exec(&f, &["duo", "-c", who, "--", "sh", "-c", "echo $WHO"], None);
        assert_code(&out, 0, who);
        assert_eq!(text(&out.stdout), format!("{who}\n"));
    }

    let out = exec(&f, &["duo", "-c", "setup", "--", "true"], None);
    assert_code(&out, 1, "finished init container");
    assert_eq!(
        text(&out.stderr),
        "podctl: container \"setup\" in pod \"duo\" is not running\n"
    );

    let out = exec(&f, &["duo", "-c", "nope", "--", "true"], None);
    assert_code(&out, 1, "unknown container");
    assert_eq!(
        text(&out.stderr),
        "podctl: container nope is not valid for pod duo, choose one of: \
         [first second] or one of the init containers: [proxy setup]\n"
    );

    assert_eq!(exec_fifos(&f, "duo"), Vec::<String>::new());
    stop_pod(run);
    f.finish().await;
}

/// Unknown pods and pods that are not running are refused with exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_into_a_pod_that_does_not_run_fails() {
    let f = Fixture::new("exec-gone").await;
    let out = exec(&f, &["ghost", "--", "true"], None);
    assert_code(&out, 1, "unknown pod");
    assert_eq!(
        text(&out.stderr),
        format!("podctl: no pod \"ghost\" in namespace {:?}\n", f.namespace)
    );
    let out = exec(&f, &["Not_A_Pod", "--", "true"], None);
    assert_code(&out, 1, "not a pod name");

    // A pod that ran to its end (kept: no --rm).
    let manifest = pod(
        "done",
        r#"
  containers:
    - name: app
      image: busybox:1.35
      command: ["true"]
"#,
    );
    let ran = f.podctl(&["run", "-"], Some(&manifest));
    assert_code(&ran, 0, "the pod ran");
    let out = exec(&f, &["done", "--", "true"], None);
    assert_code(&out, 1, "finished pod");
    assert_eq!(text(&out.stderr), "podctl: pod \"done\" is not running\n");
    f.remove("done");
    f.finish().await;
}

/// What a test reads from the master side of a pseudo-terminal, as it comes.
struct PtyOutput {
    buf: Arc<Mutex<Vec<u8>>>,
    reader: std::thread::JoinHandle<()>,
}

impl PtyOutput {
    fn new(master: &OwnedFd) -> Self {
        let mut file = File::from(master.try_clone().expect("cloning the pty master"));
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            // EIO once every slave fd is closed (podctl exited).
            while let Ok(n) = file.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Self { buf, reader }
    }

    fn text(&self) -> String {
        text(&self.buf.lock().unwrap())
    }

    /// Waits until the output holds `needle`.
    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + EXEC_TIMEOUT;
        while !self.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "never saw {needle:?} on the terminal:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `-it` under a pseudo-terminal: the command gets a terminal of its own, of podctl's
/// terminal's size, which follows a resize (SIGWINCH); keys go through raw; the terminal is
/// restored at the end; the exit code is the command's. `-t` alone gives a terminal too,
/// `-it` with piped input falls back to none, as kubectl does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_terminal() {
    let f = Fixture::new("exec-tty").await;
    let manifest = pod(
        "term",
        &format!(
            r#"
  containers:
    - name: app
      image: busybox:1.35
      command: {SERVE}
"#
        ),
    );
    let run = start_pod(&f, "term", "app", &manifest);

    let size = Winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).expect("openpty");
    let before = tcgetattr(pty.slave.as_fd()).expect("the terminal's settings");
    assert!(before.local_flags.contains(LocalFlags::ICANON));
    let output = PtyOutput::new(&pty.master);
    let mut cmd = f.command(&[
        "exec",
        "-it",
        "term",
        "--",
        "sh",
        "-c",
        "tty; stty size; while read line; do echo \"line $line\"; stty size; done; exit 5",
    ]);
    let slave = || Stdio::from(pty.slave.try_clone().expect("cloning the pty slave"));
    cmd.stdin(slave()).stdout(slave()).stderr(slave());
    let mut child = cmd.spawn().expect("spawning podctl under a pty");
    drop(cmd);
    let pid = Pid::from_raw(child.id() as i32);

    output.wait_for("24 80");
    let shown = output.text();
    assert!(shown.contains("/dev/pts/"), "{shown:?}");
    // podctl's terminal is raw while it runs: no echo, no line editing by the host.
    let during = tcgetattr(pty.slave.as_fd()).expect("the terminal's settings");
    assert!(!during.local_flags.contains(LocalFlags::ICANON));
    assert!(!during.local_flags.contains(LocalFlags::ECHO));

    // A resize reaches the command's terminal.
    let bigger = rustix::termios::Winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&pty.master, bigger).expect("resizing the pty");
    kill(pid, Signal::SIGWINCH).expect("signalling podctl");
    let mut master = File::from(pty.master.try_clone().expect("cloning the pty master"));
    let deadline = Instant::now() + EXEC_TIMEOUT;
    let mut sent = 0;
    while !output.text().contains("30 100") {
        assert!(
            Instant::now() < deadline,
            "the resize never arrived:\n{}",
            output.text()
        );
        // Enter (raw: a carriage return, which the command's terminal turns into a newline).
        master.write_all(b"x\r").expect("typing");
        sent += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(sent >= 1);
    assert!(output.text().contains("line x"), "{}", output.text());
    // Ctrl-D at the start of a line: end of input for `read` on the command's terminal.
    master.write_all(&[4]).expect("typing Ctrl-D");

    let status = wait_child(&mut child, "podctl exec -it");
    assert_eq!(status.code(), Some(5), "{}", output.text());
    let after = tcgetattr(pty.slave.as_fd()).expect("the terminal's settings");
    assert_eq!(after.local_flags, before.local_flags);
    assert_eq!(after.input_flags, before.input_flags);
    assert_eq!(after.output_flags, before.output_flags);
    drop(pty.slave);
    drop(master);
    let PtyOutput { reader, .. } = output;
    let _ = reader.join();

    // -t alone: a terminal, output on stdout (carriage returns added by the terminal).
    let out = exec(
        &f,
        &["-t", "term", "--", "sh", "-c", "tty; echo err >&2"],
        None,
    );
    assert_code(&out, 0, "-t");
    let shown = text(&out.stdout);
    assert!(shown.starts_with("/dev/pts/"), "{shown:?}");
    assert!(shown.ends_with("\r\nerr\r\n"), "{shown:?}");
    assert_eq!(text(&out.stderr), "");

    // -it with piped input: kubectl's warning, and no terminal.
    let out = exec(&f, &["-it", "term", "--", "tty"], Some(""));
    assert_code(&out, 1, "-it without a terminal");
    assert_eq!(text(&out.stdout), "not a tty\n");
    assert_eq!(
        text(&out.stderr),
        "Unable to use a TTY - input is not a terminal or the right kind of file\n"
    );

    wait_for("no exec FIFOs", || exec_fifos(&f, "term").is_empty());
    assert_exec_cleaned_up(&f, "term", "app", &SERVE_PROCESSES);
    stop_pod(run);
    f.finish().await;
}
