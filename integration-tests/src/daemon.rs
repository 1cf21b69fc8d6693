//! A private containerd per test: its own root, state, sockets and config in a temp dir, torn
//! down completely (shims, mounts, files) when the handle drops.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use podctl_runtime::containerd::Client;
use sha2::{Digest as _, Sha256};

/// How long containerd may take to answer on its socket before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long containerd may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Where the runc v2 shim keeps runc's state and its sockets, whatever containerd's state dir.
const RUNC_ROOT: &str = "/run/containerd/runc";
const SHIM_SOCKET_DIR: &str = "/run/containerd/s";

/// A running private containerd. Dropping it stops containerd, kills the shims and
/// containers it left, unmounts everything under its dir and removes the dir.
pub struct Containerd {
    dir: PathBuf,
    child: Option<Child>,
    /// Namespaces handed out by [`Containerd::client`], whose runc state lives outside `dir`.
    namespaces: Mutex<Vec<String>>,
    startup: Duration,
}

impl Containerd {
    /// Starts containerd and waits until it answers on its socket; panics with the tail of
    /// its log when it cannot (a missing containerd fails the test rather than skipping it).
    pub async fn start() -> Self {
        let started = Instant::now();
        let binary = containerd_binary();
        let dir = temp_dir();
        let config = format!(
            r#"version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]
[grpc]
  address = "{dir}/containerd.sock"
[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
"#,
            dir = dir.display()
        );
        fs::write(dir.join("config.toml"), config).expect("writing the containerd config");
        let mut ctrd = Containerd {
            dir,
            child: None,
            namespaces: Mutex::new(Vec::new()),
            startup: Duration::ZERO,
        };
        ctrd.launch(&binary, started).await;
        ctrd.startup = started.elapsed();
        ctrd
    }

    /// Starts containerd on this dir's config and waits until it answers.
    async fn launch(&mut self, binary: &Path, started: Instant) {
        let config_path = self.dir.join("config.toml");
        let log_path = self.dir.join("containerd.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("opening the containerd log");
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        self.child = Some(child);
        let socket = self.socket();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "containerd exited during startup ({status}); log {}:\n{}",
                    log_path.display(),
                    log_tail(&log_path)
                );
            }
            if socket.exists() && Client::connect(&socket, "default").await.is_ok() {
                break;
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "containerd did not answer on {} within {START_TIMEOUT:?}; log {}:\n{}",
                    socket.display(),
                    log_path.display(),
                    log_tail(&log_path)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Restarts containerd (SIGTERM, then a new process on the same root and state), as
    /// `systemctl restart containerd` does: shims and containers run on.
    pub async fn restart(&mut self) {
        self.stop_process();
        self.launch(&containerd_binary(), Instant::now()).await;
    }

    /// What a reboot does to containerd: containerd, shims and containers gone, its state
    /// dir (under /run on a real host) emptied; then containerd starts again.
    pub async fn reboot(&mut self) {
        self.stop_process();
        self.kill_shims();
        let state = self.dir.join("state");
        unmount_under(&state);
        let _ = fs::remove_dir_all(&state);
        self.remove_runc_state();
        self.launch(&containerd_binary(), Instant::now()).await;
    }

    /// The containerd gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The temp dir holding everything of this containerd (root, state, config, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long [`Containerd::start`] took until containerd answered.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The containerd log so far, for assertion messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// A client bound to `namespace`.
    pub async fn client(&self, namespace: &str) -> Client {
        self.namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(namespace.to_string());
        Client::connect(&self.socket(), namespace)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test containerd: {e}"))
    }

    fn stop(&mut self) {
        self.stop_process();
        self.kill_shims();
        self.remove_runc_state();
        unmount_under(&self.dir);
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("test containerd: cannot remove {}: {e}", self.dir.display());
        }
    }

    /// Removes runc's state of the namespaces handed out (kept outside `dir`).
    fn remove_runc_state(&self) {
        for ns in self
            .namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            // Namespaces are unique per test, so this runc state is ours alone.
            if !ns.is_empty() && !ns.contains('/') && ns != "default" {
                let _ = fs::remove_dir_all(Path::new(RUNC_ROOT).join(ns));
            }
        }
    }

    /// Stops the containerd process (SIGTERM, SIGKILL after a while), nothing else.
    fn stop_process(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(child.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    }

    /// Shims outlive containerd: kill those serving this containerd, with their containers,
    /// and remove their sockets.
    fn kill_shims(&self) {
        let dir = self.dir.display().to_string();
        let mut killed = Vec::new();
        for (pid, args) in processes() {
            let is_shim = args
                .first()
                .is_some_and(|a| a.ends_with("containerd-shim-runc-v2"));
            if !is_shim || !args.iter().any(|a| a.contains(&dir)) {
                continue;
            }
            for child in descendants(pid) {
                let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
                killed.push(child);
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            killed.push(pid);
            if let Some(socket) = shim_socket(&args) {
                let _ = fs::remove_file(socket);
            }
        }
        // SIGKILL is asynchronous: wait until they are dead (zombies count as dead, their
        // reaper is not ours) so that unmounting finds no busy mounts.
        let deadline = Instant::now() + STOP_TIMEOUT;
        while killed.iter().any(|&p| is_alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A containerd namespace no other test uses.
pub fn unique_namespace(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix: String = prefix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}-{nanos:x}",
        prefix.trim_matches('-'),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn containerd_binary() -> PathBuf {
    let fixed = Path::new("/usr/bin/containerd");
    if fixed.exists() {
        return fixed.to_path_buf();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("containerd"))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| {
            panic!("containerd not found in /usr/bin or PATH: install it (Debian: apt-get install containerd)")
        })
}

/// A fresh dir on a real filesystem (overlayfs cannot use tmpfs-on-overlay and the like;
/// /tmp is the root ext4 here), short enough for unix socket paths.
fn temp_dir() -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("podctl-it-")
        .tempdir_in("/tmp")
        .expect("creating the test containerd dir")
        .keep();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o711)).expect("chmod of the test dir");
    dir
}

fn log_tail(path: &Path) -> String {
    let log = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Every process with its argv.
fn processes() -> Vec<(i32, Vec<String>)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args = cmdline
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, args))
        })
        .collect()
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every process below `root`, deepest first.
fn descendants(root: i32) -> Vec<i32> {
    let all: Vec<i32> = processes().into_iter().map(|(pid, _)| pid).collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            all.iter()
                .copied()
                .filter(|&p| parent_of(p) == Some(parent)),
        );
        i += 1;
    }
    found.remove(0);
    found.reverse();
    found
}

/// The socket a runc v2 shim of containerd 1.6 listens on: `/run/containerd/s/` followed by
/// the sha256 of `<containerd address>/<namespace>/<id>`.
fn shim_socket(args: &[String]) -> Option<PathBuf> {
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let path = format!(
        "{}/{}/{}",
        flag("-address")?,
        flag("-namespace")?,
        flag("-id")?
    );
    let hash = hex::encode(Sha256::digest(path.as_bytes()));
    Some(Path::new(SHIM_SOCKET_DIR).join(hash))
}

/// Mount points at or below `dir`, from /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Lazily unmounts everything at or below `dir`, deepest first.
pub(crate) fn unmount_under(dir: &Path) {
    let mut mounts = mounts_under(dir);
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in mounts {
        if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("test containerd: cannot unmount {}: {e}", m.display());
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
