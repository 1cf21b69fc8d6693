//! The API's read side (`List`, `Get`, `Logs`, `Events`) and `Exec`, as free functions the
//! service calls: the state dir is read as the CLI reads it (`pods`, `podlogs`), a command
//! runs as `podctl exec` runs it (`exec`), and errors carry the CLI's text.
//!
//! Streams are fed by a task of their own through a bounded channel: a slow client holds
//! the reading back, and a client that went away (its response stream dropped) ends the
//! task at its next look (every poll while following), or kills the exec'd command.
//!
//! Error codes ([`status_of`]), for clients to act on; the message is the CLI's:
//!
//! - `NotFound`: an unknown pod; in an exec's stream (once its response began), a command
//!   that does not exist in the container (the shell's 127);
//! - `InvalidArgument`: a container required or unknown, an empty command, an exec not
//!   begun by `start`;
//! - `FailedPrecondition`: a pod or container not running, no previous run, a container
//!   waiting to start;
//! - `PermissionDenied`: in an exec's stream, a command that exists but cannot be run (the
//!   shell's 126);
//! - `Unavailable`: containerd cannot be reached;
//! - `Internal`: I/O errors, damaged records, any other containerd failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::Stream;
use podctl_proto::v1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

use super::supervise::{source_of, Source};
use crate::containerd::{Client, ContainerdError};
use crate::exec::{self, Ended, ExecError, ExecOptions, WindowSize};
use crate::lifecycle::EventType;
use crate::podlogs::{self, LineSink, LogLine, LogOptions, PodLogsError};
use crate::pods::{self, ContainerNames, EventsTail, PodRecord, PodsError};

/// How often followed events are looked for (as `podctl events -f`).
const EVENTS_POLL: Duration = Duration::from_millis(200);
/// Messages queued for a client before the reading waits for it.
const QUEUE: usize = 64;
/// The largest chunk of exec output in one message, and the room for stdin not yet read.
const CHUNK: usize = 32 * 1024;
/// The terminal size of an exec with a terminal whose `start` gave none (a VT100's).
const DEFAULT_WINDOW: WindowSize = WindowSize { rows: 24, cols: 80 };

/// The pods of `namespace` as `podctl ps` lists them: those a process supervises, or all
/// with `all`.
pub(crate) fn list(root: &Path, namespace: &str, all: bool) -> Result<v1::ListResponse, Status> {
    let pods = pods::list(root, namespace)
        .map_err(status_of)?
        .iter()
        .filter(|r| all || r.is_running())
        .map(summary)
        .collect();
    Ok(v1::ListResponse { pods })
}

/// One pod's line of [`list`]: READY and RESTARTS as `kubectl get pods` counts them.
fn summary(record: &PodRecord) -> v1::PodSummary {
    let supervised = record.is_running();
    let (phase, ready, containers, restarts) = match &record.status {
        Some(status) => {
            let s = status.summary();
            // A live phase with nothing supervising the pod any more is stale: its
            // supervisor died under it (`podctl ps` says Unknown too).
            let phase = if supervised || status.phase.is_terminal() {
                status.phase.as_str()
            } else {
                "Unknown"
            };
            (phase, s.ready, s.total, s.restarts)
        }
        // Being set up (no status yet), or its supervisor died while setting it up.
        None => {
            let names = ContainerNames::of_record(record);
            let phase = if supervised { "Pending" } else { "Unknown" };
            (phase, 0, names.main.len() + names.sidecars.len(), 0)
        }
    };
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let source = match record.pod.as_ref().and_then(source_of) {
        Some(Source::Api) => "api",
        Some(Source::File { .. }) => "static",
        None => "run",
    };
    v1::PodSummary {
        name: record.name.clone(),
        phase: phase.to_string(),
        ready: count(ready),
        containers: count(containers),
        restarts,
        start_time: record
            .status
            .as_ref()
            .and_then(|s| s.start_time.clone())
            .unwrap_or_default(),
        supervised,
        source: source.to_string(),
    }
}

/// One pod as `podctl inspect -o json` prints it.
pub(crate) fn get(root: &Path, namespace: &str, name: &str) -> Result<v1::GetResponse, Status> {
    let record = pods::get(root, namespace, name).map_err(status_of)?;
    let pod_json = serde_json::to_vec(&record.to_kubernetes(namespace))
        .map_err(|e| Status::internal(format!("encoding pod {name:?}: {e}")))?;
    Ok(v1::GetResponse { pod_json })
}

