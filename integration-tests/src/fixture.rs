//! What the `podctl run` tests share: a [`Fixture`] (a private containerd with the busybox
//! test image imported through `podctl`, a podctl root of its own, the leak check to end
//! with), a podctl run in the background ([`Background`]) and small helpers for manifests and
//! output.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use podctl_runtime::containerd::Client;

use crate::network::TestNetwork;
use crate::{assert_no_leaks, busybox_image_tar, podctl_bin, unique_namespace, Containerd};

/// How long the `wait_for_*` helpers wait before failing the test.
const WAIT_TIMEOUT: Duration = Duration::from_secs(20);

/// A private containerd, a client on a namespace of its own, and podctl's root dir.
pub struct Fixture {
    pub ctrd: Containerd,
    pub client: Client,
    pub namespace: String,
    pub root: tempfile::TempDir,
    /// The CNI network this fixture's pods join.
    pub net: TestNetwork,
}

impl Fixture {
    /// A containerd with the busybox test image imported as `busybox:1.35` through `podctl`
    /// (a tag other than `latest`, so that manifests naming it default to `IfNotPresent`
    /// and never reach for a registry).
    pub async fn new(name: &str) -> Self {
        let ctrd = Containerd::start().await;
        let namespace = unique_namespace(name);
        let client = ctrd.client(&namespace).await;
        let root = tempfile::tempdir().expect("temp dir for podctl's root");
        let net = TestNetwork::new(root.path());
        let f = Self {
            ctrd,
            client,
            namespace,
            root,
            net,
        };
        let tar = busybox_image_tar(f.root.path(), "busybox:1.35", false);
        let out = f.podctl(&["image", "import", tar.to_str().unwrap()], None);
        assert_success(&out, "image import");
        let progress = text(&out.stderr);
        assert!(progress.contains("verified 3 blobs"), "{progress}");
        assert!(
            progress.contains("unpacked busybox:1.35 (1 layer)"),
            "{progress}"
        );
        std::fs::remove_file(tar).ok();
        f
    }

