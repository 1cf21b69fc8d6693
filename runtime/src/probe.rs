//! Running one probe or lifecycle-hook action, and the bookkeeping of probe results.
//!
//! [`Action`] is what a probe or a hook does, read once from the manifest
//! ([`Action::from_probe`], [`Action::from_hook`]). [`execute`] runs it once against a
//! [`Target`] container and returns an [`Outcome`]. [`Settings`] are a probe's timing and
//! thresholds with Kubernetes' defaults, and a [`Tracker`] turns consecutive outcomes into
//! verdicts as the kubelet's probe worker does. When and how often to probe, and what a
//! verdict or a failed hook leads to, is the lifecycle's business.
//!
//! How each action runs, as under the kubelet with containerd:
//!
//! - `exec`: an exec process in the container's task, with the container's own process spec
//!   (env, cwd, user, capabilities) and the command as its arguments; exit 0 is success. Its
//!   stdout and stderr go to one FIFO in the pod's io dir; the first 10 KiB (the kubelet's
//!   limit) end up in the failure message. On timeout the process is killed (SIGKILL). The
//!   exec process is always deleted afterwards, even when the caller stops waiting.
//! - `tcpSocket`: a TCP connect from inside the pod's network namespace (the socket is made
//!   there by `sandbox::tcp_socket_in`), so `127.0.0.1` is the pod's own loopback.
//! - `httpGet`: `GET` over HTTP/1.1 on such a connection, written by hand: `Host`,
//!   `User-Agent: kube-probe/1.34`, `Accept: */*`, `Connection: close` and the given headers.
//!   Only the status line is read: 200..=399 is success. Redirects are not followed (the
//!   kubelet follows those to the same host; here any 3xx is success).
//! - `sleep` (hooks only): waits.
//!
//! Every action is bounded by the timeout given to [`execute`]. Unlike the kubelet, host
//! names other than `localhost` are not resolved (the host must be an IP address, and an empty
//! host means `127.0.0.1` in the pod's namespace rather than the pod IP), and HTTPS, gRPC
//! probes and `tcpSocket` hooks are refused by [`Action::from_probe`] / [`Action::from_hook`].

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ExecAction, HTTPGetAction, HTTPHeader, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::containerd::{Client, ContainerdError, TaskIo, SIGKILL};

