//! One module per subcommand: load input, call the library, print.

pub mod daemon;
pub mod events;
pub mod exec;
pub mod image;
pub mod inspect;
pub mod logs;
pub mod networking;
pub mod ps;
pub mod pulling;
pub mod rm;
pub mod run;
pub mod stop;
pub mod supervision;
pub mod validate;
pub mod volume;

use std::path::{Path, PathBuf};
use std::time::Duration;

use podctl_runtime::containerd::Client;
use podctl_runtime::manifest;

use crate::{Cli, Command, Exit, Global};

/// Exit code for input podctl refuses (manifest, reference, arguments).
pub const EXIT_INVALID: u8 = 2;

/// Exit code of a command interrupted by SIGINT or SIGTERM (the shell's 128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the chosen command; returns the process exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Run(args) => run::run(g, args).await,
        Command::Daemon(args) => daemon::run(g, args).await,
        Command::Validate(args) => validate::run(args),
        Command::Rm(args) => rm::run(g, args).await,
        Command::Ps(args) => ps::run(g, args).await,
        Command::Inspect(args) => inspect::run(g, args).await,
        Command::Logs(args) => logs::run(g, args).await,
        Command::Events(args) => events::run(g, args).await,
        Command::Stop(args) => stop::run(g, args).await,
        Command::Exec(args) => exec::run(g, args).await,
        Command::Image(cmd) => image::run(g, cmd).await,
        Command::Volume(cmd) => volume::run(g, cmd).await,
        Command::Version => version(g).await,
    }
}

/// How long `version` waits for a daemon's answer.
const DAEMON_VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// podctl's version, the daemon's when one answers on the socket, and containerd's.
async fn version(g: &Global) -> anyhow::Result<u8> {
    println!("podctl {}", env!("CARGO_PKG_VERSION"));
    match daemon_version(&g.socket).await {
        Ok(v) => println!(
            "podctl daemon {} on {}",
            v.podctl_version,
            g.socket.display()
        ),
        // No daemon is no failure: podctl runs pods in the foreground without one.
        Err(e) => {
            tracing::debug!(error = %podctl_runtime::describe(e.as_ref()), "no daemon version")
        }
    }
    let client = connect(g).await?;
    println!("containerd {}", client.version().await?);
    Ok(0)
}

async fn daemon_version(socket: &Path) -> anyhow::Result<podctl_proto::v1::VersionResponse> {
    let mut client = podctl_proto::connect(socket).await?;
    let answer = tokio::time::timeout(
        DAEMON_VERSION_TIMEOUT,
        client.version(podctl_proto::v1::VersionRequest {}),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer from the podctl daemon on {}", socket.display()))?
    .map_err(|status| api_error(socket, status))?;
    Ok(answer.into_inner())
}

/// An error the daemon on `socket` answered with. Its message is already the CLI's words
/// (the daemon describes its errors as the CLI would); a call that failed on the way (the
/// daemon went away) says so.
pub fn api_error(socket: &Path, status: podctl_proto::Status) -> anyhow::Error {
    use std::error::Error;
    if let Some(cause) = status.source() {
        return anyhow::anyhow!(
            "lost the podctl daemon on {}: {}",
            socket.display(),
            podctl_runtime::describe(cause)
        );
    }
    if status.message().is_empty() {
        anyhow::anyhow!(
            "the podctl daemon on {} failed: {}",
            socket.display(),
            status.code().description()
        )
    } else {
        anyhow::anyhow!("{}", status.message())
    }
}

/// Connects to containerd, or fails with one line naming the socket and how to start it.
pub async fn connect(g: &Global) -> anyhow::Result<Client> {
    Client::connect(&g.address, &g.namespace)
        .await
        .map_err(anyhow::Error::from)
}

/// Wraps an error so `main` exits with [`EXIT_INVALID`].
pub fn invalid(error: impl Into<anyhow::Error>) -> anyhow::Error {
    Exit {
        code: EXIT_INVALID,
        error: error.into(),
    }
    .into()
}

/// The manifest of a pod and the files of ConfigMaps and Secrets it uses, as `run` and
/// `validate` take them.
#[derive(Debug, clap::Args)]
pub struct ManifestArgs {
    /// Manifest file (YAML or JSON; `-` reads stdin): one Pod, and as further documents
    /// (`---`) the ConfigMaps and Secrets it uses; cluster objects such as a Service are
    /// skipped with a warning
    pub file: PathBuf,
    /// A file of ConfigMaps the pod may use (may repeat)
    #[arg(long = "configmap", value_name = "FILE")]
    pub config_maps: Vec<PathBuf>,
    /// A file of Secrets the pod may use (may repeat); their values never appear in
    /// podctl's output, events or state files
    #[arg(long = "secret", value_name = "FILE")]
    pub secrets: Vec<PathBuf>,
    /// Refuse cluster objects (Service, Ingress ...) in the files instead of skipping them
    #[arg(long)]
    pub strict: bool,
    /// Run every replica a Deployment or ReplicaSet asks for, side by side on this host
    /// (its template must use no hostPort); without it, replicas other than 1 are refused
    #[arg(long)]
    pub all_replicas: bool,
}

impl ManifestArgs {
    /// Reads every file and checks the pod and its objects, mapping refusal to
    /// [`EXIT_INVALID`]; warnings about skipped objects go to stderr. The errors name the
    /// file and document themselves.
    pub fn load(&self) -> anyhow::Result<(manifest::Inputs, manifest::RunnablePod)> {
        let inputs =
            manifest::Inputs::read(&self.file, &self.config_maps, &self.secrets, self.strict)
                .map_err(invalid)?;
        let (pod, warnings) = inputs.runnable().map_err(invalid)?;
        if self.all_replicas {
            pod.replicas_fit()
        } else {
            pod.one_replica()
        }
        .map_err(invalid)?;
        for w in warnings {
            eprintln!("podctl: warning: {w}");
        }
        Ok((inputs, pod))
    }
}

/// A duration such as `300ms`, `10s`, `5m` or `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 10s or 5m"))?;
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use ms, s, m or h"
            ))
        }
    };
    std::time::Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