/// A container's log lines as `podctl logs` reads them; with `follow`, until the run ends
/// or the client goes away. An unknown pod or container, or a run that is not there, is
/// refused before the stream begins.
pub(crate) fn logs(
    root: &Path,
    namespace: &str,
    req: v1::LogsRequest,
) -> Result<impl Stream<Item = Result<v1::LogLine, Status>> + Send + 'static, Status> {
    let opts = LogOptions {
        container: Some(req.container).filter(|c| !c.is_empty()),
        previous: req.previous,
        follow: req.follow,
        tail: usize::try_from(req.tail).ok(),
        timestamps: false,
    };
    let record = pods::get(root, namespace, &req.pod).map_err(status_of)?;
    let target = podlogs::select(&record, &opts).map_err(status_of)?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let (root, namespace, pod) = (root.to_path_buf(), namespace.to_string(), req.pod);
    // Reading and following are blocking file reads and sleeps.
    tokio::task::spawn_blocking(move || {
        let mut sink = LineSender(tx);
        match podlogs::read(&root, &namespace, &pod, &target, &opts, &mut sink) {
            // The client went away.
            Ok(()) | Err(PodLogsError::Write(_)) => {}
            Err(e) => {
                let _ = sink.0.blocking_send(Err(status_of(e)));
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

/// Log lines into a stream's channel, from a blocking thread.
struct LineSender(mpsc::Sender<Result<v1::LogLine, Status>>);

impl LineSink for LineSender {
    fn line(&mut self, line: LogLine) -> std::io::Result<()> {
        let line = v1::LogLine {
            time: line.time,
            stream: line.stream.as_str().to_string(),
            content: line.text,
        };
        self.0.blocking_send(Ok(line)).map_err(|_| gone())
    }

    /// Called at every poll while following: a client gone is noticed there too.
    fn flush(&mut self) -> std::io::Result<()> {
        if self.0.is_closed() {
            return Err(gone());
        }
        Ok(())
    }
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
}

/// The events of one pod (`req.pod`) or of every pod, as `podctl events` reads them; with
/// `follow`, the new ones as they are recorded: for one pod while it is supervised, for
/// every pod (those made later too) until the client goes away.
pub(crate) fn events(
    root: &Path,
    namespace: &str,
    req: v1::EventsRequest,
) -> Result<impl Stream<Item = Result<v1::Event, Status>> + Send + 'static, Status> {
    let scope = match req.pod.as_str() {
        "" => Scope::All(BTreeMap::new()),
        name => {
            let record = pods::get(root, namespace, name).map_err(status_of)?;
            Scope::Pod {
                tail: EventsTail::new(record.events_path()),
                name: record.name,
            }
        }
    };
    let reader = EventsReader {
        root: root.to_path_buf(),
        namespace: namespace.to_string(),
        scope,
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(send_events(reader, req.follow, tx));
    Ok(ReceiverStream::new(rx))
}

/// Reads the events in `reader` into `tx`: all there are, then with `follow` the new ones
/// every [`EVENTS_POLL`] while there may be more.
async fn send_events(
    mut reader: EventsReader,
    follow: bool,
    tx: mpsc::Sender<Result<v1::Event, Status>>,
) {
    loop {
        // The files are read on a blocking thread: a long-lived pod's file may be large.
        let Ok((back, read)) = tokio::task::spawn_blocking(move || {
            let read = reader.read_new();
            (reader, read)
        })
        .await
        else {
            return;
        };
        reader = back;
        let more = match read {
            Ok((events, more)) => {
                for event in events {
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                more
            }
            Err(e) => {
                let _ = tx.send(Err(status_of(e))).await;
                return;
            }
        };
        if !follow || !more {
            return;
        }
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep(EVENTS_POLL) => {}
        }
    }
}

/// Whose events an [`EventsReader`] reads.
enum Scope {
    /// One pod's.
    Pod { name: String, tail: EventsTail },
    /// Every pod's, by name.
    All(BTreeMap<String, EventsTail>),
}

/// Reads events files as they grow.
struct EventsReader {
    root: PathBuf,
    namespace: String,
    scope: Scope,
}

impl EventsReader {
    /// The events recorded since the last call, oldest first, and whether more may come:
    /// for one pod, while a process supervises it; for every pod, always (pods made since
    /// are read from their first event, pods removed are forgotten).
    fn read_new(&mut self) -> Result<(Vec<v1::Event>, bool), PodsError> {
        let (root, namespace) = (self.root.as_path(), self.namespace.as_str());
        match &mut self.scope {
            Scope::Pod { name, tail } => {
                // Looked at before reading, so the last events of a run that just ended
                // are read; from the record each time, since a daemon supervising the pod
                // outlives its run (its supervisor's process says nothing).
                let supervised = pods::get(root, namespace, name).is_ok_and(|r| r.is_running());
                let events = tail.read_new()?;
                Ok((
                    events.into_iter().map(|e| event(name, e)).collect(),
                    supervised,
                ))
            }
            Scope::All(tails) => {
                let names = pods::names(root, namespace)?;
                // A pod run again under a removed one's name is read from its first event.
                tails.retain(|name, _| names.contains(name));
                let dir = pods::pods_dir(root, namespace);
                let mut batch = Vec::new();
                for name in names {
                    let tail = tails.entry(name.clone()).or_insert_with(|| {
                        EventsTail::new(dir.join(&name).join(pods::files::EVENTS))
                    });
                    let events = tail.read_new()?;
                    batch.extend(events.into_iter().map(|e| event(&name, e)));
                }
                // Stable: events of the same second keep their order within a pod.
                batch.sort_by(|a, b| a.time.cmp(&b.time));
                Ok((batch, true))
            }
        }
    }
}

/// An event of `pod` as the API carries it.
fn event(pod: &str, e: crate::lifecycle::PodEvent) -> v1::Event {
    v1::Event {
        pod: pod.to_string(),
        time: e.time,
        r#type: match e.type_ {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
        .to_string(),
        reason: e.reason,
        container: e.container.unwrap_or_default(),
        message: e.message,
    }
}

/// Runs a command in a running container as `podctl exec` does. `input`'s first message
/// must be `start` (else `InvalidArgument`); the pod, the container and the command are
/// checked before the stream begins. Later messages carry stdin (`close_stdin`, or the
/// end of `input`, closes it) and terminal sizes. The stream carries the output, then the
/// exit code as its last message, or an error (a command that does not exist or cannot
/// run: see the module's docs for the codes). A client that goes away (its response stream
/// dropped, or `input` failing) has the command killed.
pub(crate) async fn exec(
    client: Client,
    root: &Path,
    namespace: &str,
    mut input: tonic::Streaming<v1::ExecInput>,
) -> Result<impl Stream<Item = Result<v1::ExecOutput, Status>> + Send + 'static, Status> {
    use v1::exec_input::Input;
    let start = match input.message().await? {
        Some(v1::ExecInput {
            input: Some(Input::Start(start)),
        }) => start,
        _ => {
            return Err(Status::invalid_argument(
                "the first message of an exec must be `start`",
            ))
        }
    };
    if start.command.is_empty() {
        return Err(status_of(ExecError::EmptyCommand));
    }
    let container = Some(start.container.as_str()).filter(|c| !c.is_empty());
    let target = exec::find(&client, root, &start.pod, container)
        .await
        .map_err(status_of)?;
    tracing::debug!(namespace, pod = %target.pod, container = %target.name, "exec");

    let (tx, rx) = mpsc::channel(QUEUE);
    let (stdin, stdin_writer) = if start.stdin {
        let (writer, reader) = tokio::io::duplex(CHUNK);
        (Some(Box::new(reader) as exec::Input), Some(writer))
    } else {
        (None, None)
    };
    let (window, sizes) = if start.tty {
        let size = window_size(start.columns, start.rows).unwrap_or(DEFAULT_WINDOW);
        let (sizes, window) = watch::channel(size);
        (Some(window), Some(sizes))
    } else {
        (None, None)
    };
    let (stdout, stdout_pump) = output(tx.clone(), v1::exec_output::Output::Stdout);
    let (stderr, stderr_pump) = output(tx.clone(), v1::exec_output::Output::Stderr);
    let opts = ExecOptions {
        command: start.command,
        tty: start.tty,
        window,
        stdin,
        stdout,
        stderr,
    };
    tokio::spawn(async move {
        let client_gone = async {
            tokio::select! {
                () = tx.closed() => {}
                () = forward_input(input, stdin_writer, sizes) => {}
            }
        };
        let ended = exec::run(&client, &target, opts, client_gone).await;
        // Every writer is gone once `run` returned: the pumps see end-of-file and pass on
        // what is left, so the exit code comes after all the output.
        let _ = stdout_pump.await;
        let _ = stderr_pump.await;
        let last = match ended {
            Ok(Ended::Exited(code)) => Ok(v1::ExecOutput {
                output: Some(v1::exec_output::Output::ExitCode(
                    i32::try_from(code).unwrap_or(i32::MAX),
                )),
            }),
            // The client went away: no one to tell.
            Ok(Ended::Interrupted) => return,
            Err(e) => Err(status_of(e)),
        };
        let _ = tx.send(last).await;
    });
    Ok(ReceiverStream::new(rx))
}

/// Passes the client's stdin and terminal sizes on; at `close_stdin` or the end of the
/// client's messages, closes the command's stdin (dropping its writer). Returns only when
/// the client's messages fail (the client went away); a clean end is no reason to stop.
async fn forward_input(
    mut input: tonic::Streaming<v1::ExecInput>,
    mut stdin: Option<tokio::io::DuplexStream>,
    sizes: Option<watch::Sender<WindowSize>>,
) {
    use v1::exec_input::Input;
    loop {
        let message = match input.message().await {
            Ok(Some(m)) => m,
            Ok(None) => {
                drop(stdin);
                return std::future::pending().await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "exec input failed: the client went away");
                return;
            }
        };
        match message.input {
            Some(Input::Stdin(bytes)) => {
                if let Some(writer) = stdin.as_mut() {
                    // Fails once the command's stdin is closed: what comes later is lost.
                    if writer.write_all(&bytes).await.is_err() {
                        stdin = None;
                    }
                }
            }
            Some(Input::CloseStdin(true)) => stdin = None,
            Some(Input::Resize(size)) => {
                if let (Some(sizes), Some(size)) = (&sizes, window_size(size.columns, size.rows)) {
                    sizes.send_if_modified(|current| std::mem::replace(current, size) != size);
                }
            }
            Some(Input::Start(_)) => tracing::debug!("exec: a second `start` ignored"),
            Some(Input::CloseStdin(false)) | None => {}
        }
    }
}

/// A terminal size from the API's numbers; `None` when either is 0.
fn window_size(columns: u32, rows: u32) -> Option<WindowSize> {
    let cells = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
    (columns > 0 && rows > 0).then(|| WindowSize {
        rows: cells(rows),
        cols: cells(columns),
    })
}

/// A writer for the command's output whose bytes a task passes on as messages made by
/// `wrap`; the task ends at the writer's end (or the client's).
fn output(
    tx: mpsc::Sender<Result<v1::ExecOutput, Status>>,
    wrap: fn(Vec<u8>) -> v1::exec_output::Output,
) -> (exec::Output, JoinHandle<()>) {
    let (writer, mut reader) = tokio::io::duplex(CHUNK);
    let pump = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let message = v1::ExecOutput {
                output: Some(wrap(buf[..n].to_vec())),
            };
            if tx.send(Ok(message)).await.is_err() {
                return;
            }
        }
    });
    (Box::new(writer), pump)
}