/// `User-Agent` of the kubelet's HTTP probes and hooks.
const USER_AGENT: &str = "kube-probe/1.34";
/// How much of an exec's output the failure message keeps (the kubelet's limit).
const MAX_OUTPUT: usize = 10 * 1024;
/// How much of a response is read while looking for the end of its status line.
const MAX_STATUS_LINE: usize = 4 * 1024;
/// How long a timed-out exec process, once killed, is waited for before it is deleted.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How long output is still read once the exec process is gone (a background child of the
/// command may hold the pipe open).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// Why a probe or hook handler from the manifest cannot be run. Field paths are relative to
/// the probe or handler (`httpGet.port`): the caller prefixes where it sits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Not exactly one handler (`exec`, `httpGet`, `tcpSocket`, `grpc` / `sleep`) is set.
    #[error("exactly one handler must be specified, found {found}")]
    HandlerCount { found: usize },
    #[error("{field}: no container port named {name:?}")]
    PortNotFound { field: &'static str, name: String },
    #[error("{field}: invalid port number {port}, must be between 1 and 65535")]
    InvalidPort { field: &'static str, port: i64 },
    #[error("{field}: {host:?} is not an IP address or localhost (host names are not resolved)")]
    HostNotIp { field: &'static str, host: String },
    #[error("exec.command: must not be empty")]
    EmptyCommand,
    #[error("httpGet.httpHeaders: invalid header {name:?}")]
    InvalidHeader { name: String },
    #[error("sleep.seconds: must not be negative, got {seconds}")]
    NegativeSleep { seconds: i64 },
    #[error("{field}: {reason}")]
    Unsupported {
        field: &'static str,
        reason: &'static str,
    },
}

/// What a probe or a hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Run `command` in the container; exit 0 is success.
    Exec { command: Vec<String> },
    /// Connect to `host:port` from the pod's network namespace.
    TcpSocket { host: IpAddr, port: u16 },
    /// `GET path` (a request target starting with `/`) from the pod's network namespace;
    /// 200..=399 is success.
    HttpGet {
        host: IpAddr,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    /// Wait this long (the `sleep` lifecycle handler).
    Sleep(Duration),
}

impl Action {
    /// The action of a probe. A named port is looked up in `container.ports` (as the kubelet
    /// does, a name that is a number is that number); a host that is absent, empty or
    /// `localhost` is `127.0.0.1`, an IP literal is that address.
    pub(crate) fn from_probe(probe: &Probe, container: &Container) -> Result<Action, ProbeError> {
        exactly_one(&[
            probe.exec.is_some(),
            probe.http_get.is_some(),
            probe.tcp_socket.is_some(),
            probe.grpc.is_some(),
        ])?;
        if let Some(exec) = &probe.exec {
            exec_action(exec)
        } else if let Some(get) = &probe.http_get {
            http_get_action(get, container)
        } else if let Some(tcp) = &probe.tcp_socket {
            tcp_socket_action(tcp, container)
        } else {
            Err(ProbeError::Unsupported {
                field: "grpc",
                reason: "gRPC probes are not supported",
            })
        }
    }

    /// The action of a `postStart` or `preStop` handler, read as [`Action::from_probe`] reads
    /// a probe. `tcpSocket` is refused: Kubernetes accepts it in a manifest but fails such a
    /// hook every time it runs.
    pub(crate) fn from_hook(
        handler: &LifecycleHandler,
        container: &Container,
    ) -> Result<Action, ProbeError> {
        exactly_one(&[
            handler.exec.is_some(),
            handler.http_get.is_some(),
            handler.sleep.is_some(),
            handler.tcp_socket.is_some(),
        ])?;
        if let Some(exec) = &handler.exec {
            exec_action(exec)
        } else if let Some(get) = &handler.http_get {
            http_get_action(get, container)
        } else if let Some(sleep) = &handler.sleep {
            u64::try_from(sleep.seconds)
                .map(|s| Action::Sleep(Duration::from_secs(s)))
                .map_err(|_| ProbeError::NegativeSleep {
                    seconds: sleep.seconds,
                })
        } else {
            Err(ProbeError::Unsupported {
                field: "tcpSocket",
                reason: "not supported as a lifecycle handler",
            })
        }
    }
}

/// A probe or hook names exactly one handler.
fn exactly_one(handlers: &[bool]) -> Result<(), ProbeError> {
    match handlers.iter().filter(|set| **set).count() {
        1 => Ok(()),
        found => Err(ProbeError::HandlerCount { found }),
    }
}

fn exec_action(exec: &ExecAction) -> Result<Action, ProbeError> {
    match exec.command.as_deref() {
        Some(command) if !command.is_empty() => Ok(Action::Exec {
            command: command.to_vec(),
        }),
        _ => Err(ProbeError::EmptyCommand),
    }
}

fn tcp_socket_action(tcp: &TCPSocketAction, container: &Container) -> Result<Action, ProbeError> {
    Ok(Action::TcpSocket {
        host: resolve_host(tcp.host.as_deref(), "tcpSocket.host")?,
        port: resolve_port(&tcp.port, container, "tcpSocket.port")?,
    })
}

fn http_get_action(get: &HTTPGetAction, container: &Container) -> Result<Action, ProbeError> {
    if let Some(scheme) = get.scheme.as_deref() {
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(ProbeError::Unsupported {
                field: "httpGet.scheme",
                reason: "only HTTP is supported",
            });
        }
    }
    if get.protocol.is_some() {
        return Err(ProbeError::Unsupported {
            field: "httpGet.protocol",
            reason: "only the default (HTTP/1.1) is supported",
        });
    }
    Ok(Action::HttpGet {
        host: resolve_host(get.host.as_deref(), "httpGet.host")?,
        port: resolve_port(&get.port, container, "httpGet.port")?,
        path: request_target(get.path.as_deref().unwrap_or("")),
        headers: checked_headers(get.http_headers.as_deref().unwrap_or_default())?,
    })
}

fn resolve_port(
    port: &IntOrString,
    container: &Container,
    field: &'static str,
) -> Result<u16, ProbeError> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            let named = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()));
            match named {
                Some(p) => i64::from(p.container_port),
                None => name.parse().map_err(|_| ProbeError::PortNotFound {
                    field,
                    name: name.clone(),
                })?,
            }
        }
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(ProbeError::InvalidPort {
            field,
            port: number,
        })
}

fn resolve_host(host: Option<&str>, field: &'static str) -> Result<IpAddr, ProbeError> {
    let host = host.unwrap_or("");
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        return Ok(Ipv4Addr::LOCALHOST.into());
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().map_err(|_| ProbeError::HostNotIp {
        field,
        host: host.to_owned(),
    })
}

/// The request target for `path`: a leading `/` added, the fragment dropped, and bytes that
/// cannot appear in a request line percent-encoded.
fn request_target(path: &str) -> String {
    let path = path.split('#').next().unwrap_or_default();
    let mut target = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        target.push('/');
    }
    for byte in path.bytes() {
        if byte <= b' ' || byte >= 0x7f {
            let _ = write!(target, "%{byte:02X}");
        } else {
            target.push(char::from(byte));
        }
    }
    target
}

/// Header names must be HTTP tokens and values must not break the request's lines.
fn checked_headers(headers: &[HTTPHeader]) -> Result<Vec<(String, String)>, ProbeError> {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    headers
        .iter()
        .map(|h| {
            let name_ok = !h.name.is_empty() && h.name.bytes().all(is_tchar);
            let value_ok = !h.value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
            if name_ok && value_ok {
                Ok((h.name.clone(), h.value.clone()))
            } else {
                Err(ProbeError::InvalidHeader {
                    name: h.name.clone(),
                })
            }
        })
        .collect()
}

/// Where an action runs.
pub(crate) struct Target<'a> {
    pub client: &'a Client,
    /// The container's id in containerd; an exec needs its task running.
    pub container_id: &'a str,
    /// The container's process from its OCI spec: an exec runs with its env, cwd, user and
    /// capabilities.
    pub process: &'a oci_spec::runtime::Process,
    /// Where an exec's output FIFO is made (the pod's `io` dir).
    pub io_dir: &'a Path,
    /// The pod's pinned network namespace (`Sandbox::netns`); `None`: the host's network.
    pub netns: Option<&'a Path>,
}

