use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use podctl_runtime::lifecycle::{
    self, BackoffPolicy, Event, EventType, LifecycleError, Observer, RunOptions, StopRequest,
    Stream,
};
use podctl_runtime::status::{ContainerState, PodStatus, Role};
use tokio::sync::watch;

use crate::output::{print_data, table};
use crate::{Exit, Format, Global};

/// Exit code when podctl itself fails during `run`, as `docker run` does, so it is not
/// mistaken for a container's own exit code.
const EXIT_RUN_FAILED: u8 = 125;

/// A stop signal this long after the first one kills at once.
const SECOND_SIGNAL_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// Arguments of `podctl run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pod manifest (YAML or JSON); `-` reads stdin
    file: PathBuf,
    /// Remove the pod (containers, snapshots, volumes, logs) when it ends
    #[arg(long)]
    rm: bool,
    /// Final status format; with json or yaml, container output goes to stderr so stdout
    /// holds only the status (Kubernetes field names: .phase, .containerStatuses[] ...)
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// Print the pod's lifecycle events (Created, Started, Killing, BackOff, Unhealthy,
    /// Completed, Failed ...) on stderr as they happen; they are also kept in
    /// <root>/<namespace>/pods/<pod>/events.jsonl
    #[arg(long)]
    events: bool,
    /// First delay of the crash-loop back-off before a failed container is restarted
    /// (Kubernetes: 10s); doubles after every restart up to --backoff-cap
    #[arg(long, env = "PODCTL_BACKOFF_BASE", default_value = "10s", value_parser = super::parse_duration)]
    backoff_base: Duration,
    /// Longest delay of the crash-loop back-off (Kubernetes: 5m); a container that ran for
    /// twice this long starts over from --backoff-base
    #[arg(long, env = "PODCTL_BACKOFF_CAP", default_value = "5m", value_parser = super::parse_duration)]
    backoff_cap: Duration,
    /// Size past which a container's log file is rotated, as a Kubernetes quantity (10Mi,
    /// 512Ki, bytes); the kubelet's containerLogMaxSize
    #[arg(long, env = "PODCTL_LOG_MAX_SIZE", default_value = "10Mi", value_parser = podctl_runtime::podlogs::parse_max_size)]
    log_max_size: u64,
    /// Log files kept per container run, the current one included (at least 2); the
    /// kubelet's containerLogMaxFiles
    #[arg(long, env = "PODCTL_LOG_MAX_FILES", default_value_t = podctl_runtime::podlogs::DEFAULT_MAX_FILES, value_parser = clap::value_parser!(u32).range(2..))]
    log_max_files: u32,
}

pub async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    if args.backoff_base.is_zero() || args.backoff_cap < args.backoff_base {
        return Err(super::invalid(anyhow::anyhow!(
            "--backoff-base must be above zero and at most --backoff-cap"
        )));
    }
    let pod = super::load_manifest(&args.file)?;
    let client = super::connect(g).await.map_err(run_failed)?;
    let (stop_tx, stop_rx) = watch::channel(StopRequest::None);
    tokio::spawn(async move {
        super::wait_for_stop_signal().await;
        eprintln!(
            "podctl: stopping the pod (the stop signal, then SIGKILL after the grace period; \
             interrupt again to kill at once)"
        );
        let _ = stop_tx.send(StopRequest::Graceful);
        // `timeout` and process managers signal the child and then its group: one request
        // can arrive twice in a moment, and must not count as the second one.
        let first = std::time::Instant::now();
        loop {
            super::wait_for_stop_signal().await;
            if first.elapsed() >= SECOND_SIGNAL_AFTER {
                break;
            }
        }
        eprintln!("podctl: killing the pod's containers");
        let _ = stop_tx.send(StopRequest::Now);
    });
    let observer = Arc::new(Terminal {
        data_on_stdout: args.output != Format::Table,
        events: args.events,
    });
    let opts = RunOptions {
        root: g.root.clone(),
        remove: args.rm,
        snapshotter: podctl_runtime::image::DEFAULT_SNAPSHOTTER.to_string(),
        backoff: BackoffPolicy {
            base: args.backoff_base,
            cap: args.backoff_cap,
        },
        log_rotation: podctl_runtime::podlogs::LogRotation {
            max_size: args.log_max_size,
            max_files: args.log_max_files,
        },
    };
    let status = lifecycle::run(&client, pod, &opts, observer, stop_rx)
        .await
        .map_err(|e| match e {
            LifecycleError::Reference { .. } | LifecycleError::Handler { .. } => super::invalid(e),
            e => run_failed(e.into()),
        })?;
    match args.output {
        Format::Table => eprint!("{}", render_status(&status)),
        f => print_data(f, &status)?,
    }
    // Exit codes are 0..=255 on Linux; a container's code is already in that range.
    Ok(status.exit_code().clamp(0, 255) as u8)
}

