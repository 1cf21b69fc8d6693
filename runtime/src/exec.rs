//! Running a command in a running container of a pod, as `kubectl exec` does.
//!
//! [`find`] resolves the container: the pod must exist and run, the container is named or is
//! the pod's only main container (a sidecar or an init container may be named too), and it
//! must have a running task. Containers are found by their labels (`io.podctl.pod`,
//! `io.podctl.container`); a container restarted by its runner has one containerd container
//! per run, and the one with the running task is the target. Its process spec (env, cwd,
//! user, capabilities ...) comes from its OCI runtime spec in containerd.
//!
//! [`run`] runs one command there as an exec process of the container's task, with the
//! container's process spec and the command as its arguments:
//!
//! - output: without a terminal, the process's stdout and stderr go through two FIFOs in the
//!   pod's `io` dir to the caller's writers; with one (`tty`), the shim allocates a
//!   pseudo-terminal and its output comes as one stream on the stdout writer;
//! - input (when the caller gives a reader): a stdin FIFO; end-of-file on the reader closes
//!   the process's stdin (`Tasks.CloseIO`, which on a terminal changes nothing);
//! - terminal size: every size the caller sends (the first at once) goes to
//!   `Tasks.ResizePty`; the first also goes into the process spec;
//! - the end: the process's exit status (128 + n when killed by signal n); when `interrupt`
//!   resolves first, the process is killed (SIGKILL) and [`Ended::Interrupted`] returned. A
//!   command that cannot be started is [`ExecError::CommandNotFound`] or
//!   [`ExecError::CannotRun`].
//!
//! Cleanup: the exec process is always deleted (`Tasks.DeleteProcess`) and its FIFOs
//! removed, on errors too; if the future of [`run`] is dropped half-way, the FIFOs go at
//! once and the process is killed and deleted on a task of its own.
//!
//! containerd reports a command that runc cannot start only as text (runc's error inside
//! the shim's), so telling "not found" (127) from "cannot run" (126) reads the message, here
//! and nowhere else: [`start_failure`].

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::join_all;
use oci_spec::runtime::{Process, Spec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::containerd::{labels, Client, Container, ContainerdError, TaskIo, TaskStatus, SIGKILL};
use crate::pods::{self, ContainerNames, PodsError};

/// Prefix of the exec ids (and so of the FIFO names in the pod's `io` dir) of exec processes.
pub const EXEC_ID_PREFIX: &str = "podctl-exec-";
/// How long a killed exec process is waited for before it is deleted.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How long output is still copied once the exec process is gone (a background child of
/// the command may hold the pipe open).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);
const CHUNK: usize = 32 * 1024;

/// Why a command could not be run in a container.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("pod {pod:?} is not running")]
    PodNotRunning { pod: String },
    #[error("container {container:?} in pod {pod:?} is not running")]
    ContainerNotRunning { pod: String, container: String },
    /// The container's record in containerd lacks a usable runtime spec.
    #[error("container {container:?} in pod {pod:?}: {reason}")]
    BadSpec {
        pod: String,
        container: String,
        reason: String,
    },
    #[error("no command given")]
    EmptyCommand,
    /// runc could not find the command (the shell's 127).
    #[error("{command:?} not found in container {container:?}")]
    CommandNotFound {
        command: String,
        container: String,
        #[source]
        source: ContainerdError,
    },
    /// runc found the command but could not start it (the shell's 126).
    #[error("cannot run {command:?} in container {container:?}")]
    CannotRun {
        command: String,
        container: String,
        #[source]
        source: ContainerdError,
    },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("encoding the exec process spec: {0}")]
    Encode(serde_json::Error),
    #[error(transparent)]
    Pods(#[from] PodsError),
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    /// The exec failed and removing the exec process failed too; both are reported.
    #[error("{error}; removing the exec process failed too: {cleanup}")]
    CleanupFailed {
        error: Box<ExecError>,
        cleanup: ContainerdError,
    },
}

