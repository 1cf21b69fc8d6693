//! `podctl daemon`: one process that supervises many pods with the same lifecycle code as
//! the foreground `podctl run`, serves podctl's gRPC API on a unix socket, runs the pods of a
//! manifests dir (static pods), and adopts the pods it finds when it starts again.
//!
//! - `supervise`: the pods this daemon runs (admit, adopt, stop, remove);
//! - `service`: the gRPC API over them;
//! - `reads`: the API's read side (list, get, logs, events) and exec, from the state dir
//!   and containerd, as the CLI reads them;
//! - `manifests`: the manifests-dir loop over [`crate::staticpods`];
//! - `cronjobs`: the manifests dir's CronJobs, each making Jobs on its schedule.
//!
//! The daemon keeps no state of its own but a CronJob's record (its last scheduled time
//! and its Jobs, `<root>/<namespace>/cronjobs/`): a pod's truth is its containerd objects (labels)
//! and its state dir, where `supervisor.json` names the daemon and its socket. Stopping the
//! daemon leaves its pods running; a daemon started again adopts them. One daemon runs the
//! pods of a root and namespace: it holds `<root>/<namespace>/daemon.lock` (an exclusive
//! `flock`, released by the kernel however the daemon ends) for its whole life, so that two
//! daemons never adopt the same pods, whatever sockets they serve.

mod cronjobs;
mod manifests;
mod reads;
mod service;
mod supervise;

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::{umask, Mode};

pub use supervise::{
    source_of, Daemon, Source, SuperviseError, HASH_ANNOTATION, SOURCE_ANNOTATION,
};

use crate::containerd::{Client, ContainerdError};
use crate::lifecycle::RunOptions;

/// The API socket's default path.
pub const DEFAULT_SOCKET: &str = "/run/podctl/podctl.sock";

/// The daemon's lock file, in `<root>/<namespace>`.
pub const LOCK_FILE: &str = "daemon.lock";

/// How long the daemon waits for containerd at start (it may start alongside it at boot).
const CONTAINERD_WAIT: Duration = Duration::from_secs(60);

/// How long requests still open at shutdown may go on: streams (`logs -f`, `events -f`,
/// exec) would otherwise hold the daemon for as long as their clients keep them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// containerd's socket.
    pub containerd: PathBuf,
    /// containerd namespace.
    pub namespace: String,
    /// The API socket, created mode 0600. Its directory is made 0700 when missing; an
    /// existing one must be owned by root (or the daemon's user) and not writable by
    /// group or others.
    pub socket: PathBuf,
    /// Static pods: every manifest file here runs while the file exists.
    pub manifests_dir: Option<PathBuf>,
    /// How pods are run (`remove` is ignored: a daemon's pods stay until removed).
    pub run: RunOptions,
}

/// Errors of the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another podctl daemon is serving {}", path.display())]
    AlreadyServing { path: PathBuf },
    /// Another daemon runs the pods of this root and namespace.
    #[error(
        "another podctl daemon{} holds {}: one daemon runs the pods of a root and namespace",
        holder(pid),
        path.display()
    )]
    Locked { path: PathBuf, pid: Option<i32> },
    /// Whoever can write to the socket's directory could replace the socket.
    #[error("{}: refusing to serve the API socket in this directory: {reason}; choose a directory only root can write to", path.display())]
    UnsafeSocketDir { path: PathBuf, reason: String },
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    #[error("serving the API: {0}")]
    Serve(String),
}

/// ` (pid N)` when the lock's holder could be read from the file.
fn holder(pid: &Option<i32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// Runs the daemon until `shutdown` resolves, then gives the requests still open two
/// seconds to end. Pods keep running when it returns: a daemon started again
/// adopts them. Callers should exit the process right after, without running the
/// destructors of the pods' tasks.
pub async fn serve(
    opts: DaemonOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let _lock = lock(&opts.run.root, &opts.namespace)?;
    let client = connect(&opts.containerd, &opts.namespace).await?;
    let listener = bind(&opts.socket)?;
    tracing::info!(socket = %opts.socket.display(), "serving the podctl API");
    let daemon = Daemon::new(client, opts.run.clone(), opts.socket.clone());
    daemon.adopt_all().await;
    if let Some(dir) = opts.manifests_dir.clone() {
        tokio::spawn(manifests::watch(daemon.clone(), dir));
    }
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let (stopping, stopped) = tokio::sync::oneshot::channel();
    let server = tonic::transport::Server::builder()
        .add_service(podctl_proto::v1::pods_server::PodsServer::new(
            service::Service::new(daemon),
        ))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            let _ = stopping.send(());
        });
    let grace_over = async {
        match stopped.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            // The server ended on its own.
            Err(_) => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        biased;
        result = server => result.map_err(|e| DaemonError::Serve(crate::describe(&e))),
        () = grace_over => {
            tracing::warn!("requests still open {SHUTDOWN_GRACE:?} after the shutdown signal; stopping anyway");
            Ok(())
        }
    };
    let _ = std::fs::remove_file(&opts.socket);
    result
}