/// The result of running an action once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    /// The action ran and failed, with a message like the kubelet's, e.g.
    /// `Get "http://127.0.0.1:8080/healthz": dial tcp 127.0.0.1:8080: connect: connection
    /// refused` or `command "cat /tmp/healthy" exited with 1: <output>`.
    Failure(String),
    /// The action could not be run at all (containerd refused the exec, e.g. for a command
    /// not found; the namespace could not be entered): the kubelet's "probe errored". A
    /// [`Tracker`] ignores it, as the kubelet's worker does; a hook fails with it.
    Error(String),
}

/// Runs `action` once against `target`, bounded by `timeout` (`Duration::MAX`: unbounded).
pub(crate) async fn execute(action: &Action, target: &Target<'_>, timeout: Duration) -> Outcome {
    match action {
        Action::Exec { command } => exec(command, target, timeout).await,
        Action::TcpSocket { host, port } => {
            tcp_probe(SocketAddr::new(*host, *port), target.netns, timeout).await
        }
        Action::HttpGet {
            host,
            port,
            path,
            headers,
        } => {
            let addr = SocketAddr::new(*host, *port);
            http_probe(addr, path, headers, target.netns, timeout).await
        }
        Action::Sleep(duration) => sleep_for(*duration, timeout).await,
    }
}

async fn sleep_for(duration: Duration, timeout: Duration) -> Outcome {
    if duration <= timeout {
        tokio::time::sleep(duration).await;
        Outcome::Success
    } else {
        tokio::time::sleep(timeout).await;
        Outcome::Failure(format!("sleep of {duration:?} cut short after {timeout:?}"))
    }
}

// ---- tcpSocket and httpGet ----------------------------------------------------------------