/// The names on the pod's containerd containers (`io.podctl.container`, by
/// `io.podctl.role`), for a pod whose manifest is not on disk; sorted.
fn names_from_labels(containers: &[Container]) -> ContainerNames {
    let mut names = ContainerNames::default();
    for c in containers {
        let Some(name) = c.labels.get(labels::CONTAINER) else {
            continue;
        };
        let list = match c.labels.get(labels::ROLE).map(String::as_str) {
            Some("init") => &mut names.init,
            Some("sidecar") => &mut names.sidecars,
            _ => &mut names.main,
        };
        if !list.contains(name) {
            list.push(name.clone());
        }
    }
    names.main.sort();
    names.sidecars.sort();
    names.init.sort();
    names
}

/// A running container to exec into, found by [`find`].
#[derive(Debug, Clone)]
pub struct RunningContainer {
    pub pod: String,
    /// The container's name in the pod.
    pub name: String,
    /// The containerd container of its current run.
    pub id: String,
    /// Its process, from its runtime spec.
    pub process: Process,
    /// The pod's `io` dir, where the exec FIFOs are made.
    pub io_dir: PathBuf,
}

/// Finds the running container `container` (`None`: the only main container) of `pod`.
/// Checks in kubectl's order: the pod exists, it runs, the container is one of its own (or
/// may be left out), it is running.
pub async fn find(
    client: &Client,
    root: &Path,
    pod: &str,
    container: Option<&str>,
) -> Result<RunningContainer, ExecError> {
    let namespace = client.namespace();
    let not_found = || -> ExecError {
        PodsError::NotFound {
            pod: pod.to_string(),
            namespace: namespace.to_string(),
        }
        .into()
    };
    if !crate::manifest::is_dns_label(pod) {
        return Err(not_found());
    }
    let record = match pods::get(root, namespace, pod) {
        Ok(record) => Some(record),
        Err(PodsError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let filter = format!("labels.\"{}\"==\"{}\"", labels::POD, pod);
    let containers = client.list_containers(&filter).await?;
    if record.is_none() && containers.is_empty() {
        return Err(not_found());
    }
    let statuses = join_all(containers.iter().map(|c| client.task_status(&c.id))).await;
    let mut running = Vec::new();
    for (c, status) in containers.iter().zip(statuses) {
        if status? == Some(TaskStatus::Running) {
            running.push(c);
        }
    }
    let supervised = record.as_ref().is_some_and(|r| r.is_running());
    if running.is_empty() && !supervised {
        return Err(ExecError::PodNotRunning {
            pod: pod.to_string(),
        });
    }
    let names = match record.as_ref().and_then(|r| r.pod.as_ref()) {
        Some(manifest) => ContainerNames::from_manifest(manifest),
        None => names_from_labels(&containers),
    };
    let name = names.choose(pod, container)?;
    let target = running
        .into_iter()
        .find(|c| c.labels.get(labels::CONTAINER) == Some(&name))
        .ok_or_else(|| ExecError::ContainerNotRunning {
            pod: pod.to_string(),
            container: name.clone(),
        })?;
    let process = process_of(target).map_err(|reason| ExecError::BadSpec {
        pod: pod.to_string(),
        container: name.clone(),
        reason,
    })?;
    Ok(RunningContainer {
        pod: pod.to_string(),
        name,
        id: target.id.clone(),
        process,
        io_dir: crate::lifecycle::pod_dir(root, namespace, pod).join("io"),
    })
}

/// The process of a container's runtime spec (stored as JSON in its record).
fn process_of(container: &Container) -> Result<Process, String> {
    let spec = container
        .spec
        .as_ref()
        .ok_or("its record has no runtime spec")?;
    let spec: Spec = serde_json::from_slice(&spec.value)
        .map_err(|e| format!("its runtime spec cannot be read: {e}"))?;
    spec.process()
        .clone()
        .ok_or_else(|| "its runtime spec has no process".to_string())
}

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

/// A stream the command reads its input from.
pub type Input = Box<dyn AsyncRead + Send + Unpin>;
/// A stream the command's output is written to.
pub type Output = Box<dyn AsyncWrite + Send + Unpin>;

/// What to run, and where its streams go.
pub struct ExecOptions {
    /// The command and its arguments (replacing the container's).
    pub command: Vec<String>,
    /// Give the process a pseudo-terminal: its output then comes as one stream on `stdout`.
    pub tty: bool,
    /// With `tty`, the terminal's sizes: the current one at start, and each change.
    pub window: Option<watch::Receiver<WindowSize>>,
    /// The process's input; `None`: it has none. End-of-file closes its stdin.
    pub stdin: Option<Input>,
    pub stdout: Output,
    /// Unused with `tty`.
    pub stderr: Output,
}

/// How an exec ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The command's exit status (128 + n when killed by signal n).
    Exited(u32),
    /// The caller's `interrupt` came first; the process was killed.
    Interrupted,
}

/// The exec process: the container's process with `command` as its arguments and a
/// terminal as asked.
pub fn exec_process(
    container: &Process,
    command: &[String],
    tty: bool,
    size: Option<WindowSize>,
) -> Process {
    let mut process = container.clone();
    process.set_args(Some(command.to_vec()));
    process.set_terminal(Some(tty));
    let console = size.filter(|_| tty).and_then(|s| {
        oci_spec::runtime::BoxBuilder::default()
            .height(u64::from(s.rows))
            .width(u64::from(s.cols))
            .build()
            .ok()
    });
    process.set_console_size(console);
    process
}

/// Runs `opts.command` in `target` to its end (see the module's docs); `interrupt`
/// resolving first kills it.
pub async fn run(
    client: &Client,
    target: &RunningContainer,
    opts: ExecOptions,
    interrupt: impl Future<Output = ()>,
) -> Result<Ended, ExecError> {
    if opts.command.is_empty() {
        return Err(ExecError::EmptyCommand);
    }
    let exec_id = format!("{EXEC_ID_PREFIX}{:016x}", rand::random::<u64>());
    let window = opts.window.filter(|_| opts.tty);
    let size = window.as_ref().map(|w| *w.borrow());
    let spec = exec_process(&target.process, &opts.command, opts.tty, size);
    let process_json = serde_json::to_vec(&spec).map_err(ExecError::Encode)?;
    let mut fifos = Fifos::create(&target.io_dir, &exec_id, opts.stdin.is_some(), !opts.tty)?;
    let (cid, eid) = (target.id.as_str(), exec_id.as_str());
    let process = ExecRef {
        client: client.clone(),
        container_id: target.id.clone(),
        exec_id: exec_id.clone(),
    };
    let mut guard = ProcessGuard {
        process: Some(process.clone()),
    };
    let io = TaskIo {
        stdout: fifos.path(Fifos::STDOUT),
        stderr: fifos.path(Fifos::STDERR),
    };
    let stdin_path = fifos.path(Fifos::STDIN);
    tracing::debug!(pod = %target.pod, container = %target.name, exec = eid, "starting an exec process");
    let started = async {
        client
            .exec_process_io(cid, eid, process_json, &stdin_path, io, opts.tty)
            .await?;
        client.start_process(cid, eid).await
    }
    .await;
    if let Err(e) = started {
        let error = match start_error(e, &opts.command[0], &target.name) {
            // The container stopped since `find`: say so rather than containerd's words.
            ExecError::Containerd(e) => match client.task_status(cid).await {
                Ok(Some(TaskStatus::Running)) | Err(_) => ExecError::Containerd(e),
                Ok(_) => ExecError::ContainerNotRunning {
                    pod: target.pod.clone(),
                    container: target.name.clone(),
                },
            },
            error => error,
        };
        return match guard.delete().await {
            Ok(()) => Err(error),
            Err(cleanup) => Err(ExecError::CleanupFailed {
                error: Box::new(error),
                cleanup,
            }),
        };
    }

    // The shim opened its ends of the FIFOs while starting the process.
    let mut pumps: Vec<JoinHandle<()>> = Vec::new();
    if let Some(rx) = fifos.stdout.take() {
        pumps.push(tokio::spawn(pump(rx, opts.stdout, process.clone())));
    }
    if let Some(rx) = fifos.stderr.take() {
        pumps.push(tokio::spawn(pump(rx, opts.stderr, process.clone())));
    }
    let mut helpers: Vec<JoinHandle<()>> = Vec::new();
    if let (Some(input), Some(tx)) = (opts.stdin, fifos.stdin.take()) {
        helpers.push(tokio::spawn(feed(input, tx, process.clone())));
    }
    if let Some(window) = window {
        helpers.push(tokio::spawn(resize(window, process)));
    }

    tokio::pin!(interrupt);
    let ended = tokio::select! {
        exit = client.wait_process(cid, eid) => exit.map(|e| Ended::Exited(e.status)),
        () = &mut interrupt => {
            tracing::debug!(exec = eid, "interrupted: killing the exec process");
            if let Err(e) = client.kill_process(cid, eid, SIGKILL).await {
                tracing::debug!(exec = eid, error = %e, "killing the exec process");
            }
            let _ = tokio::time::timeout(KILL_WAIT, client.wait_process(cid, eid)).await;
            Ok(Ended::Interrupted)
        }
    };
    if ended.is_err() {
        // Waiting failed, so the process may still run: it goes before it is deleted.
        let _ = client.kill_process(cid, eid, SIGKILL).await;
        let _ = tokio::time::timeout(KILL_WAIT, client.wait_process(cid, eid)).await;
    }
    for helper in &helpers {
        helper.abort();
    }
    // Deleting the process lets the shim finish copying its output, then closes the FIFOs'
    // write ends: the pumps see end-of-file.
    let deleted = guard.delete().await;
    let _ = tokio::time::timeout(OUTPUT_GRACE, join_all(pumps.iter_mut())).await;
    for p in &pumps {
        p.abort();
    }
    drop(fifos);
    match (ended, deleted) {
        (Ok(ended), Ok(())) => Ok(ended),
        (Ok(ended), Err(e)) => {
            tracing::warn!(pod = %target.pod, container = %target.name, exec = eid, error = %e, "removing the exec process failed");
            Ok(ended)
        }
        (Err(e), Ok(())) => Err(e.into()),
        (Err(e), Err(cleanup)) => Err(ExecError::CleanupFailed {
            error: Box::new(e.into()),
            cleanup,
        }),
    }
}

/// Why a command could not be started, as runc words it inside containerd's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFailure {
    /// No such executable (`executable file not found in $PATH`, `no such file or directory`).
    NotFound,
    /// Anything else runc refused (`permission denied`, `is a directory`, `exec format error`).
    CannotRun,
}