/// An error of the read side or of exec as a gRPC status: the code as the module's docs
/// list them, the message the CLI prints ([`crate::describe`]).
pub(crate) fn status_of(e: impl Coded) -> Status {
    Status::new(e.code(), crate::describe(&e))
}

/// An error with its gRPC code.
pub(crate) trait Coded: std::error::Error + 'static {
    fn code(&self) -> Code;
}

impl Coded for PodsError {
    fn code(&self) -> Code {
        match self {
            PodsError::NotFound { .. } => Code::NotFound,
            PodsError::ContainerRequired { .. } | PodsError::UnknownContainer { .. } => {
                Code::InvalidArgument
            }
            PodsError::NotRunning { .. } | PodsError::DaemonPod { .. } => Code::FailedPrecondition,
            PodsError::Io { .. } | PodsError::Corrupt { .. } | PodsError::Signal { .. } => {
                Code::Internal
            }
        }
    }
}

impl Coded for PodLogsError {
    fn code(&self) -> Code {
        match self {
            PodLogsError::Pods(e) => e.code(),
            PodLogsError::NoPrevious { .. } | PodLogsError::WaitingToStart { .. } => {
                Code::FailedPrecondition
            }
            PodLogsError::BadSize { .. } => Code::InvalidArgument,
            PodLogsError::Io { .. } | PodLogsError::Write(_) => Code::Internal,
        }
    }
}

