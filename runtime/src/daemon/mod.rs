//! `podctl daemon`: one process that supervises many pods with the same lifecycle code as
//! the foreground `podctl run`, serves podctl's gRPC API on a unix socket, runs the pods of a
//! manifests dir (static pods), and adopts the pods it finds when it starts again.
//!
//! - `supervise`: the pods this daemon runs (admit, adopt, stop, remove);
//! - `service`: the gRPC API over them;
//! - `reads`: the API's read side (list, get, logs, events) and exec, from the state dir
//!   and containerd, as the CLI reads them;
//! - `manifests`: the manifests-dir loop over [`crate::staticpods`].
//!
//! The daemon keeps no state of its own: a pod's truth is its containerd objects (labels)
//! and its state dir, where `supervisor.json` names the daemon and its socket. Stopping the
//! daemon leaves its pods running; a daemon started again adopts them.

mod manifests;
mod reads;
mod service;
mod supervise;

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use supervise::{
    source_of, Daemon, Source, SuperviseError, HASH_ANNOTATION, SOURCE_ANNOTATION,
};

use crate::containerd::{Client, ContainerdError};
use crate::lifecycle::RunOptions;

/// The API socket's default path.
pub const DEFAULT_SOCKET: &str = "/run/podctl/podctl.sock";

/// How long the daemon waits for containerd at start (it may start alongside it at boot).
const CONTAINERD_WAIT: Duration = Duration::from_secs(60);

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// containerd's socket.
    pub containerd: PathBuf,
    /// containerd namespace.
    pub namespace: String,
    /// The API socket (created mode 0600; its directory 0700 when podctl creates it).
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
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    #[error("serving the API: {0}")]
    Serve(String),
}

/// Runs the daemon until `shutdown` resolves. Pods keep running when it returns: a
/// daemon started again adopts them. Callers should exit the process right after, without
/// running the destructors of the pods' tasks.
pub async fn serve(
    opts: DaemonOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let client = connect(&opts.containerd, &opts.namespace).await?;
    let listener = bind(&opts.socket)?;
    tracing::info!(socket = %opts.socket.display(), "serving the podctl API");
    let daemon = Daemon::new(client, opts.run.clone(), opts.socket.clone());
    for (pod, result) in daemon.adopt_all().await {
        match result {
            Ok(()) => tracing::info!(pod = %pod, "adopted"),
            Err(e) => tracing::error!(pod = %pod, error = %crate::describe(&e), "cannot adopt"),
        }
    }
    if let Some(dir) = opts.manifests_dir.clone() {
        tokio::spawn(manifests::watch(daemon.clone(), dir));
    }
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let result = tonic::transport::Server::builder()
        .add_service(podctl_proto::v1::pods_server::PodsServer::new(
            service::Service::new(daemon),
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    let _ = std::fs::remove_file(&opts.socket);
    result.map_err(|e| DaemonError::Serve(crate::describe(&e)))
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

/// Binds the API socket: its directory made root-only when podctl creates it, the socket
/// itself mode 0600. A socket left by a daemon that died is replaced; one a live daemon
/// answers on is not.
fn bind(path: &Path) -> Result<tokio::net::UnixListener, DaemonError> {
    let io = |source| DaemonError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|source| DaemonError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(DaemonError::AlreadyServing {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}