/// Reads runc's reason out of the message of a failed `Tasks.Start` of an exec process.
pub fn start_failure(message: &str) -> StartFailure {
    let lower = message.to_ascii_lowercase();
    if lower.contains("executable file not found") || lower.contains("no such file or directory") {
        StartFailure::NotFound
    } else {
        StartFailure::CannotRun
    }
}

/// A failed exec create or start: the command's fault when runc refused it, else
/// containerd's.
fn start_error(e: ContainerdError, command: &str, container: &str) -> ExecError {
    let message = match &e {
        ContainerdError::Rpc { message, .. }
        | ContainerdError::NotFound { message, .. }
        | ContainerdError::FailedPrecondition { message, .. } => message.as_str(),
        _ => return e.into(),
    };
    // Only runc's own exec failures are the command's; a task that vanished meanwhile is
    // containerd's.
    if !message.contains("exec failed") {
        return e.into();
    }
    let (command, container) = (command.to_string(), container.to_string());
    match start_failure(message) {
        StartFailure::NotFound => ExecError::CommandNotFound {
            command,
            container,
            source: e,
        },
        StartFailure::CannotRun => ExecError::CannotRun {
            command,
            container,
            source: e,
        },
    }
}

/// The exec process until it is deleted; dropped before that (the caller stopped waiting),
/// it is killed and deleted on a task of its own.
struct ProcessGuard {
    /// `None` once deleted (or the deletion was tried).
    process: Option<ExecRef>,
}