impl Coded for ExecError {
    fn code(&self) -> Code {
        match self {
            ExecError::PodNotRunning { .. } | ExecError::ContainerNotRunning { .. } => {
                Code::FailedPrecondition
            }
            ExecError::EmptyCommand => Code::InvalidArgument,
            ExecError::CommandNotFound { .. } => Code::NotFound,
            ExecError::CannotRun { .. } => Code::PermissionDenied,
            ExecError::BadSpec { .. } | ExecError::Io { .. } | ExecError::Encode(_) => {
                Code::Internal
            }
            ExecError::Pods(e) => e.code(),
            ExecError::Containerd(e) => e.code(),
            ExecError::CleanupFailed { error, .. } => error.code(),
        }
    }
}

impl Coded for ContainerdError {
    fn code(&self) -> Code {
        match self {
            ContainerdError::Unreachable { .. } | ContainerdError::Unavailable { .. } => {
                Code::Unavailable
            }
            _ => Code::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use serde_json::json;

    use super::*;
    use crate::pods::Supervisor;

    /// A pod's directory in a state dir, as `lifecycle` writes it.
    struct PodDir {
        dir: PathBuf,
    }

    impl PodDir {
        fn new(root: &Path, name: &str, manifest: serde_json::Value) -> Self {
            let dir = pods::pods_dir(root, "ns").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let pod = Self { dir };
            pod.write(pods::files::MANIFEST, &manifest);
            pod
        }

        fn write(&self, file: &str, value: &impl serde::Serialize) {
            pods::write_json(&self.dir.join(file), value).unwrap();
        }

        fn supervise(&self) {
            self.write(pods::files::SUPERVISOR, &Supervisor::current().unwrap());
        }

        fn unsupervise(&self) {
            std::fs::remove_file(self.dir.join(pods::files::SUPERVISOR)).unwrap();
        }

        fn append(&self, path: &str, text: &str) {
            use std::io::Write;
            let path = self.dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut file = std::fs::File::options()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            file.write_all(text.as_bytes()).unwrap();
        }
    }

    fn manifest(name: &str, source: Option<&str>) -> serde_json::Value {
        let mut pod = json!({
            "metadata": {"name": name},
            "spec": {
                "initContainers": [
                    {"name": "proxy", "image": "busybox", "restartPolicy": "Always"},
                    {"name": "setup", "image": "busybox"}
                ],
                "containers": [{"name": "app", "image": "busybox"}]
            }
        });
        if let Some(source) = source {
            pod["metadata"]["annotations"][crate::daemon::SOURCE_ANNOTATION] = source.into();
        }
        pod
    }

    fn container(name: &str, state: serde_json::Value, restarts: u32) -> serde_json::Value {
        let running = state.get("running").is_some();
        json!({
            "name": name, "image": "busybox", "state": state, "lastState": {},
            "ready": running, "restartCount": restarts, "started": running
        })
    }

    fn running() -> serde_json::Value {
        json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}})
    }

    fn exited(code: i32) -> serde_json::Value {
        let reason = if code == 0 { "Completed" } else { "Error" };
        json!({"terminated": {"exitCode": code, "reason": reason, "containerID": "containerd://x"}})
    }

    fn status(phase: &str, proxy: serde_json::Value, app: serde_json::Value) -> serde_json::Value {
        json!({
            "phase": phase,
            "conditions": [{"type": "Initialized", "status": "True"}],
            "startTime": "2026-01-01T00:00:00Z",
            "initContainerStatuses": [
                container("proxy", proxy, 1),
                container("setup", exited(0), 5)
            ],
            "containerStatuses": [container("app", app, 2)]
        })
    }

    /// Pod `web`, running with its sidecar, its main container `app` in state `app`.
    fn web_pod(root: &Path, app: serde_json::Value) -> PodDir {
        let web = PodDir::new(root, "web", manifest("web", None));
        web.write(pods::files::STATUS, &status("Running", running(), app));
        web
    }

    #[test]
    fn list_reports_ready_restarts_phase_and_source() {
        let root = tempfile::tempdir().unwrap();
        let web = PodDir::new(root.path(), "web", manifest("web", Some("api")));
        web.write(
            pods::files::STATUS,
            &status("Running", running(), running()),
        );
        web.supervise();
        let done = PodDir::new(root.path(), "done", manifest("done", Some("file")));
        done.write(
            pods::files::STATUS,
            &status("Succeeded", exited(143), exited(0)),
        );
        // Its supervisor died with the pod still running.
        let stale = PodDir::new(root.path(), "stale", manifest("stale", None));
        stale.write(
            pods::files::STATUS,
            &status("Running", running(), running()),
        );
        let starting = PodDir::new(root.path(), "starting", manifest("starting", None));
        starting.supervise();

        let running_only = list(root.path(), "ns", false).unwrap().pods;
        let names: Vec<&str> = running_only.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["starting", "web"]);

        let all = list(root.path(), "ns", true).unwrap().pods;
        let by_name = |n: &str| all.iter().find(|p| p.name == n).unwrap().clone();
        assert_eq!(
            by_name("web"),
            v1::PodSummary {
                name: "web".into(),
                phase: "Running".into(),
                // kubectl: the ready main container and the started, ready sidecar.
                ready: 2,
                containers: 2,
                // Sidecar and main containers; a regular init container's are left out.
                restarts: 3,
                start_time: "2026-01-01T00:00:00Z".into(),
                supervised: true,
                source: "api".into(),
            }
        );
        let done = by_name("done");
        assert_eq!(
            (done.phase.as_str(), done.ready, done.containers),
            ("Succeeded", 0, 2)
        );
        assert_eq!((done.source.as_str(), done.supervised), ("static", false));
        let stale = by_name("stale");
        assert_eq!(
            (stale.phase.as_str(), stale.source.as_str()),
            ("Unknown", "run")
        );
        let starting = by_name("starting");
        assert_eq!(
            (starting.phase.as_str(), starting.ready, starting.containers),
            ("Pending", 0, 2)
        );
        assert_eq!(starting.start_time, "");

        assert!(list(&root.path().join("none"), "ns", true)
            .unwrap()
            .pods
            .is_empty());
    }

    #[test]
    fn get_returns_the_pod_as_kubernetes_shows_it() {
        let root = tempfile::tempdir().unwrap();
        web_pod(root.path(), running());
        let got = get(root.path(), "ns", "web").unwrap();
        let pod: serde_json::Value = serde_json::from_slice(&got.pod_json).unwrap();
        assert_eq!(pod["kind"], "Pod");
        assert_eq!(pod["metadata"]["namespace"], "ns");
        assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 2);

        let missing = get(root.path(), "ns", "nope").unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
        assert_eq!(missing.message(), "no pod \"nope\" in namespace \"ns\"");
    }

    fn logs_request(pod: &str, container: &str) -> v1::LogsRequest {
        v1::LogsRequest {
            pod: pod.into(),
            container: container.into(),
            follow: false,
            previous: false,
            tail: -1,
        }
    }

    async fn lines(
        stream: impl Stream<Item = Result<v1::LogLine, Status>>,
    ) -> Vec<(String, String, String)> {
        stream
            .map(|l| {
                let l = l.unwrap();
                let text = String::from_utf8(l.content).unwrap();
                (l.time, l.stream, text)
            })
            .collect()
            .await
    }

    fn line(time: &str, stream: &str, text: &str) -> (String, String, String) {
        (time.into(), stream.into(), text.into())
    }

    #[tokio::test]
    async fn logs_stream_lines_with_their_stream_and_refuse_at_once() {
        let root = tempfile::tempdir().unwrap();
        let web = web_pod(root.path(), exited(1));
        web.append(
            "logs/app/2.log",
            "t1 stdout P hel\nt2 stderr F oops\nt3 stdout F lo\nt4 stdout F bye\n",
        );
        web.append("logs/app/1.log", "t0 stdout F before\n");

        let all = logs(root.path(), "ns", logs_request("web", "")).unwrap();
        assert_eq!(
            lines(all).await,
            [
                line("t2", "stderr", "oops"),
                line("t1", "stdout", "hello"),
                line("t4", "stdout", "bye")
            ]
        );
        let tail = v1::LogsRequest {
            tail: 1,
            ..logs_request("web", "app")
        };
        let tail = logs(root.path(), "ns", tail).unwrap();
        assert_eq!(lines(tail).await, [line("t4", "stdout", "bye")]);
        let previous = v1::LogsRequest {
            previous: true,
            ..logs_request("web", "app")
        };
        let previous = logs(root.path(), "ns", previous).unwrap();
        assert_eq!(lines(previous).await, [line("t0", "stdout", "before")]);

        let refused = |req| logs(root.path(), "ns", req).err().unwrap();
        let e = refused(logs_request("nope", ""));
        assert_eq!(e.code(), Code::NotFound);
        let e = refused(logs_request("web", "db"));
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(
            e.message(),
            "container db is not valid for pod web, choose one of: [app] \
             or one of the init containers: [proxy setup]"
        );
        let e = refused(v1::LogsRequest {
            previous: true,
            ..logs_request("web", "proxy")
        });
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert_eq!(
            e.message(),
            "previous terminated container \"proxy\" in pod \"web\" not found"
        );
    }

    #[tokio::test]
    async fn followed_logs_end_with_the_run() {
        let root = tempfile::tempdir().unwrap();
        let web = web_pod(root.path(), running());
        web.supervise();
        web.append("logs/app/2.log", "t1 stdout F one\n");
        let follow = v1::LogsRequest {
            follow: true,
            ..logs_request("web", "")
        };
        let mut stream = Box::pin(logs(root.path(), "ns", follow).unwrap());
        let first = next(&mut stream).await.unwrap().unwrap();
        assert_eq!(first.content, b"one");
        web.append("logs/app/2.log", "t2 stderr F two\n");
        let second = next(&mut stream).await.unwrap().unwrap();
        assert_eq!(
            (second.stream.as_str(), &second.content[..]),
            ("stderr", &b"two"[..])
        );
        // The run ends: what it wrote last comes, then the stream ends.
        web.append("logs/app/2.log", "t3 stdout F three\n");
        web.write(
            pods::files::STATUS,
            &status("Running", running(), exited(0)),
        );
        let third = next(&mut stream).await.unwrap().unwrap();
        assert_eq!(third.content, b"three");
        assert!(next(&mut stream).await.is_none());
    }

    #[test]
    fn a_line_sender_fails_once_the_client_is_gone() {
        let (tx, rx) = mpsc::channel(1);
        let mut sink = LineSender(tx);
        assert!(sink.flush().is_ok());
        drop(rx);
        assert_eq!(
            sink.flush().unwrap_err().kind(),
            std::io::ErrorKind::BrokenPipe
        );
    }

    fn events_request(pod: &str, follow: bool) -> v1::EventsRequest {
        v1::EventsRequest {
            pod: pod.into(),
            follow,
        }
    }

    /// The stream's next item, within a while.
    async fn next<T>(stream: &mut (impl Stream<Item = T> + Unpin)) -> Option<T> {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next());
        next.await.expect("an item in time")
    }

    async fn next_event(
        stream: &mut (impl Stream<Item = Result<v1::Event, Status>> + Unpin),
    ) -> Option<(String, String)> {
        let event = next(stream).await?.unwrap();
        Some((event.pod, event.reason))
    }

    fn event_line(time: &str, reason: &str, container: Option<&str>) -> String {
        let mut event = json!({"time": time, "type": "Normal", "reason": reason, "message": "m"});
        if let Some(c) = container {
            event["container"] = c.into();
        }
        format!("{event}\n")
    }

    async fn reasons(
        stream: impl Stream<Item = Result<v1::Event, Status>>,
    ) -> Vec<(String, String)> {
        stream
            .map(|e| {
                let e = e.unwrap();
                (e.pod, e.reason)
            })
            .collect()
            .await
    }

    fn pair(pod: &str, reason: &str) -> (String, String) {
        (pod.into(), reason.into())
    }

    #[tokio::test]
    async fn events_of_one_pod_or_all_merged_by_time() {
        let root = tempfile::tempdir().unwrap();
        let a = PodDir::new(root.path(), "a", manifest("a", None));
        a.append(
            pods::files::EVENTS,
            &(event_line("2026-01-01T00:00:01Z", "Created", Some("app"))
                + &event_line("2026-01-01T00:00:03Z", "Started", Some("app"))),
        );
        let b = PodDir::new(root.path(), "b", manifest("b", None));
        b.append(
            pods::files::EVENTS,
            &event_line("2026-01-01T00:00:02Z", "Scheduled", None),
        );
        let req = |pod: &str| events_request(pod, false);
        let one = events(root.path(), "ns", req("a")).unwrap();
        let one: Vec<v1::Event> = one.map(Result::unwrap).collect().await;
        assert_eq!(
            one[0],
            v1::Event {
                pod: "a".into(),
                time: "2026-01-01T00:00:01Z".into(),
                r#type: "Normal".into(),
                reason: "Created".into(),
                container: "app".into(),
                message: "m".into(),
            }
        );
        assert_eq!(one.len(), 2);
        let all = events(root.path(), "ns", req("")).unwrap();
        assert_eq!(
            reasons(all).await,
            [
                pair("a", "Created"),
                pair("b", "Scheduled"),
                pair("a", "Started")
            ]
        );
        let e = events(root.path(), "ns", req("nope")).err().unwrap();
        assert_eq!(e.code(), Code::NotFound);
    }

    #[tokio::test]
    async fn followed_events_pick_up_new_pods_and_end_with_the_pod() {
        let root = tempfile::tempdir().unwrap();
        let a = PodDir::new(root.path(), "a", manifest("a", None));
        a.supervise();
        a.append(
            pods::files::EVENTS,
            &event_line("2026-01-01T00:00:01Z", "Created", None),
        );
        let follow = |pod: &str| events_request(pod, true);
        let mut all = Box::pin(events(root.path(), "ns", follow("")).unwrap());
        let mut one = Box::pin(events(root.path(), "ns", follow("a")).unwrap());
        assert_eq!(next_event(&mut all).await, Some(pair("a", "Created")));
        assert_eq!(next_event(&mut one).await, Some(pair("a", "Created")));

        let b = PodDir::new(root.path(), "b", manifest("b", None));
        b.append(
            pods::files::EVENTS,
            &event_line("2026-01-01T00:00:02Z", "Scheduled", None),
        );
        assert_eq!(next_event(&mut all).await, Some(pair("b", "Scheduled")));
        // The pod's run ends: its last event comes, then its stream ends.
        a.append(
            pods::files::EVENTS,
            &event_line("2026-01-01T00:00:03Z", "Completed", None),
        );
        a.unsupervise();
        assert_eq!(next_event(&mut one).await, Some(pair("a", "Completed")));
        assert_eq!(next_event(&mut one).await, None);
        assert_eq!(next_event(&mut all).await, Some(pair("a", "Completed")));
    }

    #[test]
    fn errors_keep_the_clis_text_with_a_code() {
        let status = status_of(PodsError::NotRunning { pod: "web".into() });
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "pod \"web\" is not running (it has no `podctl run` supervising it)"
        );
        let not_found = ExecError::CommandNotFound {
            command: "nope".into(),
            container: "app".into(),
            source: ContainerdError::Rpc {
                op: "start",
                code: Code::Unknown,
                message: "exec failed: executable file not found in $PATH".into(),
            },
        };
        let wrapped = ExecError::CleanupFailed {
            error: Box::new(not_found),
            cleanup: ContainerdError::Unavailable {
                op: "delete",
                message: "gone".into(),
            },
        };
        assert_eq!(status_of(wrapped).code(), Code::NotFound);
        let unknown = PodLogsError::Pods(PodsError::NotFound {
            pod: "web".into(),
            namespace: "ns".into(),
        });
        assert_eq!(status_of(unknown).code(), Code::NotFound);
        let down = ExecError::Containerd(ContainerdError::Unreachable {
            address: "/run/containerd.sock".into(),
            reason: "no such file".into(),
        });
        assert_eq!(status_of(down).code(), Code::Unavailable);
    }
}