    /// `podctl args` aimed at this fixture's containerd, namespace and root.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(podctl_bin());
        cmd.args(args)
            .env("CONTAINERD_ADDRESS", self.ctrd.socket())
            .env("PODCTL_NAMESPACE", &self.namespace)
            .env("PODCTL_ROOT", self.root.path())
            .env("PODCTL_SOCKET", self.socket())
            .env_remove("PODCTL_MANIFESTS_DIR")
            .env_remove("PODCTL_LOG")
            .env_remove("PODCTL_BACKOFF_BASE")
            .env_remove("PODCTL_BACKOFF_CAP")
            // Registry credentials only from what a test writes: never the host's.
            .env("DOCKER_CONFIG", self.docker_config_dir())
            .env(
                "PODCTL_PULL_SECRETS_DIR",
                self.root.path().join("pull-secrets"),
            )
            .env_remove("REGISTRY_AUTH_FILE")
            .env("PODCTL_CNI_CONF_DIR", &self.net.conf_dir)
            .env_remove("PODCTL_NETWORK")
            .env_remove("PODCTL_CNI_BIN_DIR")
            .env_remove("PODCTL_INSECURE_REGISTRIES");
        cmd
    }

    /// The `DOCKER_CONFIG` dir podctl reads credentials from in this fixture (the file
    /// `config.json` in it does not exist until a test writes it).
    pub fn docker_config_dir(&self) -> PathBuf {
        self.root.path().join("docker")
    }

    /// Starts podctl with piped output, feeding `stdin` when given.
    pub fn spawn(&self, args: &[&str], stdin: Option<&str>) -> Child {
        let mut child = self
            .command(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning podctl");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            pipe.write_all(text.as_bytes())
                .expect("writing the manifest");
        }
        child
    }

    /// Starts podctl in the background: its output is collected as it comes (so a chatty
    /// pod never blocks on a full pipe) and it is killed if the test ends without waiting
    /// for it.
    pub fn start(&self, args: &[&str], stdin: Option<&str>) -> Background {
        Background::new(self.spawn(args, stdin))
    }

    /// Runs podctl to its end, feeding `stdin` when given.
    pub fn podctl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.spawn(args, stdin)
            .wait_with_output()
            .expect("waiting for podctl")
    }

    /// The API socket of this fixture's `podctl daemon`.
    pub fn socket(&self) -> PathBuf {
        self.root.path().join("podctl.sock")
    }

    /// Starts `podctl daemon` (with `args`) on this fixture and waits until it serves its
    /// socket.
    pub fn daemon(&self, args: &[&str]) -> Background {
        let _ = std::fs::remove_file(self.socket());
        let mut all = vec!["--log", "info", "daemon"];
        all.extend_from_slice(args);
        let mut daemon = self.start(&all, None);
        let socket = self.socket();
        daemon.wait_until("the daemon serves its socket", WAIT_TIMEOUT, || {
            socket.exists()
        });
        daemon
    }

    /// `podctl run --rm -` with the manifest on stdin.
    pub fn run(&self, manifest: &str) -> Output {
        self.podctl(&["run", "--rm", "-"], Some(manifest))
    }

    /// Waits until the first log of `container` in `pod` holds `text` (the pod is running).
    pub fn wait_for_log(&self, pod: &str, container: &str, text: &str) {
        self.wait_for_attempt_log(pod, container, 0, text);
    }

    /// Waits until the log of `container`'s attempt `restart_count` holds `text`.
    pub fn wait_for_attempt_log(&self, pod: &str, container: &str, restart_count: u32, text: &str) {
        let log = self.log_path(pod, container, restart_count);
        wait_for(&format!("{pod}/{container} logging {text:?}"), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains(text))
        });
    }

    /// `<root>/<namespace>/pods`.
    pub fn pods_dir(&self) -> PathBuf {
        self.root.path().join(&self.namespace).join("pods")
    }

    /// The state dir of `pod`.
    pub fn pod_dir(&self, pod: &str) -> PathBuf {
        self.pods_dir().join(pod)
    }

    /// The log of `container`'s attempt `restart_count` (0 for its first run).
    pub fn log_path(&self, pod: &str, container: &str, restart_count: u32) -> PathBuf {
        self.pod_dir(pod)
            .join("logs")
            .join(container)
            .join(format!("{restart_count}.log"))
    }

    /// The host directory of `pod`'s emptyDir volume `volume` (kept until `podctl rm`).
    pub fn volume_dir(&self, pod: &str, volume: &str) -> PathBuf {
        self.pod_dir(pod).join("volumes").join(volume)
    }

    /// The events `pod` recorded in its `events.jsonl` so far.
    pub fn recorded_events(&self, pod: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.pod_dir(pod).join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("event {l:?}: {e}")))
            .collect()
    }

    /// A refused `podctl` run: exit `code`, `message` on stderr, and no state of `pod` (when
    /// named): refusals happen before anything exists.
    pub fn assert_refused(&self, out: &Output, code: i32, message: &str, pod: Option<&str>) {
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(
            stderr.contains(message),
            "expected {message:?} in:\n{stderr}"
        );
        if let Some(pod) = pod {
            assert!(!self.pod_dir(pod).exists(), "pod {pod} left state behind");
        }
    }

    /// `podctl rm pod`, which must succeed.
    pub fn remove(&self, pod: &str) {
        assert_success(&self.podctl(&["rm", pod], None), "podctl rm");
    }

    /// What is left under `<root>/<namespace>/claims` but the store's lock and its empty
    /// dir of admissions under way: claims a test did not remove (`podctl volume rm`), half
    /// made or half removed ones, admissions never settled.
    pub fn claim_leaks(&self) -> Vec<PathBuf> {
        let dir = self.root.path().join(&self.namespace).join("claims");
        let mut left: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| !p.ends_with(".lock"))
            .flat_map(|p| {
                if p.ends_with(".admitting") {
                    std::fs::read_dir(&p)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.path())
                        .collect()
                } else {
                    vec![p]
                }
            })
            .collect();
        left.sort();
        left
    }

    /// The leak check: nothing in containerd but the image, no mounts, no pod state or
    /// claims left.
    pub async fn finish(self) {
        assert_no_leaks(&self.client, Some(self.root.path())).await;
        let left: Vec<_> = std::fs::read_dir(self.pods_dir())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "pod state left behind: {left:?}");
        let claims = self.claim_leaks();
        assert!(claims.is_empty(), "claims left behind: {claims:?}");
        let net = self.net.leaks();
        assert!(net.is_empty(), "network state left behind: {net:?}");
    }
}