impl ProcessGuard {
    /// Deletes the process (dropped half-way, the guard still does it).
    async fn delete(&mut self) -> Result<(), ContainerdError> {
        let Some(p) = &self.process else {
            return Ok(());
        };
        let r = p.client.delete_process(&p.container_id, &p.exec_id).await;
        self.process = None;
        r
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        let Some(p) = self.process.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let (cid, eid) = (p.container_id.as_str(), p.exec_id.as_str());
            let _ = p.client.kill_process(cid, eid, SIGKILL).await;
            let _ = tokio::time::timeout(KILL_WAIT, p.client.wait_process(cid, eid)).await;
            if let Err(e) = p.client.delete_process(cid, eid).await {
                tracing::warn!(exec = eid, error = %e, "removing an abandoned exec process failed");
            }
        });
    }
}

/// The exec's FIFOs in the pod's `io` dir: `<exec id>.in`, `.out`, `.err`, each made only
/// when used; removed when dropped.
struct Fifos {
    paths: [Option<PathBuf>; 3],
    stdin: Option<pipe::Sender>,
    stdout: Option<pipe::Receiver>,
    stderr: Option<pipe::Receiver>,
}

impl Fifos {
    const STDIN: usize = 0;
    const STDOUT: usize = 1;
    const STDERR: usize = 2;