async fn tcp_probe(addr: SocketAddr, netns: Option<&Path>, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, connect(addr, netns)).await {
        Ok(Ok(_stream)) => Outcome::Success,
        Ok(Err(e)) => e.into_outcome(""),
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

async fn http_probe(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    netns: Option<&Path>,
    timeout: Duration,
) -> Outcome {
    let url = format!("http://{addr}{path}");
    let request = http_request(addr, path, headers);
    match tokio::time::timeout(timeout, http_status(addr, &request, netns)).await {
        Ok(Ok(status)) if (200..=399).contains(&status) => Outcome::Success,
        Ok(Ok(status)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {status}")),
        Ok(Err(e)) => e.into_outcome(&format!("Get {url:?}: ")),
        Err(_) => Outcome::Failure(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

/// Why a connection or an HTTP exchange failed.
enum NetError {
    /// The socket could not be made (namespace trouble): the probe errored.
    Setup(String),
    /// The network said no, in Go's words (`dial tcp 127.0.0.1:80: connect: connection
    /// refused`), as the kubelet reports it.
    Failed(String),
}

impl NetError {
    fn into_outcome(self, prefix: &str) -> Outcome {
        match self {
            NetError::Setup(message) => Outcome::Error(message),
            NetError::Failed(message) => Outcome::Failure(format!("{prefix}{message}")),
        }
    }
}

/// A connection to `addr` from a socket made in `netns` (or in podctl's own namespace).
async fn connect(addr: SocketAddr, netns: Option<&Path>) -> Result<TcpStream, NetError> {
    let socket = match netns {
        None => if addr.is_ipv6() {
            TcpSocket::new_v6()
        } else {
            TcpSocket::new_v4()
        }
        .map_err(|e| NetError::Setup(format!("creating a socket: {e}")))?,
        Some(netns) => {
            let netns = netns.to_owned();
            let ipv6 = addr.is_ipv6();
            // The socket is made on a thread of its own (inside tcp_socket_in); this
            // blocking-pool thread only waits for it and never changes namespace.
            let fd =
                tokio::task::spawn_blocking(move || crate::sandbox::tcp_socket_in(&netns, ipv6))
                    .await
                    .map_err(|e| NetError::Setup(format!("making a socket in the pod: {e}")))?
                    .map_err(|e| NetError::Setup(crate::describe(&e)))?;
            TcpSocket::from_std_stream(std::net::TcpStream::from(fd))
        }
    };
    socket
        .connect(addr)
        .await
        .map_err(|e| NetError::Failed(format!("dial tcp {addr}: connect: {}", os_error(&e))))
}

/// The request bytes of an HTTP probe: the kubelet's default headers unless `headers` set
/// them (an empty `Accept` or `User-Agent` drops the header, as in Go), `Connection: close`.
fn http_request(addr: SocketAddr, path: &str, headers: &[(String, String)]) -> String {
    let given = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
    let host = given("host")
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| addr.to_string());
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    if given("user-agent").is_none() {
        let _ = write!(request, "User-Agent: {USER_AGENT}\r\n");
    }
    if given("accept").is_none() {
        request.push_str("Accept: */*\r\n");
    }
    for (name, value) in headers {
        let skip = match name.to_ascii_lowercase().as_str() {
            "host" | "connection" => true,
            "user-agent" | "accept" => value.is_empty(),
            _ => false,
        };
        if !skip {
            let _ = write!(request, "{name}: {value}\r\n");
        }
    }
    request.push_str("Connection: close\r\n\r\n");
    request
}

/// Sends `request` to `addr` and returns the response's status code.
async fn http_status(
    addr: SocketAddr,
    request: &str,
    netns: Option<&Path>,
) -> Result<u16, NetError> {
    let mut stream = connect(addr, netns).await?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| NetError::Failed(format!("write: {}", os_error(&e))))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    let line = loop {
        if let Some(end) = head.iter().position(|b| *b == b'\n') {
            break &head[..end];
        }
        if head.len() >= MAX_STATUS_LINE {
            break &head[..];
        }
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| NetError::Failed(format!("read: {}", os_error(&e))))?;
        if n == 0 {
            let eof = if head.is_empty() {
                "EOF"
            } else {
                "unexpected EOF"
            };
            return Err(NetError::Failed(eof.into()));
        }
        head.extend_from_slice(&buf[..n]);
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    parse_status_line(line).ok_or_else(|| {
        NetError::Failed(format!(
            "malformed HTTP response {:?}",
            String::from_utf8_lossy(line)
        ))
    })
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 200 OK`, line end removed).
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (minor, rest) = rest.split_first()?;
    let rest = rest.strip_prefix(b" ").filter(|_| minor.is_ascii_digit())?;
    let (code, reason) = rest.split_at_checked(3)?;
    if !code.iter().all(u8::is_ascii_digit) || !(reason.is_empty() || reason[0] == b' ') {
        return None;
    }
    let code = code
        .iter()
        .fold(0u16, |n, digit| n * 10 + u16::from(digit - b'0'));
    (code >= 100).then_some(code)
}

/// An I/O error as Go words it (`connection refused`): the kubelet's messages are Go's.
fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let desc = nix::errno::Errno::from_raw(code).desc();
            let mut chars = desc.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => e.to_string(),
            }
        }
        None => e.to_string(),
    }
}

// ---- exec ---------------------------------------------------------------------------------

async fn exec(command: &[String], target: &Target<'_>, timeout: Duration) -> Outcome {
    let mut process = target.process.clone();
    process.set_args(Some(command.to_vec()));
    process.set_terminal(Some(false));
    process.set_console_size(None);
    let process_json = match serde_json::to_vec(&process) {
        Ok(json) => json,
        Err(e) => return Outcome::Error(format!("encoding the exec process spec: {e}")),
    };
    let exec_id = format!("podctl-exec-{:016x}", rand::random::<u64>());
    let run = ExecRun {
        client: target.client.clone(),
        container_id: target.container_id.to_owned(),
        fifo: target.io_dir.join(format!("{exec_id}.out")),
        exec_id,
        shown: format!("{:?}", command.join(" ")),
        process_json,
        deadline: Instant::now().checked_add(timeout),
    };
    // On a task of its own, so that the exec process is killed and deleted even when the
    // caller stops waiting for the outcome.
    tokio::spawn(run.run())
        .await
        .unwrap_or_else(|e| Outcome::Error(format!("the exec task failed: {e}")))
}

/// One exec, owned so it can finish on its own task.
struct ExecRun {
    client: Client,
    container_id: String,
    exec_id: String,
    /// Receives both stdout and stderr.
    fifo: PathBuf,
    /// The command as messages show it: `"cat /tmp/healthy"`.
    shown: String,
    process_json: Vec<u8>,
    /// `None`: no timeout.
    deadline: Option<Instant>,
}

/// How a started exec process ended.
enum Ended {
    Exited(u32),
    TimedOut,
    Lost(ContainerdError),
}

impl ExecRun {
    async fn run(self) -> Outcome {
        let mut rx = match open_fifo(&self.fifo) {
            Ok(rx) => rx,
            Err(e) => {
                return Outcome::Error(format!(
                    "creating the exec output FIFO {}: {e}",
                    self.fifo.display()
                ))
            }
        };
        let outcome = self.run_with(&mut rx).await;
        drop(rx);
        let _ = std::fs::remove_file(&self.fifo);
        outcome
    }

    async fn run_with(&self, rx: &mut pipe::Receiver) -> Outcome {
        let path = self.fifo.to_string_lossy().into_owned();
        let io = TaskIo {
            stdout: path.clone(),
            stderr: path,
        };
        let (cid, eid) = (self.container_id.as_str(), self.exec_id.as_str());
        if let Err(e) = self
            .client
            .exec_process(cid, eid, self.process_json.clone(), io)
            .await
        {
            return Outcome::Error(crate::describe(&e));
        }
        // Not bounded by the deadline: a start abandoned half-way could leave a process
        // running that nobody kills; one that starts late is killed at once below.
        if let Err(e) = self.client.start_process(cid, eid).await {
            self.delete().await;
            return Outcome::Error(crate::describe(&e));
        }
        // The shim opened the FIFO's write end during start: reading now sees the output,
        // and end-of-file once the shim closes it (process gone, or deleted).
        let mut output = Vec::new();
        let finished = Notify::new();
        let running = async {
            let ended = self.wait_or_kill().await;
            self.delete().await;
            finished.notify_one();
            ended
        };
        let reading = async {
            tokio::select! {
                () = read_capped(rx, &mut output) => {}
                () = async {
                    finished.notified().await;
                    tokio::time::sleep(OUTPUT_GRACE).await;
                } => {}
            }
        };
        let (ended, ()) = tokio::join!(running, reading);
        let shown = &self.shown;
        match ended {
            Ended::Exited(0) => Outcome::Success,
            Ended::Exited(status) => {
                let output = String::from_utf8_lossy(&output);
                let output = output.trim_end();
                if output.is_empty() {
                    Outcome::Failure(format!("command {shown} exited with {status}"))
                } else {
                    Outcome::Failure(format!("command {shown} exited with {status}: {output}"))
                }
            }
            Ended::TimedOut => Outcome::Failure(format!("command {shown} timed out")),
            Ended::Lost(e) => Outcome::Error(crate::describe(&e)),
        }
    }

    async fn wait_or_kill(&self) -> Ended {
        let (cid, eid) = (self.container_id.as_str(), self.exec_id.as_str());
        let wait = self.client.wait_process(cid, eid);
        let waited = match self.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, wait).await,
            None => Ok(wait.await),
        };
        match waited {
            Ok(Ok(exit)) => Ended::Exited(exit.status),
            Ok(Err(e)) => Ended::Lost(e),
            Err(_) => {
                if let Err(e) = self.client.kill_process(cid, eid, SIGKILL).await {
                    tracing::debug!(container = cid, exec = eid, error = %e, "killing a timed-out exec");
                }
                let _ = tokio::time::timeout(KILL_WAIT, self.client.wait_process(cid, eid)).await;
                Ended::TimedOut
            }
        }
    }

    /// Removes the exec process from the task; the shim then closes its end of the FIFO.
    async fn delete(&self) {
        let (cid, eid) = (self.container_id.as_str(), self.exec_id.as_str());
        if let Err(e) = self.client.delete_process(cid, eid).await {
            tracing::warn!(container = cid, exec = eid, error = %e, "removing an exec process failed");
        }
    }
}

/// Makes the FIFO at `path` and opens its read end (non-blocking, so the shim's open of the
/// write end does not wait).
fn open_fifo(path: &Path) -> io::Result<pipe::Receiver> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(io::Error::from)?;
    pipe::OpenOptions::new()
        .open_receiver(path)
        .inspect_err(|_| {
            let _ = std::fs::remove_file(path);
        })
}

/// Reads to end-of-file, keeping the first [`MAX_OUTPUT`] bytes (the rest is drained so the
/// command never blocks on a full pipe).
async fn read_capped(rx: &mut pipe::Receiver, output: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = rx.read(&mut buf).await {
        if n == 0 {
            return;
        }
        let room = MAX_OUTPUT.saturating_sub(output.len());
        output.extend_from_slice(&buf[..n.min(room)]);
    }
}

// ---- settings and results -----------------------------------------------------------------

/// A probe's timing and thresholds, with Kubernetes' defaults for absent (or zero) values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// `initialDelaySeconds`, default 0.
    pub initial_delay: Duration,
    /// `periodSeconds`, default 10.
    pub period: Duration,
    /// `timeoutSeconds`, default 1.
    pub timeout: Duration,
    /// `successThreshold`, default 1.
    pub success_threshold: u32,
    /// `failureThreshold`, default 3.
    pub failure_threshold: u32,
    /// `terminationGracePeriodSeconds` of the probe: overrides the pod's when a liveness or
    /// startup probe fails.
    pub termination_grace_period: Option<Duration>,
}

impl Settings {
    pub(crate) fn from_probe(probe: &Probe) -> Settings {
        let seconds = |value: Option<i32>, default: u64| {
            Duration::from_secs(
                value
                    .and_then(|v| u64::try_from(v).ok())
                    .filter(|v| *v > 0)
                    .unwrap_or(default),
            )
        };
        let count = |value: Option<i32>, default: u32| {
            value
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Settings {
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            period: seconds(probe.period_seconds, 10),
            timeout: seconds(probe.timeout_seconds, 1),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
            termination_grace_period: probe
                .termination_grace_period_seconds
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
        }
    }
}

/// Consecutive probe results, counted as the kubelet's probe worker counts them. Use a new
/// one for each run of a container.
#[derive(Debug, Clone)]
pub(crate) struct Tracker {
    success_threshold: u32,
    failure_threshold: u32,
    /// The last result counted and how many times in a row it came.
    last: Option<bool>,
    run: u32,
    verdict: Option<bool>,
}

impl Tracker {
    pub(crate) fn new(settings: &Settings) -> Tracker {
        Tracker {
            success_threshold: settings.success_threshold.max(1),
            failure_threshold: settings.failure_threshold.max(1),
            last: None,
            run: 0,
            verdict: None,
        }
    }

    /// Counts one outcome; returns the new verdict (`true`: succeeding) when this outcome
    /// changes it: `successThreshold` successes in a row make it `true`, `failureThreshold`
    /// failures in a row `false`. The first verdict reached is always returned. An
    /// [`Outcome::Error`] is not counted and does not break a run.
    pub(crate) fn record(&mut self, outcome: &Outcome) -> Option<bool> {
        let result = match outcome {
            Outcome::Success => true,
            Outcome::Failure(_) => false,
            Outcome::Error(_) => return None,
        };
        if self.last == Some(result) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(result);
            self.run = 1;
        }
        let threshold = if result {
            self.success_threshold
        } else {
            self.failure_threshold
        };
        if self.run >= threshold && self.verdict != Some(result) {
            self.verdict = Some(result);
            return Some(result);
        }
        None
    }

    /// The current verdict, `None` until a threshold is first reached.
    #[cfg(test)]
    pub(crate) fn verdict(&self) -> Option<bool> {
        self.verdict
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use serde_json::json;
    use tokio::net::TcpListener;

    use super::*;

    fn container(value: serde_json::Value) -> Container {
        serde_json::from_value(value).expect("test container")
    }

    fn probe(value: serde_json::Value) -> Probe {
        serde_json::from_value(value).expect("test probe")
    }

    fn web() -> Container {
        container(json!({
            "name": "web", "image": "busybox",
            "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9090}],
        }))
    }

    #[test]
    fn settings_have_kubernetes_defaults() {
        let defaults = Settings {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
            termination_grace_period: None,
        };
        assert_eq!(Settings::from_probe(&Probe::default()), defaults);
        let zeros = probe(json!({
            "periodSeconds": 0, "timeoutSeconds": 0, "successThreshold": 0,
            "failureThreshold": 0, "initialDelaySeconds": 0,
        }));
        assert_eq!(Settings::from_probe(&zeros), defaults);
        let given = probe(json!({
            "initialDelaySeconds": 5, "periodSeconds": 2, "timeoutSeconds": 3,
            "successThreshold": 2, "failureThreshold": 4, "terminationGracePeriodSeconds": 7,
        }));
        assert_eq!(
            Settings::from_probe(&given),
            Settings {
                initial_delay: Duration::from_secs(5),
                period: Duration::from_secs(2),
                timeout: Duration::from_secs(3),
                success_threshold: 2,
                failure_threshold: 4,
                termination_grace_period: Some(Duration::from_secs(7)),
            }
        );
    }

    #[test]
    fn tracker_reports_verdict_changes_at_thresholds() {
        let settings = Settings::from_probe(&probe(json!({
            "successThreshold": 2, "failureThreshold": 3,
        })));
        let mut t = Tracker::new(&settings);
        let ok = Outcome::Success;
        let bad = Outcome::Failure("no".into());
        let error = Outcome::Error("containerd went away".into());
        assert_eq!(t.record(&ok), None);
        assert_eq!(t.record(&ok), Some(true));
        assert_eq!(t.record(&ok), None, "no change, no report");
        assert_eq!(t.verdict(), Some(true));
        // Failures must come in a row; a success resets the run, an error does not.
        assert_eq!(t.record(&bad), None);
        assert_eq!(t.record(&bad), None);
        assert_eq!(t.record(&ok), None);
        assert_eq!(t.record(&bad), None);
        assert_eq!(t.record(&bad), None);
        assert_eq!(t.record(&error), None);
        assert_eq!(t.record(&bad), Some(false));
        assert_eq!(t.record(&bad), None);
        assert_eq!(t.verdict(), Some(false));
        // Back to success takes successThreshold in a row.
        assert_eq!(t.record(&ok), None);
        assert_eq!(t.record(&ok), Some(true));

        let mut first = Tracker::new(&Settings::from_probe(&Probe::default()));
        assert_eq!(first.verdict(), None);
        assert_eq!(first.record(&ok), Some(true), "threshold 1: at once");
        let mut failing = Tracker::new(&Settings::from_probe(&Probe::default()));
        assert_eq!(failing.record(&bad), None);
        assert_eq!(failing.record(&bad), None);
        assert_eq!(failing.record(&bad), Some(false));
    }

    #[test]
    fn probe_ports_resolve_by_name_or_number() {
        let c = web();
        let action = |p: serde_json::Value| Action::from_probe(&probe(p), &c);
        assert_eq!(
            action(json!({"tcpSocket": {"port": "http"}})),
            Ok(Action::TcpSocket {
                host: Ipv4Addr::LOCALHOST.into(),
                port: 8080
            })
        );
        assert_eq!(
            action(json!({"tcpSocket": {"port": 9090}})),
            Ok(Action::TcpSocket {
                host: Ipv4Addr::LOCALHOST.into(),
                port: 9090
            })
        );
        // As the kubelet: a "name" that is a number is that port.
        assert_eq!(
            action(json!({"tcpSocket": {"port": "7070"}})),
            Ok(Action::TcpSocket {
                host: Ipv4Addr::LOCALHOST.into(),
                port: 7070
            })
        );
        let missing = action(json!({"httpGet": {"port": "metrics"}})).unwrap_err();
        assert_eq!(
            missing,
            ProbeError::PortNotFound {
                field: "httpGet.port",
                name: "metrics".into()
            }
        );
        assert_eq!(
            missing.to_string(),
            "httpGet.port: no container port named \"metrics\""
        );
        assert_eq!(
            action(json!({"tcpSocket": {"port": 0}})),
            Err(ProbeError::InvalidPort {
                field: "tcpSocket.port",
                port: 0
            })
        );
        assert_eq!(
            action(json!({"tcpSocket": {"port": 70000}})),
            Err(ProbeError::InvalidPort {
                field: "tcpSocket.port",
                port: 70000
            })
        );
    }

    #[test]
    fn probe_hosts_are_ip_addresses_or_localhost() {
        let c = web();
        let host = |h: serde_json::Value| match Action::from_probe(
            &probe(json!({"tcpSocket": {"port": 80, "host": h}})),
            &c,
        )? {
            Action::TcpSocket { host, .. } => Ok(host),
            other => panic!("{other:?}"),
        };
        let localhost = IpAddr::from(Ipv4Addr::LOCALHOST);
        assert_eq!(host(json!(null)), Ok(localhost));
        assert_eq!(host(json!("")), Ok(localhost));
        assert_eq!(host(json!("LocalHost")), Ok(localhost));
        assert_eq!(host(json!("10.1.2.3")), Ok("10.1.2.3".parse().unwrap()));
        assert_eq!(host(json!("::1")), Ok(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(host(json!("[::1]")), Ok(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(
            host(json!("db.example")),
            Err(ProbeError::HostNotIp {
                field: "tcpSocket.host",
                host: "db.example".into()
            })
        );
    }

    #[test]
    fn http_get_probes_keep_path_and_headers() {
        let c = web();
        let action = Action::from_probe(
            &probe(json!({"httpGet": {
                "port": "http", "path": "healthz?deep=1",
                "httpHeaders": [{"name": "X-Token", "value": "a b"}],
            }})),
            &c,
        );
        assert_eq!(
            action,
            Ok(Action::HttpGet {
                host: Ipv4Addr::LOCALHOST.into(),
                port: 8080,
                path: "/healthz?deep=1".into(),
                headers: vec![("X-Token".into(), "a b".into())],
            })
        );
        let bad_header = probe(json!({"httpGet": {
            "port": 80, "httpHeaders": [{"name": "X-Evil", "value": "a\r\nHost: x"}],
        }}));
        assert_eq!(
            Action::from_probe(&bad_header, &c),
            Err(ProbeError::InvalidHeader {
                name: "X-Evil".into()
            })
        );
        let https = probe(json!({"httpGet": {"port": 443, "scheme": "HTTPS"}}));
        assert!(matches!(
            Action::from_probe(&https, &c),
            Err(ProbeError::Unsupported {
                field: "httpGet.scheme",
                ..
            })
        ));
        let plain = probe(json!({"httpGet": {"port": 80, "scheme": "HTTP"}}));
        assert!(Action::from_probe(&plain, &c).is_ok());
    }

    #[test]
    fn probe_handlers_are_checked() {
        let c = web();
        assert_eq!(
            Action::from_probe(
                &probe(json!({"exec": {"command": ["cat", "/tmp/healthy"]}})),
                &c
            ),
            Ok(Action::Exec {
                command: vec!["cat".into(), "/tmp/healthy".into()]
            })
        );
        assert_eq!(
            Action::from_probe(&probe(json!({"exec": {"command": []}})), &c),
            Err(ProbeError::EmptyCommand)
        );
        assert_eq!(
            Action::from_probe(&Probe::default(), &c),
            Err(ProbeError::HandlerCount { found: 0 })
        );
        assert_eq!(
            Action::from_probe(
                &probe(json!({"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}})),
                &c
            ),
            Err(ProbeError::HandlerCount { found: 2 })
        );
        assert!(matches!(
            Action::from_probe(&probe(json!({"grpc": {"port": 9090}})), &c),
            Err(ProbeError::Unsupported { field: "grpc", .. })
        ));
    }

    #[test]
    fn hooks_are_read_like_probes() {
        let c = web();
        let hook = |v: serde_json::Value| {
            Action::from_hook(&serde_json::from_value(v).expect("test handler"), &c)
        };
        assert_eq!(
            hook(json!({"sleep": {"seconds": 5}})),
            Ok(Action::Sleep(Duration::from_secs(5)))
        );
        assert_eq!(
            hook(json!({"sleep": {"seconds": -1}})),
            Err(ProbeError::NegativeSleep { seconds: -1 })
        );
        assert_eq!(
            hook(json!({"exec": {"command": ["sh", "-c", "echo bye"]}})),
            Ok(Action::Exec {
                command: vec!["sh".into(), "-c".into(), "echo bye".into()]
            })
        );
        assert!(matches!(
            hook(json!({"httpGet": {"port": "http", "path": "/stop"}})),
            Ok(Action::HttpGet { port: 8080, .. })
        ));
        assert!(matches!(
            hook(json!({"tcpSocket": {"port": 80}})),
            Err(ProbeError::Unsupported {
                field: "tcpSocket",
                ..
            })
        ));
    }

    #[test]
    fn request_targets() {
        assert_eq!(request_target(""), "/");
        assert_eq!(request_target("/healthz"), "/healthz");
        assert_eq!(request_target("healthz"), "/healthz");
        assert_eq!(request_target("/a b?x=é#frag"), "/a%20b?x=%C3%A9");
    }

    #[test]
    fn http_requests_carry_the_kubelets_headers() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            http_request(addr, "/healthz", &[]),
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: kube-probe/1.34\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        );
        let headers = [
            ("host".to_string(), "web.example".to_string()),
            ("Accept".to_string(), "application/json".to_string()),
            ("X-A".to_string(), "1".to_string()),
            ("X-A".to_string(), "2".to_string()),
            ("User-Agent".to_string(), String::new()),
        ];
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(
            http_request(v6, "/", &headers),
            "GET / HTTP/1.1\r\nHost: web.example\r\nAccept: application/json\r\n\
             X-A: 1\r\nX-A: 2\r\nConnection: close\r\n\r\n"
        );
        assert!(http_request(v6, "/", &[]).contains("\r\nHost: [::1]:80\r\n"));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 302"), Some(302));
        assert_eq!(parse_status_line(b"HTTP/1.1 404 "), Some(404));
        assert_eq!(parse_status_line(b"HTTP/2 200"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 20 OK"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 2000"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 abc"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 099 x"), None);
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    /// A port on 127.0.0.1 that nothing listens on.
    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn tcp_probe_in_the_host_namespace() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(
            tcp_probe(addr, None, Duration::from_secs(2)).await,
            Outcome::Success
        );
        let port = closed_port().await;
        assert_eq!(
            tcp_probe(
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
                None,
                Duration::from_secs(2)
            )
            .await,
            Outcome::Failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    /// Serves one connection: reads the request head, answers `response`, returns the head.
    async fn serve_once(listener: TcpListener, response: &'static [u8]) -> String {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.ends_with(b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "request cut short: {head:?}");
            head.extend_from_slice(&buf[..n]);
        }
        conn.write_all(response).await.unwrap();
        String::from_utf8(head).unwrap()
    }

    async fn http_once(response: &'static [u8], path: &str) -> (Outcome, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_once(listener, response));
        let outcome = http_probe(addr, path, &[], None, Duration::from_secs(2)).await;
        (outcome, server.await.unwrap())
    }

    #[tokio::test]
    async fn http_probe_statuses() {
        let (ok, request) =
            http_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "/ready").await;
        assert_eq!(ok, Outcome::Success);
        assert!(
            request.starts_with("GET /ready HTTP/1.1\r\nHost: 127.0.0.1:"),
            "{request}"
        );
        assert!(
            request.contains("\r\nUser-Agent: kube-probe/1.34\r\n"),
            "{request}"
        );
        let (redirect, _) = http_once(b"HTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\n", "/").await;
        assert_eq!(redirect, Outcome::Success);
        let (failed, _) = http_once(b"HTTP/1.1 500 Internal Server Error\r\n\r\n", "/").await;
        assert_eq!(
            failed,
            Outcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
        let (eof, _) = http_once(b"", "/").await;
        assert!(
            matches!(&eof, Outcome::Failure(m) if m.starts_with("Get \"http://127.0.0.1:") && m.ends_with("/\": EOF")),
            "{eof:?}"
        );
        let (garbage, _) = http_once(b"SSH-2.0-OpenSSH_9.2\r\n", "/").await;
        assert!(
            matches!(&garbage, Outcome::Failure(m) if m.ends_with("malformed HTTP response \"SSH-2.0-OpenSSH_9.2\"")),
            "{garbage:?}"
        );
    }

    #[tokio::test]
    async fn http_probe_failures_name_the_url() {
        let port = closed_port().await;
        let addr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
        assert_eq!(
            http_probe(addr, "/healthz", &[], None, Duration::from_secs(2)).await,
            Outcome::Failure(format!(
                "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
        // A server that accepts but never answers: the timeout bounds the whole exchange.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let started = std::time::Instant::now();
        let outcome = http_probe(addr, "/", &[], None, Duration::from_millis(200)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            outcome,
            Outcome::Failure(format!(
                "Get \"http://{addr}/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        );
        drop(listener);
    }

    /// Probes through a real pod network namespace (tests run as root): the socket must be
    /// made inside it, where only the pod's own listeners are reachable.
    #[tokio::test]
    async fn tcp_and_http_probes_run_in_the_pods_network_namespace() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("default/pods/probed");
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "probed"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }))
        .unwrap();
        let sandbox = crate::sandbox::Sandbox::create(crate::sandbox::SandboxConfig {
            dir: &dir,
            pod: &pod,
            objects: &crate::manifest::Objects::default(),
            live: &crate::downward::LiveFields::default(),
            claims_dir: std::path::Path::new("/nonexistent/claims"),
        })
        .unwrap();
        struct Destroy(PathBuf);
        impl Drop for Destroy {
            fn drop(&mut self) {
                crate::sandbox::Sandbox::destroy(&self.0).expect("destroy the test sandbox");
            }
        }
        let _destroy = Destroy(dir.clone());
        let netns = sandbox.netns.clone().expect("the pod has its own netns");

        // A listener inside the pod: a socket made there, bound to its loopback.
        let fd = crate::sandbox::tcp_socket_in(&netns, false).unwrap();
        let inside = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
        inside.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = inside.local_addr().unwrap();
        let listener = inside.listen(4).unwrap();

        assert_eq!(
            tcp_probe(addr, Some(&netns), Duration::from_secs(2)).await,
            Outcome::Success
        );
        drop(listener.accept().await.unwrap());
        let server = tokio::spawn(serve_once(listener, b"HTTP/1.1 204 No Content\r\n\r\n"));
        assert_eq!(
            http_probe(addr, "/", &[], Some(&netns), Duration::from_secs(2)).await,
            Outcome::Success
        );
        assert!(server.await.unwrap().starts_with("GET / HTTP/1.1\r\n"));

        // The host's listener is not reachable from the pod.
        let host = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host_addr = host.local_addr().unwrap();
        assert_eq!(
            tcp_probe(host_addr, Some(&netns), Duration::from_secs(2)).await,
            Outcome::Failure(format!("dial tcp {host_addr}: connect: connection refused"))
        );
        assert_eq!(
            tcp_probe(host_addr, None, Duration::from_secs(2)).await,
            Outcome::Success
        );

        // A missing namespace is an error, not a failure.
        let gone = tmp.path().join("no-such-netns");
        assert!(matches!(
            tcp_probe(addr, Some(&gone), Duration::from_secs(2)).await,
            Outcome::Error(m) if m.contains("no-such-netns")
        ));
    }

    #[tokio::test]
    async fn sleep_is_bounded_by_the_timeout() {
        let started = Instant::now();
        let slept = sleep_for(Duration::from_millis(50), Duration::from_secs(1)).await;
        assert_eq!(slept, Outcome::Success);
        assert!(started.elapsed() >= Duration::from_millis(50));
        let started = Instant::now();
        let cut = sleep_for(Duration::from_secs(30), Duration::from_millis(100)).await;
        assert_eq!(
            cut,
            Outcome::Failure("sleep of 30s cut short after 100ms".into())
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