impl Drop for Fixture {
    /// After a failed test, what podctl left mounted under its root would outlive the temp
    /// dir: unmount it (a passing test has nothing left, see [`Fixture::finish`]).
    fn drop(&mut self) {
        crate::daemon::unmount_under(self.root.path());
    }
}

/// A podctl process running in the background, its stdout and stderr read as they come.
/// Dropped while still running (a failed test), it is killed.
pub struct Background {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Background {
    fn new(mut child: Child) -> Self {
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().expect("piped stdout"), stdout.clone()),
            collect(child.stderr.take().expect("piped stderr"), stderr.clone()),
        ];
        Self {
            child,
            stdout,
            stderr,
            readers,
            status: None,
        }
    }

    /// podctl's process id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Sends `signal` to podctl.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signalling podctl");
    }

    /// Whether podctl has exited.
    pub fn exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("polling podctl");
        }
        self.status.is_some()
    }

    /// What podctl wrote on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        text(&lock(&self.stderr))
    }

    /// Waits until `cond` holds; fails the test (with podctl's output) when podctl ends
    /// first or `timeout` passes.
    pub fn wait_until(&mut self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            assert!(
                !self.exited(),
                "podctl ended ({:?}) before {what}\nstdout:\n{}\nstderr:\n{}",
                self.status,
                text(&lock(&self.stdout)),
                self.stderr_so_far()
            );
            assert!(
                Instant::now() < deadline,
                "not {what} within {timeout:?}\nstderr so far:\n{}",
                self.stderr_so_far()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for podctl to end (at most `timeout`, else it is killed and the test fails) and
    /// returns its output.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        while !self.exited() {
            assert!(
                Instant::now() < deadline,
                "podctl still running after {timeout:?}\nstderr so far:\n{}",
                self.stderr_so_far()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Output {
            status: self.status.expect("podctl exited"),
            stdout: std::mem::take(&mut *lock(&self.stdout)),
            stderr: std::mem::take(&mut *lock(&self.stderr)),
        }
    }
}

impl Drop for Background {
    /// A test that failed while podctl runs: stop the pod as a user would, twice (the second
    /// signal kills its containers at once) so that podctl releases its mounts; SIGKILL it
    /// if it still runs after that.
    fn drop(&mut self) {
        if self.exited() {
            return;
        }
        let _ = kill(self.pid(), Signal::SIGTERM);
        std::thread::sleep(Duration::from_millis(600));
        if !self.exited() {
            let _ = kill(self.pid(), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads `pipe` to its end into `buf`, on a thread of its own.
fn collect(mut pipe: impl Read + Send + 'static, buf: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            lock(&buf).extend_from_slice(&chunk[..n]);
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `cond` every 20 ms until it holds; fails the test after 20 s.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "never saw {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails the test with podctl's output unless it exited 0.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Lines a container printed on stdout, without the `[name] ` prefix.
pub fn lines_of(out: &Output, container: &str) -> Vec<String> {
    prefixed_lines(&text(&out.stdout), container)
}

/// Lines of `output` a container printed (`[name] ` prefix), without the prefix: its stdout
/// with `-o table`, both of its streams on podctl's stderr with `-o json|yaml`.
pub fn prefixed_lines(output: &str, container: &str) -> Vec<String> {
    let prefix = format!("[{container}] ");
    output
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

/// The final status `podctl run -o json` printed on stdout.
pub fn json_status(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no status JSON on stdout ({e}); exit {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// A pod manifest named `name` with `restartPolicy: Never` and `spec` (indented by two).
pub fn pod(name: &str, spec: &str) -> String {
    pod_with_policy(name, "Never", spec)
}

/// A pod manifest named `name` with the given `restartPolicy` and `spec` (indented by two).
pub fn pod_with_policy(name: &str, restart_policy: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: {restart_policy}\n{spec}"
    )
}