    /// Makes and opens the FIFOs: our read ends of stdout (always) and stderr (`stderr`),
    /// our write end of stdin (`stdin`). Every end is opened without blocking: the write end
    /// read-write, so it needs no reader yet.
    fn create(dir: &Path, exec_id: &str, stdin: bool, stderr: bool) -> Result<Self, ExecError> {
        let mut fifos = Fifos {
            paths: [None, None, None],
            stdin: None,
            stdout: None,
            stderr: None,
        };
        let make = |fifos: &mut Fifos, index: usize, suffix: &str| {
            let path = dir.join(format!("{exec_id}.{suffix}"));
            nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(
                |e| ExecError::Io {
                    path: path.clone(),
                    source: e.into(),
                },
            )?;
            fifos.paths[index] = Some(path.clone());
            Ok::<_, ExecError>(path)
        };
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ExecError::Io { path, source }
        };
        let out = make(&mut fifos, Self::STDOUT, "out")?;
        fifos.stdout = Some(
            pipe::OpenOptions::new()
                .open_receiver(&out)
                .map_err(io_error(&out))?,
        );
        if stderr {
            let err = make(&mut fifos, Self::STDERR, "err")?;
            fifos.stderr = Some(
                pipe::OpenOptions::new()
                    .open_receiver(&err)
                    .map_err(io_error(&err))?,
            );
        }
        if stdin {
            let input = make(&mut fifos, Self::STDIN, "in")?;
            fifos.stdin = Some(
                pipe::OpenOptions::new()
                    .read_write(true)
                    .open_sender(&input)
                    .map_err(io_error(&input))?,
            );
        }
        Ok(fifos)
    }

    /// The path of FIFO `index` as containerd takes it (empty: none).
    fn path(&self, index: usize) -> String {
        self.paths[index]
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Fifos {
    fn drop(&mut self) {
        for path in self.paths.iter().flatten() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Copies a FIFO to `out` until end-of-file, flushing each chunk. Once `out` fails (its
/// reader is gone, as with `podctl exec ... | head -1`), the process gets SIGPIPE, as it
/// would writing to a closed pipe of its own, and the rest of its output is read and
/// dropped, so that one ignoring the signal never blocks on a full pipe.
async fn pump(mut rx: pipe::Receiver, mut out: Output, process: ExecRef) {
    let mut buf = vec![0u8; CHUNK];
    let mut writable = true;
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if writable && (out.write_all(&buf[..n]).await.is_err() || out.flush().await.is_err()) {
            writable = false;
            let signal = nix::sys::signal::Signal::SIGPIPE as u32;
            let r = process
                .client
                .kill_process(&process.container_id, &process.exec_id, signal)
                .await;
            if let Err(e) = r {
                tracing::debug!(exec = %process.exec_id, error = %e, "sending SIGPIPE");
            }
        }
    }
    let _ = out.flush().await;
}

/// An exec process, for the tasks serving it.
#[derive(Clone)]
struct ExecRef {
    client: Client,
    container_id: String,
    exec_id: String,
}

/// Copies the caller's input into the stdin FIFO; at its end closes our write end and has
/// the shim close its own, so the process reads end-of-file.
async fn feed(mut input: Input, mut tx: pipe::Sender, process: ExecRef) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match input.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if tx.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    drop(tx);
    let ExecRef {
        client,
        container_id,
        exec_id,
    } = process;
    if let Err(e) = client.close_stdin(&container_id, &exec_id).await {
        tracing::debug!(exec = %exec_id, error = %e, "closing the exec process's stdin");
    }
}

/// Passes each terminal size (the current one first) to the process's terminal.
async fn resize(mut sizes: watch::Receiver<WindowSize>, process: ExecRef) {
    let ExecRef {
        client,
        container_id,
        exec_id,
    } = process;
    loop {
        let size = *sizes.borrow_and_update();
        let r = client
            .resize_pty(
                &container_id,
                &exec_id,
                u32::from(size.cols),
                u32::from(size.rows),
            )
            .await;
        if let Err(e) = r {
            tracing::debug!(exec = %exec_id, error = %e, "resizing the exec process's terminal");
        }
        if sizes.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn names(main: &[&str], sidecars: &[&str], init: &[&str]) -> ContainerNames {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        ContainerNames {
            main: own(main),
            sidecars: own(sidecars),
            init: own(init),
        }
    }

    #[test]
    fn names_come_from_the_manifest_in_spec_order() {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "initContainers": [
                    {"name": "setup", "image": "busybox"},
                    {"name": "proxy", "image": "busybox", "restartPolicy": "Always"}
                ],
                "containers": [{"name": "b", "image": "busybox"}, {"name": "a", "image": "busybox"}]
            }
        }))
        .unwrap();
        assert_eq!(
            ContainerNames::from_manifest(&pod),
            names(&["b", "a"], &["proxy"], &["setup"])
        );
    }

    #[test]
    fn names_come_from_labels_without_a_manifest() {
        let record = |name: &str, role: &str| Container {
            id: format!("{name}-x"),
            labels: HashMap::from([
                (labels::CONTAINER.to_string(), name.to_string()),
                (labels::ROLE.to_string(), role.to_string()),
            ]),
            ..Default::default()
        };
        let containers = [
            record("web", "main"),
            record("web", "main"),
            record("api", "main"),
            record("proxy", "sidecar"),
            record("setup", "init"),
        ];
        assert_eq!(
            names_from_labels(&containers),
            names(&["api", "web"], &["proxy"], &["setup"])
        );
    }

    #[test]
    fn the_only_main_container_is_the_default() {
        let one = names(&["app"], &["proxy"], &["setup"]);
        assert_eq!(one.choose("p", None).unwrap(), "app");
        assert_eq!(one.choose("p", Some("proxy")).unwrap(), "proxy");
        assert_eq!(one.choose("p", Some("setup")).unwrap(), "setup");
        let e = one.choose("p", Some("nope")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "container nope is not valid for pod p, choose one of: [app] \
             or one of the init containers: [proxy setup]"
        );
    }

    #[test]
    fn several_main_containers_need_a_name() {
        let two = names(&["a", "b"], &[], &[]);
        assert_eq!(two.choose("p", Some("b")).unwrap(), "b");
        let e = two.choose("p", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a container name must be specified for pod p, choose one of: [a b]"
        );
    }

    #[test]
    fn the_exec_process_keeps_the_containers_and_replaces_its_args() {
        let container: Process = serde_json::from_value(json!({
            "user": {"uid": 1000, "gid": 1000},
            "args": ["sleep", "3600"],
            "env": ["PATH=/bin", "GREETING=hi"],
            "cwd": "/srv",
            "terminal": false
        }))
        .unwrap();
        let command = vec!["sh".to_string(), "-c".to_string(), "pwd".to_string()];
        let plain = exec_process(&container, &command, false, None);
        assert_eq!(plain.args().as_deref(), Some(command.as_slice()));
        assert_eq!(plain.env(), container.env());
        assert_eq!(plain.cwd(), container.cwd());
        assert_eq!(plain.user(), container.user());
        assert_eq!(plain.terminal(), Some(false));
        assert!(plain.console_size().is_none());

        let size = WindowSize { rows: 24, cols: 80 };
        let tty = exec_process(&container, &command, true, Some(size));
        assert_eq!(tty.terminal(), Some(true));
        let console = tty.console_size().expect("a console size");
        assert_eq!((console.height(), console.width()), (24, 80));
        let json = serde_json::to_value(&tty).unwrap();
        assert_eq!(json["consoleSize"], json!({"height": 24, "width": 80}));
        assert_eq!(json["terminal"], true);
    }

    #[test]
    fn the_process_comes_from_the_containers_spec() {
        let with_spec = |value: Vec<u8>| Container {
            id: "c".into(),
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                value,
            }),
            ..Default::default()
        };
        let spec = json!({"ociVersion": "1.0.2", "process": {"cwd": "/w", "args": ["x"], "user": {"uid": 0, "gid": 0}}});
        let process = process_of(&with_spec(serde_json::to_vec(&spec).unwrap())).unwrap();
        assert_eq!(process.cwd(), Path::new("/w"));
        assert!(process_of(&with_spec(b"{".to_vec()))
            .unwrap_err()
            .contains("cannot be read"));
        assert_eq!(
            process_of(&Container::default()).unwrap_err(),
            "its record has no runtime spec"
        );
    }

    #[test]
    fn runc_start_failures_are_told_apart() {
        let not_found = "OCI runtime exec failed: exec failed: unable to start container process: \
             exec: \"nope\": executable file not found in $PATH: unknown";
        assert_eq!(start_failure(not_found), StartFailure::NotFound);
        let no_file = "OCI runtime exec failed: exec failed: unable to start container process: \
             exec: \"/nope\": stat /nope: no such file or directory: unknown";
        assert_eq!(start_failure(no_file), StartFailure::NotFound);
        let denied = "OCI runtime exec failed: exec failed: unable to start container process: \
             exec: \"/etc/passwd\": permission denied: unknown";
        assert_eq!(start_failure(denied), StartFailure::CannotRun);

        let rpc = |message: &str| ContainerdError::Rpc {
            op: "tasks.start",
            code: tonic::Code::Unknown,
            message: message.into(),
        };
        assert!(matches!(
            start_error(rpc(not_found), "nope", "app"),
            ExecError::CommandNotFound { ref command, .. } if command == "nope"
        ));
        assert!(matches!(
            start_error(rpc(denied), "/etc/passwd", "app"),
            ExecError::CannotRun { .. }
        ));
        // Not runc's refusal: containerd's own trouble.
        assert!(matches!(
            start_error(rpc("ttrpc: closed"), "sh", "app"),
            ExecError::Containerd(_)
        ));
        let gone = ContainerdError::Unavailable {
            op: "tasks.start",
            message: "connection reset".into(),
        };
        assert!(matches!(
            start_error(gone, "sh", "app"),
            ExecError::Containerd(_)
        ));
    }

    #[test]
    fn fifos_are_made_as_needed_and_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let fifos = Fifos::create(dir.path(), "podctl-exec-1", true, false).unwrap();
            assert!(fifos.path(Fifos::STDOUT).ends_with("podctl-exec-1.out"));
            assert!(fifos.path(Fifos::STDIN).ends_with("podctl-exec-1.in"));
            assert_eq!(fifos.path(Fifos::STDERR), "");
            let mut made: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            made.sort();
            assert_eq!(made, ["podctl-exec-1.in", "podctl-exec-1.out"]);
            drop(fifos);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        });
        // A FIFO that cannot be made leaves nothing behind.
        let missing = dir.path().join("no-such-dir");
        assert!(matches!(
            Fifos::create(&missing, "podctl-exec-2", true, true),
            Err(ExecError::Io { .. })
        ));
    }
}
