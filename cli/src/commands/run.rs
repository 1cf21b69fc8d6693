use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use podctl_runtime::lifecycle::{
    self, Event, LifecycleError, Observer, RunOptions, StopRequest, Stream,
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
}

pub async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
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
    });
    let opts = RunOptions {
        root: g.root.clone(),
        remove: args.rm,
        snapshotter: podctl_runtime::image::DEFAULT_SNAPSHOTTER.to_string(),
    };
    let status = lifecycle::run(&client, pod, &opts, observer, stop_rx)
        .await
        .map_err(|e| match e {
            LifecycleError::Reference { .. } => super::invalid(e),
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
            let role = match c.role {
                Role::Init => "init",
                Role::Main => "main",
            };
            let (state, exit, reason) = match &c.state {
                ContainerState::Terminated(t) => {
                    ("terminated", t.exit_code.to_string(), t.reason.clone())
                }
                ContainerState::Waiting(w) => ("waiting", "-".to_string(), w.reason.clone()),
            };
            vec![c.name.clone(), role.into(), state.into(), exit, reason]
        })
        .collect();
    let mut out = format!("pod {}: {:?}", status.name, status.phase);
    if let Some(m) = &status.message {
        out.push_str(&format!(" ({m})"));
    }
    out.push('\n');
    out.push_str(&table(
        &["CONTAINER", "TYPE", "STATE", "EXIT", "REASON"],
        &rows,
    ));
    out
}

/// Shows container output prefixed with the container's name, and progress on stderr.
struct Terminal {
    data_on_stdout: bool,
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
            Event::Started { container, role } => {
                tracing::info!(container, ?role, "started");
            }
            Event::Exited {
                container,
                role,
                exit_code,
                reason,
            } => {
                let kind = match role {
                    Role::Init => "init container",
                    Role::Main => "container",
                };
                eprintln!("podctl: {kind} {container} exited with code {exit_code} ({reason})");
            }
            Event::Warning(msg) => eprintln!("podctl: warning: {msg}"),
        }
    }
}
