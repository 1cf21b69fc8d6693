use std::io::Write;
use std::sync::Arc;

use podctl_proto::{v1, Code};
use podctl_runtime::claims::ClaimError;
use podctl_runtime::image::ImageError;
use podctl_runtime::lifecycle::{
    self, Event, EventType, LifecycleError, Observer, StopRequest, Stream,
};
use podctl_runtime::status::{ContainerState, PodStatus, Role};
use podctl_runtime::{jobs, manifest, replicas};
use tokio::sync::watch;

use super::supervision::SupervisionArgs;
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
    #[command(flatten)]
    manifest: super::ManifestArgs,
    /// Hand the pod to the podctl daemon (on --socket) instead of running it here: checks
    /// the manifest, prints the pod's name once the daemon admitted it (images present,
    /// sandbox made) and exits 0; the daemon runs it with its own back-off and log options
    #[arg(short, long, conflicts_with_all = ["rm", "events", "output"])]
    detach: bool,
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
    #[command(flatten)]
    supervision: SupervisionArgs,
}

/// Refuses `run -d` with a supervision option given on the command line: a detached pod's
/// back-off, log rotation and registry options are the daemon's. (From the environment they
/// are ignored, as they may be set for foreground runs and the daemon alike; clap's own
/// conflicts would count them, so this check runs after parsing.)
pub fn check_detach(matches: &clap::ArgMatches) -> Result<(), String> {
    let Some(("run", m)) = matches.subcommand() else {
        return Ok(());
    };
    if !m.get_flag("detach") {
        return Ok(());
    }
    let shared = <SupervisionArgs as clap::Args>::augment_args(clap::Command::new("run"));
    for arg in shared.get_arguments() {
        if m.value_source(arg.get_id().as_str()) == Some(clap::parser::ValueSource::CommandLine) {
            let flag = arg.get_long().unwrap_or(arg.get_id().as_str());
            return Err(format!(
                "the argument '--{flag}' cannot be used with '--detach': a detached pod's \
                 back-off, log rotation, registry and network options are the daemon's (give them to `podctl daemon`)"
            ));
        }
    }
    Ok(())
}

