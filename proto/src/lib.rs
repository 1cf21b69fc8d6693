//! podctl's own gRPC API, generated from `proto/podctl.proto` at build time, and [`connect`],
//! the client side of the daemon's unix socket.

#![allow(clippy::derive_partial_eq_without_eq)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// The gRPC types a client needs to read an answer, from the tonic this crate is built
/// with.
pub use tonic::{Code, Status};

/// Version 1 of the API (`podctl.v1`).
pub mod v1 {
    tonic::include_proto!("podctl.v1");
}

/// A client of the daemon's API, as [`connect`] returns it.
pub type Client = v1::pods_client::PodsClient<Channel>;

/// How long [`connect`] waits for the socket's connection to be made.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Nothing listens on the socket: it does not exist, or its daemon is gone.
    #[error(
        "no podctl daemon is listening on {}: start one with `podctl daemon` (or `systemctl start podctl`)",
        socket.display()
    )]
    NoDaemon { socket: PathBuf },
    /// The socket (or its directory) is not this user's to use.
    #[error(
        "permission denied on {}: the podctl API is root's (run podctl as root)",
        socket.display()
    )]
    PermissionDenied { socket: PathBuf },
    /// The connection was not made in time.
    #[error("the podctl daemon on {} did not accept a connection within {timeout:?}", socket.display())]
    Timeout { socket: PathBuf, timeout: Duration },
    #[error("cannot connect to the podctl daemon on {}", socket.display())]
    Transport {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Connects to the daemon's API on the unix socket at `socket`.
///
/// The socket is dialed here, not on the first call, so a missing daemon, a socket left by
/// one that died and a socket this user may not use are reported here, within
/// [`CONNECT_TIMEOUT`]. The HTTP/2 handshake completes with the first call: callers that must
/// not hang on a wedged daemon bound their calls with a timeout.
pub async fn connect(socket: &Path) -> Result<Client, ConnectError> {
    let path = socket.to_path_buf();
    // The URI is required but unused: the connector below dials the socket.
    let endpoint = Endpoint::from_static("http://podctl.sock");
    let connecting = endpoint.connect_with_connector(tower::service_fn(move |_| {
        let path = path.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    }));
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| ConnectError::Timeout {
            socket: socket.to_path_buf(),
            timeout: CONNECT_TIMEOUT,
        })?
        .map_err(|source| classify(socket, source))?;
    Ok(v1::pods_client::PodsClient::new(channel))
}

/// Names the common failures by the system error underneath the transport's.
fn classify(socket: &Path, source: tonic::transport::Error) -> ConnectError {
    let socket = socket.to_path_buf();
    match io_error_kind(&source) {
        Some(std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            ConnectError::NoDaemon { socket }
        }
        Some(std::io::ErrorKind::PermissionDenied) => ConnectError::PermissionDenied { socket },
        _ => ConnectError::Transport { socket, source },
    }
}

/// The kind of the first I/O error in `error`'s chain of causes.
fn io_error_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_means_no_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("podctl.sock");
        let error = connect(&socket).await.unwrap_err();
        assert!(matches!(error, ConnectError::NoDaemon { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "no podctl daemon is listening on {}: start one with `podctl daemon` \
                 (or `systemctl start podctl`)",
                socket.display()
            )
        );
        let missing_dir = dir.path().join("nope").join("podctl.sock");
        assert!(matches!(
            connect(&missing_dir).await,
            Err(ConnectError::NoDaemon { .. })
        ));
    }

    #[tokio::test]
    async fn a_socket_left_by_a_dead_daemon_means_no_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("podctl.sock");
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        assert!(socket.exists());
        assert!(matches!(
            connect(&socket).await,
            Err(ConnectError::NoDaemon { .. })
        ));
    }

    #[tokio::test]
    async fn a_grpc_server_is_connected_to() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("podctl.sock");
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(
            tokio::net::UnixListener::bind(&socket).unwrap(),
        );
        // A gRPC server without services: it answers every call with `Unimplemented`.
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(tonic::service::Routes::default())
                .serve_with_incoming(incoming),
        );
        let mut client = connect(&socket).await.expect("connected");
        let status = client.version(v1::VersionRequest {}).await.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented);
        server.abort();
    }

    #[test]
    fn permission_denied_is_told_apart() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            io_error_kind(&io),
            Some(std::io::ErrorKind::PermissionDenied)
        );
        let e = ConnectError::PermissionDenied {
            socket: "/run/podctl/podctl.sock".into(),
        };
        assert_eq!(
            e.to_string(),
            "permission denied on /run/podctl/podctl.sock: the podctl API is root's (run podctl \
             as root)"
        );
    }
}