/// Takes the daemon lock of `root` and `namespace` (without waiting) and writes this
/// process's id into it, for the error a second daemon reports. Held as long as the
/// returned file is open.
fn lock(root: &Path, namespace: &str) -> Result<Flock<File>, DaemonError> {
    let dir = root.join(namespace);
    let path = dir.join(LOCK_FILE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DaemonError::Io { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(&dir)
        .map_err(io(&dir))?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            locked.set_len(0).map_err(io(&path))?;
            writeln!(locked, "{}", std::process::id()).map_err(io(&path))?;
            Ok(locked)
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let pid = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            Err(DaemonError::Locked { path, pid })
        }
        Err((_, errno)) => Err(io(&path)(errno.into())),
    }
}

/// Connects to containerd, waiting a while for it to come up.
async fn connect(address: &Path, namespace: &str) -> Result<Client, DaemonError> {
    let deadline = tokio::time::Instant::now() + CONTAINERD_WAIT;
    loop {
        match Client::connect(address, namespace).await {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "waiting for containerd");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Binds the API socket: in a directory only root can write to (made 0700 when missing),
/// created mode 0600 (under a umask of 0177, so it is never open to others, not even
/// briefly). A socket left by a daemon that died is replaced; one a live daemon answers on
/// is not.
///
/// The umask is the process's: this runs before the daemon starts any pod, while no other
/// task creates files.
fn bind(path: &Path) -> Result<tokio::net::UnixListener, DaemonError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DaemonError::Io { path, source }
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    let me = nix::unistd::geteuid().as_raw();
    if let Some(reason) = unsafe_socket_dir(meta.uid(), meta.mode(), me) {
        return Err(DaemonError::UnsafeSocketDir {
            path: dir.to_path_buf(),
            reason,
        });
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(DaemonError::AlreadyServing {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(io(path))?;
    }
    let previous = umask(Mode::from_bits_truncate(0o177));
    let listener = tokio::net::UnixListener::bind(path);
    umask(previous);
    listener.map_err(io(path))
}

/// Why a directory owned by `owner` with `mode` must not hold the API socket: someone
/// other than root (or `me`, the daemon's user) could replace the socket there.
fn unsafe_socket_dir(owner: u32, mode: u32, me: u32) -> Option<String> {
    if owner != 0 && owner != me {
        return Some(format!("it is owned by uid {owner}, not root"));
    }
    if mode & 0o022 != 0 {
        return Some(format!(
            "it is writable by group or others (mode {:o})",
            mode & 0o7777
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_daemon_on_a_root_and_namespace_is_refused_naming_the_holder() {
        let root = tempfile::tempdir().unwrap();
        let held = lock(root.path(), "ns").unwrap();
        let path = root.path().join("ns").join(LOCK_FILE);
        match lock(root.path(), "ns") {
            Err(e @ DaemonError::Locked { .. }) => {
                let pid = std::process::id();
                assert_eq!(
                    e.to_string(),
                    format!(
                        "another podctl daemon (pid {pid}) holds {}: one daemon runs the pods of a root and namespace",
                        path.display()
                    )
                );
            }
            other => panic!("second lock: {other:?}"),
        }
        // Another namespace has a daemon of its own; the lock goes with its holder.
        drop(lock(root.path(), "other").unwrap());
        drop(held);
        lock(root.path(), "ns").unwrap();
    }

    #[test]
    fn the_socket_dir_must_be_writable_by_root_alone() {
        assert_eq!(unsafe_socket_dir(0, 0o40700, 0), None);
        assert_eq!(unsafe_socket_dir(0, 0o40755, 0), None);
        assert_eq!(unsafe_socket_dir(1000, 0o40700, 1000), None);
        assert!(unsafe_socket_dir(0, 0o41777, 0).is_some_and(|r| r.contains("mode 1777")));
        assert!(unsafe_socket_dir(0, 0o40775, 0).is_some());
        assert!(unsafe_socket_dir(1000, 0o40700, 0).is_some_and(|r| r.contains("uid 1000")));
    }

    #[test]
    fn no_socket_is_made_in_a_dir_others_can_write_to() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let socket = open.join("podctl.sock");
        assert!(matches!(
            bind(&socket),
            Err(DaemonError::UnsafeSocketDir { path, .. }) if path == open
        ));
        assert!(!socket.exists());
    }
}