fn run_failed(error: anyhow::Error) -> anyhow::Error {
    Exit {
        code: EXIT_RUN_FAILED,
        error,
    }
    .into()
}

fn render_status(status: &PodStatus) -> String {
    let rows: Vec<Vec<String>> = status
        .all()
        .map(|c| {
            let role = c.role.as_str();
            let (state, exit, reason) = match &c.state {
                ContainerState::Terminated(t) => {
                    ("terminated", t.exit_code.to_string(), t.reason.clone())
                }
                ContainerState::Waiting(w) => ("waiting", "-".to_string(), w.reason.clone()),
                ContainerState::Running(_) => ("running", "-".to_string(), String::new()),
            };
            vec![
                c.name.clone(),
                role.into(),
                state.into(),
                exit,
                c.restart_count.to_string(),
                reason,
            ]
        })
        .collect();
    let mut out = format!("pod {}: {:?}", status.name, status.phase);
    match (&status.reason, &status.message) {
        (Some(r), Some(m)) => out.push_str(&format!(" ({r}: {m})")),
        (None, Some(m)) => out.push_str(&format!(" ({m})")),
        (Some(r), None) => out.push_str(&format!(" ({r})")),
        (None, None) => {}
    }
    out.push('\n');
    out.push_str(&table(
        &["CONTAINER", "TYPE", "STATE", "EXIT", "RESTARTS", "REASON"],
        &rows,
    ));
    out
}

/// Shows container output prefixed with the container's name, and progress on stderr.
struct Terminal {
    data_on_stdout: bool,
    events: bool,
}

impl Observer for Terminal {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::Output {
                container,
                stream,
                line,
            } => {
                let mut buf = Vec::with_capacity(line.len() + container.len() + 4);
                buf.extend_from_slice(format!("[{container}] ").as_bytes());
                buf.extend_from_slice(line);
                buf.push(b'\n');
                // Lines are written whole under the stream's lock so they never interleave.
                let _ = if stream == Stream::Stdout && !self.data_on_stdout {
                    std::io::stdout().lock().write_all(&buf)
                } else {
                    std::io::stderr().lock().write_all(&buf)
                };
            }
            Event::Lifecycle(e) => {
                if self.events {
                    let kind = match e.type_ {
                        EventType::Normal => "Normal",
                        EventType::Warning => "Warning",
                    };
                    let object = e.container.as_deref().unwrap_or("pod");
                    eprintln!(
                        "podctl: event {} {kind} {} {object}: {}",
                        e.time, e.reason, e.message
                    );
                }
            }
            Event::Exited {
                container,
                role,
                exit_code,
                reason,
            } => {
                let kind = match role {
                    Role::Init => "init container",
                    Role::Sidecar => "sidecar",
                    Role::Main => "container",
                };
                eprintln!("podctl: {kind} {container} exited with code {exit_code} ({reason})");
            }
        }
    }
}