pub async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    if args.detach {
        return detach(g, &args.manifest).await;
    }
    let mut opts = args.supervision.run_options(g.root.clone(), args.rm)?;
    opts.pull_progress = super::pulling::progress(false);
    let (_, pod) = args.manifest.load()?;
    refuse_cron_job(&pod)?;
    let client = super::connect(g).await.map_err(run_failed)?;
    let (stop_tx, stop_rx) = watch::channel(StopRequest::None);
    let pulls = opts.pull_cancel.clone();
    tokio::spawn(async move {
        super::wait_for_stop_signal().await;
        // A pull still under way stops too, and removes what it wrote.
        pulls.cancel();
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
    let terminal = |pod: Option<&str>| Terminal {
        data_on_stdout: args.output != Format::Table,
        events: args.events,
        pod: pod.map(|p| format!("{p}/")).unwrap_or_default(),
    };
    let runner = jobs::Foreground { client, opts };
    if pod.controller.replicas() > 1 {
        let observer = |name: &str| -> Arc<dyn Observer> { Arc::new(terminal(Some(name))) };
        let statuses = replicas::run(&runner, pod.replica_pods(), observer, stop_rx)
            .await
            .map_err(run_error)?;
        match args.output {
            Format::Table => {
                for s in &statuses {
                    eprint!("{}", render_status(s));
                }
            }
            f => print_data(f, &statuses)?,
        }
        // The first replica's failure, as a lone pod's.
        let code = statuses
            .iter()
            .map(PodStatus::exit_code)
            .find(|c| *c != 0)
            .unwrap_or(0);
        return Ok(code.clamp(0, 255) as u8);
    }
    let observer = Arc::new(terminal(None));
    if jobs::rules(&pod).is_some() {
        let status = jobs::run(&runner, pod, observer, stop_rx)
            .await
            .map_err(run_error)?;
        match args.output {
            Format::Table => {
                for p in &status.pods {
                    eprint!("{}", render_status(&p.status));
                }
                eprintln!("{}", render_job(&status));
            }
            f => print_data(f, &status)?,
        }
        return Ok(status.exit_code().clamp(0, 255) as u8);
    }
    let status = lifecycle::run(&runner.client, pod, &runner.opts, observer, stop_rx)
        .await
        .map_err(run_error)?;
    match args.output {
        Format::Table => eprint!("{}", render_status(&status)),
        f => print_data(f, &status)?,
    }
    // Exit codes are 0..=255 on Linux; a container's code is already in that range.
    Ok(status.exit_code().clamp(0, 255) as u8)
}

/// A lifecycle error as `run` exits with it: refusals exit 2, an interrupted pull 130,
/// the rest 125.
fn run_error(e: LifecycleError) -> anyhow::Error {
    match e {
        LifecycleError::Reference { .. }
        | LifecycleError::Handler { .. }
        | LifecycleError::ClaimNotFound { .. }
        // What the API server refuses of a claim given again (nothing was created).
        | LifecycleError::Claim(ClaimError::Immutable { .. } | ClaimError::Shrunk { .. }) => {
            super::invalid(e)
        }
        LifecycleError::Image(ImageError::PullCancelled { .. }) => Exit {
            code: super::EXIT_INTERRUPTED,
            error: e.into(),
        }
        .into(),
        e => run_failed(e.into()),
    }
}

/// A CronJob runs only in the daemon, whose manifests dir follows its schedule.
fn refuse_cron_job(pod: &manifest::RunnablePod) -> anyhow::Result<()> {
    match &pod.controller {
        manifest::Controller::CronJob(c) => Err(super::invalid(anyhow::anyhow!(
            "CronJob {:?} runs on its schedule in the daemon: put its file in the manifests dir of `podctl daemon --manifests-dir DIR`",
            c.name
        ))),
        _ => Ok(()),
    }
}

/// The Job's line: `job migrate: Complete (succeeded 1, failed 2)`.
fn render_job(status: &jobs::JobStatus) -> String {
    let condition = status.conditions.first();
    let what = match condition {
        Some(c) if c.type_ == "Complete" => "Complete".to_owned(),
        Some(c) => format!(
            "Failed ({}{})",
            c.reason.as_deref().unwrap_or_default(),
            c.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        None => "Unknown".to_owned(),
    };
    format!(
        "job {}: {what} (succeeded {}, failed {})",
        status.name, status.succeeded, status.failed
    )
}

/// `run -d`: checks the manifest here as `run` does (nothing is sent when it is invalid),
/// then hands its text to the daemon, which admits the pod and supervises it.
async fn detach(g: &Global, manifest: &super::ManifestArgs) -> anyhow::Result<u8> {
    let (inputs, pod) = manifest.load()?;
    refuse_cron_job(&pod)?;
    if manifest.all_replicas {
        return Err(super::invalid(anyhow::anyhow!(
            "--all-replicas runs the replicas in the foreground: the daemon runs one replica (drop --detach)"
        )));
    }
    if jobs::rules(&pod).is_some() {
        return Err(super::invalid(anyhow::anyhow!(
            "a Job cannot be handed to the daemon yet: run it in the foreground, without --detach"
        )));
    }
    let mut client = podctl_proto::connect(&g.socket)
        .await
        .map_err(|e| run_failed(e.into()))?;
    let files = |files: Vec<(String, String)>| {
        files
            .into_iter()
            .map(|(text, source)| v1::ManifestFile {
                text: text.into_bytes(),
                source,
            })
            .collect()
    };
    let (text, source) = inputs.manifest;
    let request = v1::RunRequest {
        manifest: text.into_bytes(),
        source,
        config_maps: files(inputs.config_maps),
        secrets: files(inputs.secrets),
        strict: inputs.strict,
    };
    let admitted = client.run(request).await.map_err(|status| {
        let refused = status.code() == Code::InvalidArgument;
        let error = super::api_error(&g.socket, status);
        if refused {
            super::invalid(error)
        } else {
            run_failed(error)
        }
    })?;
    println!("{}", admitted.into_inner().name);
    Ok(0)
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

/// Shows container output prefixed with the container's name (and the pod's, when
/// several run), and progress on stderr.
struct Terminal {
    data_on_stdout: bool,
    events: bool,
    /// `<pod>/` when several pods share the terminal, else empty.
    pod: String,
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
                buf.extend_from_slice(format!("[{}{container}] ", self.pod).as_bytes());
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
                        "podctl: event {} {kind} {} {}{object}: {}",
                        e.time, e.reason, self.pod, e.message
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
                eprintln!(
                    "podctl: {kind} {}{container} exited with code {exit_code} ({reason})",
                    self.pod
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::error::ErrorKind;

    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> Result<super::Args, clap::Error> {
        let cli = Cli::try_parse_args(args)?;
        match cli.command {
            Command::Run(a) => Ok(a),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn detach_takes_a_file_or_stdin() {
        let a = parse(&["podctl", "run", "-d", "pod.yaml"]).unwrap();
        assert!(a.detach);
        assert_eq!(a.manifest.file.to_str(), Some("pod.yaml"));
        let a = parse(&["podctl", "run", "--detach", "-"]).unwrap();
        assert!(a.detach);
        assert_eq!(a.manifest.file.to_str(), Some("-"));
        let a = parse(&[
            "podctl", "run", "--rm", "--events", "-o", "json", "pod.yaml",
        ])
        .unwrap();
        assert!(!a.detach && a.rm && a.events);
    }

    #[test]
    fn detach_refuses_the_options_of_a_foreground_run() {
        for flags in [
            &["--rm"][..],
            &["--events"],
            &["-o", "json"],
            &["--backoff-base", "1s"],
            &["--backoff-cap=1m"],
            &["--log-max-size", "1Mi"],
            &["--log-max-files", "3"],
        ] {
            let mut args = vec!["podctl", "run", "-d", "pod.yaml"];
            args.extend_from_slice(flags);
            let e = parse(&args).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ArgumentConflict, "{flags:?}: {e}");
            let text = e.to_string();
            let flag = flags[0].split('=').next().unwrap();
            assert!(text.contains("--detach"), "{text}");
            if flag.starts_with("--backoff") || flag.starts_with("--log") {
                assert!(text.contains(&format!("'{flag}'")), "{text}");
                assert!(text.contains("`podctl daemon`"), "{text}");
            }
        }
    }

    #[test]
    fn supervision_options_stay_with_a_foreground_run() {
        let a = parse(&[
            "podctl",
            "run",
            "pod.yaml",
            "--backoff-base",
            "200ms",
            "--backoff-cap",
            "2s",
            "--log-max-files",
            "3",
        ])
        .unwrap();
        assert_eq!(a.supervision.backoff_base, Duration::from_millis(200));
        assert_eq!(a.supervision.backoff_cap, Duration::from_secs(2));
        assert_eq!(a.supervision.log_max_files, 3);
        assert!(parse(&["podctl", "run", "pod.yaml", "--log-max-files", "1"]).is_err());
    }

    #[test]
    fn detach_ignores_supervision_options_from_the_environment() {
        // Set for foreground runs and the daemon alike: no reason to refuse `run -d`. The
        // only test that sets it; the value matches the default others would parse.
        std::env::set_var("PODCTL_LOG_MAX_FILES", "5");
        let a = parse(&["podctl", "run", "-d", "pod.yaml"]);
        std::env::remove_var("PODCTL_LOG_MAX_FILES");
        assert!(a.unwrap().detach);
    }
}
